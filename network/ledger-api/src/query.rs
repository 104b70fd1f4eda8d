//! A consistent, read-only view of the world state that simulation reads from.

use std::collections::BTreeMap;

use crate::simulator::HistoryEntry;

/// Version of a committed key: the block and transaction that wrote it (Fabric's
/// `kvrwset.Version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Block number.
    pub block: u64,
    /// Transaction number in the block.
    pub tx: u64,
}

/// Reading the snapshot failed (storage error, or private data this peer does not hold).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state snapshot: {0}")]
pub struct SnapshotError(pub String);

/// A point-in-time view of one channel's state (public, private, hashed private, metadata,
/// history), as the ledger provides it to the endorser. Namespaces are chaincode names.
pub trait StateSnapshot: Send + Sync {
    /// Value and version of a public key.
    ///
    /// # Errors
    /// [`SnapshotError`] on storage failure.
    fn get(&self, ns: &str, key: &str) -> Result<Option<(Vec<u8>, Version)>, SnapshotError>;

    /// Public keys in `[start, end)` (empty `end` = unbounded), in key order, at most `limit`.
    ///
    /// # Errors
    /// [`SnapshotError`] on storage failure.
    fn range(
        &self,
        ns: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>, Version)>, SnapshotError>;

    /// Metadata entries of a public key (`collection` empty) or private key.
    ///
    /// # Errors
    /// [`SnapshotError`] on storage failure.
    fn metadata(
        &self,
        ns: &str,
        collection: &str,
        key: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, SnapshotError>;

    /// Committed history of a public key, newest first.
    ///
    /// # Errors
    /// [`SnapshotError`] on storage failure or when history is disabled.
    fn history(&self, ns: &str, key: &str) -> Result<Vec<HistoryEntry>, SnapshotError>;

    /// Private value and version (only on peers of member organizations).
    ///
    /// # Errors
    /// [`SnapshotError`] on storage failure or when the data is missing.
    fn private_get(
        &self,
        ns: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Version)>, SnapshotError>;

    /// Hash of a private value and its version, from the hashed state every peer keeps,
    /// looked up by SHA-256 of the key.
    ///
    /// # Errors
    /// [`SnapshotError`] on storage failure.
    fn private_hash(
        &self,
        ns: &str,
        collection: &str,
        key_hash: &[u8],
    ) -> Result<Option<(Vec<u8>, Version)>, SnapshotError>;
}

/// An in-memory state for tests: public and private values with versions.
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    /// (namespace, key) → (value, version).
    pub public: BTreeMap<(String, String), (Vec<u8>, Version)>,
    /// (namespace, collection, key) → (value, version).
    pub private: BTreeMap<(String, String, String), (Vec<u8>, Version)>,
    /// (namespace, collection, key) → metadata.
    pub metadata: BTreeMap<(String, String, String), BTreeMap<String, Vec<u8>>>,
}

impl MemoryState {
    /// Sets a public value at a version.
    pub fn put(&mut self, ns: &str, key: &str, value: &[u8], version: Version) {
        self.public
            .insert((ns.to_owned(), key.to_owned()), (value.to_vec(), version));
    }
}

impl StateSnapshot for MemoryState {
    fn get(&self, ns: &str, key: &str) -> Result<Option<(Vec<u8>, Version)>, SnapshotError> {
        Ok(self.public.get(&(ns.to_owned(), key.to_owned())).cloned())
    }

    fn range(
        &self,
        ns: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>, Version)>, SnapshotError> {
        Ok(self
            .public
            .range((ns.to_owned(), start.to_owned())..)
            .take_while(|((n, k), _)| n == ns && (end.is_empty() || k.as_str() < end))
            .take(limit)
            .map(|((_, k), (v, ver))| (k.clone(), v.clone(), *ver))
            .collect())
    }

    fn metadata(
        &self,
        ns: &str,
        collection: &str,
        key: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, SnapshotError> {
        Ok(self
            .metadata
            .get(&(ns.to_owned(), collection.to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or_default())
    }

    fn history(&self, _ns: &str, _key: &str) -> Result<Vec<HistoryEntry>, SnapshotError> {
        Ok(Vec::new())
    }

    fn private_get(
        &self,
        ns: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Version)>, SnapshotError> {
        Ok(self
            .private
            .get(&(ns.to_owned(), collection.to_owned(), key.to_owned()))
            .cloned())
    }

    fn private_hash(
        &self,
        ns: &str,
        collection: &str,
        key_hash: &[u8],
    ) -> Result<Option<(Vec<u8>, Version)>, SnapshotError> {
        use sha2::{Digest, Sha256};
        Ok(self
            .private
            .iter()
            .find(|((n, c, k), _)| {
                n == ns && c == collection && Sha256::digest(k.as_bytes())[..] == *key_hash
            })
            .map(|(_, (v, ver))| (Sha256::digest(v).to_vec(), *ver)))
    }
}
