//! FHIR bundle import: each bundle file's patient registered, each entry's resource created
//! as a record with the chaincode's two-transaction protocol (ADR 0020), many transactions in
//! flight, idempotent.
//!
//! Once per run, `WhoAmI` (evaluate) for the client's organization. Per bundle: `LedgerIds`
//! (evaluate on the client's own organization's peer, ≤ 500 ids per call) for the ledger ids
//! of the patient and its resources (ADR 0031: only those reach the shared ledger);
//! `GetPatient` (evaluate) and `RegisterPatient` if absent — a patient whose custodian is
//! another organization is skipped as a failure, nothing sent; `ListRecords`
//! (evaluate, all pages) to skip records already stored with the same SHA-256; the rest cut
//! into chunks of at most [`ImportOptions::max_chunk_bytes`] /
//! [`ImportOptions::max_chunk_entries`]; per chunk `ReserveRecords` (channel policy, ids
//! only) for ids not yet reserved, then `CreateRecordsFromBundle` with the chunk and the clear
//! `Patient.id` in the transient map, endorsed by the patient's custodian organization only. Bundles and chunks
//! run concurrently; at most [`ImportOptions::concurrency`] calls are in flight. Transactions
//! invalidated by an MVCC conflict are retried (both steps are idempotent).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ehr_chaincode::fhir::{MAX_BUNDLE_BYTES, MAX_BUNDLE_ENTRIES, bundle_record_ids};
use ehr_chaincode::model::{RecordMeta, RecordStatus};
use futures::StreamExt;
use medledger_gateway::GatewayError;
use medledger_proto::protos::TxValidationCode;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::bundle::{BundleResource, PatientBundle, chunk_resources, fits_in_chunk, read_bundle};
use super::{EhrClient, EhrClientError, LedgerPatient, Result};

/// How an import runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Chaincode calls (submitted transactions and evaluations) in flight at once (default
    /// 64; at least 1).
    pub concurrency: usize,
    /// Largest chunk, bytes: the transient `bundle` of one `CreateRecordsFromBundle` proposal
    /// (default and at most 1 MiB, the chaincode's `MAX_BUNDLE_BYTES`). Larger bundles are
    /// split into several calls; a resource that alone exceeds it fails.
    pub max_chunk_bytes: usize,
    /// Most entries per chunk, and record ids per `ReserveRecords` (default and at most 500).
    pub max_chunk_entries: usize,
    /// Private data collection given to `RegisterPatient` (default: the chaincode's
    /// `<MspId>PHI`).
    pub collection: Option<String>,
    /// Retries of a transaction invalidated by an MVCC or phantom read conflict, or refused by
    /// an endorser lagging behind the gateway's peer, or by an unreachable node (default 8;
    /// backoff 100 ms doubling up to 3.2 s: about 13 s in all).
    pub max_retries: u32,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            concurrency: 64,
            max_chunk_bytes: MAX_BUNDLE_BYTES,
            max_chunk_entries: MAX_BUNDLE_ENTRIES,
            collection: None,
            max_retries: 8,
        }
    }
}

impl ImportOptions {
    /// Smallest accepted `max_chunk_bytes`: a chunk must hold at least a small resource.
    pub const MIN_CHUNK_BYTES: usize = 1024;

    /// Checks the limits against the chaincode's.
    ///
    /// # Errors
    /// [`EhrClientError::Usage`] naming the bad option.
    pub fn validate(&self) -> Result<()> {
        let usage = |m: String| Err(EhrClientError::Usage(m));
        if self.concurrency == 0 {
            return usage("concurrency must be at least 1".into());
        }
        if !(Self::MIN_CHUNK_BYTES..=MAX_BUNDLE_BYTES).contains(&self.max_chunk_bytes) {
            return usage(format!(
                "max chunk bytes must be {} to {MAX_BUNDLE_BYTES}",
                Self::MIN_CHUNK_BYTES
            ));
        }
        if !(1..=MAX_BUNDLE_ENTRIES).contains(&self.max_chunk_entries) {
            return usage(format!(
                "max chunk entries must be 1 to {MAX_BUNDLE_ENTRIES}"
            ));
        }
        Ok(())
    }
}

