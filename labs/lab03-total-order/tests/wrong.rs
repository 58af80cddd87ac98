//! Deliberately wrong total orders, to prove the graded checks catch them (these are not
//! solutions: each breaks the protocol in one tempting way).

use std::collections::BTreeMap;

use dkvs::node::LamportClock;
use lab03_total_order::grading;
use lab03_total_order::{Entry, Msg, OrderCtx, TotalOrder};
use labkit::{NodeId, Stamp};

/// Lamport clocks that deliver the smallest entry as soon as *one* other node is past it,
/// instead of all of them: it does not wait for every acknowledgement.
struct Impatient {
    clock: LamportClock,
    queue: BTreeMap<Stamp, Entry>,
    heard: BTreeMap<NodeId, Stamp>,
    me: NodeId,
}

impl Impatient {
    fn deliver_ready(&mut self, ctx: &mut OrderCtx<'_>) {
        while let Some((&first, _)) = self.queue.first_key_value() {
            // The bug: `any` where the protocol needs `all`.
            if !self.heard.values().any(|&s| s >= first) {
                return;
            }
            let (_, entry) = self.queue.pop_first().expect("seen above");
            ctx.deliver(entry);
        }
    }
}

impl TotalOrder for Impatient {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        Impatient {
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
            let entry = entry.clone();
            ctx.send(node, Msg::Request { stamp, entry });
        }
    }

    fn on_message(&mut self, ctx: &mut OrderCtx<'_>, from: NodeId, msg: Msg) {
        let stamp = match msg {
            Msg::Request { stamp, entry } => {
                let now = self.clock.observe(stamp.time);
                self.queue.insert(stamp, entry);
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
                stamp
            }
            Msg::Ack { stamp, .. } => {
                self.clock.observe(stamp.time);
                stamp
            }
            _ => return,
        };
        if let Some(heard) = self.heard.get_mut(&from) {
            *heard = (*heard).max(stamp);
        }
        self.deliver_ready(ctx);
    }

    fn pending(&self) -> usize {
        self.queue.len()
    }
}

/// A sequencer whose nodes deliver their own writes at once, before the sequencer has
/// numbered them, and skip them when the numbered copy comes back.
struct SelfFirst {
    me: NodeId,
    sequencer: NodeId,
    last_seq: u64,
}

impl TotalOrder for SelfFirst {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        SelfFirst {
            me,
            sequencer: nodes[0],
            last_seq: 0,
        }
    }

    fn broadcast(&mut self, ctx: &mut OrderCtx<'_>, entry: Entry) {
        ctx.deliver(entry.clone());
        ctx.send(self.sequencer, Msg::Forward { entry });
    }

    fn on_message(&mut self, ctx: &mut OrderCtx<'_>, _from: NodeId, msg: Msg) {
        match msg {
            Msg::Forward { entry } if self.me == self.sequencer => {
                self.last_seq += 1;
                for node in ctx.nodes().to_vec() {
                    let seq = self.last_seq;
                    let entry = entry.clone();
                    ctx.send(node, Msg::Order { seq, entry });
                }
            }
            Msg::Order { entry, .. } if entry.origin != self.me => ctx.deliver(entry),
            _ => {}
        }
    }

    fn pending(&self) -> usize {
        0
    }
}

#[test]
fn a_lamport_order_that_does_not_wait_for_every_ack_is_caught_with_a_seed_and_a_diagram() {
    let failure = grading::one_order_under_delays::<Impatient>()
        .expect_err("delivering before every ack breaks the order");
    assert!(failure.seed.is_some(), "{failure}");
    assert!(
        failure.summary.contains("not sequential") || failure.summary.contains("disagree"),
        "{failure}"
    );
    assert!(
        failure.details.contains("n1") && failure.details.contains("request"),
        "the details draw the messages: {failure}"
    );
}

#[test]
fn a_sequencer_whose_nodes_deliver_their_own_writes_first_is_caught() {
    let failure = grading::one_order_under_delays::<SelfFirst>()
        .expect_err("delivering one's own writes early breaks the order");
    assert!(failure.seed.is_some(), "{failure}");
}

#[test]
fn the_impatient_order_fails_the_snapshot_of_two_writers() {
    let transcript = grading::scenario::<Impatient>("lamport-two-writers.txt").unwrap();
    let stored = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/snapshots/grade__lab03_lamport_flow_of_two_writers.snap"
    ))
    .unwrap();
    // The stored snapshot: a header between two `---` lines, then the transcript.
    let body = stored.splitn(3, "---\n").nth(2).unwrap();
    assert_ne!(transcript.trim_end(), body.trim_end());
}
