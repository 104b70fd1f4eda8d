//! Certificate authority in the manner of Fabric CA: an organization's root CA and a separate
//! TLS CA (ECDSA P-256), identity registration with attributes and enrollment secrets,
//! enrollment by certificate signing request (the private key never leaves the enrollee),
//! reenrollment, revocation and CRL generation.
//!
//! Certificates follow Fabric CA's enrollment certificates: subject `O=<organization>,
//! OU=<type>[, OU=<affiliation part>...], CN=<enrollment id>`, NodeOU as the first OU, and the
//! attributes extension (OID 1.2.3.4.5.6.7.8.1) holding `{"attrs":{...}}` with
//! `hf.EnrollmentID`, `hf.Type`, `hf.Affiliation` and every attribute registered with
//! `ecert`. Registrar permissions use Fabric CA's attributes: `hf.Registrar.Roles` (types the
//! registrar may register, `*` for all), `hf.Registrar.Attributes` (attribute names it may
//! assign; `*` or prefixes such as `ehr.*`), `hf.Revoker` and `hf.GenCRL`.
//!
//! [`CertificateAuthority`] is the pure-ish core (key material, state, rules); [`server`]
//! exposes it as the `medledger.ca.CertificateAuthority` gRPC service over TLS and
//! [`client`] calls it.

pub mod client;
pub mod server;
mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

pub use store::{
    Attribute, CaState, CaStore, IssuedCertificate, Profile, RegisteredIdentity, Revocation,
};

use medledger_msp::cert::{ATTRS_EXTENSION_OID, Certificate, encode_attrs};
use medledger_msp::crypto::SigningKey;
use medledger_msp::fsutil;
use medledger_msp::msp::{Msp, MspConfig, NodeOuConfig, unix_seconds};
use medledger_msp::ou::NodeOu;

/// PBKDF2-HMAC-SHA256 iterations for enrollment secrets.
const PBKDF2_ITERATIONS: u32 = 100_000;

/// Why a CA operation was refused. Messages name enrollment ids and serials only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// Enrollment id unknown, or wrong secret (not told apart, as Fabric CA).
    #[error("authentication failure for enrollment id {enrollment_id:?}")]
    AuthenticationFailed {
        /// Enrollment id presented.
        enrollment_id: String,
    },
    /// The identity exists already.
    #[error("identity {enrollment_id:?} is already registered")]
    AlreadyRegistered {
        /// Enrollment id.
        enrollment_id: String,
    },
    /// No such identity.
    #[error("identity {enrollment_id:?} is not registered")]
    UnknownIdentity {
        /// Enrollment id.
        enrollment_id: String,
    },
    /// The identity used all its enrollments.
    #[error("identity {enrollment_id:?} has reached its maximum of {max} enrollments")]
    MaxEnrollmentsReached {
        /// Enrollment id.
        enrollment_id: String,
        /// Maximum registered.
        max: i32,
    },
    /// The identity was revoked.
    #[error("identity {enrollment_id:?} has been revoked")]
    IdentityRevoked {
        /// Enrollment id.
        enrollment_id: String,
    },
    /// The caller lacks the permission for this operation.
    #[error("{enrollment_id:?} is not authorized: {reason}")]
    Unauthorized {
        /// Caller's enrollment id.
        enrollment_id: String,
        /// What permission is missing.
        reason: String,
    },
    /// The certificate signing request is unusable.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(String),
    /// A request field is invalid.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No certificate with this serial was issued here.
    #[error("no certificate with serial {serial} was issued by this CA")]
    UnknownCertificate {
        /// Serial, hex.
        serial: String,
    },
    /// Reading or writing the CA's files failed.
    #[error("CA storage: {0}")]
    Storage(String),
    /// Building or signing a certificate or CRL failed.
    #[error("certificate generation failed: {0}")]
    Issue(String),
}

type CaResult<T> = Result<T, CaError>;

/// CA settings, stored as `ca.yaml` in the CA's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// CA name (`ca_name` in requests), e.g. `ca-org1`.
    pub name: String,
    /// MSP id of the organization, e.g. `Org1MSP`.
    pub msp_id: String,
    /// Organization name for certificate subjects (`O=`), e.g. `org1.example.com`.
    pub organization: String,
    /// Host names and IP addresses of the CA service (SANs of its TLS certificate).
    #[serde(default = "default_hosts")]
    pub hosts: Vec<String>,
    /// Validity of the root and TLS CA certificates, days (default 5475 = 15 years).
    #[serde(default = "default_ca_days")]
    pub ca_validity_days: u32,
    /// Validity of enrollment and TLS certificates, days (default 365).
    #[serde(default = "default_cert_days")]
    pub cert_validity_days: u32,
    /// Enrollments allowed when registration gives 0; -1 = unlimited (default -1, as Fabric CA).
    #[serde(default = "default_max_enrollments")]
    pub default_max_enrollments: i32,
    /// How long a generated CRL is valid, hours (default 24).
    #[serde(default = "default_crl_hours")]
    pub crl_validity_hours: u32,
}

fn default_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}
fn default_ca_days() -> u32 {
    5475
}
fn default_cert_days() -> u32 {
    365
}
fn default_max_enrollments() -> i32 {
    -1
}
fn default_crl_hours() -> u32 {
    24
}

