//! `AsOfMergeExec`: the sort-merge AS OF join, for inputs too large to index
//! in memory (or of unknown size). It declares that both inputs arrive sorted
//! by `(keys ASC NULLS FIRST, time dir NULLS FIRST[, tie-break ASC NULLS
//! FIRST])`, so DataFusion inserts the `SortExec`s (which spill through the
//! memory pool), and merges them forward in [`super::stream`].

use super::stream::AsOfMergeStream;
use crate::asof::join::{AsOfCondition, AsOfJoin};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{JoinSide, Result, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{
    LexOrdering, OrderingRequirements, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::metrics::{MetricBuilder, MetricsSet};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, InputDistributionRequirements,
    PlanProperties,
};
use std::fmt;
use std::sync::Arc;

/// The sort-merge AS OF join.
#[derive(Debug, Clone)]
pub struct AsOfMergeExec {
    join: AsOfJoin,
}

impl AsOfMergeExec {
    const NAME: &'static str = "AsOfMergeExec";

    /// Builds the plan; `schema` is the left fields then the (nullable) right fields.
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        condition: AsOfCondition,
        schema: SchemaRef,
    ) -> Result<Self> {
        Ok(AsOfMergeExec {
            join: AsOfJoin::try_new(left, right, condition, schema)?,
        })
    }

    /// What the join matches.
    pub fn condition(&self) -> &AsOfCondition {
        &self.join.condition
    }

    /// The inputs, condition and schema (what [`crate::asof::codec`] sends).
    pub fn join(&self) -> &AsOfJoin {
        &self.join
    }

    /// One side's sort: keys ascending, then the time (descending for `<`
    /// and `<=`, so that "the earliest at or after" becomes "the latest at or
    /// before" like `>=`), then, on the right, an explicit tie-break.
    fn sort_exprs(&self, side: JoinSide) -> Option<LexOrdering> {
        let c = &self.join.condition;
        let asc_nulls_first = SortOptions {
            descending: false,
            nulls_first: true,
        };
        let mut exprs: Vec<PhysicalSortExpr> =
            c.on.iter()
                .map(|(l, r)| PhysicalSortExpr {
                    expr: Arc::clone(if side == JoinSide::Left { l } else { r }),
                    options: asc_nulls_first,
                })
                .collect();
        exprs.push(PhysicalSortExpr {
            expr: Arc::clone(if side == JoinSide::Left {
                &c.match_left
            } else {
                &c.match_right
            }),
            options: SortOptions {
                descending: !c.op.looks_back(),
                nulls_first: true,
            },
        });
        if side == JoinSide::Right && !c.implicit_tiebreak {
            exprs.extend(c.tiebreak.iter().map(|t| PhysicalSortExpr {
                expr: Arc::clone(t),
                options: asc_nulls_first,
            }));
        }
        LexOrdering::new(exprs)
    }
}

impl DisplayAs for AsOfMergeExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.join.fmt_as(Self::NAME, t, f)
    }
}

impl ExecutionPlan for AsOfMergeExec {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.join.cache
    }

    #[allow(deprecated)]
    fn required_input_distribution(&self) -> Vec<Distribution> {
        self.input_distribution_requirements().into_per_child()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.join.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![
            self.sort_exprs(JoinSide::Left)
                .map(OrderingRequirements::from),
            self.sort_exprs(JoinSide::Right)
                .map(OrderingRequirements::from),
        ]
    }

    /// The output keeps the left input's order (the plan's equivalence
    /// properties say so), but this answers `false`: DataFusion 55's sort
    /// pushdown pushes a parent's ordering requirement through an
    /// order-maintaining node when only part of it conflicts with the node's
    /// own requirement (`pushdown_would_violate_requirements` checks that
    /// *every* column conflicts), so a chain such as `>=` then `<=` on one key
    /// would get its sorts swapped and fail the sanity check.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false, false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.join.children()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.join.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(AsOfMergeExec {
            join: self.join.with_children(Self::NAME, children)?,
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.join.metrics.clone_inner())
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition), ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        self.join.statistics_from_inputs(input_stats)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let p = self.join.start_partition(Self::NAME, partition, context)?;
        let metrics = &self.join.metrics;
        let matched = MetricBuilder::new(metrics).counter("matched_rows", partition);
        let unmatched = MetricBuilder::new(metrics).counter("unmatched_rows", partition);
        Ok(Box::pin(AsOfMergeStream::new(p, matched, unmatched)))
    }
}
