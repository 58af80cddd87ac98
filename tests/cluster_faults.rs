//! Clusters of real processes under faults, one process per node:
//!
//! - a follower crashed with SIGKILL and restarted, with the same data directory, in the middle
//!   of a sequential workload — its own clients writing through the crash — loses no
//!   acknowledged write, never goes back on what it had shown before the crash, and the whole
//!   history is sequentially consistent — for both total-order broadcasts (`tob = "sequencer"`
//!   and `tob = "lamport"`); with the sequencer, the restarted node also serves nothing older
//!   than what any node acknowledged before it restarted;
//! - under eventual consistency a partition makes the two sides diverge, and after `fault heal`
//!   every node converges on the write with the larger Lamport stamp, deletes included.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, PATIENCE, ServerProcess, cluster_config};
use dkvs::check::{
    Budget, ClientId, History, HistoryRecorder, Op, Outcome, Verdict, eventual, sequential,
};
use dkvs::workload::{line, outcome};

const NODES: u32 = 3;

/// Short timers: a crash, a catch-up and a heal each take a few retry intervals.
const REPLICATION: &str = "retry_interval_ms = 50\ntick_interval_ms = 20";

fn data_dir(dir: &Path, node: u32) -> PathBuf {
    dir.join(format!("node{node}"))
}

/// Starts every node of `config` and waits until each serves clients; they are killed when the
/// returned values drop (also when the test fails).
fn start_cluster(config: &str) -> (tempfile::TempDir, Vec<ServerProcess>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes: Vec<ServerProcess> = (1..=NODES)
        .map(|id| ServerProcess::start_node(dir.path(), &data_dir(dir.path(), id), config, id))
        .collect();
    for node in &nodes {
        node.wait_ready();
    }
    (dir, nodes)
}

/// Polls `done` until it holds; fails the test with `what` and the nodes' logs after
/// [`PATIENCE`].
fn wait_for(what: &str, nodes: &[ServerProcess], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        if Instant::now() >= deadline {
            let logs: Vec<String> = nodes.iter().map(ServerProcess::log).collect();
            panic!(
                "timed out waiting for {what}; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        thread::sleep(Duration::from_millis(5)); // polling a condition, with a deadline
    }
}

/// Every key's value on one node (absent keys left out).
fn read_all(client: &mut Client, keys: &[String]) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    for key in keys {
        let reply = client.request(&format!("get {key}"));
        match outcome(&reply) {
            Outcome::Value { value } => {
                data.insert(key.clone(), value);
            }
            Outcome::NotFound => {}
            _ => panic!("unexpected reply {reply:?} to get {key}"),
        }
    }
    data
}

/// Polls every node until all hold the same values for `keys`; returns those values.
fn converge(nodes: &[ServerProcess], keys: &[String]) -> BTreeMap<String, String> {
    let mut clients: Vec<Client> = nodes.iter().map(ServerProcess::client).collect();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let contents: Vec<BTreeMap<String, String>> =
            clients.iter_mut().map(|c| read_all(c, keys)).collect();
        if contents.windows(2).all(|w| w[0] == w[1]) {
            return contents.into_iter().next().unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never agreed:\n{contents:#?}"
        );
        thread::sleep(Duration::from_millis(10)); // polling a condition, with a deadline
    }
}

// ---------------------------------------------------------------------------------------------
// Crash and restart of a follower during a sequential workload.
// ---------------------------------------------------------------------------------------------

/// Client threads of the crash test: thread `t` talks to node `t % 3 + 1`, so two per node.
const THREADS: usize = 6;
/// Keys each thread owns: only it writes them, with an increasing counter, so the last
/// acknowledged value of every key is known.
const KEYS_PER_THREAD: usize = 2;
/// Acknowledged writes each thread (of the nodes that must make progress) makes in a phase
/// before the test moves on.
const PHASE_WRITES: u64 = 15;
/// Most operations a thread makes in one phase: bounds the history the checker searches.
const PHASE_BUDGET: u64 = 150;
/// Client ids of the test's own operations (threads use `t`, `t + THREADS`, …).
const SWEEP_CLIENT: ClientId = 1_000_000;
const PROBE_CLIENT: ClientId = 2_000_000;

