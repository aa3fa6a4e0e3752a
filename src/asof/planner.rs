//! Planning AS OF joins: SQL → [`AsOfJoinNode`] (a relation planner that
//! receives the joins [`super::syntax::nest_asof_joins`] wrapped), and
//! [`AsOfJoinNode`] → [`AsOfJoinExec`] (an extension planner, installed next to
//! Delta's in [`SluiceQueryPlanner`]).

use super::exec::{is_time_type, AsOfJoinExec, Strategy};
use super::node::{AsOfJoinNode, AsOfOp};
use super::syntax::{self, AsOfSpec};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::{plan_err, Column, DFSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::expr::BinaryExpr;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::utils::{can_hash, split_conjunction};
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::{
    cast, Expr, Extension, LogicalPlan, LogicalPlanBuilder, Operator, UserDefinedLogicalNode,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::sql::sqlparser::ast::{JoinConstraint, JoinOperator, TableFactor};
use std::collections::HashSet;
use std::sync::Arc;

/// Plans `NestedJoin { X ASOF JOIN Y ... }` into an [`AsOfJoinNode`].
#[derive(Debug, Default)]
pub struct AsOfRelationPlanner;

impl RelationPlanner for AsOfRelationPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        ctx: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::NestedJoin {
            table_with_joins,
            alias,
        } = relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let is_asof = table_with_joins.joins.len() == 1
            && matches!(
                table_with_joins.joins[0].join_operator,
                JoinOperator::AsOf { .. }
            );
        if !is_asof {
            return Ok(RelationPlanning::Original(Box::new(
                TableFactor::NestedJoin {
                    table_with_joins,
                    alias,
                },
            )));
        }
        let twj = *table_with_joins;
        let Some(join) = twj.joins.into_iter().next() else {
            return plan_err!("ASOF JOIN without a right side");
        };
        let JoinOperator::AsOf {
            match_condition,
            constraint,
        } = join.join_operator
        else {
            return plan_err!("not an ASOF JOIN");
        };
        let spec = syntax::decode(&match_condition, &constraint)
            .map_err(|m| DataFusionError::Plan(format!("ASOF JOIN: {m}")))?;
        let left = ctx.plan(twj.relation)?;
        let right = ctx.plan(join.relation)?;
        let plan = plan_asof(ctx, left, right, spec)?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan, alias,
        ))))
    }
}

fn columns_of(e: &Expr) -> HashSet<Column> {
    e.column_refs().into_iter().cloned().collect()
}

/// Which input an expression reads: Some(true) left only, Some(false) right only.
fn side(e: &Expr, left: &DFSchema, right: &DFSchema) -> Option<bool> {
    let cols = columns_of(e);
    if cols.is_empty() {
        return None;
    }
    if cols.iter().all(|c| left.has_column(c)) {
        Some(true)
    } else if cols.iter().all(|c| right.has_column(c)) {
        Some(false)
    } else {
        None
    }
}

fn comparison(op: Operator) -> Option<AsOfOp> {
    match op {
        Operator::GtEq => Some(AsOfOp::GtEq),
        Operator::Gt => Some(AsOfOp::Gt),
        Operator::LtEq => Some(AsOfOp::LtEq),
        Operator::Lt => Some(AsOfOp::Lt),
        _ => None,
    }
}

