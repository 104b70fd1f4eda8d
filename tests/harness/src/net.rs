//! The simulated network: the orderer cluster ([`Sim`]), peers in every organization (real
//! endorser, committer, RocksDB ledger and durable transient store), block delivery from
//! orderers to peers with the peer's own source-switching rules, private data reconciled
//! between member peers, the Byzantine orderers' delivery faults, crashed and restarted
//! peers, organizations cut off from the network.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medledger_channel::bft::{self, CommitSignature, VoteKind};
use medledger_channel::block;
use medledger_channel::testing::TestChannel;
use medledger_endorser::{Endorser, EndorserConfig, InProcessExecutor};
use medledger_ledger::TransientStore;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_msp::policy::{Policy, SignaturePolicy};
use medledger_orderer::sim::{Byzantine, CHANNEL, NetConfig, Sim, pb_batch::BatchConfig};
use medledger_peer::committer::Committer;
use medledger_peer::definitions::{ChaincodeDefinition, CollectionDefinition, InMemoryDefinitions};
use medledger_peer::endorsement::{PeerChannelContext, PeerTransientStore};
use medledger_peer::node::pull::{SourceMonitor, start_index};
use medledger_peer::privdata::{acceptable_private, locate_missing};
use medledger_peer::validator::BlockPrivateData;
use medledger_proto::MspId;
use medledger_proto::common::{Block, BlockMetadataIndex, Envelope};
use prost::Message;
use serde::Serialize;

use crate::error::{Error, Result};

/// The chaincode every peer runs.
pub const CHAINCODE: &str = "ehr";
/// How long an attested block may stay undelivered before a peer leaves its source (the
/// peer's default `block_censorship_timeout`).
const CENSORSHIP_TIMEOUT: Duration = Duration::from_secs(5);
/// Virtual ms between two reconciliation rounds of a peer whose height did not change (the
/// peer's `RECONCILE_INTERVAL`); a peer that committed blocks reconciles in the same tick.
const RECONCILE_MS: u64 = 1_000;

/// How a Byzantine orderer serves blocks to peers (its consensus behaviour is a
/// [`Byzantine`] mode of the cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeliverFault {
    /// Re-splits blocks: serves a decided block's header and signatures with only the first
    /// half of its entries (a one-entry block with its entry twice).
    Resplit,
    /// Forges an entry: serves a decided block with its first entry's signature altered.
    Forge,
    /// Withholds: serves no block and no header.
    Withhold,
    /// Serves a forked chain (variant 0 or 1) that the Byzantine orderers sign together:
    /// only possible when they hold a quorum (2f + 1 = 3 of 4). Decided block n is served
    /// without its entries at positions i with i + n ≡ variant (mod 3) (unchanged if that
    /// leaves none), chained to the fork's previous block, with a commit certificate of the
    /// Byzantine consenters.
    Fork(u8),
}

/// The forked chains the Byzantine orderers serve once they hold a quorum.
pub struct Forks {
    /// The Byzantine consenters that sign fork blocks (id, identity).
    signers: Vec<(u32, Arc<SigningIdentity>)>,
    /// Per variant, fork blocks 1, 2, … (index = number - 1).
    chains: [Vec<Block>; 2],
}

impl Forks {
    /// Forks signed by `signers`.
    pub fn new(signers: Vec<(u32, Arc<SigningIdentity>)>) -> Self {
        Forks {
            signers,
            chains: [Vec::new(), Vec::new()],
        }
    }

