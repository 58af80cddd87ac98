//! `dkvs check` as users run it: verdict lines, exit statuses, JSON, and the foreign formats.

use std::path::Path;
use std::process::Command;

fn check(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dkvs"));
    command.arg("check").args(args);
    let output = match stdin {
        None => command.output().expect("run dkvs check"),
        Some(text) => {
            use std::io::Write;
            use std::process::Stdio;
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run dkvs check");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
            child.wait_with_output().expect("wait")
        }
    };
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn corpus(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/porcupine")
        .join(file)
        .display()
        .to_string()
}

const STALE: &str = r#"{"event":"invoke","id":1,"client":1,"time_ns":1000,"op":"set","key":"x","value":"1"}
{"event":"return","id":1,"client":1,"time_ns":2000,"result":"ok"}
{"event":"invoke","id":2,"client":2,"time_ns":3000,"op":"get","key":"x"}
{"event":"return","id":2,"client":2,"time_ns":4000,"result":"not_found"}
"#;

#[test]
fn a_stale_read_is_reported_with_its_operations() {
    let (code, out, _) = check(&["--model", "linearizable", "-"], Some(STALE));
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("NOT linearizable on key \"x\":\n"), "{out}");
    assert!(out.contains("client 1  set x 1"), "{out}");
    assert!(
        out.contains("NOT_FOUND   ← began after `set x 1` had returned"),
        "{out}"
    );
    // Sequential consistency ignores real time: the same history passes.
    let (code, out, _) = check(&["--model", "sequential", "-"], Some(STALE));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("sequential: 2 operations, 2 clients, 1 key — OK"),
        "{out}"
    );
}

#[test]
fn json_verdicts_are_machine_readable() {
    let (code, out, _) = check(&["--json", "-"], Some(STALE));
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["verdict"], "violation");
    assert_eq!(v["model"], "linearizable");
    assert_eq!(v["key"], "x");
    assert_eq!(v["ops"].as_array().map(Vec::len), Some(2));
}

#[test]
fn foreign_formats_are_read_and_judged() {
    let cases = [
        (
            vec!["--format", "jepsen-log"],
            "jepsen-etcd/etcd_002.log",
            0,
        ),
        (
            vec!["--format", "jepsen-log"],
            "jepsen-etcd/etcd_003.log",
            1,
        ),
        (vec!["--format", "jepsen-edn"], "kv/c10-bad.txt", 1),
        (vec![], "kv/c10-ok.txt", 0), // recognised from the first line
    ];
    for (flags, file, expected) in cases {
        let path = corpus(file);
        let mut args: Vec<&str> = flags.clone();
        args.push(&path);
        let (code, out, err) = check(&args, None);
        assert_eq!(code, expected, "{file}: {out}{err}");
    }
}

#[test]
fn bad_input_exits_2_and_names_the_line() {
    let cases = [
        ("{\"event\":\"invoke\"}\n", "line 1"),
        ("hello\n", "cannot tell the format"),
    ];
    for (text, expected) in cases {
        let (code, out, err) = check(&["-"], Some(text));
        assert_eq!(code, 2, "{text:?}: {out}{err}");
        assert!(
            err.starts_with("error: -: ") && err.contains(expected),
            "{err}"
        );
    }
    // The convergence check needs replica contents.
    let (code, _, err) = check(&["--model", "eventual", "-"], Some(STALE));
    assert_eq!(code, 2);
    assert!(err.contains("replica"), "{err}");
    let (code, _, err) = check(&["/nonexistent/h.jsonl"], None);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn an_exhausted_budget_exits_3_and_says_so() {
    // Twenty concurrent appends and a read no order can produce: hopeless to search fully.
    let mut text = String::new();
    for i in 0..20u64 {
        text.push_str(&format!(
            "{{\"event\":\"invoke\",\"id\":{i},\"client\":{i},\"time_ns\":{i},\"op\":\"append\",\"key\":\"x\",\"value\":\"{}\"}}\n",
            (b'a' + i as u8) as char
        ));
    }
    for i in 0..20u64 {
        text.push_str(&format!(
            "{{\"event\":\"return\",\"id\":{i},\"client\":{i},\"time_ns\":{},\"result\":\"ok\"}}\n",
            1000 + i
        ));
    }
    text.push_str("{\"event\":\"invoke\",\"id\":99,\"client\":99,\"time_ns\":2000,\"op\":\"get\",\"key\":\"x\"}\n");
    text.push_str("{\"event\":\"return\",\"id\":99,\"client\":99,\"time_ns\":2001,\"result\":\"value\",\"value\":\"zz\"}\n");
    let (code, out, _) = check(&["--memory-limit-mib", "1", "-"], Some(&text));
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("UNKNOWN: memory limit reached"), "{out}");
}
