//! Medledger's whole-network harness (issue 15, item 5): the orderer cluster of
//! [`medledger_orderer::sim`] (real BFT nodes, simulated network, virtual time, one seed) and
//! per organization peers with the real [`medledger_endorser::Endorser`] (EHR chaincode in
//! process), the real [`medledger_peer::committer::Committer`] and a RocksDB ledger in a
//! temporary directory, pulling blocks with the peer's own source-switching rules.

mod error;
mod harness;
pub mod net;

pub use error::{Error, Result};
pub use harness::{Builder, Harness, TICK_MS};