    /// Fork block `number` of `variant`, derived from the decided blocks orderer `from`
    /// stores (as far as they go).
    fn block(&mut self, sim: &Sim, from: u32, variant: u8, number: u64) -> Option<Block> {
        let v = usize::from(variant % 2);
        while (self.chains[v].len() as u64) < number {
            let n = self.chains[v].len() as u64 + 1;
            let decided = sim.blocks(from).get(usize::try_from(n).ok()?)?;
            let previous = match self.chains[v].last() {
                Some(b) => b.header.as_ref()?,
                None => sim.blocks(from).first()?.header.as_ref()?,
            };
            let previous_hash = block::header_hash(previous);
            let entries: Vec<Vec<u8>> = decided.data.as_ref()?.data.clone();
            let kept: Vec<Vec<u8>> = entries
                .iter()
                .enumerate()
                .filter(|(i, _)| (*i as u64 + n) % 3 != u64::from(variant % 3))
                .map(|(_, e)| e.clone())
                .collect();
            let kept = if kept.is_empty() { entries } else { kept };
            let mut forged = block::new_block(n, &previous_hash, kept);
            let time_ms = bft::ordering_time(decided).map_or(0, bft::time_ms);
            let header = forged.header.as_ref()?;
            let value = bft::value_id(&block::header_hash(header), time_ms);
            let mut signatures = Vec::with_capacity(self.signers.len());
            for (id, identity) in &self.signers {
                let bytes =
                    bft::vote_sign_bytes(CHANNEL, VoteKind::Precommit, n, 0, Some(&value), *id);
                signatures.push(CommitSignature {
                    consenter: *id,
                    signature: identity.sign(&bytes).ok()?,
                });
            }
            block::set_metadata_bytes(
                &mut forged,
                BlockMetadataIndex::Signatures,
                bft::signatures_metadata(0, time_ms, &signatures),
            );
            self.chains[v].push(forged);
        }
        self.chains[v]
            .get(usize::try_from(number).ok()?.checked_sub(1)?)
            .cloned()
    }
}

/// How many nodes of each kind the network has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// Application organizations (at least 2).
    pub orgs: usize,
    /// Endorsing and committing peers per organization.
    pub peers_per_org: usize,
    /// BFT orderers (n = 3f + 1 tolerates f faulty ones).
    pub orderers: u32,
}

/// The EHR chaincode definition for `orgs` organizations, as the dev network defines it
/// (`medledger_devnet::generate::chaincode_definition`): the channel's `MAJORITY
/// Endorsement` policy (for two organizations the dev network's `AND` of both), one PHI
/// collection per organization, `<MSPID>PHI`, its only member, whose peers alone endorse its
/// private writes (ADR 0020), and per ordered pair of organizations the share collection
/// `<Custodian>-to-<Grantee>-PHI` of both, endorsed by the custodian's peers (ADR 0029).
fn ehr_definition(orgs: usize) -> Result<ChaincodeDefinition> {
    let mut def = ChaincodeDefinition::with_default_policy(CHAINCODE);
    let parse = |p: String| {
        p.parse::<SignaturePolicy>()
            .map_err(|e| Error::Signing(format!("policy {p}: {e}")))
    };
    let mut collections = Vec::new();
    for custodian in (0..orgs).map(msp_id) {
        collections.push((
            ehr_chaincode::ids::default_collection(&custodian),
            format!("'{custodian}.member'"),
            custodian.clone(),
        ));
        for grantee in (0..orgs).map(msp_id).filter(|g| *g != custodian) {
            if let Some(name) = ehr_chaincode::ids::share_collection(&custodian, &grantee) {
                let members = format!("OR('{custodian}.member','{grantee}.member')");
                collections.push((name, members, custodian.clone()));
            }
        }
    }
    for (name, members, endorser) in collections {
        def.collections.insert(
            name.clone(),
            CollectionDefinition {
                name,
                member_orgs: parse(members)?,
                endorsement_policy: Some(Policy::Signature(parse(format!("'{endorser}.peer'"))?)),
                block_to_live: 0,
            },
        );
    }
    Ok(def)
}

/// The functions of the EHR chaincode that are only evaluated, as `network/configs/dev.yaml`'s
/// `evaluate_only` (ADR 0023): `ehr_chaincode::PHI_RESPONSE_FUNCTIONS` (`ReadRecord`,
/// `ReadRecords`, `LocateRecords`), whose responses are PHI or clear ids, canonical as the
/// peer reads the configuration. Every peer's endorser returns their responses unendorsed,
/// and the gateways refuse to endorse them for ordering.
pub(crate) fn evaluate_only() -> HashMap<String, HashSet<String>> {
    let functions = ehr_chaincode::PHI_RESPONSE_FUNCTIONS
        .iter()
        .map(|f| medledger_proto::invocation::canonical_function(f.as_bytes()))
        .collect();
    [(CHAINCODE.to_owned(), functions)].into()
}

