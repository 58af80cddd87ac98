//! Golden scenario scripts: a story of commands, run in the simulator, told back as a
//! transcript.
//!
//! A scenario shows one lesson of a stage — the stale read sequential consistency allows and
//! linearizability forbids, replicas that diverge under a partition and converge after it — as
//! a short text file a student can read, change and run (`dkvs scenario FILE`). Each stage
//! keeps its scenarios in `stages/<stage>/scenarios/*.txt`; the test suite runs them all and
//! compares each transcript with a stored copy (toydb tests its Raft the same way).
//!
//! # The language
//!
//! One command per line; `#` starts a comment, which the transcript keeps (say *why*).
//!
//! | command | what it does |
//! |---|---|
//! | `cluster nodes=3 mode=sequential tob=lamport` | first line: the cluster (`mode` eventual, sequential or linearizable; `tob` sequencer or lamport; optional `retry_ms=`, `log_capacity=`, `seed=`) |
//! | `set n1 x=1`, `get n2 x`, `del n1 x` | a client request to a node; its answer is printed when it comes |
//! | `deliver` | delivers every message now in flight, in the order they were sent (messages this causes stay in flight) |
//! | `deliver n1->n2` | the same, for one link only |
//! | `stabilize` | runs the network and the timers until nothing is left to do |
//! | `tick 200` | lets 200 ms pass: timers fire (retries), nothing is delivered |
//! | `partition n3` | cuts n3 off from everyone, both ways |
//! | `partition n1->n2` | cuts one link, one way |
//! | `heal` | restores every link |
//! | `crash n2`, `restart n2` | stops a node (its disk survives), starts it again from its disk |
//! | `trace` | draws the messages since the last `trace` as a diagram |
//! | `dump` | prints every node's keys and values |
//! | `check linearizable` | judges the requests so far (also `sequential`, `eventual`) |
//!
//! Messages move only when the script says so (`deliver`, `stabilize`): that is what lets a
//! scenario stop a write half way and read from a replica that has not seen it. Every command
//! takes one millisecond of virtual time, so requests on consecutive lines do not overlap in
//! real time (which is what the linearizability check looks at).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::check::{self, Budget, Clock, Event, History, Op, Outcome, Property, Report, Verdict};
use crate::node::{ModeKind, NodeId, Request, RequestId, Response, Tob};
use crate::trace::{self, DiagramOptions};

use super::{LinkConfig, ModeFactory, Sim, SimConfig};

/// A script that cannot run, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// How long `stabilize` may run, in virtual time, before it gives up.
const STABILIZE_LIMIT_US: u64 = 60_000_000;

/// Virtual time each command takes.
const COMMAND_US: u64 = 1_000;

/// A request the script sent.
struct Sent {
    node: NodeId,
    /// The operation as the history records it.
    op: Op,
    /// Its id in the history.
    op_id: u64,
    client: u64,
}

/// The state of a running script.
struct Runner {
    sim: Sim,
    out: String,
    /// Requests not yet answered.
    open: BTreeMap<RequestId, Sent>,
    /// The history of every request, for `check`.
    events: Vec<Event>,
    next_op: u64,
    /// Clients (one per node, plus extra ones while a node's client waits) that wait.
    busy_clients: BTreeMap<u64, RequestId>,
    next_extra_client: u64,
    /// Where the last `trace` stopped.
    traced: usize,
}

/// Runs `script` and returns its transcript.
///
/// # Errors
/// A [`ScriptError`] naming the first line that is not a valid command.
pub fn run(script: &str) -> Result<String, ScriptError> {
    run_with(script, None)
}

