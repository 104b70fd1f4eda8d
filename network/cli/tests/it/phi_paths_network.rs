//! The private-data pull of issue 13 item 1, tried as a hostile user on a real dev network
//! (processes: it needs `ca serve` and the peer's TLS listener): a patient asks its
//! organization's CA (`ca serve`, gRPC) for a TLS certificate (refused), and a client that
//! legitimately holds one (registered with `medledger.tls=true`) calls `PrivateData.Fetch` on
//! peer0.org1 for committed private data, signing as itself or as the patient: refused,
//! nothing returned. On 4436d0b the CA issued the patient a TLS certificate and the peer served
//! every private write set of Org1's collections to any TLS certificate of Org1's TLS CA.
//!
//! Items 3 (evaluate-only functions are never endorsed for ordering) and 4 (transient PHI goes
//! only to the custodian collection's members) moved to the whole-network harness:
//! `chaincode/ehr/client/tests/it/phi_paths.rs` (issue 15 item 5).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use medledger_ca::client::{CaClient, CaClientError};
use medledger_ca::{CertificateAuthority, Profile, Registration, build_csr};
use medledger_devnet::client::connect_as;
use medledger_devnet::generate::{CA_BOOT_ID, Identities, IdentityEntry};
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::folder::load_signing_identity;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_peer::privdata::sign_fetch_request;
use medledger_peer::validator::tx::decode_committed;
use medledger_proto::medledger::privdata::PrivateDataDigest;
use medledger_proto::medledger::privdata::private_data_client::PrivateDataClient;

use crate::common;

use common::{MEDLEDGER, import_and_settle, medledger, up_dev_network};

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
}
