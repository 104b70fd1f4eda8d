//! The whole-network harness's tests: real orderer nodes, endorsers, committers and ledgers
//! under virtual time and one printed seed (`SEED=… cargo test --release -p
//! medledger-harness` replays a run). One test binary, one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod consistency;
mod determinism;
mod faults;
mod gateway;
mod privdata;
mod refusals;
