//! The orderer's error type.

use std::path::PathBuf;

/// Errors of the ordering service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `write`, `fsync`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
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
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
