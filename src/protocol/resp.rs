//! RESP2, the Redis serialisation protocol, so `redis-cli`, `redis-benchmark` and Redis client
//! libraries can talk to dkvs.
//!
//! A request is an array of bulk strings:
//!
//! ```text
//! *3\r\n $3\r\nSET\r\n $1\r\nk\r\n $5\r\nhello\r\n        (spaces added for reading)
//! ```
//!
//! Bulk strings carry their length, so keys and values are binary-safe: any byte, newlines
//! included. Replies use the other RESP types: `+OK` (simple string), `-ERR …` (error), `:3`
//! (integer), `$5\r\nhello` (bulk string), `$-1` (null, "no such key") and `*N` (array).
//!
//! [`Parser::parse`] reads one frame from the front of a buffer. It returns `Ok(None)` until the
//! whole frame has arrived — a partial frame costs nothing but waiting — and consumes nothing until
//! then. Lengths are checked against the limits *before* waiting for the bytes they announce, so
//! `$999999999999` is refused at once instead of waiting to buffer a terabyte. A malformed frame is
//! a [`RequestError::Protocol`]: the server answers `-ERR Protocol error: …` and closes the
//! connection, as Redis does, because it cannot tell where the next frame begins.
//!
//! Reference: <https://redis.io/docs/latest/develop/reference/protocol-spec/>.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::{Command, Limits, Reply, RequestError};

/// Most arguments accepted in one request. Redis allows far more; dkvs's commands need few, and
/// the bound keeps a hostile `*100000000` from costing memory.
pub const MAX_ARGS: usize = 1024;

/// A RESP request parser. It keeps a reusable list of argument positions so parsing a frame does
/// not allocate.
#[derive(Debug, Default)]
pub struct Parser {
    /// Positions of the current frame's arguments within the buffer.
    args: Vec<Range<usize>>,
}

impl Parser {
    /// A new parser.
    pub fn new() -> Self {
        Parser::default()
    }

    /// Takes one complete request frame off the front of `buf`, as its arguments.
    ///
    /// # Errors
    /// [`RequestError::Protocol`] for a malformed frame (the caller should close the connection),
    /// or a size error for a key or value over the limits, announced before its bytes arrive.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, RequestError> {
        let frame = self.next_frame(buf, limits)?;
        Ok(frame.map(|frame| self.args.iter().map(|r| frame.slice(r.clone())).collect()))
    }

    /// Like [`Parser::parse`], then turns the arguments into a command. The outer error is a
    /// framing failure (close the connection); the inner one a command the client got wrong
    /// (answer it and go on).
    ///
    /// # Errors
    /// As [`Parser::parse`].
    #[allow(clippy::type_complexity)]
    pub fn parse_command(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Result<Command, RequestError>>, RequestError> {
        let frame = self.next_frame(buf, limits)?;
        Ok(frame.map(|frame| to_command(&frame, &self.args, limits)))
    }

    /// Splits the next whole frame off `buf`, leaving its arguments' positions in `self.args`.
    fn next_frame(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Bytes>, RequestError> {
        skip_blank_lines(buf);
        let Some(len) = self.scan(buf, limits)? else {
            return Ok(None);
        };
        Ok(Some(buf.split_to(len).freeze()))
    }

    /// Checks that a whole frame is in `buf` and records its arguments' positions; returns the
    /// frame's length.
    fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, RequestError> {
        self.args.clear();
        if buf.is_empty() {
            return Ok(None);
        }
        if buf[0] != b'*' {
            return Err(protocol(format!("expected '*', got '{}'", escape(buf[0]))));
        }
        let Some((count, mut at)) = read_number(buf, 1, "multibulk length")? else {
            return Ok(None);
        };
        if count > MAX_ARGS as i64 {
            return Err(protocol("invalid multibulk length".into()));
        }
        // Longest bulk string worth waiting for: a value, or a key, plus nothing else.
        let max_bulk = limits.max_value_bytes.max(limits.max_key_bytes).max(64);
        for _ in 0..count.max(0) {
            if at >= buf.len() {
                return Ok(None);
            }
            if buf[at] != b'$' {
                return Err(protocol(format!("expected '$', got '{}'", escape(buf[at]))));
            }
            let Some((len, start)) = read_number(buf, at + 1, "bulk length")? else {
                return Ok(None);
            };
            if len < 0 {
                return Err(protocol("invalid bulk length".into()));
            }
            let len = len as usize;
            if len > max_bulk {
                return Err(protocol(format!(
                    "bulk length {len} over the {max_bulk} byte limit"
                )));
            }
            let end = start + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(protocol("bulk string not followed by CRLF".into()));
            }
            self.args.push(start..end);
            at = end + 2;
        }
        Ok(Some(at))
    }
}