/// Failures sharing one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    /// Failed bundles or chunks with this reason.
    pub occurrences: u64,
    /// Resources not stored because of it.
    pub resources: u64,
    /// Up to [`FailureGroup::MAX_EXAMPLES`] record ids (`ResourceType/id`) concerned.
    pub examples: Vec<String>,
}

impl FailureGroup {
    /// Record ids kept per reason.
    pub const MAX_EXAMPLES: usize = 5;
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportSummary {
    /// Bundle files processed.
    pub bundles: u64,
    /// Patients registered by this run.
    pub patients_registered: u64,
    /// Patients already registered.
    pub patients_skipped: u64,
    /// Records created by this run.
    pub resources_created: u64,
    /// Resources already stored with the same SHA-256.
    pub resources_skipped: u64,
    /// Resources not stored (see `failures`).
    pub resources_failed: u64,
    /// Transactions committed valid.
    pub transactions: u64,
    /// Evaluations (registration and idempotency checks).
    pub evaluations: u64,
    /// Failures by reason. Reasons name the step, chaincode status or validation code, never
    /// patient data.
    pub failures: BTreeMap<String, FailureGroup>,
    /// Wall-clock time of the import, ms.
    pub elapsed_ms: u64,
}

impl ImportSummary {
    /// Committed transactions per second over the whole import.
    pub fn tx_per_s(&self) -> f64 {
        if self.elapsed_ms == 0 {
            return 0.0;
        }
        self.transactions as f64 * 1000.0 / self.elapsed_ms as f64
    }

    /// Elapsed time.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms)
    }

    /// Whether every resource was created or skipped.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }

    /// Counts a failure of `resources` (their record ids) for `reason`.
    pub fn record_failure(&mut self, reason: &str, record_ids: &[&str]) {
        let g = self.failures.entry(reason.to_owned()).or_default();
        g.occurrences += 1;
        g.resources += record_ids.len() as u64;
        for id in record_ids {
            if g.examples.len() >= FailureGroup::MAX_EXAMPLES {
                break;
            }
            g.examples.push((*id).to_owned());
        }
        self.resources_failed += record_ids.len() as u64;
    }
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "bundles:      {}", self.bundles)?;
        writeln!(
            f,
            "patients:     {} registered, {} already registered",
            self.patients_registered, self.patients_skipped
        )?;
        writeln!(
            f,
            "resources:    {} created, {} already stored, {} failed",
            self.resources_created, self.resources_skipped, self.resources_failed
        )?;
        writeln!(
            f,
            "transactions: {} committed, {} evaluations, {:.1} s, {:.1} tx/s",
            self.transactions,
            self.evaluations,
            self.elapsed().as_secs_f64(),
            self.tx_per_s()
        )?;
        for (reason, g) in &self.failures {
            writeln!(
                f,
                "failed:       {} resources ({}×): {reason}; e.g. {}",
                g.resources,
                g.occurrences,
                g.examples.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Progress of a running import, passed to the caller's callback after each step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Bundle files to import.
    pub bundles_total: u64,
    /// Bundle files finished.
    pub bundles_done: u64,
    /// Resources found in the bundles read so far.
    pub resources_seen: u64,
    /// Resources created, skipped or failed so far.
    pub resources_done: u64,
    /// Resources failed so far.
    pub resources_failed: u64,
}

/// What to do with one resource of a bundle, given what the ledger holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Stored with the same SHA-256: nothing to do.
    Skip,
    /// Not on the ledger: reserve, then create.
    ReserveAndCreate,
    /// Reserved by an earlier run: create.
    Create,
    /// Cannot be imported; the reason (no patient data).
    Fail(&'static str),
}

/// The plan for `resource` given its stored metadata (if any) and the chunk limit.
pub fn plan(
    resource: &BundleResource,
    stored: Option<&RecordMeta>,
    max_chunk_bytes: usize,
) -> Plan {
    match stored {
        Some(m) if m.status == RecordStatus::Active && m.sha256 == resource.sha256 => Plan::Skip,
        Some(m) if m.status == RecordStatus::Active => {
            Plan::Fail("record exists with other content (use UpdateRecord)")
        }
        Some(m) if m.status == RecordStatus::Purged => {
            Plan::Fail("record was purged and cannot be re-created")
        }
        _ if !fits_in_chunk(resource, max_chunk_bytes) => {
            Plan::Fail("resource alone is larger than the chunk limit")
        }
        Some(_) => Plan::Create,
        None => Plan::ReserveAndCreate,
    }
}

/// A reason for the summary: the step and the kind of failure, no ids or messages.
fn reason(step: &str, e: &EhrClientError) -> String {
    match e {
        EhrClientError::Chaincode { status, .. } => {
            let kind = match status {
                400 => "invalid",
                403 => "forbidden",
                404 => "not found",
                409 => "conflict",
                410 => "purged",
                _ => "internal error",
            };
            format!("{step}: chaincode status {status} ({kind})")
        }
        EhrClientError::Invalid { code, .. } => format!("{step}: committed invalid ({code:?})"),
        EhrClientError::Gateway {
            error: GatewayError::Status { code, .. },
            ..
        } => format!("{step}: gateway {code:?}"),
        EhrClientError::Gateway { .. } => format!("{step}: gateway error"),
        EhrClientError::Decode { .. } => format!("{step}: response does not decode"),
        EhrClientError::AccessDenied { .. }
        | EhrClientError::EmergencyDenied { .. }
        | EhrClientError::Usage(_) => {
            format!("{step}: refused")
        }
    }
}

/// Whether a failed call is worth retrying: an MVCC or phantom read conflict at commit, a
/// 404/409 from an endorser that has not yet committed the block the gateway's peer already
/// reported (the patient just registered, the ids just reserved): peers commit at their own
/// pace, and commit status only speaks for the gateway's peer; or a peer or orderer that is
/// unreachable or restarting (gRPC UNAVAILABLE, ABORTED without a chaincode status,
/// DEADLINE_EXCEEDED). Every import step is idempotent on the ledger (reserving an existing
/// id, creating an identical record), so a retry after an unknown outcome loses or duplicates
/// nothing.
fn is_retryable(e: &EhrClientError) -> bool {
    match e {
        EhrClientError::Gateway {
            error: GatewayError::Status { code, .. },
            ..
        } => matches!(
            code,
            tonic::Code::Unavailable | tonic::Code::Aborted | tonic::Code::DeadlineExceeded
        ),
        EhrClientError::Invalid { code, .. } => matches!(
            code,
            TxValidationCode::MvccReadConflict | TxValidationCode::PhantomReadConflict
        ),
        EhrClientError::Chaincode {
            function, status, ..
        } => {
            (*function == ehr_chaincode::functions::RESERVE_RECORDS && *status == 404)
                || (*function == ehr_chaincode::functions::CREATE_RECORDS_FROM_BUNDLE
                    && matches!(status, 404 | 409))
        }
        _ => false,
    }
}

/// Shared state of one import run.
struct Run<'a> {
    client: &'a EhrClient,
    /// The MSP id of the client's identity: the only custodian it sends PHI to.
    own_msp: String,
    options: &'a ImportOptions,
    permits: Semaphore,
    summary: Mutex<ImportSummary>,
    progress: Mutex<ImportProgress>,
    on_progress: &'a (dyn Fn(&ImportProgress) + Send + Sync),
}

