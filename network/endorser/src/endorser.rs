//! `protos.Endorser/ProcessProposal`: check, simulate, sign.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_ledger_api::{LedgerError, LedgerReader, TxSimulator};
use medledger_msp::identity::SigningIdentity;
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeId, Endorsement, ProposalResponse, ProposalResponsePayload, Response,
    SignedProposal,
};
use medledger_proto::rwset::TxPvtReadWriteSet;
use medledger_proto::{ChannelId, TxId};
use medledger_runtime::process::{ChaincodeRuntime, InstalledChaincode};
use medledger_runtime::support::{ExecOutcome, ExecRequest, RuntimeError};
use prost::Message;

use crate::proposal::{self, CheckedProposal, ProposalError};
use crate::rwset::{CollectionAccess, RwSetSimulator};

/// Endorser settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndorserConfig {
    /// Largest accepted difference between a proposal's timestamp and the peer's clock
    /// (default [`medledger_channel::bft::MAX_TX_TIME_SKEW`], 5 min: the commit-time bound
    /// between a transaction's timestamp and its block's ordering time, ADR 0030;
    /// Fabric's `peer.authentication.timewindow` is 15 min).
    pub max_timestamp_skew: Duration,
}

impl Default for EndorserConfig {
    fn default() -> Self {
        EndorserConfig {
            max_timestamp_skew: medledger_channel::bft::MAX_TX_TIME_SKEW,
        }
    }
}

/// What the endorser needs from the peer for one channel.
pub trait ChannelContext: Send + Sync {
    /// Current channel configuration.
    fn config(&self) -> Arc<ChannelConfig>;
    /// The channel's committed ledger, read live by simulation; its
    /// [`TxIdIndex`](medledger_ledger_api::TxIdIndex) answers whether a transaction id is
    /// already committed.
    fn ledger(&self) -> Arc<dyn LedgerReader>;
    /// The collections of a chaincode defined on the channel (and this peer's membership);
    /// `None` if the chaincode is not defined.
    fn chaincode(&self, name: &str) -> Option<Vec<CollectionAccess>>;
    /// Ledger height (blocks committed), recorded with transient private data.
    fn height(&self) -> u64;
}

/// Runs a chaincode against a simulator.
#[tonic::async_trait]
pub trait ChaincodeExecutor: Send + Sync {
    /// Executes one invocation of `chaincode`.
    ///
    /// # Errors
    /// [`RuntimeError`] if the chaincode cannot run or fails.
    async fn execute(
        &self,
        chaincode: &str,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError>;
}

/// Sandboxed chaincode processes, by chaincode name.
pub struct RuntimeExecutor {
    runtime: ChaincodeRuntime,
    installed: HashMap<String, InstalledChaincode>,
}

impl RuntimeExecutor {
    /// Executes chaincodes from `installed` (name → executable) on `runtime`.
    pub fn new(runtime: ChaincodeRuntime, installed: HashMap<String, InstalledChaincode>) -> Self {
        RuntimeExecutor { runtime, installed }
    }

