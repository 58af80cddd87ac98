//! Traces: what happened on every node, as data, as a diagram, and as a list.
//!
//! Every mode reports what it does as [`TraceEvent`]s (a client's request arrived, a message
//! was sent or received, an operation was delivered or applied, a reply left), and the drivers
//! add what the network and the fault injector did (a message dropped, a node crashed). This
//! module turns a list of such events — in the order they happened — into text a person can
//! read, and moves it in and out of files as JSON lines:
//!
//! | function | gives | for |
//! |---|---|---|
//! | [`diagram`] | a space-time diagram, one column per node | seeing who told whom what, and when |
//! | [`event_list`] | one aligned line per event | every detail, grep-able |
//! | [`window`] | the events of a time range | printing the trace around a violation |
//! | [`write_jsonl`], [`read_jsonl`] | JSON lines | saving and replaying traces |
//!
//! Everything here is pure: rendering reads events and returns a `String`, the same events
//! always give the same bytes (so diagrams can be snapshotted), and no input makes it panic.
//!
//! # Space-time diagrams
//!
//! Lamport drew distributed executions as *space-time diagrams* ("Time, Clocks, and the Ordering
//! of Events in a Distributed System", CACM 21(7), 1978): one vertical line per process, time
//! flowing along it, a dot for each event, and an arrow from the sending of each message to its
//! receipt. Event *a* "happened before" event *b* exactly when a path leads from *a* to *b*
//! following lifelines forward in time and arrows from tail to head; two events with no such
//! path are *concurrent*, and no node can tell which came first. Lamport clocks (the `@n` in
//! [`event_list`]) number events so that *a* happened before *b* implies clock(*a*) <
//! clock(*b*) — never the converse.
//!
//! # Reading [`diagram`]'s output
//!
//! A write on a fixed-sequencer cluster (n1 numbers operations) while n3 is cut off from n1:
//! n2's client asks to set `x`; n2 forwards it to n1, which numbers it 1, applies it and sends
//! it to both followers; the copy to n3 is lost; n2 applies it and answers its client; then n3
//! crashes, restarts and is reconnected.
//!
//! ```text
//!    ms  n1              n2              n3
//! 0.500  ◆───────────────┼───────────────◆─ n3 partitioned from n1
//! 1.000  │               ●               │  n2 request 7: set x (1 B)
//! 1.130  ●◀─forward n2#1─┤               │  n1 from n2: forward n2#1 set x (1 B) (delivered 0)
//! 1.130  ●               │               │  n1 deliver 1: set x (1 B)
//! 1.130  ●               │               │  n1 apply 1: set x (1 B)
//! 1.130  ●─ordered n2#1──┼───────────────✗  n1 to n3: ordered 1 n2#1 set x (1 B) (dropped: pa…
//! 1.290  ├─ordered n2#1─▶●               │  n2 from n1: ordered 1 n2#1 set x (1 B)
//! 1.290  │               ●               │  n2 deliver 1: set x (1 B)
//! 1.290  │               ●               │  n2 apply 1: set x (1 B)
//! 1.290  │               ●               │  n2 reply to request 7: ok
//! 2.000  ┼───────────────┼───────────────◆─ n3 crashed
//! 2.500  ┼───────────────┼───────────────◆─ n3 restarted
//! 3.000  ◆───────────────┼───────────────◆─ n3 healed from n1
//! ```
//!
//! - **Time flows down.** The left margin is the driver's time in milliseconds (virtual time in
//!   the simulator), blank when the event has none. Rows are in the order of the events, so two
//!   rows with the same time still read top to bottom.
//! - **`●` is this row's event, on that node's lifeline**: the note after the last column
//!   names the node and says what happened (the event's `detail`, led by `deliver`, `apply`
//!   or `reply to` where the detail does not say it, cut with `…` to fit).
//! - **An arrow is a message, drawn on the row where it was *received*.** Its head `▶●` / `●◀`
//!   is the receipt; its tail `├` / `┤` only says who sent it: the sending happened earlier, on
//!   a row that is left out unless [`DiagramOptions::sends`] is set. Lamport's arrows slant
//!   from send to receipt; drawing them flat keeps one event per row, at the price of not
//!   showing when the message left (a send always comes before its receipt). The label is the message's kind and the id of the
//!   operation it is about (`ordered n1#4`: operation 4 of node 1), shortened to fit. An arrow
//!   crossing a lifeline it does not touch crosses it with `┼`.
//! - **`✗` is a message lost to a fault**, drawn on the row of the drop: the arrow starts at
//!   the sender and ends in `✗` at the node it was meant for. Its tail is `●` when the sender
//!   traced the loss (the usual case: the message never left) and `├` / `┤` when the receiver
//!   did (the runtime refusing a message on arrival at a partitioned node).
//! - **A band `┼───◆───┼` is a fault**: a crash, a restart, a partition or a heal, with `◆` on
//!   the node (and the peer) it concerns, and the driver's words in the note.
//!
//! What is left out: `send` rows (by default; the arrow at receipt shows the message), the
//! Lamport clock of each event (see [`event_list`]), and messages still in flight when the
//! trace ends, which have no receipt to draw them on. A message received twice (retried or
//! duplicated) has two arrows.

