//! Generating a network's material from its [`NetworkSpec`]: a CA per organization (with its
//! TLS CA), every node's identity, TLS certificate and configuration file, the channel's
//! genesis block, demo identities, and a connection profile.
//!
//! Layout of the network directory:
//!
//! ```text
//! network.yaml            the spec it was generated from (what `up` restarts)
//! genesis.block           block 0 of the channel
//! tls-roots.pem           every TLS root CA of the channel (what clients trust)
//! connection.yaml         connection profile (Fabric's common connection profile format)
//! identities.yaml         demo identities: name, MSP id, MSP folder, gateway peer
//! ca/<org>/               each organization's CA (serve it with `medledger ca serve`)
//! nodes/<node>/           orderer.yaml or peer.yaml, msp/, tls/, data/
//! nodes/fhir.<org>/       fhir.yaml, msp/ (the organization's MSP), tls/ (HTTPS server
//!                         certificate), wallet/<enrollment id>/ (delegate enrollments)
//! identities/<name>/msp   demo identities' MSP folders
//! identities/<name>/tls   their TLS client certificates (cert.pem, key.pem, ca.crt)
//! logs/<node>.log, run/<node>.pid   written by `network up`
//! ```

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use ehr_chaincode::ids::PseudonymKey;
use ehr_fhir::backend::Wallet;
use ehr_fhir::config::{FhirConfig, GatewayEndpoint};
use medledger_ca::{CaConfig, CertificateAuthority, Profile, Registration};
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_orderer::config::{ConsensusSection, OrdererConfig};
use medledger_peer_config::config::{
    ChaincodeSection, ChannelSection, DeliverClientSection, GatewaySection, PeerConfig,
    SandboxSection,
};
use medledger_peer_config::lifecycle::{CollectionConfig, Definition};
use medledger_proto::medledger::channel as pb;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::spec::{ChaincodeSpec, NetworkSpec, NodeSpec, OrgSpec};

/// Password of each CA's bootstrap registrar in a generated network (the CA state stays on
/// this machine; change it before serving a CA to others).
pub const CA_BOOT_ID: &str = "admin";
const CA_BOOT_SECRET: &str = "adminpw";

/// A demo identity, as listed in `identities.yaml` and used by `--as NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityEntry {
    /// `org1-doctor`, `patient:<Patient.id>`.
    pub name: String,
    /// MSP id.
    pub msp_id: String,
    /// MSP folder, relative to the network directory.
    pub msp_dir: PathBuf,
    /// `ehr.role` attribute.
    pub role: String,
    /// Gateway peer of its organization, `host:port`.
    pub gateway: String,
    /// TLS host name of that peer.
    pub gateway_host: String,
}

/// `identities.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identities {
    /// Channel the identities use.
    pub channel: String,
    /// Every demo identity.
    pub identities: Vec<IdentityEntry>,
}

impl Identities {
    /// Reads `DIR/identities.yaml`.
    ///
    /// # Errors
    /// Missing or unreadable file.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("identities.yaml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is there a network in {}? run `medledger network up`)",
                path.display(),
                dir.display()
            )
        })?;
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Saves to `DIR/identities.yaml`.
    ///
    /// # Errors
    /// Write failure.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join("identities.yaml");
        std::fs::write(&path, serde_yaml_ng::to_string(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The identity called `name`.
    pub fn get(&self, name: &str) -> Option<&IdentityEntry> {
        self.identities.iter().find(|i| i.name == name)
    }
}

/// Directory name of a node: `orderer1`, `peer0.org1`.
pub fn node_dir_name(org: Option<&OrgSpec>, node: &NodeSpec) -> String {
    match org {
        Some(o) => format!("{}.{}", node.name, o.name),
        None => node.name.clone(),
    }
}

/// What a node process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An orderer (`medledger orderer start`).
    Orderer,
    /// A peer (`medledger peer start`).
    Peer,
    /// An organization's FHIR R4 API server (`medledger fhir serve`, ADR 0039).
    Fhir,
}

/// The generated files of one node.
#[derive(Debug, Clone)]
pub struct GeneratedNode {
    /// Directory name under `nodes/` (also the process name).
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// Its configuration file.
    pub config: PathBuf,
    /// Operations endpoint `host:port` (a FHIR server's: its HTTPS `host:port`, whose
    /// `GET /fhir/metadata` tells its health).
    pub operations: String,
}

