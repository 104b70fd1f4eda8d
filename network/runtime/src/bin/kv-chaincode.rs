//! `kv-chaincode`: a small key-value contract written with Medledger's shim, used by the
//! runtime's tests and as an example. Besides `put`, `get`, `del` and `range`, it has
//! functions that misbehave on purpose (`connect`, `spawn`, `alloc`, `spin`, `write`,
//! `abort`, and the escape attempts `read`, `list`, `exec`, `signal`, `syscall`, `flood`,
//! `threads`, `send-dgram`, `put-many`) so tests can show the sandbox stopping them. A refused attempt answers status
//! 500 with `<what> refused: <ERRNO>: <description>`.

use std::sync::Arc;

use medledger_chaincode::{ContractError, Router, shim};

fn param<'a>(args: &'a [String], i: usize, usage: &str) -> Result<&'a str, ContractError> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| ContractError::bad_request(usage.to_owned()))
}

fn contract() -> Router {
    Router::new()
        .add("put", |stub, args| {
            let key = param(args, 0, "put KEY VALUE")?;
            let value = param(args, 1, "put KEY VALUE")?;
            stub.put_state(key, value.as_bytes())?;
            stub.set_event("put", key.as_bytes())?;
            Ok(Vec::new())
        })
        .add("get", |stub, args| {
            let key = param(args, 0, "get KEY")?;
            stub.get_state(key)?
                .ok_or_else(|| ContractError::not_found(format!("no key {key}")))
        })
        .add("del", |stub, args| {
            stub.del_state(param(args, 0, "del KEY")?)?;
            Ok(Vec::new())
        })
        .add("range", |stub, args| {
            let kvs = stub.get_state_by_range(
                param(args, 0, "range START END")?,
                param(args, 1, "range START END")?,
            )?;
            Ok(kvs
                .iter()
                .map(|kv| kv.key.as_str())
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes())
        })
        .add("connect", |_stub, args| {
            let addr = param(args, 0, "connect HOST:PORT")?;
            match std::net::TcpStream::connect(addr) {
                Ok(_) => Ok(b"connected".to_vec()),
                Err(e) => Err(ContractError::internal(format!(
                    "connect refused by sandbox: {e}"
                ))),
            }
        })
        .add("spawn", |_stub, _args| {
            // A fork bomb's first step: every attempt must fail.
            let mut failures = 0;
            for _ in 0..100 {
                if std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg("true")
                    .spawn()
                    .is_err()
                {
                    failures += 1;
                }
            }
            Err(ContractError::internal(format!(
                "spawn failed {failures} of 100 times"
            )))
        })
        .add("alloc", |_stub, _args| {
            let size = std::hint::black_box(10usize << 30);
            let big: Vec<u8> = std::hint::black_box(vec![1u8; size]);
            Ok(vec![big[std::hint::black_box(size / 2)]])
        })
        .add("spin", |_stub, _args| {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
        .add("write", |_stub, args| {
            let path = param(args, 0, "write PATH")?;
            match std::fs::write(path, b"escaped") {
                Ok(()) => Ok(b"written".to_vec()),
                Err(e) => Err(ContractError::internal(format!(
                    "write refused by sandbox: {e}"
                ))),
            }
        })
        .add("abort", |_stub, _args| std::process::abort())
        .add("whoami", |_stub, _args| {
            let uid = nix::unistd::getresuid().map_err(|e| refused("getresuid", e))?;
            let gid = nix::unistd::getresgid().map_err(|e| refused("getresgid", e))?;
            let groups = nix::unistd::getgroups().map_err(|e| refused("getgroups", e))?;
            Ok(format!(
                "uid={},{},{} gid={},{},{} groups={}",
                uid.real,
                uid.effective,
                uid.saved,
                gid.real,
                gid.effective,
                gid.saved,
                groups
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .into_bytes())
        })
        .add("read", |_stub, args| {
            std::fs::read(param(args, 0, "read PATH")?).map_err(|e| refused("read", io_errno(&e)))
        })
        .add("list", |_stub, args| {
            let dir = std::fs::read_dir(param(args, 0, "list DIR")?)
                .map_err(|e| refused("list", io_errno(&e)))?;
            let mut names: Vec<String> = dir
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(names.join(",").into_bytes())
        })
        .add("exec", |_stub, args| {
            let path = std::ffi::CString::new(param(args, 0, "exec PATH")?)
                .map_err(|_| ContractError::bad_request("exec PATH: NUL in path"))?;
            // Only returns on failure: success would replace this chaincode.
            let Err(e) = nix::unistd::execv(&path, std::slice::from_ref(&path));
            Err(refused("exec", e))
        })
        .add("signal", |_stub, args| {
            let usage = "signal parent|group SIGNUM";
            let pid = match param(args, 0, usage)? {
                "parent" => nix::unistd::getppid(),
                "group" => nix::unistd::Pid::from_raw(0),
                _ => return Err(ContractError::bad_request(usage)),
            };
            let signum: i32 = param(args, 1, usage)?
                .parse()
                .map_err(|_| ContractError::bad_request(usage))?;
            let signal = if signum == 0 {
                None
            } else {
                Some(
                    nix::sys::signal::Signal::try_from(signum)
                        .map_err(|_| ContractError::bad_request(usage))?,
                )
            };
            nix::sys::signal::kill(pid, signal)
                .map(|()| format!("signalled {pid}").into_bytes())
                .map_err(|e| refused("signal", e))
        })
        .add("syscall", |_stub, args| {
            let name = param(args, 0, "syscall NAME")?;
            let ret = escape::attempt(name).map_err(|e| refused(name, e))?;
            Ok(format!("{name} returned {ret}").into_bytes())
        })
        .add("flood", |_stub, args| {
            // Writes BYTES to stdout or stderr without a single newline.
            let usage = "flood stdout|stderr BYTES";
            let total: u64 = param(args, 1, usage)?
                .parse()
                .map_err(|_| ContractError::bad_request(usage))?;
            let chunk = vec![b'x'; 1 << 20];
            let mut out: Box<dyn std::io::Write> = match param(args, 0, usage)? {
                "stdout" => Box::new(std::io::stdout().lock()),
                "stderr" => Box::new(std::io::stderr().lock()),
                _ => return Err(ContractError::bad_request(usage)),
            };
            let mut written = 0u64;
            while written < total {
                let n = usize::try_from((total - written).min(chunk.len() as u64))
                    .unwrap_or(chunk.len());
                out.write_all(&chunk[..n])
                    .map_err(|e| refused("flood", io_errno(&e)))?;
                written += n as u64;
            }
            Ok(format!("wrote {written} bytes").into_bytes())
        })
        .add("send-dgram", |_stub, args| {
            // A datagram to a named Unix socket (e.g. /dev/log) through an unconnected socket
            // from `socketpair`, the one socket call a shim may make.
            let path = param(args, 0, "send-dgram PATH")?;
            let (a, _b) = std::os::unix::net::UnixDatagram::pair()
                .map_err(|e| refused("socketpair", io_errno(&e)))?;
            a.send_to(b"<11>forged", path)
                .map(|n| format!("sent {n} bytes").into_bytes())
                .map_err(|e| refused("send-dgram", io_errno(&e)))
        })
        .add("threads", |_stub, args| {
            // A thread bomb: COUNT threads with small stacks, all alive at once; with `hold`
            // they stay parked for the rest of the process's life (its tasks stay counted).
            let usage = "threads COUNT [hold]";
            let count: usize = param(args, 0, usage)?
                .parse()
                .map_err(|_| ContractError::bad_request(usage))?;
            let hold = match args.get(1).map(String::as_str) {
                None => false,
                Some("hold") => true,
                Some(_) => return Err(ContractError::bad_request(usage)),
            };
            let gate = Arc::new(std::sync::RwLock::new(()));
            let held = gate
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut threads = Vec::new();
            let mut failure = None;
            for _ in 0..count {
                let gate = gate.clone();
                let spawned = std::thread::Builder::new()
                    .stack_size(64 << 10)
                    .spawn(move || drop(gate.read()));
                match spawned {
                    Ok(t) => threads.push(t),
                    Err(e) => {
                        failure = Some(io_errno(&e));
                        break;
                    }
                }
            }
            let spawned = threads.len();
            if hold {
                // Never released: the parked threads live until the process ends.
                std::mem::forget(held);
                std::mem::forget(threads);
            } else {
                drop(held);
                for t in threads {
                    let _ = t.join();
                }
            }
            match failure {
                None => Ok(format!("spawned {spawned} threads").into_bytes()),
                Some(e) => Err(ContractError::internal(format!(
                    "threads refused: {e}: after {spawned} threads"
                ))),
            }
        })
        .add("put-many", |stub, args| {
            // COUNT writes of SIZE bytes each in one call.
            let usage = "put-many COUNT SIZE";
            let count: usize = param(args, 0, usage)?
                .parse()
                .map_err(|_| ContractError::bad_request(usage))?;
            let size: usize = param(args, 1, usage)?
                .parse()
                .map_err(|_| ContractError::bad_request(usage))?;
            let value = vec![b'v'; size];
            for i in 0..count {
                stub.put_state(&format!("many{i}"), &value)?;
            }
            Ok(format!("put {count}").into_bytes())
        })
}

/// `<what> refused: <ERRNO>: <description>`, the answer of a refused escape attempt.
fn refused(what: &str, e: nix::errno::Errno) -> ContractError {
    ContractError::internal(format!("{what} refused: {e}"))
}

fn io_errno(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// Raw system calls a hostile chaincode would use to reach the peer, by name. Arguments are
/// chosen so that a call the sandbox wrongly let through would still not harm the peer:
/// signal 0 (a permission probe), reads into a local buffer, zero-length writes, invalid
/// descriptors.
mod escape {
    use nix::errno::Errno;

    type Args = [libc::c_long; 6];

    #[allow(unsafe_code)]
    fn raw(nr: libc::c_long, a: Args) -> Result<libc::c_long, Errno> {
        // SAFETY: every argument is an integer or points to a live local of `attempt` sized
        // for what the kernel reads or writes there; the result is only inspected.
        let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
        if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
    }

    /// Tries the named call once and returns the kernel's answer.
    pub(crate) fn attempt(name: &str) -> Result<libc::c_long, Errno> {
        let parent = libc::c_long::from(nix::unistd::getppid().as_raw());
        let own = libc::c_long::from(nix::unistd::getpid().as_raw());
        let mut buf = [0u8; 64];
        let mut params = [0u32; 32];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: std::ptr::without_provenance_mut(0x1000),
            iov_len: buf.len(),
        };
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let sh = c"/bin/sh";
        let argv = [sh.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        let ptr = |p: *const libc::c_void| p as libc::c_long;
        let (nr, args): (libc::c_long, Args) = match name {
            "io_uring_setup" => (
                libc::SYS_io_uring_setup,
                [8, ptr(params.as_mut_ptr().cast()), 0, 0, 0, 0],
            ),
            "io_uring_enter" => (libc::SYS_io_uring_enter, [-1, 0, 0, 0, 0, 0]),
            "io_uring_register" => (libc::SYS_io_uring_register, [-1, 0, 0, 0, 0, 0]),
            "process_vm_readv" => (
                libc::SYS_process_vm_readv,
                [
                    parent,
                    ptr((&raw const local).cast()),
                    1,
                    ptr((&raw const remote).cast()),
                    1,
                    0,
                ],
            ),
            "process_vm_writev" => (
                libc::SYS_process_vm_writev,
                [
                    parent,
                    ptr((&raw const empty).cast()),
                    1,
                    ptr((&raw const empty).cast()),
                    1,
                    0,
                ],
            ),
            "pidfd_open" => (libc::SYS_pidfd_open, [parent, 0, 0, 0, 0, 0]),
            "pidfd_getfd" => (libc::SYS_pidfd_getfd, [-1, 0, 0, 0, 0, 0]),
            "pidfd_send_signal" => (libc::SYS_pidfd_send_signal, [-1, 0, 0, 0, 0, 0]),
            "ptrace" => (
                libc::SYS_ptrace,
                [
                    libc::c_long::from(libc::PTRACE_PEEKDATA),
                    parent,
                    0,
                    0,
                    0,
                    0,
                ],
            ),
            "kcmp" => (libc::SYS_kcmp, [own, parent, 0, 0, 0, 0]),
            "tkill" => (libc::SYS_tkill, [parent, 0, 0, 0, 0, 0]),
            "tgkill" => (libc::SYS_tgkill, [parent, parent, 0, 0, 0, 0]),
            "rt_sigqueueinfo" => (
                libc::SYS_rt_sigqueueinfo,
                [parent, 0, ptr(params.as_mut_ptr().cast()), 0, 0, 0],
            ),
            "fcntl_setown" => (
                libc::SYS_fcntl,
                [0, libc::c_long::from(libc::F_SETOWN), parent, 0, 0, 0],
            ),
            "ioctl_tiocsti" => (
                libc::SYS_ioctl,
                [
                    0,
                    libc::TIOCSTI as libc::c_long,
                    ptr(buf.as_ptr().cast()),
                    0,
                    0,
                    0,
                ],
            ),
            "bpf" => (libc::SYS_bpf, [0, 0, 0, 0, 0, 0]),
            "perf_event_open" => (libc::SYS_perf_event_open, [0, 0, -1, -1, 0, 0]),
            "userfaultfd" => (libc::SYS_userfaultfd, [0, 0, 0, 0, 0, 0]),
            "keyctl" => (libc::SYS_keyctl, [0, -3, 0, 0, 0, 0]),
            "add_key" => (libc::SYS_add_key, [0, 0, 0, 0, 0, 0]),
            "unshare" => (
                libc::SYS_unshare,
                [libc::c_long::from(libc::CLONE_NEWUSER), 0, 0, 0, 0, 0],
            ),
            "setns" => (libc::SYS_setns, [-1, 0, 0, 0, 0, 0]),
            "mount" => (libc::SYS_mount, [0, 0, 0, 0, 0, 0]),
            "chroot" => (libc::SYS_chroot, [0, 0, 0, 0, 0, 0]),
            "open_by_handle_at" => (libc::SYS_open_by_handle_at, [-1, 0, 0, 0, 0, 0]),
            "init_module" => (libc::SYS_init_module, [0, 0, 0, 0, 0, 0]),
            "setuid" => (libc::SYS_setuid, [0, 0, 0, 0, 0, 0]),
            "socket" => (
                libc::SYS_socket,
                [
                    libc::c_long::from(libc::AF_INET),
                    libc::c_long::from(libc::SOCK_STREAM),
                    0,
                    0,
                    0,
                    0,
                ],
            ),
            "memfd_create" => (
                libc::SYS_memfd_create,
                [ptr(c"x".as_ptr().cast()), 0, 0, 0, 0, 0],
            ),
            // Would replace this chaincode by a shell: only Landlock's execute rule is left
            // to refuse it (seccomp lets `execveat` through for the trampoline).
            "execveat" => (
                libc::SYS_execveat,
                [
                    libc::c_long::from(libc::AT_FDCWD),
                    ptr(sh.as_ptr().cast()),
                    ptr(argv.as_ptr().cast()),
                    ptr(envp.as_ptr().cast()),
                    0,
                    0,
                ],
            ),
            _ => return Err(Errno::ENOTSUP),
        };
        let result = raw(nr, args);
        // Keep the buffers alive until after the call.
        std::hint::black_box((&mut buf, &mut params, &local, &remote, &empty, &argv, &envp));
        result
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match shim::start(Arc::new(contract())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv-chaincode: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
