//! The client side of the EHR application: typed calls of the EHR chaincode
//! (`docs/ehr-chaincode.md`) through the gateway client SDK, and the FHIR bundle importer.
//!
//! Independent of how the network was started: an [`EhrClient`] wraps an already connected
//! [`Contract`] (gateway → network → contract `ehr`) and signs as the gateway's identity.
//!
//! - [`EhrClient`]: everyday operations — patient registration, record metadata, history and
//!   the audited two-step read (`RequestRecordAccess` submitted, then `ReadRecord` evaluated
//!   on the custodian's peers, ADR 0023), consent grant/revoke/list, access requests and their
//!   approval, the audit trail, break-glass, sharing a copy with a consented organization,
//!   erasure and purge, and the governance of break-glass and auditor authority (ADR 0029).
//! - [`import`]: FHIR R4 transaction bundles to records with the two-transaction create of
//!   ADR 0020 (`ReserveRecords` under the channel policy, then `CreateRecordsFromBundle`
//!   endorsed by the custodian organization only), idempotent, with bounded concurrency.
//! - [`bundle`]: reading bundle files and cutting them into chunks.
//!
//! Errors carry function names, ids, statuses and codes from the chaincode (which never puts
//! PHI in them); resource contents never appear in errors or logs.

pub mod bundle;
pub mod import;

use std::time::{Duration, Instant};

use ehr_chaincode::functions as f;
use ehr_chaincode::ids::{Grantee, PseudonymKey, RecordId, check_ledger_patient_id};
use ehr_chaincode::model::{
    AccessEntry, AccessRequest, AdmitOutcome, Authority, AuthorityRole, Consent, ConsentStatus,
    Decision, EmergencyReason, ErasureRequest, FoundingConfirmation, GovernanceMember, JoinOutcome,
    JoinRequest, JoinStatus, PatientEntry, Purpose, RecordMeta, RecordStatus, RequestStatus,
    RoleApproval,
};
use ehr_chaincode::state_machine::AccessState;
use medledger_gateway::GatewayError;
use medledger_gateway::client::Contract;
use medledger_proto::protos::TxValidationCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use import::{ImportOptions, ImportProgress, ImportSummary, import};

/// Errors of the EHR client.
#[derive(Debug, thiserror::Error)]
pub enum EhrClientError {
    /// The chaincode refused or failed the call (status 400-599; messages carry ids only).
    #[error("{function}: chaincode status {status}: {message}")]
    Chaincode {
        /// Chaincode function.
        function: &'static str,
        /// Chaincode status (400 malformed, 403 forbidden, 404 unknown, 409 conflict, 410
        /// purged, 412 precondition failed, 500 internal).
        status: i32,
        /// The chaincode's message.
        message: String,
    },
    /// The gateway or the network failed the call (no chaincode status). The SDK's error is
    /// in the message and not returned as `source()`, so a report of the chain prints it once
    /// (ADR 0036).
    #[error("{function}: {error}")]
    Gateway {
        /// Chaincode function.
        function: &'static str,
        /// The SDK's error (in the message, not a source).
        error: GatewayError,
    },
    /// The transaction was ordered but committed invalid (e.g. an MVCC read conflict).
    #[error("{function}: transaction {tx_id} committed with status {code:?} in block {block}")]
    Invalid {
        /// Chaincode function.
        function: &'static str,
        /// Transaction id.
        tx_id: String,
        /// Validation code.
        code: TxValidationCode,
        /// Block number.
        block: u64,
    },
    /// The chaincode's response is not the JSON this client expects.
    #[error("{function}: the response does not decode as expected")]
    Decode {
        /// Chaincode function.
        function: &'static str,
    },
    /// The access decision of `RequestRecordAccess` was a denial (audited on the ledger).
    #[error("access {access_id} denied")]
    AccessDenied {
        /// Access id of the audited denial.
        access_id: String,
    },
    /// `EmergencyAccess` was denied on the ledger (a doctor or nurse without `ehr.emergency`,
    /// or of an organization without break-glass authority): audited, no window opened.
    #[error("break-glass {access_id} denied: {message}")]
    EmergencyDenied {
        /// Access id of the audited denial.
        access_id: String,
        /// The chaincode's reason (organizations and counts, no patient data).
        message: String,
    },
    /// Invalid options or arguments given to the client.
    #[error("{0}")]
    Usage(String),
}

impl EhrClientError {
    /// The chaincode status, if the chaincode answered with an error.
    pub fn chaincode_status(&self) -> Option<i32> {
        match self {
            EhrClientError::Chaincode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Maps an SDK error: chaincode refusals (a `chaincode response NNN, …` detail from the
    /// gateway, or an evaluated status ≥ 400) become [`EhrClientError::Chaincode`].
    fn from_gateway(function: &'static str, e: GatewayError) -> Self {
        match e {
            GatewayError::Chaincode { status, message } => EhrClientError::Chaincode {
                function,
                status,
                message,
            },
            GatewayError::Commit { tx_id, code, block } => EhrClientError::Invalid {
                function,
                tx_id,
                code,
                block,
            },
            GatewayError::Status { ref details, .. } => {
                let refusal = details.iter().find_map(|d| {
                    let rest = d.message.strip_prefix("chaincode response ")?;
                    let (status, message) = rest.split_once(", ")?;
                    let status: i32 = status.parse().ok()?;
                    (status >= 400).then(|| (status, message.to_owned()))
                });
                match refusal {
                    Some((status, message)) => EhrClientError::Chaincode {
                        function,
                        status,
                        message,
                    },
                    None => EhrClientError::Gateway { function, error: e },
                }
            }
            other => EhrClientError::Gateway {
                function,
                error: other,
            },
        }
    }
}

/// Result alias of the EHR client.
pub type Result<T, E = EhrClientError> = std::result::Result<T, E>;

/// A committed transaction's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Transaction id.
    pub tx_id: String,
    /// Block it was committed in.
    pub block: u64,
    /// The chaincode's response payload.
    pub payload: Vec<u8>,
    /// How long each step took, as this client saw it.
    pub timings: SubmitTimings,
}

/// Wall time of each step of a submitted transaction, as the client sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubmitTimings {
    /// Signing the proposal and the gateway's `Endorse` (simulation, endorsements).
    pub endorse: Duration,
    /// The gateway's `Submit` (the orderers accepting the envelope).
    pub submit: Duration,
    /// The gateway's `CommitStatus` (block cut, ordered, validated and committed).
    pub commit: Duration,
}

/// One page of a listing; `bookmark` is empty on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Page<T> {
    /// The items (`records`, `consents`, `requests` or `entries` in the chaincode's JSON).
    #[serde(
        alias = "records",
        alias = "consents",
        alias = "requests",
        alias = "entries"
    )]
    pub items: Vec<T>,
    /// Opaque bookmark of the next page (empty: none).
    pub bookmark: String,
}

/// `ListAuditEntries`: a page of access entries, and on the first page a summary.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuditPage {
    /// Access entries, oldest first.
    pub entries: Vec<AccessEntry>,
    /// Opaque bookmark of the next page (empty: none).
    pub bookmark: String,
    /// Counts over all entries (first page only).
    #[serde(default)]
    pub summary: Option<AuditSummary>,
}

