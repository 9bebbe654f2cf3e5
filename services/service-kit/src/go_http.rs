//! What Go's `net/http` does around a handler, for the services that stand in for Go programs
//! (colorteller, colorgateway): content sniffing, the `400` for an HTTP/1.1 request without
//! `Host`, and `ServeMux`'s `301` to the cleaned path.
//!
//! Written from Go's documented behaviour (net/http `sniff.go`, `server.go`, `path.Clean`); no
//! crate implements Go's `DetectContentType` table (the MIME-sniffing crates follow the WHATWG
//! browser algorithm, which differs from Go's subset), hence the small table here.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};

use crate::HttpResponse;

/// Go's `http.DetectContentType` (Go 1.17, the Go the colorapp images were built with): looks
/// at the first 512 bytes and returns the MIME type of the first signature that matches,
/// `text/plain; charset=utf-8` for text without control bytes and `application/octet-stream`
/// otherwise.
pub fn detect_content_type(data: &[u8]) -> &'static str {
    let data = &data[..data.len().min(512)];
    let first_non_ws = data.iter().position(|b| !is_ws(*b)).unwrap_or(data.len());
    for tag in HTML_TAGS {
        if html_matches(&data[first_non_ws..], tag) {
            return "text/html; charset=utf-8";
        }
    }
    if data[first_non_ws..].starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    for (pattern, mask, content_type) in MASKED {
        if masked_matches(data, pattern, mask) {
            return content_type;
        }
    }
    for (signature, content_type) in EXACT_BEFORE_MEDIA {
        if data.starts_with(signature) {
            return content_type;
        }
    }
    for (pattern, mask, content_type) in MEDIA {
        if masked_matches(data, pattern, mask) {
            return content_type;
        }
    }
    if is_mp4(data) {
        return "video/mp4";
    }
    if data.starts_with(b"\x1A\x45\xDF\xA3") {
        return "video/webm";
    }
    // application/vnd.ms-fontobject: "LP" at offset 34, the bytes before it masked out.
    if data.get(34..36) == Some(b"LP".as_slice()) {
        return "application/vnd.ms-fontobject";
    }
    for (signature, content_type) in EXACT_AFTER_MEDIA {
        if data.starts_with(signature) {
            return content_type;
        }
    }
    if data[first_non_ws..].iter().all(|b| !is_binary(*b)) {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

const HTML_TAGS: &[&[u8]] = &[
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
];

/// `%PDF-`, `%!PS-Adobe-` and the byte-order marks, in Go's order (all before the images). The
/// lists below keep Go's order too; where Go interleaves exact and masked signatures (WebP
/// between GIF and PNG), the two cannot match the same bytes, so the answers are Go's.
const MASKED: &[(&[u8], &[u8], &str)] = &[
    (b"%PDF-", b"\xFF\xFF\xFF\xFF\xFF", "application/pdf"),
    (
        b"%!PS-Adobe-",
        b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
        "application/postscript",
    ),
    (
        b"\xFE\xFF\x00\x00",
        b"\xFF\xFF\x00\x00",
        "text/plain; charset=utf-16be",
    ),
    (
        b"\xFF\xFE\x00\x00",
        b"\xFF\xFF\x00\x00",
        "text/plain; charset=utf-16le",
    ),
    (
        b"\xEF\xBB\xBF\x00",
        b"\xFF\xFF\xFF\x00",
        "text/plain; charset=utf-8",
    ),
];

const EXACT_BEFORE_MEDIA: &[(&[u8], &str)] = &[
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\x0D\x0A\x1A\x0A", "image/png"),
    (b"\xFF\xD8\xFF", "image/jpeg"),
];

/// WebP (between GIF and PNG in Go's table; no exact signature there can also match it) and the
/// audio and video patterns, in Go's order.
const MEDIA: &[(&[u8], &[u8], &str)] = &[
    (
        b"RIFF\x00\x00\x00\x00WEBPVP",
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF",
        "image/webp",
    ),
    (
        b"FORM\x00\x00\x00\x00AIFF",
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        "audio/aiff",
    ),
    (b"ID3", b"\xFF\xFF\xFF", "audio/mpeg"),
    (b"OggS\x00", b"\xFF\xFF\xFF\xFF\xFF", "application/ogg"),
    (
        b"MThd\x00\x00\x00\x06",
        b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
        "audio/midi",
    ),
    (
        b"RIFF\x00\x00\x00\x00AVI ",
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        "video/avi",
    ),
    (
        b"RIFF\x00\x00\x00\x00WAVE",
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        "audio/wave",
    ),
];

/// After `video/mp4`, webm and the embedded-font pattern: the fonts, the archives and wasm.
const EXACT_AFTER_MEDIA: &[(&[u8], &str)] = &[
    (b"\x00\x01\x00\x00", "font/ttf"),
    (b"OTTO", "font/otf"),
    (b"ttcf", "font/collection"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x1F\x8B\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1A\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1A\x07\x01\x00", "application/x-rar-compressed"),
    (b"\x00asm", "application/wasm"),
];

fn is_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0C | b'\r' | b' ')
}

fn is_binary(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F)
}

