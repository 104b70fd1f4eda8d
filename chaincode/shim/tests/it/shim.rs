//! The shim against a fake peer speaking Fabric's chaincode protocol: registration, stub
//! round trips, range queries across QUERY_STATE_NEXT pages, events, errors and panics, 1,000
//! concurrent transactions without crossed replies, and chaincode-as-a-service.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use medledger_chaincode::shim::{self, ChaincodeServer};
use medledger_chaincode::{ContractError, Router, composite};
use medledger_proto::common::{ChannelHeader, Header, SignatureHeader};
use medledger_proto::protos::chaincode_client::ChaincodeClient;
use medledger_proto::protos::chaincode_message::Type as T;
use medledger_proto::protos::chaincode_support_server::{ChaincodeSupport, ChaincodeSupportServer};
use medledger_proto::protos::{
    ChaincodeInput, ChaincodeMessage, ChaincodeProposalPayload, GetState, GetStateByRange,
    Proposal, PutState, QueryResponse, QueryResultBytes, QueryStateNext, Response, SignedProposal,
};
use medledger_proto::queryresult::Kv as PbKv;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Status, Streaming};

/// The KV contract used throughout.
fn kv_contract() -> Router {
    Router::new()
        .add("put", |stub, args| {
            let [key, value] = args else {
                return Err(ContractError::bad_request("put KEY VALUE"));
            };
            let before = stub.get_state(key)?.unwrap_or_default();
            stub.put_state(key, value.as_bytes())?;
            stub.set_event("Put", key.as_bytes())?;
            Ok(format!(
                "{}|{}|{}",
                stub.tx_id(),
                key,
                String::from_utf8_lossy(&before)
            )
            .into_bytes())
        })
        .add("list", |stub, args| {
            let (start, end) = composite::partial_range("asset", &[])?;
            let _ = args;
            let kvs = stub.get_state_by_range(&start, &end)?;
            Ok(kvs.len().to_string().into_bytes())
        })
        .add("boom", |_stub, _args| panic!("contract bug"))
        .add("secret", |stub, _args| {
            let creator = stub.creator()?;
            let t = stub.transient().get("phi").cloned().unwrap_or_default();
            Ok(format!(
                "{}:{}:{}",
                creator.msp_id,
                creator.attribute("ehr.role").unwrap_or("-"),
                t.len()
            )
            .into_bytes())
        })
}

/// Peer side of the protocol, serving state from a map; range results come in pages of 2.
#[derive(Clone, Default)]
struct FakePeer {
    state: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    writes: Arc<Mutex<HashMap<String, Vec<(String, Vec<u8>)>>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<ChaincodeMessage>>>>,
    out: Arc<Mutex<Option<mpsc::UnboundedSender<ChaincodeMessage>>>>,
    ready: Arc<tokio::sync::Notify>,
    queries: Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>,
}

fn reply(kind: T, payload: Vec<u8>, to: &ChaincodeMessage) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: kind as i32,
        payload,
        txid: to.txid.clone(),
        channel_id: to.channel_id.clone(),
        ..Default::default()
    }
}

impl FakePeer {
    fn send(&self, m: ChaincodeMessage) {
        self.out.lock().unwrap().as_ref().unwrap().send(m).unwrap();
    }

    fn page(&self, id: &str) -> QueryResponse {
        let mut q = self.queries.lock().unwrap();
        let rest = q.get_mut(id).unwrap();
        let n = rest.len().min(2);
        let results: Vec<QueryResultBytes> = rest
            .drain(..n)
            .map(|b| QueryResultBytes { result_bytes: b })
            .collect();
        QueryResponse {
            results,
            has_more: !rest.is_empty(),
            id: id.to_owned(),
            metadata: vec![],
        }
    }