    /// The runtime.
    pub fn runtime(&self) -> &ChaincodeRuntime {
        &self.runtime
    }
}

#[tonic::async_trait]
impl ChaincodeExecutor for RuntimeExecutor {
    async fn execute(
        &self,
        chaincode: &str,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError> {
        let cc = self
            .installed
            .get(chaincode)
            .ok_or_else(|| RuntimeError::Launch {
                chaincode: chaincode.to_owned(),
                message: "not installed on this peer".into(),
            })?;
        self.runtime.execute(cc, req, sim).await
    }
}

/// Runs a chaincode in this process, directly against the simulator: no sandbox, no
/// separate process. For tests, simulations and experiments with trusted chaincode (e.g.
/// `ehr_chaincode::contract()`), never for a peer serving installed chaincode. The chaincode
/// name of each call is only used in error messages.
pub struct InProcessExecutor<C>(pub C);

#[tonic::async_trait]
impl<C: medledger_chaincode::Chaincode + Send + Sync> ChaincodeExecutor for InProcessExecutor<C> {
    async fn execute(
        &self,
        chaincode: &str,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError> {
        medledger_runtime::inprocess::execute(&self.0, chaincode, &req, sim).map_err(|e| {
            RuntimeError::Failed {
                chaincode: chaincode.to_owned(),
                message: e.to_string(),
            }
        })
    }
}

/// Where private data from simulation waits until its transaction commits (Fabric's
/// transient store).
pub trait TransientStore: Send + Sync {
    /// Stores a transaction's private read-write set, simulated at ledger `height`. May block
    /// (a durable store fsyncs): the endorser calls it on tokio's blocking pool.
    ///
    /// # Errors
    /// [`LedgerError::Storage`] if it cannot be stored; the endorser returns its message to
    /// the client, so it names no private data.
    fn persist(
        &self,
        tx_id: &str,
        height: u64,
        private: &TxPvtReadWriteSet,
    ) -> Result<(), LedgerError>;
}

/// A transient store in memory (tests, and peers that do not restart between endorsing and
/// committing).
#[derive(Debug, Default)]
pub struct MemoryTransientStore {
    entries: Mutex<BTreeMap<String, (u64, TxPvtReadWriteSet)>>,
}

impl MemoryTransientStore {
    /// Private data stored for a transaction.
    pub fn get(&self, tx_id: &str) -> Option<TxPvtReadWriteSet> {
        self.entries.lock().ok()?.get(tx_id).map(|(_, p)| p.clone())
    }
}

impl TransientStore for MemoryTransientStore {
    fn persist(
        &self,
        tx_id: &str,
        height: u64,
        private: &TxPvtReadWriteSet,
    ) -> Result<(), LedgerError> {
        self.entries
            .lock()
            .map_err(|_| LedgerError::Storage("transient store lock poisoned".into()))?
            .insert(tx_id.to_owned(), (height, private.clone()));
        Ok(())
    }
}

/// The endorser of one peer.
pub struct Endorser {
    signer: Arc<SigningIdentity>,
    channels: RwLock<HashMap<ChannelId, Arc<dyn ChannelContext>>>,
    executor: Arc<dyn ChaincodeExecutor>,
    transient: Arc<dyn TransientStore>,
    config: EndorserConfig,
    /// Chaincode → canonical functions that may only be evaluated.
    evaluate_only: HashMap<String, HashSet<String>>,
    /// Told of every processed proposal of a served channel: channel id and duration.
    observer: Option<ProposalObserver>,
}

/// Called with the channel id and the processing time of every proposal of a served channel
/// (the peer's `endorser_proposal_duration_seconds` metric).
pub type ProposalObserver = Arc<dyn Fn(&ChannelId, Duration) + Send + Sync>;

impl std::fmt::Debug for Endorser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endorser")
            .field("msp_id", &self.signer.msp_id())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The endorser's duplicate check (Fabric's `preProcess`, `TxIDExists`): refused if `tx_id`
/// is already committed.
///
/// # Errors
/// [`ProposalError::Duplicate`]; [`ProposalError::Ledger`] if the ledger cannot answer (not
/// the proposal's fault; the client gets status 500 with the ledger's message, the status of
/// every refusal before simulation, as Fabric's `ProcessProposal`).
fn check_not_committed(ledger: &dyn LedgerReader, tx_id: &TxId) -> Result<(), ProposalError> {
    if ledger.tx_id_exists(tx_id)? {
        return Err(ProposalError::Duplicate {
            tx_id: tx_id.clone(),
        });
    }
    Ok(())
}

fn error_response(status: i32, message: impl Into<String>) -> ProposalResponse {
    ProposalResponse {
        version: 1,
        timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
        response: Some(Response {
            status,
            message: message.into(),
            payload: Vec::new(),
        }),
        payload: Vec::new(),
        endorsement: None,
        interest: None,
    }
}

impl Endorser {
    /// An endorser signing with `signer` (the peer's identity).
    pub fn new(
        signer: Arc<SigningIdentity>,
        executor: Arc<dyn ChaincodeExecutor>,
        transient: Arc<dyn TransientStore>,
        config: EndorserConfig,
    ) -> Self {
        Endorser {
            signer,
            channels: RwLock::new(HashMap::new()),
            executor,
            transient,
            config,
            evaluate_only: HashMap::new(),
            observer: None,
        }
    }

