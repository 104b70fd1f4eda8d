//! MSP validation: is this certificate a valid identity of this organization, and in which
//! role?
//!
//! Follows Fabric's `msp/mspimpl.go` and `msp/mspimplvalidate.go`: the certificate must chain
//! to one of the MSP's root certificates (intermediates allowed), every certificate of the
//! chain must be within its validity period at the time checked and not on its issuer's CRL,
//! a CA certificate cannot act as an identity, and, with NodeOUs enabled, the certificate must
//! carry exactly one NodeOU. [`MspManager`] caches verified identities by their serialized
//! bytes so that a repeat signature check costs one ECDSA verify.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use x509_parser::prelude::{CertificateRevocationList, FromDer};

use crate::cert::Certificate;
use crate::crypto::{self, sha256};
use crate::error::{Error, Result};
use crate::identity::deserialize_identity;
use crate::ou::NodeOu;
use crate::policy::Signer;

/// Longest chain accepted from leaf to root (leaf, up to 6 intermediates, root).
const MAX_CHAIN_LEN: usize = 8;

/// NodeOU settings of an MSP (`NodeOUs` in Fabric's `msp/config.yaml`): which OU value marks
/// which role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeOuConfig {
    /// Whether NodeOU classification is on. When on, every identity must carry exactly one of
    /// the four OU values below.
    pub enable: bool,
    /// OU value of client identities (default `client`).
    pub client_ou: String,
    /// OU value of peers (default `peer`).
    pub peer_ou: String,
    /// OU value of admins (default `admin`).
    pub admin_ou: String,
    /// OU value of orderers (default `orderer`).
    pub orderer_ou: String,
}

impl Default for NodeOuConfig {
    fn default() -> Self {
        NodeOuConfig {
            enable: true,
            client_ou: NodeOu::Client.as_str().into(),
            peer_ou: NodeOu::Peer.as_str().into(),
            admin_ou: NodeOu::Admin.as_str().into(),
            orderer_ou: NodeOu::Orderer.as_str().into(),
        }
    }
}

impl NodeOuConfig {
    fn ou_value(&self, role: NodeOu) -> &str {
        match role {
            NodeOu::Client => &self.client_ou,
            NodeOu::Peer => &self.peer_ou,
            NodeOu::Admin => &self.admin_ou,
            NodeOu::Orderer => &self.orderer_ou,
        }
    }
}

/// What an MSP is made of: DER certificates and CRLs plus NodeOU settings (Fabric's
/// `msp.FabricMSPConfig`, the subset we use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MspConfig {
    /// MSP id, e.g. `Org1MSP`.
    pub msp_id: String,
    /// Root CA certificates, DER. At least one.
    pub root_certs: Vec<Vec<u8>>,
    /// Intermediate CA certificates, DER.
    pub intermediate_certs: Vec<Vec<u8>>,
    /// Certificate revocation lists, DER, each signed by a root or intermediate.
    pub crls: Vec<Vec<u8>>,
    /// NodeOU classification.
    pub node_ous: NodeOuConfig,
    /// TLS root CA certificates, DER (used by transports, not by identity validation).
    pub tls_root_certs: Vec<Vec<u8>>,
}

/// One organization's membership service provider, ready to validate certificates.
#[derive(Debug)]
pub struct Msp {
    id: String,
    roots: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    /// (issuer subject DER, serial) of every revoked certificate.
    revoked: HashSet<(Vec<u8>, Vec<u8>)>,
    node_ous: NodeOuConfig,
    tls_roots: Vec<Certificate>,
}

/// The part of a validated chain that stays true while time passes: the window in which
/// every certificate of the chain is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ValidityWindow {
    not_before: i64,
    not_after: i64,
}

