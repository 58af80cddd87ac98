//! Store-level tests: each one a small scenario on a real directory.

use super::*;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

fn opts(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::Never,
        sync_interval_ms: 5,
        segment_size_bytes: 1 << 20,
        max_key_bytes: 64,
        max_value_bytes: 1024,
        compaction: CompactionOptions {
            auto: false,
            min_dead_ratio: 0.5,
            min_dead_bytes: 0,
            check_interval_ms: 1000,
        },
    }
}

fn small_segments(dir: &Path) -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 200,
        ..opts(dir)
    }
}

fn open(o: &StoreOptions) -> (Store, RecoveryReport) {
    Store::open(o.clone()).expect("open store")
}

fn set(s: &Store, key: &str, value: &str) -> u64 {
    s.write(
        &[Write::Set {
            key: key.as_bytes(),
            value: value.as_bytes(),
        }],
        &mut Vec::new(),
    )
    .expect("set")
}

fn del(s: &Store, key: &str) -> bool {
    let mut existed = Vec::new();
    s.write(
        &[Write::Del {
            key: key.as_bytes(),
        }],
        &mut existed,
    )
    .expect("del");
    existed[0]
}

fn get(s: &Store, key: &str) -> Option<String> {
    s.get(key.as_bytes())
        .expect("get")
        .map(|v| String::from_utf8(v).expect("utf-8 value"))
}

/// Segment file names, in order.
fn logs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("list dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

fn log_bytes(dir: &Path) -> u64 {
    logs(dir)
        .iter()
        .map(|n| fs::metadata(dir.join(n)).expect("stat").len())
        .sum()
}

/// Every byte of every segment is either live or dead.
fn assert_accounting(s: &Store) {
    let st = s.stats();
    assert_eq!(st.live_bytes + st.dead_bytes, log_bytes(s.dir()), "{st:?}");
}

fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open segment");
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).expect("read byte");
    b[0] ^= 0x20;
    f.write_all_at(&b, offset).expect("write byte");
}

#[test]
fn store_is_send_sync_and_its_futures_are_send() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>(_: T) {}
    assert_send_sync::<Store>();
    let dir = tempfile::tempdir().expect("temp dir");
    let (s, _) = open(&opts(dir.path()));
    assert_send(s.wait_durable(0));
}

#[test]
fn batches_report_whether_keys_existed() {
    // Each case: a batch, and what `existed` must say for it. Earlier writes in the same batch
    // count; a delete of a missing key writes nothing.
    let dir = tempfile::tempdir().expect("temp dir");
    let (s, _) = open(&opts(dir.path()));
    let set = |k: &'static str| Write::Set {
        key: k.as_bytes(),
        value: b"v",
    };
    let del = |k: &'static str| Write::Del { key: k.as_bytes() };
    let long: Vec<Write<'_>> = (0..40)
        .map(|i| if i % 2 == 0 { set("x") } else { del("x") })
        .collect();
    let cases: Vec<(&str, Vec<Write<'_>>, Vec<bool>)> = vec![
        ("new key", vec![set("a")], vec![false]),
        ("overwrite", vec![set("a")], vec![true]),
        (
            "set, del, del in one batch",
            vec![set("b"), del("b"), del("b")],
            vec![false, true, false],
        ),
        ("del of missing key", vec![del("nope")], vec![false]),
        ("del then set", vec![del("a"), set("a")], vec![true, false]),
        (
            "a long batch takes the hash-map path",
            long,
            (0..40).map(|i| i % 2 == 1).collect(),
        ),
    ];
    for (why, batch, want) in cases {
        let mut existed = Vec::new();
        s.write(&batch, &mut existed).expect("write");
        assert_eq!(existed, want, "{why}");
    }
    assert_eq!(get(&s, "a"), Some("v".into()));
    assert_eq!(get(&s, "b"), None);
    assert_eq!(get(&s, "x"), None);
    assert!(!s.contains(b"nope"));
    assert_eq!(s.len(), 1);
    assert_accounting(&s);
}