/// MSP id of organization index `i` (0-based): `Org{i+1}MSP`.
pub fn msp_id(i: usize) -> String {
    format!("Org{}MSP", i + 1)
}

/// [`msp_id`] as a typed id.
pub fn typed_msp_id(i: usize) -> medledger_proto::MspId {
    #[allow(clippy::expect_used)] // `Org{n}MSP` is ASCII letters and digits: always within the rule
    medledger_proto::MspId::new(msp_id(i)).expect("Org{n}MSP follows the MSP id rule")
}

/// A running peer.
pub struct Peer {
    /// Its organization's index (0-based).
    pub org: usize,
    /// Its index in its organization (0-based).
    pub index: usize,
    /// Its organization.
    pub msp_id: String,
    /// Its signing identity (NodeOU peer): endorsements.
    pub identity: Arc<SigningIdentity>,
    /// Validates and commits blocks into its ledger.
    pub committer: Arc<Committer>,
    /// Endorses proposals with the EHR chaincode.
    pub endorser: Arc<Endorser>,
    /// Private data of the transactions it endorsed, until they commit: the peer's durable
    /// transient store (RocksDB in its directory), which survives a crash and restart.
    pub transient: Arc<TransientStore>,
    monitor: SourceMonitor,
    /// Height and virtual ms of its last reconciliation round.
    reconciled: (u64, u64),
    /// Blocks it refused (bad signatures, data hash mismatch, broken chain).
    pub refused: u64,
    /// Times it left its source orderer.
    pub switches: u64,
}

/// The whole network.
pub struct Network {
    /// How many nodes of each kind it has.
    pub topology: Topology,
    /// The orderer cluster.
    pub sim: Sim,
    /// The running peers, by organization then index (with one peer per organization and
    /// none crashed: index = organization index).
    pub peers: Vec<Peer>,
    /// Crashed peers: their identity, to restart them on their ledger.
    crashed: Vec<(usize, usize, Arc<SigningIdentity>)>,
    /// Organizations whose peers are cut off: they neither pull blocks nor endorse.
    pub cut_off: HashSet<usize>,
    /// Byzantine orderers' delivery faults.
    pub deliver_faults: HashMap<u32, DeliverFault>,
    /// The forks Byzantine orderers holding a quorum serve ([`DeliverFault::Fork`]).
    pub forks: Option<Forks>,
    /// Runs the endorser's futures (in-process chaincode: they complete at once).
    pub runtime: tokio::runtime::Runtime,
    base: Instant,
    genesis: Block,
    pub(crate) definitions: Arc<InMemoryDefinitions>,
    dir: tempfile::TempDir,
}

