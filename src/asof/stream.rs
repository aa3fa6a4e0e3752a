//! Stream mode of the AS OF join: when the left side of a partition is the
//! smaller one (a training set's labels against the feature history), index
//! the left rows by key with their times sorted, then read the right side once
//! as a stream. Memory is the left side plus, per left row, at most one right
//! row that is still a candidate: right rows nobody can match are never kept.
//!
//! Each right row has one *target*: for `>=` the first left entry of its key
//! (times ascending) with a time at or after the right time (`>`: strictly
//! after); for `<=` / `<` the last entry at or before it (strictly before).
//! Per target only the best right row is kept (latest time for `>=` / `>`,
//! earliest for `<=` / `<`, then the highest tie-break values). Right rows
//! with the same target have times between the neighbouring entries' times,
//! so once the stream ends a left entry's match is the best at its own target
//! or the nearest target before it (after it, for `<=` / `<`): one pass per
//! key. Every right row costs one key lookup (a hash probe, or one load for
//! dense integer keys) and one binary search, whatever the order of either
//! input. Rows that stop being a target's best are dropped by compacting the
//! kept rows when they pass the live ones by three times the entries.

use super::node::{AsOfKind, AsOfOp};
use super::probe::{plan_rebuild, ProbeSpec, Rebuild};
use datafusion::arrow::array::{
    make_comparator, new_null_array, Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{cast, interleave, take, SortOptions};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::Rows;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_plan::metrics::BaselineMetrics;
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// No key, no entry, no right row.
const NONE: u32 = u32::MAX;

fn eval(exprs: &[PhysicalExprRef], b: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(b)?.into_array(b.num_rows()))
        .collect()
}

/// One batch's key values as the index looks them up.
enum BatchKeys {
    /// A single integer key column, as Int64 (order-preserving for UInt64).
    Int(ArrayRef),
    /// Anything else in the row format; `None` without keys (one group).
    Rows(Option<Rows>),
}

impl BatchKeys {
    fn new(spec: &ProbeSpec, kcols: &[ArrayRef], int: bool) -> Result<Self> {
        Ok(if int {
            BatchKeys::Int(super::exec::times_as_i64(&kcols[0])?)
        } else if kcols.is_empty() {
            BatchKeys::Rows(None)
        } else {
            BatchKeys::Rows(Some(spec.converter.convert_columns(kcols)?))
        })
    }
}

/// Whether the keys are one integer column (looked up by value, not as bytes).
fn int_key(spec: &ProbeSpec, b: &RecordBatch) -> Result<bool> {
    use datafusion::arrow::datatypes::DataType;
    if spec.left_keys.len() != 1 {
        return Ok(false);
    }
    Ok(matches!(
        spec.left_keys[0].data_type(&b.schema())?,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    ))
}

/// Key -> value (a key number while the index is built, then the key's run of
/// entries packed as `first << 32 | len`).
enum KeyMap {
    Int(HashMap<i64, u64, ahash::RandomState>),
    /// A single integer key whose values span a small range (dense ids), once
    /// the index is built: the runs by `key - min` (0: no entries). One load
    /// per lookup instead of a hash probe.
    Dense {
        min: i64,
        runs: Vec<u64>,
    },
    Rows(HashMap<Box<[u8]>, u64, ahash::RandomState>),
}

