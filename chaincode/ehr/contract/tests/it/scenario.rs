//! The scenario of issue 7 on the in-memory ledger, with a real sample patient: no consent →
//! refused and audited; consent (Observation, treatment, 1 h) → an Observation is read, a
//! Condition refused (Violation → Suspended); re-grant → Authorized; revoke → refused; two
//! violations → Blocked; break-glass works and shows in the patient's audit; purge → PHI gone,
//! hash still verifiable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crate::common;

use common::*;
use serde_json::{Value, json};

struct Patient {
    /// The `Patient.id` (clear).
    clear: String,
    /// Its ledger id.
    id: String,
    who: String,
    observation: SampleResource,
    condition: SampleResource,
}

fn setup() -> (Net, Patient) {
    let mut n = Net::new();
    let id = SAMPLE_PATIENTS[1].to_owned();
    let (resources, _) = load_sample_patient(&mut n, &id, 256 << 10);
    let pick = |t: &str| {
        resources
            .iter()
            .position(|r| r.record_id.starts_with(&format!("{t}/")))
            .unwrap()
    };
    let (oi, ci) = (pick("Observation"), pick("Condition"));
    let mut resources: Vec<Option<SampleResource>> = resources.into_iter().map(Some).collect();
    let observation = resources[oi].take().unwrap();
    let condition = resources[ci].take().unwrap();
    let who = format!("patient:{id}");
    (
        n,
        Patient {
            id: lp(&id),
            clear: id,
            who,
            observation,
            condition,
        },
    )
}

fn grant_org2_observation(n: &mut Net, p: &Patient) -> (String, Value) {
    let v = n.ok(
        &p.who,
        &[
            "GrantConsent",
            &json!({"patient_id": p.id, "grantee": {"org": "Org2MSP"},
                    "resource_types": ["Observation"], "purposes": ["treatment"],
                    "valid_for_s": 3600})
            .to_string(),
        ],
    );
    (v["consent_id"].as_str().unwrap().to_owned(), v)
}

