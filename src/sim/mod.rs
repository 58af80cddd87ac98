//! The deterministic simulator: every node's mode in one process, on virtual time, over a
//! seeded network that delays, drops, duplicates, reorders and partitions.
//!
//! The replication modes of [`crate::node`] are pure state machines; the real runtime drives
//! them with sockets, fsync and timers, and this module drives the *same* structs with nothing
//! real at all:
//!
//! - **time** is a counter of microseconds that jumps from one event to the next, so a run of
//!   minutes of simulated traffic takes milliseconds;
//! - **the network** is a priority queue of messages in flight, each with the virtual time it
//!   arrives. Every directed link has a delay range, a drop and a duplication probability, may
//!   keep its messages in order (like the TCP connections of the runtime) or not, and may be cut
//!   (in one direction or both);
//! - **disks** are [`MemStorage`]s the simulator keeps while a node is down, so a crash followed
//!   by a restart rebuilds the node from its disk exactly as the runtime does. With
//!   [`SimConfig::lose_unsynced`] a crash also loses whatever the node wrote since its last
//!   sync point: the "what if this node did not wait for fsync" experiment;
//! - **randomness** comes from one seeded generator, and everything is iterated in a fixed
//!   order (`BTreeMap`s, sorted node ids). The same seed and configuration give the same trace,
//!   byte for byte; a failing seed is a bug report anyone can replay.
//!
//! This is the approach of FoundationDB's simulation testing and of TigerBeetle's VOPR, at the
//! scale of a teaching toolkit: no threads, no sleeps, one loop.
//!
//! Three layers use it: [`run`] drives randomized workloads with fault schedules and judges
//! the histories with the checkers (`dkvs sim`); [`script`] runs the golden scenario scripts of
//! `stages/*/scenarios/` step by step; and the tests of the modes.
//!
//! # What the simulator does not model
//!
//! CPU time (a step takes no virtual time), bandwidth, and the runtime's batching: one message
//! is one delivery. A bug that needs two steps of one node to run in parallel cannot happen in
//! the real runtime either (a node's actor runs one step at a time), so nothing is lost there.

pub mod run;
pub mod script;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::node::{
    Input, Message, Mode, ModeKind, NodeId, NodeOptions, Output, Request, RequestId, Response,
    Storage, StorageError, Tob, TraceEvent, TraceKind, Versioned, new_mode,
};

pub use crate::node::MemStorage;

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators,
/// scrambled", 2016): tiny, fast, and plenty for choosing delays and faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// An index into something `len` long (0 when `len` is 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True `p` times in a hundred.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// True with probability `p` (0.0 never draws, so a fault-free run uses no randomness for
    /// it and stays comparable with runs of other configurations).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// How one directed link behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// The fewest microseconds a message takes.
    pub delay_min_us: u64,
    /// The most microseconds a message takes (uniform in between).
    pub delay_max_us: u64,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message arrives twice.
    pub duplicate: f64,
    /// Whether messages arrive in the order they were sent, as on one TCP connection. With
    /// `false` each message draws its own delay, so later messages can overtake earlier ones.
    pub fifo: bool,
}

impl Default for LinkConfig {
    /// A healthy local network: 100 µs to 1 ms, in order, nothing lost.
    fn default() -> Self {
        LinkConfig {
            delay_min_us: 100,
            delay_max_us: 1_000,
            drop: 0.0,
            duplicate: 0.0,
            fifo: true,
        }
    }
}

/// Builds one node's state machine from its disk — at start-up and again after every
/// restart — given the node's id, every node's id, and the tuning. The simulator uses
/// [`crate::node::new_mode`] unless a [`SimConfig::factory`] says otherwise: that is how a lab
/// runs a student's implementation, or a test a deliberately broken one.
#[derive(Clone)]
pub struct ModeFactory(pub Arc<BuildMode>);

/// The function inside a [`ModeFactory`].
pub type BuildMode = dyn Fn(
        NodeId,
        Vec<NodeId>,
        &mut dyn Storage,
        NodeOptions,
    ) -> Result<Box<dyn Mode + Send>, StorageError>
    + Send
    + Sync;

impl std::fmt::Debug for ModeFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModeFactory(..)")
    }
}

