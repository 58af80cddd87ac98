//! Replicas that are wrong on purpose, and the checks that catch them.
//!
//! A graded check that passes every implementation grades nothing. Each replica here breaks
//! one rule of the README, the way a student plausibly might, and its test shows that a graded
//! check fails on it with a seed, a one-line reason and the details (the checker's history and
//! a message diagram) a student would need to find the mistake. These tests do not depend on
//! `src/student.rs`: they pass before and after the lab is done.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use lab02_eventual::{Msg, Replica, grading};
use labkit::{Command, Ctx, Failure, NodeId, RequestId, Response, Stamp, Version};

/// One way to get the protocol wrong.
trait Flaw: Send + 'static {
    /// Whether an update stamped `incoming` replaces the version stamped `stored`.
    fn replaces(incoming: Stamp, stored: Option<Stamp>) -> bool {
        stored.is_none_or(|s| incoming > s)
    }
    /// Whether the replica keeps its updates until acknowledged, and resends them.
    const RETRIES: bool = true;
    /// Whether the replica acknowledges an update it did not store.
    const ACKS_EVERY_UPDATE: bool = true;
}

/// Sends each update once and forgets it: a lost message is lost for good.
struct FireAndForget;
impl Flaw for FireAndForget {
    const RETRIES: bool = false;
}

/// Stores every update it receives: the last to *arrive* wins, not the last stamp.
struct ArrivalOrder;
impl Flaw for ArrivalOrder {
    fn replaces(_incoming: Stamp, _stored: Option<Stamp>) -> bool {
        true
    }
}

/// Acknowledges only the updates it stores: a duplicate or an outdated update is never
/// acknowledged, so its origin resends it for ever.
struct AcksOnlyNews;
impl Flaw for AcksOnlyNews {
    const ACKS_EVERY_UPDATE: bool = false;
}

/// Compares Lamport times only: of two writes with equal times, each replica keeps the one it
/// saw first.
struct TimeOnly;
impl Flaw for TimeOnly {
    fn replaces(incoming: Stamp, stored: Option<Stamp>) -> bool {
        stored.is_none_or(|s| incoming.time > s.time)
    }
}

/// A replica that follows the README except where its [`Flaw`] says otherwise.
struct Flawed<F> {
    me: NodeId,
    others: Vec<NodeId>,
    /// The Lamport time of the last event.
    time: u64,
    next_id: u64,
    /// (update id, node that has not acknowledged it) → the update.
    unacked: BTreeMap<(u64, NodeId), (String, Version)>,
    flaw: PhantomData<fn() -> F>,
}

impl<F: Flaw> Replica for Flawed<F> {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        Flawed {
            me,
            others: nodes.iter().copied().filter(|&n| n != me).collect(),
            time: 0,
            next_id: 1,
            unacked: BTreeMap::new(),
            flaw: PhantomData,
        }
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command) {
        let (key, value) = match command {
            Command::Get { key } => {
                let response = match ctx.load(&key).and_then(|v| v.value) {
                    Some(v) => Response::Value(v.into_bytes()),
                    None => Response::NotFound,
                };
                ctx.reply(id, response);
                return;
            }
            Command::Set { key, value } => (key, Some(value)),
            Command::Del { key } => (key, None),
        };
        self.time += 1;
        let version = Version {
            value,
            stamp: Stamp::new(self.time, self.me),
        };
        ctx.save(&key, &version);
        ctx.reply(id, Response::Ok);
        let update = self.next_id;
        self.next_id += 1;
        for &to in &self.others {
            if F::RETRIES {
                self.unacked
                    .insert((update, to), (key.clone(), version.clone()));
            }
            let msg = Msg::Update {
                id: update,
                key: key.clone(),
                version: version.clone(),
            };
            ctx.send(to, msg);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Update { id, key, version } => {
                self.time = self.time.max(version.stamp.time) + 1;
                let stored = ctx.load(&key).map(|v| v.stamp);
                let stores = F::replaces(version.stamp, stored);
                if stores {
                    ctx.save(&key, &version);
                }
                if stores || F::ACKS_EVERY_UPDATE {
                    ctx.send(from, Msg::Ack { id });
                }
            }
            Msg::Ack { id } => {
                self.unacked.remove(&(id, from));
            }
        }
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, Msg>) {
        for (&(id, to), (key, version)) in &self.unacked {
            let msg = Msg::Update {
                id,
                key: key.clone(),
                version: version.clone(),
            };
            ctx.send(to, msg);
        }
    }

    fn pending(&self) -> usize {
        let ids: BTreeSet<u64> = self.unacked.keys().map(|&(id, _)| id).collect();
        ids.len()
    }
}

