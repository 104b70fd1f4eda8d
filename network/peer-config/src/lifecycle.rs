//! The chaincode lifecycle's definitions and keys (`_lifecycle`, Fabric 2.x): a chaincode
//! definition (name, version, sequence, endorsement policy, collections) as organizations
//! approve and commit it, its canonical form, the `_lifecycle` state keys, the answers of
//! `QueryChaincodeDefinition` and `CheckCommitReadiness`, and why an invocation is refused.
//! The system chaincode itself and the committer's rules for its writes are the peer's
//! (`medledger_peer::lifecycle`, which re-exports these); clients (`medledger lifecycle`, the
//! development network) build and read these types without linking the peer.
//!
//! State layout (public world state of namespace `_lifecycle`, ADR 0017):
//!
//! | key | value |
//! |---|---|
//! | `definitions/<name>` | the committed definition, canonical JSON ([`Definition`]) |
//! | `approvals/<name>/<sequence>/<MSP id>` | hex SHA-256 of the canonical JSON of the definition that organization approved for that sequence |

use std::collections::BTreeMap;

use medledger_msp::crypto::sha256;
use medledger_msp::policy::{MetaRule, Policy, SignaturePolicy};
use medledger_proto::{ChaincodeName, MspId};
use serde::{Deserialize, Serialize};

use crate::definitions::{ChaincodeDefinition, CollectionDefinition};

/// The lifecycle system chaincode's name and state namespace.
pub const NAMESPACE: &str = "_lifecycle";
/// Channel policy that writes of committed definitions must satisfy (Fabric's
/// `/Channel/Application/LifecycleEndorsement`); `MAJORITY Endorsement` when the channel has
/// none.
pub const LIFECYCLE_ENDORSEMENT: &str = "LifecycleEndorsement";
/// Key prefix of committed definitions.
pub const DEFINITION_PREFIX: &str = "definitions/";
/// Key prefix of approvals.
pub const APPROVAL_PREFIX: &str = "approvals/";

/// Function: record this organization's approval of a definition (args: definition JSON).
pub const APPROVE: &str = "ApproveChaincodeDefinitionForMyOrg";
/// Function: commit a definition approved by a majority (args: definition JSON).
pub const COMMIT: &str = "CommitChaincodeDefinition";
/// Function: the committed definition of a chaincode and who approved it (args: name).
pub const QUERY_COMMITTED: &str = "QueryChaincodeDefinition";
/// Function: which organizations approved a definition (args: definition JSON).
pub const CHECK_COMMIT_READINESS: &str = "CheckCommitReadiness";

/// Why a lifecycle invocation was refused (status 500 to the client, as Fabric). Messages
/// carry names, sequences and MSP ids only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// Unknown function or unusable arguments.
    #[error("{function}: {reason}")]
    Arguments {
        /// Function called.
        function: String,
        /// What is wrong.
        reason: String,
    },
    /// The definition is not well formed.
    #[error("chaincode definition of {name}: {reason}")]
    InvalidDefinition {
        /// Chaincode name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The sequence is not the next one (or the current one, for an approval).
    #[error(
        "requested sequence is {requested}, but new definition of {name} must be sequence {expected}"
    )]
    Sequence {
        /// Chaincode name.
        name: ChaincodeName,
        /// Sequence given.
        requested: u64,
        /// Sequence expected.
        expected: u64,
    },
    /// Approving needs an admin (NodeOU `admin`) of the endorsing peer's organization.
    #[error(
        "{creator_msp} identity with NodeOU {creator_ou} cannot approve for {peer_msp}: an admin of {peer_msp} must approve at a peer of {peer_msp}"
    )]
    NotAdmin {
        /// Creator's MSP.
        creator_msp: MspId,
        /// Creator's NodeOU (`none` if unclassified).
        creator_ou: String,
        /// Endorsing peer's MSP.
        peer_msp: MspId,
    },
    /// Not enough organizations approved the definition.
    #[error(
        "chaincode definition of {name} sequence {sequence} approved by {approved} of {orgs} organizations; {required} required"
    )]
    NotAgreed {
        /// Chaincode name.
        name: ChaincodeName,
        /// Sequence.
        sequence: u64,
        /// Organizations that approved exactly this definition.
        approved: usize,
        /// Application organizations of the channel.
        orgs: usize,
        /// Majority threshold.
        required: usize,
    },
    /// The endorsing peer's own organization did not approve (Fabric's check).
    #[error("chaincode definition not agreed to by this org ({msp_id})")]
    ThisOrgNotAgreed {
        /// The endorsing peer's MSP.
        msp_id: MspId,
    },
    /// No definition of the chaincode is committed.
    #[error("namespace {name} is not defined")]
    NotCommitted {
        /// Chaincode name.
        name: ChaincodeName,
    },
    /// State could not be read or written.
    #[error("lifecycle state: {0}")]
    State(String),
}

