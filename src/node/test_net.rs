//! A tiny seeded network for the unit tests of the modes (`tests.rs`, `tests_lamport.rs`,
//! `tests_sequencer.rs`).
//!
//! [`Cluster`] holds N nodes with [`MemStorage`] disks (a step's writes are durable before its
//! outputs leave, as the runtime guarantees) and a bag of in-flight messages. A seeded xorshift
//! generator picks which message arrives next (so messages are reordered), and may drop or
//! duplicate it; ticks advance a virtual clock so retries fire. A node can be cut off, or the
//! links into it made [`Slow`] (then messages move in [`Cluster::round`]s). A crash drops a
//! node's memory between two steps and rebuilds it from its disk; what it had sent stays in
//! flight. No threads, no sleeps: a seed names a run, and the same seed gives the same trace.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::sim::Rng;

/// The retry interval of [`options`].
pub const RETRY_MS: u64 = 100;
/// The log capacity of [`options`].
pub const LOG_CAPACITY: usize = 256;
/// The two levels built on a total order (with either `tob`).
pub const KINDS: [ModeKind; 2] = [ModeKind::Sequential, ModeKind::Linearizable];

pub fn options() -> NodeOptions {
    NodeOptions {
        retry_interval_ms: RETRY_MS,
        max_pending: 64,
        log_capacity: LOG_CAPACITY,
    }
}

/// Seeds `0..n` for a randomised test; `DKVS_SEEDS=<n>` widens (or narrows) the range for a
/// long run.
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    let n = std::env::var("DKVS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    0..n
}

/// Names the failing run if the test panics while it is alive, so it can be replayed.
pub struct Replay(pub String);

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("failing run: {}", self.0);
        }
    }
}

#[derive(Debug, Clone)]
pub struct InFlight {
    pub from: NodeId,
    pub to: NodeId,
    pub message: Message,
}

/// A slow link into a node.
#[derive(Debug, Clone, Copy)]
pub struct Slow {
    /// Most messages delivered to the node per round.
    pub per_round: usize,
    /// Percent of those lost on the way, and of the node's own messages.
    pub drop_percent: u64,
    /// Most messages waiting for the node per sender; beyond it new ones are dropped.
    pub queue: usize,
}

/// N nodes, numbered from 1, their disks and the network between them.
pub struct Cluster {
    pub kind: ModeKind,
    pub tob: Tob,
    pub options: NodeOptions,
    pub ids: Vec<NodeId>,
    pub nodes: BTreeMap<NodeId, Box<dyn Mode + Send>>,
    pub disks: BTreeMap<NodeId, MemStorage>,
    pub net: Vec<InFlight>,
    pub rng: Rng,
    pub now_ms: u64,
    pub drop_percent: u64,
    pub dup_percent: u64,
    /// Nodes cut off: every message to or from them is lost.
    pub cut: BTreeSet<NodeId>,
    /// Nodes whose incoming links are slow (see [`Cluster::round`]).
    pub slow: BTreeMap<NodeId, Slow>,
    pub next_request: u64,
    pub requests: BTreeMap<RequestId, (NodeId, Request)>,
    pub replies: BTreeMap<RequestId, Response>,
    /// Requests whose node crashed before answering: they are never answered.
    pub lost: BTreeSet<RequestId>,
    /// Per node, the operations it has delivered (deliveries are durable) ...
    pub delivered_ids: BTreeMap<NodeId, BTreeSet<MsgId>>,
    /// ... those it had delivered before its last start ...
    pub before_start: BTreeMap<NodeId, BTreeSet<MsgId>>,
    /// ... and those it holds in memory: sent, received (not as a duplicate of one delivered
    /// before its start) or delivered since its last start.
    pub holds: BTreeMap<NodeId, BTreeSet<MsgId>>,
    /// The operation each ordered message id stands for, as seen on the network.
    pub ops: BTreeMap<MsgId, Operation>,
    /// Which operation answered which request (from the trace event before each reply).
    pub reply_ids: BTreeMap<RequestId, MsgId>,
    /// Every trace event, in the order the steps emitted them.
    pub trace: Vec<TraceEvent>,
}

impl Cluster {
    pub fn new(kind: ModeKind, tob: Tob, n: u32, seed: u64) -> Cluster {
        Cluster::with_options(kind, tob, n, seed, options())
    }

