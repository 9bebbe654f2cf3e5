//! Reading Kubernetes YAML into typed resources, with errors that name the file, line, resource
//! and field, and a list of the fields colormesh ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserializer, Serialize, Serializer};
use serde_norway::Value;

use crate::appmesh;
use crate::gateway_api;
use crate::gloo;
use crate::k8s::{ConfigMap, Deployment, EndpointSlice, Namespace, ObjectMeta, Service};

/// The kinds colormesh understands, plus everything else as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// `v1 Namespace` (cluster scoped).
    Namespace,
    /// `apps/v1 Deployment`.
    Deployment,
    /// `v1 Service`.
    Service,
    /// `discovery.k8s.io/v1 EndpointSlice`.
    EndpointSlice,
    /// `v1 ConfigMap`.
    ConfigMap,
    /// `gateway.solo.io/v1 VirtualService`.
    GlooVirtualService,
    /// `gloo.solo.io/v1 Upstream`.
    Upstream,
    /// `gloo.solo.io/v1 UpstreamGroup`.
    UpstreamGroup,
    /// `appmesh.k8s.aws/v1beta2 Mesh` (cluster scoped).
    Mesh,
    /// `appmesh.k8s.aws/v1beta2 VirtualNode`.
    VirtualNode,
    /// `appmesh.k8s.aws/v1beta2 VirtualService`.
    AppMeshVirtualService,
    /// `appmesh.k8s.aws/v1beta2 VirtualRouter`.
    VirtualRouter,
    /// `gateway.networking.k8s.io/v1 GatewayClass` (cluster scoped).
    GatewayClass,
    /// `gateway.networking.k8s.io/v1 Gateway`.
    Gateway,
    /// `gateway.networking.k8s.io/v1 HTTPRoute`.
    HttpRoute,
    /// `gateway.networking.k8s.io/v1 ReferenceGrant`.
    ReferenceGrant,
    /// Any other apiVersion/kind; kept by header only.
    Other {
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
}

const KNOWN_KINDS: [(ResourceKind, &str, &str); 16] = [
    (ResourceKind::Namespace, "v1", "Namespace"),
    (ResourceKind::Deployment, "apps/v1", "Deployment"),
    (ResourceKind::Service, "v1", "Service"),
    (
        ResourceKind::EndpointSlice,
        "discovery.k8s.io/v1",
        "EndpointSlice",
    ),
    (ResourceKind::ConfigMap, "v1", "ConfigMap"),
    (
        ResourceKind::GlooVirtualService,
        "gateway.solo.io/v1",
        "VirtualService",
    ),
    (ResourceKind::Upstream, "gloo.solo.io/v1", "Upstream"),
    (
        ResourceKind::UpstreamGroup,
        "gloo.solo.io/v1",
        "UpstreamGroup",
    ),
    (ResourceKind::Mesh, "appmesh.k8s.aws/v1beta2", "Mesh"),
    (
        ResourceKind::VirtualNode,
        "appmesh.k8s.aws/v1beta2",
        "VirtualNode",
    ),
    (
        ResourceKind::AppMeshVirtualService,
        "appmesh.k8s.aws/v1beta2",
        "VirtualService",
    ),
    (
        ResourceKind::VirtualRouter,
        "appmesh.k8s.aws/v1beta2",
        "VirtualRouter",
    ),
    (
        ResourceKind::GatewayClass,
        "gateway.networking.k8s.io/v1",
        "GatewayClass",
    ),
    (
        ResourceKind::Gateway,
        "gateway.networking.k8s.io/v1",
        "Gateway",
    ),
    (
        ResourceKind::HttpRoute,
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
    ),
    (
        ResourceKind::ReferenceGrant,
        "gateway.networking.k8s.io/v1",
        "ReferenceGrant",
    ),
];

