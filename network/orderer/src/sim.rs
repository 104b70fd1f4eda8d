//! A deterministic in-process cluster of orderers: real `Node`s (real consensus, real
//! signatures, real validation) over a simulated network with virtual time that can drop,
//! delay, reorder and partition messages, crash and restart nodes (with their durable WAL and
//! blocks), and make nodes Byzantine. Randomness comes from one seed: [`Sim::new`] reads the
//! `SEED` env var (to reproduce a test run; it prints the seed it used),
//! [`Sim::with_channel`] takes it as an argument (experiments).
//!
//! Time is virtual, in ms since the start ([`Sim::time`]); [`Sim::run_until`] advances it.
//! Wall-clock time (block ordering times, certificate validity) is the host's, unless a test
//! sets the orderers' clock ([`Sim::set_wall_clock`]): from then on it advances with virtual
//! time.
//!
//! A simulator, not a service: its inputs are its own generated messages, so a broken
//! invariant (a node committing out of order, a forged message that does not decode) is a
//! bug in the simulator and panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::batch::Rejection;
use crate::consensus::TimeoutConfig;
use crate::node::{Action, Chain, Node, NodeConfig, Now, Target, TimerId};
use medledger_channel::ChannelConfig;
use medledger_channel::bft;
use medledger_channel::block as blk;
use medledger_channel::testing::TestChannel;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_proto::common::{Block, BlockData, Envelope, Status};
use medledger_proto::medledger::orderer as pb;
use pb::cluster_message::Message as M;
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The channel id of the simulated cluster.
pub const CHANNEL: &str = "ehr";

/// How a Byzantine orderer misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Byzantine {
    /// Sends one proposal (and its parts) to some orderers and a different valid one to the
    /// others, in every round it proposes.
    Equivocate,
    /// Withholds: sends nothing at all (no proposal, vote, forward or block), while it keeps
    /// accepting envelopes from clients (a black hole for what is submitted only to it).
    Silent,
    /// Its proposals contain an envelope with a broken signature.
    BadSignature,
    /// Its proposals contain one envelope twice.
    DuplicateTxId,
    /// Its proposals do not chain to the previous block.
    WrongPreviousHash,
    /// Never orders envelopes of this MSP's creators (drops them on arrival).
    Censor(String),
    /// Signs its votes with garbage.
    GarbageVotes,
    /// Claims to be 1,000 blocks ahead whenever it sends anything (and serves no such block).
    LiesAboutHeight,
    /// Whenever it sends anything, also sends signed proposals with their parts for the next
    /// height in every round it would propose (a fresh value each time, and each one ten
    /// times over), and signed votes for the next height at many rounds.
    SpamEarlyProposals,
    /// Whenever it sends anything, also asks every other orderer for all blocks from 0
    /// (`SyncRequest { from: 0 }`), twenty times over; and it reads slowly: every message
    /// to it takes two seconds.
    SyncFlood,
}

/// Network behaviour.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Probability a message is lost.
    pub drop: f64,
    /// Delay range, ms (uniform): different delays reorder messages.
    pub delay_ms: (u64, u64),
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            drop: 0.0,
            delay_ms: (1, 10),
        }
    }
}

/// What survives a crash: the flushed WAL and the stored blocks.
#[derive(Default)]
struct Disk {
    wal: BTreeMap<u64, Vec<pb::WalEntry>>,
    wal_height: u64,
    unflushed: Vec<pb::WalEntry>,
    blocks: Vec<Block>,
}

enum Event {
    Deliver {
        from: u32,
        to: u32,
        msg: pb::ClusterMessage,
    },
    Timer {
        node: u32,
        id: TimerId,
        generation: u64,
    },
}

