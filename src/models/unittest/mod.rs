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
//! [`fixtures`] reads the rows, [`diff`] compares and prints them.

mod diff;
mod fixtures;

pub use diff::{diff, Diff};
use fixtures::{cast, infer, parse_rows, table_sql};
pub use fixtures::{Cell, Kind, Rows};

use super::compile::{apply_edits, Compiled};
use super::datatest::{DataTest, TestOutcome};
use super::resolve::{ExistsCache, Target};
use super::schema_yml::UnitTestProps;
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
        fail_calc: None,
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
