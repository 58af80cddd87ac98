//! The client listener: accepts connections, enforces the connection limit, and shuts everything
//! down in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Mode};
use crate::protocol::Limits;
use crate::storage::{self, RecoveryReport, Store, SyncPolicy};

/// How long shutdown waits for connections to finish their current batch before it syncs the
/// store anyway. A connection blocked writing to a client that stopped reading is the usual
/// reason to hit it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Errors that stop a server from starting or from shutting down cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config does not describe the requested node.
    #[error("{0}")]
    Config(String),
    /// The replication mode could not start (peer address, recovery).
    #[error("{0}")]
    Replica(String),
    /// The store could not be opened or closed.
    #[error("storage in {dir}: {source}")]
    Storage {
        dir: PathBuf,
        source: storage::Error,
    },
    /// The client address could not be bound (taken, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What [`Server::start`] needs beyond the config file.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Which `[[nodes]]` entry this process is.
    pub node_id: u32,
    /// Listen here instead of the node's `client` address (`--listen`).
    pub listen: Option<SocketAddr>,
    /// Keep data here instead of the node's data folder (`--data-dir`).
    pub data_dir: Option<PathBuf>,
}

/// State every connection shares.
pub(crate) struct Shared {
    /// The node's store.
    pub store: Store,
    /// The replication mode's driver; `None` for a single node, whose commands go straight to
    /// the store.
    pub replica: Option<super::replica::ReplicaHandle>,
    /// Limits the parsers enforce.
    pub limits: Limits,
    /// The consistency mode, shown by `stats`.
    pub mode: Mode,
    /// The sync policy, shown by `stats` and `CONFIG GET appendfsync`.
    pub sync: SyncPolicy,
    /// This node's id, shown by `stats`.
    pub node_id: u32,
    /// For `stats`' uptime.
    pub started: Instant,
    /// Connections open now.
    pub connections: AtomicUsize,
    /// Connections accepted since start-up.
    pub total_connections: AtomicU64,
    /// Cancelled to stop the server.
    pub shutdown: CancellationToken,
}

/// The replica's settings for node `me`, from the config.
fn replica_config(
    config: &Config,
    me: u32,
    kind: crate::node::ModeKind,
) -> super::replica::ReplicaConfig {
    let r = &config.replication;
    let peer_of = |id: u32| {
        config
            .node(id)
            .ok()
            .and_then(|n| n.peer)
            .expect("validated: every node has a peer address")
    };
    super::replica::ReplicaConfig {
        me,
        kind,
        tob: match config.tob {
            crate::config::Tob::Sequencer => crate::node::Tob::Sequencer,
            crate::config::Tob::Lamport => crate::node::Tob::Lamport,
        },
        options: crate::node::NodeOptions {
            retry_interval_ms: r.retry_interval_ms,
            max_pending: r.max_pending,
            log_capacity: r.log_capacity,
        },
        listen: peer_of(me),
        peers: config
            .nodes
            .iter()
            .filter(|n| n.id != me)
            .map(|n| (n.id, peer_of(n.id)))
            .collect(),
        tick_interval_ms: r.tick_interval_ms,
        step_batch: r.step_batch,
        send_batch: r.send_batch,
        encoding: match r.peer_encoding {
            crate::config::PeerEncoding::Msgpack => super::replica::Encoding::MessagePack,
            crate::config::PeerEncoding::Json => super::replica::Encoding::Json,
        },
        faults: config
            .faults
            .links
            .iter()
            .filter(|l| l.node == me)
            .map(|l| {
                (
                    l.peer,
                    super::replica::LinkFault {
                        partitioned: l.partitioned,
                        drop: l.drop,
                        delay_ms: l.delay_ms,
                    },
                )
            })
            .collect(),
    }
}

/// A started server: bound, store open, not yet accepting until [`Server::run`].
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    recovery: RecoveryReport,
    data_dir: PathBuf,
}

