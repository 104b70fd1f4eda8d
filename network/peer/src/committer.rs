//! [`Committer`]: verifies and commits a channel's blocks, one at a time, and publishes what
//! it committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use medledger_channel::ChannelConfig;
use medledger_channel::bft;
use medledger_channel::block;
use medledger_ledger::Ledger;
use medledger_ledger_api::BlockUpdate;
use medledger_proto::common::{Block, BlockMetadataIndex, Metadata as PbMetadata};
use medledger_proto::protos::TxValidationCode;
use medledger_proto::{ChannelId, MspId};
use prost::Message;
use tokio::sync::{broadcast, watch};
use tracing::{error, info, warn};

use crate::definitions::ChaincodeDefinitions;
use crate::error::{Error, Result};
use crate::operations::PeerMetrics;
use crate::validator::{self, BlockContext, BlockPrivateData};

/// Capacity of the commit-event broadcast channel; a subscriber that falls further behind
/// gets `RecvError::Lagged` and should re-read from the ledger.
pub const EVENT_CAPACITY: usize = 256;

/// Status of one transaction in a committed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxStatus {
    /// Authenticated tx id.
    pub tx_id: String,
    /// Position in the block.
    pub tx_num: u64,
    /// Validation code.
    pub code: TxValidationCode,
}

/// Published after each committed block (for the gateway's commit status and events).
#[derive(Debug, Clone)]
pub struct CommitEvent {
    /// Channel id.
    pub channel: ChannelId,
    /// Block number.
    pub block_number: u64,
    /// The committed block (with TRANSACTIONS_FILTER and COMMIT_HASH).
    pub block: Arc<Block>,
    /// Every transaction with an authenticated tx id (forged ids are not announced).
    pub txs: Vec<TxStatus>,
}

/// What committing a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    /// Block number.
    pub block_number: u64,
    /// Validation code per transaction.
    pub codes: Vec<TxValidationCode>,
}

