//! [`LedgerError`]: what reading or simulating over the ledger can fail at. Structured fields
//! (namespace, collection), never a key's value: state may be health data.

/// A read of the ledger or a simulation step failed. The message may go back to a chaincode.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger could not be read (its storage failed or a record is corrupted); the
    /// ledger's own error, whose messages carry no state values.
    #[error(transparent)]
    Storage(Box<dyn std::error::Error + Send + Sync>),
    /// A write names an empty key.
    #[error("key must not be empty")]
    EmptyKey,
    /// The chaincode defines no such collection.
    #[error("collection {collection} is not defined for chaincode {namespace}")]
    UndefinedCollection {
        /// Namespace (chaincode name).
        namespace: String,
        /// Collection name.
        collection: String,
    },
    /// This peer's organization is not a member of the collection, so it holds no private
    /// data of it.
    #[error("this peer's organization is not a member of collection {collection}")]
    NotMember {
        /// Namespace (chaincode name).
        namespace: String,
        /// Collection name.
        collection: String,
    },
}

/// Result alias with [`LedgerError`].
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
