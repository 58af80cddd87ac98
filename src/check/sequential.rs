//! Sequential consistency: is there one order of all operations that keeps each client's own
//! order and gives every read the value it saw?
//!
//! Lamport ("How to Make a Multiprocessor Computer That Correctly Executes Multiprocess
//! Programs", 1979) defined it: *the result of any execution is the same as if the operations of
//! all the processors were executed in some sequential order, and the operations of each
//! individual processor appear in this sequence in the order specified by its program.* Here a
//! processor is a client, its program order is the order in which it invoked its operations, and
//! "the result" is what every operation returned, judged by the register model in
//! [`super::model`].
//!
//! ## How it differs from linearizability
//! Linearizability ([`super::linearizable`]) asks for the same single order *and* that it
//! respect real time: an operation that returned before another was invoked comes first.
//! Sequential consistency drops real time between clients. So this history, on one key, is
//! sequentially consistent but not linearizable:
//!
//! ```text
//! client 1:  set x 1 ── OK
//! client 2:                  get x ── NOT_FOUND     (began after the set had returned)
//! ```
//!
//! The read may be placed before the write: nothing ties client 2's operation to client 1's
//! clock. (A replicated store that serves reads from a lagging follower but sends each client to
//! one replica can behave like this.)
//!
//! The second difference matters more for a checker. Linearizability is *local*: a history of
//! many keys is linearizable exactly when each key's history is, so a checker may search one
//! key at a time. Sequential consistency is not (Herlihy and Wing 1990 give the counterexample
//! for queues; here it is for registers):
//!
//! ```text
//! client A:  set x 1    then  get y → NOT_FOUND
//! client B:  set y 1    then  get x → NOT_FOUND
//! ```
//!
//! Key x alone is fine (B's read before A's write), and so is key y (A's read before B's
//! write). Together they are not: A's read of y must come before B's `set y 1`, which comes
//! before B's read of x, which must come before A's `set x 1` — which comes before A's read of
//! y. A cycle, so no single order exists. The whole history must therefore be searched at once;
//! searching each key alone is still useful as a quick first test, because a key that is
//! inconsistent on its own makes the whole history inconsistent (the search does that first).
//!
//! ## The search
//! A *configuration* is how far each client has got in its own sequence, plus the state of
//! every key. From a configuration, the next operation in the order is the next operation of
//! some client; it is legal if the model accepts it in the current state. Depth-first search
//! over configurations finds an order or proves there is none, and a memo of the configurations
//! proved dead means none is explored twice (the idea of Lowe's linearizability memo, applied to
//! this search space). Operations that failed, and reads nobody heard back from, constrain
//! nothing and are left out; a write nobody heard back from may have taken effect or not, so the
//! search tries both, at its place in the client's order.
//!
//! Pruning, each rule sound (it never discards the only way to succeed):
//!
//! * **Legal reads go first, without branching.** A read (or a refused compare-and-set, which
//!   changes nothing either) that is legal in the current state is taken at once. Moving an
//!   operation that leaves the state unchanged earlier in an order keeps every other operation
//!   legal, so if any order works, one that takes it now works too. The only real choices are
//!   which write goes next.
//! * **A read that can no longer be satisfied kills the branch.** If some pending read needs
//!   key x to hold v, x does not hold v, and no operation still to come can write v to x, the
//!   configuration is dead however the rest is ordered. Counts of pending readers and writers
//!   per (key, value) make this a constant-time test each time a write passes.
//! * **Values nobody will look at are all the same value.** When no pending operation reads a
//!   key's current value (and the key has no appends), that value can only be overwritten, so
//!   the memo records it as "some unwatched value"; configurations that differ only there are
//!   one configuration.
//! * **Forced orders, and cycles among them.** Some "must come before" facts hold in every
//!   order that could still work: a client's own order; a read after the only pending write of
//!   its value; the readers of a key's current value before anything that replaces it, when
//!   the value cannot be written again. With distinct values there are many more, because a
//!   value written once occupies one *interval* of any valid order and intervals on a key cannot
//!   overlap — the coherence reasoning of Elle (Kingsbury and Alvaro 2020) and Cobra (Tan et al.
//!   2020). These are found once per search, closed under known paths, and used twice: a write
//!   whose forced predecessors have not run is not tried, and a cycle among the facts proves a
//!   configuration dead (at the root, and wherever a choice has failed below; the cost of the
//!   test is linear in the history).
//! * **A guess, not a rule, and second guesses.** Among the writes that could go next, the one
//!   that came first in time is tried first: systems under test usually order operations
//!   roughly as they arrived, so on a consistent history the first path is usually the answer.
//!   When it is not, one early wrong guess can hide the answer under a huge dead subtree; so the
//!   search runs in attempts with doubling step allowances, each ordering "first in time" by a
//!   different clock (invoke, middle of the window, return), and each keeping what the earlier
//!   ones proved dead (restarts, as in SAT solvers).
//!
//! ## Cost
//! Deciding sequential consistency is NP-complete (Gibbons and Korach, "Testing Shared
//! Memories", 1997; Taylor had shown related questions about the orders of concurrent programs
//! NP-complete in 1983), so no checker is fast on every history. This one is bounded by the number of configurations:
//! at most the product over clients of (operations + 1), times the states — polynomial in the
//! length of the history for a fixed number of clients, exponential in the number of clients.
//! The [`Budget`] bounds time and memo bytes; when either runs out the answer is
//! [`Verdict::Unknown`] with the reason, not a hang.
//!
//! Measured on a release build on a 2-core machine, with the default budget (60 s, 1 GiB),
//! three seeds each, on histories of a simulated store with half reads on 5 keys. "SC store":
//! writes are ordered by a primary, each client reads a lagging but monotonic prefix that
//! includes its own writes — sequentially consistent, not linearizable.
//!
//! | history | verdict | time |
//! |---|---|---|
//! | linearizable store, 8 clients × 250 ops, distinct values | consistent | 9–15 ms |
//! | the same, 32 × 250 | consistent | 0.12–0.20 s |
//! | SC store, 8 × 250, distinct values | consistent | 10–20 ms |
//! | SC store, 32 × 250, distinct values | consistent | 0.45–10 s |
//! | either 8 × 250, plus a store-buffering pair | violation, shrunk to 4 ops | 43–118 ms |
//! | SC store 8 × 250, one late read made stale | violation, shrunk to 4–6 ops | 2–12 ms |
//! | SC store 32 × 250, one late read made stale | violation, shrunk to 3–13 ops | 0.11–0.43 s |
//! | SC store, 3 values per key, 8 × 50 | consistent | 1–18 ms |
//! | the same, 4 × 250 | consistent | 2.4–20 s |
//! | the same, 8 × 100 | unknown: memory limit, 8.4 M configurations | 30–57 s |
//!
//! Times include shrinking. Distinct values are what make histories tractable: with only a
//! few values per key, a read no longer tells which write it saw, and few orders are forced.
//!
//! ## Explaining a violation
//! A violation is shrunk ([`super::shrink`]) to a set of operations that still cannot be
//! ordered and from which no operation can be removed without the violation disappearing — or
//! without removing a write that a remaining operation observed: dropping the write that a read
//! saw would turn a real violation into a made-up one ("a value nobody wrote"), so such a
//! removal is never tried. The small set is then described in one sentence, client by client.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::history::{ClientId, History, Op, Operation, Outcome};
use super::model::{ABSENT, CasOutcome, Expect, StateId, Step, Values};
use super::shrink::{self, Probe};
use super::{Budget, Exhausted, Verdict, Violation};

/// Checks whether `history` is sequentially consistent.
///
/// Each key is first searched alone for a few steps (a quick way to find a violation confined
/// to one key); then the whole history. A violation is shrunk, within
/// [`Budget::shrink_steps`], and explained; a search that runs out of `budget` answers
/// [`Verdict::Unknown`].
pub fn check(history: &History, budget: &Budget) -> Verdict {
    let start = Instant::now();
    let limits = Limits {
        deadline: budget.deadline(start),
        memory_limit_bytes: budget.memory_limit_bytes,
    };
    let mut scratch = Values::new();
    // Only operations that constrain or change something take part (see `model`).
    let relevant: Vec<usize> = (0..history.ops.len())
        .filter(|&i| Step::compile(&history.ops[i], &mut scratch).is_some())
        .collect();
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in &relevant {
        by_key.entry(history.ops[i].op.key()).or_default().push(i);
    }
    let mut configs: u64 = 0;
    if by_key.len() > 1 {
        // A quick look at each key alone, for violations confined to one key. It is only a
        // shortcut, so a key that is not decided in a few steps is left to the full search.
        for scope in by_key.values() {
            let run = search_subset(history, scope, &limits, KEY_ALONE_STEPS);
            configs += run.configs;
            match run.end {
                End::Dead => {
                    return Verdict::Violation(explain(
                        history,
                        scope,
                        &limits,
                        budget.shrink_steps,
                    ));
                }
                End::Exhausted(Exhausted::Time) => {
                    return unknown(Exhausted::Time, configs, history);
                }
                End::Found | End::Exhausted(Exhausted::Memory) | End::OutOfSteps => {}
            }
        }
    }
    let run = search_subset(history, &relevant, &limits, u64::MAX);
    configs += run.configs;
    match run.end {
        End::Found => Verdict::Consistent,
        End::Dead => Verdict::Violation(explain(history, &relevant, &limits, budget.shrink_steps)),
        End::Exhausted(why) => unknown(why, configs, history),
        // Not reachable with an unlimited step count; answered like a full memo.
        End::OutOfSteps => unknown(Exhausted::Memory, configs, history),
    }
}

/// Search steps each key gets alone before the whole history is searched.
const KEY_ALONE_STEPS: u64 = 100_000;

fn unknown(why: Exhausted, configs: u64, history: &History) -> Verdict {
    Verdict::Unknown {
        reason: format!(
            "{why} after exploring {configs} configurations \
             ({} operations, {} clients, {} keys); a larger budget may decide it",
            history.ops.len(),
            history.client_count(),
            history.key_count(),
        ),
    }
}

/// Where every search of one check must stop.
#[derive(Clone, Copy, Debug)]
struct Limits {
    deadline: Option<Instant>,
    memory_limit_bytes: usize,
}

/// How one search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// An order exists.
    Found,
    /// No order exists.
    Dead,
    Exhausted(Exhausted),
    /// The caller's step allowance ran out first.
    OutOfSteps,
}

/// A search's result and its size.
#[derive(Clone, Copy, Debug)]
struct Run {
    end: End,
    /// Configurations entered in the memo.
    configs: u64,
    /// Search steps taken (loop iterations).
    steps: u64,
}

/// Searches the operations at `positions` (indices into `history.ops`, in history order), for
/// at most `max_steps` steps.
fn search_subset(history: &History, positions: &[usize], limits: &Limits, max_steps: u64) -> Run {
    let ops: Vec<&Operation> = positions.iter().map(|&i| &history.ops[i]).collect();
    match Problem::build(&ops, limits) {
        Some((problem, mut values)) => search(&problem, &mut values, limits, max_steps),
        // More than 2^32 operations: the positions do not fit the memo's words.
        None => Run {
            end: End::Exhausted(Exhausted::Memory),
            configs: 0,
            steps: 0,
        },
    }
}

/// No id: the operation reads, writes or watches nothing of this kind.
const NONE: u32 = u32::MAX;

/// The memo's name for "some value no pending operation will look at" (see `Search::row`).
const UNWATCHED: StateId = StateId::MAX;

/// One operation, compiled for the search.
#[derive(Clone, Copy, Debug)]
struct Item {
    step: Step,
    key: u32,
    /// Place in each of the choice heuristic's orders (see [`ORDERS`]).
    ranks: [u32; ORDERS],
    /// No reply: the operation may be skipped, as if it never took effect.
    optional: bool,
    /// Never changes the state where it is legal: a read, a refused compare-and-set, or one
    /// that would write back what it expects. Taken greedily (see the module docs).
    observer: bool,
    /// The watched (key, value) pair this operation requires: reads and applied
    /// compare-and-sets. `NONE` otherwise.
    needs: u32,
    /// The watched pair whose value decides what this operation does (`needs`, plus the
    /// expected value of a refused or unanswered compare-and-set).
    watches: u32,
    /// The watched pair this operation can create from another state: a write of that value,
    /// or a compare-and-set to it.
    makes: u32,
    append: bool,
}

