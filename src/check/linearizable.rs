//! Linearizability: does some order of the operations respect real time *and* the model?
//!
//! A history is **linearizable** (Herlihy and Wing, 1990) if every operation can be given a
//! single instant between its invoke and its return — its *linearization point* — such that,
//! taken in the order of those instants, the operations form a legal sequential run of the
//! model: every read sees the latest write before it. An operation nobody heard back from
//! may take effect at any instant after its invoke, or never.
//!
//! ## The search: Wing and Gong, with Lowe's memo
//! Wing and Gong (1993) search for a linearization directly. Keep the history as a list of call
//! and return events sorted by time. Walk it from the front: at a *call*, try to linearize that
//! operation now — apply it to the model; if the result matches what the client saw, take the
//! call and its return out of the list, push it on a stack, and start again from the front. At a
//! *return*, the operation that returns there should already have been linearized and was not:
//! this path is dead, so pop the last choice, put it back, and try the next call after it. The
//! list empties exactly when a linearization has been found; the stack empties exactly when none
//! exists.
//!
//! The search is exponential because it reaches the same situation by many paths. Lowe ("Testing
//! for linearizability", 2017) noticed that the situation is fully described by *which*
//! operations are linearized (a bit set) and the model's state, and that reaching a
//! configuration seen before can never lead anywhere new. Memoising those pairs is what makes
//! the search practical; Porcupine and Knossos do the same.
//!
//! ## Split by key
//! Linearizability is *local*: a history of a map is linearizable if and only if, for each key,
//! the operations on that key are (Herlihy and Wing's Theorem 1; Horn and Kroening call the
//! general idea P-compositionality). So each key is searched alone, which turns one exponential
//! problem into many small ones. Sequential consistency has no such property; see
//! [`super::sequential`].
//!
//! ## Cost and budget
//! The memo holds at most one entry per (linearized set, state) pair visited, each entry a bit
//! set of one bit per operation of the key. Deciding linearizability is NP-complete (Gibbons and
//! Korach 1997), so a large enough history with enough concurrency can exhaust any machine; the
//! [`Budget`] bounds wall time and memo bytes, and the answer is then [`Verdict::Unknown`], with
//! the reason, rather than a hang or an out-of-memory kill.
//!
//! ## Explaining a violation
//! A key's history that cannot be linearized is shrunk ([`super::shrink`]) to a set of
//! operations from which no single one can be removed without the violation disappearing, and
//! the shape of that small set is described in words (a stale read, a read from the future, a
//! value nobody wrote, …).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::history::{History, Nanos, Op, Operation, Outcome};
use super::model::{ABSENT, StateId, Step, Values};
use super::shrink::{self, Probe};
use super::{Budget, Exhausted, Verdict, Violation};

/// Checks the whole history, key by key.
///
/// The keys are searched in turns, each for a slice of steps that doubles every round, so one
/// key whose search is long cannot hide a violation on another that a few steps would find
/// (Porcupine gets the same effect from running keys in parallel and stopping at the first
/// failure; turns keep the answer — and which key is reported — the same on every run). A
/// violation on any key decides the answer; otherwise, if some key ran out of budget, the answer
/// is unknown.
pub fn check(history: &History, budget: &Budget) -> Verdict {
    let start = Instant::now();
    let limits = Limits::new(budget, start);
    let mut partitions: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
    for op in &history.ops {
        partitions.entry(op.op.key()).or_default().push(op.clone());
    }
    let mut searches: Vec<(&str, Wgl)> = partitions
        .iter()
        .map(|(key, ops)| (*key, Wgl::new(ops)))
        .collect();
    let mut slice: u64 = 1 << 14;
    while !searches.is_empty() {
        let mut i = 0;
        while i < searches.len() {
            // Memory is shared by all keys still being searched.
            let others: usize = searches
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, w))| w.bytes())
                .sum();
            let (key, search) = &mut searches[i];
            match search.run(slice, &limits, others) {
                None => i += 1,
                Some(Search::Linearizable) => {
                    searches.remove(i);
                }
                Some(Search::Stuck) => {
                    let key = key.to_string();
                    drop(searches);
                    let ops = partitions.remove(key.as_str()).unwrap_or_default();
                    return Verdict::Violation(explain_key(
                        &key,
                        ops,
                        &limits,
                        budget.shrink_steps,
                    ));
                }
                Some(Search::Exhausted(why)) => {
                    return Verdict::Unknown {
                        reason: format!(
                            "{why} while searching the operations on key {key:?} (after {:.2} s)",
                            start.elapsed().as_secs_f64()
                        ),
                    };
                }
            }
        }
        slice = slice.saturating_mul(2);
    }
    Verdict::Consistent
}

