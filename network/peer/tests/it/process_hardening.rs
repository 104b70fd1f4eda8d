//! What a peer does to itself before it reads any key, so that a process of its own user (a
//! chaincode where Landlock is missing, or anything else) cannot reach its secrets: it makes
//! itself non-dumpable (no `ptrace`, no `/proc/<peer>/mem` or `environ` for its user) and
//! keeps its data directory mode 0700 (issue 13 review of item 2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use medledger_peer::node::config::PeerConfig;

/// A configuration whose MSP folder does not exist: `start` fails at the signing key.
fn config(dir: &Path, data_dir: &str) -> PeerConfig {
    let path = dir.join(format!("{}.yaml", data_dir.replace('/', "_")));
    std::fs::write(
        &path,
        format!(
            "name: peer0\nmsp_id: Org1MSP\nmsp_dir: no-msp\ntls_cert: tls/server.crt\ntls_key: tls/server.key\ndata_dir: {data_dir}\nchannels:\n  - genesis_block: genesis.block\n"
        ),
    )
    .unwrap();
    PeerConfig::load(&path).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn the_peer_is_not_dumpable_and_its_data_dir_is_private() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory as a umask of 022 leaves it.
    let loose = dir.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();

    let started = medledger_peer::node::start(&config(dir.path(), "loose")).await;
    assert!(started.is_err(), "there is no MSP folder");
    assert!(
        !nix::sys::prctl::get_dumpable().unwrap(),
        "the peer is still dumpable"
    );
    assert_eq!(mode(&loose), 0o700, "an existing data_dir is tightened");

    let fresh = dir.path().join("fresh/data");
    assert!(
        medledger_peer::node::start(&config(dir.path(), "fresh/data"))
            .await
            .is_err()
    );
    assert_eq!(mode(&fresh), 0o700, "a new data_dir is created private");
}