/// Counts of a patient's audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct AuditSummary {
    /// Entries.
    pub total: u64,
    /// Granted accesses (and break-glass windows).
    pub granted: u64,
    /// Denied accesses.
    pub denied: u64,
    /// Break-glass windows and the accesses made under them.
    pub emergency: u64,
}

/// One committed version of a record (`GetRecordHistory`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RecordVersion {
    /// Transaction that wrote it.
    pub tx_id: String,
    /// Its block timestamp, ms since the Unix epoch.
    pub timestamp_ms: Option<u64>,
    /// Record version (0 reserved, 1 created, +1 per update).
    pub version: u64,
    /// Hex SHA-256 of the PHI at that version (empty while reserved).
    pub sha256: String,
    /// Author identity.
    pub author: String,
    /// Author's MSP id.
    pub author_msp: String,
    /// Status at that version.
    pub status: RecordStatus,
}

/// A patient named both ways: the clear FHIR `Patient.id` (PHI-adjacent: it travels only in
/// transient maps to the custodian's peers) and its ledger id (what the shared ledger holds,
/// ADR 0031).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPatient {
    /// `Patient.id`.
    pub patient_id: String,
    /// `p_<32 hex>`.
    pub ledger_id: String,
}

/// `LedgerIds`' result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct LedgerIds {
    /// The patient's ledger id `p_<32 hex>`.
    pub patient: String,
    /// The records' ledger ids `ResourceType/r_<32 hex>`, in the order asked.
    pub records: Vec<String>,
}

/// A record found by its FHIR id (`LocateRecords`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct LocatedRecord {
    /// The clear `ResourceType/id` asked about.
    pub record: String,
    /// The patient's ledger id `p_…`.
    pub patient: String,
    /// The record's ledger id `ResourceType/r_…`.
    pub record_id: String,
}

/// `SetPseudonymKey`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PseudonymKeySet {
    /// The collection holding the key (`<Msp>PHI`).
    pub collection: String,
    /// Whether it was stored now (false: the same key was already set).
    pub set: bool,
}

/// `CreateRecordsFromBundle`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BundleCreated {
    /// Records created.
    pub created: u64,
    /// Entries equal to records already stored.
    pub unchanged: u64,
}

/// `ReserveRecords`' result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Reserved {
    /// Keys reserved now.
    pub reserved: u64,
    /// Keys that already existed.
    pub existing: u64,
}

/// A consent granted (`GrantConsent`, `ApproveAccessRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ConsentGranted {
    /// Consent id (the granting transaction's id).
    pub consent_id: String,
    /// Access state of the grantee afterwards.
    pub state: AccessState,
}

/// A consent revoked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ConsentRevoked {
    /// Consent id.
    pub consent_id: String,
    /// Its status now (`inactive`).
    pub status: ConsentStatus,
}

/// An access request decided by the patient (`RejectAccessRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RequestDecided {
    /// Request id.
    pub request_id: String,
    /// Its status now.
    pub status: RequestStatus,
}

/// `GrantConsent`'s argument (FHIR `Consent`, one `permit` provision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentGrant {
    /// `Patient.id`.
    pub patient_id: String,
    /// Organization or identity given access.
    pub grantee: Grantee,
    /// Resource types in scope (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_types: Vec<String>,
    /// Purposes permitted.
    pub purposes: Vec<Purpose>,
    /// Duration, seconds.
    pub valid_for_s: u64,
}

/// `RequestAccess`' argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessRequestArgs {
    /// `Patient.id`.
    pub patient_id: String,
    /// Resource types asked for (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_types: Vec<String>,
    /// Purposes asked for.
    pub purposes: Vec<Purpose>,
    /// Consent duration asked for, seconds.
    pub valid_for_s: u64,
    /// Ask for the caller's identity only, not its organization.
    pub for_identity: bool,
}

/// A record access decision (`RequestRecordAccess`). A grant pins the record's current
/// version: `version`, `sha256` and `updated_at_ms` are set when granted (a FHIR `ETag` and
/// `Last-Modified` for grantees who may not read the metadata), absent when denied.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AccessDecision {
    /// Access id of the audit entry.
    pub access_id: String,
    /// Granted or denied.
    pub decision: Decision,
    /// The version granted (the only one `ReadRecord` then serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Hex SHA-256 of that version's exact bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// When that version was written (transaction time), ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<u64>,
}

/// A break-glass window opened (`EmergencyAccess`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct EmergencyOpened {
    /// Access id of the audit entry.
    pub access_id: String,
    /// When the window closes, ms.
    pub expires_at_ms: u64,
}

/// `RequestRecordsAccess`' query (serialized as the chaincode reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordsQuery {
    /// Resource types; empty = every type the caller may read.
    pub types: Vec<String>,
    /// Only records whose current version was written at or after this time, ms since the
    /// Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_since_ms: Option<u64>,
    /// Records per page, 1 to 200 (`None`: 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// The previous page's bookmark (`None` or empty: the first page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<String>,
}

/// One page of a search access (`RequestRecordsAccess`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RecordsAccess {
    /// Access id of the audit entry (`ReadRecords` takes it).
    pub access_id: String,
    /// Granted or denied.
    pub decision: Decision,
    /// The page's records, each pinned to the version granted.
    pub records: Vec<GrantedRecord>,
    /// The next page's bookmark; empty on the last page.
    pub bookmark: String,
}

/// A record a search access granted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct GrantedRecord {
    /// The record's ledger id `ResourceType/r_…`.
    pub record_id: String,
    /// The version granted.
    pub version: u64,
    /// Hex SHA-256 of that version's exact bytes.
    pub sha256: String,
    /// When that version was written (transaction time), ms since the Unix epoch.
    pub updated_at_ms: u64,
}

/// One record's exact bytes from `ReadRecords`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBytes {
    /// The record's ledger id `ResourceType/r_…`.
    pub record_id: String,
    /// The version read (pinned by the grant).
    pub version: u64,
    /// The resource's exact bytes (PHI: never log them).
    pub bytes: Vec<u8>,
}

/// A record read through the audited two-step read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRead {
    /// Access id of the audit entry that allowed the read.
    pub access_id: String,
    /// The version read (pinned by the grant).
    pub version: u64,
    /// Hex SHA-256 of `bytes` (the on-chain hash of that version).
    pub sha256: String,
    /// When that version was written (transaction time), ms since the Unix epoch.
    pub updated_at_ms: u64,
    /// The resource's exact bytes (PHI: never log them).
    pub bytes: Vec<u8>,
}

/// `PurgeRecord`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Purged {
    /// `ResourceType/id`.
    pub record_id: String,
    /// `purged`.
    pub status: RecordStatus,
    /// The hash that stays on the ledger.
    pub sha256: String,
}

/// `ShareRecord`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Shared {
    /// `ResourceType/id`.
    pub record_id: String,
    /// The organization that holds a copy now.
    pub grantee_msp: String,
    /// The share collection the copy is in.
    pub collection: String,
    /// Record version copied.
    pub version: u64,
    /// Its SHA-256.
    pub sha256: String,
    /// Purpose the consent permits.
    pub purpose: Purpose,
    /// The organization consent that allowed it.
    pub consent_id: String,
}

