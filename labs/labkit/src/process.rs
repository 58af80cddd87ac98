//! A lab's node as the simulator sees it.
//!
//! The toolkit's replication modes implement [`dkvs::node::Mode`]: one `step` over every
//! input, effects pushed into a buffer, trace events built by hand. A lab keeps the same
//! sans-IO shape but smaller. A [`Process`] reacts to three things — a client's command, a
//! peer's message, a timer tick — and acts through a [`Ctx`]: send a message, answer a client,
//! read and write the node's durable key-value store, deliver an entry. The [`Adapter`] turns
//! a `Process` into a `Mode`, so the simulator, the checkers and the trace diagrams work on a
//! student's code exactly as on the toolkit's.
//!
//! The adapter does the bookkeeping a student should not have to: it encodes the lab's own
//! message type (any serde enum; the variant's name is its kind in traces), traces every
//! request, receipt, send, delivery and reply the same way for every implementation (which is
//! what lets a lab compare a student's message flow with the reference's in a snapshot), and
//! hands a message a node sends to itself straight back to it, in order, after the current
//! handler returns.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use dkvs::node::{
    Input, Message, Mode, NodeId, Output, Request, RequestId, Response, Stamp, Storage,
    StorageError, TraceEvent, TraceKind, Versioned,
};
use dkvs::sim::ModeFactory;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A client's command, as a lab sees it. Keys and values are text (the simulator's workloads
/// use short ASCII words; other bytes are replaced).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum Command {
    Get { key: String },
    Set { key: String, value: String },
    Del { key: String },
}

impl Command {
    /// The key the command is about.
    pub fn key(&self) -> &str {
        match self {
            Command::Get { key } | Command::Set { key, .. } | Command::Del { key } => key,
        }
    }

    /// True for `Set` and `Del`.
    pub fn is_write(&self) -> bool {
        !matches!(self, Command::Get { .. })
    }

    fn from_request(request: Request) -> Command {
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        match request {
            Request::Get { key } => Command::Get { key: text(key) },
            Request::Set { key, value } => Command::Set {
                key: text(key),
                value: text(value),
            },
            Request::Del { key } => Command::Del { key: text(key) },
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Get { key } => write!(f, "get {key}"),
            Command::Set { key, value } => write!(f, "set {key}={value}"),
            Command::Del { key } => write!(f, "del {key}"),
        }
    }
}

/// A stored value with its version: `value: None` is a deletion (a tombstone), kept so that
/// an older write arriving late cannot bring the key back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Version {
    pub value: Option<String>,
    pub stamp: Stamp,
}

/// One node of a lab: the small trait a lab's own trait is wrapped into.
pub trait Process {
    /// The messages nodes exchange: any serde enum. Its variant names are the message kinds
    /// the traces and diagrams show, next to its `Display` form (one short line).
    type Msg: Serialize + DeserializeOwned + fmt::Display + fmt::Debug + Send;

    /// A client sent `command`; answer it with [`Ctx::reply`] and `id`, now or later.
    fn on_client(&mut self, ctx: &mut Ctx<'_, Self::Msg>, id: RequestId, command: Command);

    /// A message from another node arrived.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Msg>, from: NodeId, msg: Self::Msg);

    /// Time passed (every 50 ms of simulated time): the moment to retry what is unanswered.
    fn on_tick(&mut self, ctx: &mut Ctx<'_, Self::Msg>);

    /// How much work the node still has (messages not yet acknowledged, commands not yet
    /// answered): the simulator judges a run only once every node says 0.
    fn pending(&self) -> usize;
}

/// What a node can do while it handles one input.
///
/// `D` is what the node delivers ([`Ctx::deliver`]) in labs that separate an ordering layer
/// from the key-value store above it; other labs leave it `()`.
pub struct Ctx<'a, M, D = ()> {
    me: NodeId,
    nodes: &'a [NodeId],
    now_ms: u64,
    storage: &'a mut dyn Storage,
    out: &'a mut Vec<Output>,
    /// Messages this node sent itself, handed back after the current handler.
    loopback: &'a mut VecDeque<M>,
    /// Entries delivered and not yet taken by the layer above.
    delivered: Vec<D>,
    /// The first storage failure (the simulator's storage does not fail; a real one could).
    error: Option<StorageError>,
    tracing: bool,
}

impl<'a, M: Serialize + fmt::Display, D> Ctx<'a, M, D> {
    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Every node of the cluster, this one included, in increasing order.
    pub fn nodes(&self) -> &[NodeId] {
        self.nodes
    }

    /// Every node but this one, in increasing order.
    pub fn others(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .copied()
            .filter(|&n| n != self.me)
            .collect()
    }

