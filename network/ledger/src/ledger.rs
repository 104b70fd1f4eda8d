//! [`Ledger`]: one RocksDB per peer per channel.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use medledger_channel::block;
use medledger_proto::common::Block;
use medledger_proto::kvrwset::{KvMetadataEntry, KvrwSet};
use medledger_proto::protos::TxValidationCode;
use medledger_proto::{ChannelId, TxId};
use prost::Message;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, ErrorKind, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::keys::{self, ALL_CFS};
use crate::records::{HistoryRecord, Savepoint, StoredValue, TxIndexRecord};
use medledger_ledger_api::{
    BlockUpdate, HashedKey, HistoryEntry, LedgerInfo, Metadata, MissingPrivate, PrivateRwSet,
    TxLocation, Version, VersionedValue,
};

/// How much of the hash chain [`Ledger::open`] verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// From the block the previous successful open verified up to, to the savepoint
    /// (default): every block is checked at least once after it was written, and opening
    /// costs what was committed since the last open.
    #[default]
    FromCheckpoint,
    /// Every stored block, from the genesis block.
    Full,
}

/// Ledger options.
#[derive(Debug, Clone, Default)]
pub struct LedgerConfig {
    /// Hash-chain verification on open.
    pub verify_on_open: VerifyMode,
}

#[derive(Debug, Clone, Default)]
struct Tip {
    height: u64,
    last_hash: Vec<u8>,
    commit_hash: Vec<u8>,
}

/// A channel's ledger on one peer: blocks, tx index, world state with versions, history,
/// hashed and private collection state, savepoint, in one RocksDB with a column family each
/// (layouts in [`crate::keys`]).
///
/// Writes happen only through [`Ledger::commit`], one atomic fsynced write batch per block, so
/// after any crash the stored blocks and state are those of a whole number of blocks. Reads
/// may run concurrently with a commit and see either the state before or after it per key
/// (the committer is the only writer; it reads its own consistent view).
pub struct Ledger {
    channel: ChannelId,
    db: DB,
    tip: Mutex<Tip>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("channel", &self.channel)
            .field("height", &self.height())
            .finish()
    }
}

fn stored_value(v: &VersionedValue) -> Vec<u8> {
    stored_value_with_key(v, String::new())
}

