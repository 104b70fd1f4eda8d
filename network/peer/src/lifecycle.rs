//! Fabric's chaincode lifecycle (`_lifecycle`, Fabric 2.x): a chaincode definition (name,
//! version, sequence, endorsement policy, collections) takes effect on a channel when a
//! majority of its application organizations have approved it and it is committed.
//!
//! Three parts, as in Fabric (`core/chaincode/lifecycle`):
//! - the system chaincode, run in-process by the endorsing peer ([`invoke`], and
//!   [`LifecycleExecutor`] which serves `_lifecycle` and hands every other chaincode to the
//!   sandboxed runtime): `ApproveChaincodeDefinitionForMyOrg`, `CommitChaincodeDefinition`,
//!   `QueryChaincodeDefinition`, `CheckCommitReadiness`;
//! - the committer's validation of `_lifecycle` writes ([`validate_writes`]);
//! - the committed definitions read back by the peer
//!   ([`LedgerDefinitions`](crate::definitions::LedgerDefinitions)).
//!
//! The definition, its canonical form, the state keys, the query answers and
//! [`LifecycleError`] are [`medledger_peer_config::lifecycle`]'s, re-exported here, so clients
//! use them without linking the peer.
//!
//! State layout (public world state of namespace `_lifecycle`, ADR 0017):
//!
//! | key | value |
//! |---|---|
//! | `definitions/<name>` | the committed definition, canonical JSON ([`Definition`]) |
//! | `approvals/<name>/<sequence>/<MSP id>` | hex SHA-256 of the canonical JSON of the definition that organization approved for that sequence |
//!
//! Fabric keeps approvals in each organization's implicit private collection; approvals are
//! not secret (any organization may ask any other), so they are public state here, which lets
//! every peer check commit readiness and the committer re-check it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use medledger_channel::ChannelConfig;
use medledger_endorser::{ChaincodeExecutor, RuntimeExecutor};
use medledger_ledger_api::{LedgerError, Result as LedgerResult, TxSimulator};
use medledger_msp::crypto::sha256;
use medledger_msp::ou::NodeOu;
use medledger_msp::policy::{MetaRule, Policy};
use medledger_proto::{ChaincodeName, MspId};
use medledger_runtime::support::{ExecOutcome, ExecRequest, RuntimeError};
use serde::Serialize;

use crate::validator::state::Overlay;
use crate::validator::tx::{EndorserTx, NamespaceRwSet};

pub use medledger_peer_config::lifecycle::{
    APPROVAL_PREFIX, APPROVE, CHECK_COMMIT_READINESS, COMMIT, CollectionConfig, Committed,
    DEFINITION_PREFIX, Definition, LIFECYCLE_ENDORSEMENT, LifecycleError, LifecycleKey, NAMESPACE,
    QUERY_COMMITTED, Readiness, approval_key, definition_key, parse_key,
};

/// The channel's lifecycle endorsement policy: `LifecycleEndorsement`, else
/// `MAJORITY Endorsement`.
pub fn lifecycle_policy(config: &ChannelConfig) -> Policy {
    config
        .policy(LIFECYCLE_ENDORSEMENT)
        .cloned()
        .unwrap_or_else(|| Policy::implicit_meta(MetaRule::Majority, "Endorsement"))
}

/// Who invokes `_lifecycle`, at which peer, on which channel.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The channel configuration.
    pub config: &'a ChannelConfig,
    /// MSP id of the endorsing peer.
    pub peer_msp: &'a MspId,
    /// MSP id of the proposal's creator (validated).
    pub creator_msp: &'a MspId,
    /// NodeOU of the creator.
    pub creator_ou: Option<NodeOu>,
}

/// A failed state read or write, as the lifecycle's refusal.
fn state_error(e: LedgerError) -> LifecycleError {
    LifecycleError::State(e.to_string())
}

/// The committed definition of `name`, if any, read through the simulator.
///
/// # Errors
/// [`LifecycleError::State`].
pub fn committed(
    sim: &mut dyn TxSimulator,
    name: &ChaincodeName,
) -> Result<Option<Definition>, LifecycleError> {
    match sim.get_state(&definition_key(name)).map_err(state_error)? {
        Some(bytes) => Definition::from_json(&bytes).map(Some),
        None => Ok(None),
    }
}

