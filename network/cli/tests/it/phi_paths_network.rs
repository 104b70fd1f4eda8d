//! Paths around consent and audit, tried as a hostile user on a real dev network (issue 13),
//! one network for all of them (starting one costs most of the test's time):
//!
//! - private-data pull: a patient asks its organization's CA (`ca serve`, gRPC) for a TLS
//!   certificate (refused), and a client that legitimately holds one (registered with
//!   `medledger.tls=true`) calls `PrivateData.Fetch` on peer0.org1 for committed private data,
//!   signing as itself or as the patient: refused, nothing returned. On 4436d0b the CA issued
//!   the patient a TLS certificate and the peer served every private write set of Org1's
//!   collections to any TLS certificate of Org1's TLS CA.
//! - evaluate-only functions: `ReadRecord` (its response is PHI) cannot be endorsed for
//!   ordering, neither through the gateway as `ehr:ReadRecord` or under a second chaincode
//!   name in the header extension (both passed on 4436d0b), nor by a client that calls
//!   `Endorser.ProcessProposal` itself (the peer signed the PHI on 4436d0b): the endorser
//!   returns the response without an endorsement, so no transaction can carry it.
//! - transient PHI: `CreateRecord` with the resource in the transient map and no endorsing
//!   organizations named goes only to the custodian collection's members; Org2's peer never
//!   receives the proposal (its endorsement count stays the same). On 4436d0b the gateway's
//!   plan sent it to Org2's endorser too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use std::collections::BTreeMap;

use ehr_chaincode::model::Purpose;
use ehr_client::EhrClient;
use futures::StreamExt;
use medledger_ca::client::{CaClient, CaClientError};
use medledger_ca::{CertificateAuthority, Profile, Registration, build_csr};
use medledger_channel::tx::assemble_transaction;
use medledger_devnet::client::connect_as;
use medledger_devnet::generate::{CA_BOOT_ID, Identities, IdentityEntry};
use medledger_gateway::proposal::build_proposal;
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::folder::load_signing_identity;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_peer::privdata::sign_fetch_request;
use medledger_peer::validator::tx::decode_committed;
use medledger_proto::common::{ChannelHeader, Header};
use medledger_proto::medledger::privdata::PrivateDataDigest;
use medledger_proto::medledger::privdata::private_data_client::PrivateDataClient;
use medledger_proto::protos::endorser_client::EndorserClient;
use medledger_proto::protos::{ChaincodeHeaderExtension, ChaincodeId, Proposal, SignedProposal};
use prost::Message;

use crate::common;

use common::{MEDLEDGER, first_bundle, import_and_settle, medledger, settle, up_dev_network};

/// Digests of private data committed on the channel: every collection of every transaction
/// that has one, read through Deliver as `org1-admin`.
async fn committed_private_digests(dir: &Path) -> Vec<PrivateDataDigest> {
    let client = connect_as(dir, Some("org1-admin")).await.unwrap();
    let height: u64 = medledger(&["network", "status"], dir)
        .lines()
        .filter(|l| l.starts_with("peer"))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse::<u64>().unwrap())
        .max()
        .unwrap();
    let stream = client
        .gateway
        .network("ehr")
        .block_events(Some(0))
        .await
        .unwrap();
    let blocks: Vec<_> = stream.take(height as usize).collect().await;
    let mut digests = Vec::new();
    for block in blocks {
        let block = block.unwrap();
        let number = block.header.as_ref().unwrap().number;
        for (tx_num, entry) in block.data.unwrap().data.iter().enumerate() {
            let Some((rwsets, _)) = decode_committed(entry) else {
                continue;
            };
            for ns in rwsets {
                for coll in ns.collections {
                    digests.push(PrivateDataDigest {
                        block_num: number,
                        tx_num: tx_num as u64,
                        namespace: ns.namespace.clone(),
                        collection: coll.name.clone(),
                    });
                }
            }
        }
    }
    digests
}

