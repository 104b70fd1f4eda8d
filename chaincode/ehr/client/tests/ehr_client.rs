//! The EHR client library against the real EHR chaincode, in process but over the real path:
//! the client SDK talks gRPC to a `GatewayService`, which gets endorsements from two
//! organizations' endorsers (Org1 local, Org2 over loopback gRPC), each simulating
//! `ehr_chaincode::contract()` over its own RocksDB ledger, and submits to a stand-in orderer
//! (one consenter) that cuts blocks, signs them and has both peers' committers validate
//! (signatures, endorsement policies: channel MAJORITY, the custodian's key-level and
//! collection policies, MVCC) and commit them with the custodian's private data.
//!
//! Three real Synthea patients are imported in chunks of at most 32 KiB; every resource is
//! created, read back through the audited two-step read byte for byte, and a second import
//! skips everything. Then history, consent, audit, erasure and break-glass through the typed
//! calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ehr_chaincode::ids::{Grantee, PseudonymKey};
use ehr_chaincode::model::{ConsentStatus, EmergencyReason, Purpose, RecordStatus};
use ehr_chaincode::state_machine::AccessState;
use ehr_client::bundle::{bundle_files, chunk_resources, read_bundle};
use ehr_client::{ConsentGrant, EhrClient, EhrClientError, ImportOptions, ImportProgress, import};
use futures::StreamExt;
use medledger_channel::block;
use medledger_channel::testing::TestChannel;
use medledger_endorser::{
    Endorser, EndorserConfig, EndorserService, InProcessExecutor, MemoryTransientStore,
};
use medledger_gateway::client::Gateway;
use medledger_gateway_server::{
    ChannelGateway, CommitSource, CommitSourceError, DefaultPolicies, EndorserHandle, EventStream,
    GatewayConfig, GatewayService, OrdererEndpoint, PeerEndpoint,
};
use medledger_ledger::{Ledger, LedgerConfig};
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_msp::policy::{Policy, SignaturePolicy};
use medledger_peer::committer::Committer;
use medledger_peer::definitions::{ChaincodeDefinition, CollectionDefinition, InMemoryDefinitions};
use medledger_peer::endorsement::PeerChannelContext;
use medledger_proto::common::{ChannelHeader, Envelope, Payload, Status as FabricStatus};
use medledger_proto::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
use medledger_proto::orderer::{BroadcastResponse, DeliverResponse};
use medledger_proto::protos::TxValidationCode;
use medledger_proto::protos::endorser_client::EndorserClient;
use medledger_proto::protos::endorser_server::EndorserServer;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

const CHANNEL: &str = "ehr";
/// The three smallest sample bundles (135-149 kB, 299 resources).
const PATIENTS: [&str; 3] = [
    "fcece34f-2e51-43b5-acb0-361c3472e679",
    "53ead9ff-9ae0-432f-a314-017550d0420c",
    "68eec23c-3211-4eba-a28b-c26a2f7f49c4",
];

/// `ehr`: channel MAJORITY policy; one PHI collection per organization, its only member,
/// whose peers alone endorse its private writes (ADR 0020).
fn ehr_definition() -> ChaincodeDefinition {
    let mut def = ChaincodeDefinition::with_default_policy("ehr");
    for org in ["Org1MSP", "Org2MSP"] {
        let name = format!("{org}PHI");
        let member: SignaturePolicy = format!("'{org}.member'").parse().unwrap();
        let peer: SignaturePolicy = format!("'{org}.peer'").parse().unwrap();
        def.collections.insert(
            name.clone(),
            CollectionDefinition {
                name,
                member_orgs: member,
                endorsement_policy: Some(Policy::Signature(peer)),
                block_to_live: 0,
            },
        );
    }
    def
}

/// One organization's peer: ledger, committer, endorser, transient store.
struct Peer {
    committer: Arc<Committer>,
    endorser: Arc<Endorser>,
    transient: Arc<MemoryTransientStore>,
}

