//! `sluice materialize`: the latest row per entity of a feature view into the
//! online store.
//!
//! Unbounded, it continues from the Delta version the last run covered: when
//! the commits since then only added files (appends, as incremental models
//! write), only those files are read, whatever their event times, so rows
//! arriving late are applied too; each is merged "newest event time wins"
//! (then created time), so a late row never replaces a newer value. When the
//! table was rewritten (a `table` model, a merge or delete), or the layout or
//! backend changed, the store is rebuilt from the whole table. With
//! `--start/--end`, the rows whose event time falls in the range are merged
//! the same way.

use super::embedded::{self, Loaded, Map};
use super::{state_doc, Layout, OnlineState, OnlineStore};
use crate::error::{Error, Result};
use crate::features::FeatureViewDef;
use crate::sql::Engine;
use datafusion::prelude::{col, lit};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// Event-time bounds of a materialization (microseconds since the epoch,
/// start inclusive, end exclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// What one materialization of one view did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MaterializeReport {
    pub view: String,
    /// `full`, `incremental`, `range` or `up to date`.
    pub mode: String,
    /// Why a full rebuild was needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub from_version: Option<u64>,
    pub to_version: u64,
    /// Offline rows read.
    pub rows_read: u64,
    /// Entities whose online value changed.
    pub entities_written: u64,
    /// Entities in the store afterwards (for Redis after an incremental run:
    /// an upper bound).
    pub entity_count: u64,
    pub seconds: f64,
}

enum Mode {
    Full(String),
    Incremental { from: u64, added: Vec<String> },
    Range,
    UpToDate,
}

async fn file_set(table: &deltalake::DeltaTable) -> Result<HashSet<String>> {
    let snapshot = table
        .snapshot()
        .map_err(|e| Error::Internal(format!("delta snapshot: {e}")))?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| f.path().to_string())
        .collect())
}

