//! glooctl and kubectl as the harness emulates them ([`crate::glooctl`], [`crate::kubectl`]),
//! served from the API server's objects: `--backend apiserver` installs neither CLI (this
//! machine must not have its kubectl replaced, and glooctl is retired with Gloo Edge), and the
//! emulations print the same tables the local backend checks.
//!
//! A command runs against an [`ApiSnapshot`] read just before it: every object of the kinds it
//! can touch, with the `status` its controller wrote. What glooctl writes (`create
//! virtualservice`, `add route`) is collected as [`GlooWrite`]s, visible to the rest of the same
//! command, and sent to the API server afterwards by the backend.

use std::collections::BTreeMap;
use std::time::SystemTime;

use model::gloo::{GlooStatus, State};
use model::{Resource, ResourceKey, ResourceKind};
use serde_json::Value;

use crate::glooctl::{GlooKind, GlooStore, GlooctlError, MemoryStore};
use crate::kubectl::KubectlStore;

/// The kinds the glooctl emulation reads and writes.
pub(crate) const GLOO_KINDS: [ResourceKind; 3] = [
    ResourceKind::GlooVirtualService,
    ResourceKind::Upstream,
    ResourceKind::UpstreamGroup,
];

/// The kinds the kubectl emulation lists.
pub(crate) const KUBECTL_KINDS: [ResourceKind; 3] = [
    ResourceKind::GatewayClass,
    ResourceKind::Gateway,
    ResourceKind::HttpRoute,
];

/// One object as the API server served it: the model's reading of it and its `status`.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub(crate) resource: Resource,
    pub(crate) status: Option<Value>,
}

/// The objects of some kinds, read from the API server for one command.
#[derive(Debug, Default)]
pub(crate) struct ApiSnapshot {
    objects: BTreeMap<ResourceKey, Observed>,
}

impl ApiSnapshot {
    pub(crate) fn insert(&mut self, observed: Observed) {
        self.objects.insert(observed.resource.key(), observed);
    }

    fn of_kind<'a>(
        &'a self,
        kind: &'a ResourceKind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Observed> + 'a {
        self.objects.iter().filter_map(move |(key, observed)| {
            let in_scope = namespace.is_none()
                || key.namespace.is_none()
                || key.namespace.as_deref() == namespace;
            (key.kind == *kind && in_scope).then_some(observed)
        })
    }
}

impl KubectlStore for ApiSnapshot {
    fn list(&self, kind: &ResourceKind, namespace: Option<&str>) -> Vec<Resource> {
        self.of_kind(kind, namespace)
            .map(|observed| observed.resource.clone())
            .collect()
    }

    fn status(&self, key: &ResourceKey) -> Option<Value> {
        self.objects.get(key).and_then(|o| o.status.clone())
    }

