//! A Delta snapshot scanned as plain Parquet: the table provider a cluster's
//! coordinator plans with.
//!
//! deltalake 1.1's scan node cannot be sent to a worker (it has no codec,
//! delta-rs issue 4171), and a worker reading it whole would make every task
//! read every file. This provider resolves the snapshot once, in the
//! coordinator, at the version the query pinned, and scans its add actions
//! as DataFusion's own Parquet scan: the files as file groups, partition
//! values as partition columns, Delta's file statistics to skip files, so the
//! distributed planner can split the files across tasks and every task reads
//! the same version whatever commits land meanwhile.
//!
//! Tables that need more than Parquet to be read correctly (deletion
//! vectors, column mapping) are refused with an error that says so.

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue, Statistics, ToDFSchema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::TableType;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use deltalake::DeltaTable;
use object_store::path::Path;
use object_store::ObjectMeta;
use std::sync::Arc;

/// One data file of the snapshot.
#[derive(Debug, Clone)]
struct DataFile {
    location: Path,
    size: u64,
    modified_ms: i64,
    rows: Option<usize>,
    /// In the order of [`DeltaParquetTable::partition_fields`].
    partition_values: Vec<ScalarValue>,
}

/// The files of one Delta version, read as Parquet.
#[derive(Debug)]
pub struct DeltaParquetTable {
    /// `schema.table` (for messages).
    name: String,
    version: Option<u64>,
    /// The columns as Delta's own provider shows them (same order and types).
    schema: SchemaRef,
    /// The table's columns stored in the files.
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    store_url: ObjectStoreUrl,
    files: Vec<DataFile>,
    /// The snapshot (for file statistics when a query filters).
    table: DeltaTable,
}

impl DeltaParquetTable {
    /// The provider of `table`'s loaded version; `name` names it in errors.
    pub async fn try_new(name: &str, table: DeltaTable) -> Result<Self> {
        let delta = table
            .table_provider()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let schema = delta.schema();
        let snapshot = table
            .snapshot()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let metadata = snapshot.metadata();
        let mapping = metadata
            .configuration()
            .get("delta.columnMapping.mode")
            .map(|m| m.to_ascii_lowercase());
        if let Some(mode) = mapping.filter(|m| m != "none") {
            return plan_err!(
                "`{name}` uses Delta column mapping (mode {mode}), which workers cannot read as plain Parquet yet: query it without [cluster] workers, or rewrite it without column mapping (CREATE TABLE ... AS SELECT)"
            );
        }
        let partition_columns: Vec<String> = metadata.partition_columns().to_vec();
        let mut partition_fields = Vec::with_capacity(partition_columns.len());
        for c in &partition_columns {
            let Ok(field) = schema.field_with_name(c) else {
                return plan_err!("`{name}`: partition column `{c}` is not in its schema");
            };
            partition_fields.push(Arc::new(field.clone()));
        }
        let file_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| !partition_columns.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let table_url = table.table_url().clone();
        let store_url = ObjectStoreUrl::parse(format!(
            "{}://{}",
            table_url.scheme(),
            &table_url[url::Position::BeforeHost..url::Position::AfterPort]
        ))?;
        let base = Path::from_url_path(table_url.path())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut files = Vec::new();
        for f in snapshot.log_data().iter() {
            if f.deletion_vector_descriptor().is_some() {
                return plan_err!(
                    "`{name}` has deletion vectors (file {}), which workers cannot apply yet: query it without [cluster] workers, or run `sluice optimize` on it with a writer that rewrites deleted rows",
                    f.path()
                );
            }
            let raw = f.path();
            if raw.contains("://") {
                return plan_err!(
                    "`{name}` refers to a file outside its folder ({raw}, a shallow clone?), which workers do not read yet: query it without [cluster] workers"
                );
            }
            let rel = f.object_store_path();
            let location = Path::from_iter(base.parts().chain(rel.parts()));
            let values = f.partition_values_map();
            let mut partition_values = Vec::with_capacity(partition_fields.len());
            for field in &partition_fields {
                partition_values.push(partition_value(
                    name,
                    field.name(),
                    field.data_type(),
                    values.get(field.name()).cloned().flatten(),
                )?);
            }
            files.push(DataFile {
                location,
                size: f.size().max(0) as u64,
                modified_ms: f.modification_time(),
                rows: f.num_records(),
                partition_values,
            });
        }
        Ok(DeltaParquetTable {
            name: name.to_string(),
            version: table.version(),
            schema,
            file_schema,
            partition_fields,
            store_url,
            files,
            table,
        })
    }

