//! Total-order broadcast with Lamport clocks (`tob = "lamport"`).
//!
//! # The protocol
//!
//! No node is special. Every operation is stamped with its origin's Lamport clock and sent to
//! everyone; every node keeps a queue sorted by [`Stamp`] and delivers the operation at the head
//! once it is sure nothing with a smaller stamp can still arrive. Stamps are totally ordered and
//! the same everywhere, so every node delivers the same operations in the same order. This is
//! the algorithm of Lamport's 1978 paper ("Time, Clocks, and the Ordering of Events in a
//! Distributed System", CACM 21(7)), and the *communication history* family of Défago, Schiper
//! and Urbán's survey (ACM Computing Surveys 36(4), 2004).
//!
//! 1. A client's operation at node *o*: `stamp = clock.tick()`; *o* writes it to its storage
//!    (see "The ring of own broadcasts"), puts it in its own queue and sends
//!    [`Message::Broadcast`]`{id, stamp, op}` to every peer.
//! 2. A receiver observes the stamp (its clock moves past it), queues the operation, and sends
//!    [`Message::Ack`] to **every** node, stamped with its clock — now larger than the
//!    operation's stamp.
//! 3. The head of a queue, stamp *S*, is delivered once every other node has been heard from
//!    with a stamp larger than *S* (an ack, or a broadcast of its own): "wait until everyone is
//!    informed". Nothing smaller can come from a node that has already spoken past *S*.
//! 4. The origin answers its client when it delivers its own operation.
//!
//! Reads are local in `sequential` mode and go through the order in `linearizable` mode, as in
//! the sequencer mode (see its docs for why each gives its guarantee).
//!
//! # The hidden assumption: FIFO links
//!
//! Step 3 is only right if messages from one node arrive in the order they were sent: an ack
//! from *j* stamped past *S* proves nothing if *j*'s broadcast stamped below *S* is still on
//! its way. Lamport's paper assumes such links; this network reorders and loses messages, so
//! the assumption is rebuilt explicitly:
//!
//! - a node numbers its broadcasts 1, 2, 3, … without gaps (`id.seq`, meta `lamport.sent`), and
//!   a receiver accepts each origin's broadcasts only in that order — later ones wait in a small
//!   per-origin buffer;
//! - every ack carries `last_own`, the number of broadcasts its sender had made when it sent the
//!   ack. The ack counts as evidence only once the receiver holds that many of the sender's
//!   broadcasts: then every broadcast of the sender stamped below the ack is in hand.
//!
//! # Retransmission
//!
//! - An origin resends each broadcast to the peers that have not acknowledged it, every
//!   `retry_interval_ms` and at once on [`Input::PeerUp`].
//! - A node whose queue head has been blocked for a whole interval sends the head's broadcast to
//!   each peer it has not heard from past the head — a *probe*. The peer acknowledges it (a
//!   duplicate is acknowledged to its sender), which supplies the missing evidence if the first
//!   ack was lost.
//! - A node that knows an origin has broadcasts it does not hold (an ack's `last_own` or id says
//!   so) for a whole interval asks every peer with [`Message::Resend`]; any peer holding them
//!   relays them. Every node keeps the last [`NodeOptions::log_capacity`] delivered broadcasts
//!   of each origin for this, besides those it has not delivered yet; an origin also relays its
//!   own broadcasts from its ring, so it can supply every one some node may still need.
//!
//! Receivers recognise duplicates by `(origin, seq)`, so all of this is safe to repeat. Acks
//! count cumulatively at the origin: a peer accepts an origin's broadcasts in order, so its
//! ack of number *k* says it holds 1..=*k*, and none of them is sent to it again.
//!
//! # The ring of own broadcasts
//!
//! Queues live in memory, so without more a broadcast survives a crash only in the memory of
//! nodes that received it. Each node therefore keeps its own broadcasts in its storage,
//! write-ahead: broadcast *k* goes to blob `lamport.ring.<k mod R>`, in the same step as the
//! counter `lamport.sent` and before anything is sent (the driver makes a step's writes durable
//! before its messages and replies leave). One blob write per operation; a blob holds the
//! broadcast's number (so a slot's stale content is recognised), stamp and operation, and two
//! bounds known when it was made, `floor` and `acked` below.
//!
//! The ring has *R* = `max_pending + log_capacity` slots, fixed at the first start (meta
//! `lamport.ring`), and a slot is reused only once its broadcast is needed by no one — delivered,
//! durably, by every node:
//!
//! - `acked`, the largest *k* every peer has acknowledged (cumulatively, see above). A peer
//!   accepts broadcasts only up to `delivered + log_capacity` (see "Bounds"), and records a
//!   delivery before its acks leave, so once it acknowledged *k* it had delivered every
//!   broadcast of ours up to *k* − `log_capacity`;
//! - `floor` = min(`acked` − `log_capacity`, what this node delivered of its own): every node
//!   has delivered our broadcasts 1..=`floor`. It never decreases.
//!
//! Broadcast *k* reuses the slot of *k* − *R*, and is made only if *k* − *R* ≤ `floor`; if
//! not, the client gets `Err("busy: …")`. With the default *R* that check never refuses
//! anything the other two bounds accept: they let *k* be made only if `k − 1 − acked` and
//! `k − 1 − delivered` are below `max_pending`, so *k* − *R* ≤ `acked` − `log_capacity` and
//! *k* − *R* ≤ `delivered`, that is *k* − *R* ≤ `floor`. (This assumes every node runs with
//! the same `log_capacity`, as the cluster's one config file gives them. If a peer's is
//! larger, the ring may drop broadcasts that peer has not delivered yet; they are then lost
//! only if that peer and every other holder crash too.) The ring's storage is *R* blobs, each
//! the size of one operation.
//!
//! # Bounds
//!
//! - A node's own operations awaiting delivery, and its broadcasts not yet acknowledged by every
//!   peer: each at most [`NodeOptions::max_pending`]; beyond it clients get `Err("busy: …")`.
//!   (Also when a ring slot would be reused too early; see "The ring of own broadcasts".)
//! - Per origin, broadcasts are accepted only up to `delivered + log_capacity`; later ones are
//!   dropped unacknowledged and come back by retransmission. So the queue and the early buffers
//!   hold at most `log_capacity` operations per node of the cluster.
//! - Per origin, the last `log_capacity` delivered broadcasts are kept for relays.
//! - A resend answer: at most [`super::CATCH_UP_BATCH`] broadcasts per origin and request.
//!
//! # Failures: what blocks, what is tolerated
//!
//! - Lost, duplicated, delayed, reordered messages: tolerated.
//! - **Any one node down blocks delivery everywhere.** Every delivery needs to have heard from
//!   every node past the head's stamp, so while one node is silent, queues only grow (up to the
//!   bounds, then clients get `busy`). This is liveness, never safety: no node delivers out of
//!   order, and progress resumes when the node returns. `sequential` reads go on locally.
//!   Tolerating a down node needs quorums (stage 05) or consensus (stage 07).
//! - A restart: values, the clock (leased), the broadcast counter and, per origin, the number
//!   of delivered broadcasts come back from storage, and so do the node's own broadcasts that
//!   some node may not have delivered (those after the latest blob's `floor`), from the ring:
//!   those it had not delivered go back into its queue, all of them into its relay log, and
//!   those after `acked` into its outbox, sent again to every peer at once on
//!   [`Input::PeerUp`] and then until acknowledged. The node asks every peer to resend what
//!   follows its delivered positions for the other origins, and is ready at once: it holds
//!   every broadcast it ever made, so nothing it delivers next can overtake one of them. (If a
//!   slot lacks its broadcast — a data directory written before the ring existed, or a damaged
//!   store — the node waits as it used to, *not ready*, answering `Err("not ready: catching
//!   up")`, until peers give that broadcast back.)
//! - **A restarted node serves old state.** Ready does not mean caught up: a restarted node
//!   serves `sequential` reads from what it had delivered before its crash, which may be older
//!   than writes other nodes acknowledged before that crash, until the broadcasts it lacks come
//!   back and are delivered. This is still sequentially consistent — its state is a prefix of
//!   the one order and never goes back on what it had shown (deliveries are durable) — but it
//!   is stale, as any local read may be. Waiting until caught up would be simple: every write
//!   acknowledged anywhere before the restart is stamped below the clock the node restarts
//!   with (its origin delivered it after hearing from this node past its stamp), so a node that
//!   has delivered past that clock has them all. But that needs evidence from every peer, so a
//!   restarted node would refuse reads for as long as any peer is down; this mode chooses to
//!   serve. `linearizable` reads go through the order and are never stale.
//! - **What a crash can lose: nothing**, as long as storage keeps what it called durable
//!   (`sync = "always"`; power cuts under `batch` or `never` lose what any mode wrote last).
//!   Applied values, positions and counters are durable, queues and relay logs are memory, and
//!   every broadcast that some node has not delivered yet is also in its origin's ring.
//!   Whatever set of nodes crashes, the whole cluster included, once they are back every
//!   broadcast can be supplied by its origin, and an acknowledged write — delivered at its
//!   origin, so in its ring until every node has delivered it — ends up on every replica.
//!   Before the ring, a broadcast recorded by its origin (meta `lamport.sent`) that no running
//!   node held — the origin crashed before any peer received it — stopped progress for good,
//!   since everyone knew it existed (acks carry `last_own`) and no one could supply it. What
//!   remains is liveness: while any node is down, nothing is delivered.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    CATCH_UP_BATCH, CATCH_UP_BATCH_BYTES, Input, LamportClock, Lease, Message, Mode, MsgId, NodeId,
    NodeOptions, Operation, Output, Request, RequestId, Response, Stamp, Storage, StorageError,
    TraceKind, Tracer, Write, apply_ordered, batch, ignore, read_local, reply, send, trace,
    trace_receive, trace_request, write_response,
};

