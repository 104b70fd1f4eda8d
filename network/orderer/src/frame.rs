//! The record framing of the write-ahead log and the block store:
//! `length (u32 BE) ‖ masked CRC-32(bytes) (u32 BE) ‖ bytes`.
//!
//! The checksum finds torn writes and media errors, not tampering (whoever can write the file
//! can write a matching checksum of any kind; blocks are bound by their hash chain and the
//! consenters' signatures). CRC-32 (IEEE 802.3, as gzip's; `crc32fast`, hardware-accelerated)
//! costs a fraction of SHA-256 on the consensus thread, which frames every block of up to
//! `absolute_max_bytes` twice (WAL and store). Files written before the change carry the
//! first 4 bytes of SHA-256(bytes) instead; reading accepts either.
//!
//! Reading tells a torn tail from corruption. A crash while appending leaves the last record
//! incomplete (its frame runs past the end of the file), or filled with zeros (a file system
//! that persisted the new length before the data), or, at worst, complete in length with
//! bytes that do not match its checksum; in each case it is the *last* thing in the file and
//! was never acknowledged (the writer fsyncs before anyone is told). A record that fails its
//! checksum and is followed by more bytes is something else: the disk or someone changed
//! acknowledged data. That is [`Corrupt`], never silently cut, since the records after it
//! (votes this node may have sent, blocks it may have served) would be lost with it.

use sha2::{Digest, Sha256};

/// The checksum of a record: CRC-32 (IEEE 802.3) masked as LevelDB masks its CRCs (rotated
/// right by 15 bits, plus 0xa282ead8), big-endian. The mask keeps an empty record's header
/// from being all zeros (the CRC-32 of nothing is 0), which reading takes for a zero-filled
/// torn tail.
fn checksum(bytes: &[u8]) -> [u8; 4] {
    let crc = crc32fast::hash(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8).to_be_bytes()
}

/// Whether `sum` is the checksum of `body`: CRC-32, or the first 4 bytes of SHA-256 that
/// files written before CRC-32 carry.
fn checks(body: &[u8], sum: &[u8]) -> bool {
    checksum(body) == sum || Sha256::digest(body)[..4] == *sum
}

/// Bytes of a frame header (length and checksum).
pub(crate) const HEADER: usize = 8;

/// Appends `bytes` framed to `out`. Records must be shorter than 4 GiB (the length is a
/// `u32`); callers refuse larger ones before framing.
pub(crate) fn encode(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&checksum(bytes));
    out.extend_from_slice(bytes);
}

/// A record that fails its checksum with acknowledged data after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Corrupt {
    /// Index of the bad record (0 = first).
    pub record: usize,
    /// Its byte offset in the file.
    pub offset: usize,
}

/// The records of a file.
#[derive(Debug, Default)]
pub(crate) struct Scan<'a> {
    /// The record bodies, in order, up to the first bad record.
    pub records: Vec<&'a [u8]>,
    /// Length of the valid prefix (where the next record is written).
    pub valid: usize,
}

impl Scan<'_> {
    /// Bytes after the valid prefix: a torn tail (see the module docs).
    pub(crate) fn torn(&self, file_len: usize) -> usize {
        file_len - self.valid
    }
}

/// Splits `bytes` into records; a bad last record is a torn tail (see the module docs).
///
/// # Errors
/// [`Corrupt`] when a record fails its checksum and is not the last thing in the file.
pub(crate) fn scan(bytes: &[u8]) -> Result<Scan<'_>, Corrupt> {
    let mut scan = Scan::default();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.iter().all(|&b| b == 0) {
            break; // zero-filled tail
        }
        let Some(head) = rest.get(..HEADER) else {
            break; // incomplete header
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(body) = rest.get(HEADER..HEADER + len) else {
            break; // frame runs past the end
        };
        if !checks(body, &head[4..8]) {
            if rest[HEADER + len..].iter().all(|&b| b == 0) {
                break; // the last record (zero-filled after it, or nothing), never acknowledged
            }
            return Err(Corrupt {
                record: scan.records.len(),
                offset: at,
            });
        }
        scan.records.push(body);
        at += HEADER + len;
        scan.valid = at;
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(records: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            encode(&mut out, r);
        }
        out
    }

    #[test]
    fn records_framed_with_the_former_sha256_checksum_still_read() {
        let mut old = Vec::new();
        for r in [b"written before".as_slice(), b"crc-32"] {
            old.extend_from_slice(&(r.len() as u32).to_be_bytes());
            old.extend_from_slice(&Sha256::digest(r)[..4]);
            old.extend_from_slice(r);
        }
        encode(&mut old, b"written after");
        let s = scan(&old).unwrap();
        assert_eq!(
            s.records,
            [b"written before".as_slice(), b"crc-32", b"written after"]
        );
        // Neither checksum: corrupt (a record follows).
        old[8] ^= 1;
        assert_eq!(scan(&old).unwrap_err().record, 0);
    }

    #[test]
    fn every_crash_point_keeps_every_complete_record() {
        let records: [&[u8]; 3] = [b"first vote", b"", b"third record, longer"];
        let full = file(&records);
        let mut ends = Vec::new();
        let mut at = 0;
        for r in records {
            at += HEADER + r.len();
            ends.push(at);
        }
        for cut in 0..=full.len() {
            let s = scan(&full[..cut]).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(s.records, records[..complete], "cut at {cut}");
            // A zero-filled remainder (length persisted before data) is a torn tail too.
            let mut zeroed = full[..cut].to_vec();
            zeroed.resize(full.len() + 16, 0);
            assert_eq!(scan(&zeroed).unwrap().records.len(), complete);
        }
    }

    #[test]
    fn a_bad_record_before_others_is_corruption_not_a_tail() {
        let mut f = file(&[b"one", b"two", b"three"]);
        f[HEADER + 3 + HEADER] ^= 1; // a byte of "two"
        assert_eq!(
            scan(&f).unwrap_err(),
            Corrupt {
                record: 1,
                offset: HEADER + 3
            }
        );
        // The same damage to the last record is a torn tail.
        let mut g = file(&[b"one", b"two"]);
        let n = g.len();
        g[n - 1] ^= 1;
        let s = scan(&g).unwrap();
        assert_eq!(s.records, [b"one".as_slice()]);
        assert_eq!(s.torn(g.len()), HEADER + 3);
    }
}
