//! Rendering query results for people (`table`) and programs (`csv`, `json`).

use crate::error::{Error, Result};
use datafusion::arrow::record_batch::RecordBatch;
use std::io::Write;

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
    let io = |e: std::io::Error| Error::io("<stdout>", e);
    match format {
        OutputFormat::Table => {
            // A statement without a result (DROP, CREATE VIEW) prints nothing.
            if batches.iter().all(|b| b.num_columns() == 0) {
                return Ok(());
            }
            let text = datafusion::arrow::util::pretty::pretty_format_batches(batches)?;
            writeln!(out, "{text}").map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.iter().all(|b| b.num_rows() == 0) {
                if let Some(b) = batches.first() {
                    w.write(b)?;
                }
            }
            for b in batches.iter().filter(|b| b.num_rows() > 0) {
                w.write(b)?;
            }
        }
        OutputFormat::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            drop(w);
            writeln!(out).map_err(io)?;
        }
    }
    Ok(())
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
}
