//! Statements that change the warehouse, with warehouse semantics: DataFusion
//! would keep `CREATE TABLE` in memory for one process; here it is a Delta table
//! every session, `sluice sql` run and Flight SQL client sees.
//!
//! | statement | effect |
//! |---|---|
//! | `CREATE [OR REPLACE] TABLE s.t AS SELECT ...` / `(a INT, ...)` | one Delta commit (overwrite) |
//! | `INSERT INTO s.t ...` / `INSERT OVERWRITE` | one append / overwrite commit |
//! | `DELETE FROM s.t [WHERE ...]`, `TRUNCATE s.t` | a Delta delete commit |
//! | `DROP TABLE [IF EXISTS] s.t` | deletes the table's files |
//! | `CREATE [OR REPLACE] VIEW s.v AS ...`, `DROP VIEW` | a stored view (see `warehouse::views`) |
//!
//! `TEMPORARY` tables and views stay in the process, as in DataFusion.

use super::{Engine, CATALOG};
use crate::error::{Error, Object, Result};
use crate::warehouse::{
    added_rows, check_columns, is_identifier, writer_properties, ViewDef, TARGET_FILE_SIZE,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    CreateMemoryTable, CreateView, DdlStatement, DmlStatement, DropTable, DropView, Expr,
    LogicalPlan, WriteOp,
};
use datafusion::prelude::DataFrame;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;
use std::num::NonZeroU64;
use std::sync::Arc;

/// What running one statement produced.
#[derive(Debug)]
pub enum Executed {
    /// A query (or a statement with a result, such as EXPLAIN), not yet run.
    Rows(DataFrame),
    /// A statement that changed the warehouse: rows written, deleted or
    /// replaced (`None` for DDL without rows, such as DROP or CREATE VIEW).
    Changed { rows: Option<u64> },
}

/// Whether a plan only reads (no DDL, DML, COPY or session statements anywhere
/// in it, EXPLAIN ANALYZE included).
pub fn is_read_only(plan: &LogicalPlan) -> bool {
    !plan
        .exists(|p| {
            Ok(matches!(
                p,
                LogicalPlan::Ddl(_)
                    | LogicalPlan::Dml(_)
                    | LogicalPlan::Copy(_)
                    | LogicalPlan::Statement(_)
            ))
        })
        .unwrap_or(true)
}

/// Whether a plan is a statement (DDL, DML, COPY, SET...) rather than a query
/// whose rows the caller reads.
pub fn is_statement(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
    )
}

