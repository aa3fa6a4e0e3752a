//! The SQL front end: one DataFusion session over the warehouse.
//!
//! Every Delta table `<root>/<schema>/<table>` is `schema.table`; unqualified names
//! resolve in the default schema; files can be queried by path
//! (`SELECT * FROM 'x.parquet'`) or with `read_csv` / `read_json` / `read_parquet`.

mod capped;
mod checked;
mod checked_sum;
pub mod cluster;
pub mod deps;
mod depth;
mod file_checks;
pub(crate) mod file_functions;
pub mod lineage;
mod output;
pub mod parser;
pub mod planner;
mod statements;
mod suggest;
pub mod types;

pub use depth::MAX_EXPRESSION_DEPTH;
pub use parser::{input_state, split_statements, split_statements_with_lines, InputState};
pub use planner::TimeTravel;

pub use output::{write_batches, BatchWriter, OutputFormat};
pub use statements::{is_read_only, is_statement, Executed, IngestMode};

use crate::error::{Error, Result};
use crate::warehouse::{Warehouse, WarehouseCatalog};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, TableFunctionImpl};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::planner::RelationPlanner;
use datafusion::physical_planner::ExtensionPlanner;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// The catalog name under which the warehouse appears.
pub use crate::warehouse::CATALOG;

/// A query engine bound to one warehouse.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    catalog: Arc<WarehouseCatalog>,
    warehouse: Warehouse,
    default_schema: String,
    /// What the extensions installed (shared by sessions).
    extensions: Arc<Extensions>,
    /// Queries are planned over workers (`[cluster] workers`).
    distributed: bool,
}

/// What extensions installed into an engine: values by type (an extension's
/// settings, hooks) and the declared reads of table functions.
#[derive(Default)]
struct Extensions {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    reads: deps::TableFunctionReads,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("warehouse", &self.warehouse.root().as_str())
            .field("default_schema", &self.default_schema)
            .finish()
    }
}

/// Session settings beyond the warehouse.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Memory a query may use before operators spill to disk (bytes). `None`:
    /// `SLUICE_MEMORY_LIMIT` (e.g. `4GiB`) if set, else 75% of physical memory.
    pub memory_limit: Option<usize>,
    /// How AS OF joins run. `None`: `SLUICE_ASOF_MODE` (auto, merge, probe, stream) if
    /// set, else auto.
    pub asof_mode: Option<crate::asof::AsOfMode>,
    /// Plan queries over these workers (`[cluster] workers`); `None` runs
    /// everything in this process.
    pub cluster: Option<cluster::ClusterOptions>,
}

/// The memory a query may use: `limit`, else `SLUICE_MEMORY_LIMIT`, else 75%
/// of physical memory.
pub fn memory_limit(limit: Option<usize>) -> Result<usize> {
    match (limit, std::env::var("SLUICE_MEMORY_LIMIT")) {
        (Some(l), _) => Ok(l),
        (None, Ok(v)) => {
            parse_size(&v).map_err(|m| Error::config("SLUICE_MEMORY_LIMIT", m.to_string()))
        }
        (None, Err(_)) => Ok(default_memory_limit()),
    }
}

/// A runtime whose operators spill when `limit` bytes are in use (sorts, the
/// AS OF join's inputs), reading the warehouse's object store.
pub(crate) fn runtime_env(
    warehouse: &Warehouse,
    limit: usize,
) -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(
            datafusion::execution::memory_pool::FairSpillPool::new(limit),
        ))
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
    Ok(runtime)
}

/// sluice's functions beyond DataFusion's, in `state`: every session has
/// them, workers' too (a plan names its functions; the session running it
/// looks them up by name).
pub(crate) fn install_functions(
    state: &mut datafusion::execution::session_state::SessionState,
    limit: usize,
) -> Result<()> {
    let functions = state.scalar_functions().clone();
    for f in capped::capped_functions(&functions, limit) {
        state.register_udf(Arc::new(f))?;
    }
    // DuckDB's name for regexp_like (a partial match, the same flags),
    // which dbt packages' duckdb__ macros call.
    if let Some(like) = state.scalar_functions().get("regexp_like").cloned() {
        state.register_udf(Arc::new(
            like.as_ref().clone().with_aliases(["regexp_matches"]),
        ))?;
    }
    state.register_udaf(Arc::new(
        datafusion::logical_expr::AggregateUDF::new_from_impl(checked_sum::CheckedSum::default()),
    ))?;
    Ok(())
}

