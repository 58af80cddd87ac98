//! Reading histories recorded by other systems: Jepsen's client logs and EDN histories.
//!
//! [Jepsen](https://jepsen.io) tests a database by running clients against it while a *nemesis*
//! breaks the network and kills nodes, and records what every client did. Each client is a
//! *process*, a number; a process runs one operation at a time, and each operation appears as
//! two entries:
//!
//! - `:invoke` — the process is about to send the request;
//! - its completion, one of
//!   - `:ok` — the database answered and the operation took effect (a read carries its value);
//!   - `:fail` — the database answered that it did *not* take effect;
//!   - `:info` — no answer (a timeout, a broken connection). The client cannot know whether the
//!     request was lost on the way there, applied and the reply lost on the way back, or is still
//!     sitting in a queue and will be applied later. So the outcome is *unknown*: the operation
//!     may take effect at any time after its invoke, or never. Jepsen retires such a process and
//!     carries on with a new process number.
//!
//! These are dkvs's invoke and return events under other names (see [`super::history`]), so both
//! formats here become an ordinary [`History`]:
//!
//! | format | looks like | [`Format`] |
//! |---|---|---|
//! | client log (the etcd histories) | `INFO  jepsen.util - 3 :invoke :cas [4 2]` (tab-separated) | [`Format::JepsenLog`] |
//! | EDN, one map a line | `{:process 3, :type :ok, :f :get, :key "9", :value "x"}` | [`Format::JepsenEdn`] |
//!
//! # How Jepsen's words become dkvs's
//!
//! | Jepsen | dkvs |
//! |---|---|
//! | `:f` `:read` / `:get` | [`Op::Get`] |
//! | `:f` `:write` / `:put` / `:set` | [`Op::Set`] ([`Op::Del`] if the value is empty, see below) |
//! | `:f` `:append` | [`Op::Append`] |
//! | `:f` `:del` / `:delete` | [`Op::Del`] |
//! | `:f` `:cas`, value `[old new]` | [`Op::Cas`] (`old` empty: expects the key absent) |
//! | `:ok` read with a value / empty | [`Outcome::Value`] / [`Outcome::NotFound`] |
//! | `:ok` anything else | [`Outcome::Ok`] |
//! | `:fail :cas [old new]` | [`Outcome::Mismatch`]: the compare failed, the key held something else |
//! | any other `:fail` (`:fail :read :timed-out`, `:fail :cas :timed-out`) | [`Outcome::Fail`]: certainly no effect |
//! | `:info` | [`Outcome::Unknown`] |
//! | invoke never completed (end of file) | no return: unknown |
//!
//! Conventions, the same for both formats:
//!
//! - **Empty means absent.** The etcd register starts as `nil`; the kv histories' keys start as
//!   the empty string and grow by `append`. dkvs has one notion of "no value", so `nil` and `""`
//!   are both "absent": a read answering either is [`Outcome::NotFound`], a write of either is
//!   [`Op::Del`], a `cas` expecting either expects the key absent, and an `append` of `""` (which
//!   changes nothing) is left out. A `cas` *to* an empty value has no dkvs form and is an error.
//! - **One register.** The client log has no keys, and an EDN entry may omit `:key`: such
//!   operations all use the key `"r"`.
//! - **Order, not time.** Neither format carries usable times, but the file is written in real-time
//!   order, which is all a checker needs: an event on line *n* happens at `n × 1000` ns.
//! - **Pairing by process.** Jepsen entries have no ids: a completion belongs to the open invoke
//!   of the same process, and the operation's id is the invoke's line number. A completion with
//!   no open invoke, or an invoke while the process still has one open, is an error naming the
//!   line.
//! - **What is skipped.** Blank lines; lines of other loggers or not from a client (the
//!   nemesis's `:process :nemesis`); in EDN, comment lines starting with `;`. A line that is a
//!   client operation but cannot be read is an error naming the line and what was expected.
//!
//! Integers become their decimal text; unknown EDN map entries (`:time`, `:index`, `:error`, …)
//! are read and ignored.
//!
//! Why `:fail :cas [old new]` is [`Outcome::Mismatch`] rather than [`Outcome::Fail`]: the etcd
//! client logs a compare that etcd refused this way, so the failure says something about the
//! state (the register did not hold `old` at some instant in the operation's window), and a
//! checker may use it. Porcupine's etcd model reads it the same way, and the verdicts of the
//! corpus in `tests/data/porcupine` were computed with that reading. Reading it as
//! [`Outcome::Fail`] (no effect, nothing learned) can only turn violations into passes; the
//! choice is one constant, `CAS_FAIL`, below.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::str::FromStr;

use super::history::{ClientId, Event, History, HistoryError, Op, Outcome};

/// The key of every operation that names none (the etcd register, EDN entries without `:key`).
const REGISTER_KEY: &str = "r";

/// What a `:fail` completion of a compare-and-set means: the compare failed, nothing changed.
/// [`Outcome::Fail`] would be the weaker reading ("no effect, and nothing learned").
const CAS_FAIL: Outcome = Outcome::Mismatch;

/// Time between two consecutive lines. Any positive step works; only order matters.
const NS_PER_LINE: u64 = 1000;

/// A history file format `dkvs check` can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// dkvs's own JSON lines (`docs/HISTORY.md`).
    Jsonl,
    /// Jepsen client log lines: `INFO  jepsen.util - <process> :<type> :<f> <value>`.
    JepsenLog,
    /// Jepsen EDN maps, one a line: `{:process 0, :type :invoke, :f :get, :key "x", :value nil}`.
    JepsenEdn,
}

impl Format {
    /// Every format, in the order `--format` lists them.
    pub const ALL: [Format; 3] = [Format::Jsonl, Format::JepsenLog, Format::JepsenEdn];

