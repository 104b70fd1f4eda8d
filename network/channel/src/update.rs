//! Channel configuration updates: how organizations join a channel and how an organization's
//! MSP (its CRL, its roots) changes after the genesis block.
//!
//! An update is the complete next [`pb::ChannelConfig`] (sequence + 1) in a
//! `medledger.channel.ConfigUpdate`, serialized into Fabric's `common.ConfigUpdateEnvelope`
//! with one `common.ConfigSignature` per admin who approves it (each signs
//! `signature_header ‖ config_update`, as in Fabric's `configtx`), and submitted to the
//! orderers as the data of a signed `CONFIG_UPDATE` envelope. Every orderer admits it only if
//! [`ChannelConfig::apply_update`] accepts it against the current configuration, orders it in
//! a block of its own, and every peer checks it again before the new configuration takes
//! effect (ADR 0018).
//!
//! Which admins must sign follows Fabric's default `mod_policy`s: a change confined to one
//! application organization's own entry (a new CRL, new root or TLS certificates, its peers)
//! needs that organization's `Admins`; any other change (adding or removing an organization,
//! policies, batch parameters) needs the channel's `Admins` policy (`MAJORITY Admins` by
//! default). The ordering service (orderer organizations and consenters) cannot be changed by
//! a config update.

use std::time::SystemTime;

use medledger_msp::identity::SigningIdentity;
use medledger_msp::policy::Signer;
use medledger_proto::TxId;
use medledger_proto::common::{
    ChannelHeader, ConfigSignature, ConfigUpdateEnvelope, Envelope, Header, HeaderType, Payload,
    SignatureHeader, Status,
};
use medledger_proto::medledger::channel as pb;
use medledger_proto::protos::TxValidationCode;
use prost::Message;

use crate::config::ChannelConfig;

/// Why a configuration update is refused. Messages carry MSP ids and field names only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// The envelope data, the update or a signature header does not decode.
    #[error("malformed config update: {0}")]
    Malformed(String),
    /// The update does not follow the current configuration.
    #[error("config update is for sequence {got}, but the channel's next sequence is {expected}")]
    WrongSequence {
        /// Sequence of the proposed configuration.
        got: u64,
        /// Current sequence + 1.
        expected: u64,
    },
    /// The update changes something config updates cannot change.
    #[error("config update cannot change {0}")]
    Unsupported(String),
    /// The signatures do not satisfy the policy the change needs.
    #[error("config update is not authorized: {0}")]
    Forbidden(String),
    /// The proposed configuration is invalid.
    #[error("config update proposes an invalid configuration: {0}")]
    InvalidConfig(String),
}

impl UpdateError {
    /// The Fabric broadcast status for an update the orderer refuses: `FORBIDDEN` when the
    /// signatures do not satisfy the policy, `BAD_REQUEST` otherwise.
    pub fn status(&self) -> Status {
        match self {
            UpdateError::Forbidden(_) => Status::Forbidden,
            _ => Status::BadRequest,
        }
    }

    /// The validation code a committer records for an update it refuses
    /// (`INVALID_CONFIG_TRANSACTION`).
    pub fn validation_code(&self) -> TxValidationCode {
        TxValidationCode::InvalidConfigTransaction
    }
}

fn malformed(what: &str) -> UpdateError {
    UpdateError::Malformed(what.to_owned())
}

/// The serialized `medledger.channel.ConfigUpdate` proposing `next` (the bytes admins sign).
pub fn update_bytes(next: &pb::ChannelConfig) -> Vec<u8> {
    pb::ConfigUpdate {
        channel_id: next.channel_id.clone(),
        config: Some(next.clone()),
    }
    .encode_to_vec()
}

/// One admin's signature over `update` (from [`update_bytes`]): a signature header with the
/// admin's serialized identity and a fresh 24-byte nonce, and the signature over
/// `signature_header ‖ update` (Fabric's `ConfigSignature`).
///
/// # Errors
/// The signing key's error.
pub fn sign_update(
    update: &[u8],
    admin: &SigningIdentity,
) -> Result<ConfigSignature, medledger_msp::Error> {
    let nonce: [u8; 24] = rand::random();
    let signature_header = SignatureHeader {
        creator: admin.serialized().to_vec(),
        nonce: nonce.to_vec(),
    }
    .encode_to_vec();
    let signature = admin.sign(&[signature_header.as_slice(), update].concat())?;
    Ok(ConfigSignature {
        signature_header,
        signature,
    })
}

