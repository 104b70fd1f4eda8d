//! Fabric's messages the system chaincodes answer with that Medledger's own protocol does not
//! use elsewhere, wire-compatible with `fabric-protos` (field numbers and types as there):
//! `common.BlockchainInfo` (`common/ledger.proto`), `common.Config` and its groups, values and
//! policies (`common/configtx.proto`), `msp.MSPConfig` and `msp.FabricMSPConfig`
//! (`msp/msp_config.proto`), `orderer.BatchSize` and `orderer.BatchTimeout`
//! (`orderer/configuration.proto`), `common.HashingAlgorithm` (`common/configuration.proto`).
//!
//! [`fabric_config`] builds Fabric's `common.Config` view of a Medledger channel
//! configuration, which is stored in its own format (`medledger.channel.ChannelConfig`).

use std::collections::HashMap;

use medledger_channel::ChannelConfig;
use medledger_msp::policy::{MetaRule, OrgPolicies, Policy};
use medledger_proto::common::{self as pb, ImplicitMetaPolicy, implicit_meta_policy, policy};
use prost::Message;

/// `common.BlockchainInfo`: what qscc's `GetChainInfo` returns.
#[derive(Clone, PartialEq, Message)]
pub struct BlockchainInfo {
    /// Number of blocks (last block number + 1).
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Header hash of the last block (Fabric's `protoutil.BlockHeaderHash`).
    #[prost(bytes = "vec", tag = "2")]
    pub current_block_hash: Vec<u8>,
    /// The last block's `previous_hash` (empty when the last block is the genesis block).
    #[prost(bytes = "vec", tag = "3")]
    pub previous_block_hash: Vec<u8>,
    /// Set only by peers that joined the channel from a snapshot; Medledger peers join from
    /// the genesis block, so never set.
    #[prost(message, optional, tag = "4")]
    pub bootstrapping_snapshot_info: Option<BootstrappingSnapshotInfo>,
}

/// `common.BootstrappingSnapshotInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct BootstrappingSnapshotInfo {
    /// The last block in the snapshot the peer joined from.
    #[prost(uint64, tag = "1")]
    pub last_block_in_snapshot: u64,
}

/// `common.Config`: what cscc's `GetChannelConfig` returns.
#[derive(Clone, PartialEq, Message)]
pub struct Config {
    /// The configuration's sequence number.
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    /// The `Channel` group.
    #[prost(message, optional, tag = "2")]
    pub channel_group: Option<ConfigGroup>,
}

/// `common.ConfigGroup`.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigGroup {
    /// Version.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    /// Sub-groups by name (`Application`, `Orderer`, organizations).
    #[prost(map = "string, message", tag = "2")]
    pub groups: HashMap<String, ConfigGroup>,
    /// Values by name (`MSP`, `BatchSize`, …).
    #[prost(map = "string, message", tag = "3")]
    pub values: HashMap<String, ConfigValue>,
    /// Policies by name (`Readers`, `Writers`, `Admins`, `Endorsement`, …).
    #[prost(map = "string, message", tag = "4")]
    pub policies: HashMap<String, ConfigPolicy>,
    /// The policy that may modify the group.
    #[prost(string, tag = "5")]
    pub mod_policy: String,
}

/// `common.ConfigValue`.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigValue {
    /// Version.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    /// The serialized value (its message type depends on the value's name).
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// The policy that may modify the value.
    #[prost(string, tag = "3")]
    pub mod_policy: String,
}

/// `common.ConfigPolicy`.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigPolicy {
    /// Version.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    /// The policy.
    #[prost(message, optional, tag = "2")]
    pub policy: Option<pb::Policy>,
    /// The policy that may modify it.
    #[prost(string, tag = "3")]
    pub mod_policy: String,
}

/// `msp.MSPConfig` (type 0: Fabric's X.509 MSP).
#[derive(Clone, PartialEq, Message)]
pub struct MspConfig {
    /// MSP type (0 = FABRIC).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// A serialized [`FabricMspConfig`].
    #[prost(bytes = "vec", tag = "2")]
    pub config: Vec<u8>,
}

/// `msp.FabricMSPConfig` (the fields Medledger's organizations have; certificates and CRLs
/// PEM-encoded, as Fabric stores them).
#[derive(Clone, PartialEq, Message)]
pub struct FabricMspConfig {
    /// The MSP id.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Root CA certificates (PEM).
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub root_certs: Vec<Vec<u8>>,
    /// Intermediate CA certificates (PEM).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub intermediate_certs: Vec<Vec<u8>>,
    /// Certificate revocation lists (PEM).
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub revocation_list: Vec<Vec<u8>>,
    /// `SHA2` / `SHA256`.
    #[prost(message, optional, tag = "8")]
    pub crypto_config: Option<FabricCryptoConfig>,
    /// TLS root CA certificates (PEM).
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub tls_root_certs: Vec<Vec<u8>>,
    /// NodeOUs (`client`, `peer`, `admin`, `orderer`), when the organization uses them.
    #[prost(message, optional, tag = "11")]
    pub fabric_node_ous: Option<FabricNodeOus>,
}