impl KeyMap {
    /// The dense form of a built integer map whose keys span at most four
    /// slots per key (and at least 4 Ki slots are always allowed), else `None`.
    fn dense(m: &HashMap<i64, u64, ahash::RandomState>) -> Option<KeyMap> {
        let (min, max) = m
            .keys()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &k| (lo.min(k), hi.max(k)));
        let span = i128::from(max) - i128::from(min) + 1;
        if m.is_empty() || span > (4 * m.len()).max(1 << 12) as i128 {
            return None;
        }
        let mut runs = vec![0u64; span as usize];
        for (&k, &v) in m {
            runs[k.abs_diff(min) as usize] = v;
        }
        Some(KeyMap::Dense { min, runs })
    }

    fn get(&self, keys: &BatchKeys, r: usize) -> Option<u64> {
        match (self, keys) {
            (KeyMap::Int(m), BatchKeys::Int(a)) => {
                m.get(&a.as_primitive::<Int64Type>().value(r)).copied()
            }
            (KeyMap::Dense { min, runs }, BatchKeys::Int(a)) => {
                let k = a.as_primitive::<Int64Type>().value(r);
                runs.get(usize::try_from(k.checked_sub(*min)?).ok()?)
                    .copied()
                    .filter(|&v| v != 0)
            }
            (KeyMap::Rows(m), BatchKeys::Rows(rows)) => {
                let key: &[u8] = rows.as_ref().map_or(&[], |rows| rows.row(r).data());
                m.get(key).copied()
            }
            _ => None,
        }
    }

    /// Each row's run of entries (`(0, 0)` for a key not on the left or a row
    /// that is not `valid`), into `out`.
    fn runs_of(
        &self,
        keys: &BatchKeys,
        valid: Option<&NullBuffer>,
        n: usize,
        out: &mut Vec<(usize, usize)>,
    ) {
        out.clear();
        let ok = |r: usize| valid.is_none_or(|v| v.is_valid(r));
        match (self, keys) {
            (KeyMap::Int(m), BatchKeys::Int(a)) => {
                let values = a.as_primitive::<Int64Type>().values();
                out.extend(
                    (0..n).map(|r| match ok(r).then(|| m.get(&values[r])).flatten() {
                        Some(&v) => unpack(v),
                        None => (0, 0),
                    }),
                );
            }
            (KeyMap::Dense { min, runs }, BatchKeys::Int(a)) => {
                let values = a.as_primitive::<Int64Type>().values();
                // Below `min` wraps to a large offset: out of range like above.
                out.extend((0..n).map(|r| {
                    let at = usize::try_from(values[r].wrapping_sub(*min) as u64);
                    match runs.get(at.unwrap_or(usize::MAX)) {
                        Some(&v) if ok(r) => unpack(v),
                        _ => (0, 0),
                    }
                }));
            }
            _ => out.extend((0..n).map(|r| {
                ok(r)
                    .then(|| self.get(keys, r))
                    .flatten()
                    .map_or((0, 0), unpack)
            })),
        }
    }

    /// The key's value, inserting `fresh` when the key is new.
    fn get_or_insert(&mut self, keys: &BatchKeys, r: usize, fresh: u64) -> u64 {
        match (self, keys) {
            (KeyMap::Int(m), BatchKeys::Int(a)) => *m
                .entry(a.as_primitive::<Int64Type>().value(r))
                .or_insert(fresh),
            (KeyMap::Rows(m), BatchKeys::Rows(rows)) => {
                let key: &[u8] = rows.as_ref().map_or(&[], |rows| rows.row(r).data());
                match m.get(key) {
                    Some(&v) => v,
                    None => {
                        m.insert(key.into(), fresh);
                        fresh
                    }
                }
            }
            _ => fresh,
        }
    }

    /// Every key's run of entries (once the index is built), in no order.
    fn all_runs(&self) -> Vec<(usize, usize)> {
        match self {
            KeyMap::Int(m) => m.values().map(|&v| unpack(v)).collect(),
            KeyMap::Dense { runs, .. } => runs
                .iter()
                .filter(|&&v| v != 0)
                .map(|&v| unpack(v))
                .collect(),
            KeyMap::Rows(m) => m.values().map(|&v| unpack(v)).collect(),
        }
    }

    fn values_mut(&mut self) -> Box<dyn Iterator<Item = &mut u64> + '_> {
        match self {
            KeyMap::Int(m) => Box::new(m.values_mut()),
            KeyMap::Dense { runs, .. } => Box::new(runs.iter_mut().filter(|v| **v != 0)),
            KeyMap::Rows(m) => Box::new(m.values_mut()),
        }
    }
}

/// One left row with a key and a time, and the best right row seen so far
/// with this entry as its target.
#[derive(Clone, Copy)]
struct Entry {
    time: i64,
    best_time: i64,
    /// A kept-row id, or `NONE`.
    best: u32,
}

/// The left side of one partition, indexed by key.
struct LeftIndex {
    /// The left batches, in input order (emitted in that order).
    batches: VecDeque<RecordBatch>,
    /// Whether the keys are one integer column.
    int: bool,
    keys: KeyMap,
    /// Per key, one run of entries sorted by time.
    entries: Vec<Entry>,
    /// Per left row (input order): its entry, or `NONE` (a NULL key or time).
    entry_of: Vec<u32>,
}

impl LeftIndex {
    /// Runs of entries, as (first, len), in entry order.
    fn runs(&self) -> Vec<(usize, usize)> {
        let mut out = self.keys.all_runs();
        out.sort_unstable();
        out
    }
}

fn unpack(v: u64) -> (usize, usize) {
    ((v >> 32) as usize, (v & 0xffff_ffff) as usize)
}

