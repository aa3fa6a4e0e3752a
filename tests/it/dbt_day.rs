//! The rest of a dbt user's day (issue 21): unit tests, hooks, `--vars` on
//! seed, seeds in subfolders with folder config, source freshness, analyses
//! and semantic-layer files. Through the real binary; every expected value
//! is worked out by hand in the comments.

use std::path::Path;
use std::process::{Command, Output};

fn sluice(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SLUICE_WAREHOUSE")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    text(o)
}

fn fails(o: &Output) -> String {
    assert_ne!(o.status.code(), Some(0), "{}", text(o));
    text(o)
}

/// A project from `(path, text)` pairs.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// `sluice sql --format csv` rows (header dropped).
fn csv(p: &Path, sql: &str) -> Vec<String> {
    let out = ok(&sluice(&["sql", "--format", "csv", sql], p));
    out.lines().skip(1).map(str::to_string).collect()
}

const ORDERS: &str =
    "order_id,customer_id,amount,status\n1,1,10,done\n2,1,5,done\n3,2,7,returned\n";

const CUSTOMERS_SQL: &str = "select customer_id, count(*) as orders, sum(amount) as total
from {{ ref('stg_orders') }} o
where status = 'done' and amount >= {{ var('min_amount', 0) }}
group by customer_id
";

const UNIT_YML: &str = r#"
version: 2
unit_tests:
  # customer 1 has two done orders (10 + 5); customer 2's only order is returned.
  - name: counts_done_orders
    model: customers
    given:
      - input: ref('stg_orders')
        rows:
          - {order_id: 1, customer_id: 1, amount: 10, status: done}
          - {order_id: 2, customer_id: 1, amount: 5, status: done}
          - {order_id: 3, customer_id: 2, amount: 7, status: returned}
    expect:
      rows:
        - {customer_id: 1, orders: 2, total: 15}
  # min_amount 6 leaves only the order of 10.
  - name: min_amount_from_vars
    model: customers
    overrides:
      vars: {min_amount: 6}
    given:
      - input: ref('stg_orders')
        rows:
          - {order_id: 1, customer_id: 1, amount: 10, status: done}
          - {order_id: 2, customer_id: 1, amount: 5, status: done}
    expect:
      rows:
        - {customer_id: 1, total: 10}
  # csv in and out: customer 3 has 2 + 3.
  - name: csv_rows
    model: customers
    given:
      - input: ref('stg_orders')
        format: csv
        rows: |
          order_id,customer_id,amount,status
          4,3,2,done
          5,3,3,done
    expect:
      format: csv
      rows: |
        customer_id,total
        3,5
  # is_incremental() with `this` given: only ids above the table's max (2).
  - name: incremental_takes_new_ids
    model: events
    overrides:
      macros: {is_incremental: true}
    given:
      - input: ref('stg_events')
        rows: [{id: 1, v: a}, {id: 2, v: b}, {id: 3, v: c}]
      - input: this
        rows: [{id: 2, v: b}]
    expect:
      rows: [{id: 3, v: c}]
  # Wrong on purpose: the model returns total 4 for customer 9, not 5.
  - name: wrong_total
    model: customers
    config: {tags: [broken]}
    given:
      - input: ref('stg_orders')
        format: sql
        rows: "select 1 as order_id, 9 as customer_id, 4 as amount, 'done' as status"
    expect:
      rows:
        - {customer_id: 9, total: 5}
  # Customer 2's only order is returned: no rows at all.
  - name: no_rows_for_returned_orders
    model: customers
    given:
      - input: ref('stg_orders')
        rows: [{order_id: 3, customer_id: 2, amount: 7, status: returned}]
    expect:
      rows: []
  # Rows from tests/fixtures: customer 4 has 6 + 4.
  - name: from_fixtures
    model: customers
    given:
      - input: ref('stg_orders')
        format: csv
        fixture: done_orders
    expect:
      format: sql
      fixture: expected_4
  - name: switched_off
    model: customers
    config: {enabled: false}
    given: []
    expect: {rows: [{customer_id: 1}]}
