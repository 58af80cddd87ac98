//! The toolkit's own linearizable modes pass this lab's sweeps: the checks judge the
//! property, not one implementation of it. (Their messages differ from the lab's, so the flow
//! snapshots do not apply to them.)

use dkvs::node::{ModeKind, Tob};
use lab04_linearizable::{Store, grading};

#[test]
fn the_toolkit_linearizable_modes_pass_the_sweeps() {
    for tob in [Tob::Sequencer, Tob::Lamport] {
        for (nodes, faults) in [(3, "none"), (3, "delay"), (5, "delay")] {
            let mut sweep = grading::sweep::<Store>(nodes, faults);
            sweep.factory = labkit::toolkit(ModeKind::Linearizable, tob);
            if let Err(failure) = sweep.run() {
                panic!("{tob}, {nodes} nodes, faults {faults}: {failure}");
            }
        }
    }
}