/// Runs `script` with the nodes `factory` builds instead of the toolkit's own modes (the labs
/// run a student's code this way); the `cluster` line still names the level to `check`.
///
/// # Errors
/// As [`run`].
pub fn run_with(script: &str, factory: Option<&ModeFactory>) -> Result<String, ScriptError> {
    let mut runner: Option<Runner> = None;
    let mut out = String::new();
    for (i, raw) in script.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| ScriptError { line, message };
        let (command, comment) = match raw.find('#') {
            Some(at) => (raw[..at].trim(), Some(raw[at..].trim_end())),
            None => (raw.trim(), None),
        };
        if command.is_empty() {
            // Comments and blank lines are part of the story.
            let text = comment.unwrap_or("");
            match &mut runner {
                Some(r) => writeln!(r.out, "{text}").expect("a String"),
                None => writeln!(out, "{text}").expect("a String"),
            }
            continue;
        }
        let words: Vec<&str> = command.split_whitespace().collect();
        if words[0] == "cluster" {
            if runner.is_some() {
                return Err(err("only one `cluster` line per script".into()));
            }
            let mut config = cluster(&words[1..]).map_err(err)?;
            config.0.factory = factory.cloned();
            let mut r = Runner::new(config.0, config.1);
            r.out = std::mem::take(&mut out);
            r.echo(raw);
            writeln!(
                r.out,
                "  {} nodes, {}{}",
                r.sim.node_ids().len(),
                r.sim.config().kind,
                if factory.is_some() {
                    " to check, nodes under test".to_string()
                } else if r.sim.config().kind == ModeKind::Eventual {
                    String::new()
                } else {
                    format!(" over {}", r.sim.config().tob)
                }
            )
            .expect("a String");
            runner = Some(r);
            continue;
        }
        let Some(r) = runner.as_mut() else {
            return Err(err("the script must start with a `cluster` line".into()));
        };
        r.echo(raw);
        r.sim.advance(COMMAND_US);
        r.command(&words).map_err(err)?;
        r.replies();
    }
    Ok(match runner {
        Some(r) => r.out,
        None => out,
    })
}

/// Reads the `cluster` line's settings.
fn cluster(args: &[&str]) -> Result<(SimConfig, u64), String> {
    let mut nodes = 3u32;
    let mut kind = None;
    let mut tob = Tob::Sequencer;
    let mut seed = 1;
    let mut retry_ms = None;
    let mut log_capacity = None;
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {arg:?}"))?;
        let number = || {
            v.parse::<u64>()
                .map_err(|_| format!("{k}={v}: not a number"))
        };
        match k {
            "nodes" => {
                nodes = number()?
                    .try_into()
                    .ok()
                    .filter(|n| (1..=9).contains(n))
                    .ok_or("nodes: 1 to 9")?;
            }
            "mode" => {
                kind = Some(match v {
                    "eventual" => ModeKind::Eventual,
                    "sequential" => ModeKind::Sequential,
                    "linearizable" => ModeKind::Linearizable,
                    _ => {
                        return Err(format!(
                            "mode={v}: expected eventual, sequential or linearizable"
                        ));
                    }
                });
            }
            "tob" => {
                tob = match v {
                    "sequencer" => Tob::Sequencer,
                    "lamport" => Tob::Lamport,
                    _ => return Err(format!("tob={v}: expected sequencer or lamport")),
                };
            }
            "seed" => seed = number()?,
            "retry_ms" => retry_ms = Some(number()?.max(1)),
            "log_capacity" => log_capacity = Some(number()?.max(1) as usize),
            _ => return Err(format!("unknown cluster setting {k:?}")),
        }
    }
    let kind = kind.ok_or("cluster: mode= is required")?;
    let mut config = SimConfig::new(kind, tob, nodes);
    // One fixed delay on every link: the script decides the order, not chance.
    config.link = LinkConfig {
        delay_min_us: 1_000,
        delay_max_us: 1_000,
        ..LinkConfig::default()
    };
    if let Some(ms) = retry_ms {
        config.options.retry_interval_ms = ms;
    }
    if let Some(n) = log_capacity {
        config.options.log_capacity = n;
    }
    config.tick_interval_us = config.options.retry_interval_ms * 1000 / 2;
    Ok((config, seed))
}

/// `n3` → 3.
fn node_arg(word: &str, sim: &Sim) -> Result<NodeId, String> {
    let id = word
        .strip_prefix('n')
        .and_then(|n| n.parse::<NodeId>().ok())
        .ok_or_else(|| format!("expected a node such as n1, got {word:?}"))?;
    if sim.node_ids().contains(&id) {
        Ok(id)
    } else {
        Err(format!("there is no node n{id}"))
    }
}

