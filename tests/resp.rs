//! RESP2 over a real socket: framing across packets, pipelining, binary-safe values.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{PATIENCE, ServerProcess, config};

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("read reply");
    buf
}

fn expect(stream: &mut TcpStream, want: &[u8]) {
    let got = read_exactly(stream, want.len());
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

fn connect(server: &ServerProcess) -> TcpStream {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

#[test]
fn binary_values_and_pipelines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(dir.path(), &dir.path().join("d"), &config("always", ""));
    let mut stream = connect(&server);

    // A value with every byte value in it, newlines and NUL included.
    let value: Vec<u8> = (0..=255u8).collect();
    let mut pipeline = resp(&[b"SET", b"bin\x00key", &value]);
    pipeline.extend(resp(&[b"GET", b"bin\x00key"]));
    pipeline.extend(resp(&[b"EXISTS", b"bin\x00key", b"nope"]));
    pipeline.extend(resp(&[b"DEL", b"bin\x00key", b"nope"]));
    pipeline.extend(resp(&[b"GET", b"bin\x00key"]));
    pipeline.extend(resp(&[b"DBSIZE"]));
    pipeline.extend(resp(&[b"ECHO", b"hi"]));
    pipeline.extend(resp(&[b"PING"]));
    // Sent one byte at a time: every frame boundary falls in the middle of a read somewhere.
    for byte in &pipeline {
        stream.write_all(std::slice::from_ref(byte)).expect("send");
    }
    let mut want = b"+OK\r\n$256\r\n".to_vec();
    want.extend_from_slice(&value);
    want.extend_from_slice(b"\r\n:1\r\n:1\r\n$-1\r\n:0\r\n$2\r\nhi\r\n+PONG\r\n");
    assert_eq!(read_exactly(&mut stream, want.len()), want);

    // A deep pipeline in one write: all replies, in order.
    let mut pipeline = Vec::new();
    for i in 0..500 {
        pipeline.extend(resp(&[
            b"SET",
            format!("k{i}").as_bytes(),
            format!("v{i}").as_bytes(),
        ]));
        pipeline.extend(resp(&[b"GET", format!("k{i}").as_bytes()]));
    }
    stream.write_all(&pipeline).expect("send");
    let mut want = Vec::new();
    for i in 0..500 {
        let v = format!("v{i}");
        want.extend_from_slice(format!("+OK\r\n${}\r\n{v}\r\n", v.len()).as_bytes());
    }
    assert_eq!(read_exactly(&mut stream, want.len()), want);
}

#[test]
fn handshake_commands_of_redis_tools() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(dir.path(), &dir.path().join("d"), &config("always", ""));
    let mut stream = connect(&server);
    stream
        .write_all(&resp(&[b"COMMAND", b"DOCS"]))
        .expect("send");
    expect(&mut stream, b"*0\r\n");
    stream
        .write_all(&resp(&[b"CONFIG", b"GET", b"save"]))
        .expect("send");
    expect(&mut stream, b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    stream
        .write_all(&resp(&[b"CONFIG", b"GET", b"appendonly"]))
        .expect("send");
    expect(&mut stream, b"*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n");
    stream.write_all(&resp(&[b"FLUSHALL"])).expect("send");
    expect(&mut stream, b"-ERR unknown command 'FLUSHALL'\r\n");
    stream.write_all(&resp(&[b"INFO"])).expect("send");
    let mut header = Vec::new();
    while !header.ends_with(b"\r\n") {
        header.extend(read_exactly(&mut stream, 1));
    }
    let len: usize = std::str::from_utf8(&header[1..header.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    let body = read_exactly(&mut stream, len + 2);
    assert!(String::from_utf8_lossy(&body).contains("redis_version:"));
    stream.write_all(&resp(&[b"QUIT"])).expect("send");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("closed after QUIT");
    assert_eq!(rest, b"+OK\r\n");
}

/// A pipeline whose replies outgrow the server's output bound (1 MiB) is answered in full and in
/// order: the server sends what it has and carries on with the rest of the batch.
#[test]
fn pipeline_of_large_replies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(dir.path(), &dir.path().join("d"), &config("never", ""));
    let mut stream = connect(&server);
    let value: Vec<u8> = (0..2000).map(|i| b'a' + (i % 26) as u8).collect();
    stream
        .write_all(&resp(&[b"SET", b"big", &value]))
        .expect("send");
    expect(&mut stream, b"+OK\r\n");
    let mut pipeline = Vec::new();
    for _ in 0..1000 {
        pipeline.extend(resp(&[b"GET", b"big"]));
    }
    pipeline.extend(resp(&[b"ECHO", b"end"]));
    stream.write_all(&pipeline).expect("send");
    let mut one = b"$2000\r\n".to_vec();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\n");
    for i in 0..1000 {
        let got = read_exactly(&mut stream, one.len());
        assert!(got == one, "reply {i} differs");
    }
    expect(&mut stream, b"$3\r\nend\r\n");
}
