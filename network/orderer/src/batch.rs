//! Envelope admission, the pending pool, block cutting, and validation of proposed batches.
//!
//! Everything here is pure: inputs (bytes, the channel configuration, the time) in, results
//! out. The rules follow Fabric's orderer (`orderer/common/msgprocessor`,
//! `orderer/common/blockcutter`):
//!
//! - an envelope is admitted if it is at most `absolute_max_bytes`, decodes, passes
//!   [`medledger_channel::envelope::check`] (headers, channel, tx_id, creator and signature),
//!   its creator satisfies the channel's `Writers` policy, an `ENDORSER_TRANSACTION` is an
//!   endorsed transaction ([`check_endorsed`]: one action, bound to the headers, with at least
//!   one well-formed endorsement; above [`VERIFY_ENDORSEMENTS_ABOVE`] bytes, every
//!   endorsement's signature verified, which Fabric's orderer never does — ADR 0033), a
//!   `CONFIG_UPDATE` passes [`ChannelConfig::apply_update`] against the current
//!   configuration, and its tx_id is neither pending nor already ordered;
//! - the pool holds at most a number of envelopes, a number of bytes, per submitter (creator
//!   identity) a share of those bytes, and per organization (the creator's MSP) a share
//!   ([`PoolLimits`]: an organization that enrolls many identities still gets one share);
//!   beyond, Broadcast answers `SERVICE_UNAVAILABLE`;
//! - a block takes pending envelopes from the organizations in turn, and within an
//!   organization from its submitters in turn, each time first the one whose bytes ordered so
//!   far plus its next envelope's size are the fewest (weighted fair queuing by bytes on two
//!   levels; each submitter's envelopes in arrival order), at most `max_message_count`, stopping
//!   before the total would pass `preferred_max_bytes` (an envelope larger than that goes in a
//!   block of its own); a config update always goes in a block of its own (Fabric's block
//!   cutter isolates config messages); blocks are never empty;
//! - a proposed batch is valid if it is the next block (number, previous hash), its data hash
//!   matches, its size follows the cutting rules, and every envelope would be admitted, with
//!   no tx_id twice in the block or already in the ledger. The order within a block is the
//!   proposer's: followers check limits, not fairness (pools differ between orderers).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_channel::config::BatchConfig;
use medledger_channel::envelope;
use medledger_msp::msp::VerifiedIdentity;
use medledger_msp::ou::NodeOu;
use medledger_proto::TxId;
use medledger_proto::common::{Envelope, HeaderType, SignatureHeader, Status};
use medledger_proto::protos::{ChaincodeActionPayload, ProposalResponsePayload, Transaction};
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

/// The Broadcast answer for one envelope's verdict, as Fabric's `orderer.BroadcastResponse`:
/// `SUCCESS` with no info, or the refusal's status and reason.
pub fn broadcast_response(
    verdict: Result<(), Rejection>,
) -> medledger_proto::orderer::BroadcastResponse {
    match verdict {
        Ok(()) => medledger_proto::orderer::BroadcastResponse {
            status: Status::Success as i32,
            info: String::new(),
        },
        Err(r) => medledger_proto::orderer::BroadcastResponse {
            status: r.status as i32,
            info: r.reason,
        },
    }
}

/// A [`Rejection`] whose reason is cut to [`MAX_REASON_BYTES`].
fn reject(status: Status, reason: impl Into<String>) -> Rejection {
    let reason = reason.into();
    if reason.len() <= MAX_REASON_BYTES {
        return Rejection { status, reason };
    }
    let mut end = MAX_REASON_BYTES - '…'.len_utf8();
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + '…'.len_utf8());
    cut.push_str(&reason[..end]);
    cut.push('…');
    Rejection {
        status,
        reason: cut,
    }
}

/// Most bytes of a refusal's reason ([`Rejection::reason`]): longer reasons (one that
/// echoes a client's channel id or MSP id, say) are cut at a character boundary and end
/// with `…`. Keeps answers and remembered refusals small whatever a client sends.
pub const MAX_REASON_BYTES: usize = 256;

/// Most bytes one remembered verdict holds ([`Verdicts::held_bytes`]): the entry itself and
/// a refusal's reason of at most [`MAX_REASON_BYTES`], or an admission's tx_id and its
/// creator's MSP id. A remembered admission keeps none of the identities it was judged on
/// ([`Verdicts::put`]), however many endorsements it carries.
pub const MAX_REMEMBERED_VERDICT_BYTES: usize = 512;

/// How far a config update's channel-header timestamp may be from the orderer's clock
/// (Fabric's default time window for signed requests, 15 minutes).
pub const CONFIG_UPDATE_TIME_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Envelopes larger than this many bytes are admitted only if every endorsement verifies
/// ([`check_endorsed`]); smaller ones, as in Fabric, only if well formed. Normal EHR
/// transactions are a few KiB and pay no extra ECDSA verification; a multi-MiB envelope costs
/// its orderers far more in bandwidth, storage and hashing than one verification per
/// endorsement (~51 µs), so forged endorsements no longer get junk of that size ordered
/// (ADR 0033).
pub const VERIFY_ENDORSEMENTS_ABOVE: usize = 64 * 1024;

/// Most endorsements any endorsed transaction may carry: above
/// [`VERIFY_ENDORSEMENTS_ABOVE`] each is one ECDSA verification over the proposal response
/// payload here, and at every size one at each peer's validation, so this bounds what one
/// envelope costs to check (a majority of 32 organizations needs 17).
pub const MAX_VERIFIED_ENDORSEMENTS: usize = 32;

/// Bytes an envelope larger than [`VERIFY_ENDORSEMENTS_ABOVE`] may carry beyond what its
/// endorsements cover (the proposal response payload, and through its proposal hash the
/// channel header, signature header and chaincode proposal payload) and the endorsements
/// themselves: the envelope's copy of the signature header, the creator's signature and the
/// protobuf framing. Without it a creator could pad a genuinely endorsed transaction with
/// megabytes of unknown fields in layers only the creator signs.
pub const UNCOVERED_SLACK: usize = 1024;

/// An envelope that passed admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Its transaction id.
    pub tx_id: String,
    /// SHA-256 of the serialized envelope.
    pub hash: [u8; 32],
    /// Whether it is a config update (ordered alone in its block).
    pub config_update: bool,
    /// Who submitted it: the id of its creator's certificate (`VerifiedIdentity::id`).
    pub submitter: [u8; 32],
    /// The submitter's organization: its creator's MSP id.
    pub org: String,
    /// When the identities it was judged on (its creator; the endorsers [`check_endorsed`]
    /// validated) are all within their certificates' validity windows.
    pub valid: Validity,
    /// The identities it was judged on, kept so that a configuration change judges it again
    /// without decoding the envelope ([`Rejudgement`]); `None` for a config update (judged
    /// again in full, [`readmit`]) and in the verdict cache's copy ([`Verdicts::put`]).
    pub identities: Option<Arc<Identities>>,
}

/// The identities an admission of an endorsed transaction was judged on: with the
/// envelope's size, all that admission checks against the channel configuration. A
/// configuration change (new MSPs, roots, CRLs, NodeOU rules, policies) re-checks them
/// ([`Rejudgement`]) and leaves the rest — structure, tx id, bindings, signatures — as judged.
/// Kept by the pool's copy of an admission only (not the verdict cache's), and counted there
/// against [`PoolLimits::max_bytes`] ([`Pool::held_bytes`]). The identities are the MSP
/// manager's (`MspManager::validate`), shared by every admission of one certificate whatever
/// its encoding while the manager caches it.
#[derive(Debug)]
pub struct Identities {
    /// The creator (valid; the `Writers` policy was evaluated on it).
    creator: Arc<VerifiedIdentity>,
    /// The MSP id of every endorser, sorted, each once: each must stay a channel MSP.
    endorser_msps: Vec<String>,
    /// The endorsers [`check_endorsed`] validated: the first one, or every one (each a
    /// peer) of an envelope above [`VERIFY_ENDORSEMENTS_ABOVE`] bytes.
    endorsers: Vec<Arc<VerifiedIdentity>>,
}

impl PartialEq for Identities {
    /// The same identities (by [`VerifiedIdentity::id`]: MSP id and certificate).
    fn eq(&self, other: &Self) -> bool {
        self.creator.id() == other.creator.id()
            && self.endorser_msps == other.endorser_msps
            && self.endorsers.len() == other.endorsers.len()
            && self
                .endorsers
                .iter()
                .zip(&other.endorsers)
                .all(|(a, b)| a.id() == b.id())
    }
}

impl Eq for Identities {}

impl Identities {
    /// Bytes this holds besides the identities it shares: the list, its pointers and the
    /// endorsing MSPs' ids.
    fn held_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.endorsers.capacity() * std::mem::size_of::<Arc<VerifiedIdentity>>()
            + self
                .endorser_msps
                .iter()
                .map(|m| std::mem::size_of::<String>() + m.capacity())
                .sum::<usize>()
    }

    /// Every identity it keeps (the creator first; one may appear twice).
    fn all(&self) -> impl Iterator<Item = &Arc<VerifiedIdentity>> {
        std::iter::once(&self.creator).chain(&self.endorsers)
    }
}

/// Bytes one verified identity holds, estimated (not measured; a certificate with many short
/// OUs or attributes holds more): the
/// `VerifiedIdentity` and its `Arc` counters, its MSP id, and its parsed certificate — the
/// DER, and the fields parsed from it (serial, subject, issuer, public key, common name, OUs,
/// attributes), each a copy of part of the DER, so about the DER's size again — plus a
/// fixed allowance for those fields' own headers.
pub fn identity_held_bytes(identity: &VerifiedIdentity) -> usize {
    /// Headers of the parsed certificate's strings, vectors and attribute map, and
    /// allocator rounding.
    const PARSED_OVERHEAD: usize = 1024;
    2 * std::mem::size_of::<usize>()
        + std::mem::size_of::<VerifiedIdentity>()
        + identity.msp_id().len()
        + 2 * identity.certificate().der().len()
        + PARSED_OVERHEAD
}

/// Judges admissions again under a configuration that took effect since (a config block) at
/// one time, with [`readmit`]'s verdict but without decoding the envelopes: what admission
/// checks against the configuration is the envelope's size and the identities it kept
/// ([`Identities`]) — the creator and the validated endorsers still valid identities of a
/// channel MSP (its roots, CRLs and NodeOU rules now), the creator satisfying the `Writers`
/// policy now, every endorser's MSP still a channel MSP, the endorsers of an envelope above
/// [`VERIFY_ENDORSEMENTS_ABOVE`] bytes still peers. The rest depends on the bytes alone. An
/// identity kept by many admissions is validated once. A config update, or an admission
/// that kept no identities, is judged by [`readmit`], decoding it.
pub struct Rejudgement<'a> {
    config: &'a ChannelConfig,
    now: SystemTime,
    /// Identities validated so far, by [`VerifiedIdentity::id`]: valid now, or why not.
    validated: HashMap<[u8; 32], Result<Arc<VerifiedIdentity>, String>>,
}

