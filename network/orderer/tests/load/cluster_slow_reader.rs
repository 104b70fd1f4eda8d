//! Issue 14 item 4, over the real transport: one Byzantine orderer that reads nothing cannot
//! make the others hold unbounded memory or stop ordering.
//!
//! Three orderer servers run in this process (gRPC with mutual TLS on loopback); in place of
//! the fourth, the test runs a hostile consenter with orderer 4's TLS material:
//! - a `Cluster` server on orderer 4's address whose `Step` handler accepts each stream and
//!   never reads it, so the real orderers' streams to it back up (HTTP/2 flow control);
//! - as orderer 4 (its TLS client certificate), a `Cluster.Step` stream to each real orderer
//!   sending `SyncRequest { from: 0 }` every 5 ms, so each queues sync responses (8 MiB each:
//!   the chain is filled with 10 MiB of blocks first) for the reader that never reads.
//!
//! Meanwhile an honest client submits a small transaction every 100 ms for 25 s. Asserted:
//! - every honest transaction is ordered, p99 under 5 s (the silent orderer's rounds time
//!   out after 1 s);
//! - the process's memory grows by less than [`RSS_BOUND`] (512 MiB) over the flood;
//! - the real orderers queued sync responses for the silent reader (at least one's
//!   `orderer_cluster_queued_bytes` reached a quarter of `cluster_queue_bytes`: which ones
//!   do is a race with the consensus messages that stall the stream first), and none ever
//!   more than three times `cluster_queue_bytes` for the other orderers in all;
//! - each real orderer closed at least one stalled stream to the silent reader during the
//!   flood (`orderer_cluster_stalls_total`; [`server::PEER_STALL`] is 10 s).
//!
//! The bounds under test live in `src/server/cluster.rs`: byte-bounded lanes per peer, sync
//! responses read only while the bulk lane is at most half full, a stream that takes no
//! message for `PEER_STALL` closed and its queue dropped. It is a regression test: it passes
//! on the code it was written against. Checked by removing each bound in turn: with
//! `PEER_STALL` at 1,000 s no stream was closed (stalls `[0, 0, 0]`; the stuck stream also
//! kept two orderers from reading any sync response) and the test failed; without the
//! half-full check the orderers queued 31-62 MiB (budget 48) and it failed. Memory stayed
//! within the RSS bound in both (growth 0 and 136 MiB): the byte-bounded lanes and the
//! stream's short channel (4 messages) still cap what waits for a stuck stream, so the RSS
//! bound guards against an unbounded queue only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{CHANNEL, ChainWatch, Submitted, nonce, rss, tx_id};

use medledger_msp::folder::load_signing_identity;
use medledger_orderer::client::{OrdererClient, transaction_envelope};
use medledger_orderer::config::ConsensusSection;
use medledger_orderer::server::{self, RunningOrderer};
use medledger_proto::common::{Envelope, Status};
use medledger_proto::medledger::orderer as pb;
use pb::cluster_client::ClusterClient;
use pb::cluster_server::{Cluster, ClusterServer};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Streaming};

const MIB: u64 = 1 << 20;
/// Bytes queued per other orderer (`cluster_queue_bytes`); a sync response holds at most
/// half of it.
const QUEUE_BYTES: u64 = 16 * MIB;
/// Bound on the process's memory growth over the flood. What the three real orderers may
/// hold for the silent reader by design, each: its two lanes (2 × 16 MiB), sync responses
/// waiting in the stream's channel (at most 4 × 8 MiB) and the one being written (8 MiB and
/// the HTTP/2 window): ~80 MiB, so ~240 MiB for three; the rest is slack for the allocator.
/// Without the bounds, each orderer would queue an 8 MiB response every 100 ms (the sync
/// rate limit): ~240 MiB a second for the three.
const RSS_BOUND: u64 = 512 * MIB;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(25);
/// Bound on the honest transactions' p99 submit → ordered latency.
const P99_BOUND: Duration = Duration::from_secs(5);

