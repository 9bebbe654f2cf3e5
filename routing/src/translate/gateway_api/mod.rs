//! The Kubernetes Gateway API flavour (v1.6.1): `HTTPRoute`s attached to `Gateway`s of
//! colormesh's classes for the ingress role ([`ingress`]), and to `Service`s for the GAMMA mesh
//! sidecar ([`mesh`]). Both compile rules the same way ([`rules`]) and write the spec's statuses
//! ([`status`]).
//!
//! A route's rules are merged into virtual hosts (one per effective hostname at the ingress, one
//! per Service port in the mesh) and ordered by the spec's precedence across every route there:
//! Exact path, then RegularExpression (Envoy Gateway's order), then PathPrefix; then the longer
//! path (characters); a method; more header matches; more query parameter matches; the older
//! `creationTimestamp`; `namespace/name` alphabetically; rule order; match order.
//!
//! `creationTimestamp` may be absent (local files never applied to a cluster). Absent compares
//! as equal, which would make the order intransitive next to stamped routes; so within one
//! virtual host the timestamps are compared only when every route there has one, and otherwise
//! the order falls through to `namespace/name`.

mod ingress;
mod mesh;
mod rules;
mod status;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use model::{Loaded, ResourceKey};

pub(super) use ingress::translate as translate_ingress;
pub(super) use mesh::translate as translate_mesh;
pub(super) use status::summary;

use self::rules::{ActionPlan, Backends, CompiledRoute, MatchPlan, RouteId};
use self::status::RouteVerdict;
use super::report::Report;
use super::{Effective, History, resolve};
use crate::table::Route;

/// One match of one rule of one route, attached to a virtual host.
#[derive(Debug, Clone)]
struct Attached {
    route: RouteId,
    rule: usize,
    plan: MatchPlan,
    action: ActionPlan,
}

impl Attached {
    /// Every match of every rule of `route`.
    fn all(route: &CompiledRoute) -> Vec<Self> {
        route
            .rules
            .iter()
            .flat_map(|rule| {
                rule.matches.iter().map(|plan| Self {
                    route: route.id.clone(),
                    rule: rule.index,
                    plan: plan.clone(),
                    action: rule.action.clone(),
                })
            })
            .collect()
    }
}

/// The table routes of one virtual host, in the spec's precedence order.
fn ordered_routes(mut entries: Vec<Attached>) -> Vec<Route> {
    let stamped = entries.iter().all(|entry| entry.route.created.is_some());
    entries.sort_by(|a, b| precedence(a, b, stamped));
    entries
        .into_iter()
        .map(|entry| Route {
            name: format!(
                "{}/{}/rule/{}/match/{}",
                entry.route.namespace, entry.route.name, entry.rule, entry.plan.index
            ),
            matcher: entry.plan.matcher(),
            action: entry.action.instantiate(),
        })
        .collect()
}

fn precedence(a: &Attached, b: &Attached, stamped: bool) -> Ordering {
    b.plan
        .rank()
        .cmp(&a.plan.rank())
        .then_with(|| {
            if stamped {
                a.route.created.cmp(&b.route.created)
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| a.route.namespace.cmp(&b.route.namespace))
        .then_with(|| a.route.name.cmp(&b.route.name))
        .then_with(|| a.rule.cmp(&b.rule))
        .then_with(|| a.plan.index.cmp(&b.plan.index))
}

/// Reports a parent's refusal of a route as an error on that parentRef, unless the route's own
/// content was refused already (its errors are the reason then).
fn report_refusal(
    report: &mut Report,
    (key, loaded): (&ResourceKey, &Loaded),
    field: &super::FieldPath,
    verdict: &RouteVerdict,
    attached: &Result<String, status::Refusal>,
) {
    if verdict.errors.is_empty()
        && let Err(refusal) = attached
    {
        report.error(
            key,
            loaded,
            super::Problem::new(
                field,
                format!("Accepted=False ({}): {}", refusal.reason, refusal.message),
            ),
        );
    }
}

/// Compiles an HTTPRoute through the history: the version to serve (the current one, or the last
/// accepted one when the current is rejected) and the verdict on the current version.
fn compile_with_history(
    key: &ResourceKey,
    current: &Loaded,
    history: &History<'_>,
    report: &mut Report,
    effective: &mut Effective,
    backends: &mut Backends<'_>,
) -> (Option<CompiledRoute>, RouteVerdict) {
    let mut verdict = RouteVerdict::default();
    let served = resolve(
        key,
        current,
        history,
        report,
        effective,
        |version, findings| {
            let compiled = rules::compile_route(version, backends, findings);
            if std::ptr::eq(version, current)
                && let Some(compiled) = &compiled
            {
                let errors = findings
                    .errors
                    .iter()
                    .map(|problem| format!("{}: {}", problem.field, problem.message))
                    .collect();
                verdict = RouteVerdict::of(compiled, errors);
            }
            compiled
        },
    );
    // Backend problems are not errors (the route is served, those shares answer 500), but the
    // status says so.
    for problem in &verdict.ref_problems {
        report.warning(
            key,
            current,
            super::Problem::new(
                &problem.field,
                format!(
                    "ResolvedRefs=False ({}): {}",
                    problem.reason, problem.message
                ),
            ),
        );
    }
    (served, verdict)
}
