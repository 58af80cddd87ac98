//! `dkvs-tui`: parses arguments, sets up the terminal, and runs [`dkvs_tui::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use crossterm::event::{self, Event as TermEvent, KeyEventKind};

use dkvs::config::Config;
use dkvs_tui::app::{App, Event};
use dkvs_tui::{Io, net};

/// A terminal client for dkvs clusters: type commands, watch the messages flow between the
/// nodes, kill nodes and cut the network. Press ? inside for the keys.
#[derive(Parser)]
#[command(name = "dkvs-tui", version, about)]
struct Cli {
    /// The cluster's TOML config file (a replicated stage: 02 and up).
    #[arg(long, short, required_unless_present = "replay")]
    config: Option<PathBuf>,
    /// Start the cluster's nodes as child processes (and let K and R kill and restart them).
    #[arg(long)]
    spawn: bool,
    /// Step through a recorded trace (JSON lines) instead of talking to a cluster.
    #[arg(long, conflicts_with_all = ["config", "spawn"])]
    replay: Option<PathBuf>,
    /// Run one node of the config in this process (what --spawn starts; not for people).
    #[arg(long, hide = true, requires = "config")]
    serve_node: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let (Some(node), Some(config)) = (cli.serve_node, &cli.config) {
        return serve_node(config, node);
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--serve-node N`: this process is node N.
fn serve_node(config: &std::path::Path, node: u32) -> ExitCode {
    let result = Config::load(config)
        .map_err(anyhow::Error::from)
        .and_then(|c| {
            let options = dkvs::runtime::ServeOptions {
                node_id: node,
                listen: None,
                data_dir: None,
            };
            dkvs::runtime::server::serve(&c, 0, &options)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: node {node}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Event>();
    let (mut app, mut io) = match (&cli.replay, &cli.config) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (events, _) = dkvs::trace::read_capture(&text);
            anyhow::ensure!(
                !events.is_empty(),
                "{} holds no trace events (JSON lines from `dkvs sim --trace-out` or a node's `trace`)",
                file.display()
            );
            let title = format!("replay {}", file.display());
            (
                App::replaying(title, events),
                Io {
                    links: None,
                    spawner: None,
                },
            )
        }
        (None, Some(path)) => {
            let config = Config::load(path)?;
            let kind = config.mode.replicated().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: mode is single; the client shows messages between nodes, so it needs a replicated stage (02 and up)",
                    path.display()
                )
            })?;
            let nodes: Vec<(u32, std::net::SocketAddr)> =
                config.nodes.iter().map(|n| (n.id, n.client)).collect();
            let mut spawner = None;
            if cli.spawn {
                let exe = std::env::current_exe().context("cannot find this program")?;
                let mut s = net::Spawner::new(exe, path, std::env::temp_dir());
                for &(id, _) in &nodes {
                    s.start(id)
                        .with_context(|| format!("cannot start node {id}"))?;
                }
                spawner = Some(s);
            }
            let title = format!(
                "{kind}{}, {} nodes",
                if kind == dkvs::node::ModeKind::Eventual {
                    String::new()
                } else {
                    format!(" over {:?}", config.tob).to_lowercase()
                },
                nodes.len()
            );
            let ids = nodes.iter().map(|&(id, _)| id).collect();
            let links = net::Links::connect(&nodes, tx.clone(), started);
            (
                App::new(title, ids, cli.spawn),
                Io {
                    links: Some(links),
                    spawner,
                },
            )
        }
        (None, None) => anyhow::bail!("give --config FILE or --replay FILE"),
    };
    // Keys and resizes.
    let keys = tx.clone();
    thread::spawn(move || {
        loop {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => return,
            }
            let sent = match event::read() {
                Ok(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => {
                    keys.send(Event::Key(k))
                }
                Ok(TermEvent::Resize(..)) => keys.send(Event::Redraw),
                Ok(_) => Ok(()),
                Err(_) => return,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    // The clock.
    thread::spawn(move || {
        while tx
            .send(Event::Tick {
                now_ms: started.elapsed().as_millis() as u64,
            })
            .is_ok()
        {
            thread::sleep(Duration::from_millis(100));
        }
    });
    // ratatui::run restores the terminal on the way out, panics included.
    ratatui::run(|terminal| dkvs_tui::run(&mut app, terminal, &rx, &mut io, |_| false))?;
    Ok(())
}
