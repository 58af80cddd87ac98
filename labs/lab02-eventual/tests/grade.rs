//! The graded tests of lab 02: one test per entry of `points.toml`.
//!
//! Each test runs one check of `lab02_eventual::grading` on your `Lww`. A sweep that fails
//! names the seed in its first line and says how to run that seed alone; a scenario test shows
//! where your transcript parts from the reference's.
//!
//! Do not update the snapshots to make a scenario pass: they are the reference's message
//! flow, which is the specification.

use lab02_eventual::{Lww, grading};
use labkit::Failure;

const LAB: &str = "lab02-eventual";

/// Passes on `Ok`, fails the test in the grader's protocol on `Err`.
#[track_caller]
fn graded(test: &str, result: Result<(), Failure>) {
    if let Err(failure) = result {
        failure.fail(LAB, test);
    }
}

/// The transcript, or the test failed in the grader's protocol.
#[track_caller]
fn transcript(test: &str, result: Result<String, Failure>) -> String {
    match result {
        Ok(transcript) => transcript,
        Err(failure) => failure.fail(LAB, test),
    }
}

#[test]
fn lab02_converges_without_faults() {
    graded(
        "lab02_converges_without_faults",
        grading::converges_without_faults::<Lww>(),
    );
}

#[test]
fn lab02_converges_despite_drops_and_duplicates() {
    graded(
        "lab02_converges_despite_drops_and_duplicates",
        grading::converges_despite_drops_and_duplicates::<Lww>(),
    );
}

#[test]
fn lab02_converges_despite_reordering_and_delay() {
    graded(
        "lab02_converges_despite_reordering_and_delay",
        grading::converges_despite_reordering_and_delay::<Lww>(),
    );
}

#[test]
fn lab02_converges_across_partitions() {
    graded(
        "lab02_converges_across_partitions",
        grading::converges_across_partitions::<Lww>(),
    );
}

#[test]
fn lab02_converges_under_every_fault() {
    graded(
        "lab02_converges_under_every_fault",
        grading::converges_under_every_fault::<Lww>(),
    );
}

#[test]
fn lab02_a_write_reaches_every_replica() {
    let text = transcript(
        "lab02_a_write_reaches_every_replica",
        grading::a_write_reaches_every_replica::<Lww>(),
    );
    insta::assert_snapshot!("a_write_reaches_every_replica", text);
}

#[test]
fn lab02_a_lost_update_is_retried() {
    let text = transcript(
        "lab02_a_lost_update_is_retried",
        grading::a_lost_update_is_retried::<Lww>(),
    );
    insta::assert_snapshot!("a_lost_update_is_retried", text);
}

#[test]
fn lab02_concurrent_writes_agree_by_stamp() {
    let text = transcript(
        "lab02_concurrent_writes_agree_by_stamp",
        grading::concurrent_writes_agree_by_stamp::<Lww>(),
    );
    insta::assert_snapshot!("concurrent_writes_agree_by_stamp", text);
}

#[test]
fn lab02_a_delete_beats_an_older_write() {
    let text = transcript(
        "lab02_a_delete_beats_an_older_write",
        grading::a_delete_beats_an_older_write::<Lww>(),
    );
    insta::assert_snapshot!("a_delete_beats_an_older_write", text);
}
