//! # dkvs — a teaching toolkit for distributed key-value stores
//!
//! A key-value server you can talk to with `nc` (`set`, `get`, `del`, `kill`) or `redis-cli`,
//! backed by an append-only log with an in-memory hash index, that climbs a ladder of consistency
//! levels chosen in a TOML file. This crate is the library; the `dkvs` binary only parses
//! arguments and calls it.
//!
//! ## Map of the crate
//!
//! | module | layer | what it does |
//! |---|---|---|
//! | [`protocol`] | pure | parses text lines and RESP frames into [`protocol::Command`]s; formats [`protocol::Reply`]s |
//! | [`storage`] | disk | append-only segment files + in-memory index (Bitcask), group-commit fsync, compaction, crash recovery |
//! | [`config`] | pure | the cluster's TOML file: nodes, mode, storage options, limits |
//! | [`node`] | pure | the replication modes as sans-IO state machines: eventual (last writer wins); sequential and linearizable over a sequencer or Lamport-clock total order |
//! | [`workload`] | I/O | concurrent recorded clients against a running cluster, for `dkvs check` |
//! | [`runtime`] | I/O | tokio: the client listener, one task per connection, signals, shutdown |
//! | [`sim`] | pure | the deterministic simulator: every node's mode in one process, virtual time, a seeded faulty network; `dkvs sim` and the scenario scripts |
//! | [`trace`] | pure | trace events as JSON lines, as a text Lamport diagram and as an event list |
//!
//! Data flows top to bottom: bytes from a client → `protocol` → (the mode's logic; in stage 01
//! there is only one node, so commands go straight to the store) → `storage`, and the reply back
//! up the same way. The replication modes of later stages sit between `protocol` and `storage` as
//! pure state machines; see `docs/ARCHITECTURE.md`.

pub mod check;
pub mod config;
pub mod node;
pub mod protocol;
pub mod runtime;
pub mod sim;
pub mod storage;
pub mod trace;
pub mod workload;
