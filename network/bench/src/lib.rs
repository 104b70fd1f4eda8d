//! Medledger's load generators: commands that report numbers and assert nothing.
//!
//! - [`ordering`]: the ordering benchmark behind `medledger orderer bench` (a development
//!   cluster of orderers in this process, fed by concurrent Broadcast streams).

pub mod ordering;
