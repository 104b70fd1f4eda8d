//! `medledger msp ...`: inspect and check identities in Fabric MSP folders.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use medledger_msp::folder;
use medledger_msp::msp::{Msp, MspManager};

/// MSP subcommands.
#[derive(Debug, Subcommand)]
pub enum MspCommand {
    /// Validate the signing identity of an MSP folder against that folder's CAs and CRLs
    /// (or another MSP folder's, with --against) and print who it is.
    Show(ShowArgs),
}

/// `msp show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// MSP folder of the identity (`.../msp`).
    #[arg(short = 'M', long)]
    pub mspdir: PathBuf,
    /// MSP id.
    #[arg(long)]
    pub mspid: String,
    /// MSP folder that defines the organization (roots, CRLs, NodeOUs); default: --mspdir.
    #[arg(long)]
    pub against: Option<PathBuf>,
}

/// Runs an MSP subcommand.
///
/// # Errors
/// If the folder cannot be read or the identity is invalid (the error says why: expired,
/// revoked, unknown authority ...).
pub fn run(cmd: MspCommand) -> Result<()> {
    match cmd {
        MspCommand::Show(a) => {
            let identity = folder::load_signing_identity(&a.mspdir, &a.mspid)
                .with_context(|| format!("loading identity from {}", a.mspdir.display()))?;
            let org_dir = a.against.unwrap_or(a.mspdir);
            let msp = Msp::new(folder::load_msp_config(&org_dir, &a.mspid)?)?;
            let verified = MspManager::new([msp], 1)
                .validate(identity.serialized(), SystemTime::now())
                .context("identity is not valid under this MSP")?;
            let cert = verified.certificate();
            println!("valid identity of {}", verified.msp_id());
            println!("  enrollment id: {}", cert.common_name());
            println!(
                "  NodeOU:        {}",
                verified
                    .node_ou()
                    .map_or("(NodeOUs disabled)".to_owned(), |o| o.to_string())
            );
            println!("  serial:        {}", cert.serial_hex());
            for (name, value) in cert.attributes() {
                println!("  attribute:     {name}={value}");
            }
            Ok(())
        }
    }
}