impl Run<'_> {
    fn with_summary(&self, f: impl FnOnce(&mut ImportSummary)) {
        let mut s = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    }

    fn advance(&self, f: impl FnOnce(&mut ImportProgress)) {
        let snapshot = {
            let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut p);
            *p
        };
        (self.on_progress)(&snapshot);
    }

    fn fail(&self, reason: &str, record_ids: &[&str]) {
        tracing::debug!(target: "ehr_client::import", reason, resources = record_ids.len(), "failed");
        self.with_summary(|s| s.record_failure(reason, record_ids));
        self.advance(|p| {
            p.resources_done += record_ids.len() as u64;
            p.resources_failed += record_ids.len() as u64;
        });
    }

    /// Runs a call under a concurrency permit; counts it; retries MVCC conflicts.
    async fn call<T, F, Fut>(&self, submitted: bool, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            let result = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| EhrClientError::Usage("import cancelled".into()))?;
                f().await
            };
            match result {
                Err(e) if is_retryable(&e) && attempt < self.options.max_retries => {
                    tracing::debug!(target: "ehr_client::import", attempt, reason = %reason("retry", &e), "retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                }
                other => {
                    if other.is_ok() {
                        self.with_summary(|s| {
                            if submitted {
                                s.transactions += 1;
                            } else {
                                s.evaluations += 1;
                            }
                        });
                    }
                    return other;
                }
            }
        }
    }

    async fn bundle(&self, path: PathBuf) {
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                self.fail(&format!("reading the bundle file: {}", e.kind()), &[]);
                return;
            }
        };
        match read_bundle(&bytes) {
            Ok(bundle) => {
                drop(bytes);
                let n = bundle.resources.len() as u64;
                self.advance(|p| p.resources_seen += n);
                self.patient_bundle(&bundle).await;
            }
            Err(e) => self.fail(&format!("reading the bundle: {e}"), &[]),
        }
    }

    /// The ledger ids of the bundle's patient and of each resource, in entry order
    /// (`LedgerIds` on the client's own organization's peer, ≤ 500 ids per call).
    async fn ledger_ids(&self, bundle: &PatientBundle) -> Result<(LedgerPatient, Vec<String>)> {
        let c = self.client;
        let own = Some(self.own_msp.as_str());
        let patient_id = bundle.patient_id.as_str();
        let mut ledger_patient = None;
        let mut records = Vec::with_capacity(bundle.resources.len());
        let ids: Vec<&str> = bundle
            .resources
            .iter()
            .map(|r| r.record_id.as_str())
            .collect();
        for part in ids.chunks(MAX_BUNDLE_ENTRIES) {
            let got = self
                .call(false, || c.ledger_ids(own, patient_id, part))
                .await?;
            if got.records.len() != part.len() {
                return Err(EhrClientError::Decode {
                    function: ehr_chaincode::functions::LEDGER_IDS,
                });
            }
            records.extend(got.records);
            ledger_patient = Some(got.patient);
        }
        let ledger_id = match ledger_patient {
            Some(p) => p,
            None => {
                self.call(false, || c.ledger_ids(own, patient_id, &[]))
                    .await?
                    .patient
            }
        };
        let patient = LedgerPatient {
            patient_id: bundle.patient_id.clone(),
            ledger_id,
        };
        Ok((patient, records))
    }

    async fn patient_bundle(&self, bundle: &PatientBundle) {
        let all_ids: Vec<&str> = bundle
            .resources
            .iter()
            .map(|r| r.record_id.as_str())
            .collect();
        let c = self.client;
        let (lp, ledger_records) = match self.ledger_ids(bundle).await {
            Ok(ids) => ids,
            Err(e) => return self.fail(&reason("LedgerIds", &e), &all_ids),
        };
        let ledger_of: HashMap<&str, &str> = all_ids
            .iter()
            .copied()
            .zip(ledger_records.iter().map(String::as_str))
            .collect();
        let patient_id = lp.ledger_id.as_str();
        let patient = match self.call(false, || c.get_patient(patient_id)).await {
            Ok(Some(p)) => {
                self.with_summary(|s| s.patients_skipped += 1);
                p
            }
            Ok(None) => {
                let collection = self.options.collection.as_deref();
                match self
                    .call(true, || c.register_patient(patient_id, collection))
                    .await
                {
                    Ok(p) => {
                        self.with_summary(|s| s.patients_registered += 1);
                        p
                    }
                    Err(e) => return self.fail(&reason("RegisterPatient", &e), &all_ids),
                }
            }
            Err(e) => return self.fail(&reason("GetPatient", &e), &all_ids),
        };
        // A patient belongs to one custodian (ADR 0029). One registered by another
        // organization is not ours to fill: its records would go, transient data and all, to
        // that organization's endorsers. Nothing is sent. (With ledger ids keyed by each
        // custodian, ADR 0031, this takes a collision of 128-bit keyed hashes.)
        if patient.custodian_msp != self.own_msp {
            return self.fail(
                "the patient id is registered by another organization (custodian); nothing sent",
                &all_ids,
            );
        }
        let stored: HashMap<String, RecordMeta> =
            match self.call(false, || c.all_records(patient_id)).await {
                Ok(records) => records
                    .into_iter()
                    .map(|m| (m.record_id.clone(), m))
                    .collect(),
                Err(e) => return self.fail(&reason("ListRecords", &e), &all_ids),
            };
        let mut pending: Vec<&BundleResource> = Vec::new();
        let mut to_reserve: HashSet<&str> = HashSet::new();
        let mut stored_already: Vec<&BundleResource> = Vec::new();
        for r in &bundle.resources {
            let ledger = ledger_of.get(r.record_id.as_str()).copied().unwrap_or("");
            match plan(r, stored.get(ledger), self.options.max_chunk_bytes) {
                Plan::Skip => stored_already.push(r),
                Plan::Create => pending.push(r),
                Plan::ReserveAndCreate => {
                    to_reserve.insert(ledger);
                    pending.push(r);
                }
                Plan::Fail(why) => self.fail(why, &[&r.record_id]),
            }
        }
        // Records stored before locators existed (issue 16) are sent again: an equal entry
        // is `unchanged` and gets its locator.
        let (unlocated, located) = self.without_locators(&stored_already).await;
        pending.extend(unlocated);
        let skipped = located as u64;
        self.with_summary(|s| s.resources_skipped += skipped);
        self.advance(|p| p.resources_done += skipped);
        let chunks = match chunk_resources(
            &pending,
            self.options.max_chunk_bytes,
            self.options.max_chunk_entries,
        ) {
            Ok(c) => c,
            Err(e) => {
                let ids: Vec<&str> = pending.iter().map(|r| r.record_id.as_str()).collect();
                return self.fail(&format!("splitting the bundle: {e}"), &ids);
            }
        };
        let custodian = patient.custodian_msp.as_str();
        let chunk_ids = ChunkIds {
            ledger_of: &ledger_of,
            to_reserve: &to_reserve,
        };
        futures::stream::iter(chunks)
            .for_each_concurrent(None, |chunk| {
                let (lp, chunk_ids) = (&lp, &chunk_ids);
                async move { self.chunk(lp, custodian, &chunk, chunk_ids).await }
            })
            .await;
    }

    /// Of `stored` (resources already stored with the same hash), those whose locator is
    /// missing (`LocateRecords` answers `None`), and how many have theirs or need none
    /// (resources without a patient reference, Organization and Practitioner, get no locator:
    /// re-sending them would only make a bundle that writes nothing). A failed
    /// `LocateRecords` fails its resources.
    async fn without_locators<'b>(
        &self,
        stored: &[&'b BundleResource],
    ) -> (Vec<&'b BundleResource>, usize) {
        use ehr_chaincode::template::{PatientLink, default_template};
        let c = self.client;
        let own = Some(self.own_msp.as_str());
        let (shared, stored): (Vec<&BundleResource>, Vec<&BundleResource>) =
            stored.iter().partition(|r| {
                default_template(&r.resource_type)
                    .is_some_and(|t| t.patient_link == PatientLink::None)
            });
        let (mut missing, mut located) = (Vec::new(), shared.len());
        for part in stored.chunks(ehr_chaincode::fhir::MAX_BUNDLE_ENTRIES) {
            let ids: Vec<&str> = part.iter().map(|r| r.record_id.as_str()).collect();
            match self.call(false, || c.locate_records(own, &ids)).await {
                Ok(found) => {
                    for (r, f) in part.iter().zip(found) {
                        match f {
                            Some(_) => located += 1,
                            None => missing.push(*r),
                        }
                    }
                }
                Err(e) => self.fail(&reason("LocateRecords", &e), &ids),
            }
        }
        (missing, located)
    }

    async fn chunk(
        &self,
        patient: &LedgerPatient,
        custodian: &str,
        chunk: &[u8],
        ids: &ChunkIds<'_>,
    ) {
        let clear: Vec<String> = match bundle_record_ids(chunk) {
            Ok(ids) => ids.iter().map(ToString::to_string).collect(),
            Err(_) => return self.fail("a chunk does not parse (internal error)", &[]),
        };
        let clear: Vec<&str> = clear.iter().map(String::as_str).collect();
        let c = self.client;
        let reserve: Vec<&str> = clear
            .iter()
            .filter_map(|id| ids.ledger_of.get(id).copied())
            .filter(|ledger| ids.to_reserve.contains(ledger))
            .collect();
        if !reserve.is_empty()
            && let Err(e) = self
                .call(true, || c.reserve_records(&patient.ledger_id, &reserve))
                .await
        {
            return self.fail(&reason("ReserveRecords", &e), &clear);
        }
        match self
            .call(true, || {
                c.create_records_from_bundle(patient, custodian, chunk)
            })
            .await
        {
            Ok(r) => {
                self.with_summary(|s| {
                    s.resources_created += r.created;
                    s.resources_skipped += r.unchanged;
                });
                self.advance(|p| p.resources_done += clear.len() as u64);
            }
            Err(e) => self.fail(&reason("CreateRecordsFromBundle", &e), &clear),
        }
    }
}