/// `medledger ca serve` for the CA in `ca_dir` on a free loopback port; its URL and process.
fn serve_ca(ca_dir: &Path) -> (String, std::process::Child) {
    let mut child = Command::new(MEDLEDGER)
        .args(["ca", "serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(ca_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    (format!("https://{addr}"), child)
}

/// A TLS connection to `entry`'s gateway peer, with a client certificate when given.
async fn peer_channel(
    dir: &Path,
    entry: &IdentityEntry,
    client: Option<(&str, &SigningKey)>,
) -> tonic::transport::Channel {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(dir.join("tls-roots.pem")).unwrap(),
        ))
        .domain_name(entry.gateway_host.clone());
    if let Some((cert_pem, key)) = client {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            cert_pem,
            key.to_pkcs8_pem().unwrap(),
        ));
    }
    tonic::transport::Endpoint::from_shared(format!("https://{}", entry.gateway))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phi_paths_around_consent_are_closed_on_a_real_network() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, bundles, _net) = up_dev_network(tmp.path(), 1);
    import_and_settle(&dir, &bundles).await;
    let ids = Identities::load(&dir).unwrap();
    let load = |name: &str| {
        let e = ids.get(name).unwrap();
        load_signing_identity(&dir.join(&e.msp_dir), &e.msp_id).unwrap()
    };
    let patient_name = ids
        .identities
        .iter()
        .find(|i| i.name.starts_with("patient:"))
        .unwrap()
        .name
        .clone();
    let patient = load(&patient_name);
    let peer = ids.get("org1-doctor").unwrap().clone();

    // ---- Issue 13 item 1: private-data pull ----
    let digests = committed_private_digests(&dir).await;
    assert!(
        digests.iter().any(|d| d.collection.contains("Org1")),
        "the import committed no private data of Org1: {digests:?}"
    );
    let ca_dir = dir.join("ca/org1");
    let (url, mut ca) = serve_ca(&ca_dir);
    let ca_tls = std::fs::read(ca_dir.join("tls/ca.crt")).unwrap();
    let mut ca_client = CaClient::connect(&url, &ca_tls, "ca-org1").await.unwrap();
    let hosts = vec![peer.gateway_host.clone(), "127.0.0.1".to_owned()];
    match ca_client
        .reenroll(
            &patient,
            &SigningKey::generate().unwrap(),
            Profile::Tls,
            &hosts,
        )
        .await
    {
        Err(CaClientError::Refused { code, .. }) => {
            assert_eq!(code, tonic::Code::PermissionDenied)
        }
        other => panic!("the CA gave a patient a TLS certificate: {other:?}"),
    }
    let _ = ca.kill();
    let _ = ca.wait();

    // A client application of Org1 that holds a TLS certificate of Org1's TLS CA.
    let mut org1_ca = CertificateAuthority::open(&ca_dir).unwrap();
    org1_ca
        .register(
            CA_BOOT_ID,
            Registration::new("records-app", NodeOu::Client)
                .with_secret("pw")
                .with_attribute("medledger.tls", "true"),
        )
        .unwrap();
    let key = SigningKey::generate().unwrap();
    let ecert = org1_ca
        .enroll(
            "records-app",
            "pw",
            &build_csr(&key, "records-app", &[]).unwrap(),
            Profile::Ecert,
            &[],
        )
        .unwrap();
    let app = SigningIdentity::new(
        "Org1MSP",
        Certificate::from_pem(ecert.cert_pem.as_bytes()).unwrap(),
        key,
    )
    .unwrap();
    let tls_key = SigningKey::generate().unwrap();
    let tls = org1_ca
        .reenroll(
            "records-app",
            &build_csr(&tls_key, "records-app", &hosts).unwrap(),
            Profile::Tls,
            &hosts,
        )
        .unwrap();
    let tls_der = Certificate::from_pem(tls.cert_pem.as_bytes()).unwrap();
    let channel = peer_channel(&dir, &peer, Some((&tls.cert_pem, &tls_key))).await;
    for (signer, who) in [(&app, "the application"), (&patient, "the patient")] {
        let request = sign_fetch_request(signer, tls_der.der(), "ehr", digests.clone()).unwrap();
        let answer = PrivateDataClient::new(channel.clone()).fetch(request).await;
        match answer {
            Err(status) => assert_eq!(status.code(), tonic::Code::PermissionDenied, "{who}"),
            Ok(r) => panic!(
                "{who} received {} private write sets",
                r.into_inner().elements.len()
            ),
        }
    }

    // ---- Item 3: evaluate-only functions are never endorsed for ordering ----
    let doctor_client = connect_as(&dir, Some("org1-doctor")).await.unwrap();
    let doctor = EhrClient::new(doctor_client.gateway.network("ehr").contract("ehr"));
    let bundle = first_bundle(&bundles);
    let clear_patient_id = bundle.patient_id.clone();
    assert_eq!(patient_name, format!("patient:{clear_patient_id}"));
    // The ledger names the patient and its records by Org1's keyed hashes (ADR 0031).
    let patient_id = common::ledger_patient(&dir, &clear_patient_id);
    let record_id = common::ledger_record(
        &dir,
        &clear_patient_id,
        &bundle
            .resources
            .iter()
            .find(|r| r.resource_type == "Observation")
            .unwrap()
            .record_id,
    );
    let read = doctor
        .read_record(&patient_id, &record_id, Purpose::Treatment)
        .await
        .unwrap();
    assert!(!read.bytes.is_empty());
    // Through the gateway, under a contract prefix: refused before any endorser runs it.
    let err = doctor
        .contract()
        .new_proposal("ehr:ReadRecord")
        .args(&[&patient_id, &read.access_id])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("FailedPrecondition"),
        "ehr:ReadRecord was endorsed for submission: {err:?}"
    );
    // Through the gateway with another chaincode named in the header extension: refused.
    let doctor_id = load("org1-doctor");
    let args: Vec<Vec<u8>> = ["ReadRecord", &patient_id, &read.access_id]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    let mut two_names = build_proposal(&doctor_id, "ehr", "ehr", &args, &BTreeMap::new()).unwrap();
    let mut proposal = Proposal::decode(two_names.signed.proposal_bytes.as_slice()).unwrap();
    let mut header = Header::decode(proposal.header.as_slice()).unwrap();
    let mut ch = ChannelHeader::decode(header.channel_header.as_slice()).unwrap();
    ch.extension = ChaincodeHeaderExtension {
        chaincode_id: Some(ChaincodeId {
            name: "_lifecycle".into(),
            ..Default::default()
        }),
    }
    .encode_to_vec();
    header.channel_header = ch.encode_to_vec();
    proposal.header = header.encode_to_vec();
    let bytes = proposal.encode_to_vec();
    two_names.signed = SignedProposal {
        signature: doctor_id.sign(&bytes).unwrap(),
        proposal_bytes: bytes,
    };
    let gw_channel = peer_channel(&dir, &peer, None).await;
    let err = medledger_proto::gateway::gateway_client::GatewayClient::new(gw_channel.clone())
        .endorse(medledger_proto::gateway::EndorseRequest {
            transaction_id: two_names.tx_id.clone(),
            channel_id: "ehr".into(),
            proposed_transaction: Some(two_names.signed),
            endorsing_organizations: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    // Straight to the custodian's endorser: the PHI comes back, unendorsed, and no
    // transaction can be assembled from it.
    let direct = build_proposal(&doctor_id, "ehr", "ehr", &args, &BTreeMap::new()).unwrap();
    let response = EndorserClient::new(gw_channel)
        .process_proposal(direct.signed.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.response.as_ref().unwrap().status, 200);
    assert_eq!(response.response.as_ref().unwrap().payload, read.bytes);
    assert!(
        response.endorsement.is_none(),
        "the endorser signed an evaluate-only function's output"
    );
    assert!(assemble_transaction(&direct.signed, &[response]).is_err());

    // ---- Item 4: transient PHI goes only to members of the collections it is written to ----
    let org2_before = endorsements_at(&dir, "org2");
    let mut resource: serde_json::Value = serde_json::from_slice(
        &bundle
            .resources
            .iter()
            .find(|r| r.resource_type == "Observation")
            .unwrap()
            .bytes,
    )
    .unwrap();
    // The sample Observation again under a new id: a record the ledger does not hold yet.
    resource["id"] = serde_json::Value::String("8f0c1a52-3d7e-4b8e-9a51-0f6c2b7d9e11".into());
    let new_record = common::ledger_record(
        &dir,
        &clear_patient_id,
        "Observation/8f0c1a52-3d7e-4b8e-9a51-0f6c2b7d9e11",
    );
    let bytes = serde_json::to_vec(&resource).unwrap();
    doctor
        .reserve_records(&patient_id, &[&new_record])
        .await
        .unwrap();
    settle(&dir).await;
    let org2_reserved = endorsements_at(&dir, "org2");
    let tx = doctor
        .contract()
        .new_proposal("CreateRecord")
        .args(&[&patient_id])
        .with_transient(ehr_chaincode::TRANSIENT_RESOURCE, &bytes)
        .with_transient(
            ehr_chaincode::TRANSIENT_PATIENT,
            clear_patient_id.as_bytes(),
        )
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap();
    let (code, _) = tx.submit().await.unwrap().status().await.unwrap();
    assert_eq!(code, medledger_proto::protos::TxValidationCode::Valid);
    assert_eq!(
        endorsements_at(&dir, "org2"),
        org2_reserved,
        "Org2's endorser received a proposal carrying Org1's transient PHI"
    );
    assert!(
        org2_reserved > org2_before,
        "Org2 endorsed the reservation: its endorsement count must show it"
    );
}

/// Proposals endorsed so far by the peer of organization `org` (`peer0.<org>`), from its
/// operations endpoint's `endorser_proposal_duration_seconds` histogram.
fn endorsements_at(dir: &Path, org: &str) -> u64 {
    use std::io::{Read, Write};
    let (_, nodes) = medledger_devnet::nodes_of(dir).unwrap();
    let node = nodes
        .iter()
        .find(|n| !n.orderer && n.name.contains(org))
        .unwrap();
    let mut stream = std::net::TcpStream::connect(&node.operations).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with("endorser_proposal_duration_seconds_count"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}
