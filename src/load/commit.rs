//! Writing Parquet data files and committing them to Delta in one commit.

use crate::error::{Error, Result};
pub(crate) use crate::warehouse::writer_properties;
use crate::warehouse::Warehouse;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::kernel::{Action, MetadataExt, StructType};
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::DeltaTable;
use futures::TryStreamExt;
use std::collections::HashMap;
use std::num::NonZeroU64;

use crate::warehouse::TARGET_FILE_SIZE;

/// What a load records in the commit (see `warehouse::history`).
pub struct LoadMetadata {
    pub load_id: String,
    pub source: String,
    pub files: Vec<serde_json::Value>,
    pub rows: u64,
}

impl LoadMetadata {
    fn properties(&self) -> CommitProperties {
        // The commit metadata is what makes loads idempotent: never let our own
        // commits delete expired log entries that record which files were loaded.
        CommitProperties::default()
            .with_cleanup_expired_logs(Some(false))
            .with_metadata([
                ("sluice.load_id".to_string(), self.load_id.clone().into()),
                ("sluice.source".to_string(), self.source.clone().into()),
                (
                    "sluice.files".to_string(),
                    serde_json::Value::Array(self.files.clone()),
                ),
                ("sluice.rows".to_string(), self.rows.into()),
            ])
    }
}

/// Rows handed to the Parquet writer at a time.
const WRITE_BATCH_ROWS: usize = 64 * 1024;

fn delta_err(table: &str) -> impl Fn(deltalake::DeltaTableError) -> Error + '_ {
    move |e| Error::storage(table, e)
}

/// One encoder: a task that owns a `DeltaWriter` and encodes the batches it is sent.
struct Encoder {
    tx: tokio::sync::mpsc::Sender<RecordBatch>,
    task: tokio::task::JoinHandle<deltalake::DeltaResult<Vec<deltalake::kernel::Add>>>,
}

/// Data files written for one table, committed (or abandoned) at the end.
///
/// Batches are encoded by `encoders` parallel tasks (Parquet encoding and ZSTD are
/// most of a load's CPU), each writing its own files; the commit gathers them all.
pub struct TableSink {
    name: String,
    handle: DeltaTable,
    existing: Option<DeltaTable>,
    schema: SchemaRef,
    parallelism: usize,
    encoders: Vec<Encoder>,
    next: usize,
    aborted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TableSink {
    pub fn new(
        warehouse: &Warehouse,
        schema_name: &str,
        table: &str,
        schema: SchemaRef,
        existing: Option<&DeltaTable>,
    ) -> Result<Self> {
        let url = warehouse.table_url(schema_name, table)?;
        let handle = warehouse.table_handle(&url)?;
        let parallelism = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        Ok(TableSink {
            name: format!("{schema_name}.{table}"),
            handle,
            existing: existing.cloned(),
            schema,
            parallelism,
            encoders: Vec::new(),
            next: 0,
            aborted: Default::default(),
        })
    }

    /// Encode with at most `n` tasks (small tables such as quarantine use one).
    pub fn with_parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }

