//! A development ordering cluster on one host: crypto material from real certificate
//! authorities, the channel's genesis block, and one `orderer.yaml` per orderer, written to a
//! directory. Used by `medledger orderer devnet`, the benchmark and the multi-process tests;
//! `network up` will build on it.
//!
//! Layout under the directory:
//!
//! ```text
//! ca/orderer/            CA of OrdererMSP (root + TLS CA)
//! ca/org1/               CA of Org1MSP, the application organization
//! genesis.block          block 0 of the channel (serialized common.Block)
//! orderer<i>/orderer.yaml, msp/, tls/{ca.crt,server.crt,server.key}, data/
//! client/msp/            an Org1MSP client identity that may Broadcast and Deliver
//! tls-roots.pem          every TLS root of the channel (what clients trust)
//! ```

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use medledger_ca::{CaConfig, CertificateAuthority, Registration};
use medledger_msp::cert::Certificate;
use medledger_msp::ou::NodeOu;
use medledger_proto::medledger::channel as pb;
use prost::Message;

use medledger_orderer::config::{ConsensusSection, OrdererConfig};
use medledger_orderer::{Error, Result};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DevNetSpec {
    /// Channel id.
    pub channel_id: String,
    /// Host the orderers listen on and are reached at.
    pub host: String,
    /// gRPC port of each orderer (one per orderer; consenter ids are 1..=n).
    pub ports: Vec<u16>,
    /// Operations port of each orderer, if any.
    pub operations_ports: Option<Vec<u16>>,
    /// Block cutting.
    pub batch: pb::BatchConfig,
    /// Consensus timing.
    pub consensus: ConsensusSection,
}

/// Paths of a generated cluster.
#[derive(Debug, Clone)]
pub struct DevNet {
    /// The directory.
    pub dir: PathBuf,
    /// `orderer.yaml` of each orderer, consenter id i+1 at index i.
    pub orderer_configs: Vec<PathBuf>,
    /// The genesis block file.
    pub genesis_block: PathBuf,
    /// MSP folder of the Org1MSP client.
    pub client_msp: PathBuf,
    /// MSP id of the client.
    pub client_msp_id: String,
    /// PEM file with the channel's TLS roots.
    pub tls_roots: PathBuf,
}

fn cfg_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config {
        reason: format!("devnet {what}: {e}"),
    }
}

struct Org {
    ca: CertificateAuthority,
    msp_id: String,
}

impl Org {
    fn new(dir: &Path, name: &str, msp_id: &str, domain: &str) -> Result<Self> {
        let ca = CertificateAuthority::init(
            dir,
            CaConfig::new(format!("ca-{name}"), msp_id, domain),
            "admin",
            "adminpw",
        )
        .map_err(|e| cfg_err("CA init", e))?;
        Ok(Org {
            ca,
            msp_id: msp_id.to_owned(),
        })
    }

    /// Registers and enrolls `name`, writing `<home>/msp` and (with `hosts`) `<home>/tls`;
    /// returns the TLS certificate if issued, else the enrollment certificate (PEM).
    fn enroll(&mut self, home: &Path, name: &str, ou: NodeOu, hosts: &[String]) -> Result<String> {
        let issued = self
            .ca
            .issue_local("admin", Registration::new(name, ou), home, hosts)
            .map_err(|e| cfg_err("enroll", e))?;
        Ok(issued.tls_cert_pem.unwrap_or(issued.cert_pem))
    }

    fn organization(&self) -> Result<pb::Organization> {
        let cfg = self.ca.msp_config().map_err(|e| cfg_err("msp config", e))?;
        Ok(pb::Organization {
            msp_id: self.msp_id.clone(),
            root_certs: cfg.root_certs,
            intermediate_certs: cfg.intermediate_certs,
            crls: cfg.crls,
            tls_root_certs: cfg.tls_root_certs,
            node_ous: true,
            peers: Vec::new(),
        })
    }
}