/// Directory name of an organization's FHIR server: `fhir.org1`.
pub fn fhir_dir_name(org: &OrgSpec) -> String {
    format!("fhir.{}", org.name)
}

/// The `base_url` of `org`'s FHIR server: `https://HOST:PORT/fhir`, HOST its first peer's
/// host (`localhost` for `127.0.0.1`, a name its certificate also carries).
pub fn fhir_base_url(org: &OrgSpec) -> Option<String> {
    let node = org.fhir_node()?;
    let host = if node.host == "127.0.0.1" {
        "localhost"
    } else {
        &node.host
    };
    Some(format!("https://{host}:{}/fhir", node.port))
}

/// Nodes of a generated network: orderers, peers, then FHIR servers.
pub fn nodes(dir: &Path, spec: &NetworkSpec) -> Vec<GeneratedNode> {
    let orderers = spec.orderer_org.orderers.iter().map(|n| {
        let name = node_dir_name(None, n);
        GeneratedNode {
            config: dir.join("nodes").join(&name).join("orderer.yaml"),
            name,
            kind: NodeKind::Orderer,
            operations: format!("{}:{}", n.host, n.operations_port),
        }
    });
    let peers = spec.organizations.iter().flat_map(|o| {
        o.peers.iter().map(move |n| {
            let name = node_dir_name(Some(o), n);
            GeneratedNode {
                config: dir.join("nodes").join(&name).join("peer.yaml"),
                name,
                kind: NodeKind::Peer,
                operations: format!("{}:{}", n.host, n.operations_port),
            }
        })
    });
    let fhir = spec.organizations.iter().filter_map(|o| {
        let n = o.fhir_node()?;
        let name = fhir_dir_name(o);
        Some(GeneratedNode {
            config: dir.join("nodes").join(&name).join("fhir.yaml"),
            name,
            kind: NodeKind::Fhir,
            operations: format!("{}:{}", n.host, n.port),
        })
    });
    orderers.chain(peers).chain(fhir).collect()
}

struct Org {
    ca: CertificateAuthority,
}

impl Org {
    fn new(dir: &Path, name: &str, msp_id: &str, domain: &str) -> Result<Self> {
        let ca = CertificateAuthority::init(
            &dir.join("ca").join(name),
            CaConfig::new(format!("ca-{name}"), msp_id, domain),
            CA_BOOT_ID,
            CA_BOOT_SECRET,
        )
        .with_context(|| format!("creating the CA of {msp_id}"))?;
        Ok(Org { ca })
    }

    fn issue(
        &mut self,
        registration: Registration,
        home: &Path,
        hosts: &[String],
    ) -> Result<String> {
        let id = registration.enrollment_id.clone();
        let issued = self
            .ca
            .issue_local(CA_BOOT_ID, registration, home, hosts)
            .with_context(|| format!("issuing {id}"))?;
        Ok(issued.tls_cert_pem.unwrap_or(issued.cert_pem))
    }

    /// A new P-256 key and the certificate of `profile` the CA issues `enrollment_id` for it
    /// (a reenrollment: same enrollment id and attributes, no secret, not counted).
    fn reenroll_new_key(
        &mut self,
        enrollment_id: &str,
        profile: Profile,
    ) -> Result<(SigningKey, medledger_ca::Enrollment)> {
        let key = SigningKey::generate()?;
        let csr = medledger_ca::build_csr(&key, enrollment_id, &[])?;
        let issued = self
            .ca
            .reenroll(enrollment_id, &csr, profile, &[])
            .with_context(|| format!("issuing {enrollment_id} a {profile:?} certificate"))?;
        Ok((key, issued))
    }

    /// Issues `enrollment_id` (registered with [`medledger_ca::TLS_ATTRIBUTE`]) a TLS client
    /// certificate from the TLS CA, with a new key: `<tls>/{cert.pem,key.pem,ca.crt}` (key
    /// 0600 in a 0700 directory).
    fn client_tls(&mut self, enrollment_id: &str, tls: &Path) -> Result<()> {
        let (key, issued) = self.reenroll_new_key(enrollment_id, Profile::Tls)?;
        create_private_dir(tls)?;
        write_file(&tls.join("cert.pem"), issued.cert_pem.as_bytes(), false)?;
        write_file(&tls.join("key.pem"), key.to_pkcs8_pem()?.as_bytes(), true)?;
        write_file(&tls.join("ca.crt"), issued.ca_cert_pem.as_bytes(), false)
    }

