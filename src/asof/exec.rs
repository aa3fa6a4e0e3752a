//! `AsOfJoinExec`: the physical AS OF join.
//!
//! Both inputs arrive hash-partitioned on the equality keys and sorted by
//! `(keys ASC NULLS FIRST, time dir NULLS FIRST[, tie-break ASC NULLS FIRST])`:
//! the operator declares these requirements and DataFusion inserts the
//! `RepartitionExec` and `SortExec` (which spills through the memory pool). The
//! operator itself is a forward-only merge per partition: each input is read
//! once, state is a couple of batches per side plus one candidate row, and the
//! output keeps the left input's order, so chained AS OF joins on the same keys
//! and time do not sort their left side again.
//!
//! One merge serves all four operators: for `<` and `<=` the time column is
//! sorted descending, so "the latest right time at or before" becomes "the
//! earliest at or after". Among equal right times, the last row in sort order
//! wins: the one with the highest tie-break value (or, without a tie-break, the
//! highest values of the remaining right columns: deterministic).

use super::node::{AsOfKind, AsOfOp};
use datafusion::arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, interleave, take};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, plan_err, JoinSide, JoinType, Result, Statistics};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::equivalence::join_equivalence_properties;
use datafusion::physical_expr::{
    LexOrdering, OrderingRequirements, PhysicalExpr, PhysicalExprRef, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, PlanProperties,
};
use futures::StreamExt;
use std::fmt;
use std::sync::Arc;

/// How the operator finds matches in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Both inputs sorted by key and time (DataFusion's sorts, which spill),
    /// then merged.
    Merge,
    /// The right side indexed in memory, each left row looked up ([`super::probe`]).
    Probe,
    /// The left side indexed in memory, the right side streamed past it
    /// ([`super::stream`]).
    Stream,
}

