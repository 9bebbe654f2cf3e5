//! Retries and timeouts in Gateway API terms, shared by the Gloo and App Mesh conversions.

use std::collections::BTreeSet;
use std::time::Duration;

use model::gateway_api::{GatewayDuration, HttpRouteRetry, HttpRouteTimeouts};

use crate::paths::gateway_duration;

/// Envoy's default first back-off between retries (its exponential back-off starts at 25 ms and
/// is capped at 250 ms, with jitter).
pub(crate) const ENVOY_BACKOFF: Duration = Duration::from_millis(25);

/// Envoy's route timeout when none is set (Gloo and App Mesh both leave it in place).
pub(crate) const ENVOY_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// A retry policy, gathered from either dialect.
#[derive(Debug, Clone, Default)]
pub(crate) struct Retry {
    pub(crate) codes: BTreeSet<u16>,
    pub(crate) attempts: u32,
    pub(crate) per_try: Option<Duration>,
    /// Conditions Gateway API's `retry.codes` cannot express (connection failures, resets).
    pub(crate) inexpressible: Vec<String>,
    /// Conditions that are not retry conditions Gateway API knows at all.
    pub(crate) unknown: Vec<String>,
}

impl Retry {
    pub(crate) fn to_gateway(&self) -> Option<HttpRouteRetry> {
        (!self.codes.is_empty()).then(|| HttpRouteRetry {
            codes: self.codes.iter().copied().collect(),
            attempts: Some(self.attempts),
            backoff: Some(duration(ENVOY_BACKOFF)),
        })
    }

    /// The codes, compactly: `500-599` or `502, 503, 504`.
    pub(crate) fn codes_text(&self) -> String {
        let codes: Vec<u16> = self.codes.iter().copied().collect();
        let mut parts = Vec::new();
        let mut start = 0;
        while start < codes.len() {
            let mut end = start;
            while end + 1 < codes.len() && codes[end + 1] == codes[end] + 1 {
                end += 1;
            }
            if end - start >= 2 {
                parts.push(format!("{}-{}", codes[start], codes[end]));
            } else {
                parts.extend(codes[start..=end].iter().map(u16::to_string));
            }
            start = end + 1;
        }
        parts.join(", ")
    }
}

/// A duration in Gateway API form, rounded when it cannot be written exactly.
pub(crate) fn duration(d: Duration) -> GatewayDuration {
    match gateway_duration(d) {
        Ok(d) | Err(d) => d,
    }
}

/// The `timeouts` of a rule: the request timeout (`Some(ZERO)` disables it) and the per-try
/// timeout, capped by the request timeout as the CRD requires (a try cannot outlast the request
/// anyway).
pub(crate) fn timeouts(
    request: Option<Duration>,
    per_try: Option<Duration>,
) -> Option<HttpRouteTimeouts> {
    let backend = match (request, per_try) {
        (Some(request), Some(per_try)) if !request.is_zero() && per_try > request => Some(request),
        (_, per_try) => per_try,
    };
    (request.is_some() || backend.is_some()).then(|| HttpRouteTimeouts {
        request: request.map(duration),
        backend_request: backend.map(duration),
    })
}

/// Every code from 500 to 599 (Envoy's `5xx`, App Mesh's `server-error`).
pub(crate) fn all_5xx() -> impl Iterator<Item = u16> {
    500..=599
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_ranges() {
        let retry = Retry {
            codes: all_5xx().chain([409]).collect(),
            ..Retry::default()
        };
        assert_eq!(retry.codes_text(), "409, 500-599");
        let retry = Retry {
            codes: [502, 503, 504].into(),
            ..Retry::default()
        };
        assert_eq!(retry.codes_text(), "502-504");
    }

    #[test]
    fn a_per_try_timeout_never_outlasts_the_request() {
        let t = timeouts(Some(Duration::from_secs(2)), Some(Duration::from_secs(5))).expect("set");
        assert_eq!(t.backend_request.expect("set").as_str(), "2s");
        let t = timeouts(None, Some(Duration::from_secs(5))).expect("set");
        assert!(t.request.is_none());
        assert!(timeouts(None, None).is_none());
    }
}
