//! Graded checks: a sweep over seeds judged by the history checkers, and a fixed scenario
//! told back as a transcript.
//!
//! A [`Sweep`] runs the simulator's random workload (`dkvs::sim::run`) against a lab's nodes
//! for every seed of a range, with the faults the lab allows, and judges each history with the
//! property the lab promises. The first seed that fails stops the sweep and becomes a
//! [`Failure`]: its first line names the seed and says what went wrong; the rest is the
//! checker's smallest failing history and a diagram of the messages around it, drawn from the
//! same seed run again with its trace on.
//!
//! A [`Scenario`] runs a golden script (`dkvs::sim::script`) with the lab's nodes; a lab test
//! compares the transcript with a stored snapshot, so a student sees exactly where their
//! message flow parts from the reference's.
//!
//! Both run the student's code under [`crate::guard`]: a panic is a failure with one line.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::Path;

use dkvs::check::{Clock, Property, Report, Verdict};
use dkvs::node::{ModeKind, Tob, TraceKind};
use dkvs::sim::run::{self, Faults, RunOptions, RunResult};
use dkvs::sim::{ModeFactory, SimConfig, script};
use dkvs::trace::{self, DiagramOptions};

use crate::guard;

/// Why a graded check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The seed that shows it, when the check ran seeds.
    pub seed: Option<u64>,
    /// One line: what went wrong.
    pub summary: String,
    /// Everything else that helps: the smallest history, a diagram, a transcript.
    pub details: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seed {
            Some(seed) => writeln!(f, "seed {seed}: {}", self.summary)?,
            None => writeln!(f, "{}", self.summary)?,
        }
        f.write_str(&self.details)
    }
}

impl Failure {
    /// Fails the calling test with this failure, in the form the grader reads: the first line,
    /// then `reproduce:` with the command that runs this test (on this seed only), then the
    /// details.
    #[track_caller]
    pub fn fail(&self, lab: &str, test: &str) -> ! {
        let first = match self.seed {
            Some(seed) => format!("seed {seed}: {}", self.summary),
            None => self.summary.clone(),
        };
        let seed = self
            .seed
            .map(|s| format!("LAB_SEED={s} "))
            .unwrap_or_default();
        crate::guard::install_hook();
        std::panic::panic_any(crate::guard::TestFailure(format!(
            "{first}\nreproduce: {seed}cargo test -p {lab} --test grade {test}\n{}",
            self.details
        )));
    }
}

/// A run of the simulator's random workload over a range of seeds.
#[derive(Clone)]
pub struct Sweep {
    /// Builds the nodes under test.
    pub factory: ModeFactory,
    /// How many nodes.
    pub nodes: u32,
    /// The property every history must have.
    pub property: Property,
    /// The faults to inject.
    pub faults: Faults,
    /// The seeds, both ends included, unless `LAB_SEED` or `LAB_SEEDS` says otherwise.
    pub seeds: RangeInclusive<u64>,
    /// Operations per seed, over all clients.
    pub ops: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Distinct keys.
    pub keys: usize,
}

impl Sweep {
    /// A sweep of 3 nodes, seeds 1..=20, 200 operations by 4 clients over 3 keys, no faults.
    pub fn new(factory: ModeFactory, property: Property) -> Sweep {
        Sweep {
            factory,
            nodes: 3,
            property,
            faults: Faults::default(),
            seeds: 1..=20,
            ops: 200,
            clients: 4,
            keys: 3,
        }
    }

    /// Runs every seed (stopping at the first failure).
    ///
    /// # Errors
    /// The first seed's [`Failure`]: a violation, a cluster that never settled, a panic.
    pub fn run(&self) -> Result<(), Failure> {
        for seed in seeds_to_run(self.seeds.clone()) {
            self.run_seed(seed, false)?;
        }
        Ok(())
    }

    /// Runs every seed and fails the calling test on the first failure (see
    /// [`Failure::fail`]).
    pub fn check(&self, lab: &str, test: &str) {
        if let Err(failure) = self.run() {
            failure.fail(lab, test);
        }
    }

    fn config(&self) -> SimConfig {
        // The kind and tob only matter for the toolkit's modes, which the factory replaces.
        let mut config = SimConfig::new(ModeKind::Sequential, Tob::Sequencer, self.nodes);
        config.factory = Some(self.factory.clone());
        config
    }

    fn options(&self, trace: bool) -> RunOptions {
        RunOptions {
            ops: self.ops,
            clients: self.clients,
            keys: self.keys,
            faults: self.faults,
            check: Some(self.property),
            trace,
            ..RunOptions::default()
        }
    }

    fn run_seed(&self, seed: u64, traced: bool) -> Result<(), Failure> {
        let config = self.config();
        let options = self.options(traced);
        let result = guard(|| run::run(&config, &options, seed)).map_err(|panic| Failure {
            seed: Some(seed),
            summary: panic,
            details: String::new(),
        })?;
        let disagreement = disagreement(&result);
        if !result.failed() && disagreement.is_none() {
            if let Some((_, Verdict::Unknown { reason })) = &result.verdict {
                return Err(Failure {
                    seed: Some(seed),
                    summary: format!("the checker could not decide: {reason}"),
                    details: String::new(),
                });
            }
            return Ok(());
        }
        if !traced {
            // Sweeps run without traces, for speed; the failing seed again, with its trace,
            // for the explanation. The run is deterministic, so it fails the same way.
            return self.run_seed(seed, true);
        }
        Err(self.explain(&result))
    }

