//! Test fixtures (feature `test-utils`): throw-away organizations with real CAs, identities,
//! BFT consenters and a validated channel configuration, so tests across crates build and
//! sign real blocks and envelopes without repeating setup.

#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::time::SystemTime;

use medledger_ca::{CaConfig, CertificateAuthority, Profile, Registration, build_csr};
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_proto::TxId;
use medledger_proto::common::{
    Block, BlockMetadataIndex, ChannelHeader, Envelope, Header, HeaderType, Payload,
    SignatureHeader,
};
use medledger_proto::medledger::channel as pb;
use prost::Message;

use crate::bft::{self, CommitSignature, VoteKind};
use crate::block;
use crate::config::ChannelConfig;

/// An organization with its own CA in a temporary directory.
pub struct TestOrg {
    pub msp_id: String,
    pub ca: CertificateAuthority,
    _dir: tempfile::TempDir,
}

impl TestOrg {
    /// `msp_id` like `Org1MSP`, `domain` like `org1.example.com`.
    pub fn new(msp_id: &str, domain: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = CertificateAuthority::init(
            dir.path(),
            CaConfig::new(format!("ca-{domain}"), msp_id, domain),
            "admin",
            "adminpw",
        )
        .expect("CA init");
        TestOrg {
            msp_id: msp_id.to_owned(),
            ca,
            _dir: dir,
        }
    }

    /// Registers and enrolls an identity with attributes (in the certificate).
    pub fn identity(&mut self, name: &str, ou: NodeOu, attrs: &[(&str, &str)]) -> SigningIdentity {
        let mut reg = Registration::new(name, ou).with_secret("pw");
        for (k, v) in attrs {
            reg = reg.with_attribute(k, v);
        }
        self.ca.register("admin", reg).expect("register");
        let key = SigningKey::generate().expect("key");
        let csr = build_csr(&key, name, &[]).expect("csr");
        let e = self
            .ca
            .enroll(name, "pw", &csr, Profile::Ecert, &[])
            .expect("enroll");
        let cert = Certificate::from_pem(e.cert_pem.as_bytes()).expect("cert");
        SigningIdentity::new(self.msp_id.clone(), cert, key).expect("identity")
    }

    /// This organization as a channel config entry (NodeOUs on, current CRL).
    pub fn organization(&self) -> pb::Organization {
        let cfg = self.ca.msp_config().expect("msp config");
        pb::Organization {
            msp_id: self.msp_id.clone(),
            root_certs: cfg.root_certs,
            intermediate_certs: cfg.intermediate_certs,
            crls: cfg.crls,
            tls_root_certs: cfg.tls_root_certs,
            node_ous: true,
            peers: Vec::new(),
        }
    }
}

/// A channel with application organizations `Org1MSP..OrgNMSP`, an orderer organization
/// `OrdererMSP` with `n` consenters (ids 1..=n), and Fabric-like policies:
/// Readers/Writers/Admins = `ANY Readers` / `ANY Writers` / `MAJORITY Admins`,
/// Endorsement = `MAJORITY Endorsement`.
pub struct TestChannel {
    pub orgs: Vec<TestOrg>,
    pub orderer_org: TestOrg,
    pub consenters: Vec<(u32, SigningIdentity)>,
    pub config: ChannelConfig,
}

impl TestChannel {
    pub fn new(channel_id: &str, n_orgs: usize, n_consenters: u32) -> Self {
        let orgs: Vec<TestOrg> = (1..=n_orgs)
            .map(|i| TestOrg::new(&format!("Org{i}MSP"), &format!("org{i}.example.com")))
            .collect();
        let mut orderer_org = TestOrg::new("OrdererMSP", "orderer.example.com");
        let consenters: Vec<(u32, SigningIdentity)> = (1..=n_consenters)
            .map(|id| {
                (
                    id,
                    orderer_org.identity(&format!("orderer{id}"), NodeOu::Orderer, &[]),
                )
            })
            .collect();
        let proto = pb::ChannelConfig {
            channel_id: channel_id.to_owned(),
            sequence: 0,
            organizations: orgs.iter().map(TestOrg::organization).collect(),
            orderer_organizations: vec![orderer_org.organization()],
            consenters: consenters
                .iter()
                .map(|(id, ident)| pb::Consenter {
                    id: *id,
                    msp_id: "OrdererMSP".into(),
                    identity: ident.certificate().to_pem().into_bytes(),
                    client_tls_cert: Vec::new(),
                    server_tls_cert: Vec::new(),
                    endpoint: Some(pb::Endpoint {
                        host: "127.0.0.1".into(),
                        port: 7050 + *id,
                    }),
                })
                .collect(),
            policies: crate::config::default_policies(),
            batch: None,
        };
        let config = ChannelConfig::from_proto(proto).expect("valid test channel config");
        TestChannel {
            orgs,
            orderer_org,
            consenters,
            config,
        }
    }

