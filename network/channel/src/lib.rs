//! What orderers and peers of a channel share.
//!
//! - [`block`]: Fabric's block header hash (SHA-256 of the ASN.1 DER of number, previous hash,
//!   data hash) and data hash, building blocks, metadata slots.
//! - [`config`]: the channel configuration (organizations and their MSPs, BFT consenters,
//!   policies, batch parameters), validated, and the config (genesis) block that carries it.
//! - [`envelope`]: parsing and checking a transaction envelope's headers, tx_id and creator
//!   signature, with Fabric's `TxValidationCode` for each failure.
//! - [`update`]: configuration updates (organizations joining, CRL changes): building,
//!   signing, and checking them against the current configuration.
//! - [`deliver`]: Fabric's Deliver rules (request checks, seek positions, the per-block
//!   re-check), served by both the orderer and the peer.
//! - [`tx`]: assembling an endorser transaction from a proposal and its endorsements.
//! - [`bft`]: the bytes BFT consenters sign for votes, and the verifier of a block's
//!   SIGNATURES metadata (the commit certificate, ≥ 2f+1 precommits): what the orderer writes
//!   and every peer's committer checks.

pub mod bft;
pub mod block;
pub mod config;
pub mod deliver;
pub mod envelope;
pub mod tx;
pub mod update;

pub use config::{ChannelConfig, ConfigError};

#[cfg(feature = "test-utils")]
pub mod testing;