/// `msp.FabricCryptoConfig`.
#[derive(Clone, PartialEq, Message)]
pub struct FabricCryptoConfig {
    /// `SHA2`.
    #[prost(string, tag = "1")]
    pub signature_hash_family: String,
    /// `SHA256`.
    #[prost(string, tag = "2")]
    pub identity_identifier_hash_function: String,
}

/// `msp.FabricNodeOUs`.
#[derive(Clone, PartialEq, Message)]
pub struct FabricNodeOus {
    /// Whether NodeOUs classify identities.
    #[prost(bool, tag = "1")]
    pub enable: bool,
    /// The client OU.
    #[prost(message, optional, tag = "2")]
    pub client_ou_identifier: Option<FabricOuIdentifier>,
    /// The peer OU.
    #[prost(message, optional, tag = "3")]
    pub peer_ou_identifier: Option<FabricOuIdentifier>,
    /// The admin OU.
    #[prost(message, optional, tag = "4")]
    pub admin_ou_identifier: Option<FabricOuIdentifier>,
    /// The orderer OU.
    #[prost(message, optional, tag = "5")]
    pub orderer_ou_identifier: Option<FabricOuIdentifier>,
}

/// `msp.FabricOUIdentifier` (no certificate: any CA of the MSP).
#[derive(Clone, PartialEq, Message)]
pub struct FabricOuIdentifier {
    /// The certifying CA (empty: any).
    #[prost(bytes = "vec", tag = "1")]
    pub certificate: Vec<u8>,
    /// The OU value.
    #[prost(string, tag = "2")]
    pub organizational_unit_identifier: String,
}

/// `orderer.BatchSize`.
#[derive(Clone, PartialEq, Message)]
pub struct BatchSize {
    /// Envelopes per block at most.
    #[prost(uint32, tag = "1")]
    pub max_message_count: u32,
    /// Bytes of envelopes per block at most.
    #[prost(uint32, tag = "2")]
    pub absolute_max_bytes: u32,
    /// Preferred bytes of envelopes per block.
    #[prost(uint32, tag = "3")]
    pub preferred_max_bytes: u32,
}

/// `orderer.BatchTimeout`.
#[derive(Clone, PartialEq, Message)]
pub struct BatchTimeout {
    /// A Go duration string (`2s`, `250ms`).
    #[prost(string, tag = "1")]
    pub timeout: String,
}

/// `common.HashingAlgorithm`.
#[derive(Clone, PartialEq, Message)]
pub struct HashingAlgorithm {
    /// `SHA256`.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `common.Policy` of a Medledger policy: `IMPLICIT_META` with an `ImplicitMetaPolicy`, or
/// `SIGNATURE` with the `SignaturePolicyEnvelope` Fabric's `policydsl` builds.
fn policy_proto(p: &Policy) -> pb::Policy {
    match p {
        Policy::ImplicitMeta { rule, sub_policy } => pb::Policy {
            r#type: policy::PolicyType::ImplicitMeta as i32,
            value: ImplicitMetaPolicy {
                sub_policy: sub_policy.clone(),
                rule: match rule {
                    MetaRule::Any => implicit_meta_policy::Rule::Any,
                    MetaRule::All => implicit_meta_policy::Rule::All,
                    MetaRule::Majority => implicit_meta_policy::Rule::Majority,
                } as i32,
            }
            .encode_to_vec(),
        },
        Policy::Signature(s) => pb::Policy {
            r#type: policy::PolicyType::Signature as i32,
            value: s.to_envelope().encode_to_vec(),
        },
    }
}

fn config_policy(p: &Policy) -> ConfigPolicy {
    ConfigPolicy {
        version: 0,
        policy: Some(policy_proto(p)),
        mod_policy: "Admins".into(),
    }
}

fn value(v: &impl Message) -> ConfigValue {
    ConfigValue {
        version: 0,
        value: v.encode_to_vec(),
        mod_policy: "Admins".into(),
    }
}

fn pem_all(tag: &str, ders: &[Vec<u8>]) -> Vec<Vec<u8>> {
    ders.iter()
        .map(|der| pem::encode(&pem::Pem::new(tag, der.clone())).into_bytes())
        .collect()
}

/// An organization's group: its `MSP` value and its sub-policies (`Readers`, `Writers`,
/// `Admins`, `Endorsement`) as the channel evaluates them.
fn org_group(
    org: &medledger_proto::medledger::channel::Organization,
    policies: &OrgPolicies,
) -> ConfigGroup {
    let ou = |name: &str| {
        Some(FabricOuIdentifier {
            certificate: Vec::new(),
            organizational_unit_identifier: name.into(),
        })
    };
    let msp = FabricMspConfig {
        name: org.msp_id.clone(),
        root_certs: pem_all("CERTIFICATE", &org.root_certs),
        intermediate_certs: pem_all("CERTIFICATE", &org.intermediate_certs),
        revocation_list: pem_all("X509 CRL", &org.crls),
        crypto_config: Some(FabricCryptoConfig {
            signature_hash_family: "SHA2".into(),
            identity_identifier_hash_function: "SHA256".into(),
        }),
        tls_root_certs: pem_all("CERTIFICATE", &org.tls_root_certs),
        fabric_node_ous: org.node_ous.then(|| FabricNodeOus {
            enable: true,
            client_ou_identifier: ou("client"),
            peer_ou_identifier: ou("peer"),
            admin_ou_identifier: ou("admin"),
            orderer_ou_identifier: ou("orderer"),
        }),
    };
    let values = HashMap::from([(
        "MSP".to_owned(),
        value(&MspConfig {
            r#type: 0,
            config: msp.encode_to_vec(),
        }),
    )]);
    let policies = [
        OrgPolicies::READERS,
        OrgPolicies::WRITERS,
        OrgPolicies::ADMINS,
        OrgPolicies::ENDORSEMENT,
    ]
    .into_iter()
    .filter_map(|name| {
        let p = policies.get(&org.msp_id, name)?;
        Some((
            name.to_owned(),
            config_policy(&Policy::Signature(p.clone())),
        ))
    })
    .collect();
    ConfigGroup {
        version: 0,
        groups: HashMap::new(),
        values,
        policies,
        mod_policy: "Admins".into(),
    }
}

/// Go's `time.Duration.String` of `ms` milliseconds (`2s`, `250ms`, `1.5s`, `1m30s`), the form
/// Fabric's `BatchTimeout` holds.
fn go_duration(ms: u64) -> String {
    if ms < 1000 {
        return if ms == 0 {
            "0s".into()
        } else {
            format!("{ms}ms")
        };
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, _) => format!("{m}m{secs}"),
        _ => format!("{h}h{m}m{secs}"),
    }
}