/// Older versions the API server still serves for a kind, read as the kind's current version
/// (the Gateway API CRDs v1.6.1 serve `v1beta1` beside `v1`, and ReferenceGrant stores `v1beta1`).
/// The fields colormesh reads are the same in both versions.
const SERVED_ALIASES: [(&str, &str); 4] = [
    ("gateway.networking.k8s.io/v1beta1", "GatewayClass"),
    ("gateway.networking.k8s.io/v1beta1", "Gateway"),
    ("gateway.networking.k8s.io/v1beta1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
];

impl ResourceKind {
    /// The kind for an apiVersion and kind pair.
    pub fn from_type(api_version: &str, kind: &str) -> Self {
        let api_version = SERVED_ALIASES
            .iter()
            .find(|(v, k)| *v == api_version && *k == kind)
            .map_or(api_version, |_| "gateway.networking.k8s.io/v1");
        KNOWN_KINDS
            .iter()
            .find(|(_, v, k)| *v == api_version && *k == kind)
            .map(|(known, _, _)| known.clone())
            .unwrap_or_else(|| ResourceKind::Other {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
    }

    /// The document's `apiVersion`.
    pub fn api_version(&self) -> &str {
        match self {
            ResourceKind::Other { api_version, .. } => api_version,
            known => KNOWN_KINDS
                .iter()
                .find(|(k, _, _)| k == known)
                .map_or("", |(_, v, _)| v),
        }
    }

    /// The document's `kind` (both VirtualService kinds say `VirtualService`).
    pub fn kind(&self) -> &str {
        match self {
            ResourceKind::Other { kind, .. } => kind,
            known => KNOWN_KINDS
                .iter()
                .find(|(k, _, _)| k == known)
                .map_or("", |(_, _, kind)| kind),
        }
    }

    /// Whether objects of this kind live in a namespace (`None` for unknown kinds).
    pub fn is_namespaced(&self) -> Option<bool> {
        match self {
            ResourceKind::Namespace | ResourceKind::Mesh | ResourceKind::GatewayClass => {
                Some(false)
            }
            ResourceKind::Other { .. } => None,
            _ => Some(true),
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// Identity of a resource: kind, namespace (None when cluster scoped) and name.
/// Displays as `VirtualService gloo-system/colorgateway` (or `Mesh color-mesh`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// The kind.
    pub kind: ResourceKind,
    /// The namespace; namespaced kinds without one get `default`.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ResourceKey {
    /// Builds a key, applying the namespace rules of [`ResourceKey::namespace`].
    pub fn new(kind: ResourceKind, namespace: Option<&str>, name: &str) -> Self {
        let namespace = match kind.is_namespaced() {
            Some(false) => None,
            Some(true) => Some(
                namespace
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or("default")
                    .to_owned(),
            ),
            None => namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
        };
        Self {
            kind,
            namespace,
            name: name.to_owned(),
        }
    }

    fn from_meta(kind: ResourceKind, meta: &ObjectMeta) -> Self {
        Self::new(
            kind,
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or(""),
        )
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One resource of any kind colormesh reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// `v1 Namespace`.
    Namespace(Box<Namespace>),
    /// `apps/v1 Deployment`.
    Deployment(Box<Deployment>),
    /// `v1 Service`.
    Service(Box<Service>),
    /// `discovery.k8s.io/v1 EndpointSlice`.
    EndpointSlice(Box<EndpointSlice>),
    /// `v1 ConfigMap`.
    ConfigMap(Box<ConfigMap>),
    /// `gateway.solo.io/v1 VirtualService`.
    GlooVirtualService(Box<gloo::VirtualService>),
    /// `gloo.solo.io/v1 Upstream`.
    Upstream(Box<gloo::Upstream>),
    /// `gloo.solo.io/v1 UpstreamGroup`.
    UpstreamGroup(Box<gloo::UpstreamGroup>),
    /// `appmesh.k8s.aws/v1beta2 Mesh`.
    Mesh(Box<appmesh::Mesh>),
    /// `appmesh.k8s.aws/v1beta2 VirtualNode`.
    VirtualNode(Box<appmesh::VirtualNode>),
    /// `appmesh.k8s.aws/v1beta2 VirtualService`.
    AppMeshVirtualService(Box<appmesh::VirtualService>),
    /// `appmesh.k8s.aws/v1beta2 VirtualRouter`.
    VirtualRouter(Box<appmesh::VirtualRouter>),
    /// `gateway.networking.k8s.io/v1 GatewayClass`.
    GatewayClass(Box<gateway_api::GatewayClass>),
    /// `gateway.networking.k8s.io/v1 Gateway`.
    Gateway(Box<gateway_api::Gateway>),
    /// `gateway.networking.k8s.io/v1 HTTPRoute`.
    HttpRoute(Box<gateway_api::HTTPRoute>),
    /// `gateway.networking.k8s.io/v1 ReferenceGrant`.
    ReferenceGrant(Box<gateway_api::ReferenceGrant>),
    /// Any other kind: only the header is kept (its body is not written back by [`to_yaml`]).
    Other {
        /// apiVersion.
        api_version: String,
        /// kind.
        kind: String,
        /// metadata.
        metadata: Box<ObjectMeta>,
    },
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::Namespace(_) => ResourceKind::Namespace,
            Resource::Deployment(_) => ResourceKind::Deployment,
            Resource::Service(_) => ResourceKind::Service,
            Resource::EndpointSlice(_) => ResourceKind::EndpointSlice,
            Resource::ConfigMap(_) => ResourceKind::ConfigMap,
            Resource::GlooVirtualService(_) => ResourceKind::GlooVirtualService,
            Resource::Upstream(_) => ResourceKind::Upstream,
            Resource::UpstreamGroup(_) => ResourceKind::UpstreamGroup,
            Resource::Mesh(_) => ResourceKind::Mesh,
            Resource::VirtualNode(_) => ResourceKind::VirtualNode,
            Resource::AppMeshVirtualService(_) => ResourceKind::AppMeshVirtualService,
            Resource::VirtualRouter(_) => ResourceKind::VirtualRouter,
            Resource::GatewayClass(_) => ResourceKind::GatewayClass,
            Resource::Gateway(_) => ResourceKind::Gateway,
            Resource::HttpRoute(_) => ResourceKind::HttpRoute,
            Resource::ReferenceGrant(_) => ResourceKind::ReferenceGrant,
            Resource::Other {
                api_version, kind, ..
            } => ResourceKind::Other {
                api_version: api_version.clone(),
                kind: kind.clone(),
            },
        }
    }

    /// The resource's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Resource::Namespace(r) => &r.metadata,
            Resource::Deployment(r) => &r.metadata,
            Resource::Service(r) => &r.metadata,
            Resource::EndpointSlice(r) => &r.metadata,
            Resource::ConfigMap(r) => &r.metadata,
            Resource::GlooVirtualService(r) => &r.metadata,
            Resource::Upstream(r) => &r.metadata,
            Resource::UpstreamGroup(r) => &r.metadata,
            Resource::Mesh(r) => &r.metadata,
            Resource::VirtualNode(r) => &r.metadata,
            Resource::AppMeshVirtualService(r) => &r.metadata,
            Resource::VirtualRouter(r) => &r.metadata,
            Resource::GatewayClass(r) => &r.metadata,
            Resource::Gateway(r) => &r.metadata,
            Resource::HttpRoute(r) => &r.metadata,
            Resource::ReferenceGrant(r) => &r.metadata,
            Resource::Other { metadata, .. } => metadata,
        }
    }

    /// The resource's metadata, to stamp (resource versions, generations, labels).
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Resource::Namespace(r) => &mut r.metadata,
            Resource::Deployment(r) => &mut r.metadata,
            Resource::Service(r) => &mut r.metadata,
            Resource::EndpointSlice(r) => &mut r.metadata,
            Resource::ConfigMap(r) => &mut r.metadata,
            Resource::GlooVirtualService(r) => &mut r.metadata,
            Resource::Upstream(r) => &mut r.metadata,
            Resource::UpstreamGroup(r) => &mut r.metadata,
            Resource::Mesh(r) => &mut r.metadata,
            Resource::VirtualNode(r) => &mut r.metadata,
            Resource::AppMeshVirtualService(r) => &mut r.metadata,
            Resource::VirtualRouter(r) => &mut r.metadata,
            Resource::GatewayClass(r) => &mut r.metadata,
            Resource::Gateway(r) => &mut r.metadata,
            Resource::HttpRoute(r) => &mut r.metadata,
            Resource::ReferenceGrant(r) => &mut r.metadata,
            Resource::Other { metadata, .. } => metadata,
        }
    }

    /// The resource's identity.
    pub fn key(&self) -> ResourceKey {
        ResourceKey::from_meta(self.kind(), self.metadata())
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Resource::Namespace(r) => r.serialize(serializer),
            Resource::Deployment(r) => r.serialize(serializer),
            Resource::Service(r) => r.serialize(serializer),
            Resource::EndpointSlice(r) => r.serialize(serializer),
            Resource::ConfigMap(r) => r.serialize(serializer),
            Resource::GlooVirtualService(r) => r.serialize(serializer),
            Resource::Upstream(r) => r.serialize(serializer),
            Resource::UpstreamGroup(r) => r.serialize(serializer),
            Resource::Mesh(r) => r.serialize(serializer),
            Resource::VirtualNode(r) => r.serialize(serializer),
            Resource::AppMeshVirtualService(r) => r.serialize(serializer),
            Resource::VirtualRouter(r) => r.serialize(serializer),
            Resource::GatewayClass(r) => r.serialize(serializer),
            Resource::Gateway(r) => r.serialize(serializer),
            Resource::HttpRoute(r) => r.serialize(serializer),
            Resource::ReferenceGrant(r) => r.serialize(serializer),
            Resource::Other {
                api_version,
                kind,
                metadata,
            } => {
                use serde::ser::SerializeStruct;
                let mut s = serializer.serialize_struct("Resource", 3)?;
                s.serialize_field("apiVersion", api_version)?;
                s.serialize_field("kind", kind)?;
                s.serialize_field("metadata", metadata)?;
                s.end()
            }
        }
    }
}

