//! The harness's API: [`Harness::builder`] builds a network of N organizations × M peers over
//! the orderer cluster, under one printed seed; [`Harness::submit`] endorses a transaction on
//! one peer of every reachable organization and submits it to the orderers;
//! [`Harness::run_until_committed`] advances virtual time (no sleeps) until every running
//! peer committed it; the fault methods script crashes, partitions, Deliver faults and slow
//! chaincode.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use medledger_ca::{Profile, build_csr};
use medledger_channel::block;
use medledger_channel::tx::assemble_transaction;
use medledger_gateway::proposal::build_proposal;
use medledger_ledger::Ledger;
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_orderer::sim::{CHANNEL, env_seed, pb_batch::BatchConfig};
use medledger_peer::verify::{Divergence, Verified};
use medledger_proto::MspId;
use medledger_proto::protos::TxValidationCode;
use prost::Message;

use crate::error::{Error, Result};
use crate::net::{CHAINCODE, DeliverFault, Network, Topology};

/// Virtual ms between two rounds of orderer, client and peer work.
pub const TICK_MS: u64 = 10;

/// Builds a [`Harness`]: 2 organizations of 1 peer and 4 orderers unless told otherwise,
/// seeded from the `SEED` env var (else the clock).
#[derive(Debug, Clone)]
pub struct Builder {
    topology: Topology,
    seed: Option<u64>,
    batch: BatchConfig,
}

impl Builder {
    /// `n` application organizations (at least 2: the orderer cluster's clients need two).
    pub fn orgs(mut self, n: usize) -> Self {
        self.topology.orgs = n;
        self
    }

    /// `m` peers in every organization.
    pub fn peers_per_org(mut self, m: usize) -> Self {
        self.topology.peers_per_org = m;
        self
    }

    /// `n` BFT orderers (n = 3f + 1 tolerates f faulty ones).
    pub fn orderers(mut self, n: u32) -> Self {
        self.topology.orderers = n;
        self
    }

    /// The seed of every random choice (instead of `SEED` or the clock).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How the orderers cut blocks.
    pub fn batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// The network, its seed printed as `SEED=…` so that a failing run can be replayed.
    ///
    /// # Errors
    /// [`Error::Setup`], [`Error::Ledger`], [`Error::Peer`].
    pub fn build(self) -> Result<Harness> {
        let seed = self.seed.unwrap_or_else(env_seed);
        println!("SEED={seed}");
        Ok(Harness {
            net: Network::new(seed, self.batch, self.topology)?,
            chaincode_delay: HashMap::new(),
            pending: Vec::new(),
        })
    }
}

/// A transaction endorsed and signed, waiting for its slowest endorsement.
struct Pending {
    /// Virtual ms at which it goes to the orderers.
    at: u64,
    /// The serialized envelope.
    envelope: Vec<u8>,
}

/// The whole network in one process under virtual time (see the crate doc).
pub struct Harness {
    net: Network,
    /// Per organization: how long its chaincode takes, virtual ms.
    chaincode_delay: HashMap<usize, u64>,
    pending: Vec<Pending>,
}

impl Harness {
    /// A builder: 2 organizations of 1 peer, 4 orderers, blocks of up to 10 transactions cut
    /// after 100 virtual ms.
    pub fn builder() -> Builder {
        Builder {
            topology: Topology {
                orgs: 2,
                peers_per_org: 1,
                orderers: 4,
            },
            seed: None,
            batch: BatchConfig {
                max_message_count: 10,
                preferred_max_bytes: 0,
                absolute_max_bytes: 0,
                batch_timeout_ms: 100,
            },
        }
    }

    /// The seed the run uses.
    pub fn seed(&self) -> u64 {
        self.net.sim.seed
    }

    /// Virtual time, ms since the start (shared by orderers and peers).
    pub fn now_ms(&self) -> u64 {
        self.net.sim.time
    }

    /// The network underneath (orderer cluster, peers).
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The network underneath, to script what the methods do not (e.g. a Byzantine orderer).
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// A client identity enrolled at organization `org`'s CA with attributes `attrs` (e.g.
    /// `("ehr.role", "registrar")`).
    pub fn client(&mut self, org: usize, name: &str, attrs: &[(&str, &str)]) -> SigningIdentity {
        self.enroll(org, name, attrs, NodeOu::Client)
    }