/// Phases of the crash test (the value of [`Workload::phase`]).
const BEFORE_CRASH: usize = 0;
const NODE3_DOWN: usize = 1;
const RESTARTED: usize = 2;

fn owned_key(thread: usize, j: usize) -> String {
    format!("t{thread}k{j}")
}

fn all_keys() -> Vec<String> {
    (0..THREADS)
        .flat_map(|t| (0..KEYS_PER_THREAD).map(move |j| owned_key(t, j)))
        .collect()
}

/// The node (1-based) a thread talks to.
fn thread_node(thread: usize) -> usize {
    thread % NODES as usize + 1
}

/// The node a recorded client talked to.
fn client_node(client: ClientId) -> usize {
    match client {
        SWEEP_CLIENT => 3,
        PROBE_CLIENT => 1,
        c => thread_node(c as usize % THREADS),
    }
}

/// The counter in a value `<thread>.<counter>`; an absent key is 0.
fn counter(value: Option<&str>) -> u64 {
    value.map_or(0, |v| {
        v.split_once('.')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or_else(|| panic!("not a value this test writes: {v:?}"))
    })
}

/// What the client threads and the test share.
struct Workload {
    recorder: HistoryRecorder,
    /// Client address of each node and how many times it changed: node 3's changes when it
    /// restarts, and a thread that lost its connection waits for a new address.
    addrs: Mutex<Vec<(SocketAddr, u64)>>,
    phase: AtomicU64,
    stop: AtomicBool,
    threads: Vec<ThreadState>,
    /// Replies no phase of the test explains.
    unexpected: Mutex<Vec<String>>,
}

#[derive(Default)]
struct ThreadState {
    /// Writes invoked in each phase and acknowledged.
    acked: [AtomicU64; 3],
    /// A `set` of the thread is in flight.
    writing: AtomicBool,
}

impl Workload {
    fn acked(&self, thread: usize, phase: usize) -> u64 {
        self.threads[thread].acked[phase].load(Ordering::SeqCst)
    }
}

/// Sets `stop` when dropped, so the threads end even if the test fails half-way.
struct StopOnDrop(Arc<Workload>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// A pause between polls of a client thread that has nothing to do.
fn idle() {
    thread::sleep(Duration::from_millis(5));
}

/// One client thread: writes its own keys with an increasing counter, each write followed by a
/// read of some key (its own or another thread's), until told to stop. A request that gets no
/// answer is recorded as unknown and the thread goes on as a new client, as `dkvs workload`
/// does.
fn client_thread(w: &Workload, t: usize) {
    let node = thread_node(t) - 1;
    let state = &w.threads[t];
    let keys = all_keys();
    let mut client = t as ClientId;
    let mut written = 0u64;
    let mut step = 0usize;
    let mut conn: Option<Client> = None;
    // The address generation whose connection failed: do not reconnect to it.
    let mut failed_generation = None;
    let (mut phase, mut phase_ops) = (BEFORE_CRASH, 0);
    while !w.stop.load(Ordering::SeqCst) {
        let now = w.phase.load(Ordering::SeqCst) as usize;
        if now != phase {
            (phase, phase_ops) = (now, 0);
        }
        if phase_ops >= PHASE_BUDGET {
            idle();
            continue;
        }
        let Some(c) = conn.as_mut() else {
            let (addr, generation) = w.addrs.lock().unwrap()[node];
            if failed_generation == Some(generation) {
                idle();
                continue;
            }
            match Client::try_connect(addr, PATIENCE) {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    failed_generation = Some(generation);
                    idle();
                }
            }
            continue;
        };
        let op = if step.is_multiple_of(2) {
            written += 1;
            Op::Set {
                key: owned_key(t, (step / 2) % KEYS_PER_THREAD),
                value: format!("{t}.{written}"),
            }
        } else {
            Op::Get {
                key: keys[(step / 2 + t) % keys.len()].clone(),
            }
        };
        step += 1;
        phase_ops += 1;
        state.writing.store(op.is_write(), Ordering::SeqCst);
        let id = w.recorder.invoke(client, op.clone());
        match c.try_request(&line(&op)) {
            Ok(reply) => {
                let result = outcome(&reply);
                w.recorder.complete(id, result.clone());
                match result {
                    Outcome::Ok => {
                        state.acked[phase].fetch_add(1, Ordering::SeqCst);
                    }
                    Outcome::Fail => {
                        // Expected only from the restarted node while it catches up.
                        if !(node == 2 && reply.starts_with("ERR not ready")) {
                            let note = format!("node {}: {op} -> {reply}", node + 1);
                            w.unexpected.lock().unwrap().push(note);
                        }
                        idle();
                    }
                    _ => {}
                }
            }
            Err(_) => {
                // The node died (or did not answer in time): the write may or may not have
                // taken effect.
                w.recorder.complete(id, Outcome::Unknown);
                client += THREADS as ClientId;
                failed_generation = Some(w.addrs.lock().unwrap()[node].1);
                conn = None;
            }
        }
        state.writing.store(false, Ordering::SeqCst);
    }
}

