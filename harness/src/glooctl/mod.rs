//! An emulation of the glooctl commands the walkthrough uses, acting on a [`GlooStore`].
//!
//! The local backend has no Kubernetes API server and no Gloo control plane, so glooctl cannot
//! run against it; instead the same command lines are parsed here with glooctl's own flag names,
//! short flags and defaults, and turned into the same resource changes and the same tables.
//! Cluster backends run the real glooctl instead.
//!
//! Emulated: `create virtualservice|vs`, `add route`, `remove route`, `delete virtualservice|vs`,
//! `get upstream|us`, `get upstreamgroup|ug`, `get virtualservice|vs` (each with `-o
//! table|yaml|json`), `proxy url` and `proxy address`. Anything else is refused with a message
//! that lists these.

use std::collections::BTreeMap;

use clap::{Args, Parser, Subcommand, ValueEnum};
use model::gloo::{
    Action, Destination, GlooStatus, HeaderMatcher, Matcher, PathMatcher, QueryParameterMatcher,
    ResourceRef, Route, RouteAction, RouteOptions, State, UpstreamGroup, UpstreamType,
    VirtualService, VirtualServiceSpec,
};
use model::k8s::ObjectMeta;
use model::{Resource, ResourceKind};

use crate::backend::{BackendError, CommandOutput};

mod table;

use table::Table;

/// The namespace glooctl reads and writes by default (`-n`).
pub const DEFAULT_NAMESPACE: &str = model::gloo::GLOO_NAMESPACE;

/// The commands [`run`] understands, for error messages.
pub const EMULATED_COMMANDS: &str = "create virtualservice, add route, remove route, delete virtualservice, get upstream, get upstreamgroup, get virtualservice, proxy url, proxy address";

/// The Gloo resource kinds glooctl works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlooKind {
    /// `gateway.solo.io/v1 VirtualService`.
    VirtualService,
    /// `gloo.solo.io/v1 Upstream`.
    Upstream,
    /// `gloo.solo.io/v1 UpstreamGroup`.
    UpstreamGroup,
}

impl GlooKind {
    /// The model's kind.
    pub fn resource_kind(self) -> ResourceKind {
        match self {
            GlooKind::VirtualService => ResourceKind::GlooVirtualService,
            GlooKind::Upstream => ResourceKind::Upstream,
            GlooKind::UpstreamGroup => ResourceKind::UpstreamGroup,
        }
    }

    /// The kind of a model resource, when it is a Gloo kind.
    pub fn of(kind: &ResourceKind) -> Option<Self> {
        match kind {
            ResourceKind::GlooVirtualService => Some(GlooKind::VirtualService),
            ResourceKind::Upstream => Some(GlooKind::Upstream),
            ResourceKind::UpstreamGroup => Some(GlooKind::UpstreamGroup),
            _ => None,
        }
    }

    /// The kind as glooctl's messages name it.
    pub fn noun(self) -> &'static str {
        match self {
            GlooKind::VirtualService => "virtual service",
            GlooKind::Upstream => "upstream",
            GlooKind::UpstreamGroup => "upstream group",
        }
    }
}