    /// An admin of organization `org`'s MSP (NodeOU `admin`, as the dev network's
    /// `<org>-admin`), enrolled at its CA with `attrs`; see [`Harness::client`].
    ///
    /// # Panics
    /// As [`Harness::client`].
    pub fn admin(&mut self, org: usize, name: &str, attrs: &[(&str, &str)]) -> SigningIdentity {
        self.enroll(org, name, attrs, NodeOu::Admin)
    }

    /// `name`, enrolled earlier at organization `org`'s CA, re-enrolled there: a new key
    /// and certificate for the same registered identity (the same person, as `medledger ca
    /// reenroll`), with its registered attributes.
    ///
    /// # Errors
    /// [`Error::Signing`] if the CA refuses (e.g. `name` is not registered).
    pub fn reenroll(&mut self, org: usize, name: &str) -> Result<SigningIdentity> {
        let signing = |e: &dyn std::fmt::Display| Error::Signing(format!("reenroll {name}: {e}"));
        let key = SigningKey::generate().map_err(|e| signing(&e))?;
        let csr = build_csr(&key, name, &[]).map_err(|e| signing(&e))?;
        let org = &mut self.net.sim.ch.orgs[org];
        let issued = org
            .ca
            .reenroll(name, &csr, Profile::Ecert, &[])
            .map_err(|e| signing(&e))?;
        let cert = Certificate::from_pem(issued.cert_pem.as_bytes()).map_err(|e| signing(&e))?;
        SigningIdentity::new(org.msp_id.clone(), cert, key).map_err(|e| signing(&e))
    }

    /// An identity of NodeOU `ou` enrolled at organization `org`'s CA with `attrs`.
    pub(crate) fn enroll(
        &mut self,
        org: usize,
        name: &str,
        attrs: &[(&str, &str)],
        ou: NodeOu,
    ) -> SigningIdentity {
        self.net.sim.ch.orgs[org].identity(name, ou, attrs)
    }

    /// Endorses `args` (function first) from `client` on the first running peer of every
    /// organization not partitioned away, assembles and signs the transaction and queues it
    /// for the orderers: it goes to every orderer once the slowest endorsing organization's
    /// chaincode delay has passed. Returns its tx id.
    ///
    /// # Errors
    /// [`Error::Signing`]; [`Error::Refused`] if no peer endorsed it or two endorsements
    /// differ.
    pub fn submit(
        &mut self,
        client: &SigningIdentity,
        args: &[&str],
        transient: &[(&str, &[u8])],
    ) -> Result<String> {
        let orgs: Vec<usize> = (0..self.net.topology.orgs).collect();
        self.submit_endorsed_by(client, &orgs, args, transient)
    }

