//! The graded tests of lab 03; their points are in `points.toml`. Each runs your
//! `Sequencer` or `Lamport` (from `src/student.rs`) in the simulator.

use lab03_total_order::grading::{self, LAB};
use lab03_total_order::{Lamport, Sequencer, TotalOrder};
use labkit::Failure;

#[track_caller]
fn pass(test: &str, result: Result<(), Failure>) {
    if let Err(failure) = result {
        failure.fail(LAB, test);
    }
}

#[track_caller]
fn flow<T: TotalOrder>(test: &str, scenario: &str) {
    match grading::scenario::<T>(scenario) {
        Ok(transcript) => insta::assert_snapshot!(test, transcript),
        Err(failure) => failure.fail(LAB, test),
    }
}

#[test]
fn lab03_sequencer_flow_of_a_write() {
    flow::<Sequencer>("lab03_sequencer_flow_of_a_write", "sequencer-write.txt");
}

#[test]
fn lab03_sequencer_flow_of_two_writers() {
    flow::<Sequencer>(
        "lab03_sequencer_flow_of_two_writers",
        "sequencer-two-writers.txt",
    );
}

#[test]
fn lab03_sequencer_one_order() {
    pass(
        "lab03_sequencer_one_order",
        grading::one_order::<Sequencer>(),
    );
}

#[test]
fn lab03_sequencer_one_order_under_delays() {
    pass(
        "lab03_sequencer_one_order_under_delays",
        grading::one_order_under_delays::<Sequencer>(),
    );
}

#[test]
fn lab03_lamport_flow_of_a_write() {
    flow::<Lamport>("lab03_lamport_flow_of_a_write", "lamport-write.txt");
}

#[test]
fn lab03_lamport_flow_of_two_writers() {
    flow::<Lamport>(
        "lab03_lamport_flow_of_two_writers",
        "lamport-two-writers.txt",
    );
}

#[test]
fn lab03_lamport_one_order() {
    pass("lab03_lamport_one_order", grading::one_order::<Lamport>());
}

#[test]
fn lab03_lamport_one_order_under_delays() {
    pass(
        "lab03_lamport_one_order_under_delays",
        grading::one_order_under_delays::<Lamport>(),
    );
}

#[test]
fn lab03_lamport_five_nodes() {
    pass("lab03_lamport_five_nodes", grading::five_nodes::<Lamport>());
}
