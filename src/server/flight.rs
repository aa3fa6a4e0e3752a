//! The gRPC service: arrow-flight's Flight SQL dispatch, plus the RPCs its
//! trait does not route to an implementation (`GetSchema`, which ADBC's
//! ExecuteSchema sends for an unprepared statement).
//!
//! Every RPC passes through here, so this is also where the server protects
//! itself from what a client sends or a bug does:
//! - a command that is not a well-formed Flight SQL message is refused with
//!   `INVALID_ARGUMENT` (arrow-flight's dispatch reports it as `INTERNAL`);
//! - a panic while handling a request, or while producing its result stream, is
//!   caught, logged with the request, and becomes an `INTERNAL` error for that
//!   client alone;
//! - every request in flight is counted, so that a shutdown can say what it
//!   waits for and what it cancels.

use super::service::FlightSqlServer;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, Command};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use futures::{FutureExt, Stream, StreamExt};
use prost::Message;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

/// The service registered with tonic.
#[derive(Clone)]
pub struct Flight {
    inner: Arc<FlightSqlServer>,
    in_flight: Arc<AtomicUsize>,
}

impl Flight {
    pub fn new(inner: Arc<FlightSqlServer>, in_flight: Arc<AtomicUsize>) -> Self {
        Flight { inner, in_flight }
    }

    /// Runs one RPC: counted while it runs, its panics caught.
    async fn call<T, F>(&self, what: String, work: F) -> Result<Response<T>, Status>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        let _running = Running::new(&self.in_flight);
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(panicked(&what, panic.as_ref())),
        }
    }

    /// Runs one RPC whose result is a stream: counted until the stream ends or
    /// is dropped, panics caught in the call and while the stream is polled.
    async fn call_stream<I, F>(
        &self,
        what: String,
        work: F,
    ) -> Result<Response<BoxStream<I>>, Status>
    where
        I: Send + 'static,
        F: Future<Output = Result<Response<BoxStream<I>>, Status>>,
    {
        let running = Running::new(&self.in_flight);
        let response = match AssertUnwindSafe(work).catch_unwind().await {
            Ok(result) => result?,
            Err(panic) => return Err(panicked(&what, panic.as_ref())),
        };
        let (metadata, stream, extensions) = response.into_parts();
        let stream = AssertUnwindSafe(stream)
            .catch_unwind()
            .map(move |item| {
                let _still_running = &running;
                match item {
                    Ok(item) => item,
                    Err(panic) => Err(panicked(&what, panic.as_ref())),
                }
            })
            // After a panic the inner stream is gone: end the response there.
            .scan(false, |failed, item| {
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
            });
        let stream: BoxStream<I> = Box::pin(stream);
        Ok(Response::from_parts(metadata, stream, extensions))
    }
}