impl Msp {
    /// Builds an MSP from its configuration.
    ///
    /// # Errors
    /// [`Error::InvalidMspConfig`] without roots, with a root that is not a self-signed CA, or
    /// with an intermediate that does not chain to a root; [`Error::InvalidCrl`] for a CRL that
    /// does not parse or is not signed by one of the MSP's CAs.
    pub fn new(config: MspConfig) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidMspConfig {
            msp_id: config.msp_id.clone(),
            reason,
        };
        if config.msp_id.is_empty() {
            return Err(invalid("empty MSP id".into()));
        }
        if config.root_certs.is_empty() {
            return Err(invalid("no root CA certificate".into()));
        }
        let parse_all = |ders: &[Vec<u8>]| -> Result<Vec<Certificate>> {
            ders.iter().map(|d| Certificate::from_der(d)).collect()
        };
        let roots = parse_all(&config.root_certs)?;
        for root in &roots {
            if !root.is_ca() || !root.is_self_issued() || root.verify_signed_by(root).is_err() {
                return Err(invalid(format!(
                    "root certificate (serial {}) is not a self-signed CA",
                    root.serial_hex()
                )));
            }
        }
        let mut msp = Msp {
            id: config.msp_id.clone(),
            roots,
            intermediates: Vec::new(),
            revoked: HashSet::new(),
            node_ous: config.node_ous.clone(),
            tls_roots: parse_all(&config.tls_root_certs)?,
        };
        let intermediates = parse_all(&config.intermediate_certs)?;
        msp.intermediates = intermediates.clone();
        for inter in &intermediates {
            if !inter.is_ca() {
                return Err(invalid(format!(
                    "intermediate certificate (serial {}) is not a CA",
                    inter.serial_hex()
                )));
            }
            msp.chain(inter)
                .map_err(|e| invalid(format!("intermediate does not chain to a root: {e}")))?;
        }
        for crl in &config.crls {
            msp.add_crl(crl)?;
        }
        Ok(msp)
    }

    fn add_crl(&mut self, der: &[u8]) -> Result<()> {
        let (_, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| Error::InvalidCrl(format!("DER: {e}")))?;
        let issuer_raw = crl.issuer().as_raw();
        let issuer = self
            .roots
            .iter()
            .chain(&self.intermediates)
            .find(|ca| {
                ca.subject_raw() == issuer_raw && {
                    x509_parser::parse_x509_certificate(ca.der())
                        .map(|(_, c)| crl.verify_signature(c.public_key()).is_ok())
                        .unwrap_or(false)
                }
            })
            .ok_or_else(|| {
                Error::InvalidCrl(format!(
                    "CRL is not signed by a CA of MSP {}",
                    self.id.as_str()
                ))
            })?;
        let issuer_subject = issuer.subject_raw().to_vec();
        for revoked in crl.iter_revoked_certificates() {
            self.revoked
                .insert((issuer_subject.clone(), revoked.raw_serial().to_vec()));
        }
        Ok(())
    }

    /// MSP id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Root CA certificates.
    pub fn roots(&self) -> &[Certificate] {
        &self.roots
    }

    /// TLS root CA certificates.
    pub fn tls_roots(&self) -> &[Certificate] {
        &self.tls_roots
    }

    /// NodeOU settings.
    pub fn node_ous(&self) -> &NodeOuConfig {
        &self.node_ous
    }

    /// Finds the chain from `cert` up to a root: `[cert, intermediates..., root]`, each
    /// signature checked.
    fn chain<'a>(&'a self, cert: &'a Certificate) -> Result<Vec<&'a Certificate>> {
        let mut chain = vec![cert];
        let mut current = cert;
        loop {
            if self.roots.iter().any(|r| r.der() == current.der()) {
                return Ok(chain);
            }
            if chain.len() >= MAX_CHAIN_LEN {
                break;
            }
            let candidates: Vec<&Certificate> = self
                .roots
                .iter()
                .chain(&self.intermediates)
                .filter(|ca| ca.subject_raw() == current.issuer_raw())
                .collect();
            if candidates.is_empty() {
                break;
            }
            let issuer = candidates
                .iter()
                .find(|ca| current.verify_signed_by(ca).is_ok())
                .ok_or_else(|| Error::BadCertificateSignature {
                    serial: current.serial_hex(),
                })?;
            if chain.iter().any(|c| c.der() == issuer.der()) {
                break; // a loop: no root above
            }
            chain.push(issuer);
            current = issuer;
        }
        Err(Error::UnknownAuthority {
            msp_id: self.id.clone(),
            serial: cert.serial_hex(),
        })
    }

    /// Validates `cert` as an identity of this MSP at `now` (Unix seconds) and returns its
    /// NodeOU (`None` when NodeOUs are disabled).
    ///
    /// # Errors
    /// [`Error::UnknownAuthority`] (no chain to a root: another CA issued it),
    /// [`Error::BadCertificateSignature`] (tampered), [`Error::Expired`] /
    /// [`Error::NotYetValid`], [`Error::Revoked`], [`Error::InvalidNodeOu`], and
    /// [`Error::MalformedCertificate`] for a CA certificate used as an identity.
    pub fn validate(&self, cert: &Certificate, now: i64) -> Result<Option<NodeOu>> {
        self.validate_window(cert, now).map(|(ou, _)| ou)
    }

    fn validate_window(
        &self,
        cert: &Certificate,
        now: i64,
    ) -> Result<(Option<NodeOu>, ValidityWindow)> {
        if cert.is_ca() {
            return Err(Error::MalformedCertificate(format!(
                "CA certificate (serial {}) cannot be used as an identity",
                cert.serial_hex()
            )));
        }
        let chain = self.chain(cert)?;
        let mut window = ValidityWindow {
            not_before: i64::MIN,
            not_after: i64::MAX,
        };
        for c in &chain {
            check_time(c, now)?;
            window.not_before = window.not_before.max(c.not_before());
            window.not_after = window.not_after.min(c.not_after());
        }
        for pair in chain.windows(2) {
            let (child, issuer) = (pair[0], pair[1]);
            if self
                .revoked
                .contains(&(issuer.subject_raw().to_vec(), child.serial().to_vec()))
            {
                return Err(Error::Revoked {
                    serial: child.serial_hex(),
                });
            }
        }
        Ok((self.classify(cert)?, window))
    }

    fn classify(&self, cert: &Certificate) -> Result<Option<NodeOu>> {
        if !self.node_ous.enable {
            return Ok(None);
        }
        let ous = cert.organizational_units();
        let matched: Vec<NodeOu> = NodeOu::ALL
            .into_iter()
            .filter(|role| ous.iter().any(|ou| ou == self.node_ous.ou_value(*role)))
            .collect();
        match matched.as_slice() {
            [one] => Ok(Some(*one)),
            [] => Err(self.ou_error(cert, "none of client, peer, admin, orderer")),
            _ => Err(self.ou_error(cert, "more than one NodeOU")),
        }
    }

    fn ou_error(&self, cert: &Certificate, reason: &str) -> Error {
        Error::InvalidNodeOu {
            msp_id: self.id.clone(),
            serial: cert.serial_hex(),
            reason: reason.into(),
        }
    }
}

