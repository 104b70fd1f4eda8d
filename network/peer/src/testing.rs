//! Test fixtures (feature `test-utils`): endorser transactions built exactly as Fabric builds
//! them (proposal hash, `Endorsement.signature = Sign(proposal_response_payload ‖ endorser)`,
//! creator-signed envelope), with real signatures of test identities, plus read-write set
//! helpers and orderer-signed blocks.

#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::time::SystemTime;

use medledger_channel::block;
use medledger_channel::testing::TestChannel;
use medledger_msp::crypto::sha256;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::TxId;
use medledger_proto::common::{
    Block, ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader,
};
use medledger_proto::kvrwset::{
    HashedRwSet, KvMetadataEntry, KvMetadataWrite, KvRead, KvReadHash, KvWrite, KvWriteHash,
    KvrwSet, QueryReads, RangeQueryInfo, Version, range_query_info,
};
use medledger_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeEndorsedAction, ChaincodeEvent,
    ChaincodeHeaderExtension, ChaincodeId, ChaincodeProposalPayload, Endorsement,
    ProposalResponsePayload, Response, Transaction, TransactionAction,
};
use medledger_proto::rwset::{
    CollectionHashedReadWriteSet, CollectionPvtReadWriteSet, NsPvtReadWriteSet, NsReadWriteSet,
    TxPvtReadWriteSet, TxReadWriteSet,
};
use prost::Message;

/// A fresh nonce for a proposal.
pub fn nonce() -> Vec<u8> {
    medledger_channel::testing::rand_nonce().to_vec()
}

pub fn read(key: &str, version: Option<(u64, u64)>) -> KvRead {
    KvRead {
        key: key.into(),
        version: version.map(|(block_num, tx_num)| Version { block_num, tx_num }),
    }
}

pub fn write(key: &str, value: &[u8]) -> KvWrite {
    KvWrite {
        key: key.into(),
        is_delete: false,
        value: value.to_vec(),
    }
}

pub fn delete(key: &str) -> KvWrite {
    KvWrite {
        key: key.into(),
        is_delete: true,
        value: Vec::new(),
    }
}

/// A metadata write setting a key-level endorsement policy (`VALIDATION_PARAMETER`).
pub fn key_policy(key: &str, policy: &str) -> KvMetadataWrite {
    let p: medledger_msp::policy::SignaturePolicy = policy.parse().expect("policy");
    KvMetadataWrite {
        key: key.into(),
        entries: vec![KvMetadataEntry {
            name: crate::validator::VALIDATION_PARAMETER.into(),
            value: p.to_envelope().encode_to_vec(),
        }],
    }
}

/// A range query over `[start, end)` that returned `reads` and was exhausted.
pub fn range(start: &str, end: &str, reads: Vec<KvRead>) -> RangeQueryInfo {
    RangeQueryInfo {
        start_key: start.into(),
        end_key: end.into(),
        itr_exhausted: true,
        reads_info: Some(range_query_info::ReadsInfo::RawReads(QueryReads {
            kv_reads: reads,
        })),
    }
}

pub fn ns(namespace: &str, kv: KvrwSet) -> NsReadWriteSet {
    NsReadWriteSet {
        namespace: namespace.into(),
        rwset: kv.encode_to_vec(),
        collection_hashed_rwset: Vec::new(),
    }
}

/// A collection's private rwset (writes only) and the hashed form the block carries.
pub fn private_writes(
    collection: &str,
    writes: Vec<KvWrite>,
    hashed_reads: Vec<(String, Option<(u64, u64)>)>,
) -> (CollectionHashedReadWriteSet, CollectionPvtReadWriteSet) {
    let hashed = HashedRwSet {
        hashed_reads: hashed_reads
            .iter()
            .map(|(k, v)| KvReadHash {
                key_hash: sha256(k.as_bytes()).to_vec(),
                version: v.map(|(block_num, tx_num)| Version { block_num, tx_num }),
            })
            .collect(),
        hashed_writes: writes
            .iter()
            .map(|w| KvWriteHash {
                key_hash: sha256(w.key.as_bytes()).to_vec(),
                is_delete: w.is_delete,
                value_hash: if w.is_delete {
                    Vec::new()
                } else {
                    sha256(&w.value).to_vec()
                },
                is_purge: false,
            })
            .collect(),
        metadata_writes: Vec::new(),
    };
    let pvt = KvrwSet {
        writes,
        ..Default::default()
    }
    .encode_to_vec();
    (
        CollectionHashedReadWriteSet {
            collection_name: collection.into(),
            hashed_rwset: hashed.encode_to_vec(),
            pvt_rwset_hash: sha256(&pvt).to_vec(),
        },
        CollectionPvtReadWriteSet {
            collection_name: collection.into(),
            rwset: pvt,
        },
    )
}

