//! Total-order broadcast with a fixed sequencer (`tob = "sequencer"`).
//!
//! # The protocol
//!
//! One node — the one with the smallest id — is the **sequencer**: it numbers operations
//! 1, 2, 3, … and every replica applies them in that order. The rest follows from "one
//! numbering, applied in order everywhere": replicas pass through the same states, so they
//! agree. This is the *fixed sequencer* family of Défago, Schiper and Urbán's survey (ACM
//! Computing Surveys 36(4), 2004), used by Amoeba and by many a message bus.
//!
//! 1. A client's operation reaches some node, its **origin**. The origin sends it to the
//!    sequencer as [`Message::Forward`] (the sequencer's own clients skip this step) and keeps
//!    resending it every `retry_interval_ms` until it comes back numbered.
//! 2. The sequencer gives it the next number `seq` — unless a follower is too far behind, see
//!    "Flow control" — records that `seq` is taken (meta `seq.ordered`) and what it stands for
//!    (the blob `seq.log.<seq mod log_capacity>`, see "The durable ordered log"), applies it
//!    itself, and sends [`Message::Ordered`]`{seq, id, op}` to everyone.
//! 3. Every node delivers operations strictly in `seq` order: one that arrives early waits in a
//!    **hold-back queue** until the gap before it fills. Delivering means applying the write
//!    and recording the position (meta `seq.delivered`, written after the value, so a crash in
//!    between re-applies the same write at the same place: harmless).
//! 4. The origin answers its client when *it* delivers the operation — not when the sequencer
//!    numbers it. By then the origin's own state includes the write, so the client's next read
//!    on that node sees it.
//!
//! Reads are local in `sequential` mode: total order for writes, local reads and "answer a
//! write only once it is applied locally" together give sequential consistency (Attiya and
//! Welch, ACM TOCS 12(2), 1994). A local read can be stale — another node may have delivered
//! further — so it is not linearizable. In `linearizable` mode a read is sent through the order
//! as [`Operation::Read`] like a write, and answered by its origin when it is delivered: it sees
//! exactly the writes ordered before it.
//!
//! # Filling gaps
//!
//! Messages get lost, so numbers go missing. Three mechanisms bring them back:
//!
//! - **Acknowledgements and retransmission.** Each follower reports its position with
//!   [`Message::CatchUp`]`{from_seq: delivered + 1}` at every tick when it has delivered
//!   something new or sees a gap (once it is ready; before, once per retry interval), and at
//!   once whenever it has delivered `log_capacity / 16` operations since its last report: so
//!   the sequencer's view of it stays fresh under a heavy load, and its silence means
//!   something (see "Flow control"). The sequencer resends, every `retry_interval_ms`, what a
//!   follower has not reported, if it has sent it nothing else meanwhile.
//! - **Catch-up.** A follower that sees a gap (something held back) for a whole tick, or that
//!   has just started, or whose sequencer has just reconnected, sends `CatchUp` at once; the
//!   sequencer answers with the missing entries and a [`Message::CatchUpReply`] saying which
//!   numbers it still holds and the last one it has handed out. Since most requests are mere
//!   reports, the sequencer sends entries only where something is evidently missing: the
//!   follower has not moved since its previous report, asks for numbers that were not sent on
//!   its current link, or asks for what follows the entries last sent to it again (it is
//!   catching up); and it answers the same request with entries at most once per
//!   `retry_interval_ms` (otherwise they would still be on their way). A follower asking
//!   *every* peer does so at most once per `retry_interval_ms`.
//! - **Retried forwards.** An origin resends an unanswered forward; the sequencer recognises
//!   it by its [`MsgId`] and sends its `Ordered` entry again rather than numbering it twice.
//!
//! Every node keeps its last [`NodeOptions::log_capacity`] delivered operations (the sequencer's
//! copy is "the ordered log") and answers catch-up requests from them and from its hold-back
//! queue. When the sequencer no longer holds what a follower needs — the follower is too far
//! behind — the follower asks *every* peer, since any of them may still hold those entries. A
//! node further behind than every peer's log cannot catch up this way: it would need a copy of
//! a peer's state (a snapshot), which this mode does not have.
//!
//! # Flow control
//!
//! The sequencer answers its own clients as soon as it has applied their operations, and
//! followers only learn of them over the network. Under a load the links cannot carry (a
//! benchmark against the sequencer, a slow link), followers would fall further and further
//! behind, and once one is more than `log_capacity` behind nobody can catch it up any more. So
//! the sequencer does not hand out a new number while a follower that is **alive** and **within
//! reach** is `log_capacity / 2` or more numbers behind, as far as its last report says:
//!
//! - its own clients' operations wait, unnumbered, and are numbered in their order as soon as
//!   the follower has caught up (a client sees a delay, not an error; only beyond
//!   `max_pending` waiting requests does it get `busy`), and so do forwards (up to
//!   `max_pending` of them; beyond, they are ignored until their origins retry), so clients
//!   of other nodes wait too, and get `busy` from their node once its `max_pending` requests
//!   wait. A forward held back is numbered as soon as the follower catches up, not at its
//!   origin's next retry, so a pipelined client of a follower is slowed, not stopped;
//! - *alive* means heard from (any message) within [`LIVE_INTERVALS`] retry intervals, or, for
//!   a follower that had reported everything and so had nothing to say, sent something new
//!   within that time. A follower that crashes or is cut off stops counting after at most that
//!   long — writes may pause for that long, not more — and then falls behind freely: "a
//!   follower down: tolerated" (below);
//! - *within reach* means the sequencer's log still holds what it needs (reported position
//!   `+ 1 >=` the log's first number): a follower already out of reach has to catch up from
//!   its peers, if it can, and waiting for it could stop writes for good;
//! - a follower that has connected (`PeerUp`) but not reported yet counts as alive at the
//!   oldest position still within reach. Without this rule a burst of writes right after
//!   start-up could push a follower out of reach before its first report arrived (the
//!   simulator found it: a log of 32 and 20 ms links, `tests/sim.rs`).
//!
//! A follower's real position is never behind its last report, so a follower that keeps
//! reporting is never more than `log_capacity / 2` behind. What the sequencer has numbered and
//! not yet heard of — up to `log_capacity / 16` between reports, plus what is on its way both
//! ways, plus the follower's own fsyncs — must fit in that margin for the sequencer to go at
//! full speed while the follower keeps up: with the default 4096, up to some 2,000 operations,
//! which a pipelined benchmark on a slow disk can exceed (then raise `log_capacity`).
//!
//! # The durable ordered log
//!
//! Besides its log in memory, the sequencer keeps its last `log_capacity` numbered operations
//! in storage, as a ring of blobs: operation `seq` under `seq.log.<seq mod log_capacity>`,
//! written in the same step as `seq.ordered`, hence durable before any `Ordered` message or
//! client reply about it leaves. Each blob records its own `seq` (see [`encode_entry`]), so a
//! slot overwritten by a later number, or left over from a run with another `log_capacity`, is
//! recognised. On restart the sequencer reloads the blobs of `ordered`, `ordered - 1`, … down
//! to `ordered - log_capacity + 1`, stopping at the first missing or damaged one, and serves
//! catch-ups from them as if it had never stopped. The cost is one blob per numbered operation
//! (a copy of the operation: the value is written twice on the sequencer).
//!
//! # A node's operations keep their order
//!
//! A client may send several requests without waiting for the answers (pipelining, as with
//! `redis-cli`), and expects them applied in that order. Forwards can overtake each other in
//! the network, so each one names the operation it comes `after`: the origin's previous
//! operation still waiting for its number. The sequencer parks a forward whose predecessor is
//! not numbered yet, and numbers it right after that one (or, if flow control holds it back
//! then, at a later tick). A parked forward whose predecessor does not come within two retry
//! intervals is dropped (it may have died with its origin in a crash); if it still matters,
//! the origin sends it again.
//!
//! # Recognising a retried forward with bounded memory
//!
//! Numbering a retried forward a second time would apply one client write twice, at two places
//! in the order — visible, for instance, as a key going `1 → 2 → 1` after one `set 1`. The
//! sequencer recognises retries by the ids of the operations in its log, but the log is
//! bounded. So a forward also carries its origin's `delivered` position, and the sequencer only
//! considers a forward whose sender has delivered everything *before its log*:
//! `delivered + 1 >= first seq in the log`. If that forward's operation was already numbered,
//! the number is larger than the origin's position when it sent the forward (an origin only
//! forwards operations it has not delivered), hence inside the log, hence recognised. Forwards
//! from nodes further behind are ignored until those nodes catch up. (After a restart the log
//! comes back from the ring, contiguous up to `ordered`, so the rule still holds.)
//!
//! # Bounds
//!
//! - Operations a node has accepted from its clients and not yet delivered:
//!   [`NodeOptions::max_pending`]; beyond it, `Err("busy: …")`.
//! - Numbers handed out beyond an alive follower's last reported position: `log_capacity / 2`
//!   (flow control, above); beyond it, the sequencer's own operations and the forwards wait
//!   (within `max_pending` each).
//! - Hold-back queue: only numbers up to `delivered + log_capacity` are held; later ones are
//!   dropped and come back through catch-up.
//! - Delivered log: the last `log_capacity` operations, on every node; on the sequencer, the
//!   same number of blobs in storage.
//! - Parked forwards on the sequencer: at most `max_pending` per origin (the oldest goes).
//! - A catch-up answer: at most [`super::CATCH_UP_BATCH`] entries (about
//!   [`super::CATCH_UP_BATCH_BYTES`]); a node far behind asks again as it progresses.
//!
//! # Failures: what blocks, what is tolerated
//!
//! - Lost, duplicated, delayed, reordered messages: tolerated.
//! - Overload, slow links: the sequencer slows down rather than let an alive follower fall
//!   out of reach (flow control, above); clients see `busy` only once `max_pending` requests
//!   wait.
//! - A follower down: tolerated; the others go on (after a pause of at most [`LIVE_INTERVALS`]
//!   retry intervals, if the sequencer was numbering fast when it went silent), and it catches
//!   up when it returns, if it is not more than `log_capacity` behind. Further behind, it can
//!   never catch up (no state transfer): it stays behind, and the sequencer ignores its
//!   forwards.
//! - **The sequencer down: writes stop everywhere** (and reads too in `linearizable` mode):
//!   forwards wait, then clients get `busy`. `sequential` reads go on locally. Electing a new
//!   sequencer safely needs the nodes to agree on what the old one numbered — consensus, which
//!   is stage 07.
//! - A follower restart: it recovers its values and position from storage and is *not ready*
//!   (clients get `Err("not ready: catching up")`) until it has heard the sequencer's last
//!   number since restarting and delivered up to it.
//! - A sequencer restart: it resumes numbering after `seq.ordered` and reloads its log from the
//!   ring, so followers catch up from it as before the crash. Ordering and its own delivery
//!   happen in one step, so normally it has delivered everything it numbered and is ready at
//!   once; if a crash cut a step short, it delivers the missing numbers from the ring (or, if
//!   they are not there either, asks its peers).
//! - **What a crash cannot lose.** Every number handed out is in the sequencer's storage
//!   before anyone hears of it (on disk with `sync = "always"`; otherwise in the operating
//!   system's hands, which survives a crash of the process but not of the machine). So a
//!   crash — typically of the sequencer right after numbering an operation whose `Ordered`
//!   messages were all lost — loses nothing that a node within `log_capacity` of the sequencer
//!   needs. What still stops progress for good is a node further behind than every peer's log
//!   (see above), or the loss of the sequencer's disk; safety holds even then (nobody applies
//!   anything in place of a missing number). Consensus (stage 07) keeps the log on several
//!   nodes.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry as MapEntry;

