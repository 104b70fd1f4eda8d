//! `medledger ehr …`: the EHR application's client commands over a peer's gateway, thin
//! wrappers of [`ehr_client`]: bundle import, record read (audited two-step) and
//! history, consent, access requests, audit trail, break-glass read, sharing a copy with a
//! consented organization, erasure and purge, governance of break-glass and auditor
//! authority, and how the contract sees the caller.
//!
//! Results are printed as JSON on stdout; a record's bytes (PHI) go to stdout or `--out`
//! only, never to logs or stderr.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ehr_chaincode::ids::Grantee;
use ehr_chaincode::model::{AuthorityRole, EmergencyReason, Purpose};
use serde::Serialize;

use ehr_client::bundle::bundle_files;
use ehr_client::{
    AccessRequestArgs, ConsentGrant, EhrClient, ImportOptions, ImportProgress, RecordRead, import,
};

/// EHR subcommands.
#[derive(Debug, Subcommand)]
pub enum EhrCommand {
    /// Import FHIR R4 transaction bundles (files or directories of `*.json`): register each
    /// patient, create every resource as a record (idempotent: a re-run skips what is stored).
    Import(ImportArgs),
    /// Records: read (audited), history.
    #[command(subcommand)]
    Record(RecordCommand),
    /// Patient consent: grant, revoke, list.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Access requests of providers: request, approve, reject, list.
    #[command(subcommand)]
    Access(AccessCommand),
    /// A patient's audit trail (who accessed which record, when, why).
    Audit(AuditArgs),
    /// Break-glass: open an emergency window, then read a record (audited, patient notified).
    EmergencyRead(EmergencyReadArgs),
    /// Ask the custodian to erase a record's PHI (the patient).
    Erasure(RecordArgs),
    /// Purge a record's PHI on the patient's pending erasure request (custodian admin).
    Purge(RecordArgs),
    /// Copy a record to an organization the patient consented to (custodian staff): it goes
    /// to the share collection of the custodian and that organization.
    Share(ShareArgs),
    /// Which organizations hold break-glass and auditor authority (decided by a majority of
    /// the governing organizations' MSP admins).
    #[command(subcommand)]
    Governance(GovernanceCommand),
    /// How the contract sees the caller: MSP, identity id (what `identity:` consents name),
    /// role.
    Whoami(WhoamiArgs),
    /// The ledger ids of a patient and of its resources (ADR 0031): what the shared ledger
    /// names them by. Evaluated on a peer of the custodian, which alone holds its key.
    LedgerId(LedgerIdArgs),
    /// Store the organization's pseudonym key (an EHR admin, once; `network up` does it for
    /// the dev network) from a file of 32 bytes or 64 hex digits.
    SetPseudonymKey(SetPseudonymKeyArgs),
}