/// A private data collection of a [`Definition`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// Collection name.
    pub name: String,
    /// Member organizations, a signature policy such as `OR('Org1MSP.member')`.
    pub member_orgs: String,
    /// Collection-level endorsement policy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement_policy: Option<String>,
    /// Blocks to live (0 = forever).
    #[serde(default)]
    pub block_to_live: u64,
}

/// A chaincode definition as organizations approve and commit it (Fabric's
/// `ChaincodeDefinition` parameters we use: name, version, sequence, endorsement policy,
/// collections). Its canonical form ([`Definition::canonical`]) is what is hashed and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Chaincode name (Fabric's rule: `[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*`), checked when the
    /// definition is deserialized ([`Definition::from_json`], a `peer.yaml`, a command line).
    pub name: ChaincodeName,
    /// Version label (`[A-Za-z0-9_.+-]+`).
    pub version: String,
    /// Sequence: 1 for the first definition, +1 for each change.
    pub sequence: u64,
    /// Endorsement policy; default `MAJORITY Endorsement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement_policy: Option<String>,
    /// Private data collections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<CollectionConfig>,
}

fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
}

/// Names no chaincode definition may take, as Fabric's lifecycle
/// (`core/chaincode/lifecycle/scc.go`, `systemChaincodeNames`): the peer serves `qscc` and
/// `cscc` itself (`medledger_peer::scc`), and Fabric reserves the others.
pub const SYSTEM_CHAINCODE_NAMES: [&str; 5] = ["cscc", "escc", "lscc", "qscc", "vscc"];

impl Definition {
    /// The definition with every policy parsed and re-printed in one spelling, the default
    /// endorsement policy made explicit and collections sorted by name: two organizations
    /// approving the same definition written differently approve the same hash.
    ///
    /// # Errors
    /// [`LifecycleError::InvalidDefinition`]: the name of one of Fabric's system chaincodes
    /// ([`SYSTEM_CHAINCODE_NAMES`]), bad version, sequence 0, a policy that does not parse, a
    /// collection named twice.
    pub fn canonical(&self) -> Result<Definition, LifecycleError> {
        let bad = |reason: String| LifecycleError::InvalidDefinition {
            name: self.name.to_string(),
            reason,
        };
        if SYSTEM_CHAINCODE_NAMES.contains(&self.name.as_str()) {
            return Err(bad(format!(
                "chaincode name '{}' is the name of a system chaincode",
                self.name
            )));
        }
        if !valid_version(&self.version) {
            return Err(bad("invalid version".into()));
        }
        if self.sequence == 0 {
            return Err(bad("sequence must be at least 1".into()));
        }
        let policy = match &self.endorsement_policy {
            Some(p) => p
                .parse::<Policy>()
                .map_err(|e| bad(format!("endorsement_policy: {e}")))?,
            None => Policy::implicit_meta(MetaRule::Majority, "Endorsement"),
        };
        let mut collections: BTreeMap<String, CollectionConfig> = BTreeMap::new();
        for c in &self.collections {
            if !crate::definitions::valid_name(&c.name) || c.name.contains('/') {
                return Err(bad("invalid collection name".into()));
            }
            let members = c
                .member_orgs
                .parse::<SignaturePolicy>()
                .map_err(|e| bad(format!("collection {} member_orgs: {e}", c.name)))?;
            let endorsement_policy = c
                .endorsement_policy
                .as_deref()
                .map(str::parse::<Policy>)
                .transpose()
                .map_err(|e| bad(format!("collection {} endorsement_policy: {e}", c.name)))?;
            let canon = CollectionConfig {
                name: c.name.clone(),
                member_orgs: members.to_string(),
                endorsement_policy: endorsement_policy.map(|p| p.to_string()),
                block_to_live: c.block_to_live,
            };
            if collections.insert(c.name.clone(), canon).is_some() {
                return Err(bad(format!("collection {} listed twice", c.name)));
            }
        }
        Ok(Definition {
            name: self.name.clone(),
            version: self.version.clone(),
            sequence: self.sequence,
            endorsement_policy: Some(policy.to_string()),
            collections: collections.into_values().collect(),
        })
    }

