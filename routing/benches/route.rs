//! Route lookup + rewrite + weighted pick over the walkthrough's route set: the per-request work
//! the data plane does before touching the network.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use routing::table::{
    Cluster, Fallback, ForwardAction, HeaderEdits, PathMatcher, PathRewrite, RequestView, Route,
    RouteAction, RouteDecision, RouteMatcher, RouteTable, VirtualHost, WeightedClusters,
};

fn cluster(name: &str, address: &str) -> Arc<Cluster> {
    let endpoint: SocketAddr = address.parse().expect("address");
    Arc::new(Cluster::new(name, vec![endpoint]))
}

fn forward(destinations: Vec<(Arc<Cluster>, u32)>, rewrite: PathRewrite) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        destinations: WeightedClusters::new(destinations).expect("weights"),
        rewrite,
        timeout: Some(Duration::from_secs(15)),
        retry: None,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        host_rewrite: None,
    })
}

/// Gloo's table after the canary step: `/appmesh/color` -> `/color`, 80/20 over colorgateway v1/v2.
fn ingress_table() -> RouteTable {
    let route = Route {
        name: "gloo-system/colorgateway/0".to_owned(),
        matcher: RouteMatcher::path(PathMatcher::Prefix("/appmesh/color".to_owned())),
        action: forward(
            vec![
                (
                    cluster(
                        "appmesh-demo-colorgateway-9080_gloo-system",
                        "10.0.0.1:9080",
                    ),
                    80,
                ),
                (
                    cluster(
                        "appmesh-demo-colorgatewayv2-9080_gloo-system",
                        "10.0.0.2:9080",
                    ),
                    20,
                ),
            ],
            PathRewrite::Prefix("/color".to_owned()),
        ),
    };
    RouteTable::new(
        vec![VirtualHost {
            name: "gloo-system_colorgateway".to_owned(),
            domains: vec!["*".to_owned()],
            routes: vec![route],
        }],
        Fallback::NotFound,
    )
    .expect("table")
}

/// The colorgateway sidecar's table: colorteller split three ways, tcpecho, and DROP_ALL.
fn sidecar_table() -> RouteTable {
    let colorteller = Route {
        name: "colorteller-router/color-route".to_owned(),
        matcher: RouteMatcher::any(),
        action: forward(
            vec![
                (cluster("colorteller", "10.0.1.1:9080"), 1),
                (cluster("colorteller-blue", "10.0.1.2:9080"), 1),
                (cluster("colorteller-black", "10.0.1.3:9080"), 1),
            ],
            PathRewrite::None,
        ),
    };
    let tcpecho = Route {
        name: "tcpecho".to_owned(),
        matcher: RouteMatcher::any(),
        action: forward(
            vec![(cluster("tcpecho", "10.0.2.1:2701"), 1)],
            PathRewrite::None,
        ),
    };
    RouteTable::new(
        vec![
            VirtualHost {
                name: "colorteller.appmesh-demo".to_owned(),
                domains: vec![
                    "colorteller.appmesh-demo".to_owned(),
                    "colorteller.appmesh-demo:9080".to_owned(),
                ],
                routes: vec![colorteller],
            },
            VirtualHost {
                name: "tcpecho.appmesh-demo".to_owned(),
                domains: vec![
                    "tcpecho.appmesh-demo".to_owned(),
                    "tcpecho.appmesh-demo:2701".to_owned(),
                ],
                routes: vec![tcpecho],
            },
        ],
        Fallback::NotFound,
    )
    .expect("table")
}

/// Routes, rewrites and picks like the data plane does; returns something derived from each step.
fn route_once(table: &RouteTable, request: &RequestView<'_>, rng: &mut SmallRng) -> usize {
    match table.route(request) {
        RouteDecision::Matched { entry, .. } => match &entry.action {
            RouteAction::Forward(forward) => {
                let rewritten =
                    forward
                        .rewrite
                        .apply(&entry.matcher.path, request.path, request.query);
                let cluster = forward.destinations.pick(rng.next_u64());
                rewritten.map_or(0, |path| path.len()) + cluster.name.len()
            }
            RouteAction::Respond { .. } | RouteAction::Redirect(_) => 1,
        },
        RouteDecision::NoRoute { .. } | RouteDecision::NoVirtualHost(_) => 0,
    }
}

fn bench_routing(c: &mut Criterion) {
    let ingress = ingress_table();
    let sidecar = sidecar_table();
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static("curl/8"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    let mut rng = SmallRng::seed_from_u64(1);
    let view = |authority, path, query| RequestView {
        authority,
        path,
        query,
        method: &Method::GET,
        headers: &headers,
    };

    let color = view(
        "a1b2.elb.amazonaws.com",
        "/appmesh/color/clear",
        Some("x=1"),
    );
    c.bench_function("ingress /appmesh/color rewrite + 80/20 pick", |b| {
        b.iter(|| route_once(black_box(&ingress), black_box(&color), &mut rng))
    });
    let miss = view("a1b2.elb.amazonaws.com", "/other", None);
    c.bench_function("ingress miss (404)", |b| {
        b.iter(|| route_once(black_box(&ingress), black_box(&miss), &mut rng))
    });
    let teller = view("colorteller.appmesh-demo:9080", "/", None);
    c.bench_function("sidecar colorteller:9080 3-way pick", |b| {
        b.iter(|| route_once(black_box(&sidecar), black_box(&teller), &mut rng))
    });
    let unknown = view("example.com:80", "/", None);
    c.bench_function("sidecar unknown host (DROP_ALL)", |b| {
        b.iter(|| route_once(black_box(&sidecar), black_box(&unknown), &mut rng))
    });
}

criterion_group!(benches, bench_routing);
criterion_main!(benches);
