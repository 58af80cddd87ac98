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
//! After the run, each node's value of every key is read and recorded as a `replica` event, for
//! `--model eventual`.

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
    // Replicas of the eventual mode may still be exchanging the last writes: read until all
    // reachable nodes agree, for at most SETTLE_ROUNDS rounds.
    let mut contents = Vec::new();
    for _ in 0..SETTLE_ROUNDS {
        contents = options
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(n, addr)| Some((n as u64 + 1, read_all(*addr, options)?)))
            .collect();
        if contents.windows(2).all(|w| w[0].1 == w[1].1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (node, data) in contents {
        recorder.record_replica(node, data);
    }
    recorder
}

/// Rounds of reading every node before the replicas are recorded as they are.
const SETTLE_ROUNDS: usize = 50;

/// Every key's value on the node at `addr`, or `None` if it cannot be reached.
fn read_all(addr: SocketAddr, options: &WorkloadOptions) -> Option<BTreeMap<String, String>> {
    let mut conn = Conn::open(addr, options.timeout).ok()?;
    let mut data = BTreeMap::new();
    for k in 0..options.keys {
        let key = format!("k{k}");
        let reply = conn.request(&format!("get {key}")).ok()?;
        if let Some(v) = reply.strip_prefix("VALUE ") {
            data.insert(key, v.to_string());
        }
    }
    Some(data)
}
