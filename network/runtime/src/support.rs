//! The peer side of Fabric's chaincode shim protocol: registration, then one exchange per
//! transaction in which the peer answers the chaincode's state requests from a
//! [`TxSimulator`](medledger_ledger_api::TxSimulator) until `COMPLETED` or `ERROR`.
//!
//! A chaincode cannot make the peer buffer without bound: messages queue per transaction
//! ([`TX_QUEUE`]) and per connection ([`OUTBOUND_QUEUE`]) in bounded queues whose back
//! pressure reaches the chaincode through HTTP/2 flow control, and one call may send the peer
//! at most [`MAX_CALL_BYTES`]; beyond, each further request is answered `ERROR` and the call
//! fails.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use medledger_ledger_api::{LedgerError, TxSimulator};
use medledger_proto::protos::chaincode_message::Type as MsgType;
use medledger_proto::protos::chaincode_support_server::{ChaincodeSupport, ChaincodeSupportServer};
use medledger_proto::protos::{
    ChaincodeEvent, ChaincodeId, ChaincodeInput, ChaincodeMessage, DelState, GetHistoryForKey,
    GetState, GetStateByRange, GetStateMetadata, PutState, PutStateMetadata, QueryMetadata,
    QueryResponse, QueryResponseMetadata, QueryResultBytes, QueryStateClose, QueryStateNext,
    Response, SignedProposal, StateMetadata, StateMetadataResult,
};
use medledger_proto::queryresult::Kv;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Status, Streaming};

/// Results per `QueryResponse` page of an iterator (Fabric's `totalQueryLimit` default is
/// larger; pages keep messages small).
pub const QUERY_PAGE_SIZE: usize = 100;
/// Most bytes (encoded messages, `COMPLETED` included) a chaincode may send the peer within
/// one call: 100 MiB, the peer's largest gRPC message, since the call's writes, event and
/// response go back to the client in one proposal response.
pub const MAX_CALL_BYTES: usize = 100 << 20;
/// Messages of one transaction the peer holds before it stops reading the connection (the
/// shim sends one request and waits for its answer; more is a chaincode flooding).
pub const TX_QUEUE: usize = 16;
/// Messages the peer holds for a chaincode that is not reading them (across its
/// transactions) before the transactions sending them wait.
pub const OUTBOUND_QUEUE: usize = 64;

/// Why an execution failed. Messages carry chaincode ids and tx ids only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The chaincode did not complete within the execution timeout.
    #[error("chaincode {chaincode} timed out after {after:?} executing tx {tx_id}")]
    Timeout {
        /// Chaincode id.
        chaincode: String,
        /// Transaction id.
        tx_id: String,
        /// Timeout.
        after: Duration,
    },
    /// The chaincode process exited or its connection broke.
    #[error("chaincode {chaincode} exited or disconnected")]
    Exited {
        /// Chaincode id.
        chaincode: String,
    },
    /// The chaincode answered the transaction with `ERROR`.
    #[error("chaincode {chaincode} failed: {message}")]
    Failed {
        /// Chaincode id.
        chaincode: String,
        /// Its message.
        message: String,
    },
    /// The same (channel, tx id) is already executing on this chaincode.
    #[error("tx {tx_id} is already executing")]
    DuplicateTransaction {
        /// Transaction id.
        tx_id: String,
    },
    /// The chaincode could not be started or did not register.
    #[error("chaincode {chaincode} could not be started: {message}")]
    Launch {
        /// Chaincode id.
        chaincode: String,
        /// Cause.
        message: String,
    },
    /// The chaincode broke the protocol or a bound ([`MAX_CALL_BYTES`]).
    #[error("chaincode {chaincode} protocol error: {message}")]
    Protocol {
        /// Chaincode id.
        chaincode: String,
        /// What was wrong.
        message: String,
    },
}

