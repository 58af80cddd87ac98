//! The deterministic simulator: same seed, same run; the ordered modes keep their promises
//! under faults over a sweep of seeds; the eventual mode breaks linearizability (the lesson of
//! stage 02) but converges.
//!
//! The sweeps run `DKVS_SIM_SEEDS` seeds (default 1..40, both ends included); widen it for a
//! long run, e.g. `DKVS_SIM_SEEDS=1..500 cargo test --release --test sim`. A failure names the
//! seed and the command that replays it.

use std::process::Command;

use dkvs::check::{Property, Verdict};
use dkvs::node::{ModeKind, Tob};
use dkvs::sim::SimConfig;
use dkvs::sim::run::{self, Faults, RunOptions};

fn seeds() -> std::ops::RangeInclusive<u64> {
    let text = std::env::var("DKVS_SIM_SEEDS").unwrap_or_else(|_| "1..40".into());
    let (a, b) = text
        .split_once("..")
        .unwrap_or_else(|| panic!("DKVS_SIM_SEEDS={text:?}: expected A..B"));
    let parse = |s: &str| {
        s.trim_start_matches('=')
            .trim()
            .parse::<u64>()
            .expect("a seed")
    };
    parse(a)..=parse(b)
}

fn options(faults: &str, check: Option<Property>) -> RunOptions {
    RunOptions {
        ops: 300,
        faults: faults.parse().expect("fault words"),
        check,
        ..RunOptions::default()
    }
}