/// How the contract sees the caller (`WhoAmI`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WhoAmI {
    /// MSP id.
    pub msp_id: String,
    /// Identity id of the person (what `identity:` consents name; survives re-enrollment).
    pub identity_id: String,
    /// Id of this certificate.
    pub certificate_id: String,
    /// EHR role (`none` when absent).
    pub role: String,
    /// An admin of its organization's MSP (votes in EHR governance).
    pub msp_admin: bool,
    /// Carries `ehr.emergency=true`.
    pub emergency: bool,
}

/// An open request to join governance with the members that admitted it so far.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OpenRequest {
    /// The request.
    pub request: JoinRequest,
    /// Members that admitted it.
    pub admissions: Vec<String>,
}

/// A founding set confirmed by some of its founders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FoundingSet {
    /// Its id (hex SHA-256 of the sorted MSP ids joined with `,`).
    pub founding_set_id: String,
    /// The founders, sorted.
    pub founders: Vec<String>,
    /// Those that confirmed it.
    pub confirmed: Vec<String>,
}

/// `GetGovernance`: the governing organizations, every authority with an approval, open
/// requests to join and founding sets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Governance {
    /// Organizations taking part.
    pub members: Vec<GovernanceMember>,
    /// Authorities with at least one approval.
    pub authorities: Vec<Authority>,
    /// Requests to join not yet admitted.
    #[serde(default)]
    pub requests: Vec<OpenRequest>,
    /// Founding sets organizations confirm now: each organization's current confirmation,
    /// grouped by set (kept after the founding as its record).
    #[serde(default)]
    pub founding_sets: Vec<FoundingSet>,
    /// Member entries of the first design (no `admitted_by`, or fewer than two members): they
    /// count for nothing, and a founding replaces them (ADR 0029).
    #[serde(default)]
    pub legacy_members: Vec<GovernanceMember>,
}

/// What [`seed_governance`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    /// The founders' confirmations completed the founding now.
    Founded,
    /// Governance was already founded with every founding organization as a member: nothing
    /// done.
    AlreadyFounded,
    /// Governance is founded with other members than the founding organizations (founded by
    /// hand): nothing done.
    FoundedOtherwise {
        /// Its members.
        members: Vec<String>,
    },
    /// Fewer than two organizations: one organization alone never founds governance, so
    /// nobody holds break-glass or auditor authority.
    TooFewOrganizations,
}

/// How often and how long [`EhrClient::read_record`] waits for the access entry to reach the
/// custodian's peer (a peer other than the gateway's may commit a little later).
const READ_RETRIES: u32 = 10;
const READ_RETRY_DELAY: Duration = Duration::from_millis(200);

/// Typed calls of the EHR chaincode as the gateway's identity.
#[derive(Clone, Debug)]
pub struct EhrClient {
    contract: Contract,
}

fn decode<T: DeserializeOwned>(function: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|_| EhrClientError::Decode { function })
}

fn page_args<'a>(patient_id: &'a str, size: &'a str, bookmark: &'a str) -> [&'a str; 3] {
    [patient_id, size, bookmark]
}

impl EhrClient {
    /// A client of the EHR chaincode reached through `contract`.
    pub fn new(contract: Contract) -> Self {
        EhrClient { contract }
    }

    /// The contract used.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// The MSP id of the identity this client signs as.
    pub fn msp_id(&self) -> &str {
        self.contract.identity().msp_id()
    }

    /// Submits `function` (endorse, order, wait for the commit). `transient` is sent to the
    /// endorsers only; `endorsing_org`, if given, is the only organization asked to endorse
    /// (the custodian, for PHI-carrying functions).
    ///
    /// # Errors
    /// [`EhrClientError::Chaincode`] if an endorser's chaincode refused, [`EhrClientError::
    /// Invalid`] if it committed invalid, [`EhrClientError::Gateway`] otherwise.
    pub async fn submit(
        &self,
        function: &'static str,
        args: &[&str],
        transient: &[(&str, &[u8])],
        endorsing_org: Option<&str>,
    ) -> Result<Committed> {
        let err = |e| EhrClientError::from_gateway(function, e);
        let mut builder = self.contract.new_proposal(function).args(args);
        for (key, value) in transient {
            builder = builder.with_transient(key, value);
        }
        if let Some(org) = endorsing_org {
            builder = builder.with_endorsing_organizations(&[org]);
        }
        let started = Instant::now();
        let tx = builder.build().map_err(err)?.endorse().await.map_err(err)?;
        let endorsed = Instant::now();
        let payload = tx.result().to_vec();
        let commit = tx.submit().await.map_err(err)?;
        let submitted = Instant::now();
        let (code, block) = commit.status().await.map_err(err)?;
        let timings = SubmitTimings {
            endorse: endorsed - started,
            submit: submitted - endorsed,
            commit: submitted.elapsed(),
        };
        tracing::debug!(target: "ehr_client", function, tx_id = %commit.tx_id, block, ?code, "committed");
        if code != TxValidationCode::Valid {
            return Err(EhrClientError::Invalid {
                function,
                tx_id: commit.tx_id,
                code,
                block,
            });
        }
        Ok(Committed {
            tx_id: commit.tx_id,
            block,
            payload,
            timings,
        })
    }

    /// Evaluates `function` on one peer (of `target_org` if given); nothing is written.
    ///
    /// # Errors
    /// As [`Self::submit`], without `Invalid`.
    pub async fn evaluate(
        &self,
        function: &'static str,
        args: &[&str],
        target_org: Option<&str>,
    ) -> Result<Vec<u8>> {
        self.evaluate_with(function, args, &[], target_org).await
    }

    /// [`Self::evaluate`] with a transient map (sent to that peer only, never ordered).
    ///
    /// # Errors
    /// As [`Self::evaluate`].
    pub async fn evaluate_with(
        &self,
        function: &'static str,
        args: &[&str],
        transient: &[(&str, &[u8])],
        target_org: Option<&str>,
    ) -> Result<Vec<u8>> {
        let err = |e| EhrClientError::from_gateway(function, e);
        let mut builder = self.contract.new_proposal(function).args(args);
        for (key, value) in transient {
            builder = builder.with_transient(key, value);
        }
        if let Some(org) = target_org {
            builder = builder.with_endorsing_organizations(&[org]);
        }
        builder.build().map_err(err)?.evaluate().await.map_err(err)
    }

    async fn submit_json<T: DeserializeOwned>(
        &self,
        function: &'static str,
        args: &[&str],
    ) -> Result<T> {
        let c = self.submit(function, args, &[], None).await?;
        decode(function, &c.payload)
    }

    async fn evaluate_json<T: DeserializeOwned>(
        &self,
        function: &'static str,
        args: &[&str],
    ) -> Result<T> {
        decode(function, &self.evaluate(function, args, None).await?)
    }

