//! Eventual consistency: apply at once, tell the others later, last writer wins.
//!
//! # The protocol
//!
//! A client's write is applied on the node it reaches and answered at once; the node then sends
//! it to every peer as an [`Message::Update`], and keeps resending it until that peer answers
//! with an [`Message::UpdateAck`]. Reads are local. Nothing waits for anyone: a node can serve
//! its clients while cut off from all the others. This is the default mode of many stores
//! (Dynamo-style systems with W = R = 1, Redis replication, DNS), and the setting of Vogels's
//! "Eventually Consistent" (CACM 52(1), 2009).
//!
//! # Why the replicas converge
//!
//! Two clients may write the same key at the same time on two nodes, and the two updates then
//! cross in the network: each node applies its own write first and the other's second. To end
//! up equal, the nodes need a rule that picks the same winner whatever the arrival order. The
//! rule here is Thomas's write rule (Thomas, ACM TODS 4(2), 1979): every write carries a
//! [`Stamp`] — its node's Lamport time and the node id — and a replica applies an incoming
//! write only if its stamp is **larger** than the stamp stored with the key. Stamps are totally
//! ordered, so each replica ends up holding, for each key, the write with the largest stamp
//! among those it has received; once every replica has received every write (retries see to
//! that), they hold the same one. Duplicates change nothing (the stamp is not larger than
//! itself), so resending is always safe, and the order of arrival does not matter.
//!
//! A delete is a write too: it stores a *tombstone* with its stamp, so an older write that
//! arrives after the delete loses to it instead of resurrecting the key.
//!
//! The local write is stamped past both the node's clock and the stamp already stored for the
//! key, so a client always sees its own write win on the node it wrote to.
//!
//! # What clients see (the caveats)
//!
//! - **Lost updates.** Of two concurrent writes, one is silently discarded everywhere, although
//!   both clients were told `OK`. Which one depends on Lamport time, not real time: a write made
//!   later in real time can lose to one with a larger stamp from a node that had been busier.
//! - **Stale reads.** A read on one node need not see a write acknowledged by another.
//! - **Tombstones are never removed.** Dropping one safely needs to know every replica has seen
//!   it; that is stage 05's anti-entropy and gossip.
//!
//! # Bounds: one outbox per peer, one entry per key
//!
//! The unacknowledged updates for a peer are kept per *key*: a newer write to a key replaces the
//! older one in the outbox, because under last-writer-wins the peer only needs the newest. An
//! outbox therefore holds at most one entry per distinct key written while the peer was away,
//! and at most [`NodeOptions::max_pending`] of them. When a peer's outbox is full, a client
//! write to a key *not already in it* is refused with `Err("busy: peer N is too far behind …")`
//! — before anything is applied — and writes to keys already waiting still succeed. The
//! alternative, dropping the oldest entry, would let that peer miss a write for good.
//!
//! # Failures and restarts
//!
//! - Lost, duplicated, delayed or reordered messages: tolerated (retry every
//!   `retry_interval_ms`, at once on [`Input::PeerUp`]).
//! - A peer down or partitioned away: tolerated; the others serve clients, its updates wait in
//!   the outboxes until it is back, or until an outbox fills (then writes of new keys are
//!   refused, see above).
//! - A restart: values and the Lamport clock (leased, see the meta table in [`crate::node`])
//!   come back from storage, and the node is ready at once. Updates *to* the node that it had
//!   not acknowledged are resent by their origins. But the node's own outboxes were in memory:
//!   writes it accepted and had not yet delivered to every peer reach only the peers that had
//!   them, and the replicas stay different on those keys until the next write to them. Closing
//!   that gap needs anti-entropy (replicas comparing their contents, stage 05's Merkle trees).

use std::collections::BTreeMap;

use super::{
    Input, LamportClock, Lease, Message, Mode, MsgId, NodeId, NodeOptions, Operation, Output,
    RequestId, Stamp, Storage, StorageError, TraceKind, Tracer, Versioned, Write, ignore,
    read_local, reply, send, trace, trace_receive, trace_request, write_response,
};

