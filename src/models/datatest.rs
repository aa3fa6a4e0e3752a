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
    /// dbt's `fail_calc`: the aggregate over the failing rows that counts
    /// the failures (`None`: `count(*)`).
    pub fail_calc: Option<String>,
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
            let subject = Subject::model(compiled, m);
            for (column, raw) in specs {
                match one_test(project, warehouse, compiled, &subject, column, raw, vars).await {
                    Ok(mut t) => {
                        t.warn_only |= model_warn;
                        t.declared_in = shown.clone();
                        tests.push(t);
                    }
                    Err(msg) => errors.push(Error::config(
                        &file.file,
                        format!("model `{}`: {msg}", props.name),
                    )),
                }
            }
        }
        // Tests on the tables declared under `sources:` (dbt's source tests).
        for source in &file.sources {
            let schema = source.schema.clone().unwrap_or_else(|| source.name.clone());
            for table in &source.tables {
                let ident = table
                    .identifier
                    .clone()
                    .unwrap_or_else(|| table.name.clone());
                let subject = Subject {
                    rel: format!("{schema}.{ident}"),
                    model: None,
                    id: format!("{schema}.{ident}"),
                    name: format!("{}_{}", source.name, table.name),
                    package: None,
                };
                let mut specs: Vec<(Option<String>, &Value)> = Vec::new();
                for t in table.tests.iter().chain(&table.data_tests) {
                    specs.push((None, t));
                }
                for c in &table.columns {
                    for t in c.tests.iter().chain(&c.data_tests) {
                        specs.push((Some(c.name.clone()), t));
                    }
                }
                for (column, raw) in specs {
                    match one_test(project, warehouse, compiled, &subject, column, raw, vars).await
                    {
                        Ok(mut t) => {
                            // dbt's name, unless the test was given one.
                            let named = raw
                                .as_object()
                                .and_then(|o| o.values().next())
                                .and_then(Value::as_object)
                                .is_some_and(|o| o.contains_key("name"));
                            if !named {
                                t.name = format!("source_{}", t.name);
                            }
                            t.declared_in = shown.clone();
                            tests.push(t);
                        }
                        Err(msg) => errors.push(Error::config(
                            &file.file,
                            format!("source `{}.{}`: {msg}", source.name, table.name),
                        )),
                    }
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
                fail_calc: None,
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
                    fail_calc: None,
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
        "SELECT CAST(coalesce({}, 0) AS BIGINT) AS failures FROM (\n{}\n) AS __sluice_test",
        test.fail_calc.as_deref().unwrap_or("count(*)"),
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

/// One generic test of a `schema.yml` entry (`raw` as written) on `subject`:
/// a Jinja `{% test %}` macro of the project, a package or dbt, else a test
/// sluice runs itself. An error is a message for the entry.
async fn one_test(
    project: &Project,
    warehouse: &Warehouse,
    compiled: &Compiled,
    subject: &Subject,
    column: Option<String>,
    raw: &Value,
    vars: &BTreeMap<String, Value>,
) -> std::result::Result<DataTest, String> {
    let spec = schema_yml::parse_test(raw).map_err(|e| e.to_string())?;
    let mut warn_only = spec.warn_only;
    let mut fail_calc = spec.fail_calc.clone();
    let (sql, deps) = match macro_test(compiled, &spec.name) {
        Some(found) => {
            let MacroTest { sql, refs, config } =
                render_macro_test(compiled, subject, column.as_deref(), &spec, &found, vars)
                    .map_err(|e| format!("test `{}`: {e}", spec.name))?;
            // The macro's config(), under what schema.yml says (as in dbt).
            if fail_calc.is_none() {
                fail_calc = config
                    .get("fail_calc")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            if let Some(Value::String(s)) = config.get("severity") {
                warn_only |= s.eq_ignore_ascii_case("warn") && !has_severity(raw);
            }
            let mut deps = compiled
                .test_dependencies(warehouse, &sql, &refs)
                .await
                .map_err(|e| format!("test `{}`: {e}", spec.name))?;
            deps.extend(subject.model);
            deps.sort();
            deps.dedup();
            (sql, deps)
        }
        None => generic(compiled, subject, column.as_deref(), &spec).map_err(|e| e.to_string())?,
    };
    Ok(DataTest {
        name: test_name(project, &spec, &subject.name, column.as_deref()),
        kind: spec.name.clone(),
        model: subject.model,
        column,
        sql,
        deps,
        warn_only,
        declared_in: String::new(),
        fail_calc,
        unit: None,
    })
}

/// Whether a schema.yml test entry sets `severity` itself.
fn has_severity(raw: &Value) -> bool {
    let Some(body) = raw.as_object().and_then(|o| o.values().next()) else {
        return false;
    };
    body.get("severity").is_some() || body.get("config").and_then(|c| c.get("severity")).is_some()
}

/// What a generic test reads: a model, or a table declared under `sources:`.
struct Subject {
    /// The relation the SQL reads.
    rel: String,
    /// The model (`None`: a source table).
    model: Option<usize>,
    /// `schema.table`, `{{ this }}`.
    id: String,
    /// The name in test names (the model's, or `<source>_<table>`).
    name: String,
    package: Option<String>,
}

impl Subject {
    fn model(compiled: &Compiled, m: usize) -> Subject {
        let model = &compiled.models[m];
        Subject {
            rel: relation(model),
            model: Some(m),
            id: model.id(),
            name: model.name.clone(),
            package: model.package.clone(),
        }
    }
}

/// The relation a test reads for a model (ephemerals are inlined).
fn relation(m: &Model) -> String {
    if m.config.materialized == Materialization::Ephemeral {
        format!("(\n{}\n) AS {}", m.sql, m.table)
    } else {
        m.id()
    }
}

/// The name of a generic test on model `m`: dbt's in a dbt project
/// ([`dbt_test_names`]), `<test>_<model>[_<column>]` in a sluice project.
fn test_name(project: &Project, spec: &TestSpec, target: &str, column: Option<&str>) -> String {
    if project.is_dbt() {
        let mut args = spec.args.clone();
        if let Some(c) = column {
            args.insert("column_name".into(), Value::from(c));
        }
        return dbt_test_names(&spec.name, target, &args).1;
    }
    let mut n = format!("{}_{}", spec.name, target);
    if let Some(c) = column {
        n.push('_');
        n.push_str(&c.to_ascii_lowercase());
    }
    n
}

/// Arguments of a generic test that are configs, not macro arguments (dbt's
/// `TestBuilder.CONFIG_ARGS`), plus `config`, `description` and `name`: none
/// of them is part of the test's name.
const CONFIG_ARGS: &[&str] = &[
    "severity",
    "tags",
    "enabled",
    "where",
    "limit",
    "warn_if",
    "error_if",
    "fail_calc",
    "store_failures",
    "store_failures_as",
    "meta",
    "database",
    "schema",
    "alias",
    "config",
    "description",
    "name",
];

/// dbt's names of a generic test (`TestBuilder.get_synthetic_test_names` and
/// `synthesize_generic_test_names` in dbt-core's `parser/generic_test_builders.py`):
/// `(short, full)`. The full name is the node's name (`dbt test` prints it):
/// `[<namespace>_]<test>_<model>_<arg values>`, the values of the arguments
/// (`column_name` included) in the order of their names, each as Python's
/// `str()` with every run of characters other than `[0-9a-zA-Z_]` replaced by
/// `_`, joined by `__`. The short name (the test's alias) is the full name
/// unless that has 64 characters or more: then the first 30 characters of
/// `[<namespace>_]<test>_<model>`, `_` and the md5 of the full name. A `name:`
/// given on the test is both.
///
/// `test` is as written (`dbt_utils.expression_is_true`); `args` are its
/// arguments, `arguments:` merged (dbt 1.10's default), and the column's name
/// as `column_name` for a column's test.
pub(crate) fn dbt_test_names(
    test: &str,
    target: &str,
    args: &serde_json::Map<String, Value>,
) -> (String, String) {
    if let Some(Value::String(n)) = args.get("name") {
        return (n.clone(), n.clone());
    }
    let name = test.replace('.', "_");
    let mut keys: Vec<&String> = args
        .keys()
        .filter(|k| !CONFIG_ARGS.contains(&k.as_str()) && *k != "model")
        .collect();
    keys.sort();
    let mut flat = Vec::new();
    for k in keys {
        match &args[k.as_str()] {
            Value::Object(o) => flat.extend(o.values().map(py_str)),
            Value::Array(a) => flat.extend(a.iter().map(py_str)),
            v => flat.push(py_str(v)),
        }
    }
    let clean: Vec<String> = flat
        .iter()
        .map(|a| {
            let mut out = String::with_capacity(a.len());
            let mut run = false;
            for c in a.chars() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    out.push(c);
                    run = false;
                } else if !run {
                    out.push('_');
                    run = true;
                }
            }
            out
        })
        .collect();
    let identifier = format!("{name}_{target}");
    let full = format!("{identifier}_{}", clean.join("__"));
    // Python's len() counts characters.
    if full.chars().count() >= 64 {
        use md5::{Digest, Md5};
        let hash: String = Md5::digest(full.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let prefix: String = identifier.chars().take(30).collect();
        (format!("{prefix}_{hash}"), full)
    } else {
        (full.clone(), full)
    }
}

/// Python's `str()` of a value parsed from YAML.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a value parsed from YAML.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => {
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
            out
        }
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::from(k.as_str())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr()` of a float: the shortest digits, in exponent form below
/// 1e-4 and from 1e16 on.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = f.to_string();
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
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
    subject: &Subject,
    column: Option<&str>,
    spec: &TestSpec,
) -> Result<(String, Vec<usize>)> {
    let mut rel = subject.rel.clone();
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
            let mut deps: Vec<usize> = subject.model.into_iter().collect();
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
    Ok((sql, subject.model.into_iter().collect()))
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
    subject: &Subject,
    column: Option<&str>,
    spec: &TestSpec,
    (ns, macro_name): &(Option<String>, String),
    vars: &BTreeMap<String, Value>,
) -> Result<MacroTest> {
    let mut rel = subject.rel.clone();
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
        // Configs (`severity`, `fail_calc`, ...), `name` and `description` are
        // the test's, not its macro's arguments (as in dbt).
        if k == "column_name" || CONFIG_ARGS.contains(&k.as_str()) || !is_jinja_name(k) {
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
    let mut all_vars = compiled.vars_of(subject.package.as_deref()).clone();
    all_vars.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    let ctx = super::compile::render_context(
        &compiled.names,
        &all_vars,
        &compiled.target,
        &compiled.default_schema,
        &subject.id,
        &subject.name,
        false,
    );
    let r = super::jinja::render_with(
        &format!("<test {}>", spec.name),
        &text,
        &ctx,
        &[("__model", super::jinja::objects::Relation::opaque(&rel))],
    )?;
    Ok(MacroTest {
        sql: r.sql.trim().trim_end_matches(';').to_string(),
        refs: r.refs,
        config: r.config,
    })
}

/// A `{% test %}` macro rendered: its SQL, the models it refs and its
/// `config(...)` (`severity`, `fail_calc`, ...).
struct MacroTest {
    sql: String,
    refs: Vec<String>,
    config: BTreeMap<String, Value>,
}

/// Whether `k` can be a keyword argument in Jinja (`column_A` can: dbt
/// passes test arguments as they are written).
fn is_jinja_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(test: &str, model: &str, column: Option<&str>, args: Value) -> (String, String) {
        let mut args = args.as_object().cloned().unwrap_or_default();
        if let Some(c) = column {
            args.insert("column_name".into(), Value::from(c));
        }
        dbt_test_names(test, model, &args)
    }

    /// Every expected name below is copied from a `target/manifest.json` of
    /// dbt-core 1.10.23 + dbt-duckdb (`dbt parse`): the node's `name` (full)
    /// and `alias` (short), on tests/fixtures/dbt_diff, on jaffle-shop, and on
    /// a few extra tests written to try arguments of other types.
    #[test]
    fn generic_test_names_are_dbts() {
        // (test, model, column, arguments, full name, short name)
        type Case = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Value,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            ("not_null", "orders", Some("order_id"), json!({}), "not_null_orders_order_id", "not_null_orders_order_id"),
            (
                "accepted_values",
                "stg_orders",
                Some("status"),
                json!({"values": ["placed", "shipped", "completed", "returned"]}),
                "accepted_values_stg_orders_status__placed__shipped__completed__returned",
                "accepted_values_stg_orders_7c9e0be389dac14a09b2140966f0792f",
            ),
            (
                "accepted_values",
                "orders_enriched",
                Some("fiscal_quarter"),
                json!({"values": [1, 2, 3, 4], "quote": false, "severity": "warn", "where": "1=1"}),
                "accepted_values_orders_enriched_fiscal_quarter__False__1__2__3__4",
                "accepted_values_orders_enriche_de1b333c58074b282118cb9df32fce4f",
            ),
            (
                "accepted_values",
                "customers",
                Some("customer_type"),
                json!({"values": ["new", "returning"]}),
                "accepted_values_customers_customer_type__new__returning",
                "accepted_values_customers_customer_type__new__returning",
            ),
            (
                "relationships",
                "order_items",
                Some("order_id"),
                json!({"to": "ref('orders')", "field": "order_id"}),
                "relationships_order_items_order_id__order_id__ref_orders_",
                "relationships_order_items_order_id__order_id__ref_orders_",
            ),
            (
                "relationships",
                "orders",
                Some("customer_id"),
                json!({"to": "ref('stg_customers')", "field": "customer_id"}),
                "relationships_orders_customer_id__customer_id__ref_stg_customers_",
                "relationships_orders_0389c224a99a98c0b58aedb753f052f0",
            ),
            (
                "dbt_utils.expression_is_true",
                "customers",
                None,
                json!({"expression": "lifetime_spend_pretax + lifetime_tax_paid = lifetime_spend"}),
                "dbt_utils_expression_is_true_customers_lifetime_spend_pretax_lifetime_tax_paid_lifetime_spend",
                "dbt_utils_expression_is_true_c_177c20685a18a9071d4a71719e3d9565",
            ),
            (
                "pkg_util.expression_is_true",
                "orders_enriched",
                None,
                json!({"expression": "amount_base >= 0 and days_to_due = {{ var('payment_terms_days') }}"}),
                "pkg_util_expression_is_true_orders_enriched_amount_base_0_and_days_to_due_var_payment_terms_days_",
                "pkg_util_expression_is_true_or_62723e6eb32fa1c20b26e08b949038a5",
            ),
            (
                "pkg_util.expression_is_true",
                "stg_orders",
                Some("amount"),
                json!({"expression": ">= 0"}),
                "pkg_util_expression_is_true_stg_orders_amount___0",
                "pkg_util_expression_is_true_stg_orders_amount___0",
            ),
            (
                "pkg_util.unique_combination",
                "orders_enriched",
                None,
                json!({"combination_of_columns": ["order_id", "currency"]}),
                "pkg_util_unique_combination_orders_enriched_order_id__currency",
                "pkg_util_unique_combination_orders_enriched_order_id__currency",
            ),
            (
                "pkg_util.expression_is_true",
                "orders_enriched",
                None,
                json!({"name": "no_returned_orders", "expression": "status <> 'returned'"}),
                "no_returned_orders",
                "no_returned_orders",
            ),
            // A model-level test without arguments keeps the trailing `_`.
            ("always_ok", "zz_model", None, json!({}), "always_ok_zz_model_", "always_ok_zz_model_"),
            // Column names keep their case; booleans and null as Python prints them.
            (
                "always_ok",
                "zz_model",
                Some("Order_ID"),
                json!({"x": true, "y": null, "where": "1=1"}),
                "always_ok_zz_model_Order_ID__True__None",
                "always_ok_zz_model_Order_ID__True__None",
            ),
            // Floats, nested lists and mappings (values only, here already in
            // key order: sluice reads mappings in key order, dbt in YAML order).
            (
                "always_ok",
                "zz_model",
                None,
                json!({"x": 0.5, "y": [[1, "a"], {"k": "v"}], "z": {"a": 2, "b": "it's ok"}, "config": {"severity": "warn"}}),
                "always_ok_zz_model_0_5___1_a____k_v___2__it_s_ok",
                "always_ok_zz_model_0_5___1_a____k_v___2__it_s_ok",
            ),
        ];
        for (test, model, column, args, full, short) in cases {
            let (s, f) = names(test, model, column, args);
            assert_eq!(f, full, "{test} on {model}");
            assert_eq!(s, short, "{test} on {model}");
        }
    }

    #[test]
    fn python_floats() {
        assert_eq!(py_float(0.5), "0.5");
        assert_eq!(py_float(2.0), "2.0");
        assert_eq!(py_float(1e-7), "1e-07");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1.5e15), "1500000000000000.0");
        assert_eq!(py_float(0.0001), "0.0001");
    }
}
