//! What a reply says: which destination answered (for split checks) and whether it passes the
//! exact checks of a traffic step (status, body, shape, echo fields, response headers).
//!
//! Replies are parsed with the services' own parsers (`colorgateway::parse_reply`,
//! `echo::EchoReply`) so the harness reads exactly what the services write.

use std::fmt;

use http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::scenario::{EchoExpect, ReplyShape, SplitKey, TrafficExpect};

/// Why a destination label could not be read from a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("not a colorgateway reply: {0}")]
    NotGateway(String),
    #[error("not an echo reply: {0}")]
    NotEcho(String),
    #[error("the echo reply names no service (SERVICE_NAME unset)")]
    NoService,
    #[error("the body is not UTF-8")]
    NotText,
}

/// The destination label a split check counts, read from a reply's status and body.
pub fn destination(key: SplitKey, status: u16, body: &[u8]) -> Result<String, ClassifyError> {
    match key {
        SplitKey::EchoServiceOrStatus if !(200..300).contains(&status) => Ok(status.to_string()),
        SplitKey::EchoServiceOrStatus => parse_echo(body)?.service.ok_or(ClassifyError::NoService),
        SplitKey::Color => Ok(parse_gateway(body)?.color),
        SplitKey::Shape => Ok(shape_name(shape_of(&parse_gateway(body)?)).to_owned()),
        SplitKey::EchoService => parse_echo(body)?.service.ok_or(ClassifyError::NoService),
        SplitKey::Body => {
            let text = std::str::from_utf8(body).map_err(|_| ClassifyError::NotText)?;
            Ok(text.trim().to_owned())
        }
    }
}

/// The label of a reply shape, as scenario files write it (`v1`, `v2`).
pub fn shape_name(shape: ReplyShape) -> &'static str {
    match shape {
        ReplyShape::V1 => "v1",
        ReplyShape::V2 => "v2",
    }
}

/// Parses a colorgateway reply of either shape.
pub fn parse_gateway(body: &[u8]) -> Result<colorgateway::GatewayReply, ClassifyError> {
    let text = std::str::from_utf8(body).map_err(|_| ClassifyError::NotText)?;
    colorgateway::parse_reply(text).map_err(|error| ClassifyError::NotGateway(error.to_string()))
}

/// The shape of a parsed colorgateway reply.
pub fn shape_of(reply: &colorgateway::GatewayReply) -> ReplyShape {
    match reply.flavor {
        colorgateway::Flavor::V1 => ReplyShape::V1,
        colorgateway::Flavor::V2 => ReplyShape::V2,
    }
}

/// Parses an echo backend reply.
pub fn parse_echo(body: &[u8]) -> Result<echo::EchoReply, ClassifyError> {
    serde_json::from_slice(body).map_err(|error| ClassifyError::NotEcho(error.to_string()))
}

/// Which exact check a reply failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckKind {
    /// The request failed before a response (connect, reset, timeout).
    Transport,
    Status,
    Body,
    BodyContains,
    Shape,
    Echo,
    ResponseHeader,
    /// The reply does not name a destination of the split (unparsable or unlabelled).
    Destination,
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckKind::Transport => "transport",
            CheckKind::Status => "status",
            CheckKind::Body => "body",
            CheckKind::BodyContains => "bodyContains",
            CheckKind::Shape => "shape",
            CheckKind::Echo => "echo",
            CheckKind::ResponseHeader => "responseHeaders",
            CheckKind::Destination => "destination",
        })
    }
}

/// One broken expectation of one reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub check: CheckKind,
    pub message: String,
}

impl Violation {
    fn new(check: CheckKind, message: impl Into<String>) -> Self {
        Self {
            check,
            message: message.into(),
        }
    }
}

/// The parts of a reply the exact checks look at.
#[derive(Debug, Clone, Copy)]
pub struct ReplyView<'a> {
    /// `None` when the request failed at the transport level.
    pub status: Option<StatusCode>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub transport_error: Option<&'a str>,
}