/// The cluster: orderers `1..=n`, their disks, the message queue and virtual time.
pub struct Sim {
    /// The channel's organizations and CAs (consenter identities moved to `identities`).
    pub ch: TestChannel,
    /// The channel configuration the orderers run with (the given batch parameters).
    pub config: Arc<ChannelConfig>,
    /// Consenter identities, index `id - 1`.
    pub identities: Vec<Arc<SigningIdentity>>,
    /// A client of the first application organization.
    pub client: SigningIdentity,
    /// A client of the second application organization.
    pub client2: SigningIdentity,
    /// The seed of every random choice (delays, drops, forged values).
    pub seed: u64,
    /// Message loss and delays.
    pub net: NetConfig,
    nodes: BTreeMap<u32, Node>,
    disks: BTreeMap<u32, Disk>,
    timers: HashMap<(u32, TimerId), u64>,
    generation: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    seq: u64,
    /// Virtual time, ms since the start.
    pub time: u64,
    base: Instant,
    rng: StdRng,
    blocked: HashSet<(u32, u32)>,
    /// Byzantine orderers and how they misbehave.
    pub byzantine: HashMap<u32, Byzantine>,
    /// Consensus timeouts of every node (applied at start).
    pub timeouts: TimeoutConfig,
    /// Every vote sent, by sender: (voter, height, round, type) → value ids seen.
    pub votes_sent: HashMap<(u32, u64, i64, i32), HashSet<Vec<u8>>>,
    /// Messages delivered to a running node.
    pub delivered: u64,
    /// Sync responses served, by (server, requester): (responses, blocks).
    pub sync_served: HashMap<(u32, u32), (u64, u64)>,
    /// The orderers' wall clock: `None` the host's; `Some((t, at))` is `t` at virtual time
    /// `at` ([`Sim::set_wall_clock`]).
    clock: Option<(SystemTime, u64)>,
}

/// The seed of a test run: the `SEED` env var if it parses, else the clock.
pub fn env_seed() -> u64 {
    std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}

impl Sim {
    /// `n` orderers (ids 1..=n) on a channel with two application orgs and the given batch
    /// parameters, seeded from the `SEED` env var (else the clock; printed).
    pub fn new(n: u32, batch: Option<pb_batch::BatchConfig>) -> Self {
        let seed = env_seed();
        println!("SEED={seed}");
        Self::with_channel(TestChannel::new(CHANNEL, 2, n), batch, seed)
    }

    /// The orderers of `ch` (its consenters, ids 1..=n) on channel [`CHANNEL`] with the given
    /// batch parameters (`None`: the defaults) and `seed`. `ch` needs at least two
    /// application organizations (for [`Sim::client`] and [`Sim::client2`]).
    pub fn with_channel(
        mut ch: TestChannel,
        batch: Option<pb_batch::BatchConfig>,
        seed: u64,
    ) -> Self {
        let n = ch.consenters.len() as u32;
        let mut proto = ch.config.to_proto().clone();
        proto.batch = batch;
        let config = Arc::new(ChannelConfig::from_proto(proto).unwrap());
        let client = ch.orgs[0].identity("client1", NodeOu::Client, &[]);
        let client2 = ch.orgs[1].identity("client2", NodeOu::Client, &[]);
        let identities: Vec<Arc<SigningIdentity>> = std::mem::take(&mut ch.consenters)
            .into_iter()
            .map(|(_, i)| Arc::new(i))
            .collect();
        let genesis = config.config_block(0, &[], SystemTime::now());
        let mut disks = BTreeMap::new();
        for id in 1..=n {
            disks.insert(
                id,
                Disk {
                    blocks: vec![genesis.clone()],
                    ..Disk::default()
                },
            );
        }
        let timeouts = TimeoutConfig {
            propose: Duration::from_millis(1000),
            prevote: Duration::from_millis(300),
            precommit: Duration::from_millis(300),
            delta: Duration::from_millis(200),
            rebroadcast: Duration::from_millis(1500),
            max: Duration::from_secs(10),
        };
        let mut sim = Sim {
            ch,
            config,
            identities,
            client,
            client2,
            seed,
            net: NetConfig::default(),
            nodes: BTreeMap::new(),
            disks,
            timers: HashMap::new(),
            generation: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            time: 0,
            base: Instant::now(),
            rng: StdRng::seed_from_u64(seed),
            blocked: HashSet::new(),
            byzantine: HashMap::new(),
            timeouts,
            votes_sent: HashMap::new(),
            delivered: 0,
            sync_served: HashMap::new(),
            clock: None,
        };
        for id in 1..=n {
            sim.start(id);
        }
        sim
    }

