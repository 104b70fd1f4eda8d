//! The EHR rules of issue 13 item 8, each with the behaviour of 9fbe16c that it replaces
//! (ADR 0029): break-glass and auditor authority come from a majority of the governing
//! organizations, not from any CA's attributes; a patient id belongs to its custodian; a
//! Blocked relation follows the person across re-enrollment; `ShareRecord` needs an
//! organization consent of that purpose and copies only to the share collection. Every
//! refusal is asserted to change nothing (public state, private state, events) and to name no
//! patient data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crate::common;

use common::*;
use serde_json::{Value, json};

/// PA registered at Org1 with Observation/obs-1 and Condition/cond-1; PA consented Org2
/// (Observation, treatment, 1 h).
fn world() -> Net {
    let mut n = pa_with_records();
    n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"}, "resource_types": ["Observation"],
               "purposes": ["treatment"], "valid_for_s": 3600}),
    );
    n
}

fn authority(n: &mut Net, org: &str, role: &str) -> Value {
    n.ok("doctor1", &["GetRoleAuthority", org, role])
}

/// `EmergencyAccess` as `who` by a doctor or nurse that must be denied on the ledger (a
/// successful transaction answering `denied`, audited); its message.
#[track_caller]
fn denied_break_glass(n: &mut Net, who: &str, args: &[&str]) -> String {
    let r = n.call(who, args);
    assert_eq!(r.status, 200, "{who}: {}", r.message);
    let v: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["decision"], "denied", "{v}");
    v["message"].as_str().unwrap().to_owned()
}

