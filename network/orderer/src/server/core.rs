//! The core thread: owns the [`Node`], its write-ahead log and its timers, appends decided
//! blocks to the block store, and carries out the node's actions in order (WAL records
//! fsynced before any message is queued for sending, blocks fsynced before Deliver sees
//! them).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use medledger_proto::common::Block;
use medledger_proto::medledger::orderer as pb;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::Shared;
use super::cluster::PeerLink;
use super::shared::{LATENCY_SAMPLES, PoolUsage, USAGE_PUBLISH};
use crate::batch::{Checked, Rejection};
use crate::node::{Action, Node, Now, Target, TimerId};
use crate::wal::Wal;
use crate::{Error, Result};

/// Most envelopes admitted (and forwarded) in one pass of the core.
const SUBMIT_BATCH: usize = 1000;

pub(super) enum CoreEvent {
    /// Checked envelopes from Broadcast.
    Submit(Vec<Checked>, oneshot::Sender<Vec<Result<(), Rejection>>>),
    /// Checked envelopes another orderer forwarded; the permit holds its inbound budget.
    Forwarded(u32, Vec<Checked>, Option<OwnedSemaphorePermit>),
    /// A message from another orderer; the permit holds its inbound budget.
    Message(u32, pb::ClusterMessage, Option<OwnedSemaphorePermit>),
    Timer(TimerId, u64),
    Shutdown,
}

/// Marks the orderer unhealthy when dropped (at the end of the core thread, however it ends).
struct HaltedOnExit(Arc<Shared>);

impl Drop for HaltedOnExit {
    fn drop(&mut self) {
        self.0.healthy.store(false, Ordering::Relaxed);
    }
}

/// The core thread: the node, its WAL and its timers.
pub(super) struct Core {
    node: Node,
    wal: Wal,
    shared: Arc<Shared>,
    peers: HashMap<u32, PeerLink>,
    timers: HashMap<TimerId, u64>,
    generation: u64,
    rt: tokio::runtime::Handle,
    events: mpsc::Sender<CoreEvent>,
    audit: Option<std::fs::File>,
}

impl Core {
    /// Starts the core thread on `node` (recovered with `initial` actions still to carry
    /// out), its `wal`, the links to the other consenters and the vote `audit` file; it
    /// handles `events` until [`CoreEvent::Shutdown`] or a failure, and marks the orderer
    /// unhealthy when it ends, however it ends.
    pub(super) fn spawn(
        node: Node,
        initial: Vec<Action>,
        wal: Wal,
        peers: HashMap<u32, PeerLink>,
        audit: Option<std::fs::File>,
        shared: Arc<Shared>,
        events: mpsc::Receiver<CoreEvent>,
    ) -> Result<std::thread::JoinHandle<()>> {
        let rt = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name(format!("orderer-core-{}", node.id()))
            .spawn(move || {
                // Unhealthy once the core ends, also by a panic (the guard drops while
                // unwinding): the process must not go on answering gRPC without ordering.
                let _halted_on_exit = HaltedOnExit(shared.clone());
                let mut core = Core {
                    node,
                    wal,
                    events: shared.core.clone(),
                    shared,
                    peers,
                    timers: HashMap::new(),
                    generation: 0,
                    rt,
                    audit,
                };
                if let Err(e) = core.run(initial, events) {
                    tracing::error!(target: "orderer", error = %e, "orderer core stopped");
                }
            })
            .map_err(|e| Error::io("spawn", "orderer core thread", e))
    }

