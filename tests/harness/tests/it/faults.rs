//! Scripted faults: crashed peers, cut-off organizations, stalled and falsifying Deliver,
//! slow chaincode. The network keeps committing, and every peer ends with the same ledger.

use std::time::Duration;

use medledger_harness::Harness;
use medledger_harness::net::DeliverFault;

use crate::common::{COMMIT_MS, assert_identical, register, registrars};

/// A peer crashed while transactions commit, restarted on its ledger directory, catches up.
#[test]
fn a_crashed_peer_restarts_on_its_ledger_and_catches_up() {
    let mut h = Harness::builder().orgs(2).peers_per_org(2).build().unwrap();
    let registrars = registrars(&mut h, 2);
    let mut tx_ids = register(&mut h, &registrars, 0, 4);
    h.run_until_committed(&tx_ids, COMMIT_MS).unwrap();
    let before = h.ledger(1, 1).unwrap().height();
    h.crash_peer(1, 1).unwrap();
    assert!(h.ledger(1, 1).is_err(), "a crashed peer does not run");
    let later = register(&mut h, &registrars, 4, 10);
    h.run_until_committed(&later, COMMIT_MS).unwrap();
    tx_ids.extend(later);
    h.restart_peer(1, 1).unwrap();
    assert_eq!(
        h.ledger(1, 1).unwrap().height(),
        before,
        "its ledger was kept"
    );
    h.run_until_committed(&tx_ids, COMMIT_MS).unwrap();
    assert_identical(&h, &tx_ids);
}

/// Three of four orderers withhold blocks from peers (they still order), orderer 4 (where
/// all four peers of this topology start) among them: every peer leaves its source after the
/// censorship timeout until it reaches the honest one.
#[test]
fn stalled_deliver_does_not_stop_commits() {
    let mut h = Harness::builder().orgs(2).peers_per_org(2).build().unwrap();
    for id in [4, 1, 2] {
        h.stall_deliver(id);
    }
    let registrars = registrars(&mut h, 2);
    let tx_ids = register(&mut h, &registrars, 0, 6);
    h.run_until_committed(&tx_ids, COMMIT_MS).unwrap();
    assert_identical(&h, &tx_ids);
    let switches: u64 = h.network().peers.iter().map(|p| p.switches).sum();
    assert!(
        switches >= 4,
        "every peer left orderer 4 (SEED={})",
        h.seed()
    );
}

/// Three of four orderers serve falsified blocks (entries dropped, a signature forged),
/// orderer 4 (every peer's first source here) among them: the peers refuse them, leave, and
/// commit the decided blocks from the honest one.
#[test]
fn falsifying_deliver_is_refused_and_commits_go_on() {
    let mut h = Harness::builder().orgs(2).peers_per_org(2).build().unwrap();
    h.falsify_deliver(4, DeliverFault::Resplit);
    h.falsify_deliver(1, DeliverFault::Forge);
    h.falsify_deliver(2, DeliverFault::Resplit);
    let registrars = registrars(&mut h, 2);
    let mut tx_ids = register(&mut h, &registrars, 0, 6);
    h.run_for(200).unwrap();
    tx_ids.extend(register(&mut h, &registrars, 6, 8));
    h.run_until_committed(&tx_ids, COMMIT_MS).unwrap();
    assert_identical(&h, &tx_ids);
    let refused: u64 = h.network().peers.iter().map(|p| p.refused).sum();
    assert!(
        refused > 0,
        "no falsified block reached a peer (SEED={})",
        h.seed()
    );
}

/// An organization cut off misses blocks, and catches up once healed; meanwhile the other
/// two of three still endorse (MAJORITY) and commit.
#[test]
fn a_partitioned_organization_catches_up_after_heal() {
    let mut h = Harness::builder().orgs(3).build().unwrap();
    let registrars = registrars(&mut h, 3);
    h.partition_org(2);
    let tx_ids = register(&mut h, &registrars, 0, 4);
    h.run_for(2_000).unwrap();
    assert_eq!(h.ledger(2, 0).unwrap().height(), 1, "cut off: genesis only");
    assert!(h.ledger(0, 0).unwrap().height() > 1);
    h.heal();
    h.run_until_committed(&tx_ids, COMMIT_MS).unwrap();
    assert_identical(&h, &tx_ids);
}

/// A transaction endorsed by a slow chaincode reaches the orderers that much later (virtual
/// time: the test does not wait).
#[test]
fn a_delayed_chaincode_delays_the_commit_by_virtual_time() {
    let mut h = Harness::builder().orgs(2).build().unwrap();
    let registrars = registrars(&mut h, 2);
    h.delay_chaincode(1, Duration::from_secs(5));
    let start = h.now_ms();
    let tx_ids = register(&mut h, &registrars, 0, 1);
    h.run_for(4_000).unwrap();
    assert_eq!(h.ledger(0, 0).unwrap().height(), 1, "not before the delay");
    h.run_until_committed(&tx_ids, COMMIT_MS).unwrap();
    assert!(h.now_ms() - start >= 5_000);
    assert_identical(&h, &tx_ids);
}
