//! The ordering benchmark behind `medledger orderer bench`: a development cluster of orderers
//! in this process, on loopback, over gRPC with TLS (mutual TLS between orderers), fed by
//! concurrent Broadcast streams; a Deliver stream on orderer 1 observes when each envelope is
//! in a block. Reports ordered envelopes per second and submit→delivered latency
//! percentiles. A command, not a test: it reports numbers and asserts nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medledger_msp::folder::load_signing_identity;
use medledger_proto::common::Status;
use medledger_proto::medledger::channel::BatchConfig;
use medledger_proto::orderer::deliver_response;
use prost::Message;
use tokio_stream::StreamExt;

use medledger_devnet::orderers::{self as devnet, DevNetSpec};
use medledger_orderer::client::{OrdererClient, seek_envelope, transaction_envelope};
use medledger_orderer::config::{ConsensusSection, OrdererConfig};
use medledger_orderer::{Error, Result};

/// Benchmark parameters.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Number of orderers (n = 3f + 1; default 4).
    pub orderers: usize,
    /// Envelopes to order.
    pub envelopes: usize,
    /// Approximate size of each serialized envelope, bytes (default 1024).
    pub envelope_bytes: usize,
    /// Concurrent Broadcast streams, spread over the orderers (default 8).
    pub clients: usize,
    /// Block cutting: max envelopes per block (default 500).
    pub max_message_count: u32,
    /// Block cutting: batch timeout, ms (default 250).
    pub batch_timeout_ms: u64,
    /// Where to put the cluster's files (a fresh temporary directory if `None`).
    pub dir: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            orderers: 4,
            envelopes: 20_000,
            envelope_bytes: 1024,
            clients: 8,
            max_message_count: 500,
            batch_timeout_ms: 250,
            dir: None,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Orderers.
    pub orderers: usize,
    /// Envelopes ordered.
    pub envelopes: usize,
    /// Mean serialized envelope size, bytes.
    pub envelope_bytes: usize,
    /// Blocks that held them.
    pub blocks: u64,
    /// From the first submission to the last envelope delivered.
    pub elapsed: Duration,
    /// Ordered envelopes per second.
    pub envelopes_per_second: f64,
    /// Submit → delivered in a block, median.
    pub latency_p50: Duration,
    /// Submit → delivered in a block, 99th percentile.
    pub latency_p99: Duration,
    /// Consensus decision latency (height start → decision) on orderer 1, median.
    pub decision_p50: Duration,
    /// Consensus decision latency on orderer 1, 99th percentile.
    pub decision_p99: Duration,
    /// Rejected submissions (should be 0).
    pub rejected: usize,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "orderers: {} (BFT, TLS on loopback, one process)",
            self.orderers
        )?;
        writeln!(
            f,
            "envelopes: {} of ~{} bytes in {} blocks ({} rejected)",
            self.envelopes, self.envelope_bytes, self.blocks, self.rejected
        )?;
        writeln!(
            f,
            "throughput: {:.0} envelopes/s ({:.2} s)",
            self.envelopes_per_second,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "decision latency (height start -> decided, orderer 1): p50 {:.1} ms, p99 {:.1} ms",
            self.decision_p50.as_secs_f64() * 1000.0,
            self.decision_p99.as_secs_f64() * 1000.0
        )?;
        write!(
            f,
            "ordering latency (submit -> delivered, incl. queueing): p50 {:.1} ms, p99 {:.1} ms",
            self.latency_p50.as_secs_f64() * 1000.0,
            self.latency_p99.as_secs_f64() * 1000.0
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark.
///
/// # Errors
/// [`Error`] if the cluster cannot be set up or a stream fails.
pub async fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let tmp;
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| Error::io("create", "temporary directory", e))?;
            tmp.path().to_path_buf()
        }
    };
    let n = opts.orderers.max(1);
    let ports = devnet::free_ports("127.0.0.1", n)?;
    let net = devnet::generate(
        &dir,
        &DevNetSpec {
            channel_id: "bench".into(),
            host: "127.0.0.1".into(),
            ports: ports.clone(),
            operations_ports: None,
            batch: BatchConfig {
                max_message_count: opts.max_message_count,
                preferred_max_bytes: 0,
                absolute_max_bytes: 0,
                batch_timeout_ms: opts.batch_timeout_ms,
            },
            consensus: ConsensusSection::default(),
        },
    )?;
    let mut orderers = Vec::new();
    for p in &net.orderer_configs {
        orderers.push(medledger_orderer::server::start(&OrdererConfig::load(p)?).await?);
    }
    let result = drive(opts, &net, &ports).await.map(|mut r| {
        if let Some(o) = orderers.first() {
            let mut d = o.decision_latencies();
            d.sort();
            r.decision_p50 = percentile(&d, 0.50);
            r.decision_p99 = percentile(&d, 0.99);
        }
        r
    });
    for o in orderers {
        o.stop().await;
    }
    result
}

