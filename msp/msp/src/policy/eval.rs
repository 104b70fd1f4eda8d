//! Policy evaluation over verified signers: Fabric's `cauthdsl` and implicit-meta semantics.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use super::{MspRole, Policy, Principal, SignaturePolicy};
use crate::ou::NodeOu;

/// One verified signer, as the MSP layer hands it to policy evaluation.
///
/// The MSP layer has already checked the identity's certificate chain and its signature; policy
/// evaluation only matches MSP ids and NodeOUs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signer {
    /// The MSP that validated the identity (`Org1MSP`).
    pub msp_id: String,
    /// The identity's NodeOU, or `None` when its MSP classifies it under none (then it only
    /// satisfies `member` principals).
    pub ou: Option<NodeOu>,
    /// [`crate::msp::VerifiedIdentity::id`]: SHA-256 of the MSP id and the certificate DER (32
    /// bytes); equal ids are the same identity, which counts once however many times, or under
    /// however many encodings, it signed.
    pub id: [u8; 32],
}

impl Signer {
    /// A signer of `msp_id` with NodeOU `ou` and identity hash `id`.
    pub fn new(msp_id: impl Into<String>, ou: Option<NodeOu>, id: [u8; 32]) -> Self {
        Self {
            msp_id: msp_id.into(),
            ou,
            id,
        }
    }
}

/// `signers` without repeated identities, first occurrence kept, order otherwise unchanged:
/// Fabric's `policies.SignatureSetToValidIdentities`. The first occurrence's MSP id and NodeOU
/// are the ones used.
fn dedup(signers: &[Signer]) -> Vec<&Signer> {
    let mut seen = HashSet::with_capacity(signers.len());
    signers.iter().filter(|s| seen.insert(s.id)).collect()
}

/// Principals of failed leaves, collected while evaluating (only when explaining).
type Trace<'p> = Option<Vec<&'p Principal>>;

impl SignaturePolicy {
    /// Whether `signers` satisfy this policy.
    ///
    /// Follows Fabric's `common/cauthdsl/cauthdsl.go`:
    /// * signers are de-duplicated by [`Signer::id`] (first occurrence kept);
    /// * `SignedBy(p)` takes the first not-yet-used signer, in `signers` order, that satisfies
    ///   `p` ([`Principal::is_satisfied_by`]) and marks it used;
    /// * `OutOf { n, rules }` tries every rule in order on a copy of the used set, keeps the
    ///   copy's markings only when the rule holds, and holds when at least `n` rules did.
    ///
    /// So one identity satisfies at most one principal: `AND('Org1MSP.member',
    /// 'Org1MSP.member')` needs two distinct Org1 identities. The search is greedy like
    /// Fabric's, not an optimal matching: with signers `[peer, client]` of Org1,
    /// `AND('Org1MSP.member', 'Org1MSP.peer')` fails (the member slot takes the peer), while
    /// `[client, peer]` satisfies it. `OutOf` with `n == 0` holds trivially and with
    /// `n > rules.len()` never; the parser rejects both.
    #[must_use = "a policy verdict that is not checked authorizes nothing"]
    pub fn evaluate(&self, signers: &[Signer]) -> bool {
        let signers = dedup(signers);
        self.eval(&signers, &mut vec![false; signers.len()], &mut None)
    }

    /// Evaluates like [`evaluate`](Self::evaluate) and says which principals went unmet.
    pub fn explain(&self, signers: &[Signer]) -> Explanation {
        let signers = dedup(signers);
        let mut trace = Some(Vec::new());
        let satisfied = self.eval(&signers, &mut vec![false; signers.len()], &mut trace);
        Explanation {
            satisfied,
            unmet_principals: trace.unwrap_or_default().into_iter().cloned().collect(),
            unmet_orgs: Vec::new(),
            sub_policies: None,
        }
    }

    /// The recursive evaluator. `used[i]` marks `signers[i]` as already consumed. When tracing,
    /// failed leaves are recorded, and a gate that holds discards what its children recorded.
    fn eval<'p>(&'p self, signers: &[&Signer], used: &mut [bool], trace: &mut Trace<'p>) -> bool {
        match self {
            SignaturePolicy::SignedBy(principal) => {
                let free = signers
                    .iter()
                    .zip(used.iter_mut())
                    .find(|(signer, used)| !**used && principal.is_satisfied_by(signer));
                match free {
                    Some((_, used)) => {
                        *used = true;
                        true
                    }
                    None => {
                        if let Some(unmet) = trace {
                            unmet.push(principal);
                        }
                        false
                    }
                }
            }
            SignaturePolicy::OutOf { n, rules } => {
                let mark = trace.as_ref().map(Vec::len);
                let mut trial = used.to_vec();
                let mut verified = 0;
                for rule in rules {
                    trial.copy_from_slice(used);
                    if rule.eval(signers, &mut trial, trace) {
                        verified += 1;
                        used.copy_from_slice(&trial);
                    }
                }
                let holds = verified >= *n;
                if let (true, Some(unmet), Some(mark)) = (holds, trace.as_mut(), mark) {
                    unmet.truncate(mark);
                }
                holds
            }
        }
    }
}

