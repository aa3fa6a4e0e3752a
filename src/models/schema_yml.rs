//! dbt `schema.yml` files under the models folders: model descriptions, config,
//! column docs and generic tests, and `sources:` declarations.

use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

/// One parsed properties file.
#[derive(Debug, Default, Deserialize)]
pub struct PropertiesFile {
    #[serde(default)]
    pub models: Vec<ModelProps>,
    #[serde(default)]
    pub sources: Vec<SourceProps>,
    #[serde(default)]
    pub seeds: Vec<ModelProps>,
    /// dbt 1.8 unit tests (`unit_tests:`).
    #[serde(default)]
    pub unit_tests: Vec<UnitTestProps>,
    #[serde(skip)]
    pub file: PathBuf,
}

/// `unit_tests:` entry: a model's output on given input rows must equal the
/// expected rows ([`super::unittest`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UnitTestProps {
    pub name: String,
    pub model: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub given: Vec<GivenProps>,
    pub expect: FixtureProps,
    /// `{vars: {...}, macros: {is_incremental: true}, env_vars: {...}}`.
    #[serde(default)]
    pub overrides: Option<Value>,
    /// `{tags: [...], enabled: false, meta: {...}}`.
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Value>>,
}

/// One `given:` input: `input: ref('x')` and its rows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GivenProps {
    pub input: String,
    #[serde(flatten)]
    pub fixture: FixtureProps,
}

/// Rows as written: `format: dict` (a list of mappings, the default), `csv`
/// (CSV text with a header line) or `sql` (a query), inline in `rows` or in
/// a fixture file (`fixture: name`, `tests/fixtures/name.csv|.sql`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FixtureProps {
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub rows: Option<Value>,
    #[serde(default)]
    pub fixture: Option<String>,
}

/// `models:` / `seeds:` entry.
#[derive(Debug, Default, Deserialize)]
pub struct ModelProps {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub columns: Vec<ColumnProps>,
    #[serde(default)]
    pub tests: Vec<Value>,
    #[serde(default)]
    pub data_tests: Vec<Value>,
    /// The properties file it is in.
    #[serde(skip)]
    pub file: PathBuf,
}

/// `columns:` entry.
#[derive(Debug, Default, Deserialize)]
pub struct ColumnProps {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tests: Vec<Value>,
    #[serde(default)]
    pub data_tests: Vec<Value>,
}

/// `sources:` entry.
#[derive(Debug, Default, Deserialize)]
pub struct SourceProps {
    pub name: String,
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub tables: Vec<SourceTableProps>,
    /// `freshness: {warn_after: {count, period}, error_after: ..., filter}`
    /// for every table (a table's own wins; `freshness: null` turns it off).
    #[serde(default, deserialize_with = "present")]
    pub freshness: Option<Value>,
    #[serde(default)]
    pub loaded_at_field: Option<String>,
    /// dbt 1.9+: `config: {freshness: ..., loaded_at_field: ...}`.
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Value>>,
}

/// A table of a source.
#[derive(Debug, Default, Deserialize)]
pub struct SourceTableProps {
    pub name: String,
    #[serde(default)]
    pub identifier: Option<String>,
    /// `Some(Value::Null)` when written as `freshness: null`.
    #[serde(default, deserialize_with = "present")]
    pub freshness: Option<Value>,
    #[serde(default)]
    pub loaded_at_field: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub columns: Vec<ColumnProps>,
    #[serde(default)]
    pub tests: Vec<Value>,
    #[serde(default)]
    pub data_tests: Vec<Value>,
}

/// Keeps an explicit `null` (as `Some(Value::Null)`) apart from a missing key.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Reads every `*.yml` / `*.yaml` under `dirs`.
pub fn read_all(dirs: &[PathBuf]) -> Result<Vec<PropertiesFile>> {
    let mut files = Vec::new();
    for d in dirs {
        files.extend(crate::project::files_with_extension(d, &["yml", "yaml"])?);
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
        if text.trim().is_empty() {
            continue;
        }
        out.push(parse(&text, f)?);
    }
    Ok(out)
}

/// Parses the text of the properties file `file`.
pub fn parse(text: &str, file: PathBuf) -> Result<PropertiesFile> {
    let mut p: PropertiesFile = serde_yaml::from_str(text).map_err(|e| {
        Error::config(
            &file,
            match e.location() {
                Some(l) => format!("line {}: {e}", l.line()),
                None => e.to_string(),
            },
        )
    })?;
    for m in p.models.iter_mut().chain(p.seeds.iter_mut()) {
        m.file = file.clone();
    }
    p.file = file;
    Ok(p)
}

/// A generic test as written: its name and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    pub name: String,
    pub args: serde_json::Map<String, Value>,
    pub warn_only: bool,
    /// dbt's `fail_calc` config: the aggregate over the failing rows that
    /// counts the failures (default `count(*)`).
    pub fail_calc: Option<String>,
}