    /// A delegate enrollment of `enrollment_id` for a FHIR server's `wallet` (ADR 0039): a new
    /// key, and a certificate for the same enrollment id and attributes (a reenrollment, as
    /// `medledger fhir delegate` obtains from a served CA).
    fn delegate(&mut self, msp_id: &str, enrollment_id: &str, wallet: &Path) -> Result<()> {
        let (key, issued) = self.reenroll_new_key(enrollment_id, Profile::Ecert)?;
        let cert = Certificate::from_pem(issued.cert_pem.as_bytes())?;
        let identity = SigningIdentity::new(msp_id.to_owned(), cert, key)?;
        Wallet::new(wallet, msp_id)
            .store(&identity)
            .map_err(|e| anyhow::anyhow!("writing the delegate of {enrollment_id}: {e}"))?;
        Ok(())
    }

    fn organization(&self, msp_id: &str, peers: Vec<pb::Endpoint>) -> Result<pb::Organization> {
        let cfg = self.ca.msp_config()?;
        Ok(pb::Organization {
            msp_id: msp_id.to_owned(),
            root_certs: cfg.root_certs,
            intermediate_certs: cfg.intermediate_certs,
            crls: cfg.crls,
            tls_root_certs: cfg.tls_root_certs,
            node_ous: true,
            peers,
        })
    }
}

fn tls_hosts(node: &NodeSpec) -> Vec<String> {
    let mut hosts = vec![node.host.clone()];
    for extra in ["localhost", "127.0.0.1"] {
        if !hosts.iter().any(|h| h == extra) {
            hosts.push(extra.to_owned());
        }
    }
    hosts
}

/// Creates `dir` (and its parents) and makes it 0700.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

/// Writes `path`, 0600 when `private`.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn write_yaml(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_yaml_ng::to_string(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The chaincode executable: the spec's, or `<name>-chaincode` next to this executable.
fn chaincode_executable(spec_path: Option<&Path>, name: &str) -> PathBuf {
    spec_path.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default()
            .join(format!("{name}-chaincode"))
    })
}

/// The definition (sequence 1) of a chaincode of the spec, as `network up` approves and
/// commits it: its endorsement policy, and with `private_collection_per_org` one collection
/// `<MSPID>PHI` per organization whose only member and endorser is that organization, plus
/// for each ordered pair of organizations the share collection the EHR chaincode copies a
/// custodian's record into for a consented grantee (`<Custodian>-to-<Grantee>-PHI`,
/// [`ehr_chaincode::ids::share_collection`]): both are members (the custodian's peers keep the
/// copy and serve it to the grantee's), the custodian's peers alone endorse (ADR 0029).
pub fn chaincode_definition(spec: &NetworkSpec, cc: &ChaincodeSpec) -> Definition {
    let mut collections = Vec::new();
    if cc.private_collection_per_org {
        for o in &spec.organizations {
            collections.push(CollectionConfig {
                name: ehr_chaincode::ids::default_collection(o.msp_id.as_str()),
                member_orgs: format!("OR('{}.member')", o.msp_id),
                endorsement_policy: Some(format!("OR('{}.peer')", o.msp_id)),
                block_to_live: 0,
            });
        }
        for c in &spec.organizations {
            for g in spec.organizations.iter().filter(|g| g.msp_id != c.msp_id) {
                if let Some(name) =
                    ehr_chaincode::ids::share_collection(c.msp_id.as_str(), g.msp_id.as_str())
                {
                    collections.push(CollectionConfig {
                        name,
                        member_orgs: format!("OR('{}.member','{}.member')", c.msp_id, g.msp_id),
                        endorsement_policy: Some(format!("OR('{}.peer')", c.msp_id)),
                        block_to_live: 0,
                    });
                }
            }
        }
    }
    Definition {
        name: cc.name.clone(),
        version: cc.version.clone(),
        sequence: 1,
        endorsement_policy: cc.endorsement_policy.clone(),
        collections,
    }
}

