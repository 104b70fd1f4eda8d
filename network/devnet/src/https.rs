//! A minimal HTTPS/1.0 client for the FHIR servers of a network (health checks, `medledger
//! fhir token`): one request per TLS connection (rustls, the network's TLS roots, optionally a
//! client certificate for mutual TLS), the whole answer read until the server closes.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// Name the server's certificate must carry (a DNS name or an IP address).
    pub server_name: String,
    /// Trusted root certificates, PEM.
    pub roots_pem: Vec<u8>,
    /// Client certificate and its PKCS#8 key, PEM, for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// An HTTP answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body, as text.
    pub body: String,
}

fn certificates(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let blocks = pem::parse_many(pem_text).context("parsing PEM certificates")?;
    let certs: Vec<_> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    if certs.is_empty() {
        bail!("no certificate in the PEM text");
    }
    Ok(certs)
}

fn client_config(target: &Target) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(&target.roots_pem)? {
        roots.add(cert).context("adding a TLS root")?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    Ok(match &target.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key = pem::parse(key).context("parsing the client key")?;
            if key.tag() != "PRIVATE KEY" {
                bail!("the client key is not a PKCS#8 PEM key");
            }
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.into_contents()));
            builder
                .with_client_auth_cert(certificates(cert)?, key)
                .context("loading the client certificate")?
        }
    })
}

/// Sends one request (`HTTP/1.0`, `Connection: close`) and reads the answer.
///
/// # Errors
/// Unreachable address, TLS failure (untrusted or misnamed server certificate), a malformed
/// answer, or none within 30 s.
pub fn request(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer> {
    let config = Arc::new(client_config(target)?);
    let name = ServerName::try_from(target.server_name.clone())
        .with_context(|| format!("bad server name {:?}", target.server_name))?;
    let mut conn = rustls::ClientConnection::new(config, name).context("TLS client")?;
    let sock = target
        .addr
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("no address for {}", target.addr))?;
    let mut tcp = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .with_context(|| format!("connecting to {}", target.addr))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        target.server_name,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes())?;
    tls.write_all(body)?;
    tls.flush()?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server that closes without close_notify: the answer read so far is complete
        // (HTTP/1.0 without Content-Length ends at the close).
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e).with_context(|| format!("reading from {}", target.addr)),
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad HTTP answer from {}", target.addr))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Answer { status, body })
}
