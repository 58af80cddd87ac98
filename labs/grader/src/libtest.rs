//! Reading the verdict of one test from what libtest printed.
//!
//! The grader runs `<test binary> <name> --exact --test-threads=1 --color=never`, so the output
//! holds at most one test. A passing run ends with `test result: ok. 1 passed`. A failing one has,
//! after `failures:`, a section
//!
//! ```text
//! ---- lab03_x stdout ----
//! (whatever the test printed)
//! thread 'lab03_x' (19717) panicked at tests/grade.rs:20:5:
//! seed 17: get k1 on n2 returned 1 after 2 was acknowledged (not linearizable)
//! reproduce: LAB_SEED=17 cargo test -p lab03-total-order --test grade lab03_x
//! note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
//! ```
//!
//! and the reason shown to the student is the first non-empty line of the panic message. The labs'
//! tests follow a protocol for that message: it names the seed of the failing run (`seed 17`) and
//! has a `reproduce:` line with the command that replays just that run; both are pulled out so the
//! table and Gradescope can show them.
//!
//! Only the shape of libtest's output is relied on, never its exact spacing: the thread id in
//! `thread 'x' (19717) panicked` is new in recent Rust, for example, and is skipped either way.

use crate::grade::Status;
use crate::runner::Ended;

/// Longest reason shown, in characters.
const MAX_REASON_CHARS: usize = 200;
/// Largest failure section kept for the JSON output, in bytes.
const MAX_DETAILS_BYTES: usize = 4096;

/// What one test run amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    /// One line; empty for a passed test.
    pub reason: String,
    pub seed: Option<u64>,
    /// The command after `reproduce: `.
    pub reproduce: Option<String>,
    /// The failure section (or the output's end when there is none), at most ~4 KB.
    pub details: String,
}

/// Judges the run of test `name` from how it ended and what it printed.
pub fn judge(name: &str, ended: Ended, stdout: &str, stderr: &str, timeout_s: u64) -> Verdict {
    if ended == Ended::TimedOut {
        return Verdict {
            status: Status::TimedOut,
            reason: format!("timed out after {timeout_s} s (an endless loop, or a deadlock?)"),
            seed: None,
            reproduce: None,
            details: cap(&raw_output(stdout, stderr)),
        };
    }

    let summary = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with("test result: "))
        .unwrap_or("");
    if ended == Ended::Exited(0) && summary.contains("test result: ok. 1 passed") {
        return Verdict {
            status: Status::Passed,
            reason: String::new(),
            seed: None,
            reproduce: None,
            details: String::new(),
        };
    }
    let no_test_ran =
        summary.contains(" 0 passed; 0 failed") || stdout.lines().any(|l| l == "running 0 tests");
    if no_test_ran {
        let reason = if summary.contains("; 1 ignored") {
            format!("test {name} is marked #[ignore] in tests/grade.rs, so it never runs")
        } else {
            format!("no test named {name} in tests/grade.rs")
        };
        return Verdict {
            status: Status::Missing,
            reason,
            seed: None,
            reproduce: None,
            details: String::new(),
        };
    }

    let section = failure_section(name, stdout);
    let panics = section.map(panics).unwrap_or_default();
    let chosen = choose_panic(name, &panics);

    let reason = chosen
        .as_ref()
        .and_then(|(prefix, panic)| {
            first_non_empty(&panic.message).map(|line| format!("{prefix}{line}"))
        })
        .or_else(|| section.and_then(last_meaningful_line).map(str::to_owned))
        .unwrap_or_else(|| ending_reason(ended, stderr));

    let message = chosen.as_ref().map(|(_, panic)| panic.message.as_str());
    let seed = message
        .and_then(find_seed)
        .or_else(|| section.and_then(find_seed));
    let reproduce = message
        .and_then(find_reproduce)
        .or_else(|| section.and_then(find_reproduce));

    Verdict {
        status: Status::Failed,
        reason: one_line(&reason),
        seed,
        reproduce,
        details: cap(section.unwrap_or(&raw_output(stdout, stderr))),
    }
}

