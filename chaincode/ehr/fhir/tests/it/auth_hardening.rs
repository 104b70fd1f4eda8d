//! The security review's findings on authentication (issue 16, ADR 0039 "Authentication"):
//! each test runs `ehr_fhir::serve` as `medledger fhir serve` does (real TLS on 127.0.0.1,
//! the MSP folder and its `crls/` on disk, a CA of `medledger_ca` for Org1 and Org2) with a
//! gateway that is never reached (the routes used here do not call it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ehr_fhir::config::FhirConfig;
use medledger_ca::{CaConfig, CertificateAuthority, Registration, RevokeTarget, TLS_ATTRIBUTE};
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::ou::NodeOu;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const BASE: &str = "https://localhost/fhir";

/// One organization's CA and the FHIR server's MSP folder and TLS files.
struct Org {
    dir: tempfile::TempDir,
    ca: CertificateAuthority,
}

impl Org {
    fn new(msp_id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(
            &dir.path().join("ca"),
            CaConfig::new(format!("ca-{msp_id}"), msp_id, "example.com"),
            "admin",
            "adminpw",
        )
        .unwrap();
        Org { dir, ca }
    }

    /// Registers and enrolls `name` (of `ou`, allowed a TLS certificate) here: its folder
    /// holds `msp/` (enrollment) and `tls/` (TLS certificate for host `name`).
    fn identity(&mut self, name: &str, ou: NodeOu) -> Identity {
        let home = self.dir.path().join(name);
        self.ca
            .issue_local(
                "admin",
                Registration::new(name, ou).with_attribute(TLS_ATTRIBUTE, "true"),
                &home,
                &[name.to_owned()],
            )
            .unwrap();
        Identity { home }
    }

    /// Revokes `name` (all its certificates) and writes the CA's CRL into `msp_dir/crls`.
    fn revoke_and_publish(&mut self, name: &str, msp_dir: &Path) {
        self.ca
            .revoke(
                "admin",
                RevokeTarget::Identity(name.into()),
                "keyCompromise",
            )
            .unwrap();
        let crl = self.ca.gen_crl("admin", None, None).unwrap();
        std::fs::create_dir_all(msp_dir.join("crls")).unwrap();
        std::fs::write(msp_dir.join("crls/crl.pem"), crl).unwrap();
    }
}

/// An enrolled identity's folder (`msp/`, `tls/`).
struct Identity {
    home: PathBuf,
}

impl Identity {
    fn enrollment(&self) -> (SigningKey, Certificate) {
        let msp = self.home.join("msp");
        let key =
            SigningKey::from_pem(&std::fs::read(msp.join("keystore/priv_sk")).unwrap()).unwrap();
        let cert =
            Certificate::from_pem(&std::fs::read(msp.join("signcerts/cert.pem")).unwrap()).unwrap();
        (key, cert)
    }

    fn tls(&self) -> (Vec<u8>, Vec<u8>) {
        let tls = self.home.join("tls");
        (
            std::fs::read(tls.join("server.crt")).unwrap(),
            std::fs::read(tls.join("server.key")).unwrap(),
        )
    }
}

/// A running server of Org1 (`fhir-server`, TLS host `localhost`).
struct Server {
    port: u16,
    msp_dir: PathBuf,
    tls_ca: Vec<u8>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ehr_fhir::serve::ServeError>>,
    _wallet: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.take();
        self.task.abort();
    }
}

/// Starts Org1's server with `change` applied to its configuration.
async fn start(org: &mut Org, change: impl FnOnce(&mut FhirConfig)) -> Server {
    let home = org.dir.path().join("fhir-server");
    if !home.exists() {
        org.ca
            .issue_local(
                "admin",
                Registration::new("fhir-server", NodeOu::Peer),
                &home,
                &["localhost".to_owned()],
            )
            .unwrap();
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let wallet = tempfile::tempdir().unwrap();
    let mut config = FhirConfig {
        listen: format!("127.0.0.1:{port}"),
        base_url: BASE.into(),
        tls_cert: home.join("tls/server.crt"),
        tls_key: home.join("tls/server.key"),
        client_tls_ca: home.join("tls/ca.crt"),
        msp_dir: home.join("msp"),
        msp_id: "Org1MSP".into(),
        wallet_dir: wallet.path().to_owned(),
        ..FhirConfig::default()
    };
    config.gateway.endpoint = "http://127.0.0.1:9".into();
    change(&mut config);
    let tls_ca = std::fs::read(home.join("tls/ca.crt")).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ehr_fhir::serve(config, async {
        let _ = stopped.await;
    }));
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server {
        port,
        msp_dir: home.join("msp"),
        tls_ca,
        stop: Some(stop),
        task,
        _wallet: wallet,
    }
}

