//! `sluice serve`: the warehouse over Arrow Flight SQL, for ADBC, JDBC/BI
//! tools, SQLAlchemy (flightsql-dbapi) and pyarrow clients.
//!
//! - [`auth`]: users, password hashes, bearer tokens, roles, sessions.
//! - [`service`]: the Flight SQL RPCs over one [`Engine`].
//! - [`metadata`]: catalogs, schemas, tables, SqlInfo, XDBC types.
//! - [`types`]: client-safe Arrow types and `?` parameters.
//! - [`status`] (below): the one place errors become gRPC status codes.

pub mod auth;
mod flight;
mod lookup;
mod metadata;
mod service;
mod session;
mod types;

pub use auth::{hash_password, Auth, PasswordHash, Role, User};
pub use service::{FlightSqlServer, QueryLimits};

use crate::error::{Error, Result};
use crate::project::ServerSection;
use crate::sql::Engine;
use arrow_flight::flight_service_server::FlightServiceServer;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// Largest message the server accepts (bulk ingest batches) or sends.
const MAX_MESSAGE: usize = 256 << 20;

/// Maps a sluice error to the gRPC status clients see.
pub(crate) fn status(err: Error) -> Status {
    let message = err.to_string();
    match &err {
        Error::UnknownTable { .. } => Status::not_found(message),
        Error::Storage { .. } | Error::Io { .. } => Status::unavailable(message),
        Error::Internal(_) => Status::internal(message),
        Error::Sql(m) if m.contains("Resources exhausted") => Status::resource_exhausted(format!(
            "{message}; the query needs more memory than the server's query_memory_limit allows"
        )),
        Error::Sql(m) if m.contains("already exists") => Status::already_exists(message),
        Error::Sql(m) if m.contains("not found") || m.contains("does not exist") => {
            Status::not_found(message)
        }
        Error::Sql(m) if m.contains("not supported") || m.contains("Unsupported") => {
            Status::unimplemented(message)
        }
        _ => Status::invalid_argument(message),
    }
}

/// Everything `serve` needs besides the engine.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub users: Vec<User>,
    pub token_ttl: Duration,
    pub limits: QueryLimits,
    /// PEM certificate chain and key.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Bytes of small tables kept decoded in memory (0: none).
    pub table_cache: usize,
}

/// The default of `[server] table_cache`.
pub const DEFAULT_TABLE_CACHE: usize = 256 << 20;

