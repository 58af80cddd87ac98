//! Start-up: lock the directory, tidy it, read every segment, rebuild the index.
//!
//! Recovery trusts nothing it reads. Each segment is read through its hint file when a valid
//! one exists, otherwise scanned record by record with every checksum checked:
//! - a record whose header is implausible (unknown flags, sequence 0, lengths over the format's
//!   2 GiB limit)
//!   or that runs past the end of the file, or a bad checksum with nothing valid after it, is a
//!   **torn or corrupt tail**: the file is cut there and everything before it is kept;
//! - a bad checksum in the middle, with lengths that fit and a valid record right after it, is
//!   **one damaged record**: it is skipped (its bytes counted dead, never indexed).
//!
//! The index keeps, per key, the record with the highest sequence number; tombstones take part
//! in that contest and are dropped at the end. Because the winner is decided by sequence number
//! and not by the order files are read in, a crash in any step of a compaction (duplicates of
//! records in old and new segments) recovers to the same state.
//!
//! The store then always opens a *fresh* active segment instead of appending to the last one:
//! the old tail was just checked and perhaps cut, and a new file is simpler to reason about than
//! one whose end we have to trust.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use tokio::sync::watch;

use super::engine::{Core, Writer, create_segment, io_error, validate};
use super::hint;
use super::index::{Index, Loc};
use super::record::Limits;
use super::segment::{
    FileKind, Item, LOCK_NAME, SEQ_NAME, Scanner, Segment, SegmentId, classify, decode_seq_floor,
};
use super::sync::Durable;
use super::{Damage, DamageAction, Error, RecoveryReport, Result, StoreOptions};

/// What [`open`] hands to `Store::open`.
pub(crate) struct Opened {
    /// The engine, ready to use.
    pub core: Arc<Core>,
    /// What was found.
    pub report: RecoveryReport,
    /// Closed segments without a valid hint file: the maintenance thread writes them one.
    pub unhinted: Vec<Arc<Segment>>,
}

/// Everything recovery accumulates while reading segments.
struct Rebuild {
    index: Index,
    report: RecoveryReport,
    max_seq: u64,
}

impl Rebuild {
    fn apply(&mut self, key: &[u8], loc: Loc, seq: u64) {
        self.index.upsert_newer(key, loc, seq);
        self.max_seq = self.max_seq.max(seq);
        self.report.records += 1;
    }
}