"#;

fn unit_project() -> tempfile::TempDir {
    project(&[
        (
            "dbt_project.yml",
            "name: day\nversion: '1.0'\nprofile: day\nmodels:\n  day:\n    +materialized: table\n",
        ),
        ("seeds/raw_orders.csv", ORDERS),
        (
            "models/stg_orders.sql",
            "select order_id, customer_id, amount, status from {{ ref('raw_orders') }}\n",
        ),
        ("models/customers.sql", CUSTOMERS_SQL),
        (
            "models/stg_events.sql",
            "select 1 as id, 'a' as v union all select 2, 'b'\n",
        ),
        (
            "models/events.sql",
            "{{ config(materialized='incremental', unique_key='id') }}\nselect id, v from {{ ref('stg_events') }}\n{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %}\n",
        ),
        ("models/unit.yml", UNIT_YML),
        (
            "tests/fixtures/done_orders.csv",
            "order_id,customer_id,amount,status\n6,4,6,done\n7,4,4,done\n",
        ),
        (
            "tests/fixtures/expected_4.sql",
            "select 4 as customer_id, 2 as orders, 10 as total\n",
        ),
    ])
}

/// Unit tests run with `sluice test`, selected by name or by model; a
/// wrong expectation fails with a diff of the rows; `build` runs them
/// before their model, and a failure skips the model.
#[test]
fn unit_tests_run_before_their_model_and_show_a_diff() {
    let dir = unit_project();
    let p = dir.path();
    // Nothing built yet: given inputs take their types from the rows.
    let out = ok(&sluice(
        &[
            "test",
            "--select",
            "counts_done_orders csv_rows min_amount_from_vars incremental_takes_new_ids no_rows_for_returned_orders from_fixtures",
        ],
        p,
    ));
    for name in [
        "counts_done_orders",
        "csv_rows",
        "min_amount_from_vars",
        "incremental_takes_new_ids",
        "no_rows_for_returned_orders",
        "from_fixtures",
    ] {
        assert!(
            out.lines().any(|l| l.contains("PASS") && l.contains(name)),
            "{name}: {out}"
        );
    }
    assert!(!out.contains("wrong_total"), "{out}");
    assert!(out.contains("PASS=6") && out.contains("TOTAL=6"), "{out}");

    let err = fails(&sluice(&["test", "--select", "wrong_total"], p));
    assert!(err.contains("FAIL") && err.contains("wrong_total"), "{err}");
    assert!(
        err.contains("the output differs from expect: 1 row missing, 1 unexpected"),
        "{err}"
    );
    assert!(err.contains("  - | 9           | 5"), "{err}");
    assert!(err.contains("  + | 9           | 4"), "{err}");
    // By tag (only wrong_total has tag `broken`) and by test type.
    let err = fails(&sluice(&["test", "--select", "tag:broken"], p));
    assert!(
        err.contains("wrong_total") && err.contains("TOTAL=1"),
        "{err}"
    );
    let err = fails(&sluice(&["test", "--select", "test_type:unit"], p));
    assert!(err.contains("PASS=6") && err.contains("TOTAL=7"), "{err}");

    // build: stg_orders is built, the unit tests of customers run against
    // its real types, wrong_total fails and customers is skipped.
    ok(&sluice(&["seed"], p));
    let err = fails(&sluice(&["build"], p));
    assert!(
        err.lines()
            .any(|l| l.contains("OK") && l.contains("main.stg_orders")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("SKIP") && l.contains("main.customers")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("PASS") && l.contains("counts_done_orders")),
        "{err}"
    );
    assert!(
        !err.contains("switched_off"),
        "a disabled unit test is not run: {err}"
    );
    // Fixture files are no singular tests.
    assert!(!err.contains("expected_4"), "{err}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("target/run_results.json")).unwrap())
            .unwrap();
    let status_of = |name: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["unique_id"].as_str().unwrap_or("").ends_with(name))
            .map(|r| r["status"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(status_of("wrong_total").as_deref(), Some("fail"));
    assert_eq!(status_of("csv_rows").as_deref(), Some("pass"));
    assert_eq!(status_of("main.customers").as_deref(), Some("skipped"));

    // Selecting the model runs its unit tests too; without the wrong one
    // (excluded by removing it) the model builds.
    std::fs::write(
        p.join("models/unit.yml"),
        UNIT_YML.replace("total: 5}", "total: 4}"),
    )
    .unwrap();
    let out = ok(&sluice(&["build", "--select", "customers"], p));
    assert!(
        out.lines()
            .any(|l| l.contains("PASS") && l.contains("wrong_total")),
        "{out}"
    );
    assert_eq!(
        csv(p, "SELECT customer_id, orders, total FROM main.customers"),
        vec!["1,2,15"]
    );
}

/// A unit test of an unknown model is an error at its file and line.
#[test]
fn a_unit_test_of_an_unknown_model_names_its_line() {
    let dir = unit_project();
    let p = dir.path();
    std::fs::write(
        p.join("models/unit.yml"),
        "version: 2\nunit_tests:\n  - name: first\n    model: customers\n    given: []\n    expect: {rows: []}\n  - name: typo\n    model: custmers\n    given: []\n    expect: {rows: []}\n",
    )
    .unwrap();
    let err = fails(&sluice(&["test"], p));
    assert!(
        err.contains("models/unit.yml:7: unit test `typo`: model: unknown model `custmers` (did you mean `customers`?)"),
        "{err}"
    );
}

/// A given column the input's table does not have is an error naming it.
#[test]
fn a_given_column_the_table_lacks_is_an_error() {
    let dir = unit_project();
    let p = dir.path();
    ok(&sluice(&["seed"], p));
    ok(&sluice(&["build", "--select", "stg_orders"], p));
    std::fs::write(
        p.join("models/unit.yml"),
        "unit_tests:\n  - name: typo\n    model: customers\n    given:\n      - input: ref('stg_orders')\n        rows: [{custmer_id: 1, amount: 3, status: done}]\n    expect:\n      rows: [{customer_id: 1}]\n",
    )
    .unwrap();
    let err = fails(&sluice(&["test", "--select", "typo"], p));
    assert!(
        err.contains("column `custmer_id` is not a column of it")
            && err.contains("did you mean `customer_id`?"),
        "{err}"
    );
    // An input that is not given reads as empty: the built stg_orders has
    // customer 1's done orders, yet customers returns no rows. An input not
    // given whose table does not exist is an error saying what to add.
    std::fs::write(
        p.join("models/unit.yml"),
        "unit_tests:\n  - name: empty_input\n    model: customers\n    given: []\n    expect: {rows: []}\n  - name: missing_input\n    model: events\n    given: []\n    expect: {rows: []}\n",
    )
    .unwrap();
    let out = ok(&sluice(&["test", "--select", "empty_input"], p));
    assert!(out.contains("PASS=1"), "{out}");
    let err = fails(&sluice(&["test", "--select", "missing_input"], p));
    assert!(
        err.contains(
            "reads main.stg_events, which is not given and does not exist yet: add `- input: ...`"
        ),
        "{err}"
    );
}

/// on-run-start / on-run-end around run and build, pre-/post-hooks around
/// each model with `{{ this }}`, `--vars` in hooks, on seed too; a failing
/// hook fails its model with a message naming it.
#[test]
fn hooks_run_around_runs_and_models() {
    let dir = project(&[
        (
            "dbt_project.yml",
            r#"name: day
version: '1.0'
profile: day
on-run-start:
  - "create table if not exists main.audit (event varchar, at varchar)"
  - "insert into main.audit values ('start', '{{ var('tag', 'none') }}')"
  - ""
on-run-end: "insert into main.audit values ('end', '{{ var('tag', 'none') }}')"
models:
  day:
    +materialized: table
    +pre-hook: "insert into main.audit values ('pre', '{{ this }}')"
"#,
        ),
        ("seeds/raw_orders.csv", ORDERS),
        (
            "models/orders.sql",
            "{{ config(post_hook=[\"insert into main.audit values ('post', '{{ this }}')\"]) }}\nselect * from {{ ref('raw_orders') }}\n",
        ),
    ]);
    let p = dir.path();
    ok(&sluice(&["seed", "--vars", "{tag: seeded}"], p));
    // seed: start and end, with the var.
    let mut rows = csv(p, "SELECT event, at FROM main.audit ORDER BY event");
    assert_eq!(rows, vec!["end,seeded", "start,seeded"]);
    ok(&sluice(&["build", "--vars", "{tag: built}"], p));
    rows = csv(p, "SELECT event, at FROM main.audit ORDER BY event, at");
    assert_eq!(
        rows,
        vec![
            "end,built",
            "end,seeded",
            "post,main.orders",
            "pre,main.orders",
            "start,built",
            "start,seeded"
        ]
    );
    // A failing post-hook fails the model, naming the hook and its origin.
    std::fs::write(
        p.join("models/broken.sql"),
        "{{ config(post_hook=\"insert into main.nowhere values (1)\") }}\nselect 1 as x\n",
    )
    .unwrap();
    let err = fails(&sluice(&["run", "models", "--select", "broken"], p));
    assert!(
        err.contains("post-hook 1 of 1 (from config() in models/broken.sql) failed"),
        "{err}"
    );
    assert!(err.contains("insert into main.nowhere values (1)"), "{err}");
    // ... also one set in a properties file, which names that file.
    std::fs::write(p.join("models/broken.sql"), "select 1 as x\n").unwrap();
    std::fs::write(
        p.join("models/props.yml"),
        "models:\n  - name: broken\n    config:\n      pre-hook: \"delete from main.nowhere\"\n",
    )
    .unwrap();
    let err = fails(&sluice(&["run", "models", "--select", "broken"], p));
    assert!(
        err.contains("pre-hook 2 of 2 (from config: in models/props.yml) failed"),
        "{err}"
    );
    // A failing on-run-start stops the run before any model.
    std::fs::write(
        p.join("dbt_project.yml"),
        "name: day\nprofile: day\non-run-start: \"select * from main.no_such_table\"\n",
    )
    .unwrap();
    let err = fails(&sluice(&["run", "models", "--select", "orders"], p));
    assert!(err.contains("on-run-start[0] failed"), "{err}");
    assert!(!err.contains("main.orders ."), "{err}");
}

/// Seeds in subfolders get their folder's config from dbt_project.yml
/// (schema, enabled, delimiter) and per-seed config from a properties file.
#[test]
fn seeds_in_subfolders_take_folder_config() {
    let dir = project(&[
        (
            "dbt_project.yml",
            "name: day\nprofile: day\nseeds:\n  day:\n    +schema: raw\n    +quote_columns: true\n    jaffle_data:\n      +enabled: true\n      +delimiter: ';'\n    old:\n      +enabled: false\n",
        ),
        (
            "seeds/jaffle_data/raw_items.csv",
            "item_id;price\n1;2.5\n2;4\n",
        ),
        ("seeds/old/raw_old.csv", "a\n1\n"),
        ("seeds/top.csv", "a,b\n1,x\n"),
        (
            "seeds/properties.yml",
            "version: 2\nseeds:\n  - name: raw_items\n    config:\n      column_types: {item_id: varchar}\n",
        ),
    ]);
    let p = dir.path();
    let out = ok(&sluice(&["seed"], p));
    assert!(
        out.contains("main_raw.raw_items") && out.contains("main_raw.top"),
        "{out}"
    );
    assert!(!out.contains("raw_old"), "{out}");
    // `;`-separated; item_id is text by config, price a float (2.5 + 4 = 6.5).
    let rows = csv(
        p,
        "SELECT arrow_typeof(item_id) AS t, sum(price) AS s FROM main_raw.raw_items GROUP BY 1",
    );
    assert!(
        rows.len() == 1 && rows[0].starts_with("Utf8") && rows[0].ends_with(",6.5"),
        "{rows:?}"
    );
    let err = fails(&sluice(&["sql", "SELECT * FROM main_raw.raw_old"], p));
    assert!(err.contains("raw_old"), "{err}");
}

/// jaffle-shop's `+enabled: "{{ var('load_source_data', false) }}"` on its
/// seed folder: rendered with `--vars` as dbt renders it. Without the var the
/// seeds are disabled (`seed` has nothing to do, as `dbt seed`); with it
/// `seed` and `build` (which seeds what its models read) load them. Jinja in
/// a properties file's seed config is rendered too.
#[test]
fn seed_config_renders_jinja_with_vars() {
    let dir = project(&[
        (
            "dbt_project.yml",
            "name: day\nprofile: day\nseeds:\n  day:\n    +schema: raw\n    jaffle_data:\n      +enabled: \"{{ var('load_source_data', false) }}\"\n",
        ),
        ("seeds/jaffle_data/raw_items.csv", "item_id,price\n1,2.5\n2,4\n"),
        (
            "seeds/properties.yml",
            "version: 2\nseeds:\n  - name: raw_items\n    config:\n      column_types: {item_id: \"{{ 'var' ~ 'char' }}\"}\n",
        ),
        (
            "models/total.sql",
            "select sum(price) as s, max(item_id) as i from {{ ref('raw_items') }}",
        ),
    ]);
    let p = dir.path();
    let out = ok(&sluice(&["seed"], p));
    assert!(out.contains("nothing to seed"), "{out}");
    let err = fails(&sluice(&["sql", "SELECT * FROM main_raw.raw_items"], p));
    assert!(err.contains("raw_items"), "{err}");
    // build loads the seed its model reads: 2.5 + 4 = 6.5; item_id is text,
    // so its max is the string '2'.
    ok(&sluice(&["build", "--vars", "{load_source_data: true}"], p));
    let rows = csv(p, "SELECT s, i, arrow_typeof(i) FROM main.total");
    assert!(
        rows.len() == 1 && rows[0].starts_with("6.5,2,Utf8"),
        "{rows:?}"
    );
    let out = ok(&sluice(&["seed", "--vars", "{load_source_data: true}"], p));
    assert!(out.contains("main_raw.raw_items"), "{out}");
}

/// `source freshness` compares max(loaded_at_field) with the policies:
/// 5 minutes old passes, 3 hours old warns (warn_after 1 hour), 3 days old
/// errors (error_after 1 day) and fails the command.
#[test]
fn source_freshness_reports_pass_warn_and_error() {
    let now = chrono::Utc::now();
    let ts = |minutes: i64| {
        (now - chrono::Duration::minutes(minutes))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let seed = |minutes: i64| format!("id,loaded_at\n1,{}\n2,2020-01-01 00:00:00\n", ts(minutes));
    let dir = project(&[
        (
            "dbt_project.yml",
            "name: day\nprofile: day\nseeds:\n  day:\n    +schema: raw\n    +column_types: {loaded_at: timestamp}\n",
        ),
        ("seeds/fresh_orders.csv", &seed(5)),
        ("seeds/late_orders.csv", &seed(180)),
        ("seeds/stale_orders.csv", &seed(3 * 24 * 60)),
        (
            "models/sources.yml",
            r#"
version: 2
sources:
  - name: shop
    schema: main_raw
    loaded_at_field: loaded_at
    freshness:
      warn_after: {count: 1, period: hour}
      error_after: {count: 1, period: day}
    tables:
      - name: fresh_orders
      - name: late_orders
      - name: stale_orders
      - name: no_policy
        freshness: null
"#,
        ),
    ]);
    let p = dir.path();
    ok(&sluice(&["seed"], p));
    let err = fails(&sluice(&["source", "freshness"], p));
    let line = |t: &str| {
        err.lines()
            .find(|l| l.contains(&format!("shop.{t}")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("fresh_orders").contains("PASS"), "{err}");
    assert!(line("late_orders").contains("WARN"), "{err}");
    assert!(line("stale_orders").contains("ERROR STALE"), "{err}");
    assert!(!err.contains("no_policy"), "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("target/sources.json")).unwrap())
            .unwrap();
    let statuses: Vec<(String, String)> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["unique_id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("source.day.shop.fresh_orders".into(), "pass".into()),
            ("source.day.shop.late_orders".into(), "warn".into()),
            ("source.day.shop.stale_orders".into(), "error".into()),
        ]
    );
    // Selected: only the fresh table, so the command succeeds.
    let out = ok(&sluice(
        &[
            "source",
            "freshness",
            "--select",
            "source:shop.fresh_orders",
        ],
        p,
    ));
    assert!(out.contains("PASS=1") && out.contains("TOTAL=1"), "{out}");
    let err = fails(&sluice(
        &["source", "freshness", "--select", "source:shop.fresh_order"],
        p,
    ));
    assert!(err.contains("did you mean `shop.fresh_orders`?"), "{err}");
}

/// Analyses compile to target/compiled/ and never run; exposures and
/// semantic-layer files parse and change nothing.
#[test]
fn analyses_compile_and_semantic_files_are_accepted() {
    let dir = project(&[
        ("dbt_project.yml", "name: day\nprofile: day\n"),
        ("seeds/raw_orders.csv", ORDERS),
        (
            "models/orders.sql",
            "select * from {{ ref('raw_orders') }}\n",
        ),
        (
            "models/metricflow_time_spine.sql",
            "select cast('2026-01-01' as date) as date_day\n",
        ),
        (
            "analyses/big_orders.sql",
            "select * from {{ ref('orders') }} where amount > {{ var('min', 6) }}\n",
        ),
        (
            "models/semantic.yml",
            r#"
version: 2
exposures:
  - name: weekly_report
    type: dashboard
    owner: {name: Ann, email: ann@example.com}
    depends_on: [ref('orders')]
semantic_models:
  - name: orders
    model: ref('orders')
    entities: [{name: order, type: primary, expr: order_id}]
    measures: [{name: amount, agg: sum}]
    dimensions: [{name: status, type: categorical}]
metrics:
  - name: revenue
    label: Revenue
    type: simple
    type_params: {measure: amount}
saved_queries:
  - name: revenue_by_status
    query_params: {metrics: [revenue], group_by: ["Dimension('order__status')"]}
"#,
        ),
    ]);
    let p = dir.path();
    let out = ok(&sluice(&["compile", "--vars", "{min: 8}"], p));
    assert!(out.contains("analyses/big_orders.sql"), "{out}");
    let compiled =
        std::fs::read_to_string(p.join("target/compiled/day/analyses/big_orders.sql")).unwrap();
    assert_eq!(
        compiled.trim(),
        "select * from main.orders where amount > 8"
    );
    ok(&sluice(&["seed"], p));
    let out = ok(&sluice(&["build"], p));
    assert!(out.contains("main.metricflow_time_spine"), "{out}");
    assert!(!out.contains("big_orders"), "{out}");
    let err = fails(&sluice(&["sql", "SELECT * FROM main.big_orders"], p));
    assert!(err.contains("big_orders"), "{err}");
}
