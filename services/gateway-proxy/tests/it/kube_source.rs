//! The Kubernetes configuration source against a mocked API server (tower-test behind a real
//! `kube::Client`): initial lists, watch events, status write-back and the failure modes.
#![cfg(feature = "kubernetes")]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use crate::support::{RunningProxy, client, get, get_url};
use gateway_proxy::kube_source::{KubeOptions, KubeSourceError, KubeSync, start};
use gateway_proxy::{ProxyOptions, ProxyState};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use model::gloo::State;
use routing::Role;
use routing::table::RouteAction;
use serde_json::{Value, json};
use test_support::{Upstream, manifest, wait_for};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tower_test::mock::SendResponse;

/// Generous: only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(10);

const VIRTUAL_SERVICES: &str = "/apis/gateway.solo.io/v1/virtualservices";
const UPSTREAMS: &str = "/apis/gloo.solo.io/v1/upstreams";
const UPSTREAM_GROUPS: &str = "/apis/gloo.solo.io/v1/upstreamgroups";
const SERVICES: &str = "/api/v1/services";
const ENDPOINT_SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";

/// One request the mocked API server received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    content_type: Option<String>,
    body: Value,
}

enum Control {
    /// Deliver a watch event to the (current or next) watch of a collection.
    Event { collection: String, event: Value },
    /// Answer a list that was held back.
    ReleaseList(String),
}

/// What the mocked API server holds before the test starts.
#[derive(Default)]
struct Setup {
    /// Objects by collection path (all-namespaces form), returned by lists in any scope.
    objects: HashMap<String, Vec<Value>>,
    /// Collections whose list answers 404 (CRD not installed).
    missing: HashSet<String>,
    /// Collections whose list is answered only on `ReleaseList`.
    held: HashSet<String>,
    /// Answers to successive PATCH requests; 200 when exhausted.
    patch_replies: Vec<StatusCode>,
    /// The CRDs declare no status subresource (as solo-kit's do): `.../status` answers 404.
    no_status_subresource: bool,
}

impl Setup {
    fn with(mut self, collection: &str, object: Value) -> Self {
        self.objects
            .entry(collection.to_owned())
            .or_default()
            .push(object);
        self
    }
}

/// A `kube::Client` whose requests a task answers from a [`Setup`].
struct MockApi {
    client: kube::Client,
    control: mpsc::UnboundedSender<Control>,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Responder = SendResponse<Response<Body>>;

impl MockApi {
    fn start(setup: Setup) -> Self {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let (control, mut controls) = mpsc::unbounded_channel::<Control>();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut server = Server {
                setup,
                parked_watches: HashMap::new(),
                queued_events: HashMap::new(),
                held_lists: HashMap::new(),
                patches: 0,
            };
            loop {
                tokio::select! {
                    request = handle.next_request() => {
                        let Some((request, respond)) = request else { return };
                        let seen = server.answer(request, respond).await;
                        let _ = seen_tx.send(seen);
                    }
                    Some(control) = controls.recv() => server.control(control),
                }
            }
        });
        Self {
            client,
            control,
            seen,
            task,
        }
    }

    fn event(&self, collection: &str, kind: &str, object: Value) {
        self.control
            .send(Control::Event {
                collection: collection.to_owned(),
                event: json!({"type": kind, "object": object}),
            })
            .expect("mock API running");
    }

    fn release_list(&self, collection: &str) {
        self.control
            .send(Control::ReleaseList(collection.to_owned()))
            .expect("mock API running");
    }

    /// Every request received so far.
    fn drain(&mut self) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Ok(request) = self.seen.try_recv() {
            seen.push(request);
        }
        seen
    }

    /// Waits for the next PATCH request.
    async fn next_patch(&mut self) -> Seen {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let seen = self.seen.recv().await.expect("mock API running");
                if seen.method == Method::PATCH {
                    return seen;
                }
            }
        })
        .await
        .expect("a PATCH request in time")
    }
}

struct Server {
    setup: Setup,
    parked_watches: HashMap<String, Vec<Responder>>,
    queued_events: HashMap<String, Vec<Value>>,
    held_lists: HashMap<String, Responder>,
    patches: usize,
}

