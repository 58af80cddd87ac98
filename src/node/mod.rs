//! Node: the replication modes, as pure state machines.
//!
//! A replica decides what to do with a client's request — apply it at once and tell the others
//! later, or find it a place in a total order first — without touching a socket, a clock or a
//! random number generator. Each mode is a plain struct driven by [`Mode::step`]: an [`Input`]
//! goes in (a client request, a peer's message, a timer tick), [`Output`]s come out (messages to
//! send, replies to give, trace events), and the key-value state is read and written through the
//! [`Storage`] trait. Two drivers run the same structs: a tokio runtime with real sockets and
//! disks, and a deterministic simulator with virtual time and a seeded network. The idea is the
//! one of toydb's and raft-rs's Raft cores; the payoff is that a bug the simulator finds from a
//! seed is a bug in the server, replayable at will.
//!
//! # The modes
//!
//! | mode | file | a write is answered | reads | guarantee |
//! |---|---|---|---|---|
//! | `eventual` | [`eventual`] | at once, applied locally | local | replicas converge (last writer wins) |
//! | `sequential`, `tob = "sequencer"` | [`sequencer`] | when the origin delivers it in the order a fixed sequencer assigns | local | sequential consistency |
//! | `sequential`, `tob = "lamport"` | [`lamport`] | when the origin delivers it in Lamport-stamp order | local | sequential consistency |
//! | `linearizable` (either `tob`) | as above | as above | through the order too | linearizability |
//!
//! Total-order broadcast (every replica delivers the same operations in the same order) plus
//! local reads gives sequential consistency; sending reads through the order as well gives
//! linearizability (Attiya and Welch, "Sequential Consistency versus Linearizability", ACM TOCS
//! 12(2), 1994). The two ways of building the order are the two classic families of Défago,
//! Schiper and Urbán ("Total Order Broadcast and Multicast Algorithms: Taxonomy and Survey",
//! ACM Computing Surveys 36(4), 2004): a *fixed sequencer*, and *communication history* with
//! Lamport clocks. The eventual mode is Thomas's write rule (Thomas, "A Majority Consensus
//! Approach to Concurrency Control for Multiple Copy Databases", ACM TODS 4(2), 1979) with
//! Lamport stamps as timestamps; see Vogels, "Eventually Consistent", CACM 52(1), 2009.
//!
//! # The driver's contract
//!
//! - **One step at a time.** `step` is called with one input and an empty (or drained) output
//!   vector; it never blocks and never fails on anything a peer or client sent.
//! - **Storage before effects.** A step reads and writes its [`Storage`] synchronously. The
//!   driver must make the step's storage writes durable *before* it sends any of the step's
//!   messages or replies: a reply promises the write survives a crash, and the sequencer's and
//!   Lamport's counters must never be handed out twice. (The simulator's [`MemStorage`] is
//!   always "durable"; the runtime waits for its log store's fsync.)
//! - **Storage errors are fatal.** If `step` returns `Err`, the node's memory may no longer
//!   match its storage: the driver drops the node *and the step's outputs*, and may rebuild it
//!   with [`new_mode`], which recovers from storage. A failing *read for a client* is not
//!   fatal (nothing changed): it is answered with [`Response::Err`].
//! - **Ticks.** There is no timer output. The driver calls `step(Input::Tick { now_ms })`
//!   periodically, with a non-decreasing time in milliseconds from any origin (the simulator's
//!   virtual clock, or milliseconds since start-up). Every retry fires at the first tick at
//!   least [`NodeOptions::retry_interval_ms`] after the previous attempt, so ticking every
//!   `retry_interval_ms / 2` keeps retries within 1.5 intervals. A node that is never ticked
//!   stays correct but retries nothing, and a restarted node then asks to catch up only when
//!   told [`Input::PeerUp`].
//! - **PeerUp.** When the driver (re)connects to a peer it says so with
//!   [`Input::PeerUp`]: a hint to resend at once what that peer has not acknowledged, instead
//!   of waiting for the next retry.
//! - **Routing replies.** A client request carries an opaque [`RequestId`]; its answer comes
//!   back as [`Output::Reply`] with the same id, possibly many steps later (ordered modes), and
//!   never twice. After a restart, requests the old incarnation had not answered are never
//!   answered (their connections died with it).
//!
//! # What survives a restart (the meta table)
//!
//! Values live in storage as [`Versioned`] records (value or tombstone, plus the [`Stamp`] that
//! wrote it). Small counters live in named meta entries:
//!
//! | meta name | mode | what | written |
//! |---|---|---|---|
//! | `clock` | all | an upper bound on every Lamport time the node has used | every [`CLOCK_LEASE`] ticks |
//! | `msg_seq` | eventual, sequencer | an upper bound on the [`MsgId`] counter | every [`CLOCK_LEASE`] ids |
//! | `seq.delivered` | sequencer | the last sequence number applied | at every delivery |
//! | `seq.ordered` | sequencer (the sequencer itself) | the last sequence number handed out | at every assignment |
//! | `lamport.sent` | lamport | how many broadcasts the node has made | at every broadcast |
//! | `lamport.delivered.<n>` | lamport | how many of node n's broadcasts were applied | at every delivery |
//! | `lamport.ring` | lamport | the size of the ring of own broadcasts below, fixed at first start | once |
//!
//! Larger records live in *blobs* ([`Storage::put_blob`]):
//!
//! | blob name | mode | what | written |
//! |---|---|---|---|
//! | `seq.log.<slot>` | sequencer (the sequencer itself) | a numbered operation (seq, id, operation), so followers can catch up after a sequencer crash | at every numbering, before it leaves |
//! | `lamport.ring.<slot>` | lamport | an own broadcast (seq, stamp, operation) and how far every node has delivered, so a restart can send it again | at every broadcast, before it leaves |
//!
//! The clock and id counters are *leased*: rather than write the counter at every event, the
//! node writes a bound [`CLOCK_LEASE`] ahead and, after a restart, resumes from the bound, so a
//! value is never reused and the cost is one meta write per thousand events (PostgreSQL logs its
//! sequences 32 values ahead for the same reason; `SEQ_LOG_VALS` in `sequence.c`).
//!
//! # Bounds
//!
//! Every queue has a bound from [`NodeOptions`], and each mode's docs say what happens when it is
//! full; in short, new client requests are refused with `Err("busy: …")`, and messages beyond a
//! window are dropped unacknowledged (their sender retries later). No memory grows with the
//! number of operations ever made.
//!
//! # Failures, in one table
//!
//! | | lost, duplicated, reordered messages | a node down | a restart | a crash can lose |
//! |---|---|---|---|---|
//! | eventual | tolerated | tolerated: the others serve; its updates wait in bounded outboxes | ready at once | its updates not yet acknowledged by every peer (until the key is written again) |
//! | sequencer | tolerated | a follower: tolerated; **the sequencer: writes stop** | catch up, then ready | nothing the sequencer numbered within its last `log_capacity`: each number is on its disk before it leaves |
//! | lamport | tolerated | **any node: delivery stops everywhere** | ready at once: its own broadcasts come back from its ring and are sent again | nothing: every broadcast is on its origin's disk before it leaves |
//!
//! None of them loses safety to these failures — the ordered modes stop rather than diverge.
//! Surviving a down node is the subject of stage 05 (quorums) and stage 07 (consensus), and the
//! "can lose" column is why those stages keep a durable, replicated log.

