//! Kafka sources into Delta tables, each record once.
//!
//! `sluice stream` runs every Kafka source (or the named ones) until stopped;
//! `sluice load` on a Kafka source catches up to the end each partition has
//! when it starts, then exits. Either way the work is micro-batches: records
//! are fetched from every partition for one trigger interval (or until a size
//! cap), decoded into the declared columns, written as Parquet files and
//! committed as one Delta commit that also stores each partition's last offset
//! (see `commit`). Records that do not fit go to `<target>__rejected` with
//! their partition and offset, committed before the batch with offsets of
//! their own, so a restart never quarantines a record twice.
//!
//! Stopping: the first SIGINT/SIGTERM ends the stream after the batch being
//! collected is committed; a kill at any moment leaves the table at its last
//! commit, and the next start resumes after the offsets stored there.

pub mod commit;
pub mod kafka;
pub mod records;

use crate::error::{Error, Result};
use crate::load::commit::TableSink;
use crate::load::conflict::is_conflict;
use crate::project::{SourceDecl, SourceKind};
use crate::warehouse::Warehouse;
use commit::{BatchMeta, Outcome};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::kernel::{Action, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use records::{Decoder, RejectedRecord};
use rskafka::record::RecordAndOffset;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Options of one stream run.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Stop once every partition is loaded up to the end it had at the start
    /// (`sluice load`).
    pub catch_up: bool,
    /// Overrides each source's `trigger_ms`.
    pub trigger: Option<Duration>,
    /// The id recorded in commits and rejected rows (default: a new one).
    pub run_id: Option<String>,
}

/// Where one partition stands.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// The last offset in the table (None: nothing loaded yet).
    pub loaded_offset: Option<i64>,
    /// The partition's end: the offset its next record will get.
    pub end_offset: i64,
    /// Records between the table and the partition's end.
    pub lag_records: i64,
    /// Broker time of the newest record seen minus that of the last loaded
    /// one (0 when caught up).
    pub lag_seconds: f64,
}

/// What one stream run did.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub source: String,
    pub table: String,
    pub topic: String,
    pub batches: u64,
    /// The last table version this run committed.
    pub version: Option<u64>,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    pub rejected_table: Option<String>,
    /// Batches dropped because another ingester stored their offsets first.
    pub batches_outdated: u64,
    pub partitions: Vec<PartitionStatus>,
    pub seconds: f64,
}

/// Told about every committed batch (the online store, the log).
pub trait StreamObserver: Send + Sync {
    fn committed(&self, _report: &StreamReport, _version: u64, _rows: u64) {}
    /// The rows a commit of `source` added (the table's columns).
    fn rows(&self, _source: &SourceDecl, _version: u64, _batches: &[arrow::array::RecordBatch]) {}
    /// Another ingester committed to `source`'s table: what was derived
    /// from this run's commits alone is incomplete.
    fn outdated(&self, _source: &SourceDecl) {}
}

/// An observer that only logs.
pub struct LogCommits;
impl StreamObserver for LogCommits {}

/// The Kafka sources among `sources` (all Kafka sources when empty).
pub fn kafka_sources<'a>(
    project: &'a crate::project::Project,
    sources: &[String],
) -> Result<Vec<&'a SourceDecl>> {
    let selected = project.select_sources(sources)?;
    if let Some(file_src) = selected
        .iter()
        .find(|s| s.kind != SourceKind::Kafka && !sources.is_empty())
    {
        return Err(Error::source(
            &file_src.name,
            "is a files source; `sluice stream` reads kafka sources (load it with `sluice load`)",
        ));
    }
    let kafka: Vec<&SourceDecl> = selected
        .into_iter()
        .filter(|s| s.kind == SourceKind::Kafka)
        .collect();
    if kafka.is_empty() {
        return Err(Error::config(
            project.root.join(&project.config.project.catalog),
            "no kafka sources are declared; add a [[source]] with kind = \"kafka\" and a [source.kafka] table",
        ));
    }
    Ok(kafka)
}

/// Runs each source in `sources` at once until `stop` turns true (or, with
/// `catch_up`, until each is caught up).
pub async fn run(
    warehouse: &Warehouse,
    sources: &[&SourceDecl],
    options: &StreamOptions,
    stop: watch::Receiver<bool>,
    observer: &dyn StreamObserver,
) -> Result<Vec<StreamReport>> {
    let runs = sources
        .iter()
        .map(|src| run_source(warehouse, src, options, stop.clone(), observer));
    futures::future::try_join_all(runs).await
}

