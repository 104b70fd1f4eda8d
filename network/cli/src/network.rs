//! `medledger network up|down|status` and `medledger identities`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use medledger_devnet::{self as net, generate::Identities, process};

/// Network subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Generate (first time) and start a network in the background; returns once every node
    /// is healthy. A second `up` restarts the same network with its ledgers intact.
    Up(UpArgs),
    /// Stop every node of the network cleanly.
    Down(DownArgs),
    /// Each node's process, health and ledger height.
    Status(DirArgs),
}

/// The network directory.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Network directory (default $MEDLEDGER_HOME, else ./medledger-net).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `network up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Network configuration (default: the built-in network/configs/dev.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Network directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// Longest wait for every node to be healthy, seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Only generate the material and configuration files (e.g. for a multi-host network:
    /// copy each node's directory to its machine); start nothing.
    #[arg(long)]
    pub generate_only: bool,
}

/// `network down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Network directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// Also delete the network directory (ledgers, keys, logs).
    #[arg(long)]
    pub purge: bool,
}

/// Runs a network subcommand.
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub fn run(cmd: NetworkCommand) -> Result<()> {
    match cmd {
        NetworkCommand::Up(a) => {
            let dir = net::default_dir(a.dir.dir);
            let exe = std::env::current_exe().context("locating the medledger executable")?;
            let report = net::up(
                &dir,
                a.config.as_deref(),
                &exe,
                Duration::from_secs(a.timeout),
                a.generate_only,
                |msg| println!("  {msg}"),
            )?;
            if !a.generate_only {
                // The spec's chaincodes approved by every organization's admin and committed
                // on the channel (first time; a restart finds them defined).
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(net::lifecycle::define_spec_chaincodes(
                    &dir,
                    &report.spec,
                    |msg| println!("  {msg}"),
                ))
                .context("defining the chaincodes on the channel")?;
                // Every time, not only on a new network: seeding does nothing once founded and
                // completes a founding that an earlier `up` left unfinished.
                rt.block_on(seed_ehr_governance(&dir, &report.spec))
                    .context("seeding the EHR governance of the founding organizations")?;
                // The FHIR servers act through the gateways on the defined chaincode.
                net::start_fhir_servers(&dir, &exe, Duration::from_secs(a.timeout), |msg| {
                    println!("  {msg}")
                })?;
            }
            if a.generate_only {
                println!(
                    "generated the network in {} (nothing started)",
                    dir.display()
                );
                for node in &report.nodes {
                    println!("  {}: {}", node.name, node.config.display());
                }
                return Ok(());
            }
            println!(
                "network {} is up in {} ({} orderers, {} peers)",
                report.spec.channel,
                dir.display(),
                report.spec.orderer_org.orderers.len(),
                report
                    .spec
                    .organizations
                    .iter()
                    .map(|o| o.peers.len())
                    .sum::<usize>()
            );
            for org in &report.spec.organizations {
                for p in &org.peers {
                    println!(
                        "  {} peer {} gateway grpcs://{}",
                        org.msp_id,
                        p.name,
                        p.endpoint()
                    );
                }
            }
            for org in &report.spec.organizations {
                if let Some(url) = net::generate::fhir_base_url(org) {
                    println!("  FHIR R4 API of {}: {url}", org.msp_id);
                }
            }
            if let Some(org) = report.spec.organizations.iter().find(|o| o.fhir.is_some())
                && let Some(url) = net::generate::fhir_base_url(org)
            {
                let id = format!("{}-doctor", org.name);
                let tls = dir.join("identities").join(&id).join("tls");
                println!(
                    "  curl --cacert {} --cert {} --key {} {url}/metadata",
                    tls.join("ca.crt").display(),
                    tls.join("cert.pem").display(),
                    tls.join("key.pem").display()
                );
            }
            println!(
                "  connection profile: {}",
                dir.join("connection.yaml").display()
            );
            println!("  TLS roots: {}", dir.join("tls-roots.pem").display());
            println!("  identities: medledger identities --dir {}", dir.display());
            println!("  logs: {}", dir.join("logs").display());
            Ok(())
        }
        NetworkCommand::Down(a) => {
            let dir = net::default_dir(a.dir.dir);
            let (_, nodes) = net::nodes_of(&dir)?;
            let stopped = process::stop_all(&dir, &nodes)?;
            println!("stopped {} node(s)", stopped.len());
            if a.purge {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("deleting {}", dir.display()))?;
                println!("deleted {}", dir.display());
            }
            Ok(())
        }
        NetworkCommand::Status(a) => {
            let dir = net::default_dir(a.dir);
            let (spec, nodes) = net::nodes_of(&dir)?;
            println!(
                "{:<16} {:>8} {:<10} {:>7}",
                "NODE", "PID", "HEALTH", "HEIGHT"
            );
            for node in &nodes {
                let pid = process::running_pid(&dir, node);
                let health = match (pid, process::healthy(node)) {
                    (None, _) => "stopped",
                    (Some(_), true) => "healthy",
                    (Some(_), false) => "unhealthy",
                };
                let height = pid
                    .and_then(|_| process::height(node, &spec.channel))
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "-".into());
                let pid = pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                println!("{:<16} {pid:>8} {health:<10} {height:>7}", node.name);
            }
            Ok(())
        }
    }
}

