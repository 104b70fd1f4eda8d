//! The shared Deliver rules ([`medledger_channel::deliver`]) over a channel whose
//! configuration changes while a stream is open: the time window, Readers, and the re-check
//! before every block that ends a revoked reader's stream (issue 14 item 7: one Deliver for
//! orderer and peer; issue 13 item 9: the orderer's streams re-check too).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_channel::deliver::{self, BlockSink, BlockSource, DEFAULT_TIME_WINDOW, Served};
use medledger_channel::testing::{TestChannel, signed_envelope_at};
use medledger_msp::ou::NodeOu;
use medledger_proto::common::{Block, BlockHeader, Envelope, HeaderType, Status};
use medledger_proto::orderer::{
    SeekInfo, SeekNextCommit, SeekPosition, SeekSpecified, seek_info, seek_position,
};
use prost::Message;
use tokio::sync::{mpsc, watch};

const CHANNEL: &str = "ehr";

struct Source {
    config: Mutex<Arc<ChannelConfig>>,
    height: watch::Sender<u64>,
}

impl BlockSource for Source {
    type Error = std::convert::Infallible;

    fn config(&self) -> Arc<ChannelConfig> {
        self.config.lock().unwrap().clone()
    }

    fn height(&self) -> watch::Receiver<u64> {
        self.height.subscribe()
    }

    async fn block(&self, number: u64) -> Result<Option<Block>, Self::Error> {
        Ok((number < *self.height.borrow()).then(|| Block {
            header: Some(BlockHeader {
                number,
                ..BlockHeader::default()
            }),
            ..Block::default()
        }))
    }
}

struct Sink(mpsc::Sender<u64>);

impl BlockSink for Sink {
    async fn send(&mut self, block: Block) -> bool {
        self.0.send(block.header.unwrap().number).await.is_ok()
    }

    async fn closed(&self) {
        self.0.closed().await;
    }
}

fn seek(start: u64, stop: u64, behavior: seek_info::SeekBehavior) -> Vec<u8> {
    let pos = |n| SeekPosition {
        r#type: Some(seek_position::Type::Specified(SeekSpecified { number: n })),
    };
    SeekInfo {
        start: Some(pos(start)),
        stop: Some(pos(stop)),
        behavior: behavior as i32,
        ..SeekInfo::default()
    }
    .encode_to_vec()
}

fn request(
    env: &Envelope,
    config: &ChannelConfig,
    now: SystemTime,
) -> Result<deliver::Authorized, Status> {
    let parsed = deliver::parse(env).map_err(|r| r.status)?;
    deliver::authorize(parsed, env, config, now, DEFAULT_TIME_WINDOW).map_err(|r| r.status)
}

#[test]
fn requests_outside_the_time_window_or_readers_are_forbidden() {
    let mut ch = TestChannel::new(CHANNEL, 2, 4);
    let reader = ch.orgs[0].identity("reader", NodeOu::Client, &[]);
    let data = seek(0, 0, seek_info::SeekBehavior::BlockUntilReady);
    let now = SystemTime::now();
    let at = |t| {
        signed_envelope_at(
            &reader,
            CHANNEL,
            HeaderType::DeliverSeekInfo,
            data.clone(),
            t,
        )
    };
    assert!(request(&at(now), &ch.config, now).is_ok());
    let window = DEFAULT_TIME_WINDOW + Duration::from_secs(60);
    assert_eq!(
        request(&at(now - window), &ch.config, now).err(),
        Some(Status::Forbidden),
        "a request replayed an hour later"
    );
    assert_eq!(
        request(&at(now + window), &ch.config, now).err(),
        Some(Status::Forbidden),
        "a post-dated request"
    );
    let by_orderer = signed_envelope_at(
        &ch.consenters[0].1,
        CHANNEL,
        HeaderType::DeliverSeekInfo,
        data.clone(),
        now,
    );
    assert_eq!(
        request(&by_orderer, &ch.config, now).err(),
        Some(Status::Forbidden),
        "Readers are the application organizations"
    );
    let other = signed_envelope_at(&reader, "other", HeaderType::DeliverSeekInfo, data, now);
    assert_eq!(
        request(&other, &ch.config, now).err(),
        Some(Status::NotFound)
    );
    let not_seek = signed_envelope_at(
        &reader,
        CHANNEL,
        HeaderType::EndorserTransaction,
        Vec::new(),
        now,
    );
    assert_eq!(
        request(&not_seek, &ch.config, now).err(),
        Some(Status::BadRequest)
    );
}

