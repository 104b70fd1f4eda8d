//! Stateless checks of one transaction of a block, including every signature: what can run
//! in parallel across the block (Fabric's `txvalidator` message validation and the signature
//! part of VSCC).

use std::collections::BTreeSet;
use std::time::SystemTime;

use medledger_channel::ChannelConfig;
use medledger_channel::envelope;
use medledger_msp::crypto::sha256;
use medledger_msp::policy::Signer;
use medledger_proto::TxId;
use medledger_proto::common::{Envelope, HeaderType, SignatureHeader};
use medledger_proto::kvrwset::{HashedRwSet, KvrwSet, range_query_info::ReadsInfo};
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ProposalResponsePayload, Transaction, TxValidationCode,
};
use medledger_proto::rwset::TxReadWriteSet;
use prost::Message;

pub use medledger_channel::bft::MAX_TX_TIME_SKEW;

/// The private (hashed) part of a namespace's read-write set for one collection.
#[derive(Debug, Clone)]
pub struct CollectionRwSet {
    /// Collection name.
    pub name: String,
    /// Hashed reads and writes (key hashes, value hashes).
    pub hashed: HashedRwSet,
    /// SHA-256 of the collection's private `KVRWSet` bytes.
    pub pvt_rwset_hash: Vec<u8>,
}

/// One namespace's read-write set.
#[derive(Debug, Clone)]
pub struct NamespaceRwSet {
    /// Namespace (chaincode name).
    pub namespace: String,
    /// Public reads, range queries, writes, metadata writes.
    pub kv: KvrwSet,
    /// Collections touched.
    pub collections: Vec<CollectionRwSet>,
}

/// An endorser transaction whose structure, creator signature and endorsement signatures were
/// checked; policy and MVCC are still to be checked against state.
#[derive(Debug, Clone)]
pub struct EndorserTx {
    /// Authenticated tx id.
    pub tx_id: TxId,
    /// Channel-header timestamp.
    pub timestamp: Option<prost_types::Timestamp>,
    /// The invoked chaincode.
    pub chaincode: String,
    /// Read-write sets by namespace.
    pub rwsets: Vec<NamespaceRwSet>,
    /// Endorsers whose identity is valid and whose signature over
    /// `proposal_response_payload ‖ endorser` verified, each identity once.
    pub endorsers: Vec<Signer>,
}

/// Result of the stateless phase for one transaction.
#[derive(Debug, Clone)]
pub enum Prevalidated {
    /// Invalid whatever the state.
    Invalid {
        /// Validation code.
        code: TxValidationCode,
        /// The tx id if the creator's signature over it verified (so it can be indexed).
        tx_id: Option<TxId>,
        /// Why (ids and names only).
        reason: String,
    },
    /// Passed; state checks follow.
    Endorser(Box<EndorserTx>),
    /// A configuration update whose signatures satisfy the policy it needs under the current
    /// configuration; valid if it is alone in its block and its tx_id is new.
    Config {
        /// Authenticated tx id.
        tx_id: TxId,
        /// The configuration it leads to.
        config: Box<ChannelConfig>,
    },
}

fn invalid(
    code: TxValidationCode,
    tx_id: Option<&TxId>,
    reason: impl Into<String>,
) -> Prevalidated {
    Prevalidated::Invalid {
        code,
        tx_id: tx_id.cloned(),
        reason: reason.into(),
    }
}

