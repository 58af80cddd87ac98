//! Histories: what clients asked for, when, and what they were told.
//!
//! A *history* is the raw material of every consistency check. Each client operation appears as
//! two events: an **invoke** when the client sends the request and a **return** when the reply
//! arrives. Between the two the operation is *in flight*; a checker may place its effect at any
//! instant of that window, and nowhere else (Herlihy and Wing, "Linearizability", 1990).
//!
//! An operation without a return — the client timed out, the connection broke, the node
//! crashed — has an **unknown outcome**: it may have taken effect or not, and if it did, at any
//! time after its invoke. Checkers must accept both. Treating it as failed would call a correct
//! system broken; treating it as done would call a broken one correct.
//!
//! On disk a history is JSON lines, one event a line (the format is specified in
//! `docs/HISTORY.md`). [`HistoryRecorder`] writes it; [`History::parse_jsonl`] reads it back.
//! Times are nanoseconds on any monotonic clock: only their order matters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Who issued an operation. One client runs one operation at a time.
pub type ClientId = u64;

/// Nanoseconds on a monotonic clock. Only differences and order mean anything.
pub type Nanos = u64;

/// An operation as a client asked for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Read a key.
    Get { key: String },
    /// Overwrite a key.
    Set { key: String, value: String },
    /// Remove a key (a no-op when it is absent).
    Del { key: String },
    /// Add to the end of a key's value; an absent key counts as empty.
    Append { key: String, value: String },
    /// Compare-and-set: if the key holds `expected` (`None`: the key is absent), set it to `value`.
    Cas {
        key: String,
        expected: Option<String>,
        value: String,
    },
}

impl Op {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key }
            | Op::Set { key, .. }
            | Op::Del { key }
            | Op::Append { key, .. }
            | Op::Cas { key, .. } => key,
        }
    }

    /// Whether the operation can change state (everything but a read).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

impl fmt::Display for Op {
    /// The operation as a student would type it on a text connection.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get { key } => write!(f, "get {key}"),
            Op::Set { key, value } => write!(f, "set {key} {value}"),
            Op::Del { key } => write!(f, "del {key}"),
            Op::Append { key, value } => write!(f, "append {key} {value:?}"),
            Op::Cas {
                key,
                expected,
                value,
            } => match expected {
                Some(e) => write!(f, "cas {key} {e} {value}"),
                None => write!(f, "cas {key} <absent> {value}"),
            },
        }
    }
}

/// What the client was told.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// A write was acknowledged (for `cas`: the comparison held and the value was set).
    Ok,
    /// A read found this value.
    Value { value: String },
    /// A read found no value.
    NotFound,
    /// A `cas` was refused because the key held something else; nothing changed.
    Mismatch,
    /// The operation certainly did not take effect (the node answered with an error).
    Fail,
    /// No answer: the operation may or may not have taken effect.
    Unknown,
}

impl fmt::Display for Outcome {
    /// The reply in the text protocol's words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("OK"),
            Outcome::Value { value } => write!(f, "VALUE {value}"),
            Outcome::NotFound => f.write_str("NOT_FOUND"),
            Outcome::Mismatch => f.write_str("MISMATCH"),
            Outcome::Fail => f.write_str("ERR"),
            Outcome::Unknown => f.write_str("no reply (unknown)"),
        }
    }
}

/// One line of a history file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A client sent a request.
    Invoke {
        /// Pairs this invoke with its return; unique in the history.
        id: u64,
        client: ClientId,
        time_ns: Nanos,
        #[serde(flatten)]
        op: Op,
    },
    /// The client got its answer.
    Return {
        id: u64,
        client: ClientId,
        time_ns: Nanos,
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// The full contents of one replica after the run went quiet, for the convergence check.
    Replica {
        node: u64,
        data: BTreeMap<String, String>,
    },
}

/// An invoke paired with its return: one operation of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Position in [`History::ops`]; stable for the life of the history.
    pub index: usize,
    /// The id from the history file, to point a user back at the line.
    pub id: u64,
    pub client: ClientId,
    pub op: Op,
    pub call_ns: Nanos,
    /// `None` when the client never heard back (the outcome is [`Outcome::Unknown`]).
    pub return_ns: Option<Nanos>,
    pub outcome: Outcome,
}

/// The last known contents of one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    pub node: u64,
    pub data: BTreeMap<String, String>,
}

