//! Table history read straight from the Delta log, one record per commit.

use crate::error::{Error, Result};
use deltalake::DeltaTable;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::ObjectStoreExt;
use serde::Serialize;

/// One commit of a table.
#[derive(Debug, Clone, Serialize)]
pub struct CommitRecord {
    pub version: u64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    pub operation: String,
    /// Rows added by the commit (from sluice's metadata or the Add actions' stats).
    pub rows_added: Option<u64>,
    /// Number of data files added / removed.
    pub files_added: u64,
    pub files_removed: u64,
    /// sluice load id, when a load made the commit.
    pub load_id: Option<String>,
    /// sluice source name, when a load made the commit.
    pub source: Option<String>,
    /// Source files of a load commit (`path`, `size`, `modified`/`etag`).
    pub source_files: Vec<serde_json::Value>,
    /// sluice run id, when `sluice run` made the commit.
    pub run_id: Option<String>,
    /// SHA-256 of the model SQL that made the commit.
    pub sql_hash: Option<String>,
}

/// All commits of `table` still present in its log, oldest first.
pub async fn history(table: &DeltaTable) -> Result<Vec<CommitRecord>> {
    history_after(table, None).await
}

/// The commits of `table` after version `after` (all when `None`), oldest
/// first: what landed since a snapshot was read. Lists the log, so it also
/// returns commits newer than the version `table` has loaded.
pub async fn history_after(table: &DeltaTable, after: Option<u64>) -> Result<Vec<CommitRecord>> {
    commits(table, after, usize::MAX).await
}

/// The newest `keep` commits of `table`, oldest first, read from its log
/// without loading the table (a handle is enough); none when there is no
/// log.
pub async fn history_tail(table: &DeltaTable, keep: usize) -> Result<Vec<CommitRecord>> {
    commits(table, None, keep).await
}

async fn commits(table: &DeltaTable, after: Option<u64>, keep: usize) -> Result<Vec<CommitRecord>> {
    let store = table.log_store().object_store(None);
    let log = ObjPath::from("_delta_log");
    let metas: Vec<_> = store
        .list(Some(&log))
        .try_collect()
        .await
        .map_err(|e| Error::storage(table.table_url(), e))?;
    let mut commits: Vec<(u64, ObjPath)> = metas
        .into_iter()
        .filter_map(|m| {
            let name = m.location.filename()?.to_string();
            let stem = name.strip_suffix(".json")?;
            let v: u64 = stem.parse().ok()?;
            after.is_none_or(|a| v > a).then_some((v, m.location))
        })
        .collect();
    commits.sort_by_key(|(v, _)| *v);
    let commits = commits.split_off(commits.len().saturating_sub(keep));
    let mut out = Vec::with_capacity(commits.len());
    for (version, path) in commits {
        let bytes = store
            .get(&path)
            .await
            .map_err(|e| Error::storage(table.table_url(), e))?
            .bytes()
            .await
            .map_err(|e| Error::storage(table.table_url(), e))?;
        out.push(parse_commit(version, &bytes));
    }
    Ok(out)
}

