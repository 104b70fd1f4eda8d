//! Key layouts of the column families. All numbers are big-endian so that RocksDB's byte
//! order is numeric order.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `blocks` | block number (u64) | `common.Block` bytes, metadata filled by the committer |
//! | `txids` | tx_id (UTF-8) | [`TxIndexRecord`](crate::records::TxIndexRecord) |
//! | `state` | namespace ‖ 0x00 ‖ key | [`StoredValue`](crate::records::StoredValue) |
//! | `history` | namespace ‖ 0x00 ‖ len(key) (u32) ‖ key ‖ block (u64) ‖ tx (u64) | [`HistoryRecord`](crate::records::HistoryRecord) |
//! | `pvt_hashes` | namespace ‖ 0x00 ‖ collection ‖ 0x00 ‖ key hash | [`StoredValue`](crate::records::StoredValue) (value = value hash) |
//! | `pvt_data` | namespace ‖ 0x00 ‖ collection ‖ 0x00 ‖ SHA-256(key) | [`StoredValue`](crate::records::StoredValue) with the key (hash-keyed so that a purge, which names only the key hash, finds it) |
//! | `pvt_missing` | block (u64) ‖ tx (u64) ‖ namespace ‖ 0x00 ‖ collection | empty |
//! | `pvt_tx` | block (u64) ‖ tx (u64) ‖ namespace ‖ 0x00 ‖ collection | the collection's private `KVRWSet` bytes of that transaction |
//! | `pvt_key_tx` | namespace ‖ 0x00 ‖ collection ‖ 0x00 ‖ key hash (32) ‖ block ‖ tx | empty: which `pvt_tx` entries write a key (for purge) |
//! | `meta` | `savepoint`, `verified`; `purged` ‖ 0x00 ‖ namespace ‖ 0x00 ‖ collection ‖ 0x00 ‖ key hash | [`Savepoint`](crate::records::Savepoint), u64; the purging transaction's version (block, tx) |
//!
//! Namespaces (chaincode names) and collection names never contain NUL, so `namespace ‖ 0x00`
//! is an exact prefix; keys may (Fabric composite keys start with and separate by U+0000),
//! which is why history keys carry the key's length.

/// Column family names, in creation order.
pub const CF_BLOCKS: &str = "blocks";
/// Tx index column family.
pub const CF_TXIDS: &str = "txids";
/// World state column family.
pub const CF_STATE: &str = "state";
/// History index column family.
pub const CF_HISTORY: &str = "history";
/// Private write hashes (hashed world state of collections) column family.
pub const CF_PVT_HASHES: &str = "pvt_hashes";
/// Private data (collection values, members only) column family.
pub const CF_PVT_DATA: &str = "pvt_data";
/// Private data this peer should hold but lacks, column family.
pub const CF_PVT_MISSING: &str = "pvt_missing";
/// Private read-write sets per transaction and collection (what other member peers fetch).
pub const CF_PVT_TX: &str = "pvt_tx";
/// Index from a private key hash to the `pvt_tx` entries that write it.
pub const CF_PVT_KEY_TX: &str = "pvt_key_tx";
/// Savepoint and verification checkpoint column family.
pub const CF_META: &str = "meta";

/// All column families.
pub const ALL_CFS: [&str; 10] = [
    CF_BLOCKS,
    CF_TXIDS,
    CF_STATE,
    CF_HISTORY,
    CF_PVT_HASHES,
    CF_PVT_DATA,
    CF_PVT_MISSING,
    CF_PVT_TX,
    CF_PVT_KEY_TX,
    CF_META,
];

/// `meta` key prefix of purge marks: `purged` ‖ 0x00 ‖ [`collection_key`] → the purging
/// transaction's version (block, tx: u64 big-endian each).
pub const META_PURGED: &[u8] = b"purged\0";

/// `meta` key of the purge mark of a private key.
pub fn purge_mark_key(namespace: &str, collection: &str, key_hash: &[u8]) -> Vec<u8> {
    let mut k = META_PURGED.to_vec();
    k.extend_from_slice(&collection_key(namespace, collection, key_hash));
    k
}

/// `meta` key of the savepoint.
pub const META_SAVEPOINT: &[u8] = b"savepoint";
/// `meta` key of the last block whose chain an open verified.
pub const META_VERIFIED: &[u8] = b"verified";

/// Whether `name` can be a namespace or collection name in a key.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.as_bytes().contains(&0)
}

