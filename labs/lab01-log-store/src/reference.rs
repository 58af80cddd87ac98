//! The reference solution: the toolkit's own store, `dkvs::storage::Store`, behind [`LogStore`].
//!
//! `cargo test -p lab01-log-store --features reference` grades this instead of `student.rs`.
//! Reading it will not show you how to write a log store (it only adapts one); read
//! `src/storage/` of the toolkit for that, once your own works.
//!
//! Two things about the toolkit's store matter here:
//!
//! - It writes a *hint file* for every closed segment on a background thread. The graded tests
//!   watch the sizes of the files in the directory around a single `set`, so a hint file
//!   appearing at that moment would look like a second file written by the `set`. [`open`]
//!   therefore opens the store twice: the first open queues the hints, closing it writes them
//!   and joins the thread, and the second open finds every closed segment hinted and queues
//!   nothing. (Its empty active segment from the first open is removed by the second.)
//! - Its compaction rewrites the *closed* segments only; the active one keeps taking writes.
//!   [`compact`] reopens first, which closes the active segment, so that everything written so
//!   far is compacted, as the lab's contract asks.
//!
//! [`open`]: LogStore::open
//! [`compact`]: LogStore::compact

use std::io;
use std::path::{Path, PathBuf};

use dkvs::storage::{self, CompactionOptions, StoreOptions, SyncPolicy, Write};

use super::LogStore;

/// The toolkit's store, opened with options that make it write-through and quiet.
pub struct Store {
    /// The open store.
    inner: storage::Store,
    /// Its directory, to reopen it.
    dir: PathBuf,
}

/// Options for the lab's contract: every write reaches the file before it returns (the store
/// `pwrite`s each batch at once; `Never` only skips the fsync, which a process crash does not
/// need), and nothing happens in the background that the tests could see.
fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::Never,
        sync_interval_ms: 1000,
        // Larger than any graded run writes, so a `set` never rotates to a new segment.
        segment_size_bytes: 64 << 20,
        max_key_bytes: 1024,
        max_value_bytes: 64 << 10,
        compaction: CompactionOptions {
            auto: false,
            min_dead_ratio: 0.5,
            min_dead_bytes: 0,
            check_interval_ms: 1000,
        },
    }
}

/// The toolkit's error as an `io::Error`, keeping the kind of an I/O error.
fn to_io(e: storage::Error) -> io::Error {
    match &e {
        storage::Error::Io { source, .. } => io::Error::new(source.kind(), e.to_string()),
        _ => io::Error::other(e.to_string()),
    }
}

/// Opens, closes and opens again: see the module docs for why.
fn open_settled(dir: &Path) -> io::Result<storage::Store> {
    let first = open_locked(dir)?;
    first.close().map_err(to_io)?;
    drop(first);
    open_locked(dir)
}

/// Opens the toolkit's store, waiting a little if its directory lock is still held.
///
/// The store takes an `flock` on a file in its directory, released when the last descriptor
/// of that open file goes. A process that starts a child (the test harness runs tests on
/// threads, and `insta` runs `cargo metadata`) hands the child a copy of every descriptor
/// until the child's `exec` closes them, so for that moment a store just dropped on another
/// thread still looks locked. Only the reference has this lock; the students' stores do not.
fn open_locked(dir: &Path) -> io::Result<storage::Store> {
    let mut tries = 0;
    loop {
        match storage::Store::open(options(dir)) {
            Ok((store, _report)) => return Ok(store),
            Err(storage::Error::Locked(_)) if tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(to_io(e)),
        }
    }
}

impl LogStore for Store {
    fn open(dir: &Path) -> io::Result<Self> {
        Ok(Store {
            inner: open_settled(dir)?,
            dir: dir.to_path_buf(),
        })
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.inner
            .write(&[Write::Set { key, value }], &mut Vec::new())
            .map_err(to_io)?;
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.inner.get(key).map_err(to_io)
    }

    fn del(&mut self, key: &[u8]) -> io::Result<bool> {
        let mut existed = Vec::with_capacity(1);
        self.inner
            .write(&[Write::Del { key }], &mut existed)
            .map_err(to_io)?;
        Ok(existed.first().copied().unwrap_or(false))
    }

    fn compact(&mut self) -> io::Result<()> {
        // Closing releases the directory's lock, so the store can be opened again while the
        // old handle is still alive; it is dropped when the new one replaces it.
        self.inner.close().map_err(to_io)?;
        self.inner = open_settled(&self.dir)?;
        self.inner.compact().map_err(to_io)?;
        Ok(())
    }
}
