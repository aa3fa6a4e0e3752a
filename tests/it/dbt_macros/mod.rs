//! The built-in `dbt` macros (`src/models/dbt_macros/`): each macro rendered
//! with concrete arguments, the SQL run through the engine, the value checked
//! against one computed by hand (date arithmetic cross-checked with DuckDB's
//! date_diff, which is what dbt-duckdb users see).
//!
//! The macros are rendered here by a small stand-in for the template
//! machinery: `return(x)` prints x, `adapter.dispatch(name, 'dbt')` picks
//! `sluice__`, then `datafusion__`, then `default__`, and `dbt.name(...)` calls
//! the macro `name`. Macros written so that `return` is the only output (the
//! rule in these files) render the same under the real machinery.
//!
//! `dates`: datediff, dateadd, date_trunc, last_day, date, date_spine and
//! generate_series; `others`: casts, types, text, aggregates, arrays, set
//! operators, equals, timestamps, naming; `duckdb`: the date macros against
//! DuckDB on random timestamps.

mod dates;
mod duckdb;
mod others;

use minijinja::value::{from_args, Object, Value};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
use sluice::models::dbt_macros::FILES;
use sluice::project::Project;
use sluice::sql::Engine;
use std::sync::Arc;

#[derive(Debug)]
struct Adapter;

impl Object for Adapter {
    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if method != "dispatch" {
            return Err(Error::new(ErrorKind::UnknownMethod, method.to_string()));
        }
        let (name, _namespace): (&str, Option<&str>) = from_args(args)?;
        ["sluice__", "datafusion__", "default__"]
            .iter()
            .find_map(|prefix| state.lookup(&format!("{prefix}{name}")))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UndefinedError,
                    format!("no implementation of `{name}`"),
                )
            })
    }
}

/// `dbt.name(...)` calls the macro `name`.
#[derive(Debug)]
struct Dbt;

impl Object for Dbt {
    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let target = state.lookup(method).ok_or_else(|| {
            Error::new(ErrorKind::UndefinedError, format!("no macro dbt.{method}"))
        })?;
        target.call(state, args)
    }
}

/// Renders `{{ call }}` after the macro library; `vars` are the project vars.
fn render_with(call: &str, vars: &[(&str, Value)]) -> Result<String, Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_function("return", |v: Value| v);
    env.add_global("adapter", Value::from_object(Adapter));
    env.add_global("dbt", Value::from_object(Dbt));
    env.add_global(
        "exceptions",
        Value::from_iter([(
            "raise_compiler_error",
            Value::from_function(|msg: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, msg))
            }),
        )]),
    );
    env.add_global(
        "target",
        Value::from_iter([("name", "dev"), ("schema", "main")]),
    );
    let vars: Vec<(String, Value)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    env.add_function("var", move |name: String, default: Option<Value>| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or(default)
            .ok_or_else(|| Error::new(ErrorKind::UndefinedError, format!("var {name}")))
    });
    let mut text: String = FILES.iter().map(|(_, t)| *t).collect::<Vec<_>>().join("\n");
    text.push_str("\n{{ ");
    text.push_str(call);
    text.push_str(" }}");
    let out = env.render_str(&text, ())?;
    Ok(out.trim().to_string())
}

fn render(call: &str) -> String {
    render_with(call, &[]).unwrap_or_else(|e| panic!("{call}: {e:#}"))
}

fn render_err(call: &str) -> String {
    match render_with(call, &[]) {
        Ok(sql) => panic!("{call} rendered `{sql}`, expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

async fn engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = sluice::warehouse::Warehouse::open("memory:///", &Default::default()).unwrap();
    let e = crate::common::engine(&project, &w).await;
    (dir, e)
}

/// `select <rendered call> as v`, the value as text ("NULL" for NULL). The
/// alias matters: sluice cannot run an unaliased constant expression such as
/// `select 1 + 1` (its checked constant folding renames the column).
async fn value(e: &Engine, call: &str) -> String {
    let sql = format!("select {} as v", render(call));
    let batches = e
        .query(&sql)
        .await
        .unwrap_or_else(|err| panic!("{call}\n{sql}\n{err}"));
    let b = batches.iter().find(|b| b.num_rows() > 0).expect("no rows");
    if b.column(0).is_null(0) {
        return "NULL".to_string();
    }
    arrow::util::display::array_value_to_string(b.column(0), 0).unwrap()
}

/// Checks each (call, expected) pair.
async fn check(e: &Engine, cases: &[(&str, &str)]) {
    let mut wrong = Vec::new();
    for (call, expected) in cases {
        let got = value(e, call).await;
        if got != *expected {
            wrong.push(format!(
                "{call}\n  sql: {}\n  got {got}, expected {expected}",
                render(call)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// All rows of a query as `a|b` strings, in the query's order.
async fn rows_of(e: &Engine, sql: &str) -> Vec<String> {
    let batches = e
        .query(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}\n{err}"));
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| {
                    if b.column(c).is_null(r) {
                        "NULL".to_string()
                    } else {
                        arrow::util::display::array_value_to_string(b.column(c), r).unwrap()
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// The `dbt` namespace through the real model compiler: qualified and
/// unqualified calls, `return()` values, a root-project override.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbt_namespace_renders_through_the_model_compiler() {
    use sluice::models::Steps;
    let dir = crate::models::project_of(&[
        (
            "models/m.sql",
            r#"select
    {{ dbt.datediff("timestamp '2024-01-01 23:00:00'", "timestamp '2024-01-02 01:00:00'", 'day') }} as d,
    {{ dateadd('month', 1, "date '2024-01-31'") }} as next_month,
    cast('1.23456789' as {{ dbt.type_numeric() }}) as num,
    {{ dbt.last_day("date '2023-02-10'", 'month') }} as feb_end,
    {{ dbt.hash("'abc'") }} as h,
    {{ split_part("'a,b,c'", "','", -1) }} as last_part,
    {{ dbt.concat(["'x'", "'y'"]) }} as xy,
    '{{ dbt.type_string() }}' as type_name,
    {{ dbt.get_powers_of_two(5) + 1 }} as powers_plus_one,
    {{ dbt.safe_cast("'x'", dbt.type_int()) }} as bad_int"#,
        ),
        (
            "models/spine.sql",
            r#"{{ dbt.date_spine('day', "date '2024-02-27'", "date '2024-03-02'") }}"#,
        ),
        (
            "macros/override.sql",
            "{% macro sluice__any_value(expression) %}min({{ expression }}){% endmacro %}",
        ),
        (
            "models/any.sql",
            "select {{ dbt.any_value('x') }} as v from (values (2), (1), (3)) t(x)",
        ),
    ]);
    let report = crate::models::execute(dir.path(), Steps::Models, &[], false).await;
    assert!(report.success(), "{:?}", report.results);
    let project = Project::load(dir.path()).unwrap();
    let w = crate::common::open(&project, None);
    let e = crate::common::engine(&project, &w).await;
    assert_eq!(
        rows_of(&e, "select * from main.m").await,
        ["1|2024-02-29|1.234568|2023-02-28|900150983cd24fb0d6963f7d28e17f72|c|xy|varchar|4|NULL"]
    );
    assert_eq!(
        rows_of(&e, "select * from main.spine order by 1").await,
        ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
    );
    assert_eq!(rows_of(&e, "select v from main.any").await, ["1"]);
}