/// Demo identities per organization: (suffix, NodeOU, `ehr.role`).
const DEMO_ROLES: [(&str, NodeOu, &str); 3] = [
    ("admin", NodeOu::Admin, "admin"),
    ("doctor", NodeOu::Client, "doctor"),
    ("lab", NodeOu::Client, "lab"),
];

/// Generates the network of `spec` into `dir` (which must not hold a network yet), with demo
/// identities for `patients` (Patient.id values, enrolled at the first organization, the
/// custodian of the demo data).
///
/// # Errors
/// Certificates that cannot be issued, files that cannot be written.
pub fn generate(dir: &Path, spec: &NetworkSpec, patients: &[String]) -> Result<Vec<GeneratedNode>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let nodes_dir = dir.join("nodes");
    let oo = &spec.orderer_org;
    let mut orderer_org = Org::new(dir, &oo.name, oo.msp_id.as_str(), &oo.domain)?;
    let mut consenters = Vec::new();
    for (i, node) in oo.orderers.iter().enumerate() {
        let home = nodes_dir.join(node_dir_name(None, node));
        let tls_pem = orderer_org.issue(
            Registration::new(node.name.clone(), NodeOu::Orderer),
            &home,
            &tls_hosts(node),
        )?;
        let sign_cert = std::fs::read(home.join("msp/signcerts/cert.pem"))?;
        consenters.push(pb::Consenter {
            id: i as u32 + 1,
            msp_id: oo.msp_id.to_string(),
            identity: sign_cert,
            client_tls_cert: tls_pem.clone().into_bytes(),
            server_tls_cert: tls_pem.into_bytes(),
            endpoint: Some(pb::Endpoint {
                host: node.host.clone(),
                port: u32::from(node.port),
            }),
        });
    }
    let mut organizations = Vec::new();
    let mut identities = Identities {
        channel: spec.channel.clone(),
        identities: Vec::new(),
    };
    let mut tls_roots = orderer_org.ca.tls_root_cert().to_pem();
    for (index, org) in spec.organizations.iter().enumerate() {
        let patients = if index == 0 { patients } else { &[] };
        let (organization, tls_root) = generate_org(dir, org, patients, &mut identities)?;
        tls_roots.push_str(&tls_root);
        organizations.push(organization);
    }
    let batch = pb::BatchConfig {
        max_message_count: spec.batch.max_message_count,
        absolute_max_bytes: spec.batch.absolute_max_bytes,
        preferred_max_bytes: spec.batch.preferred_max_bytes,
        batch_timeout_ms: spec.batch.batch_timeout_ms,
    };
    let proto = pb::ChannelConfig {
        channel_id: spec.channel.clone(),
        sequence: 0,
        organizations,
        orderer_organizations: vec![orderer_org.organization(oo.msp_id.as_str(), Vec::new())?],
        consenters,
        policies: medledger_channel::config::default_policies(),
        batch: Some(batch),
    };
    let config = medledger_channel::ChannelConfig::from_proto(proto)
        .context("building the channel configuration")?;
    let genesis = config.config_block(0, &[], SystemTime::now());
    std::fs::write(dir.join("genesis.block"), genesis.encode_to_vec())?;
    std::fs::write(dir.join("tls-roots.pem"), &tls_roots)?;

    // Node configuration files.
    let consensus = ConsensusSection {
        propose_timeout_ms: ConsensusSection::default()
            .propose_timeout_ms
            .max(spec.batch.batch_timeout_ms * 2),
        ..ConsensusSection::default()
    };
    for (i, node) in oo.orderers.iter().enumerate() {
        let home = nodes_dir.join(node_dir_name(None, node));
        let cfg = OrdererConfig {
            consenter_id: i as u32 + 1,
            genesis_block: PathBuf::from("../../genesis.block"),
            data_dir: PathBuf::from("data"),
            msp_dir: PathBuf::from("msp"),
            msp_id: oo.msp_id.to_string(),
            tls_cert: PathBuf::from("tls/server.crt"),
            tls_key: PathBuf::from("tls/server.key"),
            listen: node.bind(node.port),
            operations_listen: Some(node.bind(node.operations_port)),
            consensus: consensus.clone(),
            vote_audit_file: None,
        };
        write_yaml(&home.join("orderer.yaml"), &cfg)?;
    }
    for org in &spec.organizations {
        write_peer_configs(dir, spec, org)?;
        write_fhir_config(dir, spec, org)?;
    }
    identities.save(dir)?;
    write_connection_profile(dir, spec)?;
    write_yaml(&dir.join("network.yaml"), spec)?;
    Ok(nodes(dir, spec))
}

