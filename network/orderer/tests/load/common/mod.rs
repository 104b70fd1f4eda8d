//! Shared by the orderer's load tests (`broadcast_limits`, `cluster_slow_reader`): the
//! process's memory, transaction ids, and a watcher that records when each transaction
//! appears in orderer 1's chain and the process's peak memory, for submit → ordered
//! latencies.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medledger_devnet::orderers::{self as devnet, DevNet, DevNetSpec};
use medledger_orderer::config::{ConsensusSection, OrdererConfig};
use medledger_orderer::server::RunningOrderer;
use medledger_proto::common::Envelope;
use medledger_proto::medledger::channel::BatchConfig;

pub(crate) const CHANNEL: &str = "ehr";

/// When each transaction was first submitted, by tx id.
pub(crate) type Submitted = Arc<Mutex<HashMap<String, Instant>>>;

/// The latency counted for a transaction never ordered.
pub(crate) const NOT_ORDERED: Duration = Duration::from_secs(3600);

/// Logs to the test's output as `RUST_LOG` asks (`RUST_LOG=orderer=debug` shows what the
/// orderers do).
pub(crate) fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Generates a dev network of 4 orderers on 127.0.0.1 in `dir` (blocks of at most 500
/// envelopes, 2 MiB preferred, cut after 100 ms); returns their gRPC ports, the network and
/// their configurations.
pub(crate) fn dev_network(
    dir: &std::path::Path,
    consensus: ConsensusSection,
) -> (Vec<u16>, DevNet, Vec<OrdererConfig>) {
    let ports = devnet::free_ports("127.0.0.1", 4).unwrap();
    let net = devnet::generate(
        dir,
        &DevNetSpec {
            channel_id: CHANNEL.into(),
            host: "127.0.0.1".into(),
            ports: ports.clone(),
            operations_ports: None,
            batch: BatchConfig {
                max_message_count: 500,
                preferred_max_bytes: 0, // 2 MiB
                absolute_max_bytes: 0,  // 10 MiB
                batch_timeout_ms: 100,
            },
            consensus,
        },
    )
    .unwrap();
    let configs = net
        .orderer_configs
        .iter()
        .map(|p| OrdererConfig::load(p).unwrap())
        .collect();
    (ports, net, configs)
}

/// Resident set size of this process, bytes.
pub(crate) fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A Broadcast/Deliver client of the orderer on 127.0.0.1:`port`, trusting `roots` (PEM).
pub(crate) async fn connect(roots: Vec<u8>, port: u16) -> medledger_orderer::client::OrdererClient {
    medledger_orderer::client::OrdererClient::connect("127.0.0.1", port, &roots)
        .await
        .unwrap()
}

pub(crate) fn nonce() -> [u8; 24] {
    rand::random()
}

pub(crate) fn tx_id(e: &Envelope) -> String {
    medledger_channel::envelope::parse(e)
        .unwrap()
        .tx_id()
        .to_owned()
}

/// Watches the chain of the first orderer (when each transaction appears in it) and this
/// process's peak memory, every 20 ms.
pub(crate) struct ChainWatch {
    committed: Arc<Mutex<HashMap<String, Instant>>>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// What a [`ChainWatch`] saw.
pub(crate) struct Outcome {
    /// Submit → ordered latency of every submitted transaction, sorted ([`NOT_ORDERED`] for
    /// one never ordered).
    pub latencies: Vec<Duration>,
    /// Submitted transactions never ordered.
    pub unordered: usize,
    /// Peak memory of the process, bytes (at least the level the watch started from).
    pub peak_rss: u64,
    /// When each transaction seen was first in the chain.
    pub ordered: HashMap<String, Instant>,
}

/// The `q` quantile of sorted `v` (zero if empty).
pub(crate) fn quantile(v: &[Duration], q: f64) -> Duration {
    let i = ((v.len() as f64 * q).ceil() as usize).saturating_sub(1);
    v.get(i).copied().unwrap_or_default()
}

impl Outcome {
    /// The `q` quantile of the latencies (zero if none).
    pub(crate) fn percentile(&self, q: f64) -> Duration {
        quantile(&self.latencies, q)
    }

    pub(crate) fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }
}

impl ChainWatch {
    /// Starts watching `orderers[0]`; `rss_floor` is the memory level peaks start from.
    pub(crate) fn start(orderers: Arc<Vec<RunningOrderer>>, rss_floor: u64) -> Self {
        let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let peak = Arc::new(AtomicU64::new(rss_floor));
        let task = {
            let (committed, peak) = (committed.clone(), peak.clone());
            tokio::spawn(async move {
                let mut next = 1u64;
                loop {
                    peak.fetch_max(rss(), Ordering::Relaxed);
                    while next < orderers[0].height() {
                        let b = orderers[0].block(next).unwrap().unwrap();
                        let now = Instant::now();
                        let mut c = committed.lock().unwrap();
                        for tx in medledger_orderer::node::block_tx_ids(&b) {
                            c.entry(tx).or_insert(now);
                        }
                        next += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        ChainWatch {
            committed,
            peak,
            task,
        }
    }

    /// Waits up to `limit` for every transaction of `submitted` to be ordered, then stops
    /// watching.
    pub(crate) async fn finish(self, submitted: &Submitted, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        loop {
            let done = {
                let s = submitted.lock().unwrap();
                let c = self.committed.lock().unwrap();
                s.keys().all(|t| c.contains_key(t))
            };
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.task.abort();
        let s = submitted.lock().unwrap();
        let c = self.committed.lock().unwrap();
        let mut latencies: Vec<Duration> = s
            .iter()
            .map(|(tx, t0)| c.get(tx).map_or(NOT_ORDERED, |t1| t1.duration_since(*t0)))
            .collect();
        latencies.sort();
        Outcome {
            unordered: s.keys().filter(|t| !c.contains_key(*t)).count(),
            latencies,
            peak_rss: self.peak.load(Ordering::Relaxed),
            ordered: c.clone(),
        }
    }
}

/// The load tests measure this process's memory and latencies, and the test harness runs the
/// tests of one binary on parallel threads: each load test holds this turn while it runs.
pub(crate) async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}