/// The `StateChanged` events of the last transaction: (from, to, action).
fn state_changes(n: &Net) -> Vec<(String, String, String)> {
    let e = n.events().last().cloned().unwrap();
    let payload: Value = serde_json::from_slice(&e.payload).unwrap();
    let list: Vec<(String, Value)> = if e.name == "EhrEvents" {
        payload["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["name"].as_str().unwrap().to_owned(), x["payload"].clone()))
            .collect()
    } else {
        vec![(e.name.clone(), payload)]
    };
    list.into_iter()
        .filter(|(name, _)| name == "StateChanged")
        .map(|(_, p)| {
            (
                p["from"].as_str().unwrap().to_owned(),
                p["to"].as_str().unwrap().to_owned(),
                p["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn sc(from: &str, to: &str, action: &str) -> (String, String, String) {
    (from.to_owned(), to.to_owned(), action.to_owned())
}

#[test]
fn issue_scenario() {
    let (mut n, p) = setup();
    let obs = p.observation.record_id.clone();
    let cond = p.condition.record_id.clone();
    let org2 = "org:Org2MSP";

    // 1. A doctor of Org2 without consent is refused, and the refusal is audited.
    let (denied, d) = n.request("doctor2", &p.id, &obs, "treatment");
    assert_eq!(d, "denied");
    n.refused(Some("doctor2"), &["ReadRecord", &p.id, &denied], &[], 403);
    assert_eq!(n.state(&p.id, org2), "NoRelation");
    let audit = n.ok(&p.who, &["ListAuditEntries", &p.id]);
    let last = audit["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["access_id"], json!(denied));
    assert_eq!(last["requester"], identity_id("doctor2"));
    assert_eq!(last["record_id"], json!(obs));
    assert_eq!(last["purpose"], "treatment");
    assert_eq!(last["decision"], "denied");
    assert_eq!(last["reason"], "no-consent");

    // 2. The patient grants Org2: Observation only, treatment, 1 h → Authorized.
    let (c1, _) = grant_org2_observation(&mut n, &p);
    assert_eq!(
        state_changes(&n),
        [sc("NoRelation", "Authorized", "Authentication")]
    );
    assert_eq!(n.state(&p.id, org2), "Authorized");

    // 3. Org2 reads an Observation (byte-exact), is refused a Condition: Violation → Suspended.
    assert!(n.read("doctor2", &p.id, &obs, "treatment") == p.observation.bytes);
    let (_, d) = n.request("doctor2", &p.id, &cond, "treatment");
    assert_eq!(d, "denied");
    assert_eq!(
        state_changes(&n),
        [sc("Authorized", "Suspended", "Violation")]
    );
    // Suspended: even the Observation is refused (no further Violation).
    let (_, d) = n.request("doctor2b", &p.id, &obs, "treatment");
    assert_eq!(d, "denied");
    assert_eq!(n.state(&p.id, org2), "Suspended");

    // 4. The patient grants again → Permission → Authorized.
    let (c2, _) = grant_org2_observation(&mut n, &p);
    assert_eq!(
        state_changes(&n),
        [sc("Suspended", "Authorized", "Permission")]
    );
    assert!(n.read("doctor2b", &p.id, &obs, "treatment") == p.observation.bytes);

    // 5. Revoke → refused (a read after revocation is a Violation).
    n.ok(&p.who, &["RevokeConsent", &p.id, &c1]);
    n.ok(&p.who, &["RevokeConsent", &p.id, &c2]);
    let (_, d) = n.request("doctor2", &p.id, &obs, "treatment");
    assert_eq!(d, "denied");
    assert_eq!(
        state_changes(&n),
        [sc("Authorized", "Suspended", "Violation")]
    );

    // 6. Re-grant, then two violations → Blocked; Blocked errors and aborts.
    grant_org2_observation(&mut n, &p);
    assert_eq!(n.state(&p.id, org2), "Authorized");
    let (_, d) = n.request("doctor2", &p.id, &cond, "treatment");
    assert_eq!(d, "denied");
    assert_eq!(
        state_changes(&n),
        [sc("Authorized", "Suspended", "Violation")]
    );
    let (_, d) = n.request("nurse2", &p.id, &cond, "treatment");
    assert_eq!(d, "denied");
    assert_eq!(state_changes(&n), [sc("Suspended", "Blocked", "Violation")]);
    assert_eq!(n.state(&p.id, org2), "Blocked");
    let m = n.refused(
        Some("doctor2"),
        &["RequestRecordAccess", &p.id, &obs, "treatment"],
        &[],
        403,
    );
    assert!(m.contains("Blocked"));
    let again =
        json!({"patient_id": p.id, "grantee": {"org": "Org2MSP"}, "purposes": ["treatment"],
                       "valid_for_s": 60})
        .to_string();
    n.refused(Some(&p.who), &["GrantConsent", &again], &[], 403);

    // 7. Break-glass: an Org3 emergency doctor reads without consent; the patient is notified
    //    and sees it in their audit.
    let v = n.ok("doctor3", &["EmergencyAccess", &p.id, "ETREAT"]);
    let window = v["access_id"].as_str().unwrap().to_owned();
    let ev = n.events().last().cloned().unwrap();
    assert_eq!(ev.name, "EmergencyAccess");
    let ev: Value = serde_json::from_slice(&ev.payload).unwrap();
    assert_eq!(ev["patient_id"], json!(p.id));
    assert_eq!(ev["clinician"], identity_id("doctor3"));
    assert!(n.read("doctor3", &p.id, &cond, "treatment") == p.condition.bytes);
    let audit = n.ok(&p.who, &["ListAuditEntries", &p.id, "200"]);
    let entries = audit["entries"].as_array().unwrap();
    let emergency: Vec<&Value> = entries
        .iter()
        .filter(|e| e["basis"] == "emergency")
        .collect();
    assert_eq!(emergency.len(), 2, "the window and the read under it");
    assert_eq!(emergency[0]["access_id"], json!(window));
    assert_eq!(emergency[0]["kind"], "emergency_access");
    assert_eq!(emergency[0]["emergency_reason"], "ETREAT");
    assert_eq!(emergency[1]["basis_id"], json!(window));
    assert_eq!(emergency[1]["record_id"], json!(cond));
    assert_eq!(audit["summary"]["emergency"], 2);

    // 8. Purge on the patient's request: PHI gone from the custodian's store, hash still
    //    verifiable on chain.
    n.ok(&p.who, &["RequestErasure", &p.id, &obs]);
    n.ok("admin1", &["PurgeRecord", &p.id, &obs]);
    let key = record_key(&p.clear, &p.observation.reference);
    assert_eq!(n.ledger.private("Org1MSPPHI", &key), None);
    let original_hash = sha256_hex(&p.observation.bytes);
    assert_eq!(
        hex::encode(n.ledger.private_hash("Org1MSPPHI", &key).unwrap()),
        original_hash
    );
    let meta = n.ok(&p.who, &["ReadRecordMetadata", &p.id, &obs]);
    assert_eq!(meta["status"], "purged");
    assert_eq!(meta["sha256"], json!(original_hash));
    let m = n.refused(
        Some("doctor1"),
        &["RequestRecordAccess", &p.id, &obs, "treatment"],
        &[],
        410,
    );
    assert!(m.contains("purged"));
    let ev = n.events();
    assert!(ev.iter().any(|e| e.name == "RecordPurged"));
}

#[test]
fn consent_expires_after_its_hour() {
    let (mut n, p) = setup();
    let obs = p.observation.record_id.clone();
    grant_org2_observation(&mut n, &p);
    n.advance_s(3500);
    assert!(n.read("doctor2", &p.id, &obs, "treatment") == p.observation.bytes);
    n.advance_s(101);
    let (_, d) = n.request("doctor2", &p.id, &obs, "treatment");
    assert_eq!(d, "denied");
    assert_eq!(
        state_changes(&n),
        [sc("Authorized", "Suspended", "Violation")]
    );
    let audit = n.ok("auditor1", &["ListAuditEntries", &p.id, "200"]);
    let last = audit["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "expired");
}
