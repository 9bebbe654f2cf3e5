//! The walkthrough's manifests, and the small resources a test writes beside them in place of
//! what a cluster would make (EndpointSlices, discovered Upstreams).

use std::path::PathBuf;

use crate::paths::workspace_root;

/// The repository's `manifests/` folder.
pub fn manifests_dir() -> PathBuf {
    workspace_root().join("manifests")
}

/// The text of `manifests/<relative>`.
pub fn manifest(relative: &str) -> String {
    let full = manifests_dir().join(relative);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

/// An EndpointSlice of `service` with one ready endpoint on loopback.
pub fn endpoint_slice(service: &str, namespace: &str, port_name: &str, port: u16) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-local\n  namespace: {namespace}\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\nports: [{{name: {port_name}, port: {port}, protocol: TCP}}]\n"
    )
}

/// A static Gloo Upstream on loopback, named like the one discovery makes for a Service.
pub fn static_upstream(name: &str, port: u16) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {{name: {name}, namespace: gloo-system, resourceVersion: \"1\"}}\nspec: {{static: {{hosts: [{{addr: 127.0.0.1, port: {port}}}]}}}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walkthrough_manifest_is_read_from_the_repository() {
        assert!(manifest("colorapp/colorteller.yaml").contains("colorteller"));
    }

    #[test]
    fn the_endpoint_slice_names_its_service_and_port() {
        let slice = endpoint_slice("colorteller", "appmesh-demo", "http", 9080);
        assert!(slice.contains("kubernetes.io/service-name: colorteller"));
        assert!(slice.contains("namespace: appmesh-demo"));
        assert!(slice.contains("{name: http, port: 9080, protocol: TCP}"));
    }
}
