//! The engine: the state every `Store` clone and background thread shares, and the write and
//! read paths.
//!
//! Locks, and what each one guards (take them in this order, never the reverse):
//!
//! | lock | guards | held for |
//! |---|---|---|
//! | `compaction_lock` | one compaction or hint write at a time | a whole compaction |
//! | `sync_lock` | one fsync round at a time | a few fsyncs |
//! | `writer` | the active segment's tail, sequence numbers | encode + one `pwrite` + index updates |
//! | `segments` | handle → open segment | a map lookup or insert |
//! | index shard locks | one shard of the keydir | one hash-table operation |
//!
//! No lock is held across a `pread`, and no lock readers need is held across an fsync.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};

use tokio::sync::watch;

use super::compact::MaintState;
use super::index::{Index, Loc};
use super::record::{self, Limits, MAX_RECORD_BYTES};
use super::segment::{Segment, SegmentId};
use super::sync::{Durable, SyncState};
use super::{Error, Result, StoreOptions, SyncPolicy, Write};

/// Locks a mutex. The state behind each of our mutexes is left consistent before any operation
/// that could panic, so a poisoned mutex (a thread panicked holding it) is still safe to use,
/// and using it keeps one bug from becoming a panic in every connection.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds an [`Error::Io`].
pub(crate) fn io_error(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// A batch whose scratch space (encode buffer, per-record lists) grew past this many bytes
/// gives it back afterwards, so one huge batch does not pin its size in memory for good.
const KEEP_BUF_BYTES: usize = 1 << 20;

/// A batch up to this many writes finds earlier writes to the same key by a backwards scan;
/// longer ones use a hash map.
const SMALL_BATCH: usize = 16;

/// Attempts at a read whose segment disappeared under it (see [`Core::get_into`]).
const READ_ATTEMPTS: usize = 16;

/// State shared by every `Store` clone and the background threads.
pub(crate) struct Core {
    /// The options the store was opened with.
    pub opts: StoreOptions,
    /// Key and value limits, as the record decoder wants them.
    pub limits: Limits,
    /// Key → location of the key's latest record.
    pub index: Index,
    /// Every open segment by handle, the active one included. Readers clone an `Arc` out and
    /// drop the lock before reading.
    pub segments: RwLock<HashMap<u32, Arc<Segment>>>,
    /// The write side.
    pub writer: Mutex<Writer>,
    /// Next segment handle.
    pub next_handle: AtomicU32,
    /// Bytes of records that are their key's latest.
    pub live_bytes: AtomicU64,
    /// Bytes of all other records (overwritten, tombstones, skipped, compaction leftovers).
    pub dead_bytes: AtomicU64,
    /// The part of `dead_bytes` that lies in the active segment, which compaction leaves alone.
    pub active_dead: AtomicU64,
    /// Last sequence number written (and indexed).
    pub last_seq: AtomicU64,
    /// Compactions finished.
    pub compactions: AtomicU64,
    /// The highest sequence number recorded in the `SEQ` file (see `segment::SEQ_NAME`).
    pub seq_floor: AtomicU64,
    /// Durable sequence number and poisoning, for `wait_durable` (a watch channel works
    /// without a tokio runtime on the sending side).
    pub durable: watch::Sender<Durable>,
    /// An fsync or write failed: refuse writes.
    pub poisoned: AtomicBool,
    /// Background work should stop (shutdown).
    pub stopping: AtomicBool,
    /// One fsync round at a time.
    pub sync_lock: Mutex<()>,
    /// What the sync thread waits on.
    pub sync_state: Mutex<SyncState>,
    /// Wakes the sync thread.
    pub sync_cv: Condvar,
    /// What the maintenance thread waits on.
    pub maint: Mutex<MaintState>,
    /// Wakes the maintenance thread.
    pub maint_cv: Condvar,
    /// One compaction (or hint write) at a time.
    pub compaction_lock: Mutex<()>,
    /// The directory's lock file; `None` once closed, which releases the lock.
    pub lock_file: Mutex<Option<File>>,
}

/// The write side, behind `Core::writer`.
pub(crate) struct Writer {
    /// The segment being appended to.
    pub active: Arc<Segment>,
    /// Sequence number of the next record.
    pub next_seq: u64,
    /// Major number of the next writer segment.
    pub next_major: u32,
    /// Closed segments whose data has not been fsynced yet (the sync round takes them).
    pub unsynced: Vec<Arc<Segment>>,
    /// A file was created or renamed since the last directory fsync.
    pub dir_dirty: bool,
    /// `close` was called.
    pub closed: bool,
    /// Encode buffer, reused by every batch: one allocation serves all writes.
    buf: Vec<u8>,
    /// Where each written record of the current batch went, reused.
    pending: Vec<Pending>,
    /// For each write of the current batch: whether its key is live just before it, reused.
    live: Vec<bool>,
}

/// One record of the batch being written.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Position in the batch.
    idx: usize,
    /// Where it was written.
    loc: Loc,
}

