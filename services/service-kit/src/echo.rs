//! The request echo: an opt-in that makes every HTTP reply of a service say what the service
//! saw, for a harness that compares two configurations of the same workloads (`cargo xtask
//! equivalence`). Off unless a binary installs it; the reply's status and body never change.
//!
//! With `COLORMESH_ECHO_REQUEST=1` (read by [`RequestEcho::install_from_env`], which binaries call
//! once in `main`), each reply of [`crate::serve_http`] carries:
//!
//! - `x-colormesh-seen-path`: the request target's path and query as received;
//! - `x-colormesh-seen-host`: the `Host` header (or the URI's authority);
//! - `x-colormesh-seen-headers`: the other request headers as a JSON object, names lower case,
//!   repeated values joined with `, ` (`content-length` and hop-by-hop headers left out);
//! - `x-colormesh-served-by`: `COLORMESH_SERVED_BY`, the workload's name as its supervisor knows it
//!   (the local backend passes `<namespace>/<deployment>`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Request};

/// The environment variable that turns the echo on (`1` or `true`).
pub const ECHO_ENV: &str = "COLORMESH_ECHO_REQUEST";
/// The environment variable naming the workload in `x-colormesh-served-by`.
pub const SERVED_BY_ENV: &str = "COLORMESH_SERVED_BY";
/// The reply header with the path and query the service saw.
pub const SEEN_PATH: &str = "x-colormesh-seen-path";
/// The reply header with the host the service saw.
pub const SEEN_HOST: &str = "x-colormesh-seen-host";
/// The reply header with the request headers the service saw (a JSON object).
pub const SEEN_HEADERS: &str = "x-colormesh-seen-headers";
/// The reply header naming the workload that answered.
pub const SERVED_BY: &str = "x-colormesh-served-by";

static INSTALLED: OnceLock<RequestEcho> = OnceLock::new();

/// The echo's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEcho {
    /// What `x-colormesh-served-by` says.
    pub served_by: String,
}

/// What the service saw of one request, taken before the handler consumes it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    path: String,
    host: String,
    headers: String,
}

impl RequestEcho {
    /// Reads [`ECHO_ENV`] and [`SERVED_BY_ENV`]; `None` unless the echo is asked for.
    pub fn from_env() -> Option<Self> {
        let on = std::env::var(ECHO_ENV)
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true"));
        on.then(|| Self {
            served_by: std::env::var(SERVED_BY_ENV).unwrap_or_default(),
        })
    }

    /// Turns the echo on for every [`crate::serve_http`] of this process when the environment
    /// asks for it. Binaries call it once, first thing; libraries never do.
    pub fn install_from_env() {
        if let Some(echo) = Self::from_env() {
            let _ = INSTALLED.set(echo);
        }
    }

    /// The echo installed in this process, if any.
    pub(crate) fn installed() -> Option<&'static Self> {
        INSTALLED.get()
    }

    /// Notes what a request looks like on arrival.
    pub(crate) fn see<B>(request: &Request<B>) -> Seen {
        let path = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |p| p.as_str().to_owned(),
        );
        let host = request
            .headers()
            .get(http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        Seen {
            path,
            host,
            headers: seen_headers(request.headers()),
        }
    }

    /// Adds the echo headers to a reply.
    pub(crate) fn stamp(&self, seen: &Seen, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put(SEEN_PATH, &seen.path);
        put(SEEN_HOST, &seen.host);
        put(SEEN_HEADERS, &seen.headers);
        put(SERVED_BY, &self.served_by);
    }
}

/// The request headers as a JSON object (sorted names, lower case), without `host`,
/// `content-length` and the hop-by-hop headers.
fn seen_headers(headers: &HeaderMap) -> String {
    const LEFT_OUT: [&str; 9] = [
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        if LEFT_OUT.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        seen.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    serde_json::to_string(&seen).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_names_path_host_headers_and_workload() {
        let request = Request::builder()
            .uri("/color?x=1")
            .header("host", "example.com")
            .header("x-b", "2")
            .header("x-a", "1")
            .header("x-a", "3")
            .header("connection", "keep-alive")
            .body(())
            .unwrap();
        let seen = RequestEcho::see(&request);
        let mut headers = HeaderMap::new();
        RequestEcho {
            served_by: "appmesh-demo/colorgateway".into(),
        }
        .stamp(&seen, &mut headers);
        assert_eq!(headers[SEEN_PATH], "/color?x=1");
        assert_eq!(headers[SEEN_HOST], "example.com");
        assert_eq!(headers[SEEN_HEADERS], r#"{"x-a":"1, 3","x-b":"2"}"#);
        assert_eq!(headers[SERVED_BY], "appmesh-demo/colorgateway");
    }
}
