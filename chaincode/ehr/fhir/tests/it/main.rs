//! The FHIR API's tests, one test binary (ADR 0034): the dependency guard, and the API on
//! the whole-network harness (`medledger-harness`, ADR 0037).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth_hardening;
mod guard;