/// Everything a simulated cluster is made of.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The consistency level the nodes run.
    pub kind: ModeKind,
    /// How the ordered modes build their order.
    pub tob: Tob,
    /// The nodes' ids.
    pub nodes: Vec<NodeId>,
    /// The modes' tuning.
    pub options: NodeOptions,
    /// How often every live node is ticked.
    pub tick_interval_us: u64,
    /// How every link behaves (one link can be changed with [`Sim::set_link`]).
    pub link: LinkConfig,
    /// Whether a crash loses the writes made since the node's last sync point.
    pub lose_unsynced: bool,
    /// How often a node's disk reaches a sync point, when `lose_unsynced` is on.
    pub sync_interval_us: u64,
    /// Whether to keep trace events (see [`Sim::set_tracing`]); from the first step.
    pub trace: bool,
    /// Builds the nodes' state machines; `None`: the toolkit's own modes for `kind` and `tob`.
    pub factory: Option<ModeFactory>,
}

impl SimConfig {
    /// A cluster of `n` nodes numbered from 1, with the runtime's default tuning.
    pub fn new(kind: ModeKind, tob: Tob, n: u32) -> SimConfig {
        SimConfig {
            kind,
            tob,
            nodes: (1..=n).collect(),
            options: NodeOptions::default(),
            tick_interval_us: 50_000,
            link: LinkConfig::default(),
            lose_unsynced: false,
            sync_interval_us: 100_000,
            trace: true,
            factory: None,
        }
    }

    /// The cluster a config file describes: its mode, `tob`, node ids and `[replication]`
    /// timers and bounds (addresses and storage paths are ignored).
    ///
    /// # Errors
    /// A one-line reason if the file's mode is not replicated (`single`).
    pub fn from_config(config: &crate::config::Config) -> Result<SimConfig, String> {
        let kind = config.mode.replicated().ok_or_else(|| {
            "the simulator runs replicated modes (eventual, sequential, linearizable); this config's mode is single".to_string()
        })?;
        let tob = match config.tob {
            crate::config::Tob::Sequencer => Tob::Sequencer,
            crate::config::Tob::Lamport => Tob::Lamport,
        };
        let r = &config.replication;
        Ok(SimConfig {
            kind,
            tob,
            nodes: config.nodes.iter().map(|n| n.id).collect(),
            options: NodeOptions {
                retry_interval_ms: r.retry_interval_ms,
                max_pending: r.max_pending,
                log_capacity: r.log_capacity,
            },
            tick_interval_us: r.tick_interval_ms.max(1) * 1000,
            link: LinkConfig::default(),
            lose_unsynced: false,
            sync_interval_us: config.storage.sync_interval_ms.max(1) * 1000,
            trace: true,
            factory: None,
        })
    }

    /// The level of consistency the mode promises: what a history is judged against by
    /// default.
    pub fn promised(&self) -> crate::check::Property {
        match self.kind {
            ModeKind::Eventual => crate::check::Property::Eventual,
            ModeKind::Sequential => crate::check::Property::Sequential,
            ModeKind::Linearizable => crate::check::Property::Linearizable,
        }
    }
}

/// A node's disk: a [`MemStorage`], and, when unsynced writes can be lost, an undo journal of
/// what changed since the last sync point.
#[derive(Debug, Default)]
struct Disk {
    store: MemStorage,
    /// `Some` when unsynced writes can be lost: the old contents of everything written since
    /// the last sync, oldest first.
    journal: Option<Vec<Undo>>,
}

/// The previous contents of one storage entry.
#[derive(Debug)]
enum Undo {
    Data(Vec<u8>, Option<Versioned>),
    Meta(String, Option<u64>),
    Blob(String, Option<Vec<u8>>),
}

impl Disk {
    /// The disk's state reaches stable storage.
    fn sync(&mut self) {
        if let Some(j) = &mut self.journal {
            j.clear();
        }
    }

    /// A crash: what was not synced is gone.
    fn lose_unsynced(&mut self) -> usize {
        let Some(journal) = &mut self.journal else {
            return 0;
        };
        let lost = journal.len();
        for undo in journal.drain(..).rev() {
            match undo {
                Undo::Data(key, old) => self.store.restore(&key, old),
                Undo::Meta(name, old) => self.store.restore_meta(&name, old),
                Undo::Blob(name, old) => self.store.restore_blob(&name, old),
            }
        }
        lost
    }
}