/// Why an emulated glooctl command failed; printed as glooctl prints errors (`Error: ...`).
#[derive(Debug, thiserror::Error)]
pub enum GlooctlError {
    #[error("a name is required: pass --name or NAME")]
    NameRequired,
    #[error("--name is required: the virtual service to remove the route from")]
    RouteOwnerRequired,
    #[error("{} {namespace}.{name} already exists", .kind.noun())]
    AlreadyExists {
        kind: GlooKind,
        namespace: String,
        name: String,
    },
    #[error("{} {namespace}.{name} does not exist", .kind.noun())]
    NotFound {
        kind: GlooKind,
        namespace: String,
        name: String,
    },
    /// `--index` past the routes of the virtual service (`routes` of them).
    #[error(
        "--index {index} is out of range: virtual service {namespace}.{name} has {routes} route(s)"
    )]
    IndexOutOfRange {
        index: usize,
        namespace: String,
        name: String,
        routes: usize,
    },
    #[error("{flag} {text:?}: expected KEY=VALUE")]
    KeyValue { flag: &'static str, text: String },
    #[error("must provide exactly one of --path-prefix, --path-exact, --path-regex")]
    PathMatcher,
    #[error("give either --dest-name or --upstream-group-name, not both")]
    TwoDestinations,
    #[error("a destination is required: pass --dest-name (an upstream) or --upstream-group-name")]
    NoDestination,
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A store was handed a resource that glooctl does not manage.
    #[error("{kind} is not a Gloo kind")]
    NotGlooKind { kind: ResourceKind },
    /// The store has no gateway to report (`detail` says why, when it knows).
    #[error("the gateway proxy is not running{}", .detail.map(|d| format!(" ({d})")).unwrap_or_default())]
    ProxyNotRunning { detail: Option<&'static str> },
    /// The backend behind the store failed to write.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Where glooctl reads and writes Gloo resources: the local backend's cluster store, or an
/// in-memory store in tests.
pub trait GlooStore {
    /// Every resource of `kind` in `namespace`, sorted by name.
    fn list(&self, kind: GlooKind, namespace: &str) -> Vec<Resource>;
    /// One resource.
    fn get(&self, kind: GlooKind, namespace: &str, name: &str) -> Option<Resource>;
    /// Creates or replaces a resource (`kubectl apply` semantics).
    fn apply(&mut self, resource: Resource) -> Result<(), GlooctlError>;
    /// Deletes a resource; `Ok(false)` when it did not exist.
    fn delete(&mut self, kind: GlooKind, namespace: &str, name: &str)
    -> Result<bool, GlooctlError>;
    /// The state Gloo reports for the resource's current version (`Pending` until reported).
    fn status(&self, kind: GlooKind, namespace: &str, name: &str) -> State;
    /// The gateway's external URL, as `glooctl proxy url` prints it (`http://host:port`).
    fn proxy_url(&self) -> Result<String, GlooctlError>;
}

#[derive(Debug, Parser)]
#[command(
    name = "glooctl",
    about = "glooctl as emulated by the colormesh local backend",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a Gloo resource.
    Create {
        #[command(subcommand)]
        what: CreateCommand,
    },
    /// Add a route to a virtual service.
    Add {
        #[command(subcommand)]
        what: AddCommand,
    },
    /// Remove a route from a virtual service.
    Remove {
        #[command(subcommand)]
        what: RemoveCommand,
    },
    /// Delete a Gloo resource.
    Delete {
        #[command(subcommand)]
        what: DeleteCommand,
    },
    /// Display one or a list of Gloo resources.
    Get {
        #[command(subcommand)]
        what: GetCommand,
    },
    /// Interact with the gateway proxy.
    Proxy {
        #[command(subcommand)]
        what: ProxyCommand,
    },
}

#[derive(Debug, Args)]
struct Metadata {
    /// Name of the resource to read or write.
    #[arg(long)]
    name: Option<String>,
    /// Namespace for reading or writing resources.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
enum Output {
    #[default]
    Table,
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
enum CreateCommand {
    /// Create a virtual service.
    #[command(name = "virtualservice", visible_alias = "vs")]
    VirtualService {
        /// The name (same as --name).
        resource_name: Option<String>,
        #[command(flatten)]
        metadata: Metadata,
        /// Comma-separated list of domains.
        #[arg(long, value_delimiter = ',')]
        domains: Vec<String>,
        /// Descriptive name of the virtual service (defaults to the name).
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AddCommand {
    /// Add a route to a virtual service.
    Route(Box<AddRoute>),
}

#[derive(Debug, Args)]
struct AddRoute {
    #[command(flatten)]
    metadata: Metadata,
    /// Index in the virtual service's route list where the route is inserted.
    #[arg(short = 'x', long, default_value_t = 0)]
    index: u32,
    /// Path prefix to match.
    #[arg(short = 'p', long, group = "path")]
    path_prefix: Option<String>,
    /// Exact path to match.
    #[arg(short = 'e', long, group = "path")]
    path_exact: Option<String>,
    /// Regex matcher for the path.
    #[arg(short = 'r', long, group = "path")]
    path_regex: Option<String>,
    /// HTTP methods to match.
    #[arg(short = 'm', long = "method", value_delimiter = ',')]
    methods: Vec<String>,
    /// Headers to match, `KEY=VALUE` (the value is a regex).
    #[arg(short = 'd', long = "header", value_delimiter = ',')]
    headers: Vec<String>,
    /// Query parameters to match, `KEY=VALUE` (the value is a regex).
    #[arg(short = 'q', long = "queryParameter", value_delimiter = ',')]
    query_parameters: Vec<String>,
    /// Name of the destination upstream.
    #[arg(short = 'u', long)]
    dest_name: Option<String>,
    /// Namespace of the destination upstream.
    #[arg(short = 's', long, default_value = DEFAULT_NAMESPACE)]
    dest_namespace: String,
    /// Name of the destination upstream group.
    #[arg(long)]
    upstream_group_name: Option<String>,
    /// Namespace of the destination upstream group.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    upstream_group_namespace: String,
    /// Rewrite the matched prefix to this.
    #[arg(long)]
    prefix_rewrite: Option<String>,
}

#[derive(Debug, Subcommand)]
enum RemoveCommand {
    /// Remove a route from a virtual service.
    Route {
        #[command(flatten)]
        metadata: Metadata,
        /// Index of the route to remove.
        #[arg(short = 'x', long, default_value_t = 0)]
        index: u32,
    },
}

#[derive(Debug, Subcommand)]
enum DeleteCommand {
    /// Delete a virtual service.
    #[command(name = "virtualservice", visible_alias = "vs")]
    VirtualService {
        /// The name (same as --name).
        resource_name: Option<String>,
        #[command(flatten)]
        metadata: Metadata,
    },
}

#[derive(Debug, Args)]
struct GetArgs {
    /// The name (same as --name); all resources in the namespace when absent.
    resource_name: Option<String>,
    #[command(flatten)]
    metadata: Metadata,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum GetCommand {
    /// Read an upstream or list upstreams in a namespace.
    #[command(name = "upstream", visible_aliases = ["upstreams", "us"])]
    Upstream(GetArgs),
    /// Read an upstream group or list upstream groups in a namespace.
    #[command(name = "upstreamgroup", visible_aliases = ["upstreamgroups", "ug"])]
    UpstreamGroup(GetArgs),
    /// Read a virtual service or list virtual services in a namespace.
    #[command(name = "virtualservice", visible_aliases = ["virtualservices", "vs"])]
    VirtualService(GetArgs),
}

#[derive(Debug, Subcommand)]
enum ProxyCommand {
    /// Print the http endpoint of the gateway proxy.
    Url,
    /// Print the socket address of the gateway proxy.
    Address,
}

/// Runs one glooctl command line (arguments without the leading `glooctl`) against `store`.
pub fn run(args: &[String], store: &mut impl GlooStore) -> CommandOutput {
    let cli = match Cli::try_parse_from(
        std::iter::once("glooctl").chain(args.iter().map(String::as_str)),
    ) {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            let rendered = error.render().to_string();
            return match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    CommandOutput {
                        stdout: rendered,
                        stderr: String::new(),
                        success: true,
                    }
                }
                _ => failure(format!(
                    "{rendered}\nglooctl {}: the local backend emulates only these glooctl commands: {EMULATED_COMMANDS}\n",
                    args.join(" ")
                )),
            };
        }
    };
    match execute(cli.command, store) {
        Ok(stdout) => CommandOutput {
            stdout,
            stderr: String::new(),
            success: true,
        },
        Err(message) => failure(format!("Error: {message}\n")),
    }
}

fn failure(stderr: String) -> CommandOutput {
    CommandOutput {
        stdout: String::new(),
        stderr,
        success: false,
    }
}

fn execute(command: Command, store: &mut impl GlooStore) -> Result<String, GlooctlError> {
    match command {
        Command::Create {
            what:
                CreateCommand::VirtualService {
                    resource_name,
                    metadata,
                    domains,
                    display_name,
                },
        } => {
            let name = resource_name
                .or(metadata.name)
                .ok_or(GlooctlError::NameRequired)?;
            if store
                .get(GlooKind::VirtualService, &metadata.namespace, &name)
                .is_some()
            {
                return Err(GlooctlError::AlreadyExists {
                    kind: GlooKind::VirtualService,
                    namespace: metadata.namespace,
                    name,
                });
            }
            let domains = if domains.is_empty() {
                vec!["*".to_owned()]
            } else {
                domains
            };
            let mut vs = new_virtual_service(&metadata.namespace, &name, domains);
            vs.spec.display_name = Some(display_name.unwrap_or_else(|| name.clone()));
            store.apply(Resource::GlooVirtualService(Box::new(vs)))?;
            Ok(virtual_service_table(store, &metadata.namespace, &[name]))
        }
        Command::Add {
            what: AddCommand::Route(add),
        } => add_route(*add, store),
        Command::Remove {
            what: RemoveCommand::Route { metadata, index },
        } => {
            let name = metadata.name.ok_or(GlooctlError::RouteOwnerRequired)?;
            let mut vs = read_virtual_service(store, &metadata.namespace, &name)?;
            let routes = &mut vs.spec.virtual_host.routes;
            let index = index as usize;
            if index >= routes.len() {
                return Err(GlooctlError::IndexOutOfRange {
                    index,
                    namespace: metadata.namespace,
                    name,
                    routes: routes.len(),
                });
            }
            routes.remove(index);
            store.apply(Resource::GlooVirtualService(Box::new(vs)))?;
            Ok(virtual_service_table(store, &metadata.namespace, &[name]))
        }
        Command::Delete {
            what:
                DeleteCommand::VirtualService {
                    resource_name,
                    metadata,
                },
        } => {
            let name = resource_name
                .or(metadata.name)
                .ok_or(GlooctlError::NameRequired)?;
            if store.delete(GlooKind::VirtualService, &metadata.namespace, &name)? {
                Ok(String::new())
            } else {
                Err(GlooctlError::NotFound {
                    kind: GlooKind::VirtualService,
                    namespace: metadata.namespace,
                    name,
                })
            }
        }
        Command::Get { what } => {
            let (kind, args) = match what {
                GetCommand::Upstream(args) => (GlooKind::Upstream, args),
                GetCommand::UpstreamGroup(args) => (GlooKind::UpstreamGroup, args),
                GetCommand::VirtualService(args) => (GlooKind::VirtualService, args),
            };
            get(kind, args, store)
        }
        Command::Proxy { what } => {
            let url = store.proxy_url()?;
            match what {
                ProxyCommand::Url => Ok(format!("{url}\n")),
                ProxyCommand::Address => {
                    let address = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
                    Ok(format!("{}\n", address.trim_end_matches('/')))
                }
            }
        }
    }
}

fn new_virtual_service(namespace: &str, name: &str, domains: Vec<String>) -> VirtualService {
    let mut vs = VirtualService::new(name, VirtualServiceSpec::default());
    vs.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    };
    vs.spec.virtual_host.domains = domains;
    vs
}

fn read_virtual_service(
    store: &impl GlooStore,
    namespace: &str,
    name: &str,
) -> Result<VirtualService, GlooctlError> {
    match store.get(GlooKind::VirtualService, namespace, name) {
        Some(Resource::GlooVirtualService(vs)) => Ok(*vs),
        _ => Err(GlooctlError::NotFound {
            kind: GlooKind::VirtualService,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
    }
}

fn key_value(flag: &'static str, text: &str) -> Result<(String, String), GlooctlError> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(GlooctlError::KeyValue {
            flag,
            text: text.to_owned(),
        }),
    }
}

fn add_route(add: AddRoute, store: &mut impl GlooStore) -> Result<String, GlooctlError> {
    let path = match (add.path_prefix, add.path_exact, add.path_regex) {
        (Some(prefix), None, None) => PathMatcher::Prefix(prefix),
        (None, Some(exact), None) => PathMatcher::Exact(exact),
        (None, None, Some(regex)) => PathMatcher::Regex(regex),
        _ => {
            return Err(GlooctlError::PathMatcher);
        }
    };
    let action = match (add.dest_name, add.upstream_group_name) {
        (Some(upstream), None) => RouteAction::Single(Destination {
            upstream: ResourceRef::new(&add.dest_namespace, &upstream),
        }),
        (None, Some(group)) => {
            RouteAction::UpstreamGroup(ResourceRef::new(&add.upstream_group_namespace, &group))
        }
        (Some(_), Some(_)) => {
            return Err(GlooctlError::TwoDestinations);
        }
        (None, None) => {
            return Err(GlooctlError::NoDestination);
        }
    };
    let headers = add
        .headers
        .iter()
        .map(|h| key_value("--header", h))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(name, value)| HeaderMatcher {
            name,
            value: Some(value),
            regex: true,
            invert_match: false,
        })
        .collect();
    let query_parameters = add
        .query_parameters
        .iter()
        .map(|q| key_value("--queryParameter", q))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(name, value)| QueryParameterMatcher {
            name,
            value: Some(value),
            regex: true,
        })
        .collect();
    let route = Route {
        name: None,
        matchers: vec![Matcher {
            path: Some(path),
            case_sensitive: None,
            headers,
            query_parameters,
            methods: add.methods,
        }],
        action: Action::Route(action),
        options: add.prefix_rewrite.map(|rewrite| RouteOptions {
            prefix_rewrite: Some(rewrite),
            ..RouteOptions::default()
        }),
    };
    let namespace = add.metadata.namespace;
    let mut vs = match add.metadata.name {
        Some(name) => match store.get(GlooKind::VirtualService, &namespace, &name) {
            Some(Resource::GlooVirtualService(vs)) => *vs,
            _ => new_virtual_service(&namespace, &name, vec!["*".to_owned()]),
        },
        // glooctl's rule: any virtual service in the namespace that serves `*`, else `default`.
        None => store
            .list(GlooKind::VirtualService, &namespace)
            .into_iter()
            .find_map(|resource| match resource {
                Resource::GlooVirtualService(vs)
                    if vs.spec.virtual_host.domains.iter().any(|d| d == "*") =>
                {
                    Some(*vs)
                }
                _ => None,
            })
            .or_else(|| {
                store
                    .get(GlooKind::VirtualService, &namespace, "default")
                    .and_then(|r| match r {
                        Resource::GlooVirtualService(vs) => Some(*vs),
                        _ => None,
                    })
            })
            .unwrap_or_else(|| new_virtual_service(&namespace, "default", vec!["*".to_owned()])),
    };
    let name = vs.metadata.name.clone().unwrap_or_default();
    let routes = &mut vs.spec.virtual_host.routes;
    let index = add.index as usize;
    if index > routes.len() {
        return Err(GlooctlError::IndexOutOfRange {
            index,
            namespace,
            name,
            routes: routes.len(),
        });
    }
    routes.insert(index, route);
    store.apply(Resource::GlooVirtualService(Box::new(vs)))?;
    Ok(virtual_service_table(store, &namespace, &[name]))
}

