//! `loadgen`: a closed-loop load generator for dkvs and redis-server (RESP) and etcd (gRPC).
//!
//! Every client is one connection that sends a request, waits for its reply, records how long
//! that took and sends the next; clients are spread round-robin over the addresses given. Keys
//! are `key:<n>` with `n` uniform in `[0, keys)` from a seeded generator, values are
//! `value-size` bytes. After a warm-up that is not recorded, it runs for a number of requests
//! or seconds and prints one line: throughput, median and 99th-percentile latency, errors.
//!
//! `--op load` writes every key once, `key:0` to `key:<keys - 1>`, so that a later `get` run
//! finds them all.

mod client;
mod stats;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use client::{Client, EtcdClient, Reply, Request, RespClient};
use stats::{Rng, percentile};

/// Closed-loop load generator: one request in flight per client.
///
/// With --csv it prints one row with the columns
/// target,op,clients,requests,seconds,ops_per_s,p50_ms,p99_ms,errors,max_ms,misses,sent
/// (`sent`: every request answered, the warm-up's included).
/// It exits with status 1 if any request failed, 2 if it could not run (e.g. no connection).
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// What speaks at the addresses: a RESP server (dkvs, redis-server) or etcd (gRPC).
    #[arg(long, value_enum)]
    target: Target,
    /// Server addresses, HOST:PORT, separated by commas; clients are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    addr: Vec<String>,
    /// The request every client sends (`load`: every key once, in order, no warm-up).
    #[arg(long, value_enum)]
    op: Op,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Recorded requests in all (default 100000 unless --duration-s is given).
    #[arg(long, conflicts_with = "duration_s")]
    requests: Option<u64>,
    /// Record for this many seconds instead of a number of requests.
    #[arg(long)]
    duration_s: Option<f64>,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Size of the key space.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Seconds of load before recording starts.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// A request without a reply after this many seconds is an error and stops its client.
    #[arg(long, default_value_t = 10.0)]
    timeout_s: f64,
    /// Seed of the key generator (each client derives its own stream from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print a CSV row instead of a sentence.
    #[arg(long)]
    csv: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Resp,
    Etcd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    Set,
    Get,
    Load,
}

/// What every client shares: the workload and when to stop.
struct Plan {
    op: Op,
    value: Vec<u8>,
    keys: u64,
    seed: u64,
    timeout: Duration,
    /// Requests that start before this are not recorded.
    warm_end: Instant,
    /// Requests that would start after this are not sent (duration runs).
    deadline: Option<Instant>,
    /// Recorded requests allowed in all (request-count runs); `load`: the key count.
    budget: Option<u64>,
    /// Requests claimed against `budget` so far; `load`: the next key.
    claimed: AtomicU64,
}

/// What one client measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// Requests answered, recorded or not.
    sent: u64,
    errors: u64,
    misses: u64,
    first_error: Option<String>,
    finished: Option<Instant>,
}

impl Tally {
    fn error(&mut self, text: String) {
        self.errors += 1;
        self.first_error.get_or_insert(text);
    }
}

/// Runs one client until the plan says stop or its connection breaks.
async fn run_client(index: u64, mut client: Client, plan: Arc<Plan>) -> Tally {
    let mut rng = Rng::new(plan.seed, index);
    let mut tally = Tally::default();
    let mut key = Vec::with_capacity(32);
    let request = match plan.op {
        Op::Get => Request::Get,
        Op::Set | Op::Load => Request::Set,
    };
    loop {
        let start = Instant::now();
        let recorded = start >= plan.warm_end;
        let n = if plan.op == Op::Load {
            let n = plan.claimed.fetch_add(1, Ordering::Relaxed);
            if n >= plan.keys {
                break;
            }
            n
        } else {
            if recorded {
                if plan.deadline.is_some_and(|d| start >= d) {
                    break;
                }
                if let Some(budget) = plan.budget
                    && plan.claimed.fetch_add(1, Ordering::Relaxed) >= budget
                {
                    break;
                }
            }
            rng.below(plan.keys)
        };
        key.clear();
        write!(key, "key:{n}").expect("writing to a Vec cannot fail");
        let reply =
            tokio::time::timeout(plan.timeout, client.call(request, &key, &plan.value)).await;
        let micros = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        match reply {
            Err(_) => {
                tally.error(format!("no reply within {:?}", plan.timeout));
                break;
            }
            Ok(Err(e)) => {
                tally.error(format!("connection failed: {e:#}"));
                break;
            }
            Ok(Ok(reply)) => {
                tally.sent += 1;
                if recorded {
                    tally.latencies_us.push(micros);
                }
                match reply {
                    Reply::Ok => {}
                    Reply::Miss => tally.misses += u64::from(recorded),
                    Reply::Error(text) => tally.error(text),
                }
            }
        }
    }
    tally.finished = Some(Instant::now());
    tally
}

/// The summary line's figures.
struct Summary {
    requests: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
    misses: u64,
    sent: u64,
}