/// `512MiB`, `4GiB`, `2GB`, `1000000` (bytes).
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| Error::invalid(format!("`{s}` is not a size such as 512MiB or 4GiB")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024.0f64.powi(4),
        other => {
            return Err(Error::invalid(format!(
                "`{s}`: unknown unit `{other}` (use MiB, GiB, MB, GB)"
            )))
        }
    };
    Ok((n * mult) as usize)
}

/// DataFusion's optimizer rules, with the AS OF filter push-down first (before
/// projection push-down puts projections between filters and joins).
fn optimizer_rules() -> Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Optimizer::new().rules;
    rules.insert(0, Arc::new(crate::asof::PushLeftFiltersThroughAsOf));
    // Before DataFusion's simplifier folds constants with wrapping arithmetic.
    rules.insert(0, Arc::new(checked::CheckedConstants));
    rules
}

/// 75% of physical memory (Linux), or 4 GiB when it cannot be read.
fn default_memory_limit() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<usize>().ok())
    });
    match total_kib {
        Some(k) => k / 4 * 3 * 1024,
        None => 4 << 30,
    }
}

/// Builds an [`Engine`]: the warehouse session plus what extensions add
/// through its extension points (schemas, table functions with the tables
/// they read, planners, typed values), in the spirit of DataFusion's
/// `SessionStateBuilder`. The engine itself knows no extension: the feature
/// store installs its `online` schema and `historical_features` here.
pub struct EngineBuilder {
    warehouse: Warehouse,
    default_schema: String,
    options: EngineOptions,
    schemas: Vec<(String, Arc<dyn SchemaProvider>)>,
    table_functions: Vec<(String, Arc<dyn TableFunctionImpl>)>,
    extension_planners: Vec<Arc<dyn ExtensionPlanner + Send + Sync>>,
    relation_planners: Vec<Arc<dyn RelationPlanner>>,
    extensions: Extensions,
}

impl EngineBuilder {
    /// Session settings (memory limit, AS OF mode).
    pub fn options(mut self, options: &EngineOptions) -> Self {
        self.options = options.clone();
        self
    }

    /// The warehouse the engine will read.
    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// A schema of the warehouse catalog that is not a folder of Delta tables
    /// (e.g. `online`).
    pub fn schema(mut self, name: &str, schema: Arc<dyn SchemaProvider>) -> Self {
        self.schemas.push((name.to_string(), schema));
        self
    }

    /// A table function; `reads` declares the tables it reads from its
    /// arguments, so models calling it depend on them ([`deps`]).
    pub fn table_function(
        mut self,
        name: &str,
        function: Arc<dyn TableFunctionImpl>,
        reads: Option<deps::ReadsFn>,
    ) -> Self {
        if let Some(reads) = reads {
            self.extensions.reads.insert(name, reads);
        }
        self.table_functions.push((name.to_string(), function));
        self
    }

    /// Plans logical extension nodes into operators (after Delta's and the
    /// AS OF join's).
    pub fn extension_planner(mut self, planner: Arc<dyn ExtensionPlanner + Send + Sync>) -> Self {
        self.extension_planners.push(planner);
        self
    }

    /// Plans table factors of the SQL (after the AS OF join's).
    pub fn relation_planner(mut self, planner: Arc<dyn RelationPlanner>) -> Self {
        self.relation_planners.push(planner);
        self
    }

    /// A value extensions find again with [`Engine::extension`] (one per type).
    pub fn extension<T: Any + Send + Sync>(mut self, value: Arc<T>) -> Self {
        self.extensions.values.insert(TypeId::of::<T>(), value);
        self
    }

