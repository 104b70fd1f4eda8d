//! The `gateway.Gateway` service (Fabric 2.4+ `internal/pkg/gateway`), run inside each peer:
//! endorsement planning from the chaincode's endorsement policy (and collection membership
//! when the proposal carries transient data), endorsements from one peer per required
//! organization with retry on another peer of the same organization, submission to the
//! orderers (success once f+1 accept), commit status and chaincode events from the local
//! ledger; errors as gRPC statuses with `gateway.ErrorDetail`s. Applications use the client
//! SDK, `medledger-gateway`, which links neither the endorser nor the chaincode runtime.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures::future::join_all;
use futures::stream::FuturesUnordered;
use medledger_channel::ChannelConfig;
use medledger_channel::tx::{AssemblyError, assemble_transaction};
use medledger_endorser::Endorser;
use medledger_msp::policy::{OrgPolicies, Policy, Signer};
use medledger_proto::common::{ChannelHeader, Envelope, Header, Status as CommonStatus};
use medledger_proto::gateway::{
    ChaincodeEventsRequest, ChaincodeEventsResponse, CommitStatusRequest, CommitStatusResponse,
    EndorseRequest, EndorseResponse, ErrorDetail, EvaluateRequest, EvaluateResponse,
    SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest, SubmitResponse,
    gateway_server::GatewayServer,
};
use medledger_proto::invocation::decode_invocation;
use medledger_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use medledger_proto::orderer::seek_position::Type as SeekType;
use medledger_proto::protos::endorser_client::EndorserClient;
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeEvent, Proposal, ProposalResponse, ProposalResponsePayload,
    SignedProposal, TxValidationCode,
};
use medledger_proto::rwset::TxReadWriteSet;
use medledger_proto::{MspId, TxId};
use prost::Message;
use tokio::sync::Semaphore;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

mod error;

pub use error::{CommitSourceError, ServiceError};

/// Gateway limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Requests served at once; more wait (default 500, Fabric's `gateway.concurrencyLimit`).
    pub concurrency_limit: usize,
    /// Endorsement (and evaluation) deadline (default 30 s, Fabric's `endorsementTimeout`).
    pub endorse_timeout: Duration,
    /// Submission to the orderers (default 10 s, Fabric's `broadcastTimeout`).
    pub submit_timeout: Duration,
    /// Longest wait for a commit status (default 5 min).
    pub commit_status_timeout: Duration,
    /// Commit-status requests waiting at once; more are refused with `RESOURCE_EXHAUSTED`
    /// (default 10,000): a client cannot pile up waits for transactions that never commit.
    pub max_commit_status_waits: usize,
    /// Chaincode-event streams open at once; more are refused with `RESOURCE_EXHAUSTED`
    /// (default 1,000).
    pub max_event_streams: usize,
    /// How long the gateway keeps asking again when the endorsing organizations' responses
    /// differ (default 2 s): a peer that has not yet committed the block the client just waited
    /// for at this peer simulates an older read set. Fabric's gateway avoids such a peer by
    /// choosing the highest ledger height; this one waits 50 ms, then twice as long each time,
    /// while the wait fits. Responses that still differ end in `ABORTED` "proposal response
    /// payloads do not match".
    pub mismatch_wait: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            concurrency_limit: 500,
            endorse_timeout: Duration::from_secs(30),
            submit_timeout: Duration::from_secs(10),
            commit_status_timeout: Duration::from_secs(300),
            max_commit_status_waits: 10_000,
            max_event_streams: 1_000,
            mismatch_wait: Duration::from_secs(2),
        }
    }
}

/// How the gateway reaches an endorser.
#[derive(Clone)]
pub enum EndorserHandle {
    /// The endorser of this peer (no network hop).
    Local(Arc<Endorser>),
    /// Another peer's `protos.Endorser` over gRPC (mutual TLS configured on the channel).
    Remote(EndorserClient<tonic::transport::Channel>),
}

impl EndorserHandle {
    async fn process(&self, signed: SignedProposal) -> Result<ProposalResponse, Status> {
        match self {
            EndorserHandle::Local(e) => Ok(e.process_proposal(signed).await),
            EndorserHandle::Remote(c) => Ok(c.clone().process_proposal(signed).await?.into_inner()),
        }
    }
}

