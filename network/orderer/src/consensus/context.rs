//! Our Malachite `Context`: what the Tendermint core is instantiated with.
//!
//! - height = block number ([`Height`], starts at 1: block 0 is the genesis config block);
//! - address = consenter id from the channel configuration ([`ConsenterId`]);
//! - value = the proposed block's header ([`BatchHeader`]); its id is Fabric's block header
//!   hash ([`BlockHash`]). The envelopes travel as proposal parts and are kept by the node,
//!   keyed by that hash (`ValuePayload::ProposalAndParts`);
//! - signatures = ECDSA P-256 DER over `medledger_channel::bft::{vote_sign_bytes,
//!   proposal_sign_bytes}`, which include channel, height, round and vote type;
//! - proposer = round robin: consenter index `(height + round) mod n` in id order.
//!
//! Nothing here is public outside the crate: the engine's API speaks protobuf messages.

use std::fmt;

use arc_malachitebft_core_types as mt;
use mt::{NilOrVal, Round, VoteType};

/// Block number as a consensus height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// Consenter id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct ConsenterId(pub u32);

impl fmt::Display for ConsenterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "consenter-{}", self.0)
    }
}

impl mt::Address for ConsenterId {}

/// A block header hash (32 bytes): the id of a proposed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockHash(pub [u8; 32]);

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..6]))
    }
}

/// The value consensus decides: the header of the next block (its envelopes travel as
/// proposal parts) and its ordering time. Its id is
/// `medledger_channel::bft::value_id(Fabric's block header hash, time_ms)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BatchHeader {
    /// Block number (= consensus height).
    pub number: u64,
    /// Header hash of the previous block.
    pub previous_hash: [u8; 32],
    /// SHA-256 of the concatenated envelopes (Fabric's data hash).
    pub data_hash: [u8; 32],
    /// Ordering time the proposer chose, ms since the Unix epoch (`BlockCommit.time_ms`).
    pub time_ms: u64,
}

impl BatchHeader {
    /// The consensus value id: [`medledger_channel::bft::value_id`] of Fabric's header hash
    /// of this header and the ordering time.
    pub fn hash(&self) -> [u8; 32] {
        let header_hash =
            medledger_channel::block::header_hash(&medledger_proto::common::BlockHeader {
                number: self.number,
                previous_hash: self.previous_hash.to_vec(),
                data_hash: self.data_hash.to_vec(),
            });
        medledger_channel::bft::value_id(&header_hash, self.time_ms)
    }
}

impl mt::Value for BatchHeader {
    type Id = BlockHash;

    fn id(&self) -> BlockHash {
        BlockHash(self.hash())
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Vote {
    pub vote_type: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<BlockHash>,
    pub voter: ConsenterId,
}

impl mt::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockHash> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockHash> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &ConsenterId {
        &self.voter
    }
    // Vote extensions are disabled (Extension = ()).
    fn extension(&self) -> Option<&mt::SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<mt::SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _extension: mt::SignedExtension<Ctx>) -> Self {
        self
    }
}

/// A proposal of a block header for (height, round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: BatchHeader,
    pub pol_round: Round,
    pub proposer: ConsenterId,
}

impl mt::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BatchHeader {
        &self.value
    }
    fn take_value(self) -> BatchHeader {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &ConsenterId {
        &self.proposer
    }
}

/// Proposal parts are streamed and assembled by the node, never handed to the core; the core
/// only needs the type to exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Part;

impl mt::ProposalPart<Ctx> for Part {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// A consenter as the core sees it: id, public key, voting power 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Validator {
    pub id: ConsenterId,
    /// Uncompressed SEC 1 P-256 point.
    pub public_key: Vec<u8>,
}

impl mt::Validator<Ctx> for Validator {
    fn address(&self) -> &ConsenterId {
        &self.id
    }
    fn public_key(&self) -> &Vec<u8> {
        &self.public_key
    }
    fn voting_power(&self) -> mt::VotingPower {
        1
    }
}

/// The consenter set, sorted by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ValidatorSet(pub Vec<Validator>);

impl ValidatorSet {
    /// From the channel configuration's consenter set (already sorted by id, non-empty).
    pub(super) fn from_consenters(set: &medledger_channel::config::ConsenterSet) -> Self {
        ValidatorSet(
            set.iter()
                .map(|c| Validator {
                    id: ConsenterId(c.id),
                    public_key: c.public_key().to_vec(),
                })
                .collect(),
        )
    }

    /// Round-robin proposer for (height, round): index (height + round) mod n.
    pub(super) fn proposer(&self, height: u64, round: u32) -> Option<&Validator> {
        let n = self.0.len() as u64;
        if n == 0 {
            return None;
        }
        let i = (height % n + u64::from(round) % n) % n;
        self.0.get(i as usize)
    }
}

impl mt::ValidatorSet<Ctx> for ValidatorSet {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn total_voting_power(&self) -> mt::VotingPower {
        self.0.len() as u64
    }
    fn get_by_address(&self, address: &ConsenterId) -> Option<&Validator> {
        self.0
            .binary_search_by_key(address, |v| v.id)
            .ok()
            .and_then(|i| self.0.get(i))
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.0.get(index)
    }
}

/// A DER ECDSA P-256 signature.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Signature(pub Vec<u8>);

/// The core never holds private keys: signing is an effect the node answers with its MSP
/// signing identity.
#[derive(Clone, Debug)]
pub(super) struct NoPrivateKey;

/// ECDSA P-256 as Fabric uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct EcdsaP256;

impl mt::SigningScheme for EcdsaP256 {
    type DecodingError = String;
    type Signature = Signature;
    type PublicKey = Vec<u8>;
    type PrivateKey = NoPrivateKey;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, String> {
        Ok(Signature(bytes.to_vec()))
    }
    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.clone()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<Vec<u8>, String> {
        Ok(bytes.to_vec())
    }
    fn encode_public_key(public_key: &Vec<u8>) -> Vec<u8> {
        public_key.clone()
    }
}

/// Consensus timeouts; `LinearTimeouts` with our configured values.
pub(super) type Timeouts = mt::LinearTimeouts;

/// The context.
#[derive(Clone, Debug)]
pub(super) struct Ctx;

impl mt::Context for Ctx {
    type Address = ConsenterId;
    type Height = Height;
    type ProposalPart = Part;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = Timeouts;
    type Value = BatchHeader;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = EcdsaP256;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        // The core never asks for the nil round; round 0 is used then. The set is never empty
        // (ConsenterSet guarantees it), so index 0 exists.
        let round = round.as_u32().unwrap_or(0);
        match validator_set.proposer(height.0, round) {
            Some(v) => v,
            None => &validator_set.0[0],
        }
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BatchHeader,
        pol_round: Round,
        address: ConsenterId,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockHash>,
        address: ConsenterId,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value,
            voter: address,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockHash>,
        address: ConsenterId,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value,
            voter: address,
        }
    }
}
