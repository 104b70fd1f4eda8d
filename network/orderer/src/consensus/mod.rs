//! The BFT consensus engine: Tendermint from Malachite's core
//! (`arc-malachitebft-core-consensus`), behind an API of our own so the engine can be swapped.
//!
//! [`Engine`] is pure: each call takes an input (a cluster message, a timer that fired, a
//! value the node built or validated) and returns [`Output`]s for the caller to carry out in
//! order: write WAL records (and flush them before anything after them is sent), broadcast
//! messages, set timers, build a value, write a decided block. It never touches sockets,
//! files or clocks. Malachite's types never leave this module: inputs and outputs are our
//! protobuf messages (`medledger.orderer`) and plain Rust types.
//!
//! The context ([`context`]) instantiates Tendermint with height = block number, value = the
//! block header (id = Fabric's header hash), address = consenter id, ECDSA P-256 signatures
//! over `medledger_channel::bft` sign bytes (channel, height, round and vote type included) and
//! a round-robin proposer. Values are delivered as `ProposalAndParts`: the core sees only the
//! header; the node streams and validates the envelopes and reports validity with
//! [`Engine::proposed_value`].

mod codec;
mod context;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arc_malachitebft_core_consensus as mc;
use arc_malachitebft_core_types as mt;
use medledger_channel::bft::CommitSignature;
use medledger_channel::config::ConsenterSet;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::medledger::orderer as pb;
use mt::{Validator as _, ValidatorSet as _};

pub use codec::WireError;
pub use context::BatchHeader;
use context::{BlockHash, ConsenterId, Ctx, Height, Signature, ValidatorSet};

/// The wire form of a block header.
pub fn header_to_wire(h: &BatchHeader) -> pb::BatchHeader {
    codec::header_to_wire(h)
}

/// A block header from its wire form; `None` if absent or the hashes are not 32 bytes.
pub fn header_from_wire(h: Option<&pb::BatchHeader>) -> Option<BatchHeader> {
    codec::header_from_wire(h).ok()
}

/// The envelopes (serialized `common.Envelope`) of a proposed block, shared.
pub type Envelopes = Arc<Vec<Vec<u8>>>;

/// A valid value recovered from the WAL: its header and envelopes.
pub type RecoveredValue = (BatchHeader, Vec<Vec<u8>>);

/// Consensus timeouts (Tendermint's propose / prevote / precommit waits). Each grows by its
/// delta per round, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// Wait for a proposal before prevoting nil (default 3 s). Must exceed the batch timeout.
    pub propose: Duration,
    /// Wait after 2f+1 prevotes for anything (default 1 s).
    pub prevote: Duration,
    /// Wait after 2f+1 precommits for anything (default 1 s).
    pub precommit: Duration,
    /// Added to each wait per round (default 500 ms).
    pub delta: Duration,
    /// Re-send own votes after this long in a round without progress (default 5 s).
    pub rebroadcast: Duration,
    /// Upper bound of any wait (default 60 s).
    pub max: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            propose: Duration::from_secs(3),
            prevote: Duration::from_secs(1),
            precommit: Duration::from_secs(1),
            delta: Duration::from_millis(500),
            rebroadcast: Duration::from_secs(5),
            max: Duration::from_secs(60),
        }
    }
}

impl TimeoutConfig {
    fn linear(&self) -> mt::LinearTimeouts {
        mt::LinearTimeouts {
            propose: self.propose,
            propose_delta: self.delta,
            prevote: self.prevote,
            prevote_delta: self.delta,
            precommit: self.precommit,
            precommit_delta: self.delta,
            rebroadcast: self.rebroadcast,
            max_timeout: self.max,
        }
    }
}

/// A consensus timer, opaque to the caller: set by [`Output::SetTimer`], handed back to
/// [`Engine::timeout`] when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timer(mt::Timeout);

impl Timer {
    /// Whether this is the propose, prevote or precommit wait (not rebroadcast).
    pub fn is_step(&self) -> bool {
        matches!(
            self.0.kind,
            mt::TimeoutKind::Propose | mt::TimeoutKind::Prevote | mt::TimeoutKind::Precommit
        )
    }
}