/// A peer the gateway can ask for endorsements.
#[derive(Clone)]
pub struct PeerEndpoint {
    /// MSP id of its organization.
    pub msp_id: MspId,
    /// Address (for error details).
    pub address: String,
    /// How to reach it.
    pub endorser: EndorserHandle,
}

/// An orderer the gateway submits to.
#[derive(Clone, Debug)]
pub struct OrdererEndpoint {
    /// Address (for error details).
    pub address: String,
    /// Connected channel (TLS configured).
    pub channel: tonic::transport::Channel,
}

/// Which chaincode needs which endorsements.
pub trait ChaincodePolicies: Send + Sync {
    /// The endorsement policy of `chaincode` on `channel` (`None`: the channel's
    /// `Endorsement` policy), and its collections with their member MSP ids.
    fn policy(
        &self,
        channel: &str,
        chaincode: &str,
    ) -> (Option<Policy>, HashMap<String, Vec<String>>);

    /// Whether `function` of `chaincode` may only be evaluated, never endorsed for
    /// submission: its response carries data that must not go into a block, which every peer
    /// of the channel stores (e.g. the EHR chaincode's `ReadRecord`, `ReadRecords` and `LocateRecords`, ADR 0023). Default: none.
    fn evaluate_only(&self, _channel: &str, _chaincode: &str, _function: &str) -> bool {
        false
    }
}

/// The channel's default `Endorsement` policy for every chaincode, no collections.
#[derive(Debug, Default)]
pub struct DefaultPolicies;

impl ChaincodePolicies for DefaultPolicies {
    fn policy(
        &self,
        _channel: &str,
        _chaincode: &str,
    ) -> (Option<Policy>, HashMap<String, Vec<String>>) {
        (None, HashMap::new())
    }
}

/// A boxed stream of committed blocks' chaincode events.
pub type EventStream = Pin<Box<dyn Stream<Item = (u64, Vec<ChaincodeEvent>)> + Send>>;

/// What the gateway reads from its peer's ledger.
#[tonic::async_trait]
pub trait CommitSource: Send + Sync {
    /// Waits until `tx_id` is committed on `channel` (a channel name from the request, which
    /// may name no channel of the peer); its validation code and block.
    ///
    /// # Errors
    /// [`CommitSourceError`] if the ledger cannot answer.
    async fn wait_for_commit(
        &self,
        channel: &str,
        tx_id: &TxId,
    ) -> Result<(TxValidationCode, u64), CommitSourceError>;

    /// Chaincode events of `chaincode` per block from block `start` (`None`: next block),
    /// following new commits.
    ///
    /// # Errors
    /// [`CommitSourceError`] if the ledger cannot answer.
    async fn chaincode_events(
        &self,
        channel: &str,
        chaincode: &str,
        start: Option<u64>,
    ) -> Result<EventStream, CommitSourceError>;
}

/// What the gateway knows of one channel.
#[derive(Clone)]
pub struct ChannelGateway {
    /// Configuration (MSPs, policies, consenters).
    pub config: Arc<ChannelConfig>,
    /// Peers of every organization (this peer's own first).
    pub peers: Vec<PeerEndpoint>,
    /// Orderers.
    pub orderers: Vec<OrdererEndpoint>,
}

/// The service.
#[derive(Clone)]
pub struct GatewayService {
    local_msp: MspId,
    channels: Arc<HashMap<String, ChannelGateway>>,
    policies: Arc<dyn ChaincodePolicies>,
    commits: Arc<dyn CommitSource>,
    config: GatewayConfig,
    limiter: Arc<Semaphore>,
    commit_waits: Arc<Semaphore>,
    event_streams: Arc<Semaphore>,
    /// Commit-status waits held by each identity (by certificate).
    waits_by_identity: Arc<std::sync::Mutex<HashMap<[u8; 32], usize>>>,
    /// Event streams held by each identity (by certificate).
    streams_by_identity: Arc<std::sync::Mutex<HashMap<[u8; 32], usize>>>,
    /// Rotates the orderers a submission tries first, spreading admission work.
    next_orderer: Arc<AtomicUsize>,
}