pub mod clock;
pub mod eventual;
pub mod lamport;
pub mod message;
pub mod sequencer;
#[cfg(test)]
mod test_net;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lamport;
#[cfg(test)]
mod tests_sequencer;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use clock::{LamportClock, Stamp};
pub use message::{Message, MsgId, Operation, Write};

/// A node's id, as in the cluster's config file.
pub type NodeId = u32;

/// How far ahead of use the clock and id counters are persisted (see the meta table above).
pub const CLOCK_LEASE: u64 = 1024;

/// The most entries one catch-up or resend answer carries ...
pub const CATCH_UP_BATCH: usize = 64;

/// ... and roughly the most bytes (at least one entry is always sent).
pub const CATCH_UP_BATCH_BYTES: usize = 1 << 20;

/// A client's request, as the runtime's protocol layer hands it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Read a key.
    Get { key: Vec<u8> },
    /// Set a key.
    Set { key: Vec<u8>, value: Vec<u8> },
    /// Delete a key.
    Del { key: Vec<u8> },
}

impl Request {
    /// The request as an operation for the total order.
    fn into_operation(self) -> Operation {
        match self {
            Request::Get { key } => Operation::Read { key },
            Request::Set { key, value } => Operation::Write(Write {
                key,
                value: Some(value),
            }),
            Request::Del { key } => Operation::Write(Write { key, value: None }),
        }
    }
}

