//! [`DirSource`]: the binary's configuration source, a directory of Kubernetes YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model::gloo::State;
use model::{Loaded, ResourceKey, ResourceKind, ResourceSet};
use routing::{ResourceStatus, Role, translate_resources};

use crate::reload::{ConfigSource, LoadOutcome};
use crate::snapshot::FileLoadFailure;

/// Reads every `*.yaml`/`*.yml` file below a directory and translates it for one role.
///
/// Nothing a user applied is lost to a bad edit:
/// - a file that fails to parse keeps contributing the resources it last contributed (those of
///   its documents that did not parse again), and the file's errors are reported;
/// - a resource whose new version is rejected keeps being served in its last accepted version;
/// - a file that cannot be read (a dangling link) is reported and skipped, the rest applies;
/// - a file that provided resources and is now empty is taken for one being written in place
///   (truncated, then written): its last contents are served and a reload is asked for
///   ([`ConfigSource::retry_after`]); only when it stays empty for the grace period
///   (1 s unless [`DirSource::with_empty_file_grace`]) are its resources removed.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    role: Role,
    last_accepted: ResourceSet,
    last_good_by_file: BTreeMap<PathBuf, Vec<Loaded>>,
    empty_file_grace: Duration,
    /// Files that provided resources and were found empty, since when.
    emptied_since: BTreeMap<PathBuf, Instant>,
    retry_after: Option<Duration>,
}

/// How long a file that became empty keeps serving its last contents.
const EMPTY_FILE_GRACE: Duration = Duration::from_secs(1);

impl DirSource {
    /// A source for `dir` that has loaded nothing yet.
    pub fn new(dir: impl Into<PathBuf>, role: Role) -> Self {
        Self {
            dir: dir.into(),
            role,
            last_accepted: ResourceSet::new(),
            last_good_by_file: BTreeMap::new(),
            empty_file_grace: EMPTY_FILE_GRACE,
            emptied_since: BTreeMap::new(),
            retry_after: None,
        }
    }

    /// Sets how long a file that became empty keeps serving its last contents.
    pub fn with_empty_file_grace(mut self, grace: Duration) -> Self {
        self.empty_file_grace = grace;
        self
    }