    pub fn with_options(
        kind: ModeKind,
        tob: Tob,
        n: u32,
        seed: u64,
        options: NodeOptions,
    ) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut cluster = Cluster {
            kind,
            tob,
            options,
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            disks: ids.iter().map(|&id| (id, MemStorage::new())).collect(),
            net: Vec::new(),
            rng: Rng::new(seed),
            now_ms: 0,
            drop_percent: 0,
            dup_percent: 0,
            cut: BTreeSet::new(),
            slow: BTreeMap::new(),
            next_request: 0,
            requests: BTreeMap::new(),
            replies: BTreeMap::new(),
            lost: BTreeSet::new(),
            delivered_ids: BTreeMap::new(),
            before_start: BTreeMap::new(),
            holds: BTreeMap::new(),
            ops: BTreeMap::new(),
            reply_ids: BTreeMap::new(),
            trace: Vec::new(),
        };
        for id in ids {
            cluster.build(id);
        }
        cluster
    }

    /// (Re)builds node `id` from its disk, as a driver does at start-up.
    fn build(&mut self, id: NodeId) {
        let disk = self.disks.get_mut(&id).expect("every node has a disk");
        let node = new_mode(
            self.kind,
            self.tob,
            id,
            self.ids.clone(),
            disk,
            self.options,
        )
        .expect("MemStorage does not fail");
        self.nodes.insert(id, node);
    }

    pub fn node(&self, id: NodeId) -> &(dyn Mode + Send) {
        self.nodes[&id].as_ref()
    }

    pub fn input(&mut self, id: NodeId, input: Input) {
        let mut out = Vec::new();
        let node = self.nodes.get_mut(&id).expect("node exists");
        let disk = self.disks.get_mut(&id).expect("disk exists");
        node.step(input, disk, &mut out)
            .expect("MemStorage does not fail");
        let mut last_reply_id = None;
        for output in out {
            match output {
                Output::Send { to, message } => {
                    match &message {
                        Message::Forward { id, op, .. }
                        | Message::Ordered { id, op, .. }
                        | Message::Broadcast { id, op, .. } => {
                            self.ops.insert(*id, op.clone());
                        }
                        _ => {}
                    }
                    self.net.push(InFlight {
                        from: id,
                        to,
                        message,
                    });
                }
                Output::Reply {
                    id: request,
                    response,
                } => {
                    if let Some(msg_id) = last_reply_id.take() {
                        self.reply_ids.insert(request, msg_id);
                    }
                    let before = self.replies.insert(request, response);
                    assert!(before.is_none(), "request {request:?} answered twice");
                }
                Output::Trace(event) => {
                    if event.kind == TraceKind::ClientReply {
                        last_reply_id = event.msg_id;
                    }
                    self.track(&event);
                    self.trace.push(event);
                }
            }
        }
    }

    /// Keeps `delivered_ids`, `before_start` and `holds` up to date.
    fn track(&mut self, e: &TraceEvent) {
        let Some(id) = e.msg_id else { return };
        let carries = e.detail.contains(": ordered ") || e.detail.contains(": broadcast ");
        let held = match e.kind {
            TraceKind::Deliver => {
                self.delivered_ids.entry(e.node).or_default().insert(id);
                true
            }
            TraceKind::Send => carries,
            TraceKind::Receive => {
                let old = self
                    .before_start
                    .get(&e.node)
                    .is_some_and(|d| d.contains(&id));
                carries && !e.detail.contains("(ignored") && !old
            }
            _ => false,
        };
        if held {
            self.holds.entry(e.node).or_default().insert(id);
        }
    }

    fn request(&mut self, id: NodeId, request: Request) -> RequestId {
        self.next_request += 1;
        let rid = RequestId(self.next_request);
        self.requests.insert(rid, (id, request.clone()));
        self.input(id, Input::Client { id: rid, request });
        rid
    }

    pub fn set(&mut self, id: NodeId, key: &str, value: &str) -> RequestId {
        self.request(
            id,
            Request::Set {
                key: key.into(),
                value: value.into(),
            },
        )
    }

    pub fn get(&mut self, id: NodeId, key: &str) -> RequestId {
        self.request(id, Request::Get { key: key.into() })
    }

    pub fn del(&mut self, id: NodeId, key: &str) -> RequestId {
        self.request(id, Request::Del { key: key.into() })
    }

    pub fn reply(&self, rid: RequestId) -> Option<&Response> {
        self.replies.get(&rid)
    }

    /// A random request on a random node of `on`: keys from a small set, so writes collide.
    pub fn random_request(&mut self, on: &[NodeId]) {
        let id = on[self.rng.index(on.len())];
        let key = ["a", "b", "c", "d"][self.rng.index(4)];
        match self.rng.index(100) {
            0..50 => {
                let value = format!("v{}", self.next_request + 1);
                self.set(id, key, &value);
            }
            50..65 => {
                self.del(id, key);
            }
            _ => {
                self.get(id, key);
            }
        }
    }

    /// Delivers one random in-flight message, subject to the faults. False if none is left.
    pub fn deliver_one(&mut self) -> bool {
        if self.net.is_empty() {
            return false;
        }
        let i = self.rng.index(self.net.len());
        let m = self.net.swap_remove(i);
        if self.cut.contains(&m.from) || self.cut.contains(&m.to) {
            return true;
        }
        if self.rng.percent(self.drop_percent) {
            return true;
        }
        if self.rng.percent(self.dup_percent) {
            self.net.push(m.clone());
        }
        self.deliver(m);
        true
    }

    pub fn deliver(&mut self, m: InFlight) {
        let input = Input::Peer {
            from: m.from,
            message: m.message,
        };
        self.input(m.to, input);
    }

    /// Takes the first in-flight message from `from` to `to` of `kind` out of the network.
    pub fn take(&mut self, from: NodeId, to: NodeId, kind: &str) -> InFlight {
        let i = self
            .net
            .iter()
            .position(|m| m.from == from && m.to == to && m.message.kind() == kind)
            .unwrap_or_else(|| panic!("no {kind} from n{from} to n{to} in {:?}", self.net));
        self.net.remove(i)
    }

    /// Delivers every in-flight message of `kind` (and nothing else) in order.
    pub fn deliver_all(&mut self, kind: &str) {
        while let Some(i) = self.net.iter().position(|m| m.message.kind() == kind) {
            let m = self.net.remove(i);
            self.deliver(m);
        }
    }

    /// Delivers the messages in flight at the start of the round, in a random order, subject
    /// to cuts and slow links; what the deliveries send waits for the next round.
    pub fn round(&mut self) {
        let mut batch = std::mem::take(&mut self.net);
        let mut kept = Vec::new();
        let mut taken: BTreeMap<NodeId, usize> = BTreeMap::new();
        while !batch.is_empty() {
            let i = self.rng.index(batch.len());
            let m = batch.swap_remove(i);
            if self.cut.contains(&m.from) || self.cut.contains(&m.to) {
                continue;
            }
            if let Some(slow) = self.slow.get(&m.from)
                && self.rng.percent(slow.drop_percent)
            {
                continue;
            }
            if let Some(slow) = self.slow.get(&m.to).copied() {
                let n = taken.entry(m.to).or_default();
                if *n >= slow.per_round {
                    kept.push(m);
                    continue;
                }
                *n += 1;
                if self.rng.percent(slow.drop_percent) {
                    continue;
                }
            }
            self.deliver(m);
        }
        // What waited comes before what was sent this round; a full queue drops new messages.
        kept.append(&mut self.net);
        let mut queued: BTreeMap<(NodeId, NodeId), usize> = BTreeMap::new();
        let slow = &self.slow;
        kept.retain(|m| {
            let Some(s) = slow.get(&m.to) else {
                return true;
            };
            let n = queued.entry((m.from, m.to)).or_default();
            *n += 1;
            *n <= s.queue
        });
        self.net = kept;
    }

    pub fn tick(&mut self, advance_ms: u64) {
        self.now_ms += advance_ms;
        for id in self.ids.clone() {
            let now_ms = self.now_ms;
            self.input(id, Input::Tick { now_ms });
        }
    }

    pub fn faults(&mut self, drop_percent: u64, dup_percent: u64) {
        self.drop_percent = drop_percent;
        self.dup_percent = dup_percent;
    }

    /// Heals the network and runs until nothing is left to do; panics if that never happens.
    pub fn settle(&mut self) {
        self.settle_by(|c| while c.deliver_one() {});
    }

    /// Like [`Cluster::settle`], moving the messages in [`Cluster::round`]s.
    pub fn settle_in_rounds(&mut self) {
        self.settle_by(|c| {
            while !c.net.is_empty() {
                c.round();
            }
        });
    }

    /// Heals the network (no faults, cuts or slow links), then empties it with `drain` and
    /// ticks until nothing is left to do; panics if that never happens.
    fn settle_by(&mut self, drain: fn(&mut Cluster)) {
        self.faults(0, 0);
        self.cut.clear();
        self.slow.clear();
        for _ in 0..1000 {
            drain(self);
            self.tick(RETRY_MS);
            let quiet = self.nodes.values().all(|n| n.pending() == 0 && n.ready());
            if self.net.is_empty() && quiet {
                return;
            }
        }
        let state: Vec<_> = self
            .nodes
            .values()
            .map(|n| (n.id(), n.pending(), n.ready()))
            .collect();
        panic!("the cluster never settled: (node, pending, ready) = {state:?}");
    }

    /// Crashes the nodes `ids` at the same moment and starts them again from their disks; the
    /// drivers then reconnect.
    pub fn crash(&mut self, ids: &[NodeId]) {
        for (&rid, (node, _)) in &self.requests {
            if ids.contains(node) && !self.replies.contains_key(&rid) {
                self.lost.insert(rid);
            }
        }
        for &id in ids {
            self.build(id);
            let delivered = self.delivered_ids.get(&id).cloned().unwrap_or_default();
            self.before_start.insert(id, delivered);
            self.holds.remove(&id);
        }
        for &id in ids {
            for peer in self.ids.clone() {
                if peer != id {
                    self.input(id, Input::PeerUp { peer });
                    self.input(peer, Input::PeerUp { peer: id });
                }
            }
        }
    }

    /// Crashes node `id` and starts it again from its disk; the driver then reconnects.
    pub fn restart(&mut self, id: NodeId) {
        self.crash(&[id]);
    }

    pub fn snapshots(&self) -> Vec<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.disks.values().map(MemStorage::snapshot).collect()
    }

    /// The operations node `id` delivered, in order.
    pub fn delivered(&self, id: NodeId) -> Vec<MsgId> {
        self.trace
            .iter()
            .filter(|e| e.node == id && e.kind == TraceKind::Deliver)
            .filter_map(|e| e.msg_id)
            .collect()
    }

    pub fn assert_converged(&self) {
        let snapshots = self.snapshots();
        for (i, s) in snapshots.iter().enumerate() {
            assert_eq!(s, &snapshots[0], "node {} differs from node 1", i + 1);
        }
    }

    /// Every request was answered, except those lost with a crash.
    pub fn assert_all_answered(&self) {
        for rid in self.requests.keys() {
            assert!(
                self.replies.contains_key(rid) || self.lost.contains(rid),
                "request {rid:?} {:?} never answered",
                self.requests[rid]
            );
        }
    }

    /// The checks every ordered run must pass once settled: the same stores, every request
    /// answered unless its node crashed, one order everywhere, each operation delivered once,
    /// every acknowledged operation in the order, and every reply what the order says.
    pub fn assert_total_order(&self) {
        self.assert_converged();
        self.assert_all_answered();
        let order = self.delivered(1);
        for &id in &self.ids {
            assert_eq!(
                self.delivered(id),
                order,
                "node {id} delivered another order"
            );
        }
        let unique: BTreeSet<_> = order.iter().collect();
        assert_eq!(
            unique.len(),
            order.len(),
            "an operation was delivered twice"
        );
        for (rid, id) in &self.reply_ids {
            assert!(
                unique.contains(id),
                "request {rid:?} was answered by {id}, which is not in the order"
            );
        }

        // Replaying the order on a plain map gives every ordered reply: each operation took
        // effect exactly at its place.
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let answered: BTreeMap<MsgId, &Response> = self
            .reply_ids
            .iter()
            .map(|(rid, id)| (*id, &self.replies[rid]))
            .collect();
        for id in &order {
            let expected = match &self.ops[id] {
                Operation::Write(Write {
                    key,
                    value: Some(v),
                }) => {
                    model.insert(key.clone(), v.clone());
                    Response::Ok
                }
                Operation::Write(Write { key, value: None }) => match model.remove(key) {
                    Some(_) => Response::Ok,
                    None => Response::NotFound,
                },
                Operation::Read { key } => match model.get(key) {
                    Some(v) => Response::Value(v.clone()),
                    None => Response::NotFound,
                },
            };
            if let Some(&actual) = answered.get(id) {
                assert_eq!(
                    actual, &expected,
                    "the reply to {id} does not match its place"
                );
            }
        }
        assert_eq!(&model, &self.snapshots()[0], "replay and stores agree");
    }
}
