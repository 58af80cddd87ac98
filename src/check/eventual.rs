//! Eventual consistency: once the writes stop, do all replicas hold the same data, and only data
//! that clients wrote?
//!
//! Vogels ("Eventually Consistent", 2009) states the guarantee: *if no new updates are made to
//! an object, eventually all accesses will return the last updated value.* Shapiro, Preguiça,
//! Baquero and Zawirski ("Conflict-free Replicated Data Types", 2011) sharpen it into *strong
//! eventual consistency*: replicas that have received the same updates are in the same state.
//! Neither says which write wins when two race — last-writer-wins, a merge, any rule will do, as
//! long as every replica applies the same one.
//!
//! So this check looks only at the end of a run. The history must carry each replica's full
//! contents, read after the system went quiet (the `replica` events of the history format). It
//! then asks two questions of every key, in key order:
//!
//! 1. **Convergence**: do all replicas hold the same value for it (or all lack it)?
//! 2. **Validity**: is the value one that some client wrote? A `set` or a `cas` that was not
//!    refused writes its value — also when the client never heard back, since the write may
//!    have happened. On a key with appends, a value may also be built from appended pieces:
//!    optionally a written value, followed by pieces from distinct `append`s that did not fail,
//!    in any order. Anything else was invented by the system (a corrupted merge, a torn write, a
//!    value from another key). An operation that failed took no effect, so its value does not
//!    count.
//!
//! The first key that fails either question is reported, with the client writes of that key.
//!
//! ## What this does not check
//! * **No order.** A replica may end with an old value while a newer write is lost, as
//!   last-writer-wins with skewed clocks does; a client may have read its writes out of order
//!   during the run. Session guarantees (read-your-writes, monotonic reads) and real-time order
//!   are the business of [`super::linearizable`] and [`super::sequential`], which look at every
//!   read.
//! * **No deadline.** "Eventually" has no bound; the check cannot tell a system that converges
//!   in a second from one that needed an hour, only whether it had converged when the
//!   replicas were read.
//! * **Quiescence is assumed, not checked.** Replica contents read while writes are still in
//!   flight, or before anti-entropy has run, may differ for no fault of the system.

use std::collections::{BTreeMap, BTreeSet};

use super::history::{History, HistoryError, Op, Operation, Outcome, ReplicaState};
use super::{Verdict, Violation};

/// At most this many client writes are shown with a violation.
const SHOWN_OPS_MAX: usize = 10;

/// At most this many steps are spent deciding whether one value is a concatenation of appended
/// pieces (the question is hard in general; real histories answer it in a handful).
const CONCAT_STEPS_MAX: u64 = 1_000_000;

/// Checks that the replicas converged on values clients wrote.
///
/// # Errors
/// [`HistoryError::Invalid`] when the history has no replica contents: convergence cannot be
/// judged without them.
pub fn check(history: &History) -> Result<Verdict, HistoryError> {
    if history.replicas.is_empty() {
        return Err(HistoryError::Invalid(
            "the convergence check needs every replica's final contents (`replica` events, \
             recorded after the run went quiet), and this history has none"
                .to_string(),
        ));
    }
    let mut replicas: Vec<&ReplicaState> = history.replicas.iter().collect();
    replicas.sort_by_key(|r| r.node);
    let keys: BTreeSet<&str> = replicas
        .iter()
        .flat_map(|r| r.data.keys().map(String::as_str))
        .collect();
    let mut undecided: Option<String> = None;
    for key in keys {
        let held: Vec<(u64, Option<&str>)> = replicas
            .iter()
            .map(|r| (r.node, r.data.get(key).map(String::as_str)))
            .collect();
        let writes = Writes::of(history, key);
        // Validity of each distinct value held, in order of first appearance.
        let mut invented: Vec<&str> = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for value in held.iter().filter_map(|&(_, v)| v) {
            if !seen.insert(value) {
                continue;
            }
            match writes.explains(value) {
                Some(true) => {}
                Some(false) => invented.push(value),
                None => {
                    undecided.get_or_insert_with(|| key.to_string());
                }
            }
        }
        let agree = held.windows(2).all(|w| w[0].1 == w[1].1);
        if agree && invented.is_empty() {
            continue;
        }
        let reason = if agree {
            invented_reason(key, &held, invented[0], &writes)
        } else {
            let mut reason = format!("replicas disagree on key {key:?}: {}", holdings(&held));
            for value in &invented {
                reason.push_str(&format!(", and no client wrote {value:?}"));
            }
            reason
        };
        let (ops, truncated) = writes.shown(&held);
        let notes = ops.iter().map(|op| note(op, &held)).collect();
        return Ok(Verdict::Violation(Violation {
            key: Some(key.to_string()),
            ops,
            notes,
            reason,
            minimal: !truncated,
        }));
    }
    Ok(match undecided {
        None => Verdict::Consistent,
        Some(key) => Verdict::Unknown {
            reason: format!(
                "could not decide within {CONCAT_STEPS_MAX} steps whether the value of key \
                 {key:?} is made of appended pieces"
            ),
        },
    })
}

