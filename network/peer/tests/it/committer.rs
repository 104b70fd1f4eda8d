//! Committer acceptance tests: blocks of endorsed transactions with real signatures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{CC, CHANNEL, Net, Peer, phi_definition};
use medledger_channel::block;
use medledger_ledger_api::Version;
use medledger_msp::crypto::sha256;
use medledger_msp::policy::Policy;
use medledger_peer::Error;
use medledger_peer::definitions::ChaincodeDefinition;
use medledger_peer::testing::{
    TxSpec, delete, endorsed_tx, endorsed_tx_at, key_policy, ns, private_writes, range, read,
    tx_private, write,
};
use medledger_peer::validator::BlockPrivateData;
use medledger_proto::common::{BlockMetadataIndex, Envelope, Payload};
use medledger_proto::kvrwset::{HashedRwSet, KvWriteHash, KvrwSet};
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ProposalResponsePayload, Transaction,
    TxValidationCode as C,
};
use medledger_proto::rwset::TxReadWriteSet;
use prost::Message;

fn kv(
    reads: Vec<medledger_proto::kvrwset::KvRead>,
    writes: Vec<medledger_proto::kvrwset::KvWrite>,
) -> KvrwSet {
    KvrwSet {
        reads,
        writes,
        ..Default::default()
    }
}

fn writes(pairs: &[(&str, &str)]) -> TxSpec {
    TxSpec::kv(
        CC,
        kv(
            vec![],
            pairs.iter().map(|(k, v)| write(k, v.as_bytes())).collect(),
        ),
    )
}

fn value(peer: &Peer, key: &str) -> Option<(Vec<u8>, Version)> {
    peer.ledger()
        .get_state(CC, key)
        .unwrap()
        .map(|v| (v.value, v.version))
}

#[test]
fn valid_transactions_update_state_history_and_tx_index() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let mut events = peer.committer.subscribe();

    let (t1, id1) = net.tx(&writes(&[("a", "1"), ("b", "2")]));
    let s = peer.commit(&net, &[t1]);
    assert_eq!(s.codes, vec![C::Valid]);
    let (t2, id2) = net.tx(&TxSpec::kv(
        CC,
        kv(
            vec![read("a", Some((1, 0)))],
            vec![write("a", b"3"), delete("b")],
        ),
    ));
    let s = peer.commit(&net, &[t2]);
    assert_eq!((s.block_number, s.codes), (2, vec![C::Valid]));

    assert_eq!(value(&peer, "a"), Some((b"3".to_vec(), Version::new(2, 0))));
    assert_eq!(value(&peer, "b"), None);
    let hist: Vec<_> = peer
        .ledger()
        .history(CC, "a")
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(hist.len(), 2);
    assert_eq!(
        (hist[0].tx_id.as_str(), hist[0].value.as_slice()),
        (id2.as_str(), b"3".as_slice())
    );
    assert_eq!(
        (hist[1].tx_id.as_str(), hist[1].block_num),
        (id1.as_str(), 1)
    );
    let hist_b: Vec<_> = peer
        .ledger()
        .history(CC, "b")
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(hist_b[0].is_delete && !hist_b[1].is_delete);

    let loc = peer
        .ledger()
        .tx_location(&id2.parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!((loc.block_num, loc.tx_num, loc.code), (2, 0, C::Valid));
    let b = peer
        .ledger()
        .block_by_tx_id(&id1.parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(block::number(&b), 1);
    assert_eq!(
        block::metadata_bytes(&b, BlockMetadataIndex::TransactionsFilter),
        &[C::Valid as u8]
    );
    let commit_hash = block::metadata(&b, BlockMetadataIndex::CommitHash)
        .unwrap()
        .value;
    assert_eq!(commit_hash.len(), 32);

    let e1 = events.try_recv().unwrap();
    assert_eq!(
        (e1.block_number, e1.txs[0].tx_id.as_str(), e1.txs[0].code),
        (1, id1.as_str(), C::Valid)
    );
    assert_eq!(*peer.committer.height().borrow(), 3);
}

#[test]
fn same_key_twice_in_a_block_is_an_mvcc_conflict() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    peer.commit(&net, &[net.tx(&writes(&[("k", "0")])).0]);
    let rw = |v: &str| {
        TxSpec::kv(
            CC,
            kv(
                vec![read("k", Some((1, 0)))],
                vec![write("k", v.as_bytes())],
            ),
        )
    };
    let (t1, _) = net.tx(&rw("1"));
    let (t2, id2) = net.tx(&rw("2"));
    let s = peer.commit(&net, &[t1, t2]);
    assert_eq!(s.codes, vec![C::Valid, C::MvccReadConflict]);
    assert_eq!(value(&peer, "k").unwrap().0, b"1");
    assert_eq!(
        peer.ledger()
            .tx_validation_code(&id2.parse().unwrap())
            .unwrap(),
        Some(C::MvccReadConflict)
    );
    // A stale read in a later block conflicts too; so does reading as absent a key that exists.
    let (t3, _) = net.tx(&rw("3"));
    let (t4, _) = net.tx(&TxSpec::kv(
        CC,
        kv(vec![read("k", None)], vec![write("x", b"1")]),
    ));
    assert_eq!(
        peer.commit(&net, &[t3, t4]).codes,
        vec![C::MvccReadConflict, C::MvccReadConflict]
    );
    assert_eq!(value(&peer, "k").unwrap().0, b"1");
}