/// The failure section of `name`: from its `---- name stdout ----` header to libtest's closing
/// `failures:` list (the last such line, as the test's own output may contain one too).
fn failure_section<'a>(name: &str, stdout: &'a str) -> Option<&'a str> {
    let header = format!("---- {name} stdout ----");
    let start = line_starts(stdout).find(|&i| stdout[i..].lines().next() == Some(&header))?;
    let body_start = stdout[start..]
        .find('\n')
        .map_or(stdout.len(), |i| start + i + 1);
    let body = &stdout[body_start..];
    let end = line_starts(body)
        .filter(|&i| body[i..].lines().next() == Some("failures:"))
        .last()
        .unwrap_or(body.len());
    Some(&body[..end])
}

/// Byte offsets at which the lines of `text` start.
fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1))
}

/// One `thread '...' panicked at ...:` block.
#[derive(Debug)]
struct Panic {
    thread: String,
    message: String,
}

/// Every panic in a failure section, in order, each with the lines of its message.
fn panics(section: &str) -> Vec<Panic> {
    let mut found: Vec<Panic> = Vec::new();
    let mut in_message = false;
    for line in section.lines() {
        if let Some((thread, rest)) = panic_line(line) {
            // Since Rust 1.73 the location ends the line and the message follows; before, the
            // message was quoted on this line.
            let message = if rest.ends_with(':') {
                String::new()
            } else {
                format!("{rest}\n")
            };
            found.push(Panic {
                thread: thread.to_owned(),
                message,
            });
            in_message = true;
        } else if in_message {
            if line.starts_with("note: run with `RUST_BACKTRACE")
                || line.starts_with("stack backtrace:")
            {
                in_message = false;
            } else if let Some(panic) = found.last_mut() {
                panic.message.push_str(line);
                panic.message.push('\n');
            }
        }
    }
    found
}

/// Splits `thread 'name' (123) panicked at src/x.rs:1:2:` into the thread name and what follows
/// `panicked at `.
fn panic_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("thread '")?;
    let at = rest.find(" panicked at ")?;
    let (thread, _) = rest[..at].rsplit_once('\'')?;
    Some((thread, &rest[at + " panicked at ".len()..]))
}

/// The panic to explain a failure with, and a prefix naming its thread if that is not the
/// test's own.
///
/// The test's own thread's last panic is what failed the test, and the labs put their seed there.
/// But when another thread panicked first and the test's panic names no seed, the test thread's
/// message is usually only the echo (`called Result::unwrap() on an Err value: Any { .. }` from a
/// join), and the first panic is the cause: a `todo!` in a spawned thread, say.
fn choose_panic<'a>(name: &str, panics: &'a [Panic]) -> Option<(String, &'a Panic)> {
    let other = |list: &'a [Panic]| {
        list.iter()
            .find(|p| p.thread != name && first_non_empty(&p.message).is_some())
            .map(|p| (format!("in thread '{}': ", p.thread), p))
    };
    match panics.iter().rposition(|p| p.thread == name) {
        Some(i) => {
            let own = &panics[i];
            if find_seed(&own.message).is_some() {
                Some((String::new(), own))
            } else {
                other(&panics[..i]).or(Some((String::new(), own)))
            }
        }
        None => other(panics),
    }
}

fn first_non_empty(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// The last line of a section that says something (not libtest's backtrace hint).
fn last_meaningful_line(section: &str) -> Option<&str> {
    section
        .lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
}

/// A reason from the exit status alone, with the last line of stderr if there is one (an abort
/// prints why there: `fatal runtime error: stack overflow, aborting`).
fn ending_reason(ended: Ended, stderr: &str) -> String {
    let how = match ended {
        Ended::Exited(code) => format!("exit status {code}"),
        Ended::Signalled(signal) => match signal_name(signal) {
            Some(sig) => format!("killed by signal {signal} ({sig})"),
            None => format!("killed by signal {signal}"),
        },
        Ended::TimedOut => "timed out".to_owned(),
    };
    match last_meaningful_line(stderr) {
        Some(line) => format!("{how}: {line}"),
        None => how,
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGINT => "SIGINT",
        _ => return None,
    })
}

/// The number in the first `seed <digits>` of `text` that stands as words of its own.
pub fn find_seed(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for (at, _) in lower.match_indices("seed") {
        if at > 0 && is_word(bytes[at - 1]) {
            continue;
        }
        let mut i = at + 4;
        let spaces = bytes[i..].iter().take_while(|&&b| b == b' ').count();
        if spaces == 0 {
            continue;
        }
        i += spaces;
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || bytes.get(i + digits).is_some_and(|&b| is_word(b)) {
            continue;
        }
        if let Ok(seed) = lower[i..i + digits].parse() {
            return Some(seed);
        }
    }
    None
}

