//! The whole client against a real cluster: three nodes started the way `--spawn` starts them,
//! the app's event loop driven with typed keys on ratatui's `TestBackend`, and the screen read
//! back. A `set` on node 1 must show up as messages to nodes 2 and 3 in the diagram.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dkvs::node::TraceKind;
use dkvs_tui::app::{App, Event};
use dkvs_tui::{Io, net};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// A port nothing listens on now, from a range of this test process's own (so that parallel
/// test processes do not hand out the same ports).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 30_000 + (std::process::id() % 400) as u16 * 25;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 5_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

#[test]
fn a_set_on_node_1_shows_as_messages_to_nodes_2_and_3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = String::from(
        "mode = \"sequential\"\ntob = \"sequencer\"\n[storage]\ndata_dir = \"data\"\nsync = \"never\"\n",
    );
    let mut nodes = Vec::new();
    for id in 1..=3u32 {
        let client = free_port();
        config.push_str(&format!(
            "[[nodes]]\nid = {id}\nclient = \"127.0.0.1:{client}\"\npeer = \"127.0.0.1:{}\"\n",
            free_port()
        ));
        nodes.push((id, format!("127.0.0.1:{client}").parse().expect("address")));
    }
    let path = dir.path().join("dkvs.toml");
    std::fs::write(&path, config).expect("config written");

    // Dropped at the end of the test, or while a failed assertion unwinds: the nodes stop.
    let mut spawner = net::Spawner::new(
        env!("CARGO_BIN_EXE_dkvs-tui").into(),
        &path,
        dir.path().to_path_buf(),
    );
    for &(id, _) in &nodes {
        spawner.start(id).expect("node starts");
    }
    let (tx, rx) = mpsc::channel();
    let links = net::Links::connect(&nodes, tx.clone(), Instant::now());
    let mut io = Io {
        links: Some(links),
        spawner: Some(spawner),
    };
    let mut app = App::new(
        "sequential over sequencer, 3 nodes".into(),
        vec![1, 2, 3],
        true,
    );
    // Tall enough for every row a write causes (requests, sends, receipts, deliveries, the
    // followers' reports), whichever order the three nodes' streams arrive in.
    let mut terminal = Terminal::new(TestBackend::new(100, 40)).expect("test backend");
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = || {
        (1..=3)
            .map(|n| std::fs::read_to_string(dir.path().join(format!("dkvs-tui-n{n}.log"))))
            .filter_map(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Every node answers `stats` and is ready.
    dkvs_tui::run(&mut app, &mut terminal, &rx, &mut io, |app| {
        Instant::now() > deadline
            || app
                .status
                .values()
                .all(|s| s.up && s.stats.get("ready").map(String::as_str) == Some("true"))
    })
    .expect("terminal");
    assert!(
        Instant::now() < deadline,
        "the nodes never became ready:\n{}",
        logs()
    );

    for c in "set x 1".chars() {
        tx.send(key(KeyCode::Char(c))).expect("loop alive");
    }
    tx.send(key(KeyCode::Enter)).expect("loop alive");
    let received_from_n1 = |app: &App, n| {
        app.events.iter().any(|e| {
            e.kind == TraceKind::Receive
                && e.node == n
                && e.peer == Some(1)
                && e.message.as_deref() == Some("ordered")
        })
    };
    dkvs_tui::run(&mut app, &mut terminal, &rx, &mut io, |app| {
        Instant::now() > deadline
            || (received_from_n1(app, 2)
                && received_from_n1(app, 3)
                && app.replies.iter().any(|r| r.command == "set x 1"))
    })
    .expect("terminal");

    let screen = terminal.backend().to_string();
    let reply = app.replies.iter().find(|r| r.command == "set x 1");
    assert_eq!(
        reply.map(|r| (r.node, r.reply.as_str())),
        Some((1, "OK")),
        "{screen}"
    );
    assert!(screen.contains("n2 from n1: ordered"), "{screen}");
    assert!(screen.contains("n3 from n1: ordered"), "{screen}");
    assert!(screen.contains("n1 set x 1 → OK"), "{screen}");

    // Kill node 2 (K, then y to confirm): the client notices it is gone ...
    for code in [KeyCode::Char('2'), KeyCode::Char('K'), KeyCode::Char('y')] {
        tx.send(key(code)).expect("loop alive");
    }
    dkvs_tui::run(&mut app, &mut terminal, &rx, &mut io, |app| {
        Instant::now() > deadline || !app.status[&2].up
    })
    .expect("terminal");
    assert!(!app.status[&2].up, "n2 still shown up after the kill");
    let screen = terminal.backend().to_string();
    assert!(screen.contains("n2 killed"), "{screen}");
    assert!(screen.contains("○ down"), "{screen}");

    // ... and reconnects once it is restarted (R, y), with the write it had before.
    for code in [KeyCode::Char('R'), KeyCode::Char('y')] {
        tx.send(key(code)).expect("loop alive");
    }
    dkvs_tui::run(&mut app, &mut terminal, &rx, &mut io, |app| {
        Instant::now() > deadline
            || (app.status[&2].up
                && app.status[&2].stats.get("ready").map(String::as_str) == Some("true"))
    })
    .expect("terminal");
    assert!(app.status[&2].up, "n2 never came back:\n{}", logs());
    for c in "get x".chars() {
        tx.send(key(KeyCode::Char(c))).expect("loop alive");
    }
    tx.send(key(KeyCode::Enter)).expect("loop alive");
    dkvs_tui::run(&mut app, &mut terminal, &rx, &mut io, |app| {
        Instant::now() > deadline || app.replies.iter().any(|r| r.command == "get x")
    })
    .expect("terminal");
    let reply = app.replies.iter().find(|r| r.command == "get x");
    assert_eq!(
        reply.map(|r| (r.node, r.reply.as_str())),
        Some((2, "VALUE 1")),
        "{}",
        terminal.backend()
    );
}

#[test]
fn a_node_that_cannot_start_is_reported_with_its_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Its client port is taken: the node exits at once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("bound").port();
    let config = format!(
        "mode = \"sequential\"\n[storage]\ndata_dir = \"data\"\n\
         [[nodes]]\nid = 1\nclient = \"127.0.0.1:{port}\"\npeer = \"127.0.0.1:{}\"\n\
         [[nodes]]\nid = 2\nclient = \"127.0.0.1:{}\"\npeer = \"127.0.0.1:{}\"\n",
        free_port(),
        free_port(),
        free_port()
    );
    let path = dir.path().join("dkvs.toml");
    std::fs::write(&path, config).expect("config written");
    let mut spawner = net::Spawner::new(
        env!("CARGO_BIN_EXE_dkvs-tui").into(),
        &path,
        dir.path().to_path_buf(),
    );
    spawner.start(1).expect("the process starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let ended = loop {
        let ended = spawner.reap();
        if !ended.is_empty() || Instant::now() > deadline {
            break ended;
        }
        std::thread::sleep(Duration::from_millis(20)); // polling a child's exit status
    };
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(ended[0].1.contains("dkvs-tui-n1.log"), "{ended:?}");
    assert!(spawner.reap().is_empty(), "reported once");
    let log = std::fs::read_to_string(dir.path().join("dkvs-tui-n1.log")).expect("log");
    assert!(log.contains("error"), "the log says why: {log}");
}
