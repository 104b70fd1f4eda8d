//! The read views of a channel's committed ledger, named as in Fabric's
//! `core/ledger/ledger_interface.go`: [`QueryExecutor`] (world state, private and hashed
//! private state), [`HistoryQueryExecutor`] (a key's history), [`TxIdIndex`] (committed tx
//! ids), and [`LedgerReader`], all three, which the endorser simulates over and the
//! validator validates against.

use medledger_proto::TxId;

use crate::error::Result;
use crate::types::{HistoryEntry, Metadata, VersionedValue};

/// Items of a range scan: `(key, value)` in key byte order.
pub type StateIter<'a> = Box<dyn Iterator<Item = Result<(String, VersionedValue)>> + 'a>;

/// Reads of committed state (Fabric's `QueryExecutor`). Namespaces are chaincode names.
pub trait QueryExecutor: Send + Sync {
    /// The committed value of `key` in `ns`.
    ///
    /// # Errors
    /// [`crate::LedgerError::Storage`].
    fn get_state(&self, ns: &str, key: &str) -> Result<Option<VersionedValue>>;

    /// Committed keys of `ns` in `[start, end)` (empty `end` = to the end of `ns`), in order.
    ///
    /// # Errors
    /// [`crate::LedgerError::Storage`], also per item.
    fn get_state_range<'a>(&'a self, ns: &'a str, start: &str, end: &str) -> Result<StateIter<'a>>;

    /// The private value of a collection key, if this peer holds it (member organizations
    /// only).
    ///
    /// # Errors
    /// [`crate::LedgerError::Storage`].
    fn get_private_data(&self, ns: &str, coll: &str, key: &str) -> Result<Option<VersionedValue>>;

    /// The hashed private state every peer keeps (value = SHA-256 of the private value),
    /// looked up by the SHA-256 of the key (Fabric's `GetPrivateDataHash` hashes the key
    /// itself; the validator only ever knows the hash).
    ///
    /// # Errors
    /// [`crate::LedgerError::Storage`].
    fn get_private_data_hash(
        &self,
        ns: &str,
        coll: &str,
        key_hash: &[u8],
    ) -> Result<Option<VersionedValue>>;

    /// Metadata of a public key (empty if none or no such key).
    ///
    /// # Errors
    /// As [`QueryExecutor::get_state`].
    fn get_state_metadata(&self, ns: &str, key: &str) -> Result<Metadata> {
        Ok(self
            .get_state(ns, key)?
            .map(|v| v.metadata)
            .unwrap_or_default())
    }

    /// Metadata of a private key (empty if none or no such key).
    ///
    /// # Errors
    /// As [`QueryExecutor::get_private_data`].
    fn get_private_data_metadata(&self, ns: &str, coll: &str, key: &str) -> Result<Metadata> {
        Ok(self
            .get_private_data(ns, coll, key)?
            .map(|v| v.metadata)
            .unwrap_or_default())
    }
}

/// A key's committed history (Fabric's `HistoryQueryExecutor`).
pub trait HistoryQueryExecutor: Send + Sync {
    /// Every committed write of `key` in `ns`, newest first.
    ///
    /// # Errors
    /// [`crate::LedgerError::Storage`].
    fn get_history_for_key(&self, ns: &str, key: &str) -> Result<Vec<HistoryEntry>>;
}

/// The committed transaction ids (Fabric's `PeerLedger.TxIDExists`).
pub trait TxIdIndex: Send + Sync {
    /// Whether `tx_id` is already on the ledger. The id is a validated [`TxId`]: both callers
    /// (the endorser's duplicate check and the committer's) ask after checking it is
    /// hex(SHA-256(nonce ‖ creator)), so no malformed id reaches the index.
    ///
    /// # Errors
    /// [`crate::LedgerError::Storage`].
    fn tx_id_exists(&self, tx_id: &TxId) -> Result<bool>;
}

/// Everything a reader of the committed ledger may ask: what the endorser simulates over and
/// the validator validates against.
pub trait LedgerReader: QueryExecutor + HistoryQueryExecutor + TxIdIndex {}

impl<T: QueryExecutor + HistoryQueryExecutor + TxIdIndex + ?Sized> LedgerReader for T {}
