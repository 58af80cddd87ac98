//! Randomized runs: recorded clients, a fault schedule, and a verdict.
//!
//! One run is what `dkvs sim --seed S` does:
//!
//! 1. **Workload.** `clients` closed-loop clients, each bound to one node as a real client is
//!    bound to one connection, issue `ops` operations in all: gets, sets with unique values and
//!    dels, over a few keys so that they collide. Each waits for its answer (or gives up after
//!    [`RunOptions::timeout_us`]) and thinks for a random moment before the next. Every invoke
//!    and return is recorded in a [`History`] with virtual times.
//! 2. **Faults**, from the seed: partitions (a node cut off both ways, or one link cut one way)
//!    and crashes (a node stops, and restarts later from its disk) come and go while the
//!    workload runs; drops, duplicates, reordering and long delays apply to every link for the
//!    whole run.
//! 3. **Settling.** When the clients are done, every partition heals and every node restarts;
//!    the cluster runs until it is quiet. A cluster that never settles is a failure of its own
//!    (an operation stuck for good), reported as such.
//! 4. **Judging.** The history goes to a checker: by default the one for the level the mode
//!    promises, or any other, so a student can watch a weaker mode fail a stronger check.
//!
//! A client that gets no answer records the operation as *unknown* (it may or may not have
//! taken effect) and goes on under a new client id, as Jepsen's clients do: the old operation
//! may still be in flight, and a client is one thread of control.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::check::{self, Budget, Event, History, Op, Outcome, Property, Verdict};
use crate::node::{MsgId, NodeId, Request, RequestId, Response, TraceEvent, TraceKind};

use super::{LinkConfig, Rng, Sim, SimConfig, SimStats};

/// Which faults a run injects. Words as on the command line: `--faults partition,crash`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Cut a node off (both ways) or one link (one way) now and then, and heal.
    pub partition: bool,
    /// Crash a node now and then, and restart it from its disk.
    pub crash: bool,
    /// Lose 5 % of messages.
    pub drop: bool,
    /// Deliver 5 % of messages twice.
    pub duplicate: bool,
    /// Let messages on one link overtake each other.
    pub reorder: bool,
    /// Delays of up to 20 ms instead of 1 ms.
    pub delay: bool,
    /// Crashes lose the writes since the disk's last sync point (a node that does not wait
    /// for fsync).
    pub unsynced: bool,
}

impl Faults {
    /// Every fault word, in the order `Display` prints them.
    pub const WORDS: [&str; 7] = [
        "partition",
        "crash",
        "drop",
        "duplicate",
        "reorder",
        "delay",
        "unsynced",
    ];

    fn flags(&self) -> [bool; 7] {
        [
            self.partition,
            self.crash,
            self.drop,
            self.duplicate,
            self.reorder,
            self.delay,
            self.unsynced,
        ]
    }

    /// Whether no fault is on.
    pub fn none(&self) -> bool {
        !self.flags().contains(&true)
    }
}

impl FromStr for Faults {
    type Err = String;

    /// A comma-separated list of fault words, or `none`, or `all` (everything but
    /// `unsynced`, which breaks the ordered modes on purpose).
    fn from_str(s: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "none" => {}
                "all" => {
                    let unsynced = f.unsynced;
                    f = Faults {
                        partition: true,
                        crash: true,
                        drop: true,
                        duplicate: true,
                        reorder: true,
                        delay: true,
                        unsynced,
                    };
                }
                "partition" => f.partition = true,
                "crash" => f.crash = true,
                "drop" => f.drop = true,
                "duplicate" => f.duplicate = true,
                "reorder" => f.reorder = true,
                "delay" => f.delay = true,
                "unsynced" => f.unsynced = true,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: expected none, all, or a list of {}",
                        Faults::WORDS.join(", ")
                    ));
                }
            }
        }
        Ok(f)
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<&str> = Faults::WORDS
            .iter()
            .zip(self.flags())
            .filter(|(_, on)| *on)
            .map(|(w, _)| *w)
            .collect();
        if on.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Operations in all, over all clients.
    pub ops: usize,
    /// Concurrent clients (spread over the nodes in turn).
    pub clients: usize,
    /// Distinct keys (`k0`, `k1`, …).
    pub keys: usize,
    /// Faults to inject.
    pub faults: Faults,
    /// The property to judge; `None`: judge nothing (for speed measurements).
    pub check: Option<Property>,
    /// The checker's budget.
    pub budget: Budget,
    /// How long a client waits for an answer before it records the operation as unknown.
    pub timeout_us: u64,
    /// Whether to keep the trace (needed to show one; costs time).
    pub trace: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            ops: 500,
            clients: 6,
            keys: 3,
            faults: Faults::default(),
            check: None,
            budget: Budget::default(),
            timeout_us: 2_000_000,
            trace: true,
        }
    }
}