/// The command on a line of its own that starts with `reproduce: `.
pub fn find_reproduce(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("reproduce: "))
        .map(str::trim)
        .find(|cmd| !cmd.is_empty())
        .map(sanitize)
}

/// `text` with control characters (escape sequences, carriage returns, tabs) made spaces, so it
/// cannot garble a table.
fn sanitize(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text` made safe for one table cell ([`sanitize`]d) and cut to [`MAX_REASON_CHARS`] with `…`.
pub fn one_line(text: &str) -> String {
    let clean = sanitize(text);
    if clean.chars().count() <= MAX_REASON_CHARS {
        return clean;
    }
    let mut cut: String = clean.chars().take(MAX_REASON_CHARS - 1).collect();
    cut.push('…');
    cut
}

fn raw_output(stdout: &str, stderr: &str) -> String {
    let mut text = String::new();
    if !stdout.trim().is_empty() {
        text.push_str("stdout:\n");
        text.push_str(stdout.trim_end());
        text.push('\n');
    }
    if !stderr.trim().is_empty() {
        text.push_str("stderr:\n");
        text.push_str(stderr.trim_end());
        text.push('\n');
    }
    text
}

/// `text` cut to about [`MAX_DETAILS_BYTES`], keeping its start (the section's header, the
/// test's first output) and its end (the panic message).
pub fn cap(text: &str) -> String {
    let text = text.trim_matches('\n');
    if text.len() <= MAX_DETAILS_BYTES {
        return text.to_owned();
    }
    let head_end = floor_char_boundary(text, MAX_DETAILS_BYTES / 4);
    let tail_start = ceil_char_boundary(text, text.len() - MAX_DETAILS_BYTES * 3 / 4);
    format!(
        "{}\n[… {} bytes cut …]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The output of a real failing libtest run (Rust 1.95, `RUST_BACKTRACE=0`), with the
    /// lab protocol's message.
    const SEEDED_FAILURE: &str = "
running 1 test
test lab03_lamport_waits_for_acks ... FAILED

failures:

---- lab03_lamport_waits_for_acks stdout ----
n1: broadcast set k1 1
n2: delivered set k1 1

thread 'lab03_lamport_waits_for_acks' (19719) panicked at labs/lab03-total-order/tests/grade.rs:41:9:
seed 17: get k1 on n2 returned 1 after 2 was acknowledged (not linearizable)
history:
  c1 set k1 2 -> ok
reproduce: LAB_SEED=17 cargo test -p lab03-total-order --test grade lab03_lamport_waits_for_acks
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    lab03_lamport_waits_for_acks

test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 5 filtered out; finished in 0.07s

";

    const TODO_FAILURE: &str = "
running 1 test
test lab03_sequencer_orders_writes ... FAILED

failures:

---- lab03_sequencer_orders_writes stdout ----

thread 'lab03_sequencer_orders_writes' (20001) panicked at labs/lab03-total-order/src/sequencer.rs:30:9:
not yet implemented: lab03: Sequencer::broadcast
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    lab03_sequencer_orders_writes

test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 5 filtered out; finished in 0.00s

";

    const PASSED: &str = "
running 1 test
test lab03_ok ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 5 filtered out; finished in 0.00s

";

    #[test]
    fn a_passing_run() {
        let v = judge("lab03_ok", Ended::Exited(0), PASSED, "", 120);
        assert_eq!(v.status, Status::Passed);
        assert_eq!(v.reason, "");
    }

    #[test]
    fn a_pass_needs_both_the_summary_and_exit_zero() {
        let v = judge("lab03_ok", Ended::Exited(1), PASSED, "", 120);
        assert_eq!(v.status, Status::Failed);
        assert_eq!(v.reason, "exit status 1");
    }

    #[test]
    fn the_lab_protocol_gives_reason_seed_and_reproduce() {
        let name = "lab03_lamport_waits_for_acks";
        let v = judge(name, Ended::Exited(101), SEEDED_FAILURE, "", 120);
        assert_eq!(v.status, Status::Failed);
        assert_eq!(
            v.reason,
            "seed 17: get k1 on n2 returned 1 after 2 was acknowledged (not linearizable)"
        );
        assert_eq!(v.seed, Some(17));
        assert_eq!(
            v.reproduce.as_deref(),
            Some(
                "LAB_SEED=17 cargo test -p lab03-total-order --test grade lab03_lamport_waits_for_acks"
            )
        );
        assert!(
            v.details.starts_with("n1: broadcast set k1 1"),
            "{}",
            v.details
        );
        assert!(v.details.contains("panicked at"));
        assert!(!v.details.contains("test result"));
    }

    #[test]
    fn a_todo_gives_its_message() {
        let name = "lab03_sequencer_orders_writes";
        let v = judge(name, Ended::Exited(101), TODO_FAILURE, "", 120);
        assert_eq!(v.status, Status::Failed);
        assert_eq!(v.reason, "not yet implemented: lab03: Sequencer::broadcast");
        assert_eq!(v.seed, None);
        assert_eq!(v.reproduce, None);
    }

    #[test]
    fn an_assert_eq_gives_its_first_line() {
        let out = "
running 1 test
test t ... FAILED

failures:

---- t stdout ----

thread 't' (20003) panicked at tests/grade.rs:6:16:
assertion `left == right` failed: seed 3: mismatch
  left: 1
 right: 2
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    t

test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";
        let v = judge("t", Ended::Exited(101), out, "", 120);
        assert_eq!(
            v.reason,
            "assertion `left == right` failed: seed 3: mismatch"
        );
        assert_eq!(v.seed, Some(3));
    }

    #[test]
    fn a_message_starting_with_blank_lines_and_a_panic_line_without_thread_id() {
        let out = "---- t stdout ----\nthread 't' panicked at tests/grade.rs:9:14:\n\n\n  second line, seed 9\nreproduce: X=1 cargo test\n\nfailures:\n    t\n";
        let v = judge("t", Ended::Exited(101), out, "", 120);
        assert_eq!(v.reason, "second line, seed 9");
        assert_eq!(v.seed, Some(9));
        assert_eq!(v.reproduce.as_deref(), Some("X=1 cargo test"));
    }

    #[test]
    fn a_panic_in_a_spawned_thread_is_the_cause() {
        let out = "
failures:

---- thr stdout ----

thread '<unnamed>' (20415) panicked at src/node.rs:4:42:
not yet implemented: lab02: Node::step
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

thread 'thr' (20414) panicked at tests/grade.rs:4:74:
called `Result::unwrap()` on an `Err` value: Any { .. }


failures:
    thr

test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 4 filtered out; finished in 0.01s
";
        let v = judge("thr", Ended::Exited(101), out, "", 120);
        assert_eq!(
            v.reason,
            "in thread '<unnamed>': not yet implemented: lab02: Node::step"
        );
    }

    #[test]
    fn the_test_threads_seeded_message_wins_over_other_panics() {
        let out = "---- t stdout ----\nthread 'worker' panicked at a.rs:1:1:\nnoise\nthread 't' panicked at b.rs:2:2:\nseed 5: wrong\n\nfailures:\n";
        let v = judge("t", Ended::Exited(101), out, "", 120);
        assert_eq!(v.reason, "seed 5: wrong");
        assert_eq!(v.seed, Some(5));
    }

    #[test]
    fn a_test_returning_err_falls_back_to_the_last_line() {
        let out = "
running 1 test
test r_err ... FAILED

failures:

---- r_err stdout ----
Error: \"seed 4: boom\"


failures:
    r_err

test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 4 filtered out; finished in 0.00s
";
        let v = judge("r_err", Ended::Exited(101), out, "", 120);
        assert_eq!(v.reason, "Error: \"seed 4: boom\"");
        assert_eq!(v.seed, Some(4));
    }

    #[test]
    fn an_abort_names_the_signal_and_stderr() {
        let out = "\nrunning 1 test\ntest so ... ";
        let err = "\nthread 'so' (20420) has overflowed its stack\nfatal runtime error: stack overflow, aborting\n";
        let v = judge("so", Ended::Signalled(libc::SIGABRT), out, err, 120);
        assert_eq!(v.status, Status::Failed);
        assert_eq!(
            v.reason,
            "killed by signal 6 (SIGABRT): fatal runtime error: stack overflow, aborting"
        );
        assert!(v.details.contains("overflowed its stack"));
        let v = judge("so", Ended::Signalled(libc::SIGSEGV), "", "", 120);
        assert_eq!(v.reason, "killed by signal 11 (SIGSEGV)");
        let v = judge("so", Ended::Exited(3), "", "", 120);
        assert_eq!(v.reason, "exit status 3");
    }

    #[test]
    fn a_missing_or_ignored_test() {
        let out = "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 6 filtered out; finished in 0.00s\n";
        let v = judge("nope", Ended::Exited(0), out, "", 120);
        assert_eq!(v.status, Status::Missing);
        assert_eq!(v.reason, "no test named nope in tests/grade.rs");
        let out = "\nrunning 1 test\ntest ign ... ignored\n\ntest result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 4 filtered out; finished in 0.00s\n";
        let v = judge("ign", Ended::Exited(0), out, "", 120);
        assert_eq!(v.status, Status::Missing);
        assert!(v.reason.contains("#[ignore]"), "{}", v.reason);
    }

    #[test]
    fn a_timeout() {
        let v = judge("t", Ended::TimedOut, "running 1 test\ntest t ... ", "", 7);
        assert_eq!(v.status, Status::TimedOut);
        assert_eq!(
            v.reason,
            "timed out after 7 s (an endless loop, or a deadlock?)"
        );
    }

    #[test]
    fn long_and_garbled_messages_stay_one_bounded_line() {
        let long = "x".repeat(500);
        let out = format!(
            "---- t stdout ----\nthread 't' panicked at a.rs:1:1:\n\u{1b}[31m{long}\r\u{0}\n\nfailures:\n"
        );
        let v = judge("t", Ended::Exited(101), &out, "", 120);
        assert_eq!(v.reason.chars().count(), MAX_REASON_CHARS);
        assert!(v.reason.ends_with('…'));
        assert!(!v.reason.chars().any(char::is_control));
    }

    #[test]
    fn the_details_are_capped_at_char_boundaries() {
        let chatty = "é".repeat(10_000);
        let out = format!(
            "---- t stdout ----\n{chatty}\nthread 't' panicked at a.rs:1:1:\nseed 1: end\n\nfailures:\n"
        );
        let v = judge("t", Ended::Exited(101), &out, "", 120);
        assert!(v.details.len() <= MAX_DETAILS_BYTES + 100);
        assert!(v.details.ends_with("seed 1: end"));
        assert!(v.details.contains("bytes cut"));
    }

    #[test]
    fn output_without_a_section_or_with_a_fake_failures_line() {
        // The test printed `failures:` itself; the section runs to libtest's own (last) one.
        let out = "---- t stdout ----\nfailures:\nthread 't' panicked at a.rs:1:1:\nreal\n\nfailures:\n    t\n";
        let v = judge("t", Ended::Exited(101), out, "", 120);
        assert_eq!(v.reason, "real");
        // Binary garbage and no section at all.
        let v = judge("t", Ended::Exited(101), "\u{fffd}\u{fffd}\n", "", 120);
        assert_eq!(v.reason, "exit status 101");
    }

    #[test]
    fn seeds_are_whole_words() {
        assert_eq!(find_seed("seed 17: x"), Some(17));
        assert_eq!(find_seed("Seed 8"), Some(8));
        assert_eq!(find_seed("reseed 3, then seed 4"), Some(4));
        assert_eq!(find_seed("seeds 3"), None);
        assert_eq!(find_seed("seed 12ab"), None);
        assert_eq!(find_seed("seed"), None);
        assert_eq!(find_seed("seed: 5"), None);
        assert_eq!(find_seed("with seed 99999999999999999999999 then"), None);
        assert_eq!(find_seed("(seed 42)"), Some(42));
    }

    #[test]
    fn reproduce_lines_stand_alone() {
        assert_eq!(
            find_reproduce("x\n  reproduce: LAB_SEED=1 cargo test\n").as_deref(),
            Some("LAB_SEED=1 cargo test")
        );
        assert_eq!(find_reproduce("to reproduce: run it"), None);
        assert_eq!(find_reproduce("reproduce: "), None);
    }
}
