//! The reference solution: every command, reads included, takes its place in the total order,
//! and is answered when its own node delivers it — as the toolkit's linearizable mode does
//! over its sequencer (`src/node/sequencer.rs`, `linearizable = true`).

use std::collections::BTreeMap;

use labkit::{Command, NodeId, RequestId, Response, Stamp, Version};

use crate::{Entry, Kv, Linearizable};

/// A linearizable store over the total order.
pub struct Store {
    /// This node's commands in the order, by entry id: the client request to answer.
    waiting: BTreeMap<u64, RequestId>,
    /// Entries delivered so far: a version every node agrees on.
    delivered: u64,
}

impl Linearizable for Store {
    fn new(_me: NodeId, _nodes: &[NodeId]) -> Self {
        Store {
            waiting: BTreeMap::new(),
            delivered: 0,
        }
    }

    fn on_client(&mut self, kv: &mut Kv<'_, '_>, id: RequestId, command: Command) {
        // A read answered from the local copy could miss a write another node has already
        // acknowledged. In the order, it sees exactly the writes ordered before it.
        let entry = kv.broadcast(command);
        self.waiting.insert(entry, id);
    }

    fn on_deliver(&mut self, kv: &mut Kv<'_, '_>, entry: Entry) {
        self.delivered += 1;
        let stamp = Stamp::new(self.delivered, entry.origin);
        let response = match &entry.command {
            Command::Set { key, value } => {
                let value = Some(value.clone());
                kv.save(key, &Version { value, stamp });
                Response::Ok
            }
            Command::Del { key } => {
                kv.save(key, &Version { value: None, stamp });
                Response::Ok
            }
            Command::Get { key } => match kv.load(key) {
                Some(Version {
                    value: Some(value), ..
                }) => Response::Value(value.into_bytes()),
                _ => Response::NotFound,
            },
        };
        if entry.origin == kv.me()
            && let Some(request) = self.waiting.remove(&entry.id)
        {
            kv.reply(request, response);
        }
    }

    fn pending(&self) -> usize {
        self.waiting.len()
    }
}