    /// Orderer ids, ascending.
    pub fn ids(&self) -> Vec<u32> {
        self.disks.keys().copied().collect()
    }

    fn now(&self) -> Now {
        Now {
            mono: self.base + Duration::from_millis(self.time),
            wall: self.wall_clock(),
        }
    }

    /// Sets every orderer's wall clock (ordering times, certificate validity) to `t` now;
    /// it then advances with virtual time, as the host's would. It may go back (a test's
    /// choice); an orderer still never orders a block before the last block's time.
    pub fn set_wall_clock(&mut self, t: SystemTime) {
        self.clock = Some((t, self.time));
    }

    /// The orderers' wall clock now: the host's, or the one a test set
    /// ([`Sim::set_wall_clock`]) advanced by the virtual time since.
    pub fn wall_clock(&self) -> SystemTime {
        match self.clock {
            Some((t, at)) => t + Duration::from_millis(self.time.saturating_sub(at)),
            None => SystemTime::now(),
        }
    }

    /// Starts (or restarts) a node from its disk.
    pub fn start(&mut self, id: u32) {
        let disk = self.disks.get_mut(&id).unwrap();
        disk.unflushed.clear();
        let chain = Chain::from_blocks(disk.blocks.iter()).unwrap();
        let wal = disk
            .wal
            .get(&chain.next_number)
            .cloned()
            .unwrap_or_default();
        let mut cfg = NodeConfig::new(id);
        cfg.timeouts = self.timeouts;
        cfg.sync_retry = Duration::from_millis(500);
        let (node, actions) = Node::new(
            cfg,
            self.config.clone(),
            self.identities[id as usize - 1].clone(),
            chain,
            &wal,
            self.now(),
        )
        .unwrap();
        self.nodes.insert(id, node);
        self.run_actions(id, actions);
    }

    /// Crashes a node: its process state and unflushed WAL records are lost.
    pub fn crash(&mut self, id: u32) {
        self.nodes.remove(&id);
        self.timers.retain(|(n, _), _| *n != id);
        if let Some(d) = self.disks.get_mut(&id) {
            d.unflushed.clear();
        }
    }

    /// Whether orderer `id` runs.
    pub fn is_up(&self, id: u32) -> bool {
        self.nodes.contains_key(&id)
    }

