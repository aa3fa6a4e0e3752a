//! Casts, types, text, aggregates, arrays, set operators, equals, timestamps, naming.

use super::*;

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
