//! `ledger verify`: a peer's ledger checked against a replay of its chain — a sound ledger
//! passes (with its private data checked against the on-chain hashes); a world-state value
//! or a private value changed on disk behind the peer's back is found and named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;
use std::sync::Arc;

use common::{CC, CHANNEL, Net, Peer};
use medledger_ledger::keys;
use medledger_peer::definitions::{ChaincodeDefinitions, InMemoryDefinitions};
use medledger_peer::testing::{TxSpec, private_writes, tx_private, write};
use medledger_peer::validator::BlockPrivateData;
use medledger_peer::verify::{Divergence, verify_ledger};
use medledger_proto::kvrwset::KvrwSet;
use medledger_proto::protos::TxValidationCode as C;

/// Builds a ledger in `dir`: a public write and a private write of Org1's collection.
fn build(dir: &Path) {
    let net = Net::new();
    let peer = Peer::open(&net, dir, "Org1MSP");
    peer.defs.insert(common::phi_definition());
    let kv = KvrwSet {
        writes: vec![write("patient-1", b"registered")],
        ..Default::default()
    };
    assert_eq!(
        peer.commit(&net, &[net.tx(&TxSpec::kv(CC, kv)).0]).codes,
        [C::Valid]
    );
    let (hashed, pvt) = private_writes(
        "Org1PHI",
        vec![write("obs1", br#"{"resourceType":"Observation"}"#)],
        vec![],
    );
    let mut spec = TxSpec::kv(CC, KvrwSet::default());
    spec.rwsets[0].collection_hashed_rwset = vec![hashed];
    let (t, _) = net.tx_by(&spec, &[&net.peer1]);
    let private = BlockPrivateData::from([(0, tx_private(CC, vec![pvt]))]);
    assert_eq!(peer.commit_private(&net, &[t], &private).codes, [C::Valid]);
}

fn verify(dir: &Path) -> Result<medledger_peer::verify::Verified, Divergence> {
    let defs = Arc::new(InMemoryDefinitions::new());
    defs.insert(common::phi_definition());
    let scratch = tempfile::tempdir().unwrap();
    verify_ledger(
        dir,
        &CHANNEL.parse().unwrap(),
        defs as Arc<dyn ChaincodeDefinitions>,
        &"Org1MSP".parse().unwrap(),
        &scratch.path().join("replay"),
    )
    .unwrap()
}

/// Rewrites the value of every entry of column family `cf` whose value contains `needle`.
fn tamper(dir: &Path, cf: &str, needle: &[u8], replacement: &[u8]) {
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, keys::ALL_CFS).unwrap();
    let h = db.cf_handle(cf).unwrap();
    let mut edits = Vec::new();
    for item in db.iterator_cf(h, rocksdb::IteratorMode::Start) {
        let (k, v) = item.unwrap();
        if let Some(at) = v.windows(needle.len()).position(|w| w == needle) {
            let mut v = v.to_vec();
            v.splice(at..at + needle.len(), replacement.iter().copied());
            edits.push((k.to_vec(), v));
        }
    }
    assert!(!edits.is_empty(), "nothing to tamper with in {cf}");
    for (k, v) in edits {
        db.put_cf(h, k, v).unwrap();
    }
    db.flush_cf(h).unwrap();
}

#[test]
fn a_sound_ledger_verifies() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let v = verify(dir.path()).unwrap();
    assert_eq!((v.height, v.private_values), (3, 1));
}

#[test]
fn a_changed_state_value_is_found() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), keys::CF_STATE, b"registered", b"deregister");
    assert_eq!(verify(dir.path()).unwrap_err(), Divergence::State);
}

#[test]
fn a_changed_private_value_is_found() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(
        dir.path(),
        keys::CF_PVT_DATA,
        b"Observation",
        b"Condition__",
    );
    assert_eq!(
        verify(dir.path()).unwrap_err(),
        Divergence::Private {
            namespace: CC.into(),
            collection: "Org1PHI".into()
        }
    );
}