    /// Which files may hold rows `filters` keep (all when statistics cannot tell).
    fn kept(&self, state: &dyn Session, filters: &[Expr]) -> Vec<bool> {
        let all = vec![true; self.files.len()];
        let Some(predicate) = conjunction(filters.iter().cloned()) else {
            return all;
        };
        let pruned = (|| -> Result<Vec<bool>> {
            let df_schema = self.schema.clone().to_dfschema()?;
            let physical = state.create_physical_expr(predicate, &df_schema)?;
            let Some(pruning) = PruningPredicateBuilder::new()
                .with_file_schema(self.schema.clone())
                .build(physical)
            else {
                return Ok(vec![true; self.files.len()]);
            };
            let snapshot = self
                .table
                .snapshot()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            pruning.prune(&snapshot.log_data())
        })();
        match pruned {
            Ok(kept) if kept.len() == self.files.len() => kept,
            Ok(_) => all,
            Err(e) => {
                tracing::debug!("{}: files not pruned by statistics: {e}", self.name);
                all
            }
        }
    }
}

/// A Delta partition value (its string form in the log) as a value of the
/// column's type.
fn partition_value(
    table: &str,
    column: &str,
    data_type: &DataType,
    value: Option<String>,
) -> Result<ScalarValue> {
    let Some(text) = value else {
        return ScalarValue::try_from(data_type);
    };
    if text.is_empty() && data_type != &DataType::Utf8 && data_type != &DataType::LargeUtf8 {
        return ScalarValue::try_from(data_type);
    }
    ScalarValue::Utf8(Some(text.clone()))
        .cast_to(data_type)
        .map_err(|e| {
            DataFusionError::Plan(format!(
                "`{table}`: partition value `{text}` of `{column}` is not a {data_type}: {e}"
            ))
        })
}

#[async_trait]
impl datafusion::catalog::TableProvider for DeltaParquetTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Statistics skip files and Parquet skips row groups and rows, but
        // nothing here is exact: the filter stays above the scan (and the
        // physical optimizer pushes it into the Parquet reader).
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let kept = self.kept(state, filters);
        let files: Vec<&DataFile> = self
            .files
            .iter()
            .zip(kept)
            .filter_map(|(f, k)| k.then_some(f))
            .collect();
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        // The scan's columns are the file columns then the partition
        // columns; the projection maps the table's order onto them.
        let scan_order: Vec<&str> = self
            .file_schema
            .fields()
            .iter()
            .chain(self.partition_fields.iter())
            .map(|f| f.name().as_str())
            .collect();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let mut indices = Vec::with_capacity(wanted.len());
        for i in wanted {
            let name = self.schema.field(i).name();
            match scan_order.iter().position(|n| n == name) {
                Some(j) => indices.push(j),
                None => {
                    return plan_err!("`{}`: column `{name}` not found in its files", self.name)
                }
            }
        }
        let mut rows = Some(0usize);
        let mut bytes = 0usize;
        let partitioned: Vec<PartitionedFile> = files
            .iter()
            .map(|f| {
                rows = rows.zip(f.rows).map(|(a, b)| a + b);
                bytes += f.size as usize;
                PartitionedFile::new_from_meta(ObjectMeta {
                    location: f.location.clone(),
                    last_modified: chrono::DateTime::from_timestamp_millis(f.modified_ms)
                        .unwrap_or_default(),
                    size: f.size,
                    e_tag: None,
                    version: None,
                })
                .with_partition_values(f.partition_values.clone())
            })
            .collect();
        let groups =
            FileGroup::new(partitioned).split_files(state.config().target_partitions().max(1));
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let mut statistics = Statistics::new_unknown(table_schema.table_schema());
        statistics.num_rows = match rows {
            Some(r) => Precision::Exact(r),
            None => Precision::Absent,
        };
        statistics.total_byte_size = Precision::Inexact(bytes);
        let config =
            FileScanConfigBuilder::new(self.store_url.clone(), format.file_source(table_schema))
                .with_file_groups(groups)
                .with_statistics(statistics)
                .with_limit(limit)
                .with_projection_indices(Some(indices))?
                .build();
        let plan = format.create_physical_plan(state, config).await?;
        tracing::debug!(
            "{} version {:?}: {} of {} files as Parquet",
            self.name,
            self.version,
            files.len(),
            self.files.len()
        );
        Ok(plan)
    }
}
