//! Medledger's gateway, as Fabric's Gateway (Fabric 2.4+): the `gateway.Gateway` service that
//! runs inside each peer, and a Rust client SDK mirroring Fabric's client API.
//!
//! - [`proposal`]: building and signing proposals and gateway requests (tx_id = hex(SHA-256(
//!   nonce ‖ creator)), signatures over `proposal_bytes`, `Envelope.payload`, the serialized
//!   `CommitStatusRequest` and `ChaincodeEventsRequest`, as DESIGN.md §2).
//! - [`client`]: `Gateway::connect(identity, channel)` → `network(name)` → `contract(name)` →
//!   `submit_transaction` / `evaluate_transaction` / `new_proposal(...)` → `endorse` →
//!   `submit` → `status`, `chaincode_events`, and `block_events` (the peer's Deliver).
//! - [`server`]: the service: endorsement planning from the chaincode's endorsement policy
//!   (and collection membership when the proposal carries transient data), endorsements from
//!   one peer per required organization with retry on another peer of the same organization,
//!   submission to every orderer (success once f+1 accept), commit status and chaincode events
//!   from the local ledger; errors as gRPC statuses with `gateway.ErrorDetail`s.

pub mod client;
mod errors;
pub mod proposal;

pub use errors::{GatewayError, error_details, status_with_details};
