//! The harness's errors.

/// Why the harness failed. A Byzantine node's misbehaviour is never an error: it is what the
/// harness simulates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A peer's ledger failed (open, read or write).
    #[error("peer {msp_id}: ledger: {source}")]
    Ledger {
        /// The peer's organization.
        msp_id: String,
        /// The ledger error.
        source: medledger_ledger::Error,
    },
    /// A peer failed for another reason than refusing a block (refusals are counted).
    #[error("peer {msp_id}: {source}")]
    Peer {
        /// The peer's organization.
        msp_id: String,
        /// The peer error.
        source: medledger_peer::Error,
    },
    /// Building or signing a policy, proposal or transaction failed.
    #[error("signing: {0}")]
    Signing(String),
    /// Temporary directories or the async runtime could not be created.
    #[error("setup: {0}")]
    Setup(#[from] std::io::Error),
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;
