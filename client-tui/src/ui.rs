//! Drawing the screen from the state. Reads [`App`], changes nothing.
//!
//! ```text
//!  title: mode, events per second, paused / sampling notes
//!  node panel: one line per node (up/down, Lamport clock, keys, log size, pending, ready)
//!  message-flow diagram: one column per node, one row per event, arrows for messages
//!  replies: the last few, with their node and latency
//!  command line: the node commands go to, and what is being typed
//!  status line: a confirmation question, the last notice, or the key hints
//! ```
//!
//! The diagram rows are drawn by the same code as `dkvs diagram` and the simulator's traces
//! (`dkvs::trace`), so the client, a replayed simulation and a scenario transcript look alike.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use dkvs::node::{TraceEvent, TraceKind};
use dkvs::trace::{DiagramOptions, diagram};

use crate::app::{App, BUSY_RATE};

/// The keys, for the help overlay (and the README).
pub const HELP: &[(&str, &str)] = &[
    (
        "type + Enter",
        "send a command to the selected node (set, get, del, stats, …)",
    ),
    (
        "Tab",
        "complete a command word; with nothing typed, select the next node",
    ),
    ("1 … 9", "with nothing typed: select that node"),
    (
        "↑ ↓",
        "recall earlier commands (when paused: move through events)",
    ),
    ("Esc", "clear the command line"),
    (
        "space",
        "pause or follow the diagram (replay: play or stop)",
    ),
    ("PgUp PgDn", "scroll back and forth through the events"),
    ("Enter", "when paused: show the selected event in full"),
    ("n →  End", "replay: next event; show all"),
    ("K", "kill the selected node (with --spawn)"),
    ("R", "restart the selected node (with --spawn)"),
    ("P", "cut the selected node off from every other node"),
    ("H", "heal every link"),
    ("D", "delay the selected node's messages by 200 ms"),
    ("X", "drop 30 % of the selected node's messages"),
    ("?", "this help; any key closes it"),
    ("q  Ctrl-C", "quit"),
];

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let nodes = app.nodes.len().max(1) as u16;
    let [title, panel, flow, replies, command, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(nodes),
        Constraint::Min(3),
        Constraint::Length(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(title_line(app)), title);
    frame.render_widget(Paragraph::new(panel_lines(app)), panel);
    render_flow(app, frame, flow);
    frame.render_widget(Paragraph::new(reply_lines(app, replies.height)), replies);
    frame.render_widget(Paragraph::new(command_line(app)), command);
    frame.render_widget(Paragraph::new(status_line(app)), status);
    if app.help {
        render_help(frame, area);
    } else if app.detail {
        render_detail(app, frame, area);
    }
}

fn title_line(app: &App) -> Line<'static> {
    let mut spans = vec![
        Span::styled(" dkvs-tui ", Style::new().fg(Color::Black).bg(Color::Cyan)),
        Span::raw(format!(" {}  ", app.title)),
        Span::styled(format!("{} ev/s", app.rate), Style::new().fg(Color::Gray)),
    ];
    if app.paused {
        spans.push(Span::styled(
            "  PAUSED",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    } else if app.rate > BUSY_RATE {
        spans.push(Span::styled(
            "  too fast to follow: newest shown, space pauses",
            Style::new().fg(Color::Yellow),
        ));
    }
    if app.lost + app.forgotten > 0 {
        spans.push(Span::styled(
            format!("  {} not shown", app.lost + app.forgotten),
            Style::new().fg(Color::Red),
        ));
    }
    Line::from(spans)
}

/// A size in bytes, short.
fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn panel_lines(app: &App) -> Vec<Line<'static>> {
    app.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let s = app.status.get(n).cloned().unwrap_or_default();
            let marker = if i == app.selected { "▶" } else { " " };
            let (dot, colour) = if s.up {
                ("● up  ", Color::Green)
            } else {
                ("○ down", Color::Red)
            };
            let get = |k: &str| s.stats.get(k).cloned().unwrap_or_else(|| "-".into());
            let log = s
                .stats
                .get("live_bytes")
                .zip(s.stats.get("dead_bytes"))
                .and_then(|(l, d)| Some(l.parse::<u64>().ok()? + d.parse::<u64>().ok()?))
                .map_or_else(|| "-".into(), bytes);
            let ready = match s.stats.get("ready").map(String::as_str) {
                Some("false") => "catching up",
                Some(_) => "ready",
                None => "",
            };
            Line::from(vec![
                Span::styled(
                    format!("{marker}n{n} "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::styled(dot, Style::new().fg(colour)),
                Span::raw(format!(
                    " {}  lamport {}  keys {}  log {log}  pending {}  {ready}",
                    // `sequential/sequencer`: the algorithm is in the title already.
                    get("replication").split('/').next().unwrap_or("-"),
                    get("lamport"),
                    get("keys"),
                    get("pending"),
                )),
            ])
        })
        .collect()
}

