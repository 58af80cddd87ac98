//! The simulator's own machinery: links, faults, crashes and disks. (Whole runs and the modes'
//! guarantees are tested in `tests/sim.rs`; scenario transcripts in `tests/scenarios.rs`.)

use super::*;
use crate::node::Response;

fn set(key: &str, value: &str) -> Request {
    Request::Set {
        key: key.into(),
        value: value.into(),
    }
}

fn get(key: &str) -> Request {
    Request::Get { key: key.into() }
}

/// An eventual cluster of `n` that has finished its start-up handshake.
fn eventual(n: u32, seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig::new(ModeKind::Eventual, Tob::Sequencer, n), seed);
    settle(&mut sim);
    sim
}

fn settle(sim: &mut Sim) {
    let limit = sim.now_us() + 10_000_000;
    while !sim.quiet() && sim.now_us() < limit {
        sim.step_next();
    }
    assert!(sim.quiet(), "the cluster settles");
}

fn value(sim: &Sim, node: NodeId, key: &str) -> Option<Vec<u8>> {
    sim.disk(node)?.snapshot().get(key.as_bytes()).cloned()
}

#[test]
fn a_cut_link_loses_one_direction_only() {
    let mut sim = eventual(2, 1);
    sim.cut(1, 2);
    sim.submit(1, set("a", "from-1")).expect("n1 is up");
    sim.submit(2, set("b", "from-2")).expect("n2 is up");
    sim.run_until(sim.now_us() + 50_000);
    assert_eq!(value(&sim, 2, "a"), None, "n1 → n2 is cut");
    assert_eq!(
        value(&sim, 1, "b"),
        Some(b"from-2".to_vec()),
        "n2 → n1 works"
    );
    let drops = sim.trace().iter().filter(|e| e.kind == TraceKind::Drop);
    assert!(drops.count() >= 1, "the loss is traced");
    sim.heal();
    settle(&mut sim);
    assert_eq!(
        value(&sim, 2, "a"),
        Some(b"from-1".to_vec()),
        "retried after the heal"
    );
}

#[test]
fn fifo_links_keep_send_order_and_reordering_links_do_not() {
    // Many messages on one link, with delays drawn widely: count arrivals out of send order.
    let inversions = |fifo: bool| {
        let mut config = SimConfig::new(ModeKind::Eventual, Tob::Sequencer, 2);
        config.link = LinkConfig {
            delay_min_us: 0,
            delay_max_us: 10_000,
            fifo,
            ..LinkConfig::default()
        };
        let mut sim = Sim::new(config, 3);
        settle(&mut sim);
        for i in 0..200 {
            sim.submit(1, set(&format!("k{i}"), "v")).expect("up");
        }
        settle(&mut sim);
        let arrivals: Vec<String> = sim
            .trace()
            .iter()
            .filter(|e| e.kind == TraceKind::Receive && e.node == 2)
            .filter(|e| e.message.as_deref() == Some("update"))
            .map(|e| e.msg_id.expect("updates have ids").to_string())
            .collect();
        let seqs: Vec<u64> = arrivals
            .iter()
            .filter_map(|id| id.rsplit('#').next()?.parse().ok())
            .collect();
        assert_eq!(seqs.len(), 200, "every update arrived once: {arrivals:?}");
        seqs.windows(2).filter(|w| w[0] > w[1]).count()
    };
    assert_eq!(inversions(true), 0);
    assert!(inversions(false) > 0, "independent delays reorder");
}

#[test]
fn duplicated_messages_are_counted_and_harmless() {
    let mut config = SimConfig::new(ModeKind::Eventual, Tob::Sequencer, 3);
    config.link.duplicate = 0.5;
    let mut sim = Sim::new(config, 5);
    settle(&mut sim);
    for i in 0..20 {
        sim.submit(1 + i % 3, set("x", &i.to_string())).expect("up");
    }
    settle(&mut sim);
    assert!(sim.stats().duplicated > 0);
    let disks: Vec<_> = (1..=3)
        .map(|n| sim.disk(n).expect("disk").snapshot())
        .collect();
    assert!(disks.windows(2).all(|w| w[0] == w[1]), "replicas agree");
}

