//! Compaction ("merge" in the Bitcask paper) and the maintenance thread that runs it and writes
//! hint files.
//!
//! A compaction takes every *closed* segment (the active one keeps taking appends), copies the
//! records the index still points at into new segments, and deletes the old ones:
//!
//! 1. under the writer lock, list the closed segments: the *inputs*;
//! 2. scan them in id order; a record is live if the index points at exactly its location.
//!    Live records are copied byte for byte — same checksum, same sequence number — into an
//!    output written under a temporary name; dead records and all tombstones are dropped;
//! 3. when an output is full (or the inputs are done): fsync it, rename it into place, write its
//!    hint file, fsync the directory, open it for readers, and *swap*: each copied key is
//!    pointed at its copy only if the index still points at the original — a write that
//!    happened meanwhile wins;
//! 4. make every record written so far durable (the records that made input records dead must
//!    not be lost once the inputs are gone), record the inputs' highest sequence number in the
//!    `SEQ` file (so numbering never goes backwards), then delete the inputs in ascending id
//!    order and fsync the directory.
//!
//! Readers and writers never wait for more than one index-shard operation: scanning, copying
//! and fsyncing happen without any lock they need. A reader that looked up a location in an
//! input just before the swap still holds an `Arc` of its file, which stays readable after
//! unlinking; one that finds its segment gone looks the key up again.
//!
//! Why every crash point is safe is explained in the `storage` module docs.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::engine::{Core, io_error, lock};
use super::hint::{self, HintBuilder, HintEntry};
use super::index::Loc;
use super::record::Limits;
use super::segment::{Item, SEQ_NAME, Scanner, Segment, SegmentId, TEMP_SUFFIX, encode_seq_floor};
use super::{CompactionOptions, CompactionReport, Error, Result};

/// What the maintenance thread waits on.
#[derive(Debug, Default)]
pub(crate) struct MaintState {
    /// Closed segments that need a hint file.
    pub hints: VecDeque<Arc<Segment>>,
    /// Exit (after writing the queued hints: a handful of segment scans at most).
    pub shutdown: bool,
}

/// Whether closed segments hold enough dead bytes to be worth compacting.
pub(crate) fn should_compact(
    opts: &CompactionOptions,
    closed_bytes: u64,
    closed_dead: u64,
) -> bool {
    closed_dead > 0
        && closed_dead >= opts.min_dead_bytes
        && closed_dead as f64 >= opts.min_dead_ratio * closed_bytes as f64
}

/// `a -= b`, stopping at 0 (the counters are exact by construction; this only keeps a bug in
/// accounting from wrapping around to 2^64).
fn sub(a: &AtomicU64, b: u64) {
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(b))
    });
}

/// A compaction output being written.
struct Output {
    id: SegmentId,
    /// Temporary path; renamed to `id.log_name()` when complete.
    tmp: PathBuf,
    writer: BufWriter<File>,
    len: u64,
    hint: HintBuilder,
    /// For each copied record, in order: where the original is.
    originals: Vec<Loc>,
}

impl Output {
    fn create(core: &Core, id: SegmentId) -> Result<Output> {
        let tmp = core.dir().join(format!("{}{TEMP_SUFFIX}", id.log_name()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_error("create", &tmp, e))?;
        Ok(Output {
            id,
            tmp,
            writer: BufWriter::with_capacity(256 << 10, file),
            len: 0,
            hint: HintBuilder::new(),
            originals: Vec::new(),
        })
    }
}

impl Core {
    /// Hands a closed segment to the maintenance thread for its hint file.
    pub(crate) fn queue_hint(&self, seg: Arc<Segment>) {
        lock(&self.maint).hints.push_back(seg);
        self.maint_cv.notify_one();
    }

    /// `(bytes, dead bytes)` of the closed segments.
    pub(crate) fn closed_usage(&self) -> (u64, u64) {
        let active_len = lock(&self.writer).active.len.load(Ordering::Acquire);
        let live = self.live_bytes.load(Ordering::Relaxed);
        let dead = self.dead_bytes.load(Ordering::Relaxed);
        let active_dead = self.active_dead.load(Ordering::Relaxed);
        (
            (live + dead).saturating_sub(active_len),
            dead.saturating_sub(active_dead),
        )
    }