/// Where a document came from: its file and the 1-based line where its content starts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The file as given to the loader.
    pub file: PathBuf,
    /// 1-based first line of the document.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A resource with its origin and the fields the model did not read.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The resource.
    pub resource: Resource,
    /// Where it was read.
    pub origin: Origin,
    /// Paths of fields present in the YAML that colormesh does not model, such as
    /// `spec.virtualHost.routes[0].options.cors`.
    pub ignored_fields: Vec<String>,
}

/// The outcome of reading YAML: every good document and every bad one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Resources read, in document order.
    pub resources: Vec<Loaded>,
    /// One error per bad document.
    pub errors: Vec<LoadError>,
}

impl Parsed {
    /// Appends another result.
    pub fn extend(&mut self, other: Parsed) {
        self.resources.extend(other.resources);
        self.errors.extend(other.errors);
    }
}

/// A document that could not be read. Displays as
/// `file:line: Kind namespace/name: field.path: cause`, leaving out what is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the problem (the document's first line when nothing finer is known).
    pub line: usize,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// `Kind namespace/name`, when the document header could be read.
    pub resource: Option<String>,
    /// Path of the offending field, like `spec.virtualHost.routes[0].matchers[0].prefix`.
    pub field: Option<String>,
    /// What is wrong.
    pub cause: String,
}

impl LoadError {
    fn render(&self) -> String {
        let mut out = format!("{}:{}: ", self.file.display(), self.line);
        if let Some(resource) = &self.resource {
            out.push_str(resource);
            out.push_str(": ");
        }
        if let Some(field) = &self.field {
            out.push_str(field);
            out.push_str(": ");
        }
        out.push_str(&self.cause);
        out
    }
}

/// A YAML document inside a file: its text and where it starts.
struct Document<'a> {
    text: &'a str,
    /// 1-based line of the first line of `text`.
    first_line: usize,
}

