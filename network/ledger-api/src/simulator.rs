//! [`TxSimulator`]: what one transaction's chaincode may do to state during simulation
//! (Fabric's `TxSimulator`), which the runtime drives on behalf of the chaincode.

use crate::error::Result;
use crate::types::{HistoryEntry, Metadata};

/// One page of a range: `(key, value)` pairs and the bookmark of the next page (empty when
/// done).
pub type RangePage = (Vec<(String, Vec<u8>)>, String);

/// What one transaction's chaincode may do, in the namespace of that chaincode. Reads see the
/// committed ledger; writes are recorded, not applied. An empty `collection` means public
/// state. Bound to its namespace, as the runtime serves one chaincode per simulator.
pub trait TxSimulator: Send {
    /// Reads a public key.
    ///
    /// # Errors
    /// [`crate::LedgerError`] if the state cannot be read.
    fn get_state(&mut self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Records a public write.
    ///
    /// # Errors
    /// [`crate::LedgerError`] for an invalid key.
    fn put_state(&mut self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Records a public delete.
    ///
    /// # Errors
    /// [`crate::LedgerError`] for an invalid key.
    fn del_state(&mut self, key: &str) -> Result<()>;
    /// Public keys in `[start, end)` (empty `end`: to the end) after `bookmark` (exclusive,
    /// empty: from `start`), at most `limit` of them (`None`: all). Returns the results and
    /// the bookmark of the next page (empty when done). The range is recorded for phantom
    /// detection.
    ///
    /// # Errors
    /// [`crate::LedgerError`] if the state cannot be read.
    fn range(
        &mut self,
        start: &str,
        end: &str,
        bookmark: &str,
        limit: Option<usize>,
    ) -> Result<RangePage>;
    /// Committed history of a public key, newest first.
    ///
    /// # Errors
    /// [`crate::LedgerError`] if history is unavailable.
    fn history(&mut self, key: &str) -> Result<Vec<HistoryEntry>>;
    /// Reads a private key.
    ///
    /// # Errors
    /// [`crate::LedgerError`] if this peer does not hold the collection.
    fn get_private(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Records a private write.
    ///
    /// # Errors
    /// [`crate::LedgerError`] for an unknown collection or invalid key.
    fn put_private(&mut self, collection: &str, key: &str, value: Vec<u8>) -> Result<()>;
    /// Records a private delete.
    ///
    /// # Errors
    /// As [`TxSimulator::put_private`].
    fn del_private(&mut self, collection: &str, key: &str) -> Result<()>;
    /// Records a purge of a private key.
    ///
    /// # Errors
    /// As [`TxSimulator::put_private`].
    fn purge_private(&mut self, collection: &str, key: &str) -> Result<()>;
    /// SHA-256 of a private value, from the public hashed state.
    ///
    /// # Errors
    /// [`crate::LedgerError`] if the state cannot be read.
    fn private_hash(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Metadata entries of a key (e.g. `VALIDATION_PARAMETER`).
    ///
    /// # Errors
    /// [`crate::LedgerError`] if the state cannot be read.
    fn get_metadata(&mut self, collection: &str, key: &str) -> Result<Metadata>;
    /// Records a metadata write.
    ///
    /// # Errors
    /// [`crate::LedgerError`] for an invalid key.
    fn put_metadata(
        &mut self,
        collection: &str,
        key: &str,
        name: &str,
        value: Vec<u8>,
    ) -> Result<()>;
}