impl std::fmt::Debug for Rejudgement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejudgement")
            .field("sequence", &self.config.sequence())
            .field("validated", &self.validated.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Rejudgement<'a> {
    /// Judges under `config` at `now`.
    pub fn new(config: &'a ChannelConfig, now: SystemTime) -> Self {
        Rejudgement {
            config,
            now,
            validated: HashMap::new(),
        }
    }

    /// The admission, under this configuration at this time, of the envelope `bytes`
    /// admitted before (under any configuration) as `admitted`: the same transaction, with
    /// its identities validated again and their validity span under this configuration.
    ///
    /// # Errors
    /// A [`Rejection`] as [`admit`]'s: `REQUEST_ENTITY_TOO_LARGE` (over
    /// `absolute_max_bytes` now), `FORBIDDEN` (the creator no longer valid or no longer a
    /// Writer), `BAD_REQUEST` (an endorser's MSP gone, an endorser no longer valid, or no
    /// longer a peer).
    pub fn judge(&mut self, bytes: &[u8], admitted: &Admitted) -> Result<Admitted, Rejection> {
        let kept = match admitted.identities.as_deref() {
            Some(kept) if !admitted.config_update => kept,
            _ => return readmit(self.config, bytes, self.now),
        };
        let max = self.config.batch().absolute_max_bytes as usize;
        if bytes.len() > max {
            return Err(reject(
                Status::RequestEntityTooLarge,
                format!("envelope of {} bytes exceeds {max}", bytes.len()),
            ));
        }
        let creator = self.validate(&kept.creator).map_err(|e| {
            reject(
                Status::Forbidden,
                format!("creator is not a valid identity: {e}"),
            )
        })?;
        if !self.config.evaluate("Writers", &[creator.signer()]) {
            return Err(reject(
                Status::Forbidden,
                format!(
                    "creator of MSP {} does not satisfy the channel Writers policy",
                    creator.msp_id()
                ),
            ));
        }
        if kept
            .endorser_msps
            .iter()
            .any(|m| self.config.msps().msp(m).is_none())
        {
            return Err(reject(
                Status::BadRequest,
                "an endorsement is not by a channel MSP's identity",
            ));
        }
        let peers = bytes.len() > VERIFY_ENDORSEMENTS_ABOVE;
        let mut valid = Validity::ALWAYS.and(&creator);
        let mut endorsers = Vec::with_capacity(kept.endorsers.len());
        for (i, e) in kept.endorsers.iter().enumerate() {
            let id = self.validate(e).map_err(|e| {
                reject(
                    Status::BadRequest,
                    format!("endorsement {i} is not by a valid identity: {e}"),
                )
            })?;
            if peers {
                id.require_ou(NodeOu::Peer).map_err(|e| {
                    reject(
                        Status::BadRequest,
                        format!("endorsement {i} of an envelope of {} bytes (above {VERIFY_ENDORSEMENTS_ABOVE}) is not by a peer: {e}", bytes.len()),
                    )
                })?;
            }
            valid = valid.and(&id);
            endorsers.push(id);
        }
        Ok(Admitted {
            tx_id: admitted.tx_id.clone(),
            hash: admitted.hash,
            config_update: false,
            submitter: *creator.id(),
            org: creator.msp_id().to_owned(),
            valid,
            identities: Some(Arc::new(Identities {
                creator,
                endorser_msps: kept.endorser_msps.clone(),
                endorsers,
            })),
        })
    }

    /// `id` validated under this configuration at this time (once per identity): its
    /// certificate, in the serialized form of its MSP (`msp.SerializedIdentity`, one PEM
    /// certificate), through `MspManager::validate`.
    fn validate(&mut self, id: &VerifiedIdentity) -> Result<Arc<VerifiedIdentity>, String> {
        let (config, now) = (self.config, self.now);
        self.validated
            .entry(*id.id())
            .or_insert_with(|| {
                let serialized = medledger_proto::msp::SerializedIdentity {
                    mspid: id.msp_id().to_owned(),
                    id_bytes: id.certificate().to_pem().into_bytes(),
                }
                .encode_to_vec();
                config
                    .msps()
                    .validate(&serialized, now)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

impl Admitted {
    /// Whether this admission holds at `t` under the configuration it was reached under,
    /// without judging the bytes again: nothing that admission checks depends on the time but
    /// the identities' validity windows ([`Validity`]) — except for a config update, whose
    /// timestamp is checked against the time too, so it is never taken as holding.
    pub fn holds_at(&self, t: SystemTime) -> bool {
        !self.config_update && self.valid.contains(t)
    }
}

/// A span of time, Unix seconds, both ends inclusive (as [`medledger_msp::msp::unix_seconds`]
/// and `VerifiedIdentity::validity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First second in the span.
    pub not_before: i64,
    /// Last second in the span.
    pub not_after: i64,
}

impl Validity {
    /// All time.
    pub const ALWAYS: Validity = Validity {
        not_before: i64::MIN,
        not_after: i64::MAX,
    };

    /// The part of this span in which `id` is valid too.
    fn and(self, id: &medledger_msp::msp::VerifiedIdentity) -> Validity {
        let (not_before, not_after) = id.validity();
        self.meet(Validity {
            not_before,
            not_after,
        })
    }

    /// The part of this span in `other` too.
    fn meet(self, other: Validity) -> Validity {
        Validity {
            not_before: self.not_before.max(other.not_before),
            not_after: self.not_after.min(other.not_after),
        }
    }

    /// Whether `t` is in the span.
    pub fn contains(&self, t: SystemTime) -> bool {
        let s = medledger_msp::msp::unix_seconds(t);
        self.not_before <= s && s <= self.not_after
    }
}

/// An envelope checked for admission ([`Verdicts::check`]), possibly on another thread than
/// the one that pools it: its bytes, the verdict, and the configuration sequence it was checked
/// under (the pool re-checks it if the configuration changed since).
#[derive(Debug, Clone)]
pub struct Checked {
    /// The serialized envelope.
    pub bytes: Vec<u8>,
    /// [`admit`]'s verdict.
    pub result: Result<Admitted, Rejection>,
    /// Sequence of the configuration it was checked under.
    pub sequence: u64,
}

/// Admission verdicts by envelope hash, each with the configuration sequence it was reached
/// under, shared by every thread of an orderer that checks envelopes: Broadcast, envelopes
/// other orderers forward, and the core when it validates a proposed batch. An envelope
/// reaches an orderer up to three times (from its submitter, forwarded by another orderer, in
/// a proposal), and a client may send the same bytes many times; with this the signatures of
/// one envelope are verified once per configuration, whatever the verdict.
///
/// What is remembered is what does not depend on the time: an admission means its
/// signatures verified (every later judgement of those bytes re-runs the time-dependent
/// checks — creator and endorser validity — at its own time, without verifying again:
/// [`readmit`]); a refusal is remembered if no time-dependent check caused it (a bad
/// signature, a malformed envelope, a policy not satisfied), so it holds at any time under
/// the same configuration, or if a certificate it was judged on expired before the last
/// block's ordering time ([`Verdicts::set_last_block_time`]): every later block is ordered
/// at that time or later (ADR 0030), when the certificate is still expired, so the envelope
/// can never be ordered (a client re-sending it costs each orderer a hash, not a chain
/// validation or a signature verification). Every entry is keyed by the configuration
/// sequence: nothing outlives a configuration change. Bounded (least recently used verdicts
/// are forgotten).
#[derive(Clone)]
pub struct Verdicts {
    inner: std::sync::Arc<std::sync::Mutex<VerdictCache>>,
    verifications: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The last block's ordering time, ms since the Unix epoch (0: none yet).
    last_block_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Verdicts by envelope hash, with the configuration sequence of each.
type VerdictCache = lru::LruCache<[u8; 32], (u64, Result<Admitted, Rejection>)>;

impl std::fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verdicts").finish_non_exhaustive()
    }
}

impl Verdicts {
    /// Remembers at most `capacity` verdicts (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = std::num::NonZeroUsize::new(capacity).unwrap_or(std::num::NonZeroUsize::MIN);
        Verdicts {
            inner: std::sync::Arc::new(std::sync::Mutex::new(lru::LruCache::new(capacity))),
            verifications: std::sync::Arc::default(),
            last_block_ms: std::sync::Arc::default(),
        }
    }

    /// Records the ordering time of the last block in the chain, ms since the Unix epoch
    /// (`Chain::last_time_ms`; an earlier time than one recorded before is ignored): no later
    /// block is ordered before it, so a refusal for a certificate that expired before it
    /// holds for every envelope that can still be ordered, and is remembered.
    pub fn set_last_block_time(&self, time_ms: u64) {
        self.last_block_ms
            .fetch_max(time_ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `refusal` holds at every time a later judgement may matter at: always, or
    /// (an expired certificate) from before the last block's ordering time on.
    fn lasting(&self, refusal: &Refusal) -> bool {
        match refusal.holds {
            Holds::Always => true,
            Holds::After(not_after) => {
                let last_ms = self
                    .last_block_ms
                    .load(std::sync::atomic::Ordering::Relaxed);
                // Any time from the last block's on is at least this many whole seconds.
                i64::try_from(last_ms / 1000).is_ok_and(|last| not_after < last)
            }
            Holds::Now => false,
        }
    }

    /// The admission of the envelope with this hash under configuration `sequence`, if known
    /// (as judged when it was remembered: [`Verdicts::judge`] re-judges the time).
    pub fn get(&self, hash: &[u8; 32], sequence: u64) -> Option<Admitted> {
        self.lookup(hash, sequence).and_then(Result::ok)
    }

    /// The verdict remembered for this hash under configuration `sequence`, if any.
    fn lookup(&self, hash: &[u8; 32], sequence: u64) -> Option<Result<Admitted, Rejection>> {
        let mut cache = self.inner.lock().ok()?;
        cache
            .get(hash)
            .filter(|(seq, _)| *seq == sequence)
            .map(|(_, v)| v.clone())
    }

    /// Remembers an admission under configuration `sequence`, without the identities it
    /// was judged on ([`Admitted::identities`] is `None` in the copy): they would outlive
    /// the MSP manager's bounded cache in this one, outside
    /// [`MAX_REMEMBERED_VERDICT_BYTES`]. A remembered admission answered under a later
    /// configuration is therefore judged again from its bytes ([`readmit`]).
    pub fn put(&self, admitted: &Admitted, sequence: u64) {
        let compact = Admitted {
            tx_id: admitted.tx_id.clone(),
            hash: admitted.hash,
            config_update: admitted.config_update,
            submitter: admitted.submitter,
            org: admitted.org.clone(),
            valid: admitted.valid,
            identities: None,
        };
        if let Ok(mut cache) = self.inner.lock() {
            cache.put(admitted.hash, (sequence, Ok(compact)));
        }
    }

    /// Heap and inline bytes the remembered verdicts hold (each entry's key, sequence and
    /// verdict, and the strings it owns): bounded by the entry count times
    /// [`MAX_REMEMBERED_VERDICT_BYTES`].
    pub fn held_bytes(&self) -> usize {
        let Ok(cache) = self.inner.lock() else {
            return 0;
        };
        cache
            .iter()
            .map(|(_, (_, verdict))| {
                std::mem::size_of::<([u8; 32], (u64, Result<Admitted, Rejection>))>()
                    + match verdict {
                        // No identities: see `Verdicts::put`.
                        Ok(a) => a.tx_id.capacity() + a.org.capacity(),
                        Err(r) => r.reason.capacity(),
                    }
            })
            .sum()
    }

    /// How many envelopes were judged with their signatures verified (the expensive checks),
    /// since this was created: every other judgement was answered from what it remembers.
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// [`admit`] of `bytes` (whose [`envelope_hash`] is `hash`) under `config` at `now`:
    /// a remembered refusal answers at once; a remembered admission answers at once if it
    /// holds at `now` ([`Admitted::holds_at`]: its identities' validity windows), and is
    /// otherwise re-judged at `now` without verifying its signatures again ([`readmit`]);
    /// anything else is checked in full, and the verdict remembered unless it depends on the
    /// time (a certificate that expired before the last block's ordering time does not: see
    /// the type's docs).
    ///
    /// # Errors
    /// As [`admit`].
    pub fn judge(
        &self,
        config: &ChannelConfig,
        bytes: &[u8],
        hash: [u8; 32],
        now: SystemTime,
    ) -> Result<Admitted, Rejection> {
        let sequence = config.sequence();
        match self.lookup(&hash, sequence) {
            Some(Err(r)) => Err(r),
            Some(Ok(a)) if a.holds_at(now) => Ok(a),
            Some(Ok(_)) => {
                judge(config, bytes, hash, now, Signatures::Verified).map_err(|r| r.rejection)
            }
            None => {
                self.verifications
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let verdict = judge(config, bytes, hash, now, Signatures::Verify).map_err(|r| {
                    if self.lasting(&r)
                        && let Ok(mut cache) = self.inner.lock()
                    {
                        // Compact: the status and a reason of at most MAX_REASON_BYTES,
                        // copied without spare capacity.
                        let compact = reject(r.rejection.status, r.rejection.reason.as_str());
                        cache.put(hash, (sequence, Err(compact)));
                    }
                    r.rejection
                })?;
                self.put(&verdict, sequence);
                Ok(verdict)
            }
        }
    }

    /// Runs [`Verdicts::judge`] on `bytes` under `config` at `now` and keeps the verdict
    /// with the bytes.
    pub fn check(&self, config: &ChannelConfig, bytes: Vec<u8>, now: SystemTime) -> Checked {
        let hash = envelope_hash(&bytes);
        let result = self.judge(config, &bytes, hash, now);
        Checked {
            bytes,
            result,
            sequence: config.sequence(),
        }
    }
}

/// The serialized creator in `env`'s signature header, decoded from the headers only;
/// `None` if they do not decode or the creator is empty (`envelope::check` names that).
fn signed_creator(env: &Envelope) -> Option<Vec<u8>> {
    let (_, signature_header) = envelope::payload_headers(&env.payload)?;
    let creator = signature_header.creator;
    (!creator.is_empty()).then_some(creator)
}

/// SHA-256 of serialized envelope bytes (the key of the pending pool).
pub fn envelope_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Checks one serialized envelope for ordering on `config`'s channel at time `now` (size,
/// decoding, headers, tx_id, creator validity and signature, `Writers` policy; an endorser
/// transaction's shape and endorsements, [`check_endorsed`]). A config
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
    judge(config, bytes, envelope_hash(bytes), now, Signatures::Verify).map_err(|r| r.rejection)
}

/// [`admit`] of envelope bytes whose signatures (the creator's, and the endorsements' a large
/// envelope needs) were verified before — under any configuration: a signature depends only
/// on the bytes and the signer's key. Every other check runs, at `now`: the size, the
/// structure, the creator's and endorsers' validity (certificate windows, CRLs of `config`),
/// the policies; a config update is checked in full. This is how an orderer re-judges an
/// envelope it admitted earlier at a block's ordering time, or under a new configuration,
/// with the verdict an orderer that never saw it reaches, for the cost of decoding it.
///
/// # Errors
/// As [`admit`].
pub(crate) fn readmit(
    config: &ChannelConfig,
    bytes: &[u8],
    now: SystemTime,
) -> Result<Admitted, Rejection> {
    judge(
        config,
        bytes,
        envelope_hash(bytes),
        now,
        Signatures::Verified,
    )
    .map_err(|r| r.rejection)
}

/// Whether admission verifies signatures, or takes them as verified ([`readmit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signatures {
    Verify,
    Verified,
}

/// A refusal, and at which times it holds (under the same configuration).
struct Refusal {
    rejection: Rejection,
    holds: Holds,
}

/// At which times a refusal holds, under the configuration it was reached under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    /// At any time: no time-dependent check caused it (a bad signature, a malformed
    /// envelope, a policy not satisfied, an unknown or revoked identity).
    Always,
    /// At any time after this second (Unix seconds): a certificate of an identity it was
    /// judged on expired then (RFC 5280 validity: after `notAfter`, never valid again).
    After(i64),
    /// Only at the time judged: a certificate not valid yet, a config update's timestamp
    /// window.
    Now,
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal {
            rejection,
            holds: Holds::Always,
        }
    }
}

/// A refusal caused by a time-dependent check.
fn refused_at_time(status: Status, reason: impl Into<String>) -> Refusal {
    Refusal {
        rejection: reject(status, reason),
        holds: Holds::Now,
    }
}

/// A refusal because an identity is not valid (`error`): time-dependent only if a
/// certificate is outside its validity window (`Expired`: for ever after its `notAfter`;
/// `NotYetValid`); an unknown MSP or CA, a forged or malformed certificate, a wrong NodeOU, a
/// revocation (CRLs come with the configuration) hold at any time under the same
/// configuration.
fn invalid_identity(status: Status, reason: String, error: &medledger_msp::Error) -> Refusal {
    let holds = match error {
        // The MSP names the expired certificate's notAfter in RFC 3339 (from whole seconds);
        // one that does not parse is taken as holding now only.
        medledger_msp::Error::Expired { not_after, .. } => {
            time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339)
                .map_or(Holds::Now, |t| Holds::After(t.unix_timestamp()))
        }
        medledger_msp::Error::NotYetValid { .. } => Holds::Now,
        _ => Holds::Always,
    };
    Refusal {
        rejection: reject(status, reason),
        holds,
    }
}

/// [`admit`] of `bytes` whose [`envelope_hash`] the caller already computed, verifying
/// signatures or not.
fn judge(
    config: &ChannelConfig,
    bytes: &[u8],
    hash: [u8; 32],
    now: SystemTime,
    signatures: Signatures,
) -> Result<Admitted, Refusal> {
    use medledger_proto::protos::TxValidationCode as C;
    let max = config.batch().absolute_max_bytes as usize;
    if bytes.len() > max {
        return Err(reject(
            Status::RequestEntityTooLarge,
            format!("envelope of {} bytes exceeds {max}", bytes.len()),
        )
        .into());
    }
    let env = Envelope::decode(bytes)
        .map_err(|_| reject(Status::BadRequest, "envelope does not decode"))?;
    let creator_invalid = |e: medledger_msp::Error| {
        let reason = envelope::EnvelopeError {
            code: C::BadCreatorSignature,
            reason: e.to_string(),
        }
        .to_string();
        invalid_identity(Status::Forbidden, reason, &e)
    };
    let checked = match signatures {
        Signatures::Verify => {
            // The creator is validated first, so that its refusal keeps the MSP error's kind
            // (`envelope::check` reports it as text): only a certificate outside its validity
            // window may be valid at another time; an unknown MSP or CA, a forged or
            // malformed certificate, a revoked one (CRLs come with the configuration) are
            // refused under this configuration at any time. A valid creator is cached by the
            // MSP manager, so `envelope::check` does not validate it again, and any creator
            // refusal it returns is a bad signature.
            if let Some(creator) = signed_creator(&env)
                && let Err(e) = config.msps().validate(&creator, now)
            {
                return Err(creator_invalid(e));
            }
            envelope::check(&env, config, now).map_err(|e| {
                let status = match e.code {
                    C::BadCreatorSignature => Status::Forbidden,
                    _ => Status::BadRequest,
                };
                reject(status, e.to_string())
            })?
        }
        Signatures::Verified => {
            // The structure passed `envelope::check` with these bytes before; only the
            // creator's validity depends on the time and the configuration.
            let parsed =
                envelope::parse(&env).map_err(|e| reject(Status::BadRequest, e.to_string()))?;
            let creator = config
                .msps()
                .validate(&parsed.signature_header.creator, now)
                .map_err(creator_invalid)?;
            // `envelope::check` matched it with hex(SHA-256(nonce ‖ creator)) then.
            let tx_id = TxId::new(parsed.channel_header.tx_id.clone())
                .map_err(|e| reject(Status::BadRequest, e.to_string()))?;
            envelope::CheckedEnvelope {
                parsed,
                creator,
                tx_id,
            }
        }
    };
    // Orderers read block entries' tx ids and header types from the headers alone
    // (`envelope::headers_of`: no copy of the data); an encoding on which that reading and the
    // full decoding disagree (a payload field given twice: prost keeps the last bytes but
    // merges messages) would be ordered under one tx id and pruned under another.
    if envelope::headers_of(bytes).is_none_or(|(channel_header, signature_header)| {
        channel_header != checked.parsed.channel_header
            || signature_header != checked.parsed.signature_header
    }) {
        return Err(reject(
            Status::BadRequest,
            "envelope headers are encoded ambiguously (a payload field given more than once)",
        )
        .into());
    }
    if !config.evaluate("Writers", &[checked.creator.signer()]) {
        return Err(reject(
            Status::Forbidden,
            format!(
                "creator of MSP {} does not satisfy the channel Writers policy",
                checked.creator.msp_id()
            ),
        )
        .into());
    }
    let config_update = checked.parsed.header_type() == Some(HeaderType::ConfigUpdate);
    let mut valid = Validity::ALWAYS.and(&checked.creator);
    let mut identities = None;
    if !config_update {
        let e = endorsed(config, &checked.parsed, bytes.len(), now, signatures)?;
        valid = valid.meet(e.valid);
        identities = Some(Arc::new(Identities {
            creator: checked.creator.clone(),
            endorser_msps: e.msps,
            endorsers: e.endorsers,
        }));
    }
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
            return Err(refused_at_time(
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
            )
            .into());
        }
        config
            .apply_update(&checked.parsed.payload.data, at)
            .map_err(|e| reject(e.status(), e.to_string()))?;
    }
    Ok(Admitted {
        tx_id: checked.parsed.tx_id().to_owned(),
        hash,
        config_update,
        submitter: *checked.creator.id(),
        org: checked.creator.msp_id().to_owned(),
        valid,
        identities,
    })
}