#[test]
fn the_built_requests_pass_the_rules_and_ask_what_they_say() {
    let mut ch = TestChannel::new(CHANNEL, 2, 4);
    let reader = ch.orgs[0].identity("reader", NodeOu::Client, &[]);
    let now = SystemTime::now();
    let seek_of = |env: &Envelope| {
        let parsed = medledger_channel::envelope::parse(env).unwrap();
        SeekInfo::decode(parsed.payload.data.as_slice()).unwrap()
    };

    // A client's block events from the next commit (the gateway client SDK's block_events).
    let next = SeekPosition {
        r#type: Some(seek_position::Type::NextCommit(SeekNextCommit {})),
    };
    let blocks = deliver::block_stream_envelope(&reader, CHANNEL, next).unwrap();
    assert!(!request(&blocks, &ch.config, now).unwrap().headers_only());
    let seek = seek_of(&blocks);
    assert_eq!(deliver::resolve_seek(&seek, 5), Ok((5, u64::MAX)));
    assert_eq!(
        seek.behavior,
        seek_info::SeekBehavior::BlockUntilReady as i32
    );

    // A puller's header stream from the newest block.
    let headers = deliver::header_stream_envelope(&reader, CHANNEL).unwrap();
    assert!(request(&headers, &ch.config, now).unwrap().headers_only());
    assert_eq!(
        deliver::resolve_seek(&seek_of(&headers), 5),
        Ok((4, u64::MAX))
    );
}

#[tokio::test]
async fn a_revoked_readers_stream_ends_before_the_next_block() {
    let mut ch = TestChannel::new(CHANNEL, 2, 4);
    let reader = ch.orgs[0].identity("reader", NodeOu::Client, &[]);
    let source = Arc::new(Source {
        config: Mutex::new(Arc::new(ch.config.clone())),
        height: watch::channel(2).0,
    });
    let env = signed_envelope_at(
        &reader,
        CHANNEL,
        HeaderType::DeliverSeekInfo,
        seek(0, u64::MAX, seek_info::SeekBehavior::BlockUntilReady),
        SystemTime::now(),
    );
    let authorized = request(&env, &ch.config, SystemTime::now()).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let serving = {
        let source = source.clone();
        tokio::spawn(async move { deliver::serve(&*source, &authorized, &mut Sink(tx)).await })
    };
    assert_eq!(rx.recv().await, Some(0));
    assert_eq!(rx.recv().await, Some(1));

    // A config block revokes the reader (its organization's new CRL); block 2 is stored.
    let next = ch.config_revoking(0, "reader");
    *source.config.lock().unwrap() = Arc::new(ChannelConfig::from_proto(next).unwrap());
    source.height.send_replace(3);

    let ended = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.map_err(|r| r.status), Err(Status::Forbidden));
    assert_eq!(rx.recv().await, None, "block 2 reached a revoked reader");
}

#[tokio::test]
async fn fail_if_not_ready_is_not_found_and_a_gone_client_ends_the_wait() {
    let mut ch = TestChannel::new(CHANNEL, 1, 4);
    let reader = ch.orgs[0].identity("reader", NodeOu::Client, &[]);
    let source = Source {
        config: Mutex::new(Arc::new(ch.config.clone())),
        height: watch::channel(1).0,
    };
    let now = SystemTime::now();
    let env = |behavior| {
        signed_envelope_at(
            &reader,
            CHANNEL,
            HeaderType::DeliverSeekInfo,
            seek(0, 3, behavior),
            now,
        )
    };
    let fail = request(
        &env(seek_info::SeekBehavior::FailIfNotReady),
        &ch.config,
        now,
    )
    .unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let r = deliver::serve(&source, &fail, &mut Sink(tx)).await;
    assert_eq!(r.map_err(|r| r.status), Err(Status::NotFound));
    assert_eq!(rx.recv().await, Some(0), "the stored block was sent first");

    let wait = request(
        &env(seek_info::SeekBehavior::BlockUntilReady),
        &ch.config,
        now,
    )
    .unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let serving = async { deliver::serve(&source, &wait, &mut Sink(tx)).await };
    let client = async {
        assert_eq!(rx.recv().await, Some(0));
        drop(rx);
    };
    let (r, ()) = tokio::join!(serving, client);
    assert_eq!(r, Ok(Served::ClientGone));
}
