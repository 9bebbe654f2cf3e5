//! Test doubles for the runner: a fake [`Backend`] and an in-process fake gateway.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // test doubles panic on purpose

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use harness::backend::{Applied, Backend, BackendError, CommandOutput};
use harness::scenario::WaitCondition;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the fake gateway answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// colorgateway v1 replies, color picked by weight, with a 1000-slot stats ring buffer;
    /// `.../clear` empties it.
    Colors(Vec<(&'static str, u32)>),
    /// colorgateway replies of shape v1 or v2 picked by weight (v1 weight, v2 weight).
    Shapes(u32, u32),
    /// echo replies; the path the "upstream" sees is the request path with `strip` replaced by
    /// `replace` (a prefix rewrite, right or wrong).
    Echo {
        strip: &'static str,
        replace: &'static str,
        service: &'static str,
    },
}

struct GatewayState {
    mode: Mode,
    /// Bumped by every mode change; every reply names it in `x-colormesh-generation`.
    generation: u64,
    rng: StdRng,
    recent: VecDeque<String>,
    requests: u64,
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0 whose answers a test controls.
#[derive(Clone)]
pub struct FakeGateway {
    pub address: SocketAddr,
    state: Arc<Mutex<GatewayState>>,
}

impl FakeGateway {
    pub async fn start(mode: Mode, seed: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(GatewayState {
            mode,
            generation: 1,
            rng: StdRng::seed_from_u64(seed),
            recent: VecDeque::new(),
            requests: 0,
        }));
        let served = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let reply = answer(&state, &request);
                        async move { Ok::<_, Infallible>(reply) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, state }
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.address)).unwrap()
    }

    /// Changes the answers from now on (what an apply does to a real gateway).
    pub fn set_mode(&self, mode: Mode) {
        let mut state = self.state.lock().unwrap();
        state.mode = mode;
        state.generation += 1;
    }

    /// The generation of the mode served now.
    pub fn generation(&self) -> u64 {
        self.state.lock().unwrap().generation
    }

    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap().requests
    }
}

