//! A workload generator that records what it saw: concurrent clients run a seeded mix of
//! `set`/`get`/`del` on a few keys against a running cluster, over the text protocol, and every
//! operation goes into a [`HistoryRecorder`] for `dkvs check` to judge.
//!
//! Few keys and many clients make operations collide, which is what exposes a weak consistency
//! level. Every `set` writes a value no other write uses (`<client>.<n>`), so a read's value
//! names the write it came from and an explanation can point at it.
//!
//! A request that gets no answer within the timeout is recorded as *unknown* — it may still take
//! effect later — and the client continues as a new client id on a new connection, as Jepsen
//! does: a client with an operation possibly still in flight cannot also start another one.
//! After the run, once the nodes' `digest`s agree (or a few seconds have passed), each node's
//! contents are read with `dump` and recorded as a `replica` event, for `--model eventual`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::check::{HistoryRecorder, Op, Outcome};

/// What to run.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Client addresses of the nodes; client `c` talks to node `c % nodes.len()`.
    pub nodes: Vec<SocketAddr>,
    pub clients: u64,
    /// Operations per client.
    pub ops: u64,
    /// Keys are `k0`, `k1`, … `k<keys-1>`.
    pub keys: u64,
    /// Seeds the operation mix; the same seed gives each client the same sequence of requests.
    pub seed: u64,
    /// How long a client waits for a reply before recording the operation as unknown.
    pub timeout: Duration,
}

/// A small seeded generator (xorshift64*): the mix must be reproducible, not cryptographic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A blocking text-protocol connection with a read timeout.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    fn request(&mut self, line: &str) -> std::io::Result<String> {
        self.reader
            .get_ref()
            .write_all(format!("{line}\n").as_bytes())?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(reply.trim_end().to_string())
    }
}

/// The text-protocol request line for `op`.
pub fn line(op: &Op) -> String {
    match op {
        Op::Get { key } => format!("get {key}"),
        Op::Set { key, value } => format!("set {key} {value}"),
        Op::Del { key } => format!("del {key}"),
        Op::Append { key, value } => format!("append {key} {value}"),
        Op::Cas { key, .. } => format!("cas {key}"),
    }
}

/// A text-protocol reply in the checker's words. An `ERR` answer means the node refused the
/// request before doing anything (busy, not ready, bad input), so the operation certainly failed.
pub fn outcome(reply: &str) -> Outcome {
    match reply {
        "OK" => Outcome::Ok,
        "NOT_FOUND" => Outcome::NotFound,
        _ => match reply.strip_prefix("VALUE ") {
            Some(v) => Outcome::Value {
                value: v.to_string(),
            },
            None => Outcome::Fail,
        },
    }
}

/// Runs the workload and returns the recording (operations, then the replicas' contents).
pub fn run(options: &WorkloadOptions) -> HistoryRecorder {
    let recorder = HistoryRecorder::new();
    let nodes = options.nodes.len().max(1) as u64;
    std::thread::scope(|scope| {
        for c in 0..options.clients {
            let recorder = recorder.clone();
            let options = options.clone();
            scope.spawn(move || {
                let addr = options.nodes[(c % nodes) as usize];
                let mut rng = Rng::new(options.seed ^ (c + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                // Client ids: c, then c + clients, c + 2·clients, … after each timeout.
                let mut client = c;
                let mut conn = Conn::open(addr, options.timeout).ok();
                for i in 0..options.ops {
                    let key = format!("k{}", rng.next() % options.keys.max(1));
                    let op = match rng.next() % 10 {
                        0..=4 => Op::Get { key },
                        5..=8 => Op::Set {
                            key,
                            value: format!("{c}.{i}"),
                        },
                        _ => Op::Del { key },
                    };
                    let id = recorder.invoke(client, op.clone());
                    let reply = match conn.as_mut() {
                        Some(conn) => conn.request(&line(&op)),
                        None => Err(std::io::ErrorKind::NotConnected.into()),
                    };
                    match reply {
                        Ok(reply) => recorder.complete(id, outcome(&reply)),
                        Err(_) if conn.is_none() => {
                            // Never sent: certainly no effect.
                            recorder.complete(id, Outcome::Fail);
                            conn = Conn::open(addr, options.timeout).ok();
                        }
                        Err(_) => {
                            recorder.complete(id, Outcome::Unknown);
                            client += options.clients;
                            conn = Conn::open(addr, options.timeout).ok();
                        }
                    }
                }
            });
        }
    });
    // Replicas of the eventual mode may still be exchanging the last writes: compare the
    // nodes' digests until all reachable nodes agree, for at most SETTLE_ROUNDS rounds.
    for _ in 0..SETTLE_ROUNDS {
        let digests: Vec<String> = options
            .nodes
            .iter()
            .filter_map(|addr| request_once(*addr, options, "digest"))
            .collect();
        if digests.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (n, addr) in options.nodes.iter().enumerate() {
        if let Some(data) = dump(*addr, options.timeout) {
            recorder.record_replica(n as u64 + 1, data);
        }
    }
    recorder
}

/// Rounds of comparing digests before the replicas are recorded as they are.
const SETTLE_ROUNDS: usize = 50;

/// One request on a fresh connection; `None` if the node cannot be reached.
fn request_once(addr: SocketAddr, options: &WorkloadOptions, line: &str) -> Option<String> {
    Conn::open(addr, options.timeout).ok()?.request(line).ok()
}

/// The node's contents through its `dump` command (deleted keys left out), or `None` if it
/// cannot be reached or answers something else.
pub fn dump(addr: SocketAddr, timeout: Duration) -> Option<BTreeMap<String, String>> {
    let mut conn = Conn::open(addr, timeout).ok()?;
    let header = conn.request("dump").ok()?;
    let count: usize = header.strip_prefix("DUMP ")?.parse().ok()?;
    let mut data = BTreeMap::new();
    for _ in 0..count {
        let mut line = String::new();
        if conn.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let entry: serde_json::Value = serde_json::from_str(&line).ok()?;
        if let (Some(key), Some(value)) = (entry["key"].as_str(), entry["value"].as_str()) {
            data.insert(key.to_string(), value.to_string());
        }
    }
    Some(data)
}