    fn run(&mut self, initial: Vec<Action>, mut rx: mpsc::Receiver<CoreEvent>) -> Result<()> {
        self.execute(initial)?;
        let mut next = None;
        let mut last_usage = std::time::Instant::now() - USAGE_PUBLISH;
        while let Some(ev) = next.take().or_else(|| rx.blocking_recv()) {
            let now = Now::system();
            match ev {
                CoreEvent::Submit(envelopes, reply) => {
                    // Take the submissions already waiting too: one admission pass and one
                    // forward message for all of them.
                    let mut batch = vec![(envelopes.len(), reply)];
                    let mut all = envelopes;
                    while all.len() < SUBMIT_BATCH {
                        match rx.try_recv() {
                            Ok(CoreEvent::Submit(e, r)) => {
                                batch.push((e.len(), r));
                                all.extend(e);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let (results, actions) = self.node.submit_checked(all, now);
                    self.execute(actions)?;
                    let rejected = results.iter().filter(|r| r.is_err()).count() as u64;
                    self.shared.metrics.broadcast_rejected.inc_by(rejected);
                    let mut results = results.into_iter();
                    for (n, reply) in batch {
                        let _ = reply.send(results.by_ref().take(n).collect());
                    }
                }
                CoreEvent::Forwarded(from, envelopes, _budget) => {
                    let actions = self.node.forwarded(from, envelopes, now);
                    self.execute(actions)?;
                }
                CoreEvent::Message(from, msg, _budget) => {
                    self.audit(&msg);
                    let actions = self.node.message(from, msg, now);
                    self.execute(actions)?;
                }
                CoreEvent::Timer(id, generation) => {
                    if self.timers.get(&id) == Some(&generation) {
                        self.timers.remove(&id);
                        let actions = self.node.timer(id, now);
                        self.execute(actions)?;
                    }
                }
                CoreEvent::Shutdown => break,
            }
            let m = &self.shared.metrics;
            m.sync_counters(self.node.stats());
            m.round.set(self.node.round());
            m.pending.set(self.node.pending() as i64);
            m.pending_bytes.set(self.node.pending_bytes() as i64);
            if last_usage.elapsed() >= USAGE_PUBLISH {
                last_usage = std::time::Instant::now();
                let pool = self.node.pool();
                if let Ok(mut u) = self.shared.usage.lock() {
                    *u = PoolUsage {
                        limits: pool.limits(),
                        total: pool.held_bytes(),
                        by_submitter: pool.bytes_by_submitter(),
                        by_org: pool.bytes_by_org(),
                    };
                }
            }
            let b = self.node.buffered();
            m.buffered_bytes
                .set((b.early_bytes + b.assembly_bytes) as i64);
            m.future_inputs.set(b.future_inputs as i64);
            m.cluster_queued_bytes
                .set(self.peers.values().map(PeerLink::queued).sum::<usize>() as i64);
            if let Some(reason) = self.node.halted() {
                return Err(Error::Consensus(
                    crate::consensus::EngineError::ReplayDiverged {
                        height: self.node.chain().next_number,
                        round: -1,
                        detail: reason.to_owned(),
                    },
                ));
            }
        }
        self.wal.flush()
    }

    fn execute(&mut self, actions: Vec<Action>) -> Result<()> {
        for a in actions {
            match a {
                Action::WalStart { height } => self.wal.start(height)?,
                Action::Wal(e) => self.wal.append(&e)?,
                Action::Send { to, msg } => {
                    self.wal.flush()?;
                    self.send(to, msg);
                }
                Action::SetTimer(id, after) => {
                    self.generation += 1;
                    let g = self.generation;
                    self.timers.insert(id, g);
                    let tx = self.events.clone();
                    self.rt.spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send(CoreEvent::Timer(id, g)).await;
                    });
                }
                Action::CancelTimer(id) => {
                    self.timers.remove(&id);
                }
                Action::CancelConsensusTimers => {
                    self.timers
                        .retain(|t, _| !matches!(t, TimerId::Consensus(_)));
                }
                Action::Commit {
                    block,
                    round,
                    latency,
                } => self.commit(&block, round, latency)?,
                Action::ServeSync { to, from } => self.serve_sync(to, from)?,
            }
        }
        Ok(())
    }

    /// Appends a received vote to the audit file, if one is configured.
    fn audit(&mut self, msg: &pb::ClusterMessage) {
        use std::io::Write;
        let (Some(file), Some(pb::cluster_message::Message::Vote(v))) =
            (self.audit.as_mut(), msg.message.as_ref())
        else {
            return;
        };
        let Some(vote) = &v.vote else { return };
        let line = format!(
            "{} {} {} {} {} {}\n",
            vote.voter,
            vote.height,
            vote.round,
            vote.vote_type,
            if vote.value_id.is_empty() {
                "nil".to_owned()
            } else {
                hex::encode(&vote.value_id)
            },
            hex::encode(&v.signature)
        );
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(target: "orderer", error = %e, "vote audit write failed; audit off");
            self.audit = None;
        }
    }

    fn send(&self, to: Target, msg: pb::ClusterMessage) {
        // A full queue means the peer is far behind, slow or gone: drop, it will sync.
        let dropped = match to {
            Target::All => self.peers.values().filter(|p| !p.push(msg.clone())).count(),
            Target::One(id) => self.peers.get(&id).map_or(0, |p| usize::from(!p.push(msg))),
        };
        if dropped > 0 {
            self.shared.metrics.cluster_dropped.inc_by(dropped as u64);
        }
    }

    fn commit(&mut self, block: &Block, round: i64, latency: Option<Duration>) -> Result<()> {
        let height = {
            let mut store = self.shared.store.write().map_err(|_| Error::Store {
                reason: "block store lock poisoned".into(),
            })?;
            store.append(block)?;
            store.height()
        };
        if medledger_channel::update::is_config_block(block) {
            // The node applied it when the block joined its chain (`Node::after_append`).
            *self
                .shared
                .config
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = self.node.config().clone();
        }
        self.shared.height.send_replace(height);
        let m = &self.shared.metrics;
        m.height.set(height as i64);
        let envelopes = block.data.as_ref().map_or(0, |d| d.data.len());
        if let Some(l) = latency {
            m.rounds_per_height.observe((round + 1) as f64);
            m.consensus_latency.observe(l.as_secs_f64());
            if let Ok(mut samples) = self.shared.latencies.lock() {
                if samples.len() == LATENCY_SAMPLES {
                    samples.pop_front();
                }
                samples.push_back(l);
            }
        }
        m.block_envelopes.observe(envelopes as f64);
        Ok(())
    }

    /// Hands a sync request to the task sending to `to`, which reads the blocks when its
    /// queue has room (the latest request replaces one not served yet).
    fn serve_sync(&self, to: u32, from: u64) -> Result<()> {
        if let Some(p) = self.peers.get(&to) {
            p.request_sync(from);
        }
        Ok(())
    }
}
