//! The `dkvs` command: parses arguments and hands over to the library.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
