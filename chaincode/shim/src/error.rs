//! Errors of stub calls and of the shim.

/// Result alias.
pub type Result<T, E = ChaincodeError> = std::result::Result<T, E>;

/// A stub call or the shim failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChaincodeError {
    /// The peer answered a stub request with `ERROR` (its message).
    #[error("peer refused {request}: {message}")]
    Peer {
        /// Request type, e.g. `GET_STATE`.
        request: &'static str,
        /// The peer's message.
        message: String,
    },
    /// The connection to the peer ended or timed out.
    #[error("chaincode stream: {0}")]
    Stream(String),
    /// A message could not be decoded or was unexpected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The transaction context is missing something (creator, timestamp).
    #[error("transaction context: {0}")]
    Context(String),
    /// An argument is invalid (e.g. a composite key part containing U+0000).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
