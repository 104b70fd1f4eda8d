//! The same seed replays the same run.

use medledger_harness::Harness;
use medledger_harness::net::envelope_tx_id;

use crate::common::{COMMIT_MS, register, registrars};

/// Per block on peer 0 of org 0: the workload positions of its transactions (sorted: the
/// orderers' fair queue orders a block's transactions by their submitters' certificate
/// hashes, and certificates are fresh every run) and their validation codes; and the virtual
/// time the run ended.
type Trace = (Vec<Vec<(usize, i32)>>, u64);

/// A scripted run with a crash and a falsifying orderer, seeded with `seed`.
fn run(seed: u64) -> Trace {
    let mut h = Harness::builder()
        .orgs(2)
        .peers_per_org(2)
        .seed(seed)
        .build()
        .unwrap();
    h.falsify_deliver(4, medledger_harness::net::DeliverFault::Forge);
    let registrars = registrars(&mut h, 2);
    let mut tx_ids = register(&mut h, &registrars, 0, 5);
    h.run_for(120).unwrap();
    h.crash_peer(1, 0).unwrap();
    tx_ids.extend(register(&mut h, &registrars, 5, 12));
    h.run_until_committed(&tx_ids, COMMIT_MS).unwrap();
    h.restart_peer(1, 0).unwrap();
    h.run_until_synced(COMMIT_MS).unwrap();
    let ledger = h.ledger(0, 0).unwrap();
    let blocks = (1..ledger.height())
        .map(|n| {
            let block = ledger.block(n).unwrap().unwrap();
            block
                .data
                .unwrap()
                .data
                .iter()
                .map(|e| {
                    let id = envelope_tx_id(e).unwrap();
                    let position = tx_ids.iter().position(|t| *t == id).unwrap();
                    let code = ledger
                        .tx_location(&id.parse().unwrap())
                        .unwrap()
                        .unwrap()
                        .code as i32;
                    (position, code)
                })
                .collect::<Vec<_>>()
        })
        .map(|mut txs| {
            txs.sort_unstable();
            txs
        })
        .collect();
    (blocks, h.now_ms())
}

/// Two runs with one seed cut the same blocks (the same transactions, the same codes) and
/// end at the same virtual time. Block hashes differ between runs: every run has fresh CA
/// keys, and proposal nonces and signatures are random.
#[test]
fn the_same_seed_replays_the_same_blocks() {
    let seed = medledger_orderer::sim::env_seed();
    let first = run(seed);
    let second = run(seed);
    assert!(first.0.len() > 1, "more than one block");
    assert_eq!(first, second, "SEED={seed}");
}