    /// The format's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::JepsenLog => "jepsen-log",
            Format::JepsenEdn => "jepsen-edn",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|format| format.name() == s)
            .ok_or_else(|| {
                format!("unknown history format `{s}` (expected jsonl, jepsen-log or jepsen-edn)")
            })
    }
}

/// Guesses a file's format from its first non-blank line: `{"` is dkvs's JSON lines, `{:` is
/// Jepsen EDN, a line that mentions `jepsen.util` or starts with `INFO` is a Jepsen log.
pub fn detect(first_non_blank_line: &str) -> Option<Format> {
    let line = first_non_blank_line.trim_start_matches('\u{feff}').trim();
    if let Some(rest) = line.strip_prefix('{') {
        return match rest.trim_start().as_bytes().first() {
            Some(b'"') => Some(Format::Jsonl),
            Some(b':') => Some(Format::JepsenEdn),
            _ => None,
        };
    }
    if line.contains("jepsen.util") || line.starts_with("INFO") {
        return Some(Format::JepsenLog);
    }
    None
}

/// Reads a history in the given format.
///
/// # Errors
/// Those of [`History::parse_jsonl`], [`parse_log`] or [`parse_edn`].
pub fn parse(format: Format, reader: impl BufRead) -> Result<History, HistoryError> {
    match format {
        Format::Jsonl => History::parse_jsonl(reader),
        Format::JepsenLog => parse_log(reader),
        Format::JepsenEdn => parse_edn(reader),
    }
}

/// Reads a history in whichever format its first non-blank line shows (see [`detect`]; EDN
/// comment lines starting with `;` are passed over). A file with no such line is an empty history.
///
/// # Errors
/// A first line whose format cannot be recognised, then those of [`parse`].
pub fn parse_auto(text: &str) -> Result<History, HistoryError> {
    let first = text.lines().enumerate().find(|(_, line)| {
        let line = line.trim_start_matches('\u{feff}').trim();
        !line.is_empty() && !line.starts_with(';')
    });
    let Some((n, line)) = first else {
        return Ok(History::default());
    };
    let format = detect(line).ok_or_else(|| HistoryError::Line {
        line: n + 1,
        message: format!(
            "cannot tell the history's format from `{}`: expected dkvs JSON lines \
             (`{{\"event\":…}}`), Jepsen EDN (`{{:process …}}`) or a Jepsen log \
             (`INFO  jepsen.util - …`); name the format explicitly",
            excerpt(line)
        ),
    })?;
    parse(format, text.as_bytes())
}

/// Reads a Jepsen client log of one register (the etcd histories).
///
/// Lines of the form `INFO  jepsen.util - <process>\t:<type>\t:<f>\t<value>` are client
/// operations (tabs or spaces; anything before `jepsen.util`, such as a timestamp, is ignored);
/// every other line is skipped, and so are `jepsen.util` lines whose process is a keyword
/// (`:nemesis`). The mapping to dkvs operations is in the [module documentation](self).
///
/// # Errors
/// A client operation line that cannot be read, or entries that do not pair up; each names its
/// line.
pub fn parse_log(reader: impl BufRead) -> Result<History, HistoryError> {
    let mut pairing = Pairing::default();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let number = n + 1;
        let at = |message: String| HistoryError::Line {
            line: number,
            message,
        };
        if let Some(entry) = log_entry(&line).map_err(at)? {
            pairing.add(number, entry).map_err(at)?;
        }
    }
    pairing.finish()
}

/// Reads a Jepsen history written as one EDN map per line.
///
/// Each map needs `:process`, `:type` and `:f`; `:key` is optional (absent: `"r"`) and `:value`
/// is whatever the operation carries (absent: `nil`). Entries may come in any order; commas are
/// whitespace. Values are `nil`, strings (with `\"`, `\\`, `\n`, `\t`, `\r`, `\uXXXX` escapes),
/// integers, keywords and vectors. Maps whose `:process` is not an integer (the nemesis), blank
/// lines and `;` comment lines are skipped. The mapping to dkvs operations is in the
/// [module documentation](self).
///
/// # Errors
/// A line that is not such a map, an unknown `:type` or `:f`, a value of the wrong shape, or
/// entries that do not pair up; each names its line.
pub fn parse_edn(reader: impl BufRead) -> Result<History, HistoryError> {
    let mut pairing = Pairing::default();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let number = n + 1;
        let at = |message: String| HistoryError::Line {
            line: number,
            message,
        };
        if let Some(entry) = edn_entry(&line).map_err(at)? {
            pairing.add(number, entry).map_err(at)?;
        }
    }
    pairing.finish()
}

/// Jepsen's `:type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Invoke,
    Done(Done),
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    Ok,
    Fail,
    Info,
}

impl Kind {
    fn from_keyword(word: &str) -> Option<Kind> {
        match word {
            "invoke" => Some(Kind::Invoke),
            "ok" => Some(Kind::Done(Done::Ok)),
            "fail" => Some(Kind::Done(Done::Fail)),
            "info" => Some(Kind::Done(Done::Info)),
            _ => None,
        }
    }
}

/// Jepsen's `:f`, with its synonyms folded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Function {
    Read,
    Write,
    Append,
    Delete,
    Cas,
}

impl Function {
    fn from_keyword(word: &str) -> Option<Function> {
        match word {
            "read" | "get" => Some(Function::Read),
            "write" | "put" | "set" => Some(Function::Write),
            "append" => Some(Function::Append),
            "del" | "delete" => Some(Function::Delete),
            "cas" => Some(Function::Cas),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Function::Read => "read",
            Function::Write => "write",
            Function::Append => "append",
            Function::Delete => "delete",
            Function::Cas => "cas",
        }
    }
}

/// One client entry of either format, before pairing.
struct Entry {
    process: ClientId,
    kind: Kind,
    function: Function,
    /// `None`: the entry names no key (an invoke then uses [`REGISTER_KEY`]; a completion is
    /// not checked against its invoke's key).
    key: Option<String>,
    value: Value,
}

