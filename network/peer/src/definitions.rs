//! Where the committer learns a namespace's endorsement policy and private data collections.
//!
//! Fabric reads them from the chaincode definition committed through `_lifecycle`; that is a
//! later issue here, so [`ChaincodeDefinitions`] is a small trait and
//! [`InMemoryDefinitions`] holds definitions set by the peer (or a test). A namespace without a
//! definition is validated against the channel's `Endorsement` policy with no collections,
//! Fabric's default endorsement policy (`/Channel/Application/Endorsement`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use medledger_msp::policy::{MetaRule, Policy, SignaturePolicy};

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
    /// Whether `msp_id` is a member organization of the collection.
    pub fn is_member(&self, msp_id: &str) -> bool {
        self.member_orgs.msp_ids().contains(msp_id)
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

/// Source of chaincode definitions for the committer.
pub trait ChaincodeDefinitions: Send + Sync {
    /// The definition of namespace `ns`, or `None` to use the channel's `Endorsement` policy
    /// with no collections.
    fn definition(&self, ns: &str) -> Option<Arc<ChaincodeDefinition>>;
}

/// Definitions held in memory, replaceable at run time.
#[derive(Debug, Default)]
pub struct InMemoryDefinitions {
    defs: RwLock<BTreeMap<String, Arc<ChaincodeDefinition>>>,
}

impl InMemoryDefinitions {
    /// No definitions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a definition.
    pub fn insert(&self, def: ChaincodeDefinition) {
        let mut defs = self.defs.write().unwrap_or_else(|e| e.into_inner());
        defs.insert(def.name.clone(), Arc::new(def));
    }
}

impl ChaincodeDefinitions for InMemoryDefinitions {
    fn definition(&self, ns: &str) -> Option<Arc<ChaincodeDefinition>> {
        let defs = self.defs.read().unwrap_or_else(|e| e.into_inner());
        defs.get(ns).cloned()
    }
}
