//! Fabric's query system chaincodes, run in the peer process by the endorser (never in the
//! sandbox): `qscc` (Fabric's `core/scc/qscc/query.go`) and `cscc`'s `GetChannelConfig`
//! (`core/scc/cscc/configure.go`), so applications and tools that read the chain through
//! Fabric's Evaluate (or a peer's `ProcessProposal`) work on Medledger (ADR 0041).
//!
//! Arguments as Fabric's: `args[0]` the function, `args[1]` the channel (any channel this
//! peer serves; the ACL is checked on that channel), `args[2]` a decimal block number
//! (`u64::MAX`: the last block), a raw header hash or a transaction id.
//!
//! | function | answer (serialized) |
//! |---|---|
//! | `qscc GetChainInfo` | `common.BlockchainInfo` ([`fabric::BlockchainInfo`]) |
//! | `qscc GetBlockByNumber`, `GetBlockByHash`, `GetBlockByTxID` | `common.Block` as stored |
//! | `qscc GetTransactionByID` | `protos.ProcessedTransaction` (envelope, validation code) |
//! | `cscc GetChannelConfig` | `common.Config` ([`fabric::fabric_config`]) |
//!
//! ACL as Fabric's default ACLs (`qscc/*`, `cscc/GetChannelConfig` →
//! `/Channel/Application/Readers`): the proposal's creator and signature are verified against
//! the queried channel's MSPs and must satisfy its `Readers` policy. Errors are status 500
//! with Fabric's messages. Nothing is ever written: the simulator is not touched, so the
//! proposal response carries an empty read-write set; blocks hold only hashes of private data
//! (ADR 0031), so no answer carries a private value. These "transactions" are not for
//! ordering: the gateway refuses to endorse them for Submit
//! ([`is_system_query`], as Fabric's gateway finds no endorsement plan for them), and the
//! committer marks one that is ordered anyway `INVALID_CHAINCODE`, as Fabric's.

pub mod fabric;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use medledger_endorser::ChaincodeExecutor;
use medledger_ledger_api::TxSimulator;
use medledger_proto::TxId;
use medledger_proto::common::{Block, Envelope};
use medledger_proto::protos::{ProcessedTransaction, SignedProposal};
use medledger_runtime::support::{ExecOutcome, ExecRequest, RuntimeError};
use prost::Message;

use crate::committer::Committer;

/// Fabric's ledger query system chaincode.
pub const QSCC: &str = "qscc";
/// Fabric's configuration system chaincode (`GetChannelConfig` only on Medledger).
pub const CSCC: &str = "cscc";

/// qscc's functions (Fabric's names).
pub const GET_CHAIN_INFO: &str = "GetChainInfo";
/// qscc: a block by number.
pub const GET_BLOCK_BY_NUMBER: &str = "GetBlockByNumber";
/// qscc: a block by header hash.
pub const GET_BLOCK_BY_HASH: &str = "GetBlockByHash";
/// qscc: a transaction and its validation code.
pub const GET_TRANSACTION_BY_ID: &str = "GetTransactionByID";
/// qscc: the block holding a transaction.
pub const GET_BLOCK_BY_TX_ID: &str = "GetBlockByTxID";
/// cscc: the channel's configuration.
pub const GET_CHANNEL_CONFIG: &str = "GetChannelConfig";

const QSCC_FUNCTIONS: [&str; 5] = [
    GET_CHAIN_INFO,
    GET_BLOCK_BY_NUMBER,
    GET_BLOCK_BY_HASH,
    GET_TRANSACTION_BY_ID,
    GET_BLOCK_BY_TX_ID,
];

/// Whether `chaincode` is one of the query system chaincodes (`qscc`, `cscc`): always
/// defined on every channel, only evaluated, never ordered.
pub fn is_system_query(chaincode: &str) -> bool {
    chaincode == QSCC || chaincode == CSCC
}

/// Header hash → block number of one channel's blocks below `next`, built on first use and
/// extended as the chain grows (Medledger's block store indexes blocks by number and tx id
/// only): 40 bytes a block.
#[derive(Debug, Default)]
struct HashIndex {
    by_hash: HashMap<[u8; 32], u64>,
    next: u64,
}

/// The channels the system chaincodes answer for.
#[derive(Default)]
struct Channels {
    committers: RwLock<BTreeMap<String, Arc<Committer>>>,
    hashes: Mutex<HashMap<String, HashIndex>>,
}

/// Serves `qscc` and `cscc` in-process; delegates every other chaincode to `inner` (the
/// lifecycle system chaincode, then the sandboxed runtime).
pub struct SystemChaincodes {
    inner: Arc<dyn ChaincodeExecutor>,
    channels: Arc<Channels>,
}

