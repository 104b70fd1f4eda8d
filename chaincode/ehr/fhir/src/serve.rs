//! The HTTPS listener: the crate's own accept loop (tokio-rustls + hyper-util), because
//! `axum::serve` cannot hand a connection's client certificate to the router (ADR 0039).
//!
//! TLS asks for a client certificate but does not require one (`/metadata`, the SMART
//! configuration and the token endpoint answer without); a certificate that chains to the
//! organization's TLS root (rustls `WebPkiClientVerifier`, RFC 5280 path validation, EKU
//! `clientAuth`) and passes [`TokenService::check_tls_certificate`] (a client or admin TLS
//! certificate of the MSP's `tlscacerts`, not on its CRLs) names the caller by its CN, and the
//! loop puts that [`Caller`] in every request's extensions of the connection, checking the
//! certificate again on each request (connections live long). A connection whose certificate
//! is refused gets 401 on every request. Handlers never see certificates.
//!
//! Revocation (ADR 0039): [`serve`] polls `<msp_dir>/crls` every `crl_poll_ms`; on a change
//! it reloads the MSP ([`TokenService::reload`]: tokens and assertions) and rebuilds the TLS
//! configuration with the CRLs for later handshakes ([`ServerTls`]). TLS session resumption
//! is off (no TLS 1.3 tickets, no session cache), so every connection verifies its client
//! chain afresh.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use medledger_msp::cert::Certificate;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
    PrivateSec1KeyDer,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::AppState;
use crate::auth::tokens::TokenService;
use crate::backend::{AuthMethod, Caller, GatewayBackend, Wallet};
use crate::config::FhirConfig;
use crate::outcome::FhirError;

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
/// http/1.1, aws-lc-rs, no session resumption.
///
/// # Errors
/// [`ServeError::Tls`] if a PEM is malformed, missing or refused by rustls.
pub fn tls_server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let roots: Vec<Vec<u8>> = pem_blocks(client_ca_pem, &["CERTIFICATE"])?
        .into_iter()
        .map(|(_, der)| der)
        .collect();
    build_tls(cert_chain_pem, key_pem, &roots, &[])
}