/// `n1->n2` (spaces around the arrow allowed) → (1, 2).
fn link_arg(words: &[&str], sim: &Sim) -> Result<(NodeId, NodeId), String> {
    let joined = words.concat();
    let (a, b) = joined
        .split_once("->")
        .ok_or_else(|| format!("expected a link such as n1->n2, got {:?}", words.join(" ")))?;
    Ok((node_arg(a, sim)?, node_arg(b, sim)?))
}

impl Runner {
    fn new(config: SimConfig, seed: u64) -> Runner {
        let mut sim = Sim::new(config, seed);
        // The nodes' start-up handshake (followers asking where the order stands) is not
        // part of any lesson: run it before the story starts, and leave it out of the trace.
        let limit = sim.now_us() + STABILIZE_LIMIT_US;
        while !sim.quiet() && sim.now_us() < limit {
            sim.step_next();
        }
        let traced = sim.trace().len();
        Runner {
            sim,
            out: String::new(),
            open: BTreeMap::new(),
            events: Vec::new(),
            next_op: 0,
            busy_clients: BTreeMap::new(),
            next_extra_client: 100,
            traced,
        }
    }

    fn echo(&mut self, raw: &str) {
        writeln!(self.out, "> {}", raw.trim()).expect("a String");
    }

    fn say(&mut self, text: impl AsRef<str>) {
        writeln!(self.out, "  {}", text.as_ref()).expect("a String");
    }

    fn now_ns(&self) -> u64 {
        self.sim.now_us() * 1000
    }

    fn command(&mut self, words: &[&str]) -> Result<(), String> {
        let args = &words[1..];
        match words[0] {
            "set" | "get" | "del" => self.request(words[0], args),
            "deliver" => {
                let n = if args.is_empty() {
                    self.sim.deliver_now(|_, _| true)
                } else {
                    let (from, to) = link_arg(args, &self.sim)?;
                    self.sim.deliver_now(|a, b| a == from && b == to)
                };
                let left = self.sim.in_flight();
                self.say(format!(
                    "{n} {} delivered, {left} in flight",
                    if n == 1 { "message" } else { "messages" }
                ));
                Ok(())
            }
            "stabilize" => {
                self.no_args(args)?;
                self.stabilize();
                Ok(())
            }
            "tick" => {
                let ms: u64 = match args {
                    [] => self.sim.config().options.retry_interval_ms,
                    [ms] => ms
                        .parse()
                        .map_err(|_| format!("tick {ms}: not a number of milliseconds"))?,
                    _ => return Err("tick takes one number of milliseconds".into()),
                };
                self.sim.advance(ms * 1000);
                self.sim.tick_all();
                let n = self.sim.in_flight();
                self.say(format!("{ms} ms later: {n} in flight"));
                Ok(())
            }
            "partition" => {
                if args.len() == 1 {
                    let node = node_arg(args[0], &self.sim)?;
                    self.sim.isolate(node);
                    self.say(format!("n{node} is cut off from every other node"));
                } else {
                    let (from, to) = link_arg(args, &self.sim)?;
                    self.sim.cut(from, to);
                    self.say(format!("messages from n{from} to n{to} are lost"));
                }
                Ok(())
            }
            "heal" => {
                self.no_args(args)?;
                self.sim.heal();
                self.say("every link works again");
                Ok(())
            }
            "crash" => {
                let node = self.one_node(args)?;
                if !self.sim.is_up(node) {
                    return Err(format!("n{node} is already down"));
                }
                let lost = self.sim.crash(node);
                let mut text = format!("n{node} crashed");
                for rid in lost {
                    if let Some(sent) = self.open.remove(&rid) {
                        self.busy_clients.remove(&sent.client);
                        write!(
                            text,
                            "; request {} ({}) will never be answered",
                            rid.0, sent.op
                        )
                        .expect("a String");
                    }
                }
                self.say(text);
                Ok(())
            }
            "restart" => {
                let node = self.one_node(args)?;
                if self.sim.is_up(node) {
                    return Err(format!("n{node} is running; crash it first"));
                }
                self.sim.restart(node);
                let ready = self.sim.mode(node).is_some_and(|m| m.ready());
                self.say(format!(
                    "n{node} restarted from its disk{}",
                    if ready { "" } else { " (catching up)" }
                ));
                Ok(())
            }
            "trace" => {
                self.no_args(args)?;
                let events = &self.sim.trace()[self.traced..];
                self.traced = self.sim.trace().len();
                let options = DiagramOptions::default();
                let text = trace::diagram(events, &self.sim.node_ids(), &options);
                for line in text.lines() {
                    writeln!(self.out, "  {line}").expect("a String");
                }
                Ok(())
            }
            "dump" => {
                self.no_args(args)?;
                for id in self.sim.node_ids() {
                    let text = match self.sim.disk(id) {
                        Some(disk) if self.sim.is_up(id) => {
                            let pairs: Vec<String> = disk
                                .snapshot()
                                .iter()
                                .map(|(k, v)| format!("{}={}", k.escape_ascii(), v.escape_ascii()))
                                .collect();
                            if pairs.is_empty() {
                                "(empty)".to_string()
                            } else {
                                pairs.join(" ")
                            }
                        }
                        _ => "(down)".to_string(),
                    };
                    self.say(format!("n{id}: {text}"));
                }
                Ok(())
            }
            "check" => {
                let property = match args {
                    ["linearizable"] => Property::Linearizable,
                    ["sequential"] => Property::Sequential,
                    ["eventual"] => Property::Eventual,
                    _ => return Err("check linearizable | sequential | eventual".into()),
                };
                self.check(property);
                Ok(())
            }
            other => Err(format!(
                "unknown command {other:?} (cluster, set, get, del, deliver, stabilize, tick, partition, heal, crash, restart, trace, dump, check)"
            )),
        }
    }

