//! Unit tests of the Gateway API flavour.
