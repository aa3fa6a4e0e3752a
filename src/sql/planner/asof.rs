//! SQL → [`AsOfJoinNode`]: a relation planner that receives the AS OF joins
//! [`crate::sql::parser::nest_asof_joins`] wrapped in nested joins, checks
//! their keys and time columns, and builds the logical node. Turning the node
//! into an operator is [`crate::asof`]'s job.

use crate::asof::{is_time_type, tolerance_value, AsOfJoinNode, AsOfOp};
use crate::sql::parser::{self as syntax, AsOfSpec};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{plan_err, Column, DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::BinaryExpr;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::utils::{can_hash, split_conjunction};
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::{cast, Expr, Extension, LogicalPlan, LogicalPlanBuilder, Operator};
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