/// Where the search must stop.
struct Limits {
    deadline: Option<Instant>,
    memory_limit_bytes: usize,
}

impl Limits {
    fn new(budget: &Budget, start: Instant) -> Limits {
        Limits {
            deadline: budget.deadline(start),
            memory_limit_bytes: budget.memory_limit_bytes,
        }
    }
}

/// The result of searching one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Search {
    Linearizable,
    /// Every order was tried; none works.
    Stuck,
    Exhausted(Exhausted),
}

/// Runs the search over the operations of one key to the end, or until `max_steps`.
fn check_key(ops: &[Operation], limits: &Limits, max_steps: u64) -> (Option<Search>, u64) {
    let mut search = Wgl::new(ops);
    let result = search.run(max_steps, limits, 0);
    (result, search.steps)
}

/// An entry of the event list: a call or a return of one operation.
#[derive(Clone, Copy)]
struct Entry {
    op: u32,
    /// For a call, the index of its return entry; for a return, `NONE`.
    matching: u32,
}

const NONE: u32 = u32::MAX;

/// The Wing–Gong–Lowe search over one key, resumable: [`Wgl::run`] stops after a number of
/// steps and carries on where it left off when called again.
struct Wgl {
    values: Values,
    steps_of: Vec<Step>,
    /// Events in time order, between a head sentinel (0) and a tail sentinel (`len + 1`).
    entries: Vec<Entry>,
    /// A doubly linked list over `entries`. Linearizing an operation unlinks its call and
    /// return; backtracking links them back in reverse order ("dancing links"), which is why an
    /// unlinked entry keeps its own pointers.
    next: Vec<u32>,
    prev: Vec<u32>,
    tail: usize,
    /// Zobrist hashing: the hash of a set of operations is the XOR of one random word per
    /// member, so adding or removing an operation updates it in O(1).
    zobrist: Vec<u64>,
    linearized: Vec<u64>,
    hash: u64,
    memo: Memo,
    state: StateId,
    /// The choices made so far: (call entry, state before it).
    stack: Vec<(u32, StateId)>,
    /// Where the scan is.
    entry: usize,
    steps: u64,
}

