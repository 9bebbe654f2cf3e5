//! Scenario files: what to do and what to expect, written once and run on every backend.
//!
//! A scenario is a YAML document with a name, feature tags and a list of steps. Each step does
//! exactly one thing (apply manifests, run a glooctl command, wait, send traffic); steps run in
//! order and the first failing step ends the scenario, except for steps marked `always: true`
//! (clean-up), which run anyway. Paths in `apply`/`delete` are relative to the
//! repository's `manifests/` folder, so the same file works on the local backend and on a cluster.
//!
//! ```yaml
//! name: PrefixRewrite
//! features: [prefix-match, prefix-rewrite]
//! steps:
//!   - apply: conformance/base
//!   - wait: { rollout: conformance }
//!   - glooctl: add route --path-prefix /appmesh/color --prefix-rewrite /color --dest-name conformance-echo-v1-8080
//!   - traffic:
//!       path: /appmesh/color/clear?x=1
//!       requests: 5
//!       expect: { status: 200, echo: { path: /color/clear, query: x=1 } }
//! ```
//!
//! A canary weight change is judged under load with `traffic.shift`: the step applies while its
//! traffic flows and `expect.split` gives the new weights ([`ShiftSpec`]).
//!
//! Checks that need a rejected or partially accepted resource wait for its state
//! (`wait: { status: { kind: VirtualService, name: x, state: Rejected } }`); workloads the suite
//! must poke (a colorteller's `/setFlake`) are reached through a gateway route, so the same file
//! runs on a cluster. The conformance suite (`scenarios/conformance/`) is written this way.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::features::Feature;

/// A parsed scenario file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// PascalCase name, as in the Gateway API suite (`HTTPRouteRewritePath`).
    pub name: String,
    pub description: String,
    pub features: Vec<Feature>,
    pub steps: Vec<Step>,
    /// The file it came from, for error messages and reports.
    pub source: PathBuf,
}

/// One step: what it does plus an optional human name and narration for `xtask walkthrough`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Short label shown in reports; defaults to a description of the action.
    pub name: Option<String>,
    /// Prose shown before the step in walkthrough mode (the blog's own words, where it has some).
    pub note: Option<String>,
    /// Run even after an earlier step of the scenario failed (`always: true`): clean-up steps,
    /// so a failed scenario does not leave its objects to the next one on the same backend.
    pub always: bool,
    pub action: Action,
}

/// The thing a step does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// `kubectl apply -f` of files or folders under `manifests/`.
    Apply(Vec<PathBuf>),
    /// `kubectl delete -f` of files or folders under `manifests/`.
    Delete(Vec<PathBuf>),
    /// A glooctl command line (without the leading `glooctl`), with optional output checks.
    Glooctl(GlooctlStep),
    /// A kubectl command line (without the leading `kubectl`), with the same output checks:
    /// the Gateway API walkthrough's `kubectl get` views.
    Kubectl(GlooctlStep),
    /// Wait for a condition, never for a fixed time.
    Wait(WaitStep),
    /// Send requests through the gateway and check the replies.
    Traffic(Box<TrafficStep>),
}

/// `glooctl: <args>` or `glooctl: { args: <args>, expect: {...} }`; `kubectl:` steps have the
/// same shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlooctlStep {
    /// The arguments, already split the way a POSIX shell would.
    pub args: Vec<String>,
    pub expect: GlooctlExpect,
}

/// Checks on a glooctl (or kubectl) command's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlooctlExpect {
    /// Each string must appear somewhere in standard output (e.g. an upstream name).
    #[serde(default)]
    pub contains: Vec<String>,
    /// Each string must not appear in standard output.
    #[serde(default)]
    pub not_contains: Vec<String>,
    /// Whether the command must fail (exit non-zero). Default: it must succeed.
    #[serde(default)]
    pub fails: bool,
}

/// What to wait for, and for how long at most.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitStep {
    pub condition: WaitCondition,
    /// The deadline; a wait that runs out fails the step, naming the condition and this timeout.
    pub timeout: Duration,
}

/// The conditions a backend knows how to wait for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WaitCondition {
    /// Every Deployment in the namespace has all replicas available (`kubectl rollout status`).
    Rollout { namespace: String },
    /// A routing resource reached a state (`glooctl get vs` shows it): Accepted, Warning,
    /// Rejected. For Gateway API kinds (Gateway, HTTPRoute) the state summarises the spec's
    /// conditions (`Warning`: accepted with `ResolvedRefs=False`), and `conditions` pins their
    /// reasons: condition type to reason, on the Gateway or on every parent of an HTTPRoute
    /// (`{Accepted: Accepted, ResolvedRefs: BackendNotFound}`).
    Status {
        kind: String,
        namespace: String,
        name: String,
        state: String,
        conditions: BTreeMap<String, String>,
    },
    /// A Gloo upstream exists (discovery created it).
    Upstream { namespace: String, name: String },
    /// An object's `creationTimestamp` lies in a past second, so every object created from now
    /// on is strictly younger. Creation times have whole seconds, and Gateway API precedence
    /// orders routes by them: a scenario that checks "the older route wins" waits for this
    /// between creating the two, instead of hoping a second passes.
    Aged {
        kind: String,
        namespace: String,
        name: String,
    },
}