/// Reads every key on node 3 as soon as it serves again (it answers `ERR not ready` while it
/// catches up); the reads go into the history as client [`SWEEP_CLIENT`].
fn sweep(w: &Workload, node3: &ServerProcess) {
    let mut client = node3.client();
    let deadline = Instant::now() + PATIENCE;
    for key in all_keys() {
        loop {
            let op = Op::Get { key: key.clone() };
            let id = w.recorder.invoke(SWEEP_CLIENT, op.clone());
            let reply = client.request(&line(&op));
            let result = outcome(&reply);
            w.recorder.complete(id, result.clone());
            if result != Outcome::Fail {
                break;
            }
            assert!(
                reply.starts_with("ERR not ready") && Instant::now() < deadline,
                "restarted node 3 answered {reply:?}; log:\n{}",
                node3.log()
            );
            thread::sleep(Duration::from_millis(5)); // polling a condition, with a deadline
        }
    }
}

/// The crash test, for one total-order broadcast.
///
/// Node 3 is a follower either way: with `tob = "sequencer"` node 1 numbers the writes
/// (the smallest id), and with `tob = "lamport"` no node is special. The cluster goes through
/// three phases, each entered once every thread that can make progress has had
/// [`PHASE_WRITES`] writes acknowledged:
///
/// 1. all six threads write (two per node);
/// 2. node 3 is killed with SIGKILL in the middle of its own threads' writes, while the threads
///    of nodes 1 and 2 keep writing;
/// 3. node 3 is restarted with the same data directory and config, and its threads reconnect.
///
/// Then the threads stop and the nodes must agree.
fn follower_crash_restart(tob: &str) {
    let lamport = tob == "lamport";
    let config = cluster_config("sequential", tob, NODES, REPLICATION);
    let (dir, mut nodes) = start_cluster(&config);
    let w = Arc::new(Workload {
        recorder: HistoryRecorder::new(),
        addrs: Mutex::new(nodes.iter().map(|n| (n.addr, 0)).collect()),
        phase: AtomicU64::new(BEFORE_CRASH as u64),
        stop: AtomicBool::new(false),
        threads: (0..THREADS).map(|_| ThreadState::default()).collect(),
        unexpected: Mutex::new(Vec::new()),
    });
    let _stop = StopOnDrop(w.clone());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let w = w.clone();
            thread::spawn(move || client_thread(&w, t))
        })
        .collect();

    wait_for("writes acknowledged on every node", &nodes, || {
        (0..THREADS).all(|t| w.acked(t, BEFORE_CRASH) >= PHASE_WRITES)
    });
    // Node 3's clients keep writing: it dies with writes of its own in flight, some recorded
    // in its store and never sent. With `tob = "lamport"` that used to stop the cluster for
    // good once in three runs (no peer had the broadcast, and everyone knew it existed); each
    // node now keeps its own broadcasts in its store and sends them again after a restart
    // ("The ring of own broadcasts" in src/node/lamport.rs).
    nodes[2].kill9();
    let killed = Instant::now();
    let killed_ns = w.recorder.now_ns();
    w.phase.store(NODE3_DOWN as u64, Ordering::SeqCst);

    if lamport {
        // Every delivery needs to have heard from every node past the write's stamp, so with
        // node 3 down no write is delivered anywhere: the clients of nodes 1 and 2 stall (that
        // is the lesson of stage 03; only progress after the restart is required). Show it:
        // once the outage has lasted long enough for node 3's last messages to have been
        // handled, a new write on node 1 gets no answer.
        wait_for("the writers of nodes 1 and 2 to stall", &nodes, || {
            killed.elapsed() >= Duration::from_millis(200)
                && (0..THREADS)
                    .filter(|t| thread_node(*t) != 3)
                    .all(|t| w.threads[t].writing.load(Ordering::SeqCst))
        });
        let probe = Op::Set {
            key: "probe".into(),
            value: "p.1".into(),
        };
        let mut client = Client::try_connect(nodes[0].addr, Duration::from_millis(300))
            .expect("connect to node 1");
        let id = w.recorder.invoke(PROBE_CLIENT, probe.clone());
        let reply = client.try_request(&line(&probe));
        w.recorder.complete(id, Outcome::Unknown);
        assert!(
            reply.is_err(),
            "with tob = lamport a write needs node 3, yet node 1 answered {reply:?} while it was down"
        );
    } else {
        // The sequencer (node 1) and node 2 go on without the follower.
        wait_for("progress on nodes 1 and 2 without node 3", &nodes, || {
            (0..THREADS)
                .filter(|t| thread_node(*t) != 3)
                .all(|t| w.acked(t, NODE3_DOWN) >= PHASE_WRITES)
        });
    }

    let restart_ns = w.recorder.now_ns();
    nodes[2] = ServerProcess::start_node(dir.path(), &data_dir(dir.path(), 3), &config, 3);
    {
        let mut addrs = w.addrs.lock().unwrap();
        addrs[2] = (nodes[2].addr, addrs[2].1 + 1);
    }
    w.phase.store(RESTARTED as u64, Ordering::SeqCst);
    sweep(&w, &nodes[2]);
    wait_for("progress on every node after the restart", &nodes, || {
        (0..THREADS).all(|t| w.acked(t, RESTARTED) >= PHASE_WRITES)
    });
    w.stop.store(true, Ordering::SeqCst);
    for handle in handles {
        handle.join().expect("client thread panicked");
    }
    let unexpected = w.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "unexpected replies: {unexpected:#?}");

    let mut keys = all_keys();
    if lamport {
        keys.push("probe".into());
    }
    let agreed = converge(&nodes, &keys);
    for node in 1..=NODES {
        w.recorder.record_replica(u64::from(node), agreed.clone());
    }
    let history = w.recorder.history().expect("well-formed history");

    // What each key was written with and what node 3 had shown, from the history.
    let mut last_acked: BTreeMap<&str, u64> = BTreeMap::new();
    let mut acked_before_restart: BTreeMap<&str, u64> = BTreeMap::new();
    let mut shown_by_3: BTreeMap<&str, u64> = BTreeMap::new();
    let mut written: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let raise = |map: &mut BTreeMap<_, u64>, key, n| {
        let e = map.entry(key).or_default();
        *e = (*e).max(n);
    };
    for op in &history.ops {
        let before_kill = op.return_ns.is_some_and(|r| r < killed_ns);
        match (&op.op, &op.outcome) {
            (Op::Set { key, value }, Outcome::Ok) if key != "probe" => {
                written.entry(key).or_default().insert(value);
                let n = counter(Some(value));
                raise(&mut last_acked, key.as_str(), n);
                if op.return_ns.is_some_and(|r| r < restart_ns) {
                    raise(&mut acked_before_restart, key.as_str(), n);
                }
                if before_kill && client_node(op.client) == 3 {
                    raise(&mut shown_by_3, key.as_str(), n);
                }
            }
            (Op::Set { key, value }, Outcome::Unknown) => {
                written.entry(key).or_default().insert(value);
            }
            (Op::Get { key }, Outcome::Value { value })
                if before_kill && client_node(op.client) == 3 =>
            {
                raise(&mut shown_by_3, key.as_str(), counter(Some(value)));
            }
            _ => {}
        }
    }

    // (a) Every acknowledged write is on every node: each key holds its last acknowledged
    // value, or a later one whose writer got no answer (a write in flight when node 3 died).
    for key in all_keys() {
        let value = agreed.get(&key).map(String::as_str);
        let last = last_acked.get(key.as_str()).copied().unwrap_or(0);
        assert!(last > 0, "no write of {key} was acknowledged");
        assert!(
            counter(value) >= last,
            "{key}: the nodes agree on {value:?}, older than the last acknowledged write {last}"
        );
        assert!(
            value.is_some_and(|v| written[key.as_str()].contains(v)),
            "{key}: the nodes agree on {value:?}, which no write of the test produced"
        );
    }
    if lamport {
        // The write that stalled while node 3 was down was not lost: it was delivered once
        // node 3 was back.
        assert_eq!(
            agreed.get("probe").map(String::as_str),
            Some("p.1"),
            "the write made while node 3 was down"
        );
    }

    // (b) The restarted node 3 never goes back on what it had itself acknowledged or served
    // before the crash (its delivered state is durable). With the sequencer it also serves
    // nothing older than a write acknowledged by any node before the restart began: a
    // restarted follower is not ready until it has delivered up to the sequencer's last
    // number. A restarted Lamport node is ready at once, as soon as it has its own broadcasts
    // back from its store (src/node/lamport.rs, "A restarted node serves old state"), so until
    // the broadcasts it lacks come back it may serve a state older than writes other nodes had
    // acknowledged before the crash — stale, as local reads of the sequential mode may be.
    let mut reads_on_3 = 0;
    let mut stale_after_restart = Vec::new();
    for op in &history.ops {
        let (Op::Get { key }, Some(_)) = (&op.op, op.return_ns) else {
            continue;
        };
        if client_node(op.client) != 3 || op.call_ns < restart_ns {
            continue;
        }
        let seen = match &op.outcome {
            Outcome::Value { value } => counter(Some(value)),
            Outcome::NotFound => 0,
            _ => continue,
        };
        reads_on_3 += 1;
        let own = shown_by_3.get(key.as_str()).copied().unwrap_or(0);
        assert!(
            seen >= own,
            "restarted node 3 answered `{}` with {:?}, older than write {own} it had itself \
             acknowledged or served before the crash",
            op.op,
            op.outcome
        );
        let floor = acked_before_restart.get(key.as_str()).copied().unwrap_or(0);
        if seen < floor {
            stale_after_restart.push(format!(
                "`{}` answered {:?}, older than write {floor} acknowledged before the restart",
                op.op, op.outcome
            ));
        }
    }
    assert!(
        reads_on_3 >= all_keys().len(),
        "the restarted node served too few reads"
    );
    if lamport {
        if !stale_after_restart.is_empty() {
            eprintln!(
                "note: restarted Lamport node 3 served {} stale reads before catching up, e.g. {}",
                stale_after_restart.len(),
                stale_after_restart[0]
            );
        }
    } else {
        assert!(
            stale_after_restart.is_empty(),
            "restarted node 3 served before it had caught up: {stale_after_restart:#?}"
        );
    }

    // (c) The whole history, crash included, is sequentially consistent, and the replicas
    // converged on written values.
    assert_eq!(
        eventual::check(&history).expect("history"),
        Verdict::Consistent
    );
    let verdict = sequential::check(&history, &Budget::default());
    assert_eq!(verdict, Verdict::Consistent, "tob = {tob}");
}