/// Checks that an `ENDORSER_TRANSACTION` envelope is an endorsed transaction, as Fabric's
/// `protoutil.CreateSignedTx` builds it and as every peer's committer first checks it
/// (`medledger_peer::validator`): the payload data is a `Transaction` with exactly one
/// action, whose header is the envelope's signature header; the action payload is a
/// `ChaincodeActionPayload` with an endorsed action whose `ProposalResponsePayload` is bound
/// to the transaction by its proposal hash (SHA-256 of channel header ‖ signature header ‖
/// chaincode proposal payload); and it carries at least one endorsement, each with an
/// endorser of a channel MSP and a signature, the first endorser a valid identity of its MSP
/// at `now`. This keeps unendorsed output — an evaluate-only response, say — and arbitrary
/// bytes out of blocks.
///
/// Any transaction carries at most [`MAX_VERIFIED_ENDORSEMENTS`] endorsements. One of `size`
/// bytes above [`VERIFY_ENDORSEMENTS_ABOVE`] must also have each endorsement by a distinct
/// valid *peer* of a channel MSP at `now` whose signature over
/// `proposal_response_payload ‖ endorser` verifies (Fabric's endorsement signature, checked
/// as the peers' validator checks it), and at most the signature header's size plus
/// [`UNCOVERED_SLACK`] bytes that no endorsement covers: a Writer cannot get megabytes ordered
/// behind a copied peer certificate and random signature bytes, its own endorsement, or
/// padding around a genuine one; it needs peers that endorse a proposal that large. Below the
/// threshold endorsement signatures are not verified here, as in Fabric's orderer: a forged
/// one is ordered and every peer marks the transaction `ENDORSEMENT_POLICY_FAILURE`. The
/// endorsement policy is always the peers' to evaluate.
///
/// # Errors
/// A `BAD_REQUEST` [`Rejection`] naming the first violation.
pub fn check_endorsed(
    config: &ChannelConfig,
    parsed: &envelope::ParsedEnvelope,
    size: usize,
    now: SystemTime,
) -> Result<(), Rejection> {
    endorsed(config, parsed, size, now, Signatures::Verify)
        .map(|_| ())
        .map_err(|r| r.rejection)
}

/// What [`endorsed`] judged on: the span in which the endorsers it validated are valid, and
/// the identities a configuration change checks again ([`Identities`]).
struct Endorsed {
    valid: Validity,
    /// Every endorser's MSP id, sorted, each once.
    msps: Vec<String>,
    /// The endorsers validated.
    endorsers: Vec<Arc<VerifiedIdentity>>,
}

/// [`check_endorsed`], verifying the endorsements' signatures or not (they were verified
/// before, [`readmit`]). The proposal response payload is hashed once for all endorsements.
fn endorsed(
    config: &ChannelConfig,
    parsed: &envelope::ParsedEnvelope,
    size: usize,
    now: SystemTime,
    signatures: Signatures,
) -> Result<Endorsed, Refusal> {
    let bad = |reason: &str| reject(Status::BadRequest, reason);
    let tx = Transaction::decode(parsed.payload.data.as_slice())
        .map_err(|_| bad("payload data is not a Transaction"))?;
    let [action] = tx.actions.as_slice() else {
        return Err(bad("a transaction must have exactly one action").into());
    };
    let action_header = SignatureHeader::decode(action.header.as_slice())
        .map_err(|_| bad("action header does not decode"))?;
    if action_header != parsed.signature_header {
        return Err(bad("action header differs from the envelope's signature header").into());
    }
    let cap = ChaincodeActionPayload::decode(action.payload.as_slice())
        .map_err(|_| bad("action payload does not decode"))?;
    let endorsed = cap
        .action
        .as_ref()
        .ok_or_else(|| bad("transaction has no endorsed action"))?;
    let prp = ProposalResponsePayload::decode(endorsed.proposal_response_payload.as_slice())
        .map_err(|_| bad("proposal response payload does not decode"))?;
    let channel_header = parsed
        .payload
        .header
        .as_ref()
        .map(|h| h.channel_header.as_slice())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(channel_header);
    hasher.update(&action.header);
    hasher.update(&cap.chaincode_proposal_payload);
    if prp.proposal_hash[..] != hasher.finalize()[..] {
        return Err(
            bad("proposal hash does not match the transaction's headers and proposal").into(),
        );
    }
    let Some(first) = endorsed.endorsements.first() else {
        return Err(
            bad("transaction has no endorsement (unendorsed output is not ordered)").into(),
        );
    };
    if endorsed.endorsements.len() > MAX_VERIFIED_ENDORSEMENTS {
        return Err(bad(&format!(
            "a transaction carries {} endorsements (at most {MAX_VERIFIED_ENDORSEMENTS})",
            endorsed.endorsements.len()
        ))
        .into());
    }
    let mut msps = Vec::with_capacity(1);
    for e in &endorsed.endorsements {
        let sid = medledger_proto::msp::SerializedIdentity::decode(e.endorser.as_slice())
            .map_err(|_| bad("an endorser is not a serialized identity"))?;
        if config.msps().msp(&sid.mspid).is_none() || e.signature.is_empty() {
            return Err(bad(
                "an endorsement is not by a channel MSP's identity or has no signature",
            )
            .into());
        }
        if !msps.contains(&sid.mspid) {
            msps.push(sid.mspid);
        }
    }
    msps.sort_unstable();
    if size <= VERIFY_ENDORSEMENTS_ABOVE {
        let first = config.msps().validate(&first.endorser, now).map_err(|e| {
            invalid_identity(
                Status::BadRequest,
                format!("endorser is not a valid identity: {e}"),
                &e,
            )
        })?;
        return Ok(Endorsed {
            valid: Validity::ALWAYS.and(&first),
            msps,
            endorsers: vec![first],
        });
    }
    // What neither the endorsements nor the proposal hash cover is bounded: the creator
    // alone signs it.
    let covered = channel_header.len()
        + action.header.len()
        + cap.chaincode_proposal_payload.len()
        + endorsed.proposal_response_payload.len()
        + endorsed
            .endorsements
            .iter()
            .map(|e| e.endorser.len() + e.signature.len())
            .sum::<usize>();
    let uncovered = size.saturating_sub(covered);
    if uncovered > action.header.len() + UNCOVERED_SLACK {
        return Err(bad(&format!(
            "an envelope of {size} bytes carries {uncovered} bytes no endorsement covers (at most the signature header and {UNCOVERED_SLACK} above {VERIFY_ENDORSEMENTS_ABOVE} bytes)"
        ))
        .into());
    }
    // Every endorser a valid peer of a channel MSP, each once, before any signature is
    // verified (identities are cached; a signature costs a hash of the whole payload).
    let mut endorsers = HashSet::with_capacity(endorsed.endorsements.len());
    let mut identities = Vec::with_capacity(endorsed.endorsements.len());
    for (i, e) in endorsed.endorsements.iter().enumerate() {
        let id = config.msps().validate(&e.endorser, now).map_err(|err| {
            invalid_identity(
                Status::BadRequest,
                format!(
                    "endorsement {i} of an envelope of {size} bytes is not by a valid identity: {err}"
                ),
                &err,
            )
        })?;
        id.require_ou(NodeOu::Peer).map_err(|err| {
            bad(&format!(
                "endorsement {i} of an envelope of {size} bytes (above {VERIFY_ENDORSEMENTS_ABOVE}) is not by a peer: {err}"
            ))
        })?;
        if !endorsers.insert(*id.id()) {
            return Err(bad(&format!(
                "endorsement {i} of an envelope of {size} bytes is by an endorser already counted"
            ))
            .into());
        }
        identities.push(id);
    }
    let valid = identities.iter().fold(Validity::ALWAYS, |v, id| v.and(id));
    if signatures == Signatures::Verified {
        return Ok(Endorsed {
            valid,
            msps,
            endorsers: identities,
        });
    }
    // Each endorsement signs SHA-256(proposal_response_payload ‖ endorser): the payload, up
    // to `absolute_max_bytes`, is hashed once, and each signature verified on the digest.
    let payload_hash = Sha256::new_with_prefix(&endorsed.proposal_response_payload);
    for (i, (e, id)) in endorsed.endorsements.iter().zip(&identities).enumerate() {
        let digest = payload_hash.clone().chain_update(&e.endorser).finalize();
        medledger_msp::crypto::verify_prehashed(id.certificate().public_key(), &digest, &e.signature).map_err(|err| {
            bad(&format!(
                "endorsement {i} of an envelope of {size} bytes (above {VERIFY_ENDORSEMENTS_ABOVE}) does not verify: {err}"
            ))
        })?;
    }
    Ok(Endorsed {
        valid,
        msps,
        endorsers: identities,
    })
}

#[derive(Debug, Clone)]
struct Pending {
    bytes: Vec<u8>,
    admitted: Admitted,
    arrived: Instant,
    /// What it counts against its submitter's and organization's shares ([`share_charge`]).
    charge: usize,
}

/// What an envelope of `size` bytes whose admission is `admitted` counts against its
/// submitter's and its organization's shares: its bytes, and the identities its admission keeps
/// as if no other admission shared them ([`identity_held_bytes`] each, and their list), so an
/// organization cannot fill the pool beyond its share with identity bytes (security review
/// sr2, Low-1). The pool's total counts each shared identity once ([`Pool::held_bytes`]).
fn share_charge(admitted: &Admitted, size: usize) -> usize {
    admitted.identities.as_deref().map_or(size, |kept| {
        KeptIdentities::distinct(kept)
            .map(|(_, id)| identity_held_bytes(id))
            .fold(
                size.saturating_add(kept.held_bytes()),
                usize::saturating_add,
            )
    })
}

/// The identities pooled admissions keep ([`Identities`]), each allocation counted once
/// however many admissions share it (by the address of its `Arc`, alive while counted).
#[derive(Debug, Default)]
struct KeptIdentities {
    /// Per identity: how many pooled admissions keep it, and its [`identity_held_bytes`].
    by_address: HashMap<usize, (usize, usize)>,
    /// Their bytes, and each admission's own [`Identities::held_bytes`].
    bytes: usize,
}

impl KeptIdentities {
    /// The distinct identities of `kept`, by address.
    fn distinct(kept: &Identities) -> impl Iterator<Item = (usize, &Arc<VerifiedIdentity>)> {
        let mut seen = HashSet::new();
        kept.all()
            .map(|id| (Arc::as_ptr(id) as usize, id))
            .filter(move |(address, _)| seen.insert(*address))
    }

    /// Bytes adding an admission that keeps `kept` would count.
    fn cost(&self, kept: Option<&Identities>) -> usize {
        kept.map_or(0, |kept| {
            kept.held_bytes()
                + Self::distinct(kept)
                    .filter(|(address, _)| !self.by_address.contains_key(address))
                    .map(|(_, id)| identity_held_bytes(id))
                    .sum::<usize>()
        })
    }

    fn add(&mut self, kept: Option<&Identities>) {
        let Some(kept) = kept else { return };
        self.bytes += kept.held_bytes();
        for (address, id) in Self::distinct(kept) {
            let entry = self.by_address.entry(address).or_insert_with(|| {
                let bytes = identity_held_bytes(id);
                self.bytes += bytes;
                (0, bytes)
            });
            entry.0 += 1;
        }
    }

    fn remove(&mut self, kept: Option<&Identities>) {
        let Some(kept) = kept else { return };
        self.bytes -= kept.held_bytes();
        for (address, _) in Self::distinct(kept) {
            if let Some(entry) = self.by_address.get_mut(&address) {
                entry.0 -= 1;
                if entry.0 == 0 {
                    self.bytes -= entry.1;
                    self.by_address.remove(&address);
                }
            }
        }
    }
}

/// Whether `size` more bytes on top of `held` pending pass a submitter's or organization's
/// `share`. Nothing pending always takes one envelope (at most `absolute_max_bytes`), so a
/// share below that size never refuses a large transaction for ever.
pub fn over_share(held: usize, size: usize, share: usize) -> bool {
    held > 0 && held.saturating_add(size) > share
}

/// How much the pending pool holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Envelopes.
    pub max_envelopes: usize,
    /// Bytes of envelopes and of the identities their admissions keep
    /// ([`Pool::held_bytes`]).
    pub max_bytes: usize,
    /// Bytes of one submitter's envelopes, with the identities their admissions keep (each
    /// counted per admission: [`share_charge`]).
    pub max_bytes_per_submitter: usize,
    /// Bytes of the envelopes of one organization's submitters (creators of one MSP), counted
    /// as for a submitter: an organization that enrolls many identities still gets one share.
    pub max_bytes_per_org: usize,
}

impl Default for PoolLimits {
    /// No limits.
    fn default() -> Self {
        PoolLimits {
            max_envelopes: usize::MAX,
            max_bytes: usize::MAX,
            max_bytes_per_submitter: usize::MAX,
            max_bytes_per_org: usize::MAX,
        }
    }
}

/// One submitter's pending envelopes (by arrival sequence) and their bytes.
#[derive(Debug, Default)]
struct Submitter {
    seqs: std::collections::BTreeSet<u64>,
    bytes: usize,
}

/// One organization's submitters with envelopes pending, and their bytes.
#[derive(Debug, Default)]
struct Org {
    submitters: std::collections::BTreeSet<[u8; 32]>,
    bytes: usize,
}

/// Submitters' ordered bytes remembered at most (those at or below the floor are forgotten
/// first: they would start from the floor anyway).
const SERVED_REMEMBERED: usize = 10_000;

