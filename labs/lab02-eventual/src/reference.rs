//! The reference replica: Lamport-stamped last-writer-wins, with an outbox resent until
//! acknowledged.
//!
//! It is built with `--features reference` instead of `student.rs`; the snapshots under
//! `tests/snapshots` were made with it. Its parts are the toolkit's own: [`LamportClock`] and
//! [`Stamp`] from `src/node/clock.rs`, the same ones `src/node/eventual.rs` uses.
//!
//! Every collection that is iterated while sending is a `BTreeMap` or `BTreeSet`, so the
//! messages leave in one fixed order (by update id, then by node): the order the README
//! specifies and the snapshots show.

use std::collections::{BTreeMap, BTreeSet};

use dkvs::node::LamportClock;
use labkit::{Command, Ctx, NodeId, RequestId, Response, Stamp, Version};

use crate::{Msg, Replica};

/// A replica that keeps the write with the largest stamp.
pub struct Lww {
    /// This node: the second half of every stamp it makes.
    me: NodeId,
    /// Every other node, in increasing order: who gets each update.
    others: Vec<NodeId>,
    /// Ticks on every local write, observes every update received, so a local write is
    /// always stamped past everything this node holds.
    clock: LamportClock,
    /// The id of the last update this node made (ids are 1, 2, 3… per origin).
    last_id: u64,
    /// The updates not yet acknowledged by every other node, by id.
    outbox: BTreeMap<u64, Unacked>,
}

/// An update of this node that some nodes have not acknowledged.
struct Unacked {
    /// The key written.
    key: String,
    /// What was written, and its stamp.
    version: Version,
    /// The nodes that have not acknowledged it yet; never empty (the entry goes with the last).
    missing: BTreeSet<NodeId>,
}

impl Lww {
    /// Carries out a client's `Set` (`Some`) or `Del` (`None`): stamps it, stores it,
    /// answers the client, and sends it to every other node, keeping it until each has
    /// acknowledged it.
    fn write(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, key: String, value: Option<String>) {
        // The clock has observed every stamp this node holds, so the new one beats them all:
        // the client sees its own write win here.
        let stamp = Stamp::new(self.clock.tick(), self.me);
        let version = Version { value, stamp };
        ctx.save(&key, &version);
        // Nothing to wait for: the write is done as far as this node's client is concerned.
        ctx.reply(id, Response::Ok);
        if self.others.is_empty() {
            return;
        }
        self.last_id += 1;
        let update = self.last_id;
        for &to in &self.others {
            ctx.send(
                to,
                Msg::Update {
                    id: update,
                    key: key.clone(),
                    version: version.clone(),
                },
            );
        }
        self.outbox.insert(
            update,
            Unacked {
                key,
                version,
                missing: self.others.iter().copied().collect(),
            },
        );
    }
}

impl Replica for Lww {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        Lww {
            me,
            others: nodes.iter().copied().filter(|&n| n != me).collect(),
            clock: LamportClock::default(),
            last_id: 0,
            outbox: BTreeMap::new(),
        }
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, Msg>, id: RequestId, command: Command) {
        match command {
            Command::Get { key } => {
                // Local, and a tombstone reads as absent.
                let response = match ctx.load(&key).and_then(|v| v.value) {
                    Some(value) => Response::Value(value.into_bytes()),
                    None => Response::NotFound,
                };
                ctx.reply(id, response);
            }
            Command::Set { key, value } => self.write(ctx, id, key, Some(value)),
            Command::Del { key } => self.write(ctx, id, key, None),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Update { id, key, version } => {
                self.clock.observe(version.stamp.time);
                // Thomas's write rule: only a larger stamp replaces what is stored. A duplicate
                // or an older write arriving late changes nothing.
                let newer = ctx.load(&key).is_none_or(|old| version.stamp > old.stamp);
                if newer {
                    ctx.save(&key, &version);
                }
                // Acknowledge either way: the sender only needs to know this node has it.
                ctx.send(from, Msg::Ack { id });
            }
            Msg::Ack { id } => {
                if let Some(entry) = self.outbox.get_mut(&id) {
                    entry.missing.remove(&from);
                    if entry.missing.is_empty() {
                        self.outbox.remove(&id);
                    }
                }
            }
        }
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, Msg>) {
        for (&id, entry) in &self.outbox {
            for &to in &entry.missing {
                ctx.send(
                    to,
                    Msg::Update {
                        id,
                        key: entry.key.clone(),
                        version: entry.version.clone(),
                    },
                );
            }
        }
    }

    fn pending(&self) -> usize {
        self.outbox.len()
    }
}
