//! Pulling a channel's blocks from the ordering service (Fabric 3's BFT deliverer): blocks come
//! from one orderer, the *source*, starting at the ledger height, while a header-only stream
//! (`HEADER_WITH_SIG`) from every consenter tells the peer how far the ordering service has
//! got. A header counts only once a quorum of consenter signatures over it verifies
//! (`bft::verify_block_attestation`), so no orderer can make the peer believe in a block that
//! was not decided; blocks are committed only after the committer verified them in full.
//!
//! The peer leaves its source ([`SourceMonitor`]) when
//! - the stream fails, the orderer is unreachable, or a block it sent is refused (bad
//!   signatures, data hash mismatch, broken chain): at once, after
//!   [`PullConfig::reconnect_delay`];
//! - an attested block stays undelivered: some orderer's verified header is ahead of the ledger
//!   and within [`PullConfig::block_censorship_timeout`] the source neither delivered every block
//!   known when the wait began nor shrank the gap (a silent source, one that sends late, or
//!   one that drips blocks slower than the chain grows).
//!
//! It then moves to the orderer with the highest attested height (ties: the next in consenter
//! order). Peers start at different orderers: the index is derived from the peer's name
//! ([`start_index`]), so one silent orderer holds back no peer longer than the timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medledger_channel::config::ConsenterSet;
use medledger_channel::{bft, block, envelope};
use medledger_ledger::TransientStore;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::ChannelId;
use medledger_proto::common::{Block, Envelope};
use medledger_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use medledger_proto::orderer::deliver_response::Type as DeliverType;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tonic::transport::{Certificate as TlsCertificate, Channel, ClientTlsConfig, Endpoint};
use tracing::{debug, info, warn};

use crate::committer::Committer;
use crate::privdata::TlsClient;
use crate::validator::BlockPrivateData;

/// Blocks kept in the transient store before unclaimed private data is purged (Fabric's
/// `peer.gossip.pvtData.transientstoreMaxBlockRetention`).
pub const TRANSIENT_RETENTION_BLOCKS: u64 = 1000;

/// Largest Deliver response accepted, bytes.
const MAX_BLOCK_BYTES: usize = 256 * 1024 * 1024;

/// Verified header hashes remembered, so a header served by several orderers is verified once.
const VERIFIED_HEADERS_KEPT: usize = 64;

/// When the puller leaves an orderer (Fabric's `peer.deliveryclient` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullConfig {
    /// How long an attested block may stay undelivered by the source before the peer switches
    /// orderer (Fabric's `blockCensorshipTimeout`, default there 30 s; here 5 s).
    pub block_censorship_timeout: Duration,
    /// Wait after a failed connection, stream or refused block before the next orderer is
    /// tried, and between reconnections of a header stream (default 500 ms).
    pub reconnect_delay: Duration,
}

impl Default for PullConfig {
    /// peer.yaml's `deliver_client` defaults: 5 s, 500 ms.
    fn default() -> Self {
        super::config::pull_config(&super::config::DeliverClientSection::default())
    }
}

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
    /// This peer's name (`peer.yaml`'s `name`): picks the first source, see [`start_index`].
    pub peer_name: String,
    /// Switching rules.
    pub config: PullConfig,
}

