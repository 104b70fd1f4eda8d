//! Client of the `medledger.ca.CertificateAuthority` service (`medledger ca enroll|register|
//! revoke|gencrl`): builds CSRs locally so private keys never leave the enrollee, and signs
//! requests that need an identity.

use medledger_proto::medledger::ca::{
    self as pb, certificate_authority_client::CertificateAuthorityClient,
};
use prost::Message;
use tonic::transport::{Certificate as TlsCertificate, Channel, ClientTlsConfig};

use super::{CaError, Enrollment, Profile, Registration, RevokeTarget, build_csr};
use medledger_msp::crypto::SigningKey;
use medledger_msp::identity::SigningIdentity;

/// Errors of CA client calls.
#[derive(Debug, thiserror::Error)]
pub enum CaClientError {
    /// The URL is not `https://host:port`.
    #[error("invalid CA URL {0:?}: expected https://HOST:PORT")]
    BadUrl(String),
    /// Could not connect (TLS or network).
    #[error("cannot connect to CA at {url}: {message}")]
    Connect {
        /// URL dialled.
        url: String,
        /// Cause.
        message: String,
    },
    /// The CA refused the request.
    #[error("CA refused the request ({code:?}): {message}")]
    Refused {
        /// gRPC status code.
        code: tonic::Code,
        /// CA's message.
        message: String,
    },
    /// A local step failed (key, CSR, signature).
    #[error(transparent)]
    Local(#[from] medledger_msp::Error),
    /// The certificate signing request could not be built.
    #[error(transparent)]
    Ca(#[from] CaError),
}

impl From<tonic::Status> for CaClientError {
    fn from(s: tonic::Status) -> Self {
        CaClientError::Refused {
            code: s.code(),
            message: s.message().to_owned(),
        }
    }
}

/// A connection to one CA.
#[derive(Debug, Clone)]
pub struct CaClient {
    inner: CertificateAuthorityClient<Channel>,
    ca_name: String,
}

impl CaClient {
    /// Connects to `url` (`https://host:port`), trusting the TLS root `tls_ca_pem`, for the CA
    /// named `ca_name` (empty: the server's only CA, whose name is then fetched).
    ///
    /// # Errors
    /// [`CaClientError::BadUrl`], [`CaClientError::Connect`], [`CaClientError::Refused`].
    pub async fn connect(
        url: &str,
        tls_ca_pem: &[u8],
        ca_name: &str,
    ) -> Result<Self, CaClientError> {
        let uri: tonic::transport::Uri =
            url.parse().map_err(|_| CaClientError::BadUrl(url.into()))?;
        if uri.scheme_str() != Some("https") {
            return Err(CaClientError::BadUrl(url.into()));
        }
        let host = uri
            .host()
            .ok_or_else(|| CaClientError::BadUrl(url.into()))?
            .to_owned();
        let connect_err = |message: String| CaClientError::Connect {
            url: url.into(),
            message,
        };
        let channel = Channel::builder(uri)
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(TlsCertificate::from_pem(tls_ca_pem))
                    .domain_name(host),
            )
            .map_err(|e| connect_err(e.to_string()))?
            .connect()
            .await
            .map_err(|e| connect_err(format!("{e}: {:?}", std::error::Error::source(&e))))?;
        let mut client = CaClient {
            inner: CertificateAuthorityClient::new(channel),
            ca_name: ca_name.to_owned(),
        };
        if client.ca_name.is_empty() {
            // Signed requests name the CA they are for: learn the server's default CA name.
            client.ca_name = client.info().await?.ca_name;
        }
        Ok(client)
    }

    /// CA information: name, MSP id, root and TLS root certificates.
    ///
    /// # Errors
    /// [`CaClientError::Refused`].
    pub async fn info(&mut self) -> Result<pb::CaInfoResponse, CaClientError> {
        let req = pb::CaInfoRequest {
            ca_name: self.ca_name.clone(),
        };
        Ok(self.inner.get_ca_info(req).await?.into_inner())
    }

    /// Enrolls with id + secret: builds a CSR for `key` and returns the issued certificate.
    ///
    /// # Errors
    /// [`CaClientError::Refused`] (authentication failure, max enrollments, revoked...).
    pub async fn enroll(
        &mut self,
        enrollment_id: &str,
        secret: &str,
        key: &SigningKey,
        profile: Profile,
        hosts: &[String],
    ) -> Result<Enrollment, CaClientError> {
        let csr = build_csr(key, enrollment_id, hosts)?;
        let req = pb::EnrollRequest {
            ca_name: self.ca_name.clone(),
            enrollment_id: enrollment_id.to_owned(),
            secret: secret.to_owned(),
            csr_pem: csr.into_bytes(),
            profile: profile_name(profile).into(),
            hosts: hosts.to_vec(),
        };
        Ok(enrollment(self.inner.enroll(req).await?.into_inner()))
    }

    /// Reenrolls `identity` with a new key.
    ///
    /// # Errors
    /// [`CaClientError::Refused`].
    pub async fn reenroll(
        &mut self,
        identity: &SigningIdentity,
        new_key: &SigningKey,
        profile: Profile,
        hosts: &[String],
    ) -> Result<Enrollment, CaClientError> {
        let csr = build_csr(new_key, identity.certificate().common_name(), hosts)?;
        let inner = pb::ReenrollRequest {
            header: Some(self.header("reenroll")),
            csr_pem: csr.into_bytes(),
            profile: profile_name(profile).into(),
            hosts: hosts.to_vec(),
        };
        let signed = sign(identity, &inner)?;
        Ok(enrollment(self.inner.reenroll(signed).await?.into_inner()))
    }

    /// Registers an identity as `registrar`; returns its enrollment secret.
    ///
    /// # Errors
    /// [`CaClientError::Refused`].
    pub async fn register(
        &mut self,
        registrar: &SigningIdentity,
        registration: &Registration,
    ) -> Result<String, CaClientError> {
        let inner = pb::RegisterRequest {
            header: Some(self.header("register")),
            enrollment_id: registration.enrollment_id.clone(),
            identity_type: registration.identity_type.to_string(),
            secret: registration.secret.clone(),
            max_enrollments: registration.max_enrollments,
            attributes: registration
                .attributes
                .iter()
                .map(|a| pb::Attribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                    ecert: a.ecert,
                })
                .collect(),
            affiliation: registration.affiliation.clone(),
        };
        let signed = sign(registrar, &inner)?;
        Ok(self.inner.register(signed).await?.into_inner().secret)
    }

