//! A dbt project with an installed package: namespaced macros, dispatch with
//! `sluice__`/`default__`, `return()` values, sibling calls, package-scoped
//! vars, `run_query` / `statement` at compile time, a schema-name override and
//! a package generic test.

use crate::common::{engine, open};
use sluice::models::{self, CompileOptions, Selection, Steps};
use sluice::project::Project;
use std::collections::BTreeMap;
use std::sync::Arc;

fn write(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const PACKAGE: &[(&str, &str)] = &[
    ("dbt_packages/util/dbt_project.yml", "name: util\nvars:\n  util_factor: 2\n"),
    (
        "dbt_packages/util/macros/m.sql",
        "{% macro times(col) %}{{ return(adapter.dispatch('times', 'util')(col)) }}{% endmacro %}\n\
{% macro default__times(col) %}{{ col }} * 100{% endmacro %}\n\
{% macro sluice__times(col) %}({{ col }} * {{ var('util_factor', 2) }})::bigint{% endmacro %}\n\
{% macro cols() %}{% set xs = [] %}{% do xs.append('a') %}{% do xs.append('b') %}{{ return(xs) }}{% endmacro %}\n\
{% macro helper_sum(a, b) %}{{ return(a + b) }}{% endmacro %}\n\
{% macro uses_sibling() %}{{ util.helper_sum(1, 2) }}{% endmacro %}\n\
{% macro count_rows(rel) %}{% if execute %}{% set r = run_query('select count(*) as n from ' ~ rel) %}{{ return(r.columns[0].values()[0]) }}{% else %}{{ return(0) }}{% endif %}{% endmacro %}\n",
    ),
    (
        "dbt_packages/util/macros/tests.sql",
        "{% test at_most(model, column_name, max_value) %}select * from {{ model }} where {{ column_name }} > {{ max_value }}{% endtest %}\n",
    ),
];

const ROOT: &[(&str, &str)] = &[
    (
        "dbt_project.yml",
        "name: shop\nprofile: shop\nvars:\n  greeting: hello\nmodels:\n  shop:\n    +materialized: table\n    marts:\n      +schema: marts\n    extra:\n      +enabled: \"{{ var('with_extra', false) }}\"\n",
    ),
    ("packages.yml", "packages:\n  - local: ../util\n"),
    (
        "macros/cents.sql",
        "{% macro cents_to_dollars(c) -%}{{ return(adapter.dispatch('cents_to_dollars')(c)) }}{%- endmacro %}\n\
{% macro default__cents_to_dollars(c) -%}({{ c }}::numeric(16, 2) / 100){%- endmacro %}\n",
    ),
    ("models/base.sql", "select 1 as id, 250 as cents union all select 2, 75"),
    ("models/extra/x.sql", "select 1 as x"),
    (
        "models/marts/m.sql",
        "select id, {{ cents_to_dollars('cents') }} as dollars, {{ util.times('id') }} as t,\n  '{{ util.cols() | join('|') }}' as c, {{ util.uses_sibling() }} as s,\n  '{{ var(\"greeting\") }}' as g, {{ util.count_rows('(select 1 as x union all select 2) as t') }} as n\nfrom {{ ref('base') }}",
    ),
    (
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: m\n    columns:\n      - name: t\n        data_tests:\n          - util.at_most:\n              max_value: 4\n      - name: n\n        data_tests:\n          - util.at_most:\n              arguments:\n                max_value: 1\n",
    ),
];

async fn build(dir: &std::path::Path) -> models::RunReport {
    let project = Project::load(dir).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let compiled = Arc::new(
        models::compile(&project, &e, &CompileOptions::default())
            .await
            .unwrap(),
    );
    models::execute(
        &project,
        &e,
        compiled,
        &Selection::default(),
        Steps::Build,
        2,
        &BTreeMap::new(),
        "build",
        &models::run::Quiet,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_macros_dispatch_and_generic_tests() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), PACKAGE);
    write(dir.path(), ROOT);
    let report = build(dir.path()).await;
    // at_most(t, 4) passes; at_most(n, 1) fails: n is 2 on both rows.
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.status.is_failure())
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", report.results);
    assert!(
        failed[0].contains("at_most") && failed[0].contains("_n"),
        "{failed:?}"
    );

    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    // dbt's default schema naming: <target schema>_<custom schema>.
    let rows = crate::common::rows(
        &e,
        "SELECT id, dollars, t, c, s, g, n FROM main_marts.m ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "1|2.500000|2|a|b|3|hello|2".to_string(),
            "2|0.750000|4|a|b|3|hello|2".to_string()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_name_override_and_missing_package() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), PACKAGE);
    write(dir.path(), ROOT);
    write(
        dir.path(),
        &[(
            "macros/gsn.sql",
            "{% macro generate_schema_name(custom_schema_name, node) -%}\n{%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}dw_{{ custom_schema_name | trim }}{%- endif -%}\n{%- endmacro %}\n",
        )],
    );
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let compiled = models::compile(&project, &e, &CompileOptions::default())
        .await
        .unwrap();
    let ids: Vec<String> = compiled.models.iter().map(|m| m.id()).collect();
    assert!(ids.contains(&"dw_marts.m".to_string()), "{ids:?}");
    // `+enabled: "{{ var('with_extra', false) }}"` in dbt_project.yml.
    assert!(!ids.iter().any(|i| i.ends_with(".x")), "{ids:?}");
    let opts = CompileOptions {
        vars: [("with_extra".to_string(), serde_json::json!(true))]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let with = models::compile(&project, &e, &opts).await.unwrap();
    assert!(with.models.iter().any(|m| m.id() == "main.x"));

    // A package packages.yml asks for that is not installed.
    std::fs::remove_dir_all(dir.path().join("dbt_packages")).unwrap();
    let project = Project::load(dir.path()).unwrap();
    let err = models::compile(&project, &e, &CompileOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sluice deps") && err.contains("packages.yml"),
        "{err}"
    );
}

