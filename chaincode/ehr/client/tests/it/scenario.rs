//! The EHR scenario of issue 7 on the whole-network harness (ADR 0037): two organizations
//! (Org1 the custodian, Org2 the lab) with the real Gateway service each, 4 BFT orderers,
//! the real EHR chaincode, virtual time (no sleeps). A real Synthea patient is imported
//! (`ehr_client::import`, the library under `medledger ehr import`) and governance founded
//! by both organizations' MSP admins (`ehr_client::seed_governance`, as `network up`), then: Org2's doctor
//! without consent is refused and audited; the gateway refuses to submit `ReadRecord`;
//! break-glass by Org2's emergency doctor works and is audited; the patient grants Org2
//! Observations only → an Observation is read, a Condition refused (Violation → Suspended);
//! re-grant → Authorized; revoke → refused; two violations → Blocked; erasure purges the PHI
//! from the custodian's store while the hash stays on chain; the patient's name and
//! identifiers appear in no block, no peer's public state, not in Org2's store (its private
//! data, its files on disk) and not in the in-process `tracing` output (nodes and clients, at
//! debug).
//!
//! Moved from `network/cli/tests/it/ehr_scenario_network.rs` (processes, issue 15 item 5):
//! the node log files of a process network stay covered by `ehr_network` there.

use ehr_chaincode::ids::{Grantee, RecordId, record_key};
use ehr_chaincode::model::{EmergencyReason, Purpose};
use ehr_client::{ConsentGrant, EhrClient, EhrClientError};
use medledger_harness::Harness;

use crate::common::{DevNetwork, client, dev_network, files_under, first_of};

/// Org1's gateway (the custodian), Org2's gateway (the lab).
const ORG1: usize = 0;
const ORG2: usize = 1;

use medledger_harness::captured_log;

