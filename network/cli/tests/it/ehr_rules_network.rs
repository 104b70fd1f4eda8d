//! The EHR rules of issue 13 item 8 (ADR 0029), black-box on one running dev network
//! (`network up`, 4 BFT orderers, Org1 hospital and Org2 lab, TLS, the chaincode in each
//! peer's sandbox), plus an organization that joins later (`medledger org add`):
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
//!   the copy (on 9fbe16c: identity and other-purpose consents were accepted, any named
//!   collection was written, and the dev network had no collection a share could reach the
//!   grantee through);
//! - break-glass and auditor authority: Org3's CA issues an `ehr.emergency` doctor and an
//!   auditor at once, but both are refused until the members admit Org3 and a majority of them
//!   approve it (on 9fbe16c both acted on every patient), while the founding organizations'
//!   authority (seeded by `network up`, and left alone by a second `up`) keeps working.
//!
//! Every refusal is a chaincode error that names no patient data, adds no block, and leaves
//! the patient's audit trail as it was — except a refused break-glass, which the patient must
//! see: it is a denied entry of the audit trail (on 8c73202 it left no trace).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use ehr_chaincode::ids::Grantee;
use ehr_chaincode::model::{AuthorityRole, EmergencyReason, JoinStatus, Purpose};
use ehr_client::{ConsentGrant, EhrClient, EhrClientError};
use medledger_ca::{CertificateAuthority, Profile, Registration, build_csr};
use medledger_devnet::client::connect_as;
use medledger_devnet::generate::{CA_BOOT_ID, Identities};
use medledger_gateway::client::Gateway;
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;

use crate::common;

use common::{first_bundle, import_and_settle, medledger, settle, up_dev_network};

async fn client(dir: &Path, name: &str) -> EhrClient {
    let c = connect_as(dir, Some(name)).await.unwrap();
    EhrClient::new(c.gateway.network("ehr").contract("ehr"))
}

/// A client signing as `identity`, through the gateway of demo identity `like`'s
/// organization.
async fn client_as(dir: &Path, like: &str, identity: SigningIdentity) -> EhrClient {
    let ids = Identities::load(dir).unwrap();
    let entry = ids.get(like).unwrap().clone();
    let roots = std::fs::read(dir.join("tls-roots.pem")).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(roots))
        .domain_name(entry.gateway_host.clone());
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", entry.gateway))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    EhrClient::new(
        Gateway::connect(identity, channel)
            .network("ehr")
            .contract("ehr"),
    )
}

/// A certificate from organization `org`'s CA (`ca/<org>` of the network) for `enrollment_id`:
/// a re-enrollment of that registered identity if `attrs` is `None`, else a new registration
/// with those attributes.
fn issue(
    dir: &Path,
    org: &str,
    msp_id: &str,
    enrollment_id: &str,
    attrs: Option<&[(&str, &str)]>,
) -> SigningIdentity {
    let mut ca = CertificateAuthority::open(&dir.join("ca").join(org)).unwrap();
    let key = SigningKey::generate().unwrap();
    let csr = build_csr(&key, enrollment_id, &[]).unwrap();
    let issued = match attrs {
        None => ca
            .reenroll(enrollment_id, &csr, Profile::Ecert, &[])
            .unwrap(),
        Some(attrs) => {
            let mut reg = Registration::new(enrollment_id, NodeOu::Client).with_secret("pw");
            for (k, v) in attrs {
                reg = reg.with_attribute(k, v);
            }
            ca.register(CA_BOOT_ID, reg).unwrap();
            ca.enroll(enrollment_id, "pw", &csr, Profile::Ecert, &[])
                .unwrap()
        }
    };
    let cert = Certificate::from_pem(issued.cert_pem.as_bytes()).unwrap();
    SigningIdentity::new(msp_id, cert, key).unwrap()
}

/// The highest ledger height among the network's peers.
fn height(dir: &Path) -> u64 {
    medledger(&["network", "status"], dir)
        .lines()
        .filter(|l| l.starts_with("peer"))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse::<u64>().unwrap())
        .max()
        .unwrap()
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

