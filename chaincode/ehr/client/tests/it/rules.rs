//! The EHR rules of issue 13 item 8 (ADR 0029) on the whole-network harness (ADR 0037), moved
//! from the process test `network/cli/tests/it/ehr_rules_network.rs` (issue 15 item 5):
//! three organizations (Org1 hospital, Org2 lab, Org3 clinic), 4 BFT orderers, the real
//! gateways, virtual time. Org1 and Org2 found the governance (as `network up`); Org3 is on
//! the channel but no member of the governance, as an organization that joined later (its
//! joining with `medledger org add` is `org_join_network`'s, a process test):
//!
//! - a patient id belongs to its custodian: Org2's admin registering Org1's patient is refused
//!   with the custodian named, Org1's retry gets its entry back (on 9fbe16c: 409 for both);
//!   and (ADR 0031) Org2 cannot learn Org1's ledger id of a `Patient.id` it knows, while its
//!   own key gives an unrelated one;
//! - Blocked follows the person: Org2's doctor, blocked by two violations of an identity
//!   consent, re-enrolls at Org2's CA and is still refused (on 9fbe16c the new certificate
//!   started from NoRelation);
//! - `ShareRecord` copies only under an organization consent of that type and purpose, only
//!   into the custodian's share collection with the grantee, and the grantee's own peer serves
//!   the copy, which it did not endorse: it reconciles it from Org1's peer (on 9fbe16c:
//!   identity and other-purpose consents were accepted, any named collection was written);
//! - break-glass and auditor authority: Org3's `ehr.emergency` doctor and auditor are refused
//!   until the members admit Org3 and a majority of them approve it (on 9fbe16c both acted on
//!   every patient), while the founding organizations' authority keeps working.
//!
//! Every refusal is a chaincode error that names no patient data, adds no block, and leaves
//! the patient's audit trail as it was — except a refused break-glass, which the patient must
//! see: it is a denied entry of the audit trail (on 8c73202 it left no trace).

use ehr_chaincode::ids::{Grantee, PseudonymKey, RecordId, record_key};
use ehr_chaincode::model::{AuthorityRole, Decision, EmergencyReason, JoinStatus, Purpose};
use ehr_client::{ConsentGrant, EhrClient, EhrClientError};
use medledger_harness::{Harness, Served};

use crate::common::{DevNetwork, client, dev_network, first_of, height};

/// Org1 (hospital, custodian), Org2 (lab), Org3 (clinic, not a founder).
const ORG1: usize = 0;
const ORG2: usize = 1;
const ORG3: usize = 2;

/// An EHR client of a new identity of organization `org` (NodeOU client) with `attrs`.
fn enrolled(net: &Served, org: usize, name: &str, attrs: &[(&str, &str)]) -> EhrClient {
    client(net, org, net.client(org, name, attrs).unwrap())
}

/// The chaincode's refusal of `r`: its status and message, which must name no patient data.
#[track_caller]
fn refusal<T: std::fmt::Debug>(
    r: Result<T, EhrClientError>,
    status: i32,
    phi: &[String],
) -> String {
    match r {
        Err(EhrClientError::Chaincode {
            status: s, message, ..
        }) => {
            assert_eq!(s, status, "{message}");
            for needle in phi {
                assert!(
                    !message.contains(needle.as_str()),
                    "patient data in {message:?}"
                );
            }
            message
        }
        other => panic!("expected a chaincode refusal {status}, got {other:?}"),
    }
}

/// `EmergencyAccess` by `clinician`, which must be denied on the ledger (audited, no window):
/// the chaincode's reason, which must name no patient data.
async fn break_glass_denied(clinician: &EhrClient, p: &str, phi: &[String]) -> String {
    match clinician
        .emergency_access(p, EmergencyReason::EmergencyTreatment, None)
        .await
    {
        Err(EhrClientError::EmergencyDenied { message, .. }) => {
            for needle in phi {
                assert!(
                    !message.contains(needle.as_str()),
                    "patient data in {message:?}"
                );
            }
            message
        }
        other => panic!("expected a denied break-glass, got {other:?}"),
    }
}