fn check_time(cert: &Certificate, now: i64) -> Result<()> {
    let rfc3339 = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| t.to_string())
    };
    if now < cert.not_before() {
        return Err(Error::NotYetValid {
            serial: cert.serial_hex(),
            not_before: rfc3339(cert.not_before()),
        });
    }
    if now > cert.not_after() {
        return Err(Error::Expired {
            serial: cert.serial_hex(),
            not_after: rfc3339(cert.not_after()),
        });
    }
    Ok(())
}

/// [`VerifiedIdentity::id`] of `cert` in MSP `msp_id`.
pub fn certificate_id(msp_id: &str, cert: &Certificate) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(msp_id.len() + 1 + cert.der().len());
    bytes.extend_from_slice(msp_id.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(cert.der());
    sha256(&bytes)
}

/// Unix seconds of a `SystemTime` (negative before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// An identity that passed MSP validation: who it is, in which role, and its public key.
#[derive(Debug)]
pub struct VerifiedIdentity {
    msp_id: String,
    cert: Certificate,
    node_ou: Option<NodeOu>,
    id: [u8; 32],
    window: ValidityWindow,
}

impl VerifiedIdentity {
    /// MSP id.
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// The span in which every certificate of its validated chain is within its validity
    /// window: `(not_before, not_after)`, Unix seconds ([`unix_seconds`]), both inclusive.
    /// Under the same MSP configuration (roots, intermediates, CRLs), [`MspManager::validate`]
    /// of these bytes succeeds at any time in it and fails with `Expired`/`NotYetValid`
    /// outside it (RFC 5280 §4.1.2.5 validity, checked for each certificate of the chain).
    pub fn validity(&self) -> (i64, i64) {
        (self.window.not_before, self.window.not_after)
    }

    /// NodeOU (`None` when the MSP has NodeOUs disabled).
    pub fn node_ou(&self) -> Option<NodeOu> {
        self.node_ou
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// One Fabric CA attribute of the certificate (e.g. `ehr.role`).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.cert.attribute(name)
    }

    /// Who this is, for counting signers once: SHA-256 of the MSP id, a zero byte and the
    /// certificate's DER, so every encoding of one certificate is one identity (Fabric's
    /// identity identifier: MSP id and the hash of the raw certificate).
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// Verifies a Fabric signature by this identity over `message`.
    ///
    /// # Errors
    /// See [`crypto::verify`].
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        crypto::verify(self.cert.public_key(), message, signature)
    }

    /// This identity as a policy [`Signer`].
    pub fn signer(&self) -> Signer {
        Signer {
            msp_id: self.msp_id.clone(),
            ou: self.node_ou,
            id: self.id,
        }
    }

    /// Requires a NodeOU role (e.g. a peer for endorsements).
    ///
    /// # Errors
    /// [`Error::WrongNodeOu`] if the identity has another role.
    pub fn require_ou(&self, expected: NodeOu) -> Result<()> {
        if self.node_ou == Some(expected) {
            Ok(())
        } else {
            Err(Error::WrongNodeOu {
                msp_id: self.msp_id.clone(),
                expected,
                actual: self.node_ou,
            })
        }
    }
}

/// Default number of verified identities [`MspManager`] keeps.
pub const DEFAULT_IDENTITY_CACHE_SIZE: usize = 4096;

