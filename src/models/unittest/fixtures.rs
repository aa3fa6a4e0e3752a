//! Fixture rows of unit tests: `format: dict` (a list of mappings), `csv`
//! (text with a header line) or `sql` (a query), inline or from
//! `tests/fixtures/`, and the SQL that turns them into typed rows.

use crate::error::{did_you_mean, Error, Result};
use crate::models::schema_yml::FixtureProps;
use crate::names::ident;
use crate::project::Project;
use datafusion::arrow::datatypes::DataType;
use serde_json::Value;

/// What kind of YAML or CSV value a cell held (types a fixture whose table
/// does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Bool,
    Text,
}

/// A cell: its text and kind, `None` for null.
pub type Cell = Option<(String, Kind)>;

/// Fixture rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    /// `format: dict` or `csv`: the columns named, and one cell per column per row.
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<Cell>>,
    },
    /// `format: sql`: a query returning the rows.
    Sql(String),
}

/// Reads `format` / `rows` / `fixture`.
pub(super) fn parse_rows(project: &Project, f: &FixtureProps) -> Result<Rows> {
    let format = f.format.as_deref().unwrap_or("dict").to_ascii_lowercase();
    let fixture_text = |ext: &str| -> Result<Option<String>> {
        let Some(name) = &f.fixture else {
            return Ok(None);
        };
        for dir in &project.settings.test_paths {
            for file in crate::project::files_with_extension(dir, &[ext])? {
                if file
                    .file_stem()
                    .is_some_and(|s| s.to_string_lossy() == *name)
                {
                    let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
                    return Ok(Some(text));
                }
            }
        }
        Err(Error::invalid(format!(
            "fixture `{name}`: no file {name}.{ext} under the test folders (tests/fixtures/{name}.{ext})"
        )))
    };
    match format.as_str() {
        "dict" => match &f.rows {
            Some(Value::Array(rows)) => dict_rows(rows),
            Some(Value::Null) | None if f.fixture.is_none() => Ok(Rows::Table {
                columns: Vec::new(),
                rows: Vec::new(),
            }),
            _ => Err(Error::invalid(
                "format dict takes `rows:` as a list of mappings, e.g. [{id: 1, name: a}]",
            )),
        },
        "csv" => {
            let text = match (&f.rows, fixture_text("csv")?) {
                (Some(Value::String(s)), _) => s.clone(),
                (_, Some(t)) => t,
                _ => {
                    return Err(Error::invalid(
                        "format csv takes `rows:` as CSV text with a header line, or `fixture: name`",
                    ))
                }
            };
            csv_rows(&text)
        }
        "sql" => match (&f.rows, fixture_text("sql")?) {
            (Some(Value::String(s)), _) => Ok(Rows::Sql(clean(s))),
            (_, Some(t)) => Ok(Rows::Sql(clean(&t))),
            _ => Err(Error::invalid(
                "format sql takes `rows:` as a query (select ... union all select ...), or `fixture: name`",
            )),
        },
        other => Err(Error::invalid(format!(
            "unknown format `{other}`{}; use dict, csv or sql",
            did_you_mean(other, ["dict", "csv", "sql"])
        ))),
    }
}

fn clean(sql: &str) -> String {
    let mut s = sql.trim();
    while let Some(rest) = s.strip_suffix(';') {
        s = rest.trim_end();
    }
    s.to_string()
}

/// `[{id: 1, name: a}, {id: 2}]`: the columns in the order first named.
fn dict_rows(rows: &[Value]) -> Result<Rows> {
    let mut columns: Vec<String> = Vec::new();
    let mut maps = Vec::new();
    for (n, r) in rows.iter().enumerate() {
        let Value::Object(m) = r else {
            return Err(Error::invalid(format!(
                "row {}: expected a mapping of column to value, not {r}",
                n + 1
            )));
        };
        for k in m.keys() {
            if !columns.iter().any(|c| c.eq_ignore_ascii_case(k)) {
                columns.push(k.clone());
            }
        }
        maps.push(m);
    }
    let mut out = Vec::new();
    for (n, m) in maps.into_iter().enumerate() {
        let mut row = vec![None; columns.len()];
        for (k, v) in m {
            let Some(i) = columns.iter().position(|c| c.eq_ignore_ascii_case(k)) else {
                continue;
            };
            row[i] = match v {
                Value::Null => None,
                Value::Bool(b) => Some((b.to_string(), Kind::Bool)),
                Value::Number(x) if x.is_i64() || x.is_u64() => Some((x.to_string(), Kind::Int)),
                Value::Number(x) => Some((x.to_string(), Kind::Float)),
                Value::String(s) => Some((s.clone(), Kind::Text)),
                other => {
                    return Err(Error::invalid(format!(
                        "row {}, column `{k}`: a value is a string, number, boolean or null, not {other}",
                        n + 1
                    )))
                }
            };
        }
        out.push(row);
    }
    Ok(Rows::Table { columns, rows: out })
}