/// The AS OF join of `left` and `right` described by `spec`.
fn plan_asof(
    ctx: &mut dyn RelationPlannerContext,
    left: LogicalPlan,
    right: LogicalPlan,
    spec: AsOfSpec,
) -> Result<LogicalPlan> {
    let ls = Arc::clone(left.schema());
    let rs = Arc::clone(right.schema());
    let joined = ls.join(&rs).map_err(|e| {
        DataFusionError::Plan(format!(
            "ASOF JOIN: both sides have a column named the same way ({e}); give the tables different aliases (FROM t a ASOF JOIN t b ...)"
        ))
    })?;
    let mut keys: Vec<(Expr, Expr)> = Vec::new();
    let mut time: Option<(Expr, AsOfOp, Expr)> = None;
    let mut using: Vec<String> = Vec::new();

    // Classifies one `a <op> b` conjunct into a key pair or the time condition.
    let take = |e: &Expr,
                keys: &mut Vec<(Expr, Expr)>,
                time: &mut Option<(Expr, AsOfOp, Expr)>,
                allow_time: bool|
     -> Result<()> {
        let Expr::BinaryExpr(BinaryExpr {
            left: a,
            op,
            right: b,
        }) = e
        else {
            return plan_err!(
                "ASOF JOIN: `{e}` is not a comparison; the condition must be equalities joined by AND plus one time comparison (>=, >, <=, <)"
            );
        };
        if *op == Operator::Or {
            return plan_err!(
                "ASOF JOIN: OR is not supported in the join condition (`{e}`); use equalities joined by AND plus one time comparison"
            );
        }
        let (sa, sb) = (side(a, &ls, &rs), side(b, &ls, &rs));
        let (l, r, flipped) = match (sa, sb) {
            (Some(true), Some(false)) => ((**a).clone(), (**b).clone(), false),
            (Some(false), Some(true)) => ((**b).clone(), (**a).clone(), true),
            _ => {
                return plan_err!(
                    "ASOF JOIN: `{e}` must compare an expression of the left table with one of the right table"
                )
            }
        };
        if *op == Operator::Eq {
            keys.push((l, r));
            return Ok(());
        }
        let Some(cmp) = comparison(*op) else {
            return plan_err!(
                "ASOF JOIN: `{e}` uses `{op}`; keys must be equalities (left = right) and the time condition one of >=, >, <=, <"
            );
        };
        if !allow_time {
            return plan_err!(
                "ASOF JOIN: `{e}` is an inequality; with MATCH_CONDITION, ON accepts only equalities joined by AND"
            );
        }
        if let Some((tl, top, tr)) = time {
            return plan_err!(
                "ASOF JOIN allows one time comparison, found two: `{tl} {top} {tr}` and `{e}`"
            );
        }
        *time = Some((l, if flipped { cmp.flipped() } else { cmp }, r));
        Ok(())
    };

    if let Some(cond) = spec.condition {
        let e = ctx.sql_to_expr(cond, &joined)?;
        let parts = split_conjunction(&e);
        if parts.len() != 1 {
            return plan_err!("ASOF JOIN: MATCH_CONDITION must be a single comparison such as (l.ts >= r.ts), not `{e}`");
        }
        take(parts[0], &mut keys, &mut time, true)?;
        if time.is_none() {
            return plan_err!(
                "ASOF JOIN: MATCH_CONDITION must compare times with >=, >, <= or <, not `{e}`"
            );
        }
    }
    let duckdb_form = time.is_none();
    match spec.constraint {
        JoinConstraint::On(expr) => {
            let e = ctx.sql_to_expr(expr, &joined)?;
            for part in split_conjunction(&e) {
                take(part, &mut keys, &mut time, duckdb_form)?;
            }
        }
        JoinConstraint::Using(names) => {
            let mut cols: Vec<String> = Vec::new();
            for n in names {
                let Some(last) = n.0.last() else { continue };
                let Some(ident) = last.as_ident() else {
                    return plan_err!("ASOF JOIN: USING accepts column names only");
                };
                cols.push(ctx.normalize_ident(ident.clone()));
            }
            let n = cols.len();
            for (i, c) in cols.iter().enumerate() {
                let (lq, lf) = ls.qualified_field_with_unqualified_name(c).map_err(|_| {
                    DataFusionError::Plan(format!(
                        "ASOF JOIN: USING column `{c}` is not a column of the left table"
                    ))
                })?;
                let (rq, rf) = rs.qualified_field_with_unqualified_name(c).map_err(|_| {
                    DataFusionError::Plan(format!(
                        "ASOF JOIN: USING column `{c}` is not a column of the right table"
                    ))
                })?;
                let l = Expr::Column(Column::new(lq.cloned(), lf.name()));
                let r = Expr::Column(Column::new(rq.cloned(), rf.name()));
                if duckdb_form && i + 1 == n {
                    // DuckDB: USING (k, ..., ts) means l.ts >= r.ts on the last column.
                    time = Some((l, AsOfOp::GtEq, r));
                } else {
                    keys.push((l, r));
                }
                using.push(c.clone());
            }
        }
        JoinConstraint::None | JoinConstraint::Natural => {}
    }
    let Some((tl, op, tr)) = time else {
        return plan_err!(
            "ASOF JOIN needs a time comparison: add MATCH_CONDITION (l.ts >= r.ts), or `AND l.ts >= r.ts` to ON"
        );
    };

    // Same types on both sides (hash partitioning and comparisons need them).
    let coerce = |l: Expr, r: Expr, what: &str| -> Result<(Expr, Expr, DataType)> {
        let lt = l.to_field(&ls)?.1.data_type().clone();
        let rt = r.to_field(&rs)?.1.data_type().clone();
        if lt == rt {
            return Ok((l, r, lt));
        }
        if family(&lt) != family(&rt) {
            return plan_err!(
                "ASOF JOIN: {what} do not match: `{l}` is {lt} but `{r}` is {rt}; CAST one of them"
            );
        }
        let Some(common) = comparison_coercion(&lt, &rt) else {
            return plan_err!("ASOF JOIN: {what} `{l}` ({lt}) and `{r}` ({rt}) have types that cannot be compared");
        };
        let l = if lt == common {
            l
        } else {
            cast(l, common.clone())
        };
        let r = if rt == common {
            r
        } else {
            cast(r, common.clone())
        };
        Ok((l, r, common))
    };
    let mut on = Vec::with_capacity(keys.len());
    for (l, r) in keys {
        let (l, r, t) = coerce(l, r, "keys")?;
        if !can_hash(&t) || matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64) {
            return plan_err!("ASOF JOIN: key `{l}` has type {t}, which cannot be an equality key (use an integer, string, date or timestamp)");
        }
        on.push((l, r));
    }
    let (match_left, match_right, tt) = coerce(tl, tr, "time columns")?;
    if !is_time_type(&tt) {
        return plan_err!(
            "ASOF JOIN: time column `{match_left}` has type {tt}, which cannot be ordered as a time; use a timestamp, date or integer column (or CAST it)"
        );
    }
    let tolerance = match spec.tolerance {
        None => None,
        Some(t) => {
            let e = ctx.sql_to_expr(t, &DFSchema::empty())?;
            tolerance_value(&e, &tt)?;
            Some(e)
        }
    };
    let mut tiebreak = Vec::new();
    for t in spec.tiebreak {
        let e = ctx.sql_to_expr(t, &joined)?;
        if side(&e, &ls, &rs) != Some(false) {
            return plan_err!(
                "ASOF JOIN: TIEBREAK BY `{e}` must use columns of the right table only"
            );
        }
        tiebreak.push(e);
    }
    let implicit_tiebreak = tiebreak.is_empty();
    if implicit_tiebreak {
        // Deterministic choice among equal times: order by the other right columns.
        let used: HashSet<Column> = on
            .iter()
            .flat_map(|(_, r)| columns_of(r))
            .chain(columns_of(&match_right))
            .collect();
        for (q, f) in rs.iter() {
            let c = Column::new(q.cloned(), f.name());
            if !used.contains(&c) && !f.data_type().is_nested() {
                tiebreak.push(Expr::Column(c));
            }
        }
    }
    let schema = AsOfJoinNode::join_schema(&left, &right)?;
    let node = AsOfJoinNode {
        left: Arc::new(left),
        right: Arc::new(right),
        on,
        match_left,
        match_right,
        op,
        kind: spec.kind,
        tolerance,
        tiebreak,
        implicit_tiebreak,
        schema,
    };
    let plan = LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    });
    if using.is_empty() {
        return Ok(plan);
    }
    // USING exposes each column once (the left one), as a USING join does.
    let drop: HashSet<Column> = using
        .iter()
        .filter_map(|c| rs.qualified_field_with_unqualified_name(c).ok())
        .map(|(q, f)| Column::new(q.cloned(), f.name()))
        .collect();
    let keep: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(q, f)| Column::new(q.cloned(), f.name()))
        .filter(|c| !drop.contains(c))
        .map(Expr::Column)
        .collect();
    LogicalPlanBuilder::from(plan).project(keep)?.build()
}

