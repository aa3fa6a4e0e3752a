//! SQL type names for people: `DESCRIBE t` and
//! `information_schema.columns.data_type` say `VARCHAR`, `DECIMAL(10,2)`
//! and `TIMESTAMP WITH TIME ZONE` (as DuckDB and Postgres do), not Arrow's
//! `Utf8`, `Decimal128(10, 2)` and `Timestamp(µs, "UTC")`. The query
//! results keep their Arrow types; only these two listings are renamed.

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    col, lit, ColumnarValue, DescribeTable, LogicalPlan, LogicalPlanBuilder, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use std::str::FromStr;
use std::sync::Arc;

/// The SQL name of `t`.
pub fn sql_type_name(t: &DataType) -> String {
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "_S",
        TimeUnit::Millisecond => "_MS",
        TimeUnit::Microsecond => "",
        TimeUnit::Nanosecond => "_NS",
    };
    match t {
        DataType::Null => "NULL".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 => "HALF".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(u, None) => format!("TIMESTAMP{}", unit(u)),
        DataType::Timestamp(u, Some(_)) => format!("TIMESTAMP{} WITH TIME ZONE", unit(u)),
        DataType::Interval(IntervalUnit::YearMonth)
        | DataType::Interval(IntervalUnit::DayTime)
        | DataType::Interval(IntervalUnit::MonthDayNano) => "INTERVAL".into(),
        DataType::Duration(u) => format!("INTERVAL{}", unit(u)),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => {
            format!("{}[]", sql_type_name(f.data_type()))
        }
        DataType::FixedSizeList(f, n) => format!("{}[{n}]", sql_type_name(f.data_type())),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        crate::names::ident(f.name()),
                        sql_type_name(f.data_type())
                    )
                })
                .collect();
            format!("STRUCT({})", inner.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP({}, {})",
                sql_type_name(kv[0].data_type()),
                sql_type_name(kv[1].data_type())
            ),
            other => format!("MAP({other})"),
        },
        DataType::Dictionary(_, v) => sql_type_name(v),
        DataType::RunEndEncoded(_, v) => sql_type_name(v.data_type()),
        DataType::Union(..) => "UNION".into(),
    }
}

/// [`sql_type_name`] of the Arrow type written as Arrow displays it (what
/// DataFusion's `information_schema.columns` holds); text that is no Arrow
/// type is kept.
fn sql_type_name_of_display(arrow: &str) -> String {
    match DataType::from_str(arrow) {
        Ok(t) => sql_type_name(&t),
        Err(_) => arrow.to_string(),
    }
}

/// `sql_type_name(arrow_type_text)`: the function the rename inserts over
/// `information_schema.columns.data_type`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SqlTypeName {
    signature: Signature,
}

impl ScalarUDFImpl for SqlTypeName {
    fn name(&self) -> &str {
        "sluice_sql_type_name"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{Array, StringArray};
        let rename = |s: Option<&str>| s.map(sql_type_name_of_display);
        match args.args.first() {
            Some(ColumnarValue::Array(a)) => {
                let texts = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                let texts = texts
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| {
                        datafusion::common::DataFusionError::Internal(
                            "sluice_sql_type_name takes text".into(),
                        )
                    })?;
                let out: StringArray = (0..texts.len())
                    .map(|i| rename((!texts.is_null(i)).then(|| texts.value(i))))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            Some(ColumnarValue::Scalar(s)) => {
                let text = match s {
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                        v.as_deref()
                    }
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(rename(text))))
            }
            None => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
        }
    }
}

/// `plan` with `DESCRIBE` answered in SQL type names and
/// `information_schema.columns.data_type` renamed.
pub(crate) fn with_sql_type_names(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::DescribeTable(d) => describe(&d).map(Transformed::yes),
        LogicalPlan::TableScan(scan)
            if scan.table_name.schema() == Some("information_schema")
                && scan.table_name.table() == "columns" =>
        {
            let schema = scan.projected_schema.clone();
            let udf = Arc::new(ScalarUDF::new_from_impl(SqlTypeName {
                signature: Signature::any(1, Volatility::Immutable),
            }));
            let exprs: Vec<_> = schema
                .columns()
                .into_iter()
                .map(|c| {
                    if c.name == "data_type" {
                        udf.call(vec![col(c.clone())])
                            .alias_qualified(c.relation.clone(), "data_type")
                    } else {
                        col(c)
                    }
                })
                .collect();
            LogicalPlanBuilder::from(LogicalPlan::TableScan(scan))
                .project(exprs)?
                .build()
                .map(Transformed::yes)
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// `DESCRIBE t` as rows of `column_name, data_type, is_nullable`.
fn describe(d: &DescribeTable) -> DfResult<LogicalPlan> {
    let rows: Vec<Vec<datafusion::logical_expr::Expr>> = d
        .schema
        .fields()
        .iter()
        .map(|f| {
            vec![
                lit(f.name().as_str()),
                lit(sql_type_name(f.data_type())),
                lit(if f.is_nullable() { "YES" } else { "NO" }),
            ]
        })
        .collect();
    if rows.is_empty() {
        return LogicalPlanBuilder::empty(false).build();
    }
    LogicalPlanBuilder::values(rows)?
        .project(vec![
            col("column1").alias("column_name"),
            col("column2").alias("data_type"),
            col("column3").alias("is_nullable"),
        ])?
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    #[test]
    fn names_read_like_sql() {
        let tz = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let cases = [
            (DataType::Utf8, "VARCHAR"),
            (DataType::Utf8View, "VARCHAR"),
            (DataType::Int64, "BIGINT"),
            (DataType::Int32, "INTEGER"),
            (DataType::Float64, "DOUBLE"),
            (DataType::Decimal128(10, 2), "DECIMAL(10,2)"),
            (tz.clone(), "TIMESTAMP WITH TIME ZONE"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "TIMESTAMP",
            ),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                "TIMESTAMP_NS",
            ),
            (DataType::Date32, "DATE"),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                "BIGINT[]",
            ),
            (
                DataType::Struct(
                    vec![
                        Field::new("a", DataType::Int32, true),
                        Field::new("Odd Name", DataType::Utf8, true),
                    ]
                    .into(),
                ),
                "STRUCT(a INTEGER, \"Odd Name\" VARCHAR)",
            ),
        ];
        for (t, want) in cases {
            assert_eq!(sql_type_name(&t), want, "{t}");
            // information_schema holds Arrow's display text: it reads back.
            assert_eq!(sql_type_name_of_display(&t.to_string()), want, "{t}");
        }
        assert_eq!(sql_type_name_of_display("not a type"), "not a type");
    }
}
