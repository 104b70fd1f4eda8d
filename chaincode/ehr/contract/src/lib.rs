//! Medledger's EHR chaincode: FHIR R4 records as private data, patient consent, an access
//! state machine, break-glass access, audit and erasure.
//!
//! The contract is pure logic over a [`ChaincodeStub`]: every function reads its inputs
//! (arguments, transient map, the creator's certificate attributes, the transaction timestamp)
//! and acts only through the stub, so the same code runs under the peer's shim
//! (`ehr-chaincode` binary) and on [`medledger_chaincode::memory::MemoryLedger`] in tests.
//!
//! - **Records**: the resource JSON travels in the transient map, is validated
//!   ([`fhir`], [`template`]) and stored byte for byte in the custodian's private data
//!   collection; public state holds metadata and the SHA-256 ([`model::RecordMeta`]). Record
//!   keys carry a key-level endorsement policy naming the custodian ([`policy`]).
//! - **Consent** ([`model::Consent`], after FHIR `Consent`) and the **access state machine**
//!   per (patient, grantee) ([`state_machine`]).
//! - **Reading**: `RequestRecordAccess` (submitted) decides and writes an access entry;
//!   `ReadRecord` (evaluated only) returns the PHI for a committed, granted, fresh entry.
//! - **Audit**, **break-glass**, **erasure**, **templates**.
//! - **Governance**: which organizations' break-glass and auditor
//!   certificates count, decided by a majority of the channel's organizations (ADR 0029).
//!
//! Keys: [`ids`]. Function list, callers and shapes: `docs/ehr-chaincode.md`. No function
//! puts PHI into public state, events, errors or the response of a submitted transaction.
//!
//! [`ChaincodeStub`]: medledger_chaincode::ChaincodeStub

mod access;
mod audit;
pub mod caller;
mod consents;
pub mod error;
pub mod events;
pub mod fhir;
mod governance;
pub mod ids;
pub mod model;
pub mod policy;
pub mod pseudonyms;
mod records;
mod registry;
pub mod state_machine;
pub mod template;
mod tx;

use medledger_chaincode::{ChaincodeStub, ContractError, Router};

