//! The graded tests of lab 01. Their points are in `points.toml`; what each one checks, and
//! how, is in `src/grading.rs`. They run your `Store`, or with `--features reference` the
//! toolkit's.
//!
//! A failing test prints one line saying what went wrong (with the seed, when there is one),
//! the command that reruns it on that seed alone, and the last operations before the failure.

use lab01_log_store::{Store, grading};
use labkit::Failure;

const LAB: &str = "lab01-log-store";

/// Fails `test` with `result`'s failure, in the form the grader reads.
#[track_caller]
fn graded(test: &str, result: Result<(), Failure>) {
    if let Err(failure) = result {
        failure.fail(LAB, test);
    }
}

#[test]
fn lab01_set_get_del() {
    graded(
        "lab01_set_get_del",
        grading::set_get_del::<Store>(grading::seeds()),
    );
}

#[test]
fn lab01_reopen_keeps_everything() {
    graded(
        "lab01_reopen_keeps_everything",
        grading::reopen_keeps_everything::<Store>(grading::seeds()),
    );
}

#[test]
fn lab01_torn_tail_is_cut() {
    graded(
        "lab01_torn_tail_is_cut",
        grading::torn_tail_is_cut::<Store>(grading::seeds()),
    );
}

#[test]
fn lab01_garbage_tail_is_ignored() {
    graded(
        "lab01_garbage_tail_is_ignored",
        grading::garbage_tail_is_ignored::<Store>(grading::seeds()),
    );
}

#[test]
fn lab01_corrupt_record_is_dropped() {
    graded(
        "lab01_corrupt_record_is_dropped",
        grading::corrupt_record_is_dropped::<Store>(grading::seeds()),
    );
}

#[test]
fn lab01_compaction_reclaims_space() {
    graded(
        "lab01_compaction_reclaims_space",
        grading::compaction_reclaims_space::<Store>(grading::seeds()),
    );
}

/// The story's transcript against `tests/snapshots/grade__story.snap`. On a difference, insta
/// prints both side by side: the first line that differs is the first answer to look at.
#[test]
fn lab01_story() {
    match grading::story::<Store>() {
        Ok(transcript) => insta::assert_snapshot!("story", transcript),
        Err(failure) => failure.fail(LAB, "lab01_story"),
    }
}
