//! `sluice test`: the data tests of the selected models; `--history`: what
//! earlier tests and loads found.

use super::args::{SummaryFormat, TestArgs};
use super::stdio::stdout;
use super::{print_format, Context};
use sluice::models::records::{read_runs, trends, Trend};
use sluice::models::Steps;
use std::io::Write;

pub async fn run(ctx: &Context, args: TestArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice test")?;
    if args.history {
        if !args.pick.select.is_empty() || !args.pick.exclude.is_empty() {
            return Err(sluice::Error::Usage(
                "--history shows every recorded test and load; it takes no --select / --exclude (filter its --format json output instead)".into(),
            )
            .into());
        }
        return history(ctx, &args).await;
    }
    super::run::models(
        ctx,
        &args.into(),
        Steps::Tests,
        "test",
        None,
        std::time::Instant::now(),
    )
    .await
}

/// One character per result, oldest first: `.` pass, `F` fail, `W` warn,
/// `E` error, `S` skipped (loads: `.` nothing quarantined, `Q` rows
/// quarantined).
fn trend_line(t: &Trend, last: usize) -> String {
    let skip = t.history.len().saturating_sub(last);
    t.history
        .iter()
        .skip(skip)
        .map(
            |(_, status, failures)| match (t.kind.as_str(), status.as_str()) {
                ("load", "success") if failures.unwrap_or(0) > 0 => 'Q',
                (_, "pass" | "success") => '.',
                (_, "fail") => 'F',
                (_, "warn") => 'W',
                (_, "skipped") => 'S',
                _ => 'E',
            },
        )
        .collect()
}

async fn history(ctx: &Context, args: &TestArgs) -> anyhow::Result<()> {
    let engine = ctx.engine().await?;
    let records = read_runs(&engine).await?;
    let trends = trends(&records, &["test", "load"]);
    let mut out = stdout();
    if args.format == SummaryFormat::Json {
        print_format::json(&mut out, &serde_json::to_value(&trends)?)?;
        out.flush()?;
        return Ok(());
    }
    if trends.is_empty() {
        writeln!(
            out,
            "no test or load recorded yet in _sluice.runs (run `sluice test`, `sluice build` or `sluice load`)"
        )?;
        out.flush()?;
        return Ok(());
    }
    let width = trends
        .iter()
        .map(|t| t.node.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    writeln!(
        out,
        "{:<5} {:<width$} {:>5} {:>5} {:>5}  {:<8} {:>9}  {:<20}  trend (oldest → newest)",
        "kind", "name", "runs", "ok", "bad", "last", "failures", "last run"
    )?;
    for t in &trends {
        let ok = t.by_status.get("pass").copied().unwrap_or(0)
            + t.by_status.get("success").copied().unwrap_or(0);
        // Skipped runs (something upstream failed) are neither.
        let bad = ["fail", "error", "warn"]
            .iter()
            .map(|s| t.by_status.get(*s).copied().unwrap_or(0))
            .sum::<usize>();
        let failures = t
            .last_failures
            .map(|f| f.to_string())
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<5} {:<width$} {:>5} {:>5} {:>5}  {:<8} {:>9}  {:<20}  {}",
            t.kind,
            t.node,
            t.runs,
            ok,
            bad,
            t.last_status,
            failures,
            t.last_run.as_deref().unwrap_or("-"),
            trend_line(t, 40)
        )?;
    }
    writeln!(
        out,
        "trend: . pass, F fail, W warn, E error, S skipped; loads: . clean, Q rows quarantined (failures = rows quarantined)"
    )?;
    out.flush()?;
    Ok(())
}
