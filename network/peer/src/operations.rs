//! The operations endpoint (Fabric's operations service): HTTP `/healthz`, `/metrics`
//! (Prometheus text format) and `/version`, on its own listener, for operators and monitoring.
//! No patient data in any metric label: labels are channel ids, validation codes and chaincode
//! names.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use medledger_proto::ChannelId;
use medledger_proto::protos::TxValidationCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::info;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TxLabels {
    channel: String,
    validation_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChaincodeLabels {
    chaincode: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The peer's metrics, on their own registry. Names follow Fabric's where it has one.
///
/// | metric | type | labels | unit |
/// |---|---|---|---|
/// | `ledger_blocks_committed_total` | counter | channel | blocks |
/// | `ledger_transaction_count_total` | counter | channel, validation_code | transactions |
/// | `ledger_blockchain_height` | gauge | channel | blocks |
/// | `peer_channel_config_sequence` | gauge | channel | config sequence the peer's services run with |
/// | `endorser_proposal_duration_seconds` | histogram | channel | seconds |
/// | `chaincode_execute_duration_seconds` | histogram | chaincode | seconds |
#[derive(Debug)]
pub struct PeerMetrics {
    registry: Registry,
    blocks: Family<ChannelLabels, Counter>,
    txs: Family<TxLabels, Counter>,
    height: Family<ChannelLabels, Gauge>,
    config_sequence: Family<ChannelLabels, Gauge>,
    endorsement: Family<ChannelLabels, Histogram, fn() -> Histogram>,
    chaincode: Family<ChaincodeLabels, Histogram, fn() -> Histogram>,
}

impl Default for PeerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerMetrics {
    /// Registers every metric on a new registry.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let blocks = Family::<ChannelLabels, Counter>::default();
        let txs = Family::<TxLabels, Counter>::default();
        let height = Family::<ChannelLabels, Gauge>::default();
        let config_sequence = Family::<ChannelLabels, Gauge>::default();
        let endorsement =
            Family::<ChannelLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let chaincode =
            Family::<ChaincodeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "ledger_blocks_committed",
            "Blocks committed",
            blocks.clone(),
        );
        registry.register(
            "ledger_transaction_count",
            "Transactions committed, by validation code",
            txs.clone(),
        );
        registry.register(
            "ledger_blockchain_height",
            "Height of the chain in blocks",
            height.clone(),
        );
        registry.register(
            "peer_channel_config_sequence",
            "Sequence of the channel configuration the peer's services were started with",
            config_sequence.clone(),
        );
        registry.register(
            "endorser_proposal_duration_seconds",
            "Time to endorse a proposal",
            endorsement.clone(),
        );
        registry.register(
            "chaincode_execute_duration_seconds",
            "Time to execute a chaincode invocation",
            chaincode.clone(),
        );
        PeerMetrics {
            registry,
            blocks,
            txs,
            height,
            config_sequence,
            endorsement,
            chaincode,
        }
    }

    /// Records a committed block: one block, its transactions by code, the new height.
    pub fn block_committed(&self, channel: &ChannelId, height: u64, codes: &[TxValidationCode]) {
        let labels = ChannelLabels {
            channel: channel.to_string(),
        };
        self.blocks.get_or_create(&labels).inc();
        for code in codes {
            self.txs
                .get_or_create(&TxLabels {
                    channel: channel.to_string(),
                    validation_code: code.as_str_name().to_owned(),
                })
                .inc();
        }
        self.set_height(channel, height);
    }

    /// Sets the ledger height of `channel`.
    pub fn set_height(&self, channel: &ChannelId, height: u64) {
        self.height
            .get_or_create(&ChannelLabels {
                channel: channel.to_string(),
            })
            .set(i64::try_from(height).unwrap_or(i64::MAX));
    }

    /// Sets the sequence of the channel configuration the peer's services run with.
    pub fn set_config_sequence(&self, channel: &ChannelId, sequence: u64) {
        self.config_sequence
            .get_or_create(&ChannelLabels {
                channel: channel.to_string(),
            })
            .set(i64::try_from(sequence).unwrap_or(i64::MAX));
    }

    /// Records the duration of one endorsement, seconds.
    pub fn observe_endorsement(&self, channel: &ChannelId, seconds: f64) {
        self.endorsement
            .get_or_create(&ChannelLabels {
                channel: channel.to_string(),
            })
            .observe(seconds);
    }

    /// Records the duration of one chaincode execution, seconds.
    pub fn observe_chaincode(&self, chaincode: &str, seconds: f64) {
        self.chaincode
            .get_or_create(&ChaincodeLabels {
                chaincode: chaincode.to_owned(),
            })
            .observe(seconds);
    }

    /// The metrics in Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A named health check: `Ok` when healthy, else a short reason (no patient data).
pub type HealthCheck = Box<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

/// What the operations endpoint serves.
pub struct Operations {
    metrics: Arc<PeerMetrics>,
    checks: Vec<(String, HealthCheck)>,
    version: String,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Operations {
    /// Serves `metrics`, version = this crate's version.
    pub fn new(metrics: Arc<PeerMetrics>) -> Self {
        Operations {
            metrics,
            checks: Vec::new(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// Adds a health check reported by `/healthz` under `name`.
    pub fn with_check(mut self, name: impl Into<String>, check: HealthCheck) -> Self {
        self.checks.push((name.into(), check));
        self
    }

    /// Starts serving on `listener` until the returned handle is shut down or dropped.
    ///
    /// # Errors
    /// [`Error::Io`] if the listener has no local address.
    pub fn serve(self, listener: TcpListener) -> Result<OperationsHandle> {
        let addr = listener.local_addr().map_err(|error| Error::Io {
            what: "operations endpoint",
            error,
        })?;
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/version", get(version))
            .with_state(Arc::new(self));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(target: "peer::operations", error = %e, "operations endpoint stopped");
            }
        });
        info!(target: "peer::operations", %addr, "operations endpoint listening");
        Ok(OperationsHandle {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running operations endpoint.
#[derive(Debug)]
pub struct OperationsHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl OperationsHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for OperationsHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Fabric's `/healthz`: 200 `{"status":"OK"}`, or 503 with the failed checks.
async fn healthz(State(ops): State<Arc<Operations>>) -> impl IntoResponse {
    let failed: Vec<serde_json::Value> = ops
        .checks
        .iter()
        .filter_map(|(name, check)| {
            check()
                .err()
                .map(|reason| serde_json::json!({"component": name, "reason": reason}))
        })
        .collect();
    let time = unix_now();
    if failed.is_empty() {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"status": "OK", "time": time}).to_string(),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"status": "Service Unavailable", "time": time, "failed_checks": failed})
                .to_string(),
        )
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn metrics(State(ops): State<Arc<Operations>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.metrics.encode(),
    )
}

/// Fabric's `/version`: `{"Version": ..., "CommitSHA": ...}`.
async fn version(State(ops): State<Arc<Operations>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"Version": ops.version, "CommitSHA": option_env!("MEDLEDGER_COMMIT").unwrap_or("")})
            .to_string(),
    )
}