#[test]
fn range_read_phantoms_are_caught() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    peer.commit(&net, &[net.tx(&writes(&[("r1", "x"), ("r3", "x")])).0]);
    let ranged = || {
        TxSpec::kv(
            CC,
            KvrwSet {
                range_queries_info: vec![range(
                    "r",
                    "s",
                    vec![read("r1", Some((1, 0))), read("r3", Some((1, 0)))],
                )],
                writes: vec![write("summary", b"2")],
                ..Default::default()
            },
        )
    };
    // Unchanged range: valid.
    let (ok, _) = net.tx(&ranged());
    assert_eq!(peer.commit(&net, &[ok]).codes, vec![C::Valid]);
    // An earlier transaction of the same block inserts r2 into the range: phantom.
    let (insert, _) = net.tx(&writes(&[("r2", "x")]));
    let (phantom, _) = net.tx(&ranged());
    assert_eq!(
        peer.commit(&net, &[insert, phantom]).codes,
        vec![C::Valid, C::PhantomReadConflict]
    );
    // Deleting a key of the range in an earlier block: phantom too.
    peer.commit(
        &net,
        &[net
            .tx(&TxSpec::kv(
                CC,
                kv(vec![], vec![delete("r2"), delete("r3")]),
            ))
            .0],
    );
    let (phantom, _) = net.tx(&ranged());
    assert_eq!(
        peer.commit(&net, &[phantom]).codes,
        vec![C::PhantomReadConflict]
    );
    // A key outside the range does not matter.
    let (outside, _) = net.tx(&TxSpec::kv(
        CC,
        KvrwSet {
            range_queries_info: vec![range("r", "s", vec![read("r1", Some((1, 0)))])],
            writes: vec![write("t9", b"1")],
            ..Default::default()
        },
    ));
    assert_eq!(peer.commit(&net, &[outside]).codes, vec![C::Valid]);
}

#[test]
fn replayed_tx_id_is_a_duplicate() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let (t, id) = net.tx(&writes(&[("a", "1")]));
    assert_eq!(
        peer.commit(&net, &[t.clone(), t.clone()]).codes,
        vec![C::Valid, C::DuplicateTxid]
    );
    assert_eq!(peer.commit(&net, &[t]).codes, vec![C::DuplicateTxid]);
    let loc = peer
        .ledger()
        .tx_location(&id.parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!((loc.block_num, loc.code), (1, C::Valid));
}

#[test]
fn endorsements_below_the_policy_or_by_non_members_fail() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let spec = writes(&[("a", "1")]);
    let (one_org, _) = net.tx_by(&spec, &[&net.peer1]);
    let (same_org_twice, _) = net.tx_by(&spec, &[&net.peer1, &net.peer1b]);
    let (same_identity_twice, _) = net.tx_by(&spec, &[&net.peer1, &net.peer1]);
    let (outsider, _) = net.tx_by(&spec, &[&net.peer1, &net.outsider]);
    let (client_endorses, _) = net.tx_by(&spec, &[&net.peer1, &net.client]);
    let (none, _) = net.tx_by(&spec, &[]);
    let (ok, _) = net.tx(&spec);
    let s = peer.commit(
        &net,
        &[
            one_org,
            same_org_twice,
            same_identity_twice,
            outsider,
            client_endorses,
            none,
            ok,
        ],
    );
    assert_eq!(
        s.codes,
        vec![
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::Valid
        ]
    );
}