/// A history compiled for the search: each client's operations in program order.
struct Problem {
    clients: Vec<Vec<Item>>,
    key_count: usize,
    /// The (key, state) pairs some operation needs or watches, by id.
    watched: Vec<(u32, StateId)>,
    watch_ids: HashMap<(u32, StateId), u32>,
    watched_by_key: Vec<Vec<u32>>,
    /// Appends per key (a key with appends gives every value meaning; see `Search::row`).
    appends: Vec<u32>,
    total: usize,
    /// Per watched pair: the operations, as (client, position), that need it.
    needers: Vec<Vec<(u32, u32)>>,
    /// Per key: every operation on it.
    on_key: Vec<Vec<(u32, u32)>>,
    /// Where each client's operations start in one flat numbering of all operations.
    offsets: Vec<u32>,
    /// The flat numbering's inverse: (client, position).
    flat: Vec<(u32, u32)>,
    /// Per watched pair: whether it is an *interval* value — written by exactly one operation
    /// that certainly took effect (or, for "absent", only there at the start), on a key without
    /// appends. See `intervals`.
    interval: Vec<bool>,
    /// Per interval value: operations that must come after every operation of its interval.
    after: Vec<Vec<(u32, u32)>>,
    /// Per operation (flat numbering): interval values that must be over before it runs.
    before: Vec<Vec<u32>>,
    /// Per operation (flat numbering): operations that must come after it.
    extra: Vec<Vec<(u32, u32)>>,
    /// Per operation (flat numbering): operations that must come before it.
    preds: Vec<Vec<(u32, u32)>>,
}

impl Problem {
    /// Compiles `ops` (in history order). `None` only if there are 2^32 or more of them.
    fn build(ops: &[&Operation], limits: &Limits) -> Option<(Problem, Values)> {
        u32::try_from(ops.len()).ok()?;
        let mut values = Values::new();
        let mut client_ids: BTreeMap<ClientId, usize> = BTreeMap::new();
        let mut key_ids: BTreeMap<&str, u32> = BTreeMap::new();
        for op in ops {
            let next = client_ids.len();
            client_ids.entry(op.client).or_insert(next);
            let next = key_ids.len() as u32;
            key_ids.entry(op.op.key()).or_insert(next);
        }
        // The heuristic's orders: by invoke, by the middle of the window, by return. (An
        // operation nobody heard back from counts as instant at its invoke.)
        let mut ranks = vec![[0u32; ORDERS]; ops.len()];
        for (order, ranked) in ranks_by_time(ops).into_iter().enumerate() {
            for (rank, i) in ranked.into_iter().enumerate() {
                ranks[i][order] = rank as u32;
            }
        }
        // First pass: compile, and collect the (key, value) pairs that someone watches.
        let mut compiled: Vec<(usize, Item, Option<StateId>, Option<StateId>)> = Vec::new();
        let mut watched: Vec<(u32, StateId)> = Vec::new();
        let mut watch_ids: HashMap<(u32, StateId), u32> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let Some(step) = Step::compile(op, &mut values) else {
                continue;
            };
            let key = key_ids[op.op.key()];
            let client = client_ids[&op.client];
            let (watch, need, make) = match step {
                Step::Read(Expect::Absent) => (Some(ABSENT), true, None),
                Step::Read(Expect::Value(v)) => (Some(v), true, None),
                Step::Write(v) => (None, false, Some(v)),
                Step::Append(_) => (None, false, None),
                Step::Cas {
                    expected,
                    value,
                    outcome,
                } => {
                    let writes = outcome != CasOutcome::Refused && expected != value;
                    (
                        Some(expected),
                        outcome == CasOutcome::Applied,
                        writes.then_some(value),
                    )
                }
            };
            if let Some(w) = watch
                && !watch_ids.contains_key(&(key, w))
            {
                watch_ids.insert((key, w), watched.len() as u32);
                watched.push((key, w));
            }
            let observer = match step {
                Step::Read(_) => true,
                Step::Cas {
                    expected,
                    value,
                    outcome,
                } => outcome == CasOutcome::Refused || expected == value,
                _ => false,
            };
            let item = Item {
                step,
                key,
                ranks: ranks[i],
                optional: op.outcome == Outcome::Unknown && !observer,
                observer,
                needs: NONE,
                watches: NONE,
                makes: NONE,
                append: matches!(step, Step::Append(_)),
            };
            compiled.push((client, item, watch.filter(|_| need), make));
        }
        // Second pass: link each operation to the watched pairs it needs, watches and makes.
        let mut clients: Vec<Vec<Item>> = vec![Vec::new(); client_ids.len()];
        let mut watched_by_key: Vec<Vec<u32>> = vec![Vec::new(); key_ids.len()];
        for (id, &(key, _)) in watched.iter().enumerate() {
            watched_by_key[key as usize].push(id as u32);
        }
        let mut appends = vec![0u32; key_ids.len()];
        let total = compiled.len();
        for (client, mut item, need, make) in compiled {
            let id = |s: StateId| watch_ids.get(&(item.key, s)).copied().unwrap_or(NONE);
            item.needs = need.map_or(NONE, id);
            item.watches = match item.step {
                Step::Read(Expect::Absent) => id(ABSENT),
                Step::Read(Expect::Value(v)) => id(v),
                Step::Cas { expected, .. } => id(expected),
                _ => NONE,
            };
            item.makes = make.map_or(NONE, id);
            if item.append {
                appends[item.key as usize] += 1;
            }
            clients[client].push(item);
        }
        clients.retain(|c| !c.is_empty());
        let mut needers: Vec<Vec<(u32, u32)>> = vec![Vec::new(); watched.len()];
        let mut on_key: Vec<Vec<(u32, u32)>> = vec![Vec::new(); key_ids.len()];
        let mut offsets = Vec::with_capacity(clients.len());
        let mut flat = Vec::with_capacity(total);
        for (c, items) in clients.iter().enumerate() {
            offsets.push(flat.len() as u32);
            for (i, item) in items.iter().enumerate() {
                let at = (c as u32, i as u32);
                flat.push(at);
                on_key[item.key as usize].push(at);
                if item.needs != NONE {
                    needers[item.needs as usize].push(at);
                }
            }
        }
        let mut problem = Problem {
            clients,
            key_count: key_ids.len(),
            watched,
            watch_ids,
            watched_by_key,
            appends,
            total,
            needers,
            on_key,
            offsets,
            flat,
            interval: Vec::new(),
            after: Vec::new(),
            before: Vec::new(),
            extra: Vec::new(),
            preds: Vec::new(),
        };
        let max_bytes = SATURATION_MAX_BYTES.min(limits.memory_limit_bytes / 2);
        let found = intervals(&problem, limits.deadline, max_bytes);
        problem.interval = found.interval;
        problem.after = found.after;
        problem.before = found.before;
        problem.extra = found.extra;
        problem.preds = found.preds;
        Some((problem, values))
    }
}

/// What the interval analysis found (see `intervals`).
struct Intervals {
    /// Per watched pair: whether it is an interval value.
    interval: Vec<bool>,
    /// Per interval value: operations that must come after every operation of its interval.
    after: Vec<Vec<(u32, u32)>>,
    /// The same edges seen from the other end: per operation (flat numbering), the interval
    /// values that must be over before it runs.
    before: Vec<Vec<u32>>,
    /// Per operation (flat numbering): operations that must come after it.
    extra: Vec<Vec<(u32, u32)>>,
    /// The same edges seen from the other end.
    preds: Vec<Vec<(u32, u32)>>,
}

/// The largest reachability table the saturation may build for one key, in bytes (or half the
/// memory budget, if that is less).
const SATURATION_MAX_BYTES: usize = 64 << 20;

/// How many times the saturation may go round before it settles for what it has.
const SATURATION_MAX_ROUNDS: usize = 8;

