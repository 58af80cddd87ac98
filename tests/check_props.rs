//! Property tests of the checkers against histories whose truth is known by construction.
//!
//! A correct server behaves as if each operation took effect at one instant inside its window.
//! So we generate exactly that: clients with random think times and latencies, a random
//! linearization point inside each operation's window, and results computed by applying the
//! operations to a plain `BTreeMap` in the order of those points. Such a history is
//! linearizable (and therefore sequentially consistent) by construction; the checkers must say
//! so every time. Then one read is made stale — it reports a value that had certainly been
//! overwritten before it began — and the linearizability checker must catch it and point at it.

use std::collections::BTreeMap;

use dkvs::check::{Budget, HistoryRecorder, Op, Outcome, Verdict, linearizable, sequential};
use proptest::prelude::*;

/// One client's plan: (think time, latency, where in the window it takes effect 0..=100, op).
type Plan = Vec<(u64, u64, u64, Cmd)>;

#[derive(Clone, Debug)]
enum Cmd {
    Get(u8),
    Set(u8),
    Del(u8),
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        3 => (0..3u8).prop_map(Cmd::Get),
        3 => (0..3u8).prop_map(Cmd::Set),
        1 => (0..3u8).prop_map(Cmd::Del),
    ]
}

fn plans() -> impl Strategy<Value = Vec<Plan>> {
    prop::collection::vec(
        prop::collection::vec((0..20u64, 1..40u64, 0..=100u64, cmd()), 1..25),
        1..6,
    )
}

/// A finished operation: (client, op, call, return, linearization point, outcome).
struct Done {
    client: u64,
    op: Op,
    call: u64,
    ret: u64,
    outcome: Outcome,
}

/// Runs the plans against a sequential map, each operation taking effect at its point.
fn run(plans: &[Plan]) -> Vec<Done> {
    let mut scheduled = Vec::new();
    for (client, plan) in plans.iter().enumerate() {
        let mut now = 0;
        for (i, (think, latency, at, cmd)) in plan.iter().enumerate() {
            let call = now + think;
            let ret = call + latency;
            let point = call + latency * at / 100;
            now = ret + 1;
            let key = |k: &u8| format!("k{k}");
            let op = match cmd {
                Cmd::Get(k) => Op::Get { key: key(k) },
                // Every write writes a value no other write writes.
                Cmd::Set(k) => Op::Set {
                    key: key(k),
                    value: format!("{client}.{i}"),
                },
                Cmd::Del(k) => Op::Del { key: key(k) },
            };
            // Ties broken by client so the order is a function of the plan.
            scheduled.push((point, client as u64, call, ret, op));
        }
    }
    scheduled.sort_by_key(|s| (s.0, s.1));
    let mut map = BTreeMap::new();
    scheduled
        .into_iter()
        .map(|(_, client, call, ret, op)| {
            let outcome = match &op {
                Op::Get { key } => match map.get(key) {
                    Some(v) => Outcome::Value {
                        value: String::clone(v),
                    },
                    None => Outcome::NotFound,
                },
                Op::Set { key, value } => {
                    map.insert(key.clone(), value.clone());
                    Outcome::Ok
                }
                Op::Del { key } => {
                    map.remove(key);
                    Outcome::Ok
                }
                _ => unreachable!("only get/set/del are generated"),
            };
            Done {
                client,
                op,
                call,
                ret,
                outcome,
            }
        })
        .collect()
}

fn record(done: &[Done]) -> dkvs::check::History {
    let rec = HistoryRecorder::new();
    for d in done {
        let id = rec.invoke_at(d.call, d.client, d.op.clone());
        rec.complete_at(d.ret, id, d.outcome.clone());
    }
    rec.history().expect("well-formed by construction")
}

/// Finds a read that can be made certainly stale: some write `u` of its key returned before a
/// later write `w` (of another value) began, and `w` returned before the read began. Reporting
/// `u`'s value is then impossible in any linearization. Returns (read index, stale value).
fn stale_candidate(done: &[Done]) -> Option<(usize, String)> {
    for (ri, r) in done.iter().enumerate() {
        let Op::Get { key } = &r.op else { continue };
        let writes =
            |d: &&Done| matches!(&d.op, Op::Set { key: k, .. } | Op::Del { key: k } if k == key);
        for w in done.iter().filter(writes).filter(|w| w.ret < r.call) {
            for u in done.iter().filter(writes).filter(|u| u.ret < w.call) {
                if let Op::Set { value, .. } = &u.op {
                    return Some((ri, value.clone()));
                }
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_sequential_map_under_concurrency_is_linearizable(plans in plans()) {
        let history = record(&run(&plans));
        let budget = Budget::unlimited_time();
        let verdict = linearizable::check(&history, &budget);
        prop_assert_eq!(&verdict, &Verdict::Consistent);
        prop_assert_eq!(sequential::check(&history, &budget), Verdict::Consistent);
    }

    #[test]
    fn one_injected_stale_read_is_caught(plans in plans()) {
        let mut done = run(&plans);
        let candidate = stale_candidate(&done);
        prop_assume!(candidate.is_some());
        let (read, stale) = candidate.expect("checked above");
        done[read].outcome = Outcome::Value { value: stale };
        let history = record(&done);
        let Verdict::Violation(v) = linearizable::check(&history, &Budget::unlimited_time()) else {
            return Err(TestCaseError::fail("the stale read went unnoticed"));
        };
        let (call, client) = (done[read].call, done[read].client);
        prop_assert!(
            v.ops.iter().any(|o| o.call_ns == call && o.client == client),
            "the explanation must show the stale read: {:?}", v
        );
        prop_assert!(v.minimal);
    }
}
