//! Micro-batch commits: one Delta commit per batch that also records, per
//! topic partition, the last offset written as an application transaction
//! (`txn`, app id per source and partition).
//!
//! A `txn` alone does not make two ingesters write each record once: both
//! read the same offsets and both append. So every commit is made with
//! deltalake's retries off, against the very snapshot whose offsets the batch
//! started from. When another commit landed first, the offsets are read again
//! from the new snapshot: unchanged (a compaction, another source), the same
//! files are committed on top of it; changed, the batch is dropped and
//! fetching resumes after the offsets now stored.

use crate::error::{Error, Result};
use crate::load::conflict::is_conflict;
use crate::warehouse::Warehouse;
use arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::kernel::{Action, Add, MetadataExt, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake::DeltaTable;

/// How many times a batch is committed again on top of commits that did not
/// move its offsets (compactions, other sources' commits).
const ATTEMPTS: usize = 64;

/// The `txn` app id of a source's partition.
pub fn app_id(source: &str, topic: &str, partition: i32) -> String {
    format!("sluice-stream:{source}:{topic}:{partition}")
}

/// The last offset stored for each of `partitions` in `table`'s snapshot.
pub async fn stored_offsets(
    table: &DeltaTable,
    source: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<Option<i64>>> {
    let snapshot = table
        .snapshot()
        .map_err(|e| Error::storage(table.table_url(), e))?;
    let log_store = table.log_store();
    let mut out = Vec::with_capacity(partitions.len());
    for p in partitions {
        let v = snapshot
            .transaction_version(log_store.as_ref(), app_id(source, topic, *p))
            .await
            .map_err(|e| Error::storage(table.table_url(), e))?;
        out.push(v);
    }
    Ok(out)
}

/// What became of a batch's commit.
pub enum Outcome {
    Committed(u64),
    /// Another ingester stored other offsets first: nothing was committed.
    Outdated(Vec<Option<i64>>),
}

/// What a batch records besides its files.
pub struct BatchMeta<'a> {
    pub source: &'a str,
    pub topic: &'a str,
    pub stream_id: &'a str,
    pub epoch: i64,
    pub partitions: &'a [i32],
    /// The offsets the batch started after (read from the snapshot).
    pub base: &'a [Option<i64>],
    /// The last offset the batch holds, per partition (None: no record of it).
    pub last: &'a [Option<i64>],
    pub rows: u64,
    pub rejected: u64,
}

impl BatchMeta<'_> {
    fn txns(&self) -> Vec<Transaction> {
        let now = chrono::Utc::now().timestamp_millis();
        self.partitions
            .iter()
            .zip(self.last)
            .filter_map(|(p, last)| {
                last.map(|o| {
                    Transaction::new_with_last_update(
                        app_id(self.source, self.topic, *p),
                        o,
                        Some(now),
                    )
                })
            })
            .collect()
    }

    fn properties(&self) -> CommitProperties {
        let ranges: serde_json::Map<String, serde_json::Value> = self
            .partitions
            .iter()
            .zip(self.base.iter().zip(self.last))
            .filter_map(|(p, (b, l))| {
                l.map(|l| {
                    (
                        p.to_string(),
                        serde_json::json!([b.map_or(-1, |b| b) + 1, l]),
                    )
                })
            })
            .collect();
        CommitProperties::default()
            .with_cleanup_expired_logs(Some(false))
            .with_max_retries(0)
            .with_application_transactions(self.txns())
            .with_metadata([
                ("sluice.source".to_string(), self.source.into()),
                ("sluice.stream_id".to_string(), self.stream_id.into()),
                (
                    "sluice.kafka".to_string(),
                    serde_json::json!({"topic": self.topic, "offsets": ranges}),
                ),
                ("sluice.rows".to_string(), self.rows.into()),
                ("sluice.rejected".to_string(), self.rejected.into()),
            ])
    }
}