/// The failure `result` must be, checked for what a student needs: a seed, a one-line
/// reason containing `expected`, and details to read.
fn caught(what: &str, result: Result<(), Failure>, expected: &str) -> Failure {
    let failure = match result {
        Ok(()) => panic!("{what}: the check passed a wrong replica"),
        Err(failure) => failure,
    };
    assert!(failure.seed.is_some(), "{what}: no seed in {failure}");
    assert!(
        !failure.summary.contains('\n') && failure.summary.contains(expected),
        "{what}: expected one line with {expected:?}, got {:?}",
        failure.summary
    );
    assert!(
        !failure.summary.starts_with("panicked"),
        "{what}: the wrong replica panicked: {}",
        failure.summary
    );
    // The details end with a message diagram: a header row naming the nodes.
    assert!(
        failure.details.contains("n1") && failure.details.contains("ms"),
        "{what}: no diagram in the details:\n{}",
        failure.details
    );
    failure
}

/// The reference's transcript for a scenario, as stored by `tests/grade.rs`.
fn stored_snapshot(name: &str) -> String {
    let path = format!(
        "{}/tests/snapshots/grade__{name}.snap",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // Past insta's header: `---`, metadata, `---`.
    let body = text.splitn(3, "---\n").nth(2).expect("an insta header");
    body.trim().to_string()
}

#[test]
fn a_replica_that_never_retries_diverges_when_messages_are_lost() {
    let failure = caught(
        "fire and forget, drops",
        grading::converges_despite_drops_and_duplicates::<Flawed<FireAndForget>>(),
        "not eventual",
    );
    assert!(
        failure.details.contains('✗'),
        "the diagram should show the lost update:\n{}",
        failure.details
    );
    caught(
        "fire and forget, partitions",
        grading::converges_across_partitions::<Flawed<FireAndForget>>(),
        "not eventual",
    );
    let transcript =
        grading::a_lost_update_is_retried::<Flawed<FireAndForget>>().expect("the script runs");
    assert_ne!(
        transcript.trim(),
        stored_snapshot("a_lost_update_is_retried"),
        "no retry, yet the same flow as the reference"
    );
}

#[test]
fn a_replica_that_keeps_the_last_arrival_diverges() {
    caught(
        "arrival order, reorder and delay",
        grading::converges_despite_reordering_and_delay::<Flawed<ArrivalOrder>>(),
        "not eventual",
    );
    let transcript = grading::concurrent_writes_agree_by_stamp::<Flawed<ArrivalOrder>>()
        .expect("the script runs");
    assert_ne!(
        transcript.trim(),
        stored_snapshot("concurrent_writes_agree_by_stamp")
    );
    assert!(
        transcript.contains("NOT eventually consistent"),
        "{transcript}"
    );
}

#[test]
fn a_replica_that_acks_only_what_it_stores_never_settles() {
    let failure = caught(
        "acks only news, drops and duplicates",
        grading::converges_despite_drops_and_duplicates::<Flawed<AcksOnlyNews>>(),
        "never settled",
    );
    assert!(
        failure.details.starts_with("the last messages:"),
        "{}",
        failure.details
    );
}

#[test]
fn a_replica_that_ignores_the_node_in_a_stamp_diverges_on_ties() {
    caught(
        "time only, no faults",
        grading::converges_without_faults::<Flawed<TimeOnly>>(),
        "not eventual",
    );
    let transcript =
        grading::concurrent_writes_agree_by_stamp::<Flawed<TimeOnly>>().expect("the script runs");
    assert!(
        transcript.contains("NOT eventually consistent"),
        "{transcript}"
    );
}

#[test]
fn a_replica_that_panics_fails_with_one_line() {
    // Whatever src/student.rs holds, a replica that panics fails a check with one line
    // naming the panic, never a hang or a wall of backtraces.
    struct Unfinished;
    impl Replica for Unfinished {
        fn new(_: NodeId, _: &[NodeId]) -> Self {
            todo!("lab02: keep who you are")
        }
        fn on_client(&mut self, _: &mut Ctx<'_, Msg>, _: RequestId, _: Command) {}
        fn on_message(&mut self, _: &mut Ctx<'_, Msg>, _: NodeId, _: Msg) {}
        fn on_tick(&mut self, _: &mut Ctx<'_, Msg>) {}
        fn pending(&self) -> usize {
            0
        }
    }
    let failure = grading::converges_without_faults::<Unfinished>().expect_err("a todo");
    assert!(
        failure
            .summary
            .starts_with("panicked: not yet implemented: lab02: keep who you are (at "),
        "{}",
        failure.summary
    );
    let failure = grading::a_write_reaches_every_replica::<Unfinished>().expect_err("a todo");
    assert!(
        failure.summary.contains("lab02: keep who you are"),
        "{}",
        failure.summary
    );
}