impl std::fmt::Debug for BlockPuller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockPuller")
            .field("channel", &self.committer.channel_id())
            .field("peer_name", &self.peer_name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The consenter (index into the channel's consenter list, `0..n`) a peer named `peer_name`
/// pulls from first: the first 8 bytes of SHA-256 of the name, big-endian, modulo `n`. Stable
/// across restarts and spread over the orderers. `n = 0` gives 0.
pub fn start_index(peer_name: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let h = medledger_msp::crypto::sha256(peer_name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(first) % n as u64) as usize
}

/// Why pulling from an orderer, or following its headers, failed. Structured fields (the
/// orderer's `host:port`, the block number); the messages are the transport's, the orderer's
/// status or the committer's, and reach only the peer's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// The Deliver request cannot be signed.
    #[error("{0}")]
    Request(String),
    /// The orderer cannot be reached (endpoint, TLS, connection).
    #[error("{message}")]
    Connect {
        /// The orderer, `host:port`.
        orderer: String,
        /// The transport's message.
        message: String,
    },
    /// The orderer refused the Deliver call or its stream broke: the gRPC status message.
    #[error("{message}")]
    Stream {
        /// The orderer, `host:port`.
        orderer: String,
        /// The gRPC status message.
        message: String,
    },
    /// The orderer ended the block stream (`headers` false) or the header stream with a
    /// Fabric status.
    #[error("orderer ended the {}stream with status {status}", if *headers { "header " } else { "" })]
    Ended {
        /// The orderer, `host:port`.
        orderer: String,
        /// Whether it was the header stream.
        headers: bool,
        /// The `common.Status`.
        status: i32,
    },
    /// The orderer closed the block stream (`headers` false) or the header stream.
    #[error("orderer closed the {}stream", if *headers { "header " } else { "" })]
    Closed {
        /// The orderer, `host:port`.
        orderer: String,
        /// Whether it was the header stream.
        headers: bool,
    },
    /// A Deliver response carried neither a block nor a status.
    #[error("empty deliver response")]
    EmptyResponse {
        /// The orderer, `host:port`.
        orderer: String,
    },
    /// A header the orderer sent has no valid commit certificate.
    #[error("{error}")]
    Attestation {
        /// The orderer, `host:port`.
        orderer: String,
        /// What the verification found, the whole message (not also `source()`: printed
        /// once).
        error: bft::BlockVerifyError,
    },
    /// The block stream's task ended (the puller stops it only when leaving the source).
    #[error("block stream ended")]
    StreamEnded,
    /// A block from the source was not committed (refused by the committer, or the commit
    /// task failed).
    #[error("{message}")]
    Commit {
        /// The block's number.
        block: u64,
        /// The committer's message.
        message: String,
    },
}

/// Why the puller leaves its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchReason {
    /// The connection or stream failed, or a block it sent was refused.
    Failed(PullError),
    /// Blocks attested by a quorum of consenters stayed undelivered for the censorship
    /// timeout: the ledger was at height `committed` while an orderer showed `attested`.
    Withheld {
        /// Ledger height when the source was left.
        committed: u64,
        /// Highest attested height (last verified header number + 1).
        attested: u64,
    },
}

impl std::fmt::Display for SwitchReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwitchReason::Failed(e) => write!(f, "{e}"),
            SwitchReason::Withheld {
                committed,
                attested,
            } => write!(
                f,
                "source withheld attested blocks (ledger height {committed}, attested height {attested})"
            ),
        }
    }
}

/// A wait for the source to deliver blocks other orderers showed.
#[derive(Debug, Clone, Copy)]
struct Suspicion {
    since: Instant,
    /// Ledger height when the wait began.
    committed: u64,
    /// Attested height when the wait began: delivering up to it ends the wait.
    target: u64,
}

/// Which orderer to pull from and when to leave it; pure (time and heights are arguments), so
/// the rules are tested without a network. Heights are block counts: the ledger's height, and
/// per consenter index the verified header number + 1 (0 = nothing verified).
#[derive(Debug, Clone)]
pub struct SourceMonitor {
    n: usize,
    source: usize,
    timeout: Duration,
    suspicion: Option<Suspicion>,
}

impl SourceMonitor {
    /// A monitor over `n` orderers (n ≥ 1) starting at `start % n`, leaving a source that
    /// withholds attested blocks for `timeout`.
    pub fn new(n: usize, start: usize, timeout: Duration) -> Self {
        let n = n.max(1);
        SourceMonitor {
            n,
            source: start % n,
            timeout,
            suspicion: None,
        }
    }

    /// The current source (consenter index).
    pub fn source(&self) -> usize {
        self.source
    }