/// Decodes an envelope down to its chaincode action, lets `edit` change it, re-encodes.
fn edit_action(
    env: &Envelope,
    resign: Option<&medledger_msp::identity::SigningIdentity>,
    edit: impl FnOnce(&mut ChaincodeAction, &mut ChaincodeActionPayload),
) -> Envelope {
    let mut payload = Payload::decode(env.payload.as_slice()).unwrap();
    let mut tx = Transaction::decode(payload.data.as_slice()).unwrap();
    let mut cap = ChaincodeActionPayload::decode(tx.actions[0].payload.as_slice()).unwrap();
    let endorsed = cap.action.as_mut().unwrap();
    let mut prp =
        ProposalResponsePayload::decode(endorsed.proposal_response_payload.as_slice()).unwrap();
    let mut cca = ChaincodeAction::decode(prp.extension.as_slice()).unwrap();
    let mut cap2 = cap.clone();
    edit(&mut cca, &mut cap2);
    prp.extension = cca.encode_to_vec();
    let endorsed = cap.action.as_mut().unwrap();
    endorsed.proposal_response_payload = prp.encode_to_vec();
    cap.chaincode_proposal_payload = cap2.chaincode_proposal_payload;
    tx.actions[0].payload = cap.encode_to_vec();
    payload.data = tx.encode_to_vec();
    let payload = payload.encode_to_vec();
    let signature = match resign {
        Some(id) => id.sign(&payload).unwrap(),
        None => env.signature.clone(),
    };
    Envelope { payload, signature }
}

#[test]
fn tampered_transactions_are_rejected_with_their_codes() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let (t1, _) = net.tx(&writes(&[("a", "1")]));
    let (t2, _) = net.tx(&writes(&[("a", "1")]));
    let (t3, _) = net.tx(&writes(&[("a", "1")]));
    let (t4, _) = net.tx(&writes(&[("a", "1")]));
    let tamper_rwset = |cca: &mut ChaincodeAction, _: &mut ChaincodeActionPayload| {
        let mut rw = TxReadWriteSet::decode(cca.results.as_slice()).unwrap();
        rw.ns_rwset[0] = ns(CC, kv(vec![], vec![write("a", b"999")]));
        cca.results = rw.encode_to_vec();
    };
    // The write set changed after everyone signed: the creator's signature breaks.
    let forged = edit_action(&t1, None, tamper_rwset);
    // The creator re-signs a changed write set: the endorsements no longer match it.
    let resigned = edit_action(&t2, Some(&net.client), tamper_rwset);
    // A different proposal under the same endorsement: proposal hash mismatch.
    let other_proposal = edit_action(&t3, Some(&net.client), |_, cap| {
        cap.chaincode_proposal_payload = b"other".to_vec();
    });
    // A block entry whose payload has no header.
    let headerless = Envelope {
        payload: Payload {
            header: None,
            data: b"x".to_vec(),
        }
        .encode_to_vec(),
        signature: vec![1, 2, 3],
    };
    let mut bad_sig = t4.clone();
    let n = bad_sig.signature.len();
    bad_sig.signature[n - 3] ^= 1;
    let s = peer.commit(
        &net,
        &[forged, resigned, other_proposal, headerless, bad_sig],
    );
    assert_eq!(
        s.codes,
        vec![
            C::BadCreatorSignature,
            C::EndorsementPolicyFailure,
            C::InvalidEndorserTransaction,
            C::BadCommonHeader,
            C::BadCreatorSignature
        ]
    );
    assert_eq!(value(&peer, "a"), None);
    // The originals whose signatures broke still commit: forged copies did not claim their
    // tx_ids. The creator's own re-signed variant did claim its tx_id.
    assert_eq!(
        peer.commit(&net, &[t1, t4, t2]).codes,
        vec![C::Valid, C::Valid, C::DuplicateTxid]
    );
}

