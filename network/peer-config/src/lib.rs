//! The peer's configuration types, without the peer: what tools that write `peer.yaml` or
//! drive the chaincode lifecycle (the development network, the benchmark, the `medledger`
//! command line) need, without linking the endorser, the chaincode runtime (seccomp,
//! Landlock) or RocksDB. The peer (`medledger-peer`) re-exports every item at its old path.
//!
//! - [`config`]: `peer.yaml` ([`PeerConfig`]): its sections, defaults, and the checks made
//!   when it is read.
//! - [`lifecycle`]: Fabric's `_lifecycle` vocabulary: a chaincode [`Definition`](lifecycle::Definition)
//!   and its canonical form, the `_lifecycle` state keys, the answers of
//!   `QueryChaincodeDefinition` and `CheckCommitReadiness`, and [`LifecycleError`](lifecycle::LifecycleError).
//! - [`definitions`]: a definition parsed for validation (endorsement policy, collections).
//! - [`sandbox`]: the chaincode sandbox's settings (user, ids set aside for chaincode, the
//!   least Landlock enforcement), which the chaincode runtime applies.

pub mod config;
pub mod definitions;
mod error;
pub mod lifecycle;
pub mod sandbox;

pub use config::PeerConfig;
pub use error::{Error, Result};