    fn no_args(&self, args: &[&str]) -> Result<(), String> {
        if args.is_empty() {
            Ok(())
        } else {
            Err(format!("unexpected {:?}", args.join(" ")))
        }
    }

    fn one_node(&self, args: &[&str]) -> Result<NodeId, String> {
        match args {
            [node] => node_arg(node, &self.sim),
            _ => Err("expected one node, such as n2".into()),
        }
    }

    /// `set n1 x=1`, `get n2 x`, `del n1 x`.
    fn request(&mut self, verb: &str, args: &[&str]) -> Result<(), String> {
        let [node, what] = args else {
            return Err(match verb {
                "set" => "expected: set n1 key=value".into(),
                _ => format!("expected: {verb} n1 key"),
            });
        };
        let node = node_arg(node, &self.sim)?;
        let (op, request) = match verb {
            "set" => {
                let (k, v) = what.split_once('=').ok_or("expected: set n1 key=value")?;
                (
                    Op::Set {
                        key: k.into(),
                        value: v.into(),
                    },
                    Request::Set {
                        key: k.into(),
                        value: v.into(),
                    },
                )
            }
            "get" => (
                Op::Get {
                    key: (*what).into(),
                },
                Request::Get {
                    key: what.as_bytes().to_vec(),
                },
            ),
            _ => (
                Op::Del {
                    key: (*what).into(),
                },
                Request::Del {
                    key: what.as_bytes().to_vec(),
                },
            ),
        };
        let Some(rid) = self.sim.submit(node, request) else {
            self.say(format!("n{node} is down: connection refused"));
            return Ok(());
        };
        // One client per node, as if one `nc` were open to each; a second request to a node
        // whose client still waits comes from another client.
        let client = if self.busy_clients.contains_key(&u64::from(node)) {
            self.next_extra_client += 1;
            self.next_extra_client
        } else {
            u64::from(node)
        };
        self.busy_clients.insert(client, rid);
        self.next_op += 1;
        self.events.push(Event::Invoke {
            id: self.next_op,
            client,
            time_ns: self.now_ns(),
            op: op.clone(),
        });
        self.open.insert(
            rid,
            Sent {
                node,
                op,
                op_id: self.next_op,
                client,
            },
        );
        if !self.sim.has_reply(rid) {
            self.say(format!("n{node}: request {} waits", rid.0));
        }
        Ok(())
    }

