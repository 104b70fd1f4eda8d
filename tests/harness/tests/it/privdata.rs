//! Private data on every member peer: the endorser keeps it in its durable transient store
//! across a crash, and a member peer that did not endorse gets it from one that holds it
//! (the peer's reconciler, `medledger_peer::privdata`), checked against the block's hashes;
//! a non-member never does.

use ehr_chaincode::TRANSIENT_PSEUDONYM_KEY;
use ehr_chaincode::ids::{PseudonymKey, default_collection, pseudonym_key_key};
use medledger_harness::{Harness, net::msp_id};

use crate::common::{COMMIT_MS, assert_identical};

/// Org1's admin sets its pseudonym key (written to `Org1MSPPHI` only, endorsed by Org1's
/// peer 0 alone, as `EhrClient::set_pseudonym_key` names its own organization). Peer 0
/// crashes before the block reaches it: Org1's peer 1 commits the block without the key and
/// cannot get it (nobody else holds it). Restarted, peer 0 commits the block with the key
/// from its transient store, and peer 1 then reconciles it from peer 0. Org2's peers, not
/// members, hold no value and miss nothing.
///
/// Before the harness had durable transient stores and reconciliation, peer 0 restarted with
/// an empty transient store and neither Org1 peer ever held the key.
#[test]
fn private_data_survives_the_endorsers_restart_and_reaches_the_second_member_peer() {
    let mut h = Harness::builder().orgs(2).peers_per_org(2).build().unwrap();
    let admin = h.admin(0, "org1-admin", &[("ehr.role", "admin")]);
    let key = PseudonymKey::from_bytes(&[0x51; PseudonymKey::LEN]).unwrap();
    let tx = h
        .submit_endorsed_by(
            &admin,
            &[0],
            &["SetPseudonymKey"],
            &[(TRANSIENT_PSEUDONYM_KEY, key.as_bytes().as_slice())],
        )
        .unwrap();
    h.crash_peer(0, 0).unwrap();
    h.run_until_committed(std::slice::from_ref(&tx), COMMIT_MS)
        .unwrap();
    let collection = default_collection(&msp_id(0));
    let stored = |h: &Harness, org: usize, peer: usize| {
        h.ledger(org, peer)
            .unwrap()
            .get_private("ehr", &collection, &pseudonym_key_key().unwrap())
            .unwrap()
            .map(|v| v.value)
    };
    assert_eq!(stored(&h, 0, 1), None, "nobody running holds the key yet");
    assert_eq!(h.ledger(0, 1).unwrap().missing_private().unwrap().len(), 1);

    h.restart_peer(0, 0).unwrap();
    h.run_until_committed(std::slice::from_ref(&tx), COMMIT_MS)
        .unwrap();
    // Peer 1's next reconciliation round (at most a second of virtual time).
    h.run_for(1_100).unwrap();
    for peer in [0, 1] {
        assert_eq!(
            stored(&h, 0, peer).as_deref(),
            Some(key.as_bytes().as_slice()),
            "Org1's peer {peer} (SEED={})",
            h.seed()
        );
        assert!(
            h.ledger(0, peer)
                .unwrap()
                .missing_private()
                .unwrap()
                .is_empty()
        );
    }
    for peer in [0, 1] {
        assert_eq!(
            stored(&h, 1, peer),
            None,
            "Org2's peer {peer} holds Org1's key"
        );
        assert!(
            h.ledger(1, peer)
                .unwrap()
                .missing_private()
                .unwrap()
                .is_empty()
        );
    }
    // The endorser's transient store let go of the committed transaction's private data.
    let endorser = h
        .network()
        .peers
        .iter()
        .find(|p| (p.org, p.index) == (0, 0))
        .unwrap();
    assert!(endorser.transient.get(&tx).unwrap().is_none());
    assert_identical(&h, &[tx]);
}
