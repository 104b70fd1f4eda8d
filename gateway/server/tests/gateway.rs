//! The gateway service and client SDK with real endorsers of two organizations (one local, one
//! remote over gRPC, one of its peers down), endorsement planning from the policy, retry on
//! another peer of the same organization, ErrorDetails naming failing peers, commit status and
//! chaincode events from the peer's ledger (an in-memory stand-in here), and refused requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use medledger_chaincode::Router;
use medledger_channel::ChannelConfig;
use medledger_channel::testing::TestChannel;
use medledger_endorser::{
    ChannelContext, CollectionAccess, Endorser, EndorserConfig, EndorserService, InProcessExecutor,
    MemoryTransientStore,
};
use medledger_gateway::client::{Gateway, Transaction};
use medledger_gateway::{GatewayError, error_details};
use medledger_gateway_server::{
    ChannelGateway, CommitSource, CommitSourceError, DefaultPolicies, EndorserHandle, EventStream,
    GatewayConfig, GatewayService, PeerEndpoint,
};
use medledger_ledger_api::{LedgerReader, MemoryLedger, Version};
use medledger_msp::ou::NodeOu;
use medledger_proto::TxId;
use medledger_proto::protos::endorser_client::EndorserClient;
use medledger_proto::protos::endorser_server::EndorserServer;
use medledger_proto::protos::{ChaincodeEvent, TxValidationCode};
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;

fn contract() -> Router {
    Router::new()
        .add("put", |stub, args| {
            stub.put_state(&args[0], args[1].as_bytes())?;
            Ok(b"stored".to_vec())
        })
        .add("get", |stub, args| {
            Ok(stub.get_state(&args[0])?.unwrap_or_default())
        })
}

struct Ctx {
    config: Arc<ChannelConfig>,
    /// The peer's committed state; a test replaces it to let the peer commit a block.
    state: Mutex<Arc<MemoryLedger>>,
    defined: bool,
}

impl ChannelContext for Ctx {
    fn config(&self) -> Arc<ChannelConfig> {
        self.config.clone()
    }
    fn ledger(&self) -> Arc<dyn LedgerReader> {
        self.state.lock().unwrap().clone()
    }
    fn chaincode(&self, name: &str) -> Option<Vec<CollectionAccess>> {
        (self.defined && name == "kv").then(Vec::new)
    }
    fn height(&self) -> u64 {
        1
    }
}

#[derive(Default)]
struct Commits {
    statuses: Mutex<HashMap<String, (TxValidationCode, u64)>>,
}

#[tonic::async_trait]
impl CommitSource for Commits {
    async fn wait_for_commit(
        &self,
        _channel: &str,
        tx_id: &TxId,
    ) -> Result<(TxValidationCode, u64), CommitSourceError> {
        self.statuses
            .lock()
            .unwrap()
            .get(tx_id.as_str())
            .copied()
            .ok_or_else(|| CommitSourceError::Ledger("not committed".into()))
    }
    async fn chaincode_events(
        &self,
        _channel: &str,
        chaincode: &str,
        start: Option<u64>,
    ) -> Result<EventStream, CommitSourceError> {
        let ev = |tx: &str, name: &str| ChaincodeEvent {
            chaincode_id: chaincode.into(),
            tx_id: tx.into(),
            event_name: name.into(),
            payload: vec![],
        };
        let blocks = vec![
            (1, vec![ev("t1", "a"), ev("t2", "b")]),
            (2, vec![ev("t3", "c")]),
        ];
        let from = start.unwrap_or(0);
        Ok(Box::pin(tokio_stream::iter(
            blocks.into_iter().filter(move |(b, _)| *b >= from),
        )))
    }
}

/// A ledger where key `k` of chaincode `kv` holds `value`, written at block `block`.
fn ledger_at(block: u64, value: &[u8]) -> Arc<MemoryLedger> {
    let mut state = MemoryLedger::default();
    state.put("kv", "k", value, Version::new(block, 0));
    Arc::new(state)
}

fn endorser(ch: &mut TestChannel, org: usize, name: &str, defined: bool) -> Arc<Endorser> {
    let ctx = Arc::new(Ctx {
        config: Arc::new(ch.config.clone()),
        state: Mutex::new(ledger_at(1, b"v1")),
        defined,
    });
    endorser_over(ch, org, name, ctx)
}