/// The writes clients made to one key.
struct Writes<'h> {
    /// Every write operation on the key, whatever its outcome.
    ops: Vec<&'h Operation>,
    /// Values a `set` or `cas` may have written.
    whole: BTreeSet<&'h str>,
    /// Non-empty pieces appends may have added, with how many appends added each.
    pieces: BTreeMap<&'h str, usize>,
    /// Whether some append of the empty string may have happened.
    empty_append: bool,
}

impl<'h> Writes<'h> {
    fn of(history: &'h History, key: &str) -> Writes<'h> {
        let mut writes = Writes {
            ops: Vec::new(),
            whole: BTreeSet::new(),
            pieces: BTreeMap::new(),
            empty_append: false,
        };
        for op in history.ops.iter().filter(|o| o.op.key() == key) {
            if !op.op.is_write() {
                continue;
            }
            writes.ops.push(op);
            if op.outcome == Outcome::Fail {
                continue;
            }
            match &op.op {
                Op::Set { value, .. } => {
                    writes.whole.insert(value);
                }
                Op::Cas { value, .. } if op.outcome != Outcome::Mismatch => {
                    writes.whole.insert(value);
                }
                Op::Append { value, .. } if value.is_empty() => writes.empty_append = true,
                Op::Append { value, .. } => *writes.pieces.entry(value).or_default() += 1,
                _ => {}
            }
        }
        writes
    }

    /// Whether `value` can have come from these writes (`None`: undecided within the step
    /// limit).
    fn explains(&self, value: &str) -> Option<bool> {
        if self.whole.contains(value) {
            return Some(true);
        }
        if self.pieces.is_empty() && !self.empty_append {
            return Some(false);
        }
        // A written value (or nothing), then at least one append.
        let mut undecided = false;
        let starts = std::iter::once("").chain(self.whole.iter().copied());
        for start in starts {
            let Some(rest) = value.strip_prefix(start) else {
                continue;
            };
            if rest.is_empty() {
                // Only an append of "" leaves a written value (or nothing) spelled as it was.
                if self.empty_append {
                    return Some(true);
                }
                continue;
            }
            match concatenation(rest, &self.pieces) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => undecided = true,
            }
        }
        if undecided { None } else { Some(false) }
    }

    /// The writes to show with a violation: those that wrote a value some replica holds (or
    /// tried to), then the latest others; at most [`SHOWN_OPS_MAX`], in invoke order. Also
    /// whether some were left out.
    fn shown(&self, held: &[(u64, Option<&str>)]) -> (Vec<Operation>, bool) {
        let mut ranked: Vec<&Operation> = self.ops.clone();
        // Relevant first, then newest first; `sort_by_key` is stable, so ties keep history
        // order.
        ranked.sort_by_key(|op| {
            let relevant = written(op).is_some_and(|v| held.iter().any(|&(_, h)| h == Some(v)));
            (!relevant, std::cmp::Reverse(op.call_ns))
        });
        let truncated = ranked.len() > SHOWN_OPS_MAX;
        ranked.truncate(SHOWN_OPS_MAX);
        ranked.sort_by_key(|op| (op.call_ns, op.index));
        (ranked.into_iter().cloned().collect(), truncated)
    }
}

/// The value an operation wrote or tried to write, if it names one.
fn written(op: &Operation) -> Option<&str> {
    match &op.op {
        Op::Set { value, .. } | Op::Cas { value, .. } | Op::Append { value, .. } => Some(value),
        Op::Del { .. } | Op::Get { .. } => None,
    }
}

