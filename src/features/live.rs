//! Keeping stream feature views fresh while `sluice stream` runs: per source
//! table, the registered stream views over it, their online state rebuilt
//! from the table at start, then every committed micro-batch applied and the
//! entities it touched written to the online store.
//!
//! The online state is derived from the Delta table only (its rows at start,
//! then the rows of each commit this process makes), so a restart after a
//! crash rebuilds it from what was committed: nothing is counted twice.
//! When another ingester commits to the same table, the state is rebuilt
//! from the table again.

use super::online::stream::{source_table, spec_of, table_schema, StreamPublisher};
use super::online::OnlineStore;
use super::stream_agg::{ApplyStats, StreamAggOptions, StreamAggState};
use super::FeatureViewDef;
use crate::error::Result;
use crate::names::quote_ident;
use crate::sql::Engine;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use std::sync::Arc;
use std::time::Duration;

/// How often entities whose events all left the windows are dropped.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// One stream view kept fresh.
struct LiveView {
    def: FeatureViewDef,
    state: StreamAggState,
    publisher: StreamPublisher,
    /// The last write to the online store failed: write everything next.
    dirty: bool,
    totals: ApplyStats,
}

impl LiveView {
    /// Notes how a write to the online store went: after a failure, the
    /// next write is a whole one.
    fn written(&mut self, result: Result<()>) {
        match result {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::warn!(
                    "stream feature view {}: writing the online store (tried again after the next batch): {e}",
                    self.def.name
                );
                self.dirty = true;
            }
        }
    }
}

/// The stream views over one source table.
pub struct LiveViews {
    engine: Engine,
    store: Arc<OnlineStore>,
    stream_id: String,
    schema: String,
    table: String,
    views: Vec<LiveView>,
}

/// What the ingester tells the views.
pub enum LiveEvent {
    /// Rows one commit added.
    Rows(Vec<RecordBatch>),
    /// Another ingester committed to the table.
    Outdated,
}

impl LiveViews {
    /// The stream views registered over `schema.table`, their state rebuilt
    /// from the table and written to the online store. Empty when there is
    /// none.
    pub async fn start(
        engine: &Engine,
        store: Arc<OnlineStore>,
        schema: &str,
        table: &str,
        stream_id: &str,
    ) -> Result<LiveViews> {
        let mut live = LiveViews {
            engine: engine.clone(),
            store,
            stream_id: stream_id.to_string(),
            schema: schema.to_string(),
            table: table.to_string(),
            views: Vec::new(),
        };
        live.refresh_views().await?;
        Ok(live)
    }

    /// Follows the registry: views registered over the table since (a
    /// `sluice run` while the stream runs) are added, views whose definition
    /// changed are set up again, views no longer registered are dropped.
    /// Each added view is rebuilt from the table.
    pub async fn refresh_views(&mut self) -> Result<()> {
        let wh = self.engine.warehouse().clone();
        let default_schema = self.engine.default_schema().to_string();
        let mut wanted = Vec::new();
        for def in super::list_views(&wh).await? {
            let Some(sd) = &def.stream else { continue };
            let (s, t) = source_table(&sd.source, &default_schema)?;
            if s == self.schema && t == self.table {
                wanted.push(def);
            }
        }
        self.views.retain(|v| {
            let keep = wanted.iter().any(|w| w.name == v.def.name);
            if !keep {
                tracing::info!(
                    "stream feature view {} is no longer registered: not kept online any more",
                    v.def.name
                );
            }
            keep
        });
        for def in wanted {
            let current = self.views.iter().position(|v| v.def.name == def.name);
            if let Some(i) = current {
                if self.views[i].def.stream == def.stream
                    && self.views[i].def.entities == def.entities
                {
                    continue;
                }
                tracing::info!(
                    "stream feature view {}: its definition changed; rebuilding it",
                    def.name
                );
                self.views.remove(i);
            }
            let Some(sd) = def.stream.clone() else {
                continue;
            };
            let source_schema = table_schema(&wh, &self.schema, &self.table).await?;
            let mut state = StreamAggState::new(
                spec_of(&def)?,
                source_schema,
                StreamAggOptions {
                    allowed_lateness_us: sd.allowed_lateness_us,
                },
            )?;
            state.record_changes(true);
            // The ingester only collects events for the online store.
            state.keep_tiles(false);
            let publisher =
                StreamPublisher::open(self.store.clone(), &def, &self.stream_id).await?;
            self.views.push(LiveView {
                def,
                state,
                publisher,
                dirty: false,
                totals: ApplyStats::default(),
            });
            let i = self.views.len() - 1;
            self.rebuild(i).await?;
        }
        Ok(())
    }

