//! Runs one program (a lab's test binary) with a time limit, captures its output, and leaves no
//! process behind.
//!
//! The grader must survive whatever a student's code does: loop forever, deadlock, print
//! megabytes or binary garbage, abort, or start helper processes that outlive it. So:
//!
//! - the child runs in a process group of its own, and when it ends or its time is up the whole
//!   group is killed with SIGKILL, which also ends the servers or `sleep`s it started;
//! - the group is killed while its leader is still an unreaped zombie, so the group id cannot
//!   have been handed to an unrelated process yet (the leader is observed with `waitid(WNOWAIT)`
//!   on a waiter thread, and reaped only after the kill);
//! - on Linux the grader is a child subreaper, so the killed grandchildren are re-parented to it
//!   and reaped here instead of staying zombies under a container's init that may never reap;
//! - stdout and stderr are read on threads into bounded buffers (the start and the end of each
//!   stream are kept, the middle is cut), so a chatty test neither blocks on a full pipe nor
//!   fills the grader's memory, and a process that escaped the group and holds a pipe open cannot
//!   make the grader wait forever.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes kept from the start of each stream: libtest's header and the start of a failure section.
const HEAD_BYTES: usize = 64 * 1024;
/// Bytes kept from the end of each stream: the panic message and libtest's summary come last.
const TAIL_BYTES: usize = 1024 * 1024;
/// How long a killed process may take to die before the grader stops waiting for it.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// How long the output pipes may stay open after the process group is gone.
const PIPE_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for killed grandchildren to be re-parented and reaped.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub cwd: &'a Path,
    /// The child's whole environment: nothing of the grader's is inherited beyond this.
    pub env: Vec<(OsString, OsString)>,
    pub timeout: Duration,
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// A signal it did not handle ended it (not the grader's timeout kill).
    Signalled(i32),
    /// The time limit passed, and the grader killed its process group.
    TimedOut,
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub ended: Ended,
    /// Decoded lossily: test output may be any bytes.
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The child's pid, which is also its process group id; tests check the group is gone.
    #[cfg_attr(not(test), expect(dead_code, reason = "only tests look at the pid"))]
    pub pid: u32,
}

/// Runs `spec` to its end or its time limit. Fails only if the program cannot be started.
pub fn run(spec: &RunSpec<'_>) -> io::Result<RunOutput> {
    become_subreaper();
    let start = Instant::now();
    let mut child = Command::new(spec.program)
        .args(&spec.args)
        .current_dir(spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    // A pid always fits in pid_t; the fallback only keeps this free of a panic path.
    let pgid = libc::pid_t::try_from(pid).unwrap_or(libc::pid_t::MAX);

    let (pipe_tx, pipe_rx) = mpsc::channel();
    let stdout = read_in_background(child.stdout.take(), pipe_tx.clone());
    let stderr = read_in_background(child.stderr.take(), pipe_tx);

    let (exit_tx, exit_rx) = mpsc::channel();
    thread::spawn(move || {
        wait_for_exit_without_reaping(pgid);
        let _ = exit_tx.send(());
    });

    let timed_out = match exit_rx.recv_timeout(spec.timeout) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => false,
        Err(RecvTimeoutError::Timeout) => true,
    };
    // Kill the group in both cases: after a normal exit this ends what the test left running.
    // The leader is not reaped yet, so `pgid` still names this group and no other.
    kill_group(pgid);
    let exited = !timed_out || exit_rx.recv_timeout(KILL_GRACE).is_ok();
    let status = reap_leader(&mut child, exited);
    reap_group(pgid);

    // Both readers see end-of-file once every holder of the pipes is dead; something that left
    // the group may still hold them, and then the output read so far has to do.
    let deadline = Instant::now() + PIPE_GRACE;
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if pipe_rx.recv_timeout(left).is_err() {
            break;
        }
    }

    let ended = match status {
        // The leader may have exited by itself right at the deadline; then its status is true.
        Some(status) if timed_out && status.code().is_none() => Ended::TimedOut,
        None => Ended::TimedOut,
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Ended::Exited(code),
            (None, Some(signal)) => Ended::Signalled(signal),
            // Neither an exit code nor a signal: cannot happen for a terminated process.
            (None, None) => Ended::Exited(-1),
        },
    };
    Ok(RunOutput {
        ended,
        stdout: take_text(&stdout),
        stderr: take_text(&stderr),
        elapsed: start.elapsed(),
        pid,
    })
}

/// Reaps the group leader if it has exited; `None` if it is still alive after the kill grace
/// (stuck in the kernel), in which case it is left behind rather than waited for forever.
fn reap_leader(child: &mut Child, exited: bool) -> Option<std::process::ExitStatus> {
    if exited {
        child.wait().ok()
    } else {
        child.try_wait().ok().flatten()
    }
}