/// Opens the store in `opts.dir`; see `Store::open`.
///
/// # Errors
/// Invalid options, I/O errors, [`Error::Locked`].
pub(crate) fn open(opts: StoreOptions) -> Result<Opened> {
    let limits = validate(&opts)?;
    let dir = opts.dir.clone();
    fs::create_dir_all(&dir).map_err(|e| io_error("create directory", &dir, e))?;
    let fsyncs = opts.sync != super::SyncPolicy::Never;

    // An advisory lock (flock) on a file inside the directory: released by the kernel when
    // the process dies, so a crash never leaves the directory locked.
    let lock_path = dir.join(LOCK_NAME);
    let lock_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| io_error("open", &lock_path, e))?;
    lock_exclusive(&lock_file).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => Error::Locked(dir.clone()),
        _ => io_error("lock", &lock_path, e),
    })?;

    let (logs, hints) = tidy(&dir)?;
    let mut rebuild = Rebuild {
        index: Index::new(true),
        report: RecoveryReport::default(),
        max_seq: 0,
    };
    let mut segments = HashMap::new();
    let mut unhinted = Vec::new();
    let mut total_bytes = 0u64;
    let mut next_handle = 0u32;
    for &id in &logs {
        let handle = next_handle;
        next_handle += 1;
        let hinted = hints.contains(&id);
        if let Some((seg, used_hint)) = read_segment(
            &dir,
            id,
            handle,
            hinted,
            Limits::FORMAT,
            fsyncs,
            &mut rebuild,
        )? {
            let seg = Arc::new(seg);
            total_bytes += seg.len.load(std::sync::atomic::Ordering::Relaxed);
            if !used_hint {
                unhinted.push(Arc::clone(&seg));
            }
            segments.insert(handle, seg);
        }
    }
    let Rebuild {
        mut index,
        mut report,
        max_seq,
    } = rebuild;
    let (keys, live_bytes) = index.finish_recovery();
    report.keys = keys;

    let exhausted = |what: &str| {
        io_error(
            "open",
            &dir,
            io::Error::new(io::ErrorKind::InvalidData, format!("{what} exhausted")),
        )
    };
    let seq_floor = read_seq_floor(&dir)?;
    let max_seq = max_seq.max(seq_floor);
    let next_seq = max_seq
        .checked_add(1)
        .ok_or_else(|| exhausted("sequence numbers"))?;
    let major = logs
        .last()
        .map_or(Some(1), |id| id.major.checked_add(1))
        .ok_or_else(|| exhausted("segment ids"))?;
    let active = Arc::new(create_segment(
        &dir,
        SegmentId { major, minor: 0 },
        next_handle,
    )?);
    segments.insert(next_handle, Arc::clone(&active));

    let (durable, _) = watch::channel(Durable {
        seq: max_seq,
        poisoned: false,
    });
    let core = Core {
        limits,
        index,
        segments: RwLock::new(segments),
        writer: Mutex::new(Writer::new(active, next_seq, major.saturating_add(1))),
        next_handle: AtomicU32::new(next_handle + 1),
        live_bytes: AtomicU64::new(live_bytes),
        dead_bytes: AtomicU64::new(total_bytes - live_bytes),
        active_dead: AtomicU64::new(0),
        last_seq: AtomicU64::new(max_seq),
        compactions: AtomicU64::new(0),
        seq_floor: AtomicU64::new(seq_floor),
        durable,
        poisoned: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        sync_lock: Mutex::new(()),
        sync_state: Mutex::default(),
        sync_cv: Condvar::new(),
        maint: Mutex::default(),
        maint_cv: Condvar::new(),
        compaction_lock: Mutex::new(()),
        lock_file: Mutex::new(Some(lock_file)),
        opts,
    };
    tracing::info!(
        dir = %core.opts.dir.display(),
        segments = report.segments,
        hinted = report.hinted_segments,
        records = report.records,
        keys = report.keys,
        damage = report.damage.len(),
        "store opened"
    );
    Ok(Opened {
        core: Arc::new(core),
        report,
        unhinted,
    })
}

/// Takes an exclusive `flock` on `file` without waiting (`WouldBlock` if another open file
/// description holds it — another process, or another `Store` in this one).
///
/// `std::fs::File::try_lock` does the same since Rust 1.89; the crate supports 1.88.
fn lock_exclusive(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor number, which `file` keeps open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lists the directory: removes temporary files of interrupted writes and hint files whose
/// segment is gone; returns the segments in id order and the set of segments with a hint.
fn tidy(dir: &std::path::Path) -> Result<(Vec<SegmentId>, HashSet<SegmentId>)> {
    let mut logs = Vec::new();
    let mut hints = HashSet::new();
    let entries = fs::read_dir(dir).map_err(|e| io_error("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue; // not ours: we only write ASCII names
        };
        match classify(name) {
            FileKind::Log(id) => logs.push(id),
            FileKind::Hint(id) => {
                hints.insert(id);
            }
            FileKind::Temp => {
                tracing::info!(file = name, "removing leftover temporary file");
                fs::remove_file(entry.path()).map_err(|e| io_error("remove", &entry.path(), e))?;
            }
            FileKind::Lock | FileKind::Other => {}
        }
    }
    logs.sort_unstable();
    let live: HashSet<SegmentId> = logs.iter().copied().collect();
    for orphan in hints.iter().filter(|id| !live.contains(id)) {
        let path = dir.join(orphan.hint_name());
        tracing::info!(file = %path.display(), "removing hint file without a segment");
        fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
    }
    hints.retain(|id| live.contains(id));
    Ok((logs, hints))
}

/// Reads the `SEQ` file (see `segment::SEQ_NAME`); 0 if there is none or it is damaged (it is
/// only ever replaced whole, by rename, so damage means someone else wrote it).
fn read_seq_floor(dir: &std::path::Path) -> Result<u64> {
    let path = dir.join(SEQ_NAME);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error("open", &path, e)),
    };
    // Read at most one byte more than a valid file has: a larger file is not ours.
    let mut b = Vec::with_capacity(13);
    (&mut file)
        .take(13)
        .read_to_end(&mut b)
        .map_err(|e| io_error("read", &path, e))?;
    Ok(decode_seq_floor(&b).unwrap_or_else(|| {
        tracing::warn!(file = %path.display(), "ignoring damaged sequence floor");
        0
    }))
}

