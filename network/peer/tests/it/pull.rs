//! The block puller against misbehaving orderers (issue 14 item 2): four in-process fake
//! orderers serve one chain of real, consenter-signed blocks over Deliver (TLS, loopback,
//! port 0); the first is faulty — silent, late, or serving a re-split block — and peers that
//! start at every orderer must keep committing the true blocks within seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CC, Net, Peer};
use medledger_ca::{Profile, Registration, build_csr};
use medledger_channel::ChannelConfig;
use medledger_channel::block;
use medledger_ledger::TransientStore;
use medledger_msp::crypto::SigningKey;
use medledger_msp::ou::NodeOu;
use medledger_peer::node::pull::{BlockPuller, PullConfig, start_index};
use medledger_peer::privdata::TlsClient;
use medledger_peer::testing::{TxSpec, signed_block, write};
use medledger_proto::common::{Block, Envelope, Payload};
use medledger_proto::kvrwset::KvrwSet;
use medledger_proto::medledger::channel as pb;
use medledger_proto::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
use medledger_proto::orderer::{
    BroadcastResponse, DeliverResponse, SeekInfo, deliver_response, seek_info, seek_position,
};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

const ORDERERS: usize = 4;
/// Blocks the test's ordering service cuts, one every [`BLOCK_INTERVAL`].
const BLOCKS: u64 = 30;
const BLOCK_INTERVAL: Duration = Duration::from_millis(100);
/// How long after the last block every peer must have committed it.
const CATCH_UP: Duration = Duration::from_secs(6);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the faulty orderer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Honest,
    /// Accepts Deliver (blocks and headers) and never sends anything.
    Silent,
    /// Sends every full block this long after the previous one; headers on time.
    Late(Duration),
    /// Sends every block after the genesis block with its entries re-split: the header and
    /// its signatures are the true ones, the data hash no longer matches.
    Resplit,
}

/// A Deliver server over the shared chain.
struct FakeOrderer {
    chain: watch::Receiver<Vec<Block>>,
    behaviour: Behaviour,
}

fn seek_of(env: &Envelope) -> SeekInfo {
    let payload = Payload::decode(env.payload.as_slice()).unwrap();
    SeekInfo::decode(payload.data.as_slice()).unwrap()
}

/// `block` with its first entry split in two: the same bytes, other boundaries.
fn resplit(mut block: Block) -> Block {
    let data = block.data.as_mut().unwrap();
    let first = data.data.remove(0);
    let (a, b) = first.split_at(first.len() / 2);
    data.data.insert(0, b.to_vec());
    data.data.insert(0, a.to_vec());
    block
}

#[tonic::async_trait]
impl AtomicBroadcast for FakeOrderer {
    type BroadcastStream = ReceiverStream<Result<BroadcastResponse, Status>>;
    type DeliverStream = ReceiverStream<Result<DeliverResponse, Status>>;