async fn audit_total(patient: &EhrClient, p: &str) -> u64 {
    patient
        .audit_entries(p, 200, "")
        .await
        .unwrap()
        .summary
        .unwrap()
        .total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehr_rules_hold_on_the_harness() {
    let net = Harness::builder().orgs(3).build().unwrap().serve().unwrap();
    // As `network up` and `ehr import`: Org1 and Org2 found the governance, each sets its
    // pseudonym key, Org1 imports a Synthea patient.
    let DevNetwork {
        admin: org1_admin,
        org2_admin,
        key,
        bundle,
    } = dev_network(&net).await;
    let org2_key = PseudonymKey::from_bytes(&[0x52; PseudonymKey::LEN]).unwrap();
    assert!(org2_admin.set_pseudonym_key(&org2_key).await.unwrap().set);
    // The ledger names the patient and its records by Org1's keyed hashes (ADR 0031).
    let clear = bundle.patient_id.clone();
    let p = key.patient(&clear);
    let of = |t: &str| first_of(&bundle, t);
    let (obs, cond) = (of("Observation"), of("Condition"));
    let ledger_record = |r: &str| key.record(&clear, &r.parse().unwrap()).to_string();
    let obs_id = ledger_record(&obs.record_id);
    let cond_id = ledger_record(&cond.record_id);
    // Strings of the patient's record that no error message may carry.
    let patient_json: serde_json::Value = serde_json::from_slice(&of("Patient").bytes).unwrap();
    let mut phi: Vec<String> = Vec::new();
    for name in patient_json["name"].as_array().unwrap() {
        phi.push(name["family"].as_str().unwrap().to_owned());
    }
    phi.push(patient_json["birthDate"].as_str().unwrap().to_owned());

    // The dev network's identities (`network/devnet`'s identities.yaml).
    let doctor = [("ehr.role", "doctor")];
    let emergency = [("ehr.role", "doctor"), ("ehr.emergency", "true")];
    let patient = enrolled(
        &net,
        ORG1,
        &format!("patient-{p}"),
        &[("ehr.role", "patient"), ("ehr.patient_id", &p)],
    );
    let org1_doctor = enrolled(&net, ORG1, "org1-doctor", &doctor);
    let org2_doctor = enrolled(&net, ORG2, "org2-doctor", &doctor);
    let org2_lab = enrolled(&net, ORG2, "org2-lab", &[("ehr.role", "lab")]);

    // ---- Governance: both founders confirmed the founding set ----
    let g = org1_admin.governance().await.unwrap();
    let members: Vec<&str> = g.members.iter().map(|m| m.msp_id.as_str()).collect();
    assert_eq!(members, ["Org1MSP", "Org2MSP"]);
    assert_eq!(g.founding_sets.len(), 1);
    assert!(
        g.authorities
            .iter()
            .all(|a| a.in_force && a.approvals.len() == 2)
    );

    // ---- A patient id belongs to its custodian ----
    let registered = org1_admin.get_patient(&p).await.unwrap().unwrap();
    let before = height(&net);
    let m = refusal(org2_admin.register_patient(&p, None).await, 403, &phi);
    assert!(m.contains("belongs to custodian Org1MSP"), "{m}");
    let m = refusal(
        org2_admin.register_patient(&p, Some("Org2MSPPHI")).await,
        403,
        &phi,
    );
    assert!(m.contains("Org1MSP"), "{m}");
    refusal(
        org1_admin.register_patient(&p, Some("Org1Other")).await,
        409,
        &phi,
    );
    // Org2 cannot learn Org1's ledger id of a Patient.id it knows (only Org1's peers hold
    // Org1's key), and its own key gives another ledger id: nothing links the two.
    refusal(
        org2_admin.ledger_ids(Some("Org1MSP"), &clear, &[]).await,
        403,
        &phi,
    );
    let org2_id = org2_admin.ledger_ids(None, &clear, &[]).await.unwrap();
    assert_ne!(org2_id.patient, p);
    assert!(
        org2_admin
            .get_patient(&org2_id.patient)
            .await
            .unwrap()
            .is_none()
    );
    // Nor does a doctor of Org2's without consent, asking for records too.
    refusal(
        org2_doctor
            .ledger_ids(Some("Org1MSP"), &clear, &[&obs.record_id])
            .await,
        403,
        &phi,
    );
    assert_eq!(height(&net), before, "a refusal reached the ledger");
    // The custodian's retry (a re-run import): its entry, unchanged.
    assert_eq!(
        org1_admin.register_patient(&p, None).await.unwrap(),
        registered
    );
    assert_eq!(
        org2_admin.get_patient(&p).await.unwrap().unwrap(),
        registered
    );

    // ---- Blocked follows the person across re-enrollment ----
    let me = org2_doctor.who_am_i().await.unwrap();
    patient
        .grant_consent(&ConsentGrant {
            patient_id: p.clone(),
            grantee: Grantee::Identity(me.identity_id.clone()),
            resource_types: vec!["Observation".into()],
            purposes: vec![Purpose::Treatment],
            valid_for_s: 3600,
        })
        .await
        .unwrap();
    assert!(
        org2_doctor
            .read_record(&p, &obs_id, Purpose::Treatment)
            .await
            .unwrap()
            .bytes
            == obs.bytes
    );
    for _ in 0..2 {
        let r = org2_doctor
            .read_record(&p, &cond_id, Purpose::Treatment)
            .await;
        assert!(
            matches!(r, Err(EhrClientError::AccessDenied { .. })),
            "{r:?}"
        );
    }
    let grantee = format!("identity:{}", me.identity_id);
    let state = patient
        .evaluate(
            ehr_chaincode::functions::GET_ACCESS_STATE,
            &[&p, &grantee],
            None,
        )
        .await
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    assert_eq!(state["state"], "Blocked");
    // Org2's CA re-enrolls the doctor: a new key and certificate, the same person.
    let org2_doctor = client(&net, ORG2, net.reenroll(ORG2, "org2-doctor").unwrap());
    let again = org2_doctor.who_am_i().await.unwrap();
    assert_ne!(again.certificate_id, me.certificate_id);
    assert_eq!(again.identity_id, me.identity_id);
    let audited = audit_total(&patient, &p).await;
    let before = height(&net);
    for record in [&obs_id, &cond_id] {
        let m = refusal(
            org2_doctor
                .read_record(&p, record, Purpose::Treatment)
                .await,
            403,
            &phi,
        );
        assert!(m.contains("Blocked"), "{m}");
    }
    assert_eq!(height(&net), before, "a Blocked request reached the ledger");
    assert_eq!(audit_total(&patient, &p).await, audited);

    // ---- ShareRecord: an organization consent of that type and purpose, only into the
    //      share collection, served by the grantee's own peer ----
    patient
        .grant_consent(&ConsentGrant {
            patient_id: p.clone(),
            grantee: Grantee::Org("Org2MSP".into()),
            resource_types: vec!["Observation".into()],
            purposes: vec![Purpose::Treatment],
            valid_for_s: 3600,
        })
        .await
        .unwrap();
    // A consent to one Org2 identity (the lab technician) for Conditions.
    let lab = org2_lab.who_am_i().await.unwrap();
    patient
        .grant_consent(&ConsentGrant {
            patient_id: p.clone(),
            grantee: Grantee::Identity(lab.identity_id.clone()),
            resource_types: vec!["Condition".into()],
            purposes: vec![Purpose::Treatment],
            valid_for_s: 3600,
        })
        .await
        .unwrap();
    let before = height(&net);
    // Out of the organization consent's scope; of another purpose; under an identity consent.
    let m = refusal(
        org1_doctor
            .share_record(&p, &cond_id, "Org2MSP", Purpose::Treatment)
            .await,
        403,
        &phi,
    );
    assert!(m.contains("identities"), "{m}");
    refusal(
        org1_doctor
            .share_record(&p, &obs_id, "Org2MSP", Purpose::Research)
            .await,
        403,
        &phi,
    );
    // A collection of the caller's choosing (the grantee's own): refused.
    let named = org1_doctor
        .submit(
            ehr_chaincode::functions::SHARE_RECORD,
            &[&p, &obs_id, "Org2MSP", "treatment", "Org2MSPPHI"],
            &[],
            Some("Org1MSP"),
        )
        .await;
    refusal(named, 400, &phi);
    assert_eq!(height(&net), before, "a refused share reached the ledger");
    // The consented share: into Org1MSP-to-Org2MSP-PHI, endorsed by Org1 alone.
    let shared = org1_doctor
        .share_record(&p, &obs_id, "Org2MSP", Purpose::Treatment)
        .await
        .unwrap();
    assert_eq!(shared.collection, "Org1MSP-to-Org2MSP-PHI");
    assert_eq!(shared.sha256, obs.sha256);
    let meta = org1_doctor.record_metadata(&p, &obs_id).await.unwrap();
    assert_eq!(meta.shares.len(), 1);
    assert_eq!(meta.shares[0].purpose, Some(Purpose::Treatment));
    // Org2's lab reads it from Org2's own peer, which did not endorse the share: its
    // reconciliation got the copy from Org1's peer when it committed the block (no waiting).
    let decision = org2_lab
        .request_record_access(&p, &obs_id, Purpose::Treatment)
        .await
        .unwrap();
    assert_eq!(decision.decision, Decision::Granted);
    let copy = org2_lab
        .evaluate(
            ehr_chaincode::functions::READ_RECORD,
            &[&p, &decision.access_id],
            Some("Org2MSP"),
        )
        .await
        .unwrap();
    assert!(copy == obs.bytes, "the shared copy differs");

    // ---- Break-glass and auditor authority of an organization that is no founder ----
    let org3_emergency = enrolled(&net, ORG3, "org3-emergency", &emergency);
    let org3_admin = client(
        &net,
        ORG3,
        net.admin(ORG3, "org3-admin", &[("ehr.role", "admin")])
            .unwrap(),
    );
    let org3_doctor = enrolled(&net, ORG3, "org3-doctor", &doctor);
    let org3_auditor = enrolled(&net, ORG3, "org3-auditor", &[("ehr.role", "auditor")]);
    // Break-glass is denied on the ledger: the patient's audit trail shows the attempt.
    let audited = audit_total(&patient, &p).await;
    let m = break_glass_denied(&org3_emergency, &p, &phi).await;
    assert!(
        m.contains("Org3MSP holds no break-glass authority") && m.contains("0 of 2"),
        "{m}"
    );
    assert_eq!(audit_total(&patient, &p).await, audited + 1);
    let audited = audited + 1;
    let before = height(&net);
    let m = refusal(org3_auditor.audit_entries(&p, 50, "").await, 403, &phi);
    assert!(m.contains("auditor authority"), "{m}");
    refusal(org3_auditor.list_consents(&p, 50, "").await, 403, &phi);
    // Org3 cannot approve itself before it governs, and its doctors never can.
    let m = refusal(
        org3_admin
            .approve_role_authority("Org3MSP", AuthorityRole::Emergency)
            .await,
        403,
        &phi,
    );
    assert!(m.contains("JoinGovernance first"), "{m}");
    refusal(
        org3_doctor
            .approve_role_authority("Org3MSP", AuthorityRole::Emergency)
            .await,
        403,
        &phi,
    );
    assert_eq!(height(&net), before, "a refusal reached the ledger");
    assert_eq!(audit_total(&patient, &p).await, audited);
    // Org3 asks to join: approves nothing, is not a member, so nobody may approve it yet.
    let joined = org3_admin.join_governance(None).await.unwrap();
    assert_eq!(joined.status, JoinStatus::Requested);
    let m = refusal(
        org1_admin
            .approve_role_authority("Org3MSP", AuthorityRole::Emergency)
            .await,
        404,
        &phi,
    );
    assert!(m.contains("governance member Org3MSP"), "{m}");
    // Both founders admit it (a majority of two is two); the founders' authorities keep their
    // two approvals, a majority of three.
    let admitted = org1_admin.admit_member("Org3MSP").await.unwrap();
    assert!(!admitted.admitted && admitted.needed == 2, "{admitted:?}");
    let admitted = org2_admin.admit_member("Org3MSP").await.unwrap();
    assert!(admitted.admitted, "{admitted:?}");
    // It approves itself: 1 of 3.
    org3_admin
        .approve_role_authority("Org3MSP", AuthorityRole::Emergency)
        .await
        .unwrap();
    let a = org3_admin
        .role_authority("Org3MSP", AuthorityRole::Emergency)
        .await
        .unwrap();
    assert!(!a.in_force && a.members == 3 && a.needed == 2, "{a:?}");
    let m = break_glass_denied(&org3_emergency, &p, &phi).await;
    assert!(m.contains("1 of 3"), "{m}");
    // The founders keep theirs: Org2's emergency doctor still breaks the glass.
    let org2_emergency = enrolled(&net, ORG2, "org2-emergency", &emergency);
    org2_emergency
        .emergency_access(&p, EmergencyReason::BreakTheGlass, Some(60))
        .await
        .unwrap();
    // Org1's approval makes a majority: Org3's emergency doctor opens a window and reads,
    // audited; Org3's auditor is still refused.
    org1_admin
        .approve_role_authority("Org3MSP", AuthorityRole::Emergency)
        .await
        .unwrap();
    let (opened, read) = org3_emergency
        .emergency_read(&p, &cond_id, EmergencyReason::EmergencyTreatment, None)
        .await
        .unwrap();
    assert!(read.bytes == cond.bytes);
    let audit = patient.audit_entries(&p, 200, "").await.unwrap();
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.access_id == opened.access_id && e.requester_msp == "Org3MSP")
    );
    refusal(org3_auditor.audit_entries(&p, 50, "").await, 403, &phi);
    let governance = org3_auditor.governance().await.unwrap();
    assert_eq!(governance.members.len(), 3);

    // Org2's peer holds the shared copy in the share collection, none of Org1's own
    // collection; Org3's peer holds neither.
    let key = record_key(&p, &obs_id.parse::<RecordId>().unwrap()).unwrap();
    let held = net
        .with(move |h| {
            let get = |org: usize, coll: &str| {
                h.ledger(org, 0)
                    .unwrap()
                    .get_private("ehr", coll, &key)
                    .unwrap()
                    .map(|v| v.value)
            };
            [
                get(ORG2, "Org1MSP-to-Org2MSP-PHI"),
                get(ORG2, "Org1MSPPHI"),
                get(ORG3, "Org1MSP-to-Org2MSP-PHI"),
                get(ORG3, "Org1MSPPHI"),
            ]
        })
        .unwrap();
    assert_eq!(held, [Some(obs.bytes.clone()), None, None, None]);
    drop((
        patient,
        org1_admin,
        org1_doctor,
        org2_admin,
        org2_lab,
        org2_doctor,
        org2_emergency,
        org3_admin,
        org3_auditor,
        org3_doctor,
        org3_emergency,
    ));
    net.stop().unwrap();
}
