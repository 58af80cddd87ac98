//! Lab 01: a log-structured key-value store.
//!
//! You write [`Store`], a key-value store that keeps its data in a directory of files the way
//! Bitcask does (Sheehy & Smith, Basho, 2010): every change is *appended* to a log, an
//! in-memory index finds each key's latest record, a crash can leave at most a torn record at
//! the end of the log, and *compaction* rewrites the log without the records nobody can read
//! any more. The whole assignment is in this crate's `README.md`.
//!
//! # Map
//!
//! - [`LogStore`] (here): the trait you implement, and the contract the tests hold you to.
//! - `student.rs`: your [`Store`], a skeleton full of `todo!()` to replace.
//! - `reference.rs`: the toolkit's own store (`dkvs::storage`) behind the same trait; the
//!   tests run against it with `--features reference`.
//! - [`grading`]: the graded checks, generic over any [`LogStore`]; `tests/grade.rs` runs them
//!   on your [`Store`].

use std::io;
use std::path::Path;

#[cfg(not(feature = "reference"))]
#[path = "student.rs"]
mod store;

#[cfg(feature = "reference")]
#[path = "reference.rs"]
mod store;

pub mod grading;

pub use store::Store;

/// A key-value store kept in the files of one directory.
///
/// # The contract
///
/// - **Write-through.** When `set` or `del` returns `Ok`, its record is in a file inside the
///   directory (written with `write`, not merely buffered in memory; no `fsync` needed: the
///   tests simulate a crash of the *process* by dropping the store, not a power cut).
/// - **One file per write.** A `set`, or a `del` of a key that has a value, appends its record
///   to exactly one file and writes to no other. (A `del` of a key without a value may write a
///   record or nothing.) This is how the tests find the record to tear without knowing your
///   format.
/// - **Everything in `dir`.** The store keeps all its files inside `dir` (subdirectories
///   allowed) and nothing elsewhere.
/// - **Recovery never fails on damage.** `open` keeps every whole record in order; a torn or
///   corrupt tail is cut off, and later writes are appended after the cut, never after the
///   garbage.
/// - **Keys and values are bytes.** Keys are 1 to 1024 bytes, values 0 to 64 KiB, any bytes at
///   all (not necessarily UTF-8). An empty value is a value: `get` answers `Some(vec![])`.
///
/// # Errors
/// Every method returns I/O errors from the file system as they are. Damage found by `open`
/// is not an error: it is cut off.
pub trait LogStore: Sized {
    /// Opens the store in `dir` (creating it if needed), recovering what an earlier run left:
    /// every whole record, in order; a torn or corrupt tail is cut off, never an error.
    fn open(dir: &Path) -> io::Result<Self>;

    /// Sets `key` to `value`, appending a record.
    fn set(&mut self, key: &[u8], value: &[u8]) -> io::Result<()>;

    /// The latest value of `key`, or `None` if it has none (never set, or deleted since).
    fn get(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>>;

    /// Removes `key`, appending a tombstone record. Returns whether the key had a value.
    fn del(&mut self, key: &[u8]) -> io::Result<bool>;

    /// Rewrites the log so that it holds only live data; reads see no change. When it returns,
    /// the old records are gone from the directory.
    fn compact(&mut self) -> io::Result<()>;
}
