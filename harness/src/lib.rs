//! The colormesh conformance harness: scenarios, backends, traffic, statistical checks and reports.
//!
//! The path of a scenario through this crate:
//! 1. [`scenario`] loads a YAML file into checked steps (apply, glooctl, kubectl, wait, traffic).
//! 2. The runner executes the steps in order against a [`backend::Backend`], which turns manifests
//!    into running workloads and a gateway (local processes by default).
//! 3. Traffic steps send requests through the gateway; replies are classified and judged: exact
//!    checks for status, shape and rewrites, [`stats`] for weighted splits.
//! 4. Reports (terminal summary, JSON, JUnit XML, HTML) record every verdict with its guarantees.

pub mod backend;
pub mod classify;
pub mod equivalence;
pub mod features;
pub mod glooctl;
pub mod kubectl;
pub mod process;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod traffic;
pub mod xray;
