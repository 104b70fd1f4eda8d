//! `medledger peer ...`: run a peer node.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use medledger_peer::node::RunOutcome;
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
            println!(
                "peer {} ({}) starting on {}{}",
                cfg.name,
                cfg.msp_id,
                cfg.listen,
                cfg.operations_listen
                    .as_ref()
                    .map(|a| format!(", operations on {a}"))
                    .unwrap_or_default()
            );
            match medledger_peer::node::run(&cfg, super::orderer::shutdown_signal())
                .await
                .context("running the peer")?
            {
                RunOutcome::Stopped => Ok(()),
                RunOutcome::ConfigChanged => {
                    // Start afresh with the new configuration: the same executable and
                    // arguments in this process (same pid, same log), nothing left over from
                    // the previous instance (open streams, ledger locks).
                    use std::os::unix::process::CommandExt;
                    let exe = std::env::current_exe().context("locating the executable")?;
                    let err = std::process::Command::new(exe)
                        .args(std::env::args_os().skip(1))
                        .exec();
                    Err(anyhow::anyhow!("restarting the peer: {err}"))
                }
            }
        }
    }
}
