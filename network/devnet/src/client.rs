//! Connecting a client to a network started by `network up`, as one of its demo identities
//! (`--as NAME`): the identity's MSP folder, its organization's gateway peer, the network's TLS
//! roots.

use std::path::Path;

use anyhow::{Context, Result};
use medledger_gateway::GatewayError;
use medledger_gateway::client::Gateway;
use medledger_msp::folder;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::generate::{Identities, IdentityEntry};

/// A connected client of a network.
#[derive(Debug)]
pub struct NetworkClient {
    /// The gateway connection, signing as the identity.
    pub gateway: Gateway,
    /// The network's channel.
    pub channel: String,
    /// Who it acts as.
    pub identity: IdentityEntry,
}

/// Connects to the gateway of `name`'s organization in the network in `dir`, signing as
/// `name` (`None`: the first identity, the first organization's admin).
///
/// # Errors
/// No network in `dir`, unknown identity (the message lists the known names), unreadable
/// keys, unreachable gateway.
pub async fn connect_as(dir: &Path, name: Option<&str>) -> Result<NetworkClient> {
    let ids = Identities::load(dir)?;
    let entry = match name {
        Some(n) => ids.get(n).cloned().with_context(|| {
            let names: Vec<&str> = ids.identities.iter().map(|i| i.name.as_str()).collect();
            format!(
                "no identity {n:?} in {} (known: {})",
                dir.display(),
                names.join(", ")
            )
        })?,
        None => ids
            .identities
            .first()
            .cloned()
            .context("the network has no identities")?,
    };
    let msp_dir = dir.join(&entry.msp_dir);
    let identity = folder::load_signing_identity(&msp_dir, &entry.msp_id)
        .with_context(|| format!("loading identity from {}", msp_dir.display()))?;
    let roots = std::fs::read(dir.join("tls-roots.pem")).context("reading tls-roots.pem")?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(roots))
        .domain_name(entry.gateway_host.clone());
    let url = format!("https://{}", entry.gateway);
    let channel = Endpoint::from_shared(url.clone())?
        .tls_config(tls)?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to the gateway at {url}"))?;
    Ok(NetworkClient {
        gateway: Gateway::connect(identity, channel),
        channel: ids.channel,
        identity: entry,
    })
}

/// A gateway error for the user: its code and message, then each peer's or orderer's detail.
pub fn explain(e: GatewayError) -> anyhow::Error {
    match e {
        GatewayError::Status {
            code,
            message,
            details,
        } => {
            let mut text = format!("{code:?}: {message}");
            for d in details {
                text.push_str(&format!("\n  {} ({}): {}", d.address, d.msp_id, d.message));
            }
            anyhow::anyhow!(text)
        }
        other => anyhow::anyhow!(other),
    }
}
