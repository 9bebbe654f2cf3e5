//! The local backend's API server: the applied objects, their resource versions, and the cluster
//! folder every proxy reads.
//!
//! As an API server does, every write stamps `metadata.resourceVersion` (increasing across all
//! objects), `metadata.creationTimestamp` (on create, kept on later writes; whole seconds) and
//! `metadata.generation` (1 on create, +1 when anything but the metadata changes), and every
//! Namespace gets the label `kubernetes.io/metadata.name: <name>`. Gateway API route precedence
//! (oldest creationTimestamp first) and `observedGeneration` depend on the last two.

use std::path::{Path, PathBuf};

use model::k8s::openapi::apimachinery::pkg::apis::meta::v1::Time;
use model::k8s::openapi::jiff::Timestamp;
use model::{Loaded, Resource, ResourceKey, ResourceSet};

use crate::backend::BackendError;

/// Applied objects, each stamped with an increasing `metadata.resourceVersion`, mirrored as one
/// YAML file per object in the cluster folder.
#[derive(Debug)]
pub(crate) struct Cluster {
    dir: PathBuf,
    resources: ResourceSet,
    revision: u64,
}

impl Cluster {
    pub(crate) fn new(dir: PathBuf) -> Result<Self, BackendError> {
        std::fs::create_dir_all(&dir).map_err(|source| BackendError::Io {
            context: format!("cannot create the cluster folder {}", dir.display()),
            source,
        })?;
        Ok(Self {
            dir,
            resources: ResourceSet::new(),
            revision: 0,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn resources(&self) -> &ResourceSet {
        &self.resources
    }

    /// The resource version of the last write.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    pub(crate) fn get(&self, key: &ResourceKey) -> Option<&Loaded> {
        self.resources.get(key)
    }

    /// The stamped resource version of an object.
    pub(crate) fn version_of(&self, key: &ResourceKey) -> Option<u64> {
        self.get(key)
            .and_then(|loaded| loaded.resource.metadata().resource_version.as_deref())
            .and_then(|v| v.parse().ok())
    }

    /// Stores an object (create or replace) and writes its file. Returns its new resource
    /// version, or `None` when it equals the stored object (`kubectl apply` says "unchanged").
    pub(crate) fn apply(&mut self, mut loaded: Loaded) -> Result<Option<u64>, BackendError> {
        let key = loaded.resource.key();
        if let Resource::Namespace(namespace) = &mut loaded.resource {
            let name = namespace.metadata.name.clone().unwrap_or_default();
            namespace
                .metadata
                .labels
                .get_or_insert_default()
                .insert(NAMESPACE_NAME_LABEL.to_owned(), name);
        }
        unstamp(&mut loaded.resource);
        let (created, generation) = match self.resources.get(&key) {
            Some(existing) => {
                let mut unstamped = existing.resource.clone();
                let (created, generation) = unstamp(&mut unstamped);
                if unstamped == loaded.resource {
                    return Ok(None);
                }
                let generation = generation.unwrap_or(1);
                let bumped = if without_metadata(&unstamped) == without_metadata(&loaded.resource) {
                    generation
                } else {
                    generation + 1
                };
                (created, bumped)
            }
            None => (None, 1),
        };
        let created = created.unwrap_or_else(|| {
            let now = Timestamp::now();
            Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
        });
        self.revision += 1;
        let meta = loaded.resource.metadata_mut();
        meta.resource_version = Some(self.revision.to_string());
        meta.creation_timestamp = Some(created);
        meta.generation = Some(generation);
        self.write(&key, &model::to_yaml(&loaded.resource))?;
        self.resources.insert(loaded);
        Ok(Some(self.revision))
    }

    /// Removes an object and its file. Returns the revision of the deletion, `None` when absent.
    pub(crate) fn delete(&mut self, key: &ResourceKey) -> Result<Option<u64>, BackendError> {
        if self.resources.remove(key).is_none() {
            return Ok(None);
        }
        self.revision += 1;
        let path = self.dir.join(file_name(key));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(Some(self.revision)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(self.revision)),
            Err(source) => Err(BackendError::Io {
                context: format!("cannot remove {}", path.display()),
                source,
            }),
        }
    }

    /// Writes by rename so a proxy reloading at any moment reads either the old or the new file.
    fn write(&self, key: &ResourceKey, yaml: &str) -> Result<(), BackendError> {
        let name = file_name(key);
        let target = self.dir.join(&name);
        // The temporary name does not end in .yaml, so the proxies' loader never reads it.
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let io =
            |context: String| move |source: std::io::Error| BackendError::Io { context, source };
        std::fs::write(&temporary, yaml)
            .map_err(io(format!("cannot write {}", temporary.display())))?;
        std::fs::rename(&temporary, &target)
            .map_err(io(format!("cannot write {}", target.display())))
    }
}

/// The label an API server puts on every Namespace, naming it (selectable by `allowedRoutes`).
pub(crate) const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Removes what the API server stamps; returns the creation time and generation it had.
fn unstamp(resource: &mut Resource) -> (Option<Time>, Option<i64>) {
    let meta = resource.metadata_mut();
    meta.resource_version = None;
    (meta.creation_timestamp.take(), meta.generation.take())
}

/// The object without its metadata (and status): what `generation` counts changes of.
fn without_metadata(resource: &Resource) -> serde_json::Value {
    let mut value = serde_json::to_value(resource).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("metadata");
        object.remove("status");
    }
    value
}

