//! The terminal client's state, and the one function that changes it.
//!
//! Everything the client shows lives in [`App`]; everything that happens — a key, a trace event
//! from a node, a reply, a status poll, a tick of the clock — arrives as an [`Event`] and goes
//! through [`App::update`], which changes the state and returns [`Action`]s for the I/O layer
//! to carry out (send a command to a node, kill or restart a node's process, quit). Rendering
//! only reads the state (`ui.rs`). This is the Elm architecture that ratatui's examples and gitui
//! use, and it is what lets the tests drive the client without a terminal or a cluster.

use std::collections::{BTreeMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dkvs::node::{NodeId, TraceEvent, TraceKind};

/// The most trace events kept for scrolling back; older ones are forgotten (and counted).
pub const EVENT_BUFFER: usize = 20_000;
/// The most replies kept.
pub const REPLY_BUFFER: usize = 200;
/// The most commands kept in the history.
pub const HISTORY: usize = 500;
/// Above this many events per second the diagram cannot be read live: the screen says so.
pub const BUSY_RATE: u64 = 200;

/// The commands a student types, for completion.
pub const COMMANDS: &[&str] = &[
    "set", "get", "del", "stats", "dump", "digest", "fault", "keys", "ping", "compact",
];

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key was pressed.
    Key(KeyEvent),
    /// A node streamed a trace event.
    Trace(TraceEvent),
    /// A node skipped `count` events because the client read too slowly.
    Lost { node: NodeId, count: u64 },
    /// A node answered a command.
    Reply {
        node: NodeId,
        command: String,
        reply: String,
        latency_us: u64,
    },
    /// A node's `stats` counters.
    Status {
        node: NodeId,
        stats: BTreeMap<String, String>,
    },
    /// The client's connection to a node came up or went down.
    Link { node: NodeId, up: bool },
    /// Time passed (about ten times a second), in milliseconds since the client started.
    Tick { now_ms: u64 },
    /// The terminal changed size: draw again.
    Redraw,
}

/// Something the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a command line to a node.
    Send { node: NodeId, line: String },
    /// Kill a node's process (SIGKILL: no goodbye, like a power cut).
    Kill(NodeId),
    /// Start a node's process again.
    Restart(NodeId),
    /// Leave.
    Quit,
}

/// A reply, as listed under the diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    pub node: NodeId,
    pub command: String,
    pub reply: String,
    pub latency_us: u64,
}

/// What the client knows of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Whether the client's connection to it works.
    pub up: bool,
    /// Its last `stats` answer.
    pub stats: BTreeMap<String, String>,
}

/// A question waiting for `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub prompt: String,
    pub actions: Vec<Action>,
    /// What to note on the diagram once confirmed.
    pub note: (NodeId, String),
}

/// The whole state of the client.
#[derive(Debug, Clone)]
pub struct App {
    /// What the title says: the config's mode and algorithm, or the replayed file.
    pub title: String,
    pub nodes: Vec<NodeId>,
    /// Index in `nodes` of the node commands go to.
    pub selected: usize,
    /// The command being typed.
    pub input: String,
    pub history: Vec<String>,
    /// Position in `history` while recalling with ↑/↓.
    history_pos: Option<usize>,
    pub replies: VecDeque<ReplyLine>,
    /// Trace events, oldest first.
    pub events: VecDeque<TraceEvent>,
    /// Events forgotten because the buffer was full.
    pub forgotten: u64,
    /// Events the nodes skipped because the client read too slowly.
    pub lost: u64,
    /// Whether the diagram is frozen (new events are still recorded).
    pub paused: bool,
    /// When paused: the selected event, as an index into `events`.
    pub cursor: usize,
    /// Whether the selected event's full content is shown.
    pub detail: bool,
    pub help: bool,
    pub confirm: Option<Confirm>,
    pub status: BTreeMap<NodeId, NodeStatus>,
    /// One line of news at the bottom (the last confirmation, an error).
    pub notice: String,
    /// Events per second over the last second.
    pub rate: u64,
    rate_count: u64,
    rate_since_ms: u64,
    /// Whether kill and restart work (the client started the nodes itself).
    pub can_spawn: bool,
    /// Events of a recorded run not shown yet (replay mode), and whether they play.
    pub replay: VecDeque<TraceEvent>,
    pub playing: bool,
    replay_mode: bool,
    pub quit: bool,
}

