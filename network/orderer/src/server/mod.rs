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
use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::Block;
use prost::Message as _;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tonic::transport::{
    Certificate as TlsCertificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};

use crate::config::OrdererConfig;
use crate::metrics::Metrics;
use crate::node::{Action, Chain, Node, NodeConfig, Now};
use crate::store::BlockStore;
use crate::wal::Wal;
use crate::{Error, Result};

mod broadcast;
mod cluster;
mod core;
mod deliver;
mod operations;
mod shared;

use self::core::{Core, CoreEvent};
pub use cluster::PEER_STALL;
use cluster::PeerLink;
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

/// Reads the genesis block and its configuration (checking the orderer's against it) and
/// loads the orderer's signing identity.
fn load_genesis(cfg: &OrdererConfig) -> Result<(Block, ChannelConfig, Arc<SigningIdentity>)> {
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
    Ok((genesis, genesis_config, signer))
}

/// Opens the block store (initialising it with `genesis` when empty) and returns it, its
/// chain and the current configuration: the genesis block's, or the last config update's.
fn open_store(
    cfg: &OrdererConfig,
    genesis: &Block,
    genesis_config: ChannelConfig,
) -> Result<(BlockStore, Chain, Arc<ChannelConfig>)> {
    let (mut store, mut chain) = BlockStore::open(&cfg.data_dir.join("blocks"))?;
    if store.height() == 0 {
        store.append(genesis)?;
        chain.append(genesis)?;
    } else if store.get(0)?.map(|b| b.header) != Some(genesis.header.clone()) {
        return Err(Error::Store {
            reason: "block 0 in the store is not this channel's genesis block".into(),
        });
    }
    let config = Arc::new(if chain.last_config == 0 {
        genesis_config
    } else {
        let block = store.get(chain.last_config)?.ok_or_else(|| Error::Store {
            reason: format!("config block {} is missing", chain.last_config),
        })?;
        ChannelConfig::from_config_block(&block)?
    });
    Ok((store, chain, config))
}

/// The node recovered from the chain and the write-ahead log, for the core thread.
struct Recovered {
    node: Node,
    /// The actions of its start, still to carry out.
    initial: Vec<Action>,
    wal: Wal,
    /// The pending pool's byte limit.
    max_pending_bytes: usize,
}

/// Opens the WAL and recovers the node from `chain` and the WAL's records of the next height.
fn recover_node(
    cfg: &OrdererConfig,
    config: &Arc<ChannelConfig>,
    signer: Arc<SigningIdentity>,
    chain: Chain,
) -> Result<Recovered> {
    let mut wal = Wal::open(&cfg.data_dir.join("wal"))?;
    let records = wal.read(chain.next_number)?;
    if !records.is_empty() {
        wal.start(chain.next_number)?;
    }
    let node_cfg = node_config(cfg);
    let max_pending_bytes = node_cfg.max_pending_bytes;
    let (node, initial) = Node::new(
        node_cfg,
        config.clone(),
        signer,
        chain,
        &records,
        Now::system(),
    )?;
    Ok(Recovered {
        node,
        initial,
        wal,
        max_pending_bytes,
    })
}

fn as_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The node's configuration: its timeouts and the pending pool's limits (per submitter a
/// quarter, per organization half of the pool's bytes unless configured).
fn node_config(cfg: &OrdererConfig) -> NodeConfig {
    let mut node_cfg = NodeConfig::new(cfg.consenter_id);
    node_cfg.timeouts = cfg.consensus.timeouts();
    let limits = &cfg.consensus;
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
    node_cfg
}

/// The orderer's TLS material.
struct TlsFiles {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    /// The TLS roots of the channel's organizations and orderer organizations.
    roots_pem: Vec<u8>,
    /// Consenter ids by the DER of their TLS client certificates.
    consenter_certs: HashMap<Vec<u8>, u32>,
}

impl TlsFiles {
    /// Reads the orderer's certificate and key, and takes the roots and the consenters'
    /// certificates from `config`.
    fn load(cfg: &OrdererConfig, config: &ChannelConfig) -> Result<Self> {
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
        let mut consenter_certs = HashMap::new();
        for c in config.consenters().iter() {
            if let Ok(cert) = Certificate::from_pem(&c.client_tls_cert_pem) {
                consenter_certs.insert(cert.der().to_vec(), c.id);
            }
        }
        Ok(TlsFiles {
            cert_pem,
            key_pem,
            roots_pem: pem_of_ders(&tls_roots),
            consenter_certs,
        })
    }
}

/// Opens the vote audit file for appending, if one is configured.
fn open_audit(cfg: &OrdererConfig) -> Result<Option<std::fs::File>> {
    match &cfg.vote_audit_file {
        Some(p) => Ok(Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::io("open", p, e))?,
        )),
        None => Ok(None),
    }
}