/// The status of each partition of `src` without loading anything.
pub async fn status(warehouse: &Warehouse, src: &SourceDecl) -> Result<StreamReport> {
    let k = kafka_options(src)?;
    let topic = kafka::connect(&src.name, k).await?;
    let ids: Vec<i32> = topic.partitions.iter().map(|p| p.partition()).collect();
    let (schema_name, table_name) = src.target();
    let stored = match warehouse.open_table(&schema_name, &table_name).await? {
        Some(t) => commit::stored_offsets(&t, &src.name, &topic.name, &ids).await?,
        None => vec![None; ids.len()],
    };
    let mut partitions = Vec::new();
    for (pc, loaded) in topic.partitions.iter().zip(&stored) {
        let end = kafka::end_offset(&src.name, pc).await?;
        partitions.push(PartitionStatus {
            partition: pc.partition(),
            loaded_offset: *loaded,
            end_offset: end,
            lag_records: (end - loaded.map_or(0, |o| o + 1)).max(0),
            lag_seconds: 0.0,
        });
    }
    Ok(StreamReport {
        source: src.name.clone(),
        table: src.target_name(),
        topic: topic.name.clone(),
        batches: 0,
        version: None,
        rows_loaded: 0,
        rows_rejected: 0,
        rejected_table: None,
        batches_outdated: 0,
        partitions,
        seconds: 0.0,
    })
}

fn kafka_options(src: &SourceDecl) -> Result<&crate::project::KafkaOptions> {
    src.kafka
        .as_ref()
        .ok_or_else(|| Error::source(&src.name, "is not a kafka source (no [source.kafka] table)"))
}

/// One partition's progress inside a run.
#[derive(Clone, Default)]
struct Progress {
    /// Last offset committed to the table.
    stored: Option<i64>,
    /// End offset (high watermark) last seen.
    end: i64,
    /// Broker time of the newest record fetched, and of the last committed one.
    newest_ms: Option<i64>,
    committed_ms: Option<i64>,
    /// The fetcher's next offset.
    fetched_to: i64,
    /// The fetcher has answered at least once since (re)starting.
    answered: bool,
}