/// Finds the interval values of a problem and the order their intervals must come in.
///
/// An interval value `v` is written once, by an operation that certainly took effect (or, for
/// "absent", is there only at the start), on a key without appends. The operations that write
/// or need it form an *interval* of any valid order: from its write to its last reader the key
/// holds `v`, and once the key holds anything else `v` never comes back. Two intervals on one key
/// cannot overlap, so as soon as anything forces some operation of `v`'s interval before some
/// operation of `u`'s, *all* of `v`'s interval comes before `u`'s write — and before every
/// operation that needs the key not to hold `v`. This is the coherence reasoning that Elle and
/// Cobra use to infer write orders from reads.
///
/// The mirror image holds too: an operation that excludes `v` and comes before some operation
/// of `v`'s interval cannot be inside the interval, so it comes before `v`'s write.
///
/// Two sources of such facts are used. A client's own order: if it touches `v` and later, on
/// the same key, does something that excludes `v` (or the other way round). And, to a fixed
/// point, any path of certain "before" edges (program order, a read after the only write of its
/// value, the facts found so far) from an operation of `v`'s interval to one of `u`'s, or from
/// an operation that excludes `v` to one of `v`'s. The second needs a reachability table per
/// key; it is skipped for a key whose table would be too large, which only weakens the
/// pruning.
fn intervals(p: &Problem, deadline: Option<Instant>, max_bytes: usize) -> Intervals {
    let Problem {
        clients,
        watched,
        appends,
        needers,
        on_key,
        offsets,
        total,
        ..
    } = p;
    let total = *total;
    let item = |(c, i): (u32, u32)| &clients[c as usize][i as usize];
    let flat = |(c, i): (u32, u32)| (offsets[c as usize] + i) as usize;
    let mut makers: Vec<Vec<(u32, u32)>> = vec![Vec::new(); watched.len()];
    for (c, items) in clients.iter().enumerate() {
        for (i, it) in items.iter().enumerate() {
            if it.makes != NONE {
                makers[it.makes as usize].push((c as u32, i as u32));
            }
        }
    }
    // The one operation that writes each value, if there is exactly one and it certainly took
    // effect. Never for "absent": every key also starts that way.
    let sole: Vec<Option<(u32, u32)>> = (0..watched.len())
        .map(|w| match makers[w][..] {
            [at] if !item(at).optional && watched[w].1 != ABSENT => Some(at),
            _ => None,
        })
        .collect();
    let interval: Vec<bool> = (0..watched.len())
        .map(|w| {
            let (key, value) = watched[w];
            appends[key as usize] == 0
                && if value == ABSENT {
                    // Every key starts absent, so "absent" is written once only if nothing
                    // deletes it.
                    makers[w].is_empty()
                } else {
                    sole[w].is_some()
                }
        })
        .collect();
    let member = |it: &Item, w: u32| it.needs == w || it.makes == w;
    let mut after: Vec<Vec<(u32, u32)>> = vec![Vec::new(); watched.len()];
    let mut added: HashSet<(u32, (u32, u32))> = HashSet::new();
    let mut push = |after: &mut Vec<Vec<(u32, u32)>>, v: u32, at: (u32, u32)| {
        let fresh = !member(item(at), v) && added.insert((v, at));
        if fresh {
            after[v as usize].push(at);
        }
        fresh
    };
    for (w, &(key, value)) in watched.iter().enumerate() {
        // "Absent" with no deletes is the first interval of its key: everything that needs
        // the key to hold a value comes after all of it.
        if interval[w] && sole[w].is_none() {
            for &at in &on_key[key as usize] {
                if excludes(item(at), value) {
                    push(&mut after, w as u32, at);
                }
            }
        }
    }
    let mut extra: Vec<Vec<(u32, u32)>> = vec![Vec::new(); total];
    let mut extra_added: HashSet<((u32, u32), (u32, u32))> = HashSet::new();
    let mut push_extra = |extra: &mut Vec<Vec<(u32, u32)>>, from: (u32, u32), to: (u32, u32)| {
        let fresh = from != to && extra_added.insert((from, to));
        if fresh {
            extra[flat(from)].push(to);
        }
        fresh
    };
    // Each client's own order.
    let mut last: Vec<u32> = vec![NONE; appends.len()];
    let mut last_op: Vec<Option<(u32, u32)>> = vec![None; appends.len()];
    for (c, items) in clients.iter().enumerate() {
        last.fill(NONE);
        last_op.fill(None);
        for (i, it) in items.iter().enumerate() {
            let at = (c as u32, i as u32);
            let key = it.key as usize;
            // Before a reader of `v`, the client's previous operation on the key, if it
            // excludes `v`, comes before `v`'s write. (If the previous one is itself in the
            // interval, the one before it was handled then.)
            if it.needs != NONE
                && interval[it.needs as usize]
                && let Some(write) = sole[it.needs as usize]
                && let Some(o) = last_op[key]
                && !member(item(o), it.needs)
                && excludes(item(o), watched[it.needs as usize].1)
            {
                push_extra(&mut extra, o, write);
            }
            last_op[key] = Some(at);
            let v = last[key];
            if v != NONE && !member(it, v) {
                if excludes(it, watched[v as usize].1) {
                    push(&mut after, v, at);
                }
                for u in [it.needs, it.makes] {
                    if u != NONE
                        && u != v
                        && interval[u as usize]
                        && let Some(start) = sole[u as usize]
                    {
                        push(&mut after, v, start);
                    }
                }
            }
            for u in [it.needs, it.makes] {
                if u != NONE && interval[u as usize] {
                    last[key] = u;
                }
            }
        }
    }
    // Paths, to a fixed point. Nodes: operations in the flat numbering, then one "end of
    // interval" node per watched pair.
    let nodes = total + watched.len();
    let successors =
        |n: usize, after: &[Vec<(u32, u32)>], extra: &[Vec<(u32, u32)>], out: &mut Vec<usize>| {
            out.clear();
            if n >= total {
                out.extend(after[n - total].iter().map(|&at| flat(at)));
                return;
            }
            out.extend(extra[n].iter().map(|&at| flat(at)));
            // Find the operation: offsets are ascending.
            let c = offsets.partition_point(|&o| o as usize <= n) - 1;
            let i = n - offsets[c] as usize;
            let items = &clients[c];
            if i + 1 < items.len() {
                out.push(n + 1);
            }
            let it = &items[i];
            for w in [it.needs, it.makes] {
                if w != NONE && interval[w as usize] {
                    out.push(total + w as usize);
                }
            }
            if it.makes != NONE && sole[it.makes as usize].is_some() {
                out.extend(needers[it.makes as usize].iter().map(|&at| flat(at)));
            }
        };
    let mut keys: Vec<Vec<u32>> = vec![Vec::new(); appends.len()];
    for (w, &(key, _)) in watched.iter().enumerate() {
        if interval[w] {
            keys[key as usize].push(w as u32);
        }
    }
    let mut succ = Vec::new();
    for _ in 0..SATURATION_MAX_ROUNDS {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // A topological order (Kahn). A cycle means the history is inconsistent; the search
        // finds that at its root, so there is nothing more to learn here.
        let mut indegree = vec![0u32; nodes];
        for n in 0..nodes {
            successors(n, &after, &extra, &mut succ);
            for &m in &succ {
                indegree[m] += 1;
            }
        }
        let mut order: Vec<usize> = (0..nodes).filter(|&n| indegree[n] == 0).collect();
        let mut at = 0;
        while at < order.len() {
            successors(order[at], &after, &extra, &mut succ);
            for &m in &succ {
                indegree[m] -= 1;
                if indegree[m] == 0 {
                    order.push(m);
                }
            }
            at += 1;
        }
        if order.len() < nodes {
            break;
        }
        let mut changed = false;
        for ids in &keys {
            let words = ids.len().div_ceil(64);
            if ids.len() < 2 || nodes.saturating_mul(words).saturating_mul(16) > max_bytes {
                continue;
            }
            let mut bit: HashMap<u32, usize> = HashMap::with_capacity(ids.len());
            for (b, &w) in ids.iter().enumerate() {
                bit.insert(w, b);
            }
            // any[n]: the intervals of this key with an operation reachable from n, n included;
            // start[n]: those whose write is reachable from n.
            let mut any = vec![0u64; nodes * words];
            let mut start = vec![0u64; nodes * words];
            let own = |n: usize, start_only: bool, row: &mut [u64]| {
                if n >= total {
                    return;
                }
                let c = offsets.partition_point(|&o| o as usize <= n) - 1;
                let it = &clients[c][n - offsets[c] as usize];
                let ws = if start_only {
                    [it.makes, NONE]
                } else {
                    [it.needs, it.makes]
                };
                for w in ws {
                    if let Some(&b) = bit.get(&w) {
                        row[b / 64] |= 1 << (b % 64);
                    }
                }
            };
            for &n in order.iter().rev() {
                successors(n, &after, &extra, &mut succ);
                for &m in &succ {
                    for k in 0..words {
                        any[n * words + k] |= any[m * words + k];
                        start[n * words + k] |= start[m * words + k];
                    }
                }
                own(n, false, &mut any[n * words..(n + 1) * words]);
                own(n, true, &mut start[n * words..(n + 1) * words]);
            }
            for &v in ids {
                // What some operation of v's interval reaches by at least one edge. (An
                // operation in two intervals — a compare-and-set that needs one value and
                // writes another — says nothing by being there.)
                let mut from: Vec<u64> = vec![0; words];
                let members = sole[v as usize]
                    .into_iter()
                    .chain(needers[v as usize].iter().copied());
                for m in members {
                    successors(flat(m), &after, &extra, &mut succ);
                    for &x in &succ {
                        for k in 0..words {
                            from[k] |= any[x * words + k];
                        }
                    }
                }
                let end = (total + v as usize) * words;
                for (b, &u) in ids.iter().enumerate() {
                    let mask = 1 << (b % 64);
                    if u == v || from[b / 64] & mask == 0 || start[end + b / 64] & mask != 0 {
                        continue;
                    }
                    // Some operation of v's interval comes before one of u's, and the end of
                    // v's interval is not yet known to come before u's write: now it is. (If u
                    // has no write, it is "absent" at the start, and the search's root check
                    // will find the contradiction.)
                    if let Some(write) = sole[u as usize] {
                        changed |= push(&mut after, v, write);
                    }
                }
            }
            // An operation that excludes v and reaches an operation of v's interval comes
            // before v's write.
            let key = watched[ids[0] as usize].0 as usize;
            let mut found: Vec<((u32, u32), (u32, u32))> = Vec::new();
            let mut plus: Vec<u64> = vec![0; words];
            for &o in &on_key[key] {
                let n = flat(o);
                plus.fill(0);
                successors(n, &after, &extra, &mut succ);
                for &x in &succ {
                    for k in 0..words {
                        plus[k] |= any[x * words + k];
                    }
                }
                for (b, &v) in ids.iter().enumerate() {
                    let mask = 1 << (b % 64);
                    if plus[b / 64] & mask == 0 || start[n * words + b / 64] & mask != 0 {
                        continue;
                    }
                    let it = item(o);
                    if member(it, v) || !excludes(it, watched[v as usize].1) {
                        continue;
                    }
                    if let Some(write) = sole[v as usize] {
                        found.push((o, write));
                    }
                }
            }
            for (from, to) in found {
                changed |= push_extra(&mut extra, from, to);
            }
        }
        if !changed {
            break;
        }
    }
    let mut before: Vec<Vec<u32>> = vec![Vec::new(); total];
    for (v, ops) in after.iter().enumerate() {
        for &at in ops {
            before[flat(at)].push(v as u32);
        }
    }
    let mut preds: Vec<Vec<(u32, u32)>> = vec![Vec::new(); total];
    for (n, targets) in extra.iter().enumerate() {
        let c = offsets.partition_point(|&o| o as usize <= n) - 1;
        let from = (c as u32, (n - offsets[c] as usize) as u32);
        for &to in targets {
            preds[flat(to)].push(from);
        }
    }
    Intervals {
        interval,
        after,
        before,
        extra,
        preds,
    }
}

/// Whether `item`, wherever it runs, runs when its key does not hold `value` or leaves it not
/// holding it (for keys without appends, where states are plain interned values).
fn excludes(item: &Item, value: StateId) -> bool {
    match item.step {
        Step::Read(Expect::Absent) => value != ABSENT,
        Step::Read(Expect::Value(v)) => v != value,
        Step::Write(v) => !item.optional && v != value,
        Step::Append(_) => !item.optional,
        Step::Cas {
            expected, outcome, ..
        } => match outcome {
            CasOutcome::Applied => expected != value,
            CasOutcome::Refused => expected == value,
            CasOutcome::Unknown => false,
        },
    }
}

/// The search's position: the configuration, the counters the pruning rules read, and a trail
/// of moves to undo on backtracking.
struct State {
    pos: Vec<u32>,
    state: Vec<StateId>,
    /// Per watched pair: pending operations that require it.
    needs_left: Vec<u32>,
    /// Per watched pair: pending operations whose behaviour depends on it.
    watches_left: Vec<u32>,
    /// Per watched pair: pending operations that can create it.
    makes_left: Vec<u32>,
    appends_left: Vec<u32>,
    remaining: usize,
    /// (client, the key's state before the move) for every move on the current path.
    trail: Vec<(u32, StateId)>,
}

impl State {
    fn new(p: &Problem) -> State {
        let n = p.watched.len();
        let mut s = State {
            pos: vec![0; p.clients.len()],
            state: vec![ABSENT; p.key_count],
            needs_left: vec![0; n],
            watches_left: vec![0; n],
            makes_left: vec![0; n],
            appends_left: p.appends.clone(),
            remaining: p.total,
            trail: Vec::with_capacity(p.total),
        };
        for item in p.clients.iter().flatten() {
            for (counter, id) in [
                (&mut s.needs_left, item.needs),
                (&mut s.watches_left, item.watches),
                (&mut s.makes_left, item.makes),
            ] {
                if id != NONE {
                    counter[id as usize] += 1;
                }
            }
        }
        s
    }
}

/// The depth-first search over configurations.
struct Search<'a> {
    p: &'a Problem,
    values: &'a mut Values,
    s: State,
    /// Which of the heuristic's orders this attempt uses.
    order: usize,
}

/// One level of the depth-first search.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// The trail length at this configuration (after its greedy reads).
    mark: usize,
    /// The configuration's entry in the memo, closed when the frame is left.
    entry: u32,
    /// The next choice to try, in the order `(invoke order << 1) | skip`.
    next: u64,
    /// Whether a child configuration was entered and failed.
    child_failed: bool,
    /// Whether the order graph has been checked here (see `Search::cyclic`).
    checked: bool,
}

/// Scratch space for `Search::cyclic`, kept between calls.
#[derive(Default)]
struct Graph {
    color: Vec<u8>,
    protected: Vec<u32>,
    stack: Vec<(u32, usize, usize, usize)>,
    succ: Vec<u32>,
}

const WHITE: u8 = 0;
const GREY: u8 = 1;
const BLACK: u8 = 2;

