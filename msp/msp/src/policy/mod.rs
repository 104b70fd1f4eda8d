//! Signature policies and implicit-meta policies, as Hyperledger Fabric writes and evaluates
//! them.
//!
//! # Syntax
//!
//! A [`Policy`] is written in Fabric's policy language (`common/policydsl/policyparser.go` for
//! signature policies, `common/policies/implicitmetaparser.go` for implicit-meta ones):
//!
//! ```text
//! AND('Org1MSP.peer', 'Org2MSP.peer')              every rule must hold
//! OR('Org1MSP.admin', "Org2MSP.admin")             at least one rule must hold
//! OutOf(2, 'A.member', 'B.member', 'C.member')     at least n rules must hold
//! OR('Org1MSP.member', AND('A.peer', 'B.peer'))    gates nest
//! MAJORITY Endorsement                             implicit meta: ANY | ALL | MAJORITY <SubPolicy>
//! ```
//!
//! A principal is `'<MSP id>.<role>'` in single or double quotes, with role `member`, `admin`,
//! `client`, `peer` or `orderer` (lowercase, as Fabric). Gate keywords and implicit-meta rules
//! are case-insensitive; whitespace between tokens is free. Parse errors are [`PolicyError`]s
//! carrying the byte offset of the offending token.
//!
//! # Evaluation
//!
//! [`SignaturePolicy::evaluate`] follows Fabric's `common/cauthdsl/cauthdsl.go`: signers are
//! first de-duplicated by identity ([`Signer::id`], as `policies.SignatureSetToValidIdentities`
//! does), then the rule tree is walked greedily in order, and each identity satisfies at most one
//! principal per evaluation (Fabric's `used` bitmap, with a sub-rule's consumption kept only when
//! that sub-rule holds). [`Policy::evaluate`] adds implicit-meta policies over the channel's
//! organizations ([`OrgPolicies`]), following `common/policies/implicitmeta.go`.
//!
//! ```
//! use medledger_msp::ou::NodeOu;
//! use medledger_msp::policy::{OrgPolicies, Policy, SignaturePolicy, Signer};
//!
//! let endorsement: SignaturePolicy = "AND('Org1MSP.peer', 'Org2MSP.peer')".parse()?;
//! let org1_peer = Signer::new("Org1MSP", Some(NodeOu::Peer), [1; 32]);
//! let org2_peer = Signer::new("Org2MSP", Some(NodeOu::Peer), [2; 32]);
//! assert!(endorsement.evaluate(&[org1_peer.clone(), org2_peer]));
//! // The same identity twice is one signer.
//! assert!(!endorsement.evaluate(&[org1_peer.clone(), org1_peer.clone()]));
//!
//! let orgs = OrgPolicies::fabric_defaults(["Org1MSP", "Org2MSP", "Org3MSP"]);
//! let majority: Policy = "MAJORITY Endorsement".parse()?;
//! assert!(!majority.evaluate(&[org1_peer], &orgs)); // 1 of 3; 2 needed
//! # Ok::<(), medledger_msp::policy::PolicyError>(())
//! ```
//!
//! # Where Medledger differs from Fabric
//!
//! * `OutOf(n, …)` must have `1 <= n <= rules`. Fabric's parser also accepts `n == 0` (always
//!   satisfied) and `n == rules + 1` (never satisfied, used for "immutable" keys); an
//!   always-true policy guarding health records is never what an operator means, so both are
//!   [`PolicyError::BadThreshold`] here.
//! * A bare quoted principal (`'Org1MSP.peer'`) is accepted as a whole policy
//!   ([`SignaturePolicy::SignedBy`]); Fabric's string parser rejects it although its proto form
//!   (e.g. `policydsl.SignedByMspMember`) is exactly that.
//! * Gate nesting is limited to [`MAX_DEPTH`] so that no input can exhaust the stack.

mod envelope;
mod error;
mod eval;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::ou::NodeOu;

pub use error::PolicyError;
pub use eval::{Explanation, OrgPolicies, Signer, SubPolicyTally};

/// Deepest nesting of gates the parser accepts (`AND(OR(…))` is depth 2).
///
/// Bounds recursion on untrusted policy strings; Fabric channel policies are rarely deeper than
/// three.
pub const MAX_DEPTH: usize = 32;