/// Reads one segment into the index. Returns the open segment and whether its hint was used,
/// or `None` if the segment held nothing (it is then deleted).
fn read_segment(
    dir: &std::path::Path,
    id: SegmentId,
    handle: u32,
    has_hint: bool,
    limits: Limits,
    fsyncs: bool,
    rebuild: &mut Rebuild,
) -> Result<Option<(Segment, bool)>> {
    let name = id.log_name();
    let path = dir.join(&name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("open", &path, e))?;
    let mut len = file
        .metadata()
        .map_err(|e| io_error("stat", &path, e))?
        .len();

    let mut used_hint = false;
    if has_hint && len > 0 {
        let hint_path = dir.join(id.hint_name());
        let bytes = hint::read(dir, id, len).map_err(|e| io_error("read", &hint_path, e))?;
        match bytes.as_deref().map(|b| hint::validate(b, len, &limits)) {
            Some(Ok(body)) => {
                for e in hint::entries(body) {
                    let loc = if e.tombstone {
                        Loc::tombstone(handle, e.offset)
                    } else {
                        Loc {
                            seg: handle,
                            offset: e.offset,
                            len: e.len,
                        }
                    };
                    rebuild.apply(e.key, loc, e.seq);
                }
                rebuild.report.hinted_segments += 1;
                used_hint = true;
            }
            Some(Err(why)) => {
                tracing::warn!(file = %id.hint_name(), %why, "ignoring bad hint file; scanning the segment");
            }
            None => {}
        }
    }

    if !used_hint {
        let good_len = scan(&file, &name, handle, len, limits, rebuild)
            .map_err(|e| io_error("read", &path, e))?;
        if good_len < len {
            cut(&file, good_len, fsyncs).map_err(|e| io_error("truncate", &path, e))?;
            len = good_len;
        }
    }

    if len == 0 {
        // Nothing in it (a store opened and closed without writes, or a tail cut to nothing).
        drop(file);
        fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
        let hint_path = dir.join(id.hint_name());
        if let Err(e) = fs::remove_file(&hint_path)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(io_error("remove", &hint_path, e));
        }
        return Ok(None);
    }
    rebuild.report.segments += 1;
    Ok(Some((
        Segment {
            handle,
            id,
            file,
            len: AtomicU64::new(len),
            name,
        },
        used_hint,
    )))
}

/// Scans a segment without a usable hint, applying its records and reporting damage. Returns
/// the length of the trustworthy prefix.
fn scan(
    file: &File,
    name: &str,
    handle: u32,
    len: u64,
    limits: Limits,
    rebuild: &mut Rebuild,
) -> io::Result<u64> {
    let mut good_len = len;
    let mut scanner = Scanner::new(file, len, limits);
    while let Some(item) = scanner.next_item()? {
        match item {
            Item::Record {
                offset,
                bytes,
                header,
                key,
            } => {
                // The scanner keeps offsets and lengths inside u32 (see record::MAX_RECORD_BYTES).
                let loc = if header.tombstone {
                    Loc::tombstone(handle, offset as u32)
                } else {
                    Loc {
                        seg: handle,
                        offset: offset as u32,
                        len: bytes.len() as u32,
                    }
                };
                rebuild.apply(key, loc, header.seq);
            }
            Item::Skip {
                offset,
                len: n,
                why,
            } => {
                tracing::warn!(file = name, offset, bytes = n, %why, "skipping a damaged record");
                rebuild.report.damage.push(Damage {
                    file: name.to_string(),
                    offset,
                    action: DamageAction::SkippedRecord { bytes: n },
                });
            }
            Item::Tail { offset, why } => {
                tracing::warn!(
                    file = name, offset, bytes = len - offset, %why,
                    "torn or corrupt tail; truncating the segment here"
                );
                rebuild.report.damage.push(Damage {
                    file: name.to_string(),
                    offset,
                    action: DamageAction::Truncated {
                        bytes: len - offset,
                    },
                });
                good_len = offset;
            }
        }
    }
    Ok(good_len)
}

fn cut(file: &File, len: u64, fsyncs: bool) -> io::Result<()> {
    file.set_len(len)?;
    if fsyncs {
        file.sync_all()?;
    }
    Ok(())
}
