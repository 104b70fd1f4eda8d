//! The transaction simulator interface the runtime drives on behalf of a chaincode.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// A simulation step failed (e.g. reading private data of a collection this peer's org is not
/// a member of). The message goes back to the chaincode: no patient data in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SimError(pub String);

/// One page of a range: `(key, value)` pairs and the bookmark of the next page (empty when
/// done).
pub type RangePage = (Vec<(String, Vec<u8>)>, String);

/// One committed change of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Transaction id.
    pub tx_id: String,
    /// Value (empty for a delete).
    pub value: Vec<u8>,
    /// Commit time of the block, if known.
    pub timestamp: Option<SystemTime>,
    /// Whether it was a delete.
    pub is_delete: bool,
}

/// What one transaction's chaincode may do, in the namespace of that chaincode. Reads see the
/// snapshot the simulation started from; writes are recorded, not applied. An empty
/// `collection` means public state.
pub trait TxSimulator: Send {
    /// Reads a public key.
    ///
    /// # Errors
    /// [`SimError`] if the state cannot be read.
    fn get_state(&mut self, key: &str) -> Result<Option<Vec<u8>>, SimError>;
    /// Records a public write.
    ///
    /// # Errors
    /// [`SimError`] for an invalid key.
    fn put_state(&mut self, key: &str, value: Vec<u8>) -> Result<(), SimError>;
    /// Records a public delete.
    ///
    /// # Errors
    /// [`SimError`] for an invalid key.
    fn del_state(&mut self, key: &str) -> Result<(), SimError>;
    /// Public keys in `[start, end)` (empty `end`: to the end) after `bookmark` (exclusive,
    /// empty: from `start`), at most `limit` of them (`None`: all). Returns the results and
    /// the bookmark of the next page (empty when done). The range is recorded for phantom
    /// detection.
    ///
    /// # Errors
    /// [`SimError`] if the state cannot be read.
    fn range(
        &mut self,
        start: &str,
        end: &str,
        bookmark: &str,
        limit: Option<usize>,
    ) -> Result<RangePage, SimError>;
    /// Committed history of a public key, newest first.
    ///
    /// # Errors
    /// [`SimError`] if history is unavailable.
    fn history(&mut self, key: &str) -> Result<Vec<HistoryEntry>, SimError>;
    /// Reads a private key.
    ///
    /// # Errors
    /// [`SimError`] if this peer does not hold the collection.
    fn get_private(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, SimError>;
    /// Records a private write.
    ///
    /// # Errors
    /// [`SimError`] for an unknown collection or invalid key.
    fn put_private(&mut self, collection: &str, key: &str, value: Vec<u8>) -> Result<(), SimError>;
    /// Records a private delete.
    ///
    /// # Errors
    /// As [`TxSimulator::put_private`].
    fn del_private(&mut self, collection: &str, key: &str) -> Result<(), SimError>;
    /// Records a purge of a private key.
    ///
    /// # Errors
    /// As [`TxSimulator::put_private`].
    fn purge_private(&mut self, collection: &str, key: &str) -> Result<(), SimError>;
    /// SHA-256 of a private value, from the public hashed state.
    ///
    /// # Errors
    /// [`SimError`] if the state cannot be read.
    fn private_hash(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, SimError>;
    /// Metadata entries of a key (e.g. `VALIDATION_PARAMETER`).
    ///
    /// # Errors
    /// [`SimError`] if the state cannot be read.
    fn get_metadata(
        &mut self,
        collection: &str,
        key: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, SimError>;
    /// Records a metadata write.
    ///
    /// # Errors
    /// [`SimError`] for an invalid key.
    fn put_metadata(
        &mut self,
        collection: &str,
        key: &str,
        name: &str,
        value: Vec<u8>,
    ) -> Result<(), SimError>;
}

/// A simulator over an in-memory map, recording writes in order: for tests of the runtime
/// (the endorser records Fabric read-write sets over a ledger snapshot instead).
#[derive(Debug, Clone, Default)]
pub struct MemorySimulator {
    /// Public state the transaction reads.
    pub state: BTreeMap<String, Vec<u8>>,
    /// Private state by (collection, key).
    pub private: BTreeMap<(String, String), Vec<u8>>,
    /// Writes recorded: (collection, key, value; `None` = delete).
    pub writes: Vec<(String, String, Option<Vec<u8>>)>,
}

impl MemorySimulator {
    /// A simulator over `state`.
    pub fn new(state: BTreeMap<String, Vec<u8>>) -> Self {
        MemorySimulator {
            state,
            ..MemorySimulator::default()
        }
    }
}

impl TxSimulator for MemorySimulator {
    fn get_state(&mut self, key: &str) -> Result<Option<Vec<u8>>, SimError> {
        Ok(self.state.get(key).cloned())
    }

    fn put_state(&mut self, key: &str, value: Vec<u8>) -> Result<(), SimError> {
        self.writes
            .push((String::new(), key.to_owned(), Some(value)));
        Ok(())
    }

    fn del_state(&mut self, key: &str) -> Result<(), SimError> {
        self.writes.push((String::new(), key.to_owned(), None));
        Ok(())
    }

    fn range(
        &mut self,
        start: &str,
        end: &str,
        bookmark: &str,
        limit: Option<usize>,
    ) -> Result<RangePage, SimError> {
        let from = if bookmark.is_empty() { start } else { bookmark };
        let mut it = self
            .state
            .range(from.to_owned()..)
            .filter(|(k, _)| end.is_empty() || k.as_str() < end)
            .map(|(k, v)| (k.clone(), v.clone()));
        let take = limit.unwrap_or(usize::MAX);
        let results: Vec<_> = it.by_ref().take(take).collect();
        let next = it.next().map(|(k, _)| k).unwrap_or_default();
        Ok((results, next))
    }

    fn history(&mut self, _key: &str) -> Result<Vec<HistoryEntry>, SimError> {
        Ok(Vec::new())
    }

    fn get_private(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, SimError> {
        Ok(self
            .private
            .get(&(collection.to_owned(), key.to_owned()))
            .cloned())
    }

    fn put_private(&mut self, collection: &str, key: &str, value: Vec<u8>) -> Result<(), SimError> {
        self.writes
            .push((collection.to_owned(), key.to_owned(), Some(value)));
        Ok(())
    }

    fn del_private(&mut self, collection: &str, key: &str) -> Result<(), SimError> {
        self.writes
            .push((collection.to_owned(), key.to_owned(), None));
        Ok(())
    }

    fn purge_private(&mut self, collection: &str, key: &str) -> Result<(), SimError> {
        self.del_private(collection, key)
    }

    fn private_hash(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, SimError> {
        use sha2::Digest;
        Ok(self
            .private
            .get(&(collection.to_owned(), key.to_owned()))
            .map(|v| sha2::Sha256::digest(v).to_vec()))
    }

    fn get_metadata(
        &mut self,
        _collection: &str,
        _key: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, SimError> {
        Ok(BTreeMap::new())
    }

    fn put_metadata(
        &mut self,
        _collection: &str,
        _key: &str,
        _name: &str,
        _value: Vec<u8>,
    ) -> Result<(), SimError> {
        Ok(())
    }
}