#[test]
fn a_crash_loses_open_requests_and_keeps_the_disk() {
    let mut config = SimConfig::new(ModeKind::Sequential, Tob::Sequencer, 3);
    config.link = LinkConfig {
        delay_min_us: 1_000,
        delay_max_us: 1_000,
        ..LinkConfig::default()
    };
    let mut sim = Sim::new(config, 1);
    settle(&mut sim);
    sim.submit(2, set("x", "1")).expect("up");
    settle(&mut sim);
    let answered = sim.take_replies();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].response, Response::Ok);
    // A write forwarded to the sequencer, then its origin crashes before the answer.
    let lost = sim.submit(2, set("x", "2")).expect("up");
    assert_eq!(sim.crash(2), vec![lost], "the open request is lost with n2");
    assert!(!sim.is_up(2));
    assert_eq!(
        sim.submit(2, get("x")),
        None,
        "a down node refuses requests"
    );
    assert_eq!(value(&sim, 2, "x"), Some(b"1".to_vec()), "its disk stays");
    sim.restart(2);
    settle(&mut sim);
    assert!(
        sim.take_replies().iter().all(|r| r.id != lost),
        "a lost request is never answered"
    );
    let faults: Vec<&str> = sim
        .trace()
        .iter()
        .filter(|e| e.kind == TraceKind::Fault)
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(faults, ["crashed", "restarted"]);
}

#[test]
fn unsynced_writes_are_lost_in_a_crash_and_synced_ones_kept() {
    let mut config = SimConfig::new(ModeKind::Eventual, Tob::Sequencer, 2);
    config.lose_unsynced = true;
    config.sync_interval_us = 1_000_000;
    let mut sim = Sim::new(config, 1);
    settle(&mut sim);
    sim.submit(1, set("early", "1")).expect("up");
    // Past a sync point: "early" is on disk.
    sim.run_until(sim.now_us() + 1_000_000);
    sim.isolate(1); // so that the late write stays only on n1
    sim.submit(1, set("late", "2")).expect("up");
    assert_eq!(
        value(&sim, 1, "late"),
        Some(b"2".to_vec()),
        "applied in memory and disk cache"
    );
    sim.crash(1);
    assert_eq!(value(&sim, 1, "early"), Some(b"1".to_vec()), "synced: kept");
    assert_eq!(value(&sim, 1, "late"), None, "not synced: lost");
    let crash = sim
        .trace()
        .iter()
        .rev()
        .find(|e| e.kind == TraceKind::Fault);
    assert!(
        crash.is_some_and(|e| e.detail.contains("unsynced writes lost")),
        "{crash:?}"
    );
}

#[test]
fn rng_is_a_pure_function_of_its_seed() {
    let draw = |seed| {
        let mut r = Rng::new(seed);
        (0..8).map(|_| r.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));
    let mut r = Rng::new(0);
    assert_eq!(r.below(0), 0, "no panic on an empty range");
    assert_eq!(r.between(5, 5), 5);
    assert!((0..1000).all(|_| r.between(3, 7) <= 7));
    assert!(
        !(0..1000).any(|_| r.chance(0.0)),
        "probability 0 never fires"
    );
}

#[test]
fn each_link_can_have_its_own_delay() {
    let mut sim = eventual(3, 1);
    let slow = LinkConfig {
        delay_min_us: 50_000,
        delay_max_us: 50_000,
        ..LinkConfig::default()
    };
    sim.set_link(1, 3, slow);
    let start = sim.now_us();
    sim.submit(1, set("x", "1")).expect("up");
    sim.run_until(start + 10_000);
    assert_eq!(value(&sim, 2, "x"), Some(b"1".to_vec()), "n1 → n2 is fast");
    assert_eq!(value(&sim, 3, "x"), None, "n1 → n3 takes 50 ms");
    sim.run_until(start + 50_000);
    assert_eq!(value(&sim, 3, "x"), Some(b"1".to_vec()));
}