impl Storage for Disk {
    fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StorageError> {
        self.store.get(key)
    }

    fn put(&mut self, key: &[u8], v: &Versioned) -> Result<(), StorageError> {
        if let Some(j) = &mut self.journal {
            j.push(Undo::Data(key.to_vec(), self.store.get(key)?));
        }
        self.store.put(key, v)
    }

    fn get_meta(&mut self, name: &str) -> Result<Option<u64>, StorageError> {
        self.store.get_meta(name)
    }

    fn put_meta(&mut self, name: &str, v: u64) -> Result<(), StorageError> {
        if let Some(j) = &mut self.journal {
            j.push(Undo::Meta(name.to_owned(), self.store.get_meta(name)?));
        }
        self.store.put_meta(name, v)
    }

    fn get_blob(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.store.get_blob(name)
    }

    fn put_blob(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        if let Some(j) = &mut self.journal {
            j.push(Undo::Blob(name.to_owned(), self.store.get_blob(name)?));
        }
        self.store.put_blob(name, bytes)
    }
}

/// One simulated node: its state machine while it runs, and its disk always.
struct Node {
    /// `None` while the node is down.
    mode: Option<Box<dyn Mode + Send>>,
    disk: Disk,
    /// Requests it has not answered yet: they are lost if it crashes.
    open: BTreeSet<RequestId>,
}

/// A message on its way.
#[derive(Debug, Clone)]
struct InFlight {
    from: NodeId,
    to: NodeId,
    message: Message,
}

/// The state of one directed link.
#[derive(Debug, Clone)]
struct Link {
    config: LinkConfig,
    /// Everything sent is lost.
    cut: bool,
    /// When the last message sent on it arrives (for FIFO links).
    last_arrival_us: u64,
}

/// An answer to a client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The node that answered.
    pub node: NodeId,
    /// The request's id, as [`Sim::submit`] returned it.
    pub id: RequestId,
    pub response: Response,
    /// Virtual time of the answer.
    pub at_us: u64,
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Messages handed to a node.
    pub delivered: u64,
    /// Messages lost to a cut link or the drop probability.
    pub dropped: u64,
    /// Extra copies made by the duplication probability.
    pub duplicated: u64,
    /// Steps taken by all nodes (messages, requests, ticks).
    pub steps: u64,
}

/// A simulated cluster.
pub struct Sim {
    config: SimConfig,
    rng: Rng,
    now_us: u64,
    nodes: BTreeMap<NodeId, Node>,
    /// Directed links (from, to).
    links: BTreeMap<(NodeId, NodeId), Link>,
    /// Messages in flight, by (arrival time, send order): the order of delivery.
    net: BTreeMap<(u64, u64), InFlight>,
    /// Counts every send, to break ties between equal arrival times in send order.
    sent: u64,
    /// When every live node is ticked next.
    next_tick_us: u64,
    /// When every disk next reaches a sync point (with `lose_unsynced`).
    next_sync_us: u64,
    next_request: u64,
    /// Answers not yet taken by [`Sim::take_replies`].
    replies: Vec<Reply>,
    /// Whether to keep trace events (off for speed when nobody will read them).
    tracing: bool,
    trace: Vec<TraceEvent>,
    stats: SimStats,
    /// Reused for every step's outputs.
    out: Vec<Output>,
}

impl Sim {
    /// Starts every node of `config` with an empty disk; `seed` names the run.
    pub fn new(config: SimConfig, seed: u64) -> Sim {
        let mut nodes = BTreeMap::new();
        for &id in &config.nodes {
            let disk = Disk {
                store: MemStorage::new(),
                journal: config.lose_unsynced.then(Vec::new),
            };
            nodes.insert(
                id,
                Node {
                    mode: None,
                    disk,
                    open: BTreeSet::new(),
                },
            );
        }
        let mut links = BTreeMap::new();
        for &a in &config.nodes {
            for &b in &config.nodes {
                if a != b {
                    links.insert(
                        (a, b),
                        Link {
                            config: config.link,
                            cut: false,
                            last_arrival_us: 0,
                        },
                    );
                }
            }
        }
        let tracing = config.trace;
        let mut sim = Sim {
            next_tick_us: config.tick_interval_us,
            next_sync_us: config.sync_interval_us,
            config,
            rng: Rng::new(seed),
            now_us: 0,
            nodes,
            links,
            net: BTreeMap::new(),
            sent: 0,
            next_request: 0,
            replies: Vec::new(),
            tracing,
            trace: Vec::new(),
            stats: SimStats::default(),
            out: Vec::new(),
        };
        let ids = sim.node_ids();
        for &id in &ids {
            sim.build(id);
        }
        // The nodes connect to each other, as the runtime's do at start-up.
        for &id in &ids {
            for &peer in &ids {
                if peer != id {
                    sim.step(id, Input::PeerUp { peer });
                }
            }
        }
        sim
    }

