//! Chaincode processes: launched through the `medledger-sandbox` trampoline, connected to the
//! peer only by a socket pair inherited as standard input, supervised, and restarted on the
//! next invocation after a crash or a timeout.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc};

use crate::sandbox::{Limits, REPORT_PREFIX};
use crate::simulator::TxSimulator;
use crate::support::{ChaincodeConnection, ExecOutcome, ExecRequest, RuntimeError, SupportService};

/// Default per-invocation execution timeout (Fabric's `chaincode.executetimeout`).
pub const DEFAULT_EXECUTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait for a launched chaincode to register.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Path of the `medledger-sandbox` trampoline.
    pub launcher: PathBuf,
    /// Directory under which each chaincode process gets its private working directory.
    pub work_root: PathBuf,
    /// Resource limits of each process.
    pub limits: Limits,
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

struct Running {
    conn: Arc<ChaincodeConnection>,
    child: Child,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

/// Starts chaincode processes on demand and executes transactions on them.
pub struct ChaincodeRuntime {
    config: RuntimeConfig,
    running: Mutex<HashMap<String, Running>>,
    launches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ChaincodeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaincodeRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ChaincodeRuntime {
    /// A runtime with `config`; nothing starts until the first execution.
    pub fn new(config: RuntimeConfig) -> Self {
        ChaincodeRuntime {
            config,
            running: Mutex::new(HashMap::new()),
            launches: std::sync::atomic::AtomicU64::new(0),
        }
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
        let r = self.launch(cc).await?;
        let conn = r.conn.clone();
        running.insert(cc.id.clone(), r);
        Ok(conn)
    }

    async fn launch(&self, cc: &InstalledChaincode) -> Result<Running, RuntimeError> {
        let fail = |message: String| RuntimeError::Launch {
            chaincode: cc.id.clone(),
            message,
        };
        let n = self
            .launches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let workdir = self
            .config
            .work_root
            .join(format!("{}-{n}", sanitize(&cc.id)));
        std::fs::create_dir_all(&workdir).map_err(|e| fail(format!("workdir: {e}")))?;
        let (peer_end, cc_end) =
            std::os::unix::net::UnixStream::pair().map_err(|e| fail(format!("socketpair: {e}")))?;
        let limits = self.config.limits;
        let mut child = Command::new(&self.config.launcher)
            .arg("--workdir")
            .arg(&workdir)
            .args(["--max-memory-bytes", &limits.max_memory_bytes.to_string()])
            .args(["--max-cpu-seconds", &limits.max_cpu_seconds.to_string()])
            .args(["--max-open-files", &limits.max_open_files.to_string()])
            .args(["--max-file-bytes", &limits.max_file_bytes.to_string()])
            .arg("--")
            .arg(&cc.executable)
            .env_clear()
            .env(medledger_chaincode::shim::ENV_CHAINCODE_ID, &cc.id)
            .env(medledger_chaincode::shim::ENV_TRANSPORT, "stdin")
            .env("MALLOC_ARENA_MAX", "2")
            .stdin(Stdio::from(OwnedFd::from(cc_end)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("spawn {}: {e}", self.config.launcher.display())))?;
        forward_output(&cc.id, &mut child);

        peer_end
            .set_nonblocking(true)
            .map_err(|e| fail(format!("socket: {e}")))?;
        let peer_end =
            tokio::net::UnixStream::from_std(peer_end).map_err(|e| fail(format!("socket: {e}")))?;
        let (registered_tx, mut registered_rx) = mpsc::unbounded_channel();
        let service = SupportService::new(registered_tx).into_service();
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::once(Ok::<_, std::io::Error>(peer_end));
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::debug!(target: "peer::chaincode", error = %e, "chaincode socket server ended");
            }
        });
        let registered =
            tokio::time::timeout(self.config.startup_timeout, registered_rx.recv()).await;
        let conn = match registered {
            Ok(Some(conn)) => conn,
            other => {
                let _ = child.kill().await;
                server.abort();
                let why = if other.is_err() {
                    "did not register in time"
                } else {
                    "exited before registering"
                };
                return Err(fail(why.into()));
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

/// Logs the trampoline's protections report and the chaincode's output (target
/// `chaincode::output`). Chaincode must not print health data; the EHR contract never does.
fn forward_output(id: &str, child: &mut Child) {
    if let Some(stderr) = child.stderr.take() {
        let id = id.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(report) = line.strip_prefix(REPORT_PREFIX) {
                    tracing::info!(target: "peer::chaincode", chaincode = %id, protections = %report.trim(), "chaincode sandbox active");
                } else {
                    tracing::info!(target: "chaincode::output", chaincode = %id, "{line}");
                }
            }
        });
    }
    if let Some(stdout) = child.stdout.take() {
        let id = id.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "chaincode::output", chaincode = %id, "{line}");
            }
        });
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
