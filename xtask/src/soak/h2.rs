//! Just enough HTTP/2 over cleartext (prior knowledge) to watch a gateway end an idle connection:
//! the client preface, SETTINGS and their acknowledgements, one GET, and the frames that come
//! back (HEADERS, DATA, PING, GOAWAY). Written out by hand so the probe sees every GOAWAY and the
//! moment the socket closes, which a client library hides.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// The one stream a probe opens.
const STREAM: u32 = 1;

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    length: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHeader {
    fn parse(bytes: [u8; 9]) -> Self {
        Self {
            length: usize::from(bytes[0]) << 16
                | usize::from(bytes[1]) << 8
                | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }
}

/// One frame on the wire. Payloads are at most the 16 KiB every peer accepts.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    let mut bytes = vec![length[1], length[2], length[3], kind, flags];
    bytes.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// `GET path` to `authority` on [`STREAM`], with no body: a HEADERS frame whose block uses only
/// HPACK's static table and literals without Huffman coding (nothing for a decoder to remember).
fn get_request(authority: &str, path: &str) -> Vec<u8> {
    let mut block = vec![
        0x82, // :method GET
        0x86, // :scheme http
    ];
    // Literal header fields without indexing, with an indexed name: :path (4), :authority (1).
    for (name_index, value) in [(0x04u8, path), (0x01, authority)] {
        block.push(name_index);
        block.push(u8::try_from(value.len()).unwrap_or(0x7f).min(0x7e));
        block.extend_from_slice(&value.as_bytes()[..value.len().min(0x7e)]);
    }
    frame(HEADERS, END_STREAM | END_HEADERS, STREAM, &block)
}

/// The header block fragment of a HEADERS frame's payload (without padding and priority).
fn header_block(flags: u8, payload: &[u8]) -> &[u8] {
    let mut start = 0;
    let mut end = payload.len();
    if flags & PADDED != 0 {
        let padding = payload.first().map_or(0, |length| usize::from(*length));
        start += 1;
        end = end.saturating_sub(padding);
    }
    if flags & PRIORITY != 0 {
        start += 5;
    }
    payload.get(start..end).unwrap_or_default()
}

/// The status of a response header block when it starts with an indexed `:status` of HPACK's
/// static table (what Envoy and hyper send for these codes).
fn indexed_status(block: &[u8]) -> Option<u16> {
    match block.first()? {
        0x88 => Some(200),
        0x89 => Some(204),
        0x8a => Some(206),
        0x8b => Some(304),
        0x8c => Some(400),
        0x8d => Some(404),
        0x8e => Some(500),
        _ => None,
    }
}

/// What happened to an HTTP/2 connection left idle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdleEnd {
    /// With a request: `Some(status)` once the response ended (`None` inside when its status is
    /// not one of the static table's); without one, or without an answer, `None`.
    pub(crate) answered: Option<Option<u16>>,
    /// When the gateway sent GOAWAY, counted from the moment the connection went idle.
    pub(crate) goaway_after: Option<Duration>,
    /// When the gateway closed the connection, counted the same way; `None`: still open.
    pub(crate) closed_after: Option<Duration>,
}

impl IdleEnd {
    /// A table cell: "answered 200, GOAWAY after 2.0 s, closed after 2.0 s".
    pub(crate) fn summary(&self, waited: Duration) -> String {
        let mut parts = Vec::new();
        match self.answered {
            Some(Some(status)) => parts.push(format!("answered {status}")),
            Some(None) => parts.push("answered".to_owned()),
            None => {}
        }
        match (self.goaway_after, self.closed_after) {
            (Some(goaway), Some(closed)) => {
                parts.push(format!("GOAWAY after {:.1} s", goaway.as_secs_f64()));
                parts.push(format!("closed after {:.1} s", closed.as_secs_f64()));
            }
            (None, Some(closed)) => parts.push(format!(
                "closed without GOAWAY after {:.1} s",
                closed.as_secs_f64()
            )),
            (Some(goaway), None) => parts.push(format!(
                "GOAWAY after {:.1} s, still open after {} s",
                goaway.as_secs_f64(),
                waited.as_secs()
            )),
            (None, None) => parts.push(format!("still open after {} s", waited.as_secs())),
        }
        parts.join(", ")
    }
}

