//! Crashes of the Lamport mode (`tob = "lamport"`) at any moment, on the tiny deterministic
//! network of [`super::test_net`].
//!
//! Unlike the tests of `tests.rs`, these crash nodes *inside* the window where the crashed
//! node is the only one holding a broadcast: an origin's broadcasts are kept write-ahead in a
//! ring in its storage, so no crash, not even of every node at once, can lose one.

use super::test_net::{Cluster, KINDS, RETRY_MS, Replay, seeds};
use super::*;

fn options() -> NodeOptions {
    NodeOptions {
        retry_interval_ms: RETRY_MS,
        max_pending: 16,
        log_capacity: 32,
    }
}

fn lamport_cluster(kind: ModeKind, n: u32, seed: u64, options: NodeOptions) -> Cluster {
    Cluster::with_options(kind, Tob::Lamport, n, seed, options)
}

impl Cluster {
    /// Random requests, deliveries and ticks, and now and then a crash of one node, of two, or
    /// of the whole cluster at once — at any moment, whatever is in flight.
    fn run_crashing(&mut self, steps: usize) {
        let all = self.ids.clone();
        for _ in 0..steps {
            match self.rng.index(1000) {
                0..200 => self.random_request(&all),
                200..860 => {
                    // A busy network carries more at once: keeps latency, and so retries, sane.
                    for _ in 0..=self.net.len() / 16 {
                        self.deliver_one();
                    }
                }
                860..975 => self.tick(RETRY_MS / 2),
                975..990 => {
                    let victim = all[self.rng.index(all.len())];
                    self.crash(&[victim]);
                }
                990..996 => {
                    let first = self.rng.index(all.len());
                    let second = (first + 1 + self.rng.index(all.len() - 1)) % all.len();
                    self.crash(&[all[first], all[second]]);
                }
                _ => self.crash(&all),
            }
        }
    }
}

#[test]
fn origin_crashing_before_its_broadcast_leaves_sends_it_after_the_restart() {
    // The failure of the issue: node 3 records broadcast 1 (meta `lamport.sent`), and every
    // message it sent is lost with its crash. Its acks will say it made one broadcast, so
    // without a copy on its disk nobody could ever deliver past that broadcast's stamp.
    for kind in KINDS {
        let mut c = lamport_cluster(kind, 3, 1, options());
        let lost = c.set(3, "k", "v");
        c.net.clear();
        c.crash(&[3]);
        assert_eq!(c.disks[&3].meta().get("lamport.sent"), Some(&1));
        assert!(
            c.node(3).ready(),
            "{kind}: its own broadcast is back from its disk"
        );
        let later = c.set(1, "k", "w");
        c.settle();
        assert_eq!(c.reply(later), Some(&Response::Ok), "{kind}");
        assert!(
            c.lost.contains(&lost),
            "its client died with the old process"
        );
        let id = MsgId::new(3, 1);
        assert!(c.delivered(1).contains(&id), "{kind}: delivered everywhere");
        c.assert_total_order();
        // Node 1 had heard nothing from node 3: its write is stamped 1:n1, before n3#1 (1:n3).
        assert_eq!(c.snapshots()[0][&b"k".to_vec()], b"v", "{kind}");
    }
}

#[test]
fn an_acknowledged_write_survives_the_crash_of_its_only_holder() {
    // Node 1's write is delivered (and answered) at node 1 as soon as nodes 2 and 3 have been
    // heard from past its stamp — here by broadcasts of their own, stamped after it — not once
    // they hold it. Every message of node 1 is lost, then node 1 crashes: the acknowledged
    // write is on node 1's disk only. It must still end up on every replica.
    for kind in KINDS {
        let mut c = lamport_cluster(kind, 3, 1, options());
        let w = c.set(1, "k", "acked"); // 1:n1
        c.set(2, "x", "2"); // 1:n2
        c.set(3, "y", "3"); // 1:n3
        let from_2 = c.take(2, 1, "broadcast");
        c.deliver(from_2);
        let from_3 = c.take(3, 1, "broadcast");
        c.deliver(from_3);
        assert_eq!(
            c.reply(w),
            Some(&Response::Ok),
            "{kind}: answered at its origin"
        );
        for other in [2, 3] {
            let snapshot = c.disks[&other].snapshot();
            assert!(!snapshot.contains_key(b"k".as_slice()), "node {other}");
        }
        c.net.retain(|m| m.from != 1);
        c.crash(&[1]);
        c.settle();
        c.assert_total_order();
        for (i, s) in c.snapshots().iter().enumerate() {
            assert_eq!(
                s.get(b"k".as_slice()).map(Vec::as_slice),
                Some(b"acked".as_slice()),
                "{kind}: node {}",
                i + 1
            );
        }
    }
}

