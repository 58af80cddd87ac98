//! The sequential specification: what one key does when operations run one at a time.
//!
//! Every checker asks the same question in a different form: *is there an order of these
//! operations in which each one, applied to the state left by the ones before it, gives the
//! result the client saw?* This module answers the inner part — "given this state, is this
//! operation with this outcome legal, and what state follows?" — for one key.
//!
//! A key is a register that is either absent or holds a string, with five operations: `get`,
//! `set`, `del`, `append` (an absent key counts as empty) and compare-and-set. A key-value map is
//! a product of independent keys, so a map history is checked one key at a time; Herlihy and
//! Wing call this *locality* of linearizability, Horn and Kroening "P-compositionality". A single
//! register with compare-and-set (the etcd histories) is the one-key case.
//!
//! Outcomes that carry no information are folded in here, once, so the searches need not know
//! about them: a read with an unknown outcome constrains nothing and changes nothing, so it is
//! dropped; an operation that certainly failed had no effect, so it is dropped too. A write with
//! an unknown outcome stays: the search may place it anywhere after its invoke, and placing it
//! after everything else is the same as it never happening.
//!
//! States are interned: a state is a `u32` naming a string in [`Values`] (`0` is "absent"), so
//! the searches' memo tables compare and hash integers, not strings.

use std::collections::HashMap;

use super::history::{Op, Operation, Outcome};

/// A key's state: [`ABSENT`] or an id from [`Values`].
pub type StateId = u32;

/// The state of a key that holds nothing.
pub const ABSENT: StateId = 0;

/// Interns the strings a key can hold.
///
/// Appends get special care. A history of many concurrent appends has a different state for
/// every order the search tries, and each state is a longer string than the last: interning them
/// all as strings costs memory quadratic in the history. So a state made by appending is stored
/// as a *node* — (state before, appended piece), twelve bytes — and compared with a string only
/// when a read or a compare-and-set needs it. Two different chains can spell the same string
/// ("ab"+"c", "a"+"bc"); they then get different ids, which only costs the memo a hit, never
/// correctness, because every comparison with an observed value is by content.
#[derive(Debug, Default)]
pub struct Values {
    strings: Vec<Box<str>>,
    ids: HashMap<Box<str>, StateId>,
    /// Append nodes: `(state before, piece)`; their ids have [`NODE`] set.
    nodes: Vec<(StateId, StateId)>,
    /// `(state, piece) → node`, so the same append from the same state is the same state.
    appended: HashMap<(StateId, StateId), StateId>,
}

/// Marks a [`StateId`] that names an append node rather than an interned string.
const NODE: StateId = 1 << 31;

impl Values {
    pub fn new() -> Values {
        Values::default()
    }

    /// The id of `s`, assigning one on first sight. Never [`ABSENT`].
    pub fn intern(&mut self, s: &str) -> StateId {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        self.strings.push(s.into());
        let id = StateId::try_from(self.strings.len())
            .ok()
            .filter(|id| id & NODE == 0)
            .expect("fewer than 2^31 distinct values");
        self.ids.insert(s.into(), id);
        id
    }