    /// `GetPatient`: the patient's custodian and collection; `None` if not registered.
    ///
    /// # Errors
    /// [`EhrClientError`] other than 404.
    pub async fn get_patient(&self, patient_id: &str) -> Result<Option<PatientEntry>> {
        match self.evaluate_json(f::GET_PATIENT, &[patient_id]).await {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.chaincode_status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `RegisterPatient` (admin or registrar): the caller's organization becomes custodian.
    ///
    /// # Errors
    /// 409 if already registered, 403 without the role.
    pub async fn register_patient(
        &self,
        patient_id: &str,
        collection: Option<&str>,
    ) -> Result<PatientEntry> {
        let mut args = vec![patient_id];
        args.extend(collection);
        self.submit_json(f::REGISTER_PATIENT, &args).await
    }

    /// `ReserveRecords` (≤ 500 ids `ResourceType/id`, channel policy): step 1 of a create.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn reserve_records(&self, patient_id: &str, record_ids: &[&str]) -> Result<Reserved> {
        let ids = serde_json::to_string(record_ids)
            .map_err(|_| EhrClientError::Usage("record ids do not encode".into()))?;
        self.submit_json(f::RESERVE_RECORDS, &[patient_id, &ids])
            .await
    }

    /// `CreateRecordsFromBundle` for the patient `patient` (ledger id and clear `Patient.id`)
    /// with `bundle` (≤ 1 MiB, ≤ 500 entries) and the clear id in the transient map, endorsed
    /// by `custodian_msp` only: step 2 of a create (ADR 0020, ADR 0031).
    ///
    /// # Errors
    /// [`EhrClientError`]; 409 if a record is not reserved or differs from a stored one.
    pub async fn create_records_from_bundle(
        &self,
        patient: &LedgerPatient,
        custodian_msp: &str,
        bundle: &[u8],
    ) -> Result<BundleCreated> {
        let c = self
            .submit(
                f::CREATE_RECORDS_FROM_BUNDLE,
                &[&patient.ledger_id],
                &[
                    (ehr_chaincode::TRANSIENT_BUNDLE, bundle),
                    (
                        ehr_chaincode::TRANSIENT_PATIENT,
                        patient.patient_id.as_bytes(),
                    ),
                ],
                Some(custodian_msp),
            )
            .await?;
        decode(f::CREATE_RECORDS_FROM_BUNDLE, &c.payload)
    }

    /// `CreateRecord` with one FHIR resource's exact bytes and the clear `Patient.id` in the
    /// transient map, endorsed by `custodian_msp` only: step 2 of a single-record create
    /// (ADR 0020, ADR 0031). Returns the commit.
    ///
    /// # Errors
    /// [`EhrClientError`]; 409 if the record is not reserved or exists already.
    pub async fn create_record(
        &self,
        patient: &LedgerPatient,
        custodian_msp: &str,
        resource: &[u8],
    ) -> Result<Committed> {
        self.write_record(
            f::CREATE_RECORD,
            &[&patient.ledger_id],
            patient,
            custodian_msp,
            resource,
        )
        .await
    }

    /// `UpdateRecord` with a FHIR resource's new exact bytes and the clear `Patient.id` in the
    /// transient map, endorsed by `custodian_msp` only; the record's version goes up by one.
    /// With `expected_version` (FHIR's `If-Match: W/"n"`) the chaincode refuses, writing
    /// nothing, when the record is at another version. Returns the commit (its payload is
    /// `{record_id, version, sha256}`).
    ///
    /// # Errors
    /// [`EhrClientError`]: chaincode 412 when `expected_version` is not the current one, and
    /// an [`EhrClientError::Invalid`] MVCC conflict when another update committed between
    /// endorsement and commit; 404 unknown record, 410 purged.
    pub async fn update_record(
        &self,
        patient: &LedgerPatient,
        custodian_msp: &str,
        resource: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Committed> {
        let expected = expected_version.map(|v| v.to_string());
        let mut args = vec![patient.ledger_id.as_str()];
        args.extend(expected.as_deref());
        self.write_record(f::UPDATE_RECORD, &args, patient, custodian_msp, resource)
            .await
    }

    /// Submits a PHI-carrying record write: `resource` and the clear `Patient.id` in the
    /// transient map, endorsed by `custodian_msp` only.
    async fn write_record(
        &self,
        function: &'static str,
        args: &[&str],
        patient: &LedgerPatient,
        custodian_msp: &str,
        resource: &[u8],
    ) -> Result<Committed> {
        self.submit(
            function,
            args,
            &[
                (ehr_chaincode::TRANSIENT_RESOURCE, resource),
                (
                    ehr_chaincode::TRANSIENT_PATIENT,
                    patient.patient_id.as_bytes(),
                ),
            ],
            Some(custodian_msp),
        )
        .await
    }

    /// `SetPseudonymKey` (an EHR admin): stores `key` as the pseudonym key of the caller's
    /// organization in its own PHI collection, endorsed by its own peers only (ADR 0031).
    /// Setting the key already set succeeds (`set` false).
    ///
    /// # Errors
    /// 403 without the admin role; 409 if another key is set.
    pub async fn set_pseudonym_key(&self, key: &PseudonymKey) -> Result<PseudonymKeySet> {
        let own = self.msp_id().to_owned();
        let transient = [(
            ehr_chaincode::TRANSIENT_PSEUDONYM_KEY,
            key.as_bytes().as_slice(),
        )];
        // Evaluated first: when the key is already set the call writes nothing, and a
        // read-only transaction endorsed by one organization would commit invalid (it falls
        // under the chaincode's policy).
        let dry = self
            .evaluate_with(f::SET_PSEUDONYM_KEY, &[], &transient, Some(&own))
            .await?;
        let dry: PseudonymKeySet = decode(f::SET_PSEUDONYM_KEY, &dry)?;
        if !dry.set {
            return Ok(dry);
        }
        let c = self
            .submit(f::SET_PSEUDONYM_KEY, &[], &transient, Some(&own))
            .await?;
        decode(f::SET_PSEUDONYM_KEY, &c.payload)
    }

    /// `LedgerIds`, evaluated on a peer of `custodian_msp` (default: the caller's
    /// organization), the only peers holding its pseudonym key: the ledger ids of the patient
    /// whose `Patient.id` is `patient_id` and of its resources `resources` (`ResourceType/id`,
    /// ≤ 500), in order. The clear ids travel in the transient map to that peer only.
    ///
    /// # Errors
    /// 403 unless the caller is the custodian's staff, the patient, or a clinician allowed to
    /// write these records; 404 if the custodian has no pseudonym key.
    pub async fn ledger_ids(
        &self,
        custodian_msp: Option<&str>,
        patient_id: &str,
        resources: &[&str],
    ) -> Result<LedgerIds> {
        let custodian = custodian_msp.unwrap_or(self.msp_id()).to_owned();
        let ids = serde_json::to_vec(&serde_json::json!({
            "patient": patient_id,
            "records": resources,
        }))
        .map_err(|_| EhrClientError::Usage("ids do not encode".into()))?;
        let bytes = self
            .evaluate_with(
                f::LEDGER_IDS,
                &[&custodian],
                &[(ehr_chaincode::TRANSIENT_IDS, &ids)],
                Some(&custodian),
            )
            .await?;
        decode(f::LEDGER_IDS, &bytes)
    }

    /// `LocateRecords`, evaluated on a peer of `custodian_msp` (default: the caller's
    /// organization), the only peers holding its locators: finds records by their FHIR id
    /// alone, `resources` (`ResourceType/id`, 1 to 500) in the transient map to that peer only.
    /// One answer per resource, in order: `None` when no record was created under that id or
    /// the caller may not learn it.
    ///
    /// # Errors
    /// 403 unless the caller is the custodian's staff or registrar, one of its patients, or a
    /// clinician (doctor, nurse, lab); 400 for malformed ids; 404 if the custodian has no
    /// pseudonym key.
    pub async fn locate_records(
        &self,
        custodian_msp: Option<&str>,
        resources: &[&str],
    ) -> Result<Vec<Option<LocatedRecord>>> {
        #[derive(Deserialize)]
        struct Located {
            records: Vec<Option<LocatedRecord>>,
        }
        let custodian = custodian_msp.unwrap_or(self.msp_id()).to_owned();
        let input = serde_json::to_vec(&serde_json::json!({ "records": resources }))
            .map_err(|_| EhrClientError::Usage("record ids do not encode".into()))?;
        let bytes = self
            .evaluate_with(
                f::LOCATE_RECORDS,
                &[&custodian],
                &[(ehr_chaincode::TRANSIENT_RECORDS, &input)],
                Some(&custodian),
            )
            .await?;
        let located: Located = decode(f::LOCATE_RECORDS, &bytes)?;
        if located.records.len() != resources.len() {
            return Err(EhrClientError::Decode {
                function: f::LOCATE_RECORDS,
            });
        }
        Ok(located.records)
    }

    /// The ledger id of a patient given either way: a ledger id (`p_…`) as it is, a
    /// `Patient.id` through [`Self::ledger_ids`] at `custodian_msp` (default: the caller's
    /// organization).
    ///
    /// # Errors
    /// As [`Self::ledger_ids`].
    pub async fn resolve_patient(
        &self,
        patient: &str,
        custodian_msp: Option<&str>,
    ) -> Result<String> {
        if check_ledger_patient_id(patient).is_ok() {
            return Ok(patient.to_owned());
        }
        Ok(self.ledger_ids(custodian_msp, patient, &[]).await?.patient)
    }

    /// The ledger ids of a patient and one of its records given either way: ledger ids as
    /// they are; a `Patient.id` and a `ResourceType/id` through [`Self::ledger_ids`].
    ///
    /// # Errors
    /// [`EhrClientError::Usage`] for a resource id with a patient's ledger id (the clear
    /// `Patient.id` is needed to translate it); as [`Self::ledger_ids`].
    pub async fn resolve_record(
        &self,
        patient: &str,
        record: &str,
        custodian_msp: Option<&str>,
    ) -> Result<(String, String)> {
        let ledger_record = record.parse::<RecordId>().is_ok();
        if check_ledger_patient_id(patient).is_ok() {
            if ledger_record {
                return Ok((patient.to_owned(), record.to_owned()));
            }
            return Err(EhrClientError::Usage(
                "a resource id translates with the Patient.id, not the patient's ledger id; \
                 give both clear ids or both ledger ids"
                    .into(),
            ));
        }
        if ledger_record {
            let p = self.resolve_patient(patient, custodian_msp).await?;
            return Ok((p, record.to_owned()));
        }
        let ids = self.ledger_ids(custodian_msp, patient, &[record]).await?;
        let r = ids
            .records
            .into_iter()
            .next()
            .ok_or(EhrClientError::Decode {
                function: f::LEDGER_IDS,
            })?;
        Ok((ids.patient, r))
    }

    /// `ReadRecordMetadata`: a record's public metadata.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn record_metadata(&self, patient_id: &str, record_id: &str) -> Result<RecordMeta> {
        self.evaluate_json(f::READ_RECORD_METADATA, &[patient_id, record_id])
            .await
    }

    /// `GetRecordHistory`: every committed version, newest first.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn record_history(
        &self,
        patient_id: &str,
        record_id: &str,
    ) -> Result<Vec<RecordVersion>> {
        self.evaluate_json(f::GET_RECORD_HISTORY, &[patient_id, record_id])
            .await
    }

