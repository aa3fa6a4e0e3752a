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
//! Covered at evaluation: projections (also those later pushed into file
//! scans), filters (`WHERE`, `HAVING`), the arguments of aggregates, join keys
//! and join filters (hash and nested-loop joins), and the arguments,
//! `PARTITION BY` and `ORDER BY` expressions of window functions. The
//! rewrite runs twice: as the first physical optimizer rule
//! ([`CheckedArithmetic`]), so that what later rules move (a projection pushed
//! into a Parquet scan, a join key projected below the join) is already
//! checked, and once more on the final plan. Integer `sum` is checked by
//! [`super::checked_sum`]. Not covered: sort-merge and symmetric hash joins
//! (planned only when `prefer_hash_join` is off, or for unbounded inputs).

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
use datafusion::physical_expr::expressions::{lit, IsNullExpr};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::joins::{
    HashJoinExec, HashJoinExecBuilder, NestedLoopJoinExec, NestedLoopJoinExecBuilder,
};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};
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
        Ok(plan.transform_up(|p| check_plan(p, true))?.data)
    }
}

/// The first physical optimizer rule: checks the arithmetic of the plan as
/// the physical planner made it, before other rules move expressions around.
#[derive(Debug)]
pub(crate) struct CheckedArithmetic;

impl PhysicalOptimizerRule for CheckedArithmetic {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &datafusion::config::ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(plan.transform_up(|p| check_plan(p, false))?.data)
    }

    fn name(&self) -> &str {
        "sluice_checked_arithmetic"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// DataFusion's physical optimizer rules with [`CheckedArithmetic`] first.
pub(crate) fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
        vec![Arc::new(CheckedArithmetic)];
    rules.extend(datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules);
    rules
}

/// A join filter with its arithmetic checked.
fn checked_join_filter(filter: Option<&JoinFilter>) -> Result<Transformed<Option<JoinFilter>>> {
    let Some(f) = filter else {
        return Ok(Transformed::no(None));
    };
    let t = checked(f.expression(), f.schema())?;
    t.map_data(|e| {
        Ok(Some(JoinFilter::new(
            e,
            f.column_indices().to_vec(),
            Arc::clone(f.schema()),
        )))
    })
}

/// The window expressions' arithmetic (arguments, `PARTITION BY`, `ORDER BY`),
/// checked, as one always-true predicate that evaluates every one of them:
/// `(e1 IS NULL OR true) AND (e2 IS NULL OR true) ...` (`AND` only skips its
/// right side when its left side is all false, `OR` always evaluates its left).
/// DataFusion cannot rebuild most window expressions with new arguments, so the
/// window keeps evaluating its own (unchecked) copy, which is then known not
/// to overflow.
fn window_check(
    exprs: &[Arc<dyn datafusion::physical_expr::window::WindowExpr>],
    schema: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let mut predicate: Option<Arc<dyn PhysicalExpr>> = None;
    for w in exprs {
        let all = w.all_expressions();
        for e in all
            .args
            .iter()
            .chain(&all.partition_by_exprs)
            .chain(&all.order_by_exprs)
        {
            let t = checked(e, schema)?;
            if !t.transformed {
                continue;
            }
            let evaluated: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
                Arc::new(IsNullExpr::new(t.data)),
                Operator::Or,
                lit(true),
            ));
            predicate = Some(match predicate {
                None => evaluated,
                Some(p) => Arc::new(BinaryExpr::new(p, Operator::And, evaluated)),
            });
        }
    }
    Ok(predicate)
}

/// `input` behind a filter that evaluates the window's checked arithmetic
/// (see [`window_check`]); `None` when there is none.
fn with_window_check(
    exprs: &[Arc<dyn datafusion::physical_expr::window::WindowExpr>],
    input: &Arc<dyn ExecutionPlan>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(predicate) = window_check(exprs, &input.schema())? else {
        return Ok(None);
    };
    Ok(Some(Arc::new(FilterExec::try_new(
        predicate,
        Arc::clone(input),
    )?)))
}

fn recompute() -> ReplaceChildrenOptions {
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute)
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

