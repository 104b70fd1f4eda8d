//! The harness served ([`Harness::serve`]): clients of the gateway SDK submit through each
//! organization's real Gateway service to the BFT orderers in process; every peer commits,
//! also while an orderer is down, and a peer crashed while served catches up after its
//! restart.

use medledger_gateway::GatewayError;
use medledger_gateway::client::Contract;
use medledger_harness::{Harness, Served, TICK_MS};
use medledger_peer::scc::fabric::BlockchainInfo;
use medledger_proto::protos::TxValidationCode;
use tonic::Code;

/// The EHR contract of organization `org`'s registrar, through its gateway.
fn registrar(net: &Served, org: usize) -> Contract {
    let id = net
        .client(
            org,
            &format!("registrar{org}"),
            &[("ehr.role", "registrar")],
        )
        .unwrap();
    net.gateway(org, id).network("ehr").contract("ehr")
}

/// Registers patients `from..to` through `contracts` in turn (patient i by contract i mod
/// n), each endorsed, submitted and committed; their tx ids.
async fn register(contracts: &[Contract], from: usize, to: usize) -> Vec<String> {
    let mut tx_ids = Vec::new();
    for i in from..to {
        let contract = &contracts[i % contracts.len()];
        let tx = contract
            .new_proposal("RegisterPatient")
            .args(&[&format!("p_{i:032x}")])
            .build()
            .unwrap()
            .endorse()
            .await
            .unwrap();
        let commit = tx.submit().await.unwrap();
        let (code, _) = commit.status().await.unwrap();
        assert_eq!(code, TxValidationCode::Valid, "{}", commit.tx_id);
        tx_ids.push(commit.tx_id);
    }
    tx_ids
}

/// Every running peer has the first one's blocks and state, and `tx_ids` valid.
fn assert_identical(net: &Served, tx_ids: Vec<String>) {
    let views = net
        .with(move |h| {
            h.peers()
                .into_iter()
                .map(|(org, peer)| {
                    let codes: Vec<_> = tx_ids
                        .iter()
                        .map(|t| h.validation_code(org, peer, t).unwrap())
                        .collect();
                    (
                        h.block_hashes(org, peer).unwrap(),
                        h.state_digest(org, peer).unwrap(),
                        codes,
                        h.seed(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
    let seed = views[0].3;
    for view in &views {
        assert_eq!(view.0, views[0].0, "blocks differ (SEED={seed})");
        assert_eq!(view.1, views[0].1, "state differs (SEED={seed})");
        assert!(
            view.2.iter().all(|c| *c == Some(TxValidationCode::Valid)),
            "{:?} (SEED={seed})",
            view.2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_submit_to_the_bft_orderers_and_every_peer_commits() {
    let net = Harness::builder()
        .orgs(3)
        .peers_per_org(2)
        .build()
        .unwrap()
        .serve()
        .unwrap();
    let contracts: Vec<Contract> = (0..3).map(|org| registrar(&net, org)).collect();
    let tx_ids = register(&contracts, 0, 9).await;
    // The peers serve Fabric's qscc as peer processes do: each organization's gateway
    // answers GetChainInfo with its peer's height and block hash.
    for org in 0..3 {
        let id = net.client(org, &format!("reader{org}"), &[]).unwrap();
        let qscc = net.gateway(org, id).network("ehr").contract("qscc");
        let info = qscc
            .evaluate_transaction("GetChainInfo", &["ehr"])
            .await
            .unwrap();
        let info: BlockchainInfo = prost::Message::decode(info.as_slice()).unwrap();
        // The block it names is that organization's peers' block of that number (a peer
        // may already be a block ahead by the time it is read).
        let blocks = net.with(move |h| h.block_hashes(org, 0).unwrap()).unwrap();
        let last = usize::try_from(info.height).unwrap() - 1;
        assert!(last >= 9, "Org{}: height {}", org + 1, info.height);
        assert_eq!(
            blocks.get(last).map(|h| h.to_vec()),
            Some(info.current_block_hash),
            "Org{}",
            org + 1
        );
    }
    assert_identical(&net, tx_ids);
    net.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderer_crashed_while_served_is_tolerated_and_restarts() {
    let net = Harness::builder().orgs(2).build().unwrap().serve().unwrap();
    let contracts: Vec<Contract> = (0..2).map(|org| registrar(&net, org)).collect();
    let mut tx_ids = register(&contracts, 0, 4).await;
    net.with(|h| h.crash_orderer(1)).unwrap();
    tx_ids.extend(register(&contracts, 4, 10).await);
    net.with(|h| h.restart_orderer(1)).unwrap();
    tx_ids.extend(register(&contracts, 10, 14).await);
    // The restarted orderer catches up with the others (it syncs when it learns it is
    // behind: given up to 30 virtual s).
    let (heights, seed) = net
        .with(|h| {
            let heights = |h: &Harness| {
                let sim = &h.network().sim;
                let ids = sim.ids().into_iter();
                ids.map(|id| sim.height(id)).collect::<Vec<_>>()
            };
            for _ in 0..30_000 / TICK_MS {
                let now = heights(h);
                if now.iter().all(|x| *x == now[0]) {
                    break;
                }
                h.step().unwrap();
            }
            (heights(h), h.seed())
        })
        .unwrap();
    assert!(
        heights.iter().all(|x| *x == heights[0]),
        "{heights:?} (SEED={seed})"
    );
    assert_identical(&net, tx_ids);
    net.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_crashed_while_served_are_unavailable_then_catch_up_after_a_restart() {
    let net = Harness::builder()
        .orgs(2)
        .peers_per_org(2)
        .build()
        .unwrap()
        .serve()
        .unwrap();
    let contracts: Vec<Contract> = (0..2).map(|org| registrar(&net, org)).collect();
    let mut tx_ids = register(&contracts, 0, 4).await;
    // Org1's second peer and Org2's first peer (the one its gateway runs in) go down.
    net.with(|h| {
        h.crash_peer(0, 1).unwrap();
        h.crash_peer(1, 0).unwrap();
    })
    .unwrap();
    // Org2's gateway is down with its peer: UNAVAILABLE, as a peer process that is gone.
    let err = contracts[1]
        .new_proposal("RegisterPatient")
        .args(&[&format!("p_{:032x}", 100)])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GatewayError::Status { code: Code::Unavailable, message, .. }
            if message == "peer0.org2.example.com is down"),
        "{err:?}"
    );
    // Org1's gateway still serves: its own peer and Org2's second peer endorse, the peers
    // that run commit.
    tx_ids.extend(register(&contracts[..1], 4, 8).await);
    let behind = net
        .with(|h| {
            (
                h.ledger(0, 0).unwrap().height(),
                h.peer_dir(0, 1).is_err() && h.peer_dir(1, 0).is_err(),
            )
        })
        .unwrap();
    assert!(behind.1, "the crashed peers do not run");
    net.with(|h| {
        h.restart_peer(0, 1).unwrap();
        h.restart_peer(1, 0).unwrap();
    })
    .unwrap();
    // Restarted, they catch up (a commit status is answered once every running peer holds
    // the block) and Org2's gateway serves again.
    tx_ids.extend(register(&contracts, 8, 12).await);
    let heights = net
        .with(|h| {
            h.peers()
                .into_iter()
                .map(|(org, peer)| h.ledger(org, peer).unwrap().height())
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(heights.len(), 4);
    assert!(heights.iter().all(|x| *x > behind.0), "{heights:?}");
    assert_identical(&net, tx_ids);
    net.stop().unwrap();
}
