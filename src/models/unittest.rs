//! dbt unit tests (dbt 1.8+): `unit_tests:` in the models' `.yml` files. A
//! unit test renders one model with each input named in `given` replaced by
//! fixed rows, runs it, and compares its output with `expect` as a multiset
//! of rows, on the columns `expect` names.
//!
//! As in dbt:
//! - the given rows take the columns and types of the input's table when it
//!   exists (columns a row leaves out are NULL; a column the table lacks is an
//!   error); otherwise the columns are those the rows name, typed from their
//!   values;
//! - an input the model reads that is not given reads as empty, with its
//!   table's columns; a seed that is not given is read as it is;
//! - the expected rows are cast to the types of the model's output;
//! - `overrides: {vars: {...}, macros: {is_incremental: true}}` render the
//!   model with those vars and with `is_incremental()` true (`input: this`
//!   gives the model's own table).
//!
//! A unit test is a [`DataTest`] whose SQL is built when it runs (after the
//! model's parents are built, so their real types are known) and, in
//! `build`, before its model: a failure skips the model and its descendants.

use super::compile::{apply_edits, Compiled};
use super::datatest::{DataTest, TestOutcome};
use super::resolve::{ExistsCache, Target};
use super::schema_yml::{FixtureProps, UnitTestProps};
use crate::error::{did_you_mean, Error, Result};
use crate::names::ident;
use crate::project::Project;
use crate::sql::{deps, Engine};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One compiled unit test.
#[derive(Debug, Clone)]
pub struct UnitTest {
    pub name: String,
    /// The model under test (index into [`Compiled::models`]).
    pub model: usize,
    pub given: Vec<Given>,
    pub expect: Rows,
    /// Project vars, `--vars`, then `overrides.vars`.
    pub vars: BTreeMap<String, Value>,
    /// `overrides.macros.is_incremental`.
    pub is_incremental: bool,
    pub tags: Vec<String>,
    /// `file` of the `.yml` it is declared in, relative to the project.
    pub declared_in: String,
}

/// One `given:` input.
#[derive(Debug, Clone)]
pub struct Given {
    /// As written: `ref('stg_orders')`.
    pub input: String,
    /// The table it stands for.
    pub schema: String,
    pub table: String,
    pub rows: Rows,
}

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

/// Compiles the `unit_tests:` of the project's `.yml` files into tests
/// (disabled ones are left out). `vars`: `--vars`.
pub fn compile_unit_tests(
    project: &Project,
    compiled: &Compiled,
    vars: &BTreeMap<String, Value>,
) -> Result<Vec<DataTest>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for file in &compiled.properties {
        let shown = file
            .file
            .strip_prefix(&project.root)
            .unwrap_or(&file.file)
            .to_string_lossy()
            .into_owned();
        for props in &file.unit_tests {
            match compile_one(project, compiled, vars, props, &shown) {
                Ok(Some(t)) => out.push(t),
                Ok(None) => {}
                Err(e) => {
                    let at = match line_of(&file.file, &props.name) {
                        Some(l) => format!("{}:{l}", file.file.display()),
                        None => file.file.display().to_string(),
                    };
                    errors.push(Error::config(
                        at,
                        format!("unit test `{}`: {e}", props.name),
                    ))
                }
            }
        }
    }
    match errors.len() {
        0 => Ok(out),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

/// The line of `name: <name>` under `unit_tests:` in `file` (1-based).
fn line_of(file: &std::path::Path, name: &str) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let start = text
        .lines()
        .position(|l| l.trim_start().starts_with("unit_tests:"))?;
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| {
            let l = l.trim().trim_start_matches("- ").trim();
            l.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"') == name)
                .unwrap_or(false)
        })
        .map(|(i, _)| i + 1)
}

