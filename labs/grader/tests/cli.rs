//! The grader as users and CI run it, against a throwaway workspace of tiny fake labs.
//!
//! The real labs are not used: they change, and grading them would make the grader's tests as
//! slow and as fragile as theirs. The fake labs are real crates, though, so the whole path is
//! exercised: cargo's JSON messages, the `reference` feature, compile errors, libtest's output,
//! a timeout, the exit codes, and results.json.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const LAB01_LIB: &str = r#"
pub fn add(a: u32, b: u32) -> u32 {
    if cfg!(feature = "reference") { a + b } else { todo!("lab01: add") }
}
"#;

const LAB01_GRADE: &str = r#"
#[test]
fn lab01_adds() {
    let got = lab01_fake::add(2, 3);
    assert!(got == 5, "seed 17: 2 + 3 gave {got}\nreproduce: LAB_SEED=17 cargo test -p lab01-fake --test grade lab01_adds");
}

#[test]
fn lab01_adds_zero() {
    assert_eq!(lab01_fake::add(0, 3), 3);
}
"#;

const LAB01_POINTS: &str = r#"
lab = "lab01-fake"
title = "Adding"

[[test]]
name = "lab01_adds"
points = 10
description = "adds two numbers"

[[test]]
name = "lab01_adds_zero"
points = 5
"#;

/// A student's wrong solution, a test that hangs, and a test points.toml names but grade.rs lacks.
const LAB03_LIB: &str = r#"
pub fn add(a: u32, b: u32) -> u32 {
    if cfg!(feature = "reference") { a + b } else { a * b }
}
"#;

const LAB03_GRADE: &str = r#"
#[test]
fn lab03_adds() {
    let seed = 23;
    let got = lab03_wrong::add(2, 3);
    assert!(got == 5, "seed {seed}: 2 + 3 gave {got}\nreproduce: LAB_SEED={seed} cargo test -p lab03-wrong --test grade lab03_adds");
}

#[test]
fn lab03_squares() {
    assert_eq!(lab03_wrong::add(2, 2), 4);
}

#[test]
fn lab03_hangs() {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
"#;

const LAB03_POINTS: &str = r#"
lab = "lab03-wrong"
title = "Wrong adding"

[[test]]
name = "lab03_adds"
points = 10

[[test]]
name = "lab03_squares"
points = 5

[[test]]
name = "lab03_hangs"
points = 5
timeout_s = 1

[[test]]
name = "lab03_forgotten"
points = 5
"#;

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn add_lab(root: &Path, name: &str, lib: &str, grade: &str, points: &str) {
    let dir = root.join("labs").join(name);
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[features]\nreference = []\n"
        ),
    );
    write(&dir.join("src/lib.rs"), lib);
    write(&dir.join("tests/grade.rs"), grade);
    write(&dir.join("points.toml"), points);
}

fn fake_workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().expect("tempdir");
    let root = ws.path();
    write(
        &root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"labs/*\"]\nresolver = \"3\"\n",
    );
    add_lab(root, "lab01-fake", LAB01_LIB, LAB01_GRADE, LAB01_POINTS);
    add_lab(
        root,
        "lab02-broken",
        "pub fn add(a: u32) -> u32 { a + \"x\" }\n",
        "#[test]\nfn lab02_t() {}\n",
        "lab = \"lab02-broken\"\ntitle = \"Broken\"\n[[test]]\nname = \"lab02_t\"\npoints = 3\n",
    );
    add_lab(root, "lab03-wrong", LAB03_LIB, LAB03_GRADE, LAB03_POINTS);
    ws
}

fn grader(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_grader"));
    cmd.arg("--workspace")
        .arg(root)
        .args(args)
        // A target dir of its own: no waiting on the workspace's build lock, nothing left there.
        .env("CARGO_TARGET_DIR", root.join("target"))
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO", env!("CARGO"))
        .env_remove("CARGO_BUILD_TARGET_DIR");
    cmd.output().expect("run grader")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).expect("results.json");
    serde_json::from_str(&text).expect("valid json")
}

