//! What the three AS OF plans ([`super::AsOfMergeExec`], [`super::AsOfProbeExec`],
//! [`super::AsOfStreamExec`]) have in common, written once: the join's
//! condition and its validation, the plan properties (left-join equivalences,
//! the left input's partitioning), the `EXPLAIN` line, the input distribution
//! (hash-partitioned on the keys, or one partition without keys), the
//! statistics a chain of joins chooses its strategies from, and the setup of
//! one partition (its inputs, the key row format, the memory reservation and
//! the metrics). The plans differ in their sort requirements, whether they
//! keep the left input's order, and their streams.

use super::node::{AsOfKind, AsOfOp};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, plan_err, JoinSide, JoinType, Result, Statistics};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::equivalence::join_equivalence_properties;
use datafusion::physical_expr::{PhysicalExpr, PhysicalExprRef};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::{
    DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, PlanProperties,
};
use std::fmt;
use std::sync::Arc;

/// What an AS OF join matches: the same for every plan.
#[derive(Debug, Clone)]
pub struct AsOfCondition {
    /// Equality keys (left expr, right expr), same types on both sides.
    pub on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
    /// Time expressions, same type on both sides.
    pub match_left: PhysicalExprRef,
    pub match_right: PhysicalExprRef,
    pub op: AsOfOp,
    pub kind: AsOfKind,
    /// Largest allowed |left time - right time|, in the time column's unit.
    pub tolerance: Option<i64>,
    /// Right-side tie-break expressions (highest wins).
    pub tiebreak: Vec<PhysicalExprRef>,
    /// `tiebreak` is the implicit one (the other right columns): compared
    /// when times are equal instead of sorted (ties are rare, and a wide sort
    /// key slows the sort of every row).
    pub implicit_tiebreak: bool,
}

/// The inputs, condition, schema and properties every AS OF plan holds.
#[derive(Debug, Clone)]
pub struct AsOfJoin {
    pub(super) left: Arc<dyn ExecutionPlan>,
    pub(super) right: Arc<dyn ExecutionPlan>,
    pub(super) condition: AsOfCondition,
    /// The left fields then the (nullable) right fields.
    pub(super) schema: SchemaRef,
    pub(super) cache: Arc<PlanProperties>,
    pub(super) metrics: ExecutionPlanMetricsSet,
}

