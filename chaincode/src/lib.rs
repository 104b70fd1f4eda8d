//! Medledger chaincode: the Rust chaincode shim (Fabric's chaincode shim protocol,
//! `protos.ChaincodeMessage`) and contract API, and the EHR contract.
//!
//! Not built yet: see docs/ARCHITECTURE.md for the plan and the open issues for the schedule.
