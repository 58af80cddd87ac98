//! Runtime: the part that touches the world — sockets, signals, threads. Everything it calls into
//! (protocol, storage) can be understood and tested without it.
//!
//! A server is one tokio listener and one task per client connection ([`connection`]); the
//! storage engine has its own threads for fsync and compaction. Shutdown is cooperative: a `kill`
//! command, SIGTERM or Ctrl-C cancels one token; the listener stops accepting, each connection
//! finishes the batch it is working on and closes, and the store is synced before the process
//! exits with status 0.

pub mod connection;
pub mod replica;
pub mod server;

pub use server::{ServeOptions, Server};
