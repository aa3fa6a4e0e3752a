//! The Redis online store: one string key per entity,
//! `<prefix>:<view>:<generation>:<key bytes>`, holding the value bytes. An
//! incremental write is a Lua compare-and-set (newest event time wins, also
//! against values written by an earlier materialization); a full rebuild
//! writes a new generation and then unlinks the old one.

use super::redis::{Conn, RedisAddr, Reply};
use super::OnlineState;
use crate::error::Result;
use datafusion::arrow::row::Rows;
use std::sync::Mutex;

/// Keeps the stored value unless the new one is at least as new: the first
/// 16 bytes order values by (event time, created time).
const CAS: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return 2
end
if cur == ARGV[1] then return 0 end
do
  local new = ARGV[1]
  for i = 1, 16 do
    local a = string.byte(new, i) or 0
    local b = string.byte(cur, i) or 0
    if a > b then break end
    if a < b then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"#;

/// Commands sent per round trip while writing.
const PIPELINE: usize = 2_000;

#[derive(Debug)]
pub struct RedisStore {
    addr: RedisAddr,
    prefix: String,
    pool: Mutex<Vec<Conn>>,
}

impl RedisStore {
    pub fn new(addr: RedisAddr, prefix: String) -> Self {
        RedisStore {
            addr,
            prefix,
            pool: Mutex::new(Vec::new()),
        }
    }

    fn key_prefix(&self, view: &str, generation: u64) -> Vec<u8> {
        format!("{}:{view}:{generation}:", self.prefix).into_bytes()
    }

    pub(super) async fn conn(&self) -> Result<Conn> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        match pooled {
            Some(c) => Ok(c),
            None => Conn::connect(&self.addr).await,
        }
    }

    pub(super) fn give_back(&self, c: Conn) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < 64 {
                p.push(c);
            }
        }
    }

    pub async fn lookup(&self, state: &OnlineState, keys: &Rows) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let prefix = self.key_prefix(&state.view, state.generation);
        let full: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| {
                let mut v = prefix.clone();
                v.extend_from_slice(k.as_ref());
                v
            })
            .collect();
        let mut args: Vec<&[u8]> = Vec::with_capacity(full.len() + 1);
        args.push(b"MGET");
        args.extend(full.iter().map(Vec::as_slice));
        let mut conn = self.conn().await?;
        // A failed call leaves the connection in an unknown state: drop it.
        let reply = conn.call(&args).await?;
        self.give_back(conn);
        match reply {
            Reply::Array(items) => Ok(items.into_iter().map(Reply::into_bytes).collect()),
            other => Err(crate::Error::Storage {
                location: format!("redis://{}:{}", self.addr.host, self.addr.port),
                message: format!("unexpected MGET reply {other:?}"),
            }),
        }
    }

    /// Writes values into a generation: with `cas`, only where newer than
    /// what is stored. Returns how many keys changed and how many of those
    /// were new.
    pub async fn write<'a>(
        &self,
        view: &str,
        generation: u64,
        entries: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        cas: bool,
    ) -> Result<(u64, u64)> {
        let prefix = self.key_prefix(view, generation);
        let mut conn = self.conn().await?;
        let sha = if cas {
            match conn.call(&[b"SCRIPT", b"LOAD", CAS.as_bytes()]).await? {
                Reply::Bulk(b) => b,
                other => {
                    return Err(crate::Error::Storage {
                        location: format!("redis://{}:{}", self.addr.host, self.addr.port),
                        message: format!("SCRIPT LOAD replied {other:?}"),
                    })
                }
            }
        } else {
            Vec::new()
        };
        let (mut changed, mut new) = (0u64, 0u64);
        let mut key = Vec::new();
        let mut count = |replies: Vec<Reply>| {
            for r in replies {
                match r {
                    Reply::Int(1) => changed += 1,
                    Reply::Int(2) | Reply::Status(_) => {
                        changed += 1;
                        new += 1;
                    }
                    _ => {}
                }
            }
        };
        for (k, v) in entries {
            key.clear();
            key.extend_from_slice(&prefix);
            key.extend_from_slice(k);
            if cas {
                conn.queue(&[b"EVALSHA", &sha, b"1", &key, v]);
            } else {
                conn.queue(&[b"SET", &key, v]);
            }
            if conn.queued() >= PIPELINE {
                count(conn.flush().await?);
            }
        }
        count(conn.flush().await?);
        self.give_back(conn);
        Ok((changed, new))
    }

    /// Unlinks every key of a generation.
    pub async fn drop_generation(&self, view: &str, generation: u64) -> Result<u64> {
        let mut pattern = self.key_prefix(view, generation);
        pattern.push(b'*');
        let mut conn = self.conn().await?;
        let mut cursor = b"0".to_vec();
        let mut removed = 0u64;
        loop {
            let reply = conn
                .call(&[b"SCAN", &cursor, b"MATCH", &pattern, b"COUNT", b"1000"])
                .await?;
            let Reply::Array(mut parts) = reply else {
                break;
            };
            let keys = match parts.pop() {
                Some(Reply::Array(k)) => k,
                _ => Vec::new(),
            };
            cursor = parts
                .pop()
                .and_then(Reply::into_bytes)
                .unwrap_or_else(|| b"0".to_vec());
            let keys: Vec<Vec<u8>> = keys.into_iter().filter_map(Reply::into_bytes).collect();
            if !keys.is_empty() {
                let mut args: Vec<&[u8]> = vec![b"UNLINK"];
                args.extend(keys.iter().map(Vec::as_slice));
                if let Reply::Int(n) = conn.call(&args).await? {
                    removed += n as u64;
                }
            }
            if cursor == b"0" {
                break;
            }
        }
        self.give_back(conn);
        Ok(removed)
    }
}
