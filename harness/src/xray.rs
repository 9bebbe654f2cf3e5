//! The walkthrough's X-Ray, made visible: a stand-in for the X-Ray daemon, the trace check and
//! the service map.
//!
//! - [`Collector`]: a UDP socket on a free loopback port (`127.0.0.1:0`) that reads every
//!   datagram the services and the ingress send (`AWS_XRAY_DAEMON_ADDRESS`, the ingress's
//!   `--xray-daemon`) and keeps the segments.
//! - [`check_traces`]: the exact trace check. Every judged colorgateway reply names its trace
//!   (`X-Amzn-Trace-Id: Root=…`); its trace must hold a connected chain: the ingress's segment
//!   (when the gateway under test traces), the colorgateway's segment whose parent is that
//!   ingress segment, a `remote` subsegment for the teller call, and the segment of the
//!   colorteller that answered (`<STAGE>-colorteller-<color>` with the reply's color) whose
//!   parent is that subsegment.
//! - [`ServiceMap`]: what the X-Ray console's service map shows: a node per service (the
//!   colorgateways told apart by the ingress's `upstream_cluster`), requests, errors and latency
//!   per node, and the calls between them.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use service_kit::xray::{Segment, TraceHeader};
use tokio::{net::UdpSocket, task::JoinHandle};

/// The name the local backend gives the ingress's segments.
pub const INGRESS_SEGMENT: &str = "ingress";

/// Why the daemon stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("cannot bind the X-Ray daemon stand-in on 127.0.0.1:0")]
    Bind(#[source] std::io::Error),
}

#[derive(Debug, Default)]
struct Collected {
    segments: Vec<Segment>,
    unreadable: u64,
}