#[test]
fn oversize_key_or_value_applies_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (s, _) = open(&opts(dir.path()));
    let before = s.stats();
    let big_key = [b'k'; 65];
    let big_value = [b'v'; 1025];
    for (batch, want_key) in [
        (
            vec![
                Write::Set {
                    key: b"ok",
                    value: b"1",
                },
                Write::Set {
                    key: &big_key,
                    value: b"1",
                },
            ],
            true,
        ),
        (
            vec![
                Write::Set {
                    key: b"ok",
                    value: b"1",
                },
                Write::Set {
                    key: b"big",
                    value: &big_value,
                },
            ],
            false,
        ),
        (vec![Write::Del { key: &big_key }], true),
    ] {
        let mut existed = Vec::new();
        match s.write(&batch, &mut existed) {
            Err(Error::KeyTooLong { len: 65, limit: 64 }) if want_key => {}
            Err(Error::ValueTooLong {
                len: 1025,
                limit: 1024,
            }) if !want_key => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(existed.is_empty());
    }
    assert_eq!(get(&s, "ok"), None);
    assert_eq!(s.stats(), before);
    assert_eq!(log_bytes(dir.path()), 0);
}

#[test]
fn segments_rotate_at_their_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = small_segments(dir.path());
    let (s, _) = open(&o);
    for i in 0..40 {
        set(&s, &format!("key{i:02}"), "0123456789"); // 36-byte records
    }
    let st = s.stats();
    assert_eq!(st.keys, 40);
    assert_eq!(st.segments as usize, logs(dir.path()).len());
    assert!(st.segments >= 8, "{st:?}");
    for name in logs(dir.path()) {
        assert!(
            fs::metadata(dir.path().join(&name)).expect("stat").len() <= 200,
            "{name}"
        );
    }
    for i in 0..40 {
        assert_eq!(get(&s, &format!("key{i:02}")), Some("0123456789".into()));
    }
    assert_accounting(&s);
}

#[test]
fn a_batch_larger_than_a_segment_is_split_across_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (s, _) = open(&small_segments(dir.path()));
    let keys: Vec<String> = (0..30).map(|i| format!("k{i:02}")).collect();
    let batch: Vec<Write<'_>> = keys
        .iter()
        .map(|k| Write::Set {
            key: k.as_bytes(),
            value: b"value-value",
        })
        .collect();
    let mut existed = Vec::new();
    let ticket = s.write(&batch, &mut existed).expect("write");
    assert_eq!(ticket, 30);
    assert!(s.stats().segments > 3);
    for k in &keys {
        assert_eq!(get(&s, k), Some("value-value".into()));
    }
}

#[test]
fn reopen_recovers_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = small_segments(dir.path());
    let last = {
        let (s, report) = open(&o);
        assert_eq!(report, RecoveryReport::default());
        for i in 0..30 {
            set(&s, &format!("k{}", i % 10), &format!("v{i}"));
        }
        del(&s, "k3");
        s.stats().last_seq
    };
    let (s, report) = open(&o);
    assert_eq!(report.keys, 9);
    assert_eq!(report.records, 31);
    assert!(report.damage.is_empty());
    assert_eq!(s.stats().last_seq, last);
    for i in 0..10 {
        let want = (i != 3).then(|| format!("v{}", 20 + i));
        assert_eq!(get(&s, &format!("k{i}")), want);
    }
    // Sequence numbers go on from where they were.
    assert_eq!(set(&s, "k3", "back"), last + 1);
    assert_accounting(&s);
}

#[test]
fn closed_segments_get_hint_files_used_at_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = small_segments(dir.path());
    {
        let (s, _) = open(&o);
        for i in 0..40 {
            set(&s, &format!("key{i:02}"), "0123456789");
        }
        del(&s, "key07");
        // Dropping the store lets the maintenance thread finish the queued hint files.
    }
    let (s, report) = open(&o);
    // Every segment but the one that was active has a hint.
    assert_eq!(report.hinted_segments + 1, report.segments, "{report:?}");
    assert_eq!(report.keys, 39);
    assert_eq!(get(&s, "key07"), None);
    assert_eq!(get(&s, "key08"), Some("0123456789".into()));
    drop(s);
    // Now the previously active segment got its hint too (queued at the last start-up).
    let (_s, report) = open(&o);
    assert_eq!(report.hinted_segments, report.segments, "{report:?}");
}

