//! Readiness polls: check a condition until it holds, and fail the test with what was awaited
//! once a deadline passes. The pause between checks is the poll interval, not a wait standing in
//! for readiness.

use std::time::Duration;

/// The pause between two checks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Polls `check` until it returns `Some`, and returns that value. Panics, naming `what`, once
/// `timeout` has passed.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `condition` until it holds. Panics, naming `what`, once `timeout` has passed.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || {
        std::future::ready(condition().then_some(()))
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_the_check_gives() {
        let calls = AtomicUsize::new(0);
        let value = wait_for("the third call", Duration::from_secs(10), || async {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (call == 3).then_some(call)
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for something that never happens")]
    async fn fails_after_the_deadline_naming_what_it_awaited() {
        wait_until(
            "something that never happens",
            Duration::from_millis(30),
            || false,
        )
        .await;
    }
}
