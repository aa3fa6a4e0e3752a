//! The warehouse as templates see it at compile time: `run_query`,
//! `{% call statement %}`, `adapter.get_columns_in_relation` and
//! `adapter.get_relation` run through the engine.
//!
//! Rendering is synchronous (minijinja), the engine is async: a query blocks
//! the rendering thread. On a multi-threaded runtime that is `block_in_place`;
//! elsewhere (a current-thread runtime, no runtime) the query runs on a
//! helper thread with its own small runtime.

use super::jinja::{Introspect, QueryResult};
use crate::error::{Error, Result};
use crate::sql::Engine;
use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// [`Introspect`] over an engine.
pub(crate) struct EngineIntrospect {
    pub(crate) engine: Engine,
}

impl std::fmt::Debug for EngineIntrospect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineIntrospect")
    }
}

fn block_on<F>(fut: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| h.block_on(fut)))
        }
        _ => std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Error::Internal(format!("cannot start a runtime for run_query: {e}"))
                    })?;
                Ok(rt.block_on(fut))
            })
            .join()
            .map_err(|_| Error::Internal("run_query's thread failed".into()))?
        }),
    }
}

impl Introspect for EngineIntrospect {
    fn query(&self, sql: &str) -> Result<QueryResult> {
        let engine = self.engine.clone();
        let sql = sql.to_string();
        let batches = block_on(async move { engine.query(&sql).await })??;
        to_result(&batches)
    }

    fn columns(&self, schema: &str, table: &str) -> Result<Option<Vec<(String, String)>>> {
        let engine = self.engine.clone();
        let sql = format!("SELECT * FROM \"{schema}\".\"{table}\" LIMIT 0");
        let df = block_on(async move { engine.sql(&sql).await })?;
        Ok(df.ok().map(|df| {
            df.schema()
                .fields()
                .iter()
                .map(|f| {
                    (
                        f.name().clone(),
                        crate::sql::types::sql_type_name(f.data_type()),
                    )
                })
                .collect()
        }))
    }
}

/// An [`Introspect`] that remembers whether a template used it: such a
/// model's SQL depends on the warehouse's state, so it is rendered again just
/// before it runs (as dbt compiles each node when it runs), when the tables it
/// reads are built.
#[derive(Debug)]
pub(crate) struct Tracked {
    inner: Arc<dyn Introspect>,
    used: AtomicBool,
}

impl Tracked {
    pub(crate) fn new(inner: Arc<dyn Introspect>) -> Arc<Tracked> {
        Arc::new(Tracked {
            inner,
            used: AtomicBool::new(false),
        })
    }

    /// Whether a query or a relation lookup went through it.
    pub(crate) fn used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }
}

impl Introspect for Tracked {
    fn query(&self, sql: &str) -> Result<QueryResult> {
        self.used.store(true, Ordering::Relaxed);
        self.inner.query(sql)
    }

    fn columns(&self, schema: &str, table: &str) -> Result<Option<Vec<(String, String)>>> {
        self.used.store(true, Ordering::Relaxed);
        self.inner.columns(schema, table)
    }
}

/// Batches → rows of JSON values (numbers, strings, booleans, null; dates and
/// times as ISO text).
fn to_result(batches: &[RecordBatch]) -> Result<QueryResult> {
    let mut out = QueryResult::default();
    if let Some(b) = batches.first() {
        out.columns = b
            .schema()
            .fields()
            .iter()
            .map(|f| {
                (
                    f.name().clone(),
                    crate::sql::types::sql_type_name(f.data_type()),
                )
            })
            .collect();
    }
    for b in batches {
        for r in 0..b.num_rows() {
            let mut row = Vec::with_capacity(b.num_columns());
            for c in b.columns() {
                row.push(cell(c.as_ref(), r)?);
            }
            out.rows.push(row);
        }
    }
    Ok(out)
}

fn cell(array: &dyn Array, row: usize) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    if array.is_null(row) {
        return Ok(J::Null);
    }
    let v = ScalarValue::try_from_array(array, row).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => J::Bool(b),
        ScalarValue::Int8(Some(i)) => J::from(i),
        ScalarValue::Int16(Some(i)) => J::from(i),
        ScalarValue::Int32(Some(i)) => J::from(i),
        ScalarValue::Int64(Some(i)) => J::from(i),
        ScalarValue::UInt8(Some(i)) => J::from(i),
        ScalarValue::UInt16(Some(i)) => J::from(i),
        ScalarValue::UInt32(Some(i)) => J::from(i),
        ScalarValue::UInt64(Some(i)) => J::from(i),
        ScalarValue::Float32(Some(f)) => J::from(f as f64),
        ScalarValue::Float64(Some(f)) => J::from(f),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => J::String(s),
        ScalarValue::Decimal128(Some(_), _, _) | ScalarValue::Decimal256(Some(_), _, _) => {
            let text = v.to_string();
            match text.parse::<f64>() {
                Ok(f) if text.contains('.') => J::from(f),
                _ => text.parse::<i64>().map(J::from).unwrap_or(J::String(text)),
            }
        }
        other => J::String(other.to_string()),
    })
}