    fn spawn_encoder(&self) -> Encoder {
        let config = WriterConfig::new(
            self.schema.clone(),
            Vec::new(),
            Some(writer_properties(&self.schema)),
            NonZeroU64::new(TARGET_FILE_SIZE),
            Some(WRITE_BATCH_ROWS),
            buoyant_kernel::table_properties::DataSkippingNumIndexedCols::NumColumns(32),
            None,
        );
        let store = self.handle.log_store().object_store(None);
        let mut writer = DeltaWriter::new(store, config);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(1);
        let aborted = self.aborted.clone();
        let task = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                if let Err(e) = writer.write(&batch).await {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
            if aborted.load(std::sync::atomic::Ordering::SeqCst) {
                writer.abort().await?;
                return Ok(Vec::new());
            }
            writer.close().await
        });
        Encoder { tx, task }
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.encoders.len() < self.parallelism {
            let e = self.spawn_encoder();
            self.encoders.push(e);
        }
        let i = self.next % self.encoders.len();
        self.next += 1;
        if self.encoders[i].tx.send(batch.clone()).await.is_err() {
            // The encoder stopped: report its error.
            let enc = self.encoders.remove(i);
            drop(enc.tx);
            return match enc.task.await {
                Ok(Err(e)) => Err(Error::storage(&self.name, e)),
                Ok(Ok(_)) => Err(Error::Internal(format!(
                    "encoder of {} stopped early",
                    self.name
                ))),
                Err(e) => Err(Error::Internal(format!("encoder of {}: {e}", self.name))),
            };
        }
        Ok(())
    }

    /// Drops written files from the commit (they stay as unreferenced files).
    pub async fn abort(&mut self) {
        self.aborted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for enc in self.encoders.drain(..) {
            drop(enc.tx);
            let _ = enc.task.await;
        }
    }

    /// Closes the encoders and returns the Add actions of every file written.
    async fn finish(&mut self) -> Result<Vec<deltalake::kernel::Add>> {
        let mut adds = Vec::new();
        let mut first_err = None;
        for enc in self.encoders.drain(..) {
            drop(enc.tx);
            match enc.task.await {
                Ok(Ok(a)) => adds.extend(a),
                Ok(Err(e)) => {
                    first_err.get_or_insert(Error::storage(&self.name, e));
                }
                Err(e) => {
                    first_err
                        .get_or_insert(Error::Internal(format!("encoder of {}: {e}", self.name)));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(adds),
        }
    }

    /// Commits all written files as one new version; returns it.
    pub async fn commit(
        mut self,
        meta: &LoadMetadata,
        overwrite: bool,
        schema_changed: bool,
    ) -> Result<u64> {
        let adds = self.finish().await?;
        let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        let struct_type: StructType = self
            .schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Error::Internal(format!("schema of {}: {e}", self.name)))?;
        let Some(table) = self.existing.take() else {
            let table = self
                .handle
                .create()
                .with_table_name(self.name.clone())
                .with_columns(struct_type.fields().cloned())
                .with_save_mode(SaveMode::ErrorIfExists)
                .with_actions(actions)
                .with_commit_properties(meta.properties())
                .await
                .map_err(delta_err(&self.name))?;
            return table.version().ok_or_else(|| {
                Error::Internal(format!("{} has no version after create", self.name))
            });
        };
        let snapshot = table.snapshot().map_err(delta_err(&self.name))?;
        if schema_changed {
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(&struct_type)
                .map_err(|e| Error::storage(&self.name, e))?;
            actions.push(Action::Metadata(metadata));
        }
        if overwrite {
            let log_store = table.log_store();
            let removes: Vec<_> = snapshot
                .snapshot()
                .file_views(log_store.as_ref(), None)
                .map_ok(|f| Action::Remove(f.remove_action(true)))
                .try_collect()
                .await
                .map_err(delta_err(&self.name))?;
            actions.extend(removes);
        }
        let op = DeltaOperation::Write {
            mode: if overwrite {
                SaveMode::Overwrite
            } else {
                SaveMode::Append
            },
            partition_by: None,
            predicate: None,
        };
        let finalized = CommitBuilder::from(meta.properties())
            .with_actions(actions)
            .build(Some(snapshot as &dyn TableReference), table.log_store(), op)
            .await
            .map_err(delta_err(&self.name))?;
        Ok(finalized.version)
    }
}

/// The quarantine table of a load target.
pub struct RejectSink {
    sink: Option<TableSink>,
    warehouse: Warehouse,
    schema_name: String,
    table: String,
}

impl RejectSink {
    pub fn new(warehouse: &Warehouse, schema_name: &str, table: &str) -> Result<Self> {
        Ok(RejectSink {
            sink: None,
            warehouse: warehouse.clone(),
            schema_name: schema_name.to_string(),
            table: table.to_string(),
        })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.sink.is_none() {
            let existing = self
                .warehouse
                .open_table(&self.schema_name, &self.table)
                .await?;
            self.sink = Some(
                TableSink::new(
                    &self.warehouse,
                    &self.schema_name,
                    &self.table,
                    super::rejected_schema(),
                    existing.as_ref(),
                )?
                .with_parallelism(1),
            );
        }
        match &mut self.sink {
            Some(s) => s.write(batch).await,
            None => Ok(()),
        }
    }

