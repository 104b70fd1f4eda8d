//! The main job end to end (issue 8) on the whole-network harness (ADR 0037), moved from the
//! process test `network/cli/tests/it/ehr_network.rs` (issue 15 item 5): two organizations
//! (Org1 the hospital and custodian, Org2 the lab), 4 BFT orderers, the real gateways,
//! virtual time. As `network up` and `ehr import`: governance founded by both MSP admins,
//! Org1's pseudonym key, the first three sample Synthea patients imported by Org1's admin.
//! Then every record is read back byte-exact by the custodian's doctor with its on-chain hash
//! equal to the SHA-256 of its bytes; a patient's consent lets Org2's doctor read and its
//! revocation refuses it again (all three attempts audited); both peers hold the same blocks
//! and state; no PHI, patient name or identifier is in a block; Org2 holds none of Org1's
//! PHI; no `Patient.id` or resource id is in a block, the orderers' chains, Org2's world state
//! or Org2's files; and each peer's ledger verifies from scratch (`ledger verify`'s
//! library) with the private values it should hold.
//!
//! The process test keeps what needs processes: the `medledger` commands (`network up`,
//! `ehr import`, `ledger verify`, `network down`) and the node processes' log files and
//! data directories.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use ehr_chaincode::ids::{Grantee, RecordId, record_key};
use ehr_chaincode::model::{Decision, Purpose};
use ehr_client::bundle::{PatientBundle, bundle_files, read_bundle};
use ehr_client::{ConsentGrant, EhrClientError, ImportOptions, import};
use futures::StreamExt;
use medledger_harness::Harness;

use crate::common::{DevNetwork, client, dev_network, files_under, sample_dir};

