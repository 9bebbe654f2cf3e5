//! The colormesh conformance harness: scenarios, backends, traffic, statistical checks and reports.
