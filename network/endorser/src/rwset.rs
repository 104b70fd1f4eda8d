//! Transaction simulation that records Fabric's read-write set.
//!
//! Reads come from the committed ledger, a [`LedgerReader`] (never from the transaction's own writes, as in
//! Fabric); the first read of each key records its committed version; writes keep the last
//! value per key; everything is emitted sorted by key so every endorser of a transaction
//! produces byte-identical results. Private writes go to the private read-write set; the public
//! set carries only their hashes (`CollectionHashedReadWriteSet`, with `pvt_rwset_hash` =
//! SHA-256 of the collection's private `KVRWSet` bytes), as Fabric does.

use std::collections::BTreeMap;

use medledger_ledger_api::{
    HistoryEntry, LedgerError, LedgerReader, Metadata, RangePage, Result, TxSimulator, Version,
};
use medledger_proto::kvrwset::{
    HashedRwSet, KvMetadataEntry, KvMetadataWrite, KvMetadataWriteHash, KvRead, KvReadHash,
    KvWrite, KvWriteHash, KvrwSet, QueryReads, RangeQueryInfo, range_query_info::ReadsInfo,
};
use medledger_proto::rwset::{
    CollectionHashedReadWriteSet, CollectionPvtReadWriteSet, NsPvtReadWriteSet, NsReadWriteSet,
    TxPvtReadWriteSet, TxReadWriteSet, tx_read_write_set::DataModel,
};
use prost::Message;
use sha2::{Digest, Sha256};

/// A private data collection of the chaincode, and whether this peer's organization is a
/// member (only members read or write its data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionAccess {
    /// Collection name.
    pub name: String,
    /// This peer's organization is a member.
    pub member: bool,
}

/// What simulation produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimulationResults {
    /// Public read-write set (goes into the transaction).
    pub public: TxReadWriteSet,
    /// Private read-write set of the collections this peer is a member of (goes to the
    /// transient store, then to the ledger), if any private data was written there.
    pub private: Option<TxPvtReadWriteSet>,
}

#[derive(Debug, Clone, Default)]
struct PrivateWrite {
    value: Option<Vec<u8>>,
    purge: bool,
}

/// A [`TxSimulator`] over the ledger, for one chaincode namespace.
pub struct RwSetSimulator<'a> {
    ledger: &'a dyn LedgerReader,
    ns: String,
    collections: BTreeMap<String, bool>,
    reads: BTreeMap<String, Option<Version>>,
    range_queries: Vec<RangeQueryInfo>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    metadata_writes: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pvt_reads: BTreeMap<(String, String), Option<Version>>,
    hashed_reads: BTreeMap<(String, Vec<u8>), Option<Version>>,
    pvt_writes: BTreeMap<(String, String), PrivateWrite>,
    pvt_metadata_writes: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

fn nonempty(key: &str) -> Result<()> {
    if key.is_empty() {
        Err(LedgerError::EmptyKey)
    } else {
        Ok(())
    }
}

