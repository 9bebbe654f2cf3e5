//! cargo xtask: e2e, walkthrough and the other project tasks.

fn main() {}
