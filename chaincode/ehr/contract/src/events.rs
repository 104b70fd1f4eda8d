//! Chaincode event names. Payloads are JSON objects of ids, codes, versions, hashes and times
//! only — never PHI.
//!
//! Fabric keeps one event per transaction. A transaction that has one event sets it under its
//! name; one that has several (e.g. an access denial that also changes the access state) sets
//! one [`EHR_EVENTS`] event with payload `{"events":[{"name":…,"payload":{…}},…]}`.

pub use crate::tx::EVENTS as EHR_EVENTS;

/// A consent was granted (`GrantConsent`, `ApproveAccessRequest`):
/// `{patient_id, consent_id, grantee, expires_at_ms, request_id?}`.
pub const CONSENT_GRANTED: &str = "ConsentGranted";
/// A consent was revoked: `{patient_id, consent_id, grantee}`.
pub const CONSENT_REVOKED: &str = "ConsentRevoked";
/// A provider filed an access request: `{patient_id, request_id, requester_msp, grantee}`.
pub const ACCESS_REQUESTED: &str = "AccessRequested";
/// The patient rejected an access request: `{patient_id, request_id}`.
pub const ACCESS_REQUEST_REJECTED: &str = "AccessRequestRejected";
/// Record access granted: `{patient_id, access_id, record_id, requester_msp, basis}`.
pub const ACCESS_GRANTED: &str = "AccessGranted";
/// Record access denied: `{patient_id, access_id, record_id, requester_msp, reason}`.
pub const ACCESS_DENIED: &str = "AccessDenied";
/// A break-glass window was opened (notifies the patient):
/// `{patient_id, access_id, clinician, clinician_msp, reason, expires_at_ms}`.
pub const EMERGENCY_ACCESS: &str = "EmergencyAccess";
/// A record's PHI was purged: `{patient_id, record_id, sha256}`.
pub const RECORD_PURGED: &str = "RecordPurged";
/// An access state changed: `{patient_id, grantee, from, to, action}` (`action` is a
/// state-machine action, or `Reset`).
pub const STATE_CHANGED: &str = "StateChanged";
/// One approval of a reset was recorded: `{patient_id, grantee, approved_by}` (`patient` or
/// `admin`).
pub const RESET_APPROVED: &str = "ResetApproved";
/// A patient was registered: `{patient_id, custodian_msp}`.
pub const PATIENT_REGISTERED: &str = "PatientRegistered";
/// A template version was stored: `{resource_type, version}`.
pub const TEMPLATE_PUT: &str = "TemplatePut";
/// A record was created: `{patient_id, record_id, version, sha256}`.
pub const RECORD_CREATED: &str = "RecordCreated";
/// A record was updated: `{patient_id, record_id, version, sha256}`.
pub const RECORD_UPDATED: &str = "RecordUpdated";
/// Record keys were reserved: `{patient_id, reserved}` (count).
pub const RECORDS_RESERVED: &str = "RecordsReserved";
/// A bundle was stored: `{patient_id, created, unchanged}` (counts).
pub const RECORDS_CREATED: &str = "RecordsCreated";
/// A record's PHI was copied to a grantee organization:
/// `{patient_id, record_id, grantee_msp, collection, version, purpose, consent_id}`.
pub const RECORD_SHARED: &str = "RecordShared";
/// The patient asked for a record's erasure: `{patient_id, record_id}`.
pub const ERASURE_REQUESTED: &str = "ErasureRequested";
/// A founder confirmed a founding set, replacing its earlier confirmation if any:
/// `{msp_id, founding_set_id, founders, missing, replaced}` (`replaced`: the set id it
/// confirmed before, or null).
pub const GOVERNANCE_FOUNDING_CONFIRMED: &str = "GovernanceFoundingConfirmed";
/// A founder withdrew its confirmation before the founding: `{msp_id, founding_set_id}`.
pub const GOVERNANCE_FOUNDING_WITHDRAWN: &str = "GovernanceFoundingWithdrawn";
/// Every founder confirmed: EHR governance is founded: `{founding_set_id, founders}`.
pub const GOVERNANCE_FOUNDED: &str = "GovernanceFounded";
/// An organization asked the members to admit it: `{msp_id}`.
pub const GOVERNANCE_JOIN_REQUESTED: &str = "GovernanceJoinRequested";
/// A member approved a request to join: `{org, approver_msp, admitted}`.
pub const GOVERNANCE_ADMISSION: &str = "GovernanceAdmission";
/// An organization became a member by a majority's admissions: `{msp_id, admitted_by}`.
pub const GOVERNANCE_JOINED: &str = "GovernanceJoined";
/// A governing organization approved an organization's authority: `{org, role, approver_msp}`.
pub const ROLE_AUTHORITY_APPROVED: &str = "RoleAuthorityApproved";
/// A governing organization withdrew its approval: `{org, role, approver_msp}`.
pub const ROLE_AUTHORITY_WITHDRAWN: &str = "RoleAuthorityWithdrawn";