/// For each application organization of the channel, whether it approved exactly `def`
/// (canonical) for `def.sequence`.
///
/// # Errors
/// [`LifecycleError::State`], or an invalid definition.
pub fn approvals(
    config: &ChannelConfig,
    sim: &mut dyn TxSimulator,
    def: &Definition,
) -> Result<BTreeMap<MspId, bool>, LifecycleError> {
    let hash = def.hash_hex()?;
    let mut out = BTreeMap::new();
    for org in config.application_orgs() {
        let approved = sim
            .get_state(&approval_key(&def.name, def.sequence, org))
            .map_err(state_error)?
            .is_some_and(|v| v == hash.as_bytes());
        out.insert(org.clone(), approved);
    }
    Ok(out)
}

fn definition_arg(function: &str, args: &[Vec<u8>]) -> Result<Definition, LifecycleError> {
    match args {
        [json] => Definition::from_json(json)?.canonical(),
        _ => Err(LifecycleError::Arguments {
            function: function.to_owned(),
            reason: "expected one argument: the definition as JSON".into(),
        }),
    }
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, LifecycleError> {
    serde_json::to_vec(v).map_err(|e| LifecycleError::State(e.to_string()))
}

/// Runs one `_lifecycle` function (args[0] is its name) over `sim`; returns the response
/// payload.
///
/// - `ApproveChaincodeDefinitionForMyOrg(def)`: the creator must be an admin of the peer's
///   organization; `def.sequence` must be the committed sequence + 1, or the committed one
///   with the committed definition (an organization catching up); writes the approval.
/// - `CommitChaincodeDefinition(def)`: sequence = committed + 1; a majority of the channel's
///   application organizations, including the peer's own (Fabric), approved exactly `def`;
///   writes `definitions/<name>`.
/// - `QueryChaincodeDefinition(name)`: [`Committed`] as JSON.
/// - `CheckCommitReadiness(def)`: [`Readiness`] as JSON.
///
/// # Errors
/// [`LifecycleError`] naming what was refused.
pub fn invoke(
    inv: &Invocation<'_>,
    args: &[Vec<u8>],
    sim: &mut dyn TxSimulator,
) -> Result<Vec<u8>, LifecycleError> {
    let (function, rest) = args
        .split_first()
        .ok_or_else(|| LifecycleError::Arguments {
            function: String::new(),
            reason: "no function given".into(),
        })?;
    let function = String::from_utf8_lossy(function).into_owned();
    match function.as_str() {
        APPROVE => {
            let def = definition_arg(&function, rest)?;
            if inv.creator_ou != Some(NodeOu::Admin) || *inv.peer_msp != *inv.creator_msp {
                return Err(LifecycleError::NotAdmin {
                    creator_msp: inv.creator_msp.clone(),
                    creator_ou: inv
                        .creator_ou
                        .map_or_else(|| "none".to_owned(), |ou| ou.as_str().to_owned()),
                    peer_msp: inv.peer_msp.clone(),
                });
            }
            let current = committed(sim, &def.name)?;
            let current_seq = current.as_ref().map_or(0, |d| d.sequence);
            let same_as_current = current
                .as_ref()
                .is_some_and(|c| c.canonical().ok().as_ref() == Some(&def));
            if def.sequence != current_seq + 1 && !(def.sequence == current_seq && same_as_current)
            {
                return Err(LifecycleError::Sequence {
                    name: def.name.clone(),
                    requested: def.sequence,
                    expected: current_seq + 1,
                });
            }
            let hash = def.hash_hex()?;
            sim.put_state(
                &approval_key(&def.name, def.sequence, inv.peer_msp),
                hash.clone().into_bytes(),
            )
            .map_err(state_error)?;
            Ok(hash.into_bytes())
        }
        COMMIT => {
            let def = definition_arg(&function, rest)?;
            let current_seq = committed(sim, &def.name)?.map_or(0, |d| d.sequence);
            if def.sequence != current_seq + 1 {
                return Err(LifecycleError::Sequence {
                    name: def.name.clone(),
                    requested: def.sequence,
                    expected: current_seq + 1,
                });
            }
            let approvals = approvals(inv.config, sim, &def)?;
            let approved = approvals.values().filter(|a| **a).count();
            let required = MetaRule::Majority.threshold(approvals.len()).max(1);
            if approved < required {
                return Err(LifecycleError::NotAgreed {
                    name: def.name.clone(),
                    sequence: def.sequence,
                    approved,
                    orgs: approvals.len(),
                    required,
                });
            }
            if approvals.get(inv.peer_msp) != Some(&true) {
                return Err(LifecycleError::ThisOrgNotAgreed {
                    msp_id: inv.peer_msp.clone(),
                });
            }
            sim.put_state(&definition_key(&def.name), def.canonical_bytes()?)
                .map_err(state_error)?;
            json(&Readiness { approvals })
        }
        QUERY_COMMITTED => {
            let [name] = rest else {
                return Err(LifecycleError::Arguments {
                    function,
                    reason: "expected one argument: the chaincode name".into(),
                });
            };
            let name =
                ChaincodeName::new(String::from_utf8_lossy(name).into_owned()).map_err(|e| {
                    LifecycleError::Arguments {
                        function: function.clone(),
                        reason: format!("invalid chaincode name: {e}"),
                    }
                })?;
            let def = committed(sim, &name)?.ok_or(LifecycleError::NotCommitted { name })?;
            let approvals = approvals(inv.config, sim, &def)?;
            json(&Committed {
                definition: def,
                approvals,
            })
        }
        CHECK_COMMIT_READINESS => {
            let def = definition_arg(&function, rest)?;
            let approvals = approvals(inv.config, sim, &def)?;
            json(&Readiness { approvals })
        }
        _ => Err(LifecycleError::Arguments {
            function,
            reason: "unknown function of _lifecycle".into(),
        }),
    }
}

/// Whether an endorser of `msp_id` with NodeOU `peer` signed the transaction.
fn endorsed_by_peer_of(tx: &EndorserTx, msp_id: &MspId) -> bool {
    tx.endorsers
        .iter()
        .any(|s| s.msp_id == *msp_id && s.ou == Some(NodeOu::Peer))
}

/// Why the committer refuses a transaction's writes to `_lifecycle` ([`validate_writes`]).
/// On the ledger every refusal is Fabric's `ENDORSEMENT_POLICY_FAILURE`; the variant is logged
/// (debug) and matched by tests. Messages name chaincodes, organizations, sequences and
/// `_lifecycle` keys, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleRefusal {
    /// `_lifecycle` writes carry no key metadata and touch no collection.
    #[error("_lifecycle takes no metadata or private writes")]
    MetadataOrPrivateWrites,
    /// A `_lifecycle` transaction writing nothing does not satisfy the channel's
    /// `LifecycleEndorsement` policy.
    #[error("lifecycle endorsement policy not satisfied")]
    LifecyclePolicy,
    /// A transaction of another chaincode writes `_lifecycle`.
    #[error("chaincode {chaincode} may not write the _lifecycle namespace")]
    ForeignChaincode {
        /// The chaincode the transaction invoked.
        chaincode: String,
    },
    /// A `_lifecycle` key is deleted.
    #[error("_lifecycle key {key} may not be deleted")]
    Delete {
        /// The key.
        key: String,
    },
    /// An approval of an organization that is not an application organization of the channel.
    #[error("approval of unknown organization {msp_id}")]
    UnknownOrganization {
        /// The approval key's MSP id.
        msp_id: MspId,
    },
    /// An approval no peer of its organization endorsed.
    #[error("approval of {msp_id} not endorsed by a peer of {msp_id}")]
    NotEndorsedByPeer {
        /// The approving organization.
        msp_id: MspId,
    },
    /// An approval's value is not a hex SHA-256 (64 hex characters).
    #[error("approval value is not a SHA-256")]
    ApprovalNotHash,
    /// A definition is written without the channel's `LifecycleEndorsement` policy.
    #[error("definition of {name}: lifecycle endorsement policy not satisfied")]
    DefinitionPolicy {
        /// The chaincode.
        name: ChaincodeName,
    },
    /// A definition's value is not a definition's JSON.
    #[error("definition of {name} does not decode")]
    DefinitionDecode {
        /// The chaincode.
        name: ChaincodeName,
    },
    /// A definition is not in canonical form, or names another chaincode than its key.
    #[error("definition of {name} is not canonical")]
    NotCanonical {
        /// The chaincode (of the key).
        name: ChaincodeName,
    },
    /// A definition's sequence is not the committed one + 1.
    #[error("definition of {name}: sequence {sequence} is not {expected}")]
    Sequence {
        /// The chaincode.
        name: ChaincodeName,
        /// The definition's sequence.
        sequence: u64,
        /// The committed sequence + 1.
        expected: u64,
    },
    /// Fewer than a majority of the application organizations approved exactly this
    /// definition.
    #[error(
        "definition of {name} sequence {sequence} approved by {approved} of {orgs} organizations"
    )]
    NotApproved {
        /// The chaincode.
        name: ChaincodeName,
        /// The definition's sequence.
        sequence: u64,
        /// Organizations whose approval matches.
        approved: usize,
        /// Application organizations of the channel.
        orgs: usize,
    },
    /// A key that is neither an approval nor a definition.
    #[error("_lifecycle key {key} is not allowed")]
    KeyNotAllowed {
        /// The key.
        key: String,
    },
}

