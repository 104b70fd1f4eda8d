//! The chaincode sandbox.
//!
//! The peer never runs chaincode directly: it starts the trusted trampoline
//! `medledger-sandbox` (this module's [`enter`]), which confines itself and then `exec`s the
//! chaincode executable, so every restriction below is in force before the first instruction
//! of chaincode runs (and survives `exec`):
//!
//! | protection | mechanism | what it stops |
//! |---|---|---|
//! | inherited descriptors | every descriptor but 0–2 closed before anything else | reaching a file or socket of the peer's that lacked close-on-exec |
//! | resource limits | `setrlimit`: address space, CPU seconds, open files, file size, tasks of its user (`RLIMIT_NPROC`), no core dumps | 10 GiB allocations, runaway CPU, fd exhaustion, thread bombs |
//! | parent death | `PR_SET_PDEATHSIG(SIGKILL)` after the user switch (the peer starts trampolines from one long-lived thread); with a [`UidRange`], leftovers killed at peer start ([`kill_processes_of`]) | a chaincode running on after its peer died |
//! | own user | a peer running as root runs chaincode as [`SandboxUser`] (default 65534, `nobody`, or one per chaincode from a [`UidRange`]): `setgroups([])`, `setresgid`, `setresuid`, checked irreversible; `no_new_privs`. A peer not running as root runs it as its own user (mapped to itself in the trampoline's user namespace) | reading root-only files, signalling root processes, regaining privileges through `exec` |
//! | system calls | seccomp **allow-list** ([`ALLOWED_SYSCALLS`], with argument checks for `ioctl`, `fcntl`, `prctl`, `socketpair`); anything else answers `ENOSYS`, as if the kernel lacked it, so libc and std take their portable fallbacks (`clone3` → `clone`) | every kernel interface a shim does not need: `io_uring_*`, `pidfd_*`, `process_vm_*`, `ptrace`, `bpf`, `perf_event_open`, `userfaultfd`, keys, mounts, namespaces, modules, new sockets |
//! | deliberate refusals | a second seccomp filter answers `EPERM` to the known escape routes ([`REFUSED_SYSCALLS`]), to `kill`/`tgkill` of any process but this one, to `clone` without `CLONE_THREAD`, to `prlimit64` of another process, to `fcntl(F_SETOWN/F_SETSIG/...)` (signals by I/O) and `ioctl(TIOCSTI)` | signalling the peer or anyone else, new processes, changing another process's limits |
//! | no network | no `socket`/`connect`/`bind`; an empty network namespace when the kernel allows; Landlock denies TCP bind/connect | opening TCP/UDP/Unix sockets: the chaincode talks to the peer only over the socket it inherited as stdin (`socketpair(AF_UNIX, SOCK_STREAM)` stays: a connected pair reaches nothing, and async runtimes use it; datagram pairs, which could `sendto` a named socket such as `/dev/log`, are refused) |
//! | file system | Landlock: read only the chaincode's executable, the system libraries ([`LIBRARY_DIRS`], `/etc/ld.so.cache`) and its own `/proc/<pid>`; read-write only in its working directory; execute only its executable and the dynamic loader; signals and abstract Unix sockets scoped to itself | reading the peer's keys, ledger, configuration or environment, another chaincode's directory; `exec` of any other program |
//! | environment | cleared by the peer; only `CORE_CHAINCODE_ID_NAME`, the shim transport variable and `MALLOC_ARENA_MAX` are set | leaking secrets through the environment |
//!
//! Landlock needs Linux ≥ 5.13 (truncate control ≥ 6.2, scoping of signals ≥ 6.12). Where
//! the kernel enforces less of it than the operator's minimum ([`LandlockLevel`], peer.yaml
//! `sandbox.min_landlock`, default `full`) the trampoline **refuses** to start chaincode
//! ([`check_landlock`]): a non-root peer has no user switch, so its chaincode would read what
//! the peer's user can. With a lower minimum, the allow-list and the refusals still hold, and
//! the unprivileged user when started as root. Limits, seccomp and, when started as root, the
//! user switch are always mandatory. Which protections are in force is reported on the
//! trampoline's first stderr line ([`REPORT_PREFIX`]), with the user the chaincode runs as
//! seen from the host; the peer checks it again ([`check_report`]: it does not rely on the
//! trampoline alone), logs it, or the refusal, and treats no later line as a report.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// The sandbox's settings (user, ids set aside for chaincode, Landlock level), defined with
/// `peer.yaml`'s types so that tools writing `peer.yaml` need not link the runtime.
pub use medledger_peer_config::sandbox::{LandlockLevel, SandboxUser, UidRange, UidRangeError};

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
    /// Tasks (processes and threads) of the chaincode's user, `RLIMIT_NPROC` (default 2048).
    /// The kernel counts every task of the *real user*: for a peer running as root with a
    /// [`UidRange`], this chaincode's (its own user); without one, all chaincodes of
    /// `sandbox.uid` together (and any other process of that user on the host);
    /// for a peer not running as root, where the trampoline entered its own user namespace
    /// (`netns=on`, Linux >= 5.14), this chaincode's tasks, otherwise all of the peer's user,
    /// the peer's own threads included. A chaincode on our shim uses one thread per CPU plus
    /// at most 65.
    pub max_tasks: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_bytes: 2 << 30,
            max_cpu_seconds: 3600,
            max_open_files: 256,
            max_file_bytes: 64 << 20,
            max_tasks: medledger_peer_config::sandbox::DEFAULT_MAX_TASKS,
        }
    }
}

/// Sends `SIGKILL` to every process whose real user id is in `range` (listed from `/proc`),
/// and returns how many were signalled: at peer start, chaincode left behind by a peer that
/// died. Only for ids set aside for chaincode: never a shared user such as `nobody`.
///
/// # Errors
/// `/proc` cannot be listed. A process that ends meanwhile or cannot be read is skipped.
pub fn kill_processes_of(range: UidRange) -> std::io::Result<usize> {
    use nix::sys::signal::{Signal, kill};
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|uid| uid.parse().ok());
        if real_uid.is_some_and(|uid| range.contains(uid))
            && kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    Ok(killed)
}

