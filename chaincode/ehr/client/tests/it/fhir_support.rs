//! The client calls the FHIR API builds on (issue 16), on the whole-network harness with a
//! real Synthea patient imported as `ehr import` does: reads pinned to a version (G2),
//! updates with an expected version (G3), locating records by FHIR id (G4), the bulk audited
//! read (G1) and one consent by id (G5).

use std::collections::HashMap;

use ehr_chaincode::ids::Grantee;
use ehr_chaincode::model::{AccessKind, ConsentStatus, Decision, Purpose};
use ehr_client::bundle::BundleResource;
use ehr_client::{ConsentGrant, LedgerPatient, RecordsQuery};
use medledger_harness::Harness;

use crate::common::{client, dev_network, first_of, first_record, height};

/// Org1 (the custodian), Org2.
const ORG1: usize = 0;
const ORG2: usize = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_api_calls_on_the_harness() {
    let net = Harness::builder().orgs(2).build().unwrap().serve().unwrap();
    let dev = dev_network(&net).await;
    let (patient_id, observation, record_id) = first_record(&dev, "Observation");
    let admin = &dev.admin;
    let doctor = client(
        &net,
        ORG1,
        net.client(ORG1, "org1-doctor", &[("ehr.role", "doctor")])
            .unwrap(),
    );

    // ---- G2: a grant answers and pins the version; the read carries it ----
    let read = doctor
        .read_record(&patient_id, &record_id, Purpose::Treatment)
        .await
        .unwrap();
    assert!(read.bytes == observation.bytes);
    assert_eq!(read.version, 1);
    assert_eq!(read.sha256, observation.sha256);
    let meta = admin
        .record_metadata(&patient_id, &record_id)
        .await
        .unwrap();
    assert_eq!(read.updated_at_ms, meta.updated_at_ms);
    let researcher = client(
        &net,
        ORG1,
        net.client(ORG1, "org1-researcher", &[("ehr.role", "researcher")])
            .unwrap(),
    );
    let denied = researcher
        .request_record_access(&patient_id, &record_id, Purpose::Research)
        .await
        .unwrap();
    assert_eq!(denied.decision, Decision::Denied);
    assert!(denied.version.is_none() && denied.sha256.is_none());

    // ---- G3: an update with the expected version; a stale one is refused with 412 ----
    let amended = String::from_utf8(observation.bytes.clone())
        .unwrap()
        .replacen("\"final\"", "\"amended\"", 1)
        .into_bytes();
    assert_ne!(amended, observation.bytes);
    let patient = LedgerPatient {
        patient_id: dev.bundle.patient_id.clone(),
        ledger_id: patient_id.clone(),
    };
    let committed = admin
        .update_record(&patient, "Org1MSP", &amended, Some(1))
        .await
        .unwrap();
    let written: serde_json::Value = serde_json::from_slice(&committed.payload).unwrap();
    assert_eq!(written["version"], 2);
    let before = height(&net);
    let err = admin
        .update_record(&patient, "Org1MSP", &observation.bytes, Some(1))
        .await
        .unwrap_err();
    assert_eq!(err.chaincode_status(), Some(412), "{err}");
    assert_eq!(height(&net), before, "a refused update orders nothing");
    // The access granted at version 1 no longer reads: the record moved (409).
    let err = doctor
        .read_record_with(&patient_id, &read.access_id, "Org1MSP")
        .await
        .unwrap_err();
    assert_eq!(err.chaincode_status(), Some(409), "{err}");
    let read = doctor
        .read_record(&patient_id, &record_id, Purpose::Treatment)
        .await
        .unwrap();
    assert_eq!((read.version, read.bytes.clone()), (2, amended.clone()));

    // ---- G4: records found by FHIR id alone ----
    let condition = first_of(&dev.bundle, "Condition");
    let asked = [
        observation.record_id.as_str(),
        condition.record_id.as_str(),
        "Observation/never-created",
    ];
    let found = admin.locate_records(None, &asked).await.unwrap();
    let located = found[0].as_ref().unwrap();
    assert_eq!(
        (
            located.record.as_str(),
            located.patient.as_str(),
            located.record_id.as_str()
        ),
        (asked[0], patient_id.as_str(), record_id.as_str())
    );
    assert!(found[1].is_some() && found[2].is_none());
    // A doctor of Org2 without a consent learns nothing; a researcher may not ask.
    let org2_doctor = client(
        &net,
        ORG2,
        net.client(ORG2, "org2-doctor", &[("ehr.role", "doctor")])
            .unwrap(),
    );
    let found = org2_doctor
        .locate_records(Some("Org1MSP"), &asked)
        .await
        .unwrap();
    assert!(found.iter().all(Option::is_none));
    let err = researcher.locate_records(None, &asked).await.unwrap_err();
    assert_eq!(err.chaincode_status(), Some(403), "{err}");

    // ---- G1: the bulk audited read ----
    // Without a consent Org2's doctor is denied, and the denial is audited.
    let query = RecordsQuery::default();
    let denied = org2_doctor
        .request_records_access(&patient_id, Purpose::Treatment, &query)
        .await
        .unwrap();
    assert_eq!(denied.decision, Decision::Denied);
    assert!(denied.records.is_empty());
    // The patient consents to Org2 for Observations: its doctor lists and reads those only.
    let patient = client(
        &net,
        ORG1,
        net.client(
            ORG1,
            "patient-fhir",
            &[("ehr.role", "patient"), ("ehr.patient_id", &patient_id)],
        )
        .unwrap(),
    );
    let audited = patient.audit_entries(&patient_id, 200, "").await.unwrap();
    assert!(
        audited
            .entries
            .iter()
            .any(|e| e.access_id == denied.access_id
                && e.kind == AccessKind::SearchAccess
                && e.decision == Decision::Denied)
    );
    let granted = patient
        .grant_consent(&ConsentGrant {
            patient_id: patient_id.clone(),
            grantee: Grantee::Org("Org2MSP".into()),
            resource_types: vec!["Observation".into()],
            purposes: vec![Purpose::Treatment],
            valid_for_s: 3600,
        })
        .await
        .unwrap();
    // ---- G5: one consent by id ----
    let consent = patient
        .get_consent(&patient_id, &granted.consent_id)
        .await
        .unwrap();
    assert_eq!(consent.consent_id, granted.consent_id);
    assert_eq!(consent.grantee, Grantee::Org("Org2MSP".into()));
    assert_eq!(consent.status, ConsentStatus::Active);
    let err = org2_doctor
        .get_consent(&patient_id, &granted.consent_id)
        .await
        .unwrap_err();
    assert_eq!(err.chaincode_status(), Some(403), "{err}");
    let by_ledger_id: HashMap<String, &BundleResource> = dev
        .bundle
        .resources
        .iter()
        .map(|r| {
            (
                dev.key
                    .record(&dev.bundle.patient_id, &r.record_id.parse().unwrap())
                    .to_string(),
                r,
            )
        })
        .collect();
    let observations = dev
        .bundle
        .resources
        .iter()
        .filter(|r| r.resource_type == "Observation")
        .count();
    let (mut listed, mut read_bytes, mut bookmark) = (0, 0, String::new());
    loop {
        let page = org2_doctor
            .request_records_access(
                &patient_id,
                Purpose::Treatment,
                &RecordsQuery {
                    page_size: Some(200),
                    bookmark: Some(bookmark.clone()),
                    ..RecordsQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.decision, Decision::Granted);
        assert!(
            page.records
                .iter()
                .all(|r| r.record_id.starts_with("Observation/"))
        );
        let read = org2_doctor
            .read_records(&patient_id, &page.access_id, "Org1MSP")
            .await
            .unwrap();
        assert_eq!(read.len(), page.records.len());
        for (granted, got) in page.records.iter().zip(&read) {
            assert_eq!(granted.record_id, got.record_id);
            let expected = if got.record_id == record_id {
                &amended
            } else {
                &by_ledger_id[&got.record_id].bytes
            };
            assert!(got.bytes == *expected, "{} not byte-exact", got.record_id);
            read_bytes += got.bytes.len();
        }
        listed += page.records.len();
        bookmark = page.bookmark;
        if bookmark.is_empty() {
            break;
        }
    }
    assert_eq!(listed, observations);
    // No PHI in any block: the submitted searches answered ids and metadata only.
    let blocks = net
        .with(|h| {
            let l = h.ledger(ORG1, 0).unwrap();
            (0..l.height())
                .map(|n| prost::Message::encode_to_vec(&l.block(n).unwrap().unwrap()))
                .collect::<Vec<Vec<u8>>>()
        })
        .unwrap();
    for r in dev
        .bundle
        .resources
        .iter()
        .filter(|r| r.resource_type == "Observation")
    {
        for b in &blocks {
            assert!(
                !b.windows(r.bytes.len()).any(|w| w == r.bytes.as_slice()),
                "{}",
                r.record_id
            );
        }
    }
    assert!(read_bytes > 0);
}
