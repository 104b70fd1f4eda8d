//! Medledger's load generators: commands that report numbers and assert nothing.
//!
//! - [`ordering`]: the ordering benchmark behind `medledger orderer bench` (a development
//!   cluster of orderers in this process, fed by concurrent Broadcast streams).
//! - [`gateway`]: `medledger bench`, load on a running network measured end to end through the
//!   gateway with the Rust SDK.

pub mod gateway;
pub mod ordering;
