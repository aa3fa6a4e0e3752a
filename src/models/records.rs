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