async fn drive(opts: &BenchOptions, net: &devnet::DevNet, ports: &[u16]) -> Result<BenchReport> {
    let roots = std::fs::read(&net.tls_roots).map_err(|e| Error::io("read", &net.tls_roots, e))?;
    let client =
        load_signing_identity(&net.client_msp, &net.client_msp_id).map_err(|e| Error::Config {
            reason: format!("client identity: {e}"),
        })?;
    // Pre-sign the load so signing is not measured.
    let overhead = transaction_envelope(&client, "bench", &[0; 24], Vec::new())?.encoded_len();
    let data = opts.envelope_bytes.saturating_sub(overhead + 4);
    let mut envelopes = Vec::with_capacity(opts.envelopes);
    let mut tx_ids = Vec::with_capacity(opts.envelopes);
    for i in 0..opts.envelopes as u64 {
        let mut nonce = [0u8; 24];
        nonce[..8].copy_from_slice(&i.to_be_bytes());
        let e = transaction_envelope(&client, "bench", &nonce, vec![0x42; data])?;
        tx_ids.push(medledger_proto::TxId::compute(&nonce, client.serialized()).to_string());
        envelopes.push(e);
    }
    let mean_size =
        envelopes.iter().map(Message::encoded_len).sum::<usize>() / envelopes.len().max(1);

    // Observe blocks on orderer 1.
    let mut observer = OrdererClient::connect("127.0.0.1", ports[0], &roots).await?;
    let mut blocks = observer
        .deliver(seek_envelope(&client, "bench", 1, u64::MAX)?)
        .await?;
    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let total = envelopes.len();
    let start = Instant::now();

    // Submit over `clients` streams, spread over the orderers.
    let streams = opts.clients.max(1);
    let mut chunks: Vec<Vec<(String, medledger_proto::common::Envelope)>> =
        vec![Vec::new(); streams];
    for (i, (tx, e)) in tx_ids.into_iter().zip(envelopes).enumerate() {
        chunks[i % streams].push((tx, e));
    }
    let mut tasks = Vec::new();
    for (k, chunk) in chunks.into_iter().enumerate() {
        let port = ports[k % ports.len()];
        let roots = roots.clone();
        let stamps = submitted.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = OrdererClient::connect("127.0.0.1", port, &roots).await?;
            let stream = tokio_stream::iter(chunk).map(move |(tx, e)| {
                if let Ok(mut s) = stamps.lock() {
                    s.insert(tx, Instant::now());
                }
                e
            });
            c.broadcast_stream(stream).await
        }));
    }

    let mut latencies = Vec::with_capacity(total);
    let mut seen = 0usize;
    let mut block_count = 0u64;
    let mut last = start;
    while seen < total {
        let msg = tokio::time::timeout(Duration::from_secs(60), blocks.message())
            .await
            .map_err(|_| Error::Transport {
                reason: "no block for 60 s".into(),
            })?
            .map_err(|e| Error::Transport {
                reason: e.to_string(),
            })?;
        let Some(deliver_response::Type::Block(b)) = msg.and_then(|m| m.r#type) else {
            break;
        };
        let now = Instant::now();
        last = now;
        block_count += 1;
        let stamps = submitted.lock().map(|s| s.clone()).unwrap_or_default();
        for tx in medledger_orderer::node::block_tx_ids(&b) {
            seen += 1;
            if let Some(t) = stamps.get(&tx) {
                latencies.push(now.saturating_duration_since(*t));
            }
        }
    }
    let mut rejected = 0;
    for t in tasks {
        let responses = t.await.map_err(|e| Error::Transport {
            reason: e.to_string(),
        })??;
        rejected += responses
            .iter()
            .filter(|r| r.status != Status::Success as i32)
            .count();
    }
    latencies.sort();
    let elapsed = last.saturating_duration_since(start);
    Ok(BenchReport {
        orderers: ports.len(),
        envelopes: seen,
        envelope_bytes: mean_size,
        blocks: block_count,
        elapsed,
        envelopes_per_second: seen as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_p50: percentile(&latencies, 0.50),
        latency_p99: percentile(&latencies, 0.99),
        decision_p50: Duration::ZERO,
        decision_p99: Duration::ZERO,
        rejected,
    })
}
