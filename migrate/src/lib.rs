//! Migration off Gloo Edge and App Mesh: their resources become Gateway API resources (a Gateway
//! and HTTPRoutes at the edge, GAMMA HTTPRoutes in the mesh), and every construct that does not
//! carry over exactly is named in a [`DriftReport`] with the requests it affects.
//!
//! The drift report is the contract between `cargo xtask migrate`, which writes it, and `cargo
//! xtask equivalence`, which checks it: a behaviour difference the report predicted is a known
//! drift, one it did not predict is a defect of the migration.
//!
//! [`migrate`] is pure: an [`Input`] (typed resources and the documents as written) in, a
//! [`Migration`] (the output documents, grouped in files, and the report) out. [`Migration::write_to`]
//! writes the folder: the manifests, `drift-report.json` and `drift-report.md`.

pub mod drift;
mod error;
mod input;
mod options;
mod render;

mod appmesh;
mod context;
mod gloo;
mod order;
mod paths;
mod policy;
mod prefix;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use model::gateway_api::{
    AllowedRoutes, FromNamespaces, GROUP, Gateway, GatewayClass, GatewayClassSpec, GatewaySpec,
    HTTPRoute, Listener, ReferenceGrant, ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo,
    RouteNamespaces,
};
use model::k8s::ObjectMeta;
use model::{Resource, ResourceKind};
use serde_json::Value;

pub use drift::{
    DRIFT_REPORT_FILE, DriftItem, DriftKind, DriftReport, ExampleRequest, Mapping, RequestPattern,
};
pub use error::MigrateError;
pub use input::Input;
pub use options::{
    DEFAULT_GATEWAY_CLASS, DEFAULT_GATEWAY_NAME, DEFAULT_LISTENER_PORT, DEFAULT_MESH_LABEL, Options,
};
pub use render::{DRIFT_MARKDOWN_FILE, describe_pattern, render_markdown};

use crate::context::{Context, Item, finish_items};

/// The name of the target dialect in reports.
pub const TARGET: &str = "gateway-api";

/// The label App Mesh's injector reads; a namespace moved to the GAMMA mesh loses it.
const APPMESH_INJECTOR_LABEL: &str = "appmesh.k8s.aws/sidecarInjectorWebhook";

/// One output file: a name inside the output folder and its documents, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFile {
    /// File name (`30-httproutes.yaml`); files are named so that sorted order is apply order.
    pub name: String,
    /// A comment for the file's head.
    pub comment: String,
    /// The documents.
    pub documents: Vec<Value>,
}

/// The result of a migration.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The manifests, file by file.
    pub files: Vec<OutputFile>,
    /// The Gateway API resources the migration wrote (Gateway, GatewayClass, HTTPRoutes,
    /// ReferenceGrants), typed.
    pub migrated: Vec<Resource>,
    /// The drift report.
    pub report: DriftReport,
}

impl Migration {
    /// Every output document.
    pub fn documents(&self) -> impl Iterator<Item = &Value> {
        self.files.iter().flat_map(|f| f.documents.iter())
    }

    /// The HTTPRoutes written.
    pub fn http_routes(&self) -> impl Iterator<Item = &HTTPRoute> {
        self.migrated.iter().filter_map(|r| match r {
            Resource::HttpRoute(route) => Some(&**route),
            _ => None,
        })
    }

    /// Writes the manifests, `drift-report.json` and `drift-report.md` into `dir` (created if
    /// needed). A folder holding anything but an earlier migration's files is refused, so that
    /// no stale manifest is applied with the new ones.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>, MigrateError> {
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| MigrateError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        let mut stale = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(write_err(dir))? {
            let entry = entry.map_err(write_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_output_name(&name) {
                stale.push(entry.path());
            } else {
                return Err(MigrateError::Write {
                    path: entry.path(),
                    source: std::io::Error::other(
                        "the output folder holds files this migration did not write; choose an empty folder",
                    ),
                });
            }
        }
        for path in stale {
            std::fs::remove_file(&path).map_err(write_err(&path))?;
        }
        let mut written = Vec::new();
        for file in &self.files {
            let path = dir.join(&file.name);
            std::fs::write(&path, render::yaml_file(file)).map_err(write_err(&path))?;
            written.push(path);
        }
        let json = dir.join(DRIFT_REPORT_FILE);
        let text = serde_json::to_string_pretty(&self.report).map_err(|e| MigrateError::Write {
            path: json.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&json, text + "\n").map_err(write_err(&json))?;
        written.push(json);
        let markdown = dir.join(DRIFT_MARKDOWN_FILE);
        std::fs::write(&markdown, render_markdown(&self.report, &self.files))
            .map_err(write_err(&markdown))?;
        written.push(markdown);
        Ok(written)
    }
}

fn is_output_name(name: &str) -> bool {
    let numbered = name.len() > 3
        && name.as_bytes()[..2].iter().all(u8::is_ascii_digit)
        && name.as_bytes()[2] == b'-'
        && name.ends_with(".yaml");
    numbered || name == DRIFT_REPORT_FILE || name == DRIFT_MARKDOWN_FILE
}

fn is_replaced(kind: &ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::GlooVirtualService
            | ResourceKind::Upstream
            | ResourceKind::UpstreamGroup
            | ResourceKind::Mesh
            | ResourceKind::VirtualNode
            | ResourceKind::AppMeshVirtualService
            | ResourceKind::VirtualRouter
    )
}

