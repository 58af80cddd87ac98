//! Damage on disk, seen through the real server: a torn tail is reported and cut off, a flipped
//! byte is never served as a value, and everything before the damage survives.

mod common;

use std::path::{Path, PathBuf};

use common::{ServerProcess, config};

/// Segment files, oldest first.
fn segments(data: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(data)
        .expect("data dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Writes `keys` through a fresh server, then stops it cleanly.
fn write_and_stop(dir: &Path, data: &Path, keys: &[(String, String)]) {
    let mut server = ServerProcess::start(dir, data, &config("always", ""));
    let mut client = server.client();
    for (k, v) in keys {
        assert_eq!(client.request(&format!("set {k} {v}")), "OK");
    }
    assert_eq!(client.request("kill"), "OK shutting down");
    assert!(server.wait_exit().success());
}

fn keys(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("key{i}"), format!("value-{i}-{}", "x".repeat(i))))
        .collect()
}

#[test]
fn torn_tail_is_reported_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = keys(20);
    write_and_stop(dir.path(), &data, &keys);

    // Tear the last record, as a crash in the middle of its write would.
    let newest = segments(&data)
        .into_iter()
        .rev()
        .find(|p| p.metadata().unwrap().len() > 0);
    let newest = newest.expect("a non-empty segment");
    let len = newest.metadata().unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);

    let server = ServerProcess::start(dir.path(), &data, &config("always", ""));
    let log = server.log();
    let name = newest.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        log.lines()
            .any(|l| l.contains(&name) && l.to_lowercase().contains("truncat")),
        "start-up must report the truncation of {name}:\n{log}"
    );
    let mut client = server.client();
    let (last, everything_before) = keys.split_last().unwrap();
    for (k, v) in everything_before {
        assert_eq!(client.request(&format!("get {k}")), format!("VALUE {v}"));
    }
    assert_eq!(client.request(&format!("get {}", last.0)), "NOT_FOUND");
    // The store is healthy again: new writes work and survive a restart without new damage.
    assert_eq!(client.request("set after repair"), "OK");
    drop(client);
    drop(server);
    let server = ServerProcess::start(dir.path(), &data, &config("always", ""));
    assert_eq!(server.client().request("get after"), "VALUE repair");
}

#[test]
fn flipped_byte_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = keys(10);
    write_and_stop(dir.path(), &data, &keys);

    // Flip one byte inside the value of a record in the middle of the log.
    let (victim_key, victim_value) = &keys[4];
    let mut flipped = None;
    for segment in segments(&data) {
        let mut bytes = std::fs::read(&segment).unwrap();
        if let Some(at) = bytes
            .windows(victim_value.len())
            .position(|w| w == victim_value.as_bytes())
        {
            bytes[at + 3] ^= 0x20;
            std::fs::write(&segment, &bytes).unwrap();
            flipped = Some(segment);
            break;
        }
    }
    let flipped = flipped.expect("the value is in some segment");

    let server = ServerProcess::start(dir.path(), &data, &config("always", ""));
    let mut client = server.client();
    for (k, v) in &keys {
        let reply = client.request(&format!("get {k}"));
        if k == victim_key {
            // Either start-up skipped the record (and said so), or the read-time checksum caught
            // it; the damaged bytes are never returned as a value.
            assert!(!reply.starts_with("VALUE"), "corrupt value served: {reply}");
            let name = flipped.file_name().unwrap().to_string_lossy().into_owned();
            let said = server.log().contains(&name) || reply.contains(&name);
            assert!(
                said,
                "the damage in {name} must be reported: {reply}\n{}",
                server.log()
            );
        } else {
            assert_eq!(
                reply,
                format!("VALUE {v}"),
                "records around the damage are kept"
            );
        }
    }
}
