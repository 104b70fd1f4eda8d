//! Medledger's peer ledger: one RocksDB per peer per channel holding blocks, the tx index,
//! world state with versions, the history index, hashed and private collection state, and
//! the savepoint (ADR 0008; Fabric's `kvledger`).
//!
//! - [`Ledger::open`] checks the stored hash chain from the last verified point to the
//!   savepoint and refuses a damaged ledger with "ledger corrupted at block N".
//! - [`Ledger::commit`] writes a
//!   [`BlockUpdate`](medledger_ledger_api::BlockUpdate) (computed by the committer in
//!   `medledger-peer`) as one atomic RocksDB write batch with `sync = true`.
//! - Queries: [`Ledger::get_state`], [`Ledger::state_range`], [`Ledger::history`],
//!   [`Ledger::block`], [`Ledger::block_by_tx_id`], [`Ledger::tx_validation_code`],
//!   [`Ledger::get_private_hash`], [`Ledger::get_private`], [`Ledger::missing_private`];
//!   through the state API of `medledger-ledger-api`, the ledger is a
//!   [`QueryExecutor`](medledger_ledger_api::QueryExecutor),
//!   [`HistoryQueryExecutor`](medledger_ledger_api::HistoryQueryExecutor) and
//!   [`TxIdIndex`](medledger_ledger_api::TxIdIndex).
//!
//! The ledger validates nothing about transactions: MVCC and endorsement policies are the
//! committer's; the ledger guarantees chaining and atomicity.

mod error;
pub mod keys;
mod ledger;
mod reader;
pub mod records;
mod transient;

pub use error::{Error, Result};
pub use ledger::{Ledger, LedgerConfig, VerifyMode};
pub use transient::{TransientStore, TransientStoreError};
