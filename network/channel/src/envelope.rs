//! Transaction envelopes: parse the headers once and check what every orderer and committer
//! checks (Fabric's `protoutil` / `core/common/validation/msgvalidation.go`), each failure
//! with its `TxValidationCode`.

use std::sync::Arc;
use std::time::SystemTime;

use medledger_msp::msp::VerifiedIdentity;
use medledger_proto::TxId;
use medledger_proto::common::{ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader};
use medledger_proto::protos::TxValidationCode;
use prost::Message;

use crate::config::ChannelConfig;

/// An envelope that failed a check: the code Fabric records for it and a reason (ids and
/// names only, never payload contents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {reason}")]
pub struct EnvelopeError {
    /// Validation code for the transactions filter / broadcast status.
    pub code: TxValidationCode,
    /// Human-readable reason.
    pub reason: String,
}

fn fail(code: TxValidationCode, reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError {
        code,
        reason: reason.into(),
    }
}

/// An envelope with its headers decoded (signature not checked).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEnvelope {
    /// The decoded payload (header bytes kept as they were signed).
    pub payload: Payload,
    /// Decoded channel header.
    pub channel_header: ChannelHeader,
    /// Decoded signature header (creator, nonce).
    pub signature_header: SignatureHeader,
}

impl ParsedEnvelope {
    /// Header type (`ENDORSER_TRANSACTION`, `CONFIG`, ...); `None` for an unknown number.
    pub fn header_type(&self) -> Option<HeaderType> {
        HeaderType::try_from(self.channel_header.r#type).ok()
    }

    /// The transaction id as written in the channel header.
    pub fn tx_id(&self) -> &str {
        &self.channel_header.tx_id
    }
}

/// The channel and signature headers of serialized envelope bytes, read from the headers
/// alone: prost decodes the payload (field 1 of `common.Envelope`, bytes on the wire) as a
/// message holding only its `common.Header` (field 1 of `common.Payload`) and skips the data
/// and the signature without copying them, so this costs the same for a 10 MiB envelope as
/// for a small one. `None` if the headers do not decode as [`parse`] decodes them. When the
/// payload field occurs once they are [`parse`]'s headers; when it occurs more than once
/// they may differ (prost keeps the last copy of a bytes field but merges the copies of a
/// message field), and orderers refuse such an envelope at admission.
pub fn headers_of(envelope: &[u8]) -> Option<(ChannelHeader, SignatureHeader)> {
    /// `common.Envelope` with its payload read as [`PayloadHeaderOnly`].
    #[derive(Clone, PartialEq, prost::Message)]
    struct EnvelopeHeaderOnly {
        #[prost(message, optional, tag = "1")]
        payload: Option<PayloadHeaderOnly>,
    }
    decode_headers(EnvelopeHeaderOnly::decode(envelope).ok()?.payload?.header?)
}

/// The channel and signature headers of a serialized `common.Payload`, read from its header
/// alone (the data, field 2, skipped without a copy); `None` if they do not decode as
/// [`parse`] decodes them.
pub fn payload_headers(payload: &[u8]) -> Option<(ChannelHeader, SignatureHeader)> {
    decode_headers(PayloadHeaderOnly::decode(payload).ok()?.header?)
}

/// `common.Payload` without its data.
#[derive(Clone, PartialEq, prost::Message)]
struct PayloadHeaderOnly {
    #[prost(message, optional, tag = "1")]
    header: Option<medledger_proto::common::Header>,
}

fn decode_headers(
    header: medledger_proto::common::Header,
) -> Option<(ChannelHeader, SignatureHeader)> {
    let channel_header = ChannelHeader::decode(header.channel_header.as_slice()).ok()?;
    let signature_header = SignatureHeader::decode(header.signature_header.as_slice()).ok()?;
    Some((channel_header, signature_header))
}

/// The header type of serialized envelope bytes, from [`headers_of`]; `None` if the headers
/// do not decode or the type is unknown.
pub fn header_type_of(envelope: &[u8]) -> Option<HeaderType> {
    let (channel_header, _) = headers_of(envelope)?;
    HeaderType::try_from(channel_header.r#type).ok()
}

/// Decodes an envelope's payload and headers.
///
/// # Errors
/// `NIL_ENVELOPE` for an empty payload, `BAD_PAYLOAD`, `BAD_COMMON_HEADER` (no header,
/// undecodable signature header, empty creator or nonce), `BAD_CHANNEL_HEADER`.
pub fn parse(envelope: &Envelope) -> Result<ParsedEnvelope, EnvelopeError> {
    use TxValidationCode as C;
    if envelope.payload.is_empty() {
        return Err(fail(C::NilEnvelope, "envelope has no payload"));
    }
    let payload = Payload::decode(envelope.payload.as_slice())
        .map_err(|_| fail(C::BadPayload, "payload does not decode"))?;
    let header = payload
        .header
        .as_ref()
        .ok_or_else(|| fail(C::BadCommonHeader, "payload has no header"))?;
    let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(|_| fail(C::BadChannelHeader, "channel header does not decode"))?;
    let signature_header = SignatureHeader::decode(header.signature_header.as_slice())
        .map_err(|_| fail(C::BadCommonHeader, "signature header does not decode"))?;
    Ok(ParsedEnvelope {
        payload,
        channel_header,
        signature_header,
    })
}

/// A transaction envelope that passed [`check`].
#[derive(Debug, Clone)]
pub struct CheckedEnvelope {
    /// Decoded headers and payload.
    pub parsed: ParsedEnvelope,
    /// The creator, validated under the channel's MSPs; its signature over the payload
    /// verified.
    pub creator: Arc<VerifiedIdentity>,
    /// The channel header's `tx_id`, checked to be hex(SHA-256(nonce ‖ creator)) (Fabric's
    /// `protoutil.ComputeTxID`).
    pub tx_id: TxId,
}

/// Checks a signed envelope for `config`'s channel at time `now`: headers decode, the channel
/// is this one, the header type is one a client may submit (`ENDORSER_TRANSACTION` or
/// `CONFIG_UPDATE`), creator and nonce are present, tx_id =
/// hex(SHA-256(nonce ‖ creator)), and the creator is a valid identity of a channel MSP whose
/// signature over the payload bytes verifies. Policy checks (Writers, endorsement) are the
/// caller's.
///
/// # Errors
/// [`parse`]'s codes, `TARGET_CHAIN_NOT_FOUND`, `UNKNOWN_TX_TYPE`, `BAD_PROPOSAL_TXID`,
/// `BAD_CREATOR_SIGNATURE` (invalid creator or signature).
pub fn check(
    envelope: &Envelope,
    config: &ChannelConfig,
    now: SystemTime,
) -> Result<CheckedEnvelope, EnvelopeError> {
    use TxValidationCode as C;
    let parsed = parse(envelope)?;
    let ch = &parsed.channel_header;
    if ch.channel_id != config.channel_id().as_ref() {
        return Err(fail(
            C::TargetChainNotFound,
            // At most 64 characters of the client's channel id are echoed.
            format!(
                "envelope is for channel {:?}",
                ch.channel_id.chars().take(64).collect::<String>()
            ),
        ));
    }
    let header_type = parsed.header_type();
    if !matches!(
        header_type,
        Some(HeaderType::EndorserTransaction | HeaderType::ConfigUpdate)
    ) {
        return Err(fail(
            C::UnknownTxType,
            format!("header type {} cannot be submitted", ch.r#type),
        ));
    }
    let sh = &parsed.signature_header;
    if sh.creator.is_empty() || sh.nonce.is_empty() {
        return Err(fail(C::BadCommonHeader, "creator or nonce is empty"));
    }
    let tx_id = TxId::compute(&sh.nonce, &sh.creator);
    if ch.tx_id != tx_id.as_str() {
        return Err(fail(
            C::BadProposalTxid,
            "tx_id is not hex(SHA-256(nonce || creator))",
        ));
    }
    let creator = config
        .msps()
        .verify(&sh.creator, &envelope.payload, &envelope.signature, now)
        .map_err(|e| fail(C::BadCreatorSignature, e.to_string()))?;
    Ok(CheckedEnvelope {
        parsed,
        creator,
        tx_id,
    })
}
