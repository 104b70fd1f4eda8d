//! Command-line interface: argument types (clap) and dispatch.

pub mod ca;
pub mod chaincode;
pub mod connect;
pub mod ehr;
pub mod experiment;
pub mod fhir;
pub mod ledger;
pub mod lifecycle;
pub mod msp;
pub mod network;
pub mod orderer;
pub mod org;
pub mod peer;

use clap::{Parser, Subcommand};

/// Medledger: a permissioned blockchain for electronic health records, built the way
/// Hyperledger Fabric is built.
#[derive(Debug, Parser)]
#[command(name = "medledger", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Certificate authority: init and serve a CA, enroll, register, revoke, CRLs.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Inspect and validate identities in MSP folders.
    #[command(subcommand)]
    Msp(msp::MspCommand),
    /// BFT ordering service: run an orderer, generate a dev cluster, benchmark.
    #[command(subcommand)]
    Orderer(orderer::OrdererCommand),
    /// A whole network from one configuration file: up, down, status (docs/network.md).
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// The demo identities of a network (names for `--as`).
    Identities(network::DirArgs),
    /// Benchmark a running network through its gateway: committed tx/s, submit→commit
    /// latency, CPU per transaction (docs/performance.md).
    Bench(BenchArgs),
    /// Check a stopped peer's ledger: chain, orderer signatures, state against a replay,
    /// private data against the on-chain hashes.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Peer node: ledgers, endorser, gateway, Deliver (see docs/peer.md).
    #[command(subcommand)]
    Peer(peer::PeerCommand),
    /// EHR application: import FHIR bundles, audited reads, consent, audit, break-glass.
    #[command(subcommand)]
    Ehr(ehr::EhrCommand),
    /// Invoke or query a chaincode through a peer's gateway.
    #[command(subcommand)]
    Chaincode(chaincode::ChaincodeCommand),
    /// Chaincode lifecycle on the channel: approve a definition for your organization,
    /// commit it, query it, check who approved it (Fabric's `peer lifecycle chaincode`).
    #[command(subcommand)]
    Lifecycle(lifecycle::LifecycleCommand),
    /// Channel organizations: add one by a configuration update signed by a majority of the
    /// existing organizations' admins (Fabric's channel config update).
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// FHIR R4 API of an organization: serve it, get a bearer token, authorize a server's
    /// delegate enrollment (docs/fhir.md).
    #[command(subcommand)]
    Fhir(fhir::FhirCommand),
    /// Experiments on the real components over a simulated network: `experiment malicious`
    /// (docs/experiment-malicious.md).
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
}

impl Command {
    /// Whether the command prints its result and exits (a client, an operator's command), as
    /// opposed to serving until stopped (`peer …`, `orderer …`, `ca serve`): the former end
    /// quietly when the reader of their output goes away.
    pub fn prints_and_exits(&self) -> bool {
        match self {
            Command::Peer(_) | Command::Orderer(_) => false,
            Command::Fhir(c) => !matches!(c, fhir::FhirCommand::Serve(_)),
            Command::Ca(c) => !matches!(c, ca::CaCommand::Serve(_)),
            _ => true,
        }
    }
}

/// Sets up `tracing` output on stderr.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs a parsed command.
///
/// # Errors
/// Whatever the command reports, with context for the user.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Ca(cmd) => runtime.block_on(ca::run(cmd)),
        Command::Chaincode(cmd) => runtime.block_on(chaincode::run(cmd)),
        Command::Ehr(cmd) => runtime.block_on(ehr::run(cmd)),
        Command::Lifecycle(cmd) => runtime.block_on(lifecycle::run(cmd)),
        Command::Msp(cmd) => msp::run(cmd),
        Command::Network(cmd) => network::run(cmd),
        Command::Identities(a) => network::identities(a),
        Command::Ledger(cmd) => ledger::run(cmd),
        Command::Bench(a) => runtime.block_on(bench(a)),
        Command::Orderer(cmd) => runtime.block_on(orderer::run(cmd)),
        Command::Peer(cmd) => runtime.block_on(peer::run(cmd)),
        Command::Org(cmd) => runtime.block_on(org::run(cmd)),
        Command::Experiment(cmd) => experiment::run(cmd),
        Command::Fhir(cmd) => runtime.block_on(fhir::run(cmd)),
    }
}

/// `medledger bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Workload: `create` (one CreateRecord transaction per FHIR Observation) or `read`
    /// (consent-checked reads by another organization).
    #[arg(long, value_enum, default_value = "create")]
    pub workload: medledger_bench::gateway::Workload,
    /// Operations to run.
    #[arg(long, default_value_t = 4000)]
    pub operations: usize,
    /// Operations in flight at most. The default, 512, keeps a block's worth of transactions
    /// (the dev network's `max_message_count` is 500) in flight, so that blocks are cut full
    /// rather than by the batch timer (Little's law: ~0.55 s × 900 tx/s ≈ 500).
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Offered load, operations/s (open loop); default: closed loop at `--concurrency`.
    #[arg(long)]
    pub rate: Option<f64>,
    /// FHIR bundles (default: $MEDLEDGER_EHR_BUNDLES or shared/data/ehr/bundles above the
    /// working directory).
    #[arg(long)]
    pub bundles: Option<std::path::PathBuf>,
    /// Network directory (default $MEDLEDGER_HOME, else ./medledger-net).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

async fn bench(a: BenchArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let bundles = a
        .bundles
        .or_else(medledger_devnet::find_sample_bundles)
        .context("no sample bundles found: pass --bundles DIR")?;
    let report = medledger_bench::gateway::run(&medledger_bench::gateway::BenchOptions {
        dir: medledger_devnet::default_dir(a.dir),
        bundles: vec![bundles],
        workload: a.workload,
        operations: a.operations,
        concurrency: a.concurrency,
        rate: a.rate,
    })
    .await?;
    println!("{report}");
    Ok(())
}