async fn build_selected(dir: &std::path::Path, select: &[&str]) -> models::RunReport {
    let project = Project::load(dir).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let compiled = Arc::new(
        models::compile(&project, &e, &CompileOptions::default())
            .await
            .unwrap(),
    );
    let selection = Selection {
        select: select.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    models::execute(
        &project,
        &e,
        compiled,
        &selection,
        Steps::Models,
        2,
        &BTreeMap::new(),
        "run",
        &models::run::Quiet,
    )
    .await
    .unwrap()
}

const COLUMNS_MACRO: (&str, &str) = (
    "macros/cols.sql",
    "{% macro col_list(rel) %}{% if not execute %}{{ return('*') }}{% endif %}{% set xs = [] %}{% for c in adapter.get_columns_in_relation(rel) %}{% do xs.append(c.name) %}{% endfor %}{{ return(xs | join(', ')) }}{% endmacro %}\n",
);

/// A template that asks the warehouse about a model built in the same run
/// renders when the model runs (as dbt compiles each node as it runs): on a
/// fresh warehouse, and again after the upstream model gained a column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_renders_when_the_model_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), PACKAGE);
    write(dir.path(), ROOT);
    write(
        dir.path(),
        &[
            COLUMNS_MACRO,
            (
                "models/marts/counted.sql",
                "select {{ util.count_rows(ref('base')) }} as n, {{ col_list(ref('base')) }} from {{ ref('base') }}",
            ),
        ],
    );
    let report = build_selected(dir.path(), &[]).await;
    assert!(report.success(), "{:?}", report.results);
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let rows = crate::common::rows(&e, "SELECT * FROM main_marts.counted ORDER BY id").await;
    assert_eq!(rows, vec!["2|1|250", "2|2|75"]);

    // The upstream gains a row and a column; the table exists when the
    // project compiles, with the old columns: the run renders against the new.
    write(
        dir.path(),
        &[(
            "models/base.sql",
            "select 1 as id, 250 as cents, 'a' as tag union all select 2, 75, 'b' union all select 3, 5, 'c'",
        )],
    );
    let report = build_selected(dir.path(), &[]).await;
    assert!(report.success(), "{:?}", report.results);
    let rows = crate::common::rows(&e, "SELECT * FROM main_marts.counted ORDER BY id").await;
    assert_eq!(rows, vec!["3|1|250|a", "3|2|75|b", "3|3|5|c"]);
}