    /// Files that provided resources last time and are empty now, still within the grace
    /// period: they are being written. Sets `retry_after` for them.
    fn half_written(&mut self, provided_now: &BTreeMap<PathBuf, Vec<Loaded>>) -> BTreeSet<PathBuf> {
        let now = Instant::now();
        let mut half_written = BTreeSet::new();
        let mut emptied_since = BTreeMap::new();
        for (file, previous) in &self.last_good_by_file {
            let empty = std::fs::metadata(file).is_ok_and(|meta| meta.is_file() && meta.len() == 0);
            if previous.is_empty() || provided_now.contains_key(file) || !empty {
                continue;
            }
            let since = self.emptied_since.get(file).copied().unwrap_or(now);
            let waited = now.duration_since(since);
            if waited < self.empty_file_grace {
                emptied_since.insert(file.clone(), since);
                half_written.insert(file.clone());
                let left = self.empty_file_grace - waited;
                self.retry_after = Some(self.retry_after.map_or(left, |retry| retry.min(left)));
            }
        }
        self.emptied_since = emptied_since;
        half_written
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
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn load(&mut self) -> LoadOutcome {
        self.retry_after = None;
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
                let load_error = FileLoadFailure {
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
        let half_written = self.half_written(&by_file);
        let warnings = read_warnings(&parsed.resources);
        let mut resources = ResourceSet::from_loaded(parsed.resources);
        let mut carried: BTreeMap<PathBuf, Vec<ResourceKey>> = BTreeMap::new();
        for file in failed_files.iter().chain(&half_written) {
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
            load_errors.push(FileLoadFailure {
                file: error.file.clone(),
                line: Some(error.line),
                message,
            });
        }

        for file in &half_written {
            load_errors.push(FileLoadFailure {
                file: file.clone(),
                line: None,
                message: format!(
                    "the file is empty, as when it is being written in place; its last contents are still served, and its resources are removed only if it stays empty for {:?}",
                    self.empty_file_grace
                ),
            });
        }
        let mut outcome = translate_resources(
            &resources,
            &self.role,
            Some(&self.last_accepted),
            &preset_rejections,
        );
        add_warnings(&mut outcome.translation.statuses, warnings);
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

/// API groups whose kinds colormesh serves: a kind of theirs it does not know is likely misspelt.
const SERVED_GROUPS: [&str; 4] = [
    "gateway.solo.io/",
    "gloo.solo.io/",
    "appmesh.k8s.aws/",
    "gateway.networking.k8s.io/",
];

/// Warnings about what was read, by resource: unknown kinds of the served API groups (a
/// misspelt `kind` would otherwise be ignored without a word), and resources defined in more
/// than one place (the one read last, in sorted path order, wins).
fn read_warnings(loaded: &[Loaded]) -> BTreeMap<String, (Option<String>, Vec<String>)> {
    let mut warnings: BTreeMap<String, (Option<String>, Vec<String>)> = BTreeMap::new();
    let mut origins: BTreeMap<ResourceKey, Vec<&Loaded>> = BTreeMap::new();
    for item in loaded {
        let key = item.resource.key();
        if let ResourceKind::Other { api_version, kind } = &key.kind
            && SERVED_GROUPS
                .iter()
                .any(|group| api_version.starts_with(group))
        {
            warnings
                .entry(key.to_string())
                .or_default()
                .1
                .push(format!(
                    "{}: kind {kind} is not a kind of {api_version} that colormesh serves (misspelt?); the resource is ignored",
                    item.origin
                ));
        }
        origins.entry(key).or_default().push(item);
    }
    for (key, defined) in origins {
        if let [.., served] = defined.as_slice()
            && defined.len() > 1
        {
            let places: Vec<String> = defined.iter().map(|item| item.origin.to_string()).collect();
            warnings.entry(key.to_string()).or_default().1.push(format!(
                "defined {} times ({}); the last one read, {}, is served",
                defined.len(),
                places.join(", "),
                served.origin
            ));
        }
    }
    warnings
}

/// Adds `warnings` to the statuses: a resource's own status turns Warning (unless Rejected),
/// and a resource without one (an unknown kind) gets a Warning status.
fn add_warnings(
    statuses: &mut Vec<ResourceStatus>,
    warnings: BTreeMap<String, (Option<String>, Vec<String>)>,
) {
    for (resource, (resource_version, reasons)) in warnings {
        match statuses
            .iter_mut()
            .find(|status| status.resource == resource)
        {
            Some(status) => {
                if status.state != State::Rejected {
                    status.state = State::Warning;
                }
                status.reasons.extend(reasons);
            }
            None => statuses.push(ResourceStatus {
                resource,
                state: State::Warning,
                reasons,
                resource_version,
                gateway_api: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use routing::Translation;
    use routing::table::{ForwardAction, Route, RouteAction};

    use super::*;

    const UPSTREAMS: &str = "\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: a, namespace: gloo-system}
spec: {static: {hosts: [{addr: 127.0.0.1, port: 9001}]}}
---
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: b, namespace: gloo-system}
spec: {static: {hosts: [{addr: 127.0.0.2, port: 9002}]}}
";

    fn with_upstreams(yaml: &str) -> String {
        format!("{UPSTREAMS}---\n{yaml}")
    }

    fn virtual_service(name: &str, virtual_host: &str) -> String {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: gloo-system, resourceVersion: '7'}}\nspec:\n  virtualHost:\n{virtual_host}"
        )
    }

    fn status_of<'a>(translation: &'a Translation, resource: &str) -> &'a ResourceStatus {
        translation
            .statuses
            .iter()
            .find(|status| status.resource == resource)
            .unwrap_or_else(|| panic!("no status for {resource}: {:#?}", translation.statuses))
    }

    fn assert_all_accepted(translation: &Translation) {
        for status in &translation.statuses {
            assert_eq!(status.state, State::Accepted, "{status:#?}");
        }
    }

    fn forward_of(route: &Route) -> &ForwardAction {
        match &route.action {
            RouteAction::Forward(forward) => forward,
            other => panic!("expected a forward action: {other:?}"),
        }
    }

    fn weights(forward: &ForwardAction) -> Vec<(String, u32)> {
        forward
            .destinations
            .iter()
            .map(|(cluster, weight)| (cluster.name.clone(), weight))
            .collect()
    }

    #[test]
    fn dir_source_keeps_the_last_good_resources_of_a_broken_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let group_file = dir.path().join("ug.yaml");
        let group = |weight: &str| {
            format!(
                "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {{name: ug, namespace: gloo-system}}\nspec:\n  destinations:\n  - destination: {{upstream: {{name: a}}}}\n    weight: {weight}\n  - destination: {{upstream: {{name: b}}}}\n    weight: 1\n"
            )
        };
        std::fs::write(
            dir.path().join("base.yaml"),
            with_upstreams(&virtual_service(
                "vs",
                "    routes: [{routeAction: {upstreamGroup: {name: ug}}}]\n",
            )),
        )
        .expect("write");
        std::fs::write(&group_file, group("3")).expect("write");
        let mut source = DirSource::new(dir.path(), Role::ingress());
        let weights_now = |outcome: &LoadOutcome| {
            weights(forward_of(
                &outcome.translation.table.virtual_hosts()[0].routes[0],
            ))
        };

        let outcome = source.load();
        assert!(outcome.load_errors.is_empty(), "{:?}", outcome.load_errors);
        assert_all_accepted(&outcome.translation);
        assert_eq!(
            weights_now(&outcome),
            [
                ("a_gloo-system".to_owned(), 3),
                ("b_gloo-system".to_owned(), 1)
            ]
        );

        // A bad field: the file's error names file, line, resource and field; the old group stays.
        std::fs::write(&group_file, group("-1")).expect("write");
        let outcome = source.load();
        let [error] = outcome.load_errors.as_slice() else {
            panic!("{:?}", outcome.load_errors)
        };
        assert_eq!(error.file, group_file);
        assert_eq!(error.line, Some(7));
        assert!(
            error.message.starts_with(
                "UpstreamGroup gloo-system/ug: spec.destinations[0].weight: invalid type"
            ),
            "{}",
            error.message
        );
        let ug = status_of(&outcome.translation, "UpstreamGroup gloo-system/ug");
        assert_eq!(ug.state, State::Rejected);
        assert!(
            ug.reasons[0]
                .contains("ug.yaml:7: UpstreamGroup gloo-system/ug: spec.destinations[0].weight"),
            "{ug:#?}"
        );
        assert!(ug.reasons[0].contains("still served"), "{ug:#?}");
        assert_eq!(
            weights_now(&outcome),
            [
                ("a_gloo-system".to_owned(), 3),
                ("b_gloo-system".to_owned(), 1)
            ]
        );

        // Bad YAML: same, the error has the file and line.
        std::fs::write(
            &group_file,
            "apiVersion: gloo.solo.io/v1\nkind: [UpstreamGroup\n",
        )
        .expect("write");
        let outcome = source.load();
        assert_eq!(outcome.load_errors.len(), 1);
        assert_eq!(
            weights_now(&outcome),
            [
                ("a_gloo-system".to_owned(), 3),
                ("b_gloo-system".to_owned(), 1)
            ]
        );

        // Fixed: the new version is served and the errors are gone.
        std::fs::write(&group_file, group("5")).expect("write");
        let outcome = source.load();
        assert!(outcome.load_errors.is_empty());
        assert_all_accepted(&outcome.translation);
        assert_eq!(
            weights_now(&outcome),
            [
                ("a_gloo-system".to_owned(), 5),
                ("b_gloo-system".to_owned(), 1)
            ]
        );

        // Removing the file removes its resources: the route now points at a missing group.
        std::fs::remove_file(&group_file).expect("remove");
        let outcome = source.load();
        assert!(matches!(
            &outcome.translation.table.virtual_hosts()[0].routes[0].action,
            RouteAction::Respond { .. }
        ));
    }

    fn group(weight: &str) -> String {
        format!(
            "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {{name: ug, namespace: gloo-system}}\nspec:\n  destinations:\n  - destination: {{upstream: {{name: a}}}}\n    weight: {weight}\n  - destination: {{upstream: {{name: b}}}}\n    weight: 1\n"
        )
    }

    /// A directory with a VirtualService routing to UpstreamGroup `ug` (in `ug.yaml`, weight
    /// `a` = 3), loaded once.
    fn loaded_dir(grace: Duration) -> (tempfile::TempDir, PathBuf, DirSource) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("base.yaml"),
            with_upstreams(&virtual_service(
                "vs",
                "    routes: [{routeAction: {upstreamGroup: {name: ug}}}]\n",
            )),
        )
        .expect("write");
        let group_file = dir.path().join("ug.yaml");
        std::fs::write(&group_file, group("3")).expect("write");
        let mut source = DirSource::new(dir.path(), Role::ingress()).with_empty_file_grace(grace);
        let outcome = source.load();
        assert!(outcome.load_errors.is_empty(), "{:?}", outcome.load_errors);
        assert_eq!(weight_of_a(&outcome), Some(3));
        (dir, group_file, source)
    }

    fn weight_of_a(outcome: &LoadOutcome) -> Option<u32> {
        match &outcome.translation.table.virtual_hosts()[0].routes[0].action {
            RouteAction::Forward(forward) => Some(weights(forward)[0].1),
            _ => None,
        }
    }

    #[test]
    fn a_dangling_link_is_reported_and_later_updates_still_apply() {
        let (dir, group_file, mut source) = loaded_dir(EMPTY_FILE_GRACE);
        let broken = dir.path().join("broken.yaml");
        std::os::unix::fs::symlink("nowhere.yaml", &broken).expect("link");
        std::fs::write(&group_file, group("5")).expect("write");
        let outcome = source.load();
        assert_eq!(weight_of_a(&outcome), Some(5), "the update applies");
        let [error] = outcome.load_errors.as_slice() else {
            panic!("{:?}", outcome.load_errors)
        };
        assert_eq!(error.file, broken);
        assert!(error.message.contains("dangling"), "{}", error.message);
    }

    #[test]
    fn a_symlink_loop_does_not_stop_a_reload() {
        let (dir, group_file, mut source) = loaded_dir(EMPTY_FILE_GRACE);
        std::os::unix::fs::symlink(".", dir.path().join("loop-a")).expect("link");
        std::os::unix::fs::symlink(".", dir.path().join("loop-b")).expect("link");
        std::fs::write(&group_file, group("4")).expect("write");
        let outcome = source.load();
        assert!(outcome.load_errors.is_empty(), "{:?}", outcome.load_errors);
        assert_eq!(weight_of_a(&outcome), Some(4));
    }

    #[test]
    fn a_file_emptied_in_place_is_retried_not_applied() {
        let (_dir, group_file, mut source) = loaded_dir(EMPTY_FILE_GRACE);
        // Truncated: the editor has not written the new contents yet.
        std::fs::File::create(&group_file).expect("truncate");
        let outcome = source.load();
        assert_eq!(
            weight_of_a(&outcome),
            Some(3),
            "the last contents are served"
        );
        let retry = source.retry_after().expect("a retry is asked for");
        assert!(retry <= EMPTY_FILE_GRACE, "{retry:?}");
        assert_eq!(outcome.load_errors.len(), 1, "{:?}", outcome.load_errors);
        assert_eq!(outcome.load_errors[0].file, group_file);
        // Written: the new contents apply.
        std::fs::write(&group_file, group("5")).expect("write");
        let outcome = source.load();
        assert!(outcome.load_errors.is_empty(), "{:?}", outcome.load_errors);
        assert_eq!(weight_of_a(&outcome), Some(5));
        assert_eq!(source.retry_after(), None);

        // A file that stays empty past the grace period is applied: its resources go.
        let (_dir, group_file, mut source) = loaded_dir(Duration::ZERO);
        std::fs::File::create(&group_file).expect("truncate");
        let outcome = source.load();
        assert_eq!(weight_of_a(&outcome), None, "the group is gone");
        assert_eq!(source.retry_after(), None);
    }

    #[test]
    fn unknown_kinds_and_duplicate_definitions_get_a_warning() {
        let (dir, _group_file, mut source) = loaded_dir(EMPTY_FILE_GRACE);
        std::fs::write(
            dir.path().join("typo.yaml"),
            "apiVersion: gloo.solo.io/v1\nkind: UpstreamGrup\nmetadata: {name: typo, namespace: gloo-system}\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("zz-again.yaml"), group("7")).expect("write");
        let outcome = source.load();
        let typo = status_of(&outcome.translation, "UpstreamGrup gloo-system/typo");
        assert_eq!(typo.state, State::Warning, "{typo:#?}");
        assert!(
            typo.reasons[0].contains("typo.yaml:1: kind UpstreamGrup"),
            "{typo:#?}"
        );
        let group = status_of(&outcome.translation, "UpstreamGroup gloo-system/ug");
        assert_eq!(group.state, State::Warning, "{group:#?}");
        assert!(
            group
                .reasons
                .iter()
                .any(|reason| reason.contains("defined 2 times")
                    && reason.contains("ug.yaml:1")
                    && reason.contains("zz-again.yaml:1")),
            "{group:#?}"
        );
        assert_eq!(
            weight_of_a(&outcome),
            Some(7),
            "the last one read is served"
        );
    }
}
