//! `sluice seed [SEED...]`: the CSV files under seeds/ as tables, between
//! the project's `on-run-start` and `on-run-end` hooks (as `dbt seed`).

use super::args::{parse_vars, SeedArgs};
use super::progress::LoadBars;
use super::Context;

pub async fn run(ctx: &Context, args: SeedArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice seed")?;
    let vars = parse_vars(args.vars.as_deref())?;
    let settings = &ctx.project.settings;
    let hooks = !settings.on_run_start.is_empty() || !settings.on_run_end.is_empty();
    let engine = if hooks {
        Some(ctx.engine().await?)
    } else {
        None
    };
    if let Some(engine) = &engine {
        sluice::models::project_hooks(&ctx.project, engine, &vars, "on-run-start").await?;
    }
    let report = {
        let bars = LoadBars::new(ctx.progress);
        let seeds = sluice::models::compile::named_seeds(&ctx.project, &vars)?;
        sluice::load::seeds::seed_with(
            &ctx.project,
            &ctx.warehouse,
            seeds,
            &args.seeds,
            true,
            &bars,
        )
        .await?
    };
    if let Some(engine) = &engine {
        sluice::models::project_hooks(&ctx.project, engine, &vars, "on-run-end").await?;
    }
    super::load::print(&report, args.format)
}