use super::{
    Input, LamportClock, Lease, Message, Mode, MsgId, NodeId, NodeOptions, Operation, Output,
    Request, RequestId, Response, Stamp, Storage, StorageError, TraceKind, Tracer, Write,
    apply_ordered, batch, ignore, read_local, reply, send, trace, trace_receive, trace_request,
    write_response,
};

/// How long, in retry intervals, a follower counts as alive after it was last heard from (or
/// last had nothing to report): for so long it can hold new numbers back (see "Flow control"
/// in the module docs). A follower that has anything to say reports at every tick (with the
/// default timers, 4 ticks per retry interval), so a follower counted dead while it is alive
/// needs some 8 of its reports in a row to be lost or late, and it is only harmed if it stays
/// silent until it is out of reach. Longer would make a crashed follower pause writes longer.
pub const LIVE_INTERVALS: u64 = 2;

/// A replica in the sequencer-ordered modes (`sequential` or `linearizable`).
#[derive(Debug)]
pub struct Sequencer {
    /// This node.
    me: NodeId,
    /// Whether trace events are wanted ([`Mode::set_tracing`]).
    tracing: bool,
    /// Every other node, sorted.
    peers: Vec<NodeId>,
    /// The node that numbers operations: the smallest id of the cluster.
    sequencer: NodeId,
    /// Whether reads go through the order (`linearizable`) or are local (`sequential`).
    linearizable: bool,
    /// Retry interval and bounds.
    options: NodeOptions,
    /// Lamport clock; here it only orders trace events, the order itself is `seq`.
    clock: LamportClock,
    /// Keeps the clock's persisted bound ahead of it.
    clock_lease: Lease,
    /// The last [`MsgId`] counter used for an operation of this node.
    last_id: u64,
    /// Keeps the id counter's persisted bound ahead of it.
    id_lease: Lease,
    /// The latest tick's time.
    now_ms: u64,

