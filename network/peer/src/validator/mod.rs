//! Block validation: Fabric's committer pipeline as pure logic over a [`LedgerReader`].
//!
//! 1. In parallel (rayon) for every transaction: [`tx::prevalidate`] — envelope, headers,
//!    creator signature and tx_id, endorser-transaction structure, read-write set decoding,
//!    endorsement signatures; for a config update, its signatures against the current
//!    configuration ([`medledger_channel::ChannelConfig::apply_update`]).
//! 2. Sequentially, in block order, for each transaction that passed: duplicate tx_id (on the
//!    ledger or earlier in the block) → `DUPLICATE_TXID`; invoking a query system chaincode
//!    (`qscc`, `cscc`) or writing its namespace → `INVALID_CHAINCODE`; endorsement policy with Fabric's
//!    collection-level and key-level (state-based) overrides, and the lifecycle rules for
//!    writes to `_lifecycle` ([`crate::lifecycle::validate_writes`]) →
//!    `ENDORSEMENT_POLICY_FAILURE`;
//!    MVCC of every read and range query against committed state plus the block's earlier
//!    valid writes → `MVCC_READ_CONFLICT` / `PHANTOM_READ_CONFLICT`; then its writes are
//!    applied to the block-local [`state::Overlay`].
//! 3. The result is a [`medledger_ledger::BlockUpdate`]: TRANSACTIONS_FILTER, COMMIT_HASH and
//!    LAST_CONFIG metadata (the committer's own, not the orderer's), tx index, final state, history, hashed and private state.
//!
//! Nothing here does I/O besides reading state through the trait; the committer around it
//! verifies orderer signatures and writes the update.

pub mod state;
pub mod tx;

use std::collections::{BTreeMap, HashSet};

use medledger_channel::ChannelConfig;
use medledger_channel::block;
use medledger_ledger_api::{
    BlockUpdate, HistoryWrite, LedgerReader, Metadata, MissingPrivate, PrivateRwSet, Result,
    TxIndexEntry, Version, VersionedValue,
};
use medledger_msp::crypto::sha256;
use medledger_msp::policy::{Policy, SignaturePolicy, Signer};
use medledger_proto::common::{Block, BlockMetadataIndex, Metadata as PbMetadata};
use medledger_proto::kvrwset::{KvMetadataEntry, KvrwSet, range_query_info::ReadsInfo};
use medledger_proto::protos::TxValidationCode;
use medledger_proto::rwset::TxPvtReadWriteSet;
use medledger_proto::{MspId, TxId};
use prost::Message;
use rayon::prelude::*;
use tracing::debug;

use crate::definitions::{ChaincodeDefinition, ChaincodeDefinitions};
use state::Overlay;
use tx::{EndorserTx, NamespaceRwSet, Prevalidated};

/// Key metadata entry holding a key-level endorsement policy (Fabric's
/// `MetaDataKeys.VALIDATION_PARAMETER` name): a serialized `common.SignaturePolicyEnvelope`.
pub const VALIDATION_PARAMETER: &str = "VALIDATION_PARAMETER";

/// Private data handed to the committer with a block: tx number → that transaction's private
/// read-write set (from this peer's endorsement, or fetched from another peer).
pub type BlockPrivateData = BTreeMap<u64, TxPvtReadWriteSet>;

/// What validation needs besides the block.
pub struct BlockContext<'a> {
    /// The channel configuration (MSPs, policies).
    pub config: &'a ChannelConfig,
    /// Endorsement policies and collections per namespace.
    pub definitions: &'a dyn ChaincodeDefinitions,
    /// Committed state and tx index.
    pub state: &'a dyn LedgerReader,
    /// This peer's organization: private data is kept only for its member collections.
    pub msp_id: &'a MspId,
    /// Commit hash of the previous block (empty before the first).
    pub previous_commit_hash: &'a [u8],
    /// Number of the last config block before this block (0: the genesis block).
    pub last_config: u64,
}

/// A validated block: codes per transaction and the update to commit.
#[derive(Debug, Clone)]
pub struct ValidatedBlock {
    /// Validation code of each transaction, in block order.
    pub codes: Vec<TxValidationCode>,
    /// Authenticated tx id of each transaction (`None` where the creator's signature over it
    /// did not verify or the envelope did not parse).
    pub tx_ids: Vec<Option<String>>,
    /// What to commit; `update.block` has TRANSACTIONS_FILTER, COMMIT_HASH and LAST_CONFIG
    /// set.
    pub update: BlockUpdate,
    /// The channel configuration from this block on, if the block is a valid config update.
    pub config: Option<ChannelConfig>,
    /// A configuration transaction of the block that this peer finds invalid (position and
    /// code): the ordering service admitted it, so the peer disagrees with the network and
    /// must not commit the block ([`crate::Error::ChannelHalted`]).
    pub config_disagreement: Option<(u64, TxValidationCode)>,
}

