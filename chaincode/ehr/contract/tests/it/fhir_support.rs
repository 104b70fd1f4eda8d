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
