//! The toolkit's own eventual mode (`src/node/eventual.rs`) passes this lab's sweeps: the
//! checks judge the algorithm, not one implementation of it. (Its messages differ from the
//! lab's, so the flow snapshots do not apply to it.)

use dkvs::node::{ModeKind, Tob};
use lab02_eventual::{Lww, grading};

#[test]
fn the_toolkit_eventual_mode_passes_every_sweep() {
    for faults in [
        "",
        "drop,duplicate",
        "reorder,delay",
        "partition",
        "partition,drop,duplicate,reorder,delay",
    ] {
        let mut sweep = grading::sweep::<Lww>(faults);
        sweep.factory = labkit::toolkit(ModeKind::Eventual, Tob::Sequencer);
        if let Err(failure) = sweep.run() {
            panic!("faults {faults:?}: {failure}");
        }
    }
}
