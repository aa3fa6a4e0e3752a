//! Running snapshots: the first run writes the table (every row current);
//! later runs stage the changes ([`super::sql`]) and apply them with one
//! Delta merge: `update` and `delete` rows close the current version with the
//! same `dbt_scd_id` (its `dbt_valid_to`), `insert` rows add versions. That
//! is dbt-duckdb's update-then-insert in one commit, so a failed run leaves
//! the previous version of the table as it was.

use super::sql::{self, quote, Plan};
use super::{HardDeletes, Snapshot, Strategy};
use crate::error::{Error, Result};
use crate::models::run::{NodeResult, RunReport, Status};
use crate::models::Compiled;
use crate::sql::Engine;
use crate::warehouse::{check_columns, writer_properties, TARGET_FILE_SIZE};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{cast, col, lit, Expr};
use datafusion::prelude::DataFrame;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::Arc;

/// What one snapshot run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotResult {
    /// `created` (first run), `merged`, or `unchanged` (nothing committed).
    pub action: &'static str,
    /// The table version committed.
    pub version: Option<u64>,
    /// Rows added (new versions, deletion records).
    pub inserted: u64,
    /// Current versions closed (`dbt_valid_to` set).
    pub closed: u64,
}

/// One snapshot's outcome.
#[derive(Debug)]
pub struct SnapshotOutcome {
    pub name: String,
    /// `schema.table`.
    pub id: String,
    /// Display path of the defining file.
    pub file: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    pub seconds: f64,
    pub result: Result<SnapshotResult>,
}

impl SnapshotOutcome {
    /// The outcome as a run record node (kind `snapshot`), for
    /// `target/run_results.json` and `_sluice.runs`.
    pub fn node_result(&self) -> NodeResult {
        let (status, rows, version, message) = match &self.result {
            Ok(r) => (
                Status::Success,
                Some(r.inserted + r.closed),
                r.version,
                None,
            ),
            Err(e) => (Status::Error, None, None, Some(e.to_string())),
        };
        NodeResult {
            id: self.id.clone(),
            kind: "snapshot",
            materialization: "snapshot".into(),
            status,
            rows,
            version,
            failures: None,
            started_at: self.started_at.clone(),
            seconds: self.seconds,
            message,
            inputs: Vec::new(),
            sql_hash: None,
            retries: 0,
            file: self.file.clone(),
        }
    }
}

/// A run report of snapshot outcomes alone (`sluice snapshot`).
pub fn report(run_id: &str, outcomes: &[SnapshotOutcome], seconds: f64) -> RunReport {
    RunReport {
        run_id: run_id.to_string(),
        command: "snapshot".into(),
        started_at: outcomes
            .first()
            .map(|o| o.started_at.clone())
            .unwrap_or_else(|| chrono::Utc::now().to_rfc3339()),
        seconds,
        results: outcomes.iter().map(SnapshotOutcome::node_result).collect(),
    }
}

/// Runs the snapshots `which` (indices into `compiled.snapshots`), one after
/// the other. Each takes its run time (dbt's `snapshot_get_time()`) when it
/// starts, and uses that one value for all its rows. A failure is that
/// snapshot's outcome; the others still run.
pub async fn run_snapshots(
    engine: &Engine,
    compiled: &Compiled,
    which: &[usize],
    vars: &BTreeMap<String, serde_json::Value>,
    run_id: &str,
) -> Vec<SnapshotOutcome> {
    let mut out = Vec::with_capacity(which.len());
    for &i in which {
        let Some(s) = compiled.snapshots.get(i) else {
            continue;
        };
        let started = std::time::Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339();
        let result = run_one(engine, compiled, s, vars, run_id).await;
        out.push(SnapshotOutcome {
            name: s.name.clone(),
            id: s.id(),
            file: s.file.clone(),
            started_at,
            seconds: started.elapsed().as_secs_f64(),
            result,
        });
    }
    out
}

/// The run's time: now, in UTC, to the microsecond (Delta's precision).
fn run_time() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    let micros = now.and_utc().timestamp_micros();
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.naive_utc())
        .unwrap_or(now)
}

