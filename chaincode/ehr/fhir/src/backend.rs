//! Who a request acts as, and the EHR client it acts through.
//!
//! A verified [`Caller`] (from mutual TLS or a bearer token, [`crate::auth`]) names an
//! enrolled identity of the server's organization; the server signs its proposals with that
//! identity's *delegate* enrollment from the [`Wallet`] (ADR 0039), so the chaincode decides
//! per person, as for any other client.

use std::path::{Path, PathBuf};

use ehr_chaincode::model::Purpose;
use ehr_client::EhrClient;
use medledger_gateway::client::Gateway;
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::identity::SigningIdentity;

use crate::outcome::{FhirError, Result};

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Mutual TLS with the identity's TLS certificate.
    MutualTls,
    /// A bearer token from the token endpoint (SMART Backend Services).
    BearerToken,
}

/// A verified caller: an enrolled identity of the server's organization. Put in a request's
/// extensions by the accept loop or the bearer check; handlers never parse certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The organization's MSP id.
    pub msp_id: String,
    /// The enrollment id (the certificate's CN).
    pub enrollment_id: String,
    /// How it was verified.
    pub method: AuthMethod,
    /// Purpose of use the credential carries (a token's `purpose_of_use`), if any; else the
    /// configuration's `default_purpose`.
    pub purpose: Option<Purpose>,
}

/// Whether `id` may name a wallet folder: 1-64 characters of `[A-Za-z0-9._@-]`, not starting
/// with a dot (so never `.`/`..` or a path).
pub fn valid_enrollment_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// The delegate enrollments, `<dir>/<enrollment id>/{cert.pem,key.pem}` (ADR 0039).
#[derive(Debug, Clone)]
pub struct Wallet {
    dir: PathBuf,
    msp_id: String,
}

impl Wallet {
    /// The wallet in `dir` for identities of `msp_id`.
    pub fn new(dir: impl Into<PathBuf>, msp_id: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            msp_id: msp_id.into(),
        }
    }

    /// The folder of `enrollment_id`'s delegate.
    pub fn folder(&self, enrollment_id: &str) -> PathBuf {
        self.dir.join(enrollment_id)
    }

    /// Writes a delegate (`cert.pem`, `key.pem` 0600 in a 0700 folder): for `medledger fhir
    /// delegate` and tests.
    ///
    /// # Errors
    /// [`FhirError::Value`] for an enrollment id that cannot name a folder;
    /// [`FhirError::Internal`] if the files cannot be written.
    pub fn store(&self, identity: &SigningIdentity) -> Result<PathBuf> {
        let id = identity.certificate().common_name();
        if !valid_enrollment_id(id) {
            return Err(FhirError::Value(
                "enrollment id cannot name a wallet folder",
            ));
        }
        let dir = self.folder(id);
        let key = identity
            .key()
            .to_pkcs8_pem()
            .map_err(|_| FhirError::Internal("the delegate key does not encode"))?;
        let io = |_| FhirError::Internal("the wallet cannot be written");
        std::fs::create_dir_all(&dir).map_err(io)?;
        write_private(&dir, "cert.pem", identity.certificate().to_pem().as_bytes()).map_err(io)?;
        write_private(&dir, "key.pem", key.as_bytes()).map_err(io)?;
        Ok(dir)
    }

    /// The delegate of `enrollment_id`: its certificate must name that enrollment id.
    ///
    /// # Errors
    /// [`FhirError::Forbidden`] if the wallet holds no (readable, matching) delegate for it.
    pub fn load(&self, enrollment_id: &str) -> Result<SigningIdentity> {
        const NONE: FhirError =
            FhirError::Forbidden("this identity has no delegate enrollment on the server");
        if !valid_enrollment_id(enrollment_id) {
            return Err(NONE);
        }
        let dir = self.folder(enrollment_id);
        let cert = std::fs::read(dir.join("cert.pem")).map_err(|_| NONE)?;
        let key = std::fs::read(dir.join("key.pem")).map_err(|_| NONE)?;
        let cert = Certificate::from_pem(&cert).map_err(|_| NONE)?;
        if cert.common_name() != enrollment_id {
            return Err(NONE);
        }
        let key = SigningKey::from_pem(&key).map_err(|_| NONE)?;
        SigningIdentity::new(self.msp_id.clone(), cert, key).map_err(|_| NONE)
    }
}

#[cfg(unix)]
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join(name))?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(dir.join(name), bytes)
}

/// Gives the EHR client a [`Caller`] acts through.
pub trait Backend: Send + Sync + 'static {
    /// An EHR client signing as `caller`'s delegate enrollment.
    ///
    /// # Errors
    /// [`FhirError::Forbidden`] if the server holds no delegate for the caller.
    fn client(&self, caller: &Caller) -> Result<EhrClient>;
}

/// The production backend, and the tests' over the harness: a gRPC channel to the
/// organization's gateway (`Gateway::connect` per request is cheap) and the wallet.
#[derive(Debug, Clone)]
pub struct GatewayBackend {
    channel: tonic::transport::Channel,
    wallet: Wallet,
    channel_name: String,
    chaincode: String,
}

impl GatewayBackend {
    /// A backend over `channel` (the gateway's gRPC channel: a tonic endpoint in production,
    /// `Served::channel(org)` on the harness), signing with `wallet`'s delegates, calling
    /// chaincode `chaincode` on channel `channel_name`.
    pub fn new(
        channel: tonic::transport::Channel,
        wallet: Wallet,
        channel_name: impl Into<String>,
        chaincode: impl Into<String>,
    ) -> Self {
        Self {
            channel,
            wallet,
            channel_name: channel_name.into(),
            chaincode: chaincode.into(),
        }
    }
}

impl Backend for GatewayBackend {
    fn client(&self, caller: &Caller) -> Result<EhrClient> {
        let identity = self.wallet.load(&caller.enrollment_id)?;
        let gateway = Gateway::connect(identity, self.channel.clone());
        Ok(EhrClient::new(
            gateway
                .network(&self.channel_name)
                .contract(&self.chaincode),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_ids_that_name_folders() {
        for ok in ["org1-admin", "doctor.1", "a@b", "A_b-9"] {
            assert!(valid_enrollment_id(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            long.as_str(),
        ] {
            assert!(!valid_enrollment_id(bad), "{bad}");
        }
    }
}
