//! Medledger's endorser: Fabric's `protos.Endorser/ProcessProposal`.
//!
//! For each signed proposal: check it ([`proposal::check`]: signature, creator under the
//! channel's MSPs and Writers policy, tx_id = hex(SHA-256(nonce ‖ creator)), not already
//! committed, header type, channel and chaincode known, timestamp skew); simulate the
//! chaincode against the channel's ledger (a
//! [`LedgerReader`](medledger_ledger_api::LedgerReader), read live) with
//! [`RwSetSimulator`] recording a Fabric read-write set (`rwset.TxReadWriteSet`: reads with
//! versions, range query info, sorted writes, hashed private writes); sign the
//! `ProposalResponse` exactly as Fabric (ADR 0001). Private data written during simulation
//! goes to a [`TransientStore`] until its transaction commits.

pub mod endorser;
pub mod proposal;
mod rwset;

pub use endorser::{
    ChaincodeExecutor, ChannelContext, DEFAULT_ENDORSER_CONCURRENCY, Endorser, EndorserConfig,
    EndorserService, InProcessExecutor, MemoryTransientStore, RuntimeExecutor, TransientStore,
};
pub use rwset::{CollectionAccess, RwSetSimulator, SimulationResults};
