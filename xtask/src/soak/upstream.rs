//! The soak's upstreams, on loopback ports chosen by the kernel.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The part of the stalling upstream's body it sends before it stops.
pub(crate) const PARTIAL_BODY: &str = "partial";
/// How long the stalling upstream holds a connection at most (longer than any probe waits).
const STALL_FOR: Duration = Duration::from_secs(120);
/// How long the echo waits for a request at most.
const READ_FOR: Duration = Duration::from_secs(120);

/// An upstream that reads each request (its body too, by Content-Length) and answers with the
/// Host headers it saw (`seen-host=...`).
pub(crate) async fn start_echo() -> anyhow::Result<SocketAddr> {
    serve(|stream| async move {
        let _ = tokio::time::timeout(READ_FOR, echo(stream)).await;
    })
    .await
}

/// An upstream that answers every request with its headers and [`PARTIAL_BODY`] of a 1000-byte
/// body, then stalls until the gateway closes the connection.
pub(crate) async fn start_stalling() -> anyhow::Result<SocketAddr> {
    serve(|mut stream| async move {
        if read_head(&mut stream).await.is_none() {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{PARTIAL_BODY}");
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(STALL_FOR, async {
            while let Ok(read) = stream.read(&mut sink).await
                && read > 0
            {}
        })
        .await;
    })
    .await
}

async fn serve<F, Fut>(handle: F) -> anyhow::Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a soak upstream")?;
    let addr = listener.local_addr().context("soak upstream address")?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    Ok(addr)
}

/// Reads up to the end of the request headers; returns them and the body bytes read with them.
async fn read_head(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = request.windows(4).position(|window| window == b"\r\n\r\n") {
            let body = request.split_off(end + 4);
            return Some((String::from_utf8_lossy(&request).into_owned(), body));
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let Some((head, mut body)) = read_head(&mut stream).await else {
        return;
    };
    let length = header_values(&head, "content-length")
        .first()
        .and_then(|length| length.parse::<usize>().ok())
        .unwrap_or(0);
    let mut buffer = [0u8; 4096];
    while body.len() < length {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => body.extend_from_slice(&buffer[..read]),
        }
    }
    let reply = format!("seen-host={}\n", header_values(&head, "host").join(","));
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
}

/// The values of every `name` header in a request head (case-insensitive names).
fn header_values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_skip_the_request_line() {
        let head = "GET http://a:1/ HTTP/1.1\r\nHost: a\r\nhost: b\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(header_values(head, "Host"), ["a", "b"]);
        assert_eq!(header_values(head, "content-length"), ["4"]);
        assert!(header_values(head, "x-none").is_empty());
    }

    #[tokio::test]
    async fn the_echo_reads_the_body_and_the_staller_stalls() {
        let echo = start_echo().await.expect("echo");
        let mut stream = TcpStream::connect(echo).await.expect("connect");
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
            .await
            .expect("write");
        let mut reply = [0u8; 64];
        let early = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut reply)).await;
        assert!(early.is_err(), "answered before the body was complete");
        stream.write_all(b"cd").await.expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read");
        assert!(reply.ends_with("seen-host=x\n"), "{reply}");

        let stalling = start_stalling().await.expect("staller");
        let mut stream = TcpStream::connect(stalling).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut received = Vec::new();
        let mut buffer = [0u8; 256];
        while !received.ends_with(PARTIAL_BODY.as_bytes()) {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "closed early");
            received.extend_from_slice(&buffer[..read]);
        }
        let more = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await;
        assert!(more.is_err(), "the staller sent more or closed");
    }
}
