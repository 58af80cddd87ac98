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
//! Every candidate is re-checked by the real checker, so shrinking can never invent a violation;
//! it only chooses which true counterexample to show.

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
