//! Examples of building on Medledger, each a file beside this crate's manifest and checked by
//! the compiler on every `cargo test --workspace`:
//!
//! - `minimal-chaincode.rs`: a key-value contract with Medledger's shim (`put`, `get`), its
//!   unit test on `MemoryLedger`, and how a peer runs it.
//! - `minimal-client.rs`: an application that signs with an MSP folder's identity and submits
//!   and evaluates through a peer's Gateway with the Rust SDK.
//!
//! `network/cli/tests/it/network_up.rs` runs both on a network started by `medledger network
//! up`. This library is empty: Cargo needs a target besides the examples.
