//! A keyed collection of loaded resources, with `kubectl apply` replacement semantics.

use std::collections::BTreeMap;

use crate::appmesh;
use crate::gloo;
use crate::k8s::{Deployment, EndpointSlice, Namespace, Service};
use crate::load::{Loaded, Resource, ResourceKey};

/// Loaded resources keyed by kind, namespace and name, iterated in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSet {
    resources: BTreeMap<ResourceKey, Loaded>,
}

macro_rules! typed_iter {
    ($(#[$doc:meta] $method:ident => $variant:ident : $ty:ty;)*) => {
        $(
            #[$doc]
            pub fn $method(&self) -> impl Iterator<Item = (&Loaded, &$ty)> {
                self.resources.values().filter_map(|loaded| match &loaded.resource {
                    Resource::$variant(typed) => Some((loaded, &**typed)),
                    _ => None,
                })
            }
        )*
    };
}

impl ResourceSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts in order, later documents replacing earlier ones with the same key.
    pub fn from_loaded(loaded: impl IntoIterator<Item = Loaded>) -> Self {
        let mut set = Self::new();
        for item in loaded {
            set.insert(item);
        }
        set
    }

    /// Inserts a resource, returning the one it replaced (same kind, namespace and name).
    pub fn insert(&mut self, loaded: Loaded) -> Option<Loaded> {
        self.resources.insert(loaded.resource.key(), loaded)
    }

    /// Removes a resource.
    pub fn remove(&mut self, key: &ResourceKey) -> Option<Loaded> {
        self.resources.remove(key)
    }

    /// Looks a resource up.
    pub fn get(&self, key: &ResourceKey) -> Option<&Loaded> {
        self.resources.get(key)
    }

    /// Whether a key is present.
    pub fn contains(&self, key: &ResourceKey) -> bool {
        self.resources.contains_key(key)
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// All resources in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ResourceKey, &Loaded)> {
        self.resources.iter()
    }

    typed_iter! {
        /// Gloo virtual services.
        gloo_virtual_services => GlooVirtualService: gloo::VirtualService;
        /// Gloo upstreams.
        upstreams => Upstream: gloo::Upstream;
        /// Gloo upstream groups.
        upstream_groups => UpstreamGroup: gloo::UpstreamGroup;
        /// App Mesh meshes.
        meshes => Mesh: appmesh::Mesh;
        /// App Mesh virtual nodes.
        virtual_nodes => VirtualNode: appmesh::VirtualNode;
        /// App Mesh virtual services.
        appmesh_virtual_services => AppMeshVirtualService: appmesh::VirtualService;
        /// App Mesh virtual routers.
        virtual_routers => VirtualRouter: appmesh::VirtualRouter;
        /// Gateway API gateway classes.
        gateway_classes => GatewayClass: crate::gateway_api::GatewayClass;
        /// Gateway API gateways.
        gateways => Gateway: crate::gateway_api::Gateway;
        /// Gateway API HTTP routes.
        http_routes => HttpRoute: crate::gateway_api::HTTPRoute;
        /// Gateway API reference grants.
        reference_grants => ReferenceGrant: crate::gateway_api::ReferenceGrant;
        /// Kubernetes services.
        services => Service: Service;
        /// Kubernetes endpoint slices.
        endpoint_slices => EndpointSlice: EndpointSlice;
        /// Kubernetes deployments.
        deployments => Deployment: Deployment;
        /// Kubernetes namespaces.
        namespaces => Namespace: Namespace;
        /// Kubernetes config maps.
        config_maps => ConfigMap: crate::k8s::ConfigMap;
    }
}

impl<'a> IntoIterator for &'a ResourceSet {
    type Item = (&'a ResourceKey, &'a Loaded);
    type IntoIter = std::collections::btree_map::Iter<'a, ResourceKey, Loaded>;

    fn into_iter(self) -> Self::IntoIter {
        self.resources.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load::{ResourceKind, parse_documents};

    const TWO_VERSIONS: &str = "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: upstreamgroup-gateway, namespace: gloo-system}\nspec:\n  destinations:\n  - destination: {upstream: {name: a, namespace: gloo-system}}\n    weight: 80\n---\napiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: upstreamgroup-gateway, namespace: gloo-system}\nspec:\n  destinations:\n  - destination: {upstream: {name: a, namespace: gloo-system}}\n    weight: 50\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: gloo-system}\n";

    #[test]
    fn later_documents_replace_earlier_ones() {
        let parsed = parse_documents(TWO_VERSIONS, Path::new("ug.yaml"));
        assert!(parsed.errors.is_empty());
        let set = ResourceSet::from_loaded(parsed.resources);
        assert_eq!(set.len(), 2);
        let groups: Vec<_> = set.upstream_groups().collect();
        assert_eq!(groups.len(), 1);
        let (loaded, group) = groups[0];
        assert_eq!(group.spec.destinations[0].weight, Some(50));
        assert_eq!(loaded.origin.line, 9);
        assert_eq!(set.namespaces().count(), 1);
        assert_eq!(set.upstreams().count(), 0);
    }

    #[test]
    fn insert_get_remove() {
        let mut parsed = parse_documents(TWO_VERSIONS, Path::new("ug.yaml")).resources;
        let mut set = ResourceSet::new();
        let second = parsed.remove(1);
        let first = parsed.remove(0);
        assert!(set.insert(second.clone()).is_none());
        let replaced = set.insert(first.clone()).unwrap();
        assert_eq!(replaced, second);
        let key = ResourceKey::new(
            ResourceKind::UpstreamGroup,
            Some("gloo-system"),
            "upstreamgroup-gateway",
        );
        assert_eq!(set.get(&key), Some(&first));
        assert_eq!(set.remove(&key), Some(first));
        assert!(set.is_empty());
    }
}