impl CaConfig {
    /// Settings with the defaults above for an organization.
    pub fn new(
        name: impl Into<String>,
        msp_id: impl Into<String>,
        organization: impl Into<String>,
    ) -> Self {
        CaConfig {
            name: name.into(),
            msp_id: msp_id.into(),
            organization: organization.into(),
            hosts: default_hosts(),
            ca_validity_days: default_ca_days(),
            cert_validity_days: default_cert_days(),
            default_max_enrollments: default_max_enrollments(),
            crl_validity_hours: default_crl_hours(),
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`CaError::InvalidRequest`] naming the bad field.
    pub fn validate(&self) -> CaResult<()> {
        let bad = |m: &str| Err(CaError::InvalidRequest(m.into()));
        if self.name.trim().is_empty() {
            return bad("ca name is empty");
        }
        if medledger_proto::types::MspId::try_from(self.msp_id.as_str()).is_err() {
            return bad("msp_id is not a valid MSP id");
        }
        if self.organization.trim().is_empty() {
            return bad("organization is empty");
        }
        if self.cert_validity_days == 0 || self.ca_validity_days == 0 {
            return bad("validity days must be positive");
        }
        if self.crl_validity_hours == 0 {
            return bad("crl_validity_hours must be positive");
        }
        if self.default_max_enrollments < -1 {
            return bad("default_max_enrollments must be -1 (unlimited) or more");
        }
        Ok(())
    }
}

/// A registration: what [`CertificateAuthority::register`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Enrollment id, 1-64 characters of letters, digits, `.`, `-`, `_`, `@`.
    pub enrollment_id: String,
    /// Identity type (NodeOU of its certificates).
    pub identity_type: NodeOu,
    /// Secret; empty lets the CA generate one.
    pub secret: String,
    /// 0 = CA default, -1 = unlimited.
    pub max_enrollments: i32,
    /// Attributes.
    pub attributes: Vec<Attribute>,
    /// Affiliation (dot-separated), may be empty.
    pub affiliation: String,
}

impl Registration {
    /// A registration with a generated secret, default enrollments and no attributes.
    pub fn new(enrollment_id: impl Into<String>, identity_type: NodeOu) -> Self {
        Registration {
            enrollment_id: enrollment_id.into(),
            identity_type,
            secret: String::new(),
            max_enrollments: 0,
            attributes: Vec::new(),
            affiliation: String::new(),
        }
    }

    /// Adds an attribute placed in enrollment certificates (`name=value:ecert` in Fabric CA).
    pub fn with_attribute(mut self, name: &str, value: &str) -> Self {
        self.attributes.push(Attribute {
            name: name.into(),
            value: value.into(),
            ecert: true,
        });
        self
    }

    /// Sets the secret.
    pub fn with_secret(mut self, secret: &str) -> Self {
        self.secret = secret.into();
        self
    }

    /// Sets the maximum number of enrollments.
    pub fn with_max_enrollments(mut self, max: i32) -> Self {
        self.max_enrollments = max;
        self
    }
}

/// A certificate issued by an enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The new certificate, PEM.
    pub cert_pem: String,
    /// The issuing CA's certificate, PEM.
    pub ca_cert_pem: String,
}

/// What [`CertificateAuthority::issue_local`] issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdentity {
    /// Enrollment certificate, PEM.
    pub cert_pem: String,
    /// TLS certificate, PEM, when TLS host names were given.
    pub tls_cert_pem: Option<String>,
}

/// A signing CA: key and certificate.
struct CaKey {
    key: KeyPair,
    cert: Certificate,
}

impl CaKey {
    fn issuer(&self) -> CaResult<Issuer<'static, &KeyPair>> {
        Issuer::from_ca_cert_der(&self.cert.der().to_vec().into(), &self.key)
            .map_err(|e| CaError::Issue(format!("CA certificate: {e}")))
    }
}

/// File names inside a CA directory.
mod files {
    pub(crate) const CONFIG: &str = "ca.yaml";
    pub(crate) const STATE: &str = "state.json";
    pub(crate) const CA_CERT: &str = "ca-cert.pem";
    pub(crate) const CA_KEY: &str = "ca-key.pem";
    pub(crate) const TLSCA_CERT: &str = "tlsca-cert.pem";
    pub(crate) const TLSCA_KEY: &str = "tlsca-key.pem";
    pub(crate) const TLS_DIR: &str = "tls";
}

/// An organization's certificate authority, backed by a directory:
///
/// ```text
/// DIR/ca.yaml          settings (CaConfig)
/// DIR/ca-cert.pem      root CA certificate        DIR/ca-key.pem     its key (0600)
/// DIR/tlsca-cert.pem   TLS CA certificate         DIR/tlsca-key.pem  its key (0600)
/// DIR/tls/             the CA service's own TLS server certificate (ca.crt, server.crt, server.key)
/// DIR/state.json       identities, issued certificates, revocations (0600, atomic writes)
/// ```
pub struct CertificateAuthority {
    dir: PathBuf,
    config: CaConfig,
    root: CaKey,
    tls: CaKey,
    store: CaStore,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a new CA in `dir`: root and TLS CA keys and self-signed certificates, a TLS
    /// server certificate for the CA service, and a state with one bootstrap registrar
    /// (`boot_id`, type client, all registrar permissions, unlimited enrollments), as
    /// `fabric-ca-server init -b id:secret`. `dir` and its `tls/` are made mode 0700, key
    /// files 0600.
    ///
    /// # Errors
    /// [`CaError::InvalidRequest`] for bad settings, [`CaError::Storage`] if `dir` already
    /// holds a CA or cannot be written.
    pub fn init(dir: &Path, config: CaConfig, boot_id: &str, boot_secret: &str) -> CaResult<Self> {
        config.validate()?;
        if dir.join(files::STATE).exists() || dir.join(files::CA_KEY).exists() {
            return Err(CaError::Storage(format!(
                "{} already holds a CA",
                dir.display()
            )));
        }
        let now = OffsetDateTime::now_utc();
        let not_after = now + Duration::days(i64::from(config.ca_validity_days));
        let root = self_signed_ca(
            &config,
            &format!("ca.{}", config.organization),
            now,
            not_after,
        )?;
        let tls = self_signed_ca(
            &config,
            &format!("tlsca.{}", config.organization),
            now,
            not_after,
        )?;
        // The CA's keys and state live here: mode 0700 before the first (public) file.
        fsutil::create_private_dir(dir).map_err(|e| CaError::Storage(e.to_string()))?;
        let write = |name: &str, bytes: &[u8], private: bool| {
            fsutil::write_atomic(&dir.join(name), bytes, private)
                .map_err(|e| CaError::Storage(e.to_string()))
        };
        write(files::CA_CERT, root.cert.to_pem().as_bytes(), false)?;
        write(files::CA_KEY, root.key.serialize_pem().as_bytes(), true)?;
        write(files::TLSCA_CERT, tls.cert.to_pem().as_bytes(), false)?;
        write(files::TLSCA_KEY, tls.key.serialize_pem().as_bytes(), true)?;
        let yaml = serde_yaml_ng::to_string(&config)
            .map_err(|e| CaError::Storage(format!("encode ca.yaml: {e}")))?;
        write(files::CONFIG, yaml.as_bytes(), false)?;
        let store = CaStore::create(&dir.join(files::STATE))?;
        let mut ca = CertificateAuthority {
            dir: dir.to_owned(),
            config,
            root,
            tls,
            store,
        };
        ca.write_server_tls()?;
        let mut boot = Registration::new(boot_id, NodeOu::Client)
            .with_secret(boot_secret)
            .with_max_enrollments(-1);
        for (name, value) in [
            ("hf.Registrar.Roles", "*"),
            ("hf.Registrar.DelegateRoles", "*"),
            ("hf.Registrar.Attributes", "*"),
            ("hf.Revoker", "true"),
            ("hf.GenCRL", "true"),
            ("hf.IntermediateCA", "true"),
        ] {
            boot.attributes.push(Attribute {
                name: name.into(),
                value: value.into(),
                ecert: false,
            });
        }
        ca.insert_registration(boot)?;
        Ok(ca)
    }

