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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datediff_counts_boundaries() {
    let (_d, e) = engine().await;
    // (first, second, part, expected): values from DuckDB's date_diff, weeks by hand.
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "timestamp '2024-01-01 23:00:00'",
            "timestamp '2024-01-02 01:00:00'",
            "day",
            "1",
        ),
        (
            "timestamp '2024-01-02 01:00:00'",
            "timestamp '2024-01-01 23:00:00'",
            "day",
            "-1",
        ),
        (
            "timestamp '2024-01-02 01:00:00'",
            "timestamp '2024-01-02 23:00:00'",
            "day",
            "0",
        ),
        ("date '2024-02-28'", "date '2024-03-01'", "day", "2"),
        ("date '2023-02-28'", "date '2023-03-01'", "day", "1"),
        ("date '2024-01-31'", "date '2024-02-01'", "month", "1"),
        ("date '2024-02-01'", "date '2024-01-31'", "month", "-1"),
        ("date '2023-12-15'", "date '2025-03-01'", "month", "15"),
        ("date '2023-12-31'", "date '2024-01-01'", "quarter", "1"),
        ("date '2024-01-01'", "date '2024-03-31'", "quarter", "0"),
        ("date '2024-03-31'", "date '2024-04-01'", "quarter", "1"),
        ("date '2024-12-31'", "date '2025-01-01'", "year", "1"),
        ("date '2024-01-01'", "date '2024-12-31'", "year", "0"),
        ("date '2025-06-01'", "date '2023-01-31'", "year", "-2"),
        // Weeks start on Sunday: 2024-01-06 is a Saturday, 01-07 a Sunday.
        ("date '2024-01-06'", "date '2024-01-07'", "week", "1"),
        ("date '2024-01-07'", "date '2024-01-13'", "week", "0"),
        ("date '2024-01-14'", "date '2024-01-07'", "week", "-1"),
        ("date '2024-01-07'", "date '2024-01-06'", "week", "-1"),
        ("date '1969-12-27'", "date '1970-01-04'", "week", "2"),
        ("date '2024-01-01'", "date '2024-03-01'", "week", "8"),
        (
            "timestamp '2024-01-01 10:59:59'",
            "timestamp '2024-01-01 11:00:01'",
            "hour",
            "1",
        ),
        (
            "timestamp '2024-01-01 23:30:00'",
            "timestamp '2024-01-02 00:10:00'",
            "hour",
            "1",
        ),
        (
            "timestamp '2024-01-02 00:10:00'",
            "timestamp '2024-01-01 23:30:00'",
            "hour",
            "-1",
        ),
        (
            "timestamp '2024-02-28 12:00:00'",
            "timestamp '2024-03-01 12:00:00'",
            "hour",
            "48",
        ),
        ("date '2024-01-01'", "date '2024-01-02'", "hour", "24"),
        (
            "timestamp '2024-01-01 10:59:59'",
            "timestamp '2024-01-01 11:00:01'",
            "minute",
            "1",
        ),
        (
            "timestamp '2024-01-01 10:00:00'",
            "timestamp '2024-01-02 10:00:00'",
            "minute",
            "1440",
        ),
        (
            "timestamp '2024-01-01 10:59:59.900'",
            "timestamp '2024-01-01 11:00:00.100'",
            "second",
            "1",
        ),
        (
            "timestamp '2024-12-31 23:59:59'",
            "timestamp '2025-01-01 00:00:00'",
            "second",
            "1",
        ),
        (
            "timestamp '2024-01-01 10:59:59.9995'",
            "timestamp '2024-01-01 11:00:00.0001'",
            "millisecond",
            "1",
        ),
        (
            "timestamp '2024-01-01 10:00:00'",
            "timestamp '2024-01-01 10:00:01'",
            "millisecond",
            "1000",
        ),
        (
            "timestamp '2024-01-01 10:00:01'",
            "timestamp '2024-01-01 10:00:00.5'",
            "millisecond",
            "-500",
        ),
        (
            "timestamp '2024-01-01 10:00:00.000001'",
            "timestamp '2024-01-01 10:00:00.000003'",
            "microsecond",
            "2",
        ),
        (
            "timestamp '2024-01-01 23:59:59.999999'",
            "timestamp '2024-01-02 00:00:00'",
            "microsecond",
            "1",
        ),
        // Across the epoch (DuckDB agrees).
        (
            "timestamp '1969-12-31 23:59:59.9995'",
            "timestamp '1970-01-01 00:00:00.0005'",
            "millisecond",
            "1",
        ),
        (
            "timestamp '1969-12-31 23:59:00'",
            "timestamp '1970-01-01 00:01:00'",
            "hour",
            "1",
        ),
        (
            "timestamp '1969-12-31 23:59:00'",
            "timestamp '1970-01-01 00:01:00'",
            "day",
            "1",
        ),
        (
            "timestamp '1969-12-31 23:59:58.5'",
            "timestamp '1970-01-01 00:00:00.5'",
            "second",
            "2",
        ),
        ("cast(null as date)", "date '2024-01-01'", "day", "NULL"),
        (
            "date '2024-01-01'",
            "cast(null as timestamp)",
            "month",
            "NULL",
        ),
        // Datepart spelled as callers do.
        ("date '2024-01-01'", "date '2024-01-03'", "'day'", "2"),
        ("date '2024-01-01'", "date '2024-03-03'", "MONTHS", "2"),
        // dbt's adapter test: quoted literals, one boundary each.
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "microsecond",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "millisecond",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "second",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "minute",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "hour",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "day",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-03 00:00:00.000000'",
            "week",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "month",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "quarter",
            "1",
        ),
        (
            "'1999-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.000000'",
            "year",
            "1",
        ),
        // dbt's adapter test rows (weeks from Tuesday 2019-12-31).
        (
            "'2019-12-31 00:00:00'",
            "'2019-12-27 00:00:00'",
            "week",
            "-1",
        ),
        (
            "'2019-12-31 00:00:00'",
            "'2019-12-30 00:00:00'",
            "week",
            "0",
        ),
        (
            "'2019-12-31 00:00:00'",
            "'2020-01-02 00:00:00'",
            "week",
            "0",
        ),
        (
            "'2019-12-31 00:00:00'",
            "'2020-01-06 02:00:00'",
            "week",
            "1",
        ),
        (
            "'2018-01-01 01:00:00'",
            "'2018-01-01 02:01:00'",
            "minute",
            "61",
        ),
        (
            "'2018-01-01 01:00:00'",
            "'2018-01-01 02:00:01'",
            "second",
            "3601",
        ),
    ];
    let calls: Vec<(String, &str)> = cases
        .iter()
        .map(|(a, b, part, want)| (format!("datediff({a:?}, {b:?}, {part:?})"), *want))
        .collect();
    let calls: Vec<(&str, &str)> = calls.iter().map(|(c, w)| (c.as_str(), *w)).collect();
    check(&e, &calls).await;
    // The result is a bigint.
    assert_eq!(
        value(&e, r#""arrow_typeof(" ~ dbt.datediff("date '2024-01-01'", "date '2024-02-01'", 'day') ~ ")""#).await,
        "Int64"
    );
    let err = render_err(r#"datediff("a", "b", "fortnight")"#);
    assert!(
        err.contains("datediff: unsupported datepart `fortnight`; use one of: year,"),
        "{err}"
    );
}

/// The SQL the date macros emit, as their doc comments describe it.
#[test]
fn date_macros_emit_the_documented_sql() {
    assert_eq!(
        render(r#"datediff("a", "b", "day")"#),
        "cast((cast((b) as date) - cast((a) as date)) as bigint)"
    );
    assert_eq!(
        render(r#"dateadd("day", 1, "d")"#),
        "((d) + interval '1 day')"
    );
    assert_eq!(
        render(r#"dateadd("quarter", -2, "d")"#),
        "((d) + interval '-6 month')"
    );
    assert_eq!(
        render(r#"dateadd("hour", "n", "d")"#),
        "(cast(d as timestamp) + cast(cast(n as varchar) || ' hour' as interval))"
    );
    assert_eq!(
        render(r#"dbt.date_trunc("'Month'", "d")"#),
        "date_trunc('month', d)"
    );
    assert_eq!(
        render(r#"last_day("d", "quarter")"#),
        "cast(date_trunc('quarter', d) + interval '3 month' - interval '1 day' as date)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dateadd_date_trunc_last_day_date() {
    let (_d, e) = engine().await;
    check(
        &e,
        &[
            // Month arithmetic clamps to the month's end; a date stays a date.
            (r#"dateadd("month", 1, "date '2024-01-31'")"#, "2024-02-29"),
            (r#"dateadd("month", -1, "date '2024-03-31'")"#, "2024-02-29"),
            (r#"dateadd("year", 1, "date '2024-02-29'")"#, "2025-02-28"),
            (r#"dateadd("year", -4, "date '2024-02-29'")"#, "2020-02-29"),
            (
                r#"dateadd("quarter", 1, "date '2024-11-30'")"#,
                "2025-02-28",
            ),
            (r#"dateadd("week", -2, "date '2024-01-10'")"#, "2023-12-27"),
            (r#"dateadd("day", 1, "date '2023-12-31'")"#, "2024-01-01"),
            (
                r#"dateadd("day", 1, "timestamp '2024-02-28 10:00:00'")"#,
                "2024-02-29T10:00:00",
            ),
            // Smaller than a day: a date becomes a timestamp (not truncated).
            (
                r#"dateadd("hour", 3, "date '2024-01-01'")"#,
                "2024-01-01T03:00:00",
            ),
            (
                r#"dateadd("minute", -90, "timestamp '2024-01-01 00:30:00'")"#,
                "2023-12-31T23:00:00",
            ),
            (
                r#"dateadd("second", 86400, "timestamp '2024-02-28 00:00:00'")"#,
                "2024-02-29T00:00:00",
            ),
            (
                r#"dateadd("millisecond", 250, "timestamp '2024-01-01 00:00:00'")"#,
                "2024-01-01T00:00:00.250",
            ),
            (
                r#"dateadd("microsecond", 5, "timestamp '2024-01-01 00:00:00'")"#,
                "2024-01-01T00:00:00.000005",
            ),
            // An expression, a number as text (as last_day passes), NULL.
            (
                r#"dateadd("day", "1 + 1", "date '2024-01-01'")"#,
                "2024-01-03",
            ),
            (r#"dateadd("day", "-1", "date '2024-01-01'")"#, "2023-12-31"),
            (
                r#"dateadd("quarter", "2 - 1", "date '2024-01-31'")"#,
                "2024-04-30",
            ),
            (
                r#"dateadd("hour", "0.5", "timestamp '2024-01-01 00:00:00'")"#,
                "2024-01-01T00:30:00",
            ),
            (
                r#"dateadd("day", "cast(null as int)", "date '2024-01-01'")"#,
                "NULL",
            ),
            (r#"dateadd("day", 1, "cast(null as date)")"#, "NULL"),
            // Quoted literals, as dbt's own tests pass them.
            (r#"dateadd("day", 1, "'2024-01-31'")"#, "2024-02-01"),
            (
                r#"dateadd("month", 1, "'2024-01-31 10:00:00'")"#,
                "2024-02-29T10:00:00",
            ),
            (
                r#"dateadd("hour", 1, "'2024-01-31 10:00:00'")"#,
                "2024-01-31T11:00:00",
            ),
            (r#"dateadd("year", -1, " '2024-02-29' ")"#, "2023-02-28"),
            // date_trunc: weeks start on Monday; the result is a timestamp.
            (
                r#"date_trunc("week", "date '2024-01-07'")"#,
                "2024-01-01T00:00:00",
            ),
            (
                r#"date_trunc("week", "date '2024-01-08'")"#,
                "2024-01-08T00:00:00",
            ),
            (
                r#"date_trunc("quarter", "timestamp '2024-05-17 10:00:00'")"#,
                "2024-04-01T00:00:00",
            ),
            (
                r#"date_trunc("month", "timestamp '2024-02-29 23:59:59'")"#,
                "2024-02-01T00:00:00",
            ),
            (
                r#"date_trunc("year", "date '2024-12-31'")"#,
                "2024-01-01T00:00:00",
            ),
            (
                r#"date_trunc("day", "timestamp '2024-01-01 23:00:00'")"#,
                "2024-01-01T00:00:00",
            ),
            (
                r#"date_trunc("hour", "timestamp '2024-01-01 23:59:59'")"#,
                "2024-01-01T23:00:00",
            ),
            (
                r#"date_trunc("'DAY'", "timestamp '2024-01-01 23:00:00'")"#,
                "2024-01-01T00:00:00",
            ),
            (r#"date_trunc("day", "cast(null as timestamp)")"#, "NULL"),
            // Down, also before 1970 (DataFusion's own date_trunc rounds these up).
            (
                r#"date_trunc("millisecond", "timestamp '1969-06-01 10:00:00.1234'")"#,
                "1969-06-01T10:00:00.123",
            ),
            (
                r#"date_trunc("millisecond", "timestamp '1969-12-31 23:59:59.9995'")"#,
                "1969-12-31T23:59:59.999",
            ),
            (
                r#"date_trunc("microsecond", "timestamp '1969-06-01 10:00:00.1234567'")"#,
                "1969-06-01T10:00:00.123456",
            ),
            (
                r#"date_trunc("millisecond", "timestamp '2024-06-01 10:00:00.1239'")"#,
                "2024-06-01T10:00:00.123",
            ),
            (
                r#"date_trunc("second", "timestamp '1969-06-01 10:00:00.5'")"#,
                "1969-06-01T10:00:00",
            ),
            (
                r#"date_trunc("day", "timestamp '1969-12-31 10:00:00'")"#,
                "1969-12-31T00:00:00",
            ),
            // last_day: a date.
            (r#"last_day("date '2024-02-10'", "month")"#, "2024-02-29"),
            (r#"last_day("date '2023-02-10'", "month")"#, "2023-02-28"),
            (r#"last_day("date '2024-12-31'", "month")"#, "2024-12-31"),
            (
                r#"last_day("timestamp '2024-05-17 10:00:00'", "quarter")"#,
                "2024-06-30",
            ),
            (r#"last_day("date '2024-11-02'", "quarter")"#, "2024-12-31"),
            (r#"last_day("date '2024-05-17'", "year")"#, "2024-12-31"),
            (r#"last_day("date '2024-01-03'", "week")"#, "2024-01-07"),
            (r#"last_day("cast(null as date)", "month")"#, "NULL"),
            // date(year, month, day)
            ("date(2024, 2, 29)", "2024-02-29"),
            ("dbt.date(2000, 12, 31)", "2000-12-31"),
            (r#"date("2020 + 4", 1, "1 + 1")"#, "2024-01-02"),
        ],
    )
    .await;
    assert_eq!(
        value(
            &e,
            r#""arrow_typeof(" ~ dateadd("day", 1, "date '2024-01-01'") ~ ")""#
        )
        .await,
        "Date32"
    );
    // A UTC timestamp (what loads and Delta tables hold) keeps its type for
    // day and larger, also near the year 9999 sentinel; hours make it a plain timestamp.
    let utc = r#"arrow_cast(date '9999-12-30', 'Timestamp(Microsecond, Some(\"UTC\"))')"#;
    assert_eq!(
        value(
            &e,
            &format!(r#""arrow_typeof(" ~ dateadd("day", 1, "{utc}") ~ ")""#)
        )
        .await,
        r#"Timestamp(µs, "UTC")"#
    );
    assert_eq!(
        value(&e, &format!(r#"dateadd("day", 1, "{utc}")"#)).await,
        "9999-12-31T00:00:00Z"
    );
    let utc_2024 = utc.replace("9999-12-30", "2024-01-01");
    assert_eq!(
        value(
            &e,
            &format!(r#""arrow_typeof(" ~ dateadd("hour", 1, "{utc_2024}") ~ ")""#)
        )
        .await,
        "Timestamp(ns)"
    );
    assert_eq!(
        value(&e, &format!(r#"dateadd("hour", 1, "{utc_2024}")"#)).await,
        "2024-01-01T01:00:00"
    );
    assert_eq!(
        value(
            &e,
            r#""arrow_typeof(" ~ last_day("timestamp '2024-01-01 10:00:00'", 'month') ~ ")""#
        )
        .await,
        "Date32"
    );
    for (call, message) in [
        ("date(2023, 2, 29)", "date(2023, 2, 29): no such date"),
        ("date(1900, 2, 29)", "date(1900, 2, 29): no such date"),
        ("date(2024, 13, 1)", "date(2024, 13, 1): no such date"),
        (
            r#"dateadd("fortnight", 1, "d")"#,
            "dateadd: unsupported datepart `fortnight`",
        ),
        (
            r#"date_trunc("nanosecond", "d")"#,
            "date_trunc: unsupported datepart `nanosecond`",
        ),
        (
            r#"last_day("d", "day")"#,
            "last_day: unsupported datepart `day`; use one of: year, quarter, month, week",
        ),
    ] {
        let err = render_err(call);
        assert!(err.contains(message), "{call}: {err}");
    }
    // 2000 is a leap year (divisible by 400).
    assert_eq!(value(&e, "date(2000, 2, 29)").await, "2000-02-29");
}

/// Rows of `select date_<part> from (<date_spine>)` in order.
async fn spine(e: &Engine, call: &str, column: &str) -> Vec<String> {
    let sql = format!("select {column} from ({}) order by 1", render(call));
    let batches = e
        .query(&sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}\n{err}"));
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            out.push(arrow::util::display::array_value_to_string(b.column(0), r).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_spine_and_generate_series() {
    let (_d, e) = engine().await;
    // From the start up to but not including the end, as in dbt.
    assert_eq!(
        spine(
            &e,
            r#"date_spine("day", "date '2024-02-27'", "date '2024-03-02'")"#,
            "date_day"
        )
        .await,
        ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
    );
    // Each period is start + k months (not month after month): Jan 31, Feb 29, Mar 31, Apr 30.
    assert_eq!(
        spine(
            &e,
            r#"dbt.date_spine("month", "date '2024-01-31'", "date '2024-05-01'")"#,
            "date_month"
        )
        .await,
        ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]
    );
    assert_eq!(
        spine(&e, r#"date_spine("hour", "timestamp '2024-01-01 22:00:00'", "timestamp '2024-01-02 01:00:00'")"#, "date_hour").await,
        ["2024-01-01T22:00:00", "2024-01-01T23:00:00", "2024-01-02T00:00:00"]
    );
    assert_eq!(
        spine(
            &e,
            r#"date_spine("week", "date '2024-01-01'", "date '2024-01-22'")"#,
            "date_week"
        )
        .await,
        ["2024-01-01", "2024-01-08", "2024-01-15"]
    );
    assert!(spine(
        &e,
        r#"date_spine("day", "date '2024-01-01'", "date '2024-01-01'")"#,
        "date_day"
    )
    .await
    .is_empty());
    assert!(spine(
        &e,
        r#"date_spine("day", "date '2024-01-05'", "date '2024-01-01'")"#,
        "date_day"
    )
    .await
    .is_empty());
    // dbt's adapter tests: quoted literals, and date() bounds.
    assert_eq!(
        spine(
            &e,
            r#"date_spine("day", "'2023-09-01'", "'2023-09-10'")"#,
            "date_day"
        )
        .await,
        [
            "2023-09-01",
            "2023-09-02",
            "2023-09-03",
            "2023-09-04",
            "2023-09-05",
            "2023-09-06",
            "2023-09-07",
            "2023-09-08",
            "2023-09-09"
        ]
    );
    assert_eq!(
        spine(
            &e,
            r#"dbt.date_spine("day", date(2023, 9, 7), date(2023, 9, 10))"#,
            "date_day"
        )
        .await,
        ["2023-09-07", "2023-09-08", "2023-09-09"]
    );
    // dbt's portable date_spine (row_number over a constant) also runs here.
    assert_eq!(
        spine(
            &e,
            r#"default__date_spine("day", "date '2024-02-27'", "date '2024-03-02'")"#,
            "date_day"
        )
        .await,
        ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
    );
    // A year of days, leap year.
    let days = spine(
        &e,
        r#"date_spine("day", "date '2024-01-01'", "date '2025-01-01'")"#,
        "date_day",
    )
    .await;
    assert_eq!(
        (days.len(), days[59].as_str(), days[365].as_str()),
        (366, "2024-02-29", "2024-12-31")
    );

    assert_eq!(
        spine(&e, "generate_series(5)", "generated_number").await,
        ["1", "2", "3", "4", "5"]
    );
    assert!(spine(&e, "generate_series(0)", "generated_number")
        .await
        .is_empty());
    assert_eq!(
        spine(&e, r#"generate_series(get_intervals_between("date '2024-01-01'", "date '2024-03-01'", 'month'))"#, "generated_number").await,
        ["1", "2"]
    );
    assert_eq!(
        value(
            &e,
            r#"get_intervals_between("date '2024-01-01'", "date '2024-01-31'", 'day')"#
        )
        .await,
        "30"
    );
    // get_powers_of_two is a number for Jinja: the smallest n with 2^n >= bound.
    for (bound, n) in [
        (1, "1"),
        (2, "1"),
        (3, "2"),
        (5, "3"),
        (8, "3"),
        (9, "4"),
        (1024, "10"),
        (27, "5"),
        (256, "8"),
        (3125, "12"),
        (46656, "16"),
        (823543, "20"),
    ] {
        assert_eq!(
            render(&format!("get_powers_of_two({bound})")),
            n,
            "bound {bound}"
        );
    }
    assert!(render_err("get_powers_of_two(0)").contains("upper bound must be positive"));
    // dbt's portable generate_series (powers of two cross-joined) also runs here.
    let default = render("default__generate_series(11)");
    let sql =
        format!("select count(*), min(generated_number), max(generated_number) from ({default})");
    let batches = e
        .query(&sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}\n{err}"));
    let b = &batches[0];
    let cells: Vec<String> = (0..3)
        .map(|c| arrow::util::display::array_value_to_string(b.column(c), 0).unwrap())
        .collect();
    // power() is a double in DataFusion, as in Postgres.
    assert_eq!(cells, ["11", "1.0", "11.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_and_types() {
    let (_d, e) = engine().await;
    check(
        &e,
        &[
            (r#"cast("'12'", "bigint")"#, "12"),
            (r#"safe_cast("'12'", type_int())"#, "12"),
            (r#"safe_cast("'twelve'", type_int())"#, "NULL"),
            (r#"safe_cast("'2024-02-30'", "date")"#, "NULL"),
            (r#"cast_bool_to_text("1 < 2")"#, "true"),
            (r#"cast_bool_to_text("1 > 2")"#, "false"),
            (r#"cast_bool_to_text("cast(null as boolean)")"#, "NULL"),
            // numeric(28,6) keeps six decimals, rounding the seventh.
            (
                r#""cast(1.23456789 as " ~ type_numeric() ~ ")""#,
                "1.234568",
            ),
            (
                r#""cast('1234567890123456789012.5' as " ~ type_numeric() ~ ")""#,
                "1234567890123456789012.500000",
            ),
            (
                r#""cast(0.1 as " ~ type_float() ~ ") + cast(0.2 as " ~ type_float() ~ ")""#,
                "0.30000000000000004",
            ),
            (
                r#""cast(3000000000 as " ~ type_bigint() ~ ")""#,
                "3000000000",
            ),
            (
                r#""cast('2024-02-29 10:00:00' as " ~ type_timestamp() ~ ")""#,
                "2024-02-29T10:00:00",
            ),
            (r#""cast('true' as " ~ type_boolean() ~ ")""#, "true"),
            (r#""cast(42 as " ~ type_string() ~ ")""#, "42"),
        ],
    )
    .await;
    for (call, arrow_type) in [
        ("type_string()", "Utf8View"),
        ("type_timestamp()", "Timestamp(ns)"),
        ("type_float()", "Float64"),
        ("type_numeric()", "Decimal128(28, 6)"),
        ("type_bigint()", "Int64"),
        ("type_int()", "Int32"),
        ("type_boolean()", "Boolean"),
        ("dbt.type_int()", "Int32"),
    ] {
        let got = value(
            &e,
            &format!(r#""arrow_typeof(cast(null as " ~ {call} ~ "))""#),
        )
        .await;
        assert_eq!(got, arrow_type, "{call}");
    }
    // An int overflows where dbt's int would.
    let sql = format!("select cast(3000000000 as {}) as v", render("type_int()"));
    assert!(e.query(&sql).await.is_err(), "{sql} should fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_macros() {
    let (_d, e) = engine().await;
    check(
        &e,
        &[
            (r#"concat(["'a'", "'-'", "'b'"])"#, "a-b"),
            (r#"concat(["'a'", "cast(null as varchar)"])"#, "NULL"),
            (r#"hash("'abc'")"#, "900150983cd24fb0d6963f7d28e17f72"),
            (r#"hash("1")"#, "c4ca4238a0b923820dcc509a6f75849b"),
            (r#"hash("''")"#, "d41d8cd98f00b204e9800998ecf8427e"),
            (r#"hash("cast(null as varchar)")"#, "NULL"),
            (r#"split_part("'a,b,c'", "','", 1)"#, "a"),
            (r#"split_part("'a,b,c'", "','", 3)"#, "c"),
            (r#"split_part("'a,b,c'", "','", 4)"#, ""),
            (r#"split_part("'a,b,c'", "','", -1)"#, "c"),
            (r#"split_part("'a,b,c'", "','", -3)"#, "a"),
            (r#"split_part("'a,b,c'", "','", -4)"#, ""),
            (r#"split_part("'a,,c'", "','", 2)"#, ""),
            (r#"split_part("'2024-01-31'", "'-'", "1 + 1")"#, "01"),
            (r#"split_part("cast(null as varchar)", "','", 1)"#, "NULL"),
            (r#"position("'b'", "'abc'")"#, "2"),
            (r#"position("'z'", "'abc'")"#, "0"),
            (r#"position("'é'", "'héllo'")"#, "2"),
            (r#"length("'héllo'")"#, "5"),
            (r#"length("''")"#, "0"),
            (r#"length("cast(null as varchar)")"#, "NULL"),
            (r#"replace("'abab'", "'a'", "'x'")"#, "xbxb"),
            (r#"right("'abcdef'", 2)"#, "ef"),
            (r#"right("'ab'", 5)"#, "ab"),
            (r#"right("'abcdef'", 0)"#, ""),
            (r#""'" ~ escape_single_quotes("it's") ~ "'""#, "it's"),
            (r#""'" ~ escape_single_quotes("''") ~ "'""#, "''"),
            (r#"string_literal("abc")"#, "abc"),
            (r#"string_literal("2024-01-01")"#, "2024-01-01"),
            // dbt's adapter test: the empty string and none.
            (r#"string_literal("")"#, ""),
            ("string_literal(none)", "None"),
            (
                r#"length(string_literal(escape_single_quotes("they're")))"#,
                "7",
            ),
        ],
    )
    .await;
    assert_eq!(render(r#"escape_single_quotes("it's")"#), "it''s");
    assert_eq!(render(r#"string_literal("abc")"#), "'abc'");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_listagg_bool_or_any_value() {
    let (_d, e) = engine().await;
    let data =
        "(values (1, 'c', 3, true), (1, 'a', 1, false), (1, null, 0, null), (1, 'b', 2, false), \
                (2, null, 5, null), (2, null, 6, false), (3, 'z', 9, null))";
    let query = |calls: &[&str]| {
        let cols: Vec<String> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} as c{i}", render(c)))
            .collect();
        format!(
            "select g, {} from {data} t(g, s, n, b) group by g order by g",
            cols.join(", ")
        )
    };
    // No order: check the set only.
    let unordered = rows_of(&e, &query(&[r#"listagg("s")"#])).await;
    let mut parts: Vec<&str> = unordered[0].trim_start_matches("1|").split(',').collect();
    parts.sort();
    assert_eq!(parts, ["a", "b", "c"]);
    assert_eq!(&unordered[1..], ["2|NULL", "3|z"]);
    // One ordering per query: DataFusion 55 refuses aggregates with different
    // orderings in one query ("Conflicting ordering requirements").
    assert_eq!(
        rows_of(
            &e,
            &query(&[
                r#"listagg("s", "'; '", "order by s")"#,
                r#"listagg("s", limit_num=2, order_by_clause="order by s")"#,
                r#"listagg("s", "','", "order by s", 1)"#,
            ])
        )
        .await,
        ["1|a; b; c|a,b|a", "2|NULL|NULL|NULL", "3|z|z|z"]
    );
    assert_eq!(
        rows_of(
            &e,
            &query(&[
                r#"listagg("s", "', '", "order by n desc")"#,
                r#"listagg("s", "'/'", "order by n desc", 2)"#,
                r#"dbt.listagg("n", "'+'", "order by n desc", 10)"#,
            ])
        )
        .await,
        ["1|c, b, a|c/b|3+2+1+0", "2|NULL|NULL|6+5", "3|z|z|9"]
    );
    // dbt's adapter test for listagg, with its expected strings.
    let dbt_data =
        "(values (1, 'a', 1), (1, 'b', 2), (1, 'c', 3), (2, 'a', 2), (2, '1', 1), (2, 'p', 3), \
                    (3, 'g', 1), (3, 'g', 2), (3, 'g', 3)) t(group_col, string_text, order_col)";
    let dbt_query = |call: &str, filter: &str| {
        format!(
            "select group_col, {} as actual from {dbt_data} {filter} group by group_col order by group_col",
            render(call)
        )
    };
    assert_eq!(
        rows_of(
            &e,
            &dbt_query(
                r#"listagg('string_text', "'_|_'", "order by order_col")"#,
                ""
            )
        )
        .await,
        ["1|a_|_b_|_c", "2|1_|_a_|_p", "3|g_|_g_|_g"]
    );
    assert_eq!(
        rows_of(
            &e,
            &dbt_query(
                r#"listagg('string_text', "'_|_'", "order by order_col", 2)"#,
                ""
            )
        )
        .await,
        ["1|a_|_b", "2|1_|_a", "3|g_|_g"]
    );
    let group3 = "where group_col = 3";
    assert_eq!(
        rows_of(&e, &dbt_query(r#"listagg('string_text', "', '")"#, group3)).await,
        ["3|g, g, g"]
    );
    assert_eq!(
        rows_of(
            &e,
            &dbt_query(r#"listagg('DISTINCT string_text', "','")"#, group3)
        )
        .await,
        ["3|g"]
    );
    assert_eq!(
        rows_of(&e, &dbt_query("listagg('string_text')", group3)).await,
        ["3|g,g,g"]
    );
    // DISTINCT with a limit and an order.
    assert_eq!(
        rows_of(
            &e,
            &dbt_query(
                r#"listagg('DISTINCT string_text', "','", "order by string_text desc", 2)"#,
                ""
            )
        )
        .await,
        ["1|c,b", "2|p,a", "3|g"]
    );
    assert_eq!(
        rows_of(
            &e,
            &query(&[
                r#"bool_or("b")"#,
                r#"bool_or("n > 5")"#,
                r#"any_value("g * 10")"#
            ])
        )
        .await,
        ["1|true|false|10", "2|false|true|20", "3|NULL|true|30"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_set_operators_equals_timestamps() {
    let (_d, e) = engine().await;
    check(
        &e,
        &[
            ("array_construct([1, 2, 3])", "[1, 2, 3]"),
            (r#"array_construct(["'a'", "'b'"], 'varchar')"#, "[a, b]"),
            ("array_construct()", "[]"),
            (r#"array_append(array_construct([1, 2]), 3)"#, "[1, 2, 3]"),
            (r#"array_append(array_construct([], 'bigint'), 7)"#, "[7]"),
            (
                r#"array_concat(array_construct([1, 2]), array_construct([3]))"#,
                "[1, 2, 3]",
            ),
            (
                r#"array_concat(array_construct([1]), array_construct())"#,
                "[1]",
            ),
            (r#""array_length(" ~ array_construct([5, 6]) ~ ")""#, "2"),
        ],
    )
    .await;
    assert_eq!(
        value(
            &e,
            r#""arrow_typeof(" ~ array_construct([], 'bigint') ~ ")""#
        )
        .await,
        "List(Int64)"
    );
    assert_eq!(
        value(&e, r#""arrow_typeof(" ~ array_construct() ~ ")""#).await,
        "List(Int32)"
    );

    let data = "(values (1), (2), (2), (3)) t(x)";
    let set_op = |op: &str| {
        format!(
            "select x from {data} {} select x from (values (2), (4)) u(x) order by x",
            render(op)
        )
    };
    assert_eq!(rows_of(&e, &set_op("except()")).await, ["1", "3"]);
    assert_eq!(rows_of(&e, &set_op("dbt.intersect()")).await, ["2"]);

    // equals: plain `=` by default; NULLs equal with the var set.
    let pairs = "(values (1, 1), (null, null), (1, 2), (null, 3)) t(a, b)";
    let count = |sql: String| format!("select count(*) from {pairs} where {sql}");
    assert_eq!(
        rows_of(&e, &count(render(r#"equals("a", "b")"#))).await,
        ["1"]
    );
    let truthy = render_with(
        r#"equals("a", "b")"#,
        &[("enable_truthy_nulls_equals_macro", Value::from(true))],
    )
    .unwrap();
    assert_eq!(rows_of(&e, &count(truthy)).await, ["2"]);

    // current_timestamp: the statement's start as a UTC timestamp (dbt's tests
    // want it time-zone aware); the backcompat forms and snapshot_get_time plain.
    let sql = format!(
        "select date_trunc('microsecond', cast(now() as timestamp)) = cast({now} as timestamp) \
         and {legacy} = cast(now() as timestamp) and {utc} = {legacy} and {snap} = {legacy} as same, \
         arrow_typeof({now}) as now_type, arrow_typeof({legacy}) as legacy_type, \
         arrow_typeof({utc}) as utc_type, arrow_typeof({snap}) as snapshot_type, \
         cast({now} as bigint) as micros",
        now = render("current_timestamp()"),
        legacy = render("current_timestamp_backcompat()"),
        utc = render("current_timestamp_in_utc_backcompat()"),
        snap = render("snapshot_get_time()"),
    );
    let before = chrono::Utc::now().timestamp_micros();
    let got = rows_of(&e, &sql).await;
    let after = chrono::Utc::now().timestamp_micros();
    let (checks, micros) = got[0].rsplit_once('|').unwrap();
    assert_eq!(
        checks,
        r#"true|Timestamp(µs, "UTC")|Timestamp(ns)|Timestamp(ns)|Timestamp(ns)"#
    );
    // The wall clock in UTC (dbt's test allows 5 minutes; one process, no skew here).
    let micros: i64 = micros.parse().unwrap();
    assert!(
        before <= micros && micros <= after,
        "{before} <= {micros} <= {after}"
    );
}

#[test]
fn naming_macros_follow_dbt_defaults() {
    let cases = [
        ("generate_schema_name()", "main"),
        ("generate_schema_name(none, none)", "main"),
        ("generate_schema_name('marts')", "main_marts"),
        (
            "generate_schema_name(' marts ', {'name': 'orders'})",
            "main_marts",
        ),
        ("dbt.generate_schema_name('staging')", "main_staging"),
        ("generate_alias_name(none, {'name': 'orders'})", "orders"),
        (
            "generate_alias_name(' fct_orders ', {'name': 'orders'})",
            "fct_orders",
        ),
        (
            "generate_alias_name(none, {'name': 'orders', 'version': 2})",
            "orders_v2",
        ),
        (
            "generate_alias_name(none, {'name': 'orders', 'version': '1.5'})",
            "orders_v1_5",
        ),
        (
            "generate_alias_name(none, {'name': 'orders', 'version': none})",
            "orders",
        ),
        (
            "generate_alias_name('x', {'name': 'orders', 'version': 3})",
            "x",
        ),
        (
            "generate_database_name('analytics', {'name': 'orders'})",
            "analytics",
        ),
        ("generate_database_name(none, {'name': 'orders'})", ""),
    ];
    for (call, want) in cases {
        assert_eq!(render(call), want, "{call}");
    }
}

// ---------------------------------------------------------------------------
// Differential: the date macros against DuckDB on seeded random timestamps.

/// `python3` with the `duckdb` module (tests/run.sh puts the venv's first on
/// PATH), or None with the reason.
fn duckdb_python() -> Result<String, String> {
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    match std::process::Command::new(&python)
        .args(["-c", "import duckdb"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "`{python} -c 'import duckdb'` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `{python}`: {e}")),
    }
}

/// Runs `sql` in DuckDB; each row as `a|b` (NULL as "NULL").
fn duckdb_rows(python: &str, sql: &str) -> Vec<String> {
    use std::io::Write;
    let script = "import sys, duckdb\n\
                  for r in duckdb.connect().execute(sys.stdin.read()).fetchall():\n\
                  \x20   print('|'.join('NULL' if v is None else str(v) for v in r))\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "duckdb failed on\n{}...\n{}",
        &sql[..sql.len().min(300)],
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Seeded pseudo-random numbers (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

fn timestamp_literal(micros: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap();
    format!("timestamp '{}'", t.format("%Y-%m-%d %H:%M:%S%.6f"))
}

/// Pairs of timestamps from 1900 to 2100: far apart, or close (days, hours,
/// seconds, microseconds) so that boundaries are crossed by a little.
fn random_pairs(seed: u64, n: usize) -> Vec<(String, String)> {
    const Y1900: i64 = -2_208_988_800_000_000;
    const Y2100: i64 = 4_102_444_800_000_000;
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let a = rng.range(Y1900, Y2100);
            // Whole seconds, whole days too, as real data often is.
            let a = match i % 4 {
                0 => a - a.rem_euclid(1_000_000),
                1 => a - a.rem_euclid(86_400_000_000),
                _ => a,
            };
            let spread: i64 = [
                Y2100 - Y1900,
                40 * 86_400_000_000,
                3 * 3_600_000_000,
                3_000_000,
                3_000,
            ][i % 5];
            let b = (a + rng.range(-spread, spread)).clamp(Y1900, Y2100);
            (timestamp_literal(a), timestamp_literal(b))
        })
        .collect()
}

fn values_of(pairs: &[(String, String)]) -> String {
    let rows: Vec<String> = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, b))| format!("({i}, {a}, {b})"))
        .collect();
    format!("(values {}) t(id, a, b)", rows.join(", "))
}

/// One query per side, a column per datepart; `ours`/`theirs` map a part to
/// the expression. Rows compared cell by cell; differences appended to `failures`.
#[allow(clippy::too_many_arguments)]
async fn compare_columns(
    e: &Engine,
    python: &str,
    what: &str,
    from: &str,
    parts: &[&str],
    ours: impl Fn(&str) -> String,
    theirs: impl Fn(&str) -> String,
    rows: &[String],
    failures: &mut Vec<String>,
) {
    let cols = |f: &dyn Fn(&str) -> String| {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{} as c{i}", f(p)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mine = rows_of(
        e,
        &format!("select id, {} from {from} order by id", cols(&ours)),
    )
    .await;
    let duck = duckdb_rows(
        python,
        &format!("select id, {} from {from} order by id", cols(&theirs)),
    );
    assert_eq!(
        (mine.len(), duck.len()),
        (rows.len(), rows.len()),
        "{what}: row counts"
    );
    for ((m, d), row) in mine.iter().zip(&duck).zip(rows) {
        for ((mv, dv), part) in m.split('|').skip(1).zip(d.split('|').skip(1)).zip(parts) {
            if mv != dv {
                failures.push(format!("{what} {part} of {row}: sluice {mv}, duckdb {dv}"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_macros_agree_with_duckdb() {
    let python = match duckdb_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "skipped: the DuckDB comparison needs Python's duckdb module ({why}); \
                 tests/run.sh provides it"
            );
            return;
        }
    };
    let (_d, e) = engine().await;
    let pairs = random_pairs(0x5eed_d47e, 400);
    let values = values_of(&pairs);
    let described: Vec<String> = pairs.iter().map(|(a, b)| format!("({a}, {b})")).collect();
    let mut failures = Vec::new();
    const PARTS: [&str; 10] = [
        "year",
        "quarter",
        "month",
        "week",
        "day",
        "hour",
        "minute",
        "second",
        "millisecond",
        "microsecond",
    ];
    let text = "'%Y-%m-%d %H:%M:%S%.6f'";
    let duck_text = "'%Y-%m-%d %H:%M:%S.%f'";

    // datediff: DuckDB's date_diff counts the same boundaries. Weeks (Sunday
    // to Sunday) from DuckDB by another route: the Mondays after each day's Sunday.
    compare_columns(
        &e,
        &python,
        "datediff",
        &values,
        &PARTS,
        |p| render(&format!(r#"datediff("a", "b", "{p}")"#)),
        |p| match p {
            "week" => "date_diff('day', date_trunc('week', a::date + 1), \
                       date_trunc('week', b::date + 1)) // 7"
                .to_string(),
            _ => format!("date_diff('{p}', a, b)"),
        },
        &described,
        &mut failures,
    )
    .await;

    // date_trunc, every part (DuckDB's is right before 1970 too).
    compare_columns(
        &e,
        &python,
        "date_trunc",
        &values,
        &PARTS,
        |p| {
            format!(
                "to_char({}, {text})",
                render(&format!(r#"date_trunc("{p}", "a")"#))
            )
        },
        |p| format!("strftime(date_trunc('{p}', a), {duck_text})"),
        &described,
        &mut failures,
    )
    .await;

    // last_day of the month: DuckDB's last_day.
    compare_columns(
        &e,
        &python,
        "last_day",
        &values,
        &["month"],
        |_| render(r#"last_day("a", "month")"#),
        |_| "last_day(a)".to_string(),
        &described,
        &mut failures,
    )
    .await;

    // dateadd by -50 to 49 dateparts (timestamps in nanoseconds stay within 1677 to 2262).
    let mut rng = Rng(7);
    let amounts: Vec<i64> = (0..pairs.len()).map(|_| rng.range(-50, 50)).collect();
    let with_n: Vec<String> = pairs
        .iter()
        .zip(&amounts)
        .enumerate()
        .map(|(i, ((a, _), n))| format!("({i}, {a}, {n})"))
        .collect();
    let described: Vec<String> = pairs
        .iter()
        .zip(&amounts)
        .map(|((a, _), n)| format!("({a}, {n})"))
        .collect();
    let with_n = format!("(values {}) t(id, a, n)", with_n.join(", "));
    compare_columns(
        &e,
        &python,
        "dateadd",
        &with_n,
        &[
            "year",
            "quarter",
            "month",
            "week",
            "day",
            "hour",
            "minute",
            "second",
            "millisecond",
        ],
        |p| {
            format!(
                "to_char({}, {text})",
                render(&format!(r#"dateadd("{p}", "n", "a")"#))
            )
        },
        |p| {
            let step = match p {
                "quarter" => "n * 3 * interval 1 month".to_string(),
                "week" => "n * 7 * interval 1 day".to_string(),
                _ => format!("n * interval 1 {p}"),
            };
            format!("strftime(a + {step}, {duck_text})")
        },
        &described,
        &mut failures,
    )
    .await;

    assert!(
        failures.is_empty(),
        "{} differences, the first 20:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