    /// The string a state holds (`None`: absent).
    pub fn get(&self, id: StateId) -> Option<std::borrow::Cow<'_, str>> {
        if id == ABSENT {
            return None;
        }
        if id & NODE == 0 {
            return Some(self.strings[id as usize - 1].as_ref().into());
        }
        let mut pieces = Vec::new();
        let mut at = id;
        while at & NODE != 0 {
            let (before, piece) = self.nodes[(at & !NODE) as usize];
            pieces.push(piece);
            at = before;
        }
        let mut text = String::from(self.plain(at));
        for piece in pieces.iter().rev() {
            text.push_str(self.plain(*piece));
        }
        Some(text.into())
    }

    fn plain(&self, id: StateId) -> &str {
        if id == ABSENT || id & NODE != 0 {
            ""
        } else {
            &self.strings[id as usize - 1]
        }
    }

    /// Whether `state` spells exactly the interned string `value` (or both are absent).
    pub fn equal(&self, state: StateId, value: StateId) -> bool {
        if state == value {
            return true;
        }
        if state & NODE == 0 || value == ABSENT {
            // Distinct interned ids are distinct strings; a node is never absent.
            return false;
        }
        // Match the chain's pieces against the end of `value`, last piece first.
        let mut rest = self.plain(value);
        let mut at = state;
        while at & NODE != 0 {
            let (before, piece) = self.nodes[(at & !NODE) as usize];
            match rest.strip_suffix(self.plain(piece)) {
                Some(r) => rest = r,
                None => return false,
            }
            at = before;
        }
        rest == self.plain(at)
    }

    /// The state after appending `suffix` (an interned id) to `state`.
    fn append(&mut self, state: StateId, suffix: StateId) -> StateId {
        if state == ABSENT {
            return suffix;
        }
        if let Some(&id) = self.appended.get(&(state, suffix)) {
            return id;
        }
        let id = NODE
            | StateId::try_from(self.nodes.len())
                .ok()
                .filter(|n| n & NODE == 0)
                .expect("fewer than 2^31 append states");
        self.nodes.push((state, suffix));
        self.appended.insert((state, suffix), id);
        id
    }

    /// Approximate heap bytes held, for memory budgets.
    pub fn heap_bytes(&self) -> usize {
        self.strings.iter().map(|s| 2 * s.len() + 48).sum::<usize>()
            + self.nodes.capacity() * 8
            + self.appended.capacity() * 16
    }
}

/// What a read must see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Absent,
    Value(StateId),
}

/// An operation and its outcome, compiled against a [`Values`] table: the form the searches step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A read that returned (it must see exactly this).
    Read(Expect),
    /// `set` (or `del`, which writes [`ABSENT`]), acknowledged or of unknown outcome.
    Write(StateId),
    /// `append` of this suffix.
    Append(StateId),
    /// Compare-and-set.
    Cas {
        expected: StateId,
        value: StateId,
        outcome: CasOutcome,
    },
}

/// How a compare-and-set ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The comparison held and the value was written.
    Applied,
    /// The key held something else; nothing was written.
    Refused,
    /// No answer: if it took effect, it did whatever the state at that moment dictated.
    Unknown,
}

impl Step {
    /// Compiles `op`, or `None` when the operation neither constrains nor changes anything (a
    /// failed operation; a read nobody heard back from).
    pub fn compile(op: &Operation, values: &mut Values) -> Option<Step> {
        if op.outcome == Outcome::Fail {
            return None;
        }
        Some(match &op.op {
            Op::Get { .. } => match &op.outcome {
                Outcome::Value { value } => Step::Read(Expect::Value(values.intern(value))),
                Outcome::NotFound => Step::Read(Expect::Absent),
                _ => return None,
            },
            Op::Set { value, .. } => Step::Write(values.intern(value)),
            Op::Del { .. } => Step::Write(ABSENT),
            Op::Append { value, .. } => Step::Append(values.intern(value)),
            Op::Cas {
                expected, value, ..
            } => Step::Cas {
                expected: expected.as_deref().map_or(ABSENT, |e| values.intern(e)),
                value: values.intern(value),
                outcome: match op.outcome {
                    Outcome::Ok => CasOutcome::Applied,
                    Outcome::Mismatch => CasOutcome::Refused,
                    _ => CasOutcome::Unknown,
                },
            },
        })
    }

    /// Applies the step to `state`: the next state, or `None` if the outcome is impossible here.
    #[inline]
    pub fn apply(self, state: StateId, values: &mut Values) -> Option<StateId> {
        match self {
            Step::Read(Expect::Absent) => (state == ABSENT).then_some(state),
            Step::Read(Expect::Value(v)) => values.equal(state, v).then_some(state),
            Step::Write(v) => Some(v),
            Step::Append(suffix) => Some(values.append(state, suffix)),
            Step::Cas {
                expected,
                value,
                outcome,
            } => match outcome {
                CasOutcome::Applied => values.equal(state, expected).then_some(value),
                CasOutcome::Refused => (!values.equal(state, expected)).then_some(state),
                CasOutcome::Unknown => Some(if values.equal(state, expected) {
                    value
                } else {
                    state
                }),
            },
        }
    }