/// `plan`'s node with its arithmetic checked; `windows`: also window functions
/// (only on the final plan: their check is a filter that later rules would
/// move).
fn check_plan(
    plan: Arc<dyn ExecutionPlan>,
    windows: bool,
) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
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
    if let Some(join) = any.downcast_ref::<HashJoinExec>() {
        let (left, right) = (join.left().schema(), join.right().schema());
        let mut changed = false;
        let mut on = Vec::with_capacity(join.on().len());
        for (l, r) in join.on() {
            let (l, r) = (checked(l, &left)?, checked(r, &right)?);
            changed |= l.transformed || r.transformed;
            on.push((l.data, r.data));
        }
        let filter = checked_join_filter(join.filter())?;
        if !changed && !filter.transformed {
            return Ok(Transformed::no(plan));
        }
        let rebuilt = HashJoinExecBuilder::from(join)
            .with_on(on)
            .with_filter(filter.data)
            .build_exec()?;
        return Ok(Transformed::yes(rebuilt));
    }
    if let Some(join) = any.downcast_ref::<NestedLoopJoinExec>() {
        let filter = checked_join_filter(join.filter())?;
        if !filter.transformed {
            return Ok(Transformed::no(plan));
        }
        let rebuilt = NestedLoopJoinExecBuilder::from(join)
            .with_filter(filter.data)
            .build()?;
        return Ok(Transformed::yes(Arc::new(rebuilt)));
    }
    if let Some(window) = any
        .downcast_ref::<BoundedWindowAggExec>()
        .filter(|_| windows)
    {
        let Some(input) = with_window_check(window.window_expr(), window.input())? else {
            return Ok(Transformed::no(plan));
        };
        return Ok(Transformed::yes(
            plan.replace_children(vec![input], recompute())?,
        ));
    }
    if let Some(window) = any.downcast_ref::<WindowAggExec>().filter(|_| windows) {
        let Some(input) = with_window_check(window.window_expr(), window.input())? else {
            return Ok(Transformed::no(plan));
        };
        return Ok(Transformed::yes(
            plan.replace_children(vec![input], recompute())?,
        ));
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
    async fn joins_windows_and_scans_check_their_arithmetic() {
        let e = engine().await;
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        let (a, b) = (a.display(), b.display());
        e.query(&format!(
            "COPY (SELECT CAST(x AS BIGINT) AS x FROM (VALUES (2), (3)) t(x)) TO '{a}'"
        ))
        .await
        .unwrap();
        e.query(&format!(
            "COPY (SELECT CAST(y AS BIGINT) AS y FROM (VALUES (-2), (5)) t(y)) TO '{b}'"
        ))
        .await
        .unwrap();
        const MAX: &str = "9223372036854775807";
        // Each of these wrapped before (2 * MAX is -2, and matched or summed).
        for sql in [
            // A projection pushed into the Parquet scan.
            format!("SELECT x * {MAX} AS v FROM '{a}'"),
            // Join keys, hash join filters, nested-loop join filters.
            format!("SELECT * FROM '{a}' a JOIN '{b}' b ON a.x * {MAX} = b.y"),
            format!("SELECT * FROM '{a}' a JOIN '{b}' b ON a.x * {MAX} < b.y"),
            format!("SELECT * FROM '{a}' a JOIN '{b}' b ON a.x = b.y - 3 AND a.x * {MAX} < b.y"),
            format!("SELECT * FROM '{a}' a LEFT JOIN '{b}' b ON a.x + {MAX} > b.y"),
            // Window arguments, PARTITION BY and ORDER BY.
            format!("SELECT sum(x * {MAX}) OVER () AS s FROM '{a}'"),
            format!("SELECT sum(x * {MAX}) OVER (ORDER BY x ROWS 1 PRECEDING) AS s FROM '{a}'"),
            format!("SELECT lag(x * {MAX}) OVER (ORDER BY x) AS s FROM '{a}'"),
            format!("SELECT row_number() OVER (PARTITION BY x * {MAX}) AS s FROM '{a}'"),
            format!("SELECT rank() OVER (ORDER BY x + {MAX}) AS s FROM '{a}'"),
        ] {
            let err = e.query(&sql).await.unwrap_err();
            assert!(err.to_string().contains("overflow"), "{sql}: {err}");
        }
        // In range: the same shapes answer as before.
        for (sql, want) in [
            (format!("SELECT sum(x * 2) AS v FROM '{a}'"), "10"),
            (
                format!("SELECT count(*) AS v FROM '{a}' a JOIN '{b}' b ON a.x * -1 = b.y"),
                "1",
            ),
            (
                format!("SELECT max(s) AS v FROM (SELECT sum(x * 2) OVER (ORDER BY x) AS s FROM '{a}')"),
                "10",
            ),
            (
                format!("SELECT max(r) AS v FROM (SELECT row_number() OVER (PARTITION BY x % 2 ORDER BY x * 3) AS r FROM '{a}')"),
                "1",
            ),
        ] {
            let batches = e.query(&sql).await.unwrap();
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string();
            let row = text.lines().nth(3).unwrap_or_default().to_string();
            assert!(row.contains(want), "{sql}: {text}");
        }
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