/// The orderer's parts as [`start`] assembles them, one step after the other.
struct Components<'a> {
    cfg: &'a OrdererConfig,
    /// The current channel configuration.
    config: Arc<ChannelConfig>,
    tls: TlsFiles,
    /// Largest Broadcast envelope accepted (`absolute_max_bytes` and room for framing).
    max_envelope: usize,
    shared: Arc<Shared>,
    /// The core's end of its event channel (the services send on `shared.core`).
    core_events: mpsc::Receiver<CoreEvent>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl<'a> Components<'a> {
    /// The state the services and the core share, with its budgets: Broadcast's in-flight
    /// bytes (a quarter of the pool's, at least two envelopes), per other consenter its
    /// inbound queues, and the verifiers (by default every CPU but one, kept for the core and
    /// the transport; half as many for forwarded envelopes).
    fn new(
        cfg: &'a OrdererConfig,
        config: Arc<ChannelConfig>,
        store: BlockStore,
        recovered: &Recovered,
        tls: TlsFiles,
    ) -> Self {
        let (core_tx, core_events) = mpsc::channel(4096);
        let (height_tx, _) = watch::channel(store.height());
        let orderer_metrics = Metrics::new();
        orderer_metrics.height.set(store.height() as i64);
        let limits = &cfg.consensus;
        let max_envelope = config.batch().absolute_max_bytes as usize + 64 * 1024;
        let cluster_queue_bytes = as_usize(limits.cluster_queue_bytes).max(1);
        let in_flight_kib = (recovered.max_pending_bytes / 4).max(2 * max_envelope) / 1024;
        let verify_workers = match limits.verify_workers {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
            n => n,
        };
        let budget = || {
            Arc::new(Semaphore::new(
                cluster_queue_bytes.min(Semaphore::MAX_PERMITS),
            ))
        };
        let inbound = config
            .consenters()
            .iter()
            .filter(|c| c.id != cfg.consenter_id)
            .map(|c| (c.id, (budget(), budget())))
            .collect();
        let verdicts = recovered.node.verdicts();
        let shared = Arc::new(Shared {
            config: RwLock::new(config.clone()),
            store: RwLock::new(store),
            height: height_tx,
            metrics: orderer_metrics,
            healthy: AtomicBool::new(true),
            core: core_tx,
            latencies: std::sync::Mutex::new(std::collections::VecDeque::new()),
            verifier: Verifier::new(verify_workers, verdicts.clone()),
            cluster_verifier: Verifier::new(verify_workers.div_ceil(2), verdicts.clone()),
            in_flight: Arc::new(Semaphore::new(in_flight_kib.min(Semaphore::MAX_PERMITS))),
            inbound,
            cluster_queue_bytes,
            usage: std::sync::Mutex::new(PoolUsage::default()),
        });
        let (shutdown, _) = watch::channel(false);
        Components {
            cfg,
            config,
            tls,
            max_envelope,
            shared,
            core_events,
            shutdown,
            tasks: Vec::new(),
        }
    }

    /// Opens the queues to every other consenter and spawns the tasks that send them.
    fn connect_peers(&mut self) -> Result<HashMap<u32, PeerLink>> {
        let mut peers = HashMap::new();
        for c in self
            .config
            .consenters()
            .iter()
            .filter(|c| c.id != self.cfg.consenter_id)
        {
            let tls = ClientTlsConfig::new()
                .ca_certificate(TlsCertificate::from_pem(&self.tls.roots_pem))
                .identity(Identity::from_pem(&self.tls.cert_pem, &self.tls.key_pem))
                .domain_name(c.host.clone());
            let endpoint = Endpoint::from_shared(format!("https://{}:{}", c.host, c.port))
                .and_then(|e| e.tls_config(tls))
                .map_err(transport)?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true);
            let (link, task) =
                cluster::connect(self.cfg.consenter_id, c.id, endpoint, &self.shared);
            self.tasks.push(task);
            peers.insert(c.id, link);
        }
        Ok(peers)
    }

    /// Binds the gRPC listener and serves the Cluster and AtomicBroadcast services on it
    /// (TLS, client certificates optional but required by Cluster); returns its address.
    async fn serve_grpc(&mut self) -> Result<SocketAddr> {
        let listen = &self.cfg.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::io("bind", listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("bind", listen, e))?;
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.tls.cert_pem, &self.tls.key_pem))
            .client_ca_root(TlsCertificate::from_pem(&self.tls.roots_pem))
            .client_auth_optional(true);
        let consenters = std::mem::take(&mut self.tls.consenter_certs);
        let cluster = cluster::service(self.shared.clone(), consenters);
        let broadcast = broadcast::service(self.shared.clone(), self.max_envelope);
        let mut sd = self.shutdown.subscribe();
        let grpc = Server::builder()
            .tls_config(tls)
            .map_err(transport)?
            .tcp_nodelay(true)
            .add_service(cluster)
            .add_service(broadcast)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = sd.wait_for(|s| *s).await;
            });
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = grpc.await {
                tracing::error!(target: "orderer", error = %e, "gRPC server failed");
            }
        }));
        Ok(addr)
    }

    /// Binds and serves the operations endpoint, if configured; returns its address.
    async fn serve_operations(&mut self) -> Result<Option<SocketAddr>> {
        let Some(listen) = &self.cfg.operations_listen else {
            return Ok(None);
        };
        let shutdown = self.shutdown.subscribe();
        let (addr, task) = operations::serve(listen, self.shared.clone(), shutdown).await?;
        self.tasks.push(task);
        Ok(Some(addr))
    }

    /// Starts the core thread on the recovered node; the orderer is then running.
    fn spawn_core(
        self,
        recovered: Recovered,
        peers: HashMap<u32, PeerLink>,
        audit: Option<std::fs::File>,
        addr: SocketAddr,
        operations_addr: Option<SocketAddr>,
    ) -> Result<RunningOrderer> {
        let Recovered {
            node, initial, wal, ..
        } = recovered;
        let core = Core::spawn(
            node,
            initial,
            wal,
            peers,
            audit,
            self.shared.clone(),
            self.core_events,
        )?;
        tracing::info!(target: "orderer", consenter = self.cfg.consenter_id, %addr, channel = %self.config.channel_id(), "orderer started");
        Ok(RunningOrderer {
            addr,
            operations_addr,
            shared: self.shared,
            shutdown: self.shutdown,
            core: Some(core),
            tasks: self.tasks,
        })
    }
}