/// What the engine asks the caller to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Append this record to the height's write-ahead log. Every record must be durable
    /// (fsynced) before any later [`Output::Broadcast`] leaves the process.
    Wal(pb::WalEntry),
    /// Send to every other consenter.
    Broadcast(pb::ClusterMessage),
    /// Start (or restart) a timer.
    SetTimer(Timer, Duration),
    /// Stop a timer.
    CancelTimer(Timer),
    /// Stop every consensus timer.
    CancelAllTimers,
    /// A round started.
    RoundStarted {
        /// Block number.
        height: u64,
        /// Round.
        round: u32,
        /// Its proposer.
        proposer: u32,
    },
    /// We are the proposer: build a block for (height, round) and call [`Engine::propose`]
    /// before the propose timeout.
    GetValue {
        /// Block number.
        height: u64,
        /// Round.
        round: u32,
    },
    /// We re-propose a value from an earlier round: stream its envelopes again for `round`.
    Restream {
        /// Block number.
        height: u64,
        /// The new round.
        round: u32,
        /// Proof-of-lock round.
        pol_round: i64,
        /// Header hash of the value.
        value_id: [u8; 32],
    },
    /// A block was decided: write it with these precommit signatures as SIGNATURES metadata.
    Decided {
        /// Block number.
        height: u64,
        /// Decision round.
        round: i64,
        /// Header hash of the decided block.
        value_id: [u8; 32],
        /// ≥ 2f+1 precommit signatures, by consenter id.
        signatures: Vec<CommitSignature>,
    },
    /// The height is finished; the next may start.
    Finalized {
        /// Block number.
        height: u64,
    },
}

/// A consensus failure that must stop the orderer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// WAL replay re-derived a message different from the one recorded: continuing could
    /// sign two different messages for one (height, round, type).
    #[error("WAL replay diverged at height {height}, round {round}: {detail}")]
    ReplayDiverged {
        /// Block number.
        height: u64,
        /// Round.
        round: i64,
        /// The core's message.
        detail: String,
    },
    /// A WAL record does not decode.
    #[error("WAL record {index} of height {height} is malformed: {error}")]
    BadWalRecord {
        /// Height of the WAL.
        height: u64,
        /// Record index.
        index: usize,
        /// Why (in the message, not a source: a report of the chain names it once, ADR
        /// 0036).
        error: WireError,
    },
}

/// Effect handler state (disjoint from the core's `State`).
struct Io {
    channel: String,
    me: ConsenterId,
    signer: Arc<SigningIdentity>,
    timeouts: mt::LinearTimeouts,
    out: Vec<Output>,
    replaying: bool,
    /// Envelopes of valid values seen at this height, for WAL records.
    bodies: HashMap<BlockHash, Envelopes>,
    failed: Option<EngineError>,
}

