//! Deliver (gRPC on loopback) and operations endpoint tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{CC, CHANNEL, Net, Peer};
use medledger_channel::deliver::seek_envelope;
use medledger_peer::deliver::{DeliverChannel, DeliverService};
use medledger_peer::operations::{Operations, PeerMetrics};
use medledger_peer::testing::{TxSpec, write};
use medledger_proto::common::Status;
use medledger_proto::kvrwset::KvrwSet;
use medledger_proto::protos::deliver_client::DeliverClient;
use medledger_proto::protos::{DeliverResponse, TxValidationCode, deliver_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;

fn put(key: &str) -> TxSpec {
    let mut spec = TxSpec::kv(
        CC,
        KvrwSet {
            writes: vec![write(key, b"v")],
            ..Default::default()
        },
    );
    spec.event = Some(("RecordCreated".into(), b"payload".to_vec()));
    spec
}

async fn next(stream: &mut tonic::Streaming<DeliverResponse>) -> deliver_response::Type {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("response in time")
        .expect("stream open")
        .expect("no error")
        .r#type
        .expect("typed response")
}

type Server = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

/// Serves `service` on loopback; a connected client, the stop sender and the server task.
async fn serve_deliver(
    service: DeliverService,
) -> (
    DeliverClient<tonic::transport::Channel>,
    tokio::sync::oneshot::Sender<()>,
    Server,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stop_rx.await;
                },
            ),
    );
    let client = DeliverClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    (client, stop_tx, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_streams_from_a_block_then_follows_new_commits() {
    let net = Arc::new(Net::new());
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::open(&net, dir.path(), "Org1MSP"));
    for k in ["a", "b", "c"] {
        peer.commit(&net, &[net.tx(&put(k)).0]);
    }
    let service = DeliverService::default();
    service.add_channel(DeliverChannel::from_committer(&peer.committer));
    let (mut client, stop_tx, server) = serve_deliver(service).await;

    // Blocks 1.. and follow.
    let (req_tx, req_rx) = tokio::sync::mpsc::channel(4);
    req_tx
        .send(seek_envelope(&net.client, CHANNEL, 1, u64::MAX).unwrap())
        .await
        .unwrap();
    let mut stream = client
        .deliver(tokio_stream::wrappers::ReceiverStream::new(req_rx))
        .await
        .unwrap()
        .into_inner();
    for n in 1..=3 {
        match next(&mut stream).await {
            deliver_response::Type::Block(b) => assert_eq!(b.header.unwrap().number, n),
            other => panic!("expected block {n}, got {other:?}"),
        }
    }
    // A new commit arrives on the open stream.
    let (p, c) = (peer.clone(), net.clone());
    tokio::task::spawn_blocking(move || p.commit(&c, &[c.tx(&put("d")).0]))
        .await
        .unwrap();
    match next(&mut stream).await {
        deliver_response::Type::Block(b) => assert_eq!(b.header.unwrap().number, 4),
        other => panic!("expected block 4, got {other:?}"),
    }
    drop(req_tx);
    drop(stream);

    // Filtered: ids, codes and events without payload, then SUCCESS at the stop block.
    let mut stream = client
        .deliver_filtered(tokio_stream::iter(vec![
            seek_envelope(&net.client, CHANNEL, 2, 2).unwrap(),
        ]))
        .await
        .unwrap()
        .into_inner();
    match next(&mut stream).await {
        deliver_response::Type::FilteredBlock(fb) => {
            assert_eq!((fb.channel_id.as_str(), fb.number), (CHANNEL, 2));
            let tx = &fb.filtered_transactions[0];
            assert_eq!(tx.tx_validation_code, TxValidationCode::Valid as i32);
            assert_eq!(tx.txid.len(), 64);
            let Some(medledger_proto::protos::filtered_transaction::Data::TransactionActions(a)) =
                &tx.data
            else {
                panic!("no actions")
            };
            let ev = a.chaincode_actions[0].chaincode_event.as_ref().unwrap();
            assert_eq!(ev.event_name, "RecordCreated");
            assert!(ev.payload.is_empty());
        }
        other => panic!("expected a filtered block, got {other:?}"),
    }
    assert_eq!(
        next(&mut stream).await,
        deliver_response::Type::Status(Status::Success as i32)
    );

    // An identity outside the channel, a tampered signature and an unknown channel are refused.
    let mut bad = seek_envelope(&net.client, CHANNEL, 0, 0).unwrap();
    let n = bad.signature.len();
    bad.signature[n - 2] ^= 1;
    for (request, status) in [
        (
            seek_envelope(&net.outsider, CHANNEL, 0, 0).unwrap(),
            Status::Forbidden,
        ),
        (bad, Status::Forbidden),
        (
            seek_envelope(&net.client, "nochannel", 0, 0).unwrap(),
            Status::NotFound,
        ),
    ] {
        let mut refused = client
            .deliver(tokio_stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            next(&mut refused).await,
            deliver_response::Type::Status(status as i32)
        );
    }

    drop(stream);
    drop(client);
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoint_serves_health_metrics_and_version() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(PeerMetrics::new());
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let committer = Arc::into_inner(peer.committer)
        .expect("only reference")
        .with_metrics(metrics.clone());
    let (t, _) = net.tx(&put("a"));
    let info = committer.ledger().info();
    let b = medledger_peer::testing::signed_block(
        &net.ch,
        info.height,
        &info.current_hash,
        &[t.clone(), t],
        &[1, 2, 3],
    );
    committer.commit_block(b, &Default::default()).unwrap();
    metrics.observe_endorsement(committer.channel_id(), 0.004);

    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h = healthy.clone();
    let ops = Operations::new(metrics).with_check(
        "ledger",
        Box::new(move || {
            if h.load(std::sync::atomic::Ordering::Relaxed) {
                Ok(())
            } else {
                Err("ledger unavailable".into())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = ops.serve(listener).unwrap();
    let addr = handle.local_addr();

    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"OK""#));
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        r#"ledger_blockchain_height{channel="ehr-channel"} 2"#,
        r#"ledger_blocks_committed_total{channel="ehr-channel"} 1"#,
        r#"ledger_transaction_count_total{channel="ehr-channel",validation_code="VALID"} 1"#,
        r#"ledger_transaction_count_total{channel="ehr-channel",validation_code="DUPLICATE_TXID"} 1"#,
        "endorser_proposal_duration_seconds_count",
    ] {
        assert!(body.contains(needle), "missing {needle} in\n{body}");
    }
    let (status, body) = http_get(addr, "/version").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!(r#""Version":"{}""#, env!("CARGO_PKG_VERSION"))));
    healthy.store(false, std::sync::atomic::Ordering::Relaxed);
    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!(status, 503);
    assert!(body.contains("ledger unavailable"));
    handle.shutdown().await;
}

/// Issue 13 item 9: Deliver re-checks the requester before every block under the
/// configuration then in force. A reader whose certificate a config block revokes (its
/// organization's new CRL) gets FORBIDDEN instead of the next block. On 4436d0b the stream was
/// authorized once and kept streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_readers_open_stream_ends_at_the_config_block() {
    use medledger_channel::update;
    use medledger_msp::ou::NodeOu;

    let mut net = Net::new();
    let reader = net.ch.orgs[0].identity("reader", NodeOu::Client, &[]);
    let admin1 = net.ch.orgs[0].identity("admin1", NodeOu::Admin, &[]);
    let admin2 = net.ch.orgs[1].identity("admin2", NodeOu::Admin, &[]);
    let next_config = net.ch.config_revoking(0, "reader");
    let bytes = update::update_bytes(&next_config);
    let sigs = [&admin1, &admin2]
        .iter()
        .map(|s| update::sign_update(&bytes, s).unwrap())
        .collect();
    let revocation =
        update::update_envelope(CHANNEL, bytes, sigs, &admin1, std::time::SystemTime::now())
            .unwrap();
    let net = Arc::new(net);
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::open(&net, dir.path(), "Org1MSP"));
    peer.commit(&net, &[net.tx(&put("a")).0]);
    let service = DeliverService::default();
    service.add_channel(DeliverChannel::from_committer(&peer.committer));
    let (mut client, stop_tx, server) = serve_deliver(service).await;
    let (req_tx, req_rx) = tokio::sync::mpsc::channel(4);
    req_tx
        .send(seek_envelope(&reader, CHANNEL, 1, u64::MAX).unwrap())
        .await
        .unwrap();
    let mut stream = client
        .deliver(tokio_stream::wrappers::ReceiverStream::new(req_rx))
        .await
        .unwrap()
        .into_inner();
    match next(&mut stream).await {
        deliver_response::Type::Block(b) => assert_eq!(b.header.unwrap().number, 1),
        other => panic!("expected block 1, got {other:?}"),
    }
    let (p, n) = (peer.clone(), net.clone());
    let summary = tokio::task::spawn_blocking(move || p.commit(&n, &[revocation]))
        .await
        .unwrap();
    assert_eq!(summary.codes, [TxValidationCode::Valid]);
    assert_eq!(peer.committer.config().sequence(), 1);
    match next(&mut stream).await {
        deliver_response::Type::Status(s) => assert_eq!(s, Status::Forbidden as i32),
        other => panic!("a revoked reader was served {other:?}"),
    }
    drop(req_tx);
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