/// `<group>_<kind>_<namespace>_<name>.yaml`: unique per key, since both VirtualService kinds differ
/// by group.
pub(crate) fn file_name(key: &ResourceKey) -> String {
    let group = key
        .kind
        .api_version()
        .split_once('/')
        .map_or("core", |(group, _)| group);
    let namespace = key.namespace.as_deref().unwrap_or("cluster");
    format!(
        "{group}_{}_{namespace}_{}.yaml",
        key.kind.kind().to_lowercase(),
        key.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Loaded {
        let mut parsed = model::parse_documents(text, Path::new("test.yaml"));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.resources.remove(0)
    }

    const UG: &str = "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: ug, namespace: gloo-system}\nspec:\n  destinations:\n  - destination: {upstream: {name: a, namespace: gloo-system}}\n    weight: 80\n";

    #[test]
    fn versions_increase_files_mirror_objects_and_unchanged_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster::new(dir.path().join("cluster")).expect("cluster");
        let loaded = parse(UG);
        let key = loaded.resource.key();
        assert_eq!(cluster.apply(loaded.clone()).expect("apply"), Some(1));
        assert_eq!(cluster.apply(loaded).expect("apply"), None);
        assert_eq!(
            cluster
                .apply(parse(&UG.replace("80", "50")))
                .expect("apply"),
            Some(2)
        );
        assert_eq!(cluster.version_of(&key), Some(2));
        let file = cluster
            .dir()
            .join("gloo.solo.io_upstreamgroup_gloo-system_ug.yaml");
        let on_disk = model::load_paths(std::slice::from_ref(&file)).expect("readable");
        let [stored] = on_disk.resources.as_slice() else {
            panic!("{on_disk:?}")
        };
        assert_eq!(
            stored.resource.metadata().resource_version.as_deref(),
            Some("2")
        );
        let files: Vec<_> = std::fs::read_dir(cluster.dir()).expect("dir").collect();
        assert_eq!(files.len(), 1, "no temporary files are left behind");
        assert_eq!(cluster.delete(&key).expect("delete"), Some(3));
        assert!(!file.exists());
        assert_eq!(cluster.delete(&key).expect("delete"), None);
    }

    #[test]
    fn creation_time_is_kept_and_generation_counts_changes_beyond_metadata() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster::new(dir.path().join("cluster")).expect("cluster");
        let stamped = |cluster: &Cluster, key: &ResourceKey| {
            let meta = cluster
                .get(key)
                .expect("stored")
                .resource
                .metadata()
                .clone();
            (meta.creation_timestamp.expect("created"), meta.generation)
        };
        let loaded = parse(UG);
        let key = loaded.resource.key();
        cluster.apply(loaded.clone()).expect("apply");
        let (created, generation) = stamped(&cluster, &key);
        assert_eq!(generation, Some(1));
        assert_eq!(created.0.subsec_nanosecond(), 0, "whole seconds");
        // A written creationTimestamp is the server's to set: re-applying keeps the first one.
        let mut backdated = loaded.clone();
        backdated.resource.metadata_mut().creation_timestamp =
            Some(Time(Timestamp::from_second(1).expect("time")));
        assert_eq!(cluster.apply(backdated).expect("apply"), None, "unchanged");
        cluster
            .apply(parse(&UG.replace("80", "50")))
            .expect("apply");
        assert_eq!(stamped(&cluster, &key), (created.clone(), Some(2)));
        let labelled = UG.replace(
            "metadata: {name: ug, namespace: gloo-system}",
            "metadata: {name: ug, namespace: gloo-system, labels: {a: b}}",
        );
        assert_ne!(labelled, UG);
        cluster
            .apply(parse(&labelled.replace("80", "50")))
            .expect("apply");
        assert_eq!(stamped(&cluster, &key), (created, Some(2)), "metadata only");
        cluster.delete(&key).expect("delete");
        cluster.apply(loaded).expect("apply");
        assert_eq!(
            stamped(&cluster, &key).1,
            Some(1),
            "a new object starts over"
        );
    }

    #[test]
    fn namespaces_are_labelled_with_their_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster::new(dir.path().join("cluster")).expect("cluster");
        let loaded = parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: appmesh-demo}\n");
        let key = loaded.resource.key();
        cluster.apply(loaded).expect("apply");
        let labels = cluster
            .get(&key)
            .expect("stored")
            .resource
            .metadata()
            .labels
            .clone();
        assert_eq!(
            labels
                .unwrap_or_default()
                .get(NAMESPACE_NAME_LABEL)
                .map(String::as_str),
            Some("appmesh-demo")
        );
    }
}
