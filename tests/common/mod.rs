//! Test support: start the real `dkvs` binary on a free port and talk to it.
//!
//! Every server is started with `--listen 127.0.0.1:0` and reports the port it got on stdout, so
//! tests never guess a free port. [`ServerProcess`] kills its process on drop, so a failing test
//! leaves nothing running; data lives in a `tempfile` directory removed on drop.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest any test waits for a reply or an exit before it fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A config for tests: one node, small limits so limit errors are easy to provoke.
pub fn config(sync: &str, extra: &str) -> String {
    format!(
        "mode = \"single\"\n[[nodes]]\nid = 1\nclient = \"127.0.0.1:1\"\n\
         [storage]\nsync = \"{sync}\"\nsegment_size_bytes = 65536\n\
         [storage.compaction]\nauto = false\n\
         [limits]\nmax_line_bytes = 4096\nmax_key_bytes = 64\nmax_value_bytes = 2048\n{extra}"
    )
}

/// A running `dkvs serve` process.
pub struct ServerProcess {
    child: Option<Child>,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Folder with the config file and the server's stderr log.
    pub dir: PathBuf,
    /// The store's folder.
    pub data_dir: PathBuf,
    log: PathBuf,
}

/// Path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_dkvs")
}

impl ServerProcess {
    /// Starts a server with `config` (TOML text) keeping its data in `data_dir`; waits until it
    /// listens. `dir` holds the config file and the log.
    pub fn start(dir: &Path, data_dir: &Path, config: &str) -> ServerProcess {
        ServerProcess::start_node(dir, data_dir, config, 1)
    }

    /// Like [`ServerProcess::start`], for node `node` of a cluster config (its client port is
    /// still chosen freely; peer addresses come from the config).
    pub fn start_node(dir: &Path, data_dir: &Path, config: &str, node: u32) -> ServerProcess {
        let config_path = dir.join(format!("dkvs-{node}.toml"));
        std::fs::write(&config_path, config).expect("write config");
        let log = dir.join(format!("server-{}-{node}.log", std::process::id()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log");
        let mut child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--node", &node.to_string()])
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env("RUST_LOG", "info")
            .spawn()
            .expect("spawn dkvs");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the "listening on" line in a thread so a server that never prints it fails the
        // test after PATIENCE instead of hanging it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let found = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.split("listening on ")
                    .nth(1)
                    .map(|a| a.trim().parse::<SocketAddr>())
            });
            let _ = tx.send(found);
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut process = ServerProcess {
            child: Some(child),
            addr: "127.0.0.1:1".parse().expect("placeholder address"),
            dir: dir.to_owned(),
            data_dir: data_dir.to_owned(),
            log,
        };
        match rx.recv_timeout(PATIENCE) {
            Ok(Some(Ok(addr))) => process.addr = addr,
            other => panic!("server did not start ({other:?}); log:\n{}", process.log()),
        }
        process
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Opens a text-protocol client.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// SIGKILL: no chance to flush or sync.
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = None;
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the server.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("server running").id();
        // SAFETY: kill(2) on a child we own.
        unsafe {
            libc::kill(pid as i32, signal);
        }
    }

    /// Waits for the server to exit by itself and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(Ok(status)) => status,
            _ => {
                // SAFETY: kill(2) on a child we own, so the test does not leave it behind.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                panic!(
                    "server did not exit within {PATIENCE:?}; log:\n{}",
                    self.log()
                )
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A blocking text-protocol client with a read timeout.
pub struct Client {
    /// One socket for both directions (writes go through `get_ref`): a test that opens a
    /// thousand clients should cost a thousand descriptors, not two thousand.
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("set timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.reader.get_ref().write_all(bytes)
    }

    /// Reads one reply line, without its `\r\n`. An empty string means the server closed.
    pub fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Sends one line and returns the reply line.
    pub fn request(&mut self, line: &str) -> String {
        self.try_request(line)
            .unwrap_or_else(|e| panic!("request {line:?} failed: {e}"))
    }

    /// Like [`Client::request`], but returns I/O errors (for a server that may be dying).
    pub fn try_request(&mut self, line: &str) -> std::io::Result<String> {
        self.reader
            .get_ref()
            .write_all(format!("{line}\n").as_bytes())?;
        let reply = self.read_line()?;
        if reply.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        Ok(reply)
    }

    /// Reads until the server closes the connection; returns what arrived.
    pub fn read_to_end(&mut self) -> std::io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

/// A port that was free a moment ago, for a cluster node's peer listener (every peer address
/// must be in the config before any node starts). Taken below Linux's ephemeral range (32768 and
/// up), so a server binding port 0 for its client listener cannot grab it first; spread by
/// process id across test binaries.
pub fn free_peer_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_700;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A config for a cluster of `nodes` nodes (ids 1..=nodes) with free peer ports and
/// `sync = "never"` (a process crash loses nothing: the page cache outlives the process).
/// `replication` is the body of the `[replication]` table.
pub fn cluster_config(mode: &str, tob: &str, nodes: u32, replication: &str) -> String {
    let mut text = format!(
        "mode = \"{mode}\"\ntob = \"{tob}\"\n[storage]\nsync = \"never\"\n\
         [replication]\n{replication}\n"
    );
    for id in 1..=nodes {
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\nclient = \"127.0.0.1:1\"\npeer = \"127.0.0.1:{}\"\n",
            free_peer_port()
        ));
    }
    text
}

impl ServerProcess {
    /// Polls with `get` until the node serves clients: a node of an ordered mode answers
    /// `ERR not ready` until it has caught up with the others. Fails after [`PATIENCE`].
    pub fn wait_ready(&self) {
        let mut client = self.client();
        let deadline = std::time::Instant::now() + PATIENCE;
        while client
            .request("get readiness-probe")
            .starts_with("ERR not ready")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "node never became ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10)); // polling a condition, with a deadline
        }
    }
}

impl Client {
    /// Like [`Client::connect`], but returns the error (for a server that may be down) and
    /// waits at most `timeout` for each reply.
    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }
}