    async fn broadcast(
        &self,
        _request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::BroadcastStream>, Status> {
        Err(Status::unimplemented("test orderer"))
    }

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        let env = request
            .into_inner()
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no request"))?;
        let seek = seek_of(&env);
        let headers_only = seek.content_type == seek_info::SeekContentType::HeaderWithSig as i32;
        let mut chain = self.chain.clone();
        let mut next = match seek.start.and_then(|s| s.r#type) {
            Some(seek_position::Type::Specified(s)) => s.number,
            Some(seek_position::Type::Newest(_)) => chain.borrow().len() as u64 - 1,
            _ => 0,
        };
        let behaviour = self.behaviour;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            if behaviour == Behaviour::Silent {
                tx.closed().await;
                return;
            }
            loop {
                let mut b = match chain.wait_for(|c| c.len() as u64 > next).await {
                    Ok(c) => c[next as usize].clone(),
                    Err(_) => return,
                };
                if headers_only {
                    b.data = None;
                } else {
                    match behaviour {
                        Behaviour::Late(d) => tokio::time::sleep(d).await,
                        Behaviour::Resplit if next > 0 => b = resplit(b),
                        _ => {}
                    }
                }
                let msg = DeliverResponse {
                    r#type: Some(deliver_response::Type::Block(b)),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
                next += 1;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A TLS server identity for 127.0.0.1 from the orderer organization's TLS CA.
fn orderer_tls(net: &mut Net) -> (Vec<u8>, Vec<u8>) {
    let ca = &mut net.ch.orderer_org.ca;
    ca.register(
        "admin",
        Registration::new("orderer-tls", NodeOu::Orderer).with_secret("pw"),
    )
    .unwrap();
    let key = SigningKey::generate().unwrap();
    let hosts = vec!["127.0.0.1".to_owned()];
    let csr = build_csr(&key, "orderer-tls", &hosts).unwrap();
    let e = ca
        .enroll("orderer-tls", "pw", &csr, Profile::Tls, &hosts)
        .unwrap();
    (
        e.cert_pem.into_bytes(),
        key.to_pkcs8_pem().unwrap().into_bytes(),
    )
}

/// Points the channel's consenters at `addrs`.
fn with_consenters_at(net: &mut Net, addrs: &[SocketAddr]) {
    let mut proto: pb::ChannelConfig = net.ch.config.to_proto().clone();
    for (c, addr) in proto.consenters.iter_mut().zip(addrs) {
        c.endpoint = Some(pb::Endpoint {
            host: "127.0.0.1".into(),
            port: addr.port() as u32,
        });
    }
    net.ch.config = ChannelConfig::from_proto(proto).unwrap();
}

/// Names whose first source is orderer 0, 1, 2, 3.
fn peer_names() -> Vec<String> {
    (0..ORDERERS)
        .map(|want| {
            (0..)
                .map(|k| format!("peer{k}.org1"))
                .find(|n| start_index(n, ORDERERS) == want)
                .unwrap()
        })
        .collect()
}

/// Runs four orderers (the first with `faulty`), four peers starting one at each, and an
/// ordering service cutting [`BLOCKS`] blocks; returns, per peer, how long after the last
/// block was cut it had committed every block (None: not within [`CATCH_UP`]).
async fn run(faulty: Behaviour) -> Vec<Option<Duration>> {
    // One scenario at a time: the timings assume the two cores are not shared with another.
    let _serial = SERIAL.lock().await;
    let mut net = Net::new();
    let (cert, key) = orderer_tls(&mut net);
    let roots = net.ch.orderer_org.ca.tls_root_cert().to_pem().into_bytes();
    let mut listeners = Vec::new();
    for _ in 0..ORDERERS {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    with_consenters_at(&mut net, &addrs);
    let genesis = net.genesis();
    let (chain_tx, chain_rx) = watch::channel(vec![genesis]);

    let (stop, stopped) = watch::channel(false);
    let mut servers = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let orderer = FakeOrderer {
            chain: chain_rx.clone(),
            behaviour: if i == 0 { faulty } else { Behaviour::Honest },
        };
        let tls = ServerTlsConfig::new().identity(Identity::from_pem(&cert, &key));
        let mut stopped = stopped.clone();
        servers.push(tokio::spawn(
            Server::builder()
                .tls_config(tls)
                .unwrap()
                .add_service(AtomicBroadcastServer::new(orderer))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                ),
        ));
    }

    let dir = tempfile::tempdir().unwrap();
    let mut peers = Vec::new();
    let mut pullers = Vec::new();
    for (k, name) in peer_names().into_iter().enumerate() {
        let peer = Peer::open(&net, &dir.path().join(format!("ledger{k}")), "Org1MSP");
        let signer = net.ch.orgs[0].identity(&format!("puller{k}"), NodeOu::Peer, &[]);
        let puller = BlockPuller {
            committer: peer.committer.clone(),
            signer: Arc::new(signer),
            tls: TlsClient {
                roots_pem: roots.clone(),
                cert_pem: Vec::new(),
                key_pem: Vec::new(),
            },
            transient: Arc::new(
                TransientStore::open(&dir.path().join(format!("transient{k}"))).unwrap(),
            ),
            peer_name: name,
            config: PullConfig {
                block_censorship_timeout: Duration::from_secs(1),
                reconnect_delay: Duration::from_millis(200),
            },
        };
        pullers.push(tokio::spawn(puller.run(stopped.clone())));
        peers.push(peer);
    }

    // The ordering service: a block of one endorsed transaction every BLOCK_INTERVAL.
    let mut previous = block::header_hash(chain_rx.borrow()[0].header.as_ref().unwrap());
    for n in 1..=BLOCKS {
        tokio::time::sleep(BLOCK_INTERVAL).await;
        let spec = TxSpec::kv(
            CC,
            KvrwSet {
                writes: vec![write(&format!("k{n}"), b"v")],
                ..Default::default()
            },
        );
        let (env, _) = net.tx(&spec);
        let b = signed_block(&net.ch, n, &previous, &[env], &[1, 2, 3]);
        previous = block::header_hash(b.header.as_ref().unwrap());
        chain_tx.send_modify(|c| c.push(b));
    }
    let cut = Instant::now();
    let mut caught_up = vec![None; peers.len()];
    while cut.elapsed() < CATCH_UP && caught_up.iter().any(Option::is_none) {
        for (k, peer) in peers.iter().enumerate() {
            let info = peer.ledger().info();
            if caught_up[k].is_none() && info.height == BLOCKS + 1 {
                assert_eq!(
                    info.current_hash,
                    previous.to_vec(),
                    "peer {k} committed the true chain"
                );
                caught_up[k] = Some(cut.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.send_replace(true);
    for p in pullers {
        tokio::time::timeout(Duration::from_secs(5), p)
            .await
            .expect("puller stops")
            .unwrap();
    }
    for s in servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    caught_up
}

fn assert_all_caught_up(faulty: Behaviour, caught_up: &[Option<Duration>]) {
    eprintln!("{faulty:?}: peers caught up after {caught_up:?}");
    for (k, c) in caught_up.iter().enumerate() {
        assert!(
            c.is_some(),
            "with orderer 0 {faulty:?}, peer {k} (first source: orderer {k}) had not committed \
             all {BLOCKS} blocks {CATCH_UP:?} after the last was cut: {caught_up:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_orderer_stalls_no_peer() {
    let faulty = Behaviour::Silent;
    assert_all_caught_up(faulty, &run(faulty).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_orderer_stalls_no_peer() {
    let faulty = Behaviour::Late(Duration::from_secs(2));
    assert_all_caught_up(faulty, &run(faulty).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resplit_block_makes_the_peer_fetch_the_true_block_elsewhere() {
    let faulty = Behaviour::Resplit;
    assert_all_caught_up(faulty, &run(faulty).await);
}
