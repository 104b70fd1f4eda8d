//! The integration tests of `medledger-cli`, one module per area, in one test binary: each test
//! binary links RocksDB and aws-lc, so one per crate keeps the build short (issue 15, item 5).
//! One module's tests: `cargo test --release -p medledger-cli --test it network_up::`.

// A test fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ca_cli;
mod common;
mod crash_network;
mod ehr_network;
mod endorse_commit;
mod fabric_gateway_node;
mod fhir_network;
mod gateway_refusals;
mod lifecycle_network;
mod network_up;
mod orderer_processes;
mod org_join_network;
mod phi_paths_network;
