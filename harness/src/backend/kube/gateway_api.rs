//! Gateway API on a cluster, read as plain JSON (the model's Gateway API types are not what a
//! cluster run depends on): which CRD files to install, a gateway's verdict on a Gateway or an
//! HTTPRoute from its status conditions, and where each implementation puts the Service it
//! deploys for a Gateway.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backend::ClusterGateway;

/// The folder under the schemas root (`../shared/schemas`) that holds the official CRDs.
pub const SCHEMAS_DIR: &str = "gateway-api";

/// The CRD files installed, relative to [`SCHEMAS_DIR`]. GatewayClass, Gateway and
/// ReferenceGrant come from the standard channel. HTTPRoute comes from the experimental channel:
/// its schema is the standard one plus experimental fields, among them `spec.rules[].retry`,
/// which the retry scenarios set and the standard CRD's structural schema would prune (or, with
/// server-side field validation, refuse). One CRD per kind exists in a cluster, so it is one or
/// the other.
pub const CRD_FILES: [&str; 4] = [
    "standard/gateway.networking.k8s.io_gatewayclasses.yaml",
    "standard/gateway.networking.k8s.io_gateways.yaml",
    "standard/gateway.networking.k8s.io_referencegrants.yaml",
    "experimental/gateway.networking.k8s.io_httproutes.yaml",
];

/// A Gateway API schema folder or file that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Gateway API CRD schemas are missing: {} does not exist (the official v1.6.1 CRDs: \
     standard/ and experimental/; pass --schemas DIR)",
    .path.display()
)]
pub struct MissingSchemas {
    pub path: PathBuf,
}

/// The CRD files under a schemas root, each checked to exist; a missing one names its path.
pub fn crd_files(schemas_root: &Path) -> Result<Vec<PathBuf>, MissingSchemas> {
    let dir = schemas_root.join(SCHEMAS_DIR);
    if !dir.is_dir() {
        return Err(MissingSchemas { path: dir });
    }
    CRD_FILES
        .iter()
        .map(|file| {
            let path = dir.join(file);
            if path.is_file() {
                Ok(path)
            } else {
                Err(MissingSchemas { path })
            }
        })
        .collect()
}

/// What a gateway said about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Ready,
    /// Not decided yet; what was seen.
    Pending(String),
    /// A condition the gateway set to `False` for the current generation.
    Rejected {
        /// The status parent (an HTTPRoute's `parentRef`), `None` for a Gateway's own conditions.
        parent: Option<String>,
        condition: String,
        reason: String,
        message: String,
    },
}

/// `False` reasons that only mean "not yet": the spec's `Pending`, and what implementations
/// report for a Gateway while its proxy pods start (`NoResources`, Envoy Gateway) or its Service
/// waits for an address (`AddressNotAssigned`). They time out with the reason instead of failing
/// at once.
const PENDING_REASONS: [&str; 3] = ["Pending", "NoResources", "AddressNotAssigned"];

/// Checks `wanted` conditions of one `conditions` array against the object's generation.
fn judge(
    conditions: Option<&Value>,
    generation: Option<i64>,
    wanted: &[&str],
    parent: Option<&str>,
) -> Verdict {
    let conditions = conditions.and_then(Value::as_array);
    let mut pending = Vec::new();
    for kind in wanted {
        let found = conditions
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(*kind));
        let Some(condition) = found else {
            pending.push(format!("no {kind} condition yet"));
            continue;
        };
        let text = |key: &str| {
            condition
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let observed = condition.get("observedGeneration").and_then(Value::as_i64);
        if let (Some(observed), Some(generation)) = (observed, generation)
            && observed < generation
        {
            pending.push(format!(
                "{kind} is about generation {observed}, the spec is at {generation}"
            ));
            continue;
        }
        let (status, reason) = (text("status"), text("reason"));
        match status.as_str() {
            "True" => {}
            "False" if !PENDING_REASONS.contains(&reason.as_str()) => {
                return Verdict::Rejected {
                    parent: parent.map(str::to_owned),
                    condition: (*kind).to_owned(),
                    reason,
                    message: text("message"),
                };
            }
            _ => pending.push(format!("{kind}={status} ({reason}: {})", text("message"))),
        }
    }
    if pending.is_empty() {
        Verdict::Ready
    } else {
        Verdict::Pending(pending.join(", "))
    }
}