impl Engine {
    /// Runs a planned statement: warehouse DDL/DML here, everything else (queries,
    /// temporary objects, SET) by DataFusion.
    pub async fn run_plan(&self, plan: LogicalPlan) -> Result<Executed> {
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(c)) if !c.temporary => {
                self.create_table(c).await
            }
            LogicalPlan::Ddl(DdlStatement::CreateView(v)) if !v.temporary => {
                self.create_view(v).await
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(d)) => self.drop_table(d).await,
            LogicalPlan::Ddl(DdlStatement::DropView(d)) => self.drop_view(d).await,
            LogicalPlan::Dml(d) => self.dml(d).await,
            LogicalPlan::Explain(e) if self.distributed => {
                // DataFusion plans EXPLAIN's input itself, past the
                // distributed planner: show the stages that would run.
                let state = self.ctx.state();
                let physical = state.create_physical_plan(&e.plan).await?;
                let stages = datafusion_distributed::display_plan_ascii(physical.as_ref(), false);
                let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
                    e.schema.inner().clone(),
                    vec![
                        Arc::new(datafusion::arrow::array::StringArray::from(vec![
                            "logical_plan",
                            "distributed_plan",
                        ])),
                        Arc::new(datafusion::arrow::array::StringArray::from(vec![
                            e.plan.display_indent().to_string(),
                            stages,
                        ])),
                    ],
                )?;
                Ok(Executed::Rows(self.ctx.read_batch(batch)?))
            }
            other => {
                let changes = is_statement(&other);
                let df = self.ctx.execute_logical_plan(other).await?;
                if changes {
                    // COPY and DataFusion's DML report a `count`.
                    let batches = df.collect().await?;
                    let rows = batches
                        .first()
                        .filter(|b| b.num_rows() == 1 && b.schema().fields().len() == 1)
                        .filter(|b| b.schema().field(0).name() == "count")
                        .and_then(|b| {
                            b.column(0)
                                .as_any()
                                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                                .map(|a| a.value(0))
                        });
                    Ok(Executed::Changed { rows })
                } else {
                    Ok(Executed::Rows(df))
                }
            }
        }
    }

    /// `schema.table` of a statement's target, in the warehouse catalog.
    fn target(&self, name: &TableReference) -> Result<(String, String)> {
        let (schema, table) = match name {
            TableReference::Bare { table } => (self.default_schema.clone(), table.to_string()),
            TableReference::Partial { schema, table } => (schema.to_string(), table.to_string()),
            TableReference::Full {
                catalog,
                schema,
                table,
            } => {
                if catalog.as_ref() != CATALOG {
                    return Err(Error::Sql(format!(
                        "`{name}`: the warehouse catalog is `{CATALOG}`; write `{schema}.{table}`"
                    )));
                }
                (schema.to_string(), table.to_string())
            }
        };
        if !is_identifier(&schema) || !is_identifier(&table) {
            return Err(Error::Sql(format!(
                "`{schema}.{table}`: warehouse schema and table names are lowercase letters, digits and `_`, starting with a letter or `_`"
            )));
        }
        Ok((schema, table))
    }

    fn session(&self) -> Arc<dyn datafusion::catalog::Session> {
        Arc::new(self.ctx.state())
    }

    fn commit_props(statement: &str) -> CommitProperties {
        CommitProperties::default().with_metadata([(
            "sluice.statement".to_string(),
            serde_json::Value::String(statement.to_string()),
        )])
    }

    /// The warehouse changed under the catalog: list again, read afresh.
    fn changed(&self, schema: &str, table: &str) {
        self.catalog.pin(schema, table, None);
        self.catalog.invalidate_listings();
    }

    async fn create_table(&self, c: CreateMemoryTable) -> Result<Executed> {
        let (schema, table) = self.target(&c.name)?;
        let full = format!("{schema}.{table}");
        let wh = &self.warehouse;
        let view = wh.get_view(&schema, &table).await?.is_some();
        let existing = wh.open_table(&schema, &table).await?;
        if existing.is_some() || view {
            if c.if_not_exists {
                return Ok(Executed::Changed { rows: Some(0) });
            }
            if !c.or_replace {
                let what = if view { "a view" } else { "a table" };
                return Err(Error::already_exists(
                    Object::Table,
                    format!(
                        "`{full}` already exists ({what}); use CREATE OR REPLACE TABLE {full} to replace it, or CREATE TABLE IF NOT EXISTS"
                    ),
                ));
            }
        }
        let handle = match existing {
            Some(t) => t,
            None => wh.table_handle(&wh.table_url(&schema, &table)?)?,
        };
        let declared = matches!(c.input.as_ref(), LogicalPlan::EmptyRelation(_));
        let input = if declared {
            // `CREATE TABLE t (a INT NOT NULL, ...)`: the declared columns.
            (*c.input).clone()
        } else {
            // `CREATE TABLE t AS <query>`: columns are nullable, as in DuckDB
            // and PostgreSQL (a query's non-null literals are no constraint).
            self.nullable_input((*c.input).clone()).await?
        };
        let arrow_schema: SchemaRef = Arc::new(input.schema().as_arrow().clone());
        check_columns(&arrow_schema)
            .map_err(|m| Error::Sql(format!("CREATE TABLE {full}: {m}")))?;
        let written = handle
            .write(vec![])
            .with_input_plan(input)
            .with_session_state(self.session())
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
            .with_writer_properties(writer_properties(&arrow_schema))
            .with_target_file_size(NonZeroU64::new(TARGET_FILE_SIZE))
            .with_table_name(full.clone())
            .with_commit_properties(Self::commit_props("CREATE TABLE"))
            .await
            .map_err(|e| Error::storage(&full, e))?;
        if view {
            wh.delete_view(&schema, &table).await?;
        }
        self.changed(&schema, &table);
        Ok(Executed::Changed {
            rows: Some(added_rows(&written).await.unwrap_or(0)),
        })
    }

    /// `plan` with every column nullable: its rows stream through a scan whose
    /// schema relaxes nullability (nothing is buffered).
    async fn nullable_input(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        use datafusion::arrow::datatypes::{Field, Schema};
        let schema = plan.schema().as_arrow().clone();
        let nullable: SchemaRef = Arc::new(Schema::new_with_metadata(
            schema
                .fields()
                .iter()
                .map(|f| Arc::new(Field::clone(f).with_nullable(true)))
                .collect::<Vec<_>>(),
            schema.metadata().clone(),
        ));
        let stream = self
            .ctx
            .execute_logical_plan(plan)
            .await?
            .execute_stream()
            .await?;
        let target = nullable.clone();
        let relaxed = futures::StreamExt::map(stream, move |b| {
            b.and_then(|b| Ok(b.with_schema(target.clone())?))
        });
        let data = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                nullable.clone(),
                relaxed,
            ),
        );
        once_scan(nullable, data)
    }

    async fn create_view(&self, v: CreateView) -> Result<Executed> {
        let (schema, name) = self.target(&v.name)?;
        let full = format!("{schema}.{name}");
        let sql = v
            .definition
            .as_deref()
            .and_then(view_query)
            .ok_or_else(|| {
                Error::Sql(format!("CREATE VIEW {full}: cannot read the view's query"))
            })?;
        let wh = &self.warehouse;
        if wh.latest_version(&schema, &name).await?.is_some() {
            return Err(Error::Sql(format!(
                "`{full}` is a table; DROP TABLE {full} first to replace it with a view"
            )));
        }
        if wh.get_view(&schema, &name).await?.is_some() && !v.or_replace {
            return Err(Error::already_exists(
                Object::View,
                format!("view `{full}` already exists; use CREATE OR REPLACE VIEW {full}"),
            ));
        }
        wh.put_view(&ViewDef {
            schema: schema.clone(),
            name: name.clone(),
            sql,
            model: None,
            run_id: None,
            sql_hash: None,
            created_at: Some(chrono::Utc::now().to_rfc3339()),
        })
        .await?;
        self.changed(&schema, &name);
        Ok(Executed::Changed { rows: None })
    }

    async fn drop_table(&self, d: DropTable) -> Result<Executed> {
        let (schema, table) = self.target(&d.name)?;
        let full = format!("{schema}.{table}");
        let wh = &self.warehouse;
        if wh.latest_version(&schema, &table).await?.is_some() {
            wh.drop_table_files(&schema, &table).await?;
            self.changed(&schema, &table);
            return Ok(Executed::Changed { rows: None });
        }
        if wh.get_view(&schema, &table).await?.is_some() {
            return Err(Error::Sql(format!(
                "`{full}` is a view; use DROP VIEW {full}"
            )));
        }
        // A temporary table of this session, or nothing (DataFusion reports it).
        self.ctx
            .execute_logical_plan(LogicalPlan::Ddl(DdlStatement::DropTable(d)))
            .await
            .map_err(|e| missing_hint(e.into(), &full, "DROP TABLE IF EXISTS"))?;
        Ok(Executed::Changed { rows: None })
    }

    async fn drop_view(&self, d: DropView) -> Result<Executed> {
        let (schema, name) = self.target(&d.name)?;
        let full = format!("{schema}.{name}");
        let wh = &self.warehouse;
        if wh.get_view(&schema, &name).await?.is_some() {
            wh.delete_view(&schema, &name).await?;
            self.changed(&schema, &name);
            return Ok(Executed::Changed { rows: None });
        }
        if wh.latest_version(&schema, &name).await?.is_some() {
            return Err(Error::Sql(format!(
                "`{full}` is a table; use DROP TABLE {full}"
            )));
        }
        self.ctx
            .execute_logical_plan(LogicalPlan::Ddl(DdlStatement::DropView(d)))
            .await
            .map_err(|e| missing_hint(e.into(), &full, "DROP VIEW IF EXISTS"))?;
        Ok(Executed::Changed { rows: None })
    }

    /// INSERT, DELETE, TRUNCATE on a warehouse table; other targets (temporary
    /// tables) go to DataFusion.
    async fn dml(&self, d: DmlStatement) -> Result<Executed> {
        let (schema, table) = match self.target(&d.table_name) {
            Ok(t) => t,
            Err(_) => return self.datafusion_dml(d).await,
        };
        let full = format!("{schema}.{table}");
        let Some(delta) = self.warehouse.open_table(&schema, &table).await? else {
            return self.datafusion_dml(d).await;
        };
        let rows = match &d.op {
            WriteOp::Insert(op) => self.insert(delta, &full, op, &d.input).await?,
            WriteOp::Delete => {
                let predicate = match d.input.as_ref() {
                    LogicalPlan::Filter(f) => Some(unqualified(f.predicate.clone())?),
                    LogicalPlan::TableScan(_) => None,
                    other => {
                        return Err(Error::Sql(format!(
                            "DELETE FROM {full}: unsupported form ({})",
                            other.display()
                        )))
                    }
                };
                self.delete(delta, &full, predicate).await?
            }
            WriteOp::Truncate => self.delete(delta, &full, None).await?,
            WriteOp::Update => {
                let updates = update_assignments(&d.input)
                    .ok_or_else(|| Error::Sql(format!("UPDATE {full}: unsupported form")))?;
                self.update(delta, &full, updates).await?
            }
            other => {
                return Err(Error::not_supported(format!(
                    "{other} on warehouse table `{full}` is not supported; use INSERT, DELETE, UPDATE or CREATE OR REPLACE TABLE ... AS"
                )))
            }
        };
        self.changed(&schema, &table);
        Ok(Executed::Changed { rows: Some(rows) })
    }

    async fn datafusion_dml(&self, d: DmlStatement) -> Result<Executed> {
        let df = self.ctx.execute_logical_plan(LogicalPlan::Dml(d)).await?;
        let batches = df.collect().await?;
        let rows = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0);
        Ok(Executed::Changed { rows: Some(rows) })
    }

    async fn insert(
        &self,
        delta: DeltaTable,
        full: &str,
        op: &InsertOp,
        input: &Arc<LogicalPlan>,
    ) -> Result<u64> {
        let mode = match op {
            InsertOp::Append => SaveMode::Append,
            InsertOp::Overwrite => SaveMode::Overwrite,
            InsertOp::Replace => {
                return Err(Error::not_supported(format!(
                    "REPLACE INTO {full} is not supported; use a model with incremental_strategy='merge', or DELETE then INSERT"
                )))
            }
        };
        let arrow_schema: SchemaRef = Arc::new(input.schema().as_arrow().clone());
        let written = delta
            .write(vec![])
            .with_input_plan(input.as_ref().clone())
            .with_session_state(self.session())
            .with_save_mode(mode)
            .with_writer_properties(writer_properties(&arrow_schema))
            .with_target_file_size(NonZeroU64::new(TARGET_FILE_SIZE))
            .with_commit_properties(Self::commit_props("INSERT"))
            .await
            .map_err(|e| Error::storage(full, e))?;
        Ok(added_rows(&written).await.unwrap_or(0))
    }

    async fn delete(&self, delta: DeltaTable, full: &str, predicate: Option<Expr>) -> Result<u64> {
        let mut builder = delta
            .delete()
            .with_session_state(self.session())
            .with_commit_properties(Self::commit_props("DELETE"));
        if let Some(p) = predicate {
            builder = builder.with_predicate(p);
        }
        let (_, metrics) = builder.await.map_err(|e| Error::storage(full, e))?;
        Ok(metrics.num_deleted_rows.unwrap_or(0) as u64)
    }

    async fn update(&self, delta: DeltaTable, full: &str, u: Update) -> Result<u64> {
        if u.assignments.is_empty() {
            return Ok(0);
        }
        let mut builder = delta
            .update()
            .with_session_state(self.session())
            .with_commit_properties(Self::commit_props("UPDATE"));
        if let Some(p) = u.predicate {
            builder = builder.with_predicate(p);
        }
        for (column, value) in u.assignments {
            builder = builder.with_update(column, value);
        }
        let (_, metrics) = builder.await.map_err(|e| Error::storage(full, e))?;
        Ok(metrics.num_updated_rows as u64)
    }
}

