//! `sluice compile`: render and order the selected models, run nothing.

use super::args::{CompileArgs, TextFormat};
use super::stdio::stdout;
use super::{print_format, render, Context};
use sluice::models::CompileOptions;
use std::io::Write;

pub async fn run(ctx: &Context, args: CompileArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice compile")?;
    let t0 = std::time::Instant::now();
    let options = CompileOptions {
        full_refresh: args.full_refresh,
        vars: args.pick.vars()?,
        target: None,
    };
    let engine = ctx.engine().await?;
    let compiled = sluice::models::compile(&ctx.project, &engine, &options).await?;
    let order = args.pick.selection().apply(&compiled)?;
    let mut out = stdout();
    match args.format {
        TextFormat::Json => print_format::json(
            &mut out,
            &render::compiled_json(&compiled, &order, t0.elapsed().as_secs_f64()),
        )?,
        TextFormat::Text => render::compiled(&mut out, &compiled, &order)?,
    }
    out.flush()?;
    Ok(())
}
