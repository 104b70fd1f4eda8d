//! Paths around consent, tried as a hostile user on the whole-network harness (ADR 0037; issue
//! 13 items 3 and 4), moved from `network/cli/tests/it/phi_paths_network.rs` (issue 15 item
//! 5; the private-data pull of item 1, which needs `ca serve` and the peer's TLS listener,
//! stays there):
//!
//! - evaluate-only functions: `ReadRecord` (its response is PHI) cannot be endorsed for
//!   ordering, neither through the gateway as `ehr:ReadRecord` or under a second chaincode
//!   name in the header extension (both passed on 4436d0b), nor by a client that calls
//!   `Endorser.ProcessProposal` itself (the peer signed the PHI on 4436d0b): the endorser
//!   returns the response without an endorsement, so no transaction can carry it.
//! - transient PHI: `CreateRecord` with the resource in the transient map and no endorsing
//!   organizations named goes only to the custodian collection's members; Org2's peer never
//!   receives the proposal (the proposals its Endorser service received stay the same). On
//!   4436d0b the gateway's plan sent it to Org2's endorser too.

use std::collections::BTreeMap;

use ehr_chaincode::model::Purpose;
use medledger_gateway::GatewayError;
use medledger_gateway::proposal::build_proposal;
use medledger_harness::Harness;
use medledger_msp::crypto::SigningKey;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::{ChannelHeader, Header};
use medledger_proto::gateway::EndorseRequest;
use medledger_proto::gateway::gateway_client::GatewayClient;
use medledger_proto::protos::endorser_client::EndorserClient;
use medledger_proto::protos::{
    ChaincodeHeaderExtension, ChaincodeId, Proposal, SignedProposal, TxValidationCode,
};
use prost::Message;

use crate::common::{DevNetwork, client, dev_network, first_record};

/// Org1 (the custodian), Org2 (the lab).
const ORG1: usize = 0;
const ORG2: usize = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phi_paths_around_consent_are_closed() {
    let net = Harness::builder().orgs(2).build().unwrap().serve().unwrap();
    // As `network up` and `ehr import`: governance founded by both MSP admins, Org1's
    // pseudonym key, a Synthea patient imported by Org1's admin.
    let dev = dev_network(&net).await;
    // The ledger names the patient and its records by Org1's keyed hashes (ADR 0031).
    let (patient_id, observation, record_id) = first_record(&dev, "Observation");
    let DevNetwork {
        admin, key, bundle, ..
    } = dev;
    let clear_patient_id = bundle.patient_id.clone();

    // ---- Item 3: evaluate-only functions are never endorsed for ordering ----
    // Org1's doctor: an EHR client, and the same identity to sign hand-made proposals.
    let doctor_id = net
        .client(ORG1, "org1-doctor", &[("ehr.role", "doctor")])
        .unwrap();
    let key_der = doctor_id.key().to_pkcs8_der().unwrap();
    let doctor = client(
        &net,
        ORG1,
        SigningIdentity::new(
            doctor_id.msp_id(),
            doctor_id.certificate().clone(),
            SigningKey::from_der(&key_der).unwrap(),
        )
        .unwrap(),
    );
    let read = doctor
        .read_record(&patient_id, &record_id, Purpose::Treatment)
        .await
        .unwrap();
    assert!(read.bytes == observation.bytes);
    // Through the gateway, under a contract prefix: refused before any endorser runs it.
    let err = doctor
        .contract()
        .new_proposal("ehr:ReadRecord")
        .args(&[&patient_id, &read.access_id])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GatewayError::Status { code, .. } if *code == tonic::Code::FailedPrecondition),
        "ehr:ReadRecord was endorsed for submission: {err:?}"
    );
    // Through the gateway with another chaincode named in the header extension: refused.
    let args: Vec<Vec<u8>> = ["ReadRecord", &patient_id, &read.access_id]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    let mut two_names = build_proposal(&doctor_id, "ehr", "ehr", &args, &BTreeMap::new()).unwrap();
    let mut proposal = Proposal::decode(two_names.signed.proposal_bytes.as_slice()).unwrap();
    let mut header = Header::decode(proposal.header.as_slice()).unwrap();
    let mut ch = ChannelHeader::decode(header.channel_header.as_slice()).unwrap();
    ch.extension = ChaincodeHeaderExtension {
        chaincode_id: Some(ChaincodeId {
            name: "_lifecycle".into(),
            ..Default::default()
        }),
    }
    .encode_to_vec();
    header.channel_header = ch.encode_to_vec();
    proposal.header = header.encode_to_vec();
    let bytes = proposal.encode_to_vec();
    two_names.signed = SignedProposal {
        signature: doctor_id.sign(&bytes).unwrap(),
        proposal_bytes: bytes,
    };
    let err = GatewayClient::new(net.channel(ORG1))
        .endorse(EndorseRequest {
            transaction_id: two_names.tx_id.clone(),
            channel_id: "ehr".into(),
            proposed_transaction: Some(two_names.signed),
            endorsing_organizations: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    // Straight to the custodian's endorser: the PHI comes back, unendorsed, so no
    // transaction can be assembled from it.
    let direct = build_proposal(&doctor_id, "ehr", "ehr", &args, &BTreeMap::new()).unwrap();
    let response = EndorserClient::new(net.endorser(ORG1, 0))
        .process_proposal(direct.signed.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.response.as_ref().unwrap().status, 200);
    assert!(response.response.as_ref().unwrap().payload == read.bytes);
    assert!(
        response.endorsement.is_none(),
        "the endorser signed an evaluate-only function's output"
    );

    // ---- Item 4: transient PHI goes only to members of the collections it is written to ----
    let org2_before = net.proposals(ORG2, 0);
    let mut resource: serde_json::Value = serde_json::from_slice(&observation.bytes).unwrap();
    // The sample Observation again under a new id: a record the ledger does not hold yet.
    resource["id"] = serde_json::Value::String("8f0c1a52-3d7e-4b8e-9a51-0f6c2b7d9e11".into());
    let new_record = key
        .record(
            &clear_patient_id,
            &"Observation/8f0c1a52-3d7e-4b8e-9a51-0f6c2b7d9e11"
                .parse()
                .unwrap(),
        )
        .to_string();
    let bytes = serde_json::to_vec(&resource).unwrap();
    doctor
        .reserve_records(&patient_id, &[&new_record])
        .await
        .unwrap();
    let org2_reserved = net.proposals(ORG2, 0);
    let tx = doctor
        .contract()
        .new_proposal("CreateRecord")
        .args(&[&patient_id])
        .with_transient(ehr_chaincode::TRANSIENT_RESOURCE, &bytes)
        .with_transient(
            ehr_chaincode::TRANSIENT_PATIENT,
            clear_patient_id.as_bytes(),
        )
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap();
    let (code, _) = tx.submit().await.unwrap().status().await.unwrap();
    assert_eq!(code, TxValidationCode::Valid);
    assert_eq!(
        net.proposals(ORG2, 0),
        org2_reserved,
        "Org2's endorser received a proposal carrying Org1's transient PHI"
    );
    assert!(
        org2_reserved > org2_before,
        "Org2 endorsed the reservation: its proposal count must show it"
    );
    drop((admin, doctor));
    net.stop().unwrap();
}
