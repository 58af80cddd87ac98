//! The client's I/O: connections to the nodes, and (with `--spawn`) the nodes' processes.
//!
//! Each node gets two plain TCP connections on its client port, each served by a thread:
//!
//! - a **trace** connection that sends `trace` once and then reads the node's JSON events as
//!   they stream (a `{"lost":N}` line says the node skipped N events because this client was
//!   slow: a node never waits for a watcher);
//! - a **command** connection that sends what the user types, one line at a time, and reads
//!   each reply; when idle it asks for `stats` twice a second, for the node panel.
//!
//! Both reconnect by themselves, so the client survives nodes dying and coming back. Threads
//! and blocking sockets keep this simple; the state lives in the app, which only receives
//! [`Event`]s over a channel.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use dkvs::node::{NodeId, TraceEvent};

use crate::app::Event;

/// How long to wait between attempts to reach a node that is down.
const RECONNECT: Duration = Duration::from_millis(300);
/// How often the node panel is refreshed.
const STATS_EVERY: Duration = Duration::from_millis(500);
/// How long a command may take before the client gives up on the connection.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often blocked reads look up to see whether the client is quitting.
const POLL: Duration = Duration::from_millis(200);

/// The connections to every node.
pub struct Links {
    commands: BTreeMap<NodeId, Sender<String>>,
    stop: Arc<AtomicBool>,
}

impl Links {
    /// Starts the threads for `nodes` (id, client address); events go to `events`. Trace
    /// events get the time they arrived (`at_us`, since `started`).
    pub fn connect(
        nodes: &[(NodeId, SocketAddr)],
        events: Sender<Event>,
        started: Instant,
    ) -> Links {
        let stop = Arc::new(AtomicBool::new(false));
        let mut commands = BTreeMap::new();
        for &(node, addr) in nodes {
            let (tx, rx) = mpsc::channel::<String>();
            commands.insert(node, tx);
            let (ev, st) = (events.clone(), stop.clone());
            thread::spawn(move || trace_loop(node, addr, &ev, &st, started));
            let (ev, st) = (events.clone(), stop.clone());
            thread::spawn(move || command_loop(node, addr, &rx, &ev, &st));
        }
        Links { commands, stop }
    }

    /// Queues a command line for `node`.
    pub fn send(&self, node: NodeId, line: String) {
        if let Some(tx) = self.commands.get(&node) {
            let _ = tx.send(line);
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sleeps `d` unless the client is quitting; returns whether it is.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        thread::sleep(POLL.min(until - Instant::now()));
    }
    stop.load(Ordering::Relaxed)
}

fn open(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(POLL))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads one line, waiting through read timeouts until `deadline` (or for ever with `None`).
/// `Ok(None)` at end of stream.
fn read_line(
    reader: &mut BufReader<TcpStream>,
    line: &mut String,
    stop: &AtomicBool,
    deadline: Option<Instant>,
) -> std::io::Result<Option<()>> {
    line.clear();
    loop {
        match reader.read_line(line) {
            Ok(0) => return Ok(None),
            Ok(_) if line.ends_with('\n') => return Ok(Some(())),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() > d) {
            return Err(ErrorKind::TimedOut.into());
        }
    }
}

fn trace_loop(
    node: NodeId,
    addr: SocketAddr,
    events: &Sender<Event>,
    stop: &AtomicBool,
    started: Instant,
) {
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = open(addr) else {
            let _ = events.send(Event::Link { node, up: false });
            if pause(RECONNECT, stop) {
                return;
            }
            continue;
        };
        if stream.write_all(b"trace\r\n").is_err() {
            continue;
        }
        let mut reader = BufReader::new(stream);
        while let Ok(Some(())) = read_line(&mut reader, &mut line, stop, None) {
            let text = line.trim();
            if !text.starts_with('{') {
                continue; // the `OK tracing …` greeting, or an error
            }
            if let Ok(mut e) = serde_json::from_str::<TraceEvent>(text) {
                e.at_us.get_or_insert(started.elapsed().as_micros() as u64);
                if events.send(Event::Trace(e)).is_err() {
                    return;
                }
            } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
                && let Some(count) = v.get("lost").and_then(serde_json::Value::as_u64)
            {
                let _ = events.send(Event::Lost { node, count });
            }
        }
        let _ = events.send(Event::Link { node, up: false });
        if pause(RECONNECT, stop) {
            return;
        }
    }
}

/// A command connection, once open.
struct Session {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Session {
    fn open(addr: SocketAddr) -> std::io::Result<Session> {
        let stream = open(addr)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Session { stream, reader })
    }