fn endorser_over(ch: &mut TestChannel, org: usize, name: &str, ctx: Arc<Ctx>) -> Arc<Endorser> {
    let peer = Arc::new(ch.orgs[org].identity(name, NodeOu::Peer, &[]));
    let e = Arc::new(Endorser::new(
        peer,
        Arc::new(InProcessExecutor(contract())),
        Arc::new(MemoryTransientStore::default()),
        EndorserConfig::default(),
    ));
    e.add_channel("ehr".parse().unwrap(), ctx);
    e
}

async fn serve_endorser(e: Arc<Endorser>) -> (String, oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(EndorserServer::new(EndorserService::new(e)))
            .serve_with_incoming_shutdown(TcpListenerStream::new(l), async {
                let _ = rx.await;
            }),
    );
    (addr, tx)
}

fn remote(addr: &str) -> EndorserHandle {
    EndorserHandle::Remote(EndorserClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy(),
    ))
}

#[tokio::test]
async fn endorse_evaluate_status_and_events_through_the_gateway() {
    let mut ch = TestChannel::new("ehr", 2, 4);
    let org1 = endorser(&mut ch, 0, "peer0", true);
    let org2_good = endorser(&mut ch, 1, "peer1", true);
    let org2_broken = endorser(&mut ch, 1, "peer2", false);
    let client = ch.orgs[0].identity("app1", NodeOu::Client, &[]);
    let client2 = ch.orgs[0].identity("app2", NodeOu::Client, &[]);
    let (good_addr, stop_good) = serve_endorser(org2_good).await;
    let (broken_addr, stop_broken) = serve_endorser(org2_broken).await;
    // A peer of Org2 that is down: nothing listens on this port.
    let down_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();

    let peers = |org2: Vec<(&str, EndorserHandle)>| {
        let mut v = vec![PeerEndpoint {
            msp_id: "Org1MSP".parse().unwrap(),
            address: "local".into(),
            endorser: EndorserHandle::Local(org1.clone()),
        }];
        v.extend(org2.into_iter().map(|(a, h)| PeerEndpoint {
            msp_id: "Org2MSP".parse().unwrap(),
            address: a.to_owned(),
            endorser: h,
        }));
        v
    };
    let commits = Arc::new(Commits::default());
    let start_gateway = |peers: Vec<PeerEndpoint>| {
        serve(gateway_over(
            &ch,
            peers,
            commits.clone(),
            GatewayConfig::default(),
        ))
    };

    // Org2's first peer is down: the gateway retries its second peer.
    let (channel, stop_gw) = start_gateway(peers(vec![
        (&down_addr, remote(&down_addr)),
        (&good_addr, remote(&good_addr)),
    ]))
    .await;
    let gw = Gateway::connect(client, channel);
    let contract = gw.network("ehr").contract("kv");
    let tx = contract
        .new_proposal("put")
        .args(&["k", "v2"])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap();
    assert_eq!(tx.result(), b"stored");
    let endorsers = endorsing_msps(tx.envelope());
    assert_eq!(
        endorsers,
        ["Org1MSP", "Org2MSP"],
        "MAJORITY of 2 orgs needs both"
    );
    assert_eq!(
        contract.evaluate_transaction("get", &["k"]).await.unwrap(),
        b"v1"
    );
    // A chaincode's refusal: UNKNOWN with its status and message, as Fabric's gateway.
    let err = contract
        .evaluate_transaction("nope", &[])
        .await
        .unwrap_err();
    let GatewayError::Status { code, message, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(code, tonic::Code::Unknown);
    assert!(
        message.starts_with("evaluate call to endorser returned error: chaincode response 400, "),
        "{message}"
    );

    // Commit status (signed request) and chaincode events, resumable after a tx id.
    commits.statuses.lock().unwrap().insert(
        tx.tx_id().to_owned(),
        (TxValidationCode::MvccReadConflict, 7),
    );
    let commit = gw.network("ehr").commit(tx.tx_id());
    assert_eq!(
        commit.status().await.unwrap(),
        (TxValidationCode::MvccReadConflict, 7)
    );
    use futures::StreamExt;
    let events: Vec<_> = gw
        .network("ehr")
        .chaincode_events("kv", Some(1), Some("t1"))
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(
        events
            .iter()
            .map(|(b, e)| (*b, e.tx_id.as_str()))
            .collect::<Vec<_>>(),
        [(1, "t2"), (2, "t3")]
    );

    // Submit without reachable orderers fails cleanly.
    let err = tx.submit().await.unwrap_err();
    assert!(
        matches!(
            err,
            GatewayError::Status {
                code: tonic::Code::Unavailable,
                ..
            }
        ),
        "{err}"
    );
    let _ = stop_gw.send(());

    // Every Org2 peer fails: ErrorDetails name each of them.
    let (channel, stop_gw) = start_gateway(peers(vec![
        (&down_addr, remote(&down_addr)),
        (&broken_addr, remote(&broken_addr)),
    ]))
    .await;
    let gw = Gateway::connect(client2, channel.clone());
    let err = gw
        .network("ehr")
        .contract("kv")
        .new_proposal("put")
        .args(&["k", "x"])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap_err();
    let GatewayError::Status { code, details, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(code, tonic::Code::Aborted);
    let addrs: HashSet<&str> = details.iter().map(|d| d.address.as_str()).collect();
    assert_eq!(
        addrs,
        [down_addr.as_str(), broken_addr.as_str()]
            .into_iter()
            .collect()
    );
    assert!(details.iter().all(|d| d.msp_id == "Org2MSP"));
    assert!(
        details.iter().any(|d| d.message.contains("not defined")),
        "{details:?}"
    );

    // A forged commit status request is refused.
    let mut raw = medledger_proto::gateway::gateway_client::GatewayClient::new(channel);
    let status = raw
        .commit_status(medledger_proto::gateway::SignedCommitStatusRequest {
            request: vec![1, 2],
            signature: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(error_details(&status).is_empty());
    let _ = (stop_gw.send(()), stop_good.send(()), stop_broken.send(()));
}

fn endorsing_msps(envelope: &medledger_proto::common::Envelope) -> Vec<String> {
    use medledger_proto::common::Payload;
    use medledger_proto::protos::{ChaincodeActionPayload, Transaction};
    use prost::Message;
    let payload = Payload::decode(envelope.payload.as_slice()).unwrap();
    let tx = Transaction::decode(payload.data.as_slice()).unwrap();
    let cap = ChaincodeActionPayload::decode(tx.actions[0].payload.as_slice()).unwrap();
    let mut msps: Vec<String> = cap
        .action
        .unwrap()
        .endorsements
        .iter()
        .map(|e| {
            medledger_msp::identity::deserialize_identity(&e.endorser)
                .unwrap()
                .0
        })
        .collect();
    msps.sort();
    msps
}

/// Never answers: a transaction that never commits, an event stream with no events.
struct Pending;

#[tonic::async_trait]
impl CommitSource for Pending {
    async fn wait_for_commit(
        &self,
        _channel: &str,
        _tx_id: &TxId,
    ) -> Result<(TxValidationCode, u64), CommitSourceError> {
        std::future::pending().await
    }
    async fn chaincode_events(
        &self,
        _channel: &str,
        _chaincode: &str,
        _start: Option<u64>,
    ) -> Result<EventStream, CommitSourceError> {
        Ok(Box::pin(tokio_stream::pending()))
    }
}

/// Issue 13 item 9: one client cannot pile up commit-status waits or chaincode-event streams
/// without bound (on 4436d0b neither was limited): past the configured number the gateway
/// answers RESOURCE_EXHAUSTED at once, and a closed stream frees its place.
#[tokio::test]
async fn commit_status_waits_and_event_streams_are_bounded() {
    use medledger_proto::gateway::gateway_server::Gateway as _;
    use medledger_proto::gateway::{
        ChaincodeEventsRequest, CommitStatusRequest, SignedChaincodeEventsRequest,
        SignedCommitStatusRequest,
    };
    use prost::Message;

    let mut ch = TestChannel::new("ehr", 1, 4);
    let clients: Vec<_> = (1..=5)
        .map(|i| ch.orgs[0].identity(&format!("app{i}"), NodeOu::Client, &[]))
        .collect();
    let client = &clients[0];
    let config = GatewayConfig {
        max_commit_status_waits: 4,
        max_event_streams: 1,
        ..GatewayConfig::default()
    };
    let svc = Arc::new(gateway_over(&ch, vec![], Arc::new(Pending), config));
    let status_request = |who: &medledger_msp::identity::SigningIdentity, tx: &str| {
        let request = CommitStatusRequest {
            transaction_id: tx.into(),
            channel_id: "ehr".into(),
            identity: who.serialized().to_vec(),
        }
        .encode_to_vec();
        SignedCommitStatusRequest {
            signature: who.sign(&request).unwrap(),
            request,
        }
    };
    let tx = |n: usize| format!("{n:064x}");
    let wait = |req: SignedCommitStatusRequest| {
        let svc = svc.clone();
        tokio::spawn(async move { svc.commit_status(tonic::Request::new(req)).await })
    };
    // Each identity may hold a quarter of the waits: app1's second is refused at once.
    let mut waits = vec![wait(status_request(&clients[0], &tx(0xa)))];
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let second = svc
        .commit_status(tonic::Request::new(status_request(&clients[0], &tx(0xb))))
        .await
        .unwrap_err();
    assert_eq!(second.code(), tonic::Code::ResourceExhausted);
    assert!(second.message().contains("this identity"), "{second:?}");
    // Three more identities fill the gateway; a fifth is refused.
    for (i, c) in clients[1..4].iter().enumerate() {
        waits.push(wait(status_request(c, &tx(i))));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let fifth = svc
        .commit_status(tonic::Request::new(status_request(&clients[4], &tx(0xc))))
        .await
        .unwrap_err();
    assert_eq!(fifth.code(), tonic::Code::ResourceExhausted);
    for w in waits {
        w.abort();
    }

    let events_request = || {
        let request = ChaincodeEventsRequest {
            channel_id: "ehr".into(),
            chaincode_id: "kv".into(),
            identity: client.serialized().to_vec(),
            start_position: None,
            after_transaction_id: String::new(),
        }
        .encode_to_vec();
        SignedChaincodeEventsRequest {
            signature: client.sign(&request).unwrap(),
            request,
        }
    };
    let open = svc
        .chaincode_events(tonic::Request::new(events_request()))
        .await
        .unwrap();
    let refused = svc
        .chaincode_events(tonic::Request::new(events_request()))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    drop(open);
    assert!(
        svc.chaincode_events(tonic::Request::new(events_request()))
            .await
            .is_ok(),
        "a closed stream did not free its place"
    );
}

/// A transaction id that is not 64 lowercase hex characters can never commit: the request is
/// refused at once with `INVALID_ARGUMENT`, instead of holding a wait until the timeout.
#[tokio::test]
async fn a_malformed_transaction_id_is_refused_at_once() {
    use medledger_proto::gateway::gateway_server::Gateway as _;
    use medledger_proto::gateway::{CommitStatusRequest, SignedCommitStatusRequest};
    use prost::Message;

    let mut ch = TestChannel::new("ehr", 1, 4);
    let client = ch.orgs[0].identity("app", NodeOu::Client, &[]);
    let svc = gateway_over(&ch, vec![], Arc::new(Pending), GatewayConfig::default());
    let upper = "A".repeat(64);
    for bad in [
        "",
        "abc",
        upper.as_str(),
        &"0".repeat(65),
        "../../etc/passwd",
    ] {
        let request = CommitStatusRequest {
            transaction_id: bad.into(),
            channel_id: "ehr".into(),
            identity: client.serialized().to_vec(),
        }
        .encode_to_vec();
        let signed = SignedCommitStatusRequest {
            signature: client.sign(&request).unwrap(),
            request,
        };
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            svc.commit_status(tonic::Request::new(signed)),
        )
        .await
        .unwrap_or_else(|_| panic!("{bad:?}: still waiting after 5 s"));
        let e = answer.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}: {e:?}");
        if !bad.is_empty() {
            assert!(!e.message().contains(bad), "the id is echoed: {e:?}");
        }
    }
}

/// A gateway of Org1 over `peers` of channel `ehr`.
fn gateway_over(
    ch: &TestChannel,
    peers: Vec<PeerEndpoint>,
    commits: Arc<dyn CommitSource>,
    config: GatewayConfig,
) -> GatewayService {
    let channel = ChannelGateway {
        config: Arc::new(ch.config.clone()),
        peers,
        orderers: vec![],
    };
    GatewayService::new(
        "Org1MSP".parse().unwrap(),
        [("ehr".to_owned(), channel)].into_iter().collect(),
        Arc::new(DefaultPolicies),
        commits,
        config,
    )
}

/// `svc` served on a free loopback port: a tonic channel to it and the sender that stops it.
async fn serve(svc: GatewayService) -> (tonic::transport::Channel, oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc.into_service())
            .serve_with_incoming_shutdown(TcpListenerStream::new(l), async {
                let _ = rx.await;
            }),
    );
    let channel = tonic::transport::Endpoint::from_shared(addr)
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, tx)
}