impl WaitCondition {
    /// The default deadline when the scenario names none: rollouts start processes (or pull images
    /// on a cluster), statuses only need one translation.
    pub fn default_timeout(&self) -> Duration {
        match self {
            WaitCondition::Rollout { .. } => Duration::from_secs(120),
            WaitCondition::Status { .. } | WaitCondition::Upstream { .. } => {
                Duration::from_secs(30)
            }
            WaitCondition::Aged { .. } => Duration::from_secs(5),
        }
    }
}

impl fmt::Display for WaitCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitCondition::Rollout { namespace } => write!(f, "rollout of namespace {namespace}"),
            WaitCondition::Status {
                kind,
                namespace,
                name,
                state,
                conditions,
            } => {
                write!(f, "{kind} {namespace}/{name} to be {state}")?;
                if !conditions.is_empty() {
                    let pinned: Vec<String> = conditions
                        .iter()
                        .map(|(kind, reason)| format!("{kind}={reason}"))
                        .collect();
                    write!(f, " with reasons {}", pinned.join(", "))?;
                }
                Ok(())
            }
            WaitCondition::Aged {
                kind,
                namespace,
                name,
            } => write!(f, "{kind} {namespace}/{name} to be older than this second"),
            WaitCondition::Upstream { namespace, name } => {
                write!(f, "upstream {namespace}/{name} to be discovered")
            }
        }
    }
}

/// Requests to send and what the replies must show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficStep {
    /// Path and query, e.g. `/appmesh/color?x=1`.
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Host header (virtual host selection); default: the proxy address.
    #[serde(default)]
    pub host: Option<String>,
    /// A fixed number of requests. Required unless `expect.split` is given, in which case the
    /// statistics plan the number (and a sequential check may stop earlier).
    #[serde(default)]
    pub requests: Option<u64>,
    /// Requests in flight at once; each in-flight slot uses its own connection.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Print each reply as curl would (walkthrough mode shows the first ones).
    #[serde(default)]
    pub show_replies: bool,
    /// Change the configuration while this traffic flows (a canary weight step judged under
    /// load): `expect.split` then gives the new weights.
    #[serde(default)]
    pub shift: Option<ShiftSpec>,
    #[serde(default)]
    pub expect: TrafficExpect,
}

/// `traffic.shift`: what to apply while traffic flows, and what the change may cost.
///
/// The step sends `warmup` requests at the old configuration, applies while the traffic goes on,
/// waits for the gateway to report the change live, reads the generation it reports, and then
/// judges `expect.split` on the requests sent after that report. Every reply names the
/// generation that served it (`x-colormesh-generation`); a reply sent after the report from an
/// older generation is stale. Replies failing the exact checks (a 503, a reset) count against
/// `expect.maxErrors` over the whole step, the change included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShiftSpec {
    /// Files or folders under `manifests/` to apply while traffic flows.
    #[serde(deserialize_with = "one_or_many")]
    pub apply: Vec<PathBuf>,
    /// Replies received before the apply starts (the old configuration's baseline). Default 200.
    #[serde(default = "default_warmup")]
    pub warmup: u64,
    /// Replies sent after the gateway reported the new generation but served by an older one
    /// that are tolerated. Default 0: a request that starts after the report must see the change.
    #[serde(default)]
    pub max_stale: u64,
}

fn default_warmup() -> u64 {
    200
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<PathBuf>, D::Error> {
    Ok(OneOrMany::deserialize(deserializer)?.into_vec())
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_concurrency() -> usize {
    4
}

/// Checks on the replies of a traffic step. Every check given must hold for the step to pass.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficExpect {
    /// Allowed status codes; default 200.
    #[serde(default)]
    pub status: Option<StatusSet>,
    /// How many replies may break the other checks (wrong status, transport error, unparsable
    /// body). Default 0.
    #[serde(default)]
    pub max_errors: u64,
    /// Every reply's body equals this exactly.
    #[serde(default)]
    pub body: Option<String>,
    /// Every reply's body contains this.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Every reply is a colorgateway reply of this shape (`color`/`stats` keys vs `colorV2`/`statsV2`).
    #[serde(default)]
    pub shape: Option<ReplyShape>,
    /// Every reply is an echo backend reply showing exactly these request properties upstream.
    #[serde(default)]
    pub echo: Option<EchoExpect>,
    /// Response headers that must be present with these values.
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
    /// Response headers that must not be present (a redirect's or a modifier's removals).
    #[serde(default)]
    pub absent_response_headers: Vec<String>,
    /// The weighted split the replies must follow, judged statistically.
    #[serde(default)]
    pub split: Option<SplitExpect>,
    /// Compare the split the client saw with the colorgateway's own `stats` histogram (after
    /// `/color/clear`); a cross-check of the two oracles.
    #[serde(default)]
    pub stats_cross_check: bool,
    /// The trace check: every colorgateway reply's X-Ray trace must be connected from the ingress
    /// to the colorteller that answered it. On by default wherever the backend collects traces
    /// (the local backend); `trace: false` turns it off.
    #[serde(default)]
    pub trace: Option<bool>,
}

/// One status code or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Any(Vec<u16>),
}

impl StatusSet {
    pub fn allows(&self, status: u16) -> bool {
        match self {
            StatusSet::One(code) => *code == status,
            StatusSet::Any(codes) => codes.contains(&status),
        }
    }
}

/// The two colorgateway reply shapes of the walkthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyShape {
    /// `{"color":"blue", "stats": {...}}` from colorgateway.
    V1,
    /// `{"colorV2":"blue", "statsV2": {...}}` from colorgatewayv2.
    V2,
}

