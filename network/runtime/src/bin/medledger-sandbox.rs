//! `medledger-sandbox`: the trusted trampoline the peer starts for every chaincode process.
//! It confines itself ([`medledger_runtime::sandbox::enter`]), reports the protections in
//! force on its first stderr line, then replaces itself with the chaincode executable.
//!
//! ```text
//! medledger-sandbox --workdir DIR [--max-memory-bytes N] [--max-cpu-seconds N]
//!                   [--max-open-files N] [--max-file-bytes N] [--max-tasks N] [--uid N] [--gid N]
//!                   [--min-landlock full|partial|none] -- PROGRAM [ARGS...]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use medledger_runtime::sandbox::{self, LandlockLevel, Limits, SandboxUser};

/// Confine this process, then exec a chaincode.
#[derive(Debug, Parser)]
#[command(name = "medledger-sandbox", version)]
struct Args {
    /// Private working directory (the only writable place).
    #[arg(long)]
    workdir: PathBuf,
    /// Address-space limit, bytes.
    #[arg(long, default_value_t = Limits::default().max_memory_bytes)]
    max_memory_bytes: u64,
    /// CPU-time limit, seconds.
    #[arg(long, default_value_t = Limits::default().max_cpu_seconds)]
    max_cpu_seconds: u64,
    /// Open files limit.
    #[arg(long, default_value_t = Limits::default().max_open_files)]
    max_open_files: u64,
    /// Largest file written, bytes.
    #[arg(long, default_value_t = Limits::default().max_file_bytes)]
    max_file_bytes: u64,
    /// Tasks (processes and threads) of the chaincode's user (RLIMIT_NPROC).
    #[arg(long, default_value_t = Limits::default().max_tasks)]
    max_tasks: u64,
    /// User id the chaincode runs as when started as root (never 0; ignored otherwise).
    #[arg(long, default_value_t = SandboxUser::NOBODY.uid)]
    uid: u32,
    /// Group id the chaincode runs as when started as root (never 0; ignored otherwise).
    #[arg(long, default_value_t = SandboxUser::NOBODY.gid)]
    gid: u32,
    /// The least Landlock enforcement the chaincode may run with (`full`, `partial` or
    /// `none`, as in the report); below it the chaincode is not started (exit status 3).
    #[arg(long, default_value_t = LandlockLevel::Full)]
    min_landlock: LandlockLevel,
    /// The chaincode executable and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some((program, rest)) = args.command.split_first() else {
        eprintln!("medledger-sandbox: no program given");
        return ExitCode::from(2);
    };
    let program = match std::fs::canonicalize(program) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("medledger-sandbox: {program}: {e}");
            return ExitCode::from(2);
        }
    };
    let limits = Limits {
        max_memory_bytes: args.max_memory_bytes,
        max_cpu_seconds: args.max_cpu_seconds,
        max_open_files: args.max_open_files,
        max_file_bytes: args.max_file_bytes,
        max_tasks: args.max_tasks,
    };
    let user = SandboxUser {
        uid: args.uid,
        gid: args.gid,
    };
    let confined = match sandbox::enter(&args.workdir, &program, &limits, user, args.min_landlock) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("medledger-sandbox: refusing to run unconfined: {e}");
            return ExitCode::from(3);
        }
    };
    eprintln!("{}", confined.protections.report());
    // The environment was set by the peer; exec keeps it, the limits, the user, the
    // namespaces, the Landlock domain and the seccomp filters.
    let err = confined.exec(rest);
    eprintln!("medledger-sandbox: {err}");
    ExitCode::from(126)
}
