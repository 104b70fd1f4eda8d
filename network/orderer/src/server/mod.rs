//! The orderer process: gRPC services over TLS (`orderer.AtomicBroadcast` for clients and
//! peers, `medledger.orderer.Cluster` between orderers over mutual TLS), the operations
//! endpoint (`/healthz`, `/metrics`), and the I/O around the pure [`Node`](crate::node::Node).
//!
//! One thread (the *core*) owns the node, the write-ahead log and appends to the block store;
//! it receives checked envelopes, cluster messages and timer expiries on a channel and
//! carries out the node's actions in order: WAL records are fsynced before any message is
//! queued for sending, blocks are fsynced before Deliver can see them. One task per other
//! consenter keeps a `Cluster.Step` stream open to it and reconnects when it breaks; messages
//! that cannot be sent are dropped (consensus re-sends votes and syncs missed blocks).
//!
//! What no client or orderer can exhaust (issue 14 items 3 and 4):
//! - envelope signatures (Broadcast, and envelopes other orderers forward) are checked by a
//!   bounded number of tasks ([`Verifier`](shared::Verifier): envelopes over 64 KiB, whose
//!   endorsements are verified too, on tokio's blocking pool), never on the core thread,
//!   each envelope once per configuration whether admitted or refused
//!   ([`crate::batch::Verdicts`]); the core receives verdicts; a refused envelope never
//!   reaches it; the core re-judges only what depends on the time or the configuration
//!   ([`crate::batch::readmit`]: a proposal at its ordering time; the pool after a
//!   configuration change from the identities each admission kept,
//!   [`crate::batch::Rejudgement`]), without verifying a signature again;
//! - envelopes being checked hold a byte budget (a quarter of the pool's, at least two
//!   envelopes of `absolute_max_bytes`); beyond it Broadcast answers `SERVICE_UNAVAILABLE`;
//!   the pool itself is bounded in envelopes, bytes, bytes per submitter and bytes per
//!   submitter's organization ([`crate::batch::PoolLimits`]);
//! - messages from another orderer wait for the core within a byte budget per orderer
//!   (`cluster_queue_bytes`): its stream is not read while the budget is spent;
//! - messages for another orderer queue within the same byte budget; beyond, they are
//!   dropped, and a stream that takes no message for [`PEER_STALL`] is closed and reopened;
//! - sync responses are read from the block store by the sending task, not the core, one at
//!   a time per orderer, only while its queue is at most half full; the node rate-limits
//!   and merges the requests ([`crate::node::NodeConfig::sync_serve_interval`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use medledger_proto::common::Block;
use tokio::sync::watch;
use tonic::Status;

use crate::config::OrdererConfig;
use crate::{Error, Result};

mod broadcast;
mod build;
mod cluster;
mod core;
mod deliver;
mod operations;
mod shared;

use self::core::CoreEvent;
use build::{Components, TlsFiles, load_genesis, open_audit, open_store, recover_node};
pub use cluster::PEER_STALL;
use shared::Shared;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Config { .. } | Error::Channel(_) => Status::invalid_argument(e.to_string()),
            Error::NotAConsenter { .. } => Status::permission_denied(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}

/// A running orderer. Dropping it does not stop it; call [`RunningOrderer::stop`].
pub struct RunningOrderer {
    /// Address of the gRPC services.
    pub addr: SocketAddr,
    /// Address of the operations endpoint, if enabled.
    pub operations_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    core: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningOrderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningOrderer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningOrderer {
    /// Number of blocks in the chain (genesis included).
    pub fn height(&self) -> u64 {
        *self.shared.height.borrow()
    }

    /// A stored block.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Store`] from the block store.
    pub fn block(&self, number: u64) -> Result<Option<Block>> {
        self.shared.block(number)
    }

    /// Whether the core is running (not halted by an I/O or consensus failure).
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// The latencies (height start → decision) of the most recent blocks this orderer
    /// decided, oldest first.
    pub fn decision_latencies(&self) -> Vec<Duration> {
        self.shared
            .latencies
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The metrics text (what `/metrics` serves).
    pub fn metrics(&self) -> String {
        self.shared.metrics.render()
    }

    /// Stops the services and the core, and waits for them.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.shared.core.send(CoreEvent::Shutdown).await;
        if let Some(core) = self.core.take() {
            let _ = tokio::task::spawn_blocking(move || core.join()).await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }

    /// Waits until the orderer stops by itself (fatal error, or its core thread panicked) or
    /// `signal` completes, then stops it. Returns `false` if it stopped by itself.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) -> bool {
        let shared = self.shared.clone();
        let halted = async move {
            while shared.healthy.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let by_signal = tokio::select! {
            () = signal => true,
            () = halted => {
                tracing::error!(target: "orderer", "orderer halted");
                false
            }
        };
        self.stop().await;
        by_signal
    }
}

/// Starts an orderer from its configuration: opens (or initialises from the genesis block)
/// the block store, replays the WAL, binds the gRPC and operations listeners, connects to the
/// other consenters.
///
/// # Errors
/// [`Error`] for unusable configuration, key material, storage or listeners.
pub async fn start(cfg: &OrdererConfig) -> Result<RunningOrderer> {
    let (genesis, genesis_config, signer) = load_genesis(cfg)?;
    let (store, chain, config) = open_store(cfg, &genesis, genesis_config)?;
    let recovered = recover_node(cfg, &config, signer, chain)?;
    let tls = TlsFiles::load(cfg, &config)?;
    let mut c = Components::new(cfg, config, store, &recovered, tls);
    let peers = c.connect_peers()?;
    let addr = c.serve_grpc().await?;
    let operations_addr = c.serve_operations().await?;
    let audit = open_audit(cfg)?;
    c.spawn_core(recovered, peers, audit, addr, operations_addr)
}
