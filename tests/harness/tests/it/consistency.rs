//! After a seeded workload every peer holds the same ledger.

use medledger_harness::Harness;

use crate::common::{COMMIT_MS, assert_identical, register, registrars};

/// 3 organizations × 2 peers: 24 registrations by every organization's registrar commit as
/// valid on all 6 peers, which end with the same block hashes and the same state.
#[test]
fn every_peer_ends_with_the_same_ledger() {
    let mut h = Harness::builder().orgs(3).peers_per_org(2).build().unwrap();
    let registrars = registrars(&mut h, 3);
    let mut tx_ids = register(&mut h, &registrars, 0, 12);
    h.run_for(150).unwrap();
    tx_ids.extend(register(&mut h, &registrars, 12, 24));
    h.run_until_committed(&tx_ids, COMMIT_MS).unwrap();
    assert_eq!(h.peers().len(), 6);
    assert!(h.ledger(0, 0).unwrap().height() > 2, "more than one block");
    assert_identical(&h, &tx_ids);
}
