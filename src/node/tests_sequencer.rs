//! Tests of the sequencer's flow control and of its durable ordered log (see the module docs of
//! [`super::sequencer`]), on a small seeded network of their own.
//!
//! [`Net`] is a cousin of the harness in `tests.rs` with what these tests need besides: a link
//! *into* a node can be slow (a few messages per round, some of them lost, a bounded queue
//! beyond which new messages are dropped — the runtime's per-peer outbox), and a test can read
//! every node's position from its disk at any time. No threads, no sleeps: a seed names a run.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::sequencer::{LIVE_INTERVALS, decode_entry, encode_entry};
use super::*;
use crate::sim::Rng;

const RETRY_MS: u64 = 100;
/// Virtual time per tick.
const TICK_MS: u64 = 10;
const CAPACITY: usize = 256;

fn options() -> NodeOptions {
    NodeOptions {
        retry_interval_ms: RETRY_MS,
        max_pending: 64,
        log_capacity: CAPACITY,
    }
}

#[derive(Debug, Clone)]
struct InFlight {
    from: NodeId,
    to: NodeId,
    message: Message,
}

/// A slow link into a node.
#[derive(Debug, Clone, Copy)]
struct Slow {
    /// Most messages delivered to the node per round.
    per_round: usize,
    /// Percent of those lost on the way, and of the node's own messages.
    drop_percent: u64,
    /// Most messages waiting for the node per sender; beyond it new ones are dropped.
    queue: usize,
}

struct Net {
    kind: ModeKind,
    options: NodeOptions,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Box<dyn Mode + Send>>,
    disks: BTreeMap<NodeId, MemStorage>,
    net: Vec<InFlight>,
    rng: Rng,
    now_ms: u64,
    /// Nodes cut off: every message to or from them is lost.
    cut: BTreeSet<NodeId>,
    /// Nodes whose incoming links are slow.
    slow: BTreeMap<NodeId, Slow>,
    next_request: u64,
    requests: BTreeMap<RequestId, NodeId>,
    replies: BTreeMap<RequestId, Response>,
    /// Requests whose node restarted before answering: never answered.
    lost: BTreeSet<RequestId>,
}

impl Net {
    fn new(kind: ModeKind, n: u32, seed: u64) -> Net {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut net = Net {
            kind,
            options: options(),
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            disks: ids.iter().map(|&id| (id, MemStorage::new())).collect(),
            net: Vec::new(),
            rng: Rng::new(seed),
            now_ms: 0,
            cut: BTreeSet::new(),
            slow: BTreeMap::new(),
            next_request: 0,
            requests: BTreeMap::new(),
            replies: BTreeMap::new(),
            lost: BTreeSet::new(),
        };
        for id in ids {
            net.build(id);
        }
        net
    }

    fn build(&mut self, id: NodeId) {
        let disk = self.disks.get_mut(&id).expect("every node has a disk");
        let node = new_mode(
            self.kind,
            Tob::Sequencer,
            id,
            self.ids.clone(),
            disk,
            self.options,
        )
        .expect("MemStorage does not fail");
        self.nodes.insert(id, node);
    }

    fn input(&mut self, id: NodeId, input: Input) {
        let mut out = Vec::new();
        let node = self.nodes.get_mut(&id).expect("node exists");
        let disk = self.disks.get_mut(&id).expect("disk exists");
        node.step(input, disk, &mut out)
            .expect("MemStorage does not fail");
        for output in out {
            match output {
                Output::Send { to, message } => self.net.push(InFlight {
                    from: id,
                    to,
                    message,
                }),
                Output::Reply { id, response } => {
                    let before = self.replies.insert(id, response);
                    assert!(before.is_none(), "request {id:?} answered twice");
                }
                Output::Trace(_) => {}
            }
        }
    }

    fn set(&mut self, id: NodeId, key: &str, value: &str) -> RequestId {
        self.next_request += 1;
        let rid = RequestId(self.next_request);
        self.requests.insert(rid, id);
        let request = Request::Set {
            key: key.into(),
            value: value.into(),
        };
        self.input(id, Input::Client { id: rid, request });
        rid
    }

    fn reply(&self, rid: RequestId) -> Option<&Response> {
        self.replies.get(&rid)
    }

    fn tick(&mut self, advance_ms: u64) {
        self.now_ms += advance_ms;
        for id in self.ids.clone() {
            let now_ms = self.now_ms;
            self.input(id, Input::Tick { now_ms });
        }
    }