/// An invoke still waiting for its completion.
struct Open {
    line: usize,
    function: Function,
    key: String,
    /// `None` for an operation that is left out of the history (an `append` of `""`).
    op: Option<Op>,
}

/// Turns entries into dkvs events, pairing each completion with its process's open invoke.
#[derive(Default)]
struct Pairing {
    open: HashMap<ClientId, Open>,
    events: Vec<Event>,
    /// The file line of each event, to translate errors found while building the history.
    lines: Vec<usize>,
}

impl Pairing {
    fn add(&mut self, line: usize, entry: Entry) -> Result<(), String> {
        let id = u64::try_from(line).unwrap_or(u64::MAX);
        let time_ns = id.saturating_mul(NS_PER_LINE);
        let Entry {
            process,
            kind,
            function,
            key,
            value,
        } = entry;
        let Kind::Done(done) = kind else {
            if let Some(open) = self.open.get(&process) {
                return Err(format!(
                    "process {process} invokes an operation while its {} from line {} is still \
                     open (a process runs one operation at a time)",
                    open.function.name(),
                    open.line
                ));
            }
            let key = key.unwrap_or_else(|| REGISTER_KEY.to_string());
            let op = invoke_op(function, key.clone(), &value)?;
            if let Some(op) = &op {
                self.events.push(Event::Invoke {
                    id,
                    client: process,
                    time_ns,
                    op: op.clone(),
                });
                self.lines.push(line);
            }
            self.open.insert(
                process,
                Open {
                    line,
                    function,
                    key,
                    op,
                },
            );
            return Ok(());
        };
        let Some(open) = self.open.remove(&process) else {
            return Err(format!(
                "process {process} completes a {} it never invoked (no open invoke)",
                function.name()
            ));
        };
        if open.function != function {
            return Err(format!(
                "process {process} completes a {}, but its open invoke (line {}) is a {}",
                function.name(),
                open.line,
                open.function.name(),
            ));
        }
        if let Some(key) = key
            && key != open.key
        {
            return Err(format!(
                "process {process} completes an operation on key {key:?}, but its open invoke \
                 (line {}) is on key {:?}",
                open.line, open.key
            ));
        }
        let Some(op) = open.op else {
            return Ok(());
        };
        let outcome = outcome(done, &op, &value)?;
        self.events.push(Event::Return {
            id: u64::try_from(open.line).unwrap_or(u64::MAX),
            client: process,
            time_ns,
            outcome,
        });
        self.lines.push(line);
        Ok(())
    }

    fn finish(self) -> Result<History, HistoryError> {
        let lines = self.lines;
        History::from_events(self.events).map_err(|err| match err {
            // `from_events` counts events; point at the file's line instead.
            HistoryError::Line { line, message } => HistoryError::Line {
                line: line
                    .checked_sub(1)
                    .and_then(|i| lines.get(i))
                    .copied()
                    .unwrap_or(line),
                message,
            },
            other => other,
        })
    }
}

/// The dkvs operation an invoke asks for (`None`: one that changes nothing and is left out).
fn invoke_op(function: Function, key: String, value: &Value) -> Result<Option<Op>, String> {
    Ok(Some(match function {
        Function::Read => Op::Get { key },
        Function::Delete => Op::Del { key },
        Function::Write => match value.text("a write's value")? {
            Some(value) => Op::Set { key, value },
            None => Op::Del { key },
        },
        Function::Append => match value {
            Value::Nil => return Err("an append needs a value, found nil".to_string()),
            _ => match value.text("an append's value")? {
                Some(value) => Op::Append { key, value },
                None => return Ok(None),
            },
        },
        Function::Cas => {
            let Value::Vector(pair) = value else {
                return Err(format!(
                    "a cas needs `[old new]`, found {}",
                    value.describe()
                ));
            };
            let [old, new] = pair.as_slice() else {
                return Err(format!(
                    "a cas needs `[old new]`, found a vector of {}",
                    pair.len()
                ));
            };
            let expected = old.text("a cas's old value")?;
            let Some(value) = new.text("a cas's new value")? else {
                return Err(
                    "a cas to an empty value cannot be expressed (dkvs cas always stores a value)"
                        .to_string(),
                );
            };
            Op::Cas {
                key,
                expected,
                value,
            }
        }
    }))
}

/// What the client was told, for a completion carrying `value`.
fn outcome(done: Done, op: &Op, value: &Value) -> Result<Outcome, String> {
    Ok(match (done, op) {
        (Done::Info, _) => Outcome::Unknown,
        // A keyword in place of `[old new]` names an error (`:timed-out`), not a failed compare.
        (Done::Fail, Op::Cas { .. }) if !matches!(value, Value::Keyword(_)) => CAS_FAIL,
        (Done::Fail, _) => Outcome::Fail,
        (Done::Ok, Op::Get { .. }) => match value.text("a read's result")? {
            Some(value) => Outcome::Value { value },
            None => Outcome::NotFound,
        },
        (Done::Ok, _) => Outcome::Ok,
    })
}

/// The text after `jepsen.util -`, if the line is from that logger.
fn after_marker(line: &str) -> Option<&str> {
    let at = line.find("jepsen.util")?;
    let rest = line.get(at + "jepsen.util".len()..)?.trim_start();
    Some(rest.strip_prefix('-')?.trim_start())
}

/// Splits off the first whitespace-separated word.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(end) => (&s[..end], &s[end..]),
        None => (s, ""),
    }
}