/// A replica in eventual mode.
#[derive(Debug)]
pub struct Eventual {
    /// This node.
    me: NodeId,
    /// Whether trace events are wanted ([`Mode::set_tracing`]).
    tracing: bool,
    /// Every other node, sorted.
    peers: Vec<NodeId>,
    /// Retry interval and outbox bound.
    options: NodeOptions,
    /// Stamps local writes; observes every update received.
    clock: LamportClock,
    /// Keeps the clock's persisted bound ahead of it.
    clock_lease: Lease,
    /// The last [`MsgId`] counter used for an update of this node.
    last_id: u64,
    /// Keeps the id counter's persisted bound ahead of it.
    id_lease: Lease,
    /// The latest tick's time: when updates were (re)sent.
    now_ms: u64,
    /// Per peer, the updates it has not acknowledged yet.
    outboxes: BTreeMap<NodeId, Outbox>,
}

/// The unacknowledged updates for one peer, newest per key.
#[derive(Debug, Default)]
struct Outbox {
    /// Key → the newest unacknowledged update of it.
    by_key: BTreeMap<Vec<u8>, Unacked>,
    /// Update id → key, to find the entry an acknowledgement is for.
    by_id: BTreeMap<MsgId, Vec<u8>>,
}

/// An update awaiting one peer's acknowledgement.
#[derive(Debug)]
struct Unacked {
    /// Its id; only an acknowledgement of this id clears the entry.
    id: MsgId,
    /// The write's stamp.
    stamp: Stamp,
    /// The written value (`None`: a delete).
    value: Option<Vec<u8>>,
    /// When it was last sent.
    sent_ms: u64,
}

impl Outbox {
    /// Queues an update, replacing an older one of the same key.
    fn insert(&mut self, key: Vec<u8>, entry: Unacked) {
        self.by_id.insert(entry.id, key.clone());
        if let Some(old) = self.by_key.insert(key, entry) {
            self.by_id.remove(&old.id);
        }
    }

    /// Clears the update acknowledged by `id`, unless a newer write of its key replaced it.
    fn acknowledge(&mut self, id: MsgId) {
        if let Some(key) = self.by_id.remove(&id)
            && self.by_key.get(&key).is_some_and(|u| u.id == id)
        {
            self.by_key.remove(&key);
        }
    }
}

impl Eventual {
    /// The trace helpers' view of this node.
    fn tracer(&self) -> Tracer {
        Tracer {
            node: self.me,
            on: self.tracing,
        }
    }

    /// Recovers the node from `storage` (clock and id counter; values are read as needed).
    ///
    /// # Errors
    /// A [`StorageError`] while reading meta entries.
    pub fn recover(
        me: NodeId,
        peers: Vec<NodeId>,
        storage: &mut dyn Storage,
        options: NodeOptions,
    ) -> Result<Eventual, StorageError> {
        let clock_lease = Lease::recover("clock", storage)?;
        let id_lease = Lease::recover("msg_seq", storage)?;
        Ok(Eventual {
            me,
            tracing: true,
            outboxes: peers.iter().map(|&p| (p, Outbox::default())).collect(),
            peers,
            options,
            clock: LamportClock::new(clock_lease.bound),
            clock_lease,
            last_id: id_lease.bound,
            id_lease,
            now_ms: 0,
        })
    }

    fn on_client(
        &mut self,
        id: RequestId,
        request: super::Request,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        trace_request(out, self.tracer(), self.clock.time(), id, &request);
        let write = match request.into_operation() {
            Operation::Read { key } => {
                let response = read_local(storage, &key);
                reply(out, self.tracer(), self.clock.time(), id, None, response);
                return Ok(());
            }
            Operation::Write(write) => write,
        };
        // Refuse before applying anything: a write applied here but never sent to a peer would
        // leave the replicas different for good.
        for (peer, outbox) in &self.outboxes {
            let full = outbox.by_key.len() >= self.options.max_pending;
            if full && !outbox.by_key.contains_key(&write.key) {
                let why = format!(
                    "busy: peer n{peer} is too far behind ({} updates unacknowledged)",
                    outbox.by_key.len()
                );
                reply(
                    out,
                    self.tracer(),
                    self.clock.time(),
                    id,
                    None,
                    super::Response::Err(why),
                );
                return Ok(());
            }
        }

        let old = storage.get(&write.key)?;
        // Past the stored stamp as well as the clock: the client's write must win here.
        let floor = old.as_ref().map_or(0, |v| v.stamp.time);
        let stamp = Stamp::new(self.clock.observe(floor), self.me);
        self.last_id += 1;
        self.id_lease.cover(self.last_id, storage)?;
        let msg_id = MsgId::new(self.me, self.last_id);
        storage.put(
            &write.key,
            &Versioned {
                value: write.value.clone(),
                stamp,
            },
        )?;
        trace(
            out,
            self.tracer(),
            stamp.time,
            TraceKind::Apply,
            Some(msg_id),
            || format!("{write} @{stamp}"),
        );

        for &peer in &self.peers {
            let outbox = self.outboxes.entry(peer).or_default();
            outbox.insert(
                write.key.clone(),
                Unacked {
                    id: msg_id,
                    stamp,
                    value: write.value.clone(),
                    sent_ms: self.now_ms,
                },
            );
            let update = Message::Update {
                id: msg_id,
                stamp,
                write: write.clone(),
            };
            send(out, self.tracer(), stamp.time, peer, update);
        }
        let existed = old.is_some_and(|v| v.value.is_some());
        let response = write_response(&write, existed);
        reply(out, self.tracer(), stamp.time, id, Some(msg_id), response);
        Ok(())
    }