/// `/apis/g/v/namespaces/ns/plural` -> (`/apis/g/v/plural`, Some(ns)).
fn collection_of(path: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.iter().position(|part| *part == "namespaces") {
        Some(at) if parts.len() > at + 2 => {
            let mut collection = parts[..at].to_vec();
            collection.extend(&parts[at + 2..]);
            (collection.join("/"), Some(parts[at + 1].to_owned()))
        }
        _ => (path.to_owned(), None),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("response")
}

fn status_body(code: StatusCode, reason: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": format!("mock: {reason}"), "reason": reason, "code": code.as_u16(),
    })
}

impl Server {
    async fn answer(&mut self, request: Request<Body>, respond: Responder) -> Seen {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("request body");
        let seen = Seen {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: parts
                .headers
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        if seen.method == Method::PATCH {
            self.patch(&seen, respond);
        } else if seen.query.split('&').any(|pair| pair == "watch=true") {
            let (collection, _) = collection_of(&seen.path);
            match self.queued_events.remove(&collection) {
                Some(events) => respond.send_response(watch_response(&events)),
                None => self
                    .parked_watches
                    .entry(collection)
                    .or_default()
                    .push(respond),
            }
        } else {
            let (collection, namespace) = collection_of(&seen.path);
            if self.setup.missing.contains(&collection) {
                // What the API server answers for a group no CRD registered: not a Status.
                let not_found = Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Body::from(b"404 page not found\n".to_vec()))
                    .expect("response");
                respond.send_response(not_found);
            } else if self.setup.held.remove(&collection) {
                self.held_lists.insert(seen.path.clone(), respond);
            } else {
                respond.send_response(self.list(&collection, namespace.as_deref()));
            }
        }
        seen
    }

    fn list(&self, collection: &str, namespace: Option<&str>) -> Response<Body> {
        let items: Vec<&Value> = self
            .setup
            .objects
            .get(collection)
            .into_iter()
            .flatten()
            .filter(|object| {
                namespace.is_none_or(|namespace| object["metadata"]["namespace"] == namespace)
            })
            .collect();
        json_response(
            StatusCode::OK,
            &json!({
                "apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": "100"},
                "items": items,
            }),
        )
    }

    fn patch(&mut self, seen: &Seen, respond: Responder) {
        let reply = self
            .setup
            .patch_replies
            .get(self.patches)
            .copied()
            .unwrap_or(StatusCode::OK);
        self.patches += 1;
        if self.setup.no_status_subresource && seen.path.ends_with("/status") {
            respond.send_response(json_response(
                StatusCode::NOT_FOUND,
                &status_body(StatusCode::NOT_FOUND, "NotFound"),
            ));
            return;
        }
        if reply != StatusCode::OK {
            respond.send_response(json_response(reply, &status_body(reply, "MockFailure")));
            return;
        }
        // .../namespaces/<ns>/<plural>/<name>/status
        let parts: Vec<&str> = seen.path.split('/').collect();
        let at = parts
            .iter()
            .position(|part| *part == "namespaces")
            .expect("namespaced");
        let object = json!({
            "metadata": {"namespace": parts[at + 1], "name": parts[at + 3], "resourceVersion": "500"},
            "status": seen.body["status"],
        });
        respond.send_response(json_response(StatusCode::OK, &object));
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Event { collection, event } => {
                match self.parked_watches.get_mut(&collection).and_then(Vec::pop) {
                    // The body ends after the event; the watcher watches again from there.
                    Some(respond) => respond.send_response(watch_response(&[event])),
                    None => self
                        .queued_events
                        .entry(collection)
                        .or_default()
                        .push(event),
                }
            }
            Control::ReleaseList(collection) => {
                let path = self
                    .held_lists
                    .keys()
                    .find(|path| collection_of(path).0 == collection)
                    .cloned()
                    .expect("the held list was requested");
                let respond = self.held_lists.remove(&path).expect("held");
                let (_, namespace) = collection_of(&path);
                respond.send_response(self.list(&collection, namespace.as_deref()));
            }
        }
    }
}

fn watch_response(events: &[Value]) -> Response<Body> {
    let lines: String = events.iter().map(|event| format!("{event}\n")).collect();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(lines.into_bytes()))
        .expect("response")
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

