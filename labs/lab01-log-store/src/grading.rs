//! The graded checks, one function per behaviour, generic over any [`LogStore`].
//!
//! `tests/grade.rs` runs each of them on your `Store`; `tests/wrong.rs` runs them on stores that
//! are wrong on purpose, to show that each check catches what it is meant to. Reading this file
//! is allowed and useful: it is the precise form of the README's contract.
//!
//! # How a check works
//!
//! Every check runs a random workload from a seed ([`dkvs::sim::Rng`]), in a temporary
//! directory of its own, and keeps a *model*: a `BTreeMap` of what the store should hold. Every
//! answer of the store is compared with the model. The first difference, error or panic stops
//! the check and becomes a [`Failure`] whose summary says what was asked, what came back and
//! what was expected, and whose details list the last operations before it.
//!
//! Calls into the store run under [`labkit::guard()`], so a `todo!()` or any other panic is a
//! one-line failure, not a wall of text.
//!
//! # Crashes without knowing your format
//!
//! The checks never parse your files. To simulate a crash in the middle of a write they note
//! the size of every file in the directory before and after one `set` or `del`: the one file
//! that grew holds that write's record, in the bytes it grew by. Dropping the store is the
//! crash (the process is gone; what was written stays), and then those bytes are cut, followed
//! by garbage, or have one byte changed, before the store is opened again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use dkvs::sim::Rng;
use labkit::{Failure, guard};
use tempfile::TempDir;

use crate::LogStore;

/// The seeds a check runs when `LAB_SEED` and `LAB_SEEDS` are not set.
pub const DEFAULT_SEEDS: RangeInclusive<u64> = 1..=20;

/// The size of every file under a store's directory, by its path relative to the directory.
type Sizes = BTreeMap<PathBuf, u64>;

/// How many of the last operations a failure lists.
const HISTORY_SHOWN: usize = 40;