#[test]
fn a_bad_hint_file_falls_back_to_a_scan() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = small_segments(dir.path());
    {
        let (s, _) = open(&o);
        for i in 0..20 {
            set(&s, &format!("key{i:02}"), &format!("value{i}"));
        }
    }
    drop(open(&o)); // hints for everything
    let hints: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hint"))
        .collect();
    assert!(hints.len() >= 3);
    flip_byte(&hints[0], 20); // checksum mismatch
    let short = fs::read(&hints[1]).expect("read hint");
    fs::write(&hints[1], &short[..short.len() / 2]).expect("cut hint");
    fs::write(&hints[2], b"").expect("empty hint");

    let (s, report) = open(&o);
    assert_eq!(report.hinted_segments + 3, report.segments, "{report:?}");
    assert!(report.damage.is_empty());
    for i in 0..20 {
        assert_eq!(get(&s, &format!("key{i:02}")), Some(format!("value{i}")));
    }
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = opts(dir.path());
    {
        let (s, _) = open(&o);
        set(&s, "k1", "v1"); // 25 bytes at 0
        set(&s, "k2", "v2"); // 25 bytes at 25
        set(&s, "k3", "v3"); // 25 bytes at 50
    }
    let seg = dir.path().join("000001.log");
    // A crash in the middle of the third append.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(60)
        .expect("truncate");
    let (s, report) = open(&o);
    assert_eq!(
        report.damage,
        vec![Damage {
            file: "000001.log".into(),
            offset: 50,
            action: DamageAction::Truncated { bytes: 10 },
        }]
    );
    assert_eq!(fs::metadata(&seg).expect("stat").len(), 50);
    assert_eq!(get(&s, "k1"), Some("v1".into()));
    assert_eq!(get(&s, "k2"), Some("v2".into()));
    assert_eq!(get(&s, "k3"), None);
    assert_accounting(&s);
    drop(s);
    // The cut is permanent: the next start-up finds nothing wrong.
    let (_s, report) = open(&o);
    assert!(report.damage.is_empty());
}

#[test]
fn a_bit_flip_in_a_middle_record_skips_only_that_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = opts(dir.path());
    {
        let (s, _) = open(&o);
        set(&s, "k1", "v1");
        set(&s, "k2", "v2");
        set(&s, "k3", "v3");
    }
    flip_byte(&dir.path().join("000001.log"), 25 + 24); // the value byte of k2's record
    let (s, report) = open(&o);
    assert_eq!(
        report.damage,
        vec![Damage {
            file: "000001.log".into(),
            offset: 25,
            action: DamageAction::SkippedRecord { bytes: 25 },
        }]
    );
    assert_eq!(get(&s, "k1"), Some("v1".into()));
    assert_eq!(get(&s, "k2"), None, "the damaged record is never returned");
    assert_eq!(get(&s, "k3"), Some("v3".into()));
    assert_eq!(s.stats().dead_bytes, 25);
    assert_accounting(&s);
}

