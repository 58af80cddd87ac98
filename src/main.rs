//! The `dkvs` command: parses arguments and hands over to the library.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dkvs::check::jepsen::{self, Format};
use dkvs::check::{self, Budget, Clock, Property, Report};
use dkvs::config::Config;
use dkvs::runtime::{ServeOptions, server};

/// A teaching toolkit for distributed key-value stores.
#[derive(Parser)]
#[command(name = "dkvs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run one node of the cluster described by a config file.
    Serve {
        /// The cluster's TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Which `[[nodes]]` entry this process is.
        #[arg(long, default_value_t = 1)]
        node: u32,
        /// Listen for clients here instead of the node's `client` address (port 0: any free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Keep data here instead of the node's data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Threads serving clients: 0 means one per core; 1 runs every connection on one
        /// thread, as Redis does (no cross-thread wake-ups; fsync and compaction keep their own
        /// threads either way).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Start every node of a cluster config as child processes of this one (`serve --node N`
    /// for each `[[nodes]]` entry). Ctrl-C stops them all cleanly.
    Cluster {
        /// The cluster's TOML config file.
        config: PathBuf,
    },
    /// Run concurrent recording clients against a running cluster and write their history.
    Workload {
        /// The cluster's TOML config file (for the nodes' client addresses).
        #[arg(long, short)]
        config: PathBuf,
        /// Concurrent clients; client c talks to node c mod the number of nodes.
        #[arg(long, default_value_t = 8)]
        clients: u64,
        /// Operations per client.
        #[arg(long, default_value_t = 250)]
        ops: u64,
        /// Number of keys (few keys, more collisions).
        #[arg(long, default_value_t = 5)]
        keys: u64,
        /// Seeds the mix of operations.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A reply slower than this is recorded as unknown.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// Where to write the history (JSON lines).
        #[arg(long)]
        out: PathBuf,
    },
    /// Judge a recorded history: is it linearizable, sequentially consistent, convergent?
    ///
    /// Exit status: 0 consistent, 1 violation, 2 bad input, 3 unknown (the budget ran out).
    Check {
        /// The property to check the history against.
        #[arg(long, value_enum, default_value_t = ModelArg::Linearizable)]
        model: ModelArg,
        /// The history's format; `auto` recognises it from the first line.
        #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
        format: FormatArg,
        /// Print the verdict as one JSON object (one per file).
        #[arg(long)]
        json: bool,
        /// Answer "unknown" after this many seconds (0: no limit).
        #[arg(long, default_value_t = 60.0)]
        time_limit_s: f64,
        /// Answer "unknown" when the search's memo tables outgrow this many MiB.
        #[arg(long, default_value_t = 1024)]
        memory_limit_mib: usize,
        /// Search steps to spend shrinking a violation to the operations that matter (0: show
        /// the whole failing key, unshrunk). A step budget, not a time limit, so the same
        /// history always gets the same explanation.
        #[arg(long, default_value_t = 20_000_000)]
        shrink_steps: u64,
        /// History files; `-` reads standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Draw a recorded trace (JSON lines from `dkvs sim --trace-out`, or captured from a node's
    /// `trace` command) as a Lamport diagram, or as an event list.
    Diagram {
        /// The trace file; `-` reads standard input.
        file: PathBuf,
        /// One line per event instead of a diagram.
        #[arg(long)]
        list: bool,
        /// The widest a line may be.
        #[arg(long, default_value_t = 100)]
        width: usize,
        /// Only events at or after this time (milliseconds, as the diagram's margin shows).
        #[arg(long)]
        from_ms: Option<f64>,
        /// Only events at or before this time.
        #[arg(long)]
        to_ms: Option<f64>,
    },
    /// Run golden scenario scripts (`stages/*/scenarios/*.txt`) in the simulator and print
    /// their transcripts.
    Scenario {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Simulate a cluster deterministically: run a workload under faults on virtual time, and
    /// judge its history.
    ///
    /// The same config and seed always give the same run. Exit status: 0 no violation,
    /// 1 a violation (or a cluster that never settled), 2 bad input, 3 unknown (a check ran
    /// out of budget).
    Sim(SimArgs),
}

/// `--check` of `dkvs sim`: a property, or none.
#[derive(Clone, Copy, clap::ValueEnum)]
enum SimCheckArg {
    Linearizable,
    Sequential,
    Eventual,
    /// Judge nothing (to measure the simulator alone).
    None,
}

/// `--model`: the same words as [`dkvs::check::Property`].
#[derive(Clone, Copy, clap::ValueEnum)]
enum ModelArg {
    Linearizable,
    Sequential,
    Eventual,
}

/// `--format`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Auto,
    Jsonl,
    JepsenLog,
    JepsenEdn,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Commands::Cluster { config } => cluster(&config),
        Commands::Workload {
            config,
            clients,
            ops,
            keys,
            seed,
            timeout_ms,
            out,
        } => Config::load(&config)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                let options = dkvs::workload::WorkloadOptions {
                    nodes: config.nodes.iter().map(|n| n.client).collect(),
                    clients,
                    ops,
                    keys,
                    seed,
                    timeout: Duration::from_millis(timeout_ms.max(1)),
                };
                let recorder = dkvs::workload::run(&options);
                let file = std::fs::File::create(&out)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
                recorder.write_jsonl(std::io::BufWriter::new(file))?;
                let history = recorder.history()?;
                let unknown = history
                    .ops
                    .iter()
                    .filter(|o| o.outcome == check::Outcome::Unknown)
                    .count();
                println!(
                    "recorded {} operations ({unknown} unknown) from {clients} clients, and {} replicas, in {}",
                    history.ops.len(),
                    history.replicas.len(),
                    out.display()
                );
                Ok(())
            }),
        Commands::Check {
            model,
            format,
            json,
            time_limit_s,
            memory_limit_mib,
            shrink_steps,
            files,
        } => {
            let property = match model {
                ModelArg::Linearizable => Property::Linearizable,
                ModelArg::Sequential => Property::Sequential,
                ModelArg::Eventual => Property::Eventual,
            };
            let budget = Budget {
                time_limit: (time_limit_s > 0.0)
                    .then(|| Duration::try_from_secs_f64(time_limit_s).unwrap_or(Duration::MAX)),
                memory_limit_bytes: memory_limit_mib.saturating_mul(1 << 20),
                shrink_steps,
            };
            return check(property, format, json, &budget, &files);
        }
        Commands::Diagram {
            file,
            list,
            width,
            from_ms,
            to_ms,
        } => diagram(&file, list, width, from_ms, to_ms),
        Commands::Scenario { files } => {
            let mut status = 0;
            for file in &files {
                let text = match std::fs::read_to_string(file) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: {}: {e}", file.display());
                        status = 2;
                        continue;
                    }
                };
                match dkvs::sim::script::run(&text) {
                    Ok(transcript) => print!("{transcript}"),
                    Err(e) => {
                        eprintln!("error: {}: {e}", file.display());
                        status = 2;
                    }
                }
            }
            return ExitCode::from(status);
        }
        Commands::Sim(args) => {
            return sim(&args).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            });
        }
        Commands::Serve {
            config,
            node,
            listen,
            data_dir,
            threads,
        } => serve(
            config,
            threads,
            ServeOptions {
                node_id: node,
                listen,
                data_dir,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `dkvs check`: judges each file and returns the most serious status (bad input, then
/// violation, then unknown).
fn check(
    property: Property,
    format: FormatArg,
    json: bool,
    budget: &Budget,
    files: &[PathBuf],
) -> ExitCode {
    let many = files.len() > 1;
    let mut statuses = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let start = Instant::now();
        let parsed = read_history(file, format);
        let (history, clock) = match parsed {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {name}: {e:#}");
                statuses.push(2);
                continue;
            }
        };
        let verdict = match check::judge(property, &history, budget) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {name}: {e}");
                statuses.push(2);
                continue;
            }
        };
        let report = Report {
            property,
            history: &history,
            verdict: &verdict,
            elapsed: start.elapsed(),
            clock,
        };
        if json {
            let mut value = report.json();
            if let Some(map) = value.as_object_mut() {
                map.insert("file".into(), name.clone().into());
            }
            println!("{value}");
        } else if many {
            print!("{name}: {}", report.text());
        } else {
            print!("{}", report.text());
        }
        statuses.push(verdict.exit_code());
    }
    let worst = [2, 1, 3]
        .into_iter()
        .find(|s| statuses.contains(s))
        .unwrap_or(0);
    ExitCode::from(worst)
}