/// Materializes one view.
pub async fn materialize(
    engine: &Engine,
    store: &OnlineStore,
    view: &FeatureViewDef,
    range: Option<Range>,
    full: bool,
) -> Result<MaterializeReport> {
    let t0 = Instant::now();
    let wh = engine.warehouse();
    let table = wh
        .open_table(&view.schema, &view.table)
        .await?
        .ok_or_else(|| Error::UnknownTable {
            table: view.id(),
            hint: format!(
                "; feature view `{}` is registered but its table is gone: re-run its model",
                view.name
            ),
        })?;
    let to_version = table.version().unwrap_or(0);
    let provider = table
        .table_provider()
        .await
        .map_err(|e| Error::storage(view.id(), e))?;
    let layout = Layout::for_table(view, &provider.schema())?;
    let previous = store.state(&view.name).await?;
    let backend = store.backend.label();
    let mode = match (&previous, range) {
        _ if full => Mode::Full("--full".into()),
        (None, Some(_)) => Mode::Range,
        (None, None) => Mode::Full("first materialization".into()),
        (Some(p), _) if p.backend != backend => {
            Mode::Full(format!("the store was {}, now {backend}", p.backend))
        }
        (Some(p), _) if !layout.matches(p) => {
            Mode::Full("the view's columns or types changed".into())
        }
        (Some(_), Some(_)) => Mode::Range,
        (Some(p), None) => match p.table_version {
            None => Mode::Full("the store holds only a range".into()),
            Some(v) if v == to_version => Mode::UpToDate,
            Some(v) if v > to_version => Mode::Full(format!(
                "the table is at version {to_version}, older than the stored {v}"
            )),
            Some(v) => {
                let url = wh.table_url(&view.schema, &view.table)?;
                let mut old = wh.table_handle(&url)?;
                match old.load_version(v).await {
                    Err(e) => Mode::Full(format!("version {v} is no longer readable ({e})")),
                    Ok(()) => {
                        let before = file_set(&old).await?;
                        let now = file_set(&table).await?;
                        if before.iter().any(|f| !now.contains(f)) {
                            Mode::Full(format!(
                                "versions {} to {to_version} rewrote or removed rows",
                                v + 1
                            ))
                        } else {
                            let mut added: Vec<String> =
                                now.into_iter().filter(|f| !before.contains(f)).collect();
                            added.sort();
                            Mode::Incremental { from: v, added }
                        }
                    }
                }
            }
        },
    };
    let mut report = MaterializeReport {
        view: view.name.clone(),
        from_version: previous.as_ref().and_then(|p| p.table_version),
        to_version,
        ..Default::default()
    };
    let source = match &mode {
        Mode::UpToDate => {
            report.mode = "up to date".into();
            report.entity_count = previous.as_ref().map(|p| p.entity_count).unwrap_or(0);
            report.seconds = t0.elapsed().as_secs_f64();
            return Ok(report);
        }
        Mode::Incremental { added, .. } if added.is_empty() => None,
        Mode::Incremental { added, .. } => Some(
            table
                .table_provider()
                .with_file_paths(added.clone())
                .await
                .map_err(|e| Error::storage(view.id(), e))?,
        ),
        _ => Some(provider),
    };
    // The newest value per entity among the rows read.
    let mut delta = Map::default();
    if let Some(source) = source {
        let mut df = engine.context().read_table(source)?.select_columns(
            &layout
                .columns()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )?;
        if let (Mode::Range, Some(r)) = (&mode, range) {
            let tz = match layout.event.data_type() {
                datafusion::arrow::datatypes::DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            };
            let bound = |v: i64| lit(ScalarValue::TimestampMicrosecond(Some(v), tz.clone()));
            if let Some(s) = r.start {
                df = df.filter(col(layout.event.name()).gt_eq(bound(s)))?;
            }
            if let Some(e) = r.end {
                df = df.filter(col(layout.event.name()).lt(bound(e)))?;
            }
        }
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            report.rows_read += batch.num_rows() as u64;
            let enc = layout.encode(batch.columns())?;
            for (i, order) in enc.order.iter().enumerate() {
                let Some(order) = order else { continue };
                let key = enc.keys.row(i);
                if let Some(v) = delta.get(key.as_ref()) {
                    if !super::newer_or_equal(order, v) {
                        continue;
                    }
                }
                let value = enc.values.row(i);
                let mut v = Vec::with_capacity(16 + value.as_ref().len());
                v.extend_from_slice(order);
                v.extend_from_slice(value.as_ref());
                delta.insert(key.as_ref().into(), v.into());
            }
        }
    }
    let rebuild = matches!(mode, Mode::Full(_));
    let old_generation = previous.as_ref().map(|p| p.generation).unwrap_or(0);
    let generation = if rebuild || previous.is_none() {
        old_generation + 1
    } else {
        old_generation
    };
    let mut state = previous.clone().unwrap_or_else(|| OnlineState {
        view: view.name.clone(),
        table: view.id(),
        backend: backend.clone(),
        format: String::new(),
        entities: Vec::new(),
        event_timestamp: super::StoredField::of(&layout.event),
        created_timestamp: None,
        features: Vec::new(),
        ttl_seconds: None,
        generation,
        table_version: None,
        snapshot: None,
        entity_count: 0,
        materialized_at: String::new(),
        last: MaterializeReport::default(),
    });
    layout.fill_state(&mut state);
    state.table = view.id();
    state.backend = backend;
    state.ttl_seconds = view.ttl_seconds;
    state.generation = generation;
    match &mode {
        Mode::Full(_) | Mode::Incremental { .. } => state.table_version = Some(to_version),
        Mode::Range | Mode::UpToDate => {}
    }
    let old_snapshot = previous.as_ref().and_then(|p| p.snapshot.clone());
    match &store.redis {
        // Nothing new: keep the snapshot, record the version.
        None if !rebuild && previous.is_some() && delta.is_empty() => {}
        None => {
            let map = if rebuild || previous.is_none() {
                report.entities_written = delta.len() as u64;
                delta
            } else {
                let base = match &previous {
                    Some(p) => store.embedded.load(wh, p).await?,
                    None => Arc::new(Loaded {
                        snapshot: String::new(),
                        map: Map::default(),
                    }),
                };
                let mut map = base.map.clone();
                for (k, v) in delta {
                    let replace = match map.get(&k) {
                        Some(old) => super::newer_or_equal(&v, old) && old != &v,
                        None => true,
                    };
                    if replace {
                        report.entities_written += 1;
                        map.insert(k, v);
                    }
                }
                map
            };
            let rel = format!(
                "online/{}/{generation}-{}.arrow",
                view.name,
                uuid::Uuid::new_v4().simple()
            );
            wh.put_meta_bytes(&rel, embedded::encode(&map)?).await?;
            state.entity_count = map.len() as u64;
            state.snapshot = Some(rel.clone());
            store
                .embedded
                .install(&view.name, Arc::new(Loaded { snapshot: rel, map }));
        }
        Some(redis) => {
            let cas = !(rebuild || previous.is_none());
            let (changed, new) = redis
                .write(
                    &view.name,
                    generation,
                    delta.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
                    cas,
                )
                .await?;
            report.entities_written = changed;
            state.entity_count = if cas {
                state.entity_count + new
            } else {
                delta.len() as u64
            };
            state.snapshot = None;
        }
    }
    report.mode = match &mode {
        Mode::Full(reason) => {
            report.reason = Some(reason.clone());
            "full".into()
        }
        Mode::Incremental { from, .. } => {
            report.from_version = Some(*from);
            "incremental".into()
        }
        Mode::Range => "range".into(),
        Mode::UpToDate => "up to date".into(),
    };
    report.entity_count = state.entity_count;
    report.seconds = t0.elapsed().as_secs_f64();
    state.materialized_at = chrono::Utc::now().to_rfc3339();
    state.last = report.clone();
    wh.put_meta_json(&state_doc(&view.name), &state).await?;
    // The new state is visible: the replaced values can go.
    if let Some(old) = old_snapshot {
        if state.snapshot.as_deref() != Some(old.as_str()) {
            if let Err(e) = wh.delete_meta(&old).await {
                tracing::warn!("online view {}: old snapshot not deleted: {e}", view.name);
            }
        }
    }
    if let Some(redis) = &store.redis {
        if generation != old_generation && old_generation > 0 {
            if let Err(e) = redis.drop_generation(&view.name, old_generation).await {
                tracing::warn!("online view {}: old keys not removed: {e}", view.name);
            }
        }
    }
    Ok(report)
}
