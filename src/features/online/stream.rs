//! Stream feature views in the online store: per entity, the state bytes of
//! [`StreamAggState`] (its events of the longest window), written by
//! `sluice stream` after every micro-batch commit and turned into values by
//! the reader at lookup time, as of the lookup's instant. Windows therefore
//! slide with the clock: an entity whose window emptied reads as count 0 /
//! NULL without any write.
//!
//! - **The state document** `_sluice/stream_online/<view>.json`
//!   ([`StreamOnlineState`]): the definition the ingester computes (its SQL,
//!   so readers decode with exactly that), the backend, and for the embedded
//!   store the generation and sequence of its files.
//! - **Embedded**: `_sluice/stream_online/<view>/<generation>/<seq>.arrow`,
//!   each an Arrow IPC file of (key bytes, state bytes): a *full* file (the
//!   marker entry with an empty key) replaces everything, a *delta* file
//!   replaces the entities it names (empty state bytes: the entity is gone).
//!   A reader probes for the next sequence number at each lookup, so it sees
//!   a batch as soon as its file exists; every restart of the ingester starts
//!   a generation with a full file. Once the deltas since the last full point
//!   outweigh it (or after 200 files), a *checkpoint* `full-<seq>.arrow` is
//!   merged in the background from the last full point and the files after
//!   it (as a reader would, without touching the live state, so batches never
//!   wait for it); readers that start or fell behind begin there, and files
//!   before the previous full point are then deleted.
//! - **Redis**: one key per entity, `<prefix>:sv:<view>:<definition>:<key
//!   bytes>`, written with an expiry at the moment its newest event leaves
//!   the longest window (so Redis drops entities nobody will read again).

use super::embedded::{self, Map};
use super::redis::Reply;
use super::{Backend, OnlineStore};
use crate::error::{Error, Result};
use crate::features::stream_agg::{
    key_columns, EntityKey, KeyMap, StreamAggOptions, StreamAggSpec, StreamAggState,
};
use crate::features::FeatureViewDef;
use crate::warehouse::Warehouse;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The folder under `_sluice/`.
pub(crate) const DIR: &str = "stream_online";

/// The marker key of a full file (entity keys are never empty).
const FULL: &[u8] = b"";

/// How often a reader re-reads the state document (to notice a restarted
/// ingester, or files it skipped).
const DOC_EVERY: Duration = Duration::from_millis(500);

/// How often a reader looks for new files of a view on object storage (at
/// most: each look is a request). On a local disk it looks at every lookup.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// A full embedded file at least every this many files.
const FULL_EVERY_FILES: u64 = 200;

/// What the online store holds for one stream feature view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamOnlineState {
    /// The view's name and `schema.table`.
    pub view: String,
    pub table: String,
    /// The source table (`schema.table`).
    pub source: String,
    /// The definition the ingester computes (the view's SQL), and its hash.
    pub sql: String,
    pub definition: String,
    pub entities: Vec<String>,
    pub event_timestamp: String,
    pub allowed_lateness_us: i64,
    pub backend: String,
    /// Embedded store: the files of this generation are read.
    pub generation: u64,
    /// Embedded store: the newest file, and the newest full file.
    pub seq: u64,
    pub full_seq: u64,
    /// Embedded store: the newest checkpoint (`full-<seq>.arrow`: everything
    /// up to and including file `seq`), where a reader starts.
    #[serde(default)]
    pub checkpoint: Option<u64>,
    /// Entities held by the ingester.
    pub entity_count: u64,
    /// The newest event time applied (µs).
    pub max_event_us: Option<i64>,
    pub updated_at: String,
    /// The `sluice stream` run that writes it.
    pub stream_id: String,
}

fn doc(view: &str) -> String {
    format!("{DIR}/{view}.json")
}

fn file(view: &str, generation: u64, seq: u64) -> String {
    format!("{DIR}/{view}/{generation}/{seq:012}.arrow")
}

fn checkpoint_file(view: &str, generation: u64, seq: u64) -> String {
    format!("{DIR}/{view}/{generation}/full-{seq:012}.arrow")
}

/// The hash naming a definition (16 hex digits of the SHA-256 of its SQL).
pub fn definition_hash(sql: &str) -> String {
    let mut h = crate::models::compile::sha256_hex(sql);
    h.truncate(16);
    h
}

