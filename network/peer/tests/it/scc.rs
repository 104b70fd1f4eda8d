//! Fabric's query system chaincodes (`qscc`, `cscc GetChannelConfig`) through the endorser's
//! `ProcessProposal`: answers decode to Fabric's messages equal to the block store's content,
//! the channel's `Readers` guard them, bad arguments get Fabric's errors and change nothing,
//! no answer carries a private value, and a qscc "transaction" ordered anyway is
//! `INVALID_CHAINCODE`.

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use common::{CC, CHANNEL, Net, Peer};
use medledger_endorser::{ChaincodeExecutor, Endorser, EndorserConfig, MemoryTransientStore};
use medledger_gateway::proposal::build_proposal;
use medledger_gateway_server::ChaincodePolicies;
use medledger_ledger_api::{MemorySimulator, TxSimulator};
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_peer::definitions::ChaincodeDefinitions;
use medledger_peer::endorsement::PeerChannelContext;
use medledger_peer::node::DefinitionPolicies;
use medledger_peer::scc::fabric::{BlockchainInfo, Config, FabricMspConfig, MspConfig};
use medledger_peer::scc::{self, SystemChaincodes};
use medledger_peer::testing::{TxSpec, private_writes, tx_private, write};
use medledger_peer::validator::BlockPrivateData;
use medledger_proto::common::{Block, Envelope, ImplicitMetaPolicy, policy};
use medledger_proto::kvrwset::KvrwSet;
use medledger_proto::protos::{
    ChaincodeAction, ProcessedTransaction, ProposalResponse, ProposalResponsePayload,
    TxValidationCode as C,
};
use medledger_proto::rwset::TxReadWriteSet;
use medledger_runtime::support::{ExecOutcome, ExecRequest, RuntimeError};
use prost::Message;

/// Any chaincode other than the system ones: refused (none is installed here).
struct NoChaincode;

#[tonic::async_trait]
impl ChaincodeExecutor for NoChaincode {
    async fn execute(
        &self,
        chaincode: &str,
        _: ExecRequest,
        _: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError> {
        Err(RuntimeError::Launch {
            chaincode: chaincode.into(),
            message: "not installed".into(),
        })
    }
}

/// Org1's peer with a ledger of: genesis; block 1 = a valid public write and a write that
/// fails the chaincode's policy; block 2 = a private write of `SECRET` in `Org1PHI`.
struct Setup {
    net: Net,
    peer: Peer,
    scc: Arc<SystemChaincodes>,
    endorser: Endorser,
    /// tx ids: valid write, policy failure, private write.
    txs: [String; 3],
    _dir: tempfile::TempDir,
}

const SECRET: &[u8] = br#"{"resourceType":"Condition","code":"SECRET-I10"}"#;

fn setup() -> Setup {
    let mut net = Net::new();
    let signer = Arc::new(net.ch.orgs[0].identity("peer7", NodeOu::Peer, &[]));
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    peer.defs.insert(common::phi_definition());
    let put = TxSpec::kv(
        CC,
        KvrwSet {
            writes: vec![write("k1", b"public")],
            ..Default::default()
        },
    );
    let (ok, ok_id) = net.tx(&put);
    let (bad, bad_id) = net.tx_by(&put, &[&net.peer1]);
    assert_eq!(
        peer.commit(&net, &[ok, bad]).codes,
        [C::Valid, C::EndorsementPolicyFailure]
    );
    let (hashed, pvt) = private_writes("Org1PHI", vec![write("obs1", SECRET)], vec![]);
    let mut spec = TxSpec::kv(CC, KvrwSet::default());
    spec.rwsets[0].collection_hashed_rwset = vec![hashed];
    let (t, private_id) = net.tx_by(&spec, &[&net.peer1]);
    let with_data = BlockPrivateData::from([(0, tx_private(CC, vec![pvt]))]);
    assert_eq!(
        peer.commit_private(&net, &[t], &with_data).codes,
        [C::Valid]
    );
    // The private value is on this member peer's ledger, so a leak would be possible.
    assert_eq!(
        peer.ledger()
            .get_private(CC, "Org1PHI", "obs1")
            .unwrap()
            .unwrap()
            .value,
        SECRET
    );
    let scc = Arc::new(SystemChaincodes::new(Arc::new(NoChaincode)));
    scc.add_channel(peer.committer.clone());
    let endorser = Endorser::new(
        signer,
        scc.clone(),
        Arc::new(MemoryTransientStore::default()),
        EndorserConfig::default(),
    );
    endorser.add_channel(
        CHANNEL.parse().unwrap(),
        Arc::new(PeerChannelContext::new(
            peer.committer.clone(),
            peer.defs.clone() as Arc<dyn ChaincodeDefinitions>,
            "Org1MSP".parse().unwrap(),
        )),
    );
    Setup {
        net,
        peer,
        scc,
        endorser,
        txs: [ok_id, bad_id, private_id],
        _dir: dir,
    }
}

impl Setup {
    async fn call_as(&self, who: &SigningIdentity, cc: &str, args: &[&[u8]]) -> ProposalResponse {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        let p = build_proposal(who, CHANNEL, cc, &args, &BTreeMap::new()).unwrap();
        self.endorser.process_proposal(p.signed).await
    }