/// Commits `adds` to `table` (whose loaded snapshot is the one `meta.base`
/// was read from), as described in the module docs.
pub async fn commit_batch(
    table: &mut DeltaTable,
    name: &str,
    adds: &[Add],
    meta: &BatchMeta<'_>,
) -> Result<Outcome> {
    let op = DeltaOperation::StreamingUpdate {
        output_mode: OutputMode::Append,
        query_id: meta.stream_id.to_string(),
        epoch_id: meta.epoch,
    };
    for _ in 0..ATTEMPTS {
        let snapshot = table.snapshot().map_err(|e| Error::storage(name, e))?;
        let actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
        let result = CommitBuilder::from(meta.properties())
            .with_actions(actions)
            .build(
                Some(snapshot as &dyn TableReference),
                table.log_store(),
                op.clone(),
            )
            .await;
        match result {
            Ok(done) => return Ok(Outcome::Committed(done.version)),
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(Error::storage(name, e)),
        }
        table.load().await.map_err(|e| Error::storage(name, e))?;
        let now = stored_offsets(table, meta.source, meta.topic, meta.partitions).await?;
        if now != meta.base {
            return Ok(Outcome::Outdated(now));
        }
    }
    Err(Error::LoadAborted {
        source_name: meta.source.to_string(),
        message: format!("other commits to `{name}` landed first {ATTEMPTS} times in a row"),
    })
}

/// Opens the source's table, creating it (empty, `schema`) when missing, and
/// adding declared columns it lacks. A column whose type differs is an error.
pub async fn ensure_table(
    warehouse: &Warehouse,
    source: &str,
    schema_name: &str,
    table_name: &str,
    schema: &SchemaRef,
) -> Result<DeltaTable> {
    let name = format!("{schema_name}.{table_name}");
    let wanted: StructType = schema
        .as_ref()
        .try_into_kernel()
        .map_err(|e| Error::Internal(format!("schema of {name}: {e}")))?;
    for _ in 0..ATTEMPTS {
        let Some(mut table) = warehouse.open_table(schema_name, table_name).await? else {
            let url = warehouse.table_url(schema_name, table_name)?;
            let handle = warehouse.table_handle(&url)?;
            let created = handle
                .create()
                .with_table_name(name.clone())
                .with_columns(wanted.fields().cloned())
                .with_save_mode(SaveMode::ErrorIfExists)
                .with_commit_properties(
                    CommitProperties::default().with_cleanup_expired_logs(Some(false)),
                )
                .await;
            match created {
                Ok(t) => return Ok(t),
                // Another ingester created it first: open theirs.
                Err(_)
                    if warehouse
                        .open_table(schema_name, table_name)
                        .await?
                        .is_some() =>
                {
                    continue
                }
                Err(e) => return Err(Error::storage(&name, e)),
            }
        };
        let snapshot = table.snapshot().map_err(|e| Error::storage(&name, e))?;
        let current = snapshot.snapshot().arrow_schema();
        let mut missing = Vec::new();
        for f in schema.fields() {
            match current.field_with_name(f.name()) {
                Ok(have) if have.data_type() == f.data_type() => {}
                Ok(have) => {
                    return Err(Error::source(
                        source,
                        format!(
                            "column `{}` is declared {} but `{name}` stores it as {}; declare it as {} again, or load the topic into a new target",
                            f.name(),
                            crate::load::convert::type_name(f.data_type()),
                            crate::load::convert::type_name(have.data_type()),
                            crate::load::convert::type_name(have.data_type()),
                        ),
                    ))
                }
                Err(_) => missing.push(f.as_ref().clone().with_nullable(true)),
            }
        }
        if missing.is_empty() {
            return Ok(table);
        }
        let mut fields: Vec<arrow::datatypes::Field> = current
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(missing);
        let evolved: StructType = (&arrow::datatypes::Schema::new(fields))
            .try_into_kernel()
            .map_err(|e| Error::Internal(format!("schema of {name}: {e}")))?;
        let metadata = snapshot
            .metadata()
            .clone()
            .with_schema(&evolved)
            .map_err(|e| Error::storage(&name, e))?;
        let op = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let result = CommitBuilder::from(
            CommitProperties::default()
                .with_cleanup_expired_logs(Some(false))
                .with_max_retries(0),
        )
        .with_actions(vec![Action::Metadata(metadata)])
        .build(Some(snapshot as &dyn TableReference), table.log_store(), op)
        .await;
        match result {
            Ok(_) => {
                table.load().await.map_err(|e| Error::storage(&name, e))?;
                return Ok(table);
            }
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(Error::storage(&name, e)),
        }
    }
    Err(Error::LoadAborted {
        source_name: source.to_string(),
        message: format!("`{name}` kept changing while its schema was checked"),
    })
}
