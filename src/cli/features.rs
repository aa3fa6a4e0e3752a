//! `sluice features list|show|historical`: the registered feature views,
//! feature services, and point-in-time training sets.

use super::args::{FeaturesCommand, HistoricalArgs, SummaryFormat, TextFormat};
use super::stdio::{note, stdout};
use super::{print_format, render, Context};
use sluice::features::export::{write_training_set, Destination};
use sluice::sql::Engine;
use std::io::Write;

pub async fn run(ctx: &Context, command: FeaturesCommand) -> anyhow::Result<()> {
    let engine = ctx.engine().await?;
    match command {
        FeaturesCommand::List { format } => list(&engine, format).await,
        FeaturesCommand::Show { name, format } => show(&engine, &name, format).await,
        FeaturesCommand::Historical(args) => historical(&engine, args).await,
    }
}

async fn list(engine: &Engine, format: SummaryFormat) -> anyhow::Result<()> {
    let views = sluice::features::list_views(engine.warehouse()).await?;
    let mut out = stdout();
    match format {
        SummaryFormat::Json => print_format::json(&mut out, &views)?,
        SummaryFormat::Table => {
            let settings = sluice::features::settings(engine)?;
            let mut rows = Vec::with_capacity(views.len());
            for v in views {
                let state = settings.online.state(&v.name).await?;
                rows.push((v, state));
            }
            render::feature_views(&mut out, &rows, &settings.services)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A feature service of sluice.toml, else a registered view.
async fn show(engine: &Engine, name: &str, format: TextFormat) -> anyhow::Result<()> {
    let settings = sluice::features::settings(engine)?;
    let mut out = stdout();
    if let Some(service) = settings.services.get(name) {
        match format {
            TextFormat::Json => print_format::json(&mut out, service)?,
            TextFormat::Text => render::feature_service(&mut out, name, service)?,
        }
    } else {
        let view = sluice::features::get_view(engine.warehouse(), name).await?;
        match format {
            TextFormat::Json => print_format::json(&mut out, &view)?,
            TextFormat::Text => {
                let online = settings.online.state(&view.name).await?;
                render::feature_view(&mut out, &view, online.as_ref())?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

async fn historical(engine: &Engine, args: HistoricalArgs) -> anyhow::Result<()> {
    let settings = sluice::features::settings(engine)?;
    let (refs, service_full) = settings.expand(&args.features, args.service.as_deref())?;
    let options = sluice::features::Options {
        timestamp: args.timestamp,
        full_names: args.full_names || service_full,
        service: None,
    };
    // Checked before the query runs: a bad --out fails at once.
    let destination = args
        .out
        .as_deref()
        .map(|t| Destination::parse(t, engine.default_schema()))
        .transpose()?;
    let state = engine.context().state();
    let set =
        sluice::features::training_sql(engine.warehouse(), &state, &args.entities, &refs, &options)
            .await?;
    let mut out = stdout();
    if args.sql {
        writeln!(out, "{};", set.sql)?;
        out.flush()?;
        return Ok(());
    }
    let pinned = set
        .inputs
        .iter()
        .map(|(t, v)| format!("{t}@v{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    match destination {
        None => {
            let batches = engine.query(&set.sql).await?;
            print_format::rows(&mut out, &batches, args.format)?;
            out.flush()?;
            note(format!(
                "training set read {pinned} (rebuild it with --sql)"
            ));
        }
        Some(to) => {
            let rows = write_training_set(engine, &set, &to).await?;
            note(format!("wrote {rows} rows to {to}; read {pinned}"));
        }
    }
    Ok(())
}
