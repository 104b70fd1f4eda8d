//! Envelope admission, the pending pool, block cutting, and validation of proposed batches.
//!
//! Everything here is pure: inputs (bytes, the channel configuration, the time) in, results
//! out. The rules follow Fabric's orderer (`orderer/common/msgprocessor`,
//! `orderer/common/blockcutter`):
//!
//! - an envelope is admitted if it is at most `absolute_max_bytes`, decodes, passes
//!   [`medledger_channel::envelope::check`] (headers, channel, tx_id, creator and signature),
//!   its creator satisfies the channel's `Writers` policy, a `CONFIG_UPDATE` passes
//!   [`ChannelConfig::apply_update`] against the current configuration, and its tx_id is
//!   neither pending nor already ordered;
//! - a block takes pending envelopes in arrival order, at most `max_message_count`, stopping
//!   before the total would pass `preferred_max_bytes` (an envelope larger than that goes in a
//!   block of its own); a config update always goes in a block of its own (Fabric's block
//!   cutter isolates config messages); blocks are never empty;
//! - a proposed batch is valid if it is the next block (number, previous hash), its data hash
//!   matches, its size follows the cutting rules, and every envelope would be admitted, with
//!   no tx_id twice in the block or already in the ledger.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_channel::config::BatchConfig;
use medledger_channel::envelope;
use medledger_proto::common::{BlockData, Envelope, HeaderType, Status};
use prost::Message;
use sha2::{Digest, Sha256};

/// Why an envelope was not admitted: the Fabric broadcast status and a reason (ids and codes
/// only, never payload contents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status:?}: {reason}")]
pub struct Rejection {
    /// `BAD_REQUEST`, `FORBIDDEN` or `REQUEST_ENTITY_TOO_LARGE`, as Fabric's broadcast handler.
    pub status: Status,
    /// Why.
    pub reason: String,
}

fn reject(status: Status, reason: impl Into<String>) -> Rejection {
    Rejection {
        status,
        reason: reason.into(),
    }
}

/// How far a config update's channel-header timestamp may be from the orderer's clock
/// (Fabric's default time window for signed requests, 15 minutes).
pub const CONFIG_UPDATE_TIME_WINDOW: Duration = Duration::from_secs(15 * 60);

/// An envelope that passed admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Its transaction id.
    pub tx_id: String,
    /// SHA-256 of the serialized envelope.
    pub hash: [u8; 32],
    /// Whether it is a config update (ordered alone in its block).
    pub config_update: bool,
}

