//! Ledger ids (ADR 0031): a clear `Patient.id` or resource id is refused wherever the contract
//! takes an id, with nothing written and the id not echoed; a PHI-carrying call's transient
//! `patient` must be the patient it names; `SetPseudonymKey` sets an organization's key once,
//! in its own collection only; `LedgerIds` answers the custodian's staff, the patient and a
//! clinician allowed to write the requested types, and nobody else — without telling whether
//! the patient exists; a custodian without a key stores nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crate::common;

use common::*;
use ehr_chaincode::ids::pseudonym_key_key;
use ehr_chaincode::policy::custodian_endorsement_policy;
use serde_json::{Value, json};

/// (caller, arguments, transient map).
type Row<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a [u8])>);

/// `LedgerIds` transient input.
fn ids(clear: &str, references: &[&str]) -> Vec<u8> {
    json!({"patient": clear, "records": references})
        .to_string()
        .into_bytes()
}

/// Calls `LedgerIds` as `who` at Org1MSP; the response.
fn ledger_ids(n: &mut Net, who: &str, clear: &str, references: &[&str]) -> (i32, String, Value) {
    let r = n.call_t(
        who,
        &["LedgerIds", "Org1MSP"],
        &[("ids", &ids(clear, references))],
    );
    let v = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
    (r.status, r.message, v)
}

#[test]
fn a_clear_id_is_refused_wherever_an_id_is_taken() {
    let mut n = pa_with_records();
    let obs = lr(PA, "Observation/obs-1");
    let clear_obs = "Observation/obs-1";
    let access = n.request("doctor1", lpa(), &obs, "treatment").0;
    let grant = |patient: &str| {
        json!({"patient_id": patient, "grantee": {"org": "Org2MSP"},
               "resource_types": ["Observation"], "purposes": ["treatment"], "valid_for_s": 60})
        .to_string()
    };
    let request =
        json!({"patient_id": PA, "purposes": ["treatment"], "valid_for_s": 60}).to_string();
    let reserve_clear = json!([clear_obs]).to_string();
    let reserve_ledger = json!([lr(PA, "Observation/obs-2")]).to_string();
    let resource = observation("obs-2", PA);
    let existing = observation("obs-1", PA);
    let grant_clear = grant(PA);
    let bundle = String::from_utf8(bundle(std::slice::from_ref(&resource))).unwrap();
    // Each call is one its caller may make with ledger ids; with a clear id: 400.
    let rows: Vec<Row> = vec![
        ("admin1", vec!["RegisterPatient", PB], vec![]),
        ("registrar1", vec!["RegisterPatient", PA], vec![]),
        ("doctor1", vec!["GetPatient", PA], vec![]),
        (
            "doctor1",
            vec!["ReserveRecords", PA, &reserve_ledger],
            vec![],
        ),
        (
            "doctor1",
            vec!["ReserveRecords", lpa(), &reserve_clear],
            vec![],
        ),
        (
            "doctor1",
            vec!["CreateRecord", PA],
            phi(PA, "resource", &resource).to_vec(),
        ),
        (
            "doctor1",
            vec!["UpdateRecord", PA],
            phi(PA, "resource", &existing).to_vec(),
        ),
        (
            "doctor1",
            vec!["CreateRecordsFromBundle", PA],
            phi(PA, "bundle", bundle.as_bytes()).to_vec(),
        ),
        ("patientA", vec!["ReadRecordMetadata", PA, &obs], vec![]),
        (
            "patientA",
            vec!["ReadRecordMetadata", lpa(), clear_obs],
            vec![],
        ),
        ("patientA", vec!["GetRecordHistory", PA, &obs], vec![]),
        (
            "patientA",
            vec!["GetRecordHistory", lpa(), clear_obs],
            vec![],
        ),
        ("auditor1", vec!["ListRecords", PA], vec![]),
        ("patientA", vec!["GrantConsent", &grant_clear], vec![]),
        ("patientA", vec!["RevokeConsent", PA, "c1"], vec![]),
        ("patientA", vec!["ListConsents", PA], vec![]),
        ("doctor2", vec!["RequestAccess", &request], vec![]),
        ("patientA", vec!["ApproveAccessRequest", PA, "r1"], vec![]),
        ("patientA", vec!["RejectAccessRequest", PA, "r1"], vec![]),
        ("patientA", vec!["ListAccessRequests", PA], vec![]),
        (
            "doctor1",
            vec!["RequestRecordAccess", PA, &obs, "treatment"],
            vec![],
        ),
        (
            "doctor1",
            vec!["RequestRecordAccess", lpa(), clear_obs, "treatment"],
            vec![],
        ),
        ("doctor1", vec!["ReadRecord", PA, &access], vec![]),
        (
            "doctor1",
            vec!["ShareRecord", PA, &obs, "Org2MSP", "treatment"],
            vec![],
        ),
        (
            "doctor1",
            vec!["ShareRecord", lpa(), clear_obs, "Org2MSP", "treatment"],
            vec![],
        ),
        ("doctor3", vec!["EmergencyAccess", PA, "ETREAT"], vec![]),
        (
            "patientA",
            vec!["GetAccessState", PA, "org:Org2MSP"],
            vec![],
        ),
        (
            "patientA",
            vec!["ResetAccessState", PA, "org:Org2MSP"],
            vec![],
        ),
        ("patientA", vec!["ListAuditEntries", PA], vec![]),
        ("patientA", vec!["RequestErasure", PA, &obs], vec![]),
        ("patientA", vec!["RequestErasure", lpa(), clear_obs], vec![]),
        ("admin1", vec!["PurgeRecord", PA, &obs], vec![]),
        ("admin1", vec!["PurgeRecord", lpa(), clear_obs], vec![]),
    ];
    for (who, args, transient) in &rows {
        let m = n.refused(Some(who), args, transient, 400);
        for clear in [PA, PB, "obs-1", "obs-2"] {
            assert!(
                !m.contains(clear),
                "{args:?}: the message echoes {clear}: {m}"
            );
        }
    }
    // The same calls with ledger ids pass that check (the refusal above was the id's).
    n.ok("patientA", &["ReadRecordMetadata", lpa(), &obs]);
    n.ok("patientA", &["GrantConsent", &grant(lpa())]);
    n.ok("doctor1", &["ReserveRecords", lpa(), &reserve_ledger]);
    n.ok_t(
        "doctor1",
        &["CreateRecord", lpa()],
        &phi(PA, "resource", &resource),
    );
}

