//! The channel configuration carried by config blocks (`medledger.channel.ChannelConfig`),
//! validated into the objects orderers and peers use: the MSPs of every organization, the
//! channel policies, the BFT consenter set and the batch parameters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use medledger_msp::cert::Certificate;
use medledger_msp::msp::{DEFAULT_IDENTITY_CACHE_SIZE, Msp, MspConfig, MspManager, NodeOuConfig};
use medledger_msp::ou::NodeOu;
use medledger_msp::policy::{OrgPolicies, Policy, Signer};
use medledger_proto::common::{
    Block, BlockMetadataIndex, ChannelHeader, Envelope, Header, HeaderType, LastConfig, Metadata,
    Payload, SignatureHeader,
};
use medledger_proto::medledger::channel as pb;
use medledger_proto::types::{ChannelId, MspId};
use prost::Message;

use crate::block;

/// Names of the channel policies every configuration must define.
pub const REQUIRED_POLICIES: [&str; 4] = ["Readers", "Writers", "Admins", "Endorsement"];

/// Default `max_message_count` (envelopes per block).
pub const DEFAULT_MAX_MESSAGE_COUNT: u32 = 500;
/// Default `preferred_max_bytes` (2 MiB).
pub const DEFAULT_PREFERRED_MAX_BYTES: u32 = 2 * 1024 * 1024;
/// Default `absolute_max_bytes` (10 MiB).
pub const DEFAULT_ABSOLUTE_MAX_BYTES: u32 = 10 * 1024 * 1024;
/// Default batch timeout, ms.
pub const DEFAULT_BATCH_TIMEOUT_MS: u64 = 250;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A field is invalid; the message names it.
    #[error("invalid channel configuration: {0}")]
    Invalid(String),
    /// An organization's MSP is unusable. The MSP's error is in the message and not returned
    /// as `source()`, so a report of the chain prints it once (ADR 0036).
    #[error("invalid channel configuration: organization {msp_id}: {error}")]
    Msp {
        /// MSP id.
        msp_id: String,
        /// Why (in the message, not a source).
        error: medledger_msp::Error,
    },
    /// A block does not carry a configuration.
    #[error("not a config block: {0}")]
    NotConfigBlock(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Block cutting parameters (Fabric's `BatchSize` + `BatchTimeout`), validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most envelopes per block (default 500).
    pub max_message_count: u32,
    /// Cut once a block's envelopes reach this many bytes (default 2 MiB).
    pub preferred_max_bytes: u32,
    /// Largest envelope accepted, bytes (default 10 MiB).
    pub absolute_max_bytes: u32,
    /// Longest wait from the first pending envelope to cutting a block, ms (default 250).
    pub batch_timeout_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_message_count: DEFAULT_MAX_MESSAGE_COUNT,
            preferred_max_bytes: DEFAULT_PREFERRED_MAX_BYTES,
            absolute_max_bytes: DEFAULT_ABSOLUTE_MAX_BYTES,
            batch_timeout_ms: DEFAULT_BATCH_TIMEOUT_MS,
        }
    }
}

impl BatchConfig {
    /// Reads the protobuf form; zero fields take the defaults.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if `preferred_max_bytes > absolute_max_bytes`.
    pub fn from_proto(p: Option<&pb::BatchConfig>) -> Result<Self, ConfigError> {
        let d = BatchConfig::default();
        let Some(p) = p else { return Ok(d) };
        let pick = |v: u32, default: u32| if v == 0 { default } else { v };
        let b = BatchConfig {
            max_message_count: pick(p.max_message_count, d.max_message_count),
            preferred_max_bytes: pick(p.preferred_max_bytes, d.preferred_max_bytes),
            absolute_max_bytes: pick(p.absolute_max_bytes, d.absolute_max_bytes),
            batch_timeout_ms: if p.batch_timeout_ms == 0 {
                d.batch_timeout_ms
            } else {
                p.batch_timeout_ms
            },
        };
        if b.preferred_max_bytes > b.absolute_max_bytes {
            return Err(invalid(
                "batch: preferred_max_bytes must not exceed absolute_max_bytes",
            ));
        }
        Ok(b)
    }

