//! Clusters of real processes, one per node, connected by tarpc: each replicated mode under a
//! concurrent workload is judged by the checker of the level it promises, and each rung's
//! lesson — the weaker mode really is weaker — is shown on a constructed scenario.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, PATIENCE, ServerProcess};
use dkvs::check::{
    Budget, History, HistoryRecorder, Op, Outcome, Verdict, eventual, linearizable, sequential,
};
use dkvs::workload::WorkloadOptions;

const NODES: u32 = 3;

/// A port that was free a moment ago (the peers' addresses must be in the config up front).
/// Taken below Linux's ephemeral range (32768 and up), so a server binding port 0 for its client
/// listener cannot grab it before its owner does; spread by process id across test binaries.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_700;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A three-node config; `faults` is extra TOML (e.g. `[[faults.links]]` tables).
fn cluster_config(mode: &str, tob: &str, faults: &str) -> String {
    let mut text = format!(
        "mode = \"{mode}\"\ntob = \"{tob}\"\n[storage]\nsync = \"never\"\n\
         [replication]\nretry_interval_ms = 100\ntick_interval_ms = 20\n"
    );
    for id in 1..=NODES {
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\nclient = \"127.0.0.1:1\"\npeer = \"127.0.0.1:{}\"\n",
            free_port()
        ));
    }
    text.push_str(faults);
    text
}

/// Starts every node of `config` and waits until each serves clients (a node of an ordered
/// mode first makes contact with the others); they are killed when the returned values drop.
fn start(config: &str) -> (tempfile::TempDir, Vec<ServerProcess>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes: Vec<ServerProcess> = (1..=NODES)
        .map(|id| {
            ServerProcess::start_node(
                dir.path(),
                &dir.path().join(format!("node{id}")),
                config,
                id,
            )
        })
        .collect();
    for node in &nodes {
        let mut client = node.client();
        let deadline = Instant::now() + PATIENCE;
        while client
            .request("get readiness-probe")
            .starts_with("ERR not ready")
        {
            assert!(
                Instant::now() < deadline,
                "node never became ready:\n{}",
                node.log()
            );
            thread::sleep(Duration::from_millis(20)); // polling a condition, with a deadline
        }
    }
    (dir, nodes)
}

/// Sends `op` as a text line and turns the reply into an outcome.
fn perform(client: &mut Client, op: &Op) -> Outcome {
    let reply = client.request(&dkvs::workload::line(op));
    let outcome = dkvs::workload::outcome(&reply);
    assert_ne!(outcome, Outcome::Fail, "unexpected reply {reply:?} to {op}");
    outcome
}

/// `dkvs workload` against the nodes: `clients` concurrent clients, client `c` talking to node
/// `c % 3`, then every node's contents recorded for the convergence check.
fn workload(nodes: &[ServerProcess], clients: u64, ops: u64) -> HistoryRecorder {
    dkvs::workload::run(&WorkloadOptions {
        nodes: nodes.iter().map(|n| n.addr).collect(),
        clients,
        ops,
        keys: 3,
        seed: 7,
        timeout: PATIENCE,
    })
}

fn history(recorder: &HistoryRecorder) -> History {
    recorder.history().expect("well-formed history")
}

#[test]
fn eventual_replicas_converge_under_concurrent_writes() {
    let (_dir, nodes) = start(&cluster_config("eventual", "sequencer", ""));
    let recorder = workload(&nodes, 6, 60);
    assert_eq!(
        eventual::check(&history(&recorder)).unwrap(),
        Verdict::Consistent
    );
}

#[test]
fn ordered_modes_pass_their_checkers() {
    for (mode, tob) in [
        ("sequential", "sequencer"),
        ("sequential", "lamport"),
        ("linearizable", "sequencer"),
        ("linearizable", "lamport"),
    ] {
        let (_dir, nodes) = start(&cluster_config(mode, tob, ""));
        let recorder = workload(&nodes, 6, 40);
        let h = history(&recorder);
        let verdict = if mode == "linearizable" {
            linearizable::check(&h, &Budget::default())
        } else {
            sequential::check(&h, &Budget::default())
        };
        assert_eq!(verdict, Verdict::Consistent, "{mode} with tob = {tob}");
        // Every replica applied the same writes.
        assert_eq!(
            eventual::check(&history(&recorder)).unwrap(),
            Verdict::Consistent,
            "{mode} with tob = {tob}"
        );
    }
}