async fn index_left(
    spec: &ProbeSpec,
    mut left: SendableRecordBatchStream,
    ahead: &mut ReadAhead,
    reservation: &MemoryReservation,
) -> Result<LeftIndex> {
    let mut batches = VecDeque::new();
    let mut keys: Option<KeyMap> = None;
    let mut int = false;
    let mut counts: Vec<u32> = Vec::new();
    let mut row_key: Vec<u32> = Vec::new();
    let mut row_time: Vec<i64> = Vec::new();
    while let Some(b) = ahead.next_left(&mut left).await.transpose()? {
        if b.num_rows() == 0 {
            continue;
        }
        // The batch, and 32 bytes per row for the index built from it.
        let need = b.get_array_memory_size() + 32 * b.num_rows();
        reservation
            .try_grow(need)
            .or_else(|e| match ahead.give_way() {
                true => reservation.try_grow(need),
                false => Err(e),
            })
            .map_err(|e| {
                DataFusionError::ResourcesExhausted(format!(
                    "AS OF join (stream mode): the left side does not fit in the memory limit \
                     ({e}); raise SLUICE_MEMORY_LIMIT or use SLUICE_ASOF_MODE=merge, which spills"
                ))
            })?;
        if row_key.len() + b.num_rows() >= NONE as usize {
            return Err(DataFusionError::ResourcesExhausted(
                "AS OF join (stream mode): more than 4 billion left rows in one partition; \
                 use SLUICE_ASOF_MODE=merge"
                    .into(),
            ));
        }
        let kcols = eval(&spec.left_keys, &b)?;
        let map = match &mut keys {
            Some(m) => m,
            None => {
                int = int_key(spec, &b)?;
                keys.insert(if int {
                    KeyMap::Int(HashMap::with_hasher(ahash::RandomState::new()))
                } else {
                    KeyMap::Rows(HashMap::with_hasher(ahash::RandomState::new()))
                })
            }
        };
        let bkeys = BatchKeys::new(spec, &kcols, int)?;
        let times =
            super::exec::times_as_i64(&spec.match_left.evaluate(&b)?.into_array(b.num_rows())?)?;
        let t = times.as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            if t.is_null(r) || kcols.iter().any(|k| k.is_null(r)) {
                row_key.push(NONE);
                row_time.push(0);
                continue;
            }
            let k = map.get_or_insert(&bkeys, r, counts.len() as u64) as u32;
            if k as usize == counts.len() {
                counts.push(0);
            }
            counts[k as usize] += 1;
            row_key.push(k);
            row_time.push(t.value(r));
        }
        batches.push_back(b);
    }
    // Entries grouped by key (counting sort), then sorted by time within a key.
    let mut runs = Vec::with_capacity(counts.len());
    let mut next = Vec::with_capacity(counts.len());
    let mut at = 0u32;
    for &c in &counts {
        runs.push((at, c));
        next.push(at);
        at += c;
    }
    let entries = at as usize;
    let mut order: Vec<(i64, u32)> = vec![(0, 0); entries];
    for (row, (&k, &t)) in row_key.iter().zip(&row_time).enumerate() {
        if k != NONE {
            let pos = next[k as usize] as usize;
            next[k as usize] += 1;
            order[pos] = (t, row as u32);
        }
    }
    drop((next, row_key, row_time));
    for &(s, n) in &runs {
        order[s as usize..(s + n) as usize].sort_unstable();
    }
    let mut keys = keys.unwrap_or(KeyMap::Rows(HashMap::default()));
    for v in keys.values_mut() {
        let (s, n) = runs[*v as usize];
        *v = u64::from(s) << 32 | u64::from(n);
    }
    if let Some(dense) = match &keys {
        KeyMap::Int(m) => KeyMap::dense(m),
        _ => None,
    } {
        keys = dense;
    }
    let mut entry_of = vec![NONE; batches.iter().map(|b| b.num_rows()).sum()];
    let mut list = Vec::with_capacity(entries);
    for (e, &(time, row)) in order.iter().enumerate() {
        entry_of[row as usize] = e as u32;
        list.push(Entry {
            time,
            best_time: 0,
            best: NONE,
        });
    }
    Ok(LeftIndex {
        batches,
        int,
        keys,
        entries: list,
        entry_of,
    })
}

/// At most this many right-side bytes are read ahead per partition while the
/// left side is indexed.
const READ_AHEAD_BYTES: usize = 16 << 20;

/// The right side, read ahead while the left side is indexed: the right
/// side's scan then runs on the cores the left side's scan leaves idle (a
/// labels file of one row group is decoded by one core). It never holds more
/// than the left side has delivered so far: a left side that is slow because
/// it is itself a busy plan (a chain of AS OF joins) gets no read-ahead until
/// its rows flow.
struct ReadAhead {
    right: SendableRecordBatchStream,
    batches: Vec<Result<RecordBatch>>,
    /// The batches read ahead, counted in the memory pool while the left side
    /// is indexed (then `stream_right` accounts for the rows it keeps).
    reservation: MemoryReservation,
    /// The left side's bytes so far.
    left_bytes: usize,
    /// Whether the right side may be read further (not ended, no error, the
    /// memory pool not refused).
    open: bool,
}

impl ReadAhead {
    fn new(right: SendableRecordBatchStream, reservation: MemoryReservation) -> Self {
        ReadAhead {
            right,
            batches: Vec::new(),
            reservation,
            left_bytes: 0,
            open: true,
        }
    }

    /// The next left batch, reading right batches while it is not ready.
    async fn next_left(
        &mut self,
        left: &mut SendableRecordBatchStream,
    ) -> Option<Result<RecordBatch>> {
        use futures::future::{select, Either};
        let next = loop {
            let room = READ_AHEAD_BYTES.min(self.left_bytes);
            if !self.open || self.reservation.size() >= room {
                break left.next().await;
            }
            match select(left.next(), self.right.next()).await {
                Either::Left((b, _)) => break b,
                Either::Right((Some(b), _)) => {
                    self.open = match &b {
                        Ok(b) => self.reservation.try_grow(b.get_array_memory_size()).is_ok(),
                        Err(_) => false,
                    };
                    self.batches.push(b);
                }
                Either::Right((None, _)) => self.open = false,
            }
        };
        if let Some(Ok(b)) = &next {
            self.left_bytes += b.get_array_memory_size();
        }
        next
    }

    /// Stops reading ahead and gives its memory back to the pool (for the
    /// left index, which comes first); whether there was any.
    fn give_way(&mut self) -> bool {
        self.open = false;
        self.reservation.free() > 0
    }

