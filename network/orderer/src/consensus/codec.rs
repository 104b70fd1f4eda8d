//! Conversions between the core's types and the `medledger.orderer` protobuf messages, and the
//! bytes that are signed (`medledger_channel::bft`).

use arc_malachitebft_core_consensus as mc;
use arc_malachitebft_core_types as mt;
use medledger_channel::bft::{self, VoteKind};
use medledger_proto::medledger::orderer as pb;
use mt::{NilOrVal, Round, SignedMessage, VoteType};

use super::context::{BatchHeader, BlockHash, ConsenterId, Ctx, Height, Proposal, Signature, Vote};

/// A message from the network that cannot be turned into a consensus input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed cluster message: {0}")]
pub struct WireError(pub(crate) &'static str);

fn hash32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], WireError> {
    bytes.try_into().map_err(|_| WireError(what))
}

/// A defined round (0..=u32::MAX) from the wire.
pub(crate) fn round_from_wire(r: i64) -> Result<Round, WireError> {
    u32::try_from(r)
        .map(Round::new)
        .map_err(|_| WireError("round out of range"))
}

/// A round that may be nil (-1).
pub(crate) fn opt_round_from_wire(r: i64) -> Result<Round, WireError> {
    if r == -1 {
        Ok(Round::Nil)
    } else {
        round_from_wire(r)
    }
}

fn nil_or_val_from_wire(bytes: &[u8]) -> Result<NilOrVal<BlockHash>, WireError> {
    if bytes.is_empty() {
        Ok(NilOrVal::Nil)
    } else {
        Ok(NilOrVal::Val(BlockHash(hash32(
            bytes,
            "value id is not 32 bytes",
        )?)))
    }
}

fn nil_or_val_to_wire(v: &NilOrVal<BlockHash>) -> Vec<u8> {
    match v {
        NilOrVal::Nil => Vec::new(),
        NilOrVal::Val(h) => h.0.to_vec(),
    }
}

fn vote_type_to_wire(t: VoteType) -> pb::VoteType {
    match t {
        VoteType::Prevote => pb::VoteType::Prevote,
        VoteType::Precommit => pb::VoteType::Precommit,
    }
}

fn vote_type_from_wire(t: i32) -> Result<VoteType, WireError> {
    match pb::VoteType::try_from(t) {
        Ok(pb::VoteType::Prevote) => Ok(VoteType::Prevote),
        Ok(pb::VoteType::Precommit) => Ok(VoteType::Precommit),
        _ => Err(WireError("unknown vote type")),
    }
}

fn kind(t: VoteType) -> VoteKind {
    match t {
        VoteType::Prevote => VoteKind::Prevote,
        VoteType::Precommit => VoteKind::Precommit,
    }
}

/// The bytes a vote's signature covers.
pub(crate) fn vote_bytes(channel: &str, v: &Vote) -> Vec<u8> {
    let value = match &v.value {
        NilOrVal::Nil => None,
        NilOrVal::Val(h) => Some(&h.0),
    };
    bft::vote_sign_bytes(
        channel,
        kind(v.vote_type),
        v.height.0,
        v.round.as_i64(),
        value,
        v.voter.0,
    )
}

/// The bytes a proposal's signature covers.
pub(crate) fn proposal_bytes(channel: &str, p: &Proposal) -> Vec<u8> {
    bft::proposal_sign_bytes(
        channel,
        p.height.0,
        p.round.as_i64(),
        p.pol_round.as_i64(),
        &p.value.hash(),
        p.proposer.0,
    )
}

pub(crate) fn header_to_wire(h: &BatchHeader) -> pb::BatchHeader {
    pb::BatchHeader {
        number: h.number,
        previous_hash: h.previous_hash.to_vec(),
        data_hash: h.data_hash.to_vec(),
        time_ms: h.time_ms,
    }
}

pub(crate) fn header_from_wire(h: Option<&pb::BatchHeader>) -> Result<BatchHeader, WireError> {
    let h = h.ok_or(WireError("missing header"))?;
    Ok(BatchHeader {
        number: h.number,
        previous_hash: hash32(&h.previous_hash, "previous hash is not 32 bytes")?,
        data_hash: hash32(&h.data_hash, "data hash is not 32 bytes")?,
        time_ms: h.time_ms,
    })
}