/// What the trampoline established; printed on its first stderr line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protections {
    /// Resource limits set.
    pub rlimits: bool,
    /// Seccomp filters installed.
    pub seccomp: bool,
    /// In a new, empty network namespace.
    pub network_namespace: bool,
    /// What the kernel enforces of Landlock.
    pub landlock: LandlockLevel,
    /// The user id the chaincode runs as, as the host sees it: [`SandboxUser::uid`] when the
    /// trampoline started as root, otherwise the user that started it.
    pub uid: u32,
}

impl Protections {
    /// The report line.
    pub fn report(&self) -> String {
        format!(
            "{REPORT_PREFIX} rlimits={} seccomp={} netns={} landlock={} uid={}",
            on(self.rlimits),
            on(self.seccomp),
            on(self.network_namespace),
            self.landlock,
            self.uid
        )
    }
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

impl std::str::FromStr for Protections {
    type Err = SandboxError;

    /// Parses a report line as [`Protections::report`] writes it: [`REPORT_PREFIX`], then
    /// `rlimits=on|off seccomp=on|off netns=on|off landlock=none|partial|full uid=N`, each
    /// exactly once, in any order.
    ///
    /// # Errors
    /// [`SandboxError::Report`] for a line without the prefix, a missing, repeated or
    /// unknown field, or a value that does not parse.
    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| SandboxError::Report {
            reason: format!("{reason} in {line:?}"),
        };
        let fields = line
            .strip_prefix(REPORT_PREFIX)
            .ok_or_else(|| bad("not a sandbox report".into()))?;
        let mut seen = BTreeMap::new();
        for field in fields.split_whitespace() {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| bad(format!("field {field:?} without a value")))?;
            if seen.insert(key, value).is_some() {
                return Err(bad(format!("field {key} repeated")));
            }
        }
        let mut take = |key: &str| {
            seen.remove(key)
                .ok_or_else(|| bad(format!("field {key} missing")))
        };
        let switch = |value: &str| match value {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(other.to_owned()),
        };
        let protections = Protections {
            rlimits: switch(take("rlimits")?).map_err(|v| bad(format!("rlimits={v}")))?,
            seccomp: switch(take("seccomp")?).map_err(|v| bad(format!("seccomp={v}")))?,
            network_namespace: switch(take("netns")?).map_err(|v| bad(format!("netns={v}")))?,
            landlock: take("landlock")?.parse().map_err(bad)?,
            uid: take("uid")?.parse().map_err(|e| bad(format!("uid: {e}")))?,
        };
        match seen.keys().next() {
            Some(unknown) => Err(bad(format!("unknown field {unknown}"))),
            None => Ok(protections),
        }
    }
}

/// The peer's own check of the trampoline's first stderr line (defence in depth: a stale,
/// replaced or faulty trampoline that started a chaincode short of the minimum is caught
/// here, not only by the trampoline's [`check_landlock`]). Requires a report with rlimits and
/// seccomp on, Landlock at least `min_landlock`, and a uid other than 0.
///
/// # Errors
/// [`SandboxError::Report`]: `line` is not a report (then it is the trampoline's reason for
/// not starting the chaincode, returned as is), does not parse, or falls short (the reason
/// names the report's value and the setting, e.g. `landlock=none` and
/// `sandbox.min_landlock`).
pub fn check_report(line: &str, min_landlock: LandlockLevel) -> Result<Protections, SandboxError> {
    if !line.starts_with(REPORT_PREFIX) {
        return Err(SandboxError::Report {
            reason: line.to_owned(),
        });
    }
    let p: Protections = line.parse()?;
    let short = |what: String| SandboxError::Report {
        reason: format!("the sandbox reports {what}: refusing the chaincode"),
    };
    if p.landlock < min_landlock {
        return Err(short(format!(
            "landlock={}, below sandbox.min_landlock: {min_landlock}",
            p.landlock
        )));
    }
    if !p.rlimits || !p.seccomp {
        return Err(short(format!(
            "rlimits={} seccomp={}; both are mandatory",
            on(p.rlimits),
            on(p.seccomp)
        )));
    }
    if p.uid == 0 {
        return Err(short("uid=0; chaincode never runs as root".into()));
    }
    Ok(p)
}

/// Errors of entering the sandbox (the trampoline exits with them instead of running
/// chaincode unconfined).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A required step failed.
    #[error("sandbox: {step}: {message}")]
    Setup {
        /// Step (fds, program, chdir, rlimit, user, landlock, seccomp, exec).
        step: &'static str,
        /// Cause.
        message: String,
    },
    /// The trampoline's report is missing, unreadable, or short of what the peer requires
    /// ([`check_report`]).
    #[error("{reason}")]
    Report {
        /// Why, with the report's offending field (no chaincode output: only the first line
        /// is ever checked).
        reason: String,
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

/// The task limit ([`Limits::max_tasks`]) a trampoline started by this process can set:
/// `requested`, or this process's hard `RLIMIT_NPROC` where that is lower and the trampoline
/// could not raise it (only root with `CAP_SYS_RESOURCE` can; a peer not running as root, or
/// root in a container without that capability, cannot). Returns the limit and, when it was
/// lowered, the hard limit it was lowered to. Without it every launch would fail at
/// `setrlimit` (issue 13 review L4).
pub fn max_tasks_within_hard_limit(requested: u64) -> (u64, Option<u64>) {
    let hard = rlimit::getrlimit(rlimit::Resource::NPROC).map_or(u64::MAX, |(_, hard)| hard);
    let clamped = clamp_max_tasks(requested, hard, can_raise_hard_limits());
    (clamped, (clamped < requested).then_some(hard))
}

/// `requested`, or `hard` when lower and it cannot be raised.
fn clamp_max_tasks(requested: u64, hard: u64, can_raise: bool) -> u64 {
    if can_raise {
        requested
    } else {
        requested.min(hard)
    }
}

/// Whether a child of this process can raise a hard resource limit: it runs as root with
/// `CAP_SYS_RESOURCE` in its effective set (`/proc/self/status`, `CapEff`), kept across
/// `exec` by root.
fn can_raise_hard_limits() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|caps| u64::from_str_radix(caps.trim(), 16).ok())
            })
            .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Applies resource limits to the current process, but not [`Limits::max_tasks`] (see
/// [`enter`]: it is set once the user namespace, if any, exists).
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

/// Closes every file descriptor above 2 (standard input is the peer's socket, output and
/// errors are the peer's pipes): whatever else the trampoline inherited is not passed on.
///
/// # Errors
/// [`SandboxError::Setup`] if `/proc/self/fd` cannot be listed or a descriptor not closed.
pub fn close_inherited_fds() -> Result<(), SandboxError> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| setup("fds", e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // The listing's own descriptor is among them and already closed.
        match nix::unistd::close(fd) {
            Ok(()) | Err(nix::errno::Errno::EBADF) => {}
            Err(e) => return Err(setup("fds", format!("close {fd}: {e}"))),
        }
    }
    Ok(())
}