/// Where an organization's EHR pseudonym key is kept (ADR 0031): `ehr-keys/<org>.key`, 64 hex
/// digits, readable by the owner only.
pub fn pseudonym_key_path(dir: &Path, org_name: &str) -> PathBuf {
    dir.join("ehr-keys").join(format!("{org_name}.key"))
}

/// Reads a pseudonym key file: 32 raw bytes, or 64 hex digits (surrounding whitespace
/// ignored).
///
/// # Errors
/// An unreadable file or another length or content.
pub fn read_pseudonym_key(path: &Path) -> Result<PseudonymKey> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&bytes).map(str::trim).ok();
    let raw = match text.and_then(|t| hex::decode(t).ok()) {
        Some(decoded) if decoded.len() == PseudonymKey::LEN => decoded,
        _ => bytes,
    };
    PseudonymKey::from_bytes(&raw).map_err(|_| {
        anyhow::anyhow!(
            "{}: a pseudonym key is 32 bytes or 64 hex digits",
            path.display()
        )
    })
}

/// Creates `org_name`'s pseudonym key (32 random bytes) at [`pseudonym_key_path`] (directory
/// 0700, file 0600), or reads the one already there.
///
/// # Errors
/// A file that cannot be written or read, or holds no key.
pub fn write_pseudonym_key(dir: &Path, org_name: &str) -> Result<PseudonymKey> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = pseudonym_key_path(dir, org_name);
    if path.exists() {
        // A key copied in by hand may have been created readable by others.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
        return read_pseudonym_key(&path);
    }
    let parent = path.parent().context("key path")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .with_context(|| format!("creating {}", parent.display()))?;
    let key = PseudonymKey::from_bytes(&rand::random::<[u8; 32]>())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{}", hex::encode(key.as_bytes()))?;
    Ok(key)
}