impl App {
    /// A client for `nodes`; `can_spawn` when it owns the nodes' processes.
    pub fn new(title: String, nodes: Vec<NodeId>, can_spawn: bool) -> App {
        App {
            title,
            status: nodes.iter().map(|&n| (n, NodeStatus::default())).collect(),
            nodes,
            selected: 0,
            input: String::new(),
            history: Vec::new(),
            history_pos: None,
            replies: VecDeque::new(),
            events: VecDeque::new(),
            forgotten: 0,
            lost: 0,
            paused: false,
            cursor: 0,
            detail: false,
            help: false,
            confirm: None,
            notice: String::new(),
            rate: 0,
            rate_count: 0,
            rate_since_ms: 0,
            can_spawn,
            replay: VecDeque::new(),
            playing: false,
            replay_mode: false,
            quit: false,
        }
    }

    /// A client stepping through a recorded trace: paused before the first event.
    pub fn replaying(title: String, events: Vec<TraceEvent>) -> App {
        let mut nodes: Vec<NodeId> = events.iter().map(|e| e.node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let mut app = App::new(title, nodes, false);
        app.replay = events.into();
        app.replay_mode = true;
        app.paused = true;
        app.notice = format!(
            "replay: {} events; n or → steps, space plays, End shows all",
            app.replay.len()
        );
        app
    }

    /// Whether this client replays a file (no commands, no faults).
    pub fn is_replay(&self) -> bool {
        self.replay_mode
    }

    /// The node commands go to.
    pub fn node(&self) -> NodeId {
        self.nodes.get(self.selected).copied().unwrap_or(1)
    }

    /// Handles one event; returns what the I/O layer must do.
    pub fn update(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Key(key) => return self.key(key),
            Event::Trace(e) => self.record(e),
            Event::Lost { node, count } => {
                self.lost += count;
                self.notice = format!("n{node} skipped {count} events: the client fell behind");
            }
            Event::Reply {
                node,
                command,
                reply,
                latency_us,
            } => {
                self.replies.push_back(ReplyLine {
                    node,
                    command,
                    reply,
                    latency_us,
                });
                while self.replies.len() > REPLY_BUFFER {
                    self.replies.pop_front();
                }
            }
            Event::Status { node, stats } => {
                let s = self.status.entry(node).or_default();
                s.up = true;
                s.stats = stats;
            }
            Event::Link { node, up } => {
                let s = self.status.entry(node).or_default();
                if s.up != up {
                    s.up = up;
                    self.note(node, if up { "connected" } else { "unreachable" });
                }
            }
            Event::Redraw => {}
            Event::Tick { now_ms } => {
                if now_ms >= self.rate_since_ms + 1000 {
                    self.rate = self.rate_count * 1000 / (now_ms - self.rate_since_ms).max(1);
                    self.rate_count = 0;
                    self.rate_since_ms = now_ms;
                }
                if self.playing {
                    self.step_replay();
                }
            }
        }
        Vec::new()
    }

    /// Adds a trace event to the buffer.
    fn record(&mut self, e: TraceEvent) {
        self.rate_count += 1;
        self.events.push_back(e);
        if self.events.len() > EVENT_BUFFER {
            self.events.pop_front();
            self.forgotten += 1;
            self.cursor = self.cursor.saturating_sub(1);
        }
    }

    /// Marks something the user did or saw on the diagram, as a fault row.
    fn note(&mut self, node: NodeId, what: &str) {
        self.record(TraceEvent {
            node,
            lamport: 0,
            kind: TraceKind::Fault,
            msg_id: None,
            peer: None,
            message: None,
            detail: what.to_string(),
            at_us: None,
        });
    }

