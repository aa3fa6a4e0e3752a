//! The caller of one request and the engine its work runs on.
//!
//! Every RPC starts by turning its request into a [`Caller`]: who is calling
//! (checked against [`Auth`]) and an engine made for them, with their session's
//! schema for unqualified names and the server's per-query memory limit. The
//! warehouse's shared engine is not reachable any other way, so every path
//! (queries, prepared statements, updates, ingest, metadata, session options)
//! runs under the same limits and the same role checks.
//!
//! A statement that fails (it does not parse or plan, the caller may not run
//! it, it fails while running) is logged at info with the user, the client's
//! address and the reason: an operator sees what clients were refused
//! without asking them.

use super::auth::{Auth, Principal, Role};
use super::service::QueryLimits;
use super::status;
use crate::sql::{is_read_only, Engine, Executed};
use datafusion::logical_expr::LogicalPlan;
use std::sync::OnceLock;
use std::time::Instant;
use tonic::Status;

/// Who calls, and the engine their statements run on.
pub(super) struct Caller {
    pub(super) principal: Principal,
    /// The client's address (`ip:port`), for the log; `-` when unknown.
    pub(super) peer: String,
    shared: Engine,
    /// The session's schema for unqualified names (`SetSessionOptions`).
    schema: Option<String>,
    limits: QueryLimits,
    /// Made on first use: RPCs such as SqlInfo never need one.
    engine: OnceLock<Engine>,
}

impl Caller {
    /// `principal`, to run on `shared` as configured for them.
    pub(super) fn new(
        principal: Principal,
        shared: &Engine,
        auth: &Auth,
        limits: &QueryLimits,
    ) -> Self {
        let schema = auth.session_option(principal.token.as_deref(), "schema");
        Caller {
            principal,
            peer: "-".into(),
            shared: shared.clone(),
            schema,
            limits: limits.clone(),
            engine: OnceLock::new(),
        }
    }

    /// The same caller, calling from `peer`.
    pub(super) fn with_peer(self, peer: String) -> Self {
        Caller { peer, ..self }
    }

    /// Logs a statement that failed: who sent it, from where, the reason
    /// and the statement.
    pub(super) fn log_failure(&self, sql: &str, error: &Status) {
        tracing::info!(
            user = %self.principal.user,
            peer = %self.peer,
            code = ?error.code(),
            reason = %one_line(error.message()),
            sql = %short(sql),
            "query failed"
        );
    }

    /// `work`'s outcome, its failure logged ([`Caller::log_failure`]).
    pub(super) async fn logged<T>(
        &self,
        sql: &str,
        work: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let outcome = work.await;
        if let Err(e) = &outcome {
            self.log_failure(sql, e);
        }
        outcome
    }

    /// The caller's engine: the session's schema, the per-query memory limit.
    pub(super) fn engine(&self) -> &Engine {
        self.engine.get_or_init(|| {
            if self.schema.is_none() && self.limits.memory.is_none() {
                return self.shared.clone();
            }
            self.shared
                .with_session(self.schema.as_deref(), self.limits.memory)
        })
    }

    /// When a query started now must end (`[server] query_timeout`).
    pub(super) fn deadline(&self) -> Option<tokio::time::Instant> {
        self.limits.timeout.map(|t| tokio::time::Instant::now() + t)
    }

    /// `work` within the server's `query_timeout`: planning, statements that
    /// write, and starting a query (streams check their own deadline between
    /// batches). Work that never yields (one long synchronous step of the
    /// optimizer) is cut at its next await.
    pub(super) async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        match self.limits.timeout {
            None => work.await,
            Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "the statement ran longer than the server's query_timeout ({}s) and was cancelled; raise [server] query_timeout or make the statement cheaper",
                    t.as_secs_f64()
                )))
            }),
        }
    }

    /// Plans one statement and checks the caller may run it (a refusal is
    /// logged).
    pub(super) async fn plan(&self, sql: &str) -> Result<LogicalPlan, Status> {
        let planned = self.plan_checked(sql).await;
        if let Err(e) = &planned {
            self.log_failure(sql, e);
        }
        planned
    }

    async fn plan_checked(&self, sql: &str) -> Result<LogicalPlan, Status> {
        let engine = self.engine();
        let plan = self
            .timed(async { engine.plan(sql).await.map_err(status) })
            .await?;
        if let LogicalPlan::Statement(datafusion::logical_expr::Statement::SetVariable(_)) = &plan {
            return Err(Status::invalid_argument(
                "SET changes settings of the whole server and is not allowed over Flight SQL; set the session's default schema with SetSessionOptions (\"schema\")",
            ));
        }
        let p = &self.principal;
        if !is_read_only(&plan) {
            p.require_write(&statement_name(&plan))?;
        }
        if p.role == Role::ReadOnly && crate::warehouse::plan_reads_files(&plan) {
            return Err(Status::permission_denied(format!(
                "user `{}` is read-only and may query warehouse tables only, not files on the server",
                p.user
            )));
        }
        Ok(plan)
    }

    /// Runs a statement that changes the warehouse and returns its row count
    /// (a failure is logged).
    pub(super) async fn run_statement(&self, plan: LogicalPlan, sql: &str) -> Result<i64, Status> {
        let started = Instant::now();
        let engine = self.engine();
        let rows = self
            .logged(
                sql,
                self.timed(async {
                    Ok(match engine.run_plan(plan).await.map_err(status)? {
                        Executed::Changed { rows } => rows.unwrap_or(0) as i64,
                        Executed::Rows(df) => {
                            // A query sent as an update: run it, report its rows.
                            let batches = df.collect().await.map_err(|e| status(e.into()))?;
                            batches.iter().map(|b| b.num_rows() as i64).sum()
                        }
                    })
                }),
            )
            .await?;
        tracing::info!(
            user = %self.principal.user,
            peer = %self.peer,
            rows,
            ms = started.elapsed().as_millis() as u64,
            sql = %short(sql),
            "statement"
        );
        Ok(rows)
    }
}