/// Blocks until process `pid` has terminated, leaving it a zombie (`WNOWAIT`) so that its pid,
/// and with it its process group id, stays reserved until [`reap_leader`].
fn wait_for_exit_without_reaping(pid: libc::pid_t) {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain syscall on our own child; `info` outlives the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                // pid_t is positive here, and id_t is its unsigned counterpart.
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: kill has no memory effects; a negative pid addresses the process group.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Whether any process (a zombie included) is still in process group `pgid`.
pub fn group_exists(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Reaps the killed members of the group that were re-parented to the grader, until the group
/// is gone or a short grace has passed (a member may still be on its way to being re-parented).
#[cfg(target_os = "linux")]
fn reap_group(pgid: libc::pid_t) {
    let deadline = Instant::now() + REAP_GRACE;
    loop {
        loop {
            let mut status = 0;
            // SAFETY: reaps only our own children in group `pgid`, without blocking.
            let rc = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
            if rc <= 0 {
                break;
            }
        }
        if !group_exists(pgid) || Instant::now() >= deadline {
            return;
        }
        // This is cleanup after the verdict, not a wait for the test: a short poll is enough.
        thread::sleep(Duration::from_millis(2));
    }
}

/// Elsewhere orphans go to init, which reaps them.
#[cfg(not(target_os = "linux"))]
fn reap_group(_pgid: libc::pid_t) {}

/// Makes the grader the reaper of its orphaned descendants, once per process.
#[cfg(target_os = "linux")]
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sets a flag of this process; the extra arguments are ignored.
        // Failure only means orphans go to init, so it is not checked.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
}

#[cfg(not(target_os = "linux"))]
fn become_subreaper() {}

/// The start and the end of a stream, with a count of what was cut between them.
#[derive(Debug, Default)]
struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    cut: u64,
}

impl Capture {
    fn push(&mut self, mut data: &[u8]) {
        let room = HEAD_BYTES.saturating_sub(self.head.len());
        let n = room.min(data.len());
        self.head.extend_from_slice(&data[..n]);
        data = &data[n..];
        // Only the last TAIL_BYTES of a big chunk can survive; skip the rest at once.
        if data.len() > TAIL_BYTES {
            self.cut += (data.len() - TAIL_BYTES) as u64;
            data = &data[data.len() - TAIL_BYTES..];
        }
        self.tail.extend(data);
        if self.tail.len() > TAIL_BYTES {
            let excess = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..excess);
            self.cut += excess as u64;
        }
    }

    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.cut > 0 {
            text.push_str(&format!(
                "\n[… the grader cut {} bytes of output here …]\n",
                self.cut
            ));
        }
        let (a, b) = self.tail.as_slices();
        let mut tail = Vec::with_capacity(a.len() + b.len());
        tail.extend_from_slice(a);
        tail.extend_from_slice(b);
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    }
}

type Shared = Arc<Mutex<Capture>>;

fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>, done: Sender<()>) -> Shared {
    let capture = Shared::default();
    let Some(mut pipe) = pipe else {
        let _ = done.send(());
        return capture;
    };
    let sink = Arc::clone(&capture);
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
    capture
}

fn take_text(capture: &Shared) -> String {
    capture
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Writes an executable shell script into `dir`.
    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn run_script(body: &str, timeout: Duration) -> RunOutput {
        let dir = tempfile::tempdir().expect("tempdir");
        let program = script(dir.path(), "fake-test", body);
        let env = vec![(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))];
        run(&RunSpec {
            program: &program,
            args: vec![],
            cwd: dir.path(),
            env,
            timeout,
        })
        .expect("spawn")
    }

    fn assert_group_gone(out: &RunOutput) {
        let pgid = libc::pid_t::try_from(out.pid).expect("pid");
        assert!(!group_exists(pgid), "process group {pgid} is still alive");
    }

    #[test]
    fn a_sleeping_program_times_out_and_is_killed() {
        let started = Instant::now();
        let out = run_script("echo started\nexec sleep 1000", Duration::from_secs(1));
        assert_eq!(out.ended, Ended::TimedOut);
        assert!(out.stdout.contains("started"), "{:?}", out.stdout);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_group_gone(&out);
    }

    #[test]
    fn a_forked_grandchild_is_killed_with_its_parent() {
        let out = run_script("sleep 1000 &\nwait", Duration::from_secs(1));
        assert_eq!(out.ended, Ended::TimedOut);
        assert_group_gone(&out);
    }

    #[test]
    fn a_process_left_behind_by_a_finished_test_is_killed() {
        // The grandchild keeps stdout open; the grader must not wait for it.
        let started = Instant::now();
        let out = run_script("sleep 1000 &\necho done", Duration::from_secs(30));
        assert_eq!(out.ended, Ended::Exited(0));
        assert!(out.stdout.contains("done"));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_group_gone(&out);
    }

    #[test]
    fn exit_codes_and_signals_are_reported() {
        let out = run_script("echo out; echo err >&2; exit 101", Duration::from_secs(30));
        assert_eq!(out.ended, Ended::Exited(101));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        let out = run_script("kill -ABRT $$", Duration::from_secs(30));
        assert_eq!(out.ended, Ended::Signalled(libc::SIGABRT));
    }

    #[test]
    fn megabytes_of_garbage_are_bounded() {
        let out = run_script(
            "head -c 20000000 /dev/urandom\necho\necho 'the last line'\nexit 1",
            Duration::from_secs(60),
        );
        assert_eq!(out.ended, Ended::Exited(1));
        assert!(
            out.stdout.len() < 4 * (HEAD_BYTES + TAIL_BYTES),
            "kept too much"
        );
        assert!(out.stdout.contains("bytes of output here"));
        assert!(out.stdout.ends_with("the last line\n"));
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let result = run(&RunSpec {
            program: &dir.path().join("nope"),
            args: vec![],
            cwd: dir.path(),
            env: vec![],
            timeout: Duration::from_secs(1),
        });
        assert!(result.is_err());
    }

    #[test]
    fn capture_keeps_head_and_tail() {
        let mut c = Capture::default();
        c.push(&vec![b'a'; HEAD_BYTES]);
        c.push(&vec![b'b'; TAIL_BYTES * 3]);
        c.push(b"end");
        let text = c.text();
        assert!(text.starts_with(&"a".repeat(HEAD_BYTES)));
        assert!(text.ends_with("bbbend"));
        assert_eq!(c.cut, (TAIL_BYTES * 2 + 3) as u64);
    }
}