#[test]
fn a_bit_flip_found_at_read_time_is_an_error_not_a_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (s, _) = open(&opts(dir.path()));
    set(&s, "a", "first");
    set(&s, "b", "second");
    flip_byte(&dir.path().join("000001.log"), 27 + 23); // inside b's value (a's record is 27 bytes)
    match s.get(b"b") {
        Err(Error::Corrupt { file, offset }) => {
            assert_eq!((file.as_str(), offset), ("000001.log", 27));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The caller's buffer is left as it was.
    let mut out = b"prefix".to_vec();
    assert!(s.get_into(b"b", &mut out).is_err());
    assert_eq!(out, b"prefix");
    assert!(s.get_into(b"a", &mut out).expect("a is fine"));
    assert_eq!(out, b"prefixfirst");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = opts(dir.path());
    let (s, _) = open(&o);
    match Store::open(o.clone()) {
        Err(Error::Locked(d)) => assert_eq!(d, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Dropping the last clone stops its threads and releases the lock.
    let clone = s.clone();
    drop(s);
    assert!(matches!(Store::open(o.clone()), Err(Error::Locked(_))));
    drop(clone);
    let _again = open(&o);
}

#[test]
fn close_syncs_refuses_writes_and_releases_the_lock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = StoreOptions {
        sync: SyncPolicy::Batch,
        ..opts(dir.path())
    };
    let (s, _) = open(&o);
    set(&s, "k", "v");
    s.close().expect("close");
    assert_eq!(s.stats().durable_seq, s.stats().last_seq);
    assert!(matches!(
        s.write(
            &[Write::Set {
                key: b"k",
                value: b"w"
            }],
            &mut Vec::new()
        ),
        Err(Error::Io { .. })
    ));
    assert!(s.compact().is_err());
    s.close().expect("closing twice is a no-op");
    s.sync().expect("sync after close is a no-op");
    assert_eq!(get(&s, "k"), Some("v".into()), "reads still work");
    let (other, _) = open(&o);
    assert_eq!(get(&other, "k"), Some("v".into()));
}

#[test]
fn compaction_keeps_exactly_the_live_data_and_shrinks_the_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = small_segments(dir.path());
    let (s, _) = open(&o);
    for round in 0..5 {
        for k in 0..20 {
            set(&s, &format!("k{k:02}"), &format!("round{round}"));
        }
    }
    for k in (0..20).step_by(3) {
        del(&s, &format!("k{k:02}"));
    }
    let before = s.stats();
    let bytes_before = log_bytes(dir.path());
    let report = s.compact().expect("compact");
    assert!(report.segments_in > 5, "{report:?}");
    assert!(report.bytes_out < report.bytes_in / 3, "{report:?}");
    let after = s.stats();
    assert!(log_bytes(dir.path()) < bytes_before);
    assert!(after.segments < before.segments);
    assert_eq!(after.live_bytes, before.live_bytes);
    assert_eq!(after.compactions, 1);
    assert_accounting(&s);
    let check = |s: &Store| {
        for k in 0..20 {
            let want = (k % 3 != 0).then(|| "round4".to_string());
            assert_eq!(get(s, &format!("k{k:02}")), want, "k{k:02}");
        }
        assert_eq!(s.len(), 13);
    };
    check(&s);
    // Compacting again with nothing dead copies the same bytes.
    let again = s.compact().expect("compact");
    assert_eq!(again.bytes_out, report.bytes_out);
    drop(s);
    let (s, report) = open(&o);
    assert!(report.damage.is_empty());
    check(&s);
    assert_accounting(&s);
}

#[test]
fn delete_then_compact_then_reopen_does_not_resurrect() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = small_segments(dir.path());
    let filler = |s: &Store| {
        for i in 0..6 {
            set(s, &format!("fill{i}"), "xxxxxxxxxxxxxxxxxxxx");
        }
    };
    {
        let (s, _) = open(&o);
        set(&s, "victim", "old value");
        set(&s, "keeper", "kept");
        filler(&s);
        assert!(del(&s, "victim")); // the tombstone lands in a later segment
        filler(&s); // and rotates out of the active segment
        s.compact().expect("compact");
        assert_eq!(get(&s, "victim"), None);
    }
    let (s, _) = open(&o);
    assert_eq!(get(&s, "victim"), None);
    assert_eq!(get(&s, "keeper"), Some("kept".into()));
}