    /// Builds the session whose catalog is the warehouse.
    pub async fn build(self) -> Result<Engine> {
        let EngineBuilder {
            warehouse,
            default_schema,
            options,
            schemas,
            table_functions,
            extension_planners,
            relation_planners,
            extensions,
        } = self;
        let default_schema = default_schema.as_str();
        let options = &options;
        let catalog = Arc::new(WarehouseCatalog::try_new(warehouse.clone(), default_schema).await?);
        let tt = TimeTravel {
            warehouse: warehouse.clone(),
            catalog: catalog.clone(),
            default_schema: default_schema.to_string(),
        };
        let front: crate::warehouse::SqlFrontEndFn = Arc::new(move |state, sql| {
            let tt = tt.clone();
            Box::pin(async move { planner::plan_sql(&state, &sql, &tt).await })
        });
        let limit = memory_limit(options.memory_limit)?;
        let asof_mode = match (options.asof_mode, std::env::var("SLUICE_ASOF_MODE")) {
            (Some(m), _) => m,
            (None, Ok(v)) => crate::asof::AsOfMode::parse(&v).ok_or_else(|| {
                Error::config(
                    "SLUICE_ASOF_MODE",
                    format!("`{v}`: use auto, merge, probe or stream"),
                )
            })?,
            (None, Err(_)) => crate::asof::AsOfMode::Auto,
        };
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, default_schema)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_usize(
                "datafusion.execution.sort_spill_reservation_bytes",
                (limit / 16).clamp(1 << 20, 16 << 20),
            )
            .with_extension(Arc::new(crate::warehouse::SqlFrontEnd(front)))
            .with_extension(Arc::new(asof_mode));
        let runtime = runtime_env(&warehouse, limit)?;
        let config = match &options.cluster {
            Some(c) => {
                if warehouse.root().scheme() == "memory" {
                    return Err(Error::config(
                        "cluster workers",
                        "a memory:// warehouse cannot be read by workers: use a local folder every worker sees, or s3://",
                    ));
                }
                cluster::cluster_config(config, cluster::Channels::new(c))
            }
            None => config,
        };
        let query_planner = Arc::new(checked::CheckedPlanner(planner::SluiceQueryPlanner::new(
            extension_planners,
        )));
        let config = match options.cluster {
            Some(_) => config.with_extension(Arc::new(crate::warehouse::NestedPlanner(
                query_planner.clone(),
            ))),
            None => config,
        };
        let builder = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_query_planner(query_planner)
            .with_relation_planners(
                std::iter::once(
                    Arc::new(planner::asof::AsOfRelationPlanner) as Arc<dyn RelationPlanner>
                )
                .chain(relation_planners)
                .collect(),
            )
            .with_optimizer_rules(optimizer_rules())
            .with_physical_optimizer_rules(checked::physical_optimizer_rules());
        // The distributed planner wraps the query planner set above (so it
        // comes after it): our planner plans, then it cuts stages.
        let builder = match &options.cluster {
            Some(c) => {
                use datafusion_distributed::{DistributedExt, SessionStateBuilderExt};
                builder
                    .with_distributed_worker_resolver(cluster::StaticWorkers(c.workers.clone()))
                    .with_distributed_planner()
            }
            None => builder,
        };
        let mut state = builder.build();
        if let Some(c) = &options.cluster {
            for (key, value) in &c.settings {
                let name = format!("distributed.{key}");
                state
                    .config_mut()
                    .options_mut()
                    .set(&name, value)
                    .map_err(|e| {
                        Error::InvalidValue(format!(
                            "[cluster.settings] {key} = {value:?}: {e}; the settings are datafusion-distributed's (compression = \"lz4\" | \"zstd\" | \"none\", shuffle_batch_size, file_scan_config_bytes_per_partition, max_tasks_per_stage, broadcast_joins, ...)"
                        ))
                    })?;
            }
        }
        install_functions(&mut state, limit)?;
        let ctx = file_functions::enable_url_tables(SessionContext::new_with_state(state));
        let weak = ctx.state_weak_ref();
        catalog.bind_session(move || weak.upgrade().map(|s| s.read().clone()));
        if options.cluster.is_some() {
            catalog.scan_as_parquet(true);
        }
        ctx.register_catalog(CATALOG, catalog.clone());
        file_functions::register(&ctx);
        for (name, schema) in schemas {
            catalog.set_extra_schema(&name, schema);
        }
        for (name, function) in table_functions {
            ctx.register_udtf(&name, function);
        }
        Ok(Engine {
            ctx,
            catalog,
            warehouse,
            default_schema: default_schema.to_string(),
            extensions: Arc::new(extensions),
            distributed: options.cluster.is_some(),
        })
    }
}

impl Engine {
    /// A builder of an engine over `warehouse` whose unqualified names resolve
    /// in `default_schema`.
    pub fn builder(warehouse: Warehouse, default_schema: &str) -> EngineBuilder {
        EngineBuilder {
            warehouse,
            default_schema: default_schema.to_string(),
            options: EngineOptions::default(),
            schemas: Vec::new(),
            table_functions: Vec::new(),
            extension_planners: Vec::new(),
            relation_planners: Vec::new(),
            extensions: Extensions::default(),
        }
    }

    /// Builds a session whose catalog is `warehouse`, with no extension.
    pub async fn new(warehouse: Warehouse, default_schema: &str) -> Result<Self> {
        Self::builder(warehouse, default_schema).build().await
    }

    /// [`Engine::new`] with explicit settings.
    pub async fn with_options(
        warehouse: Warehouse,
        default_schema: &str,
        options: &EngineOptions,
    ) -> Result<Self> {
        Self::builder(warehouse, default_schema)
            .options(options)
            .build()
            .await
    }

