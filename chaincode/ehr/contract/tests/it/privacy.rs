//! Privacy: after storing 5 sample patients and exercising every submitted function on them,
//! nothing from any resource's JSON — names, identifiers, addresses, telecom, birth dates from
//! Patient, Practitioner and Organization; Observation values; diagnoses and medications —
//! appears in the public state (keys and values), in events, in any error message, or in the
//! response of any function other than `ReadRecord` (the evaluated read that returns PHI by
//! design, which is checked to contain them, so the search is not vacuous).
//!
//! Ledger ids (ADR 0031): after the same exercise, no clear `Patient.id` and no resource id of
//! those bundles appears in what reaches the shared ledger — public keys and values, events,
//! any call's arguments, any response other than `ReadRecord`'s and `LocateRecords`' (evaluated
//! answers to what the caller asked) — while the custodian's collection holds every resource
//! byte-exact, and a locator per resource keyed by a hash, with ledger ids only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crate::common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

/// String values at `path` (arrays traversed).
fn strings(v: &Value, path: &[&str], out: &mut Vec<String>) {
    match (v, path.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|i| strings(i, path, out)),
        (Value::String(s), None) => out.push(s.clone()),
        (_, Some((first, rest))) => {
            if let Some(c) = v.get(first) {
                strings(c, rest, out);
            }
        }
        _ => {}
    }
}

/// The raw text of `"key":{…}` (first level of braces) wherever it occurs in `raw`.
fn raw_objects(raw: &str, key: &str) -> Vec<String> {
    let pat = format!("\"{key}\":{{");
    raw.match_indices(&pat)
        .filter_map(|(i, _)| raw[i..].find('}').map(|end| raw[i..=i + end].to_owned()))
        .collect()
}

/// PHI strings of a resource worth searching for.
fn needles(r: &SampleResource) -> Vec<String> {
    let v = &r.value;
    let raw = std::str::from_utf8(&r.bytes).unwrap();
    let mut out = Vec::new();
    let paths: &[&[&str]] = match v["resourceType"].as_str().unwrap() {
        "Patient" => &[
            &["name", "given"],
            &["name", "family"],
            &["identifier", "value"],
            &["address", "line"],
            &["address", "city"],
            &["telecom", "value"],
            &["birthDate"],
        ],
        "Practitioner" => &[
            &["name", "given"],
            &["name", "family"],
            &["address", "line"],
        ],
        "Organization" => &[&["name"], &["address", "line"], &["telecom", "value"]],
        "Observation" => &[&["valueString"], &["valueCodeableConcept", "text"]],
        "Condition" | "Procedure" | "DiagnosticReport" => &[&["code", "text"]],
        "MedicationRequest" => &[&["medicationCodeableConcept", "text"]],
        _ => &[],
    };
    for p in paths {
        strings(v, p, &mut out);
    }
    out.extend(raw_objects(raw, "valueQuantity"));
    // Short strings and digit-only strings shorter than 9 could match ids or hex by chance.
    out.retain(|s| s.len() >= 5 && !(s.len() < 9 && s.bytes().all(|b| b.is_ascii_digit())));
    out
}

fn find<'a>(haystack: &[u8], needles: &'a BTreeSet<String>) -> Option<&'a String> {
    let text = String::from_utf8_lossy(haystack);
    needles.iter().find(|n| text.contains(n.as_str()))
}

/// The sample patients (clear id, resources), loaded at Org1MSP.
type Patients = Vec<(String, Vec<SampleResource>)>;

/// Loads the sample patients; checks that the custodian's collection holds each resource
/// byte-exact under its record's ledger id.
fn load_sample_patients(n: &mut Net) -> Patients {
    let mut patients = Vec::new();
    for id in SAMPLE_PATIENTS {
        let (resources, _) = load_sample_patient(n, id, 1 << 20);
        for r in &resources {
            let key = record_key(id, &r.reference);
            assert!(key.contains(&lp(id)) && key.contains(&r.record_id[r.record_id.len() - 34..]));
            assert!(
                n.ledger.private("Org1MSPPHI", &key).unwrap() == r.bytes,
                "{} not byte-exact",
                r.record_id
            );
        }
        patients.push((id.to_owned(), resources));
    }
    patients
}