/// Simulates crashes between compaction's steps by putting input files back after the fact:
/// all of them (crash before any deletion) or only the newest (crash after deleting the oldest
/// ones, which is the order compaction deletes in). Neither may bring back a deleted key or
/// lose a live one.
#[test]
fn a_crash_during_compaction_loses_and_resurrects_nothing() {
    for keep_from in [0usize, 1, 2, 3] {
        let dir = tempfile::tempdir().expect("temp dir");
        let o = small_segments(dir.path());
        let saved: Vec<(String, Vec<u8>)>;
        {
            let (s, _) = open(&o);
            set(&s, "victim", "old value");
            for i in 0..4 {
                set(&s, &format!("k{i}"), "first version of it");
            }
            // A first compaction moves the victim's value into a compaction output, so the
            // second compaction's inputs mix outputs and writer segments.
            s.compact().expect("first compact");
            del(&s, "victim");
            for i in 0..4 {
                set(&s, &format!("k{i}"), "second version");
            }
            set(&s, "last", "in the active segment");
            drop(s);
            let (s, _) = open(&o);
            let inputs = logs(dir.path());
            saved = inputs
                .iter()
                .map(|n| (n.clone(), fs::read(dir.path().join(n)).expect("read")))
                .collect();
            assert!(saved.len() >= 4, "{inputs:?}");
            s.compact().expect("compact");
        }
        // The "crash": inputs from the `keep_from`-th on were never deleted.
        for (name, bytes) in &saved[keep_from.min(saved.len())..] {
            fs::write(dir.path().join(name), bytes).expect("restore");
        }
        let (s, report) = open(&o);
        assert!(report.damage.is_empty());
        assert_eq!(get(&s, "victim"), None, "keep_from {keep_from}");
        for i in 0..4 {
            assert_eq!(get(&s, &format!("k{i}")), Some("second version".into()));
        }
        assert_eq!(get(&s, "last"), Some("in the active segment".into()));
        assert_accounting(&s);
        // And compacting the mixture tidies it up.
        s.compact().expect("compact again");
        assert_eq!(get(&s, "victim"), None);
        assert_accounting(&s);
    }
}

#[test]
fn compaction_concurrent_with_writers_and_readers_loses_nothing() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    let dir = tempfile::tempdir().expect("temp dir");
    let o = StoreOptions {
        segment_size_bytes: 512,
        ..opts(dir.path())
    };
    let (s, _) = open(&o);
    const WRITERS: usize = 2;
    const KEYS: usize = 20;
    const ROUNDS: usize = 150;
    let writers_done = AtomicBool::new(false);
    let compactions = AtomicU64::new(0);
    /// Stops the loops below even if a writer panics, so a failure fails instead of hanging.
    struct SetOnDrop<'a>(&'a AtomicBool);
    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Release);
        }
    }
    std::thread::scope(|scope| {
        // Compacts over and over for as long as the writers write, so swaps race with writes
        // to the same keys (a swap that ignored them would put old values back).
        scope.spawn(|| {
            while !writers_done.load(std::sync::atomic::Ordering::Acquire) {
                s.compact().expect("compact");
                compactions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        scope.spawn(|| {
            let mut i = 0;
            while !writers_done.load(std::sync::atomic::Ordering::Acquire) {
                let key = format!("w{}-k{}", i % WRITERS, i % KEYS);
                // Any version, or none yet: never an error, never a torn value.
                if let Some(v) = s.get(key.as_bytes()).expect("read during compaction") {
                    assert!(v.starts_with(b"r"), "{v:?}");
                }
                i += 1;
            }
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let s = s.clone();
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        for k in 0..KEYS {
                            let key = format!("w{w}-k{k}");
                            // Each writer owns its keys, so it knows what they must hold.
                            let want = round.checked_sub(1).map(|r| format!("r{r}"));
                            assert_eq!(get(&s, &key), want, "{key} before round {round}");
                            if round == ROUNDS - 1 && k % 5 == 0 {
                                del(&s, &key);
                            } else {
                                set(&s, &key, &format!("r{round}"));
                            }
                        }
                    }
                })
            })
            .collect();
        let _done = SetOnDrop(&writers_done);
        for w in writers {
            w.join().expect("writer");
        }
    });
    assert!(compactions.into_inner() > 0);
    let check = |s: &Store| {
        for w in 0..WRITERS {
            for k in 0..KEYS {
                let want = (k % 5 != 0).then(|| format!("r{}", ROUNDS - 1));
                assert_eq!(get(s, &format!("w{w}-k{k}")), want, "w{w}-k{k}");
            }
        }
    };
    check(&s);
    assert_accounting(&s);
    s.compact().expect("final compact");
    check(&s);
    assert_accounting(&s);
    drop(s);
    let (s, _) = open(&o);
    check(&s);
    assert_accounting(&s);
}

