//! A minimal chaincode: a key-value contract with Medledger's shim, the smallest contract a
//! peer can run. Build it, then name its executable in a network configuration's `chaincodes`
//! (`{ name: minimal, executable: …/examples/minimal-chaincode }`): `medledger network up`
//! installs it on every peer, which launches it in the sandbox (docs/chaincode.md).
//!
//! ```sh
//! cargo build --release -p medledger-examples --example minimal-chaincode
//! cargo test --release -p medledger-examples        # its unit test, on MemoryLedger
//! ```

use std::sync::Arc;

use medledger_chaincode::{ContractError, Router, shim};

/// `put KEY VALUE` writes a key and emits a `put` event; `get KEY` reads it (404 if absent).
/// Status ≥ 400 goes back to the client without an endorsement; keep messages free of data.
fn contract() -> Router {
    Router::new()
        .add("put", |stub, args| {
            let [key, value] = args else {
                return Err(ContractError::bad_request("put KEY VALUE"));
            };
            stub.put_state(key, value.as_bytes())?;
            stub.set_event("put", key.as_bytes())?;
            Ok(Vec::new())
        })
        .add("get", |stub, args| {
            let [key] = args else {
                return Err(ContractError::bad_request("get KEY"));
            };
            stub.get_state(key)?
                .ok_or_else(|| ContractError::not_found("no such key"))
        })
}

/// Connects as the peer asked (the sandbox's inherited socket, `CORE_PEER_ADDRESS`, or
/// `CHAINCODE_SERVER_ADDRESS`) and serves transactions until the peer closes the stream.
fn main() -> std::process::ExitCode {
    match shim::start(Arc::new(contract())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minimal-chaincode: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use medledger_chaincode::memory::{MemoryLedger, test_context};

    use super::contract;

    /// A unit test needs no peer: `MemoryLedger` commits a transaction's writes only when it
    /// succeeds, as a peer does.
    #[test]
    fn put_then_get() {
        let ledger = MemoryLedger::new();
        let cc = contract();
        let put = ledger.invoke(&cc, test_context("tx1", &["put", "k", "v"]));
        assert_eq!(put.status, 200, "{}", put.message);
        assert_eq!(ledger.state("k").as_deref(), Some(&b"v"[..]));
        let get = ledger.invoke(&cc, test_context("tx2", &["get", "k"]));
        assert_eq!(get.payload, b"v");
        assert_eq!(
            ledger
                .invoke(&cc, test_context("tx3", &["get", "x"]))
                .status,
            404
        );
        assert_eq!(
            ledger
                .invoke(&cc, test_context("tx4", &["put", "k"]))
                .status,
            400
        );
    }
}
