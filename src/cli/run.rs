//! `sluice run` (load every source, then build the models with their tests)
//! and `sluice run models` (only the models); [`models`] also runs `build`
//! and `test`.

use super::args::{ModelArgs, RunArgs, SummaryFormat};
use super::progress::{LoadBars, NodeLines, RunBars};
use super::render::LoadTotals;
use super::stdio::stdout;
use super::{print_format, render, Context, Failed};
use sluice::load::LoadReport;
use sluice::models::{CompileOptions, Steps};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

pub async fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let with_load = args.step.is_none();
    ctx.project.require_config(if with_load {
        "sluice run"
    } else {
        "sluice run models"
    })?;
    // One OpenLineage parent run for the loads and the models.
    let command = if with_load {
        sluice::models::openlineage::CommandRun::start(&ctx.project, "run").await?
    } else {
        None
    };
    let result = run_steps(ctx, args, started, with_load, command.as_ref()).await;
    if let Some(c) = &command {
        c.end(result.as_ref().err().map(|e| e.to_string()).as_deref())
            .await;
    }
    result
}

async fn run_steps(
    ctx: &Context,
    args: RunArgs,
    started: Instant,
    with_load: bool,
    command: Option<&sluice::models::openlineage::CommandRun>,
) -> anyhow::Result<()> {
    let mut load = None;
    if with_load && !ctx.project.sources.is_empty() {
        let report = super::load::load(ctx, &[], &Default::default(), command).await?;
        // In JSON, the load is part of the run's document.
        if args.models.format == SummaryFormat::Table {
            super::load::print(&report, SummaryFormat::Table)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        load = Some((report, seconds));
    }
    if with_load {
        models_under(
            ctx,
            &args.models,
            Steps::Build,
            "run",
            load,
            started,
            command,
        )
        .await
    } else {
        models(
            ctx,
            &args.models,
            Steps::Models,
            "run models",
            None,
            started,
        )
        .await
    }
}

/// Compiles the project, runs `steps` of the selected models, printing a line
/// per node as it ends, then the report; [`Failed`] when a node did not
/// succeed. `load`: what `sluice run` loaded first, and in how many seconds;
/// `started`: when the command started.
pub async fn models(
    ctx: &Context,
    args: &ModelArgs,
    steps: Steps,
    command: &str,
    load: Option<(LoadReport, f64)>,
    started: Instant,
) -> anyhow::Result<()> {
    // The command's OpenLineage parent run ([lineage]), ended with the
    // command's outcome (a compile error included).
    let parent = sluice::models::openlineage::CommandRun::start(&ctx.project, command).await?;
    let result = models_under(ctx, args, steps, command, load, started, parent.as_ref()).await;
    if let Some(c) = &parent {
        c.end(result.as_ref().err().map(|e| e.to_string()).as_deref())
            .await;
    }
    result
}

/// [`models`] under the OpenLineage parent run `lineage` (when configured).
async fn models_under(
    ctx: &Context,
    args: &ModelArgs,
    steps: Steps,
    command: &str,
    load: Option<(LoadReport, f64)>,
    started: Instant,
    lineage: Option<&sluice::models::openlineage::CommandRun>,
) -> anyhow::Result<()> {
    let vars = args.vars()?;
    let options = CompileOptions {
        full_refresh: args.full_refresh,
        vars: vars.clone(),
        target: None,
    };
    let engine = ctx.engine().await?;
    let compiled = Arc::new(sluice::models::compile(&ctx.project, &engine, &options).await?);
    // The seeds `build` loads are nodes of its run results, as in dbt.
    let mut seed_nodes = Vec::new();
    if steps == Steps::Build {
        let bars = LoadBars::new(ctx.progress);
        let seeded = sluice::app::seed_inputs(
            &ctx.project,
            &ctx.warehouse,
            &compiled,
            &args.selection(),
            command == "build",
            &vars,
            &bars,
        )
        .await?;
        drop(bars);
        if let Some(report) = seeded {
            if args.format == SummaryFormat::Table
                && report.sources.iter().any(|s| s.version.is_some())
            {
                super::load::print(&report, SummaryFormat::Table)?;
            }
            seed_nodes.extend(seed_results(&report));
        }
    }
    // `build` runs the snapshots: those that read no model now, the others
    // after the models.
    let snapshot_vars = sluice::models::snapshot::vars(&ctx.project, &vars);
    let snapshots = if command == "build" {
        sluice::models::snapshot::for_build(
            &ctx.project,
            &compiled,
            &ctx.warehouse,
            &args.selection(),
            &snapshot_vars,
        )
        .await?
    } else {
        Default::default()
    };
    if !snapshots.seeds.is_empty() {
        // The seeds the snapshots read, when missing or changed.
        let bars = LoadBars::new(ctx.progress);
        let report = sluice::load::seeds::seed_with(
            &ctx.project,
            &ctx.warehouse,
            sluice::models::compile::named_seeds(&ctx.project, &vars)?,
            &snapshots.seeds,
            false,
            &bars,
        )
        .await?;
        drop(bars);
        if args.format == SummaryFormat::Table && report.sources.iter().any(|s| s.version.is_some())
        {
            super::load::print(&report, SummaryFormat::Table)?;
        }
        seed_nodes.extend(seed_results(&report));
    }
    let run_id = sluice::models::new_run_id();
    let mut snapshot_outcomes = sluice::models::snapshot::run_snapshots(
        &engine,
        &compiled,
        &snapshots.before,
        &snapshot_vars,
        &run_id,
    )
    .await;
    if !snapshot_outcomes.is_empty() {
        print_snapshots(&snapshot_outcomes, args.format)?;
        if let Err(e) = super::snapshot::failed(&snapshot_outcomes) {
            let report = sluice::models::snapshot::report(
                &run_id,
                &snapshot_outcomes,
                started.elapsed().as_secs_f64(),
            );
            sluice::models::records::write_run_results(
                &ctx.project.root,
                &ctx.project.settings.name,
                &report,
            )?;
            sluice::models::records::append_runs(&ctx.warehouse, &report).await?;
            return Err(e);
        }
    }
    // The node lines are the report people read; beside JSON they go to
    // stderr, unless progress is turned off.
    let lines = match args.format {
        SummaryFormat::Table => NodeLines::Stdout,
        SummaryFormat::Json if ctx.progress_lines => NodeLines::Stderr,
        SummaryFormat::Json => NodeLines::Off,
    };
    // OpenLineage events ([lineage] in sluice.toml), traced with an engine
    // of their own.
    let events = match lineage {
        Some(parent) => {
            let scratch = ctx.engine().await?;
            Some(
                sluice::models::openlineage::RunLineage::start(
                    &ctx.project,
                    &scratch,
                    &compiled,
                    parent,
                )
                .await?,
            )
        }
        None => None,
    };
    let executed = {
        let bars = RunBars::new(ctx.progress, lines, command);
        let observer = events.as_ref().map(|e| e.observer(&bars));
        let observer: &dyn sluice::models::RunObserver = match &observer {
            Some(o) => o,
            None => &bars,
        };
        sluice::models::execute(
            &ctx.project,
            &engine,
            compiled.clone(),
            &args.selection(),
            steps,
            args.threads(),
            &vars,
            command,
            observer,
        )
        .await
    };
    if let Some(e) = &events {
        e.finish();
    }
    let mut report = executed?;
    if report.success() && !snapshots.after.is_empty() {
        let after = sluice::models::snapshot::run_snapshots(
            &engine,
            &compiled,
            &snapshots.after,
            &snapshot_vars,
            &run_id,
        )
        .await;
        print_snapshots(&after, args.format)?;
        snapshot_outcomes.extend(after);
    }
    if !snapshot_outcomes.is_empty() || !seed_nodes.is_empty() {
        // The seeds and snapshots join the run's records: seeds first, then
        // the snapshots that run before the models.
        let nodes: Vec<_> = snapshot_outcomes.iter().map(|o| o.node_result()).collect();
        let before = snapshots.before.len().min(nodes.len());
        let mut results = std::mem::take(&mut seed_nodes);
        results.extend_from_slice(&nodes[..before]);
        results.append(&mut report.results);
        results.extend_from_slice(&nodes[before..]);
        report.results = results;
        sluice::models::records::write_run_results(
            &ctx.project.root,
            &ctx.project.settings.name,
            &report,
        )?;
    }
    if !snapshot_outcomes.is_empty() {
        let mut only = sluice::models::snapshot::report(&run_id, &snapshot_outcomes, 0.0);
        only.run_id = report.run_id.clone();
        only.command = command.to_string();
        sluice::models::records::append_runs(&ctx.warehouse, &only).await?;
    }
    let totals = load.as_ref().map(|(r, s)| LoadTotals::new(r, *s));
    let seconds = started.elapsed().as_secs_f64();
    let mut out = stdout();
    match args.format {
        SummaryFormat::Json => {
            print_format::json(&mut out, &json_report(&report, load.as_ref(), seconds)?)?
        }
        SummaryFormat::Table => render::run_report(&mut out, &report, totals.as_ref(), seconds)?,
    }
    out.flush()?;
    super::snapshot::failed(&snapshot_outcomes)?;
    if !report.success() {
        let failed = report
            .results
            .iter()
            .filter(|r| r.status.is_failure())
            .count();
        return Err(Failed(format!(
            "{failed} of {} nodes did not succeed (see above; details in target/run_results.json and _sluice.runs)",
            report.results.len()
        ))
        .into());
    }
    Ok(())
}

/// The seeds a `build` loaded (or found unchanged) as nodes of its report.
fn seed_results(report: &LoadReport) -> Vec<sluice::models::NodeResult> {
    use sluice::models::run::Status;
    let now = chrono::Utc::now().to_rfc3339();
    report
        .sources
        .iter()
        .map(|s| {
            let (status, message) = match (s.rows_rejected, s.version) {
                (0, Some(_)) => (Status::Success, None),
                (0, None) => (
                    Status::Success,
                    Some("unchanged since it was loaded".to_string()),
                ),
                (n, _) => (
                    Status::Warn,
                    Some(format!(
                        "{n} rows rejected into {}",
                        s.rejected_table
                            .as_deref()
                            .unwrap_or("the quarantine table")
                    )),
                ),
            };
            sluice::models::NodeResult {
                id: s.table.clone(),
                kind: "seed",
                materialization: "seed".into(),
                status,
                rows: Some(s.rows_loaded),
                version: s.version,
                failures: None,
                started_at: now.clone(),
                seconds: s.seconds,
                message,
                inputs: Vec::new(),
                sql_hash: None,
                retries: 0,
                file: s.source.clone(),
            }
        })
        .collect()
}

/// The run's JSON document: the library's report, dbt's counts (`totals`),
/// the command's `total_seconds`, and for `sluice run` what the load did
/// (`load`: id, seconds, rows loaded and rejected, and each source).
fn json_report(
    report: &sluice::models::RunReport,
    load: Option<&(LoadReport, f64)>,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let mut doc = serde_json::to_value(report)?;
    if let serde_json::Value::Object(m) = &mut doc {
        let totals: serde_json::Map<String, serde_json::Value> = render::run_counts(report)
            .iter()
            .map(|(k, n)| (k.to_ascii_lowercase(), (*n).into()))
            .collect();
        m.insert("totals".into(), totals.into());
        m.insert("total_seconds".into(), seconds.into());
        if let Some((r, s)) = load {
            let mut l = serde_json::to_value(LoadTotals::new(r, *s))?;
            if let serde_json::Value::Object(lm) = &mut l {
                lm.insert("sources".into(), serde_json::to_value(&r.sources)?);
            }
            m.insert("load".into(), l);
        }
    }
    Ok(doc)
}

/// Snapshot lines of `build`: on stdout beside the table report, on stderr
/// beside JSON (stdout holds one document).
fn print_snapshots(
    outcomes: &[sluice::models::snapshot::SnapshotOutcome],
    format: SummaryFormat,
) -> anyhow::Result<()> {
    match format {
        SummaryFormat::Table => super::snapshot::print(outcomes, SummaryFormat::Table),
        SummaryFormat::Json => {
            for o in outcomes {
                let line = match &o.result {
                    Ok(r) => format!(
                        "snapshot {}  {}  {} inserted, {} closed",
                        o.id, r.action, r.inserted, r.closed
                    ),
                    Err(e) => format!("snapshot {}  ERROR  {e}", o.id),
                };
                super::stdio::note(line);
            }
            Ok(())
        }
    }
}