fn peer(
    identity: SigningIdentity,
    dir: &std::path::Path,
    genesis: &medledger_proto::common::Block,
) -> Peer {
    let msp = identity.msp_id().to_owned();
    let ledger =
        Arc::new(Ledger::open(&dir.join(&msp), CHANNEL, &LedgerConfig::default()).unwrap());
    let definitions = Arc::new(InMemoryDefinitions::new());
    definitions.insert(ehr_definition());
    let committer = Arc::new(
        Committer::new(
            ledger,
            Some(genesis),
            definitions.clone(),
            msp.parse().unwrap(),
        )
        .unwrap(),
    );
    let transient = Arc::new(MemoryTransientStore::default());
    let endorser = Arc::new(Endorser::new(
        Arc::new(identity),
        Arc::new(InProcessExecutor(ehr_chaincode::contract())),
        transient.clone(),
        EndorserConfig::default(),
    ));
    endorser.add_channel(
        CHANNEL.parse().unwrap(),
        Arc::new(PeerChannelContext::new(
            committer.clone(),
            definitions,
            msp.parse().unwrap(),
        )),
    );
    Peer {
        committer,
        endorser,
        transient,
    }
}

fn tx_id(env: &Envelope) -> String {
    let payload = Payload::decode(env.payload.as_slice()).unwrap();
    let header = payload.header.unwrap();
    ChannelHeader::decode(header.channel_header.as_slice())
        .unwrap()
        .tx_id
}

/// Stand-in ordering service: accepts envelopes, cuts them into blocks signed by the single
/// consenter, and has every peer commit each block with the private data its own endorser
/// kept for those transactions (as a peer takes it from its transient store). Peers are
/// given in commit order; the gateway's peer last, so that a commit status it reports holds
/// on every peer (in a real network other peers may lag: the importer retries then).
struct Orderer {
    submit: mpsc::Sender<Envelope>,
}

