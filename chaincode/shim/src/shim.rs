//! Fabric's chaincode shim protocol over a bidirectional gRPC stream of
//! `protos.ChaincodeMessage` (fabric-chaincode-go `shim/handler.go`):
//!
//! 1. the chaincode sends `REGISTER` (payload `ChaincodeID`); the peer answers `REGISTERED`,
//!    then `READY`;
//! 2. the peer sends `TRANSACTION` (or `INIT`) with `ChaincodeInput` as payload, the signed
//!    proposal, the channel and tx id;
//! 3. while the contract runs, each stub call is a request (`GET_STATE`, `PUT_STATE`,
//!    `GET_STATE_BY_RANGE`, `QUERY_STATE_NEXT`, ...) with the same channel and tx id, answered
//!    by `RESPONSE` or `ERROR`;
//! 4. the chaincode ends the transaction with `COMPLETED` (payload `protos.Response`, plus the
//!    chaincode event) or `ERROR`.
//!
//! Transactions run concurrently, each on tokio's blocking pool, and are keyed by
//! (channel, tx id); a second transaction with a key already running is refused. The same
//! handler serves both directions of connection: [`register`] (the chaincode dials the peer's
//! `ChaincodeSupport.Register`) and [`ChaincodeServer`] (chaincode-as-a-service: the peer dials
//! `protos.Chaincode/Connect`).

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, SystemTime};

use medledger_proto::protos::chaincode_message::Type as MsgType;
use medledger_proto::protos::chaincode_server::ChaincodeServer as ConnectServer;
use medledger_proto::protos::chaincode_support_client::ChaincodeSupportClient;
use medledger_proto::protos::{
    ChaincodeEvent, ChaincodeId, ChaincodeInput, ChaincodeMessage, DelState, GetHistoryForKey,
    GetState, GetStateByRange, GetStateMetadata, PutState, PutStateMetadata, QueryMetadata,
    QueryResponse, QueryResponseMetadata, QueryStateClose, QueryStateNext, Response, StateMetadata,
    StateMetadataResult,
};
use medledger_proto::queryresult::{KeyModification as PbKeyModification, Kv as PbKv};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

use crate::contract::{Chaincode, failure};
use crate::error::{ChaincodeError, Result};
use crate::stub::{ChaincodeStub, EventSlot, KeyModification, Kv, Page, TxContext};

/// Metadata key of key-level endorsement policies (Fabric's `VALIDATION_PARAMETER`).
pub const VALIDATION_PARAMETER: &str = "VALIDATION_PARAMETER";

/// Default wait for the peer's answer to one stub request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type TxKey = (String, String);

fn message(kind: MsgType, payload: Vec<u8>, channel_id: &str, tx_id: &str) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: kind as i32,
        timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
        payload,
        txid: tx_id.to_owned(),
        proposal: None,
        chaincode_event: None,
        channel_id: channel_id.to_owned(),
    }
}

fn register_message(chaincode_id: &str) -> ChaincodeMessage {
    let id = ChaincodeId {
        path: String::new(),
        name: chaincode_id.to_owned(),
        version: String::new(),
    };
    message(MsgType::Register, id.encode_to_vec(), "", "")
}

/// Runs `chaincode` against a peer's `ChaincodeSupport.Register` on `channel`, as
/// `chaincode_id` (Fabric: the package id or `name:version`), until the peer closes the
/// stream.
///
/// # Errors
/// [`ChaincodeError::Stream`] if the stream cannot be opened or fails;
/// [`ChaincodeError::Protocol`] if the peer does not register the chaincode.
pub async fn register(
    channel: Channel,
    chaincode_id: &str,
    chaincode: Arc<dyn Chaincode>,
) -> Result<()> {
    let (out, rx) = mpsc::unbounded_channel();
    out.send(register_message(chaincode_id))
        .map_err(|_| ChaincodeError::Stream("outbound queue closed".into()))?;
    let inbound = ChaincodeSupportClient::new(channel)
        .register(UnboundedReceiverStream::new(rx))
        .await
        .map_err(|s| ChaincodeError::Stream(format!("register: {}", s.message())))?
        .into_inner();
    Handler::new(chaincode, out, DEFAULT_REQUEST_TIMEOUT)
        .run(inbound)
        .await
}

