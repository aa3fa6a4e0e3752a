//! Rejected rows: never dropped, written to `<target>__rejected`.

use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

/// One row that did not fit the declared schema.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// 1-based line (CSV, NDJSON) or row (Parquet) number in the file.
    pub line: u64,
    /// The raw text of the record (lossy UTF-8).
    pub raw: String,
    /// Why it was rejected, naming the column.
    pub reason: String,
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("load_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("raw", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new(
            "rejected_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
});

/// Schema of every `__rejected` table.
pub fn rejected_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Builds a batch of rejected rows of one file.
pub fn rejected_batch(
    load_id: &str,
    source: &str,
    file: &str,
    rows: &[Rejected],
    now_us: i64,
) -> arrow::error::Result<RecordBatch> {
    let n = rows.len();
    let mut load = StringBuilder::with_capacity(n, n * load_id.len());
    let mut src = StringBuilder::with_capacity(n, n * source.len());
    let mut f = StringBuilder::with_capacity(n, n * file.len());
    let mut line = Int64Builder::with_capacity(n);
    let mut raw = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for r in rows {
        load.append_value(load_id);
        src.append_value(source);
        f.append_value(file);
        line.append_value(r.line as i64);
        raw.append_value(&r.raw);
        reason.append_value(&r.reason);
        at.append_value(now_us);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(load.finish()),
        Arc::new(src.finish()),
        Arc::new(f.finish()),
        Arc::new(line.finish()),
        Arc::new(raw.finish()),
        Arc::new(reason.finish()),
        Arc::new(at.finish()),
    ];
    RecordBatch::try_new(rejected_schema(), cols)
}
