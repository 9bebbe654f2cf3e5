//! Reload plumbing: a [`ConfigSource`] produces translations, [`crate::ProxyState::reload`]
//! installs them, and [`watch_dir`] triggers reloads when a directory changes.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ProxyState;
use routing::Translation;

use crate::snapshot::FileLoadFailure;

/// Where a proxy's configuration comes from. `load` runs on a blocking thread, one call at a
/// time, and must always produce a translation: problems belong in statuses and load errors,
/// and the previous good configuration is kept by the source itself (it sees every load).
pub trait ConfigSource: Send + fmt::Debug + 'static {
    /// Reads and translates the current configuration.
    fn load(&mut self) -> LoadOutcome;

    /// After a load: whether the source wants another load after this long, though nothing
    /// changed (it saw something in progress, such as a file being written). `None` by default.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// What one load produced.
#[derive(Debug)]
pub struct LoadOutcome {
    /// The table and statuses to install.
    pub translation: Translation,
    /// Files that could not be read or parsed this time.
    pub load_errors: Vec<FileLoadFailure>,
}

/// The result of a successful reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    /// The generation now live.
    pub generation: u64,
    /// The source asks to be loaded again after this long ([`ConfigSource::retry_after`]);
    /// [`watch_dir`] does so.
    pub retry_after: Option<Duration>,
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The proxy was built from a table, not from a configuration source.
    #[error("this proxy has no configuration source to reload from")]
    NoSource,
    /// The source panicked while loading; the live configuration is unchanged.
    #[error("loading the configuration failed unexpectedly: {0}")]
    LoaderFailed(String),
}

pub(crate) async fn reload(state: &ProxyState) -> Result<ReloadReport, ReloadError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        // Holding the source's lock for the whole load + install keeps generations in load order.
        let mut source = state
            .shared
            .source
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let source = source.as_mut().ok_or(ReloadError::NoSource)?;
        let LoadOutcome {
            translation,
            load_errors,
        } = source.load();
        let retry_after = source.retry_after();
        let generation = state.install(translation, load_errors);
        Ok(ReloadReport {
            generation,
            retry_after,
        })
    })
    .await
    .map_err(|join_error| ReloadError::LoaderFailed(join_error.to_string()))?
}

/// Watches `dir` (recursively) and reloads `state` after each burst of changes: events closer
/// together than `debounce` are coalesced into one reload. Renames into the directory count as
/// changes, so files written by rename are picked up. Stops when the returned guard is dropped.
pub fn watch_dir(
    state: ProxyState,
    dir: &Path,
    debounce: Duration,
) -> Result<DirWatch, notify::Error> {
    let (events, mut received) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reads (including our own) are not changes.
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = events.send(());
            }
            Err(error) => tracing::warn!(%error, "config directory watch error"),
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let task = tokio::spawn(async move {
        let mut retry_after: Option<Duration> = None;
        loop {
            let changed = match retry_after.take() {
                None => received.recv().await,
                // The source saw a change in progress: reload after the delay, or on the next
                // change, whichever comes first.
                Some(delay) => tokio::time::timeout(delay, received.recv())
                    .await
                    .unwrap_or(Some(())),
            };
            if changed.is_none() {
                break;
            }
            while let Ok(Some(())) = tokio::time::timeout(debounce, received.recv()).await {}
            match state.reload().await {
                Ok(report) => {
                    tracing::info!(
                        generation = report.generation,
                        "reloaded after a config change"
                    );
                    retry_after = report.retry_after;
                }
                Err(error) => tracing::error!(%error, "reload after a config change failed"),
            }
        }
    });
    Ok(DirWatch {
        _watcher: watcher,
        task,
    })
}

/// Keeps a directory watch alive; dropping it stops watching.
#[derive(Debug)]
pub struct DirWatch {
    _watcher: notify::RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
