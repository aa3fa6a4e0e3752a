//! `sluice materialize [VIEW...]`: the latest feature values per entity into
//! the online store.

use super::args::{MaterializeArgs, SummaryFormat};
use super::stdio::{note, stdout};
use super::{print_format, render, Context, Failed};
use sluice::features::online::Range;
use std::io::Write;

pub async fn run(ctx: &Context, args: MaterializeArgs) -> anyhow::Result<()> {
    let engine = ctx.engine().await?;
    let range = (args.start.is_some() || args.end.is_some()).then_some(Range {
        start: args.start,
        end: args.end,
    });
    let mut views =
        sluice::features::registry::select_views(engine.warehouse(), &args.views).await?;
    // Stream views are kept online by `sluice stream`, not materialized.
    if args.views.is_empty() {
        views.retain(|v| v.stream.is_none());
    } else if let Some(v) = views.iter().find(|v| v.stream.is_some()) {
        return Err(sluice::Error::Usage(format!(
            "`{}` is a stream feature view: `sluice stream` keeps it online (there is nothing to materialize)",
            v.name
        ))
        .into());
    }
    let store = sluice::features::settings(&engine)?.online.clone();
    let command =
        sluice::models::openlineage::CommandRun::start(&ctx.project, "materialize").await?;
    let mut reports = Vec::new();
    let mut failed = 0;
    // A view that fails does not stop the others.
    for view in &views {
        let started = chrono::Utc::now();
        let result =
            sluice::features::online::materialize(&engine, &store, view, range, args.full).await;
        let shown = result.as_ref().map_err(|e| e.to_string());
        sluice::app::materialize_events(
            &ctx.project,
            engine.warehouse(),
            view,
            shown.as_ref().copied().map_err(String::as_str),
            started,
            command.as_ref(),
        );
        match result {
            Ok(r) => reports.push(r),
            Err(e) => {
                failed += 1;
                note(format!("materialize {}: {e}", view.name));
            }
        }
    }
    if let Some(c) = &command {
        let error = (failed > 0).then(|| format!("{failed} of {} view(s) failed", views.len()));
        c.end(error.as_deref()).await;
    }
    let mut out = stdout();
    match args.format {
        SummaryFormat::Json => print_format::json(&mut out, &reports)?,
        SummaryFormat::Table => render::materialize_reports(&mut out, &reports)?,
    }
    out.flush()?;
    if failed > 0 {
        return Err(Failed(format!(
            "{failed} of {} view(s) failed to materialize",
            views.len()
        ))
        .into());
    }
    Ok(())
}
