//! [`StateReader`]: the read view of committed state that block validation needs, so that
//! validation logic runs over a trait (the RocksDB [`Ledger`] or an in-memory model).

use crate::VersionedValue;
use crate::error::Result;
use crate::ledger::Ledger;

/// Items of a range scan: `(key, value)` in key byte order.
pub type RangeIter<'a> = Box<dyn Iterator<Item = Result<(String, VersionedValue)>> + 'a>;

/// Committed state as the validator reads it (Fabric's `statedb.VersionedDB` subset).
pub trait StateReader: Send + Sync {
    /// The committed value of `key` in `ns`.
    ///
    /// # Errors
    /// Storage errors.
    fn get_state(&self, ns: &str, key: &str) -> Result<Option<VersionedValue>>;

    /// Committed keys of `ns` in `[start, end)` (empty `end` = to the end of `ns`), in order.
    ///
    /// # Errors
    /// Storage errors.
    fn state_range<'a>(&'a self, ns: &'a str, start: &str, end: &str) -> Result<RangeIter<'a>>;

    /// Hashed private state of `(ns, coll, key_hash)`.
    ///
    /// # Errors
    /// Storage errors.
    fn get_private_hash(
        &self,
        ns: &str,
        coll: &str,
        key_hash: &[u8],
    ) -> Result<Option<VersionedValue>>;

    /// Whether `tx_id` is already on the ledger.
    ///
    /// # Errors
    /// Storage errors.
    fn tx_exists(&self, tx_id: &str) -> Result<bool>;
}

impl StateReader for Ledger {
    fn get_state(&self, ns: &str, key: &str) -> Result<Option<VersionedValue>> {
        Ledger::get_state(self, ns, key)
    }

    fn state_range<'a>(&'a self, ns: &'a str, start: &str, end: &str) -> Result<RangeIter<'a>> {
        Ok(Box::new(Ledger::state_range(self, ns, start, end)?))
    }

    fn get_private_hash(
        &self,
        ns: &str,
        coll: &str,
        key_hash: &[u8],
    ) -> Result<Option<VersionedValue>> {
        Ledger::get_private_hash(self, ns, coll, key_hash)
    }

    fn tx_exists(&self, tx_id: &str) -> Result<bool> {
        Ledger::tx_exists(self, tx_id)
    }
}