    /// The names of the views kept fresh.
    pub fn names(&self) -> Vec<String> {
        self.views.iter().map(|v| v.def.name.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Rebuilds view `i` from the table: the rows whose event time is inside
    /// the longest window plus the allowed lateness of now.
    async fn rebuild(&mut self, i: usize) -> Result<()> {
        let v = &mut self.views[i];
        let mut state = v.state.empty_like()?;
        state.record_changes(true);
        let spec = state.spec().clone();
        let ts = &spec.event_timestamp;
        let cut_us = chrono::Utc::now()
            .timestamp_micros()
            .saturating_sub(state.max_window_us())
            .saturating_sub(v.def.stream.as_ref().map_or(0, |s| s.allowed_lateness_us));
        let source = format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table));
        let field = self
            .engine
            .context()
            .table_provider(datafusion::common::TableReference::partial(
                self.schema.as_str(),
                self.table.as_str(),
            ))
            .await?
            .schema();
        // The cut in the column's own unit, so the comparison needs no cast
        // of the column (and prunes files by their statistics).
        let cut = match field.field_with_name(ts).map(|f| f.data_type().clone()) {
            Ok(DataType::Timestamp(unit, tz)) => {
                let n = match unit {
                    TimeUnit::Second => cut_us.div_euclid(1_000_000),
                    TimeUnit::Millisecond => cut_us.div_euclid(1000),
                    TimeUnit::Microsecond => cut_us,
                    TimeUnit::Nanosecond => cut_us.saturating_mul(1000),
                };
                let tz = tz.map_or_else(|| "None".to_string(), |z| format!("Some(\"{z}\")"));
                format!("arrow_cast({n}, 'Timestamp({unit:?}, {tz})')")
            }
            _ => format!("to_timestamp_micros({cut_us})"),
        };
        let sql = format!("SELECT * FROM {source} WHERE {} > {cut}", quote_ident(ts));
        let batches = self.engine.query(&sql).await?;
        let mut totals = ApplyStats::default();
        for b in &batches {
            add(&mut totals, &state.apply(b)?);
        }
        let v = &mut self.views[i];
        // Everything is written whole below: nothing to append.
        state.take_changes();
        v.state = state;
        v.totals = totals;
        let result = v.publisher.publish_full(&v.state).await;
        v.written(result);
        tracing::info!(
            "stream feature view {}: {} events of {} entities from {}.{}",
            v.def.name,
            v.state.event_count(),
            v.state.entity_count(),
            self.schema,
            self.table
        );
        Ok(())
    }

    /// Applies the rows of one commit and writes the events they added.
    pub async fn apply(&mut self, batches: &[RecordBatch]) -> Result<()> {
        for v in &mut self.views {
            let started = std::time::Instant::now();
            for b in batches {
                let stats = v.state.apply(b)?;
                if stats.too_late > 0 {
                    tracing::info!(
                        "stream feature view {}: {} events later than the allowed lateness were not applied online (they are in the table)",
                        v.def.name,
                        stats.too_late
                    );
                }
                add(&mut v.totals, &stats);
            }
            let applied = started.elapsed();
            let added = v.state.take_changes();
            let touched = added.len();
            let result = if v.dirty {
                v.publisher.publish_full(&v.state).await
            } else {
                v.publisher.publish(&v.state, added, Vec::new()).await
            };
            v.written(result);
            tracing::debug!(
                "stream feature view {}: {} rows applied in {} ms, {touched} entities written in {} ms",
                v.def.name,
                batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
                applied.as_millis(),
                (started.elapsed() - applied).as_millis()
            );
        }
        Ok(())
    }

    /// Drops the entities whose events all left every window (and writes
    /// that they are gone).
    pub async fn expire(&mut self, now_us: i64) -> Result<()> {
        for v in &mut self.views {
            let started = std::time::Instant::now();
            let (_, gone) = v.state.expire_entities(now_us);
            if gone.is_empty() {
                continue;
            }
            let n = gone.len();
            if let Err(e) = v
                .publisher
                .publish(&v.state, Default::default(), gone)
                .await
            {
                tracing::warn!("stream feature view {}: {e}", v.def.name);
                v.dirty = true;
            }
            tracing::debug!(
                "stream feature view {}: {n} entities expired in {} ms",
                v.def.name,
                started.elapsed().as_millis()
            );
        }
        Ok(())
    }

    /// Waits for the online store's background work (checkpoints) to be
    /// done and published.
    pub async fn settle(&mut self) -> Result<()> {
        for v in &mut self.views {
            v.publisher.settle().await?;
        }
        Ok(())
    }

    /// Runs until `events` closes: applies each commit's rows (those queued
    /// meanwhile together), rebuilds after another ingester's commits, and
    /// expires entities every few seconds.
    pub async fn run(mut self, mut events: tokio::sync::mpsc::UnboundedReceiver<LiveEvent>) {
        let mut tick = tokio::time::interval(EXPIRE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    let mut rows = Vec::new();
                    let mut outdated = false;
                    let mut next = Some(ev);
                    while let Some(ev) = next {
                        match ev {
                            LiveEvent::Rows(b) => rows.extend(b),
                            LiveEvent::Outdated => outdated = true,
                        }
                        next = events.try_recv().ok();
                    }
                    let result = if outdated {
                        let mut r = Ok(());
                        for i in 0..self.views.len() {
                            r = r.and(self.rebuild(i).await);
                        }
                        r
                    } else {
                        self.apply(&rows).await
                    };
                    if let Err(e) = result {
                        tracing::error!("stream feature views over {}.{}: {e}", self.schema, self.table);
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.refresh_views().await {
                        tracing::warn!("stream feature views over {}.{}: reading the registry: {e}", self.schema, self.table);
                    }
                    let now = chrono::Utc::now().timestamp_micros();
                    if let Err(e) = self.expire(now).await {
                        tracing::warn!("stream feature views over {}.{}: {e}", self.schema, self.table);
                    }
                }
            }
        }
        if let Err(e) = self.settle().await {
            tracing::warn!(
                "stream feature views over {}.{}: {e}",
                self.schema,
                self.table
            );
        }
        for v in &self.views {
            let t = &v.totals;
            tracing::info!(
                "stream feature view {}: {} rows applied, {} filtered out, {} too late, {} without key or time",
                v.def.name,
                t.applied,
                t.filtered_out,
                t.too_late,
                t.null_key + t.null_timestamp + t.out_of_range
            );
        }
    }
}

fn add(total: &mut ApplyStats, s: &ApplyStats) {
    total.rows += s.rows;
    total.filtered_out += s.filtered_out;
    total.null_key += s.null_key;
    total.null_timestamp += s.null_timestamp;
    total.out_of_range += s.out_of_range;
    total.too_late += s.too_late;
    total.applied += s.applied;
}