/// The answer to a [`Request`]; the runtime puts it into protocol words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A write was applied (or, for `Del`, a key was removed).
    Ok,
    /// The value read.
    Value(Vec<u8>),
    /// No such key (for `Del`: there was nothing to remove, as far as this replica knew).
    NotFound,
    /// The request was refused or failed; the text says why (`busy: …`, `not ready: …`,
    /// `storage: …`).
    Err(String),
}

/// An opaque handle the driver attaches to a client request, to route its [`Response`].
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RequestId(pub u64);

/// One thing that happened to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A client's request arrived.
    Client { id: RequestId, request: Request },
    /// A peer's message arrived.
    Peer { from: NodeId, message: Message },
    /// Time passed; `now_ms` never decreases.
    Tick { now_ms: u64 },
    /// The driver (re)connected to `peer`: resend what it has not acknowledged.
    PeerUp { peer: NodeId },
}

/// One thing a node wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to node `to` (best effort: it may be lost, the node will retry).
    Send { to: NodeId, message: Message },
    /// Answer client request `id`.
    Reply { id: RequestId, response: Response },
    /// Record an event in the trace.
    Trace(TraceEvent),
}

/// What a trace event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// A client request arrived.
    ClientRequest,
    /// A client request was answered.
    ClientReply,
    /// A message was handed to the network.
    Send,
    /// A message arrived (including duplicates and messages then ignored).
    Receive,
    /// An operation reached the front of the order (or, in eventual mode, an update was
    /// considered) on this node.
    Deliver,
    /// A write changed this node's storage.
    Apply,
    /// A message was lost on its way: dropped by an injected fault (a partition or a drop
    /// probability). Emitted by the driver that carries messages, never by a mode.
    Drop,
    /// The driver injected or lifted a fault: a crash, a restart, a partition, a heal. `node`
    /// is the node concerned, `peer` the other end for a fault of one link, and `detail` says
    /// what happened. Emitted by drivers, never by a mode.
    Fault,
}

/// One event of a node's life, streamed as a JSON line by the drivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// The node it happened on.
    pub node: NodeId,
    /// The node's Lamport clock just after the event: merging all nodes' events by this number
    /// (ties by node) gives an order consistent with causality.
    pub lamport: u64,
    /// What happened.
    pub kind: TraceKind,
    /// The update or operation concerned, if any: lets a viewer follow one write across nodes.
    pub msg_id: Option<MsgId>,
    /// For a message event (send, receive, drop): the other end of the link — the receiver of a
    /// send or drop, the sender of a receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<NodeId>,
    /// For a message event: the message's kind ([`Message::kind`]), e.g. `ordered` or `ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A short human-readable line.
    pub detail: String,
    /// When it happened, in microseconds, as the driver counts time: virtual time in the
    /// simulator. Modes leave it `None` (they have no clock); drivers fill it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_us: Option<u64>,
}

impl TraceEvent {
    /// The event for `message` crossing the link between `node` and `peer`: sent, received or
    /// dropped (`kind`), at `node`'s Lamport time `lamport`.
    pub fn link(
        node: NodeId,
        lamport: u64,
        kind: TraceKind,
        peer: NodeId,
        message: &Message,
        detail: String,
    ) -> TraceEvent {
        TraceEvent {
            node,
            lamport,
            kind,
            msg_id: message.id(),
            peer: Some(peer),
            message: Some(message.kind().to_string()),
            detail,
            at_us: None,
        }
    }
}

/// A stored value with the stamp of the write that produced it.
///
/// Deletes are stored too, as tombstones (`value: None`): in eventual mode a delete must be able
/// to beat an older concurrent write that arrives after it, and without its stamp the replica
/// would not know the old write is old.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The value, or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The write that produced it. In the ordered modes every replica stores the same stamp for
    /// the same operation, so replicas' stores are identical, not merely equivalent.
    pub stamp: Stamp,
}

/// Length of [`Versioned::encode`]'s header: flags, time, node.
const VERSIONED_HEADER: usize = 1 + 8 + 4;
/// Header flag: the record is a tombstone.
const FLAG_TOMBSTONE: u8 = 1;

