//! Typing and conforming: string columns become declared types, rows that do
//! not fit are rejected with a reason naming the column, and file batches are
//! shaped into the table's schema.

use super::quarantine::Rejected;
use super::timestamps::{iso_micros, TimestampFormat};
use crate::error::{Error, Result};
use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Decimal128Array,
    StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{cast_with_options, filter_record_batch, take, CastOptions};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Decimal128Type, DecimalType, Field, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// How one file column is typed.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub name: String,
    pub data_type: DataType,
    pub not_null: bool,
}

/// SQL-ish name of a type for messages.
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        other => other.to_string(),
    }
}

const SAFE: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// Casts a string column to `dt`; values that do not parse become null.
fn cast_strings(col: &StringArray, dt: &DataType, ts_format: Option<&str>) -> Result<ArrayRef> {
    if let (DataType::Timestamp(TimeUnit::Microsecond, tz), Some(fmt)) = (dt, ts_format) {
        return Ok(parse_timestamps(col, fmt, tz.clone()));
    }
    if matches!(dt, DataType::Utf8) {
        return Ok(Arc::new(col.clone()));
    }
    if let Some(fast) = fast_cast(col, dt) {
        return Ok(fast);
    }
    let out = cast_with_options(col, dt, &SAFE)?;
    Ok(match dt {
        DataType::Float32 | DataType::Float64 => reject_overflow(col, out),
        _ => out,
    })
}

/// Casts the common spellings of decimals and UTC timestamps without arrow's
/// general parsers (which allocate per value and were a tenth of a CSV load's
/// CPU). Values spelled otherwise are cast by arrow, all of them in one call, so
/// every value's result is arrow's; `None` for types without a fast path.
fn fast_cast(col: &StringArray, dt: &DataType) -> Option<ArrayRef> {
    match dt {
        DataType::Decimal128(precision, scale) if *scale >= 0 => {
            let digits = *scale as u32;
            let (values, nulls) = cast_each::<Decimal128Type>(col, dt, |s| {
                let v = fast_decimal(s, digits)?;
                // Out of precision: arrow gives null, and a reason is recorded.
                Decimal128Type::is_valid_decimal_precision(v, *precision).then_some(v)
            })?;
            let array = Decimal128Array::new(values.into(), nulls)
                .with_precision_and_scale(*precision, *scale)
                .ok()?;
            Some(Arc::new(array))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz)
            if tz.as_deref().is_none_or(|z| z == "UTC" || z == "+00:00") =>
        {
            let (values, nulls) = cast_each::<TimestampMicrosecondType>(col, dt, iso_micros)?;
            let array =
                TimestampMicrosecondArray::new(values.into(), nulls).with_timezone_opt(tz.clone());
            Some(Arc::new(array))
        }
        _ => None,
    }
}

/// The values and validity of `col` cast to `dt` (of native type `T`): `fast`
/// reads each value, and the values it does not take are cast by arrow in one
/// call (null where arrow cannot cast them). `None` when arrow's cast fails as a
/// whole.
fn cast_each<T: ArrowPrimitiveType>(
    col: &StringArray,
    dt: &DataType,
    fast: impl Fn(&[u8]) -> Option<T::Native>,
) -> Option<(Vec<T::Native>, Option<NullBuffer>)> {
    let mut values = Vec::with_capacity(col.len());
    let mut misses: Vec<u32> = Vec::new();
    for i in 0..col.len() {
        values.push(if col.is_null(i) {
            T::Native::default()
        } else if let Some(v) = fast(col.value(i).as_bytes()) {
            v
        } else {
            misses.push(u32::try_from(i).ok()?);
            T::Native::default()
        });
    }
    if misses.is_empty() {
        return Some((values, col.nulls().cloned()));
    }
    let indices = UInt32Array::from(misses);
    let slow = take(col, &indices, None).ok()?;
    let slow = cast_with_options(&slow, dt, &SAFE).ok()?;
    let slow = slow.as_primitive_opt::<T>()?;
    let mut valid = BooleanBufferBuilder::new(col.len());
    match col.nulls() {
        Some(n) => valid.append_buffer(n.inner()),
        None => valid.append_n(col.len(), true),
    }
    for (j, i) in indices.values().iter().enumerate() {
        let i = *i as usize;
        if slow.is_null(j) {
            valid.set_bit(i, false);
        } else {
            values[i] = slow.value(j);
        }
    }
    Some((values, Some(NullBuffer::new(valid.finish()))))
}

