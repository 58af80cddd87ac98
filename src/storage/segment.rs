//! Segment files: their names, their open handles, and a scanner that walks their records.
//!
//! A segment is named by a [`SegmentId`] `(major, minor)`:
//! - the writer's segments are `(n, 0)`, file `00000n.log`, `n` counting up from 1;
//! - a compaction that rewrites every closed segment up to `(m, x)` names its outputs
//!   `(m, x+1)`, `(m, x+2)`, …, files `00000m_001.log`, …
//!
//! Ordering ids as `(major, minor)` pairs keeps one invariant that compaction's crash safety
//! rests on (see the module docs of `storage`): **for any two records of the same key, the newer
//! one is in a segment with an equal or higher id**. New writes go to the active segment, which
//! has the highest id; a compaction output sorts after all of its inputs (which hold the older
//! records of the keys it copies) and before the active segment (which holds the newer ones).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use super::record::{self, HEADER_LEN, Header, Limits, RecordError};

/// A segment's place in the ordering of segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SegmentId {
    /// Writer segment number.
    pub major: u32,
    /// 0 for a writer segment, 1.. for compaction outputs placed after writer segment `major`.
    pub minor: u32,
}

impl SegmentId {
    /// File name without extension: `000007` or `000007_002`.
    pub(crate) fn stem(&self) -> String {
        if self.minor == 0 {
            format!("{:06}", self.major)
        } else {
            format!("{:06}_{:03}", self.major, self.minor)
        }
    }

    /// The segment's file name.
    pub(crate) fn log_name(&self) -> String {
        format!("{}.log", self.stem())
    }

    /// The segment's hint file name.
    pub(crate) fn hint_name(&self) -> String {
        format!("{}.hint", self.stem())
    }

    /// Parses a stem, accepting only the canonical spelling (so `7.log` and `000007.log` can
    /// never both claim segment 7).
    fn parse_stem(stem: &str) -> Option<SegmentId> {
        let (major, minor) = match stem.split_once('_') {
            Some((a, b)) => (a, Some(b)),
            None => (stem, None),
        };
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !minor.is_none_or(digits) {
            return None;
        }
        let id = SegmentId {
            major: major.parse().ok()?,
            minor: minor.map_or(Some(0), |m| m.parse().ok())?,
        };
        (id.major > 0 && (minor.is_none() || id.minor > 0) && id.stem() == stem).then_some(id)
    }
}

/// What a directory entry is to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A segment.
    Log(SegmentId),
    /// A segment's hint file.
    Hint(SegmentId),
    /// A half-written file from an interrupted compaction or hint write; deleted at start-up.
    Temp,
    /// The directory lock.
    Lock,
    /// Anything else; left alone.
    Other,
}

/// Name of the lock file.
pub(crate) const LOCK_NAME: &str = "LOCK";

/// Name of the file that remembers the highest sequence number compaction removed from disk.
///
/// Recovery numbers new records from one past the highest sequence number it finds; once a
/// compaction has deleted the newest records (say a key written and then deleted), that number
/// would go backwards. Per-key ordering would survive it (every remaining record of a key is
/// older than any new one), but sequence numbers are promised to only ever increase, so
/// compaction writes this floor, durably, before deleting anything.
pub(crate) const SEQ_NAME: &str = "SEQ";