/// What the echo backend must report having received.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EchoExpect {
    /// The exact path the upstream saw (after rewrites), without the query.
    #[serde(default)]
    pub path: Option<String>,
    /// The exact raw query the upstream saw; `""` means none.
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    /// The exact Host (authority) the upstream saw, after a hostname rewrite.
    #[serde(default)]
    pub host: Option<String>,
    /// Headers the upstream must have received with these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers the upstream must not have received.
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// The echo service that must have answered (`SERVICE_NAME`).
    #[serde(default)]
    pub service: Option<String>,
}

/// A weighted split: which reply property names the destination, and the configured weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitExpect {
    pub by: SplitKey,
    /// Destination label (as `by` extracts it) to configured relative weight; weight 0 means the
    /// destination must receive nothing.
    pub weights: BTreeMap<String, u32>,
    /// Stop as soon as the verdict is certain (sequential test) rather than after the planned
    /// number of requests. Default true.
    #[serde(default = "default_true")]
    pub sequential: bool,
    /// Measure the time from the previous apply until the gateway serves this split.
    #[serde(default)]
    pub propagation: bool,
    /// How the gateway picks, and so what one sample is; default `random` (per request).
    #[serde(default)]
    pub selection: Selection,
}

/// How a gateway picks a destination: the unit the split check counts in.
///
/// In YAML: `random`, `perConnection`, `roundRobin`, `{ roundRobin: { schedulers: N } }`,
/// `{ hash: { header: NAME } }` or `{ hash: { cookie: NAME } }`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "serde_norway::Value")]
pub enum Selection {
    /// An independent draw per request (Envoy's weighted clusters): every request is a sample.
    #[default]
    Random,
    /// One draw per downstream connection: every sample goes on a fresh connection, and a few
    /// connections carry several requests, which must all get the same destination.
    PerConnection,
    /// The draw is a function of a request key (Envoy's `use_hash_policy`): every sample carries a
    /// fresh random key, and a few keys are sent several times, which must all get the same
    /// destination.
    Hash(HashKey),
    /// Deterministic smooth weighted round robin, one scheduler per worker: judged against the
    /// bound such schedulers meet over consecutive picks ([`crate::stats::RoundRobinCheck`]).
    RoundRobin { schedulers: u32 },
}

/// Where a hashed request carries its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HashKey {
    Header(String),
    Cookie(String),
}

const SELECTION_FORMS: &str = "expected random, perConnection, roundRobin, \
     { roundRobin: { schedulers: N } }, { hash: { header: NAME } } or { hash: { cookie: NAME } }";

impl TryFrom<serde_norway::Value> for Selection {
    type Error = String;

    fn try_from(value: serde_norway::Value) -> Result<Self, String> {
        use serde_norway::Value;
        let (name, body) = match value {
            Value::String(name) => (name, Value::Null),
            Value::Mapping(map) if map.len() == 1 => {
                let (key, body) = map.into_iter().next().expect("one entry");
                let Value::String(name) = key else {
                    return Err(SELECTION_FORMS.to_owned());
                };
                (name, body)
            }
            _ => return Err(SELECTION_FORMS.to_owned()),
        };
        match (name.as_str(), body) {
            ("random", Value::Null) => Ok(Selection::Random),
            ("perConnection", Value::Null) => Ok(Selection::PerConnection),
            ("roundRobin", Value::Null) => Ok(Selection::RoundRobin { schedulers: 1 }),
            ("roundRobin", Value::Mapping(map)) => {
                let mut schedulers = 1;
                for (key, value) in map {
                    match (key.as_str(), value.as_u64()) {
                        (Some("schedulers"), Some(n)) if (1..=1024).contains(&n) => {
                            schedulers = n as u32;
                        }
                        (Some("schedulers"), _) => {
                            return Err(
                                "roundRobin.schedulers: expected an integer in 1..=1024".to_owned()
                            );
                        }
                        _ => {
                            return Err(format!(
                                "roundRobin: unknown field {key:?}, expected schedulers"
                            ));
                        }
                    }
                }
                Ok(Selection::RoundRobin { schedulers })
            }
            ("hash", Value::Mapping(map)) => {
                let mut keys = Vec::new();
                for (key, value) in map {
                    let name = match value {
                        Value::String(name) if !name.is_empty() => name,
                        _ => {
                            return Err(format!(
                                "hash.{}: expected a non-empty name",
                                key.as_str().unwrap_or("?")
                            ));
                        }
                    };
                    match key.as_str() {
                        Some("header") => {
                            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                                return Err(format!("hash.header: {name:?} is not a header name"));
                            }
                            keys.push(HashKey::Header(name.to_ascii_lowercase()));
                        }
                        Some("cookie") => {
                            if !name
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                            {
                                return Err(format!("hash.cookie: {name:?} is not a cookie name"));
                            }
                            keys.push(HashKey::Cookie(name));
                        }
                        _ => {
                            return Err(format!(
                                "hash: unknown field {key:?}, expected header or cookie"
                            ));
                        }
                    }
                }
                match <[HashKey; 1]>::try_from(keys) {
                    Ok([key]) => Ok(Selection::Hash(key)),
                    Err(_) => Err("hash: exactly one of header, cookie is required".to_owned()),
                }
            }
            ("hash", _) => Err("hash: exactly one of header, cookie is required".to_owned()),
            _ => Err(SELECTION_FORMS.to_owned()),
        }
    }
}

