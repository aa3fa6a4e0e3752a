//! The gRPC service: arrow-flight's Flight SQL dispatch, plus the RPCs its
//! trait does not route to an implementation (`GetSchema`, which ADBC's
//! ExecuteSchema sends for an unprepared statement).

use super::service::FlightSqlServer;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, Command};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use prost::Message;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

/// The service registered with tonic.
#[derive(Clone)]
pub struct Flight(pub Arc<FlightSqlServer>);

type Inner = FlightSqlServer;

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
        FlightService::handshake(self.0.as_ref(), request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(self.0.as_ref(), request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        FlightService::get_flight_info(self.0.as_ref(), request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        FlightService::poll_flight_info(self.0.as_ref(), request).await
    }

    /// The schema GetFlightInfo would announce, without running anything
    /// (a statement that writes reports the schema of its row count).
    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let any = Any::decode(&*request.get_ref().cmd)
            .map_err(|e| Status::invalid_argument(format!("not a Flight SQL command: {e}")))?;
        let command = Command::try_from(any)
            .map_err(|e| Status::invalid_argument(format!("not a Flight SQL command: {e}")))?;
        let schema = match command {
            Command::CommandStatementQuery(q) => {
                let p = self.0.caller(&request)?;
                self.0.statement_schema(&p, &q.query).await?
            }
            Command::CommandPreparedStatementQuery(q) => {
                let p = self.0.caller(&request)?;
                self.0
                    .prepared_schema(&p, &q.prepared_statement_handle)
                    .await?
            }
            _ => {
                let info = FlightService::get_flight_info(self.0.as_ref(), request)
                    .await?
                    .into_inner();
                return Ok(Response::new(SchemaResult {
                    schema: info.schema,
                }));
            }
        };
        Ok(Response::new(SchemaResult {
            schema: super::service::ipc_schema(&schema)?,
        }))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        FlightService::do_get(self.0.as_ref(), request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        FlightService::do_put(self.0.as_ref(), request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(self.0.as_ref(), request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        FlightService::do_action(self.0.as_ref(), request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(self.0.as_ref(), request).await
    }
}