fn virtual_service(resource_version: &str, route_action: Value) -> Value {
    json!({
        "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
        "metadata": {"name": "colorgateway", "namespace": "gloo-system", "resourceVersion": resource_version},
        "spec": {"virtualHost": {"domains": ["*"], "routes": [{
            "matchers": [{"prefix": "/appmesh/color"}],
            "routeAction": route_action,
            "options": {"prefixRewrite": "/color"},
        }]}},
    })
}

fn to_upstream(name: &str) -> Value {
    json!({"single": {"upstream": {"name": name, "namespace": "gloo-system"}}})
}

fn to_group(name: &str) -> Value {
    json!({"upstreamGroup": {"name": name, "namespace": "gloo-system"}})
}

fn kube_upstream(name: &str, service: &str, port: u16) -> Value {
    json!({
        "apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
        "metadata": {"name": name, "namespace": "gloo-system", "resourceVersion": "11"},
        "spec": {"kube": {"serviceName": service, "serviceNamespace": "appmesh-demo", "servicePort": port}},
    })
}

fn static_upstream(name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
        "metadata": {"name": name, "namespace": "gloo-system", "resourceVersion": "12"},
        "spec": {"static": {"hosts": [{"addr": "127.0.0.1", "port": port}]}},
    })
}

fn upstream_group(resource_version: &str, weights: [(&str, u32); 2]) -> Value {
    let destinations: Vec<Value> = weights
        .iter()
        .map(|(upstream, weight)| {
            json!({"destination": {"upstream": {"name": upstream, "namespace": "gloo-system"}}, "weight": weight})
        })
        .collect();
    json!({
        "apiVersion": "gloo.solo.io/v1", "kind": "UpstreamGroup",
        "metadata": {"name": "upstreamgroup-gateway", "namespace": "gloo-system", "resourceVersion": resource_version},
        "spec": {"destinations": destinations},
    })
}

/// As in list responses from a real API server: items without apiVersion and kind.
fn service(name: &str, port: u16) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "appmesh-demo", "resourceVersion": "21"},
        "spec": {"ports": [{"name": "http", "port": port, "protocol": "TCP"}], "selector": {"app": name}},
    })
}

