//! The harness's errors.

/// Why the harness failed. A Byzantine node's misbehaviour is never an error: it is what the
/// harness simulates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A peer's ledger failed (open, read or write). The ledger error is in the message and
    /// not returned as `source()`, so a report of the chain prints it once (ADR 0036).
    #[error("peer {msp_id}: ledger: {error}")]
    Ledger {
        /// The peer's organization.
        msp_id: String,
        /// The ledger error (in the message, not a source).
        error: medledger_ledger::Error,
    },
    /// A peer failed for another reason than refusing a block (refusals are counted). The
    /// peer error is in the message, not a source (printed once).
    #[error("peer {msp_id}: {error}")]
    Peer {
        /// The peer's organization.
        msp_id: String,
        /// The peer error (in the message, not a source).
        error: medledger_peer::Error,
    },
    /// A peer's transient store failed (open, read, write). Its message names the store and
    /// carries RocksDB's or prost's text only, never private data; not a source (printed
    /// once).
    #[error("peer {msp_id}: {error}")]
    Transient {
        /// The peer's organization.
        msp_id: String,
        /// The transient store error (in the message, not a source).
        error: medledger_ledger::TransientStoreError,
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
    /// Temporary directories, a peer's transient store or the async runtime could not be
    /// created. The I/O error is in the message, not a source (printed once).
    #[error("setup: {0}")]
    Setup(std::io::Error),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Setup(e)
    }
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::Error;

    /// Each cause is printed once in the chain the `medledger` CLI prints (`{:#}`).
    #[test]
    fn wrapped_errors_print_their_cause_once() {
        let chain = |e: Error| format!("{:#}", anyhow::Error::new(e));
        let e = Error::Ledger {
            msp_id: "Org1MSP".into(),
            error: medledger_ledger::Error::Empty {
                channel: "ehr".parse().unwrap(),
            },
        };
        assert_eq!(
            chain(e),
            "peer Org1MSP: ledger: ledger of channel ehr is empty (no genesis block)"
        );
        let e = Error::Peer {
            msp_id: "Org2MSP".into(),
            error: medledger_peer::Error::Io {
                what: "listen",
                error: std::io::Error::other("address in use"),
            },
        };
        assert_eq!(chain(e), "peer Org2MSP: listen: address in use");
        let e = Error::from(std::io::Error::other("no space left"));
        assert_eq!(chain(e), "setup: no space left");
    }
}
