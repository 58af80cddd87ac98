//! labkit end to end: small processes run in the simulator, judged, and failed in the
//! grader's protocol.

use std::fmt;

use dkvs::check::Property;
use labkit::{Command, Ctx, NodeId, Process, RequestId, Response, Stamp, Sweep, Version, factory};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    /// A command a node sends itself, answered when it comes back.
    Later { id: u64, command: Command },
    /// Sent to itself forever.
    Again,
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A store that keeps everything to itself: fine alone, never converges with others.
/// `defer` makes it answer through a message to itself; `spin` makes that message endless;
/// `todo` makes it panic.
#[derive(Default)]
struct Hermit {
    time: u64,
    defer: bool,
    spin: bool,
    todo: bool,
}

impl Hermit {
    fn execute(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command) {
        self.time += 1;
        let stamp = Stamp::new(self.time, ctx.me());
        let response = match command {
            Command::Get { key } => match ctx.load(&key) {
                Some(Version { value: Some(v), .. }) => Response::Value(v.into_bytes()),
                _ => Response::NotFound,
            },
            Command::Set { key, value } => {
                let value = Some(value);
                ctx.save(&key, &Version { value, stamp });
                Response::Ok
            }
            Command::Del { key } => {
                ctx.save(&key, &Version { value: None, stamp });
                Response::Ok
            }
        };
        ctx.reply(id, response);
    }
}

impl Process for Hermit {
    type Msg = Msg;

    fn on_client(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command) {
        if self.todo {
            todo!("lab09: Hermit::on_client")
        }
        if self.spin {
            ctx.send(ctx.me(), Msg::Again);
        }
        if self.defer {
            ctx.send(ctx.me(), Msg::Later { id: id.0, command });
        } else {
            self.execute(ctx, id, command);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: NodeId, msg: Msg) {
        match msg {
            Msg::Later { id, command } => self.execute(ctx, RequestId(id), command),
            Msg::Again => ctx.send(ctx.me(), Msg::Again),
        }
    }

    fn on_tick(&mut self, _ctx: &mut Ctx<'_, Msg>) {}

    fn pending(&self) -> usize {
        0
    }
}

fn sweep(nodes: u32, property: Property, make: fn() -> Hermit) -> Sweep {
    let mut sweep = Sweep::new(factory(move |_, _| make()), property);
    sweep.nodes = nodes;
    sweep.seeds = 1..=3;
    sweep.ops = 60;
    sweep
}

#[test]
fn one_node_alone_is_linearizable() {
    sweep(1, Property::Linearizable, Hermit::default)
        .run()
        .expect("a single copy is linearizable");
}

#[test]
fn messages_to_oneself_come_back_in_the_same_step() {
    let deferred = || Hermit {
        defer: true,
        ..Hermit::default()
    };
    sweep(1, Property::Linearizable, deferred)
        .run()
        .expect("answers through a message to itself");
}

#[test]
fn replicas_that_never_talk_fail_with_a_seed_a_reason_and_a_history() {
    let failure = sweep(3, Property::Eventual, Hermit::default)
        .run()
        .expect_err("three hermits never agree");
    assert_eq!(failure.seed, Some(1), "{failure}");
    assert!(failure.summary.starts_with("not eventual"), "{failure}");
    assert!(failure.details.contains("client"), "{failure}");
}

#[test]
fn a_todo_in_the_code_under_test_is_one_line() {
    let unfinished = || Hermit {
        todo: true,
        ..Hermit::default()
    };
    let failure = sweep(1, Property::Linearizable, unfinished)
        .run()
        .expect_err("todo! fails");
    assert!(
        failure
            .summary
            .starts_with("panicked: not yet implemented: lab09: Hermit::on_client (at "),
        "{failure}"
    );
    assert!(!failure.summary.contains('\n'));
}

#[test]
fn a_node_that_messages_itself_forever_is_stopped() {
    let spinning = || Hermit {
        spin: true,
        ..Hermit::default()
    };
    let failure = sweep(1, Property::Linearizable, spinning)
        .run()
        .expect_err("an endless loop of messages to itself");
    assert!(
        failure.summary.contains("sent itself more than"),
        "{failure}"
    );
}

#[test]
fn a_failure_fails_the_test_in_the_graders_protocol() {
    let failure = labkit::Failure {
        seed: Some(17),
        summary: "not linearizable: a stale read".into(),
        details: "the history\n".into(),
    };
    let payload = std::panic::catch_unwind(|| failure.fail("lab09-x", "lab09_y")).unwrap_err();
    // labkit's own payload, which its panic hook prints without a backtrace.
    let text = &payload
        .downcast_ref::<labkit::TestFailure>()
        .expect("a TestFailure")
        .0;
    assert_eq!(
        text,
        "seed 17: not linearizable: a stale read\n\
         reproduce: LAB_SEED=17 cargo test -p lab09-x --test grade lab09_y\n\
         the history\n"
    );
}
