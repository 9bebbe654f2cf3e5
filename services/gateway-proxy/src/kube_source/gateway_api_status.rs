//! The Gateway API statuses gateway-proxy writes back: a GatewayClass's and a Gateway's whole
//! `status` (conditions, listeners), and for an HTTPRoute the `status.parents` entries of this
//! controller for the parents the writer is responsible for ([`ParentKind`]: the ingress its
//! Gateways, a GAMMA sidecar its Services), keeping every other entry.
//!
//! `lastTransitionTime` is the only part that is not a pure function of the translation: a
//! condition keeps the time the object already carries for it while its `status` is unchanged,
//! and takes `now` when it changes, as the API conventions ask. Comparisons leave times out, so
//! a status the object already carries is never written again.

use kube::core::DynamicObject;
use model::gateway_api::RouteParentStatus;
use routing::GatewayApiStatus;
use serde_json::{Map, Value, json};

/// The route parents a writer reports on: the ingress writes its Gateways' entries, a GAMMA
/// sidecar its Services', both under the one controller name; each leaves the other's alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParentKind {
    /// `parentRef.kind: Gateway` (the default kind).
    Gateway,
    /// `parentRef.kind: Service`.
    Service,
}

impl ParentKind {
    fn owns_kind(self, kind: &str) -> bool {
        match self {
            Self::Gateway => kind == "Gateway",
            Self::Service => kind == "Service",
        }
    }

    /// Whether a status entry, as the object carries it, is one this writer owns the kind of.
    fn owns(self, entry: &Value) -> bool {
        let kind = entry
            .get("parentRef")
            .and_then(|parent| parent.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("Gateway");
        self.owns_kind(kind)
    }
}

/// The merge patch that gives `object` the status of `verdict`, or `None` when it carries it.
pub(crate) fn desired_patch(
    object: &DynamicObject,
    verdict: &GatewayApiStatus,
    parents: ParentKind,
    now: &str,
) -> Option<Value> {
    let current = object.data.get("status").cloned().unwrap_or(Value::Null);
    let desired = match verdict {
        GatewayApiStatus::GatewayClass(status) => {
            let mut desired = to_object(status);
            stamp_conditions(&mut desired, &current, now);
            desired
        }
        GatewayApiStatus::Gateway(status) => {
            let mut desired = to_object(status);
            stamp_conditions(&mut desired, &current, now);
            let current_listeners = current.get("listeners").and_then(Value::as_array);
            if let Some(listeners) = desired.get_mut("listeners").and_then(Value::as_array_mut) {
                for listener in listeners {
                    let previous = current_listeners
                        .and_then(|all| {
                            all.iter()
                                .find(|entry| entry.get("name") == listener.get("name"))
                        })
                        .cloned()
                        .unwrap_or(Value::Null);
                    stamp_conditions(listener, &previous, now);
                }
            }
            // An absent list is written as an empty one, so stale listeners are cleared.
            if let Value::Object(map) = &mut desired {
                map.entry("conditions").or_insert_with(|| json!([]));
                map.entry("listeners").or_insert_with(|| json!([]));
            }
            desired
        }
        GatewayApiStatus::Route(status) => {
            let ours: Vec<&RouteParentStatus> = status
                .parents
                .iter()
                .filter(|parent| parents.owns_kind(&parent.parent_ref.kind))
                .collect();
            json!({ "parents": route_parents(&current, &ours, parents, now) })
        }
    };
    let unchanged = desired
        .as_object()
        .into_iter()
        .flatten()
        .all(|(field, value)| {
            without_times(value) == without_times(current.get(field).unwrap_or(&Value::Null))
        });
    (!unchanged).then(|| json!({ "status": desired }))
}

/// The route's parent entries with this writer's replaced: an entry it owns (this controller,
/// its kind of parent) takes the new version in place, or goes when the verdict no longer has
/// it; new entries follow at the end. Every other entry stays where it is, so two writers that
/// own different parents of one route never reorder each other's work.
fn route_parents(
    current: &Value,
    ours: &[&RouteParentStatus],
    owned: ParentKind,
    now: &str,
) -> Vec<Value> {
    let current_parents: &[Value] = current
        .get("parents")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let mut desired: Vec<Option<Value>> =
        ours.iter().map(|parent| Some(to_object(*parent))).collect();
    let controller = model::gateway_api::CONTROLLER_NAME;
    let is_ours = |entry: &Value| {
        let name = entry.get("controllerName").and_then(Value::as_str);
        (name == Some(controller)
            || ours
                .iter()
                .any(|parent| name == Some(parent.controller_name.as_str())))
            && owned.owns(entry)
    };
    let mut parents = Vec::with_capacity(current_parents.len() + desired.len());
    for existing in current_parents {
        if !is_ours(existing) {
            parents.push(existing.clone());
            continue;
        }
        let replacement = desired.iter_mut().find(|entry| {
            entry.as_ref().is_some_and(|entry| {
                entry.get("controllerName") == existing.get("controllerName")
                    && entry.get("parentRef") == existing.get("parentRef")
            })
        });
        if let Some(mut entry) = replacement.and_then(Option::take) {
            stamp_conditions(&mut entry, existing, now);
            parents.push(entry);
        }
    }
    for mut entry in desired.into_iter().flatten() {
        stamp_conditions(&mut entry, &Value::Null, now);
        parents.push(entry);
    }
    parents
}

fn to_object(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// Gives each condition of `holder.conditions` its time: the one `previous` carries for the same
/// type and status, else `now`.
fn stamp_conditions(holder: &mut Value, previous: &Value, now: &str) {
    let previous: &[Value] = previous
        .get("conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let Some(conditions) = holder.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for condition in conditions {
        let kept = previous
            .iter()
            .find(|old| {
                old.get("type") == condition.get("type")
                    && old.get("status") == condition.get("status")
            })
            .and_then(|old| old.get("lastTransitionTime"))
            .cloned();
        if let Value::Object(map) = condition {
            map.insert(
                "lastTransitionTime".into(),
                kept.unwrap_or_else(|| Value::String(now.to_owned())),
            );
        }
    }
}

/// `value` with every `lastTransitionTime` removed.
pub(crate) fn without_times(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| key.as_str() != "lastTransitionTime")
                .map(|(key, value)| (key.clone(), without_times(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_times).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use model::gateway_api::{
        Condition, GatewayStatus, ListenerStatus, ParentReference, RouteGroupKind, RouteStatus,
    };

    use super::*;

    const THEN: &str = "2026-12-01T00:00:00Z";
    const NOW: &str = "2026-12-03T11:00:00Z";

    fn object(status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "metadata": {"name": "r", "namespace": "demo", "generation": 2},
            "status": status,
        }))
        .expect("object")
    }

