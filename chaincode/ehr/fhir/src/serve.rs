//! The HTTPS listener: the crate's own accept loop (tokio-rustls + hyper-util), because
//! `axum::serve` cannot hand a connection's client certificate to the router (ADR 0039).
//!
//! TLS asks for a client certificate but does not require one (`/metadata`, the SMART
//! configuration and the token endpoint answer without); a certificate that chains to the
//! organization's TLS root (rustls `WebPkiClientVerifier`, RFC 5280 path validation, EKU
//! `clientAuth`) names the caller by its CN, and the loop puts that [`Caller`] in every
//! request's extensions of the connection. Handlers never see certificates.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use medledger_msp::cert::Certificate;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::AppState;
use crate::auth::tokens::TokenService;
use crate::backend::{AuthMethod, Caller, GatewayBackend, Wallet, valid_enrollment_id};
use crate::config::FhirConfig;

/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TLS material does not load.
    #[error("TLS: {0}")]
    Tls(String),
    /// The MSP folder does not load.
    #[error("MSP: {0}")]
    Msp(String),
    /// The gateway endpoint is unusable.
    #[error("gateway: {0}")]
    Gateway(String),
    /// The listener cannot be bound or fails.
    #[error("listener {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The PEM blocks of `pem_text` with tag `tag` (e.g. `CERTIFICATE`), as DER.
fn pem_blocks(pem_text: &[u8], tags: &[&str]) -> Result<Vec<(String, Vec<u8>)>, ServeError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| ServeError::Tls(e.to_string()))?;
    Ok(blocks
        .into_iter()
        .filter(|b| tags.contains(&b.tag()))
        .map(|b| (b.tag().to_owned(), b.into_contents()))
        .collect())
}

/// The server's rustls configuration: its certificate chain and key (PEM: `CERTIFICATE`
/// blocks; a PKCS#8 `PRIVATE KEY` or SEC 1 `EC PRIVATE KEY`), client certificates optional
/// and verified against `client_ca_pem` (the organization's TLS root(s)), ALPN h2 and
/// http/1.1, aws-lc-rs.
///
/// # Errors
/// [`ServeError::Tls`] if a PEM is malformed, missing or refused by rustls.
pub fn tls_server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let tls = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
    let chain: Vec<CertificateDer<'static>> = pem_blocks(cert_chain_pem, &["CERTIFICATE"])?
        .into_iter()
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if chain.is_empty() {
        return Err(ServeError::Tls("no certificate in tls_cert".into()));
    }
    let key = match pem_blocks(key_pem, &["PRIVATE KEY", "EC PRIVATE KEY"])?
        .into_iter()
        .next()
    {
        Some((tag, der)) if tag == "PRIVATE KEY" => {
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))
        }
        Some((_, der)) => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        None => return Err(ServeError::Tls("no private key in tls_key".into())),
    };
    let mut roots = rustls::RootCertStore::empty();
    for (_, der) in pem_blocks(client_ca_pem, &["CERTIFICATE"])? {
        roots.add(CertificateDer::from(der)).map_err(|e| tls(&e))?;
    }
    if roots.is_empty() {
        return Err(ServeError::Tls("no certificate in client_tls_ca".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The caller a verified client certificate names: its CN is the enrollment id.
fn mtls_caller(state: &AppState, der: &[u8]) -> Option<Caller> {
    let cert = Certificate::from_der(der).ok()?;
    let id = cert.common_name();
    valid_enrollment_id(id).then(|| Caller {
        msp_id: state.config.msp_id.clone(),
        enrollment_id: id.to_owned(),
        method: AuthMethod::MutualTls,
        purpose: None,
    })
}

/// Serves the API on `listener` with `tls` until `shutdown` completes (connections then in
/// flight are dropped). Connection errors are logged (no client data) and do not stop the
/// loop.
///
/// # Errors
/// [`ServeError::Listen`] if accepting fails in a way that is not per connection.
pub async fn serve_on(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let acceptor = TlsAcceptor::from(tls);
    let router = crate::router(state.clone());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "fhir::serve", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (acceptor, router, state) = (acceptor.clone(), router.clone(), state.clone());
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(target: "fhir::serve", error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let caller = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|der| mtls_caller(&state, der));
            let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                // Only the TLS layer may say who calls: nothing from the request does.
                req.extensions_mut().remove::<Caller>();
                if let Some(c) = &caller {
                    req.extensions_mut().insert(c.clone());
                }
                router.clone().oneshot(req.map(Body::new))
            });
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await
            {
                tracing::debug!(target: "fhir::serve", error = %e, "connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
    Ok(())
}

/// Runs the FHIR server of `config` until `shutdown` completes: loads the TLS material, the
/// organization's MSP and the wallet, connects (lazily) to the gateway, binds `listen`. What
/// `medledger fhir serve` calls.
///
/// # Errors
/// [`ServeError`] for an invalid configuration, unreadable files, bad TLS or MSP material, an
/// unusable gateway endpoint, or a listener that cannot be bound.
pub async fn serve(
    config: FhirConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    config.validate()?;
    let tls = tls_server_config(
        &read(&config.tls_cert)?,
        &read(&config.tls_key)?,
        &read(&config.client_tls_ca)?,
    )?;
    let msp_config = medledger_msp::folder::load_msp_config(&config.msp_dir, &config.msp_id)
        .map_err(|e| ServeError::Msp(e.to_string()))?;
    let msp =
        medledger_msp::msp::Msp::new(msp_config).map_err(|e| ServeError::Msp(e.to_string()))?;
    let channel = gateway_channel(&config)?;
    let backend = GatewayBackend::new(
        channel,
        Wallet::new(&config.wallet_dir, &config.msp_id),
        &config.channel,
        &config.chaincode,
    );
    let tokens = TokenService::new(msp, config.token_url(), config.tokens.clone());
    let addr: SocketAddr = config
        .listen
        .parse()
        .map_err(|_| ServeError::Gateway("listen is not an address".into()))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
    let state = AppState::new(config, Arc::new(backend), tokens);
    serve_on(listener, tls, state, shutdown).await
}

/// A lazily connecting gRPC channel to the organization's gateway, with TLS (and mutual TLS)
/// when the endpoint is `https://`.
fn gateway_channel(config: &FhirConfig) -> Result<tonic::transport::Channel, ServeError> {
    use tonic::transport::{Certificate as TonicCert, ClientTlsConfig, Endpoint, Identity};
    let g = &config.gateway;
    let bad = |e: &dyn std::fmt::Display| ServeError::Gateway(e.to_string());
    let mut endpoint = Endpoint::from_shared(g.endpoint.clone()).map_err(|e| bad(&e))?;
    if g.endpoint.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &g.tls_ca {
            tls = tls.ca_certificate(TonicCert::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&g.tls_cert, &g.tls_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(host) = &g.tls_host {
            tls = tls.domain_name(host.clone());
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| bad(&e))?;
    }
    Ok(endpoint.connect_lazy())
}