    fn addresses(&self, key: &ResourceKey) -> Vec<String> {
        self.status(key)
            .and_then(|status| status.get("addresses").cloned())
            .and_then(|addresses| addresses.as_array().cloned())
            .into_iter()
            .flatten()
            .filter_map(|address| address.get("value")?.as_str().map(str::to_owned))
            .collect()
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A change glooctl made, to be sent to the API server.
#[derive(Debug, Clone)]
pub(crate) enum GlooWrite {
    Apply(Resource),
    Delete(ResourceKey),
}

/// glooctl's view of the cluster: the snapshot's Gloo objects in glooctl's own
/// [`MemoryStore`], with the state the gateway wrote into each one's status for the gateway
/// namespace, and the proxy's URL. Every write is also recorded, to be sent afterwards.
#[derive(Debug)]
pub(crate) struct RecordingGlooStore {
    store: MemoryStore,
    pub(crate) writes: Vec<GlooWrite>,
}

impl RecordingGlooStore {
    pub(crate) fn new(
        snapshot: &ApiSnapshot,
        gateway_namespace: &str,
        proxy_url: Option<String>,
    ) -> Self {
        let mut store = MemoryStore::new();
        store.proxy_url = proxy_url;
        for observed in snapshot.objects.values() {
            let resource = &observed.resource;
            let Some(kind) = GlooKind::of(&resource.kind()) else {
                continue;
            };
            let state = observed
                .status
                .clone()
                .and_then(|status| serde_json::from_value::<GlooStatus>(status).ok())
                .and_then(|status| status.get(gateway_namespace).map(|entry| entry.state));
            let key = resource.key();
            if let (Some(state), Some(namespace)) = (state, key.namespace.as_deref()) {
                store.set_status(kind, namespace, &key.name, state);
            }
            // Snapshot objects are Gloo kinds by construction, which MemoryStore accepts.
            let _ = store.apply(resource.clone());
        }
        Self {
            store,
            writes: Vec::new(),
        }
    }
}

impl GlooStore for RecordingGlooStore {
    fn list(&self, kind: GlooKind, namespace: &str) -> Vec<Resource> {
        self.store.list(kind, namespace)
    }

    fn get(&self, kind: GlooKind, namespace: &str, name: &str) -> Option<Resource> {
        self.store.get(kind, namespace, name)
    }

    fn apply(&mut self, resource: Resource) -> Result<(), GlooctlError> {
        if let Some(kind) = GlooKind::of(&resource.kind())
            && let key = resource.key()
            && let Some(namespace) = key.namespace.as_deref()
        {
            // What the gateway said of the previous version no longer applies.
            self.store
                .set_status(kind, namespace, &key.name, State::Pending);
        }
        self.store.apply(resource.clone())?;
        self.writes.push(GlooWrite::Apply(resource));
        Ok(())
    }

    fn delete(
        &mut self,
        kind: GlooKind,
        namespace: &str,
        name: &str,
    ) -> Result<bool, GlooctlError> {
        let existed = self.store.delete(kind, namespace, name)?;
        if existed {
            let key = ResourceKey::new(kind.resource_kind(), Some(namespace), name);
            self.writes.push(GlooWrite::Delete(key));
        }
        Ok(existed)
    }

    fn status(&self, kind: GlooKind, namespace: &str, name: &str) -> State {
        self.store.status(kind, namespace, name)
    }

    fn proxy_url(&self) -> Result<String, GlooctlError> {
        self.store
            .proxy_url
            .clone()
            .ok_or(GlooctlError::ProxyNotRunning {
                detail: Some("no ready gateway-proxy pod"),
            })
    }
}

/// The JSON sent for a glooctl write: the resource as a manifest, with only the metadata a
/// client sets (server-side apply refuses `managedFields` and a foreign `uid`).
pub(crate) fn manifest_of(resource: &Resource) -> Value {
    let mut object = serde_json::to_value(resource).unwrap_or(Value::Null);
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.retain(|field, _| {
            matches!(
                field.as_str(),
                "name" | "namespace" | "labels" | "annotations" | "resourceVersion"
            )
        });
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn observed(object: Value) -> Observed {
        let status = object.get("status").cloned();
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let loaded =
            model::decode_api_object(object, &api_version, &kind, Path::new("kubernetes://t"))
                .expect("decodes");
        Observed {
            resource: loaded.resource,
            status,
        }
    }

    #[test]
    fn glooctl_reads_states_from_the_gateway_namespace_entry_and_writes_are_collected() {
        let mut snapshot = ApiSnapshot::default();
        snapshot.insert(observed(json!({
            "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
            "metadata": {"name": "colorgateway", "namespace": "gloo-system",
                         "uid": "u-1", "resourceVersion": "41", "managedFields": []},
            "spec": {"virtualHost": {"domains": ["*"]}},
            "status": {"statuses": {"gloo-system": {"state": "Accepted", "reportedBy": "gateway"}}},
        })));
        let mut store = RecordingGlooStore::new(
            &snapshot,
            "gloo-system",
            Some("http://10.244.3.2:8080".into()),
        );
        assert_eq!(
            store.status(GlooKind::VirtualService, "gloo-system", "colorgateway"),
            State::Accepted
        );
        assert_eq!(
            store.status(GlooKind::VirtualService, "elsewhere", "colorgateway"),
            State::Pending
        );
        let resource = store
            .get(GlooKind::VirtualService, "gloo-system", "colorgateway")
            .expect("listed");
        store.apply(resource.clone()).expect("applies");
        assert_eq!(
            store.status(GlooKind::VirtualService, "gloo-system", "colorgateway"),
            State::Pending,
            "a new version has no verdict yet"
        );
        assert!(
            store
                .delete(GlooKind::Upstream, "gloo-system", "absent")
                .is_ok_and(|existed| !existed)
        );
        assert_eq!(store.writes.len(), 1);
        let manifest = manifest_of(&resource);
        assert_eq!(
            manifest["metadata"],
            json!({"name": "colorgateway", "namespace": "gloo-system", "resourceVersion": "41"})
        );
    }

    #[test]
    fn kubectl_gets_gateway_addresses_from_status() {
        let mut snapshot = ApiSnapshot::default();
        snapshot.insert(observed(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "colormesh", "namespace": "gloo-system"},
            "spec": {"gatewayClassName": "colormesh",
                     "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]},
            "status": {"addresses": [{"type": "IPAddress", "value": "10.244.3.2"}]},
        })));
        let key = ResourceKey::new(ResourceKind::Gateway, Some("gloo-system"), "colormesh");
        assert_eq!(snapshot.addresses(&key), ["10.244.3.2"]);
        assert_eq!(
            KubectlStore::list(&snapshot, &ResourceKind::Gateway, None).len(),
            1
        );
        assert!(KubectlStore::list(&snapshot, &ResourceKind::HttpRoute, None).is_empty());
    }
}
