//! The Flight SQL service: statements, prepared statements, updates, bulk
//! ingest and metadata over one [`Engine`].
//!
//! - Statements that change the warehouse (DDL, DML) run when the client first
//!   names them (GetFlightInfo or DoPut), never only in DoGet: a client may
//!   never call DoGet. Their one-row result waits for DoGet under a ticket.
//! - Query tickets carry the SQL; DoGet plans it again (any server of a fleet
//!   can answer, and nothing is held for clients that never fetch).
//! - Prepared statements are planned at creation (errors surface there) and
//!   again at each execution with the bound parameters (they see new data).
//! - Every schema announced equals the stream's schema (see [`super::types`]).

use super::auth::{parse_basic, Auth, Principal, Role};
use super::lookup::PreparedLookup;
use super::metadata;
use super::session;
use super::status;
use super::types::{
    client_schema, conform_batch, parameter_field, parameter_rows, positional_placeholders,
};
use crate::sql::{is_read_only, Engine, Executed, IngestMode, CATALOG};
use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TableExistsOption, TableNotExistOption, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status, Streaming};

/// Limits applied to every query.
#[derive(Debug, Clone, Default)]
pub struct QueryLimits {
    pub timeout: Option<Duration>,
    pub memory: Option<usize>,
}

/// `t` as people write it in `sluice.toml` ("30s", "1.5s").
fn humantime_secs(t: Duration) -> String {
    format!("{}s", t.as_secs_f64())
}

/// A prepared statement (its handle is the key in [`FlightSqlServer::prepared`]).
struct Prepared {
    sql: String,
    user: String,
    token: Option<String>,
    /// Bound parameter rows (DoPut); a query uses the first.
    params: Vec<Vec<ScalarValue>>,
    is_query: bool,
    last_used: Instant,
    /// What GetFlightInfo made (parameters bound), for the DoGet that
    /// follows: a prepared query is planned once per execution.
    planned: Option<Bound>,
    /// A lookup (online or on a cached table), answered without planning (see [`PreparedLookup`]).
    lookup: Option<Arc<PreparedLookup>>,
}

/// A prepared query with its parameters bound.
enum Bound {
    Plan(LogicalPlan),
    /// A lookup's condition (see [`PreparedLookup::bind`]).
    Lookup(datafusion::logical_expr::Expr),
}

/// A finished statement's result, waiting for DoGet.
struct Finished {
    batch: RecordBatch,
    at: Instant,
}

/// A query GetFlightInfo planned, for the DoGet that follows.
struct PlannedQuery {
    plan: LogicalPlan,
    user: String,
    token: Option<String>,
    at: Instant,
}

/// How long, and how many, planned queries are kept for their DoGet (a
/// ticket whose plan is gone is planned again from its SQL).
const PLANNED_KEEP: Duration = Duration::from_secs(60);
const PLANNED_MAX: usize = 1024;

/// What a statement ticket names.
#[derive(Serialize, Deserialize)]
struct TicketBody {
    /// A query to plan and run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sql: Option<String>,
    /// The result of a statement that already ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    /// The plan GetFlightInfo kept on this server for the query (`sql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plan: Option<String>,
}

/// The Flight SQL service.
pub struct FlightSqlServer {
    engine: Engine,
    auth: Arc<Auth>,
    limits: QueryLimits,
    prepared: Mutex<HashMap<String, Prepared>>,
    finished: Mutex<HashMap<String, Finished>>,
    planned: Mutex<HashMap<String, PlannedQuery>>,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How long unused prepared statements and unfetched results are kept.
const KEEP: Duration = Duration::from_secs(3600);

impl FlightSqlServer {
    pub fn new(engine: Engine, auth: Arc<Auth>, limits: QueryLimits) -> crate::Result<Self> {
        Ok(FlightSqlServer {
            engine,
            auth,
            limits,
            prepared: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashMap::new()),
            planned: Mutex::new(HashMap::new()),
            sql_info: metadata::sql_info()?,
            xdbc: metadata::xdbc_info()?,
        })
    }