/// SHA-256 of serialized envelope bytes (the key of the pending pool).
pub fn envelope_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Checks one serialized envelope for ordering on `config`'s channel at time `now` (size,
/// decoding, headers, tx_id, creator validity and signature, `Writers` policy). A config
/// update must also carry a timestamp within [`CONFIG_UPDATE_TIME_WINDOW`] of `now`, and pass
/// the creator and `Writers` checks and [`ChannelConfig::apply_update`] at that timestamp,
/// exactly as every peer's committer checks it. Duplicate tx_ids are the pool's and the
/// ledger's check.
///
/// # Errors
/// A [`Rejection`] with `REQUEST_ENTITY_TOO_LARGE` (over `absolute_max_bytes`),
/// `BAD_REQUEST` (malformed, wrong channel, unsupported header type, bad tx_id, a config
/// update that does not apply) or `FORBIDDEN` (invalid creator or signature, `Writers` not
/// satisfied, a config update without the admins' signatures it needs).
pub fn admit(config: &ChannelConfig, bytes: &[u8], now: SystemTime) -> Result<Admitted, Rejection> {
    use medledger_proto::protos::TxValidationCode as C;
    let max = config.batch().absolute_max_bytes as usize;
    if bytes.len() > max {
        return Err(reject(
            Status::RequestEntityTooLarge,
            format!("envelope of {} bytes exceeds {max}", bytes.len()),
        ));
    }
    let env = Envelope::decode(bytes)
        .map_err(|_| reject(Status::BadRequest, "envelope does not decode"))?;
    let checked = envelope::check(&env, config, now).map_err(|e| {
        let status = match e.code {
            C::BadCreatorSignature => Status::Forbidden,
            _ => Status::BadRequest,
        };
        reject(status, e.to_string())
    })?;
    if !config.evaluate("Writers", &[checked.creator.signer()]) {
        return Err(reject(
            Status::Forbidden,
            format!(
                "creator of MSP {} does not satisfy the channel Writers policy",
                checked.creator.msp_id()
            ),
        ));
    }
    let config_update = checked.parsed.header_type() == Some(HeaderType::ConfigUpdate);
    if config_update {
        // Peers check a config update at its channel-header timestamp (deterministic), so
        // the orderers check it there too — besides now, above — or the two could disagree
        // about a configuration and split for good.
        let at = checked
            .parsed
            .channel_header
            .timestamp
            .and_then(|t| SystemTime::try_from(t).ok())
            .ok_or_else(|| reject(Status::BadRequest, "config update without a timestamp"))?;
        let skew = now.duration_since(at).unwrap_or_else(|e| e.duration());
        if skew > CONFIG_UPDATE_TIME_WINDOW {
            return Err(reject(
                Status::BadRequest,
                format!(
                    "config update timestamp is {}s away from this orderer's clock (at most {}s)",
                    skew.as_secs(),
                    CONFIG_UPDATE_TIME_WINDOW.as_secs()
                ),
            ));
        }
        let at_timestamp = envelope::check(&env, config, at)
            .map_err(|e| reject(Status::Forbidden, format!("at its timestamp: {e}")))?;
        if !config.evaluate("Writers", &[at_timestamp.creator.signer()]) {
            return Err(reject(
                Status::Forbidden,
                "at its timestamp, the creator does not satisfy the channel Writers policy",
            ));
        }
        config
            .apply_update(&checked.parsed.payload.data, at)
            .map_err(|e| reject(e.status(), e.to_string()))?;
    }
    Ok(Admitted {
        tx_id: checked.parsed.tx_id().to_owned(),
        hash: envelope_hash(bytes),
        config_update,
    })
}

#[derive(Debug, Clone)]
struct Pending {
    bytes: Vec<u8>,
    tx_id: String,
    hash: [u8; 32],
    config_update: bool,
    arrived: Instant,
}

/// Admitted envelopes waiting to be ordered, in arrival order, without duplicate tx_ids.
#[derive(Debug, Default)]
pub struct Pool {
    by_seq: BTreeMap<u64, Pending>,
    by_tx: HashMap<String, u64>,
    by_hash: HashMap<[u8; 32], u64>,
    bytes: usize,
    /// How many pending envelopes are config updates (so cutting need not scan the pool).
    config_updates: usize,
    next_seq: u64,
}

impl Pool {
    /// Adds an admitted envelope; false if its tx_id is already pending.
    pub fn insert(&mut self, bytes: Vec<u8>, admitted: Admitted, now: Instant) -> bool {
        if self.by_tx.contains_key(&admitted.tx_id) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += bytes.len();
        self.config_updates += usize::from(admitted.config_update);
        self.by_tx.insert(admitted.tx_id.clone(), seq);
        self.by_hash.insert(admitted.hash, seq);
        self.by_seq.insert(
            seq,
            Pending {
                bytes,
                tx_id: admitted.tx_id,
                hash: admitted.hash,
                config_update: admitted.config_update,
                arrived: now,
            },
        );
        true
    }

    /// Whether an envelope with this tx_id is pending.
    pub fn contains_tx(&self, tx_id: &str) -> bool {
        self.by_tx.contains_key(tx_id)
    }