/// The seeds to run: `LAB_SEED=17` runs one, `LAB_SEEDS=1..500` (or `1..=500`) a range, both
/// ends included; otherwise [`DEFAULT_SEEDS`].
pub fn seeds() -> RangeInclusive<u64> {
    labkit::grade::seeds_to_run(DEFAULT_SEEDS)
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// `set`, `get` and `del` agree with a map: every `get` returns the latest value, every `del`
/// says whether the key had one.
///
/// # Errors
/// The first seed whose store answers differently, fails, or panics.
pub fn set_get_del<S: LogStore>(seeds: RangeInclusive<u64>) -> Result<(), Failure> {
    for seed in seeds {
        let mut rng = Rng::new(seed);
        let mut s = Session::<S>::new(Some(seed))?;
        let keys = key_names(&mut rng, 12);
        s.open()?;
        for _ in 0..300 {
            s.random_op(&mut rng, &keys, Mix::WITH_READS)?;
        }
        s.phase = "at the end".into();
        s.check_all()?;
    }
    Ok(())
}

/// Dropping the store and opening it again (a clean crash: no write was under way) loses
/// nothing and brings back nothing deleted.
///
/// # Errors
/// The first seed whose store differs from the model after a reopen, fails, or panics.
pub fn reopen_keeps_everything<S: LogStore>(seeds: RangeInclusive<u64>) -> Result<(), Failure> {
    for seed in seeds {
        let mut rng = Rng::new(seed);
        let mut s = Session::<S>::new(Some(seed))?;
        let keys = key_names(&mut rng, 12);
        s.open()?;
        let mut reopens = 0;
        for _ in 0..300 {
            s.random_op(&mut rng, &keys, Mix::WITH_READS)?;
            if rng.percent(6) {
                reopens += 1;
                s.reopen(format!("after reopen #{reopens}"))?;
                s.check_all()?;
                s.phase.clear();
            }
        }
        s.reopen("after the final reopen".into())?;
        s.check_all()?;
    }
    Ok(())
}

/// A crash in the middle of a write leaves a torn record at the end of a file: `open` drops it
/// and keeps everything before it, and later writes survive the next reopen (they must not be
/// appended after the torn bytes).
///
/// # Errors
/// The first seed whose store does not recover to the state before the torn write, fails,
/// panics, or loses what it wrote after recovering.
pub fn torn_tail_is_cut<S: LogStore>(seeds: RangeInclusive<u64>) -> Result<(), Failure> {
    for seed in seeds {
        damage_one::<S>(seed, Damage::Tear)?;
    }
    Ok(())
}

/// Garbage after the last whole record (a crash while a file was extended, or a record that
/// had written nothing but its first bytes) is ignored, the record before it is kept, and later
/// writes survive the next reopen.
///
/// # Errors
/// The first seed whose store loses the last write, fails, panics, or loses what it wrote
/// after recovering.
pub fn garbage_tail_is_ignored<S: LogStore>(seeds: RangeInclusive<u64>) -> Result<(), Failure> {
    for seed in seeds {
        damage_one::<S>(seed, Damage::Garbage)?;
    }
    Ok(())
}

/// A record with one byte changed, anywhere in it, is dropped at `open` (it takes a checksum
/// that covers every byte of the record), and later writes survive the next reopen.
///
/// # Errors
/// The first seed whose store believes the damaged record, fails, panics, or loses what it
/// wrote after recovering.
pub fn corrupt_record_is_dropped<S: LogStore>(seeds: RangeInclusive<u64>) -> Result<(), Failure> {
    for seed in seeds {
        damage_one::<S>(seed, Damage::Flip)?;
    }
    Ok(())
}

/// After many overwrites and deletes, `compact` shrinks the files to about what a fresh store
/// holding only the live data takes, changes no answer, and survives a reopen; deleted keys
/// stay deleted.
///
/// The bound is format-agnostic: the same implementation, opened in an empty directory, is
/// given every live key once; after `compact` the store's files may take at most 1.5 times
/// that, plus [`COMPACTION_SLACK_BYTES`].
///
/// # Errors
/// The first seed whose store answers differently after compacting or reopening, keeps too
/// many bytes, fails, or panics.
pub fn compaction_reclaims_space<S: LogStore>(seeds: RangeInclusive<u64>) -> Result<(), Failure> {
    for seed in seeds {
        compaction_one::<S>(seed)?;
    }
    Ok(())
}

/// Bytes a compacted store may take beyond 1.5 times a fresh store with the same data: room
/// for a header, a small index file, a lock file.
pub const COMPACTION_SLACK_BYTES: u64 = 4096;

/// A fixed scenario told as a transcript: every operation and the store's answer, two crashes
/// with damage, a compaction. `tests/grade.rs` compares it with a stored snapshot, which holds
/// no sizes, paths or file names, so any correct store produces it.
///
/// # Errors
/// When the store fails or panics, or a write grows not exactly one file.
pub fn story<S: LogStore>() -> Result<String, Failure> {
    let mut t = Story {
        s: Session::<S>::new(None)?,
        out: String::new(),
        last_write: None,
    };
    t.say("An empty directory: open creates the store.");
    t.open()?;
    t.get("apple")?;
    t.set("apple", "red")?;
    t.set("banana", "yellow")?;
    t.set("cherry", "dark red")?;
    t.get("apple")?;
    t.say("An overwrite appends a record; the index points at the newest one.");
    t.set("apple", "green")?;
    t.get("apple")?;
    t.say("A delete appends a tombstone; del says whether there was a value.");
    t.del("banana")?;
    t.del("banana")?;
    t.get("banana")?;
    t.say("An empty value is a value, not a delete.");
    t.set("fig", "")?;
    t.get("fig")?;

    t.say("The process dies between two writes. Opening again reads the log back.");
    t.crash()?;
    t.open()?;
    t.get_all(&["apple", "banana", "cherry", "fig"])?;

    t.say("The process dies halfway through appending a record: half of it is in the file.");
    t.set("cherry", "black")?;
    t.crash_with(Damage::Tear)?;
    t.open()?;
    t.get_all(&["apple", "cherry"])?;
    t.say("Writes after recovery go after the cut, so the next open reads them.");
    t.set("date", "brown")?;
    t.crash()?;
    t.open()?;
    t.get_all(&["cherry", "date"])?;

    t.say("Garbage after the last whole record is ignored; the record before it is kept.");
    t.set("elder", "purple")?;
    t.crash_with(Damage::Garbage)?;
    t.open()?;
    t.get_all(&["date", "elder"])?;

    t.say("Compaction drops old values and tombstones; no answer changes.");
    t.set("apple", "yellow")?;
    t.del("fig")?;
    t.compact()?;
    t.get_all(&["apple", "banana", "cherry", "date", "elder", "fig"])?;
    t.say("And nothing comes back after a restart, deleted keys included.");
    t.crash()?;
    t.open()?;
    t.get_all(&["apple", "banana", "cherry", "date", "elder", "fig"])?;
    t.set("banana", "green")?;
    t.get("banana")?;
    Ok(t.out)
}

// ---------------------------------------------------------------------------------------------
// Damage and compaction, one seed
// ---------------------------------------------------------------------------------------------

/// What a crash does to the bytes of the last write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// The file is cut somewhere strictly inside the record: the write was torn.
    Tear,
    /// Random bytes are appended after the record, which is whole.
    Garbage,
    /// One byte of the record is changed.
    Flip,
}

