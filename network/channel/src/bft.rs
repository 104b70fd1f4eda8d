//! What BFT consenters sign, and the verifier of a block's commit certificate.
//!
//! The ordering service decides each block with Tendermint (Malachite's core). A block's
//! SIGNATURES metadata is a `common.Metadata` whose `value` is a serialized
//! `medledger.channel.BlockCommit { round }` and whose `signatures` are the precommits of the
//! decision: one `MetadataSignature` per consenter, with `identifier_header` = serialized
//! `common.IdentifierHeader { identifier = consenter id }` and `signature` = that consenter's
//! ECDSA P-256 signature (Fabric style: SHA-256, DER, low-S) over
//! [`vote_sign_bytes`]`(channel, Precommit, block number, round, Some(value id), id)`, the
//! value id ([`value_id`]) covering the block header hash and the block's ordering time
//! (`BlockCommit.time_ms`, which peers validate the block's transactions at).
//! A peer that knows only the channel's consenter set verifies a block with
//! [`verify_block_signatures`]; orderers use the same function for blocks they sync.

use std::collections::BTreeSet;

use medledger_msp::crypto;
use medledger_proto::common::{
    Block, BlockMetadataIndex, IdentifierHeader, Metadata, MetadataSignature,
};
use medledger_proto::medledger::channel::BlockCommit;
use prost::Message;

use crate::block;
use crate::config::ConsenterSet;

/// Domain separator of vote sign bytes.
const VOTE_DOMAIN: &[u8] = b"medledger/bft/vote/v1";
/// Domain separator of proposal sign bytes.
const PROPOSAL_DOMAIN: &[u8] = b"medledger/bft/proposal/v1";
/// Domain separator of a value id that covers an ordering time.
const VALUE_DOMAIN: &[u8] = b"medledger/bft/value/v1";

/// The id consenters vote for: the block header hash and the ordering time the proposer
/// chose (`time_ms`, milliseconds since the Unix epoch): SHA-256(domain ‖ header hash ‖
/// time_ms u64 BE), or the header hash alone for `time_ms` = 0 (blocks decided before
/// ordering times existed; consenters refuse such proposals now). So the precommits of a
/// block sign its ordering time too (ADR 0030).
pub fn value_id(header_hash: &[u8; 32], time_ms: u64) -> [u8; 32] {
    if time_ms == 0 {
        return *header_hash;
    }
    let mut b = Vec::with_capacity(VALUE_DOMAIN.len() + 40);
    b.extend_from_slice(VALUE_DOMAIN);
    b.extend_from_slice(header_hash);
    b.extend_from_slice(&time_ms.to_be_bytes());
    crypto::sha256(&b)
}

/// A block's ordering time as its commit certificate states it (`BlockCommit.time_ms`), or
/// `None` for a block without one (the genesis block, blocks decided before ordering times
/// existed, a block without SIGNATURES metadata). Read it from a block whose signatures were
/// verified ([`verify_block_signatures`]): they cover it.
pub fn ordering_time(block: &Block) -> Option<std::time::SystemTime> {
    let meta = block::metadata(block, BlockMetadataIndex::Signatures).ok()?;
    let time_ms = BlockCommit::decode(meta.value.as_slice()).ok()?.time_ms;
    (time_ms > 0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_millis(time_ms))
}

/// Largest difference between an endorser transaction's channel-header timestamp and its
/// block's ordering time (ADR 0030): the most a client can backdate or post-date what the
/// chaincode sees as the transaction's time (`GetTxTimestamp`). Endorsers refuse proposals
/// further from their clock by default too.
pub const MAX_TX_TIME_SKEW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Milliseconds since the Unix epoch of `t` (0 before the epoch).
pub fn time_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Tendermint vote types; the byte is part of what is signed, so a prevote signature can never
/// pass as a precommit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VoteKind {
    /// First-phase vote.
    Prevote = 1,
    /// Second-phase vote: 2f+1 of them for one value decide it.
    Precommit = 2,
}

fn put_channel(b: &mut Vec<u8>, channel_id: &str) {
    b.extend_from_slice(&(channel_id.len() as u32).to_be_bytes());
    b.extend_from_slice(channel_id.as_bytes());
}

