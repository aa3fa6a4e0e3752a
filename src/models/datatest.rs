//! Data tests: dbt generic tests from `schema.yml` (`unique`, `not_null`,
//! `accepted_values`, `relationships`), row checks from model config
//! (`checks=['amount >= 0']`), and singular tests (a `.sql` file under the tests
//! folder returning the failing rows). Every test is a query whose rows are
//! failures; a test passes when it returns none.

use super::compile::{Compiled, Model};
use super::config::Materialization;
use super::discover;
use super::schema_yml::{self, TestSpec};
use crate::error::{Error, Result};
use crate::project::Project;
use crate::sql::Engine;
use crate::warehouse::Warehouse;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use serde_json::Value;
use std::collections::BTreeMap;

/// Rows of a failing test shown in the summary.
pub const SAMPLE_ROWS: usize = 5;

/// One compiled data test.
#[derive(Debug, Clone)]
pub struct DataTest {
    /// Unique name, dbt style (`not_null_stg_users_user_id`).
    pub name: String,
    /// `unique`, `not_null`, `accepted_values`, `relationships`, `check`, `singular`.
    pub kind: String,
    /// The model the test is declared on (its failure skips this model's descendants).
    pub model: Option<usize>,
    pub column: Option<String>,
    /// Query returning the failing rows.
    pub sql: String,
    /// Models the query reads.
    pub deps: Vec<usize>,
    /// `severity: warn`: a failure is reported but does not fail the run.
    pub warn_only: bool,
    /// Where it is declared.
    pub declared_in: String,
    /// A dbt unit test: its SQL is built when it runs ([`super::unittest`]).
    pub unit: Option<std::sync::Arc<super::unittest::UnitTest>>,
}

/// The outcome of one test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub failures: u64,
    /// Up to [`SAMPLE_ROWS`] failing rows, as a printed table.
    pub sample: String,
}

