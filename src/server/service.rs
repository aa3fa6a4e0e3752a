//! The Flight SQL service: arrow-flight's [`FlightSqlService`] trait, one
//! method per RPC, each turning its request into a [`Caller`] and handing the
//! command to the module of its concern:
//!
//! - ad-hoc queries and updates, and their tickets, to [`super::statements`];
//! - prepared statements and their parameters, to [`super::prepared`];
//! - bulk ingest, to [`super::ingest`];
//! - catalogs, schemas, tables, SqlInfo and XDBC types, to [`super::metadata`];
//! - session options (the action fallback), to [`super::session`];
//! - Handshake, to [`super::auth`].
//!
//! The state kept between calls (results, plans, prepared statements) lives
//! in [`HandleStore`]s. The warehouse's engine is private to this file and
//! used only to make each request's [`Caller`].

use super::auth::{self, Auth};
use super::caller::Caller;
use super::handles::HandleStore;
use super::ingest::ingest;
use super::metadata;
use super::prepared::{self, Prepared};
use super::session;
use super::statements;
use super::status;
use super::stream::{batch_response, command_info, BoxStream, DataResponse};
use crate::sql::{Engine, CATALOG};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};

/// Limits applied to every query.
#[derive(Debug, Clone, Default)]
pub struct QueryLimits {
    pub timeout: Option<Duration>,
    pub memory: Option<usize>,
}

/// The Flight SQL service.
pub struct FlightSqlServer {
    /// Reached only through [`FlightSqlServer::caller`].
    engine: Engine,
    limits: QueryLimits,
    pub(super) auth: Arc<Auth>,
    /// Results of statements that wrote, waiting for their DoGet.
    pub(super) results: HandleStore<RecordBatch>,
    /// Plans GetFlightInfo made, waiting for their DoGet.
    pub(super) plans: HandleStore<datafusion::logical_expr::LogicalPlan>,
    pub(super) prepared: HandleStore<Prepared>,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
}

impl FlightSqlServer {
    pub fn new(engine: Engine, auth: Arc<Auth>, limits: QueryLimits) -> crate::Result<Self> {
        Ok(FlightSqlServer {
            engine,
            limits,
            auth,
            results: HandleStore::new(statements::RESULTS_KEEP, statements::RESULTS_MAX),
            plans: HandleStore::new(statements::PLANNED_KEEP, statements::PLANNED_MAX),
            prepared: HandleStore::new(prepared::PREPARED_KEEP, prepared::PREPARED_MAX),
            sql_info: metadata::sql_info()?,
            xdbc: metadata::xdbc_info()?,
        })
    }

    /// The caller of a request and their engine; a refused call is logged
    /// (warn). Not an `async fn`: the future must not borrow the request (a
    /// streaming request is not `Sync`).
    pub(super) fn caller<T>(
        &self,
        request: &Request<T>,
    ) -> impl std::future::Future<Output = Result<Caller, Status>> + Send + '_ {
        let header = auth::authorization(request.metadata());
        let peer = auth::peer(request);
        async move {
            let p = match self.auth.check_header(header.as_deref()).await {
                Ok(p) => p,
                Err(e) => {
                    let user = self.auth.claimed_user(header.as_deref());
                    auth::log_refused(&user, &peer, &e);
                    return Err(e);
                }
            };
            Ok(Caller::new(p, &self.engine, &self.auth, &self.limits).with_peer(peer))
        }
    }
}

/// A FlightInfo, as a response.
fn info(info: Result<FlightInfo, Status>) -> Result<Response<FlightInfo>, Status> {
    info.map(Response::new)
}

/// One metadata batch, as a DoGet response.
fn metadata_batch(batch: crate::Result<RecordBatch>) -> Result<DataResponse, Status> {
    batch.map(batch_response).map_err(status)
}

/// An empty listing (keys: the warehouse has none), as a DoGet response.
fn empty(schema: SchemaRef) -> Result<DataResponse, Status> {
    Ok(batch_response(RecordBatch::new_empty(schema)))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<BoxStream<HandshakeResponse>>, Status> {
        auth::handshake(&self.auth, request).await
    }

    // Ad-hoc statements.

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        info(
            self.statement_info(&caller, query, request.into_inner())
                .await,
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        let caller = self.caller(&request).await?;
        self.statement_rows(&caller, ticket).await
    }

    async fn do_put_statement_update(
        &self,
        update: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request).await?;
        self.statement_update(&caller, update).await
    }

    // Prepared statements.

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        self.create_prepared(&caller, query).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let caller = self.caller(&request).await?;
        self.close_prepared(&caller, query);
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        self.bind_parameters(&caller, query, request.into_inner())
            .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        info(self.prepared_info(&caller, cmd, request.into_inner()).await)
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        let caller = self.caller(&request).await?;
        self.prepared_rows(&caller, query).await
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request).await?;
        self.prepared_update(&caller, query, request.into_inner())
            .await
    }

    // Bulk ingest.

    async fn do_put_statement_ingest(
        &self,
        cmd: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request).await?;
        ingest(&caller, cmd, request.into_inner()).await
    }

    // Metadata.

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder().schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        metadata_batch(builder.build().map_err(Into::into))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        let caller = self.caller(&request).await?;
        metadata_batch(metadata::db_schemas(caller.engine(), query).await)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        let caller = self.caller(&request).await?;
        metadata_batch(metadata::tables(caller.engine(), query).await)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder().schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        for t in metadata::TABLE_TYPES {
            builder.append(t);
        }
        metadata_batch(builder.build().map_err(Into::into))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        self.caller(&request).await?;
        let batch = query.into_builder(&self.sql_info).build();
        metadata_batch(batch.map_err(Into::into))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder(&self.xdbc).schema();
        command_info(&query, &schema, request)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        self.caller(&request).await?;
        let batch = query.into_builder(&self.xdbc).build();
        metadata_batch(batch.map_err(Into::into))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(&query, &metadata::primary_keys_schema(), request)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        self.caller(&request).await?;
        empty(metadata::primary_keys_schema())
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        self.caller(&request).await?;
        empty(metadata::foreign_keys_schema())
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        self.caller(&request).await?;
        empty(metadata::foreign_keys_schema())
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<DataResponse, Status> {
        self.caller(&request).await?;
        empty(metadata::foreign_keys_schema())
    }

    // Session options.

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(session::action_types())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let caller = self.caller(&request).await?;
        let body = session::act(&caller, &self.auth, request.into_inner())?;
        let out = arrow_flight::Result { body };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(out)]))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