    /// Prints and records the answers that came since the last call.
    fn replies(&mut self) {
        for reply in self.sim.take_replies() {
            let Some(sent) = self.open.remove(&reply.id) else {
                continue;
            };
            self.busy_clients.remove(&sent.client);
            let outcome = match &reply.response {
                Response::NotFound if sent.op.is_write() => Outcome::Ok,
                Response::Ok => Outcome::Ok,
                Response::NotFound => Outcome::NotFound,
                Response::Value(v) => Outcome::Value {
                    value: String::from_utf8_lossy(v).into_owned(),
                },
                Response::Err(_) => Outcome::Fail,
            };
            let words = match &reply.response {
                Response::Ok => "OK".to_string(),
                Response::NotFound => "NOT_FOUND".to_string(),
                Response::Value(v) => format!("VALUE {}", v.escape_ascii()),
                Response::Err(e) => format!("ERR {e}"),
            };
            self.events.push(Event::Return {
                id: sent.op_id,
                client: sent.client,
                time_ns: reply.at_us * 1000,
                outcome,
            });
            self.say(format!(
                "n{}: request {} ({}) → {words}",
                sent.node, reply.id.0, sent.op
            ));
        }
    }

    /// Runs messages and timers until the cluster is quiet and every request on a running
    /// node is answered — or, under a partition or with a node down, until nothing has got
    /// through for two retry intervals (the nodes would retry into the cut for ever).
    fn stabilize(&mut self) {
        let start = self.sim.now_us();
        let delivered = self.sim.stats().delivered;
        let patience = 2 * self.sim.config().options.retry_interval_ms * 1000
            + self.sim.config().tick_interval_us;
        let mut last_progress = (start, delivered);
        loop {
            let done = self.sim.quiet() && self.open.values().all(|s| !self.sim.is_up(s.node));
            if done {
                break;
            }
            let now = self.sim.now_us();
            let got_through = self.sim.stats().delivered;
            if got_through != last_progress.1 {
                last_progress = (now, got_through);
            } else if now - last_progress.0 > patience || now - start > STABILIZE_LIMIT_US {
                let n = got_through - delivered;
                self.say(format!(
                    "{n} {} delivered; then nothing got through for {} ms: the nodes keep retrying",
                    if n == 1 { "message" } else { "messages" },
                    (now - last_progress.0) / 1000
                ));
                return;
            }
            self.sim.step_next();
            self.replies();
        }
        let n = self.sim.stats().delivered - delivered;
        self.say(format!(
            "stable after {n} {} and {} ms",
            if n == 1 { "message" } else { "messages" },
            (self.sim.now_us() - start) / 1000
        ));
    }

    /// `check P`: judges every request so far.
    fn check(&mut self, property: Property) {
        let mut events = self.events.clone();
        if property == Property::Eventual {
            for id in self.sim.node_ids() {
                if let (true, Some(disk)) = (self.sim.is_up(id), self.sim.disk(id)) {
                    events.push(Event::Replica {
                        node: u64::from(id),
                        data: disk
                            .snapshot()
                            .into_iter()
                            .map(|(k, v)| {
                                (
                                    String::from_utf8_lossy(&k).into_owned(),
                                    String::from_utf8_lossy(&v).into_owned(),
                                )
                            })
                            .collect(),
                    });
                }
            }
        }
        let history = match History::from_events(events) {
            Ok(h) => h,
            Err(e) => {
                self.say(format!("cannot check: {e}"));
                return;
            }
        };
        let budget = Budget {
            time_limit: None,
            ..Budget::default()
        };
        let verdict =
            check::judge(property, &history, &budget).unwrap_or_else(|e| Verdict::Unknown {
                reason: e.to_string(),
            });
        let report = Report {
            property,
            history: &history,
            verdict: &verdict,
            // No wall time in a transcript: it would differ from run to run.
            elapsed: Duration::ZERO,
            clock: Clock::Simulated,
        };
        for line in report.text().lines() {
            self.say(line);
        }
    }
}