/// Admitted envelopes waiting to be ordered, in arrival order, without duplicate tx_ids,
/// within [`PoolLimits`].
#[derive(Debug, Default)]
pub struct Pool {
    limits: PoolLimits,
    by_seq: BTreeMap<u64, Pending>,
    by_tx: HashMap<String, u64>,
    by_hash: HashMap<[u8; 32], u64>,
    bytes: usize,
    /// The identities the pending admissions keep, and their bytes.
    kept: KeptIdentities,
    /// Pending envelopes per submitter.
    submitters: BTreeMap<[u8; 32], Submitter>,
    /// Submitters with envelopes pending per organization (MSP id).
    orgs: BTreeMap<String, Org>,
    /// Sequences of the pending config updates (so cutting need not scan the pool).
    config_updates: std::collections::BTreeSet<u64>,
    /// Bytes of each submitter's envelopes ordered (removed as decided), counted from the
    /// floor at the time it last had nothing pending: no credit for idle time.
    served: HashMap<[u8; 32], u64>,
    /// The same per organization (as many as the channel has MSPs; never pruned).
    served_orgs: HashMap<String, u64>,
    next_seq: u64,
}

impl Pool {
    /// An empty pool within `limits`.
    pub fn new(limits: PoolLimits) -> Self {
        Pool {
            limits,
            ..Pool::default()
        }
    }

    /// Whether an admitted envelope of `size` bytes fits within the limits. A config update
    /// is bounded by the pool's totals only, not by its submitter's or organization's share:
    /// it passed the channel's admin policies, and it is how a flooding member is revoked.
    ///
    /// # Errors
    /// A `SERVICE_UNAVAILABLE` [`Rejection`] saying which limit is reached.
    pub fn room(&self, admitted: &Admitted, size: usize) -> Result<(), Rejection> {
        let (submitter, org) = (&admitted.submitter, admitted.org.as_str());
        let full = |what: &str| {
            Err(reject(
                Status::ServiceUnavailable,
                format!("{what}; retry later"),
            ))
        };
        if self.by_seq.len() >= self.limits.max_envelopes {
            return full("too many envelopes pending");
        }
        let kept = self.kept.cost(admitted.identities.as_deref());
        if self.held_bytes().saturating_add(size).saturating_add(kept) > self.limits.max_bytes {
            return full("too many bytes pending");
        }
        if admitted.config_update {
            return Ok(());
        }
        let charge = share_charge(admitted, size);
        let mine = self.submitters.get(submitter).map_or(0, |s| s.bytes);
        if over_share(mine, charge, self.limits.max_bytes_per_submitter) {
            return full("this submitter has too many bytes pending");
        }
        let ours = self.orgs.get(org).map_or(0, |o| o.bytes);
        if over_share(ours, charge, self.limits.max_bytes_per_org) {
            return full("this submitter's organization has too many bytes pending");
        }
        Ok(())
    }

