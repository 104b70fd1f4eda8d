//! The orderer's Deliver follows the same rules as the peer's (issue 14 item 7): a request
//! timestamped outside the time window is FORBIDDEN. Before the shared Deliver
//! (`medledger_channel::deliver`), the orderer skipped the window, so a Deliver request
//! captured once could be replayed at any later time (this test failed there: blocks 0..=0
//! were served to a request an hour old).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use medledger_channel::testing::signed_envelope_at;
use medledger_devnet::orderers::{self as devnet, DevNetSpec};
use medledger_msp::folder::load_signing_identity;
use medledger_orderer::client::OrdererClient;
use medledger_orderer::config::{ConsensusSection, OrdererConfig};
use medledger_orderer::server;
use medledger_proto::common::{HeaderType, Status};
use medledger_proto::medledger::channel::BatchConfig;
use medledger_proto::orderer::{
    SeekInfo, SeekPosition, SeekSpecified, deliver_response, seek_position,
};
use prost::Message;

const CHANNEL: &str = "ehr";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliver_request_outside_the_time_window_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let ports = devnet::free_ports("127.0.0.1", 1).unwrap();
    let net = devnet::generate(
        dir.path(),
        &DevNetSpec {
            channel_id: CHANNEL.into(),
            host: "127.0.0.1".into(),
            ports: ports.clone(),
            operations_ports: None,
            batch: BatchConfig {
                max_message_count: 10,
                preferred_max_bytes: 0,
                absolute_max_bytes: 0,
                batch_timeout_ms: 100,
            },
            consensus: ConsensusSection::default(),
        },
    )
    .unwrap();
    let orderer = server::start(&OrdererConfig::load(&net.orderer_configs[0]).unwrap())
        .await
        .unwrap();
    let roots = std::fs::read(&net.tls_roots).unwrap();
    let client = load_signing_identity(&net.client_msp, &net.client_msp_id).unwrap();
    let genesis_only = SeekInfo {
        start: Some(SeekPosition {
            r#type: Some(seek_position::Type::Specified(SeekSpecified { number: 0 })),
        }),
        stop: Some(SeekPosition {
            r#type: Some(seek_position::Type::Specified(SeekSpecified { number: 0 })),
        }),
        ..SeekInfo::default()
    }
    .encode_to_vec();
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let mut c = OrdererClient::connect("127.0.0.1", ports[0], &roots)
        .await
        .unwrap();
    for (at, expected) in [
        (now, None),
        (now - hour, Some(Status::Forbidden)),
        (now + hour, Some(Status::Forbidden)),
    ] {
        let request = signed_envelope_at(
            &client,
            CHANNEL,
            HeaderType::DeliverSeekInfo,
            genesis_only.clone(),
            at,
        );
        let mut stream = c.deliver(request).await.unwrap();
        let first = stream.message().await.unwrap().unwrap().r#type.unwrap();
        match (expected, first) {
            (None, deliver_response::Type::Block(b)) => assert_eq!(b.header.unwrap().number, 0),
            (Some(status), deliver_response::Type::Status(s)) => assert_eq!(s, status as i32),
            (expected, deliver_response::Type::Block(b)) => {
                panic!(
                    "expected {expected:?}, got block {}",
                    b.header.unwrap().number
                )
            }
            (expected, got) => panic!("expected {expected:?}, got {got:?}"),
        }
    }
    orderer.stop().await;
}
