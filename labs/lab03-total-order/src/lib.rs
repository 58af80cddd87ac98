//! Lab 03: total-order broadcast, twice — with a sequencer, then with Lamport clocks and acks.
//!
//! The assignment is in this crate's `README.md`. In short: implement [`TotalOrder`] for
//! [`Sequencer`] and for [`Lamport`] in `src/student.rs`. Every node must deliver the same
//! entries in the same order. The key-value store on top ([`Kv`]) is given: it broadcasts each
//! client write, applies entries as they are delivered, answers a write once its node delivers
//! it, and answers reads from the local copy. With a total order underneath, that store is
//! sequentially consistent, and the tests check exactly that.
//!
//! Build with `--features reference` to run the toolkit's reference implementation instead of
//! `src/student.rs`.

use std::collections::BTreeMap;
use std::fmt;

use dkvs::sim::ModeFactory;
use labkit::{Command, Ctx, NodeId, Process, RequestId, Response, Stamp, Version};
use serde::{Deserialize, Serialize};

pub mod grading;

#[cfg(not(feature = "reference"))]
#[path = "student.rs"]
mod order;

#[cfg(feature = "reference")]
#[path = "reference.rs"]
mod order;

pub use order::{Lamport, Sequencer};

/// A client's write, to be put in the total order: the `id`-th write made at node `origin`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub origin: NodeId,
    pub id: u64,
    pub command: Command,
}

/// The messages of this lab. Both implementations share the enum; each uses its own two
/// variants. They are fixed: the snapshot tests show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Sequencer: "please put `entry` in the order" (to the sequencer).
    Forward { entry: Entry },
    /// Sequencer: "`entry` is number `seq` in the order" (from the sequencer, to every node).
    Order { seq: u64, entry: Entry },
    /// Lamport: "here is `entry`, stamped `stamp`" (from its origin, to every other node).
    Request { stamp: Stamp, entry: Entry },
    /// Lamport: "I have seen the request stamped `of`; my clock is now `stamp.time`" (to
    /// every other node).
    Ack { of: Stamp, stamp: Stamp },
}

impl fmt::Display for Entry {
    /// `n2#1 set x=1`: the origin, its count, the command.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}#{} {}", self.origin, self.id, self.command)
    }
}

impl fmt::Display for Msg {
    /// One short line for the traces, e.g. `order 4: n2#1 set x=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::Forward { entry } => write!(f, "forward {entry}"),
            Msg::Order { seq, entry } => write!(f, "order {seq}: {entry}"),
            Msg::Request { stamp, entry } => write!(f, "request @{stamp} {entry}"),
            Msg::Ack { of, stamp } => write!(f, "ack of @{of} @{stamp}"),
        }
    }
}

/// The context a total order works in: it sends [`Msg`]s and delivers [`Entry`]s.
pub type OrderCtx<'a> = Ctx<'a, Msg, Entry>;

/// A total-order broadcast: the one trait of this lab.
///
/// The network under it is reliable and FIFO: every message arrives, once, and messages from
/// one node to another arrive in the order they were sent (delays vary, though, so messages on
/// different links overtake each other).
pub trait TotalOrder: Send + 'static {
    /// Node `me` of a cluster of `nodes` (every node, `me` included, in increasing order).
    fn new(me: NodeId, nodes: &[NodeId]) -> Self;

    /// Puts `entry` in the total order. Every node, this one included, must eventually call
    /// `ctx.deliver(entry)` for it, exactly once, and all nodes in the same order.
    fn broadcast(&mut self, ctx: &mut OrderCtx<'_>, entry: Entry);

    /// A message from node `from` (or from this node itself, for a message it sent itself).
    fn on_message(&mut self, ctx: &mut OrderCtx<'_>, from: NodeId, msg: Msg);

    /// Entries this node knows of and has not delivered yet (0 when it has nothing to do).
    fn pending(&self) -> usize;
}

/// The key-value store over a total order (given, not part of the assignment).
pub struct Kv<T> {
    order: T,
    me: NodeId,
    /// Writes made here so far: the next entry's id.
    next_id: u64,
    /// This node's writes not yet delivered here, by entry id: the request to answer.
    waiting: BTreeMap<u64, RequestId>,
    /// Entries delivered here so far: the version stamp of the next one applied.
    delivered: u64,
}

impl<T: TotalOrder> Kv<T> {
    /// Node `me` of `nodes`.
    pub fn new(me: NodeId, nodes: &[NodeId]) -> Kv<T> {
        Kv {
            order: T::new(me, nodes),
            me,
            next_id: 1,
            waiting: BTreeMap::new(),
            delivered: 0,
        }
    }

    /// Applies what the order delivered, in order, and answers this node's writes among them.
    fn apply(&mut self, ctx: &mut Ctx<'_, Msg>, entries: Vec<Entry>) {
        for entry in entries {
            self.delivered += 1;
            // Every node applies the same entries in the same order, so a counter of
            // deliveries is a version every node agrees on.
            let stamp = Stamp::new(self.delivered, entry.origin);
            match &entry.command {
                Command::Set { key, value } => ctx.save(
                    key,
                    &Version {
                        value: Some(value.clone()),
                        stamp,
                    },
                ),
                Command::Del { key } => ctx.save(key, &Version { value: None, stamp }),
                Command::Get { .. } => {}
            }
            if entry.origin == self.me
                && let Some(request) = self.waiting.remove(&entry.id)
            {
                ctx.reply(request, Response::Ok);
            }
        }
    }
}

impl<T: TotalOrder> Process for Kv<T> {
    type Msg = Msg;

    fn on_client(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command) {
        if let Command::Get { key } = &command {
            let response = match ctx.load(key) {
                Some(Version {
                    value: Some(value), ..
                }) => Response::Value(value.into_bytes()),
                _ => Response::NotFound,
            };
            ctx.reply(id, response);
            return;
        }
        let entry = Entry {
            origin: self.me,
            id: self.next_id,
            command,
        };
        self.next_id += 1;
        self.waiting.insert(entry.id, id);
        let ((), delivered) = ctx.with_delivery(|c| self.order.broadcast(c, entry));
        self.apply(ctx, delivered);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let ((), delivered) = ctx.with_delivery(|c| self.order.on_message(c, from, msg));
        self.apply(ctx, delivered);
    }

    fn on_tick(&mut self, _ctx: &mut Ctx<'_, Msg>) {}

    fn pending(&self) -> usize {
        self.order.pending() + self.waiting.len()
    }
}

/// The simulator's factory for a cluster of [`Kv`] nodes over the total order `T`.
pub fn factory<T: TotalOrder>() -> ModeFactory {
    labkit::factory(|me, nodes| Kv::<T>::new(me, nodes))
}