/// Chaincode-as-a-service: serves `protos.Chaincode/Connect`; each peer connection gets its
/// own handler over the shared chaincode.
#[derive(Clone)]
pub struct ChaincodeServer {
    chaincode: Arc<dyn Chaincode>,
    chaincode_id: String,
    request_timeout: Duration,
}

impl ChaincodeServer {
    /// A server for `chaincode` registering as `chaincode_id`.
    pub fn new(chaincode_id: &str, chaincode: Arc<dyn Chaincode>) -> Self {
        ChaincodeServer {
            chaincode,
            chaincode_id: chaincode_id.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// The tonic service to add to a `Server`.
    pub fn into_service(self) -> ConnectServer<Self> {
        ConnectServer::new(self)
    }
}

type ConnectStream =
    std::pin::Pin<Box<dyn Stream<Item = std::result::Result<ChaincodeMessage, Status>> + Send>>;

#[tonic::async_trait]
impl medledger_proto::protos::chaincode_server::Chaincode for ChaincodeServer {
    type ConnectStream = ConnectStream;

    async fn connect(
        &self,
        request: Request<Streaming<ChaincodeMessage>>,
    ) -> std::result::Result<tonic::Response<Self::ConnectStream>, Status> {
        let inbound = request.into_inner();
        let (out, rx) = mpsc::unbounded_channel();
        out.send(register_message(&self.chaincode_id))
            .map_err(|_| Status::internal("outbound queue closed"))?;
        let handler = Handler::new(self.chaincode.clone(), out, self.request_timeout);
        tokio::spawn(async move {
            if let Err(e) = handler.run(inbound).await {
                tracing::warn!(target: "chaincode::shim", error = %e, "peer connection ended");
            }
        });
        let stream = UnboundedReceiverStream::new(rx).map(Ok);
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

/// Per-connection protocol state.
struct Handler {
    chaincode: Arc<dyn Chaincode>,
    out: mpsc::UnboundedSender<ChaincodeMessage>,
    /// Waiting stub calls by transaction.
    pending: Arc<Mutex<HashMap<TxKey, std_mpsc::Sender<ChaincodeMessage>>>>,
    /// Transactions running.
    active: Arc<Mutex<HashSet<TxKey>>>,
    request_timeout: Duration,
}

impl Handler {
    fn new(
        chaincode: Arc<dyn Chaincode>,
        out: mpsc::UnboundedSender<ChaincodeMessage>,
        request_timeout: Duration,
    ) -> Self {
        Handler {
            chaincode,
            out,
            pending: Arc::default(),
            active: Arc::default(),
            request_timeout,
        }
    }

    async fn run<S>(self, mut inbound: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<ChaincodeMessage, Status>> + Unpin,
    {
        let mut registered = false;
        while let Some(msg) = inbound.next().await {
            let msg = msg.map_err(|s| ChaincodeError::Stream(s.message().to_owned()))?;
            let kind = MsgType::try_from(msg.r#type).unwrap_or(MsgType::Undefined);
            match kind {
                MsgType::Registered => registered = true,
                MsgType::Ready => {
                    tracing::debug!(target: "chaincode::shim", "chaincode ready");
                }
                MsgType::Transaction | MsgType::Init => {
                    if !registered {
                        return Err(ChaincodeError::Protocol(
                            "transaction before REGISTERED".into(),
                        ));
                    }
                    self.start_transaction(msg, kind == MsgType::Init);
                }
                MsgType::Response | MsgType::Error => self.route_reply(msg),
                MsgType::Keepalive => {}
                other => {
                    tracing::warn!(target: "chaincode::shim", ?other, "unexpected message from peer");
                }
            }
        }
        // Stream closed: waiting calls fail when their senders drop.
        if let Ok(mut p) = self.pending.lock() {
            p.clear();
        }
        if registered {
            Ok(())
        } else {
            Err(ChaincodeError::Protocol(
                "peer closed before REGISTERED".into(),
            ))
        }
    }

    fn route_reply(&self, msg: ChaincodeMessage) {
        let key = (msg.channel_id.clone(), msg.txid.clone());
        let waiter = self.pending.lock().ok().and_then(|p| p.get(&key).cloned());
        match waiter {
            Some(w) => {
                let _ = w.send(msg);
            }
            None => {
                tracing::warn!(target: "chaincode::shim", tx_id = %msg.txid, "reply for no waiting call")
            }
        }
    }

    fn start_transaction(&self, msg: ChaincodeMessage, is_init: bool) {
        let key = (msg.channel_id.clone(), msg.txid.clone());
        let fresh = self
            .active
            .lock()
            .map(|mut a| a.insert(key.clone()))
            .unwrap_or(false);
        if !fresh {
            let err = message(
                MsgType::Error,
                b"duplicate transaction: already running".to_vec(),
                &msg.channel_id,
                &msg.txid,
            );
            let _ = self.out.send(err);
            return;
        }
        let chaincode = self.chaincode.clone();
        let out = self.out.clone();
        let pending = self.pending.clone();
        let active = self.active.clone();
        let timeout = self.request_timeout;
        tokio::task::spawn_blocking(move || {
            let reply = execute(&*chaincode, &msg, is_init, out.clone(), pending, timeout);
            if let Ok(mut a) = active.lock() {
                a.remove(&key);
            }
            let _ = out.send(reply);
        });
    }
}

/// Runs one transaction and returns the closing `COMPLETED` or `ERROR` message.
fn execute(
    chaincode: &dyn Chaincode,
    msg: &ChaincodeMessage,
    is_init: bool,
    out: mpsc::UnboundedSender<ChaincodeMessage>,
    pending: Arc<Mutex<HashMap<TxKey, std_mpsc::Sender<ChaincodeMessage>>>>,
    timeout: Duration,
) -> ChaincodeMessage {
    let error = |text: String| {
        message(
            MsgType::Error,
            text.into_bytes(),
            &msg.channel_id,
            &msg.txid,
        )
    };
    let input = match ChaincodeInput::decode(msg.payload.as_slice()) {
        Ok(i) => i,
        Err(_) => return error("transaction payload is not a ChaincodeInput".into()),
    };
    let ctx = match TxContext::from_signed_proposal(
        msg.channel_id.clone(),
        msg.txid.clone(),
        input.args,
        msg.proposal.as_ref(),
    ) {
        Ok(c) => c,
        Err(e) => return error(e.to_string()),
    };
    let stub = ShimStub {
        ctx,
        out,
        pending,
        timeout,
        call_lock: Mutex::new(()),
        event: EventSlot::default(),
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if is_init {
            chaincode.init(&stub)
        } else {
            chaincode.invoke(&stub)
        }
    }));
    let response: Response = match result {
        Ok(r) => r,
        Err(_) => {
            tracing::error!(target: "chaincode::shim", tx_id = %msg.txid, "chaincode panicked");
            failure(crate::ERROR, "chaincode panicked")
        }
    };
    let mut done = message(
        MsgType::Completed,
        response.encode_to_vec(),
        &msg.channel_id,
        &msg.txid,
    );
    if let Some((name, payload)) = stub.event.take() {
        done.chaincode_event = Some(ChaincodeEvent {
            chaincode_id: String::new(),
            tx_id: msg.txid.clone(),
            event_name: name,
            payload,
        });
    }
    done
}

/// The stub of one transaction in the shim: each call is a request/response with the peer.
struct ShimStub {
    ctx: TxContext,
    out: mpsc::UnboundedSender<ChaincodeMessage>,
    pending: Arc<Mutex<HashMap<TxKey, std_mpsc::Sender<ChaincodeMessage>>>>,
    timeout: Duration,
    /// One outstanding request per transaction, as the protocol requires.
    call_lock: Mutex<()>,
    event: EventSlot,
}

impl ShimStub {
    fn call(&self, kind: MsgType, payload: Vec<u8>) -> Result<Vec<u8>> {
        let request = kind.as_str_name();
        let _one_at_a_time = self
            .call_lock
            .lock()
            .map_err(|_| ChaincodeError::Stream("stub lock poisoned".into()))?;
        let key = (self.ctx.channel_id.clone(), self.ctx.tx_id.clone());
        let (tx, rx) = std_mpsc::channel();
        self.pending
            .lock()
            .map_err(|_| ChaincodeError::Stream("pending lock poisoned".into()))?
            .insert(key.clone(), tx);
        let sent = self.out.send(message(
            kind,
            payload,
            &self.ctx.channel_id,
            &self.ctx.tx_id,
        ));
        let reply = match sent {
            Ok(()) => rx.recv_timeout(self.timeout),
            Err(_) => Err(std_mpsc::RecvTimeoutError::Disconnected),
        };
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&key);
        }
        let reply = reply.map_err(|e| match e {
            std_mpsc::RecvTimeoutError::Timeout => ChaincodeError::Stream(format!(
                "{request}: no answer from the peer within {:?}",
                self.timeout
            )),
            std_mpsc::RecvTimeoutError::Disconnected => {
                ChaincodeError::Stream(format!("{request}: connection to the peer closed"))
            }
        })?;
        match MsgType::try_from(reply.r#type) {
            Ok(MsgType::Response) => Ok(reply.payload),
            Ok(MsgType::Error) => Err(ChaincodeError::Peer {
                request,
                message: String::from_utf8_lossy(&reply.payload).into_owned(),
            }),
            _ => Err(ChaincodeError::Protocol(format!(
                "{request}: unexpected reply type {}",
                reply.r#type
            ))),
        }
    }

    fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M> {
        M::decode(bytes).map_err(|_| ChaincodeError::Protocol(format!("{what} does not decode")))
    }

    /// Runs a query and follows `QUERY_STATE_NEXT` until it is exhausted, then closes it.
    fn drain_query(&self, first: QueryResponse) -> Result<Vec<Vec<u8>>> {
        let mut results: Vec<Vec<u8>> = Vec::new();
        let mut page = first;
        loop {
            results.extend(page.results.into_iter().map(|r| r.result_bytes));
            if !page.has_more {
                break;
            }
            let next = self.call(
                MsgType::QueryStateNext,
                QueryStateNext {
                    id: page.id.clone(),
                }
                .encode_to_vec(),
            )?;
            page = Self::decode(&next, "QueryResponse")?;
        }
        if !page.id.is_empty() {
            // Releasing the iterator on the peer is best effort.
            let _ = self.call(
                MsgType::QueryStateClose,
                QueryStateClose { id: page.id }.encode_to_vec(),
            );
        }
        Ok(results)
    }

    fn range_request(&self, start: &str, end: &str, metadata: Vec<u8>) -> Result<QueryResponse> {
        let req = GetStateByRange {
            start_key: start.to_owned(),
            end_key: end.to_owned(),
            collection: String::new(),
            metadata,
        };
        let bytes = self.call(MsgType::GetStateByRange, req.encode_to_vec())?;
        Self::decode(&bytes, "QueryResponse")
    }
}

fn to_kvs(raw: Vec<Vec<u8>>) -> Result<Vec<Kv>> {
    raw.into_iter()
        .map(|b| {
            let kv = PbKv::decode(b.as_slice())
                .map_err(|_| ChaincodeError::Protocol("range result is not a KV".into()))?;
            Ok(Kv {
                key: kv.key,
                value: kv.value,
            })
        })
        .collect()
}

fn nonempty(key: &str) -> Result<()> {
    if key.is_empty() {
        Err(ChaincodeError::InvalidArgument(
            "key must not be empty".into(),
        ))
    } else {
        Ok(())
    }
}

fn get_state_msg(collection: &str, key: &str) -> Vec<u8> {
    GetState {
        key: key.to_owned(),
        collection: collection.to_owned(),
    }
    .encode_to_vec()
}

fn optional(bytes: Vec<u8>) -> Option<Vec<u8>> {
    // Fabric answers an absent key with an empty payload.
    if bytes.is_empty() { None } else { Some(bytes) }
}

impl ChaincodeStub for ShimStub {
    fn context(&self) -> &TxContext {
        &self.ctx
    }

    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.call(MsgType::GetState, get_state_msg("", key))
            .map(optional)
    }

    fn put_state(&self, key: &str, value: &[u8]) -> Result<()> {
        self.put_private_data("", key, value)
    }

    fn del_state(&self, key: &str) -> Result<()> {
        self.del_private_data("", key)
    }

    fn get_state_by_range(&self, start: &str, end: &str) -> Result<Vec<Kv>> {
        let first = self.range_request(start, end, Vec::new())?;
        to_kvs(self.drain_query(first)?)
    }

    fn get_state_by_range_with_pagination(
        &self,
        start: &str,
        end: &str,
        page_size: i32,
        bookmark: &str,
    ) -> Result<Page> {
        if page_size <= 0 {
            return Err(ChaincodeError::InvalidArgument(
                "page size must be > 0".into(),
            ));
        }
        let metadata = QueryMetadata {
            page_size,
            bookmark: bookmark.to_owned(),
        }
        .encode_to_vec();
        let mut first = self.range_request(start, end, metadata)?;
        let meta: QueryResponseMetadata = Self::decode(&first.metadata, "QueryResponseMetadata")?;
        first.metadata.clear();
        let results = to_kvs(self.drain_query(first)?)?;
        Ok(Page {
            results,
            bookmark: meta.bookmark,
            fetched: meta.fetched_records_count,
        })
    }

    fn get_history_for_key(&self, key: &str) -> Result<Vec<KeyModification>> {
        let bytes = self.call(
            MsgType::GetHistoryForKey,
            GetHistoryForKey {
                key: key.to_owned(),
            }
            .encode_to_vec(),
        )?;
        let first: QueryResponse = Self::decode(&bytes, "QueryResponse")?;
        self.drain_query(first)?
            .into_iter()
            .map(|b| {
                let m = PbKeyModification::decode(b.as_slice()).map_err(|_| {
                    ChaincodeError::Protocol("history result is not a KeyModification".into())
                })?;
                Ok(KeyModification {
                    tx_id: m.tx_id,
                    value: m.value,
                    timestamp: m.timestamp.and_then(|t| SystemTime::try_from(t).ok()),
                    is_delete: m.is_delete,
                })
            })
            .collect()
    }

    fn get_private_data(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.call(MsgType::GetState, get_state_msg(collection, key))
            .map(optional)
    }

    fn put_private_data(&self, collection: &str, key: &str, value: &[u8]) -> Result<()> {
        nonempty(key)?;
        let req = PutState {
            key: key.to_owned(),
            value: value.to_vec(),
            collection: collection.to_owned(),
        };
        self.call(MsgType::PutState, req.encode_to_vec())
            .map(|_| ())
    }

    fn del_private_data(&self, collection: &str, key: &str) -> Result<()> {
        nonempty(key)?;
        let req = DelState {
            key: key.to_owned(),
            collection: collection.to_owned(),
        };
        self.call(MsgType::DelState, req.encode_to_vec())
            .map(|_| ())
    }

    fn purge_private_data(&self, collection: &str, key: &str) -> Result<()> {
        nonempty(key)?;
        let req = DelState {
            key: key.to_owned(),
            collection: collection.to_owned(),
        };
        self.call(MsgType::PurgePrivateData, req.encode_to_vec())
            .map(|_| ())
    }

    fn get_private_data_hash(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.call(MsgType::GetPrivateDataHash, get_state_msg(collection, key))
            .map(optional)
    }

    fn set_validation_parameter(&self, collection: &str, key: &str, policy: &[u8]) -> Result<()> {
        nonempty(key)?;
        let req = PutStateMetadata {
            key: key.to_owned(),
            collection: collection.to_owned(),
            metadata: Some(StateMetadata {
                metakey: VALIDATION_PARAMETER.to_owned(),
                value: policy.to_vec(),
            }),
        };
        self.call(MsgType::PutStateMetadata, req.encode_to_vec())
            .map(|_| ())
    }

    fn get_validation_parameter(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let req = GetStateMetadata {
            key: key.to_owned(),
            collection: collection.to_owned(),
        };
        let bytes = self.call(MsgType::GetStateMetadata, req.encode_to_vec())?;
        let result: StateMetadataResult = Self::decode(&bytes, "StateMetadataResult")?;
        Ok(result
            .entries
            .into_iter()
            .find(|e| e.metakey == VALIDATION_PARAMETER)
            .map(|e| e.value))
    }

    fn set_event(&self, name: &str, payload: &[u8]) -> Result<()> {
        self.event.set(name, payload)
    }
}

/// Environment variable naming the chaincode id to register as (Fabric's).
pub const ENV_CHAINCODE_ID: &str = "CORE_CHAINCODE_ID_NAME";
/// Environment variable: `stdin` when the peer passed a connected socket as standard input
/// (Medledger's sandboxed runtime).
pub const ENV_TRANSPORT: &str = "MEDLEDGER_SHIM_TRANSPORT";
/// Environment variable of the peer address to dial (Fabric's `CORE_PEER_ADDRESS`, plaintext).
pub const ENV_PEER_ADDRESS: &str = "CORE_PEER_ADDRESS";
/// Environment variable of the address to serve on as chaincode-as-a-service (Fabric samples'
/// `CHAINCODE_SERVER_ADDRESS`).
pub const ENV_SERVER_ADDRESS: &str = "CHAINCODE_SERVER_ADDRESS";

/// A gRPC channel over the connected Unix socket inherited as standard input.
///
/// # Errors
/// [`ChaincodeError::Stream`] if standard input is not a usable socket.
pub async fn channel_over_stdin() -> Result<Channel> {
    use std::os::fd::AsFd;
    let io = |e: std::io::Error| ChaincodeError::Stream(format!("standard input socket: {e}"));
    let fd = std::io::stdin().as_fd().try_clone_to_owned().map_err(io)?;
    let socket = std::os::unix::net::UnixStream::from(fd);
    socket.set_nonblocking(true).map_err(io)?;
    let socket = tokio::net::UnixStream::from_std(socket).map_err(io)?;
    let slot = Arc::new(Mutex::new(Some(socket)));
    tonic::transport::Endpoint::from_static("http://peer.invalid")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = slot.lock().ok().and_then(|mut s| s.take());
            async move {
                socket.map(hyper_util::rt::TokioIo::new).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "the peer socket was already used",
                    )
                })
            }
        }))
        .await
        .map_err(|e| ChaincodeError::Stream(format!("connect over standard input: {e}")))
}

