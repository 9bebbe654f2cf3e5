//! A TCP echo server that greets each client with lines from its pod environment, as cjimti/go-echo does.