    /// Opens the CA in `dir` (after [`CertificateAuthority::init`]).
    ///
    /// # Errors
    /// [`CaError::Storage`] if a file is missing or does not parse.
    pub fn open(dir: &Path) -> CaResult<Self> {
        let read =
            |name: &str| fsutil::read(&dir.join(name)).map_err(|e| CaError::Storage(e.to_string()));
        let config: CaConfig = serde_yaml_ng::from_slice(&read(files::CONFIG)?)
            .map_err(|e| CaError::Storage(format!("{}: {e}", files::CONFIG)))?;
        config.validate()?;
        let load = |cert: &str, key: &str| -> CaResult<CaKey> {
            let cert =
                Certificate::from_pem(&read(cert)?).map_err(|e| CaError::Storage(e.to_string()))?;
            let key_pem = String::from_utf8(read(key)?)
                .map_err(|_| CaError::Storage("CA key is not UTF-8 PEM".into()))?;
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|e| CaError::Storage(format!("CA key: {e}")))?;
            Ok(CaKey { key, cert })
        };
        Ok(CertificateAuthority {
            dir: dir.to_owned(),
            root: load(files::CA_CERT, files::CA_KEY)?,
            tls: load(files::TLSCA_CERT, files::TLSCA_KEY)?,
            store: CaStore::open(&dir.join(files::STATE))?,
            config,
        })
    }

    /// Settings.
    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    /// Directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Root CA certificate.
    pub fn root_cert(&self) -> &Certificate {
        &self.root.cert
    }

    /// TLS CA certificate.
    pub fn tls_root_cert(&self) -> &Certificate {
        &self.tls.cert
    }

    /// Persisted state (read-only).
    pub fn state(&self) -> &CaState {
        self.store.state()
    }

    /// Directory of the CA service's own TLS material (`ca.crt`, `server.crt`, `server.key`).
    pub fn server_tls_dir(&self) -> PathBuf {
        self.dir.join(files::TLS_DIR)
    }

    /// An MSP of this organization with its current CRL: what channel members use to validate
    /// identities this CA issued.
    ///
    /// # Errors
    /// [`CaError::Issue`] if the CRL cannot be generated or the MSP rejects it.
    pub fn msp(&self) -> CaResult<Msp> {
        let config = self.msp_config()?;
        Msp::new(config).map_err(|e| CaError::Issue(e.to_string()))
    }

    /// The MSP configuration of this organization (roots, TLS roots, CRL, NodeOUs on).
    ///
    /// # Errors
    /// [`CaError::Issue`] if the CRL cannot be generated.
    pub fn msp_config(&self) -> CaResult<MspConfig> {
        Ok(MspConfig {
            msp_id: self.config.msp_id.clone(),
            root_certs: vec![self.root.cert.der().to_vec()],
            intermediate_certs: Vec::new(),
            crls: vec![self.current_crl_der()?],
            node_ous: NodeOuConfig::default(),
            tls_root_certs: vec![self.tls.cert.der().to_vec()],
        })
    }

    fn write_server_tls(&mut self) -> CaResult<()> {
        let key = SigningKey::generate().map_err(|e| CaError::Issue(e.to_string()))?;
        let rc_key = rcgen_key(&key).map_err(|e| CaError::Issue(e.to_string()))?;
        let identity = RegisteredIdentity {
            enrollment_id: self.config.name.clone(),
            identity_type: NodeOu::Client,
            affiliation: String::new(),
            attributes: Vec::new(),
            max_enrollments: -1,
            enrollments: 0,
            secret_hash: String::new(),
            revoked: false,
        };
        let cert = self.issue(&identity, &rc_key, Profile::Tls, &self.config.hosts.clone())?;
        let dir = self.server_tls_dir();
        fsutil::create_private_dir(&dir).map_err(|e| CaError::Storage(e.to_string()))?;
        let write = |name: &str, bytes: &[u8], private: bool| {
            fsutil::write_atomic(&dir.join(name), bytes, private)
                .map_err(|e| CaError::Storage(e.to_string()))
        };
        write("ca.crt", self.tls.cert.to_pem().as_bytes(), false)?;
        write("server.crt", cert.to_pem().as_bytes(), false)?;
        let key_pem = key
            .to_pkcs8_pem()
            .map_err(|e| CaError::Issue(e.to_string()))?;
        write("server.key", key_pem.as_bytes(), true)
    }

    /// Registers an identity on behalf of `registrar` (an enrollment id registered here),
    /// checking Fabric CA's registrar permissions. Returns the enrollment secret (generated
    /// when the registration has none).
    ///
    /// # Errors
    /// [`CaError::Unauthorized`] when the registrar may not register this type or assign
    /// these attributes; [`CaError::AlreadyRegistered`]; [`CaError::InvalidRequest`] for a bad
    /// enrollment id, attribute or enrollment count; [`CaError::Storage`].
    pub fn register(&mut self, registrar: &str, registration: Registration) -> CaResult<String> {
        let caller = self.active_identity(registrar)?;
        authorize_registration(caller, &registration)?;
        self.insert_registration(registration)
    }

    fn insert_registration(&mut self, mut registration: Registration) -> CaResult<String> {
        validate_enrollment_id(&registration.enrollment_id)?;
        for attr in &registration.attributes {
            if attr.name.is_empty() || attr.name.len() > 128 || attr.value.len() > 1024 {
                return Err(CaError::InvalidRequest(
                    "attribute names must be 1-128 bytes and values at most 1024".into(),
                ));
            }
            if attr.name.starts_with("hf.EnrollmentID")
                || attr.name == "hf.Type"
                || attr.name == "hf.Affiliation"
            {
                return Err(CaError::InvalidRequest(format!(
                    "attribute {} is reserved",
                    attr.name
                )));
            }
        }
        if registration.max_enrollments < -1 {
            return Err(CaError::InvalidRequest(
                "max_enrollments must be -1, 0 or positive".into(),
            ));
        }
        if registration.max_enrollments == 0 {
            registration.max_enrollments = self.config.default_max_enrollments;
        }
        if registration.secret.is_empty() {
            registration.secret = generate_secret();
        }
        let secret = registration.secret.clone();
        let secret_hash = hash_secret(&secret)?;
        let id = registration.enrollment_id.clone();
        self.store.update(|state| {
            if state.identities.contains_key(&id) {
                return Err(CaError::AlreadyRegistered {
                    enrollment_id: id.clone(),
                });
            }
            state.identities.insert(
                id.clone(),
                RegisteredIdentity {
                    enrollment_id: id.clone(),
                    identity_type: registration.identity_type,
                    affiliation: registration.affiliation,
                    attributes: registration.attributes,
                    max_enrollments: registration.max_enrollments,
                    enrollments: 0,
                    secret_hash,
                    revoked: false,
                },
            );
            Ok(())
        })?;
        tracing::info!(target: "msp::ca", enrollment_id = %id, "identity registered");
        Ok(secret)
    }

    /// Enrolls: checks the secret and enrollment count, then signs the CSR's public key into a
    /// certificate (enrollment certificate from the root CA, or TLS certificate from the TLS
    /// CA with `hosts` as SANs). The subject and attributes come from the registration, not
    /// from the CSR.
    ///
    /// # Errors
    /// [`CaError::AuthenticationFailed`], [`CaError::IdentityRevoked`],
    /// [`CaError::MaxEnrollmentsReached`], [`CaError::BadCsr`], [`CaError::Storage`].
    pub fn enroll(
        &mut self,
        enrollment_id: &str,
        secret: &str,
        csr_pem: &str,
        profile: Profile,
        hosts: &[String],
    ) -> CaResult<Enrollment> {
        let auth_failed = || CaError::AuthenticationFailed {
            enrollment_id: enrollment_id.to_owned(),
        };
        let stored = self.secret_hash(enrollment_id).ok_or_else(auth_failed)?;
        if !secret_matches(secret, &stored) {
            return Err(auth_failed());
        }
        self.enroll_authenticated(enrollment_id, &stored, csr_pem, profile, hosts)
    }

    /// The stored secret hash of `enrollment_id` (for [`secret_matches`] outside any lock).
    pub fn secret_hash(&self, enrollment_id: &str) -> Option<String> {
        self.store
            .state()
            .identities
            .get(enrollment_id)
            .map(|i| i.secret_hash.clone())
    }

    /// [`Self::enroll`] after the caller checked the secret against `secret_hash` (as read by
    /// [`Self::secret_hash`]) with [`secret_matches`]: the CA service hashes secrets (PBKDF2,
    /// tens of milliseconds) without holding the CA, so one client's enrollments cannot
    /// stall every other operation. Refused if the secret hash changed in between.
    ///
    /// # Errors
    /// As [`Self::enroll`].
    pub fn enroll_authenticated(
        &mut self,
        enrollment_id: &str,
        secret_hash: &str,
        csr_pem: &str,
        profile: Profile,
        hosts: &[String],
    ) -> CaResult<Enrollment> {
        let auth_failed = || CaError::AuthenticationFailed {
            enrollment_id: enrollment_id.to_owned(),
        };
        let identity = self
            .store
            .state()
            .identities
            .get(enrollment_id)
            .filter(|i| i.secret_hash == secret_hash)
            .ok_or_else(auth_failed)?
            .clone();
        if identity.revoked {
            return Err(CaError::IdentityRevoked {
                enrollment_id: enrollment_id.to_owned(),
            });
        }
        if identity.max_enrollments >= 0
            && i64::from(identity.enrollments) >= i64::from(identity.max_enrollments)
        {
            return Err(CaError::MaxEnrollmentsReached {
                enrollment_id: enrollment_id.to_owned(),
                max: identity.max_enrollments,
            });
        }
        self.issue_and_record(&identity, csr_pem, profile, hosts, true)
    }

    /// Reenrolls an identity that proved possession of a current certificate (the caller has
    /// checked the signed request): issues a new certificate for a new CSR without the secret
    /// and without counting an enrollment, as Fabric CA.
    ///
    /// # Errors
    /// [`CaError::IdentityRevoked`], [`CaError::UnknownIdentity`], [`CaError::BadCsr`],
    /// [`CaError::Storage`].
    pub fn reenroll(
        &mut self,
        enrollment_id: &str,
        csr_pem: &str,
        profile: Profile,
        hosts: &[String],
    ) -> CaResult<Enrollment> {
        let identity = self.active_identity(enrollment_id)?.clone();
        self.issue_and_record(&identity, csr_pem, profile, hosts, false)
    }

    fn issue_and_record(
        &mut self,
        identity: &RegisteredIdentity,
        csr_pem: &str,
        profile: Profile,
        hosts: &[String],
        count_enrollment: bool,
    ) -> CaResult<Enrollment> {
        if profile == Profile::Tls && !may_hold_tls_certificate(identity) {
            return Err(CaError::Unauthorized {
                enrollment_id: identity.enrollment_id.clone(),
                reason: format!(
                    "TLS certificates are issued to peer and orderer identities only \
                     (or with the registered attribute {TLS_ATTRIBUTE}=true)"
                ),
            });
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::BadCsr(e.to_string()))?;
        if csr.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(CaError::BadCsr("only ECDSA P-256 keys are accepted".into()));
        }
        let cert = self.issue(identity, &csr.public_key, profile, hosts)?;
        let record = IssuedCertificate {
            serial: cert.serial_hex(),
            enrollment_id: identity.enrollment_id.clone(),
            profile,
            not_before: cert.not_before(),
            not_after: cert.not_after(),
            revoked: None,
        };
        let id = identity.enrollment_id.clone();
        self.store.update(|state| {
            if let Some(ident) = state.identities.get_mut(&id).filter(|_| count_enrollment) {
                ident.enrollments = ident.enrollments.saturating_add(1);
            }
            state.certificates.insert(record.serial.clone(), record);
            Ok(())
        })?;
        tracing::info!(target: "msp::ca", enrollment_id = %id, serial = %cert.serial_hex(), ?profile, "certificate issued");
        let ca = match profile {
            Profile::Ecert => &self.root.cert,
            Profile::Tls => &self.tls.cert,
        };
        Ok(Enrollment {
            cert_pem: cert.to_pem(),
            ca_cert_pem: ca.to_pem(),
        })
    }

    fn issue(
        &self,
        identity: &RegisteredIdentity,
        public_key: &impl rcgen::PublicKeyData,
        profile: Profile,
        hosts: &[String],
    ) -> CaResult<Certificate> {
        let ca = match profile {
            Profile::Ecert => &self.root,
            Profile::Tls => &self.tls,
        };
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(match profile {
            Profile::Tls => hosts.to_vec(),
            Profile::Ecert => Vec::new(),
        })
        .map_err(|e| CaError::InvalidRequest(format!("hosts: {e}")))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.config.organization.as_str());
        dn.push(
            DnType::OrganizationalUnitName,
            identity.identity_type.as_str(),
        );
        for part in identity.affiliation.split('.').filter(|p| !p.is_empty()) {
            dn.push(DnType::OrganizationalUnitName, part);
        }
        dn.push(DnType::CommonName, identity.enrollment_id.as_str());
        params.distinguished_name = dn;
        params.not_before = now - Duration::minutes(5);
        params.not_after = (now + Duration::days(i64::from(self.config.cert_validity_days)))
            .min(OffsetDateTime::from_unix_timestamp(ca.cert.not_after()).unwrap_or(now));
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        match profile {
            Profile::Ecert => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                let mut attrs = BTreeMap::new();
                attrs.insert("hf.EnrollmentID".to_owned(), identity.enrollment_id.clone());
                attrs.insert("hf.Type".to_owned(), identity.identity_type.to_string());
                attrs.insert("hf.Affiliation".to_owned(), identity.affiliation.clone());
                for a in identity.attributes.iter().filter(|a| a.ecert) {
                    attrs.insert(a.name.clone(), a.value.clone());
                }
                params.custom_extensions = vec![CustomExtension::from_oid_content(
                    ATTRS_EXTENSION_OID,
                    encode_attrs(&attrs),
                )];
            }
            Profile::Tls => {
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
            }
        }
        let cert = params
            .signed_by(public_key, &ca.issuer()?)
            .map_err(|e| CaError::Issue(e.to_string()))?;
        Certificate::from_der(cert.der()).map_err(|e| CaError::Issue(e.to_string()))
    }

    /// Revokes, on behalf of `revoker` (needs `hf.Revoker=true`), either a whole identity
    /// (`target` = enrollment id: the identity can no longer enroll and all its certificates
    /// are revoked) or one certificate (`target` = serial, hex). Returns the serials revoked
    /// now. `reason` is an RFC 5280 reason name.
    ///
    /// # Errors
    /// [`CaError::Unauthorized`], [`CaError::UnknownIdentity`],
    /// [`CaError::UnknownCertificate`], [`CaError::InvalidRequest`] for an unknown reason.
    pub fn revoke(
        &mut self,
        revoker: &str,
        target: RevokeTarget,
        reason: &str,
    ) -> CaResult<Vec<String>> {
        let caller = self.active_identity(revoker)?;
        require_flag(caller, "hf.Revoker")?;
        parse_reason(reason)?;
        let at = unix_seconds(std::time::SystemTime::now());
        let revocation = Revocation {
            at,
            reason: reason.to_owned(),
        };
        let revoked =
            self.store.update(|state| {
                let mut revoked = Vec::new();
                match &target {
                    RevokeTarget::Identity(id) => {
                        let ident = state.identities.get_mut(id).ok_or_else(|| {
                            CaError::UnknownIdentity {
                                enrollment_id: id.clone(),
                            }
                        })?;
                        ident.revoked = true;
                        for cert in state.certificates.values_mut() {
                            if &cert.enrollment_id == id && cert.revoked.is_none() {
                                cert.revoked = Some(revocation.clone());
                                revoked.push(cert.serial.clone());
                            }
                        }
                    }
                    RevokeTarget::Serial(serial) => {
                        let serial = serial.to_ascii_lowercase();
                        let cert = state.certificates.get_mut(&serial).ok_or_else(|| {
                            CaError::UnknownCertificate {
                                serial: serial.clone(),
                            }
                        })?;
                        if cert.revoked.is_none() {
                            cert.revoked = Some(revocation.clone());
                            revoked.push(serial);
                        }
                    }
                }
                Ok(revoked)
            })?;
        tracing::info!(target: "msp::ca", revoker, count = revoked.len(), reason, "certificates revoked");
        Ok(revoked)
    }

    /// Generates a CRL of the certificates revoked so far, enrollment and TLS alike (those
    /// revoked within `[after, before]` when given), signed by the root CA, on behalf of
    /// `caller` (needs `hf.GenCRL=true`). PEM `X509 CRL`. As Fabric CA's `gencrl`, which
    /// lists every revoked certificate of the CA's certificates table whatever its profile:
    /// serials are random 128-bit values unique across both profiles (one table), so a
    /// relying party that trusts this CRL for the organization (the FHIR server for its
    /// mutual TLS callers) can match a TLS certificate's serial against it.
    ///
    /// # Errors
    /// [`CaError::Unauthorized`], [`CaError::Issue`], [`CaError::Storage`].
    pub fn gen_crl(
        &mut self,
        caller: &str,
        revoked_after: Option<i64>,
        revoked_before: Option<i64>,
    ) -> CaResult<String> {
        let identity = self.active_identity(caller)?;
        require_flag(identity, "hf.GenCRL")?;
        let number = self.store.update(|state| {
            state.crl_number += 1;
            Ok(state.crl_number)
        })?;
        let der = self.crl_der(number, revoked_after, revoked_before)?;
        Ok(pem::encode(&pem::Pem::new("X509 CRL", der)))
    }

    /// The current CRL (all revocations) in DER, numbered with the last generated number.
    fn current_crl_der(&self) -> CaResult<Vec<u8>> {
        self.crl_der(self.store.state().crl_number, None, None)
    }

    fn crl_der(&self, number: u64, after: Option<i64>, before: Option<i64>) -> CaResult<Vec<u8>> {
        let now = OffsetDateTime::now_utc();
        let mut revoked_certs = Vec::new();
        for cert in self.store.state().certificates.values() {
            let Some(rev) = &cert.revoked else { continue };
            if after.is_some_and(|a| rev.at < a) || before.is_some_and(|b| rev.at > b) {
                continue;
            }
            let serial = hex::decode(&cert.serial)
                .map_err(|_| CaError::Storage(format!("bad serial {} in state", cert.serial)))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: OffsetDateTime::from_unix_timestamp(rev.at).unwrap_or(now),
                reason_code: parse_reason(&rev.reason).ok(),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::hours(i64::from(self.config.crl_validity_hours)),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.root.issuer()?)
            .map_err(|e| CaError::Issue(e.to_string()))?;
        Ok(crl.der().to_vec())
    }

    /// Registers `registration` by `registrar` and enrolls it here, on the CA's host (what
    /// `network up` and development clusters do instead of a CA client round trip): writes
    /// `<home>/msp` (Fabric MSP folder with a fresh P-256 key) and, when `tls_hosts` is not
    /// empty, `<home>/tls/{ca.crt,server.crt,server.key}` with a TLS certificate for those
    /// host names. Returns the enrollment certificate and, if issued, the TLS certificate (PEM).
    ///
    /// # Errors
    /// [`CaError`] from registration or enrollment; [`CaError::Storage`] if the folders cannot
    /// be written.
    pub fn issue_local(
        &mut self,
        registrar: &str,
        registration: Registration,
        home: &Path,
        tls_hosts: &[String],
    ) -> CaResult<LocalIdentity> {
        let name = registration.enrollment_id.clone();
        let secret = self.register(registrar, registration)?;
        let key_err = |e: medledger_msp::Error| CaError::Issue(e.to_string());
        let key = SigningKey::generate().map_err(key_err)?;
        let csr = build_csr(&key, &name, &[])?;
        let ecert = self.enroll(&name, &secret, &csr, Profile::Ecert, &[])?;
        let tls_ca = self.tls_root_cert().to_pem();
        let write_err = |e: medledger_msp::Error| CaError::Storage(e.to_string());
        medledger_msp::folder::write_msp(
            home,
            &medledger_msp::folder::MspMaterial {
                ca_cert_pem: &self.root_cert().to_pem(),
                tls_ca_cert_pem: &tls_ca,
                cert_pem: &ecert.cert_pem,
                key: &key,
            },
        )
        .map_err(write_err)?;
        let mut tls_cert_pem = None;
        if !tls_hosts.is_empty() {
            let tls_key = SigningKey::generate().map_err(key_err)?;
            let csr = build_csr(&tls_key, &name, tls_hosts)?;
            let tls = self.reenroll(&name, &csr, Profile::Tls, tls_hosts)?;
            medledger_msp::folder::write_tls(home, &tls_ca, &tls.cert_pem, &tls_key)
                .map_err(write_err)?;
            tls_cert_pem = Some(tls.cert_pem);
        }
        Ok(LocalIdentity {
            cert_pem: ecert.cert_pem,
            tls_cert_pem,
        })
    }

    /// Checks that `cert` is a current enrollment certificate of an active identity of this
    /// CA, and returns that identity's enrollment id: chains to the root, within validity,
    /// not revoked, identity not revoked.
    ///
    /// # Errors
    /// [`CaError::Unauthorized`] naming the reason, [`CaError::IdentityRevoked`].
    pub fn authenticate_certificate(&self, cert: &Certificate, now: i64) -> CaResult<String> {
        let refuse = |reason: String| CaError::Unauthorized {
            enrollment_id: cert.common_name().to_owned(),
            reason,
        };
        if cert.issuer_raw() != self.root.cert.subject_raw() {
            return Err(refuse("certificate not issued by this CA".into()));
        }
        cert.verify_signed_by(&self.root.cert)
            .map_err(|e| refuse(e.to_string()))?;
        if now < cert.not_before() || now > cert.not_after() {
            return Err(refuse("certificate outside its validity period".into()));
        }
        let record = self
            .store
            .state()
            .certificates
            .get(&cert.serial_hex())
            .ok_or_else(|| refuse("certificate unknown to this CA".into()))?;
        if record.revoked.is_some() {
            return Err(refuse(format!(
                "certificate serial {} is revoked",
                record.serial
            )));
        }
        let id = &record.enrollment_id;
        self.active_identity(id)?;
        Ok(id.clone())
    }

    fn active_identity(&self, enrollment_id: &str) -> CaResult<&RegisteredIdentity> {
        let identity = self
            .store
            .state()
            .identities
            .get(enrollment_id)
            .ok_or_else(|| CaError::UnknownIdentity {
                enrollment_id: enrollment_id.to_owned(),
            })?;
        if identity.revoked {
            return Err(CaError::IdentityRevoked {
                enrollment_id: enrollment_id.to_owned(),
            });
        }
        Ok(identity)
    }
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// An identity and all its certificates.
    Identity(String),
    /// One certificate, by serial (hex).
    Serial(String),
}