/// How long, in virtual time, the cluster may take to settle once every fault is lifted.
pub const SETTLE_LIMIT_US: u64 = 120_000_000;

/// What a run found.
#[derive(Debug)]
pub struct RunResult {
    pub seed: u64,
    /// The recorded operations, and the replicas' contents after settling.
    pub history: History,
    /// Every event, when [`RunOptions::trace`] was on.
    pub trace: Vec<TraceEvent>,
    pub stats: SimStats,
    /// Virtual time at the end.
    pub virtual_us: u64,
    /// `None` when the cluster settled; otherwise what was still busy.
    pub unsettled: Option<String>,
    /// The property judged and its verdict (when a check was asked for).
    pub verdict: Option<(Property, Verdict)>,
    /// Wall time spent simulating, and checking.
    pub sim_time: Duration,
    pub check_time: Duration,
    /// Which node and request each history operation (by its id) became.
    pub requests: BTreeMap<u64, (NodeId, RequestId)>,
}

impl RunResult {
    /// Whether the run found a problem: a violation, or a cluster that did not settle.
    pub fn failed(&self) -> bool {
        self.unsettled.is_some() || matches!(self.verdict, Some((_, Verdict::Violation(_))))
    }

    /// The part of the trace that explains operations `op_ids` (history ids): their requests
    /// and replies, every event of the updates they became (sends, receipts, deliveries on
    /// every node), and the faults in between. At most `max` events, the earliest kept.
    pub fn focus(&self, op_ids: &[u64], max: usize) -> Vec<TraceEvent> {
        let mut requests: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        for id in op_ids {
            if let Some(&(node, rid)) = self.requests.get(id) {
                requests
                    .entry(node)
                    .or_default()
                    .push(format!("request {}:", rid.0));
            }
        }
        let about_request = |e: &TraceEvent| {
            matches!(e.kind, TraceKind::ClientRequest | TraceKind::ClientReply)
                && requests
                    .get(&e.node)
                    .is_some_and(|r| r.iter().any(|p| e.detail.starts_with(p.as_str())))
        };
        let msg_ids: BTreeSet<MsgId> = self
            .trace
            .iter()
            .filter(|e| about_request(e))
            .filter_map(|e| e.msg_id)
            .collect();
        let related =
            |e: &TraceEvent| about_request(e) || e.msg_id.is_some_and(|m| msg_ids.contains(&m));
        // Faults count when they happen between the first and the last related event.
        let times = self.trace.iter().filter(|e| related(e)).map(|e| e.at_us);
        let (Some(from), Some(to)) = (times.clone().min(), times.max()) else {
            return Vec::new();
        };
        self.trace
            .iter()
            .filter(|e| {
                related(e) || (e.kind == TraceKind::Fault && e.at_us >= from && e.at_us <= to)
            })
            .take(max)
            .cloned()
            .collect()
    }
}

/// A client of the workload.
struct Client {
    /// Its id in the history; replaced after an operation with no answer.
    id: u64,
    node: NodeId,
    /// When it next acts: issues an operation, or gives up waiting.
    next_us: u64,
    /// The request it waits for, and that request's operation id and operation.
    waiting: Option<(RequestId, u64, Op)>,
}

/// Something scheduled on the fault timeline.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Inject the next partition or crash.
    Start,
    Heal,
    Restart(NodeId),
}