/// Asserts that no needle is in a public key or value or in an event (name or payload);
/// returns how many public keys and events were searched.
#[track_caller]
fn assert_not_in_state_or_events(
    n: &Net,
    needles: &BTreeSet<String>,
    what: &str,
) -> (usize, usize) {
    let public = n.ledger.public_state();
    for (k, v) in &public {
        if let Some(hit) = find(k.as_bytes(), needles).or_else(|| find(v, needles)) {
            panic!("{what} {hit:?} in public state under key {k:?}");
        }
    }
    let events = n.events();
    for e in &events {
        if let Some(hit) = find(e.name.as_bytes(), needles).or_else(|| find(&e.payload, needles)) {
            panic!("{what} {hit:?} in event {}", e.name);
        }
    }
    (public.len(), events.len())
}

#[test]
fn no_phi_outside_private_data_and_read_record() {
    let mut n = Net::new();
    let patients = load_sample_patients(&mut n);
    let mut all_needles = BTreeSet::new();
    for (_, resources) in &patients {
        for r in resources {
            all_needles.extend(needles(r));
        }
    }
    // Patient ids and resource ids are searched by
    // `no_clear_patient_or_resource_id_reaches_the_shared_ledger`, and everywhere.
    for (id, resources) in &patients {
        all_needles.remove(id);
        for r in resources {
            all_needles.remove(r.value["id"].as_str().unwrap());
        }
    }
    assert!(all_needles.len() > 400, "{} needles", all_needles.len());
    for (_, resources) in &patients {
        let p = &resources
            .iter()
            .find(|r| r.record_id.starts_with("Patient/"))
            .unwrap()
            .value;
        for path in [
            &["name", "family"][..],
            &["identifier", "value"],
            &["address", "line"],
        ] {
            let mut found = Vec::new();
            strings(p, path, &mut found);
            assert!(
                !found.is_empty() && found.iter().all(|s| all_needles.contains(s)),
                "{path:?}"
            );
        }
    }

    exercise(&mut n, &patients);

    let (public, events) = assert_not_in_state_or_events(&n, &all_needles, "PHI");
    let mut phi_reads = 0;
    for c in &n.calls {
        if let Some(hit) = find(c.message.as_bytes(), &all_needles) {
            panic!(
                "PHI {hit:?} in the message of {} ({})",
                c.function, c.status
            );
        }
        if c.function == "ReadRecord" || c.function == "ReadRecords" {
            phi_reads += usize::from(find(&c.payload, &all_needles).is_some());
        } else if let Some(hit) = find(&c.payload, &all_needles) {
            panic!("PHI {hit:?} in the response of {}", c.function);
        }
    }
    // The search finds PHI where it belongs: in ReadRecord's answers and the collections.
    assert!(phi_reads >= SAMPLE_PATIENTS.len() * 3, "{phi_reads}");
    let private = n.ledger.private_state();
    assert!(private.values().any(|v| find(v, &all_needles).is_some()));
    let functions: BTreeSet<&str> = n.calls.iter().map(|c| c.function.as_str()).collect();
    for f in ehr_chaincode::contract().functions() {
        assert!(functions.contains(f), "{f} not exercised");
    }
    println!(
        "privacy: {} PHI strings searched in {} public keys, {} events, {} responses",
        all_needles.len(),
        public,
        events,
        n.calls.len()
    );
}