/// One line of a client log: `Ok(None)` for a line that is no client operation.
fn log_entry(line: &str) -> Result<Option<Entry>, String> {
    let Some(rest) = after_marker(line) else {
        return Ok(None);
    };
    let (process, rest) = word(rest);
    let (kind, rest) = word(rest);
    let (function, value) = word(rest);
    let kind_word = kind.strip_prefix(':').and_then(Kind::from_keyword);
    if process.starts_with(':') || (kind_word.is_none() && !is_integer(process)) {
        // `:nemesis` and friends, or another message of the same logger.
        return Ok(None);
    }
    let expected = "expected `<process> :<type> :<f> <value>`";
    let process = process
        .parse::<ClientId>()
        .map_err(|_| format!("{expected}: the process `{process}` is not a number"))?;
    let kind = kind_word.ok_or_else(|| {
        format!("{expected}: unknown type `{kind}` (expected :invoke, :ok, :fail or :info)")
    })?;
    let function = function
        .strip_prefix(':')
        .and_then(Function::from_keyword)
        .ok_or_else(|| format!("{expected}: unknown operation `{function}` {FUNCTIONS}"))?;
    let mut reader = Reader::new(value);
    let value = if reader.at_end() {
        Value::Nil
    } else {
        let v = reader.value()?;
        reader.expect_end()?;
        v
    };
    Ok(Some(Entry {
        process,
        kind,
        function,
        key: None,
        value,
    }))
}

/// The operations both formats understand, for error messages.
const FUNCTIONS: &str = "(expected :read/:get, :write/:put/:set, :append, :del/:delete or :cas)";

fn is_integer(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// One line of an EDN history: `Ok(None)` for a line that is no client operation.
fn edn_entry(line: &str) -> Result<Option<Entry>, String> {
    let trimmed = line.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() || trimmed.starts_with(';') {
        return Ok(None);
    }
    let mut reader = Reader::new(trimmed);
    let Value::Map(entries) = reader.value()? else {
        return Err("expected one EDN map `{:process …, :type …, :f …}` a line".to_string());
    };
    reader.expect_end()?;
    let mut fields: [Option<Value>; 5] = Default::default();
    const NAMES: [&str; 5] = ["process", "type", "f", "key", "value"];
    for (k, v) in entries {
        let Value::Keyword(name) = k else {
            continue;
        };
        if let Some(i) = NAMES.iter().position(|n| *n == name) {
            if fields[i].is_some() {
                return Err(format!("`:{name}` appears twice"));
            }
            fields[i] = Some(v);
        }
    }
    let [process, kind, function, key, value] = fields;
    let process = match process {
        None => return Err("missing `:process`".to_string()),
        Some(Value::Int(n)) => {
            ClientId::try_from(n).map_err(|_| format!("`:process {n}` is not a process number"))?
        }
        // The nemesis, or another non-client actor.
        Some(_) => return Ok(None),
    };
    let kind = match kind {
        Some(Value::Keyword(word)) => Kind::from_keyword(&word),
        _ => None,
    }
    .ok_or("`:type` must be :invoke, :ok, :fail or :info")?;
    let function = match &function {
        Some(Value::Keyword(word)) => Function::from_keyword(word),
        _ => None,
    }
    .ok_or_else(|| {
        let found = function
            .as_ref()
            .map_or("nothing".to_string(), Value::describe);
        format!("unknown `:f` {found} {FUNCTIONS}")
    })?;
    let key = match key {
        None => None,
        Some(Value::Str(s)) => Some(s),
        Some(Value::Int(n)) => Some(n.to_string()),
        Some(Value::Keyword(k)) => Some(k),
        Some(other) => {
            return Err(format!(
                "`:key` must be a string, an integer or a keyword, found {}",
                other.describe()
            ));
        }
    };
    Ok(Some(Entry {
        process,
        kind,
        function,
        key,
        value: value.unwrap_or(Value::Nil),
    }))
}

/// The EDN values a history line can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Nil,
    Int(i64),
    Str(String),
    /// Without its leading `:`.
    Keyword(String),
    Vector(Vec<Value>),
    /// A list or set: read so that fields we ignore may hold them, never interpreted.
    Seq(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// A token we do not interpret: `true`, `1.5`, a symbol.
    Other(String),
}

impl Value {
    /// The value as dkvs text: `None` for `nil` and `""` (absent), the decimal text of an
    /// integer, a string's contents. `what` names the value in the error.
    fn text(&self, what: &str) -> Result<Option<String>, String> {
        match self {
            Value::Nil => Ok(None),
            Value::Str(s) if s.is_empty() => Ok(None),
            Value::Str(s) => Ok(Some(s.clone())),
            Value::Int(n) => Ok(Some(n.to_string())),
            other => Err(format!(
                "{what} must be a string, an integer or nil, found {}",
                other.describe()
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Value::Nil => "nil".to_string(),
            Value::Int(n) => format!("the integer {n}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Keyword(k) => format!("the keyword :{k}"),
            Value::Vector(v) => format!("a vector of {}", v.len()),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a map".to_string(),
            Value::Other(t) => format!("`{t}`"),
        }
    }
}

/// How deep vectors, lists and maps may nest, so a hostile line cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

/// A reader for the small part of EDN that Jepsen histories use.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            pos: 0,
            depth: 0,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips whitespace (commas are whitespace in EDN) and `;` comments.
    fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | b',' => self.pos += 1,
                b';' => self.pos = self.text.len(),
                _ => break,
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_space();
        self.pos >= self.text.len()
    }

    fn expect_end(&mut self) -> Result<(), String> {
        if self.at_end() {
            Ok(())
        } else {
            Err(format!(
                "unexpected `{}` after the value",
                excerpt(self.rest())
            ))
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_space();
        let Some(b) = self.peek() else {
            return Err("expected a value, found the end of the line".to_string());
        };
        match b {
            b'"' => self.string().map(Value::Str),
            b'[' => self.seq(b']').map(Value::Vector),
            b'(' => self.seq(b')').map(Value::Seq),
            b'#' if self.rest().starts_with("#{") => {
                self.pos += 1;
                self.seq(b'}').map(Value::Seq)
            }
            b'{' => self.map(),
            b']' | b')' | b'}' => Err(format!("unexpected `{}`", b as char)),
            _ => self.token(),
        }
    }

    fn nested<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<T, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let result = read(self);
        self.depth -= 1;
        result
    }

    /// Elements up to `close`; the opening bracket is at `pos`.
    fn seq(&mut self, close: u8) -> Result<Vec<Value>, String> {
        self.pos += 1;
        self.nested(|r| {
            let mut items = Vec::new();
            loop {
                r.skip_space();
                match r.peek() {
                    None => return Err(format!("missing `{}`", close as char)),
                    Some(b) if b == close => {
                        r.pos += 1;
                        return Ok(items);
                    }
                    Some(_) => items.push(r.value()?),
                }
            }
        })
    }

    fn map(&mut self) -> Result<Value, String> {
        let items = self.seq(b'}')?;
        if !items.len().is_multiple_of(2) {
            return Err("a map needs a value for every key".to_string());
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }

    /// A string literal; the opening quote is at `pos`.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let Some(stop) = rest.find(['"', '\\']) else {
                return Err("unterminated string (missing `\"`)".to_string());
            };
            out.push_str(&rest[..stop]);
            self.pos += stop + 1;
            if rest.as_bytes()[stop] == b'"' {
                return Ok(out);
            }
            let mut chars = self.rest().chars();
            let escaped = chars.next();
            self.pos += escaped.map_or(0, char::len_utf8);
            match escaped {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('u') => {
                    let code = self
                        .rest()
                        .get(..4)
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .and_then(char::from_u32)
                        .ok_or("`\\u` needs four hex digits naming a character")?;
                    out.push(code);
                    self.pos += 4;
                }
                Some(c) => return Err(format!("unknown escape `\\{c}` in a string")),
                None => return Err("unterminated string (missing `\"`)".to_string()),
            }
        }
    }

    /// A keyword, `nil`, an integer, or another bare token.
    fn token(&mut self) -> Result<Value, String> {
        let rest = self.rest();
        let end = rest
            .find(|c: char| {
                c.is_whitespace()
                    || matches!(c, ',' | '"' | ';' | '[' | ']' | '(' | ')' | '{' | '}')
            })
            .unwrap_or(rest.len());
        let token = &rest[..end];
        if token.is_empty() {
            // A character that ends tokens but is not EDN whitespace (say U+00A0): refuse it
            // rather than loop on it.
            let c = rest.chars().next().unwrap_or(' ');
            return Err(format!("unexpected character {c:?}"));
        }
        self.pos += end;
        if let Some(name) = token.strip_prefix(':') {
            return if name.is_empty() {
                Err("a keyword needs a name after `:`".to_string())
            } else {
                Ok(Value::Keyword(name.to_string()))
            };
        }
        if token == "nil" {
            return Ok(Value::Nil);
        }
        let digits = token.strip_suffix('N').unwrap_or(token);
        let unsigned = digits.strip_prefix(['-', '+']).unwrap_or(digits);
        if is_integer(unsigned) {
            return digits
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| format!("the integer {token} is too large"));
        }
        Ok(Value::Other(token.to_string()))
    }
}

