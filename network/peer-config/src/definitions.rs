//! What validation needs of a chaincode definition: its endorsement policy and its private
//! data collections, parsed (Fabric's `ChaincodeDefinition` and `StaticCollectionConfig`, the
//! parts the committer uses). Where they come from (the definitions committed on a channel,
//! over those of `peer.yaml`) is the peer's (`medledger_peer::definitions`).

use std::collections::BTreeMap;

use medledger_msp::policy::{MetaRule, Policy, SignaturePolicy};
use medledger_proto::MspId;

/// Namespace and collection names: non-empty, no NUL (they delimit storage keys).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.as_bytes().contains(&0)
}

/// A private data collection of a chaincode (Fabric's `StaticCollectionConfig`, the parts the
/// committer uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionDefinition {
    /// Collection name.
    pub name: String,
    /// Which organizations are members (Fabric's `member_orgs_policy`): every MSP id the
    /// policy names is a member and stores the collection's private data.
    pub member_orgs: SignaturePolicy,
    /// Collection-level endorsement policy: overrides the chaincode policy for this
    /// collection's private writes (Fabric 2.x), if set.
    pub endorsement_policy: Option<Policy>,
    /// Blocks after which private data is purged (0 = never). Recorded; not yet enforced.
    pub block_to_live: u64,
}

impl CollectionDefinition {
    /// Whether the organization `msp_id` is a member of the collection (named by
    /// [`CollectionDefinition::member_orgs`]).
    pub fn is_member(&self, msp_id: &MspId) -> bool {
        self.member_orgs.msp_ids().contains(msp_id.as_str())
    }
}

/// What validation needs of a chaincode definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaincodeDefinition {
    /// Chaincode (namespace) name.
    pub name: String,
    /// Chaincode-level endorsement policy; implicit-meta policies are evaluated over the
    /// channel's organizations.
    pub endorsement_policy: Policy,
    /// Private data collections by name.
    pub collections: BTreeMap<String, CollectionDefinition>,
}

impl ChaincodeDefinition {
    /// A definition of `name` with the channel's default policy (`MAJORITY Endorsement`) and no
    /// collections.
    pub fn with_default_policy(name: impl Into<String>) -> Self {
        ChaincodeDefinition {
            name: name.into(),
            endorsement_policy: Policy::implicit_meta(MetaRule::Majority, "Endorsement"),
            collections: BTreeMap::new(),
        }
    }
}
