//! One orderer as a pure state machine: envelopes, cluster messages and timers in, [`Action`]s
//! out. The host (the tokio service in [`crate::server`], or the deterministic test harness)
//! carries the actions out **in order**, with two rules:
//!
//! 1. every [`Action::Wal`] record is durable (fsynced) before any later [`Action::Send`]
//!    leaves the process (so a restarted orderer never signs against what it already sent);
//! 2. every [`Action::Commit`] block is durable before the block is served to anyone and
//!    before later actions run.
//!
//! What the node does (issue 3; docs/orderer.md):
//! - admits envelopes ([`crate::batch::admit`]), pools them and forwards them to every other
//!   orderer, so a censoring proposer is outvoted by the next honest one;
//! - starts height h+1 only when it has pending envelopes or sees another orderer at h+1 (no
//!   empty blocks);
//! - as proposer, cuts a block (max count, preferred bytes, batch timeout) and streams it as
//!   proposal parts; as follower, assembles parts from the round's proposer only, validates
//!   the batch ([`crate::batch::validate`]) and reports the verdict to consensus;
//! - writes each decided block with its commit certificate (SIGNATURES metadata in the format
//!   of `medledger_channel::bft`) and LAST_CONFIG metadata;
//! - syncs: an orderer that sees another one ahead asks it for the decided blocks, verifies
//!   them with `medledger_channel::bft::verify_block_signatures` and the hash chain, appends
//!   them and joins consensus at the right height.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_channel::bft;
use medledger_channel::block as blk;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::{Block, BlockMetadataIndex, LastConfig, Metadata};
use medledger_proto::medledger::orderer as pb;
use pb::cluster_message::Message as M;
use prost::Message as _;

use crate::batch::{self, ChainView, Pool, Rejection};
use crate::consensus::{BatchHeader, Engine, EngineError, Envelopes, Output, TimeoutConfig, Timer};

/// The time as the host sees it: monotonic for batch timeouts, wall clock for certificate
/// validity.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time.
    pub mono: Instant,
    /// Wall-clock time.
    pub wall: SystemTime,
}

impl Now {
    /// The current time of the system clocks.
    pub fn system() -> Self {
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Timers the node asks the host to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerId {
    /// A consensus timeout.
    Consensus(Timer),
    /// The batch timeout of our proposal at (height, round).
    BatchCut {
        /// Block number.
        height: u64,
        /// Round.
        round: u32,
    },
    /// Retry a block sync that got no answer.
    SyncRetry,
    /// Serve the sync request of this orderer that waited for its rate limit.
    ServeSync(u32),
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every other consenter.
    All,
    /// One consenter.
    One(u32),
}

/// What the host must do, in order (see the module docs for the durability rules).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Begin the write-ahead log of `height`; logs of lower heights may be deleted.
    WalStart {
        /// Block number.
        height: u64,
    },
    /// Append a record to the current write-ahead log.
    Wal(pb::WalEntry),
    /// Send a message.
    Send {
        /// To whom.
        to: Target,
        /// What.
        msg: pb::ClusterMessage,
    },
    /// Start or restart a timer.
    SetTimer(TimerId, Duration),
    /// Stop a timer.
    CancelTimer(TimerId),
    /// Stop every consensus timer.
    CancelConsensusTimers,
    /// Append a decided (or synced and verified) block to the block store, durably.
    Commit {
        /// The block with SIGNATURES and LAST_CONFIG metadata.
        block: Box<Block>,
        /// Decision round (for metrics).
        round: i64,
        /// Time from starting the height to the decision; `None` for synced blocks.
        latency: Option<Duration>,
    },
    /// Send `to` the blocks from number `from` on (a `SyncResponse`), from the block store.
    ServeSync {
        /// Requesting consenter.
        to: u32,
        /// First block wanted.
        from: u64,
    },
}

/// Node settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Our consenter id.
    pub consenter_id: u32,
    /// Consensus timeouts.
    pub timeouts: TimeoutConfig,
    /// Envelopes per proposal part (default 100).
    pub envelopes_per_part: usize,
    /// Wait for a sync answer before asking another orderer (default 1 s).
    pub sync_retry: Duration,
    /// Most envelopes pending; Broadcast answers `SERVICE_UNAVAILABLE` beyond (default
    /// 100,000).
    pub max_pending_envelopes: usize,
    /// Most bytes of envelopes pending; Broadcast answers `SERVICE_UNAVAILABLE` beyond
    /// (default 256 MiB).
    pub max_pending_bytes: usize,
    /// Most bytes of one submitter's (creator identity's) envelopes pending (default a
    /// quarter of `max_pending_bytes`).
    pub max_pending_bytes_per_submitter: usize,
    /// Most bytes of one organization's (creator MSP's) envelopes pending (default half of
    /// `max_pending_bytes`).
    pub max_pending_bytes_per_org: usize,
    /// At most one sync response per this interval to each other orderer (default 100 ms);
    /// requests in between are merged into one served when it ends.
    pub sync_serve_interval: Duration,
}

impl NodeConfig {
    /// Defaults for consenter `id`.
    pub fn new(consenter_id: u32) -> Self {
        NodeConfig {
            consenter_id,
            timeouts: TimeoutConfig::default(),
            envelopes_per_part: 100,
            sync_retry: Duration::from_secs(1),
            max_pending_envelopes: 100_000,
            max_pending_bytes: 256 * 1024 * 1024,
            max_pending_bytes_per_submitter: 64 * 1024 * 1024,
            max_pending_bytes_per_org: 128 * 1024 * 1024,
            sync_serve_interval: Duration::from_millis(100),
        }
    }
}

/// The chain as the node needs it: next block number, last header hash, every ordered tx_id,
/// and the number of the last config block (for LAST_CONFIG).
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Number of the next block.
    pub next_number: u64,
    /// Header hash of the last block.
    pub last_hash: [u8; 32],
    /// Transaction ids already in blocks.
    pub tx_ids: HashSet<String>,
    /// SHA-256 of every envelope already in blocks (an identical envelope broadcast again is
    /// acknowledged, not ordered twice).
    pub envelope_hashes: HashSet<[u8; 32]>,
    /// Number of the last config block (0, the genesis block, or the last config update).
    pub last_config: u64,
    /// Ordering time of the last block that has one, ms since the Unix epoch (0: none). The
    /// next block's may not be earlier.
    pub last_time_ms: u64,
}