/// Validates `block` (whose orderer signatures the caller verified) and computes its update.
///
/// # Errors
/// Only state read errors; an invalid transaction is a code, not an error.
pub fn validate_block(
    mut block: Block,
    ctx: &BlockContext<'_>,
    private: &BlockPrivateData,
) -> Result<ValidatedBlock> {
    let number = block::number(&block);
    let entries = block::entries(&block);
    // Verified with the block's signatures (the committer's first check).
    let ordered = medledger_channel::bft::ordering_time(&block);
    let pre: Vec<Prevalidated> = entries
        .par_iter()
        .map(|e| tx::prevalidate(e, ctx.config, ordered))
        .collect();

    let mut overlay = Overlay::new(ctx.state);
    let mut codes = Vec::with_capacity(pre.len());
    let mut tx_ids = Vec::with_capacity(pre.len());
    let mut update = BlockUpdate::default();
    let mut seen_ids: HashSet<TxId> = HashSet::new();
    let mut new_config = None;
    let mut config_disagreement = None;
    let alone = entries.len() == 1;
    for (i, p) in pre.into_iter().enumerate() {
        let tx_num = i as u64;
        let (code, tx_id) = match p {
            Prevalidated::Invalid {
                code,
                tx_id,
                reason,
            } => {
                debug!(target: "peer::committer", block = number, tx_num, ?code, %reason, "transaction invalid");
                (code, tx_id)
            }
            Prevalidated::Config { tx_id, config } => {
                let code = if !alone {
                    debug!(target: "peer::committer", block = number, tx_num, "config update not alone in its block");
                    TxValidationCode::InvalidConfigTransaction
                } else if overlay.tx_exists(&tx_id)? {
                    TxValidationCode::DuplicateTxid
                } else {
                    new_config = Some(*config);
                    TxValidationCode::Valid
                };
                (code, Some(tx_id))
            }
            Prevalidated::Endorser(tx) => {
                let code = if overlay.tx_exists(&tx.tx_id)? || seen_ids.contains(&tx.tx_id) {
                    TxValidationCode::DuplicateTxid
                } else {
                    seen_ids.insert(tx.tx_id.clone());
                    let code = check_tx(&tx, ctx, &overlay)?;
                    if code == TxValidationCode::Valid {
                        apply_tx(&tx, number, tx_num, ctx, private, &mut overlay, &mut update)?;
                    }
                    code
                };
                if code != TxValidationCode::Valid {
                    debug!(target: "peer::committer", block = number, tx_num, tx_id = %tx.tx_id, ?code, "transaction invalid");
                }
                (code, Some(tx.tx_id))
            }
        };
        if code != TxValidationCode::Valid
            && config_disagreement.is_none()
            && entries.get(i).is_some_and(|e| tx::is_config_update(e))
        {
            config_disagreement = Some((tx_num, code));
        }
        if let Some(id) = &tx_id
            && code != TxValidationCode::DuplicateTxid
        {
            update.txs.push(TxIndexEntry {
                tx_id: id.to_string(),
                tx_num,
                code,
            });
        }
        codes.push(code);
        tx_ids.push(tx_id.map(TxId::into_string));
    }
    update.state = overlay.public;
    update.hashed = overlay.hashed;

    let filter: Vec<u8> = codes.iter().map(|c| *c as i32 as u8).collect();
    let commit_hash = commit_hash(&filter, &update, ctx.previous_commit_hash).to_vec();
    block::set_metadata_bytes(&mut block, BlockMetadataIndex::TransactionsFilter, filter);
    block::set_metadata_bytes(
        &mut block,
        BlockMetadataIndex::CommitHash,
        PbMetadata {
            value: commit_hash.clone(),
            signatures: Vec::new(),
        }
        .encode_to_vec(),
    );
    let last_config = if new_config.is_some() {
        number
    } else {
        ctx.last_config
    };
    block::set_metadata_bytes(
        &mut block,
        BlockMetadataIndex::LastConfig,
        PbMetadata {
            value: medledger_proto::common::LastConfig { index: last_config }.encode_to_vec(),
            signatures: Vec::new(),
        }
        .encode_to_vec(),
    );
    update.block = block;
    update.commit_hash = commit_hash;
    Ok(ValidatedBlock {
        codes,
        tx_ids,
        update,
        config: new_config,
        config_disagreement,
    })
}

