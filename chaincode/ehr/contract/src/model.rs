//! What the contract stores in public world state (JSON values under [`crate::ids`] keys).
//! Nothing here holds PHI: only ids, resource types, hashes, versions, codes and times
//! (milliseconds since the Unix epoch, from the transaction timestamp).

use serde::{Deserialize, Serialize};

use crate::ids::Grantee;
use crate::state_machine::AccessState;

/// Where a FHIR resource is filed (`locator\0{hash}` in its custodian's default collection,
/// never on the shared ledger): the ledger ids of its patient and record. Written by the first
/// create of the resource; resources without a patient reference (Organization,
/// Practitioner) get none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locator {
    /// The patient's ledger id `p_…`.
    pub patient_id: String,
    /// The record's ledger id `ResourceType/r_…`.
    pub record_id: String,
}

/// A registered patient and their custodian organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientEntry {
    /// The patient's ledger id `p_…` (ADR 0031).
    pub patient_id: String,
    /// MSP id of the custodian organization (holds the PHI, endorses its changes).
    pub custodian_msp: String,
    /// Private data collection of the custodian holding the patient's PHI.
    pub collection: String,
    /// Identity that registered the patient.
    pub registered_by: String,
    /// Registration time, ms.
    pub registered_at_ms: u64,
}

/// Lifecycle of a record's PHI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Key reserved (`ReserveRecords`, version 0, no PHI yet): it already carries the
    /// custodian's key-level endorsement policy, so the PHI-carrying create can be endorsed by
    /// the custodian alone (ADR 0020).
    Reserved,
    /// PHI held in the collection.
    Active,
    /// PHI purged (right to erasure); metadata and hash remain.
    Purged,
}

/// A copy of a record's PHI in a grantee organization's collection (`ShareRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedCopy {
    /// Grantee organization.
    pub grantee_msp: String,
    /// Collection holding the copy.
    pub collection: String,
    /// Record version copied.
    pub version: u64,
    /// Hex SHA-256 of the copy (the record's at that version).
    pub sha256: String,
    /// Identity that shared it.
    pub shared_by: String,
    /// When, ms.
    pub shared_at_ms: u64,
    /// Purpose the copy was shared for (the consent permits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// The organization consent that allowed the share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
}

/// Public metadata of a record (one FHIR resource). Its key also holds the resource JSON in the
/// custodian's private data collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// `ResourceType/id`.
    pub record_id: String,
    /// The patient's ledger id `p_…` (ADR 0031).
    pub patient_id: String,
    /// FHIR resource type.
    pub resource_type: String,
    /// Version: 0 while reserved, 1 on create, +1 per update.
    pub version: u64,
    /// Hex SHA-256 of the exact bytes stored in the collection (empty while reserved).
    pub sha256: String,
    /// Size of the stored bytes.
    pub size_bytes: u64,
    /// Identity that wrote this version.
    pub author: String,
    /// MSP id of the author.
    pub author_msp: String,
    /// EHR role of the author.
    pub author_role: String,
    /// Custodian MSP id.
    pub custodian_msp: String,
    /// Collection holding the PHI.
    pub collection: String,
    /// Version of the template the resource was validated against (0 = built-in default).
    pub template_version: u64,
    /// Creation time of version 1, ms.
    pub created_at_ms: u64,
    /// Time of this version (or of the purge), ms.
    pub updated_at_ms: u64,
    /// Whether the PHI is still held.
    pub status: RecordStatus,
    /// Identity that purged the PHI, if purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_by: Option<String>,
    /// Copies in grantee organizations' collections, one per organization (latest share).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<SharedCopy>,
}

/// Purpose of use (FHIR `Consent.provision.purpose`, HL7 v3 PurposeOfUse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Treatment (v3 `TREAT`).
    Treatment,
    /// Payment (v3 `HPAYMT`).
    Payment,
    /// Research (v3 `HRESCH`).
    Research,
    /// Healthcare operations (v3 `HOPERAT`).
    Operations,
    /// Public health (v3 `PUBHLTH`).
    PublicHealth,
}