fn default_true() -> bool {
    true
}

/// The reply property that tells destinations apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SplitKey {
    /// The color in a colorgateway reply (`color` or `colorV2`): the mesh's split over tellers.
    Color,
    /// The reply shape, `v1` or `v2`: the ingress split over colorgateway versions.
    Shape,
    /// The echo backend's `SERVICE_NAME`.
    EchoService,
    /// The echo backend's `SERVICE_NAME` for a 2xx reply, else the status code (`"500"`): for
    /// splits where a share is answered by the gateway itself (an unresolved backendRef).
    EchoServiceOrStatus,
    /// The whole body (colorteller answers its color as the body).
    Body,
}

// === loading ===

/// Why a scenario file cannot be used. Every variant names the file; step errors name the step.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {path}: {message}")]
    Syntax {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error("{file}: step {index} ({summary}): {problem}")]
    Step {
        file: PathBuf,
        index: usize,
        summary: String,
        #[source]
        problem: StepProblem,
    },
}

/// What is wrong with one step; [`ScenarioError::Step`] adds the file and the step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepProblem {
    /// The action keys given (none, or more than one).
    #[error(
        "exactly one of apply, delete, glooctl, kubectl, wait, traffic is required, found {}",
        found_actions(.given)
    )]
    Action { given: Vec<&'static str> },
    /// `program` is `glooctl` or `kubectl`.
    #[error("{program}: unbalanced quotes in {line:?}")]
    GlooctlQuotes { program: &'static str, line: String },
    #[error("{program}: empty command")]
    GlooctlEmpty { program: &'static str },
    /// How many of `rollout`, `status`, `upstream`, `aged` a wait gave.
    #[error("wait: exactly one of rollout, status, upstream, aged is required, found {found}")]
    WaitCondition { found: usize },
    #[error("traffic.path must start with '/', got {path:?}")]
    TrafficPath { path: String },
    #[error("traffic.concurrency must be at least 1")]
    TrafficConcurrency,
    #[error("traffic.method {method:?} is not an HTTP method")]
    TrafficMethod { method: String },
    #[error("traffic.requests is required unless expect.split plans it")]
    TrafficRequestsMissing,
    #[error("traffic.requests must be at least 1")]
    TrafficRequestsZero,
    #[error("traffic.expect.split.weights must name at least one destination")]
    SplitWithoutDestinations,
    #[error("traffic.expect.split.weights: the total weight must be at least 1")]
    SplitWithoutWeight,
    #[error("traffic.shift needs expect.split: the weights the change must end at")]
    ShiftWithoutSplit,
    #[error(
        "traffic.shift plans its own requests (a warm-up, the change, then the split's sample); \
         drop traffic.requests"
    )]
    ShiftWithRequests,
    #[error(
        "traffic.shift measures the change itself; drop expect.split.propagation (it waits for \
         an earlier apply)"
    )]
    ShiftWithPropagation,
    #[error("traffic.shift.apply must name at least one file or folder")]
    ShiftApplyEmpty,
    #[error("traffic.shift.warmup must be at least 1 (the baseline the change is compared with)")]
    ShiftWarmupZero,
    /// `selection: { hash: { header } }` names a header the step also sends with a fixed value.
    #[error(
        "traffic.expect.split.selection: hash.header {header:?} is also in traffic.headers; \
         the harness sends a fresh key per sample there"
    )]
    SelectionHeaderFixed { header: String },
}

fn found_actions(given: &[&str]) -> String {
    if given.is_empty() {
        "none".to_owned()
    } else {
        given.join(" and ")
    }
}

/// The on-disk shape; converted into [`Scenario`] with checks serde cannot express.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    features: Vec<Feature>,
    steps: Vec<RawStep>,
}

// A flat struct with one optional field per action reads better in YAML than a tagged enum and
// lets us say "exactly one of ..." with the step's position, instead of serde's generic message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    note: Option<String>,
    #[serde(default)]
    always: bool,
    apply: Option<OneOrMany>,
    delete: Option<OneOrMany>,
    glooctl: Option<RawGlooctl>,
    kubectl: Option<RawGlooctl>,
    wait: Option<RawWait>,
    traffic: Option<TrafficStep>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawGlooctl {
    Line(String),
    Full {
        args: String,
        #[serde(default)]
        expect: GlooctlExpect,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawWait {
    rollout: Option<String>,
    status: Option<RawStatusWait>,
    upstream: Option<String>,
    aged: Option<RawObject>,
    #[serde(default, with = "humantime_serde_opt")]
    timeout: Option<Duration>,
}

/// An object by kind, namespace (default `default`, as kubectl) and name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawObject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStatusWait {
    kind: String,
    name: String,
    /// Default: `gloo-system` for the Gloo kinds, `default` (as kubectl) for the others.
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default = "accepted")]
    state: String,
    /// Gateway API condition type to reason.
    #[serde(default)]
    conditions: BTreeMap<String, String>,
}

fn gloo_system() -> String {
    model::gloo::GLOO_NAMESPACE.to_owned()
}

fn accepted() -> String {
    "Accepted".to_owned()
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Reads and checks a scenario file.
pub fn load(file: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Read {
        file: file.to_owned(),
        source,
    })?;
    parse(&text, file)
}