async fn run_source(
    warehouse: &Warehouse,
    src: &SourceDecl,
    options: &StreamOptions,
    mut stop: watch::Receiver<bool>,
    observer: &dyn StreamObserver,
) -> Result<StreamReport> {
    let started = Instant::now();
    let k = kafka_options(src)?;
    let trigger = options
        .trigger
        .unwrap_or(Duration::from_millis(k.trigger_ms));
    let topic = kafka::connect(&src.name, k).await?;
    let ids: Vec<i32> = topic.partitions.iter().map(|p| p.partition()).collect();
    let (schema_name, table_name) = src.target();
    let target = src.target_name();
    let schema = records::table_schema(src);
    let mut table =
        commit::ensure_table(warehouse, &src.name, &schema_name, &table_name, &schema).await?;
    let table_schema = std::sync::Arc::new(
        table
            .snapshot()
            .map_err(|e| Error::storage(&target, e))?
            .snapshot()
            .arrow_schema()
            .as_ref()
            .clone(),
    );
    let decoder = Decoder::new(src, table_schema.clone())?;
    let stream_id = options.run_id.clone().unwrap_or_else(crate::names::new_id);
    let mut report = StreamReport {
        source: src.name.clone(),
        table: target.clone(),
        topic: topic.name.clone(),
        batches: 0,
        version: None,
        rows_loaded: 0,
        rows_rejected: 0,
        rejected_table: None,
        batches_outdated: 0,
        partitions: Vec::new(),
        seconds: 0.0,
    };

    let mut base = commit::stored_offsets(&table, &src.name, &topic.name, &ids).await?;
    let start_at = k
        .start_at
        .clone()
        .unwrap_or(crate::project::KafkaStart::Earliest);
    let mut progress: Vec<Progress> = vec![Progress::default(); ids.len()];
    // With catch_up: the end of each partition now.
    let until: Option<Vec<i64>> = if options.catch_up {
        let mut ends = Vec::with_capacity(ids.len());
        for pc in &topic.partitions {
            ends.push(kafka::end_offset(&src.name, pc).await?);
        }
        Some(ends)
    } else {
        None
    };
    let mut epoch: i64 = 0;
    // The compaction running in the background, if any.
    let mut compaction: Option<tokio::task::JoinHandle<()>> = None;
    'restart: loop {
        // Where each partition resumes: after the stored offset, or at the start.
        let mut from = Vec::with_capacity(ids.len());
        for (i, pc) in topic.partitions.iter().enumerate() {
            let f = match base[i] {
                Some(o) => o + 1,
                None => kafka::start_offset(&src.name, pc, &start_at).await?,
            };
            progress[i].stored = base[i];
            progress[i].fetched_to = f;
            progress[i].answered = false;
            from.push(f);
        }
        // A start other than the earliest is remembered in the table at once,
        // so that a run that loads nothing still starts the next one there.
        if start_at != crate::project::KafkaStart::Earliest {
            let last: Vec<Option<i64>> = base
                .iter()
                .zip(&from)
                .map(|(b, f)| {
                    if b.is_none() && *f > 0 {
                        Some(f - 1)
                    } else {
                        None
                    }
                })
                .collect();
            if last.iter().any(Option::is_some) {
                epoch += 1;
                let meta = BatchMeta {
                    source: &src.name,
                    topic: &topic.name,
                    stream_id: &stream_id,
                    epoch,
                    partitions: &ids,
                    base: &base,
                    last: &last,
                    rows: 0,
                    rejected: 0,
                };
                match commit::commit_batch(&mut table, &target, &[], &meta).await? {
                    Outcome::Committed(v) => {
                        report.version = Some(v);
                        for (i, l) in last.iter().enumerate() {
                            if l.is_some() {
                                base[i] = *l;
                            }
                        }
                    }
                    Outcome::Outdated(now) => base = now,
                }
                continue 'restart;
            }
        }
        let caught_up = |progress: &[Progress]| match &until {
            Some(u) => progress.iter().zip(u).all(|(p, u)| p.fetched_to >= *u),
            None => false,
        };
        if caught_up(&progress) {
            break 'restart;
        }
        let mut fetchers = kafka::spawn_fetchers(
            &src.name,
            &topic,
            &from,
            until.as_deref(),
            k.skip_lost_records,
        );
        // Every fetcher has ended (caught up, or an error already returned).
        let mut ended = false;
        // Batches start on a fixed cadence: the time a commit takes is taken
        // from the next batch's collection, not added to it.
        let mut batch_start = tokio::time::Instant::now();
        loop {
            // Collect one micro-batch.
            let now = tokio::time::Instant::now();
            let deadline = (batch_start + trigger).max(now + Duration::from_millis(5));
            batch_start = deadline;
            let mut batch: Vec<(i32, RecordAndOffset)> = Vec::new();
            let mut bytes = 0usize;
            let mut stopping = *stop.borrow();
            while !stopping && !ended {
                tokio::select! {
                    item = fetchers.rx.recv() => {
                        let Some(item) = item else {
                            ended = true;
                            break;
                        };
                        let f = item?;
                        let Some(i) = ids.iter().position(|p| *p == f.partition) else { continue };
                        let pr = &mut progress[i];
                        pr.end = pr.end.max(f.high_watermark);
                        pr.fetched_to = f.next;
                        pr.answered = true;
                        if let Some(last) = f.records.last() {
                            pr.newest_ms = Some(last.record.timestamp.timestamp_millis());
                        }
                        for r in f.records {
                            bytes += r.record.value.as_ref().map_or(0, |v| v.len());
                            batch.push((f.partition, r));
                        }
                        if batch.len() >= k.max_batch_records || bytes >= k.max_batch_bytes {
                            break;
                        }
                        if caught_up(&progress) {
                            break;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => break,
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            stopping = true;
                        }
                    }
                }
            }
            if !batch.is_empty() {
                epoch += 1;
                match commit_one(
                    warehouse,
                    src,
                    &topic.name,
                    &ids,
                    &mut table,
                    &decoder,
                    &table_schema,
                    &stream_id,
                    epoch,
                    &base,
                    &batch,
                )
                .await?
                {
                    Committed::Version {
                        version,
                        rows,
                        rejected,
                        last,
                        batches,
                    } => {
                        observer.rows(src, version, &batches);
                        report.batches += 1;
                        report.version = Some(version);
                        report.rows_loaded += rows;
                        report.rows_rejected += rejected;
                        if rejected > 0 {
                            report.rejected_table = Some(format!("{target}__rejected"));
                        }
                        for (i, l) in last.iter().enumerate() {
                            if let Some(l) = l {
                                base[i] = Some(*l);
                                progress[i].stored = Some(*l);
                            }
                        }
                        for (p, r) in &batch {
                            if let Some(i) = ids.iter().position(|x| x == p) {
                                if base[i] == Some(r.offset) {
                                    progress[i].committed_ms =
                                        Some(r.record.timestamp.timestamp_millis());
                                }
                            }
                        }
                        report.partitions = statuses(&ids, &progress);
                        report.seconds = started.elapsed().as_secs_f64();
                        tracing::info!(
                            "stream {}: v{version}: {rows} rows, {rejected} rejected; lag {} records",
                            src.name,
                            report.partitions.iter().map(|p| p.lag_records).sum::<i64>()
                        );
                        observer.committed(&report, version, rows);
                        if k.optimize_every > 0
                            && version / k.optimize_every
                                != version.saturating_sub(1) / k.optimize_every
                            && compaction.as_ref().is_none_or(|h| h.is_finished())
                        {
                            compaction =
                                Some(spawn_compaction(warehouse, &schema_name, &table_name));
                        }
                    }
                    Committed::Outdated(now) => {
                        report.batches_outdated += 1;
                        observer.outdated(src);
                        tracing::info!(
                            "stream {}: another ingester stored these offsets first; resuming after them",
                            src.name
                        );
                        base = now;
                        drop(fetchers);
                        continue 'restart;
                    }
                }
            }
            if stopping || ended || caught_up(&progress) {
                break 'restart;
            }
        }
    }
    if let Some(h) = compaction {
        let _ = h.await;
    }
    report.partitions = statuses(&ids, &progress);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Compacts the table's small files and writes a checkpoint, beside the