/// The query of a `CREATE VIEW ... AS <query>` statement's text.
fn view_query(definition: &str) -> Option<String> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::parser::Parser;
    let statements = Parser::parse_sql(&crate::sql::parser::SluiceDialect, definition).ok()?;
    match statements.into_iter().next()? {
        Statement::CreateView(v) => Some(v.query.to_string()),
        _ => None,
    }
}

/// Column references without their table qualifier (Delta predicates name
/// columns of the one table).
fn unqualified(expr: Expr) -> Result<Expr> {
    Ok(expr
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.relation.is_some() => {
                    Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                }
                other => Transformed::no(other),
            })
        })?
        .data)
}

struct Update {
    predicate: Option<Expr>,
    assignments: Vec<(String, Expr)>,
}

/// DataFusion plans `UPDATE t SET a = x WHERE p` as a projection (every column,
/// changed ones as expressions) over a filter over the table scan.
fn update_assignments(input: &LogicalPlan) -> Option<Update> {
    let LogicalPlan::Projection(p) = input else {
        return None;
    };
    let predicate = match p.input.as_ref() {
        LogicalPlan::Filter(f) => Some(unqualified(f.predicate.clone()).ok()?),
        LogicalPlan::TableScan(_) => None,
        _ => return None,
    };
    let mut assignments = Vec::new();
    for (expr, field) in p.expr.iter().zip(p.schema.fields()) {
        let inner = match expr {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        if let Expr::Column(c) = inner {
            if c.name == *field.name() {
                continue;
            }
        }
        let mut has_subquery = false;
        let _ = inner.apply(|e| {
            if matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ) {
                has_subquery = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if has_subquery {
            return None;
        }
        assignments.push((field.name().clone(), unqualified(inner.clone()).ok()?));
    }
    Some(Update {
        predicate,
        assignments,
    })
}

fn missing_hint(err: Error, full: &str, fix: &str) -> Error {
    match err {
        Error::NotFound {
            object,
            message,
            source,
        } => Error::NotFound {
            object,
            message: format!(
                "`{full}` does not exist ({message}); use {fix} to ignore a missing one"
            ),
            source,
        },
        other => other,
    }
}

/// One row, column `count`: the rows a statement changed (DataFusion's DML result).
pub(crate) fn count_batch(rows: u64) -> Result<datafusion::arrow::record_batch::RecordBatch> {
    use datafusion::arrow::array::UInt64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]));
    Ok(datafusion::arrow::record_batch::RecordBatch::try_new(
        schema,
        vec![Arc::new(UInt64Array::from(vec![rows]))],
    )?)
}

