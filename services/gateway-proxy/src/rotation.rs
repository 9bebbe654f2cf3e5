//! Round-robin positions over the clusters' endpoints, kept beside a snapshot rather than in
//! its table: the table stays pure data (built in the `routing` crate) and a reload starts every
//! cluster's rotation afresh, as a new Envoy cluster does.
//!
//! Resolved once per installed table, indexed like it, so the request path finds its position
//! by index and advances it with one atomic add: no lock, no lookup by name.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::uri::Authority;
use routing::table::{Cluster, RouteAction, RouteTable};

/// One cluster's round-robin position.
#[derive(Debug, Default)]
pub(crate) struct Rotation {
    turns: AtomicUsize,
}

impl Rotation {
    /// The endpoint whose turn it is, advancing the rotation; `None` (and no advance) when the
    /// cluster has no endpoints.
    pub(crate) fn next_endpoint<'c>(&self, cluster: &'c Cluster) -> Option<&'c Authority> {
        cluster.endpoint_authority(0)?;
        let turn = self.turns.fetch_add(1, Ordering::Relaxed);
        cluster.endpoint_authority(turn)
    }
}

/// The rotations of one table: per virtual host, per route, per weighted destination. Routes
/// that share a cluster (the same `Arc<Cluster>`) share its rotation, so the cluster's endpoints
/// take turns across all of them.
#[derive(Debug, Default)]
pub(crate) struct EndpointRotations {
    virtual_hosts: Vec<Vec<Vec<Arc<Rotation>>>>,
}

impl EndpointRotations {
    pub(crate) fn for_table(table: &RouteTable) -> Self {
        let mut by_cluster: HashMap<*const Cluster, Arc<Rotation>> = HashMap::new();
        let virtual_hosts = table
            .virtual_hosts()
            .iter()
            .map(|virtual_host| {
                virtual_host
                    .routes
                    .iter()
                    .map(|route| match &route.action {
                        RouteAction::Forward(forward) => forward
                            .destinations
                            .iter()
                            .map(|(cluster, _)| {
                                Arc::clone(by_cluster.entry(Arc::as_ptr(cluster)).or_default())
                            })
                            .collect(),
                        RouteAction::Respond { .. } | RouteAction::Redirect(_) => Vec::new(),
                    })
                    .collect()
            })
            .collect();
        Self { virtual_hosts }
    }

    pub(crate) fn get(
        &self,
        virtual_host: usize,
        route: usize,
        destination: usize,
    ) -> Option<&Rotation> {
        self.virtual_hosts
            .get(virtual_host)?
            .get(route)?
            .get(destination)
            .map(Arc::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http::StatusCode;
    use routing::table::{
        Fallback, ForwardAction, HeaderEdits, PathRewrite, Route, RouteMatcher, VirtualHost,
        WeightedClusters,
    };

    use super::*;

    fn cluster(name: &str, ports: &[u16]) -> Arc<Cluster> {
        let endpoints: Vec<SocketAddr> = ports
            .iter()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], *port)))
            .collect();
        Arc::new(Cluster::new(name, endpoints))
    }

    fn forward_to(name: &str, destinations: Vec<(Arc<Cluster>, u32)>) -> Route {
        Route {
            name: name.to_owned(),
            matcher: RouteMatcher::any(),
            action: RouteAction::Forward(ForwardAction {
                destinations: WeightedClusters::new(destinations).expect("weights"),
                rewrite: PathRewrite::None,
                timeout: None,
                retry: None,
                request_headers: HeaderEdits::default(),
                response_headers: HeaderEdits::default(),
                host_rewrite: None,
            }),
        }
    }

    fn next(
        rotations: &EndpointRotations,
        route: usize,
        destination: usize,
        of: &Cluster,
    ) -> String {
        rotations
            .get(0, route, destination)
            .and_then(|rotation| rotation.next_endpoint(of))
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    #[test]
    fn routes_sharing_a_cluster_share_its_rotation() {
        let shared = cluster("shared", &[1, 2, 3]);
        let other = cluster("other", &[9]);
        let empty = cluster("empty", &[]);
        let table = RouteTable::new(
            vec![VirtualHost {
                name: "vh".to_owned(),
                domains: vec!["*".to_owned()],
                routes: vec![
                    forward_to("a", vec![(Arc::clone(&shared), 1), (Arc::clone(&other), 1)]),
                    forward_to("b", vec![(Arc::clone(&shared), 1), (Arc::clone(&empty), 1)]),
                    Route {
                        name: "direct".to_owned(),
                        matcher: RouteMatcher::any(),
                        action: RouteAction::Respond {
                            status: StatusCode::OK,
                            body: Bytes::new(),
                        },
                    },
                ],
            }],
            Fallback::NotFound,
        )
        .expect("valid table");
        let rotations = EndpointRotations::for_table(&table);
        assert_eq!(next(&rotations, 0, 0, &shared), "127.0.0.1:1");
        assert_eq!(next(&rotations, 1, 0, &shared), "127.0.0.1:2");
        assert_eq!(next(&rotations, 0, 0, &shared), "127.0.0.1:3");
        assert_eq!(next(&rotations, 1, 0, &shared), "127.0.0.1:1");
        assert_eq!(next(&rotations, 0, 1, &other), "127.0.0.1:9");
        assert_eq!(next(&rotations, 1, 1, &empty), "");
        assert!(
            rotations.get(0, 2, 0).is_none(),
            "a direct response has no destinations"
        );
        assert!(rotations.get(1, 0, 0).is_none());
    }
}
