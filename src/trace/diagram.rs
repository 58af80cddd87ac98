//! The text space-time diagram: one column per node, one row per event (see the module docs of
//! [`crate::trace`] for how to read it).
//!
//! Each row is drawn on a small grid of characters — the *canvas*, from the first lifeline to
//! just past the last — between a left margin with the time and a note on the right. The
//! canvas starts as bare lifelines (`│`) and the row's event is painted over it: a mark, an
//! arrow, or a fault band. Everything is counted in characters, not bytes: the box-drawing
//! characters are one column wide in a monospace terminal but three bytes long.

use std::collections::BTreeSet;

use super::{format_ms, link_ends, node_name, one_line, truncate};
use crate::node::{MsgId, NodeId, TraceEvent, TraceKind};

/// The narrowest a column may get: room for `├─▶●`, if not for a label.
const MIN_COLUMN_WIDTH: usize = 3;

/// Columns shrink (down to [`MIN_COLUMN_WIDTH`]) to leave at least this much room for notes.
const MIN_NOTE_WIDTH: usize = 30;

/// A note shorter than this would say nothing; it is left out instead.
const MIN_NOTE_SHOWN: usize = 4;

/// Spaces between the time margin and the first lifeline.
const MARGIN_GAP: usize = 2;

/// Cells after the last lifeline before the note starts (the fault band runs into the first).
const NOTE_GAP: usize = 3;

/// How [`diagram`] draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagramOptions {
    /// The widest a line may be, in characters. Longer notes are cut with `…`; if even the
    /// lifelines do not fit, whole lines are cut.
    pub width: usize,
    /// The distance between two lifelines, in characters: with the default 16, a label like
    /// `ordered n1#4` fits between neighbours, and five nodes leave room for notes in 100
    /// characters. Columns are narrowed (never below 3) when all of them and a 30-character
    /// note would not fit in `width`.
    pub column_width: usize,
    /// Whether to give each send a row of its own (a mark on the sender). Off by default: the
    /// arrow drawn at the receipt already shows who sent what, and retries would double the
    /// rows.
    pub sends: bool,
}

impl Default for DiagramOptions {
    fn default() -> Self {
        DiagramOptions {
            width: 100,
            column_width: 16,
            sends: false,
        }
    }
}

/// A text Lamport (space-time) diagram of `events`, given in the order they happened.
///
/// There is one column per node, in the order of `nodes`, and then one for every other node
/// that appears in `events` (as `node` or `peer`), in increasing id order. The first line names
/// the columns; then each event that is drawn gets one line: client requests and replies,
/// deliveries, applies, receipts (as arrows), drops (as arrows ending in `✗`) and faults
/// (as bands), and sends if [`DiagramOptions::sends`] is set. Lines end in `\n`, carry no
/// trailing spaces and are never wider than [`DiagramOptions::width`] characters.
///
/// With no columns at all (no nodes and no events) the diagram is empty.
pub fn diagram(events: &[TraceEvent], nodes: &[NodeId], options: &DiagramOptions) -> String {
    let columns = columns(events, nodes);
    if columns.is_empty() {
        return String::new();
    }
    let rows: Vec<&TraceEvent> = events
        .iter()
        .filter(|e| e.kind != TraceKind::Send || options.sends)
        .collect();
    let layout = Layout::new(&columns, &rows, options);

    let mut out = String::new();
    push_line(&mut out, layout.header(), options.width);
    for e in rows {
        push_line(&mut out, layout.row(e), options.width);
    }
    out
}

/// The nodes to draw, left to right: `nodes` (without repeats), then the others seen in
/// `events`, sorted.
fn columns(events: &[TraceEvent], nodes: &[NodeId]) -> Vec<NodeId> {
    let mut columns: Vec<NodeId> = Vec::with_capacity(nodes.len());
    for &n in nodes {
        if !columns.contains(&n) {
            columns.push(n);
        }
    }
    let listed: BTreeSet<NodeId> = columns.iter().copied().collect();
    let others: BTreeSet<NodeId> = events
        .iter()
        .flat_map(|e| std::iter::once(e.node).chain(e.peer))
        .filter(|n| !listed.contains(n))
        .collect();
    columns.extend(others);
    columns
}

/// Appends `line` to `out`, without trailing spaces and cut to `width` characters.
fn push_line(out: &mut String, line: String, width: usize) {
    out.push_str(truncate(line.trim_end(), width).trim_end());
    out.push('\n');
}

/// Where things go on a line; the same for every row of one diagram.
struct Layout {
    /// The nodes, left to right.
    columns: Vec<NodeId>,
    /// Characters of the time margin (0: no event has a time, so there is no margin).
    time_width: usize,
    /// Characters from one lifeline to the next.
    column_width: usize,
    /// The widest a line may be.
    width: usize,
}