impl Server {
    /// Opens the node's store (recovering what is on disk) and binds its client address.
    ///
    /// # Errors
    /// [`ServeError`] with one line that says what failed and where.
    pub async fn start(config: &Config, options: &ServeOptions) -> Result<Server, ServeError> {
        let node = config.node(options.node_id).map_err(ServeError::Config)?;
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| config.data_dir(node));
        let addr = options.listen.unwrap_or(node.client);
        let store_options = config.store_options(data_dir.clone());
        let (store, recovery) = tokio::task::spawn_blocking(move || Store::open(store_options))
            .await
            .expect("store open task panicked")
            .map_err(|source| ServeError::Storage {
                dir: data_dir.clone(),
                source,
            })?;
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(source) => {
                let _ = store.close();
                return Err(ServeError::Bind { addr, source });
            }
        };
        let shutdown = CancellationToken::new();
        let replica = match config.mode.replicated() {
            None => None,
            Some(kind) => {
                let replica_config = replica_config(config, node.id, kind);
                match super::replica::start(replica_config, store.clone(), shutdown.clone()).await {
                    Ok(handle) => Some(handle),
                    Err(e) => {
                        let _ = store.close();
                        return Err(ServeError::Replica(format!("{e:#}")));
                    }
                }
            }
        };
        let shared = Arc::new(Shared {
            replica,
            store,
            limits: config.limits.protocol(),
            mode: config.mode,
            sync: config.storage.sync,
            node_id: node.id,
            started: Instant::now(),
            connections: AtomicUsize::new(0),
            total_connections: AtomicU64::new(0),
            shutdown,
        });
        Ok(Server {
            listener,
            shared,
            max_connections: config.limits.max_connections,
            recovery,
            data_dir,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// What start-up found on disk.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Where this node keeps its files.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Accepts clients until shut down, then closes every connection and syncs the store.
    ///
    /// # Errors
    /// [`ServeError::Storage`] if the final sync fails: the caller must not report a clean exit.
    pub async fn run(self) -> Result<(), ServeError> {
        let Server {
            listener,
            shared,
            max_connections,
            data_dir,
            ..
        } = self;
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(max_connections));
        loop {
            let accepted = tokio::select! {
                _ = shared.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE: out of file descriptors. Back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracker.spawn(refuse(stream, max_connections));
                continue;
            };
            let shared = shared.clone();
            tracker.spawn(async move {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                shared.total_connections.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "connection opened");
                super::connection::run(&shared, stream).await;
                tracing::debug!(%peer, "connection closed");
                shared.connections.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
        drop(listener);
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish within {SHUTDOWN_GRACE:?}");
        }
        let store = shared.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .expect("store close task panicked")
            .map_err(|source| ServeError::Storage {
                dir: data_dir,
                source,
            })?;
        tracing::info!("store synced and closed; bye");
        Ok(())
    }
}

/// Tells a client over the connection limit why it is being turned away. Worded as a RESP error,
/// like Redis's, which `nc` users can read as well.
async fn refuse(mut stream: TcpStream, limit: usize) {
    let message = format!("-ERR max number of clients reached (limit {limit})\r\n");
    let _ =
        tokio::time::timeout(Duration::from_secs(1), stream.write_all(message.as_bytes())).await;
}

/// Cancels `token` on SIGTERM or Ctrl-C (SIGINT).
///
/// The handlers are installed before this returns, not later in a spawned task: a signal that
/// arrives between "listening" and the task's first poll would otherwise meet the default
/// action and kill the process without a sync.
///
/// # Errors
/// The operating system refused to install a handler. Must be called inside a tokio runtime.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("interrupted; shutting down"),
            _ = term.recv() => tracing::info!("terminated; shutting down"),
        }
        token.cancel();
    });
    Ok(())
}

/// Raises the soft limit on open files to the hard limit, so the configured `max_connections`
/// is not cut short by a default of 1024 descriptors.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Runs one node of `config` until a signal or a `kill` stops it: the whole of `dkvs serve`
/// after argument parsing, shared with the terminal client's `--spawn`.
///
/// `threads` is the number of threads serving clients: 0 means one per core; 1 runs every
/// connection on one thread. Prints `dkvs node N listening on ADDR` once it serves (scripts
/// and tests started with port 0 read the port from it).
///
/// # Errors
/// Anything that keeps the node from starting: the runtime, the data folder, the listener.
pub fn serve(config: &Config, threads: usize, options: &ServeOptions) -> anyhow::Result<()> {
    raise_fd_limit();
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
        let server = Server::start(config, options).await?;
        let report = server.recovery();
        tracing::info!(
            segments = report.segments,
            records = report.records,
            keys = report.keys,
            damaged = report.damage.len(),
            "recovered {}",
            server.data_dir().display()
        );
        cancel_on_signals(server.shutdown_token())?;
        println!(
            "dkvs node {} listening on {}",
            options.node_id,
            server.local_addr()
        );
        server.run().await?;
        Ok(())
    })
}
