//! Service hostnames as App Mesh and Kubernetes clients write them: `colorteller`,
//! `colorteller.appmesh-demo`, `colorteller.appmesh-demo.svc`,
//! `colorteller.appmesh-demo.svc.cluster.local`, each with an optional `:port`.

use std::fmt;

/// A hostname resolved to a Kubernetes service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceHost {
    /// Service name.
    pub service: String,
    /// Service namespace.
    pub namespace: String,
    /// Port, when the text had one.
    pub port: Option<u16>,
}

/// Why a hostname does not name a Kubernetes service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host:?} is not a Kubernetes service host: {reason}")]
pub struct ServiceHostError {
    /// The text given.
    pub host: String,
    /// What is wrong.
    pub reason: String,
}

impl ServiceHost {
    /// Parses `service[.namespace[.svc[.<cluster domain>]]][:port]`; a bare service name lives in
    /// `default_namespace`. Names are case-insensitive and returned lowercased.
    pub fn parse(host: &str, default_namespace: &str) -> Result<Self, ServiceHostError> {
        let fail = |reason: String| ServiceHostError {
            host: host.to_owned(),
            reason,
        };
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| fail(format!("invalid port {port:?}")))?;
                (name, Some(port))
            }
            None => (host, None),
        };
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let labels: Vec<&str> = name.split('.').collect();
        for label in &labels {
            let valid = !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err(fail(format!("{label:?} is not a valid DNS label")));
            }
        }
        let namespace =
            match labels.as_slice() {
                [_] => default_namespace.to_owned(),
                [_, namespace] => (*namespace).to_owned(),
                [_, namespace, "svc", ..] => (*namespace).to_owned(),
                _ => return Err(fail(
                    "expected service, service.namespace or service.namespace.svc[.cluster-domain]"
                        .into(),
                )),
            };
        Ok(ServiceHost {
            service: labels[0].to_owned(),
            namespace,
            port,
        })
    }

    /// The cluster-local name `service.namespace.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.service, self.namespace)
    }
}

/// Same as [`ServiceHost::parse`].
pub fn parse_service_host(
    host: &str,
    default_namespace: &str,
) -> Result<ServiceHost, ServiceHostError> {
    ServiceHost::parse(host, default_namespace)
}

/// Writes `service.namespace` and `:port` when present.
impl fmt::Display for ServiceHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.service, self.namespace)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(service: &str, namespace: &str, port: Option<u16>) -> ServiceHost {
        ServiceHost {
            service: service.into(),
            namespace: namespace.into(),
            port,
        }
    }

    #[test]
    fn parses_the_forms_the_demo_uses() {
        let parse = |s| ServiceHost::parse(s, "default").unwrap();
        assert_eq!(
            parse("colorteller.appmesh-demo:9080"),
            host("colorteller", "appmesh-demo", Some(9080))
        );
        assert_eq!(
            parse("tcpecho.appmesh-demo:2701"),
            host("tcpecho", "appmesh-demo", Some(2701))
        );
        assert_eq!(
            parse("colorteller.appmesh-demo.svc.cluster.local"),
            host("colorteller", "appmesh-demo", None)
        );
        assert_eq!(
            parse("colorteller.appmesh-demo.svc"),
            host("colorteller", "appmesh-demo", None)
        );
        assert_eq!(parse("colorteller"), host("colorteller", "default", None));
        assert_eq!(
            parse("ColorTeller.AppMesh-Demo.svc.cluster.local.:80"),
            host("colorteller", "appmesh-demo", Some(80))
        );
        assert_eq!(
            ServiceHost::parse("colorteller:9080", "appmesh-demo").unwrap(),
            host("colorteller", "appmesh-demo", Some(9080))
        );
    }

    #[test]
    fn rejects_what_is_not_a_service() {
        for bad in [
            "",
            "a.b.c",
            "a.b.pod.cluster.local",
            "a_b",
            "a:port",
            "a:0",
            "a:70000",
            "-a",
            "a..b",
        ] {
            let err = ServiceHost::parse(bad, "default").unwrap_err();
            assert_eq!(err.host, bad);
        }
    }

    #[test]
    fn display_and_fqdn() {
        let h = host("colorteller", "appmesh-demo", Some(9080));
        assert_eq!(h.to_string(), "colorteller.appmesh-demo:9080");
        assert_eq!(h.fqdn(), "colorteller.appmesh-demo.svc.cluster.local");
    }
}
