//! Writing Parquet data files and committing them to Delta in one commit.
//!
//! Every commit here is made with deltalake's retries off and checked against
//! what landed since its snapshot (see `conflict`): a load commits its files
//! once even when another load runs at the same time.

use super::conflict::{is_conflict, Committed, Guard, COMMIT_ATTEMPTS};
use super::files::SourceFile;
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
use std::collections::{HashMap, HashSet};
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
            // A commit that landed after our snapshot must fail ours, so that
            // we check whether it loaded our files (see `conflict`).
            .with_max_retries(0)
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

/// The error when other commits keep landing first.
fn too_busy(table: &str, source: &str) -> Error {
    Error::LoadAborted {
        source_name: source.to_string(),
        message: format!(
            "other commits to `{table}` landed first {COMMIT_ATTEMPTS} times in a row; \
             run the load again when fewer loads run at once"
        ),
    }
}

/// Creates the table at `handle` with `actions` as its version 0. `Ok(None)`
/// when another load created it first.
async fn create_table(
    warehouse: &Warehouse,
    handle: &DeltaTable,
    name: &str,
    columns: &StructType,
    actions: Vec<Action>,
    props: CommitProperties,
) -> Result<Option<u64>> {
    let created = handle
        .create()
        .with_table_name(name.to_string())
        .with_columns(columns.fields().cloned())
        .with_save_mode(SaveMode::ErrorIfExists)
        .with_actions(actions)
        .with_commit_properties(props)
        .await;
    match created {
        Ok(table) => table
            .version()
            .map(Some)
            .ok_or_else(|| Error::Internal(format!("{name} has no version after create"))),
        // Whatever the error says, a table that exists now was created by
        // someone else between our look and our commit.
        Err(e) => match warehouse.open_table_at(handle.table_url()).await? {
            Some(_) => Ok(None),
            None => Err(Error::storage(name, e)),
        },
    }
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
    warehouse: Warehouse,
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
            warehouse: warehouse.clone(),
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

    /// Closes the encoders and returns the Add actions of every file written
    /// since the last call (later writes start new files).
    pub(crate) async fn finish(&mut self) -> Result<Vec<deltalake::kernel::Add>> {
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

    /// Commits all written files as one new version, on the snapshot the
    /// sink was made with or, when other commits landed first, on the latest
    /// one if they loaded none of `guard`'s files and kept the schema (else
    /// [`Committed::Replan`]). `schema_changed`: the load's schema differs from
    /// the table's at the first snapshot.
    pub async fn commit(
        mut self,
        meta: &LoadMetadata,
        overwrite: bool,
        schema_changed: bool,
        guard: &Guard<'_>,
    ) -> Result<Committed> {
        let adds = self.finish().await?;
        let struct_type: StructType = self
            .schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Error::Internal(format!("schema of {}: {e}", self.name)))?;
        let Some(mut table) = self.existing.take() else {
            let actions = adds.into_iter().map(Action::Add).collect();
            let created = create_table(
                &self.warehouse,
                &self.handle,
                &self.name,
                &struct_type,
                actions,
                meta.properties(),
            )
            .await?;
            return Ok(match created {
                Some(v) => Committed::Version(v),
                None => Committed::Replan(
                    clashes_of_new_table(&self.warehouse, &self.handle, guard).await?,
                ),
            });
        };
        let planned_on = table.snapshot().map_err(delta_err(&self.name))?.schema();
        for _ in 0..COMMIT_ATTEMPTS {
            let snapshot = table.snapshot().map_err(delta_err(&self.name))?;
            let base = snapshot.version();
            let mut actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
            if schema_changed {
                let metadata = snapshot
                    .metadata()
                    .clone()
                    .with_schema(&struct_type)
                    .map_err(|e| Error::storage(&self.name, e))?;
                actions.push(Action::Metadata(metadata));
            }
            if overwrite {
                // Against this very snapshot: a retry replaces what landed since.
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
            let result = CommitBuilder::from(meta.properties())
                .with_actions(actions)
                .build(Some(snapshot as &dyn TableReference), table.log_store(), op)
                .await;
            match result {
                Ok(finalized) => return Ok(Committed::Version(finalized.version)),
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(Error::storage(&self.name, e)),
            }
            table.load().await.map_err(delta_err(&self.name))?;
            let clashes = clashes(&table, Some(base), guard).await?;
            let schema_now = table.snapshot().map_err(delta_err(&self.name))?.schema();
            if !clashes.is_empty() || schema_now != planned_on {
                return Ok(Committed::Replan(clashes));
            }
        }
        Err(too_busy(&self.name, guard.source))
    }
}

/// The files of `guard` that commits to `table` after `base` loaded.
async fn clashes(
    table: &DeltaTable,
    base: Option<u64>,
    guard: &Guard<'_>,
) -> Result<Vec<super::ConcurrentFile>> {
    let commits = crate::warehouse::history_after(table, base).await?;
    Ok(guard.clashes(&commits))
}

/// [`clashes`] of a table someone else created while we planned to.
async fn clashes_of_new_table(
    warehouse: &Warehouse,
    handle: &DeltaTable,
    guard: &Guard<'_>,
) -> Result<Vec<super::ConcurrentFile>> {
    match warehouse.open_table_at(handle.table_url()).await? {
        Some(table) => clashes(&table, None, guard).await,
        None => Ok(Vec::new()),
    }
}

/// The quarantine table of a load target.
///
/// Rows rejected from each input file go to data files of their own, and the
/// commit records them per file (`sluice.files[].rejects`). A quarantine commit
/// replaces the rejected rows that earlier commits recorded for the same files
/// (same identity): a load killed between its quarantine and target commits,
/// or one that lost a race for the target, leaves rows that the next reading
/// of the file would reject again, and these must not stay twice.
pub struct RejectSink {
    sink: Option<TableSink>,
    warehouse: Warehouse,
    schema_name: String,
    table: String,
    /// The data files written for each input file so far, in load order.
    per_file: Vec<Vec<deltalake::kernel::Add>>,
}

impl RejectSink {
    pub fn new(warehouse: &Warehouse, schema_name: &str, table: &str) -> Result<Self> {
        Ok(RejectSink {
            sink: None,
            warehouse: warehouse.clone(),
            schema_name: schema_name.to_string(),
            table: table.to_string(),
            per_file: Vec::new(),
        })
    }

    fn name(&self) -> String {
        format!("{}.{}", self.schema_name, self.table)
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.sink.is_none() {
            self.sink = Some(
                TableSink::new(
                    &self.warehouse,
                    &self.schema_name,
                    &self.table,
                    super::rejected_schema(),
                    None,
                )?
                .with_parallelism(1),
            );
        }
        match &mut self.sink {
            Some(s) => s.write(batch).await,
            None => Ok(()),
        }
    }

    /// The current input file is done: its rows get files of their own.
    pub async fn end_file(&mut self) -> Result<()> {
        let adds = match &mut self.sink {
            Some(s) => s.finish().await?,
            None => Vec::new(),
        };
        self.per_file.push(adds);
        Ok(())
    }

    pub async fn abort(&mut self) {
        if let Some(s) = &mut self.sink {
            s.abort().await;
        }
    }

    /// Commits the rejected rows of `files` (in [`RejectSink::end_file`]
    /// order; `meta.files` names them), replacing those that earlier commits
    /// recorded for the same files.
    pub async fn commit(&mut self, meta: &LoadMetadata, files: &[SourceFile]) -> Result<()> {
        let name = self.name();
        let source = meta.source.clone();
        let mut entries = meta.files.clone();
        for (entry, adds) in entries.iter_mut().zip(&self.per_file) {
            entry["rejects"] = adds.iter().map(|a| a.path.clone()).collect();
        }
        let adds: Vec<deltalake::kernel::Add> = self.per_file.drain(..).flatten().collect();
        let meta = LoadMetadata {
            load_id: meta.load_id.clone(),
            source: format!("{}__rejected", meta.source),
            files: entries,
            rows: 0,
        };
        let url = self.warehouse.table_url(&self.schema_name, &self.table)?;
        let handle = self.warehouse.table_handle(&url)?;
        let columns: StructType = super::rejected_schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Error::Internal(format!("schema of {name}: {e}")))?;
        // Commits read so far, and the last version among them.
        let mut seen = Vec::new();
        let mut seen_to = None;
        for _ in 0..COMMIT_ATTEMPTS {
            let Some(table) = self.warehouse.open_table_at(&url).await? else {
                if adds.is_empty() {
                    return Ok(());
                }
                let actions = adds.iter().cloned().map(Action::Add).collect();
                let props = meta.properties();
                match create_table(&self.warehouse, &handle, &name, &columns, actions, props)
                    .await?
                {
                    Some(_) => return Ok(()),
                    None => continue,
                }
            };
            // The table first, then its log: every commit up to the snapshot is read.
            let commits = crate::warehouse::history_after(&table, seen_to).await?;
            seen_to = commits.last().map(|c| c.version).or(seen_to);
            seen.extend(commits);
            let stale = rejects_of(&seen, &meta.source, files);
            let snapshot = table.snapshot().map_err(delta_err(&name))?;
            let log_store = table.log_store();
            let mut actions: Vec<Action> = snapshot
                .snapshot()
                .file_views(log_store.as_ref(), None)
                .try_filter(|f| futures::future::ready(stale.contains(f.path().as_ref())))
                .map_ok(|f| Action::Remove(f.remove_action(true)))
                .try_collect()
                .await
                .map_err(delta_err(&name))?;
            if adds.is_empty() && actions.is_empty() {
                return Ok(());
            }
            actions.extend(adds.iter().cloned().map(Action::Add));
            let op = DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            };
            let result = CommitBuilder::from(meta.properties())
                .with_actions(actions)
                .build(Some(snapshot as &dyn TableReference), log_store, op)
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(Error::storage(&name, e)),
            }
        }
        Err(too_busy(&name, &source))
    }
}