/// Every function on the sample patients, as clients call them: ledger ids in every
/// argument, the clear `Patient.id` only in the transient map of PHI-carrying calls.
fn exercise(n: &mut Net, patients: &Patients) {
    for (id, resources) in patients {
        let who = format!("patient:{id}");
        let clear = id.as_str();
        let lid = lp(clear);
        let id = &lid;
        let of = |t: &str| {
            resources
                .iter()
                .find(|r| r.record_id.starts_with(&format!("{t}/")))
                .unwrap()
        };
        let obs = of("Observation");
        let cond = of("Condition");
        let patient = of("Patient");
        // The patient learns its own ledger ids; so does a consented clinician, for the
        // types it may write.
        n.ledger_ids(
            &who,
            "Org1MSP",
            clear,
            std::slice::from_ref(&patient.reference),
        );
        n.ok(&who, &["GrantConsent", &json!({"patient_id": id, "grantee": {"org": "Org2MSP"},
            "resource_types": ["Observation", "Patient"], "purposes": ["treatment"], "valid_for_s": 3600}).to_string()]);
        n.ledger_ids(
            "doctor2",
            "Org1MSP",
            clear,
            std::slice::from_ref(&obs.reference),
        );
        // Records found by FHIR id alone (clear ids in the transient map, answered to the
        // caller only): the custodian's staff, a consented clinician of another org.
        let asked =
            json!({"records": [obs.reference, patient.reference, cond.reference]}).to_string();
        let found = n.ok_t(
            "doctor1",
            &["LocateRecords"],
            &[("records", asked.as_bytes())],
        );
        assert_eq!(found["records"][2]["record_id"], cond.record_id.as_str());
        let found = n.ok_t(
            "doctor2",
            &["LocateRecords", "Org1MSP"],
            &[("records", asked.as_bytes())],
        );
        assert_eq!(found["records"][0]["record_id"], obs.record_id.as_str());
        assert!(found["records"][2].is_null(), "no Condition consent");
        // The bulk audited read: the consented types only, their exact bytes.
        let page = n.ok(
            "doctor2",
            &[
                "RequestRecordsAccess",
                id,
                "treatment",
                r#"{"page_size": 200}"#,
            ],
        );
        assert_eq!(page["decision"], "granted");
        let r = n.call(
            "doctor2",
            &["ReadRecords", id, page["access_id"].as_str().unwrap()],
        );
        assert_eq!(r.status, 200, "{}", r.message);
        n.read("doctor2", id, &obs.record_id, "treatment");
        n.read("doctor2", id, &patient.record_id, "treatment");
        n.read("doctor1", id, &cond.record_id, "treatment");
        n.read(&who, id, &patient.record_id, "treatment");
        n.ok(
            "doctor1",
            &[
                "ShareRecord",
                id,
                &patient.record_id,
                "Org2MSP",
                "treatment",
            ],
        );
        // An update (still PHI) by the consented Org2 doctor and by the custodian.
        let amended =
            String::from_utf8(obs.bytes.clone())
                .unwrap()
                .replacen("\"final\"", "\"amended\"", 1);
        n.ok_t(
            "doctor2",
            &["UpdateRecord", id],
            &phi(clear, "resource", amended.as_bytes()),
        );
        n.ok_t(
            "doctor1",
            &["UpdateRecord", id],
            &phi(clear, "resource", &patient.bytes),
        );
        // Refused writes carrying PHI: their errors must not echo it.
        n.refused(
            Some("researcher2"),
            &["CreateRecord", id],
            &phi(clear, "resource", &patient.bytes),
            403,
        );
        n.refused(
            Some("doctor1"),
            &["CreateRecord", id],
            &phi(clear, "resource", &patient.bytes),
            409,
        );
        let mut broken = patient.bytes.clone();
        broken.truncate(broken.len() / 2);
        n.refused(
            Some("doctor1"),
            &["CreateRecord", id],
            &phi(clear, "resource", &broken),
            400,
        );
        let wrong_patient = String::from_utf8(cond.bytes.clone())
            .unwrap()
            .replace(clear, "someone-else");
        n.refused(
            Some("doctor1"),
            &["CreateRecord", id],
            &phi(clear, "resource", wrong_patient.as_bytes()),
            400,
        );
        // Denial, Violation, requests, break-glass, erasure.
        n.request("doctor2", id, &cond.record_id, "treatment");
        let req = n.ok(
            "lab2",
            &[
                "RequestAccess",
                &json!({"patient_id": id, "purposes": ["treatment"], "valid_for_s": 60})
                    .to_string(),
            ],
        );
        n.ok(
            &who,
            &[
                "RejectAccessRequest",
                id,
                req["request_id"].as_str().unwrap(),
            ],
        );
        let req = n.ok(
            "researcher3",
            &[
                "RequestAccess",
                &json!({"patient_id": id, "purposes": ["research"], "valid_for_s": 60}).to_string(),
            ],
        );
        let c = n.ok(
            &who,
            &[
                "ApproveAccessRequest",
                id,
                req["request_id"].as_str().unwrap(),
            ],
        );
        n.read("researcher3", id, &cond.record_id, "research");
        n.ok(
            &who,
            &["RevokeConsent", id, c["consent_id"].as_str().unwrap()],
        );
        n.ok("doctor3", &["EmergencyAccess", id, "BTG"]);
        n.read("doctor3", id, &cond.record_id, "treatment");
        n.request("doctor2", id, &cond.record_id, "treatment");
        n.ok(&who, &["ResetAccessState", id, "org:Org2MSP"]);
        n.ok("admin1", &["ResetAccessState", id, "org:Org2MSP"]);
        n.ok(&who, &["RequestErasure", id, &cond.record_id]);
        n.ok("admin1", &["PurgeRecord", id, &cond.record_id]);
        for f in [
            "ListRecords",
            "ListConsents",
            "ListAccessRequests",
            "ListAuditEntries",
        ] {
            n.ok("auditor1", &[f, id]);
        }
        let consents = n.ok(&who, &["ListConsents", id]);
        let first = consents["consents"][0]["consent_id"]
            .as_str()
            .unwrap()
            .to_owned();
        n.ok(&who, &["GetConsent", id, &first]);
        n.ok(&who, &["GetRecordHistory", id, &obs.record_id]);
        n.ok(&who, &["ReadRecordMetadata", id, &patient.record_id]);
        n.ok(&who, &["GetAccessState", id, "org:Org2MSP"]);
    }
    n.ok(
        "admin1",
        &[
            "PutTemplate",
            r#"{"resource_type":"Goal","patient_link":"subject"}"#,
        ],
    );
    n.ok("doctor1", &["GetTemplate", "Observation"]);
    // Governance and WhoAmI answer ids only.
    n.ok("gov4", &["JoinGovernance"]);
    // Founded: its founding confirmations are no longer withdrawn (the message is checked).
    assert_eq!(n.call("gov1", &["WithdrawFounding"]).status, 409);
    n.ok("gov1", &["AdmitMember", "Org4MSP"]);
    n.ok("gov2", &["AdmitMember", "Org4MSP"]);
    n.ok("gov4", &["ApproveRoleAuthority", "Org4MSP", "auditor"]);
    n.ok("gov4", &["WithdrawRoleAuthority", "Org4MSP", "auditor"]);
    n.ok("doctor1", &["GetRoleAuthority", "Org4MSP", "auditor"]);
    n.ok("doctor1", &["GetGovernance"]);
    n.ok(&format!("patient:{}", SAMPLE_PATIENTS[0]), &["WhoAmI"]);
    n.ok("doctor1", &["GetPatient", &lp(SAMPLE_PATIENTS[0])]);
}