    /// Delivers the messages in flight at the start of the round, in a random order, subject
    /// to cuts and slow links; what the deliveries send waits for the next round.
    fn round(&mut self) {
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
            let input = Input::Peer {
                from: m.from,
                message: m.message,
            };
            self.input(m.to, input);
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

    /// Crashes node `id` and starts it again from its disk; the driver then reconnects.
    fn restart(&mut self, id: NodeId) {
        for (&rid, &node) in &self.requests {
            if node == id && !self.replies.contains_key(&rid) {
                self.lost.insert(rid);
            }
        }
        self.build(id);
        for peer in self.ids.clone() {
            if peer != id {
                self.input(id, Input::PeerUp { peer });
                self.input(peer, Input::PeerUp { peer: id });
            }
        }
    }

    /// Heals the network and runs until nothing is left to do; panics if that never happens.
    fn settle(&mut self) {
        self.cut.clear();
        self.slow.clear();
        for _ in 0..1000 {
            while !self.net.is_empty() {
                self.round();
            }
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

    /// The last number node `id` has applied.
    fn position(&self, id: NodeId) -> u64 {
        self.disks[&id]
            .meta()
            .get("seq.delivered")
            .copied()
            .unwrap_or(0)
    }

    /// The last number the sequencer (node 1) has handed out.
    fn ordered(&self) -> u64 {
        self.disks[&1]
            .meta()
            .get("seq.ordered")
            .copied()
            .unwrap_or(0)
    }

    fn assert_converged(&self) {
        let first = self.disks[&1].snapshot();
        for (&id, disk) in &self.disks {
            assert_eq!(disk.snapshot(), first, "node {id} differs from node 1");
            assert_eq!(self.position(id), self.ordered(), "node {id}'s position");
        }
    }

    fn assert_all_answered(&self) {
        for rid in self.requests.keys() {
            assert!(
                self.replies.contains_key(rid) || self.lost.contains(rid),
                "request {rid:?} never answered"
            );
        }
    }
}

fn is_busy(response: Option<&Response>) -> bool {
    matches!(response, Some(Response::Err(e)) if e.starts_with("busy:"))
}

/// Seeds `0..n`; `DKVS_SEEDS=<n>` widens (or narrows) the range, as in `tests.rs`.
fn seeds(default: u64) -> std::ops::Range<u64> {
    let n = std::env::var("DKVS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    0..n
}

/// Names the failing run if the test panics while it is alive.
struct Replay(String);

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("failing run: {}", self.0);
        }
    }
}

const KINDS: [ModeKind; 2] = [ModeKind::Sequential, ModeKind::Linearizable];

// ---------------------------------------------------------------------------------------------
// Flow control

#[test]
fn a_slow_follower_never_falls_out_of_reach_and_clients_wait() {
    for seed in seeds(12) {
        let kind = KINDS[seed as usize % 2];
        let _replay = Replay(format!("{kind} slow follower seed {seed}"));
        let mut c = Net::new(kind, 3, seed);
        c.settle();
        // Node 3 is alive, but takes 4 messages a round, loses a fifth of what it gets and of
        // what it sends, and its queues hold 200 messages: it cannot keep up with 8 writes a
        // round on the sequencer, plus 1 forwarded by node 2.
        let slow = Slow {
            per_round: 4,
            drop_percent: 20,
            queue: 200,
        };
        c.slow.insert(3, slow);
        let (mut waited, mut furthest) = (0, 0);
        let mut writes = Vec::new();
        for round in 0..2500 {
            for i in 0..8 {
                let w = c.set(
                    1,
                    &format!("k{}", (round + i) % 50),
                    &format!("{round}.{i}"),
                );
                match c.reply(w) {
                    Some(Response::Ok) => {}
                    // Held back by flow control (and, with `max_pending` waiting, refused).
                    None => waited += 1,
                    r if is_busy(r) => {}
                    other => panic!("seed {seed}: the sequencer's client got {other:?}"),
                }
                writes.push(w);
            }
            c.set(2, "from-2", &round.to_string());
            c.round();
            if round % 5 == 0 {
                c.tick(TICK_MS);
            }
            let behind = c.ordered() - c.position(3);
            furthest = furthest.max(behind);
            assert!(
                behind <= CAPACITY as u64,
                "seed {seed} round {round}: node 3 is {behind} behind, out of reach"
            );
        }
        assert!(waited > 0, "seed {seed}: flow control never pushed back");
        assert!(
            furthest > (CAPACITY / 4) as u64,
            "seed {seed}: node 3 was never really behind ({furthest})"
        );
        // Node 2 kept up all along.
        assert!(c.ordered() - c.position(2) <= (CAPACITY / 2) as u64);
        c.settle();
        c.assert_converged();
        c.assert_all_answered();
        assert!(c.nodes[&3].ready());
        let ok = writes
            .iter()
            .filter(|&&w| c.reply(w) == Some(&Response::Ok))
            .count();
        assert!(ok > 1000, "seed {seed}: only {ok} writes went through");
    }
}

#[test]
fn a_silent_follower_does_not_hold_writes_back() {
    for seed in seeds(8) {
        let kind = KINDS[seed as usize % 2];
        let _replay = Replay(format!("{kind} silent follower seed {seed}"));
        let mut c = Net::new(kind, 3, seed);
        c.settle();
        c.cut.insert(3);
        let cut_at = c.now_ms;
        // It may count as alive for LIVE_INTERVALS retry intervals (it had reported everything
        // and so had nothing to say); after that it must not matter.
        let free_from = cut_at + (LIVE_INTERVALS + 1) * RETRY_MS;
        let mut late = Vec::new();
        for round in 0..1500 {
            for i in 0..8 {
                let w = c.set(1, "k", &format!("{round}.{i}"));
                if c.now_ms >= free_from {
                    late.push(w);
                }
            }
            c.round();
            if round % 5 == 0 {
                c.tick(TICK_MS);
            }
        }
        assert!(late.len() > 8000, "seed {seed}");
        for w in late {
            assert_eq!(c.reply(w), Some(&Response::Ok), "seed {seed}: {w:?}");
        }
        // Node 3 is now far out of reach (the documented limitation); node 2 kept up.
        assert!(c.ordered() - c.position(3) > CAPACITY as u64);
        assert!(c.ordered() - c.position(2) <= (CAPACITY / 2) as u64);
        // Forwards from node 2 are numbered too.
        let w = c.set(2, "from-2", "v");
        for _ in 0..10 {
            c.round();
            c.tick(TICK_MS);
        }
        assert_eq!(c.reply(w), Some(&Response::Ok), "seed {seed}");
    }
}

#[test]
fn a_returning_follower_within_reach_pauses_writes_until_it_is_close_again() {
    for seed in seeds(8) {
        let kind = KINDS[seed as usize % 2];
        let _replay = Replay(format!("{kind} returning follower seed {seed}"));
        let mut c = Net::new(kind, 3, seed);
        c.settle();
        c.cut.insert(3);
        // Slowly (never more than a few numbers per liveness window), 200 writes node 3 misses:
        // more than the margin, less than the log.
        for i in 0..200 {
            let w = c.set(1, "k", &i.to_string());
            assert_eq!(c.reply(w), Some(&Response::Ok), "seed {seed}: write {i}");
            c.round();
            c.tick(TICK_MS);
        }
        assert_eq!(c.position(3), 0);
        // Node 3 comes back and reports: it is alive, within reach, and too far behind.
        c.cut.clear();
        for peer in [1, 2] {
            c.input(3, Input::PeerUp { peer });
            c.input(peer, Input::PeerUp { peer: 3 });
        }
        c.round(); // its catch-up request reaches the sequencer
        let ordered = c.ordered();
        let held = c.set(1, "k", "held");
        assert_eq!(
            c.reply(held),
            None,
            "seed {seed}: the write waits, unnumbered"
        );
        assert_eq!(
            c.ordered(),
            ordered,
            "seed {seed}: nothing numbered meanwhile"
        );
        let after = c.set(1, "k", "after");
        // It catches up, and the waiting writes are numbered, in their order.
        for _ in 0..200 {
            if c.reply(after).is_some() {
                break;
            }
            c.round();
            c.tick(TICK_MS);
        }
        assert_eq!(
            c.reply(held),
            Some(&Response::Ok),
            "seed {seed}: writes never resumed"
        );
        assert_eq!(c.reply(after), Some(&Response::Ok), "seed {seed}");
        assert!(c.ordered() - c.position(3) <= (CAPACITY / 2) as u64);
        c.settle();
        c.assert_converged();
        assert_eq!(c.disks[&3].snapshot()[b"k".as_slice()], b"after");
    }
}

#[test]
fn a_follower_back_from_a_lossy_stretch_catches_up_at_network_speed() {
    // Node 3 loses 200 numbers on a link that stays up (an injected partition: no reconnection,
    // so no PeerUp), then the link heals. Its reports are mostly "this far so far", which the
    // sequencer answers without entries; but once node 3 is evidently stuck, the sequencer
    // resends, and goes on resending as node 3 asks for what follows: a batch per round trip,
    // not a batch per tick. Here a tick is 20 rounds: noticing the gap takes two ticks, the
    // four batches a few rounds each.
    for seed in seeds(8) {
        let _replay = Replay(format!("lossy stretch seed {seed}"));
        let mut c = Net::new(ModeKind::Sequential, 3, seed);
        c.settle();
        c.cut.insert(3);
        for i in 0..200 {
            c.set(1, "k", &i.to_string());
            c.round();
            c.tick(TICK_MS);
        }
        c.cut.clear();
        let mut rounds = 0;
        while c.position(3) < c.ordered() {
            c.set(1, "k", "more");
            c.round();
            rounds += 1;
            if rounds % 20 == 0 {
                c.tick(TICK_MS);
            }
            assert!(
                rounds < 70,
                "seed {seed}: node 3 still at {} of {} after {rounds} rounds",
                c.position(3),
                c.ordered()
            );
        }
        c.settle();
        c.assert_converged();
    }
}

// ---------------------------------------------------------------------------------------------
// The durable ordered log

#[test]
fn a_sequencer_crash_right_after_numbering_loses_nothing() {
    for kind in KINDS {
        for seed in seeds(4) {
            let _replay = Replay(format!("{kind} sequencer crash seed {seed}"));
            let mut c = Net::new(kind, 3, seed);
            c.settle();
            let w = c.set(1, "k", "v");
            // Numbered 1, applied on the sequencer and answered ...
            assert_eq!(c.reply(w), Some(&Response::Ok));
            // ... but both Ordered messages are lost, and the sequencer crashes before resending
            // them.
            c.net.clear();
            c.restart(1);
            assert!(c.nodes[&1].ready());
            let later = c.set(2, "k2", "w");
            c.settle();
            // The followers got number 1 from the sequencer's ring.
            assert_eq!(c.reply(later), Some(&Response::Ok));
            c.assert_converged();
            assert_eq!(c.position(2), 2);
            assert_eq!(c.disks[&3].snapshot()[b"k".as_slice()], b"v");
        }
    }
}

#[test]
fn after_a_restart_the_ring_serves_the_last_numbers_and_recognises_retries() {
    for seed in seeds(4) {
        let _replay = Replay(format!("ring wrap seed {seed}"));
        let mut c = Net::new(ModeKind::Sequential, 3, seed);
        c.settle();
        // Wrap the ring twice and a bit.
        for i in 0..600 {
            c.set(1 + i % 2, &format!("k{}", i % 7), &i.to_string());
            if i % 20 == 19 {
                c.settle();
            }
        }
        c.settle();
        assert_eq!(c.ordered(), 600);
        // Five writes on the sequencer and one forwarded by node 2 are numbered; every Ordered
        // message is lost, then the sequencer crashes.
        for i in 0..5 {
            c.set(1, "late", &i.to_string());
        }
        let forwarded = c.set(2, "forwarded", "f");
        let forward = c
            .net
            .iter()
            .position(|m| m.message.kind() == "forward")
            .expect("a forward in flight");
        let forward = c.net.remove(forward);
        c.net.clear();
        c.input(
            1,
            Input::Peer {
                from: 2,
                message: forward.message,
            },
        );
        assert_eq!(c.ordered(), 606);
        c.net.clear();
        c.restart(1);
        // Node 2 resends its forward; the restarted sequencer recognises it from the ring and
        // does not number it twice.
        c.settle();
        assert_eq!(c.reply(forwarded), Some(&Response::Ok));
        assert_eq!(c.ordered(), 606, "the retried forward was numbered again");
        c.assert_converged();
        assert_eq!(c.disks[&3].snapshot()[b"late".as_slice()], b"4");
    }
}

#[test]
fn a_step_cut_short_is_finished_from_the_ring_at_restart() {
    // A crash between the ring write and the application (possible with a torn append): the
    // sequencer's disk says 6 is numbered and what it is, but 6 is not applied, and nobody
    // heard of it (its messages wait for the whole step to be durable).
    let mut c = Net::new(ModeKind::Sequential, 3, 3);
    c.settle();
    for i in 0..5 {
        c.set(1, "k", &i.to_string());
    }
    c.settle();
    let op = Operation::Write(Write {
        key: b"k".to_vec(),
        value: Some(b"six".to_vec()),
    });
    let disk = c.disks.get_mut(&1).expect("node 1");
    disk.put_meta("seq.ordered", 6).expect("mem");
    let bytes = encode_entry(6, MsgId::new(1, 999), &op);
    disk.put_blob(&format!("seq.log.{}", 6 % CAPACITY), &bytes)
        .expect("mem");
    c.restart(1);
    assert!(!c.nodes[&1].ready(), "6 is not applied yet");
    c.tick(TICK_MS);
    assert!(c.nodes[&1].ready());
    assert_eq!(c.position(1), 6);
    c.settle();
    c.assert_converged();
    assert_eq!(c.disks[&2].snapshot()[b"k".as_slice()], b"six");
}

#[test]
fn a_damaged_ring_is_never_trusted_past_the_damage() {
    // Numbers 1..=5 are known only to the sequencer; then blob 3 is damaged. On restart the
    // sequencer reloads 5 and 4 only (contiguous up to its last number): 1..=3 are lost for
    // good, and the followers, safely, apply nothing.
    let mut c = Net::new(ModeKind::Sequential, 3, 5);
    c.settle();
    for i in 0..5 {
        c.set(1, &format!("k{i}"), "v");
    }
    c.net.clear();
    let disk = c.disks.get_mut(&1).expect("node 1");
    disk.put_blob("seq.log.3", b"\x03garbage").expect("mem");
    c.restart(1);
    for _ in 0..50 {
        c.round();
        c.tick(RETRY_MS);
    }
    assert_eq!(c.position(2), 0);
    assert_eq!(c.position(3), 0);
    assert!(c.disks[&2].snapshot().is_empty());
    assert!(c.disks[&3].snapshot().is_empty());

    // A ring written with another log_capacity is not trusted either: slot 36 of a ring of
    // 64 holds number 36, not 100.
    let mut c = Net::new(ModeKind::Sequential, 2, 6);
    c.settle();
    for i in 0..100 {
        c.set(1, "k", &i.to_string());
    }
    c.net.clear();
    c.options.log_capacity = 64;
    c.restart(1);
    for _ in 0..50 {
        c.round();
        c.tick(RETRY_MS);
    }
    assert_eq!(
        c.position(2),
        0,
        "nothing is sent from a ring it cannot read"
    );
}

#[test]
fn ring_entries_round_trip() {
    let ops = [
        Operation::Read { key: b"k".to_vec() },
        Operation::Write(Write {
            key: b"key".to_vec(),
            value: Some(b"value".to_vec()),
        }),
        Operation::Write(Write {
            key: Vec::new(),
            value: Some(Vec::new()),
        }),
        Operation::Write(Write {
            key: b"gone".to_vec(),
            value: None,
        }),
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let id = MsgId::new(7, 1 << 40);
        let bytes = encode_entry(i as u64 + 1, id, &op);
        assert_eq!(decode_entry(&bytes), Some((i as u64 + 1, id, op.clone())));
        // Cut anywhere, it is refused or read as a shorter set, never misread as another kind.
        for cut in 0..bytes.len() {
            if let Some((_, _, got)) = decode_entry(&bytes[..cut]) {
                assert!(matches!(op, Operation::Write(Write { value: Some(_), .. })));
                assert!(matches!(
                    got,
                    Operation::Write(Write { value: Some(_), .. })
                ));
            }
        }
    }
}

proptest! {
    #[test]
    fn ring_entry_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_entry(&bytes);
    }

    #[test]
    fn ring_entries_round_trip_any_operation(
        seq in any::<u64>(),
        origin in any::<u32>(),
        counter in any::<u64>(),
        key in proptest::collection::vec(any::<u8>(), 0..16),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
        read in any::<bool>(),
    ) {
        let op = if read {
            Operation::Read { key }
        } else {
            Operation::Write(Write { key, value })
        };
        let id = MsgId::new(origin, counter);
        prop_assert_eq!(decode_entry(&encode_entry(seq, id, &op)), Some((seq, id, op)));
    }
}
