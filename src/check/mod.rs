//! Consistency checkers: is this history linearizable, sequentially consistent, convergent?
//!
//! Tests, the workload tool, the simulator and the labs all end the same way: a recorded
//! [`History`] of invokes and returns is handed to a checker, which answers with a [`Verdict`].
//! The checkers are the toolkit's judges, so they are written to be right first, then fast, and
//! to *explain*: a violation comes with the smallest set of operations that cannot be ordered
//! and a sentence saying why.
//!
//! | module | question | idea from |
//! |---|---|---|
//! | [`history`] | the format, and a recorder for live clients | Jepsen's invoke/ok/fail/info |
//! | [`model`] | what a correct single key does: get/set/del/append/cas | Knossos and Porcupine models |
//! | [`linearizable`] | is there an order that respects real time and the model? | Wing and Gong 1993, Lowe 2017 |
//! | [`sequential`] | is there an order that respects each client's own order? | Lamport 1979 |
//! | [`eventual`] | did all replicas end up equal, holding only written values? | Vogels 2009 |
//! | [`shrink`] | the smallest failing part of a history | delta debugging, Zeller 2002 |
//! | [`jepsen`] | reading other systems' histories | Jepsen |
//! | [`report`] | verdicts as text for students, as JSON for graders | |

pub mod eventual;
pub mod history;
pub mod jepsen;
pub mod linearizable;
pub mod model;
pub mod report;
pub mod sequential;
pub mod shrink;

use std::time::{Duration, Instant};

pub use report::{Clock, Property, Report};

pub use history::{
    ClientId, Event, History, HistoryError, HistoryRecorder, Nanos, Op, OpId, Operation, Outcome,
    ReplicaState,
};

/// How much a check may spend before it gives up and answers [`Verdict::Unknown`].
///
/// Deciding linearizability is NP-complete (Gibbons and Korach 1997), and so is sequential
/// consistency; a checker without a budget can run for hours or exhaust memory on a large
/// enough history. With a budget it says "unknown" and why, instead.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Wall time for the whole check, including shrinking a violation.
    pub time_limit: Option<Duration>,
    /// Bytes the search's memo tables may hold.
    pub memory_limit_bytes: usize,
    /// Search steps that shrinking a violation may spend, in all (0: report the violation
    /// without shrinking it). Counted in steps, not seconds, so that the explanation is the same
    /// on every machine and every run.
    pub shrink_steps: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            time_limit: Some(Duration::from_secs(60)),
            memory_limit_bytes: 1 << 30,
            shrink_steps: 20_000_000,
        }
    }
}

impl Budget {
    /// A budget with no time limit and the default memory limit (for tests of small histories).
    pub fn unlimited_time() -> Budget {
        Budget {
            time_limit: None,
            ..Budget::default()
        }
    }

    /// The instant the check must stop, counted from `start`.
    pub fn deadline(&self, start: Instant) -> Option<Instant> {
        self.time_limit.map(|limit| start + limit)
    }
}

/// Which budget ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exhausted {
    Time,
    Memory,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exhausted::Time => f.write_str("time limit reached"),
            Exhausted::Memory => f.write_str("memory limit reached"),
        }
    }
}

/// The answer of a checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The history satisfies the property.
    Consistent,
    /// It does not; here is why.
    Violation(Violation),
    /// The checker ran out of budget before it could decide.
    Unknown { reason: String },
}

impl Verdict {
    /// The process exit status `dkvs check` uses: 0 consistent, 1 violation, 3 unknown
    /// (2 is bad input, decided before any check runs).
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Consistent => 0,
            Verdict::Violation(_) => 1,
            Verdict::Unknown { .. } => 3,
        }
    }
}

/// A counterexample: operations that no legal order can explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key the operations touch, when the check split the history by key.
    pub key: Option<String>,
    /// The operations, sorted by invoke time. After shrinking, removing any one of them would
    /// leave a consistent history, or would drop a write another shown operation observed.
    pub ops: Vec<Operation>,
    /// Per operation in `ops` (same positions), a note for the reader, or `None`.
    pub notes: Vec<Option<String>>,
    /// One sentence for a student: what cannot be ordered, and why.
    pub reason: String,
    /// Whether shrinking finished (`false`: the budget ran out and a smaller set may exist).
    pub minimal: bool,
}

/// Judges `history` against `property`.
///
/// # Errors
/// Only the convergence check can refuse a history: one without replica states.
pub fn judge(
    property: Property,
    history: &History,
    budget: &Budget,
) -> Result<Verdict, HistoryError> {
    Ok(match property {
        Property::Linearizable => linearizable::check(history, budget),
        Property::Eventual => eventual::check(history)?,
        Property::Sequential => sequential::check(history, budget),
    })
}