/// Parses scenario text; `file` is only used in messages and recorded as the source.
pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    let raw: RawScenario =
        serde_path_to_error::deserialize(deserializer).map_err(|error| ScenarioError::Syntax {
            file: file.to_owned(),
            path: error.path().to_string(),
            message: error.inner().to_string(),
        })?;
    let steps = raw
        .steps
        .into_iter()
        .enumerate()
        .map(|(index, step)| {
            convert_step(step).map_err(|(summary, problem)| ScenarioError::Step {
                file: file.to_owned(),
                index: index + 1,
                summary,
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        features: raw.features,
        steps,
        source: file.to_owned(),
    })
}

/// Turns a raw step into a checked one; errors are (summary of the step, problem).
fn convert_step(raw: RawStep) -> Result<Step, (String, StepProblem)> {
    let given: Vec<&str> = [
        ("apply", raw.apply.is_some()),
        ("delete", raw.delete.is_some()),
        ("glooctl", raw.glooctl.is_some()),
        ("kubectl", raw.kubectl.is_some()),
        ("wait", raw.wait.is_some()),
        ("traffic", raw.traffic.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, present)| present.then_some(key))
    .collect();
    let summary = raw.name.clone().unwrap_or_else(|| given.join("+"));
    let fail = |problem: StepProblem| (summary.clone(), problem);
    if given.len() != 1 {
        return Err(fail(StepProblem::Action { given }));
    }
    let action = if let Some(paths) = raw.apply {
        Action::Apply(paths.into_vec())
    } else if let Some(paths) = raw.delete {
        Action::Delete(paths.into_vec())
    } else if let Some(glooctl) = raw.glooctl {
        Action::Glooctl(command_step("glooctl", glooctl).map_err(fail)?)
    } else if let Some(kubectl) = raw.kubectl {
        Action::Kubectl(command_step("kubectl", kubectl).map_err(fail)?)
    } else if let Some(wait) = raw.wait {
        Action::Wait(convert_wait(wait).map_err(fail)?)
    } else if let Some(traffic) = raw.traffic {
        check_traffic(&traffic).map_err(fail)?;
        Action::Traffic(Box::new(traffic))
    } else {
        unreachable!("exactly one action was counted above")
    };
    Ok(Step {
        name: raw.name,
        note: raw.note,
        always: raw.always,
        action,
    })
}

/// A glooctl or kubectl step: the line split as a POSIX shell would, without the program name.
fn command_step(program: &'static str, raw: RawGlooctl) -> Result<GlooctlStep, StepProblem> {
    let (line, expect) = match raw {
        RawGlooctl::Line(line) => (line, GlooctlExpect::default()),
        RawGlooctl::Full { args, expect } => (args, expect),
    };
    let args = shlex::split(&line).ok_or_else(|| StepProblem::GlooctlQuotes {
        program,
        line: line.clone(),
    })?;
    let args = match args.split_first() {
        Some((first, rest)) if first == program => rest.to_vec(),
        _ => args,
    };
    if args.is_empty() {
        return Err(StepProblem::GlooctlEmpty { program });
    }
    Ok(GlooctlStep { args, expect })
}

impl OneOrMany {
    fn into_vec(self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(path) => vec![path],
            OneOrMany::Many(paths) => paths,
        }
    }
}

fn convert_wait(raw: RawWait) -> Result<WaitStep, StepProblem> {
    let mut conditions = Vec::new();
    if let Some(namespace) = raw.rollout {
        conditions.push(WaitCondition::Rollout { namespace });
    }
    if let Some(status) = raw.status {
        let namespace = status.namespace.unwrap_or_else(|| {
            if matches!(
                status.kind.as_str(),
                "VirtualService" | "Upstream" | "UpstreamGroup"
            ) {
                gloo_system()
            } else {
                "default".to_owned()
            }
        });
        conditions.push(WaitCondition::Status {
            kind: status.kind,
            namespace,
            name: status.name,
            state: status.state,
            conditions: status.conditions,
        });
    }
    if let Some(object) = raw.aged {
        conditions.push(WaitCondition::Aged {
            kind: object.kind,
            namespace: object.namespace.unwrap_or_else(|| "default".to_owned()),
            name: object.name,
        });
    }
    if let Some(name) = raw.upstream {
        let (namespace, name) = match name.split_once('/') {
            Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
            None => (gloo_system(), name),
        };
        conditions.push(WaitCondition::Upstream { namespace, name });
    }
    if conditions.len() != 1 {
        return Err(StepProblem::WaitCondition {
            found: conditions.len(),
        });
    }
    let condition = conditions.remove(0);
    let timeout = raw.timeout.unwrap_or_else(|| condition.default_timeout());
    Ok(WaitStep { condition, timeout })
}