    /// Canonical JSON bytes (what `definitions/<name>` holds).
    ///
    /// # Errors
    /// As [`Definition::canonical`].
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, LifecycleError> {
        serde_json::to_vec(&self.canonical()?).map_err(|e| LifecycleError::State(e.to_string()))
    }

    /// Hex SHA-256 of the canonical JSON (what an approval records).
    ///
    /// # Errors
    /// As [`Definition::canonical`].
    pub fn hash_hex(&self) -> Result<String, LifecycleError> {
        Ok(hex::encode(sha256(&self.canonical_bytes()?)))
    }

    /// What validation and endorsement need of it.
    ///
    /// # Errors
    /// As [`Definition::canonical`].
    pub fn to_chaincode_definition(&self) -> Result<ChaincodeDefinition, LifecycleError> {
        let c = self.canonical()?;
        let bad = |reason: String| LifecycleError::InvalidDefinition {
            name: c.name.to_string(),
            reason,
        };
        let mut def = ChaincodeDefinition::with_default_policy(c.name.as_str());
        if let Some(p) = &c.endorsement_policy {
            def.endorsement_policy = p.parse().map_err(|e| bad(format!("{e}")))?;
        }
        for coll in &c.collections {
            let member_orgs = coll.member_orgs.parse().map_err(|e| bad(format!("{e}")))?;
            let endorsement_policy = coll
                .endorsement_policy
                .as_deref()
                .map(str::parse::<Policy>)
                .transpose()
                .map_err(|e| bad(format!("{e}")))?;
            def.collections.insert(
                coll.name.clone(),
                CollectionDefinition {
                    name: coll.name.clone(),
                    member_orgs,
                    endorsement_policy,
                    block_to_live: coll.block_to_live,
                },
            );
        }
        Ok(def)
    }

    /// Decodes a stored or submitted definition (JSON).
    ///
    /// # Errors
    /// [`LifecycleError::InvalidDefinition`] if it is not a definition, or names no valid
    /// chaincode.
    pub fn from_json(bytes: &[u8]) -> Result<Definition, LifecycleError> {
        serde_json::from_slice(bytes).map_err(|e| LifecycleError::InvalidDefinition {
            name: String::new(),
            reason: format!("not a definition: {e}"),
        })
    }
}

/// `definitions/<name>`.
pub fn definition_key(name: &ChaincodeName) -> String {
    format!("{DEFINITION_PREFIX}{name}")
}

/// `approvals/<name>/<sequence>/<msp_id>`.
pub fn approval_key(name: &ChaincodeName, sequence: u64, msp_id: &MspId) -> String {
    format!("{APPROVAL_PREFIX}{name}/{sequence}/{msp_id}")
}

/// A key of the `_lifecycle` namespace, parsed: its chaincode name and MSP id are valid
/// ([`ChaincodeName`]'s and [`MspId`]'s rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleKey {
    /// `definitions/<name>`.
    Definition {
        /// Chaincode name.
        name: ChaincodeName,
    },
    /// `approvals/<name>/<sequence>/<msp_id>`.
    Approval {
        /// Chaincode name.
        name: ChaincodeName,
        /// Sequence.
        sequence: u64,
        /// Approving organization.
        msp_id: MspId,
    },
}

