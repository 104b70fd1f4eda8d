//! A durable transient store (Fabric's `transientstore`): private read-write sets produced by
//! simulation wait here, keyed by transaction id, until their transaction commits (the
//! committer takes them, valid or not) or they expire: after a time to live (the peer's
//! `transient_ttl_s`, minutes; [`TransientStore::purge_older_than`]) or below a block height.
//! Unsubmitted PHI does not wait on a disk for long.

use std::path::{Path, PathBuf};

use medledger_proto::rwset::TxPvtReadWriteSet;
use prost::Message;
use rocksdb::{DB, IteratorMode, Options, WriteBatch, WriteOptions};

/// What the transient store can fail at. Structured fields (path, tx_id, height); the messages
/// carry RocksDB's and prost's texts only, never private data (an endorser returns a
/// [`TransientStoreError::Storage`] of [`TransientStore::persist`] to its client).
#[derive(Debug, thiserror::Error)]
pub enum TransientStoreError {
    /// RocksDB cannot open the store.
    #[error("transient store {}: {error}", path.display())]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The RocksDB error, in the message (not also as `source()`, which would print it
        /// twice in an error chain).
        error: rocksdb::Error,
    },
    /// RocksDB failed reading or writing the entry of `tx_id` (simulated at `height`, when
    /// known), or, without a `tx_id`, while purging.
    #[error("{error}")]
    Storage {
        /// The transaction whose entry was read or written.
        tx_id: Option<String>,
        /// The height the entry was simulated at (written, or removed by it).
        height: Option<u64>,
        /// The RocksDB error, the whole message (not also `source()`: printed once).
        error: rocksdb::Error,
    },
    /// The stored entry of `tx_id` does not decode.
    #[error("{reason}")]
    Corrupted {
        /// The transaction whose entry is corrupted.
        tx_id: String,
        /// What is wrong (too short, or prost's decode message).
        reason: String,
    },
}

fn storage(
    tx_id: Option<&str>,
    height: Option<u64>,
) -> impl FnOnce(rocksdb::Error) -> TransientStoreError {
    move |error| TransientStoreError::Storage {
        tx_id: tx_id.map(str::to_owned),
        height,
        error,
    }
}

/// Key layout: `t/<tx_id>` → 8-byte big-endian height ‖ serialized `TxPvtReadWriteSet`;
/// `h/<height BE>/<tx_id>` → empty, an index for purging by height; `w/<unix seconds BE>/<tx_id>`
/// → empty, an index for expiry by time (left behind by removals, dropped at expiry).
pub struct TransientStore {
    db: DB,
}

impl std::fmt::Debug for TransientStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransientStore").finish_non_exhaustive()
    }
}

fn tx_key(tx_id: &str) -> Vec<u8> {
    [b"t/".as_slice(), tx_id.as_bytes()].concat()
}

fn time_key(unix_secs: u64, tx_id: &str) -> Vec<u8> {
    [
        b"w/".as_slice(),
        &unix_secs.to_be_bytes(),
        b"/",
        tx_id.as_bytes(),
    ]
    .concat()
}

fn unix_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn height_key(height: u64, tx_id: &str) -> Vec<u8> {
    [
        b"h/".as_slice(),
        &height.to_be_bytes(),
        b"/",
        tx_id.as_bytes(),
    ]
    .concat()
}

