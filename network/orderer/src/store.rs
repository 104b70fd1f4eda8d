//! The orderer's block store: an append-only file of blocks with an in-memory index.
//!
//! `<dir>/blocks.dat` holds records `length (u32 BE) ‖ first 4 bytes of SHA-256(bytes) ‖
//! bytes`, bytes being a serialized `common.Block`, in block-number order from block 0 (the
//! genesis config block). [`BlockStore::append`] writes and fsyncs before it returns, so a
//! block is durable before anyone is told about it. On open the file is scanned to rebuild the
//! index (offset and length per block number) and to check the hash chain; a torn last record
//! (crash while appending) is cut off. No C++ dependency (RocksDB) is needed for this: the
//! orderer only appends and reads by number (see ADR 0009).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use medledger_proto::common::Block;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::node::Chain;
use crate::{Error, Result};

/// File name of the block file inside the store directory.
pub const BLOCKS_FILE: &str = "blocks.dat";

/// An open block store.
#[derive(Debug)]
pub struct BlockStore {
    path: PathBuf,
    file: File,
    /// (offset of the block bytes, length) per block number.
    index: Vec<(u64, u32)>,
    end: u64,
}

impl BlockStore {
    /// Opens (creating) the store in `dir`, rebuilding its index and returning the chain view
    /// of its blocks.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Store`] if the blocks do not form a chain.
    pub fn open(dir: &Path) -> Result<(Self, Chain)> {
        fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let path = dir.join(BLOCKS_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", &path, e))?;
        let mut index = Vec::new();
        let mut chain = Chain::default();
        let mut at = 0usize;
        while let Some(head) = bytes.get(at..at + 8) {
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let Some(body) = bytes.get(at + 8..at + 8 + len as usize) else {
                break;
            };
            if Sha256::digest(body)[..4] != head[4..8] {
                break;
            }
            let Ok(block) = Block::decode(body) else {
                break;
            };
            chain.append(&block)?;
            index.push(((at + 8) as u64, len));
            at += 8 + len as usize;
        }
        if at < bytes.len() {
            tracing::warn!(target: "orderer::store", path = %path.display(), bytes = bytes.len() - at, "cutting a torn block record");
            file.set_len(at as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io("truncate", &path, e))?;
        }
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::io("seek", &path, e))?;
        Ok((
            BlockStore {
                path,
                file,
                index,
                end: at as u64,
            },
            chain,
        ))
    }

    /// Number of blocks stored (= number of the next block).
    pub fn height(&self) -> u64 {
        self.index.len() as u64
    }

    /// Appends block `height()` and fsyncs.
    ///
    /// # Errors
    /// [`Error::Store`] if it is not the next block number; [`Error::Io`].
    pub fn append(&mut self, block: &Block) -> Result<()> {
        let number = medledger_channel::block::number(block);
        if number != self.height() || block.header.is_none() {
            return Err(Error::Store {
                reason: format!("append of block {number}, next is {}", self.height()),
            });
        }
        let bytes = block.encode_to_vec();
        let len = u32::try_from(bytes.len()).map_err(|_| Error::Store {
            reason: format!("block {number} is larger than 4 GiB"),
        })?;
        let mut rec = Vec::with_capacity(bytes.len() + 8);
        rec.extend_from_slice(&len.to_be_bytes());
        rec.extend_from_slice(&Sha256::digest(&bytes)[..4]);
        rec.extend_from_slice(&bytes);
        self.file
            .write_all(&rec)
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.path, e))?;
        self.index.push((self.end + 8, len));
        self.end += rec.len() as u64;
        Ok(())
    }

    /// Block `number`, if stored.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Store`] if the stored bytes do not decode.
    pub fn get(&self, number: u64) -> Result<Option<Block>> {
        let Some(&(offset, len)) = usize::try_from(number).ok().and_then(|n| self.index.get(n))
        else {
            return Ok(None);
        };
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io("read", &self.path, e))?;
        Block::decode(buf.as_slice())
            .map(Some)
            .map_err(|_| Error::Store {
                reason: format!("block {number} does not decode"),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use medledger_channel::block::{header_hash, new_block};

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, chain) = BlockStore::open(dir.path()).unwrap();
        assert_eq!((s.height(), chain.next_number), (0, 0));
        let b0 = new_block(0, &[], vec![b"genesis".to_vec()]);
        s.append(&b0).unwrap();
        let h0 = header_hash(b0.header.as_ref().unwrap());
        let b1 = new_block(1, &h0, vec![b"x".to_vec()]);
        s.append(&b1).unwrap();
        assert!(s.append(&b1).is_err(), "same number twice");
        assert_eq!(s.get(1).unwrap().unwrap(), b1);
        assert_eq!(s.get(2).unwrap(), None);
        drop(s);
        // Torn record at the end is cut on open.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(BLOCKS_FILE))
            .unwrap();
        f.write_all(&[0, 0, 1, 0, 1, 2]).unwrap();
        let (mut s, chain) = BlockStore::open(dir.path()).unwrap();
        assert_eq!(s.height(), 2);
        assert_eq!(chain.next_number, 2);
        assert_eq!(chain.last_hash, header_hash(b1.header.as_ref().unwrap()));
        let b2 = new_block(2, &chain.last_hash, vec![b"y".to_vec()]);
        s.append(&b2).unwrap();
        let (s, _) = BlockStore::open(dir.path()).unwrap();
        assert_eq!(s.get(2).unwrap().unwrap(), b2);
    }
}
