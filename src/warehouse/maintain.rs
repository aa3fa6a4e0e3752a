//! Table maintenance: [`optimize`] compacts small data files, [`vacuum`]
//! deletes the data files no version inside a retention window still reads.
//!
//! Streaming ingest commits about once a second, one or a few small Parquet
//! files each time; reading thousands of tiny files is slow, so compacting
//! them is the engine's job, not the user's. Both operations are deltalake
//! 1.1's (`DeltaTable::optimize`, `DeltaTable::vacuum`), with sluice's
//! settings:
//!
//! - **optimize** bin-packs the files smaller than the target size into files
//!   of about [`TARGET_FILE_SIZE`], written with [`writer_properties`] (ZSTD),
//!   as one commit whose `add` and `remove` actions have `dataChange=false`.
//!   No file is deleted, so every older version still reads. Commits that
//!   land meanwhile: blind appends (a streamer, a load) let the optimize
//!   commit on top of them; a commit that removed one of the files being
//!   compacted (another optimize, an overwrite, a delete) fails it with
//!   [`Error::Conflict`] (run it again). deltalake 1.1's conflict checker
//!   alone misses that second case when the other commit's `remove`s have
//!   `dataChange=false` (it only compares `dataChange=true` removes): two
//!   optimizes of the same files both committed and every row was in the
//!   table twice. So [`KeepLog`] also checks each commit the optimize writes
//!   against the commits that landed since its read version.
//! - **vacuum** deletes the files whose `remove` is older than the retention
//!   (deltalake's `lite` mode: tombstones only, never a file the log does not
//!   know). A file removed before the window starts is read by no version
//!   committed inside it, so time travel to any version committed inside the
//!   window (and to the version current when the window starts) still works.
//!   Under 7 days is refused unless asked for explicitly.
//!
//! **The log is never cleaned.** sluice's own commits set
//! `with_cleanup_expired_logs(Some(false))`: load idempotency reads the load
//! records in old commits, and time travel needs the commits. deltalake 1.1's
//! optimize and vacuum build the commit properties of their OPTIMIZE and
//! VACUUM START commits themselves (only the metadata of ours is copied), so
//! their post-commit hook falls back to the table's
//! `delta.enableExpiredLogCleanup` (true by default) and deletes log entries
//! older than `delta.logRetentionDuration` (30 days) below a checkpoint. The
//! table handle both operations run on therefore sees the store through
//! [`KeepLog`], which does not delete anything under `_delta_log/`.
//!
//! The reverse race, a writer that read the table before an optimize
//! committed and commits after it (a SQL DELETE, a merge), deltalake does
//! catch: the optimize's added files count as files that writer should have
//! read (`ConcurrentAppend`), so it fails and nothing is lost (tested).

use super::{writer_properties, Warehouse, TARGET_FILE_SIZE};
use crate::error::{did_you_mean, Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::DeltaTable;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use serde::Serialize;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest retention [`vacuum`] accepts without
/// [`VacuumOptions::allow_short_retention`]: Delta's default
/// `delta.deletedFileRetentionDuration`, 7 days.
pub const MIN_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What [`optimize`] does.
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// Size of the compacted files, in bytes; files at least this large are
    /// left alone.
    pub target_size: u64,
    /// Compact only when the table has at least this many small files (files
    /// under half the target size), so that a streamer can call it after every
    /// batch cheaply: below the threshold no file is read or written. Values
    /// under 2 count as 2 (one small file has nothing to merge with).
    pub min_small_files: usize,
    /// Write a checkpoint of the latest version afterwards (readers then
    /// replay the log from it instead of from the first commit).
    pub checkpoint: bool,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            target_size: TARGET_FILE_SIZE,
            min_small_files: 2,
            checkpoint: false,
        }
    }
}

/// What [`optimize`] did to one table (`sluice optimize --format json`).
#[derive(Debug, Clone, Serialize)]
pub struct OptimizeReport {
    /// `schema.table`.
    pub table: String,
    /// The version the compaction was planned on.
    pub read_version: u64,
    /// The version of the compaction commit; `None` when nothing was
    /// compacted (fewer small files than the threshold).
    pub version: Option<u64>,
    /// Data files and their bytes in `read_version`.
    pub files_before: u64,
    pub bytes_before: u64,
    /// Files in `read_version` under half the target size.
    pub small_files: u64,
    /// Files the compaction replaced and their bytes.
    pub files_removed: u64,
    pub bytes_removed: u64,
    /// Files it wrote and their bytes.
    pub files_added: u64,
    pub bytes_added: u64,
    /// Data files and bytes of `read_version` after the compaction (commits
    /// that landed meanwhile not counted).
    pub files_after: u64,
    pub bytes_after: u64,
    /// The version a checkpoint was written for (with
    /// [`OptimizeOptions::checkpoint`]).
    pub checkpoint: Option<u64>,
    pub seconds: f64,
}