/// Generates one application organization into `dir`: its CA (and TLS CA), its peers'
/// identities and TLS certificates, its EHR pseudonym key, and demo identities (admin, doctor, lab technician, an
/// emergency doctor, and `patients`), which are appended to `identities`. Returns its channel
/// configuration entry and its TLS root certificate (PEM).
///
/// # Errors
/// Certificates that cannot be issued, files that cannot be written.
pub fn generate_org(
    dir: &Path,
    org: &OrgSpec,
    patients: &[String],
    identities: &mut Identities,
) -> Result<(pb::Organization, String)> {
    let nodes_dir = dir.join("nodes");
    let mut o = Org::new(dir, &org.name, org.msp_id.as_str(), &org.domain)?;
    for node in &org.peers {
        let home = nodes_dir.join(node_dir_name(Some(org), node));
        o.issue(
            Registration::new(node_dir_name(Some(org), node), NodeOu::Peer),
            &home,
            &tls_hosts(node),
        )?;
    }
    let gateway = &org.peers[0];
    // The FHIR server: its HTTPS certificate (and the organization's MSP folder beside it),
    // and its wallet, which gets a delegate enrollment of each demo identity (ADR 0039).
    let wallet = match org.fhir_node() {
        Some(node) => {
            let home = nodes_dir.join(fhir_dir_name(org));
            o.issue(
                Registration::new(fhir_dir_name(org), NodeOu::Client)
                    .with_attribute(medledger_ca::TLS_ATTRIBUTE, "true"),
                &home,
                &tls_hosts(&node),
            )?;
            let wallet = home.join("wallet");
            create_private_dir(&wallet)?;
            Some(wallet)
        }
        None => None,
    };
    // The organization's pseudonym key (ADR 0031): its patients' ledger ids. `up` stores it in
    // the organization's PHI collection; patient certificates carry the ledger id only.
    let key = write_pseudonym_key(dir, &org.name)?;
    let mut add = |o: &mut Org,
                   name: String,
                   enrollment_id: String,
                   ou: NodeOu,
                   role: &str,
                   extra: &[(&str, &str)]| {
        let home = dir.join("identities").join(&enrollment_id);
        // `medledger.tls`: the CA issues TLS certificates to clients only with it (mutual TLS
        // with the FHIR server). Staff get one; patients do not (a patient's certificate is
        // never a TLS client of the organization's nodes: they use the FHIR server with a
        // bearer token).
        let staff = role != "patient";
        let mut reg = Registration::new(enrollment_id.clone(), ou).with_attribute("ehr.role", role);
        if staff {
            reg = reg.with_attribute(medledger_ca::TLS_ATTRIBUTE, "true");
        }
        for (k, v) in extra {
            reg = reg.with_attribute(k, v);
        }
        o.issue(reg, &home, &[])?;
        if staff {
            o.client_tls(&enrollment_id, &home.join("tls"))?;
        }
        if let Some(wallet) = &wallet {
            o.delegate(org.msp_id.as_str(), &enrollment_id, wallet)?;
        }
        identities.identities.push(IdentityEntry {
            name,
            msp_id: org.msp_id.to_string(),
            msp_dir: home.join("msp").strip_prefix(dir)?.to_path_buf(),
            role: role.to_owned(),
            gateway: gateway.endpoint(),
            gateway_host: gateway.host.clone(),
        });
        anyhow::Ok(())
    };
    for (suffix, ou, role) in DEMO_ROLES {
        let name = format!("{}-{suffix}", org.name);
        add(&mut o, name.clone(), name, ou, role, &[])?;
    }
    // A doctor allowed break-glass access.
    let name = format!("{}-emergency", org.name);
    add(
        &mut o,
        name.clone(),
        name,
        NodeOu::Client,
        "doctor",
        &[("ehr.emergency", "true")],
    )?;
    for p in patients {
        // The certificate (which goes into every transaction the patient submits) names the
        // ledger id, never the Patient.id; the local name `patient:<Patient.id>` stays on
        // this machine.
        let ledger_id = key.patient(p);
        add(
            &mut o,
            format!("patient:{p}"),
            format!("patient-{ledger_id}"),
            NodeOu::Client,
            "patient",
            &[("ehr.patient_id", &ledger_id)],
        )?;
    }
    let peers = org
        .peers
        .iter()
        .map(|p| pb::Endpoint {
            host: p.host.clone(),
            port: u32::from(p.port),
        })
        .collect();
    Ok((
        o.organization(org.msp_id.as_str(), peers)?,
        o.ca.tls_root_cert().to_pem(),
    ))
}

/// Writes `peer.yaml` for each peer of `org`: joined to the channel from `genesis.block`,
/// with the spec's chaincodes installed.
///
/// # Errors
/// Files that cannot be written.
pub fn write_peer_configs(dir: &Path, spec: &NetworkSpec, org: &OrgSpec) -> Result<()> {
    // Installation, with the definition sequence 1 as the fallback until `up` commits it.
    let chaincodes: Vec<ChaincodeSection> = spec
        .chaincodes
        .iter()
        .map(|cc| {
            let def = chaincode_definition(spec, cc);
            ChaincodeSection {
                name: cc.name.clone(),
                version: cc.version.clone(),
                executable: chaincode_executable(cc.executable.as_deref(), cc.name.as_str()),
                endorsement_policy: def.endorsement_policy,
                collections: def.collections,
                evaluate_only: cc.evaluate_only.clone(),
            }
        })
        .collect();
    for node in &org.peers {
        let name = node_dir_name(Some(org), node);
        let cfg = PeerConfig {
            name: name.clone(),
            msp_id: org.msp_id.clone(),
            msp_dir: PathBuf::from("msp"),
            tls_cert: PathBuf::from("tls/server.crt"),
            tls_key: PathBuf::from("tls/server.key"),
            listen: node.bind(node.port),
            external_endpoint: Some(node.endpoint()),
            operations_listen: Some(node.bind(node.operations_port)),
            data_dir: PathBuf::from("data"),
            channels: vec![ChannelSection {
                genesis_block: PathBuf::from("../../genesis.block"),
            }],
            chaincodes: chaincodes.clone(),
            sandbox: SandboxSection::default(),
            gateway: GatewaySection::default(),
            transient_ttl_s: medledger_peer_config::config::DEFAULT_TRANSIENT_TTL_S,
            deliver_client: DeliverClientSection::default(),
            limits: medledger_peer_config::config::LimitsSection::default(),
        };
        write_yaml(&dir.join("nodes").join(&name).join("peer.yaml"), &cfg)?;
    }
    Ok(())
}