/// Why a transaction fails its endorsement policy (Fabric 2.x's key-level validator, or the
/// lifecycle's rules for `_lifecycle` writes). On the ledger every variant is Fabric's
/// `ENDORSEMENT_POLICY_FAILURE`; the variant is logged (debug) and matched by tests. Messages
/// name namespaces and collections, never a key or a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFailure {
    /// The chaincode-level endorsement policy of a namespace is not satisfied.
    #[error("chaincode policy of {namespace} not satisfied")]
    ChaincodePolicy {
        /// The namespace (chaincode).
        namespace: String,
    },
    /// A public key's key-level policy (`VALIDATION_PARAMETER`) is not satisfied.
    #[error("key-level policy of a key in {namespace} not satisfied")]
    KeyPolicy {
        /// The namespace.
        namespace: String,
    },
    /// A public key whose metadata an earlier valid transaction of the block rewrote is
    /// written again (Fabric's `ValidationParameterUpdatedError`).
    #[error("key-level policy of a key in {namespace} changed earlier in the block")]
    KeyPolicyChanged {
        /// The namespace.
        namespace: String,
    },
    /// A private key's key-level policy is not satisfied.
    #[error("key-level policy of a key in {namespace}/{collection} not satisfied")]
    PrivateKeyPolicy {
        /// The namespace.
        namespace: String,
        /// The collection.
        collection: String,
    },
    /// A private key whose metadata an earlier valid transaction of the block rewrote is
    /// written again.
    #[error("key-level policy of a key in {namespace}/{collection} changed earlier in the block")]
    PrivateKeyPolicyChanged {
        /// The namespace.
        namespace: String,
        /// The collection.
        collection: String,
    },
    /// A write to a collection the chaincode does not define.
    #[error("collection {collection} of {namespace} is not defined")]
    UndefinedCollection {
        /// The namespace.
        namespace: String,
        /// The collection.
        collection: String,
    },
    /// A collection-level endorsement policy is not satisfied.
    #[error("collection policy of {namespace}/{collection} not satisfied")]
    CollectionPolicy {
        /// The namespace.
        namespace: String,
        /// The collection.
        collection: String,
    },
    /// The lifecycle's rules for `_lifecycle` writes refuse the transaction.
    #[error(transparent)]
    Lifecycle(#[from] crate::lifecycle::LifecycleRefusal),
}

/// Whether a namespace's read-write set writes anything (values or metadata, public or
/// private), as Fabric's `txWritesToNamespace`.
fn writes(ns: &tx::NamespaceRwSet) -> bool {
    !ns.kv.writes.is_empty()
        || !ns.kv.metadata_writes.is_empty()
        || ns
            .collections
            .iter()
            .any(|c| !c.hashed.hashed_writes.is_empty() || !c.hashed.metadata_writes.is_empty())
}

/// A transaction invoking a query system chaincode (`qscc`, `cscc`) or writing its namespace
/// is `INVALID_CHAINCODE`, as on Fabric, whose validator finds no validation info for them.
/// Then endorsement policy, then MVCC.
fn check_tx(
    tx: &EndorserTx,
    ctx: &BlockContext<'_>,
    overlay: &Overlay<'_>,
) -> Result<TxValidationCode> {
    if crate::scc::is_system_query(&tx.chaincode)
        || tx
            .rwsets
            .iter()
            .any(|ns| crate::scc::is_system_query(&ns.namespace) && writes(ns))
    {
        debug!(target: "peer::committer", tx_id = %tx.tx_id, "transaction of a query system chaincode");
        return Ok(TxValidationCode::InvalidChaincode);
    }
    if let Err(reason) = check_endorsement(tx, ctx, overlay)? {
        debug!(target: "peer::committer", tx_id = %tx.tx_id, %reason, "endorsement policy not satisfied");
        return Ok(TxValidationCode::EndorsementPolicyFailure);
    }
    check_mvcc(tx, overlay)
}

fn definition(ctx: &BlockContext<'_>, ns: &str) -> std::sync::Arc<ChaincodeDefinition> {
    ctx.definitions.definition(ns).unwrap_or_else(|| {
        let mut def = ChaincodeDefinition::with_default_policy(ns);
        if let Some(p) = ctx.config.policy("Endorsement") {
            def.endorsement_policy = p.clone();
        }
        std::sync::Arc::new(def)
    })
}

