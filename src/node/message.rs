//! What replicas say to each other.
//!
//! Peers exchange one-way messages: no message waits for an answer to make progress, and any of
//! them may be lost, delayed, duplicated or reordered by the network. Every mode is written so
//! that retransmitting a message is always safe (receivers recognise duplicates by [`MsgId`] or
//! by sequence number), which is what lets a sender simply resend what is unacknowledged.
//!
//! | mode | message | from → to | meaning |
//! |---|---|---|---|
//! | eventual | [`Message::Update`] | origin → every peer | "apply this write if its stamp wins" |
//! | eventual | [`Message::UpdateAck`] | peer → origin | "I have it; stop resending" |
//! | sequencer | [`Message::Forward`] | origin → sequencer | "please give this operation a place" |
//! | sequencer | [`Message::Ordered`] | sequencer → all (or any node, catching another up) | "operation `seq` is this one" |
//! | sequencer | [`Message::CatchUp`] | node → sequencer (or all) | "I have delivered everything before `from_seq`" |
//! | sequencer | [`Message::CatchUpReply`] | sequencer → node | "my log holds `first_seq..=last_seq`" |
//! | lamport | [`Message::Broadcast`] | origin → all (or relayed by any node) | "queue this operation at its stamp" |
//! | lamport | [`Message::Ack`] | receiver → all | "I hold it, and my clock is past its stamp" |
//! | lamport | [`Message::Resend`] | node → peers | "send me what you hold of `origin` from `from_seq`" |
//!
//! Every message carries its sender's Lamport time ([`Message::time`]), in a [`Stamp`] where the
//! protocol needs one and in a plain `time` field otherwise, so that traces of all nodes can be
//! merged in an order consistent with causality. A retransmission carries the time of the
//! original.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::NodeId;
use super::clock::Stamp;

/// A message's identity: which node created it, and that node's counter for it.
///
/// Unique for the life of the cluster, across restarts: each mode persists its counter (see the
/// meta table in the module docs), because a reused id would make a receiver drop a new message
/// as a duplicate of an old one, or take an old acknowledgement for a new one.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct MsgId {
    /// The node that created the message (where its client waits).
    pub origin: NodeId,
    /// The origin's counter; starts at 1.
    pub seq: u64,
}

impl MsgId {
    /// The id `seq` of node `origin`.
    pub fn new(origin: NodeId, seq: u64) -> MsgId {
        MsgId { origin, seq }
    }
}

impl fmt::Display for MsgId {
    /// `n2#7` — node 2's seventh message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}#{}", self.origin, self.seq)
    }
}

/// A change to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// The key.
    pub key: Vec<u8>,
    /// The new value; `None` deletes the key (stored as a tombstone, so the delete has a stamp
    /// and can win or lose against concurrent writes like any other write).
    pub value: Option<Vec<u8>>,
}

impl fmt::Display for Write {
    /// `set k=v` for a short printable value, `set k (300 B)` otherwise (values may be
    /// large or binary); `del k`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "set {}{}", Key(&self.key), ShownValue(value)),
            None => write!(f, "del {}", Key(&self.key)),
        }
    }
}

/// What a total-order broadcast carries: a write, or (in linearizable mode only) a read that
/// must be answered at its place in the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Apply this write.
    Write(Write),
    /// Read this key once every operation ordered before this one has been applied.
    Read { key: Vec<u8> },
}

impl Operation {
    /// Rough size in bytes, used to bound how much one catch-up reply carries.
    pub fn size_bytes(&self) -> usize {
        match self {
            Operation::Write(w) => w.key.len() + w.value.as_ref().map_or(0, Vec::len),
            Operation::Read { key } => key.len(),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Write(w) => w.fmt(f),
            Operation::Read { key } => write!(f, "get {}", Key(key)),
        }
    }
}

