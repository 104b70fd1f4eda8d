//! The crate's error type: reading or checking a configuration.

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a peer configuration cannot be used. The peer's own `Error` has the same two
/// variants (`Config`, `Io`) with the same messages, and converts from this one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value of the configuration is unusable.
    #[error("peer configuration: {reason}")]
    Config {
        /// What is wrong, naming the field or file.
        reason: String,
    },
    /// Reading the configuration file failed. The I/O error is in the message and not
    /// returned as `source()`, so a report of the chain prints it once (ADR 0036).
    #[error("{what}: {error}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The I/O error (in the message, not a source).
        error: std::io::Error,
    },
}
