//! Small warehouse tables kept decoded in memory, one entry per table at one
//! Delta version, within a byte budget (least recently used out first).
//!
//! A server answering many small queries (prepared lookups, dimension tables)
//! otherwise replays the Delta log into a scan and decodes the same Parquet
//! pages for every query. Entries are keyed by version: the catalog checks
//! for a newer commit on every query as before, so a new commit is read at
//! once and the old entry is replaced.

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::hash_utils::{create_hashes, RandomState};
use datafusion::common::Statistics;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
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
    /// Bytes of the key indexes built on the table since (counted against
    /// the budget from the next insert on).
    index_bytes: Arc<AtomicUsize>,
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
        index_bytes: Arc<AtomicUsize>,
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
                index_bytes,
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

    /// Bytes held: the tables and the key indexes built on them.
    fn held(&self) -> usize {
        let indexes: usize = self
            .entries
            .values()
            .map(|e| e.index_bytes.load(Ordering::Relaxed))
            .sum();
        self.used + indexes
    }

    /// Drops least recently used entries until `incoming` more bytes fit.
    fn evict(&mut self, incoming: usize) {
        while self.held() + incoming > self.budget && !self.entries.is_empty() {
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
    Ok((InMemoryTable::new(table, batches), bytes))
}

/// A cached table: reads only. (A bare `MemTable` would accept INSERT,
/// UPDATE and DELETE into memory; writes go to the Delta table instead.)
///
/// Rows are numbered across batches (row ids, in table order). Equality
/// lookups on a column use a key index, built on the column's first lookup
/// and kept with this version of the table: 12 bytes per row, not counted in
/// the cache's budget.
#[derive(Debug)]
pub struct InMemoryTable {
    table: MemTable,
    batches: Vec<RecordBatch>,
    /// The first row id of each batch.
    starts: Vec<usize>,
    /// Per column: its key index, once asked for.
    indexes: Vec<Arc<IndexSlot>>,
    /// Bytes of the key indexes built so far.
    index_bytes: Arc<AtomicUsize>,
}

/// Tables up to this many rows build a key index in the query asking for it;
/// larger ones build it on the blocking pool while their lookups scan.
const INLINE_INDEX_ROWS: usize = 1 << 16;

#[derive(Debug, Default)]
struct IndexSlot {
    /// The index once built (`None`: the column is not indexable).
    built: OnceLock<Option<Arc<KeyIndex>>>,
    started: AtomicBool,
}

impl InMemoryTable {
    fn new(table: MemTable, batches: Vec<RecordBatch>) -> Self {
        let mut starts = Vec::with_capacity(batches.len());
        let mut n = 0;
        for b in &batches {
            starts.push(n);
            n += b.num_rows();
        }
        let columns = table.schema().fields().len();
        InMemoryTable {
            table,
            batches,
            starts,
            indexes: (0..columns).map(|_| Arc::default()).collect(),
            index_bytes: Arc::default(),
        }
    }

    /// Bytes of the key indexes built so far (the cache counts them).
    pub(super) fn index_bytes(&self) -> Arc<AtomicUsize> {
        self.index_bytes.clone()
    }

    /// The table's rows (as of the Delta version it was loaded at).
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// The key index of column `column`; `None` when the column's type is
    /// not indexed (floating point, nested, ...) or while its index is being
    /// built. The first call builds it: in the calling thread for a table of
    /// up to 65,536 rows, else on the blocking pool (so a large table's first
    /// lookups neither wait for it nor hold a worker thread).
    pub fn key_index(&self, column: usize) -> Option<Arc<KeyIndex>> {
        let slot = self.indexes.get(column)?;
        if let Some(built) = slot.built.get() {
            return built.clone();
        }
        let rows = self.batches.iter().map(|b| b.num_rows()).sum::<usize>();
        let runtime = tokio::runtime::Handle::try_current();
        if rows <= INLINE_INDEX_ROWS || runtime.is_err() {
            return slot
                .built
                .get_or_init(|| KeyIndex::build(&self.batches, column, &self.index_bytes))
                .clone();
        }
        if !slot.started.swap(true, Ordering::AcqRel) {
            let batches = self.batches.clone();
            let slot = slot.clone();
            let counter = self.index_bytes.clone();
            if let Ok(runtime) = runtime {
                runtime.spawn_blocking(move || {
                    let _ = slot.built.set(KeyIndex::build(&batches, column, &counter));
                });
            }
        }
        None
    }

    /// The rows `ids` (ascending row ids), in that order, as one batch per
    /// batch they come from.
    pub fn rows(&self, ids: &[u32]) -> DfResult<Vec<RecordBatch>> {
        let total = self.batches.iter().map(|b| b.num_rows()).sum::<usize>();
        if ids.last().is_some_and(|&id| id as usize >= total) {
            return Err(DataFusionError::Internal(format!(
                "row id past the table's {total} rows"
            )));
        }
        let mut out = Vec::new();
        let mut rest = ids;
        while let Some(&first) = rest.first() {
            let first = first as usize;
            let b = self.starts.partition_point(|&s| s <= first) - 1;
            let end = self.starts.get(b + 1).copied().unwrap_or(usize::MAX);
            let n = rest.partition_point(|&id| (id as usize) < end);
            let start = self.starts[b] as u32;
            let take = UInt32Array::from_iter_values(rest[..n].iter().map(|id| id - start));
            out.push(take_record_batch(&self.batches[b], &take)?);
            rest = &rest[n..];
        }
        Ok(out)
    }
}

/// Row ids by the hash of one column's value, sorted by hash: the candidate
/// rows of an equality lookup. A hash can be shared by other values, so the
/// caller still evaluates its condition on the candidates.
#[derive(Debug)]
pub struct KeyIndex {
    hashes: Vec<u64>,
    rows: Vec<u32>,
}

/// Hashes of indexed values (DataFusion's own hashing, fixed seed).
fn key_hashes(values: &dyn Array, out: &mut Vec<u64>) -> DfResult<()> {
    out.clear();
    out.resize(values.len(), 0);
    create_hashes([values], &RandomState::with_seed(0), out)?;
    Ok(())
}

impl KeyIndex {
    /// Types whose equality is equality of their hashed values (not floats:
    /// `0.0 = -0.0`).
    pub fn indexes(t: &DataType) -> bool {
        t.is_integer()
            || matches!(
                t,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::FixedSizeBinary(_)
                    | DataType::Date32
                    | DataType::Date64
                    | DataType::Timestamp(_, _)
                    | DataType::Time32(_)
                    | DataType::Time64(_)
                    | DataType::Decimal128(_, _)
                    | DataType::Decimal256(_, _)
            )
    }

    /// The index of `column`, its bytes added to `counter`.
    fn build(batches: &[RecordBatch], column: usize, counter: &AtomicUsize) -> Option<Arc<Self>> {
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        if u32::try_from(total).is_err() {
            return None;
        }
        let mut pairs = Vec::with_capacity(total);
        let mut hashes = Vec::new();
        let mut next = 0u32;
        for b in batches {
            let values = b.columns().get(column)?;
            if !Self::indexes(values.data_type()) {
                return None;
            }
            key_hashes(values.as_ref(), &mut hashes).ok()?;
            for (i, &h) in hashes.iter().enumerate() {
                // Nulls equal nothing.
                if values.is_valid(i) {
                    pairs.push((h, next + i as u32));
                }
            }
            next += b.num_rows() as u32;
        }
        pairs.sort_unstable();
        let (hashes, rows): (Vec<u64>, Vec<u32>) = pairs.into_iter().unzip();
        counter.fetch_add(hashes.len() * 12, Ordering::Relaxed);
        Some(Arc::new(KeyIndex { hashes, rows }))
    }

    /// Adds the candidate rows for `values` (of the column's type) to `out`,
    /// unordered and possibly repeated.
    pub fn candidates(&self, values: &dyn Array, out: &mut Vec<u32>) -> DfResult<()> {
        let mut hashes = Vec::new();
        key_hashes(values, &mut hashes)?;
        for (i, &h) in hashes.iter().enumerate() {
            if values.is_null(i) {
                continue;
            }
            let from = self.hashes.partition_point(|&x| x < h);
            let to = from + self.hashes[from..].partition_point(|&x| x == h);
            out.extend_from_slice(&self.rows[from..to]);
        }
        Ok(())
    }
}

#[async_trait]
impl TableProvider for InMemoryTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
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
        self.table.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.table.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.table.statistics()
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

    /// Key lookups through the index find exactly the rows a scan finds:
    /// over several batches, repeated keys, nulls, strings, several values,
    /// a value absent; floats are not indexed.
    #[test]
    fn key_index_finds_what_a_scan_finds() {
        use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
        use datafusion::arrow::datatypes::Field;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let mut batches = Vec::new();
        let mut all: Vec<(Option<i64>, Option<String>)> = Vec::new();
        for (b, size) in [3usize, 1, 7, 5].into_iter().enumerate() {
            let ids: Vec<Option<i64>> = (0..size)
                .map(|i| ((i + b) % 4 != 3).then_some(((i * 7 + b * 3) % 6) as i64))
                .collect();
            let names: Vec<Option<String>> = ids
                .iter()
                .map(|id| id.map(|v| format!("n{}", v % 3)))
                .collect();
            all.extend(ids.iter().cloned().zip(names.iter().cloned()));
            let cols: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
                Arc::new(Float64Array::from(vec![1.0; size])),
            ];
            batches.push(RecordBatch::try_new(schema.clone(), cols).unwrap());
        }
        let mem = MemTable::try_new(schema, vec![batches.clone()]).unwrap();
        let table = InMemoryTable::new(mem, batches);
        assert!(table.key_index(2).is_none(), "floats are not indexed");
        let lookup = |column: usize, values: ArrayRef| -> Vec<u32> {
            let index = table.key_index(column).unwrap();
            let mut ids = Vec::new();
            index.candidates(values.as_ref(), &mut ids).unwrap();
            ids.sort_unstable();
            ids.dedup();
            // Candidates must be checked: keep the rows whose value matches.
            let rows = table.rows(&ids).unwrap();
            let mut found = Vec::new();
            let mut k = 0;
            for b in &rows {
                for r in 0..b.num_rows() {
                    let cell = b.column(column);
                    let hit = (0..values.len()).any(|v| {
                        values.is_valid(v)
                            && cell.is_valid(r)
                            && datafusion::arrow::compute::kernels::cmp::eq(
                                &cell.slice(r, 1),
                                &values.slice(v, 1),
                            )
                            .unwrap()
                            .value(0)
                    });
                    if hit {
                        found.push(ids[k]);
                    }
                    k += 1;
                }
            }
            assert_eq!(k, ids.len());
            found
        };
        for key in 0..7i64 {
            let want: Vec<u32> = (0..all.len() as u32)
                .filter(|&i| all[i as usize].0 == Some(key))
                .collect();
            let got = lookup(0, Arc::new(Int64Array::from(vec![key])));
            assert_eq!(got, want, "id = {key}");
        }
        let want: Vec<u32> = (0..all.len() as u32)
            .filter(|&i| matches!(all[i as usize].0, Some(1) | Some(4)))
            .collect();
        assert!(!want.is_empty());
        let got = lookup(
            0,
            Arc::new(Int64Array::from(vec![Some(4), None, Some(1), Some(4)])),
        );
        assert_eq!(got, want, "id IN (4, NULL, 1, 4)");
        let want: Vec<u32> = (0..all.len() as u32)
            .filter(|&i| all[i as usize].1.as_deref() == Some("n2"))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(lookup(1, Arc::new(StringArray::from(vec!["n2"]))), want);
        assert!(lookup(1, Arc::new(StringArray::from(vec!["zz"]))).is_empty());
        // Row ids past the table are refused, not a panic.
        assert!(table.rows(&[all.len() as u32]).is_err());
    }

    /// A large table's index is built on the blocking pool: lookups meanwhile
    /// get no index (and scan), then the built one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn large_key_index_builds_in_the_background() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::Field;
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batches: Vec<RecordBatch> = (0..4)
            .map(|b| {
                let ids = Int64Array::from_iter_values((0..50_000).map(|i| (b * 50_000 + i) / 2));
                RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)]).unwrap()
            })
            .collect();
        let mem = MemTable::try_new(schema, vec![batches.clone()]).unwrap();
        let table = InMemoryTable::new(mem, batches);
        assert!(table.key_index(0).is_none(), "built inline");
        let mut index = None;
        for _ in 0..600 {
            index = table.key_index(0);
            if index.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let index = index.expect("the index was not built in 30 s");
        let mut ids = Vec::new();
        index
            .candidates(&Int64Array::from(vec![70_001]), &mut ids)
            .unwrap();
        ids.sort_unstable();
        assert_eq!(ids, vec![140_002, 140_003]);
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
        c.insert(key("a"), st(1), provider(), 400, Arc::default());
        assert!(c.get(&key("a"), &st(1)).is_some());
        // Another version is a miss.
        assert!(c.get(&key("a"), &st(2)).is_none());
        assert!(c.should_load(&key("b"), &st(1), 100));
        c.insert(key("b"), st(1), provider(), 400, Arc::default());
        assert_eq!(c.used(), 800);
        // `a` was used after `b`'s load began but `b` is newer: touch `a`,
        // then a third entry evicts `b`, the least recently used.
        assert!(c.get(&key("a"), &st(1)).is_some());
        assert!(c.should_load(&key("c"), &st(1), 100));
        c.insert(key("c"), st(1), provider(), 400, Arc::default());
        assert!(c.get(&key("b"), &st(1)).is_none());
        assert!(c.get(&key("a"), &st(1)).is_some());
        assert_eq!(c.used(), 800);
        // A new version replaces the old entry.
        assert!(c.should_load(&key("a"), &st(2), 100));
        c.insert(key("a"), st(2), provider(), 300, Arc::default());
        assert!(c.get(&key("a"), &st(1)).is_none());
        assert!(c.get(&key("a"), &st(2)).is_some());
        assert_eq!(c.used(), 700);
        // Larger than half the budget once decoded: not kept, not retried.
        assert!(c.should_load(&key("d"), &st(1), 100));
        c.insert(key("d"), st(1), provider(), 600, Arc::default());
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

    /// Key indexes built on a cached table count against the budget: they
    /// push older tables out at the next insert.
    #[test]
    fn key_indexes_count_against_the_budget() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::Field;
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..25))],
        )
        .unwrap();
        let table = InMemoryTable::new(
            MemTable::try_new(schema, vec![vec![batch.clone()]]).unwrap(),
            vec![batch],
        );
        let mut c = TableCache::default();
        c.set_budget(1000);
        assert!(c.should_load(&key("a"), &st(1), 10));
        c.insert(key("a"), st(1), provider(), 300, Arc::default());
        assert!(c.should_load(&key("t"), &st(1), 10));
        c.insert(key("t"), st(1), provider(), 300, table.index_bytes());
        // 600 of 1000 held: 400 more fit.
        assert!(c.should_load(&key("b"), &st(1), 10));
        c.insert(key("b"), st(1), provider(), 350, Arc::default());
        assert!(c.get(&key("a"), &st(1)).is_some());
        assert!(c.get(&key("t"), &st(1)).is_some());
        // 40 more bytes fit in 950, but not with an index on `t` (25 rows,
        // 12 bytes each): the least recently used (`b`) goes.
        assert!(table.key_index(0).is_some());
        assert_eq!(table.index_bytes().load(Ordering::Relaxed), 300);
        assert!(c.should_load(&key("d"), &st(1), 10));
        c.insert(key("d"), st(1), provider(), 40, Arc::default());
        assert!(
            c.get(&key("b"), &st(1)).is_none(),
            "the index was not counted"
        );
        assert!(c.get(&key("t"), &st(1)).is_some());
        assert!(c.held() <= 1000);
    }
}