#[test]
fn sequencer_follower_crash_restart_loses_no_acknowledged_write() {
    follower_crash_restart("sequencer");
}

#[test]
fn lamport_follower_crash_restart_loses_no_acknowledged_write() {
    follower_crash_restart("lamport");
}

// ---------------------------------------------------------------------------------------------
// Partition and heal under eventual consistency.
// ---------------------------------------------------------------------------------------------

/// Runs `op` on `conn` as `client`, recording it; the node must answer.
fn run(recorder: &HistoryRecorder, client: ClientId, conn: &mut Client, op: Op) -> Outcome {
    let id = recorder.invoke(client, op.clone());
    let reply = conn.request(&line(&op));
    let result = outcome(&reply);
    assert_ne!(result, Outcome::Fail, "unexpected reply {reply:?} to {op}");
    recorder.complete(id, result.clone());
    result
}

fn set(key: &str, value: &str) -> Op {
    Op::Set {
        key: key.into(),
        value: value.into(),
    }
}

fn del(key: &str) -> Op {
    Op::Del { key: key.into() }
}

/// `count` writes of `key` on `conn`: each local write moves the node's Lamport clock forward
/// by at least one, so the node's next writes carry larger stamps than anything the other side
/// of a partition wrote while its clock was that far behind.
fn pump(recorder: &HistoryRecorder, client: ClientId, conn: &mut Client, key: &str, count: u32) {
    for i in 1..=count {
        run(recorder, client, conn, set(key, &format!("{client}.{i}")));
    }
}

