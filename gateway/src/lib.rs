//! Medledger gateway: Fabric's `gateway.Gateway` service (runs inside each peer) and the Rust
//! client SDK.
//!
//! Not built yet: see docs/ARCHITECTURE.md for the plan and the open issues for the schedule.
