//! Fabric's peer Deliver service (`protos.Deliver`): `Deliver` streams committed blocks,
//! `DeliverFiltered` streams filtered blocks (tx ids, validation codes, chaincode events
//! without payloads), from a `SeekInfo` start to its stop, following new commits.
//!
//! Requests are checked and served by the Deliver rules the orderer shares
//! ([`medledger_channel::deliver`]): a signed `DELIVER_SEEK_INFO` envelope whose creator is a
//! valid identity of the channel that `Readers` accepts, timestamped within the peer's time
//! window ([`DEFAULT_TIME_WINDOW`] unless configured), re-checked before every block under the
//! configuration then in force; otherwise the answer is a `FORBIDDEN` status. After the stop
//! block the service sends `SUCCESS` and waits for the next request, as Fabric does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_channel::block;
use medledger_channel::deliver::{self, Refusal};
use medledger_channel::envelope;
use medledger_ledger::Ledger;
use medledger_proto::ChannelId;
use medledger_proto::common::{Block, BlockMetadataIndex, Envelope, HeaderType, Status};
use medledger_proto::protos::deliver_server::{Deliver, DeliverServer};
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeEvent, DeliverResponse, FilteredBlock,
    FilteredChaincodeAction, FilteredTransaction, FilteredTransactionActions,
    ProposalResponsePayload, Transaction, deliver_response, filtered_transaction,
};
use prost::Message;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status as GrpcStatus, Streaming};
use tracing::debug;

use crate::committer::Committer;
use crate::error::Error;

pub use medledger_channel::deliver::DEFAULT_TIME_WINDOW;

/// Responses buffered per stream before the sender waits for the client.
const STREAM_BUFFER: usize = 16;

impl From<Error> for GrpcStatus {
    fn from(e: Error) -> Self {
        match &e {
            Error::UnknownChannel { .. } => GrpcStatus::not_found(e.to_string()),
            Error::BlockRefused { .. } | Error::Genesis { .. } | Error::ChannelHalted { .. } => {
                GrpcStatus::invalid_argument(e.to_string())
            }
            Error::Ledger(_) | Error::State(_) | Error::Io { .. } | Error::Config { .. } => {
                GrpcStatus::internal(e.to_string())
            }
        }
    }
}

/// What Deliver needs of a channel.
#[derive(Clone, Debug)]
pub struct DeliverChannel {
    ledger: Arc<Ledger>,
    /// Its current configuration (requests are checked against the latest config block).
    committer: Arc<Committer>,
    height: watch::Receiver<u64>,
}

impl DeliverChannel {
    /// The channel served by `committer`.
    pub fn from_committer(committer: &Arc<Committer>) -> Self {
        DeliverChannel {
            ledger: committer.ledger().clone(),
            committer: committer.clone(),
            height: committer.height(),
        }
    }

    fn config(&self) -> Arc<ChannelConfig> {
        self.committer.config()
    }
}

#[derive(Debug)]
struct Inner {
    channels: RwLock<HashMap<ChannelId, DeliverChannel>>,
    time_window: Duration,
    /// One permit per request being served.
    streams: Arc<Semaphore>,
}

/// Deliver requests a peer serves at once by default (Fabric's
/// `peer.limits.concurrency.deliverService`, 2500).
pub const DEFAULT_MAX_STREAMS: usize = 2500;

/// The Deliver service of a peer, over the channels added to it.
#[derive(Clone, Debug)]
pub struct DeliverService {
    inner: Arc<Inner>,
}

impl Default for DeliverService {
    fn default() -> Self {
        Self::new(DEFAULT_TIME_WINDOW)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Full,
    Filtered,
}

impl DeliverService {
    /// A service with no channels; requests must be timestamped within `time_window`; at
    /// most [`DEFAULT_MAX_STREAMS`] streams open at once.
    pub fn new(time_window: Duration) -> Self {
        Self::with_limits(time_window, DEFAULT_MAX_STREAMS)
    }

