//! Requests the gateway of a real network must refuse (issue 6), each with Fabric's gRPC code,
//! and with nothing reaching the ledger: a proposal whose client signature is forged, a
//! transaction envelope whose client signature is forged after endorsement, a proposal for a
//! channel the peer does not serve, and a request larger than the peer accepts (100 MiB).
//! (Revoked clients are refused by the endorser's MSP check: network/endorser/tests.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use medledger_devnet::client::connect_as;
use medledger_devnet::generate::Identities;
use medledger_gateway::proposal::build_proposal;
use medledger_msp::folder::load_signing_identity;
use medledger_proto::gateway::gateway_client::GatewayClient;
use medledger_proto::gateway::{EndorseRequest, SubmitRequest};
use tonic::Code;

use crate::common;

use common::{Network, medledger, spec};

fn peer_heights(dir: &std::path::Path) -> Vec<String> {
    medledger(&["network", "status"], dir)
        .lines()
        .filter(|l| l.starts_with("peer"))
        .map(|l| l.split_whitespace().nth(3).unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_wrong_channel_and_oversize_requests_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let ports = medledger_devnet::orderers::free_ports("127.0.0.1", 12).unwrap();
    let config = tmp.path().join("network.yaml");
    std::fs::write(
        &config,
        spec(
            &ports,
            &["{ name: kv, endorsement_policy: \"AND('Org1MSP.peer','Org2MSP.peer')\" }"],
        ),
    )
    .unwrap();
    let net = Network { dir: dir.clone() };
    medledger(
        &["network", "up", "--config", config.to_str().unwrap()],
        &dir,
    );

    let client = connect_as(&dir, Some("org1-admin")).await.unwrap();
    let ids = Identities::load(&dir).unwrap();
    let entry = ids.get("org1-admin").unwrap();
    let identity = load_signing_identity(&dir.join(&entry.msp_dir), &entry.msp_id).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", entry.gateway))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(dir.join("tls-roots.pem")).unwrap(),
                ))
                .domain_name(entry.gateway_host.clone()),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = GatewayClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let before = peer_heights(&dir);
    let args = |a: &[&str]| a.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();

    // A forged client signature on the proposal: every endorser refuses; ABORTED with a
    // detail per organization's peer.
    let mut forged = build_proposal(
        &identity,
        "ehr",
        "kv",
        &args(&["put", "k", "forged"]),
        &BTreeMap::new(),
    )
    .unwrap();
    forged.signed.signature[8] ^= 0x55;
    let err = raw
        .endorse(EndorseRequest {
            transaction_id: forged.tx_id.clone(),
            channel_id: "ehr".into(),
            proposed_transaction: Some(forged.signed),
            endorsing_organizations: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    let details = medledger_gateway::error_details(&err);
    assert!(!details.is_empty(), "{err:?}");

    // A forged client signature on the endorsed envelope: the orderers refuse it; UNAVAILABLE
    // (too few orderers accepted), with each orderer's answer in the details.
    let tx = client
        .gateway
        .network("ehr")
        .contract("kv")
        .new_proposal("put")
        .args(&["k", "tampered"])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap();
    let mut envelope = tx.envelope().clone();
    envelope.signature[8] ^= 0x55;
    let err = raw
        .submit(SubmitRequest {
            transaction_id: tx.tx_id().to_owned(),
            channel_id: "ehr".into(),
            prepared_transaction: Some(envelope),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let details = medledger_gateway::error_details(&err);
    assert_eq!(details.len(), 4, "{details:?}");

    // A channel this peer does not serve: NOT_FOUND.
    let other = build_proposal(
        &identity,
        "no-such-channel",
        "kv",
        &args(&["put", "k", "v"]),
        &BTreeMap::new(),
    )
    .unwrap();
    let err = raw
        .endorse(EndorseRequest {
            transaction_id: other.tx_id.clone(),
            channel_id: "no-such-channel".into(),
            proposed_transaction: Some(other.signed),
            endorsing_organizations: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // Larger than the peer accepts (100 MiB): RESOURCE_EXHAUSTED.
    let big = "x".repeat(101 * 1024 * 1024);
    let huge = build_proposal(
        &identity,
        "ehr",
        "kv",
        &args(&["put", "k", &big]),
        &BTreeMap::new(),
    )
    .unwrap();
    let err = raw
        .endorse(EndorseRequest {
            transaction_id: huge.tx_id.clone(),
            channel_id: "ehr".into(),
            proposed_transaction: Some(huge.signed),
            endorsing_organizations: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Nothing reached the ledger: same heights, and the key was never written.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(peer_heights(&dir), before);
    let missing = client
        .gateway
        .network("ehr")
        .contract("kv")
        .evaluate_transaction("get", &["k"])
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("404"), "{missing}");
    drop(client);
    drop(net);
}