/// Runs every seed and fails with the first one that finds a problem.
fn sweep(kind: ModeKind, tob: Tob, faults: &str, property: Property) {
    let config = SimConfig::new(kind, tob, 3);
    let options = options(faults, Some(property));
    for seed in seeds() {
        let result = run::run(&config, &options, seed);
        if let Some(busy) = &result.unsettled {
            panic!("{kind} over {tob}, seed {seed}, faults {faults}: never settled: {busy}");
        }
        match &result.verdict {
            Some((_, Verdict::Consistent)) => {}
            other => panic!(
                "{kind} over {tob}, seed {seed}, faults {faults}: {property:?} check gave {other:?}"
            ),
        }
        let answered = result.history.ops.iter().filter(|o| o.return_ns.is_some());
        assert!(
            answered.count() > 0,
            "seed {seed}: no operation was ever answered, the check proved nothing"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_byte_for_byte() {
    let config = SimConfig::new(ModeKind::Linearizable, Tob::Lamport, 3);
    let options = options("partition,crash,drop,duplicate,reorder", None);
    let bytes = |seed| {
        let result = run::run(&config, &options, seed);
        let mut out = Vec::new();
        dkvs::trace::write_jsonl(&result.trace, &mut out).expect("in memory");
        result.history.write_jsonl(&mut out).expect("in memory");
        out
    };
    let first = bytes(7);
    assert!(first.len() > 10_000, "a run leaves a real trace");
    assert_eq!(first, bytes(7), "same seed, same bytes");
    assert_ne!(first, bytes(8), "another seed is another run");
}

#[test]
fn tracing_does_not_change_the_run() {
    // `dkvs sim` sweeps without traces and runs a failing seed again with its trace: that is
    // only sound if the trace changes nothing about the run.
    let config = SimConfig::new(ModeKind::Sequential, Tob::Sequencer, 3);
    let traced = options("partition,crash,drop,duplicate,reorder,delay", None);
    let untraced = RunOptions {
        trace: false,
        ..traced.clone()
    };
    for seed in [3, 11] {
        let a = run::run(&config, &traced, seed);
        let b = run::run(&config, &untraced, seed);
        assert!(!a.trace.is_empty() && b.trace.is_empty());
        assert_eq!(a.history, b.history, "seed {seed}");
        assert_eq!(a.stats, b.stats, "seed {seed}");
    }
}

#[test]
fn linearizable_over_a_sequencer_stays_linearizable_under_faults() {
    sweep(
        ModeKind::Linearizable,
        Tob::Sequencer,
        "partition,crash,drop,duplicate,reorder,delay",
        Property::Linearizable,
    );
}

#[test]
fn linearizable_over_lamport_clocks_stays_linearizable_under_faults() {
    sweep(
        ModeKind::Linearizable,
        Tob::Lamport,
        "partition,crash,drop,duplicate,reorder,delay",
        Property::Linearizable,
    );
}

#[test]
fn sequential_over_a_sequencer_stays_sequential_under_faults() {
    sweep(
        ModeKind::Sequential,
        Tob::Sequencer,
        "partition,crash,drop,duplicate,reorder,delay",
        Property::Sequential,
    );
}

#[test]
fn sequential_over_lamport_clocks_stays_sequential_under_faults() {
    sweep(
        ModeKind::Sequential,
        Tob::Lamport,
        "partition,crash,drop,duplicate,reorder,delay",
        Property::Sequential,
    );
}

#[test]
fn flow_control_keeps_followers_within_reach_of_a_small_log() {
    // With a log of 32 operations, a follower more than 32 behind can never catch up: flow
    // control must hold the sequencer back, also right after start-up, before a follower has
    // reported (seed 192 found that hole).
    let mut config = SimConfig::new(ModeKind::Linearizable, Tob::Sequencer, 3);
    config.options.log_capacity = 32;
    config.options.max_pending = 64;
    let options = RunOptions {
        ops: 1000,
        clients: 12,
        ..options("drop,duplicate,reorder,delay", Some(Property::Linearizable))
    };
    for seed in seeds().chain([192]) {
        let result = run::run(&config, &options, seed);
        assert!(
            result.unsettled.is_none(),
            "seed {seed}: a follower was left out of reach: {:?}",
            result.unsettled
        );
        assert!(
            matches!(result.verdict, Some((_, Verdict::Consistent))),
            "seed {seed}: {:?}",
            result.verdict
        );
    }
}

#[test]
fn eventual_converges_after_partitions_heal() {
    sweep(
        ModeKind::Eventual,
        Tob::Sequencer,
        "partition,drop,duplicate,reorder,delay",
        Property::Eventual,
    );
}

#[test]
fn eventual_fails_a_linearizability_check_within_a_few_seeds() {
    let config = SimConfig::new(ModeKind::Eventual, Tob::Sequencer, 3);
    let options = options("none", Some(Property::Linearizable));
    let failing = (1..=5)
        .find(|&seed| run::run(&config, &options, seed).failed())
        .expect("local reads of an eventual store are stale within five seeds");
    // The explanation points at the message flow of the operations involved.
    let result = run::run(&config, &options, failing);
    let Some((_, Verdict::Violation(v))) = &result.verdict else {
        panic!("seed {failing} failed without a violation");
    };
    let ids: Vec<u64> = v.ops.iter().map(|o| o.id).collect();
    let focus = result.focus(&ids, 200);
    assert!(
        focus
            .iter()
            .any(|e| e.kind == dkvs::node::TraceKind::ClientReply),
        "the focused trace shows the replies: {focus:?}"
    );
}

#[test]
fn fault_words_parse_and_print_back() {
    let f: Faults = "crash, partition".parse().expect("valid");
    assert!(f.crash && f.partition && !f.drop);
    assert_eq!(f.to_string(), "partition,crash");
    assert_eq!("none".parse::<Faults>().expect("valid").to_string(), "none");
    let all: Faults = "all".parse().expect("valid");
    assert!(
        all.reorder && !all.unsynced,
        "all leaves out unsynced: {all}"
    );
    let err = "partition,earthquake"
        .parse::<Faults>()
        .expect_err("unknown word");
    assert!(err.contains("earthquake"), "{err}");
}

fn dkvs_sim(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dkvs"))
        .arg("sim")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("dkvs runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().expect("exited"), text)
}

#[test]
fn dkvs_sim_exits_0_when_the_mode_keeps_its_promise() {
    let (code, text) = dkvs_sim(&[
        "--config",
        "stages/04-linearizable/dkvs.toml",
        "--seed",
        "7",
        "--ops",
        "200",
        "--faults",
        "partition,crash",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("seed 7:") && text.contains("linearizable: ok"),
        "{text}"
    );
    assert!(
        text.contains("messages/s"),
        "the run reports its speed: {text}"
    );
}

#[test]
fn dkvs_sim_exits_1_with_the_seed_and_a_diagram_on_a_violation() {
    let (code, text) = dkvs_sim(&[
        "--config",
        "stages/02-eventual/dkvs.toml",
        "--seeds",
        "1..20",
        "--ops",
        "200",
        "--check",
        "linearizable",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("NOT linearizable"), "{text}");
    assert!(
        text.contains("the message flow of these operations"),
        "{text}"
    );
    assert!(text.contains("replay: dkvs sim --config"), "{text}");
}

#[test]
fn dkvs_sim_exits_2_on_bad_input() {
    let (code, text) = dkvs_sim(&["--config", "stages/01-single-node/dkvs.toml"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("replicated modes"), "{text}");
    let (code, text) = dkvs_sim(&[
        "--config",
        "stages/04-linearizable/dkvs.toml",
        "--faults",
        "meteor",
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("meteor"), "{text}");
    let (code, text) = dkvs_sim(&[
        "--config",
        "stages/04-linearizable/dkvs.toml",
        "--seeds",
        "9..3",
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("empty"), "{text}");
}