/// On 9fbe16c any organization's CA could mint `ehr.emergency` doctors and auditors who act
/// on every patient: Org4MSP's emergency doctor opened a break-glass window and its auditor
/// read the audit trail. Now Org4 holds neither until a majority of the governing
/// organizations admit it as a member and approve it, and loses it when the approvals fall
/// below a majority. Approving a non-member is refused (on 8c73202 it was recorded).
#[test]
fn break_glass_and_auditor_authority_need_a_majority_of_the_governing_organizations() {
    let mut n = world();
    // Not governing, not approved: refused, nothing written, the reason named.
    let m = denied_break_glass(&mut n, "emergency4", &["EmergencyAccess", lpa(), "ETREAT"]);
    assert!(
        m.contains("Org4MSP") && m.contains("break-glass") && m.contains("0 of 3"),
        "{m}"
    );
    for f in [
        "ListAuditEntries",
        "ListConsents",
        "ListAccessRequests",
        "ListRecords",
    ] {
        let m = n.refused(Some("auditor4"), &[f, lpa()], &[], 403);
        assert!(
            m.contains("Org4MSP") && m.contains("auditor authority"),
            "{m}"
        );
    }
    // An organization cannot approve itself before it governs, nor its CA's non-admins.
    n.refused(
        Some("gov4"),
        &["ApproveRoleAuthority", "Org4MSP", "emergency"],
        &[],
        403,
    );
    n.refused(
        Some("emergency4"),
        &["ApproveRoleAuthority", "Org4MSP", "emergency"],
        &[],
        403,
    );
    // Org4 is no member: nobody approves an authority for it, and no founding set opens
    // again once governance is founded.
    let m = n.refused(
        Some("gov1"),
        &["ApproveRoleAuthority", "Org4MSP", "emergency"],
        &[],
        404,
    );
    assert!(m.contains("EHR governance member Org4MSP not found"), "{m}");
    n.refused(Some("gov1"), &["AdmitMember", "Org4MSP"], &[], 404);
    n.refused(
        Some("gov4"),
        &["JoinGovernance", "Org1MSP,Org4MSP"],
        &[],
        409,
    );
    // Org4 asks to join: that approves nothing, and it is not yet a member.
    let v = n.ok("gov4", &["JoinGovernance"]);
    assert_eq!(v["status"], "requested", "{v}");
    let a = authority(&mut n, "Org1MSP", "emergency");
    assert_eq!(a["approvals"], json!(["Org1MSP", "Org2MSP", "Org3MSP"]));
    // As a candidate it may record approvals, which count once it is admitted.
    n.ok("gov4", &["ApproveRoleAuthority", "Org1MSP", "emergency"]);
    n.refused(Some("gov4"), &["AdmitMember", "Org4MSP"], &[], 403);
    // One admission of three members is not a majority; the same member twice is refused.
    let v = n.ok("gov1", &["AdmitMember", "Org4MSP"]);
    assert_eq!(
        (&v["admitted"], &v["needed"]),
        (&json!(false), &json!(2)),
        "{v}"
    );
    n.refused(Some("gov1"), &["AdmitMember", "Org4MSP"], &[], 409);
    n.refused(
        Some("gov4"),
        &["ApproveRoleAuthority", "Org4MSP", "emergency"],
        &[],
        404,
    );
    // The second makes it a member: four governing organizations, three needed. Its
    // approval of Org1 now counts; Org2's authorities keep their three founders' approvals.
    let v = n.ok("gov2", &["AdmitMember", "Org4MSP"]);
    assert_eq!(v["admitted"], true, "{v}");
    let a = authority(&mut n, "Org1MSP", "emergency");
    assert_eq!(
        (a["members"].as_u64(), a["needed"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(
        a["approvals"],
        json!(["Org1MSP", "Org2MSP", "Org3MSP", "Org4MSP"])
    );
    assert_eq!(authority(&mut n, "Org2MSP", "auditor")["in_force"], true);
    n.refused(Some("gov3"), &["AdmitMember", "Org4MSP"], &[], 409);
    n.refused(Some("gov4"), &["JoinGovernance"], &[], 409);
    // Its own approval is one of four; Org1's makes two: still refused.
    n.ok("gov4", &["ApproveRoleAuthority", "Org4MSP", "emergency"]);
    n.ok("gov1", &["ApproveRoleAuthority", "Org4MSP", "emergency"]);
    assert_eq!(authority(&mut n, "Org4MSP", "emergency")["in_force"], false);
    let m = denied_break_glass(&mut n, "emergency4", &["EmergencyAccess", lpa(), "ETREAT"]);
    assert!(m.contains("2 of 4") && m.contains("3 needed"), "{m}");
    // Org2's makes a majority: break-glass works and is audited; auditors still refused.
    n.ok("gov2", &["ApproveRoleAuthority", "Org4MSP", "emergency"]);
    let a = authority(&mut n, "Org4MSP", "emergency");
    assert_eq!(a["in_force"], true, "{a}");
    assert_eq!(a["approvals"], json!(["Org1MSP", "Org2MSP", "Org4MSP"]));
    n.ok("emergency4", &["EmergencyAccess", lpa(), "ETREAT"]);
    assert_eq!(
        n.read(
            "emergency4",
            lpa(),
            &lr(PA, "Condition/cond-1"),
            "treatment"
        ),
        condition("cond-1", PA)
    );
    n.refused(Some("auditor4"), &["ListAuditEntries", lpa()], &[], 403);
    let audit = n.ok("patientA", &["ListAuditEntries", lpa()]);
    assert_eq!(audit["summary"]["emergency"], 2, "the window and the read");
    // Org1 withdraws: below a majority again. New windows are refused, and the open one
    // no longer grants (the request is denied and audited).
    n.ok("gov1", &["WithdrawRoleAuthority", "Org4MSP", "emergency"]);
    assert_eq!(authority(&mut n, "Org4MSP", "emergency")["in_force"], false);
    denied_break_glass(&mut n, "emergency4", &["EmergencyAccess", lpa(), "BTG"]);
    let (_, d) = n.request(
        "emergency4",
        lpa(),
        &lr(PA, "Condition/cond-1"),
        "treatment",
    );
    assert_eq!(d, "denied");
    let audit = n.ok("patientA", &["ListAuditEntries", lpa()]);
    assert_eq!(
        audit["summary"]["denied"], 4,
        "three refused break-glass attempts and the request"
    );
    // The auditor authority, approved by a majority, opens the audit reads.
    for gov in ["gov1", "gov2", "gov3"] {
        n.ok(gov, &["ApproveRoleAuthority", "Org4MSP", "auditor"]);
    }
    let audit = n.ok("auditor4", &["ListAuditEntries", lpa()]);
    assert_eq!(audit["summary"]["total"], 6);
    let g = n.ok("auditor4", &["GetGovernance"]);
    assert_eq!(g["members"].as_array().unwrap().len(), 4);
    assert_eq!(g["requests"], json!([]));
    assert_eq!(
        g["members"][3]["admitted_by"],
        json!(["Org1MSP", "Org2MSP"])
    );
}

/// Without any governance (a chaincode deployed without `network up`'s seeding), no
/// organization holds either authority: fail closed. On 8c73202 the first organization to
/// join was a majority of one: Org3's admin joined, approved Org3, and its emergency doctor
/// broke the glass; Org1 and Org2 joining later approved it automatically, so the
/// self-granted authority stayed. Now nothing counts before a founding set of at least two
/// organizations is confirmed by each founder, a founding set of one is refused, and joining
/// approves nothing.
#[test]
fn no_organization_founds_governance_alone() {
    let mut n = Net::bare();
    n.register(PA);
    n.create("doctor1", PA, &condition("cond-1", PA));
    let m = denied_break_glass(&mut n, "emergency2", &["EmergencyAccess", lpa(), "ETREAT"]);
    assert!(m.contains("0 of 0"), "{m}");
    n.refused(Some("auditor1"), &["ListAuditEntries", lpa()], &[], 403);
    // Org3 alone tries every way in, each refused with nothing written: joining (nothing to
    // join), a founding set of itself, approving itself (not a member).
    let m = n.refused(Some("gov3"), &["JoinGovernance"], &[], 409);
    assert!(m.contains("not founded"), "{m}");
    let m = n.refused(Some("gov3"), &["JoinGovernance", "Org3MSP"], &[], 400);
    assert!(m.contains("one organization alone"), "{m}");
    n.refused(
        Some("gov3"),
        &["JoinGovernance", "Org3MSP,Org3MSP"],
        &[],
        400,
    );
    n.refused(
        Some("gov3"),
        &["ApproveRoleAuthority", "Org3MSP", "emergency"],
        &[],
        403,
    );
    n.refused(Some("gov3"), &["AdmitMember", "Org3MSP"], &[], 403);
    denied_break_glass(&mut n, "doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
    n.refused(Some("auditor3"), &["ListAuditEntries", lpa()], &[], 403);
    // The others asking to join later are refused too: nothing to join, nothing approved.
    n.refused(Some("gov1"), &["JoinGovernance"], &[], 409);
    n.refused(Some("gov2"), &["JoinGovernance"], &[], 409);
    let g = n.ok("doctor1", &["GetGovernance"]);
    assert_eq!(
        (&g["members"], &g["authorities"], &g["founding_sets"]),
        (&json!([]), &json!([]), &json!([])),
        "{g}"
    );
    denied_break_glass(&mut n, "doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
    assert_eq!(authority(&mut n, "Org3MSP", "emergency")["in_force"], false);
}

/// A founding set counts only once every founder confirmed that same set; until then
/// nobody governs or holds anything. Confirming again is harmless (a seeding retried after a
/// partial failure completes it), and the founding writes each founder's approval of each
/// founder, nothing for anyone else.
#[test]
fn founders_confirm_each_other_before_anything_counts() {
    let mut n = Net::bare();
    n.register(PA);
    // Malformed founding sets: refused, nothing written.
    for set in [
        "Org1MSP",
        "Org1MSP,Org1MSP",
        "Org2MSP,Org3MSP",
        "Org1MSP,Org 2",
        "Org1MSP,,Org2MSP",
        "",
    ] {
        n.refused(Some("gov1"), &["JoinGovernance", set], &[], 400);
    }
    let many: Vec<String> = (0..65).map(|i| format!("Org{i}MSP")).collect();
    n.refused(Some("gov1"), &["JoinGovernance", &many.join(",")], &[], 400);
    n.refused(
        Some("doctor1"),
        &["JoinGovernance", "Org1MSP,Org2MSP"],
        &[],
        403,
    );
    n.refused(
        Some("gov1"),
        &["JoinGovernance", "Org1MSP,Org2MSP", "x"],
        &[],
        400,
    );
    // Org1 confirms {Org1, Org2, Org3} (in any order and spelling of the list).
    let v = n.ok("gov1", &["JoinGovernance", "Org3MSP,Org1MSP,Org2MSP"]);
    assert_eq!(v["status"], "confirmed");
    assert_eq!(v["missing"], json!(["Org2MSP", "Org3MSP"]));
    // Confirming again writes nothing.
    let before = n.snapshot();
    let v = n.ok("gov1", &["JoinGovernance", "Org1MSP,Org2MSP,Org3MSP"]);
    assert_eq!(v["missing"], json!(["Org2MSP", "Org3MSP"]));
    assert_eq!(n.snapshot(), before);
    // Org2 confirms another set ({Org1, Org2}): Org1 confirms {Org1, Org2, Org3}, so
    // Org1 is missing. Org2 then confirms {Org1, Org2, Org3}, which replaces its first.
    let v = n.ok("gov2", &["JoinGovernance", "Org1MSP,Org2MSP"]);
    assert_eq!(v["missing"], json!(["Org1MSP"]));
    let v = n.ok("gov2", &["JoinGovernance", "Org1MSP,Org2MSP,Org3MSP"]);
    assert_eq!(v["confirmed"], json!(["Org1MSP", "Org2MSP"]));
    // Nothing counts yet: no members, no approvals, no authority.
    n.refused(
        Some("gov1"),
        &["ApproveRoleAuthority", "Org1MSP", "emergency"],
        &[],
        403,
    );
    denied_break_glass(&mut n, "doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
    let g = n.ok("doctor1", &["GetGovernance"]);
    assert_eq!(g["members"], json!([]));
    let sets = g["founding_sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{g}");
    assert_eq!(sets[0]["confirmed"], json!(["Org1MSP", "Org2MSP"]), "{g}");
    // Org3's confirmation completes the first set: the three are members and hold both
    // authorities, each approved by the three.
    let v = n.ok("gov3", &["JoinGovernance", "Org1MSP,Org2MSP,Org3MSP"]);
    assert_eq!(v["status"], "founded");
    assert_eq!(v["missing"], json!([]));
    for org in ["Org1MSP", "Org2MSP", "Org3MSP"] {
        for role in ["emergency", "auditor"] {
            let a = authority(&mut n, org, role);
            assert_eq!(a["in_force"], true, "{a}");
            assert_eq!(a["approvals"], json!(["Org1MSP", "Org2MSP", "Org3MSP"]));
        }
    }
    let g = n.ok("doctor1", &["GetGovernance"]);
    assert_eq!(g["authorities"].as_array().unwrap().len(), 6);
    assert_eq!(
        g["members"][0]["admitted_by"],
        json!(["Org1MSP", "Org2MSP", "Org3MSP"])
    );
    // Founded: the other set can no longer complete, and founding sets are refused.
    n.refused(
        Some("gov1"),
        &["JoinGovernance", "Org1MSP,Org2MSP"],
        &[],
        409,
    );
    n.refused(
        Some("gov4"),
        &["JoinGovernance", "Org1MSP,Org4MSP"],
        &[],
        409,
    );
    n.refused(
        Some("gov3"),
        &["JoinGovernance", "Org1MSP,Org2MSP,Org3MSP"],
        &[],
        409,
    );
    n.ok("doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
}

/// On 8c73202 an open break-glass window granted every record request of its clinician until
/// it expired, even after the clinician's certificate lost `ehr.emergency` (re-issued
/// without it: the same person, so the same window). Now each use re-checks the attribute
/// and the role: the request is decided on consent, denied and audited.
#[test]
fn an_open_break_glass_window_needs_the_emergency_attribute_at_each_use() {
    let mut n = world();
    n.ok("emergency2b", &["EmergencyAccess", lpa(), "ETREAT"]);
    assert_eq!(
        n.read(
            "emergency2b",
            lpa(),
            &lr(PA, "Condition/cond-1"),
            "treatment"
        ),
        condition("cond-1", PA)
    );
    let me = identity_id("emergency2b");
    reissue("emergency2b", &[("ehr.role", "doctor")]);
    assert_eq!(identity_id("emergency2b"), me, "the same person");
    assert_eq!(n.ok("emergency2b", &["WhoAmI"])["emergency"], false);
    // What Org2's consent covers (Observations) is still granted, on the consent.
    let (_, d) = n.request(
        "emergency2b",
        lpa(),
        &lr(PA, "Observation/obs-1"),
        "treatment",
    );
    assert_eq!(d, "granted");
    // A Condition is not: the window no longer grants it.
    let (_, d) = n.request(
        "emergency2b",
        lpa(),
        &lr(PA, "Condition/cond-1"),
        "treatment",
    );
    assert_eq!(d, "denied");
    let audit = n.ok("patientA", &["ListAuditEntries", lpa()]);
    assert_eq!(audit["summary"]["denied"], 1, "{audit}");
}

/// On 8c73202 a refused `EmergencyAccess` (an organization without break-glass authority, a
/// doctor without `ehr.emergency`) was a chaincode error: nothing reached the ledger, so the
/// patient never learnt of the attempt. Now, for a registered patient and well-formed
/// arguments, the attempt of a doctor or nurse is a successful transaction answering
/// `denied` and writes a denied access entry (kind `emergency_access`, ids and codes only)
/// and an `AccessDenied` event; no window opens. Other roles, bad arguments, unknown patients
/// and Blocked relations still change nothing.
#[test]
fn a_refused_break_glass_is_audited() {
    let mut n = world();
    let phi = ["Viral sinusitis", "Body Height"];
    for (who, reason, said) in [
        (
            "emergency4",
            "no-emergency-authority",
            "Org4MSP holds no break-glass authority",
        ),
        ("doctor1", "no-emergency-attribute", "ehr.emergency=true"),
        ("plain3", "no-emergency-attribute", "ehr.emergency=true"),
    ] {
        let r = n.call(who, &["EmergencyAccess", lpa(), "BTG"]);
        assert_eq!(r.status, 200, "{who}: {}", r.message);
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["decision"], "denied", "{v}");
        assert_eq!(v["reason"], reason, "{v}");
        assert!(v["message"].as_str().unwrap().contains(said), "{v}");
        assert!(v.get("expires_at_ms").is_none(), "{v}");
        assert_eq!(n.last_event_names(), ["AccessDenied"]);
        let text = String::from_utf8_lossy(&r.payload).into_owned();
        assert!(phi.iter().all(|p| !text.contains(p)), "{text}");
    }
    let audit = n.ok("patientA", &["ListAuditEntries", lpa()]);
    let denied: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "emergency_access")
        .collect();
    assert_eq!(denied.len(), 3, "{audit}");
    assert!(denied.iter().all(|e| e["decision"] == "denied"
        && e["emergency_reason"] == "BTG"
        && e.get("valid_until_ms").is_none()));
    assert_eq!(
        (
            denied[0]["requester_msp"].as_str(),
            denied[0]["reason"].as_str()
        ),
        (Some("Org4MSP"), Some("no-emergency-authority"))
    );
    assert_eq!(audit["summary"]["denied"], 3);
    assert_eq!(audit["summary"]["emergency"], 0);
    // No window opened: Org4's doctor has no consent either.
    let (_, d) = n.request(
        "emergency4",
        lpa(),
        &lr(PA, "Condition/cond-1"),
        "treatment",
    );
    assert_eq!(d, "denied");
    // Still refused without a trace: other roles, bad arguments, unknown patients.
    n.refused(Some("lab3"), &["EmergencyAccess", lpa(), "BTG"], &[], 403);
    n.refused(
        Some("patientA"),
        &["EmergencyAccess", lpa(), "BTG"],
        &[],
        403,
    );
    n.refused(
        Some("emergency4"),
        &["EmergencyAccess", lpa(), "NOW"],
        &[],
        400,
    );
    n.refused(
        Some("emergency4"),
        &["EmergencyAccess", &lp("nobody"), "BTG"],
        &[],
        404,
    );
}

/// On 9fbe16c a patient id registered by one organization answered another organization's
/// admin with a bare conflict, and a custodian retrying its own registration (a re-run
/// import) failed the same way. Now: another organization is refused (403) with the
/// custodian named; the custodian's retry returns the entry unchanged; the collection of a
/// registered patient never changes (409).
#[test]
fn a_patient_id_belongs_to_its_custodian() {
    let mut n = Net::new();
    let first = n.ok("admin1", &["RegisterPatient", lpa()]);
    for (who, args) in [
        ("admin2", vec!["RegisterPatient", lpa()]),
        ("admin2", vec!["RegisterPatient", lpa(), "Org2MSPPHI"]),
        ("admin3", vec!["RegisterPatient", lpa(), "Org1MSPPHI"]),
    ] {
        let m = n.refused(Some(who), &args, &[], 403);
        assert!(m.contains("belongs to custodian Org1MSP"), "{m}");
    }
    // The custodian's retry (admin or registrar): the entry, unchanged, nothing written.
    let before = n.snapshot();
    let again = n.ok("registrar1", &["RegisterPatient", lpa()]);
    assert_eq!(again, first);
    let again = n.ok("admin1", &["RegisterPatient", lpa(), "Org1MSPPHI"]);
    assert_eq!(again, first);
    assert_eq!(n.snapshot(), before);
    let m = n.refused(
        Some("admin1"),
        &["RegisterPatient", lpa(), "Org1Other"],
        &[],
        409,
    );
    assert!(m.contains("does not change"), "{m}");
    // Org2's CA cannot speak for the patient either (unchanged rule).
    n.refused(
        Some("patientA@org2"),
        &[
            "GrantConsent",
            &json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"},
            "purposes": ["treatment"], "valid_for_s": 60})
            .to_string(),
        ],
        &[],
        403,
    );
    assert_eq!(
        n.ok("doctor2", &["GetPatient", lpa()])["custodian_msp"],
        "Org1MSP"
    );
}

/// On 9fbe16c an identity's access state was keyed by its certificate's hash: after two
/// violations blocked Org2's doctor, re-enrolling (same registered identity, new key and
/// certificate) started from NoRelation, and the next out-of-consent request was merely
/// denied. Now the state is keyed by the person (the enrollment id): the new certificate is
/// Blocked too, until the patient and the custodian's admin reset it.
#[test]
fn blocked_follows_the_person_across_re_enrollment() {
    let mut n = Net::new();
    n.register(PA);
    n.create("doctor1", PA, &observation("obs-1", PA));
    n.create("doctor1", PA, &condition("cond-1", PA));
    let me = identity_id("doctor2");
    n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"identity": me}, "resource_types": ["Observation"],
               "purposes": ["treatment"], "valid_for_s": 3600}),
    );
    for _ in 0..2 {
        let (_, d) = n.request("doctor2", lpa(), &lr(PA, "Condition/cond-1"), "treatment");
        assert_eq!(d, "denied");
    }
    let grantee = format!("identity:{me}");
    assert_eq!(n.state(lpa(), &grantee), "Blocked");
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "NoRelation");

    // Re-enrollment: a new certificate, the same person.
    let old_certificate = ehr_chaincode::Caller::from_creator(&creator("doctor2")).certificate_id;
    reenroll("doctor2");
    let m = n.refused(
        Some("doctor2"),
        &[
            "RequestRecordAccess",
            lpa(),
            &lr(PA, "Observation/obs-1"),
            "treatment",
        ],
        &[],
        403,
    );
    assert!(m.contains("Blocked"), "{m}");
    n.refused(
        Some("doctor2"),
        &[
            "RequestRecordAccess",
            lpa(),
            &lr(PA, "Condition/cond-1"),
            "treatment",
        ],
        &[],
        403,
    );
    n.refused(
        Some("doctor2"),
        &[
            "RequestAccess",
            &json!({"patient_id": lpa(), "purposes": ["treatment"],
            "valid_for_s": 60, "for_identity": true})
            .to_string(),
        ],
        &[],
        403,
    );
    let after = n.ok("doctor2", &["WhoAmI"]);
    assert_ne!(after["certificate_id"], old_certificate.as_str());
    assert_eq!(after["identity_id"], me.as_str());
    // Another doctor of Org2 is not blocked (the organization has no relation).
    let (_, d) = n.request("doctor2b", lpa(), &lr(PA, "Observation/obs-1"), "treatment");
    assert_eq!(d, "denied");
    // The reset (patient and custodian admin) ends it; a new grant reaches the new
    // certificate.
    n.ok("patientA", &["ResetAccessState", lpa(), &grantee]);
    n.ok("admin1", &["ResetAccessState", lpa(), &grantee]);
    n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"identity": me}, "resource_types": ["Observation"],
               "purposes": ["treatment"], "valid_for_s": 3600}),
    );
    assert_eq!(
        n.read("doctor2", lpa(), &lr(PA, "Observation/obs-1"), "treatment"),
        observation("obs-1", PA)
    );
}

