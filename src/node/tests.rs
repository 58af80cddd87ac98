//! Tests of the replication modes on a tiny deterministic network.
//!
//! [`Cluster`] holds N nodes with [`MemStorage`] disks and a bag of in-flight messages. A seeded
//! xorshift generator picks which message arrives next (so messages are reordered), and may drop
//! or duplicate it; ticks advance a virtual clock so retries fire. No threads, no sleeps: a
//! seed names a run, and the same seed gives the same trace.
//!
//! Scenario tests drive messages one by one with [`Cluster::take`] to show one behaviour each;
//! property tests run random workloads over many seeds and check what must always hold.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::sim::Rng;

#[derive(Debug, Clone)]
struct InFlight {
    from: NodeId,
    to: NodeId,
    message: Message,
}

struct Cluster {
    kind: ModeKind,
    tob: Tob,
    options: NodeOptions,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Box<dyn Mode + Send>>,
    disks: BTreeMap<NodeId, MemStorage>,
    net: Vec<InFlight>,
    rng: Rng,
    now_ms: u64,
    drop_percent: u64,
    dup_percent: u64,
    /// Nodes cut off: every message to or from them is lost.
    cut: BTreeSet<NodeId>,
    next_request: u64,
    requests: BTreeMap<RequestId, (NodeId, Request)>,
    replies: BTreeMap<RequestId, Response>,
    /// Requests whose node restarted before answering: they are never answered.
    lost: BTreeSet<RequestId>,
    /// Per node, the operations it has delivered (deliveries are durable) ...
    delivered_ids: BTreeMap<NodeId, BTreeSet<MsgId>>,
    /// ... those it had delivered before its last start ...
    before_start: BTreeMap<NodeId, BTreeSet<MsgId>>,
    /// ... and those it holds in memory: sent, received (not as a duplicate of one delivered
    /// before its start) or delivered since its last start.
    holds: BTreeMap<NodeId, BTreeSet<MsgId>>,
    /// The operation each ordered message id stands for, as seen on the network.
    ops: BTreeMap<MsgId, Operation>,
    /// Which operation answered which request (from the trace event before each reply).
    reply_ids: BTreeMap<RequestId, MsgId>,
    trace: Vec<TraceEvent>,
}

const RETRY_MS: u64 = 100;

fn options() -> NodeOptions {
    NodeOptions {
        retry_interval_ms: RETRY_MS,
        max_pending: 64,
        log_capacity: 256,
    }
}

impl Cluster {
    fn new(kind: ModeKind, tob: Tob, n: u32, seed: u64) -> Cluster {
        Cluster::with_options(kind, tob, n, seed, options())
    }

