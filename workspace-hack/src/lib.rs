//! Feature pins and nothing else: see this crate's `Cargo.toml`.
