//! ProcessProposal end to end (in-process chaincode over the read-write-set simulator):
//! Fabric-exact endorsement signatures and proposal hashes, read versions and sorted writes,
//! private writes only as hashes on the public side, and every refusal with Fabric's status
//! and message without invoking the chaincode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use medledger_chaincode::{ContractError, Router};
use medledger_channel::ChannelConfig;
use medledger_channel::testing::{TestChannel, TestOrg};
use medledger_endorser::{
    ChaincodeExecutor, ChannelContext, CollectionAccess, Endorser, EndorserConfig,
    InProcessExecutor, MemoryTransientStore,
};
use medledger_ledger_api::{LedgerReader, MemoryLedger, TxSimulator, Version};
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_proto::TxId;
use medledger_proto::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use medledger_proto::kvrwset::KvrwSet;
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeEvent, ChaincodeHeaderExtension, ChaincodeId, ChaincodeInput,
    ChaincodeInvocationSpec, ChaincodeProposalPayload, ChaincodeSpec, Proposal, ProposalResponse,
    ProposalResponsePayload, SignedProposal,
};
use medledger_proto::rwset::TxReadWriteSet;
use medledger_runtime::support::{ExecOutcome, ExecRequest, RuntimeError};
use prost::Message;
use sha2::{Digest, Sha256};

fn contract() -> Router {
    Router::new()
        .add("put", |stub, args| {
            let _ = stub.get_state(&args[0])?;
            stub.put_state(&args[0], args[1].as_bytes())?;
            stub.set_event("put", args[0].as_bytes())?;
            Ok(b"ok".to_vec())
        })
        .add("putmany", |stub, args| {
            for k in args.iter().rev() {
                stub.put_state(k, b"x")?;
            }
            Ok(vec![])
        })
        .add("private", |stub, args| {
            let phi = stub.transient().get("phi").cloned().unwrap_or_default();
            stub.put_private_data(&args[0], "rec1", &phi)?;
            Ok(vec![])
        })
        .add("readprivate", |stub, args| {
            Ok(stub.get_private_data(&args[0], "rec1")?.unwrap_or_default())
        })
        .add("missing", |_stub, _args| {
            Err(ContractError::not_found("no such record"))
        })
}

struct Counting {
    cc: InProcessExecutor<Router>,
    calls: AtomicUsize,
}

#[tonic::async_trait]
impl ChaincodeExecutor for Counting {
    async fn execute(
        &self,
        chaincode: &str,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut outcome = self.cc.execute(chaincode, req, sim).await?;
        // As the sandbox does: the event names the chaincode's package, not the namespace
        // (the endorser must put the namespace in the transaction).
        if let Some(e) = outcome.event.as_mut() {
            e.chaincode_id = format!("{chaincode}:1.0");
        }
        Ok(outcome)
    }
}

struct Ctx {
    config: Mutex<Arc<ChannelConfig>>,
    state: Mutex<Arc<MemoryLedger>>,
}

impl ChannelContext for Ctx {
    fn config(&self) -> Arc<ChannelConfig> {
        self.config.lock().unwrap().clone()
    }
    fn ledger(&self) -> Arc<dyn LedgerReader> {
        self.state.lock().unwrap().clone()
    }
    fn chaincode(&self, name: &str) -> Option<Vec<CollectionAccess>> {
        (name == "kv").then(|| {
            vec![
                CollectionAccess {
                    name: "Org1Private".into(),
                    member: true,
                },
                CollectionAccess {
                    name: "Org2Private".into(),
                    member: false,
                },
            ]
        })
    }
    fn height(&self) -> u64 {
        5
    }
}

struct Setup {
    ch: TestChannel,
    peer: Arc<SigningIdentity>,
    client: SigningIdentity,
    endorser: Endorser,
    exec: Arc<Counting>,
    ctx: Arc<Ctx>,
    transient: Arc<MemoryTransientStore>,
}

