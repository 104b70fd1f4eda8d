//! The EHR scenario of issue 7 through real peers, sandboxed chaincode, the gateway and BFT
//! ordering (`medledger network up`, dev topology, TLS): Org2's doctor without consent is
//! refused and audited; break-glass by Org2's emergency doctor works and is audited; the
//! patient grants Org2 Observations only → an Observation is read, a Condition refused
//! (Violation → Suspended); re-grant → Authorized; revoke → refused; two violations →
//! Blocked; the gateway refuses to submit ReadRecord; erasure purges the PHI from the custodian's store while the hash stays on chain;
//! the patient's name and identifiers appear in no block, public state, lab store or log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use ehr_chaincode::ids::Grantee;
use ehr_chaincode::model::{EmergencyReason, Purpose};
use ehr_client::{ConsentGrant, EhrClient, EhrClientError};
use medledger_devnet::client::connect_as;

use crate::common;

use common::{first_bundle, import_and_settle, medledger_with, settle, up_dev_network};

fn medledger(args: &[&str], dir: &Path, bundles: &Path) -> String {
    medledger_with(args, dir, &[("MEDLEDGER_EHR_BUNDLES", bundles)])
}

async fn client(dir: &Path, name: &str) -> EhrClient {
    let c = connect_as(dir, Some(name)).await.unwrap();
    EhrClient::new(c.gateway.network("ehr").contract("ehr"))
}

