//! Medledger's Rust chaincode shim and contract API, in the spirit of Fabric's
//! `fabric-chaincode-go` shim and `fabric-contract-api`.
//!
//! - [`ChaincodeStub`]: what a contract sees of a transaction (world state, range and history
//!   queries, private data, key-level endorsement, events, transient data, creator).
//! - [`Chaincode`] and [`Router`]: the entry point a peer invokes, and a router from function
//!   name to handler with JSON helpers.
//! - [`shim`]: Fabric's chaincode shim protocol (`protos.ChaincodeMessage` on a bidirectional
//!   gRPC stream): as a client of the peer's `ChaincodeSupport.Register`, or as a
//!   chaincode-as-a-service server of `protos.Chaincode/Connect`. Many transactions run
//!   concurrently, keyed by (channel, tx_id); each runs on the blocking pool, so contract code
//!   is plain synchronous Rust.
//! - [`memory::MemoryStub`]: an in-memory stub to unit-test contracts.
//! - [`composite`]: Fabric's composite keys.

pub mod composite;
mod contract;
mod error;
pub mod memory;
pub mod shim;
mod stub;

pub use contract::{Chaincode, ContractError, Handler, Router, json_arg};
pub use error::{ChaincodeError, Result};
pub use stub::{ChaincodeStub, Creator, EventSlot, KeyModification, Kv, Page, TxContext};

pub use medledger_proto::protos::Response;

/// `docs/chaincode.md`, whose Rust example `cargo test --doc` compiles (`no_run`: it would
/// start the shim), so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/chaincode.md")]
pub struct ChaincodeGuide;

/// Fabric's status for a successful chaincode response.
pub const OK: i32 = 200;
/// Chaincode status at or above which Fabric does not endorse (`shim.ERRORTHRESHOLD`).
pub const ERROR_THRESHOLD: i32 = 400;
/// Fabric's status for a failed chaincode response (`shim.ERROR`).
pub const ERROR: i32 = 500;
