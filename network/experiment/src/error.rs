//! The experiment's errors.

/// Why an experiment could not run. A Byzantine node's misbehaviour is never an error: it is
/// what the experiment measures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The simulated network failed (a peer's ledger, a peer, setup).
    #[error(transparent)]
    Harness(#[from] medledger_harness::Error),
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
    /// The options make no experiment (e.g. no requests).
    #[error("invalid options: {0}")]
    Options(String),
}

/// The experiment's result type.
pub type Result<T> = std::result::Result<T, Error>;
