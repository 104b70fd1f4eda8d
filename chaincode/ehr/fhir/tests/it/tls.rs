//! The server over real TLS on 127.0.0.1:0 (`ehr_fhir::serve::serve_on`): mutual TLS with a
//! TLS certificate of Org1's TLS CA names the caller; without one, `/metadata` and the token
//! endpoint answer, data routes ask for a credential; another organization's certificate is
//! refused at the handshake; the SMART Backend Services token flow
//! (an ES256 assertion signed with the enrollment key) gives a bearer token that reads.

use std::sync::Arc;

use base64::Engine as _;
use ehr_client::bundle::PatientBundle;
use ehr_fhir::serve::{serve_on, tls_server_config};
use medledger_ca::{Profile, build_csr};
use medledger_msp::crypto::SigningKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;

use crate::common::{BASE, Setup};

/// A TLS certificate (PEM) of organization `org`'s TLS CA for `name` (registered with
/// `medledger.tls=true`) with host names `hosts`, and its key.
fn tls_cert(s: &Setup, org: usize, name: &str, hosts: &[&str]) -> (String, SigningKey) {
    let key = SigningKey::generate().unwrap();
    let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
    let csr = build_csr(&key, name, &hosts).unwrap();
    let name = name.to_owned();
    let issued = s
        .net
        .with(move |h| {
            h.network_mut().sim.ch.orgs[org]
                .ca
                .reenroll(&name, &csr, Profile::Tls, &hosts)
        })
        .unwrap()
        .unwrap();
    (issued.cert_pem, key)
}

/// One HTTP/1.1 request over TLS (client certificate optional); status and body.
async fn https(
    addr: std::net::SocketAddr,
    root_der: &[u8],
    client: Option<(&str, &SigningKey)>,
    request: String,
) -> std::io::Result<(u16, Vec<u8>)> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root_der.to_vec())).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key)) => {
            let der = pem::parse(cert_pem).unwrap().into_contents();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_pkcs8_der().unwrap()));
            builder
                .with_client_auth_cert(vec![CertificateDer::from(der)], key)
                .unwrap()
        }
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    let (head, _) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body_at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    Ok((status, raw[body_at..].to_vec()))
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{extra}\r\n")
}

/// The steps over TLS, on the network `s` (the sample patient imported by [`crate::api`]).
pub(crate) async fn over_tls(s: &Setup, bundle: &PatientBundle) {
    // The server's own identity, registered to hold a TLS certificate.
    s.net
        .client(0, "fhir-org1", &[("medledger.tls", "true")])
        .unwrap();
    let (server_pem, server_key) = tls_cert(s, 0, "fhir-org1", &["localhost"]);
    let (client_pem, client_key) = tls_cert(s, 0, "org1-admin", &[]);
    let root = s
        .net
        .with(|h| h.network().sim.ch.orgs[0].ca.tls_root_cert().clone())
        .unwrap();
    let tls = tls_server_config(
        server_pem.as_bytes(),
        server_key.to_pkcs8_pem().unwrap().as_bytes(),
        root.to_pem().as_bytes(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(listener, tls, s.state.clone(), async {
        let _ = stopped.await;
    }));
    let root = root.der().to_vec();
    let read = format!("/fhir/Patient/{}", bundle.patient_id);
    let stored = crate::common::patient_bytes(bundle);

    // No client certificate: metadata answers, data routes ask for a credential.
    let (status, _) = https(addr, &root, None, get("/fhir/metadata", ""))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, body) = https(addr, &root, None, get(&read, "")).await.unwrap();
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["issue"][0]["code"],
        "login"
    );

    // Mutual TLS: the certificate's CN names the caller.
    let (status, body) = https(
        addr,
        &root,
        Some((&client_pem, &client_key)),
        get(&read, ""),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body, stored);

    // Another organization's TLS certificate: the handshake is refused, nothing answers.
    s.net
        .client(1, "org2-tls-user", &[("medledger.tls", "true")])
        .unwrap();
    let (other_pem, other_key) = tls_cert(s, 1, "org2-tls-user", &[]);
    match https(addr, &root, Some((&other_pem, &other_key)), get(&read, "")).await {
        Err(_) => {}
        Ok((status, _)) => assert_eq!(status, 0, "another organization's certificate answered"),
    }

    // The token flow: an ES256 assertion with the enrollment certificate in x5c.
    let token_url = format!("{BASE}/auth/token");
    let admin = s.admin();
    let client_id = format!("Org1MSP:{}", admin.certificate().common_name());
    let now = medledger_msp::msp::unix_seconds(std::time::SystemTime::now());
    let assertion = ehr_fhir::auth::jws::sign(
        &json!({"alg": "ES256", "typ": "JWT", "x5c": [
            base64::engine::general_purpose::STANDARD.encode(admin.certificate().der())
        ]}),
        &json!({"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 120,
                "iat": now, "jti": "tls-test-1"}),
        &admin.key().to_pkcs8_der().unwrap(),
    )
    .unwrap();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", &assertion)
        .append_pair("scope", "system/*.rs")
        .finish();
    let post = |form: &str| {
        format!(
            "POST /fhir/auth/token HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
            form.len()
        )
    };
    let (status, body) = https(addr, &root, None, post(&form)).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["expires_in"], 300);
    let token = answer["access_token"].as_str().unwrap();
    let (status, body) = https(
        addr,
        &root,
        None,
        get(&read, &format!("authorization: Bearer {token}\r\n")),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body, stored);
    // The same assertion again: a replayed jti.
    let (status, body) = https(addr, &root, None, post(&form)).await.unwrap();
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"],
        "invalid_client"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
