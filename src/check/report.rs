//! Verdicts for people and for programs.
//!
//! A violation is printed the way a student reads a timeline: one line per operation, in invoke
//! order, with its client, the command as they would type it, its time window relative to the
//! start of the history, the reply, and an arrow on the lines that matter. `--json` gives the
//! same facts as one JSON object for graders and scripts.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::history::{History, Nanos, Operation};
use super::{Verdict, Violation};

/// The property a history is judged against. The words match `dkvs check --model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    Linearizable,
    Sequential,
    Eventual,
}

impl Property {
    /// The word used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Property::Linearizable => "linearizable",
            Property::Sequential => "sequential",
            Property::Eventual => "eventual",
        }
    }

    /// The phrase used in a violation's heading.
    fn failed(self) -> &'static str {
        match self {
            Property::Linearizable => "NOT linearizable",
            Property::Sequential => "NOT sequentially consistent",
            Property::Eventual => "NOT eventually consistent",
        }
    }
}

/// What the times in a history count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Nanoseconds of a real clock: shown in milliseconds since the history's first operation.
    Nanos,
    /// Nanoseconds since a simulation began: shown as they are, in milliseconds, the times its
    /// trace diagrams show.
    Simulated,
    /// Line numbers × 1000 (the Jepsen formats carry no times): shown as line numbers.
    Lines,
}

/// Everything a verdict's rendering needs.
pub struct Report<'a> {
    pub property: Property,
    pub history: &'a History,
    pub verdict: &'a Verdict,
    pub elapsed: Duration,
    pub clock: Clock,
}

/// `1234567` → `"1,234,567"`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

