//! Medledger nodes and the `medledger` command line.
//!
//! Today: the certificate authority commands (`medledger ca ...`). The ledger, peer and
//! orderer arrive with their issues; see docs/ARCHITECTURE.md.

pub mod cli;
pub mod ehr_client;
