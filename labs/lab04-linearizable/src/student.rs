//! Your linearizable store. Replace every `todo!` (the README says what each must do).
//!
//! Delete the next line once you start: it only keeps the untouched skeleton free of warnings.
#![allow(unused_variables, dead_code, unused_imports)]

use std::collections::BTreeMap;

use labkit::{Command, NodeId, RequestId, Response, Stamp, Version};

use crate::{Entry, Kv, Linearizable};

/// A linearizable store over the total order.
pub struct Store {
    me: NodeId,
    // Your state: which client request each of your entries answers, a count of deliveries…
}

impl Linearizable for Store {
    fn new(me: NodeId, nodes: &[NodeId]) -> Self {
        Store { me }
    }

    fn on_client(&mut self, kv: &mut Kv<'_, '_>, id: RequestId, command: Command) {
        todo!("lab04: Store::on_client: put the command in the order and remember whom to answer")
    }

    fn on_deliver(&mut self, kv: &mut Kv<'_, '_>, entry: Entry) {
        todo!("lab04: Store::on_deliver: apply the entry, and answer it if it is this node's")
    }

    fn pending(&self) -> usize {
        todo!("lab04: Store::pending: client commands not answered yet")
    }
}
