//! One transaction's whole path on a peer: a KV contract written with Medledger's shim runs in
//! the sandbox (real `medledger-sandbox` + `kv-chaincode` processes), the endorser simulates it
//! over the RocksDB ledger and signs, the transaction is assembled as Fabric does, signed by
//! the client, put in a block signed by the BFT consenters, and committed by the committer;
//! then a read carries the committed version in its read-write set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use medledger_channel::block;
use medledger_channel::testing::TestChannel;
use medledger_channel::tx::assemble_transaction;
use medledger_endorser::RuntimeExecutor;
use medledger_endorser::{Endorser, EndorserConfig, MemoryTransientStore};
use medledger_ledger::{Ledger, LedgerConfig};
use medledger_msp::ou::NodeOu;
use medledger_peer::committer::Committer;
use medledger_peer::definitions::{ChaincodeDefinition, InMemoryDefinitions};
use medledger_peer::endorsement::PeerChannelContext;
use medledger_proto::kvrwset::KvrwSet;
use medledger_proto::protos::{ChaincodeAction, ProposalResponsePayload, TxValidationCode};
use medledger_proto::rwset::TxReadWriteSet;
use medledger_runtime::process::{ChaincodeRuntime, InstalledChaincode, RuntimeConfig};
use prost::Message;

use crate::common;

fn rwset(resp: &medledger_proto::protos::ProposalResponse) -> KvrwSet {
    let prp = ProposalResponsePayload::decode(resp.payload.as_slice()).unwrap();
    let action = ChaincodeAction::decode(prp.extension.as_slice()).unwrap();
    let rw = TxReadWriteSet::decode(action.results.as_slice()).unwrap();
    KvrwSet::decode(rw.ns_rwset[0].rwset.as_slice()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_contract_endorsed_in_the_sandbox_then_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ch = TestChannel::new("ehr", 1, 4);
    let peer_id = Arc::new(ch.orgs[0].identity("peer0", NodeOu::Peer, &[]));
    let client = ch.orgs[0].identity("app1", NodeOu::Client, &[]);

    // Ledger + committer, joined from the genesis block.
    let ledger = Arc::new(
        Ledger::open(
            &dir.path().join("ledger"),
            &"ehr".parse().unwrap(),
            &LedgerConfig::default(),
        )
        .unwrap(),
    );
    let genesis = ch.config.config_block(0, &[], SystemTime::now());
    let definitions = Arc::new(InMemoryDefinitions::new());
    definitions.insert(ChaincodeDefinition::with_default_policy("kv"));
    let committer = Arc::new(
        Committer::new(
            ledger.clone(),
            Some(&genesis),
            definitions.clone(),
            "Org1MSP".parse().unwrap(),
        )
        .unwrap(),
    );

    // Endorser running the KV contract in the sandbox.
    let mut rt = RuntimeConfig::new(
        common::sibling("medledger-sandbox"),
        dir.path().join("chaincode"),
    );
    rt.execution_timeout = std::time::Duration::from_secs(10);
    let installed: HashMap<String, InstalledChaincode> = [(
        "kv".to_owned(),
        InstalledChaincode {
            id: "kv:1.0".into(),
            executable: common::sibling("kv-chaincode"),
        },
    )]
    .into_iter()
    .collect();
    let executor = Arc::new(RuntimeExecutor::new(ChaincodeRuntime::new(rt), installed));
    let endorser = Endorser::new(
        peer_id,
        executor.clone(),
        Arc::new(MemoryTransientStore::default()),
        EndorserConfig::default(),
    );
    endorser.add_channel(
        "ehr".parse().unwrap(),
        Arc::new(PeerChannelContext::new(
            committer.clone(),
            definitions,
            "Org1MSP".parse().unwrap(),
        )),
    );

    let propose = |args: &[&str]| {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        medledger_gateway::proposal::build_proposal(&client, "ehr", "kv", &args, &BTreeMap::new())
            .unwrap()
    };

    // put k = v1: endorse, assemble, sign, order (block 1), commit.
    let p1 = propose(&["put", "k", "v1"]);
    let r1 = endorser.process_proposal(p1.signed.clone()).await;
    assert_eq!(
        r1.response.as_ref().unwrap().status,
        200,
        "{:?}",
        r1.response
    );
    let e = r1.endorsement.clone().unwrap();
    ch.config
        .msps()
        .verify(
            &e.endorser,
            &[r1.payload.clone(), e.endorser.clone()].concat(),
            &e.signature,
            SystemTime::now(),
        )
        .expect("the endorsement verifies under the channel MSPs");
    assert_eq!(rwset(&r1).writes[0].value, b"v1");
    let mut env = assemble_transaction(&p1.signed, &[r1]).unwrap();
    env.signature = client.sign(&env.payload).unwrap();
    let prev = block::header_hash(genesis.header.as_ref().unwrap());
    let b1 = medledger_peer::testing::signed_block(&ch, 1, &prev, &[env], &[1, 2, 3]);
    let summary = committer
        .commit_block(b1.clone(), &Default::default())
        .unwrap();
    assert_eq!(summary.codes, vec![TxValidationCode::Valid]);
    let v = ledger.get_state("kv", "k").unwrap().unwrap();
    assert_eq!(
        (v.value.as_slice(), v.version.block_num, v.version.tx_num),
        (b"v1".as_slice(), 1, 0)
    );
    assert_eq!(
        ledger
            .tx_validation_code(&p1.tx_id.parse().unwrap())
            .unwrap(),
        Some(TxValidationCode::Valid)
    );

    // A read now records the committed version (1, 0) in its read-write set.
    let r2 = endorser
        .process_proposal(propose(&["get", "k"]).signed)
        .await;
    assert_eq!(r2.response.as_ref().unwrap().payload, b"v1");
    let reads = rwset(&r2).reads;
    let ver = reads[0].version.unwrap();
    assert_eq!(
        (reads[0].key.as_str(), ver.block_num, ver.tx_num),
        ("k", 1, 0)
    );

    // The same proposal again is refused: its tx_id is committed.
    let again = endorser.process_proposal(p1.signed).await;
    assert!(
        again
            .response
            .unwrap()
            .message
            .contains("duplicate transaction")
    );
    executor.runtime().shutdown().await;
}
