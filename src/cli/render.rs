//! The text people read: the summaries commands print in `--format table`
//! (their `--format json` is the library's report serialised as it is).

use sluice::features::online::{MaterializeReport, OnlineState};
use sluice::features::{FeatureViewDef, ServiceSection};
use sluice::load::LoadReport;
use sluice::models::{Compiled, NodeResult, RunReport, Status};
use std::io::{Result, Write};

/// `sluice load` and `sluice seed`: a line per source, its rejected files,
/// empty files, files another load committed first, and where the rejected
/// rows are.
pub fn load_report(out: &mut impl Write, report: &LoadReport) -> Result<()> {
    writeln!(out, "load {}", report.load_id)?;
    // A long table name widens the column of every line.
    let width = report
        .sources
        .iter()
        .map(|s| s.table.chars().count())
        .max()
        .unwrap_or(0)
        .max(28);
    for s in &report.sources {
        let version = match s.version {
            Some(v) => format!("v{v}"),
            None => "unchanged".to_string(),
        };
        writeln!(
            out,
            "  {:<width$} {:<10} {:>3} files  {:>10} rows loaded  {:>6} rejected  {:>3} skipped  {:.2}s",
            s.table,
            version,
            s.files.len(),
            s.rows_loaded,
            s.rows_rejected,
            s.skipped_files,
            s.seconds
        )?;
        for f in s.files.iter().filter(|f| f.rows_rejected > 0) {
            writeln!(
                out,
                "    {}: {} loaded, {} rejected",
                f.path, f.rows_loaded, f.rows_rejected
            )?;
        }
        for f in &s.empty_files {
            writeln!(out, "    {f}: no records (empty file), skipped")?;
        }
        for c in &s.loaded_concurrently {
            writeln!(
                out,
                "    {}: skipped, a concurrent load ({}) committed it first as v{}",
                c.path, c.load_id, c.version
            )?;
        }
        if let Some(r) = &s.rejected_table {
            writeln!(
                out,
                "    rejected rows are in {r} (SELECT * FROM {r} WHERE load_id = '{}')",
                report.load_id
            )?;
        }
    }
    Ok(())
}

/// How a node's status reads in a run's lines (dbt's words: `OK` for a model
/// built, `SKIP` for one not run).
fn status_word(s: Status) -> &'static str {
    match s {
        Status::Success => "OK",
        Status::Pass => "PASS",
        Status::Warn => "WARN",
        Status::Fail => "FAIL",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

/// The first line of `sluice run`, `build` and `test`: the run's id and what
/// it will run.
pub fn run_header(command: &str, run_id: &str, nodes: &[(String, &str)]) -> String {
    let count = |kind: &str| nodes.iter().filter(|(_, k)| *k == kind).count();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "{command} {run_id}: {}, {}",
        plural(count("model"), "model"),
        plural(count("test"), "test")
    )
}

/// The columns of a run's node lines, sized before the run from every node it
/// will report: a long name widens the name column of every line.
pub struct NodeColumns {
    total: usize,
    id_width: usize,
}

impl NodeColumns {
    /// A name longer than this shifts its own line only.
    const MAX_ID_WIDTH: usize = 100;
    /// Wide enough for `incremental (full)` and `expression_is_true`.
    const KIND_WIDTH: usize = 18;

    pub fn new(nodes: &[(String, &str)]) -> Self {
        let longest = nodes
            .iter()
            .map(|(id, _)| id.chars().count())
            .max()
            .unwrap_or(0);
        NodeColumns {
            total: nodes.len(),
            id_width: longest.min(Self::MAX_ID_WIDTH),
        }
    }

    /// The line of a node that ended, the `done`-th of the run:
    /// `3 of 8 OK    features.user_features .... table   993 rows   0.40s`.
    pub fn line(&self, r: &NodeResult, done: usize) -> String {
        let total = self.total.max(done);
        let counter = format!("{done:>w$} of {total}", w = total.to_string().len());
        let dots = ".".repeat(self.id_width.saturating_sub(r.id.chars().count()) + 3);
        let head = format!(
            "{counter} {:<5} {} {dots} {:<kw$}",
            status_word(r.status),
            r.id,
            r.materialization,
            kw = Self::KIND_WIDTH
        );
        if r.status == Status::Skipped {
            let why = r.message.as_deref().unwrap_or("skipped");
            return format!("{head} {why}");
        }
        let what = match (r.rows, r.failures) {
            (Some(1), _) => "1 row".to_string(),
            (Some(n), _) => format!("{n} rows"),
            (None, Some(f)) if f > 0 => format!("{f} failing"),
            _ => String::new(),
        };
        let retried = match r.retries {
            0 => String::new(),
            1 => " (retried once: a worker failed)".to_string(),
            n => format!(" (retried {n} times: a worker failed)"),
        };
        format!("{head} {what:>14} {:>7.2}s{retried}", r.seconds)
    }
}

