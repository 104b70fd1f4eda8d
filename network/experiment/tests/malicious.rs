//! A short run of the malicious-node experiment (the full one is `medledger experiment
//! malicious`, docs/experiment-malicious.md): real orderers, endorsers, chaincode and
//! committers on the simulated network, asserting the expected shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use medledger_experiment::malicious::{Options, Scenario, Series, run};

fn seed() -> u64 {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    println!("SEED={seed}");
    seed
}

/// Within what BFT ordering (≤ f = 1 Byzantine orderer) and the MAJORITY endorsement policy
/// (≤ 1 Byzantine endorsing organization of 4) tolerate, every request ends as on the honest
/// network; beyond (2 silent orderers: no quorum; 2 Byzantine organizations: no majority
/// agrees) requests are lost, none decided wrongly, nothing falsified or forked. With all 4
/// organizations Byzantine the forgeries are committed, and counted.
#[test]
fn within_tolerance_every_decision_is_correct_beyond_requests_are_lost_not_falsified() {
    let options = Options {
        requests: 50,
        seed: seed(),
    };
    let scenarios = [
        Scenario::of(Series::Honest, 0),
        Scenario::of(Series::Both, 1),
        Scenario::of(Series::SilentOrderers, 2),
        Scenario::of(Series::Endorsers, 2),
        Scenario::of(Series::Endorsers, 4),
    ];
    let report = run(&options, &scenarios, |r| {
        println!("{:?}: {:?}", r.scenario, r.metrics)
    })
    .unwrap();
    println!("{}", report.markdown());
    // The honest run does the EHR work (the contract accepts the workload's ids and PHI):
    // only the researcher's requests, one per chain, are refused.
    let honest = &report.rows[0].metrics;
    let chains = honest.requests - honest.valid;
    assert!(
        honest.valid >= 4 * chains,
        "the honest run committed {} of {} requests valid",
        honest.valid,
        honest.requests
    );
    for row in &report.rows {
        let m = &row.metrics;
        if row.scenario.byzantine_orgs == 4 {
            // Every organization's peer, each client's own included, endorses the same
            // forgeries: no client rule or policy can tell them from the truth. The experiment
            // must see them (its falsification count is not blind).
            assert!(
                m.falsifications > 0,
                "{:?}: forgeries not detected",
                row.scenario
            );
            continue;
        }
        assert_eq!(m.falsifications, 0, "{:?}", row.scenario);
        assert_eq!(m.forks, 0, "{:?}", row.scenario);
        assert_eq!(
            m.cdr_decided, 1.0,
            "{:?}: a decision differs from the reference",
            row.scenario
        );
        let tolerated = row.scenario.byzantine_orderers <= 1 && row.scenario.byzantine_orgs <= 1;
        if tolerated {
            assert_eq!(m.cdr, 1.0, "{:?}", row.scenario);
            assert_eq!(m.plr, 0.0, "{:?}", row.scenario);
            assert_eq!(m.black_holes, 0, "{:?}", row.scenario);
        } else {
            assert!(
                m.plr > 0.0,
                "{:?}: beyond tolerance, yet nothing lost",
                row.scenario
            );
        }
    }
}
