//! One client connection: read what has arrived, run every complete request in it, write all the
//! replies back in one `write`.
//!
//! Batching is what makes pipelining fast. `redis-benchmark -P 16` sends sixteen requests in one
//! packet; answering them with sixteen writes would cost sixteen system calls and, with Nagle's
//! algorithm meeting delayed ACKs, tens of milliseconds. So a batch of requests is parsed whole,
//! consecutive writes in it go to the store in one append (one `write` system call, one fsync
//! ticket), and the replies are sent together. `TCP_NODELAY` is set so the reply leaves at once.
//!
//! Durability: with `sync = "always"` no reply to a write leaves before the fsync that covers it
//! has finished; the fsync is shared with every other connection writing at the same time (group
//! commit). Caveat, as in Redis: a concurrent reader may see a value a moment before it is durable.
//! If an fsync fails the connection is closed without acknowledging the batch: the client learns
//! that the outcome is unknown, which is the truth.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use super::server::Shared;
use crate::protocol::{self, Command, Dialect, Reply, RequestError, resp, text};
use crate::storage::{SyncPolicy, Write};

/// Input buffer capacity reserved before each read. Large enough for a deep pipeline of small
/// requests in one read; a bigger request simply takes several reads.
const READ_CHUNK: usize = 16 * 1024;

/// An output buffer larger than this is written out before more requests are run, even in the
/// middle of a batch, so a client that pipelines a thousand `get`s of large values without
/// reading cannot make the server hold all the replies at once.
const MAX_PENDING_OUTPUT: usize = 1 << 20;

/// What to do after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Read more.
    Continue,
    /// Send the replies, then close this connection.
    Close,
    /// Send the replies, then stop the whole server.
    Kill,
    /// Send the replies, then stream trace events until the client leaves.
    Trace,
}

/// Parser state of one connection.
struct Session {
    dialect: Option<Dialect>,
    lines: text::LineDecoder,
    frames: resp::Parser,
    /// Requests of the current batch, reused between batches.
    batch: Vec<Result<Command, RequestError>>,
    /// Set when the batch ended with a malformed RESP frame: answer it, then close.
    fatal: Option<RequestError>,
    /// Scratch space for values read from the store.
    value: Vec<u8>,
    /// Scratch space for `Store::write`'s answer.
    existed: Vec<bool>,
}

/// Serves one client until it leaves, breaks the protocol, or the server shuts down.
pub(crate) async fn run(shared: &Shared, mut stream: TcpStream) {
    // Replies must not wait for more data to fill a segment (see the module docs).
    let _ = stream.set_nodelay(true);
    let mut session = Session {
        dialect: None,
        lines: text::LineDecoder::new(shared.limits.max_line_bytes),
        frames: resp::Parser::new(),
        batch: Vec::new(),
        fatal: None,
        value: Vec::new(),
        existed: Vec::new(),
    };
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    // Registered once: creating the future anew before every read would take the token's lock
    // twice per request.
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        input.reserve(READ_CHUNK);
        let read = tokio::select! {
            biased;
            _ = &mut shutdown => return,
            read = stream.read_buf(&mut input) => read,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let after = loop {
            let more = session.parse(shared, &mut input);
            let after = loop {
                let after = session.execute(shared, &mut output).await;
                if after != After::Continue || session.batch.is_empty() {
                    break after;
                }
                // The batch stopped early because its replies filled the output buffer.
                if stream.write_all(&output).await.is_err() {
                    return;
                }
                output.clear();
            };
            if output.len() > MAX_PENDING_OUTPUT || (more && after == After::Continue) {
                if stream.write_all(&output).await.is_err() {
                    return;
                }
                output.clear();
            }
            if !more || after != After::Continue {
                break after;
            }
        };
        // Subscribe before the reply leaves, so the client sees every event after it.
        let events = match (after, &shared.replica) {
            (After::Trace, Some(replica)) => Some(replica.subscribe()),
            _ => None,
        };
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        match after {
            After::Continue => {}
            After::Trace => {
                if let Some(events) = events {
                    stream_trace(stream, events, &shared.shutdown).await;
                }
                return;
            }
            After::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            After::Kill => {
                let _ = stream.flush().await;
                shared.shutdown.cancel();
                return;
            }
        }
    }
}

/// Most requests run as one batch; more stay in the input buffer for the next round, so one
/// read of tiny requests cannot grow the batch without bound.
const MAX_BATCH: usize = 1024;

