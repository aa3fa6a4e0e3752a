//! `sluice load`: raw files into Delta tables.
//!
//! Per source and load: resolve files, skip those already loaded (recorded in the
//! commit metadata), plan the schema, stream every file through a typed reader
//! into Parquet data files (ZSTD), quarantine rows that do not fit into
//! `<target>__rejected`, then commit once. Nothing is visible before the commit, so
//! a killed load leaves the table at its previous version. Loads that run at the
//! same time commit each file once (see `conflict`).

pub(crate) mod commit;
pub(crate) mod conflict;
pub(crate) mod convert;
pub(crate) mod csv;
pub(crate) mod files;
pub(crate) mod ndjson;
pub(crate) mod quarantine;
pub(crate) mod readers;
pub mod seeds;
mod timestamps;

pub use conflict::ConcurrentFile;
pub use quarantine::rejected_schema;

use crate::error::{Error, Result};
use crate::project::{LoadMode, Project, SourceDecl};
use crate::warehouse::Warehouse;
use arrow::datatypes::{Schema, SchemaRef};
use conflict::{Committed, Guard};
use serde::Serialize;
use std::sync::Arc;

/// Options of one `sluice load`.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Reload files even when already loaded.
    pub force: bool,
    /// Let an append source load rows it already holds again: with `force`,
    /// every file; without, the files that changed since they were loaded
    /// (each is loaded whole). Without it both are errors naming the files,
    /// since their earlier rows stay in the table.
    pub allow_duplicates: bool,
    /// Overrides each source's `max_rejected`.
    pub max_rejected: Option<u64>,
}

/// Receives progress while loading (the CLI draws bars from it).
pub trait LoadObserver: Send + Sync {
    /// A source starts: its new files and their total size.
    fn source_started(&self, _source: &str, _files: usize, _bytes: u64) {}
    /// Rows and input bytes processed since the last call.
    fn progress(&self, _rows: u64, _bytes: u64) {}
    /// A file is done.
    fn file_finished(&self, _source: &str, _file: &FileReport) {}
}

/// An observer that ignores everything.
pub struct NoProgress;
impl LoadObserver for NoProgress {}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub bytes: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
}

/// What happened to one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub table: String,
    pub mode: String,
    /// Table version committed by this load; `None` when nothing changed.
    pub version: Option<u64>,
    pub files: Vec<FileReport>,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    /// Files skipped because they were already loaded.
    pub skipped_files: usize,
    /// Files skipped because they hold no record (empty, or only blank lines).
    pub empty_files: Vec<String>,
    /// Skipped files that another load running at the same time committed
    /// while this one was reading them (each file's rows are in the table
    /// once; this load is still a success).
    pub loaded_concurrently: Vec<ConcurrentFile>,
    /// The quarantine table, when rows were rejected.
    pub rejected_table: Option<String>,
    pub seconds: f64,
}

/// The result of `sluice load`.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub load_id: String,
    pub sources: Vec<SourceReport>,
}

/// A new load id, in the format of run ids ([`crate::names::new_id`]).
pub fn new_load_id() -> String {
    crate::names::new_id()
}

/// Loads `sources` (all when empty) of `project` into `warehouse`.
pub async fn load(
    project: &Project,
    warehouse: &Warehouse,
    sources: &[String],
    options: &LoadOptions,
    observer: &dyn LoadObserver,
) -> Result<LoadReport> {
    let selected = project.select_sources(sources)?;
    if selected.is_empty() {
        return Err(Error::config(
            project.root.join(&project.config.project.catalog),
            "no sources are declared; add a [[source]] to a .toml file in this folder",
        ));
    }
    let load_id = new_load_id();
    let mut reports = Vec::new();
    for src in selected {
        if src.kind == crate::project::SourceKind::Kafka {
            reports.push(load_kafka(warehouse, src, &load_id).await?);
            continue;
        }
        let report = load_source(project, warehouse, src, options, &load_id, observer).await?;
        tracing::debug!(
            "load {load_id}: {} into {}: {} new files, {} already loaded, {} rows, {} rejected, {}",
            report.source,
            report.table,
            report.files.len(),
            report.skipped_files,
            report.rows_loaded,
            report.rows_rejected,
            report
                .version
                .map_or_else(|| "no commit".to_string(), |v| format!("committed v{v}"))
        );
        reports.push(report);
    }
    Ok(LoadReport {
        load_id,
        sources: reports,
    })
}

