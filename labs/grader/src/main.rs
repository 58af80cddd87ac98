//! `grader`: grades the dkvs labs.
//!
//! ```text
//! cargo run -p grader -- <LAB> [--reference] [--json FILE] [--timeout-s N] [--expect-zero]
//!                              [--workspace DIR]
//! ```
//!
//! It builds a lab's `tests/grade.rs` once, runs each test that the lab's `points.toml` lists in
//! a process of its own with a time limit, and prints a score table: each test's points, whether
//! it passed, and for a failure the seed and the first line of its message. `--json` also writes
//! a Gradescope `results.json`; `--expect-zero` is CI's proof that an untouched skeleton compiles
//! and scores nothing without hanging.
//!
//! Exit status: 0 when every graded test passed (with `--expect-zero`: when the skeleton scored
//! zero cleanly), 1 when one failed or a lab did not compile, 2 when the grader could not grade
//! (unknown lab, invalid `points.toml`, bad arguments, cargo not runnable, JSON not writable).
//!
//! Map: [`labs`] finds labs and reads [`points`]; [`grade`] builds with [`build`], runs each
//! test with [`runner`] and reads its verdict with [`libtest`]; [`report`] prints and writes.

mod build;
mod grade;
mod labs;
mod libtest;
mod points;
mod report;
mod runner;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use crate::grade::{LabResult, Options};

/// Grades the dkvs labs: runs a lab's graded tests one by one, each with a time limit, and
/// prints the points.
#[derive(Debug, Parser)]
#[command(name = "grader", version)]
struct Args {
    /// The lab: its short id (lab03), its full name (lab03-total-order), or `all`.
    lab: String,

    /// Grade the toolkit's reference implementation (cargo feature `reference`) instead of the
    /// student's code.
    #[arg(long)]
    reference: bool,

    /// Also write a Gradescope results.json to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Give every test N seconds, instead of its timeout_s from points.toml.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    timeout_s: Option<u64>,

    /// For CI: succeed only if the lab builds, scores 0, and every test fails with a reason and
    /// without timing out, as an untouched skeleton must.
    #[arg(long, conflicts_with = "reference")]
    expect_zero: bool,

    /// The dkvs workspace (default: the one the grader was built in).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "grader: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let root = labs::workspace_root(args.workspace.as_deref())?;
    // Every points.toml is checked before anything is built, so a bad one fails at once.
    let selected = labs::select(&root, &args.lab)?;
    // Likewise a JSON path that cannot be written: better now than after an hour of tests.
    let json_file = match &args.json {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => None,
    };

    let options = Options {
        reference: args.reference,
        timeout_s: args.timeout_s,
    };
    let mut results: Vec<LabResult> = Vec::new();
    for lab in &selected {
        let result = grade::grade_lab(&root, lab, options)?;
        let gap = if results.is_empty() { "" } else { "\n" };
        // Each table is printed as soon as its lab is graded, so `all` shows progress.
        print(&format!("{gap}{}", report::lab_table(&result)));
        results.push(result);
    }
    if results.len() > 1 {
        print(&format!("\n{}", report::grand_total(&results)));
    }

    if let (Some(mut file), Some(path)) = (json_file, &args.json) {
        let json = report::gradescope(&results, started.elapsed().as_secs_f64().round() as u64);
        let mut text = serde_json::to_string_pretty(&json).context("cannot encode results")?;
        text.push('\n');
        file.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }

    if args.expect_zero {
        let problems = report::expect_zero_problems(&results);
        if problems.is_empty() {
            let tests: usize = results.iter().map(|r| r.tests.len()).sum();
            print(&format!(
                "\nexpect-zero: ok: the skeleton builds, and all {tests} graded tests fail cleanly with 0 points\n"
            ));
            return Ok(ExitCode::SUCCESS);
        }
        let mut text = String::from("\nexpect-zero: FAILED: this is not a clean skeleton:\n");
        for problem in problems {
            text.push_str(&format!("  {problem}\n"));
        }
        print(&text);
        return Ok(ExitCode::from(1));
    }

    Ok(if results.iter().all(LabResult::all_passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes to stdout, ignoring a closed pipe (`grader all | head`) instead of panicking as
/// `print!` would.
fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
