//! # dkvs-tui — watch a dkvs cluster think
//!
//! A terminal client for the replicated stages: type commands to any node, watch the messages
//! they cause flow between the nodes as a live diagram, and break things — kill a node, cut
//! one off, delay or drop its messages — to see what each consistency level does about it.
//! `--replay FILE` steps through a recorded trace instead (from `dkvs sim --trace-out`, or a
//! node's `trace` output).
//!
//! | module | what it does |
//! |---|---|
//! | [`app`] | the state and its pure `update(event) → actions` |
//! | [`ui`] | draws the state with ratatui; reads only |
//! | [`net`] | connections to the nodes (threads, reconnecting) and the nodes' processes |
//!
//! [`run`] is the event loop that joins them; the binary only parses arguments and sets up
//! the terminal, so the tests can drive the same loop on ratatui's `TestBackend`.

pub mod app;
pub mod net;
pub mod ui;

use std::sync::mpsc::Receiver;

use ratatui::Terminal;
use ratatui::backend::Backend;

use app::{Action, App, Event};

/// What the event loop's actions act on.
pub struct Io {
    /// Connections to the nodes (`None` when replaying a file).
    pub links: Option<net::Links>,
    /// The nodes' processes (`None` unless the client started them).
    pub spawner: Option<net::Spawner>,
}

impl Io {
    fn act(&mut self, app: &mut App, action: Action) {
        match action {
            Action::Send { node, line } => {
                if let Some(links) = &self.links {
                    links.send(node, line);
                }
            }
            Action::Kill(node) => {
                if let Some(s) = &mut self.spawner {
                    s.kill(node);
                }
            }
            Action::Restart(node) => {
                if let Some(s) = &mut self.spawner
                    && let Err(e) = s.start(node)
                {
                    app.notice = format!("cannot restart n{node}: {e}");
                }
            }
            Action::Quit => app.quit = true,
        }
    }
}

/// Runs the client until the user quits or `done` says so: takes every event waiting, updates
/// the app, carries out its actions, draws once.
///
/// # Errors
/// A failure of the terminal.
pub fn run<B: Backend>(
    app: &mut App,
    terminal: &mut Terminal<B>,
    events: &Receiver<Event>,
    io: &mut Io,
    mut done: impl FnMut(&App) -> bool,
) -> Result<(), B::Error> {
    terminal.draw(|f| ui::render(app, f))?;
    while !app.quit && !done(app) {
        let Ok(first) = events.recv() else {
            break;
        };
        let mut actions = app.update(first);
        // Everything else already waiting, so that a burst of trace events costs one frame.
        for event in events.try_iter().take(10_000) {
            actions.extend(app.update(event));
        }
        for action in actions {
            io.act(app, action);
        }
        if let Some(spawner) = &mut io.spawner {
            for (_, why) in spawner.reap() {
                app.notice = why;
            }
        }
        terminal.draw(|f| ui::render(app, f))?;
    }
    Ok(())
}
