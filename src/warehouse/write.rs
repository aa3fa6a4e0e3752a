//! Writing data files: the Parquet settings every table write uses.

use crate::error::Error;
use arrow::datatypes::SchemaRef;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// Target size of one data file.
pub const TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// ZSTD everywhere; dictionary encoding only for text (where it pays), chunk-level
/// statistics (Delta keeps its own per-file statistics for skipping).
pub fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    use deltalake::parquet::file::properties::EnabledStatistics;
    use deltalake::parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_dictionary_enabled(false);
    for f in schema.fields() {
        if matches!(
            f.data_type(),
            arrow::datatypes::DataType::Utf8
                | arrow::datatypes::DataType::LargeUtf8
                | arrow::datatypes::DataType::Utf8View
        ) {
            b = b.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), true);
        }
    }
    b.build()
}

/// Rows the table's latest commit added (from its operation metrics).
pub async fn added_rows(table: &deltalake::DeltaTable) -> Option<u64> {
    use futures::StreamExt;
    let mut history = table.history(Some(1));
    let commit = history.next().await?.ok()?;
    commit
        .info
        .get("operationMetrics")
        .and_then(|m| m.get("num_added_rows"))
        .and_then(|v| v.as_u64())
}

/// Checks that a result's column names can be Delta columns (named, valid, unique).
pub fn check_columns(schema: &SchemaRef) -> crate::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for f in schema.fields() {
        if f.name().is_empty() {
            return Err(Error::invalid(
                "a result column has no name; give every expression an alias (AS name)",
            ));
        }
        if f.name().chars().any(|c| " ,;{}()\n\t=".contains(c)) {
            return Err(Error::invalid(format!(
                "result column `{}` is not a valid Delta column name; give the expression an alias (AS name)",
                f.name()
            )));
        }
        if !seen.insert(f.name().to_ascii_lowercase()) {
            return Err(Error::invalid(format!(
                "the result has two columns named `{}`; alias one of them",
                f.name()
            )));
        }
    }
    Ok(())
}
