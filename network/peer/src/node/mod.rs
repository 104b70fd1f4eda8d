//! A whole peer node, as `medledger peer start` runs it: for every joined channel a RocksDB
//! ledger, its committer and a puller of blocks from the orderers; the endorser with the
//! sandboxed chaincode runtime and the durable transient store; the gateway; Deliver; the
//! private-data service and reconciler; the operations endpoint. One gRPC port (TLS) serves
//! `protos.Endorser`, `gateway.Gateway`, `protos.Deliver` and `medledger.privdata`, as a
//! Fabric peer serves its services on one port.
//!
//! Discovery: the peers of every organization come from the channel configuration
//! (`Organization.peers`); this peer recognises itself by its external endpoint and serves its
//! own endorsements in-process. Orderers are the channel's consenters.

mod build;
pub mod commits;
pub mod pull;

/// `peer.yaml`: the types are [`medledger_peer_config::config`]'s (re-exported here); what
/// turns its sections into the services' settings is the peer's.
pub mod config {
    use std::time::Duration;

    use medledger_gateway_server::GatewayConfig;

    use super::pull::PullConfig;

    pub use medledger_peer_config::config::*;

    /// `gateway` as the gateway's settings.
    pub fn gateway_config(section: &GatewaySection) -> GatewayConfig {
        GatewayConfig {
            concurrency_limit: section.concurrency_limit,
            endorse_timeout: Duration::from_millis(section.endorse_timeout_ms),
            submit_timeout: Duration::from_millis(section.submit_timeout_ms),
            commit_status_timeout: Duration::from_millis(section.commit_status_timeout_ms),
            max_commit_status_waits: section.max_commit_status_waits,
            max_event_streams: section.max_event_streams,
            mismatch_wait: Duration::from_millis(section.mismatch_wait_ms),
        }
    }

    /// `deliver_client` as the block puller's settings.
    pub fn pull_config(section: &DeliverClientSection) -> PullConfig {
        PullConfig {
            block_censorship_timeout: Duration::from_millis(section.block_censorship_timeout_ms),
            reconnect_delay: Duration::from_millis(section.reconnect_delay_ms),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// peer.yaml's defaults are the services' own.
        #[test]
        fn section_defaults_are_the_services_defaults() {
            assert_eq!(
                gateway_config(&GatewaySection::default()),
                GatewayConfig::default()
            );
            assert_eq!(
                pull_config(&DeliverClientSection::default()).block_censorship_timeout,
                Duration::from_secs(5)
            );
            let limits = LimitsSection::default();
            assert_eq!(
                limits.endorser_concurrency,
                medledger_endorser::DEFAULT_ENDORSER_CONCURRENCY
            );
            assert_eq!(
                limits.deliver_concurrency,
                crate::deliver::DEFAULT_MAX_STREAMS
            );
            assert_eq!(
                SandboxSection::default().max_tasks,
                medledger_runtime::sandbox::Limits::default().max_tasks
            );
        }
    }
}
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use medledger_endorser::RuntimeExecutor;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::committer::Committer;
use crate::error::Result;
use crate::operations::OperationsHandle;
pub use build::DefinitionPolicies;
use build::{Components, protect_process};
use config::PeerConfig;

/// Largest gRPC message accepted (Fabric's peer default `maxRecvMsgSize`, 100 MiB); larger
/// requests are refused with `RESOURCE_EXHAUSTED` (see [`oversize_as_resource_exhausted`]).
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

/// Rewrites tonic's answer to an oversize request (`OUT_OF_RANGE`, "decoded message length
/// too large", sent trailers-only) to the code gRPC's reference implementations and Fabric's
/// peers give, `RESOURCE_EXHAUSTED`, so Fabric clients see what they expect.
fn oversize_as_resource_exhausted<B>(
    mut response: tonic::codegen::http::Response<B>,
) -> tonic::codegen::http::Response<B> {
    let headers = response.headers_mut();
    let oversize = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| {
            m.contains("message%20length%20too%20large") || m.contains("message length too large")
        });
    if oversize && headers.get("grpc-status").is_some_and(|s| s == "11") {
        headers.insert(
            "grpc-status",
            tonic::codegen::http::HeaderValue::from_static("8"),
        );
    }
    response
}

