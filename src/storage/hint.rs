//! Hint files: a closed segment's index entries without its values, so start-up is fast.
//!
//! Bitcask's "hint files" (Sheehy & Smith 2010, §2) let start-up rebuild the keydir by reading
//! keys and locations only, instead of every value of every segment. Ours:
//!
//! ```text
//!  "DKVH"  u8 version=1  u64 segment_len
//!  entry*:  u64 seq  u32 offset  u32 len  u8 flags  u32 key_len  key
//!  u32 crc32 of every byte before it
//! ```
//!
//! A hint is only ever *trusted as a whole*: its checksum must match, and the segment length it
//! records must equal the segment file's length now, otherwise start-up ignores it and scans the
//! segment (a hint written before a crash for a segment that later lost bytes, or a hint from
//! another segment renamed by hand, cannot slip through). Hints are written under a temporary
//! name, made durable, and renamed into place, so a half-written hint never has a real name.
//!
//! Caveat: a hinted segment's records are not checksummed at start-up — that is the point — so
//! a value that rotted on disk is found at its first read (an `Error::Corrupt`), not at open.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::Path;

use super::record::{FLAG_TOMBSTONE, HEADER_LEN, Limits};
use super::segment::{SegmentId, TEMP_SUFFIX};

const MAGIC: &[u8; 4] = b"DKVH";
const VERSION: u8 = 1;
/// magic + version + segment_len.
const PREAMBLE: usize = 4 + 1 + 8;
/// seq + offset + len + flags + key_len.
const ENTRY_FIXED: usize = 8 + 4 + 4 + 1 + 4;

/// One hint entry: a record's index information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HintEntry<'a> {
    /// The record's sequence number.
    pub seq: u64,
    /// Where the record starts in the segment.
    pub offset: u32,
    /// The record's length.
    pub len: u32,
    /// Whether the record is a tombstone.
    pub tombstone: bool,
    /// The record's key.
    pub key: &'a [u8],
}

/// Why a hint file was not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HintError {
    /// Too short, or an entry runs past the end.
    Truncated,
    /// Not a hint file of this version.
    BadMagic,
    /// The checksum does not match.
    Checksum,
    /// Written for a segment of another length.
    LengthMismatch {
        /// What the hint says.
        hint: u64,
        /// What the segment is.
        segment: u64,
    },
    /// An entry that cannot describe a record of the segment.
    BadEntry,
}

impl std::fmt::Display for HintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HintError::Truncated => write!(f, "truncated"),
            HintError::BadMagic => write!(f, "not a version-{VERSION} hint file"),
            HintError::Checksum => write!(f, "checksum mismatch"),
            HintError::LengthMismatch { hint, segment } => {
                write!(f, "written for {hint} segment bytes, segment has {segment}")
            }
            HintError::BadEntry => write!(f, "entry does not fit the segment"),
        }
    }
}

/// Builds a hint file in memory, entry by entry.
#[derive(Debug)]
pub(crate) struct HintBuilder {
    buf: Vec<u8>,
}

impl HintBuilder {
    /// An empty hint.
    pub(crate) fn new() -> HintBuilder {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(MAGIC);
        buf.push(VERSION);
        buf.extend_from_slice(&[0; 8]); // segment_len, set by finish
        HintBuilder { buf }
    }

    /// Adds a record's entry.
    pub(crate) fn push(&mut self, e: &HintEntry<'_>) {
        self.buf.extend_from_slice(&e.seq.to_le_bytes());
        self.buf.extend_from_slice(&e.offset.to_le_bytes());
        self.buf.extend_from_slice(&e.len.to_le_bytes());
        self.buf.push(if e.tombstone { FLAG_TOMBSTONE } else { 0 });
        self.buf
            .extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(e.key);
    }

    /// The finished file's bytes, for a segment of `segment_len` bytes.
    pub(crate) fn finish(mut self, segment_len: u64) -> Vec<u8> {
        self.buf[5..PREAMBLE].copy_from_slice(&segment_len.to_le_bytes());
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

fn entry_at<'a>(
    body: &'a [u8],
    pos: usize,
    segment_len: u64,
    limits: &Limits,
) -> Result<HintEntry<'a>, HintError> {
    let fixed = body
        .get(pos..pos + ENTRY_FIXED)
        .ok_or(HintError::Truncated)?;
    let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(fixed[0..8].try_into().expect("8 bytes"));
    let (offset, len, flags, key_len) = (u32_at(8), u32_at(12), fixed[16], u32_at(17));
    let key_start = pos + ENTRY_FIXED;
    let key = body
        .get(key_start..key_start + key_len as usize)
        .ok_or(HintError::Truncated)?;
    let tombstone = flags == FLAG_TOMBSTONE;
    let value_len = u64::from(len).checked_sub(HEADER_LEN as u64 + u64::from(key_len));
    let plausible = seq != 0
        && (flags == 0 || tombstone)
        && key_len as usize <= limits.max_key_bytes
        && value_len.is_some_and(|v| v <= limits.max_value_bytes as u64)
        && (!tombstone || value_len == Some(0))
        && u64::from(offset) + u64::from(len) <= segment_len;
    if !plausible {
        return Err(HintError::BadEntry);
    }
    Ok(HintEntry {
        seq,
        offset,
        len,
        tombstone,
        key,
    })
}

