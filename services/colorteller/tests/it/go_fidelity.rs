//! What Go's net/http does around the original teller's handler, pinned byte for byte on the
//! wire (raw TCP, `Connection: close`, so the whole reply is read).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use colorteller::Config;
use test_support::Served;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

async fn teller(color: &str) -> Served<colorteller::Error> {
    let config = Config {
        color: color.to_owned(),
        flake_seed: Some(1),
        ..Config::default()
    };
    Served::start(|listener, stop| colorteller::run(listener, config, stop)).await
}

/// Sends `request` as written and returns the reply with the `Date` header removed.
async fn raw(teller: &Served<colorteller::Error>, request: &str) -> String {
    let mut stream = TcpStream::connect(teller.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&reply)
        .split("\r\n")
        .filter(|line| !line.starts_with("Date: ") && !line.starts_with("X-Amzn-Trace-Id: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test]
async fn unclean_paths_get_servemux_301_to_the_clean_path() {
    let teller = teller("blue").await;
    for (target, location) in [
        ("//x", "/x"),
        ("/./x", "/x"),
        ("/a/../b", "/b"),
        ("//color?q=1", "/color?q=1"),
    ] {
        let reply = raw(
            &teller,
            &format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let body = format!("<a href=\"{location}\">Moved Permanently</a>.\n\n");
        assert_eq!(
            reply,
            format!(
                "HTTP/1.1 301 Moved Permanently\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Location: {location}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            "{target}"
        );
    }
    // Other methods get the Location without a body; HEAD keeps the type.
    let post = raw(
        &teller,
        "POST //x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        post,
        "HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n"
    );
    teller.stop().await;
}

#[tokio::test]
async fn http_1_1_without_host_is_a_400_as_in_go() {
    let teller = teller("blue").await;
    let reply = raw(&teller, "GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(
        reply,
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\nContent-Length: 45\r\n\r\n\
         400 Bad Request: missing required Host header"
    );
    // HTTP/1.0 needs no Host; an empty Host is a Host.
    let old = raw(&teller, "GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        old.starts_with("HTTP/1.0 200 OK\r\n") && old.ends_with("\r\n\r\nblue"),
        "{old}"
    );
    let empty = raw(
        &teller,
        "GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(empty.starts_with("HTTP/1.1 200 OK\r\n"), "{empty}");
    teller.stop().await;
}

#[tokio::test]
async fn the_content_type_is_sniffed_from_the_color() {
    for (color, content_type) in [
        ("blue", "text/plain; charset=utf-8"),
        ("<html>", "text/html; charset=utf-8"),
        ("red\u{1}", "application/octet-stream"),
    ] {
        let teller = teller(color).await;
        let reply = raw(
            &teller,
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(
            reply,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\
                 Content-Length: {}\r\n\r\n{color}",
                color.len()
            )
        );
        teller.stop().await;
    }
}