    /// Whether exactly these envelope bytes (by hash) are pending, i.e. were admitted here.
    pub fn contains_hash(&self, hash: &[u8; 32]) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The tx_id and config-update flag of the pending envelope with exactly these bytes (by
    /// hash), if any: such an envelope was admitted here and need not be verified again.
    pub fn tx_of(&self, hash: &[u8; 32]) -> Option<(&str, bool)> {
        let seq = self.by_hash.get(hash)?;
        self.by_seq
            .get(seq)
            .map(|p| (p.tx_id.as_str(), p.config_update))
    }

    /// Removes the envelopes with these tx_ids (they were ordered).
    pub fn remove_txs<'a>(&mut self, tx_ids: impl IntoIterator<Item = &'a str>) {
        for tx in tx_ids {
            if let Some(seq) = self.by_tx.remove(tx)
                && let Some(p) = self.by_seq.remove(&seq)
            {
                self.by_hash.remove(&p.hash);
                self.bytes -= p.bytes.len();
                self.config_updates -= usize::from(p.config_update);
            }
        }
    }

    /// Keeps only the pending envelopes for which `keep(bytes)` holds (after a configuration
    /// change, those still admissible); returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        let drop: Vec<String> = self
            .by_seq
            .values()
            .filter(|p| !keep(&p.bytes))
            .map(|p| p.tx_id.clone())
            .collect();
        self.remove_txs(drop.iter().map(String::as_str));
        drop.len()
    }

    /// Number of pending envelopes.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Total bytes pending.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest pending envelope arrived.
    pub fn oldest(&self) -> Option<Instant> {
        self.by_seq.values().next().map(|p| p.arrived)
    }

    /// Whether a block should be cut now: a full block's worth is pending (count or preferred
    /// bytes), a config update is pending, or the oldest envelope has waited
    /// `batch_timeout_ms`. `None` if nothing is
    /// pending; otherwise `Some(Duration::ZERO)` when ready, or how long until the batch
    /// timeout.
    pub fn time_to_cut(&self, batch: &BatchConfig, now: Instant) -> Option<Duration> {
        let oldest = self.oldest()?;
        if self.len() >= batch.max_message_count as usize
            || self.bytes >= batch.preferred_max_bytes as usize
            || self.config_updates > 0
        {
            return Some(Duration::ZERO);
        }
        let timeout = Duration::from_millis(batch.batch_timeout_ms);
        Some(timeout.saturating_sub(now.saturating_duration_since(oldest)))
    }

    /// The envelopes of the next block, in arrival order; empty if nothing is pending. A
    /// config update is cut alone, and ends the block of the envelopes before it.
    pub fn cut(&self, batch: &BatchConfig) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut total = 0usize;
        for p in self.by_seq.values() {
            if p.config_update {
                if out.is_empty() {
                    out.push(p.bytes.clone());
                }
                break;
            }
            if !fits(batch, out.len(), total, p.bytes.len()) {
                break;
            }
            total += p.bytes.len();
            out.push(p.bytes.clone());
        }
        out
    }

    /// Tx ids pending, oldest first (for tests and metrics).
    pub fn tx_ids(&self) -> impl Iterator<Item = &str> {
        self.by_seq.values().map(|p| p.tx_id.as_str())
    }
}

/// Whether an envelope of `size` bytes may join a block that holds `count` envelopes of
/// `total` bytes: Fabric's block cutter rule.
fn fits(batch: &BatchConfig, count: usize, total: usize, size: usize) -> bool {
    if count == 0 {
        return true;
    }
    count < batch.max_message_count as usize && total + size <= batch.preferred_max_bytes as usize
}

/// Why a proposed batch is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Not the next block number.
    #[error("block number {got}, expected {expected}")]
    WrongNumber {
        /// Number in the header.
        got: u64,
        /// Next block number.
        expected: u64,
    },
    /// Does not chain to the last block.
    #[error("block {number}: previous hash does not match block {}", number.saturating_sub(1))]
    WrongPreviousHash {
        /// Block number.
        number: u64,
    },
    /// Header data hash differs from the envelopes' hash.
    #[error("block {number}: data hash does not match its envelopes")]
    DataHashMismatch {
        /// Block number.
        number: u64,
    },
    /// No envelopes (empty blocks are never ordered).
    #[error("block {number}: empty")]
    Empty {
        /// Block number.
        number: u64,
    },
    /// Violates max_message_count or preferred/absolute bytes.
    #[error("block {number}: violates the batch size limits")]
    TooLarge {
        /// Block number.
        number: u64,
    },
    /// An envelope would not be admitted.
    #[error("block {number}: envelope {index}: {rejection}")]
    BadEnvelope {
        /// Block number.
        number: u64,
        /// Position in the block.
        index: usize,
        /// Why.
        rejection: Rejection,
    },
    /// A config update shares its block with other envelopes.
    #[error("block {number}: a config update must be alone in its block")]
    ConfigNotAlone {
        /// Block number.
        number: u64,
    },
    /// A tx_id appears twice in the block or is already in the ledger.
    #[error("block {number}: envelope {index}: duplicate tx_id {tx_id}")]
    DuplicateTxId {
        /// Block number.
        number: u64,
        /// Position in the block.
        index: usize,
        /// The tx id.
        tx_id: String,
    },
}