/// The X-Ray daemon stand-in: collects segments until dropped.
#[derive(Debug)]
pub struct Collector {
    addr: SocketAddr,
    collected: Arc<Mutex<Collected>>,
    task: JoinHandle<()>,
    /// Whether the gateway under test sends an ingress segment of its own.
    pub ingress_traced: bool,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    /// Binds `127.0.0.1:0` and starts reading datagrams.
    pub async fn start(ingress_traced: bool) -> Result<Self, CollectorError> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(CollectorError::Bind)?;
        // A large receive buffer: segments arrive in bursts of a few per request.
        let socket = socket2::Socket::from(socket);
        if let Err(error) = socket.set_recv_buffer_size(8 << 20) {
            tracing::debug!(%error, "keeping the default UDP receive buffer");
        }
        let socket = std::net::UdpSocket::from(socket);
        socket.set_nonblocking(true).map_err(CollectorError::Bind)?;
        let socket = UdpSocket::from_std(socket).map_err(CollectorError::Bind)?;
        let addr = socket.local_addr().map_err(CollectorError::Bind)?;
        let collected = Arc::new(Mutex::new(Collected::default()));
        let sink = Arc::clone(&collected);
        let task = tokio::spawn(async move {
            let mut buffer = vec![0_u8; 64 * 1024];
            while let Ok(read) = socket.recv(&mut buffer).await {
                let segment = Segment::from_datagram(&buffer[..read]);
                let mut collected = sink.lock().unwrap_or_else(PoisonError::into_inner);
                match segment {
                    Ok(segment) => collected.segments.push(segment),
                    Err(_) => collected.unreadable += 1,
                }
            }
        });
        Ok(Self {
            addr,
            collected,
            task,
            ingress_traced,
        })
    }

    /// The address to give as `AWS_XRAY_DAEMON_ADDRESS`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every segment received so far.
    pub fn segments(&self) -> Vec<Segment> {
        self.collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .segments
            .clone()
    }

    /// Checks `replies` against the segments, waiting up to `timeout` for segments still in
    /// flight (UDP from other processes: a reply can arrive before its segments).
    pub async fn check(&self, replies: &[TracedReply], timeout: Duration) -> TraceReport {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Checked under the lock: cloning every segment of the run on each poll would copy
            // tens of thousands of documents per traffic step.
            let report = {
                let collected = self
                    .collected
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                check_traces(replies, &collected.segments, self.ingress_traced)
            };
            if report.connected == report.judged || tokio::time::Instant::now() >= deadline {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A judged colorgateway reply: the trace its header names and the color it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedReply {
    /// `Root` of the reply's `X-Amzn-Trace-Id`; `None` when the reply had none.
    pub root: Option<String>,
    pub color: String,
}

impl TracedReply {
    /// Reads the trace root from a reply's headers.
    pub fn new(headers: &http::HeaderMap, color: String) -> Self {
        Self {
            root: TraceHeader::from_headers(headers).root,
            color,
        }
    }
}

/// The trace check's result for one traffic step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceReport {
    /// Judged replies.
    pub judged: u64,
    /// Of those, the replies whose trace was connected from the ingress to their colorteller.
    pub connected: u64,
    /// Whether the chain had to start at the ingress's own segment.
    pub ingress_traced: bool,
    /// The first few broken traces, each with what was missing.
    pub failures: Vec<String>,
}

impl TraceReport {
    pub fn passed(&self) -> bool {
        self.connected == self.judged
    }
}

/// How many broken traces a report names.
const MAX_NAMED_FAILURES: usize = 5;

/// The exact trace check (see the module docs).
pub fn check_traces(
    replies: &[TracedReply],
    segments: &[Segment],
    ingress_traced: bool,
) -> TraceReport {
    let mut by_trace: HashMap<&str, Vec<&Segment>> = HashMap::new();
    for segment in segments {
        if let Some(trace) = segment.trace_id.as_deref() {
            by_trace.entry(trace).or_default().push(segment);
        }
    }
    let mut report = TraceReport {
        judged: replies.len() as u64,
        ingress_traced,
        ..TraceReport::default()
    };
    for reply in replies {
        let result = match &reply.root {
            None => Err("the reply has no X-Amzn-Trace-Id".to_owned()),
            Some(root) => connected(
                by_trace.get(root.as_str()).map_or(&[][..], Vec::as_slice),
                &reply.color,
                ingress_traced,
            )
            .map_err(|missing| format!("trace {root} ({}): {missing}", reply.color)),
        };
        match result {
            Ok(()) => report.connected += 1,
            Err(failure) if report.failures.len() < MAX_NAMED_FAILURES => {
                report.failures.push(failure)
            }
            Err(_) => {}
        }
    }
    report
}

/// Whether one trace's segments connect the ingress to the teller of `color`.
fn connected(segments: &[&Segment], color: &str, ingress_traced: bool) -> Result<(), String> {
    if segments.is_empty() {
        return Err("no segment arrived".to_owned());
    }
    let teller_suffix = format!("-colorteller-{color}");
    let tellers: Vec<&&Segment> = segments
        .iter()
        .filter(|s| s.name.ends_with(&teller_suffix))
        .collect();
    if tellers.is_empty() {
        return Err(format!("no segment named *{teller_suffix}"));
    }
    let gateways: Vec<&&Segment> = segments
        .iter()
        .filter(|s| s.name.ends_with("-gateway"))
        .collect();
    if gateways.is_empty() {
        return Err("no colorgateway segment (*-gateway)".to_owned());
    }
    let ingresses: Vec<&&Segment> = segments
        .iter()
        .filter(|s| s.name == INGRESS_SEGMENT)
        .collect();
    for gateway in &gateways {
        let from_ingress = if ingress_traced {
            ingresses
                .iter()
                .any(|ingress| gateway.parent_id.as_deref() == Some(ingress.id.as_str()))
        } else {
            true
        };
        if !from_ingress {
            continue;
        }
        let to_teller = gateway.subsegments.iter().any(|call| {
            call.namespace.as_deref() == Some("remote")
                && tellers
                    .iter()
                    .any(|teller| teller.parent_id.as_deref() == Some(call.id.as_str()))
        });
        if to_teller {
            return Ok(());
        }
    }
    if ingress_traced && ingresses.is_empty() {
        return Err("no ingress segment".to_owned());
    }
    if ingress_traced
        && !gateways.iter().any(|g| {
            ingresses
                .iter()
                .any(|i| g.parent_id.as_deref() == Some(i.id.as_str()))
        })
    {
        return Err("the colorgateway segment's parent is not the ingress segment".to_owned());
    }
    Err(format!(
        "no teller call of the colorgateway is the parent of the *{teller_suffix} segment"
    ))
}

/// A service of the map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapNode {
    /// The segment name, with the ingress's upstream cluster for the services behind it.
    pub name: String,
    /// 0 for the ingress (or whatever has no parent segment), then one more per hop.
    pub depth: u32,
    pub requests: u64,
    /// 4xx replies.
    pub errors: u64,
    /// 5xx replies.
    pub faults: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

/// Calls from one service to another.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapEdge {
    pub from: String,
    pub to: String,
    pub requests: u64,
}

/// The service map of a run, from every segment collected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMap {
    pub nodes: Vec<MapNode>,
    pub edges: Vec<MapEdge>,
    /// Segments received in all.
    pub segments: u64,
}