#[test]
fn sync_always_resolves_waiters_by_group_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = StoreOptions {
        sync: SyncPolicy::Always,
        ..opts(dir.path())
    };
    let (s, _) = open(&o);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ticket = set(&s, "a", "1");
    rt.block_on(s.wait_durable(ticket)).expect("durable");
    assert!(s.stats().durable_seq >= ticket);

    // Many writers from many threads: every ticket resolves.
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = s.clone();
            scope.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                for i in 0..25 {
                    let ticket = set(&s, &format!("t{t}-{i}"), "v");
                    rt.block_on(s.wait_durable(ticket)).expect("durable");
                }
            });
        }
    });
    let st = s.stats();
    assert_eq!(st.keys, 101);
    assert_eq!(st.durable_seq, st.last_seq);
}

#[test]
fn sync_batch_and_never_return_at_once_and_sync_catches_up() {
    for policy in [SyncPolicy::Batch, SyncPolicy::Never] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (s, _) = open(&StoreOptions {
            sync: policy,
            sync_interval_ms: 60_000,
            ..opts(dir.path())
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let ticket = set(&s, "a", "1");
        rt.block_on(s.wait_durable(ticket))
            .expect("returns at once");
        assert_eq!(s.stats().durable_seq, 0, "{policy:?}: no fsync yet");
        s.sync().expect("sync");
        assert_eq!(s.stats().durable_seq, ticket);
    }
}

#[test]
fn a_poisoned_store_refuses_writes_and_waiters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (s, _) = open(&StoreOptions {
        sync: SyncPolicy::Always,
        ..opts(dir.path())
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ticket = set(&s, "a", "1");
    rt.block_on(s.wait_durable(ticket)).expect("durable");
    // What a failed fsync does (a real one is hard to provoke in a test).
    s.core().poison();
    assert!(matches!(
        s.write(
            &[Write::Set {
                key: b"b",
                value: b"2"
            }],
            &mut Vec::new()
        ),
        Err(Error::Poisoned)
    ));
    assert!(matches!(
        rt.block_on(s.wait_durable(ticket + 1)),
        Err(Error::Poisoned)
    ));
    rt.block_on(s.wait_durable(ticket))
        .expect("already durable stays durable");
    assert!(matches!(s.sync(), Err(Error::Poisoned)));
    assert_eq!(get(&s, "a"), Some("1".into()), "reads go on");
}

#[test]
fn background_compaction_runs_on_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = StoreOptions {
        compaction: CompactionOptions {
            auto: true,
            min_dead_ratio: 0.5,
            min_dead_bytes: 100,
            check_interval_ms: 1,
        },
        ..small_segments(dir.path())
    };
    let (s, _) = open(&o);
    for round in 0..10 {
        for k in 0..5 {
            set(&s, &format!("k{k}"), &format!("round{round}"));
        }
    }
    // Waits for an observable event (with a generous bound), not for a guessed duration.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.stats().compactions == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background compaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for k in 0..5 {
        assert_eq!(get(&s, &format!("k{k}")), Some("round9".into()));
    }
}

#[test]
fn options_the_format_cannot_honour_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for o in [
        StoreOptions {
            segment_size_bytes: 0,
            ..opts(dir.path())
        },
        StoreOptions {
            segment_size_bytes: 1 << 32,
            ..opts(dir.path())
        },
        StoreOptions {
            max_value_bytes: usize::MAX / 2,
            ..opts(dir.path())
        },
    ] {
        match Store::open(o) {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput);
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
}

