//! Fabric's Deliver rules (`common/deliver`), shared by the orderer's `AtomicBroadcast.Deliver`
//! and the peer's `Deliver`/`DeliverFiltered`, so both answer a request the same way:
//!
//! 1. The request is a `common.Envelope` whose payload has a `DELIVER_SEEK_INFO` channel
//!    header and an `orderer.SeekInfo` as data ([`parse`]; else `BAD_REQUEST`).
//! 2. Its header timestamp is within the time window of the server's clock (Fabric's
//!    `TimeWindow`, [`DEFAULT_TIME_WINDOW`]); its creator is a valid identity of the channel at
//!    the server's clock (CRL included), its signature verifies, and the channel's `Readers`
//!    policy accepts it ([`authorize`]; else `FORBIDDEN`).
//! 3. Positions resolve as Fabric's ([`resolve_seek`]): `oldest` is 0, `newest` the last
//!    block at the time of the request, `next_commit` only as a start; a start after the stop
//!    is `BAD_REQUEST`.
//! 4. Before every block the creator is checked again under the configuration then in force
//!    ([`serve`]): an identity revoked or an organization removed by a config block, or a
//!    certificate that expired, ends the stream with `FORBIDDEN` at the next block (Fabric's
//!    session re-check on a config sequence change, and its expiry check).
//! 5. `BLOCK_UNTIL_READY` waits for blocks not yet stored; `FAIL_IF_NOT_READY` answers
//!    `NOT_FOUND` when the next block to send is not stored yet.
//! 6. `HEADER_WITH_SIG` sends blocks without their data, except config blocks, sent whole (as
//!    Fabric: a follower needs the configuration to verify the blocks after it).
//!
//! The caller maps the final [`Refusal`] or success to a `DeliverResponse` status, as Fabric
//! sends one after the stop block (or the refusal) and then waits for the next request.
//!
//! The requests themselves ([`seek_envelope`], [`block_stream_envelope`],
//! [`header_stream_envelope`]) are built here too, for clients (the gateway client SDK's block
//! events) and for peers pulling blocks from orderers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::{
    Block, ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader, Status,
};
use medledger_proto::orderer::{SeekInfo, SeekPosition, seek_info, seek_position};
use prost::Message;
use tokio::sync::watch;

use crate::ChannelConfig;
use crate::envelope::{self, ParsedEnvelope};

/// Largest distance between a request's timestamp and the server's clock (Fabric's
/// `General.Authentication.TimeWindow` / `peer.authentication.timewindow`, 15 minutes).
pub const DEFAULT_TIME_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Why a request ended without (more) blocks: the Fabric status to send and a reason for the
/// server's log (never patient data: it names no key, value or identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `BAD_REQUEST`, `FORBIDDEN`, `NOT_FOUND`, `SERVICE_UNAVAILABLE` or
    /// `INTERNAL_SERVER_ERROR`.
    pub status: Status,
    /// What went wrong, for the log.
    pub reason: &'static str,
}

