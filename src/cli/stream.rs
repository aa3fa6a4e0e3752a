//! `sluice stream [SOURCE...]`: Kafka sources into Delta tables until stopped.

use super::args::{StreamArgs, SummaryFormat};
use super::serve::shutdown_signal;
use super::stdio::{note, stdout};
use super::{print_format, Context};
use datafusion::arrow::array::RecordBatch;
use sluice::features::live::{LiveEvent, LiveViews};
use sluice::project::SourceDecl;
use sluice::stream::{StreamObserver, StreamOptions, StreamReport};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

pub async fn run(ctx: &Context, args: StreamArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice stream")?;
    let sources = sluice::stream::kafka_sources(&ctx.project, &args.sources)?;
    if args.status {
        let mut reports = Vec::new();
        for src in sources {
            reports.push(sluice::stream::status(&ctx.warehouse, src).await?);
        }
        return print(&reports, args.format);
    }
    let options = StreamOptions {
        catch_up: false,
        trigger: args.trigger_ms.map(|ms| Duration::from_millis(ms.max(1))),
        run_id: None,
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    // The first signal finishes the batch in flight; a second one exits at once
    // (nothing half-written is visible: the table stays at its last commit).
    tokio::spawn(async move {
        shutdown_signal().await;
        note("sluice stream: stopping after the batch in flight (again to abandon it)");
        let _ = tx.send(true);
        shutdown_signal().await;
        note("sluice stream: abandoned the batch in flight");
        std::process::exit(130);
    });
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    if ctx.progress_lines {
        note(format!(
            "sluice stream: {} into {}; stop with Ctrl-C",
            names.join(", "),
            ctx.warehouse_uri
        ));
    }
    // Stream feature views over these sources: rebuilt from their tables now,
    // then fed every commit.
    let stream_id = sluice::names::new_id();
    let options = StreamOptions {
        run_id: Some(stream_id.clone()),
        ..options
    };
    let mut feeds = HashMap::new();
    let mut tasks = Vec::new();
    let engine = ctx.engine().await?;
    let store = sluice::features::settings(&engine)?.online.clone();
    for src in &sources {
        let (schema, table) = src.target();
        // Started for every source: views registered later (a `sluice run`
        // while this runs) are picked up within seconds.
        let live = LiveViews::start(&engine, store.clone(), &schema, &table, &stream_id).await?;
        if ctx.progress_lines && !live.is_empty() {
            note(format!(
                "sluice stream: keeping {} fresh online",
                live.names().join(", ")
            ));
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        feeds.insert(src.name.clone(), tx);
        tasks.push(tokio::spawn(live.run(rx)));
    }
    let observer = Lines {
        show: ctx.progress_lines,
        feeds,
    };
    let result = sluice::stream::run(&ctx.warehouse, &sources, &options, rx, &observer).await;
    // The views finish applying what was committed.
    drop(observer);
    for t in tasks {
        let _ = t.await;
    }
    print(&result?, args.format)
}

/// One stderr line per commit; the committed rows to the stream feature views.
struct Lines {
    show: bool,
    feeds: HashMap<String, UnboundedSender<LiveEvent>>,
}

impl StreamObserver for Lines {
    fn rows(&self, source: &SourceDecl, _version: u64, batches: &[RecordBatch]) {
        if let Some(tx) = self.feeds.get(&source.name) {
            let _ = tx.send(LiveEvent::Rows(batches.to_vec()));
        }
    }

    fn outdated(&self, source: &SourceDecl) {
        if let Some(tx) = self.feeds.get(&source.name) {
            let _ = tx.send(LiveEvent::Outdated);
        }
    }

    fn committed(&self, report: &StreamReport, version: u64, rows: u64) {
        if !self.show {
            return;
        }
        let lag: i64 = report.partitions.iter().map(|p| p.lag_records).sum();
        let secs = report
            .partitions
            .iter()
            .map(|p| p.lag_seconds)
            .fold(0.0, f64::max);
        note(format!(
            "{}: v{version} +{rows} rows ({} total, {} rejected); lag {lag} records, {secs:.1} s",
            report.table, report.rows_loaded, report.rows_rejected
        ));
    }
}

fn print(reports: &[StreamReport], format: SummaryFormat) -> anyhow::Result<()> {
    let mut out = stdout();
    match format {
        SummaryFormat::Json => print_format::json(&mut out, &reports)?,
        SummaryFormat::Table => {
            for r in reports {
                writeln!(
                    out,
                    "{} -> {}: {} batches, {} rows, {} rejected{}",
                    r.source,
                    r.table,
                    r.batches,
                    r.rows_loaded,
                    r.rows_rejected,
                    r.version.map(|v| format!(", at v{v}")).unwrap_or_default()
                )?;
                for p in &r.partitions {
                    writeln!(
                        out,
                        "  {}[{}]: loaded to {}, end {}, lag {} records ({:.1} s)",
                        r.topic,
                        p.partition,
                        p.loaded_offset
                            .map_or_else(|| "-".to_string(), |o| o.to_string()),
                        p.end_offset,
                        p.lag_records,
                        p.lag_seconds
                    )?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