/// Parses a `_lifecycle` key; `None` for any other shape, a chaincode name or MSP id that
/// breaks its rule, or a sequence not written in canonical decimal.
pub fn parse_key(key: &str) -> Option<LifecycleKey> {
    if let Some(name) = key.strip_prefix(DEFINITION_PREFIX) {
        let name = ChaincodeName::new(name).ok()?;
        return Some(LifecycleKey::Definition { name });
    }
    let rest = key.strip_prefix(APPROVAL_PREFIX)?;
    let mut parts = rest.split('/');
    let (name, seq, msp_id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let sequence: u64 = seq.parse().ok()?;
    if seq != sequence.to_string() {
        return None;
    }
    Some(LifecycleKey::Approval {
        name: ChaincodeName::new(name).ok()?,
        sequence,
        msp_id: MspId::new(msp_id).ok()?,
    })
}

/// The readiness answer: `{"approvals":{"Org1MSP":true,...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Per application organization, whether it approved the definition.
    pub approvals: BTreeMap<MspId, bool>,
}

/// The answer to `QueryChaincodeDefinition`: the committed definition and who approved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The definition.
    #[serde(flatten)]
    pub definition: Definition,
    /// Per application organization, whether it approved this definition.
    pub approvals: BTreeMap<MspId, bool>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn def(sequence: u64, policy: &str) -> Definition {
        Definition {
            name: "kv".parse().unwrap(),
            version: "1.0".into(),
            sequence,
            endorsement_policy: Some(policy.into()),
            collections: Vec::new(),
        }
    }

    #[test]
    fn canonical_form_ignores_spelling_and_order() {
        let a = Definition {
            collections: vec![
                CollectionConfig {
                    name: "b".into(),
                    member_orgs: "OR('Org1MSP.member','Org2MSP.member')".into(),
                    endorsement_policy: None,
                    block_to_live: 0,
                },
                CollectionConfig {
                    name: "a".into(),
                    member_orgs: "OR('Org1MSP.member')".into(),
                    endorsement_policy: Some("OR('Org1MSP.peer')".into()),
                    block_to_live: 3,
                },
            ],
            ..def(1, "AND('Org1MSP.peer','Org2MSP.peer')")
        };
        let mut b = a.clone();
        b.collections.reverse();
        b.endorsement_policy = Some("AND('Org1MSP.peer', 'Org2MSP.peer')".into());
        assert_eq!(a.hash_hex().unwrap(), b.hash_hex().unwrap());
        assert_eq!(a.canonical().unwrap().collections[0].name, "a");
        // The default policy is explicit in the canonical form.
        let d = Definition {
            endorsement_policy: None,
            ..def(1, "")
        };
        assert_eq!(
            d.canonical().unwrap().endorsement_policy.as_deref(),
            Some("MAJORITY Endorsement")
        );
        // A bad name is refused when a definition is read.
        let mut json = serde_json::to_value(def(1, "ANY Endorsement")).unwrap();
        json["name"] = "bad name".into();
        assert!(matches!(
            Definition::from_json(&serde_json::to_vec(&json).unwrap()),
            Err(LifecycleError::InvalidDefinition { .. })
        ));
        for bad in [
            Definition {
                name: "qscc".parse().unwrap(),
                ..def(1, "ANY Endorsement")
            },
            Definition {
                version: String::new(),
                ..def(1, "ANY Endorsement")
            },
            def(0, "ANY Endorsement"),
            def(1, "AND("),
        ] {
            assert!(
                matches!(
                    bad.canonical(),
                    Err(LifecycleError::InvalidDefinition { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_parse_strictly() {
        let kv: ChaincodeName = "kv".parse().unwrap();
        let org1: MspId = "Org1MSP".parse().unwrap();
        assert_eq!(
            parse_key("definitions/kv"),
            Some(LifecycleKey::Definition { name: kv.clone() })
        );
        assert_eq!(
            parse_key(&approval_key(&kv, 2, &org1)),
            Some(LifecycleKey::Approval {
                name: kv,
                sequence: 2,
                msp_id: org1
            })
        );
        for bad in [
            "definitions/",
            "definitions/a/b",
            "definitions/_lifecycle",
            "approvals/kv/01/Org1MSP",
            "approvals/kv/1",
            "approvals/kv/1/",
            "approvals/kv/1/Org 1",
            "approvals/kv/1/..",
            "approvals/-kv/1/Org1MSP",
            "approvals/kv/1/Org1MSP/x",
            "other",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }
}