/// `SEQ`'s content: the floor (u64 LE) and a CRC-32 of it.
pub(crate) fn encode_seq_floor(seq: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&b[..8]);
    b[8..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes `SEQ`'s content; `None` if it is not exactly what [`encode_seq_floor`] writes.
pub(crate) fn decode_seq_floor(b: &[u8]) -> Option<u64> {
    let b: &[u8; 12] = b.try_into().ok()?;
    let crc = u32::from_le_bytes(b[8..].try_into().ok()?);
    (crc32fast::hash(&b[..8]) == crc)
        .then(|| u64::from_le_bytes(b[..8].try_into().expect("8 bytes")))
}

/// Suffix of files written under a temporary name and renamed into place when complete.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Classifies a file name.
pub(crate) fn classify(name: &str) -> FileKind {
    if name == LOCK_NAME {
        FileKind::Lock
    } else if name.ends_with(TEMP_SUFFIX) {
        FileKind::Temp
    } else if let Some(stem) = name.strip_suffix(".log") {
        SegmentId::parse_stem(stem).map_or(FileKind::Other, FileKind::Log)
    } else if let Some(stem) = name.strip_suffix(".hint") {
        SegmentId::parse_stem(stem).map_or(FileKind::Other, FileKind::Hint)
    } else {
        FileKind::Other
    }
}

/// An open segment. Shared as `Arc<Segment>`: a reader that took a handle keeps the file
/// readable even after compaction unlinks it (POSIX frees an unlinked file's blocks only when
/// its last descriptor closes).
#[derive(Debug)]
pub(crate) struct Segment {
    /// In-memory number used by index locations. Never reused while the store is open;
    /// independent of the file name so a location stays 12 bytes.
    pub handle: u32,
    /// File name order.
    pub id: SegmentId,
    /// The open file. Reads use `pread` (`read_exact_at`), which takes no lock and has no
    /// shared cursor, so any number of readers share it.
    pub file: File,
    /// Bytes of records in the file: grows while the segment is active, then fixed.
    pub len: AtomicU64,
    /// File name, for errors and logs.
    pub name: String,
}

impl Segment {
    /// The file's path in `dir`.
    pub(crate) fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.name)
    }
}

/// Read-ahead of the scanner: large enough that scanning is sequential I/O, small enough not
/// to matter next to the index.
const CHUNK: usize = 256 << 10;

/// One step of a scan.
#[derive(Debug)]
pub(crate) enum Item<'a> {
    /// A record that passed its checks.
    Record {
        /// Where it starts.
        offset: u64,
        /// The whole record.
        bytes: &'a [u8],
        /// Its header.
        header: Header,
        /// Its key.
        key: &'a [u8],
    },
    /// A record in the middle failed its checksum, but its lengths fit and a valid record
    /// follows it: skip it and go on.
    Skip {
        /// Where it starts.
        offset: u64,
        /// Its length.
        len: u64,
        /// What was wrong.
        why: RecordError,
    },
    /// From `offset` on nothing can be trusted (a torn or corrupt tail); the scan is over.
    Tail {
        /// Where the bad bytes start.
        offset: u64,
        /// What was wrong.
        why: RecordError,
    },
}

/// Walks a segment's records from the start, reading in chunks with `pread`.
pub(crate) struct Scanner<'f> {
    file: &'f File,
    /// Bytes of the file to scan.
    len: u64,
    /// Next record's offset.
    pos: u64,
    /// Bytes `[buf_at, buf_at + buf.len())` of the file. Never longer than `CHUNK` or one
    /// record, and a record is never longer than the file or the configured limits.
    buf: Vec<u8>,
    buf_at: u64,
    limits: Limits,
}

