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
    /// No peer endorsed a transaction, or the endorsements differ.
    #[error("endorsement refused by {msp_id}: {status} {message}")]
    Refused {
        /// The refusing peer's organization (empty: the endorsements do not assemble).
        msp_id: String,
        /// The chaincode or endorser status.
        status: i32,
        /// Its message.
        message: String,
    },
    /// No such running (or, to restart, crashed) peer.
    #[error("no such peer: peer {peer} of organization {org}")]
    NoSuchPeer {
        /// The organization's index.
        org: usize,
        /// The peer's index in it.
        peer: usize,
    },
    /// What the harness ran for did not happen within the virtual time allowed.
    #[error("not within {waited_ms} virtual ms: {what}")]
    Timeout {
        /// Virtual ms waited.
        waited_ms: u64,
        /// What was still missing.
        what: String,
    },
    /// An in-process gRPC endpoint could not be made (a bad authority).
    #[error("in-process transport: {0}")]
    Transport(String),
    /// The served harness's driver thread stopped: a peer's ledger failed while it stepped,
    /// or it panicked.
    #[error("the harness driver stopped: {0}")]
    Stopped(String),
    /// Temporary directories or the async runtime could not be created.
    #[error("setup: {0}")]
    Setup(#[from] std::io::Error),
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;