/// A replica in the Lamport-ordered modes (`sequential` or `linearizable`).
#[derive(Debug)]
pub struct Lamport {
    /// This node.
    me: NodeId,
    /// Whether trace events are wanted ([`Mode::set_tracing`]).
    tracing: bool,
    /// Every other node, sorted.
    peers: Vec<NodeId>,
    /// Whether reads go through the order (`linearizable`) or are local (`sequential`).
    linearizable: bool,
    /// Retry interval and bounds.
    options: NodeOptions,
    /// Stamps broadcasts and acks; the order itself.
    clock: LamportClock,
    /// Keeps the clock's persisted bound ahead of it, so a restart never reuses a stamp.
    clock_lease: Lease,
    /// The latest tick's time.
    now_ms: u64,
    /// How many broadcasts this node has made (meta `lamport.sent`).
    own_seq: u64,
    /// Per node of the cluster (this one included), what we hold and know of its broadcasts.
    origins: BTreeMap<NodeId, Origin>,
    /// Broadcasts held and not yet delivered, in delivery order.
    queue: BTreeMap<Stamp, MsgId>,
    /// This node's broadcasts that some peer has not acknowledged.
    outbox: BTreeMap<MsgId, Outgoing>,
    /// This node's client operations not yet delivered here, with their clients.
    waiting: BTreeMap<MsgId, RequestId>,
    /// The queue head and since when it has been blocked: a head blocked for a whole interval
    /// is worth a probe.
    head_since: Option<(Stamp, u64)>,
    /// Peers to ask, once, for everything after our delivered positions (after a restart).
    initial_pull: BTreeSet<NodeId>,
    /// Slots of the durable ring of our own broadcasts (meta `lamport.ring`).
    ring_size: u64,
    /// Per peer, the highest of our broadcasts it has acknowledged: it holds all of them up to
    /// there (it accepts them in order), and had delivered all but the last `log_capacity`.
    acked_by: BTreeMap<NodeId, u64>,
}

