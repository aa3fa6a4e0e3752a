//! The SQL front end: one DataFusion session over the warehouse.
//!
//! Every Delta table `<root>/<schema>/<table>` is `schema.table`; unqualified names
//! resolve in the default schema; files can be queried by path
//! (`SELECT * FROM 'x.parquet'`) or with `read_csv` / `read_json` / `read_parquet`.

mod file_functions;
mod output;

pub use output::{write_batches, OutputFormat};

use crate::error::{Error, Result};
use crate::warehouse::{Warehouse, WarehouseCatalog};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use std::sync::Arc;

/// The catalog name under which the warehouse appears.
pub const CATALOG: &str = "sluice";

/// A query engine bound to one warehouse.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    catalog: Arc<WarehouseCatalog>,
    warehouse: Warehouse,
    default_schema: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("warehouse", &self.warehouse.root().as_str())
            .field("default_schema", &self.default_schema)
            .finish()
    }
}

impl Engine {
    /// Builds a session whose catalog is `warehouse`.
    pub async fn new(warehouse: Warehouse, default_schema: &str) -> Result<Self> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, default_schema)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true);
        let runtime = RuntimeEnvBuilder::new()
            .build_arc()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let root = warehouse.root().clone();
        if root.scheme() != "file" {
            let store_url = url::Url::parse(&format!(
                "{}://{}",
                root.scheme(),
                root.host_str().unwrap_or_default()
            ))
            .map_err(|e| Error::Internal(e.to_string()))?;
            runtime.register_object_store(&store_url, warehouse.store());
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
            .build();
        let ctx = SessionContext::new_with_state(state).enable_url_table();
        let catalog = Arc::new(WarehouseCatalog::try_new(warehouse.clone(), default_schema).await?);
        let weak = ctx.state_weak_ref();
        catalog.bind_session(move || weak.upgrade().map(|s| s.read().clone()));
        ctx.register_catalog(CATALOG, catalog.clone());
        file_functions::register(&ctx);
        Ok(Engine {
            ctx,
            catalog,
            warehouse,
            default_schema: default_schema.to_string(),
        })
    }

    /// The underlying DataFusion session.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The warehouse this engine reads.
    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// Sets the bare-name map of models (see [`crate::warehouse::Aliases`]).
    pub fn set_aliases(&self, aliases: crate::warehouse::Aliases) {
        self.catalog.set_aliases(aliases);
    }

    /// Reads `schema.table` from `state` (a version this process just committed)
    /// until [`Engine::unpin`]; saves reloading the table's log.
    pub fn pin(&self, schema: &str, table: &str, state: deltalake::DeltaTable) {
        self.catalog.pin(schema, table, Some(state));
    }

    /// Forgets a pinned table (it is read from storage again).
    pub fn unpin(&self, schema: &str, table: &str) {
        self.catalog.pin(schema, table, None);
    }

    /// Schema of unqualified names.
    pub fn default_schema(&self) -> &str {
        &self.default_schema
    }

    /// Plans `sql` (DDL and DML run when the plan is executed).
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.ctx
            .sql(sql)
            .await
            .map_err(|e| explain_plan_error(e.into(), sql))
    }

    /// Runs `sql` and collects the result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let df = self.sql(sql).await?;
        df.collect().await.map_err(Error::from)
    }
}

/// Adds the missing-table hint DataFusion does not give.
fn explain_plan_error(err: Error, _sql: &str) -> Error {
    match err {
        Error::Sql(msg) if msg.contains("table '") && msg.contains("' not found") => {
            Error::Sql(format!(
                "{msg}; tables are `schema.table` (see `SELECT * FROM information_schema.tables`), and files can be read with 'path/file.parquet' or read_csv('path')"
            ))
        }
        other => other,
    }
}