    /// Reports every processed proposal of a served channel to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: ProposalObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Functions (canonical names, by chaincode) that may only be evaluated: their response
    /// carries data that must never be written into a block (e.g. the EHR chaincode's
    /// `ReadRecord`, `ReadRecords`, `LocateRecords`; ADR 0023). For them the endorser returns the chaincode's response
    /// without an endorsement and keeps no private data, so no transaction carrying their
    /// output can satisfy an endorsement policy, whoever assembles it (the gateway, or a
    /// client calling `ProcessProposal` and `Broadcast` itself).
    #[must_use]
    pub fn with_evaluate_only(mut self, evaluate_only: HashMap<String, HashSet<String>>) -> Self {
        self.evaluate_only = evaluate_only;
        self
    }

    fn is_evaluate_only(&self, chaincode: &str, function: &str) -> bool {
        self.evaluate_only
            .get(chaincode)
            .is_some_and(|fs| fs.contains(function))
    }

    /// Serves a channel.
    pub fn add_channel(&self, channel_id: ChannelId, ctx: Arc<dyn ChannelContext>) {
        if let Ok(mut c) = self.channels.write() {
            c.insert(channel_id, ctx);
        }
    }

    fn channel(&self, id: &str) -> Option<Arc<dyn ChannelContext>> {
        self.channels.read().ok()?.get(id).cloned()
    }

    /// Processes a proposal at the current time. Never fails at the RPC level: refusals are
    /// responses with status 500 and a message, as Fabric.
    pub async fn process_proposal(&self, signed: SignedProposal) -> ProposalResponse {
        self.process_proposal_at(signed, SystemTime::now()).await
    }

    /// As [`Endorser::process_proposal`] at time `now` (validity and skew are checked against it).
    pub async fn process_proposal_at(
        &self,
        signed: SignedProposal,
        now: SystemTime,
    ) -> ProposalResponse {
        let started = std::time::Instant::now();
        let response = match self.endorse(&signed, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(target: "peer::endorser", error = %e, "proposal refused");
                error_response(500, e.to_string())
            }
        };
        if let Some(observe) = &self.observer
            && let Ok(channel) = proposal::channel_of(&signed)
            && self.channel(&channel).is_some()
            && let Ok(channel) = ChannelId::new(channel)
        {
            observe(&channel, started.elapsed());
        }
        response
    }

    async fn endorse(
        &self,
        signed: &SignedProposal,
        now: SystemTime,
    ) -> Result<ProposalResponse, ProposalError> {
        let channel_id = proposal::channel_of(signed)?;
        let Some(ctx) = self.channel(&channel_id) else {
            return Err(ProposalError::UnknownChannel {
                channel: channel_id,
            });
        };
        let config = ctx.config();
        let checked = proposal::check(signed, &config, now, self.config.max_timestamp_skew)?;
        let ledger = ctx.ledger();
        check_not_committed(&*ledger, &checked.tx_id)?;
        let Some(collections) = ctx.chaincode(&checked.chaincode) else {
            return Err(ProposalError::UnknownChaincode {
                chaincode: checked.chaincode,
                channel: config.channel_id().clone(),
            });
        };
        let height = ctx.height();
        Ok(self
            .simulate(signed, &checked, &*ledger, &collections, height)
            .await)
    }

