//! Small warehouse tables kept decoded in memory, one entry per table at one
//! Delta version, within a byte budget (least recently used out first).
//!
//! A server answering many small queries (prepared lookups, dimension tables)
//! otherwise replays the Delta log into a scan and decodes the same Parquet
//! pages for every query. Entries are keyed by version: the catalog checks
//! for a newer commit on every query as before, so a new commit is read at
//! once and the old entry is replaced.

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Key = (String, String);

/// A table's identity at one version: its Delta table id (a dropped and
/// re-created table starts again at version 0 with a new id) and version.
pub(super) type Stamp = (String, u64);

/// Tables whose data files total more than `budget / LOAD_FRACTION` bytes are
/// not loaded (decoded Arrow is usually a few times the ZSTD Parquet size).
const LOAD_FRACTION: u64 = 8;

#[derive(Default)]
pub(super) struct TableCache {
    budget: usize,
    used: usize,
    tick: u64,
    entries: HashMap<Key, Entry>,
    /// Versions not to try again (too large once decoded, or failed to load).
    skip: HashSet<(Key, Stamp)>,
    /// Tables being loaded right now (other queries read Delta meanwhile),
    /// since when: a load whose query was cancelled is retried after a while.
    loading: HashMap<Key, Instant>,
}

struct Entry {
    stamp: Stamp,
    provider: Arc<dyn TableProvider>,
    bytes: usize,
    used_at: u64,
}

impl TableCache {
    pub(super) fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.evict(0);
    }

    pub(super) fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// The cached provider of `key` at `version`.
    pub(super) fn get(&mut self, key: &Key, stamp: &Stamp) -> Option<Arc<dyn TableProvider>> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(key)?;
        if &e.stamp != stamp {
            return None;
        }
        e.used_at = tick;
        Some(e.provider.clone())
    }

    /// Whether to load `key` at `version` (data files of `file_bytes` in all);
    /// when true the caller must end with [`TableCache::insert`] or
    /// [`TableCache::failed`].
    pub(super) fn should_load(&mut self, key: &Key, stamp: &Stamp, file_bytes: u64) -> bool {
        if self.budget == 0
            || file_bytes > self.budget as u64 / LOAD_FRACTION
            || self
                .loading
                .get(key)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
            || self.skip.contains(&(key.clone(), stamp.clone()))
        {
            return false;
        }
        self.loading.insert(key.clone(), Instant::now());
        true
    }

    pub(super) fn insert(
        &mut self,
        key: Key,
        stamp: Stamp,
        provider: Arc<dyn TableProvider>,
        bytes: usize,
    ) {
        self.loading.remove(&key);
        if let Some(old) = self.entries.remove(&key) {
            self.used -= old.bytes;
        }
        if bytes > self.budget / 2 {
            self.skip_version(key, stamp);
            return;
        }
        self.evict(bytes);
        self.tick += 1;
        self.used += bytes;
        self.entries.insert(
            key,
            Entry {
                stamp,
                provider,
                bytes,
                used_at: self.tick,
            },
        );
    }

    /// A load that did not start (the Delta scan could not be planned).
    pub(super) fn abandon(&mut self, key: &Key) {
        self.loading.remove(key);
    }

    pub(super) fn failed(&mut self, key: &Key, stamp: &Stamp) {
        self.loading.remove(key);
        self.skip_version(key.clone(), stamp.clone());
    }

    /// Drops `key`'s entry (this process replaced or dropped the table).
    pub(super) fn forget(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.used -= e.bytes;
        }
    }

    fn skip_version(&mut self, key: Key, stamp: Stamp) {
        if self.skip.len() > 4096 {
            self.skip.clear();
        }
        self.skip.insert((key, stamp));
    }

    /// Drops least recently used entries until `incoming` more bytes fit.
    fn evict(&mut self, incoming: usize) {
        while self.used + incoming > self.budget && !self.entries.is_empty() {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used_at)
                .map(|(k, _)| k.clone());
            let Some(k) = oldest else { break };
            if let Some(e) = self.entries.remove(&k) {
                self.used -= e.bytes;
            }
        }
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        self.used
    }
}