impl Session {
    /// Moves every complete request out of `input` into `self.batch` (up to [`MAX_BATCH`]).
    /// Returns true if it stopped at the batch limit with more requests possibly waiting.
    fn parse(&mut self, shared: &Shared, input: &mut BytesMut) -> bool {
        let dialect = match self.dialect {
            Some(d) => d,
            None => match input.first() {
                Some(&b) => *self.dialect.insert(Dialect::detect(b)),
                None => return false,
            },
        };
        while self.batch.len() < MAX_BATCH {
            match dialect {
                Dialect::Text => match self.lines.decode(input) {
                    Ok(Some(Ok(line))) => {
                        // A blank line is a person pressing Enter: ignore it rather than nag.
                        if line.iter().all(|b| b.is_ascii_whitespace()) {
                            continue;
                        }
                        self.batch.push(text::parse(&line, &shared.limits));
                    }
                    Ok(Some(Err(e))) => self.batch.push(Err(e)),
                    Ok(None) | Err(_) => return false,
                },
                Dialect::Resp => match self.frames.parse_command(input, &shared.limits) {
                    Ok(Some(command)) => self.batch.push(command),
                    Ok(None) => return false,
                    Err(e) => {
                        input.clear();
                        self.fatal = Some(e);
                        return false;
                    }
                },
            }
        }
        true
    }

    /// Runs the batch in order and formats every reply into `out`. Stops early, leaving the
    /// rest in `self.batch`, once `out` holds more than [`MAX_PENDING_OUTPUT`].
    async fn execute(&mut self, shared: &Shared, out: &mut BytesMut) -> After {
        let dialect = self.dialect.unwrap_or(Dialect::Text);
        let mut batch = std::mem::take(&mut self.batch);
        let mut after = After::Continue;
        // The highest fsync ticket among this batch's writes: one wait covers them all.
        let mut ticket = None;
        let mut i = 0;
        while i < batch.len() {
            if out.len() > MAX_PENDING_OUTPUT {
                // Leave the rest for after these replies are sent (see MAX_PENDING_OUTPUT).
                break;
            }
            if let Some(replica) = &shared.replica {
                let done = replicated(replica, &batch[i..], dialect, out).await;
                if done > 0 {
                    i += done;
                    continue;
                }
            }
            // Group a run of consecutive writes into one append.
            let run = batch[i..]
                .iter()
                .take_while(|c| matches!(c, Ok(c) if c.is_write()))
                .count();
            if run > 0 {
                ticket = self
                    .write_run(shared, &batch[i..i + run], dialect, out)
                    .or(ticket);
                i += run;
                continue;
            }
            match &batch[i] {
                Ok(command) => {
                    let next = self.run_one(shared, command, dialect, out).await;
                    if next != After::Continue {
                        after = next;
                        break;
                    }
                }
                Err(e) => protocol::format(dialect, &Reply::Error(&e.to_string()), out),
            }
            i += 1;
        }
        if after == After::Continue {
            batch.drain(..i);
        } else {
            batch.clear();
        }
        let finished = batch.is_empty();
        self.batch = batch;
        if finished && let Some(e) = self.fatal.take() {
            protocol::format(dialect, &Reply::Error(&e.to_string()), out);
            after = After::Close;
        }
        if let Some(ticket) = ticket
            && let Err(e) = shared.store.wait_durable(ticket).await
        {
            // Do not acknowledge writes that may not be on disk.
            tracing::error!("fsync failed, closing connection without acknowledging: {e}");
            out.clear();
            return After::Close;
        }
        after
    }

    /// Applies a run of `set`/`del` commands in one append; returns the fsync ticket.
    /// (Single-node mode only: replicated modes go through [`replicated`].)
    fn write_run(
        &mut self,
        shared: &Shared,
        run: &[Result<Command, RequestError>],
        dialect: Dialect,
        out: &mut BytesMut,
    ) -> Option<u64> {
        let mut writes = Vec::with_capacity(run.len());
        for command in run.iter().flatten() {
            match command {
                Command::Set { key, value } => writes.push(Write::Set { key, value }),
                Command::Del { keys } => writes.extend(keys.iter().map(|key| Write::Del { key })),
                _ => unreachable!("only writes are grouped"),
            }
        }
        self.existed.clear();
        match shared.store.write(&writes, &mut self.existed) {
            Ok(ticket) => {
                let mut existed = self.existed.iter();
                for command in run.iter().flatten() {
                    let reply = match command {
                        Command::Del { keys } if dialect == Dialect::Resp => {
                            let n = existed.by_ref().take(keys.len()).filter(|e| **e).count();
                            Reply::Integer(n as i64)
                        }
                        Command::Del { keys } => {
                            existed.by_ref().take(keys.len()).for_each(drop);
                            Reply::Ok
                        }
                        _ => {
                            existed.next();
                            Reply::Ok
                        }
                    };
                    protocol::format(dialect, &reply, out);
                }
                Some(ticket)
            }
            Err(e) => {
                tracing::warn!("write failed: {e}");
                let reason = e.to_string();
                for _ in run {
                    protocol::format(dialect, &Reply::Error(&reason), out);
                }
                None
            }
        }
    }

