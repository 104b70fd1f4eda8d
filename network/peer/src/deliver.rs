//! Fabric's peer Deliver service (`protos.Deliver`): `Deliver` streams committed blocks,
//! `DeliverFiltered` streams filtered blocks (tx ids, validation codes, chaincode events
//! without payloads), from a `SeekInfo` start to its stop, following new commits.
//!
//! Each request on the stream is a `common.Envelope` whose payload has a
//! `DELIVER_SEEK_INFO` channel header and an `orderer.SeekInfo` as data, signed by its
//! creator. The creator must be a valid identity of the channel whose signature verifies, the
//! channel's `Readers` policy must accept it, and the header timestamp must be within
//! [`DEFAULT_TIME_WINDOW`] of the peer's clock (Fabric's deliver access control); otherwise the
//! answer is a `FORBIDDEN` status. After the stop block the service sends `SUCCESS` and waits
//! for the next request, as Fabric does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_channel::block;
use medledger_channel::envelope;
use medledger_ledger::Ledger;
use medledger_proto::common::{Block, BlockMetadataIndex, Envelope, HeaderType, Status};
use medledger_proto::orderer::{SeekInfo, SeekPosition, seek_info, seek_position};
use medledger_proto::protos::deliver_server::{Deliver, DeliverServer};
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeEvent, DeliverResponse, FilteredBlock,
    FilteredChaincodeAction, FilteredTransaction, FilteredTransactionActions,
    ProposalResponsePayload, Transaction, deliver_response, filtered_transaction,
};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status as GrpcStatus, Streaming};
use tracing::{debug, warn};

use crate::committer::Committer;
use crate::error::Error;

/// Largest distance between a request's timestamp and the peer's clock (Fabric's deliver
/// `TimeWindow`, 15 minutes).
pub const DEFAULT_TIME_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Responses buffered per stream before the sender waits for the client.
const STREAM_BUFFER: usize = 16;

