//! `medledger bench`: load on a running network (`network up`), measured end to end through
//! the gateway with the Rust SDK, as an application would see it.
//!
//! Workloads:
//! - `create`: FHIR record creation, one `CreateRecord` transaction per Observation of the
//!   sample data (~0.9 KB each), endorsed by the custodian (Org1), ordered by the BFT
//!   orderers, committed on every peer. Setup (not measured): register the patients and
//!   reserve the record ids (ADR 0020).
//! - `read`: consent-checked reads by another organization's doctor: `RequestRecordAccess`
//!   (submitted, endorsed by both organizations, audited) then `ReadRecord` (evaluated at the
//!   custodian). Setup: import one demo patient's bundle, the patient's consent for Org2.
//!
//! Reported: committed transactions per second, submit→commit latency percentiles, and CPU
//! seconds per committed transaction of every node process and of the client (from
//! `/proc/<pid>/stat`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ehr_chaincode::ids::Grantee;
use ehr_chaincode::model::Purpose;
use tokio::sync::Semaphore;

use ehr_client::bundle::{BundleResource, bundle_files, read_bundle};
use ehr_client::{ConsentGrant, EhrClient, ImportOptions, LedgerPatient, SubmitTimings, import};
use medledger_devnet::{self as net, client::connect_as, process};

/// Which load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// One `CreateRecord` transaction per FHIR Observation.
    Create,
    /// Consent-checked reads (`RequestRecordAccess` + `ReadRecord`).
    Read,
}

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Network directory.
    pub dir: PathBuf,
    /// FHIR bundles (files or directories).
    pub bundles: Vec<PathBuf>,
    /// Workload.
    pub workload: Workload,
    /// Operations to run.
    pub operations: usize,
    /// Operations in flight at most.
    pub concurrency: usize,
    /// Offered load, operations per second (open loop); `None`: closed loop at `concurrency`.
    pub rate: Option<f64>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Workload.
    pub workload: Workload,
    /// Offered load description.
    pub offered: String,
    /// Operations whose transaction committed VALID.
    pub committed: usize,
    /// Operations that failed (endorsement, ordering, invalid, read refused).
    pub failed: usize,
    /// Failures by reason.
    pub failures: BTreeMap<String, usize>,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Latencies of committed operations, sorted.
    pub latencies: Vec<Duration>,
    /// CPU seconds per committed transaction, per process (node name or `client`).
    pub cpu_per_tx: Vec<(String, f64)>,
    /// Mean time of each step of a committed transaction (`create` only).
    pub steps: Option<SubmitTimings>,
}

impl BenchReport {
    /// Committed transactions per second.
    pub fn tps(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile latency (0..=100).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(f, "workload:   {:?}", self.workload)?;
        writeln!(f, "offered:    {}", self.offered)?;
        writeln!(
            f,
            "committed:  {} ok, {} failed in {:.2} s = {:.0} tx/s",
            self.committed,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.tps()
        )?;
        writeln!(
            f,
            "latency:    p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms (submit→commit)",
            ms(self.percentile(50.0)),
            ms(self.percentile(95.0)),
            ms(self.percentile(99.0)),
            ms(self.latencies.last().copied().unwrap_or_default())
        )?;
        if let Some(t) = &self.steps {
            writeln!(
                f,
                "steps:      endorse {:.0} ms, submit {:.0} ms, commit wait {:.0} ms (means)",
                ms(t.endorse),
                ms(t.submit),
                ms(t.commit)
            )?;
        }
        for (reason, n) in &self.failures {
            writeln!(f, "failure:    {n} × {reason}")?;
        }
        write!(f, "CPU per committed tx (ms):")?;
        for (name, s) in &self.cpu_per_tx {
            write!(f, " {name} {:.2}", s * 1000.0)?;
        }
        let total: f64 = self.cpu_per_tx.iter().map(|(_, s)| s).sum();
        write!(f, " | total {:.2}", total * 1000.0)
    }
}

