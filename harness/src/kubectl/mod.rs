//! `kubectl get` for the Gateway API kinds, emulated over a [`KubectlStore`].
//!
//! The Gloo walkthrough checks its resources with `glooctl get ...` (see [`crate::glooctl`]); the
//! Gateway API walkthrough checks them with `kubectl get gatewayclass`, `kubectl get gateway -A`
//! and `kubectl get httproute -n appmesh-demo`. The local backend has no API server, so those
//! command lines are parsed here and answered from its resource store and the gateway's reported
//! statuses, with the tables real kubectl prints for these CRDs: their `additionalPrinterColumns`
//! (Gateway API v1.6.1, `../shared/schemas/gateway-api`):
//!
//! | kind | columns (`-o wide` adds the priority-1 ones) |
//! | --- | --- |
//! | GatewayClass (`gc`) | NAME CONTROLLER ACCEPTED AGE (DESCRIPTION) |
//! | Gateway (`gtw`) | NAME CLASS ADDRESS PROGRAMMED AGE |
//! | HTTPRoute | NAME HOSTNAMES AGE |
//!
//! `-A` adds a NAMESPACE column to the namespaced kinds. A column whose JSONPath finds nothing is
//! left empty. AGE follows kubectl's `HumanDuration`. Like kubectl, an empty list prints
//! `No resources found ...` on standard error and succeeds, an unknown type or a missing name
//! fails. Cluster backends run the real kubectl instead.

use std::time::SystemTime;

use model::{Resource, ResourceKey, ResourceKind};
use serde_json::Value;

use crate::backend::CommandOutput;

/// The namespace kubectl uses without `-n`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The command lines [`run`] understands, for error messages.
pub const EMULATED_COMMANDS: &str =
    "get gatewayclass|gc, get gateway|gtw, get httproute (names, -n NAMESPACE, -A, -o wide)";

/// What `kubectl get` reads: the stored objects and the statuses the gateway reports.
pub trait KubectlStore {
    /// The objects of a kind, in `namespace` (`None`: every namespace). Cluster-scoped kinds
    /// ignore the namespace.
    fn list(&self, kind: &ResourceKind, namespace: Option<&str>) -> Vec<Resource>;
    /// The object's `status` as the controller wrote it (the Gateway API status object), if any.
    fn status(&self, key: &ResourceKey) -> Option<Value>;
    /// A Gateway's `status.addresses[*].value`.
    fn addresses(&self, key: &ResourceKey) -> Vec<String>;
    /// The current time, for AGE.
    fn now(&self) -> SystemTime;
}

/// A kind `kubectl get` knows here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GatewayClass,
    Gateway,
    HttpRoute,
}

impl Kind {
    /// The resource type as kubectl accepts it: plural, singular, short name, `kind.group`.
    fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        let name = lower
            .strip_suffix(".gateway.networking.k8s.io")
            .unwrap_or(&lower);
        match name {
            "gatewayclass" | "gatewayclasses" | "gc" => Some(Kind::GatewayClass),
            "gateway" | "gateways" | "gtw" => Some(Kind::Gateway),
            "httproute" | "httproutes" => Some(Kind::HttpRoute),
            _ => None,
        }
    }

    fn resource_kind(self) -> ResourceKind {
        match self {
            Kind::GatewayClass => ResourceKind::GatewayClass,
            Kind::Gateway => ResourceKind::Gateway,
            Kind::HttpRoute => ResourceKind::HttpRoute,
        }
    }

    /// `<plural>.<group>`, as the API server names the resource in errors.
    fn resource(self) -> &'static str {
        match self {
            Kind::GatewayClass => "gatewayclasses.gateway.networking.k8s.io",
            Kind::Gateway => "gateways.gateway.networking.k8s.io",
            Kind::HttpRoute => "httproutes.gateway.networking.k8s.io",
        }
    }

    fn namespaced(self) -> bool {
        !matches!(self, Kind::GatewayClass)
    }

    fn headers(self, wide: bool) -> Vec<&'static str> {
        match self {
            Kind::GatewayClass if wide => {
                vec!["NAME", "CONTROLLER", "ACCEPTED", "AGE", "DESCRIPTION"]
            }
            Kind::GatewayClass => vec!["NAME", "CONTROLLER", "ACCEPTED", "AGE"],
            Kind::Gateway => vec!["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"],
            Kind::HttpRoute => vec!["NAME", "HOSTNAMES", "AGE"],
        }
    }
}

