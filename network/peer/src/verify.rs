//! `medledger ledger verify`: checks a stopped peer's ledger of one channel from scratch and
//! reports the first divergence.
//!
//! 1. The hash chain of every block from the genesis block (`previous_hash`, data hash) and the
//!    savepoint ([`VerifyMode::Full`]).
//! 2. Every block's orderer signatures (a quorum of the channel's consenters) and a replay:
//!    the blocks are validated and committed again into a scratch ledger, exactly as the
//!    committer does; each block's TRANSACTIONS_FILTER and COMMIT_HASH must equal the stored
//!    ones.
//! 3. The world state, key history, hashed private state and tx index must equal the replay's
//!    ([`Ledger::public_digest`]).
//! 4. Every private value the peer holds must hash to the on-chain hashed private state
//!    ([`Ledger::check_private`]).

use std::path::Path;
use std::sync::Arc;

use medledger_channel::block;
use medledger_ledger::{Ledger, LedgerConfig, VerifyMode};
use medledger_proto::common::BlockMetadataIndex;
use medledger_proto::{ChannelId, MspId};

use crate::committer::Committer;
use crate::definitions::ChaincodeDefinitions;
use crate::error::Result;
use crate::validator::BlockPrivateData;

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Blocks checked (the ledger height).
    pub height: u64,
    /// Private values checked against their on-chain hashes.
    pub private_values: u64,
}

/// The first divergence found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Divergence {
    /// The stored chain does not hold together (hashes, savepoint).
    #[error("{0}")]
    Chain(String),
    /// A block is refused on replay (orderer signatures, chaining).
    #[error("block {block}: {reason}")]
    Block {
        /// Block number.
        block: u64,
        /// Why.
        reason: String,
    },
    /// A block's validation result differs from the replay's.
    #[error("block {block}: {what} differs from a replay of the chain")]
    Replay {
        /// Block number.
        block: u64,
        /// `TRANSACTIONS_FILTER` or `COMMIT_HASH`.
        what: &'static str,
    },
    /// The world state (or history, hashed private state, tx index) differs from the replay.
    #[error("world state differs from a replay of the chain")]
    State,
    /// A private value does not match its on-chain hash.
    #[error("private data of {namespace}/{collection} does not match its on-chain hash")]
    Private {
        /// Chaincode namespace.
        namespace: String,
        /// Collection.
        collection: String,
    },
}

/// Verifies the ledger of `channel` at `path` (the peer must be stopped), replaying into
/// `scratch` (an empty directory, left for the caller to remove). `definitions` and `msp_id`
/// are the peer's, as the committer used them.
///
/// # Errors
/// Storage failures of the replay ledger (a failure to open the verified ledger because it is
/// damaged is a [`Divergence::Chain`]).
pub fn verify_ledger(
    path: &Path,
    channel: &ChannelId,
    definitions: Arc<dyn ChaincodeDefinitions>,
    msp_id: &MspId,
    scratch: &Path,
) -> Result<std::result::Result<Verified, Divergence>> {
    let config = LedgerConfig {
        verify_on_open: VerifyMode::Full,
    };
    let stored = match Ledger::open(path, channel, &config) {
        Ok(l) => l,
        Err(e) => return Ok(Err(Divergence::Chain(e.to_string()))),
    };
    let height = stored.height();
    let Some(genesis) = stored.block(0)? else {
        return Ok(Err(Divergence::Chain("no genesis block".into())));
    };
    let replay = Arc::new(Ledger::open(scratch, channel, &LedgerConfig::default())?);
    let committer =
        match Committer::new(replay.clone(), Some(&genesis), definitions, msp_id.clone()) {
            Ok(c) => c,
            Err(e) => return Ok(Err(Divergence::Chain(e.to_string()))),
        };
    for n in 1..height {
        let Some(b) = stored.block(n)? else {
            return Ok(Err(Divergence::Chain(format!("block {n} is missing"))));
        };
        if let Err(e) = committer.commit_block(b.clone(), &BlockPrivateData::new()) {
            return Ok(Err(Divergence::Block {
                block: n,
                reason: e.to_string(),
            }));
        }
        let Some(again) = replay.block(n)? else {
            return Ok(Err(Divergence::Chain(format!("block {n} not replayed"))));
        };
        for (index, what) in [
            (
                BlockMetadataIndex::TransactionsFilter,
                "TRANSACTIONS_FILTER",
            ),
            (BlockMetadataIndex::CommitHash, "COMMIT_HASH"),
        ] {
            if block::metadata_bytes(&b, index) != block::metadata_bytes(&again, index) {
                return Ok(Err(Divergence::Replay { block: n, what }));
            }
        }
    }
    if stored.public_digest()? != replay.public_digest()? {
        return Ok(Err(Divergence::State));
    }
    match stored.check_private()? {
        Ok(private_values) => Ok(Ok(Verified {
            height,
            private_values,
        })),
        Err((namespace, collection)) => Ok(Err(Divergence::Private {
            namespace,
            collection,
        })),
    }
}
