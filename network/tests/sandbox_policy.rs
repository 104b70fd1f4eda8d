//! What the sandbox requires of the kernel and what it reports (issue 13 review of item 2):
//! without Landlock the peer refuses to run chaincode unless `sandbox.allow_without_landlock`
//! is set; a trampoline started by a non-root user reports the user the chaincode really runs
//! as; a thread bomb meets the task limit; the peer survives all three.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use medledger_runtime::MemorySimulator;
use medledger_runtime::process::{ChaincodeRuntime, RuntimeConfig};
use medledger_runtime::support::{ExecOutcome, RuntimeError};

mod common;

use common::{LAUNCHER, exec_request as req, kv_chaincode};

/// One test at a time: chaincodes run as the same user (65534 as root), whose tasks the
/// thread bomb uses up.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn state() -> MemorySimulator {
    MemorySimulator::new(
        [("a".to_owned(), b"1".to_vec())]
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
    )
}

async fn call(rt: &ChaincodeRuntime, tx: &str, args: &[&str]) -> Result<ExecOutcome, RuntimeError> {
    rt.execute(&kv_chaincode("kv:1.0"), req(tx, args), &mut state())
        .await
}

fn runtime_config(work_root: &Path) -> RuntimeConfig {
    RuntimeConfig::new(LAUNCHER, work_root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_landlock_chaincode_runs_only_when_the_operator_allows_it() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = runtime_config(&dir.path().join("chaincode"));
    cfg.assume_no_landlock = true;

    // By default: refused at launch, with the reason and the way out named.
    let rt = ChaincodeRuntime::new(cfg.clone());
    let refused = call(&rt, "tx1", &["get", "a"]).await;
    eprintln!("{refused:?}");
    match &refused {
        Err(RuntimeError::Launch { message, .. }) => {
            assert!(
                message.contains("Landlock") && message.contains("allow_without_landlock"),
                "{message}"
            );
        }
        other => panic!("expected a refused launch, got {other:?}"),
    }
    rt.shutdown().await;

    // With the explicit opt-in: it runs (and the peer logs a warning).
    cfg.allow_without_landlock = true;
    let rt = ChaincodeRuntime::new(cfg);
    let out = call(&rt, "tx2", &["get", "a"]).await.unwrap();
    assert_eq!(
        (out.response.status, out.response.payload.as_slice()),
        (200, &b"1"[..])
    );
    rt.shutdown().await;
}

/// A peer not running as root starts the trampoline as its own user (as root, this test
/// starts it as uid 4242): the report and the chaincode itself see that user, not the
/// overflow id 65534 of the user namespace the trampoline creates for its network namespace.
#[test]
fn a_non_root_trampoline_reports_the_user_it_really_runs_as() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let work = tempfile::tempdir().unwrap();
    // A copy of the trampoline any user can run.
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let launcher = bin.path().join("medledger-sandbox");
    std::fs::copy(LAUNCHER, &launcher).unwrap();
    let id = ["/usr/bin/id", "/bin/id"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("id(1)");
    let mut cmd = std::process::Command::new(&launcher);
    cmd.arg("--workdir").arg(work.path()).args(["--", id, "-u"]);
    let expected = if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(work.path(), Some(4242), Some(4242)).unwrap();
        cmd.uid(4242).gid(4242);
        4242
    } else {
        nix::unistd::geteuid().as_raw()
    };
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = stderr.lines().next().unwrap_or_default();
    eprintln!("{report}");
    assert!(out.status.success(), "{stderr}");
    assert!(
        report.ends_with(&format!(" uid={expected}")),
        "the report names uid {expected}: {report}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expected.to_string(),
        "the chaincode sees its real uid"
    );
}

/// New processes are refused by seccomp; threads are allowed, but only as many as the task
/// limit (`RLIMIT_NPROC`) lets the chaincode's user have: a thread bomb fails with `EAGAIN`
/// and the peer keeps serving with the same process. (A limit below the default of 2048, so
/// that chaincodes of the same user elsewhere keep room while this runs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_bomb_meets_the_task_limit() {
    const LIMIT: u64 = 256;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = runtime_config(&dir.path().join("chaincode"));
    cfg.limits.max_tasks = LIMIT;
    let rt = ChaincodeRuntime::new(cfg);
    let out = call(&rt, "tx1", &["threads", "1000"]).await.unwrap();
    let message = &out.response.message;
    eprintln!("{} {message}", out.response.status);
    assert_eq!(out.response.status, 500, "1000 threads were started");
    let spawned: u64 = message
        .strip_prefix("threads refused: EAGAIN: ")
        .and_then(|m| m.rsplit_once("after "))
        .and_then(|(_, n)| n.strip_suffix(" threads"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected answer: {message}"));
    assert!(spawned < LIMIT, "{spawned} threads");
    let out = call(&rt, "tx2", &["get", "a"]).await.unwrap();
    assert_eq!(out.response.status, 200);
    assert_eq!(rt.launches(), 1, "the process survived its failed threads");
    rt.shutdown().await;
}