/// [`tls_server_config`] with client roots `roots` (DER) and the CRLs `crls` (DER) given to
/// the client verifier (RFC 5280 §6.3 for the end-entity certificate; a certificate no CRL
/// speaks for, e.g. one of a TLS CA whose CRLs the MSP does not hold, passes here and is
/// checked by serial in [`TokenService::check_tls_certificate`]).
fn build_tls(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    roots: &[Vec<u8>],
    crls: &[Vec<u8>],
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
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| tls(&e))?;
    }
    if store.is_empty() {
        return Err(ServeError::Tls("no client TLS root certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(store),
        provider.clone(),
    )
    .allow_unauthenticated();
    if !crls.is_empty() {
        verifier = verifier
            .with_crls(
                crls.iter()
                    .map(|c| CertificateRevocationListDer::from(c.clone())),
            )
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    let verifier = verifier.build().map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // A resumed session restores the client chain without verifying it again: none.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// The TLS configuration the accept loop serves new handshakes with: fixed, or rebuilt when
/// the MSP folder's `crls/` changes ([`serve`]).
#[derive(Debug, Clone)]
pub struct ServerTls {
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    watch: Option<Arc<Watch>>,
}

/// What a reload needs: the server's own certificate and key (PEM), the MSP folder.
#[derive(Debug)]
struct Watch {
    cert_chain_pem: Vec<u8>,
    key_pem: Vec<u8>,
    msp_dir: PathBuf,
    msp_id: String,
    poll: Duration,
}

impl From<Arc<rustls::ServerConfig>> for ServerTls {
    fn from(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            current: Arc::new(RwLock::new(config)),
            watch: None,
        }
    }
}

impl ServerTls {
    fn current(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.current.read().ok().map(|c| c.clone())
    }

    /// Reloads the MSP folder into `tokens` and this configuration.
    fn reload(&self, watch: &Watch, tokens: &TokenService) -> Result<(), ServeError> {
        let config = medledger_msp::folder::load_msp_config(&watch.msp_dir, &watch.msp_id)
            .map_err(|e| ServeError::Msp(e.to_string()))?;
        let tls = build_tls(
            &watch.cert_chain_pem,
            &watch.key_pem,
            &config.tls_root_certs,
            &config.crls,
        )?;
        tokens
            .reload(config)
            .map_err(|e| ServeError::Msp(e.to_string()))?;
        let mut current = self
            .current
            .write()
            .map_err(|_| ServeError::Tls("configuration lock poisoned".into()))?;
        *current = tls;
        Ok(())
    }

    /// Polls `crls/` until dropped, reloading on a change (a failed reload is logged and
    /// retried at the next poll; the last good state stays).
    async fn watch(self, watch: Arc<Watch>, tokens: TokenService) {
        let mut seen = crls_fingerprint(&watch.msp_dir);
        let mut tick = tokio::time::interval(watch.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = crls_fingerprint(&watch.msp_dir);
            if now == seen {
                continue;
            }
            let (this, w, t) = (self.clone(), watch.clone(), tokens.clone());
            match tokio::task::spawn_blocking(move || this.reload(&w, &t)).await {
                Ok(Ok(())) => {
                    tracing::info!(target: "fhir::serve", "CRLs changed: MSP and TLS reloaded");
                    seen = now;
                }
                Ok(Err(e)) => {
                    tracing::warn!(target: "fhir::serve", error = %e, "CRL reload failed; keeping the last good state");
                }
                Err(_) => {}
            }
        }
    }
}

/// Names, sizes and modification times of `<msp_dir>/crls/*` (empty if absent).
fn crls_fingerprint(msp_dir: &Path) -> Vec<(std::ffi::OsString, u64, Option<SystemTime>)> {
    let mut files: Vec<_> = std::fs::read_dir(msp_dir.join("crls"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((e.file_name(), m.len(), m.modified().ok()))
        })
        .collect();
    files.sort();
    files
}

/// The caller a client certificate names (its CN is the enrollment id), or why it may not
/// call ([`TokenService::check_tls_certificate`]).
fn mtls_caller(state: &AppState, cert: Option<&Certificate>) -> Result<Caller, FhirError> {
    let cert = cert.ok_or(FhirError::Security("the client certificate does not parse"))?;
    state
        .tokens
        .check_tls_certificate(cert, crate::auth::now_s())?;
    Ok(Caller {
        msp_id: state.config.msp_id.clone(),
        enrollment_id: cert.common_name().to_owned(),
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
    tls: impl Into<ServerTls>,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let tls: ServerTls = tls.into();
    let _watcher = tls
        .watch
        .clone()
        .map(|w| AbortOnDrop(tokio::spawn(tls.clone().watch(w, state.tokens.clone()))));
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
        let Some(config) = tls.current() else {
            return Err(ServeError::Tls("configuration lock poisoned".into()));
        };
        let acceptor = TlsAcceptor::from(config);
        let (router, state) = (router.clone(), state.clone());
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
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|der| Certificate::from_der(der).ok());
            let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                // Only the TLS layer may say who calls: nothing from the request does.
                req.extensions_mut().remove::<Caller>();
                // Connections live long: the certificate is checked on every request.
                let refused = match &client {
                    None => None,
                    Some(cert) => match mtls_caller(&state, cert.as_ref()) {
                        Ok(caller) => {
                            req.extensions_mut().insert(caller);
                            None
                        }
                        Err(e) => Some(e),
                    },
                };
                let router = router.clone();
                async move {
                    match refused {
                        Some(e) => Ok(axum::response::IntoResponse::into_response(e)),
                        None => router.oneshot(req.map(Body::new)).await,
                    }
                }
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

/// Aborts a task when dropped (the CRL watcher ends with the accept loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
    let msp_config = medledger_msp::folder::load_msp_config(&config.msp_dir, &config.msp_id)
        .map_err(|e| ServeError::Msp(e.to_string()))?;
    // Mutual TLS trusts the MSP's own TLS roots only; `client_tls_ca` may not widen them.
    for (_, der) in pem_blocks(&read(&config.client_tls_ca)?, &["CERTIFICATE"])? {
        if !msp_config.tls_root_certs.contains(&der) {
            return Err(ServeError::Tls(
                "client_tls_ca names a root outside the MSP's tlscacerts".into(),
            ));
        }
    }
    let watch = Watch {
        cert_chain_pem: read(&config.tls_cert)?,
        key_pem: read(&config.tls_key)?,
        msp_dir: config.msp_dir.clone(),
        msp_id: config.msp_id.clone(),
        poll: Duration::from_millis(config.crl_poll_ms),
    };
    let tls = build_tls(
        &watch.cert_chain_pem,
        &watch.key_pem,
        &msp_config.tls_root_certs,
        &msp_config.crls,
    )?;
    let tls = ServerTls {
        current: Arc::new(RwLock::new(tls)),
        watch: Some(Arc::new(watch)),
    };
    let channel = gateway_channel(&config)?;
    let backend = GatewayBackend::new(
        channel,
        Wallet::new(&config.wallet_dir, &config.msp_id),
        &config.channel,
        &config.chaincode,
    );
    let tokens =
        TokenService::from_msp_config(msp_config, config.token_url(), config.tokens.clone())
            .map_err(|e| ServeError::Msp(e.to_string()))?;
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
