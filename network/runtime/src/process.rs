//! Chaincode processes: launched through the `medledger-sandbox` trampoline, connected to the
//! peer only by a socket pair inherited as standard input, supervised, and restarted on the
//! next invocation after a crash or a timeout.
//!
//! What a chaincode can make the peer hold is bounded: its standard output and error are read
//! in fixed chunks and logged line by line, each line cut at [`MAX_OUTPUT_LINE_BYTES`] and at
//! most [`MAX_OUTPUT_LINES_PER_SECOND`] lines and [`MAX_OUTPUT_BYTES_PER_SECOND`] bytes a
//! second per stream, counted as logged, escaped (the rest counted, not kept); its connection takes one stream of messages of at most
//! [`MAX_CHAINCODE_MESSAGE_BYTES`] (the per-call and queue bounds are in [`crate::support`]);
//! its working directory is created empty, owned by the sandbox user, and removed when the
//! process stops.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medledger_ledger_api::TxSimulator;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::sandbox::{
    LandlockLevel, Limits, REPORT_PREFIX, SandboxUser, UidRange, check_report, kill_processes_of,
    max_tasks_within_hard_limit,
};
use crate::support::{ChaincodeConnection, ExecOutcome, ExecRequest, RuntimeError, SupportService};

/// Default per-invocation execution timeout (Fabric's `chaincode.executetimeout`).
pub const DEFAULT_EXECUTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait for a launched chaincode to register.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest line of chaincode output the peer logs, bytes; the rest of a longer line is read
/// and dropped, and the line is logged with `cut = true`.
pub const MAX_OUTPUT_LINE_BYTES: usize = 8 * 1024;
/// Lines of one output stream (stdout or stderr) of one chaincode process logged per second
/// at most; further lines are counted and the count logged once logging resumes.
pub const MAX_OUTPUT_LINES_PER_SECOND: u32 = 100;
/// Bytes of one output stream of one chaincode process logged per second at most, counted as
/// written to the log, escaped ([`escape_for_log`]; 64 KiB: eight full-length lines of
/// printable text); a line beyond it is counted and dropped like a line beyond
/// [`MAX_OUTPUT_LINES_PER_SECOND`]. Without it, 100 cut lines a second on two streams are
/// 1.6 MB/s of log per chaincode.
pub const MAX_OUTPUT_BYTES_PER_SECOND: usize = 64 * 1024;
/// Bytes of one output stream read per second at most once the second's log budget is spent
/// (16 MiB): beyond, the peer stops reading until the second ends, so a chaincode that floods
/// its output blocks on its own full pipe instead of keeping the peer's threads busy.
pub const MAX_OUTPUT_READ_BYTES_PER_SECOND: usize = 16 << 20;
/// Largest message a chaincode may send the peer, bytes (tonic's default, made explicit).
pub const MAX_CHAINCODE_MESSAGE_BYTES: usize = 4 << 20;

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Path of the `medledger-sandbox` trampoline.
    pub launcher: PathBuf,
    /// Directory under which each chaincode process gets its private working directory.
    pub work_root: PathBuf,
    /// Resource limits of each process.
    pub limits: Limits,
    /// The user chaincode runs as when the peer runs as root (default 65534:65534), unless
    /// `uid_range` is set.
    pub user: SandboxUser,
    /// Ids set aside for chaincode (`sandbox.uid_range`; default none): when the peer runs
    /// as root, each chaincode id gets its own user and group from the range, kept for the
    /// runtime's life (the lowest free one at its first launch; one whose chaincode has no
    /// process is reused when the range is used up), so that one chaincode's tasks do not
    /// count against another's [`Limits::max_tasks`]. Processes of these ids are killed when
    /// the runtime is created (leftovers of a peer that died).
    pub uid_range: Option<UidRange>,
    /// The least Landlock enforcement a chaincode may run with (`sandbox.min_landlock`,
    /// default `full`): the trampoline refuses to start it below, and the peer refuses a
    /// report below it whatever the trampoline did ([`check_report`]).
    pub min_landlock: LandlockLevel,
    /// Per-invocation execution timeout.
    pub execution_timeout: Duration,
    /// Wait for registration after launch.
    pub startup_timeout: Duration,
}