mod diagram;
mod list;
#[cfg(test)]
mod tests;

use std::io::{self, BufRead, Write};

pub use diagram::{DiagramOptions, diagram};
pub use list::event_list;

use crate::node::{NodeId, TraceEvent, TraceKind};

/// The events of `events` whose time lies in `from_us..=to_us` (microseconds), at most `max` of
/// them: the last `max` if there are more, since one usually looks *back* from the moment a
/// violation was seen.
///
/// `events` are taken to be in the order they happened, as the drivers emit them, and the
/// window is one contiguous slice of it: from the first event at or after `from_us` to the last
/// one at or before `to_us`. An event without a time (`at_us: None`) counts as happening at the
/// time of the timed event before it (or at 0 if none came before), so untimed events stay
/// with their neighbours. An empty range, or `from_us > to_us`, gives an empty slice.
pub fn window(events: &[TraceEvent], from_us: u64, to_us: u64, max: usize) -> &[TraceEvent] {
    let mut last = 0;
    let mut start = None;
    let mut end = 0;
    for (i, e) in events.iter().enumerate() {
        let at = e.at_us.unwrap_or(last);
        last = at;
        if at < from_us || at > to_us {
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        end = i + 1;
    }
    let Some(start) = start else {
        return &[];
    };
    let start = start.max(end.saturating_sub(max));
    &events[start..end]
}

/// Writes `events` as JSON lines, one [`TraceEvent`] per line.
///
/// # Errors
/// Any error of `out`.
pub fn write_jsonl(events: &[TraceEvent], mut out: impl Write) -> io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads JSON lines written by [`write_jsonl`] (or streamed by a node's `trace` command).
/// Blank lines are skipped.
///
/// # Errors
/// An I/O error, or a line that is not a trace event: an [`io::ErrorKind::InvalidData`] error
/// whose message names the line (`line 3, column 7: …`).
pub fn read_jsonl(reader: impl BufRead) -> io::Result<Vec<TraceEvent>> {
    let mut events = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let e = serde_json::from_str(&line).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {}, column {}: {err}", i + 1, err.column()),
            )
        })?;
        events.push(e);
    }
    Ok(events)
}

/// Reads whatever trace events a text holds, skipping every line that is not one: a capture of
/// a node's `trace` command starts with its `OK tracing …` line and may hold `{"lost":N}`
/// notes. Returns the events and how many non-blank lines were skipped.
pub fn read_capture(text: &str) -> (Vec<TraceEvent>, usize) {
    let mut events = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(e) => events.push(e),
            Err(_) => skipped += 1,
        }
    }
    (events, skipped)
}

/// `12.345`: a time in microseconds, printed in milliseconds with three decimals.
fn format_ms(at_us: u64) -> String {
    format!("{}.{:03}", at_us / 1000, at_us % 1000)
}

/// `n3`: a node's name, as in the config file and in details.
fn node_name(node: NodeId) -> String {
    format!("n{node}")
}

/// The sender and receiver of a message event, or `None` for other events and for a message
/// event without a peer.
///
/// A send goes from `node` to `peer`, a receipt from `peer` to `node`. A drop is usually traced
/// by the sender (`to n2: … (dropped: …)`), but the runtime also drops messages on arrival at a
/// partitioned node and then traces them on the receiver, with a detail starting `from n1:`.
fn link_ends(e: &TraceEvent) -> Option<(NodeId, NodeId)> {
    let peer = e.peer?;
    match e.kind {
        TraceKind::Send => Some((e.node, peer)),
        TraceKind::Receive => Some((peer, e.node)),
        TraceKind::Drop if e.detail.starts_with("from ") => Some((peer, e.node)),
        TraceKind::Drop => Some((e.node, peer)),
        _ => None,
    }
}

/// `text` on one line: control characters (a newline in a key, say) are escaped, so one event
/// never spills onto two lines.
fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `text` cut to at most `max` characters, ending in `…` if anything was cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}