    /// The caller of a request. Not an `async fn`: the future must not borrow
    /// the request (a streaming request is not `Sync`).
    fn principal<T>(
        &self,
        request: &Request<T>,
    ) -> impl std::future::Future<Output = Result<Principal, Status>> + Send + '_ {
        let header = super::auth::authorization(request.metadata());
        async move { self.auth.check_header(header.as_deref()).await }
    }

    /// The caller of a request (for [`super::flight`]).
    pub(super) fn caller<T>(
        &self,
        request: &Request<T>,
    ) -> impl std::future::Future<Output = Result<Principal, Status>> + Send + '_ {
        self.principal(request)
    }

    /// The result schema of a statement, without running it.
    pub(super) async fn statement_schema(
        &self,
        p: &Principal,
        sql: &str,
    ) -> Result<SchemaRef, Status> {
        let engine = self.engine_for(p);
        let plan = self.plan(&engine, p, sql).await?;
        Ok(if is_read_only(&plan) {
            client_schema(plan.schema().as_arrow())
        } else {
            count_schema()
        })
    }

    /// The result schema of a prepared statement with its bound parameters.
    pub(super) async fn prepared_schema(
        &self,
        p: &Principal,
        handle: &[u8],
    ) -> Result<SchemaRef, Status> {
        let (sql, params, is_query) = self.prepared_mut(handle, p, |s| {
            (
                s.sql.clone(),
                s.params.first().cloned().unwrap_or_default(),
                s.is_query,
            )
        })?;
        if !is_query {
            return Ok(Arc::new(Schema::empty()));
        }
        let engine = self.engine_for(p);
        let plan = self.plan_prepared(&engine, p, &sql, &params).await?;
        Ok(client_schema(plan.schema().as_arrow()))
    }

    /// The engine for one caller: the session's schema, the per-query memory limit.
    fn engine_for(&self, p: &Principal) -> Engine {
        let schema = self.auth.session_option(p.token.as_deref(), "schema");
        if schema.is_none() && self.limits.memory.is_none() {
            return self.engine.clone();
        }
        self.engine
            .with_session(schema.as_deref(), self.limits.memory)
    }

    /// `work` within the server's `query_timeout`: planning, statements that
    /// write, and starting a query (streams check their own deadline between
    /// batches). Work that never yields (one long synchronous step of the
    /// optimizer) is cut at its next await.
    async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        match self.limits.timeout {
            None => work.await,
            Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "the statement ran longer than the server's query_timeout ({}) and was cancelled; raise [server] query_timeout or make the statement cheaper",
                    humantime_secs(t)
                )))
            }),
        }
    }

    /// Plans one statement and checks the caller may run it.
    async fn plan(&self, engine: &Engine, p: &Principal, sql: &str) -> Result<LogicalPlan, Status> {
        let plan = self
            .timed(async { engine.plan(sql).await.map_err(status) })
            .await?;
        if let LogicalPlan::Statement(s) = &plan {
            if matches!(s, datafusion::logical_expr::Statement::SetVariable(_)) {
                return Err(Status::invalid_argument(
                    "SET changes settings of the whole server and is not allowed over Flight SQL; set the session's default schema with SetSessionOptions (\"schema\")",
                ));
            }
        }
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

    /// Runs a statement that changes the warehouse and returns its row count.
    async fn run_statement(
        &self,
        engine: &Engine,
        p: &Principal,
        plan: LogicalPlan,
        sql: &str,
    ) -> Result<i64, Status> {
        let started = Instant::now();
        let rows = self
            .timed(async {
                Ok(match engine.run_plan(plan).await.map_err(status)? {
                    Executed::Changed { rows } => rows.unwrap_or(0) as i64,
                    Executed::Rows(df) => {
                        // A query sent as an update: run it, report its rows.
                        let batches = df.collect().await.map_err(|e| status(e.into()))?;
                        batches.iter().map(|b| b.num_rows() as i64).sum()
                    }
                })
            })
            .await?;
        tracing::info!(
            user = %p.user,
            rows,
            ms = started.elapsed().as_millis() as u64,
            sql = %short(sql),
            "statement"
        );
        Ok(rows)
    }

    /// Keeps a finished statement's result for DoGet and returns its ticket.
    fn keep_result(&self, batch: RecordBatch) -> Bytes {
        let id = uuid::Uuid::new_v4().to_string();
        let mut f = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        f.retain(|_, r| now.duration_since(r.at) < KEEP);
        f.insert(id.clone(), Finished { batch, at: now });
        statement_ticket(&TicketBody {
            sql: None,
            result: Some(id),
            plan: None,
        })
    }

    /// Keeps a query's plan for its DoGet; returns its id.
    fn keep_plan(&self, p: &Principal, plan: LogicalPlan) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut m = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, q| now.duration_since(q.at) < PLANNED_KEEP);
        if m.len() >= PLANNED_MAX {
            let oldest = m.iter().min_by_key(|(_, q)| q.at).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                m.remove(&k);
            }
        }
        m.insert(
            id.clone(),
            PlannedQuery {
                plan,
                user: p.user.clone(),
                token: p.token.clone(),
                at: now,
            },
        );
        id
    }

    /// The plan kept for ticket `id`, once, and only for the caller that
    /// planned it (same user and session).
    fn take_plan(&self, id: &str, p: &Principal) -> Option<LogicalPlan> {
        let mut m = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        let q = m.remove(id)?;
        (q.user == p.user && q.token == p.token && q.at.elapsed() < PLANNED_KEEP).then_some(q.plan)
    }

    fn take_result(&self, id: &str) -> Result<RecordBatch, Status> {
        let mut f = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        f.remove(id).map(|r| r.batch).ok_or_else(|| {
            Status::not_found("this statement's result was already fetched or has expired")
        })
    }

    /// A query's rows as a Flight stream, with the timeout, client types and a
    /// log line when it ends (or is cancelled because the client went away).
    async fn stream(
        &self,
        df: DataFrame,
        p: &Principal,
        sql: &str,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        let schema = client_schema(df.schema().as_arrow());
        let batches = self
            .timed(async { df.execute_stream().await.map_err(|e| status(e.into())) })
            .await?;
        self.stream_batches(schema, batches, p, sql, "planned")
    }

    /// [`FlightSqlServer::stream`] of a running plan whose rows clients see
    /// with `schema`.
    fn stream_batches(
        &self,
        schema: SchemaRef,
        batches: datafusion::execution::SendableRecordBatchStream,
        p: &Principal,
        sql: &str,
        path: &'static str,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        let deadline = self.limits.timeout.map(|t| tokio::time::Instant::now() + t);
        let state = StreamState {
            inner: batches,
            schema: schema.clone(),
            deadline,
            log: QueryLog {
                user: p.user.clone(),
                path,
                sql: short(sql),
                started: Instant::now(),
                rows: 0,
                outcome: None,
            },
        };
        let batches = futures::stream::unfold(state, |mut st| async move {
            if st.log.outcome.is_some() {
                return None;
            }
            let next = match st.deadline {
                Some(d) => tokio::select! {
                    b = st.inner.next() => b,
                    _ = tokio::time::sleep_until(d) => {
                        st.log.outcome = Some("timed out");
                        return Some((Err(FlightError::Tonic(Box::new(Status::deadline_exceeded(
                            "the query ran longer than the server's query_timeout and was cancelled",
                        )))), st));
                    }
                },
                None => st.inner.next().await,
            };
            match next {
                Some(Ok(b)) => {
                    st.log.rows += b.num_rows();
                    let out = conform_batch(&b, &st.schema).map_err(FlightError::Arrow);
                    Some((out, st))
                }
                Some(Err(e)) => {
                    st.log.outcome = Some("failed");
                    Some((Err(FlightError::Tonic(Box::new(status(e.into())))), st))
                }
                None => {
                    st.log.outcome = Some("done");
                    drop(st);
                    None
                }
            }
        });
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    fn batch_response(batch: RecordBatch) -> Response<BoxStream<arrow_flight::FlightData>> {
        let schema = batch.schema();
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter([Ok(batch)]))
            .map_err(Status::from);
        Response::new(Box::pin(flight))
    }

    fn prepared_mut<R>(
        &self,
        handle: &[u8],
        p: &Principal,
        f: impl FnOnce(&mut Prepared) -> R,
    ) -> Result<R, Status> {
        let key = String::from_utf8_lossy(handle).to_string();
        let mut map = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&key) {
            Some(st) if st.user == p.user && (self.auth.is_open() || st.token == p.token) => {
                st.last_used = Instant::now();
                Ok(f(st))
            }
            _ => Err(Status::not_found(
                "unknown prepared statement (closed, expired, or created in another session); prepare it again",
            )),
        }
    }

    /// Plans a prepared statement with its first parameter row bound.
    async fn plan_prepared(
        &self,
        engine: &Engine,
        p: &Principal,
        sql: &str,
        params: &[ScalarValue],
    ) -> Result<LogicalPlan, Status> {
        let plan = self.plan(engine, p, sql).await?;
        bind(plan, params)
    }
}

