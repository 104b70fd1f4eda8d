//! The parts [`super::start`] builds a peer from: the process's protection, the joined
//! channels, the gateway's view of each channel, the private-data peers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use medledger_channel::ChannelConfig;
use medledger_endorser::Endorser;
use medledger_gateway::server::{
    ChaincodePolicies, ChannelGateway, EndorserHandle, OrdererEndpoint, PeerEndpoint as GatewayPeer,
};
use medledger_ledger::{Ledger, LedgerConfig};
use medledger_msp::policy::Policy;
use medledger_proto::common::Block;
use medledger_proto::protos::endorser_client::EndorserClient;
use prost::Message;
use tonic::transport::{Certificate as TlsCertificate, ClientTlsConfig, Endpoint, Identity};
use tracing::warn;

use super::MAX_MESSAGE_BYTES;
use super::config::PeerConfig;
use crate::committer::Committer;
use crate::definitions::{ChaincodeDefinitions, InMemoryDefinitions, LedgerDefinitions};
use crate::error::{Error, Result};
use crate::lifecycle;
use crate::operations::PeerMetrics;
use crate::privdata::{self, PeerDirectory, TlsClient};

/// How often the reconciler looks for missing private data.
pub(super) const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);

/// Blocks a channel must have grown past an entry's simulation height before the entry can
/// expire by time.
pub(super) const TRANSIENT_MIN_BLOCKS: u64 = 10;

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

pub(super) fn config_err(reason: impl Into<String>) -> Error {
    Error::Config {
        reason: reason.into(),
    }
}

pub(super) fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| config_err(format!("{}: {e}", path.display())))
}

/// PEM of every TLS root certificate of the channels' organizations (application and
/// orderer).
pub(super) fn tls_roots_pem<'a>(configs: impl Iterator<Item = &'a ChannelConfig>) -> Vec<u8> {
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
pub(super) struct DefinitionPolicies {
    pub(super) channels: HashMap<String, (Arc<LedgerDefinitions>, Arc<ChannelConfig>)>,
    /// Chaincode → functions only evaluated (`peer.yaml`'s `evaluate_only`).
    pub(super) evaluate_only: HashMap<String, std::collections::HashSet<String>>,
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
pub(super) struct ChannelPeers(HashMap<String, Vec<privdata::PeerEndpoint>>);

impl PeerDirectory for ChannelPeers {
    fn peers(&self, msp_id: &str) -> Vec<privdata::PeerEndpoint> {
        self.0.get(msp_id).cloned().unwrap_or_default()
    }
}

/// One joined channel while starting.
pub(super) struct Joined {
    pub(super) committer: Arc<Committer>,
    pub(super) config: Arc<ChannelConfig>,
    /// Definitions committed on the channel, over `peer.yaml`'s.
    pub(super) definitions: Arc<LedgerDefinitions>,
}

pub(super) fn join_channel(
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
pub(super) fn channel_gateway(
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
pub(super) fn private_data_peers(cfg: &PeerConfig, config: &ChannelConfig) -> ChannelPeers {
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