/// CSV text with a header line; an empty field is null.
fn csv_rows(text: &str) -> Result<Rows> {
    let records = split_csv(text)?;
    let mut it = records.into_iter();
    let Some(header) = it.next() else {
        return Err(Error::invalid(
            "CSV rows need a header line naming the columns",
        ));
    };
    let columns: Vec<String> = header.into_iter().map(|h| h.trim().to_string()).collect();
    let mut rows = Vec::new();
    for (n, rec) in it.enumerate() {
        if rec.len() != columns.len() {
            return Err(Error::invalid(format!(
                "CSV line {}: {} fields, the header has {}",
                n + 2,
                rec.len(),
                columns.len()
            )));
        }
        rows.push(
            rec.into_iter()
                .map(|v| {
                    if v.is_empty() {
                        None
                    } else {
                        let kind = if v.parse::<i64>().is_ok() {
                            Kind::Int
                        } else if v.parse::<f64>().is_ok() {
                            Kind::Float
                        } else if v == "true" || v == "false" {
                            Kind::Bool
                        } else {
                            Kind::Text
                        };
                        Some((v, kind))
                    }
                })
                .collect(),
        );
    }
    Ok(Rows::Table { columns, rows })
}

/// Splits CSV text into records (`"` quotes, `""` inside quotes); blank
/// lines are skipped.
fn split_csv(text: &str) -> Result<Vec<Vec<String>>> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut line_has_content = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                line_has_content = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field).trim().to_string());
                line_has_content = true;
            }
            '\n' => {
                if line_has_content || !field.trim().is_empty() {
                    record.push(std::mem::take(&mut field).trim().to_string());
                    records.push(std::mem::take(&mut record));
                }
                field.clear();
                line_has_content = false;
            }
            '\r' => {}
            c => {
                field.push(c);
                if !c.is_whitespace() {
                    line_has_content = true;
                }
            }
        }
    }
    if quoted {
        return Err(Error::invalid("CSV rows: a quoted field is not closed"));
    }
    if line_has_content || !field.trim().is_empty() {
        record.push(field.trim().to_string());
        records.push(record);
    }
    Ok(records)
}

/// A SQL string literal.
pub(super) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `arrow_cast(expr, 'Type')`.
pub(super) fn cast(expr: &str, t: &DataType) -> String {
    format!("arrow_cast({expr}, {})", lit(&t.to_string()))
}