#[test]
fn a_phi_carrying_call_names_its_patient_in_the_transient_map() {
    let mut n = pa_with_records();
    n.register(PB);
    let obs2 = lr(PA, "Observation/obs-2");
    n.reserve("doctor1", lpa(), std::slice::from_ref(&obs2));
    let resource = observation("obs-2", PA);
    for function in ["CreateRecord", "UpdateRecord"] {
        // Another patient's id (registered: its ledger id is not the one named): 400.
        let m = n.refused(
            Some("doctor1"),
            &[function, lpa()],
            &phi(PB, "resource", &resource),
            400,
        );
        assert!(m.contains("not the patient this call names"), "{m}");
        assert!(!m.contains(PB) && !m.contains(PA), "{m}");
        // No transient patient, or one that is no FHIR id or not UTF-8: 400.
        let m = n.refused(
            Some("doctor1"),
            &[function, lpa()],
            &[("resource", &resource)],
            400,
        );
        assert!(m.contains("patient"), "{m}");
        for bad in [&b"a b"[..], b"\xff\xfe", b""] {
            n.refused(
                Some("doctor1"),
                &[function, lpa()],
                &[("patient", bad), ("resource", &resource)],
                400,
            );
        }
        // Its ledger id as the clear id: 400 (a ledger id is no FHIR id).
        n.refused(
            Some("doctor1"),
            &[function, lpa()],
            &phi(lpa(), "resource", &resource),
            400,
        );
    }
    let bundle = String::from_utf8(bundle(std::slice::from_ref(&resource))).unwrap();
    n.refused(
        Some("doctor1"),
        &["CreateRecordsFromBundle", lpa()],
        &phi(PB, "bundle", bundle.as_bytes()),
        400,
    );
    n.refused(
        Some("doctor1"),
        &["CreateRecordsFromBundle", lpa()],
        &[("bundle", bundle.as_bytes())],
        400,
    );
    // A caller who may not write learns nothing from the transient id: the same 403 whether
    // it is the patient's or a guess (no oracle that re-identifies a ledger id).
    for who in ["researcher2", "doctor3", "patientA", "auditor1"] {
        for (function, name, bytes) in [
            ("CreateRecord", "resource", &resource[..]),
            ("UpdateRecord", "resource", &observation("obs-1", PA)[..]),
            ("CreateRecordsFromBundle", "bundle", bundle.as_bytes()),
        ] {
            let right = n.refused(Some(who), &[function, lpa()], &phi(PA, name, bytes), 403);
            let guess = n.refused(Some(who), &[function, lpa()], &phi(PB, name, bytes), 403);
            assert_eq!(right, guess, "{who} {function}");
        }
    }
    // The right one: stored under the ledger id the client reserved.
    let v = n.ok_t(
        "doctor1",
        &["CreateRecordsFromBundle", lpa()],
        &phi(PA, "bundle", bundle.as_bytes()),
    );
    assert_eq!(v["created"], 1, "{v}");
    assert_eq!(
        n.ledger
            .private("Org1MSPPHI", &record_key(PA, "Observation/obs-2"))
            .unwrap(),
        resource
    );
}