fn self_signed_ca(
    config: &CaConfig,
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CaResult<CaKey> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CaError::Issue(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, config.organization.as_str());
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = not_before - Duration::minutes(5);
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    let cert = params
        .self_signed(&key)
        .map_err(|e| CaError::Issue(e.to_string()))?;
    let cert = Certificate::from_der(cert.der()).map_err(|e| CaError::Issue(e.to_string()))?;
    Ok(CaKey { key, cert })
}

/// Registered attribute that lets an identity other than a peer or orderer obtain TLS
/// certificates (for example a client application that must present one), set by a
/// registrar: `medledger.tls=true`.
pub const TLS_ATTRIBUTE: &str = "medledger.tls";

/// Whether `identity` may be issued a TLS certificate: nodes (NodeOU `peer` or `orderer`),
/// or an identity registered with [`TLS_ATTRIBUTE`]`=true`. Peers trust TLS certificates of
/// their organizations' TLS CAs on node-to-node links, so handing them to patients and
/// clinicians would let those pose as nodes at the transport layer.
fn may_hold_tls_certificate(identity: &RegisteredIdentity) -> bool {
    matches!(identity.identity_type, NodeOu::Peer | NodeOu::Orderer)
        || identity.attribute(TLS_ATTRIBUTE) == Some("true")
}

