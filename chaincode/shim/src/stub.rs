//! The chaincode stub: a contract's view of one transaction.

use std::collections::BTreeMap;
use std::time::SystemTime;

use medledger_msp::cert::Certificate;
use medledger_msp::identity::deserialize_identity;
use medledger_proto::common::{ChannelHeader, Header, SignatureHeader};
use medledger_proto::protos::{ChaincodeProposalPayload, Proposal, SignedProposal};
use prost::Message;

use crate::error::{ChaincodeError, Result};

/// One key and its value from a range query (`queryresult.KV`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Vec<u8>,
}

/// One page of a paginated range query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Results, in key order.
    pub results: Vec<Kv>,
    /// Bookmark to pass for the next page; empty when there are no more.
    pub bookmark: String,
    /// Number of records fetched (`QueryResponseMetadata.fetched_records_count`).
    pub fetched: i32,
}

/// One historical change of a key (`queryresult.KeyModification`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyModification {
    /// Transaction that made the change.
    pub tx_id: String,
    /// Value written (empty for a delete).
    pub value: Vec<u8>,
    /// Transaction timestamp, if known.
    pub timestamp: Option<SystemTime>,
    /// Whether the change deleted the key.
    pub is_delete: bool,
}

/// The event a transaction sets (one per transaction; the last `set` wins, as in Fabric).
#[derive(Debug, Default)]
pub struct EventSlot(std::sync::Mutex<Option<(String, Vec<u8>)>>);

impl EventSlot {
    /// Sets the event.
    ///
    /// # Errors
    /// [`ChaincodeError::InvalidArgument`] for an empty name.
    pub fn set(&self, name: &str, payload: &[u8]) -> Result<()> {
        if name.is_empty() {
            return Err(ChaincodeError::InvalidArgument(
                "event name must not be empty".into(),
            ));
        }
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some((name.to_owned(), payload.to_vec()));
        Ok(())
    }

    /// Takes the event (name, payload), if one was set.
    pub fn take(&self) -> Option<(String, Vec<u8>)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The identity that submitted the proposal: MSP id and certificate (with Fabric CA
/// attributes). The peer has validated it before invoking the chaincode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creator {
    /// MSP id.
    pub msp_id: String,
    /// Certificate.
    pub cert: Certificate,
    /// Serialized `msp.SerializedIdentity` as sent.
    pub serialized: Vec<u8>,
}

impl Creator {
    /// A Fabric CA attribute of the certificate (e.g. `ehr.role`).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.cert.attribute(name)
    }

    /// A stable id of the identity: `MSPID/hex(SHA-256(certificate DER))`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}",
            self.msp_id,
            hex::encode(medledger_msp::crypto::sha256(self.cert.der()))
        )
    }
}

/// What a transaction carries besides its arguments, decoded once from the signed proposal.
#[derive(Debug, Clone, Default)]
pub struct TxContext {
    /// Channel id.
    pub channel_id: String,
    /// Transaction id.
    pub tx_id: String,
    /// Invocation arguments (function name first).
    pub args: Vec<Vec<u8>>,
    /// Transient data (never written to the ledger).
    pub transient: BTreeMap<String, Vec<u8>>,
    /// Creator, when the proposal carried one.
    pub creator: Option<Creator>,
    /// Proposal timestamp.
    pub timestamp: Option<SystemTime>,
}

impl TxContext {
    /// Decodes creator, transient map and timestamp from a signed proposal (already validated
    /// by the peer).
    ///
    /// # Errors
    /// [`ChaincodeError::Context`] if the proposal does not decode.
    pub fn from_signed_proposal(
        channel_id: String,
        tx_id: String,
        args: Vec<Vec<u8>>,
        signed: Option<&SignedProposal>,
    ) -> Result<Self> {
        let mut ctx = TxContext {
            channel_id,
            tx_id,
            args,
            ..TxContext::default()
        };
        let Some(signed) = signed else {
            return Ok(ctx);
        };
        let bad = |what: &str| ChaincodeError::Context(format!("proposal {what} does not decode"));
        let proposal =
            Proposal::decode(signed.proposal_bytes.as_slice()).map_err(|_| bad("bytes"))?;
        let header = Header::decode(proposal.header.as_slice()).map_err(|_| bad("header"))?;
        let ch = ChannelHeader::decode(header.channel_header.as_slice())
            .map_err(|_| bad("channel header"))?;
        ctx.timestamp = ch.timestamp.and_then(|t| SystemTime::try_from(t).ok());
        let sh = SignatureHeader::decode(header.signature_header.as_slice())
            .map_err(|_| bad("signature header"))?;
        if !sh.creator.is_empty() {
            let (msp_id, cert) = deserialize_identity(&sh.creator)
                .map_err(|e| ChaincodeError::Context(format!("creator: {e}")))?;
            ctx.creator = Some(Creator {
                msp_id,
                cert,
                serialized: sh.creator,
            });
        }
        let payload = ChaincodeProposalPayload::decode(proposal.payload.as_slice())
            .map_err(|_| bad("payload"))?;
        ctx.transient = payload.transient_map.into_iter().collect();
        Ok(ctx)
    }
}