/// Opens an h2c connection (preface and SETTINGS), sends `GET /echo` when `request` is set and
/// reads the answer, then leaves the connection idle and reports when the gateway sends GOAWAY
/// and closes it, waiting at most `wait` from the moment it went idle.
pub(crate) async fn idle_connection(
    addr: SocketAddr,
    request: bool,
    wait: Duration,
) -> std::io::Result<IdleEnd> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    if request {
        hello.extend(get_request("soak", "/echo"));
    }
    stream.write_all(&hello).await?;
    let connected = Instant::now();
    let mut end = IdleEnd {
        answered: None,
        goaway_after: None,
        closed_after: None,
    };
    // Without a request the connection is idle once the preface is out; with one, once the
    // response has ended. The answer itself gets `wait` too.
    let mut idle_since = (!request).then(Instant::now);
    let mut status = None;
    let mut deadline = Instant::now() + wait;
    loop {
        let mut header = [0u8; 9];
        let read = tokio::time::timeout_at(deadline, async {
            stream.read_exact(&mut header).await?;
            let header = FrameHeader::parse(header);
            let mut payload = vec![0u8; header.length];
            stream.read_exact(&mut payload).await?;
            Ok::<_, std::io::Error>((header, payload))
        })
        .await;
        let (header, payload) = match read {
            Err(_) => return Ok(end),
            Ok(Err(_)) => {
                let since = idle_since.unwrap_or(connected);
                end.closed_after = Some(since.elapsed());
                return Ok(end);
            }
            Ok(Ok(frame)) => frame,
        };
        match header.kind {
            SETTINGS if header.flags & ACK == 0 => {
                stream.write_all(&frame(SETTINGS, ACK, 0, &[])).await?;
            }
            PING if header.flags & ACK == 0 => {
                stream.write_all(&frame(PING, ACK, 0, &payload)).await?;
            }
            GOAWAY if end.goaway_after.is_none() => {
                let since = idle_since.unwrap_or(connected);
                end.goaway_after = Some(since.elapsed());
            }
            HEADERS | DATA if header.stream == STREAM => {
                if header.kind == HEADERS && status.is_none() {
                    status = Some(indexed_status(header_block(header.flags, &payload)));
                }
                if header.flags & END_STREAM != 0 && idle_since.is_none() {
                    end.answered = Some(status.flatten());
                    let now = Instant::now();
                    idle_since = Some(now);
                    deadline = now + wait;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_their_header() {
        let settings_ack = frame(SETTINGS, ACK, 0, &[]);
        assert_eq!(settings_ack, [0, 0, 0, 4, 1, 0, 0, 0, 0]);
        let ping = frame(PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let header: [u8; 9] = ping[..9].try_into().expect("nine bytes");
        assert_eq!(
            FrameHeader::parse(header),
            FrameHeader {
                length: 8,
                kind: PING,
                flags: 0,
                stream: 0
            }
        );
        // The reserved bit of the stream id is ignored.
        let header = FrameHeader::parse([0x01, 0x00, 0x00, 0, 0, 0x80, 0, 0, 3]);
        assert_eq!((header.length, header.stream), (65_536, 3));
    }

    #[test]
    fn the_request_is_one_headers_frame_of_static_and_literal_fields() {
        let request = get_request("soak", "/echo");
        let header: [u8; 9] = request[..9].try_into().expect("nine bytes");
        let header = FrameHeader::parse(header);
        assert_eq!(header.kind, HEADERS);
        assert_eq!(header.flags, END_STREAM | END_HEADERS);
        assert_eq!(header.stream, STREAM);
        assert_eq!(
            &request[9..],
            b"\x82\x86\x04\x05/echo\x01\x04soak",
            ":method GET, :scheme http, :path /echo, :authority soak"
        );
        assert_eq!(header.length, request.len() - 9);
    }

    #[test]
    fn padding_and_priority_are_not_the_header_block() {
        assert_eq!(header_block(END_HEADERS, &[0x88]), [0x88]);
        assert_eq!(header_block(PADDED, &[2, 0x88, 0, 0]), [0x88]);
        assert_eq!(header_block(PRIORITY, &[0, 0, 0, 1, 16, 0x88]), [0x88]);
        assert_eq!(
            header_block(PADDED | PRIORITY, &[1, 0, 0, 0, 1, 16, 0x8d, 0]),
            [0x8d]
        );
        assert!(
            header_block(PADDED, &[9, 0x88]).is_empty(),
            "padding longer than the frame"
        );
    }

    #[test]
    fn statuses_of_the_static_table() {
        assert_eq!(indexed_status(&[0x88, 0x40]), Some(200));
        assert_eq!(indexed_status(&[0x8d]), Some(404));
        assert_eq!(indexed_status(&[0x48, 0x03, b'5', b'0', b'3']), None);
        assert_eq!(indexed_status(&[]), None);
    }

    #[test]
    fn summaries_name_goaway_and_close() {
        let wait = Duration::from_secs(35);
        let mut end = IdleEnd {
            answered: Some(Some(200)),
            goaway_after: Some(Duration::from_millis(2004)),
            closed_after: Some(Duration::from_millis(2051)),
        };
        assert_eq!(
            end.summary(wait),
            "answered 200, GOAWAY after 2.0 s, closed after 2.1 s"
        );
        end.goaway_after = None;
        end.answered = None;
        assert_eq!(end.summary(wait), "closed without GOAWAY after 2.1 s");
        end.closed_after = None;
        assert_eq!(end.summary(wait), "still open after 35 s");
    }
}