    /// `ListRecords`: one page of record metadata (page size 1-200).
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn list_records(
        &self,
        patient_id: &str,
        page_size: u32,
        bookmark: &str,
    ) -> Result<Page<RecordMeta>> {
        let size = page_size.to_string();
        self.evaluate_json(f::LIST_RECORDS, &page_args(patient_id, &size, bookmark))
            .await
    }

    /// Every record's metadata of a patient, through all `ListRecords` pages.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn all_records(&self, patient_id: &str) -> Result<Vec<RecordMeta>> {
        let mut out = Vec::new();
        let mut bookmark = String::new();
        loop {
            let page = self
                .list_records(
                    patient_id,
                    ehr_chaincode::MAX_PAGE_SIZE.unsigned_abs(),
                    &bookmark,
                )
                .await?;
            out.extend(page.items);
            if page.bookmark.is_empty() {
                return Ok(out);
            }
            bookmark = page.bookmark;
        }
    }

    /// `RequestRecordAccess` (submitted, audited): the access decision.
    ///
    /// # Errors
    /// [`EhrClientError`] (403 if the caller's relation is Blocked or its role does not fit).
    pub async fn request_record_access(
        &self,
        patient_id: &str,
        record_id: &str,
        purpose: Purpose,
    ) -> Result<AccessDecision> {
        self.submit_json(
            f::REQUEST_RECORD_ACCESS,
            &[patient_id, record_id, purpose_arg(purpose)],
        )
        .await
    }

    /// `ReadRecord` (evaluated only, never submitted) on a peer of `org`: the exact bytes for
    /// a committed, granted, fresh access entry of the caller. Retries briefly while the entry
    /// is not yet committed on that peer.
    ///
    /// # Errors
    /// [`EhrClientError`] (403 not granted or stale, 409 updated since the grant: request
    /// access again, 410 purged).
    pub async fn read_record_with(
        &self,
        patient_id: &str,
        access_id: &str,
        org: &str,
    ) -> Result<Vec<u8>> {
        self.evaluate_phi(f::READ_RECORD, &[patient_id, access_id], org)
            .await
    }

    /// Evaluates a PHI-returning read (`ReadRecord`, `ReadRecords`: never submitted) on a
    /// peer of `org`, retrying briefly while that peer has not yet committed the access entry
    /// (404 `access entry …`).
    async fn evaluate_phi(
        &self,
        function: &'static str,
        args: &[&str],
        org: &str,
    ) -> Result<Vec<u8>> {
        let mut attempt = 0;
        loop {
            match self.evaluate(function, args, Some(org)).await {
                Err(e)
                    if e.chaincode_status() == Some(404)
                        && attempt < READ_RETRIES
                        && matches!(&e, EhrClientError::Chaincode { message, .. }
                            if message.starts_with("access entry")) =>
                {
                    attempt += 1;
                    tokio::time::sleep(READ_RETRY_DELAY).await;
                }
                other => return other,
            }
        }
    }

    /// `RequestRecordsAccess` (submitted, audited): one page of the patient's records the
    /// caller may read for `purpose`, matching `query`, each pinned to its current version,
    /// under one access entry (`search_access`). `decision` is `Granted` when some type asked
    /// is; `records` then lists the page (ids and metadata, no PHI) and `bookmark` continues
    /// it (empty on the last page).
    ///
    /// # Errors
    /// [`EhrClientError`] (403 role not fitting the purpose or a Blocked relation, 400
    /// malformed query, 404 unknown patient).
    pub async fn request_records_access(
        &self,
        patient_id: &str,
        purpose: Purpose,
        query: &RecordsQuery,
    ) -> Result<RecordsAccess> {
        let json = serde_json::to_string(query)
            .map_err(|_| EhrClientError::Usage("query does not encode".into()))?;
        self.submit_json(
            f::REQUEST_RECORDS_ACCESS,
            &[patient_id, purpose_arg(purpose), &json],
        )
        .await
    }

    /// `ReadRecords` (evaluated only, never submitted) on a peer of `org`, every part (the
    /// chaincode answers at most 4 MiB of resources at a time): the exact bytes of each record
    /// a granted, committed, fresh search access entry of the caller lists, in its order.
    /// Retries briefly while the entry is not yet committed on that peer.
    ///
    /// # Errors
    /// [`EhrClientError`] (403 not granted, not a search access or stale, 409 a record updated
    /// since the grant: request access again, 410 one purged).
    pub async fn read_records(
        &self,
        patient_id: &str,
        access_id: &str,
        org: &str,
    ) -> Result<Vec<RecordBytes>> {
        #[derive(Deserialize)]
        struct Item {
            record_id: String,
            version: u64,
            resource: Box<serde_json::value::RawValue>,
        }
        #[derive(Deserialize)]
        struct Part {
            records: Vec<Item>,
            #[serde(default)]
            next: Option<usize>,
        }
        let mut out = Vec::new();
        let mut start = 0usize;
        loop {
            let index = start.to_string();
            let mut args = vec![patient_id, access_id];
            if start > 0 {
                args.push(&index);
            }
            let bytes = self.evaluate_phi(f::READ_RECORDS, &args, org).await?;
            let part: Part = decode(f::READ_RECORDS, &bytes)?;
            out.extend(part.records.into_iter().map(|i| RecordBytes {
                record_id: i.record_id,
                version: i.version,
                bytes: i.resource.get().as_bytes().to_vec(),
            }));
            match part.next {
                // Each part serves at least one record: a `next` not ahead is a broken answer.
                Some(next) if next > start => start = next,
                Some(_) => {
                    return Err(EhrClientError::Decode {
                        function: f::READ_RECORDS,
                    });
                }
                None => return Ok(out),
            }
        }
    }

    /// The audited two-step read (ADR 0023): `RequestRecordAccess` (submitted), then
    /// `ReadRecord` (evaluated on the custodian's peers, which hold the PHI).
    ///
    /// # Errors
    /// [`EhrClientError::AccessDenied`] if the decision is a denial (it is audited), 404 if the
    /// patient is not registered, and as [`Self::read_record_with`].
    pub async fn read_record(
        &self,
        patient_id: &str,
        record_id: &str,
        purpose: Purpose,
    ) -> Result<RecordRead> {
        let custodian = self.custodian_of(patient_id).await?;
        self.read_record_at(patient_id, record_id, purpose, &custodian)
            .await
    }

    /// The MSP id of the patient's custodian (`GetPatient`).
    ///
    /// # Errors
    /// A 404 [`EhrClientError::Chaincode`] if the patient is not registered (the message
    /// names no patient id), and as [`Self::get_patient`].
    async fn custodian_of(&self, patient_id: &str) -> Result<String> {
        self.get_patient(patient_id)
            .await?
            .map(|p| p.custodian_msp)
            .ok_or_else(|| EhrClientError::Chaincode {
                function: f::GET_PATIENT,
                status: 404,
                message: "patient not found".into(),
            })
    }

    /// The audited two-step read with the `ReadRecord` evaluated on a peer of `org` — e.g. the
    /// caller's own organization, which serves a copy the custodian shared with it
    /// (`ShareRecord`), so the PHI comes from the caller's own peers.
    ///
    /// # Errors
    /// As [`Self::read_record`].
    pub async fn read_record_at(
        &self,
        patient_id: &str,
        record_id: &str,
        purpose: Purpose,
        org: &str,
    ) -> Result<RecordRead> {
        let decision = self
            .request_record_access(patient_id, record_id, purpose)
            .await?;
        if decision.decision != Decision::Granted {
            return Err(EhrClientError::AccessDenied {
                access_id: decision.access_id,
            });
        }
        let (Some(version), Some(sha256), Some(updated_at_ms)) =
            (decision.version, decision.sha256, decision.updated_at_ms)
        else {
            return Err(EhrClientError::Decode {
                function: f::REQUEST_RECORD_ACCESS,
            });
        };
        let bytes = self
            .read_record_with(patient_id, &decision.access_id, org)
            .await?;
        Ok(RecordRead {
            access_id: decision.access_id,
            version,
            sha256,
            updated_at_ms,
            bytes,
        })
    }

    /// `ShareRecord` (custodian staff), endorsed by the patient's custodian only (its peers
    /// hold the PHI it copies): copies a record to the share collection of the custodian and
    /// `grantee_msp`, under a consent of the patient to that organization covering the
    /// record's type and `purpose`.
    ///
    /// # Errors
    /// [`EhrClientError`] (403 without such a consent, 404 unknown patient or record).
    pub async fn share_record(
        &self,
        patient_id: &str,
        record_id: &str,
        grantee_msp: &str,
        purpose: Purpose,
    ) -> Result<Shared> {
        let custodian = self.custodian_of(patient_id).await?;
        let c = self
            .submit(
                f::SHARE_RECORD,
                &[patient_id, record_id, grantee_msp, purpose.as_str()],
                &[],
                Some(&custodian),
            )
            .await?;
        decode(f::SHARE_RECORD, &c.payload)
    }

    /// `WhoAmI`: how the contract sees this client's identity.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn who_am_i(&self) -> Result<WhoAmI> {
        self.evaluate_json(f::WHO_AM_I, &[]).await
    }

    /// `JoinGovernance` (an MSP admin). With `founders` (the caller's organization among 2
    /// to 64 MSP ids), before governance exists: confirms that founding set; the last
    /// founder's confirmation founds governance, every founder approving every founder's
    /// break-glass and auditor authority. Confirming again is harmless. Without, once
    /// governance exists: asks the members to admit the caller's organization (`admit_member`).
    /// Approves nothing else (ADR 0029).
    ///
    /// # Errors
    /// [`EhrClientError`] (403 not an MSP admin, 400 a malformed founding set, 409 already a
    /// member or asked, a founding set once founded, a request before).
    pub async fn join_governance(&self, founders: Option<&[String]>) -> Result<JoinOutcome> {
        match founders {
            Some(list) => {
                self.submit_json(f::JOIN_GOVERNANCE, &[list.join(",").as_str()])
                    .await
            }
            None => self.submit_json(f::JOIN_GOVERNANCE, &[]).await,
        }
    }

    /// `WithdrawFounding` (an MSP admin), before governance is founded: takes back its
    /// organization's founding confirmation; returns it.
    ///
    /// # Errors
    /// [`EhrClientError`] (403 not an MSP admin, 404 nothing confirmed, 409 founded).
    pub async fn withdraw_founding(&self) -> Result<FoundingConfirmation> {
        self.submit_json(f::WITHDRAW_FOUNDING, &[]).await
    }

    /// `AdmitMember` (an MSP admin of a member): its organization consents to `org`'s request
    /// to join; the consent that makes a majority of the members makes `org` a member.
    ///
    /// # Errors
    /// [`EhrClientError`] (403 not a member's admin, 404 no request, 409 already a member or
    /// already admitted).
    pub async fn admit_member(&self, org: &str) -> Result<AdmitOutcome> {
        self.submit_json(f::ADMIT_MEMBER, &[org]).await
    }

    /// `ApproveRoleAuthority` (an MSP admin of a governing organization, or of one that asked
    /// to join): its organization approves `org` (a member) holding `role`
    /// ([`Self::role_authority`] tells whether it is in force).
    ///
    /// # Errors
    /// [`EhrClientError`] (403, 404 `org` is not a member, 409 already approved).
    pub async fn approve_role_authority(
        &self,
        org: &str,
        role: AuthorityRole,
    ) -> Result<RoleApproval> {
        self.submit_json(f::APPROVE_ROLE_AUTHORITY, &[org, role.as_str()])
            .await
    }

    /// `WithdrawRoleAuthority` (an MSP admin of a governing organization): the approval
    /// removed.
    ///
    /// # Errors
    /// [`EhrClientError`] (403, 404 no such approval).
    pub async fn withdraw_role_authority(
        &self,
        org: &str,
        role: AuthorityRole,
    ) -> Result<RoleApproval> {
        self.submit_json(f::WITHDRAW_ROLE_AUTHORITY, &[org, role.as_str()])
            .await
    }

    /// `GetRoleAuthority`: whether `org` holds `role`, with its approvals.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn role_authority(&self, org: &str, role: AuthorityRole) -> Result<Authority> {
        self.evaluate_json(f::GET_ROLE_AUTHORITY, &[org, role.as_str()])
            .await
    }

    /// `GetGovernance`: members, authorities, open requests, founding sets.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn governance(&self) -> Result<Governance> {
        self.evaluate_json(f::GET_GOVERNANCE, &[]).await
    }

    /// `EmergencyAccess` (doctor or nurse with `ehr.emergency=true` of an organization holding
    /// break-glass authority): opens a break-glass window of `window_s` seconds (default and
    /// at most 24 h).
    ///
    /// # Errors
    /// [`EhrClientError::EmergencyDenied`] when the chaincode denied it on the ledger (audited);
    /// other [`EhrClientError`]s (403 other roles or Blocked, 400, 404: nothing written).
    pub async fn emergency_access(
        &self,
        patient_id: &str,
        reason: EmergencyReason,
        window_s: Option<u64>,
    ) -> Result<EmergencyOpened> {
        /// `EmergencyAccess`'s answer, granted or denied.
        #[derive(Deserialize)]
        struct Answer {
            access_id: String,
            decision: Option<Decision>,
            expires_at_ms: Option<u64>,
            message: Option<String>,
        }
        let code = match reason {
            EmergencyReason::EmergencyTreatment => "ETREAT",
            EmergencyReason::BreakTheGlass => "BTG",
        };
        let window = window_s.map(|s| s.to_string());
        let mut args = vec![patient_id, code];
        args.extend(window.as_deref());
        let answer: Answer = self.submit_json(f::EMERGENCY_ACCESS, &args).await?;
        match (answer.decision, answer.expires_at_ms) {
            (Some(Decision::Denied), _) => Err(EhrClientError::EmergencyDenied {
                access_id: answer.access_id,
                message: answer.message.unwrap_or_default(),
            }),
            (_, Some(expires_at_ms)) => Ok(EmergencyOpened {
                access_id: answer.access_id,
                expires_at_ms,
            }),
            (_, None) => Err(EhrClientError::Decode {
                function: f::EMERGENCY_ACCESS,
            }),
        }
    }

    /// Break-glass read: opens a window ([`Self::emergency_access`]) then reads the record
    /// for treatment through the audited two-step read.
    ///
    /// # Errors
    /// As both calls.
    pub async fn emergency_read(
        &self,
        patient_id: &str,
        record_id: &str,
        reason: EmergencyReason,
        window_s: Option<u64>,
    ) -> Result<(EmergencyOpened, RecordRead)> {
        let opened = self.emergency_access(patient_id, reason, window_s).await?;
        let read = self
            .read_record(patient_id, record_id, Purpose::Treatment)
            .await?;
        Ok((opened, read))
    }

    /// `GrantConsent` (the patient).
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn grant_consent(&self, grant: &ConsentGrant) -> Result<ConsentGranted> {
        let json = serde_json::to_string(grant)
            .map_err(|_| EhrClientError::Usage("consent does not encode".into()))?;
        self.submit_json(f::GRANT_CONSENT, &[&json]).await
    }

    /// `RevokeConsent` (the patient).
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn revoke_consent(
        &self,
        patient_id: &str,
        consent_id: &str,
    ) -> Result<ConsentRevoked> {
        self.submit_json(f::REVOKE_CONSENT, &[patient_id, consent_id])
            .await
    }

    /// `ListConsents` (the patient, auditors): one page.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn list_consents(
        &self,
        patient_id: &str,
        page_size: u32,
        bookmark: &str,
    ) -> Result<Page<Consent>> {
        let size = page_size.to_string();
        self.evaluate_json(f::LIST_CONSENTS, &page_args(patient_id, &size, bookmark))
            .await
    }

    /// `GetConsent` (the patient, auditors): one consent by id, whatever its status.
    ///
    /// # Errors
    /// [`EhrClientError`] (404 no such consent of the patient, 403 another caller).
    pub async fn get_consent(&self, patient_id: &str, consent_id: &str) -> Result<Consent> {
        self.evaluate_json(f::GET_CONSENT, &[patient_id, consent_id])
            .await
    }

    /// `RequestAccess` (doctor, nurse, lab, insurer, researcher): the request id.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn request_access(&self, request: &AccessRequestArgs) -> Result<String> {
        #[derive(Deserialize)]
        struct Filed {
            request_id: String,
        }
        let json = serde_json::to_string(request)
            .map_err(|_| EhrClientError::Usage("access request does not encode".into()))?;
        let filed: Filed = self.submit_json(f::REQUEST_ACCESS, &[&json]).await?;
        Ok(filed.request_id)
    }

    /// `ApproveAccessRequest` (the patient): grants the consent asked for.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn approve_access_request(
        &self,
        patient_id: &str,
        request_id: &str,
    ) -> Result<ConsentGranted> {
        self.submit_json(f::APPROVE_ACCESS_REQUEST, &[patient_id, request_id])
            .await
    }

    /// `RejectAccessRequest` (the patient).
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn reject_access_request(
        &self,
        patient_id: &str,
        request_id: &str,
    ) -> Result<RequestDecided> {
        self.submit_json(f::REJECT_ACCESS_REQUEST, &[patient_id, request_id])
            .await
    }

    /// `ListAccessRequests` (the patient, auditors): one page.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn list_access_requests(
        &self,
        patient_id: &str,
        page_size: u32,
        bookmark: &str,
    ) -> Result<Page<AccessRequest>> {
        let size = page_size.to_string();
        self.evaluate_json(
            f::LIST_ACCESS_REQUESTS,
            &page_args(patient_id, &size, bookmark),
        )
        .await
    }

    /// `ListAuditEntries` (the patient, auditors): one page, with the summary on the first.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn audit_entries(
        &self,
        patient_id: &str,
        page_size: u32,
        bookmark: &str,
    ) -> Result<AuditPage> {
        let size = page_size.to_string();
        self.evaluate_json(
            f::LIST_AUDIT_ENTRIES,
            &page_args(patient_id, &size, bookmark),
        )
        .await
    }

    /// `RequestErasure` (the patient): asks the custodian to purge a record's PHI.
    ///
    /// # Errors
    /// [`EhrClientError`].
    pub async fn request_erasure(
        &self,
        patient_id: &str,
        record_id: &str,
    ) -> Result<ErasureRequest> {
        self.submit_json(f::REQUEST_ERASURE, &[patient_id, record_id])
            .await
    }

    /// `PurgeRecord` (custodian admin, on a pending erasure request).
    ///
    /// # Errors
    /// [`EhrClientError`] (409 without a pending request, 410 already purged).
    pub async fn purge_record(&self, patient_id: &str, record_id: &str) -> Result<Purged> {
        self.submit_json(f::PURGE_RECORD, &[patient_id, record_id])
            .await
    }
}

