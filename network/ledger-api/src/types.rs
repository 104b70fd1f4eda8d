//! What the ledger stores and returns: versions, versioned values, history entries, tx
//! locations, and the [`BlockUpdate`] the committer hands to `medledger_ledger::Ledger::commit`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use medledger_proto::common::Block;
use medledger_proto::protos::TxValidationCode;
use medledger_proto::{kvrwset, queryresult};

/// Version of a key: the (block, tx) position of the transaction that last wrote it, as in
/// Fabric's `kvrwset.Version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Block number.
    pub block_num: u64,
    /// Position of the transaction in the block (0-based).
    pub tx_num: u64,
}

impl Version {
    /// `(block_num, tx_num)`.
    pub fn new(block_num: u64, tx_num: u64) -> Self {
        Version { block_num, tx_num }
    }

    /// The protobuf form.
    pub fn to_proto(self) -> kvrwset::Version {
        kvrwset::Version {
            block_num: self.block_num,
            tx_num: self.tx_num,
        }
    }
}

impl From<&kvrwset::Version> for Version {
    fn from(v: &kvrwset::Version) -> Self {
        Version::new(v.block_num, v.tx_num)
    }
}

/// Key metadata: entry name → bytes (Fabric's `KVMetadataEntry`s; `VALIDATION_PARAMETER`
/// holds a serialized `common.SignaturePolicyEnvelope`, the key-level endorsement policy).
pub type Metadata = BTreeMap<String, Vec<u8>>;

/// A value with its version and metadata. For hashed private state, `value` is the SHA-256 of
/// the private value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionedValue {
    /// The value bytes.
    pub value: Vec<u8>,
    /// Who wrote it last.
    pub version: Version,
    /// Key metadata (empty if none).
    pub metadata: Metadata,
}

/// One write in a key's history (Fabric's `queryresult.KeyModification`), with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Block of the writing transaction.
    pub block_num: u64,
    /// Position of the transaction in its block.
    pub tx_num: u64,
    /// The transaction id.
    pub tx_id: String,
    /// The transaction's channel-header timestamp (`None` if absent or not a valid time).
    pub timestamp: Option<SystemTime>,
    /// Whether the write deleted the key.
    pub is_delete: bool,
    /// Value written (empty for a delete).
    pub value: Vec<u8>,
}

impl HistoryEntry {
    /// The protobuf form a chaincode receives from `GetHistoryForKey`.
    pub fn to_proto(self) -> queryresult::KeyModification {
        queryresult::KeyModification {
            tx_id: self.tx_id,
            value: self.value,
            timestamp: self.timestamp.map(prost_types::Timestamp::from),
            is_delete: self.is_delete,
        }
    }
}

/// Where a transaction is and how it validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Block number.
    pub block_num: u64,
    /// Position in the block.
    pub tx_num: u64,
    /// Its validation code (Fabric numbering).
    pub code: TxValidationCode,
}

/// A tx index entry of a block being committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxIndexEntry {
    /// Transaction id (authenticated: hex(SHA-256(nonce ‖ creator)) under a valid creator
    /// signature).
    pub tx_id: String,
    /// Position in the block.
    pub tx_num: u64,
    /// Validation code.
    pub code: TxValidationCode,
}

/// One history entry to write: a valid transaction's write to a public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryWrite {
    /// Namespace (chaincode name).
    pub namespace: String,
    /// Key.
    pub key: String,
    /// Position of the writing transaction in the block.
    pub tx_num: u64,
    /// Its tx id.
    pub tx_id: String,
    /// Its channel-header timestamp.
    pub timestamp: Option<prost_types::Timestamp>,
    /// Whether the write deletes the key.
    pub is_delete: bool,
    /// Value written (empty for a delete).
    pub value: Vec<u8>,
}