pub(crate) fn vote_to_wire(v: &Vote) -> pb::Vote {
    pb::Vote {
        vote_type: vote_type_to_wire(v.vote_type) as i32,
        height: v.height.0,
        round: v.round.as_i64(),
        value_id: nil_or_val_to_wire(&v.value),
        voter: v.voter.0,
    }
}

pub(crate) fn signed_vote_to_wire(v: &mt::SignedVote<Ctx>) -> pb::SignedVote {
    pb::SignedVote {
        vote: Some(vote_to_wire(&v.message)),
        signature: v.signature.0.clone(),
    }
}

pub(crate) fn signed_vote_from_wire(v: &pb::SignedVote) -> Result<mt::SignedVote<Ctx>, WireError> {
    let vote = v.vote.as_ref().ok_or(WireError("missing vote"))?;
    Ok(SignedMessage::new(
        Vote {
            vote_type: vote_type_from_wire(vote.vote_type)?,
            height: Height(vote.height),
            round: round_from_wire(vote.round)?,
            value: nil_or_val_from_wire(&vote.value_id)?,
            voter: ConsenterId(vote.voter),
        },
        Signature(v.signature.clone()),
    ))
}

pub(crate) fn proposal_to_wire(p: &Proposal) -> pb::Proposal {
    pb::Proposal {
        height: p.height.0,
        round: p.round.as_i64(),
        pol_round: p.pol_round.as_i64(),
        value: Some(header_to_wire(&p.value)),
        proposer: p.proposer.0,
    }
}

pub(crate) fn signed_proposal_to_wire(p: &mt::SignedProposal<Ctx>) -> pb::SignedProposal {
    pb::SignedProposal {
        proposal: Some(proposal_to_wire(&p.message)),
        signature: p.signature.0.clone(),
    }
}

pub(crate) fn signed_proposal_from_wire(
    p: &pb::SignedProposal,
) -> Result<mt::SignedProposal<Ctx>, WireError> {
    let proposal = p.proposal.as_ref().ok_or(WireError("missing proposal"))?;
    let value = header_from_wire(proposal.value.as_ref())?;
    if value.number != proposal.height {
        return Err(WireError("proposal height and block number differ"));
    }
    Ok(SignedMessage::new(
        Proposal {
            height: Height(proposal.height),
            round: round_from_wire(proposal.round)?,
            value,
            pol_round: opt_round_from_wire(proposal.pol_round)?,
            proposer: ConsenterId(proposal.proposer),
        },
        Signature(p.signature.clone()),
    ))
}

pub(crate) fn polka_to_wire(c: &mt::PolkaCertificate<Ctx>) -> pb::PolkaCertificate {
    pb::PolkaCertificate {
        height: c.height.0,
        round: c.round.as_i64(),
        value_id: c.value_id.0.to_vec(),
        signatures: c
            .polka_signatures
            .iter()
            .map(|s| pb::CertSignature {
                consenter: s.address.0,
                signature: s.signature.0.clone(),
            })
            .collect(),
    }
}

pub(crate) fn polka_from_wire(
    c: &pb::PolkaCertificate,
) -> Result<mt::PolkaCertificate<Ctx>, WireError> {
    Ok(mt::PolkaCertificate {
        height: Height(c.height),
        round: round_from_wire(c.round)?,
        value_id: BlockHash(hash32(&c.value_id, "value id is not 32 bytes")?),
        polka_signatures: c
            .signatures
            .iter()
            .map(|s| {
                mt::PolkaSignature::new(ConsenterId(s.consenter), Signature(s.signature.clone()))
            })
            .collect(),
    })
}

pub(crate) fn round_cert_to_wire(c: &mt::RoundCertificate<Ctx>) -> pb::RoundCertificate {
    pb::RoundCertificate {
        height: c.height.0,
        round: c.round.as_i64(),
        skip: c.cert_type == mt::RoundCertificateType::Skip,
        signatures: c
            .round_signatures
            .iter()
            .map(|s| pb::RoundSignature {
                vote_type: vote_type_to_wire(s.vote_type) as i32,
                value_id: nil_or_val_to_wire(&s.value_id),
                consenter: s.address.0,
                signature: s.signature.0.clone(),
            })
            .collect(),
    }
}