/// `[+-]digits[.digits]` with at most `scale` fraction digits, as an unscaled
/// i128; `None` for anything else (arrow then decides).
fn fast_decimal(s: &[u8], scale: u32) -> Option<i128> {
    let (negative, s) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match s.iter().position(|b| *b == b'.') {
        Some(p) => (&s[..p], &s[p + 1..]),
        None => (s, &s[..0]),
    };
    if (int.is_empty() && frac.is_empty())
        || frac.len() > scale as usize
        || int.len() + scale as usize > 38
    {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.iter().chain(frac) {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i128::from(b - b'0');
    }
    v *= 10i128.pow(scale - frac.len() as u32);
    Some(if negative { -v } else { v })
}

fn parse_timestamps(col: &StringArray, fmt: &str, tz: Option<Arc<str>>) -> ArrayRef {
    let format = TimestampFormat::new(fmt);
    let values: TimestampMicrosecondArray = col.iter().map(|v| format.micros(v?)).collect();
    Arc::new(values.with_timezone_opt(tz))
}

/// One column of a batch to type: text to cast to the planned type, or values
/// already of that type (NDJSON arrays and objects).
pub enum Column {
    Text(StringArray),
    Typed(ArrayRef),
}

/// Types the string columns of one CSV batch. Returns the typed batch (rows
/// that fit) and the rejected rows.
pub fn type_strings(
    columns: &[StringArray],
    plans: &[ColumnPlan],
    schema: &SchemaRef,
    ts_format: Option<&str>,
    raw_text: impl Fn(usize) -> String,
    lines: &[u64],
) -> Result<(RecordBatch, Vec<Rejected>)> {
    let columns = columns.iter().cloned().map(Column::Text).collect();
    type_columns(columns, plans, schema, ts_format, "empty", raw_text, lines)
}

/// Types the columns of one batch (rows on `lines`) into `schema`. A row whose
/// text does not parse as its column's type, or that has no value for a
/// `not_null` column (said to be `missing`), is rejected with a reason naming the
/// column. Returns the typed batch (rows that fit) and the rejected rows.
pub fn type_columns(
    columns: Vec<Column>,
    plans: &[ColumnPlan],
    schema: &SchemaRef,
    ts_format: Option<&str>,
    missing: &str,
    raw_text: impl Fn(usize) -> String,
    lines: &[u64],
) -> Result<(RecordBatch, Vec<Rejected>)> {
    let n = lines.len();
    let mut typed: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    let mut bad: Option<Vec<Option<String>>> = None;
    for (col, plan) in columns.into_iter().zip(plans) {
        let (out, text) = match col {
            Column::Text(col) => (cast_strings(&col, &plan.data_type, ts_format)?, Some(col)),
            Column::Typed(a) => (a, None),
        };
        let given = text.as_ref().map_or(out.null_count(), |c| c.null_count());
        let unparsable = out.null_count() > given;
        let absent = plan.not_null && out.null_count() > 0;
        if unparsable || absent {
            let reasons = bad.get_or_insert_with(|| vec![None; n]);
            for (i, reason) in reasons.iter_mut().enumerate() {
                if reason.is_some() || !out.is_null(i) {
                    continue;
                }
                match &text {
                    Some(t) if t.is_valid(i) => {
                        *reason = Some(invalid_value(&plan.name, t.value(i), &plan.data_type));
                    }
                    _ if plan.not_null => {
                        *reason = Some(format!(
                            "column `{}` is {missing} but declared not_null",
                            plan.name
                        ));
                    }
                    _ => {}
                }
            }
        }
        typed.push(out);
    }
    let batch = RecordBatch::try_new(schema.clone(), typed)?;
    let Some(reasons) = bad else {
        return Ok((batch, Vec::new()));
    };
    let mut keep = BooleanBufferBuilder::new(n);
    let mut rejected = Vec::new();
    for (i, reason) in reasons.into_iter().enumerate() {
        keep.append(reason.is_none());
        if let Some(reason) = reason {
            rejected.push(Rejected {
                line: lines[i],
                raw: raw_text(i),
                reason,
            });
        }
    }
    let keep = BooleanArray::new(keep.finish(), None);
    Ok((filter_record_batch(&batch, &keep)?, rejected))
}

/// Why `text` is not a value of `dt` in column `name`: out of range when it is
/// a number of the right kind, else not valid.
fn invalid_value(name: &str, text: &str, dt: &DataType) -> String {
    let shown = truncate(text, 80);
    let ty = type_name(dt);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let integer = digits(unsigned);
    let decimal = match unsigned.split_once('.') {
        Some((i, f)) => {
            (i.is_empty() || digits(i))
                && (f.is_empty() || digits(f))
                && !(i.is_empty() && f.is_empty())
        }
        None => integer,
    };
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
            if integer =>
        {
            format!("column `{name}`: '{shown}' is out of range for {ty}")
        }
        DataType::Float32 | DataType::Float64 if text.parse::<f64>().is_ok() => {
            format!("column `{name}`: '{shown}' is out of range for {ty}")
        }
        DataType::Decimal128(p, s) if decimal => format!(
            "column `{name}`: '{shown}' does not fit {ty} (at most {} digits before the decimal point)",
            i16::from(*p) - i16::from(*s)
        ),
        _ => format!("column `{name}`: '{shown}' is not a valid {ty}"),
    }
}

