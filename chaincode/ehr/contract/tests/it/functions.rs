//! Every contract function on the in-memory ledger: a table of refusals (each role that must be
//! refused, malformed input, missing things, conflicts — asserting the status and that nothing
//! changed), then each function's effects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crate::common;

use std::collections::BTreeSet;

use common::*;
use ehr_chaincode::policy::custodian_endorsement_policy;
use serde_json::{Value, json};

struct World {
    consent: String,
    request: String,
    access: String,
}

/// PA and PB registered at Org1; PA has Observation/obs-1 and Condition/cond-1, PB has
/// Observation/obs-b1; PA consented Org2 (Observation, treatment, 1 h); doctor2 filed a
/// request for Condition; doctor1 (custodian) has a granted access to obs-1.
fn world() -> (Net, World) {
    let mut n = Net::new();
    n.register(PA);
    n.register(PB);
    n.create("doctor1", PA, &observation("obs-1", PA));
    n.create("doctor1", PA, &condition("cond-1", PA));
    n.create("doctor1", PB, &observation("obs-b1", PB));
    let consent = n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"}, "resource_types": ["Observation"],
               "purposes": ["treatment"], "valid_for_s": 3600}),
    );
    let request = n.ok(
        "doctor2",
        &[
            "RequestAccess",
            &json!({"patient_id": lpa(), "resource_types": ["Condition"], "purposes": ["treatment"],
                    "valid_for_s": 600})
            .to_string(),
        ],
    )["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (access, decision) = n.request("doctor1", lpa(), &lr(PA, "Observation/obs-1"), "treatment");
    assert_eq!(decision, "granted");
    (
        n,
        World {
            consent,
            request,
            access,
        },
    )
}

