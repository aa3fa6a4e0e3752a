//! `sluice history TABLE`: the commits of a table.

use super::args::HistoryArgs;
use super::stdio::stdout;
use super::{print_format, Context};
use sluice::warehouse::TableName;
use std::io::Write;

pub async fn run(ctx: &Context, args: HistoryArgs) -> anyhow::Result<()> {
    let name = TableName::parse(&args.table, &ctx.project.config.warehouse.default_schema)?;
    let records = sluice::warehouse::table_history(&ctx.warehouse, &name).await?;
    let batch = sluice::warehouse::history_batch(&records)?;
    let mut out = stdout();
    print_format::rows(&mut out, &[batch], args.format)?;
    out.flush()?;
    Ok(())
}