    /// The value of type `T` an extension installed, if any.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let value = self.extensions.values.get(&TypeId::of::<T>())?.clone();
        value.downcast::<T>().ok()
    }

    /// The tables the engine's table functions declared they read.
    pub fn table_function_reads(&self) -> &deps::TableFunctionReads {
        &self.extensions.reads
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

    /// Plans one statement with sluice's front end (AS OF joins, time travel)
    /// without running anything.
    pub async fn plan(&self, sql: &str) -> Result<datafusion::logical_expr::LogicalPlan> {
        let state = self.ctx.state();
        let tt = TimeTravel {
            warehouse: self.warehouse.clone(),
            catalog: self.catalog.clone(),
            default_schema: self.default_schema.clone(),
        };
        match planner::plan_sql(&state, sql, &tt).await {
            Ok(plan) => Ok(plan),
            Err(e) => {
                let e: Error = e.into();
                Err(match self.suggest_table(&e, sql).await {
                    Some(message) => match e {
                        Error::NotFound { object, source, .. } => Error::NotFound {
                            object,
                            message,
                            source,
                        },
                        other => other,
                    },
                    None => explain_plan_error(e, sql),
                })
            }
        }
    }

    /// Plans and runs one statement: DDL and DML change the warehouse now;
    /// a query's rows come from the returned frame.
    pub async fn execute(&self, sql: &str) -> Result<Executed> {
        let plan = self.plan(sql).await?;
        self.run_plan(plan)
            .await
            .map_err(|e| explain_plan_error(e, sql))
    }

    /// [`Engine::execute`] as a frame: a statement that changed rows yields one
    /// row with their `count`, other statements an empty frame.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        match self.execute(sql).await? {
            Executed::Rows(df) => Ok(df),
            Executed::Changed { rows: Some(n) } => {
                Ok(self.ctx.read_batch(statements::count_batch(n)?)?)
            }
            Executed::Changed { rows: None } => Ok(self.ctx.read_empty()?),
        }
    }

    /// Runs `sql` and collects the result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let df = self.sql(sql).await?;
        df.collect().await.map_err(Error::from)
    }

    /// This engine with other session settings: the schema of unqualified
    /// names and the memory one query may use (a pool of its own). Shares the
    /// catalog, object stores and disk manager.
    pub fn with_session(
        &self,
        default_schema: Option<&str>,
        memory_limit: Option<usize>,
    ) -> Engine {
        let mut state = self.ctx.state();
        let schema = default_schema.unwrap_or(&self.default_schema).to_string();
        state.config_mut().options_mut().catalog.default_schema = schema.clone();
        if let Some(limit) = memory_limit {
            let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
                .with_memory_pool(Arc::new(
                    datafusion::execution::memory_pool::FairSpillPool::new(limit),
                ))
                .build_arc();
            match runtime {
                Ok(rt) => {
                    state = SessionStateBuilder::new_from_existing(state)
                        .with_runtime_env(rt)
                        .build();
                    let functions = state.scalar_functions().clone();
                    for f in capped::capped_functions(&functions, limit) {
                        if let Err(e) = state.register_udf(Arc::new(f)) {
                            tracing::warn!("per-query limit of a function not applied: {e}");
                        }
                    }
                }
                Err(e) => tracing::warn!("per-query memory limit not applied: {e}"),
            }
        }
        Engine {
            ctx: SessionContext::new_with_state(state),
            catalog: self.catalog.clone(),
            warehouse: self.warehouse.clone(),
            default_schema: schema,
            extensions: self.extensions.clone(),
            distributed: self.distributed,
        }
    }

    /// Whether queries are planned over a cluster's workers.
    pub fn is_distributed(&self) -> bool {
        self.distributed
    }

    /// The warehouse catalog (listing refreshes after other writers).
    pub fn catalog(&self) -> &WarehouseCatalog {
        &self.catalog
    }
}

/// Adds the missing-table hint DataFusion does not give.
fn explain_plan_error(err: Error, _sql: &str) -> Error {
    match err {
        // A table the planner cannot find (not DROP's missing table).
        Error::NotFound {
            object: crate::error::Object::Table,
            message,
            source: Some(source),
        } if matches!(source.find_root(), datafusion::error::DataFusionError::Plan(_)) => Error::NotFound {
            object: crate::error::Object::Table,
            message: format!(
                "{message}; tables are `schema.table` (see `SELECT * FROM information_schema.tables`), and files can be read with 'path/file.parquet' or read_csv('path')"
            ),
            source: Some(source),
        },
        other => other,
    }
}
