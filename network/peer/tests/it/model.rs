//! Property test: for random blocks of transactions over a small key space, the committed
//! state and validation codes equal those of a sequential reference model that applies exactly
//! the valid transactions. Deterministic: `SEED=<u64>` reproduces a run (printed on start).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{CC, Net, Peer};
use medledger_ledger_api::Version;
use medledger_peer::testing::{TxSpec, delete, range, read, write};
use medledger_proto::common::Envelope;
use medledger_proto::kvrwset::{KvRead, KvWrite, KvrwSet};
use medledger_proto::protos::TxValidationCode as C;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const KEYS: u8 = 6;

/// One generated transaction.
#[derive(Debug, Clone)]
struct GenTx {
    reads: BTreeSet<u8>,
    /// key → Some(value) write, None delete.
    writes: BTreeMap<u8, Option<u8>>,
    /// A range query over keys [lo, hi).
    range: Option<(u8, u8)>,
    /// Make one read stale (a version that never existed).
    stale: bool,
    /// Endorse by one org only (below the policy).
    under_endorsed: bool,
    /// Resubmit the previous transaction's envelope instead.
    replay_previous: bool,
}

fn gen_tx() -> impl Strategy<Value = GenTx> {
    (
        prop::collection::btree_set(0..KEYS, 0..3),
        prop::collection::btree_map(0..KEYS, prop::option::weighted(0.8, any::<u8>()), 0..3),
        prop::option::weighted(0.3, (0..KEYS, 0..=KEYS)),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.08),
    )
        .prop_map(
            |(reads, writes, range, stale, under_endorsed, replay_previous)| GenTx {
                reads,
                writes,
                range: range.map(|(a, b)| (a.min(b), a.max(b))),
                stale,
                under_endorsed,
                replay_previous,
            },
        )
}

fn key(k: u8) -> String {
    format!("k{k}")
}

/// The reference: a map with versions, and a set of committed tx ids.
#[derive(Default)]
struct Model {
    state: BTreeMap<String, (Vec<u8>, Version)>,
    tx_ids: BTreeSet<String>,
}

/// What a generated transaction is after "endorsement" against committed state.
struct Built {
    env: Envelope,
    tx_id: String,
    reads: Vec<KvRead>,
    range: Option<(String, String, Vec<KvRead>)>,
    writes: Vec<KvWrite>,
    well_endorsed: bool,
}

fn run_case(net: &Net, blocks: &[Vec<GenTx>]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(net, dir.path(), "Org1MSP");
    let mut model = Model::default();
    let mut previous: Option<Built> = None;
    for (b, txs) in blocks.iter().enumerate() {
        let block_num = b as u64 + 1;
        // Endorse every transaction against committed state (as endorsers simulate).
        let mut built: Vec<Built> = Vec::new();
        for g in txs {
            if g.replay_previous
                && let Some(p) = previous.as_ref()
            {
                built.push(Built {
                    env: p.env.clone(),
                    tx_id: p.tx_id.clone(),
                    reads: p.reads.clone(),
                    range: p.range.clone(),
                    writes: p.writes.clone(),
                    well_endorsed: p.well_endorsed,
                });
                continue;
            }
            let mut reads: Vec<KvRead> = g
                .reads
                .iter()
                .map(|k| {
                    let v = model
                        .state
                        .get(&key(*k))
                        .map(|(_, v)| (v.block_num, v.tx_num));
                    read(&key(*k), v)
                })
                .collect();
            if g.stale && !reads.is_empty() {
                reads[0].version = Some(medledger_proto::kvrwset::Version {
                    block_num: 999,
                    tx_num: 0,
                });
            }
            let range_q = g.range.map(|(lo, hi)| {
                let (start, end) = (key(lo), if hi == KEYS { String::new() } else { key(hi) });
                let results: Vec<KvRead> = model
                    .state
                    .iter()
                    .filter(|(k, _)| **k >= start && (end.is_empty() || **k < end))
                    .map(|(k, (_, v))| read(k, Some((v.block_num, v.tx_num))))
                    .collect();
                (start, end, results)
            });
            let writes: Vec<KvWrite> = g
                .writes
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => write(&key(*k), &[*v]),
                    None => delete(&key(*k)),
                })
                .collect();
            let kv = KvrwSet {
                reads: reads.clone(),
                range_queries_info: range_q
                    .iter()
                    .map(|(s, e, r)| range(s, e, r.clone()))
                    .collect(),
                writes: writes.clone(),
                metadata_writes: Vec::new(),
            };
            let spec = TxSpec::kv(CC, kv);
            let endorsers: Vec<_> = if g.under_endorsed {
                vec![&net.peer1]
            } else {
                vec![&net.peer1, &net.peer2]
            };
            let (env, tx_id) = net.tx_by(&spec, &endorsers);
            let b = Built {
                env,
                tx_id,
                reads,
                range: range_q,
                writes,
                well_endorsed: !g.under_endorsed,
            };
            previous = Some(Built {
                env: b.env.clone(),
                tx_id: b.tx_id.clone(),
                reads: b.reads.clone(),
                range: b.range.clone(),
                writes: b.writes.clone(),
                well_endorsed: b.well_endorsed,
            });
            built.push(b);
        }
        // The reference model, sequentially.
        let mut expected = Vec::new();
        for (i, t) in built.iter().enumerate() {
            let code = if model.tx_ids.contains(&t.tx_id) {
                C::DuplicateTxid
            } else {
                model.tx_ids.insert(t.tx_id.clone());
                let version = |k: &str| model.state.get(k).map(|(_, v)| *v);
                let reads_ok = t
                    .reads
                    .iter()
                    .all(|r| version(&r.key) == r.version.as_ref().map(Version::from));
                let range_ok = t.range.as_ref().is_none_or(|(s, e, r)| {
                    let now: Vec<(String, Version)> = model
                        .state
                        .iter()
                        .filter(|(k, _)| *k >= s && (e.is_empty() || *k < e))
                        .map(|(k, (_, v))| (k.clone(), *v))
                        .collect();
                    now.len() == r.len()
                        && now.iter().zip(r).all(|((k, v), r)| {
                            *k == r.key && Some(*v) == r.version.as_ref().map(Version::from)
                        })
                });
                if !t.well_endorsed {
                    C::EndorsementPolicyFailure
                } else if !reads_ok {
                    C::MvccReadConflict
                } else if !range_ok {
                    C::PhantomReadConflict
                } else {
                    for w in &t.writes {
                        if w.is_delete {
                            model.state.remove(&w.key);
                        } else {
                            model.state.insert(
                                w.key.clone(),
                                (w.value.clone(), Version::new(block_num, i as u64)),
                            );
                        }
                    }
                    C::Valid
                }
            };
            expected.push(code);
        }
        let envs: Vec<Envelope> = built.iter().map(|t| t.env.clone()).collect();
        let got = peer.commit(net, &envs);
        prop_assert_eq!(&got.codes, &expected, "block {}", block_num);
        let committed: BTreeMap<String, (Vec<u8>, Version)> = peer
            .ledger()
            .state_range(CC, "", "")
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k, (v.value, v.version))
            })
            .collect();
        prop_assert_eq!(&committed, &model.state, "state after block {}", block_num);
    }
    Ok(())
}

#[test]
fn committed_state_equals_sequential_reference_model() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6d65_646c_6564_6772);
    println!("SEED={seed}");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let cases: u32 = std::env::var("CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let net = Net::new();
    let strategy = prop::collection::vec(prop::collection::vec(gen_tx(), 1..8), 1..6);
    runner
        .run(&strategy, |blocks| run_case(&net, &blocks))
        .unwrap();
}