/// Whether `text` is a concatenation of one or more pieces, each used at most as many times as
/// it was appended (`None`: undecided within [`CONCAT_STEPS_MAX`] steps).
///
/// First a table, ignoring the counts, of the positions from which the rest of `text` can be
/// spelled at all; then a depth-first search that respects the counts and only steps to such
/// positions, so it backtracks only when a piece runs out.
fn concatenation(text: &str, pieces: &BTreeMap<&str, usize>) -> Option<bool> {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let list: Vec<(&[u8], usize)> = pieces.iter().map(|(p, &c)| (p.as_bytes(), c)).collect();
    if (n as u64).saturating_mul(list.len() as u64) > CONCAT_STEPS_MAX {
        return None;
    }
    let fits = |at: usize, piece: &[u8]| bytes[at..].starts_with(piece);
    let mut reaches_end = vec![false; n + 1];
    reaches_end[n] = true;
    for at in (0..n).rev() {
        reaches_end[at] = list
            .iter()
            .any(|&(piece, _)| fits(at, piece) && reaches_end[at + piece.len()]);
    }
    if !reaches_end[0] {
        return Some(false);
    }
    let mut left: Vec<usize> = list.iter().map(|&(_, c)| c).collect();
    // Each frame: a position and the next piece to try there.
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    let mut steps: u64 = 0;
    while let Some(&mut (at, ref mut next)) = stack.last_mut() {
        if at == n {
            return Some(true);
        }
        steps += 1;
        if steps > CONCAT_STEPS_MAX {
            return None;
        }
        let Some(i) = (*next..list.len()).find(|&i| {
            let (piece, _) = list[i];
            left[i] > 0 && fits(at, piece) && reaches_end[at + piece.len()]
        }) else {
            // Nothing more fits here: give back the piece that led here.
            stack.pop();
            if let Some(&(_, tried)) = stack.last() {
                left[tried - 1] += 1;
            }
            continue;
        };
        *next = i + 1;
        left[i] -= 1;
        stack.push((at + list[i].0.len(), 0));
    }
    Some(false)
}

