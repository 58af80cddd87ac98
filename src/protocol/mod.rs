//! Protocol: bytes from a client become a [`Command`]; a [`Reply`] becomes bytes for the client.
//!
//! Two dialects share one port, chosen by a connection's first byte:
//!
//! * the **text protocol** ([`text`]) — one request per line, one reply per line, each reply starting
//!   with a status word (`OK`, `VALUE`, `NOT_FOUND`, `PONG`, `ERR`, `STATS`, `BYE`). It is made for
//!   people typing into `nc` or `telnet`;
//! * **RESP2** ([`resp`]), the Redis serialisation protocol, spoken by `redis-cli`, `redis-benchmark`
//!   and every Redis client library. A RESP request always starts with `*` (an array of bulk
//!   strings), a byte no text command starts with, so one look at the first byte is enough.
//!
//! This layer is pure: no sockets and no storage. Parsers take a `BytesMut` holding whatever has
//! arrived so far, return `Ok(None)` when a request is still incomplete, and never buffer more than
//! the configured limits allow; formatters append to an output buffer so a whole pipelined batch of
//! replies goes out in one write.

pub mod resp;
pub mod text;

use bytes::Bytes;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Human-friendly lines (`set k v` / `OK`).
    Text,
    /// Redis RESP2 frames.
    Resp,
}

impl Dialect {
    /// The dialect a connection speaks, judged from its first byte.
    pub fn detect(first_byte: u8) -> Dialect {
        if first_byte == b'*' {
            Dialect::Resp
        } else {
            Dialect::Text
        }
    }
}

/// A parsed request. Keys and values are `Bytes` slices of the connection's input buffer, so
/// parsing copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Set a key to a value.
    Set { key: Bytes, value: Bytes },
    /// Read a key.
    Get { key: Bytes },
    /// Remove keys (the text protocol takes exactly one).
    Del { keys: Vec<Bytes> },
    /// Count how many of the keys exist (RESP `EXISTS`).
    Exists { keys: Vec<Bytes> },
    /// Liveness check, optionally echoing a message.
    Ping { message: Option<Bytes> },
    /// Echo a message back (RESP `ECHO`).
    Echo { message: Bytes },
    /// Number of live keys (RESP `DBSIZE`).
    DbSize,
    /// Server and storage counters.
    Stats,
    /// One line naming every command.
    Help,
    /// Run a compaction now and report what it did.
    Compact,
    /// Close this connection.
    Quit,
    /// Stop the whole server cleanly (text `kill`, RESP `SHUTDOWN`).
    Kill,
    /// RESP `COMMAND …`, sent by `redis-cli` on start-up.
    CommandDocs,
    /// RESP `CONFIG GET pattern…`, sent by `redis-benchmark`.
    ConfigGet { patterns: Vec<Bytes> },
    /// RESP `INFO [section]`.
    Info,
    /// Text `fault …`: inject or clear network faults at this node (replicated modes):
    /// `fault`, `fault heal`, `fault partition <peer>…`, `fault drop <peer> <probability>`,
    /// `fault delay <peer> <ms>`. The words after `fault` are kept raw for the runtime.
    Fault { args: Bytes },
    /// Text `trace`: turn this connection into a stream of the node's trace events, one JSON
    /// object per line, until the client closes it (replicated modes).
    Trace,
    /// Text `dump`, RESP `DUMP`: every key this node holds, with its version in replicated
    /// modes, one JSON object per key.
    Dump,
    /// Text `digest`, RESP `DIGEST`: a checksum of everything this node holds; two replicas
    /// with the same digest hold the same data.
    Digest,
}

impl Command {
    /// Whether this command changes stored data (and so must be durable before its reply).
    pub fn is_write(&self) -> bool {
        matches!(self, Command::Set { .. } | Command::Del { .. })
    }
}

