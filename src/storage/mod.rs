//! Storage: a log-file-backed hash table, after Bitcask (Sheehy & Smith, "Bitcask: A Log-Structured
//! Hash Table for Fast Key/Value Data", Basho, 2010).
//!
//! # The idea
//!
//! Every change is *appended* to a log file; nothing on disk is ever overwritten. An in-memory
//! hash index (the *keydir*) maps each key to the place of its latest record. So:
//!
//! - a **write** is one sequential append (for a whole batch: one `write` system call), then an
//!   index update;
//! - a **read** is one hash lookup and one positioned read (`pread`) of exactly one record;
//! - a **delete** appends a *tombstone* record and drops the key from the index;
//! - old versions pile up as *dead bytes*, which **compaction** reclaims by copying live records
//!   into new files and deleting the old ones;
//! - **start-up** rebuilds the index by reading the log (or small *hint files* that list each
//!   segment's keys and locations without the values).
//!
//! The cost of this simplicity is memory: every key lives in RAM (values never do). `index`
//! explains how a key costs its own bytes plus about 40.
//!
//! # On disk
//!
//! ```text
//! data/node1/
//!   LOCK              held (flock) by the process that has the store open
//!   SEQ               highest sequence number compaction has removed (numbering never goes back)
//!   000001.log        closed segment            000001.hint      its hint file
//!   000001_001.log    compaction output         000001_001.hint
//!   000002.log        closed segment            (hint being written in the background)
//!   000003.log        active segment: the only file appended to
//!
//! segment = record*                       (rotated once it would pass segment_size_bytes)
//! record  = crc32:u32 | seq:u64 | flags:u8 | key_len:u32 | value_len:u32 | key | value
//!           └ crc32 covers every byte after it; flags bit 0 = tombstone; integers little-endian
//! hint    = "DKVH" | version:u8 | segment_len:u64
//!           | (seq:u64 | offset:u32 | len:u32 | flags:u8 | key_len:u32 | key)* | crc32:u32
//! ```
//!
//! Every record carries a **sequence number**: global, increasing, assigned under the writer
//! lock. It, not file order, decides which record of a key is the latest: recovery keeps, per
//! key, the record with the highest sequence number, and tombstones compete like any record.
//!
//! # Guarantees
//!
//! - Once `write` returns, every reader sees the batch; `existed` says, per write, whether its
//!   key had a value just before it (within the batch too).
//! - With `sync = "always"`, a write whose `wait_durable` resolved survives a power cut. With
//!   `batch`, at most about `sync_interval_ms` of acknowledged writes can be lost; with `never`,
//!   whatever the page cache had not written back (but nothing on a mere process crash).
//! - A torn or corrupt tail is cut at start-up and every record before it is kept; a damaged
//!   record in the middle is skipped; both are reported ([`RecoveryReport::damage`]) and
//!   logged. No file content makes `open` panic or allocate beyond the file's size.
//! - Every read checks the record's checksum and key: a damaged record gives
//!   [`Error::Corrupt`], never a wrong value.
//! - A failed fsync (or write) *poisons* the store: later writes and waiters get
//!   [`Error::Poisoned`] rather than an acknowledgement the disk may not honour.
//!
//! # Threads and locks
//!
//! [`Store`] is an `Arc` around the engine. Writers serialise on one mutex only long enough to
//! encode the batch into a reused buffer, `pwrite` it, and update the index; readers take one
//! index-shard read lock and a map lookup, never a lock during I/O. Two background threads
//! (plain std threads: the store needs no tokio runtime) do the slow work: the *sync thread*
//! (group commit for `always`, a timer for `batch`; see `sync`) and the *maintenance thread*
//! (hint files for segments as they close, and compaction when `compaction.auto` finds enough
//! dead bytes; see `compact`). `close`, or dropping the last clone, stops and joins both.
//!
//! # Compaction and crashes
//!
//! Compaction rewrites the live records of *all closed segments* into new segments, written
//! under temporary names, fsynced, given hint files and renamed into place; it then points the
//! index at the copies (only where the index still points at the originals: a concurrent write
//! wins), makes everything written so far durable, and deletes the old segments **oldest
//! first**. Copies keep their original sequence numbers. Every crash point is safe:
//!
//! - *Before the renames*: only `.tmp` files exist; start-up deletes them.
//! - *After some renames*: old and new segments both hold a live record; the copies are
//!   byte-for-byte identical, same sequence number, so highest-sequence-wins picks either.
//!   Copies never outrank a newer write of the key made during or after the compaction,
//!   because that write has a higher sequence number — which is why copies keep theirs.
//! - *During the deletions*: compaction drops tombstones (all older segments are inputs, so the
//!   records they shadow are being deleted too). Could a deleted key come back from an old
//!   segment that survived the crash, its tombstone gone? No. Segment ids are ordered so that
//!   a newer record of a key is always in a segment with an equal or higher id (writes go to
//!   the active segment, which has the highest id; compaction outputs get ids just after their
//!   newest input, before the active segment — see `segment`). Deleting inputs in ascending id
//!   order therefore removes every older record of a key before (or with) the segment holding
//!   its tombstone: while the tombstone's segment exists, the tombstone outranks them; once it
//!   is gone, so are they. The outputs hold nothing of the key, since it was not live.
//! - Overwritten values are dropped the same way; the records that overwrote them are made
//!   durable before the first deletion, so a crash cannot lose both the old value and the new.
//!
//! # Caveats
//!
//! - A batch is not atomic: a concurrent reader can see part of it, and a crash can cut it.
//! - `max_key_bytes` / `max_value_bytes` bound what clients may write, not what is read back:
//!   records are read against the format's own 2 GiB bound (and the file's size), so lowering
//!   the limits in the config never makes stored records unreadable.
//! - With `sync = "never"`, compaction and hint files skip their fsyncs too.
//! - Every `open` starts a new segment; an empty one is removed at the next start-up.
//! - Values read from a segment found through a hint file are checked when read, not at start-up.

