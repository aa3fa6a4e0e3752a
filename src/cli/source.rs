//! `sluice source freshness`: how recently each dbt source table was loaded.

use super::args::{FreshnessArgs, SourceCommand, SummaryFormat};
use super::stdio::stdout;
use super::{print_format, Context, Failed};
use sluice::models::freshness::{FreshnessReport, FreshnessStatus};
use std::io::Write;

pub async fn run(ctx: &Context, command: SourceCommand) -> anyhow::Result<()> {
    match command {
        SourceCommand::Freshness(args) => freshness(ctx, args).await,
    }
}

async fn freshness(ctx: &Context, args: FreshnessArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice source freshness")?;
    let engine = ctx.engine().await?;
    let report =
        sluice::models::freshness::source_freshness(&ctx.project, &engine, &args.select).await?;
    let mut out = stdout();
    match args.format {
        SummaryFormat::Json => print_format::json(&mut out, &serde_json::to_value(&report)?)?,
        SummaryFormat::Table => print_table(&mut out, &report)?,
    }
    out.flush()?;
    if report.failed() {
        let n = report
            .results
            .iter()
            .filter(|r| !matches!(r.status, FreshnessStatus::Pass | FreshnessStatus::Warn))
            .count();
        return Err(Failed(format!(
            "{n} of {} source tables are not fresh enough (see above; details in target/sources.json)",
            report.results.len()
        ))
        .into());
    }
    Ok(())
}

/// A line per table: `1 of 2 PASS freshness of shop.orders ... 2h 5m ago`.
fn print_table(out: &mut impl Write, report: &FreshnessReport) -> std::io::Result<()> {
    let total = report.results.len();
    if total == 0 {
        writeln!(
            out,
            "no source table has a freshness policy (freshness: and loaded_at_field: under sources:)"
        )?;
    }
    let width = report
        .results
        .iter()
        .map(|r| r.source.len() + r.table.len() + 1)
        .max()
        .unwrap_or(0);
    for (i, r) in report.results.iter().enumerate() {
        let word = match r.status {
            FreshnessStatus::Pass => "PASS",
            FreshnessStatus::Warn => "WARN",
            FreshnessStatus::Error => "ERROR STALE",
            FreshnessStatus::RuntimeError => "ERROR",
        };
        let name = format!("{}.{}", r.source, r.table);
        let age = match r.max_loaded_at_time_ago_in_s {
            Some(s) => format!("last loaded {} ago", ago(s)),
            None => r.message.clone().unwrap_or_default(),
        };
        writeln!(
            out,
            "{:>w$} of {total} {word:<11} freshness of {name:<width$}  {age}",
            i + 1,
            w = total.to_string().len()
        )?;
    }
    let count = |s: FreshnessStatus| report.results.iter().filter(|r| r.status == s).count();
    writeln!(
        out,
        "Done. PASS={} WARN={} ERROR={} TOTAL={total} in {:.2}s",
        count(FreshnessStatus::Pass),
        count(FreshnessStatus::Warn),
        count(FreshnessStatus::Error) + count(FreshnessStatus::RuntimeError),
        report.elapsed_time
    )
}

/// `2d 3h`, `5h 2m`, `40m`, `12s`.
fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}
