//! `sum` that fails on overflow: DataFusion's `sum` over BIGINT, BIGINT
//! UNSIGNED and DECIMAL adds wrapping (`sum` of two rows of
//! 9223372036854775807 is -2). PostgreSQL and DuckDB widen the result instead;
//! sluice keeps DataFusion's result type and makes a sum that does not fit it an
//! error naming the type, as integer `+` is (see `checked.rs`).
//!
//! [`CheckedSum`] is DataFusion's `Sum` (signature, result type, states,
//! simplifications, statistics) with checked accumulators for those types,
//! plain, grouped and sliding (window frames). `sum(DISTINCT ...)` and the other
//! types (floats, intervals, durations) use DataFusion's own.

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, BooleanArray,
    BooleanBufferBuilder, PrimitiveArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, DecimalType, FieldRef, Int64Type, UInt64Type,
};
use datafusion::common::{exec_datafusion_err, Result, ScalarValue};
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, Expr, GroupsAccumulator, Operator,
    ReversedUDAF, SetMonotonicity, Signature, StatisticsArgs,
};
use std::fmt::Debug;

/// DataFusion's `sum` with checked addition (see the module doc).
#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct CheckedSum {
    inner: Sum,
}

/// The checked accumulator for `dt`, or `None` to use DataFusion's.
macro_rules! checked_for {
    ($dt:expr, $make:ident) => {
        match $dt {
            DataType::Int64 => Some($make::<Int64Type>($dt)),
            DataType::UInt64 => Some($make::<UInt64Type>($dt)),
            DataType::Decimal128(..) => Some($make::<Decimal128Type>($dt)),
            _ => None,
        }
    };
}

fn plain<T: ArrowPrimitiveType>(dt: &DataType) -> Box<dyn Accumulator> {
    Box::new(SumAcc::<T> {
        sum: None,
        data_type: dt.clone(),
    })
}

fn grouped<T: ArrowPrimitiveType>(dt: &DataType) -> Box<dyn GroupsAccumulator> {
    Box::new(SumGroups::<T> {
        sums: Vec::new(),
        seen: BooleanBufferBuilder::new(0),
        data_type: dt.clone(),
    })
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.return_field(arg_fields)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !args.is_distinct {
            if let Some(acc) = checked_for!(args.return_field.data_type(), plain) {
                return Ok(acc);
            }
        }
        self.inner.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if let Some(acc) = checked_for!(args.return_field.data_type(), grouped) {
            return Ok(acc);
        }
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !args.is_distinct {
            if let Some(acc) = checked_for!(args.return_field.data_type(), plain) {
                return Ok(acc);
            }
        }
        self.inner.create_sliding_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }

    fn simplify_expr_op_literal(
        &self,
        agg_function: &AggregateFunction,
        arg: &Expr,
        op: Operator,
        lit: &Expr,
        arg_is_left: bool,
    ) -> Result<Option<Expr>> {
        self.inner
            .simplify_expr_op_literal(agg_function, arg, op, lit, arg_is_left)
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }
}

fn overflow(dt: &DataType) -> datafusion::error::DataFusionError {
    exec_datafusion_err!(
        "sum overflows {}: the total does not fit the type; cast the argument to a wider type (DECIMAL(38, 0) or DOUBLE)",
        match dt {
            DataType::Int64 => "BIGINT".to_string(),
            DataType::UInt64 => "BIGINT UNSIGNED".to_string(),
            DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
            other => other.to_string(),
        }
    )
}

/// `a + b` for the sum's type: checked, and within a decimal's precision.
fn add<T: ArrowPrimitiveType>(a: T::Native, b: T::Native, dt: &DataType) -> Result<T::Native> {
    a.add_checked(b).map_err(|_| overflow(dt))
}

fn sub<T: ArrowPrimitiveType>(a: T::Native, b: T::Native, dt: &DataType) -> Result<T::Native> {
    a.sub_checked(b).map_err(|_| overflow(dt))
}

