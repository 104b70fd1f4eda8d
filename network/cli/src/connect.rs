//! How client commands reach a gateway and who signs: explicit flags (`--peer`, `--mspdir`,
//! `--mspid`, TLS files), or a network started by `network up` (`--dir`, `--as NAME`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use medledger_gateway::client::Gateway;
use medledger_msp::folder;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Connection flags shared by `chaincode` and `ehr` commands.
#[derive(Debug, Clone, Default, Args)]
pub struct GatewayArgs {
    /// Gateway peer address, `https://HOST:PORT` (or `http://` without TLS). Without it, the
    /// network started by `network up` in `--dir` is used, as identity `--as`.
    #[arg(long, requires_all = ["mspdir", "mspid"])]
    pub peer: Option<String>,
    /// PEM file of the peer's TLS root CA.
    #[arg(long, requires = "peer")]
    pub tls_ca: Option<PathBuf>,
    /// Client TLS certificate (PEM) for mutual TLS.
    #[arg(long, requires_all = ["tls_key", "peer"])]
    pub tls_cert: Option<PathBuf>,
    /// Client TLS key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// MSP folder of the signing identity (with `--peer`).
    #[arg(short = 'M', long, requires = "peer")]
    pub mspdir: Option<PathBuf>,
    /// MSP id of the signing identity (with `--peer`).
    #[arg(long, requires = "peer")]
    pub mspid: Option<String>,
    /// Act as this identity of the network in `--dir` (see `medledger identities`), e.g.
    /// `org2-doctor` or `patient:<Patient.id>`; default: the first organization's admin.
    #[arg(long = "as", conflicts_with = "peer")]
    pub as_identity: Option<String>,
    /// Network directory (default $MEDLEDGER_HOME, else ./medledger-net).
    #[arg(long, conflicts_with = "peer")]
    pub dir: Option<PathBuf>,
}

impl GatewayArgs {
    /// Connects; also returns the network's channel when connected through a network
    /// directory.
    ///
    /// # Errors
    /// Unreadable identity or TLS files, unknown `--as` name, unreachable gateway.
    pub async fn connect(&self) -> Result<(Gateway, Option<String>)> {
        let (Some(peer), Some(mspdir), Some(mspid)) = (&self.peer, &self.mspdir, &self.mspid)
        else {
            let dir = medledger_devnet::default_dir(self.dir.clone());
            let client =
                medledger_devnet::client::connect_as(&dir, self.as_identity.as_deref()).await?;
            return Ok((client.gateway, Some(client.channel)));
        };
        let identity = folder::load_signing_identity(mspdir, mspid)
            .with_context(|| format!("loading identity from {}", mspdir.display()))?;
        let mut endpoint = Endpoint::from_shared(peer.clone()).context("bad --peer address")?;
        if peer.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.tls_ca {
                tls = tls.ca_certificate(Certificate::from_pem(std::fs::read(ca)?));
            }
            if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
                tls = tls.identity(Identity::from_pem(
                    std::fs::read(cert)?,
                    std::fs::read(key)?,
                ));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {peer}"))?;
        Ok((Gateway::connect(identity, channel), None))
    }
}
