//! Where a training set goes when it is not printed (`sluice features
//! historical --out`): a file, written as `COPY ... TO` writes it, or a
//! warehouse table, replaced as `CREATE OR REPLACE TABLE ... AS` replaces it.
//!
//! Both are built as plans from the training set's query, never as SQL text,
//! so no path or name needs quoting.

use super::TrainingSet;
use crate::error::{Error, Result};
use crate::sql::{Engine, Executed};
use crate::warehouse::TableName;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::{CreateMemoryTable, DdlStatement, LogicalPlan};
use std::sync::Arc;

/// A file format a training set can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    Csv,
    /// Newline-delimited JSON (`.json` or `.ndjson`), as `COPY ... TO 'x.json'`.
    Json,
}

/// Where a training set is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A file path or object-store URL.
    File { path: String, format: FileFormat },
    /// A warehouse table, created or replaced.
    Table(TableName),
}

/// The file formats by extension.
const EXTENSIONS: [(&str, FileFormat); 4] = [
    (".parquet", FileFormat::Parquet),
    (".csv", FileFormat::Csv),
    (".json", FileFormat::Json),
    (".ndjson", FileFormat::Json),
];

impl Destination {
    /// `target` is a file when it ends in `.parquet`, `.csv`, `.json` or
    /// `.ndjson` or contains a `/`; otherwise a table (`schema.table`, or
    /// `table` in `default_schema`).
    pub fn parse(target: &str, default_schema: &str) -> Result<Self> {
        let lower = target.to_ascii_lowercase();
        let format = EXTENSIONS
            .iter()
            .find(|(ext, _)| lower.ends_with(ext))
            .map(|(_, f)| *f);
        match format {
            Some(format) => Ok(Destination::File {
                path: target.to_string(),
                format,
            }),
            None if target.contains('/') => Err(Error::Usage(format!(
                "`{target}`: a training set file must end in .parquet, .csv, .json or .ndjson (or name a table: schema.table)"
            ))),
            None => Ok(Destination::Table(TableName::parse(target, default_schema)?)),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::File { path, .. } => f.write_str(path),
            Destination::Table(t) => write!(f, "{t}"),
        }
    }
}

/// Runs the training set's query into `to`; returns the rows written.
pub async fn write_training_set(
    engine: &Engine,
    set: &TrainingSet,
    to: &Destination,
) -> Result<u64> {
    match to {
        Destination::Table(name) => {
            let input = engine.plan(&set.sql).await?;
            let create = CreateMemoryTable {
                name: datafusion::common::TableReference::partial(
                    name.schema.as_str(),
                    name.table.as_str(),
                ),
                constraints: Default::default(),
                input: Arc::new(input),
                if_not_exists: false,
                or_replace: true,
                column_defaults: Vec::new(),
                temporary: false,
            };
            match engine
                .run_plan(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)))
                .await?
            {
                Executed::Changed { rows } => Ok(rows.unwrap_or(0)),
                Executed::Rows(_) => Err(Error::Internal(format!(
                    "creating {name} returned rows instead of a count"
                ))),
            }
        }
        Destination::File { path, format } => {
            let Executed::Rows(df) = engine.execute(&set.sql).await? else {
                return Err(Error::Internal(
                    "a training set's query changed the warehouse".into(),
                ));
            };
            let options = DataFrameWriteOptions::new();
            let counts = match format {
                FileFormat::Parquet => df.write_parquet(path, options, None).await?,
                FileFormat::Csv => df.write_csv(path, options, None).await?,
                FileFormat::Json => df.write_json(path, options, None).await?,
            };
            Ok(count(&counts))
        }
    }
}

/// The `count` a write reports (one row, one UInt64 column).
fn count(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> u64 {
    batches
        .first()
        .and_then(|b| b.columns().first())
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .filter(|a| !a.is_empty())
                .map(|a| a.value(0))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_by_extension_or_slash_tables_otherwise() {
        let file = |p: &str, format| Destination::File {
            path: p.to_string(),
            format,
        };
        let parse = |t: &str| Destination::parse(t, "raw");
        assert_eq!(
            parse("out/train.parquet").unwrap(),
            file("out/train.parquet", FileFormat::Parquet)
        );
        assert_eq!(parse("t.CSV").unwrap(), file("t.CSV", FileFormat::Csv));
        assert_eq!(
            parse("t.ndjson").unwrap(),
            file("t.ndjson", FileFormat::Json)
        );
        assert_eq!(
            parse("s3://b/t.json").unwrap(),
            file("s3://b/t.json", FileFormat::Json)
        );
        assert_eq!(
            parse("features.training").unwrap().to_string(),
            "features.training"
        );
        assert_eq!(parse("training").unwrap().to_string(), "raw.training");
        for bad in ["out/", "out/train.txt", "a.b.c", "Bad Name"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }
}
