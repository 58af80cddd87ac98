//! Storage: a log-file-backed hash table, after Bitcask (Sheehy & Smith, 2010).
//!
//! (Specification stub: the implementation replaces this file.)

use std::path::PathBuf;

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Every acknowledged write is on disk: writers wait for an fsync, shared between
    /// concurrent writers (group commit).
    Always,
    /// A background fsync at least every `sync_interval_ms`.
    Batch,
    /// Never fsync; the operating system writes pages back when it likes.
    Never,
}

/// Everything [`Store::open`] needs.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Folder that holds this store's segment and hint files; created if missing.
    pub dir: PathBuf,
    /// When appended records reach the disk.
    pub sync: SyncPolicy,
    /// With [`SyncPolicy::Batch`]: the longest time between two fsyncs.
    pub sync_interval_ms: u64,
    /// The active segment is closed and a new one opened once it holds this many bytes.
    pub segment_size_bytes: u64,
    /// Largest key accepted, in bytes.
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// Background compaction: when it runs on its own.
    pub compaction: CompactionOptions,
}

/// When the background compactor runs on its own.
#[derive(Debug, Clone)]
pub struct CompactionOptions {
    /// Whether a background thread compacts on its own at all.
    pub auto: bool,
    /// Compact once dead bytes are at least this fraction of all bytes in closed segments ...
    pub min_dead_ratio: f64,
    /// ... and at least this many bytes.
    pub min_dead_bytes: u64,
    /// How often the background thread looks.
    pub check_interval_ms: u64,
}

/// One change to apply. Borrowed, so a batch can be built from a network buffer without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Set `key` to `value`.
    Set { key: &'a [u8], value: &'a [u8] },
    /// Remove `key` (a tombstone record).
    Del { key: &'a [u8] },
}

/// What start-up found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Segments whose hint file was used instead of a full scan.
    pub hinted_segments: usize,
    /// Records read (values and tombstones).
    pub records: u64,
    /// Live keys after recovery.
    pub keys: u64,
    /// Damage found, in file order. Each is also logged with `tracing::warn!`.
    pub damage: Vec<Damage>,
}

/// A place in a segment that failed its checksum or could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Segment file name, e.g. `000003.log`.
    pub file: String,
    /// Byte offset of the first bad byte (the start of the bad record).
    pub offset: u64,
    /// What was done about it.
    pub action: DamageAction,
}

/// What recovery did with damaged bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageAction {
    /// The file was cut at `offset`: a torn or corrupt tail. Everything before it is kept.
    Truncated {
        /// Bytes removed.
        bytes: u64,
    },
    /// One record in the middle failed its checksum and was skipped; records after it are kept.
    SkippedRecord {
        /// Length of the skipped record.
        bytes: u64,
    },
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live keys.
    pub keys: u64,
    /// Bytes of records that are the latest for their key.
    pub live_bytes: u64,
    /// Bytes of overwritten values, tombstones and skipped records, reclaimable by compaction.
    pub dead_bytes: u64,
    /// Segment files, the active one included.
    pub segments: u64,
    /// Compactions finished since start-up.
    pub compactions: u64,
    /// Last sequence number handed out.
    pub last_seq: u64,
    /// Last sequence number known to be on disk (equal to `last_seq` after `sync`).
    pub durable_seq: u64,
}

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Closed segments rewritten and removed.
    pub segments_in: u64,
    /// New segments written.
    pub segments_out: u64,
    /// Bytes before.
    pub bytes_in: u64,
    /// Bytes after.
    pub bytes_out: u64,
}