    /// Whether the step can change the state.
    pub fn is_write(self) -> bool {
        !matches!(self, Step::Read(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::Operation;

    fn op(op: Op, outcome: Outcome) -> Operation {
        Operation {
            index: 0,
            id: 0,
            client: 1,
            op,
            call_ns: 0,
            return_ns: Some(1),
            outcome,
        }
    }

    #[test]
    fn steps_follow_the_register_semantics() {
        let mut v = Values::new();
        let k = || "k".to_string();
        let s = |o, out| Step::compile(&op(o, out), &mut Values::new()).is_some();
        assert!(
            !s(Op::Get { key: k() }, Outcome::Unknown),
            "unanswered reads are dropped"
        );
        assert!(
            !s(Op::Del { key: k() }, Outcome::Fail),
            "failed writes are dropped"
        );

        let one = v.intern("1");
        let two = v.intern("2");
        let mut step = |o, out, state| {
            let st = Step::compile(&op(o, out), &mut v).unwrap();
            st.apply(state, &mut v)
        };
        let get = Op::Get { key: k() };
        let found = |x: &str| Outcome::Value { value: x.into() };
        let cases: Vec<(Op, Outcome, StateId, Option<StateId>)> = vec![
            (get.clone(), Outcome::NotFound, ABSENT, Some(ABSENT)),
            (get.clone(), Outcome::NotFound, one, None),
            (get.clone(), found("1"), one, Some(one)),
            (get.clone(), found("2"), one, None),
            (
                Op::Set {
                    key: k(),
                    value: "2".into(),
                },
                Outcome::Ok,
                one,
                Some(two),
            ),
            (Op::Del { key: k() }, Outcome::Unknown, one, Some(ABSENT)),
            (
                Op::Cas {
                    key: k(),
                    expected: Some("1".into()),
                    value: "2".into(),
                },
                Outcome::Ok,
                one,
                Some(two),
            ),
            (
                Op::Cas {
                    key: k(),
                    expected: Some("1".into()),
                    value: "2".into(),
                },
                Outcome::Ok,
                ABSENT,
                None,
            ),
            (
                Op::Cas {
                    key: k(),
                    expected: Some("1".into()),
                    value: "2".into(),
                },
                Outcome::Mismatch,
                one,
                None,
            ),
            (
                Op::Cas {
                    key: k(),
                    expected: Some("1".into()),
                    value: "2".into(),
                },
                Outcome::Mismatch,
                two,
                Some(two),
            ),
            (
                Op::Cas {
                    key: k(),
                    expected: None,
                    value: "2".into(),
                },
                Outcome::Unknown,
                ABSENT,
                Some(two),
            ),
            (
                Op::Cas {
                    key: k(),
                    expected: None,
                    value: "2".into(),
                },
                Outcome::Unknown,
                one,
                Some(one),
            ),
        ];
        for (o, out, state, expected) in cases {
            let label = format!("{o} → {out} from {state}");
            assert_eq!(step(o, out, state), expected, "{label}");
        }
    }

    #[test]
    fn append_concatenates_and_treats_absent_as_empty() {
        let mut v = Values::new();
        let a = Step::Append(v.intern("x"));
        let b = Step::Append(v.intern("y"));
        let s1 = a.apply(ABSENT, &mut v).unwrap();
        let s2 = b.apply(s1, &mut v).unwrap();
        assert_eq!(v.get(s2).as_deref(), Some("xy"));
        // The same append from the same state gives the same id.
        assert_eq!(b.apply(s1, &mut v), Some(s2));
        // Reads and compare-and-set compare by content, whatever chain built the state.
        let xy = v.intern("xy");
        assert!(v.equal(s2, xy));
        let (yx, xyz) = (v.intern("yx"), v.intern("xyz"));
        assert!(!v.equal(s2, yx));
        assert!(!v.equal(s2, xyz));
        assert!(!v.equal(s2, ABSENT));
        let c = Step::Append(v.intern("z"));
        let s3 = c.apply(s2, &mut v).unwrap();
        assert!(v.equal(s3, xyz));
        assert_eq!(Step::Read(Expect::Value(xy)).apply(s2, &mut v), Some(s2));
        let cas = Step::Cas {
            expected: xy,
            value: v.intern("new"),
            outcome: CasOutcome::Applied,
        };
        let after = cas.apply(s2, &mut v).unwrap();
        assert_eq!(v.get(after).as_deref(), Some("new"));
    }
}
