//! Prepared statements: how ADBC and JDBC send every statement
//! (CreatePreparedStatement, parameters by DoPut, GetFlightInfo, DoGet,
//! ClosePreparedStatement).
//!
//! - A statement is planned at creation, so errors surface there, and again at
//!   each execution with its bound parameters, so it sees new data.
//! - `?` placeholders become positional `$n`; parameters arrive as columns
//!   ("0", "1", ... or flightsql-dbapi's `param_0` ...) and are cast to the
//!   types the plan expects. A query takes one row, an update runs once per
//!   row.
//! - A lookup by key (see [`PreparedLookup`]) binds its parameters into the
//!   prepared plan and is answered without planning.
//! - A prepared update's dataset schema is empty: JDBC takes that for DML and
//!   sends DoPut(PreparedStatementUpdate).

use super::caller::Caller;
use super::handles::Owner;
use super::lookup::PreparedLookup;
use super::service::FlightSqlServer;
use super::statements::respond;
use super::status;
use super::stream::{flight_info, ipc_schema, read_batches, rows_response, DataResponse};
use super::types::{client_schema, parameter_field, parameter_rows, positional_placeholders};
use crate::sql::is_read_only;
use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
};
use arrow_flight::{FlightDescriptor, FlightInfo};
use bytes::Bytes;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, LogicalPlan};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// How long unused prepared statements are kept, and how many at most.
pub(super) const PREPARED_KEEP: Duration = Duration::from_secs(3600);
pub(super) const PREPARED_MAX: usize = 10_000;

/// A prepared statement, kept under its handle in [`FlightSqlServer::prepared`].
pub(super) struct Prepared {
    sql: String,
    /// Bound parameter rows (DoPut); a query uses the first.
    params: Vec<Vec<ScalarValue>>,
    is_query: bool,
    /// What GetFlightInfo made (parameters bound), for the DoGet that
    /// follows: a prepared query is planned once per execution.
    planned: Option<Bound>,
    /// A lookup (online or on a cached table), answered without planning.
    lookup: Option<Arc<PreparedLookup>>,
}

/// A prepared query with its parameters bound.
enum Bound {
    Plan(LogicalPlan),
    /// A lookup's condition (see [`PreparedLookup::bind`]).
    Lookup(Expr),
}

