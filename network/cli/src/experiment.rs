//! `medledger experiment …`: experiments on the real components over a simulated network
//! (`medledger_experiment`, docs/experiment-malicious.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use medledger_experiment::malicious::{self, Options, Scenario};

/// Experiments.
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// The malicious-node experiment: the same seeded EHR workload on networks with 0–4 of 4
    /// Byzantine orderers and 0–4 of 4 Byzantine endorsing organizations; prints the correct
    /// decision ratio, loss ratio, black holes and falsifications per share as a markdown
    /// table and writes it with a JSON of the numbers and a PNG plot into `--out`.
    Malicious(MaliciousArgs),
}

/// `medledger experiment malicious`.
#[derive(Debug, clap::Args)]
pub struct MaliciousArgs {
    /// Requests in the workload (whole patient chains of 5–6 requests: at least this many).
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Seed of the workload, the simulated network and the Byzantine choices.
    #[arg(long, default_value_t = 14)]
    pub seed: u64,
    /// Directory for `malicious.md`, `malicious.json` and `malicious.png` (created).
    #[arg(long, default_value = "experiment-malicious")]
    pub out: PathBuf,
}

/// Runs an experiment command.
///
/// # Errors
/// An experiment that cannot run, or output that cannot be written.
pub fn run(cmd: ExperimentCommand) -> anyhow::Result<()> {
    match cmd {
        ExperimentCommand::Malicious(a) => run_malicious(a),
    }
}

fn run_malicious(a: MaliciousArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let options = Options {
        requests: a.requests,
        seed: a.seed,
    };
    let scenarios = Scenario::sweep();
    eprintln!(
        "malicious-node experiment: {} scenarios × ≥{} requests, seed {}",
        scenarios.len(),
        a.requests,
        a.seed
    );
    let report = malicious::run(&options, &scenarios, |row| {
        eprintln!(
            "  {:<22} orderers {}/4 endorsers {}/4: CDR {:.1} %, PLR {:.1} %, falsifications {} ({} ms)",
            row.scenario.series.name(),
            row.scenario.byzantine_orderers,
            row.scenario.byzantine_orgs,
            row.metrics.cdr * 100.0,
            row.metrics.plr * 100.0,
            row.metrics.falsifications,
            row.metrics.wall_ms
        );
    })?;
    let table = report.markdown();
    println!("{table}");
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let md = a.out.join("malicious.md");
    std::fs::write(&md, &table).with_context(|| format!("writing {}", md.display()))?;
    let json = a.out.join("malicious.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let png = a.out.join("malicious.png");
    medledger_experiment::plot::draw(&report, &png)?;
    eprintln!(
        "wrote {}, {}, {} in {:.1} s",
        md.display(),
        json.display(),
        png.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