/// Issue 13 item 6: a transaction is judged at its block's ordering time (signed by the
/// consenters), not at the time its client wrote in the header. On 8c73202 both transactions
/// below were valid: identities were checked at the header timestamp, which nothing bounded.
#[test]
fn transactions_are_judged_at_the_blocks_ordering_time() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let commit_at = |envs: &[Envelope], ordered: SystemTime| {
        let info = peer.ledger().info();
        let mut b = block::new_block(
            info.height,
            &info.current_hash,
            envs.iter().map(Message::encode_to_vec).collect(),
        );
        net.ch.sign_block_at(&mut b, &[1, 2, 3], 0, ordered);
        peer.committer
            .commit_block(b, &BlockPrivateData::new())
            .unwrap()
            .codes
    };
    let endorsers = [&net.peer1, &net.peer2];
    // Endorsed while every certificate was valid (stamped two minutes before they expire),
    // ordered two minutes after they expired: the creator is no longer valid.
    let expiry = SystemTime::UNIX_EPOCH
        + Duration::from_secs(net.client.certificate().not_after().try_into().unwrap());
    let (late, _) = endorsed_tx_at(
        CHANNEL,
        &net.client,
        &writes(&[("a", "1")]),
        &endorsers,
        expiry - Duration::from_secs(120),
    );
    assert_eq!(
        commit_at(&[late], expiry + Duration::from_secs(120)),
        vec![C::BadCreatorSignature]
    );
    // Stamped now, ordered an hour later: a backdated header beyond the skew.
    let now = SystemTime::now();
    let (held, _) = endorsed_tx_at(
        CHANNEL,
        &net.client,
        &writes(&[("a", "2")]),
        &endorsers,
        now,
    );
    assert_eq!(
        commit_at(&[held], now + Duration::from_secs(3600)),
        vec![C::BadChannelHeader]
    );
    assert_eq!(value(&peer, "a"), None);
    // Within the skew either way: valid.
    let (early, _) = endorsed_tx_at(
        CHANNEL,
        &net.client,
        &writes(&[("a", "3")]),
        &endorsers,
        now + Duration::from_secs(60),
    );
    assert_eq!(
        commit_at(&[early], now + Duration::from_secs(10)),
        vec![C::Valid]
    );
    assert_eq!(value(&peer, "a").unwrap().0, b"3");
}

#[test]
fn blocks_without_valid_orderer_signatures_are_refused_whole() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let (t, _) = net.tx(&writes(&[("a", "1")]));
    let info = peer.ledger().info();
    let below_quorum = medledger_peer::testing::signed_block(
        &net.ch,
        1,
        &info.current_hash,
        std::slice::from_ref(&t),
        &[1, 2],
    );
    let mut forged_sig = peer.next_block(&net, std::slice::from_ref(&t));
    {
        let mut meta = block::metadata(&forged_sig, BlockMetadataIndex::Signatures).unwrap();
        meta.signatures[0].signature[8] ^= 1;
        block::set_metadata_bytes(
            &mut forged_sig,
            BlockMetadataIndex::Signatures,
            meta.encode_to_vec(),
        );
    }
    let mut altered_data = peer.next_block(&net, std::slice::from_ref(&t));
    altered_data
        .data
        .as_mut()
        .unwrap()
        .data
        .push(b"smuggled".to_vec());
    let wrong_chain = medledger_peer::testing::signed_block(
        &net.ch,
        1,
        &[7; 32],
        std::slice::from_ref(&t),
        &[1, 2, 3],
    );
    let unsigned =
        medledger_channel::block::new_block(1, &info.current_hash, vec![t.encode_to_vec()]);
    for b in [
        below_quorum,
        forged_sig,
        altered_data,
        wrong_chain,
        unsigned,
    ] {
        let err = peer
            .committer
            .commit_block(b, &BlockPrivateData::new())
            .unwrap_err();
        assert!(matches!(err, Error::BlockRefused { block: 1, .. }), "{err}");
    }
    assert_eq!(peer.ledger().height(), 1);
    assert_eq!(value(&peer, "a"), None);
    assert_eq!(peer.commit(&net, &[t]).codes, vec![C::Valid]);
}

