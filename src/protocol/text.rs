//! The text protocol: one request per line, for people at `nc` or `telnet`.
//!
//! ```text
//! set greeting hello world      ->  OK
//! get greeting                  ->  VALUE hello world
//! del greeting                  ->  OK
//! get greeting                  ->  NOT_FOUND
//! frobnicate                    ->  ERR unknown command 'frobnicate'
//! ```
//!
//! A line ends with `\n`; a `\r` before it is dropped, so `telnet`'s `\r\n` works too. The command
//! word is case-insensitive and separated from its arguments by spaces or tabs. For `set`, the
//! value is the *rest of the line* after the single space that follows the key: inner and trailing
//! spaces are kept, so `set k  a b ` stores ` a b `.
//!
//! Every reply is exactly one line that starts with a status word, so a script can branch on the
//! first word and a person can read the rest. Every mistake is answered with `ERR <reason>` and the
//! connection stays open.
//!
//! Over-long lines: [`LineDecoder`] never holds more than `max_line_bytes` of one line. Past the
//! limit it drops what it has, skips input up to the next newline, and then reports
//! [`RequestError::LineTooLong`] once — so a client that sends a gigabyte without a newline costs
//! the server a bounded buffer, and the next line is served normally.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::{Command, Limits, Reply, RequestError};

/// Splits input into lines, bounded by a maximum length. A `tokio_util` codec, so it can be used
/// with `FramedRead` or driven by hand on a buffer (as the server does, to batch replies).
#[derive(Debug, Clone)]
pub struct LineDecoder {
    /// Longest line accepted, not counting the line ending.
    max_line_bytes: usize,
    /// How far the buffer has already been searched for `\n`, so a line that arrives in many small
    /// reads is scanned once in total, not once per read.
    scanned: usize,
    /// True while skipping the rest of an over-long line.
    discarding: bool,
}

impl LineDecoder {
    /// A decoder that refuses lines longer than `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        LineDecoder {
            max_line_bytes,
            scanned: 0,
            discarding: false,
        }
    }
}

impl Decoder for LineDecoder {
    /// A complete line without its ending, or the line-too-long error in its place.
    type Item = Result<Bytes, RequestError>;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        let newline = buf[self.scanned..].iter().position(|&b| b == b'\n');
        match (self.discarding, newline) {
            (false, Some(i)) => {
                let end = self.scanned + i;
                self.scanned = 0;
                if end > self.max_line_bytes + 1 {
                    // The line is complete but too long (it arrived in one read).
                    buf.advance(end + 1);
                    return Ok(Some(Err(RequestError::LineTooLong {
                        limit: self.max_line_bytes,
                    })));
                }
                let mut line = buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                if line.len() > self.max_line_bytes {
                    return Ok(Some(Err(RequestError::LineTooLong {
                        limit: self.max_line_bytes,
                    })));
                }
                Ok(Some(Ok(line.freeze())))
            }
            (false, None) => {
                // Allow one extra byte for a `\r` that may precede the `\n`.
                if buf.len() > self.max_line_bytes + 1 {
                    buf.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Ok(None);
                }
                self.scanned = buf.len();
                Ok(None)
            }
            (true, Some(i)) => {
                buf.advance(self.scanned + i + 1);
                self.scanned = 0;
                self.discarding = false;
                Ok(Some(Err(RequestError::LineTooLong {
                    limit: self.max_line_bytes,
                })))
            }
            (true, None) => {
                buf.clear();
                self.scanned = 0;
                Ok(None)
            }
        }
    }
}