/// Splits a stream on `---` lines the way kubectl's YAML reader does: a line that is exactly
/// `---` (trailing whitespace allowed) separates documents.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let is_separator = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.trim().is_empty());
        if is_separator {
            documents.push(Document {
                text: &text[start..offset],
                first_line,
            });
            start = offset + line.len();
            first_line = index + 2;
        }
        offset += line.len();
    }
    documents.push(Document {
        text: &text[start..],
        first_line,
    });
    documents
}

/// The line where a document's content starts, skipping blank and comment lines.
fn content_line(document: &Document<'_>) -> usize {
    document
        .text
        .lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map_or(document.first_line, |i| document.first_line + i)
}

/// Reads every document of a YAML stream. `file` is only used to label origins and errors.
pub fn parse_documents(text: &str, file: &Path) -> Parsed {
    let mut parsed = Parsed::default();
    for document in split_documents(text) {
        parse_document(&document, file, &mut parsed);
    }
    parsed
}

/// Why a document's header (`apiVersion`, `kind`) could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum HeaderError {
    #[error("expected a Kubernetes object (a mapping), found {0}")]
    NotAnObject(&'static str),
    #[error("missing apiVersion")]
    MissingApiVersion,
    #[error("missing kind")]
    MissingKind,
}

/// The header fields needed to dispatch a document and to name it in errors.
struct Header {
    api_version: String,
    kind: String,
    name: Option<String>,
    namespace: Option<String>,
}