/// What a node holds and knows of one origin's broadcasts.
#[derive(Debug)]
struct Origin {
    /// Broadcasts 1..=received are held (or were delivered): the accepted prefix.
    received: u64,
    /// Broadcasts 1..=delivered were delivered (meta `lamport.delivered.<n>`).
    delivered: u64,
    /// The accepted broadcasts still kept: undelivered ones, and the last `log_capacity`
    /// delivered ones (for relays).
    held: BTreeMap<u64, Held>,
    /// Broadcasts that arrived ahead of a gap in the numbering.
    early: BTreeMap<u64, Held>,
    /// The largest stamp heard from this node that counts as evidence (see the module docs).
    heard: Stamp,
    /// The latest evidence that does not count yet: its stamp and the `last_own` we must hold.
    pending_evidence: Option<(Stamp, u64)>,
    /// The highest broadcast number of this origin known to exist.
    known: u64,
    /// When a gap (`known > received`) was first seen.
    gap_since_ms: Option<u64>,
}

/// A broadcast's content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    stamp: Stamp,
    op: Operation,
}

/// One of our broadcasts, until every peer has acknowledged it.
#[derive(Debug)]
struct Outgoing {
    held: Held,
    /// Peers that have not acknowledged it.
    missing: BTreeSet<NodeId>,
    /// When it was last sent.
    sent_ms: u64,
}

/// Meta name of the delivered count of `origin`'s broadcasts.
fn delivered_meta(origin: NodeId) -> String {
    format!("lamport.delivered.{origin}")
}

/// Meta name of the number of slots of the ring of own broadcasts, fixed at the first start.
const RING_META: &str = "lamport.ring";

/// Blob name of slot `slot` of the ring of own broadcasts.
fn ring_blob(slot: u64) -> String {
    format!("lamport.ring.{slot}")
}

/// One of our broadcasts as kept in the ring, with the bounds known when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Saved {
    /// Its number (`id.seq`): tells a slot's current broadcast from an older one.
    seq: u64,
    held: Held,
    /// Every node had delivered our broadcasts up to here ([`Lamport::floor`]).
    floor: u64,
    /// Every peer had acknowledged our broadcasts up to here ([`Lamport::all_acked`]).
    acked: u64,
}

/// Version byte of [`Saved::encode`].
const SAVED_VERSION: u8 = 1;
/// Length of [`Saved::encode`]'s header, up to the key.
const SAVED_HEADER: usize = 1 + 8 + 8 + 4 + 8 + 8 + 1 + 4;

impl Saved {
    /// The blob's bytes (integers little-endian):
    ///
    /// ```text
    /// version:u8 = 1 | seq:u64 | time:u64 | node:u32 | floor:u64 | acked:u64
    ///   | kind:u8 (0 get, 1 set, 2 del) | key_len:u32 | key | value (set only)
    /// ```
    fn encode(&self) -> Vec<u8> {
        let (kind, key, value): (u8, &[u8], &[u8]) = match &self.held.op {
            Operation::Read { key } => (0, key, &[]),
            Operation::Write(Write {
                key,
                value: Some(value),
            }) => (1, key, value),
            Operation::Write(Write { key, value: None }) => (2, key, &[]),
        };
        let mut out = Vec::with_capacity(SAVED_HEADER + key.len() + value.len());
        out.push(SAVED_VERSION);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.held.stamp.time.to_le_bytes());
        out.extend_from_slice(&self.held.stamp.node.to_le_bytes());
        out.extend_from_slice(&self.floor.to_le_bytes());
        out.extend_from_slice(&self.acked.to_le_bytes());
        out.push(kind);
        let key_len = u32::try_from(key.len()).expect("keys are far shorter than 4 GiB");
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        out
    }

    /// Reads bytes written by [`Saved::encode`]; `None` if they are not such bytes. Never
    /// panics, whatever the bytes.
    fn decode(bytes: &[u8]) -> Option<Saved> {
        let (header, rest) = bytes.split_at_checked(SAVED_HEADER)?;
        let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8"));
        let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4"));
        if header[0] != SAVED_VERSION {
            return None;
        }
        let (seq, time, node) = (u64_at(1), u64_at(9), u32_at(17));
        let (floor, acked, kind) = (u64_at(21), u64_at(29), header[37]);
        let key_len = usize::try_from(u32_at(38)).ok()?;
        let (key, value) = rest.split_at_checked(key_len)?;
        let key = key.to_vec();
        let op = match kind {
            0 if value.is_empty() => Operation::Read { key },
            1 => Operation::Write(Write {
                key,
                value: Some(value.to_vec()),
            }),
            2 if value.is_empty() => Operation::Write(Write { key, value: None }),
            _ => return None,
        };
        Some(Saved {
            seq,
            held: Held {
                stamp: Stamp::new(time, node),
                op,
            },
            floor,
            acked,
        })
    }
}

