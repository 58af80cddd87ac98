//! Model test of the storage engine: random sequences of `set`, `del`, batches, `get`,
//! `compact` and `reopen` (drop the store and open the same directory again) run against a
//! `Store` and against a `HashMap`, which must agree after every step.
//!
//! Segments are tiny (128 bytes) and keys few (8), so nearly every step rotates a segment,
//! overwrites or deletes something, and gives compaction dead records and tombstones to drop;
//! reopening exercises hint files, full scans and the highest-sequence-wins rebuild.
//!
//! Runs `DKVS_MODEL_CASES` cases (default 256). On failure proptest prints the shrunk sequence
//! of operations.

use std::collections::HashMap;
use std::path::Path;

use dkvs::storage::{CompactionOptions, Store, StoreOptions, SyncPolicy, Write};
use proptest::prelude::*;

const KEYS: u8 = 8;

#[derive(Debug, Clone)]
enum Op {
    Set(u8, Vec<u8>),
    Del(u8),
    /// Several writes in one `Store::write` call; `None` is a delete.
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Get(u8),
    Compact,
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k}").into_bytes()
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS, value()).prop_map(|(k, v)| Op::Set(k, v)),
        3 => (0..KEYS).prop_map(Op::Del),
        2 => proptest::collection::vec((0..KEYS, proptest::option::of(value())), 1..6)
            .prop_map(Op::Batch),
        2 => (0..KEYS).prop_map(Op::Get),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::Never,
        sync_interval_ms: 10,
        segment_size_bytes: 128,
        max_key_bytes: 16,
        max_value_bytes: 64,
        compaction: CompactionOptions {
            auto: false,
            min_dead_ratio: 0.5,
            min_dead_bytes: 0,
            check_interval_ms: 1000,
        },
    }
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().expect("stat").len())
        .sum()
}

/// Everything observable agrees with the model.
fn check(store: &Store, model: &HashMap<u8, Vec<u8>>) -> Result<(), TestCaseError> {
    for k in 0..KEYS {
        prop_assert_eq!(
            store.get(&key(k)).expect("get"),
            model.get(&k).cloned(),
            "key {}",
            k
        );
        prop_assert_eq!(store.contains(&key(k)), model.contains_key(&k));
    }
    let stats = store.stats();
    prop_assert_eq!(stats.keys, model.len() as u64);
    prop_assert_eq!(
        stats.live_bytes + stats.dead_bytes,
        segment_bytes(store.dir())
    );
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = options(dir.path());
    let (mut store, report) = Store::open(opts.clone()).expect("open");
    prop_assert_eq!(report.keys, 0);
    let mut model: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut last_ticket = 0;
    let mut existed = Vec::new();
    for op in ops {
        match op {
            Op::Set(k, v) => {
                existed.clear();
                let kb = key(k);
                let ticket = store
                    .write(
                        &[Write::Set {
                            key: &kb,
                            value: &v,
                        }],
                        &mut existed,
                    )
                    .expect("set");
                prop_assert!(ticket > last_ticket);
                last_ticket = ticket;
                prop_assert_eq!(&existed, &[model.insert(k, v).is_some()]);
            }
            Op::Del(k) => {
                existed.clear();
                let kb = key(k);
                let ticket = store
                    .write(&[Write::Del { key: &kb }], &mut existed)
                    .expect("del");
                prop_assert!(ticket >= last_ticket);
                last_ticket = ticket;
                prop_assert_eq!(&existed, &[model.remove(&k).is_some()]);
            }
            Op::Batch(writes) => {
                let keys: Vec<Vec<u8>> = writes.iter().map(|(k, _)| key(*k)).collect();
                let batch: Vec<Write<'_>> = writes
                    .iter()
                    .zip(&keys)
                    .map(|((_, v), kb)| match v {
                        Some(v) => Write::Set { key: kb, value: v },
                        None => Write::Del { key: kb },
                    })
                    .collect();
                existed.clear();
                let ticket = store.write(&batch, &mut existed).expect("batch");
                prop_assert!(ticket >= last_ticket);
                last_ticket = ticket;
                let want: Vec<bool> = writes
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => model.insert(k, v).is_some(),
                        None => model.remove(&k).is_some(),
                    })
                    .collect();
                prop_assert_eq!(&existed, &want);
            }
            Op::Get(k) => {
                prop_assert_eq!(store.get(&key(k)).expect("get"), model.get(&k).cloned());
            }
            Op::Compact => {
                let before = store.stats();
                let report = store.compact().expect("compact");
                prop_assert!(report.bytes_out <= report.bytes_in);
                prop_assert_eq!(store.stats().live_bytes, before.live_bytes);
            }
            Op::Reopen => {
                let last_seq = store.stats().last_seq;
                drop(store);
                let (reopened, report) = Store::open(opts.clone()).expect("reopen");
                store = reopened;
                prop_assert!(report.damage.is_empty(), "{:?}", report.damage);
                prop_assert_eq!(report.keys, model.len() as u64);
                prop_assert_eq!(store.stats().last_seq, last_seq);
            }
        }
        check(&store, &model)?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("DKVS_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_agrees_with_a_hash_map(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
