//! The FHIR API's tests, one test binary (ADR 0034): the dependency guard, and the API on
//! the whole-network harness (`medledger-harness`, ADR 0037): requests through the router
//! with injected callers, then over real TLS on 127.0.0.1:0 (mutual TLS and the token flow).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod auth_hardening;
mod common;
mod guard;
mod tls;