/// `(schema, table)` of a stream view's source as its SQL names it
/// (`raw.events`, `sluice.raw.events`, `events` in `default_schema`).
pub fn source_table(source: &str, default_schema: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = source.split('.').collect();
    match parts.as_slice() {
        [t] => Ok((default_schema.to_string(), t.to_string())),
        [s, t] => Ok((s.to_string(), t.to_string())),
        [c, s, t] if *c == crate::sql::CATALOG => Ok((s.to_string(), t.to_string())),
        _ => Err(Error::Sql(format!(
            "stream feature view source `{source}` is not a warehouse table (schema.table)"
        ))),
    }
}

/// The parsed definition of a registered stream view.
pub fn spec_of(view: &FeatureViewDef) -> Result<StreamAggSpec> {
    let def = view.stream.as_ref().ok_or_else(|| {
        Error::Sql(format!(
            "feature view `{}` is not a stream feature view",
            view.name
        ))
    })?;
    StreamAggSpec::parse(&view.id(), &def.sql, &view.entities, &view.event_timestamp)
}

/// The Arrow schema of a warehouse table.
pub async fn table_schema(wh: &Warehouse, schema: &str, table: &str) -> Result<SchemaRef> {
    let t = wh.open_table(schema, table).await?.ok_or_else(|| {
        Error::not_found(
            crate::error::Object::Table,
            format!("{schema}.{table} does not exist: load its source first (`sluice load` or `sluice stream`)"),
        )
    })?;
    let snap = t
        .snapshot()
        .map_err(|e| Error::storage(format!("{schema}.{table}"), e))?;
    Ok(Arc::new(snap.snapshot().arrow_schema().as_ref().clone()))
}

/// Encodes entity keys (values of `fields`' types) as row bytes.
pub struct KeyCodec {
    fields: Vec<Field>,
    conv: RowConverter,
}

impl KeyCodec {
    pub fn new(fields: Vec<Field>) -> Result<Self> {
        let conv = RowConverter::new(
            fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .map_err(|e| Error::Sql(format!("the entity columns cannot be online keys: {e}")))?;
        Ok(KeyCodec { fields, conv })
    }

    /// The keys as arrays of the entity types.
    pub fn columns(&self, keys: &[Vec<ScalarValue>]) -> Result<Vec<ArrayRef>> {
        key_columns(&self.fields, keys)
    }

    pub fn rows(&self, keys: &[Vec<ScalarValue>]) -> Result<Rows> {
        let cols = self.columns(keys)?;
        self.conv
            .convert_columns(&cols)
            .map_err(|e| Error::Internal(format!("encoding online keys: {e}")))
    }
}

impl std::fmt::Debug for KeyCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCodec")
            .field("fields", &self.fields)
            .finish()
    }
}

fn redis_prefix(prefix: &str, view: &str, definition: &str) -> Vec<u8> {
    format!("{prefix}:sv:{view}:{definition}:").into_bytes()
}

fn storage_err(store: &OnlineStore, message: String) -> Error {
    Error::Storage {
        location: store.backend.label(),
        message,
    }
}

/// What a write does to one entity's stored events.
#[derive(Debug)]
pub enum Change {
    /// Adds events (records of `StreamAggState::take_changes`).
    Append(Vec<u8>),
    /// Replaces them all (`StreamAggState::entity_events`).
    Replace(Vec<u8>),
    /// The entity has no event left.
    Delete,
}

const APPEND: u8 = 0;
const REPLACE: u8 = 1;
const DELETE: u8 = 2;

/// Writes one stream view's entities into the online store (`sluice stream`):
/// per micro-batch, the events it added to each entity are appended to that
/// entity's stored events, so a write costs what the batch brought, not what
/// the windows hold. An entity whose appended events outgrow its live ones
/// (pruned events are still stored) is written whole again.
#[derive(Debug)]
pub struct StreamPublisher {
    store: Arc<OnlineStore>,
    doc: StreamOnlineState,
    /// Bytes appended per entity since it was last written whole.
    appended: KeyMap<usize>,
    /// Embedded store: bytes in delta files since the last full file, and
    /// the size of that full file.
    since_full: usize,
    full_size: usize,
    /// A checkpoint being written in the background: the file it covers up
    /// to, and the task (which gives the checkpoint's size).
    pending: Option<(u64, tokio::task::JoinHandle<Result<usize>>)>,
}

