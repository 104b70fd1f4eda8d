//! The crate's error type: one enum, structured fields (channel, block), no state values or
//! health data in any message; mapped to gRPC status in one place.

use medledger_proto::ChannelId;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the peer's committer and services can fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger failed or is corrupted.
    #[error(transparent)]
    Ledger(#[from] medledger_ledger::Error),
    /// Reading the ledger through the state API failed (during validation).
    #[error(transparent)]
    State(#[from] medledger_ledger_api::LedgerError),
    /// A block was refused whole: orderer signatures that do not verify, a data hash that
    /// does not match, or a block that does not extend the chain. Nothing was written.
    #[error("channel {channel}: block {block} refused: {reason}")]
    BlockRefused {
        /// Channel id.
        channel: ChannelId,
        /// Block number.
        block: u64,
        /// Which check failed.
        reason: String,
    },
    /// The ordering service accepted a configuration transaction this peer finds invalid: the
    /// peer no longer agrees with the network on the channel's configuration, so it commits
    /// nothing more on the channel (as Fabric, which halts the channel) until an operator
    /// resolves the disagreement and restarts it. The block was not written.
    #[error("channel {channel} halted at block {block}: {reason}")]
    ChannelHalted {
        /// Channel id.
        channel: ChannelId,
        /// The block carrying the configuration transaction.
        block: u64,
        /// Why the peer finds it invalid.
        reason: String,
    },
    /// The genesis block is missing or is not this channel's config block.
    #[error("channel {channel}: invalid genesis block: {reason}")]
    Genesis {
        /// Channel id.
        channel: ChannelId,
        /// What is wrong.
        reason: String,
    },
    /// A request names a channel this peer does not serve.
    #[error("channel {channel} is not served by this peer")]
    UnknownChannel {
        /// The channel id as the request gave it (a wire value, not validated: it names no
        /// channel of this peer, so it may be any string).
        channel: String,
    },
    /// The peer's configuration or key material is unusable.
    #[error("peer configuration: {reason}")]
    Config {
        /// What is wrong, naming the field or file.
        reason: String,
    },
    /// Binding or serving a network endpoint failed. The I/O error is in the message and not
    /// returned as `source()`, so a report of the chain prints it once (ADR 0036).
    #[error("{what}: {error}")]
    Io {
        /// Which endpoint.
        what: &'static str,
        /// The I/O error (in the message, not a source).
        error: std::io::Error,
    },
}

impl From<medledger_peer_config::Error> for Error {
    fn from(e: medledger_peer_config::Error) -> Self {
        match e {
            medledger_peer_config::Error::Config { reason } => Error::Config { reason },
            medledger_peer_config::Error::Io { what, error } => Error::Io { what, error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// The I/O error is printed once in the chain the `medledger` CLI prints (`{:#}`).
    #[test]
    fn io_error_prints_its_cause_once() {
        let e = Error::Io {
            what: "listen",
            error: std::io::Error::other("address in use"),
        };
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "listen: address in use"
        );
    }
}
