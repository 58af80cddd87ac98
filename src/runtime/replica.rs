//! Drives a replication mode ([`crate::node`]) with real I/O: the log store on disk, tarpc links
//! to the peers, a timer.
//!
//! The mode is a pure state machine; this module is its hands. One task — the *actor* — owns
//! the mode and feeds it one [`Input`] at a time: client requests from connections, messages
//! from peers, ticks. Each step's storage writes go to the store at once (so the next step reads
//! them), and the step's effects — replies and messages — wait in order until those writes are
//! durable (group commit makes that cheap) before they leave. A reply or an acknowledgement
//! therefore never promises something a crash could take back.
//!
//! Every queue is bounded. The actor's inbox applies backpressure to connections and peers; a
//! peer's outbox that is full drops the message, which the mode sends again on a later tick
//! (the modes never rely on a single send); the trace channel drops events for a subscriber that
//! is too slow and tells it how many it lost.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tarpc::server::Channel;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::node::{
    self, Input, Message, Mode, NodeId, Output, Request, RequestId, Response, Storage,
    StorageError, TraceEvent, Versioned,
};
use crate::storage::{Store, Write};

/// Requests and peer messages waiting for the actor. Full: senders wait (backpressure).
const INBOX: usize = 4096;
/// Messages waiting to be sent to one peer. Full: new ones are dropped and resent later by
/// the mode's retry.
const OUTBOX: usize = 8192;
/// Trace events buffered for subscribers; a slower subscriber skips and is told how many.
const TRACE_BUFFER: usize = 4096;
/// Longest pause between reconnection attempts to a peer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Prefix of the store keys that hold the mode's meta counters; client keys cannot start with
/// a NUL byte in the text protocol, and the RESP path refuses them in replicated modes.
pub const META_PREFIX: &[u8] = b"\0dkvs-meta/";

/// The peer-to-peer service: one-way delivery of a batch of messages. The call returns when the
/// receiver has queued them (not applied them): no algorithm waits on it.
#[tarpc::service]
pub trait Peer {
    /// Hands `messages` from node `from` to the receiving node.
    async fn deliver(from: NodeId, messages: Vec<Message>);
}

/// What the actor is asked to do.
enum ToActor {
    Client(Request, oneshot::Sender<Response>),
    Peer(NodeId, Vec<Message>),
    PeerUp(NodeId),
}

/// Faults injected at this node: links to cut, messages to drop or delay. Changed at run time
/// by the `fault` admin command, initialised from the config's `[faults]`.
#[derive(Debug, Default)]
pub struct Faults {
    links: Mutex<BTreeMap<NodeId, LinkFault>>,
}

/// What happens on the link between this node and one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFault {
    /// Messages in both directions are dropped (a partition, as seen from this node).
    pub partitioned: bool,
    /// Probability that a message sent to the peer is dropped.
    pub drop: f64,
    /// Added delay before a message leaves for the peer.
    pub delay_ms: u64,
}

impl Faults {
    /// The fault on the link to `peer`.
    pub fn link(&self, peer: NodeId) -> LinkFault {
        self.lock().get(&peer).copied().unwrap_or_default()
    }

    /// Changes the fault on the link to `peer`.
    pub fn update(&self, peer: NodeId, change: impl FnOnce(&mut LinkFault)) {
        let mut links = self.lock();
        let link = links.entry(peer).or_default();
        change(link);
        if *link == LinkFault::default() {
            links.remove(&peer);
        }
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.lock().clear();
    }