    async fn drive<S>(self, mut inbound: S, out: mpsc::UnboundedSender<ChaincodeMessage>)
    where
        S: Stream<Item = Result<ChaincodeMessage, Status>> + Unpin,
    {
        *self.out.lock().unwrap() = Some(out);
        while let Some(Ok(m)) = inbound.next().await {
            match T::try_from(m.r#type).unwrap() {
                T::Register => {
                    self.send(reply(T::Registered, vec![], &m));
                    self.send(reply(T::Ready, vec![], &m));
                    self.ready.notify_one();
                }
                T::GetState => {
                    let req = GetState::decode(m.payload.as_slice()).unwrap();
                    let v = self
                        .state
                        .lock()
                        .unwrap()
                        .get(&req.key)
                        .cloned()
                        .unwrap_or_default();
                    self.send(reply(T::Response, v, &m));
                }
                T::PutState => {
                    let req = PutState::decode(m.payload.as_slice()).unwrap();
                    self.writes
                        .lock()
                        .unwrap()
                        .entry(m.txid.clone())
                        .or_default()
                        .push((req.key, req.value));
                    self.send(reply(T::Response, vec![], &m));
                }
                T::GetStateByRange => {
                    let req = GetStateByRange::decode(m.payload.as_slice()).unwrap();
                    let all: Vec<Vec<u8>> = self
                        .state
                        .lock()
                        .unwrap()
                        .range(req.start_key.clone()..req.end_key.clone())
                        .map(|(k, v)| {
                            PbKv {
                                namespace: "kv".into(),
                                key: k.clone(),
                                value: v.clone(),
                            }
                            .encode_to_vec()
                        })
                        .collect();
                    let id = format!("q-{}", m.txid);
                    self.queries.lock().unwrap().insert(id.clone(), all);
                    self.send(reply(T::Response, self.page(&id).encode_to_vec(), &m));
                }
                T::QueryStateNext => {
                    let req = QueryStateNext::decode(m.payload.as_slice()).unwrap();
                    self.send(reply(T::Response, self.page(&req.id).encode_to_vec(), &m));
                }
                T::QueryStateClose => self.send(reply(T::Response, vec![], &m)),
                T::Completed | T::Error => {
                    if let Some(w) = self.waiting.lock().unwrap().remove(&m.txid) {
                        let _ = w.send(m);
                    }
                }
                other => panic!("fake peer got unexpected {other:?}"),
            }
        }
    }

    /// Sends a TRANSACTION and waits for its COMPLETED/ERROR.
    async fn invoke(
        &self,
        tx_id: &str,
        args: &[&str],
        proposal: Option<SignedProposal>,
    ) -> ChaincodeMessage {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(tx_id.to_owned(), tx);
        let input = ChaincodeInput {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            ..Default::default()
        };
        self.send(ChaincodeMessage {
            r#type: T::Transaction as i32,
            payload: input.encode_to_vec(),
            txid: tx_id.to_owned(),
            channel_id: "ehr".into(),
            proposal,
            ..Default::default()
        });
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("transaction timed out")
            .unwrap()
    }
}

fn response(m: &ChaincodeMessage) -> Response {
    assert_eq!(
        m.r#type,
        T::Completed as i32,
        "expected COMPLETED, got {m:?}"
    );
    Response::decode(m.payload.as_slice()).unwrap()
}