fn damage_one<S: LogStore>(seed: u64, damage: Damage) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    let mut s = Session::<S>::new(Some(seed))?;
    let keys = key_names(&mut rng, 10);
    s.open()?;
    // A history before the crash, sometimes with a clean reopen in it, so that the damaged
    // record is not always the first thing written since `open`.
    let ops = rng.between(5, 120);
    for _ in 0..ops {
        s.random_op(&mut rng, &keys, Mix::WRITES)?;
        if rng.percent(2) {
            s.reopen("after a clean reopen".into())?;
            s.phase.clear();
        }
    }
    // The last write: a set, or a delete of a key that has a value (which must write).
    let live: Vec<Vec<u8>> = s.model.keys().cloned().collect();
    let before = s.model.clone();
    let grown = if !live.is_empty() && rng.percent(30) {
        let key = live[rng.index(live.len())].clone();
        s.grown_by(&key, |s| s.del(&key))?
    } else {
        let key = keys[rng.index(keys.len())].clone();
        let value = random_value(&mut rng, s.history.len());
        s.grown_by(&key, |s| s.set(&key, &value))?
    };
    let last = s.history.last().cloned().unwrap_or_default();
    s.crash()?;
    let done = s.damage(&grown, damage, Some(&mut rng))?;
    match damage {
        // The last write's record is damaged: recovery must drop it, and only it.
        Damage::Tear | Damage::Flip => s.model = before,
        // The last write's record is whole: recovery must keep it.
        Damage::Garbage => {}
    }
    let expected = match damage {
        Damage::Tear | Damage::Flip => "without it",
        Damage::Garbage => "with it",
    };
    s.open_after(format!(
        "after a crash that {done} the last write ({last}) and a reopen, which must give the store {expected}"
    ))?;
    s.check_all()?;

    // The classic bug: recovery stops reading at the damage but the store appends after it,
    // so everything written from now on is behind the garbage, unreadable at the next open.
    s.phase = format!("after recovering from a crash that {done} a write");
    let n = rng.between(1, 4);
    for _ in 0..n {
        s.random_op(&mut rng, &keys, Mix::WRITES)?;
    }
    s.set(&grown.key, b"written after recovery")?;
    s.reopen(format!(
        "after recovering from a crash that {done} a write, writing again and reopening: the new writes must be appended after the cut, not after the damaged bytes"
    ))?;
    s.check_all()
}

