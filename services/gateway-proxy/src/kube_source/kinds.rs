//! The kinds each role reads from the API server, and how to address them.

use kube::core::{ApiResource, DynamicObject};
use model::{ResourceKey, ResourceKind};
use routing::Role;

/// Where the CRDs of the Gloo kinds are kept, for the "install the CRDs" hint.
pub(crate) const GLOO_CRDS: &str = "../shared/schemas/gloo/";
/// Where the CRDs of the App Mesh kinds are kept.
pub(crate) const APPMESH_CRDS: &str = "../shared/schemas/appmesh/";
/// Where the Gateway API CRDs are kept (`standard/`, and `experimental/` for HTTPRoute's `retry`).
pub(crate) const GATEWAY_API_CRDS: &str = "../shared/schemas/gateway-api/";

/// The status the ingress writes back onto an object, in its API's own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusStyle {
    /// Nothing is written (Services, slices, App Mesh kinds, namespaces).
    None,
    /// Gloo's `status.statuses.<writer namespace>` entry.
    Gloo,
    /// The Gateway API `status` (conditions; a route's `parents` entries for this controller).
    GatewayApi,
}

/// One kind a role watches.
#[derive(Debug, Clone)]
pub(crate) struct WatchedKind {
    /// The model's name for the kind.
    pub(crate) kind: ResourceKind,
    /// Group, version, kind and plural, as the API server addresses them.
    pub(crate) api: ApiResource,
    /// Whether objects live in namespaces (Mesh does not).
    pub(crate) namespaced: bool,
    /// Which status the ingress gateway writes back onto objects of this kind.
    pub(crate) status: StatusStyle,
    /// The directory holding the kind's CRD; `None` for built-in kinds.
    pub(crate) crd_dir: Option<&'static str>,
}

impl WatchedKind {
    fn new<K>(kind: ResourceKind, status: StatusStyle, crd_dir: Option<&'static str>) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let namespaced = kind.is_namespaced() == Some(true);
        Self {
            kind,
            api: ApiResource::erase::<K>(&()),
            namespaced,
            status,
            crd_dir,
        }
    }

