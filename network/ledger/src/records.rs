//! The ledger's own storage records (protobuf, prost-derived). Internal storage format of this
//! crate, never on the wire; field numbers are fixed once released.

#![allow(missing_docs)]

use medledger_proto::kvrwset::KvMetadataEntry;

/// A world-state, hashed-state or private-data value with its version `(block, tx)` and key
/// metadata (Fabric's `statedb.VersionedValue`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredValue {
    #[prost(bytes = "vec", tag = "1")]
    pub value: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub block_num: u64,
    #[prost(uint64, tag = "3")]
    pub tx_num: u64,
    #[prost(message, repeated, tag = "4")]
    pub metadata: Vec<KvMetadataEntry>,
    /// The key, in `pvt_data` only (whose storage key holds the key's hash).
    #[prost(string, tag = "5")]
    pub key: String,
}

/// Tx index entry: where a transaction is and how it validated.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxIndexRecord {
    #[prost(uint64, tag = "1")]
    pub block_num: u64,
    #[prost(uint64, tag = "2")]
    pub tx_num: u64,
    #[prost(int32, tag = "3")]
    pub validation_code: i32,
}

/// One write to a key, as `GetHistoryForKey` returns it (Fabric's `queryresult.KeyModification`
/// without the key).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryRecord {
    #[prost(string, tag = "1")]
    pub tx_id: String,
    #[prost(message, optional, tag = "2")]
    pub timestamp: Option<prost_types::Timestamp>,
    #[prost(bool, tag = "3")]
    pub is_delete: bool,
    #[prost(bytes = "vec", tag = "4")]
    pub value: Vec<u8>,
}

/// The last committed block: its number, header hash and commit hash.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Savepoint {
    #[prost(uint64, tag = "1")]
    pub block_num: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub header_hash: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub commit_hash: Vec<u8>,
}