/// A model whose template reads a model only when it renders at run time,
/// behind `execute`, fails with dbt's advice instead of reading a table the
/// run may not have built yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_found_only_at_run_time_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), PACKAGE);
    write(dir.path(), ROOT);
    let late = "{% set r = run_query('select count(*) as n from main.base') %}{% if execute and r.columns[0].values()[0] > 2 %}select * from {{ ref('m') }}{% else %}select 1 as x{% endif %}";
    write(dir.path(), &[("models/late.sql", late)]);
    // base (2 rows) and m exist before the project compiles.
    assert!(build_selected(dir.path(), &["base", "m"]).await.success());

    // Compiled while base has 2 rows; base then gets 3 before `late` runs.
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let compiled = Arc::new(
        models::compile(&project, &e, &CompileOptions::default())
            .await
            .unwrap(),
    );
    let i = compiled.find("late").unwrap();
    assert!(compiled.models[i].jit);
    assert!(compiled.models[i].deps.is_empty());
    write(
        dir.path(),
        &[(
            "models/base.sql",
            "select 1 as id, 250 as cents union all select 2, 75 union all select 3, 5",
        )],
    );
    assert!(build_selected(dir.path(), &["base"]).await.success());
    let report = models::execute(
        &project,
        &e,
        compiled,
        &Selection {
            select: vec!["late".into()],
            ..Default::default()
        },
        Steps::Models,
        1,
        &BTreeMap::new(),
        "run",
        &models::run::Quiet,
    )
    .await
    .unwrap();
    let r = &report.results[0];
    let message = r.message.clone().unwrap_or_default();
    assert!(r.status.is_failure(), "{:?}", report.results);
    assert!(
        message.contains("depends_on") && message.contains("ref('m')"),
        "{message}"
    );
}

/// An installed package's models and seeds are built with the project, as in
/// dbt: the package's own config and vars, the root project's config for the
/// package winning, `ref('package', 'model')`, and the package's seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_models_and_seeds_are_built() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "dbt_packages/rates/dbt_project.yml",
                "name: rates\nvars:\n  markup: 1\n  rates_only: 7\nmodels:\n  rates:\n    +materialized: table\n    +schema: own\n",
            ),
            (
                "dbt_packages/rates/models/fx.sql",
                "select currency, rate * {{ var('markup') }} as rate, {{ var('rates_only') }} as k from {{ ref('currencies') }}",
            ),
            ("dbt_packages/rates/seeds/currencies.csv", "currency,rate\nUSD,1\nEUR,2\n"),
            (
                "dbt_project.yml",
                "name: shop\nvars:\n  rates:\n    markup: 10\nmodels:\n  shop:\n    +materialized: table\n  rates:\n    +schema: util\n",
            ),
            ("packages.yml", "packages:\n  - local: ../rates\n"),
            (
                "models/priced.sql",
                "select currency, rate from {{ ref('rates', 'fx') }}",
            ),
        ],
    );
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let seeds = models::compile::named_seeds(&project, &BTreeMap::new()).unwrap();
    let names: Vec<&str> = seeds.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["currencies"]);
    sluice::load::seeds::seed_with(&project, &wh, seeds, &[], false, &sluice::load::NoProgress)
        .await
        .unwrap();
    let report = build(dir.path()).await;
    assert!(report.success(), "{:?}", report.results);
    let e = engine(&project, &wh).await;
    // The root's `+schema: util` wins over the package's `own`; the root's
    // `rates: {markup: 10}` over the package's `markup: 1`; the package's
    // own var `rates_only` is seen by its model.
    let rows = crate::common::rows(&e, "SELECT * FROM main_util.fx ORDER BY currency").await;
    assert_eq!(rows, vec!["EUR|20|7", "USD|10|7"]);
    let rows = crate::common::rows(&e, "SELECT * FROM main.priced ORDER BY currency").await;
    assert_eq!(rows, vec!["EUR|20", "USD|10"]);
}

