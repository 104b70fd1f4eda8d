//! Blocks as Fabric builds them (`protoutil/blockutils.go`).

use medledger_proto::common::{
    Block, BlockData, BlockHeader, BlockMetadata, BlockMetadataIndex, Metadata,
};
use prost::Message;
use sha2::{Digest, Sha256};

/// Number of metadata slots in a block (Fabric's `BlockMetadataIndex`: SIGNATURES,
/// LAST_CONFIG, TRANSACTIONS_FILTER, ORDERER, COMMIT_HASH).
pub const METADATA_SLOTS: usize = 5;

/// SHA-256 of the DER encoding of `SEQUENCE { INTEGER number, OCTET STRING previous_hash,
/// OCTET STRING data_hash }`: Fabric's `protoutil.BlockHeaderHash`, the value a block's
/// successor names as `previous_hash` and the id BFT consenters vote on.
pub fn header_hash(header: &BlockHeader) -> [u8; 32] {
    Sha256::digest(header_der(header)).into()
}

/// The DER bytes hashed by [`header_hash`] (Fabric's `protoutil.BlockHeaderBytes`).
pub fn header_der(header: &BlockHeader) -> Vec<u8> {
    let mut body = Vec::with_capacity(header.previous_hash.len() + header.data_hash.len() + 16);
    der_tlv(&mut body, 0x02, &der_uint(header.number));
    der_tlv(&mut body, 0x04, &header.previous_hash);
    der_tlv(&mut body, 0x04, &header.data_hash);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_tlv(&mut out, 0x30, &body);
    out
}

/// Minimal two's-complement big-endian encoding of a non-negative integer (DER INTEGER body).
fn der_uint(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut out = Vec::with_capacity(9);
    if bytes[first] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[first..]);
    out
}

fn der_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len_bytes = (len as u64).to_be_bytes();
        let first = len_bytes.iter().position(|&b| b != 0).unwrap_or(7);
        out.push(0x80 | (8 - first) as u8);
        out.extend_from_slice(&len_bytes[first..]);
    }
    out.extend_from_slice(value);
}

/// The block's data hash: SHA-256 of the entry count (u64 big-endian) followed, for each
/// entry, by its length (u64 big-endian) and its bytes.
///
/// Fabric's `protoutil.ComputeBlockDataHash` hashes the entries joined end to end, so
/// `[A, B]` and `[A‖B]` share a hash (prost decodes the merged entry as B, and A vanishes)
/// and the consenters' signatures over the header would cover either split. Length-prefixing
/// binds the number and the boundaries of the entries to the header every consenter signs;
/// the `common.Block` format is unchanged (ADR 0026).
pub fn data_hash(data: &BlockData) -> [u8; 32] {
    entries_hash(&data.data)
}

/// [`data_hash`] of a block whose data would be `entries`, without building the
/// `BlockData` (no copy of the entries).
pub fn entries_hash(entries: &[Vec<u8>]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((entries.len() as u64).to_be_bytes());
    for entry in entries {
        h.update((entry.len() as u64).to_be_bytes());
        h.update(entry);
    }
    h.finalize().into()
}

/// A new block: header chained to `previous_hash`, `data_hash` computed, five empty metadata
/// slots.
pub fn new_block(number: u64, previous_hash: &[u8], envelopes: Vec<Vec<u8>>) -> Block {
    let hash = entries_hash(&envelopes);
    new_block_with_data_hash(number, previous_hash, envelopes, hash)
}

/// [`new_block`] with its data hash computed by the caller: `data_hash` must be
/// [`entries_hash`] of `envelopes` (an orderer that checked a proposed block's data hash
/// against its envelopes need not hash several MiB again).
pub fn new_block_with_data_hash(
    number: u64,
    previous_hash: &[u8],
    envelopes: Vec<Vec<u8>>,
    data_hash: [u8; 32],
) -> Block {
    debug_assert_eq!(data_hash, entries_hash(&envelopes));
    let data = BlockData { data: envelopes };
    Block {
        header: Some(BlockHeader {
            number,
            previous_hash: previous_hash.to_vec(),
            data_hash: data_hash.to_vec(),
        }),
        data: Some(data),
        metadata: Some(BlockMetadata {
            metadata: vec![Vec::new(); METADATA_SLOTS],
        }),
    }
}

/// The metadata entry at `index`, decoded (an absent or empty slot is an empty `Metadata`).
///
/// # Errors
/// A protobuf decode error if the slot holds bytes that are not a `common.Metadata`.
pub fn metadata(block: &Block, index: BlockMetadataIndex) -> Result<Metadata, prost::DecodeError> {
    let bytes = block
        .metadata
        .as_ref()
        .and_then(|m| m.metadata.get(index as usize))
        .map(Vec::as_slice)
        .unwrap_or_default();
    Metadata::decode(bytes)
}