/// The `CONFIG_UPDATE` envelope submitting `update` with `signatures`, signed by `submitter`
/// (who must satisfy the channel's `Writers` policy), tx_id = hex(SHA-256(nonce ‖ creator)).
///
/// # Errors
/// The signing key's error.
pub fn update_envelope(
    channel_id: &str,
    update: Vec<u8>,
    signatures: Vec<ConfigSignature>,
    submitter: &SigningIdentity,
    now: SystemTime,
) -> Result<Envelope, medledger_msp::Error> {
    let nonce: [u8; 24] = rand::random();
    let tx_id = TxId::compute(&nonce, submitter.serialized());
    let payload = Payload {
        header: Some(Header {
            channel_header: ChannelHeader {
                r#type: HeaderType::ConfigUpdate as i32,
                channel_id: channel_id.to_owned(),
                tx_id: tx_id.to_string(),
                timestamp: Some(prost_types::Timestamp::from(now)),
                ..Default::default()
            }
            .encode_to_vec(),
            signature_header: SignatureHeader {
                creator: submitter.serialized().to_vec(),
                nonce: nonce.to_vec(),
            }
            .encode_to_vec(),
        }),
        data: ConfigUpdateEnvelope {
            config_update: update,
            signatures,
        }
        .encode_to_vec(),
    }
    .encode_to_vec();
    Ok(Envelope {
        signature: submitter.sign(&payload)?,
        payload,
    })
}

/// The proposed configuration in a `CONFIG_UPDATE` envelope's payload data, without any
/// check (for reading a committed config block).
///
/// # Errors
/// [`UpdateError::Malformed`].
pub fn proposed_config(data: &[u8]) -> Result<pb::ChannelConfig, UpdateError> {
    let env = ConfigUpdateEnvelope::decode(data)
        .map_err(|_| malformed("data is not a ConfigUpdateEnvelope"))?;
    let update = pb::ConfigUpdate::decode(env.config_update.as_slice())
        .map_err(|_| malformed("config_update is not a ConfigUpdate"))?;
    let config = update
        .config
        .ok_or_else(|| malformed("config update carries no configuration"))?;
    if config.channel_id != update.channel_id {
        return Err(malformed(
            "update and configuration name different channels",
        ));
    }
    Ok(config)
}

/// Which policy a change from `current` to `next` needs (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequiredPolicy {
    /// The channel's `Admins` policy.
    ChannelAdmins,
    /// The `Admins` policy of this one application organization.
    OrgAdmins(String),
}

impl std::fmt::Display for RequiredPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequiredPolicy::ChannelAdmins => f.write_str("the channel's Admins policy"),
            RequiredPolicy::OrgAdmins(msp) => write!(f, "{msp}'s Admins policy"),
        }
    }
}

/// The policy a change from `current` to `next` needs: one organization's admins if only that
/// existing organization's own entry changes, the channel's admins otherwise.
pub fn required_policy(current: &pb::ChannelConfig, next: &pb::ChannelConfig) -> RequiredPolicy {
    let same_shape = current.organizations.len() == next.organizations.len()
        && current.policies == next.policies
        && current.batch == next.batch;
    if same_shape {
        let changed: Vec<(&pb::Organization, &pb::Organization)> = current
            .organizations
            .iter()
            .zip(&next.organizations)
            .filter(|(a, b)| a != b)
            .collect();
        if let [(a, b)] = changed.as_slice()
            && a.msp_id == b.msp_id
        {
            return RequiredPolicy::OrgAdmins(a.msp_id.clone());
        }
    }
    RequiredPolicy::ChannelAdmins
}