/// Org1's peer (the gateway's) and Org2's peer, both reached in process.
fn one_peer_each(org1: Arc<Endorser>, org2: Arc<Endorser>) -> Vec<PeerEndpoint> {
    [("Org1MSP", org1), ("Org2MSP", org2)]
        .into_iter()
        .map(|(msp, e)| PeerEndpoint {
            msp_id: msp.parse().unwrap(),
            address: msp.into(),
            endorser: EndorserHandle::Local(e),
        })
        .collect()
}

/// Endorses `get k` on chaincode `kv` of channel `ehr` through `gw`.
async fn endorse_get(gw: &Gateway) -> Result<Transaction, GatewayError> {
    let proposal = gw.network("ehr").contract("kv").new_proposal("get");
    proposal.args(&["k"]).build().unwrap().endorse().await
}

/// A client waits for its transaction's commit at its gateway's peer, then sends a proposal
/// that reads what it wrote: another organization's peer that has not yet committed that
/// block simulates an older read set. Fabric's gateway avoids such a peer by choosing the
/// highest ledger height; this gateway asks again while the responses differ (for up to
/// `GatewayConfig::mismatch_wait`), so the proposal is endorsed once the peer catches up.
/// Responses that keep differing (a chaincode that is not deterministic, a peer that never
/// catches up) still end in Fabric's ABORTED "proposal response payloads do not match".
#[tokio::test]
async fn an_endorser_behind_the_gateways_peer_is_asked_again_until_it_catches_up() {
    let mut ch = TestChannel::new("ehr", 2, 4);
    let config = Arc::new(ch.config.clone());
    let ctx = |state: Arc<MemoryLedger>| {
        Arc::new(Ctx {
            config: config.clone(),
            state: Mutex::new(state),
            defined: true,
        })
    };
    // Org1's peer (the gateway's) has committed block 2, which wrote `k`; Org2's has not.
    let org1_ctx = ctx(ledger_at(2, b"v2"));
    let org2_ctx = ctx(ledger_at(1, b"v1"));
    let org1 = endorser_over(&mut ch, 0, "peer0", org1_ctx);
    let org2 = endorser_over(&mut ch, 1, "peer1", org2_ctx.clone());
    let peers = one_peer_each(org1, org2);
    let (channel, stop) = serve(gateway_over(
        &ch,
        peers,
        Arc::new(Commits::default()),
        GatewayConfig::default(),
    ))
    .await;
    let client = ch.orgs[0].identity("app1", NodeOu::Client, &[]);
    let gw = Gateway::connect(client, channel);

    // Org2's peer commits block 2 a moment after the proposal is first endorsed.
    let catch_up = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        *org2_ctx.state.lock().unwrap() = ledger_at(2, b"v2");
    });
    let started = std::time::Instant::now();
    let tx = endorse_get(&gw)
        .await
        .expect("endorsed once Org2's peer caught up");
    catch_up.await.unwrap();
    assert_eq!(tx.result(), b"v2");
    assert_eq!(endorsing_msps(tx.envelope()), ["Org1MSP", "Org2MSP"]);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
    stop.send(()).ok();

    // A peer that stays behind: ABORTED once the wait is spent, naming no payload.
    let org1 = endorser_over(&mut ch, 0, "peer2", ctx(ledger_at(2, b"v2")));
    let org2 = endorser_over(&mut ch, 1, "peer3", ctx(ledger_at(1, b"v1")));
    let peers = one_peer_each(org1, org2);
    let config = GatewayConfig {
        mismatch_wait: std::time::Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let (channel, stop) = serve(gateway_over(
        &ch,
        peers,
        Arc::new(Commits::default()),
        config,
    ))
    .await;
    let client = ch.orgs[0].identity("app2", NodeOu::Client, &[]);
    let gw = Gateway::connect(client, channel);
    let started = std::time::Instant::now();
    let err = endorse_get(&gw).await.unwrap_err();
    let waited = started.elapsed();
    let GatewayError::Status { code, message, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(code, tonic::Code::Aborted);
    assert_eq!(message, "proposal response payloads do not match");
    assert!(
        waited >= std::time::Duration::from_millis(150)
            && waited < std::time::Duration::from_secs(5),
        "{waited:?}"
    );
    stop.send(()).ok();
}
