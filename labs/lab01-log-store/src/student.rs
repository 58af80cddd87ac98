//! Your log store. Replace every `todo!()`; the README (`labs/lab01-log-store/README.md`) is the
//! full assignment, and `cargo test -p lab01-log-store` tells you what is still missing.
//!
//! The fields below are a suggestion: a directory, one open log file, where it ends, and an
//! index from each key to the place of its latest record. Change them as you like; only the
//! trait's signatures are fixed.

// Lets the skeleton compile without warnings while it is all `todo!()`. Remove this line once
// your fields and helpers are used, so the compiler can point at the ones you forgot.
#![allow(unused_variables, dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::LogStore;

/// Where a value lives in the log: enough to read it back with one positioned read
/// (`std::os::unix::fs::FileExt::read_exact_at`).
#[derive(Debug, Clone, Copy)]
struct Location {
    /// Byte offset of the value in the log file.
    offset: u64,
    /// Length of the value in bytes.
    len: u32,
}

/// A log-structured key-value store in one directory.
pub struct Store {
    /// The directory that holds every file of the store.
    dir: PathBuf,
    /// The log: records appended one after another, never overwritten.
    log: File,
    /// Where the next record goes: the length of the log's whole records.
    end: u64,
    /// Every live key and where its value is. Values stay on disk; only keys live in memory.
    index: HashMap<Vec<u8>, Location>,
}

impl LogStore for Store {
    fn open(dir: &Path) -> io::Result<Self> {
        // Hints: `std::fs::create_dir_all`, then `OpenOptions` (read, write, create). Read the
        // log record by record from the start; stop at the first record that is short or fails
        // its checksum, `set_len` the file to the end of the last good one, and write after it.
        // Never believe a length field before checking it against the bytes that are left.
        todo!("lab01: open or create the log in dir, rebuild the index, cut a torn tail")
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        // Encode the whole record into one buffer and write it with one call, at `self.end`.
        todo!("lab01: append a set record to the log and point the index at its value")
    }

    fn get(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        todo!("lab01: look the key up in the index and read its value from the log")
    }

    fn del(&mut self, key: &[u8]) -> io::Result<bool> {
        // A delete must be in the log too (a tombstone), or the key comes back after a restart.
        todo!("lab01: append a tombstone if the key has a value, and drop it from the index")
    }

    fn compact(&mut self) -> io::Result<()> {
        // Write the live records to a new file, make it the log (`std::fs::rename` replaces a
        // file in one step), and point the index at the new places. What if the process
        // crashes halfway through?
        todo!("lab01: copy the live records to a new log, swap it in, remove the old one")
    }
}