    /// The last sequence number applied here (meta `seq.delivered`).
    delivered: u64,
    /// The last `log_capacity` delivered operations, to help others catch up.
    log: BTreeMap<u64, Entry>,
    /// The ids of the operations in `log`, to recognise retried forwards.
    log_ids: BTreeMap<MsgId, u64>,
    /// Operations received ahead of a gap, waiting for it to fill.
    holdback: BTreeMap<u64, Entry>,
    /// This node's client operations not yet delivered here, with their clients.
    waiting: BTreeMap<MsgId, Waiting>,

    /// Whether clients are served (see [`Mode::ready`]).
    ready: bool,
    /// The sequencer's last number, as heard since start-up (followers only).
    target: Option<u64>,
    /// Whether catch-up requests go to every peer (the sequencer cannot serve them).
    ask_all: bool,
    /// `delivered` as last reported in a catch-up request (the sequencer's view of us).
    reported: u64,
    /// The sequencer does not know where we are (it resent something we have, or told us its
    /// position unasked): report our position at the next tick.
    ack_owed: bool,
    /// A catch-up request to the sequencer awaits its answer.
    asked: bool,
    /// When the last catch-up request was sent.
    last_catch_up_ms: Option<u64>,
    /// `delivered` when a gap was first seen: a gap still there a tick later is worth a request.
    gap_at: Option<u64>,

    /// The sequencer only: the last number handed out (meta `seq.ordered`).
    ordered: u64,
    /// The sequencer only: what each follower has reported delivering.
    followers: BTreeMap<NodeId, Follower>,
    /// The sequencer only: forwards that arrived before the operation they come `after`,
    /// keyed by that operation, with when they arrived.
    parked: BTreeMap<MsgId, (Entry, u64)>,
    /// The sequencer only: forwards held back by flow control (their predecessors, if any,
    /// numbered), numbered as soon as the lagging follower catches up. At most `max_pending`.
    gated: BTreeMap<MsgId, Operation>,
    /// The sequencer only: flow control stopped a chain of parked forwards whose predecessor
    /// is numbered; they go as soon as it lets them.
    parked_held: bool,
}

/// An operation with its id: an entry of the order.
#[derive(Debug, Clone)]
struct Entry {
    id: MsgId,
    op: Operation,
}

/// A client operation waiting for its place in the order.
#[derive(Debug)]
struct Waiting {
    /// Whom to answer.
    client: RequestId,
    /// The operation, to resend.
    op: Operation,
    /// When the forward was last sent.
    sent_ms: u64,
}

/// What the sequencer knows about a follower.
#[derive(Debug, Default)]
struct Follower {
    /// The last number it reported delivering; `None` until it reports after our start.
    acked: Option<u64>,
    /// When we last sent it entries.
    sent_ms: u64,
    /// When it last showed it is alive: a message arrived from it, or we sent it a new number
    /// while it had reported everything (it had nothing to say until then). `None` until one
    /// of these happens after our start.
    live_ms: Option<u64>,
    /// Every number from this one to `ordered` was sent to it, in order, since its link last
    /// came up (see [`Sequencer::resend_wanted`]); `None` if nothing was.
    streamed_from: Option<u64>,
    /// The last entries sent again (not as part of the stream).
    resent: Option<Resent>,
}

/// A batch of entries the sequencer sent a follower again.
#[derive(Debug, Clone, Copy)]
struct Resent {
    /// The first number asked for (or, for a retransmission, the first one sent).
    from_seq: u64,
    /// The number after the last one sent.
    next: u64,
    /// When.
    at_ms: u64,
}

impl Sequencer {
    /// The trace helpers' view of this node.
    fn tracer(&self) -> Tracer {
        Tracer {
            node: self.me,
            on: self.tracing,
        }
    }

