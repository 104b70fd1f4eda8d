//! The harness served to async clients ([`Harness::serve`]): the real `GatewayService` of
//! every organization and an `AtomicBroadcast` facade of every orderer, on gRPC in process
//! ([`crate::inproc`]), with a driver thread that owns the [`Harness`] and advances its
//! virtual time while there is work.
//!
//! The driver receives [`Command`]s: envelopes the gateways broadcast (it hands each to its
//! orderer node, [`medledger_orderer::sim::Sim::broadcast`], and answers with Fabric's
//! `BroadcastResponse`: the node's status and reason, as the orderer's Broadcast service),
//! and closures to run on the harness (faults, inspection). While there
//! is work — envelopes queued, envelopes in an orderer's pool, a reachable peer below the
//! orderers' height, and [`GRACE_TICKS`] after that — it steps ([`Harness::step`]); otherwise
//! it blocks on its command channel: no sleeps, no busy loop.
//!
//! A gateway reports a transaction's commit status ([`SettledCommits`]) once its own peer
//! committed it (the peer's `LedgerCommits`) and every running peer not cut off holds that
//! block: the driver commits a block on the peers one after the other, and a client's next
//! transaction must not be endorsed by a peer that has not yet committed the last one (in a
//! network of processes that is a real race; here it would make runs depend on thread
//! timing).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use medledger_endorser::Endorser;
use medledger_gateway::client::Gateway;
use medledger_gateway_server::{
    ChannelGateway, CommitSource, CommitSourceError, EndorserHandle, EventStream, GatewayConfig,
    GatewayService, OrdererEndpoint, PeerEndpoint,
};
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_orderer::sim::CHANNEL;
use medledger_peer::committer::Committer;
use medledger_peer::definitions::ChaincodeDefinitions;
use medledger_peer::node::DefinitionPolicies;
use medledger_peer::node::commits::LedgerCommits;
use medledger_proto::TxId;
use medledger_proto::common::{Envelope, Status as FabricStatus};
use medledger_proto::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
use medledger_proto::orderer::{BroadcastResponse, DeliverResponse};
use medledger_proto::protos::endorser_client::EndorserClient;
use medledger_proto::protos::endorser_server::{Endorser as EndorserRpc, EndorserServer};
use medledger_proto::protos::{ProposalResponse, SignedProposal, TxValidationCode};
use prost::Message;
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::error::{Error, Result};
use crate::harness::Harness;
use crate::inproc;
use crate::net::{evaluate_only, msp_id, typed_msp_id};

/// Ticks the driver keeps stepping after it last saw work: consensus messages still in
/// flight once an orderer's pool is empty (a block takes a few network delays of at most 10
/// virtual ms each to decide).
pub const GRACE_TICKS: u32 = 30;

/// A closure run on the harness by the driver thread; it returns how to answer its caller,
/// which the driver does once the servers see the peers that run after it.
type Job = Box<dyn FnOnce(&mut Harness) -> Answer + Send>;

/// Answers a [`Job`]'s caller.
type Answer = Box<dyn FnOnce() + Send>;

/// What the driver thread is asked to do.
enum Command {
    /// Hand `envelope` to orderer `orderer`; answer on `reply`.
    Broadcast {
        orderer: u32,
        envelope: Vec<u8>,
        reply: oneshot::Sender<BroadcastResponse>,
    },
    /// Run a closure on the harness.
    Run(Job),
    /// End the driver (the harness is dropped on its thread).
    Stop,
}

/// A served harness: its driver thread, the gateways of its organizations and the runtime
/// that serves them. Dropping it stops the driver (the network is dropped with it) and the
/// servers.
pub struct Served {
    commands: Option<Sender<Command>>,
    driver: Option<JoinHandle<()>>,
    /// Why the driver stopped, if it failed.
    failure: Arc<Mutex<Option<String>>>,
    /// Serves the gateways and orderer facades (2 worker threads).
    runtime: Option<tokio::runtime::Runtime>,
    /// Per organization index, a channel to its gateway (the gateway of its peer 0).
    gateways: Vec<tonic::transport::Channel>,
    /// Per (organization, peer), its Endorser service.
    endorsers: BTreeMap<(usize, usize), Endpoint>,
}