/// Compiles every test of the project (generic, checks and singular).
pub async fn compile_tests(
    project: &Project,
    warehouse: &Warehouse,
    compiled: &Compiled,
    vars: &BTreeMap<String, Value>,
) -> Result<Vec<DataTest>> {
    let mut tests = Vec::new();
    let mut errors = Vec::new();
    for file in &compiled.properties {
        let shown = file
            .file
            .strip_prefix(&project.root)
            .unwrap_or(&file.file)
            .to_string_lossy()
            .into_owned();
        for props in &file.models {
            let Ok(m) = compiled.find(&props.name) else {
                // dbt warns about properties of missing models; so do we.
                tracing::warn!(
                    "{}: properties for `{}`, which is not a model (or is disabled)",
                    shown,
                    props.name
                );
                continue;
            };
            let model_warn = compiled.models[m].config.warn_only;
            let mut specs: Vec<(Option<String>, &Value)> = Vec::new();
            for t in props.tests.iter().chain(&props.data_tests) {
                specs.push((None, t));
            }
            for c in &props.columns {
                for t in c.tests.iter().chain(&c.data_tests) {
                    specs.push((Some(c.name.clone()), t));
                }
            }
            for (column, raw) in specs {
                let spec = schema_yml::parse_test(raw);
                if let Ok(spec) = &spec {
                    if let Some(found) = macro_test(compiled, &spec.name) {
                        let model = &compiled.models[m];
                        let result =
                            render_macro_test(compiled, m, column.as_deref(), spec, &found, vars);
                        let result = match result {
                            Ok((sql, refs)) => compiled
                                .test_dependencies(warehouse, &sql, &refs)
                                .await
                                .map(|mut deps| {
                                    if !deps.contains(&m) {
                                        deps.push(m);
                                        deps.sort();
                                    }
                                    (sql, deps)
                                }),
                            Err(e) => Err(e),
                        };
                        match result {
                            Ok((sql, deps)) => tests.push(DataTest {
                                name: test_name(spec, model, column.as_deref()),
                                kind: spec.name.clone(),
                                model: Some(m),
                                column: column.clone(),
                                sql,
                                deps,
                                warn_only: spec.warn_only || model_warn,
                                declared_in: shown.clone(),
                                unit: None,
                            }),
                            Err(e) => errors.push(Error::config(
                                &file.file,
                                format!("model `{}`, test `{}`: {e}", props.name, spec.name),
                            )),
                        }
                        continue;
                    }
                }
                let result = spec.and_then(|spec| {
                    generic(compiled, m, column.as_deref(), &spec).map(|(sql, deps)| DataTest {
                        name: test_name(&spec, &compiled.models[m], column.as_deref()),
                        kind: spec.name.clone(),
                        model: Some(m),
                        column: column.clone(),
                        sql,
                        deps,
                        warn_only: spec.warn_only || model_warn,
                        declared_in: shown.clone(),
                        unit: None,
                    })
                });
                match result {
                    Ok(t) => tests.push(t),
                    Err(msg) => errors.push(Error::config(
                        &file.file,
                        format!("model `{}`: {msg}", props.name),
                    )),
                }
            }
        }
    }
    for (i, m) in compiled.models.iter().enumerate() {
        for (n, check) in m.config.checks.iter().enumerate() {
            tests.push(DataTest {
                name: format!("check_{}_{}", m.name, n + 1),
                kind: "check".into(),
                model: Some(i),
                column: None,
                sql: format!("SELECT * FROM {} WHERE NOT ({check})", relation(m)),
                deps: vec![i],
                warn_only: m.config.warn_only,
                declared_in: m.file.display.clone(),
                unit: None,
            });
        }
    }
    let files = discover::sql_files(&project.root, &project.settings.test_paths)?;
    // `tests/generic/` holds generic test macros and `tests/fixtures/` unit
    // tests' rows, not singular tests (as in dbt).
    for f in files.into_iter().filter(|f| {
        !matches!(
            f.rel_dirs.first().map(String::as_str),
            Some("generic" | "fixtures")
        )
    }) {
        let rendered = compiled.render_other(&f, vars);
        let result = match rendered {
            Ok((sql, refs)) => compiled
                .test_dependencies(warehouse, &sql, &refs)
                .await
                .map(|deps| (sql, deps)),
            Err(e) => Err(e),
        };
        match result {
            Ok((sql, deps)) => {
                let model = deps
                    .iter()
                    .copied()
                    .max_by_key(|d| compiled.dag.topo_position(*d));
                tests.push(DataTest {
                    name: f.name.clone(),
                    kind: "singular".into(),
                    model,
                    column: None,
                    sql,
                    deps,
                    warn_only: false,
                    declared_in: f.display.clone(),
                    unit: None,
                });
            }
            Err(e) => errors.push(Error::Model {
                model: format!("test {}", f.name),
                file: f.display.clone(),
                message: e.to_string(),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(if errors.len() == 1 {
            errors.remove(0)
        } else {
            Error::Many(errors)
        });
    }
    let mut seen = std::collections::HashMap::new();
    for t in &mut tests {
        let n = seen.entry(t.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            t.name = format!("{}_{}", t.name, n);
        }
    }
    Ok(tests)
}

/// Runs one test: the number of failing rows and a sample of them.
pub async fn run_test(engine: &Engine, test: &DataTest) -> Result<TestOutcome> {
    let count_sql = format!(
        "SELECT count(*) AS failures FROM (\n{}\n) AS __sluice_test",
        test.sql
    );
    let batches = engine.query(&count_sql).await?;
    let failures = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<Int64Type>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0)
        .max(0) as u64;
    let sample = if failures > 0 {
        let sample_sql = format!(
            "SELECT * FROM (\n{}\n) AS __sluice_test LIMIT {SAMPLE_ROWS}",
            test.sql
        );
        let rows = engine.query(&sample_sql).await?;
        datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .map(|t| t.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(TestOutcome { failures, sample })
}

/// The relation a test reads for a model (ephemerals are inlined).
fn relation(m: &Model) -> String {
    if m.config.materialized == Materialization::Ephemeral {
        format!("(\n{}\n) AS {}", m.sql, m.table)
    } else {
        m.id()
    }
}

fn test_name(spec: &TestSpec, m: &Model, column: Option<&str>) -> String {
    let mut n = format!("{}_{}", spec.name, m.name);
    if let Some(c) = column {
        n.push('_');
        n.push_str(&c.to_ascii_lowercase());
    }
    n
}

/// A column name as SQL (quoted unless a plain lowercase identifier).
fn ident(c: &str) -> String {
    if crate::warehouse::is_identifier(c) {
        c.to_string()
    } else {
        format!("\"{}\"", c.replace('"', "\"\""))
    }
}

fn sql_literal(v: &Value, quote: bool) -> Result<String> {
    Ok(match v {
        Value::String(s) if quote => format!("'{}'", s.replace('\'', "''")),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(Error::invalid(format!(
                "accepted_values: unsupported value {other}"
            )))
        }
    })
}

/// The failing-rows query of a generic test on model `m`.
fn generic(
    compiled: &Compiled,
    m: usize,
    column: Option<&str>,
    spec: &TestSpec,
) -> Result<(String, Vec<usize>)> {
    let model = &compiled.models[m];
    let mut rel = relation(model);
    if let Some(Value::String(w)) = spec.args.get("where") {
        rel = format!("(SELECT * FROM {rel} WHERE {w}) AS __sluice_where");
    }
    let col_arg = spec
        .args
        .get("column_name")
        .and_then(Value::as_str)
        .or(column);
    let need_col = || {
        col_arg.map(ident).ok_or_else(|| {
            Error::invalid(format!(
                "test `{}` needs a column: declare it under `columns:` or pass column_name",
                spec.name
            ))
        })
    };
    let sql = match spec.name.as_str() {
        "not_null" => {
            let c = need_col()?;
            format!("SELECT * FROM {rel} WHERE {c} IS NULL")
        }
        "unique" => {
            let c = need_col()?;
            format!(
                "SELECT {c} AS unique_field, count(*) AS n_records FROM {rel} WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1"
            )
        }
        "accepted_values" => {
            let c = need_col()?;
            let quote = spec
                .args
                .get("quote")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let values = match spec.args.get("values") {
                Some(Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .map(|v| sql_literal(v, quote))
                    .collect::<Result<Vec<_>>>()?,
                _ => return Err(Error::invalid("accepted_values needs `values: [...]`")),
            };
            format!(
                "SELECT {c} AS value_field, count(*) AS n_records FROM {rel} WHERE {c} IS NOT NULL AND {c} NOT IN ({}) GROUP BY {c}",
                values.join(", ")
            )
        }
        "relationships" => {
            let c = need_col()?;
            let to = spec
                .args
                .get("to")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid("relationships needs `to: ref('model')`"))?;
            let field = spec
                .args
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid("relationships needs `field: column`"))?;
            let (to_rel, to_dep) = parse_to(compiled, to)?;
            let f = ident(field);
            let mut deps = vec![m];
            deps.extend(to_dep);
            deps.sort();
            deps.dedup();
            return Ok((
                format!(
                    "SELECT child.{c} AS from_field FROM {rel} AS child LEFT JOIN {to_rel} AS parent ON child.{c} = parent.{f} WHERE child.{c} IS NOT NULL AND parent.{f} IS NULL"
                ),
                deps,
            ));
        }
        "expression_is_true" | "dbt_utils.expression_is_true" => {
            let e = spec
                .args
                .get("expression")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid("expression_is_true needs `expression`"))?;
            let e = match col_arg {
                Some(c) => format!("{} {e}", ident(c)),
                None => e.to_string(),
            };
            format!("SELECT * FROM {rel} WHERE NOT ({e})")
        }
        other => {
            return Err(Error::invalid(format!(
                "unknown test `{other}`{}; sluice runs unique, not_null, accepted_values, relationships and expression_is_true (write others as singular tests in the tests folder)",
                crate::error::did_you_mean(
                    other,
                    ["unique", "not_null", "accepted_values", "relationships"]
                )
            )))
        }
    };
    Ok((sql, vec![m]))
}

/// Tests sluice runs itself (dbt's own generic tests and dbt_utils' expression_is_true).
const BUILT_IN_TESTS: &[&str] = &["not_null", "unique", "accepted_values", "relationships"];

/// The `(namespace, macro)` of a generic test written as a Jinja
/// `{% test name(model, ...) %}`: `pkg.name` in package `pkg`, `name` in the
/// root project or dbt; `None` for the tests sluice runs itself.
fn macro_test(compiled: &Compiled, name: &str) -> Option<(Option<String>, String)> {
    let lib = compiled.names.library.as_ref()?;
    let (ns, base) = match name.split_once('.') {
        Some((ns, base)) => (Some(ns.to_string()), base),
        None => (None, name),
    };
    if ns.is_none() && BUILT_IN_TESTS.contains(&base) {
        return None;
    }
    let macro_name = format!("test_{base}");
    let defined = match &ns {
        Some(ns) => lib.macros_of(ns).contains(&macro_name),
        None => lib
            .namespaces()
            .iter()
            .any(|n| lib.macros_of(n).contains(&macro_name)),
    };
    defined.then_some((ns, macro_name))
}

/// Renders a macro generic test: `{{ [pkg.]test_name(model=..., column_name=..., args...) }}`.
fn render_macro_test(
    compiled: &Compiled,
    m: usize,
    column: Option<&str>,
    spec: &TestSpec,
    (ns, macro_name): &(Option<String>, String),
    vars: &BTreeMap<String, Value>,
) -> Result<(String, Vec<String>)> {
    let model = &compiled.models[m];
    let mut rel = relation(model);
    if let Some(Value::String(w)) = spec.args.get("where") {
        rel = format!("(SELECT * FROM {rel} WHERE {w}) AS __sluice_where");
    }
    let mut args = vec![format!("model=__model")];
    let col = spec
        .args
        .get("column_name")
        .and_then(Value::as_str)
        .or(column);
    if let Some(c) = col {
        args.push(format!("column_name={}", jinja_literal(&Value::from(c))));
    }
    for (k, v) in &spec.args {
        // `name` names the test (dbt), it is not an argument of the macro.
        if k == "column_name" || k == "where" || k == "name" || !crate::names::is_identifier(k) {
            continue;
        }
        // `to: ref('x')` and `source(...)` arguments are relations, as in dbt.
        let expr = match v.as_str().map(str::trim) {
            Some(s) if (s.starts_with("ref(") || s.starts_with("source(")) && s.ends_with(')') => {
                s.to_string()
            }
            _ => jinja_literal(v),
        };
        args.push(format!("{k}={expr}"));
    }
    let callee = match ns {
        Some(ns) => format!("{ns}.{macro_name}"),
        None => macro_name.clone(),
    };
    let text = format!("{{{{ {callee}({}) }}}}", args.join(", "));
    // The project's vars as the model's package sees them, then `--vars`.
    let mut all_vars = compiled.vars_of(model.package.as_deref()).clone();
    all_vars.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    let ctx = super::compile::render_context(
        &compiled.names,
        &all_vars,
        "dev",
        &compiled.default_schema,
        &model.id(),
        &model.name,
        false,
    );
    let r = super::jinja::render_with(
        &format!("<test {}>", spec.name),
        &text,
        &ctx,
        &[("__model", super::jinja::objects::Relation::opaque(&rel))],
    )?;
    Ok((r.sql.trim().trim_end_matches(';').to_string(), r.refs))
}

/// A JSON value as a Jinja literal (strings keep their Jinja: dbt renders test arguments).
fn jinja_literal(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if s.contains("{{") {
                // Rendered when the test renders: `'a' ~ (expr) ~ 'b'`.
                let mut parts = Vec::new();
                let mut rest = s.as_str();
                while let Some(a) = rest.find("{{") {
                    let Some(b) = rest[a..].find("}}") else { break };
                    parts.push(jinja_literal(&Value::from(&rest[..a])));
                    parts.push(format!("({})", rest[a + 2..a + b].trim()));
                    rest = &rest[a + b + 2..];
                }
                parts.push(jinja_literal(&Value::from(rest)));
                return parts.join(" ~ ");
            }
            format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(jinja_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    jinja_literal(&Value::from(k.as_str())),
                    jinja_literal(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `ref('x')`, `source('a', 'b')` or a plain `schema.table`.
fn parse_to(compiled: &Compiled, to: &str) -> Result<(String, Option<usize>)> {
    let t = to.trim();
    let args = |prefix: &str| -> Option<Vec<String>> {
        let inner = t.strip_prefix(prefix)?.trim_start().strip_prefix('(')?;
        let inner = inner.trim_end().strip_suffix(')')?;
        Some(
            inner
                .split(',')
                .map(|a| a.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
                .collect(),
        )
    };
    if let Some(a) = args("ref") {
        let name = a.last().cloned().unwrap_or_default();
        let i = compiled.find(&name)?;
        return Ok((relation(&compiled.models[i]), Some(i)));
    }
    if let Some(a) = args("source") {
        if let [s, tb] = a.as_slice() {
            return Ok((format!("{s}.{tb}"), None));
        }
        return Err(Error::invalid(format!(
            "relationships: cannot read `to: {to}`"
        )));
    }
    match compiled.find(t) {
        Ok(i) => Ok((relation(&compiled.models[i]), Some(i))),
        Err(_) => Ok((t.to_string(), None)),
    }
}