/// The role part of a principal (`Org1MSP.<role>`): Fabric's `msp.MSPRole.MSPRoleType`.
///
/// Serialized lowercase (`member`, `admin`, `client`, `peer`, `orderer`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MspRole {
    /// Any valid identity of the MSP, whatever its NodeOU.
    Member,
    /// An identity with NodeOU `admin`.
    Admin,
    /// An identity with NodeOU `client`.
    Client,
    /// An identity with NodeOU `peer`.
    Peer,
    /// An identity with NodeOU `orderer`.
    Orderer,
}

impl MspRole {
    /// All roles, in the order of Fabric's `MSPRoleType` enum.
    pub const ALL: [MspRole; 5] = [
        MspRole::Member,
        MspRole::Admin,
        MspRole::Client,
        MspRole::Peer,
        MspRole::Orderer,
    ];

    /// The role as written in a policy string (`member`, `admin`, `client`, `peer`, `orderer`).
    pub fn as_str(self) -> &'static str {
        match self {
            MspRole::Member => "member",
            MspRole::Admin => "admin",
            MspRole::Client => "client",
            MspRole::Peer => "peer",
            MspRole::Orderer => "orderer",
        }
    }

    /// The NodeOU this role requires, or `None` for [`MspRole::Member`], which any identity of
    /// the MSP satisfies.
    pub fn node_ou(self) -> Option<NodeOu> {
        match self {
            MspRole::Member => None,
            MspRole::Admin => Some(NodeOu::Admin),
            MspRole::Client => Some(NodeOu::Client),
            MspRole::Peer => Some(NodeOu::Peer),
            MspRole::Orderer => Some(NodeOu::Orderer),
        }
    }

    /// Whether an identity with NodeOU `ou` (`None`: the MSP gave it no NodeOU) holds this role.
    ///
    /// As Fabric's MSP with NodeOUs enabled (`msp/mspimpl.go`, `satisfiesPrincipalInternalV142`):
    /// `member` matches every identity, the other roles only an identity whose NodeOU is exactly
    /// that role. An identity without a NodeOU is only a member.
    pub fn is_held_by(self, ou: Option<NodeOu>) -> bool {
        match self.node_ou() {
            None => true,
            Some(required) => ou == Some(required),
        }
    }
}

impl From<NodeOu> for MspRole {
    fn from(ou: NodeOu) -> Self {
        match ou {
            NodeOu::Client => MspRole::Client,
            NodeOu::Peer => MspRole::Peer,
            NodeOu::Admin => MspRole::Admin,
            NodeOu::Orderer => MspRole::Orderer,
        }
    }
}

impl fmt::Display for MspRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MspRole {
    type Err = PolicyError;

    /// Parses a lowercase role name, exactly as Fabric's principal regex does.
    ///
    /// # Errors
    ///
    /// [`PolicyError::UnknownRole`] (at byte 0) for anything else, including `Peer` or `PEER`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse_role(s, 0)
    }
}

/// Who must sign: an MSP and a role within it, written `Org1MSP.peer` (Fabric's `MSPPrincipal`
/// with classification `ROLE`).
///
/// Serialized as that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// The MSP identifier (`Org1MSP`): ASCII letters, digits, `.` and `-`, as Fabric's
    /// principal regex `[[:alnum:].-]+`.
    pub msp_id: String,
    /// The role the signer must hold in that MSP.
    pub role: MspRole,
}

impl Principal {
    /// A principal for `role` in MSP `msp_id`. The MSP id is not validated here; parse a string
    /// to get validation.
    pub fn new(msp_id: impl Into<String>, role: MspRole) -> Self {
        Self {
            msp_id: msp_id.into(),
            role,
        }
    }

    /// Whether `signer` satisfies this principal on its own: same MSP id and
    /// [`MspRole::is_held_by`] its NodeOU. (Whether it is still free to do so within a policy
    /// evaluation is the evaluator's business.)
    pub fn is_satisfied_by(&self, signer: &Signer) -> bool {
        signer.msp_id == self.msp_id && self.role.is_held_by(signer.ou)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.msp_id, self.role)
    }
}

impl FromStr for Principal {
    type Err = PolicyError;