/// What [`vacuum`] does.
#[derive(Debug, Clone)]
pub struct VacuumOptions {
    /// Keep every file a version committed in the last `retain` reads.
    pub retain: Duration,
    /// List what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Accept a retention under [`MIN_RETENTION`] (or under the table's
    /// `delta.deletedFileRetentionDuration` when that is longer).
    pub allow_short_retention: bool,
}

/// One data file [`vacuum`] deleted (or would delete).
#[derive(Debug, Clone, Serialize)]
pub struct VacuumedFile {
    /// Path relative to the table folder.
    pub path: String,
    /// Bytes (`None` when the log did not record the size).
    pub size: Option<u64>,
}

/// What [`vacuum`] did to one table (`sluice vacuum --format json`).
#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    /// `schema.table`.
    pub table: String,
    pub dry_run: bool,
    /// The retention asked for, in seconds.
    pub retain_seconds: u64,
    /// Files removed from the table before this time (RFC 3339, UTC) are
    /// deleted: versions committed from then on still read.
    pub cutoff: String,
    /// The files deleted (or, in a dry run, that would be).
    pub files: Vec<VacuumedFile>,
    /// Their number and total bytes.
    pub files_deleted: u64,
    pub bytes_deleted: u64,
    /// The table's latest version before the vacuum.
    pub read_version: u64,
    /// The version of the VACUUM END commit; `None` in a dry run or when
    /// nothing was deleted.
    pub version: Option<u64>,
    pub seconds: f64,
}