    /// Revokes identity `name` at organization `org`'s CA (reason `keyCompromise`) and returns
    /// the next channel configuration: this one with that organization's new CRL and the
    /// sequence one higher (what a config update revoking it carries).
    pub fn config_revoking(&mut self, org: usize, name: &str) -> pb::ChannelConfig {
        self.orgs[org]
            .ca
            .revoke(
                "admin",
                medledger_ca::RevokeTarget::Identity(name.to_owned()),
                "keyCompromise",
            )
            .expect("revoke at the test CA");
        let mut next = self.config.to_proto().clone();
        next.sequence += 1;
        next.organizations[org] = self.orgs[org].organization();
        next
    }

    /// Writes a commit certificate into `block` signed (precommits) by the given consenters,
    /// ordered now.
    pub fn sign_block(&self, block: &mut Block, signers: &[u32], round: i64) {
        self.sign_block_at(block, signers, round, SystemTime::now());
    }

    /// As [`TestChannel::sign_block`] with the ordering time `ordered` (`BlockCommit.time_ms`).
    pub fn sign_block_at(
        &self,
        block: &mut Block,
        signers: &[u32],
        round: i64,
        ordered: SystemTime,
    ) {
        let header = block.header.as_ref().expect("header");
        let time_ms = bft::time_ms(ordered);
        let hash = bft::value_id(&block::header_hash(header), time_ms);
        let sigs: Vec<CommitSignature> = signers
            .iter()
            .map(|id| {
                let (_, ident) = self
                    .consenters
                    .iter()
                    .find(|(c, _)| c == id)
                    .expect("known consenter");
                let msg = bft::vote_sign_bytes(
                    self.config.channel_id().as_ref(),
                    VoteKind::Precommit,
                    header.number,
                    round,
                    Some(&hash),
                    *id,
                );
                CommitSignature {
                    consenter: *id,
                    signature: ident.sign(&msg).expect("sign"),
                }
            })
            .collect();
        block::set_metadata_bytes(
            block,
            BlockMetadataIndex::Signatures,
            bft::signatures_metadata(round, time_ms, &sigs),
        );
    }
}

/// A signed envelope of type `header_type` by `creator` for `channel_id`, with a correct
/// tx_id and `data` as payload data.
pub fn signed_envelope(
    creator: &SigningIdentity,
    channel_id: &str,
    header_type: HeaderType,
    data: Vec<u8>,
) -> Envelope {
    signed_envelope_at(creator, channel_id, header_type, data, SystemTime::now())
}

/// As [`signed_envelope`] with the channel header timestamped `at` (a backdated or
/// post-dated request).
pub fn signed_envelope_at(
    creator: &SigningIdentity,
    channel_id: &str,
    header_type: HeaderType,
    data: Vec<u8>,
    at: SystemTime,
) -> Envelope {
    let nonce: [u8; 24] = rand_nonce();
    let tx_id = TxId::compute(&nonce, creator.serialized());
    let payload = Payload {
        header: Some(Header {
            channel_header: ChannelHeader {
                r#type: header_type as i32,
                channel_id: channel_id.to_owned(),
                tx_id: tx_id.to_string(),
                timestamp: Some(prost_types::Timestamp::from(at)),
                ..Default::default()
            }
            .encode_to_vec(),
            signature_header: SignatureHeader {
                creator: creator.serialized().to_vec(),
                nonce: nonce.to_vec(),
            }
            .encode_to_vec(),
        }),
        data,
    }
    .encode_to_vec();
    Envelope {
        signature: creator.sign(&payload).expect("sign"),
        payload,
    }
}

/// A fresh 24-byte nonce (time and a process-wide counter, hashed).
pub fn rand_nonce() -> [u8; 24] {
    // Unique enough for tests without another dependency: time + counter, hashed.
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest =
        medledger_msp::crypto::sha256(&[t.to_be_bytes().as_slice(), &n.to_be_bytes()].concat());
    let mut out = [0u8; 24];
    out.copy_from_slice(&digest[..24]);
    out
}