impl Writer {
    /// A writer appending to `active`.
    pub(crate) fn new(active: Arc<Segment>, next_seq: u64, next_major: u32) -> Writer {
        Writer {
            active,
            next_seq,
            next_major,
            unsynced: Vec::new(),
            dir_dirty: true, // the active segment was just created
            closed: false,
            buf: Vec::new(),
            pending: Vec::new(),
            live: Vec::new(),
        }
    }
}

/// Checks the options and derives the record limits.
///
/// # Errors
/// [`Error::Io`] of kind `InvalidInput` naming the option.
pub(crate) fn validate(opts: &StoreOptions) -> Result<Limits> {
    let invalid = |what: &str| {
        io_error(
            "check options for",
            &opts.dir,
            io::Error::new(io::ErrorKind::InvalidInput, what.to_string()),
        )
    };
    if opts.segment_size_bytes == 0 || opts.segment_size_bytes > MAX_RECORD_BYTES {
        return Err(invalid("segment_size_bytes must be within 1..=2 GiB"));
    }
    if record::encoded_len(opts.max_key_bytes, opts.max_value_bytes) > MAX_RECORD_BYTES {
        return Err(invalid(
            "max_key_bytes + max_value_bytes must stay below 2 GiB",
        ));
    }
    Ok(Limits {
        max_key_bytes: opts.max_key_bytes,
        max_value_bytes: opts.max_value_bytes,
    })
}

/// Creates a new, empty segment file (never reusing a name).
///
/// # Errors
/// I/O errors.
pub(crate) fn create_segment(dir: &Path, id: SegmentId, handle: u32) -> Result<Segment> {
    let name = id.log_name();
    let path = dir.join(&name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_error("create", &path, e))?;
    Ok(Segment {
        handle,
        id,
        file,
        len: AtomicU64::new(0),
        name,
    })
}

impl Write<'_> {
    fn key(&self) -> &[u8] {
        match self {
            Write::Set { key, .. } | Write::Del { key } => key,
        }
    }
}

impl Core {
    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// The error for using a closed store.
    pub(crate) fn closed_error(&self) -> Error {
        io_error("use", self.dir(), io::Error::other("store is closed"))
    }

