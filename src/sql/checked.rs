//! Checked arithmetic: an integer or decimal `+`, `-` or `*` that overflows is
//! an error, as in PostgreSQL and DuckDB, not a wrapped value.
//!
//! DataFusion wraps by default (`9223372036854775807 + 1` is
//! `-9223372036854775808`) in two places, and each is closed here:
//! - constant folding at planning: [`CheckedConstants`] folds literal
//!   arithmetic with checked operations before DataFusion's simplifier sees it;
//! - evaluation: [`CheckedPlanner`] turns the arithmetic of projections into
//!   DataFusion's own checked form (`BinaryExpr::with_fail_on_overflow`).
//!
//! Not covered yet: arithmetic inside filters, join conditions and aggregate
//! arguments (evaluated wrapping), and `sum` over integers (wraps).

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
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

/// The engine's query planner, with checked arithmetic in projections.
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
        Ok(plan.transform_up(check_projection)?.data)
    }
}

fn check_projection(plan: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    let any: &dyn std::any::Any = plan.as_ref();
    let Some(projection) = any.downcast_ref::<ProjectionExec>() else {
        return Ok(Transformed::no(plan));
    };
    let schema = projection.input().schema();
    let mut changed = false;
    let mut exprs = Vec::with_capacity(projection.expr().len());
    for p in projection.expr() {
        let t = Arc::clone(&p.expr).transform_up(|e| {
            let any: &dyn std::any::Any = e.as_ref();
            let Some(b) = any.downcast_ref::<BinaryExpr>() else {
                return Ok(Transformed::no(e));
            };
            if !is_arithmetic(b.op()) || !checked_type(&b.data_type(&schema)?) {
                return Ok(Transformed::no(e));
            }
            let checked = BinaryExpr::new(Arc::clone(b.left()), *b.op(), Arc::clone(b.right()))
                .with_fail_on_overflow(true);
            Ok(Transformed::yes(Arc::new(checked) as Arc<dyn PhysicalExpr>))
        })?;
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
    Ok(Transformed::yes(Arc::new(ProjectionExec::try_new(
        exprs, input,
    )?)))
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