/// How an arrow ends at its receiver.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Received: `▶●` (or `●◀`), the receipt being this row's event.
    Received,
    /// Lost on the way: `✗`.
    Lost,
}

impl Layout {
    fn new(columns: &[NodeId], rows: &[&TraceEvent], options: &DiagramOptions) -> Layout {
        let widest_time = rows
            .iter()
            .filter_map(|e| e.at_us)
            .map(|t| format_ms(t).len())
            .max();
        // The header puts `ms` over the times, so the margin is at least that wide.
        let time_width = widest_time.map_or(0, |w| w.max(2));
        let mut layout = Layout {
            columns: columns.to_vec(),
            time_width,
            column_width: options.column_width.max(MIN_COLUMN_WIDTH),
            width: options.width,
        };
        let gaps = columns.len().saturating_sub(1);
        if gaps > 0 {
            let room = options
                .width
                .saturating_sub(layout.prefix_width() + NOTE_GAP + MIN_NOTE_WIDTH);
            if gaps * layout.column_width > room {
                layout.column_width = (room / gaps).max(MIN_COLUMN_WIDTH);
            }
        }
        layout
    }

    /// Characters before the first lifeline.
    fn prefix_width(&self) -> usize {
        if self.time_width == 0 {
            0
        } else {
            self.time_width + MARGIN_GAP
        }
    }

    /// The position of node `n`'s lifeline on the canvas, if it has one.
    fn x(&self, n: NodeId) -> Option<usize> {
        let i = self.columns.iter().position(|&c| c == n)?;
        Some(i * self.column_width)
    }

    /// The position of the last lifeline on the canvas.
    fn last_x(&self) -> usize {
        (self.columns.len() - 1) * self.column_width
    }

    /// Whether canvas position `x` is on a lifeline.
    fn on_lifeline(&self, x: usize) -> bool {
        x.is_multiple_of(self.column_width) && x <= self.last_x()
    }

    /// The time margin of a row, `ms` for the header.
    fn margin(&self, time: &str) -> String {
        if self.time_width == 0 {
            String::new()
        } else {
            format!("{time:>w$}{:g$}", "", w = self.time_width, g = MARGIN_GAP)
        }
    }

    /// The first line: the node names over their lifelines.
    fn header(&self) -> String {
        let mut line = self.margin("ms");
        let mut at = 0;
        for (i, &n) in self.columns.iter().enumerate() {
            let x = i * self.column_width;
            line.extend(std::iter::repeat_n(' ', x.saturating_sub(at)));
            // A name never runs into the next one (the last may run on).
            let name = if i + 1 < self.columns.len() {
                truncate(&node_name(n), self.column_width - 1)
            } else {
                node_name(n)
            };
            at = x + name.chars().count();
            line.push_str(&name);
        }
        line
    }

    /// The line of event `e`.
    fn row(&self, e: &TraceEvent) -> String {
        // Bare lifelines, and room for a fault band to run on past the last one.
        let mut canvas: Vec<char> = (0..self.last_x() + NOTE_GAP)
            .map(|x| if self.on_lifeline(x) { '│' } else { ' ' })
            .collect();
        let here = self.x(e.node).expect("every event's node has a column");
        let ends = link_ends(e).and_then(|(from, to)| Some((self.x(from)?, self.x(to)?)));
        match (e.kind, ends) {
            (TraceKind::Fault, _) => {
                self.band(&mut canvas, here, e.peer.and_then(|p| self.x(p)));
            }
            (TraceKind::Receive, Some((from, to))) if from != to => {
                self.arrow(&mut canvas, from, to, '├', Head::Received, e);
            }
            (TraceKind::Drop, Some((from, to))) if from != to => {
                // The tail is this row's event when the sender traced the drop.
                let tail = if from == here { '●' } else { '├' };
                self.arrow(&mut canvas, from, to, tail, Head::Lost, e);
            }
            // Requests, replies, deliveries, applies, sends; and messages without a usable
            // peer (none recorded, or the node itself).
            _ => canvas[here] = '●',
        }

        let mut line = self.margin(&e.at_us.map(format_ms).unwrap_or_default());
        line.extend(canvas);
        let room = self.width.saturating_sub(line.chars().count());
        if room >= MIN_NOTE_SHOWN {
            let note = format!("{} {}", node_name(e.node), note(e));
            line.push_str(&truncate(&note, room));
        }
        line
    }

