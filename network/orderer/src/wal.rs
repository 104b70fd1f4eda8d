//! The write-ahead log: what consensus asked to persist at the current height, on disk.
//!
//! One file per height, `<dir>/<height, 20 digits>.wal`, created when the height starts; files
//! of lower heights are deleted then (their block is in the block store). Records are framed
//! as the block store's (`crate::frame`: `length (u32 BE) ‖ first 4 bytes of SHA-256(bytes) ‖
//! bytes`), bytes a serialized `medledger.orderer.WalEntry`. [`Wal::append`] buffers;
//! [`Wal::flush`] writes and fsyncs, and the host calls it before sending any message (so
//! nothing we signed is seen by others before it is on disk).
//!
//! A node must never vote differently after a restart, so the log never silently forgets:
//! - a torn last record (crash while writing: never flushed, so nothing that followed it was
//!   sent) is dropped; a bad record with records after it is [`Error::Wal`] (corruption);
//! - a log of a height above the one being started means the block store lost blocks this
//!   node voted after: [`Error::Wal`], the operator restores the block store;
//! - starting a height whose log already holds records that were not read back (replayed)
//!   is [`Error::Wal`];
//! - after a failed write or fsync the log refuses every later write (the kernel may have
//!   dropped the dirty pages: a retried fsync can succeed without the data, "fsyncgate").

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use medledger_proto::medledger::orderer::WalEntry;
use prost::Message;

use crate::frame;
use crate::{Error, Result};

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: Option<(u64, File)>,
    buffer: Vec<u8>,
    dirty: bool,
    /// The height whose records [`Wal::read`] returned (the host replays them).
    read_height: Option<u64>,
    /// Set by a failed write or fsync: nothing more is written.
    failed: bool,
    /// Only tests set it.
    fail_next_flush: Option<FailPoint>,
}

/// Where a test makes the next flush fail (malachite's `FailingFile` idea).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug)]
enum FailPoint {
    /// The write stops after this many bytes and fails.
    Write(usize),
    /// The write succeeds, the fsync fails.
    Fsync,
}

fn file_name(height: u64) -> String {
    format!("{height:020}.wal")
}

fn height_of(name: &std::ffi::OsStr) -> Option<u64> {
    name.to_str()?.strip_suffix(".wal")?.parse().ok()
}

