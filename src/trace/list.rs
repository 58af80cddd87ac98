//! The event list: one aligned line per event, every detail kept.

use super::{format_ms, link_ends, node_name, one_line};
use crate::node::{TraceEvent, TraceKind};

/// One line per event, in the order given, in aligned columns:
///
/// ```text
/// 1.000  n2  @1  request        request 7: set x (1 B)
/// 1.130  n1  @3  recv     ← n2  forward n2#1 set x (1 B) (delivered 0)
/// 1.130  n1  @4  drop     → n3  ordered 1 n2#1 set x (1 B) (dropped: partitioned)
/// 2.000  n3  @0  fault          crashed
/// ```
///
/// The columns are: the time in milliseconds (blank for an event without one; the column is
/// left out if no event has a time), the node, its Lamport clock just after the event, what
/// happened (`request`, `reply`, `send`, `recv`, `deliver`, `apply`, `drop`, `fault`), the
/// other end of a message (`→ n3` to, `← n1` from) or of a link fault (`↔ n3`), and the
/// event's detail. A detail's leading `to n3: ` or `from n1: ` is left out when the arrow
/// column already says it. Every line ends in `\n` and has no trailing spaces.
pub fn event_list(events: &[TraceEvent]) -> String {
    let rows: Vec<[String; 6]> = events.iter().map(fields).collect();
    // Widths of the first five columns; the detail is last and needs none.
    let mut widths = [0; 5];
    for row in &rows {
        for (w, field) in widths.iter_mut().zip(row) {
            *w = (*w).max(field.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, field) in row.iter().enumerate() {
            if i < 5 && widths[i] == 0 {
                continue; // A column empty on every line (no times, no peers) is left out.
            }
            if !line.is_empty() {
                line.push_str("  ");
            }
            match i {
                // Numbers align right, words left.
                0 | 2 => line.push_str(&format!("{field:>w$}", w = widths[i])),
                5 => line.push_str(field),
                _ => line.push_str(&format!("{field:<w$}", w = widths[i])),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The six columns of one event: time, node, clock, kind, peer, detail.
fn fields(e: &TraceEvent) -> [String; 6] {
    let time = e.at_us.map(format_ms).unwrap_or_default();
    let (peer, prefix) = match (link_ends(e), e.peer) {
        (Some((from, to)), _) if to == e.node && from != e.node => (
            format!("← {}", node_name(from)),
            format!("from {}: ", node_name(from)),
        ),
        (Some((_, to)), _) => (
            format!("→ {}", node_name(to)),
            format!("to {}: ", node_name(to)),
        ),
        (None, Some(p)) => (format!("↔ {}", node_name(p)), String::new()),
        (None, None) => (String::new(), String::new()),
    };
    let detail = if prefix.is_empty() {
        &e.detail[..]
    } else {
        e.detail.strip_prefix(&prefix).unwrap_or(&e.detail)
    };
    [
        time,
        node_name(e.node),
        format!("@{}", e.lamport),
        kind_word(e.kind).to_string(),
        peer,
        one_line(detail),
    ]
}

/// The short word for an event's kind, as the list prints it.
fn kind_word(kind: TraceKind) -> &'static str {
    match kind {
        TraceKind::ClientRequest => "request",
        TraceKind::ClientReply => "reply",
        TraceKind::Send => "send",
        TraceKind::Receive => "recv",
        TraceKind::Deliver => "deliver",
        TraceKind::Apply => "apply",
        TraceKind::Drop => "drop",
        TraceKind::Fault => "fault",
    }
}