impl ServiceMap {
    /// Builds the map: each segment is a request to its node; a segment whose parent is
    /// another segment (or one of its subsegments) is a call along an edge.
    pub fn from_segments(segments: &[Segment]) -> Self {
        // Where each id lives: the segment it is, or the segment owning the subsegment.
        let mut owner: HashMap<(&str, &str), usize> = HashMap::new();
        for (index, segment) in segments.iter().enumerate() {
            let trace = segment.trace_id.as_deref().unwrap_or("");
            owner.insert((trace, segment.id.as_str()), index);
            for call in &segment.subsegments {
                owner.insert((trace, call.id.as_str()), index);
            }
        }
        let parent_of = |segment: &Segment| {
            let trace = segment.trace_id.as_deref().unwrap_or("");
            segment
                .parent_id
                .as_deref()
                .and_then(|parent| owner.get(&(trace, parent)).copied())
        };
        // Names: a segment under the ingress takes the ingress's upstream cluster.
        let names: Vec<String> = segments
            .iter()
            .map(|segment| {
                let cluster = parent_of(segment)
                    .map(|parent| &segments[parent])
                    .filter(|parent| parent.name == INGRESS_SEGMENT)
                    .and_then(|parent| parent.annotations.get("upstream_cluster"))
                    .and_then(|cluster| cluster.as_str());
                match cluster {
                    Some(cluster) => format!("{} ({cluster})", segment.name),
                    None => segment.name.clone(),
                }
            })
            .collect();
        let depth = |mut index: usize| {
            let mut depth = 0;
            while let Some(parent) = parent_of(&segments[index]) {
                depth += 1;
                index = parent;
                if depth > 16 {
                    break;
                }
            }
            depth
        };
        let mut nodes: BTreeMap<&str, (MapNode, Vec<f64>)> = BTreeMap::new();
        let mut edges: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for (index, segment) in segments.iter().enumerate() {
            let name = names[index].as_str();
            let (node, latencies) = nodes.entry(name).or_insert_with(|| {
                (
                    MapNode {
                        name: name.to_owned(),
                        ..MapNode::default()
                    },
                    Vec::new(),
                )
            });
            // The deepest place the service was seen: a teller also called outside a trace
            // (a readiness probe) stays in its column.
            node.depth = node.depth.max(depth(index));
            node.requests += 1;
            node.errors += u64::from(segment.error);
            node.faults += u64::from(segment.fault);
            latencies.push((segment.end_time - segment.start_time).max(0.0) * 1000.0);
            if let Some(parent) = parent_of(segment) {
                *edges.entry((names[parent].as_str(), name)).or_default() += 1;
            }
        }
        let nodes = nodes
            .into_values()
            .map(|(mut node, mut latencies)| {
                latencies.sort_by(f64::total_cmp);
                let at = |q: f64| {
                    let rank = ((latencies.len() as f64 * q).ceil() as usize).max(1);
                    latencies[rank.min(latencies.len()) - 1]
                };
                node.p50_ms = at(0.5);
                node.p99_ms = at(0.99);
                node.mean_ms = latencies.iter().sum::<f64>() / latencies.len() as f64;
                node
            })
            .collect();
        let edges = edges
            .into_iter()
            .map(|((from, to), requests)| MapEdge {
                from: from.to_owned(),
                to: to.to_owned(),
                requests,
            })
            .collect();
        Self {
            nodes,
            edges,
            segments: segments.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(name: &str, id: &str, trace: &str, parent: Option<&str>) -> Segment {
        Segment {
            name: name.into(),
            id: id.into(),
            trace_id: Some(trace.into()),
            parent_id: parent.map(Into::into),
            start_time: 10.0,
            end_time: 10.002,
            ..Segment::default()
        }
    }

    fn call(id: &str) -> Segment {
        Segment {
            name: "colorteller.appmesh-demo:9080".into(),
            id: id.into(),
            namespace: Some("remote".into()),
            ..Segment::default()
        }
    }

    /// ingress → default-gateway (with call c1) → default-colorteller-blue, in trace t1.
    fn chain(trace: &str, color: &str, cluster: &str) -> Vec<Segment> {
        let mut ingress = segment(INGRESS_SEGMENT, &format!("{trace}i"), trace, None);
        ingress
            .annotations
            .insert("upstream_cluster".into(), cluster.into());
        let mut gateway = segment(
            "default-gateway",
            &format!("{trace}g"),
            trace,
            Some(&format!("{trace}i")),
        );
        gateway.subsegments.push(call(&format!("{trace}c")));
        let teller = segment(
            &format!("default-colorteller-{color}"),
            &format!("{trace}t"),
            trace,
            Some(&format!("{trace}c")),
        );
        vec![ingress, gateway, teller]
    }

    fn reply(root: &str, color: &str) -> TracedReply {
        TracedReply {
            root: Some(root.into()),
            color: color.into(),
        }
    }

    #[test]
    fn a_connected_chain_passes() {
        let segments = chain("t1", "blue", "cg");
        let report = check_traces(&[reply("t1", "blue")], &segments, true);
        assert_eq!((report.judged, report.connected), (1, 1), "{report:?}");
        assert!(report.passed());
    }

    #[test]
    fn each_broken_link_is_named() {
        let whole = chain("t1", "blue", "cg");
        let check = |segments: &[Segment], reply: TracedReply| {
            let report = check_traces(&[reply], segments, true);
            assert_eq!(report.connected, 0);
            report.failures[0].clone()
        };
        assert!(
            check(&whole, reply("t1", "white")).contains("no segment named *-colorteller-white")
        );
        assert!(check(&whole, reply("t2", "blue")).contains("no segment arrived"));
        let no_header = check_traces(
            &[TracedReply {
                root: None,
                color: "blue".into(),
            }],
            &whole,
            true,
        );
        assert_eq!(no_header.failures, ["the reply has no X-Amzn-Trace-Id"]);
        let mut orphan = whole.clone();
        orphan[2].parent_id = Some("elsewhere".into());
        assert!(check(&orphan, reply("t1", "blue")).contains("no teller call"));
        let mut detached = whole.clone();
        detached[1].parent_id = None;
        assert!(check(&detached, reply("t1", "blue")).contains("not the ingress segment"));
        let without_ingress = whole[1..].to_vec();
        assert!(check(&without_ingress, reply("t1", "blue")).contains("no ingress segment"));
        // A gateway that does not trace: the chain starts at the colorgateway.
        let report = check_traces(&[reply("t1", "blue")], &without_ingress, false);
        assert_eq!(report.connected, 1);
    }

    #[test]
    fn the_map_counts_services_and_calls() {
        let mut segments = chain("t1", "blue", "cg");
        segments.extend(chain("t2", "white", "cg"));
        segments.extend(chain("t3", "blue", "cgv2"));
        segments[5].fault = true;
        // A teller answering outside any trace (a probe) first: it keeps the teller's column.
        segments.insert(0, segment("default-colorteller-blue", "p", "t0", None));
        let map = ServiceMap::from_segments(&segments);
        let node = |name: &str| map.nodes.iter().find(|n| n.name == name).unwrap();
        assert_eq!(node("ingress").requests, 3);
        assert_eq!(node("ingress").depth, 0);
        assert_eq!(node("default-gateway (cg)").requests, 2);
        assert_eq!(node("default-gateway (cgv2)").requests, 1);
        assert_eq!(node("default-gateway (cg)").depth, 1);
        assert_eq!(node("default-colorteller-blue").requests, 3);
        assert_eq!(node("default-colorteller-blue").depth, 2);
        assert_eq!(node("default-colorteller-white").faults, 1);
        assert!((node("ingress").p50_ms - 2.0).abs() < 1e-6);
        let edge = |from: &str, to: &str| {
            map.edges
                .iter()
                .find(|e| e.from == from && e.to == to)
                .map_or(0, |e| e.requests)
        };
        assert_eq!(edge("ingress", "default-gateway (cg)"), 2);
        assert_eq!(edge("default-gateway (cg)", "default-colorteller-blue"), 1);
        assert_eq!(
            edge("default-gateway (cgv2)", "default-colorteller-blue"),
            1
        );
        assert_eq!(map.segments, 10);
    }

    #[tokio::test]
    async fn the_collector_reads_datagrams_from_loopback() {
        let collector = Collector::start(true).await.unwrap();
        assert!(collector.addr().ip().is_loopback());
        assert_ne!(collector.addr().port(), 0);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let segments = chain("t1", "blue", "cg");
        for segment in &segments {
            sender
                .send_to(&segment.to_datagram(), collector.addr())
                .unwrap();
        }
        sender.send_to(b"junk", collector.addr()).unwrap();
        let report = collector
            .check(&[reply("t1", "blue")], Duration::from_secs(10))
            .await;
        assert!(report.passed(), "{report:?}");
    }
}