pub(crate) fn round_cert_from_wire(
    c: &pb::RoundCertificate,
) -> Result<mt::RoundCertificate<Ctx>, WireError> {
    let mut sigs = Vec::with_capacity(c.signatures.len());
    for s in &c.signatures {
        sigs.push(mt::RoundSignature::new(
            vote_type_from_wire(s.vote_type)?,
            nil_or_val_from_wire(&s.value_id)?,
            ConsenterId(s.consenter),
            Signature(s.signature.clone()),
        ));
    }
    Ok(mt::RoundCertificate {
        height: Height(c.height),
        round: round_from_wire(c.round)?,
        cert_type: if c.skip {
            mt::RoundCertificateType::Skip
        } else {
            mt::RoundCertificateType::Precommit
        },
        round_signatures: sigs,
    })
}

/// Timeout kinds persisted in the WAL: 1 propose, 2 prevote, 3 precommit.
pub(crate) fn timeout_to_wire(t: &mt::Timeout) -> Option<pb::TimeoutElapsed> {
    let kind = match t.kind {
        mt::TimeoutKind::Propose => 1,
        mt::TimeoutKind::Prevote => 2,
        mt::TimeoutKind::Precommit => 3,
        _ => return None,
    };
    Some(pb::TimeoutElapsed {
        kind,
        round: t.round.as_i64(),
    })
}

pub(crate) fn timeout_from_wire(t: &pb::TimeoutElapsed) -> Result<mt::Timeout, WireError> {
    let round = round_from_wire(t.round)?;
    Ok(match t.kind {
        1 => mt::Timeout::propose(round),
        2 => mt::Timeout::prevote(round),
        3 => mt::Timeout::precommit(round),
        _ => return Err(WireError("unknown timeout kind")),
    })
}

/// A WAL record for a consensus input; `None` for inputs that are not persisted.
/// `body` is the envelopes of a valid proposed value.
pub(crate) fn wal_entry(
    height: u64,
    input: &mc::Input<Ctx>,
    body: Option<&[Vec<u8>]>,
) -> Option<pb::WalEntry> {
    use pb::wal_entry::Entry;
    let entry = match input {
        mc::Input::Vote(v) => Entry::Vote(signed_vote_to_wire(v)),
        mc::Input::Proposal(p) => Entry::Proposal(signed_proposal_to_wire(p)),
        mc::Input::ProposedValue(v, _) => Entry::ProposedValue(pb::ProposedValue {
            height: v.height.0,
            round: v.round.as_i64(),
            valid_round: v.valid_round.as_i64(),
            proposer: v.proposer.0,
            value: Some(header_to_wire(&v.value)),
            valid: v.validity.is_valid(),
            envelopes: body.map(<[Vec<u8>]>::to_vec).unwrap_or_default(),
        }),
        mc::Input::TimeoutElapsed(t) => Entry::Timeout(timeout_to_wire(t)?),
        mc::Input::PolkaCertificate(c) => Entry::PolkaCertificate(polka_to_wire(c)),
        _ => return None,
    };
    Some(pb::WalEntry {
        height,
        entry: Some(entry),
    })
}

/// The consensus input a WAL record replays, and the envelopes it carries (for proposed
/// values).
pub(crate) fn wal_input(
    e: &pb::WalEntry,
) -> Result<(mc::Input<Ctx>, Option<super::RecoveredValue>), WireError> {
    use pb::wal_entry::Entry;
    Ok(
        match e.entry.as_ref().ok_or(WireError("empty WAL entry"))? {
            Entry::Vote(v) => (mc::Input::Vote(signed_vote_from_wire(v)?), None),
            Entry::Proposal(p) => (mc::Input::Proposal(signed_proposal_from_wire(p)?), None),
            Entry::ProposedValue(v) => {
                let value = header_from_wire(v.value.as_ref())?;
                let body = (v.valid && !v.envelopes.is_empty())
                    .then(|| (value.clone(), v.envelopes.clone()));
                let pv = mc::ProposedValue {
                    height: Height(v.height),
                    round: round_from_wire(v.round)?,
                    valid_round: opt_round_from_wire(v.valid_round)?,
                    proposer: ConsenterId(v.proposer),
                    value,
                    validity: mt::Validity::from_bool(v.valid),
                };
                (
                    mc::Input::ProposedValue(pv, mt::ValueOrigin::Consensus),
                    body,
                )
            }
            Entry::Timeout(t) => (mc::Input::TimeoutElapsed(timeout_from_wire(t)?), None),
            Entry::PolkaCertificate(c) => (mc::Input::PolkaCertificate(polka_from_wire(c)?), None),
        },
    )
}
