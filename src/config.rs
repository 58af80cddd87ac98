//! Configuration: one TOML file describes a whole cluster, and every node reads the same file.
//!
//! ```toml
//! mode = "single"                      # the rung of the ladder
//!
//! [[nodes]]
//! id = 1
//! client = "127.0.0.1:7001"            # where clients (nc, redis-cli) connect
//!
//! [storage]
//! data_dir = "data"                    # node N keeps its files in <data_dir>/node<N>
//! sync = "always"                      # always | batch | never
//!
//! [limits]
//! max_line_bytes = 1048576
//! ```
//!
//! Every table rejects keys it does not know, and the error names the key and the file: a typo
//! such as `sync_intervall_ms` must not silently fall back to a default. Relative paths are
//! resolved against the folder that holds the config file, so a stage runs the same from any
//! working directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::protocol::Limits;
use crate::storage::{CompactionOptions, StoreOptions, SyncPolicy};

/// Largest segment the storage format allows (record offsets are 32-bit).
const MAX_SEGMENT_BYTES: u64 = 1 << 31;

/// Config errors, each one line that names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or a value has the wrong type.
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The values parse but make no sense together.
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The rung of the ladder a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One node, no replication (stage 01).
    #[default]
    Single,
    /// Apply locally, broadcast asynchronously, last writer wins (stage 02).
    Eventual,
    /// Writes in one total order, reads local (stage 03).
    Sequential,
    /// Writes and reads in one total order (stage 04).
    Linearizable,
}

impl Mode {
    /// The replication mode's kind, or `None` for a single node.
    pub fn replicated(self) -> Option<crate::node::ModeKind> {
        match self {
            Mode::Single => None,
            Mode::Eventual => Some(crate::node::ModeKind::Eventual),
            Mode::Sequential => Some(crate::node::ModeKind::Sequential),
            Mode::Linearizable => Some(crate::node::ModeKind::Linearizable),
        }
    }
}

/// How the ordered modes agree on one order (`tob`, ignored by other modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Tob {
    /// The node with the smallest id numbers every operation.
    #[default]
    Sequencer,
    /// Lamport clocks, delivered once every node has acknowledged.
    Lamport,
}

/// A whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The consistency level the cluster provides.
    #[serde(default)]
    pub mode: Mode,
    /// Total-order broadcast algorithm for `sequential` and `linearizable`.
    #[serde(default)]
    pub tob: Tob,
    /// Timers and bounds of the replication modes.
    #[serde(default)]
    pub replication: ReplicationConfig,
    /// Faults each node injects from the start (changeable at run time with `fault`).
    #[serde(default)]
    pub faults: FaultsConfig,
    /// Every node of the cluster.
    pub nodes: Vec<NodeConfig>,
    /// Storage engine settings, shared by all nodes.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Limits on what clients may send.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Folder that holds the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// One node of the cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's id, unique in the cluster; `--node` picks which one a process is.
    pub id: u32,
    /// Address the node listens on for clients (text protocol and RESP).
    pub client: SocketAddr,
    /// Address the node listens on for its peers (tarpc); required by the replicated modes.
    pub peer: Option<SocketAddr>,
    /// Where this node keeps its files; defaults to `<storage.data_dir>/node<id>`.
    pub data_dir: Option<PathBuf>,
}

/// The `[replication]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// How long a node waits for an acknowledgement (or a gap to fill) before sending again.
    pub retry_interval_ms: u64,
    /// How often the runtime ticks the mode (retries happen on ticks).
    pub tick_interval_ms: u64,
    /// Most client requests or unacknowledged messages a node holds before answering `busy`.
    pub max_pending: usize,
    /// Delivered operations a node keeps to help others catch up.
    pub log_capacity: usize,
    /// Most inputs (client requests, peer messages) the node takes in one round: their writes
    /// go to the log in one append and their replies and messages wait for one fsync. 1 turns
    /// this batching off.
    pub step_batch: usize,
    /// Most messages sent to a peer in one call. 1 turns this batching off.
    pub send_batch: usize,
    /// How peers encode messages: `"msgpack"` (compact) or `"json"` (readable in a capture).
    /// Every node of a cluster must use the same.
    pub peer_encoding: PeerEncoding,
}

/// The `[replication] peer_encoding` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerEncoding {
    #[default]
    Msgpack,
    Json,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        let options = crate::node::NodeOptions::default();
        ReplicationConfig {
            retry_interval_ms: options.retry_interval_ms,
            tick_interval_ms: 50,
            max_pending: options.max_pending,
            log_capacity: options.log_capacity,
            step_batch: 256,
            send_batch: 256,
            peer_encoding: PeerEncoding::Msgpack,
        }
    }
}

/// The `[faults]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// One entry per faulty link, as seen from `node`.
    pub links: Vec<LinkFaultConfig>,
}