const fn refuse(status: Status, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

/// A channel's chain as the Deliver service reads it.
pub trait BlockSource: Send + Sync {
    /// The channel configuration in force now (re-read before every block).
    fn config(&self) -> Arc<ChannelConfig>;

    /// The number of stored blocks (genesis included), updated as blocks are stored.
    fn height(&self) -> watch::Receiver<u64>;

    /// A failed read of a stored block: logged by the server, never sent (its message names
    /// the channel and block at most).
    type Error: std::error::Error + Send;

    /// Stored block `number`; `Ok(None)` if it is not stored. `Err` is a read failure
    /// (answered `INTERNAL_SERVER_ERROR`).
    fn block(&self, number: u64)
    -> impl Future<Output = Result<Option<Block>, Self::Error>> + Send;
}

/// Where [`serve`] sends blocks: one Deliver stream.
pub trait BlockSink: Send {
    /// Sends `block` (its data already removed for `HEADER_WITH_SIG` requests). `false` when
    /// the client has gone.
    fn send(&mut self, block: Block) -> impl Future<Output = bool> + Send;

    /// Completes when the client has gone (ends a wait for the next block).
    fn closed(&self) -> impl Future<Output = ()> + Send;

    /// Whether `HEADER_WITH_SIG` requests get blocks without data (default). A sink that
    /// builds something else from the data (the peer's filtered blocks) returns `false`.
    fn honours_headers_only(&self) -> bool {
        true
    }
}

/// A decoded Deliver request, before authorization.
#[derive(Debug)]
pub struct SeekRequest {
    parsed: ParsedEnvelope,
}

impl SeekRequest {
    /// The channel the request names (the caller picks the [`BlockSource`] by it; an unknown
    /// channel is `NOT_FOUND`).
    pub fn channel_id(&self) -> &str {
        &self.parsed.channel_header.channel_id
    }
}

/// An authorized Deliver request: what to send and whom to re-check before every block.
#[derive(Debug)]
pub struct Authorized {
    seek: SeekInfo,
    creator: Vec<u8>,
}

impl Authorized {
    /// Whether the request asked for headers and signatures only (`HEADER_WITH_SIG`).
    pub fn headers_only(&self) -> bool {
        self.seek.content_type == seek_info::SeekContentType::HeaderWithSig as i32
    }
}

/// Decodes a Deliver request envelope.
///
/// # Errors
/// `BAD_REQUEST` when the payload or headers do not decode or the header type is not
/// `DELIVER_SEEK_INFO`.
pub fn parse(env: &Envelope) -> Result<SeekRequest, Refusal> {
    let parsed =
        envelope::parse(env).map_err(|_| refuse(Status::BadRequest, "malformed envelope"))?;
    if parsed.header_type() != Some(HeaderType::DeliverSeekInfo) {
        return Err(refuse(
            Status::BadRequest,
            "not a DELIVER_SEEK_INFO envelope",
        ));
    }
    Ok(SeekRequest { parsed })
}

/// Authorizes `request` (signed as `env`) under `config` at `now`: timestamp within
/// `time_window`, creator valid with a verifying signature, `Readers` satisfied, payload a
/// `SeekInfo`.
///
/// # Errors
/// `NOT_FOUND` if the request names another channel than `config`'s; `BAD_REQUEST` for a
/// missing timestamp or a payload that is not a `SeekInfo`; `FORBIDDEN` for a timestamp
/// outside the window, an invalid creator or signature, or a creator `Readers` refuses.
pub fn authorize(
    request: SeekRequest,
    env: &Envelope,
    config: &ChannelConfig,
    now: SystemTime,
    time_window: Duration,
) -> Result<Authorized, Refusal> {
    let parsed = request.parsed;
    if parsed.channel_header.channel_id != config.channel_id().as_ref() {
        return Err(refuse(Status::NotFound, "unknown channel"));
    }
    let ts = parsed
        .channel_header
        .timestamp
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or(refuse(Status::BadRequest, "missing timestamp"))?;
    let skew = now.duration_since(ts).unwrap_or_else(|e| e.duration());
    if skew > time_window {
        return Err(refuse(
            Status::Forbidden,
            "timestamp outside the time window",
        ));
    }
    let creator = config
        .msps()
        .verify(
            &parsed.signature_header.creator,
            &env.payload,
            &env.signature,
            now,
        )
        .map_err(|_| refuse(Status::Forbidden, "creator or signature invalid"))?;
    if !config.evaluate("Readers", &[creator.signer()]) {
        return Err(refuse(
            Status::Forbidden,
            "creator does not satisfy Readers",
        ));
    }
    let seek = SeekInfo::decode(parsed.payload.data.as_slice())
        .map_err(|_| refuse(Status::BadRequest, "payload is not a SeekInfo"))?;
    Ok(Authorized {
        seek,
        creator: parsed.signature_header.creator,
    })
}

/// Resolves a request's positions against a chain of `height` blocks: the first and last
/// block numbers to send (Fabric's `SeekInfo` rules: `newest` is the last block at the time
/// of the request; `next_commit` is only a start).
///
/// # Errors
/// `BAD_REQUEST` for missing or inverted positions or a `next_commit` stop.
pub fn resolve_seek(seek: &SeekInfo, height: u64) -> Result<(u64, u64), Refusal> {
    let position = |p: Option<&SeekPosition>, is_start: bool| match p.and_then(|p| p.r#type) {
        Some(seek_position::Type::Oldest(_)) => Ok(0),
        Some(seek_position::Type::Newest(_)) => Ok(height.saturating_sub(1)),
        Some(seek_position::Type::Specified(s)) => Ok(s.number),
        Some(seek_position::Type::NextCommit(_)) if is_start => Ok(height),
        Some(seek_position::Type::NextCommit(_)) => Err(refuse(
            Status::BadRequest,
            "next_commit is not a stop position",
        )),
        None => Err(refuse(Status::BadRequest, "missing seek position")),
    };
    let start = position(seek.start.as_ref(), true)?;
    let stop = position(seek.stop.as_ref(), false)?;
    if start > stop {
        return Err(refuse(Status::BadRequest, "start is after stop"));
    }
    Ok((start, stop))
}

/// How a served request ended without a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// The stop block was sent: answer `SUCCESS`.
    Done,
    /// The client went away: send nothing more.
    ClientGone,
}