/// stream: its commits are blind appends, which an optimize commits over (and
/// a batch that loses the race to it is committed again on top, see `commit`).
fn spawn_compaction(
    warehouse: &Warehouse,
    schema_name: &str,
    table_name: &str,
) -> tokio::task::JoinHandle<()> {
    let warehouse = warehouse.clone();
    let (schema_name, table_name) = (schema_name.to_string(), table_name.to_string());
    tokio::spawn(async move {
        let options = crate::warehouse::OptimizeOptions {
            min_small_files: 8,
            checkpoint: true,
            ..Default::default()
        };
        match crate::warehouse::optimize(&warehouse, &schema_name, &table_name, &options).await {
            Ok(r) => tracing::info!(
                "compacted {schema_name}.{table_name}: {} files into {}, checkpoint at v{}",
                r.files_removed,
                r.files_added,
                r.checkpoint
                    .map_or_else(|| "-".to_string(), |v| v.to_string())
            ),
            Err(e) => {
                tracing::warn!("compacting {schema_name}.{table_name} (tried again later): {e}")
            }
        }
    })
}

fn statuses(ids: &[i32], progress: &[Progress]) -> Vec<PartitionStatus> {
    ids.iter()
        .zip(progress)
        .map(|(p, pr)| {
            let next = pr.stored.map_or(0, |o| o + 1);
            let end = pr.end.max(next);
            let lag = (end - next).max(0);
            let lag_seconds = match (lag, pr.newest_ms, pr.committed_ms) {
                (0, _, _) => 0.0,
                (_, Some(n), Some(c)) => ((n - c).max(0)) as f64 / 1000.0,
                _ => 0.0,
            };
            PartitionStatus {
                partition: *p,
                loaded_offset: pr.stored,
                end_offset: end,
                lag_records: lag,
                lag_seconds,
            }
        })
        .collect()
}

enum Committed {
    Version {
        version: u64,
        rows: u64,
        rejected: u64,
        last: Vec<Option<i64>>,
        batches: Vec<arrow::array::RecordBatch>,
    },
    Outdated(Vec<Option<i64>>),
}

/// Decodes, writes and commits one micro-batch.
#[allow(clippy::too_many_arguments)]
async fn commit_one(
    warehouse: &Warehouse,
    src: &SourceDecl,
    topic: &str,
    ids: &[i32],
    table: &mut deltalake::DeltaTable,
    decoder: &Decoder,
    schema: &arrow::datatypes::SchemaRef,
    stream_id: &str,
    epoch: i64,
    base: &[Option<i64>],
    batch: &[(i32, RecordAndOffset)],
) -> Result<Committed> {
    let (schema_name, table_name) = src.target();
    let target = src.target_name();
    let refs: Vec<(i32, &RecordAndOffset)> = batch.iter().map(|(p, r)| (*p, r)).collect();
    let decoded = decoder.decode(&refs)?;
    let mut last: Vec<Option<i64>> = vec![None; ids.len()];
    for (p, r) in batch {
        if let Some(i) = ids.iter().position(|x| x == p) {
            last[i] = Some(last[i].map_or(r.offset, |l: i64| l.max(r.offset)));
        }
    }
    let rows = decoded.num_rows() as u64;
    let rejected = decoded.rejected.len() as u64;
    if !decoded.rejected.is_empty() {
        quarantine(
            warehouse,
            src,
            topic,
            stream_id,
            &schema_name,
            &format!("{table_name}__rejected"),
            &decoded.rejected,
        )
        .await?;
    }
    let mut sink = TableSink::new(
        warehouse,
        &schema_name,
        &table_name,
        schema.clone(),
        Some(&*table),
    )?;
    for b in decoded.batches.iter().filter(|b| b.num_rows() > 0) {
        sink.write(b).await?;
    }
    let adds = sink.finish().await?;
    let meta = BatchMeta {
        source: &src.name,
        topic,
        stream_id,
        epoch,
        partitions: ids,
        base,
        last: &last,
        rows,
        rejected,
    };
    match commit::commit_batch(table, &target, &adds, &meta).await? {
        Outcome::Committed(version) => Ok(Committed::Version {
            version,
            rows,
            rejected,
            last,
            batches: decoded.batches,
        }),
        Outcome::Outdated(now) => Ok(Committed::Outdated(now)),
    }
}

