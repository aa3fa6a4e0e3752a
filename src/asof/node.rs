//! `AsOfJoinNode`: the logical AS OF join both SQL forms plan to.

use datafusion::common::{DFSchemaRef, JoinType, Result};
use datafusion::logical_expr::{build_join_schema, Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The time comparison: `left.ts <op> right.ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum AsOfOp {
    /// `>=`: the latest right time at or before the left time.
    GtEq,
    /// `>`: the latest right time strictly before.
    Gt,
    /// `<=`: the earliest right time at or after.
    LtEq,
    /// `<`: the earliest right time strictly after.
    Lt,
}

impl AsOfOp {
    /// The same condition with its sides swapped (`r.ts <= l.ts` is `l.ts >= r.ts`).
    pub fn flipped(self) -> Self {
        match self {
            AsOfOp::GtEq => AsOfOp::LtEq,
            AsOfOp::Gt => AsOfOp::Lt,
            AsOfOp::LtEq => AsOfOp::GtEq,
            AsOfOp::Lt => AsOfOp::Gt,
        }
    }
}

impl fmt::Display for AsOfOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AsOfOp::GtEq => ">=",
            AsOfOp::Gt => ">",
            AsOfOp::LtEq => "<=",
            AsOfOp::Lt => "<",
        })
    }
}

/// Inner (unmatched left rows dropped) or left (unmatched left rows kept, right side NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum AsOfKind {
    Inner,
    Left,
}

impl AsOfKind {
    /// The marker spelling: `"inner"` or `"left"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AsOfKind::Inner => "inner",
            AsOfKind::Left => "left",
        }
    }
}

impl fmt::Display for AsOfKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// For each left row, the nearest right row with equal keys whose time satisfies
/// `match_left <op> match_right`, within `tolerance`, ties broken by `tiebreak`
/// (highest wins).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsOfJoinNode {
    pub left: Arc<LogicalPlan>,
    pub right: Arc<LogicalPlan>,
    /// Equality keys (left expression, right expression), of equal types.
    pub on: Vec<(Expr, Expr)>,
    pub match_left: Expr,
    pub match_right: Expr,
    pub op: AsOfOp,
    pub kind: AsOfKind,
    /// Maximum distance between the times: a constant (number or interval).
    pub tolerance: Option<Expr>,
    /// Right-side expressions ordering rows with equal times (highest wins).
    pub tiebreak: Vec<Expr>,
    /// The tie-break was not written by the user: the other right columns,
    /// compared only when times are equal (not part of the sort).
    pub implicit_tiebreak: bool,
    pub schema: DFSchemaRef,
}

impl AsOfJoinNode {
    /// Output schema: the left fields, then the right fields (nullable).
    pub fn join_schema(left: &LogicalPlan, right: &LogicalPlan) -> Result<DFSchemaRef> {
        Ok(Arc::new(build_join_schema(
            left.schema(),
            right.schema(),
            &JoinType::Left,
        )?))
    }
}

impl PartialOrd for AsOfJoinNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (
            &self.left,
            &self.right,
            &self.on,
            &self.match_left,
            &self.match_right,
            &self.op,
            &self.kind,
            &self.tolerance,
            &self.tiebreak,
            &self.implicit_tiebreak,
        )
            .partial_cmp(&(
                &other.left,
                &other.right,
                &other.on,
                &other.match_left,
                &other.match_right,
                &other.op,
                &other.kind,
                &other.tolerance,
                &other.tiebreak,
                &other.implicit_tiebreak,
            ))
    }
}

impl UserDefinedLogicalNodeCore for AsOfJoinNode {
    fn name(&self) -> &str {
        "AsOfJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.left, &self.right]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        let mut e: Vec<Expr> = Vec::new();
        for (l, r) in &self.on {
            e.push(l.clone());
            e.push(r.clone());
        }
        e.push(self.match_left.clone());
        e.push(self.match_right.clone());
        if let Some(t) = &self.tolerance {
            e.push(t.clone());
        }
        e.extend(self.tiebreak.iter().cloned());
        e
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let on: Vec<String> = self.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
        let matching = format!("{} {} {}", self.match_left, self.op, self.match_right);
        let ties: Vec<String> = self.tiebreak.iter().map(|e| e.to_string()).collect();
        let tolerance = self.tolerance.as_ref().map(|t| t.to_string());
        explain(
            f,
            "AsOfJoin",
            self.kind,
            &on,
            &matching,
            tolerance,
            &ties,
            self.implicit_tiebreak,
        )
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [left, right]: [LogicalPlan; 2] = inputs.try_into().map_err(|_| {
            datafusion::error::DataFusionError::Internal("AsOfJoin has two inputs".into())
        })?;
        let n_on = self.on.len();
        let expected = 2 * n_on + 2 + usize::from(self.tolerance.is_some()) + self.tiebreak.len();
        if exprs.len() != expected {
            return Err(datafusion::error::DataFusionError::Internal(format!(
                "AsOfJoin expects {expected} expressions, got {}",
                exprs.len()
            )));
        }
        let mut it = exprs.into_iter();
        let mut on = Vec::with_capacity(n_on);
        for _ in 0..n_on {
            if let (Some(l), Some(r)) = (it.next(), it.next()) {
                on.push((l, r));
            }
        }
        let (Some(match_left), Some(match_right)) = (it.next(), it.next()) else {
            return Err(datafusion::error::DataFusionError::Internal(
                "AsOfJoin: missing match expressions".into(),
            ));
        };
        let tolerance = if self.tolerance.is_some() {
            it.next()
        } else {
            None
        };
        let tiebreak: Vec<Expr> = it.collect();
        let schema = Self::join_schema(&left, &right)?;
        Ok(AsOfJoinNode {
            left: Arc::new(left),
            right: Arc::new(right),
            on,
            match_left,
            match_right,
            op: self.op,
            kind: self.kind,
            tolerance,
            tiebreak,
            implicit_tiebreak: self.implicit_tiebreak,
            schema,
        })
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let n_left = self.left.schema().fields().len();
        let mut l = Vec::new();
        let mut r = Vec::new();
        for &i in output_columns {
            if i < n_left {
                l.push(i);
            } else {
                r.push(i - n_left);
            }
        }
        Some(vec![l, r])
    }
}

/// The EXPLAIN line of the node and of the operator (same shape for both).
#[allow(clippy::too_many_arguments)]
pub(crate) fn explain(
    f: &mut fmt::Formatter,
    name: &str,
    kind: AsOfKind,
    on: &[String],
    matching: &str,
    tolerance: Option<String>,
    ties: &[String],
    implicit_ties: bool,
) -> fmt::Result {
    write!(
        f,
        "{name}: kind={kind}, on=[{}], match=[{matching}]",
        on.join(", ")
    )?;
    if let Some(t) = tolerance {
        write!(f, ", tolerance={t}")?;
    }
    if !ties.is_empty() {
        let label = if implicit_ties { "ties" } else { "tiebreak" };
        write!(f, ", {label}=[{}]", ties.join(", "))?;
    }
    Ok(())
}