/// Sends the blocks `request` asks for from `source` to `sink`, re-checking the creator under
/// the configuration in force before every block (at the server's clock).
///
/// # Errors
/// A [`Refusal`] from [`resolve_seek`]; `FORBIDDEN` when the creator stops being valid or
/// accepted by `Readers`; `NOT_FOUND` for a block not yet stored under `FAIL_IF_NOT_READY`;
/// `SERVICE_UNAVAILABLE` when the source stops; `INTERNAL_SERVER_ERROR` for an unreadable
/// block.
pub async fn serve(
    source: &impl BlockSource,
    request: &Authorized,
    sink: &mut impl BlockSink,
) -> Result<Served, Refusal> {
    let mut height = source.height();
    let (start, stop) = resolve_seek(&request.seek, *height.borrow_and_update())?;
    let fail_if_not_ready = request.seek.behavior == seek_info::SeekBehavior::FailIfNotReady as i32;
    let mut next = start;
    loop {
        while *height.borrow_and_update() <= next {
            if fail_if_not_ready {
                return Err(refuse(Status::NotFound, "block not yet stored"));
            }
            tokio::select! {
                changed = height.changed() => {
                    if changed.is_err() {
                        return Err(refuse(Status::ServiceUnavailable, "channel stopped"));
                    }
                }
                () = sink.closed() => return Ok(Served::ClientGone),
            }
        }
        let config = source.config();
        let still = config
            .msps()
            .validate(&request.creator, SystemTime::now())
            .is_ok_and(|who| config.evaluate("Readers", &[who.signer()]));
        if !still {
            return Err(refuse(
                Status::Forbidden,
                "creator no longer valid or no longer satisfies Readers",
            ));
        }
        let mut block = match source.block(next).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err(refuse(Status::NotFound, "block not stored")),
            Err(e) => {
                tracing::warn!(target: "deliver", error = %e, block = next, "block read failed");
                return Err(refuse(Status::InternalServerError, "block unavailable"));
            }
        };
        // Fabric sends config blocks whole even to HEADER_WITH_SIG requests: a follower
        // needs the configuration to verify the signatures of the blocks after it.
        if request.headers_only()
            && sink.honours_headers_only()
            && !crate::update::is_config_block(&block)
        {
            block.data = None;
        }
        if !sink.send(block).await {
            return Ok(Served::ClientGone);
        }
        if next == stop {
            return Ok(Served::Done);
        }
        next += 1;
    }
}

// ---- requests: what a Deliver client sends ----

/// A signed Deliver request (`DELIVER_SEEK_INFO` envelope) for blocks `start..=stop`
/// (`stop = u64::MAX` for an endless stream), waiting for blocks not yet there.
///
/// # Errors
/// The signer's error if signing fails.
pub fn seek_envelope(
    signer: &SigningIdentity,
    channel_id: &str,
    start: u64,
    stop: u64,
) -> medledger_msp::Result<Envelope> {
    use medledger_proto::orderer::{SeekSpecified, seek_position::Type};
    let pos = |n| SeekPosition {
        r#type: Some(Type::Specified(SeekSpecified { number: n })),
    };
    let seek = SeekInfo {
        start: Some(pos(start)),
        stop: Some(pos(stop)),
        behavior: seek_info::SeekBehavior::BlockUntilReady as i32,
        ..Default::default()
    };
    signed_seek(signer, channel_id, &seek)
}

/// `seek` as a signed `DELIVER_SEEK_INFO` envelope with a random 24-byte nonce.
fn signed_seek(
    signer: &SigningIdentity,
    channel_id: &str,
    seek: &SeekInfo,
) -> medledger_msp::Result<Envelope> {
    let nonce: [u8; 24] = rand::random();
    signed(
        signer,
        channel_id,
        HeaderType::DeliverSeekInfo,
        String::new(),
        &nonce,
        seek.encode_to_vec(),
    )
}