/// The total must also fit a decimal's precision (its digits, not only i128).
fn fits<T: ArrowPrimitiveType>(v: T::Native, dt: &DataType) -> Result<()> {
    let any: &dyn std::any::Any = &v;
    if let (DataType::Decimal128(p, _), Some(v)) = (dt, any.downcast_ref::<i128>()) {
        if !Decimal128Type::is_valid_decimal_precision(*v, *p) {
            return Err(overflow(dt));
        }
    }
    Ok(())
}

struct SumAcc<T: ArrowPrimitiveType> {
    sum: Option<T::Native>,
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> Debug for SumAcc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckedSum({}, {:?})", self.data_type, self.sum)
    }
}

impl<T: ArrowPrimitiveType> SumAcc<T> {
    fn add_array(&mut self, values: &ArrayRef, negate: bool) -> Result<()> {
        let values = values.as_primitive::<T>();
        for v in values.iter().flatten() {
            let current = self.sum.unwrap_or_default();
            self.sum = Some(if negate {
                sub::<T>(current, v, &self.data_type)?
            } else {
                add::<T>(current, v, &self.data_type)?
            });
        }
        Ok(())
    }

    fn scalar(&self) -> Result<ScalarValue> {
        if let Some(v) = self.sum {
            fits::<T>(v, &self.data_type)?;
        }
        let array =
            PrimitiveArray::<T>::from_iter([self.sum]).with_data_type(self.data_type.clone());
        ScalarValue::try_from_array(&array, 0)
    }
}

impl<T: ArrowPrimitiveType> Accumulator for SumAcc<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add_array(&values[0], false)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add_array(&states[0], false)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add_array(&values[0], true)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.scalar()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.scalar()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// The grouped form: one total per group, null until a value is seen.
struct SumGroups<T: ArrowPrimitiveType> {
    sums: Vec<T::Native>,
    seen: BooleanBufferBuilder,
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> Debug for SumGroups<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CheckedSumGroups({}, {} groups)",
            self.data_type,
            self.sums.len()
        )
    }
}

impl<T: ArrowPrimitiveType> SumGroups<T> {
    fn add_array(
        &mut self,
        values: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, T::Native::default());
        if self.seen.len() < total_num_groups {
            self.seen
                .append_n(total_num_groups - self.seen.len(), false);
        }
        let values = values.as_primitive::<T>();
        for (row, &group) in group_indices.iter().enumerate() {
            if values.is_null(row) || opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row))
            {
                continue;
            }
            self.sums[group] = add::<T>(self.sums[group], values.value(row), &self.data_type)?;
            self.seen.set_bit(group, true);
        }
        Ok(())
    }

    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = self.seen.finish();
        let (taken, rest) = match emit_to {
            EmitTo::All => (seen, None),
            EmitTo::First(n) => (seen.slice(0, n), Some(seen.slice(n, seen.len() - n))),
        };
        if let Some(rest) = rest {
            self.seen.append_buffer(&rest);
        }
        for (v, ok) in sums.iter().zip(taken.iter()) {
            if ok {
                fits::<T>(*v, &self.data_type)?;
            }
        }
        let array = PrimitiveArray::<T>::new(sums.into(), Some(NullBuffer::new(taken)))
            .with_data_type(self.data_type.clone());
        Ok(std::sync::Arc::new(array))
    }
}

