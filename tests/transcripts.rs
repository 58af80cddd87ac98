//! Golden transcripts: scripted `nc`-style sessions against the real server.
//!
//! Each `tests/transcripts/*.txt` is a story: request lines, `# why` comments, and a few
//! directives. The runner sends each line, records `> request` and `< reply`, and insta compares
//! the transcript with the stored snapshot. Directives:
//!
//! * `@restart` — stop the server with `kill`, check it exited with status 0, start it again on the
//!   same data directory, and reconnect;
//! * `@crash` — SIGKILL the server (no flush, no sync), start it again, and reconnect;
//! * `@reconnect` — open a new connection;
//! * `@fill <count> <key> <bytes>` — set `key` `count` times to values of `bytes` bytes, recording
//!   one summary line (to grow the log without a thousand-line transcript);
//! * `@raw <bytes>` — send bytes with Rust-style escapes (`\xff`, `\r`, `\n`, `\t`, `\\`) and record
//!   one reply line.
//!
//! A reply `DUMP <n>` is followed by its n lines.

mod common;

use common::{Client, ServerProcess, config};

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.bytes();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).expect("hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            }
            Some(other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    out
}

fn run_script(script: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = config("always", "");
    let mut server = ServerProcess::start(dir.path(), &data, &config);
    let mut client = server.client();
    let mut transcript = String::new();
    for line in script.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            transcript.push_str(line);
            transcript.push('\n');
            continue;
        }
        match line
            .split_once(' ')
            .map_or((line, ""), |(d, rest)| (d, rest))
        {
            ("@restart", _) => {
                let reply = client.request("kill");
                let status = server.wait_exit();
                let code = status
                    .code()
                    .map_or("killed by a signal".into(), |c| c.to_string());
                transcript.push_str(&format!("@restart: {reply}; exit status {code}\n"));
                server = ServerProcess::start(dir.path(), &data, &config);
                client = server.client();
            }
            ("@crash", _) => {
                server.kill9();
                transcript.push_str("@crash: killed with SIGKILL\n");
                server = ServerProcess::start(dir.path(), &data, &config);
                client = server.client();
            }
            ("@reconnect", _) => {
                transcript.push_str("@reconnect\n");
                client = Client::connect(server.addr);
            }
            ("@fill", args) => {
                let args: Vec<&str> = args.split_whitespace().collect();
                let [count, key, len] = args[..] else {
                    panic!("@fill <count> <key> <bytes>")
                };
                let count: usize = count.parse().expect("count");
                let len: usize = len.parse().expect("bytes");
                let mut ok = 0;
                for i in 0..count {
                    // Values differ per write so each one is a real new record.
                    let digit = char::from(b'a' + (i % 26) as u8);
                    let value = digit.to_string().repeat(len);
                    if client.request(&format!("set {key} {value}")) == "OK" {
                        ok += 1;
                    }
                }
                transcript.push_str(&format!(
                    "@fill: {ok} of {count} sets of {key} answered OK\n"
                ));
            }
            ("@raw", bytes) => {
                client.send_raw(&unescape(bytes)).expect("send");
                let reply = client.read_line().expect("reply");
                transcript.push_str(&format!("> {bytes}\n< {reply}\n"));
            }
            _ => {
                let reply = client
                    .try_request(line)
                    .unwrap_or_else(|e| format!("<{e}>"));
                transcript.push_str(&format!("> {line}\n< {reply}\n"));
                // `dump` answers `DUMP <n>` and then n more lines.
                let more = reply.strip_prefix("DUMP ").and_then(|n| n.parse().ok());
                for _ in 0..more.unwrap_or(0) {
                    let next = client.read_line().expect("dump line");
                    transcript.push_str(&format!("< {next}\n"));
                }
            }
        }
    }
    transcript
}

#[test]
fn transcripts() {
    insta::glob!("transcripts/*.txt", |path| {
        let script = std::fs::read_to_string(path).expect("read script");
        let transcript = run_script(&script);
        insta::with_settings!({
            filters => vec![(r"uptime_s=\d+", "uptime_s=[uptime]")],
            description => "requests sent to a real dkvs server and the replies it gave",
            omit_expression => true,
        }, {
            insta::assert_snapshot!(transcript);
        });
    });
}