fn get(kind: GlooKind, args: GetArgs, store: &impl GlooStore) -> Result<String, GlooctlError> {
    let namespace = &args.metadata.namespace;
    let resources = match args.resource_name.or(args.metadata.name) {
        Some(name) => {
            vec![
                store
                    .get(kind, namespace, &name)
                    .ok_or_else(|| GlooctlError::NotFound {
                        kind,
                        namespace: namespace.clone(),
                        name: name.clone(),
                    })?,
            ]
        }
        None => store.list(kind, namespace),
    };
    match args.output {
        Output::Table => {
            let names: Vec<String> = resources
                .iter()
                .filter_map(|r| r.metadata().name.clone())
                .collect();
            Ok(match kind {
                GlooKind::VirtualService => virtual_service_table(store, namespace, &names),
                GlooKind::Upstream => upstream_table(store, &resources),
                GlooKind::UpstreamGroup => upstream_group_table(store, &resources),
            })
        }
        Output::Yaml => {
            let with_status: Vec<Resource> = resources
                .into_iter()
                .map(|r| with_status(r, store))
                .collect();
            Ok(model::to_yaml_documents(&with_status))
        }
        Output::Json => {
            let with_status: Vec<Resource> = resources
                .into_iter()
                .map(|r| with_status(r, store))
                .collect();
            let value = match with_status.as_slice() {
                [one] => serde_json::to_value(one),
                many => serde_json::to_value(many),
            }?;
            Ok(format!("{value:#}\n"))
        }
    }
}