    /// Parses `MSPID.role` without quotes; the role is the text after the last `.`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::MalformedPrincipal`], [`PolicyError::EmptyMspId`],
    /// [`PolicyError::UnknownRole`] or [`PolicyError::InvalidMspId`], positioned in `s`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse_principal(s, 0)
    }
}

/// A signature policy: Fabric's `common.SignaturePolicy` with its principals inlined.
///
/// `AND(a, b, …)` is `OutOf { n: rules.len(), rules }` and `OR(a, b, …)` is
/// `OutOf { n: 1, rules }`, as Fabric's parser builds them. Parsed policies always have
/// `1 <= n <= rules.len()` and at most [`MAX_DEPTH`] nested gates; a tree built by hand may
/// break that, and then its [`Display`](fmt::Display) form does not parse back.
///
/// Serialized as its policy string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SignaturePolicy {
    /// Satisfied by one not-yet-used signer that satisfies the principal.
    SignedBy(Principal),
    /// Satisfied when at least `n` of `rules` are.
    OutOf {
        /// How many rules must hold.
        n: usize,
        /// The sub-rules, evaluated in order.
        rules: Vec<SignaturePolicy>,
    },
}

impl SignaturePolicy {
    /// `'msp_id.role'`: a policy satisfied by one signer holding `role` in `msp_id`.
    pub fn signed_by(msp_id: impl Into<String>, role: MspRole) -> Self {
        SignaturePolicy::SignedBy(Principal::new(msp_id, role))
    }

    /// `AND(rules…)`: all rules must hold.
    pub fn and(rules: Vec<SignaturePolicy>) -> Self {
        SignaturePolicy::OutOf {
            n: rules.len(),
            rules,
        }
    }

    /// `OR(rules…)`: at least one rule must hold.
    pub fn or(rules: Vec<SignaturePolicy>) -> Self {
        SignaturePolicy::OutOf { n: 1, rules }
    }

    /// `OutOf(n, rules…)`: at least `n` rules must hold. Not validated; see the type docs.
    pub fn out_of(n: usize, rules: Vec<SignaturePolicy>) -> Self {
        SignaturePolicy::OutOf { n, rules }
    }

    /// Every principal the policy names, depth-first in written order, repeats included.
    pub fn principals(&self) -> Principals<'_> {
        Principals { stack: vec![self] }
    }

    /// The distinct MSP ids the policy names, sorted: the organizations whose signers could
    /// contribute to satisfying it (what an endorser planner needs to contact).
    pub fn msp_ids(&self) -> BTreeSet<&str> {
        self.principals().map(|p| p.msp_id.as_str()).collect()
    }
}

/// Iterator over a [`SignaturePolicy`]'s principals, from [`SignaturePolicy::principals`].
#[derive(Debug, Clone)]
pub struct Principals<'a> {
    stack: Vec<&'a SignaturePolicy>,
}

impl<'a> Iterator for Principals<'a> {
    type Item = &'a Principal;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(node) = self.stack.pop() {
            match node {
                SignaturePolicy::SignedBy(principal) => return Some(principal),
                SignaturePolicy::OutOf { rules, .. } => self.stack.extend(rules.iter().rev()),
            }
        }
        None
    }
}

impl fmt::Display for SignaturePolicy {
    /// Renders Fabric's syntax: `OR(…)` when `n == 1`, `AND(…)` when `n` is the number of rules,
    /// `OutOf(n, …)` otherwise; principals in single quotes, `", "` between arguments.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignaturePolicy::SignedBy(principal) => write!(f, "'{principal}'"),
            SignaturePolicy::OutOf { n, rules } => {
                if *n == 1 {
                    f.write_str("OR(")?;
                } else if *n == rules.len() {
                    f.write_str("AND(")?;
                } else {
                    write!(f, "OutOf({n}")?;
                    if !rules.is_empty() {
                        f.write_str(", ")?;
                    }
                }
                for (i, rule) in rules.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{rule}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl FromStr for SignaturePolicy {
    type Err = PolicyError;

    /// Parses a signature policy string (see the module docs).
    ///
    /// # Errors
    ///
    /// Any [`PolicyError`] describing the first problem found, including
    /// [`PolicyError::ImplicitMetaNotAllowed`] for `ANY Readers` and the like.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse_signature_policy(s)
    }
}

/// How an implicit-meta policy combines the organizations' sub-policies: Fabric's
/// `common.ImplicitMetaPolicy.Rule`. Serialized uppercase (`ANY`, `ALL`, `MAJORITY`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum MetaRule {
    /// At least one organization's sub-policy holds.
    Any,
    /// Every organization's sub-policy holds.
    All,
    /// More than half of the organizations' sub-policies hold.
    Majority,
}