    fn with_options(kind: ModeKind, tob: Tob, n: u32, seed: u64, options: NodeOptions) -> Cluster {
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

    fn node(&self, id: NodeId) -> &(dyn Mode + Send) {
        self.nodes[&id].as_ref()
    }

    fn input(&mut self, id: NodeId, input: Input) {
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

    fn set(&mut self, id: NodeId, key: &str, value: &str) -> RequestId {
        self.request(
            id,
            Request::Set {
                key: key.into(),
                value: value.into(),
            },
        )
    }

    fn get(&mut self, id: NodeId, key: &str) -> RequestId {
        self.request(id, Request::Get { key: key.into() })
    }

    fn del(&mut self, id: NodeId, key: &str) -> RequestId {
        self.request(id, Request::Del { key: key.into() })
    }

    fn reply(&self, rid: RequestId) -> Option<&Response> {
        self.replies.get(&rid)
    }

    /// Delivers one random in-flight message, subject to the faults. False if none is left.
    fn deliver_one(&mut self) -> bool {
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

    fn deliver(&mut self, m: InFlight) {
        let input = Input::Peer {
            from: m.from,
            message: m.message,
        };
        self.input(m.to, input);
    }

    /// Takes the first in-flight message from `from` to `to` of `kind` out of the network.
    fn take(&mut self, from: NodeId, to: NodeId, kind: &str) -> InFlight {
        let i = self
            .net
            .iter()
            .position(|m| m.from == from && m.to == to && m.message.kind() == kind)
            .unwrap_or_else(|| panic!("no {kind} from n{from} to n{to} in {:?}", self.net));
        self.net.remove(i)
    }

    /// Delivers every in-flight message of `kind` (and nothing else) in order.
    fn deliver_all(&mut self, kind: &str) {
        while let Some(i) = self.net.iter().position(|m| m.message.kind() == kind) {
            let m = self.net.remove(i);
            self.deliver(m);
        }
    }

    fn tick(&mut self, advance_ms: u64) {
        self.now_ms += advance_ms;
        for id in self.ids.clone() {
            self.input(
                id,
                Input::Tick {
                    now_ms: self.now_ms,
                },
            );
        }
    }

    /// A random request on a random node: keys from a small set, so writes collide.
    fn random_request(&mut self, on: &[NodeId]) {
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

    /// `steps` random events: requests on nodes `on`, deliveries, ticks.
    fn run(&mut self, steps: usize, on: &[NodeId]) {
        for _ in 0..steps {
            match self.rng.index(100) {
                0..20 => self.random_request(on),
                20..90 => {
                    self.deliver_one();
                }
                _ => self.tick(RETRY_MS / 2),
            }
        }
    }

    /// Like [`Cluster::run`], and now and then a node is cut off, the cut heals, or a node
    /// crashes and restarts (just outside its window, see [`Cluster::window_open`]).
    fn run_chaos(&mut self, steps: usize) {
        let all = self.ids.clone();
        for _ in 0..steps {
            match self.rng.index(1000) {
                0..180 => self.random_request(&all),
                180..850 => {
                    self.deliver_one();
                }
                850..970 => self.tick(RETRY_MS / 2),
                970..990 => {
                    if self.cut.is_empty() {
                        let victim = all[self.rng.index(all.len())];
                        self.cut.insert(victim);
                    } else {
                        self.cut.clear();
                        for &id in &all {
                            for &peer in &all {
                                if id != peer {
                                    self.input(id, Input::PeerUp { peer });
                                }
                            }
                        }
                    }
                }
                _ => {
                    let victim = all[self.rng.index(all.len())];
                    self.close_window(victim);
                    self.restart(victim);
                }
            }
        }
    }

    fn faults(&mut self, drop_percent: u64, dup_percent: u64) {
        self.drop_percent = drop_percent;
        self.dup_percent = dup_percent;
    }

    /// Heals the network and runs until nothing is left to do; panics if that never happens.
    fn settle(&mut self) {
        self.faults(0, 0);
        self.cut.clear();
        for _ in 0..1000 {
            while self.deliver_one() {}
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

    /// Crashes node `id` and starts it again from its disk; the driver then reconnects.
    fn restart(&mut self, id: NodeId) {
        for (&rid, (node, _)) in &self.requests {
            if *node == id && !self.replies.contains_key(&rid) {
                self.lost.insert(rid);
            }
        }
        self.build(id);
        let delivered = self.delivered_ids.get(&id).cloned().unwrap_or_default();
        self.before_start.insert(id, delivered);
        self.holds.remove(&id);
        for peer in self.ids.clone() {
            if peer != id {
                self.input(id, Input::PeerUp { peer });
                self.input(peer, Input::PeerUp { peer: id });
            }
        }
    }

    /// Whether a crash of `victim` now would lose an operation: one it holds in memory that
    /// some node has not delivered yet and no other running node holds. The ordered modes do
    /// not survive that (it blocks them for good, see the tests below and the module docs);
    /// in eventual mode, the victim's unacknowledged updates are what would be lost.
    fn window_open(&self, victim: NodeId) -> bool {
        if self.kind == ModeKind::Eventual {
            return self.node(victim).pending() > 0;
        }
        let (delivered, holds) = (&self.delivered_ids, &self.holds);
        let undelivered = |id: &MsgId| {
            self.ids
                .iter()
                .any(|n| !delivered.get(n).is_some_and(|d| d.contains(id)))
        };
        let elsewhere = |id: &MsgId| holds.iter().any(|(&n, h)| n != victim && h.contains(id));
        holds
            .get(&victim)
            .is_some_and(|h| h.iter().any(|id| undelivered(id) && !elsewhere(id)))
    }

    /// Delivers reliably, with every node reachable, until the window of `victim` is closed.
    fn close_window(&mut self, victim: NodeId) {
        let faults = (self.drop_percent, self.dup_percent);
        self.faults(0, 0);
        self.cut.clear();
        while self.window_open(victim) {
            if !self.deliver_one() {
                self.tick(RETRY_MS);
            }
        }
        self.faults(faults.0, faults.1);
    }

    fn snapshots(&self) -> Vec<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.disks.values().map(MemStorage::snapshot).collect()
    }

    fn assert_converged(&self) {
        let snapshots = self.snapshots();
        for (i, s) in snapshots.iter().enumerate() {
            assert_eq!(s, &snapshots[0], "node {} differs from node 1", i + 1);
        }
    }

    /// The operations node `id` delivered, in order.
    fn delivered(&self, id: NodeId) -> Vec<MsgId> {
        self.trace
            .iter()
            .filter(|e| e.node == id && e.kind == TraceKind::Deliver)
            .filter_map(|e| e.msg_id)
            .collect()
    }

    /// Every request was answered, except those lost with a restart.
    fn assert_all_answered(&self) {
        for rid in self.requests.keys() {
            assert!(
                self.replies.contains_key(rid) || self.lost.contains(rid),
                "request {rid:?} {:?} never answered",
                self.requests[rid]
            );
        }
    }

    /// The checks every ordered run must pass once settled.
    fn assert_total_order(&self) {
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
        let ids: BTreeSet<_> = order.iter().collect();
        assert_eq!(ids.len(), order.len(), "an operation was delivered twice");

        // An origin answers only once it has delivered the operation itself.
        let mut seen = BTreeSet::new();
        for e in &self.trace {
            match (e.kind, e.msg_id) {
                (TraceKind::Deliver, Some(id)) => {
                    seen.insert((e.node, id));
                }
                (TraceKind::ClientReply, Some(id)) => {
                    assert!(
                        seen.contains(&(e.node, id)),
                        "{id} answered before delivery"
                    )
                }
                _ => {}
            }
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

/// Seeds `0..n` for a randomised test; `DKVS_SEEDS=<n>` widens (or narrows) the range for a
/// long run.
fn seeds(default: u64) -> std::ops::Range<u64> {
    let n = std::env::var("DKVS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    0..n
}

/// Names the failing run if the test panics while it is alive, so it can be replayed.
struct Replay(String);

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("failing run: {}", self.0);
        }
    }
}

const ORDERED: [(ModeKind, Tob); 4] = [
    (ModeKind::Sequential, Tob::Sequencer),
    (ModeKind::Linearizable, Tob::Sequencer),
    (ModeKind::Sequential, Tob::Lamport),
    (ModeKind::Linearizable, Tob::Lamport),
];

// ---------------------------------------------------------------------------------------------
// Eventual

#[test]
fn eventual_replicas_converge_despite_loss_duplication_and_reordering() {
    for seed in seeds(40) {
        let _replay = Replay(format!("eventual seed {seed}"));
        let mut c = Cluster::new(ModeKind::Eventual, Tob::Sequencer, 3, seed);
        c.faults(20, 10);
        c.run(400, &[1, 2, 3]);
        c.settle();
        c.assert_converged();
        c.assert_all_answered();
        // Not just the same values: the same winning stamps, tombstones included.
        let versions: Vec<_> = c.disks.values().map(MemStorage::versions).collect();
        assert!(versions.iter().all(|v| *v == versions[0]), "seed {seed}");
    }
}

#[test]
fn eventual_write_is_answered_at_once_and_read_locally() {
    let mut c = Cluster::new(ModeKind::Eventual, Tob::Sequencer, 3, 1);
    let w = c.set(1, "k", "v");
    // Answered before any message moved; the update waits in the network.
    assert_eq!(c.reply(w), Some(&Response::Ok));
    let here = c.get(1, "k");
    let there = c.get(2, "k");
    assert_eq!(c.reply(here), Some(&Response::Value(b"v".to_vec())));
    // Node 2 has not heard yet: a stale read, which eventual consistency allows.
    assert_eq!(c.reply(there), Some(&Response::NotFound));
    c.settle();
    let there = c.get(2, "k");
    assert_eq!(c.reply(there), Some(&Response::Value(b"v".to_vec())));
}

#[test]
fn eventual_concurrent_writes_tie_break_by_node_id() {
    let mut c = Cluster::new(ModeKind::Eventual, Tob::Sequencer, 2, 1);
    // Both clocks are at 0: both writes get time 1, and the stamps 1:n1 and 1:n2 tie on time.
    c.set(1, "k", "from-1");
    c.set(2, "k", "from-2");
    c.settle();
    c.assert_converged();
    assert_eq!(c.snapshots()[0][&b"k".to_vec()], b"from-2");
}

#[test]
fn eventual_a_delete_wins_or_loses_by_its_stamp() {
    // (what happens, expected value of "k" on both nodes afterwards)
    type Scenario = fn(&mut Cluster);
    let cases: [(&str, Scenario, Option<&str>); 3] = [
        (
            // Concurrent: the delete on node 2 ties on time with the set on node 1 and wins
            // on node id.
            "concurrent delete with the larger stamp",
            |c| {
                c.set(1, "k", "v");
                c.del(2, "k");
            },
            None,
        ),
        (
            // Node 1 writes after it has seen the delete: its stamp is larger, the key is back.
            "a write after the delete",
            |c| {
                c.del(2, "k");
                c.deliver_all("update");
                c.set(1, "k", "again");
            },
            Some("again"),
        ),
        (
            // An old write arriving after a newer delete does not resurrect the key.
            "an old write arriving late",
            |c| {
                c.set(1, "k", "old");
                let late = c.take(1, 2, "update");
                c.set(2, "k", "newer");
                c.del(2, "k");
                c.deliver(late);
            },
            None,
        ),
    ];
    for (what, scenario, expected) in cases {
        let mut c = Cluster::new(ModeKind::Eventual, Tob::Sequencer, 2, 7);
        scenario(&mut c);
        c.settle();
        c.assert_converged();
        let value = c.snapshots()[0].get(b"k".as_slice()).cloned();
        assert_eq!(value, expected.map(|v| v.as_bytes().to_vec()), "{what}");
    }
}

#[test]
fn eventual_full_outbox_refuses_writes_of_new_keys() {
    let opts = NodeOptions {
        max_pending: 3,
        ..options()
    };
    let mut c = Cluster::with_options(ModeKind::Eventual, Tob::Sequencer, 3, 1, opts);
    c.cut.insert(3);
    for key in ["a", "b", "c"] {
        let w = c.set(1, key, "v");
        assert_eq!(c.reply(w), Some(&Response::Ok));
    }
    // Node 2 acknowledges, node 3 is away: its outbox holds a, b, c.
    for _ in 0..5 {
        while c.deliver_one() {}
        c.tick(RETRY_MS);
    }
    assert_eq!(c.node(1).pending(), 3);
    let refused = c.set(1, "d", "v");
    match c.reply(refused) {
        Some(Response::Err(e)) => assert!(e.starts_with("busy: peer n3"), "{e}"),
        other => panic!("expected busy, got {other:?}"),
    }
    // Nothing was applied for the refused write.
    assert!(!c.disks[&1].snapshot().contains_key(b"d".as_slice()));
    // A key already waiting only replaces its entry: still accepted.
    let replaced = c.set(1, "a", "newer");
    assert_eq!(c.reply(replaced), Some(&Response::Ok));
    c.settle();
    c.assert_converged();
    assert_eq!(c.snapshots()[2][&b"a".to_vec()], b"newer");
}

#[test]
fn eventual_restart_recovers_the_clock_and_catches_up() {
    for seed in seeds(20) {
        let _replay = Replay(format!("eventual seed {seed}"));
        let mut c = Cluster::new(ModeKind::Eventual, Tob::Sequencer, 3, seed);
        c.faults(20, 10);
        // Node 3 takes no writes before its crash (its outboxes would be lost with it, see
        // the module docs); updates *to* it are resent by their origins.
        c.run(200, &[1, 2]);
        let clock_before = c.node(3).clock();
        c.restart(3);
        assert!(
            c.node(3).clock() >= clock_before,
            "seed {seed}: the clock went back"
        );
        c.run(200, &[1, 2, 3]);
        c.settle();
        c.assert_converged();
    }
}

// ---------------------------------------------------------------------------------------------
// Total order (both implementations)

#[test]
fn ordered_modes_deliver_the_same_order_everywhere() {
    for (kind, tob) in ORDERED {
        for seed in seeds(25) {
            let _replay = Replay(format!("{kind}/{tob} seed {seed}"));
            let mut c = Cluster::new(kind, tob, 3, seed);
            c.faults(15, 10);
            c.run(400, &[1, 2, 3]);
            c.settle();
            c.assert_total_order();
            assert!(
                !c.delivered(1).is_empty(),
                "{kind}/{tob} seed {seed}: nothing ordered"
            );
        }
    }
}

#[test]
fn ordered_modes_work_on_a_single_node() {
    for (kind, tob) in ORDERED {
        let mut c = Cluster::new(kind, tob, 1, 0);
        let w = c.set(1, "k", "v");
        let r = c.get(1, "k");
        let d = c.del(1, "nothing");
        assert_eq!(c.reply(w), Some(&Response::Ok), "{kind}/{tob}");
        assert_eq!(c.reply(r), Some(&Response::Value(b"v".to_vec())));
        assert_eq!(c.reply(d), Some(&Response::NotFound));
    }
}

#[test]
fn ordered_modes_survive_a_restart_mid_run() {
    // Restart each node in turn: a follower, and (for the sequencer) the sequencer itself.
    for (kind, tob) in ORDERED {
        for victim in [3, 1] {
            for seed in seeds(10) {
                let _replay = Replay(format!("{kind}/{tob} restart n{victim} seed {seed}"));
                let mut c = Cluster::new(kind, tob, 3, seed);
                c.faults(15, 10);
                c.run(300, &[1, 2, 3]);
                // A crash while the victim alone holds an operation some node still needs
                // blocks progress for good (see the tests below); crash just outside that
                // window.
                c.close_window(victim);
                c.restart(victim);
                c.run(300, &[1, 2, 3]);
                c.settle();
                assert!(c.node(victim).ready(), "{kind}/{tob} seed {seed}");
                c.assert_total_order();
            }
        }
    }
}

#[test]
fn every_mode_survives_partitions_and_restarts() {
    let modes = ORDERED
        .into_iter()
        .chain([(ModeKind::Eventual, Tob::Sequencer)]);
    for (kind, tob) in modes {
        for seed in seeds(12) {
            let _replay = Replay(format!("{kind}/{tob} chaos seed {seed}"));
            let mut c = Cluster::new(kind, tob, 4, seed);
            c.faults(10, 5);
            c.run_chaos(1500);
            c.settle();
            if kind == ModeKind::Eventual {
                c.assert_converged();
                c.assert_all_answered();
            } else {
                c.assert_total_order();
            }
        }
    }
}

#[test]
fn same_seed_same_trace() {
    for (kind, tob) in ORDERED
        .into_iter()
        .chain([(ModeKind::Eventual, Tob::Lamport)])
    {
        let run = |seed| {
            let mut c = Cluster::new(kind, tob, 3, seed);
            c.faults(15, 10);
            c.run(300, &[1, 2, 3]);
            c.restart(2);
            c.run(100, &[1, 2, 3]);
            c.settle();
            c.trace
        };
        let first = run(42);
        assert_eq!(first, run(42), "{kind}/{tob}");
        assert_ne!(first, run(43), "{kind}/{tob}: the seed should matter");
        // A trace streams as JSON lines.
        let line = serde_json::to_string(&first[0]).expect("trace events serialise");
        assert_eq!(
            serde_json::from_str::<TraceEvent>(&line).ok().as_ref(),
            Some(&first[0])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sequencer

#[test]
fn sequencer_origin_replies_only_after_delivering() {
    let mut c = Cluster::new(ModeKind::Sequential, Tob::Sequencer, 3, 1);
    c.settle(); // followers hear the sequencer's position and become ready
    let w = c.set(2, "k", "v");
    assert_eq!(c.reply(w), None, "not before the sequencer has numbered it");
    let forward = c.take(2, 1, "forward");
    c.deliver(forward);
    assert_eq!(
        c.reply(w),
        None,
        "not when the sequencer has numbered it either"
    );
    // Node 3 delivers first; node 2's client still waits for node 2 itself.
    let to_3 = c.take(1, 3, "ordered");
    c.deliver(to_3);
    assert_eq!(c.reply(w), None);
    let to_2 = c.take(1, 2, "ordered");
    c.deliver(to_2);
    assert_eq!(c.reply(w), Some(&Response::Ok));
    // ... and a read right after it, on node 2, sees it.
    let r = c.get(2, "k");
    assert_eq!(c.reply(r), Some(&Response::Value(b"v".to_vec())));
}

#[test]
fn sequencer_numbers_a_retried_forward_once() {
    let mut c = Cluster::new(ModeKind::Sequential, Tob::Sequencer, 2, 1);
    c.settle();
    let w = c.set(2, "k", "v");
    let forward = c.take(2, 1, "forward");
    c.deliver(forward.clone());
    let _lost = c.take(1, 2, "ordered");
    // The retry (after the Ordered was lost) is recognised and answered with the same number.
    c.deliver(forward);
    c.settle();
    assert_eq!(c.reply(w), Some(&Response::Ok));
    assert_eq!(c.delivered(1).len(), 1);
    c.assert_total_order();
}

#[test]
fn sequencer_keeps_a_nodes_operations_in_client_order() {
    // A pipelining client sends five writes without waiting; their forwards reach the
    // sequencer in reverse order. Each names the one it comes after, so the sequencer parks
    // them and numbers them in the order the client sent them.
    let mut c = Cluster::new(ModeKind::Sequential, Tob::Sequencer, 2, 1);
    c.settle();
    for i in 0..5 {
        c.set(2, "k", &i.to_string());
    }
    let mut forwards: Vec<_> = (0..5).map(|_| c.take(2, 1, "forward")).collect();
    while let Some(forward) = forwards.pop() {
        c.deliver(forward);
    }
    c.settle();
    let order: Vec<u64> = c.delivered(1).iter().map(|id| id.seq).collect();
    assert!(order.is_sorted(), "numbered out of client order: {order:?}");
    assert_eq!(c.snapshots()[1][&b"k".to_vec()], b"4");
    c.assert_total_order();
}

#[test]
fn linearizable_read_is_answered_at_its_place_in_the_order() {
    // Sequencer: node 3's read is numbered after node 2's write; it arrives at node 3 first,
    // waits in the hold-back queue for the write, and then sees it.
    let mut c = Cluster::new(ModeKind::Linearizable, Tob::Sequencer, 3, 1);
    c.settle();
    let write = c.set(2, "x", "1");
    let read = c.get(3, "x");
    assert_eq!(
        c.reply(read),
        None,
        "a linearizable read waits for its place"
    );
    let fw = c.take(2, 1, "forward");
    c.deliver(fw);
    let fr = c.take(3, 1, "forward");
    c.deliver(fr);
    let ordered_write = c.take(1, 3, "ordered");
    let ordered_read = c.take(1, 3, "ordered");
    c.deliver(ordered_read);
    assert_eq!(c.reply(read), None, "held back behind the write");
    c.deliver(ordered_write);
    assert_eq!(c.reply(read), Some(&Response::Value(b"1".to_vec())));
    c.settle();
    assert_eq!(c.reply(write), Some(&Response::Ok));

    // In sequential mode the same read is local and may be stale.
    let mut c = Cluster::new(ModeKind::Sequential, Tob::Sequencer, 3, 1);
    c.settle();
    c.set(2, "x", "1");
    let read = c.get(3, "x");
    assert_eq!(c.reply(read), Some(&Response::NotFound));

    // Lamport: the read is stamped after the write node 3 has already queued, so it is
    // delivered after it, and answered only then.
    let mut c = Cluster::new(ModeKind::Linearizable, Tob::Lamport, 3, 1);
    c.set(2, "x", "1");
    let to_3 = c.take(2, 3, "broadcast");
    c.deliver(to_3);
    let read = c.get(3, "x");
    assert_eq!(c.reply(read), None);
    c.settle();
    assert_eq!(c.reply(read), Some(&Response::Value(b"1".to_vec())));
    c.assert_total_order();
}

#[test]
fn sequencer_follower_is_not_ready_until_caught_up() {
    let mut c = Cluster::new(ModeKind::Sequential, Tob::Sequencer, 3, 1);
    c.settle();
    c.cut.insert(3);
    for i in 0..5 {
        c.set(2, "k", &i.to_string());
    }
    for _ in 0..10 {
        while c.deliver_one() {}
        c.tick(RETRY_MS);
    }
    // Node 3 missed everything; it restarts while still cut off.
    c.restart(3);
    while c.deliver_one() {}
    let r = c.get(3, "k");
    assert_eq!(
        c.reply(r),
        Some(&Response::Err("not ready: catching up".into()))
    );
    assert!(!c.node(3).ready());
    c.settle();
    assert!(c.node(3).ready());
    let r = c.get(3, "k");
    assert_eq!(c.reply(r), Some(&Response::Value(b"4".to_vec())));
}

#[test]
fn sequencer_restart_leaves_followers_to_catch_up_from_each_other() {
    // Node 3 misses 100 operations (more than one catch-up batch), then the sequencer restarts
    // and its log is gone. Node 3 learns from the sequencer how far behind it is, asks every
    // peer, and node 2 supplies the entries, a batch at a time.
    let mut c = Cluster::new(ModeKind::Sequential, Tob::Sequencer, 3, 1);
    c.settle();
    c.cut.insert(3);
    let pump = |c: &mut Cluster| {
        for _ in 0..5 {
            while c.deliver_one() {}
            c.tick(RETRY_MS);
        }
    };
    for i in 0..100 {
        c.set(1 + i % 2, "k", &i.to_string());
        if i % 10 == 9 {
            pump(&mut c);
        }
    }
    c.restart(1);
    c.settle();
    c.assert_total_order();
    assert_eq!(c.delivered(3).len(), 100);
    assert_eq!(c.snapshots()[2][&b"k".to_vec()], b"99");
}

#[test]
fn sequencer_down_makes_followers_busy_not_unbounded() {
    let opts = NodeOptions {
        max_pending: 3,
        ..options()
    };
    let mut c = Cluster::with_options(ModeKind::Sequential, Tob::Sequencer, 3, 1, opts);
    c.settle();
    c.cut.insert(1);
    let accepted: Vec<_> = (0..3).map(|i| c.set(2, "k", &i.to_string())).collect();
    let refused = c.set(2, "k", "3");
    match c.reply(refused) {
        Some(Response::Err(e)) => assert!(e.starts_with("busy:"), "{e}"),
        other => panic!("expected busy, got {other:?}"),
    }
    // Local reads still work in sequential mode.
    let r = c.get(2, "k");
    assert_eq!(c.reply(r), Some(&Response::NotFound));
    for _ in 0..5 {
        while c.deliver_one() {}
        c.tick(RETRY_MS);
    }
    assert!(
        accepted.iter().all(|&w| c.reply(w).is_none()),
        "no progress without the sequencer"
    );
    c.settle();
    assert!(accepted.iter().all(|&w| c.reply(w) == Some(&Response::Ok)));
    c.assert_total_order();
}

// ---------------------------------------------------------------------------------------------
// Lamport

#[test]
fn lamport_origin_replies_only_after_everyone_is_past_the_stamp() {
    let mut c = Cluster::new(ModeKind::Sequential, Tob::Lamport, 3, 1);
    let w = c.set(1, "k", "v");
    assert_eq!(c.reply(w), None);
    let to_2 = c.take(1, 2, "broadcast");
    c.deliver(to_2);
    let ack_2 = c.take(2, 1, "ack");
    c.deliver(ack_2);
    assert_eq!(c.reply(w), None, "node 3 has not been heard from yet");
    let to_3 = c.take(1, 3, "broadcast");
    c.deliver(to_3);
    let ack_3 = c.take(3, 1, "ack");
    c.deliver(ack_3);
    assert_eq!(c.reply(w), Some(&Response::Ok));
    c.settle();
    c.assert_total_order();
}

#[test]
fn lamport_acks_count_only_once_the_senders_earlier_broadcasts_are_in() {
    // Node 2 broadcasts m2 (stamp 1:n2), then receives node 1's m1 (1:n1) and acks it with a
    // stamp past both. Node 1 gets that ack before m2 (reordering): delivering m1 is fine, but
    // had m2 been stamped below the ack and m1 above, trusting the ack early would let node 1
    // deliver out of order. `last_own` makes node 1 wait for m2 before counting the ack.
    let mut c = Cluster::new(ModeKind::Sequential, Tob::Lamport, 2, 1);
    let w2 = c.set(2, "k", "from-2");
    let w1 = c.set(1, "k", "from-1");
    let m1 = c.take(1, 2, "broadcast");
    c.deliver(m1);
    let ack = c.take(2, 1, "ack");
    c.deliver(ack);
    assert_eq!(c.reply(w1), None, "the ack waits for m2 (last_own = 1)");
    let m2 = c.take(2, 1, "broadcast");
    c.deliver(m2);
    assert_eq!(c.reply(w1), Some(&Response::Ok));
    c.settle();
    assert_eq!(c.reply(w2), Some(&Response::Ok));
    c.assert_total_order();
    // m1 (1:n1) before m2 (1:n2): node 2's write wins on both.
    assert_eq!(c.snapshots()[0][&b"k".to_vec()], b"from-2");
}

#[test]
fn lamport_one_silent_node_blocks_everyone_until_it_returns() {
    let opts = NodeOptions {
        max_pending: 2,
        ..options()
    };
    let mut c = Cluster::with_options(ModeKind::Sequential, Tob::Lamport, 3, 1, opts);
    c.cut.insert(3);
    let a = c.set(1, "k", "a");
    let b = c.set(1, "k", "b");
    let refused = c.set(1, "k", "c");
    for _ in 0..10 {
        while c.deliver_one() {}
        c.tick(RETRY_MS);
    }
    assert_eq!(c.reply(a), None, "blocked: node 3 was never heard from");
    match c.reply(refused) {
        Some(Response::Err(e)) => assert!(e.starts_with("busy:"), "{e}"),
        other => panic!("expected busy, got {other:?}"),
    }
    c.settle();
    assert_eq!(c.reply(a), Some(&Response::Ok));
    assert_eq!(c.reply(b), Some(&Response::Ok));
    c.assert_total_order();
}

// ---------------------------------------------------------------------------------------------
// Recovery of counters, storage encoding

#[test]
fn a_restart_never_reuses_a_stamp_or_an_id() {
    let mut c = Cluster::new(ModeKind::Eventual, Tob::Sequencer, 2, 1);
    c.set(1, "k", "before");
    let before = c.disks[&1].versions()[&b"k".to_vec()].stamp;
    c.restart(1);
    c.set(1, "k", "after");
    let after = c.disks[&1].versions()[&b"k".to_vec()].stamp;
    assert!(after > before, "{after} > {before}");
    // The ids in the outbox differ too: acks of the old update cannot clear the new one.
    let ids: BTreeSet<_> = c.net.iter().filter_map(|m| m.message.id()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[test]
fn versioned_encoding_round_trips_and_rejects_damage() {
    let cases = [
        Versioned {
            value: Some(b"v".to_vec()),
            stamp: Stamp::new(7, 3),
        },
        Versioned {
            value: Some(Vec::new()),
            stamp: Stamp::new(u64::MAX, u32::MAX),
        },
        Versioned {
            value: None,
            stamp: Stamp::new(1, 1),
        },
    ];
    for v in cases {
        assert_eq!(Versioned::decode(&v.encode()), Ok(v));
    }
    let bad = [
        (vec![0; 12], DecodeError::TooShort { len: 12 }),
        (
            [vec![2], vec![0; 12]].concat(),
            DecodeError::UnknownFlags(2),
        ),
        (
            [vec![1], vec![0; 12], vec![9]].concat(),
            DecodeError::TombstoneWithValue { len: 1 },
        ),
    ];
    for (bytes, error) in bad {
        assert_eq!(Versioned::decode(&bytes), Err(error));
    }
}

proptest! {
    #[test]
    fn versioned_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(v) = Versioned::decode(&bytes) {
            prop_assert_eq!(v.encode(), bytes);
        }
    }

    #[test]
    fn versioned_round_trips(
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
        time: u64,
        node: u32,
    ) {
        let v = Versioned { value, stamp: Stamp::new(time, node) };
        prop_assert_eq!(Versioned::decode(&v.encode()), Ok(v));
    }
}
