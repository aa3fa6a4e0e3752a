//! The text people read: the summaries commands print in `--format table`
//! (their `--format json` is the library's report serialised as it is).

use sluice::features::online::{MaterializeReport, OnlineState};
use sluice::features::{FeatureViewDef, ServiceSection};
use sluice::load::LoadReport;
use sluice::models::{Compiled, RunReport, Status};
use std::io::{Result, Write};

/// `sluice load` and `sluice seed`: a line per source, its rejected files,
/// empty files, files another load committed first, and where the rejected
/// rows are.
pub fn load_report(out: &mut impl Write, report: &LoadReport) -> Result<()> {
    writeln!(out, "load {}", report.load_id)?;
    for s in &report.sources {
        let version = match s.version {
            Some(v) => format!("v{v}"),
            None => "unchanged".to_string(),
        };
        writeln!(
            out,
            "  {:<28} {:<10} {:>3} files  {:>10} rows loaded  {:>6} rejected  {:>3} skipped  {:.2}s",
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

/// `sluice run`, `build` and `test`: a line per node, the counts, then the
/// message of every node that failed or warned.
pub fn run_report(out: &mut impl Write, report: &RunReport) -> Result<()> {
    writeln!(out, "{} {}", report.command, report.run_id)?;
    for r in &report.results {
        let rows = match (r.rows, r.failures) {
            (Some(n), _) => format!("{n} rows"),
            (None, Some(f)) if f > 0 => format!("{f} failing"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:<7} {:<40} {:<20} {:>14} {:>8.2}s",
            r.status.as_str().to_uppercase(),
            r.id,
            r.materialization,
            rows,
            r.seconds
        )?;
    }
    let count = |s: Status| report.results.iter().filter(|r| r.status == s).count();
    writeln!(
        out,
        "done in {:.2}s: {} built, {} passed, {} warned, {} failed, {} errors, {} skipped",
        report.seconds,
        count(Status::Success),
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Error),
        count(Status::Skipped)
    )?;
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
    Ok(())
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
