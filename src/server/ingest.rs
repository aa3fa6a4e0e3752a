//! Bulk ingest (`CommandStatementIngest`, ADBC's `adbc_ingest`): a DoPut of
//! Arrow batches into a warehouse table, streamed into the Delta writer as
//! they arrive (one commit at the end, nothing held in memory).
//!
//! Ingest runs on the caller's engine like every statement: a read-only user
//! is refused before anything is read, the per-query memory limit applies,
//! and a table named without a schema goes to the session's schema.

use super::caller::Caller;
use super::status;
use super::stream::uploaded;
use crate::sql::{IngestMode, CATALOG};
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption, TableNotExistOption};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use std::time::Instant;
use tonic::Status;

/// DoPut of `CommandStatementIngest`: the rows written.
pub(super) async fn ingest(
    caller: &Caller,
    cmd: CommandStatementIngest,
    upload: PeekableFlightDataStream,
) -> Result<i64, Status> {
    caller.principal.require_write("bulk ingest")?;
    let target = Target::of(cmd)?;
    let data = data(upload).await?;
    let started = Instant::now();
    let rows = caller
        .engine()
        .ingest(target.schema.as_deref(), &target.table, data, target.mode)
        .await
        .map_err(status)
        .inspect_err(|e| caller.log_failure(&format!("bulk ingest into {}", target.table), e))?;
    tracing::info!(
        user = %caller.principal.user,
        peer = %caller.peer,
        rows,
        ms = started.elapsed().as_millis() as u64,
        table = %target.table,
        "ingest"
    );
    Ok(rows as i64)
}

/// Where an ingest writes, and what it does when the table exists or not.
struct Target {
    /// `None`: the session's schema (the caller's engine's default).
    schema: Option<String>,
    table: String,
    mode: IngestMode,
}

impl Target {
    fn of(cmd: CommandStatementIngest) -> Result<Target, Status> {
        if cmd.temporary {
            return Err(Status::invalid_argument(
                "temporary tables cannot be ingested; ingest into a warehouse table",
            ));
        }
        if cmd.transaction_id.is_some() {
            return Err(Status::unimplemented("transactions are not supported"));
        }
        if let Some(c) = cmd.catalog.as_deref().filter(|c| !c.is_empty()) {
            if c != CATALOG {
                return Err(Status::invalid_argument(format!(
                    "unknown catalog `{c}`; the warehouse catalog is `{CATALOG}`"
                )));
            }
        }
        let options = cmd.table_definition_options.unwrap_or_default();
        let create = !matches!(
            TableNotExistOption::try_from(options.if_not_exist),
            Ok(TableNotExistOption::Fail)
        );
        let existing = match TableExistsOption::try_from(options.if_exists) {
            Ok(TableExistsOption::Append) => Some(false),
            Ok(TableExistsOption::Replace) => Some(true),
            _ => None,
        };
        Ok(Target {
            schema: cmd
                .schema
                .filter(|s| !s.is_empty())
                .map(|s| s.to_ascii_lowercase()),
            table: cmd.table.to_ascii_lowercase(),
            mode: IngestMode { create, existing },
        })
    }
}

/// The uploaded batches as a stream for the writer, with the schema of the
/// upload's first message.
async fn data(upload: PeekableFlightDataStream) -> Result<SendableRecordBatchStream, Status> {
    let mut decoded = uploaded(upload);
    // The first message carries the schema: read up to the first batch.
    let first = decoded
        .next()
        .await
        .transpose()
        .map_err(|e| Status::invalid_argument(format!("cannot read the uploaded data: {e}")))?;
    let schema = decoded
        .schema()
        .cloned()
        .or_else(|| first.as_ref().map(|b| b.schema()))
        .ok_or_else(|| Status::invalid_argument("the upload carries no schema"))?;
    let rest = decoded.map_err(|e| DataFusionError::External(Box::new(e)));
    let all = futures::stream::iter(first.map(Ok)).chain(rest);
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, all)))
}
