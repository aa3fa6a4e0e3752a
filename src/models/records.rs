//! Run records: `target/run_results.json` (dbt's format, for tools that read
//! it) and the Delta table `_sluice.runs` (one row per model or test per run,
//! with the version of every input it read: what makes a training set
//! reproducible with `VERSION AS OF`).

use super::run::{NodeResult, RunReport};
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Schema and table of the run records.
pub const RUNS_SCHEMA: &str = "_sluice";
pub const RUNS_TABLE: &str = "runs";

/// dbt's resource type of a node: unit tests are `unit_test`.
fn resource_type(r: &NodeResult) -> &str {
    match (r.kind, r.materialization.as_str()) {
        ("test", "unit") => "unit_test",
        (kind, _) => kind,
    }
}

/// Writes `target/run_results.json` under `project_root`; returns its path.
pub fn write_run_results(
    project_root: &Path,
    project: &str,
    report: &RunReport,
) -> Result<PathBuf> {
    let dir = project_root.join("target");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let results: Vec<_> = report
        .results
        .iter()
        .map(|r| {
            let completed = chrono::DateTime::parse_from_rfc3339(&r.started_at)
                .map(|t| {
                    (t + chrono::Duration::milliseconds((r.seconds * 1000.0) as i64)).to_rfc3339()
                })
                .unwrap_or_else(|_| r.started_at.clone());
            json!({
                "unique_id": format!("{}.{project}.{}", resource_type(r), r.id),
                "status": r.status.as_str(),
                "timing": [{"name": "execute", "started_at": r.started_at, "completed_at": completed}],
                "thread_id": "sluice",
                "execution_time": r.seconds,
                "adapter_response": {"rows_affected": r.rows},
                "message": r.message,
                "failures": r.failures,
                "relation_name": if r.kind == "model" { Some(r.id.clone()) } else { None },
                "compiled_code_hash": r.sql_hash,
                "sluice": {
                    "materialization": r.materialization,
                    "version": r.version,
                    "inputs": r.inputs,
                    "file": r.file,
                },
            })
        })
        .collect();
    let doc = json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "generator": format!("sluice {}", env!("CARGO_PKG_VERSION")),
            "generated_at": chrono::Utc::now().to_rfc3339(),
            "invocation_id": report.run_id,
        },
        "results": results,
        "elapsed_time": report.seconds,
        "args": {"which": report.command},
    });
    let path = dir.join("run_results.json");
    let text = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// The schema of `_sluice.runs`.
pub fn runs_schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("command", DataType::Utf8, false),
        Field::new("node", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("materialization", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("started_at", ts, true),
        Field::new("seconds", DataType::Float64, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("output_version", DataType::Int64, true),
        Field::new("failures", DataType::Int64, true),
        Field::new("inputs", DataType::Utf8, true),
        Field::new("sql_hash", DataType::Utf8, true),
        Field::new("message", DataType::Utf8, true),
        Field::new("file", DataType::Utf8, true),
    ]))
}

fn batch(report: &RunReport) -> Result<RecordBatch> {
    let r: &[NodeResult] = &report.results;
    let s = |f: &dyn Fn(&NodeResult) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(r.iter().map(f).collect::<Vec<_>>()))
    };
    let i = |f: &dyn Fn(&NodeResult) -> Option<u64>| -> ArrayRef {
        Arc::new(Int64Array::from(
            r.iter().map(|x| f(x).map(|v| v as i64)).collect::<Vec<_>>(),
        ))
    };
    let started: Vec<Option<i64>> = r
        .iter()
        .map(|x| {
            chrono::DateTime::parse_from_rfc3339(&x.started_at)
                .ok()
                .map(|t| t.timestamp_micros())
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        s(&|_| Some(report.run_id.clone())),
        s(&|_| Some(report.command.clone())),
        s(&|x| Some(x.id.clone())),
        s(&|x| Some(x.kind.to_string())),
        s(&|x| Some(x.materialization.clone())),
        s(&|x| Some(x.status.as_str().to_string())),
        Arc::new(TimestampMicrosecondArray::from(started).with_timezone("UTC")),
        Arc::new(Float64Array::from(
            r.iter().map(|x| x.seconds).collect::<Vec<_>>(),
        )),
        i(&|x| x.rows),
        i(&|x| x.version),
        i(&|x| x.failures),
        s(&|x| serde_json::to_string(&x.inputs).ok()),
        s(&|x| x.sql_hash.clone()),
        s(&|x| x.message.clone()),
        s(&|x| Some(x.file.clone())),
    ];
    RecordBatch::try_new(runs_schema(), columns).map_err(|e| Error::Internal(e.to_string()))
}