struct ParsedProposal {
    channel_id: String,
    chaincode: String,
    function: String,
    has_transient: bool,
}

/// The required proposal of an Endorse or Evaluate request, with its channel and chaincode.
fn proposal_of(
    proposal: Option<SignedProposal>,
) -> Result<(SignedProposal, ParsedProposal), ServiceError> {
    let signed = proposal.ok_or(ServiceError::MissingProposal)?;
    let parsed = parse_proposal(&signed)?;
    Ok((signed, parsed))
}

fn parse_proposal(signed: &SignedProposal) -> Result<ParsedProposal, ServiceError> {
    let bad = |part| ServiceError::MalformedProposal { part };
    let p = Proposal::decode(signed.proposal_bytes.as_slice()).map_err(|_| bad("proposal"))?;
    let h = Header::decode(p.header.as_slice()).map_err(|_| bad("header"))?;
    let ch =
        ChannelHeader::decode(h.channel_header.as_slice()).map_err(|_| bad("channel header"))?;
    let invocation =
        decode_invocation(&ch.extension, &p.payload).map_err(ServiceError::Invocation)?;
    Ok(ParsedProposal {
        channel_id: ch.channel_id,
        chaincode: invocation.chaincode,
        function: invocation.function,
        has_transient: invocation.has_transient,
    })
}

/// Names of the collections of `chaincode` whose private data an endorsed response reads or
/// writes (its hashed read-write sets); empty if the response does not decode.
fn touched_collections(response: &ProposalResponse, chaincode: &str) -> Vec<String> {
    let Ok(prp) = ProposalResponsePayload::decode(response.payload.as_slice()) else {
        return Vec::new();
    };
    let Ok(action) = ChaincodeAction::decode(prp.extension.as_slice()) else {
        return Vec::new();
    };
    let Ok(rwset) = TxReadWriteSet::decode(action.results.as_slice()) else {
        return Vec::new();
    };
    rwset
        .ns_rwset
        .into_iter()
        .filter(|ns| ns.namespace == chaincode)
        .flat_map(|ns| ns.collection_hashed_rwset)
        .map(|c| c.collection_name)
        .collect()
}

/// Smallest set of organizations (in preference order) whose peers' endorsements satisfy
/// `policy`: tries sets of 1, 2, ... organizations, each organization contributing one peer
/// signature.
pub fn plan_endorsers(
    policy: &Policy,
    org_policies: &OrgPolicies,
    candidates: &[String],
) -> Option<Vec<String>> {
    let signer = |i: usize, msp: &str| Signer {
        msp_id: msp.to_owned(),
        ou: Some(medledger_msp::ou::NodeOu::Peer),
        id: [u8::try_from(i).unwrap_or(u8::MAX); 32],
    };
    let n = candidates.len().min(16);
    let mut best: Option<Vec<String>> = None;
    for mask in 1u32..(1u32 << n) {
        let size = mask.count_ones() as usize;
        if best.as_ref().is_some_and(|b| b.len() <= size) {
            continue;
        }
        let chosen: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let signers: Vec<Signer> = chosen.iter().map(|&i| signer(i, &candidates[i])).collect();
        if policy.evaluate(&signers, org_policies) {
            best = Some(chosen.iter().map(|&i| candidates[i].clone()).collect());
        }
    }
    best
}

/// How long a submission waits for its first f + 1 orderers before sending to the others too.
pub const SUBMIT_HEDGE_AFTER: Duration = Duration::from_secs(1);

/// The orderers (indices into a channel's `n` orderers) a submission sends to first — `needed`
/// of them, starting at `start` modulo `n` — and the others, in the order tried when the first
/// ones do not all accept.
fn submission_order(n: usize, needed: usize, start: usize) -> (Vec<usize>, Vec<usize>) {
    let order: Vec<usize> = (0..n).map(|k| (start + k) % n.max(1)).collect();
    let split = needed.min(n);
    (order[..split].to_vec(), order[split..].to_vec())
}

