//! The orderers' refusals reach a served gateway's client with each orderer's Fabric status
//! and reason, as over processes (`network/cli/tests/it/gateway_refusals.rs`): the
//! in-process Broadcast answers what the orderer node said ([`medledger_orderer::sim::Sim::
//! broadcast`]), and nothing refused reaches a ledger.

use std::collections::BTreeMap;

use medledger_gateway::proposal::build_proposal;
use medledger_harness::{Harness, Served};
use medledger_proto::common::{Envelope, Payload, Status as FabricStatus};
use medledger_proto::gateway::gateway_client::GatewayClient;
use medledger_proto::gateway::{EndorseRequest, SubmitRequest};
use medledger_proto::protos::{ChaincodeActionPayload, Transaction, TxValidationCode};
use prost::Message;
use tonic::Code;

/// Every running peer's ledger height.
fn heights(net: &Served) -> Vec<u64> {
    net.with(|h| {
        h.peers()
            .into_iter()
            .map(|(org, peer)| h.ledger(org, peer).unwrap().height())
            .collect()
    })
    .unwrap()
}

/// Submits `envelope` through `raw` and expects the gateway's refusal: UNAVAILABLE (no
/// orderer accepted) with one detail per orderer, each the orderer's `status` and a reason
/// containing `reason`.
async fn refused(
    raw: &mut GatewayClient<tonic::transport::Channel>,
    tx_id: &str,
    envelope: Envelope,
    status: FabricStatus,
    reason: &str,
) {
    let err = raw
        .submit(SubmitRequest {
            transaction_id: tx_id.to_owned(),
            channel_id: "ehr".into(),
            prepared_transaction: Some(envelope),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let details = medledger_gateway::error_details(&err);
    let mut addresses: Vec<&str> = details.iter().map(|d| d.address.as_str()).collect();
    addresses.sort_unstable();
    assert_eq!(
        addresses,
        (1..=4)
            .map(|i| format!("orderer{i}.example.com"))
            .collect::<Vec<_>>(),
        "{details:?}"
    );
    let expected = format!(
        "received unsuccessful response from orderer: status={} info=",
        status as i32
    );
    for d in &details {
        assert!(
            d.message.starts_with(&expected) && d.message.contains(reason),
            "{:?}, expected {expected}…{reason}…",
            d.message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_unendorsed_envelopes_are_refused_with_the_orderers_reasons() {
    let net = Harness::builder().orgs(2).build().unwrap().serve().unwrap();
    let registrar = net
        .client(0, "registrar0", &[("ehr.role", "registrar")])
        .unwrap();
    let mut raw = GatewayClient::new(net.channel(0));
    // Endorsed through the gateway, then signed by its creator as the SDK does.
    let args: Vec<Vec<u8>> = ["RegisterPatient", &format!("p_{:032x}", 1)]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    let proposal = build_proposal(&registrar, "ehr", "ehr", &args, &BTreeMap::new()).unwrap();
    let endorsed = raw
        .endorse(EndorseRequest {
            transaction_id: proposal.tx_id.clone(),
            channel_id: "ehr".into(),
            proposed_transaction: Some(proposal.signed),
            endorsing_organizations: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .prepared_transaction
        .unwrap();
    let signed = |payload: Vec<u8>| Envelope {
        signature: registrar.sign(&payload).unwrap(),
        payload,
    };
    let before = heights(&net);

    // The client's signature forged after endorsement: every orderer refuses it,
    // FORBIDDEN, a bad creator signature.
    let mut forged = signed(endorsed.payload.clone());
    forged.signature[8] ^= 0x55;
    refused(
        &mut raw,
        &proposal.tx_id,
        forged,
        FabricStatus::Forbidden,
        "BadCreatorSignature",
    )
    .await;

    // The endorsements stripped, signed by its creator: BAD_REQUEST, unendorsed output is
    // not ordered.
    let mut payload = Payload::decode(endorsed.payload.as_slice()).unwrap();
    let mut transaction = Transaction::decode(payload.data.as_slice()).unwrap();
    let action = &mut transaction.actions[0];
    let mut cap = ChaincodeActionPayload::decode(action.payload.as_slice()).unwrap();
    cap.action.as_mut().unwrap().endorsements.clear();
    action.payload = cap.encode_to_vec();
    payload.data = transaction.encode_to_vec();
    refused(
        &mut raw,
        &proposal.tx_id,
        signed(payload.encode_to_vec()),
        FabricStatus::BadRequest,
        "transaction has no endorsement",
    )
    .await;
    assert_eq!(heights(&net), before, "a refused envelope reached a ledger");

    // The genuine envelope is accepted, and the network still commits.
    raw.submit(SubmitRequest {
        transaction_id: proposal.tx_id.clone(),
        channel_id: "ehr".into(),
        prepared_transaction: Some(signed(endorsed.payload.clone())),
    })
    .await
    .unwrap();
    let other = net
        .client(0, "registrar1", &[("ehr.role", "registrar")])
        .unwrap();
    let commit = net
        .gateway(0, other)
        .network("ehr")
        .contract("ehr")
        .new_proposal("RegisterPatient")
        .args(&[&format!("p_{:032x}", 2)])
        .build()
        .unwrap()
        .endorse()
        .await
        .unwrap()
        .submit()
        .await
        .unwrap();
    let (code, _) = commit.status().await.unwrap();
    assert_eq!(code, TxValidationCode::Valid);
    let first = proposal.tx_id.clone();
    let code = net
        .with(move |h| h.validation_code(0, 0, &first).unwrap())
        .unwrap();
    assert_eq!(code, Some(TxValidationCode::Valid));
    net.stop().unwrap();
}
