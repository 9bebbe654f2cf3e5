//! The conformance backend: answers any request with JSON describing exactly what it received.
