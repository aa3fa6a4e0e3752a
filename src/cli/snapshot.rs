//! `sluice snapshot`: run the selected snapshots, a line per snapshot.

use super::args::{SnapshotArgs, SummaryFormat};
use super::stdio::stdout;
use super::{print_format, Context, Failed};
use sluice::models::snapshot::{self, SnapshotOutcome};
use sluice::models::CompileOptions;
use std::io::Write;

pub async fn run(ctx: &Context, args: SnapshotArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice snapshot")?;
    let cli_vars = args.vars()?;
    let options = CompileOptions {
        vars: cli_vars.clone(),
        ..Default::default()
    };
    let engine = ctx.engine().await?;
    let compiled = sluice::models::compile(&ctx.project, &engine, &options).await?;
    let which = snapshot::select(&compiled.snapshots, &args.select, &args.exclude)?;
    let vars = snapshot::vars(&ctx.project, &cli_vars);
    let run_id = sluice::models::new_run_id();
    let started = std::time::Instant::now();
    let outcomes = snapshot::run_snapshots(&engine, &compiled, &which, &vars, &run_id).await;
    print(&outcomes, args.format)?;
    let report = snapshot::report(&run_id, &outcomes, started.elapsed().as_secs_f64());
    sluice::models::records::write_run_results(
        &ctx.project.root,
        &ctx.project.settings.name,
        &report,
    )?;
    sluice::models::records::append_runs(&ctx.warehouse, &report).await?;
    failed(&outcomes)
}

/// [`Failed`] when a snapshot failed (its error is printed already).
pub fn failed(outcomes: &[SnapshotOutcome]) -> anyhow::Result<()> {
    let n = outcomes.iter().filter(|o| o.result.is_err()).count();
    if n > 0 {
        return Err(Failed(format!(
            "{n} of {} snapshots failed (see above); their tables are unchanged",
            outcomes.len()
        ))
        .into());
    }
    Ok(())
}

/// The outcomes in `format`: a line each, or a JSON document.
pub fn print(outcomes: &[SnapshotOutcome], format: SummaryFormat) -> anyhow::Result<()> {
    let mut out = stdout();
    match format {
        SummaryFormat::Json => {
            let docs: Vec<serde_json::Value> = outcomes.iter().map(json).collect();
            print_format::json(&mut out, &serde_json::json!({ "snapshots": docs }))?
        }
        SummaryFormat::Table => {
            if outcomes.is_empty() {
                writeln!(out, "no snapshots to run")?;
            }
            let width = outcomes.iter().map(|o| o.id.len()).max().unwrap_or(0);
            for o in outcomes {
                match &o.result {
                    Ok(r) => writeln!(
                        out,
                        "snapshot {:width$}  {:<7}  {} inserted, {} closed  version {}  {:.2}s",
                        o.id,
                        r.action,
                        r.inserted,
                        r.closed,
                        r.version
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into()),
                        o.seconds
                    )?,
                    Err(e) => writeln!(out, "snapshot {:width$}  ERROR    {e}", o.id)?,
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn json(o: &SnapshotOutcome) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "name": o.name,
        "relation": o.id,
        "seconds": o.seconds,
    });
    if let serde_json::Value::Object(m) = &mut doc {
        match &o.result {
            Ok(r) => {
                m.insert("status".into(), "success".into());
                m.insert("action".into(), r.action.into());
                m.insert("version".into(), r.version.into());
                m.insert("inserted".into(), r.inserted.into());
                m.insert("closed".into(), r.closed.into());
            }
            Err(e) => {
                m.insert("status".into(), "error".into());
                m.insert("message".into(), e.to_string().into());
            }
        }
    }
    doc
}