/// A counter or gauge of an orderer's metrics text.
fn metric(o: &RunningOrderer, name: &str) -> u64 {
    o.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Streams to other orderers an orderer closed for reading too slowly.
fn stalls(o: &RunningOrderer) -> u64 {
    metric(o, "orderer_cluster_stalls_total")
}

/// The silent reader: accepts every `Cluster.Step` stream and never reads it; returns only
/// when the test stops it.
struct SilentConsenter {
    stop: watch::Receiver<bool>,
    streams: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl Cluster for SilentConsenter {
    async fn step(
        &self,
        request: Request<Streaming<pb::ClusterMessage>>,
    ) -> Result<Response<pb::Empty>, tonic::Status> {
        self.streams.fetch_add(1, Ordering::Relaxed);
        let _unread = request.into_inner();
        let _ = self.stop.clone().wait_for(|s| *s).await;
        Ok(Response::new(pb::Empty {}))
    }
}

fn sync_request() -> pb::ClusterMessage {
    pb::ClusterMessage {
        message: Some(pb::cluster_message::Message::SyncRequest(pb::SyncRequest {
            from: 0,
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consenter_that_never_reads_holds_bounded_memory_and_ordering_goes_on() {
    let _turn = common::one_at_a_time().await;
    // RUST_LOG=orderer=debug shows what the orderers do.
    common::trace();
    let test_start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (ports, net, configs) = common::dev_network(
        dir.path(),
        ConsensusSection {
            // Orderer 4 never proposes: its rounds end after this.
            propose_timeout_ms: 1000,
            cluster_queue_bytes: QUEUE_BYTES,
            ..ConsensusSection::default()
        },
    );
    let roots = std::fs::read(&net.tls_roots).unwrap();
    let fake_cert = std::fs::read(&configs[3].tls_cert).unwrap();
    let fake_key = std::fs::read(&configs[3].tls_key).unwrap();

    // The silent reader, on orderer 4's address with its server certificate.
    let (stop_fake, stop_rx) = watch::channel(false);
    let fake_streams = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", ports[3]))
        .await
        .unwrap();
    let fake_server = {
        let mut stop = stop_rx.clone();
        let service = ClusterServer::new(SilentConsenter {
            stop: stop_rx.clone(),
            streams: fake_streams.clone(),
        });
        let server = Server::builder()
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(&fake_cert, &fake_key)))
            .unwrap()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = stop.wait_for(|s| *s).await;
            });
        tokio::spawn(server)
    };

    let mut orderers = Vec::new();
    for c in &configs[..3] {
        orderers.push(server::start(c).await.unwrap());
    }
    let orderers = Arc::new(orderers);
    let honest = Arc::new(load_signing_identity(&net.client_msp, &net.client_msp_id).unwrap());
    let mut clients = Vec::new();
    for p in &ports[..3] {
        clients.push(
            OrdererClient::connect("127.0.0.1", *p, &roots)
                .await
                .unwrap(),
        );
    }
    let rss_start = rss();

    // Fill the chain with multi-MiB blocks, so a sync response from block 0 is as large as
    // the queue lets it be (8 MiB). Each envelope stays under 64 KiB, above which the
    // orderers want endorsements by peers (this client endorses its own).
    let fill: Vec<Envelope> = (0..184)
        .map(|_| transaction_envelope(&honest, CHANNEL, &nonce(), vec![5; 56 * 1024]).unwrap())
        .collect();
    let r = clients[0].broadcast(fill).await.unwrap();
    assert!(
        r.iter().all(|x| x.status == Status::Success as i32),
        "{:?}",
        r.iter().find(|x| x.status != Status::Success as i32)
    );
    let fill_start = Instant::now();
    let tx_count = |o: &RunningOrderer| -> u64 {
        (1..o.height())
            .map(|n| o.block(n).unwrap().unwrap().data.unwrap().data.len() as u64)
            .sum()
    };
    while orderers.iter().any(|o| tx_count(o) < 160)
        && fill_start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        orderers.iter().all(|o| tx_count(o) >= 160),
        "the fill transactions were not ordered"
    );
    let chain_mib = {
        let o = &orderers[0];
        (1..o.height())
            .map(|n| prost::Message::encoded_len(&o.block(n).unwrap().unwrap()) as u64)
            .sum::<u64>()
            / MIB
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss();
    let stalls_before: Vec<u64> = orderers.iter().map(stalls).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();

    // The sync flood: as orderer 4, one Cluster.Step stream to each real orderer.
    let sync_sent = Arc::new(AtomicU64::new(0));
    for p in &ports[..3] {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&roots))
            .identity(Identity::from_pem(&fake_cert, &fake_key))
            .domain_name("127.0.0.1");
        let channel = Endpoint::from_shared(format!("https://127.0.0.1:{p}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(64);
        let call = tokio::spawn(async move {
            ClusterClient::new(channel)
                .step(ReceiverStream::new(rx))
                .await
        });
        let (stop, sent) = (stop.clone(), sync_sent.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if tx.send(sync_request()).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            drop(tx);
            let r = tokio::time::timeout(Duration::from_secs(5), call).await;
            assert!(
                matches!(r, Ok(Ok(Ok(_)))),
                "a real orderer refused or dropped the consenter's stream: {r:?}"
            );
        }));
    }

    // The honest client: one small transaction every 100 ms, to each real orderer in turn.
    let submitted: Submitted = Arc::default();
    {
        let (stop, submitted, honest) = (stop.clone(), submitted.clone(), honest.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let env = transaction_envelope(&honest, CHANNEL, &nonce(), vec![4; 1024]).unwrap();
                submitted
                    .lock()
                    .unwrap()
                    .insert(tx_id(&env), Instant::now());
                let n = clients.len();
                let r = clients[k % n].broadcast(vec![env]).await;
                k += 1;
                let status = r.ok().and_then(|r| r.first().map(|x| x.status));
                assert_eq!(status, Some(Status::Success as i32), "honest transaction");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    // Watch orderer 1's chain for the honest transactions, and the memory; and the most
    // bytes each real orderer holds queued for the other orderers.
    let watch = ChainWatch::start(orderers.clone(), idle);
    let mut queued_peak = [0u64; 3];
    let flood_start = Instant::now();
    while flood_start.elapsed() < FLOOD {
        for (o, q) in orderers.iter().zip(&mut queued_peak) {
            *q = (*q).max(metric(o, "orderer_cluster_queued_bytes"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let stalls_after: Vec<u64> = orderers.iter().map(stalls).collect();
    // Let the honest transactions submitted last be ordered.
    let seen = watch.finish(&submitted, Duration::from_secs(10)).await;
    let p = |q: f64| seen.percentile(q);
    let growth = seen.peak_rss.saturating_sub(idle);
    let during: Vec<u64> = stalls_after
        .iter()
        .zip(&stalls_before)
        .map(|(a, b)| a - b)
        .collect();
    let queued_mib: Vec<u64> = queued_peak.iter().map(|q| q / MIB).collect();
    println!(
        "chain {chain_mib} MiB before the flood; most queued for other orderers {queued_mib:?} MiB; sync requests sent {}; streams the silent reader accepted {}; \
         stalled streams closed per orderer: during the flood {during:?}, in all {stalls_after:?}; \
         honest txs {} ({} not ordered) p50 {:?} p99 {:?} max {:?}; \
         RSS at start {} MiB, idle {} MiB, peak growth over the flood {} MiB (bound {} MiB); \
         heights {:?}; {:?} in all",
        sync_sent.load(Ordering::Relaxed),
        fake_streams.load(Ordering::Relaxed),
        seen.latencies.len(),
        seen.unordered,
        p(0.5),
        p(0.99),
        seen.max(),
        rss_start / MIB,
        idle / MIB,
        growth / MIB,
        RSS_BOUND / MIB,
        orderers.iter().map(|o| o.height()).collect::<Vec<_>>(),
        test_start.elapsed(),
    );
    assert!(
        orderers.iter().all(|o| o.healthy()),
        "a real orderer halted"
    );
    assert!(
        seen.latencies.len() >= 100,
        "too few honest transactions submitted"
    );
    assert_eq!(seen.unordered, 0, "honest transactions not ordered");
    assert!(
        p(0.99) < P99_BOUND,
        "honest p99 {:?} ≥ {P99_BOUND:?} beside the silent reader",
        p(0.99)
    );
    assert!(
        growth < RSS_BOUND,
        "memory grew by {} MiB beside the silent reader (bound {} MiB)",
        growth / MIB,
        RSS_BOUND / MIB
    );
    // The flood did make the orderers queue sync responses (several MiB each) for the
    // silent reader, and within the byte budgets: a peer's consensus lane within
    // `QUEUE_BYTES`, its bulk lane too (sync responses are read while it is at most half
    // full, each at most half of it); the honest peers' queues drain. Whether a given
    // orderer queues one before its stream to the silent reader stalls on consensus
    // messages is a race (once on a loaded machine: [13, 2, 15] MiB), so at least one must.
    assert!(
        queued_mib.iter().any(|q| *q >= QUEUE_BYTES / 4 / MIB),
        "no sync responses queued for the silent reader: {queued_mib:?} MiB"
    );
    assert!(
        queued_mib.iter().all(|q| *q < 3 * QUEUE_BYTES / MIB),
        "queues for other orderers beyond their budgets: {queued_mib:?} MiB"
    );
    assert!(
        during.iter().all(|n| *n >= 1),
        "each real orderer should have closed a stalled stream to the silent reader during the flood: {during:?}"
    );

    if let Ok(orderers) = Arc::try_unwrap(orderers) {
        for o in orderers {
            o.stop().await;
        }
    }
    let _ = stop_fake.send(true);
    let abort = fake_server.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), fake_server)
        .await
        .is_err()
    {
        abort.abort();
    }
}