#[test]
fn sequential_allows_a_stale_read_that_linearizable_forbids() {
    // The lesson of stage 03: reads are local. Node 3 is cut off, so it never hears of the
    // write, yet it answers a read that starts after the write was acknowledged.
    let (_dir, nodes) = start(&cluster_config("sequential", "sequencer", ""));
    assert!(
        nodes[2]
            .client()
            .request("fault partition 1 2")
            .starts_with("OK faults: node 1: partitioned")
    );
    let recorder = HistoryRecorder::new();
    let (mut writer, mut reader) = (nodes[0].client(), nodes[2].client());
    let set = Op::Set {
        key: "x".into(),
        value: "1".into(),
    };
    let id = recorder.invoke(1, set.clone());
    let outcome = perform(&mut writer, &set);
    recorder.complete(id, outcome);
    let get = Op::Get { key: "x".into() };
    let id = recorder.invoke(2, get.clone());
    let outcome = perform(&mut reader, &get);
    assert_eq!(outcome, Outcome::NotFound, "node 3 serves its stale state");
    recorder.complete(id, outcome);
    let h = history(&recorder);
    assert_eq!(
        sequential::check(&h, &Budget::default()),
        Verdict::Consistent
    );
    let Verdict::Violation(v) = linearizable::check(&h, &Budget::default()) else {
        panic!("a stale read must not be linearizable");
    };
    assert!(v.reason.starts_with("stale read"), "{}", v.reason);
}

#[test]
fn eventual_allows_a_history_no_sequential_order_explains() {
    // The lesson of stage 02: with nodes 1 and 2 unable to talk, each applies its own write
    // and reads the other key from its own state.
    let faults = "[[faults.links]]\nnode = 1\npeer = 2\npartitioned = true\n\
                  [[faults.links]]\nnode = 2\npeer = 1\npartitioned = true\n\
                  [[faults.links]]\nnode = 3\npeer = 1\npartitioned = true\n\
                  [[faults.links]]\nnode = 3\npeer = 2\npartitioned = true\n";
    let (_dir, nodes) = start(&cluster_config("eventual", "sequencer", faults));
    let recorder = HistoryRecorder::new();
    let (mut a, mut b) = (nodes[0].client(), nodes[1].client());
    let steps = [
        (
            1,
            &mut a,
            Op::Set {
                key: "x".into(),
                value: "a".into(),
            },
        ),
        (
            2,
            &mut b,
            Op::Set {
                key: "y".into(),
                value: "b".into(),
            },
        ),
    ];
    for (client, conn, op) in steps {
        let id = recorder.invoke(client, op.clone());
        let outcome = perform(conn, &op);
        recorder.complete(id, outcome);
    }
    for (client, conn, key) in [(1, &mut a, "y"), (2, &mut b, "x")] {
        let op = Op::Get { key: key.into() };
        let id = recorder.invoke(client, op.clone());
        let outcome = perform(conn, &op);
        assert_eq!(outcome, Outcome::NotFound);
        recorder.complete(id, outcome);
    }
    let Verdict::Violation(v) = sequential::check(&history(&recorder), &Budget::default()) else {
        panic!("each client missing the other's write has no sequential explanation");
    };
    assert_eq!(v.ops.len(), 4, "{v:?}");
}

/// One parsed line of a `trace` stream.
fn trace_event(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON trace line: {line:?}: {e}"))
}

