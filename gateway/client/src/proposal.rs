//! Building and signing what a client sends (Fabric Gateway client's `proposalbuilder` and
//! request signing).

use std::collections::BTreeMap;
use std::time::SystemTime;

use medledger_msp::identity::SigningIdentity;
use medledger_proto::TxId;
use medledger_proto::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use medledger_proto::protos::{
    ChaincodeHeaderExtension, ChaincodeId, ChaincodeInput, ChaincodeInvocationSpec,
    ChaincodeProposalPayload, ChaincodeSpec, Proposal, SignedProposal, chaincode_spec,
};
use prost::Message;

use crate::errors::GatewayError;

/// A signed proposal and its transaction id.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltProposal {
    /// Transaction id.
    pub tx_id: String,
    /// The signed proposal.
    pub signed: SignedProposal,
}

/// Builds a chaincode proposal: `args[0]` is the function name.
///
/// # Errors
/// [`GatewayError::Local`] if signing fails.
pub fn build_proposal(
    identity: &SigningIdentity,
    channel_id: &str,
    chaincode: &str,
    args: &[Vec<u8>],
    transient: &BTreeMap<String, Vec<u8>>,
) -> Result<BuiltProposal, GatewayError> {
    let nonce: [u8; 24] = rand::random();
    let creator = identity.serialized();
    let tx_id = TxId::compute(&nonce, creator).to_string();
    let cc_id = ChaincodeId {
        path: String::new(),
        name: chaincode.to_owned(),
        version: String::new(),
    };
    let header = Header {
        channel_header: ChannelHeader {
            r#type: HeaderType::EndorserTransaction as i32,
            version: 0,
            timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
            channel_id: channel_id.to_owned(),
            tx_id: tx_id.clone(),
            epoch: 0,
            extension: ChaincodeHeaderExtension {
                chaincode_id: Some(cc_id.clone()),
            }
            .encode_to_vec(),
            tls_cert_hash: Vec::new(),
        }
        .encode_to_vec(),
        signature_header: SignatureHeader {
            creator: creator.to_vec(),
            nonce: nonce.to_vec(),
        }
        .encode_to_vec(),
    };
    let input = ChaincodeInvocationSpec {
        chaincode_spec: Some(ChaincodeSpec {
            r#type: chaincode_spec::Type::Undefined as i32,
            chaincode_id: Some(cc_id),
            input: Some(ChaincodeInput {
                args: args.to_vec(),
                decorations: Default::default(),
                is_init: false,
            }),
            timeout: 0,
        }),
    }
    .encode_to_vec();
    let payload = ChaincodeProposalPayload {
        input,
        transient_map: transient.clone().into_iter().collect(),
    };
    let proposal_bytes = Proposal {
        header: header.encode_to_vec(),
        payload: payload.encode_to_vec(),
        extension: Vec::new(),
    }
    .encode_to_vec();
    let signature = identity
        .sign(&proposal_bytes)
        .map_err(|e| GatewayError::Local(e.to_string()))?;
    Ok(BuiltProposal {
        tx_id,
        signed: SignedProposal {
            proposal_bytes,
            signature,
        },
    })
}