/// Rounds of founding confirmations [`seed_governance`] makes (250 ms apart) while endorsing
/// peers have not yet committed the earlier ones.
const GOVERNANCE_ATTEMPTS: u32 = 40;

/// Seeds the governance of a channel (`network up`, ADR 0029): each of `admins` (one MSP
/// admin per founding organization) confirms the founding set of all their organizations;
/// the last confirmation founds governance, every founder approving every founder's
/// break-glass and auditor authority. An organization that joins the channel later gets
/// them only once a majority of the members admitted it and approved them.
///
/// Idempotent: it first reads the governance and does nothing once it is founded; a
/// confirmation already made is confirmed again harmlessly, so running it again after a
/// partial failure completes the founding. A confirmation endorsed by a peer that has not yet
/// committed an earlier one is retried. Fewer than two organizations: nothing is done (one
/// organization alone never founds).
///
/// # Errors
/// The first refused or failed call that retrying does not cure.
pub async fn seed_governance(admins: &[EhrClient]) -> Result<Seeded> {
    let mut founders = Vec::new();
    for admin in admins {
        founders.push(admin.who_am_i().await?.msp_id);
    }
    founders.sort_unstable();
    founders.dedup();
    let Some(first) = admins.first() else {
        return Ok(Seeded::TooFewOrganizations);
    };
    if founders.len() < ehr_chaincode::model::MIN_FOUNDERS {
        return Ok(Seeded::TooFewOrganizations);
    }
    let mut attempt = 0;
    loop {
        let g = first.governance().await?;
        if !g.members.is_empty() {
            let members: Vec<String> = g.members.into_iter().map(|m| m.msp_id).collect();
            return Ok(if founders.iter().all(|f| members.contains(f)) {
                if attempt == 0 {
                    Seeded::AlreadyFounded
                } else {
                    Seeded::Founded
                }
            } else {
                Seeded::FoundedOtherwise { members }
            });
        }
        // One after the other: each confirmation reads the set's confirmations, so two in
        // the same block would conflict. An endorser behind the last commit answers
        // "confirmed" or disagrees with the others; the next round confirms again.
        for admin in admins {
            match admin.join_governance(Some(&founders)).await {
                Ok(JoinOutcome {
                    status: JoinStatus::Founded,
                    ..
                }) => break,
                Ok(_) => {}
                // Founded meanwhile (a peer ahead of the one read above): read again.
                Err(e) if e.chaincode_status() == Some(409) => break,
                // Endorsers that disagree, an MVCC conflict, a gateway hiccup: next round.
                Err(e) if attempt + 1 < GOVERNANCE_ATTEMPTS && e.chaincode_status().is_none() => {}
                Err(e) => return Err(e),
            }
        }
        attempt += 1;
        if attempt >= GOVERNANCE_ATTEMPTS {
            return Err(EhrClientError::Usage(format!(
                "EHR governance of {} is still not founded after {attempt} rounds of \
                 confirmations",
                founders.join(",")
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The chaincode's spelling of a purpose (`treatment`, `public-health`, …).
pub fn purpose_arg(p: Purpose) -> &'static str {
    p.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_proto::gateway::ErrorDetail;

    #[test]
    fn chaincode_refusals_are_recognized_in_gateway_details() {
        let e = GatewayError::Status {
            code: tonic::Code::Aborted,
            message: "failed".into(),
            details: vec![ErrorDetail {
                address: "peer0".into(),
                msp_id: "Org1MSP".into(),
                message: "chaincode response 404, patient p not found".into(),
            }],
        };
        let e = EhrClientError::from_gateway(f::GET_PATIENT, e);
        assert_eq!(e.chaincode_status(), Some(404));
        assert_eq!(
            e.to_string(),
            "GetPatient: chaincode status 404: patient p not found"
        );
        let e = GatewayError::Status {
            code: tonic::Code::Aborted,
            message: "failed".into(),
            details: vec![ErrorDetail {
                address: "peer0".into(),
                msp_id: "Org1MSP".into(),
                message: "rpc error: connection refused".into(),
            }],
        };
        let e = EhrClientError::from_gateway(f::GET_PATIENT, e);
        assert!(matches!(e, EhrClientError::Gateway { .. }));
        assert_eq!(e.chaincode_status(), None);
        // The SDK's error is printed once in the chain the `medledger` CLI prints (`{:#}`).
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "GetPatient: Aborted: failed"
        );
    }

    #[test]
    fn pages_and_arguments_decode_as_the_chaincode_writes_them() {
        let p: Page<Consent> = serde_json::from_str(r#"{"consents":[],"bookmark":"b"}"#).unwrap();
        assert_eq!((p.items.len(), p.bookmark.as_str()), (0, "b"));
        let grant = ConsentGrant {
            patient_id: "p".into(),
            grantee: Grantee::Org("Org2MSP".into()),
            resource_types: vec![],
            purposes: vec![Purpose::Treatment, Purpose::PublicHealth],
            valid_for_s: 60,
        };
        assert_eq!(
            serde_json::to_string(&grant).unwrap(),
            r#"{"patient_id":"p","grantee":{"org":"Org2MSP"},"purposes":["treatment","public-health"],"valid_for_s":60}"#
        );
        for p in [
            Purpose::Treatment,
            Purpose::Payment,
            Purpose::Research,
            Purpose::Operations,
            Purpose::PublicHealth,
        ] {
            assert_eq!(Purpose::parse(purpose_arg(p)), Some(p));
        }
    }
}
