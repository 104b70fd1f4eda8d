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
    // The shared Organization again under PA. Resources without a patient reference get no
    // locator (several patients' bundles carry them under one FHIR id).
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
    assert_eq!(found[3], Value::Null);
    assert_eq!(found[4], Value::Null);
    // One locator per resource, keyed by a hash, valued with ledger ids only, under the
    // custodian's key-level policy.
    let stored = locators(&n);
    assert_eq!(stored.len(), 3);
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

// ---- G1: the bulk audited read ----

/// `RequestRecordsAccess` as `who` for PA with `query`: the answer.
#[track_caller]
fn search(n: &mut Net, who: &str, purpose: &str, query: Value) -> Value {
    n.ok(
        who,
        &["RequestRecordsAccess", lpa(), purpose, &query.to_string()],
    )
}

/// `ReadRecords` as `who`: (record ids, exact resource bytes, next).
#[track_caller]
fn read_all(
    n: &mut Net,
    who: &str,
    access: &Value,
    start: Option<&str>,
) -> (Vec<String>, Vec<Vec<u8>>, Value) {
    let mut args = vec!["ReadRecords", lpa(), access.as_str().unwrap()];
    args.extend(start);
    let r = n.call(who, &args);
    assert_eq!(r.status, 200, "ReadRecords as {who}: {}", r.message);
    #[derive(serde::Deserialize)]
    struct Item {
        record_id: String,
        resource: Box<serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        records: Vec<Item>,
        #[serde(default)]
        next: Value,
    }
    let a: Answer = serde_json::from_slice(&r.payload).unwrap();
    let ids = a.records.iter().map(|i| i.record_id.clone()).collect();
    let bytes = a
        .records
        .iter()
        .map(|i| i.resource.get().as_bytes().to_vec())
        .collect();
    (ids, bytes, a.next)
}

fn ids_of(v: &Value) -> Vec<String> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_consented_grantee_of_another_org_lists_and_reads_only_the_consented_types() {
    let mut n = pa_with_records();
    n.create("doctor1", PA, &observation("obs-2", PA));
    consent_org2_observations(&mut n);
    let observations = [lr(PA, "Observation/obs-1"), lr(PA, "Observation/obs-2")];
    let mut expected = observations.to_vec();
    expected.sort();
    // Every type it may read: the two Observations, not the Condition.
    let v = search(&mut n, "doctor2", "treatment", json!({}));
    assert_eq!(v["decision"], "granted");
    assert_eq!(ids_of(&v), expected);
    assert_eq!(v["bookmark"], "");
    for r in v["records"].as_array().unwrap() {
        assert_eq!(r["version"], 1);
        assert!(r["updated_at_ms"].is_u64() && r["sha256"].as_str().unwrap().len() == 64);
    }
    // One audit entry listing them, pinned.
    let entry = audit_entry(&mut n, &v["access_id"]);
    assert_eq!(entry["kind"], "search_access");
    assert_eq!(entry["decision"], "granted");
    assert_eq!(entry["basis"], "consent");
    assert_eq!(entry["records"].as_array().unwrap().len(), 2);
    assert_eq!(
        entry["records"][0]["sha256"],
        n.ok("auditor1", &["ReadRecordMetadata", lpa(), &expected[0]])["sha256"]
    );
    // The exact bytes, in the entry's order.
    let (ids, bytes, next) = read_all(&mut n, "doctor2", &v["access_id"], None);
    assert_eq!(ids, expected);
    for (id, b) in ids.iter().zip(&bytes) {
        let clear = if *id == lr(PA, "Observation/obs-1") {
            "obs-1"
        } else {
            "obs-2"
        };
        assert_eq!(*b, observation(clear, PA));
    }
    assert!(next.is_null());
    // Naming the Condition too: only the Observations; the Condition alone: denied, audited.
    let v = search(
        &mut n,
        "doctor2",
        "treatment",
        json!({"types": ["Condition", "Observation"]}),
    );
    assert_eq!(
        (v["decision"].as_str(), ids_of(&v)),
        (Some("granted"), expected.clone())
    );
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Authorized");
    let v = search(
        &mut n,
        "doctor2",
        "treatment",
        json!({"types": ["Condition"]}),
    );
    assert_eq!(v["decision"], "denied");
    assert!(ids_of(&v).is_empty());
    let entry = audit_entry(&mut n, &v["access_id"]);
    assert_eq!(
        (entry["kind"].as_str(), entry["reason"].as_str()),
        (Some("search_access"), Some("out-of-scope"))
    );
    // A denial by consent is a Violation, as for one record.
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Suspended");
    n.refused(
        Some("doctor2"),
        &["ReadRecords", lpa(), v["access_id"].as_str().unwrap()],
        &[],
        403,
    );
}