/// A random positive 128-bit serial (RFC 5280 §4.1.2.2: positive, at most 20 octets).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // no leading zero byte, so the DER encoding keeps all 16 bytes
    SerialNumber::from_slice(&bytes)
}

fn generate_secret() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn hash_secret(secret: &str) -> CaResult<String> {
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(PBKDF2_ITERATIONS)
        .ok_or_else(|| CaError::Issue("zero PBKDF2 iterations".into()))?;
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        secret.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${PBKDF2_ITERATIONS}${}${}",
        hex::encode(salt),
        hex::encode(out)
    ))
}

/// Whether `secret` matches a stored secret hash (`pbkdf2-sha256$iterations$salt$hash`).
/// Deliberately slow (PBKDF2); call it without holding the CA.
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    verify_secret(secret, stored)
}

fn verify_secret(secret: &str, stored: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, iterations, salt, hash] = parts.as_slice() else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(hash)) = (
        iterations.parse::<u32>(),
        hex::decode(salt),
        hex::decode(hash),
    ) else {
        return false;
    };
    let Some(iterations) = std::num::NonZeroU32::new(iterations) else {
        return false;
    };
    *scheme == "pbkdf2-sha256"
        && aws_lc_rs::pbkdf2::verify(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            secret.as_bytes(),
            &hash,
        )
        .is_ok()
}