#[test]
fn the_whole_cluster_crashing_with_broadcasts_in_flight_loses_none() {
    // Every node has made broadcasts that others have not received, or not delivered; all
    // crash at once and every message in flight is lost. Queues are memory, but each origin
    // still has its own broadcasts on disk.
    for kind in KINDS {
        let mut c = lamport_cluster(kind, 3, 7, options());
        for round in 0..5 {
            for node in [1, 2, 3] {
                c.set(node, &format!("k{node}"), &format!("{node}.{round}"));
            }
            for _ in 0..4 {
                c.deliver_one();
            }
        }
        let behind = [1, 2, 3].iter().all(|&n| c.delivered(n).len() < 15);
        assert!(behind, "{kind}: every node has broadcasts left to deliver");
        c.net.clear();
        c.crash(&[1, 2, 3]);
        c.settle();
        c.assert_total_order();
        // Every write was delivered, answered or not: each node's last one wins its key.
        assert_eq!(c.delivered(1).len(), 15, "{kind}");
        for node in 1..=3 {
            let value = format!("{node}.4");
            assert_eq!(
                c.snapshots()[0].get(format!("k{node}").as_bytes()),
                Some(&value.into_bytes()),
                "{kind}"
            );
        }
    }
}

#[test]
fn crashes_at_any_moment_keep_the_total_order_and_every_acknowledged_write() {
    for kind in KINDS {
        for seed in seeds(30) {
            let _replay = Replay(format!("{kind}/lamport crashing seed {seed}"));
            let mut c = lamport_cluster(kind, 3, seed, options());
            c.drop_percent = 10;
            c.dup_percent = 5;
            c.run_crashing(1500);
            c.settle();
            c.assert_total_order();
            assert!(
                !c.delivered(1).is_empty(),
                "{kind} seed {seed}: nothing delivered"
            );
        }
    }
}

#[test]
fn a_small_ring_wraps_around_many_times_across_crashes() {
    // A ring of max_pending + log_capacity = 5 slots and dozens of broadcasts per node: slots
    // are reused all the time, and a crash must still find every broadcast it needs.
    let small = NodeOptions {
        retry_interval_ms: RETRY_MS,
        max_pending: 2,
        log_capacity: 3,
    };
    for seed in seeds(20) {
        let _replay = Replay(format!("lamport small ring seed {seed}"));
        let mut c = lamport_cluster(ModeKind::Sequential, 3, seed, small);
        c.drop_percent = 10;
        c.dup_percent = 5;
        c.run_crashing(3000);
        c.settle();
        c.assert_total_order();
        assert_eq!(c.disks[&1].meta().get("lamport.ring"), Some(&5));
        let sent = c.disks[&1].meta().get("lamport.sent").copied().unwrap_or(0);
        assert!(sent >= 20, "seed {seed}: only {sent} broadcasts");
    }
}

#[test]
fn a_restarted_node_serves_at_once_from_what_it_had_delivered() {
    // The known weakness, pinned down: node 3 crashes before node 1's write reaches it, and is
    // ready at once after the restart (it holds its own broadcasts, from its disk). Its local
    // read is stale — older than a write node 1 had acknowledged before the crash — which
    // sequential consistency allows; linearizable mode orders the read and sees the write.
    for kind in KINDS {
        let mut c = lamport_cluster(kind, 3, 1, options());
        let w = c.set(1, "k", "new");
        let to_2 = c.take(1, 2, "broadcast");
        c.deliver(to_2);
        // Node 3 holds the write and acks it, but does not deliver it: it has not heard from
        // node 2 past its stamp yet.
        let to_3 = c.take(1, 3, "broadcast");
        c.deliver(to_3);
        let ack_2 = c.take(2, 1, "ack");
        c.deliver(ack_2);
        let ack_3 = c.take(3, 1, "ack");
        c.deliver(ack_3);
        assert_eq!(
            c.reply(w),
            Some(&Response::Ok),
            "{kind}: acknowledged by node 1"
        );
        assert!(
            c.disks[&3].snapshot().is_empty(),
            "node 3 had not delivered it"
        );
        c.net.retain(|m| m.to != 3 && m.from != 3);
        c.crash(&[3]);
        assert!(c.node(3).ready(), "{kind}: ready at once");
        let r = c.get(3, "k");
        match kind {
            ModeKind::Sequential => {
                assert_eq!(c.reply(r), Some(&Response::NotFound), "a stale local read");
            }
            _ => assert_eq!(c.reply(r), None, "ordered after the write"),
        }
        c.settle();
        c.assert_total_order();
        let r = c.get(3, "k");
        c.settle();
        assert_eq!(
            c.reply(r),
            Some(&Response::Value(b"new".to_vec())),
            "{kind}"
        );
    }
}
