//! The `listening` announcement: how a service tells its supervisor which port it bound.
//!
//! Services bind port 0 and log the real address ([`announce_listening`]); supervisors (the
//! harness's local backend, `cargo xtask bench`, envoy-control's tests) read it back from the
//! service's stderr with [`Listening::parse`]. Writer and reader live here together so the format
//! has one definition.

use std::net::SocketAddr;

/// The `tracing` target of [`announce_listening`] events.
pub const LISTENING_TARGET: &str = "colormesh::listening";

/// Logs that a listener is accepting connections, with its real address.
///
/// Binaries call this right after binding, once per listener (`name` tells them apart: `http`,
/// `tcp`, `admin`). Supervisors that start a service on port 0 learn the port from this event:
/// with `LOG_FORMAT=json` it is one line on stderr whose `target` is [`LISTENING_TARGET`] and
/// whose `fields` hold `name` and `addr`.
pub fn announce_listening(name: &str, addr: SocketAddr) {
    tracing::info!(target: LISTENING_TARGET, name, addr = %addr, "listening");
}

/// One announced listener, as a supervisor reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    /// The listener's role: `http`, `tcp`, `admin`.
    pub name: String,
    pub addr: SocketAddr,
}

impl Listening {
    /// Reads an announcement from one line of a service's output; `None` for any other line.
    ///
    /// JSON lines (`LOG_FORMAT=json`) are the contract. tracing's plain text format (`...
    /// colormesh::listening: listening name="http" addr=127.0.0.1:8080`, possibly with colour
    /// codes) is read too, so a binary that ignores `LOG_FORMAT` can still be supervised.
    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        if line.starts_with('{') {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            return Self::from_json(&event);
        }
        let plain = strip_ansi(line);
        let (_, rest) = plain.split_once(&format!("{LISTENING_TARGET}:"))?;
        let mut name = None;
        let mut addr = None;
        for token in rest.split_whitespace() {
            if let Some(value) = token.strip_prefix("name=") {
                name = Some(value.trim_matches('"').to_owned());
            } else if let Some(value) = token.strip_prefix("addr=") {
                addr = value.trim_matches('"').parse().ok();
            }
        }
        Some(Self {
            name: name?,
            addr: addr?,
        })
    }

    /// Reads an announcement from a JSON log event a reader has already decoded.
    pub fn from_json(event: &serde_json::Value) -> Option<Self> {
        if event.get("target")?.as_str()? != LISTENING_TARGET {
            return None;
        }
        let fields = event.get("fields")?;
        Some(Self {
            name: fields.get("name")?.as_str()?.to_owned(),
            addr: fields.get("addr")?.as_str()?.parse().ok()?,
        })
    }
}

/// Removes terminal colour sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening(name: &str, addr: ([u8; 4], u16)) -> Option<Listening> {
        Some(Listening {
            name: name.to_owned(),
            addr: SocketAddr::from(addr),
        })
    }

    #[test]
    fn reads_json_announcements() {
        let line = r#"{"timestamp":"2025-01-01T00:00:00.000000Z","level":"INFO","fields":{"message":"listening","name":"http","addr":"127.0.0.1:41234"},"target":"colormesh::listening"}"#;
        assert_eq!(
            Listening::parse(line),
            listening("http", ([127, 0, 0, 1], 41234))
        );
        assert_eq!(
            Listening::parse(&line.replace("colormesh::listening", "colorteller")),
            None
        );
        let no_addr = r#"{"fields":{"name":"admin"},"target":"colormesh::listening"}"#;
        assert_eq!(Listening::parse(no_addr), None);
    }

    #[test]
    fn reads_plain_text_announcements_with_colour_codes() {
        let plain = "2025-01-01T00:00:00.000000Z  INFO \u{1b}[2mcolormesh::listening\u{1b}[0m\u{1b}[2m:\u{1b}[0m listening \u{1b}[3mname\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"admin\" \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:19001";
        assert_eq!(
            Listening::parse(plain),
            listening("admin", ([127, 0, 0, 1], 19001))
        );
        assert_eq!(Listening::parse("listening on 127.0.0.1:80"), None);
        assert_eq!(Listening::parse("plain text"), None);
    }

    /// What [`announce_listening`] writes is what [`Listening::parse`] reads, in both formats.
    #[test]
    fn parse_reads_what_announce_writes() {
        use std::io::Write;
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("not poisoned").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let addr = SocketAddr::from(([127, 0, 0, 1], 4567));
        for json in [true, false] {
            let captured = Captured::default();
            let writer = captured.clone();
            let builder = tracing_subscriber::fmt().with_writer(move || writer.clone());
            let dispatch = if json {
                tracing::Dispatch::new(builder.json().finish())
            } else {
                tracing::Dispatch::new(builder.finish())
            };
            tracing::dispatcher::with_default(&dispatch, || announce_listening("admin", addr));
            let text = String::from_utf8(captured.0.lock().expect("not poisoned").clone())
                .expect("utf-8 log");
            assert_eq!(
                text.lines().find_map(Listening::parse),
                listening("admin", ([127, 0, 0, 1], 4567)),
                "json={json}: {text}"
            );
        }
    }
}