    /// Writes the hint file of closed segment `seg` by scanning it.
    ///
    /// # Errors
    /// I/O errors, or [`Error::Corrupt`] if the segment turned out damaged.
    pub(crate) fn write_hint(&self, seg: &Segment) -> Result<()> {
        let _one_at_a_time = lock(&self.compaction_lock);
        if self.segment(seg.handle).is_none() {
            return Ok(()); // compacted away meanwhile
        }
        let len = seg.len.load(Ordering::Acquire);
        let path = seg.path(self.dir());
        // A durable hint must never describe bytes that could still be lost.
        if self.fsyncs() {
            seg.file
                .sync_data()
                .map_err(|e| io_error("fsync", &path, e))?;
        }
        let mut hint = HintBuilder::new();
        let mut scanner = Scanner::new(&seg.file, len, Limits::FORMAT);
        while let Some(item) = scanner
            .next_item()
            .map_err(|e| io_error("read", &path, e))?
        {
            match item {
                Item::Record {
                    offset,
                    bytes,
                    header,
                    key,
                } => hint.push(&HintEntry {
                    seq: header.seq,
                    offset: offset as u32,
                    len: bytes.len() as u32,
                    tombstone: header.tombstone,
                    key,
                }),
                // Never indexed: leaving it out of the hint is what start-up did with it.
                Item::Skip { .. } => {}
                Item::Tail { offset, .. } => {
                    return Err(Error::Corrupt {
                        file: seg.name.clone(),
                        offset,
                    });
                }
            }
        }
        hint::write(self.dir(), seg.id, &hint.finish(len), self.fsyncs())
            .map_err(|e| io_error("write hint for", &path, e))?;
        if self.fsyncs() {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// See `Store::compact` and the module docs.
    pub(crate) fn compact(&self) -> Result<CompactionReport> {
        let _one_at_a_time = lock(&self.compaction_lock);
        let inputs = {
            let w = lock(&self.writer);
            if w.closed {
                return Err(self.closed_error());
            }
            if self.is_poisoned() {
                return Err(Error::Poisoned);
            }
            let segments = self.segments.read().unwrap_or_else(PoisonError::into_inner);
            let mut inputs: Vec<Arc<Segment>> = segments
                .values()
                .filter(|s| s.handle != w.active.handle)
                .cloned()
                .collect();
            inputs.sort_by_key(|s| s.id);
            inputs
        };
        let Some(newest) = inputs.last() else {
            return Ok(CompactionReport::default());
        };
        // Outputs sort after every input and before the active segment (whose major number is
        // higher than any closed segment's): see `segment` for why that order matters.
        let major = newest.id.major;
        let first_minor = inputs
            .iter()
            .filter(|s| s.id.major == major)
            .map(|s| s.id.minor)
            .max()
            .unwrap_or(0)
            + 1;
        let mut report = CompactionReport {
            segments_in: inputs.len() as u64,
            bytes_in: inputs.iter().map(|s| s.len.load(Ordering::Acquire)).sum(),
            ..CompactionReport::default()
        };
        let started = Instant::now();
        let max_seq = self.copy_live(&inputs, major, first_minor, &mut report)?;
        // The records that made input records dead (overwrites, deletes) must be on disk
        // before the inputs go, or a crash could lose both a value and its replacement.
        if self.fsyncs() {
            self.sync_round()?;
        }
        self.raise_seq_floor(max_seq)?;
        self.remove_inputs(&inputs)?;
        self.compactions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            segments_in = report.segments_in,
            segments_out = report.segments_out,
            bytes_in = report.bytes_in,
            bytes_out = report.bytes_out,
            ms = started.elapsed().as_millis() as u64,
            "compaction finished"
        );
        Ok(report)
    }

    /// Steps 2 and 3 of the module docs. Returns the highest sequence number in the inputs.
    fn copy_live(
        &self,
        inputs: &[Arc<Segment>],
        major: u32,
        mut minor: u32,
        report: &mut CompactionReport,
    ) -> Result<u64> {
        let mut out: Option<Output> = None;
        let mut max_seq = 0;
        let result = (|| {
            for seg in inputs {
                let path = seg.path(self.dir());
                let mut scanner =
                    Scanner::new(&seg.file, seg.len.load(Ordering::Acquire), Limits::FORMAT);
                while let Some(item) = scanner
                    .next_item()
                    .map_err(|e| io_error("read", &path, e))?
                {
                    if self.stopping.load(Ordering::Relaxed) {
                        return Err(io_error(
                            "compact",
                            self.dir(),
                            io::Error::other("store is shutting down"),
                        ));
                    }
                    let (offset, bytes, header, key) = match item {
                        Item::Record {
                            offset,
                            bytes,
                            header,
                            key,
                        } => (offset, bytes, header, key),
                        Item::Skip { .. } => continue, // never indexed, so dead
                        // Closed segments were checked at start-up or written by us; damage
                        // now is rot. Stop rather than delete records we could not copy.
                        Item::Tail { offset, .. } => {
                            return Err(Error::Corrupt {
                                file: seg.name.clone(),
                                offset,
                            });
                        }
                    };
                    max_seq = max_seq.max(header.seq);
                    let here = Loc {
                        seg: seg.handle,
                        offset: offset as u32,
                        len: bytes.len() as u32,
                    };
                    // The index never points at a tombstone, so this drops them all. That is
                    // safe because every closed segment is an input: any older record of the
                    // key is being deleted with it (see the storage module docs).
                    if header.tombstone || self.index.get(key) != Some(here) {
                        continue;
                    }
                    if let Some(o) = out.take_if(|o| {
                        o.len > 0 && o.len + bytes.len() as u64 > self.opts.segment_size_bytes
                    }) {
                        self.install(o, report)?;
                    }
                    let o = match &mut out {
                        Some(o) => o,
                        None => {
                            let id = SegmentId { major, minor };
                            minor = minor.checked_add(1).ok_or_else(|| {
                                io_error(
                                    "compact",
                                    self.dir(),
                                    io::Error::other("segment ids exhausted"),
                                )
                            })?;
                            out.insert(Output::create(self, id)?)
                        }
                    };
                    o.writer
                        .write_all(bytes)
                        .map_err(|e| io_error("write", &o.tmp, e))?;
                    o.hint.push(&HintEntry {
                        seq: header.seq,
                        offset: o.len as u32,
                        len: bytes.len() as u32,
                        tombstone: false,
                        key,
                    });
                    o.originals.push(here);
                    o.len += bytes.len() as u64;
                }
            }
            if let Some(o) = out.take() {
                self.install(o, report)?;
            }
            Ok(())
        })();
        if let Some(o) = out {
            let _ = fs::remove_file(&o.tmp);
        }
        result.map(|()| max_seq)
    }

    /// Records durably that sequence numbers up to `seq` were used, before the records that
    /// carry them are deleted (see `segment::SEQ_NAME`).
    fn raise_seq_floor(&self, seq: u64) -> Result<()> {
        if seq <= self.seq_floor.load(Ordering::Relaxed) {
            return Ok(());
        }
        let path = self.dir().join(SEQ_NAME);
        let tmp = self.dir().join(format!("{SEQ_NAME}{TEMP_SUFFIX}"));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&encode_seq_floor(seq))?;
            if self.fsyncs() {
                f.sync_data()?;
            }
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("write", &path, e));
        }
        if self.fsyncs() {
            self.sync_dir()?;
        }
        self.seq_floor.store(seq, Ordering::Relaxed);
        Ok(())
    }

    /// Makes a finished output durable, names it, opens it to readers, and swaps the index.
    fn install(&self, o: Output, report: &mut CompactionReport) -> Result<()> {
        let Output {
            id,
            tmp,
            writer,
            len,
            hint,
            originals,
        } = o;
        let name = id.log_name();
        let path = self.dir().join(&name);
        let placed = (|| {
            let file = writer
                .into_inner()
                .map_err(|e| io_error("write", &tmp, e.into_error()))?;
            if self.fsyncs() {
                file.sync_data().map_err(|e| io_error("fsync", &tmp, e))?;
            }
            fs::rename(&tmp, &path).map_err(|e| io_error("rename", &tmp, e))?;
            Ok(file)
        })();
        let file = match placed {
            Ok(file) => file,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let hint_bytes = hint.finish(len);
        if let Err(e) = hint::write(self.dir(), id, &hint_bytes, self.fsyncs()) {
            // Not fatal: start-up scans a segment without a hint.
            tracing::warn!(file = %id.hint_name(), error = %e, "could not write hint file");
        }
        if self.fsyncs() {
            self.sync_dir()?;
        }

        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let seg = Arc::new(Segment {
            handle,
            id,
            file,
            len: AtomicU64::new(len),
            name,
        });
        // Every byte starts dead; a swapped record's copy becomes live as its original
        // becomes dead, which leaves the counters unchanged.
        self.dead_bytes.fetch_add(len, Ordering::Relaxed);
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(handle, seg);
        for (e, original) in hint::finished_entries(&hint_bytes).zip(originals) {
            let copy = Loc {
                seg: handle,
                offset: e.offset,
                len: e.len,
            };
            self.index.replace_if(e.key, original, copy);
        }
        report.segments_out += 1;
        report.bytes_out += len;
        Ok(())
    }

    /// Step 4: deletes the inputs oldest first, stopping at the first failure so the order
    /// holds even then.
    fn remove_inputs(&self, inputs: &[Arc<Segment>]) -> Result<()> {
        for seg in inputs {
            {
                let mut w = lock(&self.writer);
                // Its data is in the outputs now; no need to fsync it any more.
                w.unsynced.retain(|s| s.handle != seg.handle);
                self.segments
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&seg.handle);
            }
            let path = seg.path(self.dir());
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Keep it open: it still holds (dead) records and stays on disk.
                    self.segments
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(seg.handle, Arc::clone(seg));
                    return Err(io_error("remove", &path, e));
                }
            }
            let hint_path = self.dir().join(seg.id.hint_name());
            if let Err(e) = fs::remove_file(&hint_path)
                && e.kind() != io::ErrorKind::NotFound
            {
                // An orphan hint is deleted at the next start-up.
                tracing::warn!(file = %hint_path.display(), error = %e, "could not remove hint file");
            }
            sub(&self.dead_bytes, seg.len.load(Ordering::Acquire));
        }
        if self.fsyncs() {
            self.sync_dir()?;
        }
        Ok(())
    }
}