impl RuntimeConfig {
    /// Defaults with the given trampoline and work root.
    pub fn new(launcher: impl Into<PathBuf>, work_root: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            launcher: launcher.into(),
            work_root: work_root.into(),
            limits: Limits::default(),
            user: SandboxUser::default(),
            uid_range: None,
            min_landlock: LandlockLevel::default(),
            execution_timeout: DEFAULT_EXECUTION_TIMEOUT,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

/// An installed chaincode: its id (what it registers as) and executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledChaincode {
    /// Chaincode id, e.g. `ehr:1.0` (passed as `CORE_CHAINCODE_ID_NAME`).
    pub id: String,
    /// The executable.
    pub executable: PathBuf,
}

/// A chaincode's private working directory, removed when dropped (after its process was
/// killed and reaped, in [`Running::stop`]).
#[derive(Debug)]
struct WorkDir(PathBuf);

impl WorkDir {
    /// Creates `path` empty (whatever an earlier process left there is removed first), mode
    /// 0700, owned by `owner` when given (`fchown` of the directory opened with
    /// `O_NOFOLLOW`).
    fn create(path: PathBuf, owner: Option<SandboxUser>) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        remove_dir(&path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        let dir = WorkDir(path);
        if let Some(user) = owner {
            // The directory just created, never what a symbolic link put in its place points
            // to: opened without following links, then `fchown`.
            use std::os::unix::fs::OpenOptionsExt;
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&dir.0)?;
            std::os::unix::fs::fchown(&opened, Some(user.uid), Some(user.gid))?;
        }
        Ok(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = remove_dir(&self.0) {
            tracing::warn!(target: "peer::chaincode", dir = %self.0.display(), error = %e, "could not remove a chaincode working directory");
        }
    }
}

/// Removes `path` and everything below it (without following symbolic links); absent is
/// fine.
fn remove_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

struct Running {
    conn: Arc<ChaincodeConnection>,
    child: Child,
    server: tokio::task::JoinHandle<()>,
    workdir: WorkDir,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
        let workdir = self.workdir;
        let _ = tokio::task::spawn_blocking(move || drop(workdir)).await;
    }
}

/// Starts chaincode processes on demand and executes transactions on them.
pub struct ChaincodeRuntime {
    config: RuntimeConfig,
    running: Mutex<HashMap<String, Running>>,
    /// Chaincode id → index in `config.uid_range`; only changed under the `running` lock.
    users: std::sync::Mutex<HashMap<String, u32>>,
    launcher: std::sync::OnceLock<Launcher>,
    launches: std::sync::atomic::AtomicU64,
}

/// A thread that lives as long as the runtime and starts every trampoline: the kernel's
/// parent-death signal (`PR_SET_PDEATHSIG`, set by the trampoline) fires when the *thread*
/// that forked a process ends, and a tokio worker or blocking thread may end before the peer.
struct Launcher(std::sync::mpsc::Sender<(Command, oneshot::Sender<std::io::Result<Child>>)>);

impl Launcher {
    /// Starts the thread, in the context of the current tokio runtime (`Child` needs its
    /// process driver).
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) =
            std::sync::mpsc::channel::<(Command, oneshot::Sender<std::io::Result<Child>>)>();
        std::thread::Builder::new()
            .name("chaincode-launcher".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                while let Ok((mut command, reply)) = rx.recv() {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(Launcher(tx))
    }

    async fn spawn(&self, command: Command) -> std::io::Result<Child> {
        let (reply, child) = oneshot::channel();
        self.0
            .send((command, reply))
            .map_err(|_| std::io::Error::other("the chaincode launcher thread ended"))?;
        child
            .await
            .map_err(|_| std::io::Error::other("the chaincode launcher thread ended"))?
    }
}