/// `blocks` key.
pub fn block_key(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

/// `state` key: namespace ‖ 0x00 ‖ key.
pub fn state_key(ns: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + 1 + key.len());
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The `state` key range of `[start, end)` in `ns`; an empty `end` means the end of the
/// namespace (Fabric's `GetStateByRange` semantics).
pub fn state_range(ns: &str, start: &str, end: &str) -> (Vec<u8>, Vec<u8>) {
    let lower = state_key(ns, start);
    let upper = if end.is_empty() {
        let mut u = ns.as_bytes().to_vec();
        u.push(1);
        u
    } else {
        state_key(ns, end)
    };
    (lower, upper)
}

/// The user key of a `state` key of namespace `ns`.
pub fn state_user_key<'a>(ns: &str, stored: &'a [u8]) -> Option<&'a [u8]> {
    stored.get(ns.len() + 1..)
}

/// `history` key prefix of one key: namespace ‖ 0x00 ‖ len(key) ‖ key.
pub fn history_prefix(ns: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + 5 + key.len() + 16);
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// `history` key of one write: prefix ‖ block ‖ tx.
pub fn history_key(ns: &str, key: &str, block: u64, tx: u64) -> Vec<u8> {
    let mut k = history_prefix(ns, key);
    k.extend_from_slice(&block.to_be_bytes());
    k.extend_from_slice(&tx.to_be_bytes());
    k
}

/// Block and tx number at the end of a `history` key.
pub fn history_position(stored: &[u8]) -> Option<(u64, u64)> {
    let n = stored.len();
    let tail = stored.get(n.checked_sub(16)?..)?;
    let (b, t) = tail.split_at(8);
    Some((
        u64::from_be_bytes(b.try_into().ok()?),
        u64::from_be_bytes(t.try_into().ok()?),
    ))
}

/// `pvt_hashes` / `pvt_data` key: namespace ‖ 0x00 ‖ collection ‖ 0x00 ‖ key (bytes).
pub fn collection_key(ns: &str, coll: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + coll.len() + 2 + key.len());
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(coll.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

/// `pvt_missing` key: block ‖ tx ‖ namespace ‖ 0x00 ‖ collection.
pub fn missing_key(block: u64, tx: u64, ns: &str, coll: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + ns.len() + 1 + coll.len());
    k.extend_from_slice(&block.to_be_bytes());
    k.extend_from_slice(&tx.to_be_bytes());
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(coll.as_bytes());
    k
}

/// `pvt_key_tx` key: namespace ‖ 0x00 ‖ collection ‖ 0x00 ‖ key hash ‖ block ‖ tx.
pub fn key_tx_key(ns: &str, coll: &str, key_hash: &[u8], block: u64, tx: u64) -> Vec<u8> {
    let mut k = collection_key(ns, coll, key_hash);
    k.extend_from_slice(&block.to_be_bytes());
    k.extend_from_slice(&tx.to_be_bytes());
    k
}

/// Decodes a `pvt_missing` or `pvt_tx` key into (block, tx, namespace, collection).
pub fn parse_missing_key(stored: &[u8]) -> Option<(u64, u64, String, String)> {
    let block = u64::from_be_bytes(stored.get(..8)?.try_into().ok()?);
    let tx = u64::from_be_bytes(stored.get(8..16)?.try_into().ok()?);
    let rest = stored.get(16..)?;
    let sep = rest.iter().position(|b| *b == 0)?;
    let ns = std::str::from_utf8(&rest[..sep]).ok()?.to_owned();
    let coll = std::str::from_utf8(&rest[sep + 1..]).ok()?.to_owned();
    Some((block, tx, ns, coll))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_do_not_collide_in_history() {
        // "a" and "a\0b" share a byte prefix; with the length in the key their histories
        // are disjoint ranges.
        let a = history_prefix("cc", "a");
        let ab = history_key("cc", "a\u{0}b", 1, 0);
        assert!(!ab.starts_with(&a));
        assert_eq!(
            history_position(&history_key("cc", "k", 7, 3)),
            Some((7, 3))
        );
    }

    #[test]
    fn state_range_bounds() {
        let (lo, hi) = state_range("cc", "b", "");
        assert!(state_key("cc", "b") >= lo && state_key("cc", "zzz") < hi);
        assert!(state_key("cc", "a") < lo);
        assert!(state_key("cd", "") >= hi);
        let (_, hi) = state_range("cc", "b", "d");
        assert!(state_key("cc", "c\u{0}x") < hi && state_key("cc", "d") >= hi);
    }

    #[test]
    fn missing_key_round_trip() {
        let k = missing_key(9, 2, "ehr", "Org1PHI");
        assert_eq!(
            parse_missing_key(&k),
            Some((9, 2, "ehr".to_owned(), "Org1PHI".to_owned()))
        );
    }
}
