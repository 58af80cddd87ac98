//! Tests of the replication modes on the tiny deterministic network of [`super::test_net`].
//!
//! Scenario tests drive messages one by one with [`Cluster::take`] to show one behaviour each;
//! property tests run random workloads over many seeds and check what must always hold.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::test_net::{Cluster, RETRY_MS, Replay, options, seeds};
use super::*;

impl Cluster {
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

    /// [`Cluster::assert_total_order`], and on the trace: an origin answers only once it has
    /// delivered the operation itself.
    fn assert_total_order_and_trace(&self) {
        self.assert_total_order();
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
            c.assert_total_order_and_trace();
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
                c.assert_total_order_and_trace();
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
                c.assert_total_order_and_trace();
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
    c.assert_total_order_and_trace();
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
    c.assert_total_order_and_trace();
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
    c.assert_total_order_and_trace();
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
    c.assert_total_order_and_trace();
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
    c.assert_total_order_and_trace();
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
    c.assert_total_order_and_trace();
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
    c.assert_total_order_and_trace();
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
    c.assert_total_order_and_trace();
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