/// Makes infinite values null unless the text says infinity: `1e400` overflows
/// a DOUBLE, it is not `inf`.
fn reject_overflow(col: &StringArray, out: ArrayRef) -> ArrayRef {
    fn finite_or_said<T: arrow::datatypes::ArrowPrimitiveType>(
        col: &StringArray,
        out: &ArrayRef,
        is_inf: impl Fn(T::Native) -> bool,
    ) -> Option<ArrayRef> {
        let values = out
            .as_any()
            .downcast_ref::<arrow::array::PrimitiveArray<T>>()?;
        if !values.values().iter().any(|v| is_inf(*v)) {
            return None;
        }
        let said_infinity = |s: &str| {
            let s = s.trim().trim_start_matches(['+', '-']);
            s.eq_ignore_ascii_case("inf") || s.eq_ignore_ascii_case("infinity")
        };
        let kept: Vec<bool> = (0..values.len())
            .map(|i| {
                values.is_valid(i) && (!is_inf(values.value(i)) || said_infinity(col.value(i)))
            })
            .collect();
        let fixed =
            arrow::array::PrimitiveArray::<T>::new(values.values().clone(), Some(kept.into()))
                .with_data_type(values.data_type().clone());
        Some(Arc::new(fixed))
    }
    let fixed = match out.data_type() {
        DataType::Float64 => {
            finite_or_said::<arrow::datatypes::Float64Type>(col, &out, |v: f64| v.is_infinite())
        }
        DataType::Float32 => {
            finite_or_said::<arrow::datatypes::Float32Type>(col, &out, |v: f32| v.is_infinite())
        }
        _ => None,
    };
    fixed.unwrap_or(out)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Guesses the type of a string column from a sample: BIGINT, DOUBLE, BOOLEAN,
/// TIMESTAMPTZ/TIMESTAMP, DATE, else VARCHAR.
pub fn infer_type(sample: &StringArray) -> DataType {
    if sample.null_count() == sample.len() {
        return DataType::Utf8;
    }
    let has_zone = sample.iter().flatten().any(|v| {
        // Bytes: the last six may start inside a character.
        let tail = &v.as_bytes()[v.len().saturating_sub(6)..];
        v.ends_with('Z') || v.ends_with('z') || matches!(tail, [b'+' | b'-', _, _, b':', _, _])
    });
    let candidates = [
        DataType::Int64,
        DataType::Float64,
        DataType::Boolean,
        DataType::Date32,
        DataType::Timestamp(
            TimeUnit::Microsecond,
            if has_zone { Some("UTC".into()) } else { None },
        ),
    ];
    for dt in candidates {
        if dt == DataType::Boolean
            && !sample
                .iter()
                .flatten()
                .all(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "false"))
        {
            continue;
        }
        if dt == DataType::Date32 && !sample.iter().flatten().all(|v| v.len() == 10) {
            continue;
        }
        if let Ok(out) = cast_with_options(sample, &dt, &SAFE) {
            if out.null_count() == sample.null_count() {
                return dt;
            }
        }
    }
    DataType::Utf8
}