    /// Checks the source at `now`, with the ledger at height `committed` and the orderers'
    /// attested heights `attested` (one per consenter). Returns the reason when the source
    /// has been left (the new one is [`Self::source`]). The source is left when some attested
    /// height exceeded the ledger height for `timeout` and in that time the ledger neither
    /// reached the attested height seen when the wait began nor came closer to the highest
    /// attested height.
    pub fn poll(&mut self, committed: u64, attested: &[u64], now: Instant) -> Option<SwitchReason> {
        let ahead = attested.iter().copied().max().unwrap_or(0);
        if ahead <= committed {
            self.suspicion = None;
            return None;
        }
        let fresh = Suspicion {
            since: now,
            committed,
            target: ahead,
        };
        let Some(s) = self.suspicion else {
            self.suspicion = Some(fresh);
            return None;
        };
        if committed >= s.target {
            // Everything known when the wait began was delivered: a new wait for what
            // appeared since.
            self.suspicion = Some(fresh);
            return None;
        }
        if now.saturating_duration_since(s.since) < self.timeout {
            return None;
        }
        let gap_then = s.target - s.committed;
        let gap_now = ahead - committed;
        if committed > s.committed && gap_now < gap_then {
            // Catching up (e.g. a restarted peer far behind): progress, and the gap shrinks.
            self.suspicion = Some(fresh);
            return None;
        }
        self.switch(attested);
        Some(SwitchReason::Withheld {
            committed,
            attested: ahead,
        })
    }

    /// Leaves the source after a failure (connection, stream, refused block) and moves to the
    /// next one; returns the new source.
    pub fn failed(&mut self, attested: &[u64]) -> usize {
        self.switch(attested);
        self.source
    }

    /// Moves to the orderer other than the source with the highest attested height; ties go
    /// to the first after the source in consenter order.
    fn switch(&mut self, attested: &[u64]) {
        self.suspicion = None;
        if self.n == 1 {
            return;
        }
        let height = |i: usize| attested.get(i).copied().unwrap_or(0);
        let mut best = (self.source + 1) % self.n;
        for step in 2..self.n {
            let i = (self.source + step) % self.n;
            if height(i) > height(best) {
                best = i;
            }
        }
        self.source = best;
    }
}

/// The orderers' attested heights, shared by the header watchers and the puller.
#[derive(Debug)]
struct AttestedHeights {
    heights: Vec<AtomicU64>,
    /// (block number, header hash) of recently verified headers.
    verified: Mutex<VecDeque<(u64, [u8; 32])>>,
}

impl AttestedHeights {
    fn new(n: usize) -> Self {
        AttestedHeights {
            heights: (0..n).map(|_| AtomicU64::new(0)).collect(),
            verified: Mutex::new(VecDeque::with_capacity(VERIFIED_HEADERS_KEPT)),
        }
    }

    fn snapshot(&self) -> Vec<u64> {
        self.heights
            .iter()
            .map(|h| h.load(Ordering::Acquire))
            .collect()
    }

    /// Records that orderer `i` showed `header_block` (a header with its signatures), if a
    /// quorum of consenter signatures over its header verifies.
    fn attest(
        &self,
        i: usize,
        header_block: &Block,
        channel_id: &str,
        consenters: &ConsenterSet,
    ) -> Result<(), bft::BlockVerifyError> {
        let Some(slot) = self.heights.get(i) else {
            return Ok(());
        };
        let Some(header) = header_block.header.as_ref() else {
            return Err(bft::BlockVerifyError::Incomplete);
        };
        let height = header.number.saturating_add(1);
        if height <= slot.load(Ordering::Acquire) {
            return Ok(());
        }
        let hash = block::header_hash(header);
        let known = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&(header.number, hash));
        if !known {
            bft::verify_block_attestation(header_block, channel_id, consenters)?;
            let mut verified = self
                .verified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if verified.len() == VERIFIED_HEADERS_KEPT {
                verified.pop_front();
            }
            verified.push_back((header.number, hash));
        }
        slot.fetch_max(height, Ordering::AcqRel);
        Ok(())
    }
}