    /// The protobuf form.
    pub fn to_proto(self) -> pb::BatchConfig {
        pb::BatchConfig {
            max_message_count: self.max_message_count,
            preferred_max_bytes: self.preferred_max_bytes,
            absolute_max_bytes: self.absolute_max_bytes,
            batch_timeout_ms: self.batch_timeout_ms,
        }
    }
}

/// One BFT consenter as peers and orderers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consenter {
    /// Consenter id (> 0, unique).
    pub id: u32,
    /// MSP id of its orderer organization.
    pub msp_id: String,
    /// Its signing certificate.
    pub identity: Certificate,
    /// Its TLS client certificate (PEM), which cluster connections present.
    pub client_tls_cert_pem: Vec<u8>,
    /// Its TLS server certificate (PEM).
    pub server_tls_cert_pem: Vec<u8>,
    /// Host of its cluster / broadcast endpoint.
    pub host: String,
    /// Port of its cluster / broadcast endpoint.
    pub port: u16,
}

impl Consenter {
    /// Public key of its signing certificate (SEC 1 uncompressed P-256 point).
    pub fn public_key(&self) -> &[u8] {
        self.identity.public_key()
    }
}

/// The consenters of a channel, sorted by id. With n consenters the service tolerates
/// f = ⌊(n − 1) / 3⌋ Byzantine ones and decides with a quorum of ⌊2n / 3⌋ + 1 (2f + 1 when
/// n = 3f + 1), as Tendermint with equal voting power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsenterSet {
    consenters: Vec<Consenter>,
}

impl ConsenterSet {
    /// A set from consenters (sorted here).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if empty, or ids are 0 or repeated.
    pub fn new(mut consenters: Vec<Consenter>) -> Result<Self, ConfigError> {
        if consenters.is_empty() {
            return Err(invalid("no consenters"));
        }
        consenters.sort_by_key(|c| c.id);
        if consenters.iter().any(|c| c.id == 0) {
            return Err(invalid("consenter ids must be > 0"));
        }
        if consenters.windows(2).any(|w| w[0].id == w[1].id) {
            return Err(invalid("consenter ids must be unique"));
        }
        Ok(ConsenterSet { consenters })
    }

    /// Number of consenters.
    pub fn len(&self) -> usize {
        self.consenters.len()
    }

    /// Never true (a set has at least one consenter); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.consenters.is_empty()
    }

    /// Byzantine consenters tolerated: ⌊(n − 1) / 3⌋.
    pub fn max_faulty(&self) -> usize {
        (self.len() - 1) / 3
    }

    /// Signatures needed to decide: ⌊2n / 3⌋ + 1.
    pub fn quorum(&self) -> usize {
        2 * self.len() / 3 + 1
    }

    /// The consenter with this id.
    pub fn get(&self, id: u32) -> Option<&Consenter> {
        self.consenters
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .map(|i| &self.consenters[i])
    }

    /// Consenters in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Consenter> {
        self.consenters.iter()
    }
}

/// A validated channel configuration.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    proto: pb::ChannelConfig,
    channel_id: ChannelId,
    /// The application organizations' MSP ids, parsed, in configuration order.
    application_orgs: Vec<MspId>,
    msps: Arc<MspManager>,
    policies: BTreeMap<String, Policy>,
    org_policies: OrgPolicies,
    consenters: ConsenterSet,
    batch: BatchConfig,
}