fn parse_commit(version: u64, bytes: &[u8]) -> CommitRecord {
    let mut rec = CommitRecord {
        version,
        timestamp_ms: None,
        operation: String::new(),
        rows_added: None,
        files_added: 0,
        files_removed: 0,
        load_id: None,
        source: None,
        source_files: Vec::new(),
        run_id: None,
        sql_hash: None,
    };
    let mut stats_rows: Option<u64> = None;
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(ci) = v.get("commitInfo") {
            rec.timestamp_ms = ci.get("timestamp").and_then(|t| t.as_i64());
            rec.operation = ci
                .get("operation")
                .and_then(|o| o.as_str())
                .unwrap_or_default()
                .to_string();
            rec.load_id = ci
                .get("sluice.load_id")
                .and_then(|o| o.as_str())
                .map(str::to_string);
            rec.source = ci
                .get("sluice.source")
                .and_then(|o| o.as_str())
                .map(str::to_string);
            let text = |k: &str| ci.get(k).and_then(|o| o.as_str()).map(str::to_string);
            rec.run_id = text("sluice.run_id");
            rec.sql_hash = text("sluice.sql_hash");
            if let Some(files) = ci.get("sluice.files").and_then(|f| f.as_array()) {
                rec.source_files = files.clone();
            }
            if let Some(rows) = ci.get("sluice.rows").and_then(|r| r.as_u64()) {
                rec.rows_added = Some(rows);
            }
        } else if let Some(add) = v.get("add") {
            rec.files_added += 1;
            let n = add
                .get("stats")
                .and_then(|s| s.as_str())
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|s| s.get("numRecords").and_then(|n| n.as_u64()));
            if let Some(n) = n {
                *stats_rows.get_or_insert(0) += n;
            }
        } else if v.get("remove").is_some() {
            rec.files_removed += 1;
        }
    }
    if rec.rows_added.is_none() {
        rec.rows_added = stats_rows.or(if rec.files_added == 0 { Some(0) } else { None });
    }
    rec
}

/// History as a record batch, for printing like a query result.
pub fn history_batch(records: &[CommitRecord]) -> Result<arrow::record_batch::RecordBatch> {
    use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", DataType::UInt64, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("operation", DataType::Utf8, false),
        Field::new("rows_added", DataType::UInt64, true),
        Field::new("files_added", DataType::UInt64, false),
        Field::new("files_removed", DataType::UInt64, false),
        Field::new("load_id", DataType::Utf8, true),
        Field::new("source_files", DataType::Utf8, true),
        Field::new("run_id", DataType::Utf8, true),
    ]));
    let files: Vec<Option<String>> = records
        .iter()
        .map(|r| {
            (!r.source_files.is_empty()).then(|| {
                r.source_files
                    .iter()
                    .filter_map(|f| f.get("path").and_then(|p| p.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        })
        .collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(
            records.iter().map(|r| r.version),
        )),
        Arc::new(
            TimestampMillisecondArray::from(
                records.iter().map(|r| r.timestamp_ms).collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.operation.as_str()),
        )),
        Arc::new(UInt64Array::from(
            records.iter().map(|r| r.rows_added).collect::<Vec<_>>(),
        )),
        Arc::new(UInt64Array::from_iter_values(
            records.iter().map(|r| r.files_added),
        )),
        Arc::new(UInt64Array::from_iter_values(
            records.iter().map(|r| r.files_removed),
        )),
        Arc::new(StringArray::from(
            records
                .iter()
                .map(|r| r.load_id.clone())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(files)),
        Arc::new(StringArray::from(
            records.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>(),
        )),
    ];
    Ok(arrow::record_batch::RecordBatch::try_new(schema, cols)?)
}

/// All commits of the warehouse table `name`, oldest first (`sluice history`);
/// an [`Error::UnknownTable`] when there is no such table.
pub async fn table_history(
    wh: &super::Warehouse,
    name: &super::TableName,
) -> Result<Vec<CommitRecord>> {
    let Some(table) = wh.open_table(&name.schema, &name.table).await? else {
        return Err(Error::UnknownTable {
            table: name.to_string(),
            hint: format!(" in warehouse {}", wh.root()),
        });
    };
    history(&table).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_our_metadata() {
        let log = br#"{"commitInfo":{"timestamp":5,"operation":"WRITE","sluice.load_id":"L1","sluice.source":"s","sluice.files":[{"path":"a.csv"}]}}
{"add":{"path":"x.parquet","stats":"{\"numRecords\":3}"}}
{"add":{"path":"y.parquet","stats":"{\"numRecords\":4}"}}"#;
        let r = parse_commit(2, log);
        assert_eq!(r.version, 2);
        assert_eq!(r.rows_added, Some(7));
        assert_eq!(r.files_added, 2);
        assert_eq!(r.load_id.as_deref(), Some("L1"));
        assert_eq!(r.source_files.len(), 1);
    }
}
