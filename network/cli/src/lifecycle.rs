//! `medledger lifecycle approve|commit|querycommitted|checkcommitreadiness`: Fabric's
//! `peer lifecycle chaincode approveformyorg|commit|querycommitted|checkcommitreadiness`,
//! through a peer's gateway (docs/network.md, Chaincode lifecycle).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use medledger_gateway::client::Gateway;
use medledger_peer_config::lifecycle::{CollectionConfig, Definition};
use medledger_proto::{ChaincodeName, MspId};

use medledger_devnet::lifecycle as client;

/// Lifecycle subcommands.
#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// Approve a chaincode definition for the organization of `--as` (one of its admins),
    /// endorsed by that organization's peers.
    Approve(DefinitionArgs),
    /// Commit a definition a majority of the channel's organizations approved.
    Commit(DefinitionArgs),
    /// The definition committed on the channel, and which organizations approved it.
    Querycommitted(QueryArgs),
    /// Which organizations approved a definition.
    Checkcommitreadiness(DefinitionArgs),
}

/// Channel and connection.
#[derive(Debug, Args)]
pub struct Target {
    /// Channel (default with a network directory: its channel).
    #[arg(short = 'C', long = "channel", alias = "channelID")]
    pub channel: Option<String>,
    /// Output JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Connection.
    #[command(flatten)]
    pub gateway: super::connect::GatewayArgs,
}

/// A chaincode definition.
#[derive(Debug, Args)]
pub struct DefinitionArgs {
    /// Chaincode name (Fabric's rule: letters and digits, runs joined by single `-` or `_`;
    /// refused before anything is sent).
    #[arg(short = 'n', long)]
    pub name: ChaincodeName,
    /// Version label.
    #[arg(short = 'v', long, default_value = "1.0")]
    pub version: String,
    /// Sequence: 1 for the first definition, committed sequence + 1 for a change.
    #[arg(long)]
    pub sequence: u64,
    /// Endorsement policy, e.g. "AND('Org1MSP.peer','Org2MSP.peer')" (default: MAJORITY
    /// Endorsement).
    #[arg(long, alias = "signature-policy")]
    pub endorsement_policy: Option<String>,
    /// Private data collections: a YAML or JSON list of `{name, member_orgs,
    /// endorsement_policy, block_to_live}` (the `collections` of peer.yaml).
    #[arg(long)]
    pub collections_config: Option<PathBuf>,
    /// Channel and connection.
    #[command(flatten)]
    pub target: Target,
}

/// `querycommitted`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Chaincode name (Fabric's rule: letters and digits, runs joined by single `-` or `_`;
    /// refused before anything is sent).
    #[arg(short = 'n', long)]
    pub name: ChaincodeName,
    /// Channel and connection.
    #[command(flatten)]
    pub target: Target,
}

impl DefinitionArgs {
    fn definition(&self) -> Result<Definition> {
        let collections: Vec<CollectionConfig> = match &self.collections_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_yaml_ng::from_str(&text)
                    .with_context(|| format!("parsing the collections in {}", path.display()))?
            }
            None => Vec::new(),
        };
        let def = Definition {
            name: self.name.clone(),
            version: self.version.clone(),
            sequence: self.sequence,
            endorsement_policy: self.endorsement_policy.clone(),
            collections,
        };
        def.canonical()?;
        Ok(def)
    }
}

async fn connect(t: &Target) -> Result<(Gateway, String)> {
    let (gateway, network_channel) = t.gateway.connect().await?;
    let channel = t
        .channel
        .clone()
        .or(network_channel)
        .context("--channel is required with --peer")?;
    Ok((gateway, channel))
}

