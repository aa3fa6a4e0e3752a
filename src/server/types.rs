//! Arrow types at the Flight boundary, and statement parameters.
//!
//! DataFusion produces `Utf8View`/`BinaryView` and dictionaries that the Flight
//! SQL JDBC driver (≤ 18.3) and arrow JS cannot read: every schema and batch
//! leaving the server is normalised to plain types, and the schema announced in
//! FlightInfo is the schema of the stream, nullability included.

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UnionArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use datafusion::common::ScalarValue;
use std::sync::Arc;

/// The type clients receive for `dt`.
pub fn client_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, v) => client_type(v),
        DataType::RunEndEncoded(_, v) => client_type(v.data_type()),
        DataType::List(f) | DataType::ListView(f) => DataType::List(client_field(f)),
        DataType::LargeList(f) | DataType::LargeListView(f) => DataType::LargeList(client_field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(client_field(f), *n),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(client_field).collect::<Fields>())
        }
        DataType::Map(f, sorted) => DataType::Map(client_field(f), *sorted),
        other => other.clone(),
    }
}

fn client_field(f: &FieldRef) -> FieldRef {
    Arc::new(
        f.as_ref()
            .clone()
            .with_data_type(client_type(f.data_type())),
    )
}

/// `schema` with client types.
pub fn client_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema.fields().iter().map(client_field).collect::<Fields>(),
        schema.metadata().clone(),
    ))
}

/// `batch` as `schema` (from [`client_schema`]): casts what differs.
pub fn conform_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.num_columns() != schema.fields().len() {
        return Err(ArrowError::SchemaError(format!(
            "result has {} columns, its schema {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// Rewrites `?` placeholders (JDBC, ADBC, DB-API) to DataFusion's positional
/// `$1, $2, ...`, leaving strings, quoted names and comments alone.
pub fn positional_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                out.push(c);
                // Doubled quotes stay inside the literal.
                while let Some((_, d)) = chars.next() {
                    out.push(d);
                    if d == c {
                        if chars.peek().map(|(_, e)| *e) == Some(c) {
                            if let Some((_, e)) = chars.next() {
                                out.push(e);
                            }
                            continue;
                        }
                        break;
                    }
                }
            }
            '-' if chars.peek().map(|(_, d)| *d) == Some('-') => {
                out.push(c);
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek().map(|(_, d)| *d) == Some('*') => {
                out.push(c);
                let mut prev = ' ';
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// The rows of a parameter batch, each a list of values: columns in order
/// (ADBC names them `0`, `1`, ...; flightsql-dbapi sends dense unions).
pub fn parameter_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<ScalarValue>>, ArrowError> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(batch.num_columns());
            for column in batch.columns() {
                values.push(scalar_at(column, row)?);
            }
            rows.push(values);
        }
    }
    Ok(rows)
}

fn scalar_at(column: &ArrayRef, row: usize) -> Result<ScalarValue, ArrowError> {
    if let Some(union) = column.as_any().downcast_ref::<UnionArray>() {
        let type_id = union.type_id(row);
        let child = union.child(type_id);
        let offset = union.value_offset(row);
        return scalar_at(child, offset);
    }
    let v = ScalarValue::try_from_array(column, row)
        .map_err(|e| ArrowError::InvalidArgumentError(e.to_string()))?;
    Ok(match v {
        ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => ScalarValue::Utf8(s),
        ScalarValue::BinaryView(b) | ScalarValue::LargeBinary(b) => ScalarValue::Binary(b),
        ScalarValue::Dictionary(_, inner) => *inner,
        other => other,
    })
}

/// A field for the parameter schema of a prepared statement.
pub fn parameter_field(index: usize, dt: Option<&DataType>) -> Field {
    Field::new(
        format!("${}", index + 1),
        dt.map(client_type).unwrap_or(DataType::Null),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringViewArray};

    #[test]
    fn placeholders_outside_strings_and_comments() {
        assert_eq!(
            positional_placeholders("SELECT ? , '?', \"a?\" -- ?\n FROM t WHERE x = ? /* ? */"),
            "SELECT $1 , '?', \"a?\" -- ?\n FROM t WHERE x = $2 /* ? */"
        );
        assert_eq!(
            positional_placeholders("SELECT 'it''s ?', ?"),
            "SELECT 'it''s ?', $1"
        );
    }

    #[test]
    fn views_become_plain_types() {
        let schema = Schema::new(vec![
            Field::new("s", DataType::Utf8View, false),
            Field::new("n", DataType::Int64, true),
        ]);
        let target = client_schema(&schema);
        assert_eq!(target.field(0).data_type(), &DataType::Utf8);
        assert!(!target.field(0).is_nullable());
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringViewArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![Some(1), None])),
            ],
        )
        .unwrap();
        let out = conform_batch(&batch, &target).unwrap();
        assert_eq!(out.schema(), target);
        assert_eq!(out.num_rows(), 2);
    }
}