    /// As [`DeliverService::new`] with at most `max_streams` (at least 1) authorized requests
    /// of `Deliver` and `DeliverFiltered` served at once (Fabric's deliver concurrency limit);
    /// one more is answered `SERVICE_UNAVAILABLE` until one ends. A stream holds a slot only
    /// while it serves a request that passed the access checks.
    pub fn with_limits(time_window: Duration, max_streams: usize) -> Self {
        let max_streams = max_streams.max(1);
        DeliverService {
            inner: Arc::new(Inner {
                channels: RwLock::new(HashMap::new()),
                time_window,
                streams: Arc::new(Semaphore::new(max_streams)),
            }),
        }
    }

    /// Serves `channel` from now on.
    pub fn add_channel(&self, channel: DeliverChannel) {
        let id = channel.committer.channel_id().clone();
        let mut channels = self
            .inner
            .channels
            .write()
            .unwrap_or_else(|e| e.into_inner());
        channels.insert(id, channel);
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> DeliverServer<Self> {
        DeliverServer::new(self)
    }

    fn stream(
        &self,
        request: Request<Streaming<Envelope>>,
        mode: Mode,
    ) -> Response<ReceiverStream<Result<DeliverResponse, GrpcStatus>>> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            loop {
                let env = match incoming.message().await {
                    Ok(Some(env)) => env,
                    Ok(None) => return,
                    Err(e) => {
                        debug!(target: "peer::deliver", error = %e, "request stream ended");
                        return;
                    }
                };
                let status = match handle(&inner, &env, mode, &tx).await {
                    Ok(true) => Status::Success,
                    Ok(false) => return, // client gone
                    Err(Refusal { status, reason }) => {
                        debug!(target: "peer::deliver", ?status, reason, "deliver request refused");
                        status
                    }
                };
                let resp = DeliverResponse {
                    r#type: Some(deliver_response::Type::Status(status as i32)),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Response::new(ReceiverStream::new(rx))
    }
}

impl deliver::BlockSource for DeliverChannel {
    type Error = Error;

    fn config(&self) -> Arc<ChannelConfig> {
        self.committer.config()
    }

    fn height(&self) -> watch::Receiver<u64> {
        self.height.clone()
    }

    async fn block(&self, number: u64) -> Result<Option<Block>, Error> {
        let ledger = self.ledger.clone();
        Ok(tokio::task::spawn_blocking(move || ledger.block(number))
            .await
            .map_err(|e| Error::Io {
                what: "block read",
                error: std::io::Error::other(e),
            })??)
    }
}

/// One peer Deliver stream: full blocks, or filtered ones.
struct PeerSink<'a> {
    tx: &'a mpsc::Sender<Result<DeliverResponse, GrpcStatus>>,
    mode: Mode,
    channel_id: ChannelId,
}

impl deliver::BlockSink for PeerSink<'_> {
    async fn send(&mut self, block: Block) -> bool {
        let resp = match self.mode {
            Mode::Full => deliver_response::Type::Block(block),
            Mode::Filtered => {
                deliver_response::Type::FilteredBlock(filtered_block(&block, &self.channel_id))
            }
        };
        self.tx
            .send(Ok(DeliverResponse { r#type: Some(resp) }))
            .await
            .is_ok()
    }

    async fn closed(&self) {
        self.tx.closed().await;
    }

    fn honours_headers_only(&self) -> bool {
        // A filtered block is built from the transactions: DeliverFiltered ignores the
        // content type (filtered blocks carry no payloads anyway).
        self.mode == Mode::Full
    }
}

/// Serves one request under the shared Deliver rules ([`deliver`]). `Ok(true)`: the stop
/// block was sent; `Ok(false)`: the client went away.
async fn handle(
    inner: &Inner,
    env: &Envelope,
    mode: Mode,
    tx: &mpsc::Sender<Result<DeliverResponse, GrpcStatus>>,
) -> Result<bool, Refusal> {
    let request = deliver::parse(env)?;
    let channel = {
        let channels = inner.channels.read().unwrap_or_else(|e| e.into_inner());
        channels.get(request.channel_id()).cloned().ok_or(Refusal {
            status: Status::NotFound,
            reason: "unknown channel",
        })?
    };
    let authorized = deliver::authorize(
        request,
        env,
        &channel.config(),
        SystemTime::now(),
        inner.time_window,
    )?;
    // A slot per authorized request being served (not per idle stream), so streams that never
    // send a valid request hold none.
    let _slot = inner
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| Refusal {
            status: Status::ServiceUnavailable,
            reason: "deliver concurrency limit reached",
        })?;
    let mut sink = PeerSink {
        tx,
        mode,
        channel_id: channel_id(&channel),
    };
    let served = deliver::serve(&channel, &authorized, &mut sink).await?;
    Ok(served == deliver::Served::Done)
}

fn channel_id(c: &DeliverChannel) -> ChannelId {
    c.committer.channel_id().clone()
}

/// The filtered form of a committed block (Fabric's `FilteredBlock`): per transaction its
/// tx id, header type and validation code, and for endorser transactions the chaincode event
/// without its payload.
pub fn filtered_block(block: &Block, channel_id: &ChannelId) -> FilteredBlock {
    let filter = block::metadata_bytes(block, BlockMetadataIndex::TransactionsFilter);
    let entries = block::entries(block);
    let filtered_transactions = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let code = filter.get(i).copied().map(i32::from).unwrap_or(254);
            let parsed = Envelope::decode(entry.as_slice())
                .ok()
                .and_then(|e| envelope::parse(&e).ok());
            let (txid, r#type) = parsed
                .as_ref()
                .map(|p| (p.channel_header.tx_id.clone(), p.channel_header.r#type))
                .unwrap_or_default();
            let event = parsed
                .as_ref()
                .filter(|p| p.header_type() == Some(HeaderType::EndorserTransaction))
                .and_then(|p| chaincode_event(&p.payload.data));
            FilteredTransaction {
                txid,
                r#type,
                tx_validation_code: code,
                data: Some(filtered_transaction::Data::TransactionActions(
                    FilteredTransactionActions {
                        chaincode_actions: event
                            .map(|mut e| {
                                e.payload.clear();
                                vec![FilteredChaincodeAction {
                                    chaincode_event: Some(e),
                                }]
                            })
                            .unwrap_or_default(),
                    },
                )),
            }
        })
        .collect();
    FilteredBlock {
        channel_id: channel_id.to_string(),
        number: block::number(block),
        filtered_transactions,
    }
}

/// The chaincode event of an endorser transaction's payload data (`protos.Transaction`
/// bytes), if it has one.
pub fn chaincode_event(tx_bytes: &[u8]) -> Option<ChaincodeEvent> {
    let tx = Transaction::decode(tx_bytes).ok()?;
    let action = tx.actions.first()?;
    let cap = ChaincodeActionPayload::decode(action.payload.as_slice()).ok()?;
    let prp =
        ProposalResponsePayload::decode(cap.action?.proposal_response_payload.as_slice()).ok()?;
    let cca = ChaincodeAction::decode(prp.extension.as_slice()).ok()?;
    if cca.events.is_empty() {
        return None;
    }
    ChaincodeEvent::decode(cca.events.as_slice()).ok()
}

#[tonic::async_trait]
impl Deliver for DeliverService {
    type DeliverStream = ReceiverStream<Result<DeliverResponse, GrpcStatus>>;
    type DeliverFilteredStream = ReceiverStream<Result<DeliverResponse, GrpcStatus>>;
    type DeliverWithPrivateDataStream = ReceiverStream<Result<DeliverResponse, GrpcStatus>>;

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, GrpcStatus> {
        Ok(self.stream(request, Mode::Full))
    }

    async fn deliver_filtered(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverFilteredStream>, GrpcStatus> {
        Ok(self.stream(request, Mode::Filtered))
    }

    async fn deliver_with_private_data(
        &self,
        _request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverWithPrivateDataStream>, GrpcStatus> {
        Err(GrpcStatus::unimplemented(
            "DeliverWithPrivateData is not supported yet",
        ))
    }
}