/// A message between replicas. The table in the module docs says who sends which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// eventual: a write made at `id.origin`, to apply if `stamp` beats the stored one.
    Update {
        id: MsgId,
        stamp: Stamp,
        write: Write,
    },
    /// eventual: the receiver holds update `id`; the origin stops resending it.
    UpdateAck { id: MsgId, time: u64 },
    /// sequencer: an origin asks the sequencer to order `op`. `after` is the origin's previous
    /// operation still waiting for its place, which must be ordered first (so a node's
    /// operations keep the order its clients sent them in). `delivered` is the origin's last
    /// delivered sequence number: the sequencer uses it to know whether it can still recognise
    /// a retried forward as a duplicate (see `sequencer`).
    Forward {
        id: MsgId,
        op: Operation,
        after: Option<MsgId>,
        delivered: u64,
        time: u64,
    },
    /// sequencer: operation `id` is number `seq` in the total order.
    Ordered {
        seq: u64,
        id: MsgId,
        op: Operation,
        time: u64,
    },
    /// sequencer: "I have delivered every operation before `from_seq`; send me the rest". Also
    /// serves as the sender's cumulative acknowledgement to the sequencer.
    CatchUp { from_seq: u64, time: u64 },
    /// sequencer: the sequencer's answer to [`Message::CatchUp`], after the entries it could
    /// send: it has ordered up to `last_seq` and still holds entries from `first_seq` on.
    CatchUpReply {
        first_seq: u64,
        last_seq: u64,
        time: u64,
    },
    /// lamport: queue `op` and deliver it when its `stamp` is the smallest and everyone has
    /// moved past it. `id.seq` counts the origin's broadcasts, 1, 2, 3, … without gaps.
    Broadcast {
        id: MsgId,
        stamp: Stamp,
        op: Operation,
    },
    /// lamport: the sender (`stamp.node`) holds broadcast `id`; its clock is `stamp.time`, and it
    /// had made `last_own` broadcasts of its own when it sent this.
    Ack {
        id: MsgId,
        stamp: Stamp,
        last_own: u64,
    },
    /// lamport: "send me the broadcasts of `origin` you hold, from `from_seq` on".
    Resend {
        origin: NodeId,
        from_seq: u64,
        time: u64,
    },
    /// A message of a mode from outside the toolkit (a lab's), carried as it is: `kind` names
    /// it in traces, `text` shows it on one line (a dropped message is traced from it), `body`
    /// is that mode's own encoding, and `time` its sender's clock.
    Plugin {
        kind: String,
        text: String,
        body: Vec<u8>,
        time: u64,
    },
}

impl Message {
    /// A short lower-case name, stable for traces, filters and colours.
    pub fn kind(&self) -> &str {
        match self {
            Message::Update { .. } => "update",
            Message::UpdateAck { .. } => "update_ack",
            Message::Forward { .. } => "forward",
            Message::Ordered { .. } => "ordered",
            Message::CatchUp { .. } => "catch_up",
            Message::CatchUpReply { .. } => "catch_up_reply",
            Message::Broadcast { .. } => "broadcast",
            Message::Ack { .. } => "ack",
            Message::Resend { .. } => "resend",
            Message::Plugin { kind, .. } => kind,
        }
    }

    /// The sender's Lamport time when the message was first sent; a receiver observes it.
    pub fn time(&self) -> u64 {
        match self {
            Message::Update { stamp, .. }
            | Message::Broadcast { stamp, .. }
            | Message::Ack { stamp, .. } => stamp.time,
            Message::UpdateAck { time, .. }
            | Message::Forward { time, .. }
            | Message::Ordered { time, .. }
            | Message::CatchUp { time, .. }
            | Message::CatchUpReply { time, .. }
            | Message::Resend { time, .. }
            | Message::Plugin { time, .. } => *time,
        }
    }

    /// The operation or update the message is about, if any (for traces).
    pub fn id(&self) -> Option<MsgId> {
        match self {
            Message::Update { id, .. }
            | Message::UpdateAck { id, .. }
            | Message::Forward { id, .. }
            | Message::Ordered { id, .. }
            | Message::Broadcast { id, .. }
            | Message::Ack { id, .. } => Some(*id),
            Message::CatchUp { .. }
            | Message::CatchUpReply { .. }
            | Message::Resend { .. }
            | Message::Plugin { .. } => None,
        }
    }
}

impl fmt::Display for Message {
    /// One short line, e.g. `ordered 4 n2#1 set k=v`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Update { id, stamp, write } => write!(f, "update {id} @{stamp} {write}"),
            Message::UpdateAck { id, .. } => write!(f, "update_ack {id}"),
            Message::Forward {
                id,
                op,
                after,
                delivered,
                ..
            } => {
                write!(f, "forward {id} {op}")?;
                if let Some(after) = after {
                    write!(f, " after {after}")?;
                }
                write!(f, " (delivered {delivered})")
            }
            Message::Ordered { seq, id, op, .. } => write!(f, "ordered {seq} {id} {op}"),
            Message::CatchUp { from_seq, .. } => write!(f, "catch_up from {from_seq}"),
            Message::CatchUpReply {
                first_seq,
                last_seq,
                ..
            } => write!(f, "catch_up_reply log {first_seq}..={last_seq}"),
            Message::Broadcast { id, stamp, op } => write!(f, "broadcast {id} @{stamp} {op}"),
            Message::Ack {
                id,
                stamp,
                last_own,
            } => write!(f, "ack {id} @{stamp} (own {last_own})"),
            Message::Resend {
                origin, from_seq, ..
            } => write!(f, "resend n{origin} from {from_seq}"),
            Message::Plugin { text, .. } => f.write_str(text),
        }
    }
}