    /// The faults in force, one line (`none` when there are none).
    pub fn describe(&self) -> String {
        let links = self.lock();
        if links.is_empty() {
            return "none".to_string();
        }
        links
            .iter()
            .map(|(peer, f)| {
                let mut parts = Vec::new();
                if f.partitioned {
                    parts.push("partitioned".to_string());
                }
                if f.drop > 0.0 {
                    parts.push(format!("drop {}", f.drop));
                }
                if f.delay_ms > 0 {
                    parts.push(format!("delay {}ms", f.delay_ms));
                }
                format!("node {peer}: {}", parts.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, LinkFault>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counters the actor publishes after each step, for `stats` and the terminal client.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub clock: u64,
    pub pending: usize,
    pub ready: bool,
}

/// A connection's handle on the node's replica.
pub struct ReplicaHandle {
    inbox: mpsc::Sender<ToActor>,
    /// Subscribe to follow the node's trace events.
    pub trace: broadcast::Sender<TraceEvent>,
    /// Faults injected at this node.
    pub faults: Arc<Faults>,
    status: Arc<Mutex<Status>>,
    /// The mode's name, for `stats`.
    pub mode_name: String,
}

impl ReplicaHandle {
    /// Hands a client request to the mode and waits for its answer.
    pub async fn request(&self, request: Request) -> Response {
        self.submit(request).await.answer().await
    }

    /// Hands a client request to the mode (waiting only while the node's inbox is full) and
    /// returns the answer to come. Requests submitted one after another reach the mode in
    /// that order, so a connection can pipeline them and await the answers afterwards.
    pub async fn submit(&self, request: Request) -> Pending {
        let (tx, rx) = oneshot::channel();
        match self.inbox.send(ToActor::Client(request, tx)).await {
            Ok(()) => Pending(Some(rx)),
            Err(_) => Pending(None),
        }
    }

    /// Starts following the node's trace events. A receiver that falls more than
    /// [`TRACE_BUFFER`] events behind skips the oldest and learns how many
    /// ([`broadcast::error::RecvError::Lagged`]); the node never waits for it.
    pub fn subscribe(&self) -> broadcast::Receiver<TraceEvent> {
        self.trace.subscribe()
    }

    /// The latest counters.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// How peers encode their calls on the wire. Every node of a cluster must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// MessagePack: compact and cheap to encode.
    #[default]
    MessagePack,
    /// JSON: readable in a packet capture, about twice the bytes and the encoding work.
    Json,
}

/// The peer transport's codec: serde to bytes in the chosen [`Encoding`], one frame per call
/// (tarpc adds the length prefix).
struct Wire<Item, SinkItem> {
    encoding: Encoding,
    types: std::marker::PhantomData<fn(SinkItem) -> Item>,
}

impl<Item, SinkItem> Wire<Item, SinkItem> {
    fn new(encoding: Encoding) -> Self {
        Wire {
            encoding,
            types: std::marker::PhantomData,
        }
    }
}

impl<Item, SinkItem> tarpc::tokio_serde::Deserializer<Item> for Wire<Item, SinkItem>
where
    Item: for<'de> serde::Deserialize<'de>,
{
    type Error = std::io::Error;

    fn deserialize(
        self: std::pin::Pin<&mut Self>,
        src: &bytes::BytesMut,
    ) -> Result<Item, std::io::Error> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        match self.encoding {
            Encoding::MessagePack => rmp_serde::from_slice(src).map_err(|e| invalid(e.to_string())),
            Encoding::Json => serde_json::from_slice(src).map_err(|e| invalid(e.to_string())),
        }
    }
}

impl<Item, SinkItem> tarpc::tokio_serde::Serializer<SinkItem> for Wire<Item, SinkItem>
where
    SinkItem: serde::Serialize,
{
    type Error = std::io::Error;

    fn serialize(
        self: std::pin::Pin<&mut Self>,
        item: &SinkItem,
    ) -> Result<bytes::Bytes, std::io::Error> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let bytes = match self.encoding {
            Encoding::MessagePack => rmp_serde::to_vec(item).map_err(|e| invalid(e.to_string()))?,
            Encoding::Json => serde_json::to_vec(item).map_err(|e| invalid(e.to_string()))?,
        };
        Ok(bytes.into())
    }
}

/// The answer to a submitted request, to be awaited.
pub struct Pending(Option<oneshot::Receiver<Response>>);

impl Pending {
    /// Waits for the mode's answer.
    pub async fn answer(self) -> Response {
        let stopping = || Response::Err("node is stopping".into());
        match self.0 {
            Some(rx) => rx.await.unwrap_or_else(|_| stopping()),
            None => stopping(),
        }
    }
}

/// Everything needed to start a node's replica.
pub struct ReplicaConfig {
    pub me: NodeId,
    pub kind: node::ModeKind,
    pub tob: node::Tob,
    pub options: node::NodeOptions,
    /// Where this node listens for peers.
    pub listen: SocketAddr,
    /// The other nodes' peer addresses.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub tick_interval_ms: u64,
    /// Most inputs stepped in one round (see [`Actor`]).
    pub step_batch: usize,
    /// Most messages sent to a peer in one call.
    pub send_batch: usize,
    /// How messages between peers are encoded.
    pub encoding: Encoding,
    pub faults: Vec<(NodeId, LinkFault)>,
}

/// Starts the replica: the actor, the peer listener and one sender per peer. Everything stops
/// when `shutdown` is cancelled.
///
/// # Errors
/// The peer address cannot be bound, or the mode cannot recover its state from the store.
pub async fn start(
    config: ReplicaConfig,
    store: Store,
    shutdown: CancellationToken,
) -> anyhow::Result<ReplicaHandle> {
    let mut storage = StoreStorage::new(&store);
    let all: Vec<NodeId> = std::iter::once(config.me)
        .chain(config.peers.keys().copied())
        .collect();
    let mode = node::new_mode(
        config.kind,
        config.tob,
        config.me,
        all,
        &mut storage,
        config.options,
    )?;
    // What recovery wrote (leased counters) is on disk before anything is said to anyone.
    storage.flush()?;
    if storage.ticket > 0 {
        store.wait_durable(storage.ticket).await?;
    }
    let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
    let (trace_tx, _) = broadcast::channel(TRACE_BUFFER);
    let faults = Arc::new(Faults::default());
    for (peer, fault) in &config.faults {
        faults.update(*peer, |f| *f = *fault);
    }
    let status = Arc::new(Mutex::new(Status::default()));

    // Peer listener.
    let encoding = config.encoding;
    let mut listener =
        tarpc::serde_transport::tcp::listen(config.listen, move || Wire::new(encoding))
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for peers on {}: {e}", config.listen))?;
    listener.config_mut().max_frame_length(64 << 20);
    let server = PeerServer {
        me: config.me,
        inbox: inbox_tx.clone(),
        faults: faults.clone(),
        trace: trace_tx.clone(),
    };
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let transport = tokio::select! {
                _ = stop.cancelled() => break,
                next = listener.next() => match next {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => { tracing::debug!("peer accept failed: {e}"); continue; }
                    None => break,
                },
            };
            let server = server.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let channel = tarpc::server::BaseChannel::with_defaults(transport);
                let requests = channel.execute(server.serve());
                tokio::pin!(requests);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        next = requests.next() => match next {
                            Some(fut) => { tokio::spawn(fut); }
                            None => break,
                        },
                    }
                }
            });
        }
    });

    // One sender per peer.
    let mut outboxes = HashMap::new();
    for (&peer, &addr) in &config.peers {
        let (tx, rx) = mpsc::channel(OUTBOX);
        outboxes.insert(peer, tx);
        let link = Link {
            me: config.me,
            peer,
            addr,
            inbox: inbox_tx.clone(),
            faults: faults.clone(),
            trace: trace_tx.clone(),
            shutdown: shutdown.clone(),
            batch: config.send_batch.max(1),
            encoding: config.encoding,
        };
        tokio::spawn(send_loop(link, rx));
    }

    let actor = Actor {
        mode,
        store,
        outboxes,
        trace: trace_tx.clone(),
        status: status.clone(),
        waiting: HashMap::new(),
        next_request: 0,
        started: Instant::now(),
        step_batch: config.step_batch.max(1),
    };
    tokio::spawn(actor.run(inbox_rx, config.tick_interval_ms, shutdown));
    Ok(ReplicaHandle {
        inbox: inbox_tx,
        trace: trace_tx,
        faults,
        status,
        mode_name: match config.kind {
            node::ModeKind::Eventual => "eventual".to_string(),
            kind => format!("{kind} ({})", config.tob),
        },
    })
}

