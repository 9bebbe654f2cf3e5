//! Request routing as Go's `http.ServeMux` does it for the gateway's exact patterns.
//!
//! ServeMux matches on the percent-decoded path, and before matching it answers `301` for any
//! path that is not clean (`//color`, `/./color`, `/a/../color`) with the cleaned path as
//! `Location` ([`service_kit::go_http::mux_path`]). That redirect is what a client sees when a
//! gateway's prefix rewrite produces `//`.

use http::{Method, Uri};
use service_kit::go_http::{self, MuxPath};

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

pub(crate) fn route(method: &Method, uri: &Uri) -> Route {
    let path = match go_http::mux_path(method, uri) {
        MuxPath::Clean(path) => path,
        MuxPath::Redirect(location) => return Route::Redirect(location),
        MuxPath::BadRequest => return Route::BadRequest,
    };
    match &*path {
        "/color" => Route::Color,
        "/color/clear" => Route::ClearColor,
        "/tcpecho" => Route::TcpEcho,
        "/ping" => Route::Ping,
        _ => Route::NotFound,
    }
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
}