impl Versioned {
    /// The bytes stored for this version in a byte-oriented store:
    ///
    /// ```text
    /// flags:u8 | time:u64 | node:u32 | value        (integers little-endian)
    ///   └ bit 0 = tombstone (then no value bytes follow); other bits are reserved, must be 0
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let value = self.value.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(VERSIONED_HEADER + value.len());
        out.push(if self.value.is_none() {
            FLAG_TOMBSTONE
        } else {
            0
        });
        out.extend_from_slice(&self.stamp.time.to_le_bytes());
        out.extend_from_slice(&self.stamp.node.to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    /// Reads bytes written by [`Versioned::encode`]. Never panics, whatever the bytes.
    ///
    /// # Errors
    /// [`DecodeError`] if the bytes are too short, use reserved flags, or are a tombstone with
    /// value bytes.
    pub fn decode(bytes: &[u8]) -> Result<Versioned, DecodeError> {
        let Some((header, value)) = bytes.split_at_checked(VERSIONED_HEADER) else {
            return Err(DecodeError::TooShort { len: bytes.len() });
        };
        let flags = header[0];
        if flags & !FLAG_TOMBSTONE != 0 {
            return Err(DecodeError::UnknownFlags(flags));
        }
        let time = u64::from_le_bytes(header[1..9].try_into().expect("8 bytes by the split"));
        let node = u32::from_le_bytes(header[9..13].try_into().expect("4 bytes by the split"));
        let value = if flags & FLAG_TOMBSTONE != 0 {
            if !value.is_empty() {
                return Err(DecodeError::TombstoneWithValue { len: value.len() });
            }
            None
        } else {
            Some(value.to_vec())
        };
        Ok(Versioned {
            value,
            stamp: Stamp::new(time, node),
        })
    }
}

/// Why stored bytes are not a [`Versioned`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header needs.
    #[error("{len} bytes, shorter than the {VERSIONED_HEADER}-byte header")]
    TooShort { len: usize },
    /// A reserved flag bit is set: written by a newer format, or damaged.
    #[error("unknown flags {0:#04x}")]
    UnknownFlags(u8),
    /// A tombstone followed by value bytes.
    #[error("tombstone followed by {len} value bytes")]
    TombstoneWithValue { len: usize },
}

/// A fault of the node's storage. Fatal for the step that meets it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The backing store failed (I/O, poisoned after a failed fsync, …).
    #[error("storage failed: {0}")]
    Backend(String),
    /// A stored record could not be read as a [`Versioned`].
    #[error("stored version is corrupt: {0}")]
    Corrupt(#[from] DecodeError),
}

/// Where a node keeps its data: the versioned key-value state and a few named counters.
///
/// Calls are synchronous and a write is visible to the next read at once; durability is the
/// driver's business (see "Storage before effects" in the module docs).
pub trait Storage {
    /// The version stored for `key`, tombstones included.
    ///
    /// # Errors
    /// A [`StorageError`] if the store fails or the record is damaged.
    fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StorageError>;

    /// Stores `v` for `key`, replacing what was there.
    ///
    /// # Errors
    /// A [`StorageError`] if the store fails.
    fn put(&mut self, key: &[u8], v: &Versioned) -> Result<(), StorageError>;

    /// The meta counter `name`, if it was ever written.
    ///
    /// # Errors
    /// A [`StorageError`] if the store fails.
    fn get_meta(&mut self, name: &str) -> Result<Option<u64>, StorageError>;

    /// Sets the meta counter `name`.
    ///
    /// # Errors
    /// A [`StorageError`] if the store fails.
    fn put_meta(&mut self, name: &str, v: u64) -> Result<(), StorageError>;

