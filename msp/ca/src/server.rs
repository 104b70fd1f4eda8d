//! The `medledger.ca.CertificateAuthority` gRPC service over TLS (`medledger ca serve`).
//!
//! Enroll authenticates with enrollment id + secret. Register, Reenroll, Revoke and GenCrl
//! take a `SignedCaRequest`: the caller signs the serialized inner request with the key of a
//! current enrollment certificate of this CA (Fabric CA's token auth, with a plain signature);
//! the inner request's header binds the signature to this CA, one operation, and a time
//! within [`MAX_CLOCK_SKEW`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use medledger_proto::medledger::ca::{
    self as pb, certificate_authority_server::CertificateAuthorityServer,
};
use prost::Message;
use tokio::net::TcpListener;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::{CaError, CertificateAuthority, Profile, Registration, RevokeTarget, store::Attribute};
use medledger_msp::identity::deserialize_identity;
use medledger_msp::msp::unix_seconds;
use medledger_msp::ou::NodeOu;
use medledger_msp::{crypto, fsutil};

/// How far a signed request's timestamp may be from the CA's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

impl From<CaError> for Status {
    fn from(e: CaError) -> Self {
        let msg = e.to_string();
        match e {
            CaError::AuthenticationFailed { .. } => Status::unauthenticated(msg),
            CaError::AlreadyRegistered { .. } => Status::already_exists(msg),
            CaError::UnknownIdentity { .. } | CaError::UnknownCertificate { .. } => {
                Status::not_found(msg)
            }
            CaError::MaxEnrollmentsReached { .. } => Status::failed_precondition(msg),
            CaError::IdentityRevoked { .. } | CaError::Unauthorized { .. } => {
                Status::permission_denied(msg)
            }
            CaError::BadCsr(_) | CaError::InvalidRequest(_) => Status::invalid_argument(msg),
            CaError::Storage(_) | CaError::Issue(_) => {
                tracing::error!(target: "msp::ca", error = %msg, "CA internal error");
                Status::internal("internal CA error")
            }
        }
    }
}

/// The gRPC service over one [`CertificateAuthority`]. Operations run one at a time on the
/// blocking pool (they fsync); an enrollment's secret is hashed outside that turn.
#[derive(Clone)]
pub struct CaService {
    ca: Arc<Mutex<CertificateAuthority>>,
    enroll_slots: Arc<tokio::sync::Semaphore>,
}

/// Enrollments (unauthenticated, PBKDF2-checked) in progress at once; more are refused with
/// `RESOURCE_EXHAUSTED`.
pub const MAX_CONCURRENT_ENROLLMENTS: usize = 4;

impl CaService {
    /// Wraps a CA.
    pub fn new(ca: CertificateAuthority) -> Self {
        CaService {
            ca: Arc::new(Mutex::new(ca)),
            enroll_slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_ENROLLMENTS)),
        }
    }

    async fn with_ca<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut CertificateAuthority) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let ca = self.ca.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = ca
                .lock()
                .map_err(|_| Status::internal("CA state lock poisoned"))?;
            op(&mut guard)
        })
        .await
        .map_err(|_| Status::internal("CA task failed"))?
    }

    /// Checks a signed request and returns the caller's enrollment id and the inner request.
    fn authenticate<M: Message + Default>(
        ca: &CertificateAuthority,
        signed: &pb::SignedCaRequest,
        operation: &str,
        header_of: impl Fn(&M) -> Option<&pb::RequestHeader>,
    ) -> Result<(String, M), Status> {
        let (msp_id, cert) = deserialize_identity(&signed.creator)
            .map_err(|e| Status::invalid_argument(format!("creator: {e}")))?;
        if msp_id != ca.config().msp_id {
            return Err(Status::unauthenticated(format!(
                "creator belongs to MSP {msp_id:?}, not to this CA's MSP"
            )));
        }
        let now = SystemTime::now();
        let caller = ca.authenticate_certificate(&cert, unix_seconds(now))?;
        crypto::verify(cert.public_key(), &signed.request, &signed.signature)
            .map_err(|e| Status::unauthenticated(format!("request signature: {e}")))?;
        let inner = M::decode(signed.request.as_slice())
            .map_err(|e| Status::invalid_argument(format!("request: {e}")))?;
        let header = header_of(&inner).ok_or_else(|| Status::invalid_argument("missing header"))?;
        if header.operation != operation {
            return Err(Status::invalid_argument(format!(
                "request signed for operation {:?}, not {operation:?}",
                header.operation
            )));
        }
        if header.ca_name != ca.config().name {
            return Err(Status::invalid_argument("request is for another CA"));
        }
        let ts = header
            .timestamp
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("missing timestamp"))?;
        let skew = (ts.seconds - unix_seconds(now)).unsigned_abs();
        if skew > MAX_CLOCK_SKEW.as_secs() {
            return Err(Status::invalid_argument(format!(
                "request timestamp is {skew} s away from the CA's clock (limit {} s)",
                MAX_CLOCK_SKEW.as_secs()
            )));
        }
        Ok((caller, inner))
    }
}