fn setup() -> Setup {
    let mut ch = TestChannel::new("ehr", 2, 1);
    let peer = Arc::new(ch.orgs[0].identity("peer0", NodeOu::Peer, &[]));
    let client = ch.orgs[0].identity("app1", NodeOu::Client, &[("ehr.role", "doctor")]);
    let mut state = MemoryLedger::default();
    state.put("kv", "k", b"v1", Version::new(3, 1));
    let ctx = Arc::new(Ctx {
        config: Mutex::new(Arc::new(ch.config.clone())),
        state: Mutex::new(Arc::new(state)),
    });
    let exec = Arc::new(Counting {
        cc: InProcessExecutor(contract()),
        calls: AtomicUsize::new(0),
    });
    let transient = Arc::new(MemoryTransientStore::default());
    let endorser = Endorser::new(
        peer.clone(),
        exec.clone(),
        transient.clone(),
        EndorserConfig::default(),
    );
    endorser.add_channel("ehr".parse().unwrap(), ctx.clone());
    Setup {
        ch,
        peer,
        client,
        endorser,
        exec,
        ctx,
        transient,
    }
}

struct Built {
    signed: SignedProposal,
    tx_id: String,
    header: Header,
    input: Vec<u8>,
}

fn proposal(
    creator: &SigningIdentity,
    channel: &str,
    args: &[&str],
    transient: &[(&str, &[u8])],
    ts: SystemTime,
    nonce: &[u8],
) -> Built {
    let tx_id = TxId::compute(nonce, creator.serialized()).to_string();
    let cc_id = ChaincodeId {
        name: "kv".into(),
        ..Default::default()
    };
    let header = Header {
        channel_header: ChannelHeader {
            r#type: HeaderType::EndorserTransaction as i32,
            channel_id: channel.into(),
            tx_id: tx_id.clone(),
            timestamp: Some(ts.into()),
            extension: ChaincodeHeaderExtension {
                chaincode_id: Some(cc_id.clone()),
            }
            .encode_to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
        signature_header: SignatureHeader {
            creator: creator.serialized().to_vec(),
            nonce: nonce.to_vec(),
        }
        .encode_to_vec(),
    };
    let input = ChaincodeInvocationSpec {
        chaincode_spec: Some(ChaincodeSpec {
            r#type: 0,
            chaincode_id: Some(cc_id),
            input: Some(ChaincodeInput {
                args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
                ..Default::default()
            }),
            timeout: 0,
        }),
    }
    .encode_to_vec();
    let payload = ChaincodeProposalPayload {
        input: input.clone(),
        transient_map: transient
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect(),
    };
    let proposal_bytes = Proposal {
        header: header.encode_to_vec(),
        payload: payload.encode_to_vec(),
        extension: vec![],
    }
    .encode_to_vec();
    Built {
        signed: SignedProposal {
            signature: creator.sign(&proposal_bytes).unwrap(),
            proposal_bytes,
        },
        tx_id,
        header,
        input,
    }
}

fn simple(creator: &SigningIdentity, args: &[&str]) -> Built {
    proposal(creator, "ehr", args, &[], SystemTime::now(), &rand_nonce())
}

fn rand_nonce() -> Vec<u8> {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    Sha256::digest(format!(
        "{:?}{}",
        SystemTime::now(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
    .to_vec()
}

fn refused(r: &ProposalResponse) -> String {
    let resp = r.response.as_ref().unwrap();
    assert_eq!(resp.status, 500, "{r:?}");
    assert!(r.endorsement.is_none() && r.payload.is_empty());
    resp.message.clone()
}

#[tokio::test]
async fn endorsement_is_fabric_exact() {
    let s = setup();
    let b = simple(&s.client, &["put", "k", "v2"]);
    let r = s.endorser.process_proposal(b.signed.clone()).await;
    let resp = r.response.clone().unwrap();
    assert_eq!(
        (resp.status, resp.payload.as_slice()),
        (200, b"ok".as_slice()),
        "{}",
        resp.message
    );
    let e = r.endorsement.clone().unwrap();
    assert_eq!(e.endorser, s.peer.serialized());
    // Signature over proposal_response_payload ‖ endorser, verifiable under the channel MSPs.
    let signed = [r.payload.clone(), e.endorser.clone()].concat();
    let v =
        s.ch.config
            .msps()
            .verify(&e.endorser, &signed, &e.signature, SystemTime::now())
            .unwrap();
    assert_eq!((v.msp_id(), v.node_ou()), ("Org1MSP", Some(NodeOu::Peer)));
    // proposal_hash = SHA-256(channel header ‖ signature header ‖ payload without transient).
    let prp = ProposalResponsePayload::decode(r.payload.as_slice()).unwrap();
    let mut h = Sha256::new();
    h.update(&b.header.channel_header);
    h.update(&b.header.signature_header);
    h.update(
        ChaincodeProposalPayload {
            input: b.input.clone(),
            transient_map: Default::default(),
        }
        .encode_to_vec(),
    );
    assert_eq!(prp.proposal_hash, h.finalize().to_vec());
    let action = ChaincodeAction::decode(prp.extension.as_slice()).unwrap();
    assert_eq!(action.chaincode_id.unwrap().name, "kv");
    let rw = TxReadWriteSet::decode(action.results.as_slice()).unwrap();
    assert_eq!(rw.ns_rwset.len(), 1);
    assert_eq!(rw.ns_rwset[0].namespace, "kv");
    let kv = KvrwSet::decode(rw.ns_rwset[0].rwset.as_slice()).unwrap();
    assert_eq!(kv.reads.len(), 1);
    let ver = kv.reads[0].version.unwrap();
    assert_eq!(
        (kv.reads[0].key.as_str(), ver.block_num, ver.tx_num),
        ("k", 3, 1)
    );
    assert_eq!(
        (
            kv.writes[0].key.as_str(),
            kv.writes[0].value.as_slice(),
            kv.writes[0].is_delete
        ),
        ("k", b"v2".as_slice(), false)
    );
    let ev = ChaincodeEvent::decode(action.events.as_slice()).unwrap();
    assert_eq!(
        (
            ev.chaincode_id.as_str(),
            ev.tx_id.as_str(),
            ev.event_name.as_str()
        ),
        ("kv", b.tx_id.as_str(), "put")
    );
    // Writes are sorted by key whatever order the chaincode used.
    let r = s
        .endorser
        .process_proposal(simple(&s.client, &["putmany", "c", "a", "b"]).signed)
        .await;
    let action = ChaincodeAction::decode(
        ProposalResponsePayload::decode(r.payload.as_slice())
            .unwrap()
            .extension
            .as_slice(),
    )
    .unwrap();
    let kv = KvrwSet::decode(
        TxReadWriteSet::decode(action.results.as_slice())
            .unwrap()
            .ns_rwset[0]
            .rwset
            .as_slice(),
    )
    .unwrap();
    assert_eq!(
        kv.writes.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
}

#[tokio::test]
async fn private_writes_leave_only_hashes_on_the_public_side() {
    let s = setup();
    let phi: &[u8] = br#"{"resourceType":"Observation","id":"obs-1","status":"final"}"#;
    let b = proposal(
        &s.client,
        "ehr",
        &["private", "Org1Private"],
        &[("phi", phi)],
        SystemTime::now(),
        &rand_nonce(),
    );
    let r = s.endorser.process_proposal(b.signed).await;
    assert_eq!(r.response.as_ref().unwrap().status, 200);
    assert!(
        !r.payload.windows(phi.len()).any(|w| w == phi),
        "no PHI in the proposal response"
    );
    let action = ChaincodeAction::decode(
        ProposalResponsePayload::decode(r.payload.as_slice())
            .unwrap()
            .extension
            .as_slice(),
    )
    .unwrap();
    let rw = TxReadWriteSet::decode(action.results.as_slice()).unwrap();
    let coll = &rw.ns_rwset[0].collection_hashed_rwset[0];
    assert_eq!(coll.collection_name, "Org1Private");
    let hashed =
        medledger_proto::kvrwset::HashedRwSet::decode(coll.hashed_rwset.as_slice()).unwrap();
    assert_eq!(
        hashed.hashed_writes[0].value_hash,
        Sha256::digest(phi).to_vec()
    );
    assert_eq!(
        hashed.hashed_writes[0].key_hash,
        Sha256::digest(b"rec1").to_vec()
    );
    let private = s
        .transient
        .get(&b.tx_id)
        .expect("private data in the transient store");
    let pvt = &private.ns_pvt_rwset[0].collection_pvt_rwset[0];
    assert_eq!(coll.pvt_rwset_hash, Sha256::digest(&pvt.rwset).to_vec());
    assert_eq!(
        KvrwSet::decode(pvt.rwset.as_slice()).unwrap().writes[0].value,
        phi
    );
    // A collection this peer's org is not a member of: a blind write is endorsed (as in
    // Fabric), with its hashes in the transaction and no private data kept here.
    let p = proposal(
        &s.client,
        "ehr",
        &["private", "Org2Private"],
        &[("phi", phi)],
        SystemTime::now(),
        &rand_nonce(),
    );
    let r = s.endorser.process_proposal(p.signed.clone()).await;
    assert_eq!(r.response.as_ref().unwrap().status, 200, "{r:?}");
    let action = ChaincodeAction::decode(
        ProposalResponsePayload::decode(r.payload.as_slice())
            .unwrap()
            .extension
            .as_slice(),
    )
    .unwrap();
    let rw = TxReadWriteSet::decode(action.results.as_slice()).unwrap();
    let coll = &rw.ns_rwset[0].collection_hashed_rwset[0];
    assert_eq!(coll.collection_name, "Org2Private");
    let hashed =
        medledger_proto::kvrwset::HashedRwSet::decode(coll.hashed_rwset.as_slice()).unwrap();
    assert_eq!(
        hashed.hashed_writes[0].value_hash,
        Sha256::digest(phi).to_vec()
    );
    assert!(
        s.transient.get(&p.tx_id).is_none(),
        "a non-member keeps no private data"
    );
    // Reading it is refused: only members hold it.
    let r = s
        .endorser
        .process_proposal(simple(&s.client, &["readprivate", "Org2Private"]).signed)
        .await;
    assert!(refused(&r).contains("not a member"), "{r:?}");
    // A chaincode error is returned without endorsement.
    let r = s
        .endorser
        .process_proposal(simple(&s.client, &["missing"]).signed)
        .await;
    assert_eq!(r.response.as_ref().unwrap().status, 404);
    assert!(r.endorsement.is_none());
}

#[tokio::test]
async fn bad_proposals_are_refused_before_the_chaincode_runs() {
    let mut s = setup();
    let calls = || s.exec.calls.load(Ordering::SeqCst);
    let other = s.ch.orgs[1].identity("app9", NodeOu::Client, &[]);
    let now = SystemTime::now();

    // Bad signature: signed by another identity.
    let mut b = simple(&s.client, &["put", "k", "x"]).signed;
    b.signature = other.sign(&b.proposal_bytes).unwrap();
    assert!(refused(&s.endorser.process_proposal(b).await).contains("access denied"));
    // Wrong tx_id: nonce changed after computing it.
    let mut bad = simple(&s.client, &["put", "k", "x"]);
    let mut p = Proposal::decode(bad.signed.proposal_bytes.as_slice()).unwrap();
    let mut h = Header::decode(p.header.as_slice()).unwrap();
    let mut chh = ChannelHeader::decode(h.channel_header.as_slice()).unwrap();
    chh.tx_id = "ab".repeat(32);
    h.channel_header = chh.encode_to_vec();
    p.header = h.encode_to_vec();
    bad.signed.proposal_bytes = p.encode_to_vec();
    bad.signed.signature = s.client.sign(&bad.signed.proposal_bytes).unwrap();
    assert!(
        refused(&s.endorser.process_proposal(bad.signed).await).contains("incorrectly formed txid")
    );
    // Unknown creator: an identity of an organization outside the channel.
    let mut stranger_org = TestOrg::new("Org9MSP", "org9.example.com");
    let stranger = stranger_org.identity("eve", NodeOu::Client, &[]);
    assert!(
        refused(
            &s.endorser
                .process_proposal(simple(&stranger, &["put", "k", "x"]).signed)
                .await
        )
        .contains("unknown MSP")
    );
    // Expired creator: a proposal a year and a half from now.
    let later = now + Duration::from_secs(550 * 24 * 3600);
    let b = proposal(
        &s.client,
        "ehr",
        &["put", "k", "x"],
        &[],
        later,
        &rand_nonce(),
    );
    assert!(refused(&s.endorser.process_proposal_at(b.signed, later).await).contains("expired"));
    // Wrong channel.
    let b = proposal(
        &s.client,
        "other",
        &["put", "k", "x"],
        &[],
        now,
        &rand_nonce(),
    );
    assert!(
        refused(&s.endorser.process_proposal(b.signed).await).contains("channel 'other' not found")
    );
    // Stale timestamp.
    let b = proposal(
        &s.client,
        "ehr",
        &["put", "k", "x"],
        &[],
        now - Duration::from_secs(3600),
        &rand_nonce(),
    );
    assert!(
        refused(&s.endorser.process_proposal(b.signed).await)
            .contains("away from the peer's clock")
    );
    // Replayed tx_id (already committed).
    let b = simple(&s.client, &["put", "k", "x"]);
    Arc::make_mut(&mut s.ctx.state.lock().unwrap())
        .tx_ids
        .insert(b.tx_id.clone());
    assert!(
        refused(&s.endorser.process_proposal(b.signed).await).contains("duplicate transaction")
    );
    // Revoked creator: revoke at the CA, then the channel's MSP carries the new CRL.
    let victim = s.ch.orgs[0].identity("app2", NodeOu::Client, &[]);
    let proto = s.ch.config_revoking(0, "app2");
    *s.ctx.config.lock().unwrap() = Arc::new(ChannelConfig::from_proto(proto).unwrap());
    assert!(
        refused(
            &s.endorser
                .process_proposal(simple(&victim, &["put", "k", "x"]).signed)
                .await
        )
        .contains("revoked")
    );
    // A peer identity is not a Writer.
    let peer_prop = simple(&s.peer, &["put", "k", "x"]);
    assert!(refused(&s.endorser.process_proposal(peer_prop.signed).await).contains("Writers"));
    // Garbage.
    let junk = SignedProposal {
        proposal_bytes: vec![0xff; 8],
        signature: vec![],
    };
    assert!(refused(&s.endorser.process_proposal(junk).await).contains("do not decode"));
    assert_eq!(calls(), 0, "the chaincode never ran for a refused proposal");
    // And a good one still works afterwards.
    assert_eq!(
        s.endorser
            .process_proposal(simple(&s.client, &["put", "k", "x"]).signed)
            .await
            .response
            .unwrap()
            .status,
        200
    );
    assert_eq!(s.exec.calls.load(Ordering::SeqCst), 1);
    let _ = &mut s;
}

/// Issue 13 item 3: an evaluate-only function's output is returned without an endorsement and
/// leaves nothing in the transient store, however its name is spelled (`kv:readprivate`
/// resolves to `readprivate`, as the contract router does). On 4436d0b the endorser signed it,
/// so a client calling ProcessProposal itself could have it ordered into every block store.
#[tokio::test]
async fn evaluate_only_output_is_never_endorsed() {
    let s = setup();
    let endorser = Endorser::new(
        s.peer.clone(),
        s.exec.clone(),
        s.transient.clone(),
        EndorserConfig::default(),
    )
    .with_evaluate_only(HashMap::from([(
        "kv".to_owned(),
        HashSet::from(["readprivate".to_owned(), "private".to_owned()]),
    )]));
    endorser.add_channel("ehr".parse().unwrap(), s.ctx.clone());
    let phi: &[u8] = br#"{"resourceType":"Condition","id":"c-1"}"#;
    for function in ["private", "kv:private", "a:b:private"] {
        let b = proposal(
            &s.client,
            "ehr",
            &[function, "Org1Private"],
            &[("phi", phi)],
            SystemTime::now(),
            &rand_nonce(),
        );
        let r = endorser.process_proposal(b.signed).await;
        assert_eq!(r.response.as_ref().unwrap().status, 200, "{function}");
        assert!(r.endorsement.is_none(), "{function} was endorsed");
        assert!(r.payload.is_empty(), "{function}: a payload to assemble");
        assert!(
            s.transient.get(&b.tx_id).is_none(),
            "{function}: private data kept for a transaction that must never commit"
        );
    }
    // Another function of the same chaincode is endorsed as before.
    let b = proposal(
        &s.client,
        "ehr",
        &["put", "k", "v2"],
        &[],
        SystemTime::now(),
        &rand_nonce(),
    );
    assert!(
        endorser
            .process_proposal(b.signed)
            .await
            .endorsement
            .is_some()
    );
}

/// Blocks every execution until the gate opens.
struct Gated {
    inner: Arc<Counting>,
    open: tokio::sync::watch::Receiver<bool>,
    arrived: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl ChaincodeExecutor for Gated {
    async fn execute(
        &self,
        chaincode: &str,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError> {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.clone();
        let _ = open.wait_for(|o| *o).await;
        self.inner.execute(chaincode, req, sim).await
    }
}

/// Issue 13 item 9: the Endorser gRPC service (proposals from other organizations' gateways
/// and from clients) processes at most its concurrency limit at once and refuses one more
/// with RESOURCE_EXHAUSTED before any work, as Fabric's `limits.concurrency.endorserService`.
/// Before, it had no limit: a client could hold any number of chaincode executions open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endorser_service_refuses_proposals_over_its_concurrency_limit() {
    use medledger_endorser::EndorserService;
    use medledger_proto::protos::endorser_server::Endorser as _;

    let s = setup();
    let (gate, open) = tokio::sync::watch::channel(false);
    let arrived = Arc::new(AtomicUsize::new(0));
    let endorser = Endorser::new(
        s.peer.clone(),
        Arc::new(Gated {
            inner: s.exec.clone(),
            open,
            arrived: arrived.clone(),
        }),
        s.transient.clone(),
        EndorserConfig::default(),
    );
    endorser.add_channel("ehr".parse().unwrap(), s.ctx.clone());
    let service = EndorserService::with_concurrency_limit(Arc::new(endorser), 2);
    let call = |key: &str| {
        let service = service.clone();
        let signed = simple(&s.client, &["put", key, "v"]).signed;
        tokio::spawn(async move { service.process_proposal(tonic::Request::new(signed)).await })
    };
    let held = [call("a"), call("b")];
    // Both are inside the chaincode (the gate holds them) before the third arrives.
    let started = std::time::Instant::now();
    while arrived.load(Ordering::SeqCst) < 2 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(arrived.load(Ordering::SeqCst), 2);
    let third = call("c").await.unwrap();
    let status = third.expect_err("a third proposal over a limit of 2");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("exceeding concurrency limit (2)"));
    gate.send_replace(true);
    for h in held {
        let r = h.await.unwrap().unwrap().into_inner();
        assert_eq!(r.response.unwrap().status, 200);
    }
    let after = call("d").await.unwrap().unwrap().into_inner();
    assert_eq!(after.response.unwrap().status, 200, "permits come back");
}