async fn run_one(
    engine: &Engine,
    compiled: &Compiled,
    s: &Snapshot,
    vars: &BTreeMap<String, serde_json::Value>,
    run_id: &str,
) -> Result<SnapshotResult> {
    let err = |m: String| s.err(m);
    let (source_sql, _) = compiled.render_snapshot(s, vars)?;
    let source = engine
        .sql(&source_sql)
        .await
        .map_err(|e| err(format!("the snapshot's query: {e}")))?;
    let source_schema: SchemaRef = Arc::new(source.schema().as_arrow().clone());
    check_columns(&source_schema).map_err(|e| err(e.to_string()))?;
    let source_columns: Vec<String> = source_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let c = &s.config.columns;
    let mut meta = vec![&c.scd_id, &c.updated_at, &c.valid_from, &c.valid_to];
    if s.config.hard_deletes == HardDeletes::NewRecord {
        meta.push(&c.is_deleted);
    }
    if let Some(m) = meta.iter().find(|m| source_columns.contains(m)) {
        return Err(err(format!(
            "the query returns a column `{m}`, which the snapshot adds itself; rename it in the query, or set snapshot_meta_column_names"
        )));
    }
    // The types of the unique key and updated_at expressions.
    let updated_at = match &s.config.strategy {
        Strategy::Timestamp { updated_at }
        | Strategy::Check {
            updated_at: Some(updated_at),
            ..
        } => Some(updated_at.clone()),
        Strategy::Check { .. } => None,
    };
    let mut exprs: Vec<String> = s
        .config
        .unique_key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("({k}) AS k{i}"))
        .collect();
    if let Some(u) = &updated_at {
        exprs.push(format!("({u}) AS u"));
    }
    let probe = format!("SELECT {} FROM (\n{source_sql}\n) AS q", exprs.join(", "));
    let probed = engine.sql(&probe).await.map_err(|e| {
        err(format!(
            "unique_key ({}){}: {e}",
            s.config.unique_key.join(", "),
            match &updated_at {
                Some(u) => format!(" or updated_at ({u})"),
                None => String::new(),
            }
        ))
    })?;
    let types: Vec<DataType> = probed
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let key_types = &types[..s.config.unique_key.len()];
    let updated_at_type = updated_at.as_ref().and_then(|_| types.last());
    let plan = Plan {
        config: &s.config,
        source_sql: &source_sql,
        source_columns: &source_columns,
        key_types,
        updated_at_type,
        run_time: run_time(),
    };
    check_duplicates(engine, s, &plan).await?;

    let wh = engine.warehouse();
    let existing = wh.open_table(&s.schema, &s.table).await?;
    let props = CommitProperties::default()
        .with_cleanup_expired_logs(Some(false))
        .with_metadata([
            ("sluice.run_id".to_string(), run_id.into()),
            ("sluice.snapshot".to_string(), s.id().into()),
            (
                "sluice.sql_hash".to_string(),
                crate::models::compile::sha256_hex(&source_sql).into(),
            ),
        ]);
    let state: Arc<dyn datafusion::catalog::Session> = Arc::new(engine.context().state());
    let storage = |e: deltalake::DeltaTableError| err(Error::delta_write(s.id(), e).to_string());
    let Some(table) = existing else {
        // First run: every row, current.
        let df = engine
            .sql(&plan.build_sql())
            .await
            .map_err(|e| err(e.to_string()))?;
        let df = storage_types(df).map_err(|e| err(e.to_string()))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let url = wh.table_url(&s.schema, &s.table)?;
        let mut write = wh
            .table_handle(&url)?
            .write(vec![])
            .with_input_plan(df.logical_plan().clone())
            .with_session_state(state)
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_writer_properties(writer_properties(&schema))
            .with_target_file_size(NonZeroU64::new(TARGET_FILE_SIZE))
            .with_commit_properties(props)
            .with_table_name(s.id());
        if let Some(d) = &s.config.description {
            write = write.with_description(d.clone());
        }
        let table = write.await.map_err(storage)?;
        let rows = crate::warehouse::added_rows(&table).await.unwrap_or(0);
        let version = table.version();
        engine.pin(&s.schema, &s.table, table);
        return Ok(SnapshotResult {
            action: "created",
            version,
            inserted: rows,
            closed: 0,
        });
    };

    // Later runs: stage the changes, then one merge.
    let snapshot = table.snapshot().map_err(storage)?;
    let target_schema: SchemaRef = snapshot.snapshot().arrow_schema();
    let target_columns: Vec<String> = target_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    for m in &meta {
        if !target_columns.contains(m) {
            return Err(err(format!(
                "the table `{}` has no column `{m}`, so it is not this snapshot's table (or its snapshot_meta_column_names or hard_deletes changed); drop the table to start the history again, or set the config it was built with",
                s.id()
            )));
        }
    }
    // Columns the query returns and the table lacks are added at the end,
    // as dbt adds them (older versions hold NULL).
    let added: Vec<String> = source_columns
        .iter()
        .filter(|c| !target_columns.contains(c))
        .cloned()
        .collect();
    let (check_cols, column_added) = match &s.config.strategy {
        Strategy::Check { columns, .. } => {
            let cols = sql::check_columns(columns, &source_columns).map_err(err)?;
            let added = cols.iter().any(|c| !target_columns.contains(c));
            let present: Vec<String> = cols
                .into_iter()
                .filter(|c| target_columns.contains(c))
                .collect();
            (present, added)
        }
        Strategy::Timestamp { .. } => (Vec::new(), false),
    };
    let staging = plan.staging_sql(
        &format!("{}.{}", quote(&s.schema), quote(&s.table)),
        &target_columns,
        &check_cols,
        column_added,
    );
    tracing::debug!("snapshot {}: staging query\n{staging}", s.id());
    let df = engine
        .sql(&staging)
        .await
        .map_err(|e| err(format!("staging the changes: {e}")))?;
    let df = conform(df, &target_schema, &added).map_err(|e| err(e.to_string()))?;
    let mut insert_columns = target_columns.clone();
    insert_columns.extend(added.iter().cloned());
    let (scd, to) = (quote(&c.scd_id), quote(&c.valid_to));
    let current = match plan.current_sql() {
        Some(cur) => format!("(t.{to} = {cur} OR t.{to} IS NULL)"),
        None => format!("t.{to} IS NULL"),
    };
    let predicate =
        format!("t.{scd} = s.{scd} AND s.dbt_change_type IN ('update', 'delete') AND {current}");
    let q = |alias: &str, c: &str| col(format!("{alias}.{}", quote(c)));
    let (table, metrics) = table
        .merge(df, predicate)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_session_state(state)
        .with_commit_properties(props)
        .with_writer_properties(writer_properties(&target_schema))
        .with_merge_schema(!added.is_empty())
        .when_matched_update(|u| u.update(c.valid_to.as_str(), q("s", &c.valid_to)))
        .map_err(storage)?
        .when_not_matched_insert(|mut i| {
            i = i.predicate("s.dbt_change_type = 'insert'");
            for name in &insert_columns {
                i = i.set(name.as_str(), q("s", name));
            }
            i
        })
        .map_err(storage)?
        .await
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("multiple") || msg.contains("duplicate") {
                err(format!(
                    "{msg}; the table has more than one current row for a key: it was changed outside the snapshot"
                ))
            } else {
                err(Error::delta_write(s.id(), e).to_string())
            }
        })?;
    let version = table.version();
    engine.pin(&s.schema, &s.table, table);
    let changed = metrics.num_target_rows_inserted + metrics.num_target_rows_updated > 0;
    Ok(SnapshotResult {
        action: if changed { "merged" } else { "unchanged" },
        version,
        inserted: metrics.num_target_rows_inserted as u64,
        closed: metrics.num_target_rows_updated as u64,
    })
}