pub use access::{
    ACCESS_FRESHNESS_MS, MAX_EMERGENCY_WINDOW_S, MAX_READ_RECORDS_BYTES, MAX_SEARCH_PAGE,
};
pub use caller::{Caller, Role};
pub use error::{EhrError, Result};
pub use pseudonyms::{
    TRANSIENT_IDS, TRANSIENT_PATIENT, TRANSIENT_PSEUDONYM_KEY, TRANSIENT_RECORDS,
};
pub use records::{TRANSIENT_BUNDLE, TRANSIENT_RESOURCE};
pub use tx::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Function names, as clients call them.
pub mod functions {
    /// `SetPseudonymKey` + transient `pseudonym_key` (ADR 0031).
    pub const SET_PSEUDONYM_KEY: &str = "SetPseudonymKey";
    /// `LedgerIds [CUSTODIAN_MSP]` + transient `ids` (ADR 0031).
    pub const LEDGER_IDS: &str = "LedgerIds";
    /// `LocateRecords [CUSTODIAN_MSP]` + transient `records` (issue 16).
    pub const LOCATE_RECORDS: &str = "LocateRecords";
    /// `RegisterPatient PATIENT_ID [COLLECTION]`.
    pub const REGISTER_PATIENT: &str = "RegisterPatient";
    /// `GetPatient PATIENT_ID`.
    pub const GET_PATIENT: &str = "GetPatient";
    /// `ReserveRecords PATIENT_ID RECORD_IDS_JSON`.
    pub const RESERVE_RECORDS: &str = "ReserveRecords";
    /// `CreateRecord PATIENT_ID` + transient `resource`, `patient`.
    pub const CREATE_RECORD: &str = "CreateRecord";
    /// `UpdateRecord PATIENT_ID` + transient `resource`, `patient`.
    pub const UPDATE_RECORD: &str = "UpdateRecord";
    /// `CreateRecordsFromBundle PATIENT_ID` + transient `bundle`, `patient`.
    pub const CREATE_RECORDS_FROM_BUNDLE: &str = "CreateRecordsFromBundle";
    /// `ReadRecordMetadata PATIENT_ID RECORD_ID`.
    pub const READ_RECORD_METADATA: &str = "ReadRecordMetadata";
    /// `GetRecordHistory PATIENT_ID RECORD_ID`.
    pub const GET_RECORD_HISTORY: &str = "GetRecordHistory";
    /// `ListRecords PATIENT_ID [PAGE_SIZE [BOOKMARK]]`.
    pub const LIST_RECORDS: &str = "ListRecords";
    /// `PutTemplate TEMPLATE_JSON`.
    pub const PUT_TEMPLATE: &str = "PutTemplate";
    /// `GetTemplate RESOURCE_TYPE`.
    pub const GET_TEMPLATE: &str = "GetTemplate";
    /// `GrantConsent CONSENT_JSON`.
    pub const GRANT_CONSENT: &str = "GrantConsent";
    /// `RevokeConsent PATIENT_ID CONSENT_ID`.
    pub const REVOKE_CONSENT: &str = "RevokeConsent";
    /// `GetConsent PATIENT_ID CONSENT_ID` (issue 16).
    pub const GET_CONSENT: &str = "GetConsent";
    /// `ListConsents PATIENT_ID [PAGE_SIZE [BOOKMARK]]`.
    pub const LIST_CONSENTS: &str = "ListConsents";
    /// `RequestAccess REQUEST_JSON`.
    pub const REQUEST_ACCESS: &str = "RequestAccess";
    /// `ApproveAccessRequest PATIENT_ID REQUEST_ID`.
    pub const APPROVE_ACCESS_REQUEST: &str = "ApproveAccessRequest";
    /// `RejectAccessRequest PATIENT_ID REQUEST_ID`.
    pub const REJECT_ACCESS_REQUEST: &str = "RejectAccessRequest";
    /// `ListAccessRequests PATIENT_ID [PAGE_SIZE [BOOKMARK]]`.
    pub const LIST_ACCESS_REQUESTS: &str = "ListAccessRequests";
    /// `RequestRecordAccess PATIENT_ID RECORD_ID PURPOSE`.
    pub const REQUEST_RECORD_ACCESS: &str = "RequestRecordAccess";
    /// `ReadRecord PATIENT_ID ACCESS_ID`.
    pub const READ_RECORD: &str = "ReadRecord";
    /// `RequestRecordsAccess PATIENT_ID PURPOSE QUERY_JSON` (issue 16).
    pub const REQUEST_RECORDS_ACCESS: &str = "RequestRecordsAccess";
    /// `ReadRecords PATIENT_ID ACCESS_ID [START]` (issue 16).
    pub const READ_RECORDS: &str = "ReadRecords";
    /// `ShareRecord PATIENT_ID RECORD_ID GRANTEE_MSP PURPOSE`.
    pub const SHARE_RECORD: &str = "ShareRecord";
    /// `EmergencyAccess PATIENT_ID ETREAT|BTG [WINDOW_S]`.
    pub const EMERGENCY_ACCESS: &str = "EmergencyAccess";
    /// `GetAccessState PATIENT_ID GRANTEE`.
    pub const GET_ACCESS_STATE: &str = "GetAccessState";
    /// `ResetAccessState PATIENT_ID GRANTEE`.
    pub const RESET_ACCESS_STATE: &str = "ResetAccessState";
    /// `ListAuditEntries PATIENT_ID [PAGE_SIZE [BOOKMARK]]`.
    pub const LIST_AUDIT_ENTRIES: &str = "ListAuditEntries";
    /// `RequestErasure PATIENT_ID RECORD_ID`.
    pub const REQUEST_ERASURE: &str = "RequestErasure";
    /// `PurgeRecord PATIENT_ID RECORD_ID`.
    pub const PURGE_RECORD: &str = "PurgeRecord";
    /// `JoinGovernance [ORG1,ORG2,…]`.
    pub const JOIN_GOVERNANCE: &str = "JoinGovernance";
    /// `WithdrawFounding`.
    pub const WITHDRAW_FOUNDING: &str = "WithdrawFounding";
    /// `AdmitMember ORG`.
    pub const ADMIT_MEMBER: &str = "AdmitMember";
    /// `ApproveRoleAuthority ORG emergency|auditor`.
    pub const APPROVE_ROLE_AUTHORITY: &str = "ApproveRoleAuthority";
    /// `WithdrawRoleAuthority ORG emergency|auditor`.
    pub const WITHDRAW_ROLE_AUTHORITY: &str = "WithdrawRoleAuthority";
    /// `GetRoleAuthority ORG emergency|auditor`.
    pub const GET_ROLE_AUTHORITY: &str = "GetRoleAuthority";
    /// `GetGovernance`.
    pub const GET_GOVERNANCE: &str = "GetGovernance";
    /// `WhoAmI`.
    pub const WHO_AM_I: &str = "WhoAmI";
}

/// Functions that only read (clients evaluate them; submitting them is pointless).
pub const EVALUATE_FUNCTIONS: &[&str] = &[
    functions::LEDGER_IDS,
    functions::LOCATE_RECORDS,
    functions::GET_PATIENT,
    functions::READ_RECORD_METADATA,
    functions::GET_RECORD_HISTORY,
    functions::LIST_RECORDS,
    functions::GET_TEMPLATE,
    functions::LIST_CONSENTS,
    functions::GET_CONSENT,
    functions::LIST_ACCESS_REQUESTS,
    functions::READ_RECORD,
    functions::READ_RECORDS,
    functions::GET_ACCESS_STATE,
    functions::LIST_AUDIT_ENTRIES,
    functions::GET_ROLE_AUTHORITY,
    functions::GET_GOVERNANCE,
    functions::WHO_AM_I,
];

