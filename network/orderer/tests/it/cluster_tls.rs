//! Four orderer servers in one process, over real gRPC with mutual TLS on loopback:
//! Broadcast status codes, Deliver with the Readers policy, the Cluster service refusing
//! unauthenticated peers, agreement and verifiable blocks, an orderer stopped and restarted
//! (it syncs from its store, WAL and the others), `/healthz` and `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use medledger_channel::bft;
use medledger_devnet::orderers::{self as devnet, DevNetSpec};
use medledger_msp::folder::load_signing_identity;
use medledger_orderer::client::{OrdererClient, seek_envelope, transaction_envelope};
use medledger_orderer::config::{ConsensusSection, OrdererConfig};
use medledger_orderer::server::{self, RunningOrderer};
use medledger_proto::common::Status;
use medledger_proto::medledger::channel::BatchConfig;
use medledger_proto::orderer::deliver_response;

const CHANNEL: &str = "ehr";

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

async fn wait_height(orderers: &[&RunningOrderer], height: u64, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if orderers.iter().all(|o| o.height() >= height) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn tx_count(o: &RunningOrderer) -> usize {
    (1..o.height())
        .map(|n| o.block(n).unwrap().unwrap().data.unwrap().data.len())
        .sum()
}

async fn wait_txs(orderers: &[&RunningOrderer], n: usize, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if orderers.iter().all(|o| tx_count(o) >= n) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_orderers_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ports = devnet::free_ports("127.0.0.1", 8).unwrap();
    let net = devnet::generate(
        dir.path(),
        &DevNetSpec {
            channel_id: CHANNEL.into(),
            host: "127.0.0.1".into(),
            ports: ports[..4].to_vec(),
            operations_ports: Some(ports[4..].to_vec()),
            batch: BatchConfig {
                max_message_count: 200,
                preferred_max_bytes: 0,
                absolute_max_bytes: 0,
                batch_timeout_ms: 100,
            },
            consensus: ConsensusSection {
                propose_timeout_ms: 1000,
                ..ConsensusSection::default()
            },
        },
    )
    .unwrap();
    let configs: Vec<OrdererConfig> = net
        .orderer_configs
        .iter()
        .map(|p| OrdererConfig::load(p).unwrap())
        .collect();
    let mut orderers = Vec::new();
    for c in &configs {
        orderers.push(Some(server::start(c).await.unwrap()));
    }
    let roots = std::fs::read(&net.tls_roots).unwrap();
    let client = load_signing_identity(&net.client_msp, &net.client_msp_id).unwrap();
    let mut nonce = 0u64;
    let mut envelopes = |n: usize| -> Vec<_> {
        (0..n)
            .map(|_| {
                nonce += 1;
                let mut nb = [0u8; 24];
                nb[..8].copy_from_slice(&nonce.to_be_bytes());
                transaction_envelope(&client, CHANNEL, &nb, vec![7u8; 512]).unwrap()
            })
            .collect()
    };

    // Broadcast 2000 envelopes, 500 through each orderer, concurrently.
    let mut tasks = Vec::new();
    let mut all_tx = HashSet::new();
    for p in &ports[..4] {
        let batch = envelopes(500);
        for e in &batch {
            let env = e.clone();
            let parsed = medledger_channel::envelope::parse(&env).unwrap();
            all_tx.insert(parsed.tx_id().to_owned());
        }
        let roots = roots.clone();
        let port = *p;
        tasks.push(tokio::spawn(async move {
            let mut c = OrdererClient::connect("127.0.0.1", port, &roots)
                .await
                .unwrap();
            c.broadcast(batch).await.unwrap()
        }));
    }
    for t in tasks {
        let responses = t.await.unwrap();
        assert_eq!(responses.len(), 500);
        assert!(
            responses.iter().all(|r| r.status == Status::Success as i32),
            "{:?}",
            responses.iter().find(|r| r.status != 200)
        );
    }
    let running: Vec<&RunningOrderer> = orderers.iter().map(|o| o.as_ref().unwrap()).collect();
    assert!(
        wait_txs(&running, 2000, Duration::from_secs(60)).await,
        "not all ordered"
    );

    // Same chain everywhere, each block verifiable by the peers' verifier, each tx once.
    let config =
        medledger_channel::ChannelConfig::from_config_block(&running[0].block(0).unwrap().unwrap())
            .unwrap();
    let h = running.iter().map(|o| o.height()).min().unwrap();
    let mut seen = HashSet::new();
    for n in 1..h {
        let b = running[0].block(n).unwrap().unwrap();
        bft::verify_block_signatures(&b, CHANNEL, config.consenters()).unwrap();
        assert!(!b.data.as_ref().unwrap().data.is_empty());
        for o in &running[1..] {
            assert_eq!(o.block(n).unwrap().unwrap().header, b.header);
        }
        for tx in medledger_orderer::node::block_tx_ids(&b) {
            assert!(seen.insert(tx));
        }
    }
    assert_eq!(seen, all_tx);

    // Fabric status codes on Broadcast.
    let mut c1 = OrdererClient::connect("127.0.0.1", ports[0], &roots)
        .await
        .unwrap();
    let mut bad = envelopes(2);
    let repeat = bad[0].clone();
    // Same tx_id (same nonce and creator), different bytes.
    let nb2 = [0xEEu8; 24]; // a nonce the counter never reaches
    let first = transaction_envelope(&client, CHANNEL, &nb2, vec![1u8; 64]).unwrap();
    let conflicting = transaction_envelope(&client, CHANNEL, &nb2, vec![2u8; 64]).unwrap();
    bad[1].signature[10] ^= 1;
    let r = c1
        .broadcast(vec![
            bad[0].clone(),
            repeat,
            bad[1].clone(),
            first,
            conflicting,
        ])
        .await
        .unwrap();
    assert_eq!(r[0].status, Status::Success as i32);
    assert_eq!(
        r[1].status,
        Status::Success as i32,
        "an identical envelope again is acknowledged (ordered once): {}",
        r[1].info
    );
    assert!(
        r[2].status == Status::Forbidden as i32 || r[2].status == Status::BadRequest as i32,
        "tampered signature: {:?}",
        r[2]
    );
    assert_eq!(r[3].status, Status::Success as i32);
    assert_eq!(
        r[4].status,
        Status::BadRequest as i32,
        "duplicate tx_id, different envelope: {}",
        r[4].info
    );

    // Deliver: a client of the channel reads blocks 0..=2; an orderer identity does not
    // satisfy Readers (application orgs only).
    let mut stream = c1
        .deliver(seek_envelope(&client, CHANNEL, 0, 2).unwrap())
        .await
        .unwrap();
    let mut numbers = Vec::new();
    let mut final_status = None;
    while let Some(m) = stream.message().await.unwrap() {
        match m.r#type {
            Some(deliver_response::Type::Block(b)) => numbers.push(b.header.unwrap().number),
            Some(deliver_response::Type::Status(s)) => {
                final_status = Some(s);
                break;
            }
            None => {}
        }
    }
    assert_eq!(numbers, vec![0, 1, 2]);
    assert_eq!(final_status, Some(Status::Success as i32));
    let orderer_ident =
        load_signing_identity(&dir.path().join("orderer1/msp"), "OrdererMSP").unwrap();
    let mut stream = c1
        .deliver(seek_envelope(&orderer_ident, CHANNEL, 0, 2).unwrap())
        .await
        .unwrap();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(
        first.r#type,
        Some(deliver_response::Type::Status(Status::Forbidden as i32))
    );

    // The Cluster service refuses a connection without a consenter's client certificate.
    {
        use medledger_proto::medledger::orderer::cluster_client::ClusterClient;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&roots))
            .domain_name("127.0.0.1");
        let ch = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", ports[0]))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let err = ClusterClient::new(ch)
            .step(tokio_stream::iter(Vec::new()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    // Operations endpoint.
    let ops = running[0].operations_addr.unwrap();
    assert!(
        http_get(ops, "/healthz").starts_with("HTTP/1.0 200")
            || http_get(ops, "/healthz").contains(" 200 ")
    );
    let metrics = http_get(ops, "/metrics");
    for name in [
        "orderer_height",
        "orderer_round",
        "orderer_rounds_per_height",
        "orderer_proposals_total",
        "orderer_block_envelopes",
        "orderer_consensus_latency_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    // Stop orderer 4; the others go on; restart it: it syncs and takes part again.
    orderers[3].take().unwrap().stop().await;
    let more = envelopes(300);
    let r = c1.broadcast(more).await.unwrap();
    assert!(r.iter().all(|x| x.status == Status::Success as i32));
    let three: Vec<&RunningOrderer> = orderers[..3].iter().map(|o| o.as_ref().unwrap()).collect();
    assert!(
        wait_txs(&three, 2301, Duration::from_secs(60)).await,
        "f = 1 down stopped ordering"
    );
    orderers[3] = Some(server::start(&configs[3]).await.unwrap());
    let target = orderers[0].as_ref().unwrap().height();
    let mut c4 = OrdererClient::connect("127.0.0.1", ports[3], &roots)
        .await
        .unwrap();
    let r = c4.broadcast(envelopes(10)).await.unwrap();
    assert!(r.iter().all(|x| x.status == Status::Success as i32));
    let all: Vec<&RunningOrderer> = orderers.iter().map(|o| o.as_ref().unwrap()).collect();
    assert!(
        wait_height(&all, target + 1, Duration::from_secs(60)).await,
        "restarted orderer did not rejoin"
    );
    assert!(wait_txs(&all, 2311, Duration::from_secs(60)).await);
    let h = all.iter().map(|o| o.height()).min().unwrap();
    for n in 1..h {
        let b = all[0].block(n).unwrap().unwrap();
        for o in &all[1..] {
            assert_eq!(o.block(n).unwrap().unwrap().header, b.header, "block {n}");
        }
    }
    for o in orderers.into_iter().flatten() {
        o.stop().await;
    }
}
