//! Writing a migration for people and for `kubectl apply`: YAML files with a head comment, and the
//! drift report as markdown.

use std::fmt::Write as _;

use crate::OutputFile;
use crate::drift::{DriftReport, Mapping, RequestPattern};

/// The file name of the human report in a migration's output folder.
pub const DRIFT_MARKDOWN_FILE: &str = "drift-report.md";

/// One output file as multi-document YAML.
pub(crate) fn yaml_file(file: &OutputFile) -> String {
    let mut out = String::new();
    for line in file.comment.lines() {
        let _ = writeln!(out, "# {line}");
    }
    out.push_str("# Written by `cargo xtask migrate --to gateway-api`; see drift-report.md.\n");
    let documents: Vec<String> = file
        .documents
        .iter()
        .map(|d| serde_norway::to_string(d).unwrap_or_default())
        .collect();
    out.push_str(&documents.join("---\n"));
    out
}

/// A request pattern in words: `GET host /path/*, not ...`.
pub fn describe_pattern(pattern: &RequestPattern) -> String {
    let mut parts = Vec::new();
    parts.push(
        pattern
            .method
            .clone()
            .unwrap_or_else(|| "any method".into()),
    );
    if let Some(host) = &pattern.host {
        parts.push(format!("host {host}"));
    }
    match (&pattern.path_exact, &pattern.path_prefix) {
        (Some(exact), _) => parts.push(format!("path = {exact}")),
        (None, Some(prefix)) => parts.push(format!("path starts with {prefix}")),
        (None, None) => parts.push("any path".into()),
    }
    if !pattern.path_not_exact.is_empty() {
        parts.push(format!("not {}", pattern.path_not_exact.join(", ")));
    }
    if !pattern.path_not_prefix.is_empty() {
        parts.push(format!(
            "not starting with {}",
            pattern.path_not_prefix.join(", ")
        ));
    }
    for (name, value) in &pattern.headers {
        parts.push(format!("{name}: {value}"));
    }
    parts.join(", ")
}

/// The drift report for people: a summary by mapping and kind, then every item.
pub fn render_markdown(report: &DriftReport, files: &[OutputFile]) -> String {
    let mut out = String::new();
    let count = |m: Mapping| report.items.iter().filter(|i| i.mapping == m).count();
    let _ = writeln!(out, "# Drift report: migration to {}\n", report.target);
    let _ = writeln!(out, "Sources:");
    for source in &report.sources {
        let _ = writeln!(out, "- `{}`", source.display());
    }
    let _ = writeln!(out, "\nOutput files (apply in this order):");
    for file in files {
        let _ = writeln!(
            out,
            "- `{}`: {} ({} documents)",
            file.name,
            file.comment,
            file.documents.len()
        );
    }
    let _ = writeln!(
        out,
        "\n## Summary\n\n| mapping | items |\n| --- | --- |\n| exact | {} |\n| approximate | {} |\n| unmappable | {} |\n",
        count(Mapping::Exact),
        count(Mapping::Approximate),
        count(Mapping::Unmappable)
    );
    let _ = writeln!(
        out,
        "Exact: the new resources behave as the old ones for every request. Approximate: some requests behave differently (listed). Unmappable: not carried over.\n"
    );
    for (title, mapping) in [
        ("Unmappable", Mapping::Unmappable),
        ("Approximate", Mapping::Approximate),
        ("Exact", Mapping::Exact),
    ] {
        let items: Vec<_> = report
            .items
            .iter()
            .filter(|i| i.mapping == mapping)
            .collect();
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {title} ({})\n", items.len());
        for item in items {
            let _ = writeln!(out, "### `{}`\n", item.id);
            let _ = writeln!(out, "- kind: {:?}", item.kind);
            let _ = writeln!(out, "- source: {}", item.source);
            if let Some(target) = &item.target {
                let _ = writeln!(out, "- target: {target}");
            }
            let _ = writeln!(out, "\n{}\n", item.description);
            if !item.affects.is_empty() {
                let _ = writeln!(out, "Affected requests:");
                for pattern in &item.affects {
                    let _ = writeln!(out, "- {}", describe_pattern(pattern));
                }
                out.push('\n');
            }
            for example in &item.examples {
                let host = example
                    .host
                    .as_deref()
                    .map(|h| format!(" (Host: {h})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "Example: `{} {}`{host}", example.method, example.path);
            }
            if let (Some(before), Some(after)) = (&item.before, &item.after) {
                let _ = writeln!(out, "- before: {before}\n- after: {after}");
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glued_pattern_reads_as_words() {
        let pattern = RequestPattern::glued_to_prefix("/appmesh/color").expect("pattern");
        assert_eq!(
            describe_pattern(&pattern),
            "any method, path starts with /appmesh/color, not /appmesh/color, not starting with /appmesh/color/"
        );
    }
}