/// A whole history, operations sorted by invoke time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub ops: Vec<Operation>,
    pub replicas: Vec<ReplicaState>,
}

/// Why a history could not be read. Always names the line.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("reading history: {0}")]
    Io(#[from] io::Error),
}

impl History {
    /// Reads a history in dkvs's own JSON-lines format. Blank lines are allowed.
    ///
    /// # Errors
    /// A line that is not one of the [`Event`]s, or events that do not pair up (see
    /// [`History::from_events`]).
    pub fn parse_jsonl(reader: impl BufRead) -> Result<History, HistoryError> {
        let mut events = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str::<Event>(&line).map_err(|e| HistoryError::Line {
                line: n + 1,
                message: e.to_string(),
            })?;
            events.push((n + 1, event));
        }
        History::from_numbered_events(events)
    }

    /// Pairs invokes with returns.
    ///
    /// # Errors
    /// Two invokes with one id, a return without its invoke or from another client, a return
    /// before its invoke, or a client that starts an operation while it is waiting for the
    /// answer to another.
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Result<History, HistoryError> {
        History::from_numbered_events(events.into_iter().enumerate().map(|(i, e)| (i + 1, e)))
    }

    fn from_numbered_events(
        events: impl IntoIterator<Item = (usize, Event)>,
    ) -> Result<History, HistoryError> {
        let mut ops: Vec<Operation> = Vec::new();
        let mut by_id: HashMap<u64, (usize, bool)> = HashMap::new();
        let mut replicas = Vec::new();
        for (line, event) in events {
            let bad = |message: String| HistoryError::Line { line, message };
            match event {
                Event::Invoke {
                    id,
                    client,
                    time_ns,
                    op,
                } => {
                    if by_id.contains_key(&id) {
                        return Err(bad(format!("operation id {id} is invoked twice")));
                    }
                    by_id.insert(id, (ops.len(), false));
                    ops.push(Operation {
                        index: 0,
                        id,
                        client,
                        op,
                        call_ns: time_ns,
                        return_ns: None,
                        outcome: Outcome::Unknown,
                    });
                }
                Event::Return {
                    id,
                    client,
                    time_ns,
                    outcome,
                } => {
                    let Some((at, returned)) = by_id.get_mut(&id) else {
                        return Err(bad(format!("return for operation {id}, never invoked")));
                    };
                    if *returned {
                        return Err(bad(format!("operation {id} returns twice")));
                    }
                    *returned = true;
                    let op = &mut ops[*at];
                    if op.client != client {
                        return Err(bad(format!(
                            "operation {id} was invoked by client {} but returns to client {client}",
                            op.client
                        )));
                    }
                    if time_ns < op.call_ns {
                        return Err(bad(format!("operation {id} returns before it was invoked")));
                    }
                    check_outcome(&op.op, &outcome).map_err(bad)?;
                    if outcome != Outcome::Unknown {
                        op.return_ns = Some(time_ns);
                    }
                    op.outcome = outcome;
                }
                Event::Replica { node, data } => replicas.push(ReplicaState { node, data }),
            }
        }
        let history = History::new(ops, replicas);
        history.check_clients_sequential()?;
        Ok(history)
    }

    /// Builds a history from operations, sorting them by invoke time and numbering them.
    pub fn new(mut ops: Vec<Operation>, replicas: Vec<ReplicaState>) -> History {
        ops.sort_by_key(|o| (o.call_ns, o.client, o.id));
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i;
        }
        History { ops, replicas }
    }

    /// A client is one thread of control: it waits for an answer before it asks again. (After a
    /// timeout it may go on; the abandoned operation stays in flight forever.)
    fn check_clients_sequential(&self) -> Result<(), HistoryError> {
        let mut busy_until: HashMap<ClientId, (u64, Nanos)> = HashMap::new();
        for op in &self.ops {
            if let Some((prev, until)) = busy_until.get(&op.client)
                && op.call_ns < *until
            {
                return Err(HistoryError::Invalid(format!(
                    "client {} invokes operation {} before operation {prev} has returned",
                    op.client, op.id
                )));
            }
            if let Some(ret) = op.return_ns {
                busy_until.insert(op.client, (op.id, ret));
            }
        }
        Ok(())
    }

    /// Distinct clients in the history.
    pub fn client_count(&self) -> usize {
        self.ops
            .iter()
            .map(|o| o.client)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Distinct keys in the history.
    pub fn key_count(&self) -> usize {
        self.ops
            .iter()
            .map(|o| o.op.key())
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// The history as events again, in time order (invokes before returns at equal times).
    pub fn events(&self) -> Vec<Event> {
        let mut events = Vec::with_capacity(self.ops.len() * 2);
        for op in &self.ops {
            events.push((
                op.call_ns,
                0,
                Event::Invoke {
                    id: op.id,
                    client: op.client,
                    time_ns: op.call_ns,
                    op: op.op.clone(),
                },
            ));
            if let Some(t) = op.return_ns {
                events.push((
                    t,
                    1,
                    Event::Return {
                        id: op.id,
                        client: op.client,
                        time_ns: t,
                        outcome: op.outcome.clone(),
                    },
                ));
            }
        }
        events.sort_by_key(|(t, kind, _)| (*t, *kind));
        let mut out: Vec<Event> = events.into_iter().map(|(_, _, e)| e).collect();
        out.extend(self.replicas.iter().map(|r| Event::Replica {
            node: r.node,
            data: r.data.clone(),
        }));
        out
    }

    /// Writes the history as JSON lines.
    ///
    /// # Errors
    /// Only the writer's.
    pub fn write_jsonl(&self, mut out: impl Write) -> io::Result<()> {
        for event in self.events() {
            serde_json::to_writer(&mut out, &event)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// An outcome must fit its operation: a read cannot be "mismatch", a write cannot return a value.
fn check_outcome(op: &Op, outcome: &Outcome) -> Result<(), String> {
    let fits = match op {
        Op::Get { .. } => matches!(
            outcome,
            Outcome::Value { .. } | Outcome::NotFound | Outcome::Fail | Outcome::Unknown
        ),
        Op::Cas { .. } => matches!(
            outcome,
            Outcome::Ok | Outcome::Mismatch | Outcome::Fail | Outcome::Unknown
        ),
        Op::Set { .. } | Op::Del { .. } | Op::Append { .. } => {
            matches!(outcome, Outcome::Ok | Outcome::Fail | Outcome::Unknown)
        }
    };
    if fits {
        Ok(())
    } else {
        Err(format!("result {outcome:?} does not fit operation `{op}`"))
    }
}

/// Records a history as it happens: clients call [`invoke`](Self::invoke) before they send and
/// [`complete`](Self::complete) when the answer arrives. Cheap to clone and share between
/// threads; every clone records into the same history.
///
/// Times come from a monotonic clock started with the recorder, or, for a simulator with
/// virtual time, from the caller ([`invoke_at`](Self::invoke_at)).
#[derive(Clone)]
pub struct HistoryRecorder {
    inner: Arc<Mutex<Recording>>,
    epoch: Instant,
}

#[derive(Default)]
struct Recording {
    events: Vec<Event>,
    /// Which client owns each pending operation, so `complete` needs only the id.
    pending: HashMap<u64, ClientId>,
    next_id: u64,
}

/// Names one recorded operation, to complete it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpId(pub u64);

impl Default for HistoryRecorder {
    fn default() -> Self {
        HistoryRecorder::new()
    }
}

impl HistoryRecorder {
    /// An empty recording whose clock starts now.
    pub fn new() -> HistoryRecorder {
        HistoryRecorder {
            inner: Arc::new(Mutex::new(Recording::default())),
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the recorder was made.
    pub fn now_ns(&self) -> Nanos {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records that `client` is about to send `op`. Call it *before* the request leaves.
    pub fn invoke(&self, client: ClientId, op: Op) -> OpId {
        // Take the time inside the lock so event order and time order agree.
        let mut rec = self.lock();
        let t = self.now_ns();
        rec.invoke(t, client, op)
    }

    /// Records the answer to `id`. Call it *after* the reply arrived. [`Outcome::Unknown`]
    /// records an explicit "gave up waiting".
    pub fn complete(&self, id: OpId, outcome: Outcome) {
        let mut rec = self.lock();
        let t = self.now_ns();
        rec.complete(t, id, outcome);
    }

    /// [`invoke`](Self::invoke) at a time the caller chooses (virtual time in a simulator).
    pub fn invoke_at(&self, time_ns: Nanos, client: ClientId, op: Op) -> OpId {
        self.lock().invoke(time_ns, client, op)
    }

    /// [`complete`](Self::complete) at a time the caller chooses.
    pub fn complete_at(&self, time_ns: Nanos, id: OpId, outcome: Outcome) {
        self.lock().complete(time_ns, id, outcome);
    }

    /// Records a replica's final contents for the convergence check.
    pub fn record_replica(&self, node: u64, data: BTreeMap<String, String>) {
        self.lock().events.push(Event::Replica { node, data });
    }

    /// Everything recorded so far, in the order it was recorded.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// The recording as a [`History`]. Operations still pending have unknown outcomes.
    ///
    /// # Errors
    /// Only if the callers broke the recorder's contract (a client with two operations in
    /// flight).
    pub fn history(&self) -> Result<History, HistoryError> {
        History::from_events(self.events())
    }

    /// Writes the recording as JSON lines, in recording order.
    ///
    /// # Errors
    /// Only the writer's.
    pub fn write_jsonl(&self, mut out: impl Write) -> io::Result<()> {
        for event in self.events() {
            serde_json::to_writer(&mut out, &event)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        // A panic while holding the lock cannot leave the event list half-written: every
        // mutation is a single push or insert.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Recording {
    fn invoke(&mut self, time_ns: Nanos, client: ClientId, op: Op) -> OpId {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, client);
        self.events.push(Event::Invoke {
            id,
            client,
            time_ns,
            op,
        });
        OpId(id)
    }

    fn complete(&mut self, time_ns: Nanos, id: OpId, outcome: Outcome) {
        // Completing twice, or an id from another recorder, is a caller bug; ignore it rather
        // than write an unreadable history.
        let Some(client) = self.pending.remove(&id.0) else {
            debug_assert!(false, "operation {} completed twice or never invoked", id.0);
            return;
        };
        self.events.push(Event::Return {
            id: id.0,
            client,
            time_ns,
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_jsonl() {
        let rec = HistoryRecorder::new();
        let a = rec.invoke_at(
            10,
            1,
            Op::Set {
                key: "x".into(),
                value: "1".into(),
            },
        );
        let b = rec.invoke_at(11, 2, Op::Get { key: "x".into() });
        rec.complete_at(20, a, Outcome::Ok);
        rec.complete_at(21, b, Outcome::Value { value: "1".into() });
        rec.invoke_at(
            30,
            3,
            Op::Cas {
                key: "x".into(),
                expected: None,
                value: "2".into(),
            },
        );
        let mut out = Vec::new();
        rec.write_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(
            r#"{"event":"invoke","id":0,"client":1,"time_ns":10,"op":"set","key":"x","value":"1"}"#
        ));
        let history = History::parse_jsonl(&out[..]).unwrap();
        assert_eq!(history, rec.history().unwrap());
        assert_eq!(history.ops.len(), 3);
        assert_eq!(history.ops[2].return_ns, None);
        assert_eq!(history.ops[2].outcome, Outcome::Unknown);
    }

    #[test]
    fn malformed_histories_name_the_problem() {
        let cases = [
            (
                r#"{"event":"return","id":1,"client":1,"time_ns":5,"result":"ok"}"#,
                "never invoked",
            ),
            (
                "{\"event\":\"invoke\",\"id\":1,\"client\":1,\"time_ns\":5,\"op\":\"get\",\"key\":\"x\"}\n\
                 {\"event\":\"return\",\"id\":1,\"client\":1,\"time_ns\":6,\"result\":\"ok\"}",
                "does not fit",
            ),
            (
                "{\"event\":\"invoke\",\"id\":1,\"client\":1,\"time_ns\":5,\"op\":\"get\",\"key\":\"x\"}\n\
                 {\"event\":\"return\",\"id\":1,\"client\":1,\"time_ns\":4,\"result\":\"not_found\"}",
                "before it was invoked",
            ),
            (
                "{\"event\":\"invoke\",\"id\":1,\"client\":1,\"time_ns\":5,\"op\":\"get\",\"key\":\"x\"}\n\
                 {\"event\":\"invoke\",\"id\":2,\"client\":1,\"time_ns\":6,\"op\":\"get\",\"key\":\"x\"}\n\
                 {\"event\":\"return\",\"id\":1,\"client\":1,\"time_ns\":7,\"result\":\"not_found\"}",
                "before operation 1 has returned",
            ),
            (r#"{"event":"invoke","id":1}"#, "line 1"),
            ("not json", "line 1"),
        ];
        for (text, expected) in cases {
            let err = History::parse_jsonl(text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