/// Every exact check of `expect` that the reply breaks (empty: the reply is fine). Split checks are
/// statistical and judged elsewhere; this only checks what every single reply must satisfy.
pub fn check_reply(expect: &TrafficExpect, reply: ReplyView<'_>) -> Vec<Violation> {
    let Some(status) = reply.status else {
        let error = reply.transport_error.unwrap_or("no response");
        return vec![Violation::new(CheckKind::Transport, error)];
    };
    let mut violations = Vec::new();
    let status_ok = match &expect.status {
        Some(allowed) => allowed.allows(status.as_u16()),
        None => status == StatusCode::OK,
    };
    if !status_ok {
        let wanted = match &expect.status {
            Some(crate::scenario::StatusSet::One(code)) => code.to_string(),
            Some(crate::scenario::StatusSet::Any(codes)) => {
                format!(
                    "one of {}",
                    codes
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            None => "200".to_owned(),
        };
        violations.push(Violation::new(
            CheckKind::Status,
            format!("status {} where {wanted} was expected", status.as_u16()),
        ));
    }
    let text = String::from_utf8_lossy(reply.body);
    if let Some(body) = &expect.body
        && text != body.as_str()
    {
        violations.push(Violation::new(
            CheckKind::Body,
            format!("body {text:?} is not {body:?}"),
        ));
    }
    if let Some(needle) = &expect.body_contains
        && !text.contains(needle.as_str())
    {
        violations.push(Violation::new(
            CheckKind::BodyContains,
            format!("body {text:?} does not contain {needle:?}"),
        ));
    }
    if let Some(shape) = expect.shape {
        match parse_gateway(reply.body) {
            Ok(parsed) if shape_of(&parsed) == shape => {}
            Ok(parsed) => violations.push(Violation::new(
                CheckKind::Shape,
                format!(
                    "a {} reply where {} was expected",
                    shape_name(shape_of(&parsed)),
                    shape_name(shape)
                ),
            )),
            Err(error) => violations.push(Violation::new(CheckKind::Shape, error.to_string())),
        }
    }
    if let Some(echo_expect) = &expect.echo {
        match parse_echo(reply.body) {
            Ok(echoed) => violations.extend(
                check_echo(echo_expect, &echoed)
                    .into_iter()
                    .map(|message| Violation::new(CheckKind::Echo, message)),
            ),
            Err(error) => violations.push(Violation::new(CheckKind::Echo, error.to_string())),
        }
    }
    for (name, wanted) in &expect.response_headers {
        let values: Vec<String> = reply
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        if !values.iter().any(|value| value == wanted) {
            let message = if values.is_empty() {
                format!("response header {name} is missing (expected {wanted:?})")
            } else {
                format!("response header {name} is {values:?}, expected {wanted:?}")
            };
            violations.push(Violation::new(CheckKind::ResponseHeader, message));
        }
    }
    for name in &expect.absent_response_headers {
        let values: Vec<String> = reply
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        if !values.is_empty() {
            violations.push(Violation::new(
                CheckKind::ResponseHeader,
                format!("response header {name} is {values:?}, expected none"),
            ));
        }
    }
    violations
}

/// Differences between what the echo backend received and what the scenario expects.
pub fn check_echo(expect: &EchoExpect, echoed: &echo::EchoReply) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(path) = &expect.path
        && &echoed.path != path
    {
        problems.push(format!(
            "upstream saw path {:?}, expected {path:?}",
            echoed.path
        ));
    }
    if let Some(query) = &expect.query {
        let seen = echoed.query.as_deref().unwrap_or("");
        if seen != query {
            problems.push(format!("upstream saw query {seen:?}, expected {query:?}"));
        }
    }
    if let Some(host) = &expect.host
        && echoed.host.as_deref() != Some(host.as_str())
    {
        problems.push(format!(
            "upstream saw host {:?}, expected {host:?}",
            echoed.host
        ));
    }
    if let Some(method) = &expect.method
        && !echoed.method.eq_ignore_ascii_case(method)
    {
        problems.push(format!(
            "upstream saw method {}, expected {method}",
            echoed.method
        ));
    }
    for (name, wanted) in &expect.headers {
        match header_values(echoed, name) {
            Some(values) if values.iter().any(|value| value == wanted) => {}
            Some(values) => {
                problems.push(format!(
                    "upstream saw header {name}: {values:?}, expected {wanted:?}"
                ));
            }
            None => problems.push(format!(
                "upstream did not receive header {name} (expected {wanted:?})"
            )),
        }
    }
    for name in &expect.absent_headers {
        if let Some(values) = header_values(echoed, name) {
            problems.push(format!(
                "upstream received header {name}: {values:?}, which must be absent"
            ));
        }
    }
    if let Some(service) = &expect.service
        && echoed.service.as_deref() != Some(service.as_str())
    {
        problems.push(format!(
            "answered by service {}, expected {service:?}",
            echoed
                .service
                .as_deref()
                .map_or_else(|| "(unnamed)".to_owned(), |s| format!("{s:?}"))
        ));
    }
    problems
}

/// Header names are case-insensitive; the echo reply keeps them as received.
fn header_values<'a>(echoed: &'a echo::EchoReply, name: &str) -> Option<&'a Vec<String>> {
    echoed
        .headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, values)| values)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scenario::StatusSet;

    const V1: &str = r#"{"color":"blue", "stats": {"black":0.3,"blue":0.13,"white":0.57}}"#;
    const V2: &str = r#"{"colorV2":"white", "statsV2": {"black":0.24,"blue":0.57,"white":0.19}}"#;

    fn echo_body(path: &str, query: Option<&str>, service: Option<&str>) -> String {
        serde_json::json!({
            "method": "GET",
            "path": path,
            "query": query,
            "host": "gw",
            "headers": { "X-Added": ["yes"], "user-agent": ["t"] },
            "protocol": "HTTP/1.1",
            "service": service,
            "pod": null,
            "namespace": null,
        })
        .to_string()
    }

    fn view<'a>(status: u16, headers: &'a HeaderMap, body: &'a str) -> ReplyView<'a> {
        ReplyView {
            status: Some(StatusCode::from_u16(status).unwrap()),
            headers,
            body: body.as_bytes(),
            transport_error: None,
        }
    }

    fn kinds(violations: &[Violation]) -> Vec<CheckKind> {
        violations.iter().map(|v| v.check).collect()
    }

    #[test]
    fn destinations_by_each_key() {
        assert_eq!(
            destination(SplitKey::Color, 200, V1.as_bytes()).unwrap(),
            "blue"
        );
        assert_eq!(
            destination(SplitKey::Color, 200, V2.as_bytes()).unwrap(),
            "white"
        );
        assert_eq!(
            destination(SplitKey::Shape, 200, V1.as_bytes()).unwrap(),
            "v1"
        );
        assert_eq!(
            destination(SplitKey::Shape, 200, V2.as_bytes()).unwrap(),
            "v2"
        );
        assert_eq!(destination(SplitKey::Body, 200, b"black").unwrap(), "black");
        assert_eq!(
            destination(SplitKey::EchoServiceOrStatus, 500, b"no healthy upstream").unwrap(),
            "500"
        );
        let echoed = echo_body("/", None, Some("echo-v2"));
        assert_eq!(
            destination(SplitKey::EchoService, 200, echoed.as_bytes()).unwrap(),
            "echo-v2"
        );
    }

    #[test]
    fn unreadable_replies_are_classification_errors() {
        assert!(matches!(
            destination(SplitKey::Color, 200, b"cleared"),
            Err(ClassifyError::NotGateway(_))
        ));
        assert!(matches!(
            destination(SplitKey::EchoService, 200, V1.as_bytes()),
            Err(ClassifyError::NotEcho(_))
        ));
        let unnamed = echo_body("/", None, None);
        assert_eq!(
            destination(SplitKey::EchoService, 200, unnamed.as_bytes()),
            Err(ClassifyError::NoService)
        );
        assert_eq!(
            destination(SplitKey::Body, 200, &[0xff, 0xfe]),
            Err(ClassifyError::NotText)
        );
    }

    #[test]
    fn status_defaults_to_200_and_accepts_sets() {
        let headers = HeaderMap::new();
        let expect = TrafficExpect::default();
        assert!(check_reply(&expect, view(200, &headers, "x")).is_empty());
        let violations = check_reply(&expect, view(503, &headers, "no healthy upstream"));
        assert_eq!(kinds(&violations), [CheckKind::Status]);
        assert_eq!(violations[0].message, "status 503 where 200 was expected");
        let expect = TrafficExpect {
            status: Some(StatusSet::Any(vec![301, 404])),
            ..Default::default()
        };
        assert!(check_reply(&expect, view(404, &headers, "")).is_empty());
        assert_eq!(
            kinds(&check_reply(&expect, view(200, &headers, ""))),
            [CheckKind::Status]
        );
    }

    #[test]
    fn transport_errors_are_violations() {
        let headers = HeaderMap::new();
        let reply = ReplyView {
            status: None,
            headers: &headers,
            body: b"",
            transport_error: Some("reset"),
        };
        let violations = check_reply(&TrafficExpect::default(), reply);
        assert_eq!(violations, [Violation::new(CheckKind::Transport, "reset")]);
    }

    #[test]
    fn body_and_body_contains() {
        let headers = HeaderMap::new();
        let expect = TrafficExpect {
            body: Some("cleared".into()),
            ..Default::default()
        };
        assert!(check_reply(&expect, view(200, &headers, "cleared")).is_empty());
        assert_eq!(
            kinds(&check_reply(&expect, view(200, &headers, "cleared\n"))),
            [CheckKind::Body]
        );
        let expect = TrafficExpect {
            body_contains: Some(r#""color":"blue""#.into()),
            ..Default::default()
        };
        assert!(check_reply(&expect, view(200, &headers, V1)).is_empty());
        assert_eq!(
            kinds(&check_reply(&expect, view(200, &headers, V2))),
            [CheckKind::BodyContains]
        );
    }

    #[test]
    fn shape_check_tells_v1_from_v2_and_garbage() {
        let headers = HeaderMap::new();
        let expect = TrafficExpect {
            shape: Some(ReplyShape::V1),
            ..Default::default()
        };
        assert!(check_reply(&expect, view(200, &headers, V1)).is_empty());
        let violations = check_reply(&expect, view(200, &headers, V2));
        assert_eq!(violations[0].message, "a v2 reply where v1 was expected");
        assert_eq!(
            kinds(&check_reply(&expect, view(200, &headers, "blue"))),
            [CheckKind::Shape]
        );
    }

    #[test]
    fn echo_fields_are_checked_one_by_one() {
        let headers = HeaderMap::new();
        let expect = TrafficExpect {
            echo: Some(EchoExpect {
                path: Some("/color/clear".into()),
                query: Some("x=1".into()),
                method: Some("get".into()),
                host: Some("gw".into()),
                headers: BTreeMap::from([("x-added".into(), "yes".into())]),
                absent_headers: vec!["x-removed".into()],
                service: Some("echo-v1".into()),
            }),
            ..Default::default()
        };
        let good = echo_body("/color/clear", Some("x=1"), Some("echo-v1"));
        assert!(check_reply(&expect, view(200, &headers, &good)).is_empty());
        let mut other_host = expect.clone();
        other_host.echo.as_mut().unwrap().host = Some("rewritten.test".into());
        let violations = check_reply(&other_host, view(200, &headers, &good));
        assert_eq!(
            violations
                .iter()
                .map(|v| v.message.as_str())
                .collect::<Vec<_>>(),
            [r#"upstream saw host Some("gw"), expected "rewritten.test""#]
        );
        let rewritten_wrongly = echo_body("//color/clear", None, Some("echo-v2"));
        let violations = check_reply(&expect, view(200, &headers, &rewritten_wrongly));
        assert_eq!(kinds(&violations), [CheckKind::Echo; 3]);
        assert!(
            violations[0].message.contains(r#"path "//color/clear""#),
            "{violations:?}"
        );
        assert!(violations[1].message.contains("query"), "{violations:?}");
        assert!(violations[2].message.contains("echo-v2"), "{violations:?}");
        let mut with_removed: serde_json::Value = serde_json::from_str(&good).unwrap();
        with_removed["headers"]["X-Removed"] = serde_json::json!(["1"]);
        with_removed["headers"]
            .as_object_mut()
            .unwrap()
            .remove("X-Added");
        let body = with_removed.to_string();
        let messages: Vec<String> = check_reply(&expect, view(200, &headers, &body))
            .into_iter()
            .map(|v| v.message)
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("did not receive header x-added"));
        assert!(messages[1].contains("must be absent"));
        assert_eq!(
            kinds(&check_reply(&expect, view(200, &headers, V1))),
            [CheckKind::Echo]
        );
    }

    #[test]
    fn absent_response_headers_must_be_absent() {
        let expect = TrafficExpect {
            absent_response_headers: vec!["Content-Type".into()],
            ..Default::default()
        };
        let mut headers = HeaderMap::new();
        assert!(check_reply(&expect, view(200, &headers, "x")).is_empty());
        headers.insert("content-type", "text/plain".parse().unwrap());
        let violations = check_reply(&expect, view(200, &headers, "x"));
        assert_eq!(
            violations
                .iter()
                .map(|v| v.message.as_str())
                .collect::<Vec<_>>(),
            [r#"response header Content-Type is ["text/plain"], expected none"#]
        );
    }

    #[test]
    fn response_headers_must_match_a_value() {
        let mut headers = HeaderMap::new();
        headers.append("x-color", "blue".parse().unwrap());
        let expect = TrafficExpect {
            response_headers: BTreeMap::from([("X-Color".into(), "blue".into())]),
            ..Default::default()
        };
        assert!(check_reply(&expect, view(200, &headers, "")).is_empty());
        let expect = TrafficExpect {
            response_headers: BTreeMap::from([
                ("x-color".into(), "red".into()),
                ("x-gone".into(), "1".into()),
            ]),
            ..Default::default()
        };
        let violations = check_reply(&expect, view(200, &headers, ""));
        assert_eq!(kinds(&violations), [CheckKind::ResponseHeader; 2]);
        assert!(violations[0].message.contains("expected \"red\""));
        assert!(violations[1].message.contains("missing"));
    }
}
