//! Pulling a channel's blocks from the ordering service (Fabric's peer deliver client): one
//! orderer at a time, starting at the ledger height; on a refused block, a stream error or an
//! unreachable orderer, the next consenter is tried. Every block is verified by the committer
//! (orderer signatures of a quorum, hash chain), so a faulty orderer can stall this peer only
//! until it switches, never make it commit a forged block.

use std::sync::Arc;
use std::time::Duration;

use medledger_channel::envelope;
use medledger_ledger::TransientStore;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::{Block, Envelope};
use medledger_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use medledger_proto::orderer::deliver_response::Type as DeliverType;
use prost::Message;
use tokio::sync::watch;
use tonic::transport::{Certificate as TlsCertificate, ClientTlsConfig, Endpoint};
use tracing::{debug, info, warn};

use crate::committer::Committer;
use crate::privdata::TlsClient;
use crate::validator::BlockPrivateData;

/// Wait before trying the next orderer after a failure.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Blocks kept in the transient store before unclaimed private data is purged (Fabric's
/// `peer.gossip.pvtData.transientstoreMaxBlockRetention`).
pub const TRANSIENT_RETENTION_BLOCKS: u64 = 1000;

/// What a puller needs.
pub struct BlockPuller {
    /// The channel's committer.
    pub committer: Arc<Committer>,
    /// Signs the Deliver requests (the peer's identity).
    pub signer: Arc<SigningIdentity>,
    /// TLS to the orderers.
    pub tls: TlsClient,
    /// Private data from this peer's endorsements.
    pub transient: Arc<TransientStore>,
}

impl std::fmt::Debug for BlockPuller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockPuller")
            .field("channel", &self.committer.channel_id())
            .finish_non_exhaustive()
    }
}

/// Private data of `block`'s transactions found in the transient store, by position, and the
/// (tx id, simulation height) of those entries, to remove after the commit.
fn private_of(transient: &TransientStore, block: &Block) -> (BlockPrivateData, Vec<(String, u64)>) {
    let mut private = BlockPrivateData::new();
    let mut found = Vec::new();
    let entries = block
        .data
        .as_ref()
        .map(|d| d.data.as_slice())
        .unwrap_or(&[]);
    for (i, entry) in entries.iter().enumerate() {
        let Some(tx_id) = Envelope::decode(entry.as_slice())
            .ok()
            .and_then(|e| envelope::parse(&e).ok())
            .map(|p| p.tx_id().to_owned())
            .filter(|id| !id.is_empty())
        else {
            continue;
        };
        match transient.get(&tx_id) {
            Ok(Some((height, rwset))) => {
                private.insert(i as u64, rwset);
                found.push((tx_id, height));
            }
            Ok(None) => {}
            Err(e) => warn!(target: "peer::pull", error = %e, "transient store read failed"),
        }
    }
    (private, found)
}

impl BlockPuller {
    /// Pulls and commits blocks until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let consenters: Vec<(String, u16)> = self
            .committer
            .config()
            .consenters()
            .iter()
            .map(|c| (c.host.clone(), c.port))
            .collect();
        if consenters.is_empty() {
            warn!(target: "peer::pull", channel = %self.committer.channel_id(), "no orderers in the channel configuration");
            return;
        }
        let mut i = 0usize;
        loop {
            let (host, port) = &consenters[i % consenters.len()];
            i += 1;
            tokio::select! {
                r = self.pull_from(host, *port) => {
                    if let Err(e) = r {
                        debug!(target: "peer::pull", orderer = %format!("{host}:{port}"), error = %e, "switching orderer");
                    }
                }
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY_DELAY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn pull_from(&self, host: &str, port: u16) -> Result<(), String> {
        // No client certificate: the orderer authorizes Deliver by the signed request
        // (channel Readers policy), and an orderer's TLS client roots are those of the
        // configuration it started with, which a peer of an organization that joined later
        // is not under.
        let tls = ClientTlsConfig::new()
            .ca_certificate(TlsCertificate::from_pem(&self.tls.roots_pem))
            .domain_name(host.to_owned());
        let channel = Endpoint::from_shared(format!("https://{host}:{port}"))
            .map_err(|e| e.to_string())?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let channel_id = self.committer.channel_id().to_owned();
        let start = self.committer.ledger().height();
        let request =
            medledger_orderer::client::seek_envelope(&self.signer, &channel_id, start, u64::MAX)
                .map_err(|e| e.to_string())?;
        let mut stream = AtomicBroadcastClient::new(channel)
            .max_decoding_message_size(256 * 1024 * 1024)
            .deliver(tokio_stream::iter([request]))
            .await
            .map_err(|e| e.message().to_owned())?
            .into_inner();
        info!(target: "peer::pull", channel = %channel_id, orderer = %format!("{host}:{port}"), from = start, "pulling blocks");
        while let Some(resp) = stream.message().await.map_err(|e| e.message().to_owned())? {
            match resp.r#type {
                Some(DeliverType::Block(b)) => self.commit(b).await?,
                Some(DeliverType::Status(s)) => {
                    return Err(format!("orderer ended the stream with status {s}"));
                }
                None => return Err("empty deliver response".into()),
            }
        }
        Err("orderer closed the stream".into())
    }

    async fn commit(&self, block: Block) -> Result<(), String> {
        let committer = self.committer.clone();
        let transient = self.transient.clone();
        let summary = tokio::task::spawn_blocking(move || {
            let (private, found) = private_of(&transient, &block);
            let summary = committer.commit_block(block, &private)?;
            for (tx_id, height) in &found {
                if let Err(e) = transient.remove_at(tx_id, *height) {
                    warn!(target: "peer::pull", error = %e, "transient store cleanup failed");
                }
            }
            if summary.block_number % 100 == 0
                && let Some(below) = summary.block_number.checked_sub(TRANSIENT_RETENTION_BLOCKS)
                && let Err(e) = transient.purge_below(below)
            {
                warn!(target: "peer::pull", error = %e, "transient store purge failed");
            }
            Ok::<_, crate::Error>(summary)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        debug!(target: "peer::pull", block = summary.block_number, "block committed");
        Ok(())
    }
}
