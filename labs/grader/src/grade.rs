//! Grading one lab: build its tests once, then run each graded test alone, in `points.toml`
//! order, and score it.
//!
//! Each test runs in a process of its own (not all at once in one libtest run) so that one test
//! that hangs, aborts or exhausts memory costs only its own points, and so that each has its own
//! time limit. The test binary is an argument of [`run_graded_test`], which is what lets the
//! grader's own tests stand in fake "test binaries" for a real lab.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::build::{self, Build};
use crate::labs::Lab;
use crate::libtest;
use crate::points::GradedTest;
use crate::runner::{self, RunSpec};

/// How a graded test came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    /// It ran and failed (an assertion, a panic, a crash).
    Failed,
    /// It ran past its time limit and was killed.
    TimedOut,
    /// `points.toml` names a test that the binary does not run (absent or `#[ignore]`d).
    Missing,
    /// The lab did not compile, so nothing ran.
    NotCompiled,
}

impl Status {
    /// The word in the table's result column.
    pub fn word(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::TimedOut => "timeout",
            Status::Failed | Status::Missing | Status::NotCompiled => "failed",
        }
    }
}

/// One graded test's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub name: String,
    pub description: Option<String>,
    pub max_points: u32,
    pub status: Status,
    /// One line; empty when passed.
    pub reason: String,
    pub seed: Option<u64>,
    pub reproduce: Option<String>,
    /// The failure section, or the compiler errors, for the JSON output.
    pub details: String,
    /// How long the test ran (zero when it did not).
    pub elapsed: Duration,
}

impl TestResult {
    pub fn score(&self) -> u32 {
        if self.status == Status::Passed {
            self.max_points
        } else {
            0
        }
    }
}

/// One lab's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabResult {
    /// The crate name, `lab03-total-order`.
    pub name: String,
    /// `lab03`.
    pub short_id: String,
    pub title: String,
    /// Whether the reference implementation was graded rather than the student's code.
    pub reference: bool,
    pub tests: Vec<TestResult>,
    /// The first lines of the compiler's errors when the lab did not compile.
    pub compile_errors: Option<Vec<String>>,
}

impl LabResult {
    pub fn score(&self) -> u64 {
        self.tests.iter().map(|t| u64::from(t.score())).sum()
    }

    pub fn max_score(&self) -> u64 {
        self.tests.iter().map(|t| u64::from(t.max_points)).sum()
    }

    pub fn all_passed(&self) -> bool {
        self.tests.iter().all(|t| t.status == Status::Passed)
    }
}

/// How to grade.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Build with feature `reference`.
    pub reference: bool,
    /// `--timeout-s`: replaces every test's own limit.
    pub timeout_s: Option<u64>,
}

/// Builds and grades `lab`, printing progress on stderr. Fails only if cargo cannot be run.
pub fn grade_lab(root: &Path, lab: &Lab, options: Options) -> anyhow::Result<LabResult> {
    let mut result = LabResult {
        name: lab.name.clone(),
        short_id: lab.short_id().to_owned(),
        title: lab.points.title.clone(),
        reference: options.reference,
        tests: Vec::new(),
        compile_errors: None,
    };
    progress(format_args!("grader: building {} …", lab.name));
    let exe = match build::build(root, &lab.name, options.reference)? {
        Build::Built(exe) => exe,
        Build::Failed { reason, errors } => {
            progress(format_args!("grader: {}: {reason}", lab.name));
            let details = errors.join("\n");
            result.tests = lab
                .points
                .tests
                .iter()
                .map(|test| TestResult {
                    name: test.name.clone(),
                    description: test.description.clone(),
                    max_points: test.points,
                    status: Status::NotCompiled,
                    reason: reason.clone(),
                    seed: None,
                    reproduce: None,
                    details: details.clone(),
                    elapsed: Duration::ZERO,
                })
                .collect();
            result.compile_errors = Some(errors);
            return Ok(result);
        }
    };
    let count = lab.points.tests.len();
    for (i, test) in lab.points.tests.iter().enumerate() {
        let timeout_s = options.timeout_s.unwrap_or(test.timeout_s);
        progress(format_args!("grader: [{}/{count}] {} …", i + 1, test.name));
        let outcome = run_graded_test(&exe, &lab.dir, &lab.name, test, timeout_s);
        progress(format_args!(
            "grader: [{}/{count}] {} {} in {:.1} s",
            i + 1,
            test.name,
            outcome.status.word(),
            outcome.elapsed.as_secs_f64()
        ));
        result.tests.push(outcome);
    }
    Ok(result)
}