impl Header {
    fn read(value: &Value) -> Result<Header, HeaderError> {
        let Value::Mapping(map) = value else {
            return Err(HeaderError::NotAnObject(value_kind(value)));
        };
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
        let api_version = text("apiVersion").ok_or(HeaderError::MissingApiVersion)?;
        let kind = text("kind").ok_or(HeaderError::MissingKind)?;
        let metadata = map.get("metadata");
        let meta_text = |key: &str| {
            metadata
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(Header {
            api_version,
            kind,
            name: meta_text("name"),
            namespace: meta_text("namespace"),
        })
    }

    fn label(&self) -> String {
        let kind = ResourceKind::from_type(&self.api_version, &self.kind);
        let name = self.name.as_deref().unwrap_or("<unnamed>");
        ResourceKey::new(kind, self.namespace.as_deref(), name).to_string()
    }
}

/// API groups of files that configure a cluster tool rather than describe cluster objects: kind's
/// `Cluster` and eksctl's `ClusterConfig` live in `manifests/cluster/` next to what is applied, but
/// never reach an API server, so the loader passes over them.
const TOOL_CONFIG_GROUPS: [&str; 2] = ["kind.x-k8s.io/", "eksctl.io/"];

/// Whether a document is a cluster tool's configuration (see [`TOOL_CONFIG_GROUPS`]).
pub fn is_tool_config(api_version: &str) -> bool {
    TOOL_CONFIG_GROUPS
        .iter()
        .any(|group| api_version.starts_with(group))
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn parse_document(document: &Document<'_>, file: &Path, parsed: &mut Parsed) {
    let line = content_line(document);
    let error = |line: usize,
                 column: Option<usize>,
                 resource: Option<String>,
                 field: Option<String>,
                 cause: String| {
        LoadError {
            file: file.to_owned(),
            line,
            column,
            resource,
            field,
            cause,
        }
    };
    let value: Value = match serde_norway::from_str(document.text) {
        Ok(value) => value,
        Err(e) => {
            let (l, c) = e.location().map_or((line, None), |loc| {
                (document.first_line + loc.line() - 1, Some(loc.column()))
            });
            let cause = shift_line_numbers(&bare_message(&e, None), document.first_line - 1);
            parsed.errors.push(error(l, c, None, None, cause));
            return;
        }
    };
    if value.is_null() {
        return;
    }
    let header = match Header::read(&value) {
        Ok(header) => header,
        Err(cause) => {
            parsed
                .errors
                .push(error(line, None, None, None, cause.to_string()));
            return;
        }
    };
    if is_tool_config(&header.api_version) {
        return;
    }
    let origin = Origin {
        file: file.to_owned(),
        line,
    };
    if header.kind == "List" {
        let items = match value.get("items") {
            Some(Value::Sequence(items)) => items.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                let cause = "expected a sequence".to_owned();
                parsed
                    .errors
                    .push(error(line, None, None, Some("items".into()), cause));
                return;
            }
        };
        for (index, item) in items.into_iter().enumerate() {
            let prefix = format!("items[{index}]");
            let header = match Header::read(&item) {
                Ok(header) => header,
                Err(cause) => {
                    parsed
                        .errors
                        .push(error(line, None, None, Some(prefix), cause.to_string()));
                    continue;
                }
            };
            match decode_resource(&header, item) {
                Ok((resource, ignored)) => parsed.resources.push(Loaded {
                    resource,
                    origin: origin.clone(),
                    ignored_fields: ignored
                        .into_iter()
                        .map(|f| format!("{prefix}.{f}"))
                        .collect(),
                }),
                Err(failure) => parsed.errors.push(error(
                    line,
                    None,
                    Some(header.label()),
                    Some(join_path(&prefix, failure.field.as_deref())),
                    failure.cause,
                )),
            }
        }
        return;
    }
    let deserializer = serde_norway::Deserializer::from_str(document.text);
    match decode_resource(&header, deserializer) {
        Ok((resource, ignored_fields)) => parsed.resources.push(Loaded {
            resource,
            origin,
            ignored_fields,
        }),
        Err(failure) => {
            let (l, c) = failure.location.map_or((line, None), |(l, c)| {
                (document.first_line + l - 1, Some(c))
            });
            parsed.errors.push(error(
                l,
                c,
                Some(header.label()),
                failure.field,
                failure.cause,
            ));
        }
    }
}

fn join_path(prefix: &str, field: Option<&str>) -> String {
    match field {
        Some(field) => format!("{prefix}.{field}"),
        None => prefix.to_owned(),
    }
}

/// Why a typed decode failed.
struct DecodeFailure {
    field: Option<String>,
    cause: String,
    /// 1-based (line, column) inside the document, when the YAML parser knew it.
    location: Option<(usize, usize)>,
}

fn decode_resource<'de, D>(
    header: &Header,
    deserializer: D,
) -> Result<(Resource, Vec<String>), DecodeFailure>
where
    D: Deserializer<'de, Error = serde_norway::Error>,
{
    if header.name.as_deref().is_none_or(str::is_empty) {
        return Err(DecodeFailure {
            field: Some("metadata.name".into()),
            cause: "a name is required".into(),
            location: None,
        });
    }
    let kind = ResourceKind::from_type(&header.api_version, &header.kind);
    fn typed<'de, D, T>(
        deserializer: D,
        wrap: impl FnOnce(Box<T>) -> Resource,
    ) -> Result<(Resource, Vec<String>), DecodeFailure>
    where
        D: Deserializer<'de, Error = serde_norway::Error>,
        T: DeserializeOwned,
    {
        let (value, ignored) = decode::<D, T>(deserializer)?;
        Ok((wrap(Box::new(value)), ignored))
    }
    match kind {
        ResourceKind::Namespace => typed(deserializer, Resource::Namespace),
        ResourceKind::Deployment => typed(deserializer, Resource::Deployment),
        ResourceKind::Service => typed(deserializer, Resource::Service),
        ResourceKind::EndpointSlice => typed(deserializer, Resource::EndpointSlice),
        ResourceKind::ConfigMap => typed(deserializer, Resource::ConfigMap),
        ResourceKind::GlooVirtualService => typed(deserializer, Resource::GlooVirtualService),
        ResourceKind::Upstream => typed(deserializer, Resource::Upstream),
        ResourceKind::UpstreamGroup => typed(deserializer, Resource::UpstreamGroup),
        ResourceKind::Mesh => typed(deserializer, Resource::Mesh),
        ResourceKind::VirtualNode => typed(deserializer, Resource::VirtualNode),
        ResourceKind::AppMeshVirtualService => typed(deserializer, Resource::AppMeshVirtualService),
        ResourceKind::VirtualRouter => typed(deserializer, Resource::VirtualRouter),
        ResourceKind::GatewayClass => typed(deserializer, Resource::GatewayClass),
        ResourceKind::Gateway => typed(deserializer, Resource::Gateway),
        ResourceKind::HttpRoute => typed(deserializer, Resource::HttpRoute),
        ResourceKind::ReferenceGrant => typed(deserializer, Resource::ReferenceGrant),
        ResourceKind::Other { api_version, kind } => {
            #[derive(serde::Deserialize)]
            struct OtherDocument {
                #[serde(default)]
                metadata: ObjectMeta,
            }
            // Only the metadata is read; the body of an unknown kind is not "ignored fields".
            let document: OtherDocument =
                serde_path_to_error::deserialize(deserializer).map_err(|e| {
                    let field = Some(e.path().to_string());
                    let inner = e.into_inner();
                    DecodeFailure {
                        location: inner.location().map(|l| (l.line(), l.column())),
                        cause: bare_message(&inner, field.as_deref()),
                        field,
                    }
                })?;
            Ok((
                Resource::Other {
                    api_version,
                    kind,
                    metadata: Box::new(document.metadata),
                },
                Vec::new(),
            ))
        }
    }
}

/// Deserialises through `serde_path_to_error` (the failing field) and `serde_ignored` (fields
/// the model does not have).
fn decode<'de, D, T>(deserializer: D) -> Result<(T, Vec<String>), DecodeFailure>
where
    D: Deserializer<'de, Error = serde_norway::Error>,
    T: DeserializeOwned,
{
    let mut ignored = Vec::new();
    let result = {
        let mut record = |path: serde_ignored::Path<'_>| {
            let path = ignored_path(&path);
            // apiVersion and kind are consumed by dispatch; kube's derived roots do not declare them.
            if path != "apiVersion" && path != "kind" {
                ignored.push(path);
            }
        };
        let tracked = serde_ignored::Deserializer::new(deserializer, &mut record);
        serde_path_to_error::deserialize::<_, T>(tracked)
    };
    match result {
        Ok(value) => Ok((value, ignored)),
        Err(e) => {
            let path = e.path().to_string();
            let field = (path != ".").then_some(path);
            let inner = e.into_inner();
            Err(DecodeFailure {
                location: inner.location().map(|l| (l.line(), l.column())),
                cause: bare_message(&inner, field.as_deref()),
                field,
            })
        }
    }
}

