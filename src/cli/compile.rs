//! `sluice compile`: render and order the selected models, run nothing.

use super::args::{CompileArgs, TextFormat};
use super::stdio::stdout;
use super::{print_format, render, Context};
use sluice::models::CompileOptions;
use std::io::Write;

pub async fn run(ctx: &Context, args: CompileArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice compile")?;
    let t0 = std::time::Instant::now();
    let vars = args.pick.vars()?;
    let options = CompileOptions {
        full_refresh: args.full_refresh,
        vars: vars.clone(),
        target: None,
    };
    let engine = ctx.engine().await?;
    let compiled = sluice::models::compile(&ctx.project, &engine, &options).await?;
    let order = args.pick.selection().apply(&compiled)?;
    let analyses = sluice::models::analyses::compile_analyses(&ctx.project, &compiled, &vars)?;
    let mut out = stdout();
    match args.format {
        TextFormat::Json => {
            let mut doc = render::compiled_json(&compiled, &order, t0.elapsed().as_secs_f64());
            if let serde_json::Value::Object(m) = &mut doc {
                m.insert("analyses".into(), serde_json::to_value(&analyses)?);
            }
            print_format::json(&mut out, &doc)?
        }
        TextFormat::Text => {
            render::compiled(&mut out, &compiled, &order)?;
            for a in &analyses {
                writeln!(
                    out,
                    "analysis {} compiled to {}",
                    a.file,
                    a.compiled_path
                        .strip_prefix(&ctx.project.root)
                        .unwrap_or(&a.compiled_path)
                        .display()
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
