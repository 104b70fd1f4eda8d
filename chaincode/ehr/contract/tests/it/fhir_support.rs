//! The contract functions the FHIR API needs (issue 16): reads pinned to a version (G2),
//! `UpdateRecord`'s expected version (G3), locators by FHIR id (G4), the bulk audited read
//! (G1) and `GetConsent` (G5).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crate::common;

use common::*;
use serde_json::{Value, json};

/// Observation/obs-1 of PA with its height replaced: another version's bytes.
fn amended(height: &str) -> Vec<u8> {
    String::from_utf8(observation("obs-1", PA))
        .unwrap()
        .replace("172.4", height)
        .into_bytes()
}

/// Consent of PA to Org2MSP for Observation, treatment, 1 h (as `world()` in functions.rs).
fn consent_org2_observations(n: &mut Net) -> String {
    n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"}, "resource_types": ["Observation"],
               "purposes": ["treatment"], "valid_for_s": 3600}),
    )
}

/// The audit entry `access_id` of PA, as an auditor lists it.
fn audit_entry(n: &mut Net, access_id: &Value) -> Value {
    let audit = n.ok("auditor1", &["ListAuditEntries", lpa()]);
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| &e["access_id"] == access_id)
        .unwrap()
        .clone()
}

// ---- G2: the version a grant pins ----

#[test]
fn a_granted_access_answers_and_pins_the_version_it_grants() {
    let mut n = pa_with_records();
    consent_org2_observations(&mut n);
    let obs = lr(PA, "Observation/obs-1");
    let v = n.ok(
        "doctor2",
        &["RequestRecordAccess", lpa(), &obs, "treatment"],
    );
    let meta = n.ok("auditor1", &["ReadRecordMetadata", lpa(), &obs]);
    assert_eq!(v["decision"], "granted");
    assert_eq!(v["version"], 1);
    assert_eq!(v["sha256"], meta["sha256"]);
    assert_eq!(v["sha256"], sha256_hex(&observation("obs-1", PA)));
    assert_eq!(v["updated_at_ms"], meta["updated_at_ms"]);
    // The audit entry pins what was granted.
    let entry = audit_entry(&mut n, &v["access_id"]);
    assert_eq!(entry["version"], 1);
    assert_eq!(entry["sha256"], meta["sha256"]);
    // A denial pins nothing and answers only its id and decision.
    let d = n.ok(
        "doctor2",
        &[
            "RequestRecordAccess",
            lpa(),
            &lr(PA, "Condition/cond-1"),
            "treatment",
        ],
    );
    assert_eq!(d["decision"], "denied");
    assert_eq!(d.as_object().unwrap().len(), 2, "{d}");
    let denied = audit_entry(&mut n, &d["access_id"]);
    assert!(denied.get("version").is_none() && denied.get("sha256").is_none());
}

#[test]
fn read_record_refuses_a_record_updated_after_the_grant() {
    let mut n = pa_with_records();
    let obs = lr(PA, "Observation/obs-1");
    let (access, decision) = n.request("doctor1", lpa(), &obs, "treatment");
    assert_eq!(decision, "granted");
    // Updated between the two steps.
    let v2 = amended("180.1");
    n.ok_t(
        "doctor1",
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &v2),
    );
    let message = n.refused(Some("doctor1"), &["ReadRecord", lpa(), &access], &[], 409);
    assert!(message.contains("request access again"), "{message}");
    assert!(message.contains(&obs) && !message.contains(PA), "{message}");
    assert!(!message.contains("180.1") && !message.contains("172.4"));
    // A new grant pins version 2 and reads its bytes.
    let (access, _) = n.request("doctor1", lpa(), &obs, "treatment");
    let r = n.call("doctor1", &["ReadRecord", lpa(), &access]);
    assert_eq!(r.status, 200, "{}", r.message);
    assert_eq!(r.payload, v2);
}

// ---- G3: UpdateRecord's expected version (If-Match) ----

