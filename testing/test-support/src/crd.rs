//! The official CRD schemas (Gloo Edge 1.x, App Mesh controller v1beta2, Gateway API v1.6.1 with
//! the experimental HTTPRoute) kept in `../shared/schemas`, as validators for documents: model's
//! tests check the manifests and the model's values with them, migrate's tests the migration's
//! output.
//!
//! CRD schemas are OpenAPI v3 with Kubernetes extensions, not plain JSON Schema, so they are
//! translated before use:
//! - `nullable: true` adds `"null"` to the allowed types (Gloo's wrapper types use it);
//! - `x-kubernetes-int-or-string: true` accepts an integer or a string, whatever `type` says;
//! - an object that lists `properties` and has neither `additionalProperties` nor
//!   `x-kubernetes-preserve-unknown-fields` rejects other fields, as `kubectl apply` with strict
//!   field validation does (the API server would silently prune them, hiding typos);
//! - the root always allows `apiVersion`, `kind` and `metadata`, which the API server validates
//!   itself;
//! - the remaining `x-kubernetes-*` markers only describe list/map merge semantics and are dropped.
//!
//! CEL rules (`x-kubernetes-validations`) are not checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jsonschema::Validator;
use serde_json::{Map, Value, json};

use crate::paths::workspace_root;

/// The folder of the official CRD schemas, `../shared/schemas` beside the checkout.
pub fn shared_schemas_dir() -> PathBuf {
    let dir = workspace_root().join("../shared/schemas");
    assert!(
        dir.is_dir(),
        "CRD schemas not found at {}: the `../shared` directory must sit beside the repository",
        dir.display()
    );
    dir
}

/// Rewrites one OpenAPI schema node (and its children) into plain JSON Schema.
fn to_json_schema(node: &Value) -> Value {
    let Value::Object(object) = node else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        let translated = match key.as_str() {
            "properties" | "patternProperties" | "definitions" => Value::Object(
                value
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), to_json_schema(v)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" | "not" => to_json_schema(value),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(to_json_schema)
                    .collect(),
            ),
            k if k.starts_with("x-kubernetes-") || k == "nullable" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), translated);
    }
    let flag = |name: &str| object.get(name).and_then(Value::as_bool).unwrap_or(false);
    if flag("x-kubernetes-int-or-string") {
        out.remove("type");
        out.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    } else if flag("nullable")
        && let Some(Value::String(ty)) = out.get("type").cloned()
    {
        out.insert("type".into(), json!([ty, "null"]));
    }
    if object.contains_key("properties")
        && !object.contains_key("additionalProperties")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

fn root_schema(openapi: &Value) -> Value {
    let mut schema = to_json_schema(openapi);
    let properties = schema
        .as_object_mut()
        .expect("root schema is an object")
        .entry("properties")
        .or_insert_with(|| json!({}));
    let properties = properties.as_object_mut().expect("properties is an object");
    properties
        .entry("apiVersion")
        .or_insert(json!({"type": "string"}));
    properties
        .entry("kind")
        .or_insert(json!({"type": "string"}));
    properties
        .entry("metadata")
        .or_insert(json!({"type": "object"}));
    schema
}

/// Validators keyed by (apiVersion, kind), one per served CRD version of the Gloo, App Mesh and
/// Gateway API kinds.
pub struct CrdSchemas {
    validators: BTreeMap<(String, String), Validator>,
}

impl std::fmt::Debug for CrdSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdSchemas")
            .field("kinds", &self.validators.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CrdSchemas {
    /// Reads and translates every schema; panics (failing the test) when one is missing or bad.
    pub fn load() -> Self {
        let dir = shared_schemas_dir();
        let files = [
            "gloo/gateway.solo.io_v1_VirtualService.yaml",
            "gloo/gloo.solo.io_v1_Upstream.yaml",
            "gloo/gloo.solo.io_v1_UpstreamGroup.yaml",
            "appmesh/appmesh.k8s.aws_meshes.yaml",
            "appmesh/appmesh.k8s.aws_virtualnodes.yaml",
            "appmesh/appmesh.k8s.aws_virtualservices.yaml",
            "appmesh/appmesh.k8s.aws_virtualrouters.yaml",
            "gateway-api/standard/gateway.networking.k8s.io_gatewayclasses.yaml",
            "gateway-api/standard/gateway.networking.k8s.io_gateways.yaml",
            "gateway-api/standard/gateway.networking.k8s.io_referencegrants.yaml",
            // The experimental HTTPRoute: a superset of the standard one that adds `retry`.
            "gateway-api/experimental/gateway.networking.k8s.io_httproutes.yaml",
        ];
        let mut validators = BTreeMap::new();
        for file in files {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let crd: Value =
                serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let group = crd["spec"]["group"].as_str().expect("spec.group");
            let kind = crd["spec"]["names"]["kind"]
                .as_str()
                .expect("spec.names.kind");
            for version in crd["spec"]["versions"].as_array().expect("spec.versions") {
                let name = version["name"].as_str().expect("version name");
                let openapi = &version["schema"]["openAPIV3Schema"];
                assert!(
                    openapi.is_object(),
                    "{file}: version {name} has no openAPIV3Schema"
                );
                let validator = jsonschema::draft4::new(&root_schema(openapi))
                    .unwrap_or_else(|e| panic!("{file}: schema does not compile: {e}"));
                validators.insert((format!("{group}/{name}"), kind.to_owned()), validator);
            }
        }
        // Gloo 3 + App Mesh 4 + Gateway API 4 kinds x (v1, v1beta1).
        assert_eq!(validators.len(), 7 + 8);
        Self { validators }
    }

    /// `None` when no CRD covers the document's type; otherwise every violation.
    pub fn check(&self, document: &Value) -> Option<Vec<String>> {
        let api_version = document["apiVersion"].as_str()?.to_owned();
        let kind = document["kind"].as_str()?.to_owned();
        let validator = self.validators.get(&(api_version, kind))?;
        Some(
            validator
                .iter_errors(document)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect(),
        )
    }

    /// Fails the test, listing every violation, unless the document is valid.
    pub fn assert_valid(&self, what: &str, document: &Value) {
        let errors = self.check(document).unwrap_or_else(|| {
            panic!(
                "{what}: no CRD schema for {} {}",
                document["apiVersion"], document["kind"]
            )
        });
        assert!(
            errors.is_empty(),
            "{what} violates its CRD schema:\n{}\n{document:#}",
            errors.join("\n")
        );
    }

    /// Fails the test unless the document violates its schema at `expected_path`.
    pub fn assert_rejected(&self, what: &str, document: &Value, expected_path: &str) {
        let errors = self.check(document).expect("a CRD kind");
        assert!(
            errors.iter().any(|e| e.starts_with(expected_path)),
            "{what}: expected a violation at {expected_path}, got {errors:?}"
        );
    }
}