impl From<Error> for GrpcStatus {
    fn from(e: Error) -> Self {
        match &e {
            Error::UnknownChannel { .. } => GrpcStatus::not_found(e.to_string()),
            Error::BlockRefused { .. } | Error::Genesis { .. } | Error::ChannelHalted { .. } => {
                GrpcStatus::invalid_argument(e.to_string())
            }
            Error::Ledger(_) | Error::Io { .. } | Error::Config { .. } => {
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
    channels: RwLock<HashMap<String, DeliverChannel>>,
    time_window: Duration,
}

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

/// Why a request ended without blocks: the status sent.
struct Refusal(Status, &'static str);

impl DeliverService {
    /// A service with no channels; requests must be timestamped within `time_window`.
    pub fn new(time_window: Duration) -> Self {
        DeliverService {
            inner: Arc::new(Inner {
                channels: RwLock::new(HashMap::new()),
                time_window,
            }),
        }
    }

    /// Serves `channel` from now on.
    pub fn add_channel(&self, channel: DeliverChannel) {
        let id = channel.committer.channel_id().to_owned();
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
                    Err(Refusal(status, reason)) => {
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

fn position(p: Option<&SeekPosition>, height: u64) -> Option<u64> {
    match p?.r#type.as_ref()? {
        seek_position::Type::Oldest(_) => Some(0),
        seek_position::Type::Newest(_) => Some(height.saturating_sub(1)),
        seek_position::Type::Specified(s) => Some(s.number),
        seek_position::Type::NextCommit(_) => Some(height),
    }
}

/// Serves one request. `Ok(true)`: the stop block was sent; `Ok(false)`: the client went away.
async fn handle(
    inner: &Inner,
    env: &Envelope,
    mode: Mode,
    tx: &mpsc::Sender<Result<DeliverResponse, GrpcStatus>>,
) -> Result<bool, Refusal> {
    let parsed =
        envelope::parse(env).map_err(|_| Refusal(Status::BadRequest, "malformed envelope"))?;
    if parsed.header_type() != Some(HeaderType::DeliverSeekInfo) {
        return Err(Refusal(
            Status::BadRequest,
            "not a DELIVER_SEEK_INFO envelope",
        ));
    }
    let channel = {
        let channels = inner.channels.read().unwrap_or_else(|e| e.into_inner());
        channels
            .get(&parsed.channel_header.channel_id)
            .cloned()
            .ok_or(Refusal(Status::NotFound, "unknown channel"))?
    };
    let now = SystemTime::now();
    let ts = parsed
        .channel_header
        .timestamp
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or(Refusal(Status::BadRequest, "missing timestamp"))?;
    let skew = now.duration_since(ts).unwrap_or_else(|e| e.duration());
    if skew > inner.time_window {
        return Err(Refusal(
            Status::Forbidden,
            "timestamp outside the time window",
        ));
    }
    let config = channel.config();
    let creator = config
        .msps()
        .verify(
            &parsed.signature_header.creator,
            &env.payload,
            &env.signature,
            now,
        )
        .map_err(|_| Refusal(Status::Forbidden, "creator or signature invalid"))?;
    if !config.evaluate("Readers", &[creator.signer()]) {
        return Err(Refusal(
            Status::Forbidden,
            "creator does not satisfy Readers",
        ));
    }
    let seek = SeekInfo::decode(parsed.payload.data.as_slice())
        .map_err(|_| Refusal(Status::BadRequest, "payload is not a SeekInfo"))?;
    let mut height_rx = channel.height.clone();
    let height = *height_rx.borrow_and_update();
    let start = position(seek.start.as_ref(), height)
        .ok_or(Refusal(Status::BadRequest, "missing start position"))?;
    let stop = match seek.stop.as_ref().and_then(|p| p.r#type.as_ref()) {
        Some(seek_position::Type::NextCommit(_)) | None => {
            return Err(Refusal(Status::BadRequest, "invalid stop position"));
        }
        _ => position(seek.stop.as_ref(), height)
            .ok_or(Refusal(Status::BadRequest, "missing stop position"))?,
    };
    if start > stop {
        return Err(Refusal(Status::BadRequest, "start is after stop"));
    }
    // Re-checked before every block under the configuration then in force (a cache hit and a
    // policy evaluation), so an identity revoked (or an organization removed) by a config
    // block, or a certificate that expires, ends the stream with FORBIDDEN at the next block
    // (Fabric's deliver session check).
    let creator_bytes = parsed.signature_header.creator.clone();
    let fail_if_not_ready = seek.behavior == seek_info::SeekBehavior::FailIfNotReady as i32;
    let headers_only = seek.content_type == seek_info::SeekContentType::HeaderWithSig as i32;
    let mut next = start;
    loop {
        while *height_rx.borrow_and_update() <= next {
            if fail_if_not_ready {
                return Err(Refusal(Status::NotFound, "block not yet committed"));
            }
            tokio::select! {
                changed = height_rx.changed() => {
                    if changed.is_err() {
                        return Err(Refusal(Status::ServiceUnavailable, "channel closed"));
                    }
                }
                _ = tx.closed() => return Ok(false),
            }
        }
        let authorized = channel.config();
        let still = authorized
            .msps()
            .validate(&creator_bytes, SystemTime::now())
            .is_ok_and(|who| authorized.evaluate("Readers", &[who.signer()]));
        if !still {
            return Err(Refusal(
                Status::Forbidden,
                "creator no longer valid or no longer satisfies Readers",
            ));
        }
        let ledger = channel.ledger.clone();
        let block = tokio::task::spawn_blocking(move || ledger.block(next))
            .await
            .ok()
            .and_then(|r| {
                r.map_err(|e| warn!(target: "peer::deliver", error = %e, "block read failed"))
                    .ok()
            })
            .flatten()
            .ok_or(Refusal(Status::InternalServerError, "block unavailable"))?;
        let resp = match mode {
            Mode::Full => {
                let mut b = block;
                if headers_only {
                    b.data = None;
                }
                deliver_response::Type::Block(b)
            }
            Mode::Filtered => {
                deliver_response::Type::FilteredBlock(filtered_block(&block, &channel_id(&channel)))
            }
        };
        if tx
            .send(Ok(DeliverResponse { r#type: Some(resp) }))
            .await
            .is_err()
        {
            return Ok(false);
        }
        if next == stop {
            return Ok(true);
        }
        next += 1;
    }
}

fn channel_id(c: &DeliverChannel) -> String {
    c.committer.channel_id().to_owned()
}

/// The filtered form of a committed block (Fabric's `FilteredBlock`): per transaction its
/// tx id, header type and validation code, and for endorser transactions the chaincode event
/// without its payload.
pub fn filtered_block(block: &Block, channel_id: &str) -> FilteredBlock {
    let filter = block::metadata_bytes(block, BlockMetadataIndex::TransactionsFilter);
    let entries = block
        .data
        .as_ref()
        .map(|d| d.data.as_slice())
        .unwrap_or(&[]);
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
        channel_id: channel_id.to_owned(),
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
