//! What the grader prints and writes: a score table per lab, the Gradescope `results.json`, and
//! the `--expect-zero` verdict.
//!
//! Everything here is a pure function of the [`LabResult`]s, so the formats are tested without
//! running anything.

use serde::Serialize;

use crate::grade::{LabResult, Status};

/// The score table of one lab, followed by the reproduce commands of its failures and, when it
/// did not compile, the compiler's first errors.
pub fn lab_table(lab: &LabResult) -> String {
    let who = if lab.reference {
        "reference"
    } else {
        "student code"
    };
    let mut out = format!("{} — {} ({who})\n", lab.name, lab.title);

    let points: Vec<String> = lab
        .tests
        .iter()
        .map(|t| format!("{}/{}", t.score(), t.max_points))
        .collect();
    let total = format!("{}/{}", lab.score(), lab.max_score());
    let seeds: Vec<String> = lab
        .tests
        .iter()
        .map(|t| t.seed.map(|s| s.to_string()).unwrap_or_default())
        .collect();
    let name_w = lab
        .tests
        .iter()
        .map(|t| t.name.chars().count())
        .chain(["test".len(), "total".len()])
        .max()
        .unwrap_or(0);
    let points_w = points
        .iter()
        .map(String::len)
        .chain([total.len(), "points".len()])
        .max()
        .unwrap_or(0);
    let result_w = "timeout".len();
    let seed_w = seeds
        .iter()
        .map(String::len)
        .chain(["seed".len()])
        .max()
        .unwrap_or(0);

    let row = |name: &str, points: &str, result: &str, seed: &str, reason: &str| {
        let line = format!(
            "{name:<name_w$}  {points:>points_w$}  {result:<result_w$}  {seed:>seed_w$}  {reason}"
        );
        format!("{}\n", line.trim_end())
    };
    out.push_str(&row("test", "points", "result", "seed", "reason"));
    for ((test, points), seed) in lab.tests.iter().zip(&points).zip(&seeds) {
        out.push_str(&row(
            &test.name,
            points,
            test.status.word(),
            seed,
            &test.reason,
        ));
    }
    out.push_str(&row("total", &total, "", "", ""));

    let reproducible: Vec<_> = lab
        .tests
        .iter()
        .filter(|t| t.status != Status::Passed)
        .filter_map(|t| t.reproduce.as_ref().map(|r| (&t.name, r)))
        .collect();
    if !reproducible.is_empty() {
        out.push_str("\nto replay a failure:\n");
        for (name, command) in reproducible {
            out.push_str(&format!("  {name}: {command}\n"));
        }
    }
    if let Some(errors) = &lab.compile_errors {
        out.push_str("\ncompiler errors (the first lines):\n");
        for line in errors {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The line after all tables when several labs were graded.
pub fn grand_total(labs: &[LabResult]) -> String {
    let score: u64 = labs.iter().map(LabResult::score).sum();
    let max: u64 = labs.iter().map(LabResult::max_score).sum();
    format!("grand total  {score}/{max}  ({} labs)\n", labs.len())
}

/// The one-line summary for Gradescope's `output`.
pub fn summary(labs: &[LabResult]) -> String {
    let who = if labs.iter().any(|l| l.reference) {
        "reference"
    } else {
        "student code"
    };
    match labs {
        [lab] => {
            let passed = lab
                .tests
                .iter()
                .filter(|t| t.status == Status::Passed)
                .count();
            let detail = if lab.compile_errors.is_some() {
                "does not compile".to_owned()
            } else {
                format!("{passed} of {} tests passed", lab.tests.len())
            };
            format!(
                "{} ({who}): {}/{} points, {detail}",
                lab.name,
                lab.score(),
                lab.max_score()
            )
        }
        _ => {
            let score: u64 = labs.iter().map(LabResult::score).sum();
            let max: u64 = labs.iter().map(LabResult::max_score).sum();
            let each: Vec<String> = labs
                .iter()
                .map(|lab| {
                    let broken = if lab.compile_errors.is_some() {
                        " (does not compile)"
                    } else {
                        ""
                    };
                    format!("{} {}/{}{broken}", lab.name, lab.score(), lab.max_score())
                })
                .collect();
            format!("{score}/{max} points ({who}): {}", each.join(", "))
        }
    }
}

/// Gradescope's `results.json`
/// (<https://gradescope-autograders.readthedocs.io/en/latest/specs/>).
#[derive(Debug, Serialize)]
pub struct Results {
    pub score: u64,
    pub execution_time: u64,
    pub output: String,
    pub stdout_visibility: &'static str,
    pub tests: Vec<ResultTest>,
}

/// One entry of `tests` in `results.json`.
#[derive(Debug, Serialize)]
pub struct ResultTest {
    pub name: String,
    pub number: String,
    pub score: u32,
    pub max_score: u32,
    pub status: &'static str,
    pub output: String,
    pub visibility: &'static str,
}

/// Builds `results.json`. With more than one lab, names are prefixed with the lab's short id and
/// numbers are `<lab>.<test>`, so Gradescope groups them by lab.
pub fn gradescope(labs: &[LabResult], execution_time_s: u64) -> Results {
    let several = labs.len() > 1;
    let mut tests = Vec::new();
    for (lab_i, lab) in labs.iter().enumerate() {
        for (test_i, test) in lab.tests.iter().enumerate() {
            let (name, number) = if several {
                (
                    format!("{}: {}", lab.short_id, test.name),
                    format!("{}.{}", lab_i + 1, test_i + 1),
                )
            } else {
                (test.name.clone(), (test_i + 1).to_string())
            };
            let mut output = String::new();
            if let Some(description) = &test.description {
                output.push_str(description);
                output.push_str("\n\n");
            }
            if test.status == Status::Passed {
                output.push_str("passed");
            } else {
                output.push_str(&format!("reason: {}", test.reason));
                if let Some(seed) = test.seed {
                    output.push_str(&format!("\nseed: {seed}"));
                }
                if let Some(command) = &test.reproduce {
                    output.push_str(&format!("\nreproduce: {command}"));
                }
                if !test.details.is_empty() {
                    output.push_str("\n\n");
                    output.push_str(&test.details);
                }
            }
            tests.push(ResultTest {
                name,
                number,
                score: test.score(),
                max_score: test.max_points,
                status: if test.status == Status::Passed {
                    "passed"
                } else {
                    "failed"
                },
                output,
                visibility: "visible",
            });
        }
    }
    Results {
        score: labs.iter().map(LabResult::score).sum(),
        execution_time: execution_time_s,
        output: summary(labs),
        stdout_visibility: "visible",
        tests,
    }
}

/// Why the graded labs are not an untouched skeleton, one line per problem; empty when they are:
/// everything compiled, nothing scored, and every test failed by itself, with a reason, without
/// hanging.
pub fn expect_zero_problems(labs: &[LabResult]) -> Vec<String> {
    let mut problems = Vec::new();
    for lab in labs {
        if let Some(test) = lab.tests.first().filter(|_| lab.compile_errors.is_some()) {
            problems.push(format!("{}: the skeleton {}", lab.name, test.reason));
            continue;
        }
        for test in &lab.tests {
            let problem = match test.status {
                Status::Passed => format!("passed on the skeleton ({} points)", test.score()),
                Status::TimedOut => format!(
                    "timed out on the skeleton (a test must fail fast on todo!, not hang): {}",
                    test.reason
                ),
                Status::Missing => test.reason.clone(),
                Status::NotCompiled => test.reason.clone(),
                Status::Failed if test.reason.trim().is_empty() => {
                    "failed without a reason".to_owned()
                }
                Status::Failed => continue,
            };
            problems.push(format!("{}: {}: {problem}", lab.name, test.name));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::TestResult;

    fn test(name: &str, max: u32, status: Status, reason: &str) -> TestResult {
        TestResult {
            name: name.to_owned(),
            description: None,
            max_points: max,
            status,
            reason: reason.to_owned(),
            seed: None,
            reproduce: None,
            details: String::new(),
            elapsed: std::time::Duration::ZERO,
        }
    }

    fn lab03() -> LabResult {
        let mut failed = test(
            "lab03_lamport_waits_for_acks",
            15,
            Status::Failed,
            "seed 17: get k1 on n2 returned 1 after 2 was acknowledged (not linearizable)",
        );
        failed.seed = Some(17);
        failed.reproduce = Some(
            "LAB_SEED=17 cargo test -p lab03-total-order --test grade lab03_lamport_waits_for_acks"
                .to_owned(),
        );
        failed.details =
            "thread 'lab03_lamport_waits_for_acks' panicked at x.rs:1:1:\nseed 17: …".to_owned();
        let mut passed = test("lab03_sequencer_orders_writes", 10, Status::Passed, "");
        passed.description = Some("writes are delivered in one order everywhere".to_owned());
        LabResult {
            name: "lab03-total-order".to_owned(),
            short_id: "lab03".to_owned(),
            title: "Total-order broadcast".to_owned(),
            reference: false,
            tests: vec![
                passed,
                failed,
                test(
                    "lab03_hangs",
                    5,
                    Status::TimedOut,
                    "timed out after 1 s (an endless loop, or a deadlock?)",
                ),
            ],
            compile_errors: None,
        }
    }

    #[test]
    fn the_table_is_aligned() {
        let table = lab_table(&lab03());
        let expected = "\
lab03-total-order — Total-order broadcast (student code)
test                           points  result   seed  reason
lab03_sequencer_orders_writes   10/10  passed
lab03_lamport_waits_for_acks     0/15  failed     17  seed 17: get k1 on n2 returned 1 after 2 was acknowledged (not linearizable)
lab03_hangs                       0/5  timeout        timed out after 1 s (an endless loop, or a deadlock?)
total                           10/30

to replay a failure:
  lab03_lamport_waits_for_acks: LAB_SEED=17 cargo test -p lab03-total-order --test grade lab03_lamport_waits_for_acks
";
        assert_eq!(table, expected);
    }

    #[test]
    fn a_lab_that_does_not_compile_shows_its_errors() {
        let mut lab = lab03();
        lab.reference = true;
        for t in &mut lab.tests {
            *t = test(
                &t.name,
                t.max_points,
                Status::NotCompiled,
                "does not compile: error[E0308]: mismatched types",
            );
        }
        lab.compile_errors = Some(vec![
            "error[E0308]: mismatched types".to_owned(),
            " --> src/lib.rs:1:1".to_owned(),
        ]);
        let table = lab_table(&lab);
        assert!(table.starts_with("lab03-total-order — Total-order broadcast (reference)\n"));
        assert!(
            table.contains("total                            0/30\n"),
            "{table}"
        );
        assert!(table.ends_with(
            "compiler errors (the first lines):\nerror[E0308]: mismatched types\n --> src/lib.rs:1:1\n"
        ));
        let problems = expect_zero_problems(&[lab]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("does not compile"), "{problems:?}");
    }

    #[test]
    fn results_json_has_gradescopes_shape() {
        let results = gradescope(&[lab03()], 42);
        let json = serde_json::to_value(&results).expect("json");
        assert_eq!(json["score"], 10);
        assert_eq!(json["execution_time"], 42);
        assert_eq!(json["stdout_visibility"], "visible");
        assert_eq!(
            json["output"],
            "lab03-total-order (student code): 10/30 points, 1 of 3 tests passed"
        );
        let tests = json["tests"].as_array().expect("tests");
        assert_eq!(tests.len(), 3);
        assert_eq!(tests[0]["name"], "lab03_sequencer_orders_writes");
        assert_eq!(tests[0]["number"], "1");
        assert_eq!(tests[0]["score"], 10);
        assert_eq!(tests[0]["max_score"], 10);
        assert_eq!(tests[0]["status"], "passed");
        assert_eq!(tests[0]["visibility"], "visible");
        assert_eq!(
            tests[0]["output"],
            "writes are delivered in one order everywhere\n\npassed"
        );
        assert_eq!(tests[1]["status"], "failed");
        assert_eq!(tests[1]["score"], 0);
        assert_eq!(tests[1]["max_score"], 15);
        let output = tests[1]["output"].as_str().expect("output");
        assert!(output.starts_with("reason: seed 17: get k1"), "{output}");
        assert!(output.contains("\nseed: 17\n"), "{output}");
        assert!(
            output.contains("\nreproduce: LAB_SEED=17 cargo test"),
            "{output}"
        );
        assert!(output.contains("panicked at"), "{output}");
        assert_eq!(tests[2]["status"], "failed");
        // Every key Gradescope reads, and no other.
        let mut keys: Vec<_> = tests[1].as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "max_score",
                "name",
                "number",
                "output",
                "score",
                "status",
                "visibility"
            ]
        );
    }

    #[test]
    fn several_labs_are_prefixed_and_numbered_by_lab() {
        let mut other = lab03();
        other.name = "lab04-linearizable".to_owned();
        other.short_id = "lab04".to_owned();
        let labs = [lab03(), other];
        let json = serde_json::to_value(gradescope(&labs, 1)).expect("json");
        assert_eq!(json["score"], 20);
        let tests = json["tests"].as_array().expect("tests");
        assert_eq!(tests.len(), 6);
        assert_eq!(tests[3]["name"], "lab04: lab03_sequencer_orders_writes");
        assert_eq!(tests[3]["number"], "2.1");
        assert!(
            json["output"]
                .as_str()
                .expect("output")
                .starts_with("20/60 points (student code): lab03-total-order 10/30, lab04")
        );
        assert_eq!(grand_total(&labs), "grand total  20/60  (2 labs)\n");
    }

    #[test]
    fn expect_zero_accepts_only_clean_failures() {
        let clean = LabResult {
            tests: vec![
                test("a", 5, Status::Failed, "not yet implemented: lab03: x"),
                test("b", 5, Status::Failed, "exit status 101"),
            ],
            ..lab03()
        };
        assert!(expect_zero_problems(std::slice::from_ref(&clean)).is_empty());

        let problems = expect_zero_problems(&[lab03()]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("lab03_sequencer_orders_writes: passed"));
        assert!(problems[1].contains("lab03_hangs: timed out on the skeleton"));

        let mut odd = clean.clone();
        odd.tests[0].reason.clear();
        odd.tests[1] = test("b", 5, Status::Missing, "no test named b in tests/grade.rs");
        let problems = expect_zero_problems(&[odd]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("failed without a reason"));
        assert!(problems[1].contains("no test named b"));
    }
}