/// The access state of Org2 on `patient`'s records (`GetAccessState`).
async fn state(c: &EhrClient, patient: &str) -> String {
    let raw = c
        .contract()
        .evaluate_transaction("GetAccessState", &[patient, "org:Org2MSP"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["state"].as_str().unwrap().to_owned()
}

fn denied<T: std::fmt::Debug>(r: Result<T, EhrClientError>) -> bool {
    matches!(r, Err(EhrClientError::AccessDenied { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_state_machine_break_glass_erasure_and_privacy() {
    let log = captured_log();
    let net = Harness::builder().orgs(2).build().unwrap().serve().unwrap();
    // The dev network's identities (`network/devnet`'s identities.yaml): `org1-admin`,
    // `org2-doctor`, `org2-emergency` (`ehr.emergency`), the patient naming its ledger id.
    // As `network up`: both organizations' MSP admins found the EHR governance, each
    // approving the other's break-glass authority (ADR 0029); Org1 imports a patient.
    let DevNetwork {
        admin, key, bundle, ..
    } = dev_network(&net).await;

    // The ledger names the patient and its records by Org1's keyed hashes (ADR 0031).
    let clear = bundle.patient_id.clone();
    let p = key.patient(&clear);
    let of = |t: &str| first_of(&bundle, t);
    let (obs, cond) = (of("Observation"), of("Condition"));
    let obs_id = key
        .record(&clear, &obs.record_id.parse().unwrap())
        .to_string();
    let cond_id = key
        .record(&clear, &cond.record_id.parse().unwrap())
        .to_string();

    let org2 = client(
        &net,
        ORG2,
        net.client(ORG2, "org2-doctor", &[("ehr.role", "doctor")])
            .unwrap(),
    );
    let patient = client(
        &net,
        ORG1,
        net.client(
            ORG1,
            &format!("patient-{p}"),
            &[("ehr.role", "patient"), ("ehr.patient_id", &p)],
        )
        .unwrap(),
    );
    let grant = |types: Vec<String>| ConsentGrant {
        patient_id: p.clone(),
        grantee: Grantee::Org("Org2MSP".into()),
        resource_types: types,
        purposes: vec![Purpose::Treatment],
        valid_for_s: 3600,
    };
    let read = |who: &EhrClient, record: &str| {
        let (who, p, record) = (who.clone(), p.clone(), record.to_owned());
        async move { who.read_record(&p, &record, Purpose::Treatment).await }
    };

    // 1. No consent: refused, audited; no relation.
    assert!(denied(read(&org2, &obs_id).await));
    assert_eq!(state(&patient, &p).await, "NoRelation");

    // The gateway never endorses ReadRecord for submission: its response (PHI) would go into
    // a block on every peer (dev.yaml's `evaluate_only`).
    let submitted = patient
        .contract()
        .new_proposal("ReadRecord")
        .args(&[&p, "any-access-id"])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap_err();
    assert!(
        matches!(&submitted, medledger_gateway::GatewayError::Status { code, .. } if *code == tonic::Code::FailedPrecondition),
        "{submitted}"
    );

    // 2. Break-glass by Org2's emergency doctor: the Condition, byte-exact.
    let er = client(
        &net,
        ORG2,
        net.client(
            ORG2,
            "org2-emergency",
            &[("ehr.role", "doctor"), ("ehr.emergency", "true")],
        )
        .unwrap(),
    );
    let (_, er_read) = er
        .emergency_read(&p, &cond_id, EmergencyReason::EmergencyTreatment, None)
        .await
        .unwrap();
    assert!(er_read.bytes == cond.bytes);

    // 3. Consent for Observations only: the Observation is read, the Condition refused
    //    (Violation → Suspended).
    let c1 = patient
        .grant_consent(&grant(vec!["Observation".into()]))
        .await
        .unwrap();
    assert_eq!(state(&patient, &p).await, "Authorized");
    assert!(read(&org2, &obs_id).await.unwrap().bytes == obs.bytes);
    assert!(denied(read(&org2, &cond_id).await));
    assert_eq!(state(&patient, &p).await, "Suspended");

    // 4. Re-grant: Authorized (Permission); revoke both consents: refused.
    let c2 = patient
        .grant_consent(&grant(vec!["Observation".into()]))
        .await
        .unwrap();
    assert_eq!(state(&patient, &p).await, "Authorized");
    assert!(read(&org2, &obs_id).await.unwrap().bytes == obs.bytes);
    for c in [&c1, &c2] {
        patient.revoke_consent(&p, &c.consent_id).await.unwrap();
    }
    assert!(denied(read(&org2, &obs_id).await));

    // 5. Re-grant, then two violations: Blocked, and every request is refused.
    patient
        .grant_consent(&grant(vec!["Observation".into()]))
        .await
        .unwrap();
    assert_eq!(state(&patient, &p).await, "Authorized");
    assert!(denied(read(&org2, &cond_id).await));
    assert_eq!(state(&patient, &p).await, "Suspended");
    let second = read(&org2, &cond_id).await;
    assert!(second.is_err(), "{second:?}");
    assert_eq!(state(&patient, &p).await, "Blocked");
    assert!(read(&org2, &obs_id).await.is_err());

    // 6. The patient's audit shows the refusals, the reads and the break-glass.
    let audit = patient.audit_entries(&p, 200, "").await.unwrap();
    let summary = audit.summary.unwrap();
    assert!(summary.emergency >= 2, "{summary:?}");
    assert!(summary.denied >= 4, "{summary:?}");

    // 7. Erasure: requested by the patient, purged by the custodian's admin.
    patient.request_erasure(&p, &obs_id).await.unwrap();
    let purged = admin.purge_record(&p, &obs_id).await.unwrap();
    assert_eq!(purged.sha256, obs.sha256, "the hash stays on the ledger");

    // 8. The custodian's store lost the PHI; no name or identifier anywhere public (every
    //    peer's blocks and world state), in the lab's store (its private data and every file
    //    of its peer) or in the in-process tracing output.
    let record_key_of = |r: &str| record_key(&p, &r.parse::<RecordId>().unwrap()).unwrap();
    let (obs_key, cond_key) = (record_key_of(&obs_id), record_key_of(&cond_id));
    let (custodian, lab_holds, mut hays) = net
        .with(move |h| {
            let org1 = h.ledger(ORG1, 0).unwrap();
            let custodian = (
                org1.get_private("ehr", "Org1MSPPHI", &obs_key)
                    .unwrap()
                    .is_some(),
                org1.get_private("ehr", "Org1MSPPHI", &cond_key)
                    .unwrap()
                    .is_some(),
            );
            let lab_holds = h
                .ledger(ORG2, 0)
                .unwrap()
                .get_private("ehr", "Org1MSPPHI", &cond_key)
                .unwrap()
                .is_some();
            let mut hays: Vec<(String, Vec<u8>)> = Vec::new();
            for (org, peer) in h.peers() {
                let ledger = h.ledger(org, peer).unwrap();
                for n in 0..ledger.height() {
                    let b = ledger.block(n).unwrap().unwrap();
                    hays.push((
                        format!("org{} block {n}", org + 1),
                        prost::Message::encode_to_vec(&b),
                    ));
                }
                let state: Vec<u8> = ledger
                    .state_range("ehr", "", "")
                    .unwrap()
                    .flat_map(|kv| {
                        let (k, v) = kv.unwrap();
                        [k.into_bytes(), v.value].concat()
                    })
                    .collect();
                hays.push((format!("org{} public state", org + 1), state));
            }
            for f in files_under(&h.peer_dir(ORG2, 0).unwrap()) {
                if let Ok(bytes) = std::fs::read(&f) {
                    hays.push((f.display().to_string(), bytes));
                }
            }
            (custodian, lab_holds, hays)
        })
        .unwrap();
    assert_eq!(
        custodian,
        (false, true),
        "(Observation, Condition) in Org1's PHI"
    );
    assert!(!lab_holds, "Org2 holds Org1's PHI");
    assert!(hays.len() > 10, "{}", hays.len());
    let log = log.lock().unwrap().clone();
    assert!(!log.is_empty(), "no tracing output captured");
    hays.push(("the in-process tracing output".into(), log));

    let needles = bundle.patient_identifiers();
    assert!(needles.len() >= 3, "{} needles", needles.len());
    for needle in &needles {
        for (what, hay) in &hays {
            assert!(
                !hay.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a patient name or identifier is in {what}"
            );
        }
    }
    drop((org2, patient, er, admin));
    net.stop().unwrap();
}