fn compaction_one<S: LogStore>(seed: u64) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    let mut s = Session::<S>::new(Some(seed))?;
    let keys = key_names(&mut rng, 40);
    s.open()?;
    for key in &keys {
        let value = sized_value(&mut rng, s.history.len());
        s.set(key, &value)?;
    }
    // Churn: about 4 records for every live one, overwrites and deletes.
    for _ in 0..400 {
        let key = &keys[rng.index(keys.len())];
        if rng.percent(75) {
            let value = sized_value(&mut rng, s.history.len());
            s.set(key, &value)?;
        } else {
            s.del(key)?;
        }
    }
    // Some keys deleted for sure, so that "deleted stays deleted" is tested on every seed.
    for _ in 0..8 {
        let key = &keys[rng.index(keys.len())];
        s.del(key)?;
    }
    s.phase = "before compacting".into();
    s.check_all()?;
    let bytes_before = s.total_bytes()?;

    s.compact()?;
    s.phase = "right after compact".into();
    s.check_all()?;
    let bytes_after = s.total_bytes()?;

    // What the same implementation takes for the live data alone, written once.
    let mut fresh = Session::<S>::new(Some(seed))?;
    fresh.phase = "writing the live data to a fresh store, to measure it".into();
    fresh.open()?;
    for (key, value) in &s.model {
        fresh.set(key, value)?;
    }
    let bytes_fresh = fresh.total_bytes()?;
    fresh.crash()?;
    drop(fresh);
    let limit = bytes_fresh + bytes_fresh / 2 + COMPACTION_SLACK_BYTES;
    s.phase.clear();
    if bytes_after > limit {
        return Err(s.fail(format!(
            "after compact the store's files hold {bytes_after} bytes (before: {bytes_before}); a fresh store given the same {} live keys takes {bytes_fresh} bytes, so at most {limit} were allowed",
            s.model.len()
        )));
    }

    s.reopen("after compact and a reopen".into())?;
    s.check_all()?;

    // The store keeps working after a compaction, and compacts again.
    s.phase = "writing after a compaction".into();
    for _ in 0..60 {
        s.random_op(&mut rng, &keys, Mix::WITH_READS)?;
    }
    s.compact()?;
    s.phase = "after a second compact".into();
    s.check_all()?;
    s.reopen("after a second compact and a reopen".into())?;
    s.check_all()
}

// ---------------------------------------------------------------------------------------------
// A store under test, its model, and what was done to it
// ---------------------------------------------------------------------------------------------

/// One store in a temporary directory, the model of what it should hold, and its history.
struct Session<S> {
    /// The seed, for the failure's first line.
    seed: Option<u64>,
    /// Owns the temporary directory and removes it when the session ends, failed or not.
    _tmp: TempDir,
    /// The store's directory: `store/` inside the temporary one, so that `open` must create it.
    dir: PathBuf,
    /// The open store; `None` between a crash and the next open.
    store: Option<S>,
    /// What the store should hold.
    model: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every key ever written, deleted ones included: the keys [`Session::check_all`] reads.
    keys: BTreeSet<Vec<u8>>,
    /// One line per thing done, for the failure's details.
    history: Vec<String>,
    /// Where the workload is, for the failure's summary ("after a reopen", …); may be empty.
    phase: String,
}

/// The one file a write grew, and by which bytes.
#[derive(Debug, Clone)]
struct Grown {
    /// The file, relative to the store's directory.
    file: PathBuf,
    /// Its size before the write (0 for a file the write created).
    before: u64,
    /// Its size after.
    after: u64,
    /// The key written.
    key: Vec<u8>,
}

/// How often [`Session::random_op`] does what, in percent: set, then get; the rest is del.
#[derive(Debug, Clone, Copy)]
struct Mix {
    set: u64,
    get: u64,
}

impl Mix {
    const WITH_READS: Mix = Mix { set: 45, get: 30 };
    const WRITES: Mix = Mix { set: 70, get: 10 };
}