    /// Orderer `id`'s node, if it runs.
    pub fn node(&self, id: u32) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// Blocks messages between the two groups (both directions).
    pub fn partition(&mut self, a: &[u32], b: &[u32]) {
        for x in a {
            for y in b {
                self.blocked.insert((*x, *y));
                self.blocked.insert((*y, *x));
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// A fresh signed envelope from `client` (org 1) or `client2` (org 2).
    pub fn envelope(&self, second_client: bool) -> Vec<u8> {
        let c = if second_client {
            &self.client2
        } else {
            &self.client
        };
        crate::client::transaction_envelope(
            c,
            CHANNEL,
            &medledger_channel::testing::rand_nonce(),
            b"rwset".to_vec(),
        )
        .unwrap()
        .encode_to_vec()
    }

    /// Submits serialized envelopes to one node, as a client's Broadcast would; returns how
    /// many it accepted (0 if it is down; a censor drops its victims' envelopes unaccepted).
    /// [`Sim::broadcast`] gives each envelope's answer.
    pub fn submit(&mut self, id: u32, envelopes: Vec<Vec<u8>>) -> usize {
        self.admit(id, envelopes)
            .iter()
            .filter(|r| matches!(r, Some(Ok(()))))
            .count()
    }

    /// Submits serialized envelopes to one node as the orderer's Broadcast service does, and
    /// returns its answer to each, in order, as Broadcast gives it (Fabric's
    /// `BroadcastResponse` status and info): `Ok` for `SUCCESS`, else the node's
    /// [`Rejection`] (`BAD_REQUEST`, `FORBIDDEN`, `REQUEST_ENTITY_TOO_LARGE` with the
    /// admission check's reason; `SERVICE_UNAVAILABLE` if the node halted). A node that is
    /// down answers `SERVICE_UNAVAILABLE` ("orderer is not running", as Broadcast when its
    /// core is gone); a [`Byzantine::Censor`] answers `SUCCESS` to its victims and drops
    /// their envelopes.
    pub fn broadcast(&mut self, id: u32, envelopes: Vec<Vec<u8>>) -> Vec<Result<(), Rejection>> {
        self.admit(id, envelopes)
            .into_iter()
            .map(|r| r.unwrap_or(Ok(())))
            .collect()
    }

    /// Hands envelopes to node `id`: per envelope its node's answer, or `None` if a censor
    /// dropped it unseen.
    fn admit(&mut self, id: u32, envelopes: Vec<Vec<u8>>) -> Vec<Option<Result<(), Rejection>>> {
        let now = self.now();
        let censored = match self.byzantine.get(&id) {
            Some(Byzantine::Censor(msp)) => Some(msp.clone()),
            _ => None,
        };
        let Some(node) = self.nodes.get_mut(&id) else {
            let down = Rejection {
                status: Status::ServiceUnavailable,
                reason: "orderer is not running".into(),
            };
            return envelopes.iter().map(|_| Some(Err(down.clone()))).collect();
        };
        let dropped: Vec<bool> = envelopes
            .iter()
            .map(|e| censored.is_some() && creator_msp(e) == censored)
            .collect();
        let kept = envelopes
            .into_iter()
            .zip(&dropped)
            .filter(|(_, d)| !**d)
            .map(|(e, _)| e)
            .collect();
        let (results, actions) = node.submit(kept, now);
        self.run_actions(id, actions);
        let mut results = results.into_iter();
        dropped
            .into_iter()
            .map(|d| if d { None } else { results.next() })
            .collect()
    }

    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn flush_wal(&mut self, id: u32) {
        let d = self.disks.get_mut(&id).unwrap();
        let h = d.wal_height;
        let recs = std::mem::take(&mut d.unflushed);
        d.wal.entry(h).or_default().extend(recs);
    }

    fn run_actions(&mut self, id: u32, actions: Vec<Action>) {
        let actions = self.byzantine_rewrite(id, actions);
        for a in actions {
            match a {
                Action::WalStart { height } => {
                    self.flush_wal(id);
                    let d = self.disks.get_mut(&id).unwrap();
                    d.wal_height = height;
                    d.wal.retain(|h, _| *h >= height);
                }
                Action::Wal(e) => self.disks.get_mut(&id).unwrap().unflushed.push(e),
                Action::Send { to, msg } => {
                    // Rule 1: the WAL is durable before anything leaves.
                    self.flush_wal(id);
                    self.send(id, to, msg);
                }
                Action::SetTimer(t, d) => {
                    self.generation += 1;
                    let g = self.generation;
                    self.timers.insert((id, t), g);
                    let at = self.time + d.as_millis() as u64;
                    self.schedule(
                        at,
                        Event::Timer {
                            node: id,
                            id: t,
                            generation: g,
                        },
                    );
                }
                Action::CancelTimer(t) => {
                    self.timers.remove(&(id, t));
                }
                Action::CancelConsensusTimers => {
                    self.timers
                        .retain(|(n, t), _| *n != id || !matches!(t, TimerId::Consensus(_)));
                }
                Action::Commit { block, .. } => {
                    let d = self.disks.get_mut(&id).unwrap();
                    assert_eq!(
                        blk::number(&block),
                        d.blocks.len() as u64,
                        "node {id} commits out of order"
                    );
                    d.blocks.push(*block);
                }
                Action::ServeSync { to, from } => {
                    let d = &self.disks[&id];
                    let blocks: Vec<Block> = d
                        .blocks
                        .iter()
                        .skip(from as usize)
                        .take(32)
                        .cloned()
                        .collect();
                    let served = self.sync_served.entry((id, to)).or_default();
                    served.0 += 1;
                    served.1 += blocks.len() as u64;
                    self.send(
                        id,
                        Target::One(to),
                        pb::ClusterMessage {
                            message: Some(M::SyncResponse(pb::SyncResponse { blocks })),
                        },
                    );
                }
            }
        }
    }

    fn send(&mut self, from: u32, to: Target, msg: pb::ClusterMessage) {
        if let Some(M::Vote(v)) = &msg.message
            && let Some(vote) = &v.vote
        {
            self.votes_sent
                .entry((vote.voter, vote.height, vote.round, vote.vote_type))
                .or_default()
                .insert(vote.value_id.clone());
        }
        let targets: Vec<u32> = match to {
            Target::All => self.ids().into_iter().filter(|i| *i != from).collect(),
            Target::One(i) => vec![i],
        };
        for t in targets {
            self.send_one(from, t, msg.clone());
        }
    }

    fn send_one(&mut self, from: u32, to: u32, msg: pb::ClusterMessage) {
        if self.blocked.contains(&(from, to)) || self.rng.random::<f64>() < self.net.drop {
            return;
        }
        let (lo, hi) = self.net.delay_ms;
        let mut delay = if hi > lo {
            self.rng.random_range(lo..=hi)
        } else {
            lo
        };
        if self.byzantine.get(&to) == Some(&Byzantine::SyncFlood) {
            // A slow reader.
            delay += 2_000;
        }
        self.schedule(self.time + delay, Event::Deliver { from, to, msg });
    }

    /// Runs until `done` holds or virtual time passes `limit_ms`; returns whether `done` held.
    pub fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let deadline = self.time + limit_ms;
        loop {
            if done(self) {
                return true;
            }
            let Some(Reverse((at, seq))) = self.queue.pop() else {
                // Nothing scheduled: advance time.
                if self.time >= deadline {
                    return false;
                }
                self.time = deadline;
                continue;
            };
            if at > deadline {
                self.queue.push(Reverse((at, seq)));
                self.time = deadline;
                return done(self);
            }
            self.time = self.time.max(at);
            let Some(ev) = self.events.remove(&seq) else {
                continue;
            };
            match ev {
                Event::Deliver { from, to, msg } => {
                    let msg = match self.byzantine.get(&to) {
                        Some(Byzantine::Censor(msp)) => censor_forward(msg, msp),
                        _ => msg,
                    };
                    let now = self.now();
                    if let Some(node) = self.nodes.get_mut(&to) {
                        self.delivered += 1;
                        let actions = node.message(from, msg, now);
                        self.run_actions(to, actions);
                    }
                }
                Event::Timer {
                    node,
                    id,
                    generation,
                } => {
                    if self.timers.get(&(node, id)) != Some(&generation) {
                        continue;
                    }
                    self.timers.remove(&(node, id));
                    let now = self.now();
                    if let Some(n) = self.nodes.get_mut(&node) {
                        let actions = n.timer(id, now);
                        self.run_actions(node, actions);
                    }
                }
            }
        }
    }

    /// Blocks stored by a node (genesis included).
    pub fn blocks(&self, id: u32) -> &[Block] {
        &self.disks[&id].blocks
    }

    /// Blocks stored by a node, genesis included.
    pub fn height(&self, id: u32) -> u64 {
        self.disks[&id].blocks.len() as u64
    }

    /// Every node's tx ids ordered, in order, for node `id`.
    pub fn tx_ids(&self, id: u32) -> Vec<String> {
        self.blocks(id)
            .iter()
            .skip(1)
            .flat_map(crate::node::block_tx_ids)
            .collect()
    }

    /// Safety and validity checks on every listed (honest) node: identical blocks at every
    /// height both have, each block verifies with the peers' verifier and chains, no empty
    /// block, no tx_id twice.
    pub fn check_chains(&self, honest: &[u32]) {
        let longest = honest.iter().map(|i| self.height(*i)).max().unwrap_or(0);
        for h in 1..longest {
            let mut reference: Option<&Block> = None;
            for id in honest {
                let Some(b) = self.blocks(*id).get(h as usize) else {
                    continue;
                };
                match reference {
                    None => reference = Some(b),
                    Some(r) => assert_eq!(
                        r.header, b.header,
                        "orderers disagree at block {h} (node {id}); SEED={}",
                        self.seed
                    ),
                }
            }
        }
        for id in honest {
            let blocks = self.blocks(*id);
            let mut seen = HashSet::new();
            for w in blocks.windows(2) {
                let prev = blk::header_hash(w[0].header.as_ref().unwrap());
                let b = &w[1];
                assert_eq!(b.header.as_ref().unwrap().previous_hash, prev.to_vec());
                let v = bft::verify_block_signatures(b, CHANNEL, self.config.consenters())
                    .unwrap_or_else(|e| panic!("node {id}: {e}; SEED={}", self.seed));
                assert!(v.signers.len() >= self.config.consenters().quorum());
                assert!(
                    !b.data.as_ref().unwrap().data.is_empty(),
                    "empty block {}",
                    v.number
                );
                for tx in crate::node::block_tx_ids(b) {
                    assert!(
                        seen.insert(tx.clone()),
                        "tx {tx} ordered twice on node {id}"
                    );
                }
            }
        }
    }

    /// Asserts that no honest node signed two different votes for one (height, round, type).
    pub fn check_no_equivocation(&self, honest: &[u32]) {
        for ((voter, h, r, t), values) in &self.votes_sent {
            if honest.contains(voter) {
                assert!(
                    values.len() <= 1,
                    "consenter {voter} signed {} different votes of type {t} at height {h} round {r}; SEED={}",
                    values.len(),
                    self.seed
                );
            }
        }
    }

    // ----- Byzantine behaviour -----

    fn byzantine_rewrite(&mut self, id: u32, actions: Vec<Action>) -> Vec<Action> {
        let Some(b) = self.byzantine.get(&id).cloned() else {
            return actions;
        };
        match b {
            Byzantine::GarbageVotes => actions
                .into_iter()
                .map(|a| match a {
                    Action::Send {
                        to,
                        msg:
                            pb::ClusterMessage {
                                message: Some(M::Vote(mut v)),
                            },
                    } => {
                        let n: u64 = self.rng.random();
                        v.signature = n.to_be_bytes().repeat(9);
                        Action::Send {
                            to,
                            msg: pb::ClusterMessage {
                                message: Some(M::Vote(v)),
                            },
                        }
                    }
                    other => other,
                })
                .collect(),
            Byzantine::Censor(_) => actions,
            Byzantine::Silent => actions
                .into_iter()
                .filter(|a| !matches!(a, Action::Send { .. } | Action::ServeSync { .. }))
                .collect(),
            Byzantine::LiesAboutHeight => {
                let mut out = actions;
                if out.iter().any(|a| matches!(a, Action::Send { .. })) {
                    let next = self.height(id) + 1000;
                    out.push(Action::Send {
                        to: Target::All,
                        msg: pb::ClusterMessage {
                            message: Some(M::Status(pb::Status { next_height: next })),
                        },
                    });
                }
                out
            }
            Byzantine::SpamEarlyProposals => {
                let mut out = actions;
                if out.iter().any(|a| matches!(a, Action::Send { .. })) {
                    let spam = self.early_spam(id);
                    out.extend(spam);
                }
                out
            }
            Byzantine::SyncFlood => {
                let mut out = actions;
                if out.iter().any(|a| matches!(a, Action::Send { .. })) {
                    for _ in 0..20 {
                        out.push(Action::Send {
                            to: Target::All,
                            msg: pb::ClusterMessage {
                                message: Some(M::SyncRequest(pb::SyncRequest { from: 0 })),
                            },
                        });
                    }
                }
                out
            }
            Byzantine::Equivocate
            | Byzantine::BadSignature
            | Byzantine::DuplicateTxId
            | Byzantine::WrongPreviousHash => self.forge_proposals(id, &b, actions),
        }
    }

    /// Signed proposals and parts for the next height in every round up to 12 that `id`
    /// proposes (a fresh 16 KiB value each, sent ten times), and 40 signed prevotes for the
    /// next height at random rounds.
    fn early_spam(&mut self, id: u32) -> Vec<Action> {
        let next = self.height(id) + 1; // the height after the one being decided
        let n = self.ids().len() as u64;
        let mut out = Vec::new();
        for round in 0..=12i64 {
            if (next + round as u64) % n != u64::from(id - 1) {
                continue;
            }
            let real = pb::Proposal {
                height: next,
                round,
                pol_round: -1,
                value: None,
                proposer: id,
            };
            let blob: Vec<u8> = (0..16 * 1024).map(|_| self.rng.random()).collect();
            let (proposal, parts) = self.forge(id, &real, &[blob], &[0x11; 32], 0);
            for _ in 0..10 {
                for p in &parts {
                    out.push(part_action(Target::All, p.clone()));
                }
                out.push(Action::Send {
                    to: Target::All,
                    msg: pb::ClusterMessage {
                        message: Some(M::Proposal(proposal.clone())),
                    },
                });
            }
        }
        for _ in 0..40 {
            let round: i64 = self.rng.random_range(0..100_000);
            let value: [u8; 32] = self.rng.random();
            let bytes = bft::vote_sign_bytes(
                CHANNEL,
                bft::VoteKind::Prevote,
                next,
                round,
                Some(&value),
                id,
            );
            let signature = self.identities[id as usize - 1].sign(&bytes).unwrap();
            out.push(Action::Send {
                to: Target::All,
                msg: pb::ClusterMessage {
                    message: Some(M::Vote(pb::SignedVote {
                        vote: Some(pb::Vote {
                            vote_type: pb::VoteType::Prevote as i32,
                            height: next,
                            round,
                            value_id: value.to_vec(),
                            voter: id,
                        }),
                        signature,
                    })),
                },
            });
        }
        out
    }

    /// Replaces this node's proposal (and its parts) in `actions` by forged ones.
    fn forge_proposals(&mut self, id: u32, how: &Byzantine, actions: Vec<Action>) -> Vec<Action> {
        let mut parts = Vec::new();
        let mut proposal = None;
        let mut rest = Vec::new();
        for a in actions {
            match a {
                Action::Send {
                    msg:
                        pb::ClusterMessage {
                            message: Some(M::Part(p)),
                        },
                    ..
                } if p.proposer == id => parts.push(p),
                Action::Send {
                    msg:
                        pb::ClusterMessage {
                            message: Some(M::Proposal(p)),
                        },
                    ..
                } if p.proposal.as_ref().is_some_and(|x| x.proposer == id) => proposal = Some(p),
                other => rest.push(other),
            }
        }
        let Some(prop) = proposal else {
            // Parts without a proposal in this batch (restream): send as they are.
            for p in parts {
                rest.push(part_action(Target::All, p));
            }
            return rest;
        };
        let inner = prop.proposal.clone().unwrap();
        let header = inner.value.clone().unwrap();
        let envelopes: Vec<Vec<u8>> = parts
            .iter()
            .filter_map(|p| match &p.part {
                Some(pb::proposal_part::Part::Data(d)) => Some(d.envelopes.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let ids = self.ids();
        let others: Vec<u32> = ids.iter().copied().filter(|i| *i != id).collect();
        let (forged_env, forged_prev) = match how {
            Byzantine::Equivocate => {
                let mut e = envelopes.clone();
                if e.len() > 1 {
                    e.pop();
                } else {
                    e.push(self.envelope(false));
                }
                (e, header.previous_hash.clone())
            }
            Byzantine::BadSignature => {
                let mut e = envelopes.clone();
                let mut env = Envelope::decode(e[0].as_slice()).unwrap();
                let last = env.signature.len() - 2;
                env.signature[last] ^= 0x5a;
                e[0] = env.encode_to_vec();
                (e, header.previous_hash.clone())
            }
            Byzantine::DuplicateTxId => {
                let mut e = envelopes.clone();
                e.push(e[0].clone());
                (e, header.previous_hash.clone())
            }
            Byzantine::WrongPreviousHash => (envelopes.clone(), vec![0xee; 32]),
            _ => unreachable!(),
        };
        let forged = self.forge(id, &inner, &forged_env, &forged_prev, prop.signature.len());
        match how {
            Byzantine::Equivocate => {
                // Half the others see the real proposal, half the forged one.
                for (k, to) in others.iter().enumerate() {
                    let (p, ps) = if k % 2 == 0 {
                        (prop.clone(), parts.clone())
                    } else {
                        forged.clone()
                    };
                    for part in ps {
                        rest.push(part_action(Target::One(*to), part));
                    }
                    rest.push(Action::Send {
                        to: Target::One(*to),
                        msg: pb::ClusterMessage {
                            message: Some(M::Proposal(p)),
                        },
                    });
                }
            }
            _ => {
                let (p, ps) = forged;
                for part in ps {
                    rest.push(part_action(Target::All, part));
                }
                rest.push(Action::Send {
                    to: Target::All,
                    msg: pb::ClusterMessage {
                        message: Some(M::Proposal(p)),
                    },
                });
            }
        }
        rest
    }

    fn forge(
        &self,
        id: u32,
        real: &pb::Proposal,
        envelopes: &[Vec<u8>],
        previous_hash: &[u8],
        _sig_len: usize,
    ) -> (pb::SignedProposal, Vec<pb::ProposalPart>) {
        let data_hash = blk::data_hash(&BlockData {
            data: envelopes.to_vec(),
        });
        let header = pb::BatchHeader {
            number: real.height,
            previous_hash: previous_hash.to_vec(),
            data_hash: data_hash.to_vec(),
            time_ms: real.value.as_ref().map_or(0, |v| v.time_ms),
        };
        let hh = bft::value_id(
            &blk::header_hash(&medledger_proto::common::BlockHeader {
                number: header.number,
                previous_hash: header.previous_hash.clone(),
                data_hash: header.data_hash.clone(),
            }),
            header.time_ms,
        );
        let proposal = pb::Proposal {
            height: real.height,
            round: real.round,
            pol_round: real.pol_round,
            value: Some(header.clone()),
            proposer: id,
        };
        let bytes =
            bft::proposal_sign_bytes(CHANNEL, real.height, real.round, real.pol_round, &hh, id);
        let signature = self.identities[id as usize - 1].sign(&bytes).unwrap();
        let mk = |sequence: u32, part: pb::proposal_part::Part| pb::ProposalPart {
            height: real.height,
            round: real.round,
            proposer: id,
            sequence,
            part: Some(part),
        };
        let parts = vec![
            mk(
                0,
                pb::proposal_part::Part::Init(pb::PartInit {
                    pol_round: real.pol_round,
                    header: Some(header),
                }),
            ),
            mk(
                1,
                pb::proposal_part::Part::Data(pb::PartData {
                    envelopes: envelopes.to_vec(),
                }),
            ),
            mk(
                2,
                pb::proposal_part::Part::Fin(pb::PartFin { total_parts: 3 }),
            ),
        ];
        (
            pb::SignedProposal {
                proposal: Some(proposal),
                signature,
            },
            parts,
        )
    }
}

fn part_action(to: Target, p: pb::ProposalPart) -> Action {
    Action::Send {
        to,
        msg: pb::ClusterMessage {
            message: Some(M::Part(p)),
        },
    }
}

/// MSP id of an envelope's creator.
pub fn creator_msp(e: &[u8]) -> Option<String> {
    let env = Envelope::decode(e).ok()?;
    let parsed = medledger_channel::envelope::parse(&env).ok()?;
    let sid = medledger_proto::msp::SerializedIdentity::decode(
        parsed.signature_header.creator.as_slice(),
    )
    .ok()?;
    Some(sid.mspid)
}

fn censor_forward(msg: pb::ClusterMessage, msp: &str) -> pb::ClusterMessage {
    match msg.message {
        Some(M::Forward(f)) => pb::ClusterMessage {
            message: Some(M::Forward(pb::ForwardEnvelopes {
                envelopes: f
                    .envelopes
                    .into_iter()
                    .filter(|e| creator_msp(e).as_deref() != Some(msp))
                    .collect(),
            })),
        },
        other => pb::ClusterMessage { message: other },
    }
}

/// Re-export for batch parameters.
pub mod pb_batch {
    /// The channel's batch parameters (`medledger.channel.BatchConfig`).
    pub use medledger_proto::medledger::channel::BatchConfig;
}

/// tx_id of a serialized envelope.
pub fn tx_id(e: &[u8]) -> String {
    let env = Envelope::decode(e).unwrap();
    medledger_channel::envelope::parse(&env)
        .unwrap()
        .tx_id()
        .to_owned()
}
