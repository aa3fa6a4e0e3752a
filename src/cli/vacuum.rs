//! `sluice vacuum TABLE --retain 7d`: delete the data files no recent
//! version reads.

use super::args::{SummaryFormat, VacuumArgs};
use super::optimize::human_bytes;
use super::stdio::stdout;
use super::{print_format, Context};
use sluice::warehouse::{human_duration, TableName, VacuumOptions, VacuumReport};
use std::io::Write;
use std::time::Duration;

pub async fn run(ctx: &Context, args: VacuumArgs) -> anyhow::Result<()> {
    let name = TableName::parse(&args.table, &ctx.project.config.warehouse.default_schema)?;
    let opts = VacuumOptions {
        retain: Duration::from_secs(args.retain),
        dry_run: args.dry_run,
        allow_short_retention: args.allow_short_retention,
    };
    let report =
        sluice::warehouse::vacuum(&ctx.warehouse, &name.schema, &name.table, &opts).await?;
    let mut out = stdout();
    match args.format {
        SummaryFormat::Json => print_format::json(&mut out, &report)?,
        SummaryFormat::Table => write_text(&mut out, &report)?,
    }
    out.flush()?;
    Ok(())
}

/// One line for the table; in a dry run, a line per file after it.
fn write_text(out: &mut impl Write, r: &VacuumReport) -> std::io::Result<()> {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let retain = human_duration(Duration::from_secs(r.retain_seconds));
    let version = match r.version {
        Some(v) => format!(", version {v}"),
        None => String::new(),
    };
    writeln!(
        out,
        "{}: {verb} {} files ({}) removed from the table before {} (retention {retain}){version} ({:.2}s)",
        r.table,
        r.files_deleted,
        human_bytes(r.bytes_deleted),
        r.cutoff,
        r.seconds
    )?;
    if r.dry_run {
        for f in &r.files {
            let size = f
                .size
                .map(human_bytes)
                .unwrap_or_else(|| "size unknown".into());
            writeln!(out, "  {} ({size})", f.path)?;
        }
    }
    Ok(())
}
