//! Conversion between Fabric's protobuf `common.SignaturePolicyEnvelope` (principals by index,
//! `signed_by` / `n_out_of` rules) and [`SignaturePolicy`]: how key-level (state-based)
//! endorsement policies travel in key metadata (`VALIDATION_PARAMETER`) and how chaincode and
//! collection policies are written in definitions.

use medledger_proto::common::{
    MspPrincipal, MspRole as PbMspRole, SignaturePolicy as PbRule, SignaturePolicyEnvelope,
    msp_principal::Classification, msp_role::MspRoleType, signature_policy,
};
use prost::Message;

use super::{MAX_DEPTH, MspRole, PolicyError, Principal, SignaturePolicy};

fn bad(reason: &'static str) -> PolicyError {
    PolicyError::InvalidEnvelope { reason }
}

fn role_from_proto(role: i32) -> Result<MspRole, PolicyError> {
    match MspRoleType::try_from(role) {
        Ok(MspRoleType::Member) => Ok(MspRole::Member),
        Ok(MspRoleType::Admin) => Ok(MspRole::Admin),
        Ok(MspRoleType::Client) => Ok(MspRole::Client),
        Ok(MspRoleType::Peer) => Ok(MspRole::Peer),
        Ok(MspRoleType::Orderer) => Ok(MspRole::Orderer),
        Err(_) => Err(bad("unknown MSP role")),
    }
}

fn role_to_proto(role: MspRole) -> MspRoleType {
    match role {
        MspRole::Member => MspRoleType::Member,
        MspRole::Admin => MspRoleType::Admin,
        MspRole::Client => MspRoleType::Client,
        MspRole::Peer => MspRoleType::Peer,
        MspRole::Orderer => MspRoleType::Orderer,
    }
}