fn pick<'a>(rng: &mut StdRng, weighted: &'a [(&'a str, u32)]) -> &'a str {
    let total: u32 = weighted.iter().map(|(_, w)| w).sum();
    let mut draw = rng.random_range(0..total);
    for (name, weight) in weighted {
        if draw < *weight {
            return name;
        }
        draw -= weight;
    }
    unreachable!("draw < total")
}

/// Go's shortest float form for the two-decimal ratios the colorgateway prints.
fn ratio_text(ratio: f64) -> String {
    let text = format!("{ratio}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

fn gateway_body(key: &str, color: &str, recent: &VecDeque<String>, stats_key: &str) -> String {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for seen in recent {
        *counts.entry(seen).or_default() += 1;
    }
    let total = recent.len() as f64;
    let stats: Vec<String> = counts
        .iter()
        .map(|(name, n)| {
            format!(
                "\"{name}\":{}",
                ratio_text((*n as f64 / total * 100.0).round() / 100.0)
            )
        })
        .collect();
    format!(
        "{{\"{key}\":\"{color}\", \"{stats_key}\": {{{}}}}}",
        stats.join(",")
    )
}

fn answer(state: &Mutex<GatewayState>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut state = state.lock().unwrap();
    state.requests += 1;
    let path = request.uri().path().to_owned();
    let body = match state.mode.clone() {
        Mode::Colors(weights) => {
            if path.ends_with("/clear") {
                state.recent.clear();
                "cleared".to_owned()
            } else {
                let color = pick(&mut state.rng, &weights).to_owned();
                state.recent.push_back(color.clone());
                if state.recent.len() > 1000 {
                    state.recent.pop_front();
                }
                gateway_body("color", &color, &state.recent, "stats")
            }
        }
        Mode::Shapes(v1, v2) => {
            let shape = pick(&mut state.rng, &[("v1", v1), ("v2", v2)]).to_owned();
            let single = VecDeque::from(["blue".to_owned()]);
            if shape == "v1" {
                gateway_body("color", "blue", &single, "stats")
            } else {
                gateway_body("colorV2", "blue", &single, "statsV2")
            }
        }
        Mode::Echo {
            strip,
            replace,
            service,
        } => {
            let upstream_path = match path.strip_prefix(strip) {
                Some(rest) => format!("{replace}{rest}"),
                None => path.clone(),
            };
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, value) in request.headers() {
                headers
                    .entry(name.as_str().to_owned())
                    .or_default()
                    .push(value.to_str().unwrap_or("").to_owned());
            }
            serde_json::to_string(&echo::EchoReply {
                method: request.method().to_string(),
                path: upstream_path,
                query: request.uri().query().map(str::to_owned),
                host: None,
                headers,
                protocol: "HTTP/1.1".to_owned(),
                service: Some(service.to_owned()),
                pod: None,
                namespace: None,
            })
            .unwrap()
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("x-colormesh-generation", state.generation)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A backend that records what the runner asked and answers as the test configured.
pub struct FakeBackend {
    pub gateway: FakeGateway,
    revision: u64,
    pub applied: Vec<PathBuf>,
    /// Modes the gateway switches to when a path is applied.
    pub on_apply: HashMap<PathBuf, Mode>,
    /// glooctl command lines (space-joined args) and their outputs; others fail.
    pub glooctl_outputs: HashMap<String, CommandOutput>,
    /// What `kubectl <args>` prints, by the arguments joined with spaces.
    pub kubectl_outputs: HashMap<String, CommandOutput>,
    /// Conditions (as displayed) that time out.
    pub timeouts: Vec<String>,
    /// Revisions `wait_config_live` was asked for.
    pub live_waits: Vec<u64>,
    /// Added to the generation the gateway serves when reporting it (a gateway whose status runs
    /// ahead of its data plane).
    pub reports_ahead: u64,
    /// The gateway numbers no configurations (`gateway_generation` is `None`).
    pub unnumbered: bool,
}

impl FakeBackend {
    pub fn new(gateway: FakeGateway) -> Self {
        Self {
            gateway,
            revision: 0,
            applied: Vec::new(),
            on_apply: HashMap::new(),
            glooctl_outputs: HashMap::new(),
            kubectl_outputs: HashMap::new(),
            timeouts: Vec::new(),
            live_waits: Vec::new(),
            reports_ahead: 0,
            unnumbered: false,
        }
    }
}

impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn apply(&mut self, paths: &[PathBuf]) -> Result<Applied, BackendError> {
        self.revision += 1;
        for path in paths {
            self.applied.push(path.clone());
            if let Some(mode) = self.on_apply.get(path) {
                self.gateway.set_mode(mode.clone());
            }
        }
        Ok(Applied {
            changed: paths
                .iter()
                .map(|p| format!("File {}", p.display()))
                .collect(),
            revision: self.revision,
        })
    }

    async fn delete(&mut self, paths: &[PathBuf]) -> Result<Applied, BackendError> {
        self.revision += 1;
        Ok(Applied {
            changed: paths
                .iter()
                .map(|p| format!("File {}", p.display()))
                .collect(),
            revision: self.revision,
        })
    }

    async fn glooctl(&mut self, args: &[String]) -> Result<CommandOutput, BackendError> {
        Ok(self
            .glooctl_outputs
            .get(&args.join(" "))
            .cloned()
            .unwrap_or(CommandOutput {
                stdout: String::new(),
                stderr: format!("unknown command {}", args.join(" ")),
                success: false,
            }))
    }

    async fn kubectl(&mut self, args: &[String]) -> Result<CommandOutput, BackendError> {
        Ok(self
            .kubectl_outputs
            .get(&args.join(" "))
            .cloned()
            .unwrap_or(CommandOutput {
                stdout: String::new(),
                stderr: format!("unknown command {}", args.join(" ")),
                success: false,
            }))
    }

    async fn wait(
        &mut self,
        condition: &WaitCondition,
        timeout: Duration,
    ) -> Result<Duration, BackendError> {
        if self.timeouts.contains(&condition.to_string()) {
            return Err(BackendError::Timeout {
                condition: condition.to_string(),
                timeout,
                detail: Some("still Pending".to_owned()),
            });
        }
        Ok(Duration::from_millis(1))
    }

    async fn wait_config_live(
        &mut self,
        applied: &Applied,
        _timeout: Duration,
    ) -> Result<Duration, BackendError> {
        self.live_waits.push(applied.revision);
        Ok(Duration::from_millis(7))
    }

    async fn gateway_generation(&mut self) -> Result<Option<u64>, BackendError> {
        Ok((!self.unnumbered).then(|| self.gateway.generation() + self.reports_ahead))
    }

    async fn proxy_url(&mut self) -> Result<url::Url, BackendError> {
        Ok(self.gateway.url())
    }

    async fn shutdown(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// A manifests folder holding the given (empty) files, for apply steps.
pub fn manifests(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }
    dir
}