    /// Sends `line` and reads its reply (a `DUMP n` reply is followed by n lines).
    fn ask(&mut self, line: &str, stop: &AtomicBool) -> std::io::Result<String> {
        self.stream.write_all(line.as_bytes())?;
        self.stream.write_all(b"\r\n")?;
        let deadline = Some(Instant::now() + REPLY_TIMEOUT);
        let mut reply = String::new();
        if read_line(&mut self.reader, &mut reply, stop, deadline)?.is_none() {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let reply = reply.trim_end().to_string();
        if let Some(n) = reply
            .strip_prefix("DUMP ")
            .and_then(|n| n.parse::<usize>().ok())
        {
            let mut rows = Vec::new();
            let mut row = String::new();
            for _ in 0..n {
                read_line(&mut self.reader, &mut row, stop, deadline)?;
                rows.push(row.trim_end().to_string());
            }
            return Ok(format!("{reply}: {}", rows.join(" ")));
        }
        Ok(reply)
    }
}

fn command_loop(
    node: NodeId,
    addr: SocketAddr,
    lines: &mpsc::Receiver<String>,
    events: &Sender<Event>,
    stop: &AtomicBool,
) {
    let mut session: Option<Session> = None;
    while !stop.load(Ordering::Relaxed) {
        let (line, user) = match lines.recv_timeout(STATS_EVERY) {
            Ok(line) => (line, true),
            Err(RecvTimeoutError::Timeout) => ("stats".to_string(), false),
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if session.is_none() {
            session = Session::open(addr).ok();
        }
        let started = Instant::now();
        let answer = match session.as_mut() {
            Some(s) => s.ask(&line, stop),
            None => Err(ErrorKind::ConnectionRefused.into()),
        };
        let latency_us = started.elapsed().as_micros() as u64;
        let reply = match answer {
            Ok(reply) => reply,
            Err(e) => {
                session = None;
                let _ = events.send(Event::Link { node, up: false });
                if !user {
                    continue;
                }
                format!("ERR n{node} unreachable: {e}")
            }
        };
        let event = if user {
            Event::Reply {
                node,
                command: line,
                reply,
                latency_us,
            }
        } else {
            Event::Status {
                node,
                stats: parse_stats(&reply),
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// `STATS a=1 b=2` → {a: 1, b: 2}.
pub fn parse_stats(reply: &str) -> BTreeMap<String, String> {
    reply
        .strip_prefix("STATS")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The nodes' processes, when the client started them (`--spawn`).
pub struct Spawner {
    /// The program that serves a node: this client itself, run with `--serve-node`.
    exe: PathBuf,
    config: PathBuf,
    /// Where each node's output goes.
    logs: PathBuf,
    children: BTreeMap<NodeId, Child>,
}

impl Spawner {
    /// A spawner of `config`'s nodes with `exe --serve-node N --config FILE`; node logs go to
    /// `logs/dkvs-tui-nN.log`.
    pub fn new(exe: PathBuf, config: &Path, logs: PathBuf) -> Spawner {
        Spawner {
            exe,
            config: config.to_path_buf(),
            logs,
            children: BTreeMap::new(),
        }
    }

    /// Starts node `node` (if it is not running).
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn start(&mut self, node: NodeId) -> std::io::Result<()> {
        if let Some(child) = self.children.get_mut(&node)
            && child.try_wait()?.is_none()
        {
            return Ok(());
        }
        let log = std::fs::File::create(self.logs.join(format!("dkvs-tui-n{node}.log")))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("--serve-node")
            .arg(node.to_string())
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe, as pre_exec requires. The node dies with
            // this client, even if the client is killed and cannot clean up.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        self.children.insert(node, command.spawn()?);
        Ok(())
    }

    /// Nodes whose process ended by itself (it could not start, or crashed), each with a line
    /// saying where its output went; they are forgotten, so each is reported once.
    pub fn reap(&mut self) -> Vec<(NodeId, String)> {
        let mut ended = Vec::new();
        for (&node, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.logs.join(format!("dkvs-tui-n{node}.log"));
                ended.push((
                    node,
                    format!("n{node} exited ({status}); see {}", log.display()),
                ));
            }
        }
        for (node, _) in &ended {
            self.children.remove(node);
        }
        ended
    }

    /// Kills node `node` at once (SIGKILL).
    pub fn kill(&mut self, node: NodeId) {
        if let Some(mut child) = self.children.remove(&node) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Spawner {
    /// Stops every node cleanly (SIGTERM), and for good after two seconds.
    fn drop(&mut self) {
        for child in self.children.values() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: sending a signal to a child we started and have not reaped.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for child in self.children.values_mut() {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_stats;

    #[test]
    fn stats_replies_become_a_map() {
        let m = parse_stats("STATS node=2 keys=5 ready=true");
        assert_eq!(m.get("keys").map(String::as_str), Some("5"));
        assert_eq!(m.len(), 3);
        assert!(parse_stats("ERR nope").is_empty());
    }
}
