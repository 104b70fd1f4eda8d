//! The EHR client's end-to-end tests, one test binary (ADR 0034): all run on the
//! whole-network harness (`medledger-harness`, ADR 0037) with real Synthea bundles.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ehr_client;
mod fhir_support;
mod main_job;
mod phi_paths;
mod rules;
mod scenario;
