//! Medledger's gateway client SDK, as Fabric's client library (`fabric-gateway`): what
//! applications link to call the `gateway.Gateway` service of a peer (the service itself is
//! the crate `medledger-gateway-server`, which the peer links).
//!
//! - [`proposal`]: building and signing proposals and gateway requests (tx_id = hex(SHA-256(
//!   nonce ‖ creator)), signatures over `proposal_bytes`, `Envelope.payload`, the serialized
//!   `CommitStatusRequest` and `ChaincodeEventsRequest`, as Fabric's client does; ADR 0001).
//! - [`client`]: `Gateway::connect(identity, channel)` → `network(name)` → `contract(name)` →
//!   `submit_transaction` / `evaluate_transaction` / `new_proposal(...)` → `endorse` →
//!   `submit` → `status`, `chaincode_events`, and `block_events` (the peer's Deliver).

pub mod client;
mod errors;
pub mod proposal;

pub use errors::{GatewayError, error_details, status_with_details};

/// `docs/gateway.md`, whose Rust SDK tour `cargo test --doc` compiles (`no_run`: it needs a
/// network), so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/gateway.md")]
pub struct GatewayGuide;