/// Decodes a log file's records.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<WalEntry>, usize)> {
    let corrupt = |reason: String| Error::Wal {
        path: path.to_path_buf(),
        reason,
    };
    let scan = frame::scan(bytes).map_err(|c| {
        corrupt(format!(
            "record {} at byte {} fails its checksum with records after it: the log is corrupt; \
             this orderer must not vote at this height again (restore its data directory, or \
             remove it and let the orderer sync from the others)",
            c.record, c.offset
        ))
    })?;
    let mut out = Vec::with_capacity(scan.records.len());
    for (i, body) in scan.records.iter().enumerate() {
        out.push(WalEntry::decode(*body).map_err(|_| {
            corrupt(format!(
                "record {i} passes its checksum but does not decode"
            ))
        })?);
    }
    let torn = scan.torn(bytes.len());
    if torn > 0 {
        tracing::warn!(target: "orderer::wal", path = %path.display(), bytes = torn, "ignoring torn WAL tail");
    }
    Ok((out, scan.valid))
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
            read_height: None,
            failed: false,
            fail_next_flush: None,
        })
    }

    /// The heights that have a log file.
    fn heights(&self) -> Result<Vec<u64>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        Ok(entries
            .flatten()
            .filter_map(|e| height_of(&e.file_name()))
            .collect())
    }

    /// Refuses when a log of a height above `height` exists: this node voted at a height whose
    /// preceding blocks its block store no longer has.
    fn check_not_ahead(&self, height: u64) -> Result<()> {
        if let Some(ahead) = self.heights()?.into_iter().filter(|h| *h > height).max() {
            return Err(Error::Wal {
                path: self.dir.join(file_name(ahead)),
                reason: format!(
                    "this orderer voted at height {ahead} but its block store ends before \
                     height {height}: blocks were lost; restore the block store (or the whole \
                     data directory) instead of voting at those heights again"
                ),
            });
        }
        Ok(())
    }

    /// The records of `height`'s log (empty if there is none), to replay. A torn tail is
    /// ignored (see the module docs).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::Wal`] if the log is corrupt or a log
    /// of a higher height exists.
    pub fn read(&mut self, height: u64) -> Result<Vec<WalEntry>> {
        self.check_not_ahead(height)?;
        let path = self.dir.join(file_name(height));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let (out, _) = parse(&path, &bytes)?;
        self.read_height = Some(height);
        Ok(out)
    }

    fn refuse_after_failure(&self) -> Result<()> {
        if self.failed {
            return Err(Error::Wal {
                path: self.dir.clone(),
                reason: "an earlier write or fsync failed; nothing more is written".into(),
            });
        }
        Ok(())
    }

    /// Starts the log of `height`: flushes the current one, creates the new file (keeping its
    /// records if it exists and they were read back, as after a restart) and deletes logs of
    /// lower heights.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Wal`] after a failed write, for a corrupt log, a log of a higher
    /// height, or an existing log of `height` that was not read back.
    pub fn start(&mut self, height: u64) -> Result<()> {
        self.flush()?;
        if matches!(&self.file, Some((h, _)) if *h == height) {
            return Ok(());
        }
        self.check_not_ahead(height)?;
        let path = self.dir.join(file_name(height));
        // Keep the valid records of an existing log (restart), cut any torn tail so new
        // records follow valid ones.
        let (records, valid) = match fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(_) => (Vec::new(), 0),
        };
        if !records.is_empty() && self.read_height != Some(height) {
            return Err(Error::Wal {
                path,
                reason: format!(
                    "the log of height {height} holds {} records this orderer did not replay; \
                     voting on would ignore them",
                    records.len()
                ),
            });
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        file.set_len(valid as u64)
            .map_err(|e| Error::io("truncate", &path, e))?;
        sync_dir(&self.dir)?;
        self.file = Some((height, file));
        for h in self.heights()? {
            if h < height {
                let p = self.dir.join(file_name(h));
                fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
            }
        }
        Ok(())
    }

    /// Buffers a record for the current height's log.
    ///
    /// # Errors
    /// [`Error::Wal`] if no height was started or an earlier write failed.
    pub fn append(&mut self, entry: &WalEntry) -> Result<()> {
        self.refuse_after_failure()?;
        if self.file.is_none() {
            return Err(Error::Wal {
                path: self.dir.clone(),
                reason: "append before a height was started".into(),
            });
        }
        frame::encode(&mut self.buffer, &entry.encode_to_vec());
        self.dirty = true;
        Ok(())
    }

    /// Whether records are buffered but not yet durable.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes buffered records and fsyncs the file. A failure is final: later writes are
    /// refused.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Wal`] if an earlier write failed.
    pub fn flush(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.refuse_after_failure()?;
        if let Some((height, file)) = self.file.as_mut() {
            let path = self.dir.join(file_name(*height));
            let written = write_and_sync(file, &self.buffer, self.fail_next_flush.take());
            if let Err(e) = written {
                self.failed = true;
                return Err(Error::io("write", &path, e));
            }
        }
        self.buffer.clear();
        self.dirty = false;
        Ok(())
    }
}