    /// The meta record `name` (bytes a mode keeps for itself, e.g. a write-ahead copy of a
    /// message it must be able to send again after a crash), if it was ever written.
    ///
    /// # Errors
    /// A [`StorageError`] if the store fails.
    fn get_blob(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Sets the meta record `name`. Blobs share the meta namespace's durability: written in
    /// the same step as the values, durable before the step's effects leave.
    ///
    /// # Errors
    /// A [`StorageError`] if the store fails.
    fn put_blob(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError>;
}

/// Storage in memory, for tests and the simulator: a "disk" that survives a simulated crash
/// because the simulator keeps it while it rebuilds the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStorage {
    /// Every key's latest version, tombstones included.
    data: BTreeMap<Vec<u8>, Versioned>,
    /// The meta counters.
    meta: BTreeMap<String, u64>,
    /// The meta records.
    blobs: BTreeMap<String, Vec<u8>>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// The live keys and their values (tombstones left out), sorted: two replicas have
    /// converged when their snapshots are equal.
    pub fn snapshot(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.data
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.value.clone()?)))
            .collect()
    }

    /// Every stored version, tombstones included.
    pub fn versions(&self) -> &BTreeMap<Vec<u8>, Versioned> {
        &self.data
    }

    /// The meta counters.
    pub fn meta(&self) -> &BTreeMap<String, u64> {
        &self.meta
    }

    /// Puts back a key's earlier version (`None`: the key was never written), as a crash
    /// that loses unsynced writes does in the simulator.
    pub fn restore(&mut self, key: &[u8], old: Option<Versioned>) {
        match old {
            Some(v) => self.data.insert(key.to_vec(), v),
            None => self.data.remove(key),
        };
    }

    /// Puts back a meta counter's earlier value (`None`: never written).
    pub fn restore_meta(&mut self, name: &str, old: Option<u64>) {
        match old {
            Some(v) => self.meta.insert(name.to_owned(), v),
            None => self.meta.remove(name),
        };
    }

    /// Puts back a meta record's earlier bytes (`None`: never written).
    pub fn restore_blob(&mut self, name: &str, old: Option<Vec<u8>>) {
        match old {
            Some(v) => self.blobs.insert(name.to_owned(), v),
            None => self.blobs.remove(name),
        };
    }
}

impl Storage for MemStorage {
    fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StorageError> {
        Ok(self.data.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], v: &Versioned) -> Result<(), StorageError> {
        // Overwriting in place spares the allocation of a new key (most writes hit a key
        // that exists; the simulator runs millions of them).
        match self.data.get_mut(key) {
            Some(old) => old.clone_from(v),
            None => {
                self.data.insert(key.to_vec(), v.clone());
            }
        }
        Ok(())
    }

    fn get_meta(&mut self, name: &str) -> Result<Option<u64>, StorageError> {
        Ok(self.meta.get(name).copied())
    }

    fn put_meta(&mut self, name: &str, v: u64) -> Result<(), StorageError> {
        match self.meta.get_mut(name) {
            Some(old) => *old = v,
            None => {
                self.meta.insert(name.to_owned(), v);
            }
        }
        Ok(())
    }

    fn get_blob(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.blobs.get(name).cloned())
    }

    fn put_blob(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        match self.blobs.get_mut(name) {
            Some(old) => {
                old.clear();
                old.extend_from_slice(bytes);
            }
            None => {
                self.blobs.insert(name.to_owned(), bytes.to_vec());
            }
        }
        Ok(())
    }
}

/// The consistency level a cluster provides (the config's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeKind {
    /// Apply locally, broadcast, last writer wins.
    Eventual,
    /// Writes through a total order, reads local.
    Sequential,
    /// Writes and reads through a total order.
    Linearizable,
}

/// How the ordered modes build their total order (the config's `tob`; ignored by `eventual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tob {
    /// The node with the smallest id numbers every operation.
    Sequencer,
    /// Lamport stamps with acknowledgements from every node.
    Lamport,
}

impl fmt::Display for ModeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModeKind::Eventual => "eventual",
            ModeKind::Sequential => "sequential",
            ModeKind::Linearizable => "linearizable",
        })
    }
}

impl fmt::Display for Tob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tob::Sequencer => "sequencer",
            Tob::Lamport => "lamport",
        })
    }
}

/// Tuning shared by the modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOptions {
    /// How long to wait for an acknowledgement (or for a gap to fill) before sending again.
    pub retry_interval_ms: u64,
    /// The most client requests or unacknowledged messages a node holds; beyond it new client
    /// requests are answered `Err("busy: …")`. What exactly is counted is per mode.
    pub max_pending: usize,
    /// How many delivered operations a node keeps to help others catch up, and how far ahead
    /// of its own position it holds back operations that arrive early. A node further behind
    /// than this cannot catch up from its peers' memory (it would need a state transfer, which
    /// the ordered modes do not have).
    pub log_capacity: usize,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            retry_interval_ms: 200,
            max_pending: 8192,
            log_capacity: 4096,
        }
    }
}