#[test]
fn set_pseudonym_key_once_per_organization_in_its_own_collection() {
    let mut n = Net::with_pseudonym_keys(&[]);
    let key = pseudonym_key("Org1MSP");
    let other = pseudonym_key("Org2MSP");
    let stored = pseudonym_key_key().unwrap();
    let args = ["SetPseudonymKey"];
    // Not an EHR admin: 403.
    for who in ["doctor1", "registrar1", "patientA", "auditor1", "gov1"] {
        n.refused(Some(who), &args, &[("pseudonym_key", key.as_bytes())], 403);
    }
    // Set: only the private collection changes; no public key, no event, the key in no
    // response.
    let before = n.snapshot();
    let r = n.call_t("admin1", &args, &[("pseudonym_key", key.as_bytes())]);
    assert_eq!(r.status, 200, "{}", r.message);
    let v: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v, json!({"collection": "Org1MSPPHI", "set": true}));
    let after = n.snapshot();
    assert_eq!(after.public, before.public);
    assert_eq!(after.events, before.events);
    let written: Vec<_> = after
        .private
        .iter()
        .filter(|(k, v)| before.private.get(*k) != Some(*v))
        .map(|((c, k), v)| (c.clone(), k.clone(), v.clone()))
        .collect();
    assert_eq!(
        written,
        [(
            "Org1MSPPHI".to_owned(),
            stored.clone(),
            key.as_bytes().to_vec()
        )]
    );
    assert_eq!(
        n.ledger
            .validation_parameter("Org1MSPPHI", &stored)
            .unwrap(),
        custodian_endorsement_policy("Org1MSP")
    );
    assert!(!r.message.contains(&hex::encode(key.as_bytes())));
    // The same key again: 200, nothing written. Another: 409, nothing written.
    let before = n.snapshot();
    let v = n.ok_t("admin1", &args, &[("pseudonym_key", key.as_bytes())]);
    assert_eq!(v["set"], false);
    assert_eq!(n.snapshot(), before);
    let m = n.refused(
        Some("admin1"),
        &args,
        &[("pseudonym_key", other.as_bytes())],
        409,
    );
    assert!(m.contains("never changes"), "{m}");
    assert!(!m.contains(&hex::encode(other.as_bytes())), "{m}");
    // Another organization's admin sets its own key, in its own collection.
    let v = n.ok_t("admin2", &args, &[("pseudonym_key", other.as_bytes())]);
    assert_eq!(v["collection"], "Org2MSPPHI");
    assert_eq!(
        n.ledger.private("Org1MSPPHI", &stored).unwrap(),
        key.as_bytes()
    );
    assert_eq!(
        n.ledger.private("Org2MSPPHI", &stored).unwrap(),
        other.as_bytes()
    );
}

#[test]
fn ledger_ids_answer_staff_the_patient_and_a_clinician_allowed_to_write() {
    let mut n = pa_with_records();
    let refs = ["Observation/obs-1", "Condition/cond-1", "Observation/new"];
    let expected = json!({"patient": lpa(), "records": refs.map(|r| lr(PA, r))});
    // The custodian's staff and registrar, and the patient itself.
    for who in [
        "doctor1",
        "nurse1",
        "lab1",
        "admin1",
        "registrar1",
        "patientA",
    ] {
        let before = n.snapshot();
        let (status, m, v) = ledger_ids(&mut n, who, PA, &refs);
        assert_eq!(status, 200, "{who}: {m}");
        assert_eq!(v, expected, "{who}");
        assert_eq!(n.snapshot(), before, "LedgerIds writes nothing");
    }
    // An unregistered patient's ids, for the custodian's staff (importing it).
    let (status, _, v) = ledger_ids(&mut n, "registrar1", "new-patient", &[]);
    assert_eq!(status, 200);
    assert_eq!(v["patient"], lp("new-patient"));
    // Another patient, roles that do not write, other organizations: 403.
    for who in ["patientB", "researcher1", "insurer1", "auditor1", "norole1"] {
        let (status, m, _) = ledger_ids(&mut n, who, PA, &refs[..1]);
        assert_eq!(status, 403, "{who}: {m}");
    }
    // A doctor of Org2 without consent: 403, the same answer whether or not the patient is
    // registered (nothing learnt).
    let (status, registered, _) = ledger_ids(&mut n, "doctor2", PA, &refs[..1]);
    assert_eq!(status, 403);
    let (status, unknown, _) = ledger_ids(&mut n, "doctor2", "nobody", &refs[..1]);
    assert_eq!(status, 403);
    assert_eq!(registered, unknown);
    for clear in [PA, "nobody"] {
        assert!(!registered.contains(clear), "{registered}");
    }
    // With a treatment consent for Observation: Observations only, and only with records.
    n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"},
               "resource_types": ["Observation"], "purposes": ["treatment"], "valid_for_s": 3600}),
    );
    let (status, m, v) = ledger_ids(&mut n, "doctor2", PA, &["Observation/obs-1"]);
    assert_eq!(status, 200, "{m}");
    assert_eq!(v["records"], json!([lr(PA, "Observation/obs-1")]));
    assert_eq!(v["patient"], lpa());
    for refs in [&refs[..], &["Condition/cond-1"][..], &[][..]] {
        let (status, m, _) = ledger_ids(&mut n, "doctor2", PA, refs);
        assert_eq!(status, 403, "{refs:?}: {m}");
    }
    // The consent is the organization's clinicians', for treatment: not its researcher, not
    // a third organization, not another patient of the custodian.
    for (who, clear) in [
        ("researcher2", PA),
        ("doctor3", PA),
        ("doctor2", PB),
        ("doctor2", "nobody"),
    ] {
        let (status, m, _) = ledger_ids(&mut n, who, clear, &["Observation/obs-1"]);
        assert_eq!(status, 403, "{who} {clear}: {m}");
        assert_eq!(m, unknown, "one answer for every refusal");
    }
    // The clinician creates what it may write, through the same harness steps.
    n.create("doctor2", PA, &observation("obs-org2", PA));
}