/// A client's mistake, answered with `ERR <reason>` (text) or `-ERR <reason>` (RESP).
///
/// In the text protocol every one of these leaves the connection open. In RESP, [`Self::Protocol`]
/// closes it, as Redis does: after a malformed frame the byte stream cannot be trusted to be back
/// on a frame boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The command word is not one we know.
    #[error("unknown command '{0}'")]
    UnknownCommand(String),
    /// Too few or too many arguments; `usage` shows the right form.
    #[error("wrong number of arguments for '{command}' (usage: {usage})")]
    WrongArity {
        command: &'static str,
        usage: &'static str,
    },
    /// An empty line or an empty RESP array.
    #[error("empty command")]
    Empty,
    /// A text-protocol key that is not valid UTF-8.
    #[error("invalid UTF-8 in key")]
    KeyNotUtf8,
    /// A key longer than the configured limit.
    #[error("key too long ({len} bytes, limit {limit})")]
    KeyTooLong { len: usize, limit: usize },
    /// A value longer than the configured limit.
    #[error("value too long ({len} bytes, limit {limit})")]
    ValueTooLong { len: usize, limit: usize },
    /// A text line longer than the configured limit; it was discarded unread.
    #[error("line too long (limit {limit} bytes)")]
    LineTooLong { limit: usize },
    /// A RESP command with an option we do not support (e.g. `SET k v EX 10`).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A malformed RESP frame; the connection is closed after the reply.
    #[error("Protocol error: {0}")]
    Protocol(String),
}

/// Limits a parser enforces, taken from the `[limits]` table of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest text line, in bytes, without its line ending.
    pub max_line_bytes: usize,
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Longest value, in bytes.
    pub max_value_bytes: usize,
}

impl Limits {
    /// Rejects a key over the limit.
    ///
    /// # Errors
    /// [`RequestError::KeyTooLong`].
    pub fn check_key(&self, key: &[u8]) -> Result<(), RequestError> {
        if key.len() > self.max_key_bytes {
            return Err(RequestError::KeyTooLong {
                len: key.len(),
                limit: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Rejects a value over the limit.
    ///
    /// # Errors
    /// [`RequestError::ValueTooLong`].
    pub fn check_value(&self, value: &[u8]) -> Result<(), RequestError> {
        if value.len() > self.max_value_bytes {
            return Err(RequestError::ValueTooLong {
                len: value.len(),
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 1 << 20,
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
        }
    }
}

/// The outcome of a command, before it is put into either dialect's words. Borrowed, so a value
/// read into a scratch buffer is formatted without another copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Success with nothing to say: text `OK`, RESP `+OK`.
    Ok,
    /// Success with a note for a person: text `OK <note>`, RESP `+OK`.
    Done(&'a str),
    /// A stored value: text `VALUE <v>`, RESP bulk string.
    Value(&'a [u8]),
    /// No value: text `NOT_FOUND`, RESP null bulk string.
    NotFound,
    /// Answer to `ping`: text `PONG [msg]`, RESP `+PONG` or the message as a bulk string.
    Pong(Option<&'a [u8]>),
    /// A count: text `VALUE <n>`, RESP integer.
    Integer(i64),
    /// Counters: text `STATS k=v …`, RESP bulk string of `k:v` lines (like `INFO`).
    Stats(&'a [(&'static str, String)]),
    /// One line of help text: text `OK <text>`, RESP bulk string.
    Help(&'a str),
    /// The connection is being closed at the client's request: text `BYE`, RESP `+OK`.
    Bye,
    /// A list of bulk strings (RESP only: `CONFIG GET`, `COMMAND`).
    Array(&'a [&'a [u8]]),
    /// A bulk string (RESP only: `INFO`).
    Bulk(&'a [u8]),
    /// The client's mistake or a server fault: text `ERR <reason>`, RESP `-ERR <reason>`.
    Error(&'a str),
}

/// Appends `reply` in `dialect`'s words to `out`.
pub fn format(dialect: Dialect, reply: &Reply<'_>, out: &mut bytes::BytesMut) {
    match dialect {
        Dialect::Text => text::format(reply, out),
        Dialect::Resp => resp::format(reply, out),
    }
}

/// The one line that `help` prints.
pub const HELP: &str = "commands: set <key> <value> | get <key> | del <key> | ping | stats | compact | dump | digest | trace | fault [heal | partition <node>... | drop <node> <p> | delay <node> <ms>] | help | quit | exit | kill";
