//! How [`super::start`] builds a peer, one step after the other ([`Components`]): the
//! signing identity, the chaincodes and the joined channels' ledgers; the endorser with its
//! sandboxed runtime; Deliver, private data and the gateway; the gRPC port; the block
//! pullers, reconcilers and transient-store expiry; the operations endpoint.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use medledger_channel::ChannelConfig;
use medledger_endorser::{Endorser, EndorserConfig, EndorserService, RuntimeExecutor};
use medledger_gateway_server::{
    ChaincodePolicies, ChannelGateway, EndorserHandle, GatewayService, OrdererEndpoint,
    PeerEndpoint as GatewayPeer,
};
use medledger_ledger::{Ledger, LedgerConfig, TransientStore};
use medledger_msp::identity::SigningIdentity;
use medledger_msp::policy::Policy;
use medledger_proto::common::Block;
use medledger_proto::invocation::canonical_function;
use medledger_proto::protos::endorser_client::EndorserClient;
use medledger_proto::protos::endorser_server::EndorserServer;
use medledger_proto::{ChannelId, MspId};
use medledger_runtime::process::{
    ChaincodeRuntime, InstalledChaincode, RuntimeConfig, default_launcher,
};
use medledger_runtime::sandbox::LandlockLevel;
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{
    Certificate as TlsCertificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};
use tracing::{info, warn};

use super::commits::LedgerCommits;
use super::config::PeerConfig;
use super::pull::BlockPuller;
use super::{MAX_MESSAGE_BYTES, RunningPeer, oversize_as_resource_exhausted};
use crate::committer::Committer;
use crate::definitions::{ChaincodeDefinitions, InMemoryDefinitions, LedgerDefinitions};
use crate::deliver::{DeliverChannel, DeliverService};
use crate::endorsement::{PeerChannelContext, PeerTransientStore};
use crate::error::{Error, Result};
use crate::lifecycle::{self, LifecycleExecutor};
use crate::operations::{Operations, OperationsHandle, PeerMetrics};
use crate::privdata::{self, PeerDirectory, PrivateDataService, Reconciler, TlsClient};
use crate::scc::SystemChaincodes;

/// How often the reconciler looks for missing private data.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);

/// Blocks a channel must have grown past an entry's simulation height before the entry can
/// expire by time.
const TRANSIENT_MIN_BLOCKS: u64 = 10;

/// Keeps processes of the peer's own user (a chaincode where Landlock is missing, anything
/// else the operator runs as that user) away from the peer's secrets, before any key is read:
/// the process becomes non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`: no `ptrace`, its
/// `/proc/<pid>/mem`, `environ`, `fd` owned by root; reset by `exec`, so a restarted peer
/// sets it again), and `data_dir` is mode 0700 (created so, or tightened with a warning).
///
/// # Errors
/// [`Error::Config`] if the `prctl` fails, [`Error::Io`] if `data_dir` cannot be created or
/// its mode set.
pub(super) fn protect_process(data_dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| config_err(format!("prctl(PR_SET_DUMPABLE, 0): {e}")))?;
    let io = |what| move |error| Error::Io { what, error };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(io("creating the data directory"))?;
    let mode = std::fs::metadata(data_dir)
        .map_err(io("reading the data directory's mode"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        warn!(target: "peer", data_dir = %data_dir.display(), mode = format!("{:o}", mode & 0o7777), "data directory was accessible to other users; setting mode 0700");
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("setting the data directory's mode"))?;
    }
    Ok(())
}

fn config_err(reason: impl Into<String>) -> Error {
    Error::Config {
        reason: reason.into(),
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| config_err(format!("{}: {e}", path.display())))
}

/// PEM of every TLS root certificate of the channels' organizations (application and
/// orderer).
fn tls_roots_pem<'a>(configs: impl Iterator<Item = &'a ChannelConfig>) -> Vec<u8> {
    let mut pem = String::new();
    let mut seen = std::collections::HashSet::new();
    for config in configs {
        let p = config.to_proto();
        for der in p
            .organizations
            .iter()
            .chain(&p.orderer_organizations)
            .flat_map(|o| &o.tls_root_certs)
        {
            if seen.insert(der.clone())
                && let Ok(cert) = medledger_msp::cert::Certificate::from_der(der)
            {
                pem.push_str(&cert.to_pem());
            }
        }
    }
    pem.into_bytes()
}

