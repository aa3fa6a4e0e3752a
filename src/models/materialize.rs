//! Materializations on Delta: `table` (atomic replace), `view` (SQL stored in
//! the warehouse), `incremental` (append, merge or delete+insert, each one
//! commit) and `ephemeral` (nothing stored; inlined at compile time).
//!
//! Every commit carries `sluice.run_id`, `sluice.model` and `sluice.sql_hash`.

use super::compile::Model;
use super::config::{IncrementalStrategy, Materialization, OnSchemaChange};
use crate::error::{Error, Result};
use crate::sql::Engine;
use crate::warehouse::{check_columns, writer_properties, ViewDef, Warehouse, TARGET_FILE_SIZE};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{cast, col, lit, Expr};
use datafusion::prelude::DataFrame;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;
use std::num::NonZeroU64;
use std::sync::Arc;

/// Most distinct key values a delete+insert run may replace.
const MAX_REPLACE_KEYS: usize = 100_000;

/// What materializing one model produced.
#[derive(Clone, Default)]
pub struct Materialized {
    /// Table version written (`None` for views, ephemerals and no-op runs).
    pub version: Option<u64>,
    /// Rows written (inserted + updated for merges).
    pub rows: Option<u64>,
    /// What was done, for the summary (`replaced`, `appended`, `merged`, ...).
    pub action: &'static str,
    /// The table state just committed (read by later models without reloading).
    pub state: Option<DeltaTable>,
}

/// Materializes `model` (whose upstream models are already built).
pub async fn materialize(engine: &Engine, model: &Model, run_id: &str) -> Result<Materialized> {
    let out = materialize_inner(engine, model, run_id).await?;
    if let Some(state) = &out.state {
        engine.pin(&model.schema, &model.table, state.clone());
    }
    Ok(out)
}

async fn materialize_inner(engine: &Engine, model: &Model, run_id: &str) -> Result<Materialized> {
    let wh = engine.warehouse();
    let ctx = Ctx {
        engine,
        wh,
        model,
        run_id,
    };
    match model.config.materialized {
        Materialization::Ephemeral => Ok(Materialized {
            action: "inlined",
            ..Default::default()
        }),
        Materialization::View => ctx.view().await,
        Materialization::Table => ctx.table().await,
        Materialization::Incremental => {
            let existing = wh.open_table(&model.schema, &model.table).await?;
            match existing {
                Some(t) if model.is_incremental => ctx.incremental(t).await,
                _ => ctx.table().await,
            }
        }
    }
}

struct Ctx<'a> {
    engine: &'a Engine,
    wh: &'a Warehouse,
    model: &'a Model,
    run_id: &'a str,
}

