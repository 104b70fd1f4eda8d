//! The write-ahead log: what consensus asked to persist at the current height, on disk.
//!
//! One file per height, `<dir>/<height, 20 digits>.wal`, created when the height starts; files
//! of lower heights are deleted then (their block is in the block store). Each record is
//! framed as `length (u32 BE) ‖ first 4 bytes of SHA-256(bytes) ‖ bytes` where bytes is a
//! serialized `medledger.orderer.WalEntry`. [`Wal::append`] buffers; [`Wal::flush`] writes
//! and fsyncs, and the host calls it before sending any message (so nothing we signed is
//! seen by others before it is on disk). A torn last record (crash while writing) is dropped
//! on read: it was never flushed, so nothing that followed it was sent.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use medledger_proto::medledger::orderer::WalEntry;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: Option<(u64, File)>,
    buffer: Vec<u8>,
    dirty: bool,
}

fn file_name(height: u64) -> String {
    format!("{height:020}.wal")
}

fn frame(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&Sha256::digest(bytes)[..4]);
    out.extend_from_slice(bytes);
}

/// Decodes framed records; returns them and the length of the valid prefix.
fn parse(bytes: &[u8]) -> (Vec<WalEntry>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(body) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if Sha256::digest(body)[..4] != head[4..8] {
            break;
        }
        match WalEntry::decode(body) {
            Ok(e) => out.push(e),
            Err(_) => break,
        }
        at += 8 + len;
    }
    (out, at)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", dir, e))
}

impl Wal {
    /// Opens (creating) the WAL directory.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file: None,
            buffer: Vec::new(),
            dirty: false,
        })
    }

    /// The records of `height`'s log (empty if there is none). A torn or corrupt tail is
    /// ignored (see the module docs).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read.
    pub fn read(&self, height: u64) -> Result<Vec<WalEntry>> {
        let path = self.dir.join(file_name(height));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let (out, valid) = parse(&bytes);
        if valid < bytes.len() {
            tracing::warn!(target: "orderer::wal", path = %path.display(), bytes = bytes.len() - valid, "ignoring torn WAL tail");
        }
        Ok(out)
    }

    /// Starts the log of `height`: flushes the current one, creates the new file (keeping its
    /// records if it exists, as after a restart) and deletes logs of lower heights.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn start(&mut self, height: u64) -> Result<()> {
        self.flush()?;
        if matches!(&self.file, Some((h, _)) if *h == height) {
            return Ok(());
        }
        let path = self.dir.join(file_name(height));
        // Keep the valid records of an existing log (restart), cut any torn tail so new
        // records follow valid ones.
        let valid = match fs::read(&path) {
            Ok(bytes) => parse(&bytes).1 as u64,
            Err(_) => 0,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        file.set_len(valid)
            .map_err(|e| Error::io("truncate", &path, e))?;
        sync_dir(&self.dir)?;
        self.file = Some((height, file));
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(h) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if h < height {
                let p = entry.path();
                fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
            }
        }
        Ok(())
    }

    /// Buffers a record for the current height's log.
    ///
    /// # Errors
    /// [`Error::Wal`] if no height was started.
    pub fn append(&mut self, entry: &WalEntry) -> Result<()> {
        if self.file.is_none() {
            return Err(Error::Wal {
                path: self.dir.clone(),
                reason: "append before a height was started".into(),
            });
        }
        frame(&mut self.buffer, &entry.encode_to_vec());
        self.dirty = true;
        Ok(())
    }

    /// Whether records are buffered but not yet durable.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes buffered records and fsyncs the file.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn flush(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some((height, file)) = self.file.as_mut() {
            let path = self.dir.join(file_name(*height));
            file.write_all(&self.buffer)
                .map_err(|e| Error::io("write", &path, e))?;
            file.sync_data().map_err(|e| Error::io("fsync", &path, e))?;
        }
        self.buffer.clear();
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use medledger_proto::medledger::orderer::{TimeoutElapsed, wal_entry::Entry};

    fn entry(height: u64, round: i64) -> WalEntry {
        WalEntry {
            height,
            entry: Some(Entry::Timeout(TimeoutElapsed { kind: 1, round })),
        }
    }

    #[test]
    fn records_survive_reopen_and_torn_tails_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.start(3).unwrap();
        wal.append(&entry(3, 0)).unwrap();
        wal.append(&entry(3, 1)).unwrap();
        assert!(wal.is_dirty());
        // Not flushed: not on disk.
        assert!(wal.read(3).unwrap().is_empty());
        wal.flush().unwrap();
        assert_eq!(wal.read(3).unwrap(), vec![entry(3, 0), entry(3, 1)]);
        // A torn record at the end is ignored.
        let path = dir.path().join(file_name(3));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2, 3, 4, 9, 9]).unwrap();
        let wal2 = Wal::open(dir.path()).unwrap();
        assert_eq!(wal2.read(3).unwrap().len(), 2);
        // Starting height 4 deletes height 3's log.
        wal.start(4).unwrap();
        assert!(wal.read(3).unwrap().is_empty());
        assert!(!path.exists());
        // Restarting height 4 after a torn write keeps the valid records only.
        wal.append(&entry(4, 0)).unwrap();
        wal.flush().unwrap();
        let p4 = dir.path().join(file_name(4));
        let mut f = OpenOptions::new().append(true).open(&p4).unwrap();
        f.write_all(&[0, 0, 0, 50, 1]).unwrap();
        let mut wal3 = Wal::open(dir.path()).unwrap();
        wal3.start(4).unwrap();
        wal3.append(&entry(4, 1)).unwrap();
        wal3.flush().unwrap();
        assert_eq!(wal3.read(4).unwrap(), vec![entry(4, 0), entry(4, 1)]);
    }
}