impl Server {
    /// A TLS connection, presenting `client` (certificate chain and key, PEM) if given.
    async fn connect(
        &self,
        client: Option<&(Vec<u8>, Vec<u8>)>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        for c in pem::parse_many(&self.tls_ca).unwrap() {
            roots.add(CertificateDer::from(c.into_contents())).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let chain = pem::parse_many(chain)
                    .unwrap()
                    .into_iter()
                    .map(|p| CertificateDer::from(p.into_contents()))
                    .collect();
                let key = pem::parse(key).unwrap().into_contents();
                builder
                    .with_client_auth_cert(
                        chain,
                        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
                    )
                    .unwrap()
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    /// A token for `who` from the token endpoint (`scope` if given), or the error's status.
    async fn token(&self, who: &Identity, scope: Option<&str>) -> Result<String, u16> {
        let (key, cert) = who.enrollment();
        let id = format!("Org1MSP:{}", cert.common_name());
        let now = medledger_msp::msp::unix_seconds(std::time::SystemTime::now());
        let header = json!({"alg": "ES256", "typ": "JWT",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(cert.der())]});
        let claims = json!({"iss": id, "sub": id, "aud": format!("{BASE}/auth/token"),
            "exp": now + 120, "iat": now, "jti": format!("{}", rand_jti())});
        let assertion =
            ehr_fhir::auth::jws::sign(&header, &claims, &key.to_pkcs8_der().unwrap()).unwrap();
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.append_pair("grant_type", "client_credentials")
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", &assertion);
        if let Some(s) = scope {
            body.append_pair("scope", s);
        }
        let body = body.finish();
        let mut conn = self.connect(None).await.unwrap();
        let (status, _, text) = request(
            &mut conn,
            "POST",
            "/fhir/auth/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await
        .unwrap();
        if status != 200 {
            return Err(status);
        }
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        Ok(v["access_token"].as_str().unwrap().to_owned())
    }
}

fn rand_jti() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    u128::from(n) << 64
        | u128::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        )
}

/// One HTTP/1.1 request on `conn` (kept alive): status, headers (lower-case names), body.
async fn request(
    conn: &mut TlsStream<TcpStream>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    conn.flush().await?;
    read_response(conn).await
}

async fn read_response(
    conn: &mut TlsStream<TcpStream>,
) -> std::io::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, headers, body))
}

async fn get(conn: &mut TlsStream<TcpStream>, path: &str, bearer: Option<&str>) -> u16 {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    request(conn, "GET", path, &headers, b"")
        .await
        .map_or(0, |(s, _, _)| s)
}

/// Whether a new connection with `who`'s TLS certificate fails its handshake, is closed or
/// gets 401.
async fn refused(server: &Server, who: &Identity) -> bool {
    match server.connect(Some(&who.tls())).await {
        Err(_) => true,
        Ok(mut c) => matches!(get(&mut c, "/fhir/metadata", None).await, 0 | 401),
    }
}

/// H1: revoking an identity at the CA and writing the CRL into the MSP folder ends its
/// bearer token, its open mutual-TLS connection and its new handshakes within one poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_published_in_the_msp_folder_ends_tokens_and_connections() {
    let mut org = Org::new("Org1MSP");
    let doctor = org.identity("doctor1", NodeOu::Client);
    let server = start(&mut org, |_| {}).await;
    let token = server.token(&doctor, None).await.unwrap();
    let mut anon = server.connect(None).await.unwrap();
    assert_eq!(get(&mut anon, "/fhir/metadata", Some(&token)).await, 200);
    let mut mtls = server.connect(Some(&doctor.tls())).await.unwrap();
    assert_eq!(get(&mut mtls, "/fhir/metadata", None).await, 200);

    org.revoke_and_publish("doctor1", &server.msp_dir);
    // The default poll is 2 s.
    tokio::time::sleep(Duration::from_millis(3000)).await;

    let mut anon = server.connect(None).await.unwrap();
    assert_eq!(
        get(&mut anon, "/fhir/metadata", Some(&token)).await,
        401,
        "the revoked identity's token"
    );
    assert_eq!(
        get(&mut mtls, "/fhir/metadata", None).await,
        401,
        "a request on the revoked identity's open mutual-TLS connection"
    );
    assert!(
        refused(&server, &doctor).await,
        "a new handshake with the revoked TLS certificate"
    );
}

/// M1: mutual TLS trusts the organization's own TLS CA only (a `client_tls_ca` naming
/// another organization's root refuses to start), and only client/admin TLS certificates
/// call (a peer's TLS certificate is refused, 401 on every request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_trusts_only_the_organizations_client_tls_certificates() {
    let mut org1 = Org::new("Org1MSP");
    let mut org2 = Org::new("Org2MSP");
    let doctor2 = org2.identity("doctor1", NodeOu::Client);
    let both = org1.dir.path().join("both-roots.pem");
    std::fs::write(
        &both,
        format!(
            "{}{}",
            org1.ca.tls_root_cert().to_pem(),
            org2.ca.tls_root_cert().to_pem()
        ),
    )
    .unwrap();
    let widened = start(&mut org1, |c| c.client_tls_ca = both.clone()).await;
    let mut refused_to_start = false;
    for _ in 0..50 {
        if widened.task.is_finished() {
            refused_to_start = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !refused_to_start {
        // It started: the other organization's TLS certificate must still not call.
        let mut c = widened.connect(Some(&doctor2.tls())).await.unwrap();
        assert_eq!(
            get(&mut c, "/fhir/metadata", None).await,
            401,
            "Org2's TLS certificate with CN doctor1 on a server given both roots"
        );
    }
    drop(widened);

    let peer = org1.identity("peer0", NodeOu::Peer);
    let server = start(&mut org1, |_| {}).await;
    let mut c = server.connect(Some(&peer.tls())).await.unwrap();
    assert_eq!(
        get(&mut c, "/fhir/metadata", None).await,
        401,
        "a peer's TLS certificate"
    );
    assert!(
        refused(&server, &doctor2).await,
        "Org2's TLS certificate on Org1's server"
    );
}

/// M2 (part): the token endpoint reads at most 64 KiB (it read axum's default 2 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_refuses_bodies_over_64_kib() {
    let mut org = Org::new("Org1MSP");
    let server = start(&mut org, |_| {}).await;
    let mut c = server.connect(None).await.unwrap();
    let body = vec![b'a'; 65 * 1024];
    let (status, _, _) = request(&mut c, "POST", "/fhir/auth/token", &[], &body)
        .await
        .unwrap();
    assert_eq!(status, 413);
}
