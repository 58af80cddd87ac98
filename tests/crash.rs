//! Durability under SIGKILL: with `sync = "always"`, every write the server acknowledged is there
//! after a crash, however many writers were in flight when it died.

mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread;

use common::{Client, ServerProcess, config};

const WRITERS: usize = 8;
/// Acknowledged writes to wait for before pulling the plug: enough that the kill lands in the
/// middle of steady concurrent traffic, with fsyncs in flight.
const KILL_AFTER_ACKS: usize = 800;

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = config("always", "");
    let mut server = ServerProcess::start(dir.path(), &data, &config);

    let (acks_tx, acks_rx) = mpsc::channel::<(String, String)>();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let addr = server.addr;
        let acks = acks_tx.clone();
        writers.push(thread::spawn(move || {
            let mut client = Client::connect(addr);
            for n in 0.. {
                // Writers overwrite a few keys too, so recovery must pick the latest value.
                let key = if n % 4 == 0 {
                    format!("shared{}", n % 3)
                } else {
                    format!("w{w}-{n}")
                };
                let value = format!("writer{w}-op{n}");
                match client.try_request(&format!("set {key} {value}")) {
                    Ok(reply) if reply == "OK" => {
                        if acks.send((key, value)).is_err() {
                            return;
                        }
                    }
                    Ok(reply) => panic!("unexpected reply {reply:?}"),
                    // The server died under us: this write's outcome is unknown.
                    Err(_) => return,
                }
            }
        }));
    }
    drop(acks_tx);

    // Acknowledgements arrive in order per writer; for shared keys, the last acknowledged write
    // per key from any writer is not necessarily the latest, so track every acknowledged value.
    let mut acked: Vec<(String, String)> = Vec::new();
    while acked.len() < KILL_AFTER_ACKS {
        acked.push(acks_rx.recv().expect("writers stopped before the kill"));
    }
    server.kill9();
    for writer in writers {
        writer.join().expect("writer thread");
    }
    acked.extend(acks_rx.try_iter());

    let server = ServerProcess::start(dir.path(), &data, &config);
    let mut client = server.client();
    let mut shared_values: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in &acked {
        if key.starts_with("shared") {
            shared_values
                .entry(key.clone())
                .or_default()
                .push(value.clone());
        } else {
            assert_eq!(
                client.request(&format!("get {key}")),
                format!("VALUE {value}")
            );
        }
    }
    // A shared key holds one of the values written to it (a write acknowledged to one writer may
    // be overtaken by another writer's later write that was not yet acknowledged), never nothing.
    for key in shared_values.keys() {
        let reply = client.request(&format!("get {key}"));
        let written_to = reply
            .strip_prefix("VALUE writer")
            .and_then(|rest| rest.split_once("-op"))
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .map(|n| format!("shared{}", n % 3));
        assert_eq!(written_to.as_deref(), Some(key.as_str()), "{key}: {reply}");
    }
    println!("{} acknowledged writes checked after SIGKILL", acked.len());
}