impl Purpose {
    /// The HL7 v3 PurposeOfUse code.
    pub fn v3_code(self) -> &'static str {
        match self {
            Purpose::Treatment => "TREAT",
            Purpose::Payment => "HPAYMT",
            Purpose::Research => "HRESCH",
            Purpose::Operations => "HOPERAT",
            Purpose::PublicHealth => "PUBHLTH",
        }
    }

    /// The JSON name: `treatment`, `payment`, `research`, `operations`, `public-health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Treatment => "treatment",
            Purpose::Payment => "payment",
            Purpose::Research => "research",
            Purpose::Operations => "operations",
            Purpose::PublicHealth => "public-health",
        }
    }

    /// Parses the JSON name (`treatment`, `payment`, …).
    pub fn parse(s: &str) -> Option<Purpose> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// Consent status (FHIR `Consent.status`, restricted to the two a ledger entry needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// In force (within its period).
    Active,
    /// Revoked by the patient, or ended by a reset.
    Inactive,
}

/// A patient's consent, shaped after FHIR R4 `Consent` (scope `patient-privacy`, one
/// `provision` of type `permit`): `patient_id` = `Consent.patient`, `grantee` =
/// `provision.actor`, `resource_types` = `provision.class` (empty = all types), `purposes` =
/// `provision.purpose`, `[start_ms, expires_at_ms)` = `provision.period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Consent id (the granting transaction's id).
    pub consent_id: String,
    /// The patient's ledger id `p_…` (ADR 0031).
    pub patient_id: String,
    /// Status.
    pub status: ConsentStatus,
    /// Who may access.
    pub grantee: Grantee,
    /// Resource types in scope; empty means all.
    pub resource_types: Vec<String>,
    /// Purposes permitted (at least one).
    pub purposes: Vec<Purpose>,
    /// Start of the period, ms (the grant time).
    pub start_ms: u64,
    /// End of the period (exclusive), ms.
    pub expires_at_ms: u64,
    /// The access request this consent approved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When it became inactive, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
    /// Why it became inactive: `revoked` or `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
}

impl Consent {
    /// Whether this consent is active, within its period at `now_ms`, covers `resource_type`
    /// and permits `purpose`.
    pub fn covers(&self, resource_type: &str, purpose: Purpose, now_ms: u64) -> bool {
        self.in_force(now_ms) && self.in_scope(resource_type) && self.purposes.contains(&purpose)
    }

    /// Active and within its period at `now_ms`.
    pub fn in_force(&self, now_ms: u64) -> bool {
        self.status == ConsentStatus::Active
            && self.start_ms <= now_ms
            && now_ms < self.expires_at_ms
    }

    /// `resource_type` is in scope.
    pub fn in_scope(&self, resource_type: &str) -> bool {
        self.resource_types.is_empty() || self.resource_types.iter().any(|t| t == resource_type)
    }
}

/// The two approvals a reset of a Blocked relation needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetApprovals {
    /// When the patient approved, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_at_ms: Option<u64>,
    /// The custodian admin who approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// When the admin approved, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_at_ms: Option<u64>,
}

/// The access state of (patient, grantee); absent = NoRelation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessStateEntry {
    /// The patient's ledger id `p_…` (ADR 0031).
    pub patient_id: String,
    /// Grantee.
    pub grantee: Grantee,
    /// State.
    pub state: AccessState,
    /// Last change, ms.
    pub updated_at_ms: u64,
    /// Pending reset approvals (Blocked only).
    #[serde(default)]
    pub reset: ResetApprovals,
}

/// Kind of access entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// `RequestRecordAccess`: one record.
    RecordAccess,
    /// `EmergencyAccess`: a break-glass window opened.
    EmergencyAccess,
    /// `RequestRecordsAccess`: one page of a patient's records (`records` lists them).
    SearchAccess,
}

impl AccessKind {
    /// The kind as serialized, e.g. `record_access`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKind::RecordAccess => "record_access",
            AccessKind::EmergencyAccess => "emergency_access",
            AccessKind::SearchAccess => "search_access",
        }
    }
}

/// Decision of an access entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Access granted.
    Granted,
    /// Access denied.
    Denied,
}

/// Why access was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The patient reads their own record.
    Patient,
    /// Staff of the custodian organization.
    Custodian,
    /// A consent (see `basis_id`).
    Consent,
    /// A break-glass window (see `basis_id`).
    Emergency,
}

/// Why access was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyReason {
    /// No consent was ever given to the requester or its organization.
    NoConsent,
    /// Consents exist, none for this resource type.
    OutOfScope,
    /// Consents cover this resource type, none for this purpose.
    PurposeNotPermitted,
    /// Covering consents are expired (or not yet valid).
    Expired,
    /// Covering consents were revoked.
    Revoked,
    /// A consent covers it, but the relation is Suspended until the patient grants again.
    Suspended,
    /// Break-glass by a doctor or nurse whose certificate lacks `ehr.emergency=true`.
    NoEmergencyAttribute,
    /// Break-glass by a clinician whose organization holds no break-glass authority (ADR 0029).
    NoEmergencyAuthority,
}