impl<S: LogStore> Session<S> {
    fn new(seed: Option<u64>) -> Result<Session<S>, Failure> {
        let tmp = tempfile::Builder::new()
            .prefix("lab01-")
            .tempdir()
            .map_err(|e| Failure {
                seed,
                summary: format!("cannot create a temporary directory: {e}"),
                details: String::new(),
            })?;
        let dir = tmp.path().join("store");
        Ok(Session {
            seed,
            _tmp: tmp,
            dir,
            store: None,
            model: BTreeMap::new(),
            keys: BTreeSet::new(),
            history: Vec::new(),
            phase: String::new(),
        })
    }

    /// A failure with `summary`, prefixed with the phase, and the recent history as details.
    fn fail(&self, summary: String) -> Failure {
        let summary = if self.phase.is_empty() {
            summary
        } else {
            format!("{}: {summary}", self.phase)
        };
        let mut details = String::new();
        // A lone step is the one the summary is about (the first `open` of a skeleton).
        if self.history.len() > 1 {
            let skip = self.history.len().saturating_sub(HISTORY_SHOWN);
            details.push_str(&format!(
                "what was done ({} steps{}):\n",
                self.history.len(),
                if skip > 0 { ", the last ones" } else { "" }
            ));
            for (i, line) in self.history.iter().enumerate().skip(skip) {
                details.push_str(&format!("  #{:<4} {line}\n", i + 1));
            }
        }
        Failure {
            seed: self.seed,
            summary,
            details,
        }
    }

    fn note(&mut self, line: String) {
        self.history.push(line);
    }