    /// Runs one command that is not a write.
    async fn run_one(
        &mut self,
        shared: &Shared,
        command: &Command,
        dialect: Dialect,
        out: &mut BytesMut,
    ) -> After {
        let reply = |reply: Reply<'_>, out: &mut BytesMut| protocol::format(dialect, &reply, out);
        match command {
            Command::Get { key } => {
                self.value.clear();
                match shared.store.get_into(key, &mut self.value) {
                    Ok(true) => reply(Reply::Value(&self.value), out),
                    Ok(false) => reply(Reply::NotFound, out),
                    Err(e) => {
                        tracing::error!("read of a key failed: {e}");
                        reply(Reply::Error(&e.to_string()), out);
                    }
                }
            }
            Command::Exists { keys } => {
                let n = keys.iter().filter(|k| shared.store.contains(k)).count();
                reply(Reply::Integer(n as i64), out);
            }
            Command::Ping { message } => reply(Reply::Pong(message.as_deref()), out),
            Command::Fault { args } => match &shared.replica {
                None => reply(Reply::Error("faults need a replicated mode"), out),
                Some(replica) => match fault(replica, args) {
                    Ok(now) => reply(Reply::Done(&now), out),
                    Err(e) => reply(Reply::Error(&e), out),
                },
            },
            Command::Echo { message } => reply(Reply::Value(message), out),
            Command::Trace => match (&shared.replica, dialect) {
                (None, _) => reply(Reply::Error("trace needs a replicated mode"), out),
                (Some(_), Dialect::Resp) => reply(
                    Reply::Error("trace streams JSON lines: use the text protocol (nc)"),
                    out,
                ),
                (Some(_), Dialect::Text) => {
                    let note = format!(
                        "tracing node {}: one JSON event per line, {{\"lost\":N}} when N were skipped; close the connection to stop",
                        shared.node_id
                    );
                    reply(Reply::Done(&note), out);
                    return After::Trace;
                }
            },
            Command::Dump | Command::Digest => {
                let store = shared.store.clone();
                let versioned = shared.replica.is_some();
                let contents = tokio::task::spawn_blocking(move || contents(&store, versioned))
                    .await
                    .unwrap_or_else(|_| Err("reading the store failed: task panicked".into()));
                match contents {
                    Ok(contents) if matches!(command, Command::Dump) => {
                        format_dump(&contents, versioned, dialect, out)
                    }
                    Ok(contents) => {
                        let line = format!("{:016x} keys={}", digest(&contents), contents.len());
                        match dialect {
                            Dialect::Resp => reply(Reply::Bulk(line.as_bytes()), out),
                            Dialect::Text => {
                                out.extend_from_slice(b"DIGEST ");
                                out.extend_from_slice(line.as_bytes());
                                out.extend_from_slice(b"\r\n");
                            }
                        }
                    }
                    Err(e) => reply(Reply::Error(&e), out),
                }
            }
            Command::DbSize => reply(Reply::Integer(shared.store.len() as i64), out),
            Command::Stats => reply(Reply::Stats(&stats(shared)), out),
            Command::Help => reply(Reply::Help(protocol::HELP), out),
            Command::Compact => {
                let store = shared.store.clone();
                let result = tokio::task::spawn_blocking(move || store.compact()).await;
                match result {
                    Ok(Ok(r)) => {
                        let note = format!(
                            "compacted {} segments into {}: {} -> {} bytes",
                            r.segments_in, r.segments_out, r.bytes_in, r.bytes_out
                        );
                        reply(Reply::Done(&note), out);
                    }
                    Ok(Err(e)) => reply(Reply::Error(&format!("compaction failed: {e}")), out),
                    Err(_) => reply(Reply::Error("compaction failed: task panicked"), out),
                }
            }
            Command::Quit => {
                reply(Reply::Bye, out);
                return After::Close;
            }
            Command::Kill => {
                reply(Reply::Done("shutting down"), out);
                return After::Kill;
            }
            Command::CommandDocs => reply(Reply::Array(&[]), out),
            Command::ConfigGet { patterns } => {
                let appendfsync = match shared.sync {
                    SyncPolicy::Always => "always",
                    SyncPolicy::Batch => "everysec",
                    SyncPolicy::Never => "no",
                };
                let known: [(&[u8], &[u8]); 3] = [
                    (b"save", b""),
                    (b"appendonly", b"yes"),
                    (b"appendfsync", appendfsync.as_bytes()),
                ];
                let mut items: Vec<&[u8]> = Vec::new();
                for (name, value) in known {
                    if patterns.iter().any(|p| glob_match(p, name)) {
                        items.push(name);
                        items.push(value);
                    }
                }
                reply(Reply::Array(&items), out);
            }
            Command::Info => {
                let info = format!(
                    "# Server\r\nredis_version:7.0.0\r\ndkvs_version:{}\r\nredis_mode:standalone\r\n\
                     uptime_in_seconds:{}\r\n\r\n# Clients\r\nconnected_clients:{}\r\n\r\n\
                     # Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n",
                    env!("CARGO_PKG_VERSION"),
                    shared.started.elapsed().as_secs(),
                    shared.connections.load(Ordering::Relaxed),
                    shared.store.len(),
                );
                reply(Reply::Bulk(info.as_bytes()), out);
            }
            Command::Set { .. } | Command::Del { .. } => {
                unreachable!("writes are grouped by execute")
            }
        }
        After::Continue
    }
}