fn write_and_sync(file: &mut File, bytes: &[u8], fail: Option<FailPoint>) -> std::io::Result<()> {
    let injected = || std::io::Error::other("injected failure");
    match fail {
        Some(FailPoint::Write(n)) => {
            file.write_all(&bytes[..n.min(bytes.len())])?;
            Err(injected())
        }
        Some(FailPoint::Fsync) => {
            file.write_all(bytes)?;
            Err(injected())
        }
        None => {
            file.write_all(bytes)?;
            file.sync_data()
        }
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
        let mut wal2 = Wal::open(dir.path()).unwrap();
        assert_eq!(wal2.read(3).unwrap().len(), 2);
        // Starting height 4 deletes height 3's log.
        wal.start(4).unwrap();
        assert!(!path.exists());
        // Restarting height 4 after a torn write keeps the valid records only, once read back.
        wal.append(&entry(4, 0)).unwrap();
        wal.flush().unwrap();
        let p4 = dir.path().join(file_name(4));
        let mut f = OpenOptions::new().append(true).open(&p4).unwrap();
        f.write_all(&[0, 0, 0, 50, 1]).unwrap();
        let mut wal3 = Wal::open(dir.path()).unwrap();
        assert_eq!(wal3.read(4).unwrap(), vec![entry(4, 0)]);
        wal3.start(4).unwrap();
        wal3.append(&entry(4, 1)).unwrap();
        wal3.flush().unwrap();
        assert_eq!(wal3.read(4).unwrap(), vec![entry(4, 0), entry(4, 1)]);
    }

    /// Issue 14 item 5: on the old code one bad record dropped every record after it (votes
    /// that may have been sent), and a start after a restart appended to a log nobody
    /// replayed. Both are errors now.
    #[test]
    fn a_corrupt_record_or_an_unreplayed_log_stops_the_orderer() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.start(7).unwrap();
        for r in 0..3 {
            wal.append(&entry(7, r)).unwrap();
        }
        wal.flush().unwrap();
        let path = dir.path().join(file_name(7));
        let mut bytes = fs::read(&path).unwrap();
        bytes[frame::HEADER + 2] ^= 0x40; // inside the first record's body
        fs::write(&path, &bytes).unwrap();
        let mut reopened = Wal::open(dir.path()).unwrap();
        let err = reopened.read(7).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        assert!(
            reopened.start(7).is_err(),
            "a corrupt log is never appended to"
        );

        // A log that was not read back is never appended to either.
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.start(9).unwrap();
        wal.append(&entry(9, 0)).unwrap();
        wal.flush().unwrap();
        let mut fresh = Wal::open(dir.path()).unwrap();
        let err = fresh.start(9).unwrap_err().to_string();
        assert!(err.contains("did not replay"), "{err}");
    }

    /// A log of a height above the block store's means blocks this orderer voted after were
    /// lost: reading or starting a lower height is refused (the old code started it and could
    /// vote again at heights it had voted at).
    #[test]
    fn a_log_ahead_of_the_block_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.start(12).unwrap();
        wal.append(&entry(12, 0)).unwrap();
        wal.flush().unwrap();
        let mut restarted = Wal::open(dir.path()).unwrap();
        let err = restarted.read(10).unwrap_err().to_string();
        assert!(err.contains("voted at height 12"), "{err}");
        assert!(restarted.start(10).is_err());
        assert_eq!(restarted.read(12).unwrap(), vec![entry(12, 0)]);
    }

    /// Crash points: a write that stops after any number of bytes, or an fsync that fails.
    /// The failed flush is never acknowledged (the host sends nothing after it), the log
    /// refuses later writes, and on reopen every acknowledged record is there.
    #[test]
    fn failing_writes_and_fsyncs_lose_nothing_acknowledged() {
        let first = entry(5, 0);
        let second = entry(5, 1);
        let record_len = frame::HEADER + second.encoded_len();
        let points = (0..=record_len)
            .map(FailPoint::Write)
            .chain([FailPoint::Fsync]);
        for point in points {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = Wal::open(dir.path()).unwrap();
            wal.start(5).unwrap();
            wal.append(&first).unwrap();
            wal.flush().unwrap(); // acknowledged
            wal.append(&second).unwrap();
            wal.fail_next_flush = Some(point);
            assert!(wal.flush().is_err(), "{point:?}");
            assert!(wal.append(&second).is_err() && wal.flush().is_err());
            drop(wal);
            let mut reopened = Wal::open(dir.path()).unwrap();
            let got = reopened.read(5).unwrap();
            assert_eq!(got[0], first, "{point:?}");
            assert!(got.len() <= 2, "{point:?}");
            // Restarting after the crash continues the log after the valid records.
            reopened.start(5).unwrap();
            reopened.append(&entry(5, 2)).unwrap();
            reopened.flush().unwrap();
            let again = reopened.read(5).unwrap();
            assert_eq!(again.last(), Some(&entry(5, 2)), "{point:?}");
        }
    }
}