/// The tarpc side that receives messages.
#[derive(Clone)]
struct PeerServer {
    me: NodeId,
    inbox: mpsc::Sender<ToActor>,
    faults: Arc<Faults>,
    trace: broadcast::Sender<TraceEvent>,
}

impl Peer for PeerServer {
    async fn deliver(self, _: tarpc::context::Context, from: NodeId, messages: Vec<Message>) {
        if self.faults.link(from).partitioned {
            for m in &messages {
                trace_drop(&self.trace, self.me, from, m, "from", "partitioned");
            }
            return;
        }
        let _ = self.inbox.send(ToActor::Peer(from, messages)).await;
    }
}

/// What a sender needs to know about its link to one peer.
struct Link {
    me: NodeId,
    peer: NodeId,
    /// The peer's tarpc address.
    addr: SocketAddr,
    /// This node's actor, told when the link comes up.
    inbox: mpsc::Sender<ToActor>,
    faults: Arc<Faults>,
    trace: broadcast::Sender<TraceEvent>,
    shutdown: CancellationToken,
    /// Most messages per call.
    batch: usize,
    encoding: Encoding,
}

/// Keeps a connection to one peer and sends it what the mode addresses to it.
async fn send_loop(link: Link, mut outbox: mpsc::Receiver<Message>) {
    let Link {
        me,
        peer,
        addr,
        inbox,
        faults,
        trace,
        shutdown,
        batch: max_batch,
        encoding,
    } = link;
    let mut backoff = Duration::from_millis(50);
    let mut rng = Rng::new(u64::from(me) << 32 | u64::from(peer));
    'connect: loop {
        let connect = tarpc::serde_transport::tcp::connect(addr, move || Wire::new(encoding));
        let transport = tokio::select! {
            _ = shutdown.cancelled() => return,
            t = connect => t,
        };
        let client = match transport {
            Ok(t) => PeerClient::new(tarpc::client::Config::default(), t).spawn(),
            Err(_) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        tracing::debug!("connected to node {peer} at {addr}");
        let _ = inbox.send(ToActor::PeerUp(peer)).await;
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = outbox.recv() => match m { Some(m) => m, None => return },
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match outbox.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let fault = faults.link(peer);
            if fault.partitioned {
                for m in &batch {
                    trace_drop(&trace, me, peer, m, "to", "partitioned");
                }
                continue;
            }
            if fault.drop > 0.0 {
                batch.retain(|m| {
                    let lost = rng.chance(fault.drop);
                    if lost {
                        trace_drop(&trace, me, peer, m, "to", "drop fault");
                    }
                    !lost
                });
                if batch.is_empty() {
                    continue;
                }
            }
            if fault.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
            }
            let mut ctx = tarpc::context::current();
            ctx.deadline = Instant::now() + Duration::from_secs(5);
            if let Err(e) = client.deliver(ctx, me, batch).await {
                // The messages are lost; the mode resends what matters when the link is back.
                tracing::debug!("sending to node {peer} failed: {e}");
                continue 'connect;
            }
        }
    }
}

