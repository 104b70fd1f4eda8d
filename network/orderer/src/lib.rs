//! Medledger's BFT ordering service.
//!
//! n = 3f + 1 orderers order transaction envelopes into blocks with Tendermint (Malachite's
//! core consensus, hidden in [`consensus`]); every block carries ≥ 2f + 1 orderer signatures
//! that peers verify with `medledger_channel::bft::verify_block_signatures`.
//!
//! - [`batch`]: envelope admission (Fabric's broadcast checks + `Writers`), the pending pool,
//!   block cutting, validation of proposed batches. Pure.
//! - [`consensus`]: the Tendermint engine behind our own API. Pure.
//! - [`node`]: one orderer as a pure state machine (envelopes, messages, timers in; WAL
//!   records, messages, timers, blocks out), including block sync.
//! - [`wal`], [`store`]: the write-ahead log and the append-only block store, both fsynced.
//! - [`server`]: the orderer process: `orderer.AtomicBroadcast` (Broadcast, Deliver) and the
//!   `medledger.orderer.Cluster` transport over mutual TLS, `/healthz` and `/metrics`
//!   ([`metrics`]); configured by `orderer.yaml` ([`config`]).
//! - [`client`]: a Broadcast/Deliver client. The development cluster generator is
//!   `medledger_devnet::orderers`; the ordering benchmark is in `medledger-bench`.
//! - `sim` (feature `sim`): a deterministic in-process cluster of real [`node::Node`]s over a
//!   simulated network with virtual time and Byzantine orderers (tests and experiments).
//!
//! The host that runs a [`node::Node`] over real I/O carries out its [`node::Action`]s in
//! order, flushing the WAL before any message leaves and storing blocks before serving them.

pub mod batch;
pub mod client;
pub mod config;
pub mod consensus;
mod error;
mod frame;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod server;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod wal;

pub use error::{Error, Result};