/// Runs one seed.
pub fn run(config: &SimConfig, options: &RunOptions, seed: u64) -> RunResult {
    let started = Instant::now();
    let mut config = config.clone();
    let f = options.faults;
    config.lose_unsynced = f.unsynced && f.crash;
    let mut link = LinkConfig::default();
    if f.drop {
        link.drop = 0.05;
    }
    if f.duplicate {
        link.duplicate = 0.05;
    }
    if f.reorder {
        link.fifo = false;
    }
    if f.delay {
        link.delay_max_us = 20_000;
    }
    config.link = link;
    config.trace = options.trace;
    let nodes = config.nodes.clone();
    let mut sim = Sim::new(config, seed);
    // The workload's own randomness, apart from the network's: adding a fault does not change
    // which operations the clients pick.
    let mut rng = Rng::new(seed ^ 0x5EED_C11E_0000_0000);
    let mut events: Vec<Event> = Vec::new();
    let mut next_client_id = 0u64;
    let mut clients: Vec<Client> = (0..options.clients.max(1))
        .map(|i| {
            next_client_id += 1;
            Client {
                id: next_client_id,
                node: nodes[i % nodes.len().max(1)],
                // The first client starts at time 0, so that the checker's report (which counts
                // from the first operation) and the trace tell the same times.
                next_us: if i == 0 { 0 } else { rng.below(1_000) },
                waiting: None,
            }
        })
        .collect();
    let mut next_op = 0u64;
    let mut requests = BTreeMap::new();
    let mut issued = 0usize;
    let mut timeline: BTreeMap<(u64, u64), Action> = BTreeMap::new();
    let mut actions = 0u64;
    let disruptive = f.partition || f.crash;
    if disruptive {
        timeline.insert((rng.between(10_000, 100_000), 0), Action::Start);
    }
    let mut settling = false;
    let mut settle_deadline = u64::MAX;
    let mut unsettled = None;

    loop {
        // Answers first: a client reacts at the time its answer arrives.
        for reply in sim.take_replies() {
            let now = reply.at_us;
            if let Some(c) = clients.iter_mut().find(|c| {
                c.waiting
                    .as_ref()
                    .is_some_and(|(rid, _, _)| *rid == reply.id)
            }) {
                let (_, op_id, op) = c.waiting.take().expect("found waiting");
                events.push(Event::Return {
                    id: op_id,
                    client: c.id,
                    time_ns: now * 1000,
                    outcome: outcome(&op, &reply.response),
                });
                c.next_us = now + think(&mut rng);
            }
        }

        let workload_done = issued >= options.ops && clients.iter().all(|c| c.waiting.is_none());
        if workload_done && !settling {
            settling = true;
            timeline.clear();
            sim.heal();
            for id in sim.node_ids() {
                sim.restart(id);
            }
            settle_deadline = sim.now_us() + SETTLE_LIMIT_US;
        }
        if settling {
            if sim.quiet() {
                break;
            }
            if sim.now_us() >= settle_deadline {
                unsettled = Some(busy(&sim));
                break;
            }
        }

        // The next thing to happen outside the cluster.
        let next_client = clients
            .iter()
            .filter(|c| c.waiting.is_some() || issued < options.ops)
            .map(|c| c.next_us)
            .min()
            .unwrap_or(u64::MAX);
        let next_action = timeline.keys().next().map_or(u64::MAX, |&(t, _)| t);
        let external = next_client.min(next_action);
        if sim.next_event_us() <= external {
            sim.step_next();
            continue;
        }
        sim.run_until(external);
        let now = sim.now_us();

        if next_action <= next_client {
            let (_, action) = timeline.pop_first().expect("seen above");
            match action {
                Action::Start => {
                    let crash = f.crash && (!f.partition || rng.chance(0.5));
                    let hold = rng.between(20_000, 300_000);
                    if crash {
                        let victim = nodes[rng.below(nodes.len() as u64) as usize];
                        sim.crash(victim);
                        actions += 1;
                        timeline.insert((now + hold, actions), Action::Restart(victim));
                    } else {
                        let a = nodes[rng.below(nodes.len() as u64) as usize];
                        if rng.chance(0.5) || nodes.len() < 2 {
                            sim.isolate(a);
                        } else {
                            let others: Vec<NodeId> =
                                nodes.iter().copied().filter(|&n| n != a).collect();
                            let b = others[rng.below(others.len() as u64) as usize];
                            sim.cut(a, b);
                        }
                        actions += 1;
                        timeline.insert((now + hold, actions), Action::Heal);
                    }
                }
                Action::Heal => {
                    sim.heal();
                    schedule_next(&mut timeline, &mut actions, &mut rng, now);
                }
                Action::Restart(node) => {
                    sim.restart(node);
                    schedule_next(&mut timeline, &mut actions, &mut rng, now);
                }
            }
            continue;
        }

        // Clients due now.
        for c in clients.iter_mut().filter(|c| c.next_us <= now) {
            if c.waiting.is_some() {
                // No answer in time: unknown. Go on as a new client.
                c.waiting = None;
                next_client_id += 1;
                c.id = next_client_id;
                c.next_us = now + think(&mut rng);
                continue;
            }
            if issued >= options.ops {
                c.next_us = u64::MAX;
                continue;
            }
            if !sim.is_up(c.node) {
                // Connection refused: try again a little later, as a client would.
                c.next_us = now + 10_000;
                continue;
            }
            issued += 1;
            next_op += 1;
            let op = pick_op(&mut rng, options.keys, next_op);
            events.push(Event::Invoke {
                id: next_op,
                client: c.id,
                time_ns: now * 1000,
                op: op.clone(),
            });
            let request = request(&op);
            let rid = sim
                .submit(c.node, request)
                .expect("the node is up: checked above");
            c.waiting = Some((rid, next_op, op));
            requests.insert(next_op, (c.node, rid));
            c.next_us = now + options.timeout_us;
        }
    }

    if unsettled.is_none() {
        for id in sim.node_ids() {
            if let Some(disk) = sim.disk(id) {
                let data = disk
                    .snapshot()
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(&k).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        )
                    })
                    .collect();
                events.push(Event::Replica {
                    node: u64::from(id),
                    data,
                });
            }
        }
    }
    let history =
        History::from_events(events).expect("the simulator's clients record well-formed histories");
    let sim_time = started.elapsed();
    let checked = Instant::now();
    let verdict = options.check.map(|property| {
        let verdict = if property == Property::Eventual && unsettled.is_some() {
            Verdict::Unknown {
                reason: "the cluster did not settle, so its replicas cannot be compared".into(),
            }
        } else {
            check::judge(property, &history, &options.budget).unwrap_or_else(|e| Verdict::Unknown {
                reason: e.to_string(),
            })
        };
        (property, verdict)
    });
    RunResult {
        seed,
        history,
        stats: sim.stats(),
        virtual_us: sim.now_us(),
        unsettled,
        verdict,
        sim_time,
        check_time: checked.elapsed(),
        trace: sim.trace().to_vec(),
        requests,
    }
}

