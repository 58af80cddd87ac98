//! The linearizability checker against a peer's corpus: every history recorded by other
//! systems (Jepsen's etcd runs; Porcupine's key-value histories) must get the verdict listed in
//! `tests/data/porcupine/VERDICTS.txt`, which Porcupine's own checker produced.

use std::path::Path;

use dkvs::check::{Budget, Verdict, jepsen, linearizable};

#[test]
fn every_corpus_history_gets_its_published_verdict() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine");
    let verdicts = std::fs::read_to_string(root.join("VERDICTS.txt")).expect("VERDICTS.txt");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in verdicts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, expected) = line.split_once(' ').expect("`file verdict` lines");
        let expected: bool = expected.trim().parse().expect("true or false");
        let text = std::fs::read_to_string(root.join(file)).expect("corpus file");
        let history = jepsen::parse_auto(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let verdict = linearizable::check(&history, &Budget::unlimited_time());
        let got = match &verdict {
            Verdict::Consistent => true,
            Verdict::Violation(v) => {
                // A violation must come with a non-empty counterexample on one key.
                assert!(!v.ops.is_empty() && v.key.is_some(), "{file}: {v:?}");
                false
            }
            Verdict::Unknown { reason } => panic!("{file}: unknown: {reason}"),
        };
        if got != expected {
            wrong.push(format!("{file}: expected {expected}, got {got}"));
        }
        checked += 1;
    }
    assert_eq!(checked, 108, "the corpus lists 108 histories");
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}
