//! Medledger's chaincode runtime, the peer side of Fabric's chaincode shim protocol.
//!
//! - [`sandbox`]: the confinement the trusted trampoline `medledger-sandbox` applies before it
//!   `exec`s a chaincode (rlimits, own user, seccomp allow-list, network namespace, Landlock).
//! - [`process`]: launching chaincode executables in the sandbox, connected to the peer only
//!   through a socket pair inherited as standard input; restart after a crash or timeout.
//! - [`support`]: a registered chaincode connection (over that socket, or dialled for
//!   chaincode-as-a-service) and the execution of one transaction against a
//!   [`TxSimulator`](medledger_ledger_api::TxSimulator), answering the chaincode's state
//!   requests, bounded by a timeout. The simulator is the state API's (`medledger-ledger-api`);
//!   the endorser implements it over the ledger and records the read-write set.

pub mod inprocess;
pub mod process;
pub mod sandbox;
pub mod support;