/// A Kafka source caught up to the end each partition has now.
async fn load_kafka(
    warehouse: &Warehouse,
    src: &SourceDecl,
    load_id: &str,
) -> Result<SourceReport> {
    let options = crate::stream::StreamOptions {
        catch_up: true,
        trigger: None,
        run_id: Some(load_id.to_string()),
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut reports =
        crate::stream::run(warehouse, &[src], &options, rx, &crate::stream::LogCommits).await?;
    let r = reports
        .pop()
        .ok_or_else(|| Error::Internal("no stream report".into()))?;
    Ok(SourceReport {
        source: r.source,
        table: r.table,
        mode: "stream".into(),
        version: r.version,
        files: Vec::new(),
        rows_loaded: r.rows_loaded,
        rows_rejected: r.rows_rejected,
        skipped_files: 0,
        empty_files: Vec::new(),
        loaded_concurrently: Vec::new(),
        rejected_table: r.rejected_table,
        seconds: r.seconds,
    })
}

/// Loads one source; plans it again when another load committed some of its
/// files (or changed its table's schema) first.
async fn load_source(
    project: &Project,
    warehouse: &Warehouse,
    src: &SourceDecl,
    options: &LoadOptions,
    load_id: &str,
    observer: &dyn LoadObserver,
) -> Result<SourceReport> {
    let started = std::time::Instant::now();
    let mut concurrent: Vec<ConcurrentFile> = Vec::new();
    for _ in 0..conflict::PLAN_ATTEMPTS {
        match load_source_once(project, warehouse, src, options, load_id, observer).await? {
            Attempt::Done(mut report) => {
                // Files that a concurrent load committed and a later attempt
                // loaded again (changed since) are not among the skipped ones.
                concurrent.retain(|c| !report.files.iter().any(|f| f.path == c.path));
                report.loaded_concurrently = concurrent;
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            Attempt::Replan(clashes) => {
                for c in clashes {
                    if !concurrent.iter().any(|k| k.path == c.path) {
                        concurrent.push(c);
                    }
                }
            }
        }
    }
    Err(Error::LoadAborted {
        source_name: src.name.clone(),
        message: format!(
            "other loads committed to `{}` first {} times while this one was reading its files; run the load again",
            src.target_name(),
            conflict::PLAN_ATTEMPTS
        ),
    })
}

/// The last of `commits` that loaded a file at `f`'s path, with what it
/// recorded for it.
fn loaded_before<'a>(
    f: &files::SourceFile,
    commits: &[&'a crate::warehouse::CommitRecord],
) -> Option<(&'a crate::warehouse::CommitRecord, &'a serde_json::Value)> {
    commits.iter().rev().find_map(|c| {
        c.source_files
            .iter()
            .find(|r| r.get("path").and_then(|p| p.as_str()) == Some(f.display.as_str()))
            .map(|r| (*c, r))
    })
}

/// Rows an identity recorded as loaded from its file.
fn recorded_rows(recorded: &serde_json::Value) -> u64 {
    recorded
        .get("rows_loaded")
        .and_then(|r| r.as_u64())
        .unwrap_or(0)
}

/// `files` listed for a message: the first few, then how many more.
fn list_files<'a>(files: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = files.collect();
    let mut text = all.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if all.len() > 5 {
        text.push_str(&format!(" and {} more", all.len() - 5));
    }
    text
}

/// An append source's files that were loaded before and have changed since
/// (another size or modification time): an error naming them, unless there
/// are none. Loading one again would add its earlier rows a second time;
/// skipping it would lose whatever changed. The user decides.
fn refuse_changed_files(
    src: &SourceDecl,
    target: &str,
    fresh: &[files::SourceFile],
    ours: &[&crate::warehouse::CommitRecord],
) -> Result<()> {
    let changed: Vec<String> = fresh
        .iter()
        .filter_map(|f| {
            let (commit, rec) = loaded_before(f, ours)?;
            let size = rec.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            let modified = rec.get("modified").and_then(|m| m.as_str()).unwrap_or("?");
            Some(format!(
                "`{}` ({} rows loaded at version {} from {size} bytes modified {modified}; now {} bytes modified {})",
                f.display,
                recorded_rows(rec),
                commit.version,
                f.size,
                f.modified
            ))
        })
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::source(
        &src.name,
        format!(
            "{} {} changed since loaded into {target}: {}. An append source loads each file once and keeps its rows, so loading a changed file again would add its earlier rows a second time. Put new records in a new file (a new name in the source's location), or run `sluice load {} --allow-duplicates` to load the changed files whole again, or declare the source `mode = \"overwrite\"` (the table is its files) or `mode = \"merge\"` with `merge_keys` (rows replaced by key)",
            changed.len(),
            if changed.len() == 1 { "file has" } else { "files have" },
            changed.join("; "),
            src.name
        ),
    ))
}

