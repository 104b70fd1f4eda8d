//! What a proposal invokes: the chaincode and the function, resolved one way for everyone who
//! decides on it (the gateway's evaluate-only and endorser-planning rules, the endorser's
//! simulation and signing, the contract router).
//!
//! A Fabric proposal names its chaincode twice: in the channel header's
//! `ChaincodeHeaderExtension.chaincode_id` and in the `ChaincodeInvocationSpec` of its payload.
//! Fabric clients set both to the same name; a proposal where they differ is refused here, so
//! no component can be made to check one name and run another. The function is the first
//! argument; `fabric-contract-api` addresses a function of a named contract as
//! `Contract:function`, and the contract router strips everything up to the last `:`, so the
//! canonical function is what follows the last `:` (the whole argument when there is none),
//! read as UTF-8 with invalid sequences replaced.

use prost::Message;

use crate::protos::{
    ChaincodeHeaderExtension, ChaincodeInput, ChaincodeInvocationSpec, ChaincodeProposalPayload,
};

/// The chaincode and function a proposal invokes.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Chaincode name (both places of the proposal agree on it).
    pub chaincode: String,
    /// Canonical function name ([`canonical_function`] of the first argument; empty if there
    /// are no arguments).
    pub function: String,
    /// The invocation's input (arguments, `is_init`; the decorations map).
    pub input: ChaincodeInput,
    /// Whether the proposal carries a transient map (private data for the chaincode).
    pub has_transient: bool,
}

/// Why a proposal's invocation cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    /// A message does not decode.
    #[error("{0} does not decode")]
    Malformed(&'static str),
    /// No chaincode name in either place.
    #[error("no chaincode name")]
    NoChaincode,
    /// The header extension and the invocation spec name different chaincodes.
    #[error("the header extension names chaincode {header:?}, the invocation spec {spec:?}")]
    ChaincodeMismatch {
        /// Name in `ChaincodeHeaderExtension`.
        header: String,
        /// Name in `ChaincodeInvocationSpec`.
        spec: String,
    },
}

/// The canonical name of the function called by first argument `arg0`: what follows its last
/// `:` (fabric-contract-api's `Contract:function`), UTF-8 with invalid sequences replaced.
pub fn canonical_function(arg0: &[u8]) -> String {
    let text = String::from_utf8_lossy(arg0);
    text.rsplit(':').next().unwrap_or_default().to_owned()
}

/// Resolves the invocation of a proposal from its `ChannelHeader.extension` bytes and its
/// `Proposal.payload` bytes.
///
/// # Errors
/// [`InvocationError`]: undecodable messages, no chaincode name, or two different names.
pub fn decode_invocation(
    channel_header_extension: &[u8],
    proposal_payload: &[u8],
) -> Result<Invocation, InvocationError> {
    let ext = ChaincodeHeaderExtension::decode(channel_header_extension)
        .map_err(|_| InvocationError::Malformed("chaincode header extension"))?;
    let payload = ChaincodeProposalPayload::decode(proposal_payload)
        .map_err(|_| InvocationError::Malformed("chaincode proposal payload"))?;
    let cis = ChaincodeInvocationSpec::decode(payload.input.as_slice())
        .map_err(|_| InvocationError::Malformed("chaincode invocation spec"))?;
    let spec = cis
        .chaincode_spec
        .ok_or(InvocationError::Malformed("chaincode spec"))?;
    let header = ext.chaincode_id.map(|id| id.name).unwrap_or_default();
    let named = spec.chaincode_id.map(|id| id.name).unwrap_or_default();
    let chaincode = match (header.is_empty(), named.is_empty()) {
        (true, true) => return Err(InvocationError::NoChaincode),
        (false, true) => header,
        (true, false) => named,
        (false, false) if header == named => header,
        (false, false) => {
            return Err(InvocationError::ChaincodeMismatch {
                header,
                spec: named,
            });
        }
    };
    let input = spec.input.unwrap_or_default();
    let function = input
        .args
        .first()
        .map(|a| canonical_function(a))
        .unwrap_or_default();
    Ok(Invocation {
        chaincode,
        function,
        input,
        has_transient: !payload.transient_map.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protos::{ChaincodeId, ChaincodeSpec};

    fn parts(header: &str, spec: &str, args: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let id = |n: &str| {
            (!n.is_empty()).then(|| ChaincodeId {
                name: n.to_owned(),
                ..Default::default()
            })
        };
        let ext = ChaincodeHeaderExtension {
            chaincode_id: id(header),
        }
        .encode_to_vec();
        let cis = ChaincodeInvocationSpec {
            chaincode_spec: Some(ChaincodeSpec {
                chaincode_id: id(spec),
                input: Some(ChaincodeInput {
                    args: args.iter().map(|a| a.to_vec()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let payload = ChaincodeProposalPayload {
            input: cis.encode_to_vec(),
            transient_map: Default::default(),
        }
        .encode_to_vec();
        (ext, payload)
    }

    #[test]
    fn contract_prefixes_resolve_to_the_routed_function() {
        for arg in [&b"ReadRecord"[..], b"ehr:ReadRecord", b"a:b:ReadRecord"] {
            let (ext, payload) = parts("ehr", "ehr", &[arg, b"P1"]);
            let inv = decode_invocation(&ext, &payload).unwrap();
            assert_eq!(inv.function, "ReadRecord");
            assert_eq!(inv.chaincode, "ehr");
        }
        assert_eq!(canonical_function(b"ehr:"), "");
    }

    #[test]
    fn two_different_chaincode_names_are_refused() {
        let (ext, payload) = parts("kv", "ehr", &[b"ReadRecord"]);
        assert_eq!(
            decode_invocation(&ext, &payload),
            Err(InvocationError::ChaincodeMismatch {
                header: "kv".into(),
                spec: "ehr".into()
            })
        );
        let (ext, payload) = parts("", "ehr", &[b"ReadRecord"]);
        assert_eq!(decode_invocation(&ext, &payload).unwrap().chaincode, "ehr");
        let (ext, payload) = parts("", "", &[b"ReadRecord"]);
        assert_eq!(
            decode_invocation(&ext, &payload),
            Err(InvocationError::NoChaincode)
        );
    }
}