    fn explain(&self, result: &RunResult) -> Failure {
        let seed = Some(result.seed);
        let nodes: Vec<u32> = (1..=self.nodes).collect();
        if let Some(busy) = &result.unsettled {
            let tail = result.trace.len().saturating_sub(40);
            return Failure {
                seed,
                summary: format!(
                    "the cluster never settled after the faults ended (Process::pending never reached 0, or messages kept flowing): {busy}"
                ),
                details: format!(
                    "the last messages:\n{}",
                    trace::diagram(&result.trace[tail..], &nodes, &DiagramOptions::default())
                ),
            };
        }
        let Some((property, Verdict::Violation(v))) = &result.verdict else {
            let tail = result.trace.len().saturating_sub(60);
            return Failure {
                seed,
                summary: disagreement(result).unwrap_or_else(|| "failed".into()),
                details: format!(
                    "the last messages:\n{}",
                    trace::diagram(&result.trace[tail..], &nodes, &DiagramOptions::default())
                ),
            };
        };
        let report = Report {
            property: *property,
            history: &result.history,
            verdict: &result.verdict.as_ref().expect("matched above").1,
            elapsed: result.check_time,
            clock: Clock::Simulated,
        };
        let key = v
            .key
            .as_ref()
            .map(|k| format!(" on key {k}"))
            .unwrap_or_default();
        let mut details = report.text();
        // The messages between the first and the last operation the checker kept.
        let ids: Vec<u64> = v.ops.iter().map(|o| o.id).collect();
        let around = result.focus(&ids, 400);
        let times = around.iter().filter_map(|e| e.at_us);
        if let (Some(from), Some(to)) = (times.clone().min(), times.max()) {
            let window: Vec<_> = trace::window(&result.trace, from, to, 120)
                .iter()
                .filter(|e| e.kind != TraceKind::Apply)
                .cloned()
                .collect();
            details.push_str("the messages while these operations ran:\n");
            details.push_str(&trace::diagram(&window, &nodes, &DiagramOptions::default()));
        }
        Failure {
            seed,
            summary: format!("not {}{key}: {}", property.name(), v.reason),
            details,
        }
    }
}

/// When the cluster settled with replicas that hold different data (whatever the property:
/// a total order that delivers differently on two nodes shows here even if no read saw it),
/// the first difference.
fn disagreement(result: &RunResult) -> Option<String> {
    let replicas = &result.history.replicas;
    let first = replicas.first()?;
    for other in &replicas[1..] {
        if other.data == first.data {
            continue;
        }
        let keys = first.data.keys().chain(other.data.keys());
        for key in keys {
            let (a, b) = (first.data.get(key), other.data.get(key));
            if a != b {
                let show = |v: Option<&String>| v.map_or("nothing".to_string(), |v| v.clone());
                return Some(format!(
                    "the replicas disagree after settling: n{} holds {key}={}, n{} holds {key}={}",
                    first.node,
                    show(a),
                    other.node,
                    show(b)
                ));
            }
        }
    }
    None
}

/// The seeds to run: `LAB_SEED=17` runs one, `LAB_SEEDS=1..500` a range (both ends
/// included), otherwise `default`.
pub fn seeds_to_run(default: RangeInclusive<u64>) -> RangeInclusive<u64> {
    if let Ok(one) = std::env::var("LAB_SEED")
        && let Ok(seed) = one.trim().parse::<u64>()
    {
        return seed..=seed;
    }
    if let Ok(range) = std::env::var("LAB_SEEDS")
        && let Some((a, b)) = range.trim().split_once("..")
        && let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.trim_start_matches('=').parse::<u64>())
    {
        return a..=b;
    }
    default
}

/// A golden script run with a lab's nodes.
pub struct Scenario;

impl Scenario {
    /// Runs the script in `path` with `factory`'s nodes and returns its transcript.
    ///
    /// # Errors
    /// A [`Failure`] when the file cannot be read, the script is invalid, or the code under
    /// test panics.
    pub fn run(factory: &ModeFactory, path: &Path) -> Result<String, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| Failure {
            seed: None,
            summary: format!("cannot read scenario {}: {e}", path.display()),
            details: String::new(),
        })?;
        match guard(|| script::run_with(&text, Some(factory))) {
            Ok(Ok(transcript)) => Ok(transcript),
            Ok(Err(e)) => Err(Failure {
                seed: None,
                summary: format!("scenario {}: {e}", path.display()),
                details: String::new(),
            }),
            Err(panic) => Err(Failure {
                seed: None,
                summary: format!("in scenario {}: {panic}", file_name(path)),
                details: String::new(),
            }),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