fn compile_one(
    project: &Project,
    compiled: &Compiled,
    cli_vars: &BTreeMap<String, Value>,
    props: &UnitTestProps,
    shown: &str,
) -> Result<Option<DataTest>> {
    let config = props.config.clone().unwrap_or_default();
    let mut tags = Vec::new();
    for (k, v) in &config {
        match (k.as_str(), v) {
            ("enabled", Value::Bool(false)) => return Ok(None),
            ("enabled", Value::Bool(true)) => {}
            ("enabled", other) => {
                return Err(Error::invalid(format!(
                    "config.enabled must be true or false, not {other}"
                )))
            }
            ("tags", Value::String(s)) => tags.push(s.clone()),
            ("tags", Value::Array(a)) => {
                tags.extend(a.iter().filter_map(|t| t.as_str().map(str::to_string)))
            }
            _ => {}
        }
    }
    if compiled.names.disabled.contains(&props.model) {
        return Ok(None);
    }
    let model = compiled.find(&props.model).map_err(|e| {
        Error::invalid(format!(
            "model: {e}; `model:` names the model the test runs"
        ))
    })?;
    let mut vars: BTreeMap<String, Value> = project.settings.vars.clone();
    vars.extend(cli_vars.clone());
    let mut is_incremental = false;
    match &props.overrides {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("vars", Value::Object(m)) => {
                        vars.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())))
                    }
                    ("macros", Value::Object(m)) => {
                        for (name, v) in m {
                            match (name.as_str(), v) {
                                ("is_incremental", Value::Bool(b)) => is_incremental = *b,
                                _ => tracing::warn!(
                                    "unit test `{}`: override of macro `{name}` is ignored (sluice overrides is_incremental)",
                                    props.name
                                ),
                            }
                        }
                    }
                    ("env_vars", _) | ("vars", Value::Null) | ("macros", Value::Null) => {}
                    (other, _) => {
                        return Err(Error::invalid(format!(
                            "overrides: unknown key `{other}`{}; use vars, macros or env_vars",
                            did_you_mean(other, ["vars", "macros", "env_vars"])
                        )))
                    }
                }
            }
        }
        Some(other) => {
            return Err(Error::invalid(format!(
                "overrides must be a mapping (vars, macros), not {other}"
            )))
        }
    }
    let mut given = Vec::new();
    for g in &props.given {
        let (schema, table) = input_table(compiled, model, &g.input)?;
        let rows = parse_rows(project, &g.fixture)
            .map_err(|e| Error::invalid(format!("given `{}`: {e}", g.input)))?;
        given.push(Given {
            input: g.input.clone(),
            schema,
            table,
            rows,
        });
    }
    let expect =
        parse_rows(project, &props.expect).map_err(|e| Error::invalid(format!("expect: {e}")))?;
    let m = &compiled.models[model];
    let unit = UnitTest {
        name: props.name.clone(),
        model,
        given,
        expect,
        vars,
        is_incremental,
        tags,
        declared_in: shown.to_string(),
    };
    Ok(Some(DataTest {
        name: props.name.clone(),
        kind: "unit".into(),
        model: Some(model),
        column: None,
        sql: m.sql.clone(),
        deps: compiled.dag.parents(model).to_vec(),
        warn_only: false,
        declared_in: shown.to_string(),
        unit: Some(Arc::new(unit)),
    }))
}

