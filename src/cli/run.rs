//! `sluice run` (load every source, then build the models with their tests)
//! and `sluice run models` (only the models); [`models`] also runs `build`
//! and `test`.

use super::args::{ModelArgs, RunArgs, SummaryFormat};
use super::progress::{LoadBars, RunBars};
use super::stdio::stdout;
use super::{print_format, render, Context, Failed};
use sluice::models::{CompileOptions, Steps};
use std::io::Write;
use std::sync::Arc;

pub async fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<()> {
    let with_load = args.step.is_none();
    ctx.project.require_config(if with_load {
        "sluice run"
    } else {
        "sluice run models"
    })?;
    if with_load && !ctx.project.sources.is_empty() {
        let report = super::load::load(ctx, &[], &Default::default()).await?;
        // The JSON document is the run's report alone.
        if args.models.format == SummaryFormat::Table {
            super::load::print(&report, SummaryFormat::Table)?;
        }
    }
    if with_load {
        models(ctx, &args.models, Steps::Build, "run").await
    } else {
        models(ctx, &args.models, Steps::Models, "run models").await
    }
}

/// Compiles the project, runs `steps` of the selected models, prints the
/// report; [`Failed`] when a node did not succeed.
pub async fn models(
    ctx: &Context,
    args: &ModelArgs,
    steps: Steps,
    command: &str,
) -> anyhow::Result<()> {
    let vars = args.vars()?;
    let options = CompileOptions {
        full_refresh: args.full_refresh,
        vars: vars.clone(),
        target: None,
    };
    let engine = ctx.engine().await?;
    let compiled = Arc::new(sluice::models::compile(&ctx.project, &engine, &options).await?);
    if steps == Steps::Build {
        let bars = LoadBars::new(ctx.progress);
        let seeded = sluice::app::seed_inputs(
            &ctx.project,
            &ctx.warehouse,
            &compiled,
            &args.selection(),
            &bars,
        )
        .await?;
        drop(bars);
        if let Some(report) = seeded.filter(|r| r.sources.iter().any(|s| s.version.is_some())) {
            if args.format == SummaryFormat::Table {
                super::load::print(&report, SummaryFormat::Table)?;
            }
        }
    }
    let report = {
        let bars = RunBars::new(ctx.progress);
        sluice::models::execute(
            &ctx.project,
            &engine,
            compiled,
            &args.selection(),
            steps,
            args.threads(),
            &vars,
            command,
            &bars,
        )
        .await?
    };
    let mut out = stdout();
    match args.format {
        SummaryFormat::Json => print_format::json(&mut out, &report)?,
        SummaryFormat::Table => render::run_report(&mut out, &report)?,
    }
    out.flush()?;
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
