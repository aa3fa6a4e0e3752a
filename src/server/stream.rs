//! Arrow data across the Flight boundary: the FlightInfo that announces a
//! result's schema, the DoGet stream that then carries exactly that schema,
//! and the Arrow data a client uploads with DoPut.
//!
//! A query's stream ([`QueryStream`]) converts every batch to the client-safe
//! types of [`super::types`], stops at the server's `query_timeout`, and
//! writes one log line when it ends, fails (with the reason), times out or is
//! dropped because the client went away.

use super::caller::{one_line, short, Caller};
use super::status;
use super::types::{client_schema, conform_batch};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::ProstMessageExt;
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage};
use arrow_flight::{SchemaAsIpc, Ticket};
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::DataFrame;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::{Request, Response, Status};

pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A DoGet response.
pub(super) type DataResponse = Response<BoxStream<FlightData>>;

/// A query's rows for its caller, from the start of its execution (see
/// [`rows_response`]).
pub(super) async fn query_response(
    caller: &Caller,
    df: DataFrame,
    sql: &str,
) -> Result<DataResponse, Status> {
    let schema = client_schema(df.schema().as_arrow());
    let batches = caller
        .timed(async { df.execute_stream().await.map_err(|e| status(e.into())) })
        .await?;
    Ok(rows_response(schema, batches, caller, sql, "planned"))
}

/// The rows of a running plan, which clients see with `schema`; `path` says
/// in the log how it was answered (`planned`, or `lookup`).
pub(super) fn rows_response(
    schema: SchemaRef,
    batches: SendableRecordBatchStream,
    caller: &Caller,
    sql: &str,
    path: &'static str,
) -> DataResponse {
    let rows = QueryStream {
        inner: Some(batches),
        schema: schema.clone(),
        deadline: caller
            .deadline()
            .map(|d| Box::pin(tokio::time::sleep_until(d))),
        log: QueryLog {
            user: caller.principal.user.clone(),
            peer: caller.peer.clone(),
            reason: None,
            path,
            sql: short(sql),
            started: Instant::now(),
            rows: 0,
            written: false,
        },
    };
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(rows)
        .map_err(Status::from);
    Response::new(Box::pin(flight))
}

/// One batch (metadata, a statement's row count) as a DoGet response.
pub(super) fn batch_response(batch: RecordBatch) -> DataResponse {
    let schema = batch.schema();
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(Status::from);
    Response::new(Box::pin(flight))
}

/// A query's batches in client types, cut at the deadline.
struct QueryStream {
    /// `None` once the query ended, failed or timed out (which frees it).
    inner: Option<SendableRecordBatchStream>,
    schema: SchemaRef,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    log: QueryLog,
}

impl QueryStream {
    fn end(&mut self, outcome: &'static str) {
        self.inner = None;
        self.log.write(outcome);
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch, FlightError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // The deadline first: a query whose batches are always ready must
        // still stop.
        if this.inner.is_some()
            && this
                .deadline
                .as_mut()
                .is_some_and(|d| d.as_mut().poll(cx).is_ready())
        {
            this.log.reason = Some("the query ran longer than the server's query_timeout".into());
            this.end("timed out");
            return Poll::Ready(Some(Err(FlightError::Tonic(Box::new(
                Status::deadline_exceeded(
                    "the query ran longer than the server's query_timeout and was cancelled",
                ),
            )))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                this.log.rows += b.num_rows();
                Poll::Ready(Some(
                    conform_batch(&b, &this.schema).map_err(FlightError::Arrow),
                ))
            }
            Poll::Ready(Some(Err(e))) => {
                let error = status(e.into());
                this.log.reason = Some(one_line(error.message()));
                this.end("failed");
                Poll::Ready(Some(Err(FlightError::Tonic(Box::new(error)))))
            }
            Poll::Ready(None) => {
                this.end("done");
                Poll::Ready(None)
            }
        }
    }
}

/// One info line per query, written when its stream ends, or when it is
/// dropped before (the client went away).
struct QueryLog {
    user: String,
    /// The client's address.
    peer: String,
    /// Why the query failed.
    reason: Option<String>,
    /// `planned`, or `lookup` for a prepared lookup answered without planning.
    path: &'static str,
    sql: String,
    started: Instant,
    rows: usize,
    written: bool,
}

impl QueryLog {
    fn write(&mut self, outcome: &str) {
        if std::mem::replace(&mut self.written, true) {
            return;
        }
        match &self.reason {
            None => tracing::info!(
                user = %self.user,
                peer = %self.peer,
                rows = self.rows,
                path = self.path,
                ms = self.started.elapsed().as_millis() as u64,
                outcome,
                sql = %self.sql,
                "query"
            ),
            Some(reason) => tracing::info!(
                user = %self.user,
                peer = %self.peer,
                rows = self.rows,
                path = self.path,
                ms = self.started.elapsed().as_millis() as u64,
                outcome,
                reason = %reason,
                sql = %self.sql,
                "query failed"
            ),
        }
    }
}

impl Drop for QueryLog {
    fn drop(&mut self) {
        self.write("cancelled by the client");
    }
}

/// A FlightInfo announcing `schema`, answered by DoGet of `ticket`.
pub(super) fn flight_info(
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
pub(super) fn command_info(
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

/// `schema` as an IPC message (prepared statements, GetSchema).
pub(super) fn ipc_schema(schema: &Schema) -> Result<Bytes, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    let IpcMessage(bytes) =
        message.map_err(|e| Status::internal(format!("cannot encode a schema: {e}")))?;
    Ok(bytes)
}

/// The result of a statement that writes: its row count.
pub(super) fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::Int64,
        false,
    )]))
}

pub(super) fn count_batch(rows: i64) -> Result<RecordBatch, Status> {
    RecordBatch::try_new(
        count_schema(),
        vec![Arc::new(arrow::array::Int64Array::from(vec![rows]))],
    )
    .map_err(|e| Status::internal(e.to_string()))
}

/// Every batch of a DoPut (parameters).
pub(super) async fn read_batches(
    stream: PeekableFlightDataStream,
) -> Result<Vec<RecordBatch>, Status> {
    uploaded(stream)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the uploaded data: {e}")))
}

/// The batches of a DoPut, decoded as they arrive.
pub(super) fn uploaded(stream: PeekableFlightDataStream) -> FlightRecordBatchStream {
    // Clients may send the command alone in a first message without any data.
    let data = stream
        .map_err(FlightError::from)
        .try_filter(|m| futures::future::ready(!m.data_header.is_empty()));
    FlightRecordBatchStream::new_from_flight_data(data)
}
