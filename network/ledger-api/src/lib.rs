//! Medledger's one state API: the ledger's types and the views of state that simulation and
//! validation read through, in a crate without storage (Fabric's
//! `core/ledger/ledger_interface.go`; ADR 0035).
//!
//! - Types: [`Version`], [`VersionedValue`], [`HistoryEntry`], and what a block commits
//!   ([`BlockUpdate`] and its parts).
//! - Reads of the committed ledger: [`QueryExecutor`], [`HistoryQueryExecutor`],
//!   [`TxIdIndex`], and [`LedgerReader`] (all three), implemented by `medledger_ledger::Ledger`
//!   and used by the endorser and the validator.
//! - Simulation: [`TxSimulator`], implemented by the endorser's read-write set recorder and
//!   driven by the chaincode runtime.
//! - Errors: [`LedgerError`].
//! - Feature `test-utils`: [`MemoryLedger`] and [`MemorySimulator`].

mod error;
#[cfg(feature = "test-utils")]
mod memory;
mod query;
mod simulator;
mod types;

pub use error::{LedgerError, Result};
#[cfg(feature = "test-utils")]
pub use memory::{MemoryLedger, MemorySimulator};
pub use query::{HistoryQueryExecutor, LedgerReader, QueryExecutor, StateIter, TxIdIndex};
pub use simulator::{RangePage, TxSimulator};
pub use types::{
    BlockUpdate, HashedKey, HistoryEntry, HistoryWrite, LedgerInfo, Metadata, MissingPrivate,
    PrivateKey, PrivateRwSet, StateKey, TxIndexEntry, TxLocation, Version, VersionedValue,
};