/// Moves into a new, empty network namespace (as root directly, otherwise inside a new user
/// namespace, where the caller's user and group are mapped to themselves: without a mapping
/// the chaincode would see the overflow id 65534 instead of the user it runs as). Returns
/// whether it worked; failure is reported, not fatal, because seccomp already forbids
/// creating sockets.
pub fn enter_network_namespace() -> bool {
    use nix::sched::{CloneFlags, unshare};
    if unshare(CloneFlags::CLONE_NEWNET).is_ok() {
        return true;
    }
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    if unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).is_err() {
        return false;
    }
    // An unprivileged process may map its own ids once, after denying `setgroups`
    // (user_namespaces(7)). Failing, the ids inside read 65534; the report still tells the
    // truth (see `enter`).
    let _ = std::fs::write("/proc/self/setgroups", "deny")
        .and_then(|()| std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")))
        .and_then(|()| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")));
    true
}

/// Switches the whole process to `user` for good: no supplementary groups, real, effective
/// and saved ids all `user`'s (which also empties the capability sets), then checks that
/// root cannot be regained.
///
/// # Errors
/// [`SandboxError::Setup`] if `user` is root, a switch fails, or root can be regained.
pub fn drop_privileges(user: SandboxUser) -> Result<(), SandboxError> {
    use nix::unistd::{Gid, Uid, getresgid, getresuid, setgroups, setresgid, setresuid};
    let fail = |e: &dyn std::fmt::Display| setup("user", e);
    if user.uid == 0 || user.gid == 0 {
        return Err(fail(&"refusing to run chaincode with user or group 0"));
    }
    let (uid, gid) = (Uid::from_raw(user.uid), Gid::from_raw(user.gid));
    setgroups(&[]).map_err(|e| fail(&e))?;
    setresgid(gid, gid, gid).map_err(|e| fail(&e))?;
    setresuid(uid, uid, uid).map_err(|e| fail(&e))?;
    let ids = getresuid().map_err(|e| fail(&e))?;
    let gids = getresgid().map_err(|e| fail(&e))?;
    if [ids.real, ids.effective, ids.saved] != [uid; 3]
        || [gids.real, gids.effective, gids.saved] != [gid; 3]
    {
        return Err(fail(&"ids did not change"));
    }
    if setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        return Err(fail(&"root could be regained"));
    }
    Ok(())
}

/// Directories of shared libraries a dynamically linked chaincode loads from (read-only,
/// those that exist).
pub const LIBRARY_DIRS: &[&str] = &["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

/// Dynamic loaders a chaincode may be started through (read and execute, those that exist).
const LOADERS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
];

/// Restricts the file system with Landlock for the current thread and its future children:
/// read only `program`, [`LIBRARY_DIRS`], `/etc/ld.so.cache` and this process's own
/// `/proc/<pid>`; read and write (not execute) below `workdir`; execute only `program` and the
/// dynamic loader. Also denies TCP bind/connect and scopes signals and abstract Unix sockets
/// to the sandbox, where the kernel supports it. Returns what the kernel enforces.
///
/// Landlock does not mediate `stat`, `readlink` or `chdir`: the names and sizes of files at
/// paths the chaincode already knows stay visible (file permissions still apply).
///
/// # Errors
/// [`SandboxError::Setup`] if `workdir` or `program` cannot be opened or the ruleset built
/// (a kernel without Landlock is not an error: the status says [`LandlockLevel::None`]).
pub fn restrict_file_system(workdir: &Path, program: &Path) -> Result<LandlockLevel, SandboxError> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
    };
    let abi = ABI::V6;
    let e = |e: landlock::RulesetError| setup("landlock", e);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let run = AccessFs::ReadFile | AccessFs::Execute;
    let open = |p: &Path| {
        PathFd::new(p).map_err(|err| setup("landlock", format!("{}: {err}", p.display())))
    };
    let own_proc = PathBuf::from(format!("/proc/{}", std::process::id()));
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(e)?
        .handle_access(AccessNet::from_all(abi))
        .map_err(e)?
        .scope(Scope::from_all(abi))
        .map_err(e)?
        .create()
        .map_err(e)?
        .add_rules(path_beneath_rules(LIBRARY_DIRS, read))
        .map_err(e)?
        .add_rules(path_beneath_rules(["/etc/ld.so.cache"], AccessFs::ReadFile))
        .map_err(e)?
        .add_rules(path_beneath_rules(LOADERS, run))
        .map_err(e)?
        .add_rules(path_beneath_rules([own_proc], read))
        .map_err(e)?
        .add_rule(PathBeneath::new(open(program)?, run))
        .map_err(e)?
        .add_rule(PathBeneath::new(
            open(workdir)?,
            AccessFs::from_all(abi) & !AccessFs::Execute,
        ))
        .map_err(e)?
        .restrict_self()
        .map_err(e)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockLevel::Full,
        RulesetStatus::PartiallyEnforced => LandlockLevel::Partial,
        _ => LandlockLevel::None,
    })
}

/// Refuses a Landlock `status` below `min`.
///
/// # Errors
/// [`SandboxError::Setup`] (step `landlock`) naming the status, the minimum and the setting.
pub fn check_landlock(status: LandlockLevel, min: LandlockLevel) -> Result<(), SandboxError> {
    if status >= min {
        return Ok(());
    }
    Err(setup(
        "landlock",
        format!(
            "this kernel enforces Landlock {status}, below the minimum {min} (full needs Linux \
             >= 6.12): chaincode could read files of the peer's user; refusing to run it \
             (sandbox.min_landlock in peer.yaml sets the minimum)"
        ),
    ))
}

