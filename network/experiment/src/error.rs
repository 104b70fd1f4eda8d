//! The experiment's errors.

/// Why an experiment could not run. A Byzantine node's misbehaviour is never an error: it is
/// what the experiment measures.
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
    /// A peer failed for another reason than refusing a block (refusals are measured).
    #[error("peer {msp_id}: {source}")]
    Peer {
        /// The peer's organization.
        msp_id: String,
        /// The peer error.
        source: medledger_peer::Error,
    },
    /// Building or signing a proposal, transaction or forged endorsement failed.
    #[error("signing: {0}")]
    Signing(String),
    /// Writing the report, JSON or plot failed.
    #[error("{path}: {message}")]
    Output {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
    },
    /// Temporary directories or the async runtime could not be created.
    #[error("setup: {0}")]
    Setup(#[from] std::io::Error),
    /// The options make no experiment (e.g. no requests).
    #[error("invalid options: {0}")]
    Options(String),
}

/// The experiment's result type.
pub type Result<T> = std::result::Result<T, Error>;