impl std::fmt::Debug for ChaincodeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaincodeRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ChaincodeRuntime {
    /// A runtime with `config`; nothing starts until the first execution. Working
    /// directories an earlier run left under `config.work_root` (a peer that crashed) are
    /// removed, and, as root with `config.uid_range`, every process of those ids is killed.
    /// A task limit above what the trampoline could set (this process's hard `RLIMIT_NPROC`,
    /// when it cannot raise it) is lowered to it with a warning, instead of every launch
    /// failing ([`crate::sandbox::max_tasks_within_hard_limit`]).
    pub fn new(mut config: RuntimeConfig) -> Self {
        if let (tasks, Some(hard)) = max_tasks_within_hard_limit(config.limits.max_tasks) {
            tracing::warn!(target: "peer::chaincode", requested = config.limits.max_tasks, hard_limit = hard, "sandbox.max_tasks is above the hard RLIMIT_NPROC this peer cannot raise: chaincode gets the hard limit");
            config.limits.max_tasks = tasks;
        }
        if let Some(range) = config.uid_range
            && nix::unistd::geteuid().is_root()
        {
            match kill_processes_of(range) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(target: "peer::chaincode", processes = n, "killed processes left in the chaincode id range (sandbox.uid_range) by an earlier run")
                }
                Err(e) => {
                    tracing::warn!(target: "peer::chaincode", error = %e, "could not look for processes left in the chaincode id range")
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&config.work_root) {
            for entry in entries.flatten() {
                if let Err(e) = remove_dir(&entry.path()) {
                    tracing::warn!(target: "peer::chaincode", dir = %entry.path().display(), error = %e, "could not remove a stale chaincode working directory");
                }
            }
        }
        ChaincodeRuntime {
            config,
            running: Mutex::new(HashMap::new()),
            users: std::sync::Mutex::new(HashMap::new()),
            launcher: std::sync::OnceLock::new(),
            launches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The limits each chaincode process gets (the task limit possibly lowered by
    /// [`ChaincodeRuntime::new`]).
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// How many processes this runtime has launched (restarts included).
    pub fn launches(&self) -> u64 {
        self.launches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Executes one transaction on `cc`, launching (or relaunching) its process if needed.
    /// A timed-out or crashed process is killed and replaced on the next call; only the
    /// transactions it was running fail.
    ///
    /// # Errors
    /// [`RuntimeError`] from launch or execution.
    pub async fn execute(
        &self,
        cc: &InstalledChaincode,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError> {
        let conn = self.connection(cc).await?;
        let result = conn.execute(req, sim, self.config.execution_timeout).await;
        if matches!(
            result,
            Err(RuntimeError::Timeout { .. } | RuntimeError::Exited { .. })
        ) {
            let mut running = self.running.lock().await;
            // Only stop the process this call used (another call may have replaced it).
            if running
                .get(&cc.id)
                .is_some_and(|r| Arc::ptr_eq(&r.conn, &conn))
                && let Some(r) = running.remove(&cc.id)
            {
                tracing::warn!(target: "peer::chaincode", chaincode = %cc.id, "stopping chaincode process after failure");
                r.stop().await;
            }
        }
        result
    }

    async fn connection(
        &self,
        cc: &InstalledChaincode,
    ) -> Result<Arc<ChaincodeConnection>, RuntimeError> {
        let mut running = self.running.lock().await;
        if let Some(r) = running.get(&cc.id)
            && r.conn.is_alive()
        {
            return Ok(r.conn.clone());
        }
        if let Some(dead) = running.remove(&cc.id) {
            dead.stop().await;
        }
        let user = self.user_for(&cc.id, &running)?;
        let r = self.launch(cc, user).await?;
        let conn = r.conn.clone();
        running.insert(cc.id.clone(), r);
        Ok(conn)
    }

    /// The user `id` runs as when the peer runs as root: its own from `uid_range` if set
    /// (kept for this runtime's life; when the range is used up, one of a chaincode with no
    /// process is taken over), else `user`. Called under the `running` lock; a
    /// [`RuntimeError::Launch`] if the range has no id left.
    fn user_for(
        &self,
        id: &str,
        running: &HashMap<String, Running>,
    ) -> Result<SandboxUser, RuntimeError> {
        let launch = |message: String| RuntimeError::Launch {
            chaincode: id.to_owned(),
            message,
        };
        let Some(range) = self.config.uid_range else {
            return Ok(self.config.user);
        };
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = match users.get(id) {
            Some(i) => *i,
            None => {
                let taken: std::collections::BTreeSet<u32> = users.values().copied().collect();
                let free = (0..range.count).find(|i| !taken.contains(i));
                let index = match free {
                    Some(i) => i,
                    None => {
                        let idle = users
                            .iter()
                            .find(|(other, _)| !running.contains_key(*other))
                            .map(|(other, i)| (other.clone(), *i));
                        let Some((idle, i)) = idle else {
                            return Err(launch(format!(
                                "sandbox.uid_range holds {} ids, all in use by running chaincodes",
                                range.count
                            )));
                        };
                        users.remove(&idle);
                        i
                    }
                };
                users.insert(id.to_owned(), index);
                index
            }
        };
        range
            .user(index)
            .ok_or_else(|| launch("chaincode id outside sandbox.uid_range".to_owned()))
    }

    async fn launch(
        &self,
        cc: &InstalledChaincode,
        user: SandboxUser,
    ) -> Result<Running, RuntimeError> {
        let fail = |message: String| RuntimeError::Launch {
            chaincode: cc.id.clone(),
            message,
        };
        let n = self
            .launches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // As root, the trampoline runs the chaincode as the sandbox user: it must own its
        // directory. Otherwise the chaincode keeps the peer's user.
        let owner = nix::unistd::geteuid().is_root().then_some(user);
        let workdir = WorkDir::create(
            self.config
                .work_root
                .join(format!("{}-{n}", sanitize(&cc.id))),
            owner,
        )
        .map_err(|e| fail(format!("workdir: {e}")))?;
        let (peer_end, cc_end) =
            std::os::unix::net::UnixStream::pair().map_err(|e| fail(format!("socketpair: {e}")))?;
        let limits = self.config.limits;
        let mut command = Command::new(&self.config.launcher);
        command
            .args(["--min-landlock", self.config.min_landlock.as_str()])
            .arg("--workdir")
            .arg(&workdir.0)
            .args(["--max-memory-bytes", &limits.max_memory_bytes.to_string()])
            .args(["--max-cpu-seconds", &limits.max_cpu_seconds.to_string()])
            .args(["--max-open-files", &limits.max_open_files.to_string()])
            .args(["--max-file-bytes", &limits.max_file_bytes.to_string()])
            .args(["--max-tasks", &limits.max_tasks.to_string()])
            .args([
                "--uid",
                &user.uid.to_string(),
                "--gid",
                &user.gid.to_string(),
            ])
            .arg("--")
            .arg(&cc.executable)
            .env_clear()
            .env(medledger_chaincode::shim::ENV_CHAINCODE_ID, &cc.id)
            .env(medledger_chaincode::shim::ENV_TRANSPORT, "stdin")
            .env("MALLOC_ARENA_MAX", "2")
            .stdin(Stdio::from(OwnedFd::from(cc_end)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a signal to the peer's group does not reach it, and
            // `kill(0)` (refused anyway) would not reach the peer.
            .process_group(0)
            .kill_on_drop(true);
        let launcher = match self.launcher.get() {
            Some(l) => l,
            None => {
                let started =
                    Launcher::start().map_err(|e| fail(format!("launcher thread: {e}")))?;
                self.launcher.get_or_init(|| started)
            }
        };
        let mut child = launcher
            .spawn(command)
            .await
            .map_err(|e| fail(format!("spawn {}: {e}", self.config.launcher.display())))?;
        let (first_line_tx, first_line) = oneshot::channel();
        forward_output(&cc.id, &mut child, first_line_tx);

        peer_end
            .set_nonblocking(true)
            .map_err(|e| fail(format!("socket: {e}")))?;
        let peer_end =
            tokio::net::UnixStream::from_std(peer_end).map_err(|e| fail(format!("socket: {e}")))?;
        let (registered_tx, mut registered_rx) = mpsc::unbounded_channel();
        let service = SupportService::new(registered_tx)
            .into_service()
            .max_decoding_message_size(MAX_CHAINCODE_MESSAGE_BYTES);
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::once(Ok::<_, std::io::Error>(peer_end));
            // One stream (the chaincode's `Register`) and small headers: a chaincode cannot
            // make the peer hold more connections' or headers' worth of state.
            if let Err(e) = tonic::transport::Server::builder()
                .max_concurrent_streams(1)
                .http2_max_header_list_size(16 * 1024)
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::debug!(target: "peer::chaincode", error = %e, "chaincode socket server ended");
            }
        });
        let started = tokio::time::Instant::now();
        // The trampoline's first stderr line: its report, or why it did not start the
        // chaincode. Checked here too, before the chaincode is given any transaction.
        let report = match tokio::time::timeout(self.config.startup_timeout, first_line).await {
            Ok(Ok(line)) => {
                check_report(&line, self.config.min_landlock).map_err(|e| e.to_string())
            }
            Ok(Err(_)) => Err("exited before reporting its protections".into()),
            Err(_) => Err("did not report its protections in time".into()),
        };
        if let Err(why) = report {
            let _ = child.kill().await;
            server.abort();
            return Err(fail(why));
        }
        let registered = tokio::select! {
            r = tokio::time::timeout_at(started + self.config.startup_timeout, registered_rx.recv()) => r,
            _ = child.wait() => Ok(None),
        };
        let conn = match registered {
            Ok(Some(conn)) => conn,
            other => {
                let _ = child.kill().await;
                server.abort();
                return Err(fail(if other.is_err() {
                    "did not register in time".into()
                } else {
                    "exited before registering".into()
                }));
            }
        };
        if conn.chaincode() != cc.id {
            let _ = child.kill().await;
            server.abort();
            return Err(fail(format!("registered as {:?}", conn.chaincode())));
        }
        Ok(Running {
            conn,
            child,
            server,
            workdir,
        })
    }

    /// Stops every chaincode process.
    pub async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        for (_, r) in running.drain() {
            r.stop().await;
        }
    }
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Logs the trampoline's first stderr line (its protections report, or why it refused to
/// run the chaincode; target `peer::chaincode`) and hands it to `first_line`; then the
/// chaincode's output (target `chaincode::output`), bounded by [`forward_lines`]. Only the
/// first line can be the trampoline's: a later line that looks like a report is the
/// chaincode's output. Chaincode must not print health data; the EHR contract never does.
fn forward_output(id: &str, child: &mut Child, first_line: oneshot::Sender<String>) {
    if let Some(stderr) = child.stderr.take() {
        let id = id.to_owned();
        let mut first_line = Some(first_line);
        tokio::spawn(forward_lines(stderr, move |text, cut| {
            let Some(first) = first_line.take() else {
                tracing::info!(target: "chaincode::output", chaincode = %id, stream = "stderr", cut, "{text}");
                return;
            };
            if let Some(report) = text.strip_prefix(REPORT_PREFIX) {
                let report = report.trim();
                if report.split(' ').any(|p| p == "landlock=full") {
                    tracing::info!(target: "peer::chaincode", chaincode = %id, protections = %report, "chaincode sandbox reports its protections");
                } else {
                    tracing::warn!(target: "peer::chaincode", chaincode = %id, protections = %report, "chaincode sandbox reports protections WITHOUT full Landlock (allowed only with sandbox.min_landlock below full): the chaincode can read what its user can");
                }
            } else {
                tracing::warn!(target: "peer::chaincode", chaincode = %id, message = %text, "chaincode sandbox did not start the chaincode");
            }
            let _ = first.send(text.to_owned());
        }));
    }
    if let Some(stdout) = child.stdout.take() {
        let id = id.to_owned();
        tokio::spawn(forward_lines(stdout, move |text, cut| {
            tracing::info!(target: "chaincode::output", chaincode = %id, stream = "stdout", cut, "{text}");
        }));
    }
}

/// Reads `stream` to its end in fixed chunks and hands each line (without its newline) to
/// `emit` as it is to be logged ([`escape_for_log`]), with whether it was cut: a line longer
/// than [`MAX_OUTPUT_LINE_BYTES`] (raw bytes) is emitted cut as soon as it reaches that length
/// and its rest is skipped. At most [`MAX_OUTPUT_LINES_PER_SECOND`] lines and
/// [`MAX_OUTPUT_BYTES_PER_SECOND`] bytes of escaped text a second are emitted (what is
/// written to the log counts, not what was read: a line of control bytes is up to six times
/// longer escaped); the others are counted and reported with the next emitted one. Once the
/// second's budget is spent, chunks are skipped without per-line work and at most
/// [`MAX_OUTPUT_READ_BYTES_PER_SECOND`] are read until the second ends. Whatever the chaincode
/// writes, this holds at most one chunk and one line.
async fn forward_lines<R: AsyncRead + Unpin>(mut stream: R, mut emit: impl FnMut(&str, bool)) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::with_capacity(MAX_OUTPUT_LINE_BYTES);
    // The current line was already emitted cut; skip to its end.
    let mut skipping = false;
    let mut rate = RateLimit::new(MAX_OUTPUT_LINES_PER_SECOND, MAX_OUTPUT_BYTES_PER_SECOND);
    let admit = |rate: &mut RateLimit, line: &[u8], cut: bool, emit: &mut dyn FnMut(&str, bool)| {
        let text = escape_for_log(line);
        match rate.admit(Instant::now(), text.len()) {
            Some(0) => emit(&text, cut),
            Some(dropped) => {
                emit(&format!("[{dropped} lines of output dropped]"), false);
                emit(&text, cut);
            }
            None => {}
        }
    };
    let mut read_window = tokio::time::Instant::now();
    let mut read_in_window = 0usize;
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        if rate.spent(Instant::now()) {
            // Nothing ending in this chunk can be logged: count its lines and keep only what
            // follows its last newline (the start of the next line).
            let newlines = rest.iter().filter(|b| **b == b'\n').count();
            if let Some(last) = rest.iter().rposition(|b| *b == b'\n') {
                rate.drop_events(newlines as u64);
                line.clear();
                skipping = false;
                rest = &rest[last + 1..];
            }
            read_in_window += n;
            if read_in_window >= MAX_OUTPUT_READ_BYTES_PER_SECOND {
                tokio::time::sleep_until(read_window + Duration::from_secs(1)).await;
            }
        }
        if read_window.elapsed() >= Duration::from_secs(1) {
            read_window = tokio::time::Instant::now();
            read_in_window = 0;
        }
        while !rest.is_empty() {
            let end = rest.iter().position(|b| *b == b'\n');
            let part = &rest[..end.unwrap_or(rest.len())];
            rest = end.map_or(&[][..], |i| &rest[i + 1..]);
            if !skipping {
                let room = MAX_OUTPUT_LINE_BYTES - line.len();
                line.extend_from_slice(&part[..part.len().min(room)]);
                if part.len() >= room && (end.is_none() || part.len() > room) {
                    admit(&mut rate, &line, true, &mut emit);
                    line.clear();
                    skipping = true;
                }
            }
            if end.is_some() {
                if !skipping {
                    admit(&mut rate, &line, false, &mut emit);
                }
                line.clear();
                skipping = false;
            }
        }
    }
    if !line.is_empty() {
        admit(&mut rate, &line, false, &mut emit);
    }
}

/// `line` as the peer logs it: UTF-8 text as it is, but control characters (C0, DEL, C1)
/// and backslashes escaped as Rust writes them (`\u{1b}`, `\t`, `\\`: `char::escape_debug`)
/// and bytes that are not UTF-8 as `\xNN`. The result has no character the log formatter
/// escapes again, so its length is what the log receives.
fn escape_for_log(line: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(line.len());
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// At most `per_second` events and `bytes_per_second` bytes of them in each one-second
/// window.
struct RateLimit {
    per_second: u32,
    bytes_per_second: usize,
    window: Option<Instant>,
    admitted: u32,
    admitted_bytes: usize,
    dropped: u64,
}

impl RateLimit {
    fn new(per_second: u32, bytes_per_second: usize) -> Self {
        RateLimit {
            per_second,
            bytes_per_second,
            window: None,
            admitted: 0,
            admitted_bytes: 0,
            dropped: 0,
        }
    }

    /// Starts a new window at `now` if the current one is over.
    fn roll(&mut self, now: Instant) {
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= Duration::from_secs(1))
        {
            self.window = Some(now);
            self.admitted = 0;
            self.admitted_bytes = 0;
        }
    }

    /// Whether the window at `now` has no room left for any event.
    fn spent(&mut self, now: Instant) -> bool {
        self.roll(now);
        self.admitted >= self.per_second || self.admitted_bytes >= self.bytes_per_second
    }

    /// Counts `n` events dropped without being offered.
    fn drop_events(&mut self, n: u64) {
        self.dropped += n;
    }

    /// `Some(events dropped since the last admitted one)` if an event of `bytes` at `now` is
    /// admitted, `None` if it is dropped.
    fn admit(&mut self, now: Instant, bytes: usize) -> Option<u64> {
        self.roll(now);
        if self.admitted >= self.per_second
            || self.admitted_bytes.saturating_add(bytes) > self.bytes_per_second
        {
            self.dropped += 1;
            return None;
        }
        self.admitted += 1;
        self.admitted_bytes += bytes;
        Some(std::mem::take(&mut self.dropped))
    }
}

/// The `medledger-sandbox` next to the running executable (or `dir/medledger-sandbox`).
pub fn default_launcher(dir: Option<&Path>) -> PathBuf {
    let dir = dir.map(Path::to_path_buf).or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
    });
    dir.unwrap_or_default().join("medledger-sandbox")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        forward_lines(input, |line, cut| {
            out.push((line.to_owned(), cut));
        })
        .await;
        out
    }

    #[tokio::test]
    async fn lines_are_cut_at_the_bound_and_the_rest_skipped() {
        let long = "y".repeat(MAX_OUTPUT_LINE_BYTES * 3);
        let exact = "z".repeat(MAX_OUTPUT_LINE_BYTES);
        let input = format!("first\n{long}\nafter\n{exact}\nno newline at the end");
        let got = lines_of(input.as_bytes()).await;
        assert_eq!(
            got,
            vec![
                ("first".to_owned(), false),
                ("y".repeat(MAX_OUTPUT_LINE_BYTES), true),
                ("after".to_owned(), false),
                (exact, false),
                ("no newline at the end".to_owned(), false),
            ]
        );
    }

    #[tokio::test]
    async fn endless_output_without_a_newline_is_one_cut_line() {
        // 64 MiB with no newline: one cut line, nothing else kept.
        let (mut writer, reader) = tokio::io::duplex(64 * 1024);
        let feed = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..64 {
                writer.write_all(&chunk).await.unwrap();
            }
        });
        let mut got = Vec::new();
        forward_lines(reader, |line, cut| got.push((line.len(), cut))).await;
        feed.await.unwrap();
        assert_eq!(got, vec![(MAX_OUTPUT_LINE_BYTES, true)]);
    }

    /// helper-15's review of b375edd: a stream of empty lines kept the peer busy per line
    /// for as long as the chaincode wrote. Now reading is paced once the log budget is spent.
    #[tokio::test]
    async fn a_flood_of_lines_is_skipped_by_chunks_and_read_at_a_bounded_rate() {
        let (mut writer, reader) = tokio::io::duplex(64 * 1024);
        let total = 2 * MAX_OUTPUT_READ_BYTES_PER_SECOND + (1 << 20);
        let feed = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let chunk = vec![b'\n'; 1 << 20];
            for _ in 0..total >> 20 {
                writer.write_all(&chunk).await.unwrap();
            }
        });
        let started = tokio::time::Instant::now();
        let mut got = 0usize;
        forward_lines(reader, |_, _| got += 1).await;
        feed.await.unwrap();
        // The rest read at most 16 MiB a second: the writer was held back at least two
        // seconds; each second logged its budget of lines and one "dropped" line.
        let seconds = started.elapsed().as_secs() as usize + 1;
        assert!(
            got <= seconds * (MAX_OUTPUT_LINES_PER_SECOND as usize + 1),
            "{got} lines in {seconds} s"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn lines_beyond_the_rate_are_counted_not_logged() {
        let input: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let got = lines_of(input.as_bytes()).await;
        // All within one second: the first MAX_OUTPUT_LINES_PER_SECOND lines only.
        assert_eq!(got.len(), MAX_OUTPUT_LINES_PER_SECOND as usize);
        assert_eq!(got[0].0, "line 0");
    }

    #[tokio::test]
    async fn bytes_beyond_the_budget_are_counted_not_logged() {
        // 100 full-length lines within one second: 800 KiB, over the byte budget.
        let full = "b".repeat(MAX_OUTPUT_LINE_BYTES);
        let input: String = (0..100).map(|_| format!("{full}\n")).collect();
        let got = lines_of(input.as_bytes()).await;
        let logged: usize = got.iter().map(|(line, _)| line.len()).sum();
        assert_eq!(
            (got.len(), logged),
            (
                MAX_OUTPUT_BYTES_PER_SECOND / MAX_OUTPUT_LINE_BYTES,
                MAX_OUTPUT_BYTES_PER_SECOND
            ),
            "lines and bytes logged"
        );
    }

    /// Issue 13 review L2: the byte budget counts what reaches the log. A line of control
    /// bytes is written escaped (`\u{1b}`: several bytes per byte), and that is what counts.
    #[tokio::test]
    async fn control_bytes_count_in_the_budget_as_they_are_logged() {
        let line = "\x1b".repeat(MAX_OUTPUT_LINE_BYTES);
        let input: String = (0..20).map(|_| format!("{line}\n")).collect();
        let got = lines_of(input.as_bytes()).await;
        assert!(
            got.iter().all(|(l, _)| !l.chars().any(char::is_control)),
            "control characters reach the log as they are"
        );
        let logged: usize = got.iter().map(|(l, _)| l.len()).sum();
        assert!(
            logged <= MAX_OUTPUT_BYTES_PER_SECOND,
            "{logged} bytes logged in one second"
        );
        assert!(!got.is_empty());
    }

    #[test]
    fn output_is_escaped_for_the_log() {
        assert_eq!(
            escape_for_log(b"plain text, \xc3\xa9t\xc3\xa9"),
            "plain text, été"
        );
        assert_eq!(
            escape_for_log(b"\x1b[31m\t\\ \xff\xc2\x85\x7f"),
            "\\u{1b}[31m\\t\\\\ \\xff\\u{85}\\u{7f}"
        );
    }

    #[test]
    fn the_rate_limit_reports_what_it_dropped() {
        let mut rate = RateLimit::new(2, 10);
        let t0 = Instant::now();
        assert_eq!(rate.admit(t0, 1), Some(0));
        assert_eq!(rate.admit(t0, 1), Some(0));
        assert_eq!(rate.admit(t0, 1), None);
        assert_eq!(rate.admit(t0 + Duration::from_millis(500), 1), None);
        assert_eq!(rate.admit(t0 + Duration::from_secs(1), 6), Some(2));
        assert_eq!(rate.admit(t0 + Duration::from_secs(1), 5), None, "bytes");
        assert_eq!(rate.admit(t0 + Duration::from_secs(1), 4), Some(1));
    }

    #[test]
    fn working_directories_start_empty_and_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("cc-0");
        std::fs::create_dir_all(path.join("left/over")).unwrap();
        let dir = WorkDir::create(path.clone(), None).unwrap();
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
        std::fs::write(path.join("scratch"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn working_directories_are_given_to_the_sandbox_user() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: only root can give a directory away");
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("cc-0");
        let _dir = WorkDir::create(
            path.clone(),
            Some(SandboxUser {
                uid: 4242,
                gid: 4343,
            }),
        )
        .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (4242, 4343, 0o700)
        );
    }
}