fn generation(object: &Value) -> Option<i64> {
    object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
}

/// A Gateway is ready when its own conditions say `Accepted=True` and `Programmed=True`.
pub(crate) fn gateway_verdict(object: &Value) -> Verdict {
    judge(
        object.pointer("/status/conditions"),
        generation(object),
        &["Accepted", "Programmed"],
        None,
    )
}

/// An HTTPRoute is ready when every `status.parents[]` entry written by `controller` says
/// `Accepted=True` and `ResolvedRefs=True` (and there is at least one).
pub(crate) fn route_verdict(object: &Value, controller: &str) -> Verdict {
    let generation = generation(object);
    let parents: Vec<&Value> = object
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("controllerName").and_then(Value::as_str) == Some(controller))
        .collect();
    if parents.is_empty() {
        return Verdict::Pending(format!("no status from {controller} yet"));
    }
    let mut pending = Vec::new();
    for parent in parents {
        let name = parent_label(parent.get("parentRef"));
        match judge(
            parent.get("conditions"),
            generation,
            &["Accepted", "ResolvedRefs"],
            Some(&name),
        ) {
            Verdict::Ready => {}
            rejected @ Verdict::Rejected { .. } => return rejected,
            Verdict::Pending(seen) => pending.push(format!("parent {name}: {seen}")),
        }
    }
    if pending.is_empty() {
        Verdict::Ready
    } else {
        Verdict::Pending(pending.join("; "))
    }
}

/// `Kind namespace/name` of a parentRef (kind Gateway and the route's namespace by default).
fn parent_label(parent_ref: Option<&Value>) -> String {
    let text = |key: &str| {
        parent_ref
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let kind = match text("kind") {
        "" => "Gateway",
        kind => kind,
    };
    match text("namespace") {
        "" => format!("{kind} {}", text("name")),
        namespace => format!("{kind} {namespace}/{}", text("name")),
    }
}

/// The port a Gateway listens on for HTTP: its first HTTP listener's, else its first listener's.
pub(crate) fn listener_port(gateway: &Value) -> Option<u16> {
    let listeners = gateway.pointer("/spec/listeners")?.as_array()?;
    listeners
        .iter()
        .find(|l| l.get("protocol").and_then(Value::as_str) == Some("HTTP"))
        .or_else(|| listeners.first())
        .and_then(|l| l.get("port"))
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
}

/// Where an implementation puts the Service it deploys for a Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GatewayServiceLookup {
    /// A Service of a known name.
    Named { namespace: String, name: String },
    /// The one Service matching a label selector.
    Labelled { namespace: String, selector: String },
}

/// Envoy Gateway's namespace: its controller deploys every Gateway's Envoy there.
pub(crate) const ENVOY_GATEWAY_NAMESPACE: &str = "envoy-gateway-system";

impl GatewayServiceLookup {
    /// For the Gateway `namespace/name` served by `gateway`; `None` for gateways that deploy no
    /// Service per Gateway (the builtin gateway and Gloo have their fixed `gateway-proxy`).
    /// - kgateway deploys a Deployment and Service named after the Gateway, in its namespace;
    /// - Istio names them `<gateway>-<gatewayClassName>`, so `<gateway>-istio`, in its namespace;
    /// - Envoy Gateway deploys into its own namespace under a generated name, labelled with the
    ///   owning Gateway's namespace and name.
    pub(crate) fn for_gateway(
        gateway: ClusterGateway,
        namespace: &str,
        name: &str,
    ) -> Option<Self> {
        match gateway {
            ClusterGateway::Kgateway => Some(Self::Named {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            ClusterGateway::Istio => Some(Self::Named {
                namespace: namespace.to_owned(),
                name: format!("{name}-istio"),
            }),
            ClusterGateway::EnvoyGateway => Some(Self::Labelled {
                namespace: ENVOY_GATEWAY_NAMESPACE.to_owned(),
                selector: format!(
                    "gateway.envoyproxy.io/owning-gateway-namespace={namespace},\
                     gateway.envoyproxy.io/owning-gateway-name={name}"
                ),
            }),
            ClusterGateway::Builtin | ClusterGateway::Gloo => None,
        }
    }

    /// How messages name it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Named { namespace, name } => format!("Service {namespace}/{name}"),
            Self::Labelled {
                namespace,
                selector,
            } => format!("the Service in {namespace} labelled {selector}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    fn condition(kind: &str, status: &str, reason: &str, generation: i64) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": format!("{kind} says {reason}"), "observedGeneration": generation})
    }

