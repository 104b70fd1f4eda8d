//! The EHR client library against the real EHR chaincode on the whole-network harness
//! (`medledger-harness`, ADR 0037), in process but over the real path: the client SDK talks
//! gRPC (in-memory streams) to Org1's real `GatewayService`, which plans endorsements from the
//! chaincode definition (channel MAJORITY, one PHI collection per organization), gets them from
//! both organizations' endorsers (each simulating `ehr_chaincode::contract()` over its own
//! RocksDB ledger) and submits to f + 1 of the 4 real BFT orderers; every peer pulls the
//! decided blocks and its committer validates them (signatures, endorsement policies: channel
//! MAJORITY, the custodian's key-level and collection policies, MVCC) and commits them with
//! the custodian's private data. Virtual time advances while there is work: no sleeps.
//!
//! Three real Synthea patients are imported in chunks of at most 32 KiB; every resource is
//! created, read back through the audited two-step read byte for byte, and a second import
//! skips everything. Then history, consent, audit, erasure and break-glass through the typed
//! calls.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use ehr_chaincode::ids::{Grantee, PseudonymKey};
use ehr_chaincode::model::{ConsentStatus, EmergencyReason, Purpose, RecordStatus};
use ehr_chaincode::state_machine::AccessState;
use ehr_client::bundle::{bundle_files, chunk_resources, read_bundle};
use ehr_client::{ConsentGrant, EhrClientError, ImportOptions, ImportProgress, import};
use futures::StreamExt;
use medledger_harness::Harness;

use crate::common::{client, sample_dir};