/// The resource with Gloo's status block as a cluster would show it.
fn with_status(resource: Resource, store: &impl GlooStore) -> Resource {
    let Some(kind) = GlooKind::of(&resource.kind()) else {
        return resource;
    };
    let meta = resource.metadata();
    let state = store.status(
        kind,
        meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
        meta.name.as_deref().unwrap_or_default(),
    );
    let set = |status: &mut Option<GlooStatus>| {
        GlooStatus::set_on(status, DEFAULT_NAMESPACE, state, None, "gloo")
    };
    match resource {
        Resource::GlooVirtualService(mut vs) => {
            set(&mut vs.status);
            Resource::GlooVirtualService(vs)
        }
        Resource::Upstream(mut upstream) => {
            set(&mut upstream.status);
            Resource::Upstream(upstream)
        }
        Resource::UpstreamGroup(mut group) => {
            set(&mut group.status);
            Resource::UpstreamGroup(group)
        }
        other => other,
    }
}

fn status_of(store: &impl GlooStore, kind: GlooKind, resource: &Resource) -> String {
    let meta = resource.metadata();
    store
        .status(
            kind,
            meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
            meta.name.as_deref().unwrap_or_default(),
        )
        .to_string()
}

/// `glooctl get vs` for the named virtual services (those that exist).
fn virtual_service_table(store: &impl GlooStore, namespace: &str, names: &[String]) -> String {
    let mut table = Table::new(&[
        "Virtual Service",
        "Display Name",
        "Domains",
        "SSL",
        "Status",
        "ListenerPlugins",
        "Routes",
    ]);
    for name in names {
        let Some(resource) = store.get(GlooKind::VirtualService, namespace, name) else {
            continue;
        };
        let Resource::GlooVirtualService(vs) = &resource else {
            continue;
        };
        let status = status_of(store, GlooKind::VirtualService, &resource);
        let mut routes: Vec<String> = vs.spec.virtual_host.routes.iter().map(route_line).collect();
        if routes.is_empty() {
            routes.push(String::new());
        }
        for (i, line) in routes.into_iter().enumerate() {
            let mut row = vec![String::new(); 6];
            if i == 0 {
                row = vec![
                    name.clone(),
                    vs.spec.display_name.clone().unwrap_or_default(),
                    vs.spec.virtual_host.domains.join(", "),
                    "none".to_owned(),
                    status.clone(),
                    String::new(),
                ];
            }
            row.push(line);
            table.row(row);
        }
    }
    table.render()
}