    /// The payload of a successful call by the channel's client.
    async fn ok(&self, cc: &str, args: &[&[u8]]) -> Vec<u8> {
        let r = self.call_as(&self.net.client, cc, args).await;
        let resp = r.response.clone().unwrap();
        assert_eq!(resp.status, 200, "{args:?}: {}", resp.message);
        // Endorsed as Fabric does, with no read and no write.
        let prp = ProposalResponsePayload::decode(r.payload.as_slice()).unwrap();
        let action = ChaincodeAction::decode(prp.extension.as_slice()).unwrap();
        let rwset = TxReadWriteSet::decode(action.results.as_slice()).unwrap();
        for ns in &rwset.ns_rwset {
            assert_eq!(
                KvrwSet::decode(ns.rwset.as_slice()).unwrap(),
                KvrwSet::default()
            );
            assert!(ns.collection_hashed_rwset.is_empty(), "{rwset:?}");
        }
        resp.payload
    }

    /// The status-500 message of a refused call by the channel's client.
    async fn err(&self, cc: &str, args: &[&[u8]]) -> String {
        let resp = self
            .call_as(&self.net.client, cc, args)
            .await
            .response
            .unwrap();
        assert_eq!(resp.status, 500, "{args:?}");
        assert!(resp.payload.is_empty());
        resp.message
    }
}

const CH: &[u8] = CHANNEL.as_bytes();

fn tx_ids(block: &Block) -> Vec<String> {
    use medledger_proto::common::{ChannelHeader, Header, Payload};
    let data = block.data.as_ref().unwrap();
    data.data
        .iter()
        .map(|e| {
            let env = Envelope::decode(e.as_slice()).unwrap();
            let p = Payload::decode(env.payload.as_slice()).unwrap();
            let h: Header = p.header.unwrap();
            ChannelHeader::decode(h.channel_header.as_slice())
                .unwrap()
                .tx_id
        })
        .collect()
}

#[tokio::test]
async fn qscc_answers_are_the_block_stores_content() {
    let s = setup();
    let ledger = s.peer.ledger();
    let height = ledger.height();
    assert_eq!(height, 3);

    let info =
        BlockchainInfo::decode(s.ok("qscc", &[b"GetChainInfo", CH]).await.as_slice()).unwrap();
    let last = ledger.block(height - 1).unwrap().unwrap();
    assert_eq!(info.height, height);
    assert_eq!(info.current_block_hash, ledger.info().current_hash.to_vec());
    assert_eq!(
        info.current_block_hash,
        medledger_channel::block::header_hash(last.header.as_ref().unwrap())
    );
    assert_eq!(
        info.previous_block_hash,
        last.header.as_ref().unwrap().previous_hash
    );
    assert_eq!(info.bootstrapping_snapshot_info, None);

    for n in 0..height {
        let stored = ledger.block(n).unwrap().unwrap();
        let by_number = s
            .ok("qscc", &[b"GetBlockByNumber", CH, n.to_string().as_bytes()])
            .await;
        assert_eq!(Block::decode(by_number.as_slice()).unwrap(), stored);
        let hash = medledger_channel::block::header_hash(stored.header.as_ref().unwrap());
        let by_hash = s.ok("qscc", &[b"GetBlockByHash", CH, &hash]).await;
        assert_eq!(by_hash, by_number);
    }
    // Fabric's block store reads math.MaxUint64 as the last block.
    let newest = s
        .ok(
            "qscc",
            &[b"GetBlockByNumber", CH, u64::MAX.to_string().as_bytes()],
        )
        .await;
    assert_eq!(Block::decode(newest.as_slice()).unwrap(), last);

    let codes = [C::Valid, C::EndorsementPolicyFailure, C::Valid];
    for (tx_id, code) in s.txs.iter().zip(codes) {
        let loc = ledger
            .tx_location(&tx_id.parse().unwrap())
            .unwrap()
            .unwrap();
        let block = ledger.block(loc.block_num).unwrap().unwrap();
        let processed = ProcessedTransaction::decode(
            s.ok("qscc", &[b"GetTransactionByID", CH, tx_id.as_bytes()])
                .await
                .as_slice(),
        )
        .unwrap();
        assert_eq!(processed.validation_code, code as i32, "{tx_id}");
        let stored = &block.data.as_ref().unwrap().data[loc.tx_num as usize];
        assert_eq!(
            processed.transaction_envelope.unwrap(),
            Envelope::decode(stored.as_slice()).unwrap()
        );
        let by_tx = s
            .ok("qscc", &[b"GetBlockByTxID", CH, tx_id.as_bytes()])
            .await;
        let by_tx = Block::decode(by_tx.as_slice()).unwrap();
        assert_eq!(by_tx, block);
        assert!(tx_ids(&by_tx).contains(tx_id));
    }
}

#[tokio::test]
async fn cscc_get_channel_config_is_fabrics_config_of_the_channel() {
    let s = setup();
    let config = s.peer.committer.config();
    let answer = Config::decode(s.ok("cscc", &[b"GetChannelConfig", CH]).await.as_slice()).unwrap();
    assert_eq!(answer, scc::fabric::fabric_config(&config));
    assert_eq!(answer.sequence, config.sequence());
    let channel = answer.channel_group.unwrap();
    let app = &channel.groups["Application"];
    let orgs: HashSet<&str> = app.groups.keys().map(String::as_str).collect();
    assert_eq!(orgs, HashSet::from(["Org1MSP", "Org2MSP"]));
    let org1 = &app.groups["Org1MSP"];
    let msp = MspConfig::decode(org1.values["MSP"].value.as_slice()).unwrap();
    let fabric = FabricMspConfig::decode(msp.config.as_slice()).unwrap();
    assert_eq!(fabric.name, "Org1MSP");
    let proto = config.to_proto();
    let org = &proto.organizations[0];
    let root = pem::parse(&fabric.root_certs[0]).unwrap();
    assert_eq!(root.tag(), "CERTIFICATE");
    assert_eq!(root.contents(), org.root_certs[0].as_slice());
    // The channel's Readers (the ACL of qscc and cscc) as Fabric's ImplicitMetaPolicy.
    let readers = app.policies["Readers"].policy.clone().unwrap();
    assert_eq!(readers.r#type, policy::PolicyType::ImplicitMeta as i32);
    let meta = ImplicitMetaPolicy::decode(readers.value.as_slice()).unwrap();
    assert_eq!(meta.sub_policy, "Readers");
    assert!(channel.groups.contains_key("Orderer"));
}

#[tokio::test]
async fn bad_arguments_get_fabrics_errors_and_change_nothing() {
    let s = setup();
    let ledger = s.peer.ledger();
    let before = (ledger.height(), ledger.content_digest().unwrap());
    let unknown_tx = "ab".repeat(32);
    let cases: Vec<(&str, Vec<&[u8]>, String)> = vec![
        ("qscc", vec![b"GetChainInfo"], "Incorrect number of arguments, 1".into()),
        (
            "qscc",
            vec![b"GetBlockByNumber", CH],
            "missing 3rd argument for GetBlockByNumber".into(),
        ),
        (
            "qscc",
            vec![b"GetChainInfo", b"no-such-channel"],
            "Invalid chain ID, no-such-channel".into(),
        ),
        (
            "qscc",
            vec![b"GetBlockByNumber", CH, b"12a"],
            r#"Failed to parse block number with error strconv.ParseUint: parsing "12a": invalid syntax"#
                .into(),
        ),
        (
            "qscc",
            vec![b"GetBlockByNumber", CH, b"-1"],
            r#"Failed to parse block number with error strconv.ParseUint: parsing "-1": invalid syntax"#
                .into(),
        ),
        (
            "qscc",
            vec![b"GetBlockByNumber", CH, b"99"],
            "Failed to get block number 99, error no such block number [99] in index".into(),
        ),
        (
            "qscc",
            vec![b"GetBlockByHash", CH, &[7u8; 32]],
            format!(
                "Failed to get block hash {}, error no such block hash [{}] in index",
                String::from_utf8_lossy(&[7u8; 32]),
                hex::encode([7u8; 32])
            ),
        ),
        (
            "qscc",
            vec![b"GetTransactionByID", CH, unknown_tx.as_bytes()],
            format!(
                "Failed to get transaction with id {unknown_tx}, error no such transaction ID [{unknown_tx}] in index"
            ),
        ),
        (
            "qscc",
            vec![b"GetTransactionByID", CH, b"not-a-tx-id"],
            "Failed to get transaction with id not-a-tx-id, error no such transaction ID [not-a-tx-id] in index"
                .into(),
        ),
        (
            "qscc",
            vec![b"GetBlockByTxID", CH, unknown_tx.as_bytes()],
            format!(
                "Failed to get block for txID {unknown_tx}, error no such transaction ID [{unknown_tx}] in index"
            ),
        ),
        (
            "qscc",
            vec![b"PutState", CH, b"x"],
            format!("access denied for [PutState][{CHANNEL}]: [Unmapped policy for qscc/PutState]"),
        ),
        ("cscc", vec![b"GetChannelConfig"], "Incorrect number of arguments, 1".into()),
        (
            "cscc",
            vec![b"GetChannelConfig", b""],
            "empty channel name provided".into(),
        ),
        (
            "cscc",
            vec![b"GetChannelConfig", b"no-such-channel"],
            "unknown channel ID, no-such-channel".into(),
        ),
        (
            "cscc",
            vec![b"JoinChain", b"block"],
            "Requested function JoinChain not found.".into(),
        ),
    ];
    for (cc, args, want) in cases {
        assert_eq!(s.err(cc, &args).await, want, "{cc} {args:?}");
    }
    assert_eq!(before, (ledger.height(), ledger.content_digest().unwrap()));
}

#[tokio::test]
async fn an_organization_outside_the_channel_is_refused() {
    let s = setup();
    // Through ProcessProposal: the endorser's creator check refuses it first.
    let r = s
        .call_as(&s.net.outsider, "qscc", &[b"GetChainInfo", CH])
        .await;
    let resp = r.response.unwrap();
    assert_eq!(resp.status, 500);
    assert!(resp.payload.is_empty() && r.endorsement.is_none());
    assert!(
        resp.message.starts_with("access denied"),
        "{}",
        resp.message
    );
    // The system chaincode's own ACL (a proposal of another channel naming this one in
    // args[1] reaches it without the endorser's check on this channel).
    for (cc, args, prefix) in [
        (
            "qscc",
            vec![b"GetChainInfo".to_vec(), CH.to_vec()],
            format!("access denied for [GetChainInfo][{CHANNEL}]: [failed evaluating policy"),
        ),
        (
            "cscc",
            vec![b"GetChannelConfig".to_vec(), CH.to_vec()],
            format!("access denied for [GetChannelConfig][{CHANNEL}]: failed evaluating policy"),
        ),
    ] {
        let p = build_proposal(
            &s.net.outsider,
            "other-channel",
            cc,
            &args,
            &BTreeMap::new(),
        )
        .unwrap();
        let req = ExecRequest {
            channel_id: "other-channel".into(),
            tx_id: p.tx_id.clone(),
            input: medledger_proto::protos::ChaincodeInput {
                args,
                ..Default::default()
            },
            proposal: Some(p.signed),
            is_init: false,
        };
        let mut sim = MemorySimulator::new(BTreeMap::new());
        let out = s.scc.execute(cc, req, &mut sim).await.unwrap();
        assert_eq!(out.response.status, 500);
        assert!(out.response.payload.is_empty());
        assert!(
            out.response.message.starts_with(&prefix),
            "{}",
            out.response.message
        );
    }
}

#[tokio::test]
async fn no_qscc_answer_carries_a_private_value() {
    let s = setup();
    let mut answers = vec![s.ok("qscc", &[b"GetChainInfo", CH]).await];
    for n in 0..s.peer.ledger().height() {
        let block = s
            .ok("qscc", &[b"GetBlockByNumber", CH, n.to_string().as_bytes()])
            .await;
        let hash = medledger_channel::block::header_hash(
            Block::decode(block.as_slice())
                .unwrap()
                .header
                .as_ref()
                .unwrap(),
        );
        answers.push(s.ok("qscc", &[b"GetBlockByHash", CH, &hash]).await);
        answers.push(block);
    }
    for tx in &s.txs {
        answers.push(
            s.ok("qscc", &[b"GetTransactionByID", CH, tx.as_bytes()])
                .await,
        );
        answers.push(s.ok("qscc", &[b"GetBlockByTxID", CH, tx.as_bytes()]).await);
    }
    answers.push(s.ok("cscc", &[b"GetChannelConfig", CH]).await);
    let hash = medledger_msp::crypto::sha256(SECRET);
    let private_tx = s
        .ok("qscc", &[b"GetTransactionByID", CH, s.txs[2].as_bytes()])
        .await;
    assert!(
        private_tx.windows(hash.len()).any(|w| w == hash),
        "the block holds the value's hash"
    );
    for a in &answers {
        assert!(
            !a.windows(SECRET.len()).any(|w| w == SECRET),
            "a private value in a qscc answer"
        );
        assert!(!a.windows(10).any(|w| w == b"SECRET-I10"));
    }
}

#[test]
fn the_gateway_only_evaluates_the_query_system_chaincodes() {
    let policies = DefinitionPolicies::new(HashMap::new(), HashMap::new());
    for (cc, f) in [
        ("qscc", "GetChainInfo"),
        ("qscc", "GetBlockByNumber"),
        ("cscc", "GetChannelConfig"),
    ] {
        assert!(policies.evaluate_only(CHANNEL, cc, f), "{cc} {f}");
    }
    assert!(!policies.evaluate_only(CHANNEL, CC, "CreateRecord"));
}

#[test]
fn a_qscc_transaction_ordered_anyway_is_invalid_chaincode() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::open(&net, dir.path(), "Org1MSP");
    let (q, _) = net.tx(&TxSpec::kv("qscc", KvrwSet::default()));
    // A chaincode writing the qscc namespace, endorsed by both organizations.
    let mut spec = TxSpec::kv(CC, KvrwSet::default());
    spec.rwsets.push(medledger_peer::testing::ns(
        "cscc",
        KvrwSet {
            writes: vec![write("k", b"v")],
            ..Default::default()
        },
    ));
    let (w, _) = net.tx(&spec);
    let (ok, _) = net.tx(&TxSpec::kv(
        CC,
        KvrwSet {
            writes: vec![write("k", b"v")],
            ..Default::default()
        },
    ));
    assert_eq!(
        peer.commit(&net, &[q, w, ok]).codes,
        [C::InvalidChaincode, C::InvalidChaincode, C::Valid]
    );
}
