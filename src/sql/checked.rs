//! Checked arithmetic: an integer or decimal `+`, `-` or `*` that overflows is
//! an error, as in PostgreSQL and DuckDB, not a wrapped value.
//!
//! DataFusion wraps by default (`9223372036854775807 + 1` is
//! `-9223372036854775808`) in two places, and each is closed here:
//! - constant folding at planning: [`CheckedConstants`] folds literal
//!   arithmetic with checked operations before DataFusion's simplifier sees it;
//! - evaluation: [`CheckedPlanner`] turns the arithmetic of physical plans into
//!   DataFusion's own checked form (`BinaryExpr::with_fail_on_overflow`).
//!
//! Covered at evaluation: projections, filters (`WHERE`, `HAVING`) and the
//! arguments of aggregates. Not covered yet: join conditions (`ON a.x + 1 =
//! b.y` is evaluated wrapping), window function arguments and `sum` over
//! integers (wraps).

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::expr::{BinaryExpr as LogicalBinary, Cast};
use datafusion::logical_expr::{Expr, LogicalPlan, Operator};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

fn is_arithmetic(op: &Operator) -> bool {
    matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
}

fn checked_type(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// A literal, or a cast of one (type coercion casts literals).
fn constant(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(Cast { expr, field }) => match expr.as_ref() {
            Expr::Literal(v, _) => v.cast_to(field.data_type()).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Folds integer literal arithmetic with checked operations (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct CheckedConstants;

impl OptimizerRule for CheckedConstants {
    fn name(&self) -> &str {
        "sluice_checked_constants"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.map_expressions(|e| e.transform_up(fold))
    }
}

fn fold(e: Expr) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(LogicalBinary { left, op, right }) = &e else {
        return Ok(Transformed::no(e));
    };
    if !is_arithmetic(op) {
        return Ok(Transformed::no(e));
    }
    let (Some(l), Some(r)) = (constant(left), constant(right)) else {
        return Ok(Transformed::no(e));
    };
    if l.data_type() != r.data_type() || !l.data_type().is_integer() {
        return Ok(Transformed::no(e));
    }
    let result = match op {
        Operator::Plus => l.add_checked(&r),
        Operator::Minus => l.sub_checked(&r),
        _ => l.mul_checked(&r),
    };
    match result {
        Ok(v) => Ok(Transformed::yes(Expr::Literal(v, None))),
        Err(_) => exec_err!(
            "integer overflow: {l} {op} {r} does not fit {}; cast an operand to a wider type (BIGINT, DECIMAL(38, 0) or DOUBLE)",
            sql_type(&l.data_type())
        ),
    }
}

fn sql_type(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 => "TINYINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INT",
        DataType::Int64 => "BIGINT",
        DataType::UInt8 => "TINYINT UNSIGNED",
        DataType::UInt16 => "SMALLINT UNSIGNED",
        DataType::UInt32 => "INT UNSIGNED",
        DataType::UInt64 => "BIGINT UNSIGNED",
        _ => "its type",
    }
}

/// The engine's query planner, with checked arithmetic in projections,
/// filters and the arguments of aggregates.
#[derive(Debug)]
pub(crate) struct CheckedPlanner<P>(pub P);

#[async_trait]
impl<P: QueryPlanner + Send + Sync + std::fmt::Debug> QueryPlanner for CheckedPlanner<P> {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.0.create_physical_plan(logical_plan, session).await?;
        Ok(plan.transform_up(check_plan)?.data)
    }
}

/// `expr` (evaluated against `schema`) with its integer and decimal
/// arithmetic checked.
fn checked(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    Arc::clone(expr).transform_up(|e| {
        let any: &dyn std::any::Any = e.as_ref();
        let Some(b) = any.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(e));
        };
        if !is_arithmetic(b.op()) || !checked_type(&b.data_type(schema)?) {
            return Ok(Transformed::no(e));
        }
        let checked = BinaryExpr::new(Arc::clone(b.left()), *b.op(), Arc::clone(b.right()))
            .with_fail_on_overflow(true);
        Ok(Transformed::yes(Arc::new(checked) as Arc<dyn PhysicalExpr>))
    })
}