/// The committer of one channel on one peer.
///
/// [`Committer::commit_block`] is blocking (parallel signature checks on rayon's pool, then an
/// fsynced RocksDB write); call it from `spawn_blocking` in async code. Blocks are committed
/// one at a time, in order.
pub struct Committer {
    channel: ChannelId,
    ledger: Arc<Ledger>,
    /// The current configuration: replaced when a config block commits.
    config: RwLock<Arc<ChannelConfig>>,
    /// Number of the block that carries the current configuration.
    last_config: AtomicU64,
    definitions: Arc<dyn ChaincodeDefinitions>,
    msp_id: MspId,
    events: broadcast::Sender<Arc<CommitEvent>>,
    height: watch::Sender<u64>,
    /// Sequence of the current configuration.
    config_sequence: watch::Sender<u64>,
    /// Set when the peer disagreed with the ordering service on a configuration transaction:
    /// nothing more is committed on the channel ([`Error::ChannelHalted`]).
    halted: RwLock<Option<(u64, String)>>,
    metrics: Option<Arc<PeerMetrics>>,
    commit_lock: Mutex<()>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("channel", &self.channel)
            .field("msp_id", &self.msp_id)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// A committer over `ledger` for a peer of organization `msp_id`. An empty ledger is
    /// initialised with `genesis` (the channel's config block 0, committed unsigned as Fabric
    /// joins a channel from its genesis block); otherwise `genesis`, if given, must be the
    /// stored block 0, and the configuration is read from the last config block (the
    /// LAST_CONFIG metadata this committer wrote into the last block).
    ///
    /// # Errors
    /// [`Error::Genesis`] if the genesis block is missing, not a valid config block of the
    /// ledger's channel, or differs from the stored one; [`Error::Ledger`].
    pub fn new(
        ledger: Arc<Ledger>,
        genesis: Option<&Block>,
        definitions: Arc<dyn ChaincodeDefinitions>,
        msp_id: MspId,
    ) -> Result<Self> {
        let channel = ledger.channel_id().clone();
        let genesis_err = |reason: String| Error::Genesis {
            channel: channel.clone(),
            reason,
        };
        let (config, last_config) = if ledger.height() == 0 {
            let g = genesis.ok_or_else(|| genesis_err("the ledger is empty".into()))?;
            if block::number(g) != 0 {
                return Err(genesis_err("block number is not 0".into()));
            }
            let config =
                ChannelConfig::from_config_block(g).map_err(|e| genesis_err(e.to_string()))?;
            if *config.channel_id() != channel {
                return Err(genesis_err("config block is for another channel".into()));
            }
            let mut g = g.clone();
            let filter = vec![TxValidationCode::Valid as i32 as u8];
            let update = BlockUpdate::default();
            let hash = validator::commit_hash(&filter, &update, &[]).to_vec();
            block::set_metadata_bytes(&mut g, BlockMetadataIndex::TransactionsFilter, filter);
            block::set_metadata_bytes(
                &mut g,
                BlockMetadataIndex::CommitHash,
                PbMetadata {
                    value: hash.clone(),
                    signatures: Vec::new(),
                }
                .encode_to_vec(),
            );
            ledger.commit(BlockUpdate {
                block: g,
                commit_hash: hash,
                ..update
            })?;
            info!(target: "peer::committer", channel = %channel, "genesis block committed");
            (config, 0)
        } else {
            let stored = ledger
                .block(0)?
                .ok_or_else(|| genesis_err("block 0 is missing".into()))?;
            if let Some(g) = genesis
                && g.header != stored.header
            {
                return Err(genesis_err("differs from the ledger's block 0".into()));
            }
            let last = ledger
                .block(ledger.height() - 1)?
                .map(|b| block::last_config_index(&b))
                .unwrap_or(0);
            let block = if last == 0 {
                stored
            } else {
                ledger
                    .block(last)?
                    .ok_or_else(|| genesis_err(format!("config block {last} is missing")))?
            };
            let config = ChannelConfig::from_config_block(&block)
                .map_err(|e| genesis_err(format!("config block {last}: {e}")))?;
            (config, last)
        };
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (height, _) = watch::channel(ledger.height());
        let (config_sequence, _) = watch::channel(config.sequence());
        Ok(Committer {
            channel,
            ledger,
            config: RwLock::new(Arc::new(config)),
            last_config: AtomicU64::new(last_config),
            definitions,
            msp_id,
            events,
            height,
            config_sequence,
            halted: RwLock::new(None),
            metrics: None,
            commit_lock: Mutex::new(()),
        })
    }

    /// Records commits in `metrics` from now on.
    pub fn with_metrics(mut self, metrics: Arc<PeerMetrics>) -> Self {
        metrics.set_height(&self.channel, self.ledger.height());
        self.metrics = Some(metrics);
        self
    }

