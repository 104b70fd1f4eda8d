//! What the sandbox requires of the kernel and what it reports (issue 13 review of item 2 and
//! its review): below `sandbox.min_landlock` the trampoline refuses to run chaincode, and the
//! peer refuses a report below it whatever the trampoline did; a trampoline started by a
//! non-root user reports the user the chaincode really runs as; a thread bomb meets the task
//! limit without starving other chaincodes; a task limit above the hard limit is lowered,
//! not refused; no chaincode outlives its peer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use medledger_ledger_api::MemorySimulator;
use medledger_runtime::process::{ChaincodeRuntime, RuntimeConfig};
use medledger_runtime::sandbox::{LandlockLevel, UidRange};
use medledger_runtime::support::{ExecOutcome, RuntimeError};

use crate::common;

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

/// Runs `test` on a thread of its own, in a single-threaded tokio runtime, so that every
/// process it starts sees a kernel without Landlock: a seccomp filter on that thread (which
/// its children inherit) answers `ENOSYS` to `landlock_create_ruleset`, as Linux < 5.13 does.
/// The trampoline under test is the production one; it has no switch for this.
fn on_a_kernel_without_landlock<F: std::future::Future<Output = ()>>(
    test: impl FnOnce() -> F + Send + 'static,
) {
    std::thread::spawn(move || {
        let rules = [(libc::SYS_landlock_create_ruleset, Vec::new())]
            .into_iter()
            .collect();
        let filter: seccompiler::BpfProgram = seccompiler::SeccompFilter::new(
            rules,
            seccompiler::SeccompAction::Allow,
            seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
            std::env::consts::ARCH.try_into().unwrap(),
        )
        .unwrap()
        .try_into()
        .unwrap();
        seccompiler::apply_filter(&filter).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test());
    })
    .join()
    .unwrap();
}

/// Issue 13 review M1: the minimum is graded. On a kernel without Landlock a chaincode runs
/// only with `min_landlock: none`; `partial` (like the default `full`) refuses it, with the
/// reason and the setting named.
#[test]
fn without_landlock_chaincode_runs_only_when_the_minimum_is_none() {
    let _serial = SERIAL.blocking_lock();
    on_a_kernel_without_landlock(|| async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = runtime_config(&dir.path().join("chaincode"));
        for min in [LandlockLevel::Full, LandlockLevel::Partial] {
            cfg.min_landlock = min;
            let rt = ChaincodeRuntime::new(cfg.clone());
            let refused = call(&rt, "tx1", &["get", "a"]).await;
            eprintln!("{min}: {refused:?}");
            match &refused {
                Err(RuntimeError::Launch { message, .. }) => {
                    assert!(
                        message.contains("Landlock none") && message.contains("min_landlock"),
                        "{message}"
                    );
                }
                other => panic!("min {min}: expected a refused launch, got {other:?}"),
            }
            rt.shutdown().await;
        }

        // With the minimum `none`: it runs (and the peer logs a warning).
        cfg.min_landlock = LandlockLevel::None;
        let rt = ChaincodeRuntime::new(cfg);
        let out = call(&rt, "tx2", &["get", "a"]).await.unwrap();
        assert_eq!(
            (out.response.status, out.response.payload.as_slice()),
            (200, &b"1"[..])
        );
        rt.shutdown().await;
    });
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

/// A launcher that reports `landlock` without confining anything, then runs the program
/// after `--`: what a stale or tampered trampoline, or one on a kernel below the minimum
/// that ignored it, would look like to the peer.
fn lying_launcher(dir: &Path, landlock: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("lying-sandbox");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             echo 'medledger-sandbox: protections rlimits=on seccomp=on netns=on landlock={landlock} uid=65534' >&2\n\
             while [ \"$1\" != -- ]; do shift; done\nshift\nexec \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Issue 13 review L1: the peer itself checks the trampoline's report and refuses a
/// chaincode whose Landlock level is below the minimum, whatever the trampoline did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_refuses_a_report_below_the_minimum_landlock() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    for level in ["none", "partial"] {
        let mut cfg = runtime_config(&dir.path().join("chaincode"));
        cfg.launcher = lying_launcher(dir.path(), level);
        let rt = ChaincodeRuntime::new(cfg);
        let refused = call(&rt, "tx1", &["get", "a"]).await;
        eprintln!("{level}: {refused:?}");
        match &refused {
            Err(RuntimeError::Launch { message, .. }) => {
                assert!(
                    message.contains(&format!("landlock={level}"))
                        && message.contains("min_landlock"),
                    "{message}"
                );
            }
            other => panic!("landlock={level}: expected a refused launch, got {other:?}"),
        }
        rt.shutdown().await;
    }
}

/// Issue 13 review L3: the production trampoline has no switch that skips Landlock.
#[test]
fn the_trampoline_has_no_switch_that_skips_landlock() {
    let work = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(LAUNCHER)
        .arg("--assume-no-landlock")
        .arg("--workdir")
        .arg(work.path())
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unexpected argument"), "{stderr}");
}