impl TransientStore {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// [`TransientStoreError::Open`] if RocksDB cannot open it.
    pub fn open(dir: &Path) -> Result<Self, TransientStoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        DB::open(&opts, dir)
            .map(|db| TransientStore { db })
            .map_err(|error| TransientStoreError::Open {
                path: dir.to_owned(),
                error,
            })
    }

    /// The private data stored for `tx_id`, with the height it was simulated at.
    ///
    /// # Errors
    /// [`TransientStoreError::Storage`] or [`TransientStoreError::Corrupted`].
    pub fn get(
        &self,
        tx_id: &str,
    ) -> Result<Option<(u64, TxPvtReadWriteSet)>, TransientStoreError> {
        let Some(raw) = self
            .db
            .get(tx_key(tx_id))
            .map_err(storage(Some(tx_id), None))?
        else {
            return Ok(None);
        };
        let corrupted = |reason: String| TransientStoreError::Corrupted {
            tx_id: tx_id.to_owned(),
            reason,
        };
        let (h, body) = raw
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupted("transient entry too short".to_owned()))?;
        let set = TxPvtReadWriteSet::decode(body).map_err(|e| corrupted(e.to_string()))?;
        Ok(Some((u64::from_be_bytes(*h), set)))
    }

    /// Removes the entry of a committed transaction.
    ///
    /// # Errors
    /// As [`Self::get`] and [`Self::remove_at`].
    pub fn remove(&self, tx_id: &str) -> Result<(), TransientStoreError> {
        let Some((height, _)) = self.get(tx_id)? else {
            return Ok(());
        };
        self.remove_at(tx_id, height)
    }

    /// Removes the entry of a committed transaction simulated at `height` (as [`Self::get`]
    /// returned it), without reading it again.
    ///
    /// # Errors
    /// [`TransientStoreError::Storage`].
    pub fn remove_at(&self, tx_id: &str, height: u64) -> Result<(), TransientStoreError> {
        let mut batch = WriteBatch::default();
        batch.delete(tx_key(tx_id));
        batch.delete(height_key(height, tx_id));
        self.db
            .write(batch)
            .map_err(storage(Some(tx_id), Some(height)))
    }

    /// Purges every entry simulated below `height` (Fabric's `transientstoreMaxBlockRetention`);
    /// returns how many were removed.
    ///
    /// # Errors
    /// [`TransientStoreError::Storage`].
    pub fn purge_below(&self, height: u64) -> Result<usize, TransientStoreError> {
        let mut batch = WriteBatch::default();
        let mut n = 0;
        let start = b"h/".to_vec();
        for item in self
            .db
            .iterator(IteratorMode::From(&start, rocksdb::Direction::Forward))
        {
            let (k, _) = item.map_err(storage(None, None))?;
            let Some(rest) = k.strip_prefix(b"h/") else {
                break;
            };
            let Some((h, tail)) = rest.split_first_chunk::<8>() else {
                break;
            };
            if u64::from_be_bytes(*h) >= height {
                break;
            }
            let tx_id = tail.strip_prefix(b"/").unwrap_or(tail);
            batch.delete(&k);
            batch.delete([b"t/".as_slice(), tx_id].concat());
            n += 1;
        }
        self.db.write(batch).map_err(storage(None, None))?;
        Ok(n)
    }

    /// Removes every entry stored before `cutoff` (the peer calls it with now minus its time
    /// to live) and simulated below ledger height `below_height` (the peer passes its height
    /// minus a margin: an entry is never expired while its transaction may still be in
    /// flight to a peer that is behind, or while no blocks are cut); returns how many entries
    /// were removed.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn purge_older_than(
        &self,
        cutoff: std::time::SystemTime,
        below_height: u64,
    ) -> Result<usize, TransientStoreError> {
        let cutoff = unix_secs(cutoff);
        let mut batch = WriteBatch::default();
        let mut n = 0;
        let start = b"w/".to_vec();
        for item in self
            .db
            .iterator(IteratorMode::From(&start, rocksdb::Direction::Forward))
        {
            let (k, _) = item.map_err(storage(None, None))?;
            let Some(rest) = k.strip_prefix(b"w/") else {
                break;
            };
            let Some((t, tail)) = rest.split_first_chunk::<8>() else {
                break;
            };
            if u64::from_be_bytes(*t) >= cutoff {
                break;
            }
            let tx_id = String::from_utf8_lossy(tail.strip_prefix(b"/").unwrap_or(tail));
            match self.get(&tx_id)? {
                Some((height, _)) if height >= below_height => continue,
                Some((height, _)) => {
                    batch.delete(tx_key(&tx_id));
                    batch.delete(height_key(height, &tx_id));
                    n += 1;
                }
                None => {}
            }
            batch.delete(&k);
        }
        self.db.write(batch).map_err(storage(None, None))?;
        Ok(n)
    }
}

