//! Runs the unit test of `minimal-chaincode.rs`. (`cargo test` builds each example as the
//! executable a peer runs; an example marked `test = true` would be built as a test harness
//! instead, so its test runs from here.)

#[allow(dead_code)] // its `main`
#[path = "../minimal-chaincode.rs"]
mod minimal_chaincode;