/// Types that may be compared after coercion: numbers with numbers, text with
/// text, times with times (a string never silently becomes a number).
fn family(t: &DataType) -> u8 {
    match t {
        DataType::Dictionary(_, v) => family(v),
        t if t.is_numeric() => 0,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 1,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => 2,
        DataType::Boolean => 3,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => 4,
        _ => 5,
    }
}

/// The tolerance as a number of time units of `time_type` (validated at planning).
pub fn tolerance_value(e: &Expr, time_type: &DataType) -> Result<i64> {
    let value = match e {
        Expr::Literal(v, _) => v.clone(),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => v.cast_to(&c.field.data_type().clone())?,
            _ => return plan_err!("ASOF JOIN: TOLERANCE must be a constant, not `{e}`"),
        },
        _ => {
            return plan_err!(
                "ASOF JOIN: TOLERANCE must be a constant (a number or an INTERVAL), not `{e}`"
            )
        }
    };
    let nanos_per_unit: i128 = match time_type {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        DataType::Date32 => 86_400_000_000_000,
        _ => 0,
    };
    let amount: i128 = match &value {
        ScalarValue::IntervalMonthDayNano(Some(v)) => {
            if v.months != 0 {
                return plan_err!("ASOF JOIN: TOLERANCE in months or years has no fixed length; use days, hours, minutes or seconds");
            }
            if nanos_per_unit == 0 {
                return plan_err!("ASOF JOIN: an INTERVAL TOLERANCE needs a timestamp or date time column; use a number for integer times");
            }
            let nanos = i128::from(v.days) * 86_400_000_000_000 + i128::from(v.nanoseconds);
            if nanos % nanos_per_unit != 0 {
                return plan_err!("ASOF JOIN: TOLERANCE {e} is finer than the time column's unit ({time_type})");
            }
            nanos / nanos_per_unit
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            let nanos = i128::from(v.days) * 86_400_000_000_000 + i128::from(v.milliseconds) * 1_000_000;
            if nanos_per_unit == 0 || nanos % nanos_per_unit != 0 {
                return plan_err!("ASOF JOIN: TOLERANCE {e} does not fit the time column's unit ({time_type})");
            }
            nanos / nanos_per_unit
        }
        ScalarValue::IntervalYearMonth(_) => {
            return plan_err!("ASOF JOIN: TOLERANCE in months or years has no fixed length; use days, hours, minutes or seconds")
        }
        v if v.data_type().is_integer() && !v.is_null() => match v.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(n)) => i128::from(n),
            _ => return plan_err!("ASOF JOIN: TOLERANCE `{e}` is not a number"),
        },
        _ => {
            return plan_err!("ASOF JOIN: TOLERANCE must be a non-negative number (in the time column's unit) or an INTERVAL, not `{e}`")
        }
    };
    if amount < 0 {
        return plan_err!("ASOF JOIN: TOLERANCE must not be negative");
    }
    i64::try_from(amount)
        .map_err(|_| DataFusionError::Plan("ASOF JOIN: TOLERANCE is too large".into()))
}