/// Issue 13 item 8: on 9fbe16c `ShareRecord` copied a record under a consent of another
/// purpose, under a consent to one identity of the grantee organization, and into any
/// collection the caller named. Each is refused now, changing nothing.
#[test]
fn share_record_needs_an_org_consent_of_that_purpose_and_goes_only_to_the_share_collection() {
    let mut n = world();
    // A consent to Org2 for Conditions, but for research only.
    n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"org": "Org2MSP"}, "resource_types": ["Condition"],
               "purposes": ["research"], "valid_for_s": 3600}),
    );
    let m = n.refused(
        Some("doctor1"),
        &[
            "ShareRecord",
            lpa(),
            &lr(PA, "Condition/cond-1"),
            "Org2MSP",
            "treatment",
        ],
        &[],
        403,
    );
    assert!(m.contains("Condition") && m.contains("treatment"), "{m}");
    // A consent to one Org2 doctor (identity scope) does not let Org2 hold a copy.
    let doc2 = identity_id("doctor2");
    n.grant(
        "patientA",
        json!({"patient_id": lpa(), "grantee": {"identity": doc2}, "resource_types": ["Condition"],
               "purposes": ["treatment"], "valid_for_s": 3600}),
    );
    let m = n.refused(
        Some("doctor1"),
        &[
            "ShareRecord",
            lpa(),
            &lr(PA, "Condition/cond-1"),
            "Org2MSP",
            "treatment",
        ],
        &[],
        403,
    );
    assert!(m.contains("identities"), "{m}");
    // No collection of the caller's choosing, not even the grantee's own.
    for named in ["Org2MSPPHI", "Org1MSPPHI", "Org3MSP-to-Org2MSP-PHI"] {
        n.refused(
            Some("doctor1"),
            &[
                "ShareRecord",
                lpa(),
                &lr(PA, "Observation/obs-1"),
                "Org2MSP",
                "treatment",
                named,
            ],
            &[],
            400,
        );
        n.refused(
            Some("doctor1"),
            &[
                "ShareRecord",
                lpa(),
                &lr(PA, "Observation/obs-1"),
                "Org2MSP",
                named,
            ],
            &[],
            400,
        );
    }
    // A Suspended relation: the patient must grant again.
    let (_, d) = n.request("doctor2b", lpa(), &lr(PA, "Condition/cond-1"), "treatment");
    assert_eq!(d, "denied");
    assert_eq!(n.state(lpa(), "org:Org2MSP"), "Suspended");
    let m = n.refused(
        Some("doctor1"),
        &[
            "ShareRecord",
            lpa(),
            &lr(PA, "Observation/obs-1"),
            "Org2MSP",
            "treatment",
        ],
        &[],
        403,
    );
    assert!(m.contains("Suspended"), "{m}");
    // Only Org1's collection holds records (every organization's own holds its pseudonym key).
    let key = ehr_chaincode::ids::pseudonym_key_key().unwrap();
    assert!(
        n.ledger
            .private_state()
            .keys()
            .all(|(c, k)| c == "Org1MSPPHI" || *k == key)
    );
}