/// Appends the run to `_sluice.runs` (one commit).
pub async fn append_runs(warehouse: &Warehouse, report: &RunReport) -> Result<()> {
    if report.results.is_empty() {
        return Ok(());
    }
    let b = batch(report)?;
    let table = match warehouse.open_table(RUNS_SCHEMA, RUNS_TABLE).await? {
        Some(t) => t,
        None => {
            let url = warehouse.table_url(RUNS_SCHEMA, RUNS_TABLE)?;
            warehouse.table_handle(&url)?
        }
    };
    table
        .write(vec![b])
        .with_save_mode(SaveMode::Append)
        .with_table_name(format!("{RUNS_SCHEMA}.{RUNS_TABLE}"))
        .with_commit_properties(
            CommitProperties::default()
                .with_cleanup_expired_logs(Some(false))
                .with_metadata([("sluice.run_id".to_string(), report.run_id.clone().into())]),
        )
        .await
        .map_err(|e| Error::storage(format!("{RUNS_SCHEMA}.{RUNS_TABLE}"), e))?;
    Ok(())
}

/// One row of `_sluice.runs`, as read back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub command: String,
    /// `schema.table` (models, loads) or the test name.
    pub node: String,
    /// `model`, `test`, `snapshot`, `load`...
    pub kind: String,
    pub status: String,
    /// RFC 3339.
    pub started_at: Option<String>,
    pub seconds: f64,
    pub rows: Option<i64>,
    /// Failing rows (tests), quarantined rows (loads).
    pub failures: Option<i64>,
    pub message: Option<String>,
}

/// Every row of `_sluice.runs`, oldest first; none when nothing was recorded.
pub async fn read_runs(engine: &crate::sql::Engine) -> Result<Vec<RunRecord>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
    if engine
        .warehouse()
        .open_table(RUNS_SCHEMA, RUNS_TABLE)
        .await?
        .is_none()
    {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT run_id, command, node, kind, status, started_at, seconds, rows, failures, message FROM {RUNS_SCHEMA}.{RUNS_TABLE} ORDER BY started_at NULLS FIRST, run_id"
    );
    let mut out = Vec::new();
    for b in engine.query(&sql).await? {
        // Strings may come back as views (Parquet reads): one type here.
        let text = |i: usize| {
            datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)
                .ok()
                .and_then(|a| a.as_string_opt::<i32>().cloned())
        };
        let (Some(run_id), Some(command), Some(node), Some(kind), Some(status), Some(message)) =
            (text(0), text(1), text(2), text(3), text(4), text(9))
        else {
            return Err(Error::Internal(format!(
                "{RUNS_SCHEMA}.{RUNS_TABLE} has unexpected column types"
            )));
        };
        let started = b
            .column(5)
            .as_primitive_opt::<TimestampMicrosecondType>()
            .cloned();
        let seconds = b.column(6).as_primitive_opt::<Float64Type>().cloned();
        let rows = b.column(7).as_primitive_opt::<Int64Type>().cloned();
        let failures = b.column(8).as_primitive_opt::<Int64Type>().cloned();
        let get = |a: &Option<datafusion::arrow::array::Int64Array>, r: usize| {
            a.as_ref().filter(|a| a.is_valid(r)).map(|a| a.value(r))
        };
        for r in 0..b.num_rows() {
            out.push(RunRecord {
                run_id: run_id.value(r).to_string(),
                command: command.value(r).to_string(),
                node: node.value(r).to_string(),
                kind: kind.value(r).to_string(),
                status: status.value(r).to_string(),
                started_at: started
                    .as_ref()
                    .filter(|a| a.is_valid(r))
                    .and_then(|a| chrono::DateTime::from_timestamp_micros(a.value(r)))
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                seconds: seconds
                    .as_ref()
                    .filter(|a| a.is_valid(r))
                    .map_or(0.0, |a| a.value(r)),
                rows: get(&rows, r),
                failures: get(&failures, r),
                message: message.is_valid(r).then(|| message.value(r).to_string()),
            });
        }
    }
    Ok(out)
}

/// The history of one test or load: every recorded result, oldest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trend {
    pub node: String,
    pub kind: String,
    pub runs: usize,
    /// Runs by status (`pass`, `fail`, `warn`, `error`, `success`...).
    pub by_status: std::collections::BTreeMap<String, usize>,
    pub last_status: String,
    pub last_failures: Option<i64>,
    pub last_run: Option<String>,
    /// Status and failures of each run, oldest first.
    pub history: Vec<(Option<String>, String, Option<i64>)>,
}

/// Trends of every node of `kinds` (`test`, `load`) in `records`, by name.
pub fn trends(records: &[RunRecord], kinds: &[&str]) -> Vec<Trend> {
    let mut by: std::collections::BTreeMap<(String, String), Trend> = Default::default();
    for r in records.iter().filter(|r| kinds.contains(&r.kind.as_str())) {
        let t = by
            .entry((r.kind.clone(), r.node.clone()))
            .or_insert_with(|| Trend {
                node: r.node.clone(),
                kind: r.kind.clone(),
                runs: 0,
                by_status: Default::default(),
                last_status: String::new(),
                last_failures: None,
                last_run: None,
                history: Vec::new(),
            });
        t.runs += 1;
        *t.by_status.entry(r.status.clone()).or_default() += 1;
        t.last_status = r.status.clone();
        t.last_failures = r.failures;
        t.last_run = r.started_at.clone();
        t.history
            .push((r.started_at.clone(), r.status.clone(), r.failures));
    }
    by.into_values().collect()
}