/// A value for display after its key: `=v` when it is short printable ASCII, ` (N B)`
/// otherwise, so a trace line stays one short line whatever the value.
pub struct ShownValue<'a>(pub &'a [u8]);

impl fmt::Display for ShownValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        let v = self.0;
        if v.len() <= SHOWN && v.iter().all(|b| b.is_ascii_graphic()) {
            // Graphic ASCII has no spaces or control bytes to escape.
            write!(f, "={}", v.escape_ascii())
        } else {
            write!(f, " ({} B)", v.len())
        }
    }
}

/// A key for display: printable ASCII as is, other bytes escaped, long keys cut.
struct Key<'a>(&'a [u8]);

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 32;
        let shown = &self.0[..self.0.len().min(SHOWN)];
        write!(f, "{}", shown.escape_ascii())?;
        if self.0.len() > SHOWN {
            write!(f, "…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> Operation {
        Operation::Write(Write {
            key: key.into(),
            value: Some(value.into()),
        })
    }

    #[test]
    fn every_message_survives_json_and_prints_one_line() {
        let id = MsgId::new(2, 7);
        let stamp = Stamp::new(5, 2);
        let messages = [
            Message::Update {
                id,
                stamp,
                write: Write {
                    key: b"k\n".to_vec(),
                    value: None,
                },
            },
            Message::UpdateAck { id, time: 9 },
            Message::Forward {
                id,
                op: set("k", "v"),
                after: Some(MsgId::new(2, 6)),
                delivered: 3,
                time: 9,
            },
            Message::Ordered {
                seq: 4,
                id,
                op: Operation::Read { key: b"k".into() },
                time: 9,
            },
            Message::CatchUp {
                from_seq: 4,
                time: 9,
            },
            Message::CatchUpReply {
                first_seq: 1,
                last_seq: 4,
                time: 9,
            },
            Message::Broadcast {
                id,
                stamp,
                op: set("k", "v"),
            },
            Message::Ack {
                id,
                stamp,
                last_own: 2,
            },
            Message::Resend {
                origin: 1,
                from_seq: 3,
                time: 9,
            },
            Message::Plugin {
                kind: "order".into(),
                text: "order 1".into(),
                body: br#"{"Order":{"seq":1}}"#.to_vec(),
                time: 5,
            },
        ];
        let mut kinds = std::collections::BTreeSet::new();
        for message in messages {
            let json = serde_json::to_string(&message).expect("messages serialise");
            let back: Message = serde_json::from_str(&json).expect("and deserialise");
            assert_eq!(back, message);
            let line = message.to_string();
            assert!(line.starts_with(message.kind()), "{line}");
            assert!(!line.contains('\n'), "{line}");
            assert!(message.time() == 5 || message.time() == 9);
            kinds.insert(message.kind().to_string());
        }
        assert_eq!(kinds.len(), 10, "kinds are distinct");
    }

    #[test]
    fn long_and_binary_keys_are_escaped_and_cut() {
        let write = Write {
            key: [b'x'; 40].iter().copied().chain([0xff]).collect(),
            value: Some(vec![0; 3]),
        };
        assert_eq!(write.to_string(), format!("set {}… (3 B)", "x".repeat(32)));
        let read = Operation::Read { key: vec![0, b'a'] };
        assert_eq!(read.to_string(), "get \\x00a");
    }

    #[test]
    fn short_printable_values_are_shown_and_others_measured() {
        let set = |v: &[u8]| {
            Write {
                key: b"k".to_vec(),
                value: Some(v.to_vec()),
            }
            .to_string()
        };
        assert_eq!(set(b"v1"), "set k=v1");
        assert_eq!(
            set(b"two words"),
            "set k (9 B)",
            "a space would read as a new field"
        );
        assert_eq!(set(&[b'a'; 17]), "set k (17 B)", "long values are measured");
        assert_eq!(set(b""), "set k=", "the empty value is shown as empty");
    }
}
