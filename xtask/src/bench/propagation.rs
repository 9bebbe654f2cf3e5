//! Config propagation after a weight change: how long until the gateway *says* it has the new
//! UpstreamGroup (`/status` reports its resourceVersion) and until it *serves* it (the data plane
//! answers only from the newly chosen upstream).

use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::time::Instant;

use super::config::{ConfigDir, GROUP_STATUS_NAME, Weights};
use super::gateway::{AdminClient, Gateway};
use super::load::{Destination, Probe, Target};

/// Consecutive replies from the new upstream that count as "serving only the new config".
pub(crate) const STREAK: u32 = 50;
/// A change not live after this long is a failure.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two `/status` polls (tokio's timer resolution).
const STATUS_POLL: Duration = Duration::from_millis(1);

/// One weight change's timings, both from the moment the new file was renamed into place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Propagation {
    pub(crate) status: Duration,
    /// When the first request of the final run of [`STREAK`] new-upstream replies was sent.
    pub(crate) data_plane: Duration,
}

/// The `change`-th weight change (1-based): all traffic to green, then blue, then green, ... so
/// that every change has exactly one new destination.
pub(crate) fn change(change: u32) -> (Weights, Destination, String) {
    let (weights, destination) = if change % 2 == 1 {
        (
            Weights {
                blue: 0,
                green: 100,
            },
            Destination::Green,
        )
    } else {
        (
            Weights {
                blue: 100,
                green: 0,
            },
            Destination::Blue,
        )
    };
    // Version 1 is the initial 80/20 group.
    (weights, destination, (change + 1).to_string())
}

/// Applies the `index`-th weight change to `config` and measures both propagation times.
pub(crate) async fn measure(
    gateway: &Gateway,
    config: &ConfigDir,
    client: &AdminClient,
    target: &Target,
    index: u32,
) -> anyhow::Result<Propagation> {
    let (weights, destination, version) = change(index);
    // Connect before the change so connection setup is not part of the measurement.
    let probe = Probe::open(target).await?;
    let changed = Instant::now();
    config.set_weights(weights, &version)?;
    let deadline = changed + PROPAGATION_TIMEOUT;
    let (status, data_plane) = tokio::join!(
        wait_status(gateway, client, &version, deadline),
        wait_data_plane(probe, target, destination, deadline),
    );
    let status = status.with_context(|| {
        format!(
            "{}: /status never reported {GROUP_STATUS_NAME} at resourceVersion {version}",
            gateway.name
        )
    })?;
    let data_plane = data_plane.with_context(|| {
        format!(
            "{}: the data plane never served only {} after the change",
            gateway.name,
            destination.body()
        )
    })?;
    Ok(Propagation {
        status: status - changed,
        data_plane: data_plane - changed,
    })
}

/// Returns when `/status` reports the group at `version`.
async fn wait_status(
    gateway: &Gateway,
    client: &AdminClient,
    version: &str,
    deadline: Instant,
) -> anyhow::Result<Instant> {
    loop {
        // A gateway briefly unable to answer while it reloads is polled again.
        if let Ok(status) = gateway.status(client).await
            && reports_version(&status, GROUP_STATUS_NAME, version)
        {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {PROPAGATION_TIMEOUT:?}");
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Whether a `/status` document lists `resource` at `version`.
pub(crate) fn reports_version(status: &serde_json::Value, resource: &str, version: &str) -> bool {
    status
        .get("resources")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|resources| {
            resources.iter().any(|entry| {
                entry.get("resource").and_then(serde_json::Value::as_str) == Some(resource)
                    && entry
                        .get("resource_version")
                        .and_then(serde_json::Value::as_str)
                        == Some(version)
            })
        })
}

/// Sends requests back to back until [`STREAK`] consecutive replies come from `destination`;
/// returns when the first of them was sent. Errors and other replies restart the count.
async fn wait_data_plane(
    mut probe: Probe,
    target: &Target,
    destination: Destination,
    deadline: Instant,
) -> anyhow::Result<Instant> {
    let mut streak = 0u32;
    let mut streak_start = Instant::now();
    loop {
        if Instant::now() >= deadline {
            bail!("timed out after {PROPAGATION_TIMEOUT:?}");
        }
        let sent = Instant::now();
        match probe.get().await {
            Ok(reply) if reply == destination => {
                if streak == 0 {
                    streak_start = sent;
                }
                streak += 1;
                if streak >= STREAK {
                    return Ok(streak_start);
                }
            }
            Ok(_) => streak = 0,
            Err(error) => {
                // A gateway may close connections when it reconfigures; carry on with a new one.
                tracing::debug!(%error, "propagation probe failed; reconnecting");
                streak = 0;
                probe = Probe::open(target).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_alternate_between_single_destinations_with_new_versions() {
        let (first, to, version) = change(1);
        assert_eq!((first.blue, first.green, to), (0, 100, Destination::Green));
        assert_eq!(version, "2");
        let (second, to, version) = change(2);
        assert_eq!((second.blue, second.green, to), (100, 0, Destination::Blue));
        assert_eq!(version, "3");
    }

    #[test]
    fn status_must_name_the_group_at_the_new_version() {
        let status = json!({
            "generation": 3,
            "resources": [
                {"resource": "Upstream gloo-system/bench-blue", "state": "Accepted", "resource_version": "2"},
                {"resource": GROUP_STATUS_NAME, "state": "Accepted", "resource_version": "2"},
            ],
        });
        assert!(reports_version(&status, GROUP_STATUS_NAME, "2"));
        assert!(!reports_version(&status, GROUP_STATUS_NAME, "3"));
        assert!(!reports_version(
            &json!({"generation": 0}),
            GROUP_STATUS_NAME,
            "2"
        ));
    }
}