#[tonic::async_trait]
impl ChaincodeSupport for FakePeer {
    type RegisterStream =
        std::pin::Pin<Box<dyn Stream<Item = Result<ChaincodeMessage, Status>> + Send>>;
    async fn register(
        &self,
        req: Request<Streaming<ChaincodeMessage>>,
    ) -> Result<tonic::Response<Self::RegisterStream>, Status> {
        let (out, rx) = mpsc::unbounded_channel();
        tokio::spawn(self.clone().drive(req.into_inner(), out));
        Ok(tonic::Response::new(Box::pin(
            UnboundedReceiverStream::new(rx).map(Ok),
        )))
    }
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    (l, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_mode_serves_1000_concurrent_transactions_without_crossing() {
    let peer = FakePeer::default();
    for i in 0..1000 {
        peer.state
            .lock()
            .unwrap()
            .insert(format!("k{i}"), format!("old{i}").into_bytes());
    }
    let (l, addr) = listener().await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ChaincodeSupportServer::new(peer.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(l), async {
                let _ = stop_rx.await;
            }),
    );
    let channel = tonic::transport::Endpoint::from_shared(addr)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let cc = tokio::spawn(shim::register(channel, "kv:1.0", Arc::new(kv_contract())));
    tokio::time::timeout(Duration::from_secs(10), peer.ready.notified())
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for i in 0..1000 {
        let peer = peer.clone();
        tasks.push(tokio::spawn(async move {
            let tx = format!("tx{i:04}");
            let m = peer
                .invoke(&tx, &["put", &format!("k{i}"), &format!("new{i}")], None)
                .await;
            (i, tx, m)
        }));
    }
    for t in tasks {
        let (i, tx, m) = t.await.unwrap();
        let r = response(&m);
        assert_eq!(r.status, 200, "{}", r.message);
        assert_eq!(
            String::from_utf8(r.payload).unwrap(),
            format!("{tx}|k{i}|old{i}")
        );
        let ev = m.chaincode_event.unwrap();
        assert_eq!(
            (
                ev.event_name.as_str(),
                ev.payload.as_slice(),
                ev.tx_id.as_str()
            ),
            ("Put", format!("k{i}").as_bytes(), tx.as_str())
        );
        let writes = peer.writes.lock().unwrap().get(&tx).cloned().unwrap();
        assert_eq!(
            writes,
            vec![(format!("k{i}"), format!("new{i}").into_bytes())]
        );
    }

    // Range query across pages, unknown function, a panicking contract.
    for i in 0..5 {
        let key = composite::create("asset", &[&i.to_string()]).unwrap();
        peer.state.lock().unwrap().insert(key, b"x".to_vec());
    }
    assert_eq!(
        response(&peer.invoke("tx-list", &["list"], None).await).payload,
        b"5"
    );
    let r = response(&peer.invoke("tx-unknown", &["nope"], None).await);
    assert_eq!(r.status, 400);
    let r = response(&peer.invoke("tx-boom", &["boom"], None).await);
    assert_eq!((r.status, r.message.as_str()), (500, "chaincode panicked"));
    // The shim is still serving after the panic.
    assert_eq!(
        response(&peer.invoke("tx-after", &["put", "k1", "v"], None).await).status,
        200
    );

    // Stop what we started: the chaincode's stream first, then the server.
    cc.abort();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}

#[tokio::test]
async fn chaincode_as_a_service_with_creator_and_transient_data() {
    let (l, addr) = listener().await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ChaincodeServer::new("kv:1.0", Arc::new(kv_contract())).into_service())
            .serve_with_incoming_shutdown(TcpListenerStream::new(l), async {
                let _ = stop_rx.await;
            }),
    );
    // The peer dials the chaincode.
    let mut client = ChaincodeClient::new(
        tonic::transport::Endpoint::from_shared(addr)
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let (out, rx) = mpsc::unbounded_channel();
    let inbound = client
        .connect(UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let peer = FakePeer::default();
    tokio::spawn(peer.clone().drive(inbound, out));
    tokio::time::timeout(Duration::from_secs(10), peer.ready.notified())
        .await
        .unwrap();

    // A real signed proposal from a doctor identity, with PHI in the transient map.
    let mut org = medledger_channel::testing::TestOrg::new("Org1MSP", "org1.example.com");
    let doctor = org.identity(
        "doctor1",
        medledger_msp::ou::NodeOu::Client,
        &[("ehr.role", "doctor")],
    );
    let header = Header {
        channel_header: ChannelHeader {
            channel_id: "ehr".into(),
            timestamp: Some(SystemTime::now().into()),
            ..Default::default()
        }
        .encode_to_vec(),
        signature_header: SignatureHeader {
            creator: doctor.serialized().to_vec(),
            nonce: vec![1; 24],
        }
        .encode_to_vec(),
    };
    let payload = ChaincodeProposalPayload {
        input: vec![],
        transient_map: [("phi".to_owned(), vec![7u8; 33])].into_iter().collect(),
    };
    let proposal = Proposal {
        header: header.encode_to_vec(),
        payload: payload.encode_to_vec(),
        extension: vec![],
    };
    let proposal_bytes = proposal.encode_to_vec();
    let signed = SignedProposal {
        signature: doctor.sign(&proposal_bytes).unwrap(),
        proposal_bytes,
    };
    let r = response(&peer.invoke("tx-1", &["secret"], Some(signed)).await);
    assert_eq!(String::from_utf8(r.payload).unwrap(), "Org1MSP:doctor:33");

    // Without a proposal there is no creator: the contract's error becomes a 500 response.
    let r = response(&peer.invoke("tx-2", &["secret"], None).await);
    assert_eq!(r.status, 500);
    assert!(r.message.contains("no creator"), "{}", r.message);

    // Close the peer's side of the stream, then stop the server.
    peer.out.lock().unwrap().take();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}