/// System calls a chaincode shim needs (glibc or musl start-up, Rust std, a tokio runtime,
/// tonic over the inherited socket, files in its working directory), plus harmless queries
/// about itself. Observed with `strace -f` on `kv-chaincode` and `ehr-chaincode` in
/// `network/runtime/tests/it/sandbox.rs`, then completed with the variants libc picks on other versions (`open`
/// and `openat`, `poll` and `ppoll`, ...). `ioctl`, `fcntl`, `prctl` and `socketpair` are
/// allowed only with the arguments in [`seccomp_filters`]; `execveat` only starts the
/// chaincode (Landlock allows executing nothing else).
#[rustfmt::skip]
pub const ALLOWED_SYSCALLS: &[i64] = &[
    // memory
    libc::SYS_brk, libc::SYS_mmap, libc::SYS_munmap, libc::SYS_mremap, libc::SYS_mprotect,
    libc::SYS_madvise, libc::SYS_msync, libc::SYS_mincore,
    // threads and the process itself
    libc::SYS_clone, libc::SYS_exit, libc::SYS_exit_group, libc::SYS_set_tid_address,
    libc::SYS_set_robust_list, libc::SYS_rseq, libc::SYS_futex, libc::SYS_futex_waitv,
    libc::SYS_sched_yield, libc::SYS_sched_getaffinity, libc::SYS_getcpu, libc::SYS_gettid,
    libc::SYS_getpid, libc::SYS_getppid, libc::SYS_getuid, libc::SYS_geteuid,
    libc::SYS_getgid, libc::SYS_getegid, libc::SYS_getresuid, libc::SYS_getresgid,
    libc::SYS_getgroups, libc::SYS_getrusage, libc::SYS_times, libc::SYS_uname,
    libc::SYS_sysinfo, libc::SYS_getrlimit, libc::SYS_prlimit64, libc::SYS_execveat,
    // signals (to itself only: see the refusals)
    libc::SYS_rt_sigaction, libc::SYS_rt_sigprocmask, libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack, libc::SYS_rt_sigpending, libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigsuspend, libc::SYS_kill, libc::SYS_tgkill, libc::SYS_restart_syscall,
    // time
    libc::SYS_clock_gettime, libc::SYS_clock_getres, libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep, libc::SYS_gettimeofday, libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime, libc::SYS_timerfd_gettime,
    // descriptors and files (Landlock decides which files)
    libc::SYS_read, libc::SYS_write, libc::SYS_readv, libc::SYS_writev, libc::SYS_pread64,
    libc::SYS_pwrite64, libc::SYS_preadv, libc::SYS_pwritev, libc::SYS_lseek,
    libc::SYS_openat, libc::SYS_close, libc::SYS_close_range, libc::SYS_fstat,
    libc::SYS_newfstatat, libc::SYS_statx, libc::SYS_statfs, libc::SYS_fstatfs,
    libc::SYS_faccessat, libc::SYS_faccessat2, libc::SYS_readlinkat, libc::SYS_getdents64,
    libc::SYS_getcwd, libc::SYS_fcntl, libc::SYS_ioctl, libc::SYS_dup, libc::SYS_dup3,
    libc::SYS_pipe2, libc::SYS_fsync, libc::SYS_fdatasync, libc::SYS_ftruncate,
    libc::SYS_fallocate, libc::SYS_flock, libc::SYS_mkdirat, libc::SYS_unlinkat,
    libc::SYS_renameat, libc::SYS_renameat2,
    // waiting for I/O
    libc::SYS_epoll_create1, libc::SYS_epoll_ctl, libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2, libc::SYS_ppoll, libc::SYS_pselect6, libc::SYS_eventfd2,
    // the inherited socket (no new ones: see the refusals)
    libc::SYS_recvfrom, libc::SYS_recvmsg, libc::SYS_sendto, libc::SYS_sendmsg,
    libc::SYS_shutdown, libc::SYS_getsockopt, libc::SYS_setsockopt, libc::SYS_getsockname,
    libc::SYS_getpeername, libc::SYS_socketpair,
    // randomness, thread names; restricting itself further (`prctl(PR_SET_NO_NEW_PRIVS)`,
    // more seccomp filters: how the refusals are installed after this list)
    libc::SYS_getrandom, libc::SYS_prctl, libc::SYS_seccomp,
    // the older x86-64 spellings libc still uses
    #[cfg(target_arch = "x86_64")] libc::SYS_arch_prctl,
    #[cfg(target_arch = "x86_64")] libc::SYS_open,
    #[cfg(target_arch = "x86_64")] libc::SYS_stat,
    #[cfg(target_arch = "x86_64")] libc::SYS_lstat,
    #[cfg(target_arch = "x86_64")] libc::SYS_access,
    #[cfg(target_arch = "x86_64")] libc::SYS_readlink,
    #[cfg(target_arch = "x86_64")] libc::SYS_poll,
    #[cfg(target_arch = "x86_64")] libc::SYS_select,
    #[cfg(target_arch = "x86_64")] libc::SYS_epoll_create,
    #[cfg(target_arch = "x86_64")] libc::SYS_epoll_wait,
    #[cfg(target_arch = "x86_64")] libc::SYS_pipe,
    #[cfg(target_arch = "x86_64")] libc::SYS_dup2,
    #[cfg(target_arch = "x86_64")] libc::SYS_mkdir,
    #[cfg(target_arch = "x86_64")] libc::SYS_rmdir,
    #[cfg(target_arch = "x86_64")] libc::SYS_unlink,
    #[cfg(target_arch = "x86_64")] libc::SYS_rename,
    #[cfg(target_arch = "x86_64")] libc::SYS_getdents,
    #[cfg(target_arch = "x86_64")] libc::SYS_time,
];

