//! The Gateway API statuses colormesh writes: conditions with the spec's types and reasons, and
//! the summary of a status in Gloo's vocabulary ([`summary`]).

use model::gateway_api::{CONTROLLER_NAME, Condition, ParentReference, RouteParentStatus};
use model::gloo::State;

use super::rules::{CompiledRoute, RefProblem};
use crate::translate::GatewayApiStatus;

pub(crate) const ACCEPTED: &str = "Accepted";
pub(crate) const RESOLVED_REFS: &str = "ResolvedRefs";
pub(crate) const PROGRAMMED: &str = "Programmed";
pub(crate) const CONFLICTED: &str = "Conflicted";
pub(crate) const PARTIALLY_INVALID: &str = "PartiallyInvalid";

pub(crate) const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
pub(crate) const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
pub(crate) const NO_MATCHING_PARENT: &str = "NoMatchingParent";
pub(crate) const UNSUPPORTED_VALUE: &str = "UnsupportedValue";

/// Why a route is not accepted by one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What the route version being judged looks like to the status writer.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteVerdict {
    /// The errors that rejected it (`field: message`); empty when accepted.
    pub(crate) errors: Vec<String>,
    /// `ResolvedRefs=False` problems.
    pub(crate) ref_problems: Vec<RefProblem>,
    /// Rules answering 500 because of an unsupported filter.
    pub(crate) invalid_rules: Vec<(usize, String)>,
    /// How many rules the route has.
    pub(crate) rules: usize,
}

impl RouteVerdict {
    pub(crate) fn of(compiled: &CompiledRoute, errors: Vec<String>) -> Self {
        Self {
            errors,
            ref_problems: compiled.ref_problems.clone(),
            invalid_rules: compiled.invalid_rules.clone(),
            rules: compiled.rules.len(),
        }
    }
}

/// The status of a route for one parent: `Accepted` (from `attached`, unless the route version was
/// rejected or all its rules are invalid), `ResolvedRefs`, and `PartiallyInvalid` when some rules
/// are invalid.
pub(crate) fn route_parent_status(
    parent: &ParentReference,
    verdict: &RouteVerdict,
    attached: Result<String, Refusal>,
    generation: Option<i64>,
) -> RouteParentStatus {
    let mut conditions = Vec::new();
    let invalid = verdict.invalid_rules.len();
    let accepted = if !verdict.errors.is_empty() {
        Err(Refusal::new(UNSUPPORTED_VALUE, verdict.errors.join("; ")))
    } else if invalid > 0 && invalid == verdict.rules {
        Err(Refusal::new(
            UNSUPPORTED_VALUE,
            invalid_rules_message(&verdict.invalid_rules),
        ))
    } else {
        attached
    };
    match accepted {
        Ok(message) => conditions.push(Condition::new(
            ACCEPTED, true, ACCEPTED, message, generation,
        )),
        Err(refusal) => conditions.push(Condition::new(
            ACCEPTED,
            false,
            refusal.reason,
            refusal.message,
            generation,
        )),
    }
    match verdict.ref_problems.first() {
        None => conditions.push(Condition::new(
            RESOLVED_REFS,
            true,
            RESOLVED_REFS,
            "every backendRef is resolved",
            generation,
        )),
        Some(first) => conditions.push(Condition::new(
            RESOLVED_REFS,
            false,
            first.reason,
            verdict
                .ref_problems
                .iter()
                .map(|problem| format!("{}: {}", problem.field, problem.message))
                .collect::<Vec<_>>()
                .join("; "),
            generation,
        )),
    }
    if invalid > 0 && invalid < verdict.rules && verdict.errors.is_empty() {
        conditions.push(Condition::new(
            PARTIALLY_INVALID,
            true,
            UNSUPPORTED_VALUE,
            invalid_rules_message(&verdict.invalid_rules),
            generation,
        ));
    }
    RouteParentStatus {
        parent_ref: parent.clone(),
        controller_name: CONTROLLER_NAME.to_owned(),
        conditions,
    }
}

fn invalid_rules_message(invalid: &[(usize, String)]) -> String {
    invalid
        .iter()
        .map(|(_, message)| message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a condition reports a problem: a `False` positive condition, or a `True` negative one.
fn is_problem(condition: &Condition) -> bool {
    match condition.condition_type.as_str() {
        CONFLICTED | PARTIALLY_INVALID => condition.is_true(),
        _ => !condition.is_true(),
    }
}

/// The state of a Gateway API status in Gloo's vocabulary: `Rejected` when an `Accepted`
/// condition (of the class, the Gateway, or a route parent) is `False`; `Warning` when another
/// condition reports a problem (`ResolvedRefs=False`, a listener not accepted or conflicted,
/// `PartiallyInvalid=True`, a Gateway accepted with some listeners invalid); else `Accepted`.
pub(crate) fn summary(status: &GatewayApiStatus) -> State {
    let refused = |conditions: &[Condition]| {
        conditions
            .iter()
            .any(|c| c.condition_type == ACCEPTED && !c.is_true())
    };
    let troubled = |conditions: &[Condition]| conditions.iter().any(is_problem);
    let (rejected, warning) = match status {
        GatewayApiStatus::GatewayClass(class) => (refused(&class.conditions), false),
        GatewayApiStatus::Gateway(gateway) => (
            refused(&gateway.conditions),
            gateway
                .conditions
                .iter()
                .any(|c| c.condition_type == ACCEPTED && c.reason != ACCEPTED)
                || gateway
                    .listeners
                    .iter()
                    .any(|listener| troubled(&listener.conditions)),
        ),
        GatewayApiStatus::Route(route) => (
            route
                .parents
                .iter()
                .any(|parent| refused(&parent.conditions)),
            route
                .parents
                .iter()
                .any(|parent| troubled(&parent.conditions)),
        ),
    };
    if rejected {
        State::Rejected
    } else if warning {
        State::Warning
    } else {
        State::Accepted
    }
}
