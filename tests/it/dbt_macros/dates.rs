//! datediff, dateadd, date_trunc, last_day, date, date_spine, generate_series.

use super::*;

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
