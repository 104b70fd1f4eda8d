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

use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use medledger_gateway::client::Gateway;
use medledger_gateway_server::{
    ChannelGateway, CommitSource, CommitSourceError, EndorserHandle, EventStream, GatewayConfig,
    GatewayService, OrdererEndpoint, PeerEndpoint,
};
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_orderer::sim::CHANNEL;
use medledger_peer::definitions::ChaincodeDefinitions;
use medledger_peer::node::DefinitionPolicies;
use medledger_peer::node::commits::LedgerCommits;
use medledger_proto::TxId;
use medledger_proto::common::{Envelope, Status as FabricStatus};
use medledger_proto::invocation::canonical_function;
use medledger_proto::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
use medledger_proto::orderer::{BroadcastResponse, DeliverResponse};
use medledger_proto::protos::TxValidationCode;
use prost::Message;
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::error::{Error, Result};
use crate::harness::Harness;
use crate::inproc;
use crate::net::{CHAINCODE, msp_id};

/// Ticks the driver keeps stepping after it last saw work: consensus messages still in
/// flight once an orderer's pool is empty (a block takes a few network delays of at most 10
/// virtual ms each to decide).
pub const GRACE_TICKS: u32 = 30;

/// A closure run on the harness by the driver thread.
type Job = Box<dyn FnOnce(&mut Harness) + Send>;

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
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("gateways", &self.gateways.len())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Serves the network to async clients (see the module doc): per organization the real
    /// `GatewayService` of its peer 0 (every running peer's endorser as
    /// `EndorserHandle::Local`, the peer's `DefinitionPolicies` with the EHR chaincode's
    /// `ReadRecord` evaluate-only as in `network/configs/dev.yaml`, the peer's
    /// `LedgerCommits` over peer 0's committer), every orderer behind an in-process
    /// `AtomicBroadcast`; a driver thread owns the harness from now on.
    ///
    /// Faults stay scriptable through [`Served::with`] (e.g. `crash_orderer` /
    /// `restart_orderer`, `partition_org`, Deliver faults). Not while served: crashing or
    /// restarting a peer (its gateway keeps the endorser, and so the ledger, it was built
    /// with) and `delay_chaincode` (it delays the harness's own submissions only).
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
        let definitions: Arc<dyn ChaincodeDefinitions> = net.definitions.clone();
        let evaluate_only: HashSet<String> = [canonical_function(
            ehr_chaincode::functions::READ_RECORD.as_bytes(),
        )]
        .into();
        let mut gateways = Vec::with_capacity(net.topology.orgs);
        for org in 0..net.topology.orgs {
            let msp = msp_id(org);
            let mut peers: Vec<PeerEndpoint> = net
                .peers
                .iter()
                .map(|p| PeerEndpoint {
                    msp_id: p.msp_id.clone(),
                    address: format!("peer{}.org{}.example.com", p.index, p.org + 1),
                    endorser: EndorserHandle::Local(p.endorser.clone()),
                })
                .collect();
            peers.sort_by_key(|p| p.msp_id != msp);
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
                [(CHAINCODE.to_owned(), evaluate_only.clone())].into(),
            );
            let own = net.peers.iter().filter(|p| p.org == org).take(1);
            let commits = SettledCommits {
                ledger: LedgerCommits::new(own.map(|p| p.committer.clone())),
                settled: settled.clone(),
            };
            let service = GatewayService::new(
                &msp,
                [(CHANNEL.to_owned(), channel)].into(),
                Arc::new(policies),
                Arc::new(commits),
                GatewayConfig::default(),
            );
            let router = Server::builder().add_service(service.into_service());
            let address = format!("peer0.org{}.example.com", org + 1);
            gateways.push(inproc::serve(runtime.handle(), router, &address)?);
        }
        let failure = Arc::new(Mutex::new(None));
        let driver = {
            let failure = failure.clone();
            std::thread::Builder::new()
                .name("harness-driver".into())
                .spawn(move || drive(self, &inbox, &settled_tx, &failure))?
        };
        Ok(Served {
            commands: Some(commands),
            driver: Some(driver),
            failure,
            runtime: Some(runtime),
            gateways,
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
            let _ = reply.send(f(h));
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
                    apply(&mut harness, command);
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
                    apply(&mut harness, command);
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

/// Applies one command to the harness.
fn apply(harness: &mut Harness, command: Command) {
    match command {
        Command::Stop => {}
        Command::Run(job) => job(harness),
        Command::Broadcast {
            orderer,
            envelope,
            reply,
        } => {
            let sim = &mut harness.network_mut().sim;
            let answer = sim.broadcast(orderer, vec![envelope]).pop();
            let response = match answer {
                Some(Ok(())) => BroadcastResponse {
                    status: FabricStatus::Success as i32,
                    info: String::new(),
                },
                Some(Err(rejection)) => BroadcastResponse {
                    status: rejection.status as i32,
                    info: rejection.reason,
                },
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

/// The gateway's commit source: its peer's [`LedgerCommits`], answering a commit status once
/// every running peer not cut off holds the block too (see the module doc).
struct SettledCommits {
    ledger: LedgerCommits,
    /// The lowest height of the running peers not cut off, after each driver step.
    settled: watch::Receiver<u64>,
}

#[tonic::async_trait]
impl CommitSource for SettledCommits {
    async fn wait_for_commit(
        &self,
        channel: &str,
        tx_id: &TxId,
    ) -> std::result::Result<(TxValidationCode, u64), CommitSourceError> {
        let (code, block) = self.ledger.wait_for_commit(channel, tx_id).await?;
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
        self.ledger
            .chaincode_events(channel, chaincode, start)
            .await
    }
}