/// One route as glooctl summarises it: `matchers -> destination`.
fn route_line(route: &Route) -> String {
    let matchers: Vec<&str> = route
        .matchers
        .iter()
        .map(|m| match &m.path {
            Some(PathMatcher::Prefix(p) | PathMatcher::Exact(p) | PathMatcher::Regex(p)) => {
                p.as_str()
            }
            None => "",
        })
        .collect();
    let destination = match &route.action {
        Action::Route(RouteAction::Single(destination)) => {
            let upstream = &destination.upstream;
            format!(
                "{}.{} (upstream)",
                upstream.namespace.as_deref().unwrap_or_default(),
                upstream.name
            )
        }
        Action::Route(RouteAction::Multi(multi)) => {
            format!("{} destinations", multi.destinations.len())
        }
        Action::Route(RouteAction::UpstreamGroup(group)) => {
            format!(
                "upstream group: {}.{}",
                group.name,
                group.namespace.as_deref().unwrap_or_default()
            )
        }
        Action::DirectResponse(direct) => direct.status.to_string(),
    };
    let prefix = route
        .name
        .as_ref()
        .map(|n| format!("{n}: "))
        .unwrap_or_default();
    format!("{prefix}{} -> {destination}", matchers.join(", "))
}

fn upstream_table(store: &impl GlooStore, upstreams: &[Resource]) -> String {
    let mut table = Table::new(&["Upstream", "type", "status", "details"]);
    for resource in upstreams {
        let Resource::Upstream(upstream) = resource else {
            continue;
        };
        let name = upstream.metadata.name.clone().unwrap_or_default();
        let status = status_of(store, GlooKind::Upstream, resource);
        let (kind, mut details) = match &upstream.spec.upstream_type {
            UpstreamType::Kube(kube) => (
                "Kubernetes",
                vec![
                    format!("svc name:      {}", kube.service_name),
                    format!("svc namespace: {}", kube.service_namespace),
                    format!("port:          {}", kube.service_port),
                ],
            ),
            UpstreamType::Static(fixed) => {
                let mut lines = Vec::new();
                if !fixed.hosts.is_empty() {
                    lines.push("hosts:".to_owned());
                }
                lines.extend(
                    fixed
                        .hosts
                        .iter()
                        .map(|h| format!("- {}:{}", h.addr, h.port)),
                );
                ("Static", lines)
            }
        };
        details.push(String::new());
        for (i, line) in details.into_iter().enumerate() {
            if i == 0 {
                table.row(vec![name.clone(), kind.to_owned(), status.clone(), line]);
            } else {
                table.row(vec![String::new(), String::new(), String::new(), line]);
            }
        }
    }
    table.render()
}