/// Escape routes answered `EPERM` (a deliberate refusal rather than the allow-list's
/// `ENOSYS`): other processes' memory, descriptors and signals, the kernel's larger attack
/// surfaces, privileges, mounts and namespaces, new sockets, new programs by path.
#[rustfmt::skip]
pub const REFUSED_SYSCALLS: &[i64] = &[
    // other processes
    libc::SYS_ptrace, libc::SYS_process_vm_readv, libc::SYS_process_vm_writev,
    libc::SYS_pidfd_open, libc::SYS_pidfd_getfd, libc::SYS_pidfd_send_signal, libc::SYS_kcmp,
    libc::SYS_tkill, libc::SYS_rt_sigqueueinfo, libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_process_madvise, libc::SYS_get_robust_list,
    // kernel attack surface
    libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register,
    libc::SYS_bpf, libc::SYS_perf_event_open, libc::SYS_userfaultfd, libc::SYS_keyctl,
    libc::SYS_add_key, libc::SYS_request_key, libc::SYS_personality,
    // privileges
    libc::SYS_setuid, libc::SYS_setgid, libc::SYS_setreuid, libc::SYS_setregid,
    libc::SYS_setresuid, libc::SYS_setresgid, libc::SYS_setgroups, libc::SYS_setfsuid,
    libc::SYS_setfsgid, libc::SYS_capset,
    // mounts, namespaces, file handles
    libc::SYS_mount, libc::SYS_umount2, libc::SYS_pivot_root, libc::SYS_chroot,
    libc::SYS_unshare, libc::SYS_setns, libc::SYS_open_tree, libc::SYS_move_mount,
    libc::SYS_fsopen, libc::SYS_fsconfig, libc::SYS_fsmount, libc::SYS_fspick,
    libc::SYS_mount_setattr, libc::SYS_open_by_handle_at, libc::SYS_name_to_handle_at,
    // the machine
    libc::SYS_init_module, libc::SYS_finit_module, libc::SYS_delete_module,
    libc::SYS_kexec_load, libc::SYS_kexec_file_load, libc::SYS_reboot, libc::SYS_swapon,
    libc::SYS_swapoff, libc::SYS_quotactl, libc::SYS_acct, libc::SYS_syslog,
    libc::SYS_settimeofday, libc::SYS_clock_settime, libc::SYS_clock_adjtime,
    libc::SYS_adjtimex, libc::SYS_sethostname, libc::SYS_setdomainname, libc::SYS_vhangup,
    // network and programs
    libc::SYS_socket, libc::SYS_connect, libc::SYS_bind, libc::SYS_listen, libc::SYS_accept,
    libc::SYS_accept4, libc::SYS_execve,
    #[cfg(target_arch = "x86_64")] libc::SYS_fork,
    #[cfg(target_arch = "x86_64")] libc::SYS_vfork,
    #[cfg(target_arch = "x86_64")] libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")] libc::SYS_ioperm,
];

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| setup("seccomp", e))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conditions).map_err(|e| setup("seccomp", e))
}

/// One rule per value: the syscall matches when argument `arg` equals any of `values`.
fn any_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SandboxError> {
    values
        .iter()
        .map(|v| rule(vec![cond(arg, SeccompCmpOp::Eq, *v)?]))
        .collect()
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| setup("seccomp", format!("architecture: {e:?}")))?;
    let filter =
        SeccompFilter::new(rules, mismatch, matched, arch).map_err(|e| setup("seccomp", e))?;
    filter.try_into().map_err(|e| setup("seccomp", e))
}

/// `fcntl` commands that only concern the descriptor or a lock on it.
const FCNTL_ALLOWED: &[libc::c_int] = &[
    libc::F_DUPFD,
    libc::F_DUPFD_CLOEXEC,
    libc::F_GETFD,
    libc::F_SETFD,
    libc::F_GETFL,
    libc::F_SETFL,
    libc::F_GETLK,
    libc::F_SETLK,
    libc::F_SETLKW,
    libc::F_OFD_GETLK,
    libc::F_OFD_SETLK,
    libc::F_OFD_SETLKW,
    libc::F_GETPIPE_SZ,
];

/// `F_SETSIG` and `F_SETOWN_EX` (`<asm-generic/fcntl.h>`, the same on x86-64 and aarch64),
/// which the `libc` crate does not export for glibc.
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;

/// `fcntl` commands that make the kernel signal a process chosen by the caller.
const FCNTL_SIGNALLING: &[libc::c_int] = &[
    libc::F_SETOWN,
    F_SETOWN_EX,
    F_SETSIG,
    libc::F_SETLEASE,
    libc::F_NOTIFY,
];

/// `SOCK_PACKET` (`<linux/net.h>`; the `libc` constant is deprecated).
const SOCK_PACKET: libc::c_int = 10;

/// The type bits of `socket`/`socketpair`'s second argument (below `SOCK_NONBLOCK` and
/// `SOCK_CLOEXEC`).
const SOCK_TYPE_MASK: u64 = 0xf;

fn values<T: Copy + TryInto<u64>>(items: &[T]) -> Vec<u64> {
    items.iter().filter_map(|v| (*v).try_into().ok()).collect()
}

