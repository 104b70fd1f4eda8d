//! `medledger ledger verify`: check a stopped peer's ledger against a replay of its chain.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use medledger_peer::definitions::{InMemoryDefinitions, LedgerDefinitions};
use medledger_peer::node::config::PeerConfig;
use prost::Message;

/// Ledger subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check a peer's chain (hashes, orderer signatures), its state against a replay of the
    /// blocks, and its private data against the on-chain hashes; report the first divergence.
    /// The peer must be stopped (`network down`).
    Verify(VerifyArgs),
}

/// `ledger verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The peer's configuration file.
    #[arg(long, conflicts_with_all = ["node", "dir"])]
    pub config: Option<PathBuf>,
    /// A peer of the network in `--dir`, e.g. `peer0.org1`.
    #[arg(long)]
    pub node: Option<String>,
    /// Network directory (default $MEDLEDGER_HOME, else ./medledger-net).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Channel (default: the peer's first channel).
    #[arg(long)]
    pub channel: Option<String>,
}

/// Runs a ledger subcommand; exits non-zero on a divergence.
///
/// # Errors
/// Unreadable configuration, storage failures, or the divergence found.
pub fn run(cmd: LedgerCommand) -> Result<()> {
    let LedgerCommand::Verify(a) = cmd;
    let config = match (&a.config, &a.node) {
        (Some(c), _) => c.clone(),
        (None, Some(node)) => medledger_devnet::default_dir(a.dir.clone())
            .join("nodes")
            .join(node)
            .join("peer.yaml"),
        (None, None) => bail!("give --config peer.yaml, or --node NAME (with --dir)"),
    };
    let cfg = PeerConfig::load(&config).with_context(|| format!("loading {}", config.display()))?;
    let channel = match a.channel {
        Some(c) => c,
        None => {
            let genesis = &cfg.channels[0].genesis_block;
            let block = medledger_proto::common::Block::decode(
                std::fs::read(genesis)
                    .with_context(|| format!("reading {}", genesis.display()))?
                    .as_slice(),
            )
            .context("the genesis block does not decode")?;
            medledger_channel::ChannelConfig::from_config_block(&block)?
                .channel_id()
                .to_string()
        }
    };
    let fallback = Arc::new(InMemoryDefinitions::new());
    for cc in &cfg.chaincodes {
        fallback.insert(cc.definition()?);
    }
    // The replay starts from the genesis block: committed definitions take effect as the
    // replayed `_lifecycle` transactions commit, as they did on the peer.
    let definitions = Arc::new(LedgerDefinitions::new(fallback));
    // Parsed before it names a directory.
    let channel: medledger_proto::ChannelId = channel.parse().context("--channel")?;
    let ledger = cfg.data_dir.join("ledgers").join(channel.as_str());
    if !ledger.is_dir() {
        bail!("no ledger of channel {channel} at {}", ledger.display());
    }
    let scratch = cfg
        .data_dir
        .join(format!("verify-scratch-{}", std::process::id()));
    let result = medledger_peer::verify::verify_ledger(
        &ledger,
        &channel,
        definitions,
        &cfg.msp_id,
        &scratch,
    );
    let _ = std::fs::remove_dir_all(&scratch);
    match result.context("verifying (is the peer stopped?)")? {
        Ok(v) => {
            println!(
                "{} channel {channel}: OK — {} blocks (hashes, orderer signatures, replayed validation and commit hashes), world state equal to the replay, {} private values match their on-chain hashes",
                cfg.name, v.height, v.private_values
            );
            Ok(())
        }
        Err(d) => bail!("{} channel {channel}: {d}", cfg.name),
    }
}