/// Migrates the input's Gloo Edge and App Mesh resources to Gateway API; everything else is
/// carried over unchanged (Namespaces of the mesh get its label).
pub fn migrate(input: &Input, options: &Options) -> Result<Migration, MigrateError> {
    let mut ctx = Context::new(input, options);
    if !ctx.set.iter().any(|(key, _)| is_replaced(&key.kind)) {
        return Err(MigrateError::NothingToMigrate {
            sources: input.sources.clone(),
        });
    }
    let edge_routes = gloo::convert(&mut ctx);
    let mesh_routes = appmesh::convert(&mut ctx);
    let mut migrated = Vec::new();
    let mut files = Vec::new();

    // The Gateway that replaces Gloo's proxy.
    let has_edge = ctx.set.gloo_virtual_services().next().is_some();
    let mut gateway_docs = Vec::new();
    if has_edge {
        let gw = gateway(&ctx);
        ctx.push(Item::new(
            DriftKind::Other,
            Mapping::Exact,
            format!("Gloo proxy {}/{} (installed with Gloo, not in the input)", model::gloo::GLOO_NAMESPACE, DEFAULT_GATEWAY_NAME),
            Some(format!("Gateway {}/{} listener http", options.gateway_namespace, options.gateway_name)),
            format!(
                "Gloo's default gateway serves HTTP on {} for VirtualServices of every namespace; the Gateway (class {}) has one HTTP listener on port {} that admits routes from all namespaces, and every VirtualService's HTTPRoute attaches to it.",
                DEFAULT_LISTENER_PORT, options.gateway_class, options.listener_port
            ),
        ));
        if options.gateway_class == DEFAULT_GATEWAY_CLASS {
            let class = GatewayClass {
                metadata: ObjectMeta {
                    name: Some(DEFAULT_GATEWAY_CLASS.into()),
                    ..ObjectMeta::default()
                },
                spec: GatewayClassSpec {
                    controller_name: model::gateway_api::CONTROLLER_NAME.into(),
                    description: Some("colormesh gateway-proxy or envoy-control".into()),
                },
                status: None,
            };
            migrated.push(Resource::GatewayClass(Box::new(class)));
        }
        migrated.push(Resource::Gateway(Box::new(gw)));
        gateway_docs = migrated.iter().map(to_value).collect();
    }
    let edge: Vec<Resource> = edge_routes
        .into_iter()
        .map(|r| Resource::HttpRoute(Box::new(r)))
        .collect();
    let mesh: Vec<Resource> = mesh_routes
        .into_iter()
        .map(|r| Resource::HttpRoute(Box::new(r)))
        .collect();
    let grants = reference_grants(&mut ctx);

    // Namespaces: the input's, with the mesh label where needed, plus any the output needs.
    let namespaces = namespaces(&mut ctx, has_edge);
    if !namespaces.is_empty() {
        files.push(OutputFile {
            name: "00-namespaces.yaml".into(),
            comment: format!(
                "Namespaces: the input's, carried over; those of the mesh labelled {}={}.",
                options.mesh_label.0, options.mesh_label.1
            ),
            documents: namespaces,
        });
    }
    files.extend(carried(&ctx));
    if !gateway_docs.is_empty() {
        files.push(OutputFile {
            name: "20-gateway.yaml".into(),
            comment: "The Gateway that replaces Gloo's proxy (and colormesh's GatewayClass when it is the class).".into(),
            documents: gateway_docs,
        });
    }
    if !edge.is_empty() {
        files.push(OutputFile {
            name: "30-httproutes.yaml".into(),
            comment: "Gloo VirtualServices as HTTPRoutes on the Gateway.".into(),
            documents: edge.iter().map(to_value).collect(),
        });
    }
    if !mesh.is_empty() {
        files.push(OutputFile {
            name: "40-mesh-httproutes.yaml".into(),
            comment: "App Mesh virtual services and routers as GAMMA HTTPRoutes (parentRef: the Service).".into(),
            documents: mesh.iter().map(to_value).collect(),
        });
    }
    if !grants.is_empty() {
        files.push(OutputFile {
            name: "50-referencegrants.yaml".into(),
            comment: "ReferenceGrants for backendRefs that cross namespaces.".into(),
            documents: grants.iter().map(to_value).collect(),
        });
    }
    migrated.extend(edge);
    migrated.extend(mesh);
    migrated.extend(grants);
    let report = DriftReport {
        sources: input.sources.clone(),
        target: TARGET.into(),
        items: finish_items(std::mem::take(&mut ctx.items)),
    };
    Ok(Migration {
        files,
        migrated,
        report,
    })
}

