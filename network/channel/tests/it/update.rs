//! Configuration updates: an organization joins with a majority of admins' signatures, a
//! minority is refused, an organization replaces its own CRL alone, and what config updates
//! may not change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::SystemTime;

use medledger_channel::config::ChannelConfig;
use medledger_channel::testing::{TestChannel, TestOrg};
use medledger_channel::update::{self, RequiredPolicy, UpdateError};
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_proto::common::{Envelope, Payload, Status};
use medledger_proto::medledger::channel as pb;
use prost::Message;

fn admins(ch: &mut TestChannel) -> Vec<SigningIdentity> {
    ch.orgs
        .iter_mut()
        .enumerate()
        .map(|(i, o)| o.identity(&format!("admin{i}"), NodeOu::Admin, &[]))
        .collect()
}

/// The payload data of a CONFIG_UPDATE envelope proposing `next`, signed by `signers`.
fn update_data(next: &pb::ChannelConfig, signers: &[&SigningIdentity]) -> Vec<u8> {
    let bytes = update::update_bytes(next);
    let sigs = signers
        .iter()
        .map(|s| update::sign_update(&bytes, s).unwrap())
        .collect();
    let env = update::update_envelope("ehr", bytes, sigs, signers[0], SystemTime::now()).unwrap();
    Payload::decode(env.payload.as_slice()).unwrap().data
}

fn with_org3(config: &ChannelConfig) -> (pb::ChannelConfig, TestOrg) {
    let org3 = TestOrg::new("LabMSP", "lab.example.com");
    let mut next = config.to_proto().clone();
    next.sequence += 1;
    next.organizations.push(org3.organization());
    (next, org3)
}

#[test]
fn an_organization_joins_with_a_majority_of_admins() {
    let mut ch = TestChannel::new("ehr", 3, 4);
    let a = admins(&mut ch);
    let (next, _org3) = with_org3(&ch.config);
    assert_eq!(
        update::required_policy(ch.config.to_proto(), &next),
        RequiredPolicy::ChannelAdmins
    );
    let now = SystemTime::now();

    // 2 of 3 admins: a majority.
    let joined = ch
        .config
        .apply_update(&update_data(&next, &[&a[0], &a[2]]), now)
        .unwrap();
    assert_eq!(joined.sequence(), 1);
    assert_eq!(
        joined.application_orgs().collect::<Vec<_>>(),
        ["Org1MSP", "Org2MSP", "Org3MSP", "LabMSP"]
    );
    assert!(joined.msps().msp("LabMSP").is_some());

    // 1 of 3: refused, FORBIDDEN.
    let e = ch
        .config
        .apply_update(&update_data(&next, &[&a[1]]), now)
        .unwrap_err();
    assert!(matches!(e, UpdateError::Forbidden(_)), "{e}");
    assert_eq!(e.status(), Status::Forbidden);
    // The same admin twice is still one organization's approval.
    let e = ch
        .config
        .apply_update(&update_data(&next, &[&a[1], &a[1]]), now)
        .unwrap_err();
    assert!(matches!(e, UpdateError::Forbidden(_)), "{e}");
    // A client (not an admin) of a second org does not count either.
    let client = ch.orgs[0].identity("client0", NodeOu::Client, &[]);
    let e = ch
        .config
        .apply_update(&update_data(&next, &[&a[1], &client]), now)
        .unwrap_err();
    assert!(matches!(e, UpdateError::Forbidden(_)), "{e}");
    // The joining organization's own admin does not count: it is not a member yet.
    let mut org3 = TestOrg::new("LabMSP", "lab.example.com");
    let org3_admin = org3.identity("admin3", NodeOu::Admin, &[]);
    let mut next3 = ch.config.to_proto().clone();
    next3.sequence += 1;
    next3.organizations.push(org3.organization());
    let e = ch
        .config
        .apply_update(&update_data(&next3, &[&a[1], &org3_admin]), now)
        .unwrap_err();
    assert!(matches!(e, UpdateError::Forbidden(_)), "{e}");

    // A signature over other bytes does not count.
    let bytes = update::update_bytes(&next);
    let mut forged = update::sign_update(&bytes, &a[0]).unwrap();
    forged.signature = update::sign_update(b"other", &a[0]).unwrap().signature;
    let good = update::sign_update(&bytes, &a[1]).unwrap();
    let env = update::update_envelope("ehr", bytes, vec![forged, good], &a[1], now).unwrap();
    let data = Payload::decode(env.payload.as_slice()).unwrap().data;
    assert!(matches!(
        ch.config.apply_update(&data, now),
        Err(UpdateError::Forbidden(_))
    ));
}

