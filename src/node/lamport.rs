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
//! 1. A client's operation at node *o*: `stamp = clock.tick()`; *o* puts it in its own queue and
//!    sends [`Message::Broadcast`]`{id, stamp, op}` to every peer.
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
//!   of each origin for this, besides those it has not delivered yet.
//!
//! Receivers recognise duplicates by `(origin, seq)`, so all of this is safe to repeat.
//!
//! # Bounds
//!
//! - A node's own operations awaiting delivery, and its broadcasts not yet acknowledged by every
//!   peer: each at most [`NodeOptions::max_pending`]; beyond it clients get `Err("busy: …")`.
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
//!   of delivered broadcasts come back from storage; the queue does not. The node asks every
//!   peer to resend what follows its delivered positions, and delivers nothing until it holds
//!   again all the broadcasts it had made itself — some may not be delivered yet, and its next
//!   deliveries must not overtake them. Until then it is *not ready* and answers clients
//!   `Err("not ready: catching up")`.
//! - **What a crash can lose for good.** Applied values, positions and counters are durable,
//!   but queues and relay logs are memory. A broadcast that some node has not delivered yet
//!   survives only while a running node that holds it stays up. If the last one crashes —
//!   typically its origin, having recorded the broadcast (meta `lamport.sent`) and crashed
//!   before any peer received it, say while partitioned away — no one can ever supply it, yet
//!   everyone knows it exists (acks carry `last_own`), so no node can deliver past its stamp.
//!   Safety holds; progress stops until an operator steps in. A durable log of broadcasts
//!   removes this failure.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Input, LamportClock, Lease, Message, Mode, MsgId, NodeId, NodeOptions, Operation, Output,
    Request, RequestId, Response, Stamp, Storage, StorageError, TraceKind, apply_ordered, batch,
    ignore, read_local, reply, send, trace, trace_receive, trace_request, write_response,
};

/// A replica in the Lamport-ordered modes (`sequential` or `linearizable`).
#[derive(Debug)]
pub struct Lamport {
    /// This node.
    me: NodeId,
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
#[derive(Debug, Clone)]
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

impl Lamport {
    /// Recovers the node from `storage`: clock, broadcast counter, delivered positions.
    ///
    /// # Errors
    /// A [`StorageError`] while reading meta entries.
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
        Ok(Lamport {
            me,
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
        })
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
        trace_request(out, self.me, self.clock.time(), id, &request);
        let refuse = |why: String, out: &mut Vec<Output>, time| {
            reply(out, self.me, time, id, None, Response::Err(why));
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
            reply(out, self.me, self.clock.time(), id, None, response);
            return Ok(());
        }
        if self.waiting.len() >= self.options.max_pending {
            let why = format!(
                "busy: {} operations already wait for delivery",
                self.waiting.len()
            );
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

        let stamp = Stamp::new(self.clock.tick(), self.me);
        // Recorded before the broadcast leaves: receivers rely on numbers without gaps, and a
        // restart must not number a different broadcast the same.
        let seq = self.own_seq + 1;
        storage.put_meta("lamport.sent", seq)?;
        self.own_seq = seq;
        let msg_id = MsgId::new(self.me, seq);
        let held = Held { stamp, op };
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
            send(out, self.me, stamp.time, peer, broadcast);
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
            ignore(out, self.me, self.clock.time(), from, &message, why);
            return Ok(());
        }
        let time = self.clock.observe(message.time());
        trace_receive(out, self.me, time, from, &message);
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
                    send(out, self.me, time, from, ack);
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
                if id.origin == self.me
                    && let Some(outgoing) = self.outbox.get_mut(&id)
                {
                    outgoing.missing.remove(&from);
                    if outgoing.missing.is_empty() {
                        self.outbox.remove(&id);
                    }
                }
            }
            Message::Resend {
                origin, from_seq, ..
            } => self.relay(from, origin, from_seq, out),
            _ => {}
        }
        self.try_deliver(storage, out)
    }

    /// Moves `origin`'s broadcasts that now continue its accepted prefix into the queue,
    /// acknowledging each to everyone.
    fn accept(&mut self, node: NodeId, out: &mut Vec<Output>) {
        let (me, own_seq) = (self.me, self.own_seq);
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
                    send(out, me, time, peer, ack);
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

    /// Answers a [`Message::Resend`]: relays what we hold of `node`'s broadcasts.
    fn relay(&mut self, to: NodeId, node: NodeId, from_seq: u64, out: &mut Vec<Output>) {
        let time = self.clock.tick();
        let Some(origin) = self.origins.get(&node) else {
            return;
        };
        // Early ones too (all numbered after the held ones): they may be the only copies.
        let from_seq = from_seq.max(1);
        let held = origin
            .held
            .range(from_seq..)
            .chain(origin.early.range(from_seq..));
        let entries = batch(held.map(|(&s, h)| (s, h)), |h| h.op.size_bytes());
        for (seq, held) in entries {
            let broadcast = Message::Broadcast {
                id: MsgId::new(node, seq),
                stamp: held.stamp,
                op: held.op.clone(),
            };
            send(out, self.me, time, to, broadcast);
        }
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
        trace(
            out,
            me,
            time,
            TraceKind::Deliver,
            Some(id),
            format!("@{stamp}: {op}"),
        );
        let mut existed = false;
        if let Operation::Write(write) = &op {
            existed = apply_ordered(storage, write, stamp)?;
            trace(
                out,
                me,
                time,
                TraceKind::Apply,
                Some(id),
                format!("@{stamp}: {write}"),
            );
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
            reply(out, me, time, client, Some(id), response);
        }
        Ok(())
    }

    fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        self.now_ms = self.now_ms.max(now_ms);
        let (me, now, retry) = (self.me, self.now_ms, self.options.retry_interval_ms);
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
                    send(out, me, time, peer, broadcast);
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
                        send(out, me, time, peer, resend);
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
            send(out, self.me, self.clock.time(), peer, broadcast);
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
            send(out, self.me, time, peer, resend);
        }
    }

    fn on_peer_up(&mut self, peer: NodeId, out: &mut Vec<Output>) {
        if !self.peers.contains(&peer) {
            return;
        }
        let (me, now, time) = (self.me, self.now_ms, self.clock.time());
        for (&id, outgoing) in &mut self.outbox {
            if outgoing.missing.contains(&peer) {
                outgoing.sent_ms = now;
                let broadcast = Message::Broadcast {
                    id,
                    stamp: outgoing.held.stamp,
                    op: outgoing.held.op.clone(),
                };
                send(out, me, time, peer, broadcast);
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