/// Private data of `block`'s transactions found in the transient store, by position, and the
/// (tx id, simulation height) of those entries, to remove after the commit.
fn private_of(transient: &TransientStore, block: &Block) -> (BlockPrivateData, Vec<(String, u64)>) {
    let mut private = BlockPrivateData::new();
    let mut found = Vec::new();
    let entries = block::entries(block);
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

/// An orderer as the channel configuration names it.
#[derive(Debug, Clone)]
struct Orderer {
    host: String,
    port: u16,
}

impl std::fmt::Display for Orderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A TLS connection to `orderer`. No client certificate: the orderer authorizes Deliver by the
/// signed request (channel Readers policy), and an orderer's TLS client roots are those of the
/// configuration it started with, which a peer of an organization that joined later is not
/// under.
async fn connect(tls: &TlsClient, orderer: &Orderer) -> Result<Channel, PullError> {
    let failed = |e: tonic::transport::Error| PullError::Connect {
        orderer: orderer.to_string(),
        message: e.to_string(),
    };
    let config = ClientTlsConfig::new()
        .ca_certificate(TlsCertificate::from_pem(&tls.roots_pem))
        .domain_name(orderer.host.clone());
    Endpoint::from_shared(format!("https://{orderer}"))
        .map_err(failed)?
        .tls_config(config)
        .map_err(failed)?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(failed)
}

/// Why a Deliver stream of `orderer` (its header stream if `headers`) ends on `response`, a
/// response that is no block: the orderer's status, or an empty response.
fn not_a_block(orderer: &Orderer, headers: bool, response: Option<DeliverType>) -> PullError {
    let orderer = orderer.to_string();
    match response {
        Some(DeliverType::Status(status)) => PullError::Ended {
            orderer,
            headers,
            status,
        },
        _ => PullError::EmptyResponse { orderer },
    }
}

/// A failed Deliver call or stream of `orderer`.
fn stream_failed(orderer: &Orderer) -> impl Fn(tonic::Status) -> PullError {
    let orderer = orderer.to_string();
    move |s| PullError::Stream {
        orderer: orderer.clone(),
        message: s.message().to_owned(),
    }
}

/// Opens a Deliver stream to `orderer` with `request`.
async fn deliver(
    tls: &TlsClient,
    orderer: &Orderer,
    request: Envelope,
) -> Result<tonic::Streaming<medledger_proto::orderer::DeliverResponse>, PullError> {
    let channel = connect(tls, orderer).await?;
    AtomicBroadcastClient::new(channel)
        .max_decoding_message_size(MAX_BLOCK_BYTES)
        .deliver(tokio_stream::iter([request]))
        .await
        .map(tonic::Response::into_inner)
        .map_err(stream_failed(orderer))
}

/// Forwards the blocks of a Deliver stream from `start` on `orderer` into `tx`, then the
/// reason it ended. Returns when the stream ends or the receiver is gone.
async fn stream_blocks(
    tls: TlsClient,
    signer: Arc<SigningIdentity>,
    channel_id: ChannelId,
    start: u64,
    orderer: Orderer,
    tx: mpsc::Sender<Result<Block, PullError>>,
) {
    let forward = async {
        let request = medledger_channel::deliver::seek_envelope(
            &signer,
            channel_id.as_str(),
            start,
            u64::MAX,
        )
        .map_err(|e| PullError::Request(e.to_string()))?;
        let mut stream = deliver(&tls, &orderer, request).await?;
        info!(target: "peer::pull", channel = %channel_id, %orderer, from = start, "pulling blocks");
        while let Some(resp) = stream.message().await.map_err(stream_failed(&orderer))? {
            match resp.r#type {
                Some(DeliverType::Block(b)) => {
                    if tx.send(Ok(b)).await.is_err() {
                        return Ok(());
                    }
                }
                other => return Err(not_a_block(&orderer, false, other)),
            }
        }
        Err(PullError::Closed {
            orderer: orderer.to_string(),
            headers: false,
        })
    };
    if let Err(e) = forward.await {
        let _ = tx.send(Err(e)).await;
    }
}