impl Search<'_> {
    /// Whether watched pair `id` can never be satisfied again on this path: somebody still
    /// needs it, the key does not hold it, and nothing still to come can write it. Once true it
    /// stays true (only a writer of the value could change that), so it is enough to check at
    /// the moments a writer passes or the key's state changes.
    fn starved(&self, id: u32) -> bool {
        let i = id as usize;
        let (key, value) = self.p.watched[i];
        let s = &self.s;
        s.needs_left[i] > 0
            && s.makes_left[i] == 0
            && (value == ABSENT || s.appends_left[key as usize] == 0)
            && !self.values.equal(s.state[key as usize], value)
    }

    /// Moves `client` past its next operation, leaving its key in `after`. `false` if that
    /// starves a read (the caller backtracks; the move stays on the trail to be undone).
    fn advance(&mut self, client: usize, after: StateId) -> bool {
        let s = &mut self.s;
        let item = self.p.clients[client][s.pos[client] as usize];
        let key = item.key as usize;
        for (counter, id) in [
            (&mut s.needs_left, item.needs),
            (&mut s.watches_left, item.watches),
            (&mut s.makes_left, item.makes),
        ] {
            if id != NONE {
                counter[id as usize] -= 1;
            }
        }
        if item.append {
            s.appends_left[key] -= 1;
        }
        s.pos[client] += 1;
        s.remaining -= 1;
        let before = s.state[key];
        s.state[key] = after;
        s.trail.push((client as u32, before));

        if item.makes != NONE
            && self.s.makes_left[item.makes as usize] == 0
            && self.starved(item.makes)
        {
            return false;
        }
        if item.append && self.s.appends_left[key] == 0 {
            for &id in &self.p.watched_by_key[key] {
                if self.starved(id) {
                    return false;
                }
            }
        }
        // (A state built by appends has its own id even when it spells a watched value; then
        // this lookup misses, which only skips a chance to prune.)
        if before != after
            && let Some(&id) = self.p.watch_ids.get(&(item.key, before))
            && self.starved(id)
        {
            return false;
        }
        true
    }

    /// Undoes moves until the trail is `mark` long.
    fn undo_to(&mut self, mark: usize) {
        let s = &mut self.s;
        while s.trail.len() > mark {
            let Some((client, before)) = s.trail.pop() else {
                break;
            };
            let client = client as usize;
            s.pos[client] -= 1;
            let item = self.p.clients[client][s.pos[client] as usize];
            for (counter, id) in [
                (&mut s.needs_left, item.needs),
                (&mut s.watches_left, item.watches),
                (&mut s.makes_left, item.makes),
            ] {
                if id != NONE {
                    counter[id as usize] += 1;
                }
            }
            if item.append {
                s.appends_left[item.key as usize] += 1;
            }
            s.state[item.key as usize] = before;
            s.remaining += 1;
        }
    }

    /// Takes every legal read at once (see the module docs). `false` if a branch died.
    fn close(&mut self) -> bool {
        for client in 0..self.p.clients.len() {
            while let Some(&item) = self.p.clients[client].get(self.s.pos[client] as usize) {
                if !item.observer {
                    break;
                }
                let state = self.s.state[item.key as usize];
                if item.step.apply(state, self.values).is_none() {
                    break;
                }
                if !self.advance(client, state) {
                    return false;
                }
            }
        }
        true
    }

    /// The first choice at or after `from`: `(client, skip, choice)`.
    fn next_choice(&self, from: u64) -> Option<(usize, bool, u64)> {
        let mut best: Option<(usize, bool, u64)> = None;
        for (client, items) in self.p.clients.iter().enumerate() {
            let Some(item) = items.get(self.s.pos[client] as usize) else {
                continue;
            };
            if item.observer {
                // An observer still here is illegal now (legal ones were taken greedily).
                continue;
            }
            // An interval that must be over before this operation is not: choosing it now
            // could only fail.
            let at = (self.p.offsets[client] + self.s.pos[client]) as usize;
            if self.p.before[at]
                .iter()
                .any(|&v| self.s.needs_left[v as usize] + self.s.makes_left[v as usize] > 0)
                || self.p.preds[at]
                    .iter()
                    .any(|&(c, i)| self.s.pos[c as usize] <= i)
            {
                continue;
            }
            let base = u64::from(item.ranks[self.order]) << 1;
            let candidates = [(base, false), (base | 1, true)];
            for (choice, skip) in candidates {
                if skip && !item.optional {
                    continue;
                }
                if choice >= from && best.is_none_or(|(_, _, b)| choice < b) {
                    best = Some((client, skip, choice));
                    break;
                }
            }
        }
        best
    }

    /// Whether the operations still to come are forced into a cycle, so that no order of them
    /// exists. Four kinds of "must come before" edge are certain in the current
    /// configuration:
    ///
    /// * program order: each client's next operation before its following one;
    /// * reads-from: if a value some pending read needs is not in its key and exactly one
    ///   pending operation can write it, that operation comes before every such read;
    /// * overwrites: if a key holds a value that pending reads still need and nothing pending
    ///   can write again, those reads come before every pending operation that needs the key
    ///   to hold something else (or to be absent);
    /// * intervals: the same for values written only once, whichever the key holds now, as
    ///   found before the search from each client's own order and the paths between them (see
    ///   `intervals`).
    ///
    /// A cycle among these edges is a contradiction — the classic example is a client that
    /// must see a write before another client's read that, in turn, must precede it. Finding
    /// one costs time in proportion to the history, so the search asks only where it matters:
    /// at the root, and at a configuration where a choice has already failed below. A wrong
    /// guess (two writes taken in the wrong order) makes every configuration below it fail;
    /// without this test the search would try every interleaving of the other clients before
    /// giving the guess up, with it the search backs out one level at a time.
    fn cyclic(&mut self, g: &mut Graph) -> bool {
        let mut protected = std::mem::take(&mut g.protected);
        let found = self.find_cycle(g, &mut protected);
        g.protected = protected;
        found
    }

    fn find_cycle(&mut self, g: &mut Graph, protected: &mut Vec<u32>) -> bool {
        let p = self.p;
        let s = &self.s;
        let hubs = p.total as u32;
        let ends = hubs + p.key_count as u32;
        let nodes = p.total + p.key_count + p.watched.len();
        g.color.clear();
        g.color.resize(nodes, WHITE);
        // The value each key must keep until its readers are done, if any.
        protected.clear();
        for key in 0..p.key_count {
            let state = s.state[key];
            let id = p
                .watch_ids
                .get(&(key as u32, state))
                .copied()
                .unwrap_or(NONE);
            let kept = id != NONE
                && s.needs_left[id as usize] > 0
                && s.makes_left[id as usize] == 0
                && s.appends_left[key] == 0;
            protected.push(if kept { id } else { NONE });
        }
        let protected = &*protected;
        let pending = |(c, i): (u32, u32)| i >= s.pos[c as usize];
        let node = |(c, i): (u32, u32)| p.offsets[c as usize] + i;
        // Whether `id` can only come from one pending writer while pending reads wait for it.
        let sole_maker = |id: u32| {
            let (key, value) = p.watched[id as usize];
            s.needs_left[id as usize] > 0
                && s.makes_left[id as usize] == 1
                && (value == ABSENT || s.appends_left[key as usize] == 0)
                && !self.values.equal(s.state[key as usize], value)
        };
        // Whether `item` can only run once its key no longer holds `state`.
        let excludes = |item: &Item, state: StateId| match item.step {
            Step::Read(Expect::Absent) => state != ABSENT,
            Step::Read(Expect::Value(v)) => !self.values.equal(state, v),
            Step::Write(v) => !item.optional && !self.values.equal(state, v),
            Step::Append(_) => !item.optional,
            Step::Cas {
                expected, outcome, ..
            } => match outcome {
                CasOutcome::Refused => self.values.equal(state, expected),
                CasOutcome::Applied => !self.values.equal(state, expected),
                CasOutcome::Unknown => false,
            },
        };
        let successors = |n: u32, out: &mut Vec<u32>| {
            if n >= ends {
                for &at in &p.after[(n - ends) as usize] {
                    if pending(at) {
                        out.push(node(at));
                    }
                }
                return;
            }
            if n >= hubs {
                let key = (n - hubs) as usize;
                let state = s.state[key];
                for &at in &p.on_key[key] {
                    if pending(at) && excludes(&p.clients[at.0 as usize][at.1 as usize], state) {
                        out.push(node(at));
                    }
                }
                return;
            }
            let (c, i) = p.flat[n as usize];
            let items = &p.clients[c as usize];
            let item = &items[i as usize];
            if (i as usize) + 1 < items.len() {
                out.push(n + 1);
            }
            for &at in &p.extra[n as usize] {
                if pending(at) {
                    out.push(node(at));
                }
            }
            if item.needs != NONE && item.needs == protected[item.key as usize] {
                out.push(hubs + item.key);
            }
            for w in [item.needs, item.makes] {
                if w != NONE && p.interval[w as usize] {
                    out.push(ends + w);
                }
            }
            if item.makes != NONE && sole_maker(item.makes) {
                for &at in &p.needers[item.makes as usize] {
                    if pending(at) {
                        out.push(node(at));
                    }
                }
            }
        };
        // Depth-first search for a back edge, iteratively: each stack entry is a node, where
        // its successors start and end in `succ`, and the next one to follow.
        let Graph {
            color, stack, succ, ..
        } = g;
        for (c, items) in p.clients.iter().enumerate() {
            for i in s.pos[c]..items.len() as u32 {
                let root = node((c as u32, i));
                if color[root as usize] != WHITE {
                    continue;
                }
                stack.clear();
                succ.clear();
                color[root as usize] = GREY;
                successors(root, succ);
                stack.push((root, 0, 0, succ.len()));
                while let Some(top) = stack.last_mut() {
                    let (n, start, next, end) = *top;
                    if next == end {
                        color[n as usize] = BLACK;
                        stack.pop();
                        succ.truncate(start);
                        continue;
                    }
                    top.2 += 1;
                    let m = succ[next];
                    match color[m as usize] {
                        GREY => return true,
                        WHITE => {
                            color[m as usize] = GREY;
                            let start = succ.len();
                            successors(m, succ);
                            stack.push((m, start, start, succ.len()));
                        }
                        _ => {}
                    }
                }
            }
        }
        false
    }

    /// The memo's form of the current configuration: positions, then key states with unwatched
    /// values folded together (see the module docs). Keys with appends are left alone: an
    /// appended state's id is not the id of the string it spells, so it cannot be looked up.
    fn row(&self, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.s.pos);
        for (key, &state) in self.s.state.iter().enumerate() {
            let watched = self.p.appends[key] > 0
                || self
                    .p
                    .watch_ids
                    .get(&(key as u32, state))
                    .is_some_and(|&id| self.s.watches_left[id as usize] > 0);
            out.push(if watched { state } else { UNWATCHED });
        }
    }
}

/// How often (in loop iterations) the search looks at the clock.
const CLOCK_EVERY: u64 = 4096;

/// Steps of the first attempt of a search; each round of attempts (one per order) doubles it.
const FIRST_ATTEMPT_STEPS: u64 = 20_000;

/// How many orders the choice heuristic knows (see `ranks_by_time`).
const ORDERS: usize = 3;

/// The operations at positions `0..ops.len()`, sorted by invoke time, by the middle of their
/// window and by return time (ties broken by position; an unanswered operation counts as
/// instant at its invoke).
fn ranks_by_time(ops: &[&Operation]) -> [Vec<usize>; ORDERS] {
    let ret = |o: &Operation| o.return_ns.unwrap_or(o.call_ns);
    let by = |key: &dyn Fn(&Operation) -> u64| {
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by_key(|&i| (key(ops[i]), i));
        order
    };
    [
        by(&|o| o.call_ns),
        by(&|o| o.call_ns / 2 + ret(o) / 2),
        by(&ret),
    ]
}