impl Ctx<'_> {
    fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::Model {
            model: self.model.id(),
            file: self.model.file.display.clone(),
            message: message.to_string(),
        }
    }

    fn storage_err(&self) -> impl Fn(deltalake::DeltaTableError) -> Error + '_ {
        move |e| self.err(crate::error::Error::delta_write(self.model.id(), e))
    }

    fn props(&self) -> CommitProperties {
        CommitProperties::default()
            .with_cleanup_expired_logs(Some(false))
            .with_metadata([
                ("sluice.run_id".to_string(), self.run_id.into()),
                ("sluice.model".to_string(), self.model.id().into()),
                (
                    "sluice.sql_hash".to_string(),
                    self.model.sql_hash.clone().into(),
                ),
            ])
    }

    /// Plans the model's SQL, with nanosecond timestamps cast to microseconds
    /// (Delta's precision) so the write does not truncate them silently.
    async fn plan(&self) -> Result<DataFrame> {
        let df = self
            .engine
            .sql(&self.model.sql)
            .await
            .map_err(|e| self.err(e))?;
        let fields = df.schema().as_arrow().fields().clone();
        if !fields.iter().any(|f| {
            matches!(
                f.data_type(),
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, _)
            )
        }) {
            return Ok(df);
        }
        let exprs: Vec<Expr> = fields
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, tz) => {
                    cast(
                        quoted(f.name()),
                        DataType::Timestamp(
                            datafusion::arrow::datatypes::TimeUnit::Microsecond,
                            tz.clone(),
                        ),
                    )
                    .alias(f.name())
                }
                _ => quoted(f.name()),
            })
            .collect();
        df.select(exprs).map_err(|e| self.err(Error::from(e)))
    }

    async fn handle(&self) -> Result<DeltaTable> {
        match self
            .wh
            .open_table(&self.model.schema, &self.model.table)
            .await?
        {
            Some(t) => Ok(t),
            None => {
                let url = self.wh.table_url(&self.model.schema, &self.model.table)?;
                self.wh.table_handle(&url)
            }
        }
    }

    /// A streaming write of `df` into `table` with sluice's file settings and
    /// this run's commit metadata.
    fn writer(
        &self,
        table: DeltaTable,
        df: &DataFrame,
        schema: &SchemaRef,
        mode: SaveMode,
    ) -> deltalake::operations::write::WriteBuilder {
        let (input, state): (_, Arc<dyn datafusion::catalog::Session>) = match self.write_input(df)
        {
            Ok((input, state)) => (input, Arc::new(state)),
            // Planning the input again fails as the write would.
            Err(_) => (df.logical_plan().clone(), self.state()),
        };
        table
            .write(vec![])
            .with_input_plan(input)
            .with_session_state(state)
            .with_save_mode(mode)
            .with_writer_properties(writer_properties(schema))
            .with_target_file_size(NonZeroU64::new(TARGET_FILE_SIZE))
            .with_commit_properties(self.props())
    }

    /// Runs a write and reports what it committed.
    async fn finish(
        &self,
        write: deltalake::operations::write::WriteBuilder,
        action: &'static str,
    ) -> Result<Materialized> {
        let table = write.await.map_err(self.storage_err())?;
        Ok(Materialized {
            version: table.version(),
            rows: crate::warehouse::added_rows(&table).await,
            state: Some(table),
            action,
        })
    }

    /// The engine's hooks check the columns about to be written (a feature
    /// view's entity and time columns): nothing is written when they fail.
    /// `dropped`: the query's columns an incremental run does not write.
    async fn check(&self, df: &DataFrame, dropped: &[String]) -> Result<()> {
        super::hooks::before_write(self.engine, self.model, df.schema().as_arrow())
            .await
            .map_err(|e| match e {
                // The hint only when the message names a dropped column.
                Error::Model { message, .. }
                    if !dropped.iter().any(|c| message.contains(&format!("`{c}`"))) =>
                {
                    self.err(format!("{message}; nothing was written"))
                }
                Error::Model { message, .. } => self.err(format!(
                    "{message}; nothing was written (this incremental run writes the table's columns: the query's new columns {} are not added with on_schema_change='ignore'; run with --full-refresh, or set on_schema_change='append_new_columns')",
                    dropped.join(", ")
                )),
                other => other,
            })
    }

    fn state(&self) -> Arc<dyn datafusion::catalog::Session> {
        Arc::new(self.engine.context().state())
    }

    /// What Delta's writers plan and run in: the engine's session, or in a
    /// cluster the local one with the model's query as a distributed input
    /// ([`crate::sql::cluster::DistributedInput`]).
    fn write_input(
        &self,
        df: &DataFrame,
    ) -> Result<(
        datafusion::logical_expr::LogicalPlan,
        datafusion::execution::session_state::SessionState,
    )> {
        let state = self.engine.context().state();
        if !self.engine.is_distributed() {
            return Ok((df.logical_plan().clone(), state));
        }
        let input =
            crate::sql::cluster::DistributedInput::new(df.logical_plan().clone(), state.clone())
                .into_plan()
                .map_err(|e| self.err(Error::from(e)))?;
        Ok((input, crate::sql::cluster::local_state(state)))
    }

    async fn view(&self) -> Result<Materialized> {
        // Planning checks the SQL (and every table it names) now, not at first read.
        let df = self.plan().await?;
        self.check(&df, &[]).await?;
        let m = self.model;
        self.engine.unpin(&m.schema, &m.table);
        if self.wh.relation_exists(&m.schema, &m.table).await?
            && self.wh.latest_version(&m.schema, &m.table).await?.is_some()
        {
            // The model was a table before: a view replaces it (as dbt does).
            self.wh.drop_table_files(&m.schema, &m.table).await?;
        }
        self.wh
            .put_view(&ViewDef {
                schema: m.schema.clone(),
                name: m.table.clone(),
                sql: m.sql.clone(),
                model: Some(m.id()),
                run_id: Some(self.run_id.to_string()),
                sql_hash: Some(m.sql_hash.clone()),
                created_at: Some(chrono::Utc::now().to_rfc3339()),
            })
            .await?;
        Ok(Materialized {
            action: "view",
            ..Default::default()
        })
    }

    /// Replaces the whole table in one commit (creating it when missing).
    async fn table(&self) -> Result<Materialized> {
        let df = self.plan().await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        check_columns(&schema).map_err(|m| self.err(m))?;
        self.check(&df, &[]).await?;
        let m = self.model;
        let mut write = self
            .writer(self.handle().await?, &df, &schema, SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_table_name(m.id());
        if let Some(d) = &m.description {
            write = write.with_description(d.clone());
        }
        if !m.config.partition_by.is_empty() {
            write = write.with_partition_columns(m.config.partition_by.clone());
        }
        let out = self.finish(write, "replaced").await?;
        // A view of the same name (the model was a view before) is replaced.
        self.wh.delete_view(&m.schema, &m.table).await?;
        Ok(out)
    }

    async fn incremental(&self, table: DeltaTable) -> Result<Materialized> {
        let df = self.plan().await?;
        let snapshot = table.snapshot().map_err(self.storage_err())?;
        let table_schema: SchemaRef = snapshot.snapshot().arrow_schema();
        let query_columns: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (df, add_columns) = self.conform(df, &table_schema)?;
        let dropped: Vec<String> = query_columns
            .into_iter()
            .filter(|c| df.schema().field_with_unqualified_name(c).is_err())
            .collect();
        self.check(&df, &dropped).await?;
        let m = self.model;
        match m.config.strategy() {
            IncrementalStrategy::Append => {
                let mut write = self.writer(table, &df, &table_schema, SaveMode::Append);
                if add_columns {
                    write = write.with_schema_mode(SchemaMode::Merge);
                }
                self.finish(write, "appended").await
            }
            IncrementalStrategy::Merge => self.merge(table, df, &table_schema, add_columns).await,
            IncrementalStrategy::DeleteInsert => {
                self.delete_insert(table, df, &table_schema, add_columns)
                    .await
            }
        }
    }

    /// Shapes the query's result like the table: table columns in table order
    /// (cast to the table's types, NULL when the query lacks them), then new
    /// columns when `on_schema_change` allows adding them.
    fn conform(&self, df: DataFrame, table_schema: &SchemaRef) -> Result<(DataFrame, bool)> {
        let query_schema = df.schema().as_arrow().clone();
        check_columns(&Arc::new(query_schema.clone())).map_err(|m| self.err(m))?;
        let policy = self.model.config.on_schema_change;
        let new: Vec<&str> = query_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| table_schema.field_with_name(n).is_err())
            .collect();
        let missing: Vec<&str> = table_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| query_schema.field_with_name(n).is_err())
            .collect();
        if policy == OnSchemaChange::Fail && (!new.is_empty() || !missing.is_empty()) {
            return Err(self.err(format!(
                "the query's columns differ from the table's (new: [{}], missing: [{}]) and on_schema_change='fail'; run with --full-refresh or change on_schema_change",
                new.join(", "),
                missing.join(", ")
            )));
        }
        let mut exprs: Vec<Expr> = Vec::new();
        for f in table_schema.fields() {
            let target = storage_type(f.data_type());
            let e = match query_schema.field_with_name(f.name()) {
                Ok(q) if q.data_type() == &target => quoted(f.name()),
                Ok(_) => cast(quoted(f.name()), target),
                Err(_) => cast(lit(ScalarValue::Null), target),
            };
            exprs.push(e.alias(f.name()));
        }
        let add = policy == OnSchemaChange::AppendNewColumns && !new.is_empty();
        if add {
            for n in &new {
                exprs.push(quoted(n).alias(*n));
            }
        }
        let df = df.select(exprs).map_err(|e| self.err(Error::from(e)))?;
        Ok((df, add))
    }

    async fn merge(
        &self,
        table: DeltaTable,
        df: DataFrame,
        table_schema: &SchemaRef,
        add_columns: bool,
    ) -> Result<Materialized> {
        let keys = &self.model.config.unique_key;
        for k in keys {
            if df.schema().field_with_unqualified_name(k).is_err() {
                return Err(self.err(format!(
                    "unique_key column `{k}` is not a column of the model's result"
                )));
            }
        }
        let q = |alias: &str, c: &str| col(format!("{alias}.\"{c}\""));
        let predicate = keys
            .iter()
            .map(|k| q("t", k).eq(q("s", k)))
            .reduce(|a, b| a.and(b))
            .ok_or_else(|| self.err("merge needs unique_key"))?;
        let columns: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (input, state) = self.write_input(&df)?;
        let source = DataFrame::new(state.clone(), input);
        let (table, metrics) = table
            .merge(source, predicate)
            .with_source_alias("s")
            .with_target_alias("t")
            .with_session_state(Arc::new(state))
            .with_commit_properties(self.props())
            .with_writer_properties(writer_properties(table_schema))
            .with_merge_schema(add_columns)
            .when_matched_update(|mut u| {
                for c in &columns {
                    u = u.update(c.as_str(), q("s", c));
                }
                u
            })
            .map_err(self.storage_err())?
            .when_not_matched_insert(|mut i| {
                for c in &columns {
                    i = i.set(c.as_str(), q("s", c));
                }
                i
            })
            .map_err(self.storage_err())?
            .await
            .map_err(|e| {
                let msg = e.to_string();
                if msg.contains("multiple") || msg.contains("duplicate") {
                    self.err(format!(
                        "{msg}; the new rows must have one row per unique_key ({})",
                        keys.join(", ")
                    ))
                } else {
                    self.err(Error::delta_write(self.model.id(), e))
                }
            })?;
        Ok(Materialized {
            version: table.version(),
            state: Some(table.clone()),
            rows: Some((metrics.num_target_rows_inserted + metrics.num_target_rows_updated) as u64),
            action: "merged",
        })
    }

    /// Replaces the rows whose key values occur in the new rows, in one commit
    /// (Delta replaceWhere).
    async fn delete_insert(
        &self,
        table: DeltaTable,
        df: DataFrame,
        table_schema: &SchemaRef,
        add_columns: bool,
    ) -> Result<Materialized> {
        let keys = &self.model.config.unique_key;
        let key_cols: Vec<Expr> = keys.iter().map(|k| quoted(k)).collect();
        let distinct = df
            .clone()
            .select(key_cols)
            .and_then(|d| d.distinct())
            .map_err(|e| self.err(format!("unique_key: {}", Error::from(e))))?
            .collect()
            .await
            .map_err(|e| self.err(Error::from(e)))?;
        let n: usize = distinct.iter().map(|b| b.num_rows()).sum();
        if n == 0 {
            return Ok(Materialized {
                version: table.version(),
                state: Some(table.clone()),
                rows: Some(0),
                action: "unchanged",
            });
        }
        if n > MAX_REPLACE_KEYS {
            return Err(self.err(format!(
                "delete+insert would replace {n} distinct unique_key values (limit {MAX_REPLACE_KEYS}); use incremental_strategy='merge' for row keys, and delete+insert for a day or partition column"
            )));
        }
        let mut disjuncts: Vec<Expr> = Vec::new();
        let mut in_lists: Vec<Vec<Expr>> = vec![Vec::new(); keys.len()];
        let mut has_null = vec![false; keys.len()];
        for batch in &distinct {
            for row in 0..batch.num_rows() {
                let mut conj: Option<Expr> = None;
                for (k, name) in keys.iter().enumerate() {
                    let v = ScalarValue::try_from_array(batch.column(k), row)
                        .map_err(|e| self.err(Error::from(e)))?;
                    let term = if v.is_null() {
                        has_null[k] = true;
                        quoted(name).is_null()
                    } else {
                        in_lists[k].push(lit(v.clone()));
                        quoted(name).eq(lit(v))
                    };
                    conj = Some(match conj {
                        Some(c) => c.and(term),
                        None => term,
                    });
                }
                if let Some(c) = conj {
                    disjuncts.push(c);
                }
            }
        }
        let predicate = if keys.len() == 1 {
            let mut p = quoted(&keys[0]).in_list(std::mem::take(&mut in_lists[0]), false);
            if has_null[0] {
                p = p.or(quoted(&keys[0]).is_null());
            }
            p
        } else {
            disjuncts
                .into_iter()
                .reduce(|a, b| a.or(b))
                .ok_or_else(|| self.err("no key values"))?
        };
        let mut write = self
            .writer(table, &df, table_schema, SaveMode::Overwrite)
            .with_replace_where(predicate);
        if add_columns {
            write = write.with_schema_mode(SchemaMode::Merge);
        }
        self.finish(write, "replaced keys").await
    }
}

/// A column reference that keeps the name's case.
fn quoted(name: &str) -> Expr {
    Expr::Column(datafusion::common::Column::from_name(name))
}

/// Delta stores strings and binaries as plain `Utf8` / `Binary`.
fn storage_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    }
}