/// How often the source is checked: a fifth of the censorship timeout, within 20 ms..1 s.
fn tick_period(timeout: Duration) -> Duration {
    (timeout / 5).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

impl BlockPuller {
    /// Pulls and commits blocks until `shutdown` turns true (or its sender is dropped),
    /// watching every consenter's height and switching source as the module docs say.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let orderers: Vec<Orderer> = self
            .committer
            .config()
            .consenters()
            .iter()
            .map(|c| Orderer {
                host: c.host.clone(),
                port: c.port,
            })
            .collect();
        if orderers.is_empty() {
            warn!(target: "peer::pull", channel = %self.committer.channel_id(), "no orderers in the channel configuration");
            return;
        }
        let this = Arc::new(self);
        let heights = Arc::new(AttestedHeights::new(orderers.len()));
        // Dropped (and so aborted) when this function returns.
        let mut watchers = JoinSet::new();
        for (i, orderer) in orderers.iter().enumerate() {
            watchers.spawn(this.clone().watch(i, orderer.clone(), heights.clone()));
        }
        let mut monitor = SourceMonitor::new(
            orderers.len(),
            start_index(&this.peer_name, orderers.len()),
            this.config.block_censorship_timeout,
        );
        loop {
            let from = monitor.source();
            let reason = tokio::select! {
                r = this.pull_from(&orderers[from], &heights, &mut monitor) => r,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            if let Some((block, reason)) = this.committer.halted() {
                tracing::error!(target: "peer::pull", channel = %this.committer.channel_id(), block, %reason, "channel halted: no more blocks are pulled");
                return;
            }
            let failed = matches!(reason, SwitchReason::Failed(_));
            if failed {
                monitor.failed(&heights.snapshot());
            }
            info!(target: "peer::pull", channel = %this.committer.channel_id(), from = %orderers[from], to = %orderers[monitor.source()], %reason, "switching orderer");
            if failed {
                tokio::select! {
                    _ = tokio::time::sleep(this.config.reconnect_delay) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// Commits blocks from `source` until the monitor or a failure says to leave it.
    async fn pull_from(
        &self,
        source: &Orderer,
        heights: &AttestedHeights,
        monitor: &mut SourceMonitor,
    ) -> SwitchReason {
        let (tx, mut rx) = mpsc::channel(1);
        // Aborted when this function returns.
        let mut stream = JoinSet::new();
        stream.spawn(stream_blocks(
            self.tls.clone(),
            self.signer.clone(),
            self.committer.channel_id().clone(),
            self.committer.ledger().height(),
            source.clone(),
            tx,
        ));
        let mut tick = tokio::time::interval(tick_period(self.config.block_censorship_timeout));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Ok(block)) => {
                        if let Err(e) = self.commit(block).await {
                            return SwitchReason::Failed(e);
                        }
                    }
                    Some(Err(e)) => return SwitchReason::Failed(e),
                    None => return SwitchReason::Failed(PullError::StreamEnded),
                },
                _ = tick.tick() => {
                    let committed = self.committer.ledger().height();
                    if let Some(reason) = monitor.poll(committed, &heights.snapshot(), Instant::now()) {
                        return reason;
                    }
                }
            }
        }
    }

    /// Follows orderer `i`'s headers (reconnecting after failures) and records its attested
    /// height; runs until aborted.
    async fn watch(self: Arc<Self>, i: usize, orderer: Orderer, heights: Arc<AttestedHeights>) {
        loop {
            if let Err(e) = self.watch_once(i, &orderer, &heights).await {
                debug!(target: "peer::pull", channel = %self.committer.channel_id(), %orderer, error = %e, "header stream ended");
            }
            tokio::time::sleep(self.config.reconnect_delay).await;
        }
    }

    async fn watch_once(
        &self,
        i: usize,
        orderer: &Orderer,
        heights: &AttestedHeights,
    ) -> Result<(), PullError> {
        let channel_id = self.committer.channel_id().as_str();
        let request = medledger_channel::deliver::header_stream_envelope(&self.signer, channel_id)
            .map_err(|e| PullError::Request(e.to_string()))?;
        let mut stream = deliver(&self.tls, orderer, request).await?;
        while let Some(resp) = stream.message().await.map_err(stream_failed(orderer))? {
            match resp.r#type {
                Some(DeliverType::Block(b)) => {
                    let config = self.committer.config();
                    if let Err(e) = heights.attest(i, &b, channel_id, config.consenters()) {
                        warn!(target: "peer::pull", channel = %channel_id, %orderer, error = %e, "orderer sent a header without a valid commit certificate");
                        return Err(PullError::Attestation {
                            orderer: orderer.to_string(),
                            error: e,
                        });
                    }
                }
                other => return Err(not_a_block(orderer, true, other)),
            }
        }
        Err(PullError::Closed {
            orderer: orderer.to_string(),
            headers: true,
        })
    }

    async fn commit(&self, block: Block) -> Result<(), PullError> {
        let number = block.header.as_ref().map_or(0, |h| h.number);
        let failed = |message: String| PullError::Commit {
            block: number,
            message,
        };
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
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
        debug!(target: "peer::pull", block = summary.block_number, "block committed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn secs(base: Instant, s: u64) -> Instant {
        base + Duration::from_secs(s)
    }

    #[test]
    fn start_index_spreads_names_and_is_stable() {
        assert_eq!(start_index("peer0.org1", 0), 0);
        assert_eq!(start_index("peer0.org1", 1), 0);
        assert_eq!(
            start_index("peer0.org1", 4),
            start_index("peer0.org1", 4),
            "stable"
        );
        let used: std::collections::BTreeSet<usize> = (0..32)
            .map(|k| start_index(&format!("peer{k}.org1"), 4))
            .collect();
        assert_eq!(used.len(), 4, "32 names reach every one of 4 orderers");
    }

    #[test]
    fn an_idle_channel_never_switches() {
        let t0 = Instant::now();
        let mut m = SourceMonitor::new(4, 1, T);
        for s in 0..60 {
            assert_eq!(m.poll(10, &[10, 10, 10, 0], secs(t0, s)), None);
        }
        assert_eq!(m.source(), 1);
    }

    #[test]
    fn a_silent_source_is_left_after_the_timeout_for_the_highest_orderer() {
        let t0 = Instant::now();
        let mut m = SourceMonitor::new(4, 0, T);
        // Orderer 3 shows block 11 (height 12); the source delivers nothing.
        let attested = [0, 11, 10, 12];
        assert_eq!(m.poll(10, &attested, t0), None);
        assert_eq!(m.poll(10, &attested, secs(t0, 4)), None);
        assert_eq!(
            m.poll(10, &attested, secs(t0, 5)),
            Some(SwitchReason::Withheld {
                committed: 10,
                attested: 12
            })
        );
        assert_eq!(
            m.source(),
            3,
            "the orderer with the highest attested height"
        );
    }

    #[test]
    fn a_source_that_keeps_up_under_load_is_kept() {
        let t0 = Instant::now();
        let mut m = SourceMonitor::new(4, 2, T);
        // Blocks arrive every second; the ledger is always a block behind the fastest
        // orderer, but delivers what was attested within a second.
        for s in 0..60u64 {
            let committed = 10 + s;
            let attested = [committed + 1, committed + 1, committed, committed];
            assert_eq!(m.poll(committed, &attested, secs(t0, s)), None, "at {s}s");
        }
        assert_eq!(m.source(), 2);
    }

    #[test]
    fn a_late_or_dripping_source_is_left() {
        // Late: a block every 6 s (past the timeout) while the chain grows.
        let t0 = Instant::now();
        let mut m = SourceMonitor::new(4, 0, T);
        assert_eq!(m.poll(10, &[11, 13, 13, 13], t0), None);
        assert!(m.poll(10, &[11, 14, 14, 14], secs(t0, 5)).is_some());
        assert_eq!(m.source(), 1, "ties go to the next orderer");

        // Dripping: a block a second while the chain grows by two a second; the gap grows.
        let mut m = SourceMonitor::new(4, 0, T);
        let mut switched = None;
        for s in 0..20u64 {
            let committed = 10 + s;
            let ahead = 12 + 2 * s;
            if let Some(r) = m.poll(committed, &[committed, ahead, ahead, ahead], secs(t0, s)) {
                switched = Some((s, r));
                break;
            }
        }
        // Each wait is for a longer gap, until one outlasts the timeout: at 11 s the source
        // had not delivered block 23 (attested since 6 s) and the gap had grown.
        assert_eq!(
            switched,
            Some((
                11,
                SwitchReason::Withheld {
                    committed: 21,
                    attested: 34
                }
            ))
        );
    }

    #[test]
    fn a_source_catching_up_from_far_behind_is_kept() {
        let t0 = Instant::now();
        let mut m = SourceMonitor::new(4, 0, T);
        // 1000 blocks behind, 50 blocks a second delivered, the chain grows by 1 a second.
        for s in 0..30u64 {
            let committed = 50 * s;
            let ahead = 1000 + s;
            if committed >= ahead {
                break;
            }
            assert_eq!(
                m.poll(committed, &[ahead, ahead, ahead, ahead], secs(t0, s)),
                None,
                "at {s}s"
            );
        }
        assert_eq!(m.source(), 0);
    }

    #[test]
    fn only_headers_with_a_quorum_of_signatures_count() {
        use medledger_channel::testing::TestChannel;
        let ch = TestChannel::new("ehr", 1, 4);
        let consenters = ch.config.consenters();
        let heights = AttestedHeights::new(4);
        let header = |number: u64, signers: &[u32]| {
            let mut b = block::new_block(number, &[7; 32], vec![b"tx".to_vec()]);
            ch.sign_block(&mut b, signers, 0);
            b.data = None;
            b
        };
        // Two signatures of four: no quorum, whatever number it claims.
        assert!(matches!(
            heights.attest(1, &header(1_000_000, &[1, 2]), "ehr", consenters),
            Err(bft::BlockVerifyError::NoQuorum { .. })
        ));
        // Signed for another channel.
        let mut other = block::new_block(50, &[7; 32], vec![]);
        TestChannel::new("other", 1, 4).sign_block(&mut other, &[1, 2, 3], 0);
        assert!(heights.attest(2, &other, "ehr", consenters).is_err());
        assert_eq!(heights.snapshot(), vec![0, 0, 0, 0]);
        // A quorum: counted, as height = number + 1; the same header from another orderer
        // is taken from the cache of verified headers; older headers change nothing.
        let good = header(41, &[1, 2, 4]);
        heights.attest(0, &good, "ehr", consenters).unwrap();
        heights.attest(3, &good, "ehr", consenters).unwrap();
        heights
            .attest(3, &header(40, &[1, 2, 3]), "ehr", consenters)
            .unwrap();
        assert_eq!(heights.snapshot(), vec![42, 0, 0, 42]);
    }

    #[test]
    fn failures_rotate_through_every_orderer() {
        let mut m = SourceMonitor::new(4, 2, T);
        let seen: Vec<usize> = (0..4).map(|_| m.failed(&[0, 0, 0, 0])).collect();
        assert_eq!(seen, vec![3, 0, 1, 2]);
        let mut one = SourceMonitor::new(1, 7, T);
        assert_eq!(one.failed(&[5]), 0);
    }
}