impl SignaturePolicy {
    /// Reads a Fabric `common.SignaturePolicyEnvelope`. Only `ROLE` principals are supported
    /// (what `policydsl` produces from `'Org1MSP.peer'`); the MSP id is checked as the parser
    /// checks it.
    ///
    /// # Errors
    /// [`PolicyError::InvalidEnvelope`] for a missing rule, a principal that is not a `ROLE`
    /// or does not decode, a `signed_by` index out of range, an `n_out_of` with `n < 1` or
    /// `n` greater than its rules (as the parser, see the module docs), or nesting deeper
    /// than [`MAX_DEPTH`].
    pub fn from_envelope(env: &SignaturePolicyEnvelope) -> Result<Self, PolicyError> {
        let principals = env
            .identities
            .iter()
            .map(|p| {
                if p.principal_classification != Classification::Role as i32 {
                    return Err(bad("only ROLE principals are supported"));
                }
                let role = PbMspRole::decode(p.principal.as_slice())
                    .map_err(|_| bad("MSP role principal does not decode"))?;
                let principal: Principal =
                    format!("{}.{}", role.msp_identifier, role_from_proto(role.role)?)
                        .parse()
                        .map_err(|_| bad("invalid MSP id in principal"))?;
                Ok(principal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rule = env.rule.as_ref().ok_or(bad("envelope has no rule"))?;
        convert(rule, &principals, 0)
    }

    /// Decodes and reads serialized `common.SignaturePolicyEnvelope` bytes (a key's
    /// `VALIDATION_PARAMETER` metadata).
    ///
    /// # Errors
    /// As [`SignaturePolicy::from_envelope`], or `InvalidEnvelope` if the bytes do not decode.
    pub fn from_envelope_bytes(bytes: &[u8]) -> Result<Self, PolicyError> {
        let env =
            SignaturePolicyEnvelope::decode(bytes).map_err(|_| bad("envelope does not decode"))?;
        Self::from_envelope(&env)
    }

    /// The Fabric `common.SignaturePolicyEnvelope` of this policy (version 0, each distinct
    /// principal listed once, in first-use order), as `policydsl.FromString` builds it.
    pub fn to_envelope(&self) -> SignaturePolicyEnvelope {
        let mut principals: Vec<&Principal> = Vec::new();
        let rule = self.to_rule(&mut principals);
        SignaturePolicyEnvelope {
            version: 0,
            rule: Some(rule),
            identities: principals
                .into_iter()
                .map(|p| MspPrincipal {
                    principal_classification: Classification::Role as i32,
                    principal: PbMspRole {
                        msp_identifier: p.msp_id.clone(),
                        role: role_to_proto(p.role) as i32,
                    }
                    .encode_to_vec(),
                })
                .collect(),
        }
    }

    fn to_rule<'a>(&'a self, principals: &mut Vec<&'a Principal>) -> PbRule {
        let r#type = match self {
            SignaturePolicy::SignedBy(p) => {
                let index = match principals.iter().position(|q| *q == p) {
                    Some(i) => i,
                    None => {
                        principals.push(p);
                        principals.len() - 1
                    }
                };
                signature_policy::Type::SignedBy(i32::try_from(index).unwrap_or(i32::MAX))
            }
            SignaturePolicy::OutOf { n, rules } => {
                signature_policy::Type::NOutOf(signature_policy::NOutOf {
                    n: i32::try_from(*n).unwrap_or(i32::MAX),
                    rules: rules.iter().map(|r| r.to_rule(principals)).collect(),
                })
            }
        };
        PbRule {
            r#type: Some(r#type),
        }
    }
}

fn convert(
    rule: &PbRule,
    principals: &[Principal],
    depth: usize,
) -> Result<SignaturePolicy, PolicyError> {
    match rule.r#type.as_ref().ok_or(bad("rule has no type"))? {
        signature_policy::Type::SignedBy(i) => {
            let p = usize::try_from(*i)
                .ok()
                .and_then(|i| principals.get(i))
                .ok_or(bad("signed_by index out of range"))?;
            Ok(SignaturePolicy::SignedBy(p.clone()))
        }
        signature_policy::Type::NOutOf(g) => {
            if depth >= MAX_DEPTH {
                return Err(bad("rules nested too deep"));
            }
            let rules = g
                .rules
                .iter()
                .map(|r| convert(r, principals, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            let n = usize::try_from(g.n).map_err(|_| bad("negative threshold"))?;
            if n == 0 || n > rules.len() {
                return Err(bad("n_out_of needs 1 <= n <= number of rules"));
            }
            Ok(SignaturePolicy::OutOf { n, rules })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_envelope() {
        for text in [
            "'Org1MSP.peer'",
            "AND('Org1MSP.peer', 'Org2MSP.peer')",
            "OutOf(2, 'A.member', 'B.admin', OR('A.member', 'C.client'))",
        ] {
            let p: SignaturePolicy = text.parse().unwrap();
            let env = p.to_envelope();
            assert_eq!(SignaturePolicy::from_envelope(&env).unwrap(), p, "{text}");
            let bytes = env.encode_to_vec();
            assert_eq!(SignaturePolicy::from_envelope_bytes(&bytes).unwrap(), p);
        }
        // Principals are listed once.
        let p: SignaturePolicy = "OR('A.member', AND('A.member', 'B.peer'))".parse().unwrap();
        assert_eq!(p.to_envelope().identities.len(), 2);
    }

    #[test]
    fn rejects_bad_envelopes() {
        let p: SignaturePolicy = "AND('A.peer', 'B.peer')".parse().unwrap();
        let mut env = p.to_envelope();
        env.identities.truncate(1);
        assert!(SignaturePolicy::from_envelope(&env).is_err());
        let mut env = p.to_envelope();
        env.identities[0].principal_classification = Classification::Identity as i32;
        assert!(SignaturePolicy::from_envelope(&env).is_err());
        let mut env = p.to_envelope();
        if let Some(signature_policy::Type::NOutOf(g)) =
            env.rule.as_mut().and_then(|r| r.r#type.as_mut())
        {
            g.n = 3;
        }
        assert!(SignaturePolicy::from_envelope(&env).is_err());
        assert!(SignaturePolicy::from_envelope_bytes(b"\xff\xff").is_err());
        assert!(SignaturePolicy::from_envelope(&SignaturePolicyEnvelope::default()).is_err());
    }
}
