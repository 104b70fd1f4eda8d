//! Medledger nodes and the `medledger` command line: certificate authorities, orderers,
//! peers, whole networks (`medledger network up`), chaincode and EHR clients. See
//! docs/ARCHITECTURE.md.

pub mod cli;