/// Drops line endings between frames. Redis reads a bare `\r\n` as an empty inline command and
/// ignores it, and `redis-cli --pipe` relies on that: it ends its stream with one before its
/// closing `ECHO`.
fn skip_blank_lines(buf: &mut BytesMut) {
    let blank = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    buf.advance(blank);
}

/// Reads a decimal number terminated by `\r\n` starting at `at`; returns it and the index after
/// the `\r\n`, or `None` if the line has not fully arrived.
fn read_number(buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, RequestError> {
    // A length line is short; one longer than this is garbage, not a slow sender.
    const MAX_DIGITS: usize = 20;
    let window = &buf[at.min(buf.len())..buf.len().min(at + MAX_DIGITS + 2)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if window.len() >= MAX_DIGITS + 2 || window.contains(&b'\n') {
            return Err(protocol(format!("invalid {what}")));
        }
        return Ok(None);
    };
    if cr + 1 >= window.len() {
        return Ok(None);
    }
    if window[cr + 1] != b'\n' {
        return Err(protocol(format!("invalid {what}")));
    }
    let digits =
        std::str::from_utf8(&window[..cr]).map_err(|_| protocol(format!("invalid {what}")))?;
    let n: i64 = digits
        .parse()
        .map_err(|_| protocol(format!("invalid {what}")))?;
    Ok(Some((n, at + cr + 2)))
}

/// Maps a request's arguments onto a command.
fn to_command(
    frame: &Bytes,
    args: &[Range<usize>],
    limits: &Limits,
) -> Result<Command, RequestError> {
    let Some((name, rest)) = args.split_first() else {
        return Err(RequestError::Empty);
    };
    let arg = |i: usize| frame.slice(rest[i].clone());
    let all = || {
        rest.iter()
            .map(|r| frame.slice(r.clone()))
            .collect::<Vec<_>>()
    };
    let name = &frame[name.clone()];
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let arity_is = |ok: bool, command: &'static str, usage: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(RequestError::WrongArity { command, usage })
        }
    };
    let keys = |command: &'static str, usage: &'static str| {
        arity_is(!rest.is_empty(), command, usage)?;
        let keys = all();
        for key in &keys {
            limits.check_key(key)?;
        }
        Ok::<_, RequestError>(keys)
    };

    if is("get") {
        arity_is(rest.len() == 1, "get", "GET key")?;
        let key = arg(0);
        limits.check_key(&key)?;
        Ok(Command::Get { key })
    } else if is("set") {
        arity_is(rest.len() >= 2, "set", "SET key value")?;
        if rest.len() > 2 {
            return Err(RequestError::Syntax(
                "SET options (EX, NX, …) are not supported".into(),
            ));
        }
        let (key, value) = (arg(0), arg(1));
        limits.check_key(&key)?;
        limits.check_value(&value)?;
        Ok(Command::Set { key, value })
    } else if is("del") {
        Ok(Command::Del {
            keys: keys("del", "DEL key [key ...]")?,
        })
    } else if is("exists") {
        Ok(Command::Exists {
            keys: keys("exists", "EXISTS key [key ...]")?,
        })
    } else if is("ping") {
        arity_is(rest.len() <= 1, "ping", "PING [message]")?;
        Ok(Command::Ping {
            message: (rest.len() == 1).then(|| arg(0)),
        })
    } else if is("echo") {
        arity_is(rest.len() == 1, "echo", "ECHO message")?;
        Ok(Command::Echo { message: arg(0) })
    } else if is("dbsize") {
        arity_is(rest.is_empty(), "dbsize", "DBSIZE")?;
        Ok(Command::DbSize)
    } else if is("quit") {
        Ok(Command::Quit)
    } else if is("shutdown") || is("kill") {
        Ok(Command::Kill)
    } else if is("command") {
        Ok(Command::CommandDocs)
    } else if is("config") {
        let sub_get = !rest.is_empty() && frame[rest[0].clone()].eq_ignore_ascii_case(b"get");
        if !sub_get {
            return Err(RequestError::Syntax("only CONFIG GET is supported".into()));
        }
        arity_is(
            rest.len() >= 2,
            "config|get",
            "CONFIG GET parameter [parameter ...]",
        )?;
        Ok(Command::ConfigGet {
            patterns: all().split_off(1),
        })
    } else if is("info") {
        Ok(Command::Info)
    } else if is("stats") {
        Ok(Command::Stats)
    } else if is("compact") {
        Ok(Command::Compact)
    } else if is("help") {
        Ok(Command::Help)
    } else if is("dump") {
        arity_is(rest.is_empty(), "dump", "DUMP")?;
        Ok(Command::Dump)
    } else if is("digest") {
        arity_is(rest.is_empty(), "digest", "DIGEST")?;
        Ok(Command::Digest)
    } else if is("trace") {
        Ok(Command::Trace)
    } else {
        Err(RequestError::UnknownCommand(super::text::printable(name)))
    }
}