struct StreamState {
    inner: datafusion::execution::SendableRecordBatchStream,
    schema: SchemaRef,
    deadline: Option<tokio::time::Instant>,
    log: QueryLog,
}

/// One info line per query, written when its stream ends or is dropped.
struct QueryLog {
    user: String,
    /// `planned`, or `lookup` for a prepared lookup answered without planning.
    path: &'static str,
    sql: String,
    started: Instant,
    rows: usize,
    outcome: Option<&'static str>,
}

impl Drop for QueryLog {
    fn drop(&mut self) {
        tracing::info!(
            user = %self.user,
            rows = self.rows,
            path = self.path,
            ms = self.started.elapsed().as_millis() as u64,
            outcome = self.outcome.unwrap_or("cancelled by the client"),
            sql = %self.sql,
            "query"
        );
    }
}

fn short(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        format!("{}...", one_line.chars().take(200).collect::<String>())
    } else {
        one_line
    }
}

fn statement_name(plan: &LogicalPlan) -> String {
    match plan {
        LogicalPlan::Ddl(d) => d.name().to_string(),
        LogicalPlan::Dml(d) => format!("{}", d.op),
        LogicalPlan::Copy(_) => "COPY".into(),
        LogicalPlan::Statement(s) => s.name().to_string(),
        _ => "statements that write".into(),
    }
}

