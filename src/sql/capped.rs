//! Scalar functions whose output size their arguments choose, held to the
//! query's memory limit.
//!
//! DataFusion's memory pool tracks operators (sorts, joins, aggregates), not
//! the arrays a scalar function returns: `cardinality(range(1, 1000000000))`
//! built an 8 GB list under a 512 MiB limit. The functions below can be asked
//! for an output of any size by a small argument; each is wrapped so that,
//! before it runs, the size its arguments ask for is computed and a call that
//! would exceed the limit fails with an error naming the function, the size
//! and the limit. Functions whose output is bounded by their input's size need
//! no cap: the input was already counted where it was produced.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{resources_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use std::sync::Arc;

/// The functions capped, by the rule that sizes their output.
const CAPPED: [(&str, Rule); 7] = [
    ("range", Rule::Series { inclusive: false }),
    ("generate_series", Rule::Series { inclusive: true }),
    ("repeat", Rule::Repeat),
    ("lpad", Rule::Pad),
    ("rpad", Rule::Pad),
    ("array_repeat", Rule::ArrayRepeat),
    ("array_resize", Rule::ArrayResize),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    /// `range` / `generate_series`: (stop - start) / step elements of 8 bytes.
    Series { inclusive: bool },
    /// `repeat(s, n)`: n copies of s.
    Repeat,
    /// `lpad` / `rpad(s, n [, fill])`: n characters.
    Pad,
    /// `array_repeat(x, n)`: n copies of x.
    ArrayRepeat,
    /// `array_resize(a, n [, x])`: n elements.
    ArrayResize,
}

/// Wraps the functions above, as registered in `functions`, with `limit` bytes.
pub(crate) fn capped_functions(
    functions: &std::collections::HashMap<String, Arc<ScalarUDF>>,
    limit: usize,
) -> Vec<ScalarUDF> {
    CAPPED
        .iter()
        .filter_map(|(name, rule)| {
            let inner = functions.get(*name)?;
            // Already wrapped (a session with another limit): wrap the original.
            let any: &dyn std::any::Any = inner.inner().as_ref();
            let inner = match any.downcast_ref::<Capped>() {
                Some(c) => c.inner.clone(),
                None => inner.as_ref().clone(),
            };
            Some(ScalarUDF::new_from_impl(Capped {
                inner,
                rule: *rule,
                limit,
            }))
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: ScalarUDF,
    rule: Rule,
    limit: usize,
}

impl Capped {
    /// Bytes the call with `args` over `rows` rows would build (an estimate
    /// from below: offsets and validity are not counted).
    fn output_bytes(&self, args: &[ColumnarValue], rows: usize) -> u128 {
        let rows = rows.max(1);
        match self.rule {
            Rule::Series { inclusive } => series_elements(args, rows, inclusive) * 8,
            Rule::Repeat => per_row(args, rows, |row| {
                let len = string_len(args.first()?, row)? as u128;
                let n = int_arg(args.get(1)?, row)?.max(0) as u128;
                Some(len * n)
            }),
            Rule::Pad => per_row(args, rows, |row| {
                let n = int_arg(args.get(1)?, row)?.max(0) as u128;
                let width = match args.get(2) {
                    Some(fill) => max_char_bytes(fill, row).unwrap_or(1),
                    None => 1,
                };
                Some(n * width as u128)
            }),
            Rule::ArrayRepeat => {
                let element = args.first().map_or(8, |a| value_bytes(a, rows)).max(1);
                per_row(args, rows, |row| {
                    let n = int_arg(args.get(1)?, row)?.max(0) as u128;
                    Some(n * element)
                })
            }
            Rule::ArrayResize => per_row(args, rows, |row| {
                let n = int_arg(args.get(1)?, row)?.max(0) as u128;
                Some(n * 8)
            }),
        }
    }
}

/// Sums `f` over the rows (a scalar argument list is one row repeated).
fn per_row(args: &[ColumnarValue], rows: usize, f: impl Fn(usize) -> Option<u128>) -> u128 {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    if all_scalar {
        return f(0).unwrap_or(0).saturating_mul(rows as u128);
    }
    (0..rows)
        .map(|r| f(r).unwrap_or(0))
        .fold(0, u128::saturating_add)
}

/// Elements `range`/`generate_series` would build over all rows.
fn series_elements(args: &[ColumnarValue], rows: usize, inclusive: bool) -> u128 {
    per_row(args, rows, |row| {
        let values: Vec<ScalarValue> = args
            .iter()
            .map(|a| scalar_at(a, row))
            .collect::<Option<_>>()?;
        let (start, stop, step) = match values.as_slice() {
            [stop] => (0, as_i128(stop)?, 1),
            [start, stop] => (as_i128(start)?, as_i128(stop)?, 1),
            [start, stop, step] => match step {
                ScalarValue::IntervalMonthDayNano(Some(i)) => {
                    // Dates and timestamps: the span in nanoseconds over the step
                    // (a month counted as 28 days, so the estimate errs low).
                    let (s, e) = (as_nanos(start)?, as_nanos(stop)?);
                    let step = i128::from(i.months) * 28 * 86_400_000_000_000
                        + i128::from(i.days) * 86_400_000_000_000
                        + i128::from(i.nanoseconds);
                    (s, e, step)
                }
                other => (as_i128(start)?, as_i128(stop)?, as_i128(other)?),
            },
            _ => return None,
        };
        if step == 0 {
            return None;
        }
        let span = (stop - start) / step;
        Some(span.max(0) as u128 + u128::from(inclusive))
    })
}

fn scalar_at(arg: &ColumnarValue, row: usize) -> Option<ScalarValue> {
    match arg {
        ColumnarValue::Scalar(s) => Some(s.clone()),
        ColumnarValue::Array(a) if row < a.len() => ScalarValue::try_from_array(a, row).ok(),
        ColumnarValue::Array(_) => None,
    }
}

fn as_i128(v: &ScalarValue) -> Option<i128> {
    match v.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(Some(n)) => Some(i128::from(n)),
        _ => None,
    }
}

fn as_nanos(v: &ScalarValue) -> Option<i128> {
    match v {
        ScalarValue::Date32(Some(d)) => Some(i128::from(*d) * 86_400_000_000_000),
        ScalarValue::Date64(Some(ms)) => Some(i128::from(*ms) * 1_000_000),
        ScalarValue::TimestampSecond(Some(t), _) => Some(i128::from(*t) * 1_000_000_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => Some(i128::from(*t) * 1_000_000),
        ScalarValue::TimestampMicrosecond(Some(t), _) => Some(i128::from(*t) * 1_000),
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(i128::from(*t)),
        _ => None,
    }
}

fn int_arg(arg: &ColumnarValue, row: usize) -> Option<i64> {
    match arg {
        ColumnarValue::Array(a) if a.data_type() == &DataType::Int64 => {
            let a = a.as_primitive::<Int64Type>();
            (row < a.len() && a.is_valid(row)).then(|| a.value(row))
        }
        other => match as_i128(&scalar_at(other, row)?)? {
            n if n > i128::from(i64::MAX) => Some(i64::MAX),
            n => i64::try_from(n).ok(),
        },
    }
}

fn string_len(arg: &ColumnarValue, row: usize) -> Option<usize> {
    match scalar_at(arg, row)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s.len()),
        _ => None,
    }
}

