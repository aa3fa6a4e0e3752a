//! `sluice serve`: the warehouse over Arrow Flight SQL, for ADBC, JDBC/BI
//! tools, SQLAlchemy (flightsql-dbapi) and pyarrow clients.
//!
//! - [`flight`]: the gRPC service: dispatch, malformed commands, panics,
//!   requests in flight.
//! - [`service`]: the Flight SQL RPCs, each decoded and handed to its concern:
//!   [`statements`], [`prepared`] (with [`lookup`]), [`ingest`], [`metadata`]
//!   (catalogs, schemas, tables, SqlInfo, XDBC types), [`session`] (session
//!   options).
//! - [`caller`]: who calls, and the engine made for them (session schema,
//!   memory limit, role checks); every RPC runs through one.
//! - [`handles`]: the bounded, expiring store of what clients hold handles to.
//! - [`stream`]: FlightInfo, result streams and uploads.
//! - [`auth`]: users, password hashes, bearer tokens, roles, Handshake.
//! - [`types`]: client-safe Arrow types and `?` parameters.
//! - [`status`] (below): the one place errors become gRPC status codes.

pub mod auth;
mod caller;
pub(crate) mod flight;
mod handles;
mod ingest;
mod lookup;
mod metadata;
mod prepared;
mod service;
pub(crate) mod session;
mod statements;
mod stream;
mod types;
pub mod worker;

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

/// Maps a sluice error to the gRPC status clients see, by its variant.
pub(crate) fn status(err: Error) -> Status {
    Status::new(code(&err), err.to_string())
}

/// The gRPC code of each variant (the list in the README's "Errors and exit
/// codes"). Every variant is named: a new one must be placed here.
pub(crate) fn code(err: &Error) -> tonic::Code {
    use tonic::Code;
    match err {
        Error::UnknownTable { .. }
        | Error::UnknownSource { .. }
        | Error::UnknownFeatureView { .. }
        | Error::UnknownFeatureService { .. }
        | Error::NotFound { .. } => Code::NotFound,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::NotSupported { .. } => Code::Unimplemented,
        Error::Storage { .. } | Error::Unavailable { .. } | Error::Io { .. } => Code::Unavailable,
        Error::Conflict { .. } => Code::Aborted,
        Error::Internal(_) | Error::EngineBug { .. } => Code::Internal,
        Error::ResourcesExhausted { .. } => Code::ResourceExhausted,
        Error::Many(errors) => errors.first().map_or(Code::InvalidArgument, code),
        Error::Config { .. }
        | Error::Source { .. }
        | Error::LoadAborted { .. }
        | Error::BadInputFile { .. }
        | Error::Schema { .. }
        | Error::Warehouse { .. }
        | Error::BadSelection { .. }
        | Error::Template(_)
        | Error::Sql(_)
        | Error::Plan { .. }
        | Error::Execution { .. }
        | Error::Usage(_)
        | Error::InvalidValue(_)
        | Error::Model { .. } => Code::InvalidArgument,
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
    /// How long a shutdown waits for running requests before cancelling them.
    pub shutdown_grace: Duration,
}

/// The default of `[server] shutdown_grace`.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

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
                let hash = PasswordHash::parse(&hash_password(&password))
                    .map_err(|e| Error::Internal(e.to_string()))?;
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
        let shutdown_grace = seconds(&section.shutdown_grace, "shutdown_grace")?
            .unwrap_or(Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS));
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
            shutdown_grace,
        })
    }
}

/// `30s`, `5m`, `1h`, `2d`.
fn parse_duration(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| Error::invalid(format!("`{s}` is not a duration such as 30s, 5m or 1h")))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(Error::invalid(format!(
                "`{s}`: unknown unit `{other}` (use s, m, h or d)"
            )))
        }
    };
    Ok(n.saturating_mul(mult))
}

/// Serves until `shutdown` completes. `ready` receives the bound address
/// (useful with port 0) once the server accepts connections.
///
/// On `shutdown` the server stops accepting connections and requests, gives the
/// requests already running `shutdown_grace` to finish, then cancels the rest
/// (their clients see the connection close) and returns; each step is logged.
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
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let svc = FlightServiceServer::new(flight::Flight::new(Arc::new(service), in_flight.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    if auth.is_open() {
        tracing::warn!("no users configured: every client on this machine may read and write the warehouse (serving on loopback only)");
    }
    ready(bound, tls);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = options.shutdown_grace;
    let running = in_flight.clone();
    let signalled = async move {
        shutdown.await;
        let n = running.load(std::sync::atomic::Ordering::SeqCst);
        tracing::info!(
            "stopping: no new connections; waiting up to {}s for {n} running request(s)",
            grace.as_secs_f64()
        );
        let _ = stopping_tx.send(());
    };
    let server = builder.add_service(svc).serve_with_incoming_shutdown(
        // No Nagle: small RPCs (prepared queries) would wait for delayed ACKs.
        tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(std::time::Duration::from_secs(60))),
        signalled,
    );
    let deadline = async move {
        if stopping_rx.await.is_err() {
            // The server ended without a signal: nothing to wait for.
            return futures::future::pending().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => {
            result.map_err(|e| Error::Internal(format!("server stopped: {e}")))?;
            tracing::info!("stopped: every request finished");
            Ok(())
        }
        () = deadline => {
            let n = in_flight.load(std::sync::atomic::Ordering::SeqCst);
            tracing::warn!(
                "stopped: the {}s grace period is over; cancelled {n} running request(s)",
                grace.as_secs_f64()
            );
            Ok(())
        }
    }
}