fn stored_value_with_key(v: &VersionedValue, key: String) -> Vec<u8> {
    StoredValue {
        key,
        value: v.value.clone(),
        block_num: v.version.block_num,
        tx_num: v.version.tx_num,
        metadata: v
            .metadata
            .iter()
            .map(|(name, value)| KvMetadataEntry {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
    .encode_to_vec()
}

fn versioned_value(s: StoredValue) -> VersionedValue {
    VersionedValue {
        value: s.value,
        version: Version::new(s.block_num, s.tx_num),
        metadata: s
            .metadata
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect::<Metadata>(),
    }
}

impl Ledger {
    /// Opens (creating if absent) the ledger of `channel_id` in directory `path`, then checks
    /// the stored hash chain (`number`, `data_hash`, `previous_hash`) as `config` says, and that
    /// the savepoint names the last stored block with its header hash.
    ///
    /// The caller parses the channel name where it arrives (a genesis block's channel header,
    /// `medledger ledger verify`'s `--channel`), so a malformed one never reaches the disk.
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming the first bad block ("ledger corrupted at block N"),
    /// [`Error::CorruptedRecord`] for an undecodable savepoint, [`Error::Storage`] if RocksDB
    /// cannot open the directory (e.g. another process holds it).
    pub fn open(path: &Path, channel_id: &ChannelId, config: &LedgerConfig) -> Result<Self> {
        let channel = channel_id.clone();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_paranoid_checks(true);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|error| Error::Storage {
            channel: channel.clone(),
            error,
        })?;
        let ledger = Ledger {
            channel,
            db,
            tip: Mutex::new(Tip::default()),
        };
        let tip = ledger.verify_chain(config.verify_on_open)?;
        info!(target: "ledger", channel = %ledger.channel, height = tip.height, "ledger opened");
        *ledger.lock_tip() = tip;
        Ok(ledger)
    }

    /// The channel id.
    pub fn channel_id(&self) -> &ChannelId {
        &self.channel
    }

    fn lock_tip(&self) -> MutexGuard<'_, Tip> {
        // A poisoned lock only means a panic elsewhere while holding it; the tip is replaced
        // whole, so it is never half updated.
        self.tip.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::CorruptedRecord {
                channel: self.channel.clone(),
                what: name,
            })
    }

    fn storage(&self, error: rocksdb::Error) -> Error {
        Error::Storage {
            channel: self.channel.clone(),
            error,
        }
    }

    fn corrupted(&self, block: u64, reason: impl Into<String>) -> Error {
        Error::Corrupted {
            channel: self.channel.clone(),
            block,
            reason: reason.into(),
        }
    }

    fn bad_record(&self, what: &'static str) -> Error {
        Error::CorruptedRecord {
            channel: self.channel.clone(),
            what,
        }
    }

    fn get_meta_u64(&self, key: &[u8]) -> Result<Option<u64>> {
        let v = self
            .db
            .get_cf(self.cf(keys::CF_META)?, key)
            .map_err(|e| self.storage(e))?;
        match v {
            None => Ok(None),
            Some(b) => Ok(Some(u64::from_be_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| self.bad_record("checkpoint"))?,
            ))),
        }
    }

    fn savepoint(&self) -> Result<Option<Savepoint>> {
        let v = self
            .db
            .get_cf(self.cf(keys::CF_META)?, keys::META_SAVEPOINT)
            .map_err(|e| self.storage(e))?;
        v.map(|b| Savepoint::decode(b.as_slice()).map_err(|_| self.bad_record("savepoint")))
            .transpose()
    }

    /// Reads block `n` as stored, mapping storage corruption and undecodable bytes to
    /// [`Error::Corrupted`] at `n`; checks its number and data hash.
    fn load_block(&self, n: u64) -> Result<Option<Block>> {
        let raw = match self
            .db
            .get_cf(self.cf(keys::CF_BLOCKS)?, keys::block_key(n))
        {
            Ok(raw) => raw,
            Err(e) if e.kind() == ErrorKind::Corruption => {
                return Err(self.corrupted(n, format!("storage: {e}")));
            }
            Err(e) => return Err(self.storage(e)),
        };
        let Some(raw) = raw else { return Ok(None) };
        let block = Block::decode(raw.as_slice())
            .map_err(|_| self.corrupted(n, "stored block does not decode"))?;
        let header = block
            .header
            .as_ref()
            .ok_or_else(|| self.corrupted(n, "stored block has no header"))?;
        if header.number != n {
            return Err(self.corrupted(n, format!("stored block says number {}", header.number)));
        }
        let data = block
            .data
            .as_ref()
            .ok_or_else(|| self.corrupted(n, "stored block has no data"))?;
        if header.data_hash != block::data_hash(data) {
            return Err(self.corrupted(n, "data hash does not match the block data"));
        }
        Ok(Some(block))
    }

    fn verify_chain(&self, mode: VerifyMode) -> Result<Tip> {
        let Some(sp) = self.savepoint()? else {
            // Empty ledger: no block may exist without a savepoint.
            let mut it = self
                .db
                .iterator_cf(self.cf(keys::CF_BLOCKS)?, IteratorMode::Start);
            if it.next().is_some() {
                return Err(self.corrupted(0, "blocks are stored but there is no savepoint"));
            }
            return Ok(Tip::default());
        };
        let from = match mode {
            VerifyMode::Full => 0,
            VerifyMode::FromCheckpoint => self
                .get_meta_u64(keys::META_VERIFIED)?
                .unwrap_or(0)
                .min(sp.block_num),
        };
        let mut prev_hash: Option<[u8; 32]> = None;
        for n in from..=sp.block_num {
            let block = self
                .load_block(n)?
                .ok_or_else(|| self.corrupted(n, "block is missing below the savepoint"))?;
            let header = block
                .header
                .as_ref()
                .ok_or_else(|| self.corrupted(n, "no header"))?;
            if let Some(prev) = prev_hash
                && header.previous_hash != prev
            {
                return Err(self.corrupted(n, "previous_hash does not match block before"));
            }
            prev_hash = Some(block::header_hash(header));
        }
        let last_hash = prev_hash.unwrap_or_default();
        if last_hash.as_slice() != sp.header_hash.as_slice() {
            return Err(self.corrupted(sp.block_num, "header hash differs from the savepoint"));
        }
        if self.load_block(sp.block_num + 1).ok().flatten().is_some() {
            return Err(self.corrupted(sp.block_num + 1, "block stored beyond the savepoint"));
        }
        self.db
            .put_cf_opt(
                self.cf(keys::CF_META)?,
                keys::META_VERIFIED,
                sp.block_num.to_be_bytes(),
                &sync_write(),
            )
            .map_err(|e| self.storage(e))?;
        debug!(target: "ledger", channel = %self.channel, from, to = sp.block_num, "hash chain verified");
        Ok(Tip {
            height: sp.block_num + 1,
            last_hash: sp.header_hash,
            commit_hash: sp.commit_hash,
        })
    }

    /// Number of blocks (last block number + 1); 0 before the genesis block.
    pub fn height(&self) -> u64 {
        self.lock_tip().height
    }

    /// Height, last header hash and commit hash.
    pub fn info(&self) -> LedgerInfo {
        let tip = self.lock_tip();
        LedgerInfo {
            height: tip.height,
            current_hash: tip.last_hash.clone(),
            commit_hash: tip.commit_hash.clone(),
        }
    }

    /// Commits one block and everything it changes in ONE atomic RocksDB write batch with
    /// `sync = true`: block, tx index, world state, history, hashed and private state, missing
    /// private data records, savepoint. The block must be the next one: number = height,
    /// `previous_hash` = header hash of the last block (not checked for the genesis block),
    /// `data_hash` = hash of its data. A tx_id already indexed keeps its first entry.
    ///
    /// # Errors
    /// [`Error::NotNextBlock`], [`Error::InvalidName`], [`Error::Storage`] (nothing was
    /// written then).
    pub fn commit(&self, update: BlockUpdate) -> Result<()> {
        let mut tip = self.lock_tip();
        let header = update
            .block
            .header
            .as_ref()
            .ok_or_else(|| self.not_next(0, tip.height, "block has no header"))?;
        let number = header.number;
        if number != tip.height {
            return Err(self.not_next(number, tip.height, "block number is not the height"));
        }
        if number > 0 && header.previous_hash != tip.last_hash {
            return Err(self.not_next(number, tip.height, "previous_hash does not match"));
        }
        let data = update
            .block
            .data
            .as_ref()
            .ok_or_else(|| self.not_next(number, tip.height, "block has no data"))?;
        if header.data_hash != block::data_hash(data) {
            return Err(self.not_next(number, tip.height, "data hash does not match data"));
        }
        let header_hash = block::header_hash(header).to_vec();

        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(keys::CF_BLOCKS)?,
            keys::block_key(number),
            update.block.encode_to_vec(),
        );
        let txids = self.cf(keys::CF_TXIDS)?;
        let mut seen = std::collections::HashSet::new();
        for tx in &update.txs {
            if !seen.insert(tx.tx_id.as_str()) {
                continue;
            }
            let exists = self
                .db
                .get_pinned_cf(txids, tx.tx_id.as_bytes())
                .map_err(|e| self.storage(e))?
                .is_some();
            if !exists {
                let rec = TxIndexRecord {
                    block_num: number,
                    tx_num: tx.tx_num,
                    validation_code: tx.code as i32,
                };
                batch.put_cf(txids, tx.tx_id.as_bytes(), rec.encode_to_vec());
            }
        }
        let state = self.cf(keys::CF_STATE)?;
        for ((ns, key), value) in &update.state {
            self.check_name(ns, "namespace")?;
            let k = keys::state_key(ns, key);
            match value {
                Some(v) => batch.put_cf(state, k, stored_value(v)),
                None => batch.delete_cf(state, k),
            }
        }
        let history = self.cf(keys::CF_HISTORY)?;
        for h in &update.history {
            self.check_name(&h.namespace, "namespace")?;
            let rec = HistoryRecord {
                tx_id: h.tx_id.clone(),
                timestamp: h.timestamp,
                is_delete: h.is_delete,
                value: h.value.clone(),
            };
            batch.put_cf(
                history,
                keys::history_key(&h.namespace, &h.key, number, h.tx_num),
                rec.encode_to_vec(),
            );
        }
        let hashed = self.cf(keys::CF_PVT_HASHES)?;
        for ((ns, coll, key_hash), value) in &update.hashed {
            self.check_name(ns, "namespace")?;
            self.check_name(coll, "collection")?;
            let k = keys::collection_key(ns, coll, key_hash);
            match value {
                Some(v) => batch.put_cf(hashed, k, stored_value(v)),
                None => batch.delete_cf(hashed, k),
            }
        }
        // Purges first: a later transaction of the block may write the key again.
        self.apply_purges(&mut batch, &update.purges)?;
        let private = self.cf(keys::CF_PVT_DATA)?;
        for ((ns, coll, key), value) in &update.private {
            self.check_name(ns, "namespace")?;
            self.check_name(coll, "collection")?;
            let k = keys::collection_key(ns, coll, &Sha256::digest(key.as_bytes()));
            match value {
                Some(v) => batch.put_cf(private, k, stored_value_with_key(v, key.clone())),
                None => batch.delete_cf(private, k),
            }
        }
        let missing = self.cf(keys::CF_PVT_MISSING)?;
        for m in &update.missing_private {
            self.check_name(&m.namespace, "namespace")?;
            self.check_name(&m.collection, "collection")?;
            batch.put_cf(
                missing,
                keys::missing_key(m.block_num, m.tx_num, &m.namespace, &m.collection),
                b"",
            );
        }
        self.put_private_rwsets(&mut batch, number, &update.private_rwsets)?;
        let sp = Savepoint {
            block_num: number,
            header_hash: header_hash.clone(),
            commit_hash: update.commit_hash.clone(),
        };
        batch.put_cf(
            self.cf(keys::CF_META)?,
            keys::META_SAVEPOINT,
            sp.encode_to_vec(),
        );
        self.db
            .write_opt(batch, &sync_write())
            .map_err(|e| self.storage(e))?;
        *tip = Tip {
            height: number + 1,
            last_hash: header_hash,
            commit_hash: update.commit_hash,
        };
        debug!(target: "ledger", channel = %self.channel, block = number, "block committed");
        Ok(())
    }

    fn put_private_rwsets(
        &self,
        batch: &mut WriteBatch,
        block_num: u64,
        sets: &[PrivateRwSet],
    ) -> Result<()> {
        let pvt_tx = self.cf(keys::CF_PVT_TX)?;
        let key_tx = self.cf(keys::CF_PVT_KEY_TX)?;
        for p in sets {
            self.check_name(&p.namespace, "namespace")?;
            self.check_name(&p.collection, "collection")?;
            batch.put_cf(
                pvt_tx,
                keys::missing_key(block_num, p.tx_num, &p.namespace, &p.collection),
                &p.rwset,
            );
            for h in &p.key_hashes {
                batch.put_cf(
                    key_tx,
                    keys::key_tx_key(&p.namespace, &p.collection, h, block_num, p.tx_num),
                    b"",
                );
            }
        }
        Ok(())
    }

    /// Removes purged keys' writes from the stored private read-write sets that hold them.
    fn apply_purges(&self, batch: &mut WriteBatch, purges: &[(HashedKey, Version)]) -> Result<()> {
        if purges.is_empty() {
            return Ok(());
        }
        let pvt_tx = self.cf(keys::CF_PVT_TX)?;
        let key_tx = self.cf(keys::CF_PVT_KEY_TX)?;
        let pvt_data = self.cf(keys::CF_PVT_DATA)?;
        let meta = self.cf(keys::CF_META)?;
        let mut rewritten: std::collections::HashMap<Vec<u8>, KvrwSet> =
            std::collections::HashMap::new();
        for ((ns, coll, key_hash), at) in purges {
            self.check_name(ns, "namespace")?;
            self.check_name(coll, "collection")?;
            batch.delete_cf(pvt_data, keys::collection_key(ns, coll, key_hash));
            let mut mark = at.block_num.to_be_bytes().to_vec();
            mark.extend_from_slice(&at.tx_num.to_be_bytes());
            batch.put_cf(meta, keys::purge_mark_key(ns, coll, key_hash), mark);
            let prefix = keys::collection_key(ns, coll, key_hash);
            let mut upper = prefix.clone();
            upper.extend_from_slice(&[0xff; 17]);
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(upper);
            let it = self.db.iterator_cf_opt(
                key_tx,
                ro,
                IteratorMode::From(&prefix, Direction::Forward),
            );
            for item in it {
                let (k, _) = item.map_err(|e| self.storage(e))?;
                let (block, tx) = keys::history_position(&k)
                    .ok_or_else(|| self.bad_record("private key index"))?;
                batch.delete_cf(key_tx, &k);
                let entry = keys::missing_key(block, tx, ns, coll);
                let set = match rewritten.remove(&entry) {
                    Some(set) => Some(set),
                    None => self
                        .db
                        .get_cf(pvt_tx, &entry)
                        .map_err(|e| self.storage(e))?
                        .map(|b| {
                            KvrwSet::decode(b.as_slice())
                                .map_err(|_| self.bad_record("private rwset"))
                        })
                        .transpose()?,
                };
                if let Some(mut set) = set {
                    set.writes
                        .retain(|w| Sha256::digest(w.key.as_bytes())[..] != key_hash[..]);
                    rewritten.insert(entry, set);
                }
            }
        }
        for (entry, set) in rewritten {
            if set.writes.is_empty() {
                batch.delete_cf(pvt_tx, entry);
            } else {
                batch.put_cf(pvt_tx, entry, set.encode_to_vec());
            }
        }
        Ok(())
    }

    /// The stored private read-write set of collection `coll` of `ns` written by transaction
    /// `tx` of block `block` (member peers only; purged keys removed).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn private_rwset(
        &self,
        block: u64,
        tx: u64,
        ns: &str,
        coll: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(
                self.cf(keys::CF_PVT_TX)?,
                keys::missing_key(block, tx, ns, coll),
            )
            .map_err(|e| self.storage(e))
    }

    /// The version of the transaction that last purged private key `key_hash` of collection
    /// `coll` of `ns`, if it was ever purged.
    ///
    /// # Errors
    /// [`Error::Storage`]; [`Error::Corrupted`] for an unreadable mark.
    pub fn purged_at(&self, ns: &str, coll: &str, key_hash: &[u8]) -> Result<Option<Version>> {
        let Some(mark) = self
            .db
            .get_cf(
                self.cf(keys::CF_META)?,
                keys::purge_mark_key(ns, coll, key_hash),
            )
            .map_err(|e| self.storage(e))?
        else {
            return Ok(None);
        };
        let (block, tx) = mark
            .split_at_checked(8)
            .and_then(|(b, t)| Some((<[u8; 8]>::try_from(b).ok()?, <[u8; 8]>::try_from(t).ok()?)))
            .ok_or_else(|| self.bad_record("purge mark"))?;
        Ok(Some(Version::new(
            u64::from_be_bytes(block),
            u64::from_be_bytes(tx),
        )))
    }

    /// Stores private data obtained after its block was committed (reconciliation): the
    /// read-write set `rwset` of `missing`, which the caller has checked against the on-chain
    /// hash. Each write becomes the current private value only if the key's hashed state
    /// still carries that transaction's version (no later write or purge superseded it). The
    /// missing record is removed. One atomic, fsynced batch, serialised with commits.
    ///
    /// # Errors
    /// [`Error::CorruptedRecord`] if `rwset` does not decode, [`Error::InvalidName`],
    /// [`Error::Storage`].
    pub fn reconcile_private(&self, missing: &MissingPrivate, rwset: &[u8]) -> Result<()> {
        let _tip = self.lock_tip();
        let m = missing;
        let mut set = KvrwSet::decode(rwset).map_err(|_| self.bad_record("private rwset"))?;
        let mut batch = WriteBatch::default();
        let version = m.version();
        let private = self.cf(keys::CF_PVT_DATA)?;
        // A write purged since is neither installed nor kept to serve: purged PHI never comes
        // back through a member peer that still had it.
        let before = set.writes.len();
        let mut kept = Vec::with_capacity(before);
        for w in std::mem::take(&mut set.writes) {
            let key_hash = Sha256::digest(w.key.as_bytes());
            if self
                .purged_at(&m.namespace, &m.collection, &key_hash)?
                .is_none_or(|at| at < version)
            {
                kept.push(w);
            }
        }
        set.writes = kept;
        let stored = if set.writes.len() == before {
            rwset.to_vec()
        } else {
            set.encode_to_vec()
        };
        let mut key_hashes = Vec::with_capacity(set.writes.len());
        for w in &set.writes {
            let key_hash = Sha256::digest(w.key.as_bytes()).to_vec();
            let current = self.get_private_hash(&m.namespace, &m.collection, &key_hash)?;
            if current.is_some_and(|c| c.version == version) {
                let k = keys::collection_key(&m.namespace, &m.collection, &key_hash);
                if w.is_delete {
                    batch.delete_cf(private, k);
                } else {
                    let v = VersionedValue {
                        value: w.value.clone(),
                        version,
                        metadata: Metadata::new(),
                    };
                    batch.put_cf(private, k, stored_value_with_key(&v, w.key.clone()));
                }
            }
            key_hashes.push(key_hash);
        }
        self.put_private_rwsets(
            &mut batch,
            m.block_num,
            &[PrivateRwSet {
                tx_num: m.tx_num,
                namespace: m.namespace.clone(),
                collection: m.collection.clone(),
                rwset: stored,
                key_hashes,
            }],
        )?;
        batch.delete_cf(
            self.cf(keys::CF_PVT_MISSING)?,
            keys::missing_key(m.block_num, m.tx_num, &m.namespace, &m.collection),
        );
        self.db
            .write_opt(batch, &sync_write())
            .map_err(|e| self.storage(e))?;
        debug!(target: "ledger", channel = %self.channel, block = m.block_num, tx = m.tx_num, "private data reconciled");
        Ok(())
    }

    fn not_next(&self, block: u64, height: u64, reason: &'static str) -> Error {
        Error::NotNextBlock {
            channel: self.channel.clone(),
            block,
            height,
            reason,
        }
    }

    fn check_name(&self, name: &str, what: &'static str) -> Result<()> {
        if keys::valid_name(name) {
            Ok(())
        } else {
            Err(Error::InvalidName {
                channel: self.channel.clone(),
                what,
            })
        }
    }

    /// Block `number` as committed (with TRANSACTIONS_FILTER and COMMIT_HASH metadata), or
    /// `None` at or above the height. Its data hash is checked on every read.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the stored block does not decode or match its data hash;
    /// [`Error::Storage`].
    pub fn block(&self, number: u64) -> Result<Option<Block>> {
        self.load_block(number)
    }

    /// Where transaction `tx_id` is and its validation code (first occurrence on the ledger).
    ///
    /// # Errors
    /// [`Error::CorruptedRecord`], [`Error::Storage`].
    pub fn tx_location(&self, tx_id: &TxId) -> Result<Option<TxLocation>> {
        let raw = self
            .db
            .get_pinned_cf(self.cf(keys::CF_TXIDS)?, tx_id.as_str().as_bytes())
            .map_err(|e| self.storage(e))?;
        let Some(raw) = raw else { return Ok(None) };
        let rec = TxIndexRecord::decode(raw.as_ref()).map_err(|_| self.bad_record("tx index"))?;
        let code = TxValidationCode::try_from(rec.validation_code)
            .map_err(|_| self.bad_record("tx index"))?;
        Ok(Some(TxLocation {
            block_num: rec.block_num,
            tx_num: rec.tx_num,
            code,
        }))
    }

    /// Whether `tx_id` is on the ledger (in any block, valid or not).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn tx_exists(&self, tx_id: &TxId) -> Result<bool> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(keys::CF_TXIDS)?, tx_id.as_str().as_bytes())
            .map_err(|e| self.storage(e))?
            .is_some())
    }

    /// The validation code of transaction `tx_id`.
    ///
    /// # Errors
    /// As [`Ledger::tx_location`].
    pub fn tx_validation_code(&self, tx_id: &TxId) -> Result<Option<TxValidationCode>> {
        Ok(self.tx_location(tx_id)?.map(|l| l.code))
    }

    /// The block holding transaction `tx_id`.
    ///
    /// # Errors
    /// As [`Ledger::tx_location`] and [`Ledger::block`].
    pub fn block_by_tx_id(&self, tx_id: &TxId) -> Result<Option<Block>> {
        match self.tx_location(tx_id)? {
            Some(loc) => self.block(loc.block_num),
            None => Ok(None),
        }
    }

    fn get_value(&self, cf: &'static str, key: &[u8]) -> Result<Option<VersionedValue>> {
        let raw = self
            .db
            .get_pinned_cf(self.cf(cf)?, key)
            .map_err(|e| self.storage(e))?;
        raw.map(|b| {
            StoredValue::decode(b.as_ref())
                .map(versioned_value)
                .map_err(|_| self.bad_record(cf))
        })
        .transpose()
    }

    /// The committed value of `key` in namespace `ns`, with version and metadata.
    ///
    /// # Errors
    /// [`Error::CorruptedRecord`], [`Error::Storage`].
    pub fn get_state(&self, ns: &str, key: &str) -> Result<Option<VersionedValue>> {
        self.get_value(keys::CF_STATE, &keys::state_key(ns, key))
    }

    /// Committed keys of `ns` in `[start, end)` in byte order (an empty `end` runs to the end
    /// of the namespace), as Fabric's `GetStateByRange`.
    ///
    /// # Errors
    /// Each item may be [`Error::CorruptedRecord`] or [`Error::Storage`].
    pub fn state_range<'a>(
        &'a self,
        ns: &'a str,
        start: &str,
        end: &str,
    ) -> Result<impl Iterator<Item = Result<(String, VersionedValue)>> + 'a> {
        let (lower, upper) = keys::state_range(ns, start, end);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(upper);
        let it = self.db.iterator_cf_opt(
            self.cf(keys::CF_STATE)?,
            ro,
            IteratorMode::From(&lower, Direction::Forward),
        );
        Ok(it.map(move |item| {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            let user = keys::state_user_key(ns, &k).ok_or_else(|| self.bad_record("state"))?;
            let key = String::from_utf8(user.to_vec()).map_err(|_| self.bad_record("state"))?;
            let value = StoredValue::decode(v.as_ref()).map_err(|_| self.bad_record("state"))?;
            Ok((key, versioned_value(value)))
        }))
    }

    /// The writes to `key` of `ns` by valid transactions, newest first (Fabric 2.x
    /// `GetHistoryForKey` order).
    ///
    /// # Errors
    /// Each item may be [`Error::CorruptedRecord`] or [`Error::Storage`].
    pub fn history<'a>(
        &'a self,
        ns: &str,
        key: &str,
    ) -> Result<impl Iterator<Item = Result<HistoryEntry>> + 'a> {
        let prefix = keys::history_prefix(ns, key);
        let mut upper = prefix.clone();
        upper.extend_from_slice(&[0xff; 17]);
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix);
        ro.set_iterate_upper_bound(upper);
        let it = self
            .db
            .iterator_cf_opt(self.cf(keys::CF_HISTORY)?, ro, IteratorMode::End);
        Ok(it.map(move |item| {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            let (block_num, tx_num) =
                keys::history_position(&k).ok_or_else(|| self.bad_record("history"))?;
            let rec = HistoryRecord::decode(v.as_ref()).map_err(|_| self.bad_record("history"))?;
            Ok(HistoryEntry {
                block_num,
                tx_num,
                tx_id: rec.tx_id,
                timestamp: rec.timestamp.and_then(|t| SystemTime::try_from(t).ok()),
                is_delete: rec.is_delete,
                value: rec.value,
            })
        }))
    }

    /// The hashed private state of a collection key (value = SHA-256 of the private value),
    /// kept on every peer of the channel.
    ///
    /// # Errors
    /// [`Error::CorruptedRecord`], [`Error::Storage`].
    pub fn get_private_hash(
        &self,
        ns: &str,
        coll: &str,
        key_hash: &[u8],
    ) -> Result<Option<VersionedValue>> {
        self.get_value(
            keys::CF_PVT_HASHES,
            &keys::collection_key(ns, coll, key_hash),
        )
    }

    /// The private value of a collection key, if this peer holds it (member orgs only).
    ///
    /// # Errors
    /// [`Error::CorruptedRecord`], [`Error::Storage`].
    pub fn get_private(&self, ns: &str, coll: &str, key: &str) -> Result<Option<VersionedValue>> {
        self.get_value(
            keys::CF_PVT_DATA,
            &keys::collection_key(ns, coll, &Sha256::digest(key.as_bytes())),
        )
    }

    /// Private data this peer lacks, oldest first.
    ///
    /// # Errors
    /// [`Error::CorruptedRecord`], [`Error::Storage`].
    pub fn missing_private(&self) -> Result<Vec<MissingPrivate>> {
        let it = self
            .db
            .iterator_cf(self.cf(keys::CF_PVT_MISSING)?, IteratorMode::Start);
        it.map(|item| {
            let (k, _) = item.map_err(|e| self.storage(e))?;
            let (block_num, tx_num, namespace, collection) =
                keys::parse_missing_key(&k).ok_or_else(|| self.bad_record("missing private"))?;
            Ok(MissingPrivate {
                block_num,
                tx_num,
                namespace,
                collection,
            })
        })
        .collect()
    }

    /// SHA-256 over every key and value of every column family except the verification
    /// checkpoint, in order: equal digests mean equal ledgers (used to compare a recovered
    /// ledger with a replay).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn content_digest(&self) -> Result<[u8; 32]> {
        self.digest_of(&ALL_CFS)
    }

    /// SHA-256 over the parts every peer of the channel derives from the blocks alone: world
    /// state, key history, hashed private state and the tx index. Equal on every peer that
    /// committed the same blocks, whatever private data it holds (`ledger verify` compares
    /// it with a replay of the blocks).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn public_digest(&self) -> Result<[u8; 32]> {
        self.digest_of(&[
            keys::CF_STATE,
            keys::CF_HISTORY,
            keys::CF_PVT_HASHES,
            keys::CF_TXIDS,
        ])
    }

    fn digest_of(&self, cfs: &[&'static str]) -> Result<[u8; 32]> {
        let mut h = Sha256::new();
        for name in cfs.iter().copied() {
            h.update((name.len() as u32).to_be_bytes());
            h.update(name.as_bytes());
            for item in self.db.iterator_cf(self.cf(name)?, IteratorMode::Start) {
                let (k, v) = item.map_err(|e| self.storage(e))?;
                if name == keys::CF_META && k.as_ref() == keys::META_VERIFIED {
                    continue;
                }
                h.update((k.len() as u32).to_be_bytes());
                h.update(&k);
                h.update((v.len() as u32).to_be_bytes());
                h.update(&v);
            }
        }
        Ok(h.finalize().into())
    }

    /// Checks every private value this peer holds against the hashed private state on the
    /// chain: the SHA-256 of the value must be the hashed value of the same key, at the same
    /// version. Returns how many values were checked, or `Err((namespace, collection))` of the
    /// first that does not match (no key or value is named: they may be health data).
    ///
    /// # Errors
    /// [`Error::CorruptedRecord`], [`Error::Storage`].
    pub fn check_private(&self) -> Result<std::result::Result<u64, (String, String)>> {
        let hashes = self.cf(keys::CF_PVT_HASHES)?;
        let mut checked = 0;
        for item in self
            .db
            .iterator_cf(self.cf(keys::CF_PVT_DATA)?, IteratorMode::Start)
        {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            let value = StoredValue::decode(v.as_ref()).map_err(|_| self.bad_record("private"))?;
            let hashed = self
                .db
                .get_cf(hashes, &k)
                .map_err(|e| self.storage(e))?
                .map(|h| StoredValue::decode(h.as_slice()))
                .transpose()
                .map_err(|_| self.bad_record("hashed private"))?;
            let ok = hashed.is_some_and(|h| {
                h.value[..] == Sha256::digest(&value.value)[..]
                    && (h.block_num, h.tx_num) == (value.block_num, value.tx_num)
            });
            if !ok {
                let mut parts = k.splitn(3, |b| *b == 0);
                let ns = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
                let coll = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
                return Ok(Err((ns, coll)));
            }
            checked += 1;
        }
        Ok(Ok(checked))
    }
}

fn sync_write() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush_wal(true) {
            warn!(target: "ledger", channel = %self.channel, error = %e, "WAL flush on close failed");
        }
    }
}