    fn parent(name: &str) -> ParentReference {
        ParentReference {
            group: model::gateway_api::GROUP.into(),
            kind: "Gateway".into(),
            namespace: None,
            name: name.into(),
            section_name: None,
            port: None,
        }
    }

    fn route(accepted: bool) -> GatewayApiStatus {
        GatewayApiStatus::Route(RouteStatus {
            parents: vec![RouteParentStatus {
                parent_ref: parent("edge"),
                controller_name: model::gateway_api::CONTROLLER_NAME.into(),
                conditions: vec![
                    Condition::new(
                        "Accepted",
                        accepted,
                        if accepted {
                            "Accepted"
                        } else {
                            "NotAllowedByListeners"
                        },
                        "",
                        Some(2),
                    ),
                    Condition::new("ResolvedRefs", true, "ResolvedRefs", "", Some(2)),
                ],
            }],
        })
    }

    #[test]
    fn a_route_keeps_other_controllers_entries_and_stamps_new_conditions() {
        let other = json!({"parentRef": {"name": "other"}, "controllerName": "example.com/other",
                           "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                           "message": "", "lastTransitionTime": THEN}]});
        let patch = desired_patch(
            &object(json!({"parents": [other.clone()]})),
            &route(true),
            ParentKind::Gateway,
            NOW,
        )
        .expect("a new entry is written");
        let parents = patch["status"]["parents"].as_array().expect("parents");
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[0], other);
        assert_eq!(parents[1]["controllerName"], "colormesh.dev/gateway-proxy");
        assert_eq!(parents[1]["conditions"][0]["lastTransitionTime"], NOW);
        assert_eq!(parents[1]["conditions"][0]["observedGeneration"], 2);
    }

    #[test]
    fn a_status_already_carried_is_not_written_and_an_unchanged_condition_keeps_its_time() {
        let written = desired_patch(
            &object(json!(null)),
            &route(true),
            ParentKind::Gateway,
            THEN,
        )
        .expect("first write");
        let carried = object(written["status"].clone());
        assert_eq!(
            desired_patch(&carried, &route(true), ParentKind::Gateway, NOW),
            None,
            "nothing changed"
        );

        let changed = desired_patch(&carried, &route(false), ParentKind::Gateway, NOW)
            .expect("Accepted flipped");
        let conditions = &changed["status"]["parents"][0]["conditions"];
        assert_eq!(conditions[0]["status"], "False");
        assert_eq!(
            conditions[0]["lastTransitionTime"], NOW,
            "changed: stamped now"
        );
        assert_eq!(
            conditions[1]["lastTransitionTime"], THEN,
            "unchanged: keeps its time"
        );
    }

    #[test]
    fn a_gateway_status_replaces_the_pending_default_and_matches_listeners_by_name() {
        let pending = json!({"conditions": [{"type": "Accepted", "status": "Unknown", "reason": "Pending",
                              "message": "Waiting for controller", "lastTransitionTime": "1970-01-01T00:00:00Z"}],
                             "listeners": [{"name": "http", "attachedRoutes": 0, "supportedKinds": [],
                                            "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed",
                                                            "message": "", "lastTransitionTime": THEN}]}]});
        let verdict = GatewayApiStatus::Gateway(GatewayStatus {
            conditions: vec![Condition::new("Accepted", true, "Accepted", "", Some(1))],
            listeners: vec![ListenerStatus {
                name: "http".into(),
                supported_kinds: vec![RouteGroupKind {
                    group: model::gateway_api::GROUP.into(),
                    kind: "HTTPRoute".into(),
                }],
                attached_routes: 1,
                conditions: vec![Condition::new(
                    "Programmed",
                    true,
                    "Programmed",
                    "",
                    Some(1),
                )],
            }],
        });
        let patch =
            desired_patch(&object(pending), &verdict, ParentKind::Gateway, NOW).expect("written");
        assert_eq!(patch["status"]["conditions"][0]["status"], "True");
        assert_eq!(patch["status"]["conditions"][0]["lastTransitionTime"], NOW);
        assert_eq!(
            patch["status"]["listeners"][0]["conditions"][0]["lastTransitionTime"],
            THEN
        );
        assert_eq!(patch["status"]["listeners"][0]["attachedRoutes"], 1);
    }

    #[test]
    fn the_ingress_and_a_mesh_sidecar_each_keep_the_others_entries() {
        let service_parent = ParentReference {
            group: String::new(),
            kind: "Service".into(),
            namespace: None,
            name: "colorteller".into(),
            section_name: None,
            port: Some(9080),
        };
        let both = GatewayApiStatus::Route(RouteStatus {
            parents: vec![
                RouteParentStatus {
                    parent_ref: parent("edge"),
                    controller_name: model::gateway_api::CONTROLLER_NAME.into(),
                    conditions: vec![Condition::new("Accepted", true, "Accepted", "", Some(2))],
                },
                RouteParentStatus {
                    parent_ref: service_parent,
                    controller_name: model::gateway_api::CONTROLLER_NAME.into(),
                    conditions: vec![Condition::new("Accepted", true, "Accepted", "", Some(2))],
                },
            ],
        });
        let by_ingress = desired_patch(&object(json!(null)), &both, ParentKind::Gateway, THEN)
            .expect("the ingress writes its Gateway entry");
        let parents = by_ingress["status"]["parents"].as_array().expect("parents");
        assert_eq!(parents.len(), 1);
        assert_eq!(parents[0]["parentRef"]["kind"], "Gateway");

        let after_ingress = object(by_ingress["status"].clone());
        let by_sidecar = desired_patch(&after_ingress, &both, ParentKind::Service, NOW)
            .expect("the sidecar adds its Service entry");
        let parents = by_sidecar["status"]["parents"].as_array().expect("parents");
        let kinds: Vec<&str> = parents
            .iter()
            .map(|entry| entry["parentRef"]["kind"].as_str().expect("kind"))
            .collect();
        assert_eq!(kinds, ["Gateway", "Service"]);
        assert_eq!(parents[0]["conditions"][0]["lastTransitionTime"], THEN);

        // Each writer now sees its own entry carried: neither writes again.
        let settled = object(by_sidecar["status"].clone());
        assert_eq!(
            desired_patch(&settled, &both, ParentKind::Gateway, NOW),
            None
        );
        assert_eq!(
            desired_patch(&settled, &both, ParentKind::Service, NOW),
            None
        );
    }
}