/// Whether values of `from` can be stored in a column of `to` without loss.
pub fn widens_to(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to {
        return true;
    }
    match (from, to) {
        (Null, _) => true,
        (Int8, Int16 | Int32 | Int64 | Float32 | Float64)
        | (Int16, Int32 | Int64 | Float32 | Float64)
        | (Int32, Int64 | Float64)
        | (Int64, Float64)
        | (Float32, Float64)
        | (UInt8, Int16 | Int32 | Int64)
        | (UInt16, Int32 | Int64)
        | (UInt32, Int64) => true,
        (Int8 | Int16 | Int32 | Int64, Decimal128(..)) => true,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Date32, Timestamp(..)) => true,
        (Timestamp(_, a), Timestamp(_, b)) => a.is_some() == b.is_some(),
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            // Integer digits must fit too; i16 so odd (negative) scales cannot overflow.
            s1 <= s2 && (*p1 as i16 - *s1 as i16) <= (*p2 as i16 - *s2 as i16)
        }
        _ => false,
    }
}

/// Shapes `batch` (a file's columns) into `table` (the table's schema): columns
/// by name, missing ones null, compatible types widened.
pub fn conform(batch: &RecordBatch, table: &SchemaRef) -> Result<RecordBatch> {
    let src = batch.schema();
    let cols = table
        .fields()
        .iter()
        .map(|f| match src.index_of(f.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    Ok(cast_with_options(
                        c,
                        f.data_type(),
                        &CastOptions {
                            safe: false,
                            ..Default::default()
                        },
                    )?)
                }
            }
            Err(_) => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(table.clone(), cols).map_err(|e| Error::Schema {
        table: String::new(),
        message: e.to_string(),
    })
}