/// The bytes a consenter signs for a vote: domain ‖ len(channel) ‖ channel ‖ kind ‖
/// height (u64 BE) ‖ round (i64 BE) ‖ (0 = nil | 1 ‖ value id, 32 bytes) ‖ voter (u32 BE).
/// Height, round and kind are all included, so no signature is valid in another round,
/// height, vote type or channel.
pub fn vote_sign_bytes(
    channel_id: &str,
    kind: VoteKind,
    height: u64,
    round: i64,
    value: Option<&[u8; 32]>,
    voter: u32,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(VOTE_DOMAIN.len() + channel_id.len() + 60);
    b.extend_from_slice(VOTE_DOMAIN);
    put_channel(&mut b, channel_id);
    b.push(kind as u8);
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&round.to_be_bytes());
    match value {
        None => b.push(0),
        Some(id) => {
            b.push(1);
            b.extend_from_slice(id);
        }
    }
    b.extend_from_slice(&voter.to_be_bytes());
    b
}

/// The bytes a proposer signs for a proposal: domain ‖ len(channel) ‖ channel ‖ height ‖
/// round ‖ proof-of-lock round (i64 BE, −1 for none) ‖ value id ‖ proposer.
pub fn proposal_sign_bytes(
    channel_id: &str,
    height: u64,
    round: i64,
    pol_round: i64,
    value: &[u8; 32],
    proposer: u32,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(PROPOSAL_DOMAIN.len() + channel_id.len() + 64);
    b.extend_from_slice(PROPOSAL_DOMAIN);
    put_channel(&mut b, channel_id);
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&round.to_be_bytes());
    b.extend_from_slice(&pol_round.to_be_bytes());
    b.extend_from_slice(value);
    b.extend_from_slice(&proposer.to_be_bytes());
    b
}

/// One precommit signature of a commit certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSignature {
    /// Consenter id.
    pub consenter: u32,
    /// DER ECDSA signature over the precommit's [`vote_sign_bytes`].
    pub signature: Vec<u8>,
}