impl MetaRule {
    /// The rule as written in a policy string (`ANY`, `ALL`, `MAJORITY`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetaRule::Any => "ANY",
            MetaRule::All => "ALL",
            MetaRule::Majority => "MAJORITY",
        }
    }

    /// How many of `orgs` sub-policies must hold, as `newImplicitMetaPolicy` in Fabric's
    /// `common/policies/implicitmeta.go` computes it: `ANY` 1, `ALL` `orgs`, `MAJORITY`
    /// `orgs / 2 + 1` (so 2 of 4 is not a majority, 3 of 4 is). With zero organizations the
    /// threshold is 0 for every rule, so the policy is satisfied by any signer set, even an empty
    /// one — Fabric's documented special case ("consider 0 to be a majority or any").
    pub fn threshold(self, orgs: usize) -> usize {
        if orgs == 0 {
            return 0;
        }
        match self {
            MetaRule::Any => 1,
            MetaRule::All => orgs,
            MetaRule::Majority => orgs / 2 + 1,
        }
    }
}

impl fmt::Display for MetaRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MetaRule {
    type Err = PolicyError;

    /// Parses `ANY`, `ALL` or `MAJORITY`, in any letter case.
    ///
    /// # Errors
    ///
    /// [`PolicyError::UnknownKeyword`] (at byte 0) for anything else.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::meta_rule(s).ok_or_else(|| PolicyError::UnknownKeyword {
            pos: 0,
            word: error::snippet(s),
        })
    }
}

/// A policy as a channel configuration holds one: Fabric's `common.Policy` of type
/// `SIGNATURE` or `IMPLICIT_META`.
///
/// Serialized as its policy string (`AND('Org1MSP.peer', 'Org2MSP.peer')`,
/// `MAJORITY Endorsement`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Policy {
    /// A signature policy over explicit principals.
    Signature(SignaturePolicy),
    /// `<rule> <sub_policy>`: combines the sub-policy named `sub_policy` of every organization
    /// of the channel ([`OrgPolicies`]).
    ImplicitMeta {
        /// How many organizations' sub-policies must hold.
        rule: MetaRule,
        /// The sub-policy name looked up in each organization (`Readers`, `Endorsement`, …):
        /// ASCII letters, digits, `_`, `-` and `.`.
        sub_policy: String,
    },
}

impl Policy {
    /// `<rule> <sub_policy>`, e.g. `Policy::implicit_meta(MetaRule::Majority, "Endorsement")`.
    /// The name is not validated here; parse a string to get validation.
    pub fn implicit_meta(rule: MetaRule, sub_policy: impl Into<String>) -> Self {
        Policy::ImplicitMeta {
            rule,
            sub_policy: sub_policy.into(),
        }
    }

    /// The signature policy, if this is one.
    pub fn as_signature(&self) -> Option<&SignaturePolicy> {
        match self {
            Policy::Signature(policy) => Some(policy),
            Policy::ImplicitMeta { .. } => None,
        }
    }
}

impl From<SignaturePolicy> for Policy {
    fn from(policy: SignaturePolicy) -> Self {
        Policy::Signature(policy)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Signature(policy) => policy.fmt(f),
            Policy::ImplicitMeta { rule, sub_policy } => write!(f, "{rule} {sub_policy}"),
        }
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// Parses a signature policy or an implicit-meta policy (see the module docs).
    ///
    /// # Errors
    ///
    /// Any [`PolicyError`] describing the first problem found.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse_policy(s)
    }
}

/// Serde as the type's `Display`/`FromStr` string.
macro_rules! serde_as_string {
    ($($ty:ty),* $(,)?) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_string!(Principal, SignaturePolicy, Policy);