/// A signed Deliver request for every block from `start` on (stop at the largest block
/// number), waiting for blocks not yet there: a client's block events (Fabric Gateway client's
/// `BlockEventsBuilder`; `start` may be `next_commit`).
///
/// # Errors
/// The signer's error if signing fails.
pub fn block_stream_envelope(
    signer: &SigningIdentity,
    channel_id: &str,
    start: SeekPosition,
) -> medledger_msp::Result<Envelope> {
    signed_seek(
        signer,
        channel_id,
        &endless(start, seek_info::SeekContentType::Block),
    )
}

/// A signed Deliver request for the headers and signatures (`HEADER_WITH_SIG`, no block data)
/// of the newest block and of every block after it, waiting for blocks not yet there: what a
/// peer's puller uses to watch an orderer's height (Fabric's BFT censorship monitor).
///
/// # Errors
/// The signer's error if signing fails.
pub fn header_stream_envelope(
    signer: &SigningIdentity,
    channel_id: &str,
) -> medledger_msp::Result<Envelope> {
    use medledger_proto::orderer::{SeekNewest, seek_position::Type};
    let newest = SeekPosition {
        r#type: Some(Type::Newest(SeekNewest {})),
    };
    signed_seek(
        signer,
        channel_id,
        &endless(newest, seek_info::SeekContentType::HeaderWithSig),
    )
}

/// A `SeekInfo` from `start` to the largest block number, waiting for blocks not yet there.
fn endless(start: SeekPosition, content_type: seek_info::SeekContentType) -> SeekInfo {
    use medledger_proto::orderer::{SeekSpecified, seek_position::Type};
    SeekInfo {
        start: Some(start),
        stop: Some(SeekPosition {
            r#type: Some(Type::Specified(SeekSpecified { number: u64::MAX })),
        }),
        behavior: seek_info::SeekBehavior::BlockUntilReady as i32,
        content_type: content_type as i32,
        ..Default::default()
    }
}

/// An envelope of `header_type` for `channel_id` whose payload is signed by `signer`.
fn signed(
    signer: &SigningIdentity,
    channel_id: &str,
    header_type: HeaderType,
    tx_id: String,
    nonce: &[u8],
    data: Vec<u8>,
) -> medledger_msp::Result<Envelope> {
    let payload = Payload {
        header: Some(Header {
            channel_header: ChannelHeader {
                r#type: header_type as i32,
                channel_id: channel_id.to_owned(),
                tx_id,
                timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
                ..Default::default()
            }
            .encode_to_vec(),
            signature_header: SignatureHeader {
                creator: signer.serialized().to_vec(),
                nonce: nonce.to_vec(),
            }
            .encode_to_vec(),
        }),
        data,
    }
    .encode_to_vec();
    let signature = signer.sign(&payload)?;
    Ok(Envelope { payload, signature })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_proto::orderer as ab;

    fn seek(start: seek_position::Type, stop: seek_position::Type) -> SeekInfo {
        SeekInfo {
            start: Some(ab::SeekPosition {
                r#type: Some(start),
            }),
            stop: Some(ab::SeekPosition { r#type: Some(stop) }),
            ..SeekInfo::default()
        }
    }

    #[test]
    fn seek_positions_follow_fabric() {
        use seek_position::Type as T;
        let oldest = || T::Oldest(ab::SeekOldest {});
        let newest = || T::Newest(ab::SeekNewest {});
        let spec = |n| T::Specified(ab::SeekSpecified { number: n });
        let next = || T::NextCommit(ab::SeekNextCommit {});
        let ok = |s: &SeekInfo, h| resolve_seek(s, h).ok();
        assert_eq!(ok(&seek(oldest(), newest()), 5), Some((0, 4)));
        assert_eq!(ok(&seek(newest(), newest()), 5), Some((4, 4)));
        assert_eq!(ok(&seek(spec(7), spec(9)), 5), Some((7, 9)));
        assert_eq!(ok(&seek(next(), spec(u64::MAX)), 5), Some((5, u64::MAX)));
        let bad = |s: &SeekInfo| resolve_seek(s, 5).map_err(|r| r.status);
        assert_eq!(bad(&seek(spec(3), spec(2))), Err(Status::BadRequest));
        assert_eq!(bad(&seek(oldest(), next())), Err(Status::BadRequest));
        assert_eq!(bad(&SeekInfo::default()), Err(Status::BadRequest));
    }
}
