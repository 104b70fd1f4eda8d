//! What the endorser needs from this peer: the ledger as a [`StateSnapshot`] and a
//! [`ChannelContext`] per channel (configuration, committed tx ids, chaincode definitions and
//! this organization's collection memberships).
//!
//! Simulation reads the live ledger, as Fabric reads the state database under its state lock:
//! a block committing during a simulation can make the reads inconsistent, and then MVCC at
//! commit invalidates that transaction, so consistency is never lost, only that transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use medledger_channel::ChannelConfig;
use medledger_endorser::{
    ChannelContext, CollectionAccess, SnapshotError, StateSnapshot, TransientStore, Version,
};
use medledger_ledger::{Ledger, VersionedValue};
use medledger_runtime::HistoryEntry;

use crate::committer::Committer;
use crate::definitions::ChaincodeDefinitions;

/// The ledger read through the endorser's interface.
#[derive(Clone)]
pub struct LedgerSnapshot(pub Arc<Ledger>);

fn err(e: medledger_ledger::Error) -> SnapshotError {
    SnapshotError(e.to_string())
}

fn versioned(v: VersionedValue) -> (Vec<u8>, Version) {
    (
        v.value,
        Version {
            block: v.version.block_num,
            tx: v.version.tx_num,
        },
    )
}

impl StateSnapshot for LedgerSnapshot {
    fn get(&self, ns: &str, key: &str) -> Result<Option<(Vec<u8>, Version)>, SnapshotError> {
        Ok(self.0.get_state(ns, key).map_err(err)?.map(versioned))
    }

    fn range(
        &self,
        ns: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>, Version)>, SnapshotError> {
        self.0
            .state_range(ns, start, end)
            .map_err(err)?
            .take(limit)
            .map(|item| {
                let (key, v) = item.map_err(err)?;
                let (value, version) = versioned(v);
                Ok((key, value, version))
            })
            .collect()
    }

    fn metadata(
        &self,
        ns: &str,
        collection: &str,
        key: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, SnapshotError> {
        let found = if collection.is_empty() {
            self.0.get_state(ns, key).map_err(err)?
        } else {
            self.0.get_private(ns, collection, key).map_err(err)?
        };
        Ok(found.map(|v| v.metadata).unwrap_or_default())
    }

    fn history(&self, ns: &str, key: &str) -> Result<Vec<HistoryEntry>, SnapshotError> {
        self.0
            .history(ns, key)
            .map_err(err)?
            .map(|item| {
                let h = item.map_err(err)?;
                Ok(HistoryEntry {
                    tx_id: h.tx_id,
                    value: h.value,
                    timestamp: h.timestamp.and_then(|t| SystemTime::try_from(t).ok()),
                    is_delete: h.is_delete,
                })
            })
            .collect()
    }

    fn private_get(
        &self,
        ns: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Version)>, SnapshotError> {
        Ok(self
            .0
            .get_private(ns, collection, key)
            .map_err(err)?
            .map(versioned))
    }

    fn private_hash(
        &self,
        ns: &str,
        collection: &str,
        key_hash: &[u8],
    ) -> Result<Option<(Vec<u8>, Version)>, SnapshotError> {
        Ok(self
            .0
            .get_private_hash(ns, collection, key_hash)
            .map_err(err)?
            .map(versioned))
    }
}

/// One channel of this peer as the endorser sees it.
pub struct PeerChannelContext {
    committer: Arc<Committer>,
    definitions: Arc<dyn ChaincodeDefinitions>,
    msp_id: String,
}

impl PeerChannelContext {
    /// The context of `committer`'s channel for a peer of `msp_id`.
    pub fn new(
        committer: Arc<Committer>,
        definitions: Arc<dyn ChaincodeDefinitions>,
        msp_id: &str,
    ) -> Self {
        PeerChannelContext {
            committer,
            definitions,
            msp_id: msp_id.to_owned(),
        }
    }
}

impl ChannelContext for PeerChannelContext {
    fn config(&self) -> Arc<ChannelConfig> {
        self.committer.config().clone()
    }

    fn snapshot(&self) -> Result<Arc<dyn StateSnapshot>, String> {
        Ok(Arc::new(LedgerSnapshot(self.committer.ledger().clone())))
    }

    fn is_committed(&self, tx_id: &str) -> Result<bool, String> {
        self.committer
            .ledger()
            .tx_exists(tx_id)
            .map_err(|e| e.to_string())
    }

    fn chaincode(&self, name: &str) -> Option<Vec<CollectionAccess>> {
        if name == crate::lifecycle::NAMESPACE {
            return Some(Vec::new()); // the system chaincode, always defined
        }
        self.definitions.definition(name).map(|d| {
            d.collections
                .values()
                .map(|c| CollectionAccess {
                    name: c.name.clone(),
                    member: c.is_member(&self.msp_id),
                })
                .collect()
        })
    }

    fn height(&self) -> u64 {
        self.committer.ledger().height()
    }
}

/// The ledger crate's durable transient store as the endorser's [`TransientStore`].
#[derive(Debug)]
pub struct PeerTransientStore(pub Arc<medledger_ledger::TransientStore>);

impl TransientStore for PeerTransientStore {
    fn persist(
        &self,
        tx_id: &str,
        height: u64,
        private: &medledger_proto::rwset::TxPvtReadWriteSet,
    ) -> Result<(), String> {
        self.0.persist(tx_id, height, private)
    }
}