/// The clear ids of the sample patients: each `Patient.id` and the `id` of every resource of
/// their bundles.
fn clear_ids(patients: &Patients) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (id, resources) in patients {
        ids.insert(id.clone());
        for r in resources {
            ids.insert(r.value["id"].as_str().unwrap().to_owned());
        }
    }
    // Synthea ids are UUIDs: no chance match with hex, MSP ids or JSON.
    assert!(ids.iter().all(|i| i.len() >= 32), "short ids");
    ids
}

#[test]
fn no_clear_patient_or_resource_id_reaches_the_shared_ledger() {
    let mut n = Net::new();
    let patients = load_sample_patients(&mut n);
    let ids = clear_ids(&patients);
    assert!(ids.len() > 500, "{} ids", ids.len());
    exercise(&mut n, &patients);

    let (public, events) = assert_not_in_state_or_events(&n, &ids, "clear id");
    let (mut submitted, mut reads_naming_ids) = (0, 0);
    for c in &n.calls {
        for a in &c.args {
            if let Some(hit) = find(a.as_bytes(), &ids) {
                panic!(
                    "clear id {hit:?} in an argument of {} ({})",
                    c.function, c.status
                );
            }
        }
        if let Some(hit) = find(c.message.as_bytes(), &ids) {
            panic!(
                "clear id {hit:?} in the message of {} ({})",
                c.function, c.status
            );
        }
        let evaluated = ehr_chaincode::EVALUATE_FUNCTIONS.contains(&c.function.as_str());
        if c.function == "ReadRecord" || c.function == "ReadRecords" {
            // Evaluated, PHI by design: the resource names its ids.
            reads_naming_ids += usize::from(find(&c.payload, &ids).is_some());
        } else if c.function == "LocateRecords" {
            // Evaluated: answers the caller the clear references it asked about.
            assert!(evaluated);
        } else if let Some(hit) = find(&c.payload, &ids) {
            panic!("clear id {hit:?} in the response of {}", c.function);
        }
        submitted += usize::from(!evaluated && c.status == 200);
    }
    // Not vacuous: every function ran; submitted calls answered; the ids are where they
    // belong — in ReadRecord's answers and in the custodian's collection, never in a key.
    let functions: BTreeSet<&str> = n.calls.iter().map(|c| c.function.as_str()).collect();
    for f in ehr_chaincode::contract().functions() {
        assert!(functions.contains(f), "{f} not exercised");
    }
    assert!(submitted > 100, "{submitted} submitted calls");
    assert!(
        reads_naming_ids >= SAMPLE_PATIENTS.len() * 3,
        "{reads_naming_ids}"
    );
    let private = n.ledger.private_state();
    for (id, _) in &patients {
        let named = BTreeSet::from([id.clone()]);
        assert!(
            private
                .iter()
                .any(|((c, _), v)| c == "Org1MSPPHI" && find(v, &named).is_some()),
            "{id} in no stored resource"
        );
    }
    for (collection, key) in private.keys() {
        if let Some(hit) = find(key.as_bytes(), &ids) {
            panic!("clear id {hit:?} in a private key of {collection} (its hash is public)");
        }
    }
    // Locators (issue 16): one per resource with a patient reference (Organization and
    // Practitioner, which several patients' bundles carry, get none), only in the
    // custodian's own collection, keyed by a hash and valued with ledger ids.
    let locators: Vec<(&(String, String), &Vec<u8>)> = private
        .iter()
        .filter(|((_, k), _)| k.starts_with("\u{0}locator\u{0}"))
        .collect();
    let resources: BTreeSet<&str> = patients
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|r| r.reference.as_str()))
        .filter(|r| !r.starts_with("Organization/") && !r.starts_with("Practitioner/"))
        .collect();
    assert_eq!(locators.len(), resources.len());
    for ((collection, key), value) in &locators {
        assert_eq!(
            collection, "Org1MSPPHI",
            "locator {key:?} off the custodian"
        );
        if let Some(hit) = find(value, &ids) {
            panic!("clear id {hit:?} in the locator {key:?}");
        }
    }
    println!(
        "ledger ids: {} clear ids searched in {} public keys, {} events, {} calls ({submitted} \
         submitted)",
        ids.len(),
        public,
        events,
        n.calls.len()
    );
}