/// Encodes a commit certificate (precommits for [`value_id`]`(header hash, time_ms)` in
/// `round`) as the SIGNATURES metadata bytes (a `common.Metadata`).
pub fn signatures_metadata(round: i64, time_ms: u64, signatures: &[CommitSignature]) -> Vec<u8> {
    Metadata {
        value: BlockCommit { round, time_ms }.encode_to_vec(),
        signatures: signatures
            .iter()
            .map(|s| MetadataSignature {
                signature_header: Vec::new(),
                signature: s.signature.clone(),
                identifier_header: IdentifierHeader {
                    identifier: s.consenter,
                    nonce: Vec::new(),
                }
                .encode_to_vec(),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// What [`verify_block_signatures`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCommit {
    /// Block number.
    pub number: u64,
    /// Block header hash.
    pub header_hash: [u8; 32],
    /// Decision round.
    pub round: i64,
    /// Ordering time the signatures cover, ms since the Unix epoch (0: none).
    pub time_ms: u64,
    /// Consenters whose precommit signatures verified, ascending.
    pub signers: Vec<u32>,
}

/// Why a block's signatures are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockVerifyError {
    /// The block has no header or no data.
    #[error("block is missing its header or data")]
    Incomplete,
    /// `header.data_hash` is not the hash of the block's data.
    #[error("block {number}: data hash does not match the block data")]
    DataHashMismatch {
        /// Block number.
        number: u64,
    },
    /// The SIGNATURES metadata does not decode.
    #[error("block {number}: malformed SIGNATURES metadata")]
    MalformedSignatures {
        /// Block number.
        number: u64,
    },
    /// A signature names a consenter outside the set.
    #[error("block {number}: signature by unknown consenter {consenter}")]
    UnknownConsenter {
        /// Block number.
        number: u64,
        /// Consenter id claimed.
        consenter: u32,
    },
    /// Two signatures name the same consenter.
    #[error("block {number}: consenter {consenter} signed twice")]
    DuplicateSigner {
        /// Block number.
        number: u64,
        /// Consenter id.
        consenter: u32,
    },
    /// A signature does not verify.
    #[error("block {number}: invalid signature by consenter {consenter}")]
    BadSignature {
        /// Block number.
        number: u64,
        /// Consenter id.
        consenter: u32,
    },
    /// Fewer valid signatures than the quorum.
    #[error("block {number}: {got} consenter signatures, {needed} needed")]
    NoQuorum {
        /// Block number.
        number: u64,
        /// Valid signatures.
        got: usize,
        /// Quorum ⌊2n/3⌋ + 1.
        needed: usize,
    },
}

/// Verifies a block decided by the BFT ordering service: its data hash, and a quorum
/// (⌊2n/3⌋ + 1) of distinct consenters' precommit signatures over its value id (header
/// hash and ordering time), where
/// every signature present must be valid. Chaining to the previous block is the caller's
/// check (it knows the previous block).
///
/// # Errors
/// A [`BlockVerifyError`] saying which check failed.
pub fn verify_block_signatures(
    block: &Block,
    channel_id: &str,
    consenters: &ConsenterSet,
) -> Result<VerifiedCommit, BlockVerifyError> {
    let header = block.header.as_ref().ok_or(BlockVerifyError::Incomplete)?;
    let data = block.data.as_ref().ok_or(BlockVerifyError::Incomplete)?;
    if header.data_hash != block::data_hash(data) {
        return Err(BlockVerifyError::DataHashMismatch {
            number: header.number,
        });
    }
    verify_block_attestation(block, channel_id, consenters)
}

/// Verifies a block's commit certificate over its header alone (Fabric's
/// `VerifyBlockAttestation`): a quorum of distinct consenters' precommit signatures over the
/// value id (header hash and ordering time), every signature present valid. The data is neither needed nor checked, so
/// this proves that the ordering service decided block `header.number` with this header (a
/// `HEADER_WITH_SIG` Deliver response suffices), not that a block's entries are the decided
/// ones: a block to commit goes through [`verify_block_signatures`].
///
/// # Errors
/// A [`BlockVerifyError`] other than `DataHashMismatch`.
pub fn verify_block_attestation(
    block: &Block,
    channel_id: &str,
    consenters: &ConsenterSet,
) -> Result<VerifiedCommit, BlockVerifyError> {
    let header = block.header.as_ref().ok_or(BlockVerifyError::Incomplete)?;
    let number = header.number;
    let header_hash = block::header_hash(header);
    let malformed = BlockVerifyError::MalformedSignatures { number };
    let meta =
        block::metadata(block, BlockMetadataIndex::Signatures).map_err(|_| malformed.clone())?;
    let commit = BlockCommit::decode(meta.value.as_slice()).map_err(|_| malformed.clone())?;
    let (round, time_ms) = (commit.round, commit.time_ms);
    if round < 0 {
        return Err(malformed);
    }
    let value = value_id(&header_hash, time_ms);
    let mut signers = BTreeSet::new();
    for sig in &meta.signatures {
        let id = IdentifierHeader::decode(sig.identifier_header.as_slice())
            .map_err(|_| BlockVerifyError::MalformedSignatures { number })?
            .identifier;
        let consenter = consenters
            .get(id)
            .ok_or(BlockVerifyError::UnknownConsenter {
                number,
                consenter: id,
            })?;
        if !signers.insert(id) {
            return Err(BlockVerifyError::DuplicateSigner {
                number,
                consenter: id,
            });
        }
        let msg = vote_sign_bytes(
            channel_id,
            VoteKind::Precommit,
            number,
            round,
            Some(&value),
            id,
        );
        crypto::verify(consenter.public_key(), &msg, &sig.signature).map_err(|_| {
            BlockVerifyError::BadSignature {
                number,
                consenter: id,
            }
        })?;
    }
    if signers.len() < consenters.quorum() {
        return Err(BlockVerifyError::NoQuorum {
            number,
            got: signers.len(),
            needed: consenters.quorum(),
        });
    }
    Ok(VerifiedCommit {
        number,
        header_hash,
        round,
        time_ms,
        signers: signers.into_iter().collect(),
    })
}