/// `--force` on an append source whose table already holds rows of some of
/// `files`: an error saying what would be duplicated.
fn refuse_forced_duplicates(
    src: &SourceDecl,
    target: &str,
    files: &[files::SourceFile],
    ours: &[&crate::warehouse::CommitRecord],
) -> Result<()> {
    let loaded: Vec<(&files::SourceFile, u64)> = files
        .iter()
        .filter_map(|f| {
            let rows: u64 = ours
                .iter()
                .flat_map(|c| c.source_files.iter())
                .filter(|r| r.get("path").and_then(|p| p.as_str()) == Some(f.display.as_str()))
                .map(recorded_rows)
                .sum();
            loaded_before(f, ours).map(|_| (f, rows))
        })
        .collect();
    if loaded.is_empty() {
        return Ok(());
    }
    let rows: u64 = loaded.iter().map(|(_, r)| r).sum();
    Err(Error::source(
        &src.name,
        format!(
            "--force would load again {} of its {} files whose rows {target} already holds ({rows} rows, loaded before from {}); an append source adds every row it loads, so they would be in the table twice. Add --allow-duplicates to do that anyway, or declare the source `mode = \"overwrite\"` to replace the table from its files",
            loaded.len(),
            files.len(),
            list_files(loaded.iter().map(|(f, _)| f.display.as_str())),
        ),
    ))
}

/// One attempt of [`load_source`].
enum Attempt {
    Done(SourceReport),
    /// Nothing was committed to the target: plan again.
    Replan(Vec<ConcurrentFile>),
}

