//! The chaincode sandbox.
//!
//! The peer never runs chaincode directly: it starts the trusted trampoline
//! `medledger-sandbox` (this module's [`enter`]), which confines itself and then `exec`s the
//! chaincode executable, so every restriction below is in force before the first instruction
//! of chaincode runs (and survives `exec`):
//!
//! | protection | mechanism | what it stops |
//! |---|---|---|
//! | resource limits | `setrlimit`: address space, CPU seconds, open files, file size, no core dumps | 10 GiB allocations, runaway CPU, fd exhaustion |
//! | no new processes | seccomp: `fork`/`vfork`, `clone` without `CLONE_THREAD` → `EPERM`; `clone3` → `ENOSYS` (glibc falls back to `clone` for threads) | fork bombs, spawning shells |
//! | no network | seccomp: `socket`, `connect`, `bind`, `listen`, `accept*` → `EPERM`; plus an empty network namespace when the kernel allows | opening TCP/UDP/Unix sockets; the chaincode talks to the peer only over the socket it inherited as stdin (`socketpair` stays allowed: it makes an anonymous pair that reaches nothing, and async runtimes use it for signal handling) |
//! | no escapes | seccomp: `ptrace`, `process_vm_*`, `mount`, `umount2`, `pivot_root`, `chroot`, `unshare`, `setns`, `bpf`, `perf_event_open`, module and kexec calls, `keyctl`, `userfaultfd`, `personality` → `EPERM` | debugging other processes, changing namespaces or mounts |
//! | file system | Landlock: read-only everywhere, read-write only in the private working directory, execute only the chaincode binary and the dynamic loader | writing outside its directory, `exec` of any other program |
//! | environment | cleared by the peer; only `CORE_CHAINCODE_ID_NAME` and the shim transport variable are set | leaking secrets through the environment |
//!
//! Which of these the running kernel enforces is reported by the trampoline on its first
//! stderr line ([`REPORT_PREFIX`]) and logged by the peer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// First stderr line of the trampoline: `medledger-sandbox: protections ...`.
pub const REPORT_PREFIX: &str = "medledger-sandbox: protections";

/// Resource limits of a chaincode process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Address-space limit, bytes (default 2 GiB).
    pub max_memory_bytes: u64,
    /// CPU time limit over the process's life, seconds (default 3600; per-invocation time is
    /// bounded separately by the runtime's execution timeout).
    pub max_cpu_seconds: u64,
    /// Open file descriptors (default 256).
    pub max_open_files: u64,
    /// Largest file the chaincode may write, bytes (default 64 MiB).
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_bytes: 2 << 30,
            max_cpu_seconds: 3600,
            max_open_files: 256,
            max_file_bytes: 64 << 20,
        }
    }
}

/// What the trampoline established; printed on its first stderr line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protections {
    /// Resource limits set.
    pub rlimits: bool,
    /// Seccomp filter installed.
    pub seccomp: bool,
    /// In a new, empty network namespace.
    pub network_namespace: bool,
    /// Landlock status: `full`, `partial` or `none`.
    pub landlock: String,
}

impl Protections {
    /// The report line.
    pub fn report(&self) -> String {
        format!(
            "{REPORT_PREFIX} rlimits={} seccomp={} netns={} landlock={}",
            on(self.rlimits),
            on(self.seccomp),
            on(self.network_namespace),
            self.landlock
        )
    }
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Errors of entering the sandbox (the trampoline exits with them instead of running
/// chaincode unconfined).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A required step failed.
    #[error("sandbox: {step}: {message}")]
    Setup {
        /// Step (rlimit, seccomp, landlock, chdir, exec).
        step: &'static str,
        /// Cause.
        message: String,
    },
}

fn setup(step: &'static str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup {
        step,
        message: e.to_string(),
    }
}

fn set_limit(resource: rlimit::Resource, value: u64) -> Result<(), SandboxError> {
    rlimit::setrlimit(resource, value, value).map_err(|e| setup("rlimit", e))
}

