//! Experiments on Medledger's real components over a simulated network.
//!
//! [`malicious`]: the malicious-node experiment (issue 14, ADR 0032). A network of 4 BFT
//! orderers (the real [`medledger_orderer::node::Node`]s in the deterministic
//! [`medledger_orderer::sim`] cluster: real consensus and signatures, virtual time, seeded
//! randomness) and 4 organizations, each with one peer that endorses with the real EHR
//! chaincode (`ehr_chaincode::contract()` in process, through the real
//! [`medledger_endorser::Endorser`]) and validates and commits blocks with the real
//! [`medledger_peer::committer::Committer`] into its own RocksDB ledger, pulling blocks with
//! the peer's own source-switching rules ([`medledger_peer::node::pull::SourceMonitor`]).
//! A share of the orderers and of the endorsing organizations is Byzantine; a fixed, seeded
//! workload of EHR requests runs against it and against an all-honest network, and the
//! outcomes are compared: correct decision ratio, loss ratio, black holes and falsifications.
//! The network is the whole-network harness's ([`medledger_harness::net`]).
//!
//! [`plot`] draws the results as a PNG.

mod client;
mod error;
mod forge;
pub mod malicious;
pub mod plot;
mod workload;

pub use error::{Error, Result};