/// A running peer; stop it with [`RunningPeer::stop`].
pub struct RunningPeer {
    addr: SocketAddr,
    operations: Option<OperationsHandle>,
    committers: Vec<Arc<Committer>>,
    /// Configuration sequence of each channel (as `committers`) the services were built with.
    config_sequences: Vec<u64>,
    executor: Arc<RuntimeExecutor>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningPeer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningPeer {
    /// The gRPC address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operations endpoint's address, if enabled.
    pub fn operations_addr(&self) -> Option<SocketAddr> {
        self.operations.as_ref().map(OperationsHandle::local_addr)
    }

    /// Ledger height of `channel`, if joined.
    pub fn height(&self, channel: &str) -> Option<u64> {
        self.committers
            .iter()
            .find(|c| c.channel_id() == channel)
            .map(|c| c.ledger().height())
    }

    /// Stops serving, pulling and reconciling, stops chaincode processes, and waits.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for mut t in self.tasks.drain(..) {
            // The gRPC server's graceful shutdown waits for open streams (Deliver, chaincode
            // events, a commit-status wait): bounded, then aborted.
            if tokio::time::timeout(STOP_GRACE, &mut t).await.is_err() {
                warn!(target: "peer", "a task did not stop within {STOP_GRACE:?}; aborting it");
                t.abort();
                let _ = t.await;
            }
        }
        if let Some(ops) = self.operations.take() {
            ops.shutdown().await;
        }
        self.executor.runtime().shutdown().await;
        info!(target: "peer", "peer stopped");
    }

    /// Runs until `signal` resolves, then stops.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.stop().await;
    }

    /// Resolves once a joined channel's configuration changed since the peer started (a
    /// config block committed). The peer's TLS client roots, gateway discovery, private-data
    /// peers and lifecycle policy come from the configuration it started with, so it should
    /// then be restarted: [`run`] does that.
    pub async fn config_changed(&self) {
        let watches = self
            .committers
            .iter()
            .zip(self.config_sequences.iter().copied())
            .map(|(c, started)| {
                let mut rx = c.config_sequence();
                Box::pin(async move {
                    if rx.wait_for(|s| *s != started).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                })
            });
        let watches: Vec<_> = watches.collect();
        if watches.is_empty() {
            std::future::pending::<()>().await;
        }
        futures::future::select_all(watches).await;
    }
}

/// How long [`RunningPeer::stop`] waits for each task (the gRPC server's graceful shutdown
/// included) before aborting it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The signal came; the peer stopped.
    Stopped,
    /// A channel's configuration changed (an organization joined, a CRL changed); the peer
    /// stopped and should be started again so that every service runs with the new
    /// configuration (`medledger peer start` re-executes itself).
    ConfigChanged,
}

/// Runs a peer until `signal` resolves or a joined channel's configuration changes, then
/// stops it. TLS roots, gateway discovery, private-data peers and the lifecycle policy are
/// built at start, so after [`RunOutcome::ConfigChanged`] the caller starts the peer again
/// (Fabric's peer applies a config block to all of them as it commits it); clients see the
/// peer unavailable for that moment.
///
/// # Errors
/// [`start`]'s errors.
pub async fn run(
    cfg: &PeerConfig,
    signal: impl std::future::Future<Output = ()>,
) -> Result<RunOutcome> {
    let peer = start(cfg).await?;
    tokio::select! {
        () = signal => {
            peer.stop().await;
            Ok(RunOutcome::Stopped)
        }
        () = peer.config_changed() => {
            info!(target: "peer", name = %cfg.name, "channel configuration changed; restarting the peer");
            peer.stop().await;
            Ok(RunOutcome::ConfigChanged)
        }
    }
}

/// Starts a peer from its configuration: opens (or joins from the genesis blocks) the
/// channels' ledgers, binds the gRPC and operations listeners, and starts pulling blocks.
///
/// # Errors
/// [`crate::Error::Config`] for unusable configuration or key material,
/// [`crate::Error::Ledger`] for storage, [`crate::Error::Io`] for listeners.
pub async fn start(cfg: &PeerConfig) -> Result<RunningPeer> {
    protect_process(&cfg.data_dir)?;
    let mut c = Components::open(cfg)?;
    let (executor, endorser) = c.endorser();
    let services = c.services(&endorser)?;
    let addr = c.serve_grpc(endorser, services).await?;
    c.spawn_pullers()?;
    c.spawn_transient_expiry();
    let operations = c.serve_operations().await?;
    Ok(c.running(addr, operations, executor))
}
