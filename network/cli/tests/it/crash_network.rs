//! Crash tolerance of a real network (issue 8): `kill -9` one orderer and one peer in the
//! middle of an import. The import completes (the ordering service keeps a quorum; the
//! importer retries while the lab's peer is down and `network up` restarts what died) with no
//! lost or duplicated record, and the restarted peer catches up to the same chain and commit
//! hash as the other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ehr_client::EhrClient;
use ehr_client::bundle::read_bundle;
use medledger_devnet::client::connect_as;

use crate::common;

use common::{MEDLEDGER, medledger, up_dev_network};

fn kill9(dir: &Path, node: &str) {
    let pid = std::fs::read_to_string(dir.join("run").join(format!("{node}.pid"))).unwrap();
    let status = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {node}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_an_orderer_and_a_peer_mid_import() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, bundles, net) = up_dev_network(tmp.path(), 8);

    // Import in the background, small chunks so that it takes a while.
    let mut import = Command::new(MEDLEDGER)
        .args(["ehr", "import", "--json", "--quiet", "--concurrency", "8"])
        .args(["--max-chunk-entries", "20"])
        .arg(&bundles)
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        import.try_wait().unwrap().is_none(),
        "the import ended too soon"
    );
    kill9(&dir, "orderer2");
    kill9(&dir, "peer0.org2");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let up = medledger(&["network", "up"], &dir);
    assert!(
        up.contains("started orderer2") && up.contains("started peer0.org2"),
        "{up}"
    );
    let out = import.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Vec<_> = std::fs::read_dir(&bundles)
        .unwrap()
        .map(|e| read_bundle(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let total: usize = expected.iter().map(|b| b.resources.len()).sum();
    assert_eq!(summary["resources_failed"], 0, "{summary}");
    assert_eq!(summary["resources_created"], total as u64, "{summary}");

    // Nothing lost, nothing duplicated: each patient's records are exactly the bundle's, each
    // with the bundle's hash, at version 1.
    let admin = connect_as(&dir, Some("org1-admin")).await.unwrap();
    let admin = EhrClient::new(admin.gateway.network("ehr").contract("ehr"));
    for b in &expected {
        let mut stored: Vec<(String, String, u64)> = admin
            .all_records(&common::ledger_patient(&dir, &b.patient_id))
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.record_id, m.sha256, m.version))
            .collect();
        stored.sort();
        let mut want: Vec<(String, String, u64)> = b
            .resources
            .iter()
            .map(|r| {
                let ledger = common::ledger_record(&dir, &b.patient_id, &r.record_id);
                (ledger, r.sha256.clone(), 1)
            })
            .collect();
        want.sort();
        assert_eq!(stored, want);
    }

    // The restarted peer catches up: same height on both peers, then same chain and commit
    // hash on disk.
    let mut heights = Vec::new();
    for _ in 0..100 {
        let status = medledger(&["network", "status"], &dir);
        heights = status
            .lines()
            .filter(|l| l.starts_with("peer"))
            .map(|l| l.split_whitespace().nth(3).unwrap().to_owned())
            .collect();
        if heights.len() == 2 && heights[0] == heights[1] && heights[0] != "-" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(heights[0], heights[1], "peers did not converge");
    drop(admin);
    medledger(&["network", "down"], &dir);
    let info = |node: &str| common::open_ledger(&dir, node).info();
    assert_eq!(info("peer0.org1"), info("peer0.org2"));
    medledger(&["network", "down", "--purge"], &dir);
    drop(net);
}