impl Policy {
    /// Whether `signers` satisfy this policy on a channel whose organizations are `orgs`.
    ///
    /// A [`Policy::Signature`] ignores `orgs` ([`SignaturePolicy::evaluate`]). A
    /// [`Policy::ImplicitMeta`] follows Fabric's `common/policies/implicitmeta.go`: every
    /// organization in `orgs` contributes its sub-policy named `sub_policy`, evaluated on its
    /// own over all signers; an organization without that sub-policy contributes one that never
    /// holds (Fabric's reject policy for a missing name) but still counts in the total. The
    /// policy holds when at least [`MetaRule::threshold`](super::MetaRule::threshold) of them hold — in particular with
    /// zero organizations it always holds, as in Fabric.
    #[must_use = "a policy verdict that is not checked authorizes nothing"]
    pub fn evaluate(&self, signers: &[Signer], orgs: &OrgPolicies) -> bool {
        match self {
            Policy::Signature(policy) => policy.evaluate(signers),
            Policy::ImplicitMeta { rule, sub_policy } => {
                let signers = dedup(signers);
                let required = rule.threshold(orgs.len());
                let satisfied = orgs
                    .orgs
                    .values()
                    .filter_map(|subs| subs.get(sub_policy))
                    .filter(|policy| {
                        policy.eval(&signers, &mut vec![false; signers.len()], &mut None)
                    })
                    .count();
                satisfied >= required
            }
        }
    }

    /// Evaluates like [`evaluate`](Self::evaluate) and says what went unmet.
    pub fn explain(&self, signers: &[Signer], orgs: &OrgPolicies) -> Explanation {
        let (rule, sub_policy) = match self {
            Policy::Signature(policy) => return policy.explain(signers),
            Policy::ImplicitMeta { rule, sub_policy } => (*rule, sub_policy),
        };
        let signers = dedup(signers);
        let mut unmet_principals = Vec::new();
        let mut unmet_orgs = Vec::new();
        let mut satisfied = 0;
        for (msp_id, subs) in &orgs.orgs {
            let Some(policy) = subs.get(sub_policy) else {
                unmet_orgs.push(msp_id.clone());
                continue;
            };
            let mut trace = Some(Vec::new());
            if policy.eval(&signers, &mut vec![false; signers.len()], &mut trace) {
                satisfied += 1;
            } else {
                unmet_orgs.push(msp_id.clone());
                unmet_principals.extend(trace.unwrap_or_default().into_iter().cloned());
            }
        }
        let required = rule.threshold(orgs.len());
        let holds = satisfied >= required;
        if holds {
            unmet_orgs.clear();
            unmet_principals.clear();
        }
        Explanation {
            satisfied: holds,
            unmet_principals,
            unmet_orgs,
            sub_policies: Some(SubPolicyTally {
                sub_policy: sub_policy.clone(),
                required,
                satisfied,
                total: orgs.len(),
            }),
        }
    }
}

/// What an evaluation found, from [`SignaturePolicy::explain`] or [`Policy::explain`]. Names
/// MSP ids and roles only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The verdict, the same as `evaluate` returns.
    pub satisfied: bool,
    /// When not satisfied: the principals no free signer matched, in evaluation order, within
    /// the gates that failed (a gate that held contributes none). Empty when satisfied.
    pub unmet_principals: Vec<Principal>,
    /// Implicit-meta only, when not satisfied: the organizations whose sub-policy failed or is
    /// missing, sorted. Empty otherwise.
    pub unmet_orgs: Vec<String>,
    /// Implicit-meta only: how the organizations' sub-policies counted.
    pub sub_policies: Option<SubPolicyTally>,
}

/// How an implicit-meta policy's sub-policies counted, in [`Explanation::sub_policies`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubPolicyTally {
    /// The sub-policy name (`Endorsement`).
    pub sub_policy: String,
    /// How many had to hold ([`MetaRule::threshold`](super::MetaRule::threshold)).
    pub required: usize,
    /// How many held.
    pub satisfied: usize,
    /// How many organizations the channel has.
    pub total: usize,
}

impl fmt::Display for Explanation {
    /// `satisfied`, or `not satisfied` followed by what was missing, e.g.
    /// `not satisfied: 1 of 2 required 'Endorsement' sub-policies held (3 orgs); unmet orgs:
    /// Org2MSP, Org3MSP; unmet principals: 'Org2MSP.peer', 'Org3MSP.peer'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.satisfied {
            return f.write_str("satisfied");
        }
        f.write_str("not satisfied")?;
        let mut sep = ": ";
        if let Some(tally) = &self.sub_policies {
            write!(
                f,
                "{sep}{} of {} required '{}' sub-policies held ({} orgs)",
                tally.satisfied, tally.required, tally.sub_policy, tally.total
            )?;
            sep = "; ";
        }
        if !self.unmet_orgs.is_empty() {
            write!(f, "{sep}unmet orgs: {}", self.unmet_orgs.join(", "))?;
            sep = "; ";
        }
        if !self.unmet_principals.is_empty() {
            f.write_str(sep)?;
            f.write_str("unmet principals: ")?;
            for (i, principal) in self.unmet_principals.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "'{principal}'")?;
            }
        }
        Ok(())
    }
}