#[test]
fn a_denied_search_is_audited_and_reads_nothing() {
    let mut n = pa_with_records();
    let before = n.ok("auditor1", &["ListAuditEntries", lpa()])["entries"]
        .as_array()
        .unwrap()
        .len();
    let v = search(&mut n, "doctor3", "treatment", json!({}));
    assert_eq!(v["decision"], "denied");
    assert!(ids_of(&v).is_empty());
    let entries = n.ok("auditor1", &["ListAuditEntries", lpa()]);
    assert_eq!(entries["entries"].as_array().unwrap().len(), before + 1);
    let entry = audit_entry(&mut n, &v["access_id"]);
    assert_eq!(entry["kind"], "search_access");
    assert_eq!(entry["requester_msp"], "Org3MSP");
    assert_eq!(entry["reason"], "no-consent");
    assert!(entry.get("records").is_none());
    assert_eq!(n.last_event_names(), ["AccessDenied"]);
    n.refused(
        Some("doctor3"),
        &["ReadRecords", lpa(), v["access_id"].as_str().unwrap()],
        &[],
        403,
    );
    // A role that does not fit the purpose: 403, nothing written.
    let q = json!({}).to_string();
    n.refused(
        Some("researcher2"),
        &["RequestRecordsAccess", lpa(), "treatment", &q],
        &[],
        403,
    );
}

#[test]
fn a_patient_pages_through_and_reads_their_own_records() {
    let mut n = pa_with_records();
    n.create("doctor1", PA, &observation("obs-2", PA));
    let mut all = vec![
        lr(PA, "Observation/obs-1"),
        lr(PA, "Observation/obs-2"),
        lr(PA, "Condition/cond-1"),
    ];
    all.sort();
    let mut seen = Vec::new();
    let mut bookmark = String::new();
    loop {
        let v = search(
            &mut n,
            "patientA",
            "treatment",
            json!({"page_size": 2, "bookmark": bookmark}),
        );
        assert_eq!(v["decision"], "granted");
        assert_eq!(audit_entry(&mut n, &v["access_id"])["basis"], "patient");
        let (ids, bytes, _) = read_all(&mut n, "patientA", &v["access_id"], None);
        assert_eq!(ids, ids_of(&v));
        assert!(
            bytes
                .iter()
                .all(|b| b.windows(PA.len()).any(|w| w == PA.as_bytes()))
        );
        seen.extend(ids);
        bookmark = v["bookmark"].as_str().unwrap().to_owned();
        if bookmark.is_empty() {
            break;
        }
    }
    assert_eq!(seen, all);
    // Types and time filters.
    let v = search(
        &mut n,
        "patientA",
        "treatment",
        json!({"types": ["Condition"]}),
    );
    assert_eq!(ids_of(&v), [lr(PA, "Condition/cond-1")]);
    let since = n.ok(
        "auditor1",
        &["ReadRecordMetadata", lpa(), &lr(PA, "Observation/obs-2")],
    )["updated_at_ms"]
        .as_u64()
        .unwrap();
    let v = search(
        &mut n,
        "patientA",
        "treatment",
        json!({"updated_since_ms": since}),
    );
    assert_eq!(ids_of(&v), [lr(PA, "Observation/obs-2")]);
    // Another caller's entry, a record access entry, a search entry in ReadRecord: 403.
    let v = search(&mut n, "patientA", "treatment", json!({}));
    let access = v["access_id"].as_str().unwrap().to_owned();
    n.refused(Some("doctor1"), &["ReadRecords", lpa(), &access], &[], 403);
    n.refused(Some("patientA"), &["ReadRecord", lpa(), &access], &[], 403);
    let (record_access, _) = n.request("patientA", lpa(), &all[0], "treatment");
    n.refused(
        Some("patientA"),
        &["ReadRecords", lpa(), &record_access],
        &[],
        403,
    );
    // After the freshness window: 403.
    n.advance_s(601);
    n.refused(Some("patientA"), &["ReadRecords", lpa(), &access], &[], 403);
}