enum Job {
    Hint(Arc<Segment>),
    Check,
    Exit,
}

/// The maintenance thread's body: hint files for closed segments, and (with
/// `compaction.auto`) a compaction whenever [`should_compact`] says so.
pub(crate) fn maintenance_thread(core: Arc<Core>) {
    let opts = core.opts.compaction.clone();
    let interval = Duration::from_millis(opts.check_interval_ms.max(1));
    let mut next_check = Instant::now() + interval;
    loop {
        let job = {
            let mut st = lock(&core.maint);
            loop {
                if let Some(seg) = st.hints.pop_front() {
                    break Job::Hint(seg);
                }
                if st.shutdown {
                    break Job::Exit;
                }
                if opts.auto {
                    let now = Instant::now();
                    if now >= next_check {
                        break Job::Check;
                    }
                    st = core
                        .maint_cv
                        .wait_timeout(st, next_check - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                } else {
                    st = core
                        .maint_cv
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        };
        match job {
            Job::Exit => return,
            Job::Hint(seg) => {
                if let Err(e) = core.write_hint(&seg) {
                    tracing::warn!(
                        file = %seg.name, error = %e,
                        "could not write hint file; start-up will scan this segment"
                    );
                }
            }
            Job::Check => {
                next_check = Instant::now() + interval;
                let (closed_bytes, closed_dead) = core.closed_usage();
                if should_compact(&opts, closed_bytes, closed_dead)
                    && let Err(e) = core.compact()
                {
                    tracing::warn!(error = %e, "background compaction failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_trigger() {
        let opts = |ratio, bytes| CompactionOptions {
            auto: true,
            min_dead_ratio: ratio,
            min_dead_bytes: bytes,
            check_interval_ms: 1,
        };
        for (why, o, closed, dead, want) in [
            ("nothing dead", opts(0.0, 0), 100, 0, false),
            ("half dead, thresholds met", opts(0.5, 10), 100, 50, true),
            ("ratio not met", opts(0.5, 10), 100, 49, false),
            ("bytes not met", opts(0.1, 60), 100, 50, false),
            ("zero thresholds", opts(0.0, 0), 100, 1, true),
            ("no closed segments", opts(0.5, 0), 0, 0, false),
        ] {
            assert_eq!(should_compact(&o, closed, dead), want, "{why}");
        }
    }
}
