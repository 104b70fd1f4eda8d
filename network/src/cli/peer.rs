//! `medledger peer ...`: run a peer node.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use medledger_peer::node::config::PeerConfig;

/// Peer subcommands.
#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Run a peer until interrupted (Ctrl-C / SIGTERM): ledgers, committer, endorser with
    /// sandboxed chaincode, gateway, Deliver, private data, operations.
    Start(StartArgs),
}

/// `peer start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The peer's configuration file (see docs/peer.md).
    #[arg(long)]
    pub config: PathBuf,
}

/// Runs a peer subcommand.
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub async fn run(cmd: PeerCommand) -> Result<()> {
    match cmd {
        PeerCommand::Start(a) => {
            let cfg = PeerConfig::load(&a.config)
                .with_context(|| format!("loading {}", a.config.display()))?;
            let running = medledger_peer::node::start(&cfg)
                .await
                .context("starting the peer")?;
            println!(
                "peer {} ({}) listening on {}{}",
                cfg.name,
                cfg.msp_id,
                running.local_addr(),
                running
                    .operations_addr()
                    .map(|a| format!(", operations on {a}"))
                    .unwrap_or_default()
            );
            running.run_until(super::orderer::shutdown_signal()).await;
            Ok(())
        }
    }
}
