//! Private data between peers over mutual TLS: a member peer that did not endorse obtains the
//! data from an endorsing peer and verifies it against the block's hashes; tampered data from
//! a bad peer is rejected; a non-member peer is refused the data and never holds it; only a
//! valid, unrevoked *peer* identity whose signed request is bound to its TLS session is served
//! (issue 13: failed on 4436d0b, where any TLS certificate of a member organization sufficed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{CC, CHANNEL, Net, Peer};
use medledger_ca::{Profile, Registration, build_csr};
use medledger_channel::ChannelConfig;
use medledger_channel::testing::TestOrg;
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_peer::definitions::ChaincodeDefinitions;
use medledger_peer::privdata::{
    PeerEndpoint, PrivateDataService, Reconciler, TlsClient, sign_fetch_request,
};
use medledger_peer::testing::{TxSpec, private_writes, tx_private, write};
use medledger_peer::validator::BlockPrivateData;
use medledger_proto::kvrwset::{KvWrite, KvrwSet};
use medledger_proto::medledger::privdata::private_data_client::PrivateDataClient;
use medledger_proto::medledger::privdata::private_data_server::{PrivateData, PrivateDataServer};
use medledger_proto::medledger::privdata::{
    FetchRequest, FetchResponse, PrivateDataDigest, PrivateDataElement, SignedFetchRequest,
};
use medledger_proto::protos::TxValidationCode as C;
use prost::Message;
use tonic::transport::{
    Certificate as TlsCertificate, ClientTlsConfig, Identity, Server, ServerTlsConfig,
};

struct Tls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

fn tls_identity(org: &mut TestOrg, name: &str) -> Tls {
    tls_identity_as(org, name, NodeOu::Peer)
}

/// A TLS certificate for a new identity of type `ou` (clients get the registered attribute
/// that allows one).
fn tls_identity_as(org: &mut TestOrg, name: &str, ou: NodeOu) -> Tls {
    let mut reg = Registration::new(name, ou).with_secret("pw");
    if ou == NodeOu::Client {
        reg = reg.with_attribute("medledger.tls", "true");
    }
    org.ca.register("admin", reg).unwrap();
    let key = SigningKey::generate().unwrap();
    let hosts = vec!["localhost".to_owned()];
    let csr = build_csr(&key, name, &hosts).unwrap();
    let e = org
        .ca
        .enroll(name, "pw", &csr, Profile::Tls, &hosts)
        .unwrap();
    Tls {
        cert_pem: e.cert_pem.into_bytes(),
        key_pem: key.to_pkcs8_pem().unwrap().into_bytes(),
    }
}

fn roots_pem(net: &Net) -> Vec<u8> {
    net.ch
        .orgs
        .iter()
        .map(|o| o.ca.tls_root_cert().to_pem())
        .collect::<String>()
        .into_bytes()
}

/// Serves `service` over mutual TLS on loopback; returns its address and a stop sender.
async fn serve<S: PrivateData>(
    service: PrivateDataServer<S>,
    tls: &Tls,
    roots: &[u8],
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    serve_on("127.0.0.1:0", service, tls, roots).await
}

/// As [`serve`], on `addr`.
async fn serve_on<S: PrivateData>(
    addr: &str,
    service: PrivateDataServer<S>,
    tls: &Tls,
    roots: &[u8],
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .client_ca_root(TlsCertificate::from_pem(roots));
    let server = Server::builder()
        .tls_config(config)
        .unwrap()
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = rx.await;
            },
        );
    let handle = tokio::spawn(async move {
        server.await.unwrap();
    });
    (addr, tx, handle)
}

/// A peer that answers every request with forged private data.
struct Forger;

#[tonic::async_trait]
impl PrivateData for Forger {
    async fn fetch(
        &self,
        request: tonic::Request<SignedFetchRequest>,
    ) -> Result<tonic::Response<FetchResponse>, tonic::Status> {
        let request = FetchRequest::decode(request.into_inner().request.as_slice()).unwrap();
        let forged = KvrwSet {
            writes: vec![KvWrite {
                key: "obs1".into(),
                is_delete: false,
                value: b"forged".to_vec(),
            }],
            ..Default::default()
        };
        let elements = request
            .digests
            .into_iter()
            .map(|d| PrivateDataElement {
                digest: Some(d),
                rwset: forged.encode_to_vec(),
            })
            .collect();
        Ok(tonic::Response::new(FetchResponse { elements }))
    }
}

