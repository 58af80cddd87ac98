//! The record: one entry of the append-only log, and the checksum that guards it.
//!
//! ```text
//!  offset  size  field
//!  0       4     crc32      CRC-32 (IEEE, crc32fast) of every byte after this field
//!  4       8     seq        sequence number, u64 little-endian, global and increasing, never 0
//!  12      1     flags      bit 0 = tombstone (a delete); the other bits must be 0
//!  13      4     key_len    u32 little-endian
//!  17      4     value_len  u32 little-endian; 0 for a tombstone
//!  21      k     key
//!  21+k    v     value
//! ```
//!
//! The checksum comes first and covers everything else, lengths included: a torn write (the
//! machine lost power halfway through an append) or a flipped bit anywhere in the record makes
//! the check fail. Decoding never trusts a length before checking it against the bytes actually
//! there and against the configured limits, so garbage can make us reject a record but never
//! allocate or index past the end of a buffer.

/// Bytes before the key: crc (4) + seq (8) + flags (1) + key_len (4) + value_len (4).
pub(crate) const HEADER_LEN: usize = 21;

/// `flags` bit 0: the record deletes its key.
pub(crate) const FLAG_TOMBSTONE: u8 = 1;

/// Every flag this version knows; a record with any other bit set was not written by us.
const KNOWN_FLAGS: u8 = FLAG_TOMBSTONE;

/// Largest record (header + key + value) the format allows. Locations in the index are `u32`
/// offsets and lengths; capping records and segments at 2 GiB each keeps `offset + len` inside
/// `u32` (see `StoreOptions` validation in `engine`).
pub(crate) const MAX_RECORD_BYTES: u64 = 1 << 31;

/// The key and value size limits a record must respect to be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Longest value, in bytes.
    pub max_value_bytes: usize,
}

impl Limits {
    /// What the format itself allows. Records are read back against these, not the configured
    /// limits: the configured ones bound what clients may *write*, and lowering them in the
    /// config must not turn records stored earlier into "damage" that start-up would cut off.
    /// Reading stays bounded all the same: a length is believed only if it fits in the file.
    pub(crate) const FORMAT: Limits = Limits {
        max_key_bytes: MAX_RECORD_BYTES as usize,
        max_value_bytes: MAX_RECORD_BYTES as usize,
    };
}

/// The fixed-size part of a record, decoded but not yet verified against its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Stored checksum.
    pub crc: u32,
    /// Sequence number.
    pub seq: u64,
    /// Whether this record deletes its key.
    pub tombstone: bool,
    /// Key length.
    pub key_len: u32,
    /// Value length.
    pub value_len: u32,
}

impl Header {
    /// Length of the whole record this header starts.
    pub(crate) fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.key_len) + u64::from(self.value_len)
    }
}

/// Why a header (or a whole record) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// Fewer bytes than a header, or than the header's lengths promise.
    Short,
    /// A flag bit this version does not know.
    UnknownFlags(u8),
    /// Sequence numbers start at 1; 0 is what zeroed (pre-allocated or torn) space looks like.
    ZeroSeq,
    /// A tombstone carries no value.
    TombstoneWithValue,
    /// Key longer than the configured limit.
    KeyTooLong(u32),
    /// Value longer than the configured limit.
    ValueTooLong(u32),
    /// The stored checksum does not match the bytes.
    Checksum,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Short => write!(f, "record runs past the end of the data"),
            RecordError::UnknownFlags(b) => write!(f, "unknown flags {b:#04x}"),
            RecordError::ZeroSeq => write!(f, "sequence number 0"),
            RecordError::TombstoneWithValue => write!(f, "tombstone with a value"),
            RecordError::KeyTooLong(n) => write!(f, "key length {n} over the limit"),
            RecordError::ValueTooLong(n) => write!(f, "value length {n} over the limit"),
            RecordError::Checksum => write!(f, "checksum mismatch"),
        }
    }
}

/// A record that passed every check, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordRef<'a> {
    /// The decoded header.
    pub header: Header,
    /// The key.
    pub key: &'a [u8],
    /// The value (empty for a tombstone).
    pub value: &'a [u8],
}

/// Length of the record that [`encode`] writes for this key and value.
pub(crate) fn encoded_len(key_len: usize, value_len: usize) -> u64 {
    HEADER_LEN as u64 + key_len as u64 + value_len as u64
}

