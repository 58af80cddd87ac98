//! Deliberately wrong stores, to prove the graded checks catch them (these are not solutions:
//! each takes one tempting shortcut).

use std::collections::BTreeMap;

use lab04_linearizable::grading;
use lab04_linearizable::{Entry, Kv, Linearizable};
use labkit::{Command, NodeId, RequestId, Response, Stamp, Version};

/// Lab 03's store: writes through the order, reads from the local copy. Sequentially
/// consistent, and stale.
struct LocalReads {
    waiting: BTreeMap<u64, RequestId>,
    delivered: u64,
}

fn read(kv: &mut Kv<'_, '_>, key: &str) -> Response {
    match kv.load(key) {
        Some(Version {
            value: Some(value), ..
        }) => Response::Value(value.into_bytes()),
        _ => Response::NotFound,
    }
}

fn apply(kv: &mut Kv<'_, '_>, delivered: u64, entry: &Entry) {
    let stamp = Stamp::new(delivered, entry.origin);
    match &entry.command {
        Command::Set { key, value } => {
            let value = Some(value.clone());
            kv.save(key, &Version { value, stamp });
        }
        Command::Del { key } => kv.save(key, &Version { value: None, stamp }),
        Command::Get { .. } => {}
    }
}

impl Linearizable for LocalReads {
    fn new(_me: NodeId, _nodes: &[NodeId]) -> Self {
        LocalReads {
            waiting: BTreeMap::new(),
            delivered: 0,
        }
    }

    fn on_client(&mut self, kv: &mut Kv<'_, '_>, id: RequestId, command: Command) {
        if let Command::Get { key } = &command {
            let response = read(kv, key);
            kv.reply(id, response);
            return;
        }
        let entry = kv.broadcast(command);
        self.waiting.insert(entry, id);
    }

    fn on_deliver(&mut self, kv: &mut Kv<'_, '_>, entry: Entry) {
        self.delivered += 1;
        apply(kv, self.delivered, &entry);
        if entry.origin == kv.me()
            && let Some(request) = self.waiting.remove(&entry.id)
        {
            kv.reply(request, Response::Ok);
        }
    }

    fn pending(&self) -> usize {
        self.waiting.len()
    }
}

/// Reads in the order, but writes acknowledged as soon as they are broadcast, before anyone
/// delivered them.
struct HastyWrites {
    waiting: BTreeMap<u64, RequestId>,
    delivered: u64,
}

impl Linearizable for HastyWrites {
    fn new(_me: NodeId, _nodes: &[NodeId]) -> Self {
        HastyWrites {
            waiting: BTreeMap::new(),
            delivered: 0,
        }
    }

    fn on_client(&mut self, kv: &mut Kv<'_, '_>, id: RequestId, command: Command) {
        let write = command.is_write();
        let entry = kv.broadcast(command);
        if write {
            kv.reply(id, Response::Ok);
        } else {
            self.waiting.insert(entry, id);
        }
    }

    fn on_deliver(&mut self, kv: &mut Kv<'_, '_>, entry: Entry) {
        self.delivered += 1;
        apply(kv, self.delivered, &entry);
        if let Command::Get { key } = &entry.command
            && entry.origin == kv.me()
            && let Some(request) = self.waiting.remove(&entry.id)
        {
            let response = read(kv, key);
            kv.reply(request, response);
        }
    }

    fn pending(&self) -> usize {
        self.waiting.len()
    }
}

#[test]
fn local_reads_are_caught_as_stale_with_a_seed_and_a_diagram() {
    let failure = grading::linearizable_under_delays::<LocalReads>()
        .expect_err("a local read misses writes acknowledged elsewhere");
    assert!(failure.seed.is_some(), "{failure}");
    assert!(failure.summary.contains("not linearizable"), "{failure}");
    assert!(
        failure.details.contains("order") && failure.details.contains("reply"),
        "the details draw the messages: {failure}"
    );
}

#[test]
fn local_reads_fail_the_snapshot_of_the_stale_read() {
    let transcript = grading::scenario::<LocalReads>("no-stale-read.txt").unwrap();
    assert!(
        transcript.contains("n3: request 2 (get x) → NOT_FOUND"),
        "{transcript}"
    );
    assert!(transcript.contains("stale read"), "{transcript}");
}

#[test]
fn writes_acknowledged_before_delivery_are_caught() {
    let failure = grading::linearizable_under_delays::<HastyWrites>()
        .expect_err("an early OK lets a later read miss the write");
    assert!(failure.seed.is_some(), "{failure}");
}
