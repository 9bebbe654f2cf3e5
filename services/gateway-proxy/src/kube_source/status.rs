//! Writes the ingress translation's verdicts back onto the objects: onto Gloo objects the way
//! Gloo does, so `glooctl get vs` and `kubectl get vs -o yaml` show them
//! (`status.statuses.<writer namespace> = {state, reason, reportedBy: gateway}`), and onto
//! GatewayClasses, Gateways and HTTPRoutes the status the Gateway API spec defines
//! (`gateway_api_status`).

use std::collections::{HashMap, HashSet};

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use model::ResourceKind;
use model::gloo::NamespacedStatus;
use routing::ResourceStatus;
use serde_json::{Value, json};

use super::gateway_api_status::{self, ParentKind};
use super::kinds::StatusStyle;
use super::watch::Watched;
use crate::snapshot::Snapshot;

/// Gloo's gateway translator reports as `gateway`; `glooctl` shows statuses by reporter.
pub(crate) const REPORTED_BY: &str = "gateway";
/// Shown in `metadata.managedFields` for the status this gateway writes.
const FIELD_MANAGER: &str = "gateway-proxy";

/// The status entry the gateway wants an object to carry for a translation verdict.
pub(crate) fn desired_status(status: &ResourceStatus) -> NamespacedStatus {
    NamespacedStatus {
        state: status.state,
        reason: (!status.reasons.is_empty()).then(|| status.reasons.join("\n")),
        reported_by: Some(REPORTED_BY.to_owned()),
    }
}

/// The merge patch that sets the writer namespace's entry and nothing else (other reporters'
/// entries stay). An absent reason is sent as `null`, which removes a stale one.
pub(crate) fn patch_body(writer_namespace: &str, status: &NamespacedStatus) -> Value {
    json!({
        "status": {
            "statuses": {
                writer_namespace: {
                    "state": status.state,
                    "reason": status.reason,
                    "reportedBy": status.reported_by,
                }
            }
        }
    })
}

/// The writer namespace's entry the object carries now, if it reads as one.
pub(crate) fn current_status(
    object: &DynamicObject,
    writer_namespace: &str,
) -> Option<NamespacedStatus> {
    let entry = object
        .data
        .get("status")?
        .get("statuses")?
        .get(writer_namespace)?;
    serde_json::from_value(entry.clone()).ok()
}

/// Object identity for the bookkeeping below.
type ObjectId = (ResourceKind, String, String);

/// A patch that succeeded but whose watch event may not have reached the store yet.
#[derive(Debug)]
struct Written {
    /// The patch body, without condition times (they differ between two writes of one status).
    status: Value,
    /// The resourceVersion the store showed when the patch was sent.
    resource_version_before: Option<String>,
}

/// Reconciles Gloo statuses after each reload. One instance runs on one task, so patches are
/// sequential and never block serving; a failed patch is logged and tried again after the next
/// reload.
pub(crate) struct StatusWriter {
    client: Client,
    writer_namespace: String,
    /// Which HTTPRoute parents this writer reports on.
    parents: ParentKind,
    /// Write only objects of this namespace (a GAMMA sidecar writes its own namespace's routes;
    /// every sidecar computes the same statuses, so one namespace's sidecars share the writes).
    only_namespace: Option<String>,
    targets: Vec<Watched>,
    written: HashMap<ObjectId, Written>,
    /// Kinds whose CRD declares no status subresource: status is then an ordinary field of the
    /// object and is patched on the object itself.
    without_status_subresource: HashSet<ResourceKind>,
}

impl StatusWriter {
    pub(crate) fn new(
        client: Client,
        writer_namespace: String,
        parents: ParentKind,
        only_namespace: Option<String>,
        watched: &[Watched],
    ) -> Self {
        Self {
            client,
            writer_namespace,
            parents,
            only_namespace,
            targets: watched
                .iter()
                .filter(|watched| watched.kind.status != StatusStyle::None)
                .cloned()
                .collect(),
            written: HashMap::new(),
            without_status_subresource: HashSet::new(),
        }
    }

    /// The merge patch that gives `object` the verdict, or `None` when it carries it already.
    fn desired_patch(
        &self,
        style: StatusStyle,
        object: &DynamicObject,
        verdict: &ResourceStatus,
    ) -> Option<Value> {
        match style {
            StatusStyle::None => None,
            StatusStyle::Gloo => {
                let desired = desired_status(verdict);
                (current_status(object, &self.writer_namespace).as_ref() != Some(&desired))
                    .then(|| patch_body(&self.writer_namespace, &desired))
            }
            StatusStyle::GatewayApi => {
                let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                gateway_api_status::desired_patch(
                    object,
                    verdict.gateway_api.as_ref()?,
                    self.parents,
                    &now.to_string(),
                )
            }
        }
    }