/// What this orderer knows of envelope bytes it admitted: the tx_id, and whether it is a
/// config update.
pub type KnownEnvelope = (String, bool);

/// What a batch is checked against: the chain so far.
#[derive(Debug)]
pub struct ChainView<'a> {
    /// Next block number.
    pub next_number: u64,
    /// Header hash of the last block.
    pub last_hash: [u8; 32],
    /// Every tx_id already ordered.
    pub ordered_tx_ids: &'a HashSet<String>,
}

/// A proposed batch: the block header fields and the envelopes streamed for it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Block number.
    pub number: u64,
    /// Previous block's header hash.
    pub previous_hash: &'a [u8; 32],
    /// Data hash claimed by the header.
    pub data_hash: &'a [u8; 32],
    /// Serialized envelopes, in block order.
    pub envelopes: &'a [Vec<u8>],
}

/// Validates a proposed batch (see the module docs) and returns its tx_ids in block order.
/// `already_admitted(hash)` gives the tx_id and config-update flag of envelope bytes this
/// process already admitted under the current configuration (then they are not verified
/// again).
///
/// # Errors
/// The first [`BatchError`] found.
pub fn validate(
    config: &ChannelConfig,
    chain: &ChainView<'_>,
    candidate: &Candidate<'_>,
    already_admitted: &dyn Fn(&[u8; 32]) -> Option<KnownEnvelope>,
    now: SystemTime,
) -> Result<Vec<String>, BatchError> {
    let Candidate {
        number,
        previous_hash,
        data_hash,
        envelopes,
    } = *candidate;
    if number != chain.next_number {
        return Err(BatchError::WrongNumber {
            got: number,
            expected: chain.next_number,
        });
    }
    if previous_hash != &chain.last_hash {
        return Err(BatchError::WrongPreviousHash { number });
    }
    if envelopes.is_empty() {
        return Err(BatchError::Empty { number });
    }
    let data = BlockData {
        data: envelopes.to_vec(),
    };
    if &medledger_channel::block::data_hash(&data) != data_hash {
        return Err(BatchError::DataHashMismatch { number });
    }
    let batch = config.batch();
    let mut total = 0usize;
    for (i, e) in envelopes.iter().enumerate() {
        if e.len() > batch.absolute_max_bytes as usize || !fits(batch, i, total, e.len()) {
            return Err(BatchError::TooLarge { number });
        }
        total += e.len();
    }
    let mut seen = HashSet::with_capacity(envelopes.len());
    let mut tx_ids = Vec::with_capacity(envelopes.len());
    for (index, e) in envelopes.iter().enumerate() {
        let hash = envelope_hash(e);
        let (tx_id, config_update) = match already_admitted(&hash) {
            Some(known) => known,
            None => {
                let a = admit(config, e, now).map_err(|rejection| BatchError::BadEnvelope {
                    number,
                    index,
                    rejection,
                })?;
                (a.tx_id, a.config_update)
            }
        };
        if config_update && envelopes.len() > 1 {
            return Err(BatchError::ConfigNotAlone { number });
        }
        if chain.ordered_tx_ids.contains(&tx_id) || !seen.insert(tx_id.clone()) {
            return Err(BatchError::DuplicateTxId {
                number,
                index,
                tx_id,
            });
        }
        tx_ids.push(tx_id);
    }
    Ok(tx_ids)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use medledger_channel::testing::{TestChannel, signed_envelope};
    use medledger_msp::ou::NodeOu;
    use medledger_proto::medledger::channel as cpb;

    fn channel(batch: cpb::BatchConfig) -> (TestChannel, ChannelConfig) {
        let ch = TestChannel::new("ehr", 1, 4);
        let mut proto = ch.config.to_proto().clone();
        proto.batch = Some(batch);
        let config = ChannelConfig::from_proto(proto).unwrap();
        (ch, config)
    }

    fn batch(max: u32, preferred: u32, absolute: u32) -> cpb::BatchConfig {
        cpb::BatchConfig {
            max_message_count: max,
            preferred_max_bytes: preferred,
            absolute_max_bytes: absolute,
            batch_timeout_ms: 100,
        }
    }

    #[test]
    fn admission_follows_fabric_broadcast_statuses() {
        let (mut ch, config) = channel(batch(10, 4000, 6000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let ok = signed_envelope(&client, "ehr", HeaderType::EndorserTransaction, vec![1; 10]);
        let a = admit(&config, &ok.encode_to_vec(), now).unwrap();
        assert_eq!(a.tx_id.len(), 64);
        let status = |e: &Envelope| admit(&config, &e.encode_to_vec(), now).unwrap_err().status;
        let other = signed_envelope(&client, "other", HeaderType::EndorserTransaction, vec![]);
        assert_eq!(status(&other), Status::BadRequest);
        let update = signed_envelope(&client, "ehr", HeaderType::ConfigUpdate, vec![]);
        assert_eq!(status(&update), Status::BadRequest);
        let mut forged = ok.clone();
        forged.signature[8] ^= 1;
        assert!(matches!(
            status(&forged),
            Status::Forbidden | Status::BadRequest
        ));
        // An orderer identity is valid but no Writer (application organizations only).
        let orderer = ch.orderer_org.identity("o", NodeOu::Orderer, &[]);
        let by_orderer = signed_envelope(&orderer, "ehr", HeaderType::EndorserTransaction, vec![]);
        assert_eq!(status(&by_orderer), Status::Forbidden);
        let big = signed_envelope(
            &client,
            "ehr",
            HeaderType::EndorserTransaction,
            vec![0; 7000],
        );
        assert_eq!(status(&big), Status::RequestEntityTooLarge);
        assert_eq!(
            admit(&config, b"\xff\xff", now).unwrap_err().status,
            Status::BadRequest
        );
    }

    #[test]
    fn cutting_respects_count_preferred_bytes_and_timeout() {
        let b = BatchConfig {
            max_message_count: 3,
            preferred_max_bytes: 250,
            absolute_max_bytes: 1000,
            batch_timeout_ms: 100,
        };
        let t0 = Instant::now();
        let mut pool = Pool::default();
        assert_eq!(pool.time_to_cut(&b, t0), None);
        let add = |pool: &mut Pool, tx: &str, size: usize| {
            let bytes = vec![tx.as_bytes()[0]; size];
            let admitted = Admitted {
                tx_id: tx.into(),
                hash: envelope_hash(&bytes),
                config_update: false,
            };
            pool.insert(bytes, admitted, t0)
        };
        assert!(add(&mut pool, "a", 100));
        assert!(!add(&mut pool, "a", 100), "duplicate tx_id");
        assert_eq!(
            pool.time_to_cut(&b, t0 + Duration::from_millis(30)),
            Some(Duration::from_millis(70))
        );
        assert_eq!(
            pool.time_to_cut(&b, t0 + Duration::from_millis(130)),
            Some(Duration::ZERO)
        );
        add(&mut pool, "b", 100);
        add(&mut pool, "c", 100);
        // 300 bytes pending >= preferred: cut now; the block stops before passing 250 bytes.
        assert_eq!(pool.time_to_cut(&b, t0), Some(Duration::ZERO));
        assert_eq!(pool.cut(&b).len(), 2);
        pool.remove_txs(["a", "b"]);
        assert_eq!(pool.len(), 1);
        // One envelope larger than preferred goes alone.
        add(&mut pool, "d", 600);
        assert_eq!(pool.cut(&b).len(), 1);
        pool.remove_txs(["c"]);
        assert_eq!(pool.cut(&b), vec![vec![b'd'; 600]]);
        // Count limit.
        pool.remove_txs(["d"]);
        for t in ["e", "f", "g", "h"] {
            add(&mut pool, t, 1);
        }
        assert_eq!(pool.cut(&b).len(), 3);
        assert_eq!(pool.time_to_cut(&b, t0), Some(Duration::ZERO));
    }

    #[test]
    fn batch_validation_names_the_first_violation() {
        let (mut ch, config) = channel(batch(3, 4000, 6000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let envs: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                signed_envelope(&client, "ehr", HeaderType::EndorserTransaction, vec![i; 10])
                    .encode_to_vec()
            })
            .collect();
        let ordered = HashSet::new();
        let chain = ChainView {
            next_number: 5,
            last_hash: [9; 32],
            ordered_tx_ids: &ordered,
        };
        let hash_of =
            |e: &[Vec<u8>]| medledger_channel::block::data_hash(&BlockData { data: e.to_vec() });
        let none = |_: &[u8; 32]| None;
        let check =
            |number: u64, prev: [u8; 32], data: [u8; 32], e: &[Vec<u8>], chain: &ChainView<'_>| {
                validate(
                    &config,
                    chain,
                    &Candidate {
                        number,
                        previous_hash: &prev,
                        data_hash: &data,
                        envelopes: e,
                    },
                    &none,
                    now,
                )
            };
        let two = &envs[..2];
        assert_eq!(
            check(5, [9; 32], hash_of(two), two, &chain).unwrap().len(),
            2
        );
        assert!(matches!(
            check(6, [9; 32], hash_of(two), two, &chain),
            Err(BatchError::WrongNumber {
                got: 6,
                expected: 5
            })
        ));
        assert!(matches!(
            check(5, [8; 32], hash_of(two), two, &chain),
            Err(BatchError::WrongPreviousHash { .. })
        ));
        assert!(matches!(
            check(5, [9; 32], [0; 32], two, &chain),
            Err(BatchError::DataHashMismatch { .. })
        ));
        assert!(matches!(
            check(5, [9; 32], hash_of(&[]), &[], &chain),
            Err(BatchError::Empty { .. })
        ));
        assert!(matches!(
            check(5, [9; 32], hash_of(&envs), &envs, &chain),
            Err(BatchError::TooLarge { .. })
        ));
        let dup = vec![envs[0].clone(), envs[0].clone()];
        assert!(matches!(
            check(5, [9; 32], hash_of(&dup), &dup, &chain),
            Err(BatchError::DuplicateTxId { index: 1, .. })
        ));
        let first_tx = check(5, [9; 32], hash_of(two), two, &chain).unwrap()[0].clone();
        let ordered: HashSet<String> = [first_tx].into_iter().collect();
        let chain2 = ChainView {
            next_number: 5,
            last_hash: [9; 32],
            ordered_tx_ids: &ordered,
        };
        assert!(matches!(
            check(5, [9; 32], hash_of(two), two, &chain2),
            Err(BatchError::DuplicateTxId { index: 0, .. })
        ));
        let mut bad = envs[1].clone();
        let n = bad.len();
        bad[n - 3] ^= 0x55;
        let with_bad = vec![envs[0].clone(), bad];
        assert!(matches!(
            check(5, [9; 32], hash_of(&with_bad), &with_bad, &chain),
            Err(BatchError::BadEnvelope { index: 1, .. })
        ));
    }

    #[test]
    fn config_updates_need_the_admins_and_are_ordered_alone() {
        use medledger_channel::testing::TestOrg;
        use medledger_channel::update;
        let mut ch = TestChannel::new("ehr", 2, 4);
        let admins: Vec<_> = (0..2)
            .map(|i| ch.orgs[i].identity(&format!("admin{i}"), NodeOu::Admin, &[]))
            .collect();
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let mut next = ch.config.to_proto().clone();
        next.sequence += 1;
        next.organizations
            .push(TestOrg::new("Org3MSP", "org3.example.com").organization());
        let signed_by = |signers: &[&medledger_msp::identity::SigningIdentity]| {
            let bytes = update::update_bytes(&next);
            let sigs = signers
                .iter()
                .map(|s| update::sign_update(&bytes, s).unwrap())
                .collect();
            update::update_envelope("ehr", bytes, sigs, signers[0], now)
                .unwrap()
                .encode_to_vec()
        };
        let minority = signed_by(&[&admins[0]]);
        assert_eq!(
            admit(&ch.config, &minority, now).unwrap_err().status,
            Status::Forbidden
        );
        let majority = signed_by(&[&admins[0], &admins[1]]);
        let admitted = admit(&ch.config, &majority, now).unwrap();
        assert!(admitted.config_update);
        // Checked at its own timestamp, as peers check it: one far from this orderer's clock
        // is refused.
        let stale = {
            let bytes = update::update_bytes(&next);
            let sigs = [&admins[0], &admins[1]]
                .iter()
                .map(|s| update::sign_update(&bytes, s).unwrap())
                .collect();
            let an_hour_ago = now - Duration::from_secs(3600);
            update::update_envelope("ehr", bytes, sigs, &admins[0], an_hour_ago)
                .unwrap()
                .encode_to_vec()
        };
        let refusal = admit(&ch.config, &stale, now).unwrap_err();
        assert_eq!(refusal.status, Status::BadRequest);
        assert!(refusal.reason.contains("timestamp"), "{refusal}");

        // Cut alone: the envelopes before it form a block, it forms the next, at once.
        let tx = |i: u8| {
            signed_envelope(&client, "ehr", HeaderType::EndorserTransaction, vec![i; 10])
                .encode_to_vec()
        };
        let (a, b) = (tx(1), tx(2));
        let t0 = Instant::now();
        let mut pool = Pool::default();
        for e in [&a, &majority, &b] {
            let adm = admit(&ch.config, e, now).unwrap();
            assert!(pool.insert(e.clone(), adm, t0));
        }
        let cfg = ch.config.batch();
        assert_eq!(pool.time_to_cut(cfg, t0), Some(Duration::ZERO));
        assert_eq!(pool.cut(cfg), vec![a.clone()]);
        let a_tx = admit(&ch.config, &a, now).unwrap().tx_id;
        pool.remove_txs([a_tx.as_str()]);
        assert_eq!(pool.cut(cfg), vec![majority.clone()]);

        // A proposal with the update among other envelopes is invalid; alone it is valid.
        let ordered = HashSet::new();
        let chain = ChainView {
            next_number: 1,
            last_hash: [0; 32],
            ordered_tx_ids: &ordered,
        };
        let propose = |e: &[Vec<u8>]| {
            let data = medledger_channel::block::data_hash(&BlockData { data: e.to_vec() });
            validate(
                &ch.config,
                &chain,
                &Candidate {
                    number: 1,
                    previous_hash: &[0; 32],
                    data_hash: &data,
                    envelopes: e,
                },
                &|_| None,
                now,
            )
        };
        assert!(matches!(
            propose(&[b.clone(), majority.clone()]),
            Err(BatchError::ConfigNotAlone { .. })
        ));
        assert_eq!(propose(std::slice::from_ref(&majority)).unwrap().len(), 1);

        // Once the update applied, the same update (stale sequence) is no longer admissible.
        let applied = ch
            .config
            .apply_update(
                &medledger_proto::common::Payload::decode(
                    Envelope::decode(majority.as_slice())
                        .unwrap()
                        .payload
                        .as_slice(),
                )
                .unwrap()
                .data,
                now,
            )
            .unwrap();
        assert_eq!(
            pool.retain(|e| admit(&applied, e, now).is_ok()),
            1,
            "the stale update is dropped"
        );
        assert_eq!(pool.len(), 1);
    }
}