/// Parses one line (without its ending) into a command.
///
/// # Errors
/// A [`RequestError`] naming the mistake: unknown command, wrong arity, a key that is not UTF-8
/// or is too long, a value that is too long.
pub fn parse(line: &Bytes, limits: &Limits) -> Result<Command, RequestError> {
    let (word, rest) = split_word(line, 0);
    let Some(word) = word else {
        return Err(RequestError::Empty);
    };
    let name = &line[word.clone()];
    let lower = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());

    if lower("set") {
        const USAGE: &str = "set <key> <value>";
        let (key, after_key) = split_word(line, rest);
        let Some(key) = key else {
            return Err(arity("set", USAGE));
        };
        // The value starts after exactly one separator; without one there is no value at all.
        if after_key >= line.len() {
            return Err(arity("set", USAGE));
        }
        let key = checked_key(line, key, limits)?;
        let value = line.slice(after_key + 1..);
        limits.check_value(&value)?;
        return Ok(Command::Set { key, value });
    }

    let mut args = [None, None];
    let mut count = 0;
    let mut at = rest;
    loop {
        let (arg, next) = split_word(line, at);
        let Some(arg) = arg else { break };
        if count < args.len() {
            args[count] = Some(arg);
        }
        count += 1;
        at = next;
    }
    let one_key = |command: &'static str, usage: &'static str| match (count, &args[0]) {
        (1, Some(range)) => checked_key(line, range.clone(), limits),
        _ => Err(arity(command, usage)),
    };
    let no_args = |command: &'static str, what: Command| {
        if count == 0 {
            Ok(what)
        } else {
            Err(arity(command, command))
        }
    };

    if lower("get") {
        Ok(Command::Get {
            key: one_key("get", "get <key>")?,
        })
    } else if lower("del") {
        Ok(Command::Del {
            keys: vec![one_key("del", "del <key>")?],
        })
    } else if lower("ping") {
        // `ping hello` echoes the rest of the line, like Redis's PING with an argument.
        let message = args[0].as_ref().map(|r| line.slice(r.start..));
        Ok(Command::Ping { message })
    } else if lower("stats") {
        no_args("stats", Command::Stats)
    } else if lower("help") {
        Ok(Command::Help)
    } else if lower("compact") {
        no_args("compact", Command::Compact)
    } else if lower("quit") || lower("exit") {
        Ok(Command::Quit)
    } else if lower("kill") {
        no_args("kill", Command::Kill)
    } else if lower("trace") {
        no_args("trace", Command::Trace)
    } else if lower("dump") {
        no_args("dump", Command::Dump)
    } else if lower("digest") {
        no_args("digest", Command::Digest)
    } else if lower("fault") {
        // Parsed by the runtime, which knows the peers.
        let rest = args[0]
            .as_ref()
            .map_or(Bytes::new(), |r| line.slice(r.start..));
        Ok(Command::Fault { args: rest })
    } else {
        Err(RequestError::UnknownCommand(printable(name)))
    }
}

