//! What the caller chooses about the output: the GatewayClass, where the Gateway lives, and the
//! namespace label that puts workloads in the GAMMA mesh.

use model::gloo::GLOO_NAMESPACE;

/// colormesh's own GatewayClass (`manifests/gateway-api/gateway/gateway.yaml`), served by the
/// controller `model::gateway_api::CONTROLLER_NAME`.
pub const DEFAULT_GATEWAY_CLASS: &str = "colormesh";
/// The name of Gloo's default proxy, which every VirtualService binds to unless told otherwise.
pub const DEFAULT_GATEWAY_NAME: &str = "gateway-proxy";
/// The port Gloo's default HTTP gateway binds (`gateway-proxy`, `bindPort: 8080`).
pub const DEFAULT_LISTENER_PORT: u16 = 8080;
/// The label that puts a namespace's pods in colormesh's GAMMA mesh (the local backend starts a
/// mesh sidecar for them; `manifests/gateway-api/colorapp/namespace.yaml`).
pub const DEFAULT_MESH_LABEL: (&str, &str) = ("colormesh.dev/mesh", "gamma");

/// Choices about the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `spec.gatewayClassName` of the Gateway. With [`DEFAULT_GATEWAY_CLASS`], the GatewayClass
    /// itself is written too; another class is the implementation's to install.
    pub gateway_class: String,
    /// The Gateway's name (one Gateway per Gloo proxy).
    pub gateway_name: String,
    /// The Gateway's namespace: the proxy's (`gloo-system`) by default.
    pub gateway_namespace: String,
    /// The HTTP listener's port.
    pub listener_port: u16,
    /// The label (key, value) written on every namespace of the mesh.
    pub mesh_label: (String, String),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            gateway_class: DEFAULT_GATEWAY_CLASS.to_owned(),
            gateway_name: DEFAULT_GATEWAY_NAME.to_owned(),
            gateway_namespace: GLOO_NAMESPACE.to_owned(),
            listener_port: DEFAULT_LISTENER_PORT,
            mesh_label: (
                DEFAULT_MESH_LABEL.0.to_owned(),
                DEFAULT_MESH_LABEL.1.to_owned(),
            ),
        }
    }
}