/// A broken replication mode: applies writes locally and never tells anyone.
struct Hermit {
    me: NodeId,
}

impl Mode for Hermit {
    fn step(
        &mut self,
        input: Input,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        if let Input::Client { id, request } = input {
            let response = match request {
                Request::Get { key } => match storage.get(&key)? {
                    Some(Versioned { value: Some(v), .. }) => Response::Value(v),
                    _ => Response::NotFound,
                },
                Request::Set { key, value } => {
                    let stamp = crate::node::Stamp::new(1, self.me);
                    let value = Some(value);
                    storage.put(&key, &Versioned { value, stamp })?;
                    Response::Ok
                }
                Request::Del { key } => {
                    let stamp = crate::node::Stamp::new(1, self.me);
                    storage.put(&key, &Versioned { value: None, stamp })?;
                    Response::Ok
                }
            };
            out.push(Output::Reply { id, response });
        }
        Ok(())
    }

    fn id(&self) -> NodeId {
        self.me
    }

    fn pending(&self) -> usize {
        0
    }

    fn clock(&self) -> u64 {
        0
    }

    fn ready(&self) -> bool {
        true
    }

    fn set_tracing(&mut self, _on: bool) {}
}

#[test]
fn a_plugged_in_mode_runs_and_the_checkers_judge_it() {
    let mut config = SimConfig::new(ModeKind::Eventual, Tob::Sequencer, 3);
    config.factory = Some(ModeFactory(Arc::new(|me, _, _, _| {
        Ok(Box::new(Hermit { me }) as Box<dyn Mode + Send>)
    })));
    let options = run::RunOptions {
        ops: 100,
        check: Some(crate::check::Property::Eventual),
        ..run::RunOptions::default()
    };
    let result = run::run(&config, &options, 1);
    assert!(result.unsettled.is_none(), "nothing to wait for");
    assert!(
        matches!(
            result.verdict,
            Some((_, crate::check::Verdict::Violation(_)))
        ),
        "replicas that never talk do not converge: {:?}",
        result.verdict
    );
    assert_eq!(result.stats.delivered, 0, "it sent nothing");
}

#[test]
fn forwards_held_by_flow_control_are_numbered_when_the_follower_catches_up_not_at_a_retry() {
    let mut config = SimConfig::new(ModeKind::Sequential, Tob::Sequencer, 3);
    config.options.log_capacity = 16;
    // A retry interval far beyond the test's horizon: progress cannot come from retries.
    config.options.retry_interval_ms = 10_000;
    let mut sim = Sim::new(config, 1);
    settle(&mut sim);
    // n3's reports to the sequencer are lost: it stays alive (it was heard from recently) but
    // looks behind, so the sequencer holds new numbers back once 8 are unreported.
    sim.cut(3, 1);
    let ids: Vec<RequestId> = (0..20)
        .map(|i| sim.submit(2, set("k", &i.to_string())).expect("n2 is up"))
        .collect();
    let start = sim.now_us();
    sim.run_until(start + 200_000);
    let early = sim.take_replies();
    assert!(
        early.len() < ids.len(),
        "flow control held some writes back: {} of {} answered",
        early.len(),
        ids.len()
    );
    sim.heal();
    sim.run_until(start + 500_000);
    let late = sim.take_replies();
    let answered: Vec<&Reply> = early.iter().chain(&late).collect();
    assert_eq!(
        answered.len(),
        ids.len(),
        "every write answered within 0.5 s, 20 times sooner than a retry"
    );
    assert!(answered.iter().all(|r| r.response == Response::Ok));
    assert_eq!(
        value(&sim, 3, "k"),
        Some(b"19".to_vec()),
        "in order, everywhere"
    );
}