impl ServeOptions {
    /// Options from `[server]` of `sluice.toml` (paths relative to `root`), plus
    /// `SLUICE_USER` / `SLUICE_PASSWORD` as one read-write user.
    pub fn from_config(
        section: &ServerSection,
        root: &Path,
        host: Option<&str>,
        port: Option<u16>,
    ) -> Result<Self> {
        let file = root.join("sluice.toml");
        let host = host
            .map(str::to_string)
            .or_else(|| section.host.clone())
            .unwrap_or_else(|| "127.0.0.1".to_string());
        let port = port.or(section.port).unwrap_or(50051);
        let ip: std::net::IpAddr = match host.as_str() {
            "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
            h => h.parse().map_err(|_| {
                Error::config(
                    &file,
                    format!("server host `{h}` is not an IP address (use 127.0.0.1 or 0.0.0.0)"),
                )
            })?,
        };
        let mut users = Vec::new();
        for u in &section.users {
            let hash = PasswordHash::parse(&u.password_hash).map_err(|m| {
                Error::config(
                    &file,
                    format!("[[server.users]] `{}`: password_hash is {m}", u.name),
                )
            })?;
            let role = Role::parse(u.role.as_deref())
                .map_err(|m| Error::config(&file, format!("[[server.users]] `{}`: {m}", u.name)))?;
            users.push(User {
                name: u.name.clone(),
                hash,
                role,
            });
        }
        match (
            std::env::var("SLUICE_USER"),
            std::env::var("SLUICE_PASSWORD"),
        ) {
            (Ok(name), Ok(password)) if !name.is_empty() => {
                let hash =
                    PasswordHash::parse(&hash_password(&password)).map_err(Error::Internal)?;
                users.retain(|u| u.name != name);
                users.push(User {
                    name,
                    hash,
                    role: Role::ReadWrite,
                });
            }
            (Ok(_), Err(_)) | (Err(_), Ok(_)) => {
                return Err(Error::config(
                    "SLUICE_USER / SLUICE_PASSWORD",
                    "set both (one read-write user) or neither",
                ))
            }
            _ => {}
        }
        let seconds = |v: &Option<String>, key: &str| -> Result<Option<Duration>> {
            v.as_deref()
                .map(|s| {
                    parse_duration(s)
                        .map(Duration::from_secs)
                        .map_err(|m| Error::config(&file, format!("[server] {key}: {m}")))
                })
                .transpose()
        };
        let token_ttl =
            seconds(&section.token_ttl, "token_ttl")?.unwrap_or(Duration::from_secs(3600));
        let timeout = seconds(&section.query_timeout, "query_timeout")?;
        let memory = section
            .query_memory_limit
            .as_deref()
            .map(|s| {
                crate::sql::parse_size(s)
                    .map_err(|m| Error::config(&file, format!("[server] query_memory_limit: {m}")))
            })
            .transpose()?;
        let table_cache = match section.table_cache.as_deref() {
            None => DEFAULT_TABLE_CACHE,
            Some(s) => crate::sql::parse_size(s)
                .map_err(|m| Error::config(&file, format!("[server] table_cache: {m}")))?,
        };
        let tls = match (&section.tls_cert, &section.tls_key) {
            (Some(c), Some(k)) => {
                let read = |p: &String| {
                    let path = root.join(p);
                    std::fs::read(&path).map_err(|e| Error::io(path, e))
                };
                Some((read(c)?, read(k)?))
            }
            (None, None) => None,
            _ => {
                return Err(Error::config(
                    &file,
                    "[server] needs both tls_cert and tls_key for TLS",
                ))
            }
        };
        Ok(ServeOptions {
            addr: SocketAddr::new(ip, port),
            users,
            token_ttl,
            limits: QueryLimits { timeout, memory },
            tls,
            table_cache,
        })
    }
}

/// `30s`, `5m`, `1h`, `2d`.
fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 30s, 5m or 1h"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("`{s}`: unknown unit `{other}` (use s, m, h or d)")),
    };
    Ok(n.saturating_mul(mult))
}

/// Serves until `shutdown` completes. `ready` receives the bound address
/// (useful with port 0) once the server accepts connections.
pub async fn serve(
    engine: Engine,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr, bool),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    if options.users.is_empty() && !options.addr.ip().is_loopback() {
        return Err(Error::config(
            "sluice.toml",
            format!(
                "refusing to serve on {} without users: anyone could read and write the warehouse; add [[server.users]] (see `sluice hash-password`) or SLUICE_USER/SLUICE_PASSWORD, or bind 127.0.0.1",
                options.addr
            ),
        ));
    }
    engine.catalog().set_table_cache(options.table_cache);
    let auth = Arc::new(Auth::new(options.users.clone(), options.token_ttl));
    let service = FlightSqlServer::new(engine, auth.clone(), options.limits.clone())?;
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| {
            Error::config(
                "sluice serve",
                format!("cannot listen on {}: {e}", options.addr),
            )
        })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut builder = tonic::transport::Server::builder();
    let tls = options.tls.is_some();
    if let Some((cert, key)) = &options.tls {
        // Several crypto providers are compiled in; rustls needs one chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| Error::config("sluice.toml", format!("[server] TLS: {e}")))?;
    }
    let svc = FlightServiceServer::new(flight::Flight(Arc::new(service)))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    if auth.is_open() {
        tracing::warn!("no users configured: every client on this machine may read and write the warehouse (serving on loopback only)");
    }
    ready(bound, tls);
    builder
        .add_service(svc)
        .serve_with_incoming_shutdown(
            // No Nagle: small RPCs (prepared queries) would wait for delayed ACKs.
            tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(std::time::Duration::from_secs(60))),
            shutdown,
        )
        .await
        .map_err(|e| Error::Internal(format!("server stopped: {e}")))
}