/// Issue 13 review M3: a chaincode that holds threads up to its task limit does not stop
/// another chaincode from starting and serving (as root, with `sandbox.uid_range`: each
/// chaincode its own user, whose tasks the kernel counts apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_at_its_task_limit_does_not_starve_another() {
    const LIMIT: u64 = 256;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: per-chaincode users need a peer running as root");
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = runtime_config(&dir.path().join("chaincode"));
    cfg.limits.max_tasks = LIMIT;
    cfg.uid_range = Some(UidRange {
        start: 4_200_000,
        count: 4,
    });
    let rt = ChaincodeRuntime::new(cfg);
    let greedy = kv_chaincode("greedy:1.0");
    let out = rt
        .execute(
            &greedy,
            req("tx1", &["threads", "1000", "hold"]),
            &mut state(),
        )
        .await
        .unwrap();
    eprintln!("greedy: {} {}", out.response.status, out.response.message);
    assert_eq!(out.response.status, 500, "its limit stopped it");
    let other = rt
        .execute(
            &kv_chaincode("other:1.0"),
            req("tx2", &["get", "a"]),
            &mut state(),
        )
        .await;
    eprintln!("other: {other:?}");
    let other = other.unwrap();
    assert_eq!(
        (other.response.status, other.response.payload.as_slice()),
        (200, &b"1"[..])
    );
    rt.shutdown().await;
}

/// Issue 13 review M3: no chaincode outlives its peer. Here the "peer" is a shell that
/// starts the trampoline in the background and is then killed with `SIGKILL` (no chance to
/// clean up); the chaincode (`sleep`) must end with it.
#[test]
fn a_killed_peer_leaves_no_chaincode_behind() {
    use std::io::BufRead;
    let work = tempfile::tempdir().unwrap();
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(work.path(), Some(65534), Some(65534)).unwrap();
    }
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sleep(1)");
    let mut peer = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("\"$0\" --workdir \"$1\" -- \"$2\" 300 & echo $!; wait")
        .arg(LAUNCHER)
        .arg(work.path())
        .arg(sleep)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pid = String::new();
    std::io::BufReader::new(peer.stdout.take().unwrap())
        .read_line(&mut pid)
        .unwrap();
    let pid: i32 = pid.trim().parse().unwrap();
    // The report line: the trampoline is confined and about to exec the chaincode.
    let mut report = String::new();
    let mut stderr = std::io::BufReader::new(peer.stderr.take().unwrap());
    stderr.read_line(&mut report).unwrap();
    eprintln!("{report}");
    assert!(
        report.starts_with("medledger-sandbox: protections"),
        "{report}"
    );
    let running_sleep = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.contains("(sleep)") && !s.contains(") Z "))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !running_sleep() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(running_sleep(), "the chaincode runs");
    peer.kill().unwrap();
    peer.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running_sleep() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let survived = running_sleep();
    if survived {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(!survived, "chaincode {pid} outlived its peer");
}

/// Issue 13 review L4: a peer not running as root cannot raise its hard `RLIMIT_NPROC`; a
/// `max_tasks` above it made every launch fail at the trampoline's `setrlimit`. Now the
/// runtime lowers it once, at creation, and chaincode runs. As root, this test runs itself
/// again as uid 4242 (copies of this test, the trampoline and `kv-chaincode` in a directory
/// that user can read) with a `max_tasks` far above any hard limit; not as root, it is that
/// peer itself.
#[test]
fn a_task_limit_above_the_hard_limit_is_lowered_not_refused() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const CHILD: &str = "MEDLEDGER_TEST_UNPRIVILEGED_PEER";
    if let Ok(dir) = std::env::var(CHILD) {
        let dir = Path::new(&dir);
        let mut cfg = RuntimeConfig::new(dir.join("medledger-sandbox"), dir.join("chaincode"));
        cfg.limits.max_tasks = u64::MAX / 2;
        let hard = rlimit::getrlimit(rlimit::Resource::NPROC).unwrap().1;
        let (out, tasks) = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let rt = ChaincodeRuntime::new(cfg);
            let cc = medledger_runtime::process::InstalledChaincode {
                id: "kv:1.0".into(),
                executable: dir.join("kv-chaincode"),
            };
            let out = rt
                .execute(&cc, req("tx1", &["get", "a"]), &mut state())
                .await;
            rt.shutdown().await;
            (out, rt.limits().max_tasks)
        });
        assert_eq!(out.unwrap().response.status, 200);
        // Lowered to a finite hard limit; an unlimited one (RLIM_INFINITY) lowers nothing.
        assert_eq!(tasks, (u64::MAX / 2).min(hard), "lowered to the hard limit");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: run as root, this test starts itself as an unprivileged peer");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let this = std::env::current_exe().unwrap();
    for (from, to) in [
        (this.as_path(), "peer-test"),
        (Path::new(LAUNCHER), "medledger-sandbox"),
        (Path::new(common::KV), "kv-chaincode"),
    ] {
        std::fs::copy(from, dir.path().join(to)).unwrap();
    }
    std::fs::create_dir(dir.path().join("chaincode")).unwrap();
    std::os::unix::fs::chown(dir.path().join("chaincode"), Some(4242), Some(4242)).unwrap();
    // The test's name in this binary: its module path without the crate.
    let name = format!(
        "{}::a_task_limit_above_the_hard_limit_is_lowered_not_refused",
        module_path!().split_once("::").unwrap().1
    );
    let out = std::process::Command::new(dir.path().join("peer-test"))
        .args(["--exact", name.as_str(), "--nocapture"])
        .env(CHILD, dir.path())
        .uid(4242)
        .gid(4242)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the unprivileged peer: {text}"
    );
}
