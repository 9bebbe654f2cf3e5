//! Why a migration could not be made or written.

use std::path::PathBuf;

use model::LoadError;

/// A migration that could not be made: the input could not be read, or it holds something no
/// output can be written for. Each variant names the file and, where known, the resource and field.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A file or folder could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Some documents are not valid resources (each error names file, line, resource, field).
    #[error("{} document(s) could not be read:\n{}", errors.len(), render_errors(errors))]
    Load {
        /// One per bad document.
        errors: Vec<LoadError>,
    },
    /// A resource that loads but cannot be migrated as written.
    #[error("{}: {resource}: {field}: {reason}", file.display())]
    Invalid {
        /// The file the resource came from.
        file: PathBuf,
        /// `Kind namespace/name`.
        resource: String,
        /// The offending field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The input holds no Gloo or App Mesh resource.
    #[error(
        "nothing to migrate: {} hold(s) no Gloo Edge (VirtualService, Upstream, UpstreamGroup) or App Mesh (Mesh, VirtualNode, VirtualService, VirtualRouter) resource",
        render_paths(sources)
    )]
    NothingToMigrate {
        /// What was read.
        sources: Vec<PathBuf>,
    },
    /// An output file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn render_errors(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "the input".to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
