//! Hop-by-hop header handling (RFC 9110 §7.6.1), applied to requests and responses alike.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// Headers that describe one connection and must never be forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers and every header the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn removes_fixed_hop_by_hop_headers_and_keeps_end_to_end_ones() {
        let mut map = headers(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic abc"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("host", "colorgateway"),
            ("x-request-id", "abc"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut map);
        let mut left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "host", "x-request-id"]);
    }

    #[test]
    fn removes_headers_named_by_connection_across_values_and_case() {
        let mut map = headers(&[
            ("connection", "X-Trace-Hop, close"),
            ("connection", " x-other "),
            ("x-trace-hop", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
        ]);
        strip_hop_by_hop(&mut map);
        assert!(!map.contains_key("x-trace-hop"));
        assert!(!map.contains_key("x-other"));
        assert!(!map.contains_key("connection"));
        assert_eq!(
            map.get("x-kept").map(HeaderValue::as_bytes),
            Some(&b"3"[..])
        );
    }

    #[test]
    fn ignores_unparsable_connection_tokens() {
        let mut map = headers(&[
            ("connection", "bad header, x-gone"),
            ("x-gone", "1"),
            ("x-stay", "1"),
        ]);
        strip_hop_by_hop(&mut map);
        assert!(!map.contains_key("x-gone"));
        assert!(map.contains_key("x-stay"));
    }
}
