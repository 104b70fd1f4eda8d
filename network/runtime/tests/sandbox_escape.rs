//! A hostile chaincode in the real sandbox (`medledger-sandbox` + `kv-chaincode`) tries to
//! reach the peer: read its keys, its ledger files, another chaincode's directory and its
//! environment; signal it; use the system calls that reach another process (`io_uring_*`,
//! `pidfd_*`, `process_vm_*`, `ptrace`, ...); send a datagram to a named socket (as to
//! `/dev/log`); flood its output with 3 GiB without a newline.
//! Each attempt is refused or cut, the peer (this test process) keeps serving, its peak RSS
//! stays bounded, and the chaincode's working directory is gone when it stops.
//!
//! One test in its own binary, so that the peak-RSS measurement sees only this peer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use medledger_ledger_api::MemorySimulator;
use medledger_runtime::process::{ChaincodeRuntime, RuntimeConfig};
use medledger_runtime::support::RuntimeError;

#[path = "it/common/mod.rs"]
mod common;

use common::{LAUNCHER, exec_request as req, kv_chaincode as cc};

const FLOOD_BYTES: u64 = 3 << 30;
const RSS_BOUND_BYTES: u64 = 64 << 20;

/// A file readable by anyone as far as permissions go: only the sandbox can refuse it.
fn world_readable(path: &Path, contents: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn open_dirs(root: &Path, leaf: &Path) {
    let mut dir = leaf.to_path_buf();
    while dir.starts_with(root) {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if !dir.pop() {
            break;
        }
    }
}

/// `VmHWM` (peak resident set) of this process, bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0); false where that is not allowed.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

struct Peer {
    rt: ChaincodeRuntime,
    sim: MemorySimulator,
    calls: u32,
}

impl Peer {
    async fn call(&mut self, id: &str, args: &[&str]) -> Result<(i32, String), RuntimeError> {
        self.calls += 1;
        let tx = format!("tx{}", self.calls);
        let out = self
            .rt
            .execute(&cc(id), req(&tx, args), &mut self.sim)
            .await?;
        let text = if out.response.status < 400 {
            String::from_utf8_lossy(&out.response.payload).into_owned()
        } else {
            out.response.message
        };
        Ok((out.response.status, text))
    }

    /// Runs each attempt and records in `wrong` those not refused with an expected errno.
    async fn attempt_all(
        &mut self,
        attempts: &[(&str, Vec<String>, &[&str])],
        wrong: &mut Vec<String>,
    ) {
        for (function, args, expected) in attempts {
            let mut call: Vec<&str> = vec![function];
            call.extend(args.iter().map(String::as_str));
            let (status, text) = self.call("kv:1.0", &call).await.unwrap();
            let refused = status == 500
                && expected
                    .iter()
                    .any(|errno| text.contains(&format!("refused: {errno}:")));
            eprintln!(
                "{:<6} {} -> {status} {text:.120}",
                if refused { "ok" } else { "WRONG" },
                call.join(" ")
            );
            if !refused {
                wrong.push(format!("{}: {status} {text:.120}", call.join(" ")));
            }
        }
    }

    /// The peer still serves: a read of known state answers.
    async fn serves(&mut self) {
        let (status, value) = self.call("kv:1.0", &["get", "a"]).await.unwrap();
        assert_eq!(
            (status, value.as_str()),
            (200, "1"),
            "the peer stopped serving"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_chaincode_cannot_reach_the_peer() {
    // A peer directory laid out like a real one, every file world-readable and every
    // directory world-searchable, so file permissions alone would let anyone in.
    let peer_dir = tempfile::tempdir().unwrap();
    let root = peer_dir.path();
    let keystore = root.join("msp/keystore/priv_sk");
    let ledger_file = root.join("data/ledgers/ehr/000042.sst");
    world_readable(&keystore, b"-----BEGIN PRIVATE KEY-----");
    world_readable(&ledger_file, b"rocksdb table");
    world_readable(&root.join("data/ledgers/ehr/CURRENT"), b"MANIFEST-000001");
    let work_root = root.join("data/chaincode");
    std::fs::create_dir_all(&work_root).unwrap();
    open_dirs(root, keystore.parent().unwrap());
    open_dirs(root, ledger_file.parent().unwrap());
    open_dirs(root, &work_root);

    let mut cfg = RuntimeConfig::new(LAUNCHER, &work_root);
    cfg.execution_timeout = Duration::from_secs(120);
    let mut peer = Peer {
        rt: ChaincodeRuntime::new(cfg),
        sim: MemorySimulator::new(
            [("a".to_owned(), b"1".to_vec())]
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
        ),
        calls: 0,
    };

    // Another chaincode keeps a file in its own working directory.
    let (status, _) = peer
        .call("other:1.0", &["write", "secret.txt"])
        .await
        .unwrap();
    assert_eq!(status, 200);
    let other_dir = std::fs::read_dir(&work_root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("secret.txt").exists())
        .expect("the other chaincode's working directory");
    open_dirs(root, &other_dir);
    std::fs::set_permissions(
        other_dir.join("secret.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    peer.serves().await;

    let mut wrong = Vec::new();
    let (status, whoami) = peer.call("kv:1.0", &["whoami"]).await.unwrap();
    eprintln!("chaincode runs as {whoami}");
    assert_eq!(status, 200);
    if nix::unistd::geteuid().is_root()
        && whoami != "uid=65534,65534,65534 gid=65534,65534,65534 groups="
    {
        wrong.push(format!(
            "a peer running as root runs chaincode as nobody, not {whoami}"
        ));
    }

    // A datagram socket anyone may write to, as /dev/log is.
    let log_socket = root.join("log.sock");
    let log = std::os::unix::net::UnixDatagram::bind(&log_socket).unwrap();
    log.set_nonblocking(true).unwrap();
    std::fs::set_permissions(&log_socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    let ppid = std::process::id().to_string();
    let other_secret = other_dir.join("secret.txt");
    let attempts: Vec<(&str, Vec<String>, &[&str])> = vec![
        // Files: only the chaincode's own executable, its working directory and the
        // system libraries are readable.
        ("read", vec![keystore.display().to_string()], &["EACCES"]),
        (
            "list",
            vec![keystore.parent().unwrap().display().to_string()],
            &["EACCES"],
        ),
        ("read", vec![ledger_file.display().to_string()], &["EACCES"]),
        (
            "list",
            vec![ledger_file.parent().unwrap().display().to_string()],
            &["EACCES"],
        ),
        (
            "read",
            vec![other_secret.display().to_string()],
            &["EACCES"],
        ),
        ("list", vec![other_dir.display().to_string()], &["EACCES"]),
        ("read", vec![format!("/proc/{ppid}/environ")], &["EACCES"]),
        ("read", vec!["/etc/hostname".into()], &["EACCES", "ENOENT"]),
        // Programs: `execve` is refused outright; `execveat` (how the trampoline starts the
        // chaincode) meets Landlock, which executes nothing but the chaincode and the loader.
        ("exec", vec!["/bin/sh".into()], &["EPERM"]),
        ("syscall", vec!["execveat".into()], &["EACCES"]),
        // System calls that reach another process or the kernel's attack surface.
        ("syscall", vec!["io_uring_setup".into()], &["EPERM"]),
        ("syscall", vec!["io_uring_enter".into()], &["EPERM"]),
        ("syscall", vec!["io_uring_register".into()], &["EPERM"]),
        ("syscall", vec!["process_vm_readv".into()], &["EPERM"]),
        ("syscall", vec!["process_vm_writev".into()], &["EPERM"]),
        ("syscall", vec!["pidfd_open".into()], &["EPERM"]),
        ("syscall", vec!["pidfd_getfd".into()], &["EPERM"]),
        ("syscall", vec!["pidfd_send_signal".into()], &["EPERM"]),
        ("syscall", vec!["ptrace".into()], &["EPERM"]),
        ("syscall", vec!["kcmp".into()], &["EPERM"]),
        ("syscall", vec!["tkill".into()], &["EPERM"]),
        ("syscall", vec!["tgkill".into()], &["EPERM"]),
        ("syscall", vec!["rt_sigqueueinfo".into()], &["EPERM"]),
        ("syscall", vec!["fcntl_setown".into()], &["EPERM"]),
        ("syscall", vec!["ioctl_tiocsti".into()], &["EPERM"]),
        ("syscall", vec!["bpf".into()], &["EPERM"]),
        ("syscall", vec!["perf_event_open".into()], &["EPERM"]),
        ("syscall", vec!["userfaultfd".into()], &["EPERM"]),
        ("syscall", vec!["keyctl".into()], &["EPERM"]),
        ("syscall", vec!["add_key".into()], &["EPERM"]),
        ("syscall", vec!["unshare".into()], &["EPERM"]),
        ("syscall", vec!["setns".into()], &["EPERM"]),
        ("syscall", vec!["mount".into()], &["EPERM"]),
        ("syscall", vec!["chroot".into()], &["EPERM"]),
        ("syscall", vec!["open_by_handle_at".into()], &["EPERM"]),
        ("syscall", vec!["init_module".into()], &["EPERM"]),
        ("syscall", vec!["setuid".into()], &["EPERM"]),
        ("syscall", vec!["socket".into()], &["EPERM"]),
        // The one socket call allowed makes only connected stream pairs: no datagram to a
        // named socket such as /dev/log.
        (
            "send-dgram",
            vec![log_socket.display().to_string()],
            &["EPERM"],
        ),
        // Not an escape, just not on the allow-list: as if the kernel lacked it.
        ("syscall", vec!["memfd_create".into()], &["ENOSYS"]),
    ];
    peer.attempt_all(&attempts, &mut wrong).await;
    if log.recv(&mut [0u8; 64]).is_ok() {
        wrong.push("a datagram reached the log socket".into());
    }
    peer.serves().await;
    assert_eq!(peer.rt.launches(), 2, "refusals do not cost the process");

    // 3 GiB without a newline, on stdout then stderr: read and cut, never buffered whole.
    let measured = reset_peak_rss();
    let before = peak_rss();
    for stream in ["stdout", "stderr"] {
        let (status, text) = peer
            .call("kv:1.0", &["flood", stream, &FLOOD_BYTES.to_string()])
            .await
            .unwrap();
        assert_eq!(
            (status, text.as_str()),
            (200, format!("wrote {FLOOD_BYTES} bytes").as_str())
        );
    }
    let grown = peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS grew by {} KiB over 2 x {FLOOD_BYTES} bytes of output",
        grown / 1024
    );
    if measured {
        if grown >= RSS_BOUND_BYTES {
            wrong.push(format!(
                "peak RSS grew by {} MiB during the output flood",
                grown >> 20
            ));
        }
    } else {
        eprintln!("skipping the peak-RSS bound: /proc/self/clear_refs is not writable here");
    }
    peer.serves().await;

    // Last, because a sandbox that let them through would end this test process.
    let signals: Vec<(&str, Vec<String>, &[&str])> = vec![
        // Probes (signal 0) to the process group, then the real thing to the peer.
        ("signal", vec!["group".into(), "0".into()], &["EPERM"]),
        ("signal", vec!["parent".into(), "0".into()], &["EPERM"]),
        ("signal", vec!["parent".into(), "15".into()], &["EPERM"]),
        ("signal", vec!["parent".into(), "9".into()], &["EPERM"]),
    ];
    peer.attempt_all(&signals, &mut wrong).await;
    peer.serves().await;

    assert!(wrong.is_empty(), "not refused:\n{}", wrong.join("\n"));

    // What one call may send: a message over 4 MiB ends the connection (the process is
    // replaced on the next call); more than 100 MiB in one call fails the call.
    let launches = peer.rt.launches();
    let big = peer
        .call("kv:1.0", &["put-many", "1", &(5 << 20).to_string()])
        .await;
    assert!(matches!(big, Err(RuntimeError::Exited { .. })), "{big:?}");
    peer.serves().await;
    assert_eq!(peer.rt.launches(), launches + 1);
    let many = peer
        .call("kv:1.0", &["put-many", "120", &(1 << 20).to_string()])
        .await;
    assert!(
        matches!(&many, Err(RuntimeError::Protocol { message, .. }) if message.contains("sent more than 104857600 bytes")),
        "{many:?}"
    );
    assert!(
        peer.sim.writes.len() <= 100,
        "writes past the bound were not kept: {}",
        peer.sim.writes.len()
    );
    peer.serves().await;
    assert_eq!(peer.rt.launches(), launches + 1, "the process is kept");

    // Working directories go away with their processes.
    peer.rt.shutdown().await;
    let left: Vec<_> = std::fs::read_dir(&work_root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "working directories left behind: {left:?}");
}