    async fn simulate(
        &self,
        signed: &SignedProposal,
        checked: &CheckedProposal,
        ledger: &dyn LedgerReader,
        collections: &[CollectionAccess],
        height: u64,
    ) -> ProposalResponse {
        let mut sim = RwSetSimulator::new(ledger, &checked.chaincode, collections);
        let req = ExecRequest {
            channel_id: checked.channel_id.clone(),
            tx_id: checked.tx_id.to_string(),
            input: checked.input.clone(),
            proposal: Some(signed.clone()),
            is_init: checked.input.is_init,
        };
        let started = std::time::Instant::now();
        let outcome = self
            .executor
            .execute(&checked.chaincode, req, &mut sim)
            .await;
        tracing::debug!(target: "peer::endorser", tx_id = %checked.tx_id, elapsed_us = started.elapsed().as_micros() as u64, "chaincode executed");
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return error_response(500, format!("error executing chaincode: {e}")),
        };
        let status = outcome.response.status;
        if status >= medledger_chaincode_error_threshold() {
            // Fabric: a chaincode error is returned to the client without an endorsement.
            return ProposalResponse {
                response: Some(outcome.response),
                ..error_response(status, String::new())
            };
        }
        if self.is_evaluate_only(&checked.chaincode, &checked.function) {
            tracing::debug!(target: "peer::endorser", tx_id = %checked.tx_id, "evaluate-only function: response returned unendorsed");
            return ProposalResponse {
                response: Some(outcome.response),
                ..error_response(status, String::new())
            };
        }
        let results = sim.finish();
        if let Some(private) = results.private
            && let Err(e) = self
                .persist_private(checked.tx_id.as_str(), height, private)
                .await
        {
            return error_response(500, format!("failed to store private data: {e}"));
        }
        let action = ChaincodeAction {
            results: results.public.encode_to_vec(),
            // Fabric names the chaincode (the namespace, not its package id) and the
            // transaction in the event, whatever the chaincode set.
            events: outcome
                .event
                .map(|mut e| {
                    e.chaincode_id.clone_from(&checked.chaincode);
                    e.tx_id = checked.tx_id.to_string();
                    e.encode_to_vec()
                })
                .unwrap_or_default(),
            response: Some(outcome.response.clone()),
            chaincode_id: Some(ChaincodeId {
                path: String::new(),
                name: checked.chaincode.clone(),
                version: String::new(),
            }),
        };
        let prp = ProposalResponsePayload {
            proposal_hash: checked.proposal_hash.to_vec(),
            extension: action.encode_to_vec(),
        }
        .encode_to_vec();
        let endorser = self.signer.serialized().to_vec();
        let mut signed_bytes = Vec::with_capacity(prp.len() + endorser.len());
        signed_bytes.extend_from_slice(&prp);
        signed_bytes.extend_from_slice(&endorser);
        let signature = match self.signer.sign(&signed_bytes) {
            Ok(s) => s,
            Err(e) => return error_response(500, format!("signing failed: {e}")),
        };
        ProposalResponse {
            version: 1,
            timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
            response: Some(outcome.response),
            payload: prp,
            endorsement: Some(Endorsement {
                endorser,
                signature,
            }),
            interest: None,
        }
    }

    /// Stores a transaction's private read-write set in the transient store on tokio's
    /// blocking pool: the store fsyncs (ADR 0025), and an fsync on a runtime worker would stall
    /// every other task on it; concurrent endorsements off the workers also share one fsync
    /// through RocksDB's group commit.
    async fn persist_private(
        &self,
        tx_id: &str,
        height: u64,
        private: TxPvtReadWriteSet,
    ) -> Result<(), LedgerError> {
        let store = self.transient.clone();
        let tx_id = tx_id.to_owned();
        tokio::task::spawn_blocking(move || store.persist(&tx_id, height, &private))
            .await
            .unwrap_or_else(|e| {
                Err(LedgerError::Storage(
                    format!("transient store task failed: {e}").into(),
                ))
            })
    }
}

/// Chaincode status at or above which Fabric returns the response without endorsing.
const fn medledger_chaincode_error_threshold() -> i32 {
    400
}

/// Proposals `protos.Endorser/ProcessProposal` processes at once by default (Fabric's
/// `peer.limits.concurrency.endorserService`, 2500).
pub const DEFAULT_ENDORSER_CONCURRENCY: usize = 2500;