/// Progress goes to stderr so that stdout holds only the tables; a closed stderr is no error.
fn progress(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs `test` alone from test binary `exe`, in the lab's directory, within `timeout_s`.
pub fn run_graded_test(
    exe: &Path,
    lab_dir: &Path,
    lab_name: &str,
    test: &GradedTest,
    timeout_s: u64,
) -> TestResult {
    let spec = RunSpec {
        program: exe,
        args: [
            test.name.as_str(),
            "--exact",
            "--test-threads=1",
            "--color=never",
        ]
        .into_iter()
        .map(OsString::from)
        .collect(),
        cwd: lab_dir,
        env: test_env(std::env::vars_os(), lab_dir, lab_name),
        timeout: Duration::from_secs(timeout_s),
    };
    let (verdict, elapsed) = match runner::run(&spec) {
        Ok(out) => (
            libtest::judge(&test.name, out.ended, &out.stdout, &out.stderr, timeout_s),
            out.elapsed,
        ),
        Err(err) => (
            libtest::Verdict {
                status: Status::Failed,
                reason: libtest::one_line(&format!(
                    "cannot start the test binary {}: {err}",
                    exe.display()
                )),
                seed: None,
                reproduce: None,
                details: String::new(),
            },
            Duration::ZERO,
        ),
    };
    TestResult {
        name: test.name.clone(),
        description: test.description.clone(),
        max_points: test.points,
        status: verdict.status,
        reason: verdict.reason,
        seed: verdict.seed,
        reproduce: verdict.reproduce,
        details: verdict.details,
        elapsed,
    }
}

/// The environment of a graded test: the grader's own, less what would change the verdict, plus
/// what makes it a faithful, read-only `cargo test` run.
pub fn test_env(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    lab_dir: &Path,
    lab_name: &str,
) -> Vec<(OsString, OsString)> {
    let dropped = |key: &str| {
        // `cargo run` describes the grader's own package in CARGO_PKG_*, CARGO_MANIFEST_* etc.;
        // the test must see its lab's, as under `cargo test`.
        key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_BIN_")
            || key.starts_with("CARGO_CRATE_")
            || key == "CARGO_PRIMARY_PACKAGE"
            // RUST_TEST_NOCAPTURE would hide the failure section, RUST_TEST_THREADS is fixed.
            || key.starts_with("RUST_TEST_")
            // A LAB_SEED left over from reproducing a failure would grade one seed only.
            || key.starts_with("LAB_")
            // INSTA_FORCE_PASS would pass failing snapshots.
            || key.starts_with("INSTA_")
            || matches!(key, "RUST_BACKTRACE" | "CI")
    };
    let mut env: Vec<(OsString, OsString)> = inherited
        .into_iter()
        .filter(|(key, _)| !key.to_str().is_some_and(dropped))
        .collect();
    env.extend(
        [
            ("RUST_BACKTRACE", OsString::from("0")),
            // Snapshots are compared and never written.
            ("INSTA_UPDATE", OsString::from("no")),
            ("CI", OsString::from("true")),
            ("CARGO_MANIFEST_DIR", lab_dir.as_os_str().to_owned()),
            ("CARGO_PKG_NAME", OsString::from(lab_name)),
            (
                "CARGO_CRATE_NAME",
                OsString::from(lab_name.replace('-', "_")),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), v)),
    );
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn fake_binary(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("grade-fake");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn graded(name: &str, points: u32) -> GradedTest {
        GradedTest {
            name: name.to_owned(),
            points,
            description: None,
            timeout_s: 120,
        }
    }

    #[test]
    fn a_fake_passing_binary_scores_full_points() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cwd = dir.path().canonicalize().expect("canonical");
        // The fake checks that it is called the way a libtest binary is, and exits with a
        // distinct status for each thing that is wrong.
        let body = format!(
            r#"[ "$1 $2 $3 $4" = "lab09_ok --exact --test-threads=1 --color=never" ] || exit 7
[ "$RUST_BACKTRACE $INSTA_UPDATE $CI" = "0 no true" ] || exit 8
[ "$(pwd -P)" = "{}" ] || exit 9
printf '\nrunning 1 test\ntest lab09_ok ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out; finished in 0.00s\n\n'"#,
            cwd.display()
        );
        let exe = fake_binary(&cwd, &body);
        let result = run_graded_test(&exe, &cwd, "lab09-fake", &graded("lab09_ok", 10), 30);
        assert_eq!(result.status, Status::Passed, "{result:?}");
        assert_eq!(result.score(), 10);
    }

    #[test]
    fn a_fake_failing_binary_gives_reason_and_seed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = fake_binary(
            dir.path(),
            r#"cat <<'EOF'

running 1 test
test lab09_bad ... FAILED

failures:

---- lab09_bad stdout ----

thread 'lab09_bad' (4242) panicked at labs/lab09-fake/tests/grade.rs:12:5:
seed 23: n3 delivered m2 before m1
reproduce: LAB_SEED=23 cargo test -p lab09-fake --test grade lab09_bad
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    lab09_bad

test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 3 filtered out; finished in 0.01s

EOF
exit 101"#,
        );
        let result = run_graded_test(&exe, dir.path(), "lab09-fake", &graded("lab09_bad", 10), 30);
        assert_eq!(result.status, Status::Failed);
        assert_eq!(result.score(), 0);
        assert_eq!(result.reason, "seed 23: n3 delivered m2 before m1");
        assert_eq!(result.seed, Some(23));
        assert_eq!(
            result.reproduce.as_deref(),
            Some("LAB_SEED=23 cargo test -p lab09-fake --test grade lab09_bad")
        );
        assert!(result.details.contains("panicked at"));
    }

    #[test]
    fn a_fake_hanging_binary_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = fake_binary(dir.path(), "echo 'running 1 test'\nsleep 1000 &\nwait");
        let result = run_graded_test(&exe, dir.path(), "lab09-fake", &graded("lab09_hang", 5), 1);
        assert_eq!(result.status, Status::TimedOut);
        assert_eq!(
            result.reason,
            "timed out after 1 s (an endless loop, or a deadlock?)"
        );
    }

    #[test]
    fn an_unstartable_binary_fails_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("missing");
        let result = run_graded_test(&exe, dir.path(), "lab09-fake", &graded("t", 5), 1);
        assert_eq!(result.status, Status::Failed);
        assert!(
            result.reason.starts_with("cannot start"),
            "{}",
            result.reason
        );
    }

    #[test]
    fn the_test_environment_is_cleaned() {
        let inherited = [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("LAB_SEED", "17"),
            ("RUST_TEST_NOCAPTURE", "1"),
            ("INSTA_FORCE_PASS", "1"),
            ("INSTA_UPDATE", "always"),
            ("RUST_BACKTRACE", "full"),
            ("CARGO_PKG_NAME", "grader"),
            ("CARGO_MANIFEST_DIR", "/w/labs/grader"),
            ("CARGO", "/usr/bin/cargo"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = test_env(inherited, Path::new("/w/labs/lab03-x"), "lab03-x");
        let get = |key: &str| {
            let values: Vec<_> = env
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .collect();
            assert!(values.len() <= 1, "{key} set twice");
            values.into_iter().next()
        };
        assert_eq!(get("PATH").as_deref(), Some("/bin"));
        assert_eq!(get("CARGO").as_deref(), Some("/usr/bin/cargo"));
        assert_eq!(get("LAB_SEED"), None);
        assert_eq!(get("RUST_TEST_NOCAPTURE"), None);
        assert_eq!(get("INSTA_FORCE_PASS"), None);
        assert_eq!(get("INSTA_UPDATE").as_deref(), Some("no"));
        assert_eq!(get("RUST_BACKTRACE").as_deref(), Some("0"));
        assert_eq!(get("CI").as_deref(), Some("true"));
        assert_eq!(get("CARGO_PKG_NAME").as_deref(), Some("lab03-x"));
        assert_eq!(get("CARGO_CRATE_NAME").as_deref(), Some("lab03_x"));
        assert_eq!(
            get("CARGO_MANIFEST_DIR").as_deref(),
            Some("/w/labs/lab03-x")
        );
    }
}