#[test]
fn update_record_with_an_expected_version_refuses_another_with_412() {
    let mut n = pa_with_records();
    let obs = lr(PA, "Observation/obs-1");
    let v2 = amended("173.0");
    let v = n.ok_t(
        "doctor1",
        &["UpdateRecord", lpa(), "1"],
        &phi(PA, "resource", &v2),
    );
    assert_eq!(v["version"], 2);
    // A second writer still holding version 1: 412, nothing written.
    let v3 = amended("174.0");
    let message = n.refused(
        Some("doctor1"),
        &["UpdateRecord", lpa(), "1"],
        &phi(PA, "resource", &v3),
        412,
    );
    assert!(
        message.contains(&obs) && message.contains("version 2"),
        "{message}"
    );
    assert!(
        !message.contains("174.0") && !message.contains(PA),
        "{message}"
    );
    // Malformed expected versions and extra arguments: 400.
    for bad in ["0", "-1", "v2", "1.0", "W/\"2\""] {
        n.refused(
            Some("doctor1"),
            &["UpdateRecord", lpa(), bad],
            &phi(PA, "resource", &v3),
            400,
        );
    }
    n.refused(
        Some("doctor1"),
        &["UpdateRecord", lpa(), "2", "extra"],
        &phi(PA, "resource", &v3),
        400,
    );
    // The authorization comes first: an outsider learns nothing from a wrong version.
    n.refused(
        Some("researcher2"),
        &["UpdateRecord", lpa(), "7"],
        &phi(PA, "resource", &v3),
        403,
    );
    // The current version: written; without one: written (last writer wins, as before).
    let v = n.ok_t(
        "doctor1",
        &["UpdateRecord", lpa(), "2"],
        &phi(PA, "resource", &v3),
    );
    assert_eq!(v["version"], 3);
    let v = n.ok_t(
        "doctor1",
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &v2),
    );
    assert_eq!(v["version"], 4);
    let key = record_key(PA, "Observation/obs-1");
    assert_eq!(n.ledger.private("Org1MSPPHI", &key).unwrap(), v2);
}

// ---- G4: locating a record by its FHIR id ----

/// `LocateRecords [custodian]` as `who` for clear references: the answer's `records`.
#[track_caller]
fn locate(n: &mut Net, who: &str, custodian: Option<&str>, references: &[&str]) -> Vec<Value> {
    let input = json!({ "records": references }).to_string();
    let mut args = vec!["LocateRecords"];
    args.extend(custodian);
    let v = n.ok_t(who, &args, &[("records", input.as_bytes())]);
    v["records"].as_array().unwrap().clone()
}

/// A shared Organization (no patient link) filed under whichever patient's bundle has it.
fn organization() -> Vec<u8> {
    br#"{"resourceType":"Organization","id":"org-clinic-1","name":"Sunnyvale Clinic"}"#.to_vec()
}

/// The locator entries of Org1MSP's default collection.
fn locators(n: &Net) -> Vec<(String, Value)> {
    n.ledger
        .private_state()
        .into_iter()
        .filter(|((_, k), _)| k.starts_with("\u{0}locator\u{0}"))
        .map(|((c, k), v)| {
            assert_eq!(
                c, "Org1MSPPHI",
                "a locator outside the custodian's collection"
            );
            (k, serde_json::from_slice(&v).unwrap())
        })
        .collect()
}

#[test]
fn every_create_writes_a_locator_that_finds_the_record_by_its_fhir_id() {
    let mut n = pa_with_records();
    n.register(PB);
    n.create_bundle(
        "doctor1",
        PB,
        &bundle(&[observation("obs-b1", PB), organization()]),
    );
    // The shared Organization again under PA: it keeps its first patient, PB.
    n.create_bundle("doctor1", PA, &bundle(&[organization()]));
    let found = locate(
        &mut n,
        "doctor1",
        None,
        &[
            "Observation/obs-1",
            "Condition/cond-1",
            "Observation/obs-b1",
            "Organization/org-clinic-1",
            "Observation/never-created",
        ],
    );
    let expect = |reference: &str, clear: &str| json!({"record": reference, "patient": lp(clear), "record_id": lr(clear, reference)});
    assert_eq!(found[0], expect("Observation/obs-1", PA));
    assert_eq!(found[1], expect("Condition/cond-1", PA));
    assert_eq!(found[2], expect("Observation/obs-b1", PB));
    assert_eq!(found[3], expect("Organization/org-clinic-1", PB));
    assert_eq!(found[4], Value::Null);
    // One locator per resource, keyed by a hash, valued with ledger ids only, under the
    // custodian's key-level policy.
    let stored = locators(&n);
    assert_eq!(stored.len(), 4);
    let key = pseudonym_key("Org1MSP");
    let hash = key.locator(&"Observation/obs-1".parse().unwrap());
    let locator_key = ehr_chaincode::ids::locator_key(&hash).unwrap();
    assert_eq!(
        stored.iter().find(|(k, _)| *k == locator_key).unwrap().1,
        json!({"patient_id": lpa(), "record_id": lr(PA, "Observation/obs-1")})
    );
    assert!(
        n.ledger
            .validation_parameter("Org1MSPPHI", &locator_key)
            .is_some()
    );
    for (k, v) in &stored {
        for clear in [PA, PB, "obs-1", "cond-1", "obs-b1", "org-clinic-1"] {
            assert!(
                !k.contains(clear) && !v.to_string().contains(clear),
                "{k:?}"
            );
        }
    }
    assert!(
        !n.ledger
            .public_state()
            .keys()
            .any(|k| k.contains("locator")),
        "a locator in public state"
    );
}