impl FlightSqlServer {
    /// CreatePreparedStatement: plans the statement and describes its result
    /// and its parameters.
    pub(super) async fn create_prepared(
        &self,
        caller: &Caller,
        request: ActionCreatePreparedStatementRequest,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        if request.transaction_id.is_some() {
            return Err(Status::unimplemented("transactions are not supported"));
        }
        let sql = positional_placeholders(&request.query);
        let plan = caller.plan(&sql).await?;
        let is_query = is_read_only(&plan) && !crate::sql::is_statement(&plan);
        let dataset_schema = if is_query {
            client_schema(plan.schema().as_arrow())
        } else {
            Arc::new(Schema::empty())
        };
        let parameter_schema = parameter_schema(&plan)?;
        let lookup = is_query
            .then(|| PreparedLookup::detect(&plan, &dataset_schema))
            .flatten()
            .map(Arc::new);
        let prepared = Prepared {
            sql,
            params: Vec::new(),
            is_query,
            planned: None,
            lookup,
        };
        let handle = self.prepared.insert(self.prepared_owner(caller), prepared);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: Bytes::from(handle.into_bytes()),
            dataset_schema: ipc_schema(&dataset_schema)?,
            parameter_schema: ipc_schema(&parameter_schema)?,
        })
    }

    /// ClosePreparedStatement; closing an unknown handle is not an error.
    pub(super) fn close_prepared(
        &self,
        caller: &Caller,
        request: ActionClosePreparedStatementRequest,
    ) {
        let handle = String::from_utf8_lossy(&request.prepared_statement_handle);
        self.prepared.remove(&handle, &self.prepared_owner(caller));
    }

    /// DoPut of parameters for the next executions.
    pub(super) async fn bind_parameters(
        &self,
        caller: &Caller,
        cmd: CommandPreparedStatementQuery,
        upload: PeekableFlightDataStream,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let rows = parameters(upload).await?;
        self.with_prepared(caller, &cmd.prepared_statement_handle, |s| {
            s.params = rows;
            s.planned = None;
        })?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(cmd.prepared_statement_handle),
        })
    }

    /// GetFlightInfo of a prepared statement: an update runs now; a query is
    /// bound and planned (or bound as a lookup) for the DoGet that follows.
    pub(super) async fn prepared_info(
        &self,
        caller: &Caller,
        cmd: CommandPreparedStatementQuery,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let (sql, params, is_query, lookup) =
            self.with_prepared(caller, &cmd.prepared_statement_handle, |s| {
                (
                    s.sql.clone(),
                    s.params.clone(),
                    s.is_query,
                    s.lookup.clone(),
                )
            })?;
        if !is_query {
            let rows = execute_update(caller, &sql, params).await?;
            return self.finished_info(caller, rows, descriptor);
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
        let (planned, schema) = match bound {
            Some(b) => b,
            None => {
                let plan = plan_prepared(caller, &sql, &first).await?;
                let schema = client_schema(plan.schema().as_arrow());
                (Bound::Plan(plan), schema)
            }
        };
        self.with_prepared(caller, &cmd.prepared_statement_handle, |s| {
            s.planned = Some(planned)
        })?;
        let ticket = cmd.as_any().encode_to_vec();
        flight_info(&schema, ticket.into(), descriptor)
    }

    /// DoGet of a prepared query: what GetFlightInfo bound, else planned now.
    pub(super) async fn prepared_rows(
        &self,
        caller: &Caller,
        cmd: CommandPreparedStatementQuery,
    ) -> Result<DataResponse, Status> {
        let (sql, params, planned, lookup) =
            self.with_prepared(caller, &cmd.prepared_statement_handle, |s| {
                (
                    s.sql.clone(),
                    s.params.first().cloned().unwrap_or_default(),
                    s.planned.take(),
                    s.lookup.clone(),
                )
            })?;
        let plan = match (planned, lookup) {
            (Some(Bound::Plan(plan)), _) => plan,
            (Some(Bound::Lookup(condition)), Some(l)) => {
                if let Some(rows) = l.execute(&condition, caller.engine()).await {
                    return Ok(rows_response(l.schema(), rows, caller, &sql, "lookup"));
                }
                // Not answerable by lookup (or a changed view): plan it.
                plan_prepared(caller, &sql, &params).await?
            }
            _ => plan_prepared(caller, &sql, &params).await?,
        };
        respond(caller, plan, &sql).await
    }

    /// DoPut of a prepared update: runs it once per parameter row (the rows
    /// sent with it, else those bound before).
    pub(super) async fn prepared_update(
        &self,
        caller: &Caller,
        cmd: CommandPreparedStatementUpdate,
        upload: PeekableFlightDataStream,
    ) -> Result<i64, Status> {
        let mut rows = parameters(upload).await?;
        let (sql, bound) = self.with_prepared(caller, &cmd.prepared_statement_handle, |s| {
            (s.sql.clone(), s.params.clone())
        })?;
        if rows.is_empty() {
            rows = bound;
        }
        execute_update(caller, &sql, rows).await
    }

    /// The result schema of a prepared statement with its bound parameters
    /// (GetSchema).
    pub(super) async fn prepared_schema(
        &self,
        caller: &Caller,
        handle: &[u8],
    ) -> Result<SchemaRef, Status> {
        let (sql, params, is_query) = self.with_prepared(caller, handle, |s| {
            (
                s.sql.clone(),
                s.params.first().cloned().unwrap_or_default(),
                s.is_query,
            )
        })?;
        if !is_query {
            return Ok(Arc::new(Schema::empty()));
        }
        let plan = plan_prepared(caller, &sql, &params).await?;
        Ok(client_schema(plan.schema().as_arrow()))
    }

    /// Who may use a prepared statement: its session; on a server without
    /// users, any session of the same user name.
    fn prepared_owner(&self, caller: &Caller) -> Owner {
        if self.auth.is_open() {
            Owner::user(&caller.principal)
        } else {
            Owner::session(&caller.principal)
        }
    }

    /// `f` of the caller's prepared statement `handle`.
    fn with_prepared<R>(
        &self,
        caller: &Caller,
        handle: &[u8],
        f: impl FnOnce(&mut Prepared) -> R,
    ) -> Result<R, Status> {
        let handle = String::from_utf8_lossy(handle);
        self.prepared
            .with(&handle, &self.prepared_owner(caller), f)
            .ok_or_else(|| {
                Status::not_found(
                    "unknown prepared statement (closed, expired, or created in another session); prepare it again",
                )
            })
    }
}

/// The parameters of a statement, as clients are told to bind them.
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, Status> {
    let types = plan.get_parameter_types().map_err(|e| status(e.into()))?;
    let fields: Vec<_> = (0..types.len())
        .map(|i| {
            parameter_field(
                i,
                types.get(&format!("${}", i + 1)).and_then(|t| t.as_ref()),
            )
        })
        .collect();
    Ok(Schema::new(fields))
}

/// The parameter rows of a DoPut.
async fn parameters(upload: PeekableFlightDataStream) -> Result<Vec<Vec<ScalarValue>>, Status> {
    let batches = read_batches(upload).await?;
    parameter_rows(&batches)
        .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))
}

/// Plans a prepared statement with one parameter row bound.
async fn plan_prepared(
    caller: &Caller,
    sql: &str,
    params: &[ScalarValue],
) -> Result<LogicalPlan, Status> {
    let plan = caller.plan(sql).await?;
    bind(plan, params).inspect_err(|e| caller.log_failure(sql, e))
}

/// Runs an update once per parameter row (once without parameters) and
/// returns the total of rows changed.
async fn execute_update(
    caller: &Caller,
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
        let plan = plan_prepared(caller, sql, &params).await?;
        total += caller.run_statement(plan, sql).await?;
    }
    Ok(total)
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
