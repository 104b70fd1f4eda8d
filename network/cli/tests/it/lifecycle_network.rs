//! The chaincode lifecycle end to end on a real network (issue 8): `network up` approves
//! (each organization's admin) and commits the spec's definitions; then the `medledger
//! lifecycle` CLI changes the `kv` chaincode's endorsement policy with a definition of
//! sequence 2 — refused while only one of two organizations approved, committed once both
//! did — and a transaction endorsed by Org1 alone turns from ENDORSEMENT_POLICY_FAILURE to
//! VALID. A restart leaves the committed definition alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use medledger_devnet::client::connect_as;
use medledger_proto::protos::TxValidationCode;

use crate::common;

use common::{MEDLEDGER, Network};

fn run<S: AsRef<str>>(args: &[S], dir: &Path) -> Output {
    Command::new(MEDLEDGER)
        .args(args.iter().map(AsRef::as_ref))
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn ok<S: AsRef<str> + std::fmt::Debug>(args: &[S], dir: &Path) -> String {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    common::medledger(&args, dir)
}

fn fails<S: AsRef<str> + std::fmt::Debug>(args: &[S], dir: &Path) -> String {
    let out = run(args, dir);
    assert!(!out.status.success(), "medledger {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn spec(ports: &[u16]) -> String {
    common::spec(
        ports,
        &["{ name: kv, endorsement_policy: \"AND('Org1MSP.peer','Org2MSP.peer')\" }"],
    )
}

/// Submits `put key value` to `kv` endorsed by Org1's peer alone; its validation code.
async fn put_endorsed_by_org1(dir: &Path, key: &str) -> TxValidationCode {
    let org1 = connect_as(dir, Some("org1-doctor")).await.unwrap();
    let tx = org1
        .gateway
        .network("ehr")
        .contract("kv")
        .new_proposal("put")
        .args(&[key, "v"])
        .with_endorsing_organizations(&["Org1MSP"])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap();
    let commit = tx.submit().await.unwrap();
    commit.status().await.unwrap().0
}

const SEQ2: [&str; 6] = [
    "-n",
    "kv",
    "--sequence",
    "2",
    "--signature-policy",
    "OR('Org1MSP.peer','Org2MSP.peer')",
];

/// `lifecycle <cmd> <sequence 2 of kv> --as <who>`.
fn lifecycle<'a>(cmd: &'a str, who: &'a str) -> Vec<&'a str> {
    let mut args = vec!["lifecycle", cmd];
    args.extend(SEQ2);
    args.extend(["--as", who]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_changes_the_endorsement_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let ports = medledger_devnet::orderers::free_ports("127.0.0.1", 12).unwrap();
    let config = tmp.path().join("network.yaml");
    std::fs::write(&config, spec(&ports)).unwrap();
    let net = Network { dir: dir.clone() };

    let up = ok(
        &["network", "up", "--config", config.to_str().unwrap()],
        &dir,
    );
    assert!(
        up.contains("Org1MSP approved chaincode kv sequence 1"),
        "{up}"
    );
    assert!(
        up.contains("Org2MSP approved chaincode kv sequence 1"),
        "{up}"
    );
    assert!(up.contains("committed chaincode kv sequence 1"), "{up}");
    let q = ok(
        &[
            "lifecycle",
            "querycommitted",
            "-n",
            "kv",
            "--as",
            "org2-lab",
        ],
        &dir,
    );
    assert!(q.contains("Sequence: 1"), "{q}");
    assert!(q.contains("AND('Org1MSP.peer', 'Org2MSP.peer')"), "{q}");
    assert!(q.contains("Org1MSP: true, Org2MSP: true"), "{q}");

    // Sequence 1 needs both organizations.
    assert_eq!(
        put_endorsed_by_org1(&dir, "a").await,
        TxValidationCode::EndorsementPolicyFailure
    );

    // Only an admin approves; Org1's admin alone is a minority.
    let e = fails(&lifecycle("approve", "org1-doctor"), &dir);
    assert!(e.contains("cannot approve"), "{e}");
    ok(&lifecycle("approve", "org1-admin"), &dir);
    let e = fails(&lifecycle("commit", "org1-admin"), &dir);
    assert!(e.contains("approved by 1 of 2"), "{e}");
    let r = ok(&lifecycle("checkcommitreadiness", "org2-admin"), &dir);
    assert!(
        r.contains("Org1MSP: true") && r.contains("Org2MSP: false"),
        "{r}"
    );

    // Org2's admin approves: committed, and Org1 alone now endorses `kv`.
    ok(&lifecycle("approve", "org2-admin"), &dir);
    let c = ok(&lifecycle("commit", "org1-admin"), &dir);
    assert!(
        c.contains("committed chaincode definition kv version 1.0 sequence 2"),
        "{c}"
    );
    let q = ok(
        &[
            "lifecycle",
            "querycommitted",
            "-n",
            "kv",
            "--as",
            "org1-lab",
        ],
        &dir,
    );
    assert!(q.contains("Sequence: 2"), "{q}");
    assert!(q.contains("OR('Org1MSP.peer', 'Org2MSP.peer')"), "{q}");
    assert_eq!(
        put_endorsed_by_org1(&dir, "b").await,
        TxValidationCode::Valid
    );
    let org2 = connect_as(&dir, Some("org2-lab")).await.unwrap();
    let kv = org2.gateway.network("ehr").contract("kv");
    let mut value = Vec::new();
    for _ in 0..20 {
        value = kv.evaluate_transaction("get", &["b"]).await.unwrap();
        if value == b"v" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(value, b"v");

    // Sequence 2 cannot be committed twice.
    let e = fails(&lifecycle("commit", "org1-admin"), &dir);
    assert!(e.contains("must be sequence 3"), "{e}");

    // A restart keeps sequence 2 (nothing re-approved or re-committed).
    drop(org2);
    ok(&["network", "down"], &dir);
    let up = ok(&["network", "up"], &dir);
    assert!(
        up.contains("chaincode kv is defined on channel ehr (sequence 2)"),
        "{up}"
    );
    assert!(!up.contains("approved chaincode"), "{up}");
    assert_eq!(
        put_endorsed_by_org1(&dir, "c").await,
        TxValidationCode::Valid
    );

    ok(&["network", "down", "--purge"], &dir);
    drop(net);
}