impl GatewayService {
    /// A gateway for a peer of `local_msp` (the peer's configuration's MSP id, parsed when
    /// `peer.yaml` is read).
    pub fn new(
        local_msp: MspId,
        channels: HashMap<String, ChannelGateway>,
        policies: Arc<dyn ChaincodePolicies>,
        commits: Arc<dyn CommitSource>,
        config: GatewayConfig,
    ) -> Self {
        GatewayService {
            local_msp,
            channels: Arc::new(channels),
            policies,
            commits,
            limiter: Arc::new(Semaphore::new(config.concurrency_limit.max(1))),
            commit_waits: Arc::new(Semaphore::new(config.max_commit_status_waits.max(1))),
            event_streams: Arc::new(Semaphore::new(config.max_event_streams.max(1))),
            waits_by_identity: Arc::default(),
            streams_by_identity: Arc::default(),
            config,
            next_orderer: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// As a tonic service.
    pub fn into_service(self) -> GatewayServer<Self> {
        GatewayServer::new(self)
    }

    /// Waits for a slot under the concurrency limit.
    async fn admit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ServiceError> {
        self.limiter
            .acquire()
            .await
            .map_err(|_| ServiceError::ShuttingDown)
    }

    fn channel(&self, id: &str) -> Result<&ChannelGateway, ServiceError> {
        self.channels
            .get(id)
            .ok_or_else(|| ServiceError::ChannelNotFound {
                channel: id.to_owned(),
            })
    }

    /// The endorsement plan of a proposal with transient data and no endorsing organizations
    /// named (Fabric's gateway rule: transient data never reaches a non-member). Endorses
    /// first at this gateway's own organization, which must be a member of the chaincode's
    /// collections (or the chaincode has none); reads from that response which collections
    /// the transaction touches; this organization must be a member of each. The other
    /// endorsers are planned only among organizations that are members of every touched
    /// collection. When those cannot meet the chaincode-level policy but the transaction
    /// writes private data, it goes out with their endorsements and the collection- or
    /// key-level policy that governs its writes decides at validation (the EHR chaincode's
    /// custodian-endorsed records, ADR 0020). Returns the first response and the other
    /// organizations to ask.
    ///
    /// # Errors
    /// [`ServiceError::NotCollectionMember`], [`ServiceError::ForeignCollection`] or
    /// [`ServiceError::NeedsOtherOrganizations`] (retry naming endorsing organizations) when
    /// this organization may not receive the transient data, or the transaction touches no
    /// collection and this organization alone does not satisfy the policy;
    /// [`ServiceError::Endorsements`] if the first endorsement fails.
    async fn plan_private(
        &self,
        ch: &ChannelGateway,
        parsed: &ParsedProposal,
        signed: &SignedProposal,
    ) -> Result<(ProposalResponse, Vec<String>), ServiceError> {
        let (policy, collections) = self.policies.policy(&parsed.channel_id, &parsed.chaincode);
        let first = self.local_msp.to_string();
        let is_member = |org: &str, collection: &str| {
            collections
                .get(collection)
                .is_some_and(|members| members.iter().any(|m| m == org))
        };
        if !collections.is_empty() && !collections.keys().any(|c| is_member(&first, c)) {
            return Err(ServiceError::NotCollectionMember);
        }
        let response = self
            .endorse_with_org(ch, &first, signed, true)
            .await
            .map_err(|details| ServiceError::Endorsements { details })?;
        let touched = touched_collections(&response, &parsed.chaincode);
        if touched.iter().any(|c| !is_member(&first, c)) {
            return Err(ServiceError::ForeignCollection);
        }
        let mut allowed = self.candidate_orgs(ch);
        allowed.retain(|org| *org == first || touched.iter().all(|c| is_member(org, c)));
        if touched.is_empty() {
            allowed = vec![first.clone()];
        }
        let policy = policy
            .or_else(|| ch.config.policy("Endorsement").cloned())
            .ok_or(ServiceError::NoEndorsementPolicy)?;
        let rest = match plan_endorsers(&policy, ch.config.org_policies(), &allowed) {
            Some(plan) => plan.into_iter().filter(|org| *org != first).collect(),
            None if touched.is_empty() => {
                return Err(ServiceError::NeedsOtherOrganizations);
            }
            None => Vec::new(),
        };
        Ok((response, rest))
    }

    /// Decodes and checks a signed read request: its channel is served here, its identity is
    /// valid under the channel's MSPs and signed `request`, and satisfies the channel's
    /// `Readers` policy. The request and the requester's id (by certificate).
    fn read_request<R: ReadRequest>(
        &self,
        request: &[u8],
        signature: &[u8],
    ) -> Result<(R, [u8; 32]), ServiceError> {
        let req = R::decode(request)
            .map_err(|_| ServiceError::UndecodableRequest { request: R::WHAT })?;
        let ch = self.channel(req.channel_id())?;
        let who = ch
            .config
            .msps()
            .verify(req.identity(), request, signature, SystemTime::now())
            .map_err(|source| ServiceError::Unauthenticated {
                request: R::WHAT,
                source,
            })?;
        if !ch.config.evaluate("Readers", &[who.signer()]) {
            return Err(ServiceError::NotReader);
        }
        Ok((req, *who.id()))
    }

    /// Organizations with peers, this peer's own first.
    fn candidate_orgs(&self, ch: &ChannelGateway) -> Vec<String> {
        let mut orgs: Vec<String> = Vec::new();
        for p in &ch.peers {
            if !orgs.iter().any(|o| o == p.msp_id.as_str()) {
                orgs.push(p.msp_id.to_string());
            }
        }
        orgs.sort_by_key(|o| *o != self.local_msp);
        orgs
    }

    /// One endorsement from each organization that must endorse `signed`: those the client
    /// named (`requested`), else, with transient data, the collections' members (Fabric's
    /// gateway rule), else a set that satisfies the chaincode's endorsement policy.
    ///
    /// # Errors
    /// No policy or plan, or an organization gave no endorsement (with a detail per peer).
    async fn collect_endorsements(
        &self,
        ch: &ChannelGateway,
        parsed: &ParsedProposal,
        signed: &SignedProposal,
        requested: &[String],
    ) -> Result<Vec<ProposalResponse>, ServiceError> {
        let mut responses = Vec::new();
        let orgs = if !requested.is_empty() {
            requested.to_vec()
        } else if parsed.has_transient {
            // Transient data is private: it goes only to organizations that are members of the
            // collections the transaction touches (Fabric's gateway rule).
            let (response, rest) = self.plan_private(ch, parsed, signed).await?;
            responses.push(response);
            rest
        } else {
            let (policy, _) = self.policies.policy(&parsed.channel_id, &parsed.chaincode);
            let policy = policy
                .or_else(|| ch.config.policy("Endorsement").cloned())
                .ok_or(ServiceError::NoEndorsementPolicy)?;
            let candidates = self.candidate_orgs(ch);
            plan_endorsers(&policy, ch.config.org_policies(), &candidates)
                .ok_or(ServiceError::NoEndorsementPlan)?
        };
        let results = join_all(
            orgs.iter()
                .map(|org| self.endorse_with_org(ch, org, signed, true)),
        )
        .await;
        let mut details = Vec::new();
        for r in results {
            match r {
                Ok(resp) => responses.push(resp),
                Err(d) => details.extend(d),
            }
        }
        if !details.is_empty() {
            return Err(ServiceError::Endorsements { details });
        }
        Ok(responses)
    }

    /// Asks `org`'s peers in turn for a response to `signed`; an endorsed one, or for an
    /// evaluation (`endorsed == false`) any successful one (the endorser does not sign the
    /// output of an evaluate-only function).
    async fn endorse_with_org(
        &self,
        ch: &ChannelGateway,
        org: &str,
        signed: &SignedProposal,
        endorsed: bool,
    ) -> Result<ProposalResponse, Vec<ErrorDetail>> {
        let mut details = Vec::new();
        for peer in ch.peers.iter().filter(|p| p.msp_id.as_str() == org) {
            let detail = |message: String| ErrorDetail {
                address: peer.address.clone(),
                msp_id: peer.msp_id.to_string(),
                message,
            };
            match tokio::time::timeout(
                self.config.endorse_timeout,
                peer.endorser.process(signed.clone()),
            )
            .await
            {
                Ok(Ok(r)) => {
                    let status = r.response.as_ref().map_or(0, |x| x.status);
                    if (200..400).contains(&status) && (r.endorsement.is_some() || !endorsed) {
                        return Ok(r);
                    }
                    let msg = r.response.map(|x| x.message).unwrap_or_default();
                    details.push(detail(format!("chaincode response {status}, {msg}")));
                    if status >= 400 && status != 500 {
                        break; // the chaincode refused: another peer would refuse too
                    }
                }
                Ok(Err(s)) => details.push(detail(format!("rpc error: {}", s.message()))),
                Err(_) => details.push(detail("endorsement timed out".into())),
            }
        }
        if details.is_empty() {
            details.push(ErrorDetail {
                address: String::new(),
                msp_id: org.to_owned(),
                message: "no peer of this organization is known".into(),
            });
        }
        Err(details)
    }
}

/// A signed read request (commit status, chaincode events): who asks, on which channel.
trait ReadRequest: Message + Default {
    /// How messages name the request.
    const WHAT: &'static str;
    /// The channel read.
    fn channel_id(&self) -> &str;
    /// The requester's serialized identity.
    fn identity(&self) -> &[u8];
}

impl ReadRequest for CommitStatusRequest {
    const WHAT: &'static str = "commit status request";
    fn channel_id(&self) -> &str {
        &self.channel_id
    }
    fn identity(&self) -> &[u8] {
        &self.identity
    }
}

impl ReadRequest for ChaincodeEventsRequest {
    const WHAT: &'static str = "chaincode events request";
    fn channel_id(&self) -> &str {
        &self.channel_id
    }
    fn identity(&self) -> &[u8] {
        &self.identity
    }
}

/// The part of a global cap one identity may hold: a quarter, at least one.
fn per_identity_cap(global: usize) -> usize {
    (global / 4).max(1)
}

/// One identity's hold on a bounded resource; released when dropped.
struct IdentityShare {
    counts: Arc<std::sync::Mutex<HashMap<[u8; 32], usize>>>,
    who: [u8; 32],
}

impl IdentityShare {
    /// Takes one unit for `who`, or [`ServiceError::IdentityShare`] if it holds `cap` already.
    fn take(
        counts: &Arc<std::sync::Mutex<HashMap<[u8; 32], usize>>>,
        who: [u8; 32],
        cap: usize,
        what: &'static str,
    ) -> Result<Self, ServiceError> {
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let held = map.entry(who).or_insert(0);
        if *held >= cap {
            return Err(ServiceError::IdentityShare { cap, what });
        }
        *held += 1;
        Ok(IdentityShare {
            counts: counts.clone(),
            who,
        })
    }
}

impl Drop for IdentityShare {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = map.get_mut(&self.who) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                map.remove(&self.who);
            }
        }
    }
}

