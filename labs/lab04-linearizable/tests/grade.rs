//! The graded tests of lab 04; their points are in `points.toml`. Each runs your `Store`
//! (from `src/student.rs`) in the simulator, over lab 03's reference sequencer.

use lab04_linearizable::Store;
use lab04_linearizable::grading::{self, LAB};
use labkit::Failure;

#[track_caller]
fn pass(test: &str, result: Result<(), Failure>) {
    if let Err(failure) = result {
        failure.fail(LAB, test);
    }
}

#[track_caller]
fn flow(test: &str, scenario: &str) {
    match grading::scenario::<Store>(scenario) {
        Ok(transcript) => insta::assert_snapshot!(test, transcript),
        Err(failure) => failure.fail(LAB, test),
    }
}

#[test]
fn lab04_flow_of_a_read() {
    flow("lab04_flow_of_a_read", "read-in-the-order.txt");
}

#[test]
fn lab04_flow_without_a_stale_read() {
    flow("lab04_flow_without_a_stale_read", "no-stale-read.txt");
}

#[test]
fn lab04_linearizable() {
    pass("lab04_linearizable", grading::linearizable::<Store>());
}

#[test]
fn lab04_linearizable_under_delays() {
    pass(
        "lab04_linearizable_under_delays",
        grading::linearizable_under_delays::<Store>(),
    );
}

#[test]
fn lab04_five_nodes() {
    pass("lab04_five_nodes", grading::five_nodes::<Store>());
}
