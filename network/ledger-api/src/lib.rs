//! Medledger's state API: the ledger's types and the views of state that simulation and
//! validation read through, in a crate without storage (Fabric's
//! `core/ledger/ledger_interface.go`).

mod query;
mod simulator;
mod types;

pub use query::{MemoryState, SnapshotError, StateSnapshot, Version as SnapshotVersion};
pub use simulator::{
    HistoryEntry as SimHistoryEntry, MemorySimulator, RangePage, SimError, TxSimulator,
};
pub use types::{
    BlockUpdate, HashedKey, HistoryEntry, HistoryWrite, LedgerInfo, Metadata, MissingPrivate,
    PrivateKey, PrivateRwSet, StateKey, TxIndexEntry, TxLocation, Version, VersionedValue,
};