impl Lamport {
    /// The trace helpers' view of this node.
    fn tracer(&self) -> Tracer {
        Tracer {
            node: self.me,
            on: self.tracing,
        }
    }

    /// Recovers the node from `storage`: clock, broadcast counter, delivered positions, and
    /// its own broadcasts from the ring (see "A restart" in the module docs).
    ///
    /// # Errors
    /// A [`StorageError`] while reading meta entries or the ring.
    pub fn recover(
        me: NodeId,
        peers: Vec<NodeId>,
        linearizable: bool,
        storage: &mut dyn Storage,
        options: NodeOptions,
    ) -> Result<Lamport, StorageError> {
        let clock_lease = Lease::recover("clock", storage)?;
        let own_seq = storage.get_meta("lamport.sent")?.unwrap_or(0);
        let mut origins = BTreeMap::new();
        let mut restarted = clock_lease.bound > 0 || own_seq > 0;
        for &node in peers.iter().chain([&me]) {
            let delivered = storage.get_meta(&delivered_meta(node))?.unwrap_or(0);
            restarted |= delivered > 0;
            origins.insert(
                node,
                Origin {
                    received: delivered,
                    delivered,
                    held: BTreeMap::new(),
                    early: BTreeMap::new(),
                    heard: Stamp::new(0, node),
                    pending_evidence: None,
                    known: if node == me { own_seq } else { delivered },
                    gap_since_ms: None,
                },
            );
        }
        let initial_pull = if restarted {
            peers.iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        // Fixed at the first start: the slot of a broadcast must not change with the options.
        let ring_size = match storage.get_meta(RING_META)? {
            Some(size) if size > 0 => size,
            _ => {
                let size = (options.max_pending.max(1) + options.log_capacity.max(1)) as u64;
                storage.put_meta(RING_META, size)?;
                size
            }
        };
        let mut node = Lamport {
            me,
            tracing: true,
            peers,
            linearizable,
            options,
            clock: LamportClock::new(clock_lease.bound),
            clock_lease,
            now_ms: 0,
            own_seq,
            origins,
            queue: BTreeMap::new(),
            outbox: BTreeMap::new(),
            waiting: BTreeMap::new(),
            head_since: None,
            initial_pull,
            ring_size,
            acked_by: BTreeMap::new(),
        };
        node.reload_own(storage)?;
        Ok(node)
    }

    /// After a restart, puts our broadcasts that some node may not have delivered back where
    /// they were before the crash: those we had not delivered in the queue, all of them in
    /// `held` (for relays), and those some peer had not acknowledged in the outbox, to be sent
    /// again. A slot that does not hold the broadcast it should (data written before the ring
    /// existed, or a damaged store) leaves a gap, which peers fill as before the ring.
    fn reload_own(&mut self, storage: &mut dyn Storage) -> Result<(), StorageError> {
        let (me, own_seq) = (self.me, self.own_seq);
        if own_seq == 0 {
            return Ok(());
        }
        // The ring holds nothing at or below `lowest`; the latest broadcast knows better bounds.
        // Without it, assume no peer acknowledged anything: the first broadcast every peer
        // acknowledges corrects that (acks are cumulative).
        let lowest = own_seq.saturating_sub(self.ring_size);
        let (floor, acked) = match self.load_own(storage, own_seq)? {
            Some(top) => (top.floor.clamp(lowest, own_seq), top.acked.min(own_seq)),
            None => (lowest, 0),
        };
        for &peer in &self.peers {
            self.acked_by.insert(peer, acked);
        }
        let delivered = self.origin(me).delivered;
        for seq in floor + 1..=own_seq {
            let Some(saved) = self.load_own(storage, seq)? else {
                continue;
            };
            if seq > acked && !self.peers.is_empty() {
                let outgoing = Outgoing {
                    held: saved.held.clone(),
                    missing: self.peers.iter().copied().collect(),
                    sent_ms: 0,
                };
                self.outbox.insert(MsgId::new(me, seq), outgoing);
            }
            let origin = self.origin(me);
            if seq <= delivered {
                origin.held.insert(seq, saved.held);
            } else {
                origin.early.insert(seq, saved.held);
            }
        }
        // Into the queue, in order; an own broadcast is never acknowledged to anyone.
        let mut no_output = Vec::new();
        self.accept(me, &mut no_output);
        debug_assert!(no_output.is_empty());
        Ok(())
    }

    /// Our broadcast `seq` from the ring, if its slot still holds it.
    fn load_own(&self, storage: &mut dyn Storage, seq: u64) -> Result<Option<Saved>, StorageError> {
        let bytes = storage.get_blob(&ring_blob(seq % self.ring_size))?;
        Ok(bytes
            .and_then(|b| Saved::decode(&b))
            .filter(|saved| saved.seq == seq && saved.held.stamp.node == self.me))
    }

    /// Our broadcasts up to here have been acknowledged by every peer.
    fn all_acked(&self) -> u64 {
        self.peers
            .iter()
            .map(|p| self.acked_by.get(p).copied().unwrap_or(0))
            .min()
            .unwrap_or(self.own_seq)
    }

    /// Our broadcasts up to here have been delivered by every node, durably: by us, and by
    /// every peer, since a peer acknowledges only what lies within `log_capacity` of what it
    /// has delivered (see "Bounds"). Nobody can need them from us any more.
    fn floor(&self) -> u64 {
        let delivered = self.origins.get(&self.me).map_or(0, |o| o.delivered);
        self.all_acked()
            .saturating_sub(self.window())
            .min(delivered)
    }

    /// Our broadcasts made and not yet delivered here (after a restart, some have no client).
    fn own_undelivered(&self) -> u64 {
        let delivered = self.origins.get(&self.me).map_or(0, |o| o.delivered);
        self.own_seq.saturating_sub(delivered)
    }

    fn origin(&mut self, node: NodeId) -> &mut Origin {
        self.origins
            .get_mut(&node)
            .expect("origins holds every node of the cluster; senders are checked")
    }

    /// Whether we hold every broadcast we have made: after a restart some must come back from
    /// peers before anything can be delivered.
    fn holds_own(&self) -> bool {
        self.origins
            .get(&self.me)
            .is_some_and(|o| o.received >= self.own_seq)
    }

    fn window(&self) -> u64 {
        self.options.log_capacity.max(1) as u64
    }

    fn on_client(
        &mut self,
        id: RequestId,
        request: Request,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        trace_request(out, self.tracer(), self.clock.time(), id, &request);
        let refuse = |why: String, out: &mut Vec<Output>, time| {
            reply(out, self.tracer(), time, id, None, Response::Err(why));
        };
        if !self.holds_own() {
            refuse("not ready: catching up".into(), out, self.clock.time());
            return Ok(());
        }
        let op = request.into_operation();
        if let Operation::Read { key } = &op
            && !self.linearizable
        {
            let response = read_local(storage, key);
            reply(out, self.tracer(), self.clock.time(), id, None, response);
            return Ok(());
        }
        let undelivered = self.own_undelivered();
        if undelivered >= self.options.max_pending as u64 {
            let why = format!("busy: {undelivered} operations already wait for delivery");
            refuse(why, out, self.clock.time());
            return Ok(());
        }
        if self.outbox.len() >= self.options.max_pending {
            let why = format!(
                "busy: {} broadcasts not yet acknowledged by every peer",
                self.outbox.len()
            );
            refuse(why, out, self.clock.time());
            return Ok(());
        }
        let seq = self.own_seq + 1;
        // The ring slot's broadcast, `seq - ring_size`, must be one nobody can need any more.
        // The two bounds above already make sure of it when the ring has its default size.
        let (floor, evicted) = (self.floor(), seq.saturating_sub(self.ring_size));
        if evicted > floor {
            let why = format!("busy: broadcast {evicted} may still be needed by a peer");
            refuse(why, out, self.clock.time());
            return Ok(());
        }

        let stamp = Stamp::new(self.clock.tick(), self.me);
        let held = Held { stamp, op };
        // Recorded, write-ahead, in the same step as the broadcast leaves, so it is durable
        // before any peer or client hears of it: receivers rely on numbers without gaps, a
        // restart must not number a different broadcast the same, and whoever lacks the
        // broadcast after a crash can get it from here.
        let saved = Saved {
            seq,
            held: held.clone(),
            floor,
            acked: self.all_acked(),
        };
        storage.put_blob(&ring_blob(seq % self.ring_size), &saved.encode())?;
        storage.put_meta("lamport.sent", seq)?;
        self.own_seq = seq;
        let msg_id = MsgId::new(self.me, seq);
        let me = self.me;
        let origin = self.origin(me);
        origin.held.insert(seq, held.clone());
        origin.received = seq;
        origin.known = origin.known.max(seq);
        self.queue.insert(stamp, msg_id);
        self.waiting.insert(msg_id, id);
        for &peer in &self.peers {
            let broadcast = Message::Broadcast {
                id: msg_id,
                stamp,
                op: held.op.clone(),
            };
            send(out, self.tracer(), stamp.time, peer, broadcast);
        }
        if !self.peers.is_empty() {
            self.outbox.insert(
                msg_id,
                Outgoing {
                    held,
                    missing: self.peers.iter().copied().collect(),
                    sent_ms: self.now_ms,
                },
            );
        }
        self.try_deliver(storage, out)
    }

    /// Why a message is dropped unread, if it is.
    fn reject(&self, from: NodeId, message: &Message) -> Option<&'static str> {
        if !self.peers.contains(&from) {
            return Some("unknown sender");
        }
        match message {
            Message::Broadcast { id, stamp, .. } => match self.origins.get(&id.origin) {
                None => Some("unknown origin"),
                Some(_) if stamp.node != id.origin => {
                    Some("stamped by a node other than its origin")
                }
                Some(_) if id.seq == 0 => Some("broadcasts are numbered from 1"),
                Some(_) if id.origin == self.me && id.seq > self.own_seq => {
                    Some("a broadcast this node never made")
                }
                Some(o) if id.seq > o.delivered + self.window() => {
                    Some("beyond the hold-back window")
                }
                Some(_) => None,
            },
            Message::Ack { id, stamp, .. } => {
                if stamp.node != from {
                    Some("stamped by a node other than its sender")
                } else if !self.origins.contains_key(&id.origin) {
                    Some("unknown origin")
                } else {
                    None
                }
            }
            Message::Resend { origin, .. } if !self.origins.contains_key(origin) => {
                Some("unknown origin")
            }
            Message::Resend { .. } => None,
            _ => Some("not a lamport-mode message"),
        }
    }