/// The physical AS OF join.
#[derive(Debug, Clone)]
pub struct AsOfJoinExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    /// Equality keys (left expr, right expr), same types on both sides.
    on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
    /// Time expressions, same type on both sides.
    match_left: PhysicalExprRef,
    match_right: PhysicalExprRef,
    op: AsOfOp,
    kind: AsOfKind,
    /// Largest allowed |left time - right time|, in the time column's unit.
    tolerance: Option<i64>,
    /// Right-side tie-break expressions (highest wins).
    tiebreak: Vec<PhysicalExprRef>,
    /// `tiebreak` is the implicit one (the other right columns): compared in
    /// the merge when times are equal instead of sorted (ties are rare, and a
    /// wide sort key slows the sort of every row).
    implicit_tiebreak: bool,
    /// How matches are found.
    strategy: Strategy,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AsOfJoinExec {
    /// Builds the operator; `schema` is the left fields then the (nullable) right fields.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
        match_left: PhysicalExprRef,
        match_right: PhysicalExprRef,
        op: AsOfOp,
        kind: AsOfKind,
        tolerance: Option<i64>,
        tiebreak: Vec<PhysicalExprRef>,
        implicit_tiebreak: bool,
        strategy: Strategy,
        schema: SchemaRef,
    ) -> Result<Self> {
        let (ls, rs) = (left.schema(), right.schema());
        for (l, r) in &on {
            let (lt, rt) = (l.data_type(&ls)?, r.data_type(&rs)?);
            if lt != rt {
                return plan_err!(
                    "ASOF JOIN keys must have the same type on both sides, got {lt} and {rt}"
                );
            }
        }
        let (lt, rt) = (match_left.data_type(&ls)?, match_right.data_type(&rs)?);
        if lt != rt {
            return plan_err!(
                "ASOF JOIN time columns must have the same type on both sides, got {lt} and {rt}"
            );
        }
        if !is_time_type(&lt) {
            return plan_err!(
                "ASOF JOIN time column has type {lt}, which cannot be ordered as a time; use a timestamp, date or integer column"
            );
        }
        let eq = join_equivalence_properties(
            left.equivalence_properties().clone(),
            right.equivalence_properties().clone(),
            &JoinType::Left,
            Arc::clone(&schema),
            &[true, false],
            Some(JoinSide::Left),
            &on,
        )?;
        let partitioning = left.output_partitioning().clone();
        let boundedness = if left.boundedness().is_unbounded() || right.boundedness().is_unbounded()
        {
            return plan_err!("ASOF JOIN needs bounded inputs");
        } else {
            Boundedness::Bounded
        };
        let cache = Arc::new(PlanProperties::new(
            eq,
            partitioning,
            EmissionType::Incremental,
            boundedness,
        ));
        Ok(AsOfJoinExec {
            left,
            right,
            on,
            match_left,
            match_right,
            op,
            kind,
            tolerance,
            tiebreak,
            implicit_tiebreak,
            strategy,
            schema,
            cache,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    fn descending(&self) -> bool {
        matches!(self.op, AsOfOp::Lt | AsOfOp::LtEq)
    }

    fn sort_exprs(&self, side: JoinSide) -> Option<LexOrdering> {
        let asc_nulls_first = datafusion::arrow::compute::SortOptions {
            descending: false,
            nulls_first: true,
        };
        let mut exprs: Vec<PhysicalSortExpr> = self
            .on
            .iter()
            .map(|(l, r)| PhysicalSortExpr {
                expr: Arc::clone(if side == JoinSide::Left { l } else { r }),
                options: asc_nulls_first,
            })
            .collect();
        exprs.push(PhysicalSortExpr {
            expr: Arc::clone(if side == JoinSide::Left {
                &self.match_left
            } else {
                &self.match_right
            }),
            options: datafusion::arrow::compute::SortOptions {
                descending: self.descending(),
                nulls_first: true,
            },
        });
        if side == JoinSide::Right && !self.implicit_tiebreak {
            exprs.extend(self.tiebreak.iter().map(|t| PhysicalSortExpr {
                expr: Arc::clone(t),
                options: asc_nulls_first,
            }));
        }
        LexOrdering::new(exprs)
    }
}

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

/// The left columns of an output batch: all of `batch` when every row is
/// kept (`rows` is then `0..n`), else the rows in `rows`.
pub(super) fn left_columns(batch: &RecordBatch, rows: Vec<u32>) -> Result<Vec<ArrayRef>> {
    if rows.len() == batch.num_rows() {
        return Ok(batch.columns().to_vec());
    }
    let at = datafusion::arrow::array::UInt32Array::from(rows);
    Ok(batch
        .columns()
        .iter()
        .map(|c| take(c, &at, None))
        .collect::<std::result::Result<_, _>>()?)
}

/// Time values as order-preserving i64 (NULLs stay NULL).
pub(super) fn times_as_i64(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(match a.data_type() {
        DataType::Int64 => Arc::clone(a),
        DataType::UInt64 => {
            // Flip the sign bit: preserves order across the whole u64 range.
            let u = a.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
            Arc::new(datafusion::arrow::array::Int64Array::from_iter(
                u.iter().map(|v| v.map(|x| (x ^ (1u64 << 63)) as i64)),
            ))
        }
        DataType::Date32 => cast(&cast(a, &DataType::Int32)?, &DataType::Int64)?,
        _ => cast(a, &DataType::Int64)?,
    })
}

impl DisplayAs for AsOfJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let on: Vec<String> = self
            .on
            .iter()
            .map(|(l, r)| format!("({l} = {r})"))
            .collect();
        let matching = format!("{} {} {}", self.match_left, self.op, self.match_right);
        let ties: Vec<String> = self.tiebreak.iter().map(|e| e.to_string()).collect();
        super::node::explain(
            f,
            match self.strategy {
                Strategy::Merge => "AsOfJoinExec",
                Strategy::Probe => "AsOfJoinExec(probe)",
                Strategy::Stream => "AsOfJoinExec(stream)",
            },
            self.kind,
            &on,
            &matching,
            self.tolerance.map(|t| t.to_string()),
            &ties,
            self.implicit_tiebreak,
        )
    }
}