/// A parsed `kubectl get` command line.
#[derive(Debug, PartialEq, Eq)]
struct Get {
    kind: Kind,
    names: Vec<String>,
    /// `None`: every namespace (`-A`).
    namespace: Option<String>,
    wide: bool,
}

fn parse(args: &[String]) -> Result<Get, String> {
    let mut args = args.iter().map(String::as_str);
    match args.next() {
        Some("get") => {}
        Some(verb) => {
            return Err(format!(
                "error: kubectl {verb}: the local backend emulates only these kubectl commands: {EMULATED_COMMANDS}"
            ));
        }
        None => {
            return Err(format!(
                "error: no command given; emulated: {EMULATED_COMMANDS}"
            ));
        }
    }
    let mut positional = Vec::new();
    let mut namespace = None;
    let mut all = false;
    let mut wide = false;
    while let Some(arg) = args.next() {
        match arg {
            "-A" | "--all-namespaces" => all = true,
            "-n" | "--namespace" => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("error: flag needs an argument: {arg}"))?;
                namespace = Some(value.to_owned());
            }
            "-o" | "--output" => match args.next() {
                Some("wide") => wide = true,
                Some(other) => {
                    return Err(format!(
                        "error: -o {other}: the local backend's kubectl prints tables only (-o wide)"
                    ));
                }
                None => return Err(format!("error: flag needs an argument: {arg}")),
            },
            "-owide" | "--output=wide" => wide = true,
            flag if flag.starts_with("--namespace=") => {
                namespace = Some(flag["--namespace=".len()..].to_owned());
            }
            flag if flag.starts_with("-n") && flag.len() > 2 => {
                namespace = Some(flag[2..].trim_start_matches('=').to_owned());
            }
            flag if flag.starts_with('-') => {
                return Err(format!("error: unknown flag: {flag}"));
            }
            word => positional.push(word.to_owned()),
        }
    }
    let Some(first) = positional.first().cloned() else {
        return Err(
            "error: you must specify the type of resource to get. Emulated types: gatewayclass, gateway, httproute"
                .to_owned(),
        );
    };
    // `type/name` form.
    let (type_text, mut names) = match first.split_once('/') {
        Some((kind, name)) => (kind.to_owned(), vec![name.to_owned()]),
        None => (first, Vec::new()),
    };
    if type_text.contains(',') {
        return Err(format!(
            "error: {type_text}: the local backend's kubectl gets one resource type at a time"
        ));
    }
    let kind = Kind::parse(&type_text)
        .ok_or_else(|| format!("error: the server doesn't have a resource type \"{type_text}\""))?;
    names.extend(positional.into_iter().skip(1));
    if all && !names.is_empty() {
        return Err(
            "error: a resource cannot be retrieved by name across all namespaces".to_owned(),
        );
    }
    let namespace = if all {
        None
    } else {
        Some(namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()))
    };
    Ok(Get {
        kind,
        names,
        namespace,
        wide,
    })
}

