//! Lab 04: linearizable reads over a total order.
//!
//! The assignment is in this crate's `README.md`. In short: implement [`Linearizable`] for
//! [`Store`] in `src/student.rs`, a key-value store over a total-order broadcast that is
//! given (lab 03's sequencer). Lab 03's store answered reads from the local copy, which is
//! sequentially consistent but can be stale; here every answer must be linearizable.
//!
//! Build with `--features reference` to run the reference implementation instead of
//! `src/student.rs`.

use std::collections::VecDeque;

use dkvs::sim::ModeFactory;
use lab03_total_order::{Msg, Sequencer, TotalOrder};
use labkit::{Command, Ctx, NodeId, Process, RequestId, Response, Version};

pub use lab03_total_order::Entry;

pub mod grading;

#[cfg(not(feature = "reference"))]
#[path = "student.rs"]
mod store;

#[cfg(feature = "reference")]
#[path = "reference.rs"]
mod store;

pub use store::Store;

/// The one trait of this lab: a key-value store over a total order.
pub trait Linearizable: Send + 'static {
    /// Node `me` of a cluster of `nodes` (every node, `me` included, in increasing order).
    fn new(me: NodeId, nodes: &[NodeId]) -> Self;

    /// A client sent `command`; answer it with [`Kv::reply`] and `id`, now or later.
    fn on_client(&mut self, kv: &mut Kv<'_, '_>, id: RequestId, command: Command);

    /// The total order delivered `entry` here. Every node gets the same entries in the same
    /// order, and an entry's origin gets it too.
    fn on_deliver(&mut self, kv: &mut Kv<'_, '_>, entry: Entry);

    /// Client commands not answered yet (0 when the node has nothing left to do).
    fn pending(&self) -> usize;
}

/// What a [`Linearizable`] store can do: put a command in the total order, answer clients,
/// read and write its local copy.
pub struct Kv<'c, 'a> {
    ctx: &'c mut Ctx<'a, Msg>,
    node: &'c mut Order,
}

impl Kv<'_, '_> {
    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.ctx.me()
    }

    /// Puts `command` in the total order and returns the id of its [`Entry`] (with
    /// `origin` = this node). Every node delivers it, this one included, in the same order.
    pub fn broadcast(&mut self, command: Command) -> u64 {
        let id = self.node.next_id;
        self.node.next_id += 1;
        let entry = Entry {
            origin: self.ctx.me(),
            id,
            command,
        };
        let order = &mut self.node.order;
        let ((), delivered) = self.ctx.with_delivery(|c| order.broadcast(c, entry));
        self.node.ready.extend(delivered);
        id
    }

    /// Answers the client's request `id`.
    pub fn reply(&mut self, id: RequestId, response: Response) {
        self.ctx.reply(id, response);
    }

    /// The local copy of `key`, if any (deletions included, as `value: None`).
    pub fn load(&mut self, key: &str) -> Option<Version> {
        self.ctx.load(key)
    }

    /// Stores `version` as `key`'s in the local copy.
    pub fn save(&mut self, key: &str, version: &Version) {
        self.ctx.save(key, version);
    }
}

/// The total order's side of a node (given).
struct Order {
    order: Sequencer,
    /// The id of this node's next entry.
    next_id: u64,
    /// Entries delivered and not yet handed to the store.
    ready: VecDeque<Entry>,
}

/// A node: the student's store over the total order.
pub struct Node<L> {
    store: L,
    order: Order,
}

impl<L: Linearizable> Node<L> {
    /// Hands the store every entry the order delivered, in order (handling one may deliver
    /// more).
    fn hand_over(&mut self, ctx: &mut Ctx<'_, Msg>) {
        while let Some(entry) = self.order.ready.pop_front() {
            let mut kv = Kv {
                ctx: &mut *ctx,
                node: &mut self.order,
            };
            self.store.on_deliver(&mut kv, entry);
        }
    }
}

impl<L: Linearizable> Process for Node<L> {
    type Msg = Msg;

    fn on_client(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command) {
        let mut kv = Kv {
            ctx: &mut *ctx,
            node: &mut self.order,
        };
        self.store.on_client(&mut kv, id, command);
        self.hand_over(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let order = &mut self.order.order;
        let ((), delivered) = ctx.with_delivery(|c| order.on_message(c, from, msg));
        self.order.ready.extend(delivered);
        self.hand_over(ctx);
    }

    fn on_tick(&mut self, _ctx: &mut Ctx<'_, Msg>) {}

    fn pending(&self) -> usize {
        self.order.order.pending() + self.store.pending()
    }
}

/// The simulator's factory for a cluster of `L` stores.
pub fn factory<L: Linearizable>() -> ModeFactory {
    labkit::factory(|me, nodes| Node {
        store: L::new(me, nodes),
        order: Order {
            order: Sequencer::new(me, nodes),
            next_id: 1,
            ready: VecDeque::new(),
        },
    })
}
