//! Stores that are wrong on purpose, and proof that the graded checks catch each of them with a
//! summary that points at the bug, while the reference passes every check.
//!
//! These tests never use `src/student.rs`, so they pass on the skeleton as on a finished lab.
//! The reference is compiled in from `src/reference.rs` whatever the features.
//!
//! - [`Naive`] is a first attempt: no checksum, and a recovery that stops at a torn record but
//!   then appends after it.
//! - [`Trusting`] is the toolkit's store believing every record that parses, as if it had no
//!   checksum to check.
//! - [`Forgetful`] is the toolkit's store with a compaction that brings deleted keys back.
//! - [`Hoarder`] is the toolkit's store with a compaction that does nothing.
//! - [`Unfinished`] is the skeleton's shape: `todo!()` everywhere.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use lab01_log_store::LogStore;
use lab01_log_store::grading;
use labkit::Failure;

#[path = "../src/reference.rs"]
mod reference;

/// The seeds these tests run, whatever `LAB_SEED` says: they must catch the bugs every time.
const SEEDS: std::ops::RangeInclusive<u64> = grading::DEFAULT_SEEDS;

// ---------------------------------------------------------------------------------------------
// Naive: no checksum, appends after the damage
// ---------------------------------------------------------------------------------------------

/// A first attempt at the lab: one file of `key_len | value_len | key | value` records
/// (little-endian `u32` lengths, `value_len` = [`TOMBSTONE`] for a delete) and every value in
/// memory. Recovery reads records while they fit in the file and stops at the first that does
/// not; it never checks a checksum (there is none), and it leaves the bytes after the last
/// whole record where they are, appending after them.
struct Naive {
    path: PathBuf,
    /// Opened for appending: every write goes to the end of the file, garbage or not.
    file: File,
    map: HashMap<Vec<u8>, Vec<u8>>,
}

const TOMBSTONE: u32 = u32::MAX;

fn naive_record(key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let value_len = value.map_or(TOMBSTONE, |v| v.len() as u32);
    let mut record = Vec::with_capacity(8 + key.len() + value.map_or(0, <[u8]>::len));
    record.extend_from_slice(&(key.len() as u32).to_le_bytes());
    record.extend_from_slice(&value_len.to_le_bytes());
    record.extend_from_slice(key);
    record.extend_from_slice(value.unwrap_or_default());
    record
}

/// One record of [`Naive`]'s log, as parsed.
struct NaiveRecord<'a> {
    key: &'a [u8],
    /// `None` for a delete.
    value: Option<&'a [u8]>,
    /// Bytes the record takes in the file.
    len: usize,
}

/// The record at the start of `bytes`, if all of it is there.
fn naive_parse(bytes: &[u8]) -> Option<NaiveRecord<'_>> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let key_len = word(0)? as usize;
    let value_len = word(4)?;
    let stored = if value_len == TOMBSTONE {
        0
    } else {
        value_len as usize
    };
    let len = 8usize.checked_add(key_len)?.checked_add(stored)?;
    let record = bytes.get(..len)?;
    Some(NaiveRecord {
        key: &record[8..8 + key_len],
        value: (value_len != TOMBSTONE).then(|| &record[8 + key_len..]),
        len,
    })
}

impl Naive {
    fn open_file(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
    }
}

impl LogStore for Naive {
    fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join("naive.log");
        let mut file = Naive::open_file(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut map = HashMap::new();
        let mut at = 0;
        while let Some(record) = naive_parse(&bytes[at..]) {
            match record.value {
                Some(value) => map.insert(record.key.to_vec(), value.to_vec()),
                None => map.remove(record.key),
            };
            at += record.len;
        }
        // The bug: the file should be cut to `at` here (`file.set_len(at)`).
        Ok(Naive { path, file, map })
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.file.write_all(&naive_record(key, Some(value)))?;
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.map.get(key).cloned())
    }

    fn del(&mut self, key: &[u8]) -> io::Result<bool> {
        if self.map.remove(key).is_none() {
            return Ok(false);
        }
        self.file.write_all(&naive_record(key, None))?;
        Ok(true)
    }

    fn compact(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut out = Vec::new();
        for (key, value) in &self.map {
            out.extend_from_slice(&naive_record(key, Some(value)));
        }
        fs::write(&tmp, out)?;
        fs::rename(&tmp, &self.path)?;
        self.file = Naive::open_file(&self.path)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Trusting: the toolkit's store without its checksums
// ---------------------------------------------------------------------------------------------

/// The toolkit's store, except that it believes every record that parses: before the toolkit
/// reads the directory, each record's checksum is recomputed from the bytes it has now, which
/// is what a store that never checks its checksums sees. (The toolkit's record format is in
/// `src/storage/record.rs`: `crc32 | seq u64 | flags u8 | key_len u32 | value_len u32 | key |
/// value`, the checksum covering everything after it.)
struct Trusting(reference::Store);

/// Recomputes the checksum of every whole record of the toolkit's segment file `path`.
fn reseal(path: &Path) -> io::Result<()> {
    const HEADER: usize = 21;
    let mut bytes = fs::read(path)?;
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let word = |from: usize| {
            let b: [u8; 4] = bytes[from..from + 4].try_into().expect("four bytes");
            u32::from_le_bytes(b) as usize
        };
        let end = at + HEADER + word(at + 13) + word(at + 17);
        if end > bytes.len() {
            break;
        }
        let crc = crc32fast::hash(&bytes[at + 4..end]);
        bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    fs::write(path, bytes)
}

impl LogStore for Trusting {
    fn open(dir: &Path) -> io::Result<Self> {
        if dir.is_dir() {
            for entry in fs::read_dir(dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "log") {
                    reseal(&path)?;
                }
            }
        }
        Ok(Trusting(reference::Store::open(dir)?))
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.0.set(key, value)
    }

    fn get(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.0.get(key)
    }

    fn del(&mut self, key: &[u8]) -> io::Result<bool> {
        self.0.del(key)
    }

    fn compact(&mut self) -> io::Result<()> {
        self.0.compact()
    }
}