/// How [`Engine::ingest`] treats an existing or missing table (ADBC's ingest
/// modes: create = Create/Fail, append = Fail/Append, replace = Create/Replace,
/// create_append = Create/Append).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestMode {
    /// Create the table when it is missing (else fail).
    pub create: bool,
    /// When it exists: `None` fails, `Some(false)` appends, `Some(true)` replaces.
    pub existing: Option<bool>,
}

/// A stream consumed once by the scan of a write: bulk data flows into the
/// Delta writer without being held in memory.
struct OnceStream {
    schema: SchemaRef,
    stream: std::sync::Mutex<Option<datafusion::execution::SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OnceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnceStream")
    }
}

impl datafusion::physical_plan::streaming::PartitionStream for OnceStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(
        &self,
        _ctx: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::execution::SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(s) => s,
            None => Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::once(async {
                        Err(datafusion::error::DataFusionError::Execution(
                            "the ingest stream was already consumed".into(),
                        ))
                    }),
                ),
            ),
        }
    }
}

/// A logical scan of a stream, read once.
fn once_scan(
    schema: SchemaRef,
    data: datafusion::execution::SendableRecordBatchStream,
) -> Result<LogicalPlan> {
    let source = datafusion::catalog::streaming::StreamingTable::try_new(
        schema.clone(),
        vec![Arc::new(OnceStream {
            schema,
            stream: std::sync::Mutex::new(Some(data)),
        })],
    )?;
    Ok(datafusion::logical_expr::LogicalPlanBuilder::scan(
        "stream",
        datafusion::datasource::provider_as_source(Arc::new(source)),
        None,
    )?
    .build()?)
}