/// One invocation.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// Channel id.
    pub channel_id: String,
    /// Transaction id.
    pub tx_id: String,
    /// Arguments (function name first).
    pub input: ChaincodeInput,
    /// The client's signed proposal (creator, transient data, timestamp for the chaincode).
    pub proposal: Option<SignedProposal>,
    /// `INIT` instead of `TRANSACTION`.
    pub is_init: bool,
}

/// The chaincode's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOutcome {
    /// `protos.Response` (status ≥ 400: failure, not endorsed).
    pub response: Response,
    /// The event the transaction set, if any (chaincode id and tx id filled in).
    pub event: Option<ChaincodeEvent>,
}

type TxKey = (String, String);

/// A registered chaincode: its outbound queue and the transactions in flight.
pub struct ChaincodeConnection {
    chaincode: String,
    out: mpsc::Sender<ChaincodeMessage>,
    txs: Mutex<HashMap<TxKey, mpsc::Sender<ChaincodeMessage>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for ChaincodeConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaincodeConnection")
            .field("chaincode", &self.chaincode)
            .field("alive", &self.is_alive())
            .finish()
    }
}

fn msg(kind: MsgType, payload: Vec<u8>, channel_id: &str, tx_id: &str) -> ChaincodeMessage {
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

/// Why a chaincode's registration handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The stream ended before the chaincode sent `REGISTER`.
    #[error("stream closed before REGISTER")]
    Closed,
    /// The stream failed with this gRPC status message.
    #[error("{0}")]
    Stream(String),
    /// The first message is not `REGISTER`.
    #[error("expected REGISTER, got message type {0}")]
    NotRegister(i32),
    /// The `REGISTER` payload does not decode as a `ChaincodeID`.
    #[error("REGISTER payload is not a ChaincodeID")]
    BadPayload,
    /// The `REGISTER` names no chaincode.
    #[error("REGISTER without a chaincode name")]
    NoName,
    /// The answer cannot be sent: the outbound stream is closed.
    #[error("outbound closed")]
    OutboundClosed,
}