impl StreamPublisher {
    /// Starts publishing `view` (a stream view): a new generation, whose
    /// first write must be [`publish_full`](Self::publish_full).
    pub async fn open(
        store: Arc<OnlineStore>,
        view: &FeatureViewDef,
        stream_id: &str,
    ) -> Result<Self> {
        let def = view.stream.as_ref().ok_or_else(|| {
            Error::Internal(format!("{} is not a stream feature view", view.name))
        })?;
        let previous: Option<StreamOnlineState> =
            store.warehouse.get_meta_json(&doc(&view.name)).await?;
        let doc = StreamOnlineState {
            view: view.name.clone(),
            table: view.id(),
            source: def.source.clone(),
            sql: def.sql.clone(),
            definition: definition_hash(&def.sql),
            entities: view.entities.clone(),
            event_timestamp: view.event_timestamp.clone(),
            allowed_lateness_us: def.allowed_lateness_us,
            backend: store.backend.label(),
            generation: previous.map_or(1, |p| p.generation + 1),
            seq: 0,
            full_seq: 0,
            checkpoint: None,
            entity_count: 0,
            max_event_us: None,
            updated_at: chrono::Utc::now().to_rfc3339(),
            stream_id: stream_id.to_string(),
        };
        Ok(StreamPublisher {
            store,
            doc,
            appended: KeyMap::default(),
            since_full: 0,
            full_size: 0,
            pending: None,
        })
    }

    /// The state document as last written.
    pub fn state(&self) -> &StreamOnlineState {
        &self.doc
    }

    /// Writes every entity `state` holds, whole (replacing what readers had).
    pub async fn publish_full(&mut self, state: &StreamAggState) -> Result<()> {
        let keys = state.entity_keys();
        let changes: Vec<(EntityKey, Change)> = keys
            .into_iter()
            .map(|k| {
                let bytes = state.entity_events(&k).unwrap_or_default();
                (k, Change::Replace(bytes))
            })
            .collect();
        self.appended.clear();
        self.write(state, changes, true).await
    }

    /// Writes what changed since the last write: the events `added` per
    /// entity (from `StreamAggState::take_changes`), and the entities `gone`.
    pub async fn publish(
        &mut self,
        state: &StreamAggState,
        added: KeyMap<Vec<u8>>,
        gone: Vec<EntityKey>,
    ) -> Result<()> {
        if added.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let record = 8 + 9 * state.output_schema().fields().len().max(1);
        let mut changes = Vec::with_capacity(added.len() + gone.len());
        let mut bytes = 0usize;
        for (k, events) in added {
            let live = state.entity_event_count(&k) * record;
            let appended = self.appended.entry(k.clone()).or_insert(0);
            if *appended + events.len() > 2 * live + 4096 {
                let whole = state.entity_events(&k).unwrap_or_default();
                bytes += whole.len();
                *appended = 0;
                changes.push((k, Change::Replace(whole)));
            } else {
                bytes += events.len();
                *appended += events.len();
                changes.push((k, Change::Append(events)));
            }
        }
        for k in gone {
            self.appended.remove(&k);
            changes.push((k, Change::Delete));
        }
        let adopted = self.adopt_checkpoint(false).await;
        let due = matches!(self.store.backend, Backend::Embedded)
            && self.pending.is_none()
            && (self.doc.seq - self.doc.full_seq >= FULL_EVERY_FILES
                || self.since_full + bytes > self.full_size.max(4 << 20));
        self.write(state, changes, false).await?;
        if let Some(previous) = adopted {
            self.clean(previous).await;
        }
        if due {
            self.start_checkpoint();
        }
        Ok(())
    }

    /// Waits for the checkpoint being written, if any, and publishes it.
    pub async fn settle(&mut self) -> Result<()> {
        if let Some(previous) = self.adopt_checkpoint(true).await {
            self.store
                .warehouse
                .put_meta_json(&doc(&self.doc.view), &self.doc)
                .await?;
            self.clean(previous).await;
        }
        Ok(())
    }