/// Fabric's `common.Config` view of `config`: the `Channel` group holds `Application` (one
/// group per application organization keyed by MSP id with its `MSP` value and organization
/// policies; the channel's application policies `Readers`, `Writers`, `Admins`,
/// `Endorsement` and, when set, `LifecycleEndorsement`) and `Orderer` (the orderer
/// organizations, `BatchSize`, `BatchTimeout`), the `HashingAlgorithm` value (`SHA256`) and
/// Fabric's default channel policies (`ANY Readers`, `ANY Writers`, `MAJORITY Admins`). Sequence
/// as the configuration's. Medledger's consensus settings (BFT consenters) and organization
/// endpoints have no place in it and are left out.
pub fn fabric_config(config: &ChannelConfig) -> Config {
    let p = config.to_proto();
    let orgs = config.org_policies();
    let groups_of = |list: &[medledger_proto::medledger::channel::Organization]| {
        list.iter()
            .map(|o| (o.msp_id.clone(), org_group(o, orgs)))
            .collect::<HashMap<_, _>>()
    };
    let application = ConfigGroup {
        version: 0,
        groups: groups_of(&p.organizations),
        values: HashMap::new(),
        policies: p
            .policies
            .keys()
            .filter_map(|name| Some((name.clone(), config_policy(config.policy(name)?))))
            .collect(),
        mod_policy: "Admins".into(),
    };
    let batch = p.batch.unwrap_or_default();
    let orderer = ConfigGroup {
        version: 0,
        groups: groups_of(&p.orderer_organizations),
        values: HashMap::from([
            (
                "BatchSize".to_owned(),
                value(&BatchSize {
                    max_message_count: batch.max_message_count,
                    absolute_max_bytes: batch.absolute_max_bytes,
                    preferred_max_bytes: batch.preferred_max_bytes,
                }),
            ),
            (
                "BatchTimeout".to_owned(),
                value(&BatchTimeout {
                    timeout: go_duration(batch.batch_timeout_ms),
                }),
            ),
        ]),
        policies: HashMap::new(),
        mod_policy: "Admins".into(),
    };
    let meta = |rule, sub: &str| config_policy(&Policy::implicit_meta(rule, sub));
    let channel = ConfigGroup {
        version: 0,
        groups: HashMap::from([
            ("Application".to_owned(), application),
            ("Orderer".to_owned(), orderer),
        ]),
        values: HashMap::from([(
            "HashingAlgorithm".to_owned(),
            value(&HashingAlgorithm {
                name: "SHA256".into(),
            }),
        )]),
        policies: HashMap::from([
            ("Readers".to_owned(), meta(MetaRule::Any, "Readers")),
            ("Writers".to_owned(), meta(MetaRule::Any, "Writers")),
            ("Admins".to_owned(), meta(MetaRule::Majority, "Admins")),
        ]),
        mod_policy: "Admins".into(),
    };
    Config {
        sequence: config.sequence(),
        channel_group: Some(channel),
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn batch_timeouts_print_as_go_durations() {
        assert_eq!(go_duration(2000), "2s");
        assert_eq!(go_duration(250), "250ms");
        assert_eq!(go_duration(90_000), "1m30s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(go_duration(61_020), "1m1.02s");
    }
}
