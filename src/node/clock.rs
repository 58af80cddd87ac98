//! Lamport clocks, and the stamps they put on events.
//!
//! Machines have no shared clock, and their wall clocks drift, so "which write came last?" has no
//! answer in real time. Lamport ("Time, Clocks, and the Ordering of Events in a Distributed
//! System", CACM 21(7), 1978) replaces real time with a counter that respects *causality*:
//!
//! 1. before each local event (a client write, sending a message) a node increments its clock —
//!    [`LamportClock::tick`];
//! 2. every message carries the sender's clock, and a receiver sets its own clock past it —
//!    [`LamportClock::observe`], `max(mine, theirs) + 1`.
//!
//! Then if event *a* happened before *b* (same node earlier, or *a* is the send of a message whose
//! receipt precedes *b*), `time(a) < time(b)`. The converse does not hold: two events with
//! different times may be concurrent.
//!
//! Times alone can tie (two nodes both at 5), so the paper breaks ties with the process id. That
//! pair is a [`Stamp`], and `(time, node)` compared lexicographically is a **total** order on all
//! stamped events that extends causality. This crate uses it twice:
//!
//! - **last-writer-wins** (the `eventual` mode): of two writes to a key, the one with the larger
//!   stamp wins on every replica, whatever order they arrive in;
//! - **total-order broadcast** (the `lamport` mode): every node delivers messages in stamp order,
//!   which is the same order everywhere — Lamport's own application in the 1978 paper.
//!
//! Caveat: the total order is *a* order consistent with causality, not real time. A write made a
//! second after another, on a node that had not heard of it, can carry a smaller stamp and lose.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::NodeId;

/// A Lamport logical clock: one counter per node.
///
/// The counter saturates at `u64::MAX` rather than wrapping, so a hostile peer sending the
/// largest time cannot make a clock go backwards; honest clusters never get near it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LamportClock {
    /// The time of the last event on this node (0 before the first).
    time: u64,
}

impl LamportClock {
    /// A clock resuming from `time`, e.g. a value persisted before a restart.
    pub fn new(time: u64) -> LamportClock {
        LamportClock { time }
    }

    /// The time of the last event.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// A local event (a write, a send): advances the clock and returns the event's time.
    pub fn tick(&mut self) -> u64 {
        self.time = self.time.saturating_add(1);
        self.time
    }

    /// The receipt of a message stamped `time`: moves past both clocks and returns the receive
    /// event's time, which is larger than the send's.
    pub fn observe(&mut self, time: u64) -> u64 {
        self.time = self.time.max(time).saturating_add(1);
        self.time
    }
}

/// A Lamport time made unique by the node that produced it.
///
/// The derived order compares `time` first, then `node` (field order matters): the total order of
/// Lamport 1978 used for last-writer-wins and for total-order broadcast.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    /// The Lamport time of the event.
    pub time: u64,
    /// The node whose clock it was; breaks ties between equal times.
    pub node: NodeId,
}

impl Stamp {
    /// A stamp for `node`'s event at `time`.
    pub fn new(time: u64, node: NodeId) -> Stamp {
        Stamp { time, node }
    }
}

impl fmt::Display for Stamp {
    /// `5:n2` — time 5 on node 2.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:n{}", self.time, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_and_observe_follow_lamports_rules() {
        let mut a = LamportClock::default();
        let mut b = LamportClock::new(10);
        let sent = a.tick();
        assert_eq!(sent, 1);
        // b is ahead: receiving still moves it forward by one.
        assert_eq!(b.observe(sent), 11);
        // a is behind: receiving b's time jumps past it.
        let reply = b.tick();
        assert_eq!(a.observe(reply), reply + 1);
    }

    #[test]
    fn a_hostile_time_saturates_instead_of_wrapping() {
        let mut c = LamportClock::new(3);
        assert_eq!(c.observe(u64::MAX), u64::MAX);
        assert_eq!(c.tick(), u64::MAX);
    }

    #[test]
    fn stamps_order_by_time_then_node() {
        let cases = [
            (Stamp::new(1, 9), Stamp::new(2, 1)), // time decides first
            (Stamp::new(5, 1), Stamp::new(5, 2)), // a tie goes to the larger node id
        ];
        for (small, large) in cases {
            assert!(small < large, "{small} < {large}");
        }
    }
}