impl ExecutionPlan for AsOfJoinExec {
    fn name(&self) -> &str {
        "AsOfJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    #[allow(deprecated)]
    fn required_input_distribution(&self) -> Vec<Distribution> {
        self.input_distribution_requirements().into_per_child()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        if self.on.is_empty() {
            return InputDistributionRequirements::new(vec![
                Distribution::SinglePartition,
                Distribution::SinglePartition,
            ]);
        }
        let (l, r): (Vec<_>, Vec<_>) = self
            .on
            .iter()
            .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
            .unzip();
        InputDistributionRequirements::co_partitioned(vec![
            Distribution::KeyPartitioned(l),
            Distribution::KeyPartitioned(r),
        ])
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        if self.strategy != Strategy::Merge {
            return vec![None, None];
        }
        vec![
            self.sort_exprs(JoinSide::Left)
                .map(OrderingRequirements::from),
            self.sort_exprs(JoinSide::Right)
                .map(OrderingRequirements::from),
        ]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        // Every mode emits the left rows in their input order (the plan's
        // equivalence properties say so). The sort-merge mode still answers
        // `false`: DataFusion 55's sort pushdown pushes a parent's ordering
        // requirement through an order-maintaining node when only part of it
        // conflicts with the node's own requirement (`pushdown_would_violate_requirements`
        // checks that *every* column conflicts), so a chain such as `>=` then
        // `<=` on one key would get its sorts swapped and fail the sanity check.
        vec![self.strategy != Strategy::Merge, false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let keys = self.on.iter().flat_map(|(l, r)| [l, r]);
        let rest = [&self.match_left, &self.match_right]
            .into_iter()
            .chain(self.tiebreak.iter());
        datafusion::physical_plan::execution_plan::apply_expression_roots(keys.chain(rest), f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [left, right]: [Arc<dyn ExecutionPlan>; 2] = match children.try_into() {
            Ok(c) => c,
            Err(_) => return internal_err!("AsOfJoinExec has two children"),
        };
        Ok(Arc::new(AsOfJoinExec::try_new(
            left,
            right,
            self.on.clone(),
            Arc::clone(&self.match_left),
            Arc::clone(&self.match_right),
            self.op,
            self.kind,
            self.tolerance,
            self.tiebreak.clone(),
            self.implicit_tiebreak,
            self.strategy,
            Arc::clone(&self.schema),
        )?))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition), ChildStats::At(partition)]
    }

    /// One output row per left row (at most that for an inner join), each as
    /// wide as a left row plus an average right row: what the next AS OF join
    /// of a chain needs to choose its strategy.
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut out = Statistics::new_unknown(&self.schema);
        let [l, r] = input_stats else {
            return Ok(Arc::new(out));
        };
        out.num_rows = match self.kind {
            AsOfKind::Left => l.num_rows,
            AsOfKind::Inner => l.num_rows.to_inexact(),
        };
        let right_row = match (r.total_byte_size.get_value(), r.num_rows.get_value()) {
            (Some(&b), Some(&n)) if n > 0 => Some(b / n),
            _ => None,
        };
        if let (Some(&lb), Some(&rows), Some(rr)) = (
            l.total_byte_size.get_value(),
            out.num_rows.get_value(),
            right_row,
        ) {
            out.total_byte_size = Precision::Inexact(lb.saturating_add(rows.saturating_mul(rr)));
        }
        Ok(Arc::new(out))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let lp = self.left.output_partitioning().partition_count();
        let rp = self.right.output_partitioning().partition_count();
        if lp != rp {
            return internal_err!(
                "AsOfJoinExec: partition counts differ ({lp} != {rp}); the optimizer must co-partition the inputs"
            );
        }
        let left = self.left.execute(partition, Arc::clone(&context))?;
        let right = self.right.execute(partition, Arc::clone(&context))?;
        let key_fields: Vec<SortField> = self
            .on
            .iter()
            .map(|(l, _)| {
                Ok(SortField::new_with_options(
                    l.data_type(&self.left.schema())?,
                    datafusion::arrow::compute::SortOptions {
                        descending: false,
                        nulls_first: true,
                    },
                ))
            })
            .collect::<Result<_>>()?;
        let converter = Arc::new(RowConverter::new(key_fields)?);
        let reservation = MemoryConsumer::new(format!("AsOfJoinExec[{partition}]"))
            .register(context.memory_pool());
        if self.strategy != Strategy::Merge {
            let spec = super::probe::ProbeSpec {
                left_keys: self.on.iter().map(|(l, _)| Arc::clone(l)).collect(),
                right_keys: self.on.iter().map(|(_, r)| Arc::clone(r)).collect(),
                match_left: Arc::clone(&self.match_left),
                match_right: Arc::clone(&self.match_right),
                tiebreak: self.tiebreak.clone(),
                op: self.op,
                kind: self.kind,
                tolerance: self.tolerance,
                converter,
                schema: Arc::clone(&self.schema),
                right_schema: self.right.schema(),
            };
            let baseline = BaselineMetrics::new(&self.metrics, partition);
            let schema = Arc::clone(&self.schema);
            return Ok(if self.strategy == Strategy::Probe {
                let stream = super::probe::stream(spec, left, right, reservation, baseline);
                Box::pin(RecordBatchStreamAdapter::new(schema, stream))
            } else {
                let stream =
                    super::stream::stream(spec, left, right, reservation, baseline, partition);
                Box::pin(RecordBatchStreamAdapter::new(schema, stream))
            });
        }
        let right_schema = self.right.schema();
        let null_right: Vec<ArrayRef> = right_schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        let merge = Merge {
            left,
            right,
            left_keys: self.on.iter().map(|(l, _)| Arc::clone(l)).collect(),
            right_keys: self.on.iter().map(|(_, r)| Arc::clone(r)).collect(),
            match_left: Arc::clone(&self.match_left),
            match_right: Arc::clone(&self.match_right),
            ties: if self.implicit_tiebreak {
                self.tiebreak.clone()
            } else {
                Vec::new()
            },
            op: self.op,
            kind: self.kind,
            tolerance: self.tolerance,
            converter,
            schema: Arc::clone(&self.schema),
            null_right,
            cursor: None,
            right_done: false,
            candidate: None,
            held: Vec::new(),
            next_seq: 0,
            reservation,
            waited: std::time::Duration::ZERO,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            matched: MetricBuilder::new(&self.metrics).counter("matched_rows", partition),
            unmatched: MetricBuilder::new(&self.metrics).counter("unmatched_rows", partition),
        };
        let schema = Arc::clone(&self.schema);
        let stream = futures::stream::try_unfold(merge, |mut m| async move {
            loop {
                let Some(batch) = m.left.next().await.transpose()? else {
                    m.baseline.done();
                    return Ok(None);
                };
                if batch.num_rows() == 0 {
                    continue;
                }
                let start = std::time::Instant::now();
                m.waited = std::time::Duration::ZERO;
                let out = m.join_left_batch(&batch).await?;
                let own = start.elapsed().saturating_sub(m.waited);
                m.baseline.elapsed_compute().add_duration(own);
                if out.num_rows() == 0 {
                    continue;
                }
                m.baseline.record_output(out.num_rows());
                return Ok(Some((out, m)));
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// A right batch with its keys and times prepared, and the matches taken from it.
struct RightBatch {
    seq: u64,
    batch: RecordBatch,
    keys: Rows,
    times: ArrayRef,
    /// Values of the implicit tie-break columns.
    ties: Vec<ArrayRef>,
}

/// Most right batches referenced by one output batch before they are compacted.
const MAX_HELD: usize = 8;

/// Right columns an output batch takes rows from: a right batch (`seq`) or
/// rows already copied out of batches the merge has left behind (`None`).
struct Held {
    seq: Option<u64>,
    columns: Vec<ArrayRef>,
}

/// Where the current candidate row lives.
#[derive(Clone, Copy)]
struct Candidate {
    seq: u64,
    row: usize,
    time: i64,
}

/// Per-partition merge state.
struct Merge {
    left: SendableRecordBatchStream,
    right: SendableRecordBatchStream,
    left_keys: Vec<PhysicalExprRef>,
    right_keys: Vec<PhysicalExprRef>,
    match_left: PhysicalExprRef,
    match_right: PhysicalExprRef,
    /// Columns that order rows with equal times (highest wins), compared here.
    ties: Vec<PhysicalExprRef>,
    op: AsOfOp,
    kind: AsOfKind,
    tolerance: Option<i64>,
    converter: Arc<RowConverter>,
    schema: SchemaRef,
    null_right: Vec<ArrayRef>,
    /// The right batch being scanned and the position in it.
    cursor: Option<(Arc<RightBatch>, usize)>,
    right_done: bool,
    /// The best right row so far for the current key (its batch stays held).
    candidate: Option<(Candidate, Arc<RightBatch>)>,
    /// Sources of the right columns of the output being built (current left batch).
    held: Vec<Held>,
    next_seq: u64,
    reservation: MemoryReservation,
    /// Time spent waiting for right batches (not the join's own work).
    waited: std::time::Duration,
    baseline: BaselineMetrics,
    matched: Count,
    unmatched: Count,
}

impl Merge {
    fn eval(exprs: &[PhysicalExprRef], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        exprs
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
            .collect()
    }

    /// Loads the next non-empty right batch into the cursor; false at the end.
    async fn next_right(&mut self) -> Result<bool> {
        while !self.right_done {
            let waiting = std::time::Instant::now();
            let next = self.right.next().await.transpose()?;
            self.waited += waiting.elapsed();
            match next {
                None => {
                    self.right_done = true;
                }
                Some(b) if b.num_rows() == 0 => {}
                Some(b) => {
                    let keys = self
                        .converter
                        .convert_columns(&Self::eval(&self.right_keys, &b)?)?;
                    let times =
                        times_as_i64(&self.match_right.evaluate(&b)?.into_array(b.num_rows())?)?;
                    let ties = Self::eval(&self.ties, &b)?;
                    let rb = Arc::new(RightBatch {
                        seq: self.next_seq,
                        batch: b,
                        keys,
                        times,
                        ties,
                    });
                    self.next_seq += 1;
                    self.cursor = Some((rb, 0));
                    self.account()?;
                    return Ok(true);
                }
            }
        }
        self.cursor = None;
        Ok(false)
    }

    /// Memory held: the cursor batch, the candidate's batch and the referenced batches.
    fn account(&mut self) -> Result<()> {
        let mut seen: Vec<u64> = Vec::new();
        let mut total = 0usize;
        let batches = self
            .cursor
            .iter()
            .map(|(b, _)| b)
            .chain(self.candidate.iter().map(|(_, b)| b));
        for b in batches {
            if !seen.contains(&b.seq) {
                seen.push(b.seq);
                total += b.batch.get_array_memory_size() + b.keys.size();
            }
        }
        for h in &self.held {
            if h.seq.is_none_or(|s| !seen.contains(&s)) {
                total += h
                    .columns
                    .iter()
                    .map(|c| c.get_array_memory_size())
                    .sum::<usize>();
            }
        }
        // Bounded by design (the cursor, the candidate and at most MAX_HELD
        // batches): accounted, but never a reason to fail the query while the
        // sorts below are spilling to make room.
        self.reservation.resize(total);
        Ok(())
    }

    /// Whether right row `p` of `rb` (time `rt`) has the same time as the
    /// candidate but lower implicit tie-break values, so the candidate stays.
    fn loses_tie(&self, rb: &RightBatch, p: usize, rt: i64) -> Result<bool> {
        if self.ties.is_empty() {
            return Ok(false);
        }
        let Some((c, cb)) = &self.candidate else {
            return Ok(false);
        };
        if c.time != rt {
            return Ok(false);
        }
        let opts = datafusion::arrow::compute::SortOptions {
            descending: false,
            nulls_first: true,
        };
        for (cand, new) in cb.ties.iter().zip(&rb.ties) {
            let cmp = datafusion::arrow::array::make_comparator(cand.as_ref(), new.as_ref(), opts)?;
            match cmp(c.row, p) {
                std::cmp::Ordering::Equal => continue,
                std::cmp::Ordering::Greater => return Ok(true),
                std::cmp::Ordering::Less => return Ok(false),
            }
        }
        Ok(false)
    }

    fn eligible(&self, right: i64, left: i64) -> bool {
        match self.op {
            AsOfOp::GtEq => right <= left,
            AsOfOp::Gt => right < left,
            AsOfOp::LtEq => right >= left,
            AsOfOp::Lt => right > left,
        }
    }

    fn within_tolerance(&self, right: i64, left: i64) -> bool {
        match self.tolerance {
            None => true,
            Some(t) => (i128::from(left) - i128::from(right)).abs() <= i128::from(t),
        }
    }

    /// Joins one left batch (all its rows, in order) and returns the output batch.
    async fn join_left_batch(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let lkey_arrays = Self::eval(&self.left_keys, batch)?;
        let lkeys = self.converter.convert_columns(&lkey_arrays)?;
        let ltimes = times_as_i64(&self.match_left.evaluate(batch)?.into_array(n)?)?;
        let ltimes = ltimes.as_primitive::<Int64Type>();
        // Output rows: (left row, Some((held source, right row)) or None).
        let mut out_left: Vec<u32> = Vec::with_capacity(n);
        let mut out_right: Vec<Option<(usize, usize)>> = Vec::with_capacity(n);
        self.held.clear();
        for i in 0..n {
            let valid = ltimes.is_valid(i) && lkey_arrays.iter().all(|a| a.is_valid(i));
            let found = if valid {
                self.advance(&lkeys, i, ltimes.value(i)).await?
            } else {
                None
            };
            match found {
                Some(c) => {
                    self.matched.add(1);
                    let h = self.hold(c.seq);
                    out_left.push(i as u32);
                    out_right.push(h.map(|h| (h, c.row)));
                    if self.held.len() > MAX_HELD {
                        self.compact(&mut out_right)?;
                    }
                }
                None => {
                    self.unmatched.add(1);
                    if self.kind == AsOfKind::Left {
                        out_left.push(i as u32);
                        out_right.push(None);
                    }
                }
            }
        }
        self.account()?;
        let out = self.build(batch, &out_left, &out_right)?;
        self.held.clear();
        Ok(out)
    }

    /// Index in `held` of the batch with `seq` (adding the candidate's batch).
    fn hold(&mut self, seq: u64) -> Option<usize> {
        if let Some(i) = self.held.iter().position(|h| h.seq == Some(seq)) {
            return Some(i);
        }
        let b = self
            .candidate
            .as_ref()
            .filter(|(c, _)| c.seq == seq)
            .map(|(_, b)| Arc::clone(b))?;
        self.held.push(Held {
            seq: Some(seq),
            columns: b.batch.columns().to_vec(),
        });
        Some(self.held.len() - 1)
    }

    /// Copies the referenced rows of every held batch the merge no longer needs
    /// into one small source, so a left batch whose matches are spread over many
    /// right batches does not keep them all in memory.
    fn compact(&mut self, out_right: &mut [Option<(usize, usize)>]) -> Result<()> {
        let keep: Vec<u64> = self
            .candidate
            .iter()
            .map(|(c, _)| c.seq)
            .chain(self.cursor.iter().map(|(b, _)| b.seq))
            .collect();
        let old = std::mem::take(&mut self.held);
        let mut remap: Vec<Option<usize>> = vec![None; old.len()];
        let mut gathered: Vec<(usize, usize)> = Vec::new();
        let mut gathered_at: std::collections::HashMap<(usize, usize), usize> =
            std::collections::HashMap::new();
        for (j, h) in old.iter().enumerate() {
            if h.seq.is_some_and(|s| keep.contains(&s)) {
                remap[j] = Some(self.held.len());
                self.held.push(Held {
                    seq: h.seq,
                    columns: h.columns.clone(),
                });
            }
        }
        for r in out_right.iter_mut().flatten() {
            if remap[r.0].is_none() {
                let at = *gathered_at.entry(*r).or_insert_with(|| {
                    gathered.push(*r);
                    gathered.len() - 1
                });
                *r = (usize::MAX, at);
            }
        }
        let width = self.null_right.len();
        let mut columns = Vec::with_capacity(width);
        for c in 0..width {
            let sources: Vec<&dyn Array> = old.iter().map(|h| h.columns[c].as_ref()).collect();
            columns.push(interleave(&sources, &gathered)?);
        }
        let compacted = self.held.len();
        self.held.push(Held { seq: None, columns });
        for r in out_right.iter_mut().flatten() {
            *r = if r.0 == usize::MAX {
                (compacted, r.1)
            } else {
                (remap[r.0].unwrap_or(compacted), r.1)
            };
        }
        Ok(())
    }

    /// Moves the right cursor for left row `i` (key `lkeys.row(i)`, time `lt`) and
    /// returns the matching right row.
    async fn advance(&mut self, lkeys: &Rows, i: usize, lt: i64) -> Result<Option<Candidate>> {
        // Without keys every row is in the one group (the row format has no rows then).
        let keyed = !self.left_keys.is_empty();
        if keyed {
            if let Some((c, b)) = &self.candidate {
                if b.keys.row(c.row) != lkeys.row(i) {
                    self.candidate = None;
                }
            }
        }
        loop {
            if self.cursor.is_none() && !self.next_right().await? {
                break;
            }
            let Some((rb, pos)) = self.cursor.clone() else {
                break;
            };
            let times = rb.times.as_primitive::<Int64Type>();
            let mut p = pos;
            let len = rb.batch.num_rows();
            let mut stop = false;
            while p < len {
                if times.is_null(p) {
                    p += 1;
                    continue;
                }
                let order = if keyed {
                    rb.keys.row(p).cmp(&lkeys.row(i))
                } else {
                    std::cmp::Ordering::Equal
                };
                match order {
                    std::cmp::Ordering::Less => p += 1,
                    std::cmp::Ordering::Greater => {
                        stop = true;
                        break;
                    }
                    std::cmp::Ordering::Equal => {
                        let rt = times.value(p);
                        if self.eligible(rt, lt) {
                            if self.loses_tie(&rb, p, rt)? {
                                p += 1;
                                continue;
                            }
                            self.candidate = Some((
                                Candidate {
                                    seq: rb.seq,
                                    row: p,
                                    time: rt,
                                },
                                Arc::clone(&rb),
                            ));
                            p += 1;
                        } else {
                            stop = true;
                            break;
                        }
                    }
                }
            }
            if stop {
                self.cursor = Some((rb, p));
                break;
            }
            // This batch is exhausted: move on (the candidate keeps its batch alive).
            self.cursor = None;
        }
        Ok(self
            .candidate
            .as_ref()
            .map(|(c, _)| *c)
            .filter(|c| self.within_tolerance(c.time, lt)))
    }

    fn build(
        &self,
        left: &RecordBatch,
        out_left: &[u32],
        out_right: &[Option<(usize, usize)>],
    ) -> Result<RecordBatch> {
        let mut columns = left_columns(left, out_left.to_vec())?;
        let nulls = self.held.len();
        let indices: Vec<(usize, usize)> =
            out_right.iter().map(|r| r.unwrap_or((nulls, 0))).collect();
        for (c, null) in self.null_right.iter().enumerate() {
            let mut sources: Vec<&dyn Array> =
                self.held.iter().map(|h| h.columns[c].as_ref()).collect();
            sources.push(null.as_ref());
            columns.push(interleave(&sources, &indices)?);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}