/// How the operator finds matches (a session config extension; default `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsOfMode {
    /// From the inputs' estimated sizes: index the smaller side in memory when
    /// it is well within the memory limit (left: stream mode, right: probe
    /// mode), else sort-merge.
    #[default]
    Auto,
    /// Always sort both inputs and merge (spills through the sorts).
    Merge,
    /// Always index the right side in memory.
    Probe,
    /// Always index the left side in memory and stream the right side.
    Stream,
}

impl AsOfMode {
    /// `auto`, `merge`, `probe` or `stream` (`SLUICE_ASOF_MODE`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(AsOfMode::Auto),
            "merge" => Some(AsOfMode::Merge),
            "probe" => Some(AsOfMode::Probe),
            "stream" => Some(AsOfMode::Stream),
            _ => None,
        }
    }
}

/// An input's estimated size in memory (bytes), if its statistics give one.
fn estimated_bytes(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    use datafusion::common::stats::Precision;
    let ctx = datafusion::physical_plan::StatisticsContext::new();
    let args = datafusion::physical_plan::StatisticsArgs::new();
    let stats = ctx.compute(plan.as_ref(), &args).ok()?;
    let bytes = match (stats.total_byte_size, stats.num_rows) {
        (Precision::Exact(b) | Precision::Inexact(b), _) if b > 0 => b,
        (_, Precision::Exact(n) | Precision::Inexact(n)) => {
            n.saturating_mul(plan.schema().fields().len().max(1) * 16)
        }
        _ => return None,
    };
    // Decoded Arrow data is larger than Parquet bytes: be generous.
    Some(bytes.saturating_mul(3))
}

