//! The gateway's view of this peer's ledgers ([`CommitSource`]): commit status and chaincode
//! events, read from the ledger and followed through the committer's commit events.

use std::collections::HashMap;
use std::sync::Arc;

use medledger_channel::{block, envelope};
use medledger_gateway_server::{CommitSource, CommitSourceError, EventStream};
use medledger_proto::common::{Block, BlockMetadataIndex, Envelope, HeaderType};
use medledger_proto::protos::{ChaincodeEvent, TxValidationCode};
use medledger_proto::{ChannelId, TxId};
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::committer::Committer;
use crate::deliver::chaincode_event;

/// Blocks of events buffered per chaincode-events stream.
const EVENT_BUFFER: usize = 64;

/// Commit status and chaincode events over the committers of this peer's channels.
#[derive(Debug, Clone, Default)]
pub struct LedgerCommits {
    committers: HashMap<ChannelId, Arc<Committer>>,
}

impl LedgerCommits {
    /// Over `committers` (one per channel).
    pub fn new(committers: impl IntoIterator<Item = Arc<Committer>>) -> Self {
        LedgerCommits {
            committers: committers
                .into_iter()
                .map(|c| (c.channel_id().clone(), c))
                .collect(),
        }
    }

    fn committer(&self, channel: &str) -> Result<&Arc<Committer>, CommitSourceError> {
        self.committers
            .get(channel)
            .ok_or_else(|| CommitSourceError::UnknownChannel {
                channel: channel.to_owned(),
            })
    }
}

/// The events of `chaincode` raised by valid transactions of a committed `block`, in order.
pub fn block_chaincode_events(block: &Block, chaincode: &str) -> Vec<ChaincodeEvent> {
    let filter = block::metadata_bytes(block, BlockMetadataIndex::TransactionsFilter);
    let entries = block::entries(block);
    entries
        .iter()
        .enumerate()
        .filter(|(i, _)| filter.get(*i).copied() == Some(TxValidationCode::Valid as i32 as u8))
        .filter_map(|(_, entry)| {
            let env = Envelope::decode(entry.as_slice()).ok()?;
            let parsed = envelope::parse(&env).ok()?;
            if parsed.header_type() != Some(HeaderType::EndorserTransaction) {
                return None;
            }
            chaincode_event(&parsed.payload.data).filter(|e| e.chaincode_id == chaincode)
        })
        .collect()
}

#[tonic::async_trait]
impl CommitSource for LedgerCommits {
    async fn wait_for_commit(
        &self,
        channel: &str,
        tx_id: &TxId,
    ) -> Result<(TxValidationCode, u64), CommitSourceError> {
        let committer = self.committer(channel)?;
        // Subscribe before looking, so a commit in between is not missed.
        let mut events = committer.subscribe();
        loop {
            if let Some(loc) = committer
                .ledger()
                .tx_location(tx_id)
                .map_err(|e| CommitSourceError::Ledger(Box::new(e)))?
            {
                return Ok((loc.code, loc.block_num));
            }
            match events.recv().await {
                Ok(ev) => {
                    if let Some(tx) = ev.txs.iter().find(|t| t.tx_id == tx_id.as_str()) {
                        return Ok((tx.code, ev.block_number));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {} // look in the ledger again
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(CommitSourceError::ShuttingDown);
                }
            }
        }
    }

    async fn chaincode_events(
        &self,
        channel: &str,
        chaincode: &str,
        start: Option<u64>,
    ) -> Result<EventStream, CommitSourceError> {
        let committer = self.committer(channel)?.clone();
        let mut events = committer.subscribe();
        let mut next = start.unwrap_or_else(|| committer.ledger().height());
        let chaincode = chaincode.to_owned();
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(async move {
            let ledger = committer.ledger().clone();
            loop {
                // Catch up from the ledger, then wait for the next commit.
                while next < ledger.height() {
                    let Ok(Some(b)) = ledger.block(next) else {
                        return;
                    };
                    let found = block_chaincode_events(&b, &chaincode);
                    if !found.is_empty() && tx.send((next, found)).await.is_err() {
                        return;
                    }
                    next += 1;
                }
                match events.recv().await {
                    Ok(ev) if ev.block_number == next => {
                        let found = block_chaincode_events(&ev.block, &chaincode);
                        if !found.is_empty() && tx.send((next, found)).await.is_err() {
                            return;
                        }
                        next += 1;
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}