#[test]
fn eventual_partition_diverges_then_heals_to_the_last_writer() {
    let config = cluster_config("eventual", "sequencer", NODES, REPLICATION);
    let (_dir, nodes) = start_cluster(&config);
    let recorder = HistoryRecorder::new();
    let (mut n1, mut n3) = (nodes[0].client(), nodes[2].client());

    // Keys that one side deletes during the partition exist everywhere before it.
    for key in ["gone1", "gone3", "back"] {
        run(&recorder, 1, &mut n1, set(key, "1.before"));
    }
    let before: Vec<String> = ["gone1", "gone3", "back"].map(String::from).to_vec();
    converge(&nodes, &before);

    // Cut node 3 off from nodes 1 and 2, as seen from both sides.
    assert_eq!(
        n3.request("fault partition 1 2"),
        "OK faults: node 1: partitioned; node 2: partitioned"
    );
    for node in &nodes[..2] {
        assert_eq!(
            node.client().request("fault partition 3"),
            "OK faults: node 3: partitioned"
        );
    }

    // Last writer wins by Lamport stamp, not by real time, so the test makes the stamps'
    // order certain. A node's clock moves past every stamp it sees and by at least one per local
    // write; node 3, cut off, sees nothing, so its clock moves only with its own writes. Before
    // writing its winners each side "pumps" its clock with writes to a private key, far past
    // anything the other side can have stamped since the partition began (the clocks were a few
    // dozen apart then; node 1's grows by about three per write, counting node 2's acks).
    const PUMP3: u32 = 300;
    const PUMP1: u32 = 700;
    let rs = ["r0", "r1", "r2"];
    let ks = ["k0", "k1", "k2"];

    // Node 1 first: writes that will lose.
    for key in rs {
        run(&recorder, 1, &mut n1, set(key, "1.early"));
    }
    run(&recorder, 1, &mut n1, set("gone3", "1.set")); // node 3 deletes it later
    run(&recorder, 1, &mut n1, del("back")); // node 3 sets it later

    // Node 3, past node 1's clock: these win over the writes above ...
    pump(&recorder, 3, &mut n3, "pump3", PUMP3);
    for key in rs {
        run(&recorder, 3, &mut n3, set(key, "3.late"));
    }
    run(&recorder, 3, &mut n3, del("gone3"));
    run(&recorder, 3, &mut n3, set("back", "3.back"));
    // ... and these lose to node 1's writes below.
    for key in ks {
        run(&recorder, 3, &mut n3, set(key, "3.early"));
    }
    run(&recorder, 3, &mut n3, set("gone1", "3.set")); // node 1 deletes it later

    // Node 1, past node 3's clock.
    pump(&recorder, 1, &mut n1, "pump1", PUMP1);
    for key in ks {
        run(&recorder, 1, &mut n1, set(key, "1.late"));
    }
    run(&recorder, 1, &mut n1, del("gone1"));

    let keys: Vec<String> = rs
        .iter()
        .chain(&ks)
        .chain(&["gone1", "gone3", "back", "pump1", "pump3"])
        .map(|k| k.to_string())
        .collect();
    let side1: BTreeMap<String, String> = rs
        .iter()
        .map(|k| (k.to_string(), "1.early".to_string()))
        .chain(ks.iter().map(|k| (k.to_string(), "1.late".to_string())))
        .chain([
            ("gone3".to_string(), "1.set".to_string()),
            ("pump1".to_string(), format!("1.{PUMP1}")),
        ])
        .collect();
    let side3: BTreeMap<String, String> = rs
        .iter()
        .map(|k| (k.to_string(), "3.late".to_string()))
        .chain(ks.iter().map(|k| (k.to_string(), "3.early".to_string())))
        .chain([
            ("gone1".to_string(), "3.set".to_string()),
            ("back".to_string(), "3.back".to_string()),
            ("pump3".to_string(), format!("3.{PUMP3}")),
        ])
        .collect();

    // Divergence: each side answers from its own writes. Node 2, on node 1's side, gets node
    // 1's writes; node 3 hears nothing.
    let mut n2 = nodes[1].client();
    wait_for("node 2 to get node 1's writes", &nodes, || {
        read_all(&mut n2, &keys) == side1
    });
    assert_eq!(
        read_all(&mut n1, &keys),
        side1,
        "node 1 during the partition"
    );
    assert_eq!(
        read_all(&mut n3, &keys),
        side3,
        "node 3 during the partition"
    );
    for key in &keys {
        let op = Op::Get { key: key.clone() };
        let on1 = run(&recorder, 1, &mut n1, op.clone());
        let on3 = run(&recorder, 3, &mut n3, op);
        assert_ne!(
            on1, on3,
            "{key}: the two sides of the partition must disagree"
        );
    }

    for node in &nodes {
        assert_eq!(node.client().request("fault heal"), "OK faults: none");
    }

    // Convergence: every node holds, for each key, the write with the larger stamp. Deletes
    // are stamped tombstones, so a delete that came later stays deleted (gone1, gone3) even
    // though the other side still had a live value, and a set that came later beats an older
    // delete (back).
    let agreed = converge(&nodes, &keys);
    let expected: BTreeMap<String, String> = rs
        .iter()
        .map(|k| (k.to_string(), "3.late".to_string()))
        .chain(ks.iter().map(|k| (k.to_string(), "1.late".to_string())))
        .chain([
            ("back".to_string(), "3.back".to_string()),
            ("pump1".to_string(), format!("1.{PUMP1}")),
            ("pump3".to_string(), format!("3.{PUMP3}")),
        ])
        .collect();
    assert_eq!(agreed, expected, "after the heal");

    for node in 1..=NODES {
        recorder.record_replica(u64::from(node), agreed.clone());
    }
    let history: History = recorder.history().expect("well-formed history");
    assert_eq!(
        eventual::check(&history).expect("history"),
        Verdict::Consistent
    );
}