/// `medledger identities`: the demo identities of a network.
///
/// # Errors
/// No network in the directory.
pub fn identities(a: DirArgs) -> Result<()> {
    let dir = net::default_dir(a.dir);
    let ids = Identities::load(&dir)?;
    println!("{:<52} {:<9} {:<10} GATEWAY", "NAME (--as)", "MSP", "ROLE");
    for i in &ids.identities {
        println!(
            "{:<52} {:<9} {:<10} {}",
            i.name, i.msp_id, i.role, i.gateway
        );
    }
    Ok(())
}

/// For each EHR chaincode (one PHI collection per organization), stores each organization's
/// pseudonym key in its own PHI collection (ADR 0031; idempotent), then seeds governance
/// (ADR 0029): every founding organization's admin confirms the founding set of all of them,
/// which founds governance with each approving each one's break-glass and auditor authority.
/// Idempotent: a founded governance is left as it is, and a founding that failed half-way
/// (or a first `up` that stopped before it) is completed. Organizations that join the channel
/// later get those authorities only once a majority of the members admitted and approved them.
async fn seed_ehr_governance(dir: &std::path::Path, spec: &net::spec::NetworkSpec) -> Result<()> {
    use ehr_client::Seeded;
    for cc in spec
        .chaincodes
        .iter()
        .filter(|c| c.private_collection_per_org)
    {
        let mut admins = Vec::new();
        for org in &spec.organizations {
            let c = net::client::connect_as(dir, Some(&format!("{}-admin", org.name))).await?;
            let admin = ehr_client::EhrClient::new(
                c.gateway.network(&spec.channel).contract(cc.name.as_str()),
            );
            let key = net::generate::write_pseudonym_key(dir, &org.name)?;
            admin
                .set_pseudonym_key(&key)
                .await
                .with_context(|| format!("storing the pseudonym key of {}", org.msp_id))?;
            admins.push(admin);
        }
        let line = match ehr_client::seed_governance(&admins).await? {
            Seeded::Founded => format!(
                "founded by {} organizations, each holding break-glass and auditor authority",
                admins.len()
            ),
            Seeded::AlreadyFounded => "already founded".to_owned(),
            Seeded::FoundedOtherwise { members } => {
                format!(
                    "founded by hand (members {}), left as it is",
                    members.join(", ")
                )
            }
            Seeded::TooFewOrganizations => {
                "not founded: one organization alone never founds it, so nobody holds \
                 break-glass or auditor authority"
                    .to_owned()
            }
        };
        println!("  EHR governance of chaincode {}: {line}", cc.name);
    }
    Ok(())
}
