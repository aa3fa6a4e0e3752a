//! `sluice seed [SEED...]`: the CSV files under seeds/ as tables.

use super::args::SeedArgs;
use super::progress::LoadBars;
use super::Context;

pub async fn run(ctx: &Context, args: SeedArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice seed")?;
    let report = {
        let bars = LoadBars::new(ctx.progress);
        sluice::load::seeds::seed(&ctx.project, &ctx.warehouse, &args.seeds, true, &bars).await?
    };
    super::load::print(&report, args.format)
}
