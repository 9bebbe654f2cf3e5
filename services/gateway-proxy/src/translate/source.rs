//! [`DirSource`]: the binary's configuration source, a directory of Kubernetes YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use model::{Loaded, ResourceKey, ResourceSet};

use super::translate_resources;
use crate::reload::{ConfigSource, LoadOutcome};
use crate::snapshot::{LoadError, Role};

/// Reads every `*.yaml`/`*.yml` file below a directory and translates it for one role.
///
/// Nothing a user applied is lost to a bad edit:
/// - a file that fails to parse keeps contributing the resources it last contributed (those of
///   its documents that did not parse again), and the file's errors are reported;
/// - a resource whose new version is rejected keeps being served in its last accepted version.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    role: Role,
    last_accepted: ResourceSet,
    last_good_by_file: BTreeMap<PathBuf, Vec<Loaded>>,
}

impl DirSource {
    /// A source for `dir` that has loaded nothing yet.
    pub fn new(dir: impl Into<PathBuf>, role: Role) -> Self {
        Self {
            dir: dir.into(),
            role,
            last_accepted: ResourceSet::new(),
            last_good_by_file: BTreeMap::new(),
        }
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The role translated for.
    pub fn role(&self) -> &Role {
        &self.role
    }
}

impl ConfigSource for DirSource {
    fn load(&mut self) -> LoadOutcome {
        let parsed = match model::load_dir(&self.dir) {
            Ok(parsed) => parsed,
            Err(error) => {
                // The directory itself is unreadable: serve everything it last contributed.
                let resources =
                    ResourceSet::from_loaded(self.last_good_by_file.values().flatten().cloned());
                let outcome = translate_resources(
                    &resources,
                    &self.role,
                    Some(&self.last_accepted),
                    &BTreeMap::new(),
                );
                self.last_accepted = outcome.accepted;
                let load_error = LoadError {
                    file: self.dir.clone(),
                    line: None,
                    message: format!(
                        "cannot read the configuration directory: {error}; the last good configuration is still served"
                    ),
                };
                return LoadOutcome {
                    translation: outcome.translation,
                    load_errors: vec![load_error],
                };
            }
        };

        let failed_files: BTreeSet<PathBuf> = parsed
            .errors
            .iter()
            .map(|error| error.file.clone())
            .collect();
        let mut by_file: BTreeMap<PathBuf, Vec<Loaded>> = BTreeMap::new();
        for loaded in &parsed.resources {
            by_file
                .entry(loaded.origin.file.clone())
                .or_default()
                .push(loaded.clone());
        }
        let mut resources = ResourceSet::from_loaded(parsed.resources);
        let mut carried: BTreeMap<PathBuf, Vec<ResourceKey>> = BTreeMap::new();
        for file in &failed_files {
            for previous in self.last_good_by_file.get(file).into_iter().flatten() {
                let key = previous.resource.key();
                if !resources.contains(&key) {
                    resources.insert(previous.clone());
                    by_file
                        .entry(file.clone())
                        .or_default()
                        .push(previous.clone());
                    carried.entry(file.clone()).or_default().push(key);
                }
            }
        }

        // A carried-over resource whose new document names it is reported Rejected, with the
        // parse error, while its last good version is served.
        let mut preset_rejections: BTreeMap<ResourceKey, Vec<String>> = BTreeMap::new();
        let mut load_errors = Vec::with_capacity(parsed.errors.len());
        for error in &parsed.errors {
            let carried_here = carried
                .get(&error.file)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(label) = &error.resource {
                for key in carried_here.iter().filter(|key| key.to_string() == *label) {
                    preset_rejections
                        .entry(key.clone())
                        .or_default()
                        .push(format!(
                            "{error}; the last good version read from this file is still served"
                        ));
                }
            }
            let mut message = String::new();
            if let Some(resource) = &error.resource {
                message.push_str(resource);
                message.push_str(": ");
            }
            if let Some(field) = &error.field {
                message.push_str(field);
                message.push_str(": ");
            }
            message.push_str(&error.cause);
            if !carried_here.is_empty() {
                message.push_str("; the resources this file last provided are still served");
            }
            load_errors.push(LoadError {
                file: error.file.clone(),
                line: Some(error.line),
                message,
            });
        }

        let outcome = translate_resources(
            &resources,
            &self.role,
            Some(&self.last_accepted),
            &preset_rejections,
        );
        self.last_accepted = outcome.accepted;
        self.last_good_by_file = by_file;
        for error in &load_errors {
            tracing::warn!(file = %error.file.display(), line = ?error.line, message = %error.message, "configuration file error");
        }
        LoadOutcome {
            translation: outcome.translation,
            load_errors,
        }
    }
}