/// A collection's private data that this peer should hold (its org is a member) but lacks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MissingPrivate {
    /// Block of the transaction.
    pub block_num: u64,
    /// Position of the transaction.
    pub tx_num: u64,
    /// Namespace.
    pub namespace: String,
    /// Collection.
    pub collection: String,
}

impl MissingPrivate {
    /// The version of the transaction that wrote the missing data.
    pub fn version(&self) -> Version {
        Version::new(self.block_num, self.tx_num)
    }
}

/// A collection's private read-write set of one transaction, as a member peer stores it to
/// serve other member peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateRwSet {
    /// Position of the transaction in its block.
    pub tx_num: u64,
    /// Namespace.
    pub namespace: String,
    /// Collection.
    pub collection: String,
    /// The private `KVRWSet` bytes (their SHA-256 is the on-chain `pvt_rwset_hash`).
    pub rwset: Vec<u8>,
    /// SHA-256 of every key it writes.
    pub key_hashes: Vec<Vec<u8>>,
}

/// `(namespace, key)` of world state.
pub type StateKey = (String, String);
/// `(namespace, collection, key hash)` of hashed private state.
pub type HashedKey = (String, String, Vec<u8>);
/// `(namespace, collection, key)` of private data.
pub type PrivateKey = (String, String, String);

/// Everything one block changes, computed by the committer and written by
/// `medledger_ledger::Ledger::commit` in one atomic, fsynced RocksDB write batch. `None` values delete.
#[derive(Debug, Clone, Default)]
pub struct BlockUpdate {
    /// The block, its TRANSACTIONS_FILTER and COMMIT_HASH metadata filled in.
    pub block: Block,
    /// Tx index entries (the first occurrence of a tx_id on the ledger is kept).
    pub txs: Vec<TxIndexEntry>,
    /// Final world-state values of the keys valid transactions wrote.
    pub state: BTreeMap<StateKey, Option<VersionedValue>>,
    /// History entries of the valid writes.
    pub history: Vec<HistoryWrite>,
    /// Final hashed private state (value = SHA-256 of the private value).
    pub hashed: BTreeMap<HashedKey, Option<VersionedValue>>,
    /// Final private data values this peer stores (member collections only).
    pub private: BTreeMap<PrivateKey, Option<VersionedValue>>,
    /// Private data this peer should hold but did not receive.
    pub missing_private: Vec<MissingPrivate>,
    /// Private read-write sets of member collections, kept to serve other member peers.
    pub private_rwsets: Vec<PrivateRwSet>,
    /// Private keys purged by the block, with the purging transaction's version: their stored
    /// private read-write sets from earlier blocks lose these keys' writes (the hashes on chain
    /// stay), and the ledger remembers the purge so that no later reconciliation stores a value
    /// written before it (`medledger_ledger::Ledger::purged_at`).
    pub purges: Vec<(HashedKey, Version)>,
    /// The block's commit hash (also in its COMMIT_HASH metadata), chained from the previous
    /// block's.
    pub commit_hash: Vec<u8>,
}

/// Height and tip of a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerInfo {
    /// Number of blocks (last block number + 1; 0 when empty).
    pub height: u64,
    /// Header hash of the last block (empty when empty).
    pub current_hash: Vec<u8>,
    /// Commit hash of the last block (empty when empty).
    pub commit_hash: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn history_entry_to_proto_keeps_everything_a_chaincode_sees() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let entry = HistoryEntry {
            block_num: 3,
            tx_num: 1,
            tx_id: "tx".into(),
            timestamp: Some(at),
            is_delete: false,
            value: b"v".to_vec(),
        };
        assert_eq!(
            entry.to_proto(),
            queryresult::KeyModification {
                tx_id: "tx".into(),
                value: b"v".to_vec(),
                timestamp: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 5,
                }),
                is_delete: false,
            }
        );
    }

    #[test]
    fn version_round_trips_through_its_proto() {
        let v = Version::new(7, 2);
        assert_eq!(Version::from(&v.to_proto()), v);
    }
}
