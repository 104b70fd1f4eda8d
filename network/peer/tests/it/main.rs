//! The integration tests of `medledger-peer`, one module per area, in one test binary: each test
//! binary links RocksDB and aws-lc, so one per crate keeps the build short (issue 15, item 5).
//! One module's tests: `cargo test --release -p medledger-peer --test it pull::`.

// A test fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod committer;
mod common;
mod config_update;
mod crash;
mod lifecycle;
mod model;
mod privdata;
mod process_hardening;
mod pull;
mod scc;
mod services;
mod verify;
