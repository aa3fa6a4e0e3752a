//! `sluice optimize TABLE`: compact a table's small data files.

use super::args::{OptimizeArgs, SummaryFormat};
use super::stdio::stdout;
use super::{print_format, Context};
use sluice::warehouse::{OptimizeOptions, OptimizeReport, TableName};
use std::io::Write;

pub async fn run(ctx: &Context, args: OptimizeArgs) -> anyhow::Result<()> {
    let name = TableName::parse(&args.table, &ctx.project.config.warehouse.default_schema)?;
    let opts = OptimizeOptions {
        checkpoint: args.checkpoint,
        min_small_files: args.min_small_files,
        ..Default::default()
    };
    let report =
        sluice::warehouse::optimize(&ctx.warehouse, &name.schema, &name.table, &opts).await?;
    let mut out = stdout();
    match args.format {
        SummaryFormat::Json => print_format::json(&mut out, &report)?,
        SummaryFormat::Table => writeln!(out, "{}", line(&report, opts.min_small_files))?,
    }
    out.flush()?;
    Ok(())
}

/// The report on one line.
fn line(r: &OptimizeReport, min_small_files: usize) -> String {
    let mut text = match r.version {
        Some(v) => format!(
            "{}: compacted {} files ({}) into {} ({}) as version {v}; {} now",
            r.table,
            r.files_removed,
            human_bytes(r.bytes_removed),
            r.files_added,
            human_bytes(r.bytes_added),
            files(r.files_after),
        ),
        None => format!(
            "{}: nothing to compact at version {} ({} of {} files are small, compacting needs {})",
            r.table,
            r.read_version,
            r.small_files,
            r.files_before,
            min_small_files.max(2),
        ),
    };
    if let Some(c) = r.checkpoint {
        text.push_str(&format!("; checkpoint at version {c}"));
    }
    text.push_str(&format!(" ({:.2}s)", r.seconds));
    text
}

/// `1 file`, `3 files`.
fn files(n: u64) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

/// `512 bytes`, `1.5 KiB`, `12.0 MiB`.
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(128 << 20), "128.0 MiB");
    }
}
