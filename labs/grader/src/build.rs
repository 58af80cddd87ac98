//! Building a lab's `grade` test binary once, before its tests are run one by one.
//!
//! `cargo test -p <lab> --test grade --no-run --message-format=json-render-diagnostics` prints one
//! JSON message a line on stdout, among them the `compiler-artifact` of the `grade` target with
//! the path of the test executable; compiler errors are rendered as text on stderr, ready to show
//! to a student.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde_json::Value;

/// Lines of compiler errors shown after a lab's table.
const ERROR_EXCERPT_LINES: usize = 30;

/// The result of building a lab's tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// The test binary to run.
    Built(PathBuf),
    /// It did not compile.
    Failed {
        /// `does not compile: <first error line>`.
        reason: String,
        /// The first lines of the compiler's errors.
        errors: Vec<String>,
    },
}

/// The cargo to use: the one that runs the grader (`cargo run` sets `CARGO`), so that the lab is
/// built by the same toolchain, or the one on `PATH`.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds the `grade` test target of crate `lab`, with feature `reference` if asked. Fails only
/// if cargo cannot be run at all; a compile error is a [`Build::Failed`].
pub fn build(root: &Path, lab: &str, reference: bool) -> anyhow::Result<Build> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root).args([
        "test",
        "-p",
        lab,
        "--test",
        "grade",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    if reference {
        cmd.args(["--features", "reference"]);
    }
    // The errors are shown after the table, which may go to a file: no colour codes in it.
    cmd.env("CARGO_TERM_COLOR", "never");
    let output = cmd
        .output()
        .with_context(|| format!("cannot run {:?}", cargo()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match (output.status.success(), find_executable(&stdout)) {
        (true, Some(exe)) => Ok(Build::Built(exe)),
        (success, _) => Ok(failure(&stderr, success, output.status.code())),
    }
}

/// The executable of the `grade` test target in cargo's JSON messages.
pub fn find_executable(stdout: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "grade")
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .next_back()
}

/// Explains a failed build from cargo's stderr.
pub fn failure(stderr: &str, success: bool, code: Option<i32>) -> Build {
    let lines: Vec<&str> = stderr.lines().map(str::trim_end).collect();
    let first_error = lines.iter().position(|l| l.starts_with("error"));
    let headline = match first_error {
        Some(i) => lines[i].trim().to_owned(),
        None if success => "cargo built no `grade` test target (is tests/grade.rs missing?)".into(),
        None => match lines.iter().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => last.trim().to_owned(),
            None => match code {
                Some(code) => format!("cargo exited with status {code}"),
                None => "cargo was killed by a signal".to_owned(),
            },
        },
    };
    let errors = lines[first_error.unwrap_or(0)..]
        .iter()
        .take(ERROR_EXCERPT_LINES)
        .map(|l| (*l).to_owned())
        .collect();
    Build::Failed {
        reason: crate::libtest::one_line(&format!("does not compile: {headline}")),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grade_executable_is_found_among_other_artifacts() {
        let stdout = concat!(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w#dkvs@0.1.0","target":{"kind":["lib"],"crate_types":["lib"],"name":"dkvs","src_path":"/w/src/lib.rs","test":true},"profile":{"test":false},"features":[],"filenames":["/w/target/debug/deps/libdkvs.rlib"],"executable":null,"fresh":true}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/labs/lab03-total-order#0.1.0","target":{"kind":["test"],"crate_types":["bin"],"name":"grade","src_path":"/w/labs/lab03-total-order/tests/grade.rs","test":true},"profile":{"test":true},"features":[],"filenames":["/w/target/debug/deps/grade-0123abcd"],"executable":"/w/target/debug/deps/grade-0123abcd","fresh":false}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
        );
        assert_eq!(
            find_executable(stdout),
            Some(PathBuf::from("/w/target/debug/deps/grade-0123abcd"))
        );
        assert_eq!(find_executable("not json\n{broken"), None);
        assert_eq!(
            find_executable(r#"{"reason":"build-finished","success":false}"#),
            None
        );
    }

    #[test]
    fn a_compile_error_gives_its_first_error_line() {
        let stderr = "   Compiling lab03-total-order v0.1.0 (/w/labs/lab03-total-order)
warning: unused variable: `x`
 --> labs/lab03-total-order/src/lib.rs:3:9
error[E0308]: mismatched types
 --> labs/lab03-total-order/src/lib.rs:10:5
  |
10|     1u8
  |     ^^^ expected `u64`, found `u8`

error: could not compile `lab03-total-order` (lib) due to 1 previous error
";
        let Build::Failed { reason, errors } = failure(stderr, false, Some(101)) else {
            panic!("not a failure");
        };
        assert_eq!(reason, "does not compile: error[E0308]: mismatched types");
        assert_eq!(errors[0], "error[E0308]: mismatched types");
        assert!(errors.len() <= ERROR_EXCERPT_LINES);
        assert!(errors.iter().any(|l| l.contains("could not compile")));
    }

    #[test]
    fn a_failure_without_an_error_line() {
        let Build::Failed { reason, errors } = failure("", false, Some(101)) else {
            panic!("not a failure");
        };
        assert_eq!(reason, "does not compile: cargo exited with status 101");
        assert!(errors.is_empty());
        let Build::Failed { reason, .. } = failure("Finished\n", true, Some(0)) else {
            panic!("not a failure");
        };
        assert!(reason.contains("no `grade` test target"), "{reason}");
    }
}
