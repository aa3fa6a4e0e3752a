//! `sluice lineage MODEL`: the models upstream and downstream of one;
//! `sluice lineage MODEL.COLUMN`: the columns upstream and downstream of one.

use super::args::{LineageArgs, LineageFormat};
use super::stdio::stdout;
use super::Context;
use sluice::models::lineage as col;
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
    let text = match compiled.find(&args.model) {
        Ok(i) if !args.upstream && !args.downstream => match args.format {
            LineageFormat::Text => compiled.dag.lineage_text(i),
            LineageFormat::Dot => compiled.dag.lineage_dot(i),
            LineageFormat::Json => compiled.dag.lineage_json(i),
        },
        found => {
            if found.is_ok() || !args.model.contains('.') {
                // A model with --upstream/--downstream, or not a model.
                if let Err(e) = found {
                    return Err(e.into());
                }
                return Err(sluice::Error::Usage(format!(
                    "--upstream / --downstream trace a column: write {}.COLUMN",
                    args.model
                ))
                .into());
            }
            let lineage = col::project_lineage(&compiled, &engine).await?;
            let (relation, column) = col::resolve_column(&compiled, &lineage, &args.model)?;
            if let Some(m) = lineage.models.get(&relation) {
                if let Some(e) = &m.error {
                    anyhow::bail!("model `{}` cannot be traced: {e}", m.name);
                }
            }
            let start = format!("{relation}.{column}");
            let up = (!args.downstream).then(|| lineage.upstream(&relation, &column));
            let down = (!args.upstream).then(|| lineage.downstream(&relation, &column));
            match args.format {
                LineageFormat::Text => col::render_text(&start, up.as_deref(), down.as_deref()),
                LineageFormat::Dot => col::render_dot(&start, up.as_deref(), down.as_deref()),
                LineageFormat::Json => col::render_json(&start, up.as_deref(), down.as_deref()),
            }
        }
    };
    let mut out = stdout();
    writeln!(out, "{}", text.trim_end())?;
    out.flush()?;
    Ok(())
}