/// Depth-first search for an order of `p`'s operations, for at most `max_steps` steps.
///
/// The search runs in *attempts* with growing step allowances, each trying the writes in a
/// different order (see `ranks_by_time`). Backtracking search has heavy tails: one early wrong
/// guess can cost a huge dead subtree, and which guesses are wrong depends on the order. An
/// attempt that runs out of steps is abandoned and the next starts from the root with another
/// order and twice the allowance — but keeps every configuration the earlier ones *proved* dead,
/// so no work that settled anything is repeated (restarts as in SAT solvers; Gomes, Selman and
/// Kautz, "Boosting Combinatorial Search Through Randomization", 1998).
fn search(p: &Problem, values: &mut Values, limits: &Limits, max_steps: u64) -> Run {
    let width = p.clients.len() + p.key_count;
    let mut memo = Memo::new(width);
    let mut search = Search {
        p,
        values,
        s: State::new(p),
        order: 0,
    };
    let run = |end: End, memo: &Memo, steps: u64| Run {
        end,
        configs: memo.len() as u64,
        steps,
    };
    // A read of a value nobody writes is dead before the first move.
    if (0..p.watched.len() as u32).any(|id| search.starved(id)) || !search.close() {
        return run(End::Dead, &memo, 0);
    }
    if search.s.remaining == 0 {
        return run(End::Found, &memo, 0);
    }
    let mut graph = Graph::default();
    if search.cyclic(&mut graph) {
        return run(End::Dead, &memo, 0);
    }
    let mut row = Vec::with_capacity(width);
    // The frames and the trail each hold at most one entry per operation.
    let fixed_bytes = p.total * (std::mem::size_of::<Frame>() + 8);
    let has_appends = p.appends.iter().any(|&n| n > 0);
    let mut values_bytes = if has_appends {
        search.values.heap_bytes()
    } else {
        0
    };
    let root_mark = search.s.trail.len();
    let mut frames: Vec<Frame> = Vec::with_capacity(p.total + 1);
    let mut steps: u64 = 0;
    let mut next_values_check: u64 = CLOCK_EVERY;
    for attempt in 0..u32::MAX {
        search.order = attempt as usize % ORDERS;
        let allowance = FIRST_ATTEMPT_STEPS << (attempt as usize / ORDERS).min(40);
        let stop = steps.saturating_add(allowance).min(max_steps);
        search.undo_to(root_mark);
        search.row(&mut row);
        let root = match memo.enter(&row, attempt, limits.memory_limit_bytes, fixed_bytes) {
            Ok(Some(entry)) => entry,
            // Closed by an earlier attempt: every choice from the root failed.
            Ok(None) => return run(End::Dead, &memo, steps),
            Err(why) => return run(End::Exhausted(why), &memo, steps),
        };
        frames.clear();
        frames.push(Frame {
            mark: root_mark,
            entry: root,
            next: 0,
            child_failed: false,
            checked: false,
        });
        loop {
            if steps >= stop {
                break;
            }
            steps += 1;
            if steps.is_multiple_of(CLOCK_EVERY) {
                if limits.deadline.is_some_and(|d| Instant::now() >= d) {
                    return run(End::Exhausted(Exhausted::Time), &memo, steps);
                }
                // Appends intern new strings as the search goes. Measuring them costs time in
                // proportion to their number, so the checks are spaced out as the table grows.
                if has_appends && steps >= next_values_check {
                    values_bytes = search.values.heap_bytes();
                    next_values_check = steps + CLOCK_EVERY.max(values_bytes as u64 / 64);
                    if memo.bytes() + fixed_bytes + values_bytes > limits.memory_limit_bytes {
                        return run(End::Exhausted(Exhausted::Memory), &memo, steps);
                    }
                }
            }
            let Some(frame) = frames.last_mut() else {
                return run(End::Dead, &memo, steps);
            };
            let mark = frame.mark;
            // A choice made here has failed below: before trying the others, look for a
            // reason why none can work (see `Search::cyclic` for why only now).
            let doomed = frame.child_failed && !frame.checked && {
                frame.checked = true;
                search.cyclic(&mut graph)
            };
            let next = if doomed {
                None
            } else {
                search.next_choice(frame.next)
            };
            let Some((client, skip, choice)) = next else {
                // Every choice from here failed: the configuration is dead, for good.
                memo.close(frame.entry);
                frames.pop();
                if let Some(parent) = frames.last_mut() {
                    parent.child_failed = true;
                    search.undo_to(parent.mark);
                }
                continue;
            };
            frame.next = choice + 1;
            let item = p.clients[client][search.s.pos[client] as usize];
            let before = search.s.state[item.key as usize];
            let applied = item.step.apply(before, search.values);
            let after = match (skip, applied) {
                // Skipping is only a different choice if applying would change something.
                (true, Some(a)) if a == before => continue,
                (true, _) => before,
                (false, Some(a)) => a,
                (false, None) => continue,
            };
            if !search.advance(client, after) || !search.close() {
                search.undo_to(mark);
                continue;
            }
            if search.s.remaining == 0 {
                return run(End::Found, &memo, steps);
            }
            search.row(&mut row);
            let other_bytes = fixed_bytes + values_bytes;
            match memo.enter(&row, attempt, limits.memory_limit_bytes, other_bytes) {
                Ok(Some(entry)) => frames.push(Frame {
                    mark: search.s.trail.len(),
                    entry,
                    next: 0,
                    child_failed: false,
                    checked: false,
                }),
                Ok(None) => search.undo_to(mark),
                Err(why) => return run(End::Exhausted(why), &memo, steps),
            }
        }
        if steps >= max_steps {
            return run(End::OutOfSteps, &memo, steps);
        }
    }
    // Only after 2^32 attempts, the later ones each longer than any budget.
    run(End::OutOfSteps, &memo, steps)
}

/// Marks a memo entry proved dead (as opposed to "entered by attempt n").
const CLOSED: u32 = u32::MAX;

/// The configurations the search has entered, stored flat: `width` words per configuration in
/// one vector, and an open-addressing table of indices into it. Each entry is either *closed* —
/// proved dead, valid for every later attempt — or *open*, entered by some attempt and not yet
/// (or never, if that attempt was cut short) fully explored. Growth is planned, so the memory
/// budget is checked *before* any allocation that would break it.
struct Memo {
    width: usize,
    rows: Vec<u32>,
    hashes: Vec<u64>,
    /// Per entry: [`CLOSED`], or the attempt that entered it.
    status: Vec<u32>,
    /// Power-of-two table of indices into `hashes` (`NONE`: empty), at most half full.
    slots: Vec<u32>,
}

impl Memo {
    fn new(width: usize) -> Memo {
        Memo {
            width,
            rows: Vec::new(),
            hashes: Vec::new(),
            status: Vec::new(),
            slots: vec![NONE; 1024],
        }
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }

    fn bytes(&self) -> usize {
        self.rows.capacity() * 4
            + self.hashes.capacity() * 8
            + self.status.capacity() * 4
            + self.slots.capacity() * 4
    }

    /// Enters `row` for `attempt`: `Ok(Some(entry))` if it is to be explored — new, or left
    /// open by an earlier attempt — and `Ok(None)` if it is closed or already entered by this
    /// attempt. `Err` if storing it would take the memo (plus `other_bytes`) past `limit`.
    fn enter(
        &mut self,
        row: &[u32],
        attempt: u32,
        limit: usize,
        other_bytes: usize,
    ) -> Result<Option<u32>, Exhausted> {
        let hash = hash_row(row);
        let mask = self.slots.len() - 1;
        let mut at = (hash as usize) & mask;
        loop {
            let slot = self.slots[at];
            if slot == NONE {
                break;
            }
            let i = slot as usize;
            if self.hashes[i] == hash && self.rows[i * self.width..(i + 1) * self.width] == *row {
                if self.status[i] == CLOSED || self.status[i] == attempt {
                    return Ok(None);
                }
                self.status[i] = attempt;
                return Ok(Some(slot));
            }
            at = (at + 1) & mask;
        }
        // Plan the growth this insert causes, and refuse it if it breaks the budget.
        let n = self.len();
        let grow_rows = self.rows.len() + self.width > self.rows.capacity();
        let grow_entries = n == self.hashes.capacity();
        let grow_slots = 2 * (n + 1) > self.slots.len();
        let rows_extra = self.rows.capacity().max(self.width * 256);
        let entries_extra = self.hashes.capacity().max(256);
        let mut projected = self.bytes() + other_bytes;
        if grow_rows {
            projected += rows_extra * 4;
        }
        if grow_entries {
            projected += entries_extra * (8 + 4);
        }
        if grow_slots {
            // Old and new tables coexist while rehashing.
            projected += self.slots.len() * 2 * 4;
        }
        if projected > limit {
            return Err(Exhausted::Memory);
        }
        let index = match u32::try_from(n) {
            Ok(index) if index != NONE => index,
            _ => return Err(Exhausted::Memory),
        };
        if grow_rows {
            self.rows.reserve_exact(rows_extra);
        }
        if grow_entries {
            self.hashes.reserve_exact(entries_extra);
            self.status.reserve_exact(entries_extra);
        }
        self.rows.extend_from_slice(row);
        self.hashes.push(hash);
        self.status.push(attempt);
        if grow_slots {
            self.rehash(self.slots.len() * 2);
        } else {
            self.slots[at] = index;
        }
        Ok(Some(index))
    }

    /// Records that every way on from `entry` failed.
    fn close(&mut self, entry: u32) {
        if let Some(status) = self.status.get_mut(entry as usize) {
            *status = CLOSED;
        }
    }

    fn rehash(&mut self, size: usize) {
        let mut slots = vec![NONE; size];
        let mask = size - 1;
        for (i, &hash) in self.hashes.iter().enumerate() {
            let mut at = (hash as usize) & mask;
            while slots[at] != NONE {
                at = (at + 1) & mask;
            }
            slots[at] = i as u32;
        }
        self.slots = slots;
    }
}

/// A well-mixed 64-bit hash of a configuration. The row is built word by word for every
/// configuration anyway, so hashing it costs no more than keeping an incremental hash would.
fn hash_row(row: &[u32]) -> u64 {
    let mut h: u64 = 0x243F_6A88_85A3_08D3;
    for &w in row {
        h = (h.rotate_left(5) ^ u64::from(w)).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
    // SplitMix64's finaliser, so the low bits (the table index) depend on every word.
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// Shrinks the failing operations at `scope` (positions in `history.ops`) and explains them,
/// spending at most `steps` search steps (see [`Budget::shrink_steps`]).
///
/// Two passes of [`shrink::shrink`]: first over whole keys (removing every operation of a key
/// is always safe, and cheap to try), then over single operations, guarded by
/// [`Guard::allows`].
fn explain(history: &History, scope: &[usize], limits: &Limits, steps: u64) -> Violation {
    let mut guard = Guard::new(history, scope);
    let mut left = steps;
    let keys: Vec<&str> = scope
        .iter()
        .map(|&i| history.ops[i].op.key())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut minimal = steps > 0;
    let mut kept: Vec<usize> = scope.to_vec();
    if minimal && keys.len() > 1 {
        let (keys, done) = shrink::shrink(keys, |keys| {
            let candidate: Vec<usize> = scope
                .iter()
                .copied()
                .filter(|&i| keys.contains(&history.ops[i].op.key()))
                .collect();
            probe(history, &mut guard, &candidate, limits, &mut left)
        });
        kept.retain(|&i| keys.contains(&history.ops[i].op.key()));
        minimal = done;
    }
    if minimal {
        let (ops, done) = shrink::shrink(kept, |candidate| {
            probe(history, &mut guard, candidate, limits, &mut left)
        });
        kept = ops;
        minimal = done;
    }
    kept.sort_by_key(|&i| (history.ops[i].call_ns, i));
    let ops: Vec<&Operation> = kept.iter().map(|&i| &history.ops[i]).collect();
    let (reason, notes) = describe(history, &ops);
    let first_key = ops.first().map(|o| o.op.key());
    let key = first_key
        .filter(|k| ops.iter().all(|o| o.op.key() == *k))
        .map(str::to_string);
    Violation {
        key,
        ops: ops.into_iter().cloned().collect(),
        notes,
        reason,
        minimal,
    }
}

/// The shrinking oracle: does `candidate` still fail, honestly? Spends from `left`.
fn probe(
    history: &History,
    guard: &mut Guard,
    candidate: &[usize],
    limits: &Limits,
    left: &mut u64,
) -> Probe {
    if !guard.allows(candidate) {
        // Not a removal we may make; to the shrinker that is the same as "this one is needed".
        return Probe::Passes;
    }
    let run = search_subset(history, candidate, limits, *left);
    // Every probe costs at least a step, so a budget of steps always ends shrinking.
    *left = left.saturating_sub(run.steps.max(1));
    match run.end {
        End::Dead => Probe::Fails,
        End::Found => Probe::Passes,
        End::Exhausted(_) | End::OutOfSteps => Probe::GiveUp,
    }
}

/// What a write leaves in its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect<'a> {
    Value(&'a str),
    Delete,
}

/// What an operation's result tells about the state it ran in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sight<'a> {
    Value(&'a str),
    Absent,
    /// A refused compare-and-set: "something other than what I expected".
    NotExpected,
}

/// The effect of an operation that may have taken effect.
fn effect(op: &Operation) -> Option<Effect<'_>> {
    match (&op.op, &op.outcome) {
        (_, Outcome::Fail) => None,
        (Op::Set { value, .. } | Op::Append { value, .. }, _) => Some(Effect::Value(value)),
        (Op::Cas { value, .. }, Outcome::Ok | Outcome::Unknown) => Some(Effect::Value(value)),
        (Op::Del { .. }, _) => Some(Effect::Delete),
        _ => None,
    }
}

/// What an operation's result depends on.
fn sight(op: &Operation) -> Option<Sight<'_>> {
    match (&op.op, &op.outcome) {
        (Op::Get { .. }, Outcome::Value { value }) => Some(Sight::Value(value)),
        (Op::Get { .. }, Outcome::NotFound) => Some(Sight::Absent),
        (Op::Cas { expected, .. }, Outcome::Ok | Outcome::Unknown) => Some(match expected {
            Some(e) => Sight::Value(e),
            None => Sight::Absent,
        }),
        (Op::Cas { .. }, Outcome::Mismatch) => Some(Sight::NotExpected),
        _ => None,
    }
}

