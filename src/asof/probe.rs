//! Probe mode of the AS OF join: when the right side of a partition fits in
//! memory, index it by key (times sorted per key, ties resolved once) and look
//! every left row up with a binary search. No sort of either input, and the
//! left input's order is kept. The planner picks this mode only when the right
//! side's estimated size is well within the memory limit; otherwise the
//! sort-merge mode (whose sorts spill) runs.

use super::node::{AsOfKind, AsOfOp};
use datafusion::arrow::array::{
    make_comparator, new_null_array, Array, ArrayRef, AsArray, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{interleave, take, SortOptions};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::arrow::row::RowConverter;
use datafusion::common::Result;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_plan::metrics::BaselineMetrics;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;

/// What the probe needs from the operator.
pub(super) struct ProbeSpec {
    pub left_keys: Vec<PhysicalExprRef>,
    pub right_keys: Vec<PhysicalExprRef>,
    pub match_left: PhysicalExprRef,
    pub match_right: PhysicalExprRef,
    /// Tie-break expressions, highest wins (explicit first, else implicit).
    pub tiebreak: Vec<PhysicalExprRef>,
    pub op: AsOfOp,
    pub kind: AsOfKind,
    pub tolerance: Option<i64>,
    pub converter: Arc<RowConverter>,
    pub schema: SchemaRef,
    pub right_schema: SchemaRef,
}

/// The indexed right side of one partition, in compressed sparse rows: each
/// key's entries are one contiguous run of `times` (ascending, one entry per
/// distinct time) and `rows` (the winning row's global number). 12 bytes per
/// right row, allocated once at their final size.
struct Index {
    /// Right columns kept, per batch (`None` where the column is rebuilt).
    held: Vec<Vec<Option<ArrayRef>>>,
    /// How each right column of the output is made.
    rebuild: Vec<Rebuild>,
    /// First global row number of each batch (for mapping rows back).
    starts: Vec<u32>,
    /// Key (row-format bytes) -> key number.
    keys: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    /// Per key number: (first entry, entries).
    runs: Vec<(u32, u32)>,
    times: Vec<i64>,
    rows: Vec<u32>,
}

impl Index {
    /// (batch, row) of a global row number.
    fn locate(&self, global: u32) -> (usize, usize) {
        let b = self.starts.partition_point(|&s| s <= global) - 1;
        (b, (global - self.starts[b]) as usize)
    }
}

fn eval(exprs: &[PhysicalExprRef], b: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(b)?.into_array(b.num_rows()))
        .collect()
}

/// How a right output column is produced.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Rebuild {
    /// From the right rows kept in memory.
    Held,
    /// Equal to left key `i` on every matched row (an equi-join key of the
    /// same type): not kept.
    LeftKey(usize),
    /// The matched time itself (a plain Int64 or timestamp column): not kept.
    Time,
}

/// Which right columns can be rebuilt instead of kept: plain columns that are
/// join keys of the same type as their left key, or the match time when it
/// is an Int64 or timestamp column (whose i64 form is its value).
pub(super) fn plan_rebuild(spec: &ProbeSpec) -> Vec<Rebuild> {
    use datafusion::arrow::datatypes::{DataType, Schema};
    use datafusion::physical_expr::expressions::Column;
    let n_right = spec.right_schema.fields().len();
    let n_left = spec.schema.fields().len().saturating_sub(n_right);
    let left_schema = Schema::new(spec.schema.fields()[..n_left].to_vec());
    let column_of = |e: &PhysicalExprRef| e.downcast_ref::<Column>().map(|c| c.index());
    let mut out = vec![Rebuild::Held; n_right];
    for (i, (l, r)) in spec.left_keys.iter().zip(&spec.right_keys).enumerate() {
        if let Some(c) = column_of(r) {
            let same = l
                .data_type(&left_schema)
                .is_ok_and(|t| c < n_right && &t == spec.right_schema.field(c).data_type());
            if same && out[c] == Rebuild::Held {
                out[c] = Rebuild::LeftKey(i);
            }
        }
    }
    if let Some(c) = column_of(&spec.match_right) {
        if c < n_right
            && out[c] == Rebuild::Held
            && matches!(
                spec.right_schema.field(c).data_type(),
                DataType::Int64 | DataType::Timestamp(..)
            )
        {
            out[c] = Rebuild::Time;
        }
    }
    out
}

/// No key: every row is in key 0.
const NO_KEY: u32 = u32::MAX;