/// Reads `REGISTER` and answers `REGISTERED` + `READY`; returns the chaincode id.
async fn handshake<S>(
    inbound: &mut S,
    out: &mpsc::Sender<ChaincodeMessage>,
) -> Result<String, HandshakeError>
where
    S: Stream<Item = Result<ChaincodeMessage, Status>> + Unpin,
{
    let first = inbound
        .next()
        .await
        .ok_or(HandshakeError::Closed)?
        .map_err(|s| HandshakeError::Stream(s.message().to_owned()))?;
    if first.r#type != MsgType::Register as i32 {
        return Err(HandshakeError::NotRegister(first.r#type));
    }
    let id =
        ChaincodeId::decode(first.payload.as_slice()).map_err(|_| HandshakeError::BadPayload)?;
    if id.name.is_empty() {
        return Err(HandshakeError::NoName);
    }
    for kind in [MsgType::Registered, MsgType::Ready] {
        out.send(msg(kind, Vec::new(), "", ""))
            .await
            .map_err(|_| HandshakeError::OutboundClosed)?;
    }
    Ok(id.name)
}

impl ChaincodeConnection {
    /// Runs the handshake on a fresh stream and starts routing its messages. Used for both
    /// directions: the stream the chaincode opened (`ChaincodeSupport.Register`) and the one
    /// the peer opened (chaincode-as-a-service `Connect`).
    ///
    /// # Errors
    /// [`HandshakeError`].
    pub async fn establish<S>(
        mut inbound: S,
        out: mpsc::Sender<ChaincodeMessage>,
    ) -> Result<Arc<Self>, HandshakeError>
    where
        S: Stream<Item = Result<ChaincodeMessage, Status>> + Unpin + Send + 'static,
    {
        let chaincode = handshake(&mut inbound, &out).await?;
        let conn = Arc::new(ChaincodeConnection {
            chaincode,
            out,
            txs: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let reader = conn.clone();
        tokio::spawn(async move {
            let mut unroutable: u64 = 0;
            while let Some(Ok(m)) = inbound.next().await {
                if m.r#type == MsgType::Keepalive as i32 {
                    continue;
                }
                let key = (m.channel_id.clone(), m.txid.clone());
                let route = reader.txs.lock().ok().and_then(|t| t.get(&key).cloned());
                match route {
                    // Waits while the transaction's queue is full: the connection is not read
                    // meanwhile, so a flooding chaincode is held back by flow control.
                    Some(tx) => {
                        let _ = tx.send(m).await;
                    }
                    None => {
                        // Logged at the 1st, 2nd, 4th, 8th, ... such message: a chaincode
                        // cannot flood the peer's log either.
                        unroutable += 1;
                        if unroutable.is_power_of_two() {
                            tracing::warn!(
                                target: "peer::chaincode",
                                chaincode = %reader.chaincode,
                                tx_id = %m.txid,
                                count = unroutable,
                                "message for no transaction in flight"
                            );
                        }
                    }
                }
            }
            reader.closed.store(true, Ordering::SeqCst);
            if let Ok(mut t) = reader.txs.lock() {
                t.clear();
            }
            tracing::info!(target: "peer::chaincode", chaincode = %reader.chaincode, "chaincode disconnected");
        });
        Ok(conn)
    }

    /// The id the chaincode registered with.
    pub fn chaincode(&self) -> &str {
        &self.chaincode
    }

    /// Whether the stream is still open.
    pub fn is_alive(&self) -> bool {
        !self.closed.load(Ordering::SeqCst) && !self.out.is_closed()
    }

    /// Executes one transaction: sends it, serves the chaincode's requests from `sim`, and
    /// returns its response, all within `timeout`.
    ///
    /// # Errors
    /// [`RuntimeError::Timeout`], [`RuntimeError::Exited`], [`RuntimeError::Failed`] (the
    /// chaincode sent `ERROR`), [`RuntimeError::DuplicateTransaction`],
    /// [`RuntimeError::Protocol`].
    pub async fn execute(
        &self,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
        timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        let exited = || RuntimeError::Exited {
            chaincode: self.chaincode.clone(),
        };
        if !self.is_alive() {
            return Err(exited());
        }
        let key = (req.channel_id.clone(), req.tx_id.clone());
        let (tx, mut rx) = mpsc::channel(TX_QUEUE);
        {
            let mut txs = self.txs.lock().map_err(|_| exited())?;
            if txs.contains_key(&key) {
                return Err(RuntimeError::DuplicateTransaction {
                    tx_id: req.tx_id.clone(),
                });
            }
            txs.insert(key.clone(), tx);
        }
        // Removes the entry however this call ends: returned, timed out, or cancelled by its
        // caller (the future dropped mid-await).
        let _in_flight = InFlight {
            txs: &self.txs,
            key,
        };
        let kind = if req.is_init {
            MsgType::Init
        } else {
            MsgType::Transaction
        };
        let mut first = msg(kind, req.input.encode_to_vec(), &req.channel_id, &req.tx_id);
        first.proposal = req.proposal.clone();
        let exchange = async {
            self.out.send(first).await.map_err(|_| exited())?;
            let mut queries = Queries::default();
            let mut received: usize = 0;
            loop {
                let m = rx.recv().await.ok_or_else(exited)?;
                received = received.saturating_add(m.encoded_len());
                if received > MAX_CALL_BYTES {
                    let over = RuntimeError::Protocol {
                        chaincode: self.chaincode.clone(),
                        message: format!("tx {} sent more than {MAX_CALL_BYTES} bytes", req.tx_id),
                    };
                    match MsgType::try_from(m.r#type) {
                        Ok(MsgType::Completed | MsgType::Error) => return Err(over),
                        _ => {
                            // Refuse the request unserved and wait for the chaincode to end
                            // the call (or the timeout): nothing more is kept for it.
                            let refusal = msg(
                                MsgType::Error,
                                over.to_string().into_bytes(),
                                &m.channel_id,
                                &m.txid,
                            );
                            self.out.send(refusal).await.map_err(|_| exited())?;
                            continue;
                        }
                    }
                }
                match MsgType::try_from(m.r#type) {
                    Ok(MsgType::Completed) => {
                        let response = Response::decode(m.payload.as_slice()).map_err(|_| {
                            RuntimeError::Protocol {
                                chaincode: self.chaincode.clone(),
                                message: "COMPLETED payload is not a Response".into(),
                            }
                        })?;
                        let event = m.chaincode_event.map(|mut e| {
                            e.chaincode_id = self.chaincode.clone();
                            e.tx_id = req.tx_id.clone();
                            e
                        });
                        return Ok(ExecOutcome { response, event });
                    }
                    Ok(MsgType::Error) => {
                        return Err(RuntimeError::Failed {
                            chaincode: self.chaincode.clone(),
                            message: String::from_utf8_lossy(&m.payload).into_owned(),
                        });
                    }
                    _ => {
                        let reply = serve_request(&m, sim, &mut queries);
                        self.out.send(reply).await.map_err(|_| exited())?;
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(RuntimeError::Timeout {
                chaincode: self.chaincode.clone(),
                tx_id: req.tx_id.clone(),
                after: timeout,
            }),
        }
    }
}

/// A transaction in flight on a connection: its routing entry, removed on drop.
struct InFlight<'a> {
    txs: &'a Mutex<HashMap<TxKey, mpsc::Sender<ChaincodeMessage>>>,
    key: TxKey,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut txs) = self.txs.lock() {
            txs.remove(&self.key);
        }
    }
}

/// Open iterators of one transaction, holding at most [`MAX_CALL_BYTES`] of results not yet
/// handed out between them: a chaincode opening the same large range again and again gets
/// `ERROR` instead of making the peer keep copies.
#[derive(Default)]
struct Queries {
    next_id: u64,
    open: HashMap<String, VecDeque<Vec<u8>>>,
    held: usize,
}

impl Queries {
    fn start(&mut self, results: Vec<Vec<u8>>) -> Result<QueryResponse, Refused> {
        let size: usize = results.iter().map(Vec::len).sum();
        let first_page: usize = results.iter().take(QUERY_PAGE_SIZE).map(Vec::len).sum();
        if self.held.saturating_add(size - first_page) > MAX_CALL_BYTES {
            return Err(Refused(format!(
                "open query results would exceed {MAX_CALL_BYTES} bytes: close iterators first"
            )));
        }
        self.held += size;
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.open.insert(id.clone(), results.into());
        Ok(self.page(&id))
    }

    fn page(&mut self, id: &str) -> QueryResponse {
        let Some(rest) = self.open.get_mut(id) else {
            return QueryResponse::default();
        };
        let n = rest.len().min(QUERY_PAGE_SIZE);
        let results: Vec<QueryResultBytes> = rest
            .drain(..n)
            .map(|b| QueryResultBytes { result_bytes: b })
            .collect();
        self.held -= results.iter().map(|r| r.result_bytes.len()).sum::<usize>();
        let has_more = !rest.is_empty();
        if !has_more {
            self.open.remove(id);
        }
        QueryResponse {
            results,
            has_more,
            id: id.to_owned(),
            metadata: Vec::new(),
        }
    }

    fn close(&mut self, id: &str) {
        if let Some(rest) = self.open.remove(id) {
            self.held -= rest.iter().map(Vec::len).sum::<usize>();
        }
    }
}

/// Why a chaincode request is answered `ERROR`: the request is invalid, or the simulator
/// refused it. The message goes back to the chaincode: no patient data in it.
#[derive(Debug)]
struct Refused(String);

impl From<LedgerError> for Refused {
    fn from(e: LedgerError) -> Self {
        Refused(e.to_string())
    }
}

fn decode<M: Message + Default>(m: &ChaincodeMessage, what: &str) -> Result<M, Refused> {
    M::decode(m.payload.as_slice()).map_err(|_| Refused(format!("{what} does not decode")))
}

/// Answers one chaincode request (`RESPONSE` or `ERROR`).
fn serve_request(
    m: &ChaincodeMessage,
    sim: &mut dyn TxSimulator,
    queries: &mut Queries,
) -> ChaincodeMessage {
    let answer = |r: Result<Vec<u8>, Refused>| match r {
        Ok(payload) => msg(MsgType::Response, payload, &m.channel_id, &m.txid),
        Err(e) => msg(MsgType::Error, e.0.into_bytes(), &m.channel_id, &m.txid),
    };
    let kind = MsgType::try_from(m.r#type).unwrap_or(MsgType::Undefined);
    answer(handle(kind, m, sim, queries))
}

fn handle(
    kind: MsgType,
    m: &ChaincodeMessage,
    sim: &mut dyn TxSimulator,
    queries: &mut Queries,
) -> Result<Vec<u8>, Refused> {
    match kind {
        MsgType::GetState => {
            let r: GetState = decode(m, "GetState")?;
            let v = if r.collection.is_empty() {
                sim.get_state(&r.key)?
            } else {
                sim.get_private(&r.collection, &r.key)?
            };
            Ok(v.unwrap_or_default())
        }
        MsgType::PutState => {
            let r: PutState = decode(m, "PutState")?;
            if r.key.is_empty() {
                return Err(LedgerError::EmptyKey.into());
            }
            if r.collection.is_empty() {
                sim.put_state(&r.key, r.value)?;
            } else {
                sim.put_private(&r.collection, &r.key, r.value)?;
            }
            Ok(Vec::new())
        }
        MsgType::DelState => {
            let r: DelState = decode(m, "DelState")?;
            if r.collection.is_empty() {
                sim.del_state(&r.key)?;
            } else {
                sim.del_private(&r.collection, &r.key)?;
            }
            Ok(Vec::new())
        }
        MsgType::PurgePrivateData => {
            let r: DelState = decode(m, "PurgePrivateState")?;
            if r.collection.is_empty() {
                return Err(Refused("purge needs a collection".into()));
            }
            sim.purge_private(&r.collection, &r.key)?;
            Ok(Vec::new())
        }
        MsgType::GetPrivateDataHash => {
            let r: GetState = decode(m, "GetState")?;
            Ok(sim.private_hash(&r.collection, &r.key)?.unwrap_or_default())
        }
        MsgType::GetStateByRange => {
            let r: GetStateByRange = decode(m, "GetStateByRange")?;
            if !r.collection.is_empty() {
                return Err(Refused(
                    "range queries over private data are not supported".into(),
                ));
            }
            let kv = |(key, value): (String, Vec<u8>)| {
                Kv {
                    namespace: String::new(),
                    key,
                    value,
                }
                .encode_to_vec()
            };
            if r.metadata.is_empty() {
                let (all, _) = sim.range(&r.start_key, &r.end_key, "", None)?;
                Ok(queries
                    .start(all.into_iter().map(kv).collect())?
                    .encode_to_vec())
            } else {
                let meta = QueryMetadata::decode(r.metadata.as_slice())
                    .map_err(|_| Refused("QueryMetadata does not decode".into()))?;
                let size = usize::try_from(meta.page_size)
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| Refused("page size must be > 0".into()))?;
                let (page, bookmark) =
                    sim.range(&r.start_key, &r.end_key, &meta.bookmark, Some(size))?;
                let fetched = i32::try_from(page.len()).unwrap_or(i32::MAX);
                let mut resp = queries.start(page.into_iter().map(kv).collect())?;
                resp.metadata = QueryResponseMetadata {
                    fetched_records_count: fetched,
                    bookmark,
                }
                .encode_to_vec();
                Ok(resp.encode_to_vec())
            }
        }
        MsgType::QueryStateNext => {
            let r: QueryStateNext = decode(m, "QueryStateNext")?;
            Ok(queries.page(&r.id).encode_to_vec())
        }
        MsgType::QueryStateClose => {
            let r: QueryStateClose = decode(m, "QueryStateClose")?;
            queries.close(&r.id);
            Ok(QueryResponse {
                id: r.id,
                ..QueryResponse::default()
            }
            .encode_to_vec())
        }
        MsgType::GetHistoryForKey => {
            let r: GetHistoryForKey = decode(m, "GetHistoryForKey")?;
            let results = sim
                .history(&r.key)?
                .into_iter()
                .map(|h| h.to_proto().encode_to_vec())
                .collect();
            Ok(queries.start(results)?.encode_to_vec())
        }
        MsgType::GetStateMetadata => {
            let r: GetStateMetadata = decode(m, "GetStateMetadata")?;
            let entries = sim
                .get_metadata(&r.collection, &r.key)?
                .into_iter()
                .map(|(metakey, value)| StateMetadata { metakey, value })
                .collect();
            Ok(StateMetadataResult { entries }.encode_to_vec())
        }
        MsgType::PutStateMetadata => {
            let r: PutStateMetadata = decode(m, "PutStateMetadata")?;
            let md = r
                .metadata
                .ok_or_else(|| Refused("PutStateMetadata without metadata".into()))?;
            sim.put_metadata(&r.collection, &r.key, &md.metakey, md.value)?;
            Ok(Vec::new())
        }
        other => Err(Refused(format!(
            "request {} is not supported by this peer",
            other.as_str_name()
        ))),
    }
}

/// `ChaincodeSupport.Register` served by the peer: each chaincode that registers is handed,
/// as a [`ChaincodeConnection`], to the receiver given at construction.
#[derive(Clone)]
pub struct SupportService {
    registered: mpsc::UnboundedSender<Arc<ChaincodeConnection>>,
}

impl SupportService {
    /// A service announcing registrations on `registered`.
    pub fn new(registered: mpsc::UnboundedSender<Arc<ChaincodeConnection>>) -> Self {
        SupportService { registered }
    }

    /// As a tonic service.
    pub fn into_service(self) -> ChaincodeSupportServer<Self> {
        ChaincodeSupportServer::new(self)
    }
}

type RegisterStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<ChaincodeMessage, Status>> + Send>>;

#[tonic::async_trait]
impl ChaincodeSupport for SupportService {
    type RegisterStream = RegisterStream;

    async fn register(
        &self,
        request: Request<Streaming<ChaincodeMessage>>,
    ) -> Result<tonic::Response<Self::RegisterStream>, Status> {
        let inbound = request.into_inner();
        let (out, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let registered = self.registered.clone();
        tokio::spawn(async move {
            match ChaincodeConnection::establish(inbound, out).await {
                Ok(conn) => {
                    tracing::info!(target: "peer::chaincode", chaincode = %conn.chaincode(), "chaincode registered");
                    let _ = registered.send(conn);
                }
                Err(e) => {
                    tracing::warn!(target: "peer::chaincode", error = %e, "chaincode registration failed")
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            ReceiverStream::new(rx).map(Ok),
        )))
    }
}

/// Dials a chaincode-as-a-service endpoint (`protos.Chaincode/Connect`, plaintext or with the
/// TLS settings already on `channel`) and completes the handshake.
///
/// # Errors
/// [`RuntimeError::Launch`] if the call or the handshake fails.
pub async fn connect_service(
    channel: tonic::transport::Channel,
    expected_id: &str,
) -> Result<Arc<ChaincodeConnection>, RuntimeError> {
    let launch = |message: String| RuntimeError::Launch {
        chaincode: expected_id.to_owned(),
        message,
    };
    let (out, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let inbound = medledger_proto::protos::chaincode_client::ChaincodeClient::new(channel)
        .max_decoding_message_size(crate::process::MAX_CHAINCODE_MESSAGE_BYTES)
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(|s| launch(format!("Connect: {}", s.message())))?
        .into_inner();
    let conn = ChaincodeConnection::establish(inbound, out)
        .await
        .map_err(|e| launch(e.to_string()))?;
    if conn.chaincode() != expected_id {
        return Err(launch(format!(
            "registered as {:?}, expected {expected_id:?}",
            conn.chaincode()
        )));
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A chaincode stream that registered and then never answers: (connection, the stream's
    /// sender, kept so it stays open).
    async fn silent_chaincode() -> (
        Arc<ChaincodeConnection>,
        mpsc::Sender<Result<ChaincodeMessage, Status>>,
        mpsc::Receiver<ChaincodeMessage>,
    ) {
        let (to_peer, inbound) = mpsc::channel(8);
        let (out, from_peer) = mpsc::channel(64);
        let id = ChaincodeId {
            name: "silent".into(),
            ..ChaincodeId::default()
        };
        to_peer
            .send(Ok(msg(MsgType::Register, id.encode_to_vec(), "", "")))
            .await
            .unwrap();
        let conn = ChaincodeConnection::establish(ReceiverStream::new(inbound), out)
            .await
            .unwrap();
        (conn, to_peer, from_peer)
    }

    fn request(tx_id: &str) -> ExecRequest {
        ExecRequest {
            channel_id: "ehr".into(),
            tx_id: tx_id.into(),
            input: ChaincodeInput::default(),
            proposal: None,
            is_init: false,
        }
    }

    /// A call cancelled by its caller (its future dropped: the client went away, the gRPC
    /// request was cancelled) leaves no entry behind: a retry of the same transaction runs
    /// (it was refused as a duplicate forever), and cancelled calls do not pile up.
    #[tokio::test]
    async fn a_cancelled_call_leaves_nothing_behind() {
        let (conn, _keep, _out) = silent_chaincode().await;
        for _ in 0..3 {
            let mut sim = medledger_ledger_api::MemorySimulator::default();
            let cancelled = tokio::time::timeout(
                Duration::from_millis(20),
                conn.execute(request("tx1"), &mut sim, Duration::from_secs(60)),
            )
            .await;
            // Still running when cancelled (today's code refused the second call at once as
            // a duplicate of the first, cancelled one).
            assert!(cancelled.is_err(), "{cancelled:?}");
        }
        assert_eq!(
            conn.txs.lock().unwrap().len(),
            0,
            "cancelled calls are kept"
        );
        let mut sim = medledger_ledger_api::MemorySimulator::default();
        let retry = conn
            .execute(request("tx1"), &mut sim, Duration::from_millis(20))
            .await;
        assert!(
            matches!(retry, Err(RuntimeError::Timeout { .. })),
            "{retry:?}"
        );
    }

    #[test]
    fn open_iterators_hold_a_bounded_number_of_bytes() {
        let mut q = Queries::default();
        let tenth = || vec![vec![0u8; MAX_CALL_BYTES / 10]];
        let ids: Vec<String> = (0..10).map(|_| q.start(tenth()).unwrap().id).collect();
        // The first page of each was handed out: nothing held, more may open.
        assert_eq!(q.held, 0);
        let big: Vec<Vec<u8>> = (0..QUERY_PAGE_SIZE + 1)
            .map(|_| vec![0u8; 1 << 20])
            .collect();
        let first = q.start(big.clone()).unwrap();
        assert!(first.has_more);
        assert_eq!(q.held, 1 << 20);
        let mut held = Vec::new();
        let refused = loop {
            match q.start(big.clone()) {
                Ok(r) => held.push(r.id),
                Err(e) => break e,
            }
        };
        assert!(refused.0.contains("exceed"), "{}", refused.0);
        assert!(q.held <= MAX_CALL_BYTES);
        for id in held.iter().chain(ids.iter()) {
            q.close(id);
        }
        assert_eq!(q.page(&first.id).results.len(), 1);
        assert_eq!(q.held, 0);
        assert!(q.start(big).is_ok(), "closing frees room");
    }
}
