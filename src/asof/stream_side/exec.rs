//! `AsOfStreamExec`: the AS OF join that indexes the left side of each
//! partition in memory and streams the right side past it
//! ([`super::right_pass`]). It needs no sorted input and keeps the left
//! input's order.

use super::stream::AsOfStreamSideStream;
use crate::asof::join::{AsOfCondition, AsOfJoin};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, InputDistributionRequirements,
    PlanProperties,
};
use std::fmt;
use std::sync::Arc;

/// The AS OF join over an in-memory index of the left side.
#[derive(Debug, Clone)]
pub struct AsOfStreamExec {
    join: AsOfJoin,
}

impl AsOfStreamExec {
    const NAME: &'static str = "AsOfStreamExec";

    /// Builds the plan; `schema` is the left fields then the (nullable) right fields.
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        condition: AsOfCondition,
        schema: SchemaRef,
    ) -> Result<Self> {
        Ok(AsOfStreamExec {
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
}

impl DisplayAs for AsOfStreamExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.join.fmt_as(Self::NAME, t, f)
    }
}

impl ExecutionPlan for AsOfStreamExec {
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
        vec![None, None]
    }

    /// Left rows come out in their input order.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, false]
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
        Ok(Arc::new(AsOfStreamExec {
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
        Ok(Box::pin(AsOfStreamSideStream::new(p, partition)))
    }
}