    /// Whether the store is poisoned.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Marks the store read-only after a failed write or fsync, and wakes every durability
    /// waiter so they can report it.
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
        self.durable.send_modify(|d| d.poisoned = true);
    }

    /// Whether fsyncs happen at all under this policy.
    pub(crate) fn fsyncs(&self) -> bool {
        self.opts.sync != SyncPolicy::Never
    }

    /// The segment with `handle`, if it is still open.
    pub(crate) fn segment(&self, handle: u32) -> Option<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&handle)
            .cloned()
    }

    /// See `Store::get_into`.
    pub(crate) fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        for _ in 0..READ_ATTEMPTS {
            let Some(loc) = self.index.get(key) else {
                return Ok(false);
            };
            // The segment can vanish between the two lookups only if a compaction moved the
            // key and removed the segment meanwhile; the index then already points at the
            // new place, so looking again finds it.
            let Some(seg) = self.segment(loc.seg) else {
                continue;
            };
            self.read_record(&seg, loc, key, out)?;
            return Ok(true);
        }
        Err(io_error(
            "read",
            self.dir(),
            io::Error::other("key kept moving between segments while being read"),
        ))
    }

    /// Reads the record at `loc` straight into the tail of `out`, checks it, and leaves only
    /// its value there: no allocation besides `out`'s own growth.
    fn read_record(&self, seg: &Segment, loc: Loc, key: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + loc.len as usize, 0);
        let corrupt = || Error::Corrupt {
            file: seg.name.clone(),
            offset: u64::from(loc.offset),
        };
        match seg
            .file
            .read_exact_at(&mut out[start..], u64::from(loc.offset))
        {
            Ok(()) => {}
            // The index says the record is there; a file too short for it was cut behind our
            // back, which is corruption, not a transient I/O problem.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                out.truncate(start);
                return Err(corrupt());
            }
            Err(e) => {
                out.truncate(start);
                return Err(io_error("read", &seg.path(self.dir()), e));
            }
        }
        let value_at = match record::decode(&out[start..], None) {
            Ok(r) if r.key == key && !r.header.tombstone => loc.len as usize - r.value.len(),
            Ok(_) | Err(_) => {
                out.truncate(start);
                tracing::warn!(
                    file = %seg.name,
                    offset = loc.offset,
                    "record failed its check at read time; not returning it"
                );
                return Err(corrupt());
            }
        };
        out.copy_within(start + value_at.., start);
        out.truncate(start + loc.len as usize - value_at);
        Ok(())
    }

    /// See `Store::write`.
    pub(crate) fn write(&self, batch: &[Write<'_>], existed: &mut Vec<bool>) -> Result<u64> {
        // Check every limit before touching anything: a client's oversize value must not
        // leave half a batch applied.
        for w in batch {
            let key = w.key();
            if key.len() > self.limits.max_key_bytes {
                return Err(Error::KeyTooLong {
                    len: key.len(),
                    limit: self.limits.max_key_bytes,
                });
            }
            if let Write::Set { value, .. } = w
                && value.len() > self.limits.max_value_bytes
            {
                return Err(Error::ValueTooLong {
                    len: value.len(),
                    limit: self.limits.max_value_bytes,
                });
            }
        }

        let mut guard = lock(&self.writer);
        let w = &mut *guard;
        if w.closed {
            return Err(self.closed_error());
        }
        if self.is_poisoned() {
            return Err(Error::Poisoned);
        }

        let mut live = std::mem::take(&mut w.live);
        self.plan_deletes(batch, &mut live);
        let appended = self.append(w, batch, &live);
        w.live = live;
        if let Err(e) = appended {
            // Some bytes of the batch may be in the file without being indexed, and the
            // file's tail is in an unknown state: stop taking writes; the next start-up's
            // recovery decides what is on disk.
            self.poison();
            return Err(e);
        }

        // Only now do readers see the batch: every record is in the file.
        let active = w.active.handle;
        let (mut live_add, mut live_sub, mut dead_add, mut active_dead_add) = (0u64, 0, 0, 0);
        let mut pending = w.pending.iter().peekable();
        for (i, op) in batch.iter().enumerate() {
            let Some(p) = pending.next_if(|p| p.idx == i) else {
                existed.push(false); // a delete of a key that was not there: nothing written
                continue;
            };
            let old = match op {
                Write::Set { key, .. } => {
                    live_add += u64::from(p.loc.len);
                    self.index.insert(key, p.loc)
                }
                Write::Del { key } => {
                    dead_add += u64::from(p.loc.len); // a tombstone is dead from birth
                    if p.loc.seg == active {
                        active_dead_add += u64::from(p.loc.len);
                    }
                    self.index.remove(key)
                }
            };
            existed.push(old.is_some());
            if let Some(old) = old {
                // The record it replaces is dead now.
                live_sub += u64::from(old.len);
                dead_add += u64::from(old.len);
                if old.seg == active {
                    active_dead_add += u64::from(old.len);
                }
            }
        }
        self.live_bytes.fetch_add(live_add, Ordering::Relaxed);
        self.live_bytes.fetch_sub(live_sub, Ordering::Relaxed);
        self.dead_bytes.fetch_add(dead_add, Ordering::Relaxed);
        self.active_dead
            .fetch_add(active_dead_add, Ordering::Relaxed);
        let ticket = w.next_seq - 1;
        self.last_seq.store(ticket, Ordering::Release);
        if w.buf.capacity() > KEEP_BUF_BYTES {
            w.buf = Vec::new();
        }
        if w.pending.capacity() * size_of::<Pending>() > KEEP_BUF_BYTES {
            w.pending = Vec::new();
        }
        if w.live.capacity() > KEEP_BUF_BYTES {
            w.live = Vec::new();
        }
        drop(guard);

        if self.opts.sync == SyncPolicy::Always {
            self.request_sync(ticket);
        }
        Ok(ticket)
    }

    /// Fills `live[i]` for each delete in `batch`: whether its key has a live value just
    /// before it, counting the batch's own earlier writes. A delete of a missing key writes
    /// nothing. Sets are not planned: the index update reports whether they replaced a value.
    fn plan_deletes(&self, batch: &[Write<'_>], live: &mut Vec<bool>) {
        live.clear();
        live.resize(batch.len(), false);
        if !batch.iter().any(|w| matches!(w, Write::Del { .. })) {
            return;
        }
        if batch.len() <= SMALL_BATCH {
            for (i, op) in batch.iter().enumerate() {
                if let Write::Del { key } = op {
                    live[i] = match batch[..i].iter().rev().find(|w| w.key() == *key) {
                        Some(Write::Set { .. }) => true,
                        Some(Write::Del { .. }) => false,
                        None => self.index.contains(key),
                    };
                }
            }
        } else {
            let mut seen: HashMap<&[u8], bool> = HashMap::with_capacity(batch.len());
            for (i, op) in batch.iter().enumerate() {
                match op {
                    Write::Set { key, .. } => {
                        seen.insert(key, true);
                    }
                    Write::Del { key } => {
                        live[i] = match seen.get(key) {
                            Some(&l) => l,
                            None => self.index.contains(key),
                        };
                        seen.insert(key, false);
                    }
                }
            }
        }
    }

    /// Encodes the batch's records into the reused buffer and writes them with one `pwrite`
    /// per segment they land in — one for any batch that does not cross a rotation.
    fn append(&self, w: &mut Writer, batch: &[Write<'_>], live: &[bool]) -> Result<()> {
        w.buf.clear();
        w.pending.clear();
        let limit = self.opts.segment_size_bytes;
        let mut base = w.active.len.load(Ordering::Relaxed);
        for (idx, op) in batch.iter().enumerate() {
            let (key, value, tombstone) = match *op {
                Write::Set { key, value } => (key, value, false),
                Write::Del { key } if live[idx] => (key, &[][..], true),
                Write::Del { .. } => continue,
            };
            let len = record::encoded_len(key.len(), value.len());
            let used = base + w.buf.len() as u64;
            // Rotate before a record that would overflow the segment, unless it is the
            // segment's first (a record larger than a segment gets a segment of its own).
            if used > 0 && used + len > limit {
                self.flush(w, base)?;
                self.rotate(w)?;
                base = 0;
            }
            // Both fit in u32: segments and records are capped at 2 GiB (see `validate`).
            let offset = (base + w.buf.len() as u64) as u32;
            record::encode(&mut w.buf, w.next_seq, tombstone, key, value);
            w.next_seq += 1;
            w.pending.push(Pending {
                idx,
                loc: Loc {
                    seg: w.active.handle,
                    offset,
                    len: len as u32,
                },
            });
        }
        self.flush(w, base)
    }

    /// Writes the buffer at `base` in the active segment.
    fn flush(&self, w: &mut Writer, base: u64) -> Result<()> {
        if w.buf.is_empty() {
            return Ok(());
        }
        // `pwrite` at an offset we track, not `O_APPEND`: after a failed partial write we
        // know exactly where the good bytes end.
        w.active
            .file
            .write_all_at(&w.buf, base)
            .map_err(|e| io_error("append to", &w.active.path(self.dir()), e))?;
        w.active
            .len
            .store(base + w.buf.len() as u64, Ordering::Release);
        w.buf.clear();
        Ok(())
    }

    /// Closes the active segment and opens the next one. The closed segment goes to the sync
    /// round (its data must be fsynced before the durable sequence number passes its
    /// records) and to the maintenance thread (for its hint file).
    fn rotate(&self, w: &mut Writer) -> Result<()> {
        let id = SegmentId {
            major: w.next_major,
            minor: 0,
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let seg = Arc::new(create_segment(self.dir(), id, handle)?);
        w.next_major += 1;
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(handle, Arc::clone(&seg));
        let old = std::mem::replace(&mut w.active, seg);
        w.unsynced.push(Arc::clone(&old));
        w.dir_dirty = true;
        self.active_dead.store(0, Ordering::Relaxed);
        tracing::debug!(closed = %old.name, opened = %w.active.name, "segment rotated");
        self.queue_hint(old);
        Ok(())
    }
}
