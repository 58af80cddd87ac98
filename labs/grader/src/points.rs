//! `points.toml`: which tests of a lab are graded, how many points each is worth, and how long
//! each may run.
//!
//! ```toml
//! lab = "lab03-total-order"        # the crate name, which is also the directory name
//! title = "Total-order broadcast"
//!
//! [[test]]
//! name = "lab03_sequencer_orders_writes"   # a #[test] fn in the lab's tests/grade.rs
//! points = 10
//! description = "writes sent to different nodes are delivered in one order everywhere"
//! timeout_s = 120                          # optional, default 120
//! ```
//!
//! Each lab keeps its points in this one file so that students, lab authors and the grader read
//! the grading scheme from the same place. The file is checked strictly: an unknown key, a test
//! listed twice or a test worth nothing would otherwise change a grade without anyone noticing.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Time limit of a test whose entry has no `timeout_s`.
pub const DEFAULT_TIMEOUT_S: u64 = 120;

/// One lab's `points.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Points {
    /// The lab's crate name; it must equal the lab's directory name.
    pub lab: String,
    /// A human title, printed above the score table.
    pub title: String,
    /// The graded tests, in the order they are run and printed.
    #[serde(default, rename = "test")]
    pub tests: Vec<GradedTest>,
}

/// One `[[test]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradedTest {
    /// The name of a `#[test]` function in the lab's `tests/grade.rs`.
    pub name: String,
    /// What passing the test is worth.
    pub points: u32,
    /// What the test checks, in a sentence; shown in the Gradescope output.
    #[serde(default)]
    pub description: Option<String>,
    /// The test's time limit in seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
}

fn default_timeout_s() -> u64 {
    DEFAULT_TIMEOUT_S
}

/// Parses and validates the text of a `points.toml`. The error is one sentence without the
/// file's path; [`load`] adds it.
pub fn parse(text: &str) -> Result<Points, String> {
    let points: Points = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
    validate(&points)?;
    Ok(points)
}

/// Reads, parses and validates `path`.
pub fn load(path: &Path) -> anyhow::Result<Points> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match parse(&text) {
        Ok(points) => Ok(points),
        Err(reason) => bail!("invalid {}: {reason}", path.display()),
    }
}

fn validate(points: &Points) -> Result<(), String> {
    if points.lab.trim().is_empty() {
        return Err("`lab` is empty (it must be the lab's crate name)".to_owned());
    }
    if points.tests.is_empty() {
        return Err("no [[test]] entries: a lab must grade at least one test".to_owned());
    }
    let mut seen = HashSet::new();
    for test in &points.tests {
        // libtest matches `--exact` names literally, so a name with blanks can never match.
        if test.name.is_empty() || test.name.chars().any(char::is_whitespace) {
            return Err(format!(
                "test name {:?} is not the name of a test function",
                test.name
            ));
        }
        if !seen.insert(test.name.as_str()) {
            return Err(format!("test {} is listed twice", test.name));
        }
        if test.points == 0 {
            return Err(format!(
                "test {} is worth 0 points (drop it from points.toml instead)",
                test.name
            ));
        }
        if test.timeout_s == 0 {
            return Err(format!("test {} has timeout_s = 0", test.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
lab = "lab03-total-order"
title = "Total-order broadcast"

[[test]]
name = "lab03_sequencer_orders_writes"
points = 10
description = "writes sent to different nodes are delivered in one order everywhere"

[[test]]
name = "lab03_lamport_waits_for_acks"
points = 15
timeout_s = 30
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let points = parse(GOOD).expect("valid file");
        assert_eq!(points.lab, "lab03-total-order");
        assert_eq!(points.title, "Total-order broadcast");
        assert_eq!(points.tests.len(), 2);
        assert_eq!(points.tests[0].name, "lab03_sequencer_orders_writes");
        assert_eq!(points.tests[0].points, 10);
        assert_eq!(points.tests[0].timeout_s, DEFAULT_TIMEOUT_S);
        assert!(points.tests[0].description.is_some());
        assert_eq!(points.tests[1].timeout_s, 30);
        assert_eq!(points.tests[1].description, None);
    }

    fn rejected(text: &str) -> String {
        match parse(text) {
            Ok(points) => panic!("accepted an invalid file: {points:?}"),
            Err(reason) => reason,
        }
    }

    #[test]
    fn a_file_without_tests_is_rejected() {
        let reason = rejected("lab = \"lab01-x\"\ntitle = \"X\"\n");
        assert!(reason.contains("no [[test]]"), "{reason}");
    }

    #[test]
    fn a_duplicate_test_is_rejected() {
        let reason = rejected(
            r#"
lab = "lab01-x"
title = "X"
[[test]]
name = "a"
points = 1
[[test]]
name = "a"
points = 2
"#,
        );
        assert!(reason.contains("test a is listed twice"), "{reason}");
    }

    #[test]
    fn a_test_worth_zero_points_is_rejected() {
        let reason = rejected("lab = \"l\"\ntitle = \"X\"\n[[test]]\nname = \"a\"\npoints = 0\n");
        assert!(reason.contains("worth 0 points"), "{reason}");
    }

    #[test]
    fn an_unknown_key_is_rejected() {
        let reason =
            rejected("lab = \"l\"\ntitle = \"X\"\n[[test]]\nname = \"a\"\npoints = 1\npoint = 2\n");
        assert!(reason.contains("point"), "{reason}");
        let reason = rejected("lab = \"l\"\ntitle = \"X\"\nauthor = \"me\"\n");
        assert!(reason.contains("author"), "{reason}");
    }

    #[test]
    fn missing_fields_and_bad_values_are_rejected() {
        rejected("title = \"X\"\n[[test]]\nname = \"a\"\npoints = 1\n");
        rejected("lab = \"l\"\ntitle = \"X\"\n[[test]]\nname = \"a\"\n");
        rejected("lab = \"l\"\ntitle = \"X\"\n[[test]]\nname = \"a\"\npoints = -3\n");
        rejected("lab = \"l\"\ntitle = \"X\"\n[[test]]\nname = \"a b\"\npoints = 1\n");
        rejected("lab = \"l\"\ntitle = \"X\"\n[[test]]\nname = \"a\"\npoints = 1\ntimeout_s = 0\n");
        rejected("lab = \"\"\ntitle = \"X\"\n[[test]]\nname = \"a\"\npoints = 1\n");
        rejected("this is not toml");
    }

    #[test]
    fn load_names_the_file_in_its_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("points.toml");
        std::fs::write(&path, "lab = \"l\"\ntitle = \"X\"\n").expect("write");
        let err = load(&path).expect_err("no tests");
        let text = format!("{err:#}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("no [[test]]"), "{text}");
    }
}