/// Which strategy runs: in auto mode, index the smaller input when it fits in
/// a quarter of the memory limit, else sort-merge (which spills).
fn choose_strategy(
    mode: AsOfMode,
    left: &Arc<dyn ExecutionPlan>,
    right: &Arc<dyn ExecutionPlan>,
    session: &dyn Session,
) -> Strategy {
    use datafusion::execution::memory_pool::MemoryLimit;
    match mode {
        AsOfMode::Merge => return Strategy::Merge,
        AsOfMode::Probe => return Strategy::Probe,
        AsOfMode::Stream => return Strategy::Stream,
        AsOfMode::Auto => {}
    }
    let limit = match session.runtime_env().memory_pool.memory_limit() {
        MemoryLimit::Finite(n) => n,
        _ => return Strategy::Merge,
    };
    let (l, r) = (estimated_bytes(left), estimated_bytes(right));
    tracing::debug!("AS OF inputs: left ~{l:?} bytes, right ~{r:?} bytes, memory limit {limit}");
    let fits = |b: Option<usize>| b.is_some_and(|b| b < limit / 4);
    match (fits(l), fits(r)) {
        (true, true) if l <= r => Strategy::Stream,
        (_, true) => Strategy::Probe,
        (true, false) => Strategy::Stream,
        (false, false) => Strategy::Merge,
    }
}

/// Turns [`AsOfJoinNode`] into [`AsOfJoinExec`].
#[derive(Debug, Default)]
pub struct AsOfExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for AsOfExtensionPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(n) = node.as_any().downcast_ref::<AsOfJoinNode>() else {
            return Ok(None);
        };
        let (ls, rs) = (logical_inputs[0].schema(), logical_inputs[1].schema());
        let phys =
            |e: &Expr, s: &DFSchema| planner.create_physical_expr(e, s, session, planning_ctx);
        let on =
            n.on.iter()
                .map(|(l, r)| Ok((phys(l, ls)?, phys(r, rs)?)))
                .collect::<Result<Vec<_>>>()?;
        let match_left = phys(&n.match_left, ls)?;
        let match_right = phys(&n.match_right, rs)?;
        let tiebreak = n
            .tiebreak
            .iter()
            .map(|e| phys(e, rs))
            .collect::<Result<Vec<_>>>()?;
        let tt = n.match_left.to_field(ls)?.1.data_type().clone();
        let tolerance = n
            .tolerance
            .as_ref()
            .map(|t| tolerance_value(t, &tt))
            .transpose()?;
        let mode = session
            .config()
            .get_extension::<AsOfMode>()
            .map(|m| *m)
            .unwrap_or_default();
        let strategy = choose_strategy(mode, &physical_inputs[0], &physical_inputs[1], session);
        let exec = AsOfJoinExec::try_new(
            Arc::clone(&physical_inputs[0]),
            Arc::clone(&physical_inputs[1]),
            on,
            match_left,
            match_right,
            n.op,
            n.kind,
            tolerance,
            tiebreak,
            n.implicit_tiebreak,
            strategy,
            Arc::new(n.schema.as_arrow().clone()),
        )?;
        Ok(Some(Arc::new(exec)))
    }
}

/// The query planner of every sluice session: DataFusion's default planner with
/// Delta's extension planner (writes, merges) and the AS OF join's.
#[derive(Debug, Default)]
pub struct SluiceQueryPlanner;

#[async_trait]
impl QueryPlanner for SluiceQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![
            deltalake::delta_datafusion::planner::DeltaExtensionPlanner::new(),
            Arc::new(AsOfExtensionPlanner),
        ]);
        planner.create_physical_plan(logical_plan, session).await
    }
}