type Inner = FlightSqlServer;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Counts a request in flight for as long as it lives.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Running(counter.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The status a client gets for a panic, which is logged with its request.
fn panicked(what: &str, panic: &(dyn std::any::Any + Send)) -> Status {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    tracing::error!(request = %what, "a request panicked (a bug in sluice): {message}");
    Status::internal(format!(
        "internal error (a bug in sluice, please report it): {message}; the server is still running"
    ))
}

/// Decodes a Flight SQL command (`Any` plus the message it wraps); a malformed
/// one is the client's error.
pub(crate) fn command(bytes: &[u8]) -> Result<Command, Status> {
    let any = Any::decode(bytes)
        .map_err(|e| Status::invalid_argument(format!("not a Flight SQL command: {e}")))?;
    let type_url = any.type_url.clone();
    Command::try_from(any).map_err(|e| {
        Status::invalid_argument(format!(
            "malformed Flight SQL command `{type_url}`: {}",
            e.to_string().trim_start_matches("Parser error: ")
        ))
    })
}

/// A short description of a request for the log: the RPC and its SQL or
/// command kind.
pub(crate) fn describe(rpc: &str, command: Option<&Command>) -> String {
    let sql = match command {
        Some(Command::CommandStatementQuery(q)) => Some(q.query.as_str()),
        Some(Command::CommandStatementUpdate(q)) => Some(q.query.as_str()),
        Some(Command::ActionCreatePreparedStatementRequest(q)) => Some(q.query.as_str()),
        _ => None,
    };
    match (sql, command) {
        (Some(sql), _) => {
            let cut: String = sql.chars().take(200).collect();
            let more = if cut.len() < sql.len() { "..." } else { "" };
            format!("{rpc} `{cut}{more}`")
        }
        (None, Some(c)) => format!("{rpc} {}", c.type_url().rsplit('.').next().unwrap_or("")),
        (None, None) => rpc.to_string(),
    }
}

/// Flight SQL actions whose body is a Flight SQL message.
const SQL_ACTIONS: [&str; 8] = [
    "CreatePreparedStatement",
    "ClosePreparedStatement",
    "CreatePreparedSubstraitPlan",
    "BeginTransaction",
    "EndTransaction",
    "BeginSavepoint",
    "EndSavepoint",
    "CancelQuery",
];

#[tonic::async_trait]
impl FlightService for Flight {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let inner = self.inner.clone();
        self.call_stream("Handshake".into(), async move {
            FlightService::handshake(inner.as_ref(), request).await
        })
        .await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let inner = self.inner.clone();
        self.call_stream("ListFlights".into(), async move {
            FlightService::list_flights(inner.as_ref(), request).await
        })
        .await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let what = describe("GetFlightInfo", Some(&command(&request.get_ref().cmd)?));
        self.call(
            what,
            FlightService::get_flight_info(self.inner.as_ref(), request),
        )
        .await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let what = describe("PollFlightInfo", Some(&command(&request.get_ref().cmd)?));
        self.call(
            what,
            FlightService::poll_flight_info(self.inner.as_ref(), request),
        )
        .await
    }

    /// The schema GetFlightInfo would announce, without running anything
    /// (a statement that writes reports the schema of its row count).
    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let command = command(&request.get_ref().cmd)?;
        let what = describe("GetSchema", Some(&command));
        let inner = self.inner.clone();
        self.call(what, async move {
            let schema = match command {
                Command::CommandStatementQuery(q) => {
                    let caller = inner.caller(&request).await?;
                    inner.statement_schema(&caller, &q.query).await?
                }
                Command::CommandPreparedStatementQuery(q) => {
                    let caller = inner.caller(&request).await?;
                    inner
                        .prepared_schema(&caller, &q.prepared_statement_handle)
                        .await?
                }
                _ => {
                    let info = FlightService::get_flight_info(inner.as_ref(), request)
                        .await?
                        .into_inner();
                    return Ok(Response::new(SchemaResult {
                        schema: info.schema,
                    }));
                }
            };
            Ok(Response::new(SchemaResult {
                schema: super::stream::ipc_schema(&schema)?,
            }))
        })
        .await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let what = describe("DoGet", Some(&command(&request.get_ref().ticket)?));
        let inner = self.inner.clone();
        self.call_stream(what, async move {
            FlightService::do_get(inner.as_ref(), request).await
        })
        .await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let inner = self.inner.clone();
        self.call_stream("DoPut".into(), async move {
            FlightService::do_put(inner.as_ref(), request).await
        })
        .await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let inner = self.inner.clone();
        self.call_stream("DoExchange".into(), async move {
            FlightService::do_exchange(inner.as_ref(), request).await
        })
        .await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let action = &request.get_ref().r#type;
        let what = if SQL_ACTIONS.contains(&action.as_str()) {
            describe(action, Some(&command(&request.get_ref().body)?))
        } else {
            format!("DoAction {action}")
        };
        let inner = self.inner.clone();
        self.call_stream(what, async move {
            FlightService::do_action(inner.as_ref(), request).await
        })
        .await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let inner = self.inner.clone();
        self.call_stream("ListActions".into(), async move {
            FlightService::list_actions(inner.as_ref(), request).await
        })
        .await
    }
}
