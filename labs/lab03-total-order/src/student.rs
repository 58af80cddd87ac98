//! Your total orders. Replace every `todo!` (see the README for the protocol each must follow).
//!
//! Delete the next line once you start: it only keeps the untouched skeleton free of warnings.
#![allow(unused_variables, dead_code, unused_imports)]

use std::collections::BTreeMap;

use dkvs::node::LamportClock;
use labkit::{NodeId, Stamp};

use crate::{Entry, Msg, OrderCtx, TotalOrder};

/// Total order by a sequencer: the node with the smallest id numbers every entry.
pub struct Sequencer {
    me: NodeId,
    // Your state: who the sequencer is, the last number handed out, the last number
    // delivered, entries that arrived early…
}

impl TotalOrder for Sequencer {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        Sequencer { me }
    }

    fn broadcast(&mut self, ctx: &mut OrderCtx<'_>, entry: Entry) {
        todo!("lab03: Sequencer::broadcast: forward the entry to the sequencer")
    }

    fn on_message(&mut self, ctx: &mut OrderCtx<'_>, from: NodeId, msg: Msg) {
        todo!(
            "lab03: Sequencer::on_message: number forwarded entries, deliver numbered ones in order"
        )
    }

    fn pending(&self) -> usize {
        todo!("lab03: Sequencer::pending: entries not yet delivered")
    }
}

/// Total order by Lamport clocks: deliver the entry with the smallest stamp once every other
/// node has said something stamped later.
pub struct Lamport {
    me: NodeId,
    // Your state: a LamportClock, the queue of undelivered entries by stamp, the largest
    // stamp heard from each other node…
}

impl TotalOrder for Lamport {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        Lamport { me }
    }

    fn broadcast(&mut self, ctx: &mut OrderCtx<'_>, entry: Entry) {
        todo!(
            "lab03: Lamport::broadcast: stamp the entry, queue it, send a Request to every other node"
        )
    }

    fn on_message(&mut self, ctx: &mut OrderCtx<'_>, from: NodeId, msg: Msg) {
        todo!(
            "lab03: Lamport::on_message: queue requests, acknowledge them, deliver what every node is past"
        )
    }

    fn pending(&self) -> usize {
        todo!("lab03: Lamport::pending: entries queued and not yet delivered")
    }
}