async fn load_source_once(
    project: &Project,
    warehouse: &Warehouse,
    src: &SourceDecl,
    options: &LoadOptions,
    load_id: &str,
    observer: &dyn LoadObserver,
) -> Result<Attempt> {
    let started = std::time::Instant::now();
    let (schema_name, table_name) = src.target();
    let target = src.target_name();
    let location = crate::project::resolve_location(&project.root, &src.location);
    let all_files = files::resolve(warehouse, &src.name, &location).await?;
    let table = warehouse.open_table(&schema_name, &table_name).await?;
    let history = match &table {
        Some(t) => crate::warehouse::history(t).await?,
        None => Vec::new(),
    };
    let ours: Vec<_> = history
        .iter()
        .filter(|c| c.source.as_deref() == Some(src.name.as_str()))
        .collect();
    let mut report = SourceReport {
        source: src.name.clone(),
        table: target.clone(),
        mode: format!("{:?}", src.mode).to_lowercase(),
        version: None,
        files: Vec::new(),
        rows_loaded: 0,
        rows_rejected: 0,
        skipped_files: 0,
        empty_files: Vec::new(),
        loaded_concurrently: Vec::new(),
        rejected_table: None,
        seconds: 0.0,
    };
    let new_files: Vec<files::SourceFile> = if options.force {
        if src.mode == LoadMode::Append && !options.allow_duplicates {
            refuse_forced_duplicates(src, &target, &all_files, &ours)?;
        }
        all_files
    } else if src.mode == LoadMode::Overwrite {
        // Overwrite reloads the whole set when any file changed.
        let last = ours.last().map(|c| &c.source_files);
        let unchanged = last.is_some_and(|rec| {
            rec.len() == all_files.len()
                && all_files.iter().all(|f| rec.iter().any(|r| f.matches(r)))
        });
        if unchanged {
            report.skipped_files = all_files.len();
            Vec::new()
        } else {
            all_files
        }
    } else {
        let before = all_files.len();
        let fresh: Vec<_> = all_files
            .into_iter()
            .filter(|f| {
                !ours
                    .iter()
                    .any(|c| c.source_files.iter().any(|r| f.matches(r)))
            })
            .collect();
        report.skipped_files = before - fresh.len();
        // A merge source upserts a changed file's rows again, which is what
        // it is for; an append source would add them a second time.
        if src.mode == LoadMode::Append && !options.allow_duplicates {
            refuse_changed_files(src, &target, &fresh, &ours)?;
        }
        fresh
    };
    if new_files.is_empty() {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(Attempt::Done(report));
    }
    observer.source_started(
        &src.name,
        new_files.len(),
        new_files.iter().map(|f| f.size).sum(),
    );

    // Plan every file's columns first, so the table schema is settled before writing.
    let table_schema: Option<Schema> = match &table {
        Some(t) => Some(
            t.snapshot()
                .map_err(|e| Error::storage(t.table_url(), e))?
                .snapshot()
                .arrow_schema()
                .as_ref()
                .clone(),
        ),
        None => None,
    };
    let hints = readers::TypeHints {
        declared: &src.columns,
    };
    let mut plans = Vec::with_capacity(new_files.len());
    let mut readable = Vec::with_capacity(new_files.len());
    for f in new_files {
        match readers::plan_file(&src.name, src.format, &src.csv, &f, &hints).await? {
            Some(plan) => {
                plans.push(plan);
                readable.push(f);
            }
            // Nothing to read: skipped, named in the report, not recorded as loaded.
            None => report.empty_files.push(f.display.clone()),
        }
    }
    let new_files = readable;
    if new_files.is_empty() {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(Attempt::Done(report));
    }
    let allow_new = src.schema_evolution == crate::project::SchemaEvolution::AddColumns;
    let mut schema = match &table_schema {
        Some(s) if src.mode != LoadMode::Overwrite => s.clone(),
        _ => initial_schema(src, &plans),
    };
    let mut evolved = table_schema.is_none();
    for (f, plan) in new_files.iter().zip(&plans) {
        let fields: Vec<_> = plan
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let first_load = table_schema.is_none() || src.mode == LoadMode::Overwrite;
        if let Some(s) = convert::evolve(
            &target,
            &schema,
            &f.display,
            &fields,
            allow_new || first_load,
            src.format == crate::project::SourceFormat::Csv,
        )? {
            schema = s;
            evolved = true;
        }
    }
    if src.mode == LoadMode::Overwrite {
        if let Some(existing) = &table_schema {
            evolved = existing != &schema;
        }
    }
    for plan in &mut plans {
        plan.adopt_table_types(&schema);
    }
    let schema: SchemaRef = Arc::new(schema);

    let max_rejected = options.max_rejected.or(src.max_rejected);
    let mut sink = commit::TableSink::new(
        warehouse,
        &schema_name,
        &table_name,
        schema.clone(),
        table.as_ref(),
    )?;
    let mut rejects =
        commit::RejectSink::new(warehouse, &schema_name, &format!("{table_name}__rejected"))?;
    let mut merge_batches = Vec::new();
    let now_us = chrono::Utc::now().timestamp_micros();
    for (file, plan) in new_files.iter().zip(plans) {
        let (mut rx, task) = readers::spawn_reader(
            src.name.clone(),
            src.format,
            (src.csv.clone(), src.ndjson.clone()),
            file.clone(),
            plan,
        );
        let mut fr = FileReport {
            path: file.display.clone(),
            bytes: file.size,
            rows_loaded: 0,
            rows_rejected: 0,
        };
        let mut failure = None;
        while let Some(chunk) = rx.recv().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let mut rows = 0;
            if let Some(batch) = chunk.batch {
                rows = batch.num_rows() as u64;
                let batch = convert::conform(&batch, &schema).map_err(|e| match e {
                    Error::Schema { message, .. } => Error::Schema {
                        table: target.clone(),
                        message: format!("{}: {message}", file.display),
                    },
                    other => other,
                })?;
                if src.mode == LoadMode::Merge {
                    merge_batches.push(batch);
                } else if rows > 0 {
                    sink.write(&batch).await?;
                }
            }
            fr.rows_loaded += rows;
            if !chunk.rejected.is_empty() {
                fr.rows_rejected += chunk.rejected.len() as u64;
                let batch = quarantine::rejected_batch(
                    load_id,
                    &src.name,
                    &file.display,
                    &chunk.rejected,
                    now_us,
                )?;
                rejects.write(&batch).await?;
            }
            observer.progress(rows + chunk.rejected.len() as u64, chunk.bytes);
            let total_rejected = report.rows_rejected + fr.rows_rejected;
            if let Some(max) = max_rejected {
                if total_rejected > max {
                    failure = Some(Error::LoadAborted {
                        source_name: src.name.clone(),
                        message: format!(
                            "more than {max} rows rejected (max_rejected); the first are in `{}` of the failed load and are listed by --format json; raise --max-rejected or fix the input",
                            file.display
                        ),
                    });
                    break;
                }
            }
        }
        drop(rx);
        let _ = task.await;
        if let Some(e) = failure {
            sink.abort().await;
            rejects.abort().await;
            return Err(e);
        }
        rejects.end_file().await?;
        report.rows_loaded += fr.rows_loaded;
        report.rows_rejected += fr.rows_rejected;
        observer.file_finished(&src.name, &fr);
        report.files.push(fr);
    }

    let meta = commit::LoadMetadata {
        load_id: load_id.to_string(),
        source: src.name.clone(),
        files: new_files
            .iter()
            .zip(&report.files)
            .map(|(f, r)| {
                let mut id = f.identity();
                id["rows_loaded"] = r.rows_loaded.into();
                id["rows_rejected"] = r.rows_rejected.into();
                id
            })
            .collect(),
        rows: report.rows_loaded,
    };
    // `--force` reloads files on purpose: only a plain load checks them.
    let guard = Guard {
        source: &src.name,
        files: if options.force { &[] } else { &new_files },
    };
    // Quarantine first: if the process dies between the two commits, the next
    // load re-reads the files and rejects the same rows again; its quarantine
    // commit replaces these (see `RejectSink`), so they are never lost and stay
    // once.
    if report.rows_rejected > 0 {
        // A load that already lost the race for the target does not touch the
        // quarantine (the target commit below checks again, on its snapshot).
        let clashes =
            conflict::loaded_since(warehouse, &schema_name, &table_name, table.as_ref(), &guard)
                .await?;
        if !clashes.is_empty() {
            sink.abort().await;
            rejects.abort().await;
            return Ok(Attempt::Replan(clashes));
        }
        rejects.commit(&meta, &new_files).await?;
        report.rejected_table = Some(format!("{target}__rejected"));
    } else {
        rejects.abort().await;
    }
    let committed = match src.mode {
        LoadMode::Merge => {
            sink.abort().await;
            commit::merge(
                warehouse,
                &schema_name,
                &table_name,
                table,
                schema.clone(),
                merge_batches,
                &src.merge_keys,
                &meta,
                &guard,
            )
            .await?
        }
        mode => {
            sink.commit(&meta, mode == LoadMode::Overwrite, evolved, &guard)
                .await?
        }
    };
    match committed {
        Committed::Version(version) => {
            report.version = Some(version);
            report.seconds = started.elapsed().as_secs_f64();
            Ok(Attempt::Done(report))
        }
        Committed::Replan(clashes) => Ok(Attempt::Replan(clashes)),
    }
}

/// The schema of a new table: declared columns first (declared order), then the
/// files' other columns in the order they appear.
fn initial_schema(src: &SourceDecl, plans: &[readers::FilePlan]) -> Schema {
    use arrow::datatypes::Field;
    let declared = |name: &str| {
        src.columns
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.data_type.as_ref().map(|dt| (d, dt)))
    };
    // The first file's column order (as `CREATE TABLE AS read_csv(...)`
    // would give), with declared types; then declared columns it lacks.
    let mut fields: Vec<Field> = Vec::new();
    if let Some(first) = plans.first() {
        for f in first.schema.fields() {
            fields.push(match declared(f.name()) {
                Some((d, dt)) => Field::new(&d.name, dt.clone(), !d.not_null),
                None => f.as_ref().clone().with_nullable(true),
            });
        }
    }
    for d in &src.columns {
        if let Some(dt) = &d.data_type {
            if !fields.iter().any(|x| x.name() == &d.name) {
                fields.push(Field::new(&d.name, dt.clone(), !d.not_null));
            }
        }
    }
    Schema::new(fields)
}

/// A deterministic xorshift generator for randomised unit tests.
#[cfg(test)]
pub(crate) fn test_rng() -> impl FnMut() -> u64 {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