/// The channel policies of a new channel, as Fabric's sample `configtx.yaml` profiles set
/// them: `Readers` and `Writers` ANY, `Admins` and `Endorsement` MAJORITY (the chaincode
/// lifecycle uses `Endorsement` when there is no `LifecycleEndorsement`). For
/// `pb::ChannelConfig::policies`.
pub fn default_policies() -> std::collections::HashMap<String, String> {
    [
        ("Readers", "ANY Readers"),
        ("Writers", "ANY Writers"),
        ("Admins", "MAJORITY Admins"),
        ("Endorsement", "MAJORITY Endorsement"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl ChannelConfig {
    /// Validates a protobuf configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field, [`ConfigError::Msp`] for an
    /// unusable organization.
    pub fn from_proto(proto: pb::ChannelConfig) -> Result<Self, ConfigError> {
        let channel_id = ChannelId::try_from(proto.channel_id.as_str())
            .map_err(|e| invalid(format!("channel_id: {e}")))?;
        if proto.organizations.is_empty() {
            return Err(invalid("no application organizations"));
        }
        let mut seen = BTreeSet::new();
        let mut roots_seen: BTreeMap<&[u8], &str> = BTreeMap::new();
        let mut msps = Vec::new();
        for org in proto
            .organizations
            .iter()
            .chain(&proto.orderer_organizations)
        {
            if !seen.insert(org.msp_id.clone()) {
                return Err(invalid(format!(
                    "organization {} appears twice",
                    org.msp_id
                )));
            }
            MspId::try_from(org.msp_id.as_str()).map_err(|e| invalid(format!("msp_id: {e}")))?;
            // A root (or TLS root) certificate belongs to one organization: shared, an
            // identity or TLS certificate would be attributed to whichever comes first.
            let own: BTreeSet<&[u8]> = org
                .root_certs
                .iter()
                .chain(&org.intermediate_certs)
                .chain(&org.tls_root_certs)
                .map(Vec::as_slice)
                .collect();
            for der in own {
                if let Some(other) = roots_seen.insert(der, org.msp_id.as_str()) {
                    return Err(invalid(format!(
                        "organizations {other} and {} share a root certificate",
                        org.msp_id
                    )));
                }
            }
            let msp = Msp::new(msp_config(org)).map_err(|error| ConfigError::Msp {
                msp_id: org.msp_id.clone(),
                error,
            })?;
            msps.push(msp);
        }
        let msps = Arc::new(MspManager::new(msps, DEFAULT_IDENTITY_CACHE_SIZE));
        let orderer_orgs: BTreeSet<&str> = proto
            .orderer_organizations
            .iter()
            .map(|o| o.msp_id.as_str())
            .collect();
        let mut consenters = Vec::new();
        for c in &proto.consenters {
            if !orderer_orgs.contains(c.msp_id.as_str()) {
                return Err(invalid(format!(
                    "consenter {} belongs to {}, which is not an orderer organization",
                    c.id, c.msp_id
                )));
            }
            let identity = Certificate::from_pem(&c.identity)
                .map_err(|e| invalid(format!("consenter {} identity: {e}", c.id)))?;
            check_consenter_identity(&msps, c, &identity)?;
            let endpoint = c
                .endpoint
                .as_ref()
                .ok_or_else(|| invalid(format!("consenter {} has no endpoint", c.id)))?;
            let port = u16::try_from(endpoint.port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid(format!("consenter {} port out of range", c.id)))?;
            consenters.push(Consenter {
                id: c.id,
                msp_id: c.msp_id.clone(),
                identity,
                client_tls_cert_pem: c.client_tls_cert.clone(),
                server_tls_cert_pem: c.server_tls_cert.clone(),
                host: endpoint.host.clone(),
                port,
            });
        }
        let consenters = ConsenterSet::new(consenters)?;
        let mut policies = BTreeMap::new();
        for name in REQUIRED_POLICIES {
            if !proto.policies.contains_key(name) {
                return Err(invalid(format!("policy {name} is missing")));
            }
        }
        let application_orgs = proto
            .organizations
            .iter()
            .map(|o| MspId::new(o.msp_id.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("msp_id: {e}")))?;
        let app_orgs: Vec<String> = application_orgs.iter().map(MspId::to_string).collect();
        for (name, text) in &proto.policies {
            let policy: Policy = text
                .parse()
                .map_err(|e| invalid(format!("policy {name}: {e}")))?;
            if let Some(sig) = policy.as_signature() {
                for msp in sig.msp_ids() {
                    if !seen.contains(msp) {
                        return Err(invalid(format!(
                            "policy {name} names unknown organization {msp}"
                        )));
                    }
                }
            }
            policies.insert(name.clone(), policy);
        }
        let batch = BatchConfig::from_proto(proto.batch.as_ref())?;
        Ok(ChannelConfig {
            org_policies: OrgPolicies::fabric_defaults(app_orgs),
            proto,
            channel_id,
            application_orgs,
            msps,
            policies,
            consenters,
            batch,
        })
    }

    /// Channel id.
    pub fn channel_id(&self) -> &ChannelId {
        &self.channel_id
    }

    /// Config sequence.
    pub fn sequence(&self) -> u64 {
        self.proto.sequence
    }

    /// The MSPs of every organization (application and orderer), with the identity cache.
    pub fn msps(&self) -> &Arc<MspManager> {
        &self.msps
    }

    /// MSP ids of the application organizations, in configuration order (parsed when the
    /// configuration was: [`MspId`]'s rule).
    pub fn application_orgs(&self) -> impl Iterator<Item = &MspId> {
        self.application_orgs.iter()
    }

    /// A channel policy by name (`Readers`, `Writers`, `Admins`, `Endorsement`, ...).
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    /// Per-organization sub-policies that implicit meta policies evaluate (Fabric's defaults
    /// over the application organizations).
    pub fn org_policies(&self) -> &OrgPolicies {
        &self.org_policies
    }

    /// Whether `signers` satisfy the channel policy `name`; an unknown policy is not satisfied.
    pub fn evaluate(&self, name: &str, signers: &[Signer]) -> bool {
        self.policies
            .get(name)
            .is_some_and(|p| p.evaluate(signers, &self.org_policies))
    }

    /// The BFT consenters.
    pub fn consenters(&self) -> &ConsenterSet {
        &self.consenters
    }

    /// Block cutting parameters.
    pub fn batch(&self) -> &BatchConfig {
        &self.batch
    }

    /// The protobuf form this was built from.
    pub fn to_proto(&self) -> &pb::ChannelConfig {
        &self.proto
    }

    /// The config block carrying this configuration as block `number` (0 for the genesis
    /// block), chained to `previous_hash`: one unsigned envelope whose payload has a
    /// `CONFIG` channel header and the serialized `ChannelConfig` as data; LAST_CONFIG
    /// metadata points at itself.
    pub fn config_block(&self, number: u64, previous_hash: &[u8], timestamp: SystemTime) -> Block {
        let channel_header = ChannelHeader {
            r#type: HeaderType::Config as i32,
            version: 0,
            timestamp: Some(prost_types::Timestamp::from(timestamp)),
            channel_id: self.channel_id.to_string(),
            tx_id: String::new(),
            epoch: 0,
            extension: Vec::new(),
            tls_cert_hash: Vec::new(),
        };
        let payload = Payload {
            header: Some(Header {
                channel_header: channel_header.encode_to_vec(),
                signature_header: SignatureHeader::default().encode_to_vec(),
            }),
            data: self.proto.encode_to_vec(),
        };
        let envelope = Envelope {
            payload: payload.encode_to_vec(),
            signature: Vec::new(),
        };
        let mut b = block::new_block(number, previous_hash, vec![envelope.encode_to_vec()]);
        let last_config = Metadata {
            value: LastConfig { index: number }.encode_to_vec(),
            signatures: Vec::new(),
        };
        block::set_metadata_bytes(
            &mut b,
            BlockMetadataIndex::LastConfig,
            last_config.encode_to_vec(),
        );
        b
    }

    /// Reads the configuration out of a config block: the genesis block's `CONFIG` envelope,
    /// or the configuration proposed by the `CONFIG_UPDATE` envelope of a later config block.
    /// The update's signatures are not checked: use this on blocks a committer or orderer
    /// already validated (its own store), and [`ChannelConfig::apply_update`] otherwise.
    ///
    /// # Errors
    /// [`ConfigError::NotConfigBlock`] if the block does not hold exactly one `CONFIG` or
    /// `CONFIG_UPDATE` envelope; any error of [`ChannelConfig::from_proto`].
    pub fn from_config_block(block: &Block) -> Result<Self, ConfigError> {
        let not = |m: &str| ConfigError::NotConfigBlock(m.to_owned());
        let data = block.data.as_ref().ok_or_else(|| not("no data"))?;
        let [entry] = data.data.as_slice() else {
            return Err(not("a config block holds exactly one envelope"));
        };
        let env = Envelope::decode(entry.as_slice()).map_err(|_| not("bad envelope"))?;
        let payload = Payload::decode(env.payload.as_slice()).map_err(|_| not("bad payload"))?;
        let header = payload.header.ok_or_else(|| not("no header"))?;
        let ch = ChannelHeader::decode(header.channel_header.as_slice())
            .map_err(|_| not("bad channel header"))?;
        let proto = if ch.r#type == HeaderType::Config as i32 {
            pb::ChannelConfig::decode(payload.data.as_slice())
                .map_err(|_| not("payload is not a ChannelConfig"))?
        } else if ch.r#type == HeaderType::ConfigUpdate as i32 {
            crate::update::proposed_config(&payload.data).map_err(|e| not(&e.to_string()))?
        } else {
            return Err(not("channel header type is not CONFIG or CONFIG_UPDATE"));
        };
        if proto.channel_id != ch.channel_id {
            return Err(not(
                "channel header and configuration name different channels",
            ));
        }
        Self::from_proto(proto)
    }
}

fn msp_config(org: &pb::Organization) -> MspConfig {
    MspConfig {
        msp_id: org.msp_id.clone(),
        root_certs: org.root_certs.clone(),
        intermediate_certs: org.intermediate_certs.clone(),
        crls: org.crls.clone(),
        node_ous: NodeOuConfig {
            enable: org.node_ous,
            ..NodeOuConfig::default()
        },
        tls_root_certs: org.tls_root_certs.clone(),
    }
}

/// The consenter's signing certificate must be an identity of its MSP (an orderer when
/// NodeOUs are on). Checked at the certificate's own start of validity, so replaying an old
/// config block does not fail on expiry.
fn check_consenter_identity(
    msps: &MspManager,
    c: &pb::Consenter,
    identity: &Certificate,
) -> Result<(), ConfigError> {
    let msp = msps
        .msp(&c.msp_id)
        .ok_or_else(|| invalid(format!("consenter {}: unknown MSP", c.id)))?;
    let ou = msp
        .validate(identity, identity.not_before())
        .map_err(|e| invalid(format!("consenter {} identity: {e}", c.id)))?;
    if ou.is_some_and(|ou| ou != NodeOu::Orderer) {
        return Err(invalid(format!(
            "consenter {} identity is not an orderer identity",
            c.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod error_tests {
    use super::ConfigError;

    /// The MSP's message is printed once in the chain the `medledger` CLI prints (`{:#}`).
    #[test]
    fn msp_error_prints_its_cause_once() {
        let e = ConfigError::Msp {
            msp_id: "Org1MSP".into(),
            error: medledger_msp::Error::InvalidCrl("signature does not verify".into()),
        };
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(
            chain,
            "invalid channel configuration: organization Org1MSP: invalid CRL: signature does not verify"
        );
    }
}