/// The committer's rules for writes to the `_lifecycle` namespace (Fabric's lifecycle
/// validation, with our public approvals). `Ok(Err(refusal))` means
/// `ENDORSEMENT_POLICY_FAILURE`:
/// - only a transaction invoking `_lifecycle` may write it, with no collections, metadata or
///   deletes;
/// - `approvals/<name>/<seq>/<X>`: X is an application organization of the channel and a peer
///   of X endorsed the transaction; the value is a hex SHA-256;
/// - `definitions/<name>`: the channel's lifecycle endorsement policy is satisfied, the value
///   is a canonical definition of `<name>` whose sequence is the current one + 1, and a
///   majority of the application organizations approved exactly it (approvals in state,
///   including earlier valid transactions of the block);
/// - any other key is refused;
/// - a `_lifecycle` transaction that writes nothing needs the lifecycle endorsement policy.
///
/// # Errors
/// State read errors only.
pub fn validate_writes(
    tx: &EndorserTx,
    ns: Option<&NamespaceRwSet>,
    config: &ChannelConfig,
    overlay: &Overlay<'_>,
) -> LedgerResult<std::result::Result<(), LifecycleRefusal>> {
    use LifecycleRefusal as R;
    let policy_ok = || lifecycle_policy(config).evaluate(&tx.endorsers, config.org_policies());
    let Some(ns) = ns.filter(|n| !n.kv.writes.is_empty()) else {
        if ns.is_some_and(|n| !n.kv.metadata_writes.is_empty() || !n.collections.is_empty()) {
            return Ok(Err(R::MetadataOrPrivateWrites));
        }
        return Ok(if policy_ok() {
            Ok(())
        } else {
            Err(R::LifecyclePolicy)
        });
    };
    if tx.chaincode != NAMESPACE {
        return Ok(Err(R::ForeignChaincode {
            chaincode: tx.chaincode.clone(),
        }));
    }
    if !ns.kv.metadata_writes.is_empty() || !ns.collections.is_empty() {
        return Ok(Err(R::MetadataOrPrivateWrites));
    }
    let orgs: Vec<&MspId> = config.application_orgs().collect();
    for w in &ns.kv.writes {
        if w.is_delete {
            return Ok(Err(R::Delete { key: w.key.clone() }));
        }
        match parse_key(&w.key) {
            Some(LifecycleKey::Approval { msp_id, .. }) => {
                if !orgs.contains(&&msp_id) {
                    return Ok(Err(R::UnknownOrganization { msp_id }));
                }
                if !endorsed_by_peer_of(tx, &msp_id) {
                    return Ok(Err(R::NotEndorsedByPeer { msp_id }));
                }
                if w.value.len() != 64 || !w.value.iter().all(u8::is_ascii_hexdigit) {
                    return Ok(Err(R::ApprovalNotHash));
                }
            }
            Some(LifecycleKey::Definition { name }) => {
                if !policy_ok() {
                    return Ok(Err(R::DefinitionPolicy { name }));
                }
                let Ok(def) = Definition::from_json(&w.value) else {
                    return Ok(Err(R::DefinitionDecode { name }));
                };
                if def.canonical().ok().as_ref() != Some(&def) || def.name != name {
                    return Ok(Err(R::NotCanonical { name }));
                }
                let current = overlay
                    .get(NAMESPACE, &w.key)?
                    .and_then(|v| Definition::from_json(&v.value).ok())
                    .map_or(0, |d| d.sequence);
                if def.sequence != current + 1 {
                    return Ok(Err(R::Sequence {
                        name,
                        sequence: def.sequence,
                        expected: current + 1,
                    }));
                }
                let hash = hex::encode(sha256(&w.value));
                let mut approved = 0;
                for org in &orgs {
                    let v = overlay.get(NAMESPACE, &approval_key(&name, def.sequence, org))?;
                    if v.is_some_and(|v| v.value == hash.as_bytes()) {
                        approved += 1;
                    }
                }
                if approved < MetaRule::Majority.threshold(orgs.len()).max(1) {
                    return Ok(Err(R::NotApproved {
                        name,
                        sequence: def.sequence,
                        approved,
                        orgs: orgs.len(),
                    }));
                }
            }
            None => return Ok(Err(R::KeyNotAllowed { key: w.key.clone() })),
        }
    }
    Ok(Ok(()))
}

