//! `sluice load [SOURCE...]`: declared sources into Delta tables.

use super::args::{LoadArgs, SummaryFormat};
use super::progress::LoadBars;
use super::stdio::stdout;
use super::{print_format, render, Context};
use sluice::load::{LoadOptions, LoadReport};
use std::io::Write;

pub async fn run(ctx: &Context, args: LoadArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice load")?;
    let options = LoadOptions {
        force: args.force,
        allow_duplicates: args.allow_duplicates,
        max_rejected: args.max_rejected,
    };
    let command = sluice::models::openlineage::CommandRun::start(&ctx.project, "load").await?;
    let result = load(ctx, &args.sources, &options, command.as_ref()).await;
    if let Some(c) = &command {
        c.end(result.as_ref().err().map(|e| e.to_string()).as_deref())
            .await;
    }
    print(&result?, args.format)
}

/// Loads `sources` (all when empty) with progress bars.
pub async fn load(
    ctx: &Context,
    sources: &[String],
    options: &LoadOptions,
    lineage: Option<&sluice::models::openlineage::CommandRun>,
) -> anyhow::Result<LoadReport> {
    let bars = LoadBars::new(ctx.progress);
    let started = chrono::Utc::now();
    let result = sluice::load::load(&ctx.project, &ctx.warehouse, sources, options, &bars).await;
    let shown = result.as_ref().map_err(|e| e.to_string());
    sluice::app::load_events(
        &ctx.project,
        &ctx.warehouse,
        shown.as_ref().copied().map_err(String::as_str),
        started,
        lineage,
    );
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            // A failed load is history too: one `error` row per source it
            // was loading (unknown source names record nothing; nor does a
            // warehouse that cannot be reached).
            let unreachable = matches!(
                e,
                sluice::Error::Storage { .. }
                    | sluice::Error::Warehouse { .. }
                    | sluice::Error::Unavailable { .. }
            );
            if unreachable {
                return Err(e.into());
            }
            if let Ok(selected) = ctx.project.select_sources(sources) {
                let targets: Vec<(String, String)> = selected
                    .iter()
                    .map(|s| (s.name.clone(), s.target_name()))
                    .collect();
                sluice::app::record_load_failure(&ctx.warehouse, &targets, &e.to_string(), started)
                    .await;
            }
            return Err(e.into());
        }
    };
    sluice::app::record_load(&ctx.warehouse, &report, started).await;
    Ok(report)
}

/// A load's (or seed's) report in `format`.
pub fn print(report: &LoadReport, format: SummaryFormat) -> anyhow::Result<()> {
    let mut out = stdout();
    match format {
        SummaryFormat::Json => print_format::json(&mut out, report)?,
        SummaryFormat::Table => render::load_report(&mut out, report)?,
    }
    out.flush()?;
    Ok(())
}