/// The gRPC service (`protos.Endorser`) over an [`Endorser`], for proposals from other
/// organizations' gateways and from clients that endorse themselves. At most
/// `concurrency_limit` proposals are processed at once; one more is refused with
/// `RESOURCE_EXHAUSTED` (Fabric: "too many requests for /protos.Endorser, exceeding
/// concurrency limit") before any signature check or chaincode execution (gRPC has decoded
/// the message by then, within the server's message size limit). The peer's own gateway
/// calls the [`Endorser`] directly, under its own limit.
#[derive(Clone, Debug)]
pub struct EndorserService {
    endorser: Arc<Endorser>,
    limit: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl EndorserService {
    /// The service over `endorser`, with [`DEFAULT_ENDORSER_CONCURRENCY`].
    pub fn new(endorser: Arc<Endorser>) -> Self {
        Self::with_concurrency_limit(endorser, DEFAULT_ENDORSER_CONCURRENCY)
    }

    /// The service over `endorser`, processing at most `max` proposals at once (at least 1).
    pub fn with_concurrency_limit(endorser: Arc<Endorser>, max: usize) -> Self {
        let max = max.max(1);
        EndorserService {
            endorser,
            limit: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }
}

#[tonic::async_trait]
impl medledger_proto::protos::endorser_server::Endorser for EndorserService {
    async fn process_proposal(
        &self,
        request: tonic::Request<SignedProposal>,
    ) -> Result<tonic::Response<ProposalResponse>, tonic::Status> {
        let _permit = self.limit.try_acquire().map_err(|_| {
            tonic::Status::resource_exhausted(format!(
                "too many requests for /protos.Endorser, exceeding concurrency limit ({})",
                self.max
            ))
        })?;
        Ok(tonic::Response::new(
            self.endorser.process_proposal(request.into_inner()).await,
        ))
    }
}

#[cfg(test)]
mod tests {
    use medledger_ledger_api::{
        HistoryEntry, HistoryQueryExecutor, LedgerError, QueryExecutor, Result, StateIter,
        TxIdIndex, VersionedValue,
    };

    use super::*;

    /// A ledger whose storage fails on every read.
    struct FailingLedger;

    fn failure() -> LedgerError {
        LedgerError::Storage("disk unreadable".into())
    }

    impl QueryExecutor for FailingLedger {
        fn get_state(&self, _: &str, _: &str) -> Result<Option<VersionedValue>> {
            Err(failure())
        }
        fn get_state_range<'a>(&'a self, _: &'a str, _: &str, _: &str) -> Result<StateIter<'a>> {
            Err(failure())
        }
        fn get_private_data(&self, _: &str, _: &str, _: &str) -> Result<Option<VersionedValue>> {
            Err(failure())
        }
        fn get_private_data_hash(
            &self,
            _: &str,
            _: &str,
            _: &[u8],
        ) -> Result<Option<VersionedValue>> {
            Err(failure())
        }
    }

    impl HistoryQueryExecutor for FailingLedger {
        fn get_history_for_key(&self, _: &str, _: &str) -> Result<Vec<HistoryEntry>> {
            Err(failure())
        }
    }

    impl TxIdIndex for FailingLedger {
        fn tx_id_exists(&self, _: &TxId) -> Result<bool> {
            Err(failure())
        }
    }

    #[test]
    fn a_ledger_failure_in_the_duplicate_check_is_not_a_malformed_proposal() {
        let tx_id = TxId::compute(b"nonce", b"creator");
        let err = check_not_committed(&FailingLedger, &tx_id).unwrap_err();
        assert!(matches!(err, ProposalError::Ledger(_)), "{err:?}");
        // The client reads the ledger's message, as before.
        assert_eq!(err.to_string(), "disk unreadable");
    }

    #[test]
    fn a_committed_tx_id_is_a_duplicate() {
        let tx_id = TxId::compute(b"nonce", b"creator");
        let ledger = medledger_ledger_api::MemoryLedger {
            tx_ids: [tx_id.to_string()].into(),
            ..Default::default()
        };
        let err = check_not_committed(&ledger, &tx_id).unwrap_err();
        assert!(matches!(err, ProposalError::Duplicate { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("duplicate transaction found [{tx_id}]")
        );
        assert!(
            check_not_committed(&medledger_ledger_api::MemoryLedger::default(), &tx_id).is_ok()
        );
    }
}