#[test]
fn stale_or_unsupported_updates_are_refused() {
    let mut ch = TestChannel::new("ehr", 2, 4);
    let a = admins(&mut ch);
    let now = SystemTime::now();
    let (mut next, _org3) = with_org3(&ch.config);

    next.sequence = 5;
    assert_eq!(
        ch.config
            .apply_update(&update_data(&next, &[&a[0], &a[1]]), now)
            .unwrap_err(),
        UpdateError::WrongSequence {
            got: 5,
            expected: 1
        }
    );
    next.sequence = 1;
    let mut consenters = next.clone();
    consenters.consenters.pop();
    assert!(matches!(
        ch.config
            .apply_update(&update_data(&consenters, &[&a[0], &a[1]]), now)
            .unwrap_err(),
        UpdateError::Unsupported(_)
    ));
    let mut same = ch.config.to_proto().clone();
    same.sequence = 1;
    assert!(matches!(
        ch.config
            .apply_update(&update_data(&same, &[&a[0], &a[1]]), now)
            .unwrap_err(),
        UpdateError::Unsupported(_)
    ));
    let mut bad_policy = next.clone();
    bad_policy
        .policies
        .insert("Admins".into(), "OR('Org9MSP.admin')".into());
    assert!(matches!(
        ch.config
            .apply_update(&update_data(&bad_policy, &[&a[0], &a[1]]), now)
            .unwrap_err(),
        UpdateError::InvalidConfig(_)
    ));
    assert!(matches!(
        ch.config.apply_update(b"\xff\xff", now).unwrap_err(),
        UpdateError::Malformed(_)
    ));
}

#[test]
fn an_organization_replaces_its_own_crl_alone() {
    let mut ch = TestChannel::new("ehr", 2, 4);
    let a = admins(&mut ch);
    let now = SystemTime::now();
    let doctor = ch.orgs[1].identity("doctor", NodeOu::Client, &[]);
    assert!(
        ch.config
            .msps()
            .verify(doctor.serialized(), b"m", &doctor.sign(b"m").unwrap(), now)
            .is_ok()
    );
    let next = ch.config_revoking(1, "doctor");
    assert_eq!(
        update::required_policy(ch.config.to_proto(), &next),
        RequiredPolicy::OrgAdmins("Org2MSP".into())
    );
    // Org1's admin alone cannot change Org2's CRL.
    assert!(matches!(
        ch.config.apply_update(&update_data(&next, &[&a[0]]), now),
        Err(UpdateError::Forbidden(_))
    ));
    let updated = ch
        .config
        .apply_update(&update_data(&next, &[&a[1]]), now)
        .unwrap();
    assert!(
        updated
            .msps()
            .verify(doctor.serialized(), b"m", &doctor.sign(b"m").unwrap(), now)
            .is_err(),
        "the revoked identity is refused under the new configuration"
    );
}

#[test]
fn a_config_update_block_carries_the_new_configuration() {
    let mut ch = TestChannel::new("ehr", 2, 4);
    let a = admins(&mut ch);
    let (next, _org3) = with_org3(&ch.config);
    let bytes = update::update_bytes(&next);
    let sigs = vec![
        update::sign_update(&bytes, &a[0]).unwrap(),
        update::sign_update(&bytes, &a[1]).unwrap(),
    ];
    let env = update::update_envelope("ehr", bytes, sigs, &a[0], SystemTime::now()).unwrap();
    let raw = env.encode_to_vec();
    assert!(update::is_config_update(&raw));
    let b = medledger_channel::block::new_block(1, &[0; 32], vec![raw]);
    let read = ChannelConfig::from_config_block(&b).unwrap();
    assert_eq!(read.to_proto(), &next);
    assert!(!update::is_config_update(
        &Envelope::default().encode_to_vec()
    ));
}