    /// Simulated time, in milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Sends `msg` to node `to`. Sending to yourself works too: the message comes back to
    /// [`Process::on_message`] right after the current handler returns, never lost.
    pub fn send(&mut self, to: NodeId, msg: M) {
        if to == self.me {
            self.loopback.push_back(msg);
            return;
        }
        let body = serde_json::to_vec(&msg).expect("a lab message serialises to JSON");
        let kind = kind_of(&msg);
        let message = Message::Plugin {
            kind,
            text: shown(&msg),
            body,
            time: 0,
        };
        if self.tracing {
            let detail = format!("to n{to}: {}", shown(&msg));
            self.out.push(Output::Trace(TraceEvent::link(
                self.me,
                0,
                TraceKind::Send,
                to,
                &message,
                detail,
            )));
        }
        self.out.push(Output::Send { to, message });
    }

    /// Answers the client's request `id`. A request is answered once; later answers are
    /// ignored.
    pub fn reply(&mut self, id: RequestId, response: Response) {
        if self.tracing {
            let detail = match &response {
                Response::Ok => format!("request {}: ok", id.0),
                Response::Value(v) => {
                    format!("request {}: value={}", id.0, String::from_utf8_lossy(v))
                }
                Response::NotFound => format!("request {}: not found", id.0),
                Response::Err(e) => format!("request {}: err {e}", id.0),
            };
            self.trace(TraceKind::ClientReply, None, detail);
        }
        self.out.push(Output::Reply { id, response });
    }

    /// The stored version of `key`, if any (deletions included).
    pub fn load(&mut self, key: &str) -> Option<Version> {
        match self.storage.get(key.as_bytes()) {
            Ok(v) => v.map(|v| Version {
                value: v.value.map(|b| String::from_utf8_lossy(&b).into_owned()),
                stamp: v.stamp,
            }),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// Stores `version` as `key`'s, whatever was there before.
    pub fn save(&mut self, key: &str, version: &Version) {
        if self.tracing {
            let what = match &version.value {
                Some(v) => format!("{key}={v}"),
                None => format!("{key} deleted"),
            };
            self.trace(TraceKind::Apply, None, format!("{what} @{}", version.stamp));
        }
        let stored = Versioned {
            value: version.value.clone().map(String::into_bytes),
            stamp: version.stamp,
        };
        if let Err(e) = self.storage.put(key.as_bytes(), &stored) {
            self.error.get_or_insert(e);
        }
    }

    /// Delivers `entry` to the layer above (in labs that have one), in the order of the
    /// calls.
    pub fn deliver(&mut self, entry: D)
    where
        D: fmt::Display,
    {
        if self.tracing {
            self.trace(TraceKind::Deliver, None, entry.to_string());
        }
        self.delivered.push(entry);
    }

    /// The entries delivered so far in this step, oldest first (for the layer above).
    pub fn take_delivered(&mut self) -> Vec<D> {
        std::mem::take(&mut self.delivered)
    }

    /// The same context for a layer that delivers `E` instead of `D`: `work` runs with it,
    /// and whatever it delivered is returned. The lab above a total order uses it to run the
    /// order's code.
    pub fn with_delivery<E: fmt::Display, T>(
        &mut self,
        work: impl FnOnce(&mut Ctx<'_, M, E>) -> T,
    ) -> (T, Vec<E>) {
        let mut inner = Ctx {
            me: self.me,
            nodes: self.nodes,
            now_ms: self.now_ms,
            storage: &mut *self.storage,
            out: &mut *self.out,
            loopback: &mut *self.loopback,
            delivered: Vec::new(),
            error: None,
            tracing: self.tracing,
        };
        let result = work(&mut inner);
        let delivered = std::mem::take(&mut inner.delivered);
        if let Some(e) = inner.error.take() {
            self.error.get_or_insert(e);
        }
        (result, delivered)
    }

    fn trace(&mut self, kind: TraceKind, peer: Option<NodeId>, detail: String) {
        self.out.push(Output::Trace(TraceEvent {
            node: self.me,
            lamport: 0,
            kind,
            msg_id: None,
            peer,
            message: None,
            detail,
            at_us: None,
        }));
    }
}

/// A message's kind: its serde variant name in snake case (`ForwardTo` → `forward_to`).
fn kind_of(msg: &impl Serialize) -> String {
    let name = match serde_json::to_value(msg) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(map)) if map.len() == 1 => {
            map.keys().next().cloned().unwrap_or_default()
        }
        _ => "message".into(),
    };
    let mut kind = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                kind.push('_');
            }
            kind.extend(c.to_lowercase());
        } else {
            kind.push(c);
        }
    }
    kind
}

/// A message as a trace shows it: its `Display` form, on one line.
fn shown(msg: &impl fmt::Display) -> String {
    msg.to_string().replace('\n', " ")
}

/// A [`Process`] running as a [`Mode`].
pub struct Adapter<P: Process> {
    me: NodeId,
    nodes: Vec<NodeId>,
    process: P,
    loopback: VecDeque<P::Msg>,
    tracing: bool,
    /// The time of the last tick: inputs carry no time of their own.
    now_ms: u64,
}

/// How many messages a node may send itself while it handles one input: a node that keeps
/// messaging itself would otherwise never let the simulation go on.
const LOOPBACK_LIMIT: usize = 10_000;

