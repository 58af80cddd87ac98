//! Lab 02: eventual consistency by broadcast, retries and last-writer-wins.
//!
//! Every node holds a full copy of the data. A write is applied on the node it reaches, answered
//! at once, and sent to every other node as an [`Msg::Update`], again on every tick until that
//! node answers [`Msg::Ack`]. Each write carries a Lamport [`Stamp`]; a replica keeps, for each
//! key, the version with the largest stamp it has seen, so replicas that have received the same
//! writes hold the same data, whatever order the writes arrived in. `README.md` is the
//! assignment and states the protocol exactly.
//!
//! The crate's map:
//!
//! - this file: the [`Replica`] trait a student implements, the [`Msg`] type, and the glue
//!   ([`Node`], [`factory`]) that runs a `Replica` in the simulator;
//! - `student.rs`: the student's [`Lww`] (holes marked with `todo!`);
//! - `reference.rs`: the reference [`Lww`], built instead with `--features reference`;
//! - [`grading`]: the graded checks, generic over the implementation, which `tests/grade.rs`
//!   calls.

use std::fmt;

use dkvs::sim::ModeFactory;
use labkit::{Command, Ctx, NodeId, Process, RequestId};
use serde::{Deserialize, Serialize};

pub use labkit::{Stamp, Version};

pub mod grading;

#[cfg(not(feature = "reference"))]
#[path = "student.rs"]
mod replica;

#[cfg(feature = "reference")]
#[path = "reference.rs"]
mod replica;

pub use replica::Lww;

/// The messages of this lab (fixed: the snapshots show them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// A write made at the sender: apply it if its stamp beats what you hold; always answer Ack.
    Update {
        id: u64,
        key: String,
        version: Version,
    },
    /// "I hold update `id`": its origin stops resending it to me.
    Ack { id: u64 },
}

/// A message as the traces show it, on one line: `update 1: x=1 @1:n1`, `update 2: x deleted
/// @3:n2`, `ack 1`.
impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::Update { id, key, version } => match &version.value {
                Some(value) => write!(f, "update {id}: {key}={value} @{}", version.stamp),
                None => write!(f, "update {id}: {key} deleted @{}", version.stamp),
            },
            Msg::Ack { id } => write!(f, "ack {id}"),
        }
    }
}

/// One replica of an eventually consistent store: what a student implements.
///
/// The simulator calls these methods one at a time; whatever a method does to the world, it
/// does through `ctx` (send, reply, load, save). `README.md` says exactly what each must do.
pub trait Replica: Send + 'static {
    /// Node `me` of a cluster of `nodes` (every node, `me` included, in increasing order).
    fn new(me: NodeId, nodes: &[NodeId]) -> Self;

    /// A client's `Get`, `Set` or `Del`, to be answered with `ctx.reply(id, …)`.
    fn on_client(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command);

    /// A message from node `from`.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg);

    /// Time passed (every 50 ms of simulated time): resend what is unacknowledged.
    fn on_tick(&mut self, ctx: &mut Ctx<'_, Msg>);

    /// Updates still waiting for an acknowledgement.
    fn pending(&self) -> usize;
}

/// A [`Replica`] as the lab kit's [`Process`]: the simulator runs this.
pub struct Node<R: Replica>(pub R);

impl<R: Replica> Process for Node<R> {
    type Msg = Msg;

    fn on_client(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command) {
        self.0.on_client(ctx, id, command);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        self.0.on_message(ctx, from, msg);
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.0.on_tick(ctx);
    }

    fn pending(&self) -> usize {
        self.0.pending()
    }
}

/// The simulator's factory for a cluster of `R`s.
pub fn factory<R: Replica>() -> ModeFactory {
    labkit::factory(|me, nodes| Node(R::new(me, nodes)))
}