fn print_approvals(approvals: &std::collections::BTreeMap<MspId, bool>) -> String {
    approvals
        .iter()
        .map(|(o, a)| format!("{o}: {a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a lifecycle subcommand.
///
/// # Errors
/// Connection failures, refusals with the peer's reason, invalid transactions.
pub async fn run(cmd: LifecycleCommand) -> Result<()> {
    match cmd {
        LifecycleCommand::Approve(a) => {
            let def = a.definition()?;
            let (gateway, channel) = connect(&a.target).await?;
            let block = client::approve(&gateway, &channel, &def).await?;
            println!(
                "{} approved chaincode definition {} version {} sequence {} on channel {channel} (block {block})",
                gateway.identity().msp_id(),
                def.name,
                def.version,
                def.sequence
            );
        }
        LifecycleCommand::Commit(a) => {
            let def = a.definition()?;
            let (gateway, channel) = connect(&a.target).await?;
            let block = client::commit(&gateway, &channel, &def).await?;
            println!(
                "committed chaincode definition {} version {} sequence {} on channel {channel} (block {block})",
                def.name, def.version, def.sequence
            );
        }
        LifecycleCommand::Checkcommitreadiness(a) => {
            let def = a.definition()?;
            let (gateway, channel) = connect(&a.target).await?;
            let r = client::check_commit_readiness(&gateway, &channel, &def).await?;
            if a.target.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "Chaincode definition for chaincode '{}', sequence '{}' on channel '{channel}' approval status by org:",
                    def.name, def.sequence
                );
                for (org, approved) in &r.approvals {
                    println!("{org}: {approved}");
                }
            }
        }
        LifecycleCommand::Querycommitted(a) => {
            let (gateway, channel) = connect(&a.target).await?;
            let Some(c) = client::query_committed(&gateway, &channel, &a.name).await? else {
                anyhow::bail!(
                    "chaincode {} has no committed definition on channel {channel}",
                    a.name
                );
            };
            if a.target.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                let d = &c.definition;
                println!(
                    "Committed chaincode definition for chaincode '{}' on channel '{channel}':",
                    d.name
                );
                println!(
                    "Version: {}, Sequence: {}, Endorsement Policy: {}, Collections: [{}], Approvals: [{}]",
                    d.version,
                    d.sequence,
                    d.endorsement_policy
                        .as_deref()
                        .unwrap_or("MAJORITY Endorsement"),
                    d.collections
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    print_approvals(&c.approvals)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: LifecycleCommand,
    }

    #[test]
    fn definition_flags_and_collections_file() {
        let dir = tempfile::tempdir().unwrap();
        let colls = dir.path().join("collections.yaml");
        std::fs::write(
            &colls,
            "- { name: Org1MSPPHI, member_orgs: \"OR('Org1MSP.member')\", endorsement_policy: \"OR('Org1MSP.peer')\" }\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "lifecycle",
            "approve",
            "-n",
            "kv",
            "--sequence",
            "2",
            "--signature-policy",
            "OR('Org1MSP.peer','Org2MSP.peer')",
            "--collections-config",
            colls.to_str().unwrap(),
            "--as",
            "org1-admin",
        ])
        .unwrap();
        let LifecycleCommand::Approve(a) = cli.cmd else {
            panic!("not approve");
        };
        let d = a.definition().unwrap();
        assert_eq!(
            (d.name.as_str(), d.version.as_str(), d.sequence),
            ("kv", "1.0", 2)
        );
        assert_eq!(d.collections[0].name, "Org1MSPPHI");
        assert_eq!(a.target.gateway.as_identity.as_deref(), Some("org1-admin"));
        let bad = Cli::try_parse_from([
            "lifecycle",
            "commit",
            "-n",
            "kv",
            "--sequence",
            "1",
            "--endorsement-policy",
            "AND(",
        ])
        .unwrap();
        let LifecycleCommand::Commit(a) = bad.cmd else {
            panic!("not commit");
        };
        assert!(
            a.definition()
                .unwrap_err()
                .to_string()
                .contains("endorsement_policy")
        );
        // A name outside Fabric's rule is refused when the command line is parsed.
        for args in [
            &["lifecycle", "approve", "--sequence", "1", "-n", "bad name"][..],
            &["lifecycle", "querycommitted", "-n", "bad name"],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert!(e.to_string().contains("chaincode name"), "{e}");
        }
    }
}