/// Merges the clients' tallies; the run lasted from the end of the warm-up until the last
/// client finished.
fn summarise(tallies: &[Tally], warm_end: Instant) -> Summary {
    let mut all: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    all.sort_unstable();
    let ms = |p: f64| f64::from(percentile(&all, p).unwrap_or(0)) / 1000.0;
    let end = tallies
        .iter()
        .filter_map(|t| t.finished)
        .max()
        .unwrap_or(warm_end);
    Summary {
        requests: all.len(),
        seconds: end.saturating_duration_since(warm_end).as_secs_f64(),
        p50_ms: ms(50.0),
        p99_ms: ms(99.0),
        max_ms: ms(100.0),
        errors: tallies.iter().map(|t| t.errors).sum(),
        misses: tallies.iter().map(|t| t.misses).sum(),
        sent: tallies.iter().map(|t| t.sent).sum(),
    }
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Connects the clients, runs them, prints the summary; `Ok(false)` if any request failed.
async fn run(args: &Args) -> anyhow::Result<bool> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(args.keys > 0, "--keys must be at least 1");

    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let addr = &args.addr[i % args.addr.len()];
        clients.push(match args.target {
            Target::Resp => Client::Resp(RespClient::connect(addr).await?),
            Target::Etcd => Client::Etcd(EtcdClient::connect(addr).await?),
        });
    }

    let load = args.op == Op::Load;
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(if load { 0.0 } else { args.warmup_s });
    let plan = Arc::new(Plan {
        op: args.op,
        value: vec![b'v'; args.value_size],
        keys: args.keys,
        seed: args.seed,
        timeout: Duration::from_secs_f64(args.timeout_s),
        warm_end,
        deadline: args
            .duration_s
            .filter(|_| !load)
            .map(|s| warm_end + Duration::from_secs_f64(s)),
        budget: match (load, args.requests, args.duration_s) {
            (true, _, _) => Some(args.keys),
            (false, Some(n), _) => Some(n),
            (false, None, Some(_)) => None,
            (false, None, None) => Some(100_000),
        },
        claimed: AtomicU64::new(0),
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(run_client(i as u64, c, plan.clone())))
        .collect();
    let mut tallies = Vec::with_capacity(tasks.len());
    for task in tasks {
        tallies.push(task.await?);
    }

    let s = summarise(&tallies, warm_end);
    let target = format!("{:?}", args.target).to_lowercase();
    let op = format!("{:?}", args.op).to_lowercase();
    let rate = if s.seconds > 0.0 {
        s.requests as f64 / s.seconds
    } else {
        0.0
    };
    if args.csv {
        println!(
            "{target},{op},{},{},{:.3},{:.0},{:.3},{:.3},{},{:.3},{},{}",
            args.clients,
            s.requests,
            s.seconds,
            rate,
            s.p50_ms,
            s.p99_ms,
            s.errors,
            s.max_ms,
            s.misses,
            s.sent
        );
    } else {
        println!(
            "{target} {op}: {} clients, {} requests in {:.2} s = {:.0} ops/s, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {} errors, {} misses",
            args.clients,
            s.requests,
            s.seconds,
            rate,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.errors,
            s.misses
        );
    }
    if let Some(first) = tallies.iter().find_map(|t| t.first_error.as_ref()) {
        eprintln!("loadgen: {} errors; the first: {first}", s.errors);
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_defaults() {
        let args = Args::try_parse_from([
            "loadgen",
            "--target",
            "etcd",
            "--addr",
            "127.0.0.1:1,127.0.0.1:2",
            "--op",
            "get",
        ])
        .unwrap();
        assert_eq!(args.target, Target::Etcd);
        assert_eq!(args.addr, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(
            (args.clients, args.value_size, args.keys),
            (50, 100, 100_000)
        );
        assert_eq!((args.requests, args.duration_s), (None, None));
    }

    #[test]
    fn requests_and_duration_exclude_each_other() {
        let base = [
            "loadgen", "--target", "resp", "--addr", "h:1", "--op", "set",
        ];
        let both = [&base[..], &["--requests", "10", "--duration-s", "1"]].concat();
        assert!(Args::try_parse_from(both).is_err());
        let one = [&base[..], &["--duration-s", "2.5", "--clients", "1"]].concat();
        let args = Args::try_parse_from(one).unwrap();
        assert_eq!((args.duration_s, args.clients), (Some(2.5), 1));
        assert!(Args::try_parse_from(["loadgen", "--target", "resp", "--op", "set"]).is_err());
    }

    #[test]
    fn summary_spans_warm_end_to_last_client() {
        let t0 = Instant::now();
        let tally = |lat: Vec<u32>, after_ms| Tally {
            latencies_us: lat,
            finished: Some(t0 + Duration::from_millis(after_ms)),
            ..Tally::default()
        };
        let s = summarise(&[tally(vec![3000, 1000], 500), tally(vec![2000], 1000)], t0);
        assert_eq!(s.requests, 3);
        assert!((s.seconds - 1.0).abs() < 1e-9);
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms), (2.0, 3.0, 3.0));
    }
}