type EventsStream = Pin<Box<dyn Stream<Item = Result<ChaincodeEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl medledger_proto::gateway::gateway_server::Gateway for GatewayService {
    async fn endorse(
        &self,
        request: Request<EndorseRequest>,
    ) -> Result<Response<EndorseResponse>, Status> {
        let _permit = self.admit().await?;
        let req = request.into_inner();
        let (signed, parsed) = proposal_of(req.proposed_transaction)?;
        let ch = self.channel(&parsed.channel_id)?;
        if self
            .policies
            .evaluate_only(&parsed.channel_id, &parsed.chaincode, &parsed.function)
        {
            return Err(ServiceError::EvaluateOnly {
                chaincode: parsed.chaincode,
                function: parsed.function,
            }
            .into());
        }
        let mut pause = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        let envelope = loop {
            let responses = self
                .collect_endorsements(ch, &parsed, &signed, &req.endorsing_organizations)
                .await?;
            match assemble_transaction(&signed, &responses) {
                Err(AssemblyError::PayloadMismatch)
                    if waited + pause <= self.config.mismatch_wait =>
                {
                    tokio::time::sleep(pause).await;
                    waited += pause;
                    pause *= 2;
                }
                assembled => break assembled.map_err(ServiceError::Assembly)?,
            }
        };
        Ok(Response::new(EndorseResponse {
            prepared_transaction: Some(envelope),
        }))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let _permit = self.admit().await?;
        let req = request.into_inner();
        let ch = self.channel(&req.channel_id)?;
        let envelope: Envelope = req
            .prepared_transaction
            .ok_or(ServiceError::MissingTransaction)?;
        if envelope.signature.is_empty() {
            return Err(ServiceError::UnsignedTransaction.into());
        }
        let needed = ch.config.consenters().max_faulty() + 1;
        let timeout = self.config.submit_timeout;
        let send = |o: &OrdererEndpoint| {
            let env = envelope.clone();
            let address = o.address.clone();
            let channel = o.channel.clone();
            async move {
                let mut client = AtomicBroadcastClient::new(channel);
                // The orderer's answer, or the message of the RPC's failure.
                let call = async {
                    let mut stream = client
                        .broadcast(tokio_stream::once(env))
                        .await
                        .map_err(|s| s.message().to_owned())?
                        .into_inner();
                    match stream.next().await {
                        Some(r) => r.map_err(|s| s.message().to_owned()),
                        None => Err("orderer closed the stream".to_owned()),
                    }
                };
                let detail = |message: String| ErrorDetail {
                    address,
                    msp_id: String::new(),
                    message,
                };
                match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(r)) if r.status == CommonStatus::Success as i32 => Ok(()),
                    Ok(Ok(r)) => Err(detail(format!(
                        "received unsuccessful response from orderer: status={} info={}",
                        r.status, r.info
                    ))),
                    Ok(Err(message)) => Err(detail(format!("rpc error: {message}"))),
                    Err(_) => Err(detail("submission timed out".into())),
                }
            }
        };
        // f + 1 orderers (ADR 0019): one of them is honest and forwards the envelope to every
        // other orderer (ADR 0013). Another orderer for each one that refuses or fails, as soon
        // as it does; all the others if the first ones have not answered within
        // SUBMIT_HEDGE_AFTER (an orderer that hangs).
        let start = self.next_orderer.fetch_add(1, Ordering::Relaxed);
        let (first, rest) = submission_order(ch.orderers.len(), needed, start);
        let mut in_flight: FuturesUnordered<_> =
            first.iter().map(|&i| send(&ch.orderers[i])).collect();
        let mut rest = rest.into_iter();
        let hedge = tokio::time::sleep(SUBMIT_HEDGE_AFTER.min(timeout));
        tokio::pin!(hedge);
        let mut hedged = false;
        let mut accepted = 0;
        let mut details: Vec<ErrorDetail> = Vec::new();
        loop {
            let next = tokio::select! {
                r = in_flight.next() => r,
                () = &mut hedge, if !hedged => {
                    hedged = true;
                    None
                }
            };
            match next {
                Some(Ok(())) => accepted += 1,
                Some(Err(d)) => {
                    details.push(d);
                    if let Some(i) = rest.next() {
                        in_flight.push(send(&ch.orderers[i]));
                    }
                }
                None if hedged && rest.len() > 0 => {
                    in_flight.extend(rest.by_ref().map(|i| send(&ch.orderers[i])));
                }
                None if in_flight.is_empty() => break,
                None => {}
            }
            if accepted >= needed {
                return Ok(Response::new(SubmitResponse {}));
            }
        }
        Err(ServiceError::Submission {
            accepted,
            needed,
            details,
        }
        .into())
    }

    async fn commit_status(
        &self,
        request: Request<SignedCommitStatusRequest>,
    ) -> Result<Response<CommitStatusResponse>, Status> {
        let signed = request.into_inner();
        let (req, who): (CommitStatusRequest, _) =
            self.read_request(&signed.request, &signed.signature)?;
        // An id that is not hex(SHA-256) can never commit: refuse it rather than hold a wait.
        let tx_id = TxId::new(req.transaction_id).map_err(|_| ServiceError::MalformedTxId)?;
        let _waiting = self
            .commit_waits
            .try_acquire()
            .map_err(|_| ServiceError::TooManyCommitWaits)?;
        let _mine = IdentityShare::take(
            &self.waits_by_identity,
            who,
            per_identity_cap(self.config.max_commit_status_waits),
            "commit-status requests",
        )?;
        let wait = self.commits.wait_for_commit(&req.channel_id, &tx_id);
        let (code, block) = tokio::time::timeout(self.config.commit_status_timeout, wait)
            .await
            .map_err(|_| ServiceError::CommitTimeout)?
            .map_err(ServiceError::Commits)?;
        Ok(Response::new(CommitStatusResponse {
            result: code as i32,
            block_number: block,
        }))
    }

    async fn evaluate(
        &self,
        request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let _permit = self.admit().await?;
        let req = request.into_inner();
        let (signed, parsed) = proposal_of(req.proposed_transaction)?;
        let ch = self.channel(&parsed.channel_id)?;
        let orgs = if req.target_organizations.is_empty() && parsed.has_transient {
            // Transient data stays with this gateway's organization unless the client names
            // others.
            vec![self.local_msp.to_string()]
        } else if req.target_organizations.is_empty() {
            self.candidate_orgs(ch)
        } else {
            req.target_organizations.clone()
        };
        let mut details = Vec::new();
        for org in &orgs {
            match self.endorse_with_org(ch, org, &signed, false).await {
                Ok(r) => {
                    return Ok(Response::new(EvaluateResponse { result: r.response }));
                }
                Err(d) => {
                    let refused = d
                        .iter()
                        .any(|x| x.message.starts_with("chaincode response 4"));
                    details.extend(d);
                    if refused {
                        break;
                    }
                }
            }
        }
        // Fabric's codes: a chaincode's refusal is `UNKNOWN` with the chaincode's status and
        // message (applications match on both), anything else `ABORTED`.
        let refusal = details
            .last()
            .filter(|d| d.message.starts_with("chaincode response "))
            .map(|d| d.message.clone());
        Err(match refusal {
            Some(refusal) => ServiceError::ChaincodeRefused { refusal, details },
            None => ServiceError::Evaluation { details },
        }
        .into())
    }

    type ChaincodeEventsStream = EventsStream;

    async fn chaincode_events(
        &self,
        request: Request<SignedChaincodeEventsRequest>,
    ) -> Result<Response<Self::ChaincodeEventsStream>, Status> {
        let signed = request.into_inner();
        let (req, who): (ChaincodeEventsRequest, _) =
            self.read_request(&signed.request, &signed.signature)?;
        let open = self
            .event_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| ServiceError::TooManyEventStreams)?;
        let open = (
            open,
            IdentityShare::take(
                &self.streams_by_identity,
                who,
                per_identity_cap(self.config.max_event_streams),
                "chaincode-event streams",
            )?,
        );
        let start = match req.start_position.and_then(|p| p.r#type) {
            Some(SeekType::Specified(s)) => Some(s.number),
            Some(SeekType::Oldest(_)) => Some(0),
            _ => None,
        };
        let events = self
            .commits
            .chaincode_events(&req.channel_id, &req.chaincode_id, start)
            .await
            .map_err(ServiceError::Commits)?;
        // `after_transaction_id` applies within the start block only (Fabric's semantics).
        let mut after = (!req.after_transaction_id.is_empty()).then_some(req.after_transaction_id);
        let stream = events.filter_map(move |(block, evs)| {
            // The stream holds its permit until the client closes it.
            let _open = &open;
            let evs: Vec<ChaincodeEvent> = match after.take() {
                Some(tx) => match evs.iter().position(|e| e.tx_id == tx) {
                    Some(i) => evs[i + 1..].to_vec(),
                    None => evs,
                },
                None => evs,
            };
            (!evs.is_empty()).then_some(Ok(ChaincodeEventsResponse {
                events: evs,
                block_number: block,
            }))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::submission_order;

    #[test]
    fn submission_order_rotates_and_covers_every_orderer() {
        assert_eq!(submission_order(4, 2, 0), (vec![0, 1], vec![2, 3]));
        assert_eq!(submission_order(4, 2, 3), (vec![3, 0], vec![1, 2]));
        assert_eq!(submission_order(4, 2, 9), (vec![1, 2], vec![3, 0]));
        assert_eq!(submission_order(1, 2, 5), (vec![0], vec![]));
        assert_eq!(submission_order(0, 1, 0), (vec![], vec![]));
    }
}