impl<'f> Scanner<'f> {
    /// Scans the first `len` bytes of `file`.
    pub(crate) fn new(file: &'f File, len: u64, limits: Limits) -> Scanner<'f> {
        Scanner {
            file,
            len,
            pos: 0,
            buf: Vec::new(),
            buf_at: 0,
            limits,
        }
    }

    /// Makes `[at, at + n)` available in the buffer (the caller has checked it is inside the
    /// file) and returns where it starts in the buffer.
    fn fill(&mut self, at: u64, n: usize) -> std::io::Result<usize> {
        let end = at + n as u64;
        if at < self.buf_at || end > self.buf_at + self.buf.len() as u64 {
            let want = (n.max(CHUNK) as u64).min(self.len - at) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.buf_at = at;
        }
        Ok((at - self.buf_at) as usize)
    }

    /// Checks the record at `at`: its header and length, then its checksum. Returns its header.
    fn check(&mut self, at: u64) -> std::io::Result<Result<Header, RecordError>> {
        if self.len - at < HEADER_LEN as u64 {
            return Ok(Err(RecordError::Short));
        }
        let i = self.fill(at, HEADER_LEN)?;
        let header = match record::decode_header(&self.buf[i..i + HEADER_LEN], Some(&self.limits)) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let n = header.record_len();
        // Locations are u32 (see record::MAX_RECORD_BYTES): a record ending past 4 GiB was
        // not written by this store.
        if n > self.len - at || at + n > u64::from(u32::MAX) {
            return Ok(Err(RecordError::Short));
        }
        let i = self.fill(at, n as usize)?;
        Ok(record::decode(&self.buf[i..i + n as usize], None).map(|_| header))
    }

    /// The next item, or `None` at the end.
    ///
    /// # Errors
    /// I/O errors reading the file.
    pub(crate) fn next_item(&mut self) -> std::io::Result<Option<Item<'_>>> {
        let at = self.pos;
        if at >= self.len {
            return Ok(None);
        }
        match self.check(at)? {
            Ok(header) => {
                let n = header.record_len();
                self.pos = at + n;
                let i = self.fill(at, n as usize)?;
                let bytes = &self.buf[i..i + n as usize];
                let key = &bytes[HEADER_LEN..HEADER_LEN + header.key_len as usize];
                Ok(Some(Item::Record {
                    offset: at,
                    bytes,
                    header,
                    key,
                }))
            }
            Err(RecordError::Checksum) => {
                // The lengths were plausible and fit the file (decode checks those before the
                // checksum). If a good record follows, only this one is bad; otherwise we
                // cannot tell where records start again, so everything from here is suspect.
                let i = self.fill(at, HEADER_LEN)?;
                let n = record::decode_header(&self.buf[i..i + HEADER_LEN], None)
                    .map(|h| h.record_len())
                    .expect("header decoded a moment ago");
                if at + n < self.len && self.check(at + n)?.is_ok() {
                    self.pos = at + n;
                    Ok(Some(Item::Skip {
                        offset: at,
                        len: n,
                        why: RecordError::Checksum,
                    }))
                } else {
                    self.pos = self.len;
                    Ok(Some(Item::Tail {
                        offset: at,
                        why: RecordError::Checksum,
                    }))
                }
            }
            Err(why) => {
                self.pos = self.len;
                Ok(Some(Item::Tail { offset: at, why }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn ids_round_trip_through_names() {
        for (name, want) in [
            (
                "000001.log",
                FileKind::Log(SegmentId { major: 1, minor: 0 }),
            ),
            (
                "000042_007.log",
                FileKind::Log(SegmentId {
                    major: 42,
                    minor: 7,
                }),
            ),
            (
                "1234567_1000.hint",
                FileKind::Hint(SegmentId {
                    major: 1234567,
                    minor: 1000,
                }),
            ),
            (
                "000003.hint",
                FileKind::Hint(SegmentId { major: 3, minor: 0 }),
            ),
            ("000003_001.log.tmp", FileKind::Temp),
            ("LOCK", FileKind::Lock),
            ("1.log", FileKind::Other),
            ("000000.log", FileKind::Other),
            ("000001_000.log", FileKind::Other),
            ("000001_1.log", FileKind::Other),
            ("00000a.log", FileKind::Other),
            ("99999999999.log", FileKind::Other),
            ("notes.txt", FileKind::Other),
            (".log", FileKind::Other),
        ] {
            assert_eq!(classify(name), want, "{name}");
            if let FileKind::Log(id) = want {
                assert_eq!(id.log_name(), name);
            }
        }
    }

    #[test]
    fn seq_floor_round_trip() {
        let b = encode_seq_floor(0x0102_0304_0506_0708);
        assert_eq!(decode_seq_floor(&b), Some(0x0102_0304_0506_0708));
        let mut flipped = b;
        flipped[3] ^= 1;
        for bad in [&flipped[..], &b[..11], &[][..], &[0; 13][..]] {
            assert_eq!(decode_seq_floor(bad), None);
        }
        assert_eq!(classify(SEQ_NAME), FileKind::Other, "tidy leaves it alone");
    }

    #[test]
    fn ids_order_compaction_outputs_between_writer_segments() {
        let a = SegmentId { major: 5, minor: 0 };
        let out = SegmentId { major: 5, minor: 1 };
        let b = SegmentId { major: 6, minor: 0 };
        assert!(a < out && out < b);
        // And the file names sort the same way in a directory listing.
        assert!(a.log_name() < out.log_name() && out.log_name() < b.log_name());
    }

    fn scan_all(bytes: &[u8]) -> Vec<String> {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(bytes).expect("write");
        let limits = Limits {
            max_key_bytes: 64,
            max_value_bytes: 1 << 20,
        };
        let mut sc = Scanner::new(&f, bytes.len() as u64, limits);
        let mut out = Vec::new();
        while let Some(item) = sc.next_item().expect("read") {
            out.push(match item {
                Item::Record { offset, header, .. } => format!("rec@{offset}#{}", header.seq),
                Item::Skip { offset, len, .. } => format!("skip@{offset}+{len}"),
                Item::Tail { offset, .. } => format!("tail@{offset}"),
            });
        }
        out
    }

    fn log(records: &[(u64, &[u8], &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (seq, k, v) in records {
            record::encode(&mut b, *seq, false, k, v);
        }
        b
    }

    #[test]
    fn scanner_reports_damage() {
        let good = log(&[(1, b"a", b"1"), (2, b"b", b"22"), (3, b"c", b"333")]);
        // Record lengths: 23, 24, 25.
        let mut mid_flip = good.clone();
        mid_flip[23 + 22] ^= 0x10; // a value byte of record 2
        let mut last_flip = good.clone();
        *last_flip.last_mut().expect("non-empty") ^= 1;
        let mut absurd = good.clone();
        absurd[23 + 17..23 + 21].copy_from_slice(&u32::MAX.to_le_bytes());

        let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
            ("clean", good.clone(), &["rec@0#1", "rec@23#2", "rec@47#3"]),
            ("empty", vec![], &[]),
            (
                "torn header",
                good[..50].to_vec(),
                &["rec@0#1", "rec@23#2", "tail@47"],
            ),
            (
                "torn value",
                good[..71].to_vec(),
                &["rec@0#1", "rec@23#2", "tail@47"],
            ),
            (
                "flip in the middle",
                mid_flip,
                &["rec@0#1", "skip@23+24", "rec@47#3"],
            ),
            (
                "flip at the tail",
                last_flip,
                &["rec@0#1", "rec@23#2", "tail@47"],
            ),
            ("absurd length", absurd, &["rec@0#1", "tail@23"]),
            (
                "zeroed tail",
                [&good[..], &[0; 100]].concat(),
                &["rec@0#1", "rec@23#2", "rec@47#3", "tail@72"],
            ),
            ("garbage", vec![0xab; 40], &["tail@0"]),
        ];
        for (why, bytes, want) in cases {
            assert_eq!(scan_all(&bytes), want, "{why}");
        }
    }

    #[test]
    fn scanner_handles_records_larger_than_its_chunk() {
        let big = vec![7u8; CHUNK * 2 + 5];
        let bytes = log(&[(1, b"a", b"x"), (2, b"big", &big), (3, b"z", b"")]);
        assert_eq!(
            scan_all(&bytes),
            [
                "rec@0#1",
                "rec@23#2",
                &format!("rec@{}#3", 23 + 24 + big.len())
            ]
        );
    }
}
