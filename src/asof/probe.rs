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

/// A right row: (time, batch, row).
type Entry = (i64, u32, u32);
/// Per key (row-format bytes): its entries.
type Groups = HashMap<Box<[u8]>, Vec<Entry>, ahash::RandomState>;

/// The indexed right side of one partition.
struct Index {
    batches: Vec<RecordBatch>,
    /// Per key: times ascending, one entry per distinct time, with the winning row.
    groups: Groups,
}

fn eval(exprs: &[PhysicalExprRef], b: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(b)?.into_array(b.num_rows()))
        .collect()
}

async fn build(
    spec: &ProbeSpec,
    mut right: SendableRecordBatchStream,
    reservation: &MemoryReservation,
) -> Result<Index> {
    let mut batches = Vec::new();
    let mut ties: Vec<Vec<ArrayRef>> = Vec::new();
    let mut entries: Groups = HashMap::with_hasher(ahash::RandomState::new());
    while let Some(b) = right.next().await.transpose()? {
        if b.num_rows() == 0 {
            continue;
        }
        reservation.try_grow(b.get_array_memory_size())?;
        let keys = eval(&spec.right_keys, &b)?;
        let rows = spec.converter.convert_columns(&keys)?;
        let times =
            super::exec::times_as_i64(&spec.match_right.evaluate(&b)?.into_array(b.num_rows())?)?;
        let times = times.as_primitive::<Int64Type>();
        let bi = batches.len() as u32;
        for r in 0..b.num_rows() {
            if times.is_null(r) || keys.iter().any(|k| k.is_null(r)) {
                continue;
            }
            // Without keys every row is in one group (the row format has no rows then).
            let key: &[u8] = if keys.is_empty() {
                &[]
            } else {
                rows.row(r).data()
            };
            match entries.get_mut(key) {
                Some(v) => v.push((times.value(r), bi, r as u32)),
                None => {
                    entries.insert(key.into(), vec![(times.value(r), bi, r as u32)]);
                }
            }
        }
        ties.push(eval(&spec.tiebreak, &b)?);
        batches.push(b);
    }
    let opts = SortOptions {
        descending: false,
        nulls_first: true,
    };
    // Sort each key's times and keep, per distinct time, the row with the
    // highest tie-break values.
    for v in entries.values_mut() {
        v.sort_unstable_by_key(|e| e.0);
        let mut out: Vec<Entry> = Vec::with_capacity(v.len());
        for &e in v.iter() {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => {
                    if !ties.is_empty() && beats(&ties, e, *last, opts)? {
                        *last = e;
                    }
                }
                _ => out.push(e),
            }
        }
        *v = out;
    }
    Ok(Index {
        batches,
        groups: entries,
    })
}

/// Whether row `a` has higher tie-break values than row `b`.
fn beats(ties: &[Vec<ArrayRef>], a: Entry, b: Entry, opts: SortOptions) -> Result<bool> {
    let (ta, tb) = (&ties[a.1 as usize], &ties[b.1 as usize]);
    for (ca, cb) in ta.iter().zip(tb) {
        let cmp = make_comparator(ca.as_ref(), cb.as_ref(), opts)?;
        match cmp(a.2 as usize, b.2 as usize) {
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
    let nulls = idx.batches.len();
    let mut out_left: Vec<u32> = Vec::with_capacity(n);
    let mut out_right: Vec<(usize, usize)> = Vec::with_capacity(n);
    for i in 0..n {
        let mut found = None;
        if times.is_valid(i) && keys.iter().all(|k| k.is_valid(i)) {
            let key: &[u8] = if keys.is_empty() {
                &[]
            } else {
                rows.row(i).data()
            };
            if let Some(group) = idx.groups.get(key) {
                let lt = times.value(i);
                let at = match spec.op {
                    AsOfOp::GtEq => group.partition_point(|e| e.0 <= lt).checked_sub(1),
                    AsOfOp::Gt => group.partition_point(|e| e.0 < lt).checked_sub(1),
                    AsOfOp::LtEq => Some(group.partition_point(|e| e.0 < lt)),
                    AsOfOp::Lt => Some(group.partition_point(|e| e.0 <= lt)),
                };
                found = at.and_then(|a| group.get(a)).filter(|e| {
                    spec.tolerance
                        .is_none_or(|t| (i128::from(lt) - i128::from(e.0)).abs() <= i128::from(t))
                });
            }
        }
        match found {
            Some(e) => {
                out_left.push(i as u32);
                out_right.push((e.1 as usize, e.2 as usize));
            }
            None if spec.kind == AsOfKind::Left => {
                out_left.push(i as u32);
                out_right.push((nulls, 0));
            }
            None => {}
        }
    }
    let mut columns: Vec<ArrayRef> = if out_left.len() == n {
        batch.columns().to_vec()
    } else {
        let take_idx = UInt32Array::from(out_left);
        batch
            .columns()
            .iter()
            .map(|c| take(c, &take_idx, None))
            .collect::<std::result::Result<_, _>>()?
    };
    for (c, f) in spec.right_schema.fields().iter().enumerate() {
        let null = new_null_array(f.data_type(), 1);
        let mut sources: Vec<&dyn Array> =
            idx.batches.iter().map(|b| b.column(c).as_ref()).collect();
        sources.push(null.as_ref());
        columns.push(interleave(&sources, &out_right)?);
    }
    Ok(RecordBatch::try_new(Arc::clone(&spec.schema), columns)?)
}
