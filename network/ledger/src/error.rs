//! The crate's error type: one enum, structured fields (channel, block, tx_id), no state
//! values (they may be health data) in any message.

use medledger_proto::ChannelId;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the ledger can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stored blocks do not form a valid hash chain, a stored record does not decode, or
    /// RocksDB reported corruption while reading block `block`. The ledger refuses to open
    /// (or to serve that block); never continue on it.
    #[error("ledger of channel {channel} corrupted at block {block}: {reason}")]
    Corrupted {
        /// Channel id.
        channel: ChannelId,
        /// First block found inconsistent.
        block: u64,
        /// What is wrong (hashes, decoding, storage message).
        reason: String,
    },
    /// A stored record other than a block does not decode.
    #[error("ledger of channel {channel}: corrupted {what} record")]
    CorruptedRecord {
        /// Channel id.
        channel: ChannelId,
        /// Which record kind (`state`, `tx index`, `savepoint`, ...).
        what: &'static str,
    },
    /// RocksDB failed (I/O, lock held by another process, ...).
    /// The RocksDB error is in the message and not returned as `source()`, so a report of
    /// the chain prints it once (ADR 0036).
    #[error("ledger of channel {channel}: storage error: {error}")]
    Storage {
        /// Channel id.
        channel: ChannelId,
        /// The RocksDB error (in the message, not a source).
        error: rocksdb::Error,
    },
    /// A block handed to [`crate::Ledger::commit`] does not extend the chain: wrong number,
    /// wrong `previous_hash`, or a `data_hash` that does not match its data.
    #[error(
        "channel {channel}: block {block} does not extend the ledger at height {height}: {reason}"
    )]
    NotNextBlock {
        /// Channel id.
        channel: ChannelId,
        /// Number of the block offered.
        block: u64,
        /// Current height (number of blocks stored).
        height: u64,
        /// Which check failed.
        reason: &'static str,
    },
    /// A namespace or collection name that cannot be stored (empty or containing a NUL byte).
    #[error("channel {channel}: invalid {what} name")]
    InvalidName {
        /// Channel id.
        channel: ChannelId,
        /// `namespace` or `collection`.
        what: &'static str,
    },
    /// The ledger holds no block yet; most queries need the genesis block first.
    #[error("ledger of channel {channel} is empty (no genesis block)")]
    Empty {
        /// Channel id.
        channel: ChannelId,
    },
}

#[cfg(test)]
mod tests {
    use crate::{Ledger, LedgerConfig};

    /// RocksDB's message is printed once in the chain the `medledger` CLI prints (`{:#}`).
    #[test]
    fn storage_error_prints_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = LedgerConfig::default();
        let channel = "mychannel".parse().unwrap();
        let _held = Ledger::open(dir.path(), &channel, &config).unwrap();
        let Err(e) = Ledger::open(dir.path(), &channel, &config) else {
            panic!("a second open of a held ledger must fail");
        };
        let super::Error::Storage { error, .. } = &e else {
            panic!("not a storage error: {e}");
        };
        let cause = error.to_string();
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        assert!(chain.starts_with("ledger of channel mychannel: storage error: "));
    }
}