/// Appends `reply` as a RESP2 value.
pub fn format(reply: &Reply<'_>, out: &mut BytesMut) {
    match reply {
        Reply::Ok | Reply::Done(_) | Reply::Bye => out.extend_from_slice(b"+OK\r\n"),
        Reply::Value(value) | Reply::Bulk(value) | Reply::Pong(Some(value)) => bulk(value, out),
        Reply::Help(text) => bulk(text.as_bytes(), out),
        Reply::NotFound => out.extend_from_slice(b"$-1\r\n"),
        Reply::Pong(None) => out.extend_from_slice(b"+PONG\r\n"),
        Reply::Integer(n) => {
            out.extend_from_slice(b":");
            out.extend_from_slice(itoa(*n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Stats(pairs) => {
            let mut text = String::new();
            for (k, v) in pairs.iter() {
                text.push_str(k);
                text.push(':');
                text.push_str(v);
                text.push_str("\r\n");
            }
            bulk(text.as_bytes(), out);
        }
        Reply::Array(items) => {
            out.extend_from_slice(b"*");
            out.extend_from_slice(itoa(items.len() as i64).as_bytes());
            out.extend_from_slice(b"\r\n");
            for item in items.iter() {
                bulk(item, out);
            }
        }
        Reply::Error(reason) => {
            // A RESP error is one line: any line break in the reason would end it early.
            out.extend_from_slice(b"-ERR ");
            out.extend(
                reason
                    .bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn bulk(value: &[u8], out: &mut BytesMut) {
    out.reserve(value.len() + 16);
    out.extend_from_slice(b"$");
    out.extend_from_slice(itoa(value.len() as i64).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Formats an integer into a small stack buffer (replies are hot; `to_string` would allocate).
fn itoa(n: i64) -> ItoaBuf {
    let mut buf = ItoaBuf {
        bytes: [0; 20],
        start: 20,
    };
    let negative = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        buf.start -= 1;
        buf.bytes[buf.start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        buf.start -= 1;
        buf.bytes[buf.start] = b'-';
    }
    buf
}

struct ItoaBuf {
    bytes: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

fn protocol(message: String) -> RequestError {
    RequestError::Protocol(message)
}

fn escape(b: u8) -> String {
    std::ascii::escape_default(b).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_line_bytes: 64,
            max_key_bytes: 8,
            max_value_bytes: 32,
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn command(input: &[u8]) -> Result<Option<Result<Command, RequestError>>, RequestError> {
        let mut buf = BytesMut::from(input);
        Parser::new().parse_command(&mut buf, &limits())
    }

    #[test]
    fn parses_commands() {
        let cases: &[(&[u8], Command)] = &[
            (
                b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                Command::Get { key: b("k") },
            ),
            (
                b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n",
                Command::Set {
                    key: b("k"),
                    value: b("a\r\nb"),
                },
            ),
            (
                b"*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n",
                Command::Del {
                    keys: vec![b("a"), b("b")],
                },
            ),
            (
                b"*2\r\n$6\r\nEXISTS\r\n$1\r\na\r\n",
                Command::Exists { keys: vec![b("a")] },
            ),
            (b"*1\r\n$4\r\nPING\r\n", Command::Ping { message: None }),
            (
                b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
                Command::Echo { message: b("") },
            ),
            (b"*1\r\n$6\r\nDBSIZE\r\n", Command::DbSize),
            (
                b"*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n",
                Command::CommandDocs,
            ),
            (
                b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n",
                Command::ConfigGet {
                    patterns: vec![b("save")],
                },
            ),
            (b"*1\r\n$4\r\nINFO\r\n", Command::Info),
            (b"*1\r\n$4\r\nDUMP\r\n", Command::Dump),
            (b"*1\r\n$6\r\ndigest\r\n", Command::Digest),
            (b"*1\r\n$4\r\nQUIT\r\n", Command::Quit),
            (b"*1\r\n$8\r\nSHUTDOWN\r\n", Command::Kill),
        ];
        for (input, want) in cases {
            let got = command(input).unwrap().unwrap().unwrap();
            assert_eq!(&got, want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn command_mistakes_are_answerable() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"*1\r\n$3\r\nGET\r\n",
                "wrong number of arguments for 'get' (usage: GET key)",
            ),
            (b"*2\r\n$4\r\nNOPE\r\n$1\r\nk\r\n", "unknown command 'NOPE'"),
            (b"*0\r\n", "empty command"),
            (
                b"*2\r\n$3\r\nGET\r\n$9\r\n123456789\r\n",
                "key too long (9 bytes, limit 8)",
            ),
            (
                b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nEX\r\n$1\r\n1\r\n",
                "syntax error: SET options (EX, NX, …) are not supported",
            ),
        ];
        for (input, want) in cases {
            let err = command(input).unwrap().unwrap().unwrap_err();
            assert_eq!(err.to_string(), *want);
        }
    }

    #[test]
    fn waits_for_partial_frames_at_every_split() {
        let whole: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*1\r\n$4\r\nPING\r\n";
        let first_len = whole.len() - b"*1\r\n$4\r\nPING\r\n".len();
        for split in 0..first_len {
            let mut parser = Parser::new();
            let mut buf = BytesMut::from(&whole[..split]);
            assert_eq!(
                parser.parse(&mut buf, &limits()),
                Ok(None),
                "split at {split}"
            );
            assert_eq!(buf.len(), split, "nothing consumed at split {split}");
            buf.extend_from_slice(&whole[split..]);
            let args = parser.parse(&mut buf, &limits()).unwrap().unwrap();
            assert_eq!(args, vec![b("SET"), b("key"), b("value")]);
            // The pipelined second frame is still there, whole.
            let args = parser.parse(&mut buf, &limits()).unwrap().unwrap();
            assert_eq!(args, vec![b("PING")]);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn skips_blank_lines_between_frames() {
        let input = b"\r\n\n*1\r\n$4\r\nPING\r\n\r\n*1\r\n$4\r\nPING\r\n\r\n";
        let mut buf = BytesMut::from(&input[..]);
        let mut parser = Parser::new();
        for _ in 0..2 {
            assert_eq!(parser.parse(&mut buf, &limits()), Ok(Some(vec![b("PING")])));
        }
        assert_eq!(parser.parse(&mut buf, &limits()), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_malformed_frames() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "Protocol error: invalid multibulk length"),
            (b"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"),
            (b"*1\r\n$-5\r\n", "Protocol error: invalid bulk length"),
            (
                b"*1\r\n$4\r\nPINGxx",
                "Protocol error: bulk string not followed by CRLF",
            ),
            (b"*1\n", "Protocol error: invalid multibulk length"),
            (b"*99999999\r\n", "Protocol error: invalid multibulk length"),
            (
                b"*1\r\n$1000\r\n",
                "Protocol error: bulk length 1000 over the 64 byte limit",
            ),
            (
                b"*123456789012345678901234\r\n",
                "Protocol error: invalid multibulk length",
            ),
        ];
        for (input, want) in cases {
            let err = command(input).unwrap_err();
            assert_eq!(
                err.to_string(),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn formats_replies() {
        let items: [&[u8]; 2] = [b"save", b""];
        let cases: &[(Reply<'_>, &[u8])] = &[
            (Reply::Ok, b"+OK\r\n"),
            (Reply::Value(b"a\r\nb"), b"$4\r\na\r\nb\r\n"),
            (Reply::NotFound, b"$-1\r\n"),
            (Reply::Pong(None), b"+PONG\r\n"),
            (Reply::Pong(Some(b"hi")), b"$2\r\nhi\r\n"),
            (Reply::Integer(-12), b":-12\r\n"),
            (Reply::Integer(0), b":0\r\n"),
            (Reply::Array(&items), b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"),
            (Reply::Error("bad\r\nthing"), b"-ERR bad  thing\r\n"),
        ];
        for (reply, want) in cases {
            let mut out = BytesMut::new();
            format(reply, &mut out);
            assert_eq!(&out[..], *want, "reply {reply:?}");
        }
    }
}