/// Binds positional parameters, cast to the types the plan expects.
fn bind(plan: LogicalPlan, params: &[ScalarValue]) -> Result<LogicalPlan, Status> {
    let types = plan.get_parameter_types().map_err(|e| status(e.into()))?;
    if types.is_empty() && params.is_empty() {
        return Ok(plan);
    }
    if params.len() != types.len() {
        return Err(Status::invalid_argument(format!(
            "the statement has {} parameter(s) but {} value(s) were bound",
            types.len(),
            params.len()
        )));
    }
    let mut values = Vec::with_capacity(params.len());
    for (i, v) in params.iter().enumerate() {
        let expected = types.get(&format!("${}", i + 1)).cloned().flatten();
        let v = match expected {
            Some(dt) if v.is_null() => ScalarValue::try_from(&dt).map_err(|e| status(e.into()))?,
            Some(dt) if v.data_type() != dt => v.cast_to(&dt).map_err(|e| {
                Status::invalid_argument(format!(
                    "parameter {} ({v}) cannot be used as {dt}: {e}",
                    i + 1
                ))
            })?,
            _ => v.clone(),
        };
        values.push(v);
    }
    plan.with_param_values(values).map_err(|e| status(e.into()))
}

fn statement_ticket(body: &TicketBody) -> Bytes {
    let handle = serde_json::to_vec(body).unwrap_or_default();
    TicketStatementQuery {
        statement_handle: handle.into(),
    }
    .as_any()
    .encode_to_vec()
    .into()
}

fn flight_info(
    schema: &Schema,
    ticket: Bytes,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor)
        .with_total_records(-1)
        .with_total_bytes(-1))
}

/// FlightInfo of a metadata command: its ticket is the command itself.
fn command_info(
    command: &impl ProstMessageExt,
    schema: &Schema,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = command.as_any().encode_to_vec();
    Ok(Response::new(flight_info(
        schema,
        ticket.into(),
        request.into_inner(),
    )?))
}

pub(super) fn ipc_schema(schema: &Schema) -> Result<Bytes, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    let IpcMessage(bytes) =
        message.map_err(|e| Status::internal(format!("cannot encode a schema: {e}")))?;
    Ok(bytes)
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![arrow::datatypes::Field::new(
        "count",
        arrow::datatypes::DataType::Int64,
        false,
    )]))
}

