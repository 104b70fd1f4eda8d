//! Ledger storage tests: commit and queries, chaining checks, corruption detection on open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use medledger_channel::block::{self, new_block};
use medledger_ledger::{Error, Ledger, LedgerConfig, VerifyMode, keys};
use medledger_ledger_api::{BlockUpdate, HistoryWrite, TxIndexEntry, Version, VersionedValue};
use medledger_proto::TxId;
use medledger_proto::common::Block;
use medledger_proto::protos::TxValidationCode;
use prost::Message;

const CH: &str = "ehr-channel";

fn open(dir: &Path) -> medledger_ledger::Result<Ledger> {
    Ledger::open(dir, &CH.parse().unwrap(), &LedgerConfig::default())
}

/// The tx id of transaction `tx` of block `block` in these tests (64 hex digits).
fn tx_id(block: u64, tx: u64) -> TxId {
    format!("{block:032x}{tx:032x}").parse().unwrap()
}

fn vv(value: &str, block: u64, tx: u64) -> Option<VersionedValue> {
    Some(VersionedValue {
        value: value.as_bytes().to_vec(),
        version: Version::new(block, tx),
        metadata: Default::default(),
    })
}

/// Next block of `ledger` with one envelope-like entry per write; tx i writes `writes[i]`.
fn update(ledger: &Ledger, writes: &[(&str, &str)]) -> BlockUpdate {
    let info = ledger.info();
    let n = info.height;
    let data: Vec<Vec<u8>> = writes
        .iter()
        .map(|(k, v)| format!("tx {n} {k}={v}").into_bytes())
        .collect();
    let block = new_block(n, &info.current_hash, data);
    let mut u = BlockUpdate {
        block,
        commit_hash: vec![n as u8; 32],
        ..Default::default()
    };
    for (i, (k, v)) in writes.iter().enumerate() {
        let tx = i as u64;
        let tx_id = tx_id(n, tx).into_string();
        u.txs.push(TxIndexEntry {
            tx_id: tx_id.clone(),
            tx_num: tx,
            code: TxValidationCode::Valid,
        });
        let value = if v.is_empty() { None } else { vv(v, n, tx) };
        u.state.insert(("ehr".into(), (*k).into()), value);
        u.history.push(HistoryWrite {
            namespace: "ehr".into(),
            key: (*k).into(),
            tx_num: tx,
            tx_id,
            timestamp: None,
            is_delete: v.is_empty(),
            value: v.as_bytes().to_vec(),
        });
    }
    u
}

fn commit_chain(dir: &Path, blocks: usize) {
    let ledger = open(dir).unwrap();
    ledger.commit(update(&ledger, &[])).unwrap(); // genesis-like block 0
    for i in 0..blocks {
        let k = format!("k{i}");
        ledger
            .commit(update(&ledger, &[(&k, "v"), ("shared", &format!("s{i}"))]))
            .unwrap();
    }
}

#[test]
fn commit_and_query_state_history_and_tx_index() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    assert_eq!(ledger.height(), 0);
    ledger.commit(update(&ledger, &[])).unwrap();
    ledger
        .commit(update(&ledger, &[("a", "1"), ("b", "2")]))
        .unwrap();
    ledger
        .commit(update(&ledger, &[("a", "3"), ("b", ""), ("c\u{0}x", "4")]))
        .unwrap();
    assert_eq!(ledger.height(), 3);

    assert_eq!(ledger.get_state("ehr", "a").unwrap(), vv("3", 2, 0));
    assert_eq!(ledger.get_state("ehr", "b").unwrap(), None);
    assert_eq!(ledger.get_state("other", "a").unwrap(), None);

    let range: Vec<_> = ledger
        .state_range("ehr", "", "")
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(range, vec!["a".to_owned(), "c\u{0}x".to_owned()]);
    let range: Vec<_> = ledger
        .state_range("ehr", "b", "c\u{0}y")
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(range, vec!["c\u{0}x".to_owned()]);

    let hist: Vec<_> = ledger
        .history("ehr", "a")
        .unwrap()
        .map(|h| h.unwrap())
        .collect();
    assert_eq!(hist.len(), 2);
    assert_eq!(
        (hist[0].block_num, hist[0].value.as_slice()),
        (2, b"3".as_slice())
    );
    assert_eq!(
        (hist[1].block_num, hist[1].value.as_slice()),
        (1, b"1".as_slice())
    );
    let hist_b: Vec<_> = ledger
        .history("ehr", "b")
        .unwrap()
        .map(|h| h.unwrap())
        .collect();
    assert!(hist_b[0].is_delete);
    // "c" has no history although "c\0x" does.
    assert_eq!(ledger.history("ehr", "c").unwrap().count(), 0);

    let loc = ledger.tx_location(&tx_id(2, 1)).unwrap().unwrap();
    assert_eq!(
        (loc.block_num, loc.tx_num, loc.code),
        (2, 1, TxValidationCode::Valid)
    );
    assert_eq!(
        ledger.tx_validation_code(&tx_id(1, 0)).unwrap(),
        Some(TxValidationCode::Valid)
    );
    assert!(ledger.tx_validation_code(&tx_id(9, 9)).unwrap().is_none());
    let b = ledger.block_by_tx_id(&tx_id(2, 2)).unwrap().unwrap();
    assert_eq!(block::number(&b), 2);
    assert!(ledger.block(3).unwrap().is_none());

    // Reopen: same tip.
    let info = ledger.info();
    drop(ledger);
    let ledger = open(dir.path()).unwrap();
    assert_eq!(ledger.info(), info);
    assert_eq!(ledger.get_state("ehr", "a").unwrap(), vv("3", 2, 0));
}

