//! The two ways a command prints its result: rows (a query's batches as a
//! table, CSV or JSON) and a document (a report as pretty JSON).

use super::args::RowsFormat;
use super::stdio::Stdout;
use arrow::record_batch::RecordBatch;
use sluice::sql::OutputFormat;
use std::io::Write;

impl From<RowsFormat> for OutputFormat {
    fn from(f: RowsFormat) -> Self {
        match f {
            RowsFormat::Table => OutputFormat::Table,
            RowsFormat::Csv => OutputFormat::Csv,
            RowsFormat::Json => OutputFormat::Json,
        }
    }
}

/// `batches` in `format`.
pub fn rows(out: &mut Stdout, batches: &[RecordBatch], format: RowsFormat) -> anyhow::Result<()> {
    sluice::sql::write_batches(out, batches, format.into())?;
    Ok(())
}

/// `value` as pretty JSON and a newline.
pub fn json(out: &mut Stdout, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}
