//! Shrinking: from a failing history to the few operations that make it fail.
//!
//! A violation found in a 2,000-operation history is true but useless to a student; the same
//! violation shown as three operations teaches something. This is delta debugging (Zeller and
//! Hildebrandt, "Simplifying and Isolating Failure-Inducing Input", 2002) in its simplest form:
//! try removing chunks, halving the chunk size, and keep every removal after which the history
//! still fails. It ends *1-minimal*: removing any single remaining item makes the failure go
//! away. (The globally smallest failing subset could be smaller still; finding it is expensive
//! and rarely different in practice.)
//!
//! Every candidate is re-checked by the real checker, and candidates that drop a write some
//! remaining operation observed are refused ([`removals_unobserved`]), so shrinking does not
//! invent a violation; it only chooses which true counterexample to show.

use std::collections::HashSet;

use super::history::{Op, Operation, Outcome};

/// Whether `candidate` (a subset of `all`, by [`Operation::index`]) left out only writes that
/// no operation in `candidate` observed — the test every shrinking candidate must pass, so
/// that the counterexample shown is one the system really produced.
///
/// Removing a read is always safe: reads change nothing. Removing a write is not: drop the only
/// `set x 1` and a read that saw 1 now saw "a value nobody wrote"; drop a `del x` and a read that
/// found nothing is now "stale" — violations the shrinker would have invented. The lemma that
/// makes removal safe: if a history is consistent, it stays consistent without a write `w` that
/// no remaining operation observed, because in a legal order the operations between `w` and the
/// next write are exactly the ones that saw `w`'s effect. Contrapositive: a candidate that
/// fails does not fail merely for lack of its removed writes.
///
/// An operation `r` *observes* a write `w` of its key when `r`'s result could depend on `w`:
/// a read that saw a value containing `w`'s (containment covers appends), a read of nothing and
/// a delete, a compare-and-set whose expected value contains `w`'s, and a refused or unanswered
/// compare-and-set (whatever `w` wrote). With `real_time` (linearizability, where every order respects
/// real time) `r` cannot observe a `w` that began after `r` returned, nor one that a completed
/// write certainly overwrote before `r` began; under sequential consistency real time means
/// nothing and these exemptions do not apply.
pub fn removals_unobserved(candidate: &[Operation], all: &[Operation], real_time: bool) -> bool {
    let kept: HashSet<usize> = candidate.iter().map(|o| o.index).collect();
    let removed: Vec<&Operation> = all
        .iter()
        .filter(|w| !kept.contains(&w.index) && w.op.is_write() && w.outcome != Outcome::Fail)
        .collect();
    if removed.is_empty() {
        return true;
    }
    for r in candidate {
        // The latest start of a completed write that finished before `r` began: any write that
        // had returned before then was certainly overwritten before `r`.
        let overwritten_before = if real_time {
            candidate
                .iter()
                .filter(|w2| {
                    w2.op.key() == r.op.key()
                        && certainly_wrote(w2)
                        && w2.return_ns.is_some_and(|t| t < r.call_ns)
                })
                .map(|w2| w2.call_ns)
                .max()
        } else {
            None
        };
        for w in &removed {
            match observes(r, w, candidate) {
                Sight::None => {}
                // `r` saw `w`'s value itself: always an observation, even when real time says
                // it should not have (that is the violation to show, not to shrink away).
                Sight::Direct => return false,
                Sight::Maybe => {
                    if real_time {
                        if w.call_ns > r.return_ns.unwrap_or(u64::MAX) {
                            continue;
                        }
                        if let (Some(ret), Some(cut)) = (w.return_ns, overwritten_before)
                            && ret < cut
                        {
                            continue;
                        }
                    }
                    return false;
                }
            }
        }
    }
    true
}

/// How `r` may have observed `w`.
enum Sight {
    None,
    /// `r`'s result shows `w`'s value (or, for a delete, its absence).
    Direct,
    /// `r`'s result might depend on `w` (a refused or unanswered compare-and-set).
    Maybe,
}