/// Runs a kubectl command line (without the leading `kubectl`) against `store`.
pub fn run(args: &[String], store: &impl KubectlStore) -> CommandOutput {
    let get = match parse(args) {
        Ok(get) => get,
        Err(message) => {
            return CommandOutput {
                stdout: String::new(),
                stderr: format!("{message}\n"),
                success: false,
            };
        }
    };
    let scope = if get.kind.namespaced() {
        get.namespace.as_deref()
    } else {
        None
    };
    let mut objects = store.list(&get.kind.resource_kind(), scope);
    objects.sort_by(|a, b| {
        (&a.metadata().namespace, &a.metadata().name)
            .cmp(&(&b.metadata().namespace, &b.metadata().name))
    });
    let mut stderr = String::new();
    let mut success = true;
    if !get.names.is_empty() {
        let mut picked = Vec::new();
        for name in &get.names {
            match objects
                .iter()
                .find(|o| o.metadata().name.as_deref() == Some(name.as_str()))
            {
                Some(object) => picked.push(object.clone()),
                None => {
                    success = false;
                    stderr.push_str(&format!(
                        "Error from server (NotFound): {} \"{name}\" not found\n",
                        get.kind.resource()
                    ));
                }
            }
        }
        objects = picked;
    }
    if objects.is_empty() {
        if get.names.is_empty() {
            stderr.push_str(&match scope {
                Some(namespace) => format!("No resources found in {namespace} namespace.\n"),
                None => "No resources found\n".to_owned(),
            });
        }
        return CommandOutput {
            stdout: String::new(),
            stderr,
            success,
        };
    }
    let with_namespace = get.kind.namespaced() && get.namespace.is_none();
    let mut header: Vec<String> = get
        .kind
        .headers(get.wide)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if with_namespace {
        header.insert(0, "NAMESPACE".to_owned());
    }
    let mut rows = vec![header];
    let now = store.now();
    for object in &objects {
        let mut row = cells(get.kind, object, store, now, get.wide);
        if with_namespace {
            row.insert(0, object.metadata().namespace.clone().unwrap_or_default());
        }
        rows.push(row);
    }
    CommandOutput {
        stdout: tabulate(&rows),
        stderr,
        success,
    }
}

/// One row's cells (without NAMESPACE).
fn cells(
    kind: Kind,
    object: &Resource,
    store: &impl KubectlStore,
    now: SystemTime,
    wide: bool,
) -> Vec<String> {
    let meta = object.metadata();
    let name = meta.name.clone().unwrap_or_default();
    let age = meta
        .creation_timestamp
        .as_ref()
        .map(|time| {
            let created = SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(time.0.as_second().max(0).unsigned_abs());
            human_duration(now, created)
        })
        .unwrap_or_else(|| "<unknown>".to_owned());
    let status = store.status(&object.key());
    let condition = |kind: &str| condition_status(status.as_ref(), kind).unwrap_or_default();
    match (kind, object) {
        (Kind::GatewayClass, Resource::GatewayClass(class)) => {
            let mut row = vec![
                name,
                class.spec.controller_name.clone(),
                condition("Accepted"),
                age,
            ];
            if wide {
                row.push(class.spec.description.clone().unwrap_or_default());
            }
            row
        }
        (Kind::Gateway, Resource::Gateway(gateway)) => vec![
            name,
            gateway.spec.gateway_class_name.clone(),
            store.addresses(&object.key()).join(" "),
            condition("Programmed"),
            age,
        ],
        (Kind::HttpRoute, Resource::HttpRoute(route)) => {
            let hostnames = if route.spec.hostnames.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&route.spec.hostnames).unwrap_or_default()
            };
            vec![name, hostnames, age]
        }
        _ => vec![name],
    }
}

/// `.status.conditions[?(@.type=="<kind>")].status`.
fn condition_status(status: Option<&Value>, kind: &str) -> Option<String> {
    status?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?
        .get("status")?
        .as_str()
        .map(str::to_owned)
}

/// kubectl's tab writer: each column as wide as its widest cell plus three spaces; the last
/// column unpadded.
fn tabulate(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i] + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration` of `now - then`.
pub fn human_duration(now: SystemTime, then: SystemTime) -> String {
    let seconds = match now.duration_since(then) {
        Ok(elapsed) => elapsed.as_secs(),
        Err(ahead) if ahead.duration().as_secs() > 1 => return "<invalid>".to_owned(),
        Err(_) => 0,
    };
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    let years = days / 365;
    if seconds < 60 * 2 {
        format!("{seconds}s")
    } else if minutes < 10 {
        match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        }
    } else if minutes < 60 * 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        }
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else if years < 8 {
        match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        }
    } else {
        format!("{years}y")
    }
}

#[cfg(test)]
mod tests;