impl<P: Process> Adapter<P> {
    /// Wraps `process`, node `me` of a cluster of `nodes`.
    pub fn new(me: NodeId, mut nodes: Vec<NodeId>, process: P) -> Adapter<P> {
        if !nodes.contains(&me) {
            nodes.push(me);
        }
        nodes.sort_unstable();
        nodes.dedup();
        Adapter {
            me,
            nodes,
            process,
            loopback: VecDeque::new(),
            tracing: true,
            now_ms: 0,
        }
    }

    /// The wrapped process.
    pub fn process(&self) -> &P {
        &self.process
    }

    fn run(
        &mut self,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
        work: impl FnOnce(&mut P, &mut Ctx<'_, P::Msg>),
    ) -> Result<(), StorageError> {
        let mut ctx = Ctx {
            me: self.me,
            nodes: &self.nodes,
            now_ms: self.now_ms,
            storage,
            out,
            loopback: &mut self.loopback,
            delivered: Vec::new(),
            error: None,
            tracing: self.tracing,
        };
        work(&mut self.process, &mut ctx);
        let mut handed_back = 0;
        while let Some(msg) = ctx.loopback.pop_front() {
            handed_back += 1;
            if handed_back > LOOPBACK_LIMIT {
                panic!(
                    "n{}: sent itself more than {LOOPBACK_LIMIT} messages while handling one input",
                    self.me
                );
            }
            self.process.on_message(&mut ctx, self.me, msg);
        }
        match ctx.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<P: Process> Mode for Adapter<P> {
    fn step(
        &mut self,
        input: Input,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        let me = self.me;
        let tracing = self.tracing;
        match input {
            Input::Client { id, request } => {
                let command = Command::from_request(request);
                if tracing {
                    out.push(Output::Trace(TraceEvent {
                        node: me,
                        lamport: 0,
                        kind: TraceKind::ClientRequest,
                        msg_id: None,
                        peer: None,
                        message: None,
                        detail: format!("request {}: {command}", id.0),
                        at_us: None,
                    }));
                }
                self.run(storage, out, |p, ctx| p.on_client(ctx, id, command))
            }
            Input::Peer {
                from,
                message: message @ Message::Plugin { .. },
            } => {
                let Message::Plugin { body, .. } = &message else {
                    unreachable!("matched above");
                };
                match serde_json::from_slice::<P::Msg>(body) {
                    Ok(msg) => {
                        if tracing {
                            out.push(Output::Trace(TraceEvent::link(
                                me,
                                0,
                                TraceKind::Receive,
                                from,
                                &message,
                                format!("from n{from}: {}", shown(&msg)),
                            )));
                        }
                        self.run(storage, out, |p, ctx| p.on_message(ctx, from, msg))
                    }
                    // Not this lab's message: nothing sends those in a lab's cluster.
                    Err(_) => Ok(()),
                }
            }
            Input::Peer { .. } | Input::PeerUp { .. } => Ok(()),
            Input::Tick { now_ms } => {
                self.now_ms = now_ms;
                self.run(storage, out, |p, ctx| p.on_tick(ctx))
            }
        }
    }

    fn id(&self) -> NodeId {
        self.me
    }

    fn pending(&self) -> usize {
        self.process.pending()
    }

    fn clock(&self) -> u64 {
        0
    }

    fn ready(&self) -> bool {
        true
    }

    fn set_tracing(&mut self, on: bool) {
        self.tracing = on;
    }
}

/// The simulator's factory for nodes built by `make(me, nodes)` (`nodes`: every node, `me`
/// included, in increasing order). A restarted node is built anew: what it kept is what it
/// stored through [`Ctx::save`].
pub fn factory<P, F>(make: F) -> ModeFactory
where
    P: Process + Send + 'static,
    F: Fn(NodeId, &[NodeId]) -> P + Send + Sync + 'static,
{
    let make = Arc::new(make);
    ModeFactory(Arc::new(move |me, peers, _storage, _options| {
        let mut nodes = peers;
        if !nodes.contains(&me) {
            nodes.push(me);
        }
        nodes.sort_unstable();
        nodes.dedup();
        let process = make(me, &nodes);
        Ok(Box::new(Adapter::new(me, nodes, process)) as Box<dyn Mode + Send>)
    }))
}

/// The simulator's factory for one of the toolkit's own modes (`dkvs::node::new_mode`): a lab
/// runs its checks on the toolkit itself with it, to show that they judge the real thing.
pub fn toolkit(kind: dkvs::node::ModeKind, tob: dkvs::node::Tob) -> ModeFactory {
    ModeFactory(Arc::new(move |me, peers, storage, options| {
        dkvs::node::new_mode(kind, tob, me, peers, storage, options)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, serde::Deserialize)]
    enum Msg {
        UpdateAck { id: u64 },
        Ping,
    }

    impl fmt::Display for Msg {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    #[test]
    fn kinds_are_variant_names_in_snake_case() {
        assert_eq!(kind_of(&Msg::UpdateAck { id: 1 }), "update_ack");
        assert_eq!(kind_of(&Msg::Ping), "ping");
    }
}