/// A replication mode: a state machine stepped by a driver.
pub trait Mode {
    /// Handles one input, appending effects to `out`.
    ///
    /// # Errors
    /// A [`StorageError`] from `storage`. The node must then be dropped along with this step's
    /// outputs (see the module docs); bad input from peers or clients is never an error.
    fn step(
        &mut self,
        input: Input,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError>;

    /// This node's id.
    fn id(&self) -> NodeId;

    /// Messages or requests awaiting delivery or acknowledgement (for the node panel of the
    /// terminal client; 0 when the node has nothing left to do).
    fn pending(&self) -> usize;

    /// The node's Lamport clock.
    fn clock(&self) -> u64;

    /// Whether the node serves clients. False while a restarted node catches up; client
    /// requests are then answered `Err("not ready: catching up")`.
    fn ready(&self) -> bool;

    /// Turns trace events on (the default) or off. Off, the node emits no
    /// [`Output::Trace`] and formats no detail text: for a driver nobody is watching.
    fn set_tracing(&mut self, on: bool);
}

/// Builds `me`'s state machine for a cluster of `me` and `peers`, recovering whatever `storage`
/// holds from an earlier run (clock, counters, delivered positions). `peers` may include `me`
/// and may be in any order.
///
/// # Errors
/// A [`StorageError`] while reading the meta entries.
pub fn new_mode(
    kind: ModeKind,
    tob: Tob,
    me: NodeId,
    peers: Vec<NodeId>,
    storage: &mut dyn Storage,
    options: NodeOptions,
) -> Result<Box<dyn Mode + Send>, StorageError> {
    let peers = normalize_peers(me, peers);
    let linearizable = kind == ModeKind::Linearizable;
    Ok(match (kind, tob) {
        (ModeKind::Eventual, _) => {
            Box::new(eventual::Eventual::recover(me, peers, storage, options)?)
        }
        (_, Tob::Sequencer) => Box::new(sequencer::Sequencer::recover(
            me,
            peers,
            linearizable,
            storage,
            options,
        )?),
        (_, Tob::Lamport) => Box::new(lamport::Lamport::recover(
            me,
            peers,
            linearizable,
            storage,
            options,
        )?),
    })
}

/// The other nodes, sorted and without duplicates: everything sent to "all peers" goes out in
/// this order, so traces are deterministic.
fn normalize_peers(me: NodeId, mut peers: Vec<NodeId>) -> Vec<NodeId> {
    peers.retain(|&p| p != me);
    peers.sort_unstable();
    peers.dedup();
    peers
}

/// A counter persisted ahead of use (see the meta table in the module docs).
#[derive(Debug)]
struct Lease {
    /// The meta entry.
    name: &'static str,
    /// The persisted bound: no value above it has been used.
    bound: u64,
}

impl Lease {
    /// Reads the bound; values up to it may have been used before a crash, so the caller
    /// resumes above it.
    fn recover(name: &'static str, storage: &mut dyn Storage) -> Result<Lease, StorageError> {
        let bound = storage.get_meta(name)?.unwrap_or(0);
        Ok(Lease { name, bound })
    }