    /// Adds an admitted envelope; false if its tx_id is already pending. Limits are the
    /// caller's to check first ([`Pool::room`]).
    pub fn insert(&mut self, bytes: Vec<u8>, admitted: Admitted, now: Instant) -> bool {
        if self.by_tx.contains_key(&admitted.tx_id) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += bytes.len();
        self.kept.add(admitted.identities.as_deref());
        if admitted.config_update {
            self.config_updates.insert(seq);
        }
        if !self.submitters.contains_key(&admitted.submitter) {
            let floor = self.floor();
            let served = self.served.entry(admitted.submitter).or_default();
            *served = (*served).max(floor);
            if self.served.len() > SERVED_REMEMBERED {
                let active = &self.submitters;
                self.served.retain(|k, v| {
                    *v > floor || active.contains_key(k) || *k == admitted.submitter
                });
            }
        }
        if !self.orgs.contains_key(&admitted.org) {
            let floor = self.org_floor();
            let served = self.served_orgs.entry(admitted.org.clone()).or_default();
            *served = (*served).max(floor);
        }
        let charge = share_charge(&admitted, bytes.len());
        let org = self.orgs.entry(admitted.org.clone()).or_default();
        org.submitters.insert(admitted.submitter);
        org.bytes += charge;
        let sub = self.submitters.entry(admitted.submitter).or_default();
        sub.seqs.insert(seq);
        sub.bytes += charge;
        self.by_tx.insert(admitted.tx_id.clone(), seq);
        self.by_hash.insert(admitted.hash, seq);
        self.by_seq.insert(
            seq,
            Pending {
                bytes,
                admitted,
                arrived: now,
                charge,
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

    /// The admission of the pending envelope with exactly these bytes (by hash), if any:
    /// such an envelope was admitted here, under the current configuration, and need not be
    /// verified again.
    pub fn admitted(&self, hash: &[u8; 32]) -> Option<&Admitted> {
        let seq = self.by_hash.get(hash)?;
        self.by_seq.get(seq).map(|p| &p.admitted)
    }

    /// Removes the envelopes with these tx_ids (they were ordered).
    pub fn remove_txs<'a>(&mut self, tx_ids: impl IntoIterator<Item = &'a str>) {
        for tx in tx_ids {
            if let Some(seq) = self.by_tx.remove(tx)
                && let Some(p) = self.by_seq.remove(&seq)
            {
                self.by_hash.remove(&p.admitted.hash);
                self.bytes -= p.bytes.len();
                self.kept.remove(p.admitted.identities.as_deref());
                self.config_updates.remove(&seq);
                *self.served.entry(p.admitted.submitter).or_default() += p.bytes.len() as u64;
                *self.served_orgs.entry(p.admitted.org.clone()).or_default() +=
                    p.bytes.len() as u64;
                let mut gone = false;
                if let Some(sub) = self.submitters.get_mut(&p.admitted.submitter) {
                    sub.seqs.remove(&seq);
                    sub.bytes -= p.charge;
                    if sub.seqs.is_empty() {
                        self.submitters.remove(&p.admitted.submitter);
                        gone = true;
                    }
                }
                if let Some(org) = self.orgs.get_mut(&p.admitted.org) {
                    org.bytes -= p.charge;
                    if gone {
                        org.submitters.remove(&p.admitted.submitter);
                    }
                    if org.submitters.is_empty() {
                        self.orgs.remove(&p.admitted.org);
                    }
                }
            }
        }
    }

    /// Judges every pending envelope again (after a configuration change): keeps those
    /// `judge(bytes, admission)` admits, with that admission (its identities' validity span
    /// under the new configuration), and drops the others; returns how many were dropped.
    /// [`Rejudgement::judge`] does it without decoding the envelopes.
    pub fn rejudge(
        &mut self,
        mut judge: impl FnMut(&[u8], &Admitted) -> Option<Admitted>,
    ) -> usize {
        let mut drop = Vec::new();
        for p in self.by_seq.values_mut() {
            match judge(&p.bytes, &p.admitted) {
                // The same bytes: the same tx id, hash, submitter and organization; what a
                // new configuration may change is the span its identities are valid in.
                Some(a) if a.tx_id == p.admitted.tx_id => {
                    self.kept.remove(p.admitted.identities.as_deref());
                    self.kept.add(a.identities.as_deref());
                    p.admitted = a;
                }
                _ => drop.push(p.admitted.tx_id.clone()),
            }
        }
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

    /// Total bytes pending (envelopes).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes the pool holds against [`PoolLimits::max_bytes`]: its envelopes', and the
    /// identities their admissions keep ([`Identities`]), each identity counted once
    /// ([`identity_held_bytes`]) however many admissions keep it.
    pub fn held_bytes(&self) -> usize {
        self.bytes.saturating_add(self.kept.bytes)
    }

    /// Number of submitters with envelopes pending.
    pub fn submitters(&self) -> usize {
        self.submitters.len()
    }

    /// The fewest bytes ordered for a submitter with envelopes pending.
    fn floor(&self) -> u64 {
        least_served(self.submitters.keys(), &self.served)
    }

    /// The fewest bytes ordered for an organization with envelopes pending.
    fn org_floor(&self) -> u64 {
        least_served(self.orgs.keys(), &self.served_orgs)
    }

    /// Bytes pending per submitter.
    pub fn bytes_by_submitter(&self) -> HashMap<[u8; 32], usize> {
        self.submitters.iter().map(|(k, s)| (*k, s.bytes)).collect()
    }

    /// Bytes pending per organization (MSP id).
    pub fn bytes_by_org(&self) -> HashMap<String, usize> {
        self.orgs
            .iter()
            .map(|(k, o)| (k.clone(), o.bytes))
            .collect()
    }

    /// The limits.
    pub fn limits(&self) -> PoolLimits {
        self.limits
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
            || !self.config_updates.is_empty()
        {
            return Some(Duration::ZERO);
        }
        let timeout = Duration::from_millis(batch.batch_timeout_ms);
        Some(timeout.saturating_sub(now.saturating_duration_since(oldest)))
    }

    /// The envelopes of the next block; empty if nothing is pending. A config update is cut
    /// alone once everything that arrived before it is ordered. Otherwise the block takes
    /// envelopes that arrived before any pending config update by weighted fair queuing by
    /// bytes on two levels: organizations (their creators' MSPs) in turn, one envelope per
    /// turn; within an organization, its submitters in turn; each submitter's envelopes in
    /// arrival order. Each level is ordered by finish tag: bytes ordered (counted from decided
    /// blocks, the same on every orderer) plus the size of the next envelope, the fewest
    /// first. So neither a submitter of many or large envelopes nor an organization flooding
    /// with many identities delays another's small envelopes behind its own, even one that
    /// has had more bytes ordered before.
    pub fn cut(&self, batch: &BatchConfig) -> Vec<Vec<u8>> {
        self.cut_admitted(batch)
            .into_iter()
            .map(|(bytes, _)| bytes.to_vec())
            .collect()
    }

    /// [`Pool::cut`], each envelope with its admission, without copying the bytes.
    pub fn cut_admitted(&self, batch: &BatchConfig) -> Vec<(&[u8], &Admitted)> {
        let Some(first) = self.by_seq.values().next() else {
            return Vec::new();
        };
        if first.admitted.config_update {
            return vec![(first.bytes.as_slice(), &first.admitted)];
        }
        let before = self.config_updates.first().copied().unwrap_or(u64::MAX);
        // Weighted fair queuing by finish tag (bytes ordered plus the next envelope's size),
        // the smallest first: organizations in turn, and in each its submitters' queues
        // (`None` once closed for this block).
        let next_size = |k: &[u8; 32]| {
            self.submitters
                .get(k)
                .and_then(|s| s.seqs.range(..before).next())
                .and_then(|seq| self.by_seq.get(seq))
                .map_or(0, |p| p.bytes.len() as u64)
        };
        let tag =
            |served: Option<&u64>, next: u64| served.copied().unwrap_or(0).saturating_add(next);
        let mut orgs: Vec<(u64, &String, Vec<&[u8; 32]>)> = self
            .orgs
            .iter()
            .map(|(name, org)| {
                let mut subs: Vec<&[u8; 32]> = org.submitters.iter().collect();
                subs.sort_by_key(|k| (tag(self.served.get(*k), next_size(k)), **k));
                let next = subs.first().map_or(0, |k| next_size(k));
                (tag(self.served_orgs.get(name), next), name, subs)
            })
            .collect();
        orgs.sort_by_key(|(t, name, _)| (*t, *name));
        let mut turns: Vec<OrgTurn<'_>> = orgs
            .into_iter()
            .map(|(_, _, subs)| OrgTurn {
                queues: subs
                    .iter()
                    .map(|k| {
                        self.submitters
                            .get(*k)
                            .map(|s| s.seqs.range(..before).peekable())
                    })
                    .collect(),
                open: subs.len(),
                next: 0,
            })
            .collect();
        let max_count = batch.max_message_count.max(1) as usize;
        let mut out = Vec::new();
        let mut total = 0usize;
        loop {
            let mut took = false;
            for turn in turns.iter_mut().filter(|t| t.open > 0) {
                // One envelope of this organization: from its next submitter in turn whose
                // next envelope fits; one that does not waits for a later block (its order is
                // kept).
                let n = turn.queues.len();
                for step in 0..n {
                    let i = (turn.next + step) % n;
                    let Some(q) = turn.queues[i].as_mut() else {
                        continue;
                    };
                    let Some(p) = q.peek().and_then(|seq| self.by_seq.get(seq)) else {
                        turn.queues[i] = None;
                        turn.open -= 1;
                        continue;
                    };
                    if out.len() >= max_count {
                        return out;
                    }
                    if !fits(batch, out.len(), total, p.bytes.len()) {
                        turn.queues[i] = None;
                        turn.open -= 1;
                        continue;
                    }
                    total += p.bytes.len();
                    out.push((p.bytes.as_slice(), &p.admitted));
                    q.next();
                    turn.next = (i + 1) % n;
                    took = true;
                    break;
                }
            }
            if !took {
                break;
            }
        }
        out
    }

    /// Tx ids pending, oldest first (for tests and metrics).
    pub fn tx_ids(&self) -> impl Iterator<Item = &str> {
        self.by_seq.values().map(|p| p.admitted.tx_id.as_str())
    }
}

/// The fewest bytes `served` to any of `pending` (0 if none).
fn least_served<'a, K: std::hash::Hash + Eq + 'a>(
    pending: impl Iterator<Item = &'a K>,
    served: &HashMap<K, u64>,
) -> u64 {
    pending
        .filter_map(|k| served.get(k))
        .min()
        .copied()
        .unwrap_or(0)
}

/// One organization's place in [`Pool::cut`]: its submitters' queues (`None` once closed for
/// the block), how many are open, and whose turn is next.
struct OrgTurn<'a> {
    queues: Vec<Option<std::iter::Peekable<std::collections::btree_set::Range<'a, u64>>>>,
    open: usize,
    next: usize,
}

/// Whether an envelope of `size` bytes may join a block that holds `count` envelopes of
/// `total` bytes: Fabric's block cutter rule.
fn fits(batch: &BatchConfig, count: usize, total: usize, size: usize) -> bool {
    if count == 0 {
        return true;
    }
    count < batch.max_message_count as usize && total + size <= batch.preferred_max_bytes as usize
}

/// How far behind this orderer's clock a first proposal's ordering time may be. Peers
/// validate a block's transactions at its ordering time (ADR 0030), so a Byzantine proposer
/// can move that time back by at most this much.
pub const MAX_ORDERING_TIME_SKEW: Duration = Duration::from_secs(30);
/// How far ahead of this orderer's clock any proposal's ordering time may be (the honest
/// orderers' clocks must agree within this).
pub const MAX_ORDERING_TIME_AHEAD: Duration = Duration::from_secs(5);

/// Checks a proposed block's ordering time `time_ms` (ms since the Unix epoch) against the
/// last block's and this orderer's clock `now` (ADR 0030): never before the last block's,
/// never more than [`MAX_ORDERING_TIME_AHEAD`] ahead of the clock, and, for a first proposal
/// (`fresh`: no proof-of-lock round), not more than [`MAX_ORDERING_TIME_SKEW`] behind it. A
/// re-proposal of a value from an earlier round is not held to the last bound (CometBFT's
/// proposer-based timestamps do the same): the orderers that locked on it checked its time
/// when it was first proposed, and refusing it later could leave them locked for ever.
///
/// # Errors
/// [`BatchError::OrderingTime`].
pub fn check_ordering_time(
    number: u64,
    time_ms: u64,
    last_time_ms: u64,
    now: SystemTime,
    fresh: bool,
) -> Result<(), BatchError> {
    let clock = medledger_channel::bft::time_ms(now);
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let ahead = time_ms > clock.saturating_add(ms(MAX_ORDERING_TIME_AHEAD));
    let behind = fresh && time_ms < clock.saturating_sub(ms(MAX_ORDERING_TIME_SKEW));
    if time_ms == 0 || time_ms < last_time_ms || ahead || behind {
        return Err(BatchError::OrderingTime {
            number,
            time_ms,
            clock_ms: clock,
        });
    }
    Ok(())
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
    /// The ordering time is not acceptable ([`check_ordering_time`]).
    #[error(
        "block {number}: ordering time {time_ms} ms is before the last block's or too far from this orderer's clock ({clock_ms} ms)"
    )]
    OrderingTime {
        /// Block number.
        number: u64,
        /// Ordering time proposed, ms since the Unix epoch.
        time_ms: u64,
        /// This orderer's clock, ms since the Unix epoch.
        clock_ms: u64,
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

/// What a batch is checked against: the chain so far.
#[derive(Debug)]
pub struct ChainView<'a> {
    /// Next block number.
    pub next_number: u64,
    /// Header hash of the last block.
    pub last_hash: [u8; 32],
    /// Ordering time of the last block, ms since the Unix epoch (0: none).
    pub last_time_ms: u64,
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
    /// Ordering time proposed, ms since the Unix epoch.
    pub time_ms: u64,
    /// A first proposal of this value (no proof-of-lock round): see [`check_ordering_time`].
    pub fresh: bool,
    /// Serialized envelopes, in block order.
    pub envelopes: &'a [Vec<u8>],
}

/// Validates a proposed batch (see the module docs) and returns its tx_ids in block order.
/// `already_admitted(hash)` gives the admission of envelope bytes this
/// process already admitted under the current configuration, and `verdicts` the admissions
/// it remembers (then they are not verified again); envelopes admitted here are added to
/// `verdicts`. Those are judged at the candidate's ordering time (`time_ms`, the same on every
/// orderer); `now`, this orderer's clock, bounds that time ([`check_ordering_time`]).
///
/// # Errors
/// The first [`BatchError`] found.
pub fn validate(
    config: &ChannelConfig,
    chain: &ChainView<'_>,
    candidate: &Candidate<'_>,
    already_admitted: &dyn Fn(&[u8; 32]) -> Option<Admitted>,
    verdicts: &Verdicts,
    now: SystemTime,
) -> Result<Vec<String>, BatchError> {
    let Candidate {
        number,
        previous_hash,
        data_hash,
        time_ms,
        fresh,
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
    check_ordering_time(number, time_ms, chain.last_time_ms, now, fresh)?;
    if envelopes.is_empty() {
        return Err(BatchError::Empty { number });
    }
    if &medledger_channel::block::entries_hash(envelopes) != data_hash {
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
    // Every envelope is judged at the block's ordering time, as the peers judge it (ADR
    // 0030), not at this orderer's clock, and whether or not this orderer admitted it
    // before: a certificate that expires while the batch is being decided, or expired
    // since an orderer admitted the envelope, gets the same verdict on every honest
    // orderer. What an earlier admission spares is only what does not depend on the time:
    // its signatures ([`readmit`], [`Verdicts::judge`]).
    // (`check_ordering_time` above bounds it near this orderer's clock; no overflow panic.)
    let ordered_at = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(time_ms))
        .unwrap_or(now);
    let mut seen = HashSet::with_capacity(envelopes.len());
    let mut tx_ids = Vec::with_capacity(envelopes.len());
    for (index, e) in envelopes.iter().enumerate() {
        let hash = envelope_hash(e);
        let judged = match already_admitted(&hash) {
            // Admitted here under this configuration, and its identities valid at the
            // ordering time: nothing else it was judged on depends on the time.
            Some(a) if a.holds_at(ordered_at) => Ok(a),
            Some(_) => {
                judge(config, e, hash, ordered_at, Signatures::Verified).map_err(|r| r.rejection)
            }
            None => verdicts.judge(config, e, hash, ordered_at),
        };
        let Admitted {
            tx_id,
            config_update,
            ..
        } = judged.map_err(|rejection| BatchError::BadEnvelope {
            number,
            index,
            rejection,
        })?;
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
    use medledger_proto::common::{BlockData, Payload};
    use medledger_proto::medledger::channel as cpb;

    /// An endorsed transaction envelope by `client` (endorsed by itself).
    fn tx_envelope(
        client: &medledger_msp::identity::SigningIdentity,
        channel: &str,
        data: Vec<u8>,
    ) -> Envelope {
        crate::client::transaction_envelope(
            client,
            channel,
            &medledger_channel::testing::rand_nonce(),
            data,
        )
        .unwrap()
    }

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
        let ok = tx_envelope(&client, "ehr", vec![1; 10]);
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
        let big = tx_envelope(&client, "ehr", vec![0; 7000]);
        assert_eq!(status(&big), Status::RequestEntityTooLarge);
        // Not an endorsed transaction: arbitrary payload data, no endorsement (evaluate-only
        // output), an endorsement by an unknown MSP, a proposal hash for other headers.
        let raw = signed_envelope(&client, "ehr", HeaderType::EndorserTransaction, vec![1; 10]);
        assert_eq!(status(&raw), Status::BadRequest);
        let nonce = medledger_channel::testing::rand_nonce();
        let unendorsed =
            crate::client::endorsed_envelope(&client, "ehr", &nonce, vec![1; 10], &[]).unwrap();
        let refusal = admit(&config, &unendorsed.encode_to_vec(), now).unwrap_err();
        assert_eq!(refusal.status, Status::BadRequest);
        assert!(refusal.reason.contains("no endorsement"), "{refusal}");
        let stranger = medledger_channel::testing::TestOrg::new("StrangerMSP", "x.example.com")
            .identity("e", NodeOu::Peer, &[]);
        let by_stranger =
            crate::client::endorsed_envelope(&client, "ehr", &nonce, vec![1; 10], &[&stranger])
                .unwrap();
        assert_eq!(status(&by_stranger), Status::BadRequest);
        let mut rebound = Payload::decode(ok.payload.as_slice()).unwrap();
        let other_tx =
            Payload::decode(tx_envelope(&client, "ehr", vec![2; 10]).payload.as_slice()).unwrap();
        rebound.data = other_tx.data;
        let rebound = Envelope {
            signature: client.sign(&rebound.encode_to_vec()).unwrap(),
            payload: rebound.encode_to_vec(),
        };
        assert_eq!(status(&rebound), Status::BadRequest);
        assert_eq!(
            admit(&config, b"\xff\xff", now).unwrap_err().status,
            Status::BadRequest
        );
    }

    #[test]
    fn verdicts_answer_each_copy_of_an_envelope_once_per_configuration() {
        let (mut ch, config) = channel(batch(10, 4000, 6000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let bytes = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        // Long after every certificate expired, a fresh check refuses the envelope; so does
        // a remembered admission, re-judged at that time without verifying it again.
        let later = SystemTime::now() + Duration::from_secs(200 * 365 * 24 * 3600);
        assert!(admit(&config, &bytes, later).is_err());
        let verdicts = Verdicts::new(8);
        let first = verdicts.check(&config, bytes.clone(), SystemTime::now());
        let admitted = first.result.clone().unwrap();
        // Remembered without the identities it was judged on (`Verdicts::put`).
        assert_eq!(
            verdicts
                .check(&config, bytes.clone(), SystemTime::now())
                .result,
            Ok(Admitted {
                identities: None,
                ..admitted.clone()
            })
        );
        let again = verdicts.check(&config, bytes.clone(), later);
        assert!(again.result.is_err());
        assert_eq!(again.sequence, config.sequence());
        assert_eq!(verdicts.verifications(), 1);
        // Another configuration sequence checks again.
        let mut proto = config.to_proto().clone();
        proto.sequence += 1;
        let next = ChannelConfig::from_proto(proto).unwrap();
        assert!(verdicts.get(&admitted.hash, next.sequence()).is_none());
        assert!(verdicts.check(&next, bytes.clone(), later).result.is_err());
        // A proposed batch takes remembered admissions too, and remembers what it admits.
        let ordered = HashSet::new();
        let chain = empty_chain(&ordered);
        let envelopes = [bytes.clone()];
        let data_hash = medledger_channel::block::data_hash(&BlockData {
            data: envelopes.to_vec(),
        });
        let at = |t: SystemTime| block_one_at(&envelopes, &data_hash, t);
        let none = |_: &[u8; 32]| None;
        assert!(validate(&config, &chain, &at(later), &none, &verdicts, later).is_err());
        let fresh = Verdicts::new(8);
        assert!(validate(&config, &chain, &at(later), &none, &fresh, later).is_err());
        let now = SystemTime::now();
        validate(&config, &chain, &at(now), &none, &fresh, now).unwrap();
        assert!(fresh.get(&admitted.hash, config.sequence()).is_some());
    }

    #[test]
    fn a_proposed_ordering_time_follows_the_last_block_and_this_orderers_clock() {
        let (mut ch, config) = channel(batch(10, 4000, 6000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let envelopes = [tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec()];
        let data_hash = medledger_channel::block::data_hash(&BlockData {
            data: envelopes.to_vec(),
        });
        let now = SystemTime::now();
        let ms = medledger_channel::bft::time_ms(now);
        let skew = MAX_ORDERING_TIME_SKEW.as_millis() as u64;
        let ahead = MAX_ORDERING_TIME_AHEAD.as_millis() as u64;
        let ordered = HashSet::new();
        let propose = |last_time_ms: u64, time_ms: u64, fresh: bool| {
            validate(
                &config,
                &ChainView {
                    next_number: 1,
                    last_hash: [0; 32],
                    last_time_ms,
                    ordered_tx_ids: &ordered,
                },
                &Candidate {
                    number: 1,
                    previous_hash: &[0; 32],
                    data_hash: &data_hash,
                    time_ms,
                    fresh,
                    envelopes: &envelopes,
                },
                &|_| None,
                &Verdicts::new(4),
                now,
            )
        };
        let long_ago = ms - 3_600_000;
        for (last, time, fresh) in [
            (long_ago, ms, true),
            (long_ago, ms - skew, true),
            (long_ago, ms + ahead, true),
            (ms - 5_000, ms - 5_000, true),
            // A value locked in an earlier round, re-proposed long after: still acceptable.
            (long_ago, ms - 10 * skew, false),
        ] {
            assert!(propose(last, time, fresh).is_ok(), "{last} {time} {fresh}");
        }
        for (last, time, fresh) in [
            // Backdated past the skew, before the last block, ahead of the clock, none.
            (long_ago, ms - skew - 1, true),
            (ms - 5_000, ms - 5_001, true),
            (ms - 5_000, ms - 5_001, false),
            (long_ago, ms + ahead + 1, true),
            (long_ago, ms + ahead + 1, false),
            (0, 0, true),
            (0, 0, false),
        ] {
            assert!(
                matches!(
                    propose(last, time, fresh),
                    Err(BatchError::OrderingTime { .. })
                ),
                "{last} {time} {fresh}"
            );
        }
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
                submitter: [7; 32],
                org: "Org1MSP".into(),
                valid: Validity::ALWAYS,
                identities: None,
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
        let (mut ch, config) = channel(batch(3, 40_000, 60_000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let envs: Vec<Vec<u8>> = (0..4)
            .map(|i| tx_envelope(&client, "ehr", vec![i; 10]).encode_to_vec())
            .collect();
        let ordered = HashSet::new();
        let chain = ChainView {
            next_number: 5,
            last_hash: [9; 32],
            last_time_ms: 0,
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
                        time_ms: medledger_channel::bft::time_ms(now),
                        fresh: true,
                        envelopes: e,
                    },
                    &none,
                    &Verdicts::new(1),
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
            last_time_ms: 0,
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

    /// `env` with its endorsements changed by `change`, re-signed by its creator `client` (a
    /// Writer forging endorsements of its own transaction).
    fn with_endorsements(
        client: &medledger_msp::identity::SigningIdentity,
        env: &Envelope,
        change: impl FnOnce(&mut Vec<medledger_proto::protos::Endorsement>),
    ) -> Envelope {
        let mut payload = Payload::decode(env.payload.as_slice()).unwrap();
        let mut tx = Transaction::decode(payload.data.as_slice()).unwrap();
        let mut cap = ChaincodeActionPayload::decode(tx.actions[0].payload.as_slice()).unwrap();
        change(&mut cap.action.as_mut().unwrap().endorsements);
        tx.actions[0].payload = cap.encode_to_vec();
        payload.data = tx.encode_to_vec();
        let payload = payload.encode_to_vec();
        Envelope {
            signature: client.sign(&payload).unwrap(),
            payload,
        }
    }

    #[test]
    fn large_envelopes_are_admitted_only_with_verified_endorsements() {
        let (mut ch, config) = channel(batch(10, 1 << 20, 1 << 20));
        let patient = ch.orgs[0].identity("patient", NodeOu::Client, &[]);
        let peer = ch.orgs[0].identity("peer0", NodeOu::Peer, &[]);
        let now = SystemTime::now();
        let endorsed = |data: Vec<u8>| {
            let nonce = medledger_channel::testing::rand_nonce();
            crate::client::endorsed_envelope(&patient, "ehr", &nonce, data, &[&peer]).unwrap()
        };
        let big = endorsed(vec![0xAB; 2 * VERIFY_ENDORSEMENTS_ABOVE]);
        assert!(big.encoded_len() > VERIFY_ENDORSEMENTS_ABOVE);
        // Properly endorsed: admitted.
        admit(&config, &big.encode_to_vec(), now).unwrap();
        // The peer's certificate copied, with random signature bytes, a signature by the
        // patient, or the patient's own endorsement forged after the peer's: refused.
        let forgeries = [
            with_endorsements(&patient, &big, |e| {
                e[0].signature = medledger_channel::testing::rand_nonce().repeat(3);
            }),
            with_endorsements(&patient, &big, |e| {
                e[0].signature = patient.sign(b"anything").unwrap();
            }),
            with_endorsements(&patient, &big, |e| {
                e.push(medledger_proto::protos::Endorsement {
                    endorser: patient.serialized().to_vec(),
                    signature: e[0].signature.clone(),
                });
            }),
        ];
        for forged in &forgeries {
            let refusal = admit(&config, &forged.encode_to_vec(), now).unwrap_err();
            assert_eq!(refusal.status, Status::BadRequest, "{refusal}");
            assert!(refusal.reason.contains("endorsement"), "{refusal}");
            assert!(!refusal.reason.contains("ABAB"), "{refusal}");
        }
        // Valid endorsements, but more than an orderer verifies for one envelope.
        let many = with_endorsements(&patient, &big, |e| {
            let msg = [prp_of(&big).as_slice(), patient.serialized()].concat();
            let own = medledger_proto::protos::Endorsement {
                endorser: patient.serialized().to_vec(),
                signature: patient.sign(&msg).unwrap(),
            };
            e.extend(std::iter::repeat_n(own, MAX_VERIFIED_ENDORSEMENTS));
        });
        let refusal = admit(&config, &many.encode_to_vec(), now).unwrap_err();
        assert_eq!(refusal.status, Status::BadRequest);
        assert!(refusal.reason.contains("endorsements"), "{refusal}");
        // The patient's own valid endorsement: it is no peer (review finding H1: any Writer
        // could endorse its own multi-MiB junk).
        let own = with_endorsements(&patient, &big, |e| {
            let msg = [prp_of(&big).as_slice(), patient.serialized()].concat();
            e[0] = medledger_proto::protos::Endorsement {
                endorser: patient.serialized().to_vec(),
                signature: patient.sign(&msg).unwrap(),
            };
        });
        let refusal = admit(&config, &own.encode_to_vec(), now).unwrap_err();
        assert!(refusal.reason.contains("not by a peer"), "{refusal}");
        // The same peer twice: refused; a second peer's valid endorsement: admitted.
        let twice = with_endorsements(&patient, &big, |e| e.push(e[0].clone()));
        let refusal = admit(&config, &twice.encode_to_vec(), now).unwrap_err();
        assert!(refusal.reason.contains("already counted"), "{refusal}");
        let peer2 = ch.orgs[0].identity("peer1", NodeOu::Peer, &[]);
        let enough = with_endorsements(&patient, &big, |e| {
            let msg = [prp_of(&big).as_slice(), peer2.serialized()].concat();
            e.push(medledger_proto::protos::Endorsement {
                endorser: peer2.serialized().to_vec(),
                signature: peer2.sign(&msg).unwrap(),
            });
        });
        admit(&config, &enough.encode_to_vec(), now).unwrap();
        // The genuinely endorsed envelope padded by its creator with an unknown field (tag
        // 15) in the Transaction, a layer only the creator signs (review finding H2): the
        // endorsements still verify, but the padding is refused.
        let padded = {
            let mut payload = Payload::decode(big.payload.as_slice()).unwrap();
            let mut data = payload.data.clone();
            prost::encoding::bytes::encode(
                15,
                &vec![0u8; 4 * VERIFY_ENDORSEMENTS_ABOVE],
                &mut data,
            );
            payload.data = data;
            let payload = payload.encode_to_vec();
            Envelope {
                signature: patient.sign(&payload).unwrap(),
                payload,
            }
        };
        let refusal = admit(&config, &padded.encode_to_vec(), now).unwrap_err();
        assert_eq!(refusal.status, Status::BadRequest);
        assert!(
            refusal.reason.contains("no endorsement covers"),
            "{refusal}"
        );
        // An endorser that is no valid identity of a channel MSP (a stranger's certificate
        // under Org1MSP's name) is refused too.
        let stranger = medledger_channel::testing::TestOrg::new("Org1MSP", "x.example.com")
            .identity("peer0", NodeOu::Peer, &[]);
        let by_stranger = with_endorsements(&patient, &big, |e| {
            let msg = [prp_of(&big).as_slice(), stranger.serialized()].concat();
            e.push(medledger_proto::protos::Endorsement {
                endorser: stranger.serialized().to_vec(),
                signature: stranger.sign(&msg).unwrap(),
            });
        });
        assert_eq!(
            admit(&config, &by_stranger.encode_to_vec(), now)
                .unwrap_err()
                .status,
            Status::BadRequest
        );

        // Fabric parity below the threshold: a small envelope with a forged endorsement is
        // ordered (no extra ECDSA verification per normal transaction); every peer drops the
        // endorsement at validation and marks the transaction ENDORSEMENT_POLICY_FAILURE.
        let small = endorsed(vec![0xAB; 2 * 1024]);
        assert!(small.encoded_len() <= VERIFY_ENDORSEMENTS_ABOVE);
        let small_forged = with_endorsements(&patient, &small, |e| {
            e[0].signature = patient.sign(b"anything").unwrap();
        });
        admit(&config, &small_forged.encode_to_vec(), now).unwrap();

        // A Byzantine leader proposing the big forgery in a block: the batch is invalid.
        let propose = |e: &[Vec<u8>]| propose_first(&config, e, now);
        let block = [small_forged.encode_to_vec(), forgeries[1].encode_to_vec()];
        assert!(matches!(
            propose(&block),
            Err(BatchError::BadEnvelope {
                index: 1,
                rejection: Rejection {
                    status: Status::BadRequest,
                    ..
                },
                ..
            })
        ));
        assert_eq!(
            propose(&[small_forged.encode_to_vec(), big.encode_to_vec()])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn blocks_cut_fairly_across_organizations_validate() {
        let mut ch = TestChannel::new("ehr", 2, 4);
        let org1: Vec<_> = (0..5)
            .map(|i| ch.orgs[0].identity(&format!("c{i}"), NodeOu::Client, &[]))
            .collect();
        let org2 = ch.orgs[1].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let mut pool = Pool::new(PoolLimits::default());
        let mut add = |who: &medledger_msp::identity::SigningIdentity| {
            let bytes = tx_envelope(who, "ehr", vec![1; 10]).encode_to_vec();
            let admitted = admit(&ch.config, &bytes, now).unwrap();
            pool.room(&admitted, bytes.len()).unwrap();
            assert!(pool.insert(bytes.clone(), admitted, Instant::now()));
            bytes
        };
        for _ in 0..4 {
            for c in &org1 {
                add(c);
            }
        }
        let theirs = add(&org2);
        assert_eq!(pool.bytes_by_org().len(), 2);
        let b = BatchConfig {
            max_message_count: 4,
            ..*ch.config.batch()
        };
        let block = pool.cut(&b);
        assert_eq!(block.len(), 4);
        assert!(
            block.contains(&theirs),
            "Org2's envelope is in the next block"
        );
        assert_eq!(propose_first(&ch.config, &block, now).unwrap().len(), 4);
    }

    /// A first proposal of `envelopes` (whose data hash is `data_hash`) as block 1 of an
    /// empty chain, ordered at `t`.
    fn block_one_at<'a>(
        envelopes: &'a [Vec<u8>],
        data_hash: &'a [u8; 32],
        t: SystemTime,
    ) -> Candidate<'a> {
        Candidate {
            number: 1,
            previous_hash: &[0; 32],
            data_hash,
            time_ms: medledger_channel::bft::time_ms(t),
            fresh: true,
            envelopes,
        }
    }

    /// A chain of only the genesis block (hash zero), with `ordered` tx ids.
    fn empty_chain(ordered: &HashSet<String>) -> ChainView<'_> {
        ChainView {
            next_number: 1,
            last_hash: [0; 32],
            last_time_ms: 0,
            ordered_tx_ids: ordered,
        }
    }

    /// Validates `envelopes` proposed at `now` as block 1 of an empty chain, by an orderer that
    /// admitted none of them before.
    fn propose_first(
        config: &ChannelConfig,
        envelopes: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<Vec<String>, BatchError> {
        let ordered = HashSet::new();
        let chain = empty_chain(&ordered);
        let data = medledger_channel::block::data_hash(&BlockData {
            data: envelopes.to_vec(),
        });
        validate(
            config,
            &chain,
            &Candidate {
                number: 1,
                previous_hash: &[0; 32],
                data_hash: &data,
                time_ms: medledger_channel::bft::time_ms(now),
                fresh: true,
                envelopes,
            },
            &|_| None,
            &Verdicts::new(8),
            now,
        )
    }

    #[test]
    fn proposed_envelopes_are_judged_at_the_blocks_ordering_time_not_the_local_clock() {
        // Review finding M2: judged at each orderer's own clock, a certificate that expires
        // while a batch is proposed splits the honest orderers' votes (those whose clocks
        // are past the expiry refuse what the others accept). Judged at the block's ordering
        // time, the verdict is the same on every orderer. Here an orderer whose clock is a
        // century ahead (every test certificate expired) validates a re-proposal ordered now.
        let (mut ch, config) = channel(batch(10, 1 << 20, 1 << 20));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let env = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        let ordered_at = SystemTime::now();
        let later = ordered_at + Duration::from_secs(100 * 365 * 24 * 3600);
        let ordered = HashSet::new();
        let chain = empty_chain(&ordered);
        let data = medledger_channel::block::data_hash(&BlockData {
            data: vec![env.clone()],
        });
        let envelopes = [env];
        let validate_at = |fresh| {
            validate(
                &config,
                &chain,
                &Candidate {
                    number: 1,
                    previous_hash: &[0; 32],
                    data_hash: &data,
                    time_ms: medledger_channel::bft::time_ms(ordered_at),
                    fresh,
                    envelopes: &envelopes,
                },
                &|_| None,
                &Verdicts::new(8),
                later,
            )
        };
        assert_eq!(validate_at(false).unwrap().len(), 1);
    }

    #[test]
    fn an_admission_holds_exactly_while_every_identity_it_was_judged_on_is_valid() {
        // Review L2 of issue 14: every orderer re-judged each pooled envelope of a proposal
        // at its ordering time by decoding it (a 10 MiB envelope copied twice and hashed on
        // the consensus thread). An admission now carries the span in which its identities
        // are valid, and holds without a second look within it: it must be exactly the span
        // in which judging again admits.
        let (mut ch, config) = channel(batch(10, 1 << 20, 1 << 20));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let env = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        let now = SystemTime::now();
        let a = admit(&config, &env, now).unwrap();
        let creator = config.msps().validate(client.serialized(), now).unwrap();
        let (not_before, not_after) = creator.validity();
        assert!(a.valid.not_before >= not_before && a.valid.not_after <= not_after);
        let at = |s: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64);
        for (t, holds) in [
            (now, true),
            (at(a.valid.not_after), true),
            (at(a.valid.not_after + 1), false),
            (at(a.valid.not_before), true),
            (at(a.valid.not_before - 1), false),
        ] {
            assert_eq!(a.holds_at(t), holds, "at {t:?}");
            assert_eq!(
                readmit(&config, &env, t).is_ok(),
                holds,
                "judged again at {t:?}"
            );
        }
    }

    #[test]
    fn an_envelope_whose_payload_field_is_given_twice_is_refused() {
        // Security review of the header-only reading (High): prost keeps the last copy of a
        // bytes field but merges copies of a message field, so with a junk payload field in
        // front the full decoding (and the signature) saw the envelope while the header-only
        // reading of block entries saw nothing: ordered, never pruned from the pools, ordered
        // again in every block; a config update so wrapped was never applied by orderers.
        let (mut ch, config) = channel(batch(10, 1 << 20, 1 << 20));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let env = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        let mut wrapped = vec![0x0a, 0x02, 0x08, 0x01];
        wrapped.extend_from_slice(&env);
        assert!(envelope::parse(&Envelope::decode(wrapped.as_slice()).unwrap()).is_ok());
        let refused = admit(&config, &wrapped, SystemTime::now()).unwrap_err();
        assert_eq!(refused.status, Status::BadRequest, "{refused:?}");
        assert!(admit(&config, &env, SystemTime::now()).is_ok());
    }

    #[test]
    fn a_pooled_admission_is_re_judged_under_a_new_configuration_with_its_new_span() {
        // Security review (Medium): after a configuration change the pool kept each entry's
        // old admission, whose validity span a new configuration (a re-issued intermediate
        // that expires earlier, say) can narrow; the fast path then trusted the old span.
        let (mut ch, config) = channel(batch(10, 1 << 20, 1 << 20));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let env = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        let now = SystemTime::now();
        let a = admit(&config, &env, now).unwrap();
        let mut pool = Pool::default();
        assert!(pool.insert(env.clone(), a.clone(), Instant::now()));
        let narrowed = Admitted {
            valid: Validity {
                not_before: a.valid.not_before,
                not_after: medledger_msp::msp::unix_seconds(now) + 60,
            },
            ..a.clone()
        };
        assert_eq!(pool.rejudge(|_, _| Some(narrowed.clone())), 0);
        assert_eq!(pool.admitted(&a.hash), Some(&narrowed));
        assert_eq!(pool.rejudge(|_, _| None), 1);
        assert!(pool.is_empty());
    }

    #[test]
    fn orderers_that_admitted_an_envelope_and_orderers_that_did_not_agree_after_its_creators_expiry()
     {
        // Open point 1 of issue 14: an orderer that admitted an envelope took its cached
        // verdict for a proposal ordered after the creator's certificate expired, while one
        // that never saw it judged it at the ordering time and refused: the honest orderers'
        // votes split. Every orderer must judge at the ordering time.
        let (mut ch, config) = channel(batch(10, 1 << 20, 1 << 20));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let env = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        let now = SystemTime::now();
        // Past every test certificate's expiry.
        let expired = now + Duration::from_secs(200 * 365 * 24 * 3600);
        // Orderer A admitted it before the expiry (its pool and its verdicts hold it);
        // orderer B never saw it.
        let a_verdicts = Verdicts::new(8);
        let admitted = a_verdicts.check(&config, env.clone(), now).result.unwrap();
        let in_a_pool = |h: &[u8; 32]| (*h == admitted.hash).then(|| admitted.clone());
        let not_pooled = |_: &[u8; 32]| None;
        let b_verdicts = Verdicts::new(8);
        let envelopes = [env];
        let data_hash = medledger_channel::block::data_hash(&BlockData {
            data: envelopes.to_vec(),
        });
        let ordered = HashSet::new();
        let chain = empty_chain(&ordered);
        let at = |t: SystemTime| block_one_at(&envelopes, &data_hash, t);
        type Known<'a> = &'a dyn Fn(&[u8; 32]) -> Option<Admitted>;
        let orderers: [(&str, Known<'_>, &Verdicts); 3] = [
            ("A, pooled", &in_a_pool, &a_verdicts),
            ("A, verdict only", &not_pooled, &a_verdicts),
            ("B", &not_pooled, &b_verdicts),
        ];
        for (who, known, verdicts) in orderers {
            let after = validate(&config, &chain, &at(expired), known, verdicts, expired);
            assert!(
                matches!(after, Err(BatchError::BadEnvelope { index: 0, .. })),
                "orderer {who} on a batch ordered after the expiry: {after:?}"
            );
            let before = validate(&config, &chain, &at(now), known, verdicts, now);
            assert_eq!(before.unwrap().len(), 1, "orderer {who} before the expiry");
        }
    }

    #[test]
    fn each_envelope_is_verified_once_per_configuration_whatever_the_verdict() {
        // Review finding M1: refusals were not remembered, so a flood of one bad envelope was
        // verified again each time.
        let (mut ch, config) = channel(batch(10, 4000, 6000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let later = now + Duration::from_secs(200 * 365 * 24 * 3600);
        let verdicts = Verdicts::new(8);
        let mut forged = tx_envelope(&client, "ehr", vec![1; 10]);
        let last = forged.signature.len() - 1;
        forged.signature[last] ^= 1;
        let forged = forged.encode_to_vec();
        let first = verdicts
            .check(&config, forged.clone(), now)
            .result
            .unwrap_err();
        assert_eq!(first.status, Status::Forbidden);
        let second = verdicts.check(&config, forged.clone(), now).result;
        assert_eq!(second, Err(first.clone()));
        assert_eq!(
            verdicts.verifications(),
            1,
            "the same bad envelope twice: verified once"
        );
        // An admission is verified once too, and re-judged at each time without verifying.
        let ok = tx_envelope(&client, "ehr", vec![2; 10]).encode_to_vec();
        assert!(verdicts.check(&config, ok.clone(), now).result.is_ok());
        assert!(verdicts.check(&config, ok.clone(), later).result.is_err());
        assert!(verdicts.check(&config, ok.clone(), now).result.is_ok());
        assert_eq!(verdicts.verifications(), 2);
        // A refusal that depends on the time (an expired creator) is not remembered: the
        // same bytes are admissible at another time.
        let fresh = tx_envelope(&client, "ehr", vec![3; 10]).encode_to_vec();
        assert!(
            verdicts
                .check(&config, fresh.clone(), later)
                .result
                .is_err()
        );
        assert!(verdicts.check(&config, fresh.clone(), now).result.is_ok());
        assert_eq!(verdicts.verifications(), 4);
        // Nothing outlives a configuration change.
        let mut proto = config.to_proto().clone();
        proto.sequence += 1;
        let next = ChannelConfig::from_proto(proto).unwrap();
        assert_eq!(verdicts.check(&next, forged, now).result, Err(first));
        assert!(verdicts.check(&next, ok, now).result.is_ok());
        assert_eq!(verdicts.verifications(), 6);
    }

    #[test]
    fn a_refusal_for_a_certificate_expired_before_the_last_block_is_verified_once() {
        // Issue 14's leftovers: a refusal for an expired creator was never remembered, so a
        // client re-sending an envelope whose certificate expired made every orderer decode
        // it and validate the certificate chain (an ECDSA verification) each time. It is
        // remembered once the certificate expired before the last block's ordering time
        // (no block can be ordered earlier), and only then.
        let (mut ch, config) = channel(batch(10, 4000, 6000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let expired = now + Duration::from_secs(200 * 365 * 24 * 3600);
        let bytes = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        let verdicts = Verdicts::new(8);
        let refused = |at: SystemTime| {
            let r = verdicts
                .check(&config, bytes.clone(), at)
                .result
                .unwrap_err();
            assert_eq!(r.status, Status::Forbidden, "{r}");
            assert!(r.reason.contains("expired"), "{r}");
        };
        // The last block was ordered before the expiry: a block ordered before it too may
        // still hold the envelope, so nothing is remembered.
        verdicts.set_last_block_time(medledger_channel::bft::time_ms(now));
        refused(expired);
        refused(expired);
        assert_eq!(verdicts.verifications(), 2);
        // An earlier time than the last block's does not move it back.
        verdicts.set_last_block_time(0);
        refused(expired);
        assert_eq!(verdicts.verifications(), 3);
        assert!(verdicts.check(&config, bytes.clone(), now).result.is_ok());
        // Once a block is ordered after the expiry, the refusal is remembered.
        let fresh = Verdicts::new(8);
        fresh.set_last_block_time(medledger_channel::bft::time_ms(expired));
        for _ in 0..3 {
            let r = fresh.check(&config, bytes.clone(), expired).result;
            assert_eq!(r.map_err(|r| r.status), Err(Status::Forbidden));
        }
        assert_eq!(fresh.verifications(), 1, "the same expired envelope thrice");
        // A certificate not valid yet is never remembered.
        let early = now - Duration::from_secs(3600);
        let fresh = Verdicts::new(8);
        fresh.set_last_block_time(medledger_channel::bft::time_ms(expired));
        assert!(fresh.check(&config, bytes.clone(), early).result.is_err());
        assert!(fresh.check(&config, bytes, early).result.is_err());
        assert_eq!(fresh.verifications(), 2);
    }

    #[test]
    fn refusals_with_huge_channel_ids_hold_little_memory() {
        // Review finding H1: a refusal was remembered with its whole reason, which echoed
        // the envelope's channel id debug-escaped (`\u{1}` is 6 bytes each): a few hundred
        // big envelopes pinned gigabytes. Each remembered verdict is now compact.
        let (mut ch, config) = channel(batch(10, 4 << 20, 4 << 20));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let verdicts = Verdicts::new(16);
        let now = SystemTime::now();
        for i in 0..16u8 {
            let channel_id = format!("{i}{}", "\u{1}".repeat(256 * 1024));
            let env = signed_envelope(
                &client,
                &channel_id,
                HeaderType::EndorserTransaction,
                vec![],
            );
            let refusal = verdicts
                .check(&config, env.encode_to_vec(), now)
                .result
                .unwrap_err();
            assert_eq!(refusal.status, Status::BadRequest);
            assert!(
                refusal.reason.len() <= MAX_REASON_BYTES,
                "{}",
                refusal.reason.len()
            );
        }
        assert_eq!(verdicts.verifications(), 16);
        assert!(
            verdicts.held_bytes() <= 16 * MAX_REMEMBERED_VERDICT_BYTES,
            "16 refusals hold {} bytes",
            verdicts.held_bytes()
        );
    }

    #[test]
    fn a_creator_from_an_unknown_ca_is_verified_once() {
        // Review finding M1: any invalid creator counted as time-dependent, so an envelope
        // by a self-made "Org1MSP" certificate was never remembered and cost two chain
        // validations each time it was sent.
        let (ch, config) = channel(batch(10, 4000, 6000));
        let mut impostor =
            medledger_channel::testing::TestOrg::new(&ch.orgs[0].msp_id, "org1.example.com");
        let creator = impostor.identity("c", NodeOu::Client, &[]);
        let bytes = tx_envelope(&creator, "ehr", vec![1; 10]).encode_to_vec();
        let verdicts = Verdicts::new(8);
        let now = SystemTime::now();
        let first = verdicts
            .check(&config, bytes.clone(), now)
            .result
            .unwrap_err();
        assert_eq!(first.status, Status::Forbidden);
        let second = verdicts.check(&config, bytes.clone(), now).result;
        assert_eq!(second, Err(first));
        assert_eq!(
            verdicts.verifications(),
            1,
            "the same impostor twice: verified once"
        );
        // A creator from no channel MSP at all is remembered too.
        let stranger = medledger_channel::testing::TestOrg::new("StrangerMSP", "x.example.com")
            .identity("s", NodeOu::Client, &[]);
        let bytes = tx_envelope(&stranger, "ehr", vec![1; 10]).encode_to_vec();
        assert!(verdicts.check(&config, bytes.clone(), now).result.is_err());
        assert!(verdicts.check(&config, bytes, now).result.is_err());
        assert_eq!(verdicts.verifications(), 2);
    }

    #[test]
    fn a_configuration_change_re_judges_the_pool_without_verifying_signatures_again() {
        let (mut ch, config) = channel(batch(10, 8000, 8000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let mut pool = Pool::new(PoolLimits::default());
        let small = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        let large = tx_envelope(&client, "ehr", vec![2; 5000]).encode_to_vec();
        for e in [&small, &large] {
            let a = admit(&config, e, now).unwrap();
            assert!(pool.insert(e.clone(), a, Instant::now()));
        }
        // A configuration whose absolute_max_bytes the large one passes.
        let mut proto = config.to_proto().clone();
        proto.sequence += 1;
        proto.batch = Some(batch(10, 4000, 4000));
        let next = ChannelConfig::from_proto(proto).unwrap();
        assert_eq!(pool.rejudge(|e, _| readmit(&next, e, now).ok()), 1);
        assert_eq!(pool.len(), 1);
        // Every check but the signatures runs (the creator at the time judged)...
        let later = now + Duration::from_secs(200 * 365 * 24 * 3600);
        assert!(readmit(&next, &small, later).is_err());
        // ...and no signature is verified again (only bytes admitted before are readmitted).
        let mut tampered = Envelope::decode(small.as_slice()).unwrap();
        let last = tampered.signature.len() - 1;
        tampered.signature[last] ^= 1;
        let tampered = tampered.encode_to_vec();
        assert!(admit(&next, &tampered, now).is_err());
        assert!(readmit(&next, &tampered, now).is_ok());
    }

    #[test]
    fn re_judging_a_pooled_admission_from_its_identities_agrees_with_decoding_the_envelope() {
        // Issue 14's leftovers: after a config block every orderer decoded every pooled
        // envelope on the consensus thread (up to the pool's 256 MiB). A pooled admission now
        // keeps the identities it was judged on and is judged again from them alone: under
        // every kind of configuration change it must reach the verdict of judging the bytes
        // again (`readmit`), or an envelope the new configuration refuses gets ordered.
        let mut ch = TestChannel::new("ehr", 3, 4);
        let config = ChannelConfig::from_proto(ch.config.to_proto().clone()).unwrap();
        let client = ch.orgs[0].identity("client1", NodeOu::Client, &[]);
        let first = ch.orgs[1].identity("peer2", NodeOu::Peer, &[]);
        let second = ch.orgs[2].identity("peer3", NodeOu::Peer, &[]);
        let now = SystemTime::now();
        let envelope = |size: usize| {
            crate::client::endorsed_envelope(
                &client,
                "ehr",
                &medledger_channel::testing::rand_nonce(),
                vec![7; size],
                &[&first, &second],
            )
            .unwrap()
            .encode_to_vec()
        };
        let small = envelope(10);
        let large = envelope(VERIFY_ENDORSEMENTS_ABOVE + 1000);
        let admitted = [
            admit(&config, &small, now).unwrap(),
            admit(&config, &large, now).unwrap(),
        ];
        let changed = |f: &dyn Fn(&mut cpb::ChannelConfig)| {
            let mut p = config.to_proto().clone();
            p.sequence += 1;
            f(&mut p);
            p
        };
        let large_len = large.len() as u32;
        let second_revoked = ch.config_revoking(2, "peer3");
        // Each change of configuration, and whether the small and the large envelope pass.
        let cases: Vec<(&str, cpb::ChannelConfig, [bool; 2])> = vec![
            ("nothing but the sequence", changed(&|_| {}), [true, true]),
            (
                "the creator revoked",
                ch.config_revoking(0, "client1"),
                [false, false],
            ),
            (
                "the first endorser revoked",
                ch.config_revoking(1, "peer2"),
                [false, false],
            ),
            // Below the threshold only the first endorser is validated (Fabric's orderer).
            (
                "the second endorser revoked",
                second_revoked.clone(),
                [true, false],
            ),
            (
                "the second endorser's organization removed",
                changed(&|p| p.organizations.retain(|o| o.msp_id != "Org3MSP")),
                [false, false],
            ),
            (
                "the creator's organization no Writer",
                changed(&|p| {
                    p.policies.insert(
                        "Writers".into(),
                        "OR('Org2MSP.member', 'Org3MSP.member')".into(),
                    );
                }),
                [false, false],
            ),
            (
                "absolute_max_bytes below the large envelope",
                changed(&|p| p.batch = Some(batch(10, large_len - 1, large_len - 1))),
                [true, false],
            ),
            (
                "NodeOUs off at the second endorser's organization (no peer role)",
                changed(&|p| {
                    for o in &mut p.organizations {
                        if o.msp_id == "Org3MSP" {
                            o.node_ous = false;
                        }
                    }
                }),
                [true, false],
            ),
        ];
        for (what, proto, expected) in cases {
            let next = ChannelConfig::from_proto(proto).unwrap();
            let mut rejudgement = Rejudgement::new(&next, now);
            for ((bytes, a), passes) in [&small, &large].into_iter().zip(&admitted).zip(expected) {
                let cheap = rejudgement.judge(bytes, a);
                let full = readmit(&next, bytes, now);
                assert_eq!(
                    cheap.is_ok(),
                    passes,
                    "{what}, {} bytes: {cheap:?}",
                    bytes.len()
                );
                assert_eq!(
                    full.is_ok(),
                    passes,
                    "{what}, {} bytes, judged again in full: {full:?}",
                    bytes.len()
                );
                if let (Ok(cheap), Ok(full)) = (cheap, full) {
                    assert_eq!(cheap, full, "{what}, {} bytes", bytes.len());
                }
            }
        }
        // The envelopes are not decoded: any bytes of the same length get the same verdict.
        let next = ChannelConfig::from_proto(changed(&|_| {})).unwrap();
        let mut rejudgement = Rejudgement::new(&next, now);
        assert!(
            rejudgement
                .judge(&vec![0; small.len()], &admitted[0])
                .is_ok()
        );
        // A pool re-judged so keeps what passes, with the new admission, and drops the rest.
        let mut pool = Pool::default();
        for (bytes, a) in [&small, &large].into_iter().zip(&admitted) {
            assert!(pool.insert(bytes.clone(), a.clone(), Instant::now()));
        }
        let next = ChannelConfig::from_proto(second_revoked).unwrap();
        let mut rejudgement = Rejudgement::new(&next, now);
        assert_eq!(pool.rejudge(|e, a| rejudgement.judge(e, a).ok()), 1);
        assert_eq!(
            pool.tx_ids().collect::<Vec<_>>(),
            [admitted[0].tx_id.as_str()]
        );
    }

    #[test]
    fn a_config_update_is_re_judged_in_full() {
        // A config update keeps no identities: its admission depends on the configuration it
        // applies to, so a configuration change judges its bytes again.
        let mut ch = TestChannel::new("ehr", 2, 4);
        let admins: Vec<_> = (0..2)
            .map(|i| ch.orgs[i].identity(&format!("admin{i}"), NodeOu::Admin, &[]))
            .collect();
        let now = SystemTime::now();
        let mut next = ch.config.to_proto().clone();
        next.sequence += 1;
        next.batch = Some(batch(10, 1 << 20, 1 << 20));
        let bytes = medledger_channel::update::update_bytes(&next);
        let sigs = admins
            .iter()
            .map(|s| medledger_channel::update::sign_update(&bytes, s).unwrap())
            .collect();
        let update =
            medledger_channel::update::update_envelope("ehr", bytes, sigs, &admins[0], now)
                .unwrap()
                .encode_to_vec();
        let a = admit(&ch.config, &update, now).unwrap();
        assert!(a.config_update && a.identities.is_none());
        let applied = ChannelConfig::from_proto(next).unwrap();
        // Under the configuration it produced, its sequence is stale.
        assert!(Rejudgement::new(&applied, now).judge(&update, &a).is_err());
        assert!(Rejudgement::new(&ch.config, now).judge(&update, &a).is_ok());
    }

    /// The proposal response payload an envelope's endorsements sign.
    fn prp_of(env: &Envelope) -> Vec<u8> {
        let payload = Payload::decode(env.payload.as_slice()).unwrap();
        let tx = Transaction::decode(payload.data.as_slice()).unwrap();
        let cap = ChaincodeActionPayload::decode(tx.actions[0].payload.as_slice()).unwrap();
        cap.action.unwrap().proposal_response_payload
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
        let tx = |i: u8| tx_envelope(&client, "ehr", vec![i; 10]).encode_to_vec();
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
        let propose = |e: &[Vec<u8>]| propose_first(&ch.config, e, now);
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
            pool.rejudge(|e, _| admit(&applied, e, now).ok()),
            1,
            "the stale update is dropped"
        );
        assert_eq!(pool.len(), 1);
    }

    /// `env` with its first endorser's `id_bytes` followed by `spaces` spaces: another
    /// encoding of the same certificate (re-signed by its creator `client`).
    fn first_endorser_padded(
        client: &medledger_msp::identity::SigningIdentity,
        env: &Envelope,
        spaces: usize,
    ) -> Vec<u8> {
        with_endorsements(client, env, |es| {
            let mut sid =
                medledger_proto::msp::SerializedIdentity::decode(es[0].endorser.as_slice())
                    .unwrap();
            sid.id_bytes.extend(std::iter::repeat_n(b' ', spaces));
            es[0].endorser = sid.encode_to_vec();
        })
        .encode_to_vec()
    }

    #[test]
    fn every_encoding_of_one_endorser_is_one_kept_identity() {
        // Security review sr1, M1: the MSP cache was keyed by the serialized identity's
        // bytes and `id_bytes` may carry any whitespace, so each encoding of a certificate
        // copied from the ledger built a new VerifiedIdentity (~2.5 KB) that the admission
        // kept: small envelopes with fresh encodings pinned memory no bound counted. Every
        // encoding is now the same shared identity.
        let (mut ch, config) = channel(batch(10, 8000, 8000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let peer = ch.orgs[0].identity("peer0", NodeOu::Peer, &[]);
        let env = crate::client::endorsed_envelope(
            &client,
            "ehr",
            &medledger_channel::testing::rand_nonce(),
            vec![1; 10],
            &[&peer],
        )
        .unwrap();
        let verdicts = Verdicts::new(64);
        let now = SystemTime::now();
        let kept: Vec<Arc<Identities>> = (0..32)
            .map(|spaces| {
                let bytes = first_endorser_padded(&client, &env, spaces);
                let a = verdicts.check(&config, bytes, now).result.unwrap();
                a.identities.unwrap()
            })
            .collect();
        assert_eq!(verdicts.verifications(), 32, "32 distinct envelopes");
        for (spaces, k) in kept.iter().enumerate() {
            assert!(
                Arc::ptr_eq(&k.endorsers[0], &kept[0].endorsers[0]),
                "encoding {spaces} of the endorser is a new identity"
            );
            assert!(Arc::ptr_eq(&k.creator, &kept[0].creator));
        }
    }

    #[test]
    fn remembered_admissions_keep_no_identities_and_stay_within_their_bound() {
        // Security review sr1, M1 and L1: the verdict cache's copy of an admission kept its
        // identities alive (up to 33 of ~2.5 KB each) outside MAX_REMEMBERED_VERDICT_BYTES,
        // and the bound was tested on refusals only. A remembered admission now keeps none
        // (a later configuration re-judges it from its bytes, `readmit`); one with 32
        // verified endorsements stays within the bound.
        let mut ch = TestChannel::new("ehr", 1, 4);
        let mut proto = ch.config.to_proto().clone();
        proto.batch = Some(batch(10, 1 << 20, 1 << 20));
        let config = ChannelConfig::from_proto(proto).unwrap();
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let peers: Vec<_> = (0..MAX_VERIFIED_ENDORSEMENTS)
            .map(|i| ch.orgs[0].identity(&format!("peer{i}"), NodeOu::Peer, &[]))
            .collect();
        let peers: Vec<_> = peers.iter().collect();
        let verdicts = Verdicts::new(4);
        let now = SystemTime::now();
        for _ in 0..4 {
            let env = crate::client::endorsed_envelope(
                &client,
                "ehr",
                &medledger_channel::testing::rand_nonce(),
                vec![7; VERIFY_ENDORSEMENTS_ABOVE + 1000],
                &peers,
            )
            .unwrap();
            let a = verdicts
                .check(&config, env.encode_to_vec(), now)
                .result
                .unwrap();
            assert_eq!(a.identities.as_ref().unwrap().endorsers.len(), peers.len());
            let remembered = verdicts.get(&a.hash, config.sequence()).unwrap();
            assert!(remembered.identities.is_none());
        }
        assert!(
            verdicts.held_bytes() <= 4 * MAX_REMEMBERED_VERDICT_BYTES,
            "4 admissions with 32 endorsers hold {} bytes",
            verdicts.held_bytes()
        );
    }

    #[test]
    fn the_pool_counts_the_identities_its_admissions_keep_once_each() {
        // Security review sr1, M1: the identities pooled admissions keep were in no bound
        // (`Pool::room` counted envelope bytes only). Each distinct identity is counted once
        // against max_bytes, while any admission keeps it.
        let (mut ch, config) = channel(batch(10, 8000, 8000));
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let one = tx_envelope(&client, "ehr", vec![1; 10]).encode_to_vec();
        let two = tx_envelope(&client, "ehr", vec![2; 10]).encode_to_vec();
        let a1 = admit(&config, &one, now).unwrap();
        let a2 = admit(&config, &two, now).unwrap();
        // Self-endorsed: the creator and the endorser are one identity.
        let creator = a1.identities.as_ref().unwrap().creator.clone();
        let id_bytes = identity_held_bytes(&creator);
        assert!(id_bytes > creator.certificate().der().len());
        // Each admission's own list of them (a few pointers and MSP ids) counts too.
        let list = |a: &Admitted| a.identities.as_ref().unwrap().held_bytes();
        let (one_held, two_held) = (one.len() + list(&a1), two.len() + list(&a2));
        let envelopes = one_held + two_held;
        let mut pool = Pool::new(PoolLimits {
            max_bytes: envelopes + id_bytes - 1,
            ..PoolLimits::default()
        });
        assert!(pool.room(&a1, one.len()).is_ok());
        assert!(pool.insert(one.clone(), a1.clone(), Instant::now()));
        assert_eq!(pool.held_bytes(), one_held + id_bytes);
        // The second admission shares the identity, but its envelope no longer fits.
        assert_eq!(
            pool.room(&a2, two.len()).map_err(|r| r.status),
            Err(Status::ServiceUnavailable)
        );
        let mut pool = Pool::new(PoolLimits {
            max_bytes: envelopes + id_bytes,
            ..PoolLimits::default()
        });
        for (e, a) in [(&one, &a1), (&two, &a2)] {
            assert!(pool.room(a, e.len()).is_ok());
            assert!(pool.insert(e.clone(), a.clone(), Instant::now()));
        }
        assert_eq!(pool.held_bytes(), envelopes + id_bytes, "counted once");
        pool.remove_txs([a1.tx_id.as_str()]);
        assert_eq!(pool.held_bytes(), two_held + id_bytes);
        // Re-judged under a new configuration: its new identities are counted instead.
        let mut next = config.to_proto().clone();
        next.sequence += 1;
        let next = ChannelConfig::from_proto(next).unwrap();
        let mut judgement = Rejudgement::new(&next, now);
        assert_eq!(pool.rejudge(|e, a| judgement.judge(e, a).ok()), 0);
        let rejudged = pool.admitted(&a2.hash).unwrap();
        let new_creator = &rejudged.identities.as_ref().unwrap().creator;
        assert!(!Arc::ptr_eq(new_creator, &creator), "the new MSP manager's");
        assert_eq!(
            pool.held_bytes(),
            two.len() + list(rejudged) + identity_held_bytes(new_creator)
        );
        pool.remove_txs([a2.tx_id.as_str()]);
        assert_eq!(pool.held_bytes(), 0);
    }

    #[test]
    fn an_organizations_share_counts_the_identities_its_admissions_keep() {
        // Security review sr2, Low-1: the shares counted envelope bytes only, so an
        // organization whose admissions each keep identities the MSP cache no longer shares
        // could hold identity bytes beyond its share. Two envelopes of one organization whose
        // bytes alone fit its share, from two creators: the second no longer fits.
        let (mut ch, config) = channel(batch(10, 8000, 8000));
        let c1 = ch.orgs[0].identity("c1", NodeOu::Client, &[]);
        let c2 = ch.orgs[0].identity("c2", NodeOu::Client, &[]);
        let now = SystemTime::now();
        let one = tx_envelope(&c1, "ehr", vec![1; 10]).encode_to_vec();
        let two = tx_envelope(&c2, "ehr", vec![2; 10]).encode_to_vec();
        let (a1, a2) = (
            admit(&config, &one, now).unwrap(),
            admit(&config, &two, now).unwrap(),
        );
        let mut pool = Pool::new(PoolLimits {
            max_bytes_per_org: one.len() + two.len() + 100,
            ..PoolLimits::default()
        });
        assert!(pool.room(&a1, one.len()).is_ok(), "nothing of Org1 pending");
        assert!(pool.insert(one.clone(), a1.clone(), Instant::now()));
        let refused = pool.room(&a2, two.len()).unwrap_err();
        assert_eq!(refused.status, Status::ServiceUnavailable);
        assert!(
            refused.reason.contains("organization"),
            "{}",
            refused.reason
        );
        // Ordered: its charge is given back whole.
        pool.remove_txs([a1.tx_id.as_str()]);
        assert!(pool.bytes_by_org().is_empty(), "{:?}", pool.bytes_by_org());
        assert!(pool.room(&a2, two.len()).is_ok());
    }
}

#[cfg(test)]
mod pool_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Adds an envelope of `size` bytes from `submitter`, of Org1MSP below 100, of Org2MSP
    /// from 100; its first byte is the submitter.
    fn add(pool: &mut Pool, submitter: u8, tx: &str, size: usize) -> Result<bool, Rejection> {
        add_as(pool, submitter, tx, size, false)
    }

    /// As [`add`], a config update if `config_update`.
    fn add_as(
        pool: &mut Pool,
        submitter: u8,
        tx: &str,
        size: usize,
        config_update: bool,
    ) -> Result<bool, Rejection> {
        let mut bytes = vec![submitter; size];
        bytes[1..=tx.len()].copy_from_slice(tx.as_bytes());
        let admitted = Admitted {
            tx_id: tx.into(),
            hash: envelope_hash(tx.as_bytes()),
            config_update,
            submitter: [submitter; 32],
            org: if submitter < 100 {
                "Org1MSP"
            } else {
                "Org2MSP"
            }
            .into(),
            valid: Validity::ALWAYS,
            identities: None,
        };
        pool.room(&admitted, size)?;
        Ok(pool.insert(bytes, admitted, Instant::now()))
    }

    #[test]
    fn a_share_smaller_than_an_envelope_still_takes_one_envelope() {
        // Review finding L4: with a submitter's or organization's share below
        // absolute_max_bytes, a large honest transaction got "retry later" forever. A share
        // is now exceeded only by what comes on top of something already pending.
        let mut pool = Pool::new(PoolLimits {
            max_envelopes: 100,
            max_bytes: 1000,
            max_bytes_per_submitter: 100,
            max_bytes_per_org: 100,
        });
        assert!(add(&mut pool, 1, "a1", 150).unwrap());
        let full = add(&mut pool, 1, "a2", 10).unwrap_err();
        assert!(full.reason.contains("submitter"), "{full}");
        let full = add(&mut pool, 2, "b1", 10).unwrap_err();
        assert!(full.reason.contains("organization"), "{full}");
        assert!(add(&mut pool, 100, "c1", 150).unwrap());
    }

    #[test]
    fn a_config_update_is_not_held_back_by_its_organizations_share() {
        // Review finding M3: two identities of an organization fill its share; its admin's
        // config update (the way to revoke them) must still get into the pool.
        let mut pool = Pool::new(PoolLimits {
            max_envelopes: 100,
            max_bytes: 1000,
            max_bytes_per_submitter: 250,
            max_bytes_per_org: 500,
        });
        assert!(add(&mut pool, 1, "a1", 250).unwrap());
        assert!(add(&mut pool, 2, "b1", 250).unwrap());
        let full = add(&mut pool, 3, "c1", 100).unwrap_err();
        assert!(full.reason.contains("organization"), "{full}");
        assert!(add_as(&mut pool, 3, "update", 100, true).unwrap());
        // The pool's own total still bounds it.
        assert!(add_as(&mut pool, 4, "update2", 500, true).is_err());
    }

    #[test]
    fn the_pool_is_bounded_by_bytes_and_per_submitter() {
        let mut pool = Pool::new(PoolLimits {
            max_envelopes: 100,
            max_bytes: 1000,
            max_bytes_per_submitter: 400,
            max_bytes_per_org: 1000,
        });
        assert!(add(&mut pool, 1, "a1", 300).unwrap());
        let full = add(&mut pool, 1, "a2", 200).unwrap_err();
        assert_eq!(full.status, Status::ServiceUnavailable);
        assert!(full.reason.contains("submitter"), "{full}");
        assert!(add(&mut pool, 2, "b1", 400).unwrap());
        assert!(add(&mut pool, 3, "c1", 300).unwrap());
        let full = add(&mut pool, 4, "d1", 10).unwrap_err();
        assert_eq!(full.status, Status::ServiceUnavailable);
        assert_eq!(pool.bytes(), 1000);
        pool.remove_txs(["a1"]);
        assert_eq!(pool.bytes(), 700);
        assert_eq!(pool.submitters(), 2);
        assert!(add(&mut pool, 1, "a2", 200).unwrap());
    }

    #[test]
    fn one_organization_with_many_identities_gets_its_share_not_the_pool() {
        let b = BatchConfig {
            max_message_count: 5,
            preferred_max_bytes: 10_000,
            absolute_max_bytes: 10_000,
            batch_timeout_ms: 100,
        };
        let mut pool = Pool::new(PoolLimits {
            max_envelopes: 1000,
            max_bytes: 10_000,
            max_bytes_per_submitter: 2_500,
            max_bytes_per_org: 5_000,
        });
        // Org1's admin enrolled ten client identities (submitters 1..=10); they flood first.
        let mut refused = 0;
        for round in 0..10 {
            for id in 1..=10u8 {
                match add(&mut pool, id, &format!("o1-{id}-{round}"), 100) {
                    Ok(added) => assert!(added),
                    Err(r) => {
                        assert_eq!(r.status, Status::ServiceUnavailable);
                        assert!(r.reason.contains("organization"), "{r}");
                        refused += 1;
                    }
                }
            }
        }
        // Org1 holds at most its share of the pool (half); the rest of its flood is refused.
        assert_eq!(pool.bytes(), 5_000, "Org1's bytes pending");
        assert_eq!(refused, 50);
        // One identity of Org2 (submitter 200) still has room, and is in the next block.
        assert!(add(&mut pool, 200, "o2", 100).unwrap());
        let who = order_cut(&mut pool, &b);
        assert_eq!(who.len(), 5);
        assert!(who.contains(&200), "Org2's envelope waits: {who:?}");
        let org1: HashSet<u8> = who.iter().copied().filter(|s| *s < 100).collect();
        assert_eq!(org1.len(), 4, "Org1's identities in turn: {who:?}");
        // Org1 drains at its pace.
        while !pool.is_empty() {
            assert!(!order_cut(&mut pool, &b).is_empty());
        }
    }

    #[test]
    fn cutting_takes_submitters_in_turn() {
        let b = small_batches();
        let mut pool = Pool::default();
        // Submitter 1 floods large envelopes first; 2 and 3 then send small ones.
        for i in 0..5 {
            add(&mut pool, 1, &format!("big{i}"), 500).unwrap();
        }
        for i in 0..3 {
            add(&mut pool, 2, &format!("two{i}"), 10).unwrap();
            add(&mut pool, 3, &format!("three{i}"), 10).unwrap();
        }
        let mut blocks = Vec::new();
        while !pool.is_empty() {
            let who = order_cut(&mut pool, &b);
            assert!(!who.is_empty());
            blocks.push(who);
        }
        // The small envelopes are all ordered first, not after the five large: each
        // submitter's next envelope would finish (bytes ordered + its size) before the large.
        assert_eq!(blocks[0], vec![2, 3, 2, 3, 2, 3]);
        assert!(blocks[1..].iter().all(|b| b == &vec![1]));
        assert_eq!(blocks.len(), 6);
    }

    /// Blocks of at most 10 envelopes, preferably 100 bytes.
    fn small_batches() -> BatchConfig {
        BatchConfig {
            max_message_count: 10,
            preferred_max_bytes: 100,
            absolute_max_bytes: 1000,
            batch_timeout_ms: 100,
        }
    }

    /// Removes what `cut` returned from the pool, as a decided block does; who submitted each.
    fn order_cut(pool: &mut Pool, b: &BatchConfig) -> Vec<u8> {
        let block = pool.cut(b);
        let txs: Vec<String> = pool
            .by_seq
            .values()
            .filter(|p| block.contains(&p.bytes))
            .map(|p| p.admitted.tx_id.clone())
            .collect();
        pool.remove_txs(txs.iter().map(String::as_str));
        block.iter().map(|e| e[0]).collect()
    }

    #[test]
    fn a_small_envelope_is_not_held_behind_a_large_one_of_a_less_served_submitter() {
        // Seen under the flood of issue 14 item 3: an honest client had 20 small transactions
        // ordered before large envelopes of new submitters arrived; ordered by bytes served
        // alone, each newcomer's large envelope went first, one block each, and the honest
        // client's next transaction waited behind all of them.
        let b = small_batches();
        let mut pool = Pool::default();
        for i in 0..20 {
            add(&mut pool, 9, &format!("warm{i}"), 10).unwrap();
        }
        while !pool.is_empty() {
            order_cut(&mut pool, &b);
        }
        for s in 1..=3 {
            add(&mut pool, s, &format!("big{s}"), 500).unwrap();
        }
        add(&mut pool, 9, "honest", 10).unwrap();
        assert_eq!(order_cut(&mut pool, &b), vec![9]);
        // The large ones follow, one block each (each is over preferred_max_bytes).
        for _ in 0..3 {
            assert_eq!(order_cut(&mut pool, &b).len(), 1);
        }
        assert!(pool.is_empty());
    }
}
