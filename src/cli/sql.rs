//! `sluice sql "QUERY"`: run statements, print the result.

use super::args::{RowsFormat, SqlArgs};
use super::stdio::stdout;
use super::{print_format, Context};
use std::io::Write;

pub async fn run(ctx: &Context, args: SqlArgs) -> anyhow::Result<()> {
    let engine = ctx.engine().await?;
    let mut out = stdout();
    let statements = sluice::sql::split_statements(&args.query);
    let n = statements.len();
    for (i, statement) in statements.into_iter().enumerate() {
        let batches = engine.query(&statement).await?;
        // Programs get only the last statement's result: one document.
        if args.format == RowsFormat::Table || i + 1 == n {
            print_format::rows(&mut out, &batches, args.format)?;
        }
    }
    out.flush()?;
    Ok(())
}
