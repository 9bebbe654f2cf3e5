//! Request routing as Go's `http.ServeMux` (Go 1.12) does it for the gateway's exact patterns.
//!
//! ServeMux matches on the percent-decoded path, and before matching it answers `301` for any
//! path that is not clean (`//color`, `/./color`, `/a/../color`) with the cleaned path as
//! `Location`. That redirect is what a client sees when a gateway's prefix rewrite produces `//`.

use http::{Method, Uri};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Color,
    ClearColor,
    TcpEcho,
    Ping,
    NotFound,
    /// `301` to this location.
    Redirect(String),
    /// The target has a malformed percent escape, which Go's server refuses with `400`.
    BadRequest,
}

/// What Go's `url.EscapedPath` leaves unescaped: the unreserved characters and `$&+,/:;=@`.
const GO_PATH_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

pub(crate) fn route(method: &Method, uri: &Uri) -> Route {
    let raw = uri.path();
    if !has_valid_escapes(raw) {
        return Route::BadRequest;
    }
    let path = percent_decode_str(raw).decode_utf8_lossy();
    if method != Method::CONNECT {
        let clean = clean_path(&path);
        if clean != path {
            let mut location = utf8_percent_encode(&clean, GO_PATH_ESCAPES).to_string();
            if let Some(query) = uri.query().filter(|q| !q.is_empty()) {
                location.push('?');
                location.push_str(query);
            }
            return Route::Redirect(location);
        }
    }
    match &*path {
        "/color" => Route::Color,
        "/color/clear" => Route::ClearColor,
        "/tcpecho" => Route::TcpEcho,
        "/ping" => Route::Ping,
        _ => Route::NotFound,
    }
}

fn has_valid_escapes(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3);
            if !hex.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            index += 3;
        } else {
            index += 1;
        }
    }
    true
}

/// Go's `cleanPath`: `path.Clean` of the rooted path, keeping a trailing slash.
fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut clean = format!("/{}", segments.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

/// Escapes `&'<>"` as Go's `htmlEscape` does for the redirect body.
pub(crate) fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&#34;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: &str) -> Route {
        route(&Method::GET, &target.parse().unwrap())
    }

    #[test]
    fn exact_patterns_only() {
        assert_eq!(get("/color"), Route::Color);
        assert_eq!(get("/color?x=1"), Route::Color);
        assert_eq!(get("/color/clear"), Route::ClearColor);
        assert_eq!(get("/tcpecho"), Route::TcpEcho);
        assert_eq!(get("/ping"), Route::Ping);
        for path in [
            "/",
            "/color/",
            "/colorful",
            "/color/x",
            "/COLOR",
            "/color/clear/",
        ] {
            assert_eq!(get(path), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn matching_is_on_the_decoded_path() {
        assert_eq!(get("/col%6Fr"), Route::Color);
        assert_eq!(get("/color%2Fclear"), Route::ClearColor);
        assert_eq!(get("/color%"), Route::BadRequest);
        assert_eq!(get("/color%zz"), Route::BadRequest);
    }

    #[test]
    fn unclean_paths_redirect_to_the_clean_one() {
        assert_eq!(get("//color"), Route::Redirect("/color".into()));
        assert_eq!(get("//color?x=1&y"), Route::Redirect("/color?x=1&y".into()));
        assert_eq!(get("/./color"), Route::Redirect("/color".into()));
        assert_eq!(
            get("/x/../color/clear"),
            Route::Redirect("/color/clear".into())
        );
        assert_eq!(get("//color/"), Route::Redirect("/color/".into()));
        assert_eq!(get("/../.."), Route::Redirect("/".into()));
        assert_eq!(get("//a%20b"), Route::Redirect("/a%20b".into()));
        assert_eq!(get("//nothing"), Route::Redirect("/nothing".into()));
        assert_eq!(
            route(&Method::CONNECT, &"//color".parse().unwrap()),
            Route::NotFound
        );
    }

    #[test]
    fn clean_path_matches_go() {
        assert_eq!(clean_path(""), "/");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path("/a//b/"), "/a/b/");
        assert_eq!(clean_path("/a/b/.."), "/a");
        assert_eq!(clean_path("/a/b/../"), "/a/");
    }

    #[test]
    fn html_escape_matches_go() {
        assert_eq!(
            html_escape(r#"/a?b=1&c="<'>""#),
            "/a?b=1&amp;c=&#34;&lt;&#39;&gt;&#34;"
        );
    }
}
