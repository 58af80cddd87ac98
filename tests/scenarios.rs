//! The golden scenario scripts of every stage (`stages/*/scenarios/*.txt`), run in the
//! simulator; each transcript is compared with its stored copy in `tests/snapshots/`.
//!
//! A changed transcript fails this test and shows the difference. If the change is intended,
//! review it with `cargo insta review` (or rerun with `INSTA_UPDATE=always`) and commit the new
//! snapshot with the change that caused it.

#[test]
fn every_stage_scenario_matches_its_transcript() {
    insta::glob!("../stages", "*/scenarios/*.txt", |path| {
        let script = std::fs::read_to_string(path).expect("a scenario file is readable");
        let transcript =
            dkvs::sim::script::run(&script).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        insta::assert_snapshot!(transcript);
    });
}

#[test]
fn a_transcript_is_the_same_every_time() {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/stages/02-eventual/scenarios/02-partition-diverge-converge.txt"
    ))
    .expect("readable");
    let first = dkvs::sim::script::run(&script).expect("runs");
    let second = dkvs::sim::script::run(&script).expect("runs");
    assert_eq!(first, second);
}

#[test]
fn a_bad_script_names_its_line() {
    let cases = [
        ("set n1 x=1\n", 1, "must start with a `cluster` line"),
        (
            "cluster nodes=3 mode=eventual\nfly n1\n",
            2,
            "unknown command",
        ),
        (
            "cluster nodes=3 mode=eventual\nset n7 x=1\n",
            2,
            "no node n7",
        ),
        (
            "cluster nodes=3 mode=eventual\n\nset n1 x\n",
            3,
            "key=value",
        ),
        ("cluster nodes=3 mode=strong\n", 1, "mode=strong"),
        (
            "cluster nodes=3 mode=eventual\ncrash n2\ncrash n2\n",
            3,
            "already down",
        ),
        (
            "cluster nodes=3 mode=eventual\ndeliver n1 n2\n",
            2,
            "n1->n2",
        ),
        (
            "cluster nodes=3 mode=eventual\ncheck strict\n",
            2,
            "check linearizable",
        ),
    ];
    for (script, line, needle) in cases {
        let err = dkvs::sim::script::run(script).expect_err(script);
        assert_eq!(err.line, line, "{script:?}: {err}");
        assert!(err.message.contains(needle), "{script:?}: {err}");
    }
}
