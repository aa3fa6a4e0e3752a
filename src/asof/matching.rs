//! What a match is, whichever plan looks for it: times compared as
//! order-preserving i64, which right times a left time may take (the
//! operator), which of two right times is nearer, the tolerance, and the
//! tie-break among equal right times. The three plans differ only in how they
//! find the candidates (a merge, a search in the right side's index, or a
//! search in the left side's); these rules are written once, here.

use super::node::AsOfOp;
use datafusion::arrow::array::{make_comparator, Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::{cast, SortOptions};
use datafusion::arrow::datatypes::{DataType, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::physical_expr::PhysicalExprRef;
use std::cmp::Ordering;
use std::sync::Arc;

/// Whether values of `t` can be compared as times (as i64 after normalising).
pub fn is_time_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(_, _)
            | DataType::Date32
            | DataType::Date64
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Time (or integer key) values as order-preserving i64 (NULLs stay NULL).
pub(super) fn times_as_i64(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(match a.data_type() {
        DataType::Int64 => Arc::clone(a),
        DataType::UInt64 => {
            // Flip the sign bit: preserves order across the whole u64 range.
            let u = a.as_primitive::<UInt64Type>();
            Arc::new(Int64Array::from_iter(
                u.iter().map(|v| v.map(|x| (x ^ (1u64 << 63)) as i64)),
            ))
        }
        DataType::Date32 => cast(&cast(a, &DataType::Int32)?, &DataType::Int64)?,
        _ => cast(a, &DataType::Int64)?,
    })
}

/// The values of `exprs` on `batch`, one array each.
pub(super) fn eval(exprs: &[PhysicalExprRef], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}

/// The time expression's values on `batch`, as order-preserving i64.
pub(super) fn eval_times(expr: &PhysicalExprRef, batch: &RecordBatch) -> Result<ArrayRef> {
    times_as_i64(&expr.evaluate(batch)?.into_array(batch.num_rows())?)
}

/// Whether a right time `right` is close enough to the left time `left`.
pub(super) fn within_tolerance(tolerance: Option<i64>, left: i64, right: i64) -> bool {
    tolerance.is_none_or(|t| (i128::from(left) - i128::from(right)).abs() <= i128::from(t))
}

impl AsOfOp {
    /// Whether the best right time is the latest eligible one (`>=`, `>`)
    /// rather than the earliest (`<=`, `<`).
    pub(super) fn looks_back(self) -> bool {
        matches!(self, AsOfOp::GtEq | AsOfOp::Gt)
    }

    /// Whether right time `right` may match left time `left`.
    pub(super) fn eligible(self, right: i64, left: i64) -> bool {
        match self {
            AsOfOp::GtEq => right <= left,
            AsOfOp::Gt => right < left,
            AsOfOp::LtEq => right >= left,
            AsOfOp::Lt => right > left,
        }
    }

    /// Whether right time `a` is nearer than a different right time `b` to
    /// any left time both may match.
    pub(super) fn nearer(self, a: i64, b: i64) -> bool {
        (a > b) == self.looks_back()
    }

    /// Among right times sorted ascending (`run`, read through `time`), the
    /// position of the one left time `left` matches: the latest eligible one
    /// for `>=` / `>`, the earliest for `<=` / `<`.
    pub(super) fn nearest<T>(
        self,
        run: &[T],
        time: impl Fn(&T) -> i64,
        left: i64,
    ) -> Option<usize> {
        let at = match self {
            AsOfOp::GtEq => run.partition_point(|x| time(x) <= left).checked_sub(1),
            AsOfOp::Gt => run.partition_point(|x| time(x) < left).checked_sub(1),
            AsOfOp::LtEq => Some(run.partition_point(|x| time(x) < left)),
            AsOfOp::Lt => Some(run.partition_point(|x| time(x) <= left)),
        };
        at.filter(|&a| a < run.len())
    }

    /// Among left times sorted ascending (`run`, read through `time`), the
    /// *target* of right time `right`: the nearest left time it may match
    /// (the first at or after it for `>=`, strictly after for `>`; the last
    /// at or before it for `<=`, strictly before for `<`). A right row can
    /// only be the match of its target or of left times beyond it.
    pub(super) fn target<T>(
        self,
        run: &[T],
        time: impl Fn(&T) -> i64,
        right: i64,
    ) -> Option<usize> {
        let at = match self {
            AsOfOp::GtEq => Some(run.partition_point(|x| time(x) < right)),
            AsOfOp::Gt => Some(run.partition_point(|x| time(x) <= right)),
            AsOfOp::LtEq => run.partition_point(|x| time(x) <= right).checked_sub(1),
            AsOfOp::Lt => run.partition_point(|x| time(x) < right).checked_sub(1),
        };
        at.filter(|&a| a < run.len())
    }
}

/// Whether row `a` has higher tie-break values than row `b` (compared as
/// sorted ASC NULLS FIRST: NULL is the lowest; the highest wins). `columns`
/// gives each tie-break column as (the array holding `a`, the one holding `b`).
pub(super) fn beats<'a>(
    columns: impl IntoIterator<Item = (&'a dyn Array, &'a dyn Array)>,
    a: usize,
    b: usize,
) -> Result<bool> {
    let opts = SortOptions {
        descending: false,
        nulls_first: true,
    };
    for (ca, cb) in columns {
        match make_comparator(ca, cb, opts)?(a, b) {
            Ordering::Equal => continue,
            o => return Ok(o == Ordering::Greater),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: [AsOfOp; 4] = [AsOfOp::GtEq, AsOfOp::Gt, AsOfOp::LtEq, AsOfOp::Lt];

    /// `nearest` and `target` agree with the definition on every operator:
    /// the nearest eligible right time, and the nearest left time a right
    /// time is eligible for.
    #[test]
    fn searches_agree_with_eligibility() {
        let times: Vec<i64> = vec![1, 3, 3, 5, 9];
        for op in OPS {
            for probe in 0..11 {
                let want = (0..times.len())
                    .filter(|&i| op.eligible(times[i], probe))
                    .reduce(|a, b| if op.nearer(times[b], times[a]) { b } else { a });
                let got = op.nearest(&times, |&t| t, probe);
                assert_eq!(
                    got.map(|i| times[i]),
                    want.map(|i| times[i]),
                    "{op} nearest to {probe}"
                );
                let want = (0..times.len())
                    .filter(|&i| op.eligible(probe, times[i]))
                    .reduce(|a, b| if op.nearer(times[a], times[b]) { b } else { a });
                let got = op.target(&times, |&t| t, probe);
                assert_eq!(
                    got.map(|i| times[i]),
                    want.map(|i| times[i]),
                    "{op} target of {probe}"
                );
            }
        }
    }

    #[test]
    fn tolerance_and_ties() {
        assert!(within_tolerance(None, i64::MIN, i64::MAX));
        assert!(within_tolerance(Some(3), 10, 7));
        assert!(!within_tolerance(Some(3), 10, 14));
        assert!(!within_tolerance(Some(i64::MAX), i64::MIN, i64::MAX));
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(2), None, Some(2)]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(5), Some(3)]));
        let cols = || [(a.as_ref(), a.as_ref()), (b.as_ref(), b.as_ref())];
        assert!(beats(cols(), 0, 1).unwrap(), "NULL is lowest");
        assert!(beats(cols(), 2, 0).unwrap(), "second column decides");
        assert!(!beats(cols(), 0, 0).unwrap(), "equal rows do not beat");
    }
}
