//! The integration tests of `medledger-runtime`, one module per area, in one test binary: each test
//! binary links RocksDB and aws-lc, so one per crate keeps the build short (issue 15, item 5).
//! One module's tests: `cargo test --release -p medledger-runtime --test it sandbox_policy::`.

// A test fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod sandbox;
mod sandbox_policy;