/// A peer's Endorser service in process: a channel to it, and how many proposals it received.
struct Endpoint {
    channel: tonic::transport::Channel,
    received: Arc<AtomicU64>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("gateways", &self.gateways.len())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Serves the network to async clients (see the module doc): every peer's Endorser
    /// service in process (its endorser while it runs, `UNAVAILABLE` while it is down), per
    /// organization the real `GatewayService` of its peer 0 (every peer's Endorser service
    /// as `EndorserHandle::Remote`, the peer's `DefinitionPolicies` with the EHR chaincode's
    /// `ReadRecord` evaluate-only as in `network/configs/dev.yaml`, the peer's
    /// `LedgerCommits` over peer 0's committer; `UNAVAILABLE` while peer 0 is down), every
    /// orderer behind an in-process `AtomicBroadcast`; a driver thread owns the harness from
    /// now on.
    ///
    /// Faults stay scriptable through [`Served::with`] (e.g. `crash_peer` / `restart_peer`,
    /// `crash_orderer` / `restart_orderer`, `partition_org`, Deliver faults): after each
    /// closure the driver hands the servers the peers that run now. A restart reopens the
    /// peer's ledger, which fails (RocksDB's lock) while a request the crashed peer was
    /// serving still holds it: a chaincode events stream of its gateway (a commit status
    /// wait ends with `UNAVAILABLE` when its peer crashes). Not while served:
    /// `delay_chaincode` (it delays the harness's own submissions only).
    ///
    /// # Errors
    /// [`Error::Setup`] if the runtime or the driver thread cannot be started;
    /// [`Error::Transport`].
    pub fn serve(self) -> Result<Served> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("harness-grpc")
            .enable_all()
            .build()?;
        let (commands, inbox) = mpsc::channel();
        let (settled_tx, settled) = watch::channel(self.settled_height());
        let net = self.network();
        let orderers = net
            .sim
            .ids()
            .into_iter()
            .map(|id| {
                let facade = Broadcast {
                    orderer: id,
                    commands: commands.clone(),
                };
                let address = format!("orderer{id}.example.com");
                let router = Server::builder().add_service(AtomicBroadcastServer::new(facade));
                let channel = inproc::serve(runtime.handle(), router, &address)?;
                Ok(OrdererEndpoint { address, channel })
            })
            .collect::<Result<Vec<_>>>()?;
        let slots = Arc::new(Slots::of(net));
        let endorsers: BTreeMap<(usize, usize), Endpoint> = slots
            .0
            .iter()
            .map(|(&(org, index), slot)| {
                let address = peer_address(org, index);
                let received = Arc::new(AtomicU64::new(0));
                let facade = PeerEndorser {
                    address: address.clone(),
                    slot: slot.subscribe(),
                    received: received.clone(),
                };
                let router = Server::builder().add_service(EndorserServer::new(facade));
                let channel = inproc::serve(runtime.handle(), router, &address)?;
                Ok(((org, index), Endpoint { channel, received }))
            })
            .collect::<Result<_>>()?;
        let definitions: Arc<dyn ChaincodeDefinitions> = net.definitions.clone();
        let mut gateways = Vec::with_capacity(net.topology.orgs);
        for org in 0..net.topology.orgs {
            let msp = msp_id(org);
            let mut peers: Vec<PeerEndpoint> = endorsers
                .iter()
                .map(|(&(org, index), endpoint)| PeerEndpoint {
                    msp_id: typed_msp_id(org),
                    address: peer_address(org, index),
                    endorser: EndorserHandle::Remote(EndorserClient::new(endpoint.channel.clone())),
                })
                .collect();
            peers.sort_by_key(|p| p.msp_id.as_str() != msp);
            let channel = ChannelGateway {
                config: net.sim.config.clone(),
                peers,
                orderers: orderers.clone(),
            };
            let policies = DefinitionPolicies::new(
                [(
                    CHANNEL.to_owned(),
                    (definitions.clone(), net.sim.config.clone()),
                )]
                .into(),
                evaluate_only(),
            );
            let own = slots.subscribe(org, 0);
            let commits = SettledCommits {
                peer: own.clone(),
                settled: settled.clone(),
            };
            let service = GatewayService::new(
                msp.parse().map_err(std::io::Error::other)?,
                [(CHANNEL.to_owned(), channel)].into(),
                Arc::new(policies),
                Arc::new(commits),
                GatewayConfig::default(),
            );
            // The gateway runs in its peer: while the peer is down it answers UNAVAILABLE, as
            // a peer process that is gone (no connection).
            let address = peer_address(org, 0);
            let down = format!("{address} is down");
            let service = InterceptedService::new(service.into_service(), move |r| {
                if own.borrow().is_some() {
                    Ok(r)
                } else {
                    Err(tonic::Status::unavailable(down.clone()))
                }
            });
            let router = Server::builder().add_service(service);
            gateways.push(inproc::serve(runtime.handle(), router, &address)?);
        }
        let failure = Arc::new(Mutex::new(None));
        let driver = {
            let failure = failure.clone();
            std::thread::Builder::new()
                .name("harness-driver".into())
                .spawn(move || {
                    drive(self, &slots, &inbox, &settled_tx, &failure);
                    // The peers' endorsers and committers (their ledgers) close here, not on
                    // the servers' threads when the runtime is dropped.
                    slots.clear();
                })?
        };
        Ok(Served {
            commands: Some(commands),
            driver: Some(driver),
            failure,
            runtime: Some(runtime),
            gateways,
            endorsers,
        })
    }
}