/// One test, so that the fake labs are built once and graded in sequence.
#[test]
fn grading_fake_labs_end_to_end() {
    let ws = fake_workspace();
    let root = ws.path();

    // The untouched skeleton: every test fails on todo!, and CI's check passes.
    let out = grader(root, &["lab01", "--expect-zero"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.starts_with("lab01-fake — Adding (student code)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not yet implemented: lab01: add"),
        "{stdout}"
    );
    assert!(stdout.contains("total              0/15"), "{stdout}");
    assert!(stdout.contains("expect-zero: ok"), "{stdout}");

    // Without --expect-zero the same run is a failure.
    let out = grader(root, &["lab01-fake"]);
    assert_eq!(out.status.code(), Some(1));

    // The reference passes everything.
    let json = root.join("reference.json");
    let out = grader(
        root,
        &[
            "lab01",
            "--reference",
            "--json",
            json.to_str().expect("utf-8"),
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.starts_with("lab01-fake — Adding (reference)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab01_adds        10/10  passed"),
        "{stdout}"
    );
    let results = read_json(&json);
    assert_eq!(results["score"], 15);
    assert!(results["execution_time"].is_u64());
    assert_eq!(results["tests"][0]["status"], "passed");
    assert_eq!(results["tests"][0]["output"], "adds two numbers\n\npassed");

    // A wrong solution: a seeded failure with its replay command, a plain assertion, a hang and
    // a test that does not exist; --timeout-s is not given, so the hang gets its own 1 s.
    let json = root.join("wrong.json");
    let out = grader(root, &["lab03", "--json", json.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("lab03_adds         0/10  failed     23  seed 23: 2 + 3 gave 6"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab03_squares       5/5  passed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "lab03_hangs         0/5  timeout        timed out after 1 s (an endless loop, or a deadlock?)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab03_forgotten     0/5  failed         no test named lab03_forgotten in tests/grade.rs"),
        "{stdout}"
    );
    assert!(stdout.contains("total              5/25"), "{stdout}");
    assert!(
        stdout.contains(
            "  lab03_adds: LAB_SEED=23 cargo test -p lab03-wrong --test grade lab03_adds\n"
        ),
        "{stdout}"
    );
    let results = read_json(&json);
    assert_eq!(results["score"], 5);
    let adds = &results["tests"][0];
    assert_eq!(adds["status"], "failed");
    let output = adds["output"].as_str().expect("output");
    assert!(output.contains("seed: 23"), "{output}");
    assert!(output.contains("reproduce: LAB_SEED=23"), "{output}");
    assert!(output.contains("panicked at"), "{output}");

    // --timeout-s overrides every limit.
    let out = grader(root, &["lab03", "--timeout-s", "2"]);
    assert!(
        text(&out.stdout).contains("timed out after 2 s"),
        "{}",
        text(&out.stdout)
    );

    // All labs: one table each, a grand total, and CI's check names every problem.
    let json = root.join("all.json");
    let out = grader(
        root,
        &[
            "all",
            "--expect-zero",
            "--json",
            json.to_str().expect("utf-8"),
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("lab02_t     0/3  failed         does not compile: error"),
        "{stdout}"
    );
    assert!(
        stdout.contains("compiler errors (the first lines):\nerror"),
        "{stdout}"
    );
    assert!(stdout.contains("grand total  5/43  (3 labs)"), "{stdout}");
    assert!(stdout.contains("expect-zero: FAILED"), "{stdout}");
    assert!(
        stdout.contains("lab02-broken: the skeleton does not compile"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab03-wrong: lab03_squares: passed on the skeleton"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab03-wrong: lab03_hangs: timed out on the skeleton"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab03-wrong: lab03_forgotten: no test named lab03_forgotten"),
        "{stdout}"
    );
    let results = read_json(&json);
    let tests = results["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), 7);
    assert_eq!(tests[0]["name"], "lab01: lab01_adds");
    assert_eq!(tests[2]["name"], "lab02: lab02_t");
    assert_eq!(tests[2]["number"], "2.1");
    assert!(
        tests[2]["output"]
            .as_str()
            .expect("output")
            .contains("does not compile")
    );
}

#[test]
fn usage_errors_exit_2() {
    let ws = tempfile::tempdir().expect("tempdir");
    let root = ws.path();
    write(
        &root.join("labs/lab01-good/points.toml"),
        "lab = \"lab01-good\"\ntitle = \"T\"\n[[test]]\nname = \"t\"\npoints = 1\n",
    );
    write(
        &root.join("labs/lab02-bad/points.toml"),
        "lab = \"lab02-bad\"\ntitle = \"T\"\n[[test]]\nname = \"t\"\npoints = 0\n",
    );

    let out = grader(root, &["lab09"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unknown lab \"lab09\""), "{stderr}");
    assert!(
        stderr.contains("lab01 (lab01-good), lab02 (lab02-bad), all"),
        "{stderr}"
    );

    let out = grader(root, &["lab02"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("lab02-bad/points.toml"), "{stderr}");
    assert!(stderr.contains("worth 0 points"), "{stderr}");

    // A bad file anywhere stops `all` before anything is built.
    assert_eq!(grader(root, &["all"]).status.code(), Some(2));

    assert_eq!(
        grader(root, &["lab01", "--reference", "--expect-zero"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        grader(root, &["lab01", "--timeout-s", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(grader(root, &[]).status.code(), Some(2));
}
