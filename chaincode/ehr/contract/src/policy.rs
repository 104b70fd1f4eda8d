//! Key-level (state-based) endorsement policies for record keys.
//!
//! A record's keys (public metadata and private PHI) carry a `VALIDATION_PARAMETER` naming the
//! custodian organization, so only the custodian's peers need to endorse a change to them, and
//! PHI never has to reach another organization's endorser.

use medledger_proto::common::msp_principal::Classification;
use medledger_proto::common::msp_role::MspRoleType;
use medledger_proto::common::signature_policy::{NOutOf, Type};
use medledger_proto::common::{MspPrincipal, MspRole, SignaturePolicy, SignaturePolicyEnvelope};
use prost::Message;

/// The serialized `common.SignaturePolicyEnvelope` requiring one signature of a peer of
/// `msp_id`, exactly as Fabric builds it (`policydsl.SignedByMspPeer`, and equally
/// `statebased.NewStateEP` + `AddOrgs(RoleTypePeer, msp_id)` + `Policy()`):
/// `version 0`, `rule = NOutOf(1, [SignedBy(0)])`,
/// `identities = [MSPPrincipal{ROLE, MSPRole{msp_id, PEER}}]`.
pub fn custodian_endorsement_policy(msp_id: &str) -> Vec<u8> {
    let role = MspRole {
        msp_identifier: msp_id.to_owned(),
        role: MspRoleType::Peer as i32,
    };
    SignaturePolicyEnvelope {
        version: 0,
        rule: Some(SignaturePolicy {
            r#type: Some(Type::NOutOf(NOutOf {
                n: 1,
                rules: vec![SignaturePolicy {
                    r#type: Some(Type::SignedBy(0)),
                }],
            })),
        }),
        identities: vec![MspPrincipal {
            principal_classification: Classification::Role as i32,
            principal: role.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_one_peer_of_the_custodian() {
        let bytes = custodian_endorsement_policy("Org1MSP");
        let env = SignaturePolicyEnvelope::decode(bytes.as_slice()).unwrap();
        assert_eq!(env.version, 0);
        let Some(Type::NOutOf(n)) = env.rule.unwrap().r#type else {
            panic!("not n-out-of")
        };
        assert_eq!(n.n, 1);
        assert_eq!(n.rules.len(), 1);
        assert_eq!(n.rules[0].r#type, Some(Type::SignedBy(0)));
        assert_eq!(env.identities.len(), 1);
        assert_eq!(
            env.identities[0].principal_classification,
            Classification::Role as i32
        );
        let role = MspRole::decode(env.identities[0].principal.as_slice()).unwrap();
        assert_eq!(role.msp_identifier, "Org1MSP");
        assert_eq!(role.role, MspRoleType::Peer as i32);
        // Wire bytes as Go's proto.Marshal writes them (fields in order, version 0 omitted):
        // rule {n_out_of {n:1, rules {signed_by:0}}}, identities {principal: MSPRole}.
        let expected = [
            "1208",               // field 2 (rule), 8 bytes
            "1206",               // n_out_of, 6 bytes
            "0801",               // n = 1
            "1202",               // rules, 2 bytes
            "0800",               // signed_by = 0
            "1a0d",               // field 3 (identities), 13 bytes; classification ROLE = 0 omitted
            "120b",               // principal, 11 bytes
            "0a074f7267314d5350", // msp_identifier "Org1MSP"
            "1003",               // role PEER = 3
        ]
        .concat();
        assert_eq!(hex::encode(&bytes), expected);
    }
}
