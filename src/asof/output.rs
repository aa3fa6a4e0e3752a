//! The output batch of a left batch, the same for every plan: the left columns
//! (the whole batch when every row is kept), then each right column, gathered
//! from wherever the plan keeps right rows, NULL for unmatched left rows, or
//! rebuilt instead of kept: a right key column equals its left key on every
//! matched row, and the right time column is the matched time itself, so the
//! index-based plans need not hold either.

use super::join::JoinSpec;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExprRef;
use std::sync::Arc;

/// The left columns of an output batch: all of `batch` when every row is
/// kept (`rows` is then `0..n`), else the rows in `rows`.
pub(super) fn left_columns(batch: &RecordBatch, rows: Vec<u32>) -> Result<Vec<ArrayRef>> {
    if rows.len() == batch.num_rows() {
        return Ok(batch.columns().to_vec());
    }
    let at = UInt32Array::from(rows);
    Ok(batch
        .columns()
        .iter()
        .map(|c| take(c, &at, None))
        .collect::<std::result::Result<_, _>>()?)
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
pub(super) fn plan_rebuild(spec: &JoinSpec) -> Vec<Rebuild> {
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

/// The rows of one output batch, in order: each a left row and, when it
/// matched, the matched time and where the plan keeps the right row (`R`,
/// which also has a value for "no row").
pub(super) struct OutputRows<R> {
    pub left: Vec<u32>,
    pub right: Vec<R>,
    /// The matched right time, `None` for an unmatched left row.
    pub times: Vec<Option<i64>>,
}

impl<R> OutputRows<R> {
    pub fn with_capacity(n: usize) -> Self {
        OutputRows {
            left: Vec::with_capacity(n),
            right: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
        }
    }

    /// Left row `left` matched the right row at `right`, whose time is `time`.
    pub fn matched(&mut self, left: usize, right: R, time: i64) {
        self.left.push(left as u32);
        self.right.push(right);
        self.times.push(Some(time));
    }

    /// Left row `left` is kept without a match (`none`: the plan's "no row").
    pub fn unmatched(&mut self, left: usize, none: R) {
        self.left.push(left as u32);
        self.right.push(none);
        self.times.push(None);
    }

    /// The output batch: the left columns of `batch`, then per right column
    /// either `held(column, field, right rows)` or its rebuilt values.
    /// `left_keys` gives the left key values of `batch`, asked for only when
    /// a column is rebuilt from them.
    pub fn build(
        self,
        spec: &JoinSpec,
        rebuild: &[Rebuild],
        batch: &RecordBatch,
        left_keys: impl FnOnce() -> Result<Vec<ArrayRef>>,
        mut held: impl FnMut(usize, &Field, &[R]) -> Result<ArrayRef>,
    ) -> Result<RecordBatch> {
        let OutputRows { left, right, times } = self;
        let mut key_rows: Option<UInt32Array> = None;
        let mut left_keys = Some(left_keys);
        let mut key_values: Vec<ArrayRef> = Vec::new();
        let mut columns = Vec::with_capacity(spec.schema.fields().len());
        for (c, f) in spec.right_schema.fields().iter().enumerate() {
            columns.push(match &rebuild[c] {
                Rebuild::Held => held(c, f, &right)?,
                Rebuild::LeftKey(k) => {
                    if let Some(eval) = left_keys.take() {
                        key_values = eval()?;
                    }
                    // The left row where matched, NULL where not.
                    let at = key_rows.get_or_insert_with(|| {
                        left.iter()
                            .zip(&times)
                            .map(|(&l, t)| t.map(|_| l))
                            .collect()
                    });
                    take(key_values[*k].as_ref(), at, None)?
                }
                Rebuild::Time => cast(&Int64Array::from(times.clone()), f.data_type())?,
            });
        }
        let mut all = left_columns(batch, left)?;
        all.extend(columns);
        Ok(RecordBatch::try_new(Arc::clone(&spec.schema), all)?)
    }
}