/// CPU time (user + system, all threads, living and exited) of a process so far, from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
fn cpu_time(pid: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Pids of the direct children of `parent` (a peer's chaincode processes).
fn children_of(parent: i32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| {
                    let rest = t[t.rfind(')')? + 1..].to_owned();
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// CPU time of every running node (a peer's chaincode processes apart, as
/// `<peer>/chaincode`) and of this process.
fn cpu_snapshot(dir: &Path) -> Result<HashMap<String, Duration>> {
    let (_, nodes) = net::nodes_of(dir)?;
    let mut out = HashMap::new();
    for node in &nodes {
        if let Some(pid) = process::running_pid(dir, node)
            && let Some(t) = cpu_time(&pid.to_string())
        {
            out.insert(node.name.clone(), t);
            let chaincode: Duration = children_of(pid).iter().filter_map(|c| cpu_time(c)).sum();
            if node.kind == net::generate::NodeKind::Peer {
                out.insert(format!("{}/chaincode", node.name), chaincode);
            }
        }
    }
    if let Some(t) = cpu_time("self") {
        out.insert("client".to_owned(), t);
    }
    Ok(out)
}

/// Observations of the sample bundles: (patient id, resource), in file order.
fn observations(paths: &[PathBuf], n: usize) -> Result<Vec<(String, BundleResource)>> {
    let mut out = Vec::new();
    for file in bundle_files(paths)? {
        let bundle = read_bundle(&std::fs::read(&file)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for r in bundle.resources {
            if r.resource_type == "Observation" {
                out.push((bundle.patient_id.clone(), r));
                if out.len() == n {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// Runs `ops` with at most `concurrency` in flight, open loop at `rate` if given; returns the
/// latencies of successes, failures by reason, and the elapsed time.
async fn drive<T, F, Fut>(
    ops: Vec<T>,
    concurrency: usize,
    rate: Option<f64>,
    op: F,
) -> (Vec<Duration>, BTreeMap<String, usize>, Duration)
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(ops.len());
    for (i, item) in ops.into_iter().enumerate() {
        if let Some(r) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / r);
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = op(item).await;
            drop(permit);
            r.map(|()| t0.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok(d)) => latencies.push(d),
            Ok(Err(e)) => *failures.entry(reason(&e)).or_insert(0) += 1,
            Err(_) => *failures.entry("task panicked".to_owned()).or_insert(0) += 1,
        }
    }
    latencies.sort();
    (latencies, failures, started.elapsed())
}

/// A failure's kind, without identifiers or data: words holding digits (ids, hashes,
/// numbers) become `…`.
fn reason(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "…"
            } else {
                w
            }
        })
        .take(16)
        .collect();
    words.join(" ")
}

/// Runs a benchmark against the network in `opts.dir`.
///
/// # Errors
/// No network, no sample data, setup failures.
pub async fn run(opts: &BenchOptions) -> Result<BenchReport> {
    match opts.workload {
        Workload::Create => bench_create(opts).await,
        Workload::Read => bench_read(opts).await,
    }
}

fn offered(opts: &BenchOptions) -> String {
    match opts.rate {
        Some(r) => format!(
            "open loop, {r:.0} ops/s, at most {} in flight",
            opts.concurrency
        ),
        None => format!("closed loop, {} in flight", opts.concurrency),
    }
}

fn cpu_per_tx(
    before: &HashMap<String, Duration>,
    after: &HashMap<String, Duration>,
    committed: usize,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = after
        .iter()
        .filter_map(|(name, t)| {
            let b = before.get(name)?;
            Some((
                name.clone(),
                t.saturating_sub(*b).as_secs_f64() / committed.max(1) as f64,
            ))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

async fn bench_create(opts: &BenchOptions) -> Result<BenchReport> {
    let admin = connect_as(&opts.dir, Some("org1-admin")).await?;
    let custodian = admin.identity.msp_id.clone();
    let client = Arc::new(EhrClient::new(
        admin.gateway.network(&admin.channel).contract("ehr"),
    ));
    // Setup: patients registered, ids reserved, records not yet created.
    let all = observations(&opts.bundles, usize::MAX)?;
    let mut by_patient: BTreeMap<String, Vec<BundleResource>> = BTreeMap::new();
    for (p, r) in all {
        by_patient.entry(p).or_default().push(r);
    }
    let mut ops = Vec::new();
    for (patient_id, resources) in by_patient {
        if ops.len() >= opts.operations {
            break;
        }
        let patient = LedgerPatient {
            ledger_id: client.resolve_patient(&patient_id, None).await?,
            patient_id,
        };
        if client.get_patient(&patient.ledger_id).await?.is_none() {
            client.register_patient(&patient.ledger_id, None).await?;
            // Reserving is endorsed by every organization: wait until each peer has the patient.
            net::settle(&opts.dir).await?;
        }
        let stored: std::collections::HashSet<String> = client
            .all_records(&patient.ledger_id)
            .await?
            .into_iter()
            .filter(|m| m.version > 0)
            .map(|m| m.record_id)
            .collect();
        let mut fresh = Vec::new();
        for chunk in resources.chunks(ehr_chaincode::fhir::MAX_BUNDLE_ENTRIES) {
            if ops.len() + fresh.len() >= opts.operations {
                break;
            }
            let ids: Vec<&str> = chunk.iter().map(|r| r.record_id.as_str()).collect();
            let ledger = client
                .ledger_ids(None, &patient.patient_id, &ids)
                .await?
                .records;
            let new: Vec<(&BundleResource, String)> = chunk
                .iter()
                .zip(ledger)
                .filter(|(_, l)| !stored.contains(l))
                .take(opts.operations - ops.len() - fresh.len())
                .collect();
            let reserve: Vec<&str> = new.iter().map(|(_, l)| l.as_str()).collect();
            if !reserve.is_empty() {
                client.reserve_records(&patient.ledger_id, &reserve).await?;
            }
            fresh.extend(new.into_iter().map(|(r, _)| r.clone()));
        }
        ops.extend(fresh.into_iter().map(|r| (patient.clone(), r)));
    }
    if ops.is_empty() {
        bail!(
            "every Observation of the sample data is already stored in this network; benchmark a fresh network (`medledger network up --dir <new dir>`)"
        );
    }
    let before = cpu_snapshot(&opts.dir)?;
    let c = client.clone();
    let steps = Arc::new(std::sync::Mutex::new((SubmitTimings::default(), 0u32)));
    let sum = steps.clone();
    let (latencies, failures, elapsed) =
        drive(ops, opts.concurrency, opts.rate, move |(patient, r)| {
            let c = c.clone();
            let custodian = custodian.clone();
            let sum = sum.clone();
            async move {
                let t = c
                    .create_record(&patient, &custodian, &r.bytes)
                    .await?
                    .timings;
                if let Ok(mut s) = sum.lock() {
                    s.0.endorse += t.endorse;
                    s.0.submit += t.submit;
                    s.0.commit += t.commit;
                    s.1 += 1;
                }
                Ok(())
            }
        })
        .await;
    let after = cpu_snapshot(&opts.dir)?;
    let mut report = report(opts, latencies, failures, elapsed, &before, &after);
    report.steps = steps
        .lock()
        .ok()
        .filter(|s| s.1 > 0)
        .map(|s| SubmitTimings {
            endorse: s.0.endorse / s.1,
            submit: s.0.submit / s.1,
            commit: s.0.commit / s.1,
        });
    Ok(report)
}

fn report(
    opts: &BenchOptions,
    latencies: Vec<Duration>,
    failures: BTreeMap<String, usize>,
    elapsed: Duration,
    before: &HashMap<String, Duration>,
    after: &HashMap<String, Duration>,
) -> BenchReport {
    let committed = latencies.len();
    BenchReport {
        workload: opts.workload,
        offered: offered(opts),
        committed,
        failed: failures.values().sum(),
        failures,
        elapsed,
        latencies,
        cpu_per_tx: cpu_per_tx(before, after, committed),
        steps: None,
    }
}

async fn bench_read(opts: &BenchOptions) -> Result<BenchReport> {
    let ids = net::generate::Identities::load(&opts.dir)?;
    let patient_entry = ids
        .identities
        .iter()
        .find(|i| i.role == "patient")
        .context("the network has no demo patient identity")?;
    let patient_id = patient_entry
        .name
        .strip_prefix("patient:")
        .context("patient identity name")?
        .to_owned();
    // Setup: the patient's bundle imported, consent for Org2 in force.
    let admin = connect_as(&opts.dir, Some("org1-admin")).await?;
    let admin = EhrClient::new(admin.gateway.network(&admin.channel).contract("ehr"));
    let files: Vec<PathBuf> = bundle_files(&opts.bundles)?
        .into_iter()
        .filter(|f| f.file_stem().is_some_and(|s| s == patient_id.as_str()))
        .collect();
    if files.is_empty() {
        bail!("no bundle for demo patient {patient_id} under the given bundle paths");
    }
    import(&admin, &files, &ImportOptions::default(), &|_| {}).await?;
    // From here on the patient is named by its ledger id (ADR 0031).
    let patient_id = admin.resolve_patient(&patient_id, None).await?;
    let records: Vec<String> = admin
        .all_records(&patient_id)
        .await?
        .into_iter()
        .filter(|m| m.version > 0)
        .map(|m| m.record_id)
        .collect();
    let patient = connect_as(&opts.dir, Some(&patient_entry.name)).await?;
    EhrClient::new(patient.gateway.network(&patient.channel).contract("ehr"))
        .grant_consent(&ConsentGrant {
            patient_id: patient_id.clone(),
            grantee: Grantee::Org("Org2MSP".into()),
            resource_types: Vec::new(),
            purposes: vec![Purpose::Treatment],
            valid_for_s: 3600,
        })
        .await?;
    let doctor = connect_as(&opts.dir, Some("org2-doctor")).await?;
    let doctor = Arc::new(EhrClient::new(
        doctor.gateway.network(&doctor.channel).contract("ehr"),
    ));
    let ops: Vec<String> = records
        .iter()
        .cycle()
        .take(opts.operations)
        .cloned()
        .collect();
    let before = cpu_snapshot(&opts.dir)?;
    let (latencies, failures, elapsed) = drive(ops, opts.concurrency, opts.rate, move |record| {
        let d = doctor.clone();
        let p = patient_id.clone();
        async move {
            d.read_record(&p, &record, Purpose::Treatment).await?;
            Ok(())
        }
    })
    .await;
    let after = cpu_snapshot(&opts.dir)?;
    Ok(report(opts, latencies, failures, elapsed, &before, &after))
}