impl std::fmt::Debug for SystemChaincodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self
            .channels
            .committers
            .read()
            .unwrap_or_else(|e| e.into_inner());
        f.debug_struct("SystemChaincodes")
            .field("channels", &c.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SystemChaincodes {
    /// Serves the query system chaincodes over no channel yet, everything else by `inner`.
    pub fn new(inner: Arc<dyn ChaincodeExecutor>) -> Self {
        SystemChaincodes {
            inner,
            channels: Arc::new(Channels::default()),
        }
    }

    /// Answers for `committer`'s channel (its ledger and current configuration).
    pub fn add_channel(&self, committer: Arc<Committer>) {
        let mut c = self
            .channels
            .committers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        c.insert(committer.ledger().channel_id().to_string(), committer);
    }
}

#[tonic::async_trait]
impl ChaincodeExecutor for SystemChaincodes {
    async fn execute(
        &self,
        chaincode: &str,
        req: ExecRequest,
        sim: &mut dyn TxSimulator,
    ) -> Result<ExecOutcome, RuntimeError> {
        if !is_system_query(chaincode) {
            return self.inner.execute(chaincode, req, sim).await;
        }
        let channels = self.channels.clone();
        let chaincode = chaincode.to_owned();
        let tx_id = req.tx_id.clone();
        // Block reads (and a first hash-index build) are disk reads: off the runtime workers.
        let result = tokio::task::spawn_blocking(move || {
            let signed = req.proposal.unwrap_or_default();
            channels.invoke(&chaincode, &req.input.args, &signed)
        })
        .await
        .unwrap_or_else(|e| Err(format!("system chaincode task failed: {e}")));
        if let Err(message) = &result {
            tracing::info!(target: "peer::scc", %tx_id, %message, "system chaincode refused");
        }
        Ok(crate::endorsement::system_outcome(result))
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Go's `strconv.ParseUint(s, 10, 64)`, with its error text.
fn parse_uint(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

impl Channels {
    fn committer(&self, channel: &str) -> Option<Arc<Committer>> {
        let c = self.committers.read().unwrap_or_else(|e| e.into_inner());
        c.get(channel).cloned()
    }

    fn invoke(
        &self,
        chaincode: &str,
        args: &[Vec<u8>],
        signed: &SignedProposal,
    ) -> Result<Vec<u8>, String> {
        if chaincode == QSCC {
            self.qscc(args, signed)
        } else {
            self.cscc(args, signed)
        }
    }

    /// Fabric's `LedgerQuerier.Invoke`, check for check.
    fn qscc(&self, args: &[Vec<u8>], signed: &SignedProposal) -> Result<Vec<u8>, String> {
        let [fname, cid, rest @ ..] = args else {
            return Err(format!("Incorrect number of arguments, {}", args.len()));
        };
        let (fname, cid) = (text(fname), text(cid));
        let arg = rest.first();
        if fname != GET_CHAIN_INFO && arg.is_none() {
            return Err(format!("missing 3rd argument for {fname}"));
        }
        let committer = self
            .committer(&cid)
            .ok_or_else(|| format!("Invalid chain ID, {cid}"))?;
        let acl = if QSCC_FUNCTIONS.contains(&fname.as_str()) {
            check_readers(&committer, signed)
        } else {
            // Fabric's default ACL provider maps only qscc's five functions.
            Err(format!("Unmapped policy for qscc/{fname}"))
        };
        acl.map_err(|e| format!("access denied for [{fname}][{cid}]: [{e}]"))?;
        let ledger = committer.ledger();
        let arg = arg.map(Vec::as_slice).unwrap_or_default();
        // A block found, encoded; not found: `missing`; a store error: its message.
        let block = |found: Result<Option<Block>, String>, missing: String| {
            found.and_then(|b| b.map(|b| b.encode_to_vec()).ok_or(missing))
        };
        match fname.as_str() {
            GET_CHAIN_INFO => chain_info(&committer),
            GET_BLOCK_BY_NUMBER => {
                let n = parse_uint(&text(arg))
                    .map_err(|e| format!("Failed to parse block number with error {e}"))?;
                // Fabric's block store reads math.MaxUint64 as "the last block".
                let n = if n == u64::MAX {
                    ledger.height().saturating_sub(1)
                } else {
                    n
                };
                let found = ledger.block(n).map_err(|e| e.to_string());
                block(found, format!("no such block number [{n}] in index"))
                    .map_err(|e| format!("Failed to get block number {n}, error {e}"))
            }
            GET_BLOCK_BY_HASH => {
                let found = self.block_by_hash(&committer, arg);
                let missing = format!("no such block hash [{}] in index", hex::encode(arg));
                block(found, missing)
                    .map_err(|e| format!("Failed to get block hash {}, error {e}", text(arg)))
            }
            GET_TRANSACTION_BY_ID => {
                let id = text(arg);
                transaction(&committer, &id)
                    .map_err(|e| format!("Failed to get transaction with id {id}, error {e}"))
            }
            GET_BLOCK_BY_TX_ID => {
                let id = text(arg);
                let found = match id.parse::<TxId>() {
                    Ok(tx_id) => ledger.block_by_tx_id(&tx_id).map_err(|e| e.to_string()),
                    Err(_) => Ok(None),
                };
                block(found, format!("no such transaction ID [{id}] in index"))
                    .map_err(|e| format!("Failed to get block for txID {id}, error {e}"))
            }
            _ => Err(format!("Requested function {fname} not found.")),
        }
    }

    /// Fabric's `PeerConfiger.InvokeNoShim` for `GetChannelConfig`; cscc's other functions
    /// (joining channels, listing them, snapshots) are not served: a Medledger peer joins the
    /// channels of its `peer.yaml` (docs/peer.md).
    fn cscc(&self, args: &[Vec<u8>], signed: &SignedProposal) -> Result<Vec<u8>, String> {
        let Some(fname) = args.first().map(|f| text(f)) else {
            return Err("Incorrect number of arguments, 0".into());
        };
        if fname != "GetChannels" && fname != "JoinBySnapshotStatus" && args.len() < 2 {
            return Err(format!("Incorrect number of arguments, {}", args.len()));
        }
        if fname != GET_CHANNEL_CONFIG {
            return Err(format!("Requested function {fname} not found."));
        }
        let cid = args.get(1).map(|c| text(c)).unwrap_or_default();
        if cid.is_empty() {
            return Err("empty channel name provided".into());
        }
        let committer = self
            .committer(&cid)
            .ok_or_else(|| format!("unknown channel ID, {cid}"))?;
        check_readers(&committer, signed)
            .map_err(|e| format!("access denied for [{fname}][{cid}]: {e}"))?;
        Ok(fabric::fabric_config(&committer.config()).encode_to_vec())
    }

    /// The block whose header hash is `hash`, if any, through the channel's [`HashIndex`].
    fn block_by_hash(&self, committer: &Committer, hash: &[u8]) -> Result<Option<Block>, String> {
        let Ok(hash) = <[u8; 32]>::try_from(hash) else {
            return Ok(None);
        };
        let ledger = committer.ledger();
        let channel = ledger.channel_id().to_string();
        let number = {
            let mut all = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
            let index = all.entry(channel).or_default();
            let height = ledger.height();
            while index.next < height {
                let n = index.next;
                let b = ledger.block(n).map_err(|e| e.to_string())?;
                if let Some(header) = b.and_then(|b| b.header) {
                    index
                        .by_hash
                        .insert(medledger_channel::block::header_hash(&header), n);
                }
                index.next = n + 1;
            }
            index.by_hash.get(&hash).copied()
        };
        match number {
            Some(n) => ledger.block(n).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}

/// `common.BlockchainInfo` of the committer's ledger.
fn chain_info(committer: &Committer) -> Result<Vec<u8>, String> {
    let ledger = committer.ledger();
    let info = ledger.info();
    let previous = match info.height.checked_sub(1) {
        Some(last) => ledger
            .block(last)
            .map_err(|e| format!("Failed to get block info with error {e}"))?
            .and_then(|b| b.header)
            .map(|h| h.previous_hash)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(fabric::BlockchainInfo {
        height: info.height,
        current_block_hash: info.current_hash.to_vec(),
        previous_block_hash: previous,
        bootstrapping_snapshot_info: None,
    }
    .encode_to_vec())
}

/// `protos.ProcessedTransaction` of transaction `id`: its envelope as the block holds it and
/// its validation code.
fn transaction(committer: &Committer, id: &str) -> Result<Vec<u8>, String> {
    let not_found = || format!("no such transaction ID [{id}] in index");
    let tx_id = id.parse::<TxId>().map_err(|_| not_found())?;
    let ledger = committer.ledger();
    let loc = ledger
        .tx_location(&tx_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(not_found)?;
    let envelope = ledger
        .block(loc.block_num)
        .map_err(|e| e.to_string())?
        .and_then(|b| b.data)
        .and_then(|d| {
            usize::try_from(loc.tx_num)
                .ok()
                .and_then(|i| d.data.get(i).cloned())
        })
        .ok_or_else(|| {
            format!(
                "no such blockNumber, transactionNumber <{}, {}> in index",
                loc.block_num, loc.tx_num
            )
        })?;
    let envelope = Envelope::decode(envelope.as_slice()).map_err(|e| e.to_string())?;
    Ok(ProcessedTransaction {
        transaction_envelope: Some(envelope),
        validation_code: loc.code as i32,
    }
    .encode_to_vec())
}

/// Fabric's ACL check of a channel resource mapped to `/Channel/Application/Readers`: the
/// signed proposal's creator is valid on the channel, its signature verifies, and it
/// satisfies the channel's `Readers` policy.
fn check_readers(committer: &Committer, signed: &SignedProposal) -> Result<(), String> {
    let config = committer.config();
    let creator = crate::endorsement::proposal_creator(signed)
        .ok_or("failed to extract the creator from the signed proposal")?;
    let identity = config
        .msps()
        .verify(
            &creator,
            &signed.proposal_bytes,
            &signed.signature,
            SystemTime::now(),
        )
        .map_err(|e| {
            format!(
                "failed evaluating policy on signed data during check policy \
                 [/Channel/Application/Readers]: [{e}]"
            )
        })?;
    if !config.evaluate("Readers", &[identity.signer()]) {
        return Err(format!(
            "failed evaluating policy on signed data during check policy \
             [/Channel/Application/Readers]: [creator org [{}] does not satisfy the policy]",
            identity.msp_id()
        ));
    }
    Ok(())
}