fn check_plan(plan: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    let any: &dyn std::any::Any = plan.as_ref();
    if let Some(projection) = any.downcast_ref::<ProjectionExec>() {
        let schema = projection.input().schema();
        let mut changed = false;
        let mut exprs = Vec::with_capacity(projection.expr().len());
        for p in projection.expr() {
            let t = checked(&p.expr, &schema)?;
            changed |= t.transformed;
            exprs.push(ProjectionExpr {
                expr: t.data,
                alias: p.alias.clone(),
            });
        }
        if !changed {
            return Ok(Transformed::no(plan));
        }
        let input = Arc::clone(projection.input());
        return Ok(Transformed::yes(Arc::new(ProjectionExec::try_new(
            exprs, input,
        )?)));
    }
    if let Some(filter) = any.downcast_ref::<FilterExec>() {
        let t = checked(filter.predicate(), &filter.input().schema())?;
        if !t.transformed {
            return Ok(Transformed::no(plan));
        }
        let rebuilt = FilterExecBuilder::from(filter)
            .with_predicate(t.data)
            .build()?;
        return Ok(Transformed::yes(Arc::new(rebuilt)));
    }
    if let Some(aggregate) = any.downcast_ref::<AggregateExec>() {
        // Only the first stage evaluates the arguments on its input; later
        // stages merge states.
        if !matches!(
            aggregate.mode(),
            AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned
        ) {
            return Ok(Transformed::no(plan));
        }
        let schema = aggregate.input().schema();
        let mut changed = false;
        let mut exprs = Vec::with_capacity(aggregate.aggr_expr().len());
        for a in aggregate.aggr_expr() {
            let mut args = Vec::new();
            let mut any_checked = false;
            for arg in a.expressions() {
                let t = checked(&arg, &schema)?;
                any_checked |= t.transformed;
                args.push(t.data);
            }
            let order_by = a.order_bys().iter().map(|o| Arc::clone(&o.expr)).collect();
            match any_checked
                .then(|| a.with_new_expressions(args, order_by))
                .flatten()
            {
                Some(new) => {
                    changed = true;
                    exprs.push(Arc::new(new));
                }
                None => exprs.push(Arc::clone(a)),
            }
        }
        if !changed {
            return Ok(Transformed::no(plan));
        }
        return Ok(Transformed::yes(Arc::new(
            aggregate.with_new_aggr_exprs(exprs),
        )));
    }
    Ok(Transformed::no(plan))
}

#[cfg(test)]
mod tests {
    use crate::sql::Engine;
    use crate::warehouse::Warehouse;

    async fn engine() -> Engine {
        let wh = Warehouse::open("memory://checked", &Default::default()).unwrap();
        Engine::new(wh, "main").await.unwrap()
    }

    #[tokio::test]
    async fn integer_overflow_is_an_error() {
        let e = engine().await;
        for sql in [
            "SELECT 9223372036854775807 + 1",
            "SELECT -9223372036854775807 - 2",
            "SELECT 4611686018427387904 * 2",
            "SELECT (9223372036854775807 - 1) + 2",
            "SELECT CAST(2147483647 AS INT) + CAST(1 AS INT)",
            "SELECT a + 1 FROM (VALUES (9223372036854775807)) t(a)",
            "SELECT a * b FROM (VALUES (CAST(100000 AS INT), CAST(100000 AS INT))) t(a, b)",
            "SELECT a - b FROM (VALUES (CAST(-128 AS TINYINT), CAST(1 AS TINYINT))) t(a, b)",
            // Filters, HAVING and aggregate arguments.
            "SELECT a FROM (VALUES (9223372036854775807), (1)) t(a) WHERE a + 1 > 0",
            "SELECT count(*) FROM (VALUES (4611686018427387904)) t(a) WHERE a * 2 <> 0",
            "SELECT sum(a * 2) FROM (VALUES (4611686018427387904)) t(a)",
            "SELECT k, max(a + 1) FROM (VALUES (1, 9223372036854775807)) t(k, a) GROUP BY k",
            "SELECT k FROM (VALUES (1, 9223372036854775807)) t(k, a) GROUP BY k HAVING max(a) + 1 > 0",
            "SELECT avg(a * 3) FROM (VALUES (4611686018427387904)) t(a)",
        ] {
            let err = e.query(sql).await.unwrap_err();
            assert_eq!(err.exit_code(), 1, "{sql}: {err}");
            assert!(err.to_string().contains("overflow"), "{sql}: {err}");
        }
        // In range: answered as before, NULLs and floats untouched.
        for (sql, want) in [
            ("SELECT 9223372036854775806 + 1 AS v", "9223372036854775807"),
            (
                "SELECT a + 1 AS v FROM (VALUES (CAST(NULL AS BIGINT))) t(a)",
                "",
            ),
            ("SELECT a * 2 AS v FROM (VALUES (1e308)) t(a)", "inf"),
            (
                "SELECT a - 1 AS v FROM (VALUES (CAST(-127 AS TINYINT))) t(a)",
                "-128",
            ),
            (
                "SELECT count(*) AS v FROM (VALUES (9223372036854775806), (1)) t(a) WHERE a + 1 > 1",
                "2",
            ),
            (
                "SELECT sum(a * 2) AS v FROM (VALUES (1), (2), (NULL)) t(a)",
                "6",
            ),
        ] {
            let batches = e.query(sql).await.unwrap();
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string();
            let row = text.lines().nth(3).unwrap_or_default().to_string();
            assert!(row.contains(want), "{sql}: {text}");
        }
    }
}
