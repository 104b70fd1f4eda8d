//! The main job as an operator runs it (issue 8), a process smoke test: `network up` with the
//! dev topology (4 BFT orderers, Org1 hospital and Org2 lab, one peer each, TLS, loopback,
//! free ports), `medledger ehr import` of a Synthea patient, one record read back byte-exact
//! by the custodian's doctor through its gateway, a second `network up` that finds the EHR
//! governance founded and changes nothing, `network down`; both peers' ledgers agree (same
//! height and commit hash), `medledger ledger verify` finds both sound with the private values
//! each should hold, and no PHI, patient name or identifier, `Patient.id` or resource id is in
//! a block or in the node processes' files: their log files, and the orderers' and the lab
//! peer's data directories (block stores, WALs, RocksDB files). An organization that joins
//! later (`medledger org add`) falls under the EHR rules as the founders do: its emergency
//! doctor's break-glass is denied until the members admit it to the EHR governance and a
//! majority of them approve its break-glass authority, then opens a window and reads.
//!
//! The rest moved onto the whole-network harness (issue 15 item 5, ADR 0037): every record
//! read back with its on-chain hash, consent and its audit trail, the peers' agreement, the
//! privacy of blocks, state and files and `ledger verify`'s checks are
//! `chaincode/ehr/client/tests/it/main_job.rs`; the EHR rules of `ehr_rules_network` (custodian
//! ids, Blocked across re-enrollment, ShareRecord, break-glass and auditor authority) are
//! `chaincode/ehr/client/tests/it/rules.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use ehr_chaincode::model::{AuthorityRole, EmergencyReason, JoinStatus, Purpose};
use ehr_client::{EhrClient, EhrClientError};
use medledger_devnet::client::connect_as;

use crate::common;

use common::{first_bundle, medledger_with, settle, up_dev_network};

fn medledger(args: &[&str], dir: &Path, bundles: &Path) -> String {
    medledger_with(args, dir, &[("MEDLEDGER_EHR_BUNDLES", bundles)])
}

/// An EHR client of demo identity `name` through its organization's gateway.
async fn client(dir: &Path, name: &str) -> EhrClient {
    let c = connect_as(dir, Some(name)).await.unwrap();
    EhrClient::new(c.gateway.network("ehr").contract("ehr"))
}