mod compact;
mod engine;
mod hint;
mod index;
mod record;
mod recovery;
mod segment;
mod sync;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use engine::{Core, io_error, lock};

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
    /// Segment files read and kept (empty ones are deleted and not counted).
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
    inner: Arc<Inner>,
}

/// What the last `Store` clone owns: dropping it stops the background threads. The threads
/// hold the engine (`Core`) but not this, so they never keep the store alive by themselves.
struct Inner {
    core: Arc<Core>,
    /// The sync and maintenance threads, joined on close or drop.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    /// Tells the background threads to stop, and waits for them.
    fn stop_threads(&self) {
        let core = &self.core;
        core.stopping.store(true, Ordering::Relaxed);
        lock(&core.maint).shutdown = true;
        core.maint_cv.notify_all();
        lock(&core.sync_state).shutdown = true;
        core.sync_cv.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            // A thread that panicked has nothing left to clean up; its panic was printed.
            let _ = t.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_threads();
        let closed = lock(&self.core.writer).closed;
        if !closed
            && self.core.fsyncs()
            && let Err(e) = self.core.sync_round()
        {
            tracing::warn!(error = %e, "final sync of a dropped store failed");
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.core.opts.dir)
            .field("sync", &self.inner.core.opts.sync)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `opts.dir`: takes the directory's lock, reads every
    /// segment (through its hint file when there is a valid one), cuts torn tails, reports
    /// damage, builds the index, opens a fresh active segment, and starts the sync and
    /// compaction threads.
    ///
    /// # Errors
    /// I/O errors (unwritable directory, …) and [`Error::Locked`]. Options the format cannot
    /// honour (`segment_size_bytes` of 0 or over 2 GiB, limits whose record would pass 2 GiB)
    /// are an [`Error::Io`] of kind `InvalidInput`.
    pub fn open(opts: StoreOptions) -> Result<(Store, RecoveryReport)> {
        let opened = recovery::open(opts)?;
        let core = opened.core;
        for seg in opened.unhinted {
            core.queue_hint(seg);
        }
        let store = Store {
            inner: Arc::new(Inner {
                core: Arc::clone(&core),
                threads: Mutex::new(Vec::new()),
            }),
        };
        // If a spawn fails, dropping `store` stops the threads already started.
        let spawn = |name: &str, body: fn(Arc<Core>)| {
            let for_thread = Arc::clone(&core);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || body(for_thread))
                .map_err(|e| io_error("start thread for", &core.opts.dir, e))
        };
        if core.opts.sync != SyncPolicy::Never {
            let t = spawn("dkvs-sync", sync::sync_thread)?;
            lock(&store.inner.threads).push(t);
        }
        let t = spawn("dkvs-maintenance", compact::maintenance_thread)?;
        lock(&store.inner.threads).push(t);
        Ok((store, opened.report))
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.core().opts.dir
    }

