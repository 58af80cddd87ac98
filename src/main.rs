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
use dkvs::runtime::{ServeOptions, Server, server};

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
    server::raise_fd_limit();
    let runtime = match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    runtime.block_on(async {
        let server = Server::start(&config, &options).await?;
        let report = server.recovery();
        tracing::info!(
            segments = report.segments,
            records = report.records,
            keys = report.keys,
            damaged = report.damage.len(),
            "recovered {}",
            server.data_dir().display()
        );
        server::cancel_on_signals(server.shutdown_token())?;
        // Tests and scripts read this line to learn the port when started with port 0.
        println!(
            "dkvs node {} listening on {}",
            options.node_id,
            server.local_addr()
        );
        server.run().await?;
        Ok(())
    })
}