/// Writes `nodes/fhir.<org>/fhir.yaml` ([`FhirConfig`], ADR 0039) when `org` has a FHIR
/// server: listening on its port, `base_url` [`fhir_base_url`], its TLS certificate and the
/// organization's TLS root for client certificates, the organization's MSP folder, the gateway
/// of its first peer (TLS as other clients: the organization's TLS root, the peer's host), the
/// spec's EHR chaincode (the first with `private_collection_per_org`, else the first) and its
/// wallet. Paths are relative to the file's directory (`medledger fhir serve` resolves them).
///
/// # Errors
/// Files that cannot be written, or a configuration [`FhirConfig::validate`] refuses.
pub fn write_fhir_config(dir: &Path, spec: &NetworkSpec, org: &OrgSpec) -> Result<()> {
    let (Some(node), Some(base_url)) = (org.fhir_node(), fhir_base_url(org)) else {
        return Ok(());
    };
    let gateway = &org.peers[0];
    let chaincode = spec
        .chaincodes
        .iter()
        .find(|c| c.private_collection_per_org)
        .or(spec.chaincodes.first())
        .map(|c| c.name.to_string())
        .unwrap_or_else(|| "ehr".to_owned());
    let cfg = FhirConfig {
        listen: node.bind(node.port),
        base_url,
        tls_cert: PathBuf::from("tls/server.crt"),
        tls_key: PathBuf::from("tls/server.key"),
        client_tls_ca: PathBuf::from("tls/ca.crt"),
        msp_dir: PathBuf::from("msp"),
        msp_id: org.msp_id.to_string(),
        gateway: GatewayEndpoint {
            endpoint: format!("https://{}", gateway.endpoint()),
            tls_host: Some(gateway.host.clone()),
            tls_ca: Some(PathBuf::from("tls/ca.crt")),
            tls_cert: None,
            tls_key: None,
        },
        channel: spec.channel.clone(),
        chaincode,
        wallet_dir: PathBuf::from("wallet"),
        ..FhirConfig::default()
    };
    cfg.validate()
        .with_context(|| format!("the FHIR server of {}", org.msp_id))?;
    write_yaml(
        &dir.join("nodes").join(fhir_dir_name(org)).join("fhir.yaml"),
        &cfg,
    )
}