    /// Makes sure `value` is covered by the persisted bound before it is used.
    fn cover(&mut self, value: u64, storage: &mut dyn Storage) -> Result<(), StorageError> {
        if value > self.bound {
            let bound = value.saturating_add(CLOCK_LEASE);
            storage.put_meta(self.name, bound)?;
            self.bound = bound;
        }
        Ok(())
    }
}

/// Who traces: the node, and whether anyone wants its trace events. Every trace helper below
/// takes one, so that a node nobody watches builds no event and formats no text (the detail
/// lines cost a fifth of a simulated step).
#[derive(Debug, Clone, Copy)]
struct Tracer {
    node: NodeId,
    on: bool,
}

/// Pushes a trace event; `detail` is only formatted when tracing is on.
fn trace(
    out: &mut Vec<Output>,
    t: Tracer,
    lamport: u64,
    kind: TraceKind,
    msg_id: Option<MsgId>,
    detail: impl FnOnce() -> String,
) {
    if !t.on {
        return;
    }
    out.push(Output::Trace(TraceEvent {
        node: t.node,
        lamport,
        kind,
        msg_id,
        peer: None,
        message: None,
        detail: detail(),
        at_us: None,
    }));
}

/// Sends `message` to `to`, tracing the send.
fn send(out: &mut Vec<Output>, t: Tracer, lamport: u64, to: NodeId, message: Message) {
    if t.on {
        let detail = format!("to n{to}: {message}");
        out.push(Output::Trace(TraceEvent::link(
            t.node,
            lamport,
            TraceKind::Send,
            to,
            &message,
            detail,
        )));
    }
    out.push(Output::Send { to, message });
}

/// Traces the receipt of `message` from `from`.
fn trace_receive(out: &mut Vec<Output>, t: Tracer, lamport: u64, from: NodeId, message: &Message) {
    if !t.on {
        return;
    }
    out.push(Output::Trace(TraceEvent::link(
        t.node,
        lamport,
        TraceKind::Receive,
        from,
        message,
        format!("from n{from}: {message}"),
    )));
}

/// Traces a message that is dropped unread, and why.
fn ignore(
    out: &mut Vec<Output>,
    t: Tracer,
    lamport: u64,
    from: NodeId,
    message: &Message,
    why: &str,
) {
    if !t.on {
        return;
    }
    out.push(Output::Trace(TraceEvent::link(
        t.node,
        lamport,
        TraceKind::Receive,
        from,
        message,
        format!("from n{from}: {message} (ignored: {why})"),
    )));
}

/// Answers a client, tracing the reply.
fn reply(
    out: &mut Vec<Output>,
    t: Tracer,
    lamport: u64,
    id: RequestId,
    msg_id: Option<MsgId>,
    response: Response,
) {
    trace(
        out,
        t,
        lamport,
        TraceKind::ClientReply,
        msg_id,
        || match &response {
            Response::Ok => format!("request {}: ok", id.0),
            Response::Value(v) => format!("request {}: value{}", id.0, message::ShownValue(v)),
            Response::NotFound => format!("request {}: not found", id.0),
            Response::Err(e) => format!("request {}: err {e}", id.0),
        },
    );
    out.push(Output::Reply { id, response });
}

/// Traces a client request's arrival.
fn trace_request(out: &mut Vec<Output>, t: Tracer, lamport: u64, id: RequestId, r: &Request) {
    trace(
        out,
        t,
        lamport,
        TraceKind::ClientRequest,
        None,
        || match r {
            Request::Get { key } => format!("request {}: get {}", id.0, key.escape_ascii()),
            Request::Set { key, value } => format!(
                "request {}: set {}{}",
                id.0,
                key.escape_ascii(),
                message::ShownValue(value)
            ),
            Request::Del { key } => format!("request {}: del {}", id.0, key.escape_ascii()),
        },
    );
}

/// Reads `key` for a client. A storage failure becomes an error reply: a read changes nothing,
/// so the node can go on.
fn read_local(storage: &mut dyn Storage, key: &[u8]) -> Response {
    match storage.get(key) {
        Ok(Some(Versioned {
            value: Some(value), ..
        })) => Response::Value(value),
        Ok(_) => Response::NotFound,
        Err(e) => Response::Err(format!("storage: {e}")),
    }
}

/// Applies `write` with `stamp` unconditionally (the ordered modes: the order decided).
/// Returns whether the key had a live value before.
fn apply_ordered(
    storage: &mut dyn Storage,
    write: &Write,
    stamp: Stamp,
) -> Result<bool, StorageError> {
    let existed = matches!(storage.get(&write.key)?, Some(v) if v.value.is_some());
    storage.put(
        &write.key,
        &Versioned {
            value: write.value.clone(),
            stamp,
        },
    )?;
    Ok(existed)
}

/// The reply to a write once it is applied: deleting a key that was not there is `NotFound`
/// (so RESP `DEL` can count), anything else `Ok`.
fn write_response(write: &Write, existed: bool) -> Response {
    if write.value.is_none() && !existed {
        Response::NotFound
    } else {
        Response::Ok
    }
}

/// The first entries of `entries` (seq → operation), within [`CATCH_UP_BATCH`] and about
/// [`CATCH_UP_BATCH_BYTES`].
fn batch<'a, T: 'a>(
    entries: impl Iterator<Item = (u64, &'a T)>,
    size: impl Fn(&T) -> usize,
) -> Vec<(u64, &'a T)> {
    let mut bytes = 0;
    let mut chosen = Vec::new();
    for (seq, entry) in entries {
        if chosen.len() >= CATCH_UP_BATCH || (!chosen.is_empty() && bytes >= CATCH_UP_BATCH_BYTES) {
            break;
        }
        bytes += size(entry);
        chosen.push((seq, entry));
    }
    chosen
}
