//! Collects per-resource findings during a translation and turns them into [`ResourceStatus`]es.
//!
//! Every reason reads `file:line: Kind namespace/name: field.path: what is wrong`, so a person can
//! go straight to the offending field; a rejection also says which version is served instead.

use std::collections::BTreeMap;

use model::gloo::State;
use model::{Loaded, ResourceKey};

use super::{GatewayApiStatus, Problem, ResourceStatus};
use crate::table::TableError;

#[derive(Debug, Default)]
pub(crate) struct Report {
    entries: BTreeMap<ResourceKey, Entry>,
    table_errors: Vec<String>,
}

#[derive(Debug)]
struct Entry {
    resource_version: Option<String>,
    errors: Vec<String>,
    warnings: Vec<String>,
    served: Served,
    /// Set for a resource the translation needed but did not find: reported `Pending`.
    missing: Option<String>,
    /// The Gateway API status of a GatewayClass, Gateway or HTTPRoute.
    gateway_api: Option<GatewayApiStatus>,
}

/// Which version of a rejected resource is in use.
#[derive(Debug)]
enum Served {
    Current,
    /// The last accepted version, read from this `file:line`.
    Previous(String),
    Nothing,
}

fn reason(loaded: &Loaded, key: &ResourceKey, problem: &Problem) -> String {
    format!(
        "{}: {key}: {}: {}",
        loaded.origin, problem.field, problem.message
    )
}

impl Report {
    /// Registers a resource version (its resourceVersion and its unsupported fields) once.
    pub(crate) fn seen(&mut self, key: &ResourceKey, loaded: &Loaded) {
        if self.entries.contains_key(key) {
            return;
        }
        let warnings = loaded
            .ignored_fields
            .iter()
            .map(|field| {
                format!(
                    "{}: {key}: unsupported field {field} ignored",
                    loaded.origin
                )
            })
            .collect();
        self.entries.insert(
            key.clone(),
            Entry {
                resource_version: loaded.resource.metadata().resource_version.clone(),
                errors: Vec::new(),
                warnings,
                served: Served::Current,
                missing: None,
                gateway_api: None,
            },
        );
    }

    fn entry(&mut self, key: &ResourceKey, loaded: &Loaded) -> &mut Entry {
        self.seen(key, loaded);
        self.entries
            .get_mut(key)
            .expect("seen() inserted the entry")
    }

    pub(crate) fn warnings(&mut self, key: &ResourceKey, loaded: &Loaded, problems: &[Problem]) {
        let entry = self.entry(key, loaded);
        entry
            .warnings
            .extend(problems.iter().map(|problem| reason(loaded, key, problem)));
    }

    pub(crate) fn warning(&mut self, key: &ResourceKey, loaded: &Loaded, problem: Problem) {
        self.warnings(key, loaded, &[problem]);
    }

    pub(crate) fn errors(&mut self, key: &ResourceKey, loaded: &Loaded, problems: &[Problem]) {
        let entry = self.entry(key, loaded);
        entry
            .errors
            .extend(problems.iter().map(|problem| reason(loaded, key, problem)));
    }

    pub(crate) fn error(&mut self, key: &ResourceKey, loaded: &Loaded, problem: Problem) {
        self.errors(key, loaded, &[problem]);
    }

    pub(crate) fn served_previous(&mut self, key: &ResourceKey, previous: &Loaded) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.served = Served::Previous(previous.origin.to_string());
        }
    }

    pub(crate) fn not_served(&mut self, key: &ResourceKey) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.served = Served::Nothing;
        }
    }

    /// Whether the resource has been rejected so far in this translation.
    pub(crate) fn is_rejected(&self, key: &ResourceKey) -> bool {
        self.entries
            .get(key)
            .is_some_and(|entry| !entry.errors.is_empty())
    }

    /// Records that a resource the translation needs is absent.
    pub(crate) fn missing(&mut self, key: &ResourceKey, message: String) {
        self.entries.entry(key.clone()).or_insert_with(|| Entry {
            resource_version: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            served: Served::Current,
            missing: Some(message),
            gateway_api: None,
        });
    }

    /// Sets the Gateway API status of a resource (replacing an earlier one).
    pub(crate) fn gateway_api(
        &mut self,
        key: &ResourceKey,
        loaded: &Loaded,
        status: GatewayApiStatus,
    ) {
        self.entry(key, loaded).gateway_api = Some(status);
    }

    pub(crate) fn table_error(&mut self, error: &TableError) {
        self.table_errors.push(format!(
            "the compiled route table was invalid ({error}); only the fallback is served"
        ));
    }

    /// The statuses, in resource key order. `preset_rejections` are reasons decided before the
    /// translation (the resource's latest version could not be read at all).
    pub(crate) fn finish(
        mut self,
        preset_rejections: &BTreeMap<ResourceKey, Vec<String>>,
    ) -> Vec<ResourceStatus> {
        for (key, reasons) in preset_rejections {
            let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
                resource_version: None,
                errors: Vec::new(),
                warnings: Vec::new(),
                served: Served::Current,
                missing: None,
                gateway_api: None,
            });
            let mut errors = reasons.clone();
            errors.append(&mut entry.errors);
            entry.errors = errors;
        }
        let mut statuses: Vec<ResourceStatus> = self
            .entries
            .into_iter()
            .map(|(key, entry)| {
                let suffix = match &entry.served {
                    Served::Current => String::new(),
                    Served::Previous(origin) => {
                        format!("; the last accepted version (read from {origin}) is still served")
                    }
                    Served::Nothing => {
                        "; no version of it was ever accepted, so it is not served".to_owned()
                    }
                };
                // A Gateway API status with a refusal (`Accepted=False`) or a problem
                // (`ResolvedRefs=False`, ...) is summarised too; the translator also reports its
                // messages as errors and warnings, so this only guards against a missed one.
                let api_state = entry
                    .gateway_api
                    .as_ref()
                    .map_or(State::Accepted, super::gateway_api::summary);
                let state = if entry.missing.is_some() {
                    State::Pending
                } else if !entry.errors.is_empty() || api_state == State::Rejected {
                    State::Rejected
                } else if !entry.warnings.is_empty() || api_state == State::Warning {
                    State::Warning
                } else {
                    State::Accepted
                };
                let mut reasons: Vec<String> = entry
                    .errors
                    .into_iter()
                    .map(|error| format!("{error}{suffix}"))
                    .collect();
                reasons.extend(entry.warnings);
                reasons.extend(entry.missing);
                ResourceStatus {
                    resource: key.to_string(),
                    state,
                    reasons,
                    resource_version: entry.resource_version,
                    gateway_api: entry.gateway_api,
                }
            })
            .collect();
        if !self.table_errors.is_empty() {
            statuses.push(ResourceStatus {
                resource: "RouteTable".to_owned(),
                state: State::Rejected,
                reasons: self.table_errors,
                resource_version: None,
                gateway_api: None,
            });
        }
        statuses
    }
}