#[test]
fn read_records_refuses_records_that_moved_and_splits_large_answers() {
    let mut n = pa_with_records();
    let v = search(
        &mut n,
        "doctor1",
        "treatment",
        json!({"types": ["Observation"]}),
    );
    n.ok_t(
        "doctor1",
        &["UpdateRecord", lpa()],
        &phi(PA, "resource", &amended("190.0")),
    );
    let m = n.refused(
        Some("doctor1"),
        &["ReadRecords", lpa(), v["access_id"].as_str().unwrap()],
        &[],
        409,
    );
    assert!(
        m.contains(&lr(PA, "Observation/obs-1")) && !m.contains("190.0"),
        "{m}"
    );
    // Five resources of about 900 kB: more than 4 MiB, so two parts.
    let text = "x".repeat(900_000);
    for i in 0..5 {
        let big = format!(
            r#"{{"resourceType":"Observation","id":"big-{i}","status":"final","code":{{"text":"Note"}},"subject":{{"reference":"Patient/{PA}"}},"valueString":"{text}"}}"#
        );
        n.create("doctor1", PA, big.as_bytes());
    }
    let v = search(
        &mut n,
        "doctor1",
        "treatment",
        json!({"types": ["Observation"]}),
    );
    assert_eq!(ids_of(&v).len(), 6);
    let access = v["access_id"].clone();
    let (first, bytes, next) = read_all(&mut n, "doctor1", &access, None);
    let total: usize = bytes.iter().map(Vec::len).sum();
    assert!(total <= ehr_chaincode::MAX_READ_RECORDS_BYTES, "{total}");
    let next = next.as_u64().unwrap();
    assert_eq!(next as usize, first.len());
    let (rest, _, end) = read_all(&mut n, "doctor1", &access, Some(&next.to_string()));
    assert!(end.is_null());
    let mut both = first;
    both.extend(rest);
    assert_eq!(both, ids_of(&v));
    // Malformed START, extra arguments: 400.
    let a = access.as_str().unwrap();
    for bad in ["7", "-1", "x"] {
        n.refused(Some("doctor1"), &["ReadRecords", lpa(), a, bad], &[], 400);
    }
    n.refused(
        Some("doctor1"),
        &["ReadRecords", lpa(), a, "0", "x"],
        &[],
        400,
    );
}

#[test]
fn request_records_access_refuses_malformed_queries() {
    let mut n = pa_with_records();
    let many: Vec<String> = (0..65).map(|_| "Observation".to_owned()).collect();
    for bad in [
        json!({"page_size": 0}).to_string(),
        json!({"page_size": 201}).to_string(),
        json!({"types": ["observation"]}).to_string(),
        json!({"types": many}).to_string(),
        json!({"bookmark": "Observation/obs-1"}).to_string(),
        json!({"sort": "date"}).to_string(),
        json!({"updated_since_ms": -1}).to_string(),
        "[]".to_owned(),
        "not json".to_owned(),
    ] {
        n.refused(
            Some("doctor1"),
            &["RequestRecordsAccess", lpa(), "treatment", &bad],
            &[],
            400,
        );
    }
    let q = json!({}).to_string();
    n.refused(
        Some("doctor1"),
        &["RequestRecordsAccess", lpa(), "curiosity", &q],
        &[],
        400,
    );
    n.refused(
        Some("doctor1"),
        &["RequestRecordsAccess", lpa(), "treatment", &q, "x"],
        &[],
        400,
    );
    n.refused(
        Some("doctor1"),
        &["RequestRecordsAccess", &lp("nobody"), "treatment", &q],
        &[],
        404,
    );
}

// ---- G5: one consent by id ----

#[test]
fn get_consent_answers_one_consent_to_the_patient_and_auditors() {
    let mut n = pa_with_records();
    let consent = consent_org2_observations(&mut n);
    let listed = n.ok("patientA", &["ListConsents", lpa()]);
    let one = n.ok("patientA", &["GetConsent", lpa(), &consent]);
    assert_eq!(one, listed["consents"][0]);
    assert_eq!(one["consent_id"], consent.as_str());
    assert_eq!(n.ok("auditor2", &["GetConsent", lpa(), &consent]), one);
    // Revoked: still answered, with its status.
    n.ok("patientA", &["RevokeConsent", lpa(), &consent]);
    let one = n.ok("patientA", &["GetConsent", lpa(), &consent]);
    assert_eq!(one["status"], "inactive");
    // Another patient's consent id, or a grantee asking: 404 / 403.
    n.register(PB);
    n.refused(Some("patientB"), &["GetConsent", lpb(), &consent], &[], 404);
    n.refused(Some("doctor2"), &["GetConsent", lpa(), &consent], &[], 403);
}