type Row = (
    Option<&'static str>,
    Vec<String>,
    Vec<(&'static str, Vec<u8>)>,
    i32,
);

fn row(who: &'static str, args: &[&str], status: i32) -> Row {
    (
        Some(who),
        args.iter().map(|s| (*s).to_owned()).collect(),
        vec![],
        status,
    )
}

fn row_t(
    who: &'static str,
    args: &[&str],
    transient: Vec<(&'static str, Vec<u8>)>,
    status: i32,
) -> Row {
    (
        Some(who),
        args.iter().map(|s| (*s).to_owned()).collect(),
        transient,
        status,
    )
}

/// The transient map of a PHI-carrying call for patient `clear`: its `Patient.id` and `name`.
fn t(clear: &str, name: &'static str, bytes: Vec<u8>) -> Vec<(&'static str, Vec<u8>)> {
    vec![("patient", clear.as_bytes().to_vec()), (name, bytes)]
}

/// `ReserveRecords`' argument: the ledger ids of resources `references` of patient `clear`.
fn ledger_records(clear: &str, references: &[&str]) -> String {
    let ids: Vec<String> = references.iter().map(|r| lr(clear, r)).collect();
    serde_json::to_string(&ids).unwrap()
}

fn refusals(w: &World) -> Vec<Row> {
    let grant = |patient: &str, extra: Value| {
        let mut v = json!({"patient_id": patient, "grantee": {"org": "Org3MSP"},
                           "purposes": ["treatment"], "valid_for_s": 60});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };
    let request_json =
        json!({"patient_id": lpa(), "purposes": ["treatment"], "valid_for_s": 60}).to_string();
    let obs_new = observation("obs-new", PA);
    let template = json!({"resource_type": "Observation", "patient_link": "subject",
                          "required": ["status"]})
    .to_string();
    let mut bad_obs: Value = serde_json::from_slice(&observation("obs-x", PA)).unwrap();
    bad_obs.as_object_mut().unwrap().remove("status");
    let bad_obs = bad_obs.to_string().into_bytes();
    let mut changed: Value = serde_json::from_slice(&condition("cond-1", PA)).unwrap();
    changed["code"]["text"] = json!("changed");
    let changed_cond = changed.to_string().into_bytes();
    let many: Vec<Vec<u8>> = (0..501)
        .map(|i| observation(&format!("m{i}"), PA))
        .collect();
    let a = w.access.as_str();
    let c = w.consent.as_str();
    let r = w.request.as_str();
    vec![
        // RegisterPatient: admin or registrar only.
        row("doctor1", &["RegisterPatient", &lp("p-new")], 403),
        row("patientA", &["RegisterPatient", &lp("p-new")], 403),
        row("researcher1", &["RegisterPatient", &lp("p-new")], 403),
        row("auditor1", &["RegisterPatient", &lp("p-new")], 403),
        row("norole1", &["RegisterPatient", &lp("p-new")], 403),
        row("badrole1", &["RegisterPatient", &lp("p-new")], 403),
        (None, vec!["RegisterPatient".into(), lp("p-new")], vec![], 403),
        row("admin1", &["RegisterPatient"], 400),
        row("admin1", &["RegisterPatient", "bad id!"], 400),
        // A clear Patient.id is never a ledger id (ADR 0031).
        row("admin1", &["RegisterPatient", PA], 400),
        row("admin1", &["RegisterPatient", &lp("p-new"), "bad/collection"], 400),
        row("admin1", &["RegisterPatient", &lp("p-new"), "Org1MSPPHI", "extra"], 400),
        // A patient id belongs to its custodian: another organization is refused; the
        // custodian cannot change the collection.
        row("admin2", &["RegisterPatient", lpa()], 403),
        row("admin2", &["RegisterPatient", lpa(), "Org2MSPPHI"], 403),
        row("admin3", &["RegisterPatient", lpa(), "Org1MSPPHI"], 403),
        row("registrar1", &["RegisterPatient", lpa(), "OtherPHI"], 409),
        // GetPatient.
        row("doctor3", &["GetPatient", &lp("nobody")], 404),
        row("doctor3", &["GetPatient", "nobody"], 400),
        (None, vec!["GetPatient".into(), lpa().into()], vec![], 403),
        // CreateRecord: staff of the custodian, or a consented clinician.
        row_t("researcher1", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("insurer1", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("auditor1", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("registrar1", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("patientA", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("norole1", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("researcher2", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("insurer2", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("admin2", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("doctor3", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 403),
        row_t("doctor2", &["CreateRecord", lpa()], t(PA, "resource", condition("cond-x", PA)), 403),
        row_t("doctor1", &["CreateRecord", lpa()], vec![("patient", PA.as_bytes().to_vec())], 400),
        row_t("doctor1", &["CreateRecord", lpa()], vec![("resource", obs_new.clone())], 400),
        row_t("doctor1", &["CreateRecord", lpa()], t(PB, "resource", observation("obs-new", PB)), 400),
        row_t("doctor1", &["CreateRecord", PA], t(PA, "resource", obs_new.clone()), 400),
        row_t("doctor1", &["CreateRecord", lpa()], t(PA, "resource", obs_new.clone()), 409),
        row_t("doctor1", &["CreateRecord", lpa()], t(PA, "resource", b"{not json".to_vec()), 400),
        row_t("doctor1", &["CreateRecord", lpa()], t(PA, "resource", br#"{"resourceType":"Spaceship","id":"s1"}"#.to_vec()), 400),
        row_t("doctor1", &["CreateRecord", lpa()], t(PA, "resource", observation("obs-x", PB)), 400),
        row_t("doctor1", &["CreateRecord", lpa()], t(PA, "resource", bad_obs.clone()), 400),
        row_t("doctor1", &["CreateRecord", lpa()], t(PA, "resource", patient_resource(PB)), 400),
        row_t("doctor1", &["CreateRecord", lpa()], t(PA, "resource", observation("obs-1", PA)), 409),
        row_t("doctor1", &["CreateRecord", &lp("nobody")], t("nobody", "resource", observation("o", "nobody")), 404),
        row_t("doctor1", &["CreateRecord", lpa()], t(PA, "bundle", obs_new.clone()), 400),
        // ReserveRecords: the same callers as CreateRecord; ids only.
        row("researcher1", &["ReserveRecords", lpa(), &ledger_records(PA, &["Observation/obs-new"])], 403),
        row("patientA", &["ReserveRecords", lpa(), &ledger_records(PA, &["Observation/obs-new"])], 403),
        row("auditor1", &["ReserveRecords", lpa(), &ledger_records(PA, &["Observation/obs-new"])], 403),
        row("doctor3", &["ReserveRecords", lpa(), &ledger_records(PA, &["Observation/obs-new"])], 403),
        row("doctor2", &["ReserveRecords", lpa(), &ledger_records(PA, &["Observation/obs-new", "Condition/c-new"])], 403),
        (None, vec!["ReserveRecords".into(), lpa().into(), ledger_records(PA, &["Observation/obs-new"])], vec![], 403),
        row("doctor1", &["ReserveRecords", lpa()], 400),
        row("doctor1", &["ReserveRecords", lpa(), &lr(PA, "Observation/obs-new")], 400),
        row("doctor1", &["ReserveRecords", lpa(), "[]"], 400),
        row("doctor1", &["ReserveRecords", lpa(), &serde_json::to_string(&(0..501).map(|i| lr(PA, &format!("Observation/o{i}"))).collect::<Vec<_>>()).unwrap()], 400),
        row("doctor1", &["ReserveRecords", lpa(), &ledger_records(PA, &["Spaceship/s1"])], 400),
        row("doctor1", &["ReserveRecords", lpa(), r#"["Observation/a b"]"#], 400),
        row("doctor1", &["ReserveRecords", lpa(), r#"["Observation/obs-new"]"#], 400),
        row("doctor1", &["ReserveRecords", PA, &ledger_records(PA, &["Observation/obs-new"])], 400),
        row("doctor1", &["ReserveRecords", &lp("nobody"), &ledger_records("nobody", &["Observation/o"])], 404),
        // UpdateRecord.
        row_t("doctor1", &["UpdateRecord", lpa()], t(PA, "resource", obs_new.clone()), 404),
        row_t("researcher1", &["UpdateRecord", lpa()], t(PA, "resource", observation("obs-1", PA)), 403),
        row_t("patientA", &["UpdateRecord", lpa()], t(PA, "resource", observation("obs-1", PA)), 403),
        row_t("doctor3", &["UpdateRecord", lpa()], t(PA, "resource", observation("obs-1", PA)), 403),
        row_t("doctor1", &["UpdateRecord", lpa()], t(PA, "resource", bad_obs.clone()), 400),
        // CreateRecordsFromBundle: all or nothing.
        row_t("researcher1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(std::slice::from_ref(&obs_new))), 403),
        row_t("doctor3", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(std::slice::from_ref(&obs_new))), 403),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], vec![("patient", PA.as_bytes().to_vec())], 400),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], vec![("bundle", bundle(std::slice::from_ref(&obs_new)))], 400),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(&[obs_new.clone(), bad_obs.clone()])), 400),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(&[obs_new.clone(), observation("obs-x", PB)])), 400),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(&[obs_new.clone(), condition("cond-1", "other")])), 400),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(&[condition("cond-1", PA), changed_cond.clone()])), 409),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(std::slice::from_ref(&changed_cond))), 409),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(&[condition("cond-1", PA), obs_new.clone()])), 409),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", bundle(&many)), 400),
        row_t("doctor1", &["CreateRecordsFromBundle", lpa()], t(PA, "bundle", b"{\"resourceType\":\"Patient\"}".to_vec()), 400),
        // ReadRecordMetadata / GetRecordHistory / ListRecords: patient, custodian, auditor.
        row("doctor2", &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("patientB", &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("researcher3", &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("doctor1", &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/none")], 404),
        row("doctor1", &["ReadRecordMetadata", lpa(), "obs-1"], 400),
        row("doctor1", &["ReadRecordMetadata", lpa(), "Observation/obs-1"], 400),
        row("doctor1", &["ReadRecordMetadata", PA, &lr(PA, "Observation/obs-1")], 400),
        row("doctor2", &["GetRecordHistory", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("doctor1", &["GetRecordHistory", lpa(), &lr(PA, "Observation/none")], 404),
        row("patientB", &["ListRecords", lpa()], 403),
        row("doctor3", &["ListRecords", lpa()], 403),
        row("doctor1", &["ListRecords", lpa(), "0"], 400),
        row("doctor1", &["ListRecords", lpa(), "5", "not-a-bookmark"], 400),
        // PutTemplate: admins only; GetTemplate.
        row("doctor1", &["PutTemplate", &template], 403),
        row("patientA", &["PutTemplate", &template], 403),
        row("registrar1", &["PutTemplate", &template], 403),
        row("auditor1", &["PutTemplate", &template], 403),
        row("admin1", &["PutTemplate", "{"], 400),
        row("admin1", &["PutTemplate", &json!({"resource_type": "Observation", "patient_link": "subject", "required": ["a..b"]}).to_string()], 400),
        row("admin1", &["PutTemplate", &json!({"resource_type": "Observation", "patient_link": "subject", "owner": "me"}).to_string()], 400),
        row("doctor1", &["GetTemplate", "Spaceship"], 404),
        row("doctor1", &["GetTemplate", "not a type"], 400),
        (None, vec!["GetTemplate".into(), "Observation".into()], vec![], 403),
        // GrantConsent: the patient only.
        row("doctor1", &["GrantConsent", &grant(lpa(), json!({}))], 403),
        row("doctor2", &["GrantConsent", &grant(lpa(), json!({}))], 403),
        row("admin1", &["GrantConsent", &grant(lpa(), json!({}))], 403),
        row("patientB", &["GrantConsent", &grant(lpa(), json!({}))], 403),
        row("patientA@org2", &["GrantConsent", &grant(lpa(), json!({}))], 403),
        row("patientA@org2", &["ListConsents", lpa()], 403),
        row("patientA@org2", &["ResetAccessState", lpa(), "org:Org2MSP"], 403),
        row("patientA@org2", &["RequestErasure", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("patientA@org2", &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("patientA@org2", &["RequestRecordAccess", lpa(), &lr(PA, "Observation/obs-1"), "treatment"], 403),
        row("auditor1", &["GrantConsent", &grant(lpa(), json!({}))], 403),
        row("patientA", &["GrantConsent", &grant(lpa(), json!({"purposes": []}))], 400),
        row("patientA", &["GrantConsent", &grant(lpa(), json!({"purposes": ["marketing"]}))], 400),
        row("patientA", &["GrantConsent", &grant(lpa(), json!({"expires_at_ms": T0_MS + 10_000_000}))], 400),
        row("patientA", &["GrantConsent", &grant(lpa(), json!({"valid_for_s": 0}))], 400),
        row("patientA", &["GrantConsent", &json!({"patient_id": lpa(), "grantee": {"org": "Org3MSP"}, "purposes": ["treatment"], "expires_at_ms": T0_MS}).to_string()], 400),
        row("patientA", &["GrantConsent", &grant(lpa(), json!({"grantee": {"identity": "Org3MSP/xyz"}}))], 400),
        row("patientA", &["GrantConsent", &grant(lpa(), json!({"resource_types": ["observation"]}))], 400),
        row("patientA", &["GrantConsent", &grant(lpa(), json!({"extra": 1}))], 400),
        row("patientA", &["GrantConsent", &grant(PA, json!({}))], 400),
        row("patient:nobody", &["GrantConsent", &grant(&lp("nobody"), json!({}))], 404),
        // RevokeConsent: the patient only.
        row("doctor2", &["RevokeConsent", lpa(), c], 403),
        row("doctor1", &["RevokeConsent", lpa(), c], 403),
        row("patientB", &["RevokeConsent", lpa(), c], 403),
        row("patientA", &["RevokeConsent", lpa(), "no-such-consent"], 404),
        row("patientA", &["RevokeConsent", lpa()], 400),
        // ListConsents: the patient or an auditor.
        row("patientB", &["ListConsents", lpa()], 403),
        row("doctor2", &["ListConsents", lpa()], 403),
        row("doctor1", &["ListConsents", lpa()], 403),
        row("admin1", &["ListConsents", lpa()], 403),
        row("patientA", &["ListConsents", lpa(), "201"], 400),
        // RequestAccess: providers only.
        row("patientA", &["RequestAccess", &request_json], 403),
        row("admin2", &["RequestAccess", &request_json], 403),
        row("auditor2", &["RequestAccess", &request_json], 403),
        row("norole1", &["RequestAccess", &request_json], 403),
        row("doctor2", &["RequestAccess", "[]"], 400),
        row("doctor2", &["RequestAccess", &json!({"patient_id": lpa(), "purposes": ["treatment"], "valid_for_s": 0}).to_string()], 400),
        row("doctor2", &["RequestAccess", &json!({"patient_id": lp("nobody"), "purposes": ["treatment"], "valid_for_s": 60}).to_string()], 404),
        // Approve / Reject / ListAccessRequests: the patient.
        row("doctor2", &["ApproveAccessRequest", lpa(), r], 403),
        row("admin1", &["ApproveAccessRequest", lpa(), r], 403),
        row("patientB", &["ApproveAccessRequest", lpa(), r], 403),
        row("patientA", &["ApproveAccessRequest", lpa(), "no-such-request"], 404),
        row("doctor2", &["RejectAccessRequest", lpa(), r], 403),
        row("admin1", &["RejectAccessRequest", lpa(), r], 403),
        row("patientA", &["RejectAccessRequest", lpa(), "no-such-request"], 404),
        row("doctor2", &["ListAccessRequests", lpa()], 403),
        row("patientB", &["ListAccessRequests", lpa()], 403),
        // RequestRecordAccess: role must fit the purpose; refusals before any decision.
        row("researcher2", &["RequestRecordAccess", lpa(), &lr(PA, "Observation/obs-1"), "treatment"], 403),
        row("insurer2", &["RequestRecordAccess", lpa(), &lr(PA, "Observation/obs-1"), "research"], 403),
        row("patientB", &["RequestRecordAccess", lpa(), &lr(PA, "Observation/obs-1"), "treatment"], 403),
        row("norole1", &["RequestRecordAccess", lpa(), &lr(PA, "Observation/obs-1"), "treatment"], 403),
        (None, vec!["RequestRecordAccess".into(), lpa().into(), lr(PA, "Observation/obs-1"), "treatment".into()], vec![], 403),
        row("doctor2", &["RequestRecordAccess", lpa(), &lr(PA, "Observation/obs-1"), "curiosity"], 400),
        row("doctor2", &["RequestRecordAccess", lpa(), &lr(PA, "Observation/none"), "treatment"], 404),
        row("doctor2", &["RequestRecordAccess", &lp("nobody"), &lr("nobody", "Observation/obs-1"), "treatment"], 404),
        row("doctor2", &["RequestRecordAccess", lpa(), "Observation/obs-1", "treatment"], 400),
        // ReadRecord: only the requester of a granted, fresh entry.
        row("nurse1", &["ReadRecord", lpa(), a], 403),
        row("doctor2", &["ReadRecord", lpa(), a], 403),
        row("patientA", &["ReadRecord", lpa(), a], 403),
        row("doctor1", &["ReadRecord", lpa(), "000.nope"], 404),
        row("doctor1", &["ReadRecord", lpb(), a], 404),
        // ShareRecord: custodian staff; a consent in force to the grantee organization for
        // the type and the purpose; only to the share collection of the two organizations.
        row("doctor2", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org2MSP", "treatment"], 403),
        row("researcher1", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org2MSP", "treatment"], 403),
        row("patientA", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org2MSP", "treatment"], 403),
        row("doctor1", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org3MSP", "treatment"], 403),
        row("doctor1", &["ShareRecord", lpa(), &lr(PA, "Condition/cond-1"), "Org2MSP", "treatment"], 403),
        row("doctor1", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org2MSP", "research"], 403),
        row("doctor1", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org1MSP", "treatment"], 400),
        row("doctor1", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org2MSP"], 400),
        row("doctor1", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org2MSP", "Org2MSPPHI"], 400),
        row("doctor1", &["ShareRecord", lpa(), &lr(PA, "Observation/obs-1"), "Org2MSP", "treatment", "Org2MSPPHI"], 400),
        row("doctor1", &["ShareRecord", lpa(), &lr(PA, "Observation/none"), "Org2MSP", "treatment"], 404),
        // EmergencyAccess: doctor or nurse with ehr.emergency=true, of an organization holding
        // break-glass authority (a doctor or nurse without either is denied *on the ledger*,
        // audited: rules.rs::a_refused_break_glass_is_audited).
        row("lab3", &["EmergencyAccess", lpa(), "ETREAT"], 403),
        row("patientA", &["EmergencyAccess", lpa(), "ETREAT"], 403),
        row("admin3", &["EmergencyAccess", lpa(), "ETREAT"], 403),
        row("doctor3", &["EmergencyAccess", lpa(), "because I said so"], 400),
        row("doctor3", &["EmergencyAccess", lpa(), "ETREAT", "0"], 400),
        row("doctor3", &["EmergencyAccess", lpa(), "ETREAT", "86401"], 400),
        row("doctor3", &["EmergencyAccess", &lp("nobody"), "BTG"], 404),
        // GetAccessState: patient, auditor, custodian admin, or the grantee itself.
        row("doctor3", &["GetAccessState", lpa(), "org:Org2MSP"], 403),
        row("patientB", &["GetAccessState", lpa(), "org:Org2MSP"], 403),
        row("doctor1", &["GetAccessState", lpa(), "org:Org2MSP"], 403),
        row("patientA", &["GetAccessState", lpa(), "Org2MSP"], 400),
        // ResetAccessState: the patient and the custodian's admin; Blocked only.
        row("doctor1", &["ResetAccessState", lpa(), "org:Org2MSP"], 403),
        row("admin2", &["ResetAccessState", lpa(), "org:Org2MSP"], 403),
        row("patientB", &["ResetAccessState", lpa(), "org:Org2MSP"], 403),
        row("auditor1", &["ResetAccessState", lpa(), "org:Org2MSP"], 403),
        row("patientA", &["ResetAccessState", lpa(), "org:Org2MSP"], 409),
        row("admin1", &["ResetAccessState", lpa(), "org:Org3MSP"], 409),
        // ListAuditEntries: the patient or an auditor.
        row("doctor1", &["ListAuditEntries", lpa()], 403),
        row("admin1", &["ListAuditEntries", lpa()], 403),
        row("patientB", &["ListAuditEntries", lpa()], 403),
        row("doctor2", &["ListAuditEntries", lpa()], 403),
        row("patientA", &["ListAuditEntries", lpa(), "x"], 400),
        // RequestErasure: the patient; PurgeRecord: the custodian's admin, on request.
        row("doctor1", &["RequestErasure", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("admin1", &["RequestErasure", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("patientB", &["RequestErasure", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("patientA", &["RequestErasure", lpa(), &lr(PA, "Observation/none")], 404),
        row("doctor1", &["PurgeRecord", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("admin2", &["PurgeRecord", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("patientA", &["PurgeRecord", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("admin1", &["PurgeRecord", lpa(), &lr(PA, "Observation/obs-1")], 409),
        // Auditors of an organization without auditor authority read nothing.
        row("auditor4", &["ListAuditEntries", lpa()], 403),
        row("auditor4", &["ListConsents", lpa()], 403),
        row("auditor4", &["ListAccessRequests", lpa()], 403),
        row("auditor4", &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("auditor4", &["GetRecordHistory", lpa(), &lr(PA, "Observation/obs-1")], 403),
        row("auditor4", &["ListRecords", lpa()], 403),
        row("auditor4", &["GetAccessState", lpa(), "org:Org2MSP"], 403),
        // Governance: MSP admins (NodeOU admin) of governing organizations only.
        row("admin1", &["JoinGovernance"], 403),
        row("emergency4", &["JoinGovernance"], 403),
        row("gov1", &["JoinGovernance"], 409),
        row("gov4", &["JoinGovernance", "Org4MSP"], 400),
        (None, vec!["JoinGovernance".into()], vec![], 403),
        row("gov4", &["ApproveRoleAuthority", "Org4MSP", "emergency"], 403),
        row("admin1", &["ApproveRoleAuthority", "Org4MSP", "emergency"], 403),
        row("doctor3", &["ApproveRoleAuthority", "Org3MSP", "emergency"], 403),
        row("gov1", &["ApproveRoleAuthority", "Org2MSP", "emergency"], 409),
        row("gov1", &["ApproveRoleAuthority", "Org4MSP", "superuser"], 400),
        row("gov1", &["ApproveRoleAuthority", "Org 4", "emergency"], 400),
        row("gov1", &["ApproveRoleAuthority", "Org4MSP"], 400),
        row("gov1", &["ApproveRoleAuthority", "Org4MSP", "auditor", "x"], 400),
        row("gov4", &["WithdrawRoleAuthority", "Org1MSP", "emergency"], 403),
        row("admin2", &["WithdrawRoleAuthority", "Org1MSP", "emergency"], 403),
        row("gov3", &["WithdrawRoleAuthority", "Org4MSP", "emergency"], 404),
        row("gov1", &["ApproveRoleAuthority", "Org4MSP", "auditor"], 404),
        row("gov4", &["JoinGovernance", "Org1MSP,Org4MSP"], 409),
        // Founded: founding confirmations are its record; not an MSP admin; arguments.
        row("gov1", &["WithdrawFounding"], 409),
        row("gov4", &["WithdrawFounding"], 409),
        row("admin1", &["WithdrawFounding"], 403),
        row("gov1", &["WithdrawFounding", "x"], 400),
        (None, vec!["WithdrawFounding".into()], vec![], 403),
        row("gov1", &["AdmitMember", "Org4MSP"], 404),
        row("gov1", &["AdmitMember", "Org2MSP"], 409),
        row("gov4", &["AdmitMember", "Org4MSP"], 403),
        row("admin1", &["AdmitMember", "Org4MSP"], 403),
        row("gov1", &["AdmitMember"], 400),
        row("gov1", &["AdmitMember", "Org 4"], 400),
        row("gov1", &["AdmitMember", "Org4MSP", "x"], 400),
        row("gov1", &["WithdrawRoleAuthority", "Org1MSP", "janitor"], 400),
        row("doctor1", &["GetRoleAuthority", "Org1MSP"], 400),
        row("doctor1", &["GetRoleAuthority", "Org1MSP", "root"], 400),
        (None, vec!["GetRoleAuthority".into(), "Org1MSP".into(), "auditor".into()], vec![], 403),
        row("doctor1", &["GetGovernance", "all"], 400),
        (None, vec!["GetGovernance".into()], vec![], 403),
        row("doctor1", &["WhoAmI", "x"], 400),
        (None, vec!["WhoAmI".into()], vec![], 403),
        // SetPseudonymKey: an EHR admin, 32 bytes, never a second key.
        row_t("doctor1", &["SetPseudonymKey"], vec![("pseudonym_key", vec![7; 32])], 403),
        row_t("patientA", &["SetPseudonymKey"], vec![("pseudonym_key", vec![7; 32])], 403),
        row_t("gov1", &["SetPseudonymKey"], vec![("pseudonym_key", vec![7; 32])], 403),
        (None, vec!["SetPseudonymKey".into()], vec![("pseudonym_key", vec![7; 32])], 403),
        row_t("admin1", &["SetPseudonymKey"], vec![("pseudonym_key", vec![7; 32])], 409),
        row("admin1", &["SetPseudonymKey"], 400),
        row_t("admin1", &["SetPseudonymKey"], vec![("pseudonym_key", vec![7; 31])], 400),
        row_t("admin1", &["SetPseudonymKey", "x"], vec![("pseudonym_key", vec![7; 32])], 400),
        // LedgerIds: the custodian's staff, the patient, a clinician allowed to write.
        row_t("doctor2", &["LedgerIds", "Org1MSP"], vec![("ids", json!({"patient": PA, "records": ["Condition/c"]}).to_string().into_bytes())], 403),
        row_t("doctor2", &["LedgerIds", "Org1MSP"], vec![("ids", json!({"patient": PA}).to_string().into_bytes())], 403),
        row_t("doctor3", &["LedgerIds", "Org1MSP"], vec![("ids", json!({"patient": PA, "records": ["Observation/o"]}).to_string().into_bytes())], 403),
        row_t("patientB", &["LedgerIds", "Org1MSP"], vec![("ids", json!({"patient": PA}).to_string().into_bytes())], 403),
        row_t("researcher1", &["LedgerIds"], vec![("ids", json!({"patient": PA}).to_string().into_bytes())], 403),
        row("doctor1", &["LedgerIds"], 400),
        row_t("doctor1", &["LedgerIds"], vec![("ids", b"[]".to_vec())], 400),
        row_t("doctor1", &["LedgerIds"], vec![("ids", json!({"patient": "a b"}).to_string().into_bytes())], 400),
        row_t("doctor1", &["LedgerIds"], vec![("ids", json!({"patient": PA, "records": ["obs-1"]}).to_string().into_bytes())], 400),
        row_t("doctor1", &["LedgerIds", "Org1MSP", "x"], vec![("ids", json!({"patient": PA}).to_string().into_bytes())], 400),
        row_t("auditor4", &["LedgerIds"], vec![("ids", json!({"patient": PA}).to_string().into_bytes())], 404),
        (None, vec!["LedgerIds".into(), "Org1MSP".into()], vec![("ids", json!({"patient": PA}).to_string().into_bytes())], 403),
        // LocateRecords: as LedgerIds (fhir_support.rs has the rest).
        row_t("researcher1", &["LocateRecords"], vec![("records", json!({"records": ["Observation/obs-1"]}).to_string().into_bytes())], 403),
        row("doctor1", &["LocateRecords"], 400),
        row_t("doctor1", &["LocateRecords"], vec![("records", json!({"records": []}).to_string().into_bytes())], 400),
        (None, vec!["LocateRecords".into()], vec![("records", json!({"records": ["Observation/obs-1"]}).to_string().into_bytes())], 403),
        // RequestRecordsAccess / ReadRecords (fhir_support.rs has the rest).
        row("researcher2", &["RequestRecordsAccess", lpa(), "treatment", "{}"], 403),
        row("doctor2", &["RequestRecordsAccess", lpa(), "treatment", r#"{"page_size": 0}"#], 400),
        row("doctor2", &["RequestRecordsAccess", lpa(), "treatment"], 400),
        row("doctor2", &["ReadRecords", lpa(), &w.access], 403),
        row("doctor1", &["ReadRecords", lpa(), &w.access], 403),
        row("doctor1", &["ReadRecords", lpa(), "000000000000000.x"], 404),
        // GetConsent: as ListConsents.
        row("doctor1", &["GetConsent", lpa(), &w.consent], 403),
        row("patientB", &["GetConsent", lpa(), &w.consent], 403),
        row("auditor4", &["GetConsent", lpa(), &w.consent], 403),
        row("patientA", &["GetConsent", lpa(), &w.request], 404),
        row("patientA", &["GetConsent", lpa()], 400),
        row("patientA", &["GetConsent", lpa(), &w.consent, "x"], 400),
        // Unknown function.
        row("admin1", &["DropAllTables"], 400),
    ]
}

#[test]
fn refusals_change_nothing() {
    let (mut n, w) = world();
    let rows = refusals(&w);
    let mut covered = BTreeSet::new();
    for (who, args, transient, status) in &rows {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let transient: Vec<(&str, &[u8])> =
            transient.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let message = n.refused(*who, &args, &transient, *status);
        assert!(!message.is_empty());
        covered.insert(args[0].to_owned());
    }
    // Every routed function has refusal rows.
    for f in ehr_chaincode::contract().functions() {
        assert!(covered.contains(f), "no refusal row for {f}");
    }
    println!(
        "{} refusal rows over {} functions",
        rows.len(),
        covered.len() - 1
    );
}

#[test]
fn register_and_get_patient() {
    let mut n = Net::new();
    let v = n.ok("registrar1", &["RegisterPatient", lpa()]);
    assert_eq!(v["custodian_msp"], "Org1MSP");
    assert_eq!(v["collection"], "Org1MSPPHI");
    assert_eq!(v["registered_by"], identity_id("registrar1"));
    assert_eq!(n.last_event_names(), ["PatientRegistered"]);
    // Org2 names its patient under its own key; its records go to the named collection.
    let pb2 = lp_at("Org2MSP", PB);
    assert_ne!(pb2, lpb());
    let v = n.ok("admin2", &["RegisterPatient", &pb2, "Org2Custody"]);
    assert_eq!(v["patient_id"], pb2);
    assert_eq!(v["custodian_msp"], "Org2MSP");
    assert_eq!(v["collection"], "Org2Custody");
    let obs = observation("obs-b1", PB);
    let v = n.create_at("doctor2", "Org2MSP", PB, &obs);
    assert_eq!(v["record_id"], lr_at("Org2MSP", PB, "Observation/obs-b1"));
    let key = medledger_chaincode::composite::create(
        "record",
        &[&pb2, "Observation", &v["record_id"].as_str().unwrap()[12..]],
    )
    .unwrap();
    assert_eq!(n.ledger.private("Org2Custody", &key).unwrap(), obs);
    // Anyone may look up a patient's custodian (the gateway needs it).
    let v = n.ok("doctor3", &["GetPatient", lpa()]);
    assert_eq!(v["custodian_msp"], "Org1MSP");
}

#[test]
fn create_record_stores_phi_privately_with_custodian_policy() {
    let mut n = Net::new();
    n.register(PA);
    let bytes = observation("obs-1", PA);
    let v = n.create("nurse1", PA, &bytes);
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    assert_eq!(v["record_id"], lr(PA, "Observation/obs-1"));
    assert_eq!(v["version"], 1);
    assert_eq!(v["sha256"], sha256_hex(&bytes));
    let key = record_key(PA, "Observation/obs-1");
    assert_eq!(n.ledger.private("Org1MSPPHI", &key).unwrap(), bytes);
    assert_eq!(
        n.ledger.private_hash("Org1MSPPHI", &key).unwrap(),
        hex::decode(sha256_hex(&bytes)).unwrap()
    );
    let meta: Value = serde_json::from_slice(&n.ledger.state(&key).unwrap()).unwrap();
    assert_eq!(meta["patient_id"], lpa());
    assert_eq!(meta["resource_type"], "Observation");
    assert_eq!(meta["author"], identity_id("nurse1"));
    assert_eq!(meta["author_msp"], "Org1MSP");
    assert_eq!(meta["author_role"], "nurse");
    assert_eq!(meta["template_version"], 0);
    assert_eq!(meta["created_at_ms"], meta["updated_at_ms"]);
    assert_eq!(meta["status"], "active");
    let policy = custodian_endorsement_policy("Org1MSP");
    assert_eq!(n.ledger.validation_parameter("", &key).unwrap(), policy);
    assert_eq!(
        n.ledger.validation_parameter("Org1MSPPHI", &key).unwrap(),
        policy
    );
    assert_eq!(n.last_event_names(), ["RecordCreated"]);
    // Lab and admin of the custodian may write too; the Patient resource itself.
    n.create("lab1", PA, &observation("obs-2", PA));
    n.create("admin1", PA, &patient_resource(PA));
    let v = n.ok("patientA", &["ListRecords", lpa()]);
    assert_eq!(v["records"].as_array().unwrap().len(), 3);
}

#[test]
fn update_record_versions_and_history() {
    let (mut n, _) = world();
    let v2: Vec<u8> = String::from_utf8(observation("obs-1", PA))
        .unwrap()
        .replace("172.4", "173.0")
        .into_bytes();
    let v = n.ok_t(
        "doctor1",
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &v2),
    );
    assert_eq!(v["version"], 2);
    assert_eq!(n.last_event_names(), ["RecordUpdated"]);
    // A consented clinician of another organization (Org2: Observation, treatment) updates it;
    // the PHI still goes to the custodian's collection.
    let v3 = String::from_utf8(v2.clone())
        .unwrap()
        .replace("173.0", "174.0")
        .into_bytes();
    let v = n.ok_t(
        "doctor2",
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &v3),
    );
    assert_eq!(v["version"], 3);
    let key = record_key(PA, "Observation/obs-1");
    assert_eq!(n.ledger.private("Org1MSPPHI", &key).unwrap(), v3);
    let h = n.ok(
        "auditor1",
        &["GetRecordHistory", lpa(), &lr(PA, "Observation/obs-1")],
    );
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 4);
    let versions: Vec<u64> = h.iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(
        versions,
        [3, 2, 1, 0],
        "newest first, down to the reservation"
    );
    assert_eq!(h[3]["status"], "reserved");
    assert_eq!(h[0]["sha256"], sha256_hex(&v3));
    assert_eq!(h[0]["author_msp"], "Org2MSP");
    assert_eq!(h[1]["sha256"], sha256_hex(&v2));
    assert_eq!(h[2]["sha256"], sha256_hex(&observation("obs-1", PA)));
    assert!(
        h.iter()
            .all(|e| e["tx_id"].as_str().unwrap().len() == 64 && e["timestamp_ms"].is_u64())
    );
    let meta = n.ok(
        "patientA",
        &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-1")],
    );
    assert_eq!(meta["version"], 3);
    assert_eq!(meta["created_at_ms"], h[2]["timestamp_ms"]);
    // A consented external clinician creates records of the consented type.
    n.create("doctor2", PA, &observation("obs-org2", PA));
}

#[test]
fn reserved_keys_carry_the_custodian_policy_before_any_phi() {
    let mut n = Net::new();
    n.register(PA);
    let ids = [
        lr(PA, "Observation/o1"),
        lr(PA, "Condition/c1"),
        lr(PA, "Observation/o1"),
    ];
    let v = n.reserve("doctor1", lpa(), &ids);
    assert_eq!(v, json!({"reserved": 2, "existing": 0}));
    assert_eq!(n.last_event_names(), ["RecordsReserved"]);
    let key = record_key(PA, "Observation/o1");
    assert_eq!(
        n.ledger.validation_parameter("", &key).unwrap(),
        custodian_endorsement_policy("Org1MSP")
    );
    assert!(
        n.ledger
            .private_state()
            .keys()
            .all(|(_, k)| k.contains("pseudonymKey")),
        "no PHI yet, only the pseudonym keys"
    );
    let meta = n.ok(
        "doctor1",
        &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/o1")],
    );
    assert_eq!(meta["status"], "reserved");
    assert_eq!(meta["version"], 0);
    // A retry succeeds; reserved records are not readable, updatable or erasable.
    assert_eq!(
        n.reserve("doctor1", lpa(), &ids[..2]),
        json!({"reserved": 0, "existing": 2})
    );
    n.refused(
        Some("doctor1"),
        &[
            "RequestRecordAccess",
            lpa(),
            &lr(PA, "Observation/o1"),
            "treatment",
        ],
        &[],
        404,
    );
    n.refused(
        Some("doctor1"),
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &observation("o1", PA)),
        404,
    );
    n.refused(
        Some("patientA"),
        &["RequestErasure", lpa(), &lr(PA, "Observation/o1")],
        &[],
        404,
    );
    // The PHI-carrying create then writes only custodian-governed keys.
    n.advance_s(10);
    let bytes = observation("o1", PA);
    let v = n.ok_t(
        "doctor1",
        &["CreateRecord", lpa()],
        &phi(PA, "resource", &bytes),
    );
    assert_eq!(v["version"], 1);
    let meta = n.ok(
        "doctor1",
        &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/o1")],
    );
    assert_eq!(meta["status"], "active");
    assert_eq!(meta["created_at_ms"], meta["updated_at_ms"]);
    let h = n.ok(
        "doctor1",
        &["GetRecordHistory", lpa(), &lr(PA, "Observation/o1")],
    );
    assert_eq!(h[0]["version"], 1);
    assert_eq!(h[1]["version"], 0);
    assert_eq!(h[1]["status"], "reserved");
    // A consented clinician of another organization reserves types it may write.
    let c = json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"}, "resource_types": ["Observation"],
                   "purposes": ["treatment"], "valid_for_s": 3600});
    n.grant("patientA", c);
    n.create("doctor2", PA, &observation("o2", PA));
}

#[test]
fn bundle_creates_all_entries_and_retries_are_idempotent() {
    let mut n = Net::new();
    n.register(PA);
    let org = br#"{"resourceType":"Organization","id":"org-1","name":"Clinic"}"#.to_vec();
    let entries = vec![
        patient_resource(PA),
        observation("o1", PA),
        condition("c1", PA),
        org.clone(),
        org,
    ];
    let b = bundle(&entries);
    // Without reservation the PHI-carrying call is refused (it could not be endorsed by the
    // custodian alone), and nothing is written.
    let m = n.refused(
        Some("doctor1"),
        &["CreateRecordsFromBundle", lpa()],
        &phi(PA, "bundle", &b),
        409,
    );
    assert!(m.contains("ReserveRecords"), "{m}");
    let v = n.create_bundle("doctor1", PA, &b);
    assert_eq!(v["created"], 4);
    assert_eq!(v["unchanged"], 1, "the repeated Organization");
    assert_eq!(n.last_event_names(), ["RecordsCreated"]);
    for (r, bytes) in [
        ("Patient/patient-a", &entries[0]),
        ("Observation/o1", &entries[1]),
        ("Organization/org-1", &entries[3]),
    ] {
        assert_eq!(
            &n.ledger.private("Org1MSPPHI", &record_key(PA, r)).unwrap(),
            bytes
        );
    }
    // The same chunk again (a client retry) succeeds without new versions.
    let before = n.ledger.public_state();
    let v = n.ok_t(
        "doctor1",
        &["CreateRecordsFromBundle", lpa()],
        &phi(PA, "bundle", &b),
    );
    assert_eq!(v["created"], 0);
    assert_eq!(v["unchanged"], 5);
    assert_eq!(n.ledger.public_state(), before);
}

#[test]
fn templates_are_versioned_and_enforced() {
    let mut n = Net::new();
    n.register(PA);
    let t = n.ok("doctor3", &["GetTemplate", "Condition"]);
    assert_eq!(t["version"], 0);
    let strict = json!({"resource_type": "Condition", "patient_link": "subject",
                        "required": ["code", "subject", "onsetDateTime"]});
    let v = n.ok("admin2", &["PutTemplate", &strict.to_string()]);
    assert_eq!(v, json!({"resource_type": "Condition", "version": 1}));
    assert_eq!(n.last_event_names(), ["TemplatePut"]);
    let r = n.call_t(
        "doctor1",
        &["CreateRecord", lpa()],
        &phi(PA, "resource", &condition("c1", PA)),
    );
    assert_eq!(r.status, 400);
    assert!(r.message.contains("onsetDateTime"), "{}", r.message);
    let v = n.ok("admin1", &["PutTemplate", &strict.to_string()]);
    assert_eq!(v["version"], 2);
    let t = n.ok("doctor1", &["GetTemplate", "Condition"]);
    assert_eq!(t["version"], 2);
    assert_eq!(t["updated_by"], identity_id("admin1"));
    // A new resource type becomes known once an admin defines it.
    let device =
        br#"{"resourceType":"Device","id":"d1","patient":{"reference":"Patient/patient-a"}}"#;
    assert_eq!(
        n.call_t(
            "doctor1",
            &["CreateRecord", lpa()],
            &phi(PA, "resource", device)
        )
        .status,
        400
    );
    n.ok(
        "admin1",
        &[
            "PutTemplate",
            r#"{"resource_type":"Device","patient_link":"patient"}"#,
        ],
    );
    n.create("doctor1", PA, device);
}

#[test]
fn consents_grant_list_revoke() {
    let (mut n, w) = world();
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Authorized");
    // The world's grant emitted ConsentGranted with the state change.
    let granted: Vec<_> = n
        .events()
        .into_iter()
        .filter(|e| e.name == "EhrEvents")
        .collect();
    assert!(!granted.is_empty());
    // A grant to one identity; an identity grant with expires_at_ms.
    let doc3 = identity_id("doctor3");
    let c2 = n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"identity": doc3}, "purposes": ["treatment", "operations"],
               "expires_at_ms": n.now_ms + 86_400_000}),
    );
    assert_eq!(n.state(lpa(), &format!("identity:{doc3}")), "Authorized");
    let page1 = n.ok("patientA", &["ListConsents", lpa(), "1"]);
    assert_eq!(page1["consents"].as_array().unwrap().len(), 1);
    let bookmark = page1["bookmark"].as_str().unwrap().to_owned();
    assert!(!bookmark.is_empty());
    let page2 = n.ok("auditor2", &["ListConsents", lpa(), "1", &bookmark]);
    assert_eq!(page2["consents"].as_array().unwrap().len(), 1);
    assert_eq!(page2["bookmark"], "");
    let ids: BTreeSet<String> = [&page1, &page2]
        .iter()
        .map(|p| p["consents"][0]["consent_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, BTreeSet::from([w.consent.clone(), c2.clone()]));
    let v = n.ok("patientA", &["RevokeConsent", lpa(), &w.consent]);
    assert_eq!(v["status"], "inactive");
    assert_eq!(n.last_event_names(), ["ConsentRevoked"]);
    n.refused(
        Some("patientA"),
        &["RevokeConsent", lpa(), &w.consent],
        &[],
        409,
    );
    // Revoking leaves the state; the next out-of-consent request is a Violation.
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Authorized");
}

#[test]
fn access_requests_approve_and_reject() {
    let (mut n, w) = world();
    assert_eq!(
        n.events()
            .iter()
            .filter(|e| e.name == "AccessRequested")
            .count(),
        1
    );
    let list = n.ok("patientA", &["ListAccessRequests", lpa()]);
    assert_eq!(list["requests"][0]["status"], "pending");
    assert_eq!(list["requests"][0]["grantee"], json!({"org": "Org2MSP"}));
    // Before approval Org2 may not read the Condition (out of scope: Violation).
    let v = n.ok("patientA", &["ApproveAccessRequest", lpa(), &w.request]);
    assert_eq!(v["state"], "Authorized");
    assert!(n.last_event_names().contains(&"ConsentGranted".to_owned()));
    n.refused(
        Some("patientA"),
        &["ApproveAccessRequest", lpa(), &w.request],
        &[],
        409,
    );
    n.refused(
        Some("patientA"),
        &["RejectAccessRequest", lpa(), &w.request],
        &[],
        409,
    );
    let consents = n.ok("patientA", &["ListConsents", lpa()]);
    let approved: Vec<&Value> = consents["consents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["request_id"] == json!(w.request))
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["resource_types"], json!(["Condition"]));
    assert_eq!(
        approved[0]["expires_at_ms"].as_u64().unwrap() - approved[0]["start_ms"].as_u64().unwrap(),
        600_000
    );
    let data = n.read("doctor2b", lpa(), &lr(PA, "Condition/cond-1"), "treatment");
    assert_eq!(data, condition("cond-1", PA));
    // Another request, rejected; a request for one identity.
    let r2 = n.ok(
        "lab2",
        &["RequestAccess", &json!({"patient_id": lpa(), "purposes": ["treatment"], "valid_for_s": 60, "for_identity": true}).to_string()],
    )["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = n.ok("patientA", &["RejectAccessRequest", lpa(), &r2]);
    assert_eq!(v["status"], "rejected");
    assert_eq!(n.last_event_names(), ["AccessRequestRejected"]);
    let list = n.ok("auditor1", &["ListAccessRequests", lpa()]);
    let req2 = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == json!(r2))
        .unwrap();
    assert_eq!(req2["grantee"], json!({"identity": identity_id("lab2")}));
}

fn audit(n: &mut Net, patient: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut bookmark = String::new();
    loop {
        let v = n.ok("auditor1", &["ListAuditEntries", patient, "2", &bookmark]);
        entries.extend(v["entries"].as_array().unwrap().iter().cloned());
        bookmark = v["bookmark"].as_str().unwrap().to_owned();
        if bookmark.is_empty() {
            return entries;
        }
    }
}

#[test]
fn record_access_decisions_are_audited() {
    let (mut n, _) = world();
    // Patient reads their own record; the custodian's staff theirs.
    let own = n.read("patientA", lpa(), &lr(PA, "Condition/cond-1"), "treatment");
    assert_eq!(own, condition("cond-1", PA));
    n.read("nurse1", lpa(), &lr(PA, "Condition/cond-1"), "operations");
    // No relation: denied, audited, state untouched.
    let (_, d) = n.request("doctor3", lpa(), &lr(PA, "Observation/obs-1"), "treatment");
    assert_eq!(d, "denied");
    assert_eq!(n.last_event_names(), ["AccessDenied"]);
    assert_eq!(n.state(lpa(), "org:Org3MSP"), "NoRelation");
    // Consent: granted; wrong purpose: denied and a Violation.
    let (_, d) = n.request("doctor2", lpa(), &lr(PA, "Observation/obs-1"), "treatment");
    assert_eq!(d, "granted");
    assert_eq!(n.last_event_names(), ["AccessGranted"]);
    let (_, d) = n.request("doctor2", lpa(), &lr(PA, "Observation/obs-1"), "operations");
    assert_eq!(d, "denied");
    assert_eq!(n.last_event_names(), ["AccessDenied", "StateChanged"]);
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Suspended");
    // While Suspended an in-scope request is denied without a further Violation.
    let (_, d) = n.request("doctor2", lpa(), &lr(PA, "Observation/obs-1"), "treatment");
    assert_eq!(d, "denied");
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Suspended");
    let entries = audit(&mut n, lpa());
    let reasons: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["requester_msp"].as_str().unwrap().to_owned(),
                e["decision"].as_str().unwrap().to_owned(),
                e["basis"]
                    .as_str()
                    .or(e["reason"].as_str())
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let expect = |m: &str, d: &str, r: &str| (m.to_owned(), d.to_owned(), r.to_owned());
    assert_eq!(
        reasons,
        [
            expect("Org1MSP", "granted", "custodian"),
            expect("Org1MSP", "granted", "patient"),
            expect("Org1MSP", "granted", "custodian"),
            expect("Org3MSP", "denied", "no-consent"),
            expect("Org2MSP", "granted", "consent"),
            expect("Org2MSP", "denied", "purpose-not-permitted"),
            expect("Org2MSP", "denied", "suspended"),
        ]
    );
    let first = n.ok("patientA", &["ListAuditEntries", lpa()]);
    assert_eq!(
        first["summary"],
        json!({"total": 7, "granted": 4, "denied": 3, "emergency": 0})
    );
    // Denied reasons: out of scope, expired, revoked.
    let (_, d) = n.request("doctor3", lpa(), &lr(PA, "Condition/cond-1"), "treatment");
    assert_eq!(d, "denied");
}

#[test]
fn read_record_needs_a_fresh_granted_entry_of_the_caller() {
    let (mut n, w) = world();
    let r = n.call("doctor1", &["ReadRecord", lpa(), &w.access]);
    assert_eq!(r.status, 200);
    assert_eq!(r.payload, observation("obs-1", PA));
    n.advance_s(599);
    assert_eq!(
        n.call("doctor1", &["ReadRecord", lpa(), &w.access]).status,
        200
    );
    n.advance_s(2);
    let m = n.refused(Some("doctor1"), &["ReadRecord", lpa(), &w.access], &[], 403);
    assert!(m.contains("no longer fresh"), "{m}");
    // A denied entry never serves.
    let (denied, d) = n.request("doctor3", lpa(), &lr(PA, "Observation/obs-1"), "treatment");
    assert_eq!(d, "denied");
    n.refused(Some("doctor3"), &["ReadRecord", lpa(), &denied], &[], 403);
    // An emergency window entry is not a record access.
    let v = n.ok("doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
    n.refused(
        Some("doctor3"),
        &["ReadRecord", lpa(), v["access_id"].as_str().unwrap()],
        &[],
        403,
    );
}

#[test]
fn share_record_copies_phi_to_the_share_collection() {
    let (mut n, w) = world();
    let v = n.ok(
        "doctor1",
        &[
            "ShareRecord",
            lpa(),
            &lr(PA, "Observation/obs-1"),
            "Org2MSP",
            "treatment",
        ],
    );
    assert_eq!(v["collection"], "Org1MSP-to-Org2MSP-PHI");
    assert_eq!(v["sha256"], sha256_hex(&observation("obs-1", PA)));
    assert_eq!(v["purpose"], "treatment");
    assert_eq!(v["consent_id"], w.consent.as_str());
    assert_eq!(n.last_event_names(), ["RecordShared"]);
    let key = record_key(PA, "Observation/obs-1");
    assert_eq!(
        n.ledger.private("Org1MSP-to-Org2MSP-PHI", &key).unwrap(),
        observation("obs-1", PA)
    );
    assert!(n.ledger.private("Org2MSPPHI", &key).is_none());
    assert_eq!(
        n.ledger
            .validation_parameter("Org1MSP-to-Org2MSP-PHI", &key)
            .unwrap(),
        custodian_endorsement_policy("Org1MSP")
    );
    let meta = n.ok(
        "doctor1",
        &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-1")],
    );
    assert_eq!(meta["shares"][0]["collection"], "Org1MSP-to-Org2MSP-PHI");
    assert_eq!(meta["shares"][0]["consent_id"], w.consent.as_str());
    assert_eq!(meta["shares"][0]["purpose"], "treatment");
    // Org2 reads (its peers can serve the copy).
    assert_eq!(
        n.read("doctor2", lpa(), &lr(PA, "Observation/obs-1"), "treatment"),
        observation("obs-1", PA)
    );
}

#[test]
fn emergency_access_is_bounded_and_audited() {
    let (mut n, _) = world();
    let v = n.ok("doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
    assert_eq!(v["expires_at_ms"].as_u64().unwrap(), n.now_ms + 86_400_000);
    let ev = n.events().last().cloned().unwrap();
    assert_eq!(ev.name, "EmergencyAccess");
    let payload: Value = serde_json::from_slice(&ev.payload).unwrap();
    assert_eq!(payload["patient_id"], lpa());
    assert_eq!(payload["reason"], "ETREAT");
    assert_eq!(
        n.read("doctor3", lpa(), &lr(PA, "Condition/cond-1"), "treatment"),
        condition("cond-1", PA)
    );
    // A nurse with the attribute and a short window.
    n.ok("nurse3", &["EmergencyAccess", lpa(), "BTG", "60"]);
    n.advance_s(61);
    let (_, d) = n.request("nurse3", lpa(), &lr(PA, "Condition/cond-1"), "treatment");
    assert_eq!(d, "denied", "window closed");
    n.advance_s(86_400);
    let (_, d) = n.request("doctor3", lpa(), &lr(PA, "Condition/cond-1"), "treatment");
    assert_eq!(d, "denied", "window closed");
    let first = n.ok("patientA", &["ListAuditEntries", lpa()]);
    assert_eq!(
        first["summary"]["emergency"], 3,
        "two windows and one read under a window"
    );
}

#[test]
fn get_access_state_for_the_grantee_itself() {
    let (mut n, _) = world();
    let v = n.ok("doctor2", &["GetAccessState", lpa(), "org:Org2MSP"]);
    assert_eq!(v["state"], "Authorized");
    let v = n.ok("admin1", &["GetAccessState", lpa(), "org:Org3MSP"]);
    assert_eq!(v["state"], "NoRelation");
    let me = format!("identity:{}", identity_id("doctor3"));
    let v = n.ok("doctor3", &["GetAccessState", lpa(), &me]);
    assert_eq!(v["state"], "NoRelation");
}

/// Drives (PA, org:Org2MSP) to Blocked.
fn block_org2(n: &mut Net) {
    for _ in 0..2 {
        let (_, d) = n.request("doctor2", lpa(), &lr(PA, "Condition/cond-1"), "treatment");
        assert_eq!(d, "denied");
    }
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Blocked");
}

#[test]
fn blocked_errors_until_both_reset() {
    let (mut n, w) = world();
    block_org2(&mut n);
    // Error and abort: requests, grants, access requests, break-glass of that org.
    let m = n.refused(
        Some("doctor2"),
        &[
            "RequestRecordAccess",
            lpa(),
            &lr(PA, "Observation/obs-1"),
            "treatment",
        ],
        &[],
        403,
    );
    assert!(m.contains("Blocked"), "{m}");
    n.refused(
        Some("doctor2b"),
        &[
            "RequestRecordAccess",
            lpa(),
            &lr(PA, "Observation/obs-1"),
            "treatment",
        ],
        &[],
        403,
    );
    let grant =
        json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"}, "resource_types": ["Observation"],
                       "purposes": ["treatment"], "valid_for_s": 60})
        .to_string();
    n.refused(Some("patientA"), &["GrantConsent", &grant], &[], 403);
    n.refused(
        Some("patientA"),
        &["ApproveAccessRequest", lpa(), &w.request],
        &[],
        403,
    );
    n.refused(
        Some("emergency2"),
        &["EmergencyAccess", lpa(), "ETREAT"],
        &[],
        403,
    );
    n.refused(
        Some("doctor2"),
        &[
            "RequestAccess",
            &json!({"patient_id": lpa(), "purposes": ["treatment"], "valid_for_s": 60}).to_string(),
        ],
        &[],
        403,
    );
    n.refused(
        Some("doctor2"),
        &["CreateRecord", lpa()],
        &phi(PA, "resource", &observation("o9", PA)),
        403,
    );
    // Other patients are unaffected.
    let (_, d) = n.request("doctor2", lpb(), &lr(PB, "Observation/obs-b1"), "treatment");
    assert_eq!(d, "denied");
    // Two-step reset: the patient, then (not twice) the custodian's admin.
    let v = n.ok("patientA", &["ResetAccessState", lpa(), "org:Org2MSP"]);
    assert_eq!(v["reset_complete"], false);
    assert_eq!(n.last_event_names(), ["ResetApproved"]);
    n.refused(
        Some("patientA"),
        &["ResetAccessState", lpa(), "org:Org2MSP"],
        &[],
        409,
    );
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Blocked");
    let v = n.ok("admin1", &["ResetAccessState", lpa(), "org:Org2MSP"]);
    assert_eq!(v["reset_complete"], true);
    assert_eq!(v["state"], "NoRelation");
    assert_eq!(n.last_event_names(), ["StateChanged"]);
    // The old consent ended with the reset; access starts over from a new grant.
    let consents = n.ok("patientA", &["ListConsents", lpa()]);
    let old = consents["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consent_id"] == json!(w.consent))
        .unwrap();
    assert_eq!(old["status"], "inactive");
    assert_eq!(old["revoked_reason"], "reset");
    let (_, d) = n.request("doctor2", lpa(), &lr(PA, "Observation/obs-1"), "treatment");
    assert_eq!(d, "denied");
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "NoRelation");
    n.ok("patientA", &["GrantConsent", &grant]);
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Authorized");
    // Admin first, then patient, works the same way.
    block_org2(&mut n);
    assert!(
        !n.ok("admin1", &["ResetAccessState", lpa(), "org:Org2MSP"])["reset_complete"]
            .as_bool()
            .unwrap()
    );
    n.refused(
        Some("admin1"),
        &["ResetAccessState", lpa(), "org:Org2MSP"],
        &[],
        409,
    );
    assert!(
        n.ok("patientA", &["ResetAccessState", lpa(), "org:Org2MSP"])["reset_complete"]
            .as_bool()
            .unwrap()
    );
}

#[test]
fn erasure_purges_phi_and_keeps_the_hash() {
    let (mut n, _) = world();
    n.ok(
        "doctor1",
        &[
            "ShareRecord",
            lpa(),
            &lr(PA, "Observation/obs-1"),
            "Org2MSP",
            "treatment",
        ],
    );
    let key = record_key(PA, "Observation/obs-1");
    let original = observation("obs-1", PA);
    let v = n.ok(
        "patientA",
        &["RequestErasure", lpa(), &lr(PA, "Observation/obs-1")],
    );
    assert_eq!(v["status"], "pending");
    assert_eq!(n.last_event_names(), ["ErasureRequested"]);
    n.refused(
        Some("patientA"),
        &["RequestErasure", lpa(), &lr(PA, "Observation/obs-1")],
        &[],
        409,
    );
    let (access, _) = n.request("doctor1", lpa(), &lr(PA, "Observation/obs-1"), "treatment");
    let v = n.ok(
        "admin1",
        &["PurgeRecord", lpa(), &lr(PA, "Observation/obs-1")],
    );
    assert_eq!(v["status"], "purged");
    assert_eq!(n.last_event_names(), ["RecordPurged"]);
    assert_eq!(n.ledger.private("Org1MSPPHI", &key), None);
    assert_eq!(
        n.ledger.private("Org1MSP-to-Org2MSP-PHI", &key),
        None,
        "shared copy purged too"
    );
    // The hash stays verifiable: on the ledger's private hashes and in the metadata.
    assert_eq!(
        hex::encode(n.ledger.private_hash("Org1MSPPHI", &key).unwrap()),
        sha256_hex(&original)
    );
    let meta = n.ok(
        "patientA",
        &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-1")],
    );
    assert_eq!(meta["status"], "purged");
    assert_eq!(meta["sha256"], sha256_hex(&original));
    assert_eq!(meta["purged_by"], identity_id("admin1"));
    // Reads say purged (410); the record cannot come back.
    let m = n.refused(Some("doctor1"), &["ReadRecord", lpa(), &access], &[], 410);
    assert!(m.contains("purged"), "{m}");
    n.refused(
        Some("doctor1"),
        &[
            "RequestRecordAccess",
            lpa(),
            &lr(PA, "Observation/obs-1"),
            "treatment",
        ],
        &[],
        410,
    );
    n.refused(
        Some("doctor1"),
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &original),
        410,
    );
    n.refused(
        Some("doctor1"),
        &["CreateRecord", lpa()],
        &phi(PA, "resource", &original),
        410,
    );
    n.refused(
        Some("doctor1"),
        &["CreateRecordsFromBundle", lpa()],
        &phi(PA, "bundle", &bundle(std::slice::from_ref(&original))),
        410,
    );
    n.refused(
        Some("doctor1"),
        &[
            "ShareRecord",
            lpa(),
            &lr(PA, "Observation/obs-1"),
            "Org2MSP",
            "treatment",
        ],
        &[],
        410,
    );
    n.refused(
        Some("admin1"),
        &["PurgeRecord", lpa(), &lr(PA, "Observation/obs-1")],
        &[],
        410,
    );
    n.refused(
        Some("patientA"),
        &["RequestErasure", lpa(), &lr(PA, "Observation/obs-1")],
        &[],
        410,
    );
    let h = n.ok(
        "patientA",
        &["GetRecordHistory", lpa(), &lr(PA, "Observation/obs-1")],
    );
    assert_eq!(h[0]["status"], "purged");
    assert_eq!(h[1]["status"], "active");
    assert_eq!(h[0]["sha256"], h[1]["sha256"]);
}

#[test]
fn transaction_time_comes_from_the_proposal_and_is_bounded() {
    let mut n = Net::new();
    // Past year 9999: refused, so time arithmetic never overflows.
    n.now_ms = 253_402_300_800_000;
    n.refused(Some("admin1"), &["RegisterPatient", lpa()], &[], 400);
    // The registration time is the proposal's timestamp, not the wall clock.
    n.now_ms = T0_MS;
    let v = n.ok("admin1", &["RegisterPatient", lpa()]);
    assert_eq!(v["registered_at_ms"], T0_MS + 1);
}

/// Public keys whose value a call changed, and whether each had a committed key-level
/// endorsement policy naming the custodian *before* the call (what a Fabric committer checks:
/// a new key, or one without `VALIDATION_PARAMETER`, falls under the chaincode's policy).
#[track_caller]
fn assert_custodian_governed(n: &mut Net, who: &str, args: &[&str], transient: &[(&str, &[u8])]) {
    let policy = custodian_endorsement_policy("Org1MSP");
    let before = n.ledger.public_state();
    let governed: BTreeSet<String> = before
        .keys()
        .filter(|k| n.ledger.validation_parameter("", k).as_ref() == Some(&policy))
        .cloned()
        .collect();
    let private_before = n.ledger.private_state();
    let r = n.call_t(who, args, transient);
    assert_eq!(r.status, 200, "{args:?}: {}", r.message);
    let after = n.ledger.public_state();
    let mut changed = 0;
    for (k, v) in &after {
        if before.get(k) != Some(v) {
            changed += 1;
            assert!(
                governed.contains(k),
                "{args:?} wrote {k:?}, not custodian-governed"
            );
        }
    }
    assert!(changed > 0);
    for ((collection, key), v) in n.ledger.private_state() {
        if private_before.get(&(collection.clone(), key.clone())) != Some(&v) {
            assert!(
                collection == "Org1MSPPHI"
                    || (args[0] == "ShareRecord" && collection == "Org1MSP-to-Org2MSP-PHI"),
                "{args:?} wrote collection {collection}"
            );
        }
    }
}

#[test]
fn phi_transactions_write_only_custodian_governed_keys() {
    let (mut n, _) = world();
    let obs9 = observation("obs-9", PA);
    n.reserve(
        "doctor1",
        lpa(),
        &[
            lr(PA, "Observation/obs-9"),
            lr(PA, "Condition/c-9"),
            lr(PA, "Observation/o-b"),
        ],
    );
    assert_custodian_governed(
        &mut n,
        "doctor1",
        &["CreateRecord", lpa()],
        &phi(PA, "resource", &obs9),
    );
    let v2 = String::from_utf8(obs9)
        .unwrap()
        .replace("172.4", "180.1")
        .into_bytes();
    assert_custodian_governed(
        &mut n,
        "doctor1",
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &v2),
    );
    let v3 = String::from_utf8(v2)
        .unwrap()
        .replace("180.1", "181.1")
        .into_bytes();
    assert_custodian_governed(
        &mut n,
        "doctor2",
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &v3),
    );
    let b = bundle(&[condition("c-9", PA), observation("o-b", PA)]);
    assert_custodian_governed(
        &mut n,
        "nurse1",
        &["CreateRecordsFromBundle", lpa()],
        &phi(PA, "bundle", &b),
    );
    assert_custodian_governed(
        &mut n,
        "doctor1",
        &[
            "ShareRecord",
            lpa(),
            &lr(PA, "Observation/obs-9"),
            "Org2MSP",
            "treatment",
        ],
        &[],
    );
    // SetPseudonymKey (Net::new) wrote only Org1's own collection, under a key-level policy
    // naming Org1 alone (ledger_ids.rs checks it writes no public key).
    let key = ehr_chaincode::ids::pseudonym_key_key().unwrap();
    assert_eq!(
        n.ledger.validation_parameter("Org1MSPPHI", &key).unwrap(),
        custodian_endorsement_policy("Org1MSP")
    );
    for f in ehr_chaincode::CUSTODIAN_ENDORSED_FUNCTIONS {
        assert!(
            [
                "SetPseudonymKey",
                "CreateRecord",
                "UpdateRecord",
                "CreateRecordsFromBundle",
                "ShareRecord"
            ]
            .contains(f),
            "{f} not checked here"
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Grant,
    InScope,
    OutOfScope,
}

/// PA with Observation/obs-1 and Condition/cond-1; (PA, org:Org2MSP) driven into `state`.
fn relation_in(state: &str) -> Net {
    let mut n = Net::new();
    n.register(PA);
    n.create("doctor1", PA, &observation("obs-1", PA));
    n.create("doctor1", PA, &condition("cond-1", PA));
    let steps: &[Op] = match state {
        "NoRelation" => &[],
        "Authorized" => &[Op::Grant],
        "Suspended" => &[Op::Grant, Op::OutOfScope],
        "Blocked" => &[Op::Grant, Op::OutOfScope, Op::OutOfScope],
        other => panic!("{other}"),
    };
    for op in steps {
        apply(&mut n, *op);
    }
    assert_eq!(n.state(lpa(), "org:Org2MSP"), state);
    n
}

/// Runs one contract operation of Org2 on PA: (status, decision if any).
fn apply(n: &mut Net, op: Op) -> (i32, Option<String>) {
    let r = match op {
        Op::Grant => n.call(
            "patientA",
            &[
                "GrantConsent",
                &json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"},
                        "resource_types": ["Observation"], "purposes": ["treatment"],
                        "valid_for_s": 3600})
                .to_string(),
            ],
        ),
        Op::InScope => n.call(
            "doctor2",
            &[
                "RequestRecordAccess",
                lpa(),
                &lr(PA, "Observation/obs-1"),
                "treatment",
            ],
        ),
        Op::OutOfScope => n.call(
            "doctor2",
            &[
                "RequestRecordAccess",
                lpa(),
                &lr(PA, "Condition/cond-1"),
                "treatment",
            ],
        ),
    };
    let decision = serde_json::from_slice::<Value>(&r.payload)
        .ok()
        .and_then(|v| v["decision"].as_str().map(str::to_owned));
    (r.status, decision)
}

#[test]
fn state_machine_on_the_ledger() {
    // (state, operation, action it is, next state, status, decision)
    type Row = (
        &'static str,
        Op,
        &'static str,
        &'static str,
        i32,
        Option<&'static str>,
    );
    let table: [Row; 12] = [
        (
            "NoRelation",
            Op::Grant,
            "Authentication",
            "Authorized",
            200,
            None,
        ),
        (
            "NoRelation",
            Op::InScope,
            "NoAction",
            "NoRelation",
            200,
            Some("denied"),
        ),
        (
            "NoRelation",
            Op::OutOfScope,
            "NoAction",
            "NoRelation",
            200,
            Some("denied"),
        ),
        (
            "Authorized",
            Op::Grant,
            "Authentication",
            "Authorized",
            200,
            None,
        ),
        (
            "Authorized",
            Op::InScope,
            "NoAction",
            "Authorized",
            200,
            Some("granted"),
        ),
        (
            "Authorized",
            Op::OutOfScope,
            "Violation",
            "Suspended",
            200,
            Some("denied"),
        ),
        (
            "Suspended",
            Op::Grant,
            "Permission",
            "Authorized",
            200,
            None,
        ),
        (
            "Suspended",
            Op::InScope,
            "NoAction",
            "Suspended",
            200,
            Some("denied"),
        ),
        (
            "Suspended",
            Op::OutOfScope,
            "Violation",
            "Blocked",
            200,
            Some("denied"),
        ),
        ("Blocked", Op::Grant, "Authentication", "Blocked", 403, None),
        ("Blocked", Op::InScope, "NoAction", "Blocked", 403, None),
        ("Blocked", Op::OutOfScope, "Violation", "Blocked", 403, None),
    ];
    for (state, op, action, next, status, decision) in table {
        let mut n = relation_in(state);
        let before = n.snapshot();
        let (got_status, got_decision) = apply(&mut n, op);
        assert_eq!(got_status, status, "{state} {op:?}");
        assert_eq!(got_decision.as_deref(), decision, "{state} {op:?}");
        assert_eq!(n.state(lpa(), "org:Org2MSP"), next, "{state} {op:?}");
        if status == 403 {
            assert_eq!(
                n.snapshot(),
                before,
                "Blocked: error and abort, nothing written"
            );
        } else if state != next {
            let e = n.events().last().cloned().unwrap();
            let payload = String::from_utf8(e.payload).unwrap();
            assert!(
                payload.contains(&format!(r#""action":"{action}""#)),
                "{payload}"
            );
            assert!(payload.contains(&format!(r#""to":"{next}""#)), "{payload}");
        } else {
            assert!(!n.last_event_names().contains(&"StateChanged".to_owned()));
        }
    }
}