/// Traces `message`, on the link between `me` and `peer`, as lost to an injected fault.
/// `direction` is `to` (dropped on the way out) or `from` (dropped on arrival); the event's
/// Lamport time is the message's own.
fn trace_drop(
    trace: &broadcast::Sender<TraceEvent>,
    me: NodeId,
    peer: NodeId,
    message: &Message,
    direction: &str,
    why: &str,
) {
    if trace.receiver_count() == 0 {
        return;
    }
    let detail = format!("{direction} n{peer}: {message} (dropped: {why})");
    let _ = trace.send(TraceEvent::link(
        me,
        message.time(),
        node::TraceKind::Drop,
        peer,
        message,
        detail,
    ));
}

/// A tiny generator for drop decisions (xorshift64*): faults are the runtime's, not the mode's,
/// and need no better randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The task that owns the mode.
struct Actor {
    mode: Box<dyn Mode + Send>,
    store: Store,
    outboxes: HashMap<NodeId, mpsc::Sender<Message>>,
    trace: broadcast::Sender<TraceEvent>,
    status: Arc<Mutex<Status>>,
    /// Client requests in the mode's hands, by id.
    waiting: HashMap<RequestId, oneshot::Sender<Response>>,
    next_request: u64,
    started: Instant,
    /// Most inputs taken in one round.
    step_batch: usize,
}