/// The quarantine data files that commits of `source` recorded for any of
/// `files` (same identity).
fn rejects_of(
    commits: &[crate::warehouse::CommitRecord],
    source: &str,
    files: &[SourceFile],
) -> HashSet<String> {
    commits
        .iter()
        .filter(|c| c.source.as_deref() == Some(source))
        .flat_map(|c| &c.source_files)
        .filter(|entry| files.iter().any(|f| f.matches(entry)))
        .filter_map(|entry| entry.get("rejects")?.as_array())
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect()
}

/// Upserts `batches` into the table on `keys` (creates the table when missing).
/// Another commit that lands first makes deltalake's merge fail (retries are
/// off); the merge is then made again on the latest version, unless that
/// commit loaded one of `guard`'s files ([`Committed::Replan`]).
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
    guard: &Guard<'_>,
) -> Result<Committed> {
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
    let Some(mut table) = existing else {
        let mut sink = TableSink::new(warehouse, schema_name, table_name, schema, None)?;
        for b in &batches {
            sink.write(b).await?;
        }
        return sink.commit(meta, false, true, guard).await;
    };
    use datafusion::prelude::{col, SessionContext};
    let ctx = SessionContext::new();
    let q = |alias: &str, c: &str| col(format!("{alias}.\"{c}\""));
    let predicate = keys
        .iter()
        .map(|k| q("t", k).eq(q("s", k)))
        .reduce(|a, b| a.and(b))
        .ok_or_else(|| Error::Internal("merge without keys".into()))?;
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    for _ in 0..COMMIT_ATTEMPTS {
        let base = table.version();
        let source = ctx.read_batches(batches.clone()).map_err(Error::from)?;
        let merged = table
            .clone()
            .merge(source, predicate.clone())
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
            .await;
        match merged {
            Ok((table, _metrics)) => {
                return table
                    .version()
                    .map(Committed::Version)
                    .ok_or_else(|| Error::Internal(format!("{name} has no version after merge")))
            }
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(Error::storage(&name, e)),
        }
        table.load().await.map_err(delta_err(&name))?;
        let clashes = clashes(&table, base, guard).await?;
        if !clashes.is_empty() {
            return Ok(Committed::Replan(clashes));
        }
    }
    Err(too_busy(&name, guard.source))
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
