//! A whole peer node, as `medledger peer start` runs it: for every joined channel a RocksDB
//! ledger, its committer and a puller of blocks from the orderers; the endorser with the
//! sandboxed chaincode runtime and the durable transient store; the gateway; Deliver; the
//! private-data service and reconciler; the operations endpoint. One gRPC port (TLS) serves
//! `protos.Endorser`, `gateway.Gateway`, `protos.Deliver` and `medledger.privdata`, as a
//! Fabric peer serves its services on one port.
//!
//! Discovery: the peers of every organization come from the channel configuration
//! (`Organization.peers`); this peer recognises itself by its external endpoint and serves its
//! own endorsements in-process. Orderers are the channel's consenters.

pub mod commits;
pub mod config;
pub mod pull;

use std::collections::HashMap;
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
use medledger_msp::policy::Policy;
use medledger_proto::common::Block;
use medledger_proto::invocation::canonical_function;
use medledger_proto::protos::endorser_client::EndorserClient;
use medledger_proto::protos::endorser_server::EndorserServer;
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

use crate::committer::Committer;
use crate::definitions::{ChaincodeDefinitions, InMemoryDefinitions, LedgerDefinitions};
use crate::deliver::{DeliverChannel, DeliverService};
use crate::endorsement::{PeerChannelContext, PeerTransientStore};
use crate::error::{Error, Result};
use crate::lifecycle::{self, LifecycleExecutor};
use crate::operations::{Operations, OperationsHandle, PeerMetrics};
use crate::privdata::{self, PeerDirectory, PrivateDataService, Reconciler, TlsClient};
use commits::LedgerCommits;
use config::PeerConfig;
use pull::BlockPuller;

/// Largest gRPC message accepted (Fabric's peer default `maxRecvMsgSize`, 100 MiB); larger
/// requests are refused with `RESOURCE_EXHAUSTED` (see [`oversize_as_resource_exhausted`]).
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

/// Rewrites tonic's answer to an oversize request (`OUT_OF_RANGE`, "decoded message length
/// too large", sent trailers-only) to the code gRPC's reference implementations and Fabric's
/// peers give, `RESOURCE_EXHAUSTED`, so Fabric clients see what they expect.
fn oversize_as_resource_exhausted<B>(
    mut response: tonic::codegen::http::Response<B>,
) -> tonic::codegen::http::Response<B> {
    let headers = response.headers_mut();
    let oversize = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| {
            m.contains("message%20length%20too%20large") || m.contains("message length too large")
        });
    if oversize && headers.get("grpc-status").is_some_and(|s| s == "11") {
        headers.insert(
            "grpc-status",
            tonic::codegen::http::HeaderValue::from_static("8"),
        );
    }
    response
}

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
fn protect_process(data_dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| config_err(format!("prctl(PR_SET_DUMPABLE, 0): {e}")))?;
    let io = |what| move |source| Error::Io { what, source };
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
/// definitions; `_lifecycle` needs the channel's lifecycle endorsement policy.
struct DefinitionPolicies {
    channels: HashMap<String, (Arc<LedgerDefinitions>, Arc<ChannelConfig>)>,
    /// Chaincode → functions only evaluated (`peer.yaml`'s `evaluate_only`).
    evaluate_only: HashMap<String, std::collections::HashSet<String>>,
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

    fn evaluate_only(&self, _channel: &str, chaincode: &str, function: &str) -> bool {
        self.evaluate_only
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

/// A running peer; stop it with [`RunningPeer::stop`].
pub struct RunningPeer {
    addr: SocketAddr,
    operations: Option<OperationsHandle>,
    committers: Vec<Arc<Committer>>,
    /// Configuration sequence of each channel (as `committers`) the services were built with.
    config_sequences: Vec<u64>,
    executor: Arc<RuntimeExecutor>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningPeer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningPeer {
    /// The gRPC address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operations endpoint's address, if enabled.
    pub fn operations_addr(&self) -> Option<SocketAddr> {
        self.operations.as_ref().map(OperationsHandle::local_addr)
    }

    /// Ledger height of `channel`, if joined.
    pub fn height(&self, channel: &str) -> Option<u64> {
        self.committers
            .iter()
            .find(|c| c.channel_id() == channel)
            .map(|c| c.ledger().height())
    }

    /// Stops serving, pulling and reconciling, stops chaincode processes, and waits.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for mut t in self.tasks.drain(..) {
            // The gRPC server's graceful shutdown waits for open streams (Deliver, chaincode
            // events, a commit-status wait): bounded, then aborted.
            if tokio::time::timeout(STOP_GRACE, &mut t).await.is_err() {
                warn!(target: "peer", "a task did not stop within {STOP_GRACE:?}; aborting it");
                t.abort();
                let _ = t.await;
            }
        }
        if let Some(ops) = self.operations.take() {
            ops.shutdown().await;
        }
        self.executor.runtime().shutdown().await;
        info!(target: "peer", "peer stopped");
    }

    /// Runs until `signal` resolves, then stops.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.stop().await;
    }