/// Whether `r`'s result could depend on `w` (see [`removals_unobserved`]).
fn observes(r: &Operation, w: &Operation, ops: &[Operation]) -> Sight {
    let key = w.op.key();
    if r.op.key() != key || r.index == w.index {
        return Sight::None;
    }
    let has_appends = || {
        ops.iter()
            .any(|o| o.op.key() == key && matches!(o.op, Op::Append { .. }))
    };
    let contains = |seen: &str| match &w.op {
        // Only appends build values out of pieces; otherwise a read sees a write's value whole
        // (a read of "15" did not see a write of "1").
        Op::Set { value, .. } | Op::Append { value, .. } | Op::Cas { value, .. } => {
            if has_appends() {
                seen.contains(value.as_str())
            } else {
                seen == value
            }
        }
        // Appends after a delete start from nothing: what they built shows the delete.
        Op::Del { .. } => has_appends(),
        Op::Get { .. } => false,
    };
    let direct = |seen: bool| if seen { Sight::Direct } else { Sight::None };
    match (&r.op, &r.outcome) {
        (Op::Get { .. }, Outcome::Value { value }) => direct(contains(value)),
        (Op::Get { .. }, Outcome::NotFound) => direct(matches!(w.op, Op::Del { .. })),
        (Op::Cas { expected, .. }, Outcome::Ok) => direct(match expected {
            Some(e) => contains(e),
            None => matches!(w.op, Op::Del { .. }),
        }),
        (Op::Cas { .. }, Outcome::Mismatch | Outcome::Unknown) => Sight::Maybe,
        _ => Sight::None,
    }
}

/// A write whose effect is fixed: it returned and certainly replaced the key's value.
fn certainly_wrote(op: &Operation) -> bool {
    op.outcome == Outcome::Ok && matches!(op.op, Op::Set { .. } | Op::Del { .. } | Op::Cas { .. })
}

/// What the oracle says about a candidate subset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The subset still fails: keep the removal.
    Fails,
    /// The subset passes: the removed items were needed.
    Passes,
    /// The budget ran out: stop shrinking and keep what we have.
    GiveUp,
}

/// Shrinks `items` to a subset on which `probe` still reports [`Probe::Fails`].
///
/// `items` must fail to begin with. Returns the subset (in the original order) and whether it is
/// 1-minimal (`false` if the probe gave up first).
pub fn shrink<T: Clone>(mut items: Vec<T>, mut probe: impl FnMut(&[T]) -> Probe) -> (Vec<T>, bool) {
    let mut chunk = (items.len() / 2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < items.len() {
            let end = (start + chunk).min(items.len());
            let candidate: Vec<T> = items[..start]
                .iter()
                .chain(&items[end..])
                .cloned()
                .collect();
            match probe(&candidate) {
                Probe::Fails => {
                    items = candidate;
                    removed_any = true;
                }
                Probe::Passes => start = end,
                Probe::GiveUp => return (items, false),
            }
        }
        if chunk > 1 {
            chunk = (chunk / 2).max(1);
        } else if !removed_any {
            // A full pass removing single items changed nothing: 1-minimal.
            return (items, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pair_that_fails_together() {
        // Fails whenever both 3 and 7 are present.
        let (kept, minimal) = shrink((0..20).collect(), |s: &[i32]| {
            if s.contains(&3) && s.contains(&7) {
                Probe::Fails
            } else {
                Probe::Passes
            }
        });
        assert_eq!(kept, vec![3, 7]);
        assert!(minimal);
    }

    #[test]
    fn giving_up_keeps_the_last_failing_subset() {
        let mut calls = 0;
        let (kept, minimal) = shrink((0..100).collect(), |s: &[i32]| {
            calls += 1;
            if calls > 3 {
                Probe::GiveUp
            } else if s.contains(&42) {
                Probe::Fails
            } else {
                Probe::Passes
            }
        });
        assert!(!minimal);
        assert!(kept.contains(&42));
        assert!(kept.len() < 100);
    }
}