/// Org1 (the custodian), Org2 (the lab).
const ORG1: usize = 0;
const ORG2: usize = 1;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The first of `needles` found in `hay`: one pass over `hay` per needle length, each window
/// looked up in a set (the ids are hundreds, Org2's files megabytes).
fn find_any<'a>(hay: &[u8], needles: &[&'a [u8]]) -> Option<&'a [u8]> {
    let mut by_len: BTreeMap<usize, HashSet<&'a [u8]>> = BTreeMap::new();
    for n in needles {
        by_len.entry(n.len()).or_default().insert(n);
    }
    by_len
        .iter()
        .find_map(|(len, set)| hay.windows(*len).find_map(|w| set.get(w).copied()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_read_consent_audit_and_privacy_on_the_harness() {
    let net = Harness::builder().orgs(2).build().unwrap().serve().unwrap();
    // The first sample bundle is imported by the dev setup, the next two here: the first
    // three by file name, as the process test's `ehr import` of three patients.
    let DevNetwork {
        admin, key, bundle, ..
    } = dev_network(&net).await;
    let files: Vec<PathBuf> = bundle_files(&[sample_dir()]).unwrap()[1..3].to_vec();
    let summary = import(&admin, &files, &ImportOptions::default(), &|_| {})
        .await
        .unwrap();
    let mut expected: Vec<PatientBundle> = vec![bundle];
    expected.extend(
        files
            .iter()
            .map(|f| read_bundle(&std::fs::read(f).unwrap()).unwrap()),
    );
    let total: usize = expected.iter().map(|b| b.resources.len()).sum();
    assert!(summary.is_complete(), "{summary}");
    assert_eq!(
        summary.resources_created as usize,
        total - expected[0].resources.len()
    );
    assert_eq!(summary.patients_registered, 2, "{summary}");
    let record_of = |patient: &str, record: &str| key.record(patient, &record.parse().unwrap());

    // Every record: on-chain hash = SHA-256 of the bytes, read back byte-exact by the
    // custodian's doctor (audited two-step read).
    let doctor = client(
        &net,
        ORG1,
        net.client(ORG1, "org1-doctor", &[("ehr.role", "doctor")])
            .unwrap(),
    );
    let reads = futures::stream::iter(
        expected
            .iter()
            .flat_map(|b| b.resources.iter().map(move |r| (b.patient_id.as_str(), r))),
    )
    .map(|(clear, r)| {
        let doctor = &doctor;
        // The ledger names both by Org1's keyed hashes (ADR 0031).
        let patient = key.patient(clear);
        let record = record_of(clear, &r.record_id).to_string();
        async move {
            let meta = doctor.record_metadata(&patient, &record).await.unwrap();
            assert_eq!(meta.sha256, r.sha256, "{}", r.record_id);
            let read = doctor
                .read_record(&patient, &record, Purpose::Treatment)
                .await
                .unwrap();
            assert!(read.bytes == r.bytes, "{} differs", r.record_id);
            hex::encode(medledger_msp::crypto::sha256(&read.bytes)) == meta.sha256
        }
    })
    .buffer_unordered(64)
    .collect::<Vec<bool>>()
    .await;
    assert_eq!(reads.len(), total);
    assert!(reads.iter().all(|ok| *ok));

    // Consent: Org2's doctor is refused, then reads under the patient's consent, then is
    // refused again after revocation; every attempt is in the patient's audit trail.
    let clear_patient_id = expected[0].patient_id.clone();
    let patient_id = key.patient(&clear_patient_id);
    let record = expected[0].resources[1].clone();
    let ledger_record = record_of(&clear_patient_id, &record.record_id).to_string();
    let org2 = client(
        &net,
        ORG2,
        net.client(ORG2, "org2-doctor", &[("ehr.role", "doctor")])
            .unwrap(),
    );
    let before = org2
        .read_record(&patient_id, &ledger_record, Purpose::Treatment)
        .await;
    assert!(
        matches!(before, Err(EhrClientError::AccessDenied { .. })),
        "{before:?}"
    );
    let patient = client(
        &net,
        ORG1,
        net.client(
            ORG1,
            &format!("patient-{patient_id}"),
            &[("ehr.role", "patient"), ("ehr.patient_id", &patient_id)],
        )
        .unwrap(),
    );
    let consent = patient
        .grant_consent(&ConsentGrant {
            patient_id: patient_id.clone(),
            grantee: Grantee::Org("Org2MSP".into()),
            resource_types: Vec::new(),
            purposes: vec![Purpose::Treatment],
            valid_for_s: 3600,
        })
        .await
        .unwrap();
    let read = org2
        .read_record(&patient_id, &ledger_record, Purpose::Treatment)
        .await
        .unwrap();
    assert!(read.bytes == record.bytes);
    patient
        .revoke_consent(&patient_id, &consent.consent_id)
        .await
        .unwrap();
    let after = org2
        .read_record(&patient_id, &ledger_record, Purpose::Treatment)
        .await;
    assert!(
        matches!(after, Err(EhrClientError::AccessDenied { .. })),
        "{after:?}"
    );
    let mut entries = Vec::new();
    let mut bookmark = String::new();
    loop {
        let page = patient
            .audit_entries(&patient_id, 200, &bookmark)
            .await
            .unwrap();
        entries.extend(page.entries);
        if page.bookmark.is_empty() {
            break;
        }
        bookmark = page.bookmark;
    }
    let org2_entries: Vec<Decision> = entries
        .iter()
        .filter(|e| e.requester_msp == "Org2MSP")
        .map(|e| e.decision)
        .collect();
    assert_eq!(
        org2_entries,
        [Decision::Denied, Decision::Granted, Decision::Denied]
    );
    drop((admin, doctor, org2, patient));

    // What the peers hold: their blocks, Org2's world state and files, whether Org2 holds
    // any of Org1's PHI; and what the orderers hold (their chains).
    let keys: Vec<(String, String)> = expected
        .iter()
        .flat_map(|b| {
            let patient = key.patient(&b.patient_id);
            b.resources.iter().take(5).map(move |r| {
                let id: RecordId = record_of(&b.patient_id, &r.record_id);
                (r.record_id.clone(), record_key(&patient, &id).unwrap())
            })
        })
        .collect();
    let held = net
        .with(move |h| {
            let hashes: Vec<_> = h
                .peers()
                .into_iter()
                .map(|(org, peer)| h.block_hashes(org, peer).unwrap())
                .collect();
            let digests: Vec<_> = h
                .peers()
                .into_iter()
                .map(|(org, peer)| h.state_digest(org, peer).unwrap())
                .collect();
            let lab = h.ledger(ORG2, 0).unwrap();
            let blocks: Vec<Vec<u8>> = (0..lab.height())
                .map(|n| prost::Message::encode_to_vec(&lab.block(n).unwrap().unwrap()))
                .collect();
            let lab_phi: Vec<String> = keys
                .iter()
                .filter(|(_, k)| lab.get_private("ehr", "Org1MSPPHI", k).unwrap().is_some())
                .map(|(id, _)| id.clone())
                .collect();
            let mut state = Vec::new();
            for entry in lab.state_range("ehr", "", "").unwrap() {
                let (key, value) = entry.unwrap();
                state.extend_from_slice(key.as_bytes());
                state.extend_from_slice(&value.value);
            }
            let files: Vec<(String, Vec<u8>)> = files_under(&h.peer_dir(ORG2, 0).unwrap())
                .into_iter()
                .filter_map(|f| Some((f.display().to_string(), std::fs::read(&f).ok()?)))
                .collect();
            let sim = &h.network().sim;
            let orderers: Vec<Vec<u8>> = sim
                .ids()
                .into_iter()
                .flat_map(|id| sim.blocks(id).iter().map(prost::Message::encode_to_vec))
                .collect();
            (hashes, digests, blocks, lab_phi, state, files, orderers)
        })
        .unwrap();
    let (hashes, digests, blocks, lab_phi, state, files, orderers) = held;
    // Both peers agree: the same chain and the same state derived from it.
    assert!(hashes[0].len() > 3);
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "the peers' chains differ"
    );
    assert!(
        digests.iter().all(|d| *d == digests[0]),
        "the peers' states differ"
    );
    // No PHI on the shared ledger or in the lab's private store: the blocks (every peer has
    // them) hold no resource's bytes; Org2's peer holds no Org1 PHI.
    assert!(lab_phi.is_empty(), "Org2 holds Org1's PHI for {lab_phi:?}");
    for bundle in &expected {
        for r in bundle.resources.iter().take(5) {
            for block in &blocks {
                assert!(
                    !contains(block, &r.bytes),
                    "{} found on the ledger",
                    r.record_id
                );
            }
        }
        // No patient's name or identifier (Patient.name, Patient.identifier) in any block
        // (the scenario test scans the nodes' `tracing` output, the process test the node
        // processes' log files).
        let needles = bundle.patient_identifiers();
        assert!(needles.len() >= 3, "{} needles", needles.len());
        for needle in &needles {
            for block in &blocks {
                assert!(
                    !contains(block, needle.as_bytes()),
                    "a patient name or identifier is on the ledger"
                );
            }
        }
    }
    // No Patient.id and no resource id on the shared ledger (issue 13 item 10, ADR 0031): not
    // in any block, not in the orderers' chains, not in the non-custodian peer's world state
    // or in any byte of its files (block store, RocksDB files, transient store).
    let mut ids: Vec<&str> = Vec::new();
    for bundle in &expected {
        ids.push(&bundle.patient_id);
        ids.extend(
            bundle
                .resources
                .iter()
                .map(|r| r.record_id.split_once('/').unwrap().1),
        );
    }
    assert!(state.len() > 10_000, "the lab's world state is empty?");
    assert!(files.len() > 10, "{} files", files.len());
    assert!(orderers.len() > 4 * 3, "{} orderer blocks", orderers.len());
    let ids: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes()).collect();
    let mut hays: Vec<(String, &[u8])> = Vec::new();
    hays.extend(
        blocks
            .iter()
            .enumerate()
            .map(|(n, b)| (format!("block {n}"), b.as_slice())),
    );
    hays.extend(
        orderers
            .iter()
            .map(|b| ("an orderer's chain".to_owned(), b.as_slice())),
    );
    hays.push(("the lab's world state".to_owned(), state.as_slice()));
    hays.extend(files.iter().map(|(name, b)| (name.clone(), b.as_slice())));
    for (what, hay) in hays {
        assert!(find_any(hay, &ids).is_none(), "an id is in {what}");
    }

    // `ledger verify`'s checks on both stopped peers: sound, and the private values each
    // holds match the on-chain hashes: every record and Org1's pseudonym key at the
    // custodian (ADR 0031), and one locator per distinct FHIR resource with a patient reference
    // (issue 16; Organization and Practitioner get none), none at the lab (Org2 set no key here, and
    // holds no Org1 PHI).
    let locators: std::collections::BTreeSet<&str> = expected
        .iter()
        .flat_map(|b| b.resources.iter().map(|r| r.record_id.as_str()))
        .filter(|id| !id.starts_with("Organization/") && !id.starts_with("Practitioner/"))
        .collect();
    for org in [ORG1, ORG2] {
        net.with(move |h| h.crash_peer(org, 0)).unwrap().unwrap();
    }
    let verified = net
        .with(|h| [h.verify_ledger(ORG1, 0), h.verify_ledger(ORG2, 0)])
        .unwrap()
        .map(|v| v.unwrap().unwrap());
    assert_eq!(verified[0].height, hashes[0].len() as u64);
    assert_eq!(
        verified[0].private_values,
        total as u64 + 1 + locators.len() as u64
    );
    assert_eq!(verified[1].private_values, 0);
    net.stop().unwrap();
}
