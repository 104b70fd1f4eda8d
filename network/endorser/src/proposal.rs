//! Checking a signed proposal before anything runs (Fabric's
//! `core/common/validation/msgvalidation.go` and the endorser's `preProcess`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_ledger_api::LedgerError;
use medledger_msp::msp::VerifiedIdentity;
use medledger_proto::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use medledger_proto::invocation::InvocationError;
use medledger_proto::invocation::decode_invocation;
use medledger_proto::protos::{ChaincodeInput, ChaincodeProposalPayload, Proposal, SignedProposal};
use medledger_proto::{ChannelId, TxId};
use prost::Message;
use sha2::{Digest, Sha256};

/// Why a proposal was refused: Fabric answers with a `ProposalResponse` whose response has
/// status 500 and this error's message (no endorsement, chaincode not invoked). Messages name
/// ids and the failed check, never payload contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    /// Bytes do not decode or a required field is missing.
    #[error("{reason}")]
    Malformed {
        /// What does not decode or is missing.
        reason: &'static str,
    },
    /// The header extension and the invocation spec do not name one chaincode, or name none.
    #[error(transparent)]
    Invocation(#[from] InvocationError),
    /// Header type is not `ENDORSER_TRANSACTION`.
    #[error("invalid header type {header_type}")]
    HeaderType {
        /// The channel header's `type`.
        header_type: i32,
    },
    /// This peer does not serve the channel.
    #[error("channel '{channel}' not found")]
    UnknownChannel {
        /// The channel id as the proposal gave it (a wire value: it names no channel of this
        /// peer, so it may be any string).
        channel: String,
    },
    /// The creator is invalid (unknown, expired, revoked) or its signature does not verify.
    #[error("access denied: creator or signature invalid: {error}")]
    BadCreator {
        /// The MSP's verdict.
        error: medledger_msp::Error,
    },
    /// tx_id ≠ hex(SHA-256(nonce ‖ creator)).
    #[error("incorrectly formed txid {tx_id:?}")]
    BadTxId {
        /// The channel header's `tx_id`, as given.
        tx_id: String,
    },
    /// The creator does not satisfy the channel's Writers policy.
    #[error(
        "access denied: channel [{channel}] creator org [{msp_id}] does not satisfy the Writers policy"
    )]
    AccessDenied {
        /// Channel id.
        channel: ChannelId,
        /// The creator's MSP id.
        msp_id: String,
    },
    /// The proposal timestamp is too far from the peer's clock.
    #[error(
        "proposal timestamp is {}s away from the peer's clock (limit {}s)",
        skew.as_secs(),
        limit.as_secs()
    )]
    StaleTimestamp {
        /// How far the timestamp is from the peer's clock.
        skew: Duration,
        /// The largest distance accepted.
        limit: Duration,
    },
    /// The tx_id is already in the ledger.
    #[error("duplicate transaction found [{tx_id}]")]
    Duplicate {
        /// The transaction id.
        tx_id: TxId,
    },
    /// Reading the ledger for the duplicate check failed: not the proposal's fault, but the
    /// peer cannot tell a replay, so it does not endorse (status 500, as every refusal here).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The chaincode is not defined on the channel.
    #[error("chaincode {chaincode} is not defined on channel {channel}")]
    UnknownChaincode {
        /// The chaincode the proposal invokes.
        chaincode: String,
        /// Channel id.
        channel: ChannelId,
    },
}

fn malformed(reason: &'static str) -> ProposalError {
    ProposalError::Malformed { reason }
}

/// A proposal that passed the header and creator checks.
#[derive(Debug, Clone)]
pub struct CheckedProposal {
    /// Channel.
    pub channel_id: String,
    /// Transaction id, checked to be hex(SHA-256(nonce ‖ creator)) (Fabric's
    /// `protoutil.ComputeTxID`).
    pub tx_id: TxId,
    /// Chaincode name (the header extension and the invocation spec agree on it).
    pub chaincode: String,
    /// Canonical function name ([`medledger_proto::invocation::canonical_function`]).
    pub function: String,
    /// Invocation arguments.
    pub input: ChaincodeInput,
    /// Whether the proposal carries transient data.
    pub has_transient: bool,
    /// The validated creator.
    pub creator: Arc<VerifiedIdentity>,
    /// `ProposalResponsePayload.proposal_hash`: SHA-256(channel header ‖ signature header ‖
    /// chaincode proposal payload without the transient map).
    pub proposal_hash: [u8; 32],
}

