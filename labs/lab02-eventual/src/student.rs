//! Your replica. `README.md` is the assignment: it states exactly what each method must do.
//!
//! Replace every `todo!` with code. The tests run your `Lww` (`cargo test -p lab02-eventual`);
//! `src/node/eventual.rs` in the toolkit does the same job with more features, and is worth
//! reading first.

// The skeleton does not use its arguments yet. Remove this line once it does: the warnings
// then point at what you forgot.
#![allow(unused_variables, dead_code)]

use labkit::{Command, Ctx, NodeId, RequestId};

use crate::{Msg, Replica};

/// A replica that keeps, for each key, the write with the largest stamp.
pub struct Lww {
    me: NodeId,
    // Your other fields: a Lamport clock (`dkvs::node::LamportClock`), the id of your last
    // update, and the updates that some nodes have not acknowledged yet (a `BTreeMap`, so
    // that resends go out in a fixed order).
}

impl Replica for Lww {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        // Start your clock and an empty outbox here too.
        Lww { me }
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command) {
        todo!("lab02: answer Get locally; stamp, save, answer and broadcast Set and Del")
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        todo!("lab02: keep an Update whose stamp is larger and always Ack it; clear Acked updates")
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, Msg>) {
        todo!("lab02: resend every unacknowledged update to the nodes that have not acked it")
    }

    fn pending(&self) -> usize {
        todo!("lab02: count the updates some node has not acknowledged yet")
    }
}