/// Entry point for a chaincode executable (Fabric's `shim.Start`): registers with the peer
/// over the inherited socket (`MEDLEDGER_SHIM_TRANSPORT=stdin`), or dials
/// `CORE_PEER_ADDRESS`, or serves chaincode-as-a-service on `CHAINCODE_SERVER_ADDRESS`; the
/// chaincode id comes from `CORE_CHAINCODE_ID_NAME`. Returns when the peer closes the
/// connection.
///
/// # Errors
/// [`ChaincodeError::Context`] for missing settings, or any connection error.
pub fn start(chaincode: Arc<dyn Chaincode>) -> Result<()> {
    let id = std::env::var(ENV_CHAINCODE_ID)
        .map_err(|_| ChaincodeError::Context(format!("{ENV_CHAINCODE_ID} is not set")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
        .map_err(|e| ChaincodeError::Stream(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        if std::env::var(ENV_TRANSPORT).as_deref() == Ok("stdin") {
            let channel = channel_over_stdin().await?;
            return register(channel, &id, chaincode).await;
        }
        if let Ok(addr) = std::env::var(ENV_SERVER_ADDRESS) {
            let addr = addr.parse().map_err(|_| {
                ChaincodeError::Context(format!("{ENV_SERVER_ADDRESS}: not HOST:PORT"))
            })?;
            tracing::info!(target: "chaincode::shim", %addr, "serving chaincode-as-a-service");
            return tonic::transport::Server::builder()
                .add_service(ChaincodeServer::new(&id, chaincode).into_service())
                .serve(addr)
                .await
                .map_err(|e| ChaincodeError::Stream(e.to_string()));
        }
        let addr = std::env::var(ENV_PEER_ADDRESS).map_err(|_| {
            ChaincodeError::Context(format!(
                "set {ENV_TRANSPORT}=stdin, {ENV_SERVER_ADDRESS} or {ENV_PEER_ADDRESS}"
            ))
        })?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| ChaincodeError::Context(format!("{ENV_PEER_ADDRESS}: bad address")))?
            .connect()
            .await
            .map_err(|e| ChaincodeError::Stream(format!("dial {addr}: {e}")))?;
        register(channel, &id, chaincode).await
    })
}