fn profile(name: &str) -> Result<Profile, Status> {
    match name {
        "" => Ok(Profile::Ecert),
        "tls" => Ok(Profile::Tls),
        other => Err(Status::invalid_argument(format!(
            "unknown profile {other:?} (expected \"\" or \"tls\")"
        ))),
    }
}

fn check_ca_name(ca: &CertificateAuthority, name: &str) -> Result<(), Status> {
    if name.is_empty() || name == ca.config().name {
        Ok(())
    } else {
        Err(Status::not_found(format!("no CA named {name:?} here")))
    }
}

fn enrollment_response(e: super::Enrollment) -> pb::EnrollResponse {
    pb::EnrollResponse {
        cert_pem: e.cert_pem.into_bytes(),
        ca_cert_pem: e.ca_cert_pem.into_bytes(),
        chain_pem: Vec::new(),
    }
}

fn csr_text(bytes: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(bytes).map_err(|_| Status::invalid_argument("csr_pem is not UTF-8"))
}

#[tonic::async_trait]
impl pb::certificate_authority_server::CertificateAuthority for CaService {
    async fn get_ca_info(
        &self,
        request: Request<pb::CaInfoRequest>,
    ) -> Result<Response<pb::CaInfoResponse>, Status> {
        let name = request.into_inner().ca_name;
        self.with_ca(move |ca| {
            check_ca_name(ca, &name)?;
            Ok(Response::new(pb::CaInfoResponse {
                ca_name: ca.config().name.clone(),
                root_cert_pem: ca.root_cert().to_pem().into_bytes(),
                tls_root_cert_pem: ca.tls_root_cert().to_pem().into_bytes(),
                msp_id: ca.config().msp_id.clone(),
                intermediate_certs_pem: Vec::new(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            }))
        })
        .await
    }

    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let req = request.into_inner();
        // Unauthenticated and slow to check (PBKDF2): at most a few at once, refused beyond,
        // and the secret is checked without holding the CA.
        let slot = self.enroll_slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many enrollments in progress; retry later")
        })?;
        let (req, stored) = self
            .with_ca(move |ca| {
                check_ca_name(ca, &req.ca_name)?;
                let stored = ca.secret_hash(&req.enrollment_id);
                Ok((req, stored))
            })
            .await?;
        let failed = Status::from(CaError::AuthenticationFailed {
            enrollment_id: req.enrollment_id.clone(),
        });
        let Some(stored) = stored else {
            return Err(failed);
        };
        let (secret, hash) = (req.secret.clone(), stored.clone());
        // The slot goes with the hashing itself: a client that cancels its request does not
        // free it while the hash still runs.
        let matches = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            super::secret_matches(&secret, &hash)
        })
        .await
        .map_err(|_| Status::internal("CA task failed"))?;
        if !matches {
            return Err(failed);
        }
        self.with_ca(move |ca| {
            let enrollment = ca.enroll_authenticated(
                &req.enrollment_id,
                &stored,
                csr_text(&req.csr_pem)?,
                profile(&req.profile)?,
                &req.hosts,
            )?;
            Ok(Response::new(enrollment_response(enrollment)))
        })
        .await
    }

    async fn reenroll(
        &self,
        request: Request<pb::SignedCaRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let signed = request.into_inner();
        self.with_ca(move |ca| {
            let (caller, req) =
                Self::authenticate::<pb::ReenrollRequest>(ca, &signed, "reenroll", |r| {
                    r.header.as_ref()
                })?;
            let enrollment = ca.reenroll(
                &caller,
                csr_text(&req.csr_pem)?,
                profile(&req.profile)?,
                &req.hosts,
            )?;
            Ok(Response::new(enrollment_response(enrollment)))
        })
        .await
    }

    async fn register(
        &self,
        request: Request<pb::SignedCaRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let signed = request.into_inner();
        self.with_ca(move |ca| {
            let (caller, req) =
                Self::authenticate::<pb::RegisterRequest>(ca, &signed, "register", |r| {
                    r.header.as_ref()
                })?;
            let identity_type: NodeOu =
                req.identity_type
                    .parse()
                    .map_err(|e: medledger_msp::ou::UnknownNodeOu| {
                        Status::invalid_argument(e.to_string())
                    })?;
            let registration = Registration {
                enrollment_id: req.enrollment_id,
                identity_type,
                secret: req.secret,
                max_enrollments: req.max_enrollments,
                attributes: req
                    .attributes
                    .into_iter()
                    .map(|a| Attribute {
                        name: a.name,
                        value: a.value,
                        ecert: a.ecert,
                    })
                    .collect(),
                affiliation: req.affiliation,
            };
            let secret = ca.register(&caller, registration)?;
            Ok(Response::new(pb::RegisterResponse { secret }))
        })
        .await
    }

    async fn revoke(
        &self,
        request: Request<pb::SignedCaRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let signed = request.into_inner();
        self.with_ca(move |ca| {
            let (caller, req) =
                Self::authenticate::<pb::RevokeRequest>(ca, &signed, "revoke", |r| {
                    r.header.as_ref()
                })?;
            let target = match (req.enrollment_id.is_empty(), req.serial.is_empty()) {
                (false, true) => RevokeTarget::Identity(req.enrollment_id),
                (true, false) => RevokeTarget::Serial(req.serial),
                _ => {
                    return Err(Status::invalid_argument(
                        "give exactly one of enrollment_id and serial",
                    ));
                }
            };
            let revoked_serials = ca.revoke(&caller, target, &req.reason)?;
            let crl_pem = if req.gen_crl {
                ca.gen_crl(&caller, None, None)?.into_bytes()
            } else {
                Vec::new()
            };
            Ok(Response::new(pb::RevokeResponse {
                revoked_serials,
                crl_pem,
            }))
        })
        .await
    }

    async fn gen_crl(
        &self,
        request: Request<pb::SignedCaRequest>,
    ) -> Result<Response<pb::GenCrlResponse>, Status> {
        let signed = request.into_inner();
        self.with_ca(move |ca| {
            let (caller, req) =
                Self::authenticate::<pb::GenCrlRequest>(ca, &signed, "gencrl", |r| {
                    r.header.as_ref()
                })?;
            let crl = ca.gen_crl(
                &caller,
                req.revoked_after.map(|t| t.seconds),
                req.revoked_before.map(|t| t.seconds),
            )?;
            Ok(Response::new(pb::GenCrlResponse {
                crl_pem: crl.into_bytes(),
            }))
        })
        .await
    }
}

/// Serves `ca` on `listener` over TLS (the CA's own server certificate from its TLS CA, see
/// [`CertificateAuthority::server_tls_dir`]) until `shutdown` completes.
///
/// # Errors
/// [`CaError::Storage`] if the TLS files cannot be read; [`CaError::Issue`] for a TLS or
/// transport failure.
pub async fn serve(
    ca: CertificateAuthority,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CaError> {
    let tls_dir = ca.server_tls_dir();
    let read =
        |name: &str| fsutil::read(&tls_dir.join(name)).map_err(|e| CaError::Storage(e.to_string()));
    let identity = Identity::from_pem(read("server.crt")?, read("server.key")?);
    let addr = listener.local_addr().ok();
    tracing::info!(target: "msp::ca", ca = %ca.config().name, ?addr, "CA service listening (TLS)");
    Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity))
        .map_err(|e| CaError::Issue(format!("TLS config: {e}")))?
        .add_service(CertificateAuthorityServer::new(CaService::new(ca)))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
        .map_err(|e| CaError::Issue(format!("CA service: {e}")))
}