/// `node 1 has "1", nodes 2 and 4 have "2", node 3 has no value`.
fn holdings(held: &[(u64, Option<&str>)]) -> String {
    let mut groups: Vec<(Option<&str>, Vec<u64>)> = Vec::new();
    for &(node, value) in held {
        match groups.iter_mut().find(|(v, _)| *v == value) {
            Some((_, nodes)) => nodes.push(node),
            None => groups.push((value, vec![node])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(value, nodes)| {
            let verb = if nodes.len() == 1 { "has" } else { "have" };
            match value {
                Some(v) => format!("{} {verb} {v:?}", nodes_phrase(nodes)),
                None => format!("{} {verb} no value", nodes_phrase(nodes)),
            }
        })
        .collect();
    parts.join(", ")
}

/// `node 1`, `nodes 1 and 3`, `nodes 1, 3 and 4`.
fn nodes_phrase(nodes: &[u64]) -> String {
    match nodes {
        [one] => format!("node {one}"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(u64::to_string).collect();
            format!("nodes {} and {last}", init.join(", "))
        }
        [] => "no node".to_string(),
    }
}

/// The sentence for replicas that agree on a value nobody wrote.
fn invented_reason(
    key: &str,
    held: &[(u64, Option<&str>)],
    value: &str,
    writes: &Writes,
) -> String {
    let holders: Vec<u64> = held
        .iter()
        .filter(|&&(_, v)| v == Some(value))
        .map(|&(n, _)| n)
        .collect();
    let who = if held.len() > 1 && holders.len() == held.len() {
        format!("all {} replicas hold", held.len())
    } else if holders.len() == 1 {
        format!("{} holds", nodes_phrase(&holders))
    } else {
        format!("{} hold", nodes_phrase(&holders))
    };
    let failed = writes
        .ops
        .iter()
        .find(|op| op.outcome == Outcome::Fail && written(op) == Some(value));
    let why = match failed {
        Some(op) => format!(
            ", which only client {}'s `{}` wrote, and that failed (so it had no effect)",
            op.client, op.op
        ),
        None if !writes.pieces.is_empty() => {
            format!(", which no client wrote, nor is it made of the pieces appended to {key:?}")
        }
        None => ", which no client wrote".to_string(),
    };
    format!("{who} {key} = {value:?}{why}")
}

/// The note for a write shown with a violation: which replicas hold what it wrote.
fn note(op: &Operation, held: &[(u64, Option<&str>)]) -> Option<String> {
    let value = written(op)?;
    let holders: Vec<u64> = held
        .iter()
        .filter(|&&(_, v)| v == Some(value))
        .map(|&(n, _)| n)
        .collect();
    if holders.is_empty() {
        return None;
    }
    let verb = if holders.len() == 1 { "holds" } else { "hold" };
    Some(if op.outcome == Outcome::Fail {
        format!(
            "failed, so it had no effect, yet {} {verb} its value",
            nodes_phrase(&holders)
        )
    } else {
        format!("{} {verb} this value", nodes_phrase(&holders))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(client, op, outcome)` rows, one time unit apart, plus replica contents as
    /// `(node, [(key, value)])`.
    fn history(rows: &[(u64, &str, &str)], replicas: &[(u64, &[(&str, &str)])]) -> History {
        let ops = rows
            .iter()
            .enumerate()
            .map(|(i, &(client, text, outcome))| {
                let words: Vec<&str> = text.split(' ').collect();
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
                let outcome = match outcome {
                    "ok" => Outcome::Ok,
                    "nf" => Outcome::NotFound,
                    "mismatch" => Outcome::Mismatch,
                    "fail" => Outcome::Fail,
                    "unknown" => Outcome::Unknown,
                    v => Outcome::Value { value: v.into() },
                };
                let t = 10 * i as u64;
                Operation {
                    index: i,
                    id: i as u64,
                    client,
                    op,
                    call_ns: t,
                    return_ns: (outcome != Outcome::Unknown).then_some(t + 1),
                    outcome,
                }
            })
            .collect();
        let replicas = replicas
            .iter()
            .map(|&(node, data)| ReplicaState {
                node,
                data: data
                    .iter()
                    .map(|&(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .collect();
        History::new(ops, replicas)
    }

    #[test]
    fn verdicts_and_reasons() {
        type Rows<'a> = &'a [(u64, &'a str, &'a str)];
        type Replicas<'a> = &'a [(u64, &'a [(&'a str, &'a str)])];
        // (name, ops, replicas, None for consistent or Some(reason))
        let cases: &[(&str, Rows, Replicas, Option<&str>)] = &[
            (
                "converged on the last write",
                &[(1, "set x 1", "ok"), (2, "set x 2", "ok")],
                &[(1, &[("x", "2")]), (2, &[("x", "2")]), (3, &[("x", "2")])],
                None,
            ),
            (
                "converged on an older write: no order is promised",
                &[(1, "set x 1", "ok"), (2, "set x 2", "ok")],
                &[(1, &[("x", "1")]), (2, &[("x", "1")])],
                None,
            ),
            (
                "converged on a write nobody heard back from",
                &[(1, "set x 1", "unknown")],
                &[(1, &[("x", "1")]), (2, &[("x", "1")])],
                None,
            ),
            (
                "all deleted",
                &[(1, "set x 1", "ok"), (1, "del x", "ok")],
                &[(1, &[]), (2, &[])],
                None,
            ),
            (
                "cas value",
                &[(1, "set x 1", "ok"), (2, "cas x 1 2", "ok")],
                &[(1, &[("x", "2")]), (2, &[("x", "2")])],
                None,
            ),
            (
                "divergent",
                &[(1, "set x 1", "ok"), (2, "set x 2", "ok")],
                &[(1, &[("x", "1")]), (2, &[("x", "2")]), (3, &[])],
                Some(
                    r#"replicas disagree on key "x": node 1 has "1", node 2 has "2", node 3 has no value"#,
                ),
            ),
            (
                "absent on one replica, present on the others",
                &[(1, "set x 1", "ok")],
                &[(1, &[("x", "1")]), (2, &[]), (3, &[("x", "1")])],
                Some(
                    r#"replicas disagree on key "x": nodes 1 and 3 have "1", node 2 has no value"#,
                ),
            ),
            (
                "a value nobody wrote",
                &[(1, "set x 1", "ok")],
                &[(1, &[("x", "7")]), (2, &[("x", "7")])],
                Some(r#"all 2 replicas hold x = "7", which no client wrote"#),
            ),
            (
                "a value only a failed write wrote",
                &[(1, "set x 1", "ok"), (3, "set x 7", "fail")],
                &[(2, &[("x", "7")])],
                Some(
                    r#"node 2 holds x = "7", which only client 3's `set x 7` wrote, and that failed (so it had no effect)"#,
                ),
            ),
            (
                "a refused cas wrote nothing",
                &[(1, "set x 1", "ok"), (2, "cas x 0 2", "mismatch")],
                &[(1, &[("x", "2")])],
                Some(r#"node 1 holds x = "2", which no client wrote"#),
            ),
            (
                "appended pieces, in any order",
                &[
                    (1, "append x a", "ok"),
                    (2, "append x b", "ok"),
                    (3, "append x c", "unknown"),
                ],
                &[(1, &[("x", "bca")]), (2, &[("x", "bca")])],
                None,
            ),
            (
                "a set, then appends",
                &[(1, "set x hello", "ok"), (2, "append x -world", "ok")],
                &[(1, &[("x", "hello-world")])],
                None,
            ),
            (
                "a piece appended once cannot appear twice",
                &[(1, "append x a", "ok"), (2, "append x b", "ok")],
                &[(1, &[("x", "aab")])],
                Some(
                    r#"node 1 holds x = "aab", which no client wrote, nor is it made of the pieces appended to "x""#,
                ),
            ),
            (
                "a failed append adds nothing",
                &[(1, "append x a", "ok"), (2, "append x b", "fail")],
                &[(1, &[("x", "ab")])],
                Some(
                    r#"node 1 holds x = "ab", which no client wrote, nor is it made of the pieces appended to "x""#,
                ),
            ),
            (
                "the first bad key in key order is reported",
                &[(1, "set a 1", "ok"), (1, "set b 1", "ok")],
                &[
                    (1, &[("a", "1"), ("b", "9"), ("c", "9")]),
                    (2, &[("a", "1"), ("b", "9")]),
                ],
                Some(r#"all 2 replicas hold b = "9", which no client wrote"#),
            ),
        ];
        for (name, rows, replicas, expected) in cases {
            let verdict = check(&history(rows, replicas)).unwrap();
            match (expected, &verdict) {
                (None, Verdict::Consistent) => {}
                (Some(reason), Verdict::Violation(v)) => {
                    assert_eq!(v.reason, *reason, "{name}");
                    assert_eq!(v.notes.len(), v.ops.len(), "{name}");
                }
                _ => panic!("{name}: expected {expected:?}, got {verdict:?}"),
            }
        }
    }

    #[test]
    fn a_violation_shows_the_writes_of_its_key() {
        let h = history(
            &[
                (1, "set x 1", "ok"),
                (2, "set y 5", "ok"),
                (2, "set x 2", "ok"),
                (3, "get x", "2"),
            ],
            &[
                (1, &[("x", "1"), ("y", "5")]),
                (2, &[("x", "2"), ("y", "5")]),
            ],
        );
        let Verdict::Violation(v) = check(&h).unwrap() else {
            panic!("expected a violation");
        };
        assert_eq!(v.key.as_deref(), Some("x"));
        let shown: Vec<String> = v.ops.iter().map(|o| o.op.to_string()).collect();
        assert_eq!(shown, ["set x 1", "set x 2"]);
        assert_eq!(v.notes[0].as_deref(), Some("node 1 holds this value"));
        assert_eq!(v.notes[1].as_deref(), Some("node 2 holds this value"));
    }

    #[test]
    fn many_writes_are_cut_to_the_relevant_and_the_latest() {
        let rows: Vec<(u64, String, &str)> = (0..30)
            .map(|i| (i % 3, format!("set x {i}"), "ok"))
            .collect();
        let rows: Vec<(u64, &str, &str)> =
            rows.iter().map(|(c, o, r)| (*c, o.as_str(), *r)).collect();
        let h = history(&rows, &[(1, &[("x", "3")]), (2, &[("x", "29")])]);
        let Verdict::Violation(v) = check(&h).unwrap() else {
            panic!("expected a violation");
        };
        assert_eq!(v.ops.len(), SHOWN_OPS_MAX);
        assert!(!v.minimal);
        let shown: Vec<String> = v.ops.iter().map(|o| o.op.to_string()).collect();
        assert_eq!(
            shown[0], "set x 3",
            "the value node 1 holds is shown, though old"
        );
        assert_eq!(shown[SHOWN_OPS_MAX - 1], "set x 29");
    }

    #[test]
    fn no_replicas_is_an_error() {
        let h = history(&[(1, "set x 1", "ok")], &[]);
        let err = check(&h).unwrap_err().to_string();
        assert!(err.contains("replica"), "{err}");
    }

    #[test]
    fn concatenation_respects_how_often_each_piece_was_appended() {
        let pieces = |list: &[(&'static str, usize)]| -> BTreeMap<&'static str, usize> {
            list.iter().copied().collect()
        };
        let cases = [
            ("ab", pieces(&[("a", 1), ("b", 1)]), Some(true)),
            ("aab", pieces(&[("a", 1), ("b", 1)]), Some(false)),
            ("aab", pieces(&[("a", 2), ("b", 1)]), Some(true)),
            ("aaa", pieces(&[("a", 1), ("aa", 1)]), Some(true)),
            ("aaaa", pieces(&[("a", 1), ("aa", 1)]), Some(false)),
            ("xyz", pieces(&[("a", 1)]), Some(false)),
            // Only the counts rule this one out: the search must backtrack through them.
            (
                "abab",
                pieces(&[("ab", 1), ("a", 1), ("b", 1), ("aba", 1)]),
                Some(true),
            ),
            (
                "ababab",
                pieces(&[("ab", 1), ("a", 1), ("b", 1)]),
                Some(false),
            ),
        ];
        for (text, pieces, expected) in cases {
            assert_eq!(concatenation(text, &pieces), expected, "{text}");
        }
    }
}
