//! How [`super::start`] builds an orderer, one step after the other: the genesis block and
//! the signing identity, the block store, the node recovered from the WAL, the TLS material,
//! then [`Components`]: the shared state, the links to the other consenters, the gRPC and
//! operations listeners, the core thread.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use medledger_channel::ChannelConfig;
use medledger_msp::cert::Certificate;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::Block;
use prost::Message as _;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{
    Certificate as TlsCertificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};

use super::cluster::{self, PeerLink};
use super::core::{Core, CoreEvent};
use super::shared::{PoolUsage, Shared, Verifier};
use super::{RunningOrderer, broadcast, operations};
use crate::config::OrdererConfig;
use crate::metrics::Metrics;
use crate::node::{Action, Chain, Node, NodeConfig, Now};
use crate::store::BlockStore;
use crate::wal::Wal;
use crate::{Error, Result};

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

/// Reads the genesis block and its configuration (checking the orderer's against it) and
/// loads the orderer's signing identity.
pub(super) fn load_genesis(
    cfg: &OrdererConfig,
) -> Result<(Block, ChannelConfig, Arc<SigningIdentity>)> {
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
pub(super) fn open_store(
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
pub(super) struct Recovered {
    node: Node,
    /// The actions of its start, still to carry out.
    initial: Vec<Action>,
    wal: Wal,
    /// The pending pool's byte limit.
    max_pending_bytes: usize,
}

/// Opens the WAL and recovers the node from `chain` and the WAL's records of the next height.
pub(super) fn recover_node(
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
pub(super) struct TlsFiles {
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
    pub(super) fn load(cfg: &OrdererConfig, config: &ChannelConfig) -> Result<Self> {
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
pub(super) fn open_audit(cfg: &OrdererConfig) -> Result<Option<std::fs::File>> {
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

/// The orderer's parts as [`super::start`] assembles them, one step after the other.
pub(super) struct Components<'a> {
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
    pub(super) fn new(
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
    pub(super) fn connect_peers(&mut self) -> Result<HashMap<u32, PeerLink>> {
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
    pub(super) async fn serve_grpc(&mut self) -> Result<SocketAddr> {
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
    pub(super) async fn serve_operations(&mut self) -> Result<Option<SocketAddr>> {
        let Some(listen) = &self.cfg.operations_listen else {
            return Ok(None);
        };
        let shutdown = self.shutdown.subscribe();
        let (addr, task) = operations::serve(listen, self.shared.clone(), shutdown).await?;
        self.tasks.push(task);
        Ok(Some(addr))
    }

    /// Starts the core thread on the recovered node; the orderer is then running.
    pub(super) fn spawn_core(
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
