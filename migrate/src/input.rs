//! The migration's input: the typed resources (through `model`'s loader, with its precise errors)
//! and each document as written, so that objects carried over reach the output unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::{LoadError, Loaded, ResourceKey, ResourceKind, ResourceSet, is_tool_config};
use serde_json::Value;

use crate::error::MigrateError;

/// Everything read for one migration.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// The files read, in order.
    pub sources: Vec<PathBuf>,
    /// The typed resources, in document order.
    pub resources: Vec<Loaded>,
    /// Each document as written, by identity (a later document replaces an earlier one, as
    /// `kubectl apply` would).
    raw: BTreeMap<ResourceKey, Value>,
}

impl Input {
    /// Reads files and folders (recursively, `*.yaml`/`*.yml` in sorted order), as
    /// `model::load_paths` does. Any document that does not load fails the whole read, with every
    /// error named.
    pub fn read(paths: &[PathBuf]) -> Result<Self, MigrateError> {
        let mut input = Self::default();
        let mut errors = Vec::new();
        for path in paths {
            let metadata = std::fs::metadata(path).map_err(|source| MigrateError::Read {
                path: path.clone(),
                source,
            })?;
            let files = if metadata.is_dir() {
                let mut files = Vec::new();
                collect_yaml_files(path, &mut files)?;
                files.sort();
                files
            } else {
                vec![path.clone()]
            };
            for file in files {
                let text = std::fs::read_to_string(&file).map_err(|source| MigrateError::Read {
                    path: file.clone(),
                    source,
                })?;
                errors.extend(input.add(&file, &text));
            }
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(MigrateError::Load { errors })
        }
    }

    /// Reads one file's text (for tests and callers that hold YAML in memory).
    pub fn from_text(file: &Path, text: &str) -> Result<Self, MigrateError> {
        let mut input = Self::default();
        let errors = input.add(file, text);
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(MigrateError::Load { errors })
        }
    }

    /// Adds another file's text; returns its load errors.
    pub fn add(&mut self, file: &Path, text: &str) -> Vec<LoadError> {
        let parsed = model::parse_documents(text, file);
        if !parsed.errors.is_empty() {
            return parsed.errors;
        }
        let mut errors = Vec::new();
        for document in serde_norway::Deserializer::from_str(text) {
            let value: Value = match serde::Deserialize::deserialize(document) {
                Ok(value) => value,
                Err(error) => {
                    errors.push(LoadError {
                        file: file.to_owned(),
                        line: 1,
                        column: None,
                        resource: None,
                        field: None,
                        cause: format!("not representable as JSON: {error}"),
                    });
                    continue;
                }
            };
            if value.is_null() {
                continue;
            }
            let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
            let (api_version, kind) = (text("apiVersion"), text("kind"));
            if is_tool_config(api_version) {
                continue;
            }
            let meta = |key: &str| {
                value
                    .get("metadata")
                    .and_then(|m| m.get(key))
                    .and_then(Value::as_str)
            };
            let key = ResourceKey::new(
                ResourceKind::from_type(api_version, kind),
                meta("namespace"),
                meta("name").unwrap_or(""),
            );
            self.raw.insert(key, value);
        }
        if errors.is_empty() {
            self.sources.push(file.to_owned());
            self.resources.extend(parsed.resources);
        }
        errors
    }

    /// The resources keyed by identity, later documents replacing earlier ones.
    pub fn set(&self) -> ResourceSet {
        ResourceSet::from_loaded(self.resources.iter().cloned())
    }

    /// A document as written.
    pub fn raw(&self, key: &ResourceKey) -> Option<&Value> {
        self.raw.get(key)
    }
}

fn collect_yaml_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), MigrateError> {
    let read = |source| MigrateError::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_dir() {
            collect_yaml_files(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// The value at a field path as the loader writes it (`spec.virtualHost.routes[0].options.cors`).
pub(crate) fn value_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = root;
    for part in path.split('.') {
        let (name, indices) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for index in indices
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .map(str::parse::<usize>)
        {
            current = current.get(index.ok()?)?;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_path_finds_its_value() {
        let value: Value =
            serde_json::json!({"spec": {"routes": [{"a": 1}, {"options": {"hostRewrite": "x"}}]}});
        assert_eq!(
            value_at(&value, "spec.routes[1].options.hostRewrite"),
            Some(&Value::from("x"))
        );
        assert_eq!(value_at(&value, "spec.routes[2].options"), None);
    }

    #[test]
    fn a_bad_document_is_an_error_naming_the_file() {
        let error = Input::from_text(
            Path::new("user/vs.yaml"),
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: v, namespace: gloo-system}\nspec:\n  virtualHost:\n    routes:\n    - matchers: [{prefix: [/a]}]\n",
        )
        .expect_err("a list where a string belongs");
        let text = error.to_string();
        assert!(text.contains("user/vs.yaml"), "{text}");
        assert!(text.contains("VirtualService gloo-system/v"), "{text}");
    }
}