    /// The batches read ahead, then the rest of the right side.
    fn into_stream(self) -> impl futures::Stream<Item = Result<RecordBatch>> + Unpin {
        self.reservation.free();
        futures::stream::iter(self.batches).chain(self.right)
    }
}

/// Right rows whose runs are touched together before their searches.
const TOUCH_BLOCK: usize = 512;

/// Right batches kept because one of their rows is (or was) a target's best,
/// and the rows compacted out of them: the right columns the output takes,
/// then the tie-break values that are not plain right columns. Row ids count
/// through the chunks.
struct Kept {
    chunks: Vec<Vec<ArrayRef>>,
    starts: Vec<u32>,
    rows: u32,
    /// Compact when `rows` reaches this.
    compact_at: u32,
    bytes: usize,
    /// Compactions so far and their time (for the debug log).
    compactions: usize,
    compacting: std::time::Duration,
}

impl Kept {
    /// Nothing kept yet, for `entries` targets.
    fn new(entries: usize) -> Self {
        Kept {
            chunks: Vec::new(),
            starts: Vec::new(),
            rows: 0,
            compact_at: Self::next_compaction(0, entries),
            bytes: 0,
            compactions: 0,
            compacting: std::time::Duration::ZERO,
        }
    }

    fn locate(&self, id: u32) -> (usize, usize) {
        let c = self.starts.partition_point(|&s| s <= id) - 1;
        (c, (id - self.starts[c]) as usize)
    }

    fn push(&mut self, columns: Vec<ArrayRef>, rows: u32) {
        self.bytes += columns
            .iter()
            .map(|c| c.get_array_memory_size())
            .sum::<usize>();
        self.starts.push(self.rows);
        self.chunks.push(columns);
        self.rows += rows;
    }

