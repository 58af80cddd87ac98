//! The graded checks, one function per behaviour of `points.toml`, generic over the
//! implementation: `tests/grade.rs` runs them on your [`crate::Lww`], `tests/wrong.rs` on
//! deliberately broken replicas to show that each check can fail.
//!
//! Two kinds of check:
//!
//! - **Sweeps** run the simulator's random workload (4 clients, 3 keys) on three of your nodes
//!   for seeds 1 to 20, with the faults the check names, heal every fault, wait for the cluster
//!   to settle (every node's `pending()` is 0 and no message is in flight) and then ask the
//!   convergence checker whether all replicas hold the same data, made of values clients wrote
//!   ([`Property::Eventual`]). `LAB_SEED=17` runs one seed, `LAB_SEEDS=1..500` more.
//! - **Scenarios** run a fixed script of `scenarios/` with your nodes and return its transcript
//!   (requests, answers, message diagrams, replica contents), which the test compares with the
//!   reference's stored in `tests/snapshots`.
//!
//! Crashes are not among the faults: this lab's outbox lives in memory, so a node that crashes
//! forgets what it still had to send (see the README).

use std::path::Path;

use dkvs::check::Property;
use labkit::{Failure, Faults, Scenario, Sweep};

use crate::{Replica, factory};

/// Operations per seed in every sweep, over all clients: enough for concurrent writes to one
/// key and for faults to hit updates in flight, little enough for 20 seeds to take about a
/// second in a debug build.
pub const SWEEP_OPS: usize = 200;

/// The scenarios, by file name in `scenarios/`, in the order the README tells them.
pub const SCENARIOS: [&str; 4] = [
    "01-one-write.txt",
    "02-retry-after-partition.txt",
    "03-concurrent-writes.txt",
    "04-delete-beats-older-write.txt",
];

/// A sweep of three `R` nodes under `faults` (comma-separated fault words, `""` for none),
/// judged for convergence.
///
/// # Panics
/// If `faults` holds a word that is not a fault (a mistake in the lab, not in a student's
/// code).
pub fn sweep<R: Replica>(faults: &str) -> Sweep {
    let mut sweep = Sweep::new(factory::<R>(), Property::Eventual);
    sweep.faults = faults
        .parse::<Faults>()
        .unwrap_or_else(|e| panic!("fault list {faults:?}: {e}"));
    sweep.ops = SWEEP_OPS;
    sweep
}

/// Without faults, every write reaches every replica and they all end up equal.
///
/// # Errors
/// The first seed whose replicas differ or whose cluster never settles, or a panic.
pub fn converges_without_faults<R: Replica>() -> Result<(), Failure> {
    sweep::<R>("").run()
}

/// Lost and duplicated messages: retries make up for the lost ones, and a duplicate update
/// changes nothing but must still be acknowledged.
///
/// # Errors
/// As [`converges_without_faults`].
pub fn converges_despite_drops_and_duplicates<R: Replica>() -> Result<(), Failure> {
    sweep::<R>("drop,duplicate").run()
}

/// Messages that overtake each other and take up to 20 ms: an older write may arrive after a
/// newer one, and must lose to it.
///
/// # Errors
/// As [`converges_without_faults`].
pub fn converges_despite_reordering_and_delay<R: Replica>() -> Result<(), Failure> {
    sweep::<R>("reorder,delay").run()
}

/// Nodes cut off for up to 300 ms at a time: their updates wait in the outboxes and get
/// through after the partition heals.
///
/// # Errors
/// As [`converges_without_faults`].
pub fn converges_across_partitions<R: Replica>() -> Result<(), Failure> {
    sweep::<R>("partition").run()
}

/// Every fault of this lab at once: partitions, drops, duplicates, reordering, delays.
///
/// # Errors
/// As [`converges_without_faults`].
pub fn converges_under_every_fault<R: Replica>() -> Result<(), Failure> {
    sweep::<R>("partition,drop,duplicate,reorder,delay").run()
}

/// Runs `scenarios/<file>` with `R`'s nodes and returns the transcript.
///
/// # Errors
/// A [`Failure`] when the script cannot run or the code under test panics.
pub fn scenario<R: Replica>(file: &str) -> Result<String, Failure> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    Scenario::run(&factory::<R>(), &path)
}

/// One write on n1 flows to n2 and n3, and both acknowledge it.
///
/// # Errors
/// As [`scenario`].
pub fn a_write_reaches_every_replica<R: Replica>() -> Result<String, Failure> {
    scenario::<R>(SCENARIOS[0])
}

/// An update lost to a partition is resent on a tick after the partition heals.
///
/// # Errors
/// As [`scenario`].
pub fn a_lost_update_is_retried<R: Replica>() -> Result<String, Failure> {
    scenario::<R>(SCENARIOS[1])
}

/// Two concurrent writes to one key end the same everywhere: the larger stamp wins, whatever
/// order they arrive in.
///
/// # Errors
/// As [`scenario`].
pub fn concurrent_writes_agree_by_stamp<R: Replica>() -> Result<String, Failure> {
    scenario::<R>(SCENARIOS[2])
}

/// A delete is a stamped tombstone: an older write that arrives after it stays deleted.
///
/// # Errors
/// As [`scenario`].
pub fn a_delete_beats_an_older_write<R: Replica>() -> Result<String, Failure> {
    scenario::<R>(SCENARIOS[3])
}
