//! Hostile and clumsy clients: none of them may crash the server, grow its memory without bound,
//! or break other clients' connections.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Client, ServerProcess, config};

fn server() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(dir.path(), &dir.path().join("data"), &config("never", ""));
    (dir, server)
}

/// A line far over `max_line_bytes` (4096 here) is refused once, without the server buffering it,
/// and the connection goes on.
#[test]
fn huge_line_is_refused_and_connection_survives() {
    let (_dir, server) = server();
    let mut client = server.client();
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..160 {
        // 10 MiB without a newline.
        client.send_raw(&chunk).expect("send");
    }
    client.send_raw(b"\nping\n").expect("send");
    assert_eq!(
        client.read_line().unwrap(),
        "ERR line too long (limit 4096 bytes)"
    );
    assert_eq!(client.read_line().unwrap(), "PONG");
    // The same holds for an over-long `set`: nothing is stored.
    let value = "v".repeat(5000);
    assert_eq!(
        client.request(&format!("set big {value}")),
        "ERR line too long (limit 4096 bytes)"
    );
    assert_eq!(client.request("get big"), "NOT_FOUND");
}

/// Random bytes, newlines included, get one error line each; the server stays up for everyone.
#[test]
fn binary_garbage_gets_errors_not_a_crash() {
    let (_dir, server) = server();
    let mut client = server.client();
    // A fixed pseudo-random sequence (xorshift), so a failure can be replayed.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut garbage = Vec::with_capacity(20_000);
    while garbage.len() < 20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let byte = state as u8;
        // No `*` at the very start: that would (rightly) switch the connection to RESP.
        if garbage.is_empty() && byte == b'*' {
            continue;
        }
        garbage.push(byte);
    }
    let lines = garbage.iter().filter(|&&b| b == b'\n').count();
    garbage.push(b'\n');
    client.send_raw(&garbage).expect("send");
    client.send_raw(b"ping\n").expect("send");
    let mut replies = Vec::new();
    loop {
        let reply = client.read_line().expect("reply");
        if reply == "PONG" {
            break;
        }
        replies.push(reply);
    }
    assert!(
        replies.len() <= lines + 1,
        "{} replies for {} lines",
        replies.len(),
        lines + 1
    );
    assert!(!replies.is_empty());
    for reply in &replies {
        assert!(
            reply.starts_with("ERR "),
            "garbage got a non-error reply: {reply:?}"
        );
    }
    let mut other = server.client();
    assert_eq!(other.request("set k v"), "OK");
    assert_eq!(other.request("get k"), "VALUE v");
}

/// A thousand clients at once are all served, and `stats` counts them.
#[test]
fn thousand_concurrent_connections() {
    // This test process holds the client ends: a common default of 1024 descriptors, shared
    // with the other tests running beside it, would be too tight.
    dkvs::runtime::server::raise_fd_limit();
    let (_dir, server) = server();
    let mut clients: Vec<Client> = (0..1000).map(|_| server.client()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .send_raw(format!("set key{i} value{i}\n").as_bytes())
            .expect("send");
    }
    for client in clients.iter_mut() {
        assert_eq!(client.read_line().unwrap(), "OK");
    }
    for (i, client) in clients.iter_mut().enumerate().rev() {
        assert_eq!(
            client.request(&format!("get key{i}")),
            format!("VALUE value{i}")
        );
    }
    let stats = server.client().request("stats");
    assert!(stats.contains(" keys=1000 "), "{stats}");
    assert!(stats.contains(" connections=1001 "), "{stats}");
}

/// Clients that vanish halfway through a request leave nothing behind but a closed socket.
#[test]
fn disconnect_mid_frame() {
    let (_dir, server) = server();
    for partial in [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nonly"[..],
        b"*2\r\n$3\r\nGE",
        b"set half-a-li",
    ] {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream.write_all(partial).expect("send");
        drop(stream);
    }
    let mut client = server.client();
    assert_eq!(
        client.request("get k"),
        "NOT_FOUND",
        "a partial SET must not be applied"
    );
    assert_eq!(client.request("ping"), "PONG");
}

/// A malformed RESP frame is answered with a protocol error and the connection is closed, as
/// Redis does; well-formed frames before it in the same packet are still answered.
#[test]
fn malformed_resp_closes_the_connection() {
    let (_dir, server) = server();
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(common::PATIENCE))
        .expect("timeout");
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n")
        .expect("send");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read until closed");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    // A RESP frame announcing a value larger than the limit is refused before it is buffered.
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(common::PATIENCE))
        .expect("timeout");
    stream
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999999\r\n")
        .expect("send");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read until closed");
    assert!(String::from_utf8_lossy(&reply).starts_with("-ERR Protocol error: bulk length"));
}

/// Past `max_connections` a client is turned away with an error line instead of being left
/// hanging, and the clients already in are not disturbed.
#[test]
fn connections_over_the_limit_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("never", "max_connections = 2\n");
    let server = ServerProcess::start(dir.path(), &dir.path().join("data"), &config);
    let mut first = server.client();
    let mut second = server.client();
    // Both are served, so both hold their places before the third knocks.
    assert_eq!(first.request("ping"), "PONG");
    assert_eq!(second.request("ping"), "PONG");
    let mut third = server.client();
    let refused = third.read_to_end().expect("read until closed");
    assert_eq!(
        String::from_utf8_lossy(&refused),
        "-ERR max number of clients reached (limit 2)\r\n"
    );
    assert_eq!(first.request("set still in"), "OK");
    assert_eq!(second.request("get still"), "VALUE in");
}
