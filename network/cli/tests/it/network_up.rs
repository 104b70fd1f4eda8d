//! `medledger network up` end to end, with real processes on loopback and TLS: 4 BFT
//! orderers and one peer in each of two organizations, started by the `medledger` executable
//! from a network configuration; a KV contract and the EHR contract run in the peers'
//! sandboxes. Submits through the gateway with the Rust SDK, reads at the other organization,
//! checks both peers' heights, restarts the network with its ledgers intact, stops it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use medledger_devnet::client::connect_as;
use medledger_proto::protos::TxValidationCode;

use crate::common;

use common::{MEDLEDGER, Network, medledger, settle, spec};

fn heights(status: &str) -> Vec<(String, String)> {
    status
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cols[2], "healthy", "{status}");
            (cols[0].to_owned(), cols[3].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_up_submit_evaluate_restart_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let ports = medledger_devnet::orderers::free_ports("127.0.0.1", 12).unwrap();
    let config = tmp.path().join("network.yaml");
    // examples/minimal-chaincode.rs, run by the peers as any chaincode executable.
    let minimal = format!(
        "{{ name: minimal, executable: \"{}\", endorsement_policy: \"OR('Org1MSP.peer','Org2MSP.peer')\" }}",
        common::example("minimal-chaincode").display()
    );
    std::fs::write(
        &config,
        spec(
            &ports,
            &[
                "{ name: kv, endorsement_policy: \"AND('Org1MSP.peer','Org2MSP.peer')\" }",
                "{ name: ehr, endorsement_policy: \"AND('Org1MSP.peer','Org2MSP.peer')\", private_collection_per_org: true }",
                &minimal,
            ],
        ),
    )
    .unwrap();
    let net = Network { dir: dir.clone() };

    let up = medledger(
        &["network", "up", "--config", config.to_str().unwrap()],
        &dir,
    );
    assert!(up.contains("network ehr is up"), "{up}");
    assert!(up.contains("committed chaincode ehr sequence 1"), "{up}");
    let ids = medledger(&["identities"], &dir);
    assert!(ids.contains("org2-doctor"), "{ids}");

    // Submit at Org1's gateway: endorsed by both organizations' sandboxed chaincode, ordered
    // by the BFT orderers, committed on both peers.
    let org1 = connect_as(&dir, Some("org1-admin")).await.unwrap();
    let kv = org1.gateway.network("ehr").contract("kv");
    let tx = kv
        .new_proposal("put")
        .args(&["patient-count", "3"])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap();
    let commit = tx.submit().await.unwrap();
    // (Blocks 1.. hold `up`'s approvals and commits of the chaincode definitions.)
    let (code, _block) = commit.status().await.unwrap();
    assert_eq!(code, TxValidationCode::Valid);

    // Org2's peer has committed it too: evaluate there.
    settle(&dir).await;
    let org2 = connect_as(&dir, Some("org2-lab")).await.unwrap();
    let value = org2
        .gateway
        .network("ehr")
        .contract("kv")
        .evaluate_transaction("get", &["patient-count"])
        .await
        .unwrap();
    assert_eq!(value, b"3");

    // examples/minimal-client.rs against examples/minimal-chaincode.rs, with the arguments an
    // application has: an MSP folder, its MSP id, a peer's gateway and TLS name, the TLS roots.
    let admin = medledger_devnet::generate::Identities::load(&dir)
        .unwrap()
        .get("org1-admin")
        .cloned()
        .unwrap();
    let out = Command::new(common::example("minimal-client"))
        .arg(dir.join(&admin.msp_dir))
        .args([&admin.msp_id, &admin.gateway, &admin.gateway_host])
        .arg(dir.join("tls-roots.pem"))
        .args(["ehr", "minimal", "greeting", "hello"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "greeting = hello\n");

    // The CLI with --as: register a sample patient with the EHR contract, by its ledger id
    // (ADR 0031: `ehr ledger-id` asks Org1's peer, which holds Org1's key).
    let ids = medledger(
        &[
            "ehr",
            "ledger-id",
            "07f741ce-220d-4744-b1ab-d28366110264",
            "--as",
            "org1-admin",
        ],
        &dir,
    );
    let ledger_id = serde_json::from_str::<serde_json::Value>(&ids).unwrap()["patient"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ledger_id,
        common::ledger_patient(&dir, "07f741ce-220d-4744-b1ab-d28366110264")
    );
    let register = serde_json::json!(["RegisterPatient", ledger_id]).to_string();
    medledger(
        &[
            "chaincode",
            "invoke",
            "-n",
            "ehr",
            "--as",
            "org1-admin",
            "--args",
            &register,
        ],
        &dir,
    );
    // Both peers reach the same height (the second may lag a moment).
    for attempt in 0.. {
        let status = medledger(&["network", "status"], &dir);
        let hs = heights(&status);
        assert_eq!(hs.len(), 6, "{status}");
        let peers: Vec<&str> = hs
            .iter()
            .filter(|(n, _)| n.starts_with("peer"))
            .map(|(_, h)| h.as_str())
            .collect();
        if peers[0] == peers[1] {
            break;
        }
        assert!(attempt < 20, "{status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Restart: the same network, ledgers intact.
    drop(org1);
    drop(org2);
    let down = medledger(&["network", "down"], &dir);
    assert!(down.contains("stopped 6 node(s)"), "{down}");
    let status = medledger(&["network", "status"], &dir);
    assert_eq!(status.matches("stopped").count(), 6, "{status}");
    let up = medledger(&["network", "up"], &dir);
    assert!(up.contains("restarting"), "{up}");
    assert!(
        up.contains("chaincode kv is defined on channel ehr (sequence 1)"),
        "{up}"
    );
    let org2 = connect_as(&dir, Some("org2-doctor")).await.unwrap();
    let patient = org2
        .gateway
        .network("ehr")
        .contract("ehr")
        .evaluate_transaction("GetPatient", &[&ledger_id])
        .await
        .unwrap();
    let patient: serde_json::Value = serde_json::from_slice(&patient).unwrap();
    assert_eq!(patient["custodian_msp"], "Org1MSP");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A different configuration for the same directory is refused.
    let out = Command::new(MEDLEDGER)
        .args(["network", "up", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dev.yaml"))
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another configuration"));

    // A second network on the same ports is refused before anything starts (its health
    // checks would otherwise be answered by this network's nodes).
    let other = tmp.path().join("other");
    let out = Command::new(MEDLEDGER)
        .args(["network", "up", "--config"])
        .arg(&config)
        .arg("--dir")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use"), "{err}");
    assert!(!other.join("run").exists(), "nothing was started");

    drop(org2);
    medledger(&["network", "down", "--purge"], &dir);
    assert!(!dir.exists());
    drop(net);
}

/// A command whose reader went away (`medledger identities | head -0`) ends quietly, as Unix
/// tools do: killed by SIGPIPE or done, never a panic and its backtrace on stderr (before, it
/// panicked with "failed printing to stdout: Broken pipe").
#[test]
fn a_command_whose_reader_is_gone_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    medledger(&["network", "up", "--generate-only"], &dir);
    for _ in 0..3 {
        let mut child = Command::new(MEDLEDGER)
            .args(["identities", "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{stderr}"
        );
        let sigpipe = nix::sys::signal::Signal::SIGPIPE as i32;
        assert!(
            out.status.success() || out.status.signal() == Some(sigpipe),
            "{:?}",
            out.status
        );
    }
}
