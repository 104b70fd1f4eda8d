//! The orderer's load tests (a flood of Broadcast traffic, a slow cluster reader), apart from the
//! other tests: they measure this process's memory and latencies, so nothing else may run beside
//! them, and they take turns (`common::one_at_a_time`).
//! One of them: `cargo test --release -p medledger-orderer --test load broadcast_limits::`.

// A test fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broadcast_limits;
mod cluster_slow_reader;
mod common;