/// The type of a fixture column whose table does not exist.
pub(super) fn infer(cells: impl Iterator<Item = Option<Kind>>) -> DataType {
    let mut kind: Option<Kind> = None;
    for k in cells.flatten() {
        kind = Some(match (kind, k) {
            (None, k) => k,
            (Some(a), b) if a == b => a,
            (Some(Kind::Int | Kind::Float), Kind::Int | Kind::Float) => Kind::Float,
            _ => Kind::Text,
        });
    }
    match kind {
        Some(Kind::Int) => DataType::Int64,
        Some(Kind::Float) => DataType::Float64,
        Some(Kind::Bool) => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// The rows of a `Rows::Table` as a query with the given column types:
/// `fields` lists every column of the result (those `columns` does not name
/// are NULL); a named column that is not a field is an error.
pub(super) fn table_sql(
    columns: &[String],
    rows: &[Vec<Cell>],
    fields: &[(String, DataType)],
    what: &str,
) -> Result<String> {
    let mut index = Vec::with_capacity(fields.len());
    for c in columns {
        if !fields.iter().any(|(f, _)| f.eq_ignore_ascii_case(c)) {
            return Err(Error::invalid(format!(
                "{what}: column `{c}` is not a column of it{}; its columns: {}",
                did_you_mean(c, fields.iter().map(|(f, _)| f.as_str())),
                fields
                    .iter()
                    .map(|(f, _)| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    for (f, _) in fields {
        index.push(columns.iter().position(|c| c.eq_ignore_ascii_case(f)));
    }
    let select = |row: Option<&Vec<Cell>>| -> String {
        let cols: Vec<String> = fields
            .iter()
            .zip(&index)
            .map(|((f, t), i)| {
                let value = match (row, i) {
                    (Some(r), Some(i)) => match &r[*i] {
                        Some((text, _)) => lit(text),
                        None => "NULL".to_string(),
                    },
                    _ => "NULL".to_string(),
                };
                format!("{} AS {}", cast(&value, t), ident(f))
            })
            .collect();
        format!("SELECT {}", cols.join(", "))
    };
    if rows.is_empty() {
        return Ok(format!("{} LIMIT 0", select(None)));
    }
    Ok(rows
        .iter()
        .map(|r| select(Some(r)))
        .collect::<Vec<_>>()
        .join("\nUNION ALL\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_and_csv_rows() {
        let v: Value =
            serde_yaml::from_str("[{id: 1, name: a}, {id: 2.5, flag: true}, {name: null}]")
                .unwrap();
        let Value::Array(a) = v else { unreachable!() };
        let Rows::Table { columns, rows } = dict_rows(&a).unwrap() else {
            unreachable!()
        };
        assert_eq!(columns, vec!["id", "name", "flag"]);
        assert_eq!(rows[0][0], Some(("1".into(), Kind::Int)));
        assert_eq!(rows[1][0], Some(("2.5".into(), Kind::Float)));
        assert_eq!(rows[1][1], None);
        assert_eq!(rows[2], vec![None, None, None]);
        assert_eq!(
            infer(rows.iter().map(|r| r[0].as_ref().map(|c| c.1))),
            DataType::Float64
        );
        let Rows::Table { columns, rows } = csv_rows("id,name\n1,\"a, b\"\n\n2,\n").unwrap() else {
            unreachable!()
        };
        assert_eq!(columns, vec!["id", "name"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], Some(("a, b".into(), Kind::Text)));
        assert_eq!(rows[1][1], None);
        assert!(csv_rows("id,name\n1\n")
            .unwrap_err()
            .to_string()
            .contains("line 2: 1 fields, the header has 2"));
    }

    #[test]
    fn fixture_columns_must_exist_and_missing_ones_are_null() {
        let fields = vec![
            ("id".to_string(), DataType::Int64),
            ("name".to_string(), DataType::Utf8),
        ];
        let sql = table_sql(
            &["id".to_string()],
            &[vec![Some(("7".into(), Kind::Int))]],
            &fields,
            "given",
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT arrow_cast('7', 'Int64') AS id, arrow_cast(NULL, 'Utf8') AS name"
        );
        let e = table_sql(&["nmae".to_string()], &[], &fields, "given `ref('x')`")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column `nmae` is not a column of it") && e.contains("`name`"),
            "{e}"
        );
    }

    /// The types arrow_cast is given are read back by DataFusion.
    #[tokio::test]
    async fn arrow_cast_reads_the_type_names() {
        use datafusion::arrow::datatypes::TimeUnit;
        let ctx = datafusion::prelude::SessionContext::new();
        for t in [
            DataType::Int64,
            DataType::Int32,
            DataType::Float64,
            DataType::Boolean,
            DataType::Utf8,
            DataType::Utf8View,
            DataType::Date32,
            DataType::Decimal128(10, 2),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Timestamp(TimeUnit::Microsecond, None),
        ] {
            let value = match t {
                DataType::Boolean => "true",
                DataType::Utf8 | DataType::Utf8View => "x",
                DataType::Date32 => "2026-01-02",
                DataType::Timestamp(..) => "2026-01-02 03:04:05",
                _ => "12",
            };
            let sql = format!("SELECT {} AS v", cast(&lit(value), &t));
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            assert_eq!(batches[0].schema().field(0).data_type(), &t, "{sql}");
        }
    }
}
