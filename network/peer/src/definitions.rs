//! Where the committer, the endorser and the gateway learn a namespace's endorsement policy
//! and private data collections.
//!
//! As in Fabric, they come from the chaincode definitions committed on the channel through
//! `_lifecycle` ([`crate::lifecycle`]): [`LedgerDefinitions`] caches them per channel, loaded
//! from the ledger at start and refreshed after every committed block. A chaincode the channel
//! has no committed definition of falls back to the definition in `peer.yaml`
//! ([`InMemoryDefinitions`]); a namespace with neither is validated against the channel's
//! `Endorsement` policy with no collections, Fabric's default endorsement policy
//! (`/Channel/Application/Endorsement`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use medledger_ledger::Ledger;

use crate::lifecycle::{self, Definition, LifecycleKey};

pub use medledger_peer_config::definitions::{ChaincodeDefinition, CollectionDefinition};

/// Source of chaincode definitions for the committer.
pub trait ChaincodeDefinitions: Send + Sync {
    /// The definition of namespace `ns`, or `None` to use the channel's `Endorsement` policy
    /// with no collections.
    fn definition(&self, ns: &str) -> Option<Arc<ChaincodeDefinition>>;

    /// Called by the committer after a block is committed with the `_lifecycle` keys it
    /// changed (key, new value or `None` if deleted), so committed definitions take effect
    /// from the next block. Default: nothing.
    fn lifecycle_committed(&self, _writes: &[(String, Option<Vec<u8>>)]) {}
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

/// The definitions committed on one channel (namespace `_lifecycle`), cached, over a fallback
/// (the peer's own, from `peer.yaml`) for chaincodes the channel has not defined.
pub struct LedgerDefinitions {
    committed: RwLock<BTreeMap<String, Arc<ChaincodeDefinition>>>,
    fallback: Arc<dyn ChaincodeDefinitions>,
}

impl std::fmt::Debug for LedgerDefinitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.committed.read().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("LedgerDefinitions")
            .field("committed", &c.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LedgerDefinitions {
    /// No committed definition yet (a ledger replayed from its genesis block).
    pub fn new(fallback: Arc<dyn ChaincodeDefinitions>) -> Self {
        LedgerDefinitions {
            committed: RwLock::new(BTreeMap::new()),
            fallback,
        }
    }

    /// The definitions committed on `ledger`'s channel.
    ///
    /// # Errors
    /// Ledger read errors.
    pub fn load(
        ledger: &Ledger,
        fallback: Arc<dyn ChaincodeDefinitions>,
    ) -> medledger_ledger::Result<Self> {
        let defs = LedgerDefinitions::new(fallback);
        let mut writes = Vec::new();
        for item in ledger.state_range(
            lifecycle::NAMESPACE,
            lifecycle::DEFINITION_PREFIX,
            // The first key after every "definitions/..." key ('0' follows '/').
            "definitions0",
        )? {
            let (key, v) = item?;
            writes.push((key, Some(v.value)));
        }
        defs.lifecycle_committed(&writes);
        Ok(defs)
    }

    /// The committed definition of `name` (not the fallback), if any.
    pub fn committed(&self, name: &str) -> Option<Arc<ChaincodeDefinition>> {
        let c = self.committed.read().unwrap_or_else(|e| e.into_inner());
        c.get(name).cloned()
    }
}

impl ChaincodeDefinitions for LedgerDefinitions {
    fn definition(&self, ns: &str) -> Option<Arc<ChaincodeDefinition>> {
        self.committed(ns).or_else(|| self.fallback.definition(ns))
    }

    fn lifecycle_committed(&self, writes: &[(String, Option<Vec<u8>>)]) {
        let mut c = self.committed.write().unwrap_or_else(|e| e.into_inner());
        for (key, value) in writes {
            let Some(LifecycleKey::Definition { name }) = lifecycle::parse_key(key) else {
                continue;
            };
            let def = value
                .as_deref()
                .map(|v| Definition::from_json(v).and_then(|d| d.to_chaincode_definition()));
            match def {
                Some(Ok(def)) => {
                    tracing::info!(target: "peer::lifecycle", chaincode = %name, "chaincode definition in effect");
                    c.insert(name.into_string(), Arc::new(def));
                }
                Some(Err(e)) => {
                    // Validation only lets canonical definitions through.
                    tracing::warn!(target: "peer::lifecycle", chaincode = %name, error = %e, "committed definition unusable");
                }
                None => {
                    c.remove(name.as_str());
                }
            }
        }
    }
}
