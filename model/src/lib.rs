//! The resource model shared by gateway-proxy and the harness: Gloo, App Mesh and Gateway API
//! custom resources, the Kubernetes kinds colormesh reads, and multi-document YAML loading with precise
//! errors.
//!
//! Nothing here is async or touches the network; only [`load_dir`] and [`load_paths`] read
//! files.

pub mod appmesh;
mod choice;
pub mod discovery;
pub mod dns;
mod duration;
pub mod gateway_api;
pub mod gloo;
pub mod k8s;
mod load;
mod set;

pub use choice::ChoiceError;
pub use load::{
    LoadError, Loaded, Origin, Parsed, Resource, ResourceKey, ResourceKind, decode_api_object,
    is_tool_config, load_dir, load_paths, parse_documents, to_yaml, to_yaml_documents,
};
pub use set::ResourceSet;