fn check_traffic(traffic: &TrafficStep) -> Result<(), StepProblem> {
    if !traffic.path.starts_with('/') {
        return Err(StepProblem::TrafficPath {
            path: traffic.path.clone(),
        });
    }
    if traffic.concurrency == 0 {
        return Err(StepProblem::TrafficConcurrency);
    }
    if http::Method::from_bytes(traffic.method.as_bytes()).is_err() {
        return Err(StepProblem::TrafficMethod {
            method: traffic.method.clone(),
        });
    }
    match (&traffic.expect.split, traffic.requests) {
        (None, None) => return Err(StepProblem::TrafficRequestsMissing),
        (_, Some(0)) => return Err(StepProblem::TrafficRequestsZero),
        _ => {}
    }
    if let Some(split) = &traffic.expect.split {
        if split.weights.is_empty() {
            return Err(StepProblem::SplitWithoutDestinations);
        }
        if split.weights.values().all(|weight| *weight == 0) {
            return Err(StepProblem::SplitWithoutWeight);
        }
        if let Selection::Hash(HashKey::Header(header)) = &split.selection
            && traffic
                .headers
                .keys()
                .any(|name| name.eq_ignore_ascii_case(header))
        {
            return Err(StepProblem::SelectionHeaderFixed {
                header: header.clone(),
            });
        }
    }
    if let Some(shift) = &traffic.shift {
        match &traffic.expect.split {
            None => return Err(StepProblem::ShiftWithoutSplit),
            Some(split) if split.propagation => return Err(StepProblem::ShiftWithPropagation),
            Some(_) => {}
        }
        if traffic.requests.is_some() {
            return Err(StepProblem::ShiftWithRequests);
        }
        if shift.apply.is_empty() {
            return Err(StepProblem::ShiftApplyEmpty);
        }
        if shift.warmup == 0 {
            return Err(StepProblem::ShiftWarmupZero);
        }
    }
    Ok(())
}