    /// Recovers the node from `storage`: clock, id counter, delivered position and, on the
    /// sequencer, the last number handed out and the ordered log (see "The durable ordered log"
    /// in the module docs).
    ///
    /// # Errors
    /// A [`StorageError`] while reading meta entries or blobs.
    pub fn recover(
        me: NodeId,
        peers: Vec<NodeId>,
        linearizable: bool,
        storage: &mut dyn Storage,
        options: NodeOptions,
    ) -> Result<Sequencer, StorageError> {
        let clock_lease = Lease::recover("clock", storage)?;
        let id_lease = Lease::recover("msg_seq", storage)?;
        let delivered = storage.get_meta("seq.delivered")?.unwrap_or(0);
        let sequencer = peers.iter().copied().fold(me, NodeId::min);
        let mut ordered = 0;
        if sequencer == me {
            ordered = storage.get_meta("seq.ordered")?.unwrap_or(0).max(delivered);
            if peers.is_empty() {
                // Numbered but not applied (a crash inside the step) and, alone, sent to no
                // one: nobody holds it, so the number can be handed out again.
                ordered = delivered;
            }
        }
        let mut log = BTreeMap::new();
        let mut log_ids = BTreeMap::new();
        let mut holdback = BTreeMap::new();
        if sequencer == me {
            for (seq, entry) in load_ring(storage, ordered, options.log_capacity)? {
                if seq <= delivered {
                    log_ids.insert(entry.id, seq);
                    log.insert(seq, entry);
                } else {
                    // Numbered, but a crash cut the step short before it was applied here:
                    // delivered at the first tick.
                    holdback.insert(seq, entry);
                }
            }
        }
        Ok(Sequencer {
            me,
            tracing: true,
            peers,
            sequencer,
            linearizable,
            options,
            clock: LamportClock::new(clock_lease.bound),
            clock_lease,
            last_id: id_lease.bound,
            id_lease,
            now_ms: 0,
            delivered,
            log,
            log_ids,
            holdback,
            waiting: BTreeMap::new(),
            ready: sequencer == me && delivered >= ordered,
            target: None,
            ask_all: sequencer == me,
            reported: delivered,
            ack_owed: false,
            asked: false,
            last_catch_up_ms: None,
            gap_at: None,
            ordered,
            followers: BTreeMap::new(),
            parked: BTreeMap::new(),
            gated: BTreeMap::new(),
            parked_held: false,
        })
    }

    fn is_sequencer(&self) -> bool {
        self.me == self.sequencer
    }

    /// The first number this node can still send to others: its log holds every delivered
    /// operation from here on.
    fn log_first(&self) -> u64 {
        self.log
            .first_key_value()
            .map_or(self.delivered + 1, |(&seq, _)| seq)
    }

    /// How far beyond `delivered` operations are held back.
    fn window(&self) -> u64 {
        self.options.log_capacity.max(1) as u64
    }

    /// How far an alive follower may be behind before the sequencer stops numbering (see
    /// "Flow control" in the module docs).
    fn margin(&self) -> u64 {
        (self.window() / 2).max(1)
    }

    /// After how many deliveries since its last report a follower reports at once: often
    /// enough that what the sequencer has numbered and not yet heard of stays well within the
    /// margin at full speed (a report is cheap, see `resend_wanted`).
    fn report_every(&self) -> u64 {
        (self.margin() / 8).max(1)
    }

    /// The sequencer only: an alive follower within reach that is `margin` or more numbers
    /// behind, as far as it has reported, with how far behind it is. While there is one, no
    /// new number is handed out.
    fn lagging(&self) -> Option<(NodeId, u64)> {
        let first = self.log_first();
        let live_for = LIVE_INTERVALS.saturating_mul(self.options.retry_interval_ms);
        self.followers.iter().find_map(|(&peer, follower)| {
            // A follower that has not reported since our start (or its reconnection) may be
            // anywhere: assume the oldest position still within reach, so that numbering stops
            // once the log holds `margin` numbers it may lack, until it reports. Without this,
            // a burst of writes right after start-up can leave a follower out of reach before
            // its first report arrives.
            let acked = follower.acked.unwrap_or(first.saturating_sub(1));
            let alive = follower
                .live_ms
                .is_some_and(|t| self.now_ms <= t.saturating_add(live_for));
            let within_reach = acked + 1 >= first;
            let behind = self.ordered.saturating_sub(acked);
            (alive && within_reach && behind >= self.margin()).then_some((peer, behind))
        })
    }