    fn on_peer(
        &mut self,
        from: NodeId,
        message: Message,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        if let Some(why) = self.reject(from, &message) {
            ignore(out, self.tracer(), self.clock.time(), from, &message, why);
            return Ok(());
        }
        let time = self.clock.observe(message.time());
        trace_receive(out, self.tracer(), time, from, &message);
        match message {
            Message::Broadcast { id, stamp, op } => {
                let origin = self.origin(id.origin);
                if id.seq <= origin.received {
                    // A retransmission or a probe: say again that we hold it, to the sender.
                    let time = self.clock.tick();
                    let ack = Message::Ack {
                        id,
                        stamp: Stamp::new(time, self.me),
                        last_own: self.own_seq,
                    };
                    send(out, self.tracer(), time, from, ack);
                } else {
                    origin.known = origin.known.max(id.seq);
                    origin.early.entry(id.seq).or_insert(Held { stamp, op });
                    self.accept(id.origin, out);
                }
            }
            Message::Ack {
                id,
                stamp,
                last_own,
            } => {
                // Whoever acknowledges a broadcast holds it: it exists.
                let origin = self.origin(id.origin);
                origin.known = origin.known.max(id.seq);
                self.evidence(from, stamp, last_own);
                if id.origin == self.me {
                    self.acknowledged(from, id.seq);
                }
            }
            Message::Resend {
                origin, from_seq, ..
            } => self.relay(from, origin, from_seq, storage, out),
            _ => {}
        }
        self.try_deliver(storage, out)
    }

