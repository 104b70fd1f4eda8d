//! Medledger's whole-network harness (issue 15, item 5): the orderer cluster of
//! [`medledger_orderer::sim`] (real BFT nodes, simulated network, virtual time, one seed) and
//! per organization peers with the real [`medledger_endorser::Endorser`] (EHR chaincode in
//! process), the real [`medledger_peer::committer::Committer`] and a RocksDB ledger in a
//! temporary directory, pulling blocks with the peer's own source-switching rules.
//! [`Harness::serve`] serves it to async clients: the real Gateway service of every
//! organization and the orderers' Broadcast on gRPC in process, driven by a thread that
//! advances virtual time while there is work.

mod error;
mod harness;
mod inproc;
mod log;
pub mod net;
mod serve;

pub use error::{Error, Result};
pub use harness::{Builder, Harness, TICK_MS};
pub use log::captured_log;
pub use serve::{GRACE_TICKS, Served};