/// The start of `s`, short enough for an error message.
fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(text: &str) -> Result<History, HistoryError> {
        parse_log(text.as_bytes())
    }

    fn edn(text: &str) -> Result<History, HistoryError> {
        parse_edn(text.as_bytes())
    }

    fn r() -> String {
        REGISTER_KEY.to_string()
    }

    /// The one operation of a history.
    fn only(history: &History) -> (&Op, &Outcome) {
        assert_eq!(history.ops.len(), 1, "{history:?}");
        (&history.ops[0].op, &history.ops[0].outcome)
    }

    #[test]
    fn log_lines_map_to_dkvs_operations() {
        let cases: Vec<(&str, &str, Op, Outcome)> = vec![
            (
                ":read\tnil",
                ":ok\t:read\t4",
                Op::Get { key: r() },
                Outcome::Value { value: "4".into() },
            ),
            (
                ":read\tnil",
                ":ok\t:read\tnil",
                Op::Get { key: r() },
                Outcome::NotFound,
            ),
            (
                ":read\tnil",
                ":fail\t:read\t:timed-out",
                Op::Get { key: r() },
                Outcome::Fail,
            ),
            (
                ":read\tnil",
                ":info\t:read\t:timed-out",
                Op::Get { key: r() },
                Outcome::Unknown,
            ),
            (
                ":write\t4",
                ":ok\t:write\t4",
                Op::Set {
                    key: r(),
                    value: "4".into(),
                },
                Outcome::Ok,
            ),
            (
                ":write\t4",
                ":fail\t:write\t4",
                Op::Set {
                    key: r(),
                    value: "4".into(),
                },
                Outcome::Fail,
            ),
            (
                ":write\t4",
                ":info\t:write\t:timed-out",
                Op::Set {
                    key: r(),
                    value: "4".into(),
                },
                Outcome::Unknown,
            ),
            (
                ":write\tnil",
                ":ok\t:write",
                Op::Del { key: r() },
                Outcome::Ok,
            ),
            (
                ":cas\t[4 2]",
                ":ok\t:cas\t[4 2]",
                Op::Cas {
                    key: r(),
                    expected: Some("4".into()),
                    value: "2".into(),
                },
                Outcome::Ok,
            ),
            (
                ":cas\t[4 2]",
                ":fail\t:cas\t[4 2]",
                Op::Cas {
                    key: r(),
                    expected: Some("4".into()),
                    value: "2".into(),
                },
                Outcome::Mismatch,
            ),
            (
                ":cas\t[4 2]",
                ":fail\t:cas\t:timed-out",
                Op::Cas {
                    key: r(),
                    expected: Some("4".into()),
                    value: "2".into(),
                },
                Outcome::Fail,
            ),
            (
                ":cas\t[nil 2]",
                ":info\t:cas\t:timed-out",
                Op::Cas {
                    key: r(),
                    expected: None,
                    value: "2".into(),
                },
                Outcome::Unknown,
            ),
        ];
        for (invoke, complete, op, outcome) in cases {
            let text = format!(
                "INFO  jepsen.util - 3\t:invoke\t{invoke}\nINFO  jepsen.util - 3\t{complete}\n"
            );
            let history = log(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(only(&history), (&op, &outcome), "{text}");
            let o = &history.ops[0];
            assert_eq!((o.id, o.client, o.call_ns), (1, 3, 1000), "{text}");
            let returned = (outcome != Outcome::Unknown).then_some(2000);
            assert_eq!(o.return_ns, returned, "{text}");
        }
    }

    #[test]
    fn edn_lines_map_to_dkvs_operations() {
        let key = || "k".to_string();
        let cases: Vec<(&str, &str, Op, Outcome)> = vec![
            (
                ":f :get, :value nil",
                ":type :ok, :f :get, :value \"ab\"",
                Op::Get { key: key() },
                Outcome::Value { value: "ab".into() },
            ),
            // Keys start as the empty string: reading it is reading nothing.
            (
                ":f :get",
                ":type :ok, :f :get, :value \"\"",
                Op::Get { key: key() },
                Outcome::NotFound,
            ),
            (
                ":f :read",
                ":type :ok, :f :read, :value nil",
                Op::Get { key: key() },
                Outcome::NotFound,
            ),
            (
                ":f :read",
                ":type :ok, :f :read, :value 7",
                Op::Get { key: key() },
                Outcome::Value { value: "7".into() },
            ),
            (
                ":f :get",
                ":type :fail, :f :get, :value :timeout",
                Op::Get { key: key() },
                Outcome::Fail,
            ),
            (
                ":f :put, :value \"x\"",
                ":type :ok, :f :put",
                Op::Set {
                    key: key(),
                    value: "x".into(),
                },
                Outcome::Ok,
            ),
            (
                ":f :write, :value 5",
                ":type :info, :f :write",
                Op::Set {
                    key: key(),
                    value: "5".into(),
                },
                Outcome::Unknown,
            ),
            (
                ":f :set, :value \"x\"",
                ":type :fail, :f :set",
                Op::Set {
                    key: key(),
                    value: "x".into(),
                },
                Outcome::Fail,
            ),
            // Writing the empty string makes the key hold nothing again.
            (
                ":f :put, :value \"\"",
                ":type :ok, :f :put",
                Op::Del { key: key() },
                Outcome::Ok,
            ),
            (
                ":f :append, :value \"x 1 y\"",
                ":type :ok, :f :append",
                Op::Append {
                    key: key(),
                    value: "x 1 y".into(),
                },
                Outcome::Ok,
            ),
            (
                ":f :del",
                ":type :ok, :f :del",
                Op::Del { key: key() },
                Outcome::Ok,
            ),
            (
                ":f :delete",
                ":type :info, :f :delete",
                Op::Del { key: key() },
                Outcome::Unknown,
            ),
            (
                ":f :cas, :value [\"a\" \"b\"]",
                ":type :ok, :f :cas",
                Op::Cas {
                    key: key(),
                    expected: Some("a".into()),
                    value: "b".into(),
                },
                Outcome::Ok,
            ),
            (
                ":f :cas, :value [\"\" \"b\"]",
                ":type :fail, :f :cas",
                Op::Cas {
                    key: key(),
                    expected: None,
                    value: "b".into(),
                },
                Outcome::Mismatch,
            ),
        ];
        for (invoke, complete, op, outcome) in cases {
            let text = format!(
                "{{:process 4, :type :invoke, :key \"k\", {invoke}}}\n\
                 {{{complete}, :key \"k\", :process 4}}\n"
            );
            let history = edn(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(only(&history), (&op, &outcome), "{text}");
            assert_eq!((history.ops[0].id, history.ops[0].client), (1, 4));
        }
    }

    #[test]
    fn edn_keys_are_optional_and_appending_nothing_is_left_out() {
        let text = "{:process 0, :type :invoke, :f :write, :value 1}\n\
                    {:process 0, :type :ok, :f :write, :value 1}\n\
                    {:process 0, :type :invoke, :f :append, :key \"k\", :value \"\"}\n\
                    {:process 0, :type :ok, :f :append, :key \"k\", :value \"\"}\n\
                    {:process 0, :type :invoke, :f :get, :key \"k\"}\n\
                    {:process 0, :type :ok, :f :get, :value \"v\"}\n";
        let history = edn(text).unwrap();
        let got: Vec<_> = history
            .ops
            .iter()
            .map(|o| (o.id, o.op.clone(), o.outcome.clone()))
            .collect();
        let set = Op::Set {
            key: r(),
            value: "1".into(),
        };
        let get = Op::Get { key: "k".into() };
        let v = Outcome::Value { value: "v".into() };
        assert_eq!(got, vec![(1, set, Outcome::Ok), (5, get, v)]);
    }

    #[test]
    fn lines_that_are_not_client_operations_are_skipped() {
        let log_text = "\n\
            2017-01-01 12:00:00,000{GMT}\tINFO\t[jepsen test runner] jepsen.core - Running test\n\
            INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
            INFO  jepsen.util - Relative time begins now\n\
            INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
            some garbage\n\
            INFO  jepsen.util - :nemesis\t:info\t:start\t\"cut off n1\"\n\
            2017-01-01 12:00:01,000 INFO  jepsen.util - 0   :ok     :read   2\n";
        let history = log(log_text).unwrap();
        assert_eq!(
            only(&history),
            (&Op::Get { key: r() }, &Outcome::Value { value: "2".into() })
        );
        assert_eq!(
            (history.ops[0].call_ns, history.ops[0].return_ns),
            (5000, Some(8000))
        );

        let edn_text = "; a comment\n\
            \n\
            {:process :nemesis, :type :info, :f :start, :value nil}\n\
            {:type :invoke, :f :get, :key \"a\", :process 1, :time 12, :error {:why [\"x\" (1 2)]}}\n\
            \t\n\
            {:process :nemesis, :type :info, :f :start, :value \"cut\"}\n\
            {:process 1, :type :ok, :f :get, :key \"a\", :value \"v\", :index #{1 2}} ; done\n";
        let history = edn(edn_text).unwrap();
        assert_eq!(
            only(&history),
            (
                &Op::Get { key: "a".into() },
                &Outcome::Value { value: "v".into() }
            )
        );
    }

    #[test]
    fn malformed_lines_are_rejected_with_their_line_number() {
        let log_cases = [
            (
                "INFO  jepsen.util - 0\t:invoke\t:frob\tnil",
                "line 1",
                "unknown operation `:frob`",
            ),
            (
                "\nINFO  jepsen.util - 0\t:begin\t:read\tnil",
                "line 2",
                "unknown type `:begin`",
            ),
            (
                "INFO  jepsen.util - x\t:invoke\t:read\tnil",
                "line 1",
                "not a number",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:cas\t[1]",
                "line 1",
                "vector of 1",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:cas\t4",
                "line 1",
                "`[old new]`",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 nil]",
                "line 1",
                "empty value",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:write\t[1 2",
                "line 1",
                "missing `]`",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:write\t1 2",
                "line 1",
                "after the value",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:write\t:x",
                "line 1",
                "keyword :x",
            ),
            // Pairing.
            (
                "INFO  jepsen.util - 0\t:ok\t:read\t1",
                "line 1",
                "never invoked",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil",
                "line 2",
                "still open",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:write\t1",
                "line 2",
                "open invoke (line 1) is a read",
            ),
            (
                "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\n\
                 INFO  jepsen.util - 0\t:ok\t:write\t1",
                "line 3",
                "never invoked",
            ),
        ];
        for (text, line, message) in log_cases {
            let err = log(text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{line}:")) && err.contains(message),
                "{text:?}: {err}"
            );
        }
        let edn_cases = [
            (
                "{:process 0, :type :invoke, :f :get",
                "line 1",
                "missing `}`",
            ),
            ("[1 2]", "line 1", "one EDN map"),
            ("{:type :invoke, :f :get}", "line 1", "missing `:process`"),
            (
                "\n{:process 0, :type :begin, :f :get}",
                "line 2",
                "`:type` must be",
            ),
            (
                "{:process 0, :type :invoke, :f :txn}",
                "line 1",
                "unknown `:f` the keyword :txn",
            ),
            (
                "{:process 0, :type :invoke}",
                "line 1",
                "unknown `:f` nothing",
            ),
            (
                "{:process 0, :process 1, :type :invoke, :f :get}",
                "line 1",
                "appears twice",
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key}",
                "line 1",
                "a value for every key",
            ),
            (
                "{:process -1, :type :invoke, :f :get}",
                "line 1",
                "not a process number",
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key [1]}",
                "line 1",
                "`:key` must be",
            ),
            (
                "{:process 0, :type :invoke, :f :append, :value nil}",
                "line 1",
                "needs a value",
            ),
            (
                "{:process 0, :type :invoke, :f :put, :value \"a}",
                "line 1",
                "unterminated string",
            ),
            (
                "{:process 0, :type :invoke, :f :put, :value \"\\q\"}",
                "line 1",
                "unknown escape",
            ),
            (
                "{:process 0, :type :invoke, :f :put, :value \"\\u12\"}",
                "line 1",
                "four hex digits",
            ),
            (
                "{:process 0, :type :invoke, :f :put, :value 99999999999999999999}",
                "line 1",
                "too large",
            ),
            (
                "{:process 0, :type :invoke, :f :put, :value 1.5}",
                "line 1",
                "`1.5`",
            ),
            (
                "{:process 0, :type :invoke, :f :put, :value :}",
                "line 1",
                "keyword needs a name",
            ),
            (
                "{:process 0, :type :invoke, :f :get} x",
                "line 1",
                "after the value",
            ),
            (
                "{:process 0, :type :invoke, :f :get}}",
                "line 1",
                "after the value",
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key \"a\"}\n{:process 0, :type :ok, :f :get, :key \"b\"}",
                "line 2",
                "is on key \"a\"",
            ),
        ];
        for (text, line, message) in edn_cases {
            let err = edn(text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{line}:")) && err.contains(message),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        let deep = format!("{{:process 0, :value {}}}", "[".repeat(10_000));
        assert!(edn(&deep).unwrap_err().to_string().contains("nest deeper"));
        for text in [
            "{",
            "{:",
            "{\"",
            "\"",
            "{:process 0 \"\\",
            "{:process 0 \"\\u",
            "#",
            "é{:process",
            "INFO jepsen.util -",
            "INFO jepsen.util",
        ] {
            let _ = edn(text);
            let _ = log(text);
            let _ = parse_auto(text);
        }
        // Unicode spaces end a token but are not EDN whitespace.
        let err = edn("{:process 0, :value [\u{a0}]}").unwrap_err();
        assert!(err.to_string().contains("unexpected character"), "{err}");
        let err = log("INFO  jepsen.util - 0 :invoke :cas [1\u{2003}2]").unwrap_err();
        assert!(err.to_string().contains("unexpected character"), "{err}");
    }

    proptest::proptest! {
        /// Any line built from EDN's punctuation, Jepsen's words and awkward characters is read
        /// or refused, never a panic or a hang.
        #[test]
        fn arbitrary_lines_are_read_or_refused(
            line in "([{}()\\[\\]#:,; \"\\\\\t\u{a0}é0-9a-z-]|:process |:type |:invoke |:ok |:f |:cas |nil |\\\\u){0,24}",
        ) {
            let _ = edn(&line);
            let _ = edn(&format!("{{:process 0, :type :invoke, :f :cas, :value {line}}}"));
            let _ = log(&format!("INFO  jepsen.util - {line}"));
            let _ = log(&format!("INFO  jepsen.util - 1 :invoke :cas {line}"));
            let _ = parse_auto(&line);
        }
    }

    #[test]
    fn edn_strings_unescape() {
        let cases = [
            (r#""plain""#, "plain"),
            (r#""say \"hi\"""#, "say \"hi\""),
            (r#""back\\slash""#, "back\\slash"),
            (r#""a\tb\nc\r""#, "a\tb\nc\r"),
            (r#""\u00e9t\u00E9""#, "été"),
            (
                r#""naïve, {with} [brackets] ; and a semicolon""#,
                "naïve, {with} [brackets] ; and a semicolon",
            ),
        ];
        for (literal, expected) in cases {
            let text =
                format!("{{:process 0, :type :invoke, :f :put, :key {literal}, :value {literal}}}");
            let history = edn(&text).unwrap_or_else(|e| panic!("{literal}: {e}"));
            assert_eq!(
                only(&history).0,
                &Op::Set {
                    key: expected.into(),
                    value: expected.into()
                },
                "{literal}"
            );
        }
    }

    #[test]
    fn completions_pair_with_their_own_process() {
        let text = "\
            INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
            INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
            INFO  jepsen.util - 2\t:invoke\t:cas\t[1 2]\n\
            INFO  jepsen.util - 1\t:ok\t:read\t1\n\
            INFO  jepsen.util - 0\t:ok\t:write\t1\n\
            INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
            INFO  jepsen.util - 2\t:fail\t:cas\t[1 2]\n\
            INFO  jepsen.util - 1\t:ok\t:read\tnil\n";
        let history = log(text).unwrap();
        let got: Vec<_> = history
            .ops
            .iter()
            .map(|o| (o.id, o.client, o.call_ns, o.return_ns, o.outcome.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, 1000, Some(5000), Outcome::Ok),
                (2, 1, 2000, Some(4000), Outcome::Value { value: "1".into() }),
                (3, 2, 3000, Some(7000), Outcome::Mismatch),
                (6, 1, 6000, Some(8000), Outcome::NotFound),
            ]
        );
    }

    #[test]
    fn operations_open_at_the_end_have_unknown_outcomes() {
        let text = "\
            {:process 0, :type :invoke, :f :put, :key \"a\", :value \"1\"}\n\
            {:process 1, :type :invoke, :f :get, :key \"a\", :value nil}\n\
            {:process 1, :type :info, :f :get, :key \"a\", :value nil}\n\
            {:process 1, :type :invoke, :f :get, :key \"a\", :value nil}\n";
        let history = edn(text).unwrap();
        let got: Vec<_> = history
            .ops
            .iter()
            .map(|o| (o.id, o.return_ns, o.outcome.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, None, Outcome::Unknown),
                (2, None, Outcome::Unknown),
                (4, None, Outcome::Unknown),
            ]
        );
    }

    #[test]
    fn formats_are_detected_from_the_first_line() {
        let cases = [
            (r#"{"event":"invoke","id":1}"#, Some(Format::Jsonl)),
            (r#"  { "event": "replica"}"#, Some(Format::Jsonl)),
            ("{:process 0, :type :invoke}", Some(Format::JepsenEdn)),
            (
                "INFO  jepsen.util - 0\t:invoke\t:read\tnil",
                Some(Format::JepsenLog),
            ),
            (
                "2017-01-01 INFO jepsen.util - 0 :invoke :read nil",
                Some(Format::JepsenLog),
            ),
            ("INFO  jepsen.core - Running", Some(Format::JepsenLog)),
            ("{}", None),
            ("[{:process 0}]", None),
            ("get x", None),
            ("", None),
        ];
        for (line, format) in cases {
            assert_eq!(detect(line), format, "{line}");
        }
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>(), Ok(format));
            assert_eq!(format.to_string(), format.name());
        }
        assert!("edn".parse::<Format>().unwrap_err().contains("jepsen-edn"));
    }

    #[test]
    fn parse_auto_dispatches_on_the_detected_format() {
        let jsonl = "\n{\"event\":\"invoke\",\"id\":7,\"client\":1,\"time_ns\":5,\"op\":\"get\",\"key\":\"x\"}\n";
        let edn_text = "; recorded by hand\n{:process 0, :type :invoke, :f :get, :key \"x\"}\n";
        let log_text = "\n\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n";
        for (text, key) in [(jsonl, "x"), (edn_text, "x"), (log_text, "r")] {
            let history = parse_auto(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                only(&history),
                (&Op::Get { key: key.into() }, &Outcome::Unknown)
            );
        }
        assert_eq!(parse_auto(" \n\n").unwrap(), History::default());
        let err = parse_auto("\n\nget x\n").unwrap_err().to_string();
        assert!(
            err.starts_with("line 3:") && err.contains("cannot tell"),
            "{err}"
        );
    }

    /// Every history of the Porcupine corpus reads without error, and looks like what it is.
    #[test]
    fn the_porcupine_corpus_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine");
        let verdicts = std::fs::read_to_string(root.join("VERDICTS.txt")).unwrap();
        let mut files = 0;
        for line in verdicts
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (path, _verdict) = line.split_once(' ').expect("`path verdict` lines");
            let text = std::fs::read_to_string(root.join(path)).unwrap();
            let history = parse_auto(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            let invokes = text.matches(":invoke").count();
            assert_eq!(history.ops.len(), invokes, "{path}");
            assert!(history.ops.len() > 10, "{path}");
            if path.starts_with("kv/") {
                assert!(history.key_count() > 1, "{path}");
                assert_eq!(parse_edn(text.as_bytes()).unwrap(), history, "{path}");
            } else {
                assert_eq!(history.key_count(), 1, "{path}");
                assert_eq!(parse_log(text.as_bytes()).unwrap(), history, "{path}");
            }
            files += 1;
        }
        assert_eq!(files, 108);
    }
}