/// A step's effects, released once its writes are durable.
struct Effects {
    ticket: u64,
    outputs: Vec<Output>,
    replies: Vec<(oneshot::Sender<Response>, Response)>,
}

impl Actor {
    /// Turns one message for the actor into the mode's inputs.
    fn take(&mut self, msg: ToActor, inputs: &mut Vec<Input>) {
        match msg {
            ToActor::Client(request, reply) => {
                let id = RequestId(self.next_request);
                self.next_request += 1;
                self.waiting.insert(id, reply);
                inputs.push(Input::Client { id, request });
            }
            ToActor::Peer(from, messages) => inputs.extend(
                messages
                    .into_iter()
                    .map(|message| Input::Peer { from, message }),
            ),
            ToActor::PeerUp(peer) => inputs.push(Input::PeerUp { peer }),
        }
    }

    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<ToActor>,
        tick_interval_ms: u64,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(tick_interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Effects wait here, in order, for durability.
        let (effects_tx, mut effects_rx) = mpsc::channel::<Effects>(INBOX);
        let store = self.store.clone();
        let outboxes = self.outboxes.clone();
        let trace = self.trace.clone();
        let release = tokio::spawn(async move {
            while let Some(effects) = effects_rx.recv().await {
                if effects.ticket > 0
                    && let Err(e) = store.wait_durable(effects.ticket).await
                {
                    tracing::error!("fsync failed; dropping this step's replies and messages: {e}");
                    continue;
                }
                for output in effects.outputs {
                    match output {
                        Output::Send { to, message } => {
                            if let Some(tx) = outboxes.get(&to) {
                                let _ = tx.try_send(message);
                            }
                        }
                        Output::Trace(event) => {
                            let _ = trace.send(event);
                        }
                        Output::Reply { .. } => {}
                    }
                }
                for (tx, response) in effects.replies {
                    let _ = tx.send(response);
                }
            }
        });
        let mut out = Vec::new();
        let mut inputs = Vec::new();
        loop {
            inputs.clear();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => inputs.push(Input::Tick { now_ms: self.started.elapsed().as_millis() as u64 }),
                msg = inbox.recv() => match msg {
                    None => break,
                    Some(msg) => {
                        // Take what else is already waiting, up to the batch size: one append
                        // and one fsync then cover all of it.
                        self.take(msg, &mut inputs);
                        let mut taken = 1;
                        while taken < self.step_batch {
                            let Ok(msg) = inbox.try_recv() else { break };
                            self.take(msg, &mut inputs);
                            taken += 1;
                        }
                    }
                },
            }
            let mut storage = StoreStorage::new(&self.store);
            out.clear();
            // Trace events are built only while someone watches (`trace` on a connection):
            // formatting them costs a few per cent of the node's CPU.
            self.mode.set_tracing(self.trace.receiver_count() > 0);
            for input in inputs.drain(..) {
                if let Err(e) = self.mode.step(input, &mut storage, &mut out) {
                    // The store failed under us: nothing this node says can be trusted now.
                    tracing::error!("storage failed, stopping the node: {e}");
                    shutdown.cancel();
                    return;
                }
            }
            if let Err(e) = storage.flush() {
                tracing::error!("storage failed, stopping the node: {e}");
                shutdown.cancel();
                return;
            }
            let mut replies = Vec::new();
            for output in &out {
                if let Output::Reply { id, response } = output
                    && let Some(tx) = self.waiting.remove(id)
                {
                    replies.push((tx, response.clone()));
                }
            }
            if let Ok(mut status) = self.status.lock() {
                status.clock = self.mode.clock();
                status.pending = self.mode.pending();
                status.ready = self.mode.ready();
            }
            let effects = Effects {
                ticket: storage.ticket,
                outputs: std::mem::take(&mut out),
                replies,
            };
            if effects_tx.send(effects).await.is_err() {
                break;
            }
        }
        drop(effects_tx);
        let _ = release.await;
    }
}