    /// As [`Harness::submit`], endorsed by organizations `orgs` only (as a client naming its
    /// endorsing organizations, e.g. to keep transient private data on the collection's
    /// members): the first running peer of each that is not partitioned away.
    ///
    /// # Errors
    /// As [`Harness::submit`].
    pub fn submit_endorsed_by(
        &mut self,
        client: &SigningIdentity,
        orgs: &[usize],
        args: &[&str],
        transient: &[(&str, &[u8])],
    ) -> Result<String> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let transient: BTreeMap<String, Vec<u8>> = transient
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        let built = build_proposal(client, CHANNEL, CHAINCODE, &args, &transient)
            .map_err(|e| Error::Signing(e.to_string()))?;
        let mut responses = Vec::new();
        let mut delay = 0;
        for &org in orgs {
            if self.net.cut_off.contains(&org) {
                continue;
            }
            let Some(peer) = self.net.peers.iter().find(|p| p.org == org) else {
                continue;
            };
            let response = self.net.runtime.block_on(
                peer.endorser
                    .process_proposal_at(built.signed.clone(), SystemTime::now()),
            );
            let status = response.response.as_ref().map_or(0, |r| r.status);
            if !(200..400).contains(&status) || response.endorsement.is_none() {
                let message = response
                    .response
                    .as_ref()
                    .map(|r| r.message.clone())
                    .unwrap_or_default();
                return Err(Error::Refused {
                    msp_id: peer.msp_id.clone(),
                    status,
                    message,
                });
            }
            delay = delay.max(self.chaincode_delay.get(&org).copied().unwrap_or(0));
            responses.push(response);
        }
        let mut envelope =
            assemble_transaction(&built.signed, &responses).map_err(|e| Error::Refused {
                msp_id: String::new(),
                status: 0,
                message: e.to_string(),
            })?;
        envelope.signature = client
            .sign(&envelope.payload)
            .map_err(|e| Error::Signing(e.to_string()))?;
        self.pending.push(Pending {
            at: self.net.sim.time + delay,
            envelope: envelope.encode_to_vec(),
        });
        Ok(built.tx_id)
    }

    /// Sends every queued transaction that is due to every running orderer; keeps those no
    /// orderer accepted.
    fn release(&mut self) {
        let now = self.net.sim.time;
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            let accepted = if p.at <= now {
                self.net
                    .sim
                    .ids()
                    .into_iter()
                    .map(|id| self.net.sim.submit(id, vec![p.envelope.clone()]))
                    .sum()
            } else {
                0
            };
            if accepted == 0 {
                self.pending.push(p);
            }
        }
    }

    /// One tick: queued transactions that are due go out, the orderers run [`TICK_MS`] of
    /// virtual time, every reachable peer pulls and commits.
    ///
    /// # Errors
    /// A peer's ledger failure.
    pub fn step(&mut self) -> Result<()> {
        self.release();
        self.net.sim.run_until(TICK_MS, |_| false);
        self.net.pull_all()
    }

    /// Whether stepping would make progress: transactions queued, envelopes in a running
    /// orderer's pool, or a peer not cut off below the highest running orderer's chain.
    pub(crate) fn has_work(&self) -> bool {
        let sim = &self.net.sim;
        let ids = sim.ids();
        if !self.pending.is_empty()
            || ids
                .iter()
                .any(|id| sim.node(*id).is_some_and(|n| n.pending() > 0))
        {
            return true;
        }
        let top = ids
            .iter()
            .filter(|id| sim.is_up(**id))
            .map(|id| sim.height(*id))
            .max()
            .unwrap_or(0);
        self.net
            .peers
            .iter()
            .any(|p| !self.net.cut_off.contains(&p.org) && p.committer.ledger().height() < top)
    }

    /// The lowest ledger height of the running peers not cut off (`u64::MAX` if there are
    /// none: nothing to wait for).
    pub(crate) fn settled_height(&self) -> u64 {
        let net = &self.net;
        net.peers
            .iter()
            .filter(|p| !net.cut_off.contains(&p.org))
            .map(|p| p.committer.ledger().height())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Runs `ms` of virtual time.
    ///
    /// # Errors
    /// A peer's ledger failure.
    pub fn run_for(&mut self, ms: u64) -> Result<()> {
        let end = self.net.sim.time + ms;
        while self.net.sim.time < end {
            self.step()?;
        }
        Ok(())
    }

    /// Runs until every running peer (partitioned ones included) committed every one of
    /// `tx_ids`, for at most `limit_ms` of virtual time.
    ///
    /// # Errors
    /// [`Error::Timeout`] if they did not; a peer's ledger failure.
    pub fn run_until_committed(&mut self, tx_ids: &[String], limit_ms: u64) -> Result<()> {
        self.run_until(limit_ms, |net| {
            let mut missing = 0;
            for peer in &net.peers {
                let ledger = peer.committer.ledger();
                for tx_id in tx_ids {
                    if ledger
                        .tx_location(&tx_id.parse().map_err(std::io::Error::other)?)
                        .map_err(|e| ledger_error(peer, e))?
                        .is_none()
                    {
                        missing += 1;
                    }
                }
            }
            Ok((missing > 0).then(|| format!("{missing} (peer, transaction) commits missing")))
        })
    }

    /// Runs until every running peer's ledger is as high as the highest running orderer's
    /// chain, for at most `limit_ms` of virtual time.
    ///
    /// # Errors
    /// [`Error::Timeout`] if they are not; a peer's ledger failure.
    pub fn run_until_synced(&mut self, limit_ms: u64) -> Result<()> {
        self.run_until(limit_ms, |net| {
            let sim = &net.sim;
            let top = sim
                .ids()
                .into_iter()
                .filter(|id| sim.is_up(*id))
                .map(|id| sim.height(id))
                .max()
                .unwrap_or(0);
            let behind = net
                .peers
                .iter()
                .filter(|p| p.committer.ledger().height() < top)
                .count();
            Ok((behind > 0).then(|| format!("{behind} peers below height {top}")))
        })
    }

    /// Steps until `missing` (what is still missing, if anything) says nothing is, for at
    /// most `limit_ms` of virtual time.
    fn run_until(
        &mut self,
        limit_ms: u64,
        missing: impl Fn(&Network) -> Result<Option<String>>,
    ) -> Result<()> {
        let end = self.net.sim.time + limit_ms;
        loop {
            let Some(what) = missing(&self.net)? else {
                return Ok(());
            };
            if self.net.sim.time >= end {
                return Err(Error::Timeout {
                    waited_ms: limit_ms,
                    what,
                });
            }
            self.step()?;
        }
    }

    /// Running peers as (organization, peer) pairs, in order.
    pub fn peers(&self) -> Vec<(usize, usize)> {
        self.net.peers.iter().map(|p| (p.org, p.index)).collect()
    }

    /// Peer `peer` of organization `org`'s ledger.
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`] if it does not run.
    pub fn ledger(&self, org: usize, peer: usize) -> Result<&Ledger> {
        self.net
            .peers
            .iter()
            .find(|p| p.org == org && p.index == peer)
            .map(|p| p.committer.ledger().as_ref())
            .ok_or(Error::NoSuchPeer { org, peer })
    }

    /// The directory of peer `peer` of organization `org`'s files (its ledger's block store
    /// and RocksDB in `ledger/`, its transient store in `transient/`), to scan what it keeps
    /// on disk; the harness removes it when dropped.
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`] if it does not run.
    pub fn peer_dir(&self, org: usize, peer: usize) -> Result<std::path::PathBuf> {
        self.ledger(org, peer)?;
        Ok(self.net.peer_dir(org, peer))
    }

    /// The header hashes of peer `peer` of organization `org`'s blocks, genesis first.
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`], [`Error::Ledger`].
    pub fn block_hashes(&self, org: usize, peer: usize) -> Result<Vec<[u8; 32]>> {
        let ledger = self.ledger(org, peer)?;
        let err = |error| Error::Ledger {
            msp_id: crate::net::msp_id(org),
            error,
        };
        (0..ledger.height())
            .map(|n| {
                let b = ledger.block(n).map_err(err)?;
                Ok(b.and_then(|b| b.header)
                    .map_or([0; 32], |h| block::header_hash(&h)))
            })
            .collect()
    }

    /// Peer `peer` of organization `org`'s digest of what every peer derives from the blocks
    /// alone (world state, history, hashed private state, tx index).
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`], [`Error::Ledger`].
    pub fn state_digest(&self, org: usize, peer: usize) -> Result<[u8; 32]> {
        self.ledger(org, peer)?
            .public_digest()
            .map_err(|error| Error::Ledger {
                msp_id: crate::net::msp_id(org),
                error,
            })
    }

    /// `tx_id`'s validation code on peer `peer` of organization `org`, if committed there.
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`], [`Error::Ledger`].
    pub fn validation_code(
        &self,
        org: usize,
        peer: usize,
        tx_id: &str,
    ) -> Result<Option<TxValidationCode>> {
        self.ledger(org, peer)?
            .tx_validation_code(&tx_id.parse().map_err(std::io::Error::other)?)
            .map_err(|error| Error::Ledger {
                msp_id: crate::net::msp_id(org),
                error,
            })
    }

    /// Crashes peer `peer` of organization `org`: its process state (endorser, committer,
    /// source monitor) is gone, its directory (ledger and transient store) stays. Served
    /// ([`Harness::serve`]), its Endorser service and, for peer 0, its organization's gateway
    /// answer `UNAVAILABLE` until it restarts.
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`] if it does not run.
    pub fn crash_peer(&mut self, org: usize, peer: usize) -> Result<()> {
        self.net.crash_peer(org, peer)
    }

    /// Restarts a crashed peer: reopens its ledger and transient store from its directory;
    /// it catches up by pulling (committing with the private data its transient store kept)
    /// and reconciles the private data it lacks.
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`] if it was not crashed; [`Error::Ledger`], [`Error::Peer`].
    pub fn restart_peer(&mut self, org: usize, peer: usize) -> Result<()> {
        self.net.restart_peer(org, peer)
    }

    /// Verifies crashed peer `peer` of organization `org`'s ledger from scratch, as
    /// `medledger ledger verify` does a stopped peer's
    /// ([`medledger_peer::verify::verify_ledger`]): the hash chain, every block's orderer
    /// signatures and a replay into a scratch ledger (validation codes, commit hashes, world
    /// state, history, hashed private state), and every private value it holds against its
    /// on-chain hash. The inner result is the verification's: what was checked, or the first
    /// divergence. Served, crash the peer in one [`Served::with`](crate::Served::with) call
    /// and verify in the next (the servers let go of a crashed peer's ledger in between).
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`] if it is not crashed (a running peer holds its ledger open);
    /// [`Error::Setup`] for the scratch directory; [`Error::Peer`] if the replay's own
    /// ledger fails.
    pub fn verify_ledger(
        &self,
        org: usize,
        peer: usize,
    ) -> Result<std::result::Result<Verified, Divergence>> {
        if !self.net.is_crashed(org, peer) {
            return Err(Error::NoSuchPeer { org, peer });
        }
        let scratch = tempfile::tempdir()?;
        let msp_id = crate::net::msp_id(org);
        let typed = MspId::new(msp_id.clone()).map_err(std::io::Error::other)?;
        medledger_peer::verify::verify_ledger(
            &self.net.ledger_dir(org, peer),
            &CHANNEL.parse().map_err(std::io::Error::other)?,
            self.net.definitions.clone(),
            &typed,
            scratch.path(),
        )
        .map_err(|error| Error::Peer { msp_id, error })
    }

    /// Cuts organization `org`'s peers off: they neither pull blocks nor endorse.
    pub fn partition_org(&mut self, org: usize) {
        self.net.cut_off.insert(org);
    }

    /// Ends every partition (of organizations and of orderers).
    pub fn heal(&mut self) {
        self.net.cut_off.clear();
        self.net.sim.heal();
    }

    /// Orderer `id` serves peers no block and no header (it still orders).
    pub fn stall_deliver(&mut self, id: u32) {
        self.net.deliver_faults.insert(id, DeliverFault::Withhold);
    }

    /// Orderer `id` serves peers falsified blocks ([`DeliverFault::Resplit`],
    /// [`DeliverFault::Forge`]; [`DeliverFault::Fork`] needs [`Network::forks`]).
    pub fn falsify_deliver(&mut self, id: u32, fault: DeliverFault) {
        self.net.deliver_faults.insert(id, fault);
    }

    /// Orderer `id` serves peers honestly again.
    pub fn restore_deliver(&mut self, id: u32) {
        self.net.deliver_faults.remove(&id);
    }

    /// Crashes orderer `id` (it keeps its flushed WAL and blocks).
    pub fn crash_orderer(&mut self, id: u32) {
        self.net.sim.crash(id);
    }

    /// Restarts orderer `id` from its disk.
    pub fn restart_orderer(&mut self, id: u32) {
        self.net.sim.start(id);
    }

    /// Organization `org`'s chaincode takes `delay` of virtual time: a transaction it endorses
    /// reaches the orderers that much later.
    pub fn delay_chaincode(&mut self, org: usize, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.chaincode_delay.insert(org, ms);
    }
}

/// A peer's ledger error.
fn ledger_error(peer: &crate::net::Peer, error: medledger_ledger::Error) -> Error {
    Error::Ledger {
        msp_id: peer.msp_id.clone(),
        error,
    }
}