/// The two seccomp filters, to be installed in this order, for the process `own_pid` (the
/// chaincode keeps the trampoline's pid across `exec`):
///
/// 1. the allow-list: [`ALLOWED_SYSCALLS`] allowed, with `ioctl` limited to
///    `FIONBIO`/`FIOCLEX`/`FIONCLEX`/`FIONREAD`/`TCGETS`/`TIOCGWINSZ`, `fcntl` to descriptor
///    flags and locks, `prctl` to thread names (`PR_SET_NAME`, `PR_GET_NAME`, `PR_SET_VMA`)
///    and `no_new_privs`, and `socketpair` to `AF_UNIX` `SOCK_STREAM`; anything else `ENOSYS`;
/// 2. the refusals, answering `EPERM`: [`REFUSED_SYSCALLS`], `kill`/`tgkill` of any process
///    but `own_pid` (`kill(0)`, `kill(-1)` included), `clone` without `CLONE_THREAD`,
///    `prlimit64` of another process, the signalling `fcntl` commands, `ioctl(TIOCSTI)` and
///    `ioctl(TIOCLINUX)`, `socketpair` of any type but `SOCK_STREAM`.
///
/// The kernel runs every filter and the last installed wins between two errors, so a call
/// both filters reject answers `EPERM`. `clone3` is in neither: it answers `ENOSYS`, because
/// its flags are in memory seccomp cannot read, and glibc then falls back to `clone`.
///
/// # Errors
/// [`SandboxError::Setup`] if a filter cannot be compiled for this architecture.
pub fn seccomp_filters(own_pid: u32) -> Result<Vec<BpfProgram>, SandboxError> {
    let own = u64::from(own_pid);
    let mut allowed: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED_SYSCALLS
        .iter()
        .map(|sys| (*sys, Vec::new()))
        .collect();
    #[allow(clippy::useless_conversion)] // `Ioctl` is `c_ulong` or `c_int` by platform
    let ioctls: Vec<u64> = [
        libc::FIONBIO,
        libc::FIOCLEX,
        libc::FIONCLEX,
        libc::FIONREAD,
        libc::TCGETS,
        libc::TIOCGWINSZ,
    ]
    .iter()
    .map(|c| u64::from(*c as u32))
    .collect();
    allowed.insert(libc::SYS_ioctl, any_of(1, &ioctls)?);
    allowed.insert(libc::SYS_fcntl, any_of(1, &values(FCNTL_ALLOWED))?);
    allowed.insert(
        libc::SYS_prctl,
        any_of(
            0,
            &values(&[
                libc::PR_SET_NAME,
                libc::PR_GET_NAME,
                libc::PR_SET_VMA,
                libc::PR_SET_NO_NEW_PRIVS,
                libc::PR_GET_NO_NEW_PRIVS,
            ]),
        )?,
    );
    // Only connected stream pairs: an unconnected datagram socket could `sendto` any named
    // socket its user may write to (`/dev/log`), which Landlock does not mediate.
    let socket_type = SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK);
    allowed.insert(
        libc::SYS_socketpair,
        vec![rule(vec![
            cond(0, SeccompCmpOp::Eq, values(&[libc::AF_UNIX])[0])?,
            cond(1, socket_type.clone(), values(&[libc::SOCK_STREAM])[0])?,
        ])?],
    );

    let mut refused: BTreeMap<i64, Vec<SeccompRule>> = REFUSED_SYSCALLS
        .iter()
        .map(|sys| (*sys, Vec::new()))
        .collect();
    refused.insert(
        libc::SYS_kill,
        vec![rule(vec![cond(0, SeccompCmpOp::Ne, own)?])?],
    );
    refused.insert(
        libc::SYS_tgkill,
        vec![rule(vec![cond(0, SeccompCmpOp::Ne, own)?])?],
    );
    refused.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![
            cond(0, SeccompCmpOp::Ne, 0)?,
            cond(0, SeccompCmpOp::Ne, own)?,
        ])?],
    );
    refused.insert(
        libc::SYS_clone,
        vec![rule(vec![cond(
            0,
            SeccompCmpOp::MaskedEq(u64::from(libc::CLONE_THREAD as u32)),
            0,
        )?])?],
    );
    refused.insert(libc::SYS_fcntl, any_of(1, &values(FCNTL_SIGNALLING))?);
    refused.insert(
        libc::SYS_socketpair,
        values(&[
            libc::SOCK_DGRAM,
            libc::SOCK_RAW,
            libc::SOCK_RDM,
            libc::SOCK_SEQPACKET,
            SOCK_PACKET,
        ])
        .into_iter()
        .map(|t| rule(vec![cond(1, socket_type.clone(), t)?]))
        .collect::<Result<_, _>>()?,
    );
    #[allow(clippy::useless_conversion)]
    let ioctls: Vec<u64> = [libc::TIOCSTI, libc::TIOCLINUX]
        .iter()
        .map(|c| u64::from(*c as u32))
        .collect();
    refused.insert(libc::SYS_ioctl, any_of(1, &ioctls)?);
    Ok(vec![
        compile(
            allowed,
            SeccompAction::Errno(libc::ENOSYS as u32),
            SeccompAction::Allow,
        )?,
        compile(
            refused,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
        )?,
    ])
}

/// A process confined by [`enter`], holding its chaincode executable open.
#[derive(Debug)]
pub struct Confined {
    /// What is in force.
    pub protections: Protections,
    program: std::fs::File,
    path: PathBuf,
}

impl Confined {
    /// Replaces this process with the chaincode (`execveat` of the descriptor opened before
    /// the user switch, so the executable's directories need not be searchable by the
    /// sandbox user; it must be executable by it). The environment is kept. Returns only on
    /// failure.
    pub fn exec(self, args: &[String]) -> SandboxError {
        let fail =
            |e: &dyn std::fmt::Display| setup("exec", format!("{}: {e}", self.path.display()));
        let mut argv = vec![match CString::new(self.path.as_os_str().as_bytes()) {
            Ok(a) => a,
            Err(e) => return fail(&e),
        }];
        for a in args {
            match CString::new(a.as_bytes()) {
                Ok(a) => argv.push(a),
                Err(e) => return fail(&e),
            }
        }
        let mut env = Vec::new();
        for (k, v) in std::env::vars_os() {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            match CString::new(kv) {
                Ok(kv) => env.push(kv),
                Err(e) => return fail(&e),
            }
        }
        match nix::unistd::fexecve(self.program.as_fd(), &argv, &env) {
            Err(e) => fail(&e),
            Ok(never) => match never {},
        }
    }
}