/// One entry of the audit trail: an access decision or a break-glass window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// Access id: `{at_ms:015}.{tx_id}` (sorts by time).
    pub access_id: String,
    /// Kind.
    pub kind: AccessKind,
    /// The patient's ledger id `p_…` (ADR 0031).
    pub patient_id: String,
    /// Record (`ResourceType/id`) for record access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// Requester identity.
    pub requester: String,
    /// Requester MSP id.
    pub requester_msp: String,
    /// Requester EHR role.
    pub requester_role: String,
    /// Purpose stated (record access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// Time, ms.
    pub at_ms: u64,
    /// Decision.
    pub decision: Decision,
    /// Basis of a grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<Basis>,
    /// Consent id or break-glass access id behind the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_id: Option<String>,
    /// Reason of a denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenyReason>,
    /// Until when `ReadRecord` honours a granted record access, or until when a break-glass
    /// window is open, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<u64>,
    /// Break-glass reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_reason: Option<EmergencyReason>,
    /// The record version a granted record access pins (`ReadRecord` serves only it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Hex SHA-256 of the pinned version's exact bytes (granted record access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The records a granted search access lets `ReadRecords` serve, each pinned to the
    /// version granted (at most 200).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<PinnedRecord>,
}

/// A record a search access granted, pinned to one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedRecord {
    /// The record's ledger id `ResourceType/r_…`.
    pub record_id: String,
    /// The version granted.
    pub version: u64,
    /// Hex SHA-256 of that version's exact bytes.
    pub sha256: String,
}

/// Break-glass reason (HL7 v3 ActReason codes). A code, not free text: arguments are written
/// to the block, so free text could carry PHI onto the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmergencyReason {
    /// Emergency treatment.
    #[serde(rename = "ETREAT")]
    EmergencyTreatment,
    /// Break the glass.
    #[serde(rename = "BTG")]
    BreakTheGlass,
}

/// An open break-glass window of one clinician for one patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyWindow {
    /// The patient's ledger id `p_…` (ADR 0031).
    pub patient_id: String,
    /// Clinician identity.
    pub clinician: String,
    /// Access id of the audit entry that opened it.
    pub access_id: String,
    /// Opened, ms.
    pub opened_at_ms: u64,
    /// Closes (exclusive), ms.
    pub expires_at_ms: u64,
    /// Reason code.
    pub reason: EmergencyReason,
}

/// Status of an access request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for the patient.
    Pending,
    /// Approved: a consent was granted.
    Approved,
    /// Rejected by the patient.
    Rejected,
}

/// An access request filed by a provider, for the patient to approve or reject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Request id (the filing transaction's id).
    pub request_id: String,
    /// The patient's ledger id `p_…` (ADR 0031).
    pub patient_id: String,
    /// Identity that filed it.
    pub requester: String,
    /// Its MSP id.
    pub requester_msp: String,
    /// Its role.
    pub requester_role: String,
    /// Grantee of the consent an approval creates.
    pub grantee: Grantee,
    /// Resource types asked for (empty = all).
    pub resource_types: Vec<String>,
    /// Purposes asked for.
    pub purposes: Vec<Purpose>,
    /// Consent duration asked for, seconds.
    pub valid_for_s: u64,
    /// Status.
    pub status: RequestStatus,
    /// Filed, ms.
    pub filed_at_ms: u64,
    /// Decided, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<u64>,
    /// Consent created by the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
}

/// Status of an erasure request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureStatus {
    /// Waiting for the custodian.
    Pending,
    /// PHI purged.
    Done,
}

/// A patient's request to erase a record's PHI (GDPR art. 17), carried out by the custodian
/// with `PurgeRecord`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// The patient's ledger id `p_…` (ADR 0031).
    pub patient_id: String,
    /// `ResourceType/id`.
    pub record_id: String,
    /// Requested, ms.
    pub requested_at_ms: u64,
    /// Status.
    pub status: ErasureStatus,
    /// Purged, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at_ms: Option<u64>,
}

/// An authority an organization holds on the channel only once a majority of the governing
/// organizations approved it (ADR 0029): its certificates' break-glass attribute or auditor
/// role counts only then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorityRole {
    /// Its doctors and nurses with `ehr.emergency=true` may open break-glass windows.
    Emergency,
    /// Its identities with `ehr.role=auditor` read every patient's consents, requests, record
    /// metadata, access states and audit trail.
    Auditor,
}