    /// Paints a fault band across the canvas: `─` everywhere, `┼` where it crosses a lifeline,
    /// and `◆` on the nodes the fault concerns.
    fn band(&self, canvas: &mut [char], node: usize, peer: Option<usize>) {
        let end = (self.last_x() + 1).min(canvas.len() - 1);
        for (x, cell) in canvas.iter_mut().enumerate().take(end + 1) {
            *cell = if x == node || Some(x) == peer {
                '◆'
            } else if self.on_lifeline(x) {
                '┼'
            } else {
                '─'
            };
        }
    }

    /// Paints a message from lifeline `from` to lifeline `to` (`from != to`): the tail, the
    /// shaft (crossing other lifelines with `┼`), the head, and a label.
    fn arrow(
        &self,
        canvas: &mut [char],
        from: usize,
        to: usize,
        tail: char,
        head: Head,
        e: &TraceEvent,
    ) {
        let rightwards = from < to;
        let (lo, hi) = if rightwards { (from, to) } else { (to, from) };
        for (x, cell) in canvas.iter_mut().enumerate().take(hi).skip(lo + 1) {
            *cell = if self.on_lifeline(x) { '┼' } else { '─' };
        }
        canvas[from] = if rightwards { tail } else { mirror(tail) };
        match (head, rightwards) {
            (Head::Received, true) => {
                canvas[to - 1] = '▶';
                canvas[to] = '●';
            }
            (Head::Received, false) => {
                canvas[to + 1] = '◀';
                canvas[to] = '●';
            }
            (Head::Lost, _) => canvas[to] = '✗',
        }

        // The label sits between `tail─` and `─head` (`├─ordered n1#1─▶●`), in `start..end`.
        // On an arrow that crosses other lifelines it goes next to the tail if it fits there,
        // leaving the crossings visible; otherwise it is centred on the whole shaft, over the
        // crossings.
        let col = self.column_width;
        let whole = match (head, rightwards) {
            (Head::Received, true) => (from + 2, to - 2),
            (Head::Received, false) => (to + 3, from - 1),
            (Head::Lost, true) => (from + 2, to - 1),
            (Head::Lost, false) => (to + 2, from - 1),
        };
        let full = label(e.message.as_deref(), e.msg_id, usize::MAX)
            .chars()
            .count();
        let (start, end) = if hi - lo > col {
            // Crossing: the tail's own segment stops one dash short of the next lifeline.
            let first = if rightwards {
                (from + 2, from + col - 1)
            } else {
                (from + 2 - col, from - 1)
            };
            if first.1 - first.0 >= full {
                first
            } else {
                whole
            }
        } else {
            whole
        };
        // `start..end` is where the label may go, one dash left on each side of it.
        let room = end.saturating_sub(start);
        let text = label(e.message.as_deref(), e.msg_id, room);
        let len = text.chars().count();
        let at = start + (room - len) / 2;
        for (cell, c) in canvas[at..at + len].iter_mut().zip(text.chars()) {
            *cell = c;
        }
    }
}

/// What the note of `e` says after the node's name: the detail, led by what happened when the
/// detail does not say it (`deliver 4: set x (1 B)`, `reply to request 3: ok`). Message details
/// already start with `to n2:` or `from n1:`, and faults are their own words.
fn note(e: &TraceEvent) -> String {
    let detail = one_line(&e.detail);
    let word = match e.kind {
        TraceKind::ClientRequest => "request",
        TraceKind::ClientReply if detail.starts_with("request ") => "reply to",
        TraceKind::ClientReply => "reply",
        TraceKind::Deliver => "deliver",
        TraceKind::Apply => "apply",
        TraceKind::Send | TraceKind::Receive | TraceKind::Drop | TraceKind::Fault => "",
    };
    if word.is_empty() || detail.starts_with(word) {
        detail
    } else if detail.is_empty() {
        word.to_string()
    } else {
        format!("{word} {detail}")
    }
}

/// The same tail, pointing the other way.
fn mirror(tail: char) -> char {
    match tail {
        '├' => '┤',
        other => other,
    }
}

/// An arrow's label, at most `room` characters: the message's kind and the id of the
/// operation it carries (`ordered n1#4`). The id is what lets a reader follow one operation
/// across nodes, so when room is short the kind is cut first (`ord… n1#4`), and the id only
/// when even it does not fit.
pub(super) fn label(kind: Option<&str>, id: Option<MsgId>, room: usize) -> String {
    let kind = one_line(kind.unwrap_or("message"));
    let Some(id) = id else {
        return truncate(&kind, room);
    };
    let id = id.to_string();
    let full = format!("{kind} {id}");
    let full_len = full.chars().count();
    let id_len = id.chars().count();
    if full_len <= room {
        full
    } else if id_len + 2 <= room {
        format!("{} {id}", truncate(&kind, room - id_len - 1))
    } else {
        truncate(&full, room)
    }
}