    /// Shows the next recorded event.
    fn step_replay(&mut self) {
        match self.replay.pop_front() {
            Some(e) => {
                self.record(e);
                self.cursor = self.events.len() - 1;
            }
            None => {
                self.playing = false;
                self.notice = "replay: the end".into();
            }
        }
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![Action::Quit];
        }
        if let Some(confirm) = self.confirm.take() {
            if key.code == KeyCode::Char('y') {
                self.notice = format!("done: {}", confirm.prompt.trim_end_matches('?'));
                let (node, what) = confirm.note;
                self.note(node, &what);
                return confirm.actions;
            }
            self.notice = "cancelled".into();
            return Vec::new();
        }
        if self.help {
            self.help = false;
            return Vec::new();
        }
        if self.detail {
            self.detail = false;
            return Vec::new();
        }
        if !self.input.is_empty() {
            return self.edit(key);
        }
        self.control(key)
    }

    /// Keys while a command is being typed.
    fn edit(&mut self, key: KeyEvent) -> Vec<Action> {
        match key.code {
            KeyCode::Enter => {
                let line = std::mem::take(&mut self.input).trim().to_string();
                self.history_pos = None;
                if line.is_empty() {
                    return Vec::new();
                }
                if self.history.last() != Some(&line) {
                    self.history.push(line.clone());
                    if self.history.len() > HISTORY {
                        self.history.remove(0);
                    }
                }
                if self.is_replay() {
                    self.notice = "replaying a file: there is no node to send to".into();
                    return Vec::new();
                }
                return vec![Action::Send {
                    node: self.node(),
                    line,
                }];
            }
            KeyCode::Esc => {
                self.input.clear();
                self.history_pos = None;
            }
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::Tab => self.complete(),
            KeyCode::Up => self.recall(-1),
            KeyCode::Down => self.recall(1),
            KeyCode::Char(c) => self.input.push(c),
            _ => {}
        }
        Vec::new()
    }

    /// Completes the command word being typed, if one command starts with it.
    fn complete(&mut self) {
        if self.input.contains(' ') {
            return;
        }
        let matches: Vec<&&str> = COMMANDS
            .iter()
            .filter(|c| c.starts_with(self.input.as_str()))
            .collect();
        match matches.as_slice() {
            [one] => {
                self.input = format!("{one} ");
            }
            [] => self.notice = format!("no command starts with {:?}", self.input),
            many => {
                self.notice = many.iter().map(|c| **c).collect::<Vec<_>>().join(" ");
            }
        }
    }

    /// ↑/↓ through the history.
    fn recall(&mut self, step: isize) {
        if self.history.is_empty() {
            return;
        }
        let last = self.history.len() - 1;
        let pos = match (self.history_pos, step) {
            (None, -1) => Some(last),
            (None, _) => None,
            (Some(0), -1) => Some(0),
            (Some(p), -1) => Some(p - 1),
            (Some(p), _) if p >= last => None,
            (Some(p), _) => Some(p + 1),
        };
        self.history_pos = pos;
        self.input = pos.map(|p| self.history[p].clone()).unwrap_or_default();
    }

    /// Keys while no command is being typed: navigation and fault controls.
    fn control(&mut self, key: KeyEvent) -> Vec<Action> {
        let node = self.node();
        match key.code {
            KeyCode::Char('q') => {
                self.quit = true;
                return vec![Action::Quit];
            }
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab if !self.nodes.is_empty() => {
                self.selected = (self.selected + 1) % self.nodes.len();
            }
            KeyCode::Char(c @ '1'..='9') => {
                let want = c.to_digit(10).unwrap_or(1);
                match self.nodes.iter().position(|&n| n == want) {
                    Some(i) => self.selected = i,
                    None => self.notice = format!("there is no node n{want}"),
                }
            }
            KeyCode::Char(' ') => {
                if !self.replay.is_empty() || self.playing {
                    self.playing = !self.playing;
                    self.paused = true;
                } else {
                    self.paused = !self.paused;
                    self.cursor = self.events.len().saturating_sub(1);
                }
            }
            KeyCode::Char('n') | KeyCode::Right if !self.replay.is_empty() => self.step_replay(),
            KeyCode::End if !self.replay.is_empty() => {
                while !self.replay.is_empty() {
                    self.step_replay();
                }
            }
            KeyCode::Up if self.paused => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Down if self.paused => {
                self.cursor = (self.cursor + 1).min(self.events.len().saturating_sub(1));
            }
            KeyCode::PageUp => {
                self.paused = true;
                self.cursor = self.cursor.min(self.events.len()).saturating_sub(10);
            }
            KeyCode::PageDown if self.paused => {
                self.cursor = (self.cursor + 10).min(self.events.len().saturating_sub(1));
            }
            KeyCode::Enter if self.paused && !self.events.is_empty() => self.detail = true,
            KeyCode::Up => self.recall(-1),
            KeyCode::Char('K') => self.ask_kill(node),
            KeyCode::Char('R') => self.ask_restart(node),
            KeyCode::Char('P') => self.ask_partition(node),
            KeyCode::Char('H') => self.ask_heal(),
            KeyCode::Char('D') => {
                self.ask_link_fault(node, "delay", "200", "delay its links by 200 ms")
            }
            KeyCode::Char('X') => {
                self.ask_link_fault(node, "drop", "0.3", "drop 30 % of its messages")
            }
            KeyCode::Char(c) if !c.is_ascii_uppercase() => self.input.push(c),
            _ => {}
        }
        Vec::new()
    }

    fn live_only(&mut self) -> bool {
        if self.is_replay() {
            self.notice = "replaying a file: faults need a live cluster".into();
            return false;
        }
        true
    }

    fn ask_kill(&mut self, node: NodeId) {
        if !self.live_only() {
            return;
        }
        if !self.can_spawn {
            self.notice = "kill needs --spawn (the client must own the nodes' processes)".into();
            return;
        }
        self.confirm = Some(Confirm {
            prompt: format!("kill n{node} (SIGKILL)?"),
            actions: vec![Action::Kill(node)],
            note: (node, "killed".into()),
        });
    }

    fn ask_restart(&mut self, node: NodeId) {
        if !self.live_only() {
            return;
        }
        if !self.can_spawn {
            self.notice = "restart needs --spawn (the client must own the nodes' processes)".into();
            return;
        }
        self.confirm = Some(Confirm {
            prompt: format!("restart n{node}?"),
            actions: vec![Action::Restart(node)],
            note: (node, "restarted".into()),
        });
    }

    fn ask_partition(&mut self, node: NodeId) {
        if !self.live_only() {
            return;
        }
        let others: Vec<String> = self
            .nodes
            .iter()
            .filter(|&&n| n != node)
            .map(|n| n.to_string())
            .collect();
        // The node cuts its side of every link; that drops everything both ways.
        let mut actions = vec![Action::Send {
            node,
            line: format!("fault partition {}", others.join(" ")),
        }];
        for &other in self.nodes.iter().filter(|&&n| n != node) {
            actions.push(Action::Send {
                node: other,
                line: format!("fault partition {node}"),
            });
        }
        self.confirm = Some(Confirm {
            prompt: format!("cut n{node} off from every other node?"),
            actions,
            note: (node, "partitioned from every other node".into()),
        });
    }

    fn ask_heal(&mut self) {
        if !self.live_only() {
            return;
        }
        let actions = self
            .nodes
            .iter()
            .map(|&n| Action::Send {
                node: n,
                line: "fault heal".into(),
            })
            .collect();
        self.confirm = Some(Confirm {
            prompt: "heal every link (partitions, drops, delays)?".into(),
            actions,
            note: (self.node(), "every link healed".into()),
        });
    }

    fn ask_link_fault(&mut self, node: NodeId, fault: &str, amount: &str, what: &str) {
        if !self.live_only() {
            return;
        }
        let actions = self
            .nodes
            .iter()
            .filter(|&&n| n != node)
            .map(|&peer| Action::Send {
                node,
                line: format!("fault {fault} {peer} {amount}"),
            })
            .collect();
        self.confirm = Some(Confirm {
            prompt: format!("on n{node}: {what}?"),
            actions,
            note: (node, what.to_string()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(app: &mut App, text: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.extend(app.update(key(KeyCode::Char(c))));
        }
        actions
    }

    fn app() -> App {
        App::new("test".into(), vec![1, 2, 3], true)
    }

    #[test]
    fn a_typed_command_goes_to_the_selected_node() {
        let mut app = app();
        app.update(key(KeyCode::Char('2')));
        assert!(typed(&mut app, "set x 1").is_empty());
        let actions = app.update(key(KeyCode::Enter));
        assert_eq!(
            actions,
            [Action::Send {
                node: 2,
                line: "set x 1".into()
            }]
        );
        assert!(app.input.is_empty());
        assert_eq!(app.history, ["set x 1"]);
    }

    #[test]
    fn digits_inside_a_command_are_text_and_tab_switches_nodes_only_when_idle() {
        let mut app = app();
        typed(&mut app, "set k 3");
        assert_eq!(app.selected, 0, "a digit in a command does not pick a node");
        app.update(key(KeyCode::Esc));
        app.update(key(KeyCode::Tab));
        app.update(key(KeyCode::Tab));
        assert_eq!(app.node(), 3);
        app.update(key(KeyCode::Tab));
        assert_eq!(app.node(), 1, "Tab wraps around");
    }

    #[test]
    fn tab_completes_a_command_word() {
        let mut app = app();
        typed(&mut app, "di");
        app.update(key(KeyCode::Tab));
        assert_eq!(app.input, "digest ");
        let mut app2 = App::new("t".into(), vec![1], false);
        typed(&mut app2, "d");
        app2.update(key(KeyCode::Tab));
        assert_eq!(app2.input, "d", "ambiguous: unchanged");
        assert!(app2.notice.contains("del") && app2.notice.contains("dump"));
    }

    #[test]
    fn history_recalls_with_up_and_down() {
        let mut app = app();
        for line in ["set a 1", "get a"] {
            typed(&mut app, line);
            app.update(key(KeyCode::Enter));
        }
        app.update(key(KeyCode::Up));
        assert_eq!(app.input, "get a");
        app.update(key(KeyCode::Up));
        assert_eq!(app.input, "set a 1");
        app.update(key(KeyCode::Down));
        assert_eq!(app.input, "get a");
        app.update(key(KeyCode::Down));
        assert_eq!(app.input, "");
    }

    #[test]
    fn faults_wait_for_confirmation_and_mark_the_diagram() {
        let mut app = app();
        app.update(key(KeyCode::Char('2')));
        assert!(app.update(key(KeyCode::Char('K'))).is_empty());
        assert!(app.confirm.is_some(), "asks first");
        assert!(
            app.update(key(KeyCode::Char('n'))).is_empty(),
            "anything but y cancels"
        );
        app.update(key(KeyCode::Char('K')));
        assert_eq!(app.update(key(KeyCode::Char('y'))), [Action::Kill(2)]);
        let last = app.events.back().expect("a note");
        assert_eq!((last.kind, last.node), (TraceKind::Fault, 2));

        app.update(key(KeyCode::Char('P')));
        let actions = app.update(key(KeyCode::Char('y')));
        assert_eq!(
            actions,
            [
                Action::Send {
                    node: 2,
                    line: "fault partition 1 3".into()
                },
                Action::Send {
                    node: 1,
                    line: "fault partition 2".into()
                },
                Action::Send {
                    node: 3,
                    line: "fault partition 2".into()
                },
            ]
        );
        app.update(key(KeyCode::Char('H')));
        assert_eq!(
            app.update(key(KeyCode::Char('y'))).len(),
            3,
            "heal goes to every node"
        );
    }

    #[test]
    fn kill_without_spawn_explains_itself() {
        let mut app = App::new("t".into(), vec![1, 2], false);
        app.update(key(KeyCode::Char('K')));
        assert!(app.confirm.is_none());
        assert!(app.notice.contains("--spawn"), "{}", app.notice);
    }

    #[test]
    fn the_buffer_is_bounded_and_counts_what_it_forgets() {
        let mut app = app();
        for i in 0..(EVENT_BUFFER as u64 + 5) {
            app.update(Event::Trace(TraceEvent {
                node: 1,
                lamport: i,
                kind: TraceKind::Apply,
                msg_id: None,
                peer: None,
                message: None,
                detail: String::new(),
                at_us: None,
            }));
        }
        assert_eq!(app.events.len(), EVENT_BUFFER);
        assert_eq!(app.forgotten, 5);
        app.update(Event::Tick { now_ms: 1000 });
        assert_eq!(app.rate, EVENT_BUFFER as u64 + 5);
    }

    #[test]
    fn replay_steps_one_event_at_a_time() {
        let events: Vec<TraceEvent> = (1..=3)
            .map(|n| TraceEvent {
                node: n,
                lamport: n.into(),
                kind: TraceKind::ClientRequest,
                msg_id: None,
                peer: None,
                message: None,
                detail: format!("request {n}"),
                at_us: Some(u64::from(n) * 1000),
            })
            .collect();
        let mut app = App::replaying("replay t.jsonl".into(), events);
        assert_eq!(app.nodes, [1, 2, 3]);
        assert!(app.events.is_empty() && app.paused);
        app.update(key(KeyCode::Char('n')));
        assert_eq!(app.events.len(), 1);
        app.update(key(KeyCode::End));
        assert_eq!(app.events.len(), 3);
        assert_eq!(app.cursor, 2);
        typed(&mut app, "get x");
        assert!(
            app.update(key(KeyCode::Enter)).is_empty(),
            "nothing to send to"
        );
    }

    #[test]
    fn q_quits_only_when_not_typing() {
        let mut app = app();
        typed(&mut app, "get q");
        assert!(!app.quit);
        app.update(key(KeyCode::Esc));
        assert_eq!(app.update(key(KeyCode::Char('q'))), [Action::Quit]);
    }
}
