//! `medledger org add`: an organization joins the network's channel by a configuration update
//! signed by a majority of the existing organizations' admins.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use medledger_devnet::{self as net, spec::OrgSpec};

/// Organization subcommands.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Add an organization to the channel: create its CA and identities, submit a
    /// configuration update adding its MSP signed by existing organizations' admins, and
    /// start its peers, which pull the chain from the orderers.
    Add(AddArgs),
    /// Publish an organization's CRL on the channel (after revoking identities at its CA):
    /// a configuration update signed by the organization's own admin.
    UpdateCrl(UpdateCrlArgs),
}

/// `org update-crl`.
#[derive(Debug, Args)]
pub struct UpdateCrlArgs {
    /// The organization (its short name in the network, e.g. `org2`).
    #[arg(long)]
    pub org: String,
    /// Revoke this identity of the organization at its CA first (repeatable), e.g.
    /// `--revoke org2-doctor`.
    #[arg(long)]
    pub revoke: Vec<String>,
    /// RFC 5280 revocation reason.
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
    /// Admin identities that sign the update (default: the organization's `<org>-admin`).
    #[arg(long = "sign-as")]
    pub sign_as: Vec<String>,
    /// Network directory.
    #[command(flatten)]
    pub dir: super::network::DirArgs,
    /// Longest wait for every peer to apply the update, seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// `org add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The organization (name, msp_id, domain, description, peers), as an entry of the
    /// network configuration's `organizations` (e.g. network/configs/org3.yaml).
    #[arg(long)]
    pub config: PathBuf,
    /// Network directory.
    #[command(flatten)]
    pub dir: super::network::DirArgs,
    /// Admin identities that sign the update, by name (repeatable; default: every existing
    /// organization's `<org>-admin`). The channel's Admins policy needs a majority.
    #[arg(long = "sign-as")]
    pub sign_as: Vec<String>,
    /// Do not start the new organization's peers.
    #[arg(long)]
    pub no_start: bool,
    /// Longest wait for the update to be committed and the peers to catch up, seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Runs an org subcommand.
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub async fn run(cmd: OrgCommand) -> Result<()> {
    match cmd {
        OrgCommand::Add(a) => {
            let dir = net::default_dir(a.dir.dir);
            let text = std::fs::read_to_string(&a.config)
                .with_context(|| format!("reading {}", a.config.display()))?;
            let org: OrgSpec = serde_yaml_ng::from_str(&text)
                .with_context(|| format!("parsing {}", a.config.display()))?;
            let exe = std::env::current_exe().context("locating the medledger executable")?;
            let msp_id = org.msp_id.clone();
            let report = net::org::add(
                &dir,
                org,
                &a.sign_as,
                &exe,
                !a.no_start,
                Duration::from_secs(a.timeout),
                |msg| println!("  {msg}"),
            )
            .await?;
            println!(
                "{msp_id} joined the channel in config block {} (configuration sequence {})",
                report.config_block, report.sequence
            );
            for p in &report.peers {
                println!("  {}: {}", p.name, p.config.display());
            }
            println!(
                "its identities: medledger identities --dir {}",
                dir.display()
            );
            Ok(())
        }
        OrgCommand::UpdateCrl(a) => {
            let dir = net::default_dir(a.dir.dir);
            let report = net::org::update_crl(
                &dir,
                &a.org,
                &a.revoke,
                &a.reason,
                &a.sign_as,
                Duration::from_secs(a.timeout),
                |msg| println!("  {msg}"),
            )
            .await?;
            println!(
                "{}'s CRL is in effect on the channel from config block {} (configuration sequence {}); {} certificate(s) revoked now",
                a.org,
                report.config_block,
                report.sequence,
                report.revoked.len()
            );
            Ok(())
        }
    }
}