fn validate_enrollment_id(id: &str) -> CaResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(CaError::InvalidRequest(
            "enrollment id must be 1-64 characters of letters, digits, '.', '-', '_', '@'".into(),
        ))
    }
}

fn require_flag(identity: &RegisteredIdentity, flag: &str) -> CaResult<()> {
    if identity.attribute(flag) == Some("true") {
        Ok(())
    } else {
        Err(CaError::Unauthorized {
            enrollment_id: identity.enrollment_id.clone(),
            reason: format!("{flag} is not true"),
        })
    }
}

fn list_allows(list: Option<&str>, item: &str) -> bool {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| {
            p == "*" || p == item || p.strip_suffix('*').is_some_and(|pre| item.starts_with(pre))
        })
}

/// Fabric CA's registrar rules, simplified to what Medledger uses: the registrar may register
/// the types in its `hf.Registrar.Roles`, assign attributes named in its
/// `hf.Registrar.Attributes`, and delegate `hf.*` permissions only that it holds itself.
fn authorize_registration(caller: &RegisteredIdentity, reg: &Registration) -> CaResult<()> {
    let refuse = |reason: String| CaError::Unauthorized {
        enrollment_id: caller.enrollment_id.clone(),
        reason,
    };
    let roles = caller.attribute("hf.Registrar.Roles");
    if !list_allows(roles, reg.identity_type.as_str()) {
        return Err(refuse(format!(
            "may not register identities of type {}",
            reg.identity_type
        )));
    }
    let allowed_attrs = caller.attribute("hf.Registrar.Attributes");
    for attr in &reg.attributes {
        if !list_allows(allowed_attrs, &attr.name) {
            return Err(refuse(format!("may not assign attribute {}", attr.name)));
        }
        match attr.name.as_str() {
            "hf.Registrar.Roles" | "hf.Registrar.DelegateRoles" => {
                for role in attr
                    .value
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                {
                    if !list_allows(roles, role) {
                        return Err(refuse(format!("may not delegate role {role}")));
                    }
                }
            }
            "hf.Registrar.Attributes" => {
                for name in attr
                    .value
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                {
                    if !list_allows(allowed_attrs, name) {
                        return Err(refuse(format!("may not delegate attribute {name}")));
                    }
                }
            }
            name if name.starts_with("hf.")
                && attr.value == "true"
                && caller.attribute(name) != Some("true") =>
            {
                return Err(refuse(format!("may not delegate {name}")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses an RFC 5280 reason name (Fabric CA's spelling, case-insensitive).
fn parse_reason(reason: &str) -> CaResult<RevocationReason> {
    Ok(match reason.to_ascii_lowercase().as_str() {
        "" | "unspecified" => RevocationReason::Unspecified,
        "keycompromise" => RevocationReason::KeyCompromise,
        "cacompromise" => RevocationReason::CaCompromise,
        "affiliationchanged" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessationofoperation" => RevocationReason::CessationOfOperation,
        "certificatehold" => RevocationReason::CertificateHold,
        "removefromcrl" => RevocationReason::RemoveFromCrl,
        "privilegewithdrawn" => RevocationReason::PrivilegeWithdrawn,
        "aacompromise" => RevocationReason::AaCompromise,
        other => {
            return Err(CaError::InvalidRequest(format!(
                "unknown revocation reason {other:?}"
            )));
        }
    })
}

/// Builds a PEM certificate signing request for `key` (subject CN = `enrollment_id`, SANs =
/// `hosts`): what an enrollee sends so the CA never sees its private key.
///
/// # Errors
/// [`CaError::BadCsr`] if the request cannot be built.
pub fn build_csr(key: &SigningKey, enrollment_id: &str, hosts: &[String]) -> CaResult<String> {
    let rc_key = rcgen_key(key).map_err(|e| CaError::BadCsr(e.to_string()))?;
    let mut params =
        CertificateParams::new(hosts.to_vec()).map_err(|e| CaError::BadCsr(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, enrollment_id);
    params.distinguished_name = dn;
    params
        .serialize_request(&rc_key)
        .and_then(|csr| csr.pem())
        .map_err(|e| CaError::BadCsr(e.to_string()))
}

/// An rcgen key pair for `key`, to sign certificates and certificate signing requests.
///
/// # Errors
/// [`medledger_msp::Error::Key`] if the key cannot be exported.
pub fn rcgen_key(key: &SigningKey) -> medledger_msp::Result<KeyPair> {
    let der = key.to_pkcs8_der()?;
    KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls::pki_types::PrivatePkcs8KeyDer::from(der),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    )
    .map_err(|e| medledger_msp::Error::Key(format!("rcgen key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_round_trip() {
        let h = hash_secret("s3cret").unwrap();
        assert!(verify_secret("s3cret", &h));
        assert!(!verify_secret("s3cret!", &h));
        assert!(!verify_secret("s3cret", "garbage"));
    }

    #[test]
    fn registrar_lists() {
        assert!(list_allows(Some("*"), "ehr.role"));
        assert!(list_allows(Some("ehr.*, hf.Revoker"), "ehr.role"));
        assert!(list_allows(Some("client,peer"), "peer"));
        assert!(!list_allows(Some("client,peer"), "admin"));
        assert!(!list_allows(None, "client"));
    }

    /// Fabric CA's CRL lists revoked TLS certificates too (they used to be left out, so a
    /// revoked TLS client certificate was never published).
    #[test]
    fn the_crl_lists_revoked_tls_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateAuthority::init(
            &dir.path().join("ca"),
            CaConfig::new("ca-org1", "Org1MSP", "example.com"),
            "admin",
            "adminpw",
        )
        .unwrap();
        let home = dir.path().join("doctor1");
        let issued = ca
            .issue_local(
                "admin",
                Registration::new("doctor1", NodeOu::Client).with_attribute(TLS_ATTRIBUTE, "true"),
                &home,
                &["doctor1".to_owned()],
            )
            .unwrap();
        let tls = Certificate::from_pem(issued.tls_cert_pem.unwrap().as_bytes()).unwrap();
        let ecert = Certificate::from_pem(issued.cert_pem.as_bytes()).unwrap();
        ca.revoke(
            "admin",
            RevokeTarget::Identity("doctor1".into()),
            "keyCompromise",
        )
        .unwrap();
        let crl = pem::parse(ca.gen_crl("admin", None, None).unwrap()).unwrap();
        let lists = |serial: &[u8]| crl.contents().windows(serial.len()).any(|w| w == serial);
        assert!(lists(ecert.serial()), "the enrollment certificate");
        assert!(lists(tls.serial()), "the TLS certificate");
    }

    #[test]
    fn reasons() {
        assert_eq!(
            parse_reason("keyCompromise").unwrap(),
            RevocationReason::KeyCompromise
        );
        assert!(parse_reason("because").is_err());
    }
}