#[test]
fn first_tx_id_occurrence_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    ledger.commit(update(&ledger, &[])).unwrap();
    ledger.commit(update(&ledger, &[("a", "1")])).unwrap();
    let mut u = update(&ledger, &[("a", "2")]);
    u.txs[0] = TxIndexEntry {
        tx_id: tx_id(1, 0).into_string(),
        tx_num: 0,
        code: TxValidationCode::DuplicateTxid,
    };
    ledger.commit(u).unwrap();
    let loc = ledger.tx_location(&tx_id(1, 0)).unwrap().unwrap();
    assert_eq!((loc.block_num, loc.code), (1, TxValidationCode::Valid));
}

#[test]
fn commit_refuses_blocks_that_do_not_extend_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    ledger.commit(update(&ledger, &[])).unwrap();
    // Wrong previous hash.
    let mut u = update(&ledger, &[("a", "1")]);
    u.block.header.as_mut().unwrap().previous_hash = vec![9; 32];
    assert!(matches!(
        ledger.commit(u),
        Err(Error::NotNextBlock { block: 1, .. })
    ));
    // Wrong number.
    let mut u = update(&ledger, &[("a", "1")]);
    u.block.header.as_mut().unwrap().number = 5;
    assert!(matches!(
        ledger.commit(u),
        Err(Error::NotNextBlock { block: 5, .. })
    ));
    // Data not matching its hash.
    let mut u = update(&ledger, &[("a", "1")]);
    u.block.data.as_mut().unwrap().data[0] = b"forged".to_vec();
    assert!(matches!(ledger.commit(u), Err(Error::NotNextBlock { .. })));
    // Nothing was written.
    assert_eq!(ledger.height(), 1);
    assert_eq!(ledger.get_state("ehr", "a").unwrap(), None);
}

/// Rewrites stored block `n` in place with `edit` applied, bypassing the ledger (what a bad
/// disk or a tampering operator does).
fn tamper_block(dir: &Path, n: u64, edit: impl FnOnce(&mut Block)) {
    let opts = rocksdb::Options::default();
    let db = rocksdb::DB::open_cf(&opts, dir, keys::ALL_CFS).unwrap();
    let cf = db.cf_handle(keys::CF_BLOCKS).unwrap();
    let raw = db.get_cf(cf, keys::block_key(n)).unwrap().unwrap();
    let mut b = Block::decode(raw.as_slice()).unwrap();
    edit(&mut b);
    db.put_cf(cf, keys::block_key(n), b.encode_to_vec())
        .unwrap();
    db.flush_cf(cf).unwrap();
}

#[test]
fn corrupted_block_data_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    commit_chain(dir.path(), 5);
    tamper_block(dir.path(), 3, |b| {
        b.data.as_mut().unwrap().data[0][0] ^= 1;
    });
    let err = open(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("corrupted at block 3"),
        "unexpected error: {err}"
    );
}

#[test]
fn broken_chain_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    commit_chain(dir.path(), 5);
    // Consistent block (data hash recomputed) that no longer chains to block 1.
    tamper_block(dir.path(), 2, |b| {
        b.data.as_mut().unwrap().data[0] = b"rewritten history".to_vec();
        let dh = block::data_hash(b.data.as_ref().unwrap()).to_vec();
        b.header.as_mut().unwrap().data_hash = dh;
    });
    let err = open(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("corrupted at block 3"),
        "block 3's previous_hash no longer matches block 2: {err}"
    );
}

#[test]
fn corrupted_last_block_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    commit_chain(dir.path(), 3);
    tamper_block(dir.path(), 3, |b| {
        b.header.as_mut().unwrap().previous_hash[0] ^= 1;
    });
    let err = open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("corrupted at block 3"), "{err}");
}

#[test]
fn checkpoint_skips_verified_blocks_and_full_mode_does_not() {
    let dir = tempfile::tempdir().unwrap();
    commit_chain(dir.path(), 4);
    drop(open(dir.path()).unwrap()); // verifies 0..=4, checkpoint = 4
    tamper_block(dir.path(), 2, |b| {
        b.data.as_mut().unwrap().data[0][0] ^= 1;
    });
    // From the checkpoint the damage is not on the path, but reading the block finds it.
    let ledger = open(dir.path()).unwrap();
    let err = ledger.block(2).unwrap_err();
    assert!(err.to_string().contains("corrupted at block 2"), "{err}");
    drop(ledger);
    let err = Ledger::open(
        dir.path(),
        &CH.parse().unwrap(),
        &LedgerConfig {
            verify_on_open: VerifyMode::Full,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("corrupted at block 2"), "{err}");
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _ledger = open(dir.path()).unwrap();
    assert!(matches!(open(dir.path()), Err(Error::Storage { .. })));
}