/// The colour of an event's row: by what happened and which message it carries.
fn colour(e: &TraceEvent) -> Style {
    match e.kind {
        TraceKind::Fault => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        TraceKind::Drop => Style::new().fg(Color::Red),
        TraceKind::ClientRequest | TraceKind::ClientReply => {
            Style::new().add_modifier(Modifier::BOLD)
        }
        TraceKind::Deliver | TraceKind::Apply => Style::new().fg(Color::Blue),
        TraceKind::Send | TraceKind::Receive => match e.message.as_deref().unwrap_or("") {
            m if m.contains("ack") || m == "position" => Style::new().fg(Color::Green),
            m if m.starts_with("catch_up") || m == "resend" => Style::new().fg(Color::Magenta),
            "forward" | "ordered" => Style::new().fg(Color::Cyan),
            _ => Style::new().fg(Color::Yellow),
        },
    }
}

/// Which events the diagram shows: the newest that fit, or (paused) a window around the
/// selected one.
fn window(app: &App, rows: usize) -> (usize, usize) {
    let len = app.events.len();
    if rows == 0 || len == 0 {
        return (0, 0);
    }
    let end = if app.paused {
        (app.cursor + 1).clamp(rows.min(len), len)
    } else {
        len
    };
    (end.saturating_sub(rows), end)
}

fn render_flow(app: &App, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" messages ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // Sends are drawn too: live, a message is seen leaving and, a moment later, arriving.
    let options = DiagramOptions {
        width: inner.width as usize,
        sends: true,
        ..DiagramOptions::default()
    };
    let rows = (inner.height as usize).saturating_sub(1);
    let (start, end) = window(app, rows);
    // The header of the rows shown (with a time margin when they have times).
    let sample = app.events.range(start..end).next().cloned();
    let header = diagram(sample.as_slice(), &app.nodes, &options);
    let mut lines: Vec<Line> = header
        .lines()
        .take(1)
        .map(|l| Line::styled(l.to_string(), Style::new().add_modifier(Modifier::DIM)))
        .collect();
    if start == end {
        lines.push(Line::styled(
            if app.is_replay() {
                "  (press n to show the first event)"
            } else {
                "  (no messages yet: type a command, e.g. set x 1)"
            },
            Style::new().add_modifier(Modifier::DIM),
        ));
    }
    for i in start..end {
        let e = &app.events[i];
        let text = diagram(std::slice::from_ref(e), &app.nodes, &options);
        let row = text.lines().last().unwrap_or("").to_string();
        let mut style = colour(e);
        if app.paused && i == app.cursor {
            style = style.add_modifier(Modifier::REVERSED);
        }
        lines.push(Line::styled(row, style));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn reply_lines(app: &App, height: u16) -> Vec<Line<'static>> {
    let n = height as usize;
    let skip = app.replies.len().saturating_sub(n);
    app.replies
        .iter()
        .skip(skip)
        .map(|r| {
            let style = if r.reply.starts_with("ERR") {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::styled(format!(" n{} ", r.node), Style::new().fg(Color::Cyan)),
                Span::raw(format!("{} → ", r.command)),
                Span::styled(r.reply.clone(), style),
                Span::styled(
                    format!("  ({:.1} ms)", r.latency_us as f64 / 1000.0),
                    Style::new().fg(Color::Gray),
                ),
            ])
        })
        .collect()
}

fn command_line(app: &App) -> Line<'static> {
    Line::from(vec![
        Span::styled(
            format!("n{}> ", app.node()),
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ),
        Span::raw(app.input.clone()),
        Span::styled("█", Style::new().fg(Color::Gray)),
    ])
}