/// Decides which removals the shrinker may make.
///
/// Removing a read is always safe: an order for the larger set, with the read left out, is an
/// order for the smaller one, so a smaller set that fails proves the larger one fails. Removing
/// a write is safe only if no remaining operation *observed* it — otherwise dropping `set x 1`
/// would make a read of 1 fail for a reason the system never gave (in an order for the full
/// set, an operation right after the write saw its value; if nothing remaining could have seen
/// that value, leaving the write out disturbs nobody). "Observed" is judged conservatively, by
/// value: a read or successful compare-and-set observes writes of the value it saw (on a key
/// with appends: of any part of it, and deletes too), a read of nothing observes deletes, and a
/// refused compare-and-set observes every write of its key.
struct Guard<'h> {
    history: &'h History,
    /// The operations shrinking started from (all removals are judged against them).
    scope: Vec<usize>,
    /// Keys with appends in the scope.
    append_keys: HashSet<&'h str>,
    /// Scratch: which history positions the current candidate holds.
    kept: Vec<bool>,
}

impl<'h> Guard<'h> {
    fn new(history: &'h History, scope: &[usize]) -> Guard<'h> {
        let append_keys = scope
            .iter()
            .map(|&i| &history.ops[i])
            .filter(|o| matches!(o.op, Op::Append { .. }) && o.outcome != Outcome::Fail)
            .map(|o| o.op.key())
            .collect();
        Guard {
            history,
            scope: scope.to_vec(),
            append_keys,
            kept: vec![false; history.ops.len()],
        }
    }

    /// Whether `candidate` leaves out only operations nobody in it observed.
    fn allows(&mut self, candidate: &[usize]) -> bool {
        let ops = &self.history.ops;
        let mut values: HashSet<(&str, &str)> = HashSet::new();
        let mut values_by_key: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut absent: HashSet<&str> = HashSet::new();
        let mut everything: HashSet<&str> = HashSet::new();
        for &i in candidate {
            self.kept[i] = true;
            let key = ops[i].op.key();
            match sight(&ops[i]) {
                Some(Sight::Value(v)) => {
                    values.insert((key, v));
                    values_by_key.entry(key).or_default().push(v);
                }
                Some(Sight::Absent) => {
                    absent.insert(key);
                }
                Some(Sight::NotExpected) => {
                    everything.insert(key);
                }
                None => {}
            }
        }
        let observed = |op: &Operation| {
            let key = op.op.key();
            let Some(effect) = effect(op) else {
                return false;
            };
            if everything.contains(key) {
                return true;
            }
            let appends = self.append_keys.contains(key);
            let seen = values_by_key.get(key).map_or(&[][..], Vec::as_slice);
            match effect {
                Effect::Delete => absent.contains(key) || (appends && !seen.is_empty()),
                Effect::Value(v) if appends => seen.iter().any(|s| s.contains(v)),
                Effect::Value(v) => values.contains(&(key, v)),
            }
        };
        let allowed = self
            .scope
            .iter()
            .all(|&i| self.kept[i] || !observed(&ops[i]));
        for &i in candidate {
            self.kept[i] = false;
        }
        allowed
    }
}

/// The most characters of a key or value quoted in a sentence.
const SHOW_MAX: usize = 24;

/// A key or value as it appears in a sentence: bare if it is a simple word, quoted otherwise;
/// long ones are cut.
fn show(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || "-_.:/".contains(c));
    let short: String = if s.chars().count() > SHOW_MAX {
        s.chars().take(SHOW_MAX - 1).chain(['…']).collect()
    } else {
        s.to_string()
    };
    if plain { short } else { format!("{short:?}") }
}

/// `key=value`, or `key=NOT_FOUND` (the protocol's word for absent).
fn assignment(key: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{}={}", show(key), show(v)),
        None => format!("{}=NOT_FOUND", show(key)),
    }
}

/// What a client did, as a verb and its object, for sentences like "client 2 saw y=1 then
/// x=NOT_FOUND".
fn phrase(op: &Operation) -> (&'static str, String) {
    let unknown = op.outcome == Outcome::Unknown;
    let cas = |key: &str, expected: &Option<String>, value: &str| {
        format!(
            "{} from {} to {}",
            show(key),
            expected.as_deref().map_or("NOT_FOUND".to_string(), show),
            show(value)
        )
    };
    match &op.op {
        Op::Get { key } => match &op.outcome {
            Outcome::Value { value } => ("saw", assignment(key, Some(value))),
            _ => ("saw", assignment(key, None)),
        },
        Op::Set { key, value } if unknown => (
            "may have written",
            format!("{} (no reply)", assignment(key, Some(value))),
        ),
        Op::Set { key, value } => ("wrote", assignment(key, Some(value))),
        Op::Del { key } if unknown => ("may have deleted", format!("{} (no reply)", show(key))),
        Op::Del { key } => ("deleted", show(key)),
        Op::Append { key, value } if unknown => (
            "may have appended",
            format!("{value:?} to {} (no reply)", show(key)),
        ),
        Op::Append { key, value } => ("appended", format!("{value:?} to {}", show(key))),
        Op::Cas {
            key,
            expected,
            value,
        } => match op.outcome {
            Outcome::Ok => ("swapped", cas(key, expected, value)),
            Outcome::Mismatch => ("was refused swapping", cas(key, expected, value)),
            _ => (
                "may have swapped",
                format!("{} (no reply)", cas(key, expected, value)),
            ),
        },
    }
}

/// One client's part of the story: "client 1 wrote x=1 then y=1".
fn client_story(client: ClientId, ops: &[&Operation]) -> String {
    let mut out = format!("client {client}");
    let mut last_verb = "";
    for (n, op) in ops.iter().enumerate() {
        let (verb, object) = phrase(op);
        if n > 0 {
            out.push_str(" then");
        }
        if verb != last_verb {
            out.push(' ');
            out.push_str(verb);
        }
        out.push(' ');
        out.push_str(&object);
        last_verb = verb;
    }
    out
}

/// Beyond this many operations the sentence names no operations, only counts.
const STORY_MAX_OPS: usize = 12;

/// One sentence for the whole violation, and a note per operation.
fn describe(history: &History, ops: &[&Operation]) -> (String, Vec<Option<String>>) {
    let notes = ops.iter().map(|op| note(op, ops)).collect();
    if let [op] = ops
        && let Some(reason) = lonely(history, op)
    {
        return (reason, notes);
    }
    let mut by_client: BTreeMap<ClientId, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        by_client.entry(op.client).or_default().push(op);
    }
    let general = "no single order of these operations keeps each client's own order and gives \
                   every read the value it saw";
    if ops.len() > STORY_MAX_OPS {
        let reason = format!(
            "no single order of these {} operations from {} clients keeps each client's own \
             order and gives every read the value it saw",
            ops.len(),
            by_client.len()
        );
        return (reason, notes);
    }
    if let [(client, own)] = by_client.iter().collect::<Vec<_>>()[..] {
        let story = client_story(*client, own);
        let story = story.replacen(&format!("client {client}"), "it", 1);
        return (
            format!(
                "client {client}'s own operations contradict each other in its own order: {story}"
            ),
            notes,
        );
    }
    // Clients whose results are in question first: their observations are the puzzle.
    let (readers, writers): (Vec<_>, Vec<_>) = by_client
        .iter()
        .partition(|(_, own)| own.iter().any(|o| sight(o).is_some()));
    let stories: Vec<String> = readers
        .into_iter()
        .chain(writers)
        .map(|(client, own)| client_story(*client, own))
        .collect();
    (format!("{general}: {}", stories.join("; ")), notes)
}

/// The sentence for a violation of one operation alone: a value that appeared from nowhere.
fn lonely(history: &History, op: &Operation) -> Option<String> {
    let key = op.op.key();
    let what = match sight(op)? {
        Sight::Value(v) => v,
        // A lone read of nothing is never a violation; a lone refused compare-and-set on a
        // key nobody wrote is.
        Sight::Absent => return None,
        Sight::NotExpected => {
            return Some(format!(
                "client {}'s `{}` was refused, so {} held a value, but no operation wrote to {}",
                op.client,
                op.op,
                show(key),
                show(key)
            ));
        }
    };
    let failed = history.ops.iter().any(|o| {
        o.outcome == Outcome::Fail
            && o.op.key() == key
            && matches!(&o.op, Op::Set { value, .. } | Op::Cas { value, .. } if value == what)
    });
    let tail = if failed {
        " (a write of it was tried, but failed)"
    } else {
        ""
    };
    let head = match op.op {
        Op::Get { .. } => format!("client {} saw {}", op.client, assignment(key, Some(what))),
        _ => format!(
            "client {}'s `{}` succeeded, so {} held {}",
            op.client,
            op.op,
            show(key),
            show(what)
        ),
    };
    Some(format!(
        "{head}, but no operation wrote {} to {}{tail}",
        show(what),
        show(key)
    ))
}

