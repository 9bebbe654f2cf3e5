//! colorteller served in process on port 0 and spoken to over HTTP.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions panic on purpose

use colorteller::Config;
use test_support::Served;

async fn teller(config: Config) -> Served<colorteller::Error> {
    Served::start(|listener, stop| colorteller::run(listener, config, stop)).await
}

fn seeded(color: &str, seed: u64) -> Config {
    Config {
        color: color.to_owned(),
        flake_seed: Some(seed),
        ..Config::default()
    }
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn every_path_and_method_answers_the_color_without_newline() {
    let teller = teller(seeded("blue", 1)).await;
    let client = reqwest::Client::new();
    for path in ["/", "/color", "/x/y?z=1", "/pingx", "/ping/"] {
        assert_eq!(
            get(&client, teller.url(path)).await,
            (200, "blue".to_owned()),
            "{path}"
        );
    }
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = client
            .request(method.clone(), teller.url("/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "text/plain; charset=utf-8");
        assert_eq!(response.text().await.unwrap(), "blue");
    }
    teller.stop().await;
}

#[tokio::test]
async fn ping_answers_an_empty_200() {
    let teller = teller(Config::default()).await;
    let client = reqwest::Client::new();
    assert_eq!(
        get(&client, teller.url("/ping")).await,
        (200, String::new())
    );
    // The default color is the original's.
    assert_eq!(
        get(&client, teller.url("/")).await,
        (200, "black".to_owned())
    );
    teller.stop().await;
}

#[tokio::test(start_paused = true)]
async fn latency_header_delays_the_answer() {
    let teller = teller(seeded("red", 1)).await;
    let client = reqwest::Client::new();
    for (value, at_least) in [("5", 5_000), ("250ms", 250), ("2s", 2_000)] {
        let started = tokio::time::Instant::now();
        let response = client
            .get(teller.url("/"))
            .header("Latency", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "red");
        let waited = started.elapsed().as_millis();
        assert!(
            waited >= at_least,
            "Latency {value} answered after {waited} ms"
        );
    }
    teller.stop().await;
}

#[tokio::test]
async fn malformed_latency_is_a_400_with_a_reason() {
    let teller = teller(seeded("red", 1)).await;
    let client = reqwest::Client::new();
    let response = client
        .get(teller.url("/"))
        .header("Latency", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(body.contains("Latency") && body.contains("soon"), "{body}");
    assert_eq!(body.matches('\n').count(), 1, "one line: {body:?}");
    teller.stop().await;
}

#[tokio::test]
async fn set_flake_reports_the_old_settings_and_flakes_at_the_rate() {
    let teller = teller(seeded("white", 42)).await;
    let client = reqwest::Client::new();
    let (status, body) = get(&client, teller.url("/setFlake?rate=0.3&code=503")).await;
    assert_eq!((status, body.as_str()), (200, "rate: 0, code: 200"));

    let mut failures = 0;
    for _ in 0..1000 {
        let (status, body) = get(&client, teller.url("/")).await;
        match status {
            200 => assert_eq!(body, "white"),
            503 => {
                assert_eq!(body, "flaky server\n");
                failures += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // 1000 draws at p = 0.3: the standard deviation is about 14.5.
    assert!(
        (230..=370).contains(&failures),
        "{failures} failures out of 1000 at rate 0.3"
    );

    // /ping and /setFlake never flake, even at rate 1.
    let (_, body) = get(&client, teller.url("/setFlake?rate=1&code=500")).await;
    assert_eq!(body, "rate: 0.3, code: 503");
    for _ in 0..20 {
        assert_eq!(
            get(&client, teller.url("/ping")).await,
            (200, String::new())
        );
        assert_eq!(
            get(&client, teller.url("/")).await,
            (500, "flaky server\n".to_owned())
        );
    }
    let (_, body) = get(&client, teller.url("/setFlake?rate=0&code=200")).await;
    assert_eq!(body, "rate: 1, code: 500");
    for _ in 0..20 {
        assert_eq!(
            get(&client, teller.url("/")).await,
            (200, "white".to_owned())
        );
    }
    teller.stop().await;
}

#[tokio::test]
async fn the_same_seed_flakes_the_same_way() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let teller = teller(seeded("white", seed)).await;
        let client = reqwest::Client::new();
        get(&client, teller.url("/setFlake?rate=0.5&code=502")).await;
        let mut seen = Vec::new();
        for _ in 0..64 {
            seen.push(get(&client, teller.url("/")).await.0);
        }
        teller.stop().await;
        seen
    }
    let first = statuses(7).await;
    assert_eq!(first, statuses(7).await);
    assert!(first.contains(&200) && first.contains(&502), "{first:?}");
    assert_ne!(first, statuses(8).await);
}

#[tokio::test]
async fn bad_set_flake_requests_are_400_and_change_nothing() {
    let teller = teller(seeded("white", 1)).await;
    let client = reqwest::Client::new();
    let cases = [
        ("/setFlake?code=500", "rate must be specified\n"),
        (
            "/setFlake?rate=2&code=500",
            "rate must be between 0.0 and 1.0\n",
        ),
        (
            "/setFlake?rate=x&code=500",
            "strconv.ParseFloat: parsing \"x\": invalid syntax\n",
        ),
        ("/setFlake?rate=1", "code must be specified\n"),
        (
            "/setFlake?rate=1&code=abc",
            "strconv.ParseInt: parsing \"abc\": invalid syntax\n",
        ),
    ];
    for (path, reason) in cases {
        let response = client.get(teller.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.text().await.unwrap(), reason, "{path}");
    }
    let (status, body) = get(&client, teller.url("/setFlake?rate=1&code=99")).await;
    assert_eq!(status, 400);
    assert!(body.contains("HTTP status"), "{body}");
    assert_eq!(
        get(&client, teller.url("/")).await,
        (200, "white".to_owned())
    );
    let (_, body) = get(&client, teller.url("/setFlake?rate=0&code=200")).await;
    assert_eq!(
        body, "rate: 0, code: 200",
        "the refused calls left the settings alone"
    );
    teller.stop().await;
}

#[tokio::test]
async fn the_binary_documents_its_environment() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_colorteller"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "COLOR",
        "SERVER_PORT",
        "BIND_ADDR",
        "FLAKE_SEED",
        "STAGE",
        "AWS_XRAY_DAEMON_ADDRESS",
    ] {
        assert!(
            help.contains(&format!("env: {variable}")),
            "{variable} missing from:\n{help}"
        );
    }
}