/// The channel's organizations and their named signature sub-policies, for evaluating
/// implicit-meta policies: what Fabric keeps per organization group under
/// `/Channel/Application/<Org>/<PolicyName>`.
///
/// Keyed by MSP id, then by sub-policy name. Serialized as that two-level map of policy strings,
/// e.g. `{Org1MSP: {Readers: "OR('Org1MSP.member')"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct OrgPolicies {
    orgs: BTreeMap<String, BTreeMap<String, SignaturePolicy>>,
}

impl OrgPolicies {
    /// The `Readers` sub-policy name.
    pub const READERS: &'static str = "Readers";
    /// The `Writers` sub-policy name.
    pub const WRITERS: &'static str = "Writers";
    /// The `Admins` sub-policy name.
    pub const ADMINS: &'static str = "Admins";
    /// The `Endorsement` sub-policy name.
    pub const ENDORSEMENT: &'static str = "Endorsement";

    /// No organizations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Each MSP in `msp_ids` with the NodeOU-aware defaults of Fabric's sample `configtx.yaml`
    /// (as fabric-samples' test network uses them):
    ///
    /// | sub-policy | rule |
    /// |---|---|
    /// | `Readers` | `OR('<MSP>.admin', '<MSP>.peer', '<MSP>.client')` |
    /// | `Writers` | `OR('<MSP>.admin', '<MSP>.client')` |
    /// | `Admins` | `OR('<MSP>.admin')` |
    /// | `Endorsement` | `OR('<MSP>.peer')` |
    ///
    /// A repeated MSP id is kept once.
    pub fn fabric_defaults<I, S>(msp_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut orgs = Self::new();
        for msp_id in msp_ids {
            orgs.insert_fabric_defaults(msp_id);
        }
        orgs
    }

    /// Adds (or resets) `msp_id` with the defaults of [`fabric_defaults`](Self::fabric_defaults),
    /// replacing any sub-policies it had.
    pub fn insert_fabric_defaults(&mut self, msp_id: impl Into<String>) {
        let msp_id = msp_id.into();
        let any_of = |roles: &[MspRole]| {
            SignaturePolicy::or(
                roles
                    .iter()
                    .map(|&role| SignaturePolicy::signed_by(msp_id.clone(), role))
                    .collect(),
            )
        };
        let subs = BTreeMap::from([
            (
                Self::READERS.to_owned(),
                any_of(&[MspRole::Admin, MspRole::Peer, MspRole::Client]),
            ),
            (
                Self::WRITERS.to_owned(),
                any_of(&[MspRole::Admin, MspRole::Client]),
            ),
            (Self::ADMINS.to_owned(), any_of(&[MspRole::Admin])),
            (Self::ENDORSEMENT.to_owned(), any_of(&[MspRole::Peer])),
        ]);
        self.orgs.insert(msp_id, subs);
    }

    /// Adds `msp_id` with no sub-policies, if absent (an implicit-meta policy then counts it as
    /// an organization whose sub-policy never holds). Returns whether it was added.
    pub fn insert_org(&mut self, msp_id: impl Into<String>) -> bool {
        let msp_id = msp_id.into();
        if self.orgs.contains_key(&msp_id) {
            return false;
        }
        self.orgs.insert(msp_id, BTreeMap::new());
        true
    }

    /// Sets `msp_id`'s sub-policy `name` to `policy`, adding the organization if absent.
    /// Returns the sub-policy it replaced.
    pub fn set(
        &mut self,
        msp_id: impl Into<String>,
        name: impl Into<String>,
        policy: SignaturePolicy,
    ) -> Option<SignaturePolicy> {
        self.orgs
            .entry(msp_id.into())
            .or_default()
            .insert(name.into(), policy)
    }

    /// Removes `msp_id` and its sub-policies. Returns whether it was present.
    pub fn remove_org(&mut self, msp_id: &str) -> bool {
        self.orgs.remove(msp_id).is_some()
    }

    /// `msp_id`'s sub-policy `name`, if both exist.
    pub fn get(&self, msp_id: &str, name: &str) -> Option<&SignaturePolicy> {
        self.orgs.get(msp_id)?.get(name)
    }

    /// The organizations' MSP ids, sorted.
    pub fn msp_ids(&self) -> impl Iterator<Item = &str> {
        self.orgs.keys().map(String::as_str)
    }

    /// How many organizations.
    pub fn len(&self) -> usize {
        self.orgs.len()
    }

    /// Whether there are no organizations (every implicit-meta policy then holds).
    pub fn is_empty(&self) -> bool {
        self.orgs.is_empty()
    }
}
