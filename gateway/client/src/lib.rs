//! Medledger's gateway client SDK, as Fabric's client library (`fabric-gateway`): what
//! applications link to call the `gateway.Gateway` service of a peer (the service itself is
//! the crate `medledger-gateway-server`, which the peer links).
//!
//! - [`proposal`]: building and signing proposals and gateway requests (tx_id = hex(SHA-256(
//!   nonce ‖ creator)), signatures over `proposal_bytes`, `Envelope.payload`, the serialized
//!   `CommitStatusRequest` and `ChaincodeEventsRequest`, as DESIGN.md §2).
//! - [`client`]: `Gateway::connect(identity, channel)` → `network(name)` → `contract(name)` →
//!   `submit_transaction` / `evaluate_transaction` / `new_proposal(...)` → `endorse` →
//!   `submit` → `status`, `chaincode_events`, and `block_events` (the peer's Deliver).

pub mod client;
mod errors;
pub mod proposal;

pub use errors::{GatewayError, error_details, status_with_details};