/// Tests declared on a `sources:` table run with the build, under dbt's names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_tests_run_with_dbt_names() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("dbt_project.yml", "name: shop\nseeds:\n  shop:\n    +schema: raw\n"),
            ("seeds/people.csv", "id,name\n1,a\n2,\n2,c\n"),
            (
                "models/schema.yml",
                "version: 2\nsources:\n  - name: land\n    schema: main_raw\n    tables:\n      - name: people\n        columns:\n          - name: id\n            data_tests: [unique, not_null]\n          - name: name\n            data_tests:\n              - not_null:\n                  name: names_are_set\n",
            ),
            ("models/m.sql", "select * from {{ source('land', 'people') }}"),
        ],
    );
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let seeds = models::compile::named_seeds(&project, &BTreeMap::new()).unwrap();
    sluice::load::seeds::seed_with(&project, &wh, seeds, &[], false, &sluice::load::NoProgress)
        .await
        .unwrap();
    let report = build(dir.path()).await;
    let mut status: Vec<(String, &str)> = report
        .results
        .iter()
        .filter(|r| r.kind == "test")
        .map(|r| (r.id.clone(), r.status.as_str()))
        .collect();
    status.sort();
    assert_eq!(
        status,
        vec![
            ("names_are_set".to_string(), "fail"),
            ("source_not_null_land_people_id".to_string(), "pass"),
            ("source_unique_land_people_id".to_string(), "fail"),
        ]
    );
}

/// `--target` (here `Project::target`) is `target.name` in models and in the
/// naming macros, for models and seeds alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_name_reaches_models_and_naming() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("dbt_project.yml", "name: shop\nseeds:\n  shop:\n    +schema: raw\n"),
            ("seeds/people.csv", "id\n1\n"),
            (
                "macros/gsn.sql",
                "{% macro generate_schema_name(custom_schema_name, node) -%}{%- if target.name == 'prod' and custom_schema_name is not none -%}{{ custom_schema_name | trim }}{%- else -%}{{ target.schema }}{%- endif -%}{%- endmacro %}\n",
            ),
            (
                "models/m.sql",
                "select '{{ target.name }}' as t, id from {{ ref('people') }}",
            ),
        ],
    );
    let mut project = Project::load(dir.path()).unwrap();
    let dev = models::compile::named_seeds(&project, &BTreeMap::new()).unwrap();
    assert_eq!(dev[0].schema, "main");
    project.target = "prod".into();
    let prod = models::compile::named_seeds(&project, &BTreeMap::new()).unwrap();
    assert_eq!(prod[0].schema, "raw");
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let compiled = models::compile(&project, &e, &CompileOptions::default())
        .await
        .unwrap();
    let m = &compiled.models[compiled.find("m").unwrap()];
    assert!(m.sql.contains("'prod' as t"), "{}", m.sql);
    assert!(m.sql.contains("raw.people"), "{}", m.sql);
}

/// dbt 1.9+: a snapshot's `schema` is named as models' are (the default
/// `<target schema>_<schema>` here); the legacy `target_schema` as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_schema_is_named_as_dbt_names_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("dbt_project.yml", "name: shop\n"),
            ("models/src.sql", "select 1 as id, 'a' as v"),
            (
                "snapshots/new_style.sql",
                "{% snapshot new_style %}{{ config(schema='hist', unique_key='id', strategy='check', check_cols=['v']) }}select * from {{ ref('src') }}{% endsnapshot %}",
            ),
            (
                "snapshots/legacy.sql",
                "{% snapshot legacy %}{{ config(target_schema='hist', unique_key='id', strategy='check', check_cols=['v']) }}select * from {{ ref('src') }}{% endsnapshot %}",
            ),
        ],
    );
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let compiled = models::compile(&project, &e, &CompileOptions::default())
        .await
        .unwrap();
    let mut ids: Vec<String> = compiled.snapshots.iter().map(|s| s.id()).collect();
    ids.sort();
    assert_eq!(ids, ["hist.legacy", "main_hist.new_style"]);
}

