//! The orderer process: gRPC services over TLS (`orderer.AtomicBroadcast` for clients and
//! peers, `medledger.orderer.Cluster` between orderers over mutual TLS), the operations
//! endpoint (`/healthz`, `/metrics`), and the I/O around the pure [`Node`].
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
//!   bounded number of runtime tasks ([`Verifier`]), never on the core thread, each once per
//!   configuration ([`crate::batch::Verdicts`]); the core receives verdicts; a refused
//!   envelope never reaches it;
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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use medledger_channel::ChannelConfig;
use medledger_msp::cert::Certificate;
use medledger_proto::common::Block;
use medledger_proto::medledger::orderer as pb;
use medledger_proto::orderer::atomic_broadcast_server;
use pb::cluster_server::ClusterServer;
use prost::Message as _;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tonic::transport::{
    Certificate as TlsCertificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};

use crate::config::OrdererConfig;
use crate::metrics::Metrics;
use crate::node::{Node, NodeConfig, Now};
use crate::store::BlockStore;
use crate::wal::Wal;
use crate::{Error, Result};

mod broadcast;
mod cluster;
mod core;
mod deliver;
mod operations;
mod shared;

use self::core::{Core, CoreEvent, HaltedOnExit};
use broadcast::AtomicBroadcastService;
pub use cluster::PEER_STALL;
use cluster::{
    ClusterAuth, ClusterService, Lane, MAX_CLUSTER_MESSAGE, PeerLink, PeerTask, SyncSlot,
    peer_sender,
};
use shared::{PoolUsage, Shared, Verifier};

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

fn pem_of_ders(ders: &[Vec<u8>]) -> Vec<u8> {
    ders.iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .map(|c| c.to_pem())
        .collect::<String>()
        .into_bytes()
}

fn transport(reason: impl std::fmt::Display) -> Error {
    Error::Transport {
        reason: reason.to_string(),
    }
}

