//! Filters on the left side of an AS OF join go below it.
//!
//! DataFusion does not push filters through extension nodes (it cannot know
//! which input a column belongs to), so `... ASOF JOIN ... WHERE l.day =
//! '2026-01-01'` would join every left row and filter afterwards. A predicate
//! that reads only left columns keeps or drops whole output rows, and each left
//! row's match does not depend on the other left rows: it is safe to filter the
//! left input first, for both kinds. Predicates on right columns stay above (a
//! filter on the right input would change which row is the nearest).

use super::node::AsOfJoinNode;
use datafusion::common::tree_node::Transformed;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::Result;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{Expr, Extension, Filter, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use std::sync::Arc;

/// Subqueries may read right columns as outer references, which `column_refs`
/// does not see: such predicates stay above the join.
fn has_subquery(e: &Expr) -> bool {
    e.exists(|x| {
        Ok(matches!(
            x,
            Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::ScalarSubquery(_)
                | Expr::OuterReferenceColumn(_, _)
        ))
    })
    .unwrap_or(true)
}

/// The optimizer rule (added to every sluice session).
#[derive(Debug, Default)]
pub struct PushLeftFiltersThroughAsOf;

impl OptimizerRule for PushLeftFiltersThroughAsOf {
    fn name(&self) -> &str {
        "push_left_filters_through_asof"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = plan else {
            return Ok(Transformed::no(plan));
        };
        let Some(node) = (match filter.input.as_ref() {
            LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<AsOfJoinNode>(),
            _ => None,
        }) else {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        };
        let left_schema = node.left.schema();
        let (down, up): (Vec<_>, Vec<_>) = split_conjunction_owned(filter.predicate.clone())
            .into_iter()
            .partition(|p| {
                !p.is_volatile()
                    && !has_subquery(p)
                    && !p.column_refs().is_empty()
                    && p.column_refs().iter().all(|c| left_schema.has_column(c))
            });
        let Some(down) = conjunction(down) else {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        };
        let left = LogicalPlan::Filter(Filter::try_new(down, Arc::clone(&node.left))?);
        let mut moved = node.clone();
        moved.left = Arc::new(left);
        let join = LogicalPlan::Extension(Extension {
            node: Arc::new(moved),
        });
        let plan = match conjunction(up) {
            Some(rest) => LogicalPlan::Filter(Filter::try_new(rest, Arc::new(join))?),
            None => join,
        };
        Ok(Transformed::yes(plan))
    }
}