    /// Starts writing, in the background, the checkpoint of the newest file:
    /// the last full point merged with the files after it, as a reader
    /// would, so the live state is not read (and the batches applied
    /// meanwhile wait for nothing).
    fn start_checkpoint(&mut self) {
        let to = self.doc.seq;
        let base = self.doc.full_seq;
        let from_checkpoint = self.doc.checkpoint == Some(base);
        let store = self.store.clone();
        let view = self.doc.view.clone();
        let generation = self.doc.generation;
        self.since_full = 0;
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let wh = &store.warehouse;
            let first = if from_checkpoint {
                checkpoint_file(&view, generation, base)
            } else {
                file(&view, generation, base)
            };
            let names =
                std::iter::once(first).chain((base + 1..=to).map(|s| file(&view, generation, s)));
            // Key bytes → the entity's stored value (its tag, then events):
            // one copy of each entity, merged file by file.
            let mut merged: HashMap<Box<[u8]>, Vec<u8>, ahash::RandomState> = HashMap::default();
            for rel in names {
                let bytes = wh.get_meta_bytes(&rel).await?.ok_or_else(|| {
                    Error::Internal(format!("`_sluice/{rel}` disappeared while checkpointing"))
                })?;
                let v = view.clone();
                merged = tokio::task::spawn_blocking(move || {
                    merge_file(&mut merged, &bytes, &v, &rel)?;
                    Ok::<_, Error>(merged)
                })
                .await
                .map_err(|e| Error::Internal(format!("checkpoint task: {e}")))??;
            }
            let entities = merged.len();
            let (body, size) = tokio::task::spawn_blocking(move || {
                let size: usize = merged.values().map(Vec::len).sum();
                let keys: usize = merged.keys().map(|k| k.len()).sum();
                let full: (&[u8], &[u8]) = (FULL, b"full");
                let entries = std::iter::once((Box::<[u8]>::from(full.0), full.1.to_vec()))
                    .chain(merged.drain());
                Ok::<_, Error>((embedded::encode_entries(entries, size + keys)?, size))
            })
            .await
            .map_err(|e| Error::Internal(format!("checkpoint task: {e}")))??;
            wh.put_meta_bytes(&checkpoint_file(&view, generation, to), body)
                .await?;
            tracing::debug!(
                "stream feature view {view}: checkpoint of {entities} entities ({size} bytes) at file {to} in {} ms",
                started.elapsed().as_millis()
            );
            Ok(size)
        });
        self.pending = Some((to, task));
    }

    /// Takes a finished background checkpoint into the state document (the
    /// next write of the document publishes it). Returns the previous full
    /// point, before which files may then be deleted.
    async fn adopt_checkpoint(&mut self, wait: bool) -> Option<u64> {
        if !wait && !self.pending.as_ref().is_some_and(|(_, t)| t.is_finished()) {
            return None;
        }
        let (seq, task) = self.pending.take()?;
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("checkpoint task: {e}"))),
        };
        match result {
            Ok(size) if self.doc.full_seq < seq => {
                let previous = self.doc.full_seq;
                self.doc.full_seq = seq;
                self.doc.checkpoint = Some(seq);
                self.full_size = size;
                Some(previous)
            }
            // A full file was written meanwhile: this one is not needed.
            Ok(_) => {
                let rel = checkpoint_file(&self.doc.view, self.doc.generation, seq);
                if let Err(e) = self.store.warehouse.delete_meta(&rel).await {
                    tracing::debug!("deleting {rel}: {e}");
                }
                None
            }
            Err(e) => {
                tracing::warn!(
                    "stream feature view {}: writing a checkpoint (readers keep following the changes; tried again later): {e}",
                    self.doc.view
                );
                None
            }
        }
    }

    async fn write(
        &mut self,
        state: &StreamAggState,
        changes: Vec<(EntityKey, Change)>,
        full: bool,
    ) -> Result<()> {
        self.doc.entity_count = state.entity_count() as u64;
        self.doc.max_event_us = state.max_event_us();
        self.doc.updated_at = chrono::Utc::now().to_rfc3339();
        match &self.store.backend {
            Backend::Embedded => {
                let mut map = Map::default();
                if full {
                    map.insert(FULL.into(), b"full".to_vec().into());
                }
                let mut size = 0;
                for (key, change) in changes {
                    let value: Vec<u8> = match change {
                        Change::Append(b) => std::iter::once(APPEND).chain(b).collect(),
                        Change::Replace(b) => std::iter::once(REPLACE).chain(b).collect(),
                        Change::Delete => vec![DELETE],
                    };
                    size += value.len();
                    map.insert(key, value.into());
                }
                let body = embedded::encode(&map)?;
                let wh = &self.store.warehouse;
                let mut seq = if full && self.doc.seq == 0 && self.doc.full_seq == 0 {
                    0
                } else {
                    self.doc.seq + 1
                };
                // Another writer of this generation (a second ingester) took
                // the number: move past it, writing everything.
                while !create(wh, &file(&self.doc.view, self.doc.generation, seq), &body).await? {
                    if !full {
                        self.doc.seq = seq;
                        return Box::pin(self.publish_full(state)).await;
                    }
                    seq += 1;
                }
                self.doc.seq = seq;
                if full {
                    let previous_full = self.doc.full_seq;
                    self.doc.full_seq = seq;
                    self.doc.checkpoint = None;
                    self.since_full = 0;
                    self.full_size = size;
                    wh.put_meta_json(&doc(&self.doc.view), &self.doc).await?;
                    self.clean(previous_full).await;
                } else {
                    self.since_full += size;
                    wh.put_meta_json(&doc(&self.doc.view), &self.doc).await?;
                }
            }
            Backend::Redis { prefix, .. } => {
                let redis = self.store.redis.as_ref().ok_or_else(|| {
                    Error::Internal("the Redis online store is not set up".into())
                })?;
                let now = chrono::Utc::now().timestamp_micros();
                let key_prefix = redis_prefix(prefix, &self.doc.view, &self.doc.definition);
                let mut conn = redis.conn().await?;
                let mut key = Vec::new();
                for (k, change) in &changes {
                    key.clear();
                    key.extend_from_slice(&key_prefix);
                    key.extend_from_slice(k);
                    // Kept until its newest event leaves the longest window
                    // (and the allowed lateness), plus a minute for clocks.
                    let ttl_ms = state
                        .entity_newest_us(k)
                        .map(|t| {
                            t.saturating_add(state.max_window_us())
                                .saturating_add(self.doc.allowed_lateness_us)
                                .saturating_sub(now)
                                / 1000
                                + 60_000
                        })
                        .filter(|ttl| *ttl > 0);
                    match (change, ttl_ms) {
                        (Change::Replace(b), Some(ttl)) => {
                            let ttl = ttl.to_string();
                            conn.queue(&[b"SET", &key, b, b"PX", ttl.as_bytes()]);
                        }
                        (Change::Append(b), Some(ttl)) => {
                            let ttl = ttl.to_string();
                            conn.queue(&[b"APPEND", &key, b]);
                            conn.queue(&[b"PEXPIRE", &key, ttl.as_bytes()]);
                        }
                        _ => conn.queue(&[b"DEL", &key]),
                    }
                    if conn.queued() >= 2_000 {
                        conn.flush().await?;
                    }
                }
                conn.flush().await?;
                redis.give_back(conn);
                if full || self.doc.seq == 0 {
                    self.doc.seq += 1;
                    self.store
                        .warehouse
                        .put_meta_json(&doc(&self.doc.view), &self.doc)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes the files readers no longer need: other generations, and
    /// files of this one before the previous full file (a reader that was
    /// reading them goes to the newest full file).
    async fn clean(&self, keep_from: u64) {
        let wh = &self.store.warehouse;
        let dir = format!("{DIR}/{}/", self.doc.view);
        let Ok(paths) = wh.list_meta(&format!("{DIR}/{}", self.doc.view)).await else {
            return;
        };
        for p in paths {
            let Some(rest) = p.strip_prefix(&dir) else {
                continue;
            };
            let mut parts = rest.split('/');
            let (Some(g), Some(f)) = (parts.next(), parts.next()) else {
                continue;
            };
            let gen: Option<u64> = g.parse().ok();
            let seq: Option<u64> = f
                .strip_suffix(".arrow")
                .map(|s| s.strip_prefix("full-").unwrap_or(s))
                .and_then(|s| s.parse().ok());
            let stale = match (gen, seq) {
                (Some(g), _) if g < self.doc.generation => true,
                (Some(g), Some(s)) if g == self.doc.generation => s < keep_from,
                _ => false,
            };
            if stale {
                if let Err(e) = wh.delete_meta(&p).await {
                    tracing::debug!("deleting {p}: {e}");
                }
            }
        }
    }
}

async fn create(wh: &Warehouse, rel: &str, body: &[u8]) -> Result<bool> {
    wh.create_meta_bytes(rel, body.to_vec()).await
}

/// A reader's copy of one view's embedded files.
#[derive(Debug, Default)]
struct Files {
    generation: u64,
    /// The next file to read.
    next: u64,
    /// Key bytes → the entity's event records.
    map: HashMap<Box<[u8]>, Vec<u8>>,
    /// The newest file the state document named when last read.
    doc_seq: u64,
    /// When the files were last probed.
    probed: Option<Instant>,
}

/// What a reader keeps per view.
#[derive(Debug)]
pub(crate) struct ReaderView {
    pub doc: StreamOnlineState,
    pub template: StreamAggState,
    keys: KeyCodec,
    files: tokio::sync::Mutex<Files>,
    doc_read: Mutex<Instant>,
}

/// The stream views this process reads.
#[derive(Debug, Default)]
pub(crate) struct StreamReaders {
    views: Mutex<HashMap<String, Arc<ReaderView>>>,
}

impl OnlineStore {
    /// The state document of a stream view, if `sluice stream` ever wrote it.
    pub async fn stream_state(&self, view: &str) -> Result<Option<StreamOnlineState>> {
        if !crate::warehouse::is_identifier(view) {
            return Ok(None);
        }
        self.warehouse.get_meta_json(&doc(view)).await
    }

    /// Every stream view's state document.
    pub async fn stream_states(&self) -> Result<Vec<StreamOnlineState>> {
        let mut out = Vec::new();
        for name in self.warehouse.list_meta_json(DIR).await? {
            if name.contains('/') {
                continue;
            }
            if let Some(s) = self.stream_state(&name).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// A reader of `doc`'s view (built once per definition).
    pub(crate) async fn stream_reader(&self, doc: StreamOnlineState) -> Result<Arc<ReaderView>> {
        if let Some(r) = self
            .streams
            .views
            .lock()
            .ok()
            .and_then(|v| v.get(&doc.view).cloned())
        {
            if r.doc.definition == doc.definition && r.doc.backend == doc.backend {
                return Ok(r);
            }
        }
        if doc.backend != self.backend.label() {
            return Err(Error::Sql(format!(
                "online view `{}` is kept by `sluice stream` in {}, but the store is now {}; restart `sluice stream`",
                doc.view,
                doc.backend,
                self.backend.label()
            )));
        }
        let (schema, table) = source_table(&doc.source, "")?;
        let source_schema = table_schema(&self.warehouse, &schema, &table).await?;
        let spec = StreamAggSpec::parse(&doc.table, &doc.sql, &doc.entities, &doc.event_timestamp)?;
        let mut template = StreamAggState::new(
            spec,
            source_schema,
            StreamAggOptions {
                allowed_lateness_us: doc.allowed_lateness_us,
            },
        )?;
        // Each lookup decodes its entities into a fresh state: tiles would
        // cost more than the one value they serve.
        template.keep_tiles(false);
        let reader = Arc::new(ReaderView {
            keys: KeyCodec::new(template.entity_fields())?,
            template,
            files: tokio::sync::Mutex::new(Files::default()),
            doc_read: Mutex::new(Instant::now()),
            doc,
        });
        if let Ok(mut v) = self.streams.views.lock() {
            v.insert(reader.doc.view.clone(), reader.clone());
        }
        Ok(reader)
    }

    /// The state bytes of `keys` in a stream view (`None`: nothing held).
    async fn stream_lookup(
        &self,
        reader: &ReaderView,
        keys: &[Vec<ScalarValue>],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = reader.keys.rows(keys)?;
        match &self.backend {
            Backend::Redis { prefix, .. } => {
                let redis = self.redis.as_ref().ok_or_else(|| {
                    Error::Internal("the Redis online store is not set up".into())
                })?;
                let key_prefix = redis_prefix(prefix, &reader.doc.view, &reader.doc.definition);
                let full: Vec<Vec<u8>> = rows
                    .iter()
                    .map(|k| {
                        let mut v = key_prefix.clone();
                        v.extend_from_slice(k.as_ref());
                        v
                    })
                    .collect();
                let mut args: Vec<&[u8]> = Vec::with_capacity(full.len() + 1);
                args.push(b"MGET");
                args.extend(full.iter().map(Vec::as_slice));
                let mut conn = redis.conn().await?;
                let reply = conn.call(&args).await?;
                redis.give_back(conn);
                match reply {
                    Reply::Array(items) => Ok(items.into_iter().map(Reply::into_bytes).collect()),
                    other => Err(storage_err(
                        self,
                        format!("unexpected MGET reply {other:?}"),
                    )),
                }
            }
            Backend::Embedded => {
                let mut files = reader.files.lock().await;
                self.refresh(reader, &mut files).await?;
                Ok(rows
                    .iter()
                    .map(|k| {
                        files
                            .map
                            .get(k.as_ref())
                            .filter(|v| !v.is_empty())
                            .map(|v| v.to_vec())
                    })
                    .collect())
            }
        }
    }

    /// Brings a reader's copy of the embedded files up to date: the files
    /// after the last one read, and (every [`DOC_EVERY`]) the state document,
    /// for a new generation or files deleted before this reader read them.
    async fn refresh(&self, reader: &ReaderView, files: &mut Files) -> Result<()> {
        let due = reader
            .doc_read
            .lock()
            .map(|t| t.elapsed() >= DOC_EVERY)
            .unwrap_or(true);
        let remote = self.warehouse.root().scheme() != "file";
        if remote
            && !due
            && files.generation != 0
            && files.probed.is_some_and(|t| t.elapsed() < PROBE_EVERY)
        {
            return Ok(());
        }
        files.probed = Some(Instant::now());
        if files.generation == 0 || due {
            self.read_doc(reader, files).await?;
        }
        self.read_files(reader, files).await?;
        // A file the document named is gone (cleaned after a newer
        // checkpoint while this reader was behind): start again from the
        // newest checkpoint.
        if files.next <= files.doc_seq {
            self.read_doc_and_reset(reader, files, true).await?;
            self.read_files(reader, files).await?;
        }
        Ok(())
    }

    async fn read_doc(&self, reader: &ReaderView, files: &mut Files) -> Result<()> {
        self.read_doc_and_reset(reader, files, false).await
    }

    /// Reads the state document; starts over from its newest checkpoint when
    /// the generation changed (a restarted `sluice stream`) or `reset`.
    async fn read_doc_and_reset(
        &self,
        reader: &ReaderView,
        files: &mut Files,
        reset: bool,
    ) -> Result<()> {
        if let Ok(mut t) = reader.doc_read.lock() {
            *t = Instant::now();
        }
        let Some(d) = self.stream_state(&reader.doc.view).await? else {
            return Ok(());
        };
        files.doc_seq = d.seq;
        if d.generation == files.generation && !reset {
            return Ok(());
        }
        files.generation = d.generation;
        files.map.clear();
        // The newest full point: a checkpoint beside the files, or a full
        // file in them (the first of a generation, or one written after a
        // failed write).
        files.next = d.full_seq;
        if d.checkpoint == Some(d.full_seq) {
            let rel = checkpoint_file(&reader.doc.view, d.generation, d.full_seq);
            if let Some(bytes) = self.warehouse.get_meta_bytes(&rel).await? {
                apply_file(files, &bytes, &reader.doc.view, &rel)?;
                files.next = d.full_seq + 1;
            }
        }
        Ok(())
    }

    async fn read_files(&self, reader: &ReaderView, files: &mut Files) -> Result<()> {
        let view = &reader.doc.view;
        loop {
            let rel = file(view, files.generation, files.next);
            let Some(bytes) = self.warehouse.get_meta_bytes(&rel).await? else {
                break;
            };
            apply_file(files, &bytes, view, &rel)?;
            files.next += 1;
        }
        Ok(())
    }

    /// The values of `keys` in a stream view as of `at_us` (now, for
    /// lookups): the entity columns, the aggregates, `_event_time` (`at_us`)
    /// and `_status` (`present` when the store holds events of the entity,
    /// else `not_found`: count 0 and NULL aggregates, as a training set gives
    /// an entity with no event in its windows).
    pub(crate) async fn stream_values(
        &self,
        reader: &ReaderView,
        keys: &[Vec<ScalarValue>],
        at_us: i64,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let found = self.stream_lookup(reader, keys).await?;
        let rows = reader.keys.rows(keys)?;
        let mut state = reader.template.empty_like()?;
        for (i, bytes) in found.iter().enumerate() {
            if let Some(b) = bytes {
                state.decode_events(rows.row(i).as_ref(), b)?;
            }
        }
        let key_cols = reader.keys.columns(keys)?;
        let names = &reader.doc.entities;
        let key_batch = RecordBatch::try_new(
            Arc::new(Schema::new(reader.keys.fields.clone())),
            key_cols.clone(),
        )
        .map_err(|e| Error::Internal(format!("keys: {e}")))?;
        debug_assert_eq!(names.len(), key_cols.len());
        let values = state.values(&key_batch, at_us)?;
        let mut status = StringBuilder::with_capacity(keys.len(), keys.len() * 8);
        for i in 0..keys.len() {
            let recent = state
                .entity_newest_us(rows.row(i).as_ref())
                .is_some_and(|t| t > at_us.saturating_sub(state.max_window_us()));
            status.append_value(if recent { "present" } else { "not_found" });
        }
        let mut columns: Vec<ArrayRef> = values.columns().to_vec();
        let times = TimestampMicrosecondArray::from(vec![at_us; keys.len()]);
        let times = match schema.field(columns.len()).data_type() {
            DataType::Timestamp(_, Some(tz)) => times.with_timezone(tz.clone()),
            _ => times,
        };
        columns.push(Arc::new(times));
        columns.push(Arc::new(status.finish()));
        RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::Internal(format!("online rows: {e}")))
    }
}

/// Applies one embedded file (changes, or everything when it is full).
fn apply_file(files: &mut Files, bytes: &bytes::Bytes, view: &str, rel: &str) -> Result<()> {
    let mut map = embedded::decode(bytes).map_err(|e| {
        Error::Sql(format!(
            "online view `{view}`: `_sluice/{rel}` is unreadable ({e}); restart `sluice stream`"
        ))
    })?;
    if map.remove(FULL).is_some() {
        files.map.clear();
    }
    for (k, v) in map {
        match v.split_first() {
            Some((&APPEND, events)) => {
                files.map.entry(k).or_default().extend_from_slice(events);
            }
            Some((&REPLACE, events)) => {
                files.map.insert(k, events.to_vec());
            }
            _ => {
                files.map.remove(&k);
            }
        }
    }
    Ok(())
}

/// Merges one embedded file into `merged` (key bytes → stored value: the
/// `REPLACE` tag, then the entity's events), for a checkpoint.
fn merge_file(
    merged: &mut HashMap<Box<[u8]>, Vec<u8>, ahash::RandomState>,
    bytes: &bytes::Bytes,
    view: &str,
    rel: &str,
) -> Result<()> {
    let unreadable = |e: datafusion::arrow::error::ArrowError| {
        Error::Sql(format!(
            "online view `{view}`: `_sluice/{rel}` is unreadable ({e}); restart `sluice stream`"
        ))
    };
    // A full file replaces everything (its marker may be anywhere in it).
    let mut full = false;
    embedded::for_each_entry(bytes, |k, _| full |= k == FULL).map_err(unreadable)?;
    if full {
        merged.clear();
    }
    embedded::for_each_entry(bytes, |k, v| {
        if k == FULL {
            return;
        }
        match v.split_first() {
            Some((&APPEND, events)) => match merged.get_mut(k) {
                Some(stored) => stored.extend_from_slice(events),
                None => {
                    let mut stored = Vec::with_capacity(events.len() + 1);
                    stored.push(REPLACE);
                    stored.extend_from_slice(events);
                    merged.insert(k.into(), stored);
                }
            },
            Some((&REPLACE, _)) => {
                merged.insert(k.into(), v.to_vec());
            }
            _ => {
                merged.remove(k);
            }
        }
    })
    .map_err(unreadable)
}

/// The columns of `online.<view>` for a stream view: the entity columns, the
/// aggregates, `_event_time` (the instant the values are for) and `_status`.
pub(crate) fn output_schema(reader: &ReaderView) -> SchemaRef {
    let out = reader.template.output_schema();
    let mut fields: Vec<Field> = out
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let tz = reader.template.event_timezone();
    fields.push(Field::new(
        "_event_time",
        DataType::Timestamp(TimeUnit::Microsecond, tz),
        true,
    ));
    fields.push(Field::new("_status", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(entries: &[(&[u8], u8, &[u8])], full: bool) -> bytes::Bytes {
        let mut map = Map::default();
        if full {
            map.insert(FULL.into(), b"full".to_vec().into());
        }
        for (k, tag, events) in entries {
            let mut v = vec![*tag];
            v.extend_from_slice(events);
            map.insert((*k).into(), v.into());
        }
        bytes::Bytes::from(embedded::encode(&map).unwrap())
    }

    /// A checkpoint merged from files holds what a reader following the
    /// same files holds.
    #[test]
    fn checkpoint_merge_equals_what_readers_apply() {
        let files = [
            file_of(&[(b"a", REPLACE, b"11"), (b"b", REPLACE, b"22")], true),
            file_of(
                &[
                    (b"a", APPEND, b"3"),
                    (b"c", APPEND, b"4"),
                    (b"b", DELETE, b""),
                ],
                false,
            ),
            file_of(&[(b"c", REPLACE, b"55"), (b"d", APPEND, b"6")], false),
            // A full file in the chain (after a failed write) replaces all.
            file_of(&[(b"d", REPLACE, b"7"), (b"e", REPLACE, b"8")], true),
            file_of(&[(b"e", APPEND, b"9"), (b"d", DELETE, b"")], false),
        ];
        for upto in 1..=files.len() {
            let mut reader = Files::default();
            let mut merged = HashMap::default();
            for f in &files[..upto] {
                apply_file(&mut reader, f, "v", "f").unwrap();
                merge_file(&mut merged, f, "v", "f").unwrap();
            }
            // The checkpoint, read back as a reader starting from it would.
            let body = embedded::encode_entries(
                std::iter::once((Box::<[u8]>::from(FULL), b"full".to_vec())).chain(merged),
                0,
            )
            .unwrap();
            let mut fresh = Files::default();
            apply_file(&mut fresh, &bytes::Bytes::from(body), "v", "cp").unwrap();
            assert_eq!(fresh.map, reader.map, "after {upto} files");
        }
        let mut merged = HashMap::default();
        for f in &files {
            merge_file(&mut merged, f, "v", "f").unwrap();
        }
        assert_eq!(merged.len(), 1);
        assert_eq!(
            merged.get(b"e".as_slice()).unwrap(),
            &vec![REPLACE, b'8', b'9']
        );
        assert!(merge_file(&mut merged, &bytes::Bytes::from_static(b"nope"), "v", "f").is_err());
    }
}
