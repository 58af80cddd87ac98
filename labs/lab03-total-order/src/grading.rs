//! The graded checks, generic over the implementation: `tests/grade.rs` runs them on yours,
//! `tests/wrong.rs` on deliberately broken ones (to prove they catch what they claim to).

use std::path::PathBuf;

use dkvs::check::Property;
use labkit::{Failure, Faults, Scenario, Sweep};

use crate::{TotalOrder, factory};

/// The crate's name, for the `reproduce:` lines.
pub const LAB: &str = "lab03-total-order";

/// A sweep of `nodes` nodes over `T`, judged sequentially consistent (and the replicas must
/// agree once the cluster settles).
pub fn sweep<T: TotalOrder>(nodes: u32, faults: &str) -> Sweep {
    let mut sweep = Sweep::new(factory::<T>(), Property::Sequential);
    sweep.nodes = nodes;
    sweep.faults = faults.parse::<Faults>().expect("a valid fault list");
    sweep
}

/// Writes and reads on every node, no network trouble: seeds 1..=20.
///
/// # Errors
/// The first failing seed.
pub fn one_order<T: TotalOrder>() -> Result<(), Failure> {
    sweep::<T>(3, "none").run()
}

/// Messages take 1–20 ms, so messages on different links overtake each other (each link stays
/// FIFO): seeds 1..=30.
///
/// # Errors
/// The first failing seed.
pub fn one_order_under_delays<T: TotalOrder>() -> Result<(), Failure> {
    let mut sweep = sweep::<T>(3, "delay");
    sweep.seeds = 1..=30;
    sweep.run()
}

/// Five nodes under delays: seeds 1..=10.
///
/// # Errors
/// The first failing seed.
pub fn five_nodes<T: TotalOrder>() -> Result<(), Failure> {
    let mut sweep = sweep::<T>(5, "delay");
    sweep.seeds = 1..=10;
    sweep.clients = 6;
    sweep.run()
}

/// The transcript of `scenarios/<name>` run over `T`.
///
/// # Errors
/// A panic in the code under test, or a scenario that cannot run.
pub fn scenario<T: TotalOrder>(name: &str) -> Result<String, Failure> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::run(&factory::<T>(), &path)
}
