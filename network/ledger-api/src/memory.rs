//! In-memory implementations for tests: [`MemoryLedger`], a committed ledger to simulate and
//! validate over, and [`MemorySimulator`], a simulator that logs writes for tests of the
//! runtime.

use std::collections::{BTreeMap, BTreeSet};

use medledger_proto::TxId;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::query::{HistoryQueryExecutor, QueryExecutor, StateIter, TxIdIndex};
use crate::simulator::{RangePage, TxSimulator};
use crate::types::{HistoryEntry, Metadata, PrivateKey, StateKey, Version, VersionedValue};

/// A committed ledger in memory: public and private values with versions and metadata, and
/// committed tx ids. The hashed private state is derived from the private values; it has no
/// history.
#[derive(Debug, Clone, Default)]
pub struct MemoryLedger {
    /// (namespace, key) → value.
    pub public: BTreeMap<StateKey, VersionedValue>,
    /// (namespace, collection, key) → value.
    pub private: BTreeMap<PrivateKey, VersionedValue>,
    /// Committed transaction ids.
    pub tx_ids: BTreeSet<String>,
}

impl MemoryLedger {
    /// Sets a public value at a version (no metadata).
    pub fn put(&mut self, ns: &str, key: &str, value: &[u8], version: Version) {
        self.public.insert(
            (ns.to_owned(), key.to_owned()),
            VersionedValue {
                value: value.to_vec(),
                version,
                metadata: Metadata::new(),
            },
        );
    }
}

impl QueryExecutor for MemoryLedger {
    fn get_state(&self, ns: &str, key: &str) -> Result<Option<VersionedValue>> {
        Ok(self.public.get(&(ns.to_owned(), key.to_owned())).cloned())
    }

    fn get_state_range<'a>(&'a self, ns: &'a str, start: &str, end: &str) -> Result<StateIter<'a>> {
        let end = end.to_owned();
        Ok(Box::new(
            self.public
                .range((ns.to_owned(), start.to_owned())..)
                .take_while(move |((n, k), _)| n == ns && (end.is_empty() || *k < end))
                .map(|((_, k), v)| Ok((k.clone(), v.clone()))),
        ))
    }

    fn get_private_data(&self, ns: &str, coll: &str, key: &str) -> Result<Option<VersionedValue>> {
        Ok(self
            .private
            .get(&(ns.to_owned(), coll.to_owned(), key.to_owned()))
            .cloned())
    }

    fn get_private_data_hash(
        &self,
        ns: &str,
        coll: &str,
        key_hash: &[u8],
    ) -> Result<Option<VersionedValue>> {
        Ok(self
            .private
            .iter()
            .find(|((n, c, k), _)| {
                n == ns && c == coll && Sha256::digest(k.as_bytes())[..] == *key_hash
            })
            .map(|(_, v)| VersionedValue {
                value: Sha256::digest(&v.value).to_vec(),
                version: v.version,
                metadata: v.metadata.clone(),
            }))
    }
}

impl HistoryQueryExecutor for MemoryLedger {
    fn get_history_for_key(&self, _ns: &str, _key: &str) -> Result<Vec<HistoryEntry>> {
        Ok(Vec::new())
    }
}

impl TxIdIndex for MemoryLedger {
    fn tx_id_exists(&self, tx_id: &TxId) -> Result<bool> {
        Ok(self.tx_ids.contains(tx_id.as_str()))
    }
}

/// A simulator over an in-memory map, recording writes in order: for tests of the runtime
/// (the endorser records Fabric read-write sets over the ledger instead).
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
    fn get_state(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.state.get(key).cloned())
    }

    fn put_state(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        self.writes
            .push((String::new(), key.to_owned(), Some(value)));
        Ok(())
    }

    fn del_state(&mut self, key: &str) -> Result<()> {
        self.writes.push((String::new(), key.to_owned(), None));
        Ok(())
    }

    fn range(
        &mut self,
        start: &str,
        end: &str,
        bookmark: &str,
        limit: Option<usize>,
    ) -> Result<RangePage> {
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

    fn history(&mut self, _key: &str) -> Result<Vec<HistoryEntry>> {
        Ok(Vec::new())
    }

    fn get_private(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .private
            .get(&(collection.to_owned(), key.to_owned()))
            .cloned())
    }

    fn put_private(&mut self, collection: &str, key: &str, value: Vec<u8>) -> Result<()> {
        self.writes
            .push((collection.to_owned(), key.to_owned(), Some(value)));
        Ok(())
    }

    fn del_private(&mut self, collection: &str, key: &str) -> Result<()> {
        self.writes
            .push((collection.to_owned(), key.to_owned(), None));
        Ok(())
    }

    fn purge_private(&mut self, collection: &str, key: &str) -> Result<()> {
        self.del_private(collection, key)
    }

    fn private_hash(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .private
            .get(&(collection.to_owned(), key.to_owned()))
            .map(|v| Sha256::digest(v).to_vec()))
    }

    fn get_metadata(&mut self, _collection: &str, _key: &str) -> Result<Metadata> {
        Ok(Metadata::new())
    }

    fn put_metadata(
        &mut self,
        _collection: &str,
        _key: &str,
        _name: &str,
        _value: Vec<u8>,
    ) -> Result<()> {
        Ok(())
    }
}