#[test]
fn leftovers_are_tidied_at_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = opts(dir.path());
    {
        let (s, _) = open(&o);
        set(&s, "k", "v");
    }
    let d = dir.path();
    fs::write(d.join("000001_001.log.tmp"), b"half a compaction").expect("write");
    fs::write(d.join("000001_001.hint.tmp"), b"half a hint").expect("write");
    fs::write(d.join("000009.hint"), b"hint without segment").expect("write");
    fs::write(d.join("000005.log"), b"").expect("empty segment");
    fs::write(d.join("README"), b"not ours").expect("write");
    let (s, report) = open(&o);
    assert!(report.damage.is_empty());
    assert_eq!(get(&s, "k"), Some("v".into()));
    drop(s); // lets the maintenance thread finish 000001.hint
    let mut names: Vec<String> = fs::read_dir(d)
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    // 000001.log is the data (with the hint written after the restart); 000006.log the new
    // active segment; LOCK and README stay.
    assert_eq!(
        names,
        ["000001.hint", "000001.log", "000006.log", "LOCK", "README"]
    );
}

/// Fuzz-ish: whatever bytes the segment and hint files hold, `open` does not panic, and every
/// key it indexes reads back as a value or an error.
#[test]
fn garbage_files_never_panic() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut valid = Vec::new();
    for i in 0..20u64 {
        record::encode(
            &mut valid,
            i + 1,
            i % 4 == 3,
            format!("k{i}").as_bytes(),
            b"value",
        );
    }
    for case in 0..60 {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut bytes = match case % 4 {
            0 => (0..rand() % 2000)
                .map(|_| rand() as u8)
                .collect::<Vec<u8>>(),
            1 => valid[..(rand() as usize % valid.len())].to_vec(),
            2 => {
                let mut b = valid.clone();
                for _ in 0..3 {
                    let i = rand() as usize % b.len();
                    b[i] = rand() as u8;
                }
                b
            }
            _ => {
                // Absurd lengths in an otherwise fine header.
                let mut b = valid.clone();
                let at = 13 + 4 * (rand() as usize % 2);
                b[at..at + 4].copy_from_slice(&(rand() as u32 | 0x8000_0000).to_le_bytes());
                b
            }
        };
        if case == 0 {
            bytes.clear();
        }
        fs::write(dir.path().join("000001.log"), &bytes).expect("write");
        if case % 3 == 0 {
            let hint: Vec<u8> = (0..rand() % 300).map(|_| rand() as u8).collect();
            fs::write(dir.path().join("000001.hint"), hint).expect("write");
        }
        let (s, report) = open(&small_segments(dir.path()));
        for i in 0..20 {
            let _ = s.get(format!("k{i}").as_bytes());
        }
        assert!(report.keys <= 20);
        assert_accounting(&s);
        s.compact().expect("compaction of whatever survived");
        assert_accounting(&s);
    }
}

#[test]
fn lowering_the_limits_keeps_stored_records() {
    let dir = tempfile::tempdir().unwrap();
    let o = small_segments(dir.path());
    let (s, _) = open(&o);
    let long = "v".repeat(900);
    set(&s, "long", &long);
    set(&s, "short", "x");
    s.close().unwrap();
    drop(s);
    // The limits bound new writes only; what is on disk stays readable, through the hint files
    // and through a full scan alike.
    let lowered = StoreOptions {
        max_key_bytes: 8,
        max_value_bytes: 16,
        ..o
    };
    for pass in ["with hints", "without hints"] {
        if pass == "without hints" {
            for entry in fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "hint") {
                    fs::remove_file(path).unwrap();
                }
            }
        }
        let (s, report) = open(&lowered);
        assert!(report.damage.is_empty(), "{pass}: {:?}", report.damage);
        assert_eq!(get(&s, "long").as_deref(), Some(long.as_str()), "{pass}");
        assert_eq!(get(&s, "short").as_deref(), Some("x"), "{pass}");
        assert!(matches!(
            s.write(
                &[Write::Set {
                    key: b"k",
                    value: long.as_bytes()
                }],
                &mut Vec::new()
            ),
            Err(Error::ValueTooLong { .. })
        ));
        s.close().unwrap();
    }
}
