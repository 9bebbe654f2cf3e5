//! The Kubernetes built-in kinds colormesh reads, re-exported from `k8s-openapi` so every crate
//! uses the same types and version.

pub use k8s_openapi::api::apps::v1::Deployment;
pub use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
pub use k8s_openapi::api::discovery::v1::EndpointSlice;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// The `k8s-openapi` crate itself, for the less common types (pod specs, ports, ...).
pub use k8s_openapi as openapi;
