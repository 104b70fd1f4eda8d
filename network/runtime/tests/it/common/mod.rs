//! What the tests of the chaincode sandbox share: the trampoline, `kv-chaincode` and its
//! requests.

#![allow(dead_code)] // each test crate uses a part

use medledger_proto::protos::ChaincodeInput;
use medledger_runtime::process::InstalledChaincode;
use medledger_runtime::support::ExecRequest;

/// The `medledger-sandbox` trampoline under test.
pub(crate) const LAUNCHER: &str = env!("CARGO_BIN_EXE_medledger-sandbox");
/// The `kv-chaincode` example (with its misbehaving functions) under test.
pub(crate) const KV: &str = env!("CARGO_BIN_EXE_kv-chaincode");

/// `kv-chaincode` installed as chaincode `id` (e.g. `kv:1.0`).
pub(crate) fn kv_chaincode(id: &str) -> InstalledChaincode {
    InstalledChaincode {
        id: id.into(),
        executable: KV.into(),
    }
}

/// Transaction `tx` on channel `ehr` invoking `args` (function first).
pub(crate) fn exec_request(tx: &str, args: &[&str]) -> ExecRequest {
    ExecRequest {
        channel_id: "ehr".into(),
        tx_id: tx.into(),
        input: ChaincodeInput {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            ..Default::default()
        },
        proposal: None,
        is_init: false,
    }
}

/// A binary of another workspace package, found next to this package's binaries (Cargo puts
/// every binary of the workspace in the same directory). Only this package's own binaries are
/// built for its tests: build the others with `cargo build --release --workspace --bins` (or
/// run the tests with `--workspace`).
pub(crate) fn sibling(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(LAUNCHER).with_file_name(name);
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build --release --workspace --bins`",
        path.display()
    );
    path
}