/// Parses `unique`, `{accepted_values: {values: [..]}}`, and dbt 1.10's
/// `{accepted_values: {arguments: {values: [..]}, config: {severity: warn}}}`.
pub fn parse_test(v: &Value) -> Result<TestSpec> {
    match v {
        Value::String(s) => Ok(TestSpec {
            name: s.clone(),
            args: Default::default(),
            warn_only: false,
            fail_calc: None,
        }),
        Value::Object(m) if m.len() == 1 || m.contains_key("test_name") => {
            // dbt's other form: `{test_name: unique, name: my_test, config: ...}`.
            let flat;
            let (name, body) = match m.get("test_name") {
                Some(Value::String(t)) => {
                    let mut rest = m.clone();
                    rest.remove("test_name");
                    flat = Value::Object(rest);
                    (t, &flat)
                }
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "test_name must be a test's name, not {other}"
                    )))
                }
                None => m
                    .iter()
                    .next()
                    .ok_or_else(|| Error::invalid("empty test"))?,
            };
            let mut args = match body {
                Value::Object(b) => b.clone(),
                Value::Null => Default::default(),
                other => {
                    return Err(Error::invalid(format!(
                        "test `{name}`: expected a mapping of arguments, not {other}"
                    )))
                }
            };
            let mut warn_only = false;
            let mut fail_calc = None;
            if let Some(Value::Object(c)) = args.remove("config") {
                if let Some(Value::String(s)) = c.get("severity") {
                    warn_only = s.eq_ignore_ascii_case("warn");
                }
                if let Some(Value::String(f)) = c.get("fail_calc") {
                    fail_calc = Some(f.clone());
                }
            }
            if let Some(Value::String(s)) = args.get("severity") {
                warn_only = s.eq_ignore_ascii_case("warn");
            }
            if let Some(Value::String(f)) = args.get("fail_calc") {
                fail_calc = Some(f.clone());
            }
            if let Some(Value::Object(a)) = args.remove("arguments") {
                args.extend(a);
            }
            Ok(TestSpec {
                name: name.clone(),
                args,
                warn_only,
                fail_calc,
            })
        }
        other => Err(Error::invalid(format!(
            "a test is a name (`unique`) or a mapping (`accepted_values: {{values: [...]}}`), not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_models_columns_tests_and_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("staging")).unwrap();
        std::fs::write(
            dir.path().join("staging/schema.yml"),
            r#"
version: 2
sources:
  - name: shop
    schema: raw
    tables: [{name: orders}]
models:
  - name: stg_orders
    description: "one row per order"
    config: {materialized: table}
    columns:
      - name: id
        tests: [unique, not_null]
      - name: status
        data_tests:
          - accepted_values:
              arguments: {values: ['a', 'b']}
              config: {severity: warn}
"#,
        )
        .unwrap();
        let files = read_all(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(files.len(), 1);
        let m = &files[0].models[0];
        assert_eq!(m.columns[0].tests.len(), 2);
        let t = parse_test(&m.columns[1].data_tests[0]).unwrap();
        assert_eq!(t.name, "accepted_values");
        assert!(t.warn_only);
        assert_eq!(t.args["values"], serde_json::json!(["a", "b"]));
        assert_eq!(files[0].sources[0].tables[0].name, "orders");
        // dbt's `test_name:` form, with a user-given name.
        let t = parse_test(&serde_json::json!({
            "test_name": "unique", "name": "my_unique", "config": {"severity": "warn"}
        }))
        .unwrap();
        assert_eq!(t.name, "unique");
        assert!(t.warn_only);
        assert_eq!(t.args["name"], "my_unique");
    }

    /// Unit tests parse; exposures and semantic-layer keys are read past.
    #[test]
    fn unit_tests_parse_and_semantic_files_are_accepted() {
        let p = parse(
            r#"
unit_tests:
  - name: t
    model: customers
    given:
      - input: ref('stg')
        format: csv
        rows: "id
1
"
    expect: {rows: [{id: 1}]}
    overrides: {macros: {is_incremental: true}}
exposures: [{name: e, type: dashboard, owner: {name: a}}]
semantic_models: [{name: s, model: ref('customers')}]
metrics: [{name: m, type: simple}]
saved_queries: [{name: q}]
"#,
            "models/x.yml".into(),
        )
        .unwrap();
        let u = &p.unit_tests[0];
        assert_eq!(u.model, "customers");
        assert_eq!(u.given[0].input, "ref('stg')");
        assert_eq!(u.given[0].fixture.format.as_deref(), Some("csv"));
        assert_eq!(u.expect.rows, Some(serde_json::json!([{"id": 1}])));
        assert!(p.models.is_empty());
    }
}
