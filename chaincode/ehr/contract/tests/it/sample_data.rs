//! Real sample data: all resources of 5 Synthea patients (FHIR R4 transaction bundles) are
//! stored, read back byte-exact by the custodian, and their on-chain hashes equal SHA-256 of
//! the original bytes.
//!
//! Original bytes: each entry's `resource` as it stands in the bundle file, sliced with
//! `serde_json::value::RawValue` (see `common::sample_resources`), never re-serialized.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use common::*;
use serde_json::Value;

/// All of a patient's record metadata, through `ListRecords` pages.
fn list_records(n: &mut Net, patient_id: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut bookmark = String::new();
    loop {
        let v = n.ok("auditor1", &["ListRecords", patient_id, "200", &bookmark]);
        for r in v["records"].as_array().unwrap() {
            out.insert(r["record_id"].as_str().unwrap().to_owned(), r.clone());
        }
        bookmark = v["bookmark"].as_str().unwrap().to_owned();
        if bookmark.is_empty() {
            return out;
        }
    }
}

#[test]
fn five_sample_patients_stored_read_back_byte_exact_with_matching_hashes() {
    let started = Instant::now();
    let mut n = Net::new();
    let mut stored = 0usize;
    let mut stored_bytes = 0usize;
    let mut types = BTreeSet::new();
    let mut chunks_total = 0;
    for (i, patient_id) in SAMPLE_PATIENTS.iter().enumerate() {
        let resources = if i == SAMPLE_PATIENTS.len() - 1 {
            // One patient through CreateRecord, one resource per call.
            n.register(patient_id);
            let resources = sample_resources(&sample_bundle(patient_id), patient_id);
            for r in &resources {
                let v = n.create("nurse1", patient_id, &r.bytes);
                assert_eq!(v["sha256"], sha256_hex(&r.bytes));
            }
            resources
        } else {
            // The others through CreateRecordsFromBundle, split client-side into chunks of
            // at most 128 KiB (the largest bundle, 638 kB, takes several calls).
            let (resources, chunks) = load_sample_patient(&mut n, patient_id, 128 << 10);
            chunks_total += chunks;
            resources
        };
        assert_eq!(
            resources.len(),
            manifest_resources(patient_id),
            "{patient_id}"
        );
        let ids: BTreeSet<&str> = resources.iter().map(|r| r.reference.as_str()).collect();
        assert_eq!(
            ids.len(),
            resources.len(),
            "record ids are unique per bundle"
        );
        let ledger_ids: BTreeSet<&str> = resources.iter().map(|r| r.record_id.as_str()).collect();
        assert_eq!(
            ledger_ids.len(),
            resources.len(),
            "and so are their ledger ids"
        );
        let ledger_patient = lp(patient_id);

        // Every record listed, its on-chain hash = SHA-256 of the original bytes, and the
        // private write's hash on the ledger agrees.
        let listed = list_records(&mut n, &ledger_patient);
        assert_eq!(listed.len(), resources.len());
        for r in &resources {
            let meta = &listed[&r.record_id];
            let expected = sha256_hex(&r.bytes);
            assert_eq!(meta["sha256"], expected, "{}", r.record_id);
            assert_eq!(meta["size_bytes"], r.bytes.len());
            assert_eq!(meta["version"], 1);
            assert_eq!(meta["custodian_msp"], "Org1MSP");
            let key = record_key(patient_id, &r.reference);
            assert_eq!(
                hex::encode(n.ledger.private_hash("Org1MSPPHI", &key).unwrap()),
                expected
            );
            types.insert(r.value["resourceType"].as_str().unwrap().to_owned());
        }

        // Read back by the custodian: RequestRecordAccess (submitted) then ReadRecord
        // (evaluated), byte-exact.
        for r in &resources {
            let back = n.read("doctor1", &ledger_patient, &r.record_id, "treatment");
            assert!(back == r.bytes, "{} differs", r.record_id);
            stored_bytes += back.len();
        }
        // The patient reads their own Patient resource.
        let own = n.read(
            &format!("patient:{patient_id}"),
            &ledger_patient,
            &lr(patient_id, &format!("Patient/{patient_id}")),
            "treatment",
        );
        assert_eq!(
            own,
            resources
                .iter()
                .find(|r| r.record_id.starts_with("Patient/"))
                .unwrap()
                .bytes
        );
        stored += resources.len();
    }
    assert_eq!(
        types.len(),
        16,
        "all resource types of the sample data: {types:?}"
    );
    println!(
        "sample data: {} patients, {stored} resources ({stored_bytes} bytes, {} resource types) \
         stored ({chunks_total} bundle calls for 4 patients, 1 patient by CreateRecord) and read \
         back byte-exact in {:.2?}",
        SAMPLE_PATIENTS.len(),
        types.len(),
        started.elapsed()
    );
}

#[test]
fn every_sample_resource_passes_the_default_templates() {
    // All 60 bundles, 9,572 resources: the built-in templates accept the whole sample set.
    let mut checked = 0;
    for entry in std::fs::read_dir(bundles_dir()).unwrap() {
        let path = entry.unwrap().path();
        let patient_id = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let file = std::fs::read(&path).unwrap();
        for r in sample_resources(&file, &patient_id) {
            let t = ehr_chaincode::template::default_template(
                r.value["resourceType"].as_str().unwrap(),
            )
            .unwrap_or_else(|| panic!("no default template for {}", r.reference));
            t.check(&r.value, &patient_id)
                .unwrap_or_else(|e| panic!("{patient_id} {}: {e}", r.reference));
            checked += 1;
        }
    }
    assert_eq!(checked, 9_572);
}
