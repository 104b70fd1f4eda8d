//! The integration tests of `ehr-chaincode`, one module per area, in one test binary: each test
//! binary links RocksDB and aws-lc, so one per crate keeps the build short (issue 15, item 5).
//! One module's tests: `cargo test --release -p ehr-chaincode --test it scenario::`.

mod common;
mod fhir_support;
mod functions;
mod ledger_ids;
mod privacy;
mod rules;
mod sample_data;
mod scenario;