impl Chain {
    /// Builds the view by reading blocks 0..n in order.
    ///
    /// # Errors
    /// [`crate::Error::Store`] if the blocks are not a chain.
    pub fn from_blocks<'a>(blocks: impl IntoIterator<Item = &'a Block>) -> crate::Result<Self> {
        let mut c = Chain::default();
        for b in blocks {
            c.append(b)?;
        }
        Ok(c)
    }

    /// Adds the next block; returns its transaction ids ([`block_tx_ids`]; none for the
    /// genesis block).
    ///
    /// # Errors
    /// [`crate::Error::Store`] if it is not the next block or does not chain.
    pub fn append(&mut self, b: &Block) -> crate::Result<Vec<String>> {
        let header = b.header.as_ref().ok_or_else(|| crate::Error::Store {
            reason: "block without header".into(),
        })?;
        if header.number != self.next_number
            || (header.number > 0 && header.previous_hash != self.last_hash)
        {
            return Err(crate::Error::Store {
                reason: format!("block {} does not extend the chain", header.number),
            });
        }
        let mut tx_ids = Vec::new();
        if header.number == 0 {
            self.last_config = 0;
        } else {
            if medledger_channel::update::is_config_block(b) {
                self.last_config = header.number;
            }
            tx_ids = block_tx_ids(b);
            self.tx_ids.extend(tx_ids.iter().cloned());
            if let Some(data) = b.data.as_ref() {
                self.envelope_hashes
                    .extend(data.data.iter().map(|e| batch::envelope_hash(e)));
            }
        }
        if let Some(t) = bft::ordering_time(b) {
            self.last_time_ms = self.last_time_ms.max(bft::time_ms(t));
        }
        self.last_hash = blk::header_hash(header);
        self.next_number = header.number + 1;
        Ok(tx_ids)
    }
}

/// Transaction ids of a block's envelopes (headers parsed, signatures not checked).
pub fn block_tx_ids(b: &Block) -> Vec<String> {
    let Some(data) = b.data.as_ref() else {
        return Vec::new();
    };
    // From the headers alone: no copy of a large envelope's payload.
    data.data
        .iter()
        .filter_map(|e| medledger_channel::envelope::headers_of(e))
        .map(|(channel_header, _)| channel_header.tx_id)
        .filter(|t| !t.is_empty())
        .collect()
}

/// What a node holds for later: values and parts of proposals for a height or round not
/// reached yet, and consensus messages for a later height. Bounded per sender (see the module
/// docs); reported on `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffered {
    /// Values assembled for a later height, waiting for it.
    pub early_values: usize,
    /// Bytes of their envelopes.
    pub early_bytes: usize,
    /// Proposals being assembled from their parts.
    pub assemblies: usize,
    /// Bytes of envelopes in those parts.
    pub assembly_bytes: usize,
    /// Consensus messages for a later height held by the consensus engine.
    pub future_inputs: usize,
}

