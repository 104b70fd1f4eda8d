//! `medledger orderer ...`: run a BFT orderer, generate a development ordering cluster,
//! benchmark ordering.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use medledger_bench::ordering::{self as bench, BenchOptions};
use medledger_devnet::orderers::{self as devnet, DevNetSpec};
use medledger_orderer::config::{ConsensusSection, OrdererConfig};
use medledger_proto::medledger::channel::BatchConfig;

/// Orderer subcommands.
#[derive(Debug, Subcommand)]
pub enum OrdererCommand {
    /// Run an orderer until interrupted (Ctrl-C / SIGTERM).
    Start(StartArgs),
    /// Generate a development ordering cluster (CAs, genesis block, orderer.yaml files).
    Devnet(DevnetArgs),
    /// Benchmark ordering: a cluster on loopback with TLS in this process; prints envelopes/s
    /// and submit→delivered latency.
    Bench(BenchArgs),
}

/// `orderer start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The orderer's configuration file (see docs/orderer.md).
    #[arg(long)]
    pub config: PathBuf,
}

/// `orderer devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Directory to write into (created).
    #[arg(long)]
    pub dir: PathBuf,
    /// Channel id.
    #[arg(long, default_value = "ehr")]
    pub channel: String,
    /// Host the orderers listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// gRPC ports, one per orderer (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [7050u16, 7051, 7052, 7053])]
    pub ports: Vec<u16>,
    /// Operations (/healthz, /metrics) ports, one per orderer.
    #[arg(long, value_delimiter = ',')]
    pub operations_ports: Vec<u16>,
    /// Max envelopes per block.
    #[arg(long, default_value_t = 500)]
    pub max_message_count: u32,
    /// Batch timeout, ms.
    #[arg(long, default_value_t = 250)]
    pub batch_timeout_ms: u64,
}

/// `orderer bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Orderers (n = 3f + 1).
    #[arg(long, default_value_t = 4)]
    pub orderers: usize,
    /// Envelopes to order.
    #[arg(long, default_value_t = 20_000)]
    pub envelopes: usize,
    /// Size of each serialized envelope, bytes.
    #[arg(long, default_value_t = 1024)]
    pub envelope_bytes: usize,
    /// Concurrent Broadcast streams.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Max envelopes per block.
    #[arg(long, default_value_t = 500)]
    pub max_message_count: u32,
    /// Batch timeout, ms.
    #[arg(long, default_value_t = 250)]
    pub batch_timeout_ms: u64,
}

/// Runs an orderer subcommand.
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub async fn run(cmd: OrdererCommand) -> Result<()> {
    match cmd {
        OrdererCommand::Start(a) => {
            let cfg = OrdererConfig::load(&a.config)
                .with_context(|| format!("loading {}", a.config.display()))?;
            if !medledger_orderer::memory::return_large_buffers_to_the_system() {
                tracing::info!("not glibc: the allocator's mapping threshold is left as it is");
            }
            let running = medledger_orderer::server::start(&cfg)
                .await
                .context("starting the orderer")?;
            println!(
                "orderer {} listening on {}{}",
                cfg.consenter_id,
                running.addr,
                running
                    .operations_addr
                    .map(|a| format!(", operations on {a}"))
                    .unwrap_or_default()
            );
            if running.run_until(shutdown_signal()).await {
                Ok(())
            } else {
                anyhow::bail!(
                    "orderer {} halted (its consensus core stopped; see the log above)",
                    cfg.consenter_id
                )
            }
        }
        OrdererCommand::Devnet(a) => {
            let ops = (!a.operations_ports.is_empty()).then_some(a.operations_ports.clone());
            let net = devnet::generate(
                &a.dir,
                &DevNetSpec {
                    channel_id: a.channel,
                    host: a.host,
                    ports: a.ports,
                    operations_ports: ops,
                    batch: BatchConfig {
                        max_message_count: a.max_message_count,
                        preferred_max_bytes: 0,
                        absolute_max_bytes: 0,
                        batch_timeout_ms: a.batch_timeout_ms,
                    },
                    consensus: ConsensusSection::default(),
                },
            )
            .context("generating the cluster")?;
            println!("genesis block: {}", net.genesis_block.display());
            for c in &net.orderer_configs {
                println!(
                    "start with: medledger orderer start --config {}",
                    c.display()
                );
            }
            println!(
                "client identity: {} ({}); TLS roots: {}",
                net.client_msp.display(),
                net.client_msp_id,
                net.tls_roots.display()
            );
            Ok(())
        }
        OrdererCommand::Bench(a) => {
            let report = bench::run(&BenchOptions {
                orderers: a.orderers,
                envelopes: a.envelopes,
                envelope_bytes: a.envelope_bytes,
                clients: a.clients,
                max_message_count: a.max_message_count,
                batch_timeout_ms: a.batch_timeout_ms,
                dir: None,
            })
            .await
            .context("benchmark")?;
            println!("{report}");
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