async fn audit_total(dir: &Path, patient: &EhrClient, p: &str) -> u64 {
    settle(dir).await;
    patient
        .audit_entries(p, 200, "")
        .await
        .unwrap()
        .summary
        .unwrap()
        .total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehr_rules_hold_on_a_real_network() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, bundles, _net) = up_dev_network(tmp.path(), 1);
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
    // Strings of the patient's record that no error message may carry.
    let patient_json: serde_json::Value = serde_json::from_slice(&of("Patient").bytes).unwrap();
    let mut phi: Vec<String> = Vec::new();
    for name in patient_json["name"].as_array().unwrap() {
        phi.push(name["family"].as_str().unwrap().to_owned());
    }
    phi.push(patient_json["birthDate"].as_str().unwrap().to_owned());

    let patient = client(&dir, &format!("patient:{clear}")).await;
    let org1_admin = client(&dir, "org1-admin").await;
    let org1_doctor = client(&dir, "org1-doctor").await;
    let org2_admin = client(&dir, "org2-admin").await;
    let org2_lab = client(&dir, "org2-lab").await;

    // ---- Governance: `network up` had both founders confirm the founding set ----
    let g = org1_admin.governance().await.unwrap();
    let members: Vec<&str> = g.members.iter().map(|m| m.msp_id.as_str()).collect();
    assert_eq!(members, ["Org1MSP", "Org2MSP"]);
    assert_eq!(g.founding_sets.len(), 1);
    assert!(
        g.authorities
            .iter()
            .all(|a| a.in_force && a.approvals.len() == 2)
    );
    // A second `up` finds it founded and changes nothing.
    let config = tmp.path().join("dev.yaml");
    let again = medledger(
        &["network", "up", "--config", config.to_str().unwrap()],
        &dir,
    );
    assert!(
        again.contains("EHR governance of chaincode ehr: already founded"),
        "{again}"
    );

    // ---- A patient id belongs to its custodian ----
    let registered = org1_admin.get_patient(&p).await.unwrap().unwrap();
    let before = height(&dir);
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
    // Nor does a doctor of Org1's without being asked for records by a clinician with
    // consent: an Org2 doctor (no consent) learns nothing either way.
    refusal(
        client(&dir, "org2-doctor")
            .await
            .ledger_ids(Some("Org1MSP"), &clear, &[&obs.record_id])
            .await,
        403,
        &phi,
    );
    settle(&dir).await;
    assert_eq!(height(&dir), before, "a refusal reached the ledger");
    // The custodian's retry (a re-run import): its entry, unchanged.
    assert_eq!(
        org1_admin.register_patient(&p, None).await.unwrap(),
        registered
    );
    settle(&dir).await;
    assert_eq!(
        org2_admin.get_patient(&p).await.unwrap().unwrap(),
        registered
    );

    // ---- Blocked follows the person across re-enrollment ----
    let org2_doctor = client(&dir, "org2-doctor").await;
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
    settle(&dir).await;
    assert!(
        org2_doctor
            .read_record(&p, &obs_id, Purpose::Treatment)
            .await
            .unwrap()
            .bytes
            == obs.bytes
    );
    for _ in 0..2 {
        settle(&dir).await;
        let r = org2_doctor
            .read_record(&p, &cond_id, Purpose::Treatment)
            .await;
        assert!(
            matches!(r, Err(EhrClientError::AccessDenied { .. })),
            "{r:?}"
        );
    }
    settle(&dir).await;
    let grantee = format!("identity:{}", me.identity_id);
    let state = |v: Vec<u8>| -> String {
        serde_json::from_slice::<serde_json::Value>(&v).unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let get_state = |g: String| {
        let patient = patient.clone();
        let p = p.clone();
        async move {
            patient
                .evaluate(ehr_chaincode::functions::GET_ACCESS_STATE, &[&p, &g], None)
                .await
                .unwrap()
        }
    };
    assert_eq!(state(get_state(grantee.clone()).await), "Blocked");
    // Org2's CA re-enrolls the doctor: a new key and certificate, the same person.
    let reenrolled = issue(&dir, "org2", "Org2MSP", "org2-doctor", None);
    let org2_doctor = client_as(&dir, "org2-doctor", reenrolled).await;
    let again = org2_doctor.who_am_i().await.unwrap();
    assert_ne!(again.certificate_id, me.certificate_id);
    assert_eq!(again.identity_id, me.identity_id);
    let audited = audit_total(&dir, &patient, &p).await;
    let before = height(&dir);
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
    settle(&dir).await;
    assert_eq!(height(&dir), before, "a Blocked request reached the ledger");
    assert_eq!(audit_total(&dir, &patient, &p).await, audited);

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
    settle(&dir).await;
    let before = height(&dir);
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
    settle(&dir).await;
    assert_eq!(height(&dir), before, "a refused share reached the ledger");
    // The consented share: into Org1MSP-to-Org2MSP-PHI, endorsed by Org1 alone.
    let shared = org1_doctor
        .share_record(&p, &obs_id, "Org2MSP", Purpose::Treatment)
        .await
        .unwrap();
    assert_eq!(shared.collection, "Org1MSP-to-Org2MSP-PHI");
    assert_eq!(shared.sha256, obs.sha256);
    settle(&dir).await;
    let meta = org1_doctor.record_metadata(&p, &obs_id).await.unwrap();
    assert_eq!(meta.shares.len(), 1);
    assert_eq!(meta.shares[0].purpose, Some(Purpose::Treatment));
    // Org2's lab reads it from Org2's own peer, once its reconciler pulled the copy.
    let decision = org2_lab
        .request_record_access(&p, &obs_id, Purpose::Treatment)
        .await
        .unwrap();
    assert_eq!(decision.decision, ehr_chaincode::model::Decision::Granted);
    let mut copy = None;
    for _ in 0..120 {
        match org2_lab
            .evaluate(
                ehr_chaincode::functions::READ_RECORD,
                &[&p, &decision.access_id],
                Some("Org2MSP"),
            )
            .await
        {
            Ok(bytes) => {
                copy = Some(bytes);
                break;
            }
            Err(e) if e.chaincode_status() == Some(404) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(copy.unwrap() == obs.bytes, "the shared copy differs");

    // ---- Break-glass and auditor authority of an organization that joins later ----
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
    let added = medledger(&["org", "add", "--config", org3.to_str().unwrap()], &dir);
    assert!(added.contains("Org3MSP joined the channel"), "{added}");
    settle(&dir).await;
    let org3_emergency = client(&dir, "org3-emergency").await;
    let org3_admin = client(&dir, "org3-admin").await;
    let org3_doctor = client(&dir, "org3-doctor").await;
    let auditor = issue(
        &dir,
        "org3",
        "Org3MSP",
        "org3-auditor",
        Some(&[("ehr.role", "auditor")]),
    );
    let org3_auditor = client_as(&dir, "org3-admin", auditor).await;
    // Break-glass is denied on the ledger: the patient's audit trail shows the attempt.
    let audited = audit_total(&dir, &patient, &p).await;
    let m = break_glass_denied(&org3_emergency, &p, &phi).await;
    assert!(
        m.contains("Org3MSP holds no break-glass authority") && m.contains("0 of 2"),
        "{m}"
    );
    assert_eq!(audit_total(&dir, &patient, &p).await, audited + 1);
    let audited = audited + 1;
    let before = height(&dir);
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
    settle(&dir).await;
    assert_eq!(height(&dir), before, "a refusal reached the ledger");
    assert_eq!(audit_total(&dir, &patient, &p).await, audited);
    // Org3 asks to join: approves nothing, is not a member, so nobody may approve it yet.
    let joined = org3_admin.join_governance(None).await.unwrap();
    assert_eq!(joined.status, JoinStatus::Requested);
    settle(&dir).await;
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
    settle(&dir).await;
    let admitted = org2_admin.admit_member("Org3MSP").await.unwrap();
    assert!(admitted.admitted, "{admitted:?}");
    settle(&dir).await;
    // It approves itself: 1 of 3.
    org3_admin
        .approve_role_authority("Org3MSP", AuthorityRole::Emergency)
        .await
        .unwrap();
    settle(&dir).await;
    let a = org3_admin
        .role_authority("Org3MSP", AuthorityRole::Emergency)
        .await
        .unwrap();
    assert!(!a.in_force && a.members == 3 && a.needed == 2, "{a:?}");
    let m = break_glass_denied(&org3_emergency, &p, &phi).await;
    assert!(m.contains("1 of 3"), "{m}");
    // The founders keep theirs: Org2's emergency doctor still breaks the glass.
    let org2_emergency = client(&dir, "org2-emergency").await;
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
    settle(&dir).await;
    let (opened, read) = org3_emergency
        .emergency_read(&p, &cond_id, EmergencyReason::EmergencyTreatment, None)
        .await
        .unwrap();
    assert!(read.bytes == cond.bytes);
    settle(&dir).await;
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

    // On disk: Org2's peer holds the shared copy in the share collection, none of Org1's
    // own collection.
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
    medledger(&["network", "down"], &dir);
    let org2 = common::open_ledger(&dir, "peer0.org2");
    let key = {
        let id: ehr_chaincode::ids::RecordId = obs_id.parse().unwrap();
        ehr_chaincode::ids::record_key(&p, &id).unwrap()
    };
    assert_eq!(
        org2.get_private("ehr", "Org1MSP-to-Org2MSP-PHI", &key)
            .unwrap()
            .map(|v| v.value),
        Some(obs.bytes.clone())
    );
    assert!(
        org2.get_private("ehr", "Org1MSPPHI", &key)
            .unwrap()
            .is_none()
    );
    drop(org2);
    medledger(&["network", "down", "--purge"], &dir);
}