/// The gateway's endorsement policies and collection members, from each channel's
/// definitions (as Fabric's gateway plans from the chaincode definition's endorsement policy
/// and collection configs); `_lifecycle` needs the channel's lifecycle endorsement policy.
/// Used by the peer and by the whole-network harness's gateways (ADR 0037).
pub struct DefinitionPolicies {
    channels: HashMap<String, (Arc<dyn ChaincodeDefinitions>, Arc<ChannelConfig>)>,
    /// Chaincode → functions only evaluated (`peer.yaml`'s `evaluate_only`).
    evaluate_only: HashMap<String, std::collections::HashSet<String>>,
}

impl DefinitionPolicies {
    /// Over `channels`: per channel id, its chaincode definitions and configuration (the
    /// lifecycle endorsement policy for `_lifecycle`); `evaluate_only`: chaincode name →
    /// canonical names of the functions the gateway only evaluates (`peer.yaml`'s
    /// `evaluate_only`, e.g. the EHR chaincode's `ReadRecord`, `ReadRecords`, `LocateRecords`; ADR 0023).
    pub fn new(
        channels: HashMap<String, (Arc<dyn ChaincodeDefinitions>, Arc<ChannelConfig>)>,
        evaluate_only: HashMap<String, HashSet<String>>,
    ) -> Self {
        DefinitionPolicies {
            channels,
            evaluate_only,
        }
    }
}

impl ChaincodePolicies for DefinitionPolicies {
    fn policy(
        &self,
        channel: &str,
        chaincode: &str,
    ) -> (Option<Policy>, HashMap<String, Vec<String>>) {
        let Some((definitions, config)) = self.channels.get(channel) else {
            return (None, HashMap::new());
        };
        if chaincode == lifecycle::NAMESPACE {
            return (Some(lifecycle::lifecycle_policy(config)), HashMap::new());
        }
        match definitions.definition(chaincode) {
            Some(d) => (
                Some(d.endorsement_policy.clone()),
                d.collections
                    .iter()
                    .map(|(name, c)| {
                        let members = c.member_orgs.msp_ids().into_iter().map(str::to_owned);
                        (name.clone(), members.collect())
                    })
                    .collect(),
            ),
            None => (None, HashMap::new()),
        }
    }

    /// `peer.yaml`'s `evaluate_only` functions, and every function of the query system
    /// chaincodes `qscc` and `cscc`: their answers are not transactions (Fabric's gateway
    /// finds no endorsement plan for them and refuses with `FAILED_PRECONDITION`, as this
    /// refusal does).
    fn evaluate_only(&self, _channel: &str, chaincode: &str, function: &str) -> bool {
        crate::scc::is_system_query(chaincode)
            || self
                .evaluate_only
                .get(chaincode)
                .is_some_and(|fs| fs.contains(function))
    }
}

/// Peers of each organization of a channel, other than this one (for private data).
struct ChannelPeers(HashMap<String, Vec<privdata::PeerEndpoint>>);

impl PeerDirectory for ChannelPeers {
    fn peers(&self, msp_id: &str) -> Vec<privdata::PeerEndpoint> {
        self.0.get(msp_id).cloned().unwrap_or_default()
    }
}

/// One joined channel while starting.
struct Joined {
    committer: Arc<Committer>,
    config: Arc<ChannelConfig>,
    /// Definitions committed on the channel, over `peer.yaml`'s.
    definitions: Arc<LedgerDefinitions>,
}

fn join_channel(
    cfg: &PeerConfig,
    genesis_path: &std::path::Path,
    fallback: &Arc<InMemoryDefinitions>,
    metrics: &Arc<PeerMetrics>,
) -> Result<Joined> {
    let genesis = Block::decode(read(genesis_path)?.as_slice())
        .map_err(|_| config_err(format!("{} is not a block", genesis_path.display())))?;
    let config = ChannelConfig::from_config_block(&genesis)
        .map_err(|e| config_err(format!("{}: {e}", genesis_path.display())))?;
    let channel = config.channel_id().clone();
    let ledger = Arc::new(Ledger::open(
        &cfg.data_dir.join("ledgers").join(channel.as_str()),
        &channel,
        &LedgerConfig::default(),
    )?);
    let definitions = Arc::new(LedgerDefinitions::load(
        &ledger,
        fallback.clone() as Arc<dyn ChaincodeDefinitions>,
    )?);
    let committer = Committer::new(
        ledger,
        Some(&genesis),
        definitions.clone() as Arc<dyn ChaincodeDefinitions>,
        cfg.msp_id.clone(),
    )?
    .with_metrics(metrics.clone());
    let config = committer.config();
    metrics.set_config_sequence(config.channel_id(), config.sequence());
    Ok(Joined {
        committer: Arc::new(committer),
        config,
        definitions,
    })
}

