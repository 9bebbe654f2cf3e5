//! The Rust stand-in for the walkthrough's Envoys: Gloo's ingress proxy and the App Mesh sidecar.

fn main() {}