impl<T: ArrowPrimitiveType> GroupsAccumulator for SumGroups<T> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.add_array(&values[0], group_indices, opt_filter, total_num_groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.add_array(&values[0], group_indices, None, total_num_groups)
    }

    /// A state per input row (when partial aggregation is skipped): the value
    /// itself, null where the filter drops it.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = values[0].as_primitive::<T>();
        let nulls = match opt_filter {
            None => values.nulls().cloned(),
            Some(f) => {
                let keep: NullBuffer = f
                    .iter()
                    .map(|k| k == Some(true))
                    .collect::<Vec<bool>>()
                    .into();
                NullBuffer::union(values.nulls(), Some(&keep))
            }
        };
        let state = PrimitiveArray::<T>::new(values.values().clone(), nulls)
            .with_data_type(self.data_type.clone());
        Ok(vec![std::sync::Arc::new(state)])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)?])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<T::Native>() + self.seen.capacity() / 8
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::Engine;
    use crate::warehouse::Warehouse;

    async fn engine() -> Engine {
        let wh = Warehouse::open("memory://checked_sum", &Default::default()).unwrap();
        Engine::new(wh, "main").await.unwrap()
    }

    async fn answer(e: &Engine, sql: &str) -> String {
        let batches = e.query(sql).await.unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn sums_that_overflow_are_errors() {
        let e = engine().await;
        let big = "(VALUES (9223372036854775807), (1)) t(a)";
        for sql in [
            format!("SELECT sum(a) FROM {big}"),
            format!("SELECT k, sum(a) FROM (SELECT 1 AS k, a FROM {big}) GROUP BY k"),
            format!("SELECT sum(a) OVER (ORDER BY a ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM {big}"),
            format!("SELECT sum(a) OVER () FROM {big}"),
            "SELECT sum(CAST(a AS BIGINT UNSIGNED)) FROM (VALUES (18446744073709551615), (1)) t(a)".into(),
            // 10 digits more than the argument's precision: 38 digits at most.
            "SELECT sum(CAST(a AS DECIMAL(38, 0))) FROM (VALUES ('99999999999999999999999999999999999999'), ('1')) t(a)".into(),
        ] {
            match e.query(&sql).await {
                Ok(b) => panic!(
                    "{sql}: {}",
                    datafusion::arrow::util::pretty::pretty_format_batches(&b).unwrap()
                ),
                Err(err) => {
                    assert_eq!(err.exit_code(), 1, "{sql}: {err}");
                    assert!(err.to_string().contains("sum overflows"), "{sql}: {err}");
                }
            }
        }
    }

    #[tokio::test]
    async fn sums_in_range_are_answered() {
        let e = engine().await;
        for (sql, want) in [
            (
                "SELECT sum(a) AS v FROM (VALUES (9223372036854775807), (-1), (NULL)) t(a)",
                "9223372036854775806",
            ),
            (
                "SELECT sum(a) AS v FROM (VALUES (CAST(NULL AS BIGINT))) t(a)",
                "|   |",
            ),
            (
                "SELECT sum(a) AS v FROM (SELECT value AS a FROM range(1, 100001)) t",
                "5000050000",
            ),
            (
                "SELECT sum(a) FILTER (WHERE a > 2) AS v FROM (VALUES (1), (2), (3), (4)) t(a)",
                "7",
            ),
            (
                "SELECT sum(DISTINCT a) AS v FROM (VALUES (1), (1), (2)) t(a)",
                "3",
            ),
            (
                "SELECT sum(CAST(a AS DECIMAL(10, 2))) AS v FROM (VALUES (1.25), (2.5)) t(a)",
                "3.75",
            ),
            (
                "SELECT sum(a) AS v FROM (VALUES (1.5), (2.25)) t(a)",
                "3.75",
            ),
        ] {
            let text = answer(&e, sql).await;
            assert!(text.contains(want), "{sql}: {text}");
        }
        // Grouped, with groups emitted in parts and nulls kept per group.
        let text = answer(
            &e,
            "SELECT k, sum(v) AS s FROM (SELECT value % 3 AS k, CASE WHEN value % 3 = 2 THEN NULL ELSE value END AS v FROM range(0, 30000)) GROUP BY k ORDER BY k",
        )
        .await;
        let rows: Vec<&str> = text.lines().skip(3).take(3).collect();
        assert!(rows[0].contains("149985000"), "{text}");
        assert!(rows[1].contains("149995000"), "{text}");
        assert_eq!(rows[2].replace(' ', ""), "|2||", "{text}");
        // Sliding frames retract.
        let text = answer(
            &e,
            "SELECT sum(a) OVER (ORDER BY a ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS v FROM (VALUES (1), (2), (3)) t(a) ORDER BY v",
        )
        .await;
        assert!(text.contains("| 5 |"), "{text}");
    }
}