    /// Resolves once a joined channel's configuration changed since the peer started (a
    /// config block committed). The peer's TLS client roots, gateway discovery, private-data
    /// peers and lifecycle policy come from the configuration it started with, so it should
    /// then be restarted: [`run`] does that.
    pub async fn config_changed(&self) {
        let watches = self
            .committers
            .iter()
            .zip(self.config_sequences.iter().copied())
            .map(|(c, started)| {
                let mut rx = c.config_sequence();
                Box::pin(async move {
                    if rx.wait_for(|s| *s != started).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                })
            });
        let watches: Vec<_> = watches.collect();
        if watches.is_empty() {
            std::future::pending::<()>().await;
        }
        futures::future::select_all(watches).await;
    }
}

/// How long [`RunningPeer::stop`] waits for each task (the gRPC server's graceful shutdown
/// included) before aborting it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The signal came; the peer stopped.
    Stopped,
    /// A channel's configuration changed (an organization joined, a CRL changed); the peer
    /// stopped and should be started again so that every service runs with the new
    /// configuration (`medledger peer start` re-executes itself).
    ConfigChanged,
}

/// Runs a peer until `signal` resolves or a joined channel's configuration changes, then
/// stops it. TLS roots, gateway discovery, private-data peers and the lifecycle policy are
/// built at start, so after [`RunOutcome::ConfigChanged`] the caller starts the peer again
/// (Fabric's peer applies a config block to all of them as it commits it); clients see the
/// peer unavailable for that moment.
///
/// # Errors
/// [`start`]'s errors.
pub async fn run(
    cfg: &PeerConfig,
    signal: impl std::future::Future<Output = ()>,
) -> Result<RunOutcome> {
    let peer = start(cfg).await?;
    tokio::select! {
        () = signal => {
            peer.stop().await;
            Ok(RunOutcome::Stopped)
        }
        () = peer.config_changed() => {
            info!(target: "peer", name = %cfg.name, "channel configuration changed; restarting the peer");
            peer.stop().await;
            Ok(RunOutcome::ConfigChanged)
        }
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
    let channel = config.channel_id().to_string();
    let ledger = Arc::new(Ledger::open(
        &cfg.data_dir.join("ledgers").join(&channel),
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
    metrics.set_config_sequence(&channel, config.sequence());
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
                msp_id: org.msp_id.clone(),
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

/// Starts a peer from its configuration: opens (or joins from the genesis blocks) the
/// channels' ledgers, binds the gRPC and operations listeners, and starts pulling blocks.
///
/// # Errors
/// [`Error::Config`] for unusable configuration or key material, [`Error::Ledger`] for
/// storage, [`Error::Io`] for listeners.
pub async fn start(cfg: &PeerConfig) -> Result<RunningPeer> {
    protect_process(&cfg.data_dir)?;
    let signer = Arc::new(
        medledger_msp::folder::load_signing_identity(&cfg.msp_dir, &cfg.msp_id).map_err(|e| {
            config_err(format!(
                "signing identity in {}: {e}",
                cfg.msp_dir.display()
            ))
        })?,
    );
    let definitions = Arc::new(InMemoryDefinitions::new());
    let mut installed = HashMap::new();
    for cc in &cfg.chaincodes {
        definitions.insert(cc.definition()?);
        installed.insert(
            cc.name.clone(),
            InstalledChaincode {
                id: format!("{}:{}", cc.name, cc.version),
                executable: cc.executable.clone(),
            },
        );
    }
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
            .map_err(|e| config_err(format!("transient store: {e}")))?,
    );

    // Endorser with the sandboxed runtime.
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
    let executor = Arc::new(RuntimeExecutor::new(
        ChaincodeRuntime::new(runtime),
        installed,
    ));
    let system = Arc::new(LifecycleExecutor::new(executor.clone(), &cfg.msp_id));
    for j in &joined {
        system.add_channel(j.config.clone());
    }
    // Canonical names, so `ehr:ReadRecord` in a configuration means `ReadRecord`.
    let evaluate_only: HashMap<String, std::collections::HashSet<String>> = cfg
        .chaincodes
        .iter()
        .map(|cc| {
            let functions = cc.evaluate_only.iter();
            let canonical = functions.map(|f| canonical_function(f.as_bytes()));
            (cc.name.clone(), canonical.collect())
        })
        .collect();
    let endorser = Arc::new(
        Endorser::new(
            signer.clone(),
            system,
            Arc::new(PeerTransientStore(transient.clone())),
            EndorserConfig::default(),
        )
        .with_evaluate_only(evaluate_only.clone())
        .with_observer({
            let metrics = metrics.clone();
            Arc::new(move |channel: &str, took: Duration| {
                metrics.observe_endorsement(channel, took.as_secs_f64());
            })
        }),
    );

    let deliver = DeliverService::with_limits(
        crate::deliver::DEFAULT_TIME_WINDOW,
        cfg.limits.deliver_concurrency,
    );
    let private = PrivateDataService::new();
    let mut gateways = HashMap::new();
    for j in &joined {
        let channel = j.config.channel_id().to_string();
        endorser.add_channel(
            &channel,
            Arc::new(PeerChannelContext::new(
                j.committer.clone(),
                j.definitions.clone(),
                &cfg.msp_id,
            )),
        );
        deliver.add_channel(DeliverChannel::from_committer(&j.committer));
        let committer = j.committer.clone();
        private.add_channel(
            j.committer.ledger().clone(),
            Arc::new(move || committer.config()),
            j.definitions.clone(),
        );
        gateways.insert(channel, channel_gateway(cfg, &j.config, &endorser, &tls)?);
    }
    let gateway = GatewayService::new(
        &cfg.msp_id,
        gateways,
        Arc::new(DefinitionPolicies {
            channels: joined
                .iter()
                .map(|j| {
                    let channel = j.config.channel_id().to_string();
                    (channel, (j.definitions.clone(), j.config.clone()))
                })
                .collect(),
            evaluate_only,
        }),
        Arc::new(LedgerCommits::new(
            joined.iter().map(|j| j.committer.clone()),
        )),
        cfg.gateway.to_config(),
    );

    // gRPC services on one TLS port; client certificates optional (clients), required by the
    // private-data service (checked there).
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| Error::Io {
            what: "binding the peer's gRPC listener",
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Io {
        what: "peer listener address",
        source,
    })?;
    let server_tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .client_ca_root(TlsCertificate::from_pem(&tls.roots_pem))
        .client_auth_optional(true);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let router = Server::builder()
        .tls_config(server_tls)
        .map_err(|e| config_err(format!("TLS: {e}")))?
        .tcp_nodelay(true)
        .layer(tower::util::MapResponseLayer::new(
            oversize_as_resource_exhausted,
        ))
        .add_service(
            EndorserServer::new(EndorserService::with_concurrency_limit(
                endorser.clone(),
                cfg.limits.endorser_concurrency,
            ))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            gateway
                .into_service()
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            deliver
                .into_server()
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(private.into_server());
    let mut sd = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
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

    // Block pullers and reconcilers.
    for j in &joined {
        let puller = BlockPuller {
            committer: j.committer.clone(),
            signer: signer.clone(),
            tls: tls.clone(),
            transient: transient.clone(),
            peer_name: cfg.name.clone(),
            config: cfg.deliver_client.to_config(),
        };
        tasks.push(tokio::spawn(puller.run(shutdown_rx.clone())));
        let reconciler = Reconciler::new(
            j.committer.ledger().clone(),
            j.config.clone(),
            j.definitions.clone(),
            Arc::new(private_data_peers(cfg, &j.config)),
            signer.clone(),
            tls.clone(),
        )?;
        let mut sd = shutdown_rx.clone();
        tasks.push(tokio::spawn(reconciler.run(
            RECONCILE_INTERVAL,
            async move {
                let _ = sd.wait_for(|s| *s).await;
            },
        )));
    }

    // Transient store expiry: unsubmitted private data does not stay on disk.
    {
        let transient = transient.clone();
        let ledgers: Vec<_> = joined
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
        let ttl = Duration::from_secs(cfg.transient_ttl_s);
        let mut sd = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
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

    // Operations endpoint.
    let operations = match &cfg.operations_listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|source| Error::Io {
                    what: "binding the operations listener",
                    source,
                })?;
            let mut ops = Operations::new(metrics.clone());
            for j in &joined {
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
            Some(ops.serve(listener)?)
        }
        None => None,
    };
    info!(target: "peer", name = %cfg.name, msp_id = %cfg.msp_id, %addr, channels = joined.len(), "peer started");
    Ok(RunningPeer {
        addr,
        operations,
        committers: joined.iter().map(|j| j.committer.clone()).collect(),
        config_sequences: joined.iter().map(|j| j.config.sequence()).collect(),
        executor,
        shutdown: shutdown_tx,
        tasks,
    })
}