/// What to point out about one operation of a small violation: what each read needed, and
/// which write it ties it to.
fn note(op: &Operation, ops: &[&Operation]) -> Option<String> {
    let key = op.op.key();
    let same_key = || {
        ops.iter()
            .filter(move |o| o.op.key() == key && o.index != op.index)
    };
    let appends = same_key().any(|o| matches!(o.op, Op::Append { .. }));
    match sight(op)? {
        Sight::Value(v) => {
            let writers: Vec<&&Operation> = same_key()
                .filter(|o| effect(o) == Some(Effect::Value(v)))
                .collect();
            Some(match writers[..] {
                _ if appends => format!("needs {}", assignment(key, Some(v))),
                [] => format!("no operation wrote {} to {}", show(v), show(key)),
                [w] => format!("must come after client {}'s `{}`", w.client, w.op),
                _ => format!("needs {}", assignment(key, Some(v))),
            })
        }
        Sight::Absent => {
            let dels = same_key().any(|o| effect(o) == Some(Effect::Delete));
            let writers: Vec<&&Operation> = same_key()
                .filter(|o| matches!(effect(o), Some(Effect::Value(_))))
                .collect();
            match writers[..] {
                [] => None,
                [w] if !dels => Some(format!("must come before client {}'s `{}`", w.client, w.op)),
                _ => Some(format!("needs {} absent", show(key))),
            }
        }
        Sight::NotExpected => match &op.op {
            Op::Cas {
                expected: Some(e), ..
            } => Some(format!(
                "needs {} to hold something other than {}",
                show(key),
                show(e)
            )),
            _ => Some(format!("needs {} to hold a value", show(key))),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::check::HistoryRecorder;

    /// `(client, op, call, return or None, outcome)`; outcomes are `ok`, `nf` (not found),
    /// `mismatch`, `fail`, `unknown`, or the value a read saw.
    type Row<'a> = (u64, &'a str, u64, Option<u64>, &'a str);

    fn parse_op(text: &str) -> Op {
        let words: Vec<&str> = text.split(' ').collect();
        let key = words[1].to_string();
        match words[0] {
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
        }
    }

    fn history(rows: &[Row]) -> History {
        let rec = HistoryRecorder::new();
        let mut pending = Vec::new();
        for &(client, op, call, ret, outcome) in rows {
            let id = rec.invoke_at(call, client, parse_op(op));
            if let Some(r) = ret {
                pending.push((r, id, outcome));
            }
        }
        pending.sort_by_key(|p| p.0);
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

    fn verdict(rows: &[Row]) -> Verdict {
        check(&history(rows), &Budget::unlimited_time())
    }

    /// The message-passing shape: client 1 writes x then y; client 2 sees the new y but the
    /// old x. Each key alone can be ordered; both together cannot.
    const MESSAGE_PASSING: &[Row] = &[
        (1, "set x 1", 0, Some(1), "ok"),
        (1, "set y 1", 2, Some(3), "ok"),
        (2, "get y", 4, Some(5), "1"),
        (2, "get x", 6, Some(7), "nf"),
    ];

    /// The store-buffering shape: each client writes its key, then misses the other's write.
    const STORE_BUFFERING: &[Row] = &[
        (1, "set x 1", 0, Some(1), "ok"),
        (2, "set y 1", 0, Some(1), "ok"),
        (1, "get y", 2, Some(3), "nf"),
        (2, "get x", 2, Some(3), "nf"),
    ];

    #[test]
    fn small_histories_get_the_right_verdict() {
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
                "own write forgotten",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "get x", 2, Some(3), "nf"),
                ],
                false,
            ),
            // Real time between clients does not count: the read may go first.
            (
                "stale read after another client's write returned",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "get x", 2, Some(3), "nf"),
                ],
                true,
            ),
            (
                "read from the future",
                &[
                    (2, "get x", 0, Some(1), "1"),
                    (1, "set x 1", 2, Some(3), "ok"),
                ],
                true,
            ),
            (
                "a client sees writes in their order",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "set x 2", 2, Some(3), "ok"),
                    (2, "get x", 4, Some(5), "1"),
                    (2, "get x", 6, Some(7), "2"),
                ],
                true,
            ),
            (
                "a client cannot see them backwards",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "set x 2", 2, Some(3), "ok"),
                    (2, "get x", 4, Some(5), "2"),
                    (2, "get x", 6, Some(7), "1"),
                ],
                false,
            ),
            (
                "two readers must agree on the order of two writers",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "set x 2", 0, Some(1), "ok"),
                    (3, "get x", 2, Some(3), "1"),
                    (3, "get x", 4, Some(5), "2"),
                    (4, "get x", 2, Some(3), "2"),
                    (4, "get x", 4, Some(5), "1"),
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
                "failed write has no effect",
                &[
                    (1, "set x 1", 0, Some(1), "fail"),
                    (2, "get x", 2, Some(3), "1"),
                ],
                false,
            ),
            (
                "unanswered read constrains nothing",
                &[(2, "get x", 0, None, "unknown")],
                true,
            ),
            (
                "delete then not found",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "del x", 2, Some(3), "ok"),
                    (2, "get x", 4, Some(5), "1"),
                    (2, "get x", 6, Some(7), "nf"),
                ],
                true,
            ),
            (
                "a value back after its only delete",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "del x", 2, Some(3), "ok"),
                    (2, "get x", 4, Some(5), "nf"),
                    (2, "get x", 6, Some(7), "1"),
                    (2, "get x", 8, Some(9), "nf"),
                    (2, "get x", 10, Some(11), "1"),
                ],
                false,
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
                "cas on a value nobody wrote",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "cas x 3 2", 2, Some(3), "ok"),
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
            // Another client's refused cas may go before the write.
            (
                "refused cas before the write",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "cas x 1 2", 2, Some(3), "mismatch"),
                ],
                true,
            ),
            (
                "refused cas after own write",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "cas x 1 2", 2, Some(3), "mismatch"),
                ],
                false,
            ),
            (
                "appends in either order",
                &[
                    (1, "append x a", 0, Some(1), "ok"),
                    (2, "append x b", 2, Some(3), "ok"),
                    (1, "get x", 4, Some(5), "ba"),
                ],
                true,
            ),
            (
                "append lost after the client's own read",
                &[
                    (1, "append x a", 0, Some(1), "ok"),
                    (2, "append x b", 2, Some(3), "ok"),
                    (1, "get x", 4, Some(5), "b"),
                ],
                false,
            ),
            ("message passing", MESSAGE_PASSING, false),
            ("store buffering", STORE_BUFFERING, false),
            (
                "store buffering, one read sees the write",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "set y 1", 0, Some(1), "ok"),
                    (1, "get y", 2, Some(3), "1"),
                    (2, "get x", 2, Some(3), "nf"),
                ],
                true,
            ),
        ];
        for (name, rows, consistent) in cases {
            let v = verdict(rows);
            assert_eq!(
                matches!(v, Verdict::Consistent),
                *consistent,
                "{name}: {v:?}"
            );
        }
    }

    #[test]
    fn unknown_writes_may_or_may_not_have_happened() {
        let cases: &[(&str, &[Row], bool)] = &[
            (
                "took effect",
                &[
                    (1, "set x 1", 0, None, "unknown"),
                    (2, "get x", 5, Some(6), "1"),
                ],
                true,
            ),
            (
                "did not",
                &[
                    (1, "set x 1", 0, None, "unknown"),
                    (2, "get x", 5, Some(6), "nf"),
                ],
                true,
            ),
            (
                "both, seen by different clients",
                &[
                    (1, "set x 1", 0, None, "unknown"),
                    (2, "get x", 5, Some(6), "1"),
                    (3, "get x", 5, Some(6), "nf"),
                ],
                true,
            ),
            (
                "a delete that did not happen",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "del x", 2, None, "unknown"),
                    (2, "get x", 5, Some(6), "1"),
                ],
                true,
            ),
            (
                "an unknown cas that applied",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "cas x 1 2", 2, None, "unknown"),
                    (2, "get x", 5, Some(6), "2"),
                ],
                true,
            ),
            (
                "an unknown cas that did not",
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "cas x 1 2", 2, None, "unknown"),
                    (2, "get x", 5, Some(6), "1"),
                ],
                true,
            ),
            // It may or may not happen, but if it does, it happens in its client's order.
            (
                "still in program order",
                &[
                    (1, "set x 1", 0, None, "unknown"),
                    (1, "set x 2", 10, Some(11), "ok"),
                    (2, "get x", 20, Some(21), "2"),
                    (2, "get x", 22, Some(23), "1"),
                ],
                false,
            ),
            (
                "happens at most once",
                &[
                    (1, "set x 1", 0, None, "unknown"),
                    (2, "set x 2", 0, Some(1), "ok"),
                    (3, "get x", 20, Some(21), "1"),
                    (3, "get x", 22, Some(23), "2"),
                    (3, "get x", 24, Some(25), "1"),
                ],
                false,
            ),
        ];
        for (name, rows, consistent) in cases {
            let v = verdict(rows);
            assert_eq!(
                matches!(v, Verdict::Consistent),
                *consistent,
                "{name}: {v:?}"
            );
        }
    }

    #[test]
    fn a_stale_read_is_sequentially_consistent_but_not_linearizable() {
        // Client 2's read began after client 1's write had returned, yet saw nothing. Real time
        // forbids that; program order alone does not.
        let rows = [
            (1, "set x 1", 0, Some(10), "ok"),
            (2, "get x", 20, Some(30), "nf"),
        ];
        let h = history(&rows);
        assert_eq!(check(&h, &Budget::unlimited_time()), Verdict::Consistent);
        assert!(matches!(
            crate::check::linearizable::check(&h, &Budget::unlimited_time()),
            Verdict::Violation(_)
        ));
    }

    #[test]
    fn two_keys_each_fine_alone_can_be_inconsistent_together() {
        for rows in [MESSAGE_PASSING, STORE_BUFFERING] {
            let h = history(rows);
            for key in ["x", "y"] {
                let ops: Vec<Operation> = h
                    .ops
                    .iter()
                    .filter(|o| o.op.key() == key)
                    .cloned()
                    .collect();
                let alone = History::new(ops, Vec::new());
                assert_eq!(
                    check(&alone, &Budget::unlimited_time()),
                    Verdict::Consistent,
                    "{key}"
                );
            }
            let Verdict::Violation(v) = check(&h, &Budget::unlimited_time()) else {
                panic!("expected a violation");
            };
            assert_eq!(v.key, None, "the violation spans both keys");
            assert_eq!(v.ops.len(), 4);
            assert!(v.minimal);
        }
    }

    #[test]
    fn violations_are_explained_client_by_client() {
        let cases: &[(&[Row], &str)] = &[
            (
                MESSAGE_PASSING,
                "no single order of these operations keeps each client's own order and gives \
                 every read the value it saw: client 2 saw y=1 then x=NOT_FOUND; client 1 wrote \
                 x=1 then y=1",
            ),
            (
                STORE_BUFFERING,
                "no single order of these operations keeps each client's own order and gives \
                 every read the value it saw: client 1 wrote x=1 then saw y=NOT_FOUND; client 2 \
                 wrote y=1 then saw x=NOT_FOUND",
            ),
            (
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (1, "get x", 2, Some(3), "nf"),
                ],
                "client 1's own operations contradict each other in its own order: it wrote x=1 \
                 then saw x=NOT_FOUND",
            ),
            (
                &[
                    (1, "set x 1", 0, Some(1), "ok"),
                    (2, "get x", 2, Some(3), "7"),
                ],
                "client 2 saw x=7, but no operation wrote 7 to x",
            ),
            (
                &[
                    (1, "set x 7", 0, Some(1), "fail"),
                    (2, "get x", 2, Some(3), "7"),
                ],
                "client 2 saw x=7, but no operation wrote 7 to x (a write of it was tried, but \
                 failed)",
            ),
        ];
        for (rows, expected) in cases {
            let Verdict::Violation(v) = verdict(rows) else {
                panic!("expected a violation for {expected}");
            };
            assert_eq!(v.reason, *expected);
            assert_eq!(v.notes.len(), v.ops.len());
        }
        let Verdict::Violation(v) = verdict(MESSAGE_PASSING) else {
            panic!("expected a violation");
        };
        let notes: Vec<Option<&str>> = v.notes.iter().map(Option::as_deref).collect();
        assert_eq!(
            notes,
            [
                None,
                None,
                Some("must come after client 1's `set y 1`"),
                Some("must come before client 1's `set x 1`"),
            ]
        );
    }

    #[test]
    fn a_violation_buried_in_noise_shrinks_to_the_operations_that_matter() {
        let mut rows: Vec<(u64, String, u64, Option<u64>, String)> = Vec::new();
        // Eight clients doing consistent work on other keys, and on x and y with their own
        // values, before and after the four operations that matter.
        for round in 0..40u64 {
            for c in 10..18u64 {
                let t = round * 100 + c;
                let key = ["a", "b", "c", "x", "y"][(round + c) as usize % 5];
                let value = format!("{c}-{round}");
                rows.push((c, format!("set {key} {value}"), t, Some(t + 1), "ok".into()));
                rows.push((c, format!("get {key}"), t + 2, Some(t + 3), value));
            }
        }
        // The store-buffering violation, invoked last: real time does not matter to it.
        let t = 5000;
        rows.push((1, "set x 1".into(), t, Some(t + 1), "ok".into()));
        rows.push((2, "set y 1".into(), t, Some(t + 1), "ok".into()));
        rows.push((1, "get y".into(), t + 2, Some(t + 3), "nf".into()));
        rows.push((2, "get x".into(), t + 2, Some(t + 3), "nf".into()));
        let borrowed: Vec<Row> = rows
            .iter()
            .map(|(c, op, call, ret, out)| (*c, op.as_str(), *call, *ret, out.as_str()))
            .collect();
        let h = history(&borrowed);
        assert_eq!(h.ops.len(), 644);
        let Verdict::Violation(v) = check(&h, &Budget::unlimited_time()) else {
            panic!("expected a violation");
        };
        assert!(v.minimal);
        let shown: Vec<(u64, String)> =
            v.ops.iter().map(|o| (o.client, o.op.to_string())).collect();
        let expected: Vec<(u64, String)> =
            [(1, "set x 1"), (2, "set y 1"), (1, "get y"), (2, "get x")]
                .iter()
                .map(|(c, o)| (*c, o.to_string()))
                .collect();
        assert_eq!(shown, expected);
    }

    /// Eight writers flip one key between two values; one reader claims to have seen more
    /// flips than all the writers together made. No read's value ever runs out, so only
    /// exhausting the interleavings can prove the history wrong.
    fn hopeless() -> History {
        let mut rows: Vec<(u64, String, u64, Option<u64>, String)> = Vec::new();
        for c in 0..8u64 {
            for i in 0..12u64 {
                let t = i * 10 + c;
                rows.push((c, format!("set x {}", i % 2), t, Some(t + 1), "ok".into()));
            }
        }
        for i in 0..120u64 {
            let t = 1000 + i * 2;
            rows.push((99, "get x".into(), t, Some(t + 1), (i % 2).to_string()));
        }
        let borrowed: Vec<Row> = rows
            .iter()
            .map(|(c, op, call, ret, out)| (*c, op.as_str(), *call, *ret, out.as_str()))
            .collect();
        history(&borrowed)
    }

    #[test]
    fn a_small_budget_turns_a_hopeless_search_into_unknown() {
        let h = hopeless();
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
                    time_limit: Some(Duration::from_millis(100)),
                    memory_limit_bytes: usize::MAX,
                    ..Budget::default()
                },
                "time limit",
            ),
        ];
        for (budget, expected) in cases {
            let start = Instant::now();
            match check(&h, &budget) {
                Verdict::Unknown { reason } => {
                    assert!(reason.contains(expected), "{reason}");
                    assert!(reason.contains("configurations"), "{reason}");
                }
                other => panic!("expected unknown ({expected}), got {other:?}"),
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{expected}");
        }
    }

    #[test]
    fn no_shrink_steps_reports_the_violation_unshrunk() {
        let mut rows: Vec<Row> = STORE_BUFFERING.to_vec();
        rows.push((3, "set z 1", 0, Some(1), "ok"));
        let budget = Budget {
            shrink_steps: 0,
            ..Budget::unlimited_time()
        };
        let Verdict::Violation(v) = check(&history(&rows), &budget) else {
            panic!("expected a violation");
        };
        assert!(!v.minimal);
        assert_eq!(v.ops.len(), 5);
    }

    #[test]
    fn shrinking_never_drops_a_write_somebody_saw() {
        // Client 3 saw 2 then 1, but client 1 wrote 1 before 2. Dropping either write would
        // still leave a failing set (a read of a value nobody wrote), but not an honest one:
        // the shrinker must keep both.
        let rows = [
            (1, "set x 1", 0, Some(1), "ok"),
            (1, "set x 2", 2, Some(3), "ok"),
            (3, "get x", 4, Some(5), "2"),
            (3, "get x", 6, Some(7), "1"),
        ];
        let Verdict::Violation(v) = verdict(&rows) else {
            panic!("expected a violation");
        };
        assert_eq!(v.ops.len(), 4);
        assert_eq!(
            v.reason,
            "no single order of these operations keeps each client's own order and gives every \
             read the value it saw: client 3 saw x=2 then x=1; client 1 wrote x=1 then x=2"
        );
        assert_eq!(v.key.as_deref(), Some("x"));
    }

    /// A reference checker with no cleverness at all: tries every interleaving of the clients'
    /// operations, with string states, and both fates of every unanswered write.
    fn brute_force(ops: &[Operation]) -> bool {
        fn go(
            seqs: &[Vec<&Operation>],
            pos: &mut Vec<usize>,
            state: &mut BTreeMap<String, String>,
        ) -> bool {
            if pos.iter().zip(seqs).all(|(&p, s)| p == s.len()) {
                return true;
            }
            for c in 0..seqs.len() {
                let Some(op) = seqs[c].get(pos[c]) else {
                    continue;
                };
                let key = op.op.key().to_string();
                let now = state.get(&key).cloned();
                // The states this operation may leave, if it is legal here.
                let mut fates: Vec<Option<Option<String>>> = Vec::new();
                let unknown = op.outcome == Outcome::Unknown;
                if op.outcome == Outcome::Fail || unknown {
                    fates.push(Some(now.clone()));
                }
                if op.outcome != Outcome::Fail {
                    let effect = match (&op.op, &op.outcome) {
                        (Op::Get { .. }, Outcome::Value { value }) => {
                            (now.as_deref() == Some(value)).then(|| now.clone())
                        }
                        (Op::Get { .. }, Outcome::NotFound) => now.is_none().then_some(None),
                        (Op::Get { .. }, _) => Some(now.clone()),
                        (Op::Set { value, .. }, _) => Some(Some(value.clone())),
                        (Op::Del { .. }, _) => Some(None),
                        (Op::Append { value, .. }, _) => {
                            Some(Some(format!("{}{value}", now.clone().unwrap_or_default())))
                        }
                        (
                            Op::Cas {
                                expected, value, ..
                            },
                            Outcome::Ok,
                        ) => (now == *expected).then(|| Some(value.clone())),
                        (Op::Cas { expected, .. }, Outcome::Mismatch) => {
                            (now != *expected).then(|| now.clone())
                        }
                        (
                            Op::Cas {
                                expected, value, ..
                            },
                            _,
                        ) => Some(if now == *expected {
                            Some(value.clone())
                        } else {
                            now.clone()
                        }),
                    };
                    fates.push(effect);
                }
                for after in fates.into_iter().flatten() {
                    match &after {
                        Some(v) => state.insert(key.clone(), v.clone()),
                        None => state.remove(&key),
                    };
                    pos[c] += 1;
                    let ok = go(seqs, pos, state);
                    pos[c] -= 1;
                    match &now {
                        Some(v) => state.insert(key.clone(), v.clone()),
                        None => state.remove(&key),
                    };
                    if ok {
                        return true;
                    }
                }
            }
            false
        }
        let mut clients: BTreeMap<u64, Vec<&Operation>> = BTreeMap::new();
        for op in ops {
            clients.entry(op.client).or_default().push(op);
        }
        let seqs: Vec<Vec<&Operation>> = clients.into_values().collect();
        go(&seqs, &mut vec![0; seqs.len()], &mut BTreeMap::new())
    }

    /// A small random history: three clients, two keys, every kind of operation and outcome.
    /// Half of them are run against a map in one random interleaving (so they are consistent,
    /// unless one read is then altered); the values are distinct in half of them, so that the
    /// reasoning about values written once is exercised too.
    fn random_history(seed: u64, clients: u64, max_ops: u64) -> History {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        let distinct = next(2) == 0;
        let small = ["1", "2", "3", "12", "21"];
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        let mut written: Vec<String> = Vec::new();
        let mut ops = Vec::new();
        let mut free_at = vec![0u64; clients as usize];
        let count = 2 + next(max_ops - 1);
        for id in 0..count {
            let client = next(clients);
            let key = ["x", "y"][next(2) as usize].to_string();
            let value = if distinct {
                id.to_string()
            } else {
                small[next(3) as usize].to_string()
            };
            let now = map.get(&key).cloned();
            // Whether a write takes effect: a failed one never, an unanswered one maybe.
            let fate = [
                Outcome::Ok,
                Outcome::Ok,
                Outcome::Ok,
                Outcome::Unknown,
                Outcome::Fail,
            ][next(5) as usize]
                .clone();
            let lands = match fate {
                Outcome::Ok => true,
                Outcome::Unknown => next(2) == 0,
                _ => false,
            };
            let (op, outcome, after) = match next(6) {
                0 | 1 => {
                    let outcome = match (&now, next(8)) {
                        (_, 0) => Outcome::Unknown,
                        (Some(v), _) => Outcome::Value { value: v.clone() },
                        (None, _) => Outcome::NotFound,
                    };
                    (Op::Get { key }, outcome, now.clone())
                }
                2 => (
                    Op::Set {
                        key,
                        value: value.clone(),
                    },
                    fate,
                    if lands { Some(value) } else { now.clone() },
                ),
                3 => (
                    Op::Del { key },
                    fate,
                    if lands { None } else { now.clone() },
                ),
                4 => {
                    let joined = format!("{}{value}", now.clone().unwrap_or_default());
                    (
                        Op::Append { key, value },
                        fate,
                        if lands { Some(joined) } else { now.clone() },
                    )
                }
                _ => {
                    let expected = match next(3) {
                        0 => now.clone(),
                        1 => None,
                        _ => written.get(next(written.len() as u64) as usize).cloned(),
                    };
                    let matches = expected == now;
                    let (outcome, after) = match fate {
                        Outcome::Fail => (Outcome::Fail, now.clone()),
                        Outcome::Unknown => (
                            Outcome::Unknown,
                            if lands && matches {
                                Some(value.clone())
                            } else {
                                now.clone()
                            },
                        ),
                        _ if matches => (Outcome::Ok, Some(value.clone())),
                        _ => (Outcome::Mismatch, now.clone()),
                    };
                    (
                        Op::Cas {
                            key: key.clone(),
                            expected,
                            value,
                        },
                        outcome,
                        after,
                    )
                }
            };
            if let Op::Set { value, .. } | Op::Cas { value, .. } | Op::Append { value, .. } = &op {
                written.push(value.clone());
            }
            match after {
                Some(v) => map.insert(op.key().to_string(), v),
                None => map.remove(op.key()),
            };
            let call = free_at[client as usize] + next(3);
            let return_ns = (outcome != Outcome::Unknown).then_some(call + 1 + next(3));
            free_at[client as usize] = return_ns.unwrap_or(call) + 1;
            ops.push(Operation {
                index: 0,
                id,
                client,
                op,
                call_ns: call,
                return_ns,
                outcome,
            });
        }
        // Half the time, alter one read: it may or may not still fit some order.
        if next(2) == 0 {
            let reads: Vec<usize> = (0..ops.len())
                .filter(|&i| {
                    matches!(ops[i].op, Op::Get { .. }) && ops[i].outcome != Outcome::Unknown
                })
                .collect();
            if !reads.is_empty() {
                let i = reads[next(reads.len() as u64) as usize];
                ops[i].outcome = match written.get(next(written.len() as u64 + 1) as usize) {
                    Some(v) => Outcome::Value { value: v.clone() },
                    None => Outcome::NotFound,
                };
            }
        }
        History::new(ops, Vec::new())
    }

    #[test]
    fn agrees_with_brute_force_on_random_small_histories() {
        let (mut consistent, mut violations) = (0, 0);
        for seed in 0..4000 {
            let h = random_history(seed, 3, 10);
            let expected = brute_force(&h.ops);
            let verdict = check(&h, &Budget::unlimited_time());
            match (&verdict, expected) {
                (Verdict::Consistent, true) => consistent += 1,
                (Verdict::Violation(v), false) => {
                    violations += 1;
                    // The operations shown cannot be ordered on their own either.
                    assert!(
                        !brute_force(&v.ops),
                        "seed {seed}: witness {v:?} is consistent"
                    );
                    assert!(v.minimal, "seed {seed}");
                }
                _ => panic!(
                    "seed {seed}: brute force says {expected}, checker says {verdict:?}\n{h:#?}"
                ),
            }
        }
        // Both answers must be common, or the comparison proves little.
        assert!(
            consistent > 1000 && violations > 500,
            "{consistent} / {violations}"
        );
    }
}