impl Network {
    /// A fresh network: a channel with `topology`'s organizations and consenters (new CAs),
    /// the cluster seeded with `seed` cutting blocks by `batch`, its peers each on a ledger
    /// in a temporary directory, all honest.
    ///
    /// # Errors
    /// [`Error::Setup`], [`Error::Ledger`], [`Error::Peer`].
    pub fn new(seed: u64, batch: BatchConfig, topology: Topology) -> Result<Self> {
        let ch = TestChannel::new(CHANNEL, topology.orgs, topology.orderers);
        let mut sim = Sim::with_channel(ch, Some(batch), seed);
        sim.net = NetConfig {
            drop: 0.0,
            delay_ms: (1, 10),
        };
        let genesis = sim.blocks(1)[0].clone();
        let definitions = Arc::new(InMemoryDefinitions::new());
        definitions.insert(ehr_definition(topology.orgs)?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut net = Network {
            topology,
            sim,
            peers: Vec::with_capacity(topology.orgs * topology.peers_per_org),
            crashed: Vec::new(),
            cut_off: HashSet::new(),
            deliver_faults: HashMap::new(),
            forks: None,
            runtime,
            base: Instant::now(),
            genesis,
            definitions,
            dir: tempfile::tempdir()?,
        };
        for org in 0..topology.orgs {
            for index in 0..topology.peers_per_org {
                let name = format!("peer{index}");
                let identity = Arc::new(net.sim.ch.orgs[org].identity(&name, NodeOu::Peer, &[]));
                let peer = net.open_peer(org, index, identity)?;
                net.peers.push(peer);
            }
        }
        Ok(net)
    }

    /// Peer `index` of organization `org` on its ledger directory (created or reopened).
    fn open_peer(&self, org: usize, index: usize, identity: Arc<SigningIdentity>) -> Result<Peer> {
        let msp = msp_id(org);
        std::fs::create_dir_all(self.peer_dir(org, index))?;
        let ledger = medledger_ledger::Ledger::open(
            &self.ledger_dir(org, index),
            &CHANNEL.parse().map_err(std::io::Error::other)?,
            &medledger_ledger::LedgerConfig::default(),
        )
        .map_err(|error| Error::Ledger {
            msp_id: msp.clone(),
            error,
        })?;
        let typed_msp =
            MspId::new(msp.clone()).map_err(|e| Error::Setup(std::io::Error::other(e)))?;
        let channel = ledger.channel_id().clone();
        let committer = Arc::new(
            Committer::new(
                Arc::new(ledger),
                Some(&self.genesis),
                self.definitions.clone(),
                typed_msp.clone(),
            )
            .map_err(|error| Error::Peer {
                msp_id: msp.clone(),
                error,
            })?,
        );
        let transient = Arc::new(
            TransientStore::open(&self.peer_dir(org, index).join("transient")).map_err(
                |error| Error::Transient {
                    msp_id: msp.clone(),
                    error,
                },
            )?,
        );
        // The EHR contract in process, behind the peer's query system chaincodes (`qscc`,
        // `cscc`) as a peer process has them.
        let system = Arc::new(medledger_peer::scc::SystemChaincodes::new(Arc::new(
            InProcessExecutor(ehr_chaincode::contract()),
        )));
        system.add_channel(committer.clone());
        let endorser = Arc::new(
            Endorser::new(
                identity.clone(),
                system,
                Arc::new(PeerTransientStore(transient.clone())),
                EndorserConfig::default(),
            )
            .with_evaluate_only(evaluate_only()),
        );
        endorser.add_channel(
            channel,
            Arc::new(PeerChannelContext::new(
                committer.clone(),
                self.definitions.clone(),
                typed_msp,
            )),
        );
        let orderers = self.topology.orderers as usize;
        let name = format!("peer{index}.org{}.example.com", org + 1);
        Ok(Peer {
            org,
            index,
            monitor: SourceMonitor::new(orderers, start_index(&name, orderers), CENSORSHIP_TIMEOUT),
            msp_id: msp,
            identity,
            committer,
            endorser,
            transient,
            reconciled: (0, 0),
            refused: 0,
            switches: 0,
        })
    }

    /// Where peer `index` of organization `org` keeps its files: its ledger (`ledger/`) and
    /// its transient store (`transient/`), as a peer's data directory.
    pub(crate) fn peer_dir(&self, org: usize, index: usize) -> PathBuf {
        self.dir.path().join(format!("{}-peer{index}", msp_id(org)))
    }

    /// Where peer `index` of organization `org` keeps its ledger.
    pub(crate) fn ledger_dir(&self, org: usize, index: usize) -> PathBuf {
        self.peer_dir(org, index).join("ledger")
    }

    /// Crashes peer `index` of organization `org`: its endorser, committer and source monitor
    /// are dropped (its ledger and transient store are closed), its directory stays.
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`] if it does not run.
    pub fn crash_peer(&mut self, org: usize, index: usize) -> Result<()> {
        let at = self
            .peers
            .iter()
            .position(|p| p.org == org && p.index == index)
            .ok_or(Error::NoSuchPeer { org, peer: index })?;
        let peer = self.peers.remove(at);
        self.crashed.push((org, index, peer.identity));
        Ok(())
    }

    /// Restarts crashed peer `index` of organization `org` on its directory (its ledger and
    /// the private data its transient store holds for transactions not yet committed).
    ///
    /// # Errors
    /// [`Error::NoSuchPeer`] if it was not crashed; [`Error::Ledger`], [`Error::Peer`].
    pub fn restart_peer(&mut self, org: usize, index: usize) -> Result<()> {
        let at = self
            .crashed
            .iter()
            .position(|(o, i, _)| *o == org && *i == index)
            .ok_or(Error::NoSuchPeer { org, peer: index })?;
        let (_, _, identity) = self.crashed.remove(at);
        let peer = self.open_peer(org, index, identity)?;
        let at = self
            .peers
            .iter()
            .position(|p| (p.org, p.index) > (org, index))
            .unwrap_or(self.peers.len());
        self.peers.insert(at, peer);
        Ok(())
    }

    /// Whether peer `index` of organization `org` is crashed (not restarted yet).
    pub(crate) fn is_crashed(&self, org: usize, index: usize) -> bool {
        self.crashed
            .iter()
            .any(|(o, i, _)| (*o, *i) == (org, index))
    }

    /// Virtual time as the peers' monotonic clock.
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.sim.time)
    }

    /// Heights each orderer shows the peers through its header stream (last attested block
    /// number + 1): a silent or withholding orderer shows nothing (0).
    fn attested(&self) -> Vec<u64> {
        self.sim
            .ids()
            .into_iter()
            .map(|id| {
                let silent = self.sim.byzantine.get(&id) == Some(&Byzantine::Silent)
                    || self.deliver_faults.get(&id) == Some(&DeliverFault::Withhold);
                if silent { 0 } else { self.sim.height(id) }
            })
            .collect()
    }

    /// Every peer not cut off pulls what its source serves and commits it, with the private
    /// data its transient store holds for the block's transactions (removed once committed,
    /// as the peer does); a refused block or a source that withholds attested blocks for the
    /// censorship timeout makes it switch orderer. Then the peers reconcile the private data
    /// they lack ([`Network::reconcile`]).
    ///
    /// # Errors
    /// A ledger or transient store failure, or an error other than a refused block.
    pub fn pull_all(&mut self) -> Result<()> {
        let attested = self.attested();
        let now = self.now();
        for peer in &mut self.peers {
            if self.cut_off.contains(&peer.org) {
                continue;
            }
            loop {
                let height = peer.committer.ledger().height();
                let source = peer.monitor.source() as u32 + 1;
                let Some(block) = deliver(
                    &self.sim,
                    &self.deliver_faults,
                    self.forks.as_mut(),
                    source,
                    height,
                ) else {
                    break;
                };
                let (private, found) = private_data(&block, peer)?;
                match peer.committer.commit_block(block, &private) {
                    Ok(_) => {
                        for (tx_id, height) in &found {
                            peer.transient.remove_at(tx_id, *height).map_err(|error| {
                                Error::Transient {
                                    msp_id: peer.msp_id.clone(),
                                    error,
                                }
                            })?;
                        }
                    }
                    Err(medledger_peer::Error::BlockRefused { .. }) => {
                        peer.refused += 1;
                        peer.switches += 1;
                        peer.monitor.failed(&attested);
                        break;
                    }
                    Err(error) => {
                        return Err(Error::Peer {
                            msp_id: peer.msp_id.clone(),
                            error,
                        });
                    }
                }
            }
            let height = peer.committer.ledger().height();
            if peer.monitor.poll(height, &attested, now).is_some() {
                peer.switches += 1;
            }
        }
        self.reconcile()
    }

    /// Private data between member peers, as the peer's reconciler
    /// (`medledger_peer::privdata::Reconciler`) fetches it over the `PrivateData` service:
    /// every running peer not cut off that lacks private data of a collection its
    /// organization is a member of (a share endorsed by the custodian alone, a second peer of
    /// the endorsing organization) asks the other running member peers not cut off, the
    /// transaction's endorsers' organizations first (`locate_missing`), checks each answer
    /// against the block's hashes (`acceptable_private`) and stores the first that matches.
    /// A peer reconciles in the tick it committed blocks (Fabric's committer pulls missing
    /// private data from other peers before it moves on) and every [`RECONCILE_MS`] after;
    /// what no reachable peer holds stays missing until a later round.
    ///
    /// # Errors
    /// A ledger failure.
    pub fn reconcile(&mut self) -> Result<()> {
        let now = self.sim.time;
        for at in 0..self.peers.len() {
            let peer = &self.peers[at];
            let height = peer.committer.ledger().height();
            let (last_height, last_ms) = peer.reconciled;
            if self.cut_off.contains(&peer.org)
                || (height == last_height && now < last_ms + RECONCILE_MS)
            {
                continue;
            }
            self.reconcile_peer(peer)?;
            self.peers[at].reconciled = (height, now);
        }
        Ok(())
    }

    /// One reconciliation round of `peer` (see [`Network::reconcile`]).
    fn reconcile_peer(&self, peer: &Peer) -> Result<()> {
        let ledger = peer.committer.ledger();
        let ledger_err = |p: &Peer| {
            let msp_id = p.msp_id.clone();
            move |error: medledger_ledger::Error| Error::Ledger { msp_id, error }
        };
        let peer_err = |error: medledger_peer::Error| Error::Peer {
            msp_id: peer.msp_id.clone(),
            error,
        };
        for m in ledger.missing_private().map_err(ledger_err(peer))? {
            let Some(source) =
                locate_missing(ledger, self.definitions.as_ref(), &m).map_err(peer_err)?
            else {
                continue;
            };
            // The PrivateData service answers member organizations' peers only.
            if !source.orgs.contains(&peer.msp_id) {
                continue;
            }
            let holders = source.orgs.iter().flat_map(|org| {
                self.peers.iter().filter(move |p| {
                    p.msp_id == *org
                        && (p.org, p.index) != (peer.org, peer.index)
                        && !self.cut_off.contains(&p.org)
                })
            });
            for holder in holders {
                let served = holder
                    .committer
                    .ledger()
                    .private_rwset(m.block_num, m.tx_num, &m.namespace, &m.collection)
                    .map_err(ledger_err(holder))?;
                let Some(bytes) = served else { continue };
                if acceptable_private(ledger, &bytes, &source.hashes, &m).map_err(peer_err)? {
                    ledger
                        .reconcile_private(&m, &bytes)
                        .map_err(ledger_err(peer))?;
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Block `number` as orderer `id` serves it to a peer, after its delivery fault.
fn deliver(
    sim: &Sim,
    faults: &HashMap<u32, DeliverFault>,
    forks: Option<&mut Forks>,
    id: u32,
    number: u64,
) -> Option<Block> {
    if sim.byzantine.get(&id) == Some(&Byzantine::Silent) {
        return None;
    }
    let mut block = sim.blocks(id).get(usize::try_from(number).ok()?)?.clone();
    match faults.get(&id) {
        None => {}
        Some(DeliverFault::Withhold) => return None,
        Some(DeliverFault::Fork(variant)) => return forks?.block(sim, id, *variant, number),
        Some(DeliverFault::Resplit) => {
            let data = block.data.as_mut()?;
            if data.data.len() > 1 {
                let half = data.data.len() / 2;
                data.data.truncate(half);
            } else if let Some(first) = data.data.first().cloned() {
                data.data.push(first);
            }
        }
        Some(DeliverFault::Forge) => {
            let data = block.data.as_mut()?;
            let first = data.data.first_mut()?;
            if let Ok(mut env) = Envelope::decode(first.as_slice()) {
                if let Some(b) = env.signature.last_mut() {
                    *b ^= 0x5a;
                }
                *first = env.encode_to_vec();
            }
        }
    }
    Some(block)
}

/// Private data of `block`'s transactions, by position, that `peer`'s transient store
/// holds, and the (tx id, simulation height) of those entries, to remove once committed.
///
/// # Errors
/// [`Error::Transient`] if the store cannot be read.
fn private_data(block: &Block, peer: &Peer) -> Result<(BlockPrivateData, Vec<(String, u64)>)> {
    let mut private = BlockPrivateData::new();
    let mut found = Vec::new();
    for (i, entry) in block::entries(block).iter().enumerate() {
        let Some(tx_id) = envelope_tx_id(entry) else {
            continue;
        };
        let stored = peer
            .transient
            .get(&tx_id)
            .map_err(|error| Error::Transient {
                msp_id: peer.msp_id.clone(),
                error,
            })?;
        if let Some((height, rwset)) = stored {
            private.insert(i as u64, rwset);
            found.push((tx_id, height));
        }
    }
    Ok((private, found))
}

/// The tx id in a serialized envelope's channel header, if it parses.
pub fn envelope_tx_id(bytes: &[u8]) -> Option<String> {
    let env = Envelope::decode(bytes).ok()?;
    Some(
        medledger_channel::envelope::parse(&env)
            .ok()?
            .tx_id()
            .to_owned(),
    )
}