    /// Keeps trace events (the default) or not. Off, the nodes do not even build them.
    pub fn set_tracing(&mut self, on: bool) {
        self.tracing = on;
        for n in self.nodes.values_mut() {
            if let Some(mode) = n.mode.as_mut() {
                mode.set_tracing(on);
            }
        }
    }

    /// The configuration the cluster was built from.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The virtual time, in microseconds since the start.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// The node ids, sorted.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Whether `node` is running.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.mode.is_some())
    }

    /// Node `node`'s state machine, if it runs.
    pub fn mode(&self, node: NodeId) -> Option<&(dyn Mode + Send)> {
        self.nodes.get(&node)?.mode.as_deref()
    }

    /// Node `node`'s disk.
    pub fn disk(&self, node: NodeId) -> Option<&MemStorage> {
        self.nodes.get(&node).map(|n| &n.disk.store)
    }

    /// Every event so far, in the order it happened.
    pub fn trace(&self) -> &[TraceEvent] {
        &self.trace
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.net.len()
    }

    /// True when no message is in flight and every running node is ready with nothing
    /// pending: nothing more will happen without new requests.
    pub fn quiet(&self) -> bool {
        self.net.is_empty()
            && self
                .nodes
                .values()
                .filter_map(|n| n.mode.as_ref())
                .all(|m| m.pending() == 0 && m.ready())
    }

    /// Whether request `id`'s answer waits to be taken by [`Sim::take_replies`].
    pub fn has_reply(&self, id: RequestId) -> bool {
        self.replies.iter().any(|r| r.id == id)
    }

    /// Answers given since the last call.
    pub fn take_replies(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.replies)
    }

    /// Hands a client's request to `node`. Returns its id, or `None` if the node is down
    /// (a client would find its connection refused: the request certainly did nothing).
    pub fn submit(&mut self, node: NodeId, request: Request) -> Option<RequestId> {
        if !self.is_up(node) {
            return None;
        }
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.nodes
            .get_mut(&node)
            .expect("checked above")
            .open
            .insert(id);
        self.step(node, Input::Client { id, request });
        Some(id)
    }

    /// Applies `config` to the link from `from` to `to`.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, config: LinkConfig) {
        if let Some(link) = self.links.get_mut(&(from, to)) {
            link.config = config;
        }
    }

    /// Cuts the link from `from` to `to`: everything sent on it from now on is lost (messages
    /// already in flight still arrive, as packets already on the wire would).
    pub fn cut(&mut self, from: NodeId, to: NodeId) {
        if let Some(link) = self.links.get_mut(&(from, to))
            && !link.cut
        {
            link.cut = true;
            self.fault(from, Some(to), format!("link to n{to} cut"));
        }
    }

    /// Cuts `node` off from every other node, both ways.
    pub fn isolate(&mut self, node: NodeId) {
        for other in self.node_ids() {
            if other != node {
                self.cut(node, other);
                self.cut(other, node);
            }
        }
    }

    /// Restores every cut link, and tells both ends of each (as a reconnecting driver would).
    pub fn heal(&mut self) {
        let cut: Vec<(NodeId, NodeId)> = self
            .links
            .iter()
            .filter(|(_, l)| l.cut)
            .map(|(&k, _)| k)
            .collect();
        for &(from, to) in &cut {
            self.links.get_mut(&(from, to)).expect("listed").cut = false;
            self.fault(from, Some(to), format!("link to n{to} healed"));
        }
        for &(from, to) in &cut {
            self.step(from, Input::PeerUp { peer: to });
            self.step(to, Input::PeerUp { peer: from });
        }
    }

    /// Stops `node` at once: its memory is gone, its unanswered requests are never answered,
    /// and (with `lose_unsynced`) so are its unsynced writes. Messages in flight to it are
    /// lost when they arrive. Returns the requests that were lost.
    pub fn crash(&mut self, node: NodeId) -> Vec<RequestId> {
        let Some(n) = self.nodes.get_mut(&node) else {
            return Vec::new();
        };
        if n.mode.take().is_none() {
            return Vec::new();
        }
        let lost_writes = n.disk.lose_unsynced();
        let lost: Vec<RequestId> = std::mem::take(&mut n.open).into_iter().collect();
        let detail = if self.config.lose_unsynced {
            format!("crashed ({lost_writes} unsynced writes lost)")
        } else {
            "crashed".to_string()
        };
        self.fault(node, None, detail);
        lost
    }

    /// Starts `node` again from its disk, and tells it and the others that they are
    /// connected again.
    pub fn restart(&mut self, node: NodeId) {
        if self.is_up(node) || !self.nodes.contains_key(&node) {
            return;
        }
        self.fault(node, None, "restarted".to_string());
        self.build(node);
        for peer in self.node_ids() {
            if peer != node && self.is_up(peer) {
                self.step(node, Input::PeerUp { peer });
                self.step(peer, Input::PeerUp { peer: node });
            }
        }
    }

    /// Builds `id`'s state machine from its disk.
    fn build(&mut self, id: NodeId) {
        let peers = self.config.nodes.clone();
        let n = self.nodes.get_mut(&id).expect("a configured node");
        // MemStorage never fails, so neither does recovering from it.
        let mode = match &self.config.factory {
            Some(factory) => (factory.0)(id, peers, &mut n.disk, self.config.options),
            None => new_mode(
                self.config.kind,
                self.config.tob,
                id,
                peers,
                &mut n.disk,
                self.config.options,
            ),
        }
        .expect("the simulator's disks do not fail");
        let mut mode = mode;
        mode.set_tracing(self.tracing);
        n.mode = Some(mode);
    }

    /// When the next event (a message arriving, a tick, a sync point) happens.
    pub fn next_event_us(&self) -> u64 {
        let mut next = self.next_tick_us;
        if let Some((&(at, _), _)) = self.net.first_key_value() {
            next = next.min(at);
        }
        if self.config.lose_unsynced {
            next = next.min(self.next_sync_us);
        }
        next
    }

    /// Runs the next event, advancing the clock to it.
    pub fn step_next(&mut self) {
        let at = self.next_event_us();
        self.now_us = self.now_us.max(at);
        if self.config.lose_unsynced && self.next_sync_us <= at {
            for n in self.nodes.values_mut() {
                n.disk.sync();
            }
            self.next_sync_us += self.config.sync_interval_us;
            return;
        }
        match self.net.first_key_value() {
            Some((&(t, _), _)) if t <= self.next_tick_us => {
                let (_, m) = self.net.pop_first().expect("just seen");
                self.arrive(m);
            }
            _ => {
                self.next_tick_us += self.config.tick_interval_us;
                self.tick_all();
            }
        }
    }

    /// Runs every event up to virtual time `until_us`, then sets the clock to it.
    pub fn run_until(&mut self, until_us: u64) {
        while self.next_event_us() <= until_us {
            self.step_next();
        }
        self.now_us = self.now_us.max(until_us);
    }

    /// Ticks every running node at the current time.
    pub fn tick_all(&mut self) {
        let now_ms = self.now_us / 1000;
        for id in self.node_ids() {
            if self.is_up(id) {
                self.step(id, Input::Tick { now_ms });
            }
        }
    }

    /// Moves the clock forward by `us` without running anything (for scripts, which decide
    /// themselves what happens when).
    pub fn advance(&mut self, us: u64) {
        self.now_us += us;
    }

    /// Delivers, now and in send order, the messages in flight that `pick` chooses (by
    /// sender and receiver), whatever their arrival times. Messages they cause stay in
    /// flight. Returns how many were taken.
    pub fn deliver_now(&mut self, mut pick: impl FnMut(NodeId, NodeId) -> bool) -> usize {
        let mut chosen: Vec<(u64, u64)> = self
            .net
            .iter()
            .filter(|(_, m)| pick(m.from, m.to))
            .map(|(&k, _)| k)
            .collect();
        // Send order, not arrival order: what a student reading the script expects.
        chosen.sort_by_key(|&(_, seq)| seq);
        for key in &chosen {
            let m = self.net.remove(key).expect("listed");
            self.arrive(m);
        }
        chosen.len()
    }

    /// A message reaches its destination.
    fn arrive(&mut self, m: InFlight) {
        if !self.is_up(m.to) {
            self.stats.dropped += 1;
            if self.tracing {
                let detail = format!("to n{}: {} (n{} is down)", m.to, m.message, m.to);
                self.record(TraceEvent::link(
                    m.from,
                    0,
                    TraceKind::Drop,
                    m.to,
                    &m.message,
                    detail,
                ));
            }
            return;
        }
        self.stats.delivered += 1;
        self.step(
            m.to,
            Input::Peer {
                from: m.from,
                message: m.message,
            },
        );
    }

    /// Records a driver event, stamped with the current time.
    fn record(&mut self, mut event: TraceEvent) {
        if event.lamport == 0
            && let Some(mode) = self.mode(event.node)
        {
            event.lamport = mode.clock();
        }
        event.at_us = Some(self.now_us);
        self.trace.push(event);
    }

    /// Records a fault event.
    fn fault(&mut self, node: NodeId, peer: Option<NodeId>, detail: String) {
        if self.tracing {
            self.record(TraceEvent {
                node,
                lamport: 0,
                kind: TraceKind::Fault,
                msg_id: None,
                peer,
                message: None,
                detail,
                at_us: None,
            });
        }
    }

    /// Steps node `id` with `input` and carries out its outputs.
    fn step(&mut self, id: NodeId, input: Input) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(mode) = node.mode.as_mut() else {
            return;
        };
        self.stats.steps += 1;
        let mut out = std::mem::take(&mut self.out);
        if let Err(e) = mode.step(input, &mut node.disk, &mut out) {
            // MemStorage cannot fail; if a mode reports corruption of its own records, that
            // is a bug the simulator must show, not hide.
            panic!("n{id}: storage error in the simulator: {e}");
        }
        for output in out.drain(..) {
            match output {
                Output::Send { to, message } => self.send(id, to, message),
                Output::Reply { id: rid, response } => {
                    let node = self.nodes.get_mut(&id).expect("stepped above");
                    if node.open.remove(&rid) {
                        self.replies.push(Reply {
                            node: id,
                            id: rid,
                            response,
                            at_us: self.now_us,
                        });
                    }
                }
                Output::Trace(mut event) => {
                    if self.tracing {
                        event.at_us = Some(self.now_us);
                        self.trace.push(event);
                    }
                }
            }
        }
        self.out = out;
    }

    /// Puts a message on the network, subject to its link's faults.
    fn send(&mut self, from: NodeId, to: NodeId, message: Message) {
        let Some(link) = self.links.get_mut(&(from, to)) else {
            return; // a message to a node that does not exist: nobody receives it
        };
        let config = link.config;
        let dropped = link.cut || self.rng.chance(config.drop);
        if dropped {
            self.stats.dropped += 1;
            if self.tracing {
                let why = if link.cut { "link cut" } else { "lost" };
                let detail = format!("to n{to}: {message} ({why})");
                self.record(TraceEvent::link(
                    from,
                    0,
                    TraceKind::Drop,
                    to,
                    &message,
                    detail,
                ));
            }
            return;
        }
        let copy = if self.rng.chance(config.duplicate) {
            self.stats.duplicated += 1;
            Some(message.clone())
        } else {
            None
        };
        self.enqueue(from, to, message, config);
        if let Some(message) = copy {
            self.enqueue(from, to, message, config);
        }
    }

    /// Schedules the arrival of one message.
    fn enqueue(&mut self, from: NodeId, to: NodeId, message: Message, config: LinkConfig) {
        let delay = self.rng.between(config.delay_min_us, config.delay_max_us);
        let mut at = self.now_us + delay;
        if config.fifo
            && let Some(link) = self.links.get_mut(&(from, to))
        {
            at = at.max(link.last_arrival_us);
            link.last_arrival_us = at;
        }
        self.sent += 1;
        self.net
            .insert((at, self.sent), InFlight { from, to, message });
    }
}
