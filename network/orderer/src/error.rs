//! The orderer's error type.

use std::path::PathBuf;

/// Errors of the ordering service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed. The OS error is in the message and not returned as
    /// `source()`, so a report of the chain prints it once (ADR 0036).
    #[error("{op} {path}: {error}")]
    Io {
        /// What was being done (`open`, `write`, `fsync`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error (in the message, not a source).
        error: std::io::Error,
    },
    /// The block store is inconsistent.
    #[error("block store: {reason}")]
    Store {
        /// What is wrong.
        reason: String,
    },
    /// The write-ahead log is unusable.
    #[error("write-ahead log {path}: {reason}")]
    Wal {
        /// The WAL file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// This orderer is not (or not correctly) a consenter of the channel.
    #[error("consenter {consenter}: {reason}")]
    NotAConsenter {
        /// Configured consenter id.
        consenter: u32,
        /// Why.
        reason: String,
    },
    /// Consensus stopped (WAL replay divergence or corruption).
    #[error(transparent)]
    Consensus(#[from] crate::consensus::EngineError),
    /// The orderer configuration file is invalid.
    #[error("orderer configuration: {reason}")]
    Config {
        /// Which field and why.
        reason: String,
    },
    /// The channel's genesis block or configuration is unusable.
    #[error(transparent)]
    Channel(#[from] medledger_channel::ConfigError),
    /// TLS material or the gRPC server could not be set up.
    #[error("transport: {reason}")]
    Transport {
        /// Why.
        reason: String,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure of `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;
    use crate::consensus::{EngineError, WireError};

    /// A WAL record's decoding error is printed once in the chain (`{:#}`), whether the
    /// engine's error is reported alone or as the orderer's (issue 15, item 3).
    #[test]
    fn wrapped_errors_print_their_cause_once() {
        let bad_record = || EngineError::BadWalRecord {
            height: 7,
            index: 2,
            error: WireError("round out of range"),
        };
        let expected =
            "WAL record 2 of height 7 is malformed: malformed cluster message: round out of range";
        assert_eq!(format!("{:#}", anyhow::Error::new(bad_record())), expected);
        assert_eq!(
            format!("{:#}", anyhow::Error::new(Error::from(bad_record()))),
            expected
        );
    }

    /// The OS error is printed once in the chain the `medledger` CLI prints (`{:#}`).
    #[test]
    fn io_error_prints_its_cause_once() {
        let e = Error::io("fsync", "wal/0001", std::io::Error::other("disk full"));
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "fsync wal/0001: disk full"
        );
    }
}