/// Checks one block entry: envelope and headers (Fabric's `msgvalidation`), creator signature
/// and tx_id; for a `CONFIG_UPDATE`, the channel's `Writers` policy and
/// [`ChannelConfig::apply_update`]; for an endorser transaction, a single endorser action with a proposal hash that matches its headers, the
/// decodable read-write set, and every endorsement signature.
///
/// An endorser transaction in a block with an ordering time (`ordered`, signed by the
/// consenters: `medledger_channel::bft::ordering_time`) is judged at that time: its
/// channel-header timestamp must be within [`MAX_TX_TIME_SKEW`] of it
/// (`BAD_CHANNEL_HEADER` otherwise), and its creator and endorsers must be valid then (ADR
/// 0030). Without one (blocks decided before ordering times existed), and for config updates
/// (which orderers check at their timestamp, ADR 0018), identities are validated at the
/// channel-header timestamp. Either way every peer, and every replay, reaches the same verdict
/// (Fabric reaches determinism by ignoring expiry at commit instead).
pub fn prevalidate(
    entry: &[u8],
    config: &ChannelConfig,
    ordered: Option<SystemTime>,
) -> Prevalidated {
    use TxValidationCode as C;
    let Ok(env) = Envelope::decode(entry) else {
        return invalid(
            C::InvalidOtherReason,
            None,
            "block entry is not an envelope",
        );
    };
    let parsed = match envelope::parse(&env) {
        Ok(p) => p,
        Err(e) => return invalid(e.code, None, e.reason),
    };
    let Some(ts) = parsed.channel_header.timestamp else {
        return invalid(C::BadChannelHeader, None, "channel header has no timestamp");
    };
    let Ok(at) = SystemTime::try_from(ts) else {
        return invalid(
            C::BadChannelHeader,
            None,
            "channel header timestamp out of range",
        );
    };
    let at = match ordered {
        Some(ordered) if parsed.header_type() == Some(HeaderType::EndorserTransaction) => {
            let skew = at.duration_since(ordered).unwrap_or_else(|e| e.duration());
            if skew > MAX_TX_TIME_SKEW {
                // No tx_id: the signature is not checked yet, so it is not indexed.
                return invalid(
                    C::BadChannelHeader,
                    None,
                    format!(
                        "transaction timestamp is {}s away from the block's ordering time (at most {}s)",
                        skew.as_secs(),
                        MAX_TX_TIME_SKEW.as_secs()
                    ),
                );
            }
            ordered
        }
        _ => at,
    };
    let checked = match envelope::check(&env, config, at) {
        Ok(c) => c,
        Err(e) => return invalid(e.code, None, e.reason),
    };
    let creator = checked.creator;
    let parsed = checked.parsed;
    let tx_id = checked.tx_id;
    let id = Some(&tx_id);
    if parsed.header_type() == Some(HeaderType::ConfigUpdate) {
        if !config.evaluate("Writers", &[creator.signer()]) {
            return invalid(
                C::InvalidConfigTransaction,
                id,
                "the submitter does not satisfy the channel Writers policy",
            );
        }
        return match config.apply_update(&parsed.payload.data, at) {
            Ok(next) => Prevalidated::Config {
                tx_id,
                config: Box::new(next),
            },
            Err(e) => invalid(e.validation_code(), id, e.to_string()),
        };
    }
    if parsed.header_type() != Some(HeaderType::EndorserTransaction) {
        return invalid(
            C::UnknownTxType,
            id,
            "only endorser transactions and config updates are committed",
        );
    }
    let Ok(tx) = Transaction::decode(parsed.payload.data.as_slice()) else {
        return invalid(C::BadPayload, id, "payload data is not a Transaction");
    };
    let action = match tx.actions.as_slice() {
        [] => return invalid(C::NilTxaction, id, "transaction has no action"),
        [a] => a,
        _ => return invalid(C::UnsupportedTxPayload, id, "more than one action"),
    };
    let bad_tx = |reason: &str| invalid(C::InvalidEndorserTransaction, id, reason);
    let Ok(action_header) = SignatureHeader::decode(action.header.as_slice()) else {
        return bad_tx("action header does not decode");
    };
    if action_header != parsed.signature_header {
        return bad_tx("action header differs from the envelope's signature header");
    }
    let Ok(cap) = ChaincodeActionPayload::decode(action.payload.as_slice()) else {
        return bad_tx("action payload does not decode");
    };
    let Some(endorsed) = cap.action else {
        return bad_tx("no endorsed action");
    };
    let Ok(prp) = ProposalResponsePayload::decode(endorsed.proposal_response_payload.as_slice())
    else {
        return invalid(
            C::BadResponsePayload,
            id,
            "proposal response payload does not decode",
        );
    };
    let channel_header_bytes = parsed
        .payload
        .header
        .as_ref()
        .map(|h| h.channel_header.as_slice())
        .unwrap_or_default();
    let proposal_hash = sha256(
        &[
            channel_header_bytes,
            action.header.as_slice(),
            cap.chaincode_proposal_payload.as_slice(),
        ]
        .concat(),
    );
    if prp.proposal_hash != proposal_hash {
        return bad_tx("proposal hash does not match the transaction's headers and proposal");
    }
    let Ok(cc_action) = ChaincodeAction::decode(prp.extension.as_slice()) else {
        return invalid(
            C::BadResponsePayload,
            id,
            "chaincode action does not decode",
        );
    };
    let chaincode = cc_action
        .chaincode_id
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    if !valid_name(&chaincode) {
        return bad_tx("missing or invalid chaincode name");
    }
    let rwsets = match decode_rwset(&cc_action.results) {
        Ok(r) => r,
        Err(reason) => return invalid(C::BadRwset, id, reason),
    };
    let mut endorsers: Vec<Signer> = Vec::with_capacity(endorsed.endorsements.len());
    let mut seen = BTreeSet::new();
    for e in &endorsed.endorsements {
        let msg = [endorsed.proposal_response_payload.as_slice(), &e.endorser].concat();
        // As Fabric (`SignatureSetToValidIdentities`), an endorsement that does not verify
        // is dropped; the policy then decides.
        match config.msps().verify(&e.endorser, &msg, &e.signature, at) {
            Ok(identity) => {
                if seen.insert(*identity.id()) {
                    endorsers.push(identity.signer());
                }
            }
            Err(err) => {
                tracing::debug!(target: "peer::committer", tx_id = %tx_id, error = %err, "endorsement dropped");
            }
        }
    }
    Prevalidated::Endorser(Box::new(EndorserTx {
        tx_id,
        timestamp: Some(ts),
        chaincode,
        rwsets,
        endorsers,
    }))
}