impl Engine {
    /// Writes a stream of batches into `schema.table` in one commit (bulk
    /// ingest), creating, appending to or replacing the table per `mode`.
    /// Returns the rows written.
    pub async fn ingest(
        &self,
        schema: Option<&str>,
        table: &str,
        data: datafusion::execution::SendableRecordBatchStream,
        mode: IngestMode,
    ) -> Result<u64> {
        let name = match schema {
            Some(s) => TableReference::partial(s, table),
            None => TableReference::bare(table),
        };
        let (schema, table) = self.target(&name)?;
        let full = format!("{schema}.{table}");
        let wh = &self.warehouse;
        if wh.get_view(&schema, &table).await?.is_some() {
            return Err(Error::Sql(format!(
                "`{full}` is a view; ingest into a table (DROP VIEW {full} first)"
            )));
        }
        let existing = wh.open_table(&schema, &table).await?;
        let (handle, save, replace_schema) = match (existing, mode.existing) {
            (Some(_), None) => {
                return Err(Error::already_exists(
                    Object::Table,
                    format!("table `{full}` already exists; ingest with mode append or replace"),
                ))
            }
            (Some(t), Some(replace)) => {
                if replace {
                    (t, SaveMode::Overwrite, true)
                } else {
                    (t, SaveMode::Append, false)
                }
            }
            (None, _) if !mode.create => {
                return Err(Error::UnknownTable {
                    table: full,
                    hint: "; ingest with mode create (or create_append) to create it".into(),
                })
            }
            (None, _) => (
                wh.table_handle(&wh.table_url(&schema, &table)?)?,
                SaveMode::Overwrite,
                true,
            ),
        };
        let data_schema = data.schema();
        check_columns(&data_schema).map_err(|m| Error::Sql(format!("ingest into {full}: {m}")))?;
        let plan = once_scan(data_schema.clone(), data)?;
        let mut write = handle
            .write(vec![])
            .with_input_plan(plan)
            .with_session_state(self.session())
            .with_save_mode(save)
            .with_writer_properties(writer_properties(&data_schema))
            .with_target_file_size(NonZeroU64::new(TARGET_FILE_SIZE))
            .with_commit_properties(Self::commit_props("INGEST"));
        if replace_schema {
            write = write.with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite);
        }
        let written = write.await.map_err(|e| Error::storage(&full, e))?;
        self.changed(&schema, &table);
        Ok(added_rows(&written).await.unwrap_or(0))
    }
}
