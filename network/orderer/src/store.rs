//! The orderer's block store: an append-only file of blocks with an in-memory index.
//!
//! `<dir>/blocks.dat` holds records `length (u32 BE) ‖ first 4 bytes of SHA-256(bytes) ‖
//! bytes`, bytes being a serialized `common.Block`, in block-number order from block 0 (the
//! genesis config block). [`BlockStore::append`] writes and fsyncs before it returns, so a
//! block is durable before anyone is told about it. On open the file is scanned to rebuild the
//! index (offset and length per block number) and to check the hash chain; a torn last record
//! (crash while appending, `crate::frame`) is cut off. A bad record with blocks after it is
//! corruption of blocks this orderer stored and may have served: opening fails with
//! [`Error::Store`] naming the block, instead of cutting every later block. After a failed
//! append the store cuts the partial record back off and refuses later appends. No C++
//! dependency (RocksDB) is needed for this: the orderer only appends and reads by number (see
//! ADR 0009).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use medledger_proto::common::Block;
use prost::Message;

use crate::frame;
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
    /// Set when an append failed and its partial record could not be cut back off.
    failed: bool,
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
        let scan = frame::scan(&bytes).map_err(|c| Error::Store {
            reason: format!(
                "{}: block {} (byte {}) fails its checksum with blocks after it: the block \
                 store is corrupt; restore it from a backup or another orderer's copy",
                path.display(),
                c.record,
                c.offset
            ),
        })?;
        let mut index = Vec::with_capacity(scan.records.len());
        let mut chain = Chain::default();
        let mut at = 0usize;
        for (number, body) in scan.records.iter().enumerate() {
            let block = Block::decode(*body).map_err(|_| Error::Store {
                reason: format!("block {number} passes its checksum but does not decode"),
            })?;
            chain.append(&block)?;
            index.push(((at + frame::HEADER) as u64, body.len() as u32));
            at += frame::HEADER + body.len();
        }
        let torn = scan.torn(bytes.len());
        if torn > 0 {
            tracing::warn!(target: "orderer::store", path = %path.display(), bytes = torn, "cutting a torn block record");
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
                failed: false,
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
        if self.failed {
            return Err(Error::Store {
                reason: "an earlier append failed; nothing more is written".into(),
            });
        }
        let mut rec = Vec::with_capacity(bytes.len() + frame::HEADER);
        frame::encode(&mut rec, &bytes);
        let written = self
            .file
            .write_all(&rec)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut the partial record so the file ends with whole blocks; if even that fails,
            // refuse every later append (it would follow garbage).
            let cut = self
                .file
                .set_len(self.end)
                .and_then(|()| self.file.seek(SeekFrom::Start(self.end)).map(|_| ()))
                .and_then(|()| self.file.sync_data());
            self.failed = cut.is_err();
            return Err(Error::io("append", &self.path, e));
        }
        self.index.push((self.end + frame::HEADER as u64, len));
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

    /// Issue 14 item 5: on the old code a bit flip in block 1 of 4 cut blocks 1..=3 on open
    /// (signed history this orderer had served, silently forgotten). Now opening fails,
    /// naming the block, and the file is left as it was.
    #[test]
    fn a_corrupt_block_before_others_stops_the_store_instead_of_cutting_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = BlockStore::open(dir.path()).unwrap();
        let mut prev: Vec<u8> = Vec::new();
        for n in 0..4u64 {
            let b = new_block(n, &prev, vec![format!("block {n}").into_bytes()]);
            prev = header_hash(b.header.as_ref().unwrap()).to_vec();
            s.append(&b).unwrap();
        }
        drop(s);
        let path = dir.path().join(BLOCKS_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let len0 = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let in_block1 = 2 * frame::HEADER + len0 + 3;
        bytes[in_block1] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let err = BlockStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("block 1"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was cut");
    }

    /// Crash points over appends: the file cut after any byte of the last block's record
    /// reopens with every earlier block.
    #[test]
    fn every_crash_point_in_an_append_keeps_the_earlier_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = BlockStore::open(dir.path()).unwrap();
        let b0 = new_block(0, &[], vec![b"genesis".to_vec()]);
        s.append(&b0).unwrap();
        let b1 = new_block(
            1,
            &header_hash(b0.header.as_ref().unwrap()),
            vec![vec![7; 40]],
        );
        s.append(&b1).unwrap();
        drop(s);
        let path = dir.path().join(BLOCKS_FILE);
        let full = fs::read(&path).unwrap();
        let first_end = frame::HEADER + b0.encoded_len();
        for cut in first_end..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let (s, chain) = BlockStore::open(dir.path()).unwrap();
            assert_eq!((s.height(), chain.next_number), (1, 1), "cut at {cut}");
            assert_eq!(s.get(0).unwrap().unwrap(), b0);
        }
    }
}