/// The endorser's chaincode executor of a peer: `_lifecycle` in-process, every other chaincode
/// on the sandboxed runtime.
pub struct LifecycleExecutor {
    runtime: Arc<RuntimeExecutor>,
    msp_id: MspId,
    channels: RwLock<BTreeMap<String, Arc<ChannelConfig>>>,
}

impl std::fmt::Debug for LifecycleExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleExecutor")
            .field("msp_id", &self.msp_id)
            .finish_non_exhaustive()
    }
}

impl LifecycleExecutor {
    /// Serves `_lifecycle` for a peer of `msp_id`; delegates the rest to `runtime`.
    pub fn new(runtime: Arc<RuntimeExecutor>, msp_id: MspId) -> Self {
        LifecycleExecutor {
            runtime,
            msp_id,
            channels: RwLock::new(BTreeMap::new()),
        }
    }

    /// Serves `_lifecycle` on a channel with this configuration.
    pub fn add_channel(&self, config: Arc<ChannelConfig>) {
        let mut channels = self.channels.write().unwrap_or_else(|e| e.into_inner());
        channels.insert(config.channel_id().to_string(), config);
    }

    fn run(&self, req: &ExecRequest, sim: &mut dyn TxSimulator) -> Result<Vec<u8>, String> {
        let config = self
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&req.channel_id)
            .cloned()
            .ok_or_else(|| format!("channel {} not served", req.channel_id))?;
        let signed = req.proposal.as_ref().ok_or("no proposal")?;
        let creator =
            crate::endorsement::proposal_creator(signed).ok_or("proposal does not decode")?;
        let identity = config
            .msps()
            .validate(&creator, SystemTime::now())
            .map_err(|e| e.to_string())?;
        // Every MSP of the channel was built from an MSP id the channel configuration parsed.
        let creator_msp = MspId::new(identity.msp_id()).map_err(|e| e.to_string())?;
        let inv = Invocation {
            config: &config,
            peer_msp: &self.msp_id,
            creator_msp: &creator_msp,
            creator_ou: identity.node_ou(),
        };
        invoke(&inv, &req.input.args, sim).map_err(|e| e.to_string())
    }
}