#[test]
fn a_custodian_without_a_pseudonym_key_stores_nothing() {
    let mut n = Net::with_pseudonym_keys(&["Org2MSP", "Org3MSP"]);
    // Registering and reserving take ledger ids only (the custodian's operators computed
    // them); no PHI is taken without the key.
    n.register(PA);
    let obs = lr(PA, "Observation/obs-1");
    n.reserve("doctor1", lpa(), std::slice::from_ref(&obs));
    let (status, m, _) = ledger_ids(&mut n, "doctor1", PA, &["Observation/obs-1"]);
    assert_eq!(status, 404, "{m}");
    assert!(m.contains("pseudonym key"), "{m}");
    let resource = observation("obs-1", PA);
    let m = n.refused(
        Some("doctor1"),
        &["CreateRecord", lpa()],
        &phi(PA, "resource", &resource),
        404,
    );
    assert!(m.contains("pseudonym key"), "{m}");
    let bundle = String::from_utf8(bundle(std::slice::from_ref(&resource))).unwrap();
    n.refused(
        Some("doctor1"),
        &["CreateRecordsFromBundle", lpa()],
        &phi(PA, "bundle", bundle.as_bytes()),
        404,
    );
    // Its admin sets the key: the same calls succeed.
    n.set_pseudonym_keys(&["Org1MSP"]);
    let v = n.ok_t(
        "doctor1",
        &["CreateRecord", lpa()],
        &phi(PA, "resource", &resource),
    );
    assert_eq!(v["record_id"], obs);
    let (status, m, _) = ledger_ids(&mut n, "doctor1", PA, &["Observation/obs-1"]);
    assert_eq!(status, 200, "{m}");
}

/// A patient certificate enrolled the old way, naming its clear `Patient.id` in
/// `ehr.patient_id`, names no patient: it cannot act for the patient under either id (the
/// chaincode takes only a ledger id from the attribute, so an old enrollment cannot smuggle
/// the clear id into the contract's decisions).
#[test]
fn a_certificate_naming_a_clear_patient_id_names_no_patient() {
    let mut n = Net::new();
    n.register(PB);
    let grant = json!({"patient_id": lpb(), "grantee": {"org": "Org2MSP"},
        "purposes": ["treatment"], "valid_for_s": 3600})
    .to_string();
    let old = reissue(
        "patient:old-enrollment",
        &[("ehr.role", "patient"), ("ehr.patient_id", PB)],
    );
    // The contract reads no patient from it at all (not merely one that matches nothing),
    // and the same certificate naming the ledger id is that patient.
    assert_eq!(ehr_chaincode::Caller::from_creator(&old).patient_id, None);
    let current = reissue(
        "patient:new-enrollment",
        &[("ehr.role", "patient"), ("ehr.patient_id", lpb())],
    );
    assert_eq!(
        ehr_chaincode::Caller::from_creator(&current)
            .patient_id
            .as_deref(),
        Some(lpb())
    );
    n.refused(
        Some("patient:old-enrollment"),
        &["GrantConsent", &grant],
        &[],
        403,
    );
    n.ok("patientB", &["GrantConsent", &grant]);
}