/// What published packages need (found trying dbt_utils, dbt_expectations
/// and audit_helper): `fail_calc`, test arguments with capitals,
/// `load_relation`, DuckDB's `regexp_matches`, undefined values printing as
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_published_packages_need() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("dbt_project.yml", "name: shop\nmodels:\n  shop:\n    +materialized: table\n"),
            (
                "macros/tests.sql",
                "{% test zero_diff(model) %}{{ config(fail_calc='sum(n)') }}select 0 as n from {{ model }}{% endtest %}\n\
{% test pair_gt(model, column_A, column_B) %}select * from {{ model }} where not ({{ column_A }} > {{ column_B }}){% endtest %}\n\
{% test grouped(model, column_name, group_by_columns=[]) %}{% if group_by_columns %}{% set gb = ', ' ~ group_by_columns | join(', ') %}{% endif %}select {{ column_name }}{{ gb }} from {{ model }} where {{ column_name }} is null{% endtest %}\n",
            ),
            ("models/base.sql", "select 1 as id, 2 as a, 1 as b, 'ab@x' as email"),
            (
                "models/probe.sql",
                "{% set r = load_relation(ref('base')) %}select {{ 0 if r is none else 1 }} as found, regexp_matches(email, '^[a-z]+@') as ok from {{ ref('base') }}",
            ),
            (
                "models/schema.yml",
                "version: 2\nmodels:\n  - name: base\n    data_tests:\n      - zero_diff\n      - pair_gt:\n          column_A: a\n          column_B: b\n      - pair_gt:\n          name: pair_fails\n          column_A: b\n          column_B: a\n          config:\n            severity: warn\n    columns:\n      - name: id\n        data_tests:\n          - grouped\n          - not_null:\n              config:\n                fail_calc: \"count(*) + 1\"\n                severity: warn\n",
            ),
        ],
    );
    let report = build(dir.path()).await;
    let mut status: Vec<(String, &str)> = report
        .results
        .iter()
        .map(|r| (r.id.clone(), r.status.as_str()))
        .collect();
    status.sort();
    assert_eq!(
        status,
        vec![
            ("grouped_base_id".to_string(), "pass"),
            ("main.base".to_string(), "success"),
            ("main.probe".to_string(), "success"),
            // count(*) + 1 over no failing row: 1 failure.
            ("not_null_base_id".to_string(), "warn"),
            ("pair_fails".to_string(), "warn"),
            ("pair_gt_base_a__b".to_string(), "pass"),
            // sum(n) over one row with n = 0: no failure (count(*) would be 1).
            ("zero_diff_base_".to_string(), "pass"),
        ],
        "{:?}",
        report.results
    );
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let rows = crate::common::rows(&e, "SELECT * FROM main.probe").await;
    assert_eq!(rows, vec!["1|true"]);
}

/// dbt's `graph`: macros that list the project's nodes and sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_lists_nodes_and_sources() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("dbt_project.yml", "name: shop\nmodels:\n  shop:\n    +materialized: table\n    marts:\n      +tags: ['daily']\n"),
            ("seeds/people.csv", "id\n1\n"),
            (
                "models/schema.yml",
                "version: 2\nsources:\n  - name: land\n    schema: raw\n    tables:\n      - name: events\n",
            ),
            ("models/a.sql", "select 1 as x"),
            ("models/marts/b.sql", "select * from {{ ref('a') }}"),
            (
                "models/listing.sql",
                "{% set models = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model') | map(attribute='name') | sort %}\
{% set daily = [] %}{% for n in graph.nodes.values() if 'daily' in n.tags %}{% do daily.append(n.relation_name) %}{% endfor %}\
{% set src = graph.sources.values() | map(attribute='relation_name') | list %}\
select '{{ models | join(\",\") }}' as models, '{{ daily | join(\",\") }}' as daily, '{{ src | join(\",\") }}' as sources, {{ graph.nodes['seed.shop.people'] is defined }} as has_seed",
            ),
        ],
    );
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let compiled = models::compile(&project, &e, &CompileOptions::default())
        .await
        .unwrap();
    let m = &compiled.models[compiled.find("listing").unwrap()];
    assert!(
        m.sql.contains(
            "'a,b,listing' as models, 'main.b' as daily, 'raw.events' as sources, True as has_seed"
        ),
        "{}",
        m.sql
    );
}
