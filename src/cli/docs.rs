//! `sluice docs generate` / `sluice docs serve`.

use super::args::{DocsCommand, DocsGenerateArgs, DocsServeArgs};
use super::stdio::stdout;
use super::Context;
use sluice::models::CompileOptions;
use std::io::Write;
use std::path::PathBuf;

pub async fn run(ctx: &Context, command: DocsCommand) -> anyhow::Result<()> {
    match command {
        DocsCommand::Generate(args) => generate(ctx, args).await.map(|_| ()),
        DocsCommand::Serve(args) => serve(ctx, args).await,
    }
}

fn out_dir(ctx: &Context, out: Option<PathBuf>) -> PathBuf {
    out.unwrap_or_else(|| ctx.project.root.join("target").join("docs"))
}

async fn generate(ctx: &Context, args: DocsGenerateArgs) -> anyhow::Result<PathBuf> {
    ctx.project.require_config("sluice docs generate")?;
    let engine = ctx.engine().await?;
    let options = CompileOptions {
        vars: super::args::parse_vars(args.vars.as_deref())?,
        ..Default::default()
    };
    let out = out_dir(ctx, args.out);
    let s = sluice::docs::generate(&ctx.project, &engine, &options, &out).await?;
    let mut o = stdout();
    writeln!(
        o,
        "docs: {} nodes, {} edges, {} columns, {} column lineage entries in {:.2}s → {}",
        s.nodes,
        s.edges,
        s.columns,
        s.lineage,
        s.seconds,
        s.out.join("index.html").display()
    )?;
    for (model, e) in &s.untraced {
        writeln!(o, "  not traced: {model}: {e}")?;
    }
    o.flush()?;
    Ok(s.out)
}

async fn serve(ctx: &Context, args: DocsServeArgs) -> anyhow::Result<()> {
    let out = out_dir(ctx, args.out.clone());
    if !out.join("index.html").is_file() || !out.join("data.js").is_file() {
        generate(
            ctx,
            DocsGenerateArgs {
                out: Some(out.clone()),
                vars: None,
            },
        )
        .await?;
    }
    let listener = sluice::docs::serve::bind(&args.host, args.port).await?;
    let addr = listener.local_addr()?;
    {
        let mut o = stdout();
        writeln!(
            o,
            "sluice docs: serving {} on http://{addr}/",
            out.display()
        )?;
        o.flush()?;
    }
    tokio::select! {
        r = sluice::docs::serve::serve(listener, out) => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
