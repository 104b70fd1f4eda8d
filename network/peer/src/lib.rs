//! Medledger's peer: the committer and validator of blocks, the Deliver service and the
//! operations endpoint (docs/peer.md), and the peer node that runs them all.
//!
//! - [`validator`]: block validation as pure logic over a
//!   [`LedgerReader`](medledger_ledger_api::LedgerReader): parallel signature checks, then
//!   sequential duplicate-tx, endorsement-policy (chaincode, collection and key-level) and MVCC
//!   checks, producing the block's update with its TRANSACTIONS_FILTER and COMMIT_HASH.
//! - [`committer::Committer`]: verifies orderer signatures and chaining, runs the validator,
//!   commits atomically to the [`Ledger`](medledger_ledger::Ledger), publishes
//!   [`committer::CommitEvent`]s.
//! - [`definitions`]: where endorsement policies and collections come from: the definitions
//!   committed on the channel (`LedgerDefinitions`), over those of `peer.yaml`.
//! - [`lifecycle`]: Fabric's `_lifecycle`: the system chaincode (approve, commit, query,
//!   commit readiness) run in-process by the endorser, and the committer's rules for its writes.
//! - [`scc`]: Fabric's query system chaincodes `qscc` and `cscc` (`GetChannelConfig`), run
//!   in-process by the endorser, answering in Fabric's formats under the channel's `Readers`.
//! - [`deliver::DeliverService`]: Fabric's `protos.Deliver` (`Deliver`, `DeliverFiltered`).
//! - [`operations`]: `/healthz`, `/metrics`, `/version`.
//! - [`privdata`]: private data between member peers over mutual TLS, and the reconciler.
//! - [`node`]: the whole peer process (`medledger peer start`): ledgers, committers, block
//!   pulling from the orderers, endorser and sandboxed chaincode, gateway, Deliver, private
//!   data, operations; configured by `peer.yaml`.
//! - [`verify`]: `ledger verify`, a stopped peer's ledger checked against a replay.

pub mod committer;
pub mod definitions;
pub mod deliver;
pub mod endorsement;
mod error;
pub mod lifecycle;
pub mod node;
pub mod operations;
pub mod privdata;
pub mod scc;
pub mod validator;
pub mod verify;

#[cfg(feature = "test-utils")]
pub mod testing;

pub use error::{Error, Result};