    /// Runs `f` on the open store under [`guard()`]; an error or a panic becomes a failure.
    fn call<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut S) -> io::Result<T>,
    ) -> Result<T, Failure> {
        let store = self
            .store
            .as_mut()
            .expect("the checks open the store before using it");
        match guard(|| f(store)) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.fail(format!("{what} returned an error: {e}"))),
            Err(panic) => Err(self.fail(format!("{what}: {panic}"))),
        }
    }

    fn open(&mut self) -> Result<(), Failure> {
        self.note("open".into());
        let dir = self.dir.clone();
        match guard(|| S::open(&dir)) {
            Ok(Ok(store)) => {
                self.store = Some(store);
                Ok(())
            }
            Ok(Err(e)) => Err(self.fail(format!("open returned an error: {e}"))),
            Err(panic) => Err(self.fail(format!("open: {panic}"))),
        }
    }

    /// Opens after a crash; `phase` says what the store must have recovered.
    fn open_after(&mut self, phase: String) -> Result<(), Failure> {
        self.phase = phase;
        self.open()
    }

    /// The process dies: the store is dropped without any other call; its files stay.
    fn crash(&mut self) -> Result<(), Failure> {
        self.note("crash (the store is dropped)".into());
        let store = self.store.take();
        guard(move || drop(store))
            .map_err(|panic| self.fail(format!("dropping the store: {panic}")))
    }

    fn reopen(&mut self, phase: String) -> Result<(), Failure> {
        self.crash()?;
        self.open_after(phase)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), Failure> {
        let what = format!("set {} = {}", show(key), show(value));
        self.note(what.clone());
        self.call(&what, |s| s.set(key, value))?;
        self.model.insert(key.to_vec(), value.to_vec());
        self.keys.insert(key.to_vec());
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Result<(), Failure> {
        let what = format!("get {}", show(key));
        let got = self.call(&what, |s| s.get(key))?;
        self.note(format!("{what} -> {}", show_answer(got.as_deref())));
        let expected = self.model.get(key);
        if got.as_ref() != expected {
            let (got, expected) = (got.as_deref(), expected.map(Vec::as_slice));
            let mut summary = format!(
                "{what} answered {}, expected {}",
                show_answer(got),
                show_answer(expected)
            );
            if let (Some(a), Some(b)) = (got, expected)
                && show(a) == show(b)
            {
                let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
                summary.push_str(&format!(" (they differ from byte {at} on)"));
            }
            return Err(self.fail(summary));
        }
        Ok(())
    }

    fn del(&mut self, key: &[u8]) -> Result<(), Failure> {
        let what = format!("del {}", show(key));
        let existed = self.call(&what, |s| s.del(key))?;
        self.note(format!("{what} -> {existed}"));
        let expected = self.model.remove(key).is_some();
        self.keys.insert(key.to_vec());
        if existed != expected {
            let had = if expected {
                "had a value"
            } else {
                "had no value"
            };
            return Err(self.fail(format!(
                "{what} answered {existed}, but {} {had}",
                show(key)
            )));
        }
        Ok(())
    }

    fn compact(&mut self) -> Result<(), Failure> {
        self.note("compact".into());
        self.call("compact", |s| s.compact())
    }

    /// Reads every key ever written and compares it with the model.
    fn check_all(&mut self) -> Result<(), Failure> {
        let keys: Vec<Vec<u8>> = self.keys.iter().cloned().collect();
        for key in keys {
            self.get(&key)?;
        }
        Ok(())
    }

    /// One random operation on one of `keys`.
    fn random_op(&mut self, rng: &mut Rng, keys: &[Vec<u8>], mix: Mix) -> Result<(), Failure> {
        let key = &keys[rng.index(keys.len())];
        let roll = rng.below(100);
        if roll < mix.set {
            let value = random_value(rng, self.history.len());
            self.set(key, &value)
        } else if roll < mix.set + mix.get {
            self.get(key)
        } else {
            self.del(key)
        }
    }

    /// Every file under the store's directory and its size.
    fn files(&self) -> Result<Sizes, Failure> {
        let mut files = BTreeMap::new();
        walk(&self.dir, Path::new(""), &mut files).map_err(|e| {
            self.fail(format!(
                "cannot list the store's directory {}: {e}",
                self.dir.display()
            ))
        })?;
        Ok(files)
    }

    fn total_bytes(&self) -> Result<u64, Failure> {
        Ok(self.files()?.values().sum())
    }

    /// Runs `write` (one `set` or `del` of `key` that must write) and finds the one file it
    /// grew.
    fn grown_by(
        &mut self,
        key: &[u8],
        write: impl FnOnce(&mut Self) -> Result<(), Failure>,
    ) -> Result<Grown, Failure> {
        let before = self.files()?;
        write(self)?;
        let after = self.files()?;
        self.one_grown(key, &before, &after)
    }

    /// The one file that grew from `before` to `after`, the sizes of the directory's files
    /// around the last write, which was of `key`.
    fn one_grown(&self, key: &[u8], before: &Sizes, after: &Sizes) -> Result<Grown, Failure> {
        let what = self.history.last().cloned().unwrap_or_default();
        let grown: Vec<(&PathBuf, u64, u64)> = after
            .iter()
            .filter_map(|(file, &size)| {
                let was = before.get(file).copied().unwrap_or(0);
                (size > was).then_some((file, was, size))
            })
            .collect();
        match grown.as_slice() {
            [(file, was, size)] => Ok(Grown {
                file: (*file).clone(),
                before: *was,
                after: *size,
                key: key.to_vec(),
            }),
            [] => Err(self.fail(format!(
                "{what} returned, but no file in the store's directory grew: every set (and every del of a key with a value) must be written to a file before it returns"
            ))),
            many => Err(self.fail(format!(
                "{what} grew {} files ({}): each set or del must append to exactly one file, so that a crash can tear it in one place only",
                many.len(),
                many.iter()
                    .map(|(f, _, _)| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Damages the bytes of the write `grown` describes, the store being closed (crashed).
    /// With `rng`, where and how is drawn from it; without, it is fixed (for the story).
    /// Returns what the crash did, to complete "a crash that … the last write".
    fn damage(
        &mut self,
        grown: &Grown,
        damage: Damage,
        rng: Option<&mut Rng>,
    ) -> Result<String, Failure> {
        let path = self.dir.join(&grown.file);
        let name = grown.file.display().to_string();
        let (start, end) = (grown.before, grown.after);
        let (done, line, result) = match damage {
            Damage::Tear => {
                // Strictly inside: at least one byte of the record stays, at least one goes.
                let cut = match rng {
                    _ if end - start < 2 => start,
                    Some(rng) => rng.between(start + 1, end - 1),
                    None => start + (end - start) / 2,
                };
                let result = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(cut));
                (
                    "tore".to_string(),
                    format!(
                        "tear the write: cut {name} from {end} to {cut} bytes (the write grew it from {start})"
                    ),
                    result,
                )
            }
            Damage::Garbage => {
                let garbage: Vec<u8> = match rng {
                    Some(rng) => {
                        let len = rng.between(1, 64);
                        (0..len).map(|_| rng.below(256) as u8).collect()
                    }
                    None => b"\x7f\x00\xffGARBAGE\x13\x37\x00\x00\x01".to_vec(),
                };
                let result = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(&garbage));
                (
                    format!("left {} bytes of garbage after", garbage.len()),
                    format!(
                        "append {} bytes of garbage to {name} (the write grew it from {start} to {end})",
                        garbage.len()
                    ),
                    result,
                )
            }
            Damage::Flip => {
                let (at, mask) = match rng {
                    Some(rng) => (rng.between(start, end - 1), rng.between(1, 255) as u8),
                    None => (start + (end - start) / 2, 0xff),
                };
                let result = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .and_then(|f| {
                        let mut byte = [0u8; 1];
                        f.read_exact_at(&mut byte, at)?;
                        f.write_all_at(&[byte[0] ^ mask], at)
                    });
                (
                    "changed one byte of".to_string(),
                    format!(
                        "change the byte at {at} of {name} (xor {mask:#04x}; the write grew it from {start} to {end})"
                    ),
                    result,
                )
            }
        };
        self.note(line);
        result.map_err(|e| self.fail(format!("cannot damage {name} for the test: {e}")))?;
        Ok(done)
    }
}

/// Adds every regular file under `dir` to `out`, named relative to the store's directory
/// (`rel` is `dir`'s name relative to it). A missing store directory has no files.
fn walk(dir: &Path, rel: &Path, out: &mut Sizes) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // A file removed while we list (a store's own temporary file) is simply not there.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let name = rel.join(entry.file_name());
        if meta.is_dir() {
            walk(&entry.path(), &name, out)?;
        } else if meta.is_file() {
            out.insert(name, meta.len());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The story: a transcript of answers
// ---------------------------------------------------------------------------------------------

/// The story's session and its transcript. Unlike the checks, it compares nothing: it writes
/// down what the store answered, and the snapshot does the comparing.
struct Story<S> {
    s: Session<S>,
    out: String,
    /// The sizes of the files around the last `set` or `del`, and its key, for a crash that
    /// damages it.
    last_write: Option<(Vec<u8>, Sizes, Sizes)>,
}

impl<S: LogStore> Story<S> {
    /// A comment line: why the next steps are there.
    fn say(&mut self, text: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str(&format!("# {text}\n"));
    }

    fn line(&mut self, op: &str, answer: &str) {
        self.out.push_str(&format!("{op:<28} -> {answer}\n"));
    }

    fn open(&mut self) -> Result<(), Failure> {
        self.s.open()?;
        self.line("open", "ok");
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), Failure> {
        let what = format!("set {} = {}", show(key.as_bytes()), show(value.as_bytes()));
        self.s.note(what.clone());
        let before = self.s.files()?;
        self.s
            .call(&what, |st| st.set(key.as_bytes(), value.as_bytes()))?;
        let after = self.s.files()?;
        self.last_write = Some((key.as_bytes().to_vec(), before, after));
        self.line(&what, "ok");
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<(), Failure> {
        let what = format!("get {}", show(key.as_bytes()));
        let got = self.s.call(&what, |st| st.get(key.as_bytes()))?;
        let answer = show_answer(got.as_deref());
        self.s.note(format!("{what} -> {answer}"));
        self.line(&what, &answer);
        Ok(())
    }

    fn get_all(&mut self, keys: &[&str]) -> Result<(), Failure> {
        keys.iter().try_for_each(|key| self.get(key))
    }

    fn del(&mut self, key: &str) -> Result<(), Failure> {
        let what = format!("del {}", show(key.as_bytes()));
        let before = self.s.files()?;
        let existed = self.s.call(&what, |st| st.del(key.as_bytes()))?;
        let after = self.s.files()?;
        self.s.note(format!("{what} -> {existed}"));
        self.last_write = Some((key.as_bytes().to_vec(), before, after));
        self.line(&what, &existed.to_string());
        Ok(())
    }

    fn compact(&mut self) -> Result<(), Failure> {
        self.s.compact()?;
        self.line("compact", "ok");
        Ok(())
    }

    fn crash(&mut self) -> Result<(), Failure> {
        self.s.crash()?;
        self.out.push_str("crash\n");
        Ok(())
    }

    fn crash_with(&mut self, damage: Damage) -> Result<(), Failure> {
        let (key, before, after) = self
            .last_write
            .take()
            .expect("the story writes before it damages a write");
        let grown = self.s.one_grown(&key, &before, &after)?;
        self.s.crash()?;
        self.s.damage(&grown, damage, None)?;
        self.out.push_str(match damage {
            Damage::Tear => "crash, tearing the last write\n",
            Damage::Garbage => "crash, leaving garbage after the last write\n",
            Damage::Flip => "crash, changing one byte of the last write\n",
        });
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Keys, values, and how they are shown
// ---------------------------------------------------------------------------------------------

/// `n` distinct keys for one seed: `k00`, `k01`, … each with a random tail of letters, a few of
/// them long.
fn key_names(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let tail = if rng.percent(20) {
                rng.between(20, 80)
            } else {
                rng.between(0, 6)
            };
            let mut key = format!("k{i:02}").into_bytes();
            key.extend((0..tail).map(|_| b'a' + rng.below(26) as u8));
            key
        })
        .collect()
}

/// A value for the write at `step`: mostly short text that names its step (so a stale value in
/// a failure shows where it came from), sometimes empty, sometimes binary, sometimes kilobytes.
fn random_value(rng: &mut Rng, step: usize) -> Vec<u8> {
    match rng.below(100) {
        0..5 => Vec::new(),
        5..15 => {
            let len = rng.between(1, 48);
            (0..len).map(|_| rng.below(256) as u8).collect()
        }
        15..20 => {
            let len = rng.between(1000, 6000);
            text_value(rng, step, len)
        }
        _ => {
            let len = rng.between(0, 40);
            text_value(rng, step, len)
        }
    }
}

/// A value of 100 to 400 bytes, for the compaction check's sizes.
fn sized_value(rng: &mut Rng, step: usize) -> Vec<u8> {
    let len = rng.between(100, 400);
    text_value(rng, step, len)
}

/// `v<step>:` and `len` random letters.
fn text_value(rng: &mut Rng, step: usize, len: u64) -> Vec<u8> {
    let mut value = format!("v{}:", step + 1).into_bytes();
    value.extend((0..len).map(|_| b'a' + rng.below(26) as u8));
    value
}

/// Bytes as a quoted, escaped string; long ones cut, with their length.
fn show(bytes: &[u8]) -> String {
    const SHOWN: usize = 28;
    if bytes.len() <= SHOWN {
        format!("\"{}\"", bytes.escape_ascii())
    } else {
        format!(
            "\"{}…\" ({} bytes)",
            bytes[..SHOWN - 8].escape_ascii(),
            bytes.len()
        )
    }
}

/// An answer of `get`: `none` or the value.
fn show_answer(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "none".to_string(), show)
}