/// Decodes a signed proposal far enough to find its channel.
///
/// # Errors
/// [`ProposalError::Malformed`].
pub fn channel_of(signed: &SignedProposal) -> Result<String, ProposalError> {
    let (_, _, ch, _) = decode(signed)?;
    Ok(ch.channel_id)
}

fn decode(
    signed: &SignedProposal,
) -> Result<(Proposal, Header, ChannelHeader, SignatureHeader), ProposalError> {
    let proposal = Proposal::decode(signed.proposal_bytes.as_slice())
        .map_err(|_| malformed("proposal bytes do not decode"))?;
    let header = Header::decode(proposal.header.as_slice())
        .map_err(|_| malformed("proposal header does not decode"))?;
    let ch = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(|_| malformed("channel header does not decode"))?;
    let sh = SignatureHeader::decode(header.signature_header.as_slice())
        .map_err(|_| malformed("signature header does not decode"))?;
    Ok((proposal, header, ch, sh))
}

/// Checks a signed proposal for `config`'s channel at time `now`: header type, signature and
/// creator validity, tx_id, Writers policy, timestamp within `max_skew`. The caller then
/// checks duplicate tx_ids and the chaincode definition.
///
/// # Errors
/// A [`ProposalError`] whose variant says which check failed.
pub fn check(
    signed: &SignedProposal,
    config: &ChannelConfig,
    now: SystemTime,
    max_skew: Duration,
) -> Result<CheckedProposal, ProposalError> {
    let (proposal, header, ch, sh) = decode(signed)?;
    if ch.r#type != HeaderType::EndorserTransaction as i32 {
        return Err(ProposalError::HeaderType {
            header_type: ch.r#type,
        });
    }
    if ch.channel_id != config.channel_id().as_str() {
        return Err(ProposalError::UnknownChannel {
            channel: ch.channel_id,
        });
    }
    if sh.creator.is_empty() || sh.nonce.is_empty() {
        return Err(malformed("creator or nonce is empty"));
    }
    let creator = config
        .msps()
        .verify(&sh.creator, &signed.proposal_bytes, &signed.signature, now)
        .map_err(|error| ProposalError::BadCreator { error })?;
    let tx_id = TxId::compute(&sh.nonce, &sh.creator);
    if ch.tx_id != tx_id.as_str() {
        return Err(ProposalError::BadTxId { tx_id: ch.tx_id });
    }
    if !config.evaluate("Writers", &[creator.signer()]) {
        return Err(ProposalError::AccessDenied {
            channel: config.channel_id().clone(),
            msp_id: creator.msp_id().to_owned(),
        });
    }
    let ts = ch
        .timestamp
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| malformed("proposal has no timestamp"))?;
    let skew = now
        .duration_since(ts)
        .or_else(|_| ts.duration_since(now))
        .unwrap_or_default();
    if skew > max_skew {
        return Err(ProposalError::StaleTimestamp {
            skew,
            limit: max_skew,
        });
    }
    let invocation = decode_invocation(&ch.extension, &proposal.payload)?;
    let payload = ChaincodeProposalPayload::decode(proposal.payload.as_slice())
        .map_err(|_| malformed("chaincode proposal payload does not decode"))?;
    let mut hasher = Sha256::new();
    hasher.update(&header.channel_header);
    hasher.update(&header.signature_header);
    hasher.update(
        ChaincodeProposalPayload {
            input: payload.input.clone(),
            transient_map: Default::default(),
        }
        .encode_to_vec(),
    );
    Ok(CheckedProposal {
        channel_id: ch.channel_id,
        tx_id,
        chaincode: invocation.chaincode,
        function: invocation.function,
        input: invocation.input,
        has_transient: invocation.has_transient,
        creator,
        proposal_hash: hasher.finalize().into(),
    })
}