impl ChannelConfig {
    /// Checks a configuration update — the payload data of a `CONFIG_UPDATE` envelope — against
    /// this configuration and returns the configuration it leads to. Signatures are verified
    /// with this configuration's MSPs at time `at` (the orderer's clock when admitting; the
    /// envelope's channel-header timestamp when committing, so every peer agrees).
    ///
    /// # Errors
    /// [`UpdateError::Malformed`], [`UpdateError::WrongSequence`] (not current + 1),
    /// [`UpdateError::Unsupported`] (another channel, the orderer organizations or the
    /// consenters changed, nothing changed), [`UpdateError::Forbidden`] (invalid signatures
    /// are ignored; the valid ones do not satisfy [`required_policy`]),
    /// [`UpdateError::InvalidConfig`].
    pub fn apply_update(&self, data: &[u8], at: SystemTime) -> Result<ChannelConfig, UpdateError> {
        let env = ConfigUpdateEnvelope::decode(data)
            .map_err(|_| malformed("data is not a ConfigUpdateEnvelope"))?;
        let next = proposed_config(data)?;
        let current = self.to_proto();
        if next.channel_id != current.channel_id {
            return Err(UpdateError::Unsupported("the channel id".into()));
        }
        let expected = current.sequence + 1;
        if next.sequence != expected {
            return Err(UpdateError::WrongSequence {
                got: next.sequence,
                expected,
            });
        }
        if next.orderer_organizations != current.orderer_organizations
            || next.consenters != current.consenters
        {
            return Err(UpdateError::Unsupported(
                "the ordering service (orderer organizations, consenters)".into(),
            ));
        }
        let unchanged = pb::ChannelConfig {
            sequence: current.sequence,
            ..next.clone()
        };
        if &unchanged == current {
            return Err(UpdateError::Unsupported(
                "nothing: the update equals the current configuration".into(),
            ));
        }
        let signers = self.update_signers(&env, at);
        let required = required_policy(current, &next);
        let satisfied = match &required {
            RequiredPolicy::ChannelAdmins => self.evaluate("Admins", &signers),
            RequiredPolicy::OrgAdmins(msp) => self
                .org_policies()
                .get(msp, "Admins")
                .is_some_and(|p| p.evaluate(&signers)),
        };
        if !satisfied {
            let mut orgs: Vec<&str> = signers.iter().map(|s| s.msp_id.as_str()).collect();
            orgs.sort_unstable();
            orgs.dedup();
            return Err(UpdateError::Forbidden(format!(
                "{} valid signature(s) (from {}) do not satisfy {required}",
                signers.len(),
                if orgs.is_empty() {
                    "nobody".to_owned()
                } else {
                    orgs.join(", ")
                }
            )));
        }
        ChannelConfig::from_proto(next).map_err(|e| UpdateError::InvalidConfig(e.to_string()))
    }

    /// The valid signers of an update under this configuration's MSPs; signatures that do not
    /// verify, or by identities no MSP of the channel accepts, are ignored. (Policies count an
    /// identity once however often it signed.)
    fn update_signers(&self, env: &ConfigUpdateEnvelope, at: SystemTime) -> Vec<Signer> {
        env.signatures
            .iter()
            .filter_map(|s| {
                let header = SignatureHeader::decode(s.signature_header.as_slice()).ok()?;
                let message = [s.signature_header.as_slice(), &env.config_update].concat();
                let identity = self
                    .msps()
                    .verify(&header.creator, &message, &s.signature, at)
                    .ok()?;
                Some(identity.signer())
            })
            .collect()
    }
}

/// Whether serialized envelope bytes are a `CONFIG_UPDATE` envelope (headers decoded,
/// nothing verified): such an envelope is ordered in a block of its own.
pub fn is_config_update(envelope: &[u8]) -> bool {
    crate::envelope::header_type_of(envelope) == Some(HeaderType::ConfigUpdate)
}

/// Whether a block is a config update block: exactly one envelope, a `CONFIG_UPDATE` (nothing
/// verified; orderers and peers apply its configuration only after validating it).
pub fn is_config_block(block: &medledger_proto::common::Block) -> bool {
    block
        .data
        .as_ref()
        .is_some_and(|d| matches!(d.data.as_slice(), [e] if is_config_update(e)))
}