fn count_batch(rows: i64) -> Result<RecordBatch, Status> {
    RecordBatch::try_new(
        count_schema(),
        vec![Arc::new(arrow::array::Int64Array::from(vec![rows]))],
    )
    .map_err(|e| Status::internal(e.to_string()))
}

/// Reads parameter batches from a DoPut stream.
async fn read_batches(stream: PeekableFlightDataStream) -> Result<Vec<RecordBatch>, Status> {
    FlightRecordBatchStream::new_from_flight_data(data_messages(stream))
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the uploaded data: {e}")))
}

/// The messages of a DoPut that carry Arrow data (clients may send the command
/// alone in a first message without any).
fn data_messages(
    stream: PeekableFlightDataStream,
) -> impl Stream<Item = Result<arrow_flight::FlightData, FlightError>> + Send + 'static {
    stream
        .map_err(FlightError::from)
        .try_filter(|m| futures::future::ready(!m.data_header.is_empty()))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<BoxStream<HandshakeResponse>>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let token = if let Some((user, password)) = header.as_deref().and_then(parse_basic) {
            self.auth.login(&user, &password).await?.1
        } else if header.is_some() {
            // A bearer token (JDBC sends its token through Handshake again).
            let p = self.auth.check_header(header.as_deref()).await?;
            match p.token {
                Some(t) => t,
                None => self.auth.login(&p.user, "").await?.1,
            }
        } else {
            let mut stream = request.into_inner();
            let first = stream.message().await?;
            let basic = first
                .and_then(|m| arrow_flight::BasicAuth::decode(m.payload).ok())
                .unwrap_or_default();
            self.auth.login(&basic.username, &basic.password).await?.1
        };
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::from(token.clone().into_bytes()),
        };
        let mut response: Response<BoxStream<HandshakeResponse>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("cannot encode the token"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let p = self.principal(&request).await?;
        let engine = self.engine_for(&p);
        let plan = self.plan(&engine, &p, &query.query).await?;
        let descriptor = request.into_inner();
        if !is_read_only(&plan) {
            let rows = self.run_statement(&engine, &p, plan, &query.query).await?;
            let batch = count_batch(rows)?;
            let info = flight_info(&batch.schema(), self.keep_result(batch), descriptor)?;
            return Ok(Response::new(info));
        }
        let schema = client_schema(plan.schema().as_arrow());
        let id = self.keep_plan(&p, plan);
        let ticket = statement_ticket(&TicketBody {
            sql: Some(query.query),
            result: None,
            plan: Some(id),
        });
        Ok(Response::new(flight_info(&schema, ticket, descriptor)?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        let p = self.principal(&request).await?;
        let body: TicketBody = serde_json::from_slice(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("not a ticket of this server"))?;
        if let Some(id) = body.result {
            return Ok(Self::batch_response(self.take_result(&id)?));
        }
        let sql = body
            .sql
            .ok_or_else(|| Status::invalid_argument("empty ticket"))?;
        let engine = self.engine_for(&p);
        let plan = match body.plan.and_then(|id| self.take_plan(&id, &p)) {
            Some(plan) => plan,
            None => self.plan(&engine, &p, &sql).await?,
        };
        if !is_read_only(&plan) {
            return Err(Status::invalid_argument(
                "the ticket names a statement that writes",
            ));
        }
        match self
            .timed(async { engine.run_plan(plan).await.map_err(status) })
            .await?
        {
            Executed::Rows(df) => self.stream(df, &p, &sql).await,
            Executed::Changed { rows } => {
                Ok(Self::batch_response(count_batch(rows.unwrap_or(0) as i64)?))
            }
        }
    }

    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let p = self.principal(&request).await?;
        let engine = self.engine_for(&p);
        let plan = self.plan(&engine, &p, &ticket.query).await?;
        self.run_statement(&engine, &p, plan, &ticket.query).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let p = self.principal(&request).await?;
        if query.transaction_id.is_some() {
            return Err(Status::unimplemented("transactions are not supported"));
        }
        let engine = self.engine_for(&p);
        let sql = positional_placeholders(&query.query);
        let plan = self.plan(&engine, &p, &sql).await?;
        let is_query = is_read_only(&plan) && !crate::sql::is_statement(&plan);
        let dataset_schema = if is_query {
            client_schema(plan.schema().as_arrow())
        } else {
            Arc::new(Schema::empty())
        };
        let types = plan.get_parameter_types().map_err(|e| status(e.into()))?;
        let fields: Vec<_> = (0..types.len())
            .map(|i| {
                parameter_field(
                    i,
                    types.get(&format!("${}", i + 1)).and_then(|t| t.as_ref()),
                )
            })
            .collect();
        let parameter_schema = Schema::new(fields);
        let lookup = is_query
            .then(|| PreparedLookup::detect(&plan, &dataset_schema))
            .flatten()
            .map(Arc::new);
        let handle = uuid::Uuid::new_v4().to_string();
        {
            let mut map = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            map.retain(|_, s| now.duration_since(s.last_used) < KEEP);
            map.insert(
                handle.clone(),
                Prepared {
                    sql,
                    user: p.user.clone(),
                    token: p.token.clone(),
                    params: Vec::new(),
                    is_query,
                    last_used: now,
                    planned: None,
                    lookup,
                },
            );
        }
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: Bytes::from(handle.into_bytes()),
            dataset_schema: ipc_schema(&dataset_schema)?,
            parameter_schema: ipc_schema(&parameter_schema)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let p = self.principal(&request).await?;
        let key = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        let mut map = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&key).is_some_and(|s| s.user == p.user) {
            map.remove(&key);
        }
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let p = self.principal(&request).await?;
        let batches = read_batches(request.into_inner()).await?;
        let rows = parameter_rows(&batches)
            .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))?;
        self.prepared_mut(&query.prepared_statement_handle, &p, |s| {
            s.params = rows;
            s.planned = None;
        })?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let p = self.principal(&request).await?;
        let (sql, params, is_query, lookup) =
            self.prepared_mut(&cmd.prepared_statement_handle, &p, |s| {
                (
                    s.sql.clone(),
                    s.params.clone(),
                    s.is_query,
                    s.lookup.clone(),
                )
            })?;
        let engine = self.engine_for(&p);
        let descriptor = request.into_inner();
        if !is_query {
            let rows = self.execute_update(&engine, &p, &sql, params).await?;
            let batch = count_batch(rows)?;
            let info = flight_info(&batch.schema(), self.keep_result(batch), descriptor)?;
            return Ok(Response::new(info));
        }
        if params.len() > 1 {
            return Err(Status::invalid_argument(
                "a query takes one row of parameters; bind one row per execution",
            ));
        }
        let first = params.into_iter().next().unwrap_or_default();
        // A lookup binds its parameters into the prepared plan; other
        // queries (and a lookup whose parameters do not bind) are planned.
        let bound = lookup
            .as_ref()
            .and_then(|l| l.bind(&first).map(|b| (Bound::Lookup(b), l.schema())));
        let (plan, schema) = match bound {
            Some(b) => b,
            None => {
                let plan = self.plan_prepared(&engine, &p, &sql, &first).await?;
                let schema = client_schema(plan.schema().as_arrow());
                (Bound::Plan(plan), schema)
            }
        };
        self.prepared_mut(&cmd.prepared_statement_handle, &p, |s| {
            s.planned = Some(plan)
        })?;
        let ticket = cmd.as_any().encode_to_vec();
        Ok(Response::new(flight_info(
            &schema,
            ticket.into(),
            descriptor,
        )?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        let p = self.principal(&request).await?;
        let (sql, params, mut planned, lookup) =
            self.prepared_mut(&query.prepared_statement_handle, &p, |s| {
                (
                    s.sql.clone(),
                    s.params.first().cloned().unwrap_or_default(),
                    s.planned.take(),
                    s.lookup.clone(),
                )
            })?;
        let engine = self.engine_for(&p);
        if let (Some(l), Some(Bound::Lookup(condition))) = (&lookup, &planned) {
            if let Some(rows) = l.execute(condition, &engine).await {
                return self.stream_batches(l.schema(), rows, &p, &sql, "lookup");
            }
            // Not answerable by lookup (or a changed view): plan it.
            planned = None;
        }
        let plan = match planned {
            Some(Bound::Plan(plan)) => plan,
            _ => self.plan_prepared(&engine, &p, &sql, &params).await?,
        };
        match self
            .timed(async { engine.run_plan(plan).await.map_err(status) })
            .await?
        {
            Executed::Rows(df) => self.stream(df, &p, &sql).await,
            Executed::Changed { rows } => {
                Ok(Self::batch_response(count_batch(rows.unwrap_or(0) as i64)?))
            }
        }
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let p = self.principal(&request).await?;
        let batches = read_batches(request.into_inner()).await?;
        let mut rows = parameter_rows(&batches)
            .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))?;
        let (sql, bound) = self.prepared_mut(&query.prepared_statement_handle, &p, |s| {
            (s.sql.clone(), s.params.clone())
        })?;
        if rows.is_empty() {
            rows = bound;
        }
        let engine = self.engine_for(&p);
        self.execute_update(&engine, &p, &sql, rows).await
    }

    async fn do_put_statement_ingest(
        &self,
        ticket: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let p = self.principal(&request).await?;
        p.require_write("bulk ingest")?;
        if ticket.temporary {
            return Err(Status::invalid_argument(
                "temporary tables cannot be ingested; ingest into a warehouse table",
            ));
        }
        if ticket.transaction_id.is_some() {
            return Err(Status::unimplemented("transactions are not supported"));
        }
        if let Some(c) = ticket.catalog.as_deref().filter(|c| !c.is_empty()) {
            if c != CATALOG {
                return Err(Status::invalid_argument(format!(
                    "unknown catalog `{c}`; the warehouse catalog is `{CATALOG}`"
                )));
            }
        }
        let options = ticket.table_definition_options.unwrap_or_default();
        let create = !matches!(
            TableNotExistOption::try_from(options.if_not_exist),
            Ok(TableNotExistOption::Fail)
        );
        let existing = match TableExistsOption::try_from(options.if_exists) {
            Ok(TableExistsOption::Append) => Some(false),
            Ok(TableExistsOption::Replace) => Some(true),
            _ => None,
        };
        let session_schema = self.auth.session_option(p.token.as_deref(), "schema");
        let schema = ticket
            .schema
            .clone()
            .filter(|s| !s.is_empty())
            .or(session_schema)
            .map(|s| s.to_ascii_lowercase());
        let table = ticket.table.to_ascii_lowercase();
        let mut decoded =
            FlightRecordBatchStream::new_from_flight_data(data_messages(request.into_inner()));
        // The first message carries the schema: read up to the first batch.
        let first =
            decoded.next().await.transpose().map_err(|e| {
                Status::invalid_argument(format!("cannot read the uploaded data: {e}"))
            })?;
        let data_schema = decoded
            .schema()
            .cloned()
            .or_else(|| first.as_ref().map(|b| b.schema()))
            .ok_or_else(|| Status::invalid_argument("the upload carries no schema"))?;
        let rest = decoded.map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)));
        let all = futures::stream::iter(first.map(Ok)).chain(rest);
        let data = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(data_schema, all),
        );
        let started = Instant::now();
        let rows = self
            .engine
            .ingest(
                schema.as_deref(),
                &table,
                data,
                IngestMode { create, existing },
            )
            .await
            .map_err(status)?;
        tracing::info!(
            user = %p.user,
            rows,
            ms = started.elapsed().as_millis() as u64,
            table = %table,
            "ingest"
        );
        Ok(rows as i64)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder().schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        let batch = builder.build().map_err(|e| status(e.into()))?;
        Ok(Self::batch_response(batch))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder().schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        let batch = metadata::db_schemas(&self.engine, query)
            .await
            .map_err(status)?;
        Ok(Self::batch_response(batch))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder().schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        let p = self.principal(&request).await?;
        let engine = self.engine_for(&p);
        let batch = metadata::tables(&engine, query).await.map_err(status)?;
        Ok(Self::batch_response(batch))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder().schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        let mut builder = query.into_builder();
        for t in metadata::TABLE_TYPES {
            builder.append(t);
        }
        let batch = builder.build().map_err(|e| status(e.into()))?;
        Ok(Self::batch_response(batch))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(|e| status(e.into()))?;
        Ok(Self::batch_response(batch))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder(&self.xdbc).schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        let batch = query
            .into_builder(&self.xdbc)
            .build()
            .map_err(|e| status(e.into()))?;
        Ok(Self::batch_response(batch))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        command_info(&query, &metadata::primary_keys_schema(), request)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        Ok(Self::batch_response(RecordBatch::new_empty(
            metadata::primary_keys_schema(),
        )))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        command_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        Ok(Self::batch_response(RecordBatch::new_empty(
            metadata::foreign_keys_schema(),
        )))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        command_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        Ok(Self::batch_response(RecordBatch::new_empty(
            metadata::foreign_keys_schema(),
        )))
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        command_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<arrow_flight::FlightData>>, Status> {
        self.principal(&request).await?;
        Ok(Self::batch_response(RecordBatch::new_empty(
            metadata::foreign_keys_schema(),
        )))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        let a = |t: &str, d: &str| {
            Ok(ActionType {
                r#type: t.to_string(),
                description: d.to_string(),
            })
        };
        Some(vec![
            a(session::SET_SESSION_OPTIONS, "Set session options (schema)"),
            a(session::GET_SESSION_OPTIONS, "Get session options"),
            a(
                session::CLOSE_SESSION,
                "Close the session (its token stops working)",
            ),
        ])
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let p = self.principal(&request).await?;
        let action = request.into_inner();
        let token = p.token.as_deref();
        let body: Bytes = match action.r#type.as_str() {
            session::SET_SESSION_OPTIONS => {
                let req = session::SetSessionOptionsRequest::decode(action.body).map_err(|e| {
                    Status::invalid_argument(format!("bad SetSessionOptions request: {e}"))
                })?;
                let mut result = session::SetSessionOptionsResult::default();
                for (name, value) in req.session_options {
                    let text = match value.option_value {
                        Some(session::OptionValue::StringValue(s)) => Some(s),
                        None => None,
                        Some(_) => {
                            result.errors.insert(
                                name,
                                session::SetSessionOptionsError {
                                    value: session::INVALID_VALUE,
                                },
                            );
                            continue;
                        }
                    };
                    let error = match name.as_str() {
                        "schema" => match text {
                            Some(s) if crate::warehouse::is_identifier(&s.to_ascii_lowercase()) => {
                                self.auth.set_session_option(
                                    token,
                                    "schema",
                                    Some(s.to_ascii_lowercase()),
                                )?;
                                None
                            }
                            None => {
                                self.auth.set_session_option(token, "schema", None)?;
                                None
                            }
                            Some(_) => Some(session::INVALID_VALUE),
                        },
                        "catalog" => match text.as_deref() {
                            Some(CATALOG) | None => None,
                            Some(_) => Some(session::INVALID_VALUE),
                        },
                        _ => Some(session::INVALID_NAME),
                    };
                    if let Some(value) = error {
                        result
                            .errors
                            .insert(name, session::SetSessionOptionsError { value });
                    }
                }
                result.encode_to_vec().into()
            }
            session::GET_SESSION_OPTIONS => {
                let mut result = session::GetSessionOptionsResult::default();
                let options = self.auth.session_options(token);
                let schema = options
                    .get("schema")
                    .cloned()
                    .unwrap_or_else(|| self.engine.default_schema().to_string());
                result
                    .session_options
                    .insert("schema".into(), session::string_value(schema));
                result
                    .session_options
                    .insert("catalog".into(), session::string_value(CATALOG));
                result.encode_to_vec().into()
            }
            session::CLOSE_SESSION => {
                self.auth.close_session(token);
                session::CloseSessionResult {
                    status: session::CLOSED,
                }
                .encode_to_vec()
                .into()
            }
            other => {
                return Err(Status::unimplemented(format!(
                    "action `{other}` is not supported (see ListActions)"
                )))
            }
        };
        let out = arrow_flight::Result { body };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(out)]))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl FlightSqlServer {
    /// Runs an update once per parameter row (once without parameters) and
    /// returns the total of rows changed.
    async fn execute_update(
        &self,
        engine: &Engine,
        p: &Principal,
        sql: &str,
        rows: Vec<Vec<ScalarValue>>,
    ) -> Result<i64, Status> {
        let runs = if rows.is_empty() {
            vec![Vec::new()]
        } else {
            rows
        };
        let mut total = 0;
        for params in runs {
            let plan = self.plan_prepared(engine, p, sql, &params).await?;
            total += self.run_statement(engine, p, plan, sql).await?;
        }
        Ok(total)
    }
}
