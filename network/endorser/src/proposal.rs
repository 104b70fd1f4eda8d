//! Checking a signed proposal before anything runs (Fabric's
//! `core/common/validation/msgvalidation.go` and the endorser's `preProcess`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_msp::msp::VerifiedIdentity;
use medledger_proto::TxId;
use medledger_proto::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use medledger_proto::invocation::decode_invocation;
use medledger_proto::protos::{ChaincodeInput, ChaincodeProposalPayload, Proposal, SignedProposal};
use prost::Message;
use sha2::{Digest, Sha256};

/// Why a proposal was refused: Fabric answers with a `ProposalResponse` whose response has
/// status 500 and this message (no endorsement, chaincode not invoked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProposalError {
    /// What failed.
    pub kind: ProposalErrorKind,
    /// Message for the client (ids only, never payload contents).
    pub message: String,
}

/// Kinds of proposal refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalErrorKind {
    /// Bytes do not decode or a required field is missing.
    Malformed,
    /// Header type is not `ENDORSER_TRANSACTION`.
    HeaderType,
    /// This peer does not serve the channel.
    UnknownChannel,
    /// The creator is invalid (unknown, expired, revoked) or its signature does not verify.
    BadCreator,
    /// The creator does not satisfy the channel's Writers policy.
    AccessDenied,
    /// tx_id ≠ hex(SHA-256(nonce ‖ creator)).
    BadTxId,
    /// The proposal timestamp is too far from the peer's clock.
    StaleTimestamp,
    /// The tx_id is already in the ledger.
    Duplicate,
    /// The chaincode is not defined on the channel.
    UnknownChaincode,
}

fn refuse(kind: ProposalErrorKind, message: impl Into<String>) -> ProposalError {
    ProposalError {
        kind,
        message: message.into(),
    }
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
/// [`ProposalErrorKind::Malformed`].
pub fn channel_of(signed: &SignedProposal) -> Result<String, ProposalError> {
    let (_, _, ch, _) = decode(signed)?;
    Ok(ch.channel_id)
}

fn decode(
    signed: &SignedProposal,
) -> Result<(Proposal, Header, ChannelHeader, SignatureHeader), ProposalError> {
    use ProposalErrorKind::Malformed;
    let proposal = Proposal::decode(signed.proposal_bytes.as_slice())
        .map_err(|_| refuse(Malformed, "proposal bytes do not decode"))?;
    let header = Header::decode(proposal.header.as_slice())
        .map_err(|_| refuse(Malformed, "proposal header does not decode"))?;
    let ch = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(|_| refuse(Malformed, "channel header does not decode"))?;
    let sh = SignatureHeader::decode(header.signature_header.as_slice())
        .map_err(|_| refuse(Malformed, "signature header does not decode"))?;
    Ok((proposal, header, ch, sh))
}

/// Checks a signed proposal for `config`'s channel at time `now`: header type, signature and
/// creator validity, tx_id, Writers policy, timestamp within `max_skew`. The caller then
/// checks duplicate tx_ids and the chaincode definition.
///
/// # Errors
/// A [`ProposalError`] whose kind says which check failed.
pub fn check(
    signed: &SignedProposal,
    config: &ChannelConfig,
    now: SystemTime,
    max_skew: Duration,
) -> Result<CheckedProposal, ProposalError> {
    use ProposalErrorKind as K;
    let (proposal, header, ch, sh) = decode(signed)?;
    if ch.r#type != HeaderType::EndorserTransaction as i32 {
        return Err(refuse(
            K::HeaderType,
            format!("invalid header type {}", ch.r#type),
        ));
    }
    if ch.channel_id != config.channel_id().as_ref() {
        return Err(refuse(
            K::UnknownChannel,
            format!("channel '{}' not found", ch.channel_id),
        ));
    }
    if sh.creator.is_empty() || sh.nonce.is_empty() {
        return Err(refuse(K::Malformed, "creator or nonce is empty"));
    }
    let creator = config
        .msps()
        .verify(&sh.creator, &signed.proposal_bytes, &signed.signature, now)
        .map_err(|e| {
            refuse(
                K::BadCreator,
                format!("access denied: creator or signature invalid: {e}"),
            )
        })?;
    let tx_id = TxId::compute(&sh.nonce, &sh.creator);
    if ch.tx_id != tx_id.as_str() {
        return Err(refuse(
            K::BadTxId,
            format!("incorrectly formed txid {:?}", ch.tx_id),
        ));
    }
    if !config.evaluate("Writers", &[creator.signer()]) {
        return Err(refuse(
            K::AccessDenied,
            format!(
                "access denied: channel [{}] creator org [{}] does not satisfy the Writers policy",
                ch.channel_id,
                creator.msp_id()
            ),
        ));
    }
    let ts = ch
        .timestamp
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| refuse(K::Malformed, "proposal has no timestamp"))?;
    let skew = now
        .duration_since(ts)
        .or_else(|_| ts.duration_since(now))
        .unwrap_or_default();
    if skew > max_skew {
        return Err(refuse(
            K::StaleTimestamp,
            format!(
                "proposal timestamp is {}s away from the peer's clock (limit {}s)",
                skew.as_secs(),
                max_skew.as_secs()
            ),
        ));
    }
    let invocation = decode_invocation(&ch.extension, &proposal.payload)
        .map_err(|e| refuse(K::Malformed, e.to_string()))?;
    let payload = ChaincodeProposalPayload::decode(proposal.payload.as_slice())
        .map_err(|_| refuse(K::Malformed, "chaincode proposal payload does not decode"))?;
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
