//! Helpers shared by the EHR client's end-to-end tests.

use std::path::PathBuf;

use ehr_chaincode::ids::PseudonymKey;
use ehr_client::bundle::{BundleResource, PatientBundle, bundle_files, read_bundle};
use ehr_client::{EhrClient, ImportOptions, import};
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

/// What [`dev_network`] set up: both admins' clients, Org1's pseudonym key, the imported
/// bundle.
pub(crate) struct DevNetwork {
    /// `org1-admin` (NodeOU admin, `ehr.role=admin`) through Org1's gateway.
    pub(crate) admin: EhrClient,
    /// `org2-admin` (NodeOU admin, `ehr.role=admin`) through Org2's gateway.
    pub(crate) org2_admin: EhrClient,
    /// Org1's pseudonym key (ADR 0031): the ledger ids of the imported patient and records.
    pub(crate) key: PseudonymKey,
    /// The first sample Synthea bundle, imported by Org1's admin.
    pub(crate) bundle: PatientBundle,
}

/// Sets `net` (Org1 and Org2) up as `network up` and `ehr import` do a dev network: both
/// organizations' MSP admins (the dev network's `org1-admin`, `org2-admin`) found the EHR
/// governance, each approving the other's break-glass authority (ADR 0029); Org1 sets its
/// pseudonym key and imports the first sample Synthea bundle (`ehr_client::import`, the library
/// under `medledger ehr import`), every resource created. A third organization, if `net` has
/// one, is on the channel but no founder: as one that joined after `network up`.
pub(crate) async fn dev_network(net: &Served) -> DevNetwork {
    let admin = client(
        net,
        0,
        net.admin(0, "org1-admin", &[("ehr.role", "admin")])
            .unwrap(),
    );
    let org2_admin = client(
        net,
        1,
        net.admin(1, "org2-admin", &[("ehr.role", "admin")])
            .unwrap(),
    );
    let seeded = ehr_client::seed_governance(&[admin.clone(), org2_admin.clone()])
        .await
        .unwrap();
    assert_eq!(seeded, ehr_client::Seeded::Founded);
    let key = PseudonymKey::from_bytes(&[0x51; 32]).unwrap();
    assert!(admin.set_pseudonym_key(&key).await.unwrap().set);
    let file = bundle_files(&[sample_dir()]).unwrap().remove(0);
    let bundle = read_bundle(&std::fs::read(&file).unwrap()).unwrap();
    let summary = import(
        &admin,
        std::slice::from_ref(&file),
        &ImportOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    assert!(summary.is_complete(), "{summary}");
    assert_eq!(summary.resources_created, bundle.resources.len() as u64);
    DevNetwork {
        admin,
        org2_admin,
        key,
        bundle,
    }
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// The first resource of type `resource_type` (e.g. `Observation`) in `bundle`.
///
/// # Panics
/// If the bundle has none (the sample bundles have every type the tests use).
pub(crate) fn first_of(bundle: &PatientBundle, resource_type: &str) -> BundleResource {
    bundle
        .resources
        .iter()
        .find(|r| r.resource_type == resource_type)
        .unwrap()
        .clone()
}

/// The ledger ids (patient, record) and the resource of the first `resource_type` of the
/// patient [`dev_network`] imported.
pub(crate) fn first_record(
    dev: &DevNetwork,
    resource_type: &str,
) -> (String, BundleResource, String) {
    let clear = &dev.bundle.patient_id;
    let resource = first_of(&dev.bundle, resource_type);
    let record_id = dev
        .key
        .record(clear, &resource.record_id.parse().unwrap())
        .to_string();
    (dev.key.patient(clear), resource, record_id)
}

/// The highest ledger height among the network's peers.
pub(crate) fn height(net: &Served) -> u64 {
    net.with(|h| {
        h.peers()
            .into_iter()
            .map(|(org, peer)| h.ledger(org, peer).unwrap().height())
            .max()
            .unwrap()
    })
    .unwrap()
}