#[test]
fn key_level_policy_lets_the_custodian_alone_update_its_key() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    peer.defs.insert(ChaincodeDefinition {
        name: CC.into(),
        endorsement_policy: Policy::Signature(
            "AND('Org1MSP.peer', 'Org2MSP.peer')".parse().unwrap(),
        ),
        collections: BTreeMap::new(),
    });
    // Both orgs create the record and hand it to Org1 (custodian).
    let (create, _) = net.tx(&TxSpec::kv(
        CC,
        KvrwSet {
            writes: vec![write("rec", b"v1"), write("other", b"o1")],
            metadata_writes: vec![key_policy("rec", "'Org1MSP.peer'")],
            ..Default::default()
        },
    ));
    assert_eq!(peer.commit(&net, &[create]).codes, vec![C::Valid]);
    let md = peer
        .ledger()
        .get_state(CC, "rec")
        .unwrap()
        .unwrap()
        .metadata;
    assert!(md.contains_key("VALIDATION_PARAMETER"));

    let upd = |key: &str, v: &str| TxSpec::kv(CC, kv(vec![], vec![write(key, v.as_bytes())]));
    let (org1_rec, _) = net.tx_by(&upd("rec", "v2"), &[&net.peer1]);
    let (org2_rec, _) = net.tx_by(&upd("rec", "v3"), &[&net.peer2]);
    let (org1_other, _) = net.tx_by(&upd("other", "o2"), &[&net.peer1]);
    let (org1_both, _) = net.tx_by(
        &TxSpec::kv(
            CC,
            kv(vec![], vec![write("rec", b"v4"), write("other", b"o3")]),
        ),
        &[&net.peer1],
    );
    let s = peer.commit(&net, &[org1_rec, org2_rec, org1_other, org1_both]);
    assert_eq!(
        s.codes,
        vec![
            C::Valid,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure
        ]
    );
    let rec = peer.ledger().get_state(CC, "rec").unwrap().unwrap();
    assert_eq!(rec.value, b"v2");
    // A value write keeps the key-level policy.
    assert!(rec.metadata.contains_key("VALIDATION_PARAMETER"));
    assert_eq!(value(&peer, "other").unwrap().0, b"o1");

    // Changing the policy needs the current (key-level) policy; a later write in the same
    // block to that key is refused, as in Fabric.
    let (handover, _) = net.tx_by(
        &TxSpec::kv(
            CC,
            KvrwSet {
                metadata_writes: vec![key_policy("rec", "'Org2MSP.peer'")],
                ..Default::default()
            },
        ),
        &[&net.peer1],
    );
    let (org2_same_block, _) = net.tx_by(&upd("rec", "v5"), &[&net.peer2]);
    assert_eq!(
        peer.commit(&net, &[handover, org2_same_block]).codes,
        vec![C::Valid, C::EndorsementPolicyFailure]
    );
    let (org2_next_block, _) = net.tx_by(&upd("rec", "v6"), &[&net.peer2]);
    assert_eq!(peer.commit(&net, &[org2_next_block]).codes, vec![C::Valid]);
    assert_eq!(value(&peer, "rec").unwrap().0, b"v6");
}