    /// Revokes an identity or one certificate as `revoker`; returns the serials revoked and,
    /// with `gen_crl`, the new CRL (PEM).
    ///
    /// # Errors
    /// [`CaClientError::Refused`].
    pub async fn revoke(
        &mut self,
        revoker: &SigningIdentity,
        target: &RevokeTarget,
        reason: &str,
        gen_crl: bool,
    ) -> Result<pb::RevokeResponse, CaClientError> {
        let (enrollment_id, serial) = match target {
            RevokeTarget::Identity(id) => (id.clone(), String::new()),
            RevokeTarget::Serial(s) => (String::new(), s.clone()),
        };
        let inner = pb::RevokeRequest {
            header: Some(self.header("revoke")),
            enrollment_id,
            serial,
            aki: String::new(),
            reason: reason.to_owned(),
            gen_crl,
        };
        let signed = sign(revoker, &inner)?;
        Ok(self.inner.revoke(signed).await?.into_inner())
    }

    /// Generates a CRL as `caller`; PEM.
    ///
    /// # Errors
    /// [`CaClientError::Refused`].
    pub async fn gen_crl(&mut self, caller: &SigningIdentity) -> Result<Vec<u8>, CaClientError> {
        let inner = pb::GenCrlRequest {
            header: Some(self.header("gencrl")),
            revoked_after: None,
            revoked_before: None,
        };
        let signed = sign(caller, &inner)?;
        Ok(self.inner.gen_crl(signed).await?.into_inner().crl_pem)
    }

    fn header(&self, operation: &str) -> pb::RequestHeader {
        pb::RequestHeader {
            ca_name: self.ca_name.clone(),
            operation: operation.to_owned(),
            timestamp: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            nonce: rand::random::<[u8; 24]>().to_vec(),
        }
    }
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Ecert => "",
        Profile::Tls => "tls",
    }
}

fn enrollment(r: pb::EnrollResponse) -> Enrollment {
    Enrollment {
        cert_pem: String::from_utf8_lossy(&r.cert_pem).into_owned(),
        ca_cert_pem: String::from_utf8_lossy(&r.ca_cert_pem).into_owned(),
    }
}

fn sign(
    identity: &SigningIdentity,
    inner: &impl Message,
) -> Result<pb::SignedCaRequest, CaClientError> {
    let request = inner.encode_to_vec();
    let signature = identity.sign(&request)?;
    Ok(pb::SignedCaRequest {
        request,
        creator: identity.serialized().to_vec(),
        signature,
    })
}