/// Reads `client`'s trace stream until an event satisfies `until`; returns every event read.
fn read_trace_until(
    client: &mut Client,
    until: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    loop {
        let line = client.read_line().expect("trace stream");
        assert!(!line.is_empty(), "trace stream closed; got {events:#?}");
        let event = trace_event(&line);
        let done = until(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

#[test]
fn trace_streams_a_write_as_it_flows_between_nodes() {
    let (_dir, nodes) = start(&cluster_config("sequential", "sequencer", ""));
    let mut streams: Vec<Client> = nodes
        .iter()
        .map(|n| {
            let mut c = n.client();
            let ok = c.request("trace");
            assert!(ok.starts_with("OK tracing node"), "{ok}");
            c
        })
        .collect();
    assert_eq!(nodes[0].client().request("set traced 42"), "OK");

    // Node 1 (the sequencer) takes the request, numbers it, sends it to both others, applies
    // it and answers.
    let on_1 = read_trace_until(&mut streams[0], |e| e["kind"] == "client_reply");
    let kinds: Vec<&str> = on_1.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"client_request"), "{on_1:#?}");
    let id = on_1
        .iter()
        .find(|e| e["kind"] == "apply")
        .map(|e| e["msg_id"].clone())
        .expect("node 1 applies the write");
    for peer in [2, 3] {
        assert!(
            on_1.iter().any(|e| e["kind"] == "send"
                && e["peer"] == peer
                && e["message"] == "ordered"
                && e["msg_id"] == id),
            "node 1 sends the ordered write to node {peer}: {on_1:#?}"
        );
    }
    // Nodes 2 and 3 receive the same message from node 1, then deliver and apply it.
    for (node, stream) in (1..).zip(streams.iter_mut()).skip(1) {
        let events = read_trace_until(stream, |e| e["kind"] == "apply" && e["msg_id"] == id);
        let received = events
            .iter()
            .position(|e| e["kind"] == "receive" && e["peer"] == 1 && e["msg_id"] == id)
            .unwrap_or_else(|| panic!("node {node} never received it: {events:#?}"));
        let delivered = events
            .iter()
            .position(|e| e["kind"] == "deliver" && e["msg_id"] == id)
            .unwrap_or_else(|| panic!("node {node} never delivered it: {events:#?}"));
        assert!(received < delivered, "{events:#?}");
        assert!(events.iter().all(|e| e["node"] == node), "{events:#?}");
        // Lamport time never goes backwards on one node.
        let times: Vec<u64> = events
            .iter()
            .filter_map(|e| e["lamport"].as_u64())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
}

#[test]
fn a_slow_trace_subscriber_loses_events_but_never_slows_the_node() {
    let (_dir, nodes) = start(&cluster_config("sequential", "sequencer", ""));
    // A subscriber that stops reading: once the socket buffers fill, its events must be
    // dropped and counted, while the node goes on answering.
    let mut slow = nodes[0].client();
    assert!(slow.request("trace").starts_with("OK tracing"));
    let writers = 4;
    let per_writer = 2_500;
    thread::scope(|scope| {
        for w in 0..writers {
            let node = &nodes[0];
            scope.spawn(move || {
                let mut client = node.client();
                for i in 0..per_writer {
                    assert_eq!(client.request(&format!("set w{w} {i}")), "OK");
                }
            });
        }
    });
    assert_eq!(nodes[0].client().request("set last done"), "OK");
    // Now read: somewhere there is a gap, counted, and the stream goes on to the last write.
    let mut lost = 0;
    loop {
        let line = slow.read_line().expect("trace stream");
        assert!(!line.is_empty(), "trace stream closed");
        let event = trace_event(&line);
        if let Some(n) = event["lost"].as_u64() {
            assert!(n > 0);
            lost += n;
        } else if event["kind"] == "client_request"
            && event["detail"]
                .as_str()
                .is_some_and(|d| d.contains("set last"))
        {
            break;
        }
    }
    assert!(
        lost > 0,
        "a subscriber that did not read for {writers}×{per_writer} writes lost nothing"
    );
}

#[test]
fn dump_and_digest_show_what_each_replica_holds() {
    // Node 3 is cut off: its digest differs until the partition heals.
    let (_dir, nodes) = start(&cluster_config("eventual", "sequencer", ""));
    let digest = |n: &ServerProcess| n.client().request("digest");
    for n in &nodes[..2] {
        n.client().request("fault partition 3");
    }
    nodes[2].client().request("fault partition 1 2");
    let mut c = nodes[0].client();
    assert_eq!(c.request("set a 1"), "OK");
    assert_eq!(c.request("set b two words"), "OK");
    assert_eq!(c.request("del a"), "OK");
    let deadline = Instant::now() + PATIENCE;
    while digest(&nodes[0]) != digest(&nodes[1]) {
        assert!(Instant::now() < deadline, "nodes 1 and 2 never agreed");
        thread::sleep(Duration::from_millis(20)); // polling a condition, with a deadline
    }
    assert_ne!(digest(&nodes[0]), digest(&nodes[2]));
    assert_eq!(digest(&nodes[2]), "DIGEST cbf29ce484222325 keys=0");

    let mut c = nodes[1].client();
    assert_eq!(c.request("dump"), "DUMP 2");
    let a = trace_event(&c.read_line().unwrap());
    let b = trace_event(&c.read_line().unwrap());
    assert_eq!(
        (a["key"].as_str(), a["deleted"].as_bool()),
        (Some("a"), Some(true))
    );
    assert_eq!(
        (b["key"].as_str(), b["value"].as_str()),
        (Some("b"), Some("two words"))
    );
    assert_eq!(b["node"], 1);
    assert!(
        a["time"].as_u64() > b["time"].as_u64(),
        "the delete came later: {a} {b}"
    );
    assert_eq!(
        c.request("ping"),
        "PONG",
        "the connection goes on after a dump"
    );

    for n in &nodes {
        n.client().request("fault heal");
    }
    let deadline = Instant::now() + PATIENCE;
    while digest(&nodes[2]) != digest(&nodes[0]) {
        assert!(
            Instant::now() < deadline,
            "node 3 never caught up after the heal"
        );
        thread::sleep(Duration::from_millis(20)); // polling a condition, with a deadline
    }
}

#[test]
fn a_pipelined_client_sees_its_own_writes_in_order() {
    // Requests sent in one packet are handed to the mode together, but a read never overtakes
    // the same client's earlier write, and writes keep their order.
    for (mode, tob) in [
        ("eventual", "sequencer"),
        ("sequential", "sequencer"),
        ("sequential", "lamport"),
        ("linearizable", "sequencer"),
    ] {
        let (_dir, nodes) = start(&cluster_config(mode, tob, ""));
        let mut client = nodes[1].client();
        let mut script = String::new();
        let mut expected = Vec::new();
        for i in 0..50 {
            script.push_str(&format!("set p {i}\nset q {i}\nget p\n"));
            expected.extend(["OK".to_string(), "OK".to_string(), format!("VALUE {i}")]);
        }
        script.push_str("del p\nget p\nget q\n");
        expected.extend(["OK".into(), "NOT_FOUND".into(), "VALUE 49".into()]);
        client.send_raw(script.as_bytes()).unwrap();
        let replies: Vec<String> = expected
            .iter()
            .map(|_| client.read_line().unwrap())
            .collect();
        assert_eq!(replies, expected, "{mode} with tob = {tob}");
    }
}