/// One `[[faults.links]]` entry: what node `node` does to its link with node `peer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFaultConfig {
    pub node: u32,
    pub peer: u32,
    /// Drop messages in both directions.
    #[serde(default)]
    pub partitioned: bool,
    /// Probability of dropping a message sent to `peer`.
    #[serde(default)]
    pub drop: f64,
    /// Delay added to each message sent to `peer`.
    #[serde(default)]
    pub delay_ms: u64,
}

/// The `[storage]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Root folder for the nodes' data.
    pub data_dir: PathBuf,
    /// When writes reach the disk.
    pub sync: SyncPolicy,
    /// With `sync = "batch"`: the longest time between fsyncs.
    pub sync_interval_ms: u64,
    /// A segment file is closed and a new one begun at this size.
    pub segment_size_bytes: u64,
    /// Background compaction.
    pub compaction: CompactionConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            sync: SyncPolicy::Always,
            sync_interval_ms: 100,
            segment_size_bytes: 64 << 20,
            compaction: CompactionConfig::default(),
        }
    }
}

/// The `[storage.compaction]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Whether compaction runs on its own in the background.
    pub auto: bool,
    /// Compact when dead bytes reach this fraction of closed segments' bytes …
    pub min_dead_ratio: f64,
    /// … and at least this many bytes.
    pub min_dead_bytes: u64,
    /// How often the background compactor looks.
    pub check_interval_ms: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            auto: true,
            min_dead_ratio: 0.5,
            min_dead_bytes: 16 << 20,
            check_interval_ms: 5_000,
        }
    }
}

/// The `[limits]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest text-protocol line.
    pub max_line_bytes: usize,
    /// Longest key.
    pub max_key_bytes: usize,
    /// Longest value.
    pub max_value_bytes: usize,
    /// Most client connections open at once; more are refused with an error line.
    pub max_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = Limits::default();
        LimitsConfig {
            max_line_bytes: limits.max_line_bytes,
            max_key_bytes: limits.max_key_bytes,
            max_value_bytes: limits.max_value_bytes,
            max_connections: 4096,
        }
    }
}

impl LimitsConfig {
    /// The parsers' view of the limits.
    pub fn protocol(&self) -> Limits {
        Limits {
            max_line_bytes: self.max_line_bytes,
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the problem.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, path, base_dir)
    }

    /// Parses config text; `path` is only used in error messages.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the problem.
    pub fn parse(text: &str, path: &Path, base_dir: PathBuf) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: one_line(&e),
        })?;
        config.base_dir = base_dir;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if config.nodes.is_empty() {
            return Err(invalid("no [[nodes]] entry".into()));
        }
        let mut ids: Vec<u32> = config.nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("two [[nodes]] entries share an id".into()));
        }
        if config.mode == Mode::Single && config.nodes.len() != 1 {
            return Err(invalid(format!(
                "mode = \"single\" takes exactly one [[nodes]] entry, found {}",
                config.nodes.len()
            )));
        }
        if config.mode != Mode::Single {
            if let Some(n) = config.nodes.iter().find(|n| n.peer.is_none()) {
                return Err(invalid(format!(
                    "node {} has no `peer` address (mode = {:?} needs one per node)",
                    n.id, config.mode
                )));
            }
            if config.replication.tick_interval_ms == 0 || config.replication.retry_interval_ms == 0
            {
                return Err(invalid("replication intervals must be above 0".into()));
            }
            let r = &config.replication;
            if r.max_pending == 0 || r.log_capacity == 0 || r.step_batch == 0 || r.send_batch == 0 {
                return Err(invalid("replication bounds must be above 0".into()));
            }
        }
        for link in &config.faults.links {
            if config.node(link.node).is_err() || config.node(link.peer).is_err() {
                return Err(invalid(format!(
                    "faults.links names a node that is not in [[nodes]] ({} → {})",
                    link.node, link.peer
                )));
            }
            if !(0.0..=1.0).contains(&link.drop) {
                return Err(invalid("faults.links.drop must be within 0..=1".into()));
            }
        }
        let s = &config.storage;
        if !(4096..=MAX_SEGMENT_BYTES).contains(&s.segment_size_bytes) {
            return Err(invalid(
                "storage.segment_size_bytes must be within 4096..=2147483648".into(),
            ));
        }
        if s.sync == SyncPolicy::Batch && s.sync_interval_ms == 0 {
            return Err(invalid("storage.sync_interval_ms must be above 0".into()));
        }
        if !(0.0..=1.0).contains(&s.compaction.min_dead_ratio) {
            return Err(invalid(
                "storage.compaction.min_dead_ratio must be within 0..=1".into(),
            ));
        }
        let l = &config.limits;
        if l.max_line_bytes == 0 || l.max_key_bytes == 0 || l.max_connections == 0 {
            return Err(invalid("limits must be above 0".into()));
        }
        let largest_record = (l.max_value_bytes as u64)
            .saturating_add(l.max_key_bytes as u64)
            .saturating_add(64);
        if largest_record > s.segment_size_bytes {
            return Err(invalid(
                "storage.segment_size_bytes must hold the largest key and value".into(),
            ));
        }
        Ok(config)
    }

    /// The entry for node `id`.
    ///
    /// # Errors
    /// A message listing the ids the file has.
    pub fn node(&self, id: u32) -> Result<&NodeConfig, String> {
        self.nodes.iter().find(|n| n.id == id).ok_or_else(|| {
            let ids: Vec<String> = self.nodes.iter().map(|n| n.id.to_string()).collect();
            format!("no node {id} in the config (it has: {})", ids.join(", "))
        })
    }

    /// Where node `node`'s files live.
    pub fn data_dir(&self, node: &NodeConfig) -> PathBuf {
        match &node.data_dir {
            Some(dir) => self.base_dir.join(dir),
            None => self
                .base_dir
                .join(&self.storage.data_dir)
                .join(format!("node{}", node.id)),
        }
    }

    /// Storage options for a store in `dir`.
    pub fn store_options(&self, dir: PathBuf) -> StoreOptions {
        let s = &self.storage;
        StoreOptions {
            dir,
            sync: s.sync,
            sync_interval_ms: s.sync_interval_ms,
            segment_size_bytes: s.segment_size_bytes,
            max_key_bytes: self.limits.max_key_bytes,
            max_value_bytes: self.limits.max_value_bytes,
            compaction: CompactionOptions {
                auto: s.compaction.auto,
                min_dead_ratio: s.compaction.min_dead_ratio,
                min_dead_bytes: s.compaction.min_dead_bytes,
                check_interval_ms: s.compaction.check_interval_ms,
            },
        }
    }
}