    /// Keeps only the rows the entries point to (in one chunk, in their id
    /// order) and renumbers them. The referenced ids are marked in a bitmap
    /// (an eighth of a byte per kept row, so it stays in cache); the rows are
    /// gathered in id order, chunk after chunk, and an entry's new id is the
    /// number of marked ids before its old one.
    fn compact(&mut self, entries: &mut [Entry]) -> Result<()> {
        let started = std::time::Instant::now();
        let mut marked = vec![0u64; (self.rows as usize).div_ceil(64)];
        for e in entries.iter().filter(|e| e.best != NONE) {
            marked[(e.best / 64) as usize] |= 1 << (e.best % 64);
        }
        // Per bitmap word, the marked ids before it.
        let mut before = Vec::with_capacity(marked.len());
        let mut gathered: Vec<(usize, usize)> = Vec::new();
        let mut chunk = 0usize;
        for (w, &word) in marked.iter().enumerate() {
            before.push(gathered.len() as u32);
            let mut bits = word;
            while bits != 0 {
                let id = (w * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                while self.starts.get(chunk + 1).is_some_and(|&s| s <= id) {
                    chunk += 1;
                }
                gathered.push((chunk, (id - self.starts[chunk]) as usize));
            }
        }
        for e in entries.iter_mut().filter(|e| e.best != NONE) {
            let (w, b) = ((e.best / 64) as usize, e.best % 64);
            e.best = before[w] + (marked[w] & ((1u64 << b) - 1)).count_ones();
        }
        let width = self.chunks.first().map_or(0, |c| c.len());
        let mut columns = Vec::with_capacity(width);
        for c in 0..width {
            let sources: Vec<&dyn Array> = self.chunks.iter().map(|ch| ch[c].as_ref()).collect();
            columns.push(interleave(&sources, &gathered)?);
        }
        let live = gathered.len() as u32;
        self.chunks.clear();
        self.starts.clear();
        self.rows = 0;
        self.bytes = 0;
        if width > 0 && live > 0 {
            self.push(columns, live);
        }
        self.compact_at = Self::next_compaction(live, entries.len());
        self.compactions += 1;
        self.compacting += started.elapsed();
        Ok(())
    }

    /// When to compact next, with `live` rows kept and `entries` targets:
    /// after `3 * entries` more rows (and at least 64 Ki). A compaction costs
    /// about `entries + live <= 2 * entries`, so it costs at most 2/3 of a
    /// gather per kept row, and the kept rows stay under `4 * entries + 64 Ki`.
    fn next_compaction(live: u32, entries: usize) -> u32 {
        let entries = u32::try_from(entries).unwrap_or(u32::MAX);
        live.saturating_add(entries.saturating_mul(3))
            .saturating_add(1 << 16)
    }
}

/// Where a tie-break value is read from in the kept rows.
#[derive(Clone, Copy)]
enum TieAt {
    /// A kept right column (at this position among the kept columns).
    Kept(usize),
    /// An extra evaluated column (at this position among the kept columns).
    Extra(usize),
}

struct Right {
    /// Right column numbers kept (the `Rebuild::Held` ones).
    held: Vec<usize>,
    ties: Vec<TieAt>,
    /// Tie-break expressions that are not plain kept columns.
    extra: Vec<PhysicalExprRef>,
}

fn plan_right(spec: &ProbeSpec, rebuild: &[Rebuild]) -> Right {
    let held: Vec<usize> = (0..rebuild.len())
        .filter(|&c| rebuild[c] == Rebuild::Held)
        .collect();
    let mut extra = Vec::new();
    let ties = spec
        .tiebreak
        .iter()
        .map(|e| {
            let col = e
                .downcast_ref::<Column>()
                .and_then(|c| held.iter().position(|&h| h == c.index()));
            match col {
                Some(p) => TieAt::Kept(p),
                None => {
                    extra.push(Arc::clone(e));
                    TieAt::Extra(held.len() + extra.len() - 1)
                }
            }
        })
        .collect();
    Right { held, ties, extra }
}

/// Whether the row `a` has higher tie-break values than the row `b`, each
/// given as (columns, row).
fn beats(ties: &[TieAt], a: (&[ArrayRef], usize), b: (&[ArrayRef], usize)) -> Result<bool> {
    let opts = SortOptions {
        descending: false,
        nulls_first: true,
    };
    for t in ties {
        let (TieAt::Kept(i) | TieAt::Extra(i)) = *t;
        let cmp = make_comparator(a.0[i].as_ref(), b.0[i].as_ref(), opts)?;
        match cmp(a.1, b.1) {
            std::cmp::Ordering::Equal => continue,
            o => return Ok(o == std::cmp::Ordering::Greater),
        }
    }
    Ok(false)
}

/// Reads the right side and records each target's best right row.
async fn stream_right(
    spec: &ProbeSpec,
    plan: &Right,
    idx: &mut LeftIndex,
    mut right: impl futures::Stream<Item = Result<RecordBatch>> + Unpin,
    reservation: &MemoryReservation,
) -> Result<Kept> {
    let mut kept = Kept::new(idx.entries.len());
    let base = reservation.size();
    let later = matches!(spec.op, AsOfOp::GtEq | AsOfOp::Gt);
    if idx.entries.is_empty() {
        // No left row can match: the right side need not be read.
        return Ok(kept);
    }
    // Per row of a batch: its key's run of entries (`len` 0: no match possible).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    while let Some(b) = right.next().await.transpose()? {
        let n = b.num_rows();
        if n == 0 {
            continue;
        }
        let kcols = eval(&spec.right_keys, &b)?;
        let bkeys = BatchKeys::new(spec, &kcols, idx.int)?;
        let times = super::exec::times_as_i64(&spec.match_right.evaluate(&b)?.into_array(n)?)?;
        let t = times.as_primitive::<Int64Type>();
        // The batch's rows get ids after the kept ones; it is kept (whole, no
        // copy) if one of its rows becomes a target's best.
        let first = kept.rows;
        if u64::from(first) + n as u64 >= u64::from(NONE) {
            return Err(DataFusionError::ResourcesExhausted(
                "AS OF join (stream mode): too many right rows kept; use SLUICE_ASOF_MODE=merge"
                    .into(),
            ));
        }
        let mut columns: Vec<ArrayRef> =
            plan.held.iter().map(|&c| Arc::clone(b.column(c))).collect();
        columns.extend(eval(&plan.extra, &b)?);
        // First every row's run of entries (the key map is small and cached).
        let valid = kcols.iter().fold(t.nulls().cloned(), |acc, k| {
            NullBuffer::union(acc.as_ref(), k.nulls())
        });
        idx.keys.runs_of(&bkeys, valid.as_ref(), n, &mut runs);
        let mut won = false;
        // Then, per block of rows, touch the cache lines of their runs in a
        // tight loop of independent loads, so the CPU overlaps those misses
        // instead of waiting for each in the binary searches that follow; a
        // block's lines stay in cache until its searches.
        for block in (0..n).step_by(TOUCH_BLOCK) {
            let rows = block..(block + TOUCH_BLOCK).min(n);
            let mut touch = 0i64;
            for &(s, len) in &runs[rows.clone()] {
                let run = &idx.entries[s..s + len];
                if len <= 16 {
                    // Entries are 24 bytes: every other one lands in each line.
                    for e in run.iter().step_by(2) {
                        touch ^= e.time;
                    }
                    if let Some(e) = run.last() {
                        touch ^= e.time;
                    }
                } else {
                    touch ^= run[len / 4].time ^ run[len / 2].time ^ run[3 * len / 4].time;
                }
            }
            std::hint::black_box(touch);
            for r in rows {
                let (s, len) = runs[r];
                if len == 0 {
                    continue;
                }
                let run = &idx.entries[s..s + len];
                let rt = t.value(r);
                let target = match spec.op {
                    AsOfOp::GtEq => run.partition_point(|x| x.time < rt),
                    AsOfOp::Gt => run.partition_point(|x| x.time <= rt),
                    AsOfOp::LtEq => match run.partition_point(|x| x.time <= rt).checked_sub(1) {
                        Some(p) => p,
                        None => continue,
                    },
                    AsOfOp::Lt => match run.partition_point(|x| x.time < rt).checked_sub(1) {
                        Some(p) => p,
                        None => continue,
                    },
                };
                if target >= len {
                    continue;
                }
                let e = s + target;
                let cur = idx.entries[e].best;
                let wins = if cur == NONE {
                    true
                } else {
                    let ct = idx.entries[e].best_time;
                    if ct != rt {
                        (rt > ct) == later
                    } else if plan.ties.is_empty() {
                        false
                    } else if cur >= first {
                        beats(
                            &plan.ties,
                            (&columns, r),
                            (&columns, (cur - first) as usize),
                        )?
                    } else {
                        let (c, row) = kept.locate(cur);
                        beats(&plan.ties, (&columns, r), (&kept.chunks[c], row))?
                    }
                };
                if wins {
                    idx.entries[e].best = first + r as u32;
                    idx.entries[e].best_time = rt;
                    won = true;
                }
            }
        }
        if !won {
            continue;
        }
        kept.push(columns, n as u32);
        if kept.rows >= kept.compact_at {
            kept.compact(&mut idx.entries)?;
        }
        // The kept rows are bounded by the left side (compacted above).
        reservation.resize(base + kept.bytes);
    }
    let tail = std::time::Instant::now();
    // Each entry's match: the best at its target or the nearest target before
    // it (after it for `<=` / `<`); those have times between, so the nearest wins.
    for (s, n) in idx.runs() {
        let run = &mut idx.entries[s..s + n];
        let mut carry = (NONE, 0i64);
        let mut fill = |e: &mut Entry| {
            if e.best == NONE {
                (e.best, e.best_time) = carry;
            } else {
                carry = (e.best, e.best_time);
            }
        };
        if later {
            run.iter_mut().for_each(&mut fill);
        } else {
            run.iter_mut().rev().for_each(&mut fill);
        }
    }
    kept.compact(&mut idx.entries)?;
    reservation.resize(base + kept.bytes);
    tracing::debug!(
        "AS OF stream: {} compactions took {:?}; the final fill and compaction {:?}",
        kept.compactions,
        kept.compacting,
        tail.elapsed()
    );
    Ok(kept)
}