/// Formats a `serde_ignored` path as `spec.routes[0].options.cors`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// The YAML error's message without serde_norway's own path prefix and position suffix, which
/// the `LoadError` carries separately.
fn bare_message(error: &serde_norway::Error, field: Option<&str>) -> String {
    let mut text = error.to_string();
    if let Some(location) = error.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = text.strip_suffix(&suffix) {
            text = stripped.to_owned();
        }
    }
    if let Some(field) = field
        && let Some(stripped) = text.strip_prefix(&format!("{field}: "))
    {
        text = stripped.to_owned();
    }
    text
}

/// YAML syntax errors mention positions inside the document (`at line 4 column 1, while parsing
/// a flow sequence at line 3 column 18`); make them file positions.
fn shift_line_numbers(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(line) => out.push_str(&(line + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Reads every `*.yaml` / `*.yml` file below `dir`, recursively, in sorted path order.
///
/// Symbolic links are followed, but a directory is read once however many links lead to it, so
/// a link loop ends. A file or subdirectory that cannot be read (a dangling link, no
/// permission) becomes a [`LoadError`] for that path and the rest is read; only an unreadable
/// `dir` itself fails the whole load.
pub fn load_dir(dir: &Path) -> Result<Parsed, std::io::Error> {
    load_paths(&[dir.to_owned()])
}

/// Reads files and directories (recursively), in the given order; directory contents are read
/// in sorted path order. See [`load_dir`] for links and unreadable entries.
pub fn load_paths(paths: &[PathBuf]) -> Result<Parsed, std::io::Error> {
    let mut parsed = Parsed::default();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| with_path(e, path))?;
        let files = if metadata.is_dir() {
            let mut walk = Walk::default();
            walk.directory(path, true)?;
            parsed.errors.extend(walk.errors);
            let mut files = walk.files;
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let bytes = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                Err(error) => {
                    parsed.errors.push(unreadable(&file, &error));
                    continue;
                }
            };
            match String::from_utf8(bytes) {
                Ok(text) => parsed.extend(parse_documents(&text, &file)),
                Err(e) => parsed.errors.push(LoadError {
                    file: file.clone(),
                    line: 1,
                    column: None,
                    resource: None,
                    field: None,
                    cause: format!("file is not UTF-8: {e}"),
                }),
            }
        }
    }
    Ok(parsed)
}

fn with_path(error: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

fn unreadable(path: &Path, error: &std::io::Error) -> LoadError {
    let dangling = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
        && std::fs::metadata(path).is_err();
    LoadError {
        file: path.to_owned(),
        line: 1,
        column: None,
        resource: None,
        field: None,
        cause: if dangling {
            format!("cannot be read: a dangling symbolic link ({error}); skipped")
        } else {
            format!("cannot be read ({error}); skipped")
        },
    }
}

/// A directory walk: the YAML files found, the entries that could not be read, and the
/// directories read so far (by canonical path), so a link loop is not followed.
#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    errors: Vec<LoadError>,
    visited: std::collections::HashSet<PathBuf>,
}

impl Walk {
    /// Reads `dir`; only the top directory's errors fail the walk.
    fn directory(&mut self, dir: &Path, top: bool) -> Result<(), std::io::Error> {
        let canonical = match std::fs::canonicalize(dir) {
            Ok(canonical) => canonical,
            Err(error) if !top => {
                self.errors.push(unreadable(dir, &error));
                return Ok(());
            }
            Err(error) => return Err(with_path(error, dir)),
        };
        if !self.visited.insert(canonical) {
            return Ok(());
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if !top => {
                self.errors.push(unreadable(dir, &error));
                return Ok(());
            }
            Err(error) => return Err(with_path(error, dir)),
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(error) => {
                    self.errors.push(unreadable(dir, &error));
                    continue;
                }
            };
            if path.is_dir() {
                self.directory(&path, false)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml")
            {
                self.files.push(path);
            }
        }
        Ok(())
    }
}

/// Decodes an object as the API server serves it (JSON; list items may lack `apiVersion` and
/// `kind`, which are then taken from the arguments) with the config-file loader, so objects read
/// from a cluster report errors and ignored fields as files do. `origin` names it in errors
/// (`kubernetes://VirtualService/gloo-system/x`); the object is loaded as one line of JSON, so
/// the line is always 1.
///
/// `status` is left out: controllers write it, and a status some other writer shaped
/// differently must not make the spec unreadable. `managedFields` is the API server's
/// bookkeeping and says nothing about the configuration.
pub fn decode_api_object(
    mut value: serde_json::Value,
    api_version: &str,
    kind: &str,
    origin: &Path,
) -> Result<Loaded, LoadError> {
    let failure = |cause: String| LoadError {
        file: origin.to_owned(),
        line: 1,
        column: None,
        resource: None,
        field: None,
        cause,
    };
    let serde_json::Value::Object(fields) = &mut value else {
        return Err(failure("the object is not a JSON object".to_owned()));
    };
    fields.insert("apiVersion".into(), api_version.into());
    fields.insert("kind".into(), kind.into());
    fields.remove("status");
    if let Some(serde_json::Value::Object(metadata)) = fields.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    let mut parsed = parse_documents(&value.to_string(), origin);
    if let Some(error) = parsed.errors.pop() {
        return Err(LoadError {
            // A column in one line of re-encoded JSON means nothing to the user.
            column: None,
            ..error
        });
    }
    parsed
        .resources
        .pop()
        .ok_or_else(|| failure("the object decoded to nothing".to_owned()))
}