fn endpoint_slice(service: &str, port: u16) -> Value {
    json!({
        "metadata": {
            "name": format!("{service}-abcde"), "namespace": "appmesh-demo", "resourceVersion": "31",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    })
}

/// The walkthrough's first step: VirtualService -> discovered Upstream -> Service -> slice.
fn colorgateway_setup(backend_port: u16) -> Setup {
    Setup::default()
        .with(
            VIRTUAL_SERVICES,
            virtual_service("10", to_upstream("appmesh-demo-colorgateway-9080")),
        )
        .with(
            UPSTREAMS,
            kube_upstream("appmesh-demo-colorgateway-9080", "colorgateway", 9080),
        )
        .with(SERVICES, service("colorgateway", 9080))
        .with(
            ENDPOINT_SLICES,
            endpoint_slice("colorgateway", backend_port),
        )
}

fn proxy_state() -> ProxyState {
    ProxyState::new(ProxyOptions {
        seed: Some(20190402),
        ..ProxyOptions::default()
    })
}

async fn start_ingress(api: &MockApi, state: &ProxyState) -> KubeSync {
    tokio::time::timeout(
        DEADLINE,
        start(
            api.client.clone(),
            state.clone(),
            KubeOptions::new(Role::ingress()),
        ),
    )
    .await
    .expect("started in time")
    .expect("started")
}

async fn wait_for_generation(state: &ProxyState, after: u64) -> u64 {
    wait_for("a new generation", DEADLINE, || async {
        let generation = state.snapshot()?.generation;
        (generation > after).then_some(generation)
    })
    .await
}

async fn wait_reconciled(sync: &KubeSync, generation: u64) {
    let mut reconciled = sync.statuses_reconciled();
    tokio::time::timeout(DEADLINE, reconciled.wait_for(|done| *done >= generation))
        .await
        .expect("statuses reconciled in time")
        .expect("status writer running");
}

fn status_of(state: &ProxyState, resource: &str) -> (State, Vec<String>) {
    let snapshot = state.snapshot().expect("a snapshot");
    let status = snapshot
        .statuses
        .iter()
        .find(|status| status.resource == resource)
        .unwrap_or_else(|| panic!("no status for {resource}: {:#?}", snapshot.statuses));
    (status.state, status.reasons.clone())
}

/// The weights of the first route's destinations, by cluster name.
fn first_route_weights(state: &ProxyState) -> Vec<(String, u32)> {
    let snapshot = state.snapshot().expect("a snapshot");
    let route = &snapshot.table.virtual_hosts()[0].routes[0];
    let RouteAction::Forward(forward) = &route.action else {
        panic!("{route:?} does not forward")
    };
    forward
        .destinations
        .iter()
        .map(|(cluster, weight)| (cluster.name.clone(), weight))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn initial_lists_route_through_the_upstream_to_the_endpoint_slice() {
    let backend = Upstream::echo("colorgateway").await;
    let api = MockApi::start(colorgateway_setup(backend.port()));
    let state = proxy_state();
    let _sync = start_ingress(&api, &state).await;

    let snapshot = state.snapshot().expect("installed before start returns");
    assert_eq!(snapshot.generation, 1);
    assert!(
        snapshot.load_errors.is_empty(),
        "{:?}",
        snapshot.load_errors
    );
    let route = &snapshot.table.virtual_hosts()[0].routes[0];
    let RouteAction::Forward(forward) = &route.action else {
        panic!("{route:?}")
    };
    let (cluster, _) = forward.destinations.iter().next().expect("a destination");
    assert_eq!(cluster.endpoints, vec![backend.addr]);
    assert_eq!(
        status_of(&state, "VirtualService gloo-system/colorgateway").0,
        State::Accepted
    );

    let proxy = RunningProxy::start(state).await;
    let reply = get_url(&client(), &proxy.url("/appmesh/color")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["name"], "colorgateway");
    assert_eq!(reply.json()["target"], "/color");
    proxy.stop().await;
}

#[tokio::test]
async fn ready_stays_unavailable_until_every_kind_is_listed() {
    let backend = Upstream::echo("colorgateway").await;
    let mut setup = colorgateway_setup(backend.port());
    setup.held.insert(ENDPOINT_SLICES.to_owned());
    let mut api = MockApi::start(setup);
    let state = proxy_state();
    let proxy = RunningProxy::start(state.clone()).await;
    let starting = tokio::spawn(start(
        api.client.clone(),
        state.clone(),
        KubeOptions::new(Role::ingress()),
    ));
    let client = client();
    // All five kinds are asked for; four are answered, the slices are held back.
    let mut lists = HashSet::new();
    tokio::time::timeout(DEADLINE, async {
        while lists.len() < 5 {
            let seen = api.seen.recv().await.expect("mock API running");
            if seen.method == Method::GET && !seen.query.contains("watch=true") {
                lists.insert(seen.path);
            }
        }
    })
    .await
    .expect("every kind listed in time");
    let not_ready = get_url(&client, &proxy.admin_url("/ready")).await;
    assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(state.snapshot().is_none());

    api.release_list(ENDPOINT_SLICES);
    let sync = tokio::time::timeout(DEADLINE, starting)
        .await
        .expect("started in time")
        .expect("start task")
        .expect("started");
    let ready = get_url(&client, &proxy.admin_url("/ready")).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    drop(sync);
    proxy.stop().await;
}

#[tokio::test]
async fn a_watch_event_changing_weights_installs_a_new_generation() {
    let (blue, green) = (Upstream::echo("blue").await, Upstream::echo("green").await);
    let api = MockApi::start(
        Setup::default()
            .with(
                VIRTUAL_SERVICES,
                virtual_service("10", to_group("upstreamgroup-gateway")),
            )
            .with(UPSTREAMS, static_upstream("blue", blue.port()))
            .with(UPSTREAMS, static_upstream("green", green.port()))
            .with(
                UPSTREAM_GROUPS,
                upstream_group("40", [("blue", 80), ("green", 20)]),
            ),
    );
    let state = proxy_state();
    let _sync = start_ingress(&api, &state).await;
    assert_eq!(
        first_route_weights(&state),
        [
            ("blue_gloo-system".into(), 80),
            ("green_gloo-system".into(), 20)
        ]
    );

    api.event(
        UPSTREAM_GROUPS,
        "MODIFIED",
        upstream_group("41", [("blue", 50), ("green", 50)]),
    );
    let generation = wait_for_generation(&state, 1).await;
    assert_eq!(
        first_route_weights(&state),
        [
            ("blue_gloo-system".into(), 50),
            ("green_gloo-system".into(), 50)
        ]
    );
    let snapshot = state.snapshot().expect("snapshot");
    let group = snapshot
        .statuses
        .iter()
        .find(|status| status.resource == "UpstreamGroup gloo-system/upstreamgroup-gateway")
        .expect("group status");
    assert_eq!(group.resource_version.as_deref(), Some("41"));

    // Deleting the group leaves the route without a destination.
    api.event(
        UPSTREAM_GROUPS,
        "DELETED",
        upstream_group("42", [("blue", 50), ("green", 50)]),
    );
    wait_for_generation(&state, generation).await;
    assert_ne!(
        status_of(&state, "VirtualService gloo-system/colorgateway").0,
        State::Accepted
    );
}

#[tokio::test]
async fn statuses_are_patched_on_the_status_subresource_only_when_they_change() {
    let backend = Upstream::echo("colorgateway").await;
    let mut api = MockApi::start(colorgateway_setup(backend.port()));
    let state = proxy_state();
    let sync = start_ingress(&api, &state).await;

    let mut patches = vec![api.next_patch().await, api.next_patch().await];
    patches.sort_by(|a, b| a.path.cmp(&b.path));
    let [vs_patch, upstream_patch] = patches.as_slice() else {
        panic!("{patches:#?}")
    };
    assert_eq!(
        vs_patch.path,
        "/apis/gateway.solo.io/v1/namespaces/gloo-system/virtualservices/colorgateway/status"
    );
    assert_eq!(
        upstream_patch.path,
        "/apis/gloo.solo.io/v1/namespaces/gloo-system/upstreams/appmesh-demo-colorgateway-9080/status"
    );
    assert_eq!(
        vs_patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert!(
        vs_patch.query.contains("fieldManager=gateway-proxy"),
        "{}",
        vs_patch.query
    );
    assert_eq!(
        vs_patch.body,
        json!({"status": {"statuses": {"gloo-system": {
            "state": "Accepted", "reason": null, "reportedBy": "gateway"
        }}}})
    );
    wait_reconciled(&sync, 1).await;

    // The watch delivers our own write: the status now matches, so nothing is written again
    // (and the Upstream, whose write the watch has not delivered yet, is not written twice).
    let mut written = virtual_service("13", to_upstream("appmesh-demo-colorgateway-9080"));
    written["status"] =
        json!({"statuses": {"gloo-system": {"state": "Accepted", "reportedBy": "gateway"}}});
    api.event(VIRTUAL_SERVICES, "MODIFIED", written);
    let generation = wait_for_generation(&state, 1).await;
    wait_reconciled(&sync, generation).await;
    let again: Vec<Seen> = api
        .drain()
        .into_iter()
        .filter(|seen| seen.method == Method::PATCH)
        .collect();
    assert!(again.is_empty(), "patched again: {again:#?}");

    // A spec change that breaks the route is written as Warning or Rejected, with the reason.
    api.event(
        VIRTUAL_SERVICES,
        "MODIFIED",
        virtual_service("14", to_upstream("no-such-upstream")),
    );
    let patch = api.next_patch().await;
    let entry = &patch.body["status"]["statuses"]["gloo-system"];
    assert_ne!(entry["state"], "Accepted", "{patch:#?}");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("no-such-upstream")),
        "{patch:#?}"
    );
}

#[tokio::test]
async fn without_a_status_subresource_the_status_is_patched_on_the_object() {
    let backend = Upstream::echo("colorgateway").await;
    let mut setup = colorgateway_setup(backend.port());
    setup.no_status_subresource = true;
    let mut api = MockApi::start(setup);
    let state = proxy_state();
    let sync = start_ingress(&api, &state).await;
    wait_reconciled(&sync, 1).await;
    let patches: Vec<(String, Value)> = api
        .drain()
        .into_iter()
        .filter(|seen| seen.method == Method::PATCH)
        .map(|seen| (seen.path, seen.body))
        .collect();
    let vs = "/apis/gateway.solo.io/v1/namespaces/gloo-system/virtualservices/colorgateway";
    let upstream =
        "/apis/gloo.solo.io/v1/namespaces/gloo-system/upstreams/appmesh-demo-colorgateway-9080";
    let paths: Vec<&str> = patches.iter().map(|(path, _)| path.as_str()).collect();
    // The Upstream's CRD is another kind: it is tried on /status first too.
    assert_eq!(
        paths,
        [
            format!("{vs}/status"),
            vs.to_owned(),
            format!("{upstream}/status"),
            upstream.to_owned(),
        ]
    );
    assert_eq!(patches[0].1, patches[1].1);
    assert_eq!(
        patches[1].1["status"]["statuses"]["gloo-system"]["reportedBy"],
        "gateway"
    );

    // Known now: the next write goes straight to the object.
    api.event(
        VIRTUAL_SERVICES,
        "MODIFIED",
        virtual_service("16", to_upstream("no-such-upstream")),
    );
    let patch = api.next_patch().await;
    assert_eq!(patch.path, vs);
}

#[tokio::test]
async fn the_writer_namespace_names_the_status_entry() {
    let backend = Upstream::echo("colorgateway").await;
    let mut api = MockApi::start(colorgateway_setup(backend.port()));
    let state = proxy_state();
    let options = KubeOptions {
        writer_namespace: "colormesh-gw".into(),
        ..KubeOptions::new(Role::ingress())
    };
    let _sync = tokio::time::timeout(DEADLINE, start(api.client.clone(), state.clone(), options))
        .await
        .expect("in time")
        .expect("started");
    let patch = api.next_patch().await;
    let statuses = patch.body["status"]["statuses"]
        .as_object()
        .expect("statuses");
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["colormesh-gw"],
        "{patch:#?}"
    );
}

