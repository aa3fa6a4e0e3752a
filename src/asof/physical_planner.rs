//! [`AsOfJoinNode`] → one of the three AS OF plans: the extension planner
//! (installed next to Delta's in the session's query planner,
//! `sql::planner`) and the choice of strategy, which is the choice of
//! plan ([`AsOfMergeExec`], [`AsOfProbeExec`] or [`AsOfStreamExec`]), so
//! `EXPLAIN` shows what runs. SQL → node is the SQL front end's job
//! (`sql::planner::asof`).

use super::join::AsOfCondition;
use super::merge::AsOfMergeExec;
use super::node::AsOfJoinNode;
use super::probe::AsOfProbeExec;
use super::stream_side::AsOfStreamExec;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::{plan_err, DFSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use std::sync::Arc;

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

/// How a plan finds matches in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Both inputs sorted by key and time, then merged ([`AsOfMergeExec`]).
    Merge,
    /// The right side indexed in memory, each left row looked up ([`AsOfProbeExec`]).
    Probe,
    /// The left side indexed in memory, the right side streamed past it
    /// ([`AsOfStreamExec`]).
    Stream,
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

/// Turns [`AsOfJoinNode`] into the plan of the chosen strategy.
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
        let condition = AsOfCondition {
            on,
            match_left,
            match_right,
            op: n.op,
            kind: n.kind,
            tolerance,
            tiebreak,
            implicit_tiebreak: n.implicit_tiebreak,
        };
        let schema = Arc::new(n.schema.as_arrow().clone());
        let left = Arc::clone(&physical_inputs[0]);
        let right = Arc::clone(&physical_inputs[1]);
        let plan: Arc<dyn ExecutionPlan> = match choose_strategy(mode, &left, &right, session) {
            Strategy::Merge => Arc::new(AsOfMergeExec::try_new(left, right, condition, schema)?),
            Strategy::Probe => Arc::new(AsOfProbeExec::try_new(left, right, condition, schema)?),
            Strategy::Stream => Arc::new(AsOfStreamExec::try_new(left, right, condition, schema)?),
        };
        Ok(Some(plan))
    }
}