impl TransientStore {
    /// Stores a transaction's private read-write set simulated at ledger `height`, fsynced.
    ///
    /// # Errors
    /// [`TransientStoreError::Storage`]; its message is RocksDB's alone.
    pub fn persist(
        &self,
        tx_id: &str,
        height: u64,
        private: &TxPvtReadWriteSet,
    ) -> Result<(), TransientStoreError> {
        let mut value = height.to_be_bytes().to_vec();
        value.extend_from_slice(&private.encode_to_vec());
        let mut batch = WriteBatch::default();
        batch.put(tx_key(tx_id), value);
        batch.put(height_key(height, tx_id), []);
        batch.put(time_key(unix_secs(std::time::SystemTime::now()), tx_id), []);
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db
            .write_opt(batch, &opts)
            .map_err(storage(Some(tx_id), Some(height)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_proto::rwset::NsPvtReadWriteSet;

    fn set(ns: &str) -> TxPvtReadWriteSet {
        TxPvtReadWriteSet {
            data_model: 0,
            ns_pvt_rwset: vec![NsPvtReadWriteSet {
                namespace: ns.into(),
                collection_pvt_rwset: vec![],
            }],
        }
    }

    #[test]
    fn persist_reopen_remove_and_purge_by_age() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = TransientStore::open(dir.path()).unwrap();
            store.persist("tx1", 5, &set("a")).unwrap();
            store.persist("tx2", 9, &set("b")).unwrap();
            store.persist("tx3", 12, &set("c")).unwrap();
        }
        let store = TransientStore::open(dir.path()).unwrap();
        assert_eq!(store.get("tx2").unwrap(), Some((9, set("b"))));
        store.remove("tx2").unwrap();
        assert_eq!(store.get("tx2").unwrap(), None);
        assert_eq!(store.purge_below(10).unwrap(), 1);
        assert_eq!(store.get("tx1").unwrap(), None);
        assert_eq!(store.get("tx3").unwrap(), Some((12, set("c"))));
        assert_eq!(store.purge_below(10).unwrap(), 0);
    }

    /// Issue 13 item 7: unsubmitted private data expires by time, not only 1000 blocks later
    /// (on 4436d0b an endorsement never submitted kept its PHI on disk until the channel had
    /// grown by 1000 blocks, for ever on a quiet channel).
    #[test]
    fn entries_expire_after_their_time_to_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = TransientStore::open(dir.path()).unwrap();
        store.persist("tx1", 5, &set("a")).unwrap();
        store.persist("tx2", 6, &set("b")).unwrap();
        store.remove("tx2").unwrap();
        let now = std::time::SystemTime::now();
        assert_eq!(
            store
                .purge_older_than(now - std::time::Duration::from_secs(60), 100)
                .unwrap(),
            0
        );
        assert_eq!(store.get("tx1").unwrap(), Some((5, set("a"))));
        let later = now + std::time::Duration::from_secs(2);
        // Old enough, but the ledger has not moved past its height (a peer behind, or no
        // blocks cut): kept.
        assert_eq!(store.purge_older_than(later, 5).unwrap(), 0);
        assert_eq!(store.get("tx1").unwrap(), Some((5, set("a"))));
        assert_eq!(store.purge_older_than(later, 6).unwrap(), 1);
        assert_eq!(store.get("tx1").unwrap(), None);
        // Nothing of either is left, index entries included.
        assert_eq!(store.db.iterator(IteratorMode::Start).count(), 0);
    }
}