fn start_orderer(
    ch: Arc<TestChannel>,
    peers: Vec<(Arc<Committer>, Arc<MemoryTransientStore>)>,
    genesis_hash: Vec<u8>,
) -> Orderer {
    let (submit, mut rx) = mpsc::channel::<Envelope>(4096);
    tokio::spawn(async move {
        let mut previous = genesis_hash;
        let mut number = 1;
        while let Some(first) = rx.recv().await {
            let mut envelopes = vec![first];
            while envelopes.len() < 200 {
                match rx.try_recv() {
                    Ok(e) => envelopes.push(e),
                    Err(_) => break,
                }
            }
            let block =
                medledger_peer::testing::signed_block(&ch, number, &previous, &envelopes, &[1]);
            previous = block::header_hash(block.header.as_ref().unwrap()).to_vec();
            number += 1;
            let ids: Vec<String> = envelopes.iter().map(tx_id).collect();
            for (committer, store) in &peers {
                let private: BTreeMap<u64, _> = ids
                    .iter()
                    .enumerate()
                    .filter_map(|(i, id)| store.get(id).map(|p| (i as u64, p)))
                    .collect();
                let (committer, block) = (committer.clone(), block.clone());
                tokio::task::spawn_blocking(move || committer.commit_block(block, &private))
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
    });
    Orderer { submit }
}

#[tonic::async_trait]
impl AtomicBroadcast for Orderer {
    type BroadcastStream = ReceiverStream<Result<BroadcastResponse, tonic::Status>>;
    type DeliverStream = ReceiverStream<Result<DeliverResponse, tonic::Status>>;

    async fn broadcast(
        &self,
        request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<Self::BroadcastStream>, tonic::Status> {
        let mut input = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let submit = self.submit.clone();
        tokio::spawn(async move {
            while let Ok(Some(env)) = input.message().await {
                let status = if submit.send(env).await.is_ok() {
                    FabricStatus::Success
                } else {
                    FabricStatus::ServiceUnavailable
                };
                let resp = BroadcastResponse {
                    status: status as i32,
                    info: String::new(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }

    async fn deliver(
        &self,
        _request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<Self::DeliverStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this test"))
    }
}

/// Commit status from the gateway peer's (Org1's) ledger.
struct Commits(Arc<Committer>);

#[tonic::async_trait]
impl CommitSource for Commits {
    async fn wait_for_commit(
        &self,
        _channel: &str,
        tx_id: &str,
    ) -> Result<(TxValidationCode, u64), CommitSourceError> {
        let mut height = self.0.height();
        loop {
            if let Some(loc) = self
                .0
                .ledger()
                .tx_location(tx_id)
                .map_err(|e| CommitSourceError::Ledger(Box::new(e)))?
            {
                return Ok((loc.code, loc.block_num));
            }
            height
                .changed()
                .await
                .map_err(|_| CommitSourceError::ShuttingDown)?;
        }
    }

    async fn chaincode_events(
        &self,
        _channel: &str,
        _chaincode: &str,
        _start: Option<u64>,
    ) -> Result<EventStream, CommitSourceError> {
        Err(CommitSourceError::Ledger("not in this test".into()))
    }
}

/// Serves a tonic service on `127.0.0.1:0`; its `http://` address.
macro_rules! serve {
    ($svc:expr) => {{
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service($svc)
                .serve_with_incoming(TcpListenerStream::new(l)),
        );
        addr
    }};
}

fn lazy(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(addr.to_owned())
        .unwrap()
        .connect_lazy()
}

fn sample_dir() -> PathBuf {
    ehr_client::bundle::find_sample_bundles(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("sample bundles: set MEDLEDGER_EHR_BUNDLES")
}

struct Net {
    gateway_channel: tonic::transport::Channel,
    _dir: tempfile::TempDir,
}

impl Net {
    fn client(&self, identity: SigningIdentity) -> EhrClient {
        EhrClient::new(
            Gateway::connect(identity, self.gateway_channel.clone())
                .network(CHANNEL)
                .contract("ehr"),
        )
    }
}

async fn start(mut ch: TestChannel) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let genesis = ch.config.config_block(0, &[], SystemTime::now());
    let id1 = ch.orgs[0].identity("peer0", NodeOu::Peer, &[]);
    let id2 = ch.orgs[1].identity("peer0", NodeOu::Peer, &[]);
    let ch = Arc::new(ch);
    let org1 = peer(id1, dir.path(), &genesis);
    let org2 = peer(id2, dir.path(), &genesis);
    let org2_addr = serve!(EndorserServer::new(EndorserService::new(
        org2.endorser.clone()
    )));
    let orderer = start_orderer(
        ch.clone(),
        vec![
            (org2.committer.clone(), org2.transient.clone()),
            (org1.committer.clone(), org1.transient.clone()),
        ],
        block::header_hash(genesis.header.as_ref().unwrap()).to_vec(),
    );
    let orderer_addr = serve!(AtomicBroadcastServer::new(orderer));
    let channel = ChannelGateway {
        config: Arc::new(ch.config.clone()),
        peers: vec![
            PeerEndpoint {
                msp_id: "Org1MSP".into(),
                address: "local".into(),
                endorser: EndorserHandle::Local(org1.endorser.clone()),
            },
            PeerEndpoint {
                msp_id: "Org2MSP".into(),
                address: org2_addr.clone(),
                endorser: EndorserHandle::Remote(EndorserClient::new(lazy(&org2_addr))),
            },
        ],
        orderers: vec![OrdererEndpoint {
            address: orderer_addr.clone(),
            channel: lazy(&orderer_addr),
        }],
    };
    let svc = GatewayService::new(
        "Org1MSP",
        [(CHANNEL.to_owned(), channel)].into_iter().collect(),
        Arc::new(DefaultPolicies),
        Arc::new(Commits(org1.committer.clone())),
        GatewayConfig::default(),
    );
    let gateway_addr = serve!(svc.into_service());
    Net {
        gateway_channel: lazy(&gateway_addr),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_read_back_reimport_and_everyday_operations() {
    let mut ch = TestChannel::new(CHANNEL, 2, 1);
    let importer = ch.orgs[0].identity("importer", NodeOu::Client, &[("ehr.role", "admin")]);
    // Org1's pseudonym key (ADR 0031): the patient's certificate names its ledger id.
    let key = PseudonymKey::from_bytes(&[0x42; 32]).unwrap();
    let ledger_patient = key.patient(PATIENTS[0]);
    let patient_identity = ch.orgs[0].identity(
        "patient0",
        NodeOu::Client,
        &[("ehr.role", "patient"), ("ehr.patient_id", &ledger_patient)],
    );
    let net = start(ch).await;
    let admin = net.client(importer);
    let set = admin.set_pseudonym_key(&key).await.unwrap();
    assert!(set.set);
    // Idempotent with the same key; another key is refused (every ledger id depends on it).
    assert!(!admin.set_pseudonym_key(&key).await.unwrap().set);
    let other = PseudonymKey::from_bytes(&[0x43; 32]).unwrap();
    let err = admin.set_pseudonym_key(&other).await.unwrap_err();
    assert!(
        matches!(err, EhrClientError::Chaincode { status: 409, .. }),
        "{err}"
    );
    let record_of =
        |patient: &str, record: &str| key.record(patient, &record.parse().unwrap()).to_string();

    let dir = sample_dir();
    let files: Vec<PathBuf> = PATIENTS
        .iter()
        .map(|p| dir.join(format!("{p}.json")))
        .collect();
    assert_eq!(bundle_files(&files).unwrap(), files);
    let bundles: Vec<_> = files
        .iter()
        .map(|f| read_bundle(&std::fs::read(f).unwrap()).unwrap())
        .collect();
    let total: u64 = bundles.iter().map(|b| b.resources.len() as u64).sum();
    assert_eq!(total, 299, "the three bundles hold 299 resources");

    // First import: small chunks, so every bundle takes several proposals.
    let options = ImportOptions {
        max_chunk_bytes: 32 << 10,
        ..ImportOptions::default()
    };
    let last = Mutex::new(ImportProgress::default());
    let on_progress = |p: &ImportProgress| *last.lock().unwrap() = *p;
    let summary = import(&admin, &files, &options, &on_progress)
        .await
        .unwrap();
    assert!(summary.is_complete(), "{summary}");
    assert_eq!(summary.bundles, 3);
    assert_eq!(summary.patients_registered, 3);
    assert_eq!(summary.resources_created, total, "{summary}");
    assert_eq!(summary.resources_skipped, 0);
    // 3 registrations + per chunk a reservation and a create; each bundle took several.
    let chunks: Vec<usize> = bundles
        .iter()
        .map(|b| {
            let refs: Vec<_> = b.resources.iter().collect();
            chunk_resources(&refs, options.max_chunk_bytes, options.max_chunk_entries)
                .unwrap()
                .len()
        })
        .collect();
    assert!(chunks.iter().all(|&n| n >= 3), "{chunks:?}");
    let chunks: u64 = chunks.iter().sum::<usize>() as u64;
    assert_eq!(summary.transactions, 3 + 2 * chunks, "{summary}");
    let progress = *last.lock().unwrap();
    assert_eq!(
        (
            progress.bundles_done,
            progress.resources_seen,
            progress.resources_done
        ),
        (3, total, total)
    );

    // Every record on the ledger with the SHA-256 of the file's bytes, and every record read
    // back through RequestRecordAccess + ReadRecord byte for byte.
    for b in &bundles {
        let patient = key.patient(&b.patient_id);
        let stored = admin.all_records(&patient).await.unwrap();
        assert_eq!(stored.len(), b.resources.len());
        let by_id: BTreeMap<&str, _> = stored.iter().map(|m| (m.record_id.as_str(), m)).collect();
        for r in &b.resources {
            let m = by_id[record_of(&b.patient_id, &r.record_id).as_str()];
            assert_eq!((m.status, m.version), (RecordStatus::Active, 1));
            assert_eq!(m.sha256, r.sha256);
        }
        let reads = futures::stream::iter(&b.resources)
            .map(|r| {
                let (admin, patient) = (&admin, &patient);
                let record = record_of(&b.patient_id, &r.record_id);
                async move {
                    let read = admin
                        .read_record(patient, &record, Purpose::Treatment)
                        .await
                        .unwrap();
                    (r, read)
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        for (r, read) in reads {
            assert!(read.bytes == r.bytes, "{} differs", r.record_id);
        }
    }

    // A second import finds everything on the ledger.
    let again = import(&admin, &files, &ImportOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(again.is_complete(), "{again}");
    assert_eq!(
        (
            again.patients_registered,
            again.patients_skipped,
            again.resources_created,
            again.resources_skipped,
            again.transactions
        ),
        (0, 3, 0, total, 0),
        "{again}"
    );

    // History: reserved (version 0), then created (version 1), newest first.
    let patient_id = ledger_patient.as_str();
    let record_id = record_of(
        PATIENTS[0],
        &bundles[0]
            .resources
            .iter()
            .find(|r| r.resource_type == "Observation")
            .unwrap()
            .record_id,
    );
    // The same ids through the chaincode's LedgerIds, as the custodian's staff and as the
    // patient (who knows its own Patient.id).
    let clear = bundles[0].resources[0].record_id.clone();
    let ids = admin
        .ledger_ids(None, PATIENTS[0], &[&clear])
        .await
        .unwrap();
    assert_eq!((ids.patient.as_str(), ids.records.len()), (patient_id, 1));
    assert_eq!(ids.records[0], record_of(PATIENTS[0], &clear));
    let history = admin.record_history(patient_id, &record_id).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|h| h.version).collect();
    assert_eq!(versions, [1, 0]);

    // The patient: consent to Org2 granted, listed, revoked; the audit trail shows the
    // custodian's reads; erasure requested.
    let patient = net.client(patient_identity);
    assert_eq!(
        patient.resolve_patient(PATIENTS[0], None).await.unwrap(),
        patient_id
    );
    // Another patient's Patient.id does not translate for this patient.
    let err = patient
        .resolve_patient(PATIENTS[1], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EhrClientError::Chaincode { status: 403, .. }),
        "{err}"
    );
    let grant = patient
        .grant_consent(&ConsentGrant {
            patient_id: patient_id.into(),
            grantee: Grantee::Org("Org2MSP".into()),
            resource_types: vec!["Observation".into()],
            purposes: vec![Purpose::Treatment],
            valid_for_s: 3600,
        })
        .await
        .unwrap();
    assert_eq!(grant.state, AccessState::Authorized);
    let consents = patient.list_consents(patient_id, 50, "").await.unwrap();
    assert_eq!(consents.items.len(), 1);
    assert_eq!(consents.items[0].consent_id, grant.consent_id);
    let revoked = patient
        .revoke_consent(patient_id, &grant.consent_id)
        .await
        .unwrap();
    assert_eq!(revoked.status, ConsentStatus::Inactive);
    let audit = patient.audit_entries(patient_id, 200, "").await.unwrap();
    let summary = audit.summary.unwrap();
    assert_eq!(summary.total, bundles[0].resources.len() as u64);
    assert_eq!(summary.granted, summary.total);

    // Erasure: requested by the patient, purged by the custodian's admin (Org2's peer
    // endorses the blind purge of Org1's collection: hashes only). The hash stays on the
    // ledger; the PHI is gone (410).
    let erasure = patient
        .request_erasure(patient_id, &record_id)
        .await
        .unwrap();
    assert_eq!(erasure.record_id, record_id);
    let purged = admin.purge_record(patient_id, &record_id).await.unwrap();
    assert_eq!(purged.status, RecordStatus::Purged);
    let gone = admin
        .read_record(patient_id, &record_id, Purpose::Treatment)
        .await
        .unwrap_err();
    assert!(
        matches!(gone, EhrClientError::Chaincode { status: 410, .. }),
        "{gone}"
    );

    // Break-glass needs the emergency attribute: the admin is refused (403), nothing leaks.
    let err = admin
        .emergency_read(patient_id, &record_id, EmergencyReason::BreakTheGlass, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EhrClientError::Chaincode { status: 403, .. }),
        "{err}"
    );
}