/// A bundle's resource ids for its chunks: each clear `ResourceType/id` to its ledger id, and
/// the ledger ids still to reserve.
struct ChunkIds<'a> {
    ledger_of: &'a HashMap<&'a str, &'a str>,
    to_reserve: &'a HashSet<&'a str>,
}

/// Imports the FHIR bundle files `files` (see [`super::bundle::bundle_files`] to expand
/// directories) through `client`, whose identity must be allowed to register patients and
/// write their records (an admin of the custodian organization). Calls `on_progress` after
/// each step. Failures are counted in the summary by reason, not returned.
///
/// # Errors
/// [`EhrClientError::Usage`] if `options` are invalid.
pub async fn import(
    client: &EhrClient,
    files: &[PathBuf],
    options: &ImportOptions,
    on_progress: &(dyn Fn(&ImportProgress) + Send + Sync),
) -> Result<ImportSummary> {
    options.validate()?;
    let started = Instant::now();
    let own_msp = client.who_am_i().await?.msp_id;
    let run = Run {
        client,
        own_msp,
        options,
        permits: Semaphore::new(options.concurrency),
        summary: Mutex::new(ImportSummary::default()),
        progress: Mutex::new(ImportProgress {
            bundles_total: files.len() as u64,
            ..ImportProgress::default()
        }),
        on_progress,
    };
    futures::stream::iter(files.iter().cloned())
        .map(|path| {
            let run = &run;
            async move {
                run.bundle(path).await;
                run.with_summary(|s| s.bundles += 1);
                run.advance(|p| p.bundles_done += 1);
            }
        })
        .buffer_unordered(options.concurrency)
        .collect::<()>()
        .await;
    let mut summary = run.summary.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        target: "ehr_client::import",
        bundles = summary.bundles,
        created = summary.resources_created,
        skipped = summary.resources_skipped,
        failed = summary.resources_failed,
        transactions = summary.transactions,
        elapsed_ms = summary.elapsed_ms,
        "import finished"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::sha256_hex;

    fn resource(id: &str, bytes: &[u8]) -> BundleResource {
        BundleResource {
            record_id: format!("Observation/{id}"),
            resource_type: "Observation".into(),
            sha256: sha256_hex(bytes),
            bytes: bytes.to_vec(),
        }
    }

    fn meta(status: RecordStatus, sha256: &str) -> RecordMeta {
        RecordMeta {
            record_id: "Observation/o".into(),
            patient_id: "p".into(),
            resource_type: "Observation".into(),
            version: 1,
            sha256: sha256.into(),
            size_bytes: 1,
            author: "a".into(),
            author_msp: "Org1MSP".into(),
            author_role: "admin".into(),
            custodian_msp: "Org1MSP".into(),
            collection: "Org1MSPPHI".into(),
            template_version: 0,
            created_at_ms: 0,
            updated_at_ms: 0,
            status,
            purged_by: None,
            shares: vec![],
        }
    }

    #[test]
    fn plans_follow_the_stored_state() {
        let r = resource("o", b"{\"resourceType\":\"Observation\",\"id\":\"o\"}");
        let big = resource("b", &vec![b' '; 5000]);
        assert_eq!(plan(&r, None, 1 << 20), Plan::ReserveAndCreate);
        assert_eq!(
            plan(&r, Some(&meta(RecordStatus::Reserved, "")), 1 << 20),
            Plan::Create
        );
        assert_eq!(
            plan(&r, Some(&meta(RecordStatus::Active, &r.sha256)), 1 << 20),
            Plan::Skip
        );
        assert!(matches!(
            plan(&r, Some(&meta(RecordStatus::Active, "00")), 1 << 20),
            Plan::Fail(m) if m.contains("other content")
        ));
        assert!(matches!(
            plan(&r, Some(&meta(RecordStatus::Purged, &r.sha256)), 1 << 20),
            Plan::Fail(m) if m.contains("purged")
        ));
        assert!(matches!(plan(&big, None, 4096), Plan::Fail(m) if m.contains("larger")));
    }

    #[test]
    fn summary_groups_failures_by_reason_and_counts() {
        let mut s = ImportSummary::default();
        let ids: Vec<String> = (0..8).map(|i| format!("Observation/o{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        s.record_failure(
            "CreateRecordsFromBundle: chaincode status 409 (conflict)",
            &refs,
        );
        s.record_failure(
            "CreateRecordsFromBundle: chaincode status 409 (conflict)",
            &refs[..1],
        );
        s.record_failure("reading the bundle file: NotFound", &[]);
        assert_eq!(s.resources_failed, 9);
        assert_eq!(s.failures.len(), 2);
        let g = &s.failures["CreateRecordsFromBundle: chaincode status 409 (conflict)"];
        assert_eq!((g.occurrences, g.resources), (2, 9));
        assert_eq!(g.examples.len(), FailureGroup::MAX_EXAMPLES);
        assert!(!s.is_complete());
        assert_eq!(s.tx_per_s(), 0.0);
        s.transactions = 30;
        s.elapsed_ms = 1500;
        assert!((s.tx_per_s() - 20.0).abs() < 1e-9);
        let text = s.to_string();
        assert!(text.contains("20.0 tx/s"), "{text}");
        assert!(text.contains("9 failed"), "{text}");
    }

    #[test]
    fn reasons_carry_no_ids_or_messages() {
        let e = EhrClientError::Chaincode {
            function: "CreateRecordsFromBundle",
            status: 409,
            message: "record Observation/secret-id is not reserved".into(),
        };
        let r = reason("CreateRecordsFromBundle", &e);
        assert_eq!(
            r,
            "CreateRecordsFromBundle: chaincode status 409 (conflict)"
        );
        let e = EhrClientError::Invalid {
            function: "ReserveRecords",
            tx_id: "abc".into(),
            code: TxValidationCode::MvccReadConflict,
            block: 3,
        };
        assert!(is_retryable(&e));
        assert_eq!(
            reason("ReserveRecords", &e),
            "ReserveRecords: committed invalid (MvccReadConflict)"
        );
    }

    #[test]
    fn options_are_checked_against_the_chaincode_limits() {
        assert!(ImportOptions::default().validate().is_ok());
        for bad in [
            ImportOptions {
                concurrency: 0,
                ..Default::default()
            },
            ImportOptions {
                max_chunk_bytes: MAX_BUNDLE_BYTES + 1,
                ..Default::default()
            },
            ImportOptions {
                max_chunk_bytes: 10,
                ..Default::default()
            },
            ImportOptions {
                max_chunk_entries: 501,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