    /// Appends `value`'s bytes for `key` to `out` and returns true, or returns false when the
    /// key has no live value. The record's checksum is verified on every read.
    ///
    /// # Errors
    /// I/O errors and [`Error::Corrupt`].
    pub fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        self.core().get_into(key, out)
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
        self.core().index.contains(key)
    }

    /// Every live key, in no particular order (index only, no disk read). Not a snapshot: a key
    /// written or deleted while the call runs may or may not be in the answer.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.core().index.keys()
    }

    /// Live keys (index only). Same as `stats().keys`, cheaper.
    pub fn len(&self) -> u64 {
        self.core().index.len()
    }

    /// Whether the store holds no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes the in-memory index holds (capacity, so an upper bound on what it keeps
    /// resident): the number to compare when measuring memory per key.
    pub fn index_bytes(&self) -> u64 {
        self.core().index.heap_bytes() as u64
    }

    /// Applies `batch` in order: all its records go to the log in one `write` call, then the
    /// index is updated so readers see them. For each write, pushes onto `existed` whether the key
    /// had a live value just before it. A `Del` of a key with no live value writes nothing.
    /// Returns a ticket for [`Store::wait_durable`]: the sequence number of the last record.
    ///
    /// Nothing in the batch is applied if any key or value is over its limit.
    ///
    /// (A batch that crosses a segment boundary takes one `write` per segment.)
    ///
    /// # Errors
    /// [`Error::KeyTooLong`], [`Error::ValueTooLong`], I/O errors, [`Error::Poisoned`]. An I/O
    /// error while appending poisons the store. After [`Store::close`]: an [`Error::Io`] saying
    /// the store is closed.
    pub fn write(&self, batch: &[Write<'_>], existed: &mut Vec<bool>) -> Result<u64> {
        self.core().write(batch, existed)
    }

    /// Resolves once every record up to `ticket` is on disk under the store's sync policy:
    /// with `always` it waits for the group fsync that covers it; with `batch` and `never` it
    /// returns at once.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the fsync failed.
    pub async fn wait_durable(&self, ticket: u64) -> Result<()> {
        let core = self.core();
        if core.opts.sync != SyncPolicy::Always {
            return if core.is_poisoned() {
                Err(Error::Poisoned)
            } else {
                Ok(())
            };
        }
        let now = *core.durable.borrow();
        let state = if now.seq >= ticket || now.poisoned {
            now
        } else {
            let mut rx = core.durable.subscribe();
            // The sender lives in `core`, which `self` keeps alive: the channel cannot close.
            *rx.wait_for(|d| d.seq >= ticket || d.poisoned)
                .await
                .map_err(|_| Error::Poisoned)?
        };
        if state.seq >= ticket {
            Ok(())
        } else {
            Err(Error::Poisoned)
        }
    }

    /// Writes and fsyncs everything appended so far, whatever the policy (used at shutdown).
    ///
    /// # Errors
    /// I/O errors; [`Error::Poisoned`] after an earlier failure.
    pub fn sync(&self) -> Result<()> {
        let core = self.core();
        if lock(&core.writer).closed {
            // `close` synced everything; nothing was written since.
            return if core.is_poisoned() {
                Err(Error::Poisoned)
            } else {
                Ok(())
            };
        }
        core.sync_round()
    }

    /// Rewrites the live records of all closed segments into new segments, swaps the index
    /// entries that still point at the old places, and removes the old segments. Blocks the
    /// calling thread; readers and writers go on meanwhile.
    ///
    /// # Errors
    /// I/O errors; the store stays usable and the old segments stay in place.
    /// [`Error::Corrupt`] if a closed segment is damaged (nothing is deleted then).
    pub fn compact(&self) -> Result<CompactionReport> {
        self.core().compact()
    }

    /// Current counters.
    pub fn stats(&self) -> StoreStats {
        let core = self.core();
        StoreStats {
            keys: core.index.len(),
            live_bytes: core.live_bytes.load(Ordering::Relaxed),
            dead_bytes: core.dead_bytes.load(Ordering::Relaxed),
            segments: core
                .segments
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len() as u64,
            compactions: core.compactions.load(Ordering::Relaxed),
            last_seq: core.last_seq.load(Ordering::Acquire),
            durable_seq: core.durable_seq(),
        }
    }

    /// Syncs and stops the background threads. Later calls on clones return errors or no-ops;
    /// dropping the last clone without `close` also stops the threads.
    ///
    /// After `close`, writes and compactions fail, reads still work, and the directory lock is
    /// released (another `open` may take the directory).
    ///
    /// # Errors
    /// I/O errors from the final sync.
    pub fn close(&self) -> Result<()> {
        let core = self.core();
        {
            let mut w = lock(&core.writer);
            if w.closed {
                return Ok(());
            }
            w.closed = true;
        }
        let synced = core.sync_round();
        self.inner.stop_threads();
        // A compaction running on a caller's thread sees `stopping` and gives up; wait for it
        // before letting another process into the directory.
        drop(lock(&core.compaction_lock));
        lock(&core.lock_file).take();
        synced
    }
}
