//! An organization joins a running network (`medledger org add`), end to end with real
//! processes on loopback and TLS: a configuration update signed by a minority of the
//! existing organizations' admins is refused by the orderers and changes nothing; one signed
//! by a majority is ordered and committed; the new organization's peer starts, pulls the
//! chain from the orderers, reaches the same height and commit hash as the others, keeps up
//! with new blocks, serves the new organization's identities through its gateway, and
//! endorses once a chaincode definition approved by a majority of the three names it. An
//! organization's new CRL, signed by its own admin, takes effect the same way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use medledger_devnet::client::connect_as;
use medledger_proto::protos::TxValidationCode;

use crate::common;

use common::{MEDLEDGER, Network, medledger, settle, spec};

/// `(node, height)` of every node in `network status`, all healthy.
fn heights(dir: &std::path::Path) -> Vec<(String, u64)> {
    let status = medledger(&["network", "status"], dir);
    status
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cols[2], "healthy", "{status}");
            (cols[0].to_owned(), cols[3].parse().unwrap())
        })
        .collect()
}

async fn put(dir: &std::path::Path, key: &str) {
    let org1 = connect_as(dir, Some("org1-admin")).await.unwrap();
    let commit = org1
        .gateway
        .network("ehr")
        .contract("kv")
        .new_proposal("put")
        .args(&[key, "1"])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap()
        .submit()
        .await
        .unwrap();
    assert_eq!(commit.status().await.unwrap().0, TxValidationCode::Valid);
}

