//! The graded checks, generic over the implementation: `tests/grade.rs` runs them on yours,
//! `tests/wrong.rs` on deliberately broken ones (to prove they catch what they claim to).

use std::path::PathBuf;

use dkvs::check::Property;
use labkit::{Failure, Faults, Scenario, Sweep};

use crate::{Linearizable, factory};

/// The crate's name, for the `reproduce:` lines.
pub const LAB: &str = "lab04-linearizable";

/// A sweep of `nodes` nodes of `L`, judged linearizable (and the replicas must agree once the
/// cluster settles).
pub fn sweep<L: Linearizable>(nodes: u32, faults: &str) -> Sweep {
    let mut sweep = Sweep::new(factory::<L>(), Property::Linearizable);
    sweep.nodes = nodes;
    sweep.faults = faults.parse::<Faults>().expect("a valid fault list");
    sweep
}

/// Reads and writes on every node, no network trouble: seeds 1..=20.
///
/// # Errors
/// The first failing seed.
pub fn linearizable<L: Linearizable>() -> Result<(), Failure> {
    sweep::<L>(3, "none").run()
}

/// Messages take 1–20 ms, so nodes learn of writes at different times: seeds 1..=30.
///
/// # Errors
/// The first failing seed.
pub fn linearizable_under_delays<L: Linearizable>() -> Result<(), Failure> {
    let mut sweep = sweep::<L>(3, "delay");
    sweep.seeds = 1..=30;
    sweep.run()
}

/// Five nodes under delays, more clients: seeds 1..=10.
///
/// # Errors
/// The first failing seed.
pub fn five_nodes<L: Linearizable>() -> Result<(), Failure> {
    let mut sweep = sweep::<L>(5, "delay");
    sweep.seeds = 1..=10;
    sweep.clients = 6;
    sweep.run()
}

/// The transcript of `scenarios/<name>` run over `L`.
///
/// # Errors
/// A panic in the code under test, or a scenario that cannot run.
pub fn scenario<L: Linearizable>(name: &str) -> Result<String, Failure> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::run(&factory::<L>(), &path)
}
