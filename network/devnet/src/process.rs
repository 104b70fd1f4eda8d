//! Running a generated network's nodes as background OS processes: `up` starts every node that
//! is not running (`medledger orderer start` / `medledger peer start` / `medledger fhir serve`,
//! logs under `logs/`, pid files under `run/`) and waits until each answers `/healthz` (a FHIR
//! server: `GET /fhir/metadata` over HTTPS); `down` stops them (SIGTERM,
//! then SIGKILL after a grace period); `status` reports each node's health and height.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::generate::{GeneratedNode, NodeKind};

/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

fn pid_file(dir: &Path, node: &str) -> PathBuf {
    dir.join("run").join(format!("{node}.pid"))
}

/// The log file of a node.
pub fn log_file(dir: &Path, node: &str) -> PathBuf {
    dir.join("logs").join(format!("{node}.log"))
}

/// The pid of `node` if its process is alive and is that node (its command line names the
/// node's configuration file, so a reused pid is not mistaken for it).
pub fn running_pid(dir: &Path, node: &GeneratedNode) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(dir, &node.name))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let config = node.config.to_string_lossy();
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == config.as_bytes());
    (ours && kill(Pid::from_raw(pid), None).is_ok()).then_some(pid)
}

/// Starts `node` with `exe` (the `medledger` executable) in the background, in its own
/// process group, appending to its log; returns the child (dropping it leaves the node
/// running).
///
/// # Errors
/// The process cannot be spawned or its files written.
pub fn spawn(dir: &Path, exe: &Path, node: &GeneratedNode) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::create_dir_all(dir.join("run"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file(dir, &node.name))?;
    let command: &[&str] = match node.kind {
        NodeKind::Orderer => &["-v", "orderer", "start", "--config"],
        NodeKind::Peer => &["-v", "peer", "start", "--config"],
        NodeKind::Fhir => &["-v", "fhir", "serve", "--config"],
    };
    let child = Command::new(exe)
        .args(command)
        .arg(&node.config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} with {}", node.name, exe.display()))?;
    std::fs::write(pid_file(dir, &node.name), child.id().to_string())?;
    Ok(child)
}

/// A plain HTTP/1.0 GET of `path` on `addr` (`host:port`): status code and body.
///
/// # Errors
/// Connection or protocol failure.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("no address for {addr}"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad HTTP answer from {addr}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Whether `node` answers `/healthz` with 200 (a FHIR server: `GET /fhir/metadata` over
/// HTTPS, trusting its organization's TLS root, with 200).
pub fn healthy(node: &GeneratedNode) -> bool {
    match node.kind {
        NodeKind::Fhir => fhir_target(node).is_ok_and(|t| {
            matches!(
                super::https::request(&t, "GET", "/fhir/metadata", &[], &[]),
                Ok(a) if a.status == 200
            )
        }),
        _ => matches!(http_get(&node.operations, "/healthz"), Ok((200, _))),
    }
}

/// How to reach a FHIR server node: its HTTPS address, trusting its organization's TLS root
/// (`tls/ca.crt` beside its `fhir.yaml`).
///
/// # Errors
/// The TLS root cannot be read.
pub fn fhir_target(node: &GeneratedNode) -> Result<super::https::Target> {
    let home = node.config.parent().context("FHIR server directory")?;
    let roots_pem = std::fs::read(home.join("tls/ca.crt"))
        .with_context(|| format!("reading {}", home.join("tls/ca.crt").display()))?;
    let host = node
        .operations
        .rsplit_once(':')
        .map(|(h, _)| h.to_owned())
        .unwrap_or_default();
    Ok(super::https::Target {
        addr: node.operations.clone(),
        server_name: host,
        roots_pem,
        client: None,
    })
}

/// The block height a node reports in `/metrics` (`orderer_height`, or the peer's
/// `ledger_blockchain_height` of `channel`); none for a FHIR server.
pub fn height(node: &GeneratedNode, channel: &str) -> Option<u64> {
    match node.kind {
        NodeKind::Orderer => gauge(node, "orderer_height"),
        NodeKind::Peer => gauge(
            node,
            &format!("ledger_blockchain_height{{channel=\"{channel}\"}}"),
        ),
        NodeKind::Fhir => None,
    }
}

/// The value of one series (name with labels, as printed, e.g.
/// `peer_channel_config_sequence{channel="ehr"}`) in a node's `/metrics`.
pub fn gauge(node: &GeneratedNode, series: &str) -> Option<u64> {
    let (_, body) = http_get(&node.operations, "/metrics").ok()?;
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse::<f64>().ok())?
        })
        .map(|v| v as u64)
}

/// Waits until every node answers `/healthz`, failing early (with the end of its log) if a
/// node's process exits: a node in `started` (spawned by this process) by its exit status,
/// another by its pid file.
///
/// # Errors
/// A node exited or `timeout` passed.
pub fn wait_healthy(
    dir: &Path,
    nodes: &[GeneratedNode],
    started: &mut HashMap<String, Child>,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&GeneratedNode> = nodes.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for node in pending {
            let exited = match started.get_mut(&node.name) {
                Some(child) => child.try_wait().ok().flatten().is_some(),
                None => running_pid(dir, node).is_none(),
            };
            // Exit first: another process answering on the same port must not pass for it.
            if exited {
                bail!(
                    "{} exited; the end of {}:\n{}",
                    node.name,
                    log_file(dir, &node.name).display(),
                    log_tail(dir, &node.name, 20)
                );
            } else if healthy(node) {
                progress(&format!("{} is healthy", node.name));
            } else {
                still.push(node);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let names: Vec<&str> = pending.iter().map(|n| n.name.as_str()).collect();
            bail!("not healthy after {timeout:?}: {}", names.join(", "));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// The last `lines` lines of a node's log.
pub fn log_tail(dir: &Path, node: &str, lines: usize) -> String {
    let text = std::fs::read_to_string(log_file(dir, node)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops every running node: SIGTERM, then SIGKILL for those still alive after the grace
/// period. Returns the names of the nodes stopped.
///
/// # Errors
/// Signals that cannot be sent.
pub fn stop_all(dir: &Path, nodes: &[GeneratedNode]) -> Result<Vec<String>> {
    let mut stopping = Vec::new();
    for node in nodes {
        if let Some(pid) = running_pid(dir, node) {
            kill(Pid::from_raw(pid), Signal::SIGTERM)
                .with_context(|| format!("stopping {}", node.name))?;
            stopping.push(node);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    while stopping.iter().any(|n| running_pid(dir, n).is_some()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in &stopping {
        if let Some(pid) = running_pid(dir, node) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    for node in nodes {
        let _ = std::fs::remove_file(pid_file(dir, &node.name));
    }
    Ok(stopping.iter().map(|n| n.name.clone()).collect())
}
