//! Assembling an endorser transaction from a proposal and its endorsements (Fabric's
//! `protoutil.CreateSignedTx`, without the final signature, which is the client's).

use medledger_proto::common::{Envelope, Header, Payload};
use medledger_proto::protos::{
    ChaincodeActionPayload, ChaincodeEndorsedAction, ChaincodeProposalPayload, Proposal,
    ProposalResponse, SignedProposal, Transaction, TransactionAction,
};
use prost::Message;

/// Why endorsements cannot make a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblyError {
    /// No endorsements were given.
    #[error("no proposal responses")]
    NoResponses,
    /// A response is not a successful endorsement.
    #[error("proposal response {index} is not endorsed (status {status})")]
    NotEndorsed {
        /// Index of the response.
        index: usize,
        /// Its status.
        status: i32,
    },
    /// Endorsers computed different results (read-write sets, events or responses).
    #[error("proposal response payloads do not match")]
    PayloadMismatch,
    /// The proposal does not decode.
    #[error("proposal does not decode: {0}")]
    BadProposal(&'static str),
}

/// The unsigned transaction envelope for `proposal` endorsed by `responses`: payload =
/// `Payload { header = the proposal's header, data = Transaction { actions = [TransactionAction
/// { header = signature header, payload = ChaincodeActionPayload { chaincode_proposal_payload =
/// proposal payload without the transient map, action = ChaincodeEndorsedAction { the common
/// proposal response payload, all endorsements } } }] } }`; the client signs `payload` and
/// sets `signature`. All responses must carry identical payload bytes.
///
/// # Errors
/// [`AssemblyError`].
pub fn assemble_transaction(
    proposal: &SignedProposal,
    responses: &[ProposalResponse],
) -> Result<Envelope, AssemblyError> {
    let first = responses.first().ok_or(AssemblyError::NoResponses)?;
    let mut endorsements = Vec::with_capacity(responses.len());
    for (index, r) in responses.iter().enumerate() {
        let status = r.response.as_ref().map_or(0, |r| r.status);
        let Some(e) = r
            .endorsement
            .clone()
            .filter(|_| (200..400).contains(&status))
        else {
            return Err(AssemblyError::NotEndorsed { index, status });
        };
        if r.payload != first.payload {
            return Err(AssemblyError::PayloadMismatch);
        }
        endorsements.push(e);
    }
    let p = Proposal::decode(proposal.proposal_bytes.as_slice())
        .map_err(|_| AssemblyError::BadProposal("proposal bytes"))?;
    let header =
        Header::decode(p.header.as_slice()).map_err(|_| AssemblyError::BadProposal("header"))?;
    let cpp = ChaincodeProposalPayload::decode(p.payload.as_slice())
        .map_err(|_| AssemblyError::BadProposal("chaincode proposal payload"))?;
    let cpp_without_transient = ChaincodeProposalPayload {
        input: cpp.input,
        transient_map: Default::default(),
    };
    let action = ChaincodeActionPayload {
        chaincode_proposal_payload: cpp_without_transient.encode_to_vec(),
        action: Some(ChaincodeEndorsedAction {
            proposal_response_payload: first.payload.clone(),
            endorsements,
        }),
    };
    let tx = Transaction {
        actions: vec![TransactionAction {
            header: header.signature_header.clone(),
            payload: action.encode_to_vec(),
        }],
    };
    let payload = Payload {
        header: Some(header),
        data: tx.encode_to_vec(),
    };
    Ok(Envelope {
        payload: payload.encode_to_vec(),
        signature: Vec::new(),
    })
}