fn to_value(resource: &Resource) -> Value {
    serde_json::to_value(resource).unwrap_or(Value::Null)
}

fn gateway(ctx: &Context<'_>) -> Gateway {
    let options = ctx.options;
    Gateway {
        metadata: ObjectMeta {
            name: Some(options.gateway_name.clone()),
            namespace: Some(options.gateway_namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: GatewaySpec {
            gateway_class_name: options.gateway_class.clone(),
            listeners: vec![Listener {
                name: "http".into(),
                hostname: None,
                port: options.listener_port,
                protocol: "HTTP".into(),
                allowed_routes: AllowedRoutes {
                    namespaces: RouteNamespaces {
                        from: FromNamespaces::All,
                        selector: None,
                    },
                    kinds: Vec::new(),
                },
            }],
        },
        status: None,
    }
}

fn reference_grants(ctx: &mut Context<'_>) -> Vec<Resource> {
    let mut out = Vec::new();
    for ((to_ns, from_ns), names) in ctx.grants.clone() {
        let name = format!("httproutes-from-{from_ns}");
        ctx.push(Item::new(
            DriftKind::Backend,
            Mapping::Exact,
            format!("backendRefs from {from_ns} to Services in {to_ns}"),
            Some(format!("ReferenceGrant {to_ns}/{name}")),
            format!(
                "Gloo (and App Mesh) may send traffic to any namespace; a Gateway API backendRef to another namespace needs a ReferenceGrant there: HTTPRoutes in {from_ns} may refer to Services {}.",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
        out.push(Resource::ReferenceGrant(Box::new(ReferenceGrant {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(to_ns.clone()),
                ..ObjectMeta::default()
            },
            spec: ReferenceGrantSpec {
                from: vec![ReferenceGrantFrom {
                    group: GROUP.into(),
                    kind: "HTTPRoute".into(),
                    namespace: from_ns.clone(),
                }],
                to: names
                    .iter()
                    .map(|n| ReferenceGrantTo {
                        group: String::new(),
                        kind: "Service".into(),
                        name: Some(n.clone()),
                    })
                    .collect(),
            },
        })));
    }
    out
}

/// The Namespace documents: the input's (mesh ones relabelled) and any the output needs.
fn namespaces(ctx: &mut Context<'_>, has_edge: bool) -> Vec<Value> {
    let (key, value) = ctx.options.mesh_label.clone();
    let mesh: BTreeSet<String> = ctx.mesh_namespaces.clone();
    let mut docs: BTreeMap<String, Value> = BTreeMap::new();
    let input_namespaces: Vec<(String, Value)> = ctx
        .set
        .namespaces()
        .filter_map(|(loaded, ns)| {
            let name = ns.metadata.name.clone()?;
            let raw = ctx
                .input
                .raw(&loaded.resource.key())
                .cloned()
                .unwrap_or_else(|| to_value(&loaded.resource));
            Some((name, raw))
        })
        .collect();
    for (name, raw) in input_namespaces {
        docs.insert(name, raw);
    }
    let mut needed: BTreeSet<String> = mesh.clone();
    if has_edge {
        needed.insert(ctx.options.gateway_namespace.clone());
    }
    for route in ctx.set.gloo_virtual_services() {
        needed.insert(
            route
                .1
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        );
    }
    needed.remove("default");
    let mut created = Vec::new();
    for name in &needed {
        docs.entry(name.clone()).or_insert_with(|| {
            created.push(name.clone());
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        });
    }
    let mut labelled = Vec::new();
    for name in &mesh {
        let Some(doc) = docs.get_mut(name) else {
            continue;
        };
        let metadata = doc.as_object_mut().and_then(|o| {
            o.entry("metadata")
                .or_insert_with(|| serde_json::json!({}))
                .as_object_mut()
        });
        let Some(metadata) = metadata else { continue };
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(labels) = labels.as_object_mut() {
            let removed = labels.remove(APPMESH_INJECTOR_LABEL).is_some();
            labels.insert(key.clone(), Value::String(value.clone()));
            labelled.push((name.clone(), removed));
        }
    }
    let meshes: Vec<String> = ctx
        .set
        .meshes()
        .map(|(l, _)| context::source(l, ""))
        .collect();
    if !labelled.is_empty() {
        let src = if meshes.is_empty() {
            "App Mesh membership (virtual nodes and services)".to_owned()
        } else {
            meshes.join("; ")
        };
        ctx.push(Item::new(
            DriftKind::Mesh,
            Mapping::Exact,
            src,
            Some(labelled.iter().map(|(n, _)| format!("Namespace {n} metadata.labels")).collect::<Vec<_>>().join("; ")),
            format!(
                "The mesh's namespaces ({}) are labelled {key}={value}, which puts their pods in the GAMMA mesh (the mesh sidecar applies HTTPRoutes whose parent is a Service){}.",
                labelled.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                if labelled.iter().any(|(_, r)| *r) { format!("; App Mesh's injector label {APPMESH_INJECTOR_LABEL} is removed") } else { String::new() }
            ),
        ));
    }
    for (loaded, mesh) in ctx
        .set
        .meshes()
        .map(|(l, m)| (l.clone(), m.clone()))
        .collect::<Vec<_>>()
    {
        if let Some(filter) = &mesh.spec.egress_filter {
            let drop_all = filter.type_ == model::appmesh::EgressFilterType::DropAll;
            ctx.push(Item::new(
                DriftKind::Mesh,
                if drop_all { Mapping::Unmappable } else { Mapping::Exact },
                context::source(&loaded, "spec.egressFilter"),
                None,
                if drop_all {
                    "Egress DROP_ALL refused calls to destinations outside the mesh; Gateway API has no egress policy, so they now pass."
                } else {
                    "Egress ALLOW_ALL let calls to destinations outside the mesh pass unchanged, as a GAMMA mesh does for Services without a route."
                },
            ));
        }
    }
    if !created.is_empty() {
        ctx.push(Item::new(
            DriftKind::Other,
            Mapping::Exact,
            "namespaces the output uses but the input does not hold".into(),
            Some(
                created
                    .iter()
                    .map(|n| format!("Namespace {n}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            format!(
                "Written so the output folder applies on its own: {}.",
                created.join(", ")
            ),
        ));
    }
    docs.into_values().collect()
}

/// The input's other objects, unchanged, one output file per input file.
fn carried(ctx: &Context<'_>) -> Vec<OutputFile> {
    let mut by_file: BTreeMap<PathBuf, Vec<Value>> = BTreeMap::new();
    let mut order: Vec<PathBuf> = Vec::new();
    let live = ctx.set.clone();
    let mut emitted = BTreeSet::new();
    for loaded in &ctx.input.resources {
        let key = loaded.resource.key();
        if is_replaced(&key.kind) || key.kind == ResourceKind::Namespace {
            continue;
        }
        // A later document with the same identity replaces this one (and a file read twice
        // is written once).
        if live.get(&key).is_none_or(|l| l != loaded) || !emitted.insert(key.clone()) {
            continue;
        }
        let value = ctx
            .input
            .raw(&key)
            .cloned()
            .unwrap_or_else(|| to_value(&loaded.resource));
        if !by_file.contains_key(&loaded.origin.file) {
            order.push(loaded.origin.file.clone());
        }
        by_file
            .entry(loaded.origin.file.clone())
            .or_default()
            .push(value);
    }
    let mut used = BTreeSet::new();
    order
        .into_iter()
        .map(|file| {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = file
                .parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut name = if parent.is_empty() {
                format!("10-{stem}.yaml")
            } else {
                format!("10-{parent}-{stem}.yaml")
            };
            let mut n = 2;
            while !used.insert(name.clone()) {
                name = format!("10-{parent}-{stem}-{n}.yaml");
                n += 1;
            }
            OutputFile {
                name,
                comment: format!("Carried over unchanged from {}.", file.display()),
                documents: by_file.remove(&file).unwrap_or_default(),
            }
        })
        .collect()
}