fn upstream_group_table(store: &impl GlooStore, groups: &[Resource]) -> String {
    let mut table = Table::new(&["Upstream Group", "status", "total weight", "details"]);
    let typed: Vec<(&Resource, &UpstreamGroup)> = groups
        .iter()
        .filter_map(|r| match r {
            Resource::UpstreamGroup(group) => Some((r, &**group)),
            _ => None,
        })
        .collect();
    for (index, (resource, group)) in typed.iter().enumerate() {
        let name = group.metadata.name.clone().unwrap_or_default();
        let status = status_of(store, GlooKind::UpstreamGroup, resource);
        let total = group.spec.total_weight();
        let mut details = Vec::new();
        for (i, destination) in group.spec.destinations.iter().enumerate() {
            if i != 0 {
                details.push("\n".to_owned());
            }
            let upstream = &destination.destination.upstream;
            details.push("destination type: Upstream".to_owned());
            details.push(format!(
                "namespace: {}",
                upstream.namespace.as_deref().unwrap_or_default()
            ));
            details.push(format!("name: {}", upstream.name));
            let weight = destination.effective_weight();
            // Go prints float32(w)/float32(total) with %.2f: NaN for a zero total.
            let share = if total == 0 {
                "NaN".to_owned()
            } else {
                format!("{:.2}", f64::from(weight) / total as f64)
            };
            details.push(format!("weight: {weight}   % total: {share}"));
        }
        if details.is_empty() {
            details.push(String::new());
        }
        for (i, line) in details.into_iter().enumerate() {
            if i == 0 {
                table.row(vec![name.clone(), status.clone(), total.to_string(), line]);
            } else {
                table.row(vec![String::new(), String::new(), String::new(), line]);
            }
        }
        if index + 1 != typed.len() {
            table.row(vec![
                String::new(),
                String::new(),
                String::new(),
                "---".to_owned(),
            ]);
        }
    }
    table.render()
}

