//! Migration off Gloo Edge and App Mesh: their resources become Gateway API resources (a Gateway
//! and HTTPRoutes at the edge, GAMMA HTTPRoutes in the mesh), and every construct that does not
//! carry over exactly is named in a [`DriftReport`] with the requests it affects.
//!
//! The drift report is the contract between `cargo xtask migrate`, which writes it, and `cargo
//! xtask equivalence`, which checks it: a behaviour difference the report predicted is a known
//! drift, one it did not predict is a defect of the migration.

pub mod drift;

pub use drift::{DriftItem, DriftKind, DriftReport, ExampleRequest, Mapping, RequestPattern};