impl Wgl {
    fn new(ops: &[Operation]) -> Wgl {
        let mut values = Values::new();
        // Operations that neither constrain nor change anything are left out (see `model`).
        let compiled: Vec<(Step, Nanos, Option<Nanos>)> = ops
            .iter()
            .filter_map(|o| Step::compile(o, &mut values).map(|s| (s, o.call_ns, o.return_ns)))
            .collect();
        let n = compiled.len();
        // Events sorted by time; at equal times calls come first, so operations that touch are
        // treated as concurrent (the permissive reading, as in Porcupine). An unknown outcome
        // "returns" after everything else.
        let mut events: Vec<(Nanos, bool, u32)> = Vec::with_capacity(2 * n);
        for (i, &(_, call, ret)) in compiled.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 operations on one key");
            events.push((call, false, i));
            events.push((ret.unwrap_or(Nanos::MAX), true, i));
        }
        events.sort_unstable();
        let len = events.len();
        let tail = len + 1;
        let mut return_slot = vec![0u32; n];
        for (pos, &(_, is_return, op)) in events.iter().enumerate() {
            if is_return {
                return_slot[op as usize] = (pos + 1) as u32;
            }
        }
        let mut entries = vec![
            Entry {
                op: NONE,
                matching: NONE,
            };
            len + 2
        ];
        for (pos, &(_, is_return, op)) in events.iter().enumerate() {
            entries[pos + 1] = Entry {
                op,
                matching: if is_return {
                    NONE
                } else {
                    return_slot[op as usize]
                },
            };
        }
        let mut next: Vec<u32> = (1..=tail as u32 + 1).collect();
        next[tail] = NONE;
        let prev: Vec<u32> = (0..=tail as u32).map(|i| i.saturating_sub(1)).collect();
        let words = n.div_ceil(64);
        Wgl {
            values,
            steps_of: compiled.iter().map(|c| c.0).collect(),
            entries,
            entry: next[0] as usize,
            next,
            prev,
            tail,
            zobrist: (0..n as u64).map(splitmix64).collect(),
            linearized: vec![0; words],
            hash: 0,
            memo: Memo::new(words),
            state: ABSENT,
            stack: Vec::with_capacity(n),
            steps: 0,
        }
    }

    fn bytes(&self) -> usize {
        self.memo.bytes() + self.values.heap_bytes()
    }

    fn unlink(&mut self, e: usize) {
        let (p, nx) = (self.prev[e] as usize, self.next[e] as usize);
        self.next[p] = nx as u32;
        self.prev[nx] = p as u32;
    }

    fn relink(&mut self, e: usize) {
        let (p, nx) = (self.prev[e] as usize, self.next[e] as usize);
        self.next[p] = e as u32;
        self.prev[nx] = e as u32;
    }

    /// Searches for up to `max_steps` more steps. `None`: not decided yet. `other_bytes` is
    /// memory held by other searches, counted against the same limit.
    fn run(&mut self, max_steps: u64, limits: &Limits, other_bytes: usize) -> Option<Search> {
        let stop = self.steps.saturating_add(max_steps);
        loop {
            if self.next[0] as usize == self.tail {
                return Some(Search::Linearizable);
            }
            if self.steps >= stop {
                return None;
            }
            self.steps += 1;
            if self.steps.is_multiple_of(4096) {
                if limits.deadline.is_some_and(|d| Instant::now() >= d) {
                    return Some(Search::Exhausted(Exhausted::Time));
                }
                if self.bytes().saturating_add(other_bytes) > limits.memory_limit_bytes {
                    return Some(Search::Exhausted(Exhausted::Memory));
                }
            }
            let entry = self.entry;
            let e = self.entries[entry];
            if e.matching != NONE {
                // A call: try to linearize its operation here.
                let op = e.op as usize;
                if let Some(after) = self.steps_of[op].apply(self.state, &mut self.values) {
                    self.linearized[op / 64] |= 1 << (op % 64);
                    let new_hash = self.hash ^ self.zobrist[op];
                    if self.memo.insert(new_hash, after, &self.linearized) {
                        self.stack.push((entry as u32, self.state));
                        self.state = after;
                        self.hash = new_hash;
                        self.unlink(entry);
                        self.unlink(e.matching as usize);
                        self.entry = self.next[0] as usize;
                        continue;
                    }
                    self.linearized[op / 64] &= !(1 << (op % 64));
                }
                self.entry = self.next[entry] as usize;
            } else {
                // A return whose operation is not linearized yet: undo the last choice.
                let Some((call, before)) = self.stack.pop() else {
                    return Some(Search::Stuck);
                };
                let call = call as usize;
                let op = self.entries[call].op as usize;
                self.relink(self.entries[call].matching as usize);
                self.relink(call);
                self.linearized[op / 64] &= !(1 << (op % 64));
                self.hash ^= self.zobrist[op];
                self.state = before;
                self.entry = self.next[call] as usize;
            }
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a fixed, well-mixed word per operation number.
fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The keys are already random (Zobrist hashes), so hashing them again is wasted work.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Lowe's memo: the set of (linearized operations, state) configurations already reached.
/// Stored flat — one row of `words` bit-set words per entry — and chained by hash.
struct Memo {
    words: usize,
    heads: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    chain: Vec<u32>,
    states: Vec<StateId>,
    bits: Vec<u64>,
}

impl Memo {
    fn new(words: usize) -> Memo {
        Memo {
            words,
            heads: HashMap::default(),
            chain: Vec::new(),
            states: Vec::new(),
            bits: Vec::new(),
        }
    }

    /// Adds the configuration; `false` if it was already there.
    fn insert(&mut self, set_hash: u64, state: StateId, set: &[u64]) -> bool {
        let key = set_hash ^ u64::from(state).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let head = self.heads.get(&key).copied().unwrap_or(NONE);
        let mut at = head;
        while at != NONE {
            let i = at as usize;
            if self.states[i] == state && self.bits[i * self.words..(i + 1) * self.words] == *set {
                return false;
            }
            at = self.chain[i];
        }
        let index = u32::try_from(self.states.len()).expect("memo under 2^32 entries");
        self.states.push(state);
        self.chain.push(head);
        self.bits.extend_from_slice(set);
        self.heads.insert(key, index);
        true
    }

    /// Approximate bytes held (vectors at capacity, and the hash table's slots).
    fn bytes(&self) -> usize {
        self.bits.capacity() * 8
            + self.states.capacity() * 4
            + self.chain.capacity() * 4
            + self.heads.capacity() * 16
    }
}

/// Shrinks one key's failing operations and describes what is left.
/// Shrinks with at most `steps` search steps in all (a step is one call or return visited); with
/// none, the key's whole history is the counterexample.
fn explain_key(key: &str, ops: Vec<Operation>, limits: &Limits, steps: u64) -> Violation {
    if steps == 0 {
        let (notes, reason) = describe(&ops);
        return Violation {
            key: Some(key.to_string()),
            notes,
            ops,
            reason,
            minimal: false,
        };
    }
    let all = ops.clone();
    let mut left = steps;
    let (kept, minimal) = shrink::shrink(ops, |candidate| {
        if !shrink::removals_unobserved(candidate, &all, true) {
            return Probe::Passes;
        }
        let (result, spent) = check_key(candidate, limits, left);
        left = left.saturating_sub(spent);
        match result {
            Some(Search::Stuck) => Probe::Fails,
            Some(Search::Linearizable) => Probe::Passes,
            Some(Search::Exhausted(_)) | None => Probe::GiveUp,
        }
    });
    let (notes, reason) = describe(&kept);
    Violation {
        key: Some(key.to_string()),
        ops: kept,
        notes,
        reason,
        minimal,
    }
}

/// What a write leaves in the key, when that is fixed by the operation alone.
fn written(op: &Operation) -> Option<Option<&str>> {
    match (&op.op, &op.outcome) {
        (_, Outcome::Fail) => None,
        (Op::Set { value, .. }, _) => Some(Some(value)),
        (Op::Del { .. }, _) => Some(None),
        (Op::Cas { value, .. }, Outcome::Ok | Outcome::Unknown) => Some(Some(value)),
        _ => None,
    }
}

/// What a completed read saw.
fn observed(op: &Operation) -> Option<Option<&str>> {
    match (&op.op, &op.outcome) {
        (Op::Get { .. }, Outcome::Value { value }) => Some(Some(value)),
        (Op::Get { .. }, Outcome::NotFound) => Some(None),
        _ => None,
    }
}

fn show(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "nothing".to_string(),
    }
}

/// Notes on the operations of a small violation, and one sentence for the whole.
///
/// The patterns recognised are the ones students meet: a stale read (a read that began after
/// a newer write had returned, yet saw an older value), a read from the future (it saw a value
/// whose write began only after the read returned), and a value nobody wrote. Anything else
/// gets the general statement.
fn describe(ops: &[Operation]) -> (Vec<Option<String>>, String) {
    let mut notes: Vec<Option<String>> = vec![None; ops.len()];
    let general = format!(
        "these {} operations cannot be put in any order that gives every one of them the result \
         its client saw while placing each between its invoke and its return",
        ops.len()
    );
    if ops.iter().any(|o| matches!(o.op, Op::Append { .. })) {
        if let Some(found) = describe_appends(ops, &mut notes) {
            return (notes, found);
        }
        return (notes, general);
    }
    for (ri, read) in ops.iter().enumerate() {
        let Some(seen) = observed(read) else { continue };
        let read_ret = read.return_ns.unwrap_or(Nanos::MAX);
        let writers: Vec<&Operation> = ops.iter().filter(|w| written(w) == Some(seen)).collect();
        if seen.is_some() && writers.is_empty() {
            notes[ri] = Some(format!("saw {}, which no operation wrote", show(seen)));
            return (
                notes,
                format!(
                    "`{}` returned {}, but no operation wrote that value",
                    read.op,
                    show(seen)
                ),
            );
        }
        if seen.is_some() && !writers.is_empty() && writers.iter().all(|w| w.call_ns > read_ret) {
            let w = writers[0];
            notes[ri] = Some(format!(
                "saw {} before any write of it had begun",
                show(seen)
            ));
            if let Some(wi) = ops.iter().position(|o| o.index == w.index) {
                notes[wi] = Some("began after the get had returned".to_string());
            }
            return (
                notes,
                format!(
                    "`{}` returned {}, a value that `{}` wrote only after the read had returned",
                    read.op,
                    show(seen),
                    w.op
                ),
            );
        }
        // A newer write that finished before the read began, after every write of what the read saw.
        let newer = ops.iter().find(|w| {
            written(w).is_some_and(|v| v != seen)
                && w.return_ns.is_some_and(|r| r < read.call_ns)
                && writers
                    .iter()
                    .all(|u| u.return_ns.is_some_and(|r| r < w.call_ns))
        });
        if let Some(w) = newer {
            notes[ri] = Some(format!(
                "began after `{}` had returned, yet saw {}",
                w.op,
                show(seen)
            ));
            if let Some(wi) = ops.iter().position(|o| o.index == w.index) {
                notes[wi] = Some("returned before the get began".to_string());
            }
            let old = if writers.is_empty() {
                "the key's initial state".to_string()
            } else {
                format!("the older value {}", show(seen))
            };
            return (
                notes,
                format!(
                    "stale read: `{}` began after `{}` had returned, but saw {old}",
                    read.op, w.op
                ),
            );
        }
    }
    // A value that came back: a read saw `a` after `b`'s write had finished (so `a` was written
    // later), then a later read saw `b` again.
    for (i, first) in ops.iter().enumerate() {
        let Some(a) = observed(first) else { continue };
        let Some(first_ret) = first.return_ns else {
            continue;
        };
        for (j, second) in ops.iter().enumerate() {
            let Some(b) = observed(second) else { continue };
            if b == a || second.call_ns <= first_ret {
                continue;
            }
            let old = ops
                .iter()
                .find(|w| written(w) == Some(b) && w.return_ns.is_some_and(|t| t < first.call_ns));
            if let Some(w) = old {
                notes[i] = Some(format!("saw {} after `{}` had returned", show(a), w.op));
                notes[j] = Some(format!("later, saw {} again", show(b)));
                return (
                    notes,
                    format!(
                        "a value came back: `{}` saw {} after `{}` had returned, so {} was \
                         written later; yet a later `{}` saw {} again",
                        first.op,
                        show(a),
                        w.op,
                        show(a),
                        second.op,
                        show(b)
                    ),
                );
            }
        }
    }
    (notes, general)
}

/// The shapes of append violations: a read missing an append that had finished before it began
/// (a lost or stale append), a read showing two appends in the opposite order to real time, and
/// a read showing an append that had not begun yet.
fn describe_appends(ops: &[Operation], notes: &mut [Option<String>]) -> Option<String> {
    fn appended(o: &Operation) -> Option<&str> {
        match (&o.op, &o.outcome) {
            (Op::Append { value, .. }, Outcome::Ok | Outcome::Unknown) if !value.is_empty() => {
                Some(value.as_str())
            }
            _ => None,
        }
    }
    let index_of = |o: &Operation| ops.iter().position(|x| x.index == o.index);
    for (ri, read) in ops.iter().enumerate() {
        let Some(seen) = observed(read) else { continue };
        let text = seen.unwrap_or("");
        let read_ret = read.return_ns.unwrap_or(Nanos::MAX);
        for a in ops.iter().filter(|a| a.outcome == Outcome::Ok) {
            let Some(piece) = appended(a) else { continue };
            if a.return_ns.is_some_and(|t| t < read.call_ns) && !text.contains(piece) {
                notes[ri] = Some(format!("began after `{}` had returned, yet lacks it", a.op));
                if let Some(ai) = index_of(a) {
                    notes[ai] = Some("returned before the get began".into());
                }
                return Some(format!(
                    "lost append: `{}` began after `{}` had returned, but its value does not contain it",
                    read.op, a.op
                ));
            }
        }
        for a in ops.iter() {
            let Some(piece) = appended(a) else { continue };
            if a.call_ns > read_ret && text.contains(piece) {
                notes[ri] = Some(format!("shows `{}` before it began", a.op));
                if let Some(ai) = index_of(a) {
                    notes[ai] = Some("began after the get had returned".into());
                }
                return Some(format!(
                    "`{}` returned a value containing what `{}` appended, which began only after the read had returned",
                    read.op, a.op
                ));
            }
        }
        for a in ops.iter().filter(|a| a.outcome == Outcome::Ok) {
            let (Some(first), Some(a_ret)) = (appended(a), a.return_ns) else {
                continue;
            };
            for b in ops.iter().filter(|b| b.call_ns > a_ret) {
                let Some(second) = appended(b) else { continue };
                if let (Some(i), Some(j)) = (text.find(first), text.find(second))
                    && j < i
                {
                    notes[ri] = Some(format!("shows `{}` before `{}`", b.op, a.op));
                    if let Some(ai) = index_of(a) {
                        notes[ai] = Some("returned before the other append began".into());
                    }
                    return Some(format!(
                        "appends out of order: `{}` shows `{}` before `{}`, yet the latter returned before the former began",
                        read.op, b.op, a.op
                    ));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::HistoryRecorder;

    /// `(client, op, call, return or None, outcome)` rows → a history.
    fn history(rows: &[(u64, &str, u64, Option<u64>, &str)]) -> History {
        let rec = HistoryRecorder::new();
        let mut pending = Vec::new();
        for &(client, op, call, ret, outcome) in rows {
            let words: Vec<&str> = op.split(' ').collect();
            let key = words[1].to_string();
            let op = match words[0] {
                "get" => Op::Get { key },
                "set" => Op::Set {
                    key,
                    value: words[2].into(),
                },
                "del" => Op::Del { key },
                "append" => Op::Append {
                    key,
                    value: words[2].into(),
                },
                "cas" => Op::Cas {
                    key,
                    expected: (words[2] != "-").then(|| words[2].to_string()),
                    value: words[3].into(),
                },
                other => panic!("unknown op {other}"),
            };
            let id = rec.invoke_at(call, client, op);
            if let Some(r) = ret {
                pending.push((r, id, outcome));
            }
        }
        for (r, id, outcome) in pending {
            let outcome = match outcome {
                "ok" => Outcome::Ok,
                "nf" => Outcome::NotFound,
                "mismatch" => Outcome::Mismatch,
                "fail" => Outcome::Fail,
                "unknown" => Outcome::Unknown,
                v => Outcome::Value { value: v.into() },
            };
            rec.complete_at(r, id, outcome);
        }
        rec.history().unwrap()
    }

    fn verdict(rows: &[(u64, &str, u64, Option<u64>, &str)]) -> Verdict {
        check(&history(rows), &Budget::unlimited_time())
    }

    #[test]
    fn small_histories_get_the_right_verdict() {
        type Row<'a> = (u64, &'a str, u64, Option<u64>, &'a str);
        let cases: &[(&str, &[Row], bool)] = &[
            ("empty", &[], true),
            (
                "read own write",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "get x", 2, Some(3), "1"),
                ],
                true,
            ),
            (
                "stale read after the write returned",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "get x", 2, Some(3), "nf"),
                ],
                false,
            ),
            (
                "read overlapping the write may see either",
                &[
                    (1, "set x 1", 0, Some(10), "ok"),
                    (2, "get x", 1, Some(2), "nf"),
                    (3, "get x", 3, Some(4), "1"),
                ],
                true,
            ),
            (
                "once a read saw the new value, a later read may not see the old",
                &[
                    (1, "set x 1", 0, Some(10), "ok"),
                    (2, "get x", 1, Some(2), "1"),
                    (3, "get x", 3, Some(4), "nf"),
                ],
                false,
            ),
            (
                "read from the future",
                &[
                    (2, "get x", 0, Some(1), "1"),
                    (1, "set x 1", 2, Some(3), "ok"),
                ],
                false,
            ),
            (
                "value nobody wrote",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "get x", 2, Some(3), "7"),
                ],
                false,
            ),
            (
                "delete then not found",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "del x", 2, Some(3), "ok"),
                    (2, "get x", 4, Some(5), "nf"),
                ],
                true,
            ),
            (
                "delete forgotten",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "del x", 2, Some(3), "ok"),
                    (2, "get x", 4, Some(5), "1"),
                ],
                false,
            ),
            (
                "unknown write that took effect",
                &[
                    (1, "set x 1", 0, None, "unknown"),
                    (2, "get x", 5, Some(6), "1"),
                ],
                true,
            ),
            (
                "unknown write that did not",
                &[
                    (1, "set x 1", 0, None, "unknown"),
                    (2, "get x", 5, Some(6), "nf"),
                ],
                true,
            ),
            (
                "unknown write takes effect once, not before its call",
                &[
                    (2, "get x", 0, Some(1), "1"),
                    (1, "set x 1", 2, None, "unknown"),
                ],
                false,
            ),
            (
                "failed write has no effect",
                &[
                    (1, "set x 1", 0, Some(1), "fail"),
                    (2, "get x", 2, Some(3), "1"),
                ],
                false,
            ),
            (
                "keys are independent",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "get y", 2, Some(3), "nf"),
                    (2, "get x", 4, Some(5), "1"),
                ],
                true,
            ),
            (
                "cas applied",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "cas x 1 2", 2, Some(3), "ok"),
                    (1, "get x", 4, Some(5), "2"),
                ],
                true,
            ),
            (
                "cas cannot apply on a value it did not see",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "cas x 3 2", 2, Some(3), "ok"),
                ],
                false,
            ),
            (
                "refused cas proves a different value",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "cas x 1 2", 2, Some(3), "mismatch"),
                ],
                false,
            ),
            (
                "cas on an absent key",
                &[
                    (2, "cas x - 2", 0, Some(1), "ok"),
                    (1, "get x", 2, Some(3), "2"),
                ],
                true,
            ),
            (
                "appends in order",
                &[
                    (1, "append x a", 0, Some(1), "ok"),
                    (2, "append x b", 2, Some(3), "ok"),
                    (1, "get x", 4, Some(5), "ab"),
                ],
                true,
            ),
            (
                "appends reordered",
                &[
                    (1, "append x a", 0, Some(1), "ok"),
                    (2, "append x b", 2, Some(3), "ok"),
                    (1, "get x", 4, Some(5), "ba"),
                ],
                false,
            ),
            (
                "concurrent appends either way",
                &[
                    (1, "append x a", 0, Some(5), "ok"),
                    (2, "append x b", 1, Some(4), "ok"),
                    (3, "get x", 6, Some(7), "ba"),
                ],
                true,
            ),
        ];
        for (name, rows, linearizable) in cases {
            let v = verdict(rows);
            assert_eq!(
                matches!(v, Verdict::Consistent),
                *linearizable,
                "{name}: {v:?}"
            );
        }
    }

    #[test]
    fn a_stale_read_is_shrunk_and_explained() {
        let mut rows = vec![(1, "set x 1", 0, Some(10), "ok")];
        // Noise: other keys and other clients, all fine.
        for i in 0..20u64 {
            rows.push((10 + i, "set y 5", 20 + 3 * i, Some(21 + 3 * i), "ok"));
        }
        rows.push((2, "get x", 100, Some(110), "nf"));
        rows.push((3, "get x", 120, Some(130), "1"));
        let Verdict::Violation(v) = verdict(&rows) else {
            panic!("expected a violation")
        };
        assert_eq!(v.key.as_deref(), Some("x"));
        assert!(v.minimal);
        let shown: Vec<String> = v.ops.iter().map(|o| o.op.to_string()).collect();
        assert_eq!(shown, ["set x 1", "get x"]);
        assert!(v.reason.starts_with("stale read"), "{}", v.reason);
        assert!(
            v.notes[1]
                .as_deref()
                .unwrap()
                .contains("began after `set x 1`")
        );
    }

    #[test]
    fn a_budget_turns_a_hopeless_search_into_unknown() {
        // Twenty concurrent appends, then a read that no order of them can produce: the search
        // must try every order (each leaves a different string) before it can say no.
        let letters: Vec<String> = (0..20)
            .map(|i| format!("append x {}", (b'a' + i) as char))
            .collect();
        let mut rows: Vec<(u64, &str, u64, Option<u64>, &str)> = letters
            .iter()
            .enumerate()
            .map(|(i, op)| (i as u64, op.as_str(), i as u64, Some(1000 + i as u64), "ok"))
            .collect();
        rows.push((99, "get x", 2000, Some(2001), "zz"));
        let h = history(&rows);
        let cases = [
            (
                Budget {
                    time_limit: None,
                    memory_limit_bytes: 1 << 20,
                    ..Budget::default()
                },
                "memory limit",
            ),
            (
                Budget {
                    time_limit: Some(std::time::Duration::from_millis(50)),
                    memory_limit_bytes: usize::MAX,
                    ..Budget::default()
                },
                "time limit",
            ),
        ];
        for (budget, expected) in cases {
            match check(&h, &budget) {
                Verdict::Unknown { reason } => assert!(reason.contains(expected), "{reason}"),
                other => panic!("expected unknown ({expected}), got {other:?}"),
            }
        }
    }
}
