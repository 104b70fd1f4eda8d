//! What the endorser needs from this peer: a [`ChannelContext`] per channel (the ledger as a
//! [`LedgerReader`], which also answers for committed tx ids, configuration, chaincode definitions and this
//! organization's collection memberships).
//!
//! Simulation reads the live ledger, as Fabric reads the state database under its state lock:
//! a block committing during a simulation can make the reads inconsistent, and then MVCC at
//! commit invalidates that transaction, so consistency is never lost, only that transaction.

use std::sync::Arc;

use medledger_channel::ChannelConfig;
use medledger_endorser::{ChannelContext, CollectionAccess, TransientStore};
use medledger_ledger_api::{LedgerError, LedgerReader};
use medledger_proto::MspId;
use medledger_proto::common::{Header, SignatureHeader};
use medledger_proto::protos::{Proposal, Response, SignedProposal};
use medledger_runtime::support::ExecOutcome;
use prost::Message;

use crate::committer::Committer;
use crate::definitions::ChaincodeDefinitions;

/// One channel of this peer as the endorser sees it.
pub struct PeerChannelContext {
    committer: Arc<Committer>,
    definitions: Arc<dyn ChaincodeDefinitions>,
    msp_id: MspId,
}

impl PeerChannelContext {
    /// The context of `committer`'s channel for a peer of `msp_id`.
    pub fn new(
        committer: Arc<Committer>,
        definitions: Arc<dyn ChaincodeDefinitions>,
        msp_id: MspId,
    ) -> Self {
        PeerChannelContext {
            committer,
            definitions,
            msp_id,
        }
    }
}

impl ChannelContext for PeerChannelContext {
    fn config(&self) -> Arc<ChannelConfig> {
        self.committer.config().clone()
    }

    fn ledger(&self) -> Arc<dyn LedgerReader> {
        self.committer.ledger().clone()
    }

    fn chaincode(&self, name: &str) -> Option<Vec<CollectionAccess>> {
        if name == crate::lifecycle::NAMESPACE || crate::scc::is_system_query(name) {
            return Some(Vec::new()); // system chaincodes, always defined
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
    ) -> Result<(), LedgerError> {
        Ok(self.0.persist(tx_id, height, private)?)
    }
}

/// The creator (a serialized `msp.SerializedIdentity`) of a signed proposal, if its proposal,
/// header and signature header decode. For the system chaincodes, which the endorser calls
/// after it checked the proposal.
pub(crate) fn proposal_creator(signed: &SignedProposal) -> Option<Vec<u8>> {
    Proposal::decode(signed.proposal_bytes.as_slice())
        .ok()
        .and_then(|p| Header::decode(p.header.as_slice()).ok())
        .and_then(|h| SignatureHeader::decode(h.signature_header.as_slice()).ok())
        .map(|s| s.creator)
}

/// A system chaincode's answer as the endorser takes it (Fabric's `shim.Success` /
/// `shim.Error`): status 200 with the payload, or status 500 with the message; no event.
pub(crate) fn system_outcome(result: Result<Vec<u8>, String>) -> ExecOutcome {
    let response = match result {
        Ok(payload) => Response {
            status: 200,
            message: String::new(),
            payload,
        },
        Err(message) => Response {
            status: 500,
            message,
            payload: Vec::new(),
        },
    };
    ExecOutcome {
        response,
        event: None,
    }
}