/// Starts an orderer from its configuration: opens (or initialises from the genesis block)
/// the block store, replays the WAL, binds the gRPC and operations listeners, connects to the
/// other consenters.
///
/// # Errors
/// [`Error`] for unusable configuration, key material, storage or listeners.
pub async fn start(cfg: &OrdererConfig) -> Result<RunningOrderer> {
    let genesis_bytes =
        std::fs::read(&cfg.genesis_block).map_err(|e| Error::io("read", &cfg.genesis_block, e))?;
    let genesis = Block::decode(genesis_bytes.as_slice()).map_err(|_| Error::Config {
        reason: format!("{} is not a block", cfg.genesis_block.display()),
    })?;
    let genesis_config = ChannelConfig::from_config_block(&genesis)?;
    cfg.check_against(genesis_config.batch().batch_timeout_ms)?;
    let signer = Arc::new(
        medledger_msp::folder::load_signing_identity(&cfg.msp_dir, &cfg.msp_id).map_err(|e| {
            Error::Config {
                reason: format!("signing identity in {}: {e}", cfg.msp_dir.display()),
            }
        })?,
    );

    let (mut store, mut chain) = BlockStore::open(&cfg.data_dir.join("blocks"))?;
    if store.height() == 0 {
        store.append(&genesis)?;
        chain.append(&genesis)?;
    } else if store.get(0)?.map(|b| b.header) != Some(genesis.header.clone()) {
        return Err(Error::Store {
            reason: "block 0 in the store is not this channel's genesis block".into(),
        });
    }
    // The current configuration: the genesis block's, or the last config update's.
    let config = Arc::new(if chain.last_config == 0 {
        genesis_config
    } else {
        let block = store.get(chain.last_config)?.ok_or_else(|| Error::Store {
            reason: format!("config block {} is missing", chain.last_config),
        })?;
        ChannelConfig::from_config_block(&block)?
    });
    let mut wal = Wal::open(&cfg.data_dir.join("wal"))?;
    let records = wal.read(chain.next_number)?;
    if !records.is_empty() {
        wal.start(chain.next_number)?;
    }
    let mut node_cfg = NodeConfig::new(cfg.consenter_id);
    node_cfg.timeouts = cfg.consensus.timeouts();
    let limits = &cfg.consensus;
    let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    node_cfg.max_pending_envelopes = as_usize(limits.max_pending_envelopes);
    node_cfg.max_pending_bytes = as_usize(limits.max_pending_bytes);
    node_cfg.max_pending_bytes_per_submitter = if limits.max_pending_bytes_per_submitter == 0 {
        node_cfg.max_pending_bytes / 4
    } else {
        as_usize(limits.max_pending_bytes_per_submitter)
    };
    node_cfg.max_pending_bytes_per_org = if limits.max_pending_bytes_per_org == 0 {
        node_cfg.max_pending_bytes / 2
    } else {
        as_usize(limits.max_pending_bytes_per_org)
    };
    let max_pending_bytes = node_cfg.max_pending_bytes;
    let (node, initial) = Node::new(
        node_cfg,
        config.clone(),
        signer.clone(),
        chain,
        &records,
        Now::system(),
    )?;

    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| Error::io("read", p, e));
    let cert_pem = read(&cfg.tls_cert)?;
    let key_pem = read(&cfg.tls_key)?;
    let tls_roots: Vec<Vec<u8>> = config
        .to_proto()
        .organizations
        .iter()
        .chain(&config.to_proto().orderer_organizations)
        .flat_map(|o| o.tls_root_certs.clone())
        .collect();
    let roots_pem = pem_of_ders(&tls_roots);
    let mut consenter_certs = HashMap::new();
    for c in config.consenters().iter() {
        if let Ok(cert) = Certificate::from_pem(&c.client_tls_cert_pem) {
            consenter_certs.insert(cert.der().to_vec(), c.id);
        }
    }

    let (core_tx, core_rx) = mpsc::channel(4096);
    let (height_tx, _) = watch::channel(store.height());
    let orderer_metrics = Metrics::new();
    orderer_metrics.height.set(store.height() as i64);
    let max_envelope = config.batch().absolute_max_bytes as usize + 64 * 1024;
    let cluster_queue_bytes = as_usize(limits.cluster_queue_bytes).max(1);
    let in_flight_kib = (max_pending_bytes / 4).max(2 * max_envelope) / 1024;
    // Default: every CPU but one (kept for the core and the transport), at least one.
    let verify_workers = match limits.verify_workers {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1),
        n => n,
    };
    let inbound = config
        .consenters()
        .iter()
        .filter(|c| c.id != cfg.consenter_id)
        .map(|c| {
            let budget = || {
                Arc::new(Semaphore::new(
                    cluster_queue_bytes.min(Semaphore::MAX_PERMITS),
                ))
            };
            (c.id, (budget(), budget()))
        })
        .collect();
    let shared = Arc::new(Shared {
        config: RwLock::new(config.clone()),
        store: RwLock::new(store),
        height: height_tx,
        metrics: orderer_metrics,
        healthy: AtomicBool::new(true),
        core: core_tx.clone(),
        latencies: std::sync::Mutex::new(std::collections::VecDeque::new()),
        verifier: Verifier::new(verify_workers, node.verdicts().clone()),
        cluster_verifier: Verifier::new(verify_workers.div_ceil(2), node.verdicts().clone()),
        in_flight: Arc::new(Semaphore::new(in_flight_kib.min(Semaphore::MAX_PERMITS))),
        inbound,
        cluster_queue_bytes,
        usage: std::sync::Mutex::new(PoolUsage::default()),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    // Senders to the other consenters.
    let mut peers = HashMap::new();
    for c in config
        .consenters()
        .iter()
        .filter(|c| c.id != cfg.consenter_id)
    {
        let (urgent, urgent_rx) = Lane::new();
        let (bulk, bulk_rx) = Lane::new();
        let link = PeerLink {
            urgent,
            bulk,
            cap: cluster_queue_bytes,
            sync: Arc::new(SyncSlot::default()),
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(TlsCertificate::from_pem(&roots_pem))
            .identity(Identity::from_pem(&cert_pem, &key_pem))
            .domain_name(c.host.clone());
        let endpoint = Endpoint::from_shared(format!("https://{}:{}", c.host, c.port))
            .and_then(|e| e.tls_config(tls))
            .map_err(transport)?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        tasks.push(tokio::spawn(peer_sender(
            PeerTask {
                me: cfg.consenter_id,
                peer: c.id,
                bulk_queued: link.bulk.queued.clone(),
                cap: cluster_queue_bytes,
                sync: link.sync.clone(),
                shared: shared.clone(),
            },
            endpoint,
            urgent_rx,
            bulk_rx,
        )));
        peers.insert(c.id, link);
    }

    // gRPC services.
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| Error::io("bind", &cfg.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("bind", &cfg.listen, e))?;
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&cert_pem, &key_pem))
        .client_ca_root(TlsCertificate::from_pem(&roots_pem))
        .client_auth_optional(true);
    let cluster = tonic::service::interceptor::InterceptedService::new(
        ClusterServer::new(ClusterService {
            shared: shared.clone(),
        })
        .max_decoding_message_size(MAX_CLUSTER_MESSAGE),
        ClusterAuth {
            consenters: Arc::new(consenter_certs),
        },
    );
    let broadcast = atomic_broadcast_server::AtomicBroadcastServer::new(AtomicBroadcastService {
        shared: shared.clone(),
    })
    .max_decoding_message_size(max_envelope)
    .max_encoding_message_size(MAX_CLUSTER_MESSAGE);
    let mut sd = shutdown_rx.clone();
    let grpc = Server::builder()
        .tls_config(tls)
        .map_err(transport)?
        .tcp_nodelay(true)
        .add_service(cluster)
        .add_service(broadcast)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = sd.wait_for(|s| *s).await;
        });
    tasks.push(tokio::spawn(async move {
        if let Err(e) = grpc.await {
            tracing::error!(target: "orderer", error = %e, "gRPC server failed");
        }
    }));

    // Operations endpoint.
    let mut operations_addr = None;
    if let Some(ops) = &cfg.operations_listen {
        let l = tokio::net::TcpListener::bind(ops)
            .await
            .map_err(|e| Error::io("bind", ops, e))?;
        operations_addr = Some(l.local_addr().map_err(|e| Error::io("bind", ops, e))?);
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(operations::healthz))
            .route("/metrics", axum::routing::get(operations::metrics))
            .with_state(shared.clone());
        let mut sd = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let r = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = sd.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!(target: "orderer", error = %e, "operations endpoint failed");
            }
        }));
    }

    let audit = match &cfg.vote_audit_file {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::io("open", p, e))?,
        ),
        None => None,
    };

    // The core.
    let rt = tokio::runtime::Handle::current();
    let core_shared = shared.clone();
    let core = std::thread::Builder::new()
        .name(format!("orderer-core-{}", cfg.consenter_id))
        .spawn(move || {
            // Unhealthy once the core ends, also by a panic (the guard drops while unwinding):
            // the process must not go on answering gRPC without ordering.
            let _halted_on_exit = HaltedOnExit(core_shared.clone());
            let mut core = Core {
                node,
                wal,
                shared: core_shared.clone(),
                peers,
                timers: HashMap::new(),
                generation: 0,
                rt,
                events: core_tx,
                audit,
            };
            if let Err(e) = core.run(initial, core_rx) {
                tracing::error!(target: "orderer", error = %e, "orderer core stopped");
            }
        })
        .map_err(|e| Error::io("spawn", "orderer core thread", e))?;
    tracing::info!(target: "orderer", consenter = cfg.consenter_id, %addr, channel = %config.channel_id(), "orderer started");
    Ok(RunningOrderer {
        addr,
        operations_addr,
        shared,
        shutdown: shutdown_tx,
        core: Some(core),
        tasks,
    })
}