impl Served {
    /// A client SDK gateway of organization `org` (0-based) for `identity`, over the
    /// in-process channel to that organization's gateway.
    ///
    /// # Panics
    /// If `org` is not an organization of the network (a test's mistake).
    pub fn gateway(&self, org: usize, identity: SigningIdentity) -> Gateway {
        Gateway::connect(identity, self.channel(org))
    }

    /// The in-process gRPC channel to organization `org`'s gateway (`gateway.Gateway`).
    ///
    /// # Panics
    /// If `org` is not an organization of the network (a test's mistake).
    pub fn channel(&self, org: usize) -> tonic::transport::Channel {
        self.gateways[org].clone()
    }

    /// The in-process gRPC channel to peer `peer` of organization `org`'s Endorser service
    /// (`protos.Endorser`, as a client that calls `ProcessProposal` itself; the gateways reach
    /// every peer's endorser through it). `UNAVAILABLE` while the peer is down.
    ///
    /// # Panics
    /// If the topology has no such peer (a test's mistake).
    pub fn endorser(&self, org: usize, peer: usize) -> tonic::transport::Channel {
        self.endorsers[&(org, peer)].channel.clone()
    }

    /// How many proposals peer `peer` of organization `org`'s Endorser service received while
    /// it ran (from gateways and direct callers; as a peer's
    /// `endorser_proposal_duration_seconds` count). The harness's own
    /// [`Harness::submit`] calls the endorser directly and is not counted.
    ///
    /// # Panics
    /// If the topology has no such peer (a test's mistake).
    pub fn proposals(&self, org: usize, peer: usize) -> u64 {
        self.endorsers[&(org, peer)]
            .received
            .load(Ordering::Relaxed)
    }