impl Buffered {
    /// The larger of each field.
    pub fn max(self, o: Buffered) -> Buffered {
        Buffered {
            early_values: self.early_values.max(o.early_values),
            early_bytes: self.early_bytes.max(o.early_bytes),
            assemblies: self.assemblies.max(o.assemblies),
            assembly_bytes: self.assembly_bytes.max(o.assembly_bytes),
            future_inputs: self.future_inputs.max(o.future_inputs),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Blocks decided by consensus here.
    pub blocks_decided: u64,
    /// Blocks appended from sync.
    pub blocks_synced: u64,
    /// Envelopes in decided blocks.
    pub envelopes_ordered: u64,
    /// Proposals this orderer made.
    pub proposals: u64,
    /// Sum over decided blocks of (decision round + 1).
    pub rounds_total: u64,
    /// Batches this orderer found invalid.
    pub invalid_batches: u64,
    /// Pending envelopes judged again when this orderer cut them into a proposal, because
    /// their admission did not hold at its ordering time ([`batch::Admitted::holds_at`]: an
    /// identity's validity span ended before it, say, or a config update).
    pub rejudged_at_cut: u64,
    /// Of those, the envelopes no longer admissible then, dropped from the pool.
    pub dropped_at_cut: u64,
}

#[derive(Debug, Default)]
struct Assembly {
    init: Option<pb::PartInit>,
    data: BTreeMap<u32, Vec<Vec<u8>>>,
    total: Option<u32>,
    bytes: usize,
}

/// A value assembled for a height that had not started yet.
#[derive(Debug)]
struct EarlyValue {
    round: u32,
    pol_round: i64,
    proposer: u32,
    header: BatchHeader,
    body: Envelopes,
}

impl EarlyValue {
    fn bytes(&self) -> usize {
        self.body.iter().map(Vec::len).sum()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// The last height is finalized; waiting for work or for another orderer to move on.
    Idle,
    /// Consensus runs at `chain.next_number`.
    Running,
}

/// One orderer's consensus-side state machine. See the module docs.
pub struct Node {
    cfg: NodeConfig,
    me: u32,
    config: Arc<ChannelConfig>,
    engine: Engine,
    pool: Pool,
    chain: Chain,
    phase: Phase,
    height_started: Option<Instant>,
    awaiting_value: Option<(u64, u32)>,
    batch_timer: Option<TimerId>,
    assemblies: HashMap<(u64, u32, u32), Assembly>,
    /// Values assembled for the next height before it started.
    early: Vec<EarlyValue>,
    /// Valid values of this height by header hash.
    bodies: HashMap<[u8; 32], (BatchHeader, Envelopes)>,
    own_recorded: HashMap<(u64, u32), [u8; 32]>,
    max_seen_height: u64,
    syncing: Option<u32>,
    sync_attempts: usize,
    status_told: HashMap<u32, (u64, u32)>,
    /// Distinct consensus messages for the next height passed on, per sender.
    future: HashMap<u32, FutureBudget>,
    /// Sync serving per requesting orderer (rate limit).
    sync_serve: HashMap<u32, SyncServe>,
    stats: NodeStats,
    halted: Option<String>,
    /// Admission verdicts, shared with the threads that check envelopes for this node.
    verdicts: batch::Verdicts,
}

/// What one sender sent for the next height: hashes of the distinct messages, their bytes.
#[derive(Debug, Default)]
struct FutureBudget {
    height: u64,
    seen: HashSet<[u8; 32]>,
    bytes: usize,
}

/// When we last served a sync response to an orderer, and the request waiting for the next
/// slot (the latest one; requests in between are merged).
#[derive(Debug, Default)]
struct SyncServe {
    last: Option<Instant>,
    pending: Option<u64>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("me", &self.me)
            .field("next_number", &self.chain.next_number)
            .field("phase", &self.phase)
            .field("pending", &self.pool.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node over `chain` (read from the block store) that restarts from `wal` (the records
    /// of the write-ahead log of height `chain.next_number`, empty if none). Returns the node
    /// and the actions of its start (WAL replay outputs, a status broadcast).
    ///
    /// # Errors
    /// [`crate::Error::NotAConsenter`] if `cfg.consenter_id` is not in the channel's consenter
    /// set or `signer` is not its identity; [`crate::Error::Consensus`] if the WAL is corrupt
    /// or its replay diverges.
    pub fn new(
        cfg: NodeConfig,
        config: Arc<ChannelConfig>,
        signer: Arc<SigningIdentity>,
        chain: Chain,
        wal: &[pb::WalEntry],
        now: Now,
    ) -> crate::Result<(Self, Vec<Action>)> {
        let me = cfg.consenter_id;
        let consenter = config
            .consenters()
            .get(me)
            .ok_or_else(|| crate::Error::NotAConsenter {
                consenter: me,
                reason: "not in the channel's consenter set".into(),
            })?;
        if consenter.public_key() != signer.certificate().public_key() {
            return Err(crate::Error::NotAConsenter {
                consenter: me,
                reason: "signing identity is not the consenter's".into(),
            });
        }
        let pool_limits = batch::PoolLimits {
            max_envelopes: cfg.max_pending_envelopes,
            max_bytes: cfg.max_pending_bytes,
            max_bytes_per_submitter: cfg.max_pending_bytes_per_submitter,
            max_bytes_per_org: cfg.max_pending_bytes_per_org,
        };
        let engine = Engine::new(
            config.channel_id().as_ref(),
            me,
            signer,
            config.consenters(),
            cfg.timeouts,
        );
        let mut node = Node {
            cfg,
            me,
            config,
            engine,
            pool: Pool::new(pool_limits),
            phase: Phase::Idle,
            height_started: None,
            awaiting_value: None,
            batch_timer: None,
            assemblies: HashMap::new(),
            early: Vec::new(),
            bodies: HashMap::new(),
            own_recorded: HashMap::new(),
            max_seen_height: 0,
            syncing: None,
            sync_attempts: 0,
            status_told: HashMap::new(),
            future: HashMap::new(),
            sync_serve: HashMap::new(),
            stats: NodeStats::default(),
            halted: None,
            verdicts: batch::Verdicts::new(VERDICTS_REMEMBERED),
            chain,
        };
        node.verdicts.set_last_block_time(node.chain.last_time_ms);
        let mut actions = Vec::new();
        let height = node.chain.next_number;
        let records: Vec<pb::WalEntry> =
            wal.iter().filter(|r| r.height == height).cloned().collect();
        if !records.is_empty() {
            for r in &records {
                if let Some(pb::wal_entry::Entry::Proposal(p)) = &r.entry
                    && let Some(prop) = &p.proposal
                    && prop.proposer == me
                    && let (Ok(round), Some(v)) = (u32::try_from(prop.round), prop.value.as_ref())
                    && let Ok(h) = <[u8; 32]>::try_from(v.previous_hash.as_slice())
                    && let Ok(d) = <[u8; 32]>::try_from(v.data_hash.as_slice())
                {
                    let header = BatchHeader {
                        number: v.number,
                        previous_hash: h,
                        data_hash: d,
                        time_ms: v.time_ms,
                    };
                    node.own_recorded.insert((height, round), header.hash());
                }
            }
            node.phase = Phase::Running;
            node.height_started = Some(now.mono);
            let (outputs, bodies) = node
                .engine
                .restart_from_wal(height, &records)
                .map_err(crate::Error::from)?;
            for (header, envelopes) in bodies {
                // `on_decided` builds the block with the header's data hash: a body read
                // back must match it (a fresh proposal is checked by `batch::validate`).
                if blk::entries_hash(&envelopes) != header.data_hash {
                    tracing::warn!(target: "orderer::consensus", consenter = me, height, "a value in the write-ahead log does not match its data hash; left out");
                    continue;
                }
                node.bodies
                    .insert(header.hash(), (header, Arc::new(envelopes)));
            }
            tracing::info!(target: "orderer::consensus", consenter = me, height, records = records.len(), "replayed write-ahead log");
            node.apply(outputs, now, &mut actions);
        }
        actions.push(Action::Send {
            to: Target::All,
            msg: status(node.chain.next_number),
        });
        Ok((node, actions))
    }

    /// Our consenter id.
    pub fn id(&self) -> u32 {
        self.me
    }

    /// The current channel configuration (from the last config block in the chain).
    pub fn config(&self) -> &Arc<ChannelConfig> {
        &self.config
    }

    /// The admission verdicts this node remembers: hosts that check envelopes on other
    /// threads ([`Node::submit_checked`]) share them, so no envelope is verified twice.
    pub fn verdicts(&self) -> &batch::Verdicts {
        &self.verdicts
    }

    /// After `b` joined the chain: its ordering time is the admission verdicts' last block
    /// time ([`batch::Verdicts::set_last_block_time`]); if it is a config block, its
    /// configuration takes effect
    /// (it was validated against the previous one by a quorum, this orderer included when it
    /// decided it) and pending envelopes no longer admissible under it are dropped — a
    /// second update proposed for the same sequence, say, or a creator whose certificate the
    /// new CRL revokes.
    fn after_append(&mut self, b: &Block, now: Now) {
        self.verdicts.set_last_block_time(self.chain.last_time_ms);
        if !medledger_channel::update::is_config_block(b) {
            return;
        }
        let number = blk::number(b);
        match ChannelConfig::from_config_block(b) {
            Ok(next) => {
                let config = Arc::new(next);
                // Re-judged without verifying signatures again (they do not depend on the
                // configuration) nor decoding the envelopes: what the new configuration
                // changes is the size limit, the identities' validity and the policies.
                let mut rejudgement = batch::Rejudgement::new(&config, now.wall);
                let dropped = self.pool.rejudge(|e, a| {
                    let verdict = rejudgement.judge(e, a).ok();
                    // Pooled admissions feed this orderer's votes: in debug builds, the
                    // re-judgement from kept identities must agree with judging the bytes
                    // again (security review sr1).
                    debug_assert_eq!(
                        verdict,
                        batch::readmit(&config, e, now.wall).ok(),
                        "Rejudgement::judge disagrees with readmit"
                    );
                    verdict
                });
                tracing::info!(target: "orderer::consensus", consenter = self.me, block = number, sequence = config.sequence(), dropped, "channel configuration updated");
                self.config = config;
            }
            Err(e) => {
                tracing::error!(target: "orderer::consensus", consenter = self.me, block = number, error = %e, "config block does not carry a valid configuration; keeping the previous one");
            }
        }
    }

    /// The chain as the node sees it.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Envelopes pending.
    pub fn pending(&self) -> usize {
        self.pool.len()
    }

    /// Bytes pending, as the pool's byte bound counts them: the envelopes and the identities
    /// their admissions keep ([`Pool::held_bytes`]).
    pub fn pending_bytes(&self) -> usize {
        self.pool.held_bytes()
    }

    /// The pending pool (read only: its limits and usage).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// What the node holds for later heights and rounds.
    pub fn buffered(&self) -> Buffered {
        Buffered {
            early_values: self.early.len(),
            early_bytes: self.early.iter().map(EarlyValue::bytes).sum(),
            assemblies: self.assemblies.len(),
            assembly_bytes: self.assemblies.values().map(|a| a.bytes).sum(),
            future_inputs: self.engine.buffered_inputs(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Current consensus round (−1 when idle).
    pub fn round(&self) -> i64 {
        if self.phase == Phase::Running {
            self.engine.round()
        } else {
            -1
        }
    }

    /// Why the node stopped, if a fatal consensus error happened (it then ignores all input).
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Submits envelopes (serialized `common.Envelope`) from clients. Each is admitted or
    /// rejected with a Fabric status; admitted ones are pooled and forwarded to every other
    /// orderer in one message. Checks signatures here; a host that checks them on other
    /// threads calls [`Node::submit_checked`].
    pub fn submit(
        &mut self,
        envelopes: Vec<Vec<u8>>,
        now: Now,
    ) -> (Vec<Result<(), Rejection>>, Vec<Action>) {
        let checked = envelopes
            .into_iter()
            .map(|e| self.verdicts.check(&self.config, e, now.wall))
            .collect();
        self.submit_checked(checked, now)
    }

    /// As [`Node::submit`], for envelopes already checked by [`batch::Verdicts::check`] (under any
    /// configuration: one checked under another sequence than the current is checked again).
    pub fn submit_checked(
        &mut self,
        envelopes: Vec<batch::Checked>,
        now: Now,
    ) -> (Vec<Result<(), Rejection>>, Vec<Action>) {
        let mut actions = Vec::new();
        if let Some(reason) = &self.halted {
            let r = Rejection {
                status: medledger_proto::common::Status::ServiceUnavailable,
                reason: format!("orderer halted: {reason}"),
            };
            return (envelopes.iter().map(|_| Err(r.clone())).collect(), actions);
        }
        let mut results = Vec::with_capacity(envelopes.len());
        let mut forward = Vec::new();
        for e in envelopes {
            match self.admit_to_pool(e, now) {
                Ok(Some(bytes)) => {
                    forward.push(bytes);
                    results.push(Ok(()));
                }
                Ok(None) => results.push(Ok(())),
                Err(r) => results.push(Err(r)),
            }
        }
        if !forward.is_empty() {
            actions.push(Action::Send {
                to: Target::All,
                msg: pb::ClusterMessage {
                    message: Some(M::Forward(pb::ForwardEnvelopes { envelopes: forward })),
                },
            });
            self.kick(now, &mut actions);
        }
        (results, actions)
    }

    /// Envelopes another orderer forwarded (a `ForwardEnvelopes` message), already checked
    /// by [`batch::Verdicts::check`]. Those admissible are pooled; none is forwarded again.
    pub fn forwarded(
        &mut self,
        from: u32,
        envelopes: Vec<batch::Checked>,
        now: Now,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.halted.is_some() || from == self.me || self.config.consenters().get(from).is_none()
        {
            return actions;
        }
        let mut added = false;
        for e in envelopes {
            added |= matches!(self.admit_to_pool(e, now), Ok(Some(_)));
        }
        if added {
            self.kick(now, &mut actions);
        }
        actions
    }

    /// Adds a checked envelope to the pool: `Ok(Some(bytes))` if added (a copy of its bytes,
    /// to forward), `Ok(None)` if exactly this envelope is pending or ordered already
    /// (Broadcast is idempotent: a client — or a gateway sending to every orderer — that
    /// repeats an envelope another orderer forwarded here gets SUCCESS, and the envelope is
    /// ordered once).
    fn admit_to_pool(&mut self, e: batch::Checked, now: Now) -> Result<Option<Vec<u8>>, Rejection> {
        let admitted = match e.result {
            Ok(a) if e.sequence == self.config.sequence() => a,
            // Checked under a configuration that changed since: check again (its signatures
            // verified: they do not depend on the configuration), from the identities it
            // was judged on.
            Ok(a) => batch::Rejudgement::new(&self.config, now.wall).judge(&e.bytes, &a)?,
            Err(r) => return Err(r),
        };
        if self.pool.contains_hash(&admitted.hash)
            || self.chain.envelope_hashes.contains(&admitted.hash)
        {
            return Ok(None);
        }
        if self.chain.tx_ids.contains(&admitted.tx_id) || self.pool.contains_tx(&admitted.tx_id) {
            return Err(Rejection {
                status: medledger_proto::common::Status::BadRequest,
                reason: format!("duplicate tx_id {}", admitted.tx_id),
            });
        }
        self.pool.room(&admitted, e.bytes.len())?;
        let copy = e.bytes.clone();
        Ok(self
            .pool
            .insert(e.bytes, admitted, now.mono)
            .then_some(copy))
    }

    /// A message from consenter `from` (authenticated by the transport).
    pub fn message(&mut self, from: u32, msg: pb::ClusterMessage, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.halted.is_some() || from == self.me || self.config.consenters().get(from).is_none()
        {
            return actions;
        }
        let Some(m) = msg.message.as_ref() else {
            return actions;
        };
        match m {
            M::Forward(f) => {
                let checked = f
                    .envelopes
                    .iter()
                    .map(|e| self.verdicts.check(&self.config, e.clone(), now.wall))
                    .collect();
                return self.forwarded(from, checked, now);
            }
            M::Status(s) => self.on_status(from, s.next_height, &mut actions),
            M::SyncRequest(r) => {
                if r.from < self.chain.next_number {
                    self.on_sync_request(from, r.from, now, &mut actions);
                }
            }
            M::SyncResponse(r) => self.on_sync_response(from, &r.blocks, now, &mut actions),
            M::Part(p) => self.on_part(from, p, now, &mut actions),
            M::Vote(_) | M::Proposal(_) | M::PolkaCertificate(_) | M::RoundCertificate(_) => {
                let Some(h) = consensus_height(m) else {
                    return actions;
                };
                if !self.before_consensus_input(from, h, now, &mut actions) {
                    return actions;
                }
                if h > self.chain.next_number && !self.future_admits(from, h, &msg) {
                    return actions;
                }
                let out = self.engine.message(from, &msg);
                self.apply_result(out, now, &mut actions);
            }
        }
        actions
    }

    /// A timer fired.
    pub fn timer(&mut self, timer: TimerId, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.halted.is_some() {
            return actions;
        }
        match timer {
            TimerId::Consensus(t) => {
                if self.phase == Phase::Running {
                    let out = self.engine.timeout(t);
                    self.apply_result(out, now, &mut actions);
                }
            }
            TimerId::BatchCut { .. } => {
                self.batch_timer = None;
                self.try_propose(now, &mut actions);
            }
            TimerId::ServeSync(peer) => {
                let next = self.chain.next_number;
                if let Some(e) = self.sync_serve.get_mut(&peer)
                    && let Some(from) = e.pending.take()
                    && from < next
                {
                    e.last = Some(now.mono);
                    actions.push(Action::ServeSync { to: peer, from });
                }
            }
            TimerId::SyncRetry => {
                if let Some(peer) = self.syncing.take() {
                    self.sync_attempts += 1;
                    if self.sync_attempts >= self.config.consenters().len().saturating_sub(1) {
                        // Nobody had the blocks we were told about: stop chasing them (a
                        // Byzantine orderer may have claimed a height that does not exist).
                        tracing::warn!(target: "orderer::sync", consenter = self.me, "no orderer served the missing blocks; giving up for now");
                        self.sync_attempts = 0;
                        self.max_seen_height = self.chain.next_number.saturating_sub(1);
                        self.kick(now, &mut actions);
                    } else {
                        let next = self.next_peer(peer);
                        self.request_sync(next, &mut actions);
                    }
                }
            }
        }
        actions
    }

    // ----- internals -----

    /// Handles the height of an incoming consensus message; false if it must not reach the
    /// engine.
    fn before_consensus_input(
        &mut self,
        from: u32,
        height: u64,
        now: Now,
        actions: &mut Vec<Action>,
    ) -> bool {
        let next = self.chain.next_number;
        if height < next {
            // The sender is behind: tell it where we are.
            self.tell_status(from, actions);
            return false;
        }
        self.max_seen_height = self.max_seen_height.max(height);
        if height > next {
            // We missed at least one decision: fetch it. The message is buffered by the core.
            if self.syncing.is_none() {
                self.request_sync(from, actions);
            }
            return height <= next + 1;
        }
        if self.phase == Phase::Idle {
            self.start_height(now, actions);
        }
        true
    }

    /// Whether a consensus message for a later height from `from` may reach the engine
    /// (which holds such messages until the height starts): not one it sent before, and
    /// within [`MAX_FUTURE_MESSAGES_PER_SENDER`] and [`MAX_FUTURE_BYTES_PER_SENDER`] for that
    /// height, so one orderer cannot crowd out the others' messages or fill memory.
    fn future_admits(&mut self, from: u32, height: u64, msg: &pb::ClusterMessage) -> bool {
        let b = self.future.entry(from).or_default();
        if b.height != height {
            *b = FutureBudget {
                height,
                ..FutureBudget::default()
            };
        }
        let bytes = msg.encode_to_vec();
        if b.seen.len() >= MAX_FUTURE_MESSAGES_PER_SENDER
            || b.bytes + bytes.len() > MAX_FUTURE_BYTES_PER_SENDER
        {
            return false;
        }
        if !b.seen.insert(batch::envelope_hash(&bytes)) {
            return false;
        }
        b.bytes += bytes.len();
        true
    }

    /// A request for our blocks from number `from` on: served at once if the last response to
    /// this orderer is at least [`NodeConfig::sync_serve_interval`] old, else when it is
    /// (one pending request per orderer, the latest).
    fn on_sync_request(&mut self, peer: u32, from: u64, now: Now, actions: &mut Vec<Action>) {
        let interval = self.cfg.sync_serve_interval;
        let e = self.sync_serve.entry(peer).or_default();
        let since = e.last.map(|l| now.mono.saturating_duration_since(l));
        if e.pending.is_none() && since.is_none_or(|s| s >= interval) {
            e.last = Some(now.mono);
            actions.push(Action::ServeSync { to: peer, from });
            return;
        }
        if e.pending.replace(from).is_none() {
            let wait = interval.saturating_sub(since.unwrap_or_default());
            actions.push(Action::SetTimer(TimerId::ServeSync(peer), wait));
        }
    }

    fn on_status(&mut self, from: u32, their_next: u64, actions: &mut Vec<Action>) {
        let next = self.chain.next_number;
        if their_next > next {
            self.max_seen_height = self.max_seen_height.max(their_next - 1);
            if self.syncing.is_none() {
                self.request_sync(from, actions);
            }
        } else if their_next < next {
            self.tell_status(from, actions);
        }
    }

    /// Sends our chain height to an orderer that is behind: on the first of its messages at
    /// each of our heights, and again every [`STATUS_REPEAT`] messages (in case it was lost).
    fn tell_status(&mut self, to: u32, actions: &mut Vec<Action>) {
        let next = self.chain.next_number;
        let entry = self.status_told.entry(to).or_insert((0, 0));
        if entry.0 != next {
            *entry = (next, 0);
        } else {
            entry.1 += 1;
            if !entry.1.is_multiple_of(STATUS_REPEAT) {
                return;
            }
        }
        actions.push(Action::Send {
            to: Target::One(to),
            msg: status(next),
        });
    }

    fn request_sync(&mut self, peer: u32, actions: &mut Vec<Action>) {
        self.syncing = Some(peer);
        tracing::debug!(target: "orderer::sync", consenter = self.me, peer, from = self.chain.next_number, "requesting blocks");
        actions.push(Action::Send {
            to: Target::One(peer),
            msg: pb::ClusterMessage {
                message: Some(M::SyncRequest(pb::SyncRequest {
                    from: self.chain.next_number,
                })),
            },
        });
        actions.push(Action::SetTimer(TimerId::SyncRetry, self.cfg.sync_retry));
    }

    fn next_peer(&self, after: u32) -> u32 {
        let ids: Vec<u32> = self
            .config
            .consenters()
            .iter()
            .map(|c| c.id)
            .filter(|id| *id != self.me)
            .collect();
        let pos = ids.iter().position(|i| *i == after).map_or(0, |p| p + 1);
        ids.get(pos % ids.len().max(1)).copied().unwrap_or(after)
    }

    fn on_sync_response(
        &mut self,
        from: u32,
        blocks: &[Block],
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        let mut appended = 0;
        for b in blocks {
            let number = blk::number(b);
            if number != self.chain.next_number {
                continue;
            }
            let verified = bft::verify_block_signatures(
                b,
                self.config.channel_id().as_ref(),
                self.config.consenters(),
            );
            let chained = b
                .header
                .as_ref()
                .is_some_and(|h| h.previous_hash == self.chain.last_hash);
            match verified {
                Ok(v) if chained => {
                    let tx_ids = match self.chain.append(b) {
                        Ok(tx_ids) => tx_ids,
                        Err(e) => {
                            tracing::warn!(target: "orderer::sync", from, number, error = %e, "synced block refused");
                            break;
                        }
                    };
                    self.pool.remove_txs(tx_ids.iter().map(String::as_str));
                    self.after_append(b, now);
                    self.stats.blocks_synced += 1;
                    appended += 1;
                    actions.push(Action::Commit {
                        block: Box::new(b.clone()),
                        round: v.round,
                        latency: None,
                    });
                }
                other => {
                    tracing::warn!(target: "orderer::sync", from, number, chained, result = ?other.err(), "synced block failed verification");
                    break;
                }
            }
        }
        if appended == 0 {
            return;
        }
        tracing::info!(target: "orderer::sync", consenter = self.me, from, appended, next = self.chain.next_number, "synced blocks");
        self.syncing = None;
        self.sync_attempts = 0;
        actions.push(Action::CancelTimer(TimerId::SyncRetry));
        // Leave whatever height we were in; join at the new chain height.
        self.reset_height_state();
        self.phase = Phase::Idle;
        actions.push(Action::CancelConsensusTimers);
        if self.max_seen_height > self.chain.next_number {
            // Still behind: keep pulling from the same orderer.
            self.request_sync(from, actions);
        } else if !self.pool.is_empty() || self.max_seen_height >= self.chain.next_number {
            self.start_height(now, actions);
        }
    }

    fn on_part(&mut self, from: u32, p: &pb::ProposalPart, now: Now, actions: &mut Vec<Action>) {
        let Ok(round) = u32::try_from(p.round) else {
            return;
        };
        // Parts of (height, round) come from that round's proposer only.
        if p.proposer != from || self.engine.proposer(p.height, round) != Some(from) {
            return;
        }
        if !self.before_consensus_input(from, p.height, now, actions) {
            return;
        }
        if p.height > self.chain.next_number + 1 {
            return;
        }
        // As the core does for proposals: nothing more than 10 rounds ahead (bounds memory).
        let current_round = if p.height == self.chain.next_number {
            self.engine.round().max(0)
        } else {
            0
        };
        if i64::from(round) > current_round + MAX_ROUNDS_AHEAD {
            return;
        }
        let limit = self
            .config
            .batch()
            .preferred_max_bytes
            .max(self.config.batch().absolute_max_bytes) as usize
            * 2;
        let key = (p.height, round, from);
        if !self.assemblies.contains_key(&key) {
            // One sender's proposals in assembly at once: a few, within the size limit.
            let (count, bytes) = self
                .assemblies
                .iter()
                .filter(|((_, _, f), _)| *f == from)
                .fold((0, 0), |(c, b), (_, a)| (c + 1, b + a.bytes));
            if count >= MAX_ASSEMBLIES_PER_SENDER || bytes > limit {
                return;
            }
        }
        let a = self.assemblies.entry(key).or_default();
        use pb::proposal_part::Part;
        match &p.part {
            Some(Part::Init(i)) if p.sequence == 0 => a.init = Some(i.clone()),
            Some(Part::Data(d)) if p.sequence > 0 => {
                a.bytes += d.envelopes.iter().map(Vec::len).sum::<usize>();
                if let Some(old) = a.data.insert(p.sequence, d.envelopes.clone()) {
                    // A part sent again replaces itself.
                    a.bytes -= old.iter().map(Vec::len).sum::<usize>();
                }
            }
            Some(Part::Fin(f)) if p.sequence > 0 && f.total_parts == p.sequence + 1 => {
                a.total = Some(f.total_parts)
            }
            _ => return,
        }
        if a.bytes > limit {
            tracing::warn!(target: "orderer::consensus", from, height = p.height, round, "proposal parts exceed the size limit, dropped");
            self.assemblies.remove(&key);
            return;
        }
        let complete = match (&a.init, a.total) {
            (Some(_), Some(total)) => a.data.len() as u32 + 2 == total,
            _ => false,
        };
        if !complete {
            return;
        }
        let Some(a) = self.assemblies.remove(&key) else {
            return;
        };
        let Some(init) = a.init else { return };
        let envelopes: Vec<Vec<u8>> = a.data.into_values().flatten().collect();
        let header = match crate::consensus::header_from_wire(init.header.as_ref()) {
            Some(h) if h.number == p.height => h,
            _ => return,
        };
        let body = Arc::new(envelopes);
        if p.height == self.chain.next_number && self.phase == Phase::Running {
            self.feed_value(round, init.pol_round, from, header, body, now, actions);
        } else {
            // Kept for when the height starts: the first value of each (height, round) of
            // this proposer, a few per proposer, within the size limit.
            let size: usize = body.iter().map(Vec::len).sum();
            let (count, bytes, seen) = self.early.iter().filter(|e| e.proposer == from).fold(
                (0, 0, false),
                |(c, b, seen), e| {
                    let same = e.header.number == p.height && e.round == round;
                    (c + 1, b + e.bytes(), seen || same)
                },
            );
            if seen || count >= MAX_EARLY_VALUES_PER_SENDER || bytes + size > limit {
                return;
            }
            self.early.push(EarlyValue {
                round,
                pol_round: init.pol_round,
                proposer: from,
                header,
                body,
            });
        }
    }

    /// Validates an assembled value for the current height and hands it to consensus.
    #[allow(clippy::too_many_arguments)]
    fn feed_value(
        &mut self,
        round: u32,
        pol_round: i64,
        proposer: u32,
        header: BatchHeader,
        body: Envelopes,
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        let id = header.hash();
        let fresh = pol_round < 0;
        let verdict = if self.bodies.contains_key(&id) {
            // Validated before (an earlier round, the WAL): only its time may have aged.
            batch::check_ordering_time(
                header.number,
                header.time_ms,
                self.chain.last_time_ms,
                now.wall,
                fresh,
            )
        } else {
            let view = ChainView {
                next_number: self.chain.next_number,
                last_hash: self.chain.last_hash,
                last_time_ms: self.chain.last_time_ms,
                ordered_tx_ids: &self.chain.tx_ids,
            };
            let pool = &self.pool;
            batch::validate(
                &self.config,
                &view,
                &batch::Candidate {
                    number: header.number,
                    previous_hash: &header.previous_hash,
                    data_hash: &header.data_hash,
                    time_ms: header.time_ms,
                    fresh,
                    envelopes: &body,
                },
                &|h| pool.admitted(h).cloned(),
                &self.verdicts,
                now.wall,
            )
            .map(|_| ())
        };
        let valid = match verdict {
            Ok(()) => {
                self.bodies.insert(id, (header.clone(), body.clone()));
                true
            }
            Err(e) => {
                self.stats.invalid_batches += 1;
                tracing::warn!(target: "orderer::consensus", consenter = self.me, proposer, height = header.number, round, error = %e, "invalid batch proposed");
                false
            }
        };
        let h = header.number;
        let out =
            self.engine
                .proposed_value(h, round, pol_round, proposer, header, Some(body), valid);
        self.apply_result(out, now, actions);
    }

    fn kick(&mut self, now: Now, actions: &mut Vec<Action>) {
        match self.phase {
            // Even while syncing: if the claim that others are ahead was false, this height
            // is the one to decide; if it was true, starting it costs nothing.
            Phase::Idle => self.start_height(now, actions),
            Phase::Running => self.try_propose(now, actions),
        }
    }

    fn reset_height_state(&mut self) {
        let next = self.chain.next_number;
        self.awaiting_value = None;
        self.batch_timer = None;
        self.bodies.clear();
        self.own_recorded.clear();
        self.assemblies.retain(|(h, _, _), _| *h >= next);
        self.early.retain(|e| e.header.number >= next);
    }

    fn start_height(&mut self, now: Now, actions: &mut Vec<Action>) {
        let height = self.chain.next_number;
        self.phase = Phase::Running;
        self.height_started = Some(now.mono);
        actions.push(Action::WalStart { height });
        let out = self.engine.start_height(height);
        self.apply_result(out, now, actions);
        let early = std::mem::take(&mut self.early);
        for e in early {
            if e.header.number == height && self.phase == Phase::Running {
                self.feed_value(
                    e.round,
                    e.pol_round,
                    e.proposer,
                    e.header,
                    e.body,
                    now,
                    actions,
                );
            } else if e.header.number > height {
                self.early.push(e);
            }
        }
    }

    fn try_propose(&mut self, now: Now, actions: &mut Vec<Action>) {
        let Some((height, round)) = self.awaiting_value else {
            return;
        };
        if self.phase != Phase::Running
            || self.engine.height() != height
            || self.engine.round() != i64::from(round)
        {
            self.awaiting_value = None;
            return;
        }
        let batch_cfg = *self.config.batch();
        match self.pool.time_to_cut(&batch_cfg, now.mono) {
            None => {}
            Some(d) if !d.is_zero() => {
                let t = TimerId::BatchCut { height, round };
                if self.batch_timer != Some(t) {
                    self.batch_timer = Some(t);
                    actions.push(Action::SetTimer(t, d));
                }
            }
            Some(_) => {
                // The ordering time: this orderer's clock, never before the last block's.
                let time_ms = bft::time_ms(now.wall).max(self.chain.last_time_ms);
                let Some(envelopes) = self.cut_at(time_ms) else {
                    return;
                };
                let data_hash = blk::entries_hash(&envelopes);
                let header = BatchHeader {
                    number: height,
                    previous_hash: self.chain.last_hash,
                    data_hash,
                    time_ms,
                };
                self.awaiting_value = None;
                if let Some(t) = self.batch_timer.take() {
                    actions.push(Action::CancelTimer(t));
                }
                self.propose(height, round, header, Arc::new(envelopes), now, actions);
            }
        }
    }

    /// The envelopes of the next block ordered at `time_ms` (ms since the Unix epoch), every
    /// one admissible then: pending envelopes that are not — their creator's certificate
    /// expired since they were admitted, say — are dropped from the pool (every orderer
    /// judges a proposal at its ordering time, [`batch::validate`]) and the block cut again.
    /// `None` if nothing admissible is pending.
    fn cut_at(&mut self, time_ms: u64) -> Option<Vec<Vec<u8>>> {
        let at = std::time::SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(time_ms))?;
        let batch_cfg = *self.config.batch();
        loop {
            let cut = self.pool.cut_admitted(&batch_cfg);
            if cut.is_empty() {
                return None;
            }
            // An admission that holds at `at` (its identities valid then) needs no second
            // look; any other is judged again, without its signatures.
            let mut stale = Vec::new();
            for (e, a) in &cut {
                if a.holds_at(at) {
                    continue;
                }
                self.stats.rejudged_at_cut += 1;
                if batch::readmit(&self.config, e, at).is_err() {
                    stale.push(a.tx_id.clone());
                }
            }
            if stale.is_empty() {
                return Some(cut.into_iter().map(|(e, _)| e.to_vec()).collect());
            }
            self.stats.dropped_at_cut += stale.len() as u64;
            tracing::info!(target: "orderer::consensus", consenter = self.me, dropped = stale.len(), "pending envelopes no longer admissible at the ordering time dropped");
            self.pool.remove_txs(stale.iter().map(String::as_str));
        }
    }

    fn propose(
        &mut self,
        height: u64,
        round: u32,
        header: BatchHeader,
        body: Envelopes,
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        let id = header.hash();
        self.bodies.insert(id, (header.clone(), body.clone()));
        self.stats.proposals += 1;
        tracing::debug!(target: "orderer::consensus", consenter = self.me, height, round, envelopes = body.len(), "proposing");
        self.stream_parts(height, round, -1, &header, &body, actions);
        let out = self.engine.propose(height, round, header, body);
        self.apply_result(out, now, actions);
    }

    fn stream_parts(
        &self,
        height: u64,
        round: u32,
        pol_round: i64,
        header: &BatchHeader,
        body: &[Vec<u8>],
        actions: &mut Vec<Action>,
    ) {
        let part = |sequence: u32, part: pb::proposal_part::Part| Action::Send {
            to: Target::All,
            msg: pb::ClusterMessage {
                message: Some(M::Part(pb::ProposalPart {
                    height,
                    round: i64::from(round),
                    proposer: self.me,
                    sequence,
                    part: Some(part),
                })),
            },
        };
        use pb::proposal_part::Part;
        actions.push(part(
            0,
            Part::Init(pb::PartInit {
                pol_round,
                header: Some(crate::consensus::header_to_wire(header)),
            }),
        ));
        let mut seq = 1u32;
        for chunk in body.chunks(self.cfg.envelopes_per_part.max(1)) {
            actions.push(part(
                seq,
                Part::Data(pb::PartData {
                    envelopes: chunk.to_vec(),
                }),
            ));
            seq += 1;
        }
        actions.push(part(
            seq,
            Part::Fin(pb::PartFin {
                total_parts: seq + 1,
            }),
        ));
    }

    fn apply_result(
        &mut self,
        out: Result<Vec<Output>, EngineError>,
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        match out {
            Ok(out) => self.apply(out, now, actions),
            Err(e) => {
                tracing::error!(target: "orderer::consensus", consenter = self.me, error = %e, "consensus halted");
                self.halted = Some(e.to_string());
                actions.push(Action::CancelConsensusTimers);
            }
        }
    }

    fn apply(&mut self, outputs: Vec<Output>, now: Now, actions: &mut Vec<Action>) {
        for o in outputs {
            match o {
                Output::Wal(e) => actions.push(Action::Wal(e)),
                Output::Broadcast(m) => actions.push(Action::Send {
                    to: Target::All,
                    msg: m,
                }),
                Output::SetTimer(t, d) => actions.push(Action::SetTimer(TimerId::Consensus(t), d)),
                Output::CancelTimer(t) => actions.push(Action::CancelTimer(TimerId::Consensus(t))),
                Output::CancelAllTimers => actions.push(Action::CancelConsensusTimers),
                Output::RoundStarted { height, round, .. } => {
                    self.awaiting_value = None;
                    if let Some(t) = self.batch_timer.take() {
                        actions.push(Action::CancelTimer(t));
                    }
                    self.assemblies
                        .retain(|(h, r, _), _| *h > height || (*h == height && *r >= round));
                }
                Output::GetValue { height, round } => {
                    if let Some(id) = self.own_recorded.get(&(height, round)).copied() {
                        // We proposed at (height, round) before a restart: propose the same.
                        if let Some((header, body)) = self.bodies.get(&id).cloned() {
                            self.propose(height, round, header, body, now, actions);
                        }
                        continue;
                    }
                    self.awaiting_value = Some((height, round));
                    self.try_propose(now, actions);
                }
                Output::Restream {
                    height,
                    round,
                    pol_round,
                    value_id,
                } => {
                    if let Some((header, body)) = self.bodies.get(&value_id).cloned() {
                        self.stream_parts(height, round, pol_round, &header, &body, actions);
                    }
                }
                Output::Decided {
                    height,
                    round,
                    value_id,
                    signatures,
                } => self.on_decided(height, round, value_id, &signatures, now, actions),
                Output::Finalized { height } => {
                    if height + 1 == self.chain.next_number {
                        self.reset_height_state();
                        self.phase = Phase::Idle;
                        if !self.pool.is_empty() || self.max_seen_height >= self.chain.next_number {
                            self.start_height(now, actions);
                        }
                    }
                }
            }
        }
    }

    fn on_decided(
        &mut self,
        height: u64,
        round: i64,
        value_id: [u8; 32],
        signatures: &[bft::CommitSignature],
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        let Some((header, body)) = self.bodies.get(&value_id).cloned() else {
            // Decided without the envelopes (we never assembled them): fetch the block.
            tracing::warn!(target: "orderer::consensus", consenter = self.me, height, "decided a block whose envelopes are missing; syncing it");
            self.max_seen_height = self.max_seen_height.max(height);
            let peer = signatures
                .iter()
                .map(|s| s.consenter)
                .find(|c| *c != self.me)
                .unwrap_or_else(|| self.next_peer(self.me));
            self.request_sync(peer, actions);
            return;
        };
        if height != self.chain.next_number || header.previous_hash != self.chain.last_hash {
            return;
        }
        // Its data hash was checked against these envelopes when it was proposed or
        // validated (`batch::validate`), and is what the consenters signed.
        let mut block = blk::new_block_with_data_hash(
            height,
            &header.previous_hash,
            body.to_vec(),
            header.data_hash,
        );
        // A config block points at itself, as Fabric's.
        let last_config = if medledger_channel::update::is_config_block(&block) {
            height
        } else {
            self.chain.last_config
        };
        blk::set_metadata_bytes(
            &mut block,
            BlockMetadataIndex::Signatures,
            bft::signatures_metadata(round, header.time_ms, signatures),
        );
        blk::set_metadata_bytes(
            &mut block,
            BlockMetadataIndex::LastConfig,
            Metadata {
                value: LastConfig { index: last_config }.encode_to_vec(),
                signatures: Vec::new(),
            }
            .encode_to_vec(),
        );
        let tx_ids = match self.chain.append(&block) {
            Ok(tx_ids) => tx_ids,
            Err(e) => {
                tracing::error!(target: "orderer::consensus", height, error = %e, "decided block does not extend the chain");
                return;
            }
        };
        self.pool.remove_txs(tx_ids.iter().map(String::as_str));
        self.after_append(&block, now);
        self.stats.blocks_decided += 1;
        self.stats.envelopes_ordered += body.len() as u64;
        self.stats.rounds_total += u64::try_from(round).unwrap_or(0) + 1;
        let latency = self
            .height_started
            .map(|s| now.mono.saturating_duration_since(s));
        tracing::debug!(target: "orderer::consensus", consenter = self.me, height, round, envelopes = body.len(), "decided");
        actions.push(Action::Commit {
            block: Box::new(block),
            round,
            latency,
        });
    }
}

/// Values assembled for a later height kept per proposer (one per round it proposes within
/// the look-ahead, the first value of each round only).
pub const MAX_EARLY_VALUES_PER_SENDER: usize = 4;
/// Proposals assembled from parts at once per proposer.
pub const MAX_ASSEMBLIES_PER_SENDER: usize = 4;
/// Consensus messages (votes, proposals, certificates) for the next height passed on to the
/// engine per sender, distinct ones only.
pub const MAX_FUTURE_MESSAGES_PER_SENDER: usize = 64;
/// Bytes of those messages per sender.
pub const MAX_FUTURE_BYTES_PER_SENDER: usize = 256 * 1024;

/// Admission verdicts remembered ([`batch::Verdicts`]): more than the pool holds at the
/// default limits plus the blocks in flight, so every copy of an envelope finds its verdict.
const VERDICTS_REMEMBERED: usize = 16 * 1024;

/// Proposal parts for rounds further ahead of ours than this are dropped.
const MAX_ROUNDS_AHEAD: i64 = 10;
/// An orderer that keeps sending messages for old heights is told our height again after
/// this many of them.
const STATUS_REPEAT: u32 = 32;

fn status(next_height: u64) -> pb::ClusterMessage {
    pb::ClusterMessage {
        message: Some(M::Status(pb::Status { next_height })),
    }
}

/// Height of a consensus message (vote, proposal, certificate).
fn consensus_height(m: &M) -> Option<u64> {
    Some(match m {
        M::Vote(v) => v.vote.as_ref()?.height,
        M::Proposal(p) => p.proposal.as_ref()?.height,
        M::PolkaCertificate(c) => c.height,
        M::RoundCertificate(c) => c.height,
        _ => return None,
    })
}