    fn gateway(conditions: Vec<Value>) -> Value {
        json!({"metadata": {"name": "gw", "generation": 2}, "status": {"conditions": conditions}})
    }

    #[test]
    fn a_gateway_is_ready_when_accepted_and_programmed() {
        let ready = gateway(vec![
            condition("Accepted", "True", "Accepted", 2),
            condition("Programmed", "True", "Programmed", 2),
        ]);
        assert_eq!(gateway_verdict(&ready), Verdict::Ready);

        let unprogrammed = gateway(vec![condition("Accepted", "True", "Accepted", 2)]);
        assert_eq!(
            gateway_verdict(&unprogrammed),
            Verdict::Pending("no Programmed condition yet".into())
        );
        let stale = gateway(vec![
            condition("Accepted", "True", "Accepted", 1),
            condition("Programmed", "True", "Programmed", 2),
        ]);
        assert_eq!(
            gateway_verdict(&stale),
            Verdict::Pending("Accepted is about generation 1, the spec is at 2".into())
        );
        let starting = gateway(vec![
            condition("Accepted", "True", "Accepted", 2),
            condition("Programmed", "False", "NoResources", 2),
        ]);
        assert!(
            matches!(gateway_verdict(&starting), Verdict::Pending(seen) if seen.contains("Programmed=False (NoResources"))
        );
        assert!(matches!(
            gateway_verdict(&json!({"metadata": {}})),
            Verdict::Pending(_)
        ));
    }

    #[test]
    fn a_false_gateway_condition_is_a_rejection_with_reason_and_message() {
        let refused = gateway(vec![
            condition("Accepted", "False", "InvalidParameters", 2),
            condition("Programmed", "True", "Programmed", 2),
        ]);
        assert_eq!(
            gateway_verdict(&refused),
            Verdict::Rejected {
                parent: None,
                condition: "Accepted".into(),
                reason: "InvalidParameters".into(),
                message: "Accepted says InvalidParameters".into(),
            }
        );
        // A verdict about an older spec does not count, not even a rejection.
        let old = gateway(vec![
            condition("Accepted", "False", "InvalidParameters", 1),
            condition("Programmed", "True", "Programmed", 2),
        ]);
        assert!(matches!(gateway_verdict(&old), Verdict::Pending(_)));
    }

    fn route(parents: Vec<Value>) -> Value {
        json!({"metadata": {"name": "r", "generation": 1}, "status": {"parents": parents}})
    }

    fn parent(controller: &str, name: &str, conditions: Vec<Value>) -> Value {
        json!({"parentRef": {"name": name, "namespace": "gloo-system"}, "controllerName": controller, "conditions": conditions})
    }

    #[test]
    fn a_route_is_ready_when_every_parent_of_the_controller_accepts_and_resolves() {
        const CONTROLLER: &str = "kgateway.dev/kgateway";
        let good = || {
            vec![
                condition("Accepted", "True", "Accepted", 1),
                condition("ResolvedRefs", "True", "ResolvedRefs", 1),
            ]
        };
        let ready = route(vec![
            parent(CONTROLLER, "gw", good()),
            parent(CONTROLLER, "gw2", good()),
            // Another controller's opinion is not ours to judge.
            parent(
                "other.example/controller",
                "gw",
                vec![condition("Accepted", "False", "NotAllowedByListeners", 1)],
            ),
        ]);
        assert_eq!(route_verdict(&ready, CONTROLLER), Verdict::Ready);

        let half = route(vec![
            parent(CONTROLLER, "gw", good()),
            parent(
                CONTROLLER,
                "gw2",
                vec![condition("Accepted", "True", "Accepted", 1)],
            ),
        ]);
        assert_eq!(
            route_verdict(&half, CONTROLLER),
            Verdict::Pending(
                "parent Gateway gloo-system/gw2: no ResolvedRefs condition yet".into()
            )
        );
        assert_eq!(
            route_verdict(&route(vec![]), CONTROLLER),
            Verdict::Pending("no status from kgateway.dev/kgateway yet".into())
        );

        let unresolved = route(vec![parent(
            CONTROLLER,
            "gw",
            vec![
                condition("Accepted", "True", "Accepted", 1),
                condition("ResolvedRefs", "False", "BackendNotFound", 1),
            ],
        )]);
        assert_eq!(
            route_verdict(&unresolved, CONTROLLER),
            Verdict::Rejected {
                parent: Some("Gateway gloo-system/gw".into()),
                condition: "ResolvedRefs".into(),
                reason: "BackendNotFound".into(),
                message: "ResolvedRefs says BackendNotFound".into(),
            }
        );
    }

