//! Durability: the sync round, the sync thread, and group commit.
//!
//! An fsync costs about as much as thousands of appends (≈175 µs against a few hundred ns on this
//! project's reference machine), so nothing on the write path waits for one. Instead:
//!
//! - **`always`** — *group commit*, as in database logs since the 1980s (Gawlick & Kinkade,
//!   "Varieties of concurrency control in IMS/VS Fast Path", 1985) and Redis's
//!   `appendfsync always`. `write` returns a *ticket* (the sequence number of its last record)
//!   and pokes the sync thread. The sync thread fsyncs everything written so far and publishes
//!   the highest sequence number it covered on a watch channel; `wait_durable(ticket)` resolves
//!   once that number reaches the ticket. Writes that arrive while an fsync runs are covered by
//!   the next one, so one fsync serves every writer that queued behind it.
//! - **`batch`** — the sync thread runs a round at least every `sync_interval_ms`; acknowledged
//!   writes younger than that can be lost in a power cut.
//! - **`never`** — no fsync except `Store::sync` and `close`. A process crash loses nothing (the
//!   page cache outlives the process); a power cut can lose anything not yet written back.
//!
//! A **sync round** takes, under the writer lock, the last sequence number written, the active
//! segment, and the segments closed since the last round; then, without that lock, fsyncs the
//! closed segments, the directory if files were created, and the active segment, in that order,
//! and only then publishes the sequence number. So the durable number never passes a record of
//! a rotated-away segment that is not yet on disk.
//!
//! If an fsync fails the store is *poisoned*: after a failed fsync, Linux may have dropped the
//! dirty pages and cleared the error, so a retry can "succeed" without the data ever reaching
//! the disk (the PostgreSQL "fsyncgate" discussion, 2018). The only honest answer is to stop
//! acknowledging writes: waiters and later writers get `Error::Poisoned`.

use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::engine::{Core, io_error, lock};
use super::{Error, Result, SyncPolicy};

/// What `wait_durable` watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Durable {
    /// Every record up to this sequence number is on disk.
    pub seq: u64,
    /// An fsync failed; nothing past `seq` will become durable.
    pub poisoned: bool,
}

/// What the sync thread waits on.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// Highest ticket a writer asked to make durable (`always` only).
    pub requested: u64,
    /// The sync thread is asleep on the condition variable. Writers wake it only then: while an
    /// fsync runs it will look at `requested` anyway before it sleeps, so a notify would be a
    /// wasted futex call on every write.
    pub idle: bool,
    /// Exit.
    pub shutdown: bool,
}

impl Core {
    /// The durable sequence number.
    pub(crate) fn durable_seq(&self) -> u64 {
        self.durable.borrow().seq
    }

    /// Asks the sync thread to make everything up to `ticket` durable.
    pub(crate) fn request_sync(&self, ticket: u64) {
        let mut st = lock(&self.sync_state);
        st.requested = st.requested.max(ticket);
        let asleep = st.idle;
        drop(st);
        if asleep {
            self.sync_cv.notify_one();
        }
    }

    /// fsyncs the data directory, making file creations, renames and deletions durable.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn sync_dir(&self) -> Result<()> {
        File::open(self.dir())
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("fsync directory", self.dir(), e))
    }

    /// Makes every record written so far durable (see the module docs). Poisons the store if
    /// an fsync fails.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if already poisoned; the I/O error if an fsync fails now.
    pub(crate) fn sync_round(&self) -> Result<()> {
        let _round = lock(&self.sync_lock);
        let (target, active, closed, dir_dirty) = {
            let mut w = lock(&self.writer);
            if self.is_poisoned() {
                return Err(Error::Poisoned);
            }
            (
                w.next_seq - 1,
                Arc::clone(&w.active),
                std::mem::take(&mut w.unsynced),
                std::mem::replace(&mut w.dir_dirty, false),
            )
        };
        if target <= self.durable_seq() && closed.is_empty() && !dir_dirty {
            return Ok(());
        }
        let result = (|| {
            for seg in &closed {
                seg.file
                    .sync_data()
                    .map_err(|e| io_error("fsync", &seg.path(self.dir()), e))?;
            }
            if dir_dirty {
                self.sync_dir()?;
            }
            // fdatasync also persists the file size, which is all the metadata an append
            // changes; the cheaper call is enough.
            active
                .file
                .sync_data()
                .map_err(|e| io_error("fsync", &active.path(self.dir()), e))
        })();
        match result {
            Ok(()) => {
                self.durable.send_if_modified(|d| {
                    let newer = target > d.seq;
                    d.seq = d.seq.max(target);
                    newer
                });
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "fsync failed; the store refuses writes from now on");
                self.poison();
                Err(e)
            }
        }
    }
}

/// The sync thread's body: group commit for `always`, a timer for `batch`.
pub(crate) fn sync_thread(core: Arc<Core>) {
    match core.opts.sync {
        SyncPolicy::Always => group_commit(&core),
        SyncPolicy::Batch => periodic(&core),
        SyncPolicy::Never => {}
    }
}

fn group_commit(core: &Core) {
    loop {
        {
            let mut st = lock(&core.sync_state);
            loop {
                if st.shutdown {
                    return;
                }
                if !core.is_poisoned() && st.requested > core.durable_seq() {
                    break;
                }
                st.idle = true;
                st = core
                    .sync_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                st.idle = false;
            }
        }
        // Errors are logged and poison the store inside; waiters learn from the watch.
        let _ = core.sync_round();
    }
}

fn periodic(core: &Core) {
    let interval = Duration::from_millis(core.opts.sync_interval_ms.max(1));
    loop {
        let deadline = Instant::now() + interval;
        {
            let mut st = lock(&core.sync_state);
            loop {
                if st.shutdown {
                    return;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = core
                    .sync_cv
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        if !core.is_poisoned() && core.last_seq.load(Ordering::Acquire) > core.durable_seq() {
            let _ = core.sync_round();
        }
    }
}
