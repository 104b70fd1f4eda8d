//! The main job end to end on a real network (issue 8): `network up` with the dev topology
//! (4 BFT orderers, Org1 hospital and Org2 lab, one peer each, TLS, loopback, free ports),
//! `medledger ehr import` of three Synthea patients, every record read back byte-exact by the
//! custodian with its on-chain hash equal to the SHA-256 of its bytes, a patient's consent
//! letting Org2's doctor read and its revocation refusing it (both audited), both peers'
//! ledgers agreeing (same height and commit hash), `network down`; no PHI, patient name or
//! identifier in a block or in the nodes' log files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use ehr_chaincode::ids::Grantee;
use ehr_chaincode::model::{Decision, Purpose};
use ehr_client::bundle::read_bundle;
use ehr_client::{ConsentGrant, EhrClient, EhrClientError};
use futures::StreamExt;
use medledger_devnet::client::connect_as;

use crate::common;

use common::{medledger_with, settle, up_dev_network};

fn medledger(args: &[&str], dir: &Path, bundles: &Path) -> String {
    medledger_with(args, dir, &[("MEDLEDGER_EHR_BUNDLES", bundles)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_read_consent_audit_on_a_real_network() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, bundles, net) = up_dev_network(tmp.path(), 3);

    // The main job: import through the gateway.
    let summary = medledger(
        &[
            "ehr",
            "import",
            bundles.to_str().unwrap(),
            "--json",
            "--quiet",
        ],
        &dir,
        &bundles,
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    settle(&dir).await;
    let expected: Vec<_> = std::fs::read_dir(&bundles)
        .unwrap()
        .map(|e| read_bundle(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let total: usize = expected.iter().map(|b| b.resources.len()).sum();
    assert_eq!(summary["resources_created"], total as u64, "{summary}");
    assert_eq!(summary["resources_failed"], 0, "{summary}");
    assert_eq!(summary["patients_registered"], 3, "{summary}");

    // Every record: on-chain hash = SHA-256 of the bytes, read back byte-exact by the
    // custodian's doctor (audited two-step read).
    let doctor = connect_as(&dir, Some("org1-doctor")).await.unwrap();
    let doctor = EhrClient::new(doctor.gateway.network("ehr").contract("ehr"));
    let reads = futures::stream::iter(
        expected
            .iter()
            .flat_map(|b| b.resources.iter().map(move |r| (b.patient_id.clone(), r))),
    )
    .map(|(patient_id, r)| {
        let (doctor, dir) = (&doctor, &dir);
        async move {
            // The ledger names both by keyed hashes (ADR 0031).
            let patient = common::ledger_patient(dir, &patient_id);
            let record = common::ledger_record(dir, &patient_id, &r.record_id);
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
    let patient_id = common::ledger_patient(&dir, &clear_patient_id);
    let record = expected[0].resources[1].clone();
    let ledger_record = common::ledger_record(&dir, &clear_patient_id, &record.record_id);
    let org2 = connect_as(&dir, Some("org2-doctor")).await.unwrap();
    let org2 = EhrClient::new(org2.gateway.network("ehr").contract("ehr"));
    settle(&dir).await;
    let before = org2
        .read_record(&patient_id, &ledger_record, Purpose::Treatment)
        .await;
    assert!(
        matches!(before, Err(EhrClientError::AccessDenied { .. })),
        "{before:?}"
    );
    let patient = connect_as(&dir, Some(&format!("patient:{clear_patient_id}")))
        .await
        .unwrap();
    let patient = EhrClient::new(patient.gateway.network("ehr").contract("ehr"));
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
    settle(&dir).await;
    let read = org2
        .read_record(&patient_id, &ledger_record, Purpose::Treatment)
        .await
        .unwrap();
    assert!(read.bytes == record.bytes);
    patient
        .revoke_consent(&patient_id, &consent.consent_id)
        .await
        .unwrap();
    settle(&dir).await;
    let after = org2
        .read_record(&patient_id, &ledger_record, Purpose::Treatment)
        .await;
    assert!(
        matches!(after, Err(EhrClientError::AccessDenied { .. })),
        "{after:?}"
    );
    settle(&dir).await;
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

    // Both peers agree: stop the network, open both ledgers, compare.
    drop((doctor, org2, patient));
    medledger(&["network", "down"], &dir, &bundles);
    let open = |name: &str| common::open_ledger(&dir, name).info();
    let (a, b) = (open("peer0.org1"), open("peer0.org2"));
    assert!(a.height > 3);
    assert_eq!(a, b, "the peers' chains and commit hashes differ");

    // No PHI on the shared ledger, in the lab's private store, or in any log: the blocks
    // (every peer has them) hold no resource's bytes; Org2's peer holds no Org1 PHI;
    // node logs mention no resource.
    let org2 = common::open_ledger(&dir, "peer0.org2");
    let org1 = common::open_ledger(&dir, "peer0.org1");
    let blocks: Vec<Vec<u8>> = (0..b.height)
        .map(|n| prost::Message::encode_to_vec(&org2.block(n).unwrap().unwrap()))
        .collect();
    let logs: Vec<Vec<u8>> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for bundle in &expected {
        for r in bundle.resources.iter().take(5) {
            for hay in blocks.iter().chain(&logs) {
                assert!(
                    !contains(hay, &r.bytes),
                    "{} found on the ledger or in a log",
                    r.record_id
                );
            }
            let id: ehr_chaincode::ids::RecordId =
                common::ledger_record(&dir, &bundle.patient_id, &r.record_id)
                    .parse()
                    .unwrap();
            let key = ehr_chaincode::ids::record_key(
                &common::ledger_patient(&dir, &bundle.patient_id),
                &id,
            )
            .unwrap();
            assert!(
                org2.get_private("ehr", "Org1MSPPHI", &key)
                    .unwrap()
                    .is_none(),
                "Org2 holds Org1's PHI for {}",
                r.record_id
            );
        }
    }
    // No patient's name or identifier (Patient.name, Patient.identifier) in any block or in
    // any node's log (the in-process EHR scenario, `chaincode/ehr/client/tests/it/scenario.rs`,
    // scans the nodes' `tracing` output; the log files of node processes are scanned here).
    for bundle in &expected {
        let needles = bundle.patient_identifiers();
        assert!(needles.len() >= 3, "{} needles", needles.len());
        for needle in &needles {
            for hay in blocks.iter().chain(&logs) {
                assert!(
                    !contains(hay, needle.as_bytes()),
                    "a patient name or identifier is on the ledger or in a log"
                );
            }
        }
    }
    // No Patient.id and no resource id on the shared ledger (issue 13 item 10, ADR 0031):
    // not in any block, not in the non-custodian peer's world state or history, and not in
    // any byte of the orderers' or the non-custodian peer's files (block stores, WALs,
    // RocksDB files and logs).
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
    let mut state = Vec::new();
    for entry in org2.state_range("ehr", "", "").unwrap() {
        let (key, value) = entry.unwrap();
        state.extend_from_slice(key.as_bytes());
        state.extend_from_slice(&value.value);
    }
    assert!(state.len() > 10_000, "the lab's world state is empty?");
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir.join("nodes")).unwrap() {
        let node = entry.unwrap().path();
        let name = node.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("orderer") || name == "peer0.org2" {
            files.extend(common::files_under(&node));
        }
    }
    for entry in std::fs::read_dir(dir.join("logs")).unwrap() {
        let log = entry.unwrap().path();
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("orderer") || name.starts_with("peer0.org2") {
            files.push(log);
        }
    }
    assert!(files.len() > 20, "{files:?}");
    let contents: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    for id in &ids {
        for (n, block) in blocks.iter().enumerate() {
            assert!(!contains(block, id.as_bytes()), "an id is in block {n}");
        }
        assert!(
            !contains(&state, id.as_bytes()),
            "an id is in the lab's world state"
        );
        for (name, bytes) in &contents {
            assert!(!contains(bytes, id.as_bytes()), "an id is in {name}");
        }
    }
    drop((org1, org2));
    // `ledger verify` replays both peers' chains: sound, and the custodian's private data
    // matches the on-chain hashes.
    let org1_verified = medledger(
        &["ledger", "verify", "--node", "peer0.org1"],
        &dir,
        &bundles,
    );
    assert!(org1_verified.contains(": OK"), "{org1_verified}");
    // Every record, and the organization's pseudonym key (ADR 0031).
    assert!(
        org1_verified.contains(&format!("{} private values match", total + 1)),
        "{org1_verified}"
    );
    let org2_verified = medledger(
        &["ledger", "verify", "--node", "peer0.org2"],
        &dir,
        &bundles,
    );
    // Org2's own pseudonym key only: none of Org1's PHI.
    assert!(
        org2_verified.contains(" 1 private values match"),
        "{org2_verified}"
    );
    medledger(&["network", "down", "--purge"], &dir, &bundles);
    drop(net);
}