/// The Tendermint engine of one orderer.
pub struct Engine {
    state: mc::State<Ctx>,
    io: Io,
    validators: ValidatorSet,
    quorum: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("me", &self.io.me.0)
            .field("height", &self.height())
            .field("round", &self.round())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for consenter `me` of `consenters` on `channel`, signing with `signer` (its
    /// identity must be the consenter's).
    pub fn new(
        channel: &str,
        me: u32,
        signer: Arc<SigningIdentity>,
        consenters: &ConsenterSet,
        timeouts: TimeoutConfig,
    ) -> Self {
        let validators = ValidatorSet::from_consenters(consenters);
        let params = mc::Params {
            address: ConsenterId(me),
            threshold_params: mc::ThresholdParams::default(),
            value_payload: mt::ValuePayload::ProposalAndParts,
            enabled: true,
        };
        let state = mc::State::new(
            Ctx,
            Height(1),
            validators.clone(),
            params,
            // Buffered inputs for future heights: heights kept, inputs per height.
            16,
            4096,
        );
        Engine {
            state,
            io: Io {
                channel: channel.to_owned(),
                me: ConsenterId(me),
                signer,
                timeouts: timeouts.linear(),
                out: Vec::new(),
                replaying: false,
                bodies: HashMap::new(),
                failed: None,
            },
            quorum: consenters.quorum(),
            validators,
        }
    }

    /// Current height (block number being decided).
    pub fn height(&self) -> u64 {
        self.state.height().0
    }

    /// Current round (−1 before the height started).
    pub fn round(&self) -> i64 {
        self.state.round().as_i64()
    }

    /// Round-robin proposer of (height, round).
    pub fn proposer(&self, height: u64, round: u32) -> Option<u32> {
        self.validators.proposer(height, round).map(|v| v.id.0)
    }

    /// Inputs (votes, proposals) the core holds for heights it has not started.
    pub fn buffered_inputs(&self) -> usize {
        self.state.input_queue.size()
    }

    /// Whether the current height has been decided.
    pub fn decided(&self) -> bool {
        self.state.decided_value().is_some()
    }

    /// Starts `height` (the previous one must have been finalized, or this is a restart).
    ///
    /// # Errors
    /// [`EngineError`] if the core reports a fatal condition.
    pub fn start_height(&mut self, height: u64) -> Result<Vec<Output>, EngineError> {
        self.io.bodies.clear();
        self.run(mc::Input::StartHeight(
            Height(height),
            self.validators.clone(),
            false,
            None,
            mt::VoteExtensionPolicy::Disabled,
        ))
    }

    /// Restarts `height` from its write-ahead log: the records are replayed through the core,
    /// which re-derives our votes and proposals and reuses the recorded signatures (it stops
    /// with [`EngineError::ReplayDiverged`] rather than sign anything different). Returns the
    /// outputs and the valid values (header, envelopes) the log held.
    ///
    /// # Errors
    /// [`EngineError::BadWalRecord`], [`EngineError::ReplayDiverged`].
    pub fn restart_from_wal(
        &mut self,
        height: u64,
        records: &[pb::WalEntry],
    ) -> Result<(Vec<Output>, Vec<RecoveredValue>), EngineError> {
        let mut inputs = Vec::with_capacity(records.len());
        let mut bodies = Vec::new();
        for (index, r) in records.iter().enumerate() {
            if r.height != height {
                continue;
            }
            let (input, body) = codec::wal_input(r).map_err(|error| EngineError::BadWalRecord {
                height,
                index,
                error,
            })?;
            if let Some((header, envelopes)) = body {
                self.io
                    .bodies
                    .insert(mt::Value::id(&header), Arc::new(envelopes.clone()));
                bodies.push((header, envelopes));
            }
            inputs.push(input);
        }
        self.state.index_wal_entries(inputs.iter());
        self.io.replaying = true;
        let mut out = self.run(mc::Input::StartHeight(
            Height(height),
            self.validators.clone(),
            true,
            None,
            mt::VoteExtensionPolicy::Disabled,
        ));
        for input in inputs {
            if out.is_err() {
                break;
            }
            let more = self.run(input);
            out = out.and_then(|mut o| {
                more.map(|m| {
                    o.extend(m);
                    o
                })
            });
        }
        self.state.reset_entries_index();
        self.io.replaying = false;
        Ok((out?, bodies))
    }

    /// Our proposal for (height, round): the header of a block we built and its envelopes.
    ///
    /// # Errors
    /// [`EngineError`] if the core reports a fatal condition.
    pub fn propose(
        &mut self,
        height: u64,
        round: u32,
        header: BatchHeader,
        envelopes: Envelopes,
    ) -> Result<Vec<Output>, EngineError> {
        self.io.bodies.insert(mt::Value::id(&header), envelopes);
        self.run(mc::Input::Propose(mc::LocallyProposedValue::new(
            Height(height),
            mt::Round::new(round),
            header,
        )))
    }

    /// A value streamed by the proposer of (height, round), assembled and validated by the
    /// node: `valid` is the validation verdict. Only valid values may be voted for.
    ///
    /// # Errors
    /// [`EngineError`] if the core reports a fatal condition.
    #[allow(clippy::too_many_arguments)]
    pub fn proposed_value(
        &mut self,
        height: u64,
        round: u32,
        pol_round: i64,
        proposer: u32,
        header: BatchHeader,
        envelopes: Option<Envelopes>,
        valid: bool,
    ) -> Result<Vec<Output>, EngineError> {
        if let (true, Some(body)) = (valid, envelopes) {
            self.io.bodies.insert(mt::Value::id(&header), body);
        }
        let valid_round = codec::opt_round_from_wire(pol_round).unwrap_or(mt::Round::Nil);
        self.run(mc::Input::ProposedValue(
            mc::ProposedValue {
                height: Height(height),
                round: mt::Round::new(round),
                valid_round,
                proposer: ConsenterId(proposer),
                value: header,
                validity: mt::Validity::from_bool(valid),
            },
            mt::ValueOrigin::Consensus,
        ))
    }

    /// A consensus message (vote, proposal, polka or round certificate) from consenter
    /// `from`. Other message kinds are ignored (empty output).
    ///
    /// Malformed messages (bad lengths, rounds out of range, unknown vote types) are dropped
    /// and logged at debug level; signatures are verified by the core through our effects.
    ///
    /// # Errors
    /// [`EngineError`] if the core reports a fatal condition.
    pub fn message(
        &mut self,
        from: u32,
        msg: &pb::ClusterMessage,
    ) -> Result<Vec<Output>, EngineError> {
        use pb::cluster_message::Message as M;
        let input = match msg.message.as_ref() {
            Some(M::Vote(v)) => codec::signed_vote_from_wire(v).map(mc::Input::Vote),
            Some(M::Proposal(p)) => codec::signed_proposal_from_wire(p).map(mc::Input::Proposal),
            Some(M::PolkaCertificate(c)) => {
                codec::polka_from_wire(c).map(mc::Input::PolkaCertificate)
            }
            Some(M::RoundCertificate(c)) => {
                codec::round_cert_from_wire(c).map(mc::Input::RoundCertificate)
            }
            _ => return Ok(Vec::new()),
        };
        match input {
            Ok(input) => self.run(input),
            Err(e) => {
                tracing::debug!(target: "orderer::consensus", from, error = %e, "dropping malformed message");
                Ok(Vec::new())
            }
        }
    }

    /// A timer set by [`Output::SetTimer`] fired.
    ///
    /// # Errors
    /// [`EngineError`] if the core reports a fatal condition.
    pub fn timeout(&mut self, timer: Timer) -> Result<Vec<Output>, EngineError> {
        self.run(mc::Input::TimeoutElapsed(timer.0))
    }

    /// Quorum size (⌊2n/3⌋ + 1).
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    fn run(&mut self, input: mc::Input<Ctx>) -> Result<Vec<Output>, EngineError> {
        let Engine { state, io, .. } = self;
        let metrics = ();
        let result = mc::process!(input: input, state: state, metrics: &metrics, with: effect => io.handle(effect));
        if let Err(e) = result {
            match e {
                mc::Error::ReplayDivergence(kind, height, round) => {
                    io.failed = Some(EngineError::ReplayDiverged {
                        height: height.0,
                        round: round.as_i64(),
                        detail: format!("{kind} differs from the WAL"),
                    });
                }
                other => {
                    tracing::warn!(target: "orderer::consensus", error = %other, "consensus input failed");
                }
            }
        }
        let out = std::mem::take(&mut io.out);
        match io.failed.take() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl Io {
    fn verify(&self, pk: &[u8], msg: &[u8], sig: &Signature) -> bool {
        medledger_msp::crypto::verify(pk, msg, &sig.0).is_ok()
    }

    fn sign(&self, msg: &[u8]) -> Signature {
        // Signing with a valid key does not fail; an empty signature is rejected by everyone
        // and at worst costs this orderer its vote.
        match self.signer.sign(msg) {
            Ok(s) => Signature(s),
            Err(e) => {
                tracing::error!(target: "orderer::consensus", error = %e, "signing failed");
                Signature(Vec::new())
            }
        }
    }

    /// Checks signatures of a certificate: every signer known and distinct, every signature
    /// valid, and enough of them.
    fn tally(
        &self,
        vs: &ValidatorSet,
        threshold: mt::ThresholdParam,
        sigs: impl Iterator<Item = (ConsenterId, Vec<u8>, Signature)>,
        bad: impl Fn(ConsenterId, Signature) -> mt::CertificateError<Ctx>,
    ) -> Result<(), mt::CertificateError<Ctx>> {
        let mut seen = BTreeSet::new();
        for (addr, msg, sig) in sigs {
            if !seen.insert(addr) {
                return Err(mt::CertificateError::DuplicateVote(addr));
            }
            let v = vs
                .get_by_address(&addr)
                .ok_or(mt::CertificateError::UnknownValidator(addr))?;
            if !self.verify(v.public_key(), &msg, &sig) {
                return Err(bad(addr, sig));
            }
        }
        let signed = seen.len() as u64;
        let total = vs.total_voting_power();
        if threshold.is_met(signed, total) {
            Ok(())
        } else {
            Err(mt::CertificateError::NotEnoughVotingPower {
                signed,
                total,
                expected: threshold.min_expected(total),
            })
        }
    }

    fn vote_msg(
        &self,
        vote_type: mt::VoteType,
        height: Height,
        round: mt::Round,
        value: mt::NilOrVal<BlockHash>,
        voter: ConsenterId,
    ) -> Vec<u8> {
        codec::vote_bytes(
            &self.channel,
            &context::Vote {
                vote_type,
                height,
                round,
                value,
                voter,
            },
        )
    }

    fn verify_commit(
        &self,
        c: &mt::CommitCertificate<Ctx>,
        vs: &ValidatorSet,
        th: mt::ThresholdParams,
    ) -> Result<(), mt::CertificateError<Ctx>> {
        self.tally(
            vs,
            th.quorum,
            c.commit_signatures.iter().map(|s| {
                let msg = self.vote_msg(
                    mt::VoteType::Precommit,
                    c.height,
                    c.round,
                    mt::NilOrVal::Val(c.value_id),
                    s.address,
                );
                (s.address, msg, s.signature.clone())
            }),
            |a, s| mt::CertificateError::InvalidCommitSignature(mt::CommitSignature::new(a, s)),
        )
    }

    fn handle(
        &mut self,
        effect: mc::Effect<Ctx>,
    ) -> Result<mc::Resume<Ctx>, std::convert::Infallible> {
        use mc::Effect as E;
        use mc::Resumable as _;
        Ok(match effect {
            E::CancelAllTimeouts(r) => {
                self.out.push(Output::CancelAllTimers);
                r.resume_with(())
            }
            E::CancelTimeout(t, r) => {
                self.out.push(Output::CancelTimer(Timer(t)));
                r.resume_with(())
            }
            E::ScheduleTimeout(t, r) => {
                let d = self.timeouts.duration_for(t);
                self.out.push(Output::SetTimer(Timer(t), d));
                r.resume_with(())
            }
            E::StartRound(h, round, proposer, _role, r) => {
                self.out.push(Output::RoundStarted {
                    height: h.0,
                    round: round.as_u32().unwrap_or(0),
                    proposer: proposer.0,
                });
                r.resume_with(())
            }
            E::PublishConsensusMsg(msg, r) => {
                use pb::cluster_message::Message as M;
                let m = match &msg {
                    mc::SignedConsensusMsg::Vote(v) => M::Vote(codec::signed_vote_to_wire(v)),
                    mc::SignedConsensusMsg::Proposal(p) => {
                        M::Proposal(codec::signed_proposal_to_wire(p))
                    }
                };
                self.out
                    .push(Output::Broadcast(pb::ClusterMessage { message: Some(m) }));
                r.resume_with(())
            }
            E::PublishLivenessMsg(msg, r) => {
                use pb::cluster_message::Message as M;
                let m = match &msg {
                    mc::LivenessMsg::Vote(v) => M::Vote(codec::signed_vote_to_wire(v)),
                    mc::LivenessMsg::PolkaCertificate(c) => {
                        M::PolkaCertificate(codec::polka_to_wire(c))
                    }
                    mc::LivenessMsg::SkipRoundCertificate(c) => {
                        M::RoundCertificate(codec::round_cert_to_wire(c))
                    }
                };
                self.out
                    .push(Output::Broadcast(pb::ClusterMessage { message: Some(m) }));
                r.resume_with(())
            }
            E::RepublishVote(v, r) => {
                self.out.push(Output::Broadcast(pb::ClusterMessage {
                    message: Some(pb::cluster_message::Message::Vote(
                        codec::signed_vote_to_wire(&v),
                    )),
                }));
                r.resume_with(())
            }
            E::RepublishRoundCertificate(c, r) => {
                self.out.push(Output::Broadcast(pb::ClusterMessage {
                    message: Some(pb::cluster_message::Message::RoundCertificate(
                        codec::round_cert_to_wire(&c),
                    )),
                }));
                r.resume_with(())
            }
            E::GetValue(h, round, _timeout, r) => {
                self.out.push(Output::GetValue {
                    height: h.0,
                    round: round.as_u32().unwrap_or(0),
                });
                r.resume_with(())
            }
            E::RestreamProposal(h, round, pol_round, _addr, id, r) => {
                self.out.push(Output::Restream {
                    height: h.0,
                    round: round.as_u32().unwrap_or(0),
                    pol_round: pol_round.as_i64(),
                    value_id: id.0,
                });
                r.resume_with(())
            }
            // Block sync is done outside the core (verified blocks, then a new height).
            E::CertVerifiedSyncValue(_, _, r) => r.resume_with(()),
            E::CertRejectedSyncValue(_, _, _, r) => r.resume_with(()),
            E::Decide(cert, _ext, r) => {
                self.out.push(Output::Decided {
                    height: cert.height.0,
                    round: cert.round.as_i64(),
                    value_id: cert.value_id.0,
                    signatures: cert
                        .commit_signatures
                        .iter()
                        .map(|s| CommitSignature {
                            consenter: s.address.0,
                            signature: s.signature.0.clone(),
                        })
                        .collect(),
                });
                r.resume_with(())
            }
            E::Finalize(cert, _ext, evidence, r) => {
                if !evidence.is_empty() {
                    tracing::warn!(target: "orderer::consensus", height = cert.height.0, "equivocation evidence collected at this height");
                }
                self.out.push(Output::Finalized {
                    height: cert.height.0,
                });
                r.resume_with(())
            }
            E::SignVote(v, r) => {
                let sig = self.sign(&codec::vote_bytes(&self.channel, &v));
                r.resume_with(mt::SignedMessage::new(v, sig))
            }
            E::SignProposal(p, r) => {
                let sig = self.sign(&codec::proposal_bytes(&self.channel, &p));
                r.resume_with(mt::SignedMessage::new(p, sig))
            }
            E::VerifySignature(msg, pk, r) => {
                let bytes = match &msg.message {
                    mc::ConsensusMsg::Vote(v) => codec::vote_bytes(&self.channel, v),
                    mc::ConsensusMsg::Proposal(p) => codec::proposal_bytes(&self.channel, p),
                };
                r.resume_with(self.verify(&pk, &bytes, &msg.signature))
            }
            E::VerifyCommitCertificate(c, vs, th, r) => {
                r.resume_with(self.verify_commit(&c, &vs, th))
            }
            E::VerifyExtendedCommitCertificate(c, vs, th, _policy, r) => {
                let plain = c.trim_vote_extensions();
                r.resume_with(self.verify_commit(&plain, &vs, th))
            }
            E::VerifyPolkaCertificate(c, vs, th, r) => {
                let res = self.tally(
                    &vs,
                    th.quorum,
                    c.polka_signatures.iter().map(|s| {
                        let msg = self.vote_msg(
                            mt::VoteType::Prevote,
                            c.height,
                            c.round,
                            mt::NilOrVal::Val(c.value_id),
                            s.address,
                        );
                        (s.address, msg, s.signature.clone())
                    }),
                    |a, s| {
                        mt::CertificateError::InvalidPolkaSignature(mt::PolkaSignature::new(a, s))
                    },
                );
                r.resume_with(res)
            }
            E::VerifyRoundCertificate(c, vs, th, r) => {
                let precommit_only = c.cert_type == mt::RoundCertificateType::Precommit;
                if let Some(s) = c
                    .round_signatures
                    .iter()
                    .find(|s| precommit_only && s.vote_type != mt::VoteType::Precommit)
                {
                    r.resume_with(Err(mt::CertificateError::InvalidVoteType(s.address)))
                } else {
                    let threshold = if precommit_only { th.quorum } else { th.honest };
                    let res = self.tally(
                        &vs,
                        threshold,
                        c.round_signatures.iter().map(|s| {
                            let msg = self.vote_msg(
                                s.vote_type,
                                c.height,
                                c.round,
                                s.value_id,
                                s.address,
                            );
                            (s.address, msg, s.signature.clone())
                        }),
                        |a, s| {
                            mt::CertificateError::InvalidRoundSignature(mt::RoundSignature::new(
                                mt::VoteType::Precommit,
                                mt::NilOrVal::Nil,
                                a,
                                s,
                            ))
                        },
                    );
                    r.resume_with(res)
                }
            }
            E::WalAppend(h, input, r) => {
                if !self.replaying {
                    let body = match &input {
                        mc::Input::ProposedValue(v, _) if v.validity.is_valid() => {
                            self.bodies.get(&mt::Value::id(&v.value)).cloned()
                        }
                        _ => None,
                    };
                    if let Some(entry) =
                        codec::wal_entry(h.0, &input, body.as_deref().map(Vec::as_slice))
                    {
                        self.out.push(Output::Wal(entry));
                    }
                }
                r.resume_with(())
            }
            E::ExtendVote(_, _, _, _, r) => r.resume_with(None),
            E::VerifyVoteExtension(.., r) => r.resume_with(Ok(())),
        })
    }
}