/// Fails when the query returns a unique key more than once (dbt fails too:
/// the history of such a key is ambiguous).
async fn check_duplicates(engine: &Engine, s: &Snapshot, plan: &Plan<'_>) -> Result<()> {
    let batches = engine
        .query(&plan.duplicates_sql())
        .await
        .map_err(|e| s.err(format!("checking unique_key: {e}")))?;
    let mut examples = Vec::new();
    for b in &batches {
        for row in 0..b.num_rows() {
            let mut parts = Vec::new();
            for (k, name) in s.config.unique_key.iter().enumerate() {
                let v = ScalarValue::try_from_array(b.column(k), row)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                parts.push(format!("{name} = {v}"));
            }
            let n = ScalarValue::try_from_array(b.column(s.config.unique_key.len()), row)
                .map(|v| v.to_string())
                .unwrap_or_default();
            examples.push(format!("{} ({n} rows)", parts.join(", ")));
        }
    }
    if examples.is_empty() {
        return Ok(());
    }
    Err(s.err(format!(
        "the query returns more than one row for a unique_key value: {}; a snapshot needs one row per key: fix the query or the unique_key; nothing was written",
        examples.join("; ")
    )))
}

/// Timestamps in microseconds and strings as `Utf8`, as Delta stores them.
fn storage_types(df: DataFrame) -> Result<DataFrame> {
    let fields = df.schema().as_arrow().fields().clone();
    let exprs: Vec<Expr> = fields
        .iter()
        .map(|f| {
            let c = Expr::Column(datafusion::common::Column::from_name(f.name()));
            let t = storage_type(f.data_type());
            if &t == f.data_type() {
                c
            } else {
                cast(c, t).alias(f.name())
            }
        })
        .collect();
    Ok(df.select(exprs)?)
}

fn storage_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    }
}

/// The staged rows shaped like the table: `dbt_change_type`, then the
/// table's columns in its order and types (NULL for a column the query no
/// longer returns), then the `added` columns in storage types (NULL but in
/// inserted rows).
fn conform(df: DataFrame, target: &SchemaRef, added: &[String]) -> Result<DataFrame> {
    let staged = df.schema().as_arrow().clone();
    let mut exprs: Vec<Expr> = vec![col("dbt_change_type")];
    for f in target.fields() {
        let t = storage_type(f.data_type());
        let e = match staged.field_with_name(f.name()) {
            Ok(q) if q.data_type() == &t => {
                Expr::Column(datafusion::common::Column::from_name(f.name()))
            }
            Ok(_) => cast(
                Expr::Column(datafusion::common::Column::from_name(f.name())),
                t,
            ),
            Err(_) => cast(lit(ScalarValue::Null), t),
        };
        exprs.push(e.alias(f.name()));
    }
    // Only inserted rows carry the added columns' values: deltalake's merge
    // with schema evolution copies a new column from the source into the
    // rows it updates, and a closed version keeps NULL there (as in dbt).
    for name in added {
        let c = Expr::Column(datafusion::common::Column::from_name(name));
        let t = staged
            .field_with_name(name)
            .map(|q| storage_type(q.data_type()))
            .unwrap_or(DataType::Null);
        let e = datafusion::logical_expr::when(
            col("dbt_change_type").eq(lit("insert")),
            cast(c, t.clone()),
        )
        .otherwise(cast(lit(ScalarValue::Null), t))?;
        exprs.push(e.alias(name));
    }
    Ok(df.select(exprs)?)
}