/// Builds the gateway's view of a channel: its peers (this one local) and orderers.
fn channel_gateway(
    cfg: &PeerConfig,
    config: &Arc<ChannelConfig>,
    endorser: &Arc<Endorser>,
    tls: &TlsClient,
) -> Result<ChannelGateway> {
    let client_tls = |host: &str| {
        ClientTlsConfig::new()
            .ca_certificate(TlsCertificate::from_pem(&tls.roots_pem))
            .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
            .domain_name(host.to_owned())
    };
    let lazy_with =
        |host: &str, port: u32, tls: ClientTlsConfig| -> Result<tonic::transport::Channel> {
            Ok(Endpoint::from_shared(format!("https://{host}:{port}"))
                .and_then(|e| e.tls_config(tls))
                .map_err(|e| config_err(format!("endpoint {host}:{port}: {e}")))?
                .connect_timeout(Duration::from_secs(3))
                .tcp_nodelay(true)
                .connect_lazy())
        };
    let lazy = |host: &str, port: u32| -> Result<tonic::transport::Channel> {
        lazy_with(host, port, client_tls(host))
    };
    // Orderers authorize Broadcast by the envelope's signature (Writers), not by a client
    // certificate, which their fixed TLS client roots might not know (see `pull.rs`).
    let lazy_no_cert = |host: &str, port: u32| -> Result<tonic::transport::Channel> {
        let no_cert = ClientTlsConfig::new()
            .ca_certificate(TlsCertificate::from_pem(&tls.roots_pem))
            .domain_name(host.to_owned());
        lazy_with(host, port, no_cert)
    };
    let own = GatewayPeer {
        msp_id: cfg.msp_id.clone(),
        address: cfg.external().to_owned(),
        endorser: EndorserHandle::Local(endorser.clone()),
    };
    let mut peers = vec![own];
    for org in &config.to_proto().organizations {
        for p in &org.peers {
            let address = format!("{}:{}", p.host, p.port);
            if address == cfg.external() {
                continue;
            }
            let client = EndorserClient::new(lazy(&p.host, p.port)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            peers.push(GatewayPeer {
                msp_id: MspId::new(org.msp_id.as_str()).map_err(|e| Error::Config {
                    reason: format!("a channel organization's MSP id: {e}"),
                })?,
                address,
                endorser: EndorserHandle::Remote(client),
            });
        }
    }
    let orderers = config
        .consenters()
        .iter()
        .map(|c| {
            Ok(OrdererEndpoint {
                address: format!("{}:{}", c.host, c.port),
                channel: lazy_no_cert(&c.host, u32::from(c.port))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ChannelGateway {
        config: config.clone(),
        peers,
        orderers,
    })
}

/// Peers of other organizations' and this organization's other peers, for private data.
fn private_data_peers(cfg: &PeerConfig, config: &ChannelConfig) -> ChannelPeers {
    let mut map: HashMap<String, Vec<privdata::PeerEndpoint>> = HashMap::new();
    for org in &config.to_proto().organizations {
        for p in &org.peers {
            if format!("{}:{}", p.host, p.port) == cfg.external() {
                continue;
            }
            map.entry(org.msp_id.clone())
                .or_default()
                .push(privdata::PeerEndpoint {
                    url: format!("https://{}:{}", p.host, p.port),
                    tls_name: p.host.clone(),
                });
        }
    }
    ChannelPeers(map)
}

/// The chaincodes `peer.yaml` lists: their definitions (the fallback under each channel's
/// committed ones) and their installed executables.
fn chaincodes(
    cfg: &PeerConfig,
) -> Result<(
    Arc<InMemoryDefinitions>,
    HashMap<String, InstalledChaincode>,
)> {
    let definitions = Arc::new(InMemoryDefinitions::new());
    let mut installed = HashMap::new();
    for cc in &cfg.chaincodes {
        definitions.insert(cc.definition()?);
        installed.insert(
            cc.name.to_string(),
            InstalledChaincode {
                id: format!("{}:{}", cc.name, cc.version),
                executable: cc.executable.clone(),
            },
        );
    }
    Ok((definitions, installed))
}

/// The sandboxed chaincode runtime, running the `installed` chaincodes.
fn chaincode_runtime(
    cfg: &PeerConfig,
    installed: HashMap<String, InstalledChaincode>,
) -> Arc<RuntimeExecutor> {
    let launcher = cfg
        .sandbox
        .launcher
        .clone()
        .unwrap_or_else(|| default_launcher(None));
    let mut runtime = RuntimeConfig::new(launcher, cfg.data_dir.join("chaincode"));
    runtime.execution_timeout = Duration::from_millis(cfg.sandbox.execution_timeout_ms);
    runtime.user = cfg.sandbox.user();
    runtime.uid_range = cfg.sandbox.uid_range();
    runtime.min_landlock = cfg.sandbox.min_landlock;
    runtime.limits.max_tasks = cfg.sandbox.max_tasks;
    if cfg.sandbox.min_landlock < LandlockLevel::Full {
        warn!(target: "peer::chaincode", min_landlock = %cfg.sandbox.min_landlock, "sandbox.min_landlock is below full: where the kernel does not fully enforce Landlock, chaincode runs anyway and can read what its user can (a peer not running as root: its own key and ledger)");
    }
    Arc::new(RuntimeExecutor::new(
        ChaincodeRuntime::new(runtime),
        installed,
    ))
}

/// Chaincode → functions only evaluated (`peer.yaml`'s `evaluate_only`), by canonical
/// names, so `ehr:ReadRecord` in a configuration means `ReadRecord`.
fn evaluate_only(cfg: &PeerConfig) -> HashMap<String, HashSet<String>> {
    cfg.chaincodes
        .iter()
        .map(|cc| {
            let functions = cc.evaluate_only.iter();
            let canonical = functions.map(|f| canonical_function(f.as_bytes()));
            (cc.name.to_string(), canonical.collect())
        })
        .collect()
}

/// The services the gRPC port serves besides the endorser's.
pub(super) struct Services {
    deliver: DeliverService,
    private: PrivateDataService,
    gateway: GatewayService,
}

/// The peer's parts as [`super::start`] assembles them, one step after the other.
pub(super) struct Components<'a> {
    cfg: &'a PeerConfig,
    signer: Arc<SigningIdentity>,
    /// The installed chaincodes, until the runtime takes them.
    installed: HashMap<String, InstalledChaincode>,
    evaluate_only: HashMap<String, HashSet<String>>,
    metrics: Arc<PeerMetrics>,
    joined: Vec<Joined>,
    tls: TlsClient,
    transient: Arc<TransientStore>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl<'a> Components<'a> {
    /// Loads the signing identity and the chaincodes, opens (or joins from their genesis
    /// blocks) the channels' ledgers, reads the TLS material and opens the transient store.
    pub(super) fn open(cfg: &'a PeerConfig) -> Result<Self> {
        let signer = Arc::new(
            medledger_msp::folder::load_signing_identity(&cfg.msp_dir, cfg.msp_id.as_str())
                .map_err(|e| {
                    config_err(format!(
                        "signing identity in {}: {e}",
                        cfg.msp_dir.display()
                    ))
                })?,
        );
        let (definitions, installed) = chaincodes(cfg)?;
        let metrics = Arc::new(PeerMetrics::new());
        let joined = cfg
            .channels
            .iter()
            .map(|ch| join_channel(cfg, &ch.genesis_block, &definitions, &metrics))
            .collect::<Result<Vec<_>>>()?;
        let tls = TlsClient {
            roots_pem: tls_roots_pem(joined.iter().map(|j| j.config.as_ref())),
            cert_pem: read(&cfg.tls_cert)?,
            key_pem: read(&cfg.tls_key)?,
        };
        let transient = Arc::new(
            TransientStore::open(&cfg.data_dir.join("transient"))
                .map_err(|e| config_err(e.to_string()))?,
        );
        let (shutdown, _) = watch::channel(false);
        Ok(Components {
            cfg,
            signer,
            installed,
            evaluate_only: evaluate_only(cfg),
            metrics,
            joined,
            tls,
            transient,
            shutdown,
            tasks: Vec::new(),
        })
    }

    /// The endorser, with the sandboxed chaincode runtime (returned too: the peer stops it)
    /// and the system chaincodes (`_lifecycle`, `qscc`, `cscc`).
    pub(super) fn endorser(&mut self) -> (Arc<RuntimeExecutor>, Arc<Endorser>) {
        let executor = chaincode_runtime(self.cfg, std::mem::take(&mut self.installed));
        let lifecycle = Arc::new(LifecycleExecutor::new(
            executor.clone(),
            self.cfg.msp_id.clone(),
        ));
        let system = Arc::new(SystemChaincodes::new(lifecycle.clone()));
        for j in &self.joined {
            lifecycle.add_channel(j.config.clone());
            system.add_channel(j.committer.clone());
        }
        let endorser = Arc::new(
            Endorser::new(
                self.signer.clone(),
                system,
                Arc::new(PeerTransientStore(self.transient.clone())),
                EndorserConfig::default(),
            )
            .with_evaluate_only(self.evaluate_only.clone())
            .with_observer({
                let metrics = self.metrics.clone();
                Arc::new(move |channel: &ChannelId, took: Duration| {
                    metrics.observe_endorsement(channel, took.as_secs_f64());
                })
            }),
        );
        (executor, endorser)
    }

    /// Adds every channel to the endorser, Deliver and the private-data service, and builds
    /// the gateway over them.
    pub(super) fn services(&mut self, endorser: &Arc<Endorser>) -> Result<Services> {
        let cfg = self.cfg;
        let deliver = DeliverService::with_limits(
            crate::deliver::DEFAULT_TIME_WINDOW,
            cfg.limits.deliver_concurrency,
        );
        let private = PrivateDataService::new();
        let mut gateways = HashMap::new();
        for j in &self.joined {
            let channel = j.config.channel_id().to_string();
            endorser.add_channel(
                j.config.channel_id().clone(),
                Arc::new(PeerChannelContext::new(
                    j.committer.clone(),
                    j.definitions.clone(),
                    cfg.msp_id.clone(),
                )),
            );
            deliver.add_channel(DeliverChannel::from_committer(&j.committer));
            let committer = j.committer.clone();
            private.add_channel(
                j.committer.ledger().clone(),
                Arc::new(move || committer.config()),
                j.definitions.clone(),
            );
            gateways.insert(
                channel,
                channel_gateway(cfg, &j.config, endorser, &self.tls)?,
            );
        }
        let channels = self.joined.iter().map(|j| {
            let channel = j.config.channel_id().to_string();
            let definitions: Arc<dyn ChaincodeDefinitions> = j.definitions.clone();
            (channel, (definitions, j.config.clone()))
        });
        let policies =
            DefinitionPolicies::new(channels.collect(), std::mem::take(&mut self.evaluate_only));
        let commits = LedgerCommits::new(self.joined.iter().map(|j| j.committer.clone()));
        let gateway = GatewayService::new(
            cfg.msp_id.clone(),
            gateways,
            Arc::new(policies),
            Arc::new(commits),
            super::config::gateway_config(&cfg.gateway),
        );
        Ok(Services {
            deliver,
            private,
            gateway,
        })
    }

    /// Binds the gRPC listener and serves the endorser and `services` on it: one TLS port,
    /// client certificates optional (clients), required by the private-data service (checked
    /// there). Returns its address.
    pub(super) async fn serve_grpc(
        &mut self,
        endorser: Arc<Endorser>,
        services: Services,
    ) -> Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(&self.cfg.listen)
            .await
            .map_err(|error| Error::Io {
                what: "binding the peer's gRPC listener",
                error,
            })?;
        let addr = listener.local_addr().map_err(|error| Error::Io {
            what: "peer listener address",
            error,
        })?;
        let server_tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.tls.cert_pem, &self.tls.key_pem))
            .client_ca_root(TlsCertificate::from_pem(&self.tls.roots_pem))
            .client_auth_optional(true);
        let endorser =
            EndorserService::with_concurrency_limit(endorser, self.cfg.limits.endorser_concurrency);
        let router = Server::builder()
            .tls_config(server_tls)
            .map_err(|e| config_err(format!("TLS: {e}")))?
            .tcp_nodelay(true)
            .layer(tower::util::MapResponseLayer::new(
                oversize_as_resource_exhausted,
            ))
            .add_service(
                EndorserServer::new(endorser)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                services
                    .gateway
                    .into_service()
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                services
                    .deliver
                    .into_server()
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(services.private.into_server());
        let mut sd = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(async move {
            let signal = async move {
                let _ = sd.wait_for(|s| *s).await;
            };
            if let Err(e) = router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                .await
            {
                warn!(target: "peer", error = %e, "gRPC server stopped");
            }
        }));
        Ok(addr)
    }

    /// For every channel, spawns the puller of blocks from the orderers and the reconciler
    /// of missing private data.
    pub(super) fn spawn_pullers(&mut self) -> Result<()> {
        for j in &self.joined {
            let puller = BlockPuller {
                committer: j.committer.clone(),
                signer: self.signer.clone(),
                tls: self.tls.clone(),
                transient: self.transient.clone(),
                peer_name: self.cfg.name.clone(),
                config: super::config::pull_config(&self.cfg.deliver_client),
            };
            self.tasks
                .push(tokio::spawn(puller.run(self.shutdown.subscribe())));
            let reconciler = Reconciler::new(
                j.committer.ledger().clone(),
                j.config.clone(),
                j.definitions.clone(),
                Arc::new(private_data_peers(self.cfg, &j.config)),
                self.signer.clone(),
                self.tls.clone(),
            )?;
            let mut sd = self.shutdown.subscribe();
            self.tasks.push(tokio::spawn(reconciler.run(
                RECONCILE_INTERVAL,
                async move {
                    let _ = sd.wait_for(|s| *s).await;
                },
            )));
        }
        Ok(())
    }

    /// Spawns the transient store's expiry: unsubmitted private data does not stay on disk.
    pub(super) fn spawn_transient_expiry(&mut self) {
        let transient = self.transient.clone();
        let ledgers: Vec<_> = self
            .joined
            .iter()
            .map(|j| j.committer.ledger().clone())
            .collect();
        let heights = move || {
            ledgers
                .iter()
                .map(|l| l.height())
                .collect::<Vec<_>>()
                .into_iter()
        };
        let ttl = Duration::from_secs(self.cfg.transient_ttl_s);
        let mut sd = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval((ttl / 10).clamp(
                Duration::from_secs(1),
                Duration::from_secs(60),
            ));
            loop {
                tokio::select! {
                    () = async { let _ = sd.wait_for(|s| *s).await; } => return,
                    _ = tick.tick() => {
                        let store = transient.clone();
                        let cutoff = std::time::SystemTime::now() - ttl;
                        // Only entries simulated TRANSIENT_MIN_BLOCKS below every channel's
                        // height: nothing expires while blocks are not being cut or a
                        // channel is catching up.
                        let below = heights()
                            .min()
                            .unwrap_or(0)
                            .saturating_sub(TRANSIENT_MIN_BLOCKS);
                        match tokio::task::spawn_blocking(move || store.purge_older_than(cutoff, below)).await {
                            Ok(Ok(n)) if n > 0 => {
                                info!(target: "peer", expired = n, "transient private data expired");
                            }
                            Ok(Err(e)) => warn!(target: "peer", error = %e, "transient store expiry failed"),
                            _ => {}
                        }
                    }
                }
            }
        }));
    }

    /// Binds and serves the operations endpoint, if configured, with a health check per
    /// channel's ledger.
    pub(super) async fn serve_operations(&self) -> Result<Option<OperationsHandle>> {
        let Some(listen) = &self.cfg.operations_listen else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| Error::Io {
                what: "binding the operations listener",
                error,
            })?;
        let mut ops = Operations::new(self.metrics.clone());
        for j in &self.joined {
            let committer = j.committer.clone();
            ops = ops.with_check(
                format!("ledger:{}", j.config.channel_id()),
                Box::new(move || {
                    if let Some((block, _)) = committer.halted() {
                        Err(format!("channel halted at block {block}"))
                    } else if committer.ledger().height() > 0 {
                        Ok(())
                    } else {
                        Err("ledger is empty".into())
                    }
                }),
            );
        }
        Ok(Some(ops.serve(listener)?))
    }

    /// The running peer, serving at `addr` (and `operations`), its chaincodes run by
    /// `executor`.
    pub(super) fn running(
        self,
        addr: SocketAddr,
        operations: Option<OperationsHandle>,
        executor: Arc<RuntimeExecutor>,
    ) -> RunningPeer {
        let cfg = self.cfg;
        info!(target: "peer", name = %cfg.name, msp_id = %cfg.msp_id, %addr, channels = self.joined.len(), "peer started");
        RunningPeer {
            addr,
            operations,
            committers: self.joined.iter().map(|j| j.committer.clone()).collect(),
            config_sequences: self.joined.iter().map(|j| j.config.sequence()).collect(),
            executor,
            shutdown: self.shutdown,
            tasks: self.tasks,
        }
    }
}