impl AsOfJoin {
    /// Validates the condition against the inputs and computes the plan properties.
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        condition: AsOfCondition,
        schema: SchemaRef,
    ) -> Result<Self> {
        let (ls, rs) = (left.schema(), right.schema());
        for (l, r) in &condition.on {
            let (lt, rt) = (l.data_type(&ls)?, r.data_type(&rs)?);
            if lt != rt {
                return plan_err!(
                    "ASOF JOIN keys must have the same type on both sides, got {lt} and {rt}"
                );
            }
        }
        let (lt, rt) = (
            condition.match_left.data_type(&ls)?,
            condition.match_right.data_type(&rs)?,
        );
        if lt != rt {
            return plan_err!(
                "ASOF JOIN time columns must have the same type on both sides, got {lt} and {rt}"
            );
        }
        if !super::is_time_type(&lt) {
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
            &condition.on,
        )?;
        let partitioning = left.output_partitioning().clone();
        if left.boundedness().is_unbounded() || right.boundedness().is_unbounded() {
            return plan_err!("ASOF JOIN needs bounded inputs");
        }
        let cache = Arc::new(PlanProperties::new(
            eq,
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(AsOfJoin {
            left,
            right,
            condition,
            schema,
            cache,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The same join over new inputs (validated again; fresh metrics).
    pub(super) fn with_children(
        &self,
        name: &str,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Self> {
        let [left, right]: [Arc<dyn ExecutionPlan>; 2] = match children.try_into() {
            Ok(c) => c,
            Err(_) => return internal_err!("{name} has two children"),
        };
        Self::try_new(
            left,
            right,
            self.condition.clone(),
            Arc::clone(&self.schema),
        )
    }

    /// The `EXPLAIN` line, headed by the plan's name.
    pub(super) fn fmt_as(
        &self,
        name: &str,
        _t: DisplayFormatType,
        f: &mut fmt::Formatter,
    ) -> fmt::Result {
        let c = &self.condition;
        let on: Vec<String> = c.on.iter().map(|(l, r)| format!("({l} = {r})")).collect();
        let matching = format!("{} {} {}", c.match_left, c.op, c.match_right);
        let ties: Vec<String> = c.tiebreak.iter().map(|e| e.to_string()).collect();
        super::node::explain(
            f,
            name,
            c.kind,
            &on,
            &matching,
            c.tolerance.map(|t| t.to_string()),
            &ties,
            c.implicit_tiebreak,
        )
    }

    pub(super) fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    /// Both inputs hash-partitioned on the keys (co-partitioned), or each in
    /// one partition when there are no keys.
    pub(super) fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        if self.condition.on.is_empty() {
            return InputDistributionRequirements::new(vec![
                Distribution::SinglePartition,
                Distribution::SinglePartition,
            ]);
        }
        let (l, r): (Vec<_>, Vec<_>) = self
            .condition
            .on
            .iter()
            .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
            .unzip();
        InputDistributionRequirements::co_partitioned(vec![
            Distribution::KeyPartitioned(l),
            Distribution::KeyPartitioned(r),
        ])
    }

    pub(super) fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let c = &self.condition;
        let keys = c.on.iter().flat_map(|(l, r)| [l, r]);
        let rest = [&c.match_left, &c.match_right]
            .into_iter()
            .chain(c.tiebreak.iter());
        datafusion::physical_plan::execution_plan::apply_expression_roots(keys.chain(rest), f)
    }

    /// One output row per left row (at most that for an inner join), each as
    /// wide as a left row plus an average right row: what the next AS OF join
    /// of a chain needs to choose its strategy.
    pub(super) fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
    ) -> Result<Arc<Statistics>> {
        let mut out = Statistics::new_unknown(&self.schema);
        let [l, r] = input_stats else {
            return Ok(Arc::new(out));
        };
        out.num_rows = match self.condition.kind {
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

    /// Starts one partition: both inputs' streams, what the stream needs
    /// from the plan, a memory reservation named after the plan, and its
    /// baseline metrics.
    pub(super) fn start_partition(
        &self,
        name: &str,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<Partition> {
        let lp = self.left.output_partitioning().partition_count();
        let rp = self.right.output_partitioning().partition_count();
        if lp != rp {
            return internal_err!(
                "{name}: partition counts differ ({lp} != {rp}); the optimizer must co-partition the inputs"
            );
        }
        let left = self.left.execute(partition, Arc::clone(&context))?;
        let right = self.right.execute(partition, Arc::clone(&context))?;
        let c = &self.condition;
        let key_fields: Vec<SortField> =
            c.on.iter()
                .map(|(l, _)| {
                    Ok(SortField::new_with_options(
                        l.data_type(&self.left.schema())?,
                        SortOptions {
                            descending: false,
                            nulls_first: true,
                        },
                    ))
                })
                .collect::<Result<_>>()?;
        let spec = JoinSpec {
            left_keys: c.on.iter().map(|(l, _)| Arc::clone(l)).collect(),
            right_keys: c.on.iter().map(|(_, r)| Arc::clone(r)).collect(),
            match_left: Arc::clone(&c.match_left),
            match_right: Arc::clone(&c.match_right),
            tiebreak: c.tiebreak.clone(),
            implicit_tiebreak: c.implicit_tiebreak,
            op: c.op,
            kind: c.kind,
            tolerance: c.tolerance,
            converter: Arc::new(RowConverter::new(key_fields)?),
            schema: Arc::clone(&self.schema),
            right_schema: self.right.schema(),
        };
        let reservation =
            MemoryConsumer::new(format!("{name}[{partition}]")).register(context.memory_pool());
        Ok(Partition {
            left,
            right,
            spec,
            reservation,
            baseline: BaselineMetrics::new(&self.metrics, partition),
        })
    }
}

/// What a partition's stream needs from its plan.
pub(super) struct JoinSpec {
    pub left_keys: Vec<PhysicalExprRef>,
    pub right_keys: Vec<PhysicalExprRef>,
    pub match_left: PhysicalExprRef,
    pub match_right: PhysicalExprRef,
    /// Tie-break expressions, highest wins (explicit, else implicit).
    pub tiebreak: Vec<PhysicalExprRef>,
    /// Whether `tiebreak` is the implicit one (the other right columns).
    pub implicit_tiebreak: bool,
    pub op: AsOfOp,
    pub kind: AsOfKind,
    pub tolerance: Option<i64>,
    /// The keys in the row format (ASC NULLS FIRST): equal keys, equal bytes.
    pub converter: Arc<RowConverter>,
    /// The output schema.
    pub schema: SchemaRef,
    pub right_schema: SchemaRef,
}

/// One partition, started.
pub(super) struct Partition {
    pub left: SendableRecordBatchStream,
    pub right: SendableRecordBatchStream,
    pub spec: JoinSpec,
    pub reservation: MemoryReservation,
    pub baseline: BaselineMetrics,
}
