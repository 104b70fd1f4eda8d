//! `medledger`: node, operator and client command line.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = medledger_network::cli::Cli::parse();
    medledger_network::cli::init_tracing(cli.verbose);
    match medledger_network::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