/// An organization's confirmation is the set it confirmed last, and it may take it back
/// before the founding. On 8394f60 a confirmation could not be taken back: Org2 confirming
/// {Org1, Org2} and then {Org1, Org2, Org3} left the first standing, and Org1 alone completed
/// it — founding governance with Org2 and without Org3, against Org2's current word.
#[test]
fn a_stale_founding_confirmation_founds_nothing() {
    let mut n = Net::bare();
    n.register(PA);
    n.ok("gov2", &["JoinGovernance", "Org1MSP,Org2MSP"]);
    n.ok("gov2", &["JoinGovernance", "Org1MSP,Org2MSP,Org3MSP"]);
    let v = n.ok("gov1", &["JoinGovernance", "Org1MSP,Org2MSP"]);
    assert_eq!(v["status"], "confirmed", "{v}");
    assert_eq!(v["missing"], json!(["Org2MSP"]), "{v}");
    let g = n.ok("doctor1", &["GetGovernance"]);
    assert_eq!(g["members"], json!([]), "{g}");
    // One current confirmation per organization: {Org1, Org2} by Org1, the other by Org2.
    let sets = g["founding_sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{g}");
    for set in sets {
        assert_eq!(set["confirmed"].as_array().unwrap().len(), 1, "{g}");
    }
    assert_eq!(authority(&mut n, "Org1MSP", "emergency")["in_force"], false);
    denied_break_glass(&mut n, "doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
    // Withdrawing: only an MSP admin, only a confirmation it has, no arguments.
    n.refused(Some("doctor2"), &["WithdrawFounding"], &[], 403);
    n.refused(Some("gov3"), &["WithdrawFounding"], &[], 404);
    n.refused(Some("gov2"), &["WithdrawFounding", "x"], &[], 400);
    let v = n.ok("gov2", &["WithdrawFounding"]);
    assert_eq!(
        v["founders"],
        json!(["Org1MSP", "Org2MSP", "Org3MSP"]),
        "{v}"
    );
    n.refused(Some("gov2"), &["WithdrawFounding"], &[], 404);
    // Org3 confirms the three: Org2 withdrew, so the set is not complete.
    let v = n.ok("gov3", &["JoinGovernance", "Org1MSP,Org2MSP,Org3MSP"]);
    assert_eq!(v["missing"], json!(["Org1MSP", "Org2MSP"]), "{v}");
    // Org2 now confirms {Org1, Org2}, Org1's current set: that founds, without Org3.
    let v = n.ok("gov2", &["JoinGovernance", "Org1MSP,Org2MSP"]);
    assert_eq!(v["status"], "founded", "{v}");
    let g = n.ok("doctor1", &["GetGovernance"]);
    assert_eq!(g["members"].as_array().unwrap().len(), 2, "{g}");
    assert_eq!(authority(&mut n, "Org3MSP", "emergency")["in_force"], false);
    // Founded: confirmations are its record and are no longer withdrawn.
    n.refused(Some("gov1"), &["WithdrawFounding"], &[], 409);
    n.refused(Some("gov3"), &["WithdrawFounding"], &[], 409);
}

/// Writes raw public state, as an earlier chaincode version left it.
struct OldState(Vec<(String, Value)>);

impl medledger_chaincode::Chaincode for OldState {
    fn invoke(
        &self,
        stub: &dyn medledger_chaincode::ChaincodeStub,
    ) -> medledger_chaincode::Response {
        for (k, v) in &self.0 {
            stub.put_state(k, &serde_json::to_vec(v).unwrap()).unwrap();
        }
        medledger_chaincode::Response {
            status: 200,
            ..Default::default()
        }
    }
}

/// Governance written by the first design (8c73202) on an upgraded ledger: Org3's admin
/// joined alone and approved itself, and Org1 joining later approved Org3 on join; no member
/// has an `admitted_by`. On 8394f60 that governance still held — Org3's emergency doctor
/// broke the glass and its auditor read audit trails — and, members existing, no founding
/// set could replace it (409). Now it is not founded: it grants nothing, and a founding set
/// replaces it, its members and approvals removed.
#[test]
fn governance_of_the_first_design_grants_nothing_and_is_refounded() {
    use ehr_chaincode::ids::{gov_member_key, role_approval_key};
    let mut n = Net::bare();
    n.register(PA);
    let mut old = Vec::new();
    for org in ["Org3MSP", "Org1MSP"] {
        old.push((
            gov_member_key(org).unwrap(),
            json!({"msp_id": org, "joined_by": identity_id(&format!("gov{}", &org[3..4])),
                   "joined_at_ms": 1}),
        ));
        for role in ["emergency", "auditor"] {
            old.push((
                role_approval_key(role, "Org3MSP", org).unwrap(),
                json!({"role": role, "org": "Org3MSP", "approver_msp": org,
                       "approved_by": identity_id("gov3"), "approved_at_ms": 1}),
            ));
        }
    }
    let r = n.ledger.invoke(
        &OldState(old),
        medledger_chaincode::memory::test_context("old-state", &[]),
    );
    assert_eq!(r.status, 200, "{}", r.message);
    // Nothing counts: no member, no authority, break-glass denied, audit reads refused.
    let a = authority(&mut n, "Org3MSP", "emergency");
    assert_eq!(
        (&a["in_force"], &a["members"]),
        (&json!(false), &json!(0)),
        "{a}"
    );
    denied_break_glass(&mut n, "doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
    n.refused(Some("auditor3"), &["ListAuditEntries", lpa()], &[], 403);
    n.refused(
        Some("gov3"),
        &["ApproveRoleAuthority", "Org3MSP", "emergency"],
        &[],
        403,
    );
    n.refused(Some("gov3"), &["AdmitMember", "Org2MSP"], &[], 403);
    let g = n.ok("doctor1", &["GetGovernance"]);
    assert_eq!(g["members"], json!([]), "{g}");
    assert_eq!(g["legacy_members"].as_array().unwrap().len(), 2, "{g}");
    // A founding set of Org1 and Org2 replaces it: Org3's entry and approvals are gone.
    n.ok("gov2", &["JoinGovernance", "Org1MSP,Org2MSP"]);
    let v = n.ok("gov1", &["JoinGovernance", "Org1MSP,Org2MSP"]);
    assert_eq!(v["status"], "founded", "{v}");
    let g = n.ok("doctor1", &["GetGovernance"]);
    let members: Vec<&str> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msp_id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["Org1MSP", "Org2MSP"], "{g}");
    assert_eq!(g["legacy_members"], json!([]), "{g}");
    assert_eq!(g["authorities"].as_array().unwrap().len(), 4, "{g}");
    let a = authority(&mut n, "Org3MSP", "emergency");
    assert_eq!(
        (&a["in_force"], &a["approvals"]),
        (&json!(false), &json!([])),
        "{a}"
    );
    assert_eq!(authority(&mut n, "Org2MSP", "emergency")["in_force"], true);
    denied_break_glass(&mut n, "doctor3", &["EmergencyAccess", lpa(), "ETREAT"]);
    let v = n.ok("emergency2", &["EmergencyAccess", lpa(), "ETREAT"]);
    assert_ne!(v["decision"], "denied", "{v}");
}