    fn on_client(
        &mut self,
        id: RequestId,
        request: Request,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        trace_request(out, self.tracer(), self.clock.time(), id, &request);
        if !self.ready {
            let response = Response::Err("not ready: catching up".into());
            reply(out, self.tracer(), self.clock.time(), id, None, response);
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
        if self.waiting.len() >= self.options.max_pending {
            let why = format!(
                "busy: {} requests already wait for their place in the order",
                self.waiting.len()
            );
            reply(
                out,
                self.tracer(),
                self.clock.time(),
                id,
                None,
                Response::Err(why),
            );
            return Ok(());
        }
        self.last_id += 1;
        self.id_lease.cover(self.last_id, storage)?;
        let msg_id = MsgId::new(self.me, self.last_id);
        self.waiting.insert(
            msg_id,
            Waiting {
                client: id,
                op: op.clone(),
                sent_ms: self.now_ms,
            },
        );
        // On the sequencer the operation is numbered at the end of this step, by
        // `order_waiting`, unless flow control holds it back.
        if !self.is_sequencer() {
            let time = self.clock.tick();
            if let Some(forward) = self.forward(msg_id, time) {
                send(out, self.tracer(), time, self.sequencer, forward);
            }
        }
        Ok(())
    }

    /// The sequencer only: numbers its own clients' operations, oldest first, as long as flow
    /// control lets it. Those it holds back wait (up to `max_pending`, then new ones get
    /// `busy`) until the lagging follower has caught up, or stops counting as alive: a client
    /// sees a delay, not an error.
    fn order_waiting(
        &mut self,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        while self.lagging().is_none() {
            let Some((&id, waiting)) = self.waiting.first_key_value() else {
                break;
            };
            let op = waiting.op.clone();
            self.order(id, op, storage, out)?;
            if self.waiting.contains_key(&id) {
                // `deliver` answers (and forgets) the sequencer's own operations at once; if
                // that ever changes, stop rather than number one operation twice.
                debug_assert!(false, "{id} numbered but still waiting");
                break;
            }
        }
        Ok(())
    }

    /// The forward of waiting operation `id`, chained `after` the one before it that still
    /// waits: whatever order the network delivers them in, the sequencer numbers a node's
    /// operations in the order its clients sent them.
    fn forward(&self, id: MsgId, time: u64) -> Option<Message> {
        let waiting = self.waiting.get(&id)?;
        let after = self.waiting.range(..id).next_back().map(|(&a, _)| a);
        Some(Message::Forward {
            id,
            op: waiting.op.clone(),
            after,
            delivered: self.delivered,
            time,
        })
    }

    /// Sends the forwards of the waiting operations that `due` selects.
    fn resend_forwards(&mut self, due: impl Fn(&Waiting) -> bool, out: &mut Vec<Output>) {
        let ids: Vec<MsgId> = self
            .waiting
            .iter()
            .filter(|(_, w)| due(w))
            .map(|(&id, _)| id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let time = self.clock.tick();
        for id in ids {
            if let Some(forward) = self.forward(id, time) {
                send(out, self.tracer(), time, self.sequencer, forward);
            }
            if let Some(waiting) = self.waiting.get_mut(&id) {
                waiting.sent_ms = self.now_ms;
            }
        }
    }

    /// The sequencer receives a forward: numbers it, unless it is a retry or must wait for the
    /// operation it comes after.
    fn on_forward(
        &mut self,
        from: NodeId,
        id: MsgId,
        op: Operation,
        after: Option<MsgId>,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        if let Some(&seq) = self.log_ids.get(&id) {
            // A retry of an operation already numbered: its Ordered was lost.
            let time = self.clock.tick();
            send(
                out,
                self.tracer(),
                time,
                from,
                Message::Ordered { seq, id, op, time },
            );
            return Ok(());
        }
        if let Some(before) = after
            && !self.log_ids.contains_key(&before)
        {
            // Not numbered yet (if it were, it would be in the log: the acceptance rule in the
            // module docs). Park this one until it is; the origin keeps retrying both.
            let parked_here: Vec<MsgId> = self
                .parked
                .iter()
                .filter(|(_, (e, _))| e.id.origin == id.origin)
                .map(|(&k, _)| k)
                .collect();
            if parked_here.len() >= self.options.max_pending {
                // Full: forget the oldest (most likely left by a crashed incarnation of the
                // origin); if it still matters, its origin retries it.
                let oldest = parked_here
                    .iter()
                    .min_by_key(|k| self.parked[k].0.id)
                    .copied();
                if let Some(oldest) = oldest {
                    self.parked.remove(&oldest);
                }
            }
            self.parked.insert(before, (Entry { id, op }, self.now_ms));
            return Ok(());
        }
        if self.lagging().is_some() {
            // Flow control: wait until the lagging follower catches up (a retry of a forward
            // already waiting changes nothing). When too many wait, the origin retries later.
            if self.gated.len() < self.options.max_pending || self.gated.contains_key(&id) {
                self.gated.insert(id, op);
            }
            return Ok(());
        }
        self.order(id, op, storage, out)?;
        self.order_parked_after(id, storage, out)
    }

    /// The sequencer numbers the forwards flow control held back, oldest id first, as long as
    /// it lets it, with the parked forwards chained after each.
    fn order_gated(
        &mut self,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        while self.lagging().is_none() {
            let Some((id, op)) = self.gated.pop_first() else {
                break;
            };
            // A copy may have been numbered meanwhile: parked under a predecessor by an
            // earlier send of the same forward, and numbered after it.
            if !self.log_ids.contains_key(&id) {
                self.order(id, op, storage, out)?;
            }
            self.order_parked_after(id, storage, out)?;
        }
        Ok(())
    }

    /// Numbers the parked forwards chained after `last` (which is numbered), in order, as long
    /// as flow control allows; the rest stay parked for a later tick.
    fn order_parked_after(
        &mut self,
        mut last: MsgId,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        while self.parked.contains_key(&last) {
            if self.lagging().is_some() {
                self.parked_held = true;
                break;
            }
            let (next, _) = self.parked.remove(&last).expect("seen above");
            last = next.id;
            if !self.log_ids.contains_key(&next.id) {
                self.order(next.id, next.op, storage, out)?;
            }
        }
        Ok(())
    }

    /// The sequencer numbers the parked forwards whose predecessor has been numbered but that
    /// flow control held back then.
    fn order_parked(
        &mut self,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        let unblocked: Vec<MsgId> = self
            .parked
            .keys()
            .filter(|before| self.log_ids.contains_key(before))
            .copied()
            .collect();
        for before in unblocked {
            self.order_parked_after(before, storage, out)?;
        }
        Ok(())
    }

    /// The sequencer numbers an operation, sends it to everyone and delivers it itself.
    fn order(
        &mut self,
        id: MsgId,
        op: Operation,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        // A retry of a forward that flow control held back, numbered now: the held copy goes.
        self.gated.remove(&id);
        let seq = self.ordered + 1;
        // Recorded before anything else: a number is never handed out twice, even if the node
        // crashes before it has applied the operation; and what it stands for, so that the
        // number can be sent again after a crash (the durable ordered log).
        storage.put_meta("seq.ordered", seq)?;
        storage.put_blob(&ring_slot(seq, self.window()), &encode_entry(seq, id, &op))?;
        self.ordered = seq;
        let time = self.clock.tick();
        for &peer in &self.peers {
            let ordered = Message::Ordered {
                seq,
                id,
                op: op.clone(),
                time,
            };
            send(out, self.tracer(), time, peer, ordered);
            let follower = self.followers.entry(peer).or_default();
            follower.sent_ms = self.now_ms;
            follower.streamed_from.get_or_insert(seq);
            if follower.acked == Some(seq - 1) {
                // It had nothing to report until now: from here on, silence counts.
                follower.live_ms = Some(self.now_ms);
            }
        }
        self.deliver(seq, Entry { id, op }, storage, out)
    }

    /// Applies operation `seq` (the next one), answers its client if it started here, and
    /// keeps it in the log.
    fn deliver(
        &mut self,
        seq: u64,
        entry: Entry,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        debug_assert_eq!(seq, self.delivered + 1, "delivery in order");
        let time = self.clock.time();
        trace(
            out,
            self.tracer(),
            time,
            TraceKind::Deliver,
            Some(entry.id),
            || format!("{seq}: {}", entry.op),
        );
        let mut existed = false;
        if let Operation::Write(write) = &entry.op {
            // The same stamp on every replica: (seq, origin) is unique and identical everywhere.
            let stamp = Stamp::new(seq, entry.id.origin);
            existed = apply_ordered(storage, write, stamp)?;
            trace(
                out,
                self.tracer(),
                time,
                TraceKind::Apply,
                Some(entry.id),
                || format!("{seq}: {write}"),
            );
        }
        // After the value: a crash in between re-applies this same write, which is harmless.
        storage.put_meta("seq.delivered", seq)?;
        self.delivered = seq;

        if entry.id.origin == self.me
            && let Some(waiting) = self.waiting.remove(&entry.id)
        {
            let response = match &entry.op {
                Operation::Write(write) => write_response(write, existed),
                // Answered here, at its place: it sees every write ordered before it.
                Operation::Read { key } => read_local(storage, key),
            };
            reply(
                out,
                self.tracer(),
                time,
                waiting.client,
                Some(entry.id),
                response,
            );
        }

        self.log_ids.insert(entry.id, seq);
        self.log.insert(seq, entry);
        while self.log.len() > self.options.log_capacity {
            if let Some((_, old)) = self.log.pop_first() {
                self.log_ids.remove(&old.id);
            }
        }
        Ok(())
    }

    /// Why a message is dropped unread, if it is.
    fn reject(&self, from: NodeId, message: &Message) -> Option<&'static str> {
        if !self.peers.contains(&from) {
            return Some("unknown sender");
        }
        match message {
            Message::Forward {
                id,
                after,
                delivered,
                ..
            } => {
                if !self.is_sequencer() {
                    Some("not the sequencer")
                } else if id.origin != from {
                    Some("forwarded by a node other than its origin")
                } else if after.is_some_and(|a| a.origin != id.origin || a >= *id) {
                    Some("after must name an earlier operation of the same origin")
                } else if !self.ready {
                    Some("sequencer still catching up")
                } else if !self.log_ids.contains_key(id) && delivered + 1 < self.log_first() {
                    Some("forwarder too far behind for a retry to be recognised")
                } else {
                    None
                }
            }
            Message::Ordered { seq, .. } => {
                if self.is_sequencer() && *seq > self.ordered {
                    Some("a number the sequencer never handed out")
                } else if *seq > self.delivered + self.window() {
                    Some("beyond the hold-back window")
                } else {
                    None
                }
            }
            Message::CatchUp { .. } => None,
            Message::CatchUpReply { .. } if from != self.sequencer => Some("not the sequencer"),
            Message::CatchUpReply { .. } => None,
            _ => Some("not a sequencer-mode message"),
        }
    }

    fn on_peer(
        &mut self,
        from: NodeId,
        message: Message,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        if self.is_sequencer() && self.peers.contains(&from) {
            // Whatever it says, it is alive.
            self.followers.entry(from).or_default().live_ms = Some(self.now_ms);
        }
        if let Some(why) = self.reject(from, &message) {
            ignore(out, self.tracer(), self.clock.time(), from, &message, why);
            return Ok(());
        }
        let time = self.clock.observe(message.time());
        trace_receive(out, self.tracer(), time, from, &message);
        match message {
            Message::Forward { id, op, after, .. } => {
                self.on_forward(from, id, op, after, storage, out)?;
            }
            Message::Ordered { seq, id, op, .. } => {
                if seq <= self.delivered {
                    // A duplicate. From the sequencer it means our report did not reach it.
                    self.ack_owed |= from == self.sequencer;
                    return Ok(());
                }
                match self.holdback.entry(seq) {
                    MapEntry::Vacant(slot) => {
                        slot.insert(Entry { id, op });
                    }
                    MapEntry::Occupied(held) if held.get().id != id => {
                        let held = held.get().id;
                        trace(
                            out,
                            self.tracer(),
                            time,
                            TraceKind::Deliver,
                            Some(id),
                            || format!("{seq}: conflict, {held} held, {id} ignored"),
                        );
                    }
                    MapEntry::Occupied(_) => {}
                }
                self.deliver_held(storage, out)?;
                if !self.is_sequencer()
                    && !self.ask_all
                    && self.delivered >= self.reported + self.report_every()
                {
                    // Under a heavy load, a report every retry interval would leave the
                    // sequencer's view of us too stale for its flow control: report now.
                    self.send_catch_up(out);
                }
            }
            Message::CatchUp { from_seq, .. } => self.on_catch_up(from, from_seq, out),
            Message::CatchUpReply {
                first_seq,
                last_seq,
                ..
            } => {
                // Unasked, it means the sequencer does not know our position: tell it.
                self.ack_owed |= !self.asked;
                self.asked = false;
                self.target = Some(self.target.unwrap_or(0).max(last_seq));
                self.ask_all = self.delivered < last_seq && self.delivered + 1 < first_seq;
                let progressed = self.delivered > self.reported;
                self.update_ready();
                if self.delivered < last_seq && progressed {
                    // The last batch helped; ask for the next one now rather than next tick.
                    self.send_catch_up(out);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Answers a peer's catch-up request with what the log holds from `from_seq` on; the
    /// sequencer also records the peer's position and says what it holds.
    fn on_catch_up(&mut self, from: NodeId, from_seq: u64, out: &mut Vec<Output>) {
        let time = self.clock.tick();
        let from_seq = from_seq.max(1);
        if !self.is_sequencer() || self.resend_wanted(from, from_seq) {
            // Held-back entries too: after a crash of the sequencer they may be the only copies.
            let held = self
                .log
                .range(from_seq..)
                .chain(self.holdback.range(from_seq..));
            let entries = batch(held.map(|(&s, e)| (s, e)), |e| e.op.size_bytes());
            let next = entries.last().map(|&(last, _)| last + 1);
            for (seq, entry) in entries {
                let ordered = Message::Ordered {
                    seq,
                    id: entry.id,
                    op: entry.op.clone(),
                    time,
                };
                send(out, self.tracer(), time, from, ordered);
            }
            if self.is_sequencer()
                && let Some(next) = next
            {
                let follower = self.followers.entry(from).or_default();
                follower.resent = Some(Resent {
                    from_seq,
                    next,
                    at_ms: self.now_ms,
                });
                follower.sent_ms = self.now_ms;
            }
        }
        if self.is_sequencer() {
            let follower = self.followers.entry(from).or_default();
            let position = from_seq.saturating_sub(1);
            follower.acked = Some(follower.acked.map_or(position, |a| a.max(position)));
            let answer = Message::CatchUpReply {
                first_seq: self.log_first(),
                last_seq: self.ordered,
                time,
            };
            send(out, self.tracer(), time, from, answer);
        }
    }

    /// The sequencer only: whether a catch-up request of `from` from `from_seq` needs entries
    /// in answer, or only our position. A follower reports at every tick while it receives
    /// operations; most of its requests only mean "this far so far", and answering each with
    /// the entries that follow would send again what is already on its way. So entries go only
    /// where something is evidently missing: the follower has not moved since its last report
    /// (a gap, a loss, a stalled link), asks for numbers that were not sent on its current link
    /// (they were numbered before the link last came up, or before our start), or asks for
    /// what follows the entries we last resent it (it is catching up on resends, not on the
    /// stream). And the same request is answered with entries at most once per retry interval.
    fn resend_wanted(&self, from: NodeId, from_seq: u64) -> bool {
        let Some(follower) = self.followers.get(&from) else {
            return true;
        };
        if follower.acked.is_some_and(|a| from_seq <= a) {
            // An old request, overtaken by a later one: it has moved on since.
            return false;
        }
        let moved = follower.acked.is_some_and(|a| from_seq > a + 1);
        let streamed = follower.streamed_from.is_some_and(|s| from_seq >= s);
        let fed = follower.resent.is_some_and(|r| from_seq == r.next);
        if moved && streamed && !fed {
            return false;
        }
        let retry = self.options.retry_interval_ms;
        !follower
            .resent
            .is_some_and(|r| r.from_seq == from_seq && self.now_ms < r.at_ms.saturating_add(retry))
    }

    /// Reports our position and asks for what follows: to the sequencer, or to every peer when
    /// the sequencer cannot help (or we are the sequencer, catching up after a restart).
    fn send_catch_up(&mut self, out: &mut Vec<Output>) {
        let time = self.clock.tick();
        let from_seq = self.delivered + 1;
        let everyone = self.ask_all || self.is_sequencer();
        for &peer in &self.peers {
            if everyone || peer == self.sequencer {
                send(
                    out,
                    self.tracer(),
                    time,
                    peer,
                    Message::CatchUp { from_seq, time },
                );
            }
        }
        self.reported = self.delivered;
        self.ack_owed = false;
        self.asked = !self.is_sequencer();
        self.last_catch_up_ms = Some(self.now_ms);
    }

    /// Delivers the held-back operations that are next in line.
    fn deliver_held(
        &mut self,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        while let Some(entry) = self.holdback.remove(&(self.delivered + 1)) {
            self.deliver(self.delivered + 1, entry, storage, out)?;
        }
        self.update_ready();
        Ok(())
    }

    fn update_ready(&mut self) {
        let caught_up = if self.is_sequencer() {
            self.delivered >= self.ordered
        } else {
            self.target.is_some_and(|t| self.delivered >= t)
        };
        if caught_up {
            self.ready = true;
            self.ask_all = false;
        }
    }

    /// Whether the sequencer has told us of numbers we have not delivered.
    fn behind(&self) -> bool {
        self.target.is_some_and(|t| self.delivered < t)
    }

    fn on_tick(
        &mut self,
        now_ms: u64,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        self.now_ms = self.now_ms.max(now_ms);
        let retry = self.options.retry_interval_ms;
        let now = self.now_ms;
        // Only after a restart of the sequencer, when a crash cut its last step short: the
        // numbers it reloaded from its ring but had not applied.
        self.deliver_held(storage, out)?;
        if self.is_sequencer() {
            for peer in self.peers.clone() {
                self.retransmit(peer, false, out);
            }
            // Forwards flow control held back while their predecessors were numbered.
            self.order_parked(storage, out)?;
            // A parked forward whose predecessor has not come for two intervals is probably
            // waiting for an operation its origin lost in a crash. Dropping it is always safe:
            // if it still matters, its origin sends it again.
            self.parked
                .retain(|_, (_, since)| now < since.saturating_add(2 * retry));
        } else {
            self.resend_forwards(|w| now >= w.sent_ms.saturating_add(retry), out);
        }

        let gap = !self.holdback.is_empty();
        let gap_persists = gap && self.gap_at == Some(self.delivered);
        if !gap_persists {
            self.gap_at = gap.then_some(self.delivered);
        }
        let news = !self.is_sequencer() && (self.ack_owed || self.delivered > self.reported);
        // A ready follower with news or a gap reports to the sequencer at every tick: a report
        // is cheap (see `resend_wanted`), keeps the sequencer's view of us fresh for flow
        // control, and shows it we are alive even over a lossy link. Anything else — catching
        // up after a start, asking every peer (each answers with entries) — waits a retry
        // interval between requests.
        let report = self.ready && !self.ask_all && !self.is_sequencer() && (news || gap_persists);
        let due = self
            .last_catch_up_ms
            .is_none_or(|t| now >= t.saturating_add(retry));
        if report || (due && (!self.ready || gap_persists || news || self.behind())) {
            self.send_catch_up(out);
            self.gap_at = None;
        }
        Ok(())
    }

    /// The sequencer resends to `peer` what it has not reported delivering: if the retry
    /// interval has passed, or at once when `force`d (the peer just reconnected). A peer whose
    /// position is unknown (since our start) or behind our log gets our position instead, so
    /// it reports, or asks the others.
    fn retransmit(&mut self, peer: NodeId, force: bool, out: &mut Vec<Output>) {
        let first = self.log_first();
        let (ordered, now) = (self.ordered, self.now_ms);
        let retry = self.options.retry_interval_ms;
        let follower = self.followers.entry(peer).or_default();
        let due = force || now >= follower.sent_ms.saturating_add(retry);
        if !due || follower.acked.is_some_and(|a| a >= ordered) {
            return;
        }
        follower.sent_ms = now;
        let time = self.clock.tick();
        match follower.acked {
            Some(acked) if acked + 1 >= first => {
                let entries = batch(self.log.range(acked + 1..).map(|(&s, e)| (s, e)), |e| {
                    e.op.size_bytes()
                });
                if let Some(&(last, _)) = entries.last() {
                    follower.resent = Some(Resent {
                        from_seq: acked + 1,
                        next: last + 1,
                        at_ms: now,
                    });
                }
                for (seq, entry) in entries {
                    let ordered = Message::Ordered {
                        seq,
                        id: entry.id,
                        op: entry.op.clone(),
                        time,
                    };
                    send(out, self.tracer(), time, peer, ordered);
                }
            }
            _ => {
                let position = Message::CatchUpReply {
                    first_seq: first,
                    last_seq: ordered,
                    time,
                };
                send(out, self.tracer(), time, peer, position);
            }
        }
    }

    fn on_peer_up(&mut self, peer: NodeId, out: &mut Vec<Output>) {
        if !self.peers.contains(&peer) {
            return;
        }
        if self.is_sequencer() {
            let follower = self.followers.entry(peer).or_default();
            // What was on its way over the old link may be lost.
            follower.streamed_from = None;
            // A connection is a sign of life: until it reports, flow control counts it as
            // alive at an unknown position (see `lagging`).
            follower.live_ms = Some(self.now_ms);
            self.retransmit(peer, true, out);
            if !self.ready {
                let time = self.clock.tick();
                let from_seq = self.delivered + 1;
                send(
                    out,
                    self.tracer(),
                    time,
                    peer,
                    Message::CatchUp { from_seq, time },
                );
            }
        } else if peer == self.sequencer {
            self.resend_forwards(|_| true, out);
            self.send_catch_up(out);
        } else if self.ask_all {
            let time = self.clock.tick();
            let from_seq = self.delivered + 1;
            send(
                out,
                self.tracer(),
                time,
                peer,
                Message::CatchUp { from_seq, time },
            );
        }
    }
}

impl Mode for Sequencer {
    fn step(
        &mut self,
        input: Input,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        match input {
            Input::Client { id, request } => self.on_client(id, request, storage, out)?,
            Input::Peer { from, message } => self.on_peer(from, message, storage, out)?,
            Input::Tick { now_ms } => self.on_tick(now_ms, storage, out)?,
            Input::PeerUp { peer } => self.on_peer_up(peer, out),
        }
        if self.is_sequencer() && self.ready {
            if !self.waiting.is_empty() {
                self.order_waiting(storage, out)?;
            }
            if !self.gated.is_empty() {
                self.order_gated(storage, out)?;
            }
            if self.parked_held && self.lagging().is_none() {
                // Parked forwards whose predecessor was numbered while flow control held
                // them back: now, not at the next tick.
                self.parked_held = false;
                self.order_parked(storage, out)?;
            }
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
        self.waiting.len() + self.holdback.len() + self.parked.len() + self.gated.len()
    }

    fn clock(&self) -> u64 {
        self.clock.time()
    }

    fn ready(&self) -> bool {
        self.ready
    }
}

/// The blob that holds ring slot of operation `seq` in a ring of `slots` entries.
fn ring_slot(seq: u64, slots: u64) -> String {
    format!("seq.log.{}", seq % slots.max(1))
}

/// Length of [`encode_entry`]'s header: seq, origin, counter, kind, key length.
const ENTRY_HEADER: usize = 8 + 4 + 8 + 1 + 4;
/// [`encode_entry`]'s kinds of operation.
const KIND_READ: u8 = 0;
const KIND_SET: u8 = 1;
const KIND_DEL: u8 = 2;

/// The bytes of the ring blob for operation `seq` (see "The durable ordered log" in the module
/// docs):
///
/// ```text
/// seq:u64 | origin:u32 | counter:u64 | kind:u8 | key_len:u32 | key | value   (little-endian)
///   kind: 0 = read (no value follows), 1 = set (the value is the rest), 2 = delete (nothing)
/// ```
pub fn encode_entry(seq: u64, id: MsgId, op: &Operation) -> Vec<u8> {
    let (kind, key, value): (u8, &[u8], &[u8]) = match op {
        Operation::Read { key } => (KIND_READ, key, &[]),
        Operation::Write(Write {
            key,
            value: Some(value),
        }) => (KIND_SET, key, value),
        Operation::Write(Write { key, value: None }) => (KIND_DEL, key, &[]),
    };
    let key_len = u32::try_from(key.len()).expect("keys are far below 4 GiB");
    let mut out = Vec::with_capacity(ENTRY_HEADER + key.len() + value.len());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&id.origin.to_le_bytes());
    out.extend_from_slice(&id.seq.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

/// Reads bytes written by [`encode_entry`]: `None` if they are damaged (too short, an unknown
/// kind, a key longer than the rest, bytes after a read or a delete). Never panics.
pub fn decode_entry(bytes: &[u8]) -> Option<(u64, MsgId, Operation)> {
    let (header, rest) = bytes.split_at_checked(ENTRY_HEADER)?;
    let seq = u64::from_le_bytes(header[0..8].try_into().ok()?);
    let origin = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let counter = u64::from_le_bytes(header[12..20].try_into().ok()?);
    let kind = header[20];
    let key_len = usize::try_from(u32::from_le_bytes(header[21..25].try_into().ok()?)).ok()?;
    let (key, value) = rest.split_at_checked(key_len)?;
    let key = key.to_vec();
    let op = match kind {
        KIND_READ if value.is_empty() => Operation::Read { key },
        KIND_SET => Operation::Write(Write {
            key,
            value: Some(value.to_vec()),
        }),
        KIND_DEL if value.is_empty() => Operation::Write(Write { key, value: None }),
        _ => return None,
    };
    Some((seq, MsgId::new(origin, counter), op))
}

/// The sequencer's ring after a restart: the entries of `ordered`, `ordered - 1`, … (at most
/// `capacity` of them), oldest first, up to the first that is missing, damaged or overwritten
/// (its recorded seq is another), so that what is returned is contiguous and ends at `ordered`.
fn load_ring(
    storage: &mut dyn Storage,
    ordered: u64,
    capacity: usize,
) -> Result<Vec<(u64, Entry)>, StorageError> {
    let slots = capacity.max(1) as u64;
    let mut entries = Vec::new();
    let mut seq = ordered;
    while seq > 0 && ordered - seq < slots {
        let Some(bytes) = storage.get_blob(&ring_slot(seq, slots))? else {
            break;
        };
        match decode_entry(&bytes) {
            Some((stored, id, op)) if stored == seq => entries.push((seq, Entry { id, op })),
            _ => break,
        }
        seq -= 1;
    }
    entries.reverse();
    Ok(entries)
}