    /// Runs `f` on the harness in the driver thread, between two ticks, and returns what it
    /// returns (blocks the calling thread that long).
    ///
    /// # Errors
    /// [`Error::Stopped`] if the driver stopped.
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Harness) -> R + Send + 'static,
    ) -> Result<R> {
        let (reply, answer) = mpsc::channel();
        let job: Job = Box::new(move |h| {
            let result = f(h);
            Box::new(move || {
                let _ = reply.send(result);
            })
        });
        self.commands
            .as_ref()
            .and_then(|c| c.send(Command::Run(job)).ok())
            .ok_or_else(|| self.stopped())?;
        answer.recv().map_err(|_| self.stopped())
    }

    /// A client identity enrolled at organization `org`'s CA (see [`Harness::client`]).
    ///
    /// # Errors
    /// [`Error::Stopped`] if the driver stopped.
    pub fn client(
        &self,
        org: usize,
        name: &str,
        attrs: &[(&str, &str)],
    ) -> Result<SigningIdentity> {
        self.enroll(org, name, attrs, NodeOu::Client)
    }

    /// An admin of organization `org`'s MSP (see [`Harness::admin`]).
    ///
    /// # Errors
    /// [`Error::Stopped`] if the driver stopped.
    pub fn admin(&self, org: usize, name: &str, attrs: &[(&str, &str)]) -> Result<SigningIdentity> {
        self.enroll(org, name, attrs, NodeOu::Admin)
    }

    /// `name` re-enrolled at organization `org`'s CA (see [`Harness::reenroll`]).
    ///
    /// # Errors
    /// [`Error::Stopped`] if the driver stopped; [`Error::Signing`] if the CA refuses.
    pub fn reenroll(&self, org: usize, name: &str) -> Result<SigningIdentity> {
        let name = name.to_owned();
        self.with(move |h| h.reenroll(org, &name))?
    }

    /// Enrolls `name` (NodeOU `ou`) at organization `org`'s CA on the driver thread.
    fn enroll(
        &self,
        org: usize,
        name: &str,
        attrs: &[(&str, &str)],
        ou: NodeOu,
    ) -> Result<SigningIdentity> {
        let name = name.to_owned();
        let attrs: Vec<(String, String)> = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.with(move |h| {
            let attrs: Vec<(&str, &str)> = attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            h.enroll(org, &name, &attrs, ou)
        })
    }

    /// Stops the driver and the servers; the network is dropped.
    ///
    /// # Errors
    /// [`Error::Stopped`] if the driver had failed (why).
    pub fn stop(mut self) -> Result<()> {
        self.shutdown();
        match self.failure.lock().map(|mut f| f.take()) {
            Ok(None) => Ok(()),
            Ok(Some(why)) => Err(Error::Stopped(why)),
            Err(_) => Err(Error::Stopped("the driver panicked".into())),
        }
    }

    fn stopped(&self) -> Error {
        let why = self.failure.lock().ok().and_then(|f| f.clone());
        Error::Stopped(why.unwrap_or_else(|| "the driver is gone".into()))
    }

    fn shutdown(&mut self) {
        if let Some(commands) = self.commands.take() {
            let _ = commands.send(Command::Stop);
        }
        if let Some(driver) = self.driver.take()
            && driver.join().is_err()
            && let Ok(mut f) = self.failure.lock()
        {
            f.get_or_insert_with(|| "the driver panicked".into());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The driver thread: applies commands, steps while there is work, blocks otherwise; ends on
/// [`Command::Stop`], when every command sender is gone, or when a step fails (recorded in
/// `failure`).
fn drive(
    mut harness: Harness,
    slots: &Slots,
    inbox: &Receiver<Command>,
    settled: &watch::Sender<u64>,
    failure: &Mutex<Option<String>>,
) {
    let mut grace = 0;
    loop {
        settled.send_replace(harness.settled_height());
        loop {
            match inbox.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Ok(command) => {
                    apply(&mut harness, slots, command);
                    grace = GRACE_TICKS;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        if harness.has_work() {
            grace = GRACE_TICKS;
        }
        if grace == 0 {
            match inbox.recv() {
                Ok(Command::Stop) | Err(_) => return,
                Ok(command) => {
                    apply(&mut harness, slots, command);
                    grace = GRACE_TICKS;
                }
            }
            continue;
        }
        grace -= 1;
        if let Err(e) = harness.step() {
            if let Ok(mut f) = failure.lock() {
                *f = Some(e.to_string());
            }
            return;
        }
    }
}

/// Applies one command to the harness (after a closure, the servers are handed the peers
/// that run now, before its caller is answered).
fn apply(harness: &mut Harness, slots: &Slots, command: Command) {
    match command {
        Command::Stop => {}
        Command::Run(job) => {
            let answer = job(harness);
            slots.sync(harness);
            answer();
        }
        Command::Broadcast {
            orderer,
            envelope,
            reply,
        } => {
            let sim = &mut harness.network_mut().sim;
            let answer = sim.broadcast(orderer, vec![envelope]).pop();
            let response = match answer {
                Some(verdict) => medledger_orderer::batch::broadcast_response(verdict),
                None => BroadcastResponse {
                    status: FabricStatus::InternalServerError as i32,
                    info: "the orderer gave no answer".into(),
                },
            };
            let _ = reply.send(response);
        }
    }
}

/// Orderer `orderer`'s `AtomicBroadcast` in process: Broadcast hands each envelope to the
/// driver and answers what the orderer node said (`SUCCESS`, or its refusal's status and
/// reason; `SERVICE_UNAVAILABLE` while it is down); Deliver is not served (the harness's peers
/// pull from the orderers' stores, [`crate::net::Network::pull_all`]).
struct Broadcast {
    orderer: u32,
    commands: Sender<Command>,
}

#[tonic::async_trait]
impl AtomicBroadcast for Broadcast {
    type BroadcastStream = ReceiverStream<std::result::Result<BroadcastResponse, tonic::Status>>;
    type DeliverStream = ReceiverStream<std::result::Result<DeliverResponse, tonic::Status>>;

    async fn broadcast(
        &self,
        request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> std::result::Result<tonic::Response<Self::BroadcastStream>, tonic::Status> {
        let mut input = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (orderer, commands) = (self.orderer, self.commands.clone());
        tokio::spawn(async move {
            while let Ok(Some(envelope)) = input.message().await {
                let (reply, answer) = oneshot::channel();
                let command = Command::Broadcast {
                    orderer,
                    envelope: envelope.encode_to_vec(),
                    reply,
                };
                let response = match commands.send(command) {
                    Ok(()) => answer
                        .await
                        .map_err(|_| tonic::Status::unavailable("the harness stopped")),
                    Err(_) => Err(tonic::Status::unavailable("the harness stopped")),
                };
                if tx.send(response).await.is_err() {
                    break;
                }
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }

    async fn deliver(
        &self,
        _request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> std::result::Result<tonic::Response<Self::DeliverStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "the harness's peers pull blocks from the orderers' stores",
        ))
    }
}

/// What the servers see of a peer while it runs: its endorser and committer (the driver
/// replaces them when it restarts).
#[derive(Clone)]
struct Running {
    endorser: Arc<Endorser>,
    committer: Arc<Committer>,
}

/// Every peer of the topology's slot: `Some` while it runs. The servers take a peer's
/// endorser or committer from its slot at each request and drop it after, so that a crashed
/// peer's ledger and transient store are closed and can be reopened by its restart.
struct Slots(BTreeMap<(usize, usize), watch::Sender<Option<Running>>>);

impl Slots {
    /// The slots of every peer of `net`'s topology, filled for those that run.
    fn of(net: &crate::net::Network) -> Self {
        let mut slots = BTreeMap::new();
        for org in 0..net.topology.orgs {
            for index in 0..net.topology.peers_per_org {
                slots.insert((org, index), watch::channel(None).0);
            }
        }
        let slots = Slots(slots);
        slots.sync_network(net);
        slots
    }

    /// A receiver of peer `index` of organization `org`'s slot.
    ///
    /// # Panics
    /// If the topology has no such peer (the harness's own mistake).
    fn subscribe(&self, org: usize, index: usize) -> watch::Receiver<Option<Running>> {
        self.0[&(org, index)].subscribe()
    }

    /// Empties every slot (the network is gone).
    fn clear(&self) {
        for slot in self.0.values() {
            slot.send_replace(None);
        }
    }

    /// Brings the slots in line with the peers running now (after a command that may have
    /// crashed or restarted some).
    fn sync(&self, harness: &Harness) {
        self.sync_network(harness.network());
    }

    fn sync_network(&self, net: &crate::net::Network) {
        for (&(org, index), slot) in &self.0 {
            let running = net.peers.iter().find(|p| p.org == org && p.index == index);
            let same = match (&*slot.borrow(), running) {
                (Some(r), Some(p)) => Arc::ptr_eq(&r.committer, &p.committer),
                (None, None) => true,
                _ => false,
            };
            if !same {
                slot.send_replace(running.map(|p| Running {
                    endorser: p.endorser.clone(),
                    committer: p.committer.clone(),
                }));
            }
        }
    }
}

/// `peer{index}.org{org + 1}.example.com`, as the dev network names peers.
fn peer_address(org: usize, index: usize) -> String {
    format!("peer{index}.org{}.example.com", org + 1)
}

/// A peer's `protos.Endorser` in process: its endorser while it runs, `UNAVAILABLE` while it
/// is down (as a peer process that is gone).
struct PeerEndorser {
    address: String,
    slot: watch::Receiver<Option<Running>>,
    /// Proposals given to the running peer's endorser.
    received: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl EndorserRpc for PeerEndorser {
    async fn process_proposal(
        &self,
        request: tonic::Request<SignedProposal>,
    ) -> std::result::Result<tonic::Response<ProposalResponse>, tonic::Status> {
        let endorser = self.slot.borrow().as_ref().map(|r| r.endorser.clone());
        match endorser {
            Some(endorser) => {
                self.received.fetch_add(1, Ordering::Relaxed);
                Ok(tonic::Response::new(
                    endorser.process_proposal(request.into_inner()).await,
                ))
            }
            None => Err(tonic::Status::unavailable(format!(
                "{} is down",
                self.address
            ))),
        }
    }
}

/// Resolves once the peer of `slot` is down (or its slot is gone).
async fn crashed(mut slot: watch::Receiver<Option<Running>>) {
    loop {
        if slot.borrow_and_update().is_none() {
            return;
        }
        if slot.changed().await.is_err() {
            return;
        }
    }
}

/// The gateway's commit source: its peer's [`LedgerCommits`] (taken from the peer's slot at
/// each request), answering a commit status once every running peer not cut off holds the
/// block too (see the module doc); `UNAVAILABLE` ([`CommitSourceError::ShuttingDown`]) if its
/// peer is down or crashes meanwhile.
struct SettledCommits {
    /// The gateway's own peer.
    peer: watch::Receiver<Option<Running>>,
    /// The lowest height of the running peers not cut off, after each driver step.
    settled: watch::Receiver<u64>,
}

impl SettledCommits {
    /// The commits of the gateway's peer, if it runs.
    fn ledger(&self) -> std::result::Result<LedgerCommits, CommitSourceError> {
        let committer = self.peer.borrow().as_ref().map(|r| r.committer.clone());
        committer
            .map(|c| LedgerCommits::new([c]))
            .ok_or(CommitSourceError::ShuttingDown)
    }
}

#[tonic::async_trait]
impl CommitSource for SettledCommits {
    async fn wait_for_commit(
        &self,
        channel: &str,
        tx_id: &TxId,
    ) -> std::result::Result<(TxValidationCode, u64), CommitSourceError> {
        let ledger = self.ledger()?;
        let (code, block) = tokio::select! {
            found = ledger.wait_for_commit(channel, tx_id) => found?,
            () = crashed(self.peer.clone()) => return Err(CommitSourceError::ShuttingDown),
        };
        drop(ledger);
        self.settled
            .clone()
            .wait_for(|height| *height > block)
            .await
            .map_err(|_| CommitSourceError::ShuttingDown)?;
        Ok((code, block))
    }

    async fn chaincode_events(
        &self,
        channel: &str,
        chaincode: &str,
        start: Option<u64>,
    ) -> std::result::Result<EventStream, CommitSourceError> {
        self.ledger()?
            .chaincode_events(channel, chaincode, start)
            .await
    }
}