/// Generates a cluster of `spec.ports.len()` orderers in `dir` (which should be empty).
///
/// # Errors
/// [`Error::Config`] if certificates cannot be issued, [`Error::Io`] on write failures.
pub fn generate(dir: &Path, spec: &DevNetSpec) -> Result<DevNet> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let mut orderer_org = Org::new(
        &dir.join("ca/orderer"),
        "orderer",
        "OrdererMSP",
        "orderer.example.com",
    )?;
    let mut org1 = Org::new(&dir.join("ca/org1"), "org1", "Org1MSP", "org1.example.com")?;
    let hosts = vec![spec.host.clone(), "localhost".to_owned()];
    let mut consenters = Vec::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let id = i as u32 + 1;
        let home = dir.join(format!("orderer{id}"));
        let tls_pem =
            orderer_org.enroll(&home, &format!("orderer{id}"), NodeOu::Orderer, &hosts)?;
        let sign_cert = std::fs::read(home.join("msp/signcerts/cert.pem"))
            .map_err(|e| Error::io("read", home.join("msp/signcerts/cert.pem"), e))?;
        consenters.push(pb::Consenter {
            id,
            msp_id: "OrdererMSP".into(),
            identity: sign_cert,
            client_tls_cert: tls_pem.clone().into_bytes(),
            server_tls_cert: tls_pem.into_bytes(),
            endpoint: Some(pb::Endpoint {
                host: spec.host.clone(),
                port: u32::from(*port),
            }),
        });
    }
    let client_home = dir.join("client");
    org1.enroll(&client_home, "client1", NodeOu::Client, &[])?;
    let proto = pb::ChannelConfig {
        channel_id: spec.channel_id.clone(),
        sequence: 0,
        organizations: vec![org1.organization()?],
        orderer_organizations: vec![orderer_org.organization()?],
        consenters,
        policies: medledger_channel::config::default_policies(),
        batch: Some(spec.batch),
    };
    let config = medledger_channel::ChannelConfig::from_proto(proto)?;
    let genesis = config.config_block(0, &[], SystemTime::now());
    let genesis_block = dir.join("genesis.block");
    std::fs::write(&genesis_block, genesis.encode_to_vec())
        .map_err(|e| Error::io("write", &genesis_block, e))?;
    let tls_roots = dir.join("tls-roots.pem");
    let roots: String = [&orderer_org, &org1]
        .iter()
        .map(|o| o.ca.tls_root_cert().to_pem())
        .collect();
    std::fs::write(&tls_roots, roots).map_err(|e| Error::io("write", &tls_roots, e))?;
    let mut orderer_configs = Vec::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let id = i as u32 + 1;
        let home = dir.join(format!("orderer{id}"));
        let cfg = OrdererConfig {
            consenter_id: id,
            genesis_block: PathBuf::from("../genesis.block"),
            data_dir: PathBuf::from("data"),
            msp_dir: PathBuf::from("msp"),
            msp_id: "OrdererMSP".into(),
            tls_cert: PathBuf::from("tls/server.crt"),
            tls_key: PathBuf::from("tls/server.key"),
            listen: format!("{}:{port}", spec.host),
            operations_listen: spec
                .operations_ports
                .as_ref()
                .and_then(|p| p.get(i))
                .map(|p| format!("{}:{p}", spec.host)),
            consensus: spec.consensus.clone(),
            vote_audit_file: None,
        };
        let path = home.join("orderer.yaml");
        let yaml = serde_yaml_ng::to_string(&cfg).map_err(|e| cfg_err("yaml", e))?;
        std::fs::write(&path, yaml).map_err(|e| Error::io("write", &path, e))?;
        orderer_configs.push(path);
    }
    // Validate what we wrote.
    let _ = Certificate::from_pem(
        &std::fs::read(client_home.join("msp/signcerts/cert.pem"))
            .map_err(|e| Error::io("read", &client_home, e))?,
    )
    .map_err(|e| cfg_err("client certificate", e))?;
    Ok(DevNet {
        dir: dir.to_path_buf(),
        orderer_configs,
        genesis_block,
        client_msp: client_home.join("msp"),
        client_msp_id: "Org1MSP".into(),
        tls_roots,
    })
}

/// Free TCP ports on `host`, distinct within this process, bound and released: another
/// process could take one in between, which tests accept.
///
/// The ports are taken below Linux's default ephemeral range (32768-60999), from
/// 20000-32767, so that an outgoing connection's local port (which the kernel picks from the
/// ephemeral range) cannot take one before the node it is meant for binds it: a node started
/// seconds later (a FHIR server after the chaincode is defined) otherwise found its port
/// taken. A process-wide counter, starting at a place given by the process id, keeps
/// concurrent tests of one process from drawing the same port; a port found busy is skipped.
/// Falls back to ports the kernel picks if that range has none free.
///
/// # Errors
/// [`Error::Io`] if binding fails.
pub fn free_ports(host: &str, n: usize) -> Result<Vec<u16>> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let mut listeners = Vec::with_capacity(n);
    let mut tried = 0;
    while listeners.len() < n && tried < SPAN {
        tried += 1;
        let port =
            u16::try_from(LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN).unwrap_or(u16::MAX);
        if let Ok(l) = std::net::TcpListener::bind((host, port)) {
            listeners.push(l);
        }
    }
    while listeners.len() < n {
        listeners
            .push(std::net::TcpListener::bind((host, 0)).map_err(|e| Error::io("bind", host, e))?);
    }
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| Error::io("bind", host, e))
        })
        .collect()
}