/// toml's errors span several lines (with a source excerpt); a config error should be one line.
fn one_line(e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => format!("{message} (at byte {})", span.start),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("test.toml"), PathBuf::from("/base"))
            .map_err(|e| e.to_string())
    }

    const MINIMAL: &str = "[[nodes]]\nid = 1\nclient = \"127.0.0.1:7001\"\n";

    #[test]
    fn minimal_file_takes_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.mode, Mode::Single);
        assert_eq!(config.storage.sync, SyncPolicy::Always);
        let node = config.node(1).unwrap();
        assert_eq!(config.data_dir(node), PathBuf::from("/base/data/node1"));
        assert_eq!(
            config.node(2).unwrap_err(),
            "no node 2 in the config (it has: 1)"
        );
    }

    #[test]
    fn reports_mistakes_with_the_file_and_key() {
        let cases: &[(&str, &str)] = &[
            ("colour = 1\n", "unknown field `colour`"),
            (
                "[storage]\nsync_intervall_ms = 5\n",
                "unknown field `sync_intervall_ms`",
            ),
            (
                "[storage]\nsync = \"sometimes\"\n",
                "unknown variant `sometimes`",
            ),
            ("[limits]\nmax_key_bytes = \"big\"\n", "invalid type"),
            (
                "[[nodes]]\nid = 1\nclient = \"nowhere\"\n",
                "invalid socket address",
            ),
            ("mode = \"single\"\n", "missing field `nodes`"),
        ];
        for (extra, want) in cases {
            let text = if extra.starts_with("[[nodes]]") || extra.starts_with("mode") {
                extra.to_string()
            } else {
                format!("{extra}{MINIMAL}")
            };
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with("invalid config test.toml: "), "{err}");
            assert!(err.contains(want), "{err:?} should mention {want:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    #[test]
    fn rejects_values_that_make_no_sense() {
        let two = format!("{MINIMAL}[[nodes]]\nid = 2\nclient = \"127.0.0.1:7002\"\n");
        assert!(parse(&two).unwrap_err().contains("exactly one [[nodes]]"));
        let dup = format!("mode = \"single\"\n{MINIMAL}{MINIMAL}");
        assert!(parse(&dup).unwrap_err().contains("share an id"));
        let tiny = format!("{MINIMAL}[storage]\nsegment_size_bytes = 10\n");
        assert!(
            parse(&tiny)
                .unwrap_err()
                .contains("within 4096..=2147483648")
        );
        let huge = format!("{MINIMAL}[storage]\nsegment_size_bytes = 4294967296\n");
        assert!(
            parse(&huge)
                .unwrap_err()
                .contains("within 4096..=2147483648")
        );
        let max = i64::MAX;
        let absurd = format!("{MINIMAL}[limits]\nmax_key_bytes = {max}\nmax_value_bytes = {max}\n");
        assert!(
            parse(&absurd)
                .unwrap_err()
                .contains("must hold the largest key and value")
        );
    }
}