/// The table `ref('x')`, `source('s', 't')` or `this` stands for.
fn input_table(compiled: &Compiled, model: usize, input: &str) -> Result<(String, String)> {
    let t = input.trim();
    if t == "this" {
        let m = &compiled.models[model];
        return Ok((m.schema.clone(), m.table.clone()));
    }
    let call = |name: &str| -> Option<Vec<String>> {
        let inner = t.strip_prefix(name)?.trim_start().strip_prefix('(')?;
        let inner = inner.trim_end().strip_suffix(')')?;
        Some(
            inner
                .split(',')
                .filter(|a| !a.contains('='))
                .map(|a| a.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
                .collect(),
        )
    };
    if let Some(args) = call("ref") {
        let name = args.last().cloned().unwrap_or_default();
        return match compiled.names.lookup_model(&name) {
            Ok(i) => {
                let m = &compiled.models[i];
                Ok((m.schema.clone(), m.table.clone()))
            }
            Err(e) => match compiled.names.seeds.get(&name) {
                Some((s, t)) => Ok((s.clone(), t.clone())),
                None => Err(Error::invalid(format!("given `{input}`: {e}"))),
            },
        };
    }
    if let Some(args) = call("source") {
        if let [s, tb] = args.as_slice() {
            if let Some((schema, table)) = compiled.names.yml_sources.get(&(s.clone(), tb.clone()))
            {
                return Ok((schema.clone(), table.clone()));
            }
            if let Some((schema, table)) = compiled.names.sources.get(tb) {
                return Ok((schema.clone(), table.clone()));
            }
            return Err(Error::invalid(format!(
                "given `{input}`: unknown source; declare it under `sources:` in a .yml file"
            )));
        }
    }
    Err(Error::invalid(format!(
        "given `{input}`: an input is `ref('model')`, `source('source', 'table')` or `this`"
    )))
}

/// Reads `format` / `rows` / `fixture`.
fn parse_rows(project: &Project, f: &FixtureProps) -> Result<Rows> {
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
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `arrow_cast(expr, 'Type')`.
fn cast(expr: &str, t: &DataType) -> String {
    format!("arrow_cast({expr}, {})", lit(&t.to_string()))
}

/// The type of a fixture column whose table does not exist.
fn infer(cells: impl Iterator<Item = Option<Kind>>) -> DataType {
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
fn table_sql(
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

/// The columns and types of a stored table or view.
async fn table_fields(
    engine: &Engine,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, DataType)>> {
    let df = engine
        .sql(&format!("SELECT * FROM {}.{}", ident(schema), ident(table)))
        .await?;
    Ok(fields_of(
        df.schema().as_arrow().fields().iter().map(|f| f.as_ref()),
    ))
}

fn fields_of<'a>(fields: impl Iterator<Item = &'a Field>) -> Vec<(String, DataType)> {
    fields
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

/// The SQL of the model's output with the given inputs (a `WITH` query).
async fn actual_sql(engine: &Engine, compiled: &Compiled, t: &UnitTest) -> Result<String> {
    let model = &compiled.models[t.model];
    let sql = compiled.render_model_with(t.model, &t.vars, t.is_incremental)?;
    let occ = deps::model_relations(&sql, &compiled.functions)
        .map_err(|e| Error::Sql(format!("SQL syntax error: {}", e.message)))?;
    let mut cache = ExistsCache::new(engine.warehouse());
    for o in &occ {
        cache.probe(&compiled.names, &o.relation).await?;
    }
    let mut ctes: Vec<String> = Vec::new();
    let mut cte_of: HashMap<(String, String), String> = HashMap::new();
    for (n, g) in t.given.iter().enumerate() {
        let name = format!("__sluice_given_{}", n + 1);
        let exists = cache.table_exists(&g.schema, &g.table).await?;
        let body = match &g.rows {
            Rows::Sql(q) => q.clone(),
            Rows::Table { columns, rows } => {
                let fields = if exists {
                    table_fields(engine, &g.schema, &g.table).await?
                } else if columns.is_empty() {
                    return Err(Error::invalid(format!(
                        "given `{}`: table {}.{} does not exist yet, so its columns are unknown: name them in the rows, or build it first",
                        g.input, g.schema, g.table
                    )));
                } else {
                    columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let t = infer(rows.iter().map(|r| r[i].as_ref().map(|c| c.1)));
                            (c.clone(), t)
                        })
                        .collect()
                };
                table_sql(
                    columns,
                    rows,
                    &fields,
                    &format!("given `{}` ({}.{})", g.input, g.schema, g.table),
                )?
            }
        };
        ctes.push(format!("{name} AS (\n{body}\n)"));
        cte_of.insert((g.schema.clone(), g.table.clone()), name);
    }
    let mut resolved = Vec::with_capacity(occ.len());
    {
        let exists = |s: &str, t: &str| cache.known(s, t);
        for o in occ {
            match compiled.names.resolve(&o.relation, &exists) {
                Ok(t) => resolved.push((o, t)),
                Err(_) if o.declared => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut edits = Vec::new();
    let mut empty = 0;
    for (o, target) in resolved {
        let key = match &target {
            Target::Model(j) => {
                let m = &compiled.models[*j];
                (m.schema.clone(), m.table.clone())
            }
            Target::External(s, t) => (s.clone(), t.clone()),
            Target::Ignore => continue,
        };
        if o.declared {
            continue;
        }
        if let Some(name) = cte_of.get(&key) {
            edits.push((o, name.clone()));
            continue;
        }
        let shown = format!("{}.{}", key.0, key.1);
        if let Target::Model(j) = target {
            if compiled.names.ephemeral[j] {
                return Err(Error::invalid(format!(
                    "model `{}` reads the ephemeral model `{}`: give it as an input (`- input: ref('{}')` with `format: sql`)",
                    model.id(),
                    compiled.models[j].name,
                    compiled.models[j].name
                )));
            }
        }
        if compiled.names.seeds.values().any(|k| *k == key) {
            edits.push((o, shown));
            continue;
        }
        if !cache.table_exists(&key.0, &key.1).await? {
            return Err(Error::invalid(format!(
                "model `{}` reads {shown}, which is not given and does not exist yet: add `- input: ...` for it to `given` (`rows: []` for none)",
                model.id()
            )));
        }
        empty += 1;
        let name = format!("__sluice_empty_{empty}");
        ctes.push(format!("{name} AS (\nSELECT * FROM {shown} WHERE false\n)"));
        cte_of.insert(key, name.clone());
        edits.push((o, name));
    }
    let body = apply_edits(&sql, &edits);
    Ok(if ctes.is_empty() {
        body
    } else {
        format!(
            "WITH {}\nSELECT * FROM (\n{body}\n) AS __sluice_model",
            ctes.join(",\n")
        )
    })
}

/// Runs a unit test: the rows that differ (each row expected and not
/// returned, or returned and not expected, counts once) and the diff.
pub async fn run(engine: &Engine, compiled: &Compiled, t: &UnitTest) -> Result<TestOutcome> {
    let actual = actual_sql(engine, compiled, t).await?;
    let actual_df = engine.sql(&actual).await?;
    let out_fields = fields_of(
        actual_df
            .schema()
            .as_arrow()
            .fields()
            .iter()
            .map(|f| f.as_ref()),
    );
    let model_id = compiled.models[t.model].id();
    let what = format!("expect (the output of {model_id})");
    // The columns compared: those `expect` names, typed as the model returns them.
    let (expected_sql, columns) = match &t.expect {
        // `rows: []`: the model returns no rows (any row of any column is unexpected).
        Rows::Table { columns, rows } if columns.is_empty() && rows.is_empty() => {
            (None, out_fields.clone())
        }
        Rows::Table { columns, rows } => {
            let mut fields = Vec::new();
            for c in columns {
                match out_fields.iter().find(|(f, _)| f.eq_ignore_ascii_case(c)) {
                    Some(f) => fields.push(f.clone()),
                    None => {
                        return Err(Error::invalid(format!(
                            "{what}: column `{c}` is not returned by the model{}; it returns {}",
                            did_you_mean(c, out_fields.iter().map(|(f, _)| f.as_str())),
                            out_fields
                                .iter()
                                .map(|(f, _)| f.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )))
                    }
                }
            }
            let sql = (!rows.is_empty())
                .then(|| table_sql(columns, rows, &fields, &what))
                .transpose()?;
            (sql, fields)
        }
        Rows::Sql(q) => {
            let df = engine.sql(q).await?;
            let mut fields = Vec::new();
            for f in df.schema().as_arrow().fields() {
                match out_fields
                    .iter()
                    .find(|(o, _)| o.eq_ignore_ascii_case(f.name()))
                {
                    Some(o) => fields.push(o.clone()),
                    None => {
                        return Err(Error::invalid(format!(
                            "{what}: column `{}` is not returned by the model; it returns {}",
                            f.name(),
                            out_fields
                                .iter()
                                .map(|(f, _)| f.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )))
                    }
                }
            }
            let cols: Vec<String> = fields
                .iter()
                .map(|(f, t)| format!("{} AS {}", cast(&ident(f), t), ident(f)))
                .collect();
            (
                Some(format!(
                    "SELECT {} FROM (\n{q}\n) AS __sluice_expected",
                    cols.join(", ")
                )),
                fields,
            )
        }
    };
    let names: Vec<String> = columns.iter().map(|(f, _)| ident(f)).collect();
    let actual_rows = rows_text(
        &engine
            .query(&format!(
                "SELECT {} FROM (\n{actual}\n) AS __sluice_actual",
                names.join(", ")
            ))
            .await?,
    )?;
    let expected_rows = match expected_sql {
        Some(sql) => rows_text(&engine.query(&sql).await?)?,
        None => Vec::new(),
    };
    let header: Vec<String> = columns.iter().map(|(f, _)| f.clone()).collect();
    let d = diff(&expected_rows, &actual_rows);
    let failures = (d.missing.len() + d.unexpected.len()) as u64;
    let sample = if failures == 0 {
        String::new()
    } else {
        format!("model {model_id}: {}", d.render(&header))
    };
    Ok(TestOutcome { failures, sample })
}

/// Every row as its cells' text (`null` for null).
fn rows_text(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("null");
    let mut out = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("formatting unit test rows: {e}")))?;
        for r in 0..b.num_rows() {
            out.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(out)
}

/// The rows that differ between the expected and the actual multiset.
#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// Expected, not returned (as often as they are missing).
    pub missing: Vec<Vec<String>>,
    /// Returned, not expected.
    pub unexpected: Vec<Vec<String>>,
}

/// Compares two multisets of rows.
pub fn diff(expected: &[Vec<String>], actual: &[Vec<String>]) -> Diff {
    let mut counts: BTreeMap<&Vec<String>, i64> = BTreeMap::new();
    for r in expected {
        *counts.entry(r).or_default() += 1;
    }
    for r in actual {
        *counts.entry(r).or_default() -= 1;
    }
    let mut d = Diff::default();
    for (row, n) in counts {
        for _ in 0..n.max(0) {
            d.missing.push(row.clone());
        }
        for _ in 0..(-n).max(0) {
            d.unexpected.push(row.clone());
        }
    }
    d
}

impl Diff {
    /// `N rows differ` and an aligned table: `-` expected and not returned,
    /// `+` returned and not expected.
    pub fn render(&self, header: &[String]) -> String {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in self.missing.iter().chain(&self.unexpected) {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |mark: &str, cells: &[String]| -> String {
            let cols: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("  {mark} | {}", cols.join(" | "))
                .trim_end()
                .to_string()
        };
        let mut out = vec![format!(
            "the output differs from expect: {} row{} missing, {} unexpected",
            self.missing.len(),
            if self.missing.len() == 1 { "" } else { "s" },
            self.unexpected.len()
        )];
        out.push(line(" ", header));
        for r in &self.missing {
            out.push(line("-", r));
        }
        for r in &self.unexpected {
            out.push(line("+", r));
        }
        out.push("  (- expected but not returned, + returned but not expected)".to_string());
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn diff_compares_multisets() {
        let expected = vec![row(&["1", "10"]), row(&["1", "10"]), row(&["2", "5"])];
        let actual = vec![row(&["2", "5"]), row(&["1", "10"]), row(&["3", "null"])];
        let d = diff(&expected, &actual);
        assert_eq!(d.missing, vec![row(&["1", "10"])]);
        assert_eq!(d.unexpected, vec![row(&["3", "null"])]);
        assert_eq!(diff(&expected, &expected), Diff::default());
    }

    /// A failing comparison reads as a table of the rows that differ.
    #[test]
    fn a_failure_prints_a_readable_diff() {
        let d = diff(
            &[row(&["1", "ann", "10"]), row(&["2", "bob", "5"])],
            &[row(&["1", "ann", "12"]), row(&["2", "bob", "5"])],
        );
        let header = row(&["customer_id", "name", "total"]);
        assert_eq!(
            d.render(&header),
            "the output differs from expect: 1 row missing, 1 unexpected\n\
             \x20   | customer_id | name | total\n\
             \x20 - | 1           | ann  | 10\n\
             \x20 + | 1           | ann  | 12\n\
             \x20 (- expected but not returned, + returned but not expected)"
        );
    }

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
