//! Config blocks at the committer: an organization added by a majority of admins takes effect
//! after its block; an update sharing its block or signed by a minority is
//! `INVALID_CONFIG_TRANSACTION` and changes nothing; a reopened committer runs with the last
//! configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::{CC, CHANNEL, Net, Peer};
use medledger_channel::block;
use medledger_channel::update;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_peer::Error;
use medledger_peer::testing::{TxSpec, write};
use medledger_peer::validator::BlockPrivateData;
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

/// Commits `envs` as the next block; the error if the committer refuses it.
fn try_commit(peer: &Peer, net: &Net, envs: &[Envelope]) -> Result<Vec<C>, Error> {
    let b = peer.next_block(net, envs);
    peer.committer
        .commit_block(b, &BlockPrivateData::new())
        .map(|s| s.codes)
}

/// Issue 14 item 6: a configuration transaction the ordering service put in a signed block but
/// this peer finds invalid (not alone in its block, signed by a minority, a replay) halts the
/// channel on the peer: the block is not written, nothing later is committed, the error says
/// why. On 4436d0b such a transaction was marked INVALID_CONFIG_TRANSACTION and the peer went
/// on with a configuration the rest of the network might not share.
fn assert_halts(peer: &Peer, net: &Net, envs: &[Envelope]) {
    let height = peer.ledger().height();
    match try_commit(peer, net, envs) {
        Err(Error::ChannelHalted { block, reason, .. }) => {
            assert_eq!(block, height);
            assert!(reason.contains("configuration transaction"), "{reason}");
        }
        other => panic!("expected the channel to halt, got {other:?}"),
    }
    assert_eq!(peer.ledger().height(), height, "the block was written");
    assert!(peer.committer.halted().is_some());
    assert!(
        matches!(
            try_commit(peer, net, &[put(net, "after")]),
            Err(Error::ChannelHalted { .. })
        ),
        "a halted channel committed a later block"
    );
}

#[test]
fn a_config_block_switches_the_committers_configuration() {
    let mut net = Net::new();
    let admin1 = net.ch.orgs[0].identity("admin1", NodeOu::Admin, &[]);
    let admin2 = net.ch.orgs[1].identity("admin2", NodeOu::Admin, &[]);

    // Not alone in its block, or signed by a minority: the peer halts.
    for envs in [
        vec![
            put(&net, "a"),
            update_envelope(&net, 1, &[&admin1, &admin2]),
        ],
        vec![update_envelope(&net, 1, &[&admin1])],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let peer = Peer::open(&net, dir.path(), "Org1MSP");
        assert_halts(&peer, &net, &envs);
        assert_eq!(peer.committer.config().sequence(), 0);
    }

    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let sequence = peer.committer.config_sequence();
    assert!(peer.committer.config().msps().msp("Org9MSP").is_none());
    assert_eq!(
        try_commit(&peer, &net, &[put(&net, "a")]).unwrap(),
        [C::Valid]
    );

    // A majority, alone: valid; the new organization's MSP is in force from the next block.
    let majority = update_envelope(&net, 1, &[&admin1, &admin2]);
    let s = peer.commit(&net, std::slice::from_ref(&majority));
    assert_eq!(s.codes, [C::Valid]);
    let config = peer.committer.config();
    assert_eq!(config.sequence(), 1);
    assert!(config.msps().msp("Org9MSP").is_some());
    assert_eq!(*sequence.borrow(), 1);
    let height = peer.ledger().height();
    let stored = peer.ledger().block(height - 1).unwrap().unwrap();
    assert_eq!(block::last_config_index(&stored), height - 1);
    let s = peer.commit(&net, &[put(&net, "b")]);
    assert_eq!(s.codes, [C::Valid]);
    let last = peer.ledger().block(height).unwrap().unwrap();
    assert_eq!(block::last_config_index(&last), height - 1);

    // The same update again (sequence 1 is no longer next): the peer halts.
    assert_halts(&peer, &net, &[majority]);
    assert!(
        peer.committer.ledger().height() == height + 1,
        "nothing after the halt"
    );

    // Reopened: the configuration of the last config block, not the genesis block's.
    drop(peer);
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    assert_eq!(peer.committer.config().sequence(), 1);
    assert!(peer.committer.config().msps().msp("Org9MSP").is_some());
}
