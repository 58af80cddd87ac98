//! Start-up failures a user will meet: each must be one clear line and exit status 1, never a
//! panic or a backtrace. And the clean ways to stop: `kill`, SIGTERM.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ServerProcess, binary, config};

/// `serve` with the config at `config`, listening on `listen`, keeping data in `data`.
fn serve_args<'a>(config: &'a Path, listen: &'a str, data: &'a Path) -> [&'a str; 7] {
    let path = |p: &'a Path| p.to_str().expect("temporary paths are UTF-8");
    [
        "serve",
        "--config",
        path(config),
        "--listen",
        listen,
        "--data-dir",
        path(data),
    ]
}

fn fails_with(args: &[&str], want: &[&str]) {
    let output = Command::new(binary())
        .args(args)
        .output()
        .expect("run dkvs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    for needle in want {
        assert!(last.contains(needle), "{last:?} should contain {needle:?}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_config_file() {
    fails_with(
        &["serve", "--config", "/nonexistent/dkvs.toml"],
        &["/nonexistent/dkvs.toml"],
    );
}

#[test]
fn unknown_key_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, config("always", "").replace("sync =", "synk =")).unwrap();
    fails_with(
        &["serve", "--config", path.to_str().unwrap()],
        &["typo.toml", "synk"],
    );
}

#[test]
fn bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config("sometimes", "")).unwrap();
    fails_with(
        &["serve", "--config", path.to_str().unwrap()],
        &["bad.toml", "sometimes"],
    );
}

#[test]
fn taken_port() {
    let dir = tempfile::tempdir().unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let path = dir.path().join("dkvs.toml");
    std::fs::write(&path, config("always", "")).unwrap();
    let data = dir.path().join("data");
    fails_with(
        &serve_args(&path, &addr, &data),
        &["cannot listen on", &addr],
    );
}

#[test]
fn unwritable_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dkvs.toml");
    std::fs::write(&path, config("always", "")).unwrap();
    // A folder below a regular file cannot be created, even by root.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let data = blocker.join("data");
    fails_with(&serve_args(&path, "127.0.0.1:0", &data), &["a-file"]);
}

#[test]
fn data_dir_in_use_by_another_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _first = ServerProcess::start(dir.path(), &data, &config("always", ""));
    let path = dir.path().join("dkvs-1.toml");
    fails_with(&serve_args(&path, "127.0.0.1:0", &data), &["in use"]);
}

#[test]
fn kill_command_and_sigterm_exit_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(dir.path(), &data, &config("never", ""));
    let mut other = server.client();
    assert_eq!(other.request("set before kill"), "OK");
    assert_eq!(server.client().request("kill"), "OK shutting down");
    let status = server.wait_exit();
    assert!(status.success(), "{status}; log:\n{}", server.log());
    // Other connections are closed, not left hanging.
    assert!(other.try_request("ping").is_err());

    // Even with sync = "never", a clean stop syncs: the write is there after a restart.
    let mut server = ServerProcess::start(dir.path(), &data, &config("never", ""));
    assert_eq!(server.client().request("get before"), "VALUE kill");
    assert_eq!(server.client().request("set after sigterm"), "OK");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert!(status.success(), "{status}; log:\n{}", server.log());
    let server = ServerProcess::start(dir.path(), &data, &config("never", ""));
    assert_eq!(server.client().request("get after"), "VALUE sigterm");
}