fn validation_parameter(v: &Option<VersionedValue>) -> Option<&[u8]> {
    v.as_ref()
        .and_then(|v| v.metadata.get(VALIDATION_PARAMETER))
        .map(Vec::as_slice)
}

/// Fabric 2.x's key-level validator (`statebased/validator_keylevel.go`): every key the
/// transaction writes (value or metadata, public or private) must satisfy its key-level
/// policy if it has one; keys without one need the collection-level policy (private writes
/// in a collection that defines one) or else the chaincode policy; if no policy was checked
/// at all (a read-only transaction), the chaincode policy is checked. A key whose metadata an
/// earlier valid transaction of the block rewrote cannot be written again in the block (as
/// Fabric's `ValidationParameterUpdatedError`). `Ok(Err(failure))` means the policy failed.
fn check_endorsement(
    tx: &EndorserTx,
    ctx: &BlockContext<'_>,
    overlay: &Overlay<'_>,
) -> Result<std::result::Result<(), PolicyFailure>> {
    use PolicyFailure as F;
    let signers: &[Signer] = &tx.endorsers;
    let orgs = ctx.config.org_policies();
    let eval = |p: &Policy| p.evaluate(signers, orgs);
    let eval_vp = |bytes: &[u8]| {
        SignaturePolicy::from_envelope_bytes(bytes).is_ok_and(|p| p.evaluate(signers))
    };
    let mut namespaces: Vec<&str> = vec![tx.chaincode.as_str()];
    for ns in &tx.rwsets {
        if writes(ns) && ns.namespace != tx.chaincode {
            namespaces.push(&ns.namespace);
        }
    }
    for ns_name in namespaces {
        if ns_name == crate::lifecycle::NAMESPACE {
            let ns = tx.rwsets.iter().find(|n| n.namespace == ns_name);
            if let Err(e) = crate::lifecycle::validate_writes(tx, ns, ctx.config, overlay)? {
                return Ok(Err(e.into()));
            }
            continue;
        }
        let def = definition(ctx, ns_name);
        let mut cc_checked = false;
        let mut any_checked = false;
        let check_cc = |checked: &mut bool| -> std::result::Result<(), PolicyFailure> {
            if !*checked {
                *checked = true;
                if !eval(&def.endorsement_policy) {
                    return Err(F::ChaincodePolicy {
                        namespace: ns_name.to_owned(),
                    });
                }
            }
            Ok(())
        };
        let Some(ns) = tx.rwsets.iter().find(|n| n.namespace == ns_name) else {
            if let Err(e) = check_cc(&mut cc_checked) {
                return Ok(Err(e));
            }
            continue;
        };
        let public_keys = ns
            .kv
            .writes
            .iter()
            .map(|w| w.key.as_str())
            .chain(ns.kv.metadata_writes.iter().map(|m| m.key.as_str()));
        for key in public_keys {
            if overlay.metadata_touched.contains(&(
                ns_name.to_owned(),
                String::new(),
                key.as_bytes().to_vec(),
            )) {
                return Ok(Err(F::KeyPolicyChanged {
                    namespace: ns_name.to_owned(),
                }));
            }
            let current = overlay.get(ns_name, key)?;
            match validation_parameter(&current) {
                Some(vp) => {
                    any_checked = true;
                    if !eval_vp(vp) {
                        return Ok(Err(F::KeyPolicy {
                            namespace: ns_name.to_owned(),
                        }));
                    }
                }
                None => {
                    any_checked = true;
                    if let Err(e) = check_cc(&mut cc_checked) {
                        return Ok(Err(e));
                    }
                }
            }
        }
        for coll in &ns.collections {
            let Some(cdef) = def.collections.get(&coll.name) else {
                if coll.hashed.hashed_writes.is_empty() && coll.hashed.metadata_writes.is_empty() {
                    continue;
                }
                return Ok(Err(F::UndefinedCollection {
                    namespace: ns_name.to_owned(),
                    collection: coll.name.clone(),
                }));
            };
            let mut coll_checked = false;
            let hashes = coll
                .hashed
                .hashed_writes
                .iter()
                .map(|w| w.key_hash.as_slice())
                .chain(
                    coll.hashed
                        .metadata_writes
                        .iter()
                        .map(|m| m.key_hash.as_slice()),
                );
            for key_hash in hashes {
                if overlay.metadata_touched.contains(&(
                    ns_name.to_owned(),
                    coll.name.clone(),
                    key_hash.to_vec(),
                )) {
                    return Ok(Err(F::PrivateKeyPolicyChanged {
                        namespace: ns_name.to_owned(),
                        collection: coll.name.clone(),
                    }));
                }
                let current = overlay.get_hashed(ns_name, &coll.name, key_hash)?;
                any_checked = true;
                match (validation_parameter(&current), &cdef.endorsement_policy) {
                    (Some(vp), _) => {
                        if !eval_vp(vp) {
                            return Ok(Err(F::PrivateKeyPolicy {
                                namespace: ns_name.to_owned(),
                                collection: coll.name.clone(),
                            }));
                        }
                    }
                    (None, Some(policy)) => {
                        if !coll_checked {
                            coll_checked = true;
                            if !eval(policy) {
                                return Ok(Err(F::CollectionPolicy {
                                    namespace: ns_name.to_owned(),
                                    collection: coll.name.clone(),
                                }));
                            }
                        }
                    }
                    (None, None) => {
                        if let Err(e) = check_cc(&mut cc_checked) {
                            return Ok(Err(e));
                        }
                    }
                }
            }
        }
        if !any_checked && let Err(e) = check_cc(&mut cc_checked) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// Fabric's MVCC (`txmgr/validation`): every read's version must equal the current one (absent
/// reads: the key must still be absent), hashed reads likewise, and every range query
/// re-executed over current state must return exactly the recorded keys and versions.
fn check_mvcc(tx: &EndorserTx, overlay: &Overlay<'_>) -> Result<TxValidationCode> {
    for ns in &tx.rwsets {
        for read in &ns.kv.reads {
            let current = overlay.get(&ns.namespace, &read.key)?.map(|v| v.version);
            if current != read.version.as_ref().map(Version::from) {
                return Ok(TxValidationCode::MvccReadConflict);
            }
        }
        for rq in &ns.kv.range_queries_info {
            let reads = match &rq.reads_info {
                Some(ReadsInfo::RawReads(r)) => r.kv_reads.as_slice(),
                _ => &[],
            };
            let (end, inclusive) = if rq.itr_exhausted {
                (rq.end_key.as_str(), false)
            } else {
                match reads.last() {
                    Some(last) => (last.key.as_str(), true),
                    None => continue,
                }
            };
            let now = overlay.range_versions(
                &ns.namespace,
                &rq.start_key,
                end,
                inclusive,
                reads.len() + 1,
            )?;
            let same = now.len() == reads.len()
                && now.iter().zip(reads).all(|((k, v), r)| {
                    *k == r.key && Some(*v) == r.version.as_ref().map(Version::from)
                });
            if !same {
                return Ok(TxValidationCode::PhantomReadConflict);
            }
        }
        for coll in &ns.collections {
            for read in &coll.hashed.hashed_reads {
                let current = overlay
                    .get_hashed(&ns.namespace, &coll.name, &read.key_hash)?
                    .map(|v| v.version);
                if current != read.version.as_ref().map(Version::from) {
                    return Ok(TxValidationCode::MvccReadConflict);
                }
            }
        }
    }
    Ok(TxValidationCode::Valid)
}

fn metadata_of(entries: &[KvMetadataEntry]) -> Metadata {
    entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

/// The final value of a key after a write and/or metadata write, as Fabric's
/// `txmgr/tx_ops_preparation.go`: a delete removes value and metadata; a value write keeps the
/// key's metadata unless the transaction also rewrites it; a metadata-only write keeps the
/// value and is ignored if the key does not exist; every change takes the new version.
fn final_value(
    current: Option<VersionedValue>,
    write: Option<(bool, &[u8])>,
    metadata: Option<Metadata>,
    version: Version,
) -> Option<Option<VersionedValue>> {
    match (write, metadata) {
        (Some((true, _)), _) => Some(None),
        (Some((false, value)), md) => Some(Some(VersionedValue {
            value: value.to_vec(),
            version,
            metadata: md.unwrap_or_else(|| current.map(|c| c.metadata).unwrap_or_default()),
        })),
        (None, Some(md)) => current.map(|c| {
            Some(VersionedValue {
                value: c.value,
                version,
                metadata: md,
            })
        }),
        (None, None) => None,
    }
}

fn apply_tx(
    tx: &EndorserTx,
    block_num: u64,
    tx_num: u64,
    ctx: &BlockContext<'_>,
    private: &BlockPrivateData,
    overlay: &mut Overlay<'_>,
    update: &mut BlockUpdate,
) -> Result<()> {
    let version = Version::new(block_num, tx_num);
    for ns in &tx.rwsets {
        apply_public(tx, ns, version, overlay, update)?;
        if ns.collections.is_empty() {
            continue;
        }
        let def = definition(ctx, &ns.namespace);
        for coll in &ns.collections {
            let writes: BTreeMap<&[u8], _> = coll
                .hashed
                .hashed_writes
                .iter()
                .map(|w| (w.key_hash.as_slice(), w))
                .collect();
            let md: BTreeMap<&[u8], Metadata> = coll
                .hashed
                .metadata_writes
                .iter()
                .map(|m| (m.key_hash.as_slice(), metadata_of(&m.entries)))
                .collect();
            let keys: std::collections::BTreeSet<&[u8]> =
                writes.keys().chain(md.keys()).copied().collect();
            for key_hash in keys {
                let w = writes.get(key_hash);
                let current = overlay.get_hashed(&ns.namespace, &coll.name, key_hash)?;
                if w.is_some_and(|w| w.is_purge) {
                    // Purge keeps the hash as evidence (with the purging transaction's version,
                    // so no later reconciliation restores the value) and removes the private
                    // value and stored private writes of the key.
                    if let Some(c) = current {
                        overlay.hashed.insert(
                            (ns.namespace.clone(), coll.name.clone(), key_hash.to_vec()),
                            Some(VersionedValue { version, ..c }),
                        );
                    }
                    purge_in_block(update, &ns.namespace, &coll.name, key_hash);
                    update.purges.push((
                        (ns.namespace.clone(), coll.name.clone(), key_hash.to_vec()),
                        version,
                    ));
                    continue;
                }
                let write = w.map(|w| (w.is_delete, w.value_hash.as_slice()));
                let new_md = md.get(key_hash).cloned();
                if new_md.is_some() {
                    overlay.metadata_touched.insert((
                        ns.namespace.clone(),
                        coll.name.clone(),
                        key_hash.to_vec(),
                    ));
                }
                if let Some(v) = final_value(current, write, new_md, version) {
                    overlay.hashed.insert(
                        (ns.namespace.clone(), coll.name.clone(), key_hash.to_vec()),
                        v,
                    );
                }
            }
            let member = def
                .collections
                .get(&coll.name)
                .is_some_and(|c| c.is_member(ctx.msp_id));
            if !member {
                continue;
            }
            let has_writes = coll.hashed.hashed_writes.iter().any(|w| !w.is_purge);
            if !has_writes {
                continue;
            }
            match private_writes(private, tx_num, ns, coll) {
                Some((bytes, pvt)) => {
                    let mut key_hashes = Vec::with_capacity(pvt.writes.len());
                    for w in pvt.writes {
                        key_hashes.push(sha256(w.key.as_bytes()).to_vec());
                        let value = if w.is_delete {
                            None
                        } else {
                            Some(VersionedValue {
                                value: w.value,
                                version,
                                metadata: Metadata::new(),
                            })
                        };
                        update
                            .private
                            .insert((ns.namespace.clone(), coll.name.clone(), w.key), value);
                    }
                    update.private_rwsets.push(PrivateRwSet {
                        tx_num,
                        namespace: ns.namespace.clone(),
                        collection: coll.name.clone(),
                        rwset: bytes.to_vec(),
                        key_hashes,
                    });
                }
                None => update.missing_private.push(MissingPrivate {
                    block_num,
                    tx_num,
                    namespace: ns.namespace.clone(),
                    collection: coll.name.clone(),
                }),
            }
        }
    }
    Ok(())
}

/// Removes a purged key from what earlier transactions of the same block wrote privately.
fn purge_in_block(update: &mut BlockUpdate, ns: &str, coll: &str, key_hash: &[u8]) {
    update
        .private
        .retain(|(n, c, k), _| !(n == ns && c == coll && sha256(k.as_bytes()) == key_hash));
    for set in update
        .private_rwsets
        .iter_mut()
        .filter(|s| s.namespace == ns && s.collection == coll)
    {
        if let Ok(mut kv) = KvrwSet::decode(set.rwset.as_slice()) {
            kv.writes
                .retain(|w| sha256(w.key.as_bytes()).as_slice() != key_hash);
            set.rwset = kv.encode_to_vec();
            set.key_hashes.retain(|h| h.as_slice() != key_hash);
        }
    }
}

/// The collection's private writes for this transaction, if supplied and consistent with the
/// on-chain hashes: SHA-256 of the private rwset bytes equals `pvt_rwset_hash`, and each write
/// matches a hashed write (key hash, value hash or delete). Returns the bytes and the decoded
/// set.
pub fn private_writes<'p>(
    private: &'p BlockPrivateData,
    tx_num: u64,
    ns: &NamespaceRwSet,
    coll: &tx::CollectionRwSet,
) -> Option<(&'p [u8], KvrwSet)> {
    let bytes = private
        .get(&tx_num)?
        .ns_pvt_rwset
        .iter()
        .find(|n| n.namespace == ns.namespace)?
        .collection_pvt_rwset
        .iter()
        .find(|c| c.collection_name == coll.name)?
        .rwset
        .as_slice();
    if sha256(bytes).as_slice() != coll.pvt_rwset_hash.as_slice() {
        tracing::warn!(target: "peer::committer", tx_num, namespace = %ns.namespace, collection = %coll.name, "private data does not match its on-chain hash; ignored");
        return None;
    }
    let kv = verify_private_rwset(bytes, coll)?;
    Some((bytes, kv))
}

/// Checks a collection's private `KVRWSet` bytes against the transaction's on-chain hashes:
/// SHA-256 of the bytes is `pvt_rwset_hash`, and every write matches a hashed write (key hash;
/// value hash, or delete). The decoded set if they match.
pub fn verify_private_rwset(bytes: &[u8], coll: &tx::CollectionRwSet) -> Option<KvrwSet> {
    if sha256(bytes).as_slice() != coll.pvt_rwset_hash.as_slice() {
        return None;
    }
    verify_private_writes(bytes, coll)
}

/// As [`verify_private_rwset`] without the whole-set hash: every write of the decoded set
/// matches one of the transaction's hashed writes (a set some of whose writes were removed by
/// purges passes; the caller decides whether the missing ones may be missing).
pub fn verify_private_writes(bytes: &[u8], coll: &tx::CollectionRwSet) -> Option<KvrwSet> {
    let kv = KvrwSet::decode(bytes).ok()?;
    let consistent = kv.writes.iter().all(|w| {
        coll.hashed.hashed_writes.iter().any(|h| {
            h.key_hash.as_slice() == sha256(w.key.as_bytes()).as_slice()
                && h.is_delete == w.is_delete
                && (w.is_delete || h.value_hash.as_slice() == sha256(&w.value).as_slice())
        })
    });
    consistent.then_some(kv)
}

fn apply_public(
    tx: &EndorserTx,
    ns: &NamespaceRwSet,
    version: Version,
    overlay: &mut Overlay<'_>,
    update: &mut BlockUpdate,
) -> Result<()> {
    let writes: BTreeMap<&str, _> = ns.kv.writes.iter().map(|w| (w.key.as_str(), w)).collect();
    let md: BTreeMap<&str, Metadata> = ns
        .kv
        .metadata_writes
        .iter()
        .map(|m| (m.key.as_str(), metadata_of(&m.entries)))
        .collect();
    let keys: std::collections::BTreeSet<&str> = writes.keys().chain(md.keys()).copied().collect();
    for key in keys {
        let current = overlay.get(&ns.namespace, key)?;
        let w = writes.get(key);
        let new_md = md.get(key).cloned();
        if new_md.is_some() {
            overlay.metadata_touched.insert((
                ns.namespace.clone(),
                String::new(),
                key.as_bytes().to_vec(),
            ));
        }
        if let Some(w) = w {
            update.history.push(HistoryWrite {
                namespace: ns.namespace.clone(),
                key: key.to_owned(),
                tx_num: version.tx_num,
                tx_id: tx.tx_id.to_string(),
                timestamp: tx.timestamp,
                is_delete: w.is_delete,
                value: if w.is_delete {
                    Vec::new()
                } else {
                    w.value.clone()
                },
            });
        }
        let write = w.map(|w| (w.is_delete, w.value.as_slice()));
        if let Some(v) = final_value(current, write, new_md, version) {
            overlay
                .public
                .insert((ns.namespace.clone(), key.to_owned()), v);
        }
    }
    Ok(())
}

fn put_lp(h: &mut sha2::Sha256, bytes: &[u8]) {
    use sha2::Digest;
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn put_value(h: &mut sha2::Sha256, v: &Option<VersionedValue>) {
    use sha2::Digest;
    match v {
        None => h.update([0u8]),
        Some(v) => {
            h.update([1u8]);
            put_lp(h, &v.value);
            h.update(v.version.block_num.to_be_bytes());
            h.update(v.version.tx_num.to_be_bytes());
            h.update((v.metadata.len() as u64).to_be_bytes());
            for (name, value) in &v.metadata {
                put_lp(h, name.as_bytes());
                put_lp(h, value);
            }
        }
    }
}

/// The block's commit hash, chained like Fabric's (`kvledger.addBlockCommitHash`: SHA-256 over
/// the transactions filter, the block's state updates and the previous commit hash). Our
/// update encoding: every public then hashed update in key order, each field
/// length-prefixed (u64 BE). Private values are excluded (they differ between member and
/// non-member peers); their hashes are included.
pub fn commit_hash(filter: &[u8], update: &BlockUpdate, previous: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    put_lp(&mut h, filter);
    h.update((update.state.len() as u64).to_be_bytes());
    for ((ns, key), v) in &update.state {
        put_lp(&mut h, ns.as_bytes());
        put_lp(&mut h, key.as_bytes());
        put_value(&mut h, v);
    }
    h.update((update.hashed.len() as u64).to_be_bytes());
    for ((ns, coll, key_hash), v) in &update.hashed {
        put_lp(&mut h, ns.as_bytes());
        put_lp(&mut h, coll.as_bytes());
        put_lp(&mut h, key_hash);
        put_value(&mut h, v);
    }
    put_lp(&mut h, previous);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::definitions::InMemoryDefinitions;
    use medledger_channel::testing::TestChannel;
    use medledger_ledger_api::MemoryLedger;
    use medledger_proto::kvrwset::{KvWrite, KvrwSet};
    use tx::{CollectionRwSet, test_tx};

    fn writes(namespace: &str, key: &str) -> NamespaceRwSet {
        NamespaceRwSet {
            namespace: namespace.into(),
            kv: KvrwSet {
                writes: vec![KvWrite {
                    key: key.into(),
                    value: b"v".to_vec(),
                    is_delete: false,
                }],
                ..KvrwSet::default()
            },
            collections: Vec::new(),
        }
    }

    /// Endorsement policy failures are variants a test matches (each is
    /// `ENDORSEMENT_POLICY_FAILURE` on the ledger), with the messages the debug log had.
    #[test]
    fn policy_failures_are_typed() {
        let ch = TestChannel::new("ch", 3, 4);
        let definitions = InMemoryDefinitions::new();
        let state = MemoryLedger::default();
        let msp_id: MspId = "Org1MSP".parse().unwrap();
        let ctx = BlockContext {
            config: &ch.config,
            definitions: &definitions,
            state: &state,
            msp_id: &msp_id,
            previous_commit_hash: &[],
            last_config: 0,
        };
        let overlay = Overlay::new(&state);
        let failure = |tx: &EndorserTx| check_endorsement(tx, &ctx, &overlay).unwrap();
        // The default policy (MAJORITY Endorsement) needs two of three organizations.
        let two = ["Org1MSP", "Org2MSP"];
        assert_eq!(
            failure(&test_tx("kv", vec![writes("kv", "k")], &two)),
            Ok(())
        );
        let e = failure(&test_tx("kv", vec![writes("kv", "k")], &["Org1MSP"])).unwrap_err();
        assert_eq!(
            e,
            PolicyFailure::ChaincodePolicy {
                namespace: "kv".into()
            }
        );
        assert_eq!(e.to_string(), "chaincode policy of kv not satisfied");
        let mut private = writes("kv", "k");
        private.kv.writes.clear();
        private.collections.push(CollectionRwSet {
            name: "secret".into(),
            hashed: medledger_proto::kvrwset::HashedRwSet {
                hashed_writes: vec![Default::default()],
                ..Default::default()
            },
            pvt_rwset_hash: Vec::new(),
        });
        let e = failure(&test_tx("kv", vec![private], &two)).unwrap_err();
        assert_eq!(
            e,
            PolicyFailure::UndefinedCollection {
                namespace: "kv".into(),
                collection: "secret".into()
            }
        );
        assert_eq!(e.to_string(), "collection secret of kv is not defined");
        // A chaincode writing `_lifecycle`: the lifecycle's refusal, displayed as it is.
        let e = failure(&test_tx(
            "kv",
            vec![
                writes("kv", "k"),
                writes(crate::lifecycle::NAMESPACE, "other"),
            ],
            &two,
        ))
        .unwrap_err();
        assert_eq!(
            e,
            PolicyFailure::Lifecycle(crate::lifecycle::LifecycleRefusal::ForeignChaincode {
                chaincode: "kv".into()
            })
        );
        assert_eq!(
            e.to_string(),
            "chaincode kv may not write the _lifecycle namespace"
        );
    }
}