/// The output batch for the next left batch.
fn emit(
    spec: &ProbeSpec,
    rebuild: &[Rebuild],
    idx: &LeftIndex,
    kept: &Kept,
    batch: &RecordBatch,
    first_row: usize,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut out_left: Vec<u32> = Vec::with_capacity(n);
    let mut right_rows: Vec<Option<u32>> = Vec::with_capacity(n);
    let mut out_time: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut out_key: Vec<Option<u32>> = Vec::with_capacity(n);
    for i in 0..n {
        let e = idx.entry_of[first_row + i];
        let found = (e != NONE)
            .then(|| idx.entries[e as usize])
            .map(|x| (x.best, x.best_time, x.time))
            .filter(|&(r, rt, lt)| {
                r != NONE
                    && spec.tolerance.is_none_or(|tol| {
                        (i128::from(lt) - i128::from(rt)).abs() <= i128::from(tol)
                    })
            });
        match found {
            Some((r, rt, _)) => {
                out_left.push(i as u32);
                right_rows.push(Some(r));
                out_time.push(Some(rt));
                out_key.push(Some(i as u32));
            }
            None if spec.kind == AsOfKind::Left => {
                out_left.push(i as u32);
                right_rows.push(None);
                out_time.push(None);
                out_key.push(None);
            }
            None => {}
        }
    }
    let rows = out_left.len();
    let mut columns = super::exec::left_columns(batch, out_left)?;
    let right_at = UInt32Array::from(right_rows);
    let left_keys = if rebuild.iter().any(|r| matches!(r, Rebuild::LeftKey(_))) {
        eval(&spec.left_keys, batch)?
    } else {
        Vec::new()
    };
    let mut held = 0usize;
    for (c, f) in spec.right_schema.fields().iter().enumerate() {
        match &rebuild[c] {
            Rebuild::Held => {
                // After the final compaction every kept row is in one chunk.
                columns.push(match kept.chunks.first() {
                    Some(chunk) => take(chunk[held].as_ref(), &right_at, None)?,
                    None => new_null_array(f.data_type(), rows),
                });
                held += 1;
            }
            Rebuild::LeftKey(k) => {
                let at = UInt32Array::from(out_key.clone());
                columns.push(take(left_keys[*k].as_ref(), &at, None)?);
            }
            Rebuild::Time => {
                let t = Int64Array::from(out_time.clone());
                columns.push(cast(&t, f.data_type())?);
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(&spec.schema), columns)?)
}

/// The stream-mode output of one partition: reads the whole left side, then
/// the right side, then emits the left rows in their input order.
pub(super) fn stream(
    spec: ProbeSpec,
    left: SendableRecordBatchStream,
    right: SendableRecordBatchStream,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
    partition: usize,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
    struct State {
        spec: ProbeSpec,
        rebuild: Vec<Rebuild>,
        inputs: Option<(SendableRecordBatchStream, SendableRecordBatchStream)>,
        joined: Option<(LeftIndex, Kept)>,
        next_row: usize,
        reservation: MemoryReservation,
        baseline: BaselineMetrics,
        partition: usize,
        /// When the partition started (for the phase timings in the debug log).
        started: Option<std::time::Instant>,
    }
    let rebuild = plan_rebuild(&spec);
    let state = State {
        spec,
        rebuild,
        inputs: Some((left, right)),
        joined: None,
        next_row: 0,
        reservation,
        baseline,
        partition,
        started: None,
    };
    futures::stream::try_unfold(state, |mut st| async move {
        if let Some((left, right)) = st.inputs.take() {
            let started = *st.started.insert(std::time::Instant::now());
            let mut ahead = ReadAhead::new(right, st.reservation.new_empty());
            let mut idx = index_left(&st.spec, left, &mut ahead, &st.reservation).await?;
            let right = ahead.into_stream();
            tracing::debug!(
                "AS OF stream [{}]: left side indexed ({} entries) after {:?}",
                st.partition,
                idx.entries.len(),
                started.elapsed()
            );
            let plan = plan_right(&st.spec, &st.rebuild);
            let start = std::time::Instant::now();
            let kept = stream_right(&st.spec, &plan, &mut idx, right, &st.reservation).await?;
            st.baseline.elapsed_compute().add_elapsed(start);
            tracing::debug!(
                "AS OF stream [{}]: right side joined ({} rows kept) after {:?}",
                st.partition,
                kept.rows,
                started.elapsed()
            );
            st.joined = Some((idx, kept));
        }
        loop {
            let Some((idx, kept)) = st.joined.as_mut() else {
                return Ok(None);
            };
            let Some(batch) = idx.batches.pop_front() else {
                st.baseline.done();
                if let Some(started) = st.started {
                    tracing::debug!(
                        "AS OF stream [{}]: output emitted after {:?}",
                        st.partition,
                        started.elapsed()
                    );
                }
                return Ok(None);
            };
            let start = std::time::Instant::now();
            let out = emit(&st.spec, &st.rebuild, idx, kept, &batch, st.next_row)?;
            st.next_row += batch.num_rows();
            st.reservation
                .shrink(batch.get_array_memory_size().min(st.reservation.size()));
            st.baseline.elapsed_compute().add_elapsed(start);
            if out.num_rows() == 0 {
                continue;
            }
            st.baseline.record_output(out.num_rows());
            return Ok(Some((out, st)));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    fn entry(best: u32) -> Entry {
        Entry {
            time: 0,
            best_time: 0,
            best,
        }
    }

    /// A stream of one-column batches of `sizes` rows; each batch comes after
    /// one `Pending` when `slow` (so a read-ahead gets a chance).
    fn batches(sizes: &[usize], first: i64, slow: bool) -> SendableRecordBatchStream {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let mut next = first;
        let list: Vec<RecordBatch> = sizes
            .iter()
            .map(|&n| {
                let v: Vec<i64> = (next..next + n as i64).collect();
                next += n as i64;
                RecordBatch::try_new(Arc::clone(&schema), vec![ints(&v)]).unwrap()
            })
            .collect();
        let stream = futures::stream::iter(list).then(move |b| async move {
            if slow {
                tokio::task::yield_now().await;
            }
            Ok(b)
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }

    fn values(list: &[RecordBatch]) -> Vec<i64> {
        list.iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    /// The read-ahead holds at most about the left side's bytes so far (one
    /// batch over), never reads before the first left batch, gives way to the
    /// left index, and hands every right batch on in order.
    #[test]
    fn read_ahead_follows_the_left_side_and_keeps_the_right_order() {
        use datafusion::execution::memory_pool::{
            GreedyMemoryPool, MemoryConsumer, MemoryPool, UnboundedMemoryPool,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
            let mut left = batches(&[10; 4], 0, true);
            let right = batches(&[1000; 20], 100, false);
            let mut ahead = ReadAhead::new(right, MemoryConsumer::new("t").register(&pool));
            let one_right = batches(&[1000], 0, false)
                .next()
                .await
                .unwrap()
                .unwrap()
                .get_array_memory_size();
            let mut got_left = Vec::new();
            while let Some(b) = ahead.next_left(&mut left).await {
                got_left.push(b.unwrap());
                let held: usize = ahead
                    .batches
                    .iter()
                    .map(|b| b.as_ref().unwrap().get_array_memory_size())
                    .sum();
                assert!(
                    held <= ahead.left_bytes + one_right,
                    "{held} > {}",
                    ahead.left_bytes
                );
                assert_eq!(held, ahead.reservation.size());
            }
            assert_eq!(values(&got_left), (0..40).collect::<Vec<_>>());
            // Small left batches: a little was read ahead, not the whole right side.
            assert!(!ahead.batches.is_empty() && ahead.batches.len() < 20);
            assert!(ahead.give_way());
            assert_eq!(ahead.reservation.size(), 0);
            let rest: Vec<RecordBatch> = ahead.into_stream().map(|b| b.unwrap()).collect().await;
            assert_eq!(values(&rest), (100..20_100).collect::<Vec<_>>());

            // A memory pool that refuses: reading ahead stops, nothing is lost.
            let small: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1));
            let mut left = batches(&[4000; 3], 0, true);
            let right = batches(&[1000; 5], 100, false);
            let mut ahead = ReadAhead::new(right, MemoryConsumer::new("t").register(&small));
            while let Some(b) = ahead.next_left(&mut left).await {
                b.unwrap();
            }
            assert_eq!(ahead.batches.len(), 1);
            assert!(!ahead.open);
            let rest: Vec<RecordBatch> = ahead.into_stream().map(|b| b.unwrap()).collect().await;
            assert_eq!(values(&rest), (100..5_100).collect::<Vec<_>>());
        });
    }

    #[test]
    fn dense_integer_keys_find_the_same_runs_as_the_hash_map() {
        let build = |keys: &[i64]| {
            let mut m = HashMap::with_hasher(ahash::RandomState::new());
            for (i, &k) in keys.iter().enumerate() {
                m.insert(k, (i as u64) << 32 | 1);
            }
            m
        };
        let probe: Vec<i64> = vec![i64::MIN, -5, -4, -1, 0, 1, 2, 7, 4095, 4096, i64::MAX];
        let valid = NullBuffer::from(vec![
            true, true, true, true, false, true, true, true, true, true, true,
        ]);
        for keys in [
            vec![-4i64, 0, 1, 7],
            vec![0, 4095],
            vec![i64::MAX - 1, i64::MAX],
        ] {
            let m = build(&keys);
            let dense = KeyMap::dense(&m).expect("a small span is dense");
            let hashed = KeyMap::Int(m);
            let batch = BatchKeys::Int(Arc::new(Int64Array::from(probe.clone())));
            let (mut a, mut b) = (Vec::new(), Vec::new());
            hashed.runs_of(&batch, Some(&valid), probe.len(), &mut a);
            dense.runs_of(&batch, Some(&valid), probe.len(), &mut b);
            assert_eq!(a, b, "{keys:?}");
            for r in 0..probe.len() {
                assert_eq!(hashed.get(&batch, r), dense.get(&batch, r), "{keys:?} {r}");
            }
            let (mut ra, mut rb) = (hashed.all_runs(), dense.all_runs());
            ra.sort_unstable();
            rb.sort_unstable();
            assert_eq!(ra, rb);
        }
        // Sparse keys stay hashed.
        assert!(KeyMap::dense(&build(&[0, 1 << 40])).is_none());
        assert!(KeyMap::dense(&build(&[i64::MIN, i64::MAX])).is_none());
    }

    /// Many chunks, ids across bitmap words, rows referenced once, twice or
    /// not at all: every entry still sees its row's value, the kept rows are
    /// the distinct referenced ones in id order.
    #[test]
    fn compaction_across_chunks_and_bitmap_words() {
        let mut kept = Kept::new(0);
        // Chunk sizes 1..=70 (some cross a 64-id word, some sit inside one);
        // row id i holds the value 1000 + i.
        let mut next = 0i64;
        for size in [1usize, 63, 2, 70, 5, 64, 1, 33, 65] {
            let values: Vec<i64> = (next..next + size as i64).map(|i| 1000 + i).collect();
            kept.push(vec![ints(&values)], size as u32);
            next += size as i64;
        }
        let rows = kept.rows;
        // A deterministic scatter of references, with repeats and NONEs.
        let mut entries: Vec<Entry> = (0..400u32)
            .map(|i| match i % 7 {
                0 => entry(NONE),
                _ => entry((i * 37 + i / 3) % rows),
            })
            .collect();
        let before: Vec<u32> = entries.iter().map(|e| e.best).collect();
        kept.compact(&mut entries).unwrap();
        let mut distinct: Vec<u32> = before.iter().copied().filter(|&b| b != NONE).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(kept.rows as usize, distinct.len());
        let values = kept.chunks[0][0].as_primitive::<Int64Type>();
        let expected: Vec<i64> = distinct.iter().map(|&id| 1000 + i64::from(id)).collect();
        assert_eq!(values.values().to_vec(), expected, "kept in id order");
        for (e, &old) in entries.iter().zip(&before) {
            if old == NONE {
                assert_eq!(e.best, NONE);
            } else {
                assert_eq!(values.value(e.best as usize), 1000 + i64::from(old));
            }
        }
    }

    #[test]
    fn compaction_keeps_only_referenced_rows_and_renumbers() {
        let mut kept = Kept::new(0);
        kept.push(vec![ints(&[10, 11, 12])], 3);
        kept.push(vec![ints(&[20, 21])], 2);
        assert_eq!(kept.locate(3), (1, 0));
        // Row 4 (21) is referenced twice, row 1 (11) once, the others not at all.
        let mut entries = vec![entry(4), entry(NONE), entry(1), entry(4)];
        kept.compact(&mut entries).unwrap();
        assert_eq!(kept.rows, 2);
        assert_eq!(kept.chunks.len(), 1);
        let values = kept.chunks[0][0].as_primitive::<Int64Type>();
        let got: Vec<Option<i64>> = entries
            .iter()
            .map(|e| (e.best != NONE).then(|| values.value(e.best as usize)))
            .collect();
        assert_eq!(got, vec![Some(21), None, Some(11), Some(21)]);
        assert_eq!(kept.compact_at, 2 + 3 * 4 + (1 << 16));
        // Nothing referenced: no rows kept.
        let mut none = vec![entry(NONE)];
        kept.compact(&mut none).unwrap();
        assert_eq!((kept.rows, kept.chunks.len()), (0, 0));
    }
}