    /// The model key of an object of this kind.
    pub(crate) fn key(&self, object: &DynamicObject) -> ResourceKey {
        ResourceKey::new(
            self.kind.clone(),
            object.metadata.namespace.as_deref(),
            object.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// `virtualservices.gateway.solo.io` (or `services` for the core group), as RBAC rules and
    /// `kubectl get` name the resource.
    pub(crate) fn resource_name(&self) -> String {
        if self.api.group.is_empty() {
            self.api.plural.clone()
        } else {
            format!("{}.{}", self.api.plural, self.api.group)
        }
    }
}

/// HTTPRoutes, read by the ingress and the GAMMA sidecar, which both write their statuses.
fn http_routes() -> WatchedKind {
    WatchedKind::new::<model::gateway_api::HTTPRoute>(
        ResourceKind::HttpRoute,
        StatusStyle::GatewayApi,
        Some(GATEWAY_API_CRDS),
    )
}

/// ReferenceGrants, read by the ingress and the GAMMA sidecar for cross-namespace backendRefs.
fn reference_grants() -> WatchedKind {
    WatchedKind::new::<model::gateway_api::ReferenceGrant>(
        ResourceKind::ReferenceGrant,
        StatusStyle::None,
        Some(GATEWAY_API_CRDS),
    )
}

/// The kinds the translator reads for `role`.
pub(crate) fn for_role(role: &Role) -> Vec<WatchedKind> {
    use model::k8s::{EndpointSlice, Service};
    let mut kinds = match role {
        Role::Ingress { .. } => vec![
            WatchedKind::new::<model::gloo::VirtualService>(
                ResourceKind::GlooVirtualService,
                StatusStyle::Gloo,
                Some(GLOO_CRDS),
            ),
            WatchedKind::new::<model::gloo::Upstream>(
                ResourceKind::Upstream,
                StatusStyle::Gloo,
                Some(GLOO_CRDS),
            ),
            WatchedKind::new::<model::gloo::UpstreamGroup>(
                ResourceKind::UpstreamGroup,
                StatusStyle::Gloo,
                Some(GLOO_CRDS),
            ),
            WatchedKind::new::<model::gateway_api::GatewayClass>(
                ResourceKind::GatewayClass,
                StatusStyle::GatewayApi,
                Some(GATEWAY_API_CRDS),
            ),
            WatchedKind::new::<model::gateway_api::Gateway>(
                ResourceKind::Gateway,
                StatusStyle::GatewayApi,
                Some(GATEWAY_API_CRDS),
            ),
            http_routes(),
            reference_grants(),
            // allowedRoutes.namespaces.selector reads namespace labels.
            WatchedKind::new::<model::k8s::Namespace>(
                ResourceKind::Namespace,
                StatusStyle::None,
                None,
            ),
        ],
        Role::MeshSidecar { .. } => vec![http_routes(), reference_grants()],
        Role::Sidecar { .. } => vec![
            WatchedKind::new::<model::appmesh::Mesh>(
                ResourceKind::Mesh,
                StatusStyle::None,
                Some(APPMESH_CRDS),
            ),
            WatchedKind::new::<model::appmesh::VirtualNode>(
                ResourceKind::VirtualNode,
                StatusStyle::None,
                Some(APPMESH_CRDS),
            ),
            WatchedKind::new::<model::appmesh::VirtualService>(
                ResourceKind::AppMeshVirtualService,
                StatusStyle::None,
                Some(APPMESH_CRDS),
            ),
            WatchedKind::new::<model::appmesh::VirtualRouter>(
                ResourceKind::VirtualRouter,
                StatusStyle::None,
                Some(APPMESH_CRDS),
            ),
            // A Mesh's namespaceSelector reads namespace labels: without them no Mesh applies
            // and the sidecar fails closed.
            WatchedKind::new::<model::k8s::Namespace>(
                ResourceKind::Namespace,
                StatusStyle::None,
                None,
            ),
        ],
    };
    kinds.push(WatchedKind::new::<Service>(
        ResourceKind::Service,
        StatusStyle::None,
        None,
    ));
    kinds.push(WatchedKind::new::<EndpointSlice>(
        ResourceKind::EndpointSlice,
        StatusStyle::None,
        None,
    ));
    kinds
}

/// The watched kind `kind` of `kinds` (tests look kinds up by name, not by position).
#[cfg(test)]
pub(crate) fn find(kinds: &[WatchedKind], kind: ResourceKind) -> &WatchedKind {
    kinds
        .iter()
        .find(|watched| watched.kind == kind)
        .expect("the role watches the kind")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(role: &Role) -> Vec<String> {
        for_role(role)
            .iter()
            .map(|kind| format!("{} {}", kind.api.api_version, kind.resource_name()))
            .collect()
    }

    #[test]
    fn ingress_reads_gloo_kinds_services_and_slices() {
        assert_eq!(
            names(&Role::ingress()),
            [
                "gateway.solo.io/v1 virtualservices.gateway.solo.io",
                "gloo.solo.io/v1 upstreams.gloo.solo.io",
                "gloo.solo.io/v1 upstreamgroups.gloo.solo.io",
                "gateway.networking.k8s.io/v1 gatewayclasses.gateway.networking.k8s.io",
                "gateway.networking.k8s.io/v1 gateways.gateway.networking.k8s.io",
                "gateway.networking.k8s.io/v1 httproutes.gateway.networking.k8s.io",
                "gateway.networking.k8s.io/v1 referencegrants.gateway.networking.k8s.io",
                "v1 namespaces",
                "v1 services",
                "discovery.k8s.io/v1 endpointslices.discovery.k8s.io",
            ]
        );
        let kinds = for_role(&Role::ingress());
        let styles: Vec<StatusStyle> = kinds.iter().map(|kind| kind.status).collect();
        use StatusStyle::{GatewayApi, Gloo, None};
        assert_eq!(
            styles,
            [
                Gloo, Gloo, Gloo, GatewayApi, GatewayApi, GatewayApi, None, None, None, None
            ]
        );
        // GatewayClass and Namespace are cluster scoped.
        assert!(!kinds[3].namespaced && !kinds[7].namespaced);
        assert!(kinds[4].namespaced && kinds[5].namespaced && kinds[6].namespaced);
    }

    #[test]
    fn the_mesh_sidecar_reads_routes_grants_services_and_slices() {
        let role = Role::MeshSidecar {
            namespace: "appmesh-demo".into(),
        };
        assert_eq!(
            names(&role),
            [
                "gateway.networking.k8s.io/v1 httproutes.gateway.networking.k8s.io",
                "gateway.networking.k8s.io/v1 referencegrants.gateway.networking.k8s.io",
                "v1 services",
                "discovery.k8s.io/v1 endpointslices.discovery.k8s.io",
            ]
        );
    }

    #[test]
    fn sidecar_reads_app_mesh_kinds_and_mesh_is_cluster_scoped() {
        let role = Role::Sidecar {
            node: "colorteller-black".into(),
            namespace: "appmesh-demo".into(),
        };
        assert_eq!(
            names(&role),
            [
                "appmesh.k8s.aws/v1beta2 meshes.appmesh.k8s.aws",
                "appmesh.k8s.aws/v1beta2 virtualnodes.appmesh.k8s.aws",
                "appmesh.k8s.aws/v1beta2 virtualservices.appmesh.k8s.aws",
                "appmesh.k8s.aws/v1beta2 virtualrouters.appmesh.k8s.aws",
                "v1 namespaces",
                "v1 services",
                "discovery.k8s.io/v1 endpointslices.discovery.k8s.io",
            ]
        );
        let kinds = for_role(&role);
        // Meshes and namespaces are cluster scoped.
        assert!(!kinds[0].namespaced && !kinds[4].namespaced);
        assert!(kinds[1..4].iter().all(|kind| kind.namespaced));
        assert!(kinds[5..].iter().all(|kind| kind.namespaced));
        assert!(kinds.iter().all(|kind| kind.status == StatusStyle::None));
    }

    #[test]
    fn keys_follow_the_model_namespace_rules() {
        let kinds = for_role(&Role::Sidecar {
            node: "n".into(),
            namespace: "ns".into(),
        });
        let mut mesh = DynamicObject::new("color-mesh", &kinds[0].api);
        mesh.metadata.namespace = Some("ignored".into());
        assert_eq!(kinds[0].key(&mesh).to_string(), "Mesh color-mesh");
        let node = DynamicObject::new("colorteller", &kinds[1].api).within("appmesh-demo");
        assert_eq!(
            kinds[1].key(&node).to_string(),
            "VirtualNode appmesh-demo/colorteller"
        );
    }
}
