//! Panics in a student's code, caught and told in one line.
//!
//! An unfinished lab is full of `todo!()`. Run as it is, every test would print a panic
//! message, a note about backtraces, and then fail once more in the test harness: a student
//! sees a wall of text and not which behaviour is missing. [`guard`] runs a piece of graded
//! work, and if the student's code panics inside it, keeps quiet about it and returns the
//! panic's message and place as an error: the test then fails with exactly that line.
//!
//! The quiet panic hook is installed once per process and only silences panics on a thread
//! that is inside `guard`; every other panic (the test's own assertions, other tests running
//! in parallel) is printed as usual.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`guard`] (nested guards count).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The last panic caught on this thread: its message and where it happened.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// The payload of a graded test's failure ([`crate::Failure::fail`]): printed as the default
/// hook prints a panic, but never with a backtrace, which would only hide the message.
pub struct TestFailure(pub String);

pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 {
                if let Some(TestFailure(text)) = info.payload().downcast_ref::<TestFailure>() {
                    let thread = std::thread::current();
                    let place = info
                        .location()
                        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                        .unwrap_or_default();
                    eprintln!(
                        "\nthread '{}' panicked at {place}:\n{text}",
                        thread.name().unwrap_or("<unnamed>")
                    );
                    return;
                }
                previous(info);
                return;
            }
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "a panic without a message".to_string()
            };
            let place = info
                .location()
                .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                .unwrap_or_default();
            let first = message.lines().next().unwrap_or_default().to_string();
            CAUGHT.with(|c| *c.borrow_mut() = Some(format!("{first}{place}")));
        }));
    });
}

/// Runs `work`; a panic inside it becomes `Err("panicked: <message> (at <file>:<line>)")`.
///
/// # Errors
/// The panic's message, one line, when `work` panicked.
pub fn guard<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(work));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|_| {
        let caught = CAUGHT.with(|c| c.borrow_mut().take());
        format!(
            "panicked: {}",
            caught.unwrap_or_else(|| "a panic without a message".into())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_todo_becomes_one_line_with_its_place() {
        let err = guard(|| -> u32 { todo!("lab09: the answer") }).unwrap_err();
        assert!(
            err.starts_with("panicked: not yet implemented: lab09: the answer (at "),
            "{err}"
        );
        assert!(err.contains("guard.rs:"), "{err}");
    }

    #[test]
    fn work_that_does_not_panic_returns_its_value() {
        assert_eq!(guard(|| 6 * 7), Ok(42));
    }

    #[test]
    fn only_the_first_line_of_a_long_message_is_kept() {
        let err = guard(|| panic!("first\nsecond")).unwrap_err();
        assert!(err.starts_with("panicked: first (at "), "{err}");
    }
}