#[test]
fn private_data_is_stored_by_members_only_and_purge_keeps_the_hash() {
    let net = Net::new();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let member = Peer::open(&net, d1.path(), "Org1MSP");
    let non_member = Peer::open(&net, d2.path(), "Org2MSP");
    for p in [&member, &non_member] {
        p.defs.insert(phi_definition());
    }
    let phi = br#"{"resourceType":"Observation","status":"final"}"#;
    let (hashed, pvt) = private_writes("Org1PHI", vec![write("obs1", phi)], vec![]);
    let mut spec = TxSpec::kv(CC, kv(vec![], vec![]));
    spec.rwsets[0].collection_hashed_rwset = vec![hashed];
    // Only the custodian endorses: the collection policy covers the private write.
    let (t, _) = net.tx_by(&spec, &[&net.peer1]);
    let private = BlockPrivateData::from([(0, tx_private(CC, vec![pvt.clone()]))]);
    assert_eq!(
        member
            .commit_private(&net, std::slice::from_ref(&t), &private)
            .codes,
        vec![C::Valid]
    );
    // The non-member gets the same private data offered and must not keep it.
    assert_eq!(
        non_member.commit_private(&net, &[t], &private).codes,
        vec![C::Valid]
    );

    let key_hash = sha256(b"obs1");
    assert!(
        dir_contains(d1.path(), b"resourceType"),
        "positive control: the member holds it"
    );
    let stored = member
        .ledger()
        .get_private(CC, "Org1PHI", "obs1")
        .unwrap()
        .unwrap();
    assert_eq!(stored.value, phi);
    for p in [&member, &non_member] {
        let h = p
            .ledger()
            .get_private_hash(CC, "Org1PHI", &key_hash)
            .unwrap()
            .unwrap();
        assert_eq!(h.value, sha256(phi));
    }
    assert!(
        non_member
            .ledger()
            .get_private(CC, "Org1PHI", "obs1")
            .unwrap()
            .is_none()
    );
    assert!(non_member.ledger().missing_private().unwrap().is_empty());
    drop(non_member);
    assert!(
        !dir_contains(d2.path(), b"resourceType"),
        "PHI found on the non-member's disk"
    );

    // Tampered private data (does not match the on-chain hash) is not stored; it is recorded
    // as missing.
    let (hashed, _) = private_writes("Org1PHI", vec![write("obs2", b"real")], vec![]);
    let (_, forged) = private_writes("Org1PHI", vec![write("obs2", b"forged")], vec![]);
    let mut spec = TxSpec::kv(CC, kv(vec![], vec![]));
    spec.rwsets[0].collection_hashed_rwset = vec![hashed];
    let (t, _) = net.tx_by(&spec, &[&net.peer1]);
    let private = BlockPrivateData::from([(0, tx_private(CC, vec![forged]))]);
    assert_eq!(
        member.commit_private(&net, &[t], &private).codes,
        vec![C::Valid]
    );
    assert!(
        member
            .ledger()
            .get_private(CC, "Org1PHI", "obs2")
            .unwrap()
            .is_none()
    );
    let missing = member.ledger().missing_private().unwrap();
    assert_eq!((missing.len(), missing[0].block_num), (1, 2));

    // Purge: the private value and its stored private writes go, the hash stays and still
    // verifies the original.
    assert!(
        member
            .ledger()
            .private_rwset(1, 0, CC, "Org1PHI")
            .unwrap()
            .is_some()
    );
    let purge = HashedRwSet {
        hashed_writes: vec![KvWriteHash {
            key_hash: key_hash.to_vec(),
            is_delete: true,
            value_hash: Vec::new(),
            is_purge: true,
        }],
        ..Default::default()
    };
    let mut spec = TxSpec::kv(CC, kv(vec![], vec![]));
    spec.rwsets[0].collection_hashed_rwset =
        vec![medledger_proto::rwset::CollectionHashedReadWriteSet {
            collection_name: "Org1PHI".into(),
            hashed_rwset: purge.encode_to_vec(),
            pvt_rwset_hash: Vec::new(),
        }];
    let (t, _) = net.tx_by(&spec, &[&net.peer1]);
    assert_eq!(member.commit(&net, &[t]).codes, vec![C::Valid]);
    assert!(
        member
            .ledger()
            .get_private(CC, "Org1PHI", "obs1")
            .unwrap()
            .is_none()
    );
    assert!(
        member
            .ledger()
            .private_rwset(1, 0, CC, "Org1PHI")
            .unwrap()
            .is_none()
    );
    let h = member
        .ledger()
        .get_private_hash(CC, "Org1PHI", &key_hash)
        .unwrap()
        .unwrap();
    assert_eq!(
        h.value,
        sha256(phi),
        "the hash of the purged value is kept as evidence"
    );
}

/// Whether any file under `dir` contains `needle` (the stores compress with LZ4, which keeps
/// short literals such as this one readable).
fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            return dir_contains(&p, needle);
        }
        let bytes = std::fs::read(&p).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn endorsed_tx_ids_are_bound_to_the_channel() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let (t, _) = endorsed_tx(
        "other-channel",
        &net.client,
        &writes(&[("a", "1")]),
        &[&net.peer1, &net.peer2],
    );
    assert_eq!(peer.commit(&net, &[t]).codes, vec![C::TargetChainNotFound]);
    let _ = CHANNEL;
}
