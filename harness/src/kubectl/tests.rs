use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::*;

/// Objects from YAML, statuses by `Kind namespace/name`, a fixed clock.
struct Fake {
    objects: Vec<Resource>,
    statuses: BTreeMap<String, Value>,
    now: SystemTime,
}

/// 2026-12-02T10:00:00Z.
const NOW: u64 = 1_796_205_600;

impl Fake {
    fn new(yaml: &str) -> Self {
        let parsed = model::parse_documents(yaml, Path::new("test.yaml"));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        Self {
            objects: parsed.resources.into_iter().map(|l| l.resource).collect(),
            statuses: BTreeMap::new(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        }
    }
}

impl KubectlStore for Fake {
    fn list(&self, kind: &ResourceKind, namespace: Option<&str>) -> Vec<Resource> {
        self.objects
            .iter()
            .filter(|o| o.kind() == *kind)
            .filter(|o| namespace.is_none() || o.key().namespace.as_deref() == namespace)
            .cloned()
            .collect()
    }

    fn status(&self, key: &ResourceKey) -> Option<Value> {
        self.statuses.get(&key.to_string()).cloned()
    }

    fn addresses(&self, key: &ResourceKey) -> Vec<String> {
        if key.kind == ResourceKind::Gateway {
            vec!["127.0.0.1".to_owned()]
        } else {
            Vec::new()
        }
    }

    fn now(&self) -> SystemTime {
        self.now
    }
}

const OBJECTS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: colormesh, creationTimestamp: "2026-12-02T09:59:30Z"}
spec: {controllerName: colormesh.dev/gateway-proxy, description: the builtin}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: colorapp-gateway, namespace: colormesh-gateway, creationTimestamp: "2026-12-02T09:55:00Z"}
spec:
  gatewayClassName: colormesh
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: colorgateway, namespace: appmesh-demo, creationTimestamp: "2026-12-01T09:00:00Z"}
spec:
  parentRefs: [{name: colorapp-gateway, namespace: colormesh-gateway}]
  rules: [{backendRefs: [{name: colorgateway, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: colorteller-route, namespace: appmesh-demo, creationTimestamp: "2026-12-02T07:40:00Z"}
spec:
  hostnames: [colorteller.appmesh-demo, colorteller]
  parentRefs: [{group: "", kind: Service, name: colorteller}]
"#;

fn fake() -> Fake {
    let mut fake = Fake::new(OBJECTS);
    fake.statuses.insert(
        "GatewayClass colormesh".into(),
        json!({"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}),
    );
    fake.statuses.insert(
        "Gateway colormesh-gateway/colorapp-gateway".into(),
        json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "False", "reason": "Invalid"}
        ]}),
    );
    fake
}

fn kubectl(store: &Fake, line: &str) -> CommandOutput {
    let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    run(&args, store)
}

#[test]
fn gatewayclasses_show_controller_accepted_and_age() {
    let output = kubectl(&fake(), "get gatewayclass");
    assert!(output.success, "{output:?}");
    assert_eq!(
        output.stdout,
        "NAME        CONTROLLER                    ACCEPTED   AGE\n\
         colormesh   colormesh.dev/gateway-proxy   True       30s\n"
    );
    let wide = kubectl(&fake(), "get gc -o wide");
    assert!(
        wide.stdout.starts_with(
            "NAME        CONTROLLER                    ACCEPTED   AGE   DESCRIPTION\n"
        ),
        "{}",
        wide.stdout
    );
    assert!(
        wide.stdout.contains("30s   the builtin\n"),
        "{}",
        wide.stdout
    );
}

#[test]
fn gateways_in_all_namespaces_get_a_namespace_column_and_the_programmed_condition() {
    let output = kubectl(&fake(), "get gateway -A");
    assert_eq!(
        output.stdout,
        "NAMESPACE           NAME               CLASS       ADDRESS     PROGRAMMED   AGE\n\
         colormesh-gateway   colorapp-gateway   colormesh   127.0.0.1   False        5m\n"
    );
}

#[test]
fn httproutes_show_hostnames_as_json_and_nothing_when_absent() {
    let output = kubectl(&fake(), "get httproute -n appmesh-demo");
    assert_eq!(
        output.stdout,
        "NAME                HOSTNAMES                                    AGE\n\
         colorgateway                                                     25h\n\
         colorteller-route   [\"colorteller.appmesh-demo\",\"colorteller\"]   140m\n"
    );
}

#[test]
fn names_select_rows_and_a_missing_name_fails_as_the_api_server_says() {
    let store = fake();
    let one = kubectl(
        &store,
        "get httproutes colorgateway --namespace=appmesh-demo",
    );
    assert!(one.success);
    assert_eq!(one.stdout.lines().count(), 2, "{}", one.stdout);
    let slash = kubectl(&store, "get httproute/colorteller-route -n appmesh-demo");
    assert!(
        slash.stdout.contains("colorteller-route"),
        "{}",
        slash.stdout
    );
    assert!(!slash.stdout.contains("colorgateway"), "{}", slash.stdout);
    let missing = kubectl(&store, "get httproute nope -n appmesh-demo");
    assert!(!missing.success);
    assert_eq!(
        missing.stderr,
        "Error from server (NotFound): httproutes.gateway.networking.k8s.io \"nope\" not found\n"
    );
}

#[test]
fn an_empty_namespace_says_no_resources_found_and_succeeds() {
    let output = kubectl(&fake(), "get httproute");
    assert!(output.success);
    assert_eq!(output.stdout, "");
    assert_eq!(output.stderr, "No resources found in default namespace.\n");
    let classes = kubectl(&Fake::new(""), "get gatewayclasses -n ignored");
    assert_eq!(classes.stderr, "No resources found\n");
}

#[test]
fn unknown_types_flags_and_verbs_fail_with_kubectls_words() {
    let store = fake();
    let unknown = kubectl(&store, "get virtualservice");
    assert!(!unknown.success);
    assert_eq!(
        unknown.stderr,
        "error: the server doesn't have a resource type \"virtualservice\"\n"
    );
    let flag = kubectl(&store, "get gateway --watch");
    assert_eq!(flag.stderr, "error: unknown flag: --watch\n");
    let verb = kubectl(&store, "describe gateway");
    assert!(!verb.success);
    assert!(verb.stderr.contains("emulates only"), "{}", verb.stderr);
    assert!(!kubectl(&store, "get").success);
    assert!(!kubectl(&store, "get gateway -n").success);
    assert!(!kubectl(&store, "get gateway x -A").success);
}

#[test]
fn ages_follow_kubectls_human_duration() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
    let ago = |seconds: u64| human_duration(now, now - Duration::from_secs(seconds));
    assert_eq!(ago(0), "0s");
    assert_eq!(ago(119), "119s");
    assert_eq!(ago(120), "2m");
    assert_eq!(ago(125), "2m5s");
    assert_eq!(ago(600), "10m");
    assert_eq!(ago(3 * 3600), "3h");
    assert_eq!(ago(3 * 3600 + 60), "3h1m");
    assert_eq!(ago(47 * 3600), "47h");
    assert_eq!(ago(50 * 3600), "2d2h");
    assert_eq!(ago(10 * 86400), "10d");
    assert_eq!(ago(800 * 86400), "2y70d");
    assert_eq!(ago(9 * 365 * 86400), "9y");
    assert_eq!(
        human_duration(now, now + Duration::from_secs(5)),
        "<invalid>"
    );
    assert_eq!(human_duration(now, now + Duration::from_millis(500)), "0s");
}