fn entries(m: &BTreeMap<String, Vec<u8>>) -> Vec<KvMetadataEntry> {
    m.iter()
        .map(|(name, value)| KvMetadataEntry {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

impl<'a> RwSetSimulator<'a> {
    /// A simulator for chaincode namespace `ns` over `ledger`, with the chaincode's
    /// collections.
    pub fn new(ledger: &'a dyn LedgerReader, ns: &str, collections: &[CollectionAccess]) -> Self {
        RwSetSimulator {
            ledger,
            ns: ns.to_owned(),
            collections: collections
                .iter()
                .map(|c| (c.name.clone(), c.member))
                .collect(),
            reads: BTreeMap::new(),
            range_queries: Vec::new(),
            writes: BTreeMap::new(),
            metadata_writes: BTreeMap::new(),
            pvt_reads: BTreeMap::new(),
            hashed_reads: BTreeMap::new(),
            pvt_writes: BTreeMap::new(),
            pvt_metadata_writes: BTreeMap::new(),
        }
    }

    /// Writes (put, delete, purge) need a defined collection only: as in Fabric, a peer of a
    /// non-member organization may endorse a blind write; it records the hashes and keeps no
    /// private data (see [`RwSetSimulator::finish`]).
    fn defined(&self, collection: &str) -> Result<()> {
        if self.collections.contains_key(collection) {
            Ok(())
        } else {
            Err(self.undefined(collection))
        }
    }

    fn undefined(&self, collection: &str) -> LedgerError {
        LedgerError::UndefinedCollection {
            namespace: self.ns.clone(),
            collection: collection.to_owned(),
        }
    }

    /// Reads need membership: only member peers hold a collection's private data.
    fn member(&self, collection: &str) -> Result<()> {
        match self.collections.get(collection) {
            Some(true) => Ok(()),
            Some(false) => Err(LedgerError::NotMember {
                namespace: self.ns.clone(),
                collection: collection.to_owned(),
            }),
            None => Err(self.undefined(collection)),
        }
    }

    /// The recorded read-write sets.
    pub fn finish(self) -> SimulationResults {
        let kv = KvrwSet {
            reads: self
                .reads
                .iter()
                .map(|(k, v)| KvRead {
                    key: k.clone(),
                    version: v.map(Version::to_proto),
                })
                .collect(),
            range_queries_info: self.range_queries,
            writes: self
                .writes
                .iter()
                .map(|(k, v)| KvWrite {
                    key: k.clone(),
                    is_delete: v.is_none(),
                    value: v.clone().unwrap_or_default(),
                })
                .collect(),
            metadata_writes: self
                .metadata_writes
                .iter()
                .map(|(k, m)| KvMetadataWrite {
                    key: k.clone(),
                    entries: entries(m),
                })
                .collect(),
        };
        let mut collections: Vec<String> = self
            .pvt_writes
            .keys()
            .chain(self.pvt_reads.keys())
            .chain(self.pvt_metadata_writes.keys())
            .map(|(c, _)| c.clone())
            .chain(self.hashed_reads.keys().map(|(c, _)| c.clone()))
            .collect();
        collections.sort();
        collections.dedup();
        let mut hashed_sets = Vec::new();
        let mut private_sets = Vec::new();
        for coll in &collections {
            let in_coll = |c: &String| c == coll;
            let private_kv = KvrwSet {
                reads: self
                    .pvt_reads
                    .iter()
                    .filter(|((c, _), _)| in_coll(c))
                    .map(|((_, k), v)| KvRead {
                        key: k.clone(),
                        version: v.map(Version::to_proto),
                    })
                    .collect(),
                range_queries_info: Vec::new(),
                writes: self
                    .pvt_writes
                    .iter()
                    .filter(|((c, _), _)| in_coll(c))
                    .map(|((_, k), w)| KvWrite {
                        key: k.clone(),
                        is_delete: w.value.is_none(),
                        value: w.value.clone().unwrap_or_default(),
                    })
                    .collect(),
                metadata_writes: self
                    .pvt_metadata_writes
                    .iter()
                    .filter(|((c, _), _)| in_coll(c))
                    .map(|((_, k), m)| KvMetadataWrite {
                        key: k.clone(),
                        entries: entries(m),
                    })
                    .collect(),
            };
            let mut hashed_reads: Vec<KvReadHash> = self
                .pvt_reads
                .iter()
                .filter(|((c, _), _)| in_coll(c))
                .map(|((_, k), v)| (Sha256::digest(k.as_bytes()).to_vec(), *v))
                .chain(
                    self.hashed_reads
                        .iter()
                        .filter(|((c, _), _)| in_coll(c))
                        .map(|((_, kh), v)| (kh.clone(), *v)),
                )
                .map(|(key_hash, v)| KvReadHash {
                    key_hash,
                    version: v.map(Version::to_proto),
                })
                .collect();
            hashed_reads.sort_by(|a, b| a.key_hash.cmp(&b.key_hash));
            hashed_reads.dedup_by(|a, b| a.key_hash == b.key_hash);
            let hashed = HashedRwSet {
                hashed_reads,
                hashed_writes: self
                    .pvt_writes
                    .iter()
                    .filter(|((c, _), _)| in_coll(c))
                    .map(|((_, k), w)| KvWriteHash {
                        key_hash: Sha256::digest(k.as_bytes()).to_vec(),
                        is_delete: w.value.is_none(),
                        value_hash: w
                            .value
                            .as_ref()
                            .map(|v| Sha256::digest(v).to_vec())
                            .unwrap_or_default(),
                        is_purge: w.purge,
                    })
                    .collect(),
                metadata_writes: self
                    .pvt_metadata_writes
                    .iter()
                    .filter(|((c, _), _)| in_coll(c))
                    .map(|((_, k), m)| KvMetadataWriteHash {
                        key_hash: Sha256::digest(k.as_bytes()).to_vec(),
                        entries: entries(m),
                    })
                    .collect(),
            };
            let private_bytes = private_kv.encode_to_vec();
            let has_private = !private_kv.writes.is_empty()
                || !private_kv.reads.is_empty()
                || !private_kv.metadata_writes.is_empty();
            hashed_sets.push(CollectionHashedReadWriteSet {
                collection_name: coll.clone(),
                hashed_rwset: hashed.encode_to_vec(),
                pvt_rwset_hash: if has_private {
                    Sha256::digest(&private_bytes).to_vec()
                } else {
                    Vec::new()
                },
            });
            // Only a member keeps the private data (its transient store, then its ledger); a
            // non-member's endorsement carries the hashes alone.
            if has_private && self.collections.get(coll) == Some(&true) {
                private_sets.push(CollectionPvtReadWriteSet {
                    collection_name: coll.clone(),
                    rwset: private_bytes,
                });
            }
        }
        let public = TxReadWriteSet {
            data_model: DataModel::Kv as i32,
            ns_rwset: vec![NsReadWriteSet {
                namespace: self.ns.clone(),
                rwset: kv.encode_to_vec(),
                collection_hashed_rwset: hashed_sets,
            }],
        };
        let private = (!private_sets.is_empty()).then(|| TxPvtReadWriteSet {
            data_model: DataModel::Kv as i32,
            ns_pvt_rwset: vec![NsPvtReadWriteSet {
                namespace: self.ns.clone(),
                collection_pvt_rwset: private_sets,
            }],
        });
        SimulationResults { public, private }
    }
}

impl TxSimulator for RwSetSimulator<'_> {
    fn get_state(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        let found = self.ledger.get_state(&self.ns, key)?;
        self.reads
            .entry(key.to_owned())
            .or_insert(found.as_ref().map(|v| v.version));
        Ok(found.map(|v| v.value))
    }

    fn put_state(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        nonempty(key)?;
        self.writes.insert(key.to_owned(), Some(value));
        Ok(())
    }

    fn del_state(&mut self, key: &str) -> Result<()> {
        nonempty(key)?;
        self.writes.insert(key.to_owned(), None);
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
        let fetch = limit.map_or(usize::MAX, |l| l.saturating_add(1));
        let mut rows = self
            .ledger
            .get_state_range(&self.ns, from, end)?
            .take(fetch)
            .collect::<Result<Vec<_>>>()?;
        let next = match limit {
            Some(l) if rows.len() > l => rows.split_off(l).remove(0).0,
            _ => String::new(),
        };
        self.range_queries.push(RangeQueryInfo {
            start_key: from.to_owned(),
            end_key: end.to_owned(),
            itr_exhausted: next.is_empty(),
            reads_info: Some(ReadsInfo::RawReads(QueryReads {
                kv_reads: rows
                    .iter()
                    .map(|(k, v)| KvRead {
                        key: k.clone(),
                        version: Some(v.version.to_proto()),
                    })
                    .collect(),
            })),
        });
        Ok((rows.into_iter().map(|(k, v)| (k, v.value)).collect(), next))
    }

    fn history(&mut self, key: &str) -> Result<Vec<HistoryEntry>> {
        self.ledger.get_history_for_key(&self.ns, key)
    }

    fn get_private(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.member(collection)?;
        let found = self.ledger.get_private_data(&self.ns, collection, key)?;
        self.pvt_reads
            .entry((collection.to_owned(), key.to_owned()))
            .or_insert(found.as_ref().map(|v| v.version));
        Ok(found.map(|v| v.value))
    }

    fn put_private(&mut self, collection: &str, key: &str, value: Vec<u8>) -> Result<()> {
        nonempty(key)?;
        self.defined(collection)?;
        self.pvt_writes.insert(
            (collection.to_owned(), key.to_owned()),
            PrivateWrite {
                value: Some(value),
                purge: false,
            },
        );
        Ok(())
    }

    fn del_private(&mut self, collection: &str, key: &str) -> Result<()> {
        nonempty(key)?;
        self.defined(collection)?;
        self.pvt_writes.insert(
            (collection.to_owned(), key.to_owned()),
            PrivateWrite::default(),
        );
        Ok(())
    }

    fn purge_private(&mut self, collection: &str, key: &str) -> Result<()> {
        nonempty(key)?;
        self.defined(collection)?;
        self.pvt_writes.insert(
            (collection.to_owned(), key.to_owned()),
            PrivateWrite {
                value: None,
                purge: true,
            },
        );
        Ok(())
    }

    fn private_hash(&mut self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.defined(collection)?;
        let key_hash = Sha256::digest(key.as_bytes()).to_vec();
        let found = self
            .ledger
            .get_private_data_hash(&self.ns, collection, &key_hash)?;
        self.hashed_reads
            .entry((collection.to_owned(), key_hash))
            .or_insert(found.as_ref().map(|v| v.version));
        Ok(found.map(|v| v.value))
    }

    fn get_metadata(&mut self, collection: &str, key: &str) -> Result<Metadata> {
        if collection.is_empty() {
            self.ledger.get_state_metadata(&self.ns, key)
        } else {
            self.member(collection)?;
            self.ledger
                .get_private_data_metadata(&self.ns, collection, key)
        }
    }

    fn put_metadata(
        &mut self,
        collection: &str,
        key: &str,
        name: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        nonempty(key)?;
        let entry = if collection.is_empty() {
            self.metadata_writes.entry(key.to_owned()).or_default()
        } else {
            self.member(collection)?;
            self.pvt_metadata_writes
                .entry((collection.to_owned(), key.to_owned()))
                .or_default()
        };
        entry.insert(name.to_owned(), value);
        Ok(())
    }
}