/// The private rwset of one transaction from its collections.
pub fn tx_private(
    namespace: &str,
    collections: Vec<CollectionPvtReadWriteSet>,
) -> TxPvtReadWriteSet {
    TxPvtReadWriteSet {
        data_model: 0,
        ns_pvt_rwset: vec![NsPvtReadWriteSet {
            namespace: namespace.into(),
            collection_pvt_rwset: collections,
        }],
    }
}

/// What a test transaction does.
#[derive(Clone, Debug, Default)]
pub struct TxSpec {
    /// Invoked chaincode.
    pub chaincode: String,
    /// Read-write sets by namespace.
    pub rwsets: Vec<NsReadWriteSet>,
    /// Chaincode event, if any.
    pub event: Option<(String, Vec<u8>)>,
}

impl TxSpec {
    /// A transaction of `chaincode` with one namespace rwset of the same name.
    pub fn kv(chaincode: &str, kv: KvrwSet) -> Self {
        TxSpec {
            chaincode: chaincode.into(),
            rwsets: vec![ns(chaincode, kv)],
            event: None,
        }
    }
}

/// An endorsed transaction envelope: proposal by `creator`, endorsed by `endorsers`, signed
/// by `creator`. Returns the envelope and its tx id.
pub fn endorsed_tx(
    channel_id: &str,
    creator: &SigningIdentity,
    spec: &TxSpec,
    endorsers: &[&SigningIdentity],
) -> (Envelope, String) {
    endorsed_tx_at(channel_id, creator, spec, endorsers, SystemTime::now())
}

/// As [`endorsed_tx`] with the channel header timestamped `at`.
pub fn endorsed_tx_at(
    channel_id: &str,
    creator: &SigningIdentity,
    spec: &TxSpec,
    endorsers: &[&SigningIdentity],
    at: SystemTime,
) -> (Envelope, String) {
    let nonce = nonce();
    let tx_id = TxId::compute(&nonce, creator.serialized()).to_string();
    let cc_id = ChaincodeId {
        name: spec.chaincode.clone(),
        ..Default::default()
    };
    let channel_header = ChannelHeader {
        r#type: HeaderType::EndorserTransaction as i32,
        channel_id: channel_id.into(),
        tx_id: tx_id.clone(),
        timestamp: Some(prost_types::Timestamp::from(at)),
        extension: ChaincodeHeaderExtension {
            chaincode_id: Some(cc_id.clone()),
        }
        .encode_to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let signature_header = SignatureHeader {
        creator: creator.serialized().to_vec(),
        nonce,
    }
    .encode_to_vec();
    let cpp = ChaincodeProposalPayload {
        input: b"invoke".to_vec(),
        transient_map: Default::default(),
    }
    .encode_to_vec();
    let proposal_hash = sha256(&[channel_header.as_slice(), &signature_header, &cpp].concat());
    let results = TxReadWriteSet {
        data_model: 0,
        ns_rwset: spec.rwsets.clone(),
    }
    .encode_to_vec();
    let events = spec
        .event
        .as_ref()
        .map(|(name, payload)| {
            ChaincodeEvent {
                chaincode_id: spec.chaincode.clone(),
                tx_id: tx_id.clone(),
                event_name: name.clone(),
                payload: payload.clone(),
            }
            .encode_to_vec()
        })
        .unwrap_or_default();
    let prp = ProposalResponsePayload {
        proposal_hash: proposal_hash.to_vec(),
        extension: ChaincodeAction {
            results,
            events,
            response: Some(Response {
                status: 200,
                ..Default::default()
            }),
            chaincode_id: Some(cc_id),
        }
        .encode_to_vec(),
    }
    .encode_to_vec();
    let endorsements = endorsers
        .iter()
        .map(|e| Endorsement {
            endorser: e.serialized().to_vec(),
            signature: e
                .sign(&[prp.as_slice(), e.serialized()].concat())
                .expect("sign"),
        })
        .collect();
    let cap = ChaincodeActionPayload {
        chaincode_proposal_payload: cpp,
        action: Some(ChaincodeEndorsedAction {
            proposal_response_payload: prp,
            endorsements,
        }),
    };
    let tx = Transaction {
        actions: vec![TransactionAction {
            header: signature_header.clone(),
            payload: cap.encode_to_vec(),
        }],
    };
    let payload = Payload {
        header: Some(Header {
            channel_header,
            signature_header,
        }),
        data: tx.encode_to_vec(),
    }
    .encode_to_vec();
    let envelope = Envelope {
        signature: creator.sign(&payload).expect("sign"),
        payload,
    };
    (envelope, tx_id)
}

/// Block `number` chained to `previous_hash` with `envelopes`, signed by consenters
/// `signers` (round 0).
pub fn signed_block(
    channel: &TestChannel,
    number: u64,
    previous_hash: &[u8],
    envelopes: &[Envelope],
    signers: &[u32],
) -> Block {
    let mut b = block::new_block(
        number,
        previous_hash,
        envelopes.iter().map(Message::encode_to_vec).collect(),
    );
    channel.sign_block(&mut b, signers, 0);
    b
}