#[test]
fn locate_records_answers_as_ledger_ids_does() {
    let mut n = pa_with_records();
    n.register(PB);
    n.create("doctor1", PB, &observation("obs-b1", PB));
    consent_org2_observations(&mut n);
    let asked = [
        "Observation/obs-1",
        "Condition/cond-1",
        "Observation/obs-b1",
    ];
    // The patient: its own records only.
    let found = locate(&mut n, "patientA", Some("Org1MSP"), &asked);
    assert!(found[0].is_object() && found[1].is_object());
    assert_eq!(found[2], Value::Null);
    // A registrar of the custodian: every record.
    let found = locate(&mut n, "registrar1", None, &asked);
    assert!(found.iter().all(Value::is_object));
    // A consented doctor of Org2 (Observation, treatment): PA's Observation only.
    let found = locate(&mut n, "doctor2", Some("Org1MSP"), &asked);
    assert_eq!(found[0]["record_id"], lr(PA, "Observation/obs-1"));
    assert_eq!(found[1], Value::Null);
    assert_eq!(found[2], Value::Null);
    // Nobody else: 403, found or not.
    let input = json!({ "records": asked }).to_string();
    let t = [("records", input.as_bytes())];
    for who in ["researcher1", "insurer2", "norole1", "auditor1"] {
        n.refused(Some(who), &["LocateRecords", "Org1MSP"], &t, 403);
    }
    // Bad input: 400, never echoing a clear id.
    let many: Vec<String> = (0..501).map(|i| format!("Observation/o-{i}")).collect();
    for bad in [
        json!({ "records": [] }).to_string(),
        json!({ "records": many }).to_string(),
        json!({ "records": ["Observation"] }).to_string(),
        json!({ "records": ["Observation/has space"] }).to_string(),
        json!({ "ids": ["Observation/obs-1"] }).to_string(),
        "not json".to_owned(),
    ] {
        let m = n.refused(
            Some("doctor1"),
            &["LocateRecords"],
            &[("records", bad.as_bytes())],
            400,
        );
        assert!(!m.contains("obs-1") && !m.contains("has space"), "{m}");
    }
    n.refused(Some("doctor1"), &["LocateRecords"], &[], 400);
    n.refused(Some("doctor1"), &["LocateRecords", "Org1MSP", "x"], &t, 400);
    // A custodian without a pseudonym key has no locators: 404 (ADR 0031).
    n.refused(Some("doctor1"), &["LocateRecords", "Org4MSP"], &t, 404);
}

#[test]
fn a_re_create_of_a_record_without_a_locator_writes_it() {
    use medledger_chaincode::{ChaincodeStub, Router, TxContext};
    let mut n = pa_with_records();
    // As a record created before locators existed: drop its locator.
    let hash = pseudonym_key("Org1MSP").locator(&"Observation/obs-1".parse().unwrap());
    let key = ehr_chaincode::ids::locator_key(&hash).unwrap();
    let drop = Router::new().add(
        "Drop",
        move |stub: &dyn ChaincodeStub, _: &[String]| -> Result<Vec<u8>, _> {
            stub.del_private_data("Org1MSPPHI", &key)
                .map(|()| Vec::new())
                .map_err(|e| medledger_chaincode::ContractError {
                    status: 500,
                    message: e.to_string(),
                })
        },
    );
    let ctx = TxContext {
        channel_id: "ehr".into(),
        tx_id: n.next_tx_id(),
        args: vec![b"Drop".to_vec()],
        transient: Default::default(),
        creator: Some(creator("doctor1")),
        timestamp: Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(n.now_ms)),
    };
    assert_eq!(n.ledger.invoke(&drop, ctx).status, 200);
    assert_eq!(locators(&n).len(), 1);
    assert_eq!(
        locate(&mut n, "doctor1", None, &["Observation/obs-1"])[0],
        Value::Null
    );
    // `ehr import` again: the bundle's equal entry is `unchanged` and gets its locator.
    let v = n.ok_t(
        "doctor1",
        &["CreateRecordsFromBundle", lpa()],
        &phi(PA, "bundle", &bundle(&[observation("obs-1", PA)])),
    );
    assert_eq!(
        (v["created"].as_u64(), v["unchanged"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(locators(&n).len(), 2);
    assert_eq!(
        locate(&mut n, "doctor1", None, &["Observation/obs-1"])[0]["record_id"],
        lr(PA, "Observation/obs-1")
    );
}