/// Commits `rejected` to the quarantine table, leaving out those an earlier
/// commit already quarantined (each partition's `txn` there is the last
/// offset quarantined).
async fn quarantine(
    warehouse: &Warehouse,
    src: &SourceDecl,
    topic: &str,
    stream_id: &str,
    schema_name: &str,
    table_name: &str,
    rejected: &[RejectedRecord],
) -> Result<()> {
    let name = format!("{schema_name}.{table_name}");
    let schema = records::rejected_schema();
    let mut partitions: Vec<i32> = rejected.iter().map(|r| r.partition).collect();
    partitions.sort();
    partitions.dedup();
    let now_us = chrono::Utc::now().timestamp_micros();
    for _ in 0..64 {
        let table = match warehouse.open_table(schema_name, table_name).await? {
            Some(t) => t,
            None => {
                let columns: StructType = schema
                    .as_ref()
                    .try_into_kernel()
                    .map_err(|e| Error::Internal(format!("schema of {name}: {e}")))?;
                let url = warehouse.table_url(schema_name, table_name)?;
                let created = warehouse
                    .table_handle(&url)?
                    .create()
                    .with_table_name(name.clone())
                    .with_columns(columns.fields().cloned())
                    .with_save_mode(SaveMode::ErrorIfExists)
                    .with_commit_properties(
                        CommitProperties::default().with_cleanup_expired_logs(Some(false)),
                    )
                    .await;
                if let Err(e) = created {
                    if warehouse
                        .open_table(schema_name, table_name)
                        .await?
                        .is_none()
                    {
                        return Err(Error::storage(&name, e));
                    }
                }
                continue;
            }
        };
        let done = commit::stored_offsets(&table, &src.name, topic, &partitions).await?;
        let fresh: Vec<&RejectedRecord> = rejected
            .iter()
            .filter(|r| {
                let i = partitions.iter().position(|p| *p == r.partition);
                i.and_then(|i| done[i]).is_none_or(|d| r.offset > d)
            })
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let batch = records::rejected_batch(stream_id, &src.name, topic, &fresh, now_us)?;
        let mut sink = TableSink::new(
            warehouse,
            schema_name,
            table_name,
            schema.clone(),
            Some(&table),
        )?
        .with_parallelism(1);
        sink.write(&batch).await?;
        let adds = sink.finish().await?;
        let txns: Vec<Transaction> = partitions
            .iter()
            .filter_map(|p| {
                fresh
                    .iter()
                    .filter(|r| r.partition == *p)
                    .map(|r| r.offset)
                    .max()
                    .map(|o| Transaction::new(commit::app_id(&src.name, topic, *p), o))
            })
            .collect();
        let props = CommitProperties::default()
            .with_cleanup_expired_logs(Some(false))
            .with_max_retries(0)
            .with_application_transactions(txns)
            .with_metadata([
                (
                    "sluice.source".to_string(),
                    format!("{}__rejected", src.name).into(),
                ),
                ("sluice.stream_id".to_string(), stream_id.into()),
                ("sluice.rows".to_string(), (fresh.len() as u64).into()),
            ]);
        let snapshot = table.snapshot().map_err(|e| Error::storage(&name, e))?;
        let result = CommitBuilder::from(props)
            .with_actions(adds.into_iter().map(Action::Add).collect())
            .build(
                Some(snapshot as &dyn TableReference),
                table.log_store(),
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: None,
                    predicate: None,
                },
            )
            .await;
        match result {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(Error::storage(&name, e)),
        }
    }
    Err(Error::LoadAborted {
        source_name: src.name.clone(),
        message: format!("other commits to `{name}` kept landing first"),
    })
}
