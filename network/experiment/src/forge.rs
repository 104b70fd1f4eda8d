//! Byzantine endorsing peers: colluding forgers of read-write sets and responses, and black
//! holes. Forgeries are deterministic in the honest result, so every Byzantine peer forges
//! the same payload for a proposal and their endorsements can satisfy a policy together.

use medledger_msp::crypto::sha256;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::{ChannelHeader, Header};
use medledger_proto::kvrwset::KvrwSet;
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeHeaderExtension, ChaincodeProposalPayload, Endorsement, Proposal,
    ProposalResponse, ProposalResponsePayload, Response, SignedProposal,
};
use medledger_proto::rwset::TxReadWriteSet;
use prost::Message;
use serde_json::Value;

use crate::error::{Error, Result};

/// What a Byzantine endorsing peer does with a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Misbehaviour {
    /// Never answers.
    BlackHole,
    /// Answers with a forged, validly signed endorsement.
    Forge,
}

/// The colluders' choice for attempt `attempt` (0, 1, …) of request `request` in the run
/// seeded with `seed`: a quarter black-holed, the rest forged. Every Byzantine peer chooses
/// alike, and the same in every run with that seed.
pub(crate) fn misbehaviour(seed: u64, request: usize, attempt: u32) -> Misbehaviour {
    let key = [
        seed.to_be_bytes().as_slice(),
        &(request as u64).to_be_bytes(),
        &attempt.to_be_bytes(),
    ]
    .concat();
    if sha256(&key)[0].is_multiple_of(4) {
        Misbehaviour::BlackHole
    } else {
        Misbehaviour::Forge
    }
}

/// The forged value the colluders put in place of a record hash.
fn forged_sha256() -> String {
    hex::encode(sha256(b"forged by a Byzantine endorser"))
}

/// Falsifies a JSON document: access decisions become `granted`, record hashes a forged
/// hash, custodians `Org4MSP` (a hijack), and a `forged` marker is added to objects that have
/// none of these. Non-JSON bytes are returned unchanged.
pub(crate) fn falsify(bytes: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(bytes) else {
        return bytes.to_vec();
    };
    if let Value::Object(map) = &mut v {
        let mut changed = false;
        for (k, val) in map.iter_mut() {
            match k.as_str() {
                "decision" => {
                    *val = Value::String("granted".into());
                    changed = true;
                }
                "sha256" => {
                    *val = Value::String(forged_sha256());
                    changed = true;
                }
                "custodian_msp" => {
                    *val = Value::String("Org4MSP".into());
                    changed = true;
                }
                _ => {}
            }
        }
        if !changed {
            map.insert("forged".into(), Value::Bool(true));
        }
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| bytes.to_vec())
}

/// The proposal response payload the colluders endorse for `signed`, given an honest
/// peer's `honest` response: its chaincode response and every public write falsified; for a
/// proposal the chaincode refused, a made-up success (`{"decision":"granted"}`) with no
/// reads or writes.
///
/// # Errors
/// [`Error::Signing`] if the proposal or the honest payload does not decode.
pub(crate) fn forged_payload(
    signed: &SignedProposal,
    honest: &ProposalResponse,
) -> Result<Vec<u8>> {
    let bad = |what: &str| Error::Signing(format!("forging: {what} does not decode"));
    let ok = honest
        .response
        .as_ref()
        .is_some_and(|r| (200..400).contains(&r.status))
        && !honest.payload.is_empty();
    if ok {
        let mut prp = ProposalResponsePayload::decode(honest.payload.as_slice())
            .map_err(|_| bad("proposal response payload"))?;
        let mut action = ChaincodeAction::decode(prp.extension.as_slice())
            .map_err(|_| bad("chaincode action"))?;
        if let Some(r) = action.response.as_mut() {
            r.payload = falsify(&r.payload);
        }
        let mut results =
            TxReadWriteSet::decode(action.results.as_slice()).map_err(|_| bad("rwset"))?;
        for ns in &mut results.ns_rwset {
            let mut kv = KvrwSet::decode(ns.rwset.as_slice()).map_err(|_| bad("kv rwset"))?;
            for w in &mut kv.writes {
                if !w.is_delete {
                    w.value = falsify(&w.value);
                }
            }
            ns.rwset = kv.encode_to_vec();
        }
        action.results = results.encode_to_vec();
        prp.extension = action.encode_to_vec();
        return Ok(prp.encode_to_vec());
    }
    // The chaincode refused: make up a success.
    let p = Proposal::decode(signed.proposal_bytes.as_slice()).map_err(|_| bad("proposal"))?;
    let header = Header::decode(p.header.as_slice()).map_err(|_| bad("header"))?;
    let ch = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(|_| bad("channel header"))?;
    let chaincode_id = ChaincodeHeaderExtension::decode(ch.extension.as_slice())
        .map_err(|_| bad("chaincode header extension"))?
        .chaincode_id;
    let cpp = ChaincodeProposalPayload::decode(p.payload.as_slice()).map_err(|_| bad("payload"))?;
    let cpp = ChaincodeProposalPayload {
        input: cpp.input,
        transient_map: Default::default(),
    }
    .encode_to_vec();
    let proposal_hash = sha256(
        &[
            header.channel_header.as_slice(),
            header.signature_header.as_slice(),
            cpp.as_slice(),
        ]
        .concat(),
    );
    let action = ChaincodeAction {
        results: TxReadWriteSet {
            data_model: 0,
            ns_rwset: Vec::new(),
        }
        .encode_to_vec(),
        events: Vec::new(),
        response: Some(Response {
            status: 200,
            message: String::new(),
            payload: br#"{"decision":"granted"}"#.to_vec(),
        }),
        chaincode_id,
    };
    Ok(ProposalResponsePayload {
        proposal_hash: proposal_hash.to_vec(),
        extension: action.encode_to_vec(),
    }
    .encode_to_vec())
}

/// A proposal response endorsing `payload`, signed by `endorser` as Fabric signs
/// (`Sign(payload ‖ endorser)`), with the chaincode response the payload carries.
///
/// # Errors
/// [`Error::Signing`].
pub(crate) fn endorse(payload: &[u8], endorser: &SigningIdentity) -> Result<ProposalResponse> {
    let response = ProposalResponsePayload::decode(payload)
        .ok()
        .and_then(|p| ChaincodeAction::decode(p.extension.as_slice()).ok())
        .and_then(|a| a.response);
    let signature = endorser
        .sign(&[payload, endorser.serialized()].concat())
        .map_err(|e| Error::Signing(e.to_string()))?;
    Ok(ProposalResponse {
        version: 1,
        timestamp: None,
        response,
        payload: payload.to_vec(),
        endorsement: Some(Endorsement {
            endorser: endorser.serialized().to_vec(),
            signature,
        }),
        interest: None,
    })
}