/// The MSPs of a channel, with a bounded cache of verified identities.
///
/// A cache hit (SHA-256 of the serialized identity plus a map lookup and a time-window
/// check) replaces chain validation; CRL changes come with a new channel configuration and
/// therefore a new manager, so cached entries never outlive a revocation. One certificate
/// has many encodings (`id_bytes` may carry any whitespace around its PEM block): after the
/// bytes' own entry misses, the decoded certificate is looked up by
/// [`VerifiedIdentity::id`], so every encoding of a cached certificate yields the same shared
/// [`VerifiedIdentity`] (one allocation per certificate while it is cached, not per encoding) without chain
/// validation.
#[derive(Debug)]
pub struct MspManager {
    msps: HashMap<String, Msp>,
    cache: Mutex<IdentityCache>,
}

/// Verified identities by SHA-256 of their serialized bytes and by [`VerifiedIdentity::id`],
/// each an LRU of the manager's capacity; both hold the same `Arc`s.
#[derive(Debug)]
struct IdentityCache {
    by_bytes: lru::LruCache<[u8; 32], Arc<VerifiedIdentity>>,
    by_id: lru::LruCache<[u8; 32], Arc<VerifiedIdentity>>,
}

impl MspManager {
    /// A manager over `msps`, caching up to `cache_size` identities (at least 1).
    pub fn new(msps: impl IntoIterator<Item = Msp>, cache_size: usize) -> Self {
        let cap = NonZeroUsize::new(cache_size.max(1)).unwrap_or(NonZeroUsize::MIN);
        MspManager {
            msps: msps.into_iter().map(|m| (m.id.clone(), m)).collect(),
            cache: Mutex::new(IdentityCache {
                by_bytes: lru::LruCache::new(cap),
                by_id: lru::LruCache::new(cap),
            }),
        }
    }

    /// The MSP with this id.
    pub fn msp(&self, msp_id: &str) -> Option<&Msp> {
        self.msps.get(msp_id)
    }

    /// MSP ids, sorted.
    pub fn msp_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.msps.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// Deserializes a `msp.SerializedIdentity` and validates it under its MSP at `now`.
    ///
    /// # Errors
    /// [`Error::MalformedIdentity`], [`Error::UnknownMsp`], or any error of [`Msp::validate`].
    pub fn validate(&self, serialized: &[u8], now: SystemTime) -> Result<Arc<VerifiedIdentity>> {
        let now = unix_seconds(now);
        let key = sha256(serialized);
        // A hit outside its validity window falls through, so the error names the
        // certificate at fault.
        let within = |hit: &Arc<VerifiedIdentity>| {
            now >= hit.window.not_before && now <= hit.window.not_after
        };
        if let Some(hit) = self.cache_get(|c| c.by_bytes.get(&key).cloned())
            && within(&hit)
        {
            return Ok(hit);
        }
        let (msp_id, cert) = deserialize_identity(serialized)?;
        let id = certificate_id(&msp_id, &cert);
        // Another encoding of a cached certificate: the same identity, shared. The id is a
        // hash over a client's MSP id and DER; the hit must be that exact pair (a memcmp), so
        // a verdict never depends on what another orderer happens to have cached.
        if let Some(hit) = self.cache_get(|c| c.by_id.get(&id).cloned())
            && within(&hit)
            && hit.msp_id == msp_id
            && hit.cert.der() == cert.der()
        {
            if let Ok(mut cache) = self.cache.lock() {
                cache.by_bytes.put(key, hit.clone());
            }
            return Ok(hit);
        }
        let msp = self.msps.get(&msp_id).ok_or_else(|| Error::UnknownMsp {
            msp_id: crate::error::cut(&msp_id, crate::error::ECHOED_MSP_ID_CHARS),
        })?;
        let (node_ou, window) = msp.validate_window(&cert, now)?;
        let verified = Arc::new(VerifiedIdentity {
            msp_id,
            cert,
            node_ou,
            id,
            window,
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.by_bytes.put(key, verified.clone());
            cache.by_id.put(id, verified.clone());
        }
        Ok(verified)
    }

    /// Validates the creator and verifies its signature over `message`.
    ///
    /// # Errors
    /// Any error of [`MspManager::validate`] or [`crypto::verify`].
    pub fn verify(
        &self,
        serialized: &[u8],
        message: &[u8],
        signature: &[u8],
        now: SystemTime,
    ) -> Result<Arc<VerifiedIdentity>> {
        let identity = self.validate(serialized, now)?;
        identity.verify(message, signature)?;
        Ok(identity)
    }

    fn cache_get(
        &self,
        get: impl FnOnce(&mut IdentityCache) -> Option<Arc<VerifiedIdentity>>,
    ) -> Option<Arc<VerifiedIdentity>> {
        get(&mut *self.cache.lock().ok()?)
    }

    /// Number of distinct identities (certificates, by [`VerifiedIdentity::id`]) currently
    /// cached.
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.by_id.len()).unwrap_or(0)
    }
}
