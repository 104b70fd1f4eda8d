//! The CA's durable state: registered identities, issued certificates, revocations.
//!
//! One JSON document rewritten atomically ([`medledger_msp::fsutil::write_atomic`]) on every change,
//! before the change is acknowledged: a crash loses no issued identity. Every mutation is
//! applied to a copy first, so a failed write leaves memory and disk unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CaError;
use medledger_msp::fsutil;
use medledger_msp::ou::NodeOu;

/// Current layout version of `state.json`.
const STATE_VERSION: u32 = 1;

/// One attribute registered for an identity (Fabric CA `api.Attribute`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// Name, e.g. `ehr.role` or `hf.Registrar.Roles`.
    pub name: String,
    /// Value.
    pub value: String,
    /// Whether enrollment certificates carry it by default.
    pub ecert: bool,
}

/// An identity registered with the CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredIdentity {
    /// Enrollment id (certificate CN).
    pub enrollment_id: String,
    /// Identity type, which becomes the certificate's NodeOU.
    pub identity_type: NodeOu,
    /// Affiliation, dot-separated (e.g. `org1.department1`), may be empty.
    pub affiliation: String,
    /// Registered attributes.
    pub attributes: Vec<Attribute>,
    /// Enrollments allowed; -1 unlimited.
    pub max_enrollments: i32,
    /// Enrollments done so far.
    pub enrollments: u32,
    /// PBKDF2 hash of the enrollment secret (`pbkdf2-sha256$iterations$salt$hash`, hex).
    pub secret_hash: String,
    /// Set when the identity was revoked: it can no longer enroll or authenticate.
    pub revoked: bool,
}

impl RegisteredIdentity {
    /// Value of one registered attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }
}

/// Which CA issued a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Enrollment certificate from the root (signing) CA.
    Ecert,
    /// TLS certificate from the TLS CA.
    Tls,
}

/// A revocation record (RFC 5280 §5.3.1 reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When the CA processed it, Unix seconds.
    pub at: i64,
    /// RFC 5280 reason name (`unspecified`, `keyCompromise`, ...).
    pub reason: String,
}

/// A certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Owner.
    pub enrollment_id: String,
    /// Issuing CA.
    pub profile: Profile,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// Revocation, if revoked.
    pub revoked: Option<Revocation>,
}

/// Everything the CA persists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaState {
    /// Layout version.
    pub version: u32,
    /// Registered identities by enrollment id.
    pub identities: BTreeMap<String, RegisteredIdentity>,
    /// Issued certificates by serial (hex).
    pub certificates: BTreeMap<String, IssuedCertificate>,
    /// Number of the last CRL generated (RFC 5280 CRL number).
    pub crl_number: u64,
}

/// The state file and its in-memory copy.
#[derive(Debug)]
pub struct CaStore {
    path: PathBuf,
    state: CaState,
}

impl CaStore {
    /// Creates a new, empty store at `path`.
    ///
    /// # Errors
    /// [`CaError::Storage`] if the file exists or cannot be written.
    pub fn create(path: &Path) -> Result<Self, CaError> {
        if path.exists() {
            return Err(CaError::Storage(format!(
                "{} already exists",
                path.display()
            )));
        }
        let store = CaStore {
            path: path.to_owned(),
            state: CaState {
                version: STATE_VERSION,
                ..CaState::default()
            },
        };
        store.persist(&store.state)?;
        Ok(store)
    }

    /// Opens the store at `path`.
    ///
    /// # Errors
    /// [`CaError::Storage`] if it cannot be read, does not parse, or has an unknown version.
    pub fn open(path: &Path) -> Result<Self, CaError> {
        let bytes = fsutil::read(path).map_err(|e| CaError::Storage(e.to_string()))?;
        let state: CaState = serde_json::from_slice(&bytes)
            .map_err(|e| CaError::Storage(format!("{}: {e}", path.display())))?;
        if state.version != STATE_VERSION {
            return Err(CaError::Storage(format!(
                "{}: unsupported state version {}",
                path.display(),
                state.version
            )));
        }
        Ok(CaStore {
            path: path.to_owned(),
            state,
        })
    }

    /// Read access.
    pub fn state(&self) -> &CaState {
        &self.state
    }

    /// Applies `change` to a copy of the state, writes it durably, then makes it current.
    /// If `change` fails or the write fails, nothing changes.
    ///
    /// # Errors
    /// `change`'s error, or [`CaError::Storage`].
    pub fn update<T>(
        &mut self,
        change: impl FnOnce(&mut CaState) -> Result<T, CaError>,
    ) -> Result<T, CaError> {
        let mut next = self.state.clone();
        let out = change(&mut next)?;
        self.persist(&next)?;
        self.state = next;
        Ok(out)
    }

    fn persist(&self, state: &CaState) -> Result<(), CaError> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| CaError::Storage(format!("encode state: {e}")))?;
        fsutil::write_atomic(&self.path, &bytes, true).map_err(|e| CaError::Storage(e.to_string()))
    }
}
