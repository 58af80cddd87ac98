//! The history checkers on a real server: concurrent clients record what they asked and what
//! they were told with `HistoryRecorder`, and a single dkvs node — one copy of the data, every
//! request applied in one order — must come out linearizable. The same history with one reply
//! altered after the fact must not.

mod common;

use std::thread;

use common::{Client, ServerProcess, config};
use dkvs::check::{Budget, HistoryRecorder, Op, Outcome, Verdict, linearizable, sequential};

const CLIENTS: u64 = 6;
const OPS_PER_CLIENT: u64 = 150;
const KEYS: u64 = 3;

/// A tiny deterministic generator (xorshift64*), so each client's mix is fixed by its number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Sends `op` as a text line and turns the reply into an outcome.
fn perform(client: &mut Client, op: &Op) -> Outcome {
    let reply = client.request(&dkvs::workload::line(op));
    let outcome = dkvs::workload::outcome(&reply);
    assert_ne!(outcome, Outcome::Fail, "unexpected reply {reply:?} to {op}");
    outcome
}

#[test]
fn a_single_node_is_linearizable_under_concurrent_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(dir.path(), &dir.path().join("data"), &config("never", ""));
    let recorder = HistoryRecorder::new();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (addr, recorder) = (server.addr, recorder.clone());
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c + 1));
                for i in 0..OPS_PER_CLIENT {
                    let key = format!("k{}", rng.next() % KEYS);
                    let op = match rng.next() % 10 {
                        0..=4 => Op::Get { key },
                        5..=8 => Op::Set {
                            key,
                            value: format!("{c}.{i}"),
                        },
                        _ => Op::Del { key },
                    };
                    let id = recorder.invoke(c, op.clone());
                    let outcome = perform(&mut client, &op);
                    recorder.complete(id, outcome);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("client thread");
    }
    let mut history = recorder.history().expect("well-formed history");
    assert_eq!(history.ops.len() as u64, CLIENTS * OPS_PER_CLIENT);
    let budget = Budget::default();
    assert_eq!(linearizable::check(&history, &budget), Verdict::Consistent);
    assert_eq!(sequential::check(&history, &budget), Verdict::Consistent);

    // Now make the last read that found a value report one the key held earlier and that had
    // been overwritten before the read began; the checker must object.
    let stale = (0..history.ops.len()).rev().find_map(|r| {
        let read = &history.ops[r];
        let Op::Get { key } = &read.op else {
            return None;
        };
        let writes: Vec<_> = history
            .ops
            .iter()
            .filter(|w| matches!(&w.op, Op::Set { key: k, .. } | Op::Del { key: k } if k == key))
            .collect();
        writes.iter().find_map(|old| {
            let Op::Set { value, .. } = &old.op else {
                return None;
            };
            let overwritten = writes.iter().any(|w| {
                matches!((old.return_ns, w.return_ns),
                    (Some(o), Some(done)) if w.call_ns > o && done < read.call_ns)
            });
            overwritten.then(|| (r, value.clone()))
        })
    });
    let (r, value) = stale.expect("some read followed two completed writes of its key");
    history.ops[r].outcome = Outcome::Value { value };
    let Verdict::Violation(v) = linearizable::check(&history, &budget) else {
        panic!("the altered read went unnoticed");
    };
    assert!(v.ops.iter().any(|o| o.index == r), "{v:?}");
}