/// Writes one resource as a YAML document a cluster would accept.
pub fn to_yaml(resource: &Resource) -> String {
    // Every model type is plain data (strings, numbers, maps, sequences, unit enums written as
    // strings), which YAML serialisation cannot reject.
    serde_norway::to_string(resource).expect("model resources always serialise to YAML")
}

/// Writes resources as one multi-document YAML stream.
pub fn to_yaml_documents(resources: &[Resource]) -> String {
    resources
        .iter()
        .map(to_yaml)
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: ns}\n";

    #[test]
    fn a_directory_link_loop_is_read_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s.yaml"), SERVICE).expect("write");
        std::os::unix::fs::symlink(".", dir.path().join("again")).expect("link");
        std::os::unix::fs::symlink(".", dir.path().join("and-again")).expect("link");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("..", dir.path().join("sub/up")).expect("link");
        let parsed = load_dir(dir.path()).expect("loads");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.resources.len(), 1, "{:?}", parsed.resources);
    }

    #[test]
    fn an_unreadable_file_is_reported_and_the_rest_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s.yaml"), SERVICE).expect("write");
        let dangling = dir.path().join("broken.yaml");
        std::os::unix::fs::symlink("nowhere.yaml", &dangling).expect("link");
        std::os::unix::fs::symlink("missing-dir", dir.path().join("gone")).expect("link");
        let parsed = load_dir(dir.path()).expect("loads");
        assert_eq!(parsed.resources.len(), 1);
        let [error] = parsed.errors.as_slice() else {
            panic!("{:?}", parsed.errors)
        };
        assert_eq!(error.file, dangling);
        assert!(
            error.cause.contains("dangling symbolic link"),
            "{}",
            error.cause
        );
    }

    fn parse(text: &str) -> Parsed {
        parse_documents(text, Path::new("manifests/gloo/vs.yaml"))
    }

    const VS_WITH_BAD_PREFIX: &str = "\
# the walkthrough's virtual service, with a typo
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: colorgateway
  namespace: gloo-system
spec:
  virtualHost:
    domains: ['*']
    routes:
    - matchers:
      - prefix: [/appmesh/color]
      routeAction:
        single: {upstream: {name: appmesh-demo-colorgateway-9080, namespace: gloo-system}}