/// A one-line description of a step for progress output and reports.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.name {
            return f.write_str(name);
        }
        match &self.action {
            Action::Apply(paths) => write!(f, "kubectl apply -f {}", join_paths(paths)),
            Action::Delete(paths) => write!(f, "kubectl delete -f {}", join_paths(paths)),
            Action::Glooctl(step) => write!(
                f,
                "glooctl {}",
                shlex::try_join(step.args.iter().map(String::as_str))
                    .unwrap_or_else(|_| step.args.join(" "))
            ),
            Action::Kubectl(step) => write!(
                f,
                "kubectl {}",
                shlex::try_join(step.args.iter().map(String::as_str))
                    .unwrap_or_else(|_| step.args.join(" "))
            ),
            Action::Wait(wait) => write!(
                f,
                "wait for {} (timeout {})",
                wait.condition,
                humantime::format_duration(wait.timeout)
            ),
            Action::Traffic(traffic) => {
                write!(f, "{} {}", traffic.method, traffic.path)?;
                match traffic.requests {
                    Some(n) => write!(f, " x{n}")?,
                    None => write!(f, " (planned)")?,
                }
                match &traffic.shift {
                    Some(shift) => write!(f, " while applying {}", join_paths(&shift.apply)),
                    None => Ok(()),
                }
            }
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("manifests/{}", p.display()))
        .collect::<Vec<_>>()
        .join(" -f ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Scenario {
        parse(text, Path::new("scenarios/test.yaml")).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("scenarios/test.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_action_parses() {
        let scenario = parse_ok(
            r#"
name: Everything
features: [prefix-rewrite, upstream-group]
steps:
  - apply: colorapp
  - apply: [gloo/a.yaml, gloo/b.yaml]
  - glooctl: glooctl add route --path-prefix /appmesh/color --prefix-rewrite "/color" --dest-name x
  - glooctl: { args: get upstream, expect: { contains: [appmesh-demo-colorgateway-9080] } }
  - wait: { rollout: appmesh-demo, timeout: 45s }
  - wait: { status: { kind: VirtualService, name: colorgateway } }
  - wait: { upstream: appmesh-demo-colorgateway-9080 }
  - name: canary 80/20
    traffic:
      path: /appmesh/color
      expect: { split: { by: shape, weights: { v1: 80, v2: 20 } } }
  - delete: gloo/a.yaml
"#,
        );
        assert_eq!(
            scenario.features,
            vec![Feature::PrefixRewrite, Feature::UpstreamGroup]
        );
        assert_eq!(scenario.steps.len(), 9);
        assert_eq!(
            scenario.steps[0].action,
            Action::Apply(vec!["colorapp".into()])
        );
        let Action::Glooctl(glooctl) = &scenario.steps[2].action else {
            panic!()
        };
        assert_eq!(glooctl.args[..3], ["add", "route", "--path-prefix"]);
        assert_eq!(glooctl.args[5], "/color");
        let Action::Wait(wait) = &scenario.steps[4].action else {
            panic!()
        };
        assert_eq!(wait.timeout, Duration::from_secs(45));
        let Action::Wait(wait) = &scenario.steps[5].action else {
            panic!()
        };
        assert_eq!(
            wait.condition,
            WaitCondition::Status {
                kind: "VirtualService".into(),
                namespace: "gloo-system".into(),
                name: "colorgateway".into(),
                state: "Accepted".into(),
                conditions: BTreeMap::new(),
            }
        );
        assert_eq!(wait.timeout, Duration::from_secs(30));
        let Action::Traffic(traffic) = &scenario.steps[7].action else {
            panic!()
        };
        let split = traffic.expect.split.as_ref().unwrap();
        assert!(split.sequential);
        assert_eq!(split.weights["v1"], 80);
        assert_eq!(scenario.steps[7].to_string(), "canary 80/20");
        assert_eq!(
            scenario.steps[0].to_string(),
            "kubectl apply -f manifests/colorapp"
        );
    }

    #[test]
    fn a_step_with_two_actions_names_its_position() {
        let error = parse_err("name: X\nsteps:\n  - apply: a\n  - apply: b\n    delete: c\n");
        assert_eq!(
            error,
            "scenarios/test.yaml: step 2 (apply+delete): exactly one of apply, delete, glooctl, \
             kubectl, wait, traffic is required, found apply and delete"
        );
    }

    #[test]
    fn unknown_fields_are_errors_with_their_path() {
        let error = parse_err(
            "name: X\nsteps:\n  - traffic: { path: /, requests: 1, expect: { stauts: 200 } }\n",
        );
        assert!(
            error.starts_with("scenarios/test.yaml: steps[0].traffic.expect"),
            "{error}"
        );
        assert!(error.contains("stauts"), "{error}");
    }

    #[test]
    fn unknown_feature_is_an_error() {
        let error = parse_err("name: X\nfeatures: [teleport]\nsteps: []\n");
        assert!(
            error.contains("features[0]") && error.contains("teleport"),
            "{error}"
        );
    }

    #[test]
    fn traffic_needs_a_count_or_a_split() {
        let error = parse_err("name: X\nsteps:\n  - traffic: { path: /color }\n");
        assert!(error.contains("traffic.requests is required"), "{error}");
        let error = parse_err(
            "name: X\nsteps:\n  - traffic: { path: /c, expect: { split: { by: color, weights: { a: 0 } } } }\n",
        );
        assert!(error.contains("total weight must be at least 1"), "{error}");
    }

    #[test]
    fn bad_wait_and_glooctl_are_rejected() {
        let error = parse_err("name: X\nsteps:\n  - wait: { timeout: 5s }\n");
        assert!(
            error.contains("exactly one of rollout, status, upstream, aged"),
            "{error}"
        );
        let error = parse_err("name: X\nsteps:\n  - glooctl: 'add route \"oops'\n");
        assert!(error.contains("unbalanced quotes"), "{error}");
        let error = parse_err("name: X\nsteps:\n  - wait: { rollout: a, timeout: soon }\n");
        assert!(error.contains("steps[0].wait.timeout"), "{error}");
        let error = parse_err("name: X\nsteps:\n  - wait: { aged: { kind: HTTPRoute } }\n");
        assert!(
            error.contains("steps[0].wait.aged") && error.contains("name"),
            "{error}"
        );
    }

    #[test]
    fn an_aged_wait_names_an_object_with_kubectls_default_namespace() {
        let scenario =
            parse_ok("name: A\nsteps:\n  - wait: { aged: { kind: HTTPRoute, name: old } }\n");
        let Action::Wait(wait) = &scenario.steps[0].action else {
            panic!("a wait step");
        };
        assert_eq!(
            wait.condition,
            WaitCondition::Aged {
                kind: "HTTPRoute".into(),
                namespace: "default".into(),
                name: "old".into(),
            }
        );
        assert_eq!(wait.timeout, Duration::from_secs(5));
    }

    #[test]
    fn kubectl_steps_parse_like_glooctl_ones_and_status_waits_default_by_kind() {
        let scenario = parse_ok(
            r#"
name: K
steps:
  - kubectl: kubectl get httproute -n appmesh-demo
  - kubectl: { args: get gateway -A, expect: { contains: [colorapp-gateway, "True"] } }
  - wait: { status: { kind: HTTPRoute, name: colorgateway } }
  - wait: { status: { kind: UpstreamGroup, name: ug } }
"#,
        );
        let Action::Kubectl(first) = &scenario.steps[0].action else {
            panic!("{:?}", scenario.steps[0])
        };
        assert_eq!(first.args, ["get", "httproute", "-n", "appmesh-demo"]);
        assert_eq!(
            scenario.steps[0].to_string(),
            "kubectl get httproute -n appmesh-demo"
        );
        let Action::Kubectl(second) = &scenario.steps[1].action else {
            panic!()
        };
        assert_eq!(second.expect.contains, ["colorapp-gateway", "True"]);
        let namespace_of = |index: usize| match &scenario.steps[index].action {
            Action::Wait(WaitStep {
                condition: WaitCondition::Status { namespace, .. },
                ..
            }) => namespace.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(namespace_of(2), "default");
        assert_eq!(namespace_of(3), "gloo-system");
        let error = parse_err("name: X\nsteps:\n  - kubectl: 'get \"oops'\n");
        assert!(error.contains("kubectl: unbalanced quotes"), "{error}");
        let error = parse_err("name: X\nsteps:\n  - kubectl: kubectl\n");
        assert!(error.contains("kubectl: empty command"), "{error}");
    }

    #[test]
    fn a_shift_applies_while_traffic_flows_and_needs_the_new_weights() {
        let scenario = parse_ok(
            r#"
name: S
steps:
  - name: canary 50/50
    traffic:
      path: /appmesh/color
      shift: { apply: gloo/upstreamgroup-50-50.yaml }
      expect: { split: { by: shape, weights: { v1: 50, v2: 50 } } }
  - traffic:
      path: /appmesh/color
      shift: { apply: [a.yaml, b], warmup: 50, maxStale: 2 }
      expect: { split: { by: shape, weights: { v2: 1 } } }
"#,
        );
        let Action::Traffic(first) = &scenario.steps[0].action else {
            panic!()
        };
        let shift = first.shift.as_ref().expect("a shift");
        assert_eq!(
            shift.apply,
            [PathBuf::from("gloo/upstreamgroup-50-50.yaml")]
        );
        assert_eq!((shift.warmup, shift.max_stale), (200, 0));
        let Action::Traffic(second) = &scenario.steps[1].action else {
            panic!()
        };
        let shift = second.shift.as_ref().expect("a shift");
        assert_eq!(shift.apply, [PathBuf::from("a.yaml"), PathBuf::from("b")]);
        assert_eq!((shift.warmup, shift.max_stale), (50, 2));
        assert_eq!(
            scenario.steps[1].to_string(),
            "GET /appmesh/color (planned) while applying manifests/a.yaml -f manifests/b"
        );

        let bad = |traffic: &str| {
            parse_err(&format!(
                "name: X\nsteps:\n  - name: s\n    traffic: {traffic}\n"
            ))
        };
        let error = bad("{ path: /c, shift: { apply: a.yaml }, requests: 5 }");
        assert_eq!(
            error,
            "scenarios/test.yaml: step 1 (s): traffic.shift needs expect.split: the weights the \
             change must end at"
        );
        let split = "expect: { split: { by: body, weights: { a: 1 } } }";
        let error = bad(&format!(
            "{{ path: /c, requests: 5, shift: {{ apply: a }}, {split} }}"
        ));
        assert!(
            error.contains("step 1 (s): traffic.shift plans its own requests"),
            "{error}"
        );
        let error = bad(&format!("{{ path: /c, shift: {{ apply: [] }}, {split} }}"));
        assert!(error.contains("traffic.shift.apply must name"), "{error}");
        let error = bad(&format!(
            "{{ path: /c, shift: {{ apply: a, warmup: 0 }}, {split} }}"
        ));
        assert!(
            error.contains("traffic.shift.warmup must be at least 1"),
            "{error}"
        );
        let error = bad(
            "{ path: /c, shift: { apply: a }, expect: { split: { by: body, weights: { a: 1 }, propagation: true } } }",
        );
        assert!(error.contains("drop expect.split.propagation"), "{error}");
        let error = bad(&format!("{{ path: /c, shift: {{ aply: a }}, {split} }}"));
        assert!(
            error.contains("steps[0].traffic.shift") && error.contains("aply"),
            "{error}"
        );
    }

    #[test]
    fn split_selection_parses_every_form_and_names_the_field_when_wrong() {
        let selection = |text: &str| -> Result<Selection, String> {
            let yaml = format!(
                "name: X\nsteps:\n  - traffic: {{ path: /, expect: {{ split: {{ by: body, weights: {{ a: 1 }}, selection: {text} }} }} }}\n"
            );
            parse(&yaml, Path::new("scenarios/test.yaml"))
                .map(|scenario| match &scenario.steps[0].action {
                    Action::Traffic(traffic) => traffic.expect.split.clone().unwrap().selection,
                    other => panic!("{other:?}"),
                })
                .map_err(|error| error.to_string())
        };
        assert_eq!(selection("random"), Ok(Selection::Random));
        assert_eq!(selection("perConnection"), Ok(Selection::PerConnection));
        assert_eq!(
            selection("roundRobin"),
            Ok(Selection::RoundRobin { schedulers: 1 })
        );
        assert_eq!(
            selection("{ roundRobin: { schedulers: 4 } }"),
            Ok(Selection::RoundRobin { schedulers: 4 })
        );
        assert_eq!(
            selection("{ hash: { header: X-Colormesh-Key } }"),
            Ok(Selection::Hash(HashKey::Header("x-colormesh-key".into())))
        );
        assert_eq!(
            selection("{ hash: { cookie: session } }"),
            Ok(Selection::Hash(HashKey::Cookie("session".into())))
        );
        let no_split = parse_ok(
            "name: X\nsteps:\n  - traffic: { path: /, expect: { split: { by: body, weights: { a: 1 } } } }\n",
        );
        let Action::Traffic(traffic) = &no_split.steps[0].action else {
            panic!()
        };
        assert_eq!(
            traffic.expect.split.as_ref().unwrap().selection,
            Selection::Random
        );
        for (text, message) in [
            ("sticky", "expected random, perConnection"),
            ("hash", "exactly one of header, cookie"),
            (
                "{ hash: { header: a, cookie: b } }",
                "exactly one of header, cookie",
            ),
            ("{ hash: { header: 'a b' } }", "not a header name"),
            ("{ roundRobin: { schedulers: 0 } }", "roundRobin.schedulers"),
            ("{ roundRobin: { workers: 2 } }", "unknown field"),
        ] {
            let error = selection(text).expect_err(text);
            assert!(
                error.starts_with("scenarios/test.yaml: steps[0].traffic.expect.split.selection"),
                "{text}: {error}"
            );
            assert!(error.contains(message), "{text}: {error}");
        }
        let error = parse_err(
            "name: X\nsteps:\n  - name: keyed\n    traffic: { path: /, headers: { X-Key: a }, expect: { split: { by: body, weights: { a: 1 }, selection: { hash: { header: x-key } } } } }\n",
        );
        assert!(
            error
                .starts_with("scenarios/test.yaml: step 1 (keyed): traffic.expect.split.selection"),
            "{error}"
        );
    }

    #[test]
    fn status_set_allows_one_or_many() {
        assert!(StatusSet::One(200).allows(200));
        assert!(!StatusSet::One(200).allows(404));
        assert!(StatusSet::Any(vec![301, 404]).allows(404));
    }
}