/// What the load of `sluice run` did, for its last line and its JSON.
#[derive(Debug, serde::Serialize)]
pub struct LoadTotals {
    pub load_id: String,
    pub seconds: f64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
}

impl LoadTotals {
    pub fn new(report: &LoadReport, seconds: f64) -> Self {
        LoadTotals {
            load_id: report.load_id.clone(),
            seconds,
            rows_loaded: report.sources.iter().map(|s| s.rows_loaded).sum(),
            rows_rejected: report.sources.iter().map(|s| s.rows_rejected).sum(),
        }
    }
}

/// dbt's counts of a run: PASS (models built, tests passed), WARN, ERROR
/// (errors and failed tests), SKIP, TOTAL.
pub fn run_counts(report: &RunReport) -> [(&'static str, usize); 5] {
    let count = |of: &[Status]| {
        report
            .results
            .iter()
            .filter(|r| of.contains(&r.status))
            .count()
    };
    [
        ("PASS", count(&[Status::Success, Status::Pass])),
        ("WARN", count(&[Status::Warn])),
        ("ERROR", count(&[Status::Error, Status::Fail])),
        ("SKIP", count(&[Status::Skipped])),
        ("TOTAL", report.results.len()),
    ]
}

/// The end of `sluice run`, `build` and `test` (their node lines are printed
/// as the nodes end): the message of every node that failed or warned, then
/// the counts and times: `Done. PASS=7 WARN=0 ERROR=1 SKIP=1 TOTAL=9 in 2.31s`,
/// with the load's time and rows for `sluice run`. `seconds`: the command's
/// time (compiling included, and the load).
pub fn run_report(
    out: &mut impl Write,
    report: &RunReport,
    load: Option<&LoadTotals>,
    seconds: f64,
) -> Result<()> {
    for r in report
        .results
        .iter()
        .filter(|r| matches!(r.status, Status::Error | Status::Fail | Status::Warn))
    {
        writeln!(
            out,
            "\n{} {} ({}):",
            r.status.as_str().to_uppercase(),
            r.id,
            r.file
        )?;
        if let Some(m) = &r.message {
            for line in m.lines() {
                writeln!(out, "  {line}")?;
            }
        }
    }
    let counts = run_counts(report)
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    match load {
        None => writeln!(out, "\nDone. {counts} in {seconds:.2}s"),
        Some(l) => writeln!(
            out,
            "\nDone. {counts} in {seconds:.2}s (load {:.2}s: {} rows loaded, {} rejected)",
            l.seconds, l.rows_loaded, l.rows_rejected,
        ),
    }
}

/// `sluice compile` for programs: the models in execution order.
pub fn compiled_json(compiled: &Compiled, order: &[usize], seconds: f64) -> serde_json::Value {
    let models: Vec<_> = order
        .iter()
        .map(|i| {
            let m = &compiled.models[*i];
            serde_json::json!({
                "model": m.id(),
                "name": m.name,
                "file": m.file.display,
                "materialized": m.config.materialized,
                "incremental_run": m.is_incremental,
                "depends_on": m.deps.iter().map(|d| compiled.models[*d].id()).collect::<Vec<_>>(),
                "reads": m.inputs.iter().map(|(s, t)| format!("{s}.{t}")).collect::<Vec<_>>(),
                "tags": m.config.tags,
                "sql_hash": m.sql_hash,
                "sql": m.sql,
            })
        })
        .collect();
    serde_json::json!({ "models": models, "seconds": seconds })
}

/// `sluice compile` for people: the execution order, then each model's SQL.
pub fn compiled(out: &mut impl Write, compiled: &Compiled, order: &[usize]) -> Result<()> {
    writeln!(out, "-- execution order ({} models):", order.len())?;
    for (n, i) in order.iter().enumerate() {
        let m = &compiled.models[*i];
        writeln!(
            out,
            "--   {:>4}. {} ({}) {}",
            n + 1,
            m.id(),
            m.config.materialized,
            m.file.display
        )?;
    }
    for i in order {
        let m = &compiled.models[*i];
        writeln!(
            out,
            "\n-- {} ({}) from {}",
            m.id(),
            m.config.materialized,
            m.file.display
        )?;
        writeln!(out, "{};", m.sql.trim_end())?;
    }
    Ok(())
}

/// `sluice materialize`: a line per view.
pub fn materialize_reports(out: &mut impl Write, reports: &[MaterializeReport]) -> Result<()> {
    writeln!(
        out,
        "{:<28} {:<12} {:>9} {:>10} {:>9} {:>10} {:>8}",
        "view", "mode", "version", "rows read", "written", "entities", "seconds"
    )?;
    for r in reports {
        writeln!(
            out,
            "{:<28} {:<12} {:>9} {:>10} {:>9} {:>10} {:>8.2}",
            r.view,
            r.mode,
            match r.from_version {
                Some(f) if r.mode == "incremental" => format!("{f}->{}", r.to_version),
                _ => r.to_version.to_string(),
            },
            r.rows_read,
            r.entities_written,
            r.entity_count,
            r.seconds
        )?;
        if let Some(reason) = &r.reason {
            writeln!(out, "  {}: full because {reason}", r.view)?;
        }
    }
    Ok(())
}

fn version(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// `sluice features list`: a line per view with its online state, then the
/// feature services.
pub fn feature_views(
    out: &mut impl Write,
    views: &[(FeatureViewDef, Option<OnlineState>)],
    services: &std::collections::BTreeMap<String, ServiceSection>,
) -> Result<()> {
    if views.is_empty() {
        return writeln!(
            out,
            "no feature views yet: give a model feature_view config and run it"
        );
    }
    writeln!(
        out,
        "{:<28} {:<24} {:<10} {:>8} {:>9}  online",
        "view", "entities", "ttl", "features", "versions"
    )?;
    for (v, state) in views {
        let ttl = v.ttl_text().unwrap_or_else(|| "-".into());
        let online = match state {
            _ if v.stream.is_some() => "stream view: kept fresh by `sluice stream`".to_string(),
            Some(st) => format!(
                "{} entities, table v{}, {}",
                st.entity_count,
                version(st.table_version),
                st.materialized_at
            ),
            None => format!("not materialized: run `sluice materialize {}`", v.name),
        };
        writeln!(
            out,
            "{:<28} {:<24} {:<10} {:>8} {:>9}  {online}",
            v.id(),
            v.entities.join(","),
            ttl,
            v.features.len(),
            v.versions.len()
        )?;
    }
    if !services.is_empty() {
        writeln!(out, "\nfeature services (sluice.toml):")?;
        for (name, s) in services {
            writeln!(out, "  {name:<26} {}", s.features.join(", "))?;
        }
    }
    Ok(())
}

/// `sluice features show SERVICE`.
pub fn feature_service(out: &mut impl Write, name: &str, service: &ServiceSection) -> Result<()> {
    writeln!(out, "feature service {name} (sluice.toml)")?;
    if let Some(d) = &service.description {
        writeln!(out, "  {d}")?;
    }
    writeln!(out, "  full names: {}", service.full_names)?;
    writeln!(out, "  features:")?;
    for f in &service.features {
        writeln!(out, "    {f}")?;
    }
    writeln!(
        out,
        "  online: SELECT * FROM online.{name} WHERE <entity keys> ...; training: historical_features(..., 'service={name}')"
    )
}

/// `sluice features show VIEW`.
pub fn feature_view(
    out: &mut impl Write,
    v: &FeatureViewDef,
    online: Option<&OnlineState>,
) -> Result<()> {
    writeln!(out, "feature view {} ({})", v.name, v.id())?;
    if let Some(d) = &v.description {
        writeln!(out, "  {d}")?;
    }
    writeln!(out, "  entities:        {}", v.entities.join(", "))?;
    writeln!(out, "  event timestamp: {}", v.event_timestamp)?;
    if let Some(c) = &v.created_timestamp {
        writeln!(
            out,
            "  created:         {c} (newest wins among equal event times)"
        )?;
    }
    match v.ttl_text() {
        Some(t) => writeln!(
            out,
            "  ttl:             {t} (a value exactly {t} old is still used)"
        )?,
        None => writeln!(out, "  ttl:             none (values never expire)")?,
    }
    if let Some(o) = &v.owner {
        writeln!(out, "  owner:           {o}")?;
    }
    if !v.tags.is_empty() {
        writeln!(out, "  tags:            {}", v.tags.join(", "))?;
    }
    writeln!(out, "  features:")?;
    for f in &v.features {
        writeln!(
            out,
            "    {:<24} {:<28} {}",
            f.name,
            f.data_type,
            f.description.as_deref().unwrap_or("")
        )?;
    }
    match online {
        _ if v.stream.is_some() => writeln!(
            out,
            "  online:          stream view over {}: kept fresh by `sluice stream` (query online.{})",
            v.stream.as_ref().map_or("-", |s| s.source.as_str()),
            v.name
        )?,
        Some(st) => writeln!(
            out,
            "  online:          {} entities from table v{}, {} ({}; query online.{})",
            st.entity_count,
            version(st.table_version),
            st.materialized_at,
            st.last.mode,
            v.name
        )?,
        None => writeln!(
            out,
            "  online:          not materialized: run `sluice materialize {}`",
            v.name
        )?,
    }
    writeln!(out, "  versions (oldest first):")?;
    for ver in &v.versions {
        let hash: String = ver.sql_hash.chars().take(12).collect();
        writeln!(
            out,
            "    {}  table v{}  sql {hash}  run {}",
            ver.at,
            version(ver.table_version),
            ver.run_id
        )?;
    }
    Ok(())
}