/// Functions whose response is PHI or names clear ids (`LocateRecords` answers each clear
/// `Type/id` it found): a gateway must refuse to submit them (a submitted transaction's
/// response is stored in the block on every peer).
pub const PHI_RESPONSE_FUNCTIONS: &[&str] = &[
    functions::READ_RECORD,
    functions::READ_RECORDS,
    functions::LOCATE_RECORDS,
];

/// Functions that carry or copy PHI (or the pseudonym key): endorsed by the patient's
/// custodian organization only (the gateway sends them to the custodian collection's member
/// peers). Everything else follows the chaincode's channel endorsement policy.
pub const CUSTODIAN_ENDORSED_FUNCTIONS: &[&str] = &[
    functions::SET_PSEUDONYM_KEY,
    functions::CREATE_RECORD,
    functions::UPDATE_RECORD,
    functions::CREATE_RECORDS_FROM_BUNDLE,
    functions::SHARE_RECORD,
];

type Function = fn(&dyn ChaincodeStub, &[String]) -> Result<Vec<u8>>;

fn route(
    f: Function,
) -> impl Fn(&dyn ChaincodeStub, &[String]) -> std::result::Result<Vec<u8>, ContractError>
+ Send
+ Sync
+ 'static {
    move |stub, args| f(stub, args).map_err(ContractError::from)
}

/// Every function with its handler.
fn table() -> [(&'static str, Function); 41] {
    use functions::*;
    [
        (SET_PSEUDONYM_KEY, pseudonyms::set_pseudonym_key),
        (LEDGER_IDS, pseudonyms::ledger_ids),
        (LOCATE_RECORDS, pseudonyms::locate_records),
        (REGISTER_PATIENT, registry::register_patient),
        (GET_PATIENT, registry::get_patient),
        (PUT_TEMPLATE, registry::put_template),
        (GET_TEMPLATE, registry::get_template),
        (RESERVE_RECORDS, records::reserve_records),
        (CREATE_RECORD, records::create_record),
        (UPDATE_RECORD, records::update_record),
        (
            CREATE_RECORDS_FROM_BUNDLE,
            records::create_records_from_bundle,
        ),
        (READ_RECORD_METADATA, records::read_record_metadata),
        (GET_RECORD_HISTORY, records::get_record_history),
        (LIST_RECORDS, records::list_records),
        (SHARE_RECORD, records::share_record),
        (GRANT_CONSENT, consents::grant_consent),
        (REVOKE_CONSENT, consents::revoke_consent),
        (LIST_CONSENTS, consents::list_consents),
        (GET_CONSENT, consents::get_consent),
        (REQUEST_ACCESS, consents::request_access),
        (APPROVE_ACCESS_REQUEST, consents::approve_access_request),
        (REJECT_ACCESS_REQUEST, consents::reject_access_request),
        (LIST_ACCESS_REQUESTS, consents::list_access_requests),
        (REQUEST_RECORD_ACCESS, access::request_record_access),
        (READ_RECORD, access::read_record),
        (REQUEST_RECORDS_ACCESS, access::request_records_access),
        (READ_RECORDS, access::read_records),
        (EMERGENCY_ACCESS, access::emergency_access),
        (GET_ACCESS_STATE, access::get_access_state),
        (RESET_ACCESS_STATE, access::reset_access_state),
        (LIST_AUDIT_ENTRIES, audit::list_audit_entries),
        (REQUEST_ERASURE, audit::request_erasure),
        (PURGE_RECORD, audit::purge_record),
        (JOIN_GOVERNANCE, governance::join_governance),
        (WITHDRAW_FOUNDING, governance::withdraw_founding),
        (ADMIT_MEMBER, governance::admit_member),
        (APPROVE_ROLE_AUTHORITY, governance::approve_role_authority),
        (WITHDRAW_ROLE_AUTHORITY, governance::withdraw_role_authority),
        (GET_ROLE_AUTHORITY, governance::get_role_authority),
        (GET_GOVERNANCE, governance::get_governance),
        (WHO_AM_I, registry::who_am_i),
    ]
}

/// The EHR contract: a [`Router`] from function name to handler (also reachable as
/// `ehr:Function`, fabric-contract-api style).
pub fn contract() -> Router {
    table()
        .into_iter()
        .fold(Router::new(), |router, (name, f)| {
            router.add(name, route(f))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_routed_once() {
        let names: Vec<&str> = table().iter().map(|(n, _)| *n).collect();
        let router = contract();
        let routed: Vec<&str> = router.functions().collect();
        assert_eq!(routed.len(), names.len(), "duplicate names");
        for f in EVALUATE_FUNCTIONS
            .iter()
            .chain(PHI_RESPONSE_FUNCTIONS)
            .chain(CUSTODIAN_ENDORSED_FUNCTIONS)
        {
            assert!(routed.contains(f), "{f} is not routed");
        }
    }
}
