//! What the dkvs labs share.
//!
//! A lab asks a student to implement one small trait. This crate turns such an implementation
//! into a node the simulator can run ([`process`]), runs it over many seeds or through a fixed
//! scenario and judges it with the history checkers ([`grade`]), and makes sure a `todo!()` or
//! any other panic in the student's code becomes one readable line instead of a wall of
//! backtraces ([`guard`]).
//!
//! # The failure protocol
//! A graded test that fails panics with a message whose first line is the whole story in
//! short, starting with the seed when there is one:
//!
//! ```text
//! seed 17: not linearizable: get k1 on n2 answered 1 after set k1=2 was acknowledged
//! reproduce: LAB_SEED=17 cargo test -p lab04-linearizable --test grade lab04_reads_are_linearizable
//! …the checker's smallest failing history, and a diagram of the messages around it
//! ```
//!
//! The grader (`labs/grader`) shows that first line in its score table, the seed in its own
//! column, and the `reproduce:` line under the table. `LAB_SEED=17` (or `LAB_SEEDS=1..500`)
//! narrows (or widens) a sweep to those seeds.

pub mod grade;
pub mod guard;
pub mod process;

pub use dkvs::node::{NodeId, RequestId, Response, Stamp};
pub use dkvs::sim::run::Faults;
pub use grade::{Failure, Scenario, Sweep};
pub use guard::{TestFailure, guard};
pub use process::{Adapter, Command, Ctx, Process, Version, factory, toolkit};
