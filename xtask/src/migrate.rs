//! `cargo xtask migrate --to gateway-api [--out DIR] PATH...`: reads Gloo Edge and App Mesh
//! manifests (and the Kubernetes objects beside them), writes Gateway API manifests and the drift
//! report with the `migrate` crate, and prints the report's summary.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use migrate::{DriftKind, Mapping, Options};

/// `cargo xtask migrate` options.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The dialect to migrate to.
    #[arg(long, value_enum)]
    to: Target,
    /// Where the manifests, drift-report.json and drift-report.md go (created; must be empty or
    /// hold an earlier migration's output).
    #[arg(long, value_name = "DIR", default_value = "target/migrate")]
    out: PathBuf,
    /// spec.gatewayClassName of the Gateway. colormesh's own class (the default) is written with
    /// the Gateway; any other is the implementation's to install.
    #[arg(long, value_name = "NAME", default_value = migrate::DEFAULT_GATEWAY_CLASS)]
    gateway_class: String,
    /// The namespace of the Gateway that replaces Gloo's proxy.
    #[arg(long, value_name = "NS", default_value = model::gloo::GLOO_NAMESPACE)]
    gateway_namespace: String,
    /// The name of that Gateway.
    #[arg(long, value_name = "NAME", default_value = migrate::DEFAULT_GATEWAY_NAME)]
    gateway_name: String,
    /// The port of its HTTP listener (Gloo's proxy binds 8080).
    #[arg(long, value_name = "PORT", default_value_t = migrate::DEFAULT_LISTENER_PORT)]
    listener_port: u16,
    /// The label that puts a namespace in the GAMMA mesh, as KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE", default_value = "colormesh.dev/mesh=gamma", value_parser = parse_label)]
    mesh_label: (String, String),
    /// Manifest files or folders (read recursively): Gloo VirtualService, Upstream,
    /// UpstreamGroup; App Mesh Mesh, VirtualNode, VirtualService, VirtualRouter; and the
    /// Kubernetes objects beside them, which are carried over unchanged.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// The dialects `migrate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// Kubernetes Gateway API v1.6.1: Gateway + HTTPRoutes at the edge, GAMMA HTTPRoutes inside.
    GatewayApi,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Runs the migration; the exit code is 0 whether or not items are unmappable (the report says).
pub(crate) fn migrate(args: &MigrateArgs) -> anyhow::Result<bool> {
    let Target::GatewayApi = args.to;
    let input = migrate::Input::read(&args.paths).context("reading the manifests to migrate")?;
    let options = Options {
        gateway_class: args.gateway_class.clone(),
        gateway_name: args.gateway_name.clone(),
        gateway_namespace: args.gateway_namespace.clone(),
        listener_port: args.listener_port,
        mesh_label: args.mesh_label.clone(),
    };
    let migration = migrate::migrate(&input, &options).context("migrating to Gateway API")?;
    let written = migration
        .write_to(&args.out)
        .with_context(|| format!("writing the migration to {}", args.out.display()))?;
    println!("{}", summary(&migration.report));
    println!("Wrote {} files to {}:", written.len(), args.out.display());
    for path in &written {
        println!("  {}", path.display());
    }
    Ok(true)
}

/// The report's summary: counts by mapping, then one line per item that is not exact.
pub(crate) fn summary(report: &migrate::DriftReport) -> String {
    let count = |m: Mapping| report.items.iter().filter(|i| i.mapping == m).count();
    let mut out = format!(
        "Drift report ({} items): {} exact, {} approximate, {} unmappable",
        report.items.len(),
        count(Mapping::Exact),
        count(Mapping::Approximate),
        count(Mapping::Unmappable)
    );
    for item in report.items.iter().filter(|i| i.mapping != Mapping::Exact) {
        let affects = item
            .affects
            .iter()
            .map(migrate::describe_pattern)
            .collect::<Vec<_>>()
            .join(" | ");
        out.push_str(&format!(
            "\n  {:<11} {:<15} {}",
            format!("{:?}", item.mapping).to_lowercase(),
            kind_name(item.kind),
            item.source
        ));
        if !affects.is_empty() {
            out.push_str(&format!("\n              affects: {affects}"));
        }
    }
    out
}

fn kind_name(kind: DriftKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mesh_label_is_key_equals_value() {
        assert_eq!(
            parse_label("colormesh.dev/mesh=gamma"),
            Ok(("colormesh.dev/mesh".into(), "gamma".into()))
        );
        assert!(parse_label("no-equals").is_err());
        assert!(parse_label("=x").is_err());
    }
}