#[tonic::async_trait]
impl ChaincodeExecutor for LifecycleExecutor {
    async fn execute(
        &self,
        chaincode: &str,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError> {
        if chaincode != NAMESPACE {
            return self.runtime.execute(chaincode, req, sim).await;
        }
        let result = self.run(&req, sim);
        if let Err(message) = &result {
            tracing::info!(target: "peer::lifecycle", tx_id = %req.tx_id, %message, "lifecycle invocation refused");
        }
        Ok(crate::endorsement::system_outcome(result))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use medledger_channel::testing::TestChannel;
    use medledger_ledger_api::MemorySimulator;

    fn cc(name: &str) -> ChaincodeName {
        name.parse().unwrap()
    }

    fn msp(id: &str) -> MspId {
        id.parse().unwrap()
    }

    /// A channel of three organizations (majority: 2).
    fn channel() -> TestChannel {
        TestChannel::new("ch", 3, 4)
    }

    fn def(sequence: u64, policy: &str) -> Definition {
        Definition {
            name: "kv".parse().unwrap(),
            version: "1.0".into(),
            sequence,
            endorsement_policy: Some(policy.into()),
            collections: Vec::new(),
        }
    }

    /// State after applying the simulator's writes.
    struct Ledger(BTreeMap<String, Vec<u8>>);

    impl Ledger {
        /// Runs `args` as `creator` (MSP, NodeOU) at a peer of `peer`; applies the writes on
        /// success.
        fn call(
            &mut self,
            config: &ChannelConfig,
            peer: &str,
            creator: (&str, NodeOu),
            args: &[&[u8]],
        ) -> Result<Vec<u8>, LifecycleError> {
            let mut sim = MemorySimulator::new(self.0.clone());
            let peer: MspId = peer.parse().unwrap();
            let creator_msp: MspId = creator.0.parse().unwrap();
            let inv = Invocation {
                config,
                peer_msp: &peer,
                creator_msp: &creator_msp,
                creator_ou: Some(creator.1),
            };
            let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            let out = invoke(&inv, &args, &mut sim)?;
            for (_, k, v) in sim.writes {
                self.0.insert(k, v.unwrap());
            }
            Ok(out)
        }

        fn approve(
            &mut self,
            config: &ChannelConfig,
            org: &str,
            d: &Definition,
        ) -> Result<Vec<u8>, LifecycleError> {
            let json = serde_json::to_vec(d).unwrap();
            self.call(
                config,
                org,
                (org, NodeOu::Admin),
                &[APPROVE.as_bytes(), &json],
            )
        }

        fn commit(
            &mut self,
            config: &ChannelConfig,
            peer: &str,
            d: &Definition,
        ) -> Result<Vec<u8>, LifecycleError> {
            let json = serde_json::to_vec(d).unwrap();
            self.call(
                config,
                peer,
                (peer, NodeOu::Client),
                &[COMMIT.as_bytes(), &json],
            )
        }
    }

    #[test]
    fn minority_approvals_do_not_commit_majority_does() {
        let ch = channel();
        let mut l = Ledger(BTreeMap::new());
        let d = def(1, "OR('Org1MSP.peer')");
        l.approve(&ch.config, "Org1MSP", &d).unwrap();
        let e = l.commit(&ch.config, "Org1MSP", &d).unwrap_err();
        assert!(
            matches!(
                e,
                LifecycleError::NotAgreed {
                    approved: 1,
                    orgs: 3,
                    required: 2,
                    ..
                }
            ),
            "{e}"
        );
        // Org2 approves a different definition: still one approval of this one.
        l.approve(&ch.config, "Org2MSP", &def(1, "OR('Org2MSP.peer')"))
            .unwrap();
        assert!(matches!(
            l.commit(&ch.config, "Org1MSP", &d),
            Err(LifecycleError::NotAgreed { approved: 1, .. })
        ));
        // Org2 changes its mind: two of three.
        l.approve(&ch.config, "Org2MSP", &d).unwrap();
        let readiness: Readiness = serde_json::from_slice(
            &l.call(
                &ch.config,
                "Org3MSP",
                ("Org3MSP", NodeOu::Client),
                &[
                    CHECK_COMMIT_READINESS.as_bytes(),
                    &serde_json::to_vec(&d).unwrap(),
                ],
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            readiness.approvals,
            BTreeMap::from([
                (msp("Org1MSP"), true),
                (msp("Org2MSP"), true),
                (msp("Org3MSP"), false)
            ])
        );
        // Org3's peer did not approve: it does not endorse the commit (Fabric's rule).
        assert!(matches!(
            l.commit(&ch.config, "Org3MSP", &d),
            Err(LifecycleError::ThisOrgNotAgreed { .. })
        ));
        l.commit(&ch.config, "Org1MSP", &d).unwrap();
        let q: Committed = serde_json::from_slice(
            &l.call(
                &ch.config,
                "Org3MSP",
                ("Org3MSP", NodeOu::Client),
                &[QUERY_COMMITTED.as_bytes(), b"kv"],
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(q.definition, d.canonical().unwrap());
        assert_eq!(q.approvals.values().filter(|a| **a).count(), 2);
    }

    #[test]
    fn sequences_must_follow_the_committed_one() {
        let ch = channel();
        let mut l = Ledger(BTreeMap::new());
        // Sequence 2 before 1 exists.
        let e = l
            .approve(&ch.config, "Org1MSP", &def(2, "ANY Endorsement"))
            .unwrap_err();
        assert!(
            matches!(
                e,
                LifecycleError::Sequence {
                    requested: 2,
                    expected: 1,
                    ..
                }
            ),
            "{e}"
        );
        let d1 = def(1, "ANY Endorsement");
        l.approve(&ch.config, "Org1MSP", &d1).unwrap();
        l.approve(&ch.config, "Org2MSP", &d1).unwrap();
        l.commit(&ch.config, "Org1MSP", &d1).unwrap();
        // Committing sequence 1 again, or skipping to 3, is refused.
        assert!(matches!(
            l.commit(&ch.config, "Org1MSP", &d1),
            Err(LifecycleError::Sequence {
                requested: 1,
                expected: 2,
                ..
            })
        ));
        assert!(matches!(
            l.approve(&ch.config, "Org1MSP", &def(3, "ANY Endorsement")),
            Err(LifecycleError::Sequence { expected: 2, .. })
        ));
        // An organization may still approve the committed definition (catching up), not
        // another one at the committed sequence.
        l.approve(&ch.config, "Org3MSP", &d1).unwrap();
        assert!(matches!(
            l.approve(&ch.config, "Org3MSP", &def(1, "ALL Endorsement")),
            Err(LifecycleError::Sequence { .. })
        ));
        let d2 = def(2, "OR('Org1MSP.peer')");
        l.approve(&ch.config, "Org1MSP", &d2).unwrap();
        l.approve(&ch.config, "Org3MSP", &d2).unwrap();
        l.commit(&ch.config, "Org3MSP", &d2).unwrap();
        assert_eq!(
            Definition::from_json(&l.0["definitions/kv"])
                .unwrap()
                .sequence,
            2
        );
    }

    #[test]
    fn only_an_admin_of_the_peers_org_approves() {
        let ch = channel();
        let mut l = Ledger(BTreeMap::new());
        let json = serde_json::to_vec(&def(1, "ANY Endorsement")).unwrap();
        let args: [&[u8]; 2] = [APPROVE.as_bytes(), &json];
        let e = l
            .call(&ch.config, "Org1MSP", ("Org1MSP", NodeOu::Client), &args)
            .unwrap_err();
        assert!(matches!(e, LifecycleError::NotAdmin { .. }), "{e}");
        // Org2's admin at Org1's peer would record Org1's approval: refused.
        let e = l
            .call(&ch.config, "Org1MSP", ("Org2MSP", NodeOu::Admin), &args)
            .unwrap_err();
        assert!(matches!(e, LifecycleError::NotAdmin { .. }), "{e}");
        assert!(l.0.is_empty());
        let e = l
            .call(
                &ch.config,
                "Org1MSP",
                ("Org1MSP", NodeOu::Admin),
                &[b"Nope"],
            )
            .unwrap_err();
        assert!(matches!(e, LifecycleError::Arguments { .. }), "{e}");
        let e = l
            .call(
                &ch.config,
                "Org1MSP",
                ("Org1MSP", NodeOu::Admin),
                &[QUERY_COMMITTED.as_bytes(), b"kv"],
            )
            .unwrap_err();
        assert!(matches!(e, LifecycleError::NotCommitted { .. }), "{e}");
    }

    /// `QueryChaincodeDefinition`'s argument is parsed as a chaincode name where the proposal
    /// is decoded: one that breaks Fabric's rule is refused as an argument, naming the rule,
    /// not looked up.
    #[test]
    fn a_malformed_chaincode_name_is_refused_as_an_argument() {
        let ch = channel();
        let mut l = Ledger(BTreeMap::new());
        for bad in [&b"bad name"[..], b"", b"_lifecycle", b"kv/1", b"\xff"] {
            let e = l
                .call(
                    &ch.config,
                    "Org1MSP",
                    ("Org1MSP", NodeOu::Client),
                    &[QUERY_COMMITTED.as_bytes(), bad],
                )
                .unwrap_err();
            assert!(
                matches!(&e, LifecycleError::Arguments { reason, .. } if reason.contains("chaincode name")),
                "{e}"
            );
        }
        assert!(l.0.is_empty());
    }

    /// A transaction invoking `chaincode` that writes `writes` (key, value, delete) to
    /// `_lifecycle`, endorsed by a peer of each of `endorsers`.
    fn lifecycle_writes(
        chaincode: &str,
        writes: &[(&str, &[u8], bool)],
        endorsers: &[&str],
    ) -> (EndorserTx, NamespaceRwSet) {
        use medledger_proto::kvrwset::{KvWrite, KvrwSet};
        let ns = NamespaceRwSet {
            namespace: NAMESPACE.into(),
            kv: KvrwSet {
                writes: writes
                    .iter()
                    .map(|(key, value, is_delete)| KvWrite {
                        key: (*key).into(),
                        value: value.to_vec(),
                        is_delete: *is_delete,
                    })
                    .collect(),
                ..KvrwSet::default()
            },
            collections: Vec::new(),
        };
        let tx = crate::validator::tx::test_tx(chaincode, vec![ns.clone()], endorsers);
        (tx, ns)
    }

    /// The committer's refusals of `_lifecycle` writes are variants a test matches (each is
    /// `ENDORSEMENT_POLICY_FAILURE` on the ledger), with the messages the debug log had.
    #[test]
    fn lifecycle_write_refusals_are_typed() {
        let ch = channel();
        let state = medledger_ledger_api::MemoryLedger::default();
        let overlay = Overlay::new(&state);
        let refusal = |chaincode: &str, writes: &[(&str, &[u8], bool)], endorsers: &[&str]| {
            let (tx, ns) = lifecycle_writes(chaincode, writes, endorsers);
            validate_writes(&tx, Some(&ns), &ch.config, &overlay)
                .unwrap()
                .unwrap_err()
        };
        let hash = "0".repeat(64);
        let approval = approval_key(&cc("kv"), 1, &msp("Org1MSP"));
        let d = serde_json::to_vec(&def(2, "OR('Org1MSP.peer')").canonical().unwrap()).unwrap();
        let both = ["Org1MSP", "Org2MSP"];
        let cases: Vec<(LifecycleRefusal, &str)> = vec![
            (
                refusal("kv", &[(&approval, hash.as_bytes(), false)], &both),
                "chaincode kv may not write the _lifecycle namespace",
            ),
            (
                refusal(NAMESPACE, &[(&approval, b"", true)], &both),
                "_lifecycle key approvals/kv/1/Org1MSP may not be deleted",
            ),
            (
                refusal(
                    NAMESPACE,
                    &[(
                        &approval_key(&cc("kv"), 1, &msp("Org9MSP")),
                        hash.as_bytes(),
                        false,
                    )],
                    &both,
                ),
                "approval of unknown organization Org9MSP",
            ),
            (
                refusal(
                    NAMESPACE,
                    &[(&approval, hash.as_bytes(), false)],
                    &["Org2MSP"],
                ),
                "approval of Org1MSP not endorsed by a peer of Org1MSP",
            ),
            (
                refusal(NAMESPACE, &[(&approval, b"not a hash", false)], &both),
                "approval value is not a SHA-256",
            ),
            (
                refusal(NAMESPACE, &[("definitions/kv", &d, false)], &["Org1MSP"]),
                "definition of kv: lifecycle endorsement policy not satisfied",
            ),
            (
                refusal(NAMESPACE, &[("definitions/kv", b"{", false)], &both),
                "definition of kv does not decode",
            ),
            (
                refusal(NAMESPACE, &[("definitions/other", &d, false)], &both),
                "definition of other is not canonical",
            ),
            (
                refusal(NAMESPACE, &[("definitions/kv", &d, false)], &both),
                "definition of kv: sequence 2 is not 1",
            ),
            (
                refusal(NAMESPACE, &[("other", b"", false)], &both),
                "_lifecycle key other is not allowed",
            ),
            (
                refusal(
                    NAMESPACE,
                    &[("approvals/kv/1/Org 1", hash.as_bytes(), false)],
                    &both,
                ),
                "_lifecycle key approvals/kv/1/Org 1 is not allowed",
            ),
            (
                refusal(NAMESPACE, &[], &["Org1MSP"]),
                "lifecycle endorsement policy not satisfied",
            ),
        ];
        let expected = [
            LifecycleRefusal::ForeignChaincode {
                chaincode: "kv".into(),
            },
            LifecycleRefusal::Delete {
                key: approval.clone(),
            },
            LifecycleRefusal::UnknownOrganization {
                msp_id: msp("Org9MSP"),
            },
            LifecycleRefusal::NotEndorsedByPeer {
                msp_id: msp("Org1MSP"),
            },
            LifecycleRefusal::ApprovalNotHash,
            LifecycleRefusal::DefinitionPolicy { name: cc("kv") },
            LifecycleRefusal::DefinitionDecode { name: cc("kv") },
            LifecycleRefusal::NotCanonical { name: cc("other") },
            LifecycleRefusal::Sequence {
                name: cc("kv"),
                sequence: 2,
                expected: 1,
            },
            LifecycleRefusal::KeyNotAllowed {
                key: "other".into(),
            },
            LifecycleRefusal::KeyNotAllowed {
                key: "approvals/kv/1/Org 1".into(),
            },
            LifecycleRefusal::LifecyclePolicy,
        ];
        assert_eq!(cases.len(), expected.len());
        for ((got, message), want) in cases.into_iter().zip(expected) {
            assert_eq!(got, want);
            assert_eq!(got.to_string(), message);
        }
        // A definition at the next sequence that no organization approved.
        let d1 = serde_json::to_vec(&def(1, "OR('Org1MSP.peer')").canonical().unwrap()).unwrap();
        assert_eq!(
            refusal(NAMESPACE, &[("definitions/kv", &d1, false)], &both),
            LifecycleRefusal::NotApproved {
                name: cc("kv"),
                sequence: 1,
                approved: 0,
                orgs: 3,
            }
        );
        // Metadata or private writes.
        let (tx, mut ns) = lifecycle_writes(NAMESPACE, &[], &both);
        ns.kv.metadata_writes.push(Default::default());
        assert_eq!(
            validate_writes(&tx, Some(&ns), &ch.config, &overlay).unwrap(),
            Err(LifecycleRefusal::MetadataOrPrivateWrites)
        );
    }
}
