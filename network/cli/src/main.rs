//! `medledger`: node, operator and client command line.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = medledger_cli::Cli::parse();
    if cli.command.prints_and_exits() {
        default_sigpipe();
    }
    medledger_cli::init_tracing(cli.verbose);
    match medledger_cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Gives SIGPIPE back its default action (end the process quietly), as Unix tools have it:
/// `medledger … | head` then stops when `head` does, instead of panicking on a write to the
/// closed pipe. Rust's runtime ignores SIGPIPE at start; servers keep that (see
/// `Command::prints_and_exits`), so a client that goes away never ends them. Sockets are
/// written with `MSG_NOSIGNAL` by the standard library either way.
fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_DFL installs no handler function; this runs once, at the start of `main`,
    // before the program starts any other thread.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