/// Writes `connection.yaml`: Fabric's common connection profile (organizations, peers with
/// `grpcs://` URLs and TLS CA files, orderers, the channel).
///
/// # Errors
/// Write failure.
pub fn write_connection_profile(dir: &Path, spec: &NetworkSpec) -> Result<()> {
    use serde_json::json;
    let mut orgs = serde_json::Map::new();
    let mut peers = serde_json::Map::new();
    for org in &spec.organizations {
        let names: Vec<String> = org
            .peers
            .iter()
            .map(|p| node_dir_name(Some(org), p))
            .collect();
        orgs.insert(
            org.name.clone(),
            json!({ "mspid": org.msp_id, "peers": names, "certificateAuthorities": [format!("ca-{}", org.name)] }),
        );
        for p in &org.peers {
            peers.insert(
                node_dir_name(Some(org), p),
                json!({
                    "url": format!("grpcs://{}", p.endpoint()),
                    "tlsCACerts": { "path": dir.join("tls-roots.pem") },
                    "grpcOptions": { "ssl-target-name-override": p.host },
                }),
            );
        }
    }
    let orderers: serde_json::Map<String, serde_json::Value> = spec
        .orderer_org
        .orderers
        .iter()
        .map(|o| {
            (
                o.name.clone(),
                json!({
                    "url": format!("grpcs://{}", o.endpoint()),
                    "tlsCACerts": { "path": dir.join("tls-roots.pem") },
                }),
            )
        })
        .collect();
    let profile = json!({
        "name": format!("medledger-{}", spec.channel),
        "version": "1.0.0",
        "client": { "organization": spec.organizations[0].name },
        "channels": { spec.channel.clone(): {
            "orderers": orderers.keys().collect::<Vec<_>>(),
            "peers": peers.keys().map(|k| (k.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
        }},
        "organizations": orgs,
        "peers": peers,
        "orderers": orderers,
    });
    write_yaml(&dir.join("connection.yaml"), &profile)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Every file under `dir` with a private key, or written private (0600).
    fn private_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                private_files(&path, out);
            } else if mode(&path) & 0o077 == 0
                || std::fs::read(&path)
                    .is_ok_and(|b| b.windows(b"PRIVATE KEY".len()).any(|w| w == b"PRIVATE KEY"))
            {
                out.push(path);
            }
        }
    }

    /// Issue 16: each organization's FHIR server gets a loadable `fhir.yaml`, and each demo
    /// identity a TLS client certificate and a delegate enrollment in that server's wallet: a
    /// key of its own, a certificate for the same enrollment id and attributes.
    #[test]
    fn fhir_servers_get_configs_wallets_and_client_certificates() {
        let spec =
            NetworkSpec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dev.yaml"))
                .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        let nodes = generate(&dir, &spec, &["p-1".to_owned()]).unwrap();
        let fhir: Vec<_> = nodes.iter().filter(|n| n.kind == NodeKind::Fhir).collect();
        assert_eq!(fhir.len(), 2);
        let text = std::fs::read_to_string(&fhir[0].config).unwrap();
        let cfg = FhirConfig::from_yaml(&text).unwrap();
        assert_eq!(cfg.base_url, "https://localhost:7443/fhir");
        assert_eq!(cfg.msp_id, "Org1MSP");
        assert_eq!(cfg.gateway.endpoint, "https://127.0.0.1:7051");
        let home = fhir[0].config.parent().unwrap();
        assert!(home.join(&cfg.tls_cert).is_file() && home.join(&cfg.client_tls_ca).is_file());
        let wallet = Wallet::new(home.join(&cfg.wallet_dir), "Org1MSP");
        let ids = Identities::load(&dir).unwrap();
        let org1: Vec<_> = ids
            .identities
            .iter()
            .filter(|i| i.msp_id == "Org1MSP")
            .collect();
        assert_eq!(org1.len(), 5, "admin, doctor, lab, emergency, one patient");
        for id in org1 {
            let own =
                medledger_msp::folder::load_signing_identity(&dir.join(&id.msp_dir), "Org1MSP")
                    .unwrap();
            let cn = own.certificate().common_name().to_owned();
            let delegate = wallet.load(&cn).unwrap();
            assert_ne!(
                delegate.certificate().public_key(),
                own.certificate().public_key()
            );
            assert_eq!(
                delegate.certificate().attributes(),
                own.certificate().attributes()
            );
            // Staff hold a TLS client certificate for mutual TLS; patients none (they use a
            // bearer token, and the CA never gives a patient a TLS certificate).
            let tls = dir.join(&id.msp_dir).parent().unwrap().join("tls");
            if id.role == "patient" {
                assert!(!tls.exists(), "{cn} holds a TLS certificate");
                continue;
            }
            let cert =
                Certificate::from_pem(&std::fs::read(tls.join("cert.pem")).unwrap()).unwrap();
            assert_eq!(cert.common_name(), cn);
            assert!(tls.join("key.pem").is_file());
        }
    }

    /// Issue 13 review L5: key files are 0600 in directories 0700 (`tls/`, the CA's
    /// directory and its `tls/`, `msp/keystore`), not in directories anyone can list.
    #[test]
    fn keys_are_private_in_private_directories() {
        let spec =
            NetworkSpec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dev.yaml"))
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        generate(&dir.path().join("net"), &spec, &[]).unwrap();
        let mut files = Vec::new();
        private_files(dir.path(), &mut files);
        assert!(files.iter().any(|f| f.ends_with("tls/server.key")));
        assert!(files.iter().any(|f| f.ends_with("keystore/priv_sk")));
        let loose = files
            .iter()
            .flat_map(|f| {
                [
                    (f.clone(), mode(f), 0o600),
                    (
                        f.parent().unwrap().to_path_buf(),
                        mode(f.parent().unwrap()),
                        0o700,
                    ),
                ]
            })
            .filter(|(_, got, want)| got != want)
            .map(|(p, got, _)| format!("{} {got:o}", p.strip_prefix(dir.path()).unwrap().display()))
            .collect::<std::collections::BTreeSet<_>>();
        assert!(loose.is_empty(), "{loose:#?}");
    }
}