    /// Moves `origin`'s broadcasts that now continue its accepted prefix into the queue,
    /// acknowledging each to everyone.
    fn accept(&mut self, node: NodeId, out: &mut Vec<Output>) {
        let (me, own_seq) = (self.me, self.own_seq);
        let tracer = self.tracer();
        loop {
            let origin = self.origin(node);
            let seq = origin.received + 1;
            let Some(held) = origin.early.remove(&seq) else {
                break;
            };
            origin.received = seq;
            if node != me {
                // Its own broadcast is evidence from the origin, and it holds (seq) so counts.
                origin.heard = origin.heard.max(held.stamp);
            }
            let stamp = held.stamp;
            origin.held.insert(seq, held);
            let id = MsgId::new(node, seq);
            self.queue.insert(stamp, id);
            if node != me {
                let time = self.clock.tick();
                for &peer in &self.peers {
                    let ack = Message::Ack {
                        id,
                        stamp: Stamp::new(time, me),
                        last_own: own_seq,
                    };
                    send(out, tracer, time, peer, ack);
                }
            }
        }
        let origin = self.origin(node);
        if let Some((stamp, needed)) = origin.pending_evidence
            && origin.received >= needed
        {
            origin.heard = origin.heard.max(stamp);
            origin.pending_evidence = None;
        }
    }

    /// Records that `node` was at `stamp` having made `last_own` broadcasts.
    fn evidence(&mut self, node: NodeId, stamp: Stamp, last_own: u64) {
        let origin = self.origin(node);
        origin.known = origin.known.max(last_own);
        if origin.received >= last_own {
            origin.heard = origin.heard.max(stamp);
        } else if origin.pending_evidence.is_none_or(|(s, _)| stamp > s) {
            // Keeping only the latest is enough: it becomes usable once we hold its
            // `last_own`, and the broadcasts we lack are retransmitted or pulled.
            origin.pending_evidence = Some((stamp, last_own));
        }
    }

    /// `peer` acknowledged our broadcast `seq`, so it holds every one up to `seq` (it accepts
    /// them in order): none of them needs sending to it again.
    fn acknowledged(&mut self, peer: NodeId, seq: u64) {
        let seq = seq.min(self.own_seq);
        let acked = self.acked_by.get(&peer).copied().unwrap_or(0);
        if seq <= acked || !self.peers.contains(&peer) {
            return;
        }
        self.acked_by.insert(peer, seq);
        let me = self.me;
        let mut done = Vec::new();
        for (&id, outgoing) in self
            .outbox
            .range_mut(MsgId::new(me, acked + 1)..=MsgId::new(me, seq))
        {
            outgoing.missing.remove(&peer);
            if outgoing.missing.is_empty() {
                done.push(id);
            }
        }
        for id in done {
            self.outbox.remove(&id);
        }
    }