/// `ehr ledger-id`.
#[derive(Debug, Args)]
pub struct LedgerIdArgs {
    /// `Patient.id`.
    pub patient_id: String,
    /// Resources of the patient, `ResourceType/id`.
    pub resources: Vec<String>,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `ehr set-pseudonym-key`.
#[derive(Debug, Args)]
pub struct SetPseudonymKeyArgs {
    /// The key file (`network up` writes `ehr-keys/<org>.key` in the network directory).
    #[arg(long)]
    pub key_file: PathBuf,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `ehr share`.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// The grantee organization (MSP id); the patient must have consented to it.
    #[arg(long = "grantee-org")]
    pub grantee_msp: String,
    /// Purpose the consent must permit.
    #[arg(long, default_value = "treatment", value_parser = parse_purpose)]
    pub purpose: Purpose,
    /// The record.
    #[command(flatten)]
    pub record: RecordArgs,
}

/// Governance subcommands.
#[derive(Debug, Subcommand)]
pub enum GovernanceCommand {
    /// Show the governing organizations and every authority with its approvals.
    Show(WhoamiArgs),
    /// An MSP admin: with --founders, confirms that founding set (every founder must confirm
    /// the same set before anything counts); without, once governance is founded, asks the
    /// members to admit the caller's organization. Approves nothing.
    Join(JoinArgs),
    /// An MSP admin, before governance is founded: takes back its organization's founding
    /// confirmation (each organization has one, the set it confirmed last).
    WithdrawFounding(WhoamiArgs),
    /// The caller's organization (a member, an MSP admin) consents to ORG's request to join;
    /// a majority of the members makes ORG a member.
    Admit(AdmitArgs),
    /// The caller's organization approves ORG holding ROLE (an MSP admin).
    Approve(RoleArgs),
    /// The caller's organization withdraws its approval (an MSP admin).
    Withdraw(RoleArgs),
}

/// `ehr governance join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The founding set: the MSP ids of every founding organization, the caller's among them
    /// (at least two), e.g. `Org1MSP,Org2MSP`.
    #[arg(long, value_delimiter = ',')]
    pub founders: Option<Vec<String>>,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `ehr governance admit`.
#[derive(Debug, Args)]
pub struct AdmitArgs {
    /// The organization asking to join (MSP id).
    pub org: String,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// An organization and an authority.
#[derive(Debug, Args)]
pub struct RoleArgs {
    /// The organization (MSP id).
    pub org: String,
    /// `emergency` (break-glass) or `auditor`.
    #[arg(value_parser = parse_role)]
    pub role: AuthorityRole,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Just a connection.
#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// How to reach the gateway and who signs.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Channel.
    #[arg(short = 'C', long, default_value = "ehr")]
    pub channel: String,
    /// Chaincode name.
    #[arg(short = 'n', long = "name", default_value = "ehr")]
    pub chaincode: String,
    /// The custodian organization (MSP id) whose peers translate a clear `Patient.id` or
    /// resource id into ledger ids (default: the caller's own organization). Not needed when
    /// ledger ids (`p_…`, `Type/r_…`) are given.
    #[arg(long)]
    pub custodian: Option<String>,
    /// Connection.
    #[command(flatten)]
    pub gateway: super::connect::GatewayArgs,
}

impl ConnectArgs {
    async fn client(&self) -> Result<EhrClient> {
        let (gateway, _) = self.gateway.connect().await?;
        Ok(EhrClient::new(
            gateway.network(&self.channel).contract(&self.chaincode),
        ))
    }
}

/// `ehr import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Bundle files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Chaincode calls in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Largest bundle chunk per `CreateRecordsFromBundle` proposal, bytes (≤ 1048576).
    #[arg(long, default_value_t = ehr_chaincode::fhir::MAX_BUNDLE_BYTES)]
    pub max_chunk_bytes: usize,
    /// Most entries per chunk (≤ 500).
    #[arg(long, default_value_t = ehr_chaincode::fhir::MAX_BUNDLE_ENTRIES)]
    pub max_chunk_entries: usize,
    /// PHI collection for newly registered patients (default `<MspId>PHI`).
    #[arg(long)]
    pub collection: Option<String>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// A patient and one of their records.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// `Patient.id`, or the patient's ledger id `p_…`.
    pub patient_id: String,
    /// `ResourceType/id` (with a `Patient.id`), or the record's ledger id `ResourceType/r_…`.
    pub record_id: String,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Record subcommands.
#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Read a record's exact bytes: RequestRecordAccess (submitted, audited), then ReadRecord
    /// (evaluated on the custodian's peers).
    Get(RecordGetArgs),
    /// Every committed version of a record, newest first.
    History(RecordArgs),
}

/// `ehr record get`.
#[derive(Debug, Args)]
pub struct RecordGetArgs {
    /// Purpose of use: treatment, payment, research, operations, public-health.
    #[arg(long, default_value = "treatment", value_parser = parse_purpose)]
    pub purpose: Purpose,
    /// Read from this organization's peers (e.g. your own, holding a shared copy) instead of
    /// the custodian's.
    #[arg(long = "at-org")]
    pub at_org: Option<String>,
    /// Write the resource to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The record.
    #[command(flatten)]
    pub record: RecordArgs,
}

/// Consent subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Grant access to an organization or identity (the patient).
    Grant(ConsentGrantArgs),
    /// Revoke a consent (the patient).
    Revoke(IdArgs),
    /// List a patient's consents (the patient, auditors).
    List(PatientPageArgs),
}