/// What a statement that writes is called in a refusal ("CREATE TABLE", ...).
fn statement_name(plan: &LogicalPlan) -> String {
    match plan {
        LogicalPlan::Ddl(d) => d.name().to_string(),
        LogicalPlan::Dml(d) => format!("{}", d.op),
        LogicalPlan::Copy(_) => "COPY".into(),
        LogicalPlan::Statement(s) => s.name().to_string(),
        _ => "statements that write".into(),
    }
}

/// A message on one line (DataFusion's errors span several), for the log.
pub(super) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `sql` on one line and at most 200 characters, for the log.
pub(super) fn short(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        format!("{}...", one_line.chars().take(200).collect::<String>())
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryLimit;
    use std::collections::HashMap;
    use std::time::Duration;

    async fn engine(dir: &std::path::Path) -> Engine {
        let wh = crate::warehouse::Warehouse::open(
            dir.join("warehouse").to_str().unwrap_or_default(),
            &HashMap::new(),
        )
        .unwrap();
        Engine::new(wh, "main").await.unwrap()
    }

    fn memory_limit(e: &Engine) -> MemoryLimit {
        e.context().runtime_env().memory_pool.memory_limit()
    }

    /// Every caller, whatever its role, runs with the per-query memory limit
    /// and its session's schema.
    #[tokio::test]
    async fn callers_get_the_limits_and_their_session() {
        let dir = tempfile::tempdir().unwrap();
        let shared = engine(dir.path()).await;
        let auth = Auth::new(Vec::new(), Duration::from_secs(60));
        let limits = QueryLimits {
            timeout: None,
            memory: Some(8 << 20),
        };
        let (reader, token) = auth.login("r", "").await.unwrap();
        let reader = Principal {
            role: Role::ReadOnly,
            ..reader
        };
        auth.set_session_option(Some(&token), "schema", Some("features".into()))
            .unwrap();
        let writer = Principal {
            user: "w".into(),
            role: Role::ReadWrite,
            token: None,
        };
        for (p, schema) in [(reader, "features"), (writer, "main")] {
            let caller = Caller::new(p, &shared, &auth, &limits);
            assert!(matches!(
                memory_limit(caller.engine()),
                MemoryLimit::Finite(n) if n == 8 << 20
            ));
            assert_eq!(caller.engine().default_schema(), schema);
        }
        // The shared engine keeps the process-wide limit.
        assert!(!matches!(memory_limit(&shared), MemoryLimit::Finite(n) if n == 8 << 20));
    }

    #[tokio::test]
    async fn read_only_callers_may_not_write_or_read_files() {
        let dir = tempfile::tempdir().unwrap();
        let shared = engine(dir.path()).await;
        let auth = Auth::new(Vec::new(), Duration::from_secs(60));
        let reader = Principal {
            user: "r".into(),
            role: Role::ReadOnly,
            token: None,
        };
        let caller = Caller::new(reader, &shared, &auth, &QueryLimits::default());
        assert!(caller.plan("SELECT 1").await.is_ok());
        let csv = dir.path().join("x.csv");
        std::fs::write(&csv, "a\n1\n").unwrap();
        for sql in [
            "CREATE TABLE main.t AS SELECT 1 AS x".to_string(),
            format!("SELECT * FROM '{}'", csv.display()),
        ] {
            let err = caller.plan(&sql).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{sql}: {err}");
        }
    }
}
