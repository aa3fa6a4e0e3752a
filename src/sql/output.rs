//! Rendering query results for people (`table`) and programs (`csv`, `json`).

use crate::error::{Error, Result};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use std::io::Write;
use std::sync::Arc;

/// Output format of `sluice sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of row objects.
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            other => Err(Error::invalid(format!(
                "invalid format '{other}': use table, csv or json"
            ))),
        }
    }
}

/// Writes `batches` to `out` in `format`.
pub fn write_batches(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<()> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => Arc::new(Schema::empty()),
    };
    let mut w = BatchWriter::new(out, format, schema);
    for b in batches {
        w.write(b)?;
    }
    w.finish()
}

/// Writes one result batch by batch: CSV and JSON rows go out as they come
/// (a large result is never held whole); a table needs every row to size its
/// columns and is written by [`BatchWriter::finish`].
pub struct BatchWriter<'a> {
    schema: SchemaRef,
    inner: Inner<'a>,
}

enum Inner<'a> {
    Table(&'a mut dyn Write, Vec<RecordBatch>),
    /// With whether a row was written (the header comes with the first).
    /// Boxed: the CSV writer is large, and one writer lives per result.
    Csv(Box<datafusion::arrow::csv::Writer<&'a mut dyn Write>>, bool),
    Json(datafusion::arrow::json::ArrayWriter<&'a mut dyn Write>),
}

impl<'a> BatchWriter<'a> {
    /// A writer of a result with `schema` (a result without columns, such as
    /// DROP's, prints nothing as a table or CSV, and `[]` as JSON).
    pub fn new(out: &'a mut dyn Write, format: OutputFormat, schema: SchemaRef) -> Self {
        let inner = match format {
            OutputFormat::Table => Inner::Table(out, Vec::new()),
            OutputFormat::Csv => Inner::Csv(
                Box::new(
                    datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(out),
                ),
                false,
            ),
            OutputFormat::Json => Inner::Json(datafusion::arrow::json::ArrayWriter::new(out)),
        };
        BatchWriter { schema, inner }
    }

    /// Writes (or, for a table, keeps) `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match &mut self.inner {
            Inner::Table(_, kept) => kept.push(batch.clone()),
            Inner::Csv(w, wrote) => {
                w.write(batch)?;
                *wrote = true;
            }
            Inner::Json(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Ends the document: the table, the CSV header of a result without
    /// rows, the JSON array's end.
    pub fn finish(self) -> Result<()> {
        let io = |e: std::io::Error| Error::io("<stdout>", e);
        let no_columns = self.schema.fields().is_empty();
        match self.inner {
            Inner::Table(out, mut kept) => {
                // A statement without a result (DROP, CREATE VIEW) prints nothing.
                if no_columns {
                    return Ok(());
                }
                if kept.is_empty() {
                    kept.push(RecordBatch::new_empty(self.schema.clone()));
                }
                let text = datafusion::arrow::util::pretty::pretty_format_batches(&kept)?;
                writeln!(out, "{text}").map_err(io)?;
            }
            Inner::Csv(mut w, wrote) => {
                if !wrote && !no_columns {
                    w.write(&RecordBatch::new_empty(self.schema.clone()))?;
                }
            }
            Inner::Json(mut w) => {
                w.finish()?;
                let out = w.into_inner();
                writeln!(out).map_err(io)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn json_and_csv() {
        let mut out = Vec::new();
        write_batches(&mut out, &[batch()], OutputFormat::Json).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[{\"n\":1,\"s\":\"a\"},{\"n\":2}]\n"
        );
        let mut out = Vec::new();
        write_batches(&mut out, &[batch()], OutputFormat::Csv).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "n,s\n1,a\n2,\n");
        let mut out = Vec::new();
        write_batches(&mut out, &[batch().slice(0, 0)], OutputFormat::Json).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[]\n");
    }

    /// Batch by batch: a result without rows still has its CSV header and
    /// table header; one without columns prints nothing.
    #[test]
    fn streams_and_ends_documents() {
        let write = |format, batches: &[RecordBatch], schema| {
            let mut out = Vec::new();
            let mut w = BatchWriter::new(&mut out, format, schema);
            for b in batches {
                w.write(b).unwrap();
            }
            w.finish().unwrap();
            String::from_utf8(out).unwrap()
        };
        let schema = batch().schema();
        let two = [batch().slice(0, 1), batch().slice(1, 1)];
        assert_eq!(
            write(OutputFormat::Csv, &two, schema.clone()),
            "n,s\n1,a\n2,\n"
        );
        assert_eq!(
            write(OutputFormat::Json, &two, schema.clone()),
            "[{\"n\":1,\"s\":\"a\"},{\"n\":2}]\n"
        );
        assert_eq!(write(OutputFormat::Csv, &[], schema.clone()), "n,s\n");
        assert_eq!(write(OutputFormat::Json, &[], schema.clone()), "[]\n");
        assert_eq!(
            write(OutputFormat::Table, &[], schema.clone()),
            "+---+---+\n| n | s |\n+---+---+\n+---+---+\n"
        );
        let none = Arc::new(Schema::empty());
        assert_eq!(write(OutputFormat::Table, &[], none.clone()), "");
        assert_eq!(write(OutputFormat::Csv, &[], none), "");
    }
}