    /// Patches every watched object whose status differs from the snapshot's verdict.
    pub(crate) async fn reconcile(&mut self, snapshot: &Snapshot) {
        let verdicts: HashMap<&str, &ResourceStatus> = snapshot
            .statuses
            .iter()
            .map(|status| (status.resource.as_str(), status))
            .collect();
        let mut still_present = HashSet::new();
        let targets = self.targets.clone();
        for watched in &targets {
            for object in watched.store.state() {
                let key = watched.kind.key(&object);
                let Some(verdict) = verdicts.get(key.to_string().as_str()) else {
                    continue;
                };
                let Some(name) = object.metadata.name.clone() else {
                    continue;
                };
                if self
                    .only_namespace
                    .as_ref()
                    .is_some_and(|only| key.namespace.as_ref() != Some(only))
                {
                    continue;
                }
                // Cluster-scoped kinds (GatewayClass) have no namespace.
                let id = (
                    watched.kind.kind.clone(),
                    key.namespace.clone().unwrap_or_default(),
                    name,
                );
                still_present.insert(id.clone());
                let Some(patch) = self.desired_patch(watched.kind.status, &object, verdict) else {
                    self.written.remove(&id);
                    continue;
                };
                let desired = gateway_api_status::without_times(&patch);
                // Our own patch, not yet seen by the watch: writing again would only echo it.
                if self.written.get(&id).is_some_and(|written| {
                    written.status == desired
                        && written.resource_version_before == object.metadata.resource_version
                }) {
                    continue;
                }
                match self.patch(watched, &id, patch).await {
                    Ok(()) => {
                        tracing::info!(resource = %key, state = %verdict.state, "status written");
                        self.written.insert(
                            id,
                            Written {
                                status: desired,
                                resource_version_before: object.metadata.resource_version.clone(),
                            },
                        );
                    }
                    Err(error) => {
                        self.written.remove(&id);
                        tracing::warn!(
                            resource = %key,
                            %error,
                            "writing the status failed; it is written again after the next reload"
                        );
                    }
                }
            }
        }
        self.written.retain(|id, _| still_present.contains(id));
    }

    async fn patch(
        &mut self,
        watched: &Watched,
        (kind, namespace, name): &ObjectId,
        body: Value,
    ) -> Result<(), kube::Error> {
        let api: Api<DynamicObject> = if watched.kind.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &watched.kind.api)
        } else {
            Api::all_with(self.client.clone(), &watched.kind.api)
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let body = Patch::Merge(body);
        if self.without_status_subresource.contains(kind) {
            return api.patch(name, &params, &body).await.map(drop);
        }
        match api.patch_status(name, &params, &body).await {
            Err(kube::Error::Api(status)) if status.code == 404 || status.is_not_found() => {
                // Either the object is gone (the watch will say so) or its CRD has no status
                // subresource, as the CRDs solo-kit generates do not: then status is patched on
                // the object itself.
                api.patch(name, &params, &body).await?;
                tracing::info!(
                    kind = %kind,
                    "the CRD has no status subresource; statuses are patched on the objects"
                );
                self.without_status_subresource.insert(kind.clone());
                Ok(())
            }
            result => result.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use model::gloo::State;

    use super::*;

    fn verdict(state: State, reasons: &[&str]) -> ResourceStatus {
        ResourceStatus {
            resource: "VirtualService gloo-system/colorgateway".into(),
            state,
            reasons: reasons.iter().map(|reason| (*reason).to_owned()).collect(),
            resource_version: Some("3".into()),
            gateway_api: None,
        }
    }

    #[test]
    fn accepted_has_no_reason_and_the_patch_clears_a_stale_one() {
        let desired = desired_status(&verdict(State::Accepted, &[]));
        assert_eq!(
            patch_body("gloo-system", &desired),
            json!({"status": {"statuses": {"gloo-system": {
                "state": "Accepted", "reason": null, "reportedBy": "gateway"
            }}}})
        );
    }

    #[test]
    fn reasons_are_joined_one_per_line() {
        let desired = desired_status(&verdict(State::Warning, &["a: first", "b: second"]));
        assert_eq!(desired.state, State::Warning);
        assert_eq!(desired.reason.as_deref(), Some("a: first\nb: second"));
        assert_eq!(
            patch_body("custom-ns", &desired)["status"]["statuses"]["custom-ns"]["reason"],
            "a: first\nb: second"
        );
    }

    #[test]
    fn the_current_entry_is_read_from_the_writer_namespace_only() {
        let object: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "colorgateway", "namespace": "gloo-system"},
            "status": {"statuses": {
                "gloo-system": {"state": "Rejected", "reason": "bad", "reportedBy": "gateway"},
                "other": {"state": 2},
            }},
        }))
        .expect("object");
        assert_eq!(
            current_status(&object, "gloo-system"),
            Some(NamespacedStatus {
                state: State::Rejected,
                reason: Some("bad".into()),
                reported_by: Some("gateway".into()),
            })
        );
        assert_eq!(
            current_status(&object, "other"),
            None,
            "numeric states are not ours"
        );
        assert_eq!(current_status(&object, "absent"), None);
    }
}
