//! Config blocks at the committer: an organization added by a majority of admins takes effect
//! after its block; an update sharing its block or signed by a minority is
//! `INVALID_CONFIG_TRANSACTION` and changes nothing; a reopened committer runs with the last
//! configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CC, CHANNEL, Net, Peer};
use medledger_channel::block;
use medledger_channel::update;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_peer::testing::{TxSpec, write};
use medledger_proto::common::Envelope;
use medledger_proto::kvrwset::KvrwSet;
use medledger_proto::protos::TxValidationCode as C;

fn update_envelope(net: &Net, sequence: u64, signers: &[&SigningIdentity]) -> Envelope {
    let mut next = net.ch.config.to_proto().clone();
    next.sequence = sequence;
    next.organizations.push(net.outsider_org.organization());
    let bytes = update::update_bytes(&next);
    let sigs = signers
        .iter()
        .map(|s| update::sign_update(&bytes, s).unwrap())
        .collect();
    update::update_envelope(
        CHANNEL,
        bytes,
        sigs,
        signers[0],
        std::time::SystemTime::now(),
    )
    .unwrap()
}

fn put(net: &Net, key: &str) -> Envelope {
    let spec = TxSpec::kv(
        CC,
        KvrwSet {
            writes: vec![write(key, b"v")],
            ..Default::default()
        },
    );
    net.tx(&spec).0
}

#[test]
fn a_config_block_switches_the_committers_configuration() {
    let mut net = Net::new();
    let admin1 = net.ch.orgs[0].identity("admin1", NodeOu::Admin, &[]);
    let admin2 = net.ch.orgs[1].identity("admin2", NodeOu::Admin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let sequence = peer.committer.config_sequence();
    assert!(peer.committer.config().msps().msp("Org9MSP").is_none());

    // Not alone in its block: invalid, the other transaction still valid.
    let majority = update_envelope(&net, 1, &[&admin1, &admin2]);
    let s = peer.commit(&net, &[put(&net, "a"), majority.clone()]);
    assert_eq!(s.codes, [C::Valid, C::InvalidConfigTransaction]);
    assert_eq!(peer.committer.config().sequence(), 0);

    // A minority: invalid.
    let minority = update_envelope(&net, 1, &[&admin1]);
    let s = peer.commit(&net, &[minority]);
    assert_eq!(s.codes, [C::InvalidConfigTransaction]);
    assert_eq!(peer.committer.config().sequence(), 0);

    // A majority, alone: valid; the new organization's MSP is in force from the next block.
    let s = peer.commit(&net, &[update_envelope(&net, 1, &[&admin1, &admin2])]);
    assert_eq!(s.codes, [C::Valid]);
    let config = peer.committer.config();
    assert_eq!(config.sequence(), 1);
    assert!(config.msps().msp("Org9MSP").is_some());
    assert_eq!(*sequence.borrow(), 1);
    let height = peer.ledger().height();
    let stored = peer.ledger().block(height - 1).unwrap().unwrap();
    assert_eq!(block::last_config_index(&stored), height - 1);

    // The same update again (sequence 1 is no longer next): invalid.
    let s = peer.commit(&net, &[majority]);
    assert_eq!(s.codes, [C::InvalidConfigTransaction]);
    let s = peer.commit(&net, &[put(&net, "b")]);
    assert_eq!(s.codes, [C::Valid]);
    let last = peer.ledger().block(height + 1).unwrap().unwrap();
    assert_eq!(block::last_config_index(&last), height - 1);

    // Reopened: the configuration of the last config block, not the genesis block's.
    drop(peer);
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    assert_eq!(peer.committer.config().sequence(), 1);
    assert!(peer.committer.config().msps().msp("Org9MSP").is_some());
}