/// Appends one record to `buf`. The caller has checked the lengths against the limits, so they
/// fit in `u32`.
pub(crate) fn encode(buf: &mut Vec<u8>, seq: u64, tombstone: bool, key: &[u8], value: &[u8]) {
    let start = buf.len();
    let key_len = u32::try_from(key.len()).expect("key length checked against limits");
    let value_len = u32::try_from(value.len()).expect("value length checked against limits");
    buf.reserve(HEADER_LEN + key.len() + value.len());
    buf.extend_from_slice(&[0; 4]); // checksum, filled in below
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(if tombstone { FLAG_TOMBSTONE } else { 0 });
    buf.extend_from_slice(&key_len.to_le_bytes());
    buf.extend_from_slice(&value_len.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

/// Decodes and sanity-checks a header from the first [`HEADER_LEN`] bytes of `bytes`.
///
/// `limits = None` skips the size limits: used when reading back a record the index already
/// vouches for, whose limits were checked when it was written or recovered.
pub(crate) fn decode_header(bytes: &[u8], limits: Option<&Limits>) -> Result<Header, RecordError> {
    if bytes.len() < HEADER_LEN {
        return Err(RecordError::Short);
    }
    let flags = bytes[12];
    let header = Header {
        crc: u32_at(bytes, 0),
        seq: u64_at(bytes, 4),
        tombstone: flags & FLAG_TOMBSTONE != 0,
        key_len: u32_at(bytes, 13),
        value_len: u32_at(bytes, 17),
    };
    if flags & !KNOWN_FLAGS != 0 {
        return Err(RecordError::UnknownFlags(flags));
    }
    if header.seq == 0 {
        return Err(RecordError::ZeroSeq);
    }
    if header.tombstone && header.value_len != 0 {
        return Err(RecordError::TombstoneWithValue);
    }
    if let Some(limits) = limits {
        if header.key_len as usize > limits.max_key_bytes {
            return Err(RecordError::KeyTooLong(header.key_len));
        }
        if header.value_len as usize > limits.max_value_bytes {
            return Err(RecordError::ValueTooLong(header.value_len));
        }
    }
    Ok(header)
}

/// Decodes a whole record: `bytes` must be exactly one record, header to last value byte.
pub(crate) fn decode<'a>(
    bytes: &'a [u8],
    limits: Option<&Limits>,
) -> Result<RecordRef<'a>, RecordError> {
    let header = decode_header(bytes, limits)?;
    if header.record_len() != bytes.len() as u64 {
        return Err(RecordError::Short);
    }
    if crc32fast::hash(&bytes[4..]) != header.crc {
        return Err(RecordError::Checksum);
    }
    let key_end = HEADER_LEN + header.key_len as usize;
    Ok(RecordRef {
        header,
        key: &bytes[HEADER_LEN..key_end],
        value: &bytes[key_end..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_key_bytes: 16,
        max_value_bytes: 64,
    };

    fn rec(seq: u64, tombstone: bool, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        encode(&mut b, seq, tombstone, key, value);
        b
    }

    /// Re-computes the checksum after a test has edited a header field, so that the edit and
    /// not the checksum is what decoding trips over.
    fn reseal(mut b: Vec<u8>) -> Vec<u8> {
        let crc = crc32fast::hash(&b[4..]);
        b[..4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn round_trip() {
        for (seq, tombstone, key, value) in [
            (1, false, &b"k"[..], &b"v"[..]),
            (u64::MAX, false, b"", b""),
            (7, true, b"gone", b""),
            (42, false, &[0u8; 16][..], &[0xff; 64][..]),
        ] {
            let b = rec(seq, tombstone, key, value);
            assert_eq!(b.len() as u64, encoded_len(key.len(), value.len()));
            let r = decode(&b, Some(&LIMITS)).expect("valid record");
            assert_eq!(r.header.seq, seq);
            assert_eq!(r.header.tombstone, tombstone);
            assert_eq!((r.key, r.value), (key, value));
        }
    }

    #[test]
    fn rejects_bad_input() {
        let good = rec(5, false, b"key", b"value");
        let mut flipped_value = good.clone();
        *flipped_value.last_mut().expect("non-empty") ^= 0x01;
        let mut flipped_crc = good.clone();
        flipped_crc[0] ^= 0x80;
        let mut flags = good.clone();
        flags[12] = 0x82;
        let mut zero_seq = good.clone();
        zero_seq[4..12].fill(0);
        let mut tomb_value = good.clone();
        tomb_value[12] = FLAG_TOMBSTONE;
        let mut long_key = good.clone();
        long_key[13..17].copy_from_slice(&17u32.to_le_bytes());
        let mut long_value = good.clone();
        long_value[17..21].copy_from_slice(&65u32.to_le_bytes());
        let mut absurd = good.clone();
        absurd[17..21].copy_from_slice(&u32::MAX.to_le_bytes());

        let cases: Vec<(&str, Vec<u8>, RecordError)> = vec![
            ("empty", vec![], RecordError::Short),
            ("half a header", good[..10].to_vec(), RecordError::Short),
            (
                "header only",
                good[..HEADER_LEN].to_vec(),
                RecordError::Short,
            ),
            (
                "torn value",
                good[..good.len() - 1].to_vec(),
                RecordError::Short,
            ),
            (
                "trailing byte",
                [&good[..], &[0]].concat(),
                RecordError::Short,
            ),
            ("flipped value bit", flipped_value, RecordError::Checksum),
            ("flipped crc bit", flipped_crc, RecordError::Checksum),
            (
                "unknown flag",
                reseal(flags),
                RecordError::UnknownFlags(0x82),
            ),
            ("zeroed space", vec![0; 32], RecordError::ZeroSeq),
            ("seq 0", reseal(zero_seq), RecordError::ZeroSeq),
            (
                "tombstone with value",
                reseal(tomb_value),
                RecordError::TombstoneWithValue,
            ),
            (
                "key over limit",
                reseal(long_key),
                RecordError::KeyTooLong(17),
            ),
            (
                "value over limit",
                reseal(long_value),
                RecordError::ValueTooLong(65),
            ),
            ("absurd length", absurd, RecordError::ValueTooLong(u32::MAX)),
        ];
        for (why, bytes, want) in cases {
            assert_eq!(decode(&bytes, Some(&LIMITS)), Err(want), "{why}");
        }
    }

    #[test]
    fn limits_are_optional_for_vouched_records() {
        let b = rec(9, false, &[1; 20], b"");
        assert_eq!(
            decode(&b, Some(&LIMITS)).map(|_| ()),
            Err(RecordError::KeyTooLong(20))
        );
        assert!(decode(&b, None).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: every prefix of every xorshift stream decodes to something.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes, Some(&LIMITS));
            let _ = decode(&bytes, None);
        }
    }
}