async fn state(dir: &Path, c: &EhrClient, patient: &str) -> String {
    settle(dir).await;
    let raw = c
        .contract()
        .evaluate_transaction("GetAccessState", &[patient, "org:Org2MSP"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["state"].as_str().unwrap().to_owned()
}

async fn read_as(
    dir: &Path,
    who: &EhrClient,
    patient: &str,
    record: &str,
) -> Result<ehr_client::RecordRead, EhrClientError> {
    settle(dir).await;
    who.read_record(patient, record, Purpose::Treatment).await
}

fn denied<T: std::fmt::Debug>(r: Result<T, EhrClientError>) -> bool {
    matches!(r, Err(EhrClientError::AccessDenied { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_state_machine_break_glass_erasure_and_privacy_on_a_real_network() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, bundles, net) = up_dev_network(tmp.path(), 1);
    import_and_settle(&dir, &bundles).await;
    let bundle = first_bundle(&bundles);
    // The ledger names the patient and its records by Org1's keyed hashes (ADR 0031).
    let clear = bundle.patient_id.clone();
    let p = common::ledger_patient(&dir, &clear);
    let of = |t: &str| {
        bundle
            .resources
            .iter()
            .find(|r| r.resource_type == t)
            .unwrap()
            .clone()
    };
    let (obs, cond) = (of("Observation"), of("Condition"));
    let obs_id = common::ledger_record(&dir, &clear, &obs.record_id);
    let cond_id = common::ledger_record(&dir, &clear, &cond.record_id);

    let org2 = client(&dir, "org2-doctor").await;
    let patient = client(&dir, &format!("patient:{clear}")).await;
    let grant = |types: Vec<String>| ConsentGrant {
        patient_id: p.clone(),
        grantee: Grantee::Org("Org2MSP".into()),
        resource_types: types,
        purposes: vec![Purpose::Treatment],
        valid_for_s: 3600,
    };

    // 1. No consent: refused, audited; no relation.
    assert!(denied(read_as(&dir, &org2, &p, &obs_id).await));
    assert_eq!(state(&dir, &patient, &p).await, "NoRelation");

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
    let er = client(&dir, "org2-emergency").await;
    settle(&dir).await;
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
    assert_eq!(state(&dir, &patient, &p).await, "Authorized");
    assert!(read_as(&dir, &org2, &p, &obs_id).await.unwrap().bytes == obs.bytes);
    assert!(denied(read_as(&dir, &org2, &p, &cond_id).await));
    assert_eq!(state(&dir, &patient, &p).await, "Suspended");

    // 4. Re-grant: Authorized (Permission); revoke both consents: refused.
    let c2 = patient
        .grant_consent(&grant(vec!["Observation".into()]))
        .await
        .unwrap();
    assert_eq!(state(&dir, &patient, &p).await, "Authorized");
    assert!(read_as(&dir, &org2, &p, &obs_id).await.unwrap().bytes == obs.bytes);
    for c in [&c1, &c2] {
        patient.revoke_consent(&p, &c.consent_id).await.unwrap();
    }
    assert!(denied(read_as(&dir, &org2, &p, &obs_id).await));

    // 5. Re-grant, then two violations: Blocked, and every request is refused.
    patient
        .grant_consent(&grant(vec!["Observation".into()]))
        .await
        .unwrap();
    assert_eq!(state(&dir, &patient, &p).await, "Authorized");
    assert!(denied(read_as(&dir, &org2, &p, &cond_id).await));
    assert_eq!(state(&dir, &patient, &p).await, "Suspended");
    let second = read_as(&dir, &org2, &p, &cond_id).await;
    assert!(second.is_err(), "{second:?}");
    assert_eq!(state(&dir, &patient, &p).await, "Blocked");
    assert!(read_as(&dir, &org2, &p, &obs_id).await.is_err());

    // 6. The patient's audit shows the refusals, the reads and the break-glass.
    settle(&dir).await;
    let audit = patient.audit_entries(&p, 200, "").await.unwrap();
    let summary = audit.summary.unwrap();
    assert!(summary.emergency >= 2, "{summary:?}");
    assert!(summary.denied >= 4, "{summary:?}");

    // 7. Erasure: requested by the patient, purged by the custodian's admin.
    patient.request_erasure(&p, &obs_id).await.unwrap();
    settle(&dir).await;
    let admin = client(&dir, "org1-admin").await;
    let purged = admin.purge_record(&p, &obs_id).await.unwrap();
    assert_eq!(purged.sha256, obs.sha256, "the hash stays on the ledger");

    // 8. On disk: the custodian's store lost the PHI; no name or identifier anywhere public,
    //    in the lab's store, or in any log.
    drop((org2, patient, er, admin));
    medledger(&["network", "down"], &dir, &bundles);
    let open = |node: &str| common::open_ledger(&dir, node);
    let (org1_ledger, org2_ledger) = (open("peer0.org1"), open("peer0.org2"));
    let key = |r: &str| {
        let id: ehr_chaincode::ids::RecordId = r.parse().unwrap();
        ehr_chaincode::ids::record_key(&p, &id).unwrap()
    };
    assert!(
        org1_ledger
            .get_private("ehr", "Org1MSPPHI", &key(&obs_id))
            .unwrap()
            .is_none()
    );
    assert!(
        org1_ledger
            .get_private("ehr", "Org1MSPPHI", &key(&cond_id))
            .unwrap()
            .is_some()
    );

    let patient_json: serde_json::Value = serde_json::from_slice(
        &bundle
            .resources
            .iter()
            .find(|r| r.resource_type == "Patient")
            .unwrap()
            .bytes,
    )
    .unwrap();
    let mut needles: Vec<String> = Vec::new();
    for name in patient_json["name"].as_array().unwrap() {
        needles.push(name["family"].as_str().unwrap().to_owned());
        for g in name["given"].as_array().unwrap() {
            needles.push(g.as_str().unwrap().to_owned());
        }
    }
    for ident in patient_json["identifier"].as_array().unwrap() {
        let v = ident["value"].as_str().unwrap();
        if v != p {
            needles.push(v.to_owned());
        }
    }
    assert!(needles.len() >= 3, "{needles:?}");
    let mut hays: Vec<(String, Vec<u8>)> = Vec::new();
    for (who, ledger) in [("org1", &org1_ledger), ("org2", &org2_ledger)] {
        for n in 0..ledger.height() {
            let b = ledger.block(n).unwrap().unwrap();
            hays.push((
                format!("{who} block {n}"),
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
        hays.push((format!("{who} public state"), state));
    }
    for e in std::fs::read_dir(dir.join("logs")).unwrap() {
        let path = e.unwrap().path();
        hays.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    for needle in &needles {
        for (what, hay) in &hays {
            assert!(
                !hay.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a patient name or identifier is in {what}"
            );
        }
        assert!(
            org2_ledger
                .get_private("ehr", "Org1MSPPHI", &key(&cond_id))
                .unwrap()
                .is_none()
        );
    }
    drop((org1_ledger, org2_ledger));
    medledger(&["network", "down", "--purge"], &dir, &bundles);
    drop(net);
}