/// `EmergencyAccess` by `clinician` on patient `p`, which must be denied on the ledger: the
/// chaincode's reason.
async fn break_glass_denied(clinician: &EhrClient, p: &str) -> String {
    match clinician
        .emergency_access(p, EmergencyReason::EmergencyTreatment, None)
        .await
    {
        Err(EhrClientError::EmergencyDenied { message, .. }) => message,
        other => panic!("expected a denied break-glass, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_read_verify_and_privacy_on_a_real_network() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, bundles, net) = up_dev_network(tmp.path(), 1);

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
    let bundle = first_bundle(&bundles);
    let total = bundle.resources.len();
    assert_eq!(summary["resources_created"], total as u64, "{summary}");
    assert_eq!(summary["resources_failed"], 0, "{summary}");
    assert_eq!(summary["patients_registered"], 1, "{summary}");
    settle(&dir).await;

    // A record read back byte-exact by the custodian's doctor (audited two-step read), its
    // on-chain hash the SHA-256 of its bytes.
    let doctor = connect_as(&dir, Some("org1-doctor")).await.unwrap();
    let doctor = EhrClient::new(doctor.gateway.network("ehr").contract("ehr"));
    let record = &bundle.resources[1];
    let patient = common::ledger_patient(&dir, &bundle.patient_id);
    let ledger_record = common::ledger_record(&dir, &bundle.patient_id, &record.record_id);
    let meta = doctor
        .record_metadata(&patient, &ledger_record)
        .await
        .unwrap();
    assert_eq!(meta.sha256, record.sha256);
    let read = doctor
        .read_record(&patient, &ledger_record, Purpose::Treatment)
        .await
        .unwrap();
    assert!(read.bytes == record.bytes, "{} differs", record.record_id);
    drop(doctor);

    // A second `up` finds the governance founded and changes nothing.
    let config = tmp.path().join("dev.yaml");
    let again = medledger(
        &["network", "up", "--config", config.to_str().unwrap()],
        &dir,
        &bundles,
    );
    assert!(
        again.contains("EHR governance of chaincode ehr: already founded"),
        "{again}"
    );

    // Org3 joins the channel (`org add`, both admins sign). Its emergency doctor holds a
    // certificate with `ehr.emergency` from its own CA, which alone grants nothing: denied
    // until the EHR governance admits Org3 and a majority approves its authority.
    let ports = medledger_devnet::orderers::free_ports("127.0.0.1", 2).unwrap();
    let org3 = tmp.path().join("org3.yaml");
    std::fs::write(
        &org3,
        format!(
            "name: org3\nmsp_id: Org3MSP\ndomain: org3.test\ndescription: clinic\npeers:\n  - {{ name: peer0, host: 127.0.0.1, port: {}, operations_port: {} }}\n",
            ports[0], ports[1]
        ),
    )
    .unwrap();
    let added = medledger(
        &["org", "add", "--config", org3.to_str().unwrap()],
        &dir,
        &bundles,
    );
    assert!(added.contains("Org3MSP joined the channel"), "{added}");
    settle(&dir).await;
    let org3_emergency = client(&dir, "org3-emergency").await;
    let m = break_glass_denied(&org3_emergency, &patient).await;
    assert!(
        m.contains("Org3MSP holds no break-glass authority") && m.contains("0 of 2"),
        "{m}"
    );
    let (org1_admin, org2_admin, org3_admin) = (
        client(&dir, "org1-admin").await,
        client(&dir, "org2-admin").await,
        client(&dir, "org3-admin").await,
    );
    let joined = org3_admin.join_governance(None).await.unwrap();
    assert_eq!(joined.status, JoinStatus::Requested);
    for founder in [&org1_admin, &org2_admin] {
        settle(&dir).await;
        founder.admit_member("Org3MSP").await.unwrap();
    }
    settle(&dir).await;
    // Its own approval is 1 of 3: still denied.
    org3_admin
        .approve_role_authority("Org3MSP", AuthorityRole::Emergency)
        .await
        .unwrap();
    settle(&dir).await;
    let m = break_glass_denied(&org3_emergency, &patient).await;
    assert!(m.contains("1 of 3"), "{m}");
    // Org1's makes a majority: the window opens and the record reads back byte-exact.
    org1_admin
        .approve_role_authority("Org3MSP", AuthorityRole::Emergency)
        .await
        .unwrap();
    settle(&dir).await;
    let (_, read) = org3_emergency
        .emergency_read(
            &patient,
            &ledger_record,
            EmergencyReason::EmergencyTreatment,
            None,
        )
        .await
        .unwrap();
    assert!(read.bytes == record.bytes, "the emergency read differs");
    drop((org1_admin, org2_admin, org3_admin, org3_emergency));
    settle(&dir).await;

    // Both peers agree: stop the network, open both ledgers, compare.
    medledger(&["network", "down"], &dir, &bundles);
    let open = |name: &str| common::open_ledger(&dir, name).info();
    let (a, b) = (open("peer0.org1"), open("peer0.org2"));
    assert!(a.height > 3);
    assert_eq!(a, b, "the peers' chains and commit hashes differ");

    // No PHI, patient name or identifier in a block or in any node's log file; no Patient.id
    // and no resource id in a block or in any byte of the orderers' or the non-custodian
    // peer's files: data directories (block stores, WALs, RocksDB files) and log files
    // (issue 13 item 10, ADR 0031).
    let org2 = common::open_ledger(&dir, "peer0.org2");
    let blocks: Vec<(String, Vec<u8>)> = (0..b.height)
        .map(|n| {
            let block = org2.block(n).unwrap().unwrap();
            (format!("block {n}"), prost::Message::encode_to_vec(&block))
        })
        .collect();
    drop(org2);
    let read = |f: &PathBuf| (f.display().to_string(), std::fs::read(f).unwrap());
    let logs: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(logs.len() >= 6, "{logs:?}");
    let not_custodian = |p: &Path| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with("orderer") || name.starts_with("peer0.org2")
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir.join("nodes")).unwrap() {
        let node = entry.unwrap().path();
        if not_custodian(&node) {
            files.extend(common::files_under(&node));
        }
    }
    files.extend(logs.iter().filter(|l| not_custodian(l)).cloned());
    assert!(files.len() > 20, "{files:?}");
    let logs: Vec<(String, Vec<u8>)> = logs.iter().map(read).collect();
    let files: Vec<(String, Vec<u8>)> = files.iter().map(read).collect();
    let mut phi: Vec<Vec<u8>> = bundle
        .resources
        .iter()
        .take(5)
        .map(|r| r.bytes.clone())
        .collect();
    let names = bundle.patient_identifiers();
    assert!(names.len() >= 3, "{} names and identifiers", names.len());
    phi.extend(names.into_iter().map(String::into_bytes));
    let mut ids: Vec<Vec<u8>> = vec![bundle.patient_id.clone().into_bytes()];
    ids.extend(
        bundle
            .resources
            .iter()
            .map(|r| r.record_id.split_once('/').unwrap().1.as_bytes().to_vec()),
    );
    for (needles, hays) in [
        (&phi, blocks.iter().chain(&logs)),
        (&ids, blocks.iter().chain(&files)),
    ] {
        for (what, hay) in hays {
            for needle in needles {
                assert!(
                    !hay.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "patient data or an id is in {what}"
                );
            }
        }
    }

    // `ledger verify` replays both peers' chains: sound, and the custodian's private data
    // matches the on-chain hashes.
    let org1_verified = medledger(
        &["ledger", "verify", "--node", "peer0.org1"],
        &dir,
        &bundles,
    );
    assert!(org1_verified.contains(": OK"), "{org1_verified}");
    // Every record, the organization's pseudonym key (ADR 0031) and one locator per distinct
    // FHIR resource with a patient reference (issue 16: a record found by its FHIR id).
    let locators: std::collections::BTreeSet<&str> = bundle
        .resources
        .iter()
        .map(|r| r.record_id.as_str())
        .filter(|id| !id.starts_with("Organization/") && !id.starts_with("Practitioner/"))
        .collect();
    assert!(
        org1_verified.contains(&format!(
            "{} private values match",
            total + 1 + locators.len()
        )),
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