/// The three smallest sample bundles (135-149 kB, 299 resources).
const PATIENTS: [&str; 3] = [
    "fcece34f-2e51-43b5-acb0-361c3472e679",
    "53ead9ff-9ae0-432f-a314-017550d0420c",
    "68eec23c-3211-4eba-a28b-c26a2f7f49c4",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_read_back_reimport_and_everyday_operations() {
    let net = Harness::builder().orgs(2).build().unwrap().serve().unwrap();
    let importer = net.client(0, "importer", &[("ehr.role", "admin")]).unwrap();
    // Org1's pseudonym key (ADR 0031): the patient's certificate names its ledger id.
    let key = PseudonymKey::from_bytes(&[0x42; 32]).unwrap();
    let ledger_patient = key.patient(PATIENTS[0]);
    let patient_identity = net
        .client(
            0,
            "patient0",
            &[("ehr.role", "patient"), ("ehr.patient_id", &ledger_patient)],
        )
        .unwrap();
    let admin = client(&net, 0, importer);
    let set = admin.set_pseudonym_key(&key).await.unwrap();
    assert!(set.set);
    // Idempotent with the same key; another key is refused (every ledger id depends on it).
    assert!(!admin.set_pseudonym_key(&key).await.unwrap().set);
    let other = PseudonymKey::from_bytes(&[0x43; 32]).unwrap();
    let err = admin.set_pseudonym_key(&other).await.unwrap_err();
    assert!(
        matches!(err, EhrClientError::Chaincode { status: 409, .. }),
        "{err}"
    );
    let record_of =
        |patient: &str, record: &str| key.record(patient, &record.parse().unwrap()).to_string();

    let dir = sample_dir();
    let files: Vec<PathBuf> = PATIENTS
        .iter()
        .map(|p| dir.join(format!("{p}.json")))
        .collect();
    assert_eq!(bundle_files(&files).unwrap(), files);
    let bundles: Vec<_> = files
        .iter()
        .map(|f| read_bundle(&std::fs::read(f).unwrap()).unwrap())
        .collect();
    let total: u64 = bundles.iter().map(|b| b.resources.len() as u64).sum();
    assert_eq!(total, 299, "the three bundles hold 299 resources");

    // First import: small chunks, so every bundle takes several proposals.
    let options = ImportOptions {
        max_chunk_bytes: 32 << 10,
        ..ImportOptions::default()
    };
    let last = Mutex::new(ImportProgress::default());
    let on_progress = |p: &ImportProgress| *last.lock().unwrap() = *p;
    let summary = import(&admin, &files, &options, &on_progress)
        .await
        .unwrap();
    assert!(summary.is_complete(), "{summary}");
    assert_eq!(summary.bundles, 3);
    assert_eq!(summary.patients_registered, 3);
    assert_eq!(summary.resources_created, total, "{summary}");
    assert_eq!(summary.resources_skipped, 0);
    // 3 registrations + per chunk a reservation and a create; each bundle took several.
    let chunks: Vec<usize> = bundles
        .iter()
        .map(|b| {
            let refs: Vec<_> = b.resources.iter().collect();
            chunk_resources(&refs, options.max_chunk_bytes, options.max_chunk_entries)
                .unwrap()
                .len()
        })
        .collect();
    assert!(chunks.iter().all(|&n| n >= 3), "{chunks:?}");
    let chunks: u64 = chunks.iter().sum::<usize>() as u64;
    assert_eq!(summary.transactions, 3 + 2 * chunks, "{summary}");
    let progress = *last.lock().unwrap();
    assert_eq!(
        (
            progress.bundles_done,
            progress.resources_seen,
            progress.resources_done
        ),
        (3, total, total)
    );

    // Every record on the ledger with the SHA-256 of the file's bytes, and every record read
    // back through RequestRecordAccess + ReadRecord byte for byte.
    for b in &bundles {
        let patient = key.patient(&b.patient_id);
        let stored = admin.all_records(&patient).await.unwrap();
        assert_eq!(stored.len(), b.resources.len());
        let by_id: BTreeMap<&str, _> = stored.iter().map(|m| (m.record_id.as_str(), m)).collect();
        for r in &b.resources {
            let m = by_id[record_of(&b.patient_id, &r.record_id).as_str()];
            assert_eq!((m.status, m.version), (RecordStatus::Active, 1));
            assert_eq!(m.sha256, r.sha256);
        }
        let reads = futures::stream::iter(&b.resources)
            .map(|r| {
                let (admin, patient) = (&admin, &patient);
                let record = record_of(&b.patient_id, &r.record_id);
                async move {
                    let read = admin
                        .read_record(patient, &record, Purpose::Treatment)
                        .await
                        .unwrap();
                    (r, read)
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        for (r, read) in reads {
            assert!(read.bytes == r.bytes, "{} differs", r.record_id);
        }
    }

    // A second import finds everything on the ledger.
    let again = import(&admin, &files, &ImportOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(again.is_complete(), "{again}");
    assert_eq!(
        (
            again.patients_registered,
            again.patients_skipped,
            again.resources_created,
            again.resources_skipped,
            again.transactions
        ),
        (0, 3, 0, total, 0),
        "{again}"
    );

    // History: reserved (version 0), then created (version 1), newest first.
    let patient_id = ledger_patient.as_str();
    let record_id = record_of(
        PATIENTS[0],
        &bundles[0]
            .resources
            .iter()
            .find(|r| r.resource_type == "Observation")
            .unwrap()
            .record_id,
    );
    // The same ids through the chaincode's LedgerIds, as the custodian's staff and as the
    // patient (who knows its own Patient.id).
    let clear = bundles[0].resources[0].record_id.clone();
    let ids = admin
        .ledger_ids(None, PATIENTS[0], &[&clear])
        .await
        .unwrap();
    assert_eq!((ids.patient.as_str(), ids.records.len()), (patient_id, 1));
    assert_eq!(ids.records[0], record_of(PATIENTS[0], &clear));
    let history = admin.record_history(patient_id, &record_id).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|h| h.version).collect();
    assert_eq!(versions, [1, 0]);

    // The patient: consent to Org2 granted, listed, revoked; the audit trail shows the
    // custodian's reads; erasure requested.
    let patient = client(&net, 0, patient_identity);
    assert_eq!(
        patient.resolve_patient(PATIENTS[0], None).await.unwrap(),
        patient_id
    );
    // Another patient's Patient.id does not translate for this patient.
    let err = patient
        .resolve_patient(PATIENTS[1], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EhrClientError::Chaincode { status: 403, .. }),
        "{err}"
    );
    let grant = patient
        .grant_consent(&ConsentGrant {
            patient_id: patient_id.into(),
            grantee: Grantee::Org("Org2MSP".into()),
            resource_types: vec!["Observation".into()],
            purposes: vec![Purpose::Treatment],
            valid_for_s: 3600,
        })
        .await
        .unwrap();
    assert_eq!(grant.state, AccessState::Authorized);
    let consents = patient.list_consents(patient_id, 50, "").await.unwrap();
    assert_eq!(consents.items.len(), 1);
    assert_eq!(consents.items[0].consent_id, grant.consent_id);
    let revoked = patient
        .revoke_consent(patient_id, &grant.consent_id)
        .await
        .unwrap();
    assert_eq!(revoked.status, ConsentStatus::Inactive);
    let audit = patient.audit_entries(patient_id, 200, "").await.unwrap();
    let summary = audit.summary.unwrap();
    assert_eq!(summary.total, bundles[0].resources.len() as u64);
    assert_eq!(summary.granted, summary.total);

    // Erasure: requested by the patient, purged by the custodian's admin (Org2's peer
    // endorses the blind purge of Org1's collection: hashes only). The hash stays on the
    // ledger; the PHI is gone (410).
    let erasure = patient
        .request_erasure(patient_id, &record_id)
        .await
        .unwrap();
    assert_eq!(erasure.record_id, record_id);
    let purged = admin.purge_record(patient_id, &record_id).await.unwrap();
    assert_eq!(purged.status, RecordStatus::Purged);
    let gone = admin
        .read_record(patient_id, &record_id, Purpose::Treatment)
        .await
        .unwrap_err();
    assert!(
        matches!(gone, EhrClientError::Chaincode { status: 410, .. }),
        "{gone}"
    );

    // Break-glass needs the emergency attribute: the admin is refused (403), nothing leaks.
    let err = admin
        .emergency_read(patient_id, &record_id, EmergencyReason::BreakTheGlass, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EhrClientError::Chaincode { status: 403, .. }),
        "{err}"
    );
    net.stop().unwrap();
}