/// Go's `htmlSig`: the tag, case-insensitively, then a space or `>`.
fn html_matches(data: &[u8], tag: &[u8]) -> bool {
    if data.len() < tag.len() + 1 {
        return false;
    }
    let same = tag.iter().zip(data).all(|(t, d)| {
        let d = if t.is_ascii_uppercase() { d & 0xDF } else { *d };
        *t == d
    });
    same && matches!(data[tag.len()], b' ' | b'>')
}

fn masked_matches(data: &[u8], pattern: &[u8], mask: &[u8]) -> bool {
    data.len() >= pattern.len()
        && pattern
            .iter()
            .zip(mask)
            .zip(data)
            .all(|((p, m), d)| d & m == *p)
}

/// Go's `mp4Sig`: an `ftyp` box whose brands include `mp4`.
fn is_mp4(data: &[u8]) -> bool {
    if data.len() < 12 {
        return false;
    }
    let box_size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if data.len() < box_size || !box_size.is_multiple_of(4) || &data[4..8] != b"ftyp" {
        return false;
    }
    (8..box_size)
        .step_by(4)
        .filter(|start| *start != 12)
        .any(|start| data.get(start..start + 3) == Some(b"mp4".as_slice()))
}

/// A reply as a Go handler that writes `body` without setting a type gets it: `Content-Type`
/// sniffed from the body, none for an empty body.
pub fn sniffed(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    let body = body.into();
    let content_type = (!body.is_empty()).then(|| detect_content_type(&body));
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

/// An error reply as Go's `http.Error` writes it: the message plus a newline, typed
/// `text/plain; charset=utf-8`, and `X-Content-Type-Options: nosniff`.
pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Go's server refuses an HTTP/1.1 request without a `Host` header (an empty one is accepted)
/// before any handler runs: `400`, body `400 Bad Request: missing required Host header`,
/// `Connection: close`. Returns that reply when `request` is such a request.
pub fn refuse_missing_host<B>(request: &Request<B>) -> Option<HttpResponse> {
    if request.version() < Version::HTTP_11
        || request.method() == Method::CONNECT
        || request.headers().contains_key(header::HOST)
    {
        return None;
    }
    let mut response = Response::new(Full::new(Bytes::from_static(
        b"400 Bad Request: missing required Host header",
    )));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
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

/// What Go's server and `ServeMux` make of a request target before any handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxPath {
    /// The percent-decoded path, clean; invalid UTF-8 is replaced (it matches no pattern).
    Clean(String),
    /// The decoded path is not clean (`//x`, `/./x`, `/a/../b`): `301` to this location, the
    /// cleaned path escaped as Go's `url.URL.String` escapes it, plus the raw query.
    Redirect(String),
    /// A malformed percent escape: Go's server refuses the request with `400 Bad Request`.
    BadRequest,
}

/// Decodes and cleans `uri`'s path as Go 1.x's server and `ServeMux` do (`CONNECT` is not
/// cleaned).
pub fn mux_path(method: &Method, uri: &Uri) -> MuxPath {
    let raw = uri.path();
    if !has_valid_escapes(raw) {
        return MuxPath::BadRequest;
    }
    let decoded: Vec<u8> = percent_decode_str(raw).collect();
    if method != Method::CONNECT {
        let clean = clean_path(&decoded);
        if clean != decoded {
            let mut location = percent_encode(&clean, GO_PATH_ESCAPES).to_string();
            if let Some(query) = uri.query().filter(|q| !q.is_empty()) {
                location.push('?');
                location.push_str(query);
            }
            return MuxPath::Redirect(location);
        }
    }
    MuxPath::Clean(String::from_utf8_lossy(&decoded).into_owned())
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

/// Go's server's reply to a request it cannot parse: `400`, `400 Bad Request`, connection closed.
pub fn bad_request() -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(b"400 Bad Request")));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// ServeMux's `cleanPath`: Go's `path.Clean` of the rooted path, keeping a trailing slash.
pub fn clean_path(path: &[u8]) -> Vec<u8> {
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut clean = vec![b'/'];
    clean.extend(segments.join(&b'/'));
    if path.ends_with(b"/") && clean != b"/" {
        clean.push(b'/');
    }
    clean
}