/// An in-memory [`GlooStore`]: resources by kind, namespace and name, with settable statuses.
/// Used by tests and by anything that wants glooctl's tables without a backend.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    resources: BTreeMap<(ResourceKind, String, String), Resource>,
    statuses: BTreeMap<(ResourceKind, String, String), State>,
    /// What `proxy url` prints.
    pub proxy_url: Option<String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(kind: GlooKind, namespace: &str, name: &str) -> (ResourceKind, String, String) {
        (kind.resource_kind(), namespace.to_owned(), name.to_owned())
    }

    /// Sets the state reported for a resource.
    pub fn set_status(&mut self, kind: GlooKind, namespace: &str, name: &str, state: State) {
        self.statuses
            .insert(Self::key(kind, namespace, name), state);
    }
}

impl GlooStore for MemoryStore {
    fn list(&self, kind: GlooKind, namespace: &str) -> Vec<Resource> {
        self.resources
            .iter()
            .filter(|((k, ns, _), _)| *k == kind.resource_kind() && ns == namespace)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn get(&self, kind: GlooKind, namespace: &str, name: &str) -> Option<Resource> {
        self.resources
            .get(&Self::key(kind, namespace, name))
            .cloned()
    }

    fn apply(&mut self, resource: Resource) -> Result<(), GlooctlError> {
        let kind = GlooKind::of(&resource.kind()).ok_or_else(|| GlooctlError::NotGlooKind {
            kind: resource.kind(),
        })?;
        let meta = resource.metadata();
        let key = Self::key(
            kind,
            meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
            meta.name.as_deref().unwrap_or_default(),
        );
        self.resources.insert(key, resource);
        Ok(())
    }

    fn delete(
        &mut self,
        kind: GlooKind,
        namespace: &str,
        name: &str,
    ) -> Result<bool, GlooctlError> {
        Ok(self
            .resources
            .remove(&Self::key(kind, namespace, name))
            .is_some())
    }

    fn status(&self, kind: GlooKind, namespace: &str, name: &str) -> State {
        self.statuses
            .get(&Self::key(kind, namespace, name))
            .copied()
            .unwrap_or(State::Pending)
    }

    fn proxy_url(&self) -> Result<String, GlooctlError> {
        self.proxy_url
            .clone()
            .ok_or(GlooctlError::ProxyNotRunning { detail: None })
    }
}

#[cfg(test)]
mod tests;