/// Compacts the small data files of `schema.table` (see the module docs).
pub async fn optimize(
    warehouse: &Warehouse,
    schema: &str,
    table: &str,
    opts: &OptimizeOptions,
) -> Result<OptimizeReport> {
    let started = Instant::now();
    let name = format!("{schema}.{table}");
    let target = NonZeroU64::new(opts.target_size).ok_or_else(|| {
        Error::invalid(format!(
            "optimize of `{name}`: the target file size must be more than 0 bytes"
        ))
    })?;
    let (delta, guard) = open_maintained(warehouse, schema, table).await?;
    let state = delta.snapshot().map_err(|e| Error::storage(&name, e))?;
    let read_version = state.version();
    guard.read_from(read_version);
    let log_store = delta.log_store();
    let sizes: Vec<u64> = state
        .snapshot()
        .file_views(log_store.as_ref(), None)
        .map_ok(|f| u64::try_from(f.size()).unwrap_or(0))
        .try_collect()
        .await
        .map_err(|e| Error::storage(&name, e))?;
    let arrow_schema = state.snapshot().arrow_schema();
    let small_files = sizes.iter().filter(|s| **s < target.get() / 2).count();
    let files_before = sizes.len() as u64;
    let bytes_before: u64 = sizes.iter().sum();
    let mut report = OptimizeReport {
        table: name.clone(),
        read_version,
        version: None,
        files_before,
        bytes_before,
        small_files: small_files as u64,
        files_removed: 0,
        bytes_removed: 0,
        files_added: 0,
        bytes_added: 0,
        files_after: files_before,
        bytes_after: bytes_before,
        checkpoint: None,
        seconds: 0.0,
    };
    let mut delta = delta;
    if small_files >= opts.min_small_files.max(2) {
        let properties = CommitProperties::default().with_cleanup_expired_logs(Some(false));
        let (after, metrics) = delta
            .clone()
            .optimize()
            .with_target_size(target)
            .with_writer_properties(writer_properties(&arrow_schema))
            .with_commit_properties(properties)
            .await
            .map_err(|e| guard.error(&name, e))?;
        delta = after;
        report.files_removed = metrics.num_files_removed;
        report.files_added = metrics.num_files_added;
        report.bytes_removed = u64::try_from(metrics.files_removed.total_size).unwrap_or(0);
        report.bytes_added = u64::try_from(metrics.files_added.total_size).unwrap_or(0);
        report.files_after =
            files_before - report.files_removed.min(files_before) + report.files_added;
        report.bytes_after =
            bytes_before - report.bytes_removed.min(bytes_before) + report.bytes_added;
        if metrics.num_files_removed > 0 || metrics.num_files_added > 0 {
            let version = guard.last_commit().ok_or_else(|| {
                Error::Internal(format!("optimize of `{name}` committed no log entry"))
            })?;
            report.version = Some(version);
        }
    }
    if opts.checkpoint {
        let version = delta.version().unwrap_or(read_version);
        deltalake::checkpoints::create_checkpoint(&delta, None)
            .await
            .map_err(|e| Error::storage(&name, e))?;
        report.checkpoint = Some(version);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Deletes the data files of `schema.table` that no version committed in the
/// last `opts.retain` reads (see the module docs).
pub async fn vacuum(
    warehouse: &Warehouse,
    schema: &str,
    table: &str,
    opts: &VacuumOptions,
) -> Result<VacuumReport> {
    use deltalake::table::config::TablePropertiesExt;
    let started = Instant::now();
    let name = format!("{schema}.{table}");
    let (delta, guard) = open_maintained(warehouse, schema, table).await?;
    let state = delta.snapshot().map_err(|e| Error::storage(&name, e))?;
    let read_version = state.version();
    guard.read_from(read_version);
    let minimum = MIN_RETENTION.max(state.table_config().deleted_file_retention_duration());
    if opts.retain < minimum && !opts.allow_short_retention {
        return Err(Error::invalid(format!(
            "vacuum of `{name}`: a retention of {} is under the minimum of {}; versions older \
             than the retention can no longer be read after a vacuum, and a reader or writer \
             still using them fails; pass --allow-short-retention to vacuum with {} anyway",
            human_duration(opts.retain),
            human_duration(minimum),
            human_duration(opts.retain),
        )));
    }
    let retain = chrono::Duration::from_std(opts.retain).map_err(|_| {
        Error::invalid(format!(
            "vacuum of `{name}`: a retention of {} is too long",
            human_duration(opts.retain)
        ))
    })?;
    let cutoff = chrono::Utc::now() - retain;
    // Sizes of the removed files, for the report (deltalake returns paths).
    let log_store = delta.log_store();
    let sizes: HashMap<String, u64> = state
        .all_tombstones(log_store.as_ref())
        .map_ok(|t| {
            let path = t.path();
            let path = ObjPath::parse(path.as_ref())
                .map(|p| p.to_string())
                .unwrap_or_else(|_| path.to_string());
            (path, t.size().and_then(|s| u64::try_from(s).ok()))
        })
        .try_filter_map(|(p, s)| futures::future::ready(Ok(s.map(|s| (p, s)))))
        .try_collect()
        .await
        .map_err(|e| Error::storage(&name, e))?;
    let (_, metrics) = delta
        .clone()
        .vacuum()
        .with_retention_period(retain)
        // Checked above, against sluice's minimum and the table's.
        .with_enforce_retention_duration(false)
        .with_dry_run(opts.dry_run)
        .with_commit_properties(CommitProperties::default().with_cleanup_expired_logs(Some(false)))
        .await
        .map_err(|e| guard.error(&name, e))?;
    let files: Vec<VacuumedFile> = metrics
        .files_deleted
        .iter()
        .map(|p| VacuumedFile {
            size: sizes.get(p).copied(),
            path: p.clone(),
        })
        .collect();
    let deleted_anything = !opts.dry_run && !files.is_empty();
    Ok(VacuumReport {
        table: name,
        dry_run: opts.dry_run,
        retain_seconds: opts.retain.as_secs(),
        cutoff: cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        files_deleted: files.len() as u64,
        bytes_deleted: files.iter().filter_map(|f| f.size).sum(),
        files,
        read_version,
        version: if deleted_anything {
            guard.last_commit()
        } else {
            None
        },
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `7d`, `36h`, `90m`, `45s`: the largest unit that divides the duration.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s > 0 && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    if d.subsec_nanos() == 0 {
        format!("{s}s")
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// `schema.table` loaded at its latest version through [`KeepLog`]; an
/// unknown table (or a view) is an error naming it and the closest table.
async fn open_maintained(
    warehouse: &Warehouse,
    schema: &str,
    table: &str,
) -> Result<(DeltaTable, Arc<CommitGuard>)> {
    let name = format!("{schema}.{table}");
    let exists = super::is_identifier(schema)
        && super::is_identifier(table)
        && warehouse.latest_version(schema, table).await?.is_some();
    if !exists {
        if super::is_identifier(schema)
            && super::is_identifier(table)
            && warehouse.get_view(schema, table).await?.is_some()
        {
            return Err(Error::invalid(format!(
                "`{name}` is a view: only tables have data files to optimize or vacuum"
            )));
        }
        let mut known = Vec::new();
        for s in warehouse.list_schemas().await? {
            for t in warehouse.list_tables(&s).await? {
                known.push(format!("{s}.{t}"));
            }
        }
        return Err(Error::UnknownTable {
            table: name.clone(),
            hint: format!(
                " in warehouse {}{}",
                warehouse.root(),
                did_you_mean(&name, known.iter().map(String::as_str))
            ),
        });
    }
    let url = warehouse.table_url(schema, table)?;
    let plain = warehouse.table_handle(&url)?;
    let root = plain.log_store().root_object_store(None);
    let log = ObjPath::from_url_path(url.path())
        .map_err(|e| Error::Internal(format!("table path of {url}: {e}")))?
        .join("_delta_log");
    let guard = Arc::new(CommitGuard::new(log));
    let keep_log: Arc<dyn ObjectStore> = Arc::new(KeepLog {
        inner: root,
        guard: Some(guard.clone()),
    });
    let mut delta = deltalake::DeltaTableBuilder::from_url(url.clone())
        .map_err(|e| Error::storage(&url, e))?
        .with_storage_options(warehouse.options().clone())
        .with_storage_backend(keep_log, url.clone())
        .build()
        .map_err(|e| Error::storage(&url, e))?;
    delta.load().await.map_err(|e| Error::storage(&name, e))?;
    Ok((delta, guard))
}

/// The commits one maintenance operation writes, checked against the
/// commits that landed after the version it read (see the module docs).
#[derive(Debug)]
struct CommitGuard {
    /// The table's `_delta_log` folder in the root store.
    log: ObjPath,
    /// The version the operation planned on.
    read_version: AtomicU64,
    /// Why a commit was refused: another commit removed one of its files.
    conflict: Mutex<Option<String>>,
    /// The versions written.
    committed: Mutex<Vec<u64>>,
}

impl CommitGuard {
    fn new(log: ObjPath) -> Self {
        CommitGuard {
            log,
            read_version: AtomicU64::new(0),
            conflict: Mutex::new(None),
            committed: Mutex::new(Vec::new()),
        }
    }

    fn read_from(&self, version: u64) {
        self.read_version.store(version, Ordering::SeqCst);
    }

    /// The last version this operation committed.
    fn last_commit(&self) -> Option<u64> {
        self.committed.lock().ok()?.last().copied()
    }

    /// `err` as sluice's error: a refused commit is a conflict.
    fn error(&self, table: &str, err: deltalake::DeltaTableError) -> Error {
        let refused = self.conflict.lock().ok().and_then(|c| c.clone());
        match refused {
            Some(message) => Error::Conflict {
                table: table.to_string(),
                message,
            },
            None => Error::delta_write(table, err),
        }
    }

    /// The commit version `location` writes, when it is a commit of this table.
    fn commit_version(&self, location: &ObjPath) -> Option<u64> {
        let rest = location.prefix_match(&self.log)?.collect::<Vec<_>>();
        match rest.as_slice() {
            [name] => name.as_ref().strip_suffix(".json")?.parse().ok(),
            _ => None,
        }
    }

    /// Refuses (with an error, after noting why) to write commit `version`
    /// when a commit after the read version removed a file it removes.
    async fn check(
        &self,
        store: &dyn ObjectStore,
        version: u64,
        payload: &PutPayload,
    ) -> object_store::Result<()> {
        use object_store::ObjectStoreExt;
        let ours: Vec<String> = payload
            .iter()
            .flat_map(|chunk| removed_paths(chunk))
            .collect();
        let read = self.read_version.load(Ordering::SeqCst);
        if ours.is_empty() || version <= read + 1 {
            return Ok(());
        }
        for v in read + 1..version {
            let path = self.log.clone().join(format!("{v:020}.json"));
            let bytes = store.get(&path).await?.bytes().await?;
            if let Some(file) = removed_paths(&bytes).into_iter().find(|p| ours.contains(p)) {
                let message = format!(
                    "version {v} replaced `{file}` (and maybe more of the files this compacted) \
                     after version {read} was read"
                );
                if let Ok(mut c) = self.conflict.lock() {
                    *c = Some(message.clone());
                }
                return Err(object_store::Error::Generic {
                    store: "sluice",
                    source: message.into(),
                });
            }
        }
        Ok(())
    }
}

/// The paths of the `remove` actions of a commit file.
fn removed_paths(commit: &[u8]) -> Vec<String> {
    commit
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).ok()?;
            Some(v.get("remove")?.get("path")?.as_str()?.to_string())
        })
        .collect()
}

/// An object store that does everything its inner store does except delete
/// under `_delta_log/` (see the module docs): such deletes are dropped, as if
/// the objects were already gone.
#[derive(Debug)]
struct KeepLog {
    inner: Arc<dyn ObjectStore>,
    /// Checks the commits written through this store.
    guard: Option<Arc<CommitGuard>>,
}

impl std::fmt::Display for KeepLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeepLog({})", self.inner)
    }
}

/// Whether `path` is in a Delta log folder.
fn in_log(path: &ObjPath) -> bool {
    path.parts().any(|p| p.as_ref() == "_delta_log")
}

#[async_trait]
impl ObjectStore for KeepLog {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if let Some(guard) = &self.guard {
            if let Some(version) = guard.commit_version(location) {
                if matches!(opts.mode, object_store::PutMode::Create) {
                    guard.check(self.inner.as_ref(), version, &payload).await?;
                    let put = self.inner.put_opts(location, payload, opts).await?;
                    if let Ok(mut c) = guard.committed.lock() {
                        c.push(version);
                    }
                    return Ok(put);
                }
            }
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &ObjPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjPath>> {
        // Log paths are answered as deleted (a single `delete` expects one
        // answer), after the others: the inner stream has read all of
        // `locations` by the time it ends.
        let skipped: Arc<Mutex<Vec<ObjPath>>> = Arc::default();
        let note = skipped.clone();
        let kept = locations
            .try_filter(move |p| {
                let log = in_log(p);
                if log {
                    if let Ok(mut s) = note.lock() {
                        s.push(p.clone());
                    }
                }
                futures::future::ready(!log)
            })
            .boxed();
        let answered = futures::stream::once(async move {
            let paths = skipped.lock().map(|mut s| std::mem::take(&mut *s));
            futures::stream::iter(paths.unwrap_or_default().into_iter().map(Ok))
        })
        .flatten();
        self.inner.delete_stream(kept).chain(answered).boxed()
    }

    fn list(
        &self,
        prefix: Option<&ObjPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjPath>,
        offset: &ObjPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjPath,
        to: &ObjPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &ObjPath,
        to: &ObjPath,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[test]
    fn durations_read_back() {
        assert_eq!(human_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(human_duration(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(human_duration(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn the_guard_knows_its_commits_and_their_removes() {
        let guard = CommitGuard::new(ObjPath::from("w/raw/t/_delta_log"));
        let at = |p: &str| guard.commit_version(&ObjPath::from(p));
        assert_eq!(at("w/raw/t/_delta_log/00000000000000000012.json"), Some(12));
        assert_eq!(
            at("w/raw/t/_delta_log/00000000000000000012.checkpoint.parquet"),
            None
        );
        assert_eq!(at("w/raw/t/_delta_log/_last_checkpoint"), None);
        assert_eq!(at("w/raw/u/_delta_log/00000000000000000012.json"), None);
        assert_eq!(at("w/raw/t/part-0.json"), None);
        let commit = br#"{"commitInfo":{"operation":"OPTIMIZE"}}
{"remove":{"path":"a.parquet","dataChange":false}}
{"add":{"path":"c.parquet","dataChange":false}}
{"remove":{"path":"b.parquet","dataChange":false}}"#;
        assert_eq!(removed_paths(commit), vec!["a.parquet", "b.parquet"]);
    }

    #[tokio::test]
    async fn keep_log_deletes_data_files_but_not_the_log() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = KeepLog {
            inner: inner.clone(),
            guard: None,
        };
        let log = ObjPath::from("w/raw/t/_delta_log/00000000000000000000.json");
        let data = ObjPath::from("w/raw/t/part-0.parquet");
        for p in [&log, &data] {
            inner.put(p, PutPayload::from_static(b"x")).await.unwrap();
        }
        let gone: Vec<ObjPath> = store
            .delete_stream(futures::stream::iter([Ok(log.clone()), Ok(data.clone())]).boxed())
            .try_collect()
            .await
            .unwrap();
        // Both answered, only the data file deleted.
        assert_eq!(gone, vec![data.clone(), log.clone()]);
        assert!(inner.head(&log).await.is_ok());
        assert!(inner.head(&data).await.is_err());
        // A single delete goes through delete_stream as well.
        store.delete(&log).await.unwrap();
        assert!(inner.head(&log).await.is_ok());
    }
}
