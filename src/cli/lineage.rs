//! `sluice lineage MODEL`: the models upstream and downstream of one.

use super::args::{LineageArgs, LineageFormat};
use super::stdio::stdout;
use super::Context;
use sluice::models::CompileOptions;
use std::io::Write;

pub async fn run(ctx: &Context, args: LineageArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice lineage")?;
    let engine = ctx.engine().await?;
    let options = CompileOptions {
        vars: super::args::parse_vars(args.vars.as_deref())?,
        ..Default::default()
    };
    let compiled = sluice::models::compile(&ctx.project, &engine, &options).await?;
    let i = compiled.find(&args.model)?;
    let text = match args.format {
        LineageFormat::Text => compiled.dag.lineage_text(i),
        LineageFormat::Dot => compiled.dag.lineage_dot(i),
        LineageFormat::Json => compiled.dag.lineage_json(i),
    };
    let mut out = stdout();
    writeln!(out, "{}", text.trim_end())?;
    out.flush()?;
    Ok(())
}