fn status_line(app: &App) -> Line<'static> {
    if let Some(c) = &app.confirm {
        return Line::styled(
            format!(" {}  y: yes, any other key: no", c.prompt),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        );
    }
    if !app.notice.is_empty() {
        return Line::styled(format!(" {}", app.notice), Style::new().fg(Color::Yellow));
    }
    Line::styled(
        " ? help  Tab/1-9 node  K kill  R restart  P partition  H heal  D delay  X drop  space pause  q quit",
        Style::new().fg(Color::Gray),
    )
}

/// A rectangle of `w` × `h` in the middle of `area` (clipped to it).
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn render_help(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<13}"), Style::new().fg(Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    let popup = centered(area, 78, HELP.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        popup,
    );
}

fn render_detail(app: &App, frame: &mut Frame, area: Rect) {
    let Some(e) = app.events.get(app.cursor) else {
        return;
    };
    let text = serde_json::to_string_pretty(e).unwrap_or_else(|err| err.to_string());
    let popup = centered(area, 76, 16);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" event (any key closes) ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Event;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use dkvs::node::{Message, MsgId, Operation, TraceEvent};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::collections::BTreeMap;

    fn draw(app: &App, w: u16, h: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        terminal.draw(|f| render(app, f)).expect("draws");
        terminal.backend().to_string()
    }

    /// A write on n1 flowing to n2 and n3, a drop, a kill.
    fn busy_app() -> App {
        let mut app = App::new(
            "sequential over sequencer, 3 nodes".into(),
            vec![1, 2, 3],
            true,
        );
        for n in 1..=3 {
            let stats: BTreeMap<String, String> = [
                ("replication", "sequential/sequencer"),
                ("lamport", "7"),
                ("keys", "1"),
                ("live_bytes", "2048"),
                ("dead_bytes", "0"),
                ("pending", "0"),
                ("ready", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            app.update(Event::Status { node: n, stats });
        }
        let id = MsgId::new(1, 1);
        let ordered = Message::Ordered {
            seq: 1,
            id,
            op: Operation::Read { key: b"x".to_vec() },
            time: 3,
        };
        let plain = |node, kind, detail: &str| TraceEvent {
            node,
            lamport: 2,
            kind,
            msg_id: Some(id),
            peer: None,
            message: None,
            detail: detail.into(),
            at_us: None,
        };
        app.update(Event::Trace(plain(
            1,
            TraceKind::ClientRequest,
            "request 1: set x=1",
        )));
        for to in [2, 3] {
            app.update(Event::Trace(TraceEvent::link(
                to,
                3,
                TraceKind::Receive,
                1,
                &ordered,
                format!("from n1: {ordered}"),
            )));
        }
        app.update(Event::Trace(TraceEvent::link(
            3,
            4,
            TraceKind::Drop,
            1,
            &ordered,
            format!("to n1: {ordered} (dropped)"),
        )));
        app.update(Event::Trace(plain(
            1,
            TraceKind::ClientReply,
            "request 1: ok",
        )));
        app.update(Event::Reply {
            node: 1,
            command: "set x 1".into(),
            reply: "OK".into(),
            latency_us: 830,
        });
        app.update(Event::Link { node: 2, up: false });
        app
    }

    #[test]
    fn the_screen_at_80_by_24() {
        insta::assert_snapshot!(draw(&busy_app(), 80, 24));
    }

    #[test]
    fn the_screen_at_120_by_30_with_a_question_pending() {
        let mut app = busy_app();
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Char('P'),
            KeyModifiers::NONE,
        )));
        insta::assert_snapshot!(draw(&app, 120, 30));
    }

    #[test]
    fn the_help_overlay_lists_every_key() {
        let mut app = busy_app();
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Char('?'),
            KeyModifiers::NONE,
        )));
        let screen = draw(&app, 80, 24);
        for (key, _) in HELP {
            assert!(screen.contains(key.trim()), "{key} in\n{screen}");
        }
    }

    #[test]
    fn tiny_and_odd_sizes_do_not_panic() {
        let app = busy_app();
        for (w, h) in [(1, 1), (10, 5), (80, 24), (40, 60), (200, 8)] {
            draw(&app, w, h);
        }
    }
}