/// Checks a whole hint file for a segment of `segment_len` bytes; returns its entries' body
/// (to pass to [`entries`]) only if every entry is sound, so a bad hint is never half applied.
pub(crate) fn validate<'a>(
    bytes: &'a [u8],
    segment_len: u64,
    limits: &Limits,
) -> Result<&'a [u8], HintError> {
    if bytes.len() < PREAMBLE + 4 {
        return Err(HintError::Truncated);
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(content) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(HintError::Checksum);
    }
    if &content[..4] != MAGIC || content[4] != VERSION {
        return Err(HintError::BadMagic);
    }
    let hint_len = u64::from_le_bytes(content[5..PREAMBLE].try_into().expect("8 bytes"));
    if hint_len != segment_len {
        return Err(HintError::LengthMismatch {
            hint: hint_len,
            segment: segment_len,
        });
    }
    let body = &content[PREAMBLE..];
    let mut pos = 0;
    let mut prev_end = 0u64;
    while pos < body.len() {
        let e = entry_at(body, pos, segment_len, limits)?;
        // Records do not overlap and come in file order.
        if u64::from(e.offset) < prev_end {
            return Err(HintError::BadEntry);
        }
        prev_end = u64::from(e.offset) + u64::from(e.len);
        pos += ENTRY_FIXED + e.key.len();
    }
    Ok(body)
}

/// The entries of a body that [`validate`] accepted.
pub(crate) fn entries(body: &[u8]) -> impl Iterator<Item = HintEntry<'_>> {
    let unlimited = Limits {
        max_key_bytes: usize::MAX,
        max_value_bytes: usize::MAX,
    };
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let e = entry_at(body, pos, u64::MAX, &unlimited).expect("body was validated");
        pos += ENTRY_FIXED + e.key.len();
        Some(e)
    })
}

/// The entries of a hint this process just built with [`HintBuilder::finish`].
pub(crate) fn finished_entries(bytes: &[u8]) -> impl Iterator<Item = HintEntry<'_>> {
    entries(&bytes[PREAMBLE..bytes.len() - 4])
}

/// Reads segment `id`'s hint file, if there is one of a believable size. A hint entry is never
/// longer than the record it describes, so a hint file larger than its segment (plus the
/// preamble and checksum) is not ours, and is not read into memory.
///
/// # Errors
/// I/O errors other than the file not existing.
pub(crate) fn read(
    dir: &Path,
    id: SegmentId,
    segment_len: u64,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = match File::open(dir.join(id.hint_name())) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len > segment_len + (PREAMBLE + 4) as u64 {
        return Ok(Some(Vec::new())); // fails validation as Truncated
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Writes segment `id`'s hint file: under a temporary name, fsynced when `sync`, then renamed
/// into place. The caller fsyncs the directory if it wants the rename durable.
///
/// # Errors
/// I/O errors; the temporary file is removed on the way out.
pub(crate) fn write(dir: &Path, id: SegmentId, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let tmp = dir.join(format!("{}{TEMP_SUFFIX}", id.hint_name()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_data()?;
        }
        fs::rename(&tmp, dir.join(id.hint_name()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_key_bytes: 16,
        max_value_bytes: 100,
    };

    fn sample() -> (Vec<u8>, Vec<HintEntry<'static>>) {
        let want = vec![
            HintEntry {
                seq: 1,
                offset: 0,
                len: 30,
                tombstone: false,
                key: b"alpha",
            },
            HintEntry {
                seq: 7,
                offset: 30,
                len: 25,
                tombstone: true,
                key: b"beta",
            },
            HintEntry {
                seq: 3,
                offset: 55,
                len: 21,
                tombstone: false,
                key: b"",
            },
        ];
        let mut b = HintBuilder::new();
        for e in &want {
            b.push(e);
        }
        (b.finish(76), want)
    }

    #[test]
    fn round_trip() {
        let (bytes, want) = sample();
        let body = validate(&bytes, 76, &LIMITS).expect("valid hint");
        assert_eq!(entries(body).collect::<Vec<_>>(), want);
    }

    #[test]
    fn rejects_bad_hints() {
        let (good, _) = sample();
        let mut flipped = good.clone();
        flipped[20] ^= 4;
        let mut magic = good.clone();
        magic[0] = b'X';
        let resealed = |mut b: Vec<u8>| {
            let n = b.len() - 4;
            let crc = crc32fast::hash(&b[..n]);
            b[n..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let mut past_end = good.clone();
        past_end[PREAMBLE + 8..PREAMBLE + 12].copy_from_slice(&70u32.to_le_bytes());
        let mut overlapping = good.clone();
        overlapping[PREAMBLE + ENTRY_FIXED + 5 + 8..][..4].copy_from_slice(&10u32.to_le_bytes());

        let cases: Vec<(&str, Vec<u8>, u64, HintError)> = vec![
            ("empty", vec![], 76, HintError::Truncated),
            (
                "cut short",
                good[..good.len() - 9].to_vec(),
                76,
                HintError::Checksum,
            ),
            ("bit flip", flipped, 76, HintError::Checksum),
            (
                "segment grew",
                good.clone(),
                77,
                HintError::LengthMismatch {
                    hint: 76,
                    segment: 77,
                },
            ),
            ("magic", resealed(magic), 76, HintError::BadMagic),
            (
                "entry past the segment",
                resealed(past_end),
                76,
                HintError::BadEntry,
            ),
            (
                "overlapping entries",
                resealed(overlapping),
                76,
                HintError::BadEntry,
            ),
        ];
        for (why, bytes, seg_len, want) in cases {
            assert_eq!(
                validate(&bytes, seg_len, &LIMITS).map(|_| ()),
                Err(want),
                "{why}"
            );
        }
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = SegmentId { major: 3, minor: 1 };
        let (bytes, _) = sample();
        assert_eq!(read(dir.path(), id, 76).expect("read"), None);
        write(dir.path(), id, &bytes, true).expect("write");
        assert_eq!(read(dir.path(), id, 76).expect("read"), Some(bytes));
        // A hint larger than its segment could be is not read at all.
        assert_eq!(read(dir.path(), id, 10).expect("read"), Some(Vec::new()));
    }
}
