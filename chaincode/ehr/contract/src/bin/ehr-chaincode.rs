//! `ehr-chaincode`: the EHR contract under Medledger's chaincode shim. How it connects
//! (`CORE_CHAINCODE_ID_NAME` plus an inherited socket, a peer address, or a
//! chaincode-as-a-service listen address) is the shim's ([`medledger_chaincode::shim::start`]).
//! Logs go to stderr and never carry PHI: the contract itself does not log.

use std::sync::Arc;

use medledger_chaincode::shim;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match shim::start(Arc::new(ehr_chaincode::contract())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ehr-chaincode: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