/// `ehr consent grant`.
#[derive(Debug, Args)]
pub struct ConsentGrantArgs {
    /// `Patient.id`, or the patient's ledger id `p_…`.
    pub patient_id: String,
    /// Grantee: `org:MSPID` or `identity:<identity id>` (`medledger ehr whoami` prints it).
    #[arg(long, value_parser = parse_grantee)]
    pub grantee: Grantee,
    /// Resource types in scope (repeat; none = all).
    #[arg(long = "type")]
    pub resource_types: Vec<String>,
    /// Purposes permitted (repeat).
    #[arg(long = "purpose", required = true, value_parser = parse_purpose)]
    pub purposes: Vec<Purpose>,
    /// Validity, seconds.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    pub valid_for_s: u64,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// A patient and an id (consent or request).
#[derive(Debug, Args)]
pub struct IdArgs {
    /// `Patient.id`, or the patient's ledger id `p_…`.
    pub patient_id: String,
    /// Consent or request id.
    pub id: String,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// A patient and a page.
#[derive(Debug, Args)]
pub struct PatientPageArgs {
    /// `Patient.id`, or the patient's ledger id `p_…`.
    pub patient_id: String,
    /// Page size (1-200).
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    /// Bookmark of the page (from the previous page).
    #[arg(long, default_value = "")]
    pub bookmark: String,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Access request subcommands.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// File an access request (doctor, nurse, lab, insurer, researcher).
    Request(AccessRequestCliArgs),
    /// Approve a request (the patient): grants the consent asked for.
    Approve(IdArgs),
    /// Reject a request (the patient).
    Reject(IdArgs),
    /// List a patient's access requests (the patient, auditors).
    List(PatientPageArgs),
}

/// `ehr access request`.
#[derive(Debug, Args)]
pub struct AccessRequestCliArgs {
    /// `Patient.id`, or the patient's ledger id `p_…`.
    pub patient_id: String,
    /// Resource types asked for (repeat; none = all).
    #[arg(long = "type")]
    pub resource_types: Vec<String>,
    /// Purposes asked for (repeat).
    #[arg(long = "purpose", required = true, value_parser = parse_purpose)]
    pub purposes: Vec<Purpose>,
    /// Consent duration asked for, seconds.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    pub valid_for_s: u64,
    /// Ask for this identity only instead of its organization.
    #[arg(long)]
    pub for_identity: bool,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `ehr audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The patient and page.
    #[command(flatten)]
    pub page: PatientPageArgs,
}

/// `ehr emergency-read`.
#[derive(Debug, Args)]
pub struct EmergencyReadArgs {
    /// Reason: ETREAT (emergency treatment) or BTG (break the glass).
    #[arg(long, default_value = "ETREAT", value_parser = parse_reason)]
    pub reason: EmergencyReason,
    /// Window, seconds (default and at most 24 h).
    #[arg(long)]
    pub window_s: Option<u64>,
    /// Write the resource to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The record.
    #[command(flatten)]
    pub record: RecordArgs,
}

fn parse_purpose(s: &str) -> Result<Purpose, String> {
    Purpose::parse(s)
        .ok_or_else(|| "one of treatment, payment, research, operations, public-health".into())
}

fn parse_grantee(s: &str) -> Result<Grantee, String> {
    s.parse::<Grantee>()
        .map_err(|_| "org:MSPID or identity:MSPID/<64 hex>".into())
}

fn parse_role(s: &str) -> Result<AuthorityRole, String> {
    AuthorityRole::parse(s).ok_or_else(|| "emergency or auditor".into())
}

fn parse_reason(s: &str) -> Result<EmergencyReason, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| "ETREAT or BTG".into())
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Writes a record's bytes to `out` or stdout; its access id to stderr.
fn write_record(read: &RecordRead, out: Option<&PathBuf>) -> Result<()> {
    eprintln!("access {}", read.access_id);
    match out {
        Some(path) => std::fs::write(path, &read.bytes)
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&read.bytes)?;
            stdout.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// A progress line on stderr at most every 500 ms.
fn progress_printer() -> impl Fn(&ImportProgress) + Send + Sync {
    let last = Mutex::new(Instant::now());
    move |p: &ImportProgress| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let done = p.bundles_done == p.bundles_total;
        if done || last.elapsed() >= Duration::from_millis(500) {
            *last = Instant::now();
            eprint!(
                "\rbundles {}/{}  resources {}/{} ({} failed)",
                p.bundles_done,
                p.bundles_total,
                p.resources_done,
                p.resources_seen,
                p.resources_failed
            );
            if done {
                eprintln!();
            }
        }
    }
}

async fn run_import(a: ImportArgs) -> Result<()> {
    let options = ImportOptions {
        concurrency: a.concurrency,
        max_chunk_bytes: a.max_chunk_bytes,
        max_chunk_entries: a.max_chunk_entries,
        collection: a.collection,
        ..ImportOptions::default()
    };
    options.validate()?;
    let files = bundle_files(&a.paths).context("listing the bundle paths")?;
    if files.is_empty() {
        bail!("no bundle files found");
    }
    let client = a.connect.client().await?;
    let printer = progress_printer();
    let quiet = |_: &ImportProgress| {};
    let on_progress: &(dyn Fn(&ImportProgress) + Send + Sync) =
        if a.quiet { &quiet } else { &printer };
    let summary = import(&client, &files, &options, on_progress).await?;
    if a.json {
        print_json(&summary)?;
    } else {
        print!("{summary}");
    }
    if !summary.is_complete() {
        bail!("{} resources were not imported", summary.resources_failed);
    }
    Ok(())
}

/// Runs an `ehr` subcommand.
///
/// # Errors
/// Connection failures, chaincode refusals (status and message, which carry ids only),
/// invalid commits, and an import that left resources out.
pub async fn run(cmd: EhrCommand) -> Result<()> {
    match cmd {
        EhrCommand::Import(a) => run_import(a).await,
        EhrCommand::Record(RecordCommand::Get(a)) => {
            let (client, patient, record) = a.record.resolve().await?;
            let read = match &a.at_org {
                Some(org) => {
                    client
                        .read_record_at(&patient, &record, a.purpose, org)
                        .await?
                }
                None => client.read_record(&patient, &record, a.purpose).await?,
            };
            write_record(&read, a.out.as_ref())
        }
        EhrCommand::Record(RecordCommand::History(r)) => {
            let (client, patient, record) = r.resolve().await?;
            print_json(&client.record_history(&patient, &record).await?)
        }
        EhrCommand::Consent(ConsentCommand::Grant(a)) => {
            let client = a.connect.client().await?;
            let grant = ConsentGrant {
                patient_id: a.connect.patient(&client, &a.patient_id).await?,
                grantee: a.grantee,
                resource_types: a.resource_types,
                purposes: a.purposes,
                valid_for_s: a.valid_for_s,
            };
            print_json(&client.grant_consent(&grant).await?)
        }
        EhrCommand::Consent(ConsentCommand::Revoke(a)) => {
            let (client, patient) = a.resolve().await?;
            print_json(&client.revoke_consent(&patient, &a.id).await?)
        }
        EhrCommand::Consent(ConsentCommand::List(p)) => {
            let (client, patient) = p.resolve().await?;
            let page = client
                .list_consents(&patient, p.page_size, &p.bookmark)
                .await?;
            print_json(&serde_json::json!({"consents": page.items, "bookmark": page.bookmark}))
        }
        EhrCommand::Access(AccessCommand::Request(a)) => {
            let client = a.connect.client().await?;
            let request_id = client
                .request_access(&AccessRequestArgs {
                    patient_id: a.connect.patient(&client, &a.patient_id).await?,
                    resource_types: a.resource_types,
                    purposes: a.purposes,
                    valid_for_s: a.valid_for_s,
                    for_identity: a.for_identity,
                })
                .await?;
            print_json(&serde_json::json!({ "request_id": request_id }))
        }
        EhrCommand::Access(AccessCommand::Approve(a)) => {
            let (client, patient) = a.resolve().await?;
            print_json(&client.approve_access_request(&patient, &a.id).await?)
        }
        EhrCommand::Access(AccessCommand::Reject(a)) => {
            let (client, patient) = a.resolve().await?;
            print_json(&client.reject_access_request(&patient, &a.id).await?)
        }
        EhrCommand::Access(AccessCommand::List(p)) => {
            let (client, patient) = p.resolve().await?;
            let page = client
                .list_access_requests(&patient, p.page_size, &p.bookmark)
                .await?;
            print_json(&serde_json::json!({"requests": page.items, "bookmark": page.bookmark}))
        }
        EhrCommand::Audit(AuditArgs { page: p }) => {
            let (client, patient) = p.resolve().await?;
            let page = client
                .audit_entries(&patient, p.page_size, &p.bookmark)
                .await?;
            print_json(
                &serde_json::json!({"entries": page.entries, "bookmark": page.bookmark,
                "summary": page.summary}),
            )
        }
        EhrCommand::EmergencyRead(a) => {
            let (client, patient, record) = a.record.resolve().await?;
            let (opened, read) = client
                .emergency_read(&patient, &record, a.reason, a.window_s)
                .await?;
            eprintln!(
                "emergency window {} open until {} ms",
                opened.access_id, opened.expires_at_ms
            );
            write_record(&read, a.out.as_ref())
        }
        EhrCommand::Erasure(r) => {
            let (client, patient, record) = r.resolve().await?;
            print_json(&client.request_erasure(&patient, &record).await?)
        }
        EhrCommand::Purge(r) => {
            let (client, patient, record) = r.resolve().await?;
            print_json(&client.purge_record(&patient, &record).await?)
        }
        EhrCommand::Share(a) => {
            let (client, patient, record) = a.record.resolve().await?;
            print_json(
                &client
                    .share_record(&patient, &record, &a.grantee_msp, a.purpose)
                    .await?,
            )
        }
        EhrCommand::Governance(GovernanceCommand::Show(a)) => {
            print_json(&a.connect.client().await?.governance().await?)
        }
        EhrCommand::Governance(GovernanceCommand::Join(a)) => print_json(
            &a.connect
                .client()
                .await?
                .join_governance(a.founders.as_deref())
                .await?,
        ),
        EhrCommand::Governance(GovernanceCommand::WithdrawFounding(a)) => {
            print_json(&a.connect.client().await?.withdraw_founding().await?)
        }
        EhrCommand::Governance(GovernanceCommand::Admit(a)) => {
            print_json(&a.connect.client().await?.admit_member(&a.org).await?)
        }
        EhrCommand::Governance(GovernanceCommand::Approve(a)) => print_json(
            &a.connect
                .client()
                .await?
                .approve_role_authority(&a.org, a.role)
                .await?,
        ),
        EhrCommand::Governance(GovernanceCommand::Withdraw(a)) => print_json(
            &a.connect
                .client()
                .await?
                .withdraw_role_authority(&a.org, a.role)
                .await?,
        ),
        EhrCommand::Whoami(a) => print_json(&a.connect.client().await?.who_am_i().await?),
        EhrCommand::LedgerId(a) => {
            let client = a.connect.client().await?;
            let resources: Vec<&str> = a.resources.iter().map(String::as_str).collect();
            print_json(
                &client
                    .ledger_ids(a.connect.custodian.as_deref(), &a.patient_id, &resources)
                    .await?,
            )
        }
        EhrCommand::SetPseudonymKey(a) => {
            let key = medledger_devnet::generate::read_pseudonym_key(&a.key_file)?;
            print_json(&a.connect.client().await?.set_pseudonym_key(&key).await?)
        }
    }
}

impl ConnectArgs {
    /// The ledger id of `patient` (a `Patient.id` or a ledger id) for this connection's
    /// custodian.
    async fn patient(&self, client: &EhrClient, patient: &str) -> Result<String> {
        let ledger = client
            .resolve_patient(patient, self.custodian.as_deref())
            .await?;
        self.translated_to_a_patient(client, patient, &ledger)
            .await?;
        Ok(ledger)
    }

    /// A clear `Patient.id` translated with a custodian's key names a patient only if that
    /// custodian registered it: each organization's key gives another ledger id (ADR 0031),
    /// so a translation at the wrong organization would otherwise fail later with a puzzling
    /// 404. The message names no id.
    async fn translated_to_a_patient(
        &self,
        client: &EhrClient,
        given: &str,
        ledger: &str,
    ) -> Result<()> {
        if given == ledger || client.get_patient(ledger).await?.is_some() {
            return Ok(());
        }
        let at = self.custodian.as_deref().unwrap_or(client.msp_id());
        bail!(
            "no patient with this Patient.id is registered at {at}, whose key translated it: \
             pass --custodian with the patient's organization, or the patient's ledger id (p_…)"
        )
    }
}

impl RecordArgs {
    /// The client and the ledger ids of the patient and the record.
    async fn resolve(&self) -> Result<(EhrClient, String, String)> {
        let client = self.connect.client().await?;
        let (patient, record) = client
            .resolve_record(
                &self.patient_id,
                &self.record_id,
                self.connect.custodian.as_deref(),
            )
            .await?;
        self.connect
            .translated_to_a_patient(&client, &self.patient_id, &patient)
            .await?;
        Ok((client, patient, record))
    }
}

impl IdArgs {
    /// The client and the patient's ledger id.
    async fn resolve(&self) -> Result<(EhrClient, String)> {
        let client = self.connect.client().await?;
        let patient = self.connect.patient(&client, &self.patient_id).await?;
        Ok((client, patient))
    }
}

impl PatientPageArgs {
    /// The client and the patient's ledger id.
    async fn resolve(&self) -> Result<(EhrClient, String)> {
        let client = self.connect.client().await?;
        let patient = self.connect.patient(&client, &self.patient_id).await?;
        Ok((client, patient))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `medledger ehr …` as cli/mod.rs will mount it.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        ehr: EhrCommand,
    }

    const CONNECT: [&str; 6] = [
        "--peer",
        "http://127.0.0.1:7051",
        "-M",
        "msp",
        "--mspid",
        "Org1MSP",
    ];

    fn parse(args: &[&str]) -> std::result::Result<EhrCommand, clap::Error> {
        let all: Vec<&str> = std::iter::once("ehr")
            .chain(args.iter().copied())
            .chain(CONNECT)
            .collect();
        Cli::try_parse_from(all).map(|c| c.ehr)
    }

    #[test]
    fn commands_parse() {
        let EhrCommand::Import(a) =
            parse(&["import", "a.json", "dir", "--concurrency", "8"]).unwrap()
        else {
            panic!("import")
        };
        assert_eq!(a.paths, [PathBuf::from("a.json"), PathBuf::from("dir")]);
        assert_eq!((a.concurrency, a.max_chunk_entries), (8, 500));
        assert_eq!(
            (a.connect.channel.as_str(), a.connect.chaincode.as_str()),
            ("ehr", "ehr")
        );

        let EhrCommand::Record(RecordCommand::Get(g)) = parse(&[
            "record",
            "get",
            "p1",
            "Observation/o1",
            "--purpose",
            "public-health",
        ])
        .unwrap() else {
            panic!("record get")
        };
        assert_eq!(g.purpose, Purpose::PublicHealth);
        assert_eq!(g.record.record_id, "Observation/o1");

        let EhrCommand::Consent(ConsentCommand::Grant(c)) = parse(&[
            "consent",
            "grant",
            "p1",
            "--grantee",
            "org:Org2MSP",
            "--purpose",
            "treatment",
            "--type",
            "Observation",
        ])
        .unwrap() else {
            panic!("consent grant")
        };
        assert_eq!(c.grantee, Grantee::Org("Org2MSP".into()));
        assert_eq!(c.resource_types, ["Observation"]);

        let EhrCommand::EmergencyRead(e) =
            parse(&["emergency-read", "p1", "Observation/o1", "--reason", "BTG"]).unwrap()
        else {
            panic!("emergency-read")
        };
        assert_eq!(e.reason, EmergencyReason::BreakTheGlass);

        for ok in [
            &["record", "history", "p1", "Observation/o1"][..],
            &["consent", "revoke", "p1", "c1"],
            &["consent", "list", "p1"],
            &["access", "request", "p1", "--purpose", "research"],
            &["access", "approve", "p1", "r1"],
            &["access", "reject", "p1", "r1"],
            &["access", "list", "p1"],
            &["audit", "p1", "--page-size", "200"],
            &["erasure", "p1", "Observation/o1"],
            &["purge", "p1", "Observation/o1"],
            &["share", "p1", "Observation/o1", "--grantee-org", "Org2MSP"],
            &[
                "record",
                "get",
                "p1",
                "Observation/o1",
                "--at-org",
                "Org2MSP",
            ],
            &["governance", "show"],
            &["governance", "join"],
            &["governance", "join", "--founders", "Org1MSP,Org2MSP"],
            &["governance", "admit", "Org3MSP"],
            &["governance", "approve", "Org3MSP", "emergency"],
            &["governance", "withdraw", "Org3MSP", "auditor"],
            &["whoami"],
            &[
                "ledger-id",
                "p1",
                "Observation/o1",
                "--custodian",
                "Org1MSP",
            ],
            &["set-pseudonym-key", "--key-file", "k"],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            &[
                "record",
                "get",
                "p1",
                "Observation/o1",
                "--purpose",
                "curiosity",
            ][..],
            &[
                "consent",
                "grant",
                "p1",
                "--grantee",
                "Org2MSP",
                "--purpose",
                "treatment",
            ],
            &[
                "emergency-read",
                "p1",
                "Observation/o1",
                "--reason",
                "bored",
            ],
            &["import"],
            &["share", "p1", "Observation/o1"],
            &["governance", "approve", "Org3MSP", "superuser"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