/// Reads all of `provider` (a Delta table) into memory: the provider and its
/// size in bytes.
pub(super) async fn load(
    provider: Arc<dyn TableProvider>,
    state: &SessionState,
) -> DfResult<(InMemoryTable, usize)> {
    let schema = provider.schema();
    let plan = provider.scan(state, None, &[], None).await?;
    let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
    let batches: Vec<RecordBatch> = batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            if b.schema() == schema {
                Ok(b)
            } else {
                // Same columns, other field metadata or nullability: the
                // table's schema is what queries were planned with.
                RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(|e| {
                    DataFusionError::Internal(format!("cached scan schema differs: {e}"))
                })
            }
        })
        .collect::<DfResult<_>>()?;
    let bytes = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let table = MemTable::try_new(schema, vec![batches.clone()])?;
    Ok((InMemoryTable(table, batches), bytes))
}

/// A cached table: reads only. (A bare `MemTable` would accept INSERT,
/// UPDATE and DELETE into memory; writes go to the Delta table instead.)
#[derive(Debug)]
pub struct InMemoryTable(MemTable, Vec<RecordBatch>);

impl InMemoryTable {
    /// The table's rows (as of the Delta version it was loaded at).
    pub fn batches(&self) -> &[RecordBatch] {
        &self.1
    }
}

#[async_trait]
impl TableProvider for InMemoryTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.0.statistics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema;

    fn provider() -> Arc<dyn TableProvider> {
        Arc::new(datafusion::datasource::empty::EmptyTable::new(Arc::new(
            Schema::empty(),
        )))
    }

    fn key(t: &str) -> Key {
        ("s".to_string(), t.to_string())
    }

    fn st(version: u64) -> Stamp {
        ("table-id".to_string(), version)
    }

    #[test]
    fn off_by_default_and_bounded() {
        let mut c = TableCache::default();
        assert!(!c.should_load(&key("a"), &st(1), 10));
        c.set_budget(1000);
        // Files over budget / 8 are not loaded.
        assert!(!c.should_load(&key("a"), &st(1), 200));
        assert!(c.should_load(&key("a"), &st(1), 100));
        // Loading already: a second query reads Delta meanwhile.
        assert!(!c.should_load(&key("a"), &st(1), 100));
        c.insert(key("a"), st(1), provider(), 400);
        assert!(c.get(&key("a"), &st(1)).is_some());
        // Another version is a miss.
        assert!(c.get(&key("a"), &st(2)).is_none());
        assert!(c.should_load(&key("b"), &st(1), 100));
        c.insert(key("b"), st(1), provider(), 400);
        assert_eq!(c.used(), 800);
        // `a` was used after `b`'s load began but `b` is newer: touch `a`,
        // then a third entry evicts `b`, the least recently used.
        assert!(c.get(&key("a"), &st(1)).is_some());
        assert!(c.should_load(&key("c"), &st(1), 100));
        c.insert(key("c"), st(1), provider(), 400);
        assert!(c.get(&key("b"), &st(1)).is_none());
        assert!(c.get(&key("a"), &st(1)).is_some());
        assert_eq!(c.used(), 800);
        // A new version replaces the old entry.
        assert!(c.should_load(&key("a"), &st(2), 100));
        c.insert(key("a"), st(2), provider(), 300);
        assert!(c.get(&key("a"), &st(1)).is_none());
        assert!(c.get(&key("a"), &st(2)).is_some());
        assert_eq!(c.used(), 700);
        // Larger than half the budget once decoded: not kept, not retried.
        assert!(c.should_load(&key("d"), &st(1), 100));
        c.insert(key("d"), st(1), provider(), 600);
        assert!(c.get(&key("d"), &st(1)).is_none());
        assert!(!c.should_load(&key("d"), &st(1), 100));
        // Failed loads are not retried either; a new version is.
        assert!(c.should_load(&key("e"), &st(1), 100));
        c.failed(&key("e"), &st(1));
        assert!(!c.should_load(&key("e"), &st(1), 100));
        assert!(c.should_load(&key("e"), &st(2), 100));
        // A re-created table (new id) at the same version is a miss.
        assert!(c.get(&key("a"), &("other-id".to_string(), 2)).is_none());
        c.forget(&key("a"));
        assert!(c.get(&key("a"), &st(2)).is_none());
        assert_eq!(c.used(), 400);
        // Turning it off empties it.
        c.set_budget(0);
        assert_eq!(c.used(), 0);
        assert!(c.get(&key("c"), &st(1)).is_none());
    }
}