/// The LAST_CONFIG index of a block: the number of the config block whose configuration
/// applies to it (0, the genesis block, when absent or undecodable).
pub fn last_config_index(block: &Block) -> u64 {
    metadata(block, BlockMetadataIndex::LastConfig)
        .ok()
        .and_then(|m| medledger_proto::common::LastConfig::decode(m.value.as_slice()).ok())
        .map_or(0, |l| l.index)
}

/// Raw bytes of the metadata slot at `index` (TRANSACTIONS_FILTER holds raw codes, not a
/// `Metadata`); empty if absent.
pub fn metadata_bytes(block: &Block, index: BlockMetadataIndex) -> &[u8] {
    block
        .metadata
        .as_ref()
        .and_then(|m| m.metadata.get(index as usize))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Sets the metadata slot at `index`, growing the list to [`METADATA_SLOTS`] if needed.
pub fn set_metadata_bytes(block: &mut Block, index: BlockMetadataIndex, bytes: Vec<u8>) {
    let meta = block.metadata.get_or_insert_with(BlockMetadata::default);
    let i = index as usize;
    if meta.metadata.len() < METADATA_SLOTS.max(i + 1) {
        meta.metadata.resize(METADATA_SLOTS.max(i + 1), Vec::new());
    }
    meta.metadata[i] = bytes;
}

/// Block number, 0 if the header is missing.
pub fn number(block: &Block) -> u64 {
    block.header.as_ref().map_or(0, |h| h.number)
}

/// The block's entries (serialized envelopes), in order; empty if `data` is missing.
pub fn entries(block: &Block) -> &[Vec<u8>] {
    block.data.as_ref().map_or(&[], |d| d.data.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integer_encoding_matches_go_asn1() {
        assert_eq!(der_uint(0), vec![0]);
        assert_eq!(der_uint(1), vec![1]);
        assert_eq!(der_uint(127), vec![0x7f]);
        assert_eq!(der_uint(128), vec![0x00, 0x80]);
        assert_eq!(der_uint(256), vec![0x01, 0x00]);
        assert_eq!(der_uint(u64::MAX), [&[0u8][..], &[0xff; 8]].concat());
    }

    #[test]
    fn header_der_layout() {
        let h = BlockHeader {
            number: 5,
            previous_hash: vec![0xaa; 32],
            data_hash: vec![0xbb; 32],
        };
        let der = header_der(&h);
        // SEQUENCE(len 3+34+34=71) { INTEGER 5, OCTET STRING aa.., OCTET STRING bb.. }
        let mut expected = vec![0x30, 71, 0x02, 0x01, 0x05, 0x04, 32];
        expected.extend([0xaa; 32]);
        expected.extend([0x04, 32]);
        expected.extend([0xbb; 32]);
        assert_eq!(der, expected);
        // Long-form length once the body reaches 128 bytes.
        let long = BlockHeader {
            number: 1,
            previous_hash: vec![1; 100],
            data_hash: vec![2; 32],
        };
        let der = header_der(&long);
        assert_eq!(&der[..3], &[0x30, 0x81, (3 + 102 + 34) as u8]);
    }

    #[test]
    fn new_block_chains_and_hashes_data() {
        let b = new_block(3, &[7; 32], vec![b"a".to_vec(), b"bc".to_vec()]);
        let header = b.header.clone().unwrap();
        let mut framed = 2u64.to_be_bytes().to_vec();
        framed.extend_from_slice(&1u64.to_be_bytes());
        framed.extend_from_slice(b"a");
        framed.extend_from_slice(&2u64.to_be_bytes());
        framed.extend_from_slice(b"bc");
        assert_eq!(header.data_hash, Sha256::digest(&framed).to_vec());
        // Issue 14 item 1: the same bytes split otherwise hash otherwise (on 4436d0b they did
        // not: Fabric's formula joins the entries end to end).
        let merged = new_block(3, &[7; 32], vec![b"abc".to_vec()]);
        let resplit = new_block(3, &[7; 32], vec![b"ab".to_vec(), b"c".to_vec()]);
        let empty_tail = new_block(3, &[7; 32], vec![b"a".to_vec(), b"bc".to_vec(), Vec::new()]);
        for other in [merged, resplit, empty_tail] {
            assert_ne!(other.header.unwrap().data_hash, header.data_hash);
        }
        assert_eq!(b.metadata.as_ref().unwrap().metadata.len(), METADATA_SLOTS);
        assert_eq!(number(&b), 3);
        assert_ne!(header_hash(&header), [0; 32]);
    }
}