/// Inside [`META_PREFIX`], the prefix of meta records (counters have none), so a record and a
/// counter of the same name never collide.
const BLOB_PREFIX: &[u8] = b"blob/";

/// The mode's [`Storage`] on the log store: values are stored [`Versioned`]-encoded, meta
/// counters under [`META_PREFIX`] as 8 little-endian bytes.
///
/// Writes of one round are buffered and go to the log in one append ([`StoreStorage::flush`]),
/// which returns the fsync ticket the round's effects wait for. Reads see the buffered writes
/// first, so each step sees the steps before it.
struct StoreStorage<'a> {
    store: &'a Store,
    ticket: u64,
    /// Buffered writes, in order, and where each key's latest one is.
    pending: Vec<(Vec<u8>, Vec<u8>)>,
    latest: HashMap<Vec<u8>, usize>,
    existed: Vec<bool>,
}

impl<'a> StoreStorage<'a> {
    fn new(store: &'a Store) -> StoreStorage<'a> {
        StoreStorage {
            store,
            ticket: 0,
            pending: Vec::new(),
            latest: HashMap::new(),
            existed: Vec::new(),
        }
    }

    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        match self.latest.get(&key) {
            Some(&at) => self.pending[at].1 = value,
            None => {
                self.latest.insert(key.clone(), self.pending.len());
                self.pending.push((key, value));
            }
        }
    }

    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(&at) = self.latest.get(key) {
            return Ok(Some(self.pending[at].1.clone()));
        }
        self.store
            .get(key)
            .map_err(|e| StorageError::Backend(e.to_string()))
    }

    /// Appends the buffered writes to the log in one go and notes their fsync ticket.
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let writes: Vec<Write<'_>> = self
            .pending
            .iter()
            .map(|(key, value)| Write::Set { key, value })
            .collect();
        self.existed.clear();
        let ticket = self
            .store
            .write(&writes, &mut self.existed)
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        self.ticket = self.ticket.max(ticket);
        self.pending.clear();
        self.latest.clear();
        Ok(())
    }
}

impl Storage for StoreStorage<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StorageError> {
        match self.get_raw(key)? {
            Some(bytes) => Ok(Some(Versioned::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, key: &[u8], v: &Versioned) -> Result<(), StorageError> {
        self.put_raw(key.to_vec(), v.encode());
        Ok(())
    }

    fn get_meta(&mut self, name: &str) -> Result<Option<u64>, StorageError> {
        let key = [META_PREFIX, name.as_bytes()].concat();
        match self.get_raw(&key)? {
            Some(bytes) => {
                let raw: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    StorageError::Backend(format!("meta entry {name} is not 8 bytes"))
                })?;
                Ok(Some(u64::from_le_bytes(raw)))
            }
            None => Ok(None),
        }
    }

    fn put_meta(&mut self, name: &str, v: u64) -> Result<(), StorageError> {
        let key = [META_PREFIX, name.as_bytes()].concat();
        self.put_raw(key, v.to_le_bytes().to_vec());
        Ok(())
    }

    fn get_blob(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_raw(&[META_PREFIX, BLOB_PREFIX, name.as_bytes()].concat())
    }

    fn put_blob(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let key = [META_PREFIX, BLOB_PREFIX, name.as_bytes()].concat();
        self.put_raw(key, bytes.to_vec());
        Ok(())
    }
}