// ---------------------------------------------------------------------------------------------
// Forgetful: a compaction that loses deletes
// ---------------------------------------------------------------------------------------------

/// The toolkit's store, except that compaction brings back every key deleted since the store
/// was opened, with the value it had: what a compaction does that copies the last *value*
/// record of each key and misses the tombstone after it.
struct Forgetful {
    inner: reference::Store,
    /// The keys deleted since `open`, with the value each had.
    buried: HashMap<Vec<u8>, Vec<u8>>,
}

impl LogStore for Forgetful {
    fn open(dir: &Path) -> io::Result<Self> {
        Ok(Forgetful {
            inner: reference::Store::open(dir)?,
            buried: HashMap::new(),
        })
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.buried.remove(key);
        self.inner.set(key, value)
    }

    fn get(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn del(&mut self, key: &[u8]) -> io::Result<bool> {
        if let Some(value) = self.inner.get(key)? {
            self.buried.insert(key.to_vec(), value);
        }
        self.inner.del(key)
    }

    fn compact(&mut self) -> io::Result<()> {
        self.inner.compact()?;
        for (key, value) in std::mem::take(&mut self.buried) {
            self.inner.set(&key, &value)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Hoarder: a compaction that does nothing
// ---------------------------------------------------------------------------------------------

/// The toolkit's store, except that `compact` returns at once and every old record stays.
struct Hoarder(reference::Store);

impl LogStore for Hoarder {
    fn open(dir: &Path) -> io::Result<Self> {
        Ok(Hoarder(reference::Store::open(dir)?))
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.0.set(key, value)
    }

    fn get(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.0.get(key)
    }

    fn del(&mut self, key: &[u8]) -> io::Result<bool> {
        self.0.del(key)
    }

    fn compact(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Unfinished: the skeleton's shape
// ---------------------------------------------------------------------------------------------

/// A store whose every method is `todo!()`, like `src/student.rs` before the lab is done.
struct Unfinished;

impl LogStore for Unfinished {
    fn open(_dir: &Path) -> io::Result<Self> {
        todo!("lab01: open the log")
    }

    fn set(&mut self, _key: &[u8], _value: &[u8]) -> io::Result<()> {
        todo!("lab01: set")
    }

    fn get(&mut self, _key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        todo!("lab01: get")
    }

    fn del(&mut self, _key: &[u8]) -> io::Result<bool> {
        todo!("lab01: del")
    }

    fn compact(&mut self) -> io::Result<()> {
        todo!("lab01: compact")
    }
}

// ---------------------------------------------------------------------------------------------
// The proofs
// ---------------------------------------------------------------------------------------------

/// The summary of a check that must have failed.
fn caught(check: &str, result: Result<(), Failure>) -> String {
    match result {
        Ok(()) => panic!("{check} passed a store that is wrong on purpose"),
        Err(failure) => {
            assert!(
                !failure.summary.contains('\n'),
                "{check}: the summary must be one line: {failure}"
            );
            failure.summary
        }
    }
}

/// Fails the test if `check` failed.
fn passed(check: &str, result: Result<(), Failure>) {
    if let Err(failure) = result {
        panic!("{check} failed a store it should pass:\n{failure}");
    }
}

#[test]
fn the_reference_passes_every_check() {
    type R = reference::Store;
    passed("set_get_del", grading::set_get_del::<R>(SEEDS));
    passed(
        "reopen_keeps_everything",
        grading::reopen_keeps_everything::<R>(SEEDS),
    );
    passed("torn_tail_is_cut", grading::torn_tail_is_cut::<R>(SEEDS));
    passed(
        "garbage_tail_is_ignored",
        grading::garbage_tail_is_ignored::<R>(SEEDS),
    );
    passed(
        "corrupt_record_is_dropped",
        grading::corrupt_record_is_dropped::<R>(SEEDS),
    );
    passed(
        "compaction_reclaims_space",
        grading::compaction_reclaims_space::<R>(SEEDS),
    );
    passed("story", grading::story::<R>().map(drop));
}

#[test]
fn appending_after_a_torn_tail_is_caught() {
    let summary = caught(
        "torn_tail_is_cut",
        grading::torn_tail_is_cut::<Naive>(SEEDS),
    );
    assert!(
        summary.contains("must be appended after the cut, not after the damaged bytes"),
        "{summary}"
    );
    // Garbage after the last record exposes the same bug.
    let summary = caught(
        "garbage_tail_is_ignored",
        grading::garbage_tail_is_ignored::<Naive>(SEEDS),
    );
    assert!(summary.contains("garbage"), "{summary}");
    // The checks of what Naive does right let it pass: each check points at its own bug.
    passed("set_get_del", grading::set_get_del::<Naive>(SEEDS));
    passed(
        "reopen_keeps_everything",
        grading::reopen_keeps_everything::<Naive>(SEEDS),
    );
    passed(
        "compaction_reclaims_space",
        grading::compaction_reclaims_space::<Naive>(SEEDS),
    );
}

#[test]
fn a_store_without_a_checksum_is_caught() {
    let summary = caught(
        "corrupt_record_is_dropped",
        grading::corrupt_record_is_dropped::<Trusting>(SEEDS),
    );
    assert!(
        summary.contains("changed one byte of the last write"),
        "{summary}"
    );
    assert!(
        summary.contains("must give the store without it"),
        "{summary}"
    );
    caught(
        "corrupt_record_is_dropped",
        grading::corrupt_record_is_dropped::<Naive>(SEEDS),
    );
    // Torn records and garbage do not need the checksum with the toolkit's format (a torn
    // record does not fit in the file, and garbage does not parse), so those checks pass.
    passed(
        "torn_tail_is_cut",
        grading::torn_tail_is_cut::<Trusting>(SEEDS),
    );
    passed(
        "garbage_tail_is_ignored",
        grading::garbage_tail_is_ignored::<Trusting>(SEEDS),
    );
}

#[test]
fn a_compaction_that_loses_deletes_is_caught() {
    let summary = caught(
        "compaction_reclaims_space",
        grading::compaction_reclaims_space::<Forgetful>(SEEDS),
    );
    assert!(
        summary.starts_with("right after compact: get "),
        "{summary}"
    );
    assert!(summary.ends_with("expected none"), "{summary}");
    let reference = grading::story::<reference::Store>().expect("the reference tells the story");
    let forgetful = grading::story::<Forgetful>().expect("Forgetful tells the story");
    assert_ne!(
        forgetful, reference,
        "the story must show the deleted key coming back"
    );
    passed("set_get_del", grading::set_get_del::<Forgetful>(SEEDS));
    passed(
        "torn_tail_is_cut",
        grading::torn_tail_is_cut::<Forgetful>(SEEDS),
    );
}

#[test]
fn a_compaction_that_keeps_everything_is_caught() {
    let summary = caught(
        "compaction_reclaims_space",
        grading::compaction_reclaims_space::<Hoarder>(SEEDS),
    );
    assert!(
        summary.starts_with("after compact the store's files hold"),
        "{summary}"
    );
    assert!(
        summary.contains("a fresh store given the same"),
        "{summary}"
    );
}

#[test]
fn an_unfinished_store_fails_every_check_in_one_line() {
    let checks: [(&str, Result<(), Failure>); 7] = [
        ("set_get_del", grading::set_get_del::<Unfinished>(SEEDS)),
        (
            "reopen_keeps_everything",
            grading::reopen_keeps_everything::<Unfinished>(SEEDS),
        ),
        (
            "torn_tail_is_cut",
            grading::torn_tail_is_cut::<Unfinished>(SEEDS),
        ),
        (
            "garbage_tail_is_ignored",
            grading::garbage_tail_is_ignored::<Unfinished>(SEEDS),
        ),
        (
            "corrupt_record_is_dropped",
            grading::corrupt_record_is_dropped::<Unfinished>(SEEDS),
        ),
        (
            "compaction_reclaims_space",
            grading::compaction_reclaims_space::<Unfinished>(SEEDS),
        ),
        ("story", grading::story::<Unfinished>().map(drop)),
    ];
    for (check, result) in checks {
        let summary = caught(check, result);
        assert!(
            summary.starts_with("open: panicked: not yet implemented: lab01: open the log (at "),
            "{check}: {summary}"
        );
        assert!(summary.contains("wrong.rs:"), "{check}: {summary}");
    }
}
