//! The toolkit's own total orders (`src/node/sequencer.rs`, `src/node/lamport.rs`) pass this
//! lab's sweeps: the checks judge the algorithm, not one implementation of it. (Their
//! messages differ from the lab's, so the flow snapshots do not apply to them.)

use dkvs::node::{ModeKind, Tob};
use lab03_total_order::{Sequencer, grading};

#[test]
fn the_toolkit_total_orders_pass_the_sweeps() {
    for tob in [Tob::Sequencer, Tob::Lamport] {
        for (nodes, faults) in [(3, "none"), (3, "delay"), (5, "delay")] {
            let mut sweep = grading::sweep::<Sequencer>(nodes, faults);
            sweep.factory = labkit::toolkit(ModeKind::Sequential, tob);
            if let Err(failure) = sweep.run() {
                panic!("{tob}, {nodes} nodes, faults {faults}: {failure}");
            }
        }
    }
}
