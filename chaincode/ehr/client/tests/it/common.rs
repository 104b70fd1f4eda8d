//! Helpers shared by the EHR client's end-to-end tests.

use std::path::PathBuf;

use ehr_client::EhrClient;
use medledger_harness::Served;
use medledger_msp::identity::SigningIdentity;

/// The channel the harness runs the EHR chaincode on.
pub(crate) const CHANNEL: &str = "ehr";

/// The sample Synthea bundles (`$MEDLEDGER_EHR_BUNDLES` or `shared/data/ehr/bundles`).
pub(crate) fn sample_dir() -> PathBuf {
    ehr_client::bundle::find_sample_bundles(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("sample bundles: set MEDLEDGER_EHR_BUNDLES")
}

/// An EHR client of `identity` through organization `org`'s gateway (0: Org1, the
/// custodian; 1: Org2, the lab).
pub(crate) fn client(net: &Served, org: usize, identity: SigningIdentity) -> EhrClient {
    EhrClient::new(net.gateway(org, identity).network(CHANNEL).contract("ehr"))
}