    pub async fn abort(&mut self) {
        if let Some(s) = &mut self.sink {
            s.abort().await;
        }
    }

    pub async fn commit(&mut self, meta: &LoadMetadata) -> Result<()> {
        if let Some(s) = self.sink.take() {
            let meta = LoadMetadata {
                load_id: meta.load_id.clone(),
                source: format!("{}__rejected", meta.source),
                files: meta.files.clone(),
                rows: 0,
            };
            s.commit(&meta, false, false).await?;
        }
        Ok(())
    }
}

/// Upserts `batches` into the table on `keys` (creates the table when missing).
#[allow(clippy::too_many_arguments)]
pub async fn merge(
    warehouse: &Warehouse,
    schema_name: &str,
    table_name: &str,
    existing: Option<DeltaTable>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    keys: &[String],
    meta: &LoadMetadata,
) -> Result<u64> {
    let name = format!("{schema_name}.{table_name}");
    for k in keys {
        if schema.field_with_name(k).is_err() {
            return Err(Error::Schema {
                table: name,
                message: format!("merge key `{k}` is not a column of the data"),
            });
        }
    }
    let batches = dedupe_last(batches, keys, &schema)?;
    let Some(table) = existing else {
        let mut sink = TableSink::new(warehouse, schema_name, table_name, schema, None)?;
        for b in &batches {
            sink.write(b).await?;
        }
        return sink.commit(meta, false, true).await;
    };
    use datafusion::prelude::{col, SessionContext};
    let ctx = SessionContext::new();
    let source = ctx.read_batches(batches).map_err(Error::from)?;
    let q = |alias: &str, c: &str| col(format!("{alias}.\"{c}\""));
    let predicate = keys
        .iter()
        .map(|k| q("t", k).eq(q("s", k)))
        .reduce(|a, b| a.and(b))
        .ok_or_else(|| Error::Internal("merge without keys".into()))?;
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let (table, _metrics) = table
        .merge(source, predicate)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_commit_properties(meta.properties())
        .with_writer_properties(writer_properties(&schema))
        .with_merge_schema(true)
        .when_matched_update(|mut u| {
            for c in &columns {
                u = u.update(c.as_str(), q("s", c));
            }
            u
        })
        .map_err(delta_err(&name))?
        .when_not_matched_insert(|mut i| {
            for c in &columns {
                i = i.set(c.as_str(), q("s", c));
            }
            i
        })
        .map_err(delta_err(&name))?
        .await
        .map_err(delta_err(&name))?;
    table
        .version()
        .ok_or_else(|| Error::Internal(format!("{name} has no version after merge")))
}

/// Keeps the last row per key (later files and lines win), as a merge source must
/// have one row per key.
fn dedupe_last(
    batches: Vec<RecordBatch>,
    keys: &[String],
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>> {
    use arrow::row::{RowConverter, SortField};
    let idx: Vec<usize> = keys
        .iter()
        .filter_map(|k| schema.index_of(k).ok())
        .collect();
    let conv = RowConverter::new(
        idx.iter()
            .map(|i| SortField::new(schema.field(*i).data_type().clone()))
            .collect(),
    )?;
    let mut last: HashMap<Vec<u8>, (usize, usize)> = HashMap::new();
    for (b, batch) in batches.iter().enumerate() {
        let cols: Vec<_> = idx.iter().map(|i| batch.column(*i).clone()).collect();
        let rows = conv.convert_columns(&cols)?;
        for r in 0..batch.num_rows() {
            last.insert(rows.row(r).as_ref().to_vec(), (b, r));
        }
    }
    let mut keep: Vec<Vec<bool>> = batches.iter().map(|b| vec![false; b.num_rows()]).collect();
    for (b, r) in last.into_values() {
        keep[b][r] = true;
    }
    batches
        .iter()
        .zip(keep)
        .map(|(b, k)| {
            let mask = arrow::array::BooleanArray::from(k);
            Ok(arrow::compute::filter_record_batch(b, &mask)?)
        })
        .collect()
}