    #[test]
    fn each_implementation_names_its_gateway_service_its_own_way() {
        assert_eq!(
            GatewayServiceLookup::for_gateway(ClusterGateway::Kgateway, "gloo-system", "gw"),
            Some(GatewayServiceLookup::Named {
                namespace: "gloo-system".into(),
                name: "gw".into()
            })
        );
        assert_eq!(
            GatewayServiceLookup::for_gateway(ClusterGateway::Istio, "gloo-system", "gw"),
            Some(GatewayServiceLookup::Named {
                namespace: "gloo-system".into(),
                name: "gw-istio".into()
            })
        );
        assert_eq!(
            GatewayServiceLookup::for_gateway(ClusterGateway::EnvoyGateway, "gloo-system", "gw"),
            Some(GatewayServiceLookup::Labelled {
                namespace: "envoy-gateway-system".into(),
                selector: "gateway.envoyproxy.io/owning-gateway-namespace=gloo-system,gateway.envoyproxy.io/owning-gateway-name=gw".into()
            })
        );
        assert_eq!(
            GatewayServiceLookup::for_gateway(ClusterGateway::Builtin, "gloo-system", "gw"),
            None
        );
    }

    #[test]
    fn the_http_listener_port_is_the_proxy_port() {
        let gateway = json!({"spec": {"listeners": [
            {"name": "tls", "port": 443, "protocol": "HTTPS"},
            {"name": "http", "port": 8080, "protocol": "HTTP"}
        ]}});
        assert_eq!(listener_port(&gateway), Some(8080));
        let only =
            json!({"spec": {"listeners": [{"name": "tls", "port": 443, "protocol": "HTTPS"}]}});
        assert_eq!(listener_port(&only), Some(443));
        assert_eq!(listener_port(&json!({"spec": {}})), None);
    }

    #[test]
    fn the_shared_schemas_hold_every_crd_file_and_a_missing_folder_is_named() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/schemas");
        let files = crd_files(&root).expect("the shared Gateway API schemas");
        assert_eq!(files.len(), 4);
        assert!(files[3].ends_with("experimental/gateway.networking.k8s.io_httproutes.yaml"));

        let error = crd_files(Path::new("/nonexistent/schemas")).expect_err("missing");
        assert_eq!(
            error.to_string(),
            "the Gateway API CRD schemas are missing: /nonexistent/schemas/gateway-api does not \
             exist (the official v1.6.1 CRDs: standard/ and experimental/; pass --schemas DIR)"
        );
    }

    #[test]
    fn the_experimental_httproute_crd_serves_retry_and_the_standard_one_does_not() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/schemas/gateway-api");
        let read = |file: &str| std::fs::read_to_string(root.join(file)).expect("CRD file");
        let experimental = read("experimental/gateway.networking.k8s.io_httproutes.yaml");
        let standard = read("standard/gateway.networking.k8s.io_httproutes.yaml");
        assert!(
            experimental.contains("\n                    retry:"),
            "retry in experimental"
        );
        assert!(
            !standard.contains("\n                    retry:"),
            "no retry in standard"
        );
        for file in CRD_FILES {
            let text = read(file);
            let crd: Value = serde_norway::from_str(&text).expect("one YAML document");
            assert_eq!(crd["kind"], json!("CustomResourceDefinition"), "{file}");
            assert_eq!(
                crd["spec"]["group"],
                json!("gateway.networking.k8s.io"),
                "{file}"
            );
        }
    }
}
