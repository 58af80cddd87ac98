//! The reference solution: the toolkit's two total orders (`src/node/sequencer.rs` and
//! `src/node/lamport.rs`) cut down to this lab's reliable, FIFO network — no retries, no
//! durable log, no flow control — and built on the toolkit's own [`LamportClock`].

use std::collections::BTreeMap;

use dkvs::node::LamportClock;
use labkit::{NodeId, Stamp};

use crate::{Entry, Msg, OrderCtx, TotalOrder};

/// Total order by a sequencer: the node with the smallest id numbers every entry.
pub struct Sequencer {
    sequencer: NodeId,
    /// On the sequencer: the last number handed out.
    last_seq: u64,
    /// The last number delivered here.
    delivered: u64,
    /// Numbered entries that arrived before an earlier number (a hold-back queue; with FIFO
    /// links from the one sequencer it stays empty, but a total order should not rely on it).
    held: BTreeMap<u64, Entry>,
    /// This node's own entries forwarded and not yet delivered back.
    forwarded: usize,
    me: NodeId,
}

impl TotalOrder for Sequencer {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        Sequencer {
            sequencer: nodes.iter().copied().min().unwrap_or(me),
            last_seq: 0,
            delivered: 0,
            held: BTreeMap::new(),
            forwarded: 0,
            me,
        }
    }

    fn broadcast(&mut self, ctx: &mut OrderCtx<'_>, entry: Entry) {
        self.forwarded += 1;
        ctx.send(self.sequencer, Msg::Forward { entry });
    }

    fn on_message(&mut self, ctx: &mut OrderCtx<'_>, _from: NodeId, msg: Msg) {
        match msg {
            Msg::Forward { entry } if ctx.me() == self.sequencer => {
                self.last_seq += 1;
                for node in ctx.nodes().to_vec() {
                    let order = Msg::Order {
                        seq: self.last_seq,
                        entry: entry.clone(),
                    };
                    ctx.send(node, order);
                }
            }
            Msg::Order { seq, entry } if seq > self.delivered => {
                self.held.insert(seq, entry);
                while let Some(entry) = self.held.remove(&(self.delivered + 1)) {
                    self.delivered += 1;
                    if entry.origin == self.me {
                        self.forwarded -= 1;
                    }
                    ctx.deliver(entry);
                }
            }
            // A duplicate, or a message of the other protocol: nothing to do.
            _ => {}
        }
    }

    fn pending(&self) -> usize {
        self.forwarded + self.held.len()
    }
}

/// Total order by Lamport clocks: deliver the entry with the smallest stamp once every other
/// node has sent something stamped at least as late (its origin's request counts: FIFO links
/// mean nothing stamped earlier can still come from that node).
pub struct Lamport {
    clock: LamportClock,
    /// Entries known and not delivered, by stamp: the smallest goes first.
    queue: BTreeMap<Stamp, Entry>,
    /// Per other node, the largest stamp heard from it. With FIFO links, nothing stamped
    /// lower can still come from that node.
    heard: BTreeMap<NodeId, Stamp>,
    me: NodeId,
}

impl Lamport {
    /// Delivers from the front of the queue while every other node is past the front.
    fn deliver_ready(&mut self, ctx: &mut OrderCtx<'_>) {
        while let Some((&first, _)) = self.queue.first_key_value() {
            if !self.heard.values().all(|&s| s >= first) {
                return;
            }
            let (_, entry) = self.queue.pop_first().expect("seen above");
            ctx.deliver(entry);
        }
    }
}

impl TotalOrder for Lamport {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        Lamport {
            clock: LamportClock::new(0),
            queue: BTreeMap::new(),
            heard: nodes
                .iter()
                .filter(|&&n| n != me)
                .map(|&n| (n, Stamp::new(0, n)))
                .collect(),
            me,
        }
    }

    fn broadcast(&mut self, ctx: &mut OrderCtx<'_>, entry: Entry) {
        let stamp = Stamp::new(self.clock.tick(), self.me);
        self.queue.insert(stamp, entry.clone());
        for node in ctx.others() {
            let request = Msg::Request {
                stamp,
                entry: entry.clone(),
            };
            ctx.send(node, request);
        }
        // A cluster of one has nobody to wait for.
        self.deliver_ready(ctx);
    }

    fn on_message(&mut self, ctx: &mut OrderCtx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Request { stamp, entry } => {
                let now = self.clock.observe(stamp.time);
                self.queue.insert(stamp, entry);
                self.hear(from, stamp);
                let ack = Stamp::new(now, self.me);
                for node in ctx.others() {
                    ctx.send(
                        node,
                        Msg::Ack {
                            of: stamp,
                            stamp: ack,
                        },
                    );
                }
            }
            Msg::Ack { stamp, .. } => {
                self.clock.observe(stamp.time);
                self.hear(from, stamp);
            }
            _ => return,
        }
        self.deliver_ready(ctx);
    }

    fn pending(&self) -> usize {
        self.queue.len()
    }
}

impl Lamport {
    fn hear(&mut self, from: NodeId, stamp: Stamp) {
        if let Some(heard) = self.heard.get_mut(&from) {
            *heard = (*heard).max(stamp);
        }
    }
}