/// Evaluates kv `get(key)` as identity `who`, through its organization's gateway.
async fn get_as(
    dir: &std::path::Path,
    who: &str,
    key: &str,
) -> Result<Vec<u8>, medledger_gateway::GatewayError> {
    let client = connect_as(dir, Some(who)).await.unwrap();
    client
        .gateway
        .network("ehr")
        .contract("kv")
        .evaluate_transaction("get", &[key])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_joins_by_a_majority_signed_config_update_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let ports = medledger_devnet::orderers::free_ports("127.0.0.1", 14).unwrap();
    let config = tmp.path().join("network.yaml");
    std::fs::write(
        &config,
        spec(
            &ports[..12],
            &["{ name: kv, endorsement_policy: \"OR('Org1MSP.peer','Org2MSP.peer')\" }"],
        ),
    )
    .unwrap();
    let org3 = tmp.path().join("org3.yaml");
    std::fs::write(
        &org3,
        format!(
            "name: org3\nmsp_id: Org3MSP\ndomain: org3.test\ndescription: insurer\npeers:\n  - {{ name: peer0, host: 127.0.0.1, port: {}, operations_port: {} }}\n",
            ports[12], ports[13]
        ),
    )
    .unwrap();
    let net = Network { dir: dir.clone() };
    medledger(
        &["network", "up", "--config", config.to_str().unwrap()],
        &dir,
    );
    put(&dir, "before-join").await;
    settle(&dir).await;
    let before = heights(&dir);
    let spec_before = std::fs::read_to_string(dir.join("network.yaml")).unwrap();

    // A minority (Org1's admin alone, 1 of 2): the orderers refuse it; nothing changes.
    let out = Command::new(MEDLEDGER)
        .args(["org", "add", "--config", org3.to_str().unwrap()])
        .args(["--sign-as", "org1-admin", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a minority's update was accepted");
    assert!(
        stderr.contains("FORBIDDEN") && stderr.contains("Admins"),
        "{stderr}"
    );
    assert_eq!(heights(&dir), before, "a refused update reached the chain");
    assert_eq!(
        std::fs::read_to_string(dir.join("network.yaml")).unwrap(),
        spec_before
    );
    assert!(
        !dir.join("ca/org3").exists(),
        "the refused org's CA was kept"
    );
    assert!(
        !dir.join("nodes/peer0.org3").exists(),
        "the refused org's peer was kept"
    );
    assert!(!medledger(&["identities"], &dir).contains("org3-admin"));

    // A majority (both admins, the default): ordered, committed, Org3's peer catches up. An
    // application keeps a block stream open at Org1's peer meanwhile: the peer's restart with
    // the new configuration must not wait for it.
    let watcher = connect_as(&dir, Some("org1-admin")).await.unwrap();
    let open_stream = watcher
        .gateway
        .network("ehr")
        .block_events(Some(0))
        .await
        .unwrap();
    let added = medledger(&["org", "add", "--config", org3.to_str().unwrap()], &dir);
    drop((open_stream, watcher));
    assert!(added.contains("Org3MSP joined the channel"), "{added}");
    assert!(added.contains("peer0.org3 caught up"), "{added}");
    settle(&dir).await;
    let after = heights(&dir);
    assert_eq!(after.len(), 7, "{after:?}");
    let top = after[0].1;
    assert_eq!(top, before[0].1 + 1, "one config block: {after:?}");
    assert!(after.iter().all(|(_, h)| *h == top), "{after:?}");

    // New blocks reach Org3's peer too; Org3's identities use their own gateway.
    put(&dir, "after-join").await;
    settle(&dir).await;
    assert!(heights(&dir).iter().all(|(_, h)| *h == top + 1));
    assert!(medledger(&["identities"], &dir).contains("org3-admin"));
    let committed = medledger(
        &[
            "lifecycle",
            "querycommitted",
            "--name",
            "kv",
            "--as",
            "org3-admin",
        ],
        &dir,
    );
    assert!(committed.contains("Org3MSP: false"), "{committed}");
    assert_eq!(get_as(&dir, "org3-lab", "after-join").await.unwrap(), b"1");

    // Org3 endorses once a definition names it: kv sequence 2, endorsed by Org3 alone, approved
    // by a majority of the three organizations (Org1 and Org3) and committed.
    let def = [
        "-n",
        "kv",
        "-v",
        "1.0",
        "--sequence",
        "2",
        "--signature-policy",
        "OR('Org3MSP.peer')",
    ];
    for admin in ["org1-admin", "org3-admin"] {
        let args: Vec<&str> = ["lifecycle", "approve"]
            .into_iter()
            .chain(def)
            .chain(["--as", admin])
            .collect();
        medledger(&args, &dir);
    }
    let args: Vec<&str> = ["lifecycle", "commit"]
        .into_iter()
        .chain(def)
        .chain(["--as", "org1-admin"])
        .collect();
    medledger(&args, &dir);
    settle(&dir).await;
    let committed = medledger(
        &[
            "lifecycle",
            "querycommitted",
            "--name",
            "kv",
            "--as",
            "org2-admin",
        ],
        &dir,
    );
    assert!(
        committed.contains("Sequence: 2") && committed.contains("Org3MSP.peer"),
        "{committed}"
    );
    put(&dir, "endorsed-by-org3").await;
    settle(&dir).await;

    // A CRL travels the same way: Org2 revokes its lab technician and publishes the new CRL
    // with its own admin's signature; every node then refuses that certificate.
    assert_eq!(get_as(&dir, "org2-lab", "after-join").await.unwrap(), b"1");
    let crl = medledger(
        &["org", "update-crl", "--org", "org2", "--revoke", "org2-lab"],
        &dir,
    );
    assert!(crl.contains("configuration sequence 2"), "{crl}");
    let refused = get_as(&dir, "org2-lab", "after-join")
        .await
        .expect_err("a revoked identity was served");
    assert!(format!("{refused:?}").contains("revoked"), "{refused:?}");
    assert_eq!(
        get_as(&dir, "org2-doctor", "after-join").await.unwrap(),
        b"1"
    );
    settle(&dir).await;

    // The same chain everywhere, and Org3's replays from the genesis block through the config
    // block.
    medledger(&["network", "down"], &dir);
    let open = |name: &str| common::open_ledger(&dir, name).info();
    let org1 = open("peer0.org1");
    assert_eq!(org1, open("peer0.org2"));
    assert_eq!(org1, open("peer0.org3"), "Org3's chain differs");
    let verified = medledger(&["ledger", "verify", "--node", "peer0.org3"], &dir);
    assert!(verified.contains(": OK"), "{verified}");

    // A restart keeps the organization: its peer comes back with the others.
    medledger(&["network", "up"], &dir);
    assert_eq!(heights(&dir).len(), 7);
    medledger(&["network", "down", "--purge"], &dir);
    drop(net);
}