/// Calls `Fetch` on `addr` over a connection with TLS client certificate `conn`, with a request
/// for block 1's first transaction signed by `signer` and bound to `bound_to`'s certificate.
async fn fetch_signed(
    addr: std::net::SocketAddr,
    conn: &Tls,
    roots: &[u8],
    signer: &SigningIdentity,
    bound_to: &Tls,
) -> Result<FetchResponse, tonic::Status> {
    let client_tls = ClientTlsConfig::new()
        .ca_certificate(TlsCertificate::from_pem(roots))
        .identity(Identity::from_pem(&conn.cert_pem, &conn.key_pem))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(endpoint(addr).url)
        .unwrap()
        .tls_config(client_tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bound_der = Certificate::from_pem(&bound_to.cert_pem).unwrap();
    let request = sign_fetch_request(
        signer,
        bound_der.der(),
        CHANNEL,
        vec![PrivateDataDigest {
            block_num: 1,
            tx_num: 0,
            namespace: CC.into(),
            collection: "Org1PHI".into(),
        }],
    )
    .unwrap();
    PrivateDataClient::new(channel)
        .fetch(request)
        .await
        .map(tonic::Response::into_inner)
}

fn endpoint(addr: std::net::SocketAddr) -> PeerEndpoint {
    PeerEndpoint {
        url: format!("https://127.0.0.1:{}", addr.port()),
        tls_name: "localhost".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_fetches_verified_private_data_and_non_member_is_refused() {
    let mut net = Net::new();
    let tls_a = tls_identity(&mut net.ch.orgs[0], "peer0-tls");
    let tls_b = tls_identity(&mut net.ch.orgs[0], "peer1-tls");
    let tls_bad = tls_identity(&mut net.ch.orgs[0], "peer9-tls");
    let tls_c = tls_identity(&mut net.ch.orgs[1], "peer0-tls");
    let tls_client = tls_identity_as(&mut net.ch.orgs[0], "doctor-tls", NodeOu::Client);
    let signer_b = Arc::new(net.ch.orgs[0].identity("peer1-sign", NodeOu::Peer, &[]));
    let signer_c = net.ch.orgs[1].identity("peer0-sign", NodeOu::Peer, &[]);
    let doctor = net.ch.orgs[0].identity("doctor", NodeOu::Client, &[("ehr.role", "doctor")]);
    let revoked = net.ch.orgs[0].identity("peer7-sign", NodeOu::Peer, &[]);
    let tls_rev = tls_identity(&mut net.ch.orgs[0], "peer7-tls");
    let with_crl = net.ch.config_revoking(0, "peer7-sign");
    let with_crl = Arc::new(ChannelConfig::from_proto(with_crl).unwrap());
    let roots = roots_pem(&net);
    let net = Arc::new(net);
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = Peer::open(&net, da.path(), "Org1MSP"); // endorser, holds the data
    let b = Peer::open(&net, db.path(), "Org1MSP"); // member, did not endorse
    let c = Peer::open(&net, dc.path(), "Org2MSP"); // not a member
    for p in [&a, &b, &c] {
        p.defs.insert(common::phi_definition());
    }

    let phi = br#"{"resourceType":"Condition","code":"I10"}"#;
    let (hashed, pvt) = private_writes("Org1PHI", vec![write("obs1", phi)], vec![]);
    let mut spec = TxSpec::kv(CC, KvrwSet::default());
    spec.rwsets[0].collection_hashed_rwset = vec![hashed];
    let (t, _) = net.tx_by(&spec, &[&net.peer1]);
    let with_data = BlockPrivateData::from([(0, tx_private(CC, vec![pvt]))]);
    assert_eq!(
        a.commit_private(&net, std::slice::from_ref(&t), &with_data)
            .codes,
        vec![C::Valid]
    );
    assert_eq!(
        b.commit(&net, std::slice::from_ref(&t)).codes,
        vec![C::Valid]
    );
    assert_eq!(c.commit(&net, &[t]).codes, vec![C::Valid]);
    assert_eq!(b.ledger().missing_private().unwrap().len(), 1);
    assert!(c.ledger().missing_private().unwrap().is_empty());

    // A serves over mutual TLS (its channel configuration carries Org1's CRL, which revokes
    // peer7); a forger serves too.
    let service = PrivateDataService::new();
    service.add_channel(
        a.committer.ledger().clone(),
        Arc::new(move || with_crl.clone()),
        a.defs.clone() as Arc<dyn ChaincodeDefinitions>,
    );
    let (addr_a, stop_a, srv_a) = serve(service.into_server(), &tls_a, &roots).await;
    let (addr_bad, stop_bad, srv_bad) =
        serve(PrivateDataServer::new(Forger), &tls_bad, &roots).await;

    // B asks the forger first, rejects its data, then gets and verifies A's.
    let directory: HashMap<String, Vec<PeerEndpoint>> = HashMap::from([(
        "Org1MSP".to_owned(),
        vec![endpoint(addr_bad), endpoint(addr_a)],
    )]);
    let reconciler = Reconciler::new(
        b.committer.ledger().clone(),
        b.committer.config().clone(),
        b.defs.clone() as Arc<dyn ChaincodeDefinitions>,
        Arc::new(directory),
        signer_b.clone(),
        TlsClient {
            roots_pem: roots.clone(),
            cert_pem: tls_b.cert_pem.clone(),
            key_pem: tls_b.key_pem.clone(),
        },
    )
    .unwrap();
    let report = reconciler.reconcile_once().await.unwrap();
    assert_eq!((report.stored, report.missing), (1, 0));
    let got = b
        .ledger()
        .get_private(CC, "Org1PHI", "obs1")
        .unwrap()
        .unwrap();
    assert_eq!(got.value, phi);
    assert!(b.ledger().missing_private().unwrap().is_empty());

    // C (Org2, not a member) asks A with its own peer identity: nothing is returned.
    let resp = fetch_signed(addr_a, &tls_c, &roots, &signer_c, &tls_c)
        .await
        .unwrap();
    assert!(
        resp.elements.is_empty(),
        "a non-member received private data"
    );
    assert!(
        c.ledger()
            .get_private(CC, "Org1PHI", "obs1")
            .unwrap()
            .is_none()
    );

    // A member organization's client (a doctor holding a TLS certificate of Org1's TLS CA):
    // refused, whether it signs itself or sends a peer's signed request on its own session.
    // A revoked peer identity is refused too, on a TLS certificate of its own organization.
    for (conn, signer, bound_to, what) in [
        (&tls_client, &doctor, &tls_client, "a client identity"),
        (
            &tls_client,
            &*signer_b,
            &tls_b,
            "a peer's request replayed on another TLS session",
        ),
        (&tls_rev, &revoked, &tls_rev, "a revoked peer identity"),
    ] {
        let err = fetch_signed(addr_a, conn, &roots, signer, bound_to)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{what}: {err:?}");
    }
    // Without a client certificate the TLS handshake itself fails.
    let no_cert = ClientTlsConfig::new()
        .ca_certificate(TlsCertificate::from_pem(&roots))
        .domain_name("localhost");
    let denied = async {
        let ch = tonic::transport::Endpoint::from_shared(endpoint(addr_a).url)
            .ok()?
            .tls_config(no_cert)
            .ok()?
            .connect()
            .await
            .ok()?;
        PrivateDataClient::new(ch)
            .fetch(SignedFetchRequest::default())
            .await
            .ok()
    }
    .await;
    assert!(
        denied.is_none(),
        "served a client without a TLS certificate"
    );

    for stop in [stop_a, stop_bad] {
        let _ = stop.send(());
    }
    srv_a.await.unwrap();
    srv_bad.await.unwrap();
}

/// The reconciler keeps retrying: while the only endorser is unreachable the member peer that
/// lacks the data commits the public part and records it missing; once the endorser serves,
/// a later round of `Reconciler::run` fetches, verifies and stores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_retries_until_an_endorser_is_reachable() {
    let mut net = Net::new();
    let tls_a = tls_identity(&mut net.ch.orgs[0], "peer0-tls");
    let tls_b = tls_identity(&mut net.ch.orgs[0], "peer1-tls");
    let signer_b = Arc::new(net.ch.orgs[0].identity("peer1-sign", NodeOu::Peer, &[]));
    let roots = roots_pem(&net);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Peer::open(&net, da.path(), "Org1MSP");
    let b = Peer::open(&net, db.path(), "Org1MSP");
    for p in [&a, &b] {
        p.defs.insert(common::phi_definition());
    }
    let phi = br#"{"resourceType":"Observation","status":"final"}"#;
    let (hashed, pvt) = private_writes("Org1PHI", vec![write("obs2", phi)], vec![]);
    let mut spec = TxSpec::kv(CC, KvrwSet::default());
    spec.rwsets[0].collection_hashed_rwset = vec![hashed];
    let (t, _) = net.tx_by(&spec, &[&net.peer1]);
    let with_data = BlockPrivateData::from([(0, tx_private(CC, vec![pvt]))]);
    assert_eq!(
        a.commit_private(&net, std::slice::from_ref(&t), &with_data)
            .codes,
        vec![C::Valid]
    );
    assert_eq!(b.commit(&net, &[t]).codes, vec![C::Valid]);
    assert_eq!(b.ledger().missing_private().unwrap().len(), 1);

    // A's address, not served yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let directory: HashMap<String, Vec<PeerEndpoint>> =
        HashMap::from([("Org1MSP".to_owned(), vec![endpoint(addr)])]);
    let reconciler = Reconciler::new(
        b.committer.ledger().clone(),
        b.committer.config().clone(),
        b.defs.clone() as Arc<dyn ChaincodeDefinitions>,
        Arc::new(directory),
        signer_b.clone(),
        TlsClient {
            roots_pem: roots.clone(),
            cert_pem: tls_b.cert_pem.clone(),
            key_pem: tls_b.key_pem.clone(),
        },
    )
    .unwrap();
    let (stop_run, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        reconciler.run(std::time::Duration::from_millis(100), async {
            let _ = stopped.await;
        }),
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        b.ledger().missing_private().unwrap().len(),
        1,
        "nothing to fetch while the endorser is down"
    );

    let service = PrivateDataService::new();
    service.add_channel(
        a.committer.ledger().clone(),
        {
            let committer = a.committer.clone();
            Arc::new(move || committer.config())
        },
        a.defs.clone() as Arc<dyn ChaincodeDefinitions>,
    );
    let (_, stop_a, srv_a) =
        serve_on(&addr.to_string(), service.into_server(), &tls_a, &roots).await;
    let mut fetched = false;
    for _ in 0..100 {
        if b.ledger().missing_private().unwrap().is_empty() {
            fetched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        fetched,
        "the reconciler did not fetch the data once the endorser served"
    );
    let got = b
        .ledger()
        .get_private(CC, "Org1PHI", "obs2")
        .unwrap()
        .unwrap();
    assert_eq!(got.value, phi);
    let _ = stop_run.send(());
    run.await.unwrap();
    let _ = stop_a.send(());
    srv_a.await.unwrap();
}

/// Serves one fixed private read-write set for every digest asked: a member peer that has not
/// applied a purge yet (or keeps what it should not).
struct Stale(Vec<u8>);

#[tonic::async_trait]
impl PrivateData for Stale {
    async fn fetch(
        &self,
        request: tonic::Request<SignedFetchRequest>,
    ) -> Result<tonic::Response<FetchResponse>, tonic::Status> {
        let request = FetchRequest::decode(request.into_inner().request.as_slice()).unwrap();
        let elements = request
            .digests
            .into_iter()
            .map(|d| PrivateDataElement {
                digest: Some(d),
                rwset: self.0.clone(),
            })
            .collect();
        Ok(tonic::Response::new(FetchResponse { elements }))
    }
}

/// Issue 13 item 7: a member peer that lacked a transaction's private data and reconciles only
/// after a purge of one of its keys never holds the purged value, even when a peer serves the
/// original (hash-valid) set; from an honest peer, which serves the set without the purged
/// write, it obtains the rest. On 4436d0b the stale answer was stored whole (and served on),
/// and the honest one refused for its whole-set hash, so the rest stayed missing for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_private_data_never_comes_back_through_reconciliation() {
    use medledger_proto::kvrwset::{HashedRwSet, KvWriteHash};
    let mut net = Net::new();
    let tls_a = tls_identity(&mut net.ch.orgs[0], "peer0-tls");
    let tls_b = tls_identity(&mut net.ch.orgs[0], "peer1-tls");
    let tls_stale = tls_identity(&mut net.ch.orgs[0], "peer2-tls");
    let signer_b = Arc::new(net.ch.orgs[0].identity("peer1-sign", NodeOu::Peer, &[]));
    let roots = roots_pem(&net);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Peer::open(&net, da.path(), "Org1MSP");
    let b = Peer::open(&net, db.path(), "Org1MSP");
    for p in [&a, &b] {
        p.defs.insert(common::phi_definition());
    }
    let erased = br#"{"resourceType":"Condition","code":"F32.9"}"#;
    let kept = br#"{"resourceType":"Observation","status":"final"}"#;
    let (hashed, pvt) = private_writes(
        "Org1PHI",
        vec![write("cond1", erased), write("obs1", kept)],
        vec![],
    );
    let original = pvt.rwset.clone();
    let mut spec = TxSpec::kv(CC, KvrwSet::default());
    spec.rwsets[0].collection_hashed_rwset = vec![hashed];
    let (t, _) = net.tx_by(&spec, &[&net.peer1]);
    let with_data = BlockPrivateData::from([(0, tx_private(CC, vec![pvt]))]);
    assert_eq!(
        a.commit_private(&net, std::slice::from_ref(&t), &with_data)
            .codes,
        vec![C::Valid]
    );
    assert_eq!(
        b.commit(&net, std::slice::from_ref(&t)).codes,
        vec![C::Valid]
    );
    let create = t;

    // Block 2 purges cond1 on both peers.
    let purge = HashedRwSet {
        hashed_writes: vec![KvWriteHash {
            key_hash: medledger_msp::crypto::sha256(b"cond1").to_vec(),
            is_delete: true,
            value_hash: Vec::new(),
            is_purge: true,
        }],
        ..Default::default()
    };
    let mut spec = TxSpec::kv(CC, KvrwSet::default());
    spec.rwsets[0].collection_hashed_rwset =
        vec![medledger_proto::rwset::CollectionHashedReadWriteSet {
            collection_name: "Org1PHI".into(),
            hashed_rwset: purge.encode_to_vec(),
            pvt_rwset_hash: Vec::new(),
        }];
    let (t, _) = net.tx_by(&spec, &[&net.peer1]);
    for p in [&a, &b] {
        assert_eq!(
            p.commit(&net, std::slice::from_ref(&t)).codes,
            vec![C::Valid]
        );
    }
    let purge_tx = t;
    assert_eq!(b.ledger().missing_private().unwrap().len(), 1);

    // A stale peer serves the original set: B keeps nothing of cond1.
    let (addr_stale, stop_stale, srv_stale) =
        serve(PrivateDataServer::new(Stale(original)), &tls_stale, &roots).await;
    let tls_client = TlsClient {
        roots_pem: roots.clone(),
        cert_pem: tls_b.cert_pem.clone(),
        key_pem: tls_b.key_pem.clone(),
    };
    let reconciler = |addr| {
        Reconciler::new(
            b.committer.ledger().clone(),
            b.committer.config().clone(),
            b.defs.clone() as Arc<dyn ChaincodeDefinitions>,
            Arc::new(HashMap::from([(
                "Org1MSP".to_owned(),
                vec![endpoint(addr)],
            )])),
            signer_b.clone(),
            tls_client.clone(),
        )
        .unwrap()
    };
    let report = reconciler(addr_stale).reconcile_once().await.unwrap();
    assert_eq!(report.stored, 1);
    let holds_erased = |p: &Peer| {
        p.ledger()
            .get_private(CC, "Org1PHI", "cond1")
            .unwrap()
            .is_some()
            || p.ledger()
                .private_rwset(1, 0, CC, "Org1PHI")
                .unwrap()
                .is_some_and(|s| s.windows(erased.len()).any(|w| w == erased))
    };
    assert!(!holds_erased(&b), "the purged value came back to B");
    assert!(!holds_erased(&a));
    let _ = stop_stale.send(());
    srv_stale.await.unwrap();

    // A fresh peer C in B's place reconciles from honest A, which serves the set without
    // cond1: obs1 is stored, cond1 is not, nothing stays missing.
    let dc = tempfile::tempdir().unwrap();
    let c = Peer::open(&net, dc.path(), "Org1MSP");
    c.defs.insert(common::phi_definition());
    for t in [create, purge_tx] {
        assert_eq!(c.commit(&net, &[t]).codes, vec![C::Valid]);
    }
    assert_eq!(c.ledger().missing_private().unwrap().len(), 1);
    let service = PrivateDataService::new();
    service.add_channel(
        a.committer.ledger().clone(),
        {
            let committer = a.committer.clone();
            Arc::new(move || committer.config())
        },
        a.defs.clone() as Arc<dyn ChaincodeDefinitions>,
    );
    let (addr_a, stop_a, srv_a) = serve(service.into_server(), &tls_a, &roots).await;
    let reconciler_c = Reconciler::new(
        c.committer.ledger().clone(),
        c.committer.config().clone(),
        c.defs.clone() as Arc<dyn ChaincodeDefinitions>,
        Arc::new(HashMap::from([(
            "Org1MSP".to_owned(),
            vec![endpoint(addr_a)],
        )])),
        signer_b.clone(),
        tls_client.clone(),
    )
    .unwrap();
    let report = reconciler_c.reconcile_once().await.unwrap();
    assert_eq!((report.stored, report.missing), (1, 0));
    assert_eq!(
        c.ledger()
            .get_private(CC, "Org1PHI", "obs1")
            .unwrap()
            .unwrap()
            .value,
        kept
    );
    assert!(!holds_erased(&c));
    let _ = stop_a.send(());
    srv_a.await.unwrap();
}