impl Report<'_> {
    fn sizes(&self) -> String {
        format!(
            "{}, {}, {}",
            plural(self.history.ops.len(), "operation", "operations"),
            plural(self.history.client_count(), "client", "clients"),
            plural(self.history.key_count(), "key", "keys"),
        )
    }

    fn origin(&self) -> Nanos {
        self.history
            .ops
            .iter()
            .map(|o| o.call_ns)
            .min()
            .unwrap_or(0)
    }

    fn time(&self, t: Nanos) -> String {
        match self.clock {
            Clock::Nanos => {
                let rel = t.saturating_sub(self.origin());
                format!("{}.{:03} ms", rel / 1_000_000, (rel / 1_000) % 1_000)
            }
            Clock::Simulated => format!("{}.{:03} ms", t / 1_000_000, (t / 1_000) % 1_000),
            Clock::Lines => format!("line {}", t / 1000),
        }
    }

    fn window(&self, op: &Operation) -> String {
        let end = match op.return_ns {
            Some(r) => self.time(r),
            None => "…".to_string(),
        };
        format!("[{} → {end}]", self.time(op.call_ns))
    }

    /// The human-readable verdict, ending with a newline.
    pub fn text(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        match self.verdict {
            Verdict::Consistent => format!(
                "{}: {} — OK ({secs:.2} s)\n",
                self.property.name(),
                self.sizes()
            ),
            Verdict::Unknown { reason } => format!(
                "{}: {} — UNKNOWN: {reason} ({secs:.2} s)\n",
                self.property.name(),
                self.sizes()
            ),
            Verdict::Violation(v) => self.violation_text(v, secs),
        }
    }

    fn violation_text(&self, v: &Violation, secs: f64) -> String {
        let mut out = String::new();
        match &v.key {
            Some(key) => {
                let _ = writeln!(out, "{} on key {key:?}:", self.property.failed());
            }
            None => {
                let _ = writeln!(out, "{}:", self.property.failed());
            }
        }
        let clients: Vec<String> = v
            .ops
            .iter()
            .map(|o| format!("client {}", o.client))
            .collect();
        let ops: Vec<String> = v.ops.iter().map(|o| o.op.to_string()).collect();
        let windows: Vec<String> = v.ops.iter().map(|o| self.window(o)).collect();
        let outcomes: Vec<String> = v.ops.iter().map(|o| o.outcome.to_string()).collect();
        let width = |col: &[String]| col.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        let (wc, wo, ww, wr) = (
            width(&clients),
            width(&ops),
            width(&windows),
            width(&outcomes),
        );
        for i in 0..v.ops.len() {
            let mut line = format!(
                "  {:wc$}  {:wo$}  {:ww$}  {:wr$}",
                clients[i], ops[i], windows[i], outcomes[i]
            );
            if let Some(Some(note)) = v.notes.get(i) {
                let _ = write!(line, "   ← {note}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = writeln!(out, "{}", v.reason);
        let shrunk = if v.minimal {
            "no operation shown can be left out"
        } else {
            "shrinking stopped at the budget; a smaller set may exist"
        };
        let _ = writeln!(out, "({}; {shrunk}; {secs:.2} s)", self.sizes());
        out
    }

    /// The machine-readable verdict.
    pub fn json(&self) -> Value {
        let mut out = json!({
            "model": self.property.name(),
            "operations": self.history.ops.len(),
            "clients": self.history.client_count(),
            "keys": self.history.key_count(),
            "elapsed_s": self.elapsed.as_secs_f64(),
        });
        let fields = match self.verdict {
            Verdict::Consistent => json!({ "verdict": "ok" }),
            Verdict::Unknown { reason } => json!({ "verdict": "unknown", "reason": reason }),
            Verdict::Violation(v) => {
                let ops: Vec<Value> = v
                    .ops
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        let mut op = serde_json::to_value(&o.op).unwrap_or(Value::Null);
                        if let (Value::Object(map), Value::Object(outcome)) = (
                            &mut op,
                            serde_json::to_value(&o.outcome).unwrap_or(Value::Null),
                        ) {
                            // Both carry a "value": keep the operation's, and name the read's
                            // result "result_value".
                            for (k, val) in outcome {
                                let k = if k == "value" {
                                    "result_value".into()
                                } else {
                                    k
                                };
                                map.insert(k, val);
                            }
                            map.insert("id".into(), json!(o.id));
                            map.insert("client".into(), json!(o.client));
                            map.insert("call_ns".into(), json!(o.call_ns));
                            map.insert("return_ns".into(), json!(o.return_ns));
                            if let Some(Some(note)) = v.notes.get(i) {
                                map.insert("note".into(), json!(note));
                            }
                        }
                        op
                    })
                    .collect();
                json!({
                    "verdict": "violation",
                    "key": v.key,
                    "reason": v.reason,
                    "minimal": v.minimal,
                    "ops": ops,
                })
            }
        };
        if let (Value::Object(out), Value::Object(fields)) = (&mut out, fields) {
            out.extend(fields);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::{Op, Outcome};

    fn op(
        index: usize,
        client: u64,
        op: Op,
        call: u64,
        ret: Option<u64>,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            index,
            id: index as u64,
            client,
            op,
            call_ns: call,
            return_ns: ret,
            outcome,
        }
    }

    #[test]
    fn a_violation_reads_like_a_timeline() {
        let set = op(
            0,
            2,
            Op::Set {
                key: "x".into(),
                value: "1".into(),
            },
            12_001_000,
            Some(12_400_000),
            Outcome::Ok,
        );
        let get = op(
            1,
            3,
            Op::Get { key: "x".into() },
            13_020_000,
            Some(13_300_000),
            Outcome::NotFound,
        );
        let history = History::new(vec![set.clone(), get.clone()], vec![]);
        let verdict = Verdict::Violation(Violation {
            key: Some("x".into()),
            ops: vec![set, get],
            notes: vec![None, Some("began after `set x 1` had returned".into())],
            reason: "stale read".into(),
            minimal: true,
        });
        let report = Report {
            property: Property::Linearizable,
            history: &history,
            verdict: &verdict,
            elapsed: Duration::from_millis(40),
            clock: Clock::Nanos,
        };
        insta::assert_snapshot!(report.text(), @r#"
        NOT linearizable on key "x":
          client 2  set x 1  [0.000 ms → 0.399 ms]  OK
          client 3  get x    [1.019 ms → 1.299 ms]  NOT_FOUND   ← began after `set x 1` had returned
        stale read
        (2 operations, 2 clients, 1 key; no operation shown can be left out; 0.04 s)
        "#);
        let json = report.json();
        assert_eq!(json["verdict"], "violation");
        assert_eq!(json["ops"][1]["result"], "not_found");
        assert_eq!(json["ops"][0]["value"], "1");
    }

    #[test]
    fn counts_use_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(2000), "2,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