    /// Answers a [`Message::Resend`]: relays what we hold of `node`'s broadcasts.
    fn relay(
        &mut self,
        to: NodeId,
        node: NodeId,
        from_seq: u64,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) {
        let time = self.clock.tick();
        let from_seq = from_seq.max(1);
        let entries = if node == self.me {
            self.own_for_relay(from_seq, storage)
        } else {
            let Some(origin) = self.origins.get(&node) else {
                return;
            };
            // Early ones too (all numbered after the held ones): they may be the only copies.
            let held = origin
                .held
                .range(from_seq..)
                .chain(origin.early.range(from_seq..));
            batch(held.map(|(&s, h)| (s, h)), |h| h.op.size_bytes())
                .into_iter()
                .map(|(s, h)| (s, h.clone()))
                .collect()
        };
        for (seq, held) in entries {
            let broadcast = Message::Broadcast {
                id: MsgId::new(node, seq),
                stamp: held.stamp,
                op: held.op,
            };
            send(out, self.tracer(), time, to, broadcast);
        }
    }

    /// Our own broadcasts from `from_seq` on, for a relay: from memory, or from the ring for
    /// those memory no longer keeps; a batch at most, and without gaps.
    fn own_for_relay(&self, from_seq: u64, storage: &mut dyn Storage) -> Vec<(u64, Held)> {
        let Some(origin) = self.origins.get(&self.me) else {
            return Vec::new();
        };
        let oldest = self.own_seq.saturating_sub(self.ring_size) + 1;
        let oldest = origin.held.keys().next().map_or(oldest, |&s| s.min(oldest));
        let (mut entries, mut bytes) = (Vec::new(), 0);
        for seq in from_seq.max(oldest)..=self.own_seq {
            if entries.len() >= CATCH_UP_BATCH
                || (!entries.is_empty() && bytes >= CATCH_UP_BATCH_BYTES)
            {
                break;
            }
            let in_memory = origin.held.get(&seq).or_else(|| origin.early.get(&seq));
            // A failing read changes nothing: the peer asks again.
            let held = match in_memory {
                Some(held) => held.clone(),
                None => match self.load_own(storage, seq) {
                    Ok(Some(saved)) => saved.held,
                    _ => break,
                },
            };
            bytes += held.op.size_bytes();
            entries.push((seq, held));
        }
        entries
    }

    /// Delivers queue heads for as long as every node has been heard from past them.
    fn try_deliver(
        &mut self,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        while self.holds_own() {
            let Some((&stamp, &id)) = self.queue.first_key_value() else {
                break;
            };
            let blocked = self
                .peers
                .iter()
                .any(|p| self.origins.get(p).is_none_or(|o| o.heard < stamp));
            if blocked {
                break;
            }
            self.queue.pop_first();
            self.deliver(id, stamp, storage, out)?;
        }
        Ok(())
    }

    fn deliver(
        &mut self,
        id: MsgId,
        stamp: Stamp,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        let (me, time, capacity) = (self.me, self.clock.time(), self.options.log_capacity);
        let tracer = self.tracer();
        let origin = self.origin(id.origin);
        debug_assert_eq!(
            id.seq,
            origin.delivered + 1,
            "an origin's broadcasts in order"
        );
        let op = origin
            .held
            .get(&id.seq)
            .expect("queued broadcasts are held until delivered")
            .op
            .clone();
        trace(out, tracer, time, TraceKind::Deliver, Some(id), || {
            format!("@{stamp}: {op}")
        });
        let mut existed = false;
        if let Operation::Write(write) = &op {
            existed = apply_ordered(storage, write, stamp)?;
            trace(out, tracer, time, TraceKind::Apply, Some(id), || {
                format!("@{stamp}: {write}")
            });
        }
        // After the value: a crash in between re-applies this same write, which is harmless.
        storage.put_meta(&delivered_meta(id.origin), id.seq)?;
        let origin = self.origin(id.origin);
        origin.delivered = id.seq;
        while let Some((&seq, _)) = origin.held.first_key_value()
            && seq.saturating_add(capacity as u64) <= origin.delivered
        {
            origin.held.pop_first();
        }
        if id.origin == me
            && let Some(client) = self.waiting.remove(&id)
        {
            let response = match &op {
                Operation::Write(write) => write_response(write, existed),
                // Answered here, at its place: it sees every write ordered before it.
                Operation::Read { key } => read_local(storage, key),
            };
            reply(out, tracer, time, client, Some(id), response);
        }
        Ok(())
    }

    fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        self.now_ms = self.now_ms.max(now_ms);
        let (now, retry) = (self.now_ms, self.options.retry_interval_ms);
        let tracer = self.tracer();
        let time = self.clock.time();

        for (&id, outgoing) in &mut self.outbox {
            if now >= outgoing.sent_ms.saturating_add(retry) {
                outgoing.sent_ms = now;
                for &peer in &outgoing.missing {
                    let broadcast = Message::Broadcast {
                        id,
                        stamp: outgoing.held.stamp,
                        op: outgoing.held.op.clone(),
                    };
                    send(out, tracer, time, peer, broadcast);
                }
            }
        }

        match (self.queue.first_key_value(), self.head_since) {
            (None, _) => self.head_since = None,
            (Some((&stamp, &id)), Some((since_stamp, since))) if since_stamp == stamp => {
                if now >= since.saturating_add(retry) {
                    self.head_since = Some((stamp, now));
                    for peer in self.peers.clone() {
                        self.probe(peer, stamp, id, out);
                    }
                }
            }
            (Some((&stamp, _)), _) => self.head_since = Some((stamp, now)),
        }

        for peer in std::mem::take(&mut self.initial_pull) {
            self.pull_all(peer, out);
        }