#[tokio::test]
async fn a_missing_crd_is_an_error_naming_the_kind() {
    let mut setup = colorgateway_setup(1);
    setup.missing.insert(UPSTREAM_GROUPS.to_owned());
    let api = MockApi::start(setup);
    let state = proxy_state();
    let error = tokio::time::timeout(
        DEADLINE,
        start(
            api.client.clone(),
            state.clone(),
            KubeOptions::new(Role::ingress()),
        ),
    )
    .await
    .expect("fails in time, no hang")
    .expect_err("UpstreamGroup is not served");
    assert!(
        matches!(&error, KubeSourceError::CrdMissing { kind, .. } if kind == "UpstreamGroup"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("UpstreamGroup (gloo.solo.io/v1)"),
        "{message}"
    );
    assert!(
        message.contains("kubectl apply -f ../shared/schemas/gloo/"),
        "{message}"
    );
    assert!(state.snapshot().is_none(), "nothing was installed");
}

#[tokio::test]
async fn a_malformed_object_is_a_load_error_and_its_last_good_version_is_served() {
    let backend = Upstream::echo("colorgateway").await;
    let mut api = MockApi::start(colorgateway_setup(backend.port()));
    let state = proxy_state();
    let sync = start_ingress(&api, &state).await;
    wait_reconciled(&sync, 1).await;
    api.drain();

    // The CRD schema lets this through; the model does not (a route needs an action).
    let mut malformed = virtual_service("15", Value::Null);
    malformed["spec"]["virtualHost"]["routes"][0]
        .as_object_mut()
        .expect("route")
        .remove("routeAction");
    api.event(VIRTUAL_SERVICES, "MODIFIED", malformed);
    wait_for_generation(&state, 1).await;

    let snapshot = state.snapshot().expect("snapshot");
    let [error] = snapshot.load_errors.as_slice() else {
        panic!("{:#?}", snapshot.load_errors)
    };
    assert_eq!(
        error.file,
        Path::new("kubernetes://VirtualService/gloo-system/colorgateway")
    );
    assert_eq!(error.line, Some(1));
    assert!(
        error
            .message
            .starts_with("VirtualService gloo-system/colorgateway: spec.virtualHost.routes[0]: "),
        "{}",
        error.message
    );
    assert!(error.message.contains("still served"), "{}", error.message);
    let (vs_state, reasons) = status_of(&state, "VirtualService gloo-system/colorgateway");
    assert_eq!(vs_state, State::Rejected, "{reasons:?}");

    let proxy = RunningProxy::start(state).await;
    let reply = get_url(&client(), &proxy.url("/appmesh/color")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["name"], "colorgateway");

    let patch = api.next_patch().await;
    assert!(patch.path.ends_with("/virtualservices/colorgateway/status"));
    assert_eq!(
        patch.body["status"]["statuses"]["gloo-system"]["state"],
        "Rejected"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_failed_status_patch_is_retried_after_the_next_reload_and_serving_continues() {
    let backend = Upstream::echo("colorgateway").await;
    let mut setup = Setup::default()
        .with(
            VIRTUAL_SERVICES,
            virtual_service("10", to_upstream("colorgateway")),
        )
        .with(UPSTREAMS, static_upstream("colorgateway", backend.port()))
        .with(SERVICES, service("colorgateway", 9080));
    setup.patch_replies = vec![StatusCode::INTERNAL_SERVER_ERROR, StatusCode::CONFLICT];
    let mut api = MockApi::start(setup);
    let state = proxy_state();
    let sync = start_ingress(&api, &state).await;
    let proxy = RunningProxy::start(state.clone()).await;
    let client = client();

    // Generation 1: both patches (VirtualService, Upstream) fail.
    api.next_patch().await;
    api.next_patch().await;
    wait_reconciled(&sync, 1).await;
    let reply = get_url(&client, &proxy.url("/appmesh/color")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "serving goes on: {}",
        reply.text()
    );

    // Any change reloads, and the failed statuses are written again (successfully now).
    api.event(SERVICES, "MODIFIED", service("colorgateway", 9080));
    let generation = wait_for_generation(&state, 1).await;
    let mut retried = vec![api.next_patch().await.path, api.next_patch().await.path];
    retried.sort();
    assert_eq!(
        retried,
        [
            "/apis/gateway.solo.io/v1/namespaces/gloo-system/virtualservices/colorgateway/status",
            "/apis/gloo.solo.io/v1/namespaces/gloo-system/upstreams/colorgateway/status",
        ]
    );
    wait_reconciled(&sync, generation).await;

    // Written once successfully, they are not written again.
    api.event(SERVICES, "MODIFIED", service("colorgateway", 9080));
    let generation = wait_for_generation(&state, generation).await;
    wait_reconciled(&sync, generation).await;
    let again: Vec<Seen> = api
        .drain()
        .into_iter()
        .filter(|seen| seen.method == Method::PATCH)
        .collect();
    assert!(again.is_empty(), "{again:#?}");
    let reply = get_url(&client, &proxy.url("/appmesh/color")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    proxy.stop().await;
}

#[tokio::test]
async fn watch_namespaces_restrict_every_namespaced_list() {
    let backend = Upstream::echo("colorgateway").await;
    let mut api = MockApi::start(colorgateway_setup(backend.port()));
    let state = proxy_state();
    let options = KubeOptions {
        watch_namespaces: vec!["gloo-system".into(), "appmesh-demo".into()],
        ..KubeOptions::new(Role::ingress())
    };
    let _sync = tokio::time::timeout(DEADLINE, start(api.client.clone(), state.clone(), options))
        .await
        .expect("in time")
        .expect("started");
    let lists: HashSet<String> = api
        .drain()
        .into_iter()
        .filter(|seen| seen.method == Method::GET && !seen.query.contains("watch=true"))
        .map(|seen| seen.path)
        .collect();
    let mut expected = HashSet::new();
    for namespace in ["gloo-system", "appmesh-demo"] {
        expected.insert(format!(
            "/apis/gateway.solo.io/v1/namespaces/{namespace}/virtualservices"
        ));
        expected.insert(format!(
            "/apis/gloo.solo.io/v1/namespaces/{namespace}/upstreams"
        ));
        expected.insert(format!(
            "/apis/gloo.solo.io/v1/namespaces/{namespace}/upstreamgroups"
        ));
        expected.insert(format!("/api/v1/namespaces/{namespace}/services"));
        expected.insert(format!(
            "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        ));
        for plural in ["gateways", "httproutes", "referencegrants"] {
            expected.insert(format!(
                "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/{plural}"
            ));
        }
    }
    // Cluster-scoped kinds are listed once, whatever the namespaces.
    expected.insert("/apis/gateway.networking.k8s.io/v1/gatewayclasses".to_owned());
    expected.insert("/api/v1/namespaces".to_owned());
    assert_eq!(lists, expected);
    // The objects of both namespaces were read: the route reaches the slice's endpoint.
    let proxy = RunningProxy::start(state).await;
    let reply = get_url(&client(), &proxy.url("/appmesh/color")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    proxy.stop().await;
}

#[tokio::test]
async fn the_sidecar_reads_app_mesh_kinds_and_writes_no_status() {
    let backend = Upstream::echo("colorteller").await;
    let mut setup = Setup::default();
    for file in [
        "namespace.yaml",
        "mesh.yaml",
        "colorgateway.yaml",
        "colorteller.yaml",
        "tcpecho.yaml",
    ] {
        let text = manifest(&format!("colorapp/{file}"));
        let parsed = model::parse_documents(&text, Path::new(file));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        for loaded in parsed.resources {
            let collection = match loaded.resource.kind() {
                model::ResourceKind::Mesh => "/apis/appmesh.k8s.aws/v1beta2/meshes",
                model::ResourceKind::VirtualNode => "/apis/appmesh.k8s.aws/v1beta2/virtualnodes",
                model::ResourceKind::AppMeshVirtualService => {
                    "/apis/appmesh.k8s.aws/v1beta2/virtualservices"
                }
                model::ResourceKind::VirtualRouter => {
                    "/apis/appmesh.k8s.aws/v1beta2/virtualrouters"
                }
                model::ResourceKind::Service => SERVICES,
                // The Mesh selects the namespace by its labels.
                model::ResourceKind::Namespace => "/api/v1/namespaces",
                _ => continue,
            };
            let mut object = serde_json::to_value(&loaded.resource).expect("json");
            object["metadata"]["resourceVersion"] = json!("1");
            setup = setup.with(collection, object);
        }
    }
    for teller in ["colorteller", "colorteller-blue", "colorteller-black"] {
        setup = setup.with(ENDPOINT_SLICES, endpoint_slice(teller, backend.port()));
    }
    let mut api = MockApi::start(setup);
    let state = proxy_state();
    let role = Role::Sidecar {
        node: "colorgateway".into(),
        namespace: "appmesh-demo".into(),
    };
    let sync = tokio::time::timeout(
        DEADLINE,
        start(api.client.clone(), state.clone(), KubeOptions::new(role)),
    )
    .await
    .expect("in time")
    .expect("started");

    let snapshot = state.snapshot().expect("snapshot");
    assert!(
        snapshot.load_errors.is_empty(),
        "{:?}",
        snapshot.load_errors
    );
    for status in &snapshot.statuses {
        assert_eq!(status.state, State::Accepted, "{status:?}");
    }
    let proxy = RunningProxy::start(state.clone()).await;
    let reply = get(&client(), &proxy.url("/"), "colorteller.appmesh-demo:9080").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["name"], "colorteller");

    // A change reloads; no status is ever written for App Mesh objects.
    api.event(
        ENDPOINT_SLICES,
        "DELETED",
        endpoint_slice("colorteller", backend.port()),
    );
    wait_for_generation(&state, 1).await;
    assert_eq!(*sync.statuses_reconciled().borrow(), 0);
    let seen = api.drain();
    assert!(
        seen.iter()
            .any(|seen| seen.path == "/apis/appmesh.k8s.aws/v1beta2/meshes"),
        "{seen:#?}"
    );
    assert!(
        seen.iter().all(|seen| seen.method == Method::GET),
        "{seen:#?}"
    );
    proxy.stop().await;
}
