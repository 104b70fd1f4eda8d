//! A seeded EHR workload for the harness: patient registrations by every organization's
//! registrar, and checks that compare peers.

use ehr_chaincode::ids::PseudonymKey;
use medledger_harness::Harness;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::protos::TxValidationCode;

/// Virtual ms a transaction is given to commit everywhere (several block timeouts and a
/// source switch or two).
pub(crate) const COMMIT_MS: u64 = 30_000;

/// A registrar of every organization, index = organization.
pub(crate) fn registrars(h: &mut Harness, orgs: usize) -> Vec<SigningIdentity> {
    (0..orgs)
        .map(|org| {
            h.client(
                org,
                &format!("registrar{org}"),
                &[("ehr.role", "registrar")],
            )
        })
        .collect()
}

/// The ledger id of patient `i` (a pseudonym, ADR 0031).
fn patient(i: usize) -> String {
    PseudonymKey::from_bytes(&[0x42; PseudonymKey::LEN])
        .unwrap()
        .patient(&format!("patient-{i}"))
}

/// Submits registrations of patients `from..to`, patient i by organization i mod n's
/// registrar; returns their tx ids.
pub(crate) fn register(
    h: &mut Harness,
    registrars: &[SigningIdentity],
    from: usize,
    to: usize,
) -> Vec<String> {
    (from..to)
        .map(|i| {
            let p = patient(i);
            h.submit(
                &registrars[i % registrars.len()],
                &["RegisterPatient", &p],
                &[],
            )
            .unwrap()
        })
        .collect()
}

/// Every running peer has the same blocks (header hashes) and the same state digest as the
/// first one, and committed every one of `tx_ids` as valid.
pub(crate) fn assert_identical(h: &Harness, tx_ids: &[String]) {
    let peers = h.peers();
    let (org0, peer0) = peers[0];
    let hashes = h.block_hashes(org0, peer0).unwrap();
    let digest = h.state_digest(org0, peer0).unwrap();
    for &(org, peer) in &peers {
        assert_eq!(
            h.block_hashes(org, peer).unwrap(),
            hashes,
            "peer {peer} of org {org}: blocks differ (SEED={})",
            h.seed()
        );
        assert_eq!(
            h.state_digest(org, peer).unwrap(),
            digest,
            "peer {peer} of org {org}: state differs (SEED={})",
            h.seed()
        );
        for tx_id in tx_ids {
            assert_eq!(
                h.validation_code(org, peer, tx_id).unwrap(),
                Some(TxValidationCode::Valid),
                "peer {peer} of org {org}: {tx_id} (SEED={})",
                h.seed()
            );
        }
    }
}