pub use medledger_peer_config::definitions::valid_name;

fn decode_rwset(bytes: &[u8]) -> Result<Vec<NamespaceRwSet>, &'static str> {
    let txrw = TxReadWriteSet::decode(bytes).map_err(|_| "results are not a TxReadWriteSet")?;
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(txrw.ns_rwset.len());
    for ns in txrw.ns_rwset {
        if !valid_name(&ns.namespace) || !names.insert(ns.namespace.clone()) {
            return Err("invalid or repeated namespace");
        }
        let kv = KvrwSet::decode(ns.rwset.as_slice()).map_err(|_| "KVRWSet does not decode")?;
        if kv
            .range_queries_info
            .iter()
            .any(|r| !matches!(r.reads_info, Some(ReadsInfo::RawReads(_)) | None))
        {
            return Err("merkle-summarised range query reads are not supported");
        }
        let mut colls = BTreeSet::new();
        let mut collections = Vec::with_capacity(ns.collection_hashed_rwset.len());
        for c in ns.collection_hashed_rwset {
            if !valid_name(&c.collection_name) || !colls.insert(c.collection_name.clone()) {
                return Err("invalid or repeated collection");
            }
            let hashed = HashedRwSet::decode(c.hashed_rwset.as_slice())
                .map_err(|_| "hashed rwset does not decode")?;
            collections.push(CollectionRwSet {
                name: c.collection_name,
                hashed,
                pvt_rwset_hash: c.pvt_rwset_hash,
            });
        }
        out.push(NamespaceRwSet {
            namespace: ns.namespace,
            kv,
            collections,
        });
    }
    Ok(out)
}

/// Whether a block entry is a `CONFIG_UPDATE` envelope (decoded without any check).
pub fn is_config_update(entry: &[u8]) -> bool {
    Envelope::decode(entry)
        .ok()
        .and_then(|env| envelope::parse(&env).ok())
        .and_then(|p| p.header_type())
        == Some(HeaderType::ConfigUpdate)
}

/// The read-write sets of an endorser transaction and the MSP ids of its endorsers, decoded
/// without any check (for a transaction already validated and committed, e.g. to find the
/// on-chain hashes of private data to reconcile).
pub fn decode_committed(entry: &[u8]) -> Option<(Vec<NamespaceRwSet>, Vec<String>)> {
    let env = Envelope::decode(entry).ok()?;
    let parsed = envelope::parse(&env).ok()?;
    let tx = Transaction::decode(parsed.payload.data.as_slice()).ok()?;
    let cap = ChaincodeActionPayload::decode(tx.actions.first()?.payload.as_slice()).ok()?;
    let endorsed = cap.action?;
    let prp =
        ProposalResponsePayload::decode(endorsed.proposal_response_payload.as_slice()).ok()?;
    let cca = ChaincodeAction::decode(prp.extension.as_slice()).ok()?;
    let rwsets = decode_rwset(&cca.results).ok()?;
    let endorsers = endorsed
        .endorsements
        .iter()
        .filter_map(|e| {
            medledger_msp::identity::deserialize_identity(&e.endorser)
                .ok()
                .map(|(msp, _)| msp)
        })
        .collect();
    Some((rwsets, endorsers))
}

/// A transaction invoking `chaincode` with `rwsets`, endorsed by one peer of each MSP of
/// `peers_of`, for tests of the state checks.
#[cfg(test)]
pub(crate) fn test_tx(
    chaincode: &str,
    rwsets: Vec<NamespaceRwSet>,
    peers_of: &[&str],
) -> EndorserTx {
    EndorserTx {
        tx_id: TxId::new("ab".repeat(32)).unwrap_or_else(|e| panic!("{e}")),
        timestamp: None,
        chaincode: chaincode.into(),
        rwsets,
        endorsers: peers_of
            .iter()
            .enumerate()
            .map(|(i, msp_id)| Signer {
                msp_id: (*msp_id).into(),
                ou: Some(medledger_msp::ou::NodeOu::Peer),
                id: [i as u8; 32],
            })
            .collect(),
    }
}