    fn on_peer(
        &mut self,
        from: NodeId,
        message: Message,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        let known = self.peers.contains(&from);
        let expected = matches!(message, Message::Update { .. } | Message::UpdateAck { .. });
        if !known || !expected {
            let why = if known {
                "not an eventual-mode message"
            } else {
                "unknown sender"
            };
            ignore(out, self.tracer(), self.clock.time(), from, &message, why);
            return Ok(());
        }
        let time = self.clock.observe(message.time());
        trace_receive(out, self.tracer(), time, from, &message);
        match message {
            Message::Update { id, stamp, write } => {
                let old = storage.get(&write.key)?;
                match old {
                    Some(old) if old.stamp >= stamp => {
                        // A duplicate, or an older write arriving late: the stored one wins.
                        trace(
                            out,
                            self.tracer(),
                            time,
                            TraceKind::Deliver,
                            Some(id),
                            || format!("{write} @{stamp}: kept @{}", old.stamp),
                        );
                    }
                    _ => {
                        storage.put(
                            &write.key,
                            &Versioned {
                                value: write.value.clone(),
                                stamp,
                            },
                        )?;
                        trace(out, self.tracer(), time, TraceKind::Apply, Some(id), || {
                            format!("{write} @{stamp}")
                        });
                    }
                }
                // Acknowledge either way: the sender only needs to know we have it.
                let time = self.clock.tick();
                send(
                    out,
                    self.tracer(),
                    time,
                    from,
                    Message::UpdateAck { id, time },
                );
            }
            Message::UpdateAck { id, .. } => {
                if let Some(outbox) = self.outboxes.get_mut(&from) {
                    outbox.acknowledge(id);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Resends unacknowledged updates: those older than the retry interval, or every one for
    /// `peer_up`.
    fn resend(&mut self, peer_up: Option<NodeId>, out: &mut Vec<Output>) {
        let (time, now) = (self.clock.time(), self.now_ms);
        let tracer = self.tracer();
        let retry = self.options.retry_interval_ms;
        for (&peer, outbox) in &mut self.outboxes {
            if peer_up.is_some_and(|p| p != peer) {
                continue;
            }
            for (key, u) in &mut outbox.by_key {
                if peer_up.is_none() && now < u.sent_ms.saturating_add(retry) {
                    continue;
                }
                u.sent_ms = now;
                let update = Message::Update {
                    id: u.id,
                    stamp: u.stamp,
                    write: Write {
                        key: key.clone(),
                        value: u.value.clone(),
                    },
                };
                send(out, tracer, time, peer, update);
            }
        }
    }
}

impl Mode for Eventual {
    fn step(
        &mut self,
        input: Input,
        storage: &mut dyn Storage,
        out: &mut Vec<Output>,
    ) -> Result<(), StorageError> {
        match input {
            Input::Client { id, request } => self.on_client(id, request, storage, out)?,
            Input::Peer { from, message } => self.on_peer(from, message, storage, out)?,
            Input::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                self.resend(None, out);
            }
            Input::PeerUp { peer } => self.resend(Some(peer), out),
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
        self.outboxes.values().map(|o| o.by_key.len()).sum()
    }

    fn clock(&self) -> u64 {
        self.clock.time()
    }

    fn ready(&self) -> bool {
        true
    }
}