async fn build(
    spec: &ProbeSpec,
    mut right: SendableRecordBatchStream,
    reservation: &MemoryReservation,
) -> Result<Index> {
    let rebuild = plan_rebuild(spec);
    let mut held: Vec<Vec<Option<ArrayRef>>> = Vec::new();
    let mut starts: Vec<u32> = Vec::new();
    let mut ties: Vec<Vec<ArrayRef>> = Vec::new();
    let mut batch_times: Vec<ArrayRef> = Vec::new();
    let mut keys: HashMap<Box<[u8]>, u32, ahash::RandomState> =
        HashMap::with_hasher(ahash::RandomState::new());
    let mut counts: Vec<u32> = Vec::new();
    // Pass 1: each row's key number (NO_KEY for rows a NULL excludes), one
    // exactly-sized vector per batch (freed batch by batch in pass 2).
    let mut row_keys: Vec<Vec<u32>> = Vec::new();
    let mut total: u64 = 0;
    while let Some(b) = right.next().await.transpose()? {
        if b.num_rows() == 0 {
            continue;
        }
        reservation.try_grow(b.get_array_memory_size())?;
        if total + b.num_rows() as u64 >= u64::from(u32::MAX) {
            return Err(datafusion::common::DataFusionError::ResourcesExhausted(
                "AS OF probe: more than 4 billion right rows; use SLUICE_ASOF_MODE=merge".into(),
            ));
        }
        let kcols = eval(&spec.right_keys, &b)?;
        let rows = spec.converter.convert_columns(&kcols)?;
        let times =
            super::exec::times_as_i64(&spec.match_right.evaluate(&b)?.into_array(b.num_rows())?)?;
        let t = times.as_primitive::<Int64Type>();
        let mut batch_keys: Vec<u32> = Vec::with_capacity(b.num_rows());
        for r in 0..b.num_rows() {
            if t.is_null(r) || kcols.iter().any(|k| k.is_null(r)) {
                batch_keys.push(NO_KEY);
                continue;
            }
            // Without keys every row is in one group (the row format has no rows then).
            let key: &[u8] = if kcols.is_empty() {
                &[]
            } else {
                rows.row(r).data()
            };
            let k = match keys.get(key) {
                Some(&k) => k,
                None => {
                    let k = counts.len() as u32;
                    keys.insert(key.into(), k);
                    counts.push(0);
                    k
                }
            };
            counts[k as usize] += 1;
            batch_keys.push(k);
        }
        row_keys.push(batch_keys);
        starts.push(total as u32);
        total += b.num_rows() as u64;
        ties.push(eval(&spec.tiebreak, &b)?);
        batch_times.push(times);
        held.push(
            b.columns()
                .iter()
                .zip(&rebuild)
                .map(|(c, how)| (how == &Rebuild::Held).then(|| Arc::clone(c)))
                .collect(),
        );
    }
    // Pass 2: scatter (time, row) into each key's run.
    let mut runs: Vec<(u32, u32)> = Vec::with_capacity(counts.len());
    let mut next: Vec<u32> = Vec::with_capacity(counts.len());
    let mut at = 0u32;
    for &c in &counts {
        runs.push((at, c));
        next.push(at);
        at += c;
    }
    drop(counts);
    let entries = at as usize;
    reservation.try_grow(entries * 12)?;
    let mut times = vec![0i64; entries];
    let mut rows = vec![0u32; entries];
    let mut g = 0u32;
    for (bt, bk) in batch_times.into_iter().zip(row_keys) {
        let t = bt.as_primitive::<Int64Type>();
        for (r, &k) in bk.iter().enumerate() {
            if k != NO_KEY {
                let pos = next[k as usize] as usize;
                next[k as usize] += 1;
                times[pos] = t.value(r);
                rows[pos] = g + r as u32;
            }
        }
        g += bk.len() as u32;
    }
    drop(next);
    let opts = SortOptions {
        descending: false,
        nulls_first: true,
    };
    let index_of = |global: u32| -> (usize, usize) {
        let b = starts.partition_point(|&s| s <= global) - 1;
        (b, (global - starts[b]) as usize)
    };
    // Sort each run by time and keep, per distinct time, the row with the
    // highest tie-break values.
    let mut pairs: Vec<(i64, u32)> = Vec::new();
    for run in runs.iter_mut() {
        let (s, n) = (run.0 as usize, run.1 as usize);
        pairs.clear();
        pairs.extend(
            times[s..s + n]
                .iter()
                .copied()
                .zip(rows[s..s + n].iter().copied()),
        );
        pairs.sort_unstable_by_key(|e| e.0);
        let mut kept = 0usize;
        for &(t, r) in pairs.iter() {
            if kept > 0 && times[s + kept - 1] == t {
                if !ties.is_empty()
                    && beats(&ties, index_of(r), index_of(rows[s + kept - 1]), opts)?
                {
                    rows[s + kept - 1] = r;
                }
                continue;
            }
            times[s + kept] = t;
            rows[s + kept] = r;
            kept += 1;
        }
        run.1 = kept as u32;
    }
    Ok(Index {
        held,
        rebuild,
        starts,
        keys,
        runs,
        times,
        rows,
    })
}