        let nodes: Vec<NodeId> = self.origins.keys().copied().collect();
        for node in nodes {
            let origin = self.origin(node);
            let gap = origin.known > origin.received || !origin.early.is_empty();
            match origin.gap_since_ms {
                _ if !gap => origin.gap_since_ms = None,
                None => origin.gap_since_ms = Some(now),
                Some(since) if now >= since.saturating_add(retry) => {
                    origin.gap_since_ms = Some(now);
                    let from_seq = origin.received + 1;
                    let time = self.clock.tick();
                    for &peer in &self.peers {
                        let resend = Message::Resend {
                            origin: node,
                            from_seq,
                            time,
                        };
                        send(out, tracer, time, peer, resend);
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// Sends the blocked head to `peer` if we have not heard from it past the head: its
    /// acknowledgement will tell us where it is.
    fn probe(&mut self, peer: NodeId, stamp: Stamp, id: MsgId, out: &mut Vec<Output>) {
        let behind = self.origins.get(&peer).is_some_and(|o| o.heard < stamp);
        let Some(held) = self
            .origins
            .get(&id.origin)
            .and_then(|o| o.held.get(&id.seq))
        else {
            return;
        };
        if behind {
            let broadcast = Message::Broadcast {
                id,
                stamp,
                op: held.op.clone(),
            };
            send(out, self.tracer(), self.clock.time(), peer, broadcast);
        }
    }

    /// Asks `peer` for every origin's broadcasts after the ones we hold.
    fn pull_all(&mut self, peer: NodeId, out: &mut Vec<Output>) {
        let time = self.clock.tick();
        for (&node, origin) in &self.origins {
            let resend = Message::Resend {
                origin: node,
                from_seq: origin.received + 1,
                time,
            };
            send(out, self.tracer(), time, peer, resend);
        }
    }

    fn on_peer_up(&mut self, peer: NodeId, out: &mut Vec<Output>) {
        if !self.peers.contains(&peer) {
            return;
        }
        let (now, time) = (self.now_ms, self.clock.time());
        let tracer = self.tracer();
        for (&id, outgoing) in &mut self.outbox {
            if outgoing.missing.contains(&peer) {
                outgoing.sent_ms = now;
                let broadcast = Message::Broadcast {
                    id,
                    stamp: outgoing.held.stamp,
                    op: outgoing.held.op.clone(),
                };
                send(out, tracer, time, peer, broadcast);
            }
        }
        if let Some((&stamp, &id)) = self.queue.first_key_value() {
            self.probe(peer, stamp, id, out);
        }
        // Whatever we lack may be with this peer; a restarted node asks for everything.
        let gaps = self.initial_pull.remove(&peer)
            || self
                .origins
                .values()
                .any(|o| o.known > o.received || !o.early.is_empty());
        if gaps {
            self.pull_all(peer, out);
        }
    }
}

impl Mode for Lamport {
    fn step(
        &mut self,
        input: Input,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        match input {
            Input::Client { id, request } => self.on_client(id, request, storage, out)?,
            Input::Peer { from, message } => self.on_peer(from, message, storage, out)?,
            Input::Tick { now_ms } => self.on_tick(now_ms, out),
            Input::PeerUp { peer } => self.on_peer_up(peer, out),
        }
        self.clock_lease.cover(self.clock.time(), storage)
    }

    fn id(&self) -> NodeId {
        self.me
    }

    fn set_tracing(&mut self, on: bool) {
        self.tracing = on;
    }

    fn pending(&self) -> usize {
        self.queue.len() + self.outbox.len()
    }

    fn clock(&self) -> u64 {
        self.clock.time()
    }

    fn ready(&self) -> bool {
        self.holds_own()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn saved(op: Operation) -> Saved {
        Saved {
            seq: 7,
            held: Held {
                stamp: Stamp::new(u64::MAX, 3),
                op,
            },
            floor: 2,
            acked: 5,
        }
    }

    #[test]
    fn a_saved_broadcast_round_trips_and_damage_is_refused() {
        let ops = [
            Operation::Read { key: b"k".to_vec() },
            Operation::Write(Write {
                key: b"k".to_vec(),
                value: Some(b"v".to_vec()),
            }),
            Operation::Write(Write {
                key: Vec::new(),
                value: Some(Vec::new()),
            }),
            Operation::Write(Write {
                key: b"k".to_vec(),
                value: None,
            }),
        ];
        for op in ops {
            let s = saved(op);
            assert_eq!(Saved::decode(&s.encode()), Some(s));
        }
        let good = saved(Operation::Read { key: b"k".to_vec() }).encode();
        let mut bad_version = good.clone();
        bad_version[0] = 2;
        let mut bad_kind = good.clone();
        bad_kind[37] = 3;
        let mut read_with_value = good.clone();
        read_with_value.push(0);
        let damaged = [
            &good[..SAVED_HEADER - 1],
            &good[..good.len() - 1],
            &bad_version,
            &bad_kind,
            &read_with_value,
        ];
        for bytes in damaged {
            assert_eq!(Saved::decode(bytes), None, "{bytes:?}");
        }
    }

    proptest! {
        #[test]
        fn decoding_a_saved_broadcast_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            if let Some(s) = Saved::decode(&bytes) {
                prop_assert_eq!(s.encode(), bytes);
            }
        }
    }
}
