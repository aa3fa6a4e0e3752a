//! Ad-hoc statements (`CommandStatementQuery`, `CommandStatementUpdate`) and
//! their tickets.
//!
//! - Statements that change the warehouse (DDL, DML) run when the client first
//!   names them (GetFlightInfo or DoPut), never only in DoGet: a client may
//!   never call DoGet. Their one-row result waits for DoGet under a ticket.
//! - Query tickets carry the SQL; DoGet plans it again (any server of a fleet
//!   can answer, and nothing is held for clients that never fetch). The plan
//!   GetFlightInfo made is kept for a minute for its caller's DoGet, which then
//!   need not plan again.

use super::caller::Caller;
use super::handles::Owner;
use super::service::FlightSqlServer;
use super::status;
use super::stream::{
    batch_response, count_batch, count_schema, flight_info, query_response, DataResponse,
};
use super::types::client_schema;
use crate::sql::{is_read_only, Executed};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::sql::{
    CommandStatementQuery, CommandStatementUpdate, ProstMessageExt, TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightInfo};
use bytes::Bytes;
use datafusion::logical_expr::LogicalPlan;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tonic::Status;

/// How long, and how many, planned queries are kept for their DoGet (a
/// ticket whose plan is gone is planned again from its SQL).
pub(super) const PLANNED_KEEP: Duration = Duration::from_secs(60);
pub(super) const PLANNED_MAX: usize = 1024;

/// How long, and how many, results of statements that wrote wait for DoGet.
pub(super) const RESULTS_KEEP: Duration = Duration::from_secs(3600);
pub(super) const RESULTS_MAX: usize = 10_000;

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

fn statement_ticket(body: &TicketBody) -> Bytes {
    let handle = serde_json::to_vec(body).unwrap_or_default();
    TicketStatementQuery {
        statement_handle: handle.into(),
    }
    .as_any()
    .encode_to_vec()
    .into()
}

impl FlightSqlServer {
    /// GetFlightInfo of a statement: a query is planned (and the plan kept
    /// for DoGet); a statement that writes runs now.
    pub(super) async fn statement_info(
        &self,
        caller: &Caller,
        query: CommandStatementQuery,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let plan = caller.plan(&query.query).await?;
        if !is_read_only(&plan) {
            let rows = caller.run_statement(plan, &query.query).await?;
            return self.finished_info(caller, rows, descriptor);
        }
        let schema = client_schema(plan.schema().as_arrow());
        let id = self.plans.insert(Owner::session(&caller.principal), plan);
        let ticket = statement_ticket(&TicketBody {
            sql: Some(query.query),
            result: None,
            plan: Some(id),
        });
        flight_info(&schema, ticket, descriptor)
    }

    /// DoGet of a statement ticket.
    pub(super) async fn statement_rows(
        &self,
        caller: &Caller,
        ticket: TicketStatementQuery,
    ) -> Result<DataResponse, Status> {
        let body: TicketBody = serde_json::from_slice(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("not a ticket of this server"))?;
        if let Some(id) = body.result {
            return Ok(batch_response(self.take_result(caller, &id)?));
        }
        let sql = body
            .sql
            .ok_or_else(|| Status::invalid_argument("empty ticket"))?;
        let kept = body
            .plan
            .and_then(|id| self.plans.take(&id, &Owner::session(&caller.principal)));
        let plan = match kept {
            Some(plan) => plan,
            None => caller.plan(&sql).await?,
        };
        if !is_read_only(&plan) {
            return Err(Status::invalid_argument(
                "the ticket names a statement that writes",
            ));
        }
        respond(caller, plan, &sql).await
    }

    /// DoPut of `CommandStatementUpdate`: runs it, returns its row count.
    pub(super) async fn statement_update(
        &self,
        caller: &Caller,
        update: CommandStatementUpdate,
    ) -> Result<i64, Status> {
        let plan = caller.plan(&update.query).await?;
        caller.run_statement(plan, &update.query).await
    }

    /// The result schema of a statement, without running it (GetSchema).
    pub(super) async fn statement_schema(
        &self,
        caller: &Caller,
        sql: &str,
    ) -> Result<SchemaRef, Status> {
        let plan = caller.plan(sql).await?;
        Ok(if is_read_only(&plan) {
            client_schema(plan.schema().as_arrow())
        } else {
            count_schema()
        })
    }

    /// FlightInfo of a statement that wrote `rows`: its count waits for DoGet.
    pub(super) fn finished_info(
        &self,
        caller: &Caller,
        rows: i64,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let batch = count_batch(rows)?;
        let schema = batch.schema();
        let id = self.results.insert(Owner::user(&caller.principal), batch);
        let ticket = statement_ticket(&TicketBody {
            sql: None,
            result: Some(id),
            plan: None,
        });
        flight_info(&schema, ticket, descriptor)
    }

    fn take_result(&self, caller: &Caller, id: &str) -> Result<RecordBatch, Status> {
        self.results
            .take(id, &Owner::user(&caller.principal))
            .ok_or_else(|| {
                Status::not_found("this statement's result was already fetched or has expired")
            })
    }
}

/// Runs a planned query (or a statement with rows, such as EXPLAIN) and
/// streams its rows; a query that fails to start is logged.
pub(super) async fn respond(
    caller: &Caller,
    plan: LogicalPlan,
    sql: &str,
) -> Result<DataResponse, Status> {
    let engine = caller.engine();
    caller
        .logged(sql, async {
            match caller
                .timed(async { engine.run_plan(plan).await.map_err(status) })
                .await?
            {
                Executed::Rows(df) => query_response(caller, df, sql).await,
                Executed::Changed { rows } => {
                    Ok(batch_response(count_batch(rows.unwrap_or(0) as i64)?))
                }
            }
        })
        .await
}