impl AuthorityRole {
    /// Both roles.
    pub const ALL: [AuthorityRole; 2] = [AuthorityRole::Emergency, AuthorityRole::Auditor];

    /// The name used in arguments and keys: `emergency`, `auditor`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorityRole::Emergency => "emergency",
            AuthorityRole::Auditor => "auditor",
        }
    }

    /// Parses `emergency` or `auditor`.
    pub fn parse(s: &str) -> Option<AuthorityRole> {
        AuthorityRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Words for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            AuthorityRole::Emergency => "break-glass",
            AuthorityRole::Auditor => "auditor",
        }
    }
}

/// An organization taking part in the channel's EHR governance: its admins' approvals count,
/// and it counts in the majority (ADR 0029).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernanceMember {
    /// MSP id.
    pub msp_id: String,
    /// The admin identity that confirmed the founding set (a founder) or asked to join.
    pub joined_by: String,
    /// When it became a member, ms.
    pub joined_at_ms: u64,
    /// The organizations that let it in: every founder for a founder, the admitting members
    /// for a later member. Empty for a member recorded before ADR 0029's revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admitted_by: Vec<String>,
}

/// The smallest founding set: one organization alone never founds governance (ADR 0029).
pub const MIN_FOUNDERS: usize = 2;
/// The largest founding set.
pub const MAX_FOUNDERS: usize = 64;

/// The id of a founding set: hex SHA-256 of its MSP ids, sorted, joined with `,` (the form
/// `JoinGovernance` takes them in). Every founder confirms the set by this id.
pub fn founding_set_id(founders: &[String]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(founders.join(",").as_bytes()))
}

/// One founder's confirmation of a founding set (`JoinGovernance FOUNDERS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundingConfirmation {
    /// [`founding_set_id`] of `founders`.
    pub founding_set_id: String,
    /// The founding set, sorted MSP ids.
    pub founders: Vec<String>,
    /// The confirming organization.
    pub msp_id: String,
    /// Its admin identity that confirmed.
    pub confirmed_by: String,
    /// When, ms.
    pub confirmed_at_ms: u64,
}

/// A request of an organization to join an established governance (`JoinGovernance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The organization asking.
    pub msp_id: String,
    /// Its admin identity that asked.
    pub requested_by: String,
    /// When, ms.
    pub requested_at_ms: u64,
}

/// One member's approval of a request to join (`AdmitMember`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// The organization admitted.
    pub org: String,
    /// The admitting member.
    pub approver_msp: String,
    /// Its admin identity.
    pub approved_by: String,
    /// When, ms.
    pub approved_at_ms: u64,
}

/// What `JoinGovernance` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinStatus {
    /// The caller's confirmation of a founding set is recorded; founders are missing.
    Confirmed,
    /// Every founder confirmed: the founders are the members and approve one another's
    /// break-glass and auditor authority.
    Founded,
    /// The caller asked the members to admit it.
    Requested,
}

/// `JoinGovernance`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinOutcome {
    /// What happened.
    pub status: JoinStatus,
    /// The founding set (empty for a request).
    #[serde(default)]
    pub founders: Vec<String>,
    /// Founders that confirmed it.
    #[serde(default)]
    pub confirmed: Vec<String>,
    /// Founders that have not.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// `AdmitMember`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitOutcome {
    /// The organization.
    pub org: String,
    /// Members that approved its request.
    pub admissions: Vec<String>,
    /// Members before it joins.
    pub members: usize,
    /// Admissions a majority needs (`members / 2 + 1`).
    pub needed: usize,
    /// Whether it is now a member.
    pub admitted: bool,
}

/// One governing organization's approval of another organization's authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleApproval {
    /// The authority.
    pub role: AuthorityRole,
    /// The organization it is approved for.
    pub org: String,
    /// The approving organization.
    pub approver_msp: String,
    /// Its admin identity that approved.
    pub approved_by: String,
    /// When, ms.
    pub approved_at_ms: u64,
}

/// Whether an organization holds an authority now: approvals of current governance members
/// against a majority of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    /// The organization.
    pub org: String,
    /// The authority.
    pub role: AuthorityRole,
    /// Governing organizations that approved it.
    pub approvals: Vec<String>,
    /// Number of governing organizations.
    pub members: usize,
    /// Approvals a majority needs (`members / 2 + 1`).
    pub needed: usize,
    /// `org` is a member and `approvals.len() >= needed`.
    pub in_force: bool,
}