/// Storage errors. A client's mistake (a key too long) is its own variant so the server can answer
/// `ERR …` and carry on; I/O and corruption carry the path they concern.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key is longer than `max_key_bytes`.
    #[error("key too long ({len} bytes, limit {limit})")]
    KeyTooLong { len: usize, limit: usize },
    /// The value is longer than `max_value_bytes`.
    #[error("value too long ({len} bytes, limit {limit})")]
    ValueTooLong { len: usize, limit: usize },
    /// An I/O error, with what was being done and to which file.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the data directory's lock file.
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),
    /// A record read back at run time failed its checksum; the value is not returned.
    #[error("corrupt record in {file} at offset {offset}")]
    Corrupt { file: String, offset: u64 },
    /// An earlier fsync failed; the store refuses further writes rather than acknowledge
    /// writes it cannot make durable (see the fsyncgate discussion, PostgreSQL 2018).
    #[error("store is read-only after a failed fsync")]
    Poisoned,
}

/// Result alias for storage operations.
pub type Result<T> = std::result::Result<T, Error>;

/// The store: cheap to clone (an `Arc` inside), `Send + Sync`, shared by every connection.
#[derive(Clone)]
pub struct Store {
    // implementation detail
}

impl Store {
    /// Opens (or creates) the store in `opts.dir`: takes the directory's lock, reads every
    /// segment (through its hint file when there is a valid one), cuts torn tails, reports
    /// damage, builds the index, opens a fresh active segment, and starts the sync and
    /// compaction threads.
    ///
    /// # Errors
    /// I/O errors (unwritable directory, …) and [`Error::Locked`].
    pub fn open(opts: StoreOptions) -> Result<(Store, RecoveryReport)> {
        let _ = opts;
        todo!()
    }

    /// Appends `value`'s bytes for `key` to `out` and returns true, or returns false when the
    /// key has no live value. The record's checksum is verified on every read.
    ///
    /// # Errors
    /// I/O errors and [`Error::Corrupt`].
    pub fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let _ = (key, out);
        todo!()
    }

    /// Convenience form of [`Store::get_into`].
    ///
    /// # Errors
    /// As [`Store::get_into`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        Ok(self.get_into(key, &mut out)?.then_some(out))
    }

    /// Whether `key` has a live value (index only, no disk read).
    pub fn contains(&self, key: &[u8]) -> bool {
        let _ = key;
        todo!()
    }

    /// Applies `batch` in order: all its records go to the log in one `write` call, then the
    /// index is updated so readers see them. For each write, pushes onto `existed` whether the key
    /// had a live value just before it. A `Del` of a key with no live value writes nothing.
    /// Returns a ticket for [`Store::wait_durable`]: the sequence number of the last record.
    ///
    /// Nothing in the batch is applied if any key or value is over its limit.
    ///
    /// # Errors
    /// [`Error::KeyTooLong`], [`Error::ValueTooLong`], I/O errors, [`Error::Poisoned`].
    pub fn write(&self, batch: &[Write<'_>], existed: &mut Vec<bool>) -> Result<u64> {
        let _ = (batch, existed);
        todo!()
    }

    /// Resolves once every record up to `ticket` is on disk under the store's sync policy:
    /// with `always` it waits for the group fsync that covers it; with `batch` and `never` it
    /// returns at once.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the fsync failed.
    pub async fn wait_durable(&self, ticket: u64) -> Result<()> {
        let _ = ticket;
        todo!()
    }

    /// Writes and fsyncs everything appended so far, whatever the policy (used at shutdown).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> Result<()> {
        todo!()
    }

    /// Rewrites the live records of all closed segments into new segments, swaps the index
    /// entries that still point at the old places, and removes the old segments. Blocks the
    /// calling thread; readers and writers go on meanwhile.
    ///
    /// # Errors
    /// I/O errors; the store stays usable and the old segments stay in place.
    pub fn compact(&self) -> Result<CompactionReport> {
        todo!()
    }

    /// Current counters.
    pub fn stats(&self) -> StoreStats {
        todo!()
    }

    /// Syncs and stops the background threads. Later calls on clones return errors or no-ops;
    /// dropping the last clone without `close` also stops the threads.
    ///
    /// # Errors
    /// I/O errors from the final sync.
    pub fn close(&self) -> Result<()> {
        todo!()
    }
}
