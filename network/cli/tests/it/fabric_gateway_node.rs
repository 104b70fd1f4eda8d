//! Compatibility with Hyperledger Fabric's official Gateway client: a network started by
//! `medledger network up` (4 BFT orderers, one peer in each of two organizations, the KV
//! contract), then
//!
//! 1. the Rust SDK's event streams: `block_events` (the peer's `protos.Deliver`) and
//!    `chaincode_events` (the gateway's ChaincodeEvents) see a submitted transaction;
//! 2. `tests/node/fabric-gateway-compat.cjs`, a Node application written against
//!    `@hyperledger/fabric-gateway` and `@grpc/grpc-js` (installed with npm into a temporary
//!    directory), connects with the org1-admin identity our CA issued and checks submit,
//!    evaluate, the step-by-step flow with commit status, chaincode events, block events and
//!    filtered block events, then reads the chain through the system chaincodes (qscc's
//!    GetChainInfo, GetBlockByNumber, GetBlockByHash, GetTransactionByID, GetBlockByTxID and
//!    cscc's GetChannelConfig, evaluated), decoding the answers with `@hyperledger/fabric-protos`.
//!
//! Part 2 is skipped, with a message, only when `node` or `npm` is not on PATH; an npm
//! failure (e.g. no registry) fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use medledger_devnet::client::connect_as;
use medledger_devnet::generate::Identities;
use medledger_gateway::GatewayError;
use medledger_proto::common::{Envelope, Payload};
use medledger_proto::protos::TxValidationCode;
use prost::Message;
use tokio_stream::StreamExt;

use crate::common;

use common::{MEDLEDGER, Network, spec};

/// Versions of Fabric's Node client verified against Medledger.
const NPM_PACKAGES: &[&str] = &[
    "@hyperledger/fabric-gateway@1.12.1",
    "@grpc/grpc-js@1.14.7",
    "@hyperledger/fabric-protos@0.3.7",
];

/// Longest wait for an event (a block commits every ~100 ms here).
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `program --version` runs.
fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `npm install`s Fabric's Node client into `dir`; panics with npm's output if it fails.
fn npm_install(dir: &Path) {
    let out = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--omit=optional",
            "--ignore-scripts",
        ])
        .args(NPM_PACKAGES)
        .current_dir(dir)
        .output()
        .expect("running npm");
    assert!(
        out.status.success(),
        "npm install {NPM_PACKAGES:?} failed (is the npm registry reachable?):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The transaction ids of a block's envelopes.
fn block_tx_ids(block: &medledger_proto::common::Block) -> Vec<String> {
    medledger_channel::block::entries(block)
        .iter()
        .map(|bytes| {
            let env = Envelope::decode(bytes.as_slice()).unwrap();
            let payload = Payload::decode(env.payload.as_slice()).unwrap();
            let header = payload.header.unwrap();
            medledger_proto::common::ChannelHeader::decode(header.channel_header.as_slice())
                .unwrap()
                .tx_id
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_gateway_node_client_against_network() {
    let tmp = tempfile::tempdir().unwrap();
    let node = available("node") && available("npm");
    let npm_dir = tmp.path().join("npm");
    if node {
        std::fs::create_dir(&npm_dir).unwrap();
        npm_install(&npm_dir);
    }

    let dir = tmp.path().join("net");
    let ports = medledger_devnet::orderers::free_ports("127.0.0.1", 12).unwrap();
    let config = tmp.path().join("network.yaml");
    let kv = "{ name: kv, endorsement_policy: \"AND('Org1MSP.peer','Org2MSP.peer')\" }";
    std::fs::write(&config, spec(&ports, &[kv])).unwrap();
    let net = Network { dir: dir.clone() };
    let up = Command::new(MEDLEDGER)
        .args(["network", "up", "--config"])
        .arg(&config)
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "network up failed:\n{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );

    // 1. The Rust SDK: block events and chaincode events of a submitted transaction.
    let org1 = connect_as(&dir, Some("org1-admin")).await.unwrap();
    let network = org1.gateway.network("ehr");
    let blocks = network.block_events(Some(0)).await.unwrap();
    tokio::pin!(blocks);
    let genesis = tokio::time::timeout(EVENT_TIMEOUT, blocks.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(genesis.header.unwrap().number, 0);
    let tx = network
        .contract("kv")
        .new_proposal("put")
        .args(&["rust-sdk", "1"])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap();
    let (code, block_number) = tx.submit().await.unwrap().status().await.unwrap();
    assert_eq!(code, TxValidationCode::Valid);
    let block = loop {
        let b = tokio::time::timeout(EVENT_TIMEOUT, blocks.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if b.header.as_ref().unwrap().number == block_number {
            break b;
        }
    };
    assert!(block_tx_ids(&block).contains(&tx.tx_id().to_owned()));
    // From the next commit: the following block.
    let next = network.block_events(None).await.unwrap();
    tokio::pin!(next);
    let kv = network.contract("kv");
    let later = kv.submit_transaction("put", &["rust-sdk", "2"]);
    let (later, first) = tokio::join!(later, tokio::time::timeout(EVENT_TIMEOUT, next.next()));
    later.unwrap();
    assert!(first.unwrap().unwrap().unwrap().header.unwrap().number > block_number);

    // A channel the peer does not serve: Deliver answers NOT_FOUND.
    let unknown = org1
        .gateway
        .network("no-such-channel")
        .block_events(Some(0))
        .await
        .unwrap();
    tokio::pin!(unknown);
    let refused = tokio::time::timeout(EVENT_TIMEOUT, unknown.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            refused,
            Err(GatewayError::Deliver {
                status: medledger_proto::common::Status::NotFound
            })
        ),
        "{refused:?}"
    );

    // The event names the chaincode (not its package id) and the transaction.
    let events = network
        .chaincode_events("kv", Some(block_number), None)
        .await
        .unwrap();
    tokio::pin!(events);
    let (number, event) = tokio::time::timeout(EVENT_TIMEOUT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(number, block_number);
    assert_eq!(
        (
            event.chaincode_id.as_str(),
            event.tx_id.as_str(),
            event.event_name.as_str(),
            event.payload.as_slice()
        ),
        ("kv", tx.tx_id(), "put", b"rust-sdk".as_slice())
    );

    // 2. Fabric's Node Gateway client, unmodified.
    if !node {
        eprintln!(
            "skipping the Fabric Node client part: node/npm not found on PATH \
             (install Node.js 18+ with npm to run it)"
        );
        drop(net);
        return;
    }
    let ids = Identities::load(&dir).unwrap();
    let admin = ids.get("org1-admin").unwrap();
    let msp = dir.join(&admin.msp_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/fabric-gateway-compat.cjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .current_dir(&npm_dir)
        .env("NODE_PATH", npm_dir.join("node_modules"))
        .env("GATEWAY_ENDPOINT", &admin.gateway)
        .env("TLS_ROOT_CERT", dir.join("tls-roots.pem"))
        .env("MSP_ID", &admin.msp_id)
        .env("CERT_PATH", msp.join("signcerts/cert.pem"))
        .env("KEY_PATH", msp.join("keystore/priv_sk"))
        .env("CHANNEL_NAME", &ids.channel)
        .env("CHAINCODE_NAME", "kv");
    if admin.gateway_host.parse::<IpAddr>().is_err() {
        // The peer's TLS name when it is not the address dialled.
        cmd.env("GATEWAY_HOST_ALIAS", &admin.gateway_host);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the Fabric Gateway Node application failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all Fabric Gateway client checks passed"));

    drop(org1);
    drop(net);
}