/// Confines the current process for `program`: closes inherited descriptors, opens
/// `program`, moves into `workdir`, applies [`Limits`], an empty network namespace if
/// possible, Landlock (refused below `min_landlock`), the switch to `user` when running as
/// root, `SIGKILL` when its parent (the peer's thread that started it) ends
/// (`PR_SET_PDEATHSIG`), then the seccomp filters (last, because they forbid `unshare` and `setresuid`).
/// Call [`Confined::exec`] next.
///
/// # Errors
/// [`SandboxError::Setup`] when a mandatory protection (limits, user switch as root,
/// seccomp) cannot be set up, Landlock is below `min_landlock`, or `program`/`workdir` cannot
/// be opened.
pub fn enter(
    workdir: &Path,
    program: &Path,
    limits: &Limits,
    user: SandboxUser,
    min_landlock: LandlockLevel,
) -> Result<Confined, SandboxError> {
    // The peer that started this process: the chaincode must not outlive it (below).
    let peer = nix::unistd::getppid();
    close_inherited_fds()?;
    let file = std::fs::File::open(program)
        .map_err(|e| setup("program", format!("{}: {e}", program.display())))?;
    std::env::set_current_dir(workdir).map_err(|e| setup("chdir", e))?;
    apply_limits(limits)?;
    let as_root = nix::unistd::geteuid().is_root();
    // The user the chaincode runs as, outside any user namespace entered below.
    let outer_uid = nix::unistd::geteuid().as_raw();
    let network_namespace = enter_network_namespace();
    // After a new user namespace is created, so that the count is this namespace's (the
    // namespace's own ceiling is the peer's limit, taken when it is created).
    set_limit(rlimit::Resource::NPROC, limits.max_tasks)?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| setup("no_new_privs", e))?;
    // Landlock opens its paths now, as the caller: after the switch they may be unreachable.
    let landlock = restrict_file_system(workdir, program)?;
    check_landlock(landlock, min_landlock)?;
    if as_root {
        drop_privileges(user)?;
    }
    // After the user switch, which clears it; kept across `exec`. If the peer already died
    // (we were adopted), stop now.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| setup("pdeathsig", e))?;
    if nix::unistd::getppid() != peer {
        return Err(setup(
            "pdeathsig",
            "the peer that started the sandbox is gone",
        ));
    }
    for filter in seccomp_filters(std::process::id())? {
        seccompiler::apply_filter_all_threads(&filter).map_err(|e| setup("seccomp", e))?;
    }
    Ok(Confined {
        protections: Protections {
            rlimits: true,
            seccomp: true,
            network_namespace,
            landlock,
            uid: if as_root { user.uid } else { outer_uid },
        },
        program: file,
        path: program.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::{Pid, getpid, getppid};

    /// Runs `f` on a fresh thread confined by `confine`: seccomp filters and Landlock apply to
    /// the calling thread only, so the rest of this test process stays free.
    fn on_confined_thread<T: Send + 'static>(
        confine: impl FnOnce() + Send + 'static,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        std::thread::spawn(move || {
            confine();
            f()
        })
        .join()
        .unwrap()
    }

    fn errno<T>(r: std::io::Result<T>) -> Option<Errno> {
        r.err()
            .map(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
    }

    /// The filters alone, as whatever user runs the tests (root in CI, where file permissions
    /// and signal permissions would allow everything): other processes are out of reach, the
    /// calls a shim makes still work.
    #[test]
    fn seccomp_refuses_other_processes_and_allows_a_shims_calls() {
        let filters = seccomp_filters(std::process::id()).unwrap();
        let outcomes = on_confined_thread(
            move || {
                for f in &filters {
                    seccompiler::apply_filter(f).unwrap();
                }
            },
            || {
                let parent = getppid();
                let probe = |pid: Pid| kill(pid, None).err();
                let no_limit =
                    rlimit::prlimit(parent.as_raw(), rlimit::Resource::NOFILE, None, None);
                vec![
                    ("kill(parent, 0)", probe(parent), Some(Errno::EPERM)),
                    ("kill(0, 0)", probe(Pid::from_raw(0)), Some(Errno::EPERM)),
                    ("kill(-1, 0)", probe(Pid::from_raw(-1)), Some(Errno::EPERM)),
                    ("kill(self, 0)", probe(getpid()), None),
                    ("prlimit(parent)", errno(no_limit), Some(Errno::EPERM)),
                    (
                        "socket",
                        errno(std::net::TcpListener::bind("127.0.0.1:0")),
                        Some(Errno::EPERM),
                    ),
                    (
                        "spawn a process",
                        errno(std::process::Command::new("/bin/true").spawn()),
                        Some(Errno::EPERM),
                    ),
                    (
                        "spawn a thread",
                        errno(std::thread::Builder::new().spawn(|| ()).map(|t| t.join())),
                        None,
                    ),
                    (
                        "read a file",
                        errno(std::fs::read("/proc/self/status")),
                        None,
                    ),
                    (
                        "socketpair",
                        errno(std::os::unix::net::UnixStream::pair()),
                        None,
                    ),
                    (
                        "socketpair(SOCK_DGRAM)",
                        errno(std::os::unix::net::UnixDatagram::pair()),
                        Some(Errno::EPERM),
                    ),
                ]
            },
        );
        let wrong: Vec<_> = outcomes
            .iter()
            .filter(|(_, got, want)| got != want)
            .collect();
        assert!(wrong.is_empty(), "(call, got, expected): {wrong:?}");
    }

    /// Landlock alone, as whatever user runs the tests: a world-readable file outside the
    /// working directory cannot be read, the working directory can be written, the system
    /// libraries read.
    #[test]
    fn landlock_reads_only_the_chaincodes_own_files() {
        let work = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let secret = elsewhere.path().join("priv_sk");
        std::fs::write(&secret, b"key").unwrap();
        let program = std::env::current_exe().unwrap();
        let (workdir, program_copy) = (work.path().to_path_buf(), program.clone());
        let outcome = on_confined_thread(
            move || {
                let status = restrict_file_system(&workdir, &program_copy).unwrap();
                assert_ne!(status, LandlockLevel::None);
            },
            {
                let workdir = work.path().to_path_buf();
                let secret = secret.clone();
                move || {
                    (
                        errno(std::fs::read(&secret)),
                        errno(std::fs::read_dir(secret.parent().unwrap())),
                        errno(std::fs::write(workdir.join("scratch"), b"ok")),
                        errno(std::fs::read(workdir.join("scratch"))),
                        errno(std::fs::read(&program)),
                        errno(std::fs::read("/etc/ld.so.cache")),
                        errno(std::fs::read_dir("/usr/lib")),
                        errno(std::fs::write(secret.with_extension("new"), b"x")),
                    )
                }
            },
        );
        if landlock_unsupported() {
            eprintln!("skipping: this kernel has no Landlock");
            return;
        }
        assert_eq!(
            outcome,
            (
                Some(Errno::EACCES),
                Some(Errno::EACCES),
                None,
                None,
                None,
                None,
                None,
                Some(Errno::EACCES)
            )
        );
    }

    fn landlock_unsupported() -> bool {
        std::thread::spawn(|| {
            let dir = tempfile::tempdir().unwrap();
            restrict_file_system(dir.path(), &std::env::current_exe().unwrap()).unwrap()
                == LandlockLevel::None
        })
        .join()
        .unwrap()
    }

    #[test]
    fn the_report_names_every_protection() {
        let p = Protections {
            rlimits: true,
            seccomp: true,
            network_namespace: false,
            landlock: LandlockLevel::Full,
            uid: 65534,
        };
        assert_eq!(
            p.report(),
            "medledger-sandbox: protections rlimits=on seccomp=on netns=off landlock=full uid=65534"
        );
        assert_eq!(p.report().parse::<Protections>().unwrap(), p);
    }

    #[test]
    fn landlock_below_the_minimum_is_refused() {
        use LandlockLevel::{Full, None, Partial};
        let levels = [None, Partial, Full];
        for status in levels {
            for min in levels {
                let checked = check_landlock(status, min);
                assert_eq!(checked.is_ok(), status >= min, "{status} against {min}");
                if let Err(e) = checked {
                    let e = e.to_string();
                    assert!(
                        e.contains(&format!("Landlock {status}")) && e.contains("min_landlock"),
                        "{e}"
                    );
                }
            }
        }
        assert_eq!(LandlockLevel::default(), Full);
        assert_eq!("partial".parse::<LandlockLevel>(), Ok(Partial));
        assert!("some".parse::<LandlockLevel>().is_err());
    }

    /// Issue 13 review L1: the peer checks the report itself.
    #[test]
    fn the_peer_checks_the_report_against_its_minimum() {
        let line = |fields: &str| format!("{REPORT_PREFIX} {fields}");
        let ok = "rlimits=on seccomp=on netns=on landlock=partial uid=65534";
        assert_eq!(
            check_report(&line(ok), LandlockLevel::Partial)
                .unwrap()
                .landlock,
            LandlockLevel::Partial
        );
        let refusals = [
            (ok, LandlockLevel::Full, "landlock=partial"),
            (
                "rlimits=on seccomp=off netns=on landlock=full uid=65534",
                LandlockLevel::None,
                "seccomp=off",
            ),
            (
                "rlimits=on seccomp=on netns=on landlock=full uid=0",
                LandlockLevel::None,
                "uid=0",
            ),
            (
                "rlimits=on seccomp=on netns=on landlock=full",
                LandlockLevel::None,
                "uid missing",
            ),
            (
                "rlimits=on seccomp=on netns=on landlock=full uid=1 landlock=none",
                LandlockLevel::None,
                "repeated",
            ),
            (
                "rlimits=on seccomp=on netns=on landlock=most uid=1",
                LandlockLevel::None,
                "unknown Landlock level",
            ),
        ];
        for (fields, min, why) in refusals {
            let e = check_report(&line(fields), min).unwrap_err().to_string();
            assert!(e.contains(why), "{fields}: {e}");
        }
        let refused = "medledger-sandbox: refusing to run unconfined: sandbox: landlock: ...";
        assert_eq!(
            check_report(refused, LandlockLevel::None)
                .unwrap_err()
                .to_string(),
            refused
        );
    }

    /// Issue 13 review L4: above the hard limit, the task limit is lowered to it (once, at
    /// runtime creation) rather than refused at every launch.
    #[test]
    fn the_task_limit_is_kept_within_the_hard_limit() {
        assert_eq!(clamp_max_tasks(4096, 1024, false), 1024);
        assert_eq!(clamp_max_tasks(4096, 1024, true), 4096);
        assert_eq!(clamp_max_tasks(100, 1024, false), 100);
        let hard = rlimit::getrlimit(rlimit::Resource::NPROC).unwrap().1;
        let (tasks, lowered) = max_tasks_within_hard_limit(u64::MAX);
        // An unlimited hard limit (RLIM_INFINITY, common in containers) lowers nothing.
        if can_raise_hard_limits() || hard == u64::MAX {
            assert_eq!((tasks, lowered), (u64::MAX, None));
        } else {
            assert_eq!((tasks, lowered), (hard, Some(hard)));
        }
    }

    /// Review of the sandbox merge, M-A: a range that holds a user or group of the host, or a
    /// subordinate id of one (rootless containers), is refused: the peer would kill their
    /// processes at start and share ids with them.
    #[test]
    fn a_uid_range_must_be_unused_on_the_host() {
        let etc = tempfile::tempdir().unwrap();
        let write = |f: &str, text: &str| std::fs::write(etc.path().join(f), text).unwrap();
        write(
            "passwd",
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        );
        write("group", "root:x:0:\nstaff:x:5000:\n");
        write("subuid", "alice:100000:65536\n");
        write("subgid", "alice:300000:65536\n");
        let range = |start, count| UidRange { start, count };
        for (bad, what) in [
            (range(990, 20), "passwd"),
            (range(4999, 2), "group"),
            (range(150_000, 10), "subuid"),
            (range(290_000, 10_001), "subgid"),
        ] {
            let e = bad.check_unused(etc.path()).unwrap_err().to_string();
            assert!(e.contains(what), "{bad:?}: {e}");
        }
        assert!(range(1_900_000_000, 100).check_unused(etc.path()).is_ok());
        assert!(range(200_000, 100).check_unused(etc.path()).is_ok());
        // Missing files are skipped.
        let empty = tempfile::tempdir().unwrap();
        assert!(range(1000, 1).check_unused(empty.path()).is_ok());
    }

    #[test]
    fn uid_ranges() {
        let r = UidRange {
            start: 100,
            count: 2,
        };
        assert!(r.validate().is_ok());
        assert_eq!(r.user(1), Some(SandboxUser { uid: 101, gid: 101 }));
        assert_eq!(r.user(2), None);
        assert!(r.contains(100) && r.contains(101) && !r.contains(99) && !r.contains(102));
        for bad in [(0, 1), (1, 0), (u32::MAX, 2), (60000, 10000), (65535, 1)] {
            let r = UidRange {
                start: bad.0,
                count: bad.1,
            };
            assert!(r.validate().is_err(), "{r:?}");
        }
    }

    /// Issue 13 review M3: leftovers of a peer that died are killed at the next start, by
    /// their user (ids set aside for chaincode).
    #[test]
    fn processes_of_the_chaincode_ids_are_swept() {
        use std::os::unix::process::CommandExt;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: only root can start a process as another user");
            return;
        }
        let range = UidRange {
            start: 4_200_100,
            count: 3,
        };
        let mut left = std::process::Command::new("/bin/sleep")
            .arg("300")
            .uid(4_200_102)
            .gid(4_200_102)
            .spawn()
            .unwrap();
        let mut other = std::process::Command::new("/bin/sleep")
            .arg("300")
            .uid(4_200_103)
            .gid(4_200_103)
            .spawn()
            .unwrap();
        // Until the child has switched user (`spawn` returns after its `exec`).
        assert!(kill_processes_of(range).unwrap() >= 1);
        let status = left.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(other.try_wait().unwrap().is_none(), "outside the range");
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn root_is_never_the_sandbox_user() {
        for user in [
            SandboxUser { uid: 0, gid: 65534 },
            SandboxUser { uid: 65534, gid: 0 },
        ] {
            assert!(drop_privileges(user).is_err());
        }
    }
}