/// Appends `reply` as one text line (ending in `\r\n`, which both `nc` and `telnet` display well).
pub fn format(reply: &Reply<'_>, out: &mut BytesMut) {
    match reply {
        Reply::Ok => out.extend_from_slice(b"OK"),
        Reply::Done(note) | Reply::Help(note) => {
            out.extend_from_slice(b"OK ");
            out.extend_from_slice(note.as_bytes());
        }
        Reply::Value(value) => {
            if value.contains(&b'\n') || value.contains(&b'\r') {
                // A line break would split one reply into two lines and desynchronise the client.
                out.extend_from_slice(
                    b"ERR value contains a line break; read it with the Redis protocol",
                );
            } else {
                out.extend_from_slice(b"VALUE ");
                out.extend_from_slice(value);
            }
        }
        Reply::NotFound => out.extend_from_slice(b"NOT_FOUND"),
        Reply::Pong(None) => out.extend_from_slice(b"PONG"),
        Reply::Pong(Some(message)) => {
            out.extend_from_slice(b"PONG ");
            out.extend_from_slice(message);
        }
        Reply::Integer(n) => {
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Reply::Stats(pairs) => {
            out.extend_from_slice(b"STATS");
            for (k, v) in pairs.iter() {
                out.extend_from_slice(b" ");
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(b"=");
                out.extend_from_slice(v.as_bytes());
            }
        }
        Reply::Bye => out.extend_from_slice(b"BYE"),
        Reply::Array(items) => {
            out.extend_from_slice(b"VALUE");
            for item in items.iter() {
                out.extend_from_slice(b" ");
                out.extend_from_slice(item);
            }
        }
        Reply::Bulk(bytes) => {
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(bytes);
        }
        Reply::Error(reason) => {
            out.extend_from_slice(b"ERR ");
            out.extend_from_slice(reason.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn arity(command: &'static str, usage: &'static str) -> RequestError {
    RequestError::WrongArity { command, usage }
}

fn checked_key(
    line: &Bytes,
    range: std::ops::Range<usize>,
    limits: &Limits,
) -> Result<Bytes, RequestError> {
    let key = line.slice(range);
    limits.check_key(&key)?;
    if std::str::from_utf8(&key).is_err() {
        return Err(RequestError::KeyNotUtf8);
    }
    Ok(key)
}

/// The next word at or after `from`: its range, and the index just past it (where the separator
/// that follows it, if any, is).
fn split_word(line: &[u8], from: usize) -> (Option<std::ops::Range<usize>>, usize) {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = match line[from.min(line.len())..]
        .iter()
        .position(|b| !is_space(b))
    {
        Some(i) => from + i,
        None => return (None, line.len()),
    };
    let end = line[start..]
        .iter()
        .position(is_space)
        .map_or(line.len(), |i| start + i);
    (Some(start..end), end)
}

/// A command word as it can be shown back in an error: lossy UTF-8, control characters escaped,
/// cut at 64 characters so a garbage line cannot make a huge reply.
pub(crate) fn printable(word: &[u8]) -> String {
    let text = String::from_utf8_lossy(word);
    let mut shown: String = text
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > 64 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_line_bytes: 64,
            max_key_bytes: 8,
            max_value_bytes: 16,
        }
    }

    fn parsed(line: &str) -> Result<Command, RequestError> {
        parse(&Bytes::copy_from_slice(line.as_bytes()), &limits())
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn parses_each_command() {
        let cases: &[(&str, Result<Command, RequestError>)] = &[
            (
                "set k v",
                Ok(Command::Set {
                    key: b("k"),
                    value: b("v"),
                }),
            ),
            (
                "SET k hello world",
                Ok(Command::Set {
                    key: b("k"),
                    value: b("hello world"),
                }),
            ),
            (
                "set k  a b ",
                Ok(Command::Set {
                    key: b("k"),
                    value: b(" a b "),
                }),
            ),
            (
                "set k ",
                Ok(Command::Set {
                    key: b("k"),
                    value: b(""),
                }),
            ),
            (
                "  set\tk v",
                Ok(Command::Set {
                    key: b("k"),
                    value: b("v"),
                }),
            ),
            ("get k", Ok(Command::Get { key: b("k") })),
            ("Get k  ", Ok(Command::Get { key: b("k") })),
            ("del k", Ok(Command::Del { keys: vec![b("k")] })),
            ("ping", Ok(Command::Ping { message: None })),
            (
                "ping hi there",
                Ok(Command::Ping {
                    message: Some(b("hi there")),
                }),
            ),
            ("stats", Ok(Command::Stats)),
            ("help", Ok(Command::Help)),
            ("dump", Ok(Command::Dump)),
            ("DIGEST", Ok(Command::Digest)),
            ("trace", Ok(Command::Trace)),
            ("compact", Ok(Command::Compact)),
            ("quit", Ok(Command::Quit)),
            ("EXIT", Ok(Command::Quit)),
            ("kill", Ok(Command::Kill)),
        ];
        for (line, want) in cases {
            assert_eq!(&parsed(line), want, "line {line:?}");
        }
    }

    #[test]
    fn names_each_mistake() {
        let cases: &[(&str, &str)] = &[
            ("frobnicate", "unknown command 'frobnicate'"),
            ("", "empty command"),
            ("   ", "empty command"),
            (
                "set",
                "wrong number of arguments for 'set' (usage: set <key> <value>)",
            ),
            (
                "set k",
                "wrong number of arguments for 'set' (usage: set <key> <value>)",
            ),
            (
                "get",
                "wrong number of arguments for 'get' (usage: get <key>)",
            ),
            (
                "get a b",
                "wrong number of arguments for 'get' (usage: get <key>)",
            ),
            (
                "del",
                "wrong number of arguments for 'del' (usage: del <key>)",
            ),
            (
                "stats now",
                "wrong number of arguments for 'stats' (usage: stats)",
            ),
            ("get 123456789", "key too long (9 bytes, limit 8)"),
            (
                "set k 12345678901234567",
                "value too long (17 bytes, limit 16)",
            ),
            ("bell\x07", "unknown command 'bell\\u{7}'"),
        ];
        for (line, want) in cases {
            let err = parsed(line).expect_err(line);
            assert_eq!(err.to_string(), *want, "line {line:?}");
        }
        let not_utf8 = Bytes::from_static(b"get \xff\xfe");
        assert_eq!(parse(&not_utf8, &limits()), Err(RequestError::KeyNotUtf8));
    }

    #[test]
    fn formats_each_reply() {
        let stats = [("keys", "2".to_string()), ("segments", "1".to_string())];
        let cases: &[(Reply<'_>, &str)] = &[
            (Reply::Ok, "OK\r\n"),
            (Reply::Done("shutting down"), "OK shutting down\r\n"),
            (Reply::Value(b"hello world"), "VALUE hello world\r\n"),
            (Reply::Value(b""), "VALUE \r\n"),
            (Reply::NotFound, "NOT_FOUND\r\n"),
            (Reply::Pong(None), "PONG\r\n"),
            (Reply::Pong(Some(b"hi")), "PONG hi\r\n"),
            (Reply::Integer(3), "VALUE 3\r\n"),
            (Reply::Stats(&stats), "STATS keys=2 segments=1\r\n"),
            (Reply::Bye, "BYE\r\n"),
            (
                Reply::Error("unknown command 'x'"),
                "ERR unknown command 'x'\r\n",
            ),
            (
                Reply::Value(b"two\nlines"),
                "ERR value contains a line break; read it with the Redis protocol\r\n",
            ),
        ];
        for (reply, want) in cases {
            let mut out = BytesMut::new();
            format(reply, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), *want, "reply {reply:?}");
        }
    }

    /// Feeds `chunks` one at a time, as separate reads, and collects what the decoder yields.
    fn decode_chunks(max: usize, chunks: &[&[u8]]) -> (Vec<Result<String, RequestError>>, usize) {
        let mut decoder = LineDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut peak = 0;
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            peak = peak.max(buf.len());
            while let Some(item) = decoder.decode(&mut buf).unwrap() {
                out.push(item.map(|line| String::from_utf8_lossy(&line).into_owned()));
            }
        }
        (out, peak)
    }

    #[test]
    fn decodes_lines_split_across_reads() {
        let (lines, _) = decode_chunks(16, &[b"se", b"t a 1\r", b"\nget a\nget", b" b\n"]);
        let want: Vec<Result<String, RequestError>> =
            vec![Ok("set a 1".into()), Ok("get a".into()), Ok("get b".into())];
        assert_eq!(lines, want);
    }

    #[test]
    fn refuses_long_lines_without_buffering_them() {
        let big = vec![b'x'; 100];
        let chunks: Vec<&[u8]> = vec![b"get a\n", &big, &big, &big, b"yyy\nping\n"];
        let (lines, peak) = decode_chunks(16, &chunks);
        let want: Vec<Result<String, RequestError>> = vec![
            Ok("get a".into()),
            Err(RequestError::LineTooLong { limit: 16 }),
            Ok("ping".into()),
        ];
        assert_eq!(lines, want);
        // The buffer never holds more than one read's worth beyond the limit.
        assert!(peak <= 16 + 1 + 100, "peak buffer {peak}");
        // A long line that arrives whole in one read is refused too.
        let (lines, _) = decode_chunks(4, &[b"get abcdef\nping\n"]);
        assert_eq!(
            lines,
            vec![
                Err(RequestError::LineTooLong { limit: 4 }),
                Ok("ping".into())
            ]
        );
        // The limit counts the line, not its `\r\n`.
        let (lines, _) = decode_chunks(5, &[b"get a\r\n"]);
        assert_eq!(lines, vec![Ok("get a".into())]);
    }
}