/// Reads one history file in the given format.
fn read_history(file: &Path, format: FormatArg) -> anyhow::Result<(check::History, Clock)> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)?
    };
    let format = match format {
        FormatArg::Auto => {
            // Blank lines and EDN comments say nothing about the format.
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with(';'))
                .unwrap_or("");
            jepsen::detect(first).ok_or_else(|| {
                anyhow::anyhow!("cannot tell the format from the first line; use --format")
            })?
        }
        FormatArg::Jsonl => Format::Jsonl,
        FormatArg::JepsenLog => Format::JepsenLog,
        FormatArg::JepsenEdn => Format::JepsenEdn,
    };
    let clock = match format {
        Format::Jsonl => Clock::Nanos,
        Format::JepsenLog | Format::JepsenEdn => Clock::Lines,
    };
    Ok((jepsen::parse(format, text.as_bytes())?, clock))
}

/// `dkvs cluster`: runs `dkvs serve --node N` for every node and waits for them.
fn cluster(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let exe = std::env::current_exe()?;
    // Ctrl-C reaches every process of the terminal's foreground group, the children included:
    // they shut down cleanly on it, and this process waits for them instead of dying first.
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: installs an async-signal-safe handler that does nothing; a caught (not ignored)
    // signal is reset to the default in exec'd children.
    unsafe {
        libc::signal(libc::SIGINT, ignore as *const () as libc::sighandler_t);
    }
    let mut children = Vec::new();
    #[cfg(target_os = "linux")]
    let parent = std::process::id() as libc::pid_t;
    for node in &config.nodes {
        let mut command = std::process::Command::new(&exe);
        command
            .arg("serve")
            .arg("--config")
            .arg(config_path)
            .arg("--node")
            .arg(node.id.to_string());
        // A SIGTERM or SIGKILL to this process must not leave the nodes running on their
        // ports: the kernel sends each child SIGTERM (a clean shutdown) when its parent dies.
        // SAFETY: between fork and exec the closure only makes async-signal-safe system calls.
        #[cfg(target_os = "linux")]
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the request was in place.
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start node {}: {e}", node.id))?;
        children.push((node.id, child));
    }
    let mut failed = Vec::new();
    for (id, mut child) in children {
        let status = child.wait()?;
        if !status.success() {
            failed.push(format!("node {id} ({status})"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} exited with an error", failed.join(", "))
    }
}

fn serve(config_path: PathBuf, threads: usize, options: ServeOptions) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    server::serve(&config, threads, &options)
}

/// The arguments of `dkvs sim`.
#[derive(clap::Args)]
struct SimArgs {
    /// The cluster's TOML config file (mode, tob, nodes, [replication]).
    #[arg(long, short)]
    config: PathBuf,
    /// The seed of one run.
    #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
    seed: u64,
    /// Sweep seeds `A..B` (both included); stops at the first failing seed.
    #[arg(long)]
    seeds: Option<String>,
    /// Operations per run.
    #[arg(long, default_value_t = 500)]
    ops: usize,
    /// Concurrent clients, spread over the nodes.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Number of keys (few keys, more collisions).
    #[arg(long, default_value_t = 3)]
    keys: usize,
    /// Faults to inject: none, all, or a comma-separated list of partition, crash, drop,
    /// duplicate, reorder, delay, unsynced.
    #[arg(long, default_value = "none")]
    faults: String,
    /// The property to judge (default: the level the config's mode promises).
    #[arg(long, value_enum)]
    check: Option<SimCheckArg>,
    /// Write the (last) run's trace here, as JSON lines (for `dkvs-tui --replay`).
    #[arg(long)]
    trace_out: Option<PathBuf>,
    /// Write the (last) run's history here, as JSON lines (for `dkvs check`).
    #[arg(long)]
    history_out: Option<PathBuf>,
    /// Print the (last) run's whole trace as a diagram.
    #[arg(long)]
    diagram: bool,
    /// Print one line per seed of a sweep.
    #[arg(long, short)]
    verbose: bool,
}

/// `A..B` or `A..=B`, both ends included.
fn parse_seeds(text: &str) -> anyhow::Result<std::ops::RangeInclusive<u64>> {
    let (a, b) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .ok_or_else(|| anyhow::anyhow!("--seeds {text:?}: expected A..B, e.g. 1..1000"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|e| anyhow::anyhow!("--seeds {text:?}: {s:?} is not a seed: {e}"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if b < a {
        anyhow::bail!("--seeds {text:?}: the range is empty");
    }
    Ok(a..=b)
}

/// `dkvs sim`: one seed, or a sweep that stops at the first failure.
fn sim(args: &SimArgs) -> anyhow::Result<ExitCode> {
    use dkvs::sim::SimConfig;
    use dkvs::sim::run::{self, RunOptions};

    let config = Config::load(&args.config)?;
    let sim_config = SimConfig::from_config(&config).map_err(|e| anyhow::anyhow!(e))?;
    let faults: run::Faults = args
        .faults
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let check = match args.check {
        None => Some(sim_config.promised()),
        Some(SimCheckArg::Linearizable) => Some(Property::Linearizable),
        Some(SimCheckArg::Sequential) => Some(Property::Sequential),
        Some(SimCheckArg::Eventual) => Some(Property::Eventual),
        Some(SimCheckArg::None) => None,
    };
    let seeds = match &args.seeds {
        Some(text) => parse_seeds(text)?,
        None => args.seed..=args.seed,
    };
    let sweep = seeds.start() != seeds.end();
    let options = RunOptions {
        ops: args.ops,
        clients: args.clients,
        keys: args.keys,
        faults,
        check,
        // Every run of a sweep must end: a minute per check at most, then "unknown".
        budget: Budget::default(),
        // Runs are replayable: a failing seed runs again with its trace kept, so the sweep
        // itself need not keep any.
        trace: args.diagram || args.trace_out.is_some(),
        ..RunOptions::default()
    };
    let check_word = check.map_or("none", Property::name);
    println!(
        "simulating {} ({} nodes, {}), {} operations per seed, faults: {faults}, check: {check_word}",
        sim_config.kind,
        sim_config.nodes.len(),
        sim_config.tob,
        args.ops
    );
    let mut totals = (0u64, Duration::ZERO, Duration::ZERO, 0usize);
    let mut status = 0u8;
    let mut last = None;
    for seed in seeds.clone() {
        let mut result = run::run(&sim_config, &options, seed);
        totals.0 += result.stats.delivered;
        totals.1 += result.sim_time;
        totals.2 += result.check_time;
        totals.3 += 1;
        if result.failed() && !options.trace {
            let traced = RunOptions {
                trace: true,
                ..options.clone()
            };
            result = run::run(&sim_config, &traced, seed);
        }
        if !sweep || args.verbose || result.failed() {
            println!("{}", summary_line(&result));
        }
        if result.failed() {
            explain(&result, &sim_config.nodes);
            let check_arg = args
                .check
                .map(|_| format!(" --check {check_word}"))
                .unwrap_or_default();
            println!(
                "replay: dkvs sim --config {} --seed {seed} --ops {} --clients {} --keys {} --faults {faults}{check_arg}",
                args.config.display(),
                args.ops,
                args.clients,
                args.keys
            );
            status = 1;
            last = Some(result);
            break;
        }
        if matches!(result.verdict, Some((_, check::Verdict::Unknown { .. }))) {
            status = status.max(3);
        }
        last = Some(result);
    }
    let (delivered, sim_time, check_time, runs) = totals;
    if sweep && status != 1 {
        println!(
            "seeds {}..{}: {runs} runs, no violation{}",
            seeds.start(),
            seeds.end(),
            if status == 3 {
                " (some checks unknown)"
            } else {
                ""
            }
        );
    }
    let rate = delivered as f64 / sim_time.as_secs_f64().max(1e-9);
    println!(
        "simulated {delivered} messages in {:.3} s of wall time ({:.2} M messages/s); checking took {:.3} s",
        sim_time.as_secs_f64(),
        rate / 1e6,
        check_time.as_secs_f64()
    );
    if let Some(result) = last {
        if args.diagram {
            print!(
                "{}",
                dkvs::trace::diagram(
                    &result.trace,
                    &sim_config.nodes,
                    &dkvs::trace::DiagramOptions::default()
                )
            );
        }
        if let Some(path) = &args.trace_out {
            let file = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            dkvs::trace::write_jsonl(&result.trace, std::io::BufWriter::new(file))?;
            println!("trace of seed {}: {}", result.seed, path.display());
        }
        if let Some(path) = &args.history_out {
            let file = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            result.history.write_jsonl(std::io::BufWriter::new(file))?;
            println!("history of seed {}: {}", result.seed, path.display());
        }
    }
    Ok(ExitCode::from(status))
}

/// One line about a run.
fn summary_line(result: &dkvs::sim::run::RunResult) -> String {
    let unknown = result
        .history
        .ops
        .iter()
        .filter(|o| o.outcome == check::Outcome::Unknown)
        .count();
    let failed = result
        .history
        .ops
        .iter()
        .filter(|o| o.outcome == check::Outcome::Fail)
        .count();
    let verdict = match &result.verdict {
        _ if result.unsettled.is_some() => "DID NOT SETTLE".to_string(),
        None => "not checked".to_string(),
        Some((p, check::Verdict::Consistent)) => format!("{}: ok", p.name()),
        Some((p, check::Verdict::Violation(_))) => format!("{}: VIOLATION", p.name()),
        Some((p, check::Verdict::Unknown { reason })) => {
            format!("{}: unknown ({reason})", p.name())
        }
    };
    format!(
        "seed {}: {} operations ({unknown} unknown, {failed} refused), {} messages delivered, {} dropped, {:.3} s virtual; {verdict}",
        result.seed,
        result.history.ops.len(),
        result.stats.delivered,
        result.stats.dropped,
        result.virtual_us as f64 / 1e6,
    )
}

/// Prints why a run failed: the checker's report and the trace around the violation.
fn explain(result: &dkvs::sim::run::RunResult, nodes: &[u32]) {
    if let Some(busy) = &result.unsettled {
        println!(
            "the cluster did not settle within {} s of virtual time after every fault was lifted: {busy}",
            dkvs::sim::run::SETTLE_LIMIT_US / 1_000_000
        );
        let tail = result.trace.len().saturating_sub(60);
        println!("the last events:");
        print!("{}", dkvs::trace::event_list(&result.trace[tail..]));
        return;
    }
    let Some((property, verdict)) = &result.verdict else {
        return;
    };
    let report = Report {
        property: *property,
        history: &result.history,
        verdict,
        elapsed: result.check_time,
        clock: Clock::Simulated,
    };
    print!("{}", report.text());
    if let check::Verdict::Violation(v) = verdict {
        let ids: Vec<u64> = v.ops.iter().map(|o| o.id).collect();
        let events = result.focus(&ids, 200);
        if !events.is_empty() {
            println!("the message flow of these operations:");
            print!(
                "{}",
                dkvs::trace::diagram(&events, nodes, &dkvs::trace::DiagramOptions::default())
            );
        }
    }
}

/// `dkvs diagram`: reads trace events, leniently (a capture from a node's `trace` command
/// starts with an `OK` line and may hold `{"lost":N}` notes), and draws them.
fn diagram(
    file: &Path,
    list: bool,
    width: usize,
    from_ms: Option<f64>,
    to_ms: Option<f64>,
) -> anyhow::Result<()> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
    };
    let (mut events, skipped) = dkvs::trace::read_capture(&text);
    let from_us = from_ms.map(|ms| (ms * 1000.0) as u64);
    let to_us = to_ms.map(|ms| (ms * 1000.0) as u64);
    events.retain(|e| match e.at_us {
        Some(t) => from_us.is_none_or(|f| t >= f) && to_us.is_none_or(|u| t <= u),
        None => true,
    });
    let mut nodes: Vec<u32> = events.iter().map(|e| e.node).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let options = dkvs::trace::DiagramOptions {
        width,
        ..dkvs::trace::DiagramOptions::default()
    };
    if list {
        print!("{}", dkvs::trace::event_list(&events));
    } else {
        print!("{}", dkvs::trace::diagram(&events, &nodes, &options));
    }
    if skipped > 0 {
        eprintln!("({skipped} lines were not trace events and were left out)");
    }
    Ok(())
}