    /// Channel id.
    pub fn channel_id(&self) -> &ChannelId {
        &self.channel
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Why the channel is halted on this peer (block, reason), if it is: the peer found a
    /// configuration transaction the ordering service accepted invalid.
    pub fn halted(&self) -> Option<(u64, String)> {
        self.halted
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The current channel configuration (from the last committed config block).
    pub fn config(&self) -> Arc<ChannelConfig> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Commit events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommitEvent>> {
        self.events.subscribe()
    }

    /// The sequence of the current channel configuration, updated when a config block
    /// commits.
    pub fn config_sequence(&self) -> watch::Receiver<u64> {
        self.config_sequence.subscribe()
    }

    /// The ledger height, updated after every commit (what Deliver waits on).
    pub fn height(&self) -> watch::Receiver<u64> {
        self.height.subscribe()
    }

    fn refuse(&self, block: u64, reason: impl Into<String>) -> Error {
        let reason = reason.into();
        warn!(target: "peer::committer", channel = %self.channel, block, %reason, "block refused");
        Error::BlockRefused {
            channel: self.channel.clone(),
            block,
            reason,
        }
    }

    /// Verifies `block` — the next block number, chained to the last block, data hash and a
    /// quorum of valid orderer signatures (`bft::verify_block_signatures`); any failure refuses
    /// the whole block — then validates every transaction and commits the block with its
    /// TRANSACTIONS_FILTER and COMMIT_HASH in one atomic batch, and publishes a
    /// [`CommitEvent`]. `private` holds private data this peer has for the block's transactions.
    ///
    /// # Errors
    /// [`Error::BlockRefused`] (nothing written), [`Error::Ledger`].
    pub fn commit_block(&self, block: Block, private: &BlockPrivateData) -> Result<CommitSummary> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let number = block::number(&block);
        if let Some((block, reason)) = self.halted() {
            return Err(Error::ChannelHalted {
                channel: self.channel.clone(),
                block,
                reason,
            });
        }
        let info = self.ledger.info();
        if block.header.is_none() {
            return Err(self.refuse(number, "block has no header"));
        }
        if number != info.height {
            return Err(self.refuse(number, format!("expected block {}", info.height)));
        }
        let prev = block
            .header
            .as_ref()
            .map(|h| h.previous_hash.as_slice())
            .unwrap_or_default();
        if prev != info.current_hash.as_slice() {
            return Err(self.refuse(number, "previous_hash is not the hash of the last block"));
        }
        let config = self.config();
        bft::verify_block_signatures(&block, self.channel.as_str(), config.consenters())
            .map_err(|e| self.refuse(number, e.to_string()))?;
        let ctx = BlockContext {
            config: &config,
            definitions: self.definitions.as_ref(),
            state: self.ledger.as_ref(),
            msp_id: &self.msp_id,
            previous_commit_hash: &info.commit_hash,
            last_config: self.last_config.load(Ordering::Acquire),
        };
        let validated = validator::validate_block(block, &ctx, private)?;
        if let Some((tx_num, code)) = validated.config_disagreement {
            let reason = format!(
                "the ordering service accepted configuration transaction {tx_num}, which this \
                 peer finds invalid ({code:?}); resolve the disagreement and restart the peer"
            );
            error!(target: "peer::committer", channel = %self.channel, block = number, %reason, "channel halted");
            *self
                .halted
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((number, reason.clone()));
            return Err(Error::ChannelHalted {
                channel: self.channel.clone(),
                block: number,
                reason,
            });
        }
        let block = Arc::new(validated.update.block.clone());
        let lifecycle_writes: Vec<(String, Option<Vec<u8>>)> = validated
            .update
            .state
            .iter()
            .filter(|((ns, _), _)| ns == crate::lifecycle::NAMESPACE)
            .map(|((_, key), v)| (key.clone(), v.as_ref().map(|v| v.value.clone())))
            .collect();
        self.ledger.commit(validated.update)?;
        if let Some(next) = validated.config {
            let sequence = next.sequence();
            info!(target: "peer::committer", channel = %self.channel, block = number, sequence, orgs = next.application_orgs().count(), "channel configuration updated");
            *self
                .config
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
            self.last_config.store(number, Ordering::Release);
            self.config_sequence.send_replace(sequence);
        }
        if !lifecycle_writes.is_empty() {
            self.definitions.lifecycle_committed(&lifecycle_writes);
        }
        let valid = validated
            .codes
            .iter()
            .filter(|c| **c == TxValidationCode::Valid)
            .count();
        info!(target: "peer::committer", channel = %self.channel, block = number, txs = validated.codes.len(), valid, "block committed");
        if let Some(m) = &self.metrics {
            m.block_committed(&self.channel, number + 1, &validated.codes);
        }
        let txs = validated
            .tx_ids
            .iter()
            .zip(&validated.codes)
            .enumerate()
            .filter_map(|(i, (id, code))| {
                id.as_ref().map(|id| TxStatus {
                    tx_id: id.clone(),
                    tx_num: i as u64,
                    code: *code,
                })
            })
            .collect();
        // No receivers is fine.
        let _ = self.events.send(Arc::new(CommitEvent {
            channel: self.channel.clone(),
            block_number: number,
            block,
            txs,
        }));
        self.height.send_replace(number + 1);
        Ok(CommitSummary {
            block_number: number,
            codes: validated.codes,
        })
    }
}