/// Streams the node's trace events to a subscriber, one JSON object per line, until it closes
/// the connection or the server stops. Events are written in batches of what has queued up; a
/// subscriber too slow to keep up loses the oldest events and is told how many with a
/// `{"lost":N}` line — the node never waits for it.
async fn stream_trace(
    mut stream: TcpStream,
    mut events: tokio::sync::broadcast::Receiver<crate::node::TraceEvent>,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut out = Vec::with_capacity(READ_CHUNK);
    let mut ignored = [0u8; 256];
    let push = |event: &crate::node::TraceEvent, out: &mut Vec<u8>| {
        if serde_json::to_writer(&mut *out, event).is_ok() {
            out.extend_from_slice(b"\n");
        }
    };
    let lost = |n: u64, out: &mut Vec<u8>| {
        out.extend_from_slice(format!("{{\"lost\":{n}}}\n").as_bytes());
    };
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            // Anything the client sends is ignored; end of stream means it left.
            read = stream.read(&mut ignored) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            event = events.recv() => event,
        };
        match first {
            Ok(event) => push(&event, &mut out),
            Err(RecvError::Lagged(n)) => lost(n, &mut out),
            Err(RecvError::Closed) => return,
        }
        while out.len() < READ_CHUNK {
            match events.try_recv() {
                Ok(event) => push(&event, &mut out),
                Err(TryRecvError::Lagged(n)) => lost(n, &mut out),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

/// A node's data as clients see it: every key and its stored bytes, sorted by key. In the
/// replicated modes the bytes are [`Versioned`](crate::node::Versioned)-encoded (so replicas
/// agree on versions, not only values) and the mode's meta entries are left out.
type Contents = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads [`Contents`] from the store. Keys deleted while it runs are skipped.
fn contents(store: &crate::storage::Store, versioned: bool) -> Result<Contents, String> {
    let mut keys = store.keys();
    if versioned {
        keys.retain(|k| !k.starts_with(super::replica::META_PREFIX));
    }
    keys.sort_unstable();
    let mut contents = Vec::with_capacity(keys.len());
    for key in keys {
        match store.get(&key) {
            Ok(Some(value)) => contents.push((key, value)),
            Ok(None) => {}
            Err(e) => return Err(format!("reading the store failed: {e}")),
        }
    }
    if versioned {
        for (key, bytes) in &contents {
            crate::node::Versioned::decode(bytes)
                .map_err(|e| format!("stored version of {} is damaged: {e}", key.escape_ascii()))?;
        }
    }
    Ok(contents)
}

/// FNV-1a over every key and value with their lengths: equal contents, equal digest. Not
/// cryptographic; it tells replicas apart, it does not defend against anyone.
fn digest(contents: &Contents) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (key, value) in contents {
        eat(key);
        eat(value);
    }
    h
}

/// One JSON object per key: `{"key":…,"value":…}`, plus `time` and `node` (the version) in the
/// replicated modes, where a deleted key shows as `"deleted":true`. Text: a `DUMP <n>` line,
/// then the objects one per line; RESP: an array of them.
fn format_dump(contents: &Contents, versioned: bool, dialect: Dialect, out: &mut BytesMut) {
    let lines: Vec<Vec<u8>> = contents
        .iter()
        .map(|(key, bytes)| {
            let mut object = serde_json::Map::new();
            put_bytes(&mut object, "key", key);
            match crate::node::Versioned::decode(bytes) {
                // Replicated modes: the stored bytes carry a version ([`contents`] checked it).
                Ok(v) if versioned => {
                    match &v.value {
                        Some(value) => put_bytes(&mut object, "value", value),
                        None => {
                            object.insert("deleted".into(), true.into());
                        }
                    }
                    object.insert("time".into(), v.stamp.time.into());
                    object.insert("node".into(), v.stamp.node.into());
                }
                _ => put_bytes(&mut object, "value", bytes),
            }
            serde_json::Value::Object(object).to_string().into_bytes()
        })
        .collect();
    match dialect {
        Dialect::Resp => {
            let items: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            protocol::format(dialect, &Reply::Array(&items), out);
        }
        Dialect::Text => {
            out.extend_from_slice(format!("DUMP {}\r\n", lines.len()).as_bytes());
            for line in lines {
                out.extend_from_slice(&line);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// Stores `bytes` under `name` as a JSON string, or as `<name>_hex` when they are not UTF-8.
fn put_bytes(object: &mut serde_json::Map<String, serde_json::Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            object.insert(name.into(), text.into());
        }
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            object.insert(format!("{name}_hex"), hex.into());
        }
    }
}

/// The `stats` counters, in a fixed order.
fn stats(shared: &Shared) -> Vec<(&'static str, String)> {
    let s = shared.store.stats();
    let mode = format!("{:?}", shared.mode).to_lowercase();
    let sync = format!("{:?}", shared.sync).to_lowercase();
    let mut pairs = vec![
        ("node", shared.node_id.to_string()),
        ("mode", mode),
        ("keys", s.keys.to_string()),
        ("live_bytes", s.live_bytes.to_string()),
        ("dead_bytes", s.dead_bytes.to_string()),
        ("segments", s.segments.to_string()),
        ("compactions", s.compactions.to_string()),
        ("sync", sync),
        ("uptime_s", shared.started.elapsed().as_secs().to_string()),
        (
            "connections",
            shared.connections.load(Ordering::Relaxed).to_string(),
        ),
        (
            "total_connections",
            shared.total_connections.load(Ordering::Relaxed).to_string(),
        ),
    ];
    if let Some(replica) = &shared.replica {
        let status = replica.status();
        pairs.extend([
            ("replication", replica.mode_name.replace(' ', "")),
            ("lamport", status.clock.to_string()),
            ("pending", status.pending.to_string()),
            ("ready", status.ready.to_string()),
            (
                "trace_subscribers",
                replica.trace.receiver_count().to_string(),
            ),
        ]);
    }
    pairs
}

/// Redis-style glob match for `CONFIG GET`: `*` matches any run of bytes, `?` any one byte.
/// Iterative with one backtrack point (the last `*`), so a hostile pattern costs
/// O(pattern × name), never exponential time.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                n += 1;
            }
            Some(c) if c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// What a data command becomes in a replicated mode.
enum Routed {
    /// Not a data command: it runs locally.
    Local,
    /// Answered at once, without the mode (a refused command).
    Refused(&'static str),
    /// A request for the mode; `is_del` shapes the reply.
    Mode {
        request: crate::node::Request,
        is_del: bool,
    },
}

fn route(command: &Command) -> Routed {
    use crate::node::Request;
    let request = match command {
        Command::Get { key } => Request::Get { key: key.to_vec() },
        Command::Set { key, value } => Request::Set {
            key: key.to_vec(),
            value: value.to_vec(),
        },
        Command::Del { keys } if keys.len() == 1 => Request::Del {
            key: keys[0].to_vec(),
        },
        Command::Del { .. } => return Routed::Refused("replicated modes delete one key at a time"),
        Command::Exists { .. } | Command::DbSize => {
            return Routed::Refused("not supported in replicated modes; use get");
        }
        _ => return Routed::Local,
    };
    let key = match &request {
        Request::Get { key } | Request::Set { key, .. } | Request::Del { key } => key,
    };
    if key.starts_with(super::replica::META_PREFIX) {
        return Routed::Refused("keys starting with NUL are reserved");
    }
    Routed::Mode {
        is_del: matches!(command, Command::Del { .. }),
        request,
    }
}

/// In a replicated mode, runs the data commands at the start of `batch` through the node's
/// mode and formats their answers; returns how many it ran (0: the first one runs locally).
///
/// Pipelining: a run of consecutive reads, or of consecutive writes, is submitted to the mode
/// all at once and the answers are awaited afterwards, in order. A read never joins a run of
/// writes (nor the reverse): in the sequential mode a read is answered from local state at
/// once, and must not overtake the same client's earlier write that is still on its way
/// through the order.
async fn replicated(
    replica: &super::replica::ReplicaHandle,
    batch: &[Result<Command, RequestError>],
    dialect: Dialect,
    out: &mut BytesMut,
) -> usize {
    use crate::node::Response;
    let mut pending = Vec::new();
    let mut writes = None;
    for command in batch {
        let Ok(command) = command else { break };
        match route(command) {
            Routed::Local => break,
            Routed::Refused(reason) => {
                if !pending.is_empty() {
                    break;
                }
                protocol::format(dialect, &Reply::Error(reason), out);
                return 1;
            }
            Routed::Mode { request, is_del } => {
                let write = !matches!(request, crate::node::Request::Get { .. });
                if writes.is_some_and(|w| w != write) {
                    break;
                }
                writes = Some(write);
                pending.push((replica.submit(request).await, is_del));
            }
        }
    }
    let ran = pending.len();
    for (answer, is_del) in pending {
        let response = answer.answer().await;
        let reply = match (&response, is_del, dialect) {
            (Response::Ok, true, Dialect::Resp) => Reply::Integer(1),
            (Response::NotFound, true, Dialect::Resp) => Reply::Integer(0),
            (Response::NotFound, true, Dialect::Text) => Reply::Ok,
            (Response::Ok, _, _) => Reply::Ok,
            (Response::Value(v), _, _) => Reply::Value(v),
            (Response::NotFound, _, _) => Reply::NotFound,
            (Response::Err(e), _, _) => Reply::Error(e),
        };
        protocol::format(dialect, &reply, out);
    }
    ran
}

/// Runs a `fault` admin command; returns the faults now in force.
fn fault(replica: &super::replica::ReplicaHandle, args: &[u8]) -> Result<String, String> {
    const USAGE: &str =
        "usage: fault [heal | partition <node>... | drop <node> <probability> | delay <node> <ms>]";
    let text = std::str::from_utf8(args).map_err(|_| USAGE.to_string())?;
    let words: Vec<&str> = text.split_whitespace().collect();
    let node = |w: &str| w.parse::<u32>().map_err(|_| format!("not a node id: {w}"));
    let faults = &replica.faults;
    match words.as_slice() {
        [] => {}
        ["heal"] => faults.heal(),
        ["partition", peers @ ..] if !peers.is_empty() => {
            for p in peers {
                faults.update(node(p)?, |f| f.partitioned = true);
            }
        }
        ["drop", peer, p] => {
            let p: f64 = p
                .parse()
                .ok()
                .filter(|p: &f64| (0.0..=1.0).contains(p))
                .ok_or("probability must be within 0..=1")?;
            faults.update(node(peer)?, |f| f.drop = p);
        }
        ["delay", peer, ms] => {
            let ms: u64 = ms.parse().map_err(|_| "delay must be whole milliseconds")?;
            faults.update(node(peer)?, |f| f.delay_ms = ms);
        }
        _ => return Err(USAGE.to_string()),
    }
    Ok(format!("faults: {}", faults.describe()))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn config_get_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("save", "save", true),
            ("SAVE", "save", true),
            ("*", "appendonly", true),
            ("append*", "appendonly", true),
            ("append*", "save", false),
            ("s?ve", "save", true),
            ("sav", "save", false),
            ("*e", "save", true),
            ("*x*", "save", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), name.as_bytes()),
                *want,
                "{pattern} {name}"
            );
        }
    }
}