";

    #[test]
    fn tool_configs_are_passed_over_and_objects_beside_them_still_load() {
        let parsed = parse(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nname: colormesh\nnodes: [{role: control-plane}]\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: gloo-system}\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let keys: Vec<String> = parsed
            .resources
            .iter()
            .map(|loaded| loaded.resource.key().to_string())
            .collect();
        assert_eq!(keys, ["Namespace gloo-system"]);
        assert!(is_tool_config("eksctl.io/v1alpha5"));
        assert!(!is_tool_config("gateway.solo.io/v1"));
    }

    #[test]
    fn errors_name_file_line_resource_and_field() {
        let parsed = parse(VS_WITH_BAD_PREFIX);
        assert!(parsed.resources.is_empty());
        let [error] = parsed.errors.as_slice() else {
            panic!("{:?}", parsed.errors)
        };
        assert_eq!(error.line, 12);
        assert_eq!(error.column, Some(17));
        assert_eq!(
            error.resource.as_deref(),
            Some("VirtualService gloo-system/colorgateway")
        );
        assert_eq!(
            error.field.as_deref(),
            Some("spec.virtualHost.routes[0].matchers[0].prefix")
        );
        assert_eq!(
            error.to_string(),
            "manifests/gloo/vs.yaml:12: VirtualService gloo-system/colorgateway: spec.virtualHost.routes[0].matchers[0].prefix: invalid type: sequence, expected a string"
        );
    }

    #[test]
    fn one_of_errors_point_at_the_route() {
        let text = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: vs, namespace: gloo-system}\nspec:\n  virtualHost:\n    routes:\n    - matchers: [{prefix: /}]\n      routeAction: {single: {upstream: {name: a}}}\n    - matchers: [{prefix: /b}]\n";
        let parsed = parse(text);
        let [error] = parsed.errors.as_slice() else {
            panic!("{:?}", parsed.errors)
        };
        assert_eq!(error.field.as_deref(), Some("spec.virtualHost.routes[1]"));
        assert!(
            error.cause.contains(
                "route needs exactly one of routeAction, directResponseAction, found none"
            ),
            "{error}"
        );
    }

    #[test]
    fn bad_documents_do_not_hide_good_ones() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: appmesh-demo}\n---\napiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: ug, namespace: gloo-system}\nspec:\n  destinations:\n  - destination: {upstream: {name: a}}\n    weight: -1\n---\n\n---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: colorteller, namespace: appmesh-demo}\nspec:\n  ports: [{port: 9080, name: http}]\n---\nkind: Service\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: [oops\n";
        let parsed = parse(text);
        let keys: Vec<String> = parsed
            .resources
            .iter()
            .map(|l| l.resource.key().to_string())
            .collect();
        assert_eq!(
            keys,
            vec!["Namespace appmesh-demo", "Service appmesh-demo/colorteller"]
        );
        assert_eq!(parsed.resources[1].origin.line, 17);
        let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("manifests/gloo/vs.yaml:11: UpstreamGroup gloo-system/ug: spec.destinations[0].weight: invalid type: integer `-1`, expected u32"), "{}", errors[0]);
        assert_eq!(errors[1], "manifests/gloo/vs.yaml:23: missing apiVersion");
        assert_eq!(
            errors[2],
            "manifests/gloo/vs.yaml:29: did not find expected ',' or ']' at line 29 column 1, while parsing a flow sequence at line 28 column 18"
        );
        assert_eq!(parsed.errors[2].column, Some(1));
    }

    #[test]
    fn unknown_fields_are_listed_not_errors() {
        let text = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: vs, namespace: gloo-system, labels: {a: b}}\nspec:\n  sslConfig: {secretRef: {name: tls}}\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers: [{prefix: /}]\n      routeAction: {single: {upstream: {name: a}}}\n      options:\n        cors: {allowOrigin: ['*']}\n        prefixRewrite: /\n";
        let parsed = parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(
            parsed.resources[0].ignored_fields,
            vec!["spec.sslConfig", "spec.virtualHost.routes[0].options.cors"]
        );
    }

    #[test]
    fn lists_are_expanded_and_unknown_kinds_kept_by_header() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cm}\n  data: {a: b}\n  extra: 1\n- apiVersion: cert-manager.io/v1\n  kind: Certificate\n  metadata: {name: c, namespace: gloo-system}\n  spec: {secretName: x}\n";
        let parsed = parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let keys: Vec<String> = parsed
            .resources
            .iter()
            .map(|l| l.resource.key().to_string())
            .collect();
        assert_eq!(
            keys,
            vec!["ConfigMap default/cm", "Certificate gloo-system/c"]
        );
        assert_eq!(parsed.resources[0].ignored_fields, vec!["items[0].extra"]);
        assert!(parsed.resources[1].ignored_fields.is_empty());
    }

    #[test]
    fn keys_default_namespace_and_cluster_scope() {
        let text = "apiVersion: appmesh.k8s.aws/v1beta2\nkind: VirtualService\nmetadata: {name: colorteller.appmesh-demo}\nspec: {}\n---\napiVersion: appmesh.k8s.aws/v1beta2\nkind: Mesh\nmetadata: {name: color-mesh, namespace: ignored}\nspec: {}\n";
        let parsed = parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let key = parsed.resources[0].resource.key();
        assert_eq!(key.kind, ResourceKind::AppMeshVirtualService);
        assert_eq!(
            key.to_string(),
            "VirtualService default/colorteller.appmesh-demo"
        );
        assert_eq!(
            parsed.resources[1].resource.key().to_string(),
            "Mesh color-mesh"
        );
        assert_eq!(parsed.resources[1].origin.line, 6);
    }

    #[test]
    fn missing_name_is_an_error() {
        let parsed = parse("apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n");
        assert_eq!(
            parsed.errors[0].to_string(),
            "manifests/gloo/vs.yaml:1: Namespace <unnamed>: metadata.name: a name is required"
        );
    }

    #[test]
    fn separator_rule_matches_kubectl() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- \nc: |\n  ---\n---x: 3\n");
        let texts: Vec<&str> = docs.iter().map(|d| d.text).collect();
        assert_eq!(texts, vec!["a: 1\n", "b: 2\n", "c: |\n  ---\n---x: 3\n"]);
        assert_eq!(
            docs.iter().map(|d| d.first_line).collect::<Vec<_>>(),
            vec![1, 3, 5]
        );
    }

    #[test]
    fn yaml_round_trips_for_every_kind() {
        let text = include_str!("../../manifests/colorapp/colorgateway.yaml").to_owned()
            + "---\n"
            + include_str!("../../manifests/colorapp/colorteller.yaml")
            + "---\n"
            + include_str!("../../manifests/colorapp/mesh.yaml")
            + "---\n"
            + include_str!("../../manifests/colorapp/namespace.yaml")
            + "---\n"
            + include_str!("../../manifests/gloo/upstreamgroup-80-20.yaml")
            + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: appmesh-demo}\ndata: {k: v}\n"
            + "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: colorteller-abc, namespace: appmesh-demo, labels: {kubernetes.io/service-name: colorteller}}\naddressType: IPv4\nendpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]\nports: [{name: http, port: 9080, protocol: TCP}]\n"
            + "---\napiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: static, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 9080}]}}\n"
            + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: x}\n";
        let parsed = parse(&text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let kinds: std::collections::BTreeSet<ResourceKind> =
            parsed.resources.iter().map(|l| l.resource.kind()).collect();
        assert_eq!(kinds.len(), 13, "{kinds:?}");
        let resources: Vec<Resource> = parsed.resources.into_iter().map(|l| l.resource).collect();
        for resource in &resources {
            let again = parse(&to_yaml(resource));
            assert!(again.errors.is_empty(), "{:?}", again.errors);
            assert_eq!(again.resources[0].resource, *resource);
            assert!(again.resources[0].ignored_fields.is_empty());
        }
        let all = parse(&to_yaml_documents(&resources));
        let back: Vec<Resource> = all.resources.into_iter().map(|l| l.resource).collect();
        assert_eq!(back, resources);
    }
}