/// Merges the columns of a file into the table schema, or explains the conflict.
/// Returns the new table schema (new columns appended, nullable).
pub fn evolve(
    table_name: &str,
    table: &Schema,
    file_name: &str,
    file_fields: &[Field],
    allow_new: bool,
    text_format: bool,
) -> Result<Option<Schema>> {
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut changed = false;
    for f in file_fields {
        match table.field_with_name(f.name()) {
            Ok(existing) => {
                // In a text format every value can be read as text.
                let as_text = text_format && existing.data_type() == &DataType::Utf8;
                if !as_text && !widens_to(f.data_type(), existing.data_type()) {
                    return Err(Error::Schema {
                        table: table_name.to_string(),
                        message: format!(
                            "column `{}` is {} in the table but {} in `{file_name}`; declare the column's type in the source or load into a new table",
                            f.name(),
                            type_name(existing.data_type()),
                            type_name(f.data_type())
                        ),
                    });
                }
            }
            Err(_) => {
                if !allow_new {
                    return Err(Error::Schema {
                        table: table_name.to_string(),
                        message: format!(
                            "`{file_name}` has a new column `{}` ({}) and the source has schema_evolution = \"strict\"; set schema_evolution = \"add_columns\" to add it",
                            f.name(),
                            type_name(f.data_type())
                        ),
                    });
                }
                fields.push(f.clone().with_nullable(true));
                changed = true;
            }
        }
    }
    Ok(changed.then(|| Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers() {
        let s = |v: Vec<Option<&str>>| StringArray::from(v);
        assert_eq!(
            infer_type(&s(vec![Some("1"), None, Some("-3")])),
            DataType::Int64
        );
        assert_eq!(
            infer_type(&s(vec![Some("1.5"), Some("2")])),
            DataType::Float64
        );
        assert_eq!(
            infer_type(&s(vec![Some("true"), Some("FALSE")])),
            DataType::Boolean
        );
        assert_eq!(infer_type(&s(vec![Some("2026-01-02")])), DataType::Date32);
        assert_eq!(
            infer_type(&s(vec![Some("2026-01-02T10:00:00Z")])),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(infer_type(&s(vec![Some("x1")])), DataType::Utf8);
        // Text whose last six bytes start inside a character (found by the csv
        // fuzz target: slicing the string there panicked).
        assert_eq!(
            infer_type(&s(vec![Some("München"), Some("a\u{feff}b")])),
            DataType::Utf8
        );
        assert_eq!(
            infer_type(&s(vec![Some("2026-01-02T10:00:00+01:00")])),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn rejects_with_column_reason() {
        let cols = vec![
            StringArray::from(vec![Some("1"), Some("x"), None]),
            StringArray::from(vec![
                Some("2026-01-01T00:00:00Z"),
                Some("2026-01-01T00:00:00Z"),
                Some("bad"),
            ]),
        ];
        let plans = vec![
            ColumnPlan {
                name: "id".into(),
                data_type: DataType::Int64,
                not_null: true,
            },
            ColumnPlan {
                name: "ts".into(),
                data_type: DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                not_null: false,
            },
        ];
        let schema = Arc::new(Schema::new(
            plans
                .iter()
                .map(|p| Field::new(&p.name, p.data_type.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let (b, rej) = type_strings(
            &cols,
            &plans,
            &schema,
            None,
            |i| format!("raw{i}"),
            &[2, 3, 4],
        )
        .unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(rej.len(), 2);
        assert_eq!(rej[0].line, 3);
        assert_eq!(rej[0].reason, "column `id`: 'x' is not a valid BIGINT");
        assert_eq!(rej[1].reason, "column `id` is empty but declared not_null");
    }

    #[test]
    fn evolution_rules() {
        let t = Schema::new(vec![Field::new("a", DataType::Int64, true)]);
        let err = evolve(
            "raw.t",
            &t,
            "f.csv",
            &[Field::new("a", DataType::Utf8, true)],
            true,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("column `a` is BIGINT in the table but VARCHAR in `f.csv`"),
            "{err}"
        );
        let new = evolve(
            "raw.t",
            &t,
            "f.csv",
            &[Field::new("b", DataType::Utf8, true)],
            true,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(new.fields().len(), 2);
        assert!(evolve(
            "raw.t",
            &t,
            "f.csv",
            &[Field::new("b", DataType::Utf8, true)],
            false,
            false
        )
        .is_err());
    }

    /// The fast paths give exactly arrow's result, or leave the column to arrow.
    #[test]
    fn fast_casts_agree_with_arrow() {
        let decimals = [
            "0",
            "1",
            "-1",
            "+1",
            "12.5",
            "12.50",
            "-0.01",
            ".5",
            "5.",
            "-.5",
            "007.25",
            "99999999.99",
            "100000000.00",
            "1.234",
            " 1.5",
            "1e3",
            "-",
            "+",
            ".",
            "",
            "1.2.3",
            "abc",
            "12,5",
            "-0",
            "170141183460469231731687303715884105727",
        ];
        for (p, sc) in [(12u8, 2i8), (38, 0), (5, 5), (38, 10), (3, 0)] {
            let dt = DataType::Decimal128(p, sc);
            for v in decimals {
                let col = StringArray::from(vec![Some(v), None, Some("1")]);
                let expected = cast_with_options(&col, &dt, &SAFE).unwrap();
                let fast = fast_cast(&col, &dt).unwrap();
                assert_eq!(&fast, &expected, "decimal {v:?} as {dt}");
            }
            // All spellings in one column: each value is arrow's.
            let col: StringArray = decimals.iter().map(Some).chain([None]).collect();
            let expected = cast_with_options(&col, &dt, &SAFE).unwrap();
            assert_eq!(&fast_cast(&col, &dt).unwrap(), &expected, "{dt}");
        }
        let timestamps = [
            "2026-01-01T00:00:00Z",
            "2026-01-01 00:00:00",
            "2026-01-01T12:34:56.5Z",
            "2026-01-01T12:34:56.123456",
            "1969-12-31T23:59:59.999999Z",
            "1900-02-28 01:02:03",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T23:59:60Z",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T00:00:00+02:00",
            "2026-01-01T00:00:00.1234567Z",
            "2026-01-01",
            "2026-01-01T00:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-01-01t00:00:00z",
            "2026-1-01T00:00:00Z",
            "garbage",
            "",
        ];
        for tz in [None, Some("UTC"), Some("+00:00"), Some("Europe/Paris")] {
            let dt = DataType::Timestamp(TimeUnit::Microsecond, tz.map(Into::into));
            for v in timestamps {
                let col = StringArray::from(vec![Some(v), None]);
                let expected = cast_with_options(&col, &dt, &SAFE).unwrap();
                if let Some(fast) = fast_cast(&col, &dt) {
                    assert_eq!(&fast, &expected, "timestamp {v:?} as {dt}");
                }
            }
            let col: StringArray = timestamps.iter().map(Some).chain([None]).collect();
            let expected = cast_with_options(&col, &dt, &SAFE).unwrap();
            if let Some(fast) = fast_cast(&col, &dt) {
                assert_eq!(&fast, &expected, "mixed timestamps as {dt}");
            }
        }
        let col = StringArray::from(vec![Some("2026-01-01T00:00:00Z"), None]);
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert!(fast_cast(&col, &utc).is_some());
    }
}