/// Whether row `a` has higher tie-break values than row `b`.
fn beats(
    ties: &[Vec<ArrayRef>],
    a: (usize, usize),
    b: (usize, usize),
    opts: SortOptions,
) -> Result<bool> {
    let (ta, tb) = (&ties[a.0], &ties[b.0]);
    for (ca, cb) in ta.iter().zip(tb) {
        let cmp = make_comparator(ca.as_ref(), cb.as_ref(), opts)?;
        match cmp(a.1, b.1) {
            std::cmp::Ordering::Equal => continue,
            o => return Ok(o == std::cmp::Ordering::Greater),
        }
    }
    Ok(false)
}

/// The probe stream of one partition.
pub(super) fn stream(
    spec: ProbeSpec,
    left: SendableRecordBatchStream,
    right: SendableRecordBatchStream,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
    let state = (
        spec,
        Some(right),
        None::<Arc<Index>>,
        left,
        reservation,
        baseline,
    );
    futures::stream::try_unfold(state, |mut st| async move {
        let (spec, right, index, left, reservation, baseline) = &mut st;
        if index.is_none() {
            let start = std::time::Instant::now();
            if let Some(r) = right.take() {
                *index = Some(Arc::new(build(spec, r, reservation).await?));
            }
            baseline.elapsed_compute().add_elapsed(start);
        }
        let Some(idx) = index.clone() else {
            return Ok(None);
        };
        loop {
            let Some(batch) = left.next().await.transpose()? else {
                baseline.done();
                return Ok(None);
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let start = std::time::Instant::now();
            let out = probe(spec, &idx, &batch)?;
            baseline.elapsed_compute().add_elapsed(start);
            if out.num_rows() == 0 {
                continue;
            }
            baseline.record_output(out.num_rows());
            return Ok(Some((out, st)));
        }
    })
}

fn probe(spec: &ProbeSpec, idx: &Index, batch: &RecordBatch) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let keys = eval(&spec.left_keys, batch)?;
    let rows = spec.converter.convert_columns(&keys)?;
    let times = super::exec::times_as_i64(&spec.match_left.evaluate(batch)?.into_array(n)?)?;
    let times = times.as_primitive::<Int64Type>();
    let nulls = idx.held.len();
    let mut out_left: Vec<u32> = Vec::with_capacity(n);
    let mut out_right: Vec<(usize, usize)> = Vec::with_capacity(n);
    // Per output row: the matched time and the left row (for rebuilt columns).
    let mut out_time: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut out_key: Vec<Option<u32>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut found = None;
        if times.is_valid(i) && keys.iter().all(|k| k.is_valid(i)) {
            let key: &[u8] = if keys.is_empty() {
                &[]
            } else {
                rows.row(i).data()
            };
            if let Some(&k) = idx.keys.get(key) {
                let (start, len) = idx.runs[k as usize];
                let group = &idx.times[start as usize..(start + len) as usize];
                let lt = times.value(i);
                let at = match spec.op {
                    AsOfOp::GtEq => group.partition_point(|&t| t <= lt).checked_sub(1),
                    AsOfOp::Gt => group.partition_point(|&t| t < lt).checked_sub(1),
                    AsOfOp::LtEq => Some(group.partition_point(|&t| t < lt)),
                    AsOfOp::Lt => Some(group.partition_point(|&t| t <= lt)),
                };
                found = at
                    .filter(|&a| a < group.len())
                    .filter(|&a| {
                        spec.tolerance.is_none_or(|t| {
                            (i128::from(lt) - i128::from(group[a])).abs() <= i128::from(t)
                        })
                    })
                    .map(|a| (idx.locate(idx.rows[start as usize + a]), group[a]));
            }
        }
        match found {
            Some((e, t)) => {
                out_left.push(i as u32);
                out_right.push(e);
                out_time.push(Some(t));
                out_key.push(Some(i as u32));
            }
            None if spec.kind == AsOfKind::Left => {
                out_left.push(i as u32);
                out_right.push((nulls, 0));
                out_time.push(None);
                out_key.push(None);
            }
            None => {}
        }
    }
    let mut columns = super::exec::left_columns(batch, out_left)?;
    for (c, f) in spec.right_schema.fields().iter().enumerate() {
        match &idx.rebuild[c] {
            Rebuild::Held => {
                let null = new_null_array(f.data_type(), 1);
                let mut sources: Vec<&dyn Array> = idx
                    .held
                    .iter()
                    .filter_map(|cols| cols[c].as_deref())
                    .collect();
                sources.push(null.as_ref());
                columns.push(interleave(&sources, &out_right)?);
            }
            Rebuild::LeftKey(k) => {
                let at = UInt32Array::from(out_key.clone());
                columns.push(take(keys[*k].as_ref(), &at, None)?);
            }
            Rebuild::Time => {
                let t = datafusion::arrow::array::Int64Array::from(out_time.clone());
                columns.push(datafusion::arrow::compute::cast(&t, f.data_type())?);
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(&spec.schema), columns)?)
}