/// Schedules the next partition or crash after a quiet spell.
fn schedule_next(
    timeline: &mut BTreeMap<(u64, u64), Action>,
    actions: &mut u64,
    rng: &mut Rng,
    now: u64,
) {
    *actions += 1;
    timeline.insert(
        (now + rng.between(20_000, 200_000), *actions),
        Action::Start,
    );
}

/// A client's pause between an answer and its next request.
fn think(rng: &mut Rng) -> u64 {
    rng.between(0, 5_000)
}

/// A random operation: half reads, the rest mostly sets with unique values, some deletes.
fn pick_op(rng: &mut Rng, keys: usize, op_id: u64) -> Op {
    let key = format!("k{}", rng.below(keys.max(1) as u64));
    match rng.below(100) {
        0..45 => Op::Get { key },
        45..90 => Op::Set {
            key,
            value: op_id.to_string(),
        },
        _ => Op::Del { key },
    }
}

/// The node request for a history operation.
fn request(op: &Op) -> Request {
    match op {
        Op::Get { key } => Request::Get {
            key: key.clone().into_bytes(),
        },
        Op::Set { key, value } => Request::Set {
            key: key.clone().into_bytes(),
            value: value.clone().into_bytes(),
        },
        Op::Del { key } => Request::Del {
            key: key.clone().into_bytes(),
        },
        Op::Append { .. } | Op::Cas { .. } => {
            unreachable!("the workload issues get, set and del only")
        }
    }
}

/// A node's answer in the checker's words. An error answer (busy, not ready) means the node
/// refused the request before doing anything; a delete that found nothing to remove still
/// took effect (the key is absent after it).
fn outcome(op: &Op, response: &Response) -> Outcome {
    match response {
        Response::NotFound if op.is_write() => Outcome::Ok,
        Response::Ok => Outcome::Ok,
        Response::Value(v) => Outcome::Value {
            value: String::from_utf8_lossy(v).into_owned(),
        },
        Response::NotFound => Outcome::NotFound,
        Response::Err(_) => Outcome::Fail,
    }
}

/// What keeps a cluster from settling, for the report.
fn busy(sim: &Sim) -> String {
    let mut parts = Vec::new();
    for id in sim.node_ids() {
        match sim.mode(id) {
            Some(m) => parts.push(format!(
                "n{id}: {} pending{}",
                m.pending(),
                if m.ready() { "" } else { ", not ready" }
            )),
            None => parts.push(format!("n{id}: down")),
        }
    }
    format!(
        "{}; {} messages in flight",
        parts.join(", "),
        sim.in_flight()
    )
}
