//! A small Redis client (RESP2 over TCP) for the online store: pipelined
//! commands, bulk strings in and out, nothing else. sluice needs `GET`/`MGET`,
//! `SET`, `EVALSHA`/`SCRIPT LOAD`, `SCAN` and `UNLINK`, and keeps the
//! connections itself, so a client crate (and its dependency tree) is not
//! worth the build time.

use crate::error::{Error, Result};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Status(String),
    Array(Vec<Reply>),
}

impl Reply {
    /// The bytes of a bulk or status reply; `None` for nil.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Reply::Bulk(b) => Some(b),
            Reply::Status(s) => Some(s.into_bytes()),
            _ => None,
        }
    }
}

/// Where the server is: `redis://[:password@]host[:port][/db]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisAddr {
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl RedisAddr {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |m: &str| {
            Error::config(
                "online.redis_url",
                format!("`{url}`: {m}; use redis://[user:password@]host[:port][/db]"),
            )
        };
        let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if u.scheme() != "redis" {
            return Err(bad("the scheme must be redis (TLS is not supported)"));
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .to_string();
        let db = match u.path().trim_start_matches('/') {
            "" => 0,
            d => d
                .parse()
                .map_err(|_| bad("the path must be a database number"))?,
        };
        let username = Some(u.username().to_string()).filter(|s| !s.is_empty());
        let password = u.password().map(str::to_string);
        Ok(RedisAddr {
            host,
            port: u.port().unwrap_or(6379),
            db,
            username,
            password,
        })
    }
}

/// One connection.
pub struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    addr: String,
    /// Encoded commands not sent yet, and how many.
    pending: Vec<u8>,
    queued: usize,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

fn io_err(addr: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage {
        location: format!("redis://{addr}"),
        message: e.to_string(),
    }
}

impl Conn {
    /// Connects, authenticates and selects the database.
    pub async fn connect(addr: &RedisAddr) -> Result<Conn> {
        let target = format!("{}:{}", addr.host, addr.port);
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&target))
            .await
            .map_err(|_| io_err(&target, "connection timed out"))?
            .map_err(|e| {
                io_err(
                    &target,
                    format!("{e} (is redis-server running? check [online] redis_url)"),
                )
            })?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::new(r),
            writer: BufWriter::new(w),
            addr: target,
            pending: Vec::new(),
            queued: 0,
        };
        if let Some(p) = &addr.password {
            let mut cmd: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(u) = &addr.username {
                cmd.push(u.as_bytes());
            }
            cmd.push(p.as_bytes());
            conn.call(&cmd).await?;
        }
        if addr.db != 0 {
            let db = addr.db.to_string();
            conn.call(&[b"SELECT", db.as_bytes()]).await?;
        }
        Ok(conn)
    }

    /// Queues one command (sent by the next [`Conn::flush`]).
    pub fn queue(&mut self, args: &[&[u8]]) {
        let out = &mut self.pending;
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.queued += 1;
    }

    /// Commands queued and not sent.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Sends the queued commands and reads one reply each, in order. An error
    /// reply becomes an error after all replies are read (the connection stays
    /// usable).
    pub async fn flush(&mut self) -> Result<Vec<Reply>> {
        let n = std::mem::take(&mut self.queued);
        let pending = std::mem::take(&mut self.pending);
        self.writer
            .write_all(&pending)
            .await
            .map_err(|e| io_err(&self.addr, e))?;
        self.writer
            .flush()
            .await
            .map_err(|e| io_err(&self.addr, e))?;
        let mut replies = Vec::with_capacity(n);
        let mut first_error = None;
        for _ in 0..n {
            match self.read_reply().await? {
                Ok(r) => replies.push(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                    replies.push(Reply::Nil);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(replies),
        }
    }

    /// One command, one reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.queue(args);
        let mut r = self.flush().await?;
        r.pop()
            .ok_or_else(|| io_err(&self.addr, "no reply to a command"))
    }

    /// Reads a reply; `Ok(Err(e))` is an error reply (the connection is still
    /// in step), `Err(e)` a failure of the connection.
    async fn read_reply(&mut self) -> Result<Result<Reply>> {
        // Arrays nest: iterative with an explicit stack.
        let mut stack: Vec<(usize, Vec<Reply>)> = Vec::new();
        loop {
            let item = self.read_item().await?;
            let mut value = match item {
                Item::Error(m) => return Ok(Err(io_err(&self.addr, m))),
                Item::Array(len) if len > 0 => {
                    stack.push((len, Vec::with_capacity(len.min(1 << 16))));
                    continue;
                }
                Item::Array(_) => Reply::Array(Vec::new()),
                Item::Value(v) => v,
            };
            loop {
                match stack.last_mut() {
                    None => return Ok(Ok(value)),
                    Some((len, items)) => {
                        items.push(value);
                        if items.len() < *len {
                            break;
                        }
                    }
                }
                let (_, items) = stack.pop().unwrap_or_default();
                value = Reply::Array(items);
            }
        }
    }

    async fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| io_err(&self.addr, e))?;
        if n == 0 {
            return Err(io_err(&self.addr, "connection closed"));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| io_err(&self.addr, "reply line is not UTF-8"))
    }

    async fn read_item(&mut self) -> Result<Item> {
        let line = self.read_line().await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let int = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| io_err(&self.addr, format!("bad reply `{line}`")))
        };
        Ok(match kind {
            "+" => Item::Value(Reply::Status(rest.to_string())),
            "-" => Item::Error(rest.to_string()),
            ":" => Item::Value(Reply::Int(int(rest)?)),
            "$" => {
                let len = int(rest)?;
                if len < 0 {
                    Item::Value(Reply::Nil)
                } else {
                    let mut buf = vec![0u8; len as usize + 2];
                    self.reader
                        .read_exact(&mut buf)
                        .await
                        .map_err(|e| io_err(&self.addr, e))?;
                    buf.truncate(len as usize);
                    Item::Value(Reply::Bulk(buf))
                }
            }
            "*" => {
                let len = int(rest)?;
                if len < 0 {
                    Item::Value(Reply::Nil)
                } else {
                    Item::Array(len as usize)
                }
            }
            _ => return Err(io_err(&self.addr, format!("unexpected reply `{line}`"))),
        })
    }
}

enum Item {
    Value(Reply),
    Error(String),
    Array(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let a = RedisAddr::parse("redis://:secret@cache.local:6380/2").unwrap();
        assert_eq!(a.host, "cache.local");
        assert_eq!(a.port, 6380);
        assert_eq!(a.db, 2);
        assert_eq!(a.password.as_deref(), Some("secret"));
        assert_eq!(a.username, None);
        let b = RedisAddr::parse("redis://127.0.0.1").unwrap();
        assert_eq!((b.port, b.db), (6379, 0));
        assert!(RedisAddr::parse("rediss://x").is_err());
        assert!(RedisAddr::parse("redis://x/abc").is_err());
    }
}
