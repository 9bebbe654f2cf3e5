//! The resource model shared by gateway-proxy and the harness: Gloo and App Mesh custom resources, the Kubernetes kinds colormesh reads, and multi-document YAML loading with precise errors.
