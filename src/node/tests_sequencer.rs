//! Tests of the sequencer's flow control and of its durable ordered log (see the module docs of
//! [`super::sequencer`]), on the tiny seeded network of [`super::test_net`].
//!
//! Messages move in [`Cluster::round`]s, and a link *into* a node can be [`Slow`] (a few
//! messages per round, some of them lost, a bounded queue beyond which new messages are dropped
//! — the runtime's per-peer outbox); a test can read every node's position from its disk at any
//! time.

use proptest::prelude::*;

use super::sequencer::{LIVE_INTERVALS, decode_entry, encode_entry};
use super::test_net::{Cluster, KINDS, LOG_CAPACITY, RETRY_MS, Replay, Slow, seeds};
use super::*;

/// Virtual time per tick.
const TICK_MS: u64 = 10;

fn sequencer_cluster(kind: ModeKind, n: u32, seed: u64) -> Cluster {
    Cluster::new(kind, Tob::Sequencer, n, seed)
}

impl Cluster {
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

    /// [`Cluster::assert_converged`], and every node has applied every number handed out.
    fn assert_converged_and_caught_up(&self) {
        self.assert_converged();
        for &id in &self.ids {
            assert_eq!(self.position(id), self.ordered(), "node {id}'s position");
        }
    }
}

fn is_busy(response: Option<&Response>) -> bool {
    matches!(response, Some(Response::Err(e)) if e.starts_with("busy:"))
}

// ---------------------------------------------------------------------------------------------
// Flow control

#[test]
fn a_slow_follower_never_falls_out_of_reach_and_clients_wait() {
    for seed in seeds(12) {
        let kind = KINDS[seed as usize % 2];
        let _replay = Replay(format!("{kind} slow follower seed {seed}"));
        let mut c = sequencer_cluster(kind, 3, seed);
        c.settle_in_rounds();
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
                behind <= LOG_CAPACITY as u64,
                "seed {seed} round {round}: node 3 is {behind} behind, out of reach"
            );
        }
        assert!(waited > 0, "seed {seed}: flow control never pushed back");
        assert!(
            furthest > (LOG_CAPACITY / 4) as u64,
            "seed {seed}: node 3 was never really behind ({furthest})"
        );
        // Node 2 kept up all along.
        assert!(c.ordered() - c.position(2) <= (LOG_CAPACITY / 2) as u64);
        c.settle_in_rounds();
        c.assert_converged_and_caught_up();
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
        let mut c = sequencer_cluster(kind, 3, seed);
        c.settle_in_rounds();
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
        assert!(c.ordered() - c.position(3) > LOG_CAPACITY as u64);
        assert!(c.ordered() - c.position(2) <= (LOG_CAPACITY / 2) as u64);
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
        let mut c = sequencer_cluster(kind, 3, seed);
        c.settle_in_rounds();
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
        assert!(c.ordered() - c.position(3) <= (LOG_CAPACITY / 2) as u64);
        c.settle_in_rounds();
        c.assert_converged_and_caught_up();
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
        let mut c = sequencer_cluster(ModeKind::Sequential, 3, seed);
        c.settle_in_rounds();
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
        c.settle_in_rounds();
        c.assert_converged_and_caught_up();
    }
}

// ---------------------------------------------------------------------------------------------
// The durable ordered log

#[test]
fn a_sequencer_crash_right_after_numbering_loses_nothing() {
    for kind in KINDS {
        for seed in seeds(4) {
            let _replay = Replay(format!("{kind} sequencer crash seed {seed}"));
            let mut c = sequencer_cluster(kind, 3, seed);
            c.settle_in_rounds();
            let w = c.set(1, "k", "v");
            // Numbered 1, applied on the sequencer and answered ...
            assert_eq!(c.reply(w), Some(&Response::Ok));
            // ... but both Ordered messages are lost, and the sequencer crashes before resending
            // them.
            c.net.clear();
            c.restart(1);
            assert!(c.nodes[&1].ready());
            let later = c.set(2, "k2", "w");
            c.settle_in_rounds();
            // The followers got number 1 from the sequencer's ring.
            assert_eq!(c.reply(later), Some(&Response::Ok));
            c.assert_converged_and_caught_up();
            assert_eq!(c.position(2), 2);
            assert_eq!(c.disks[&3].snapshot()[b"k".as_slice()], b"v");
        }
    }
}

#[test]
fn after_a_restart_the_ring_serves_the_last_numbers_and_recognises_retries() {
    for seed in seeds(4) {
        let _replay = Replay(format!("ring wrap seed {seed}"));
        let mut c = sequencer_cluster(ModeKind::Sequential, 3, seed);
        c.settle_in_rounds();
        // Wrap the ring twice and a bit.
        for i in 0..600 {
            c.set(1 + i % 2, &format!("k{}", i % 7), &i.to_string());
            if i % 20 == 19 {
                c.settle_in_rounds();
            }
        }
        c.settle_in_rounds();
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
        c.settle_in_rounds();
        assert_eq!(c.reply(forwarded), Some(&Response::Ok));
        assert_eq!(c.ordered(), 606, "the retried forward was numbered again");
        c.assert_converged_and_caught_up();
        assert_eq!(c.disks[&3].snapshot()[b"late".as_slice()], b"4");
    }
}

#[test]
fn a_step_cut_short_is_finished_from_the_ring_at_restart() {
    // A crash between the ring write and the application (possible with a torn append): the
    // sequencer's disk says 6 is numbered and what it is, but 6 is not applied, and nobody
    // heard of it (its messages wait for the whole step to be durable).
    let mut c = sequencer_cluster(ModeKind::Sequential, 3, 3);
    c.settle_in_rounds();
    for i in 0..5 {
        c.set(1, "k", &i.to_string());
    }
    c.settle_in_rounds();
    let op = Operation::Write(Write {
        key: b"k".to_vec(),
        value: Some(b"six".to_vec()),
    });
    let disk = c.disks.get_mut(&1).expect("node 1");
    disk.put_meta("seq.ordered", 6).expect("mem");
    let bytes = encode_entry(6, MsgId::new(1, 999), &op);
    disk.put_blob(&format!("seq.log.{}", 6 % LOG_CAPACITY), &bytes)
        .expect("mem");
    c.restart(1);
    assert!(!c.nodes[&1].ready(), "6 is not applied yet");
    c.tick(TICK_MS);
    assert!(c.nodes[&1].ready());
    assert_eq!(c.position(1), 6);
    c.settle_in_rounds();
    c.assert_converged_and_caught_up();
    assert_eq!(c.disks[&2].snapshot()[b"k".as_slice()], b"six");
}

#[test]
fn a_damaged_ring_is_never_trusted_past_the_damage() {
    // Numbers 1..=5 are known only to the sequencer; then blob 3 is damaged. On restart the
    // sequencer reloads 5 and 4 only (contiguous up to its last number): 1..=3 are lost for
    // good, and the followers, safely, apply nothing.
    let mut c = sequencer_cluster(ModeKind::Sequential, 3, 5);
    c.settle_in_rounds();
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
    let mut c = sequencer_cluster(ModeKind::Sequential, 2, 6);
    c.settle_in_rounds();
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