fn max_char_bytes(arg: &ColumnarValue, row: usize) -> Option<usize> {
    match scalar_at(arg, row)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s.chars().map(char::len_utf8).max().unwrap_or(1)),
        _ => None,
    }
}

/// Bytes of one value of `arg` (the average over the rows of an array).
fn value_bytes(arg: &ColumnarValue, rows: usize) -> u128 {
    match arg {
        ColumnarValue::Scalar(s) => s.size() as u128,
        ColumnarValue::Array(a) => (array_bytes(a) / rows.max(1)) as u128,
    }
}

fn array_bytes(a: &ArrayRef) -> usize {
    a.get_array_memory_size()
}

fn human(bytes: u128) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl ScalarUDFImpl for Capped {
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

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = self.output_bytes(&args.args, args.number_rows);
        if bytes > self.limit as u128 {
            return resources_err!(
                "{}(...) would build about {} for {} row(s), more than the query's memory limit of {}",
                self.inner.name(),
                human(bytes),
                args.number_rows,
                human(self.limit as u128)
            );
        }
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::{Engine, EngineOptions};
    use crate::warehouse::Warehouse;

    async fn engine(limit: usize) -> Engine {
        let wh = Warehouse::open("memory://capped", &Default::default()).unwrap();
        let options = EngineOptions {
            memory_limit: Some(limit),
            ..Default::default()
        };
        Engine::with_options(wh, "main", &options).await.unwrap()
    }

    async fn first(e: &Engine, sql: &str) -> crate::Result<String> {
        let batches = e.query(sql).await?;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(crate::Error::from)?
            .to_string();
        Ok(text.lines().nth(3).unwrap_or_default().to_string())
    }

    #[tokio::test]
    async fn functions_that_allocate_are_held_to_the_limit() {
        let e = engine(64 << 20).await;
        for sql in [
            "SELECT cardinality(range(1, 1000000000))",
            "SELECT cardinality(generate_series(1, 1000000000, 1))",
            "SELECT length(repeat('abcdefgh', 100000000))",
            "SELECT length(lpad('x', 1000000000))",
            "SELECT length(rpad('x', 100000000, 'é'))",
            "SELECT cardinality(array_repeat(1, 100000000))",
            "SELECT cardinality(array_resize([1], 100000000))",
            "SELECT cardinality(range(DATE '1900-01-01', DATE '2100-01-01', INTERVAL '1 second'))",
            "SELECT sum(cardinality(range(n))) FROM (VALUES (100000000), (1)) t(n)",
        ] {
            let err = first(&e, sql).await.unwrap_err();
            assert_eq!(err.exit_code(), 1, "{sql}: {err}");
            assert!(
                err.to_string()
                    .contains("more than the query's memory limit of 64.0 MiB"),
                "{sql}: {err}"
            );
        }
        // Within the limit, the functions answer as before.
        assert!(first(&e, "SELECT cardinality(range(1, 1000001))")
            .await
            .unwrap()
            .contains("1000000"));
        assert!(first(&e, "SELECT length(repeat('ab', 1000))")
            .await
            .unwrap()
            .contains("2000"));
        assert!(first(&e, "SELECT lpad('x', 3, '-')")
            .await
            .unwrap()
            .contains("--x"));
        assert!(first(&e, "SELECT cardinality(list_repeat(1, 10))")
            .await
            .unwrap()
            .contains("10"));
        // A per-session limit applies too.
        let small = e.with_session(None, Some(1 << 20));
        assert!(first(&small, "SELECT cardinality(range(1, 1000000))")
            .await
            .is_err());
        assert!(first(&e, "SELECT cardinality(range(1, 1000000))")
            .await
            .is_ok());
    }
}