/// A contract's access to the ledger during one transaction, as Fabric's `ChaincodeStubInterface`.
///
/// Reads see the committed world state (and, as in Fabric, not this transaction's own
/// writes); writes go into the transaction's read-write set and take effect only if the
/// transaction commits valid. Private data lives in collections: only the hash of a private
/// write reaches the shared ledger. Methods are synchronous: in the shim each call is one
/// round trip to the peer.
pub trait ChaincodeStub: Send + Sync {
    /// The transaction's context (ids, arguments, transient data, creator, timestamp).
    fn context(&self) -> &TxContext;

    /// Transaction id.
    fn tx_id(&self) -> &str {
        &self.context().tx_id
    }

    /// Channel id.
    fn channel_id(&self) -> &str {
        &self.context().channel_id
    }

    /// Raw arguments, function name first.
    fn args(&self) -> &[Vec<u8>] {
        &self.context().args
    }

    /// Function name and string parameters (arguments that are not UTF-8 are replaced lossily).
    fn function_and_parameters(&self) -> (String, Vec<String>) {
        let mut args = self
            .args()
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned());
        let function = args.next().unwrap_or_default();
        (function, args.collect())
    }

    /// The proposal's transient map.
    fn transient(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.context().transient
    }

    /// The proposal creator.
    ///
    /// # Errors
    /// [`ChaincodeError::Context`] if the proposal carried none.
    fn creator(&self) -> Result<&Creator> {
        self.context()
            .creator
            .as_ref()
            .ok_or_else(|| ChaincodeError::Context("no creator in the proposal".into()))
    }

    /// Proposal timestamp (the same on every endorser).
    ///
    /// # Errors
    /// [`ChaincodeError::Context`] if absent.
    fn tx_timestamp(&self) -> Result<SystemTime> {
        self.context()
            .timestamp
            .ok_or_else(|| ChaincodeError::Context("no timestamp in the proposal".into()))
    }

    /// Value of `key`, `None` if absent.
    ///
    /// # Errors
    /// [`ChaincodeError`] if the peer refuses or the stream fails.
    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes `key`.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`]; also for an empty key.
    fn put_state(&self, key: &str, value: &[u8]) -> Result<()>;

    /// Deletes `key`.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn del_state(&self, key: &str) -> Result<()>;

    /// All keys in `[start, end)` (empty `end` = to the end), in key order. The range is
    /// recorded so the committer can detect phantoms.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn get_state_by_range(&self, start: &str, end: &str) -> Result<Vec<Kv>>;

    /// One page of `[start, end)`: at most `page_size` results after `bookmark` (empty for the
    /// first page).
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn get_state_by_range_with_pagination(
        &self,
        start: &str,
        end: &str,
        page_size: i32,
        bookmark: &str,
    ) -> Result<Page>;

    /// Every committed change of `key`, newest first (Fabric's order).
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn get_history_for_key(&self, key: &str) -> Result<Vec<KeyModification>>;

    /// Private value of `key` in `collection` (only on peers of member organizations).
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn get_private_data(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes a private value: the data goes to member peers, its hash into the block.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn put_private_data(&self, collection: &str, key: &str, value: &[u8]) -> Result<()>;

    /// Deletes a private value.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn del_private_data(&self, collection: &str, key: &str) -> Result<()>;

    /// Purges a private value and its history from member peers' stores; the hash stays on
    /// the ledger.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn purge_private_data(&self, collection: &str, key: &str) -> Result<()>;

    /// SHA-256 of a private value, readable on every peer.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn get_private_data_hash(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Sets the key-level endorsement policy of `key` (serialized
    /// `common.SignaturePolicyEnvelope`, Fabric's `VALIDATION_PARAMETER` metadata); an empty
    /// collection means public state.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn set_validation_parameter(&self, collection: &str, key: &str, policy: &[u8]) -> Result<()>;

    /// The key-level endorsement policy of `key`, if set.
    ///
    /// # Errors
    /// As [`ChaincodeStub::get_state`].
    fn get_validation_parameter(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Sets the transaction's event (one per transaction; the last call wins, as in Fabric).
    ///
    /// # Errors
    /// [`ChaincodeError::InvalidArgument`] for an empty name.
    fn set_event(&self, name: &str, payload: &[u8]) -> Result<()>;
}
