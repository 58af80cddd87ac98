//! Traces: what happened on every node, as data, as a diagram, and as a list.
//!
//! (Placeholder: the renderers are being written; the signatures below are the interface.)

use std::io::{self, BufRead, Write};

use crate::node::{NodeId, TraceEvent};

/// How [`diagram`] draws.
#[derive(Debug, Clone)]
pub struct DiagramOptions {
    /// The widest a line may be, in characters.
    pub width: usize,
}

impl Default for DiagramOptions {
    fn default() -> Self {
        DiagramOptions { width: 100 }
    }
}

/// A text Lamport diagram of `events` (in the order they happened), one column per node.
pub fn diagram(events: &[TraceEvent], nodes: &[NodeId], options: &DiagramOptions) -> String {
    let _ = (nodes, options);
    event_list(events)
}

/// One line per event.
pub fn event_list(events: &[TraceEvent]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("n{} {:?} {}\n", e.node, e.kind, e.detail));
    }
    out
}

/// Writes `events` as JSON lines.
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
///
/// # Errors
/// An I/O error, or a line that is not a trace event (the message names the line).
pub fn read_jsonl(reader: impl BufRead) -> io::Result<Vec<TraceEvent>> {
    let mut events = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let e = serde_json::from_str(&line).map_err(|err| {
            io::Error::new(io::ErrorKind::InvalidData, format!("line {}: {err}", i + 1))
        })?;
        events.push(e);
    }
    Ok(events)
}
