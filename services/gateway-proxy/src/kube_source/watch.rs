//! One watcher per (kind, namespace): a kube-rs reflector that keeps a store of the objects,
//! reports when its initial list is complete, and signals every later change.

use std::pin::pin;

use futures_util::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::reflector::store::{Store, Writer};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::KubeSourceError;
use super::kinds::WatchedKind;

/// The live objects of one kind in one scope.
#[derive(Clone)]
pub(crate) struct Watched {
    pub(crate) kind: WatchedKind,
    /// `None`: every namespace (or a cluster-scoped kind).
    pub(crate) namespace: Option<String>,
    pub(crate) store: Store<DynamicObject>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("kind", &self.kind.kind)
            .field("namespace", &self.namespace)
            .field("objects", &self.store.len())
            .finish()
    }
}

impl Watched {
    /// `in all namespaces` / `in namespace NS`, for messages.
    pub(crate) fn scope(&self) -> String {
        scope(&self.kind, self.namespace.as_deref())
    }
}

fn scope(kind: &WatchedKind, namespace: Option<&str>) -> String {
    match namespace {
        _ if !kind.namespaced => "(cluster scoped)".to_owned(),
        Some(namespace) => format!("in namespace {namespace}"),
        None => "in all namespaces".to_owned(),
    }
}

/// A running watcher: its store, a receiver for the outcome of its initial list, and its task.
pub(crate) struct Spawned {
    pub(crate) watched: Watched,
    pub(crate) initial_list: oneshot::Receiver<Result<(), KubeSourceError>>,
    pub(crate) task: JoinHandle<()>,
}

/// Starts watching `kind` (in `namespace`, or everywhere). After the initial list, every event
/// sends `()` on `changes`.
pub(crate) fn spawn(
    client: Client,
    kind: WatchedKind,
    namespace: Option<String>,
    changes: mpsc::UnboundedSender<()>,
) -> Spawned {
    let api: Api<DynamicObject> = match (&namespace, kind.namespaced) {
        (Some(namespace), true) => Api::namespaced_with(client, namespace, &kind.api),
        _ => Api::all_with(client, &kind.api),
    };
    let writer = Writer::new(kind.api.clone());
    let store = writer.as_reader();
    let (initial_tx, initial_list) = oneshot::channel();
    let task = tokio::spawn(drive(
        api,
        writer,
        kind.clone(),
        namespace.clone(),
        initial_tx,
        changes,
    ));
    Spawned {
        watched: Watched {
            kind,
            namespace,
            store,
        },
        initial_list,
        task,
    }
}

async fn drive(
    api: Api<DynamicObject>,
    writer: Writer<DynamicObject>,
    kind: WatchedKind,
    namespace: Option<String>,
    initial_tx: oneshot::Sender<Result<(), KubeSourceError>>,
    changes: mpsc::UnboundedSender<()>,
) {
    let mut initial_tx = Some(initial_tx);
    let mut events = pin!(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
    );
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::InitDone) => match initial_tx.take() {
                Some(initial) => {
                    tracing::debug!(kind = %kind.kind, namespace = ?namespace, "initial list complete");
                    let _ = initial.send(Ok(()));
                }
                // A re-list after the watch lost its place: the store was just replaced.
                None => {
                    let _ = changes.send(());
                }
            },
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                if initial_tx.is_none() {
                    let _ = changes.send(());
                }
            }
            Err(error) => {
                if initial_tx.is_some()
                    && let Some(fatal) = fatal_initial_error(&kind, namespace.as_deref(), &error)
                {
                    if let Some(initial) = initial_tx.take() {
                        let _ = initial.send(Err(fatal));
                    }
                    return;
                }
                tracing::warn!(
                    kind = %kind.kind,
                    scope = %scope(&kind, namespace.as_deref()),
                    %error,
                    "watching the API server failed; retrying with backoff"
                );
            }
        }
    }
}

/// Errors of the initial list that retrying cannot fix: the kind is not served (CRDs not
/// installed) or the service account may not list it. Anything else (the API server briefly
/// unavailable, a timeout) is retried.
pub(crate) fn fatal_initial_error(
    kind: &WatchedKind,
    namespace: Option<&str>,
    error: &watcher::Error,
) -> Option<KubeSourceError> {
    let watcher::Error::InitialListFailed(kube::Error::Api(status)) = error else {
        return None;
    };
    // An API group that is not registered answers a plain-text `404 page not found`, which kube
    // turns into a Status with only the code set (its `is_not_found` looks at the reason).
    if status.code == 404 || status.is_not_found() {
        return Some(match kind.crd_dir {
            Some(crd_dir) => KubeSourceError::CrdMissing {
                kind: kind.kind.to_string(),
                api_version: kind.api.api_version.clone(),
                resource: kind.resource_name(),
                crd_dir,
            },
            None => KubeSourceError::KindNotServed {
                kind: kind.kind.to_string(),
                api_version: kind.api.api_version.clone(),
                resource: kind.resource_name(),
            },
        });
    }
    if matches!(status.code, 401 | 403) || status.is_forbidden() {
        return Some(KubeSourceError::ListRefused {
            kind: kind.kind.to_string(),
            scope: scope(kind, namespace),
            resource: kind.resource_name(),
            code: status.code,
            message: status.message.clone(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use routing::Role;

    use super::*;
    use crate::kube_source::kinds::for_role;

    /// As kube reports an error answer whose body is not a Status (`404 page not found`).
    fn list_failed(code: u16) -> watcher::Error {
        watcher::Error::InitialListFailed(kube::Error::Api(
            Status::failure("refused", "Failed to parse error data")
                .with_code(code)
                .boxed(),
        ))
    }

    #[test]
    fn a_404_on_a_crd_kind_says_to_install_the_crds() {
        let kinds = for_role(&Role::ingress());
        let error = fatal_initial_error(&kinds[2], None, &list_failed(404))
            .expect("a 404 is fatal")
            .to_string();
        assert!(error.contains("UpstreamGroup (gloo.solo.io/v1)"), "{error}");
        assert!(
            error.contains("kubectl apply -f ../shared/schemas/gloo/"),
            "{error}"
        );
    }

    #[test]
    fn a_403_names_the_resource_and_scope() {
        let kinds = for_role(&Role::ingress());
        let error = fatal_initial_error(
            crate::kube_source::kinds::find(&kinds, model::ResourceKind::Service),
            Some("gloo-system"),
            &list_failed(403),
        )
        .expect("a 403 is fatal")
        .to_string();
        assert!(
            error.contains("services in namespace gloo-system"),
            "{error}"
        );
        assert!(error.contains("403"), "{error}");
    }

    #[test]
    fn server_errors_and_watch_errors_are_retried() {
        let kinds = for_role(&Role::ingress());
        assert!(fatal_initial_error(&kinds[0], None, &list_failed(500)).is_none());
        let watch_failed = watcher::Error::WatchFailed(kube::Error::Api(
            Status::failure("gone", "").with_code(404).boxed(),
        ));
        assert!(fatal_initial_error(&kinds[0], None, &watch_failed).is_none());
    }
}