/// ServeMux's `301` as Go's `http.Redirect` writes it: `Location`, and for GET an HTML body
/// `<a href="…">Moved Permanently</a>.\n\n` typed `text/html; charset=utf-8` (HEAD gets the type
/// without the body).
pub fn redirect(method: &Method, location: &str) -> HttpResponse {
    let body = if method == Method::GET {
        format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(location)
        )
    } else {
        String::new()
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let headers = response.headers_mut();
    // In Go's order (sorted): Content-Type, then Location.
    if method == Method::GET || method == Method::HEAD {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    match HeaderValue::from_str(location) {
        Ok(location) => {
            headers.insert(header::LOCATION, location);
        }
        Err(error) => tracing::warn!(%error, location, "redirect location is not a header value"),
    }
    response
}

/// Escapes `&'<>"` as Go's `htmlEscape` does for the redirect body.
pub fn html_escape(text: &str) -> String {
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

    #[test]
    fn sniffs_as_go_does_for_service_bodies() {
        let cases: &[(&[u8], &str)] = &[
            (b"blue", "text/plain; charset=utf-8"),
            (b"<html>", "text/html; charset=utf-8"),
            (b"  <HtMl >red", "text/html; charset=utf-8"),
            (b"<html", "text/plain; charset=utf-8"),
            (b"<p>", "text/html; charset=utf-8"),
            (b"<pre>", "text/plain; charset=utf-8"),
            (b"<!-- x -->", "text/html; charset=utf-8"),
            (b"<?xml version", "text/xml; charset=utf-8"),
            (
                b"{\"color\":\"<html>\", \"stats\": {}}",
                "text/plain; charset=utf-8",
            ),
            (b"red\x01", "application/octet-stream"),
            // ESC (0x1B) is not a binary byte for Go.
            (b"\x1b[31mred", "text/plain; charset=utf-8"),
            (b"red\x7f\x1a", "application/octet-stream"),
            (b"tab\tand\r\nnewline\x0c\x1b", "text/plain; charset=utf-8"),
            (b"\xff\xfe\x00", "application/octet-stream"),
            (b"caf\xc3\xa9 \xff", "text/plain; charset=utf-8"),
            (b"BMW", "image/bmp"),
            (b"GIF89a", "image/gif"),
            (b"ID3 tag", "audio/mpeg"),
            (b"%PDF-1.4", "application/pdf"),
            (b"OTTO", "font/otf"),
            (b"RIFF1234WAVE", "audio/wave"),
            (b"RIFF1234WEBPVP8", "image/webp"),
            (b"FORM1234AIFF", "audio/aiff"),
            (b"\xEF\xBB\xBFx", "text/plain; charset=utf-8"),
            (b"\xFE\xFFab", "text/plain; charset=utf-16be"),
            (b"\x1F\x8B\x08\x00", "application/x-gzip"),
            (b"\x00\x00\x00\x14ftypisom\x00\x00\x00\x00mp41", "video/mp4"),
            (&[b'x'; 40][..], "text/plain; charset=utf-8"),
        ];
        for (body, expected) in cases {
            assert_eq!(
                detect_content_type(body),
                *expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Only the first 512 bytes count.
        let mut late = vec![b'a'; 512];
        late.push(0);
        assert_eq!(detect_content_type(&late), "text/plain; charset=utf-8");
        assert_eq!(detect_content_type(b""), "text/plain; charset=utf-8");
    }

    #[test]
    fn empty_bodies_get_no_type() {
        assert!(sniffed(StatusCode::OK, "").headers().is_empty());
        let html = sniffed(StatusCode::OK, "<html>");
        assert_eq!(
            html.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }

    #[test]
    fn missing_host_is_refused_on_http_1_1_only() {
        let bare = |version| {
            let mut request = Request::new(());
            *request.version_mut() = version;
            request
        };
        let refused = refuse_missing_host(&bare(Version::HTTP_11)).unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(refused.headers()[header::CONNECTION], "close");
        assert!(refuse_missing_host(&bare(Version::HTTP_10)).is_none());
        let mut empty_host = bare(Version::HTTP_11);
        empty_host
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static(""));
        assert!(refuse_missing_host(&empty_host).is_none());
    }

    #[test]
    fn unclean_paths_redirect_to_the_clean_one() {
        let get = |target: &str| mux_path(&Method::GET, &target.parse().unwrap());
        let to = |location: &str| MuxPath::Redirect(location.to_owned());
        assert_eq!(get("/color"), MuxPath::Clean("/color".into()));
        assert_eq!(get("/col%6Fr"), MuxPath::Clean("/color".into()));
        assert_eq!(get("//color"), to("/color"));
        assert_eq!(get("//color?x=1&y"), to("/color?x=1&y"));
        assert_eq!(get("/./x"), to("/x"));
        assert_eq!(get("/a/../b"), to("/b"));
        assert_eq!(get("//x/"), to("/x/"));
        assert_eq!(get("/../.."), to("/"));
        assert_eq!(get("//a%20b"), to("/a%20b"));
        assert_eq!(get("//a%ff"), to("/a%FF"));
        assert_eq!(get("/a%2F%2Fb"), to("/a/b"));
        assert_eq!(get("/color%"), MuxPath::BadRequest);
        assert_eq!(get("/color%zz"), MuxPath::BadRequest);
        assert_eq!(
            mux_path(&Method::CONNECT, &"//x".parse().unwrap()),
            MuxPath::Clean("//x".into())
        );
    }

    #[test]
    fn clean_path_matches_go() {
        let clean = |path: &str| String::from_utf8(clean_path(path.as_bytes())).unwrap();
        assert_eq!(clean(""), "/");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("/a//b/"), "/a/b/");
        assert_eq!(clean("/a/b/.."), "/a");
        assert_eq!(clean("/a/b/../"), "/a/");
    }

    #[test]
    fn html_escape_matches_go() {
        assert_eq!(
            html_escape(r#"/a?b=1&c="<'>""#),
            "/a?b=1&amp;c=&#34;&lt;&#39;&gt;&#34;"
        );
    }
}
