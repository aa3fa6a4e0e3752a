//! The protocol floor of benchmark (b) of `benches/flight.sh`: a Flight SQL
//! server that does no query work at all, for the load generator
//! (`benches/flight_load.rs`) to measure what the prepared-query round trip
//! itself costs on this machine.
//!
//! It answers exactly the calls a prepared lookup makes (Handshake with Basic
//! credentials, CreatePreparedStatement, then per execution DoPut of the
//! parameters, GetFlightInfo and DoGet, as `sluice serve` answers them: the
//! same tonic settings, the parameters decoded from Arrow IPC, a one-row
//! Arrow result encoded back) with `value = id` for the bound `id`. No SQL,
//! no catalog, no auth check after the handshake: whatever throughput and
//! latency the load generator sees against it is the ceiling for any server
//! speaking this protocol through the same client on the same cores.
//!
//! ```sh
//! cargo build --release --bench flight_floor
//! target/release/deps/flight_floor-* --port 50099 &
//! flight_load --uri grpc://127.0.0.1:50099 --user u --password p \
//!     --query "SELECT value FROM t WHERE id = ?" --ids 10000 --rows 1
//! ```

use arrow::array::{AsArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandPreparedStatementQuery,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use prost::Message;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status, Streaming};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

struct Floor {
    /// Bound parameter per prepared-statement handle.
    bound: Mutex<HashMap<Bytes, i64>>,
    schema: SchemaRef,
}

fn ipc_schema(schema: &Schema) -> Result<Bytes, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    let IpcMessage(bytes) = message.map_err(|e| Status::internal(e.to_string()))?;
    Ok(bytes)
}

#[tonic::async_trait]
impl FlightSqlService for Floor {
    type FlightService = Floor;

    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<BoxStream<HandshakeResponse>>, Status> {
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::from_static(b"floor"),
        };
        let mut response: Response<BoxStream<HandshakeResponse>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        response.metadata_mut().insert(
            "authorization",
            "Bearer floor"
                .parse()
                .map_err(|_| Status::internal("token"))?,
        );
        Ok(response)
    }

    async fn do_action_create_prepared_statement(
        &self,
        _query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let handle = Bytes::from(uuid::Uuid::new_v4().to_string().into_bytes());
        let params = Schema::new(vec![Field::new("0", DataType::Int64, true)]);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle,
            dataset_schema: ipc_schema(&self.schema)?,
            parameter_schema: ipc_schema(&params)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        if let Ok(mut m) = self.bound.lock() {
            m.remove(&query.prepared_statement_handle);
        }
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let data = request
            .into_inner()
            .map_err(FlightError::from)
            .try_filter(|m| futures::future::ready(!m.data_header.is_empty()));
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(data)
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let id = batches
            .first()
            .and_then(|b| b.columns().first())
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .filter(|c| !c.is_empty())
            .map(|c| c.value(0))
            .ok_or_else(|| Status::invalid_argument("bind one int64 parameter"))?;
        if let Ok(mut m) = self.bound.lock() {
            m.insert(query.prepared_statement_handle.clone(), id);
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = cmd.as_any().encode_to_vec();
        let info = FlightInfo::new()
            .try_with_schema(&self.schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(request.into_inner())
            .with_total_records(-1)
            .with_total_bytes(-1);
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let id = self
            .bound
            .lock()
            .ok()
            .and_then(|m| m.get(&query.prepared_statement_handle).copied())
            .ok_or_else(|| Status::invalid_argument("no parameter bound"))?;
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![Arc::new(Float64Array::from(vec![id as f64]))],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(self.schema.clone())
            .build(futures::stream::iter([Ok(batch)]))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port = 50099u16;
    let mut threads = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--port" => port = args.next().ok_or("--port N")?.parse()?,
            "--threads" => threads = args.next().ok_or("--threads N")?.parse()?,
            other => {
                return Err(format!("unknown option {other} (see benches/flight_floor.rs)").into())
            }
        }
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        rt.worker_threads(threads);
    }
    rt.enable_all().build()?.block_on(async move {
        let floor = Floor {
            bound: Mutex::new(HashMap::new()),
            schema: Arc::new(Schema::new(vec![Field::new(
                "value",
                DataType::Float64,
                true,
            )])),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("flight_floor: listening on {}", listener.local_addr()?);
        tonic::transport::Server::builder()
            .add_service(FlightServiceServer::new(floor))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .with_keepalive(Some(std::time::Duration::from_secs(60))),
            )
            .await?;
        Ok(())
    })
}
