//! One client connection of either kind: RESP over TCP (dkvs, redis-server) or etcd's native
//! gRPC API. Each answers one request at a time.

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Write the value under the key.
    Set,
    /// Read the key.
    Get,
}

/// How the server answered a request it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done (for a read: the key had a value).
    Ok,
    /// A read found no value.
    Miss,
    /// The server refused or failed the request; the text says how.
    Error(String),
}

/// A connection to one server. An `Err` from [`Client::call`] means the connection itself is
/// broken; the client stops.
pub enum Client {
    Resp(RespClient),
    Etcd(EtcdClient),
}

impl Client {
    /// Sends one request and waits for its reply.
    pub async fn call(
        &mut self,
        request: Request,
        key: &[u8],
        value: &[u8],
    ) -> anyhow::Result<Reply> {
        match self {
            Client::Resp(c) => c.call(request, key, value).await,
            Client::Etcd(c) => Ok(c.call(request, key, value).await),
        }
    }
}

/// RESP2 over one TCP connection with Nagle's algorithm off.
pub struct RespClient {
    stream: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
    bulk: Vec<u8>,
}

impl RespClient {
    pub async fn connect(addr: &str) -> anyhow::Result<RespClient> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(RespClient {
            stream: BufReader::new(stream),
            out: Vec::new(),
            line: Vec::new(),
            bulk: Vec::new(),
        })
    }

    async fn call(&mut self, request: Request, key: &[u8], value: &[u8]) -> anyhow::Result<Reply> {
        self.out.clear();
        match request {
            Request::Set => {
                self.out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
                bulk_string(&mut self.out, key);
                bulk_string(&mut self.out, value);
            }
            Request::Get => {
                self.out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
                bulk_string(&mut self.out, key);
            }
        }
        self.stream.write_all(&self.out).await?;
        self.read_reply().await
    }

    /// Reads one reply: a status (`+OK`), an error (`-ERR ...`) or a bulk string (`$-1` for
    /// none). Other types are not expected from SET and GET and count as errors.
    async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        self.line.clear();
        let n = self.stream.read_until(b'\n', &mut self.line).await?;
        anyhow::ensure!(n > 0, "connection closed by the server");
        let line = String::from_utf8_lossy(&self.line).trim_end().to_string();
        match line.as_bytes().first() {
            Some(b'+') => Ok(Reply::Ok),
            Some(b'-') => Ok(Reply::Error(line[1..].to_string())),
            Some(b'$') => {
                let len: i64 = line[1..].parse().context("bad bulk string length")?;
                if len < 0 {
                    return Ok(Reply::Miss);
                }
                self.bulk.resize(len as usize + 2, 0);
                self.stream.read_exact(&mut self.bulk).await?;
                Ok(Reply::Ok)
            }
            _ => Ok(Reply::Error(format!("unexpected reply {line:?}"))),
        }
    }
}

/// Appends `$<len>\r\n<bytes>\r\n`.
fn bulk_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// etcd's `etcdserverpb.KV` service over its own HTTP/2 connection.
pub struct EtcdClient {
    grpc: Grpc<Channel>,
}

/// `etcdserverpb.PutRequest`, the fields used here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.PutResponse`: nothing of it is needed (prost skips unknown fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {}

/// `etcdserverpb.RangeRequest` for one key. `serializable` (field 10) stays false, so the read
/// is linearizable: the member confirms with the leader that it is up to date (ReadIndex).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

/// `etcdserverpb.RangeResponse`: the pairs found and their number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
    #[prost(int64, tag = "4")]
    pub count: i64,
}

/// `mvccpb.KeyValue`, key and value only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
}

impl EtcdClient {
    /// Opens a channel of its own (one HTTP/2 connection) to `addr`.
    pub async fn connect(addr: &str) -> anyhow::Result<EtcdClient> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        Ok(EtcdClient {
            grpc: Grpc::new(channel),
        })
    }

    async fn call(&mut self, request: Request, key: &[u8], value: &[u8]) -> Reply {
        if let Err(e) = self.grpc.ready().await {
            return Reply::Error(format!("channel not ready: {e}"));
        }
        match request {
            Request::Set => {
                let message = PutRequest {
                    key: key.to_vec(),
                    value: value.to_vec(),
                };
                let path = PathAndQuery::from_static("/etcdserverpb.KV/Put");
                let reply = self.grpc.unary::<_, PutResponse, _>(
                    tonic::Request::new(message),
                    path,
                    ProstCodec::default(),
                );
                match reply.await {
                    Ok(_) => Reply::Ok,
                    Err(status) => Reply::Error(status.to_string()),
                }
            }
            Request::Get => {
                let message = RangeRequest { key: key.to_vec() };
                let path = PathAndQuery::from_static("/etcdserverpb.KV/Range");
                let reply = self.grpc.unary::<_, RangeResponse, _>(
                    tonic::Request::new(message),
                    path,
                    ProstCodec::default(),
                );
                match reply.await {
                    Ok(r) if r.get_ref().kvs.is_empty() => Reply::Miss,
                    Ok(_) => Reply::Ok,
                    Err(status) => Reply::Error(status.to_string()),
                }
            }
        }
    }
}