/// Applies resource limits to the current process.
///
/// # Errors
/// [`SandboxError::Setup`] if a limit cannot be set.
pub fn apply_limits(limits: &Limits) -> Result<(), SandboxError> {
    set_limit(rlimit::Resource::AS, limits.max_memory_bytes)?;
    set_limit(rlimit::Resource::CPU, limits.max_cpu_seconds)?;
    set_limit(rlimit::Resource::NOFILE, limits.max_open_files)?;
    set_limit(rlimit::Resource::FSIZE, limits.max_file_bytes)?;
    set_limit(rlimit::Resource::CORE, 0)
}

/// Moves into a new, empty network namespace (as root directly, otherwise inside a new user
/// namespace). Returns whether it worked; failure is reported, not fatal, because seccomp
/// already forbids creating sockets.
pub fn enter_network_namespace() -> bool {
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWNET).is_ok()
        || unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).is_ok()
}

/// Restricts the file system with Landlock: read everywhere, write only below `workdir`,
/// execute only `program` and the dynamic loader. Returns `full`, `partial` or `none`.
///
/// # Errors
/// [`SandboxError::Setup`] if the ruleset cannot be built (a kernel without Landlock is not
/// an error: the status says `none`).
pub fn restrict_file_system(workdir: &Path, program: &Path) -> Result<String, SandboxError> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        path_beneath_rules,
    };
    let abi = ABI::V3;
    let read = AccessFs::from_read(abi) & !AccessFs::Execute;
    let mut execute: Vec<PathBuf> = vec![program.to_path_buf()];
    for loader in [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    ] {
        if Path::new(loader).exists() {
            execute.push(PathBuf::from(loader));
        }
    }
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| setup("landlock", e))?
        .create()
        .map_err(|e| setup("landlock", e))?
        .add_rules(path_beneath_rules(["/"], read))
        .map_err(|e| setup("landlock", e))?
        .add_rules(path_beneath_rules(&execute, read | AccessFs::Execute))
        .map_err(|e| setup("landlock", e))?
        .add_rules(path_beneath_rules(
            [workdir],
            AccessFs::from_all(abi) & !AccessFs::Execute,
        ))
        .map_err(|e| setup("landlock", e))?
        .restrict_self()
        .map_err(|e| setup("landlock", e))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        _ => "none",
    }
    .to_owned())
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, SandboxError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| setup("seccomp", format!("architecture: {e:?}")))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|e| setup("seccomp", e))?;
    filter.try_into().map_err(|e| setup("seccomp", e))
}

/// The seccomp filters (see the module table), to be installed together: everything not
/// listed stays allowed.
///
/// # Errors
/// [`SandboxError::Setup`] if a filter cannot be compiled for this architecture.
pub fn seccomp_filters() -> Result<Vec<BpfProgram>, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let deny = [
        libc::SYS_socket,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_personality,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_fork,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_vfork,
    ];
    for sys in deny {
        rules.insert(sys, Vec::new());
    }
    // clone without CLONE_THREAD creates a process: denied; threads stay allowed.
    let new_process = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .map_err(|e| setup("seccomp", e))?;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![new_process]).map_err(|e| setup("seccomp", e))?],
    );
    // clone3 passes its flags in memory, which seccomp cannot read: answer ENOSYS so that
    // glibc falls back to clone, which the rule above inspects.
    let clone3 = [(libc::SYS_clone3, Vec::new())].into_iter().collect();
    Ok(vec![
        compile(rules, libc::EPERM)?,
        compile(clone3, libc::ENOSYS)?,
    ])
}

/// Confines the current process for `program` and returns what is in force: working
/// directory `workdir`, [`Limits`], an empty network namespace if possible, Landlock, then
/// the seccomp filters (last, because they forbid `unshare`).
///
/// # Errors
/// [`SandboxError::Setup`] when a mandatory protection (limits, seccomp) cannot be set up.
pub fn enter(workdir: &Path, program: &Path, limits: &Limits) -> Result<Protections, SandboxError> {
    std::env::set_current_dir(workdir).map_err(|e| setup("chdir", e))?;
    apply_limits(limits)?;
    let network_namespace = enter_network_namespace();
    let landlock = restrict_file_system(workdir, program)?;
    for filter in seccomp_filters()? {
        seccompiler::apply_filter(&filter).map_err(|e| setup("seccomp", e))?;
    }
    Ok(Protections {
        rlimits: true,
        seccomp: true,
        network_namespace,
        landlock,
    })
}
