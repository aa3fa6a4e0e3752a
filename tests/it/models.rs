//! `sluice run models` and friends: the example's feature models checked against
//! values computed independently from the raw CSV files, dependency inference,
//! error messages, failure isolation, incremental models, dbt projects.

use crate::common::*;
use sluice::models::{self, CompileOptions, RunReport, Selection, Status, Steps};
use sluice::project::Project;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The example project with its models and data tests.
fn example_with_models() -> tempfile::TempDir {
    let dir = example_project();
    copy_dir(&repo_root().join("sql"), &dir.path().join("sql"));
    copy_dir(
        &repo_root().join("tests/data"),
        &dir.path().join("tests/data"),
    );
    dir
}

/// A sluice project made of `files` (path → text), warehouse in the folder.
pub(crate) fn project_of(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[project]\nname = \"t\"\nmodels = \"models\"\n\n[warehouse]\nuri = \"warehouse\"\ndefault_schema = \"main\"\n",
    )
    .unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

async fn compile_at(p: &Path, full_refresh: bool) -> sluice::Result<models::Compiled> {
    let project = Project::load(p)?;
    let wh = open(&project, None);
    let opts = CompileOptions {
        full_refresh,
        ..Default::default()
    };
    let engine = sluice::app::engine(&project, wh).await?;
    models::compile(&project, &engine, &opts).await
}

pub(crate) async fn execute(
    p: &Path,
    steps: Steps,
    select: &[&str],
    full_refresh: bool,
) -> RunReport {
    let project = Project::load(p).unwrap();
    let wh = open(&project, None);
    let opts = CompileOptions {
        full_refresh,
        ..Default::default()
    };
    let engine = engine(&project, &wh).await;
    let compiled = Arc::new(models::compile(&project, &engine, &opts).await.unwrap());
    let selection = Selection {
        select: select.iter().map(|s| s.to_string()).collect(),
        exclude: Vec::new(),
    };
    models::execute(
        &project,
        &engine,
        compiled,
        &selection,
        steps,
        2,
        &BTreeMap::new(),
        "test",
        &models::run::Quiet,
    )
    .await
    .unwrap()
}

async fn load_all(p: &Path) {
    let project = Project::load(p).unwrap();
    let wh = open(&project, None);
    sluice::load::load(
        &project,
        &wh,
        &[],
        &Default::default(),
        &sluice::load::NoProgress,
    )
    .await
    .unwrap();
}

fn status_of(r: &RunReport, id: &str) -> Status {
    r.results
        .iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("{id} not in {:?}", ids(r)))
        .status
}

fn ids(r: &RunReport) -> Vec<String> {
    r.results.iter().map(|x| x.id.clone()).collect()
}

/// Per-user (count, sum, mean, sample stddev, max ts) straight from the CSVs.
fn expected_user_stats(p: &Path, as_of: &str) -> BTreeMap<i64, (u64, f64, f64, f64, String)> {
    let mut per_user: BTreeMap<i64, (Vec<f64>, String)> = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(p.join("catalog/data/transactions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            if cols[1].is_empty() || cols[1] == "NULL" || cols[5] >= as_of {
                continue;
            }
            let user: i64 = cols[1].parse().unwrap();
            let amount: f64 = cols[3].parse().unwrap();
            let e = per_user.entry(user).or_default();
            e.0.push(amount);
            if cols[5] > e.1.as_str() {
                e.1 = cols[5].to_string();
            }
        }
    }
    per_user
        .into_iter()
        .map(|(u, (v, max_ts))| {
            let n = v.len() as f64;
            let sum: f64 = v.iter().sum();
            let mean = sum / n;
            let sd = if v.len() > 1 {
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                f64::NAN
            };
            (u, (v.len() as u64, sum, mean, sd, max_ts))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_features_match_independent_computation() {
    let dir = example_with_models();
    let p = dir.path();
    load_all(p).await;
    let report = execute(p, Steps::Build, &[], false).await;
    assert!(
        report.success(),
        "{:#?}",
        report
            .results
            .iter()
            .filter(|r| r.status.is_failure())
            .collect::<Vec<_>>()
    );
    // 8 models and every test ran.
    assert_eq!(
        report.results.iter().filter(|r| r.kind == "model").count(),
        8
    );
    assert!(report.results.iter().filter(|r| r.kind == "test").count() >= 19);

    let project = Project::load(p).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let expected = expected_user_stats(p, "2026-01-06T00:00:00Z");
    let got = rows(
        &e,
        "SELECT user_id, txn_count, total_amount, avg_amount, stddev_amount, last_txn_ts, days_since_last_txn, txn_count_30d, amount_30d FROM features.user_features ORDER BY user_id",
    )
    .await;
    assert_eq!(got.len(), expected.len());
    let as_of = chrono::DateTime::parse_from_rfc3339("2026-01-06T00:00:00Z").unwrap();
    for (row, (user, (n, sum, mean, sd, max_ts))) in got.iter().zip(&expected) {
        let c: Vec<&str> = row.split('|').collect();
        assert_eq!(c[0].parse::<i64>().unwrap(), *user);
        assert_eq!(c[1].parse::<u64>().unwrap(), *n, "count of user {user}");
        let close = |a: &str, b: f64| {
            let a: f64 = a.parse().unwrap();
            assert!((a - b).abs() < 1e-6, "user {user}: {a} vs {b}");
        };
        close(c[2], *sum);
        close(c[3], *mean);
        if sd.is_nan() {
            assert_eq!(c[4], "", "stddev of one value is NULL");
        } else {
            close(c[4], *sd);
        }
        let last = chrono::DateTime::parse_from_rfc3339(max_ts).unwrap();
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(c[5]).unwrap(),
            last,
            "last_txn_ts of user {user}"
        );
        close(c[6], (as_of - last).num_seconds() as f64 / 86400.0);
        // All the example's data is within 30 days of as_of.
        assert_eq!(c[7].parse::<u64>().unwrap(), *n);
        close(c[8], *sum);
    }

    // The view is stored, and every session sees it.
    let e2 = engine(&project, &wh).await;
    assert_eq!(
        scalar(&e2, "SELECT count(*) FROM staging.stg_transactions").await,
        "5000"
    );
    // Bare model names resolve when unique (and are not tables of the default schema).
    assert_eq!(
        scalar(&e2, "SELECT count(*) FROM user_txn_rolling").await,
        "5000"
    );
    // Run records: inputs with versions, and the output version.
    let recs = rows(
        &e2,
        "SELECT status, output_version, inputs FROM _sluice.runs WHERE node = 'features.user_features'",
    )
    .await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(recs[0].starts_with("success|0|"), "{recs:?}");
    assert!(
        recs[0].contains(r#"{"table":"raw.transactions","version":"#),
        "user_features reads raw.transactions through a view and an ephemeral: {recs:?}"
    );
    let rr: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("target/run_results.json")).unwrap()).unwrap();
    assert_eq!(rr["metadata"]["invocation_id"], report.run_id.as_str());
    assert!(rr["results"].as_array().unwrap().len() >= 27);

    // Every model commit carries the run id and the SQL hash.
    let t = wh
        .open_table("features", "user_features")
        .await
        .unwrap()
        .unwrap();
    let h = sluice::warehouse::history(&t).await.unwrap();
    let last = h.last().unwrap();
    assert_eq!(last.run_id.as_deref(), Some(report.run_id.as_str()));
    let compiled = compile_at(p, false).await.unwrap();
    let m = &compiled.models[compiled.find("user_features").unwrap()];
    assert_eq!(last.sql_hash.as_deref(), Some(m.sql_hash.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_equal_a_full_refresh() {
    let dir = example_with_models();
    let p = dir.path();
    // Start with three days of transactions.
    let tx = p.join("catalog/data/transactions");
    let held = tempfile::tempdir().unwrap();
    for day in ["2026-01-04.csv", "2026-01-05.csv"] {
        std::fs::rename(tx.join(day), held.path().join(day)).unwrap();
    }
    load_all(p).await;
    let r1 = execute(p, Steps::Models, &[], false).await;
    assert!(r1.success());
    // Two more days arrive; the incremental models only process what is new.
    for day in ["2026-01-04.csv", "2026-01-05.csv"] {
        std::fs::rename(held.path().join(day), tx.join(day)).unwrap();
    }
    load_all(p).await;
    let r2 = execute(p, Steps::Models, &[], false).await;
    assert!(r2.success());
    let merged = r2
        .results
        .iter()
        .find(|r| r.id == "features.merchant_features")
        .unwrap();
    assert_eq!(merged.materialization, "incremental");
    assert!(merged.rows.unwrap() < 200 || merged.rows.unwrap() == 200);

    let project = Project::load(p).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let q_daily = "SELECT user_id, txn_date, txn_count, round(amount, 6) FROM features.daily_user_spend ORDER BY 1, 2";
    let q_merch = "SELECT merchant_id, txn_count, round(total_amount, 6), last_txn_ts FROM features.merchant_features ORDER BY 1";
    let daily_inc = rows(&e, q_daily).await;
    let merch_inc = rows(&e, q_merch).await;
    assert!(!daily_inc.is_empty() && !merch_inc.is_empty());

    let r3 = execute(p, Steps::Models, &[], true).await;
    assert!(r3.success());
    assert!(r3
        .results
        .iter()
        .any(|r| r.materialization == "incremental (full)"));
    let e = engine(&project, &wh).await;
    assert_eq!(rows(&e, q_daily).await, daily_inc);
    assert_eq!(rows(&e, q_merch).await, merch_inc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_are_inferred_from_sql() {
    let dir = project_of(&[
        ("models/a.sql", "select 1 as x"),
        ("models/b.sql", "select 2 as x"),
        // A CTE named like model `a` shadows it where visible; `b` is still read.
        (
            "models/shadow.sql",
            "with a as (select * from b) select * from a",
        ),
        // ... but not outside its scope.
        (
            "models/scoped.sql",
            "select * from (with a as (select 5 as x) select * from a) s join a on s.x = a.x",
        ),
        // Nested subqueries, EXISTS, UNION, quoted and schema-qualified names, ref().
        (
            "models/nested.sql",
            "select x from main.\"a\" where x in (select x from (select x from b) q)\n\
             and exists (select 1 from main.scoped)\n\
             union all select x from {{ ref('shadow') }}",
        ),
        (
            "models/marts/deep.sql",
            "select * from nested n join marts.other o using (x)",
        ),
        ("models/marts/other.sql", "select x from b"),
    ]);
    let c = compile_at(dir.path(), false).await.unwrap();
    let deps = |id: &str| -> Vec<String> {
        let i = c.find(id).unwrap();
        let mut d: Vec<String> = c.models[i].deps.iter().map(|j| c.models[*j].id()).collect();
        d.sort();
        d
    };
    assert_eq!(deps("a"), Vec::<String>::new());
    assert_eq!(deps("shadow"), vec!["main.b"]);
    assert_eq!(deps("scoped"), vec!["main.a"]);
    assert_eq!(
        deps("nested"),
        vec!["main.a", "main.b", "main.scoped", "main.shadow"]
    );
    assert_eq!(deps("marts.deep"), vec!["main.nested", "marts.other"]);
    // Folder = schema; the compiled SQL of a bare name outside the default schema is qualified.
    let deep = &c.models[c.find("deep").unwrap()];
    assert_eq!(deep.schema, "marts");
    assert!(deep.sql.contains("marts.other"), "{}", deep.sql);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_errors_for_cycles_unknown_tables_sql_and_jinja() {
    let cycle = project_of(&[
        ("models/a.sql", "select * from c"),
        ("models/b.sql", "select * from a"),
        ("models/c.sql", "select * from b"),
        ("models/d.sql", "select 1 as x"),
    ]);
    let e = compile_at(cycle.path(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dependency cycle: main.a → main.b → main.c → main.a"),
        "{e}"
    );

    let unknown = project_of(&[
        ("models/stg_orders.sql", "select 1 as id"),
        ("models/report.sql", "select * from stg_order"),
    ]);
    let e = compile_at(unknown.path(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("model `main.report` (models/report.sql)"), "{e}");
    assert!(e.contains("unknown table `stg_order`"), "{e}");
    assert!(e.contains("did you mean `stg_orders`?"), "{e}");

    let syntax = project_of(&[("models/broken.sql", "select 1 as x,\nfrom")]);
    let e = compile_at(syntax.path(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("models/broken.sql"), "{e}");
    assert!(e.contains("SQL syntax error"), "{e}");

    let jinja = project_of(&[(
        "models/j.sql",
        "select 1 as x\n-- ok\nfrom {{ ref('nope') }}",
    )]);
    let e = compile_at(jinja.path(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("models/j.sql:3"), "{e}");
    assert!(e.contains("no model named `nope`"), "{e}");

    let jinja = project_of(&[("models/j.sql", "select 1 as x\n{% if %}")]);
    let e = compile_at(jinja.path(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("models/j.sql:2"), "{e}");

    // Several broken models are reported together.
    let two = project_of(&[
        ("models/a.sql", "select * from nothere"),
        ("models/b.sql", "select * from alsonot"),
    ]);
    let e = compile_at(two.path(), false).await.unwrap_err().to_string();
    assert!(
        e.contains("2 problems") && e.contains("nothere") && e.contains("alsonot"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_branch_skips_only_its_descendants() {
    // a → b → d, a → c → d, c fails at run time (a cast that cannot succeed);
    // e is independent; f reads b only.
    let dir = project_of(&[
        ("models/a.sql", "select 1 as x, 'oops' as s"),
        ("models/b.sql", "select x from a"),
        ("models/c.sql", "select x, cast(s as int) as bad from a"),
        ("models/d.sql", "select b.x from b join c on b.x = c.x"),
        ("models/e.sql", "select 42 as y"),
        ("models/f.sql", "select x + 1 as x from b"),
    ]);
    let r = execute(dir.path(), Steps::Models, &[], false).await;
    assert!(!r.success());
    assert_eq!(status_of(&r, "main.a"), Status::Success);
    assert_eq!(status_of(&r, "main.b"), Status::Success);
    assert_eq!(status_of(&r, "main.e"), Status::Success);
    assert_eq!(status_of(&r, "main.f"), Status::Success);
    assert_eq!(status_of(&r, "main.c"), Status::Error);
    assert_eq!(status_of(&r, "main.d"), Status::Skipped);
    let c = r.results.iter().find(|x| x.id == "main.c").unwrap();
    let msg = c.message.as_deref().unwrap();
    assert!(msg.contains("model `main.c` (models/c.sql)"), "{msg}");
    let d = r.results.iter().find(|x| x.id == "main.d").unwrap();
    assert!(
        d.message.as_deref().unwrap().contains("`main.c` failed"),
        "{:?}",
        d.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_skips_descendants_in_build() {
    let dir = project_of(&[
        ("models/a.sql", "select 1 as id union all select 1 as id"),
        ("models/b.sql", "select id from a"),
        ("models/other.sql", "select 2 as id"),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: id\n        tests: [unique]\n  - name: other\n    columns:\n      - name: id\n        tests: [unique, not_null]\n",
        ),
    ]);
    let r = execute(dir.path(), Steps::Build, &[], false).await;
    assert!(!r.success());
    assert_eq!(status_of(&r, "unique_a_id"), Status::Fail);
    assert_eq!(status_of(&r, "main.b"), Status::Skipped);
    assert_eq!(status_of(&r, "main.other"), Status::Success);
    assert_eq!(status_of(&r, "unique_other_id"), Status::Pass);
    let t = r.results.iter().find(|x| x.id == "unique_a_id").unwrap();
    assert_eq!(t.failures, Some(1));
    let msg = t.message.as_deref().unwrap();
    assert!(msg.contains("1 failing row in main.a"), "{msg}");
    assert!(msg.contains("unique_field"), "sample rows are shown: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_and_materialization_switches() {
    let dir = project_of(&[
        (
            "models/a.sql",
            "{{ config(materialized='view', tags=['core']) }}\nselect 1 as x",
        ),
        ("models/b.sql", "select x + 1 as x from a"),
        ("models/c.sql", "select x + 1 as x from b"),
        ("models/d.sql", "{{ config(tags=['core']) }}\nselect 7 as y"),
    ]);
    let r = execute(dir.path(), Steps::Models, &["b+"], false).await;
    assert_eq!(
        ids(&r),
        vec!["main.b", "main.c"],
        "b fails without a? it is a view, not built yet"
    );
    assert_eq!(status_of(&r, "main.b"), Status::Error);
    let r = execute(dir.path(), Steps::Models, &["+c"], false).await;
    assert!(r.success(), "{:?}", r.results);
    assert_eq!(ids(&r), vec!["main.a", "main.b", "main.c"]);
    let r = execute(dir.path(), Steps::Models, &["tag:core"], false).await;
    assert_eq!(ids(&r), vec!["main.a", "main.d"]);

    // A view becomes a table and back; readers follow.
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    std::fs::write(dir.path().join("models/a.sql"), "select 10 as x").unwrap();
    assert!(execute(dir.path(), Steps::Models, &[], false)
        .await
        .success());
    assert!(wh.get_view("main", "a").await.unwrap().is_none());
    let e = engine(&project, &wh).await;
    assert_eq!(scalar(&e, "SELECT x FROM main.c").await, "12");
    std::fs::write(
        dir.path().join("models/a.sql"),
        "{{ config(materialized='view') }} select 20 as x",
    )
    .unwrap();
    assert!(execute(dir.path(), Steps::Models, &[], false)
        .await
        .success());
    assert!(wh.open_table("main", "a").await.unwrap().is_none());
    let e = engine(&project, &wh).await;
    assert_eq!(scalar(&e, "SELECT x FROM main.a").await, "20");
    assert_eq!(scalar(&e, "SELECT x FROM main.c").await, "22");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dbt_project_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("tests/fixtures/dbt_shop"), dir.path());
    let p = dir.path();
    let project = Project::load(p).unwrap();
    assert!(project.is_dbt());
    let wh = open(&project, None);
    let seeded = sluice::load::seeds::seed(&project, &wh, &[], true, &sluice::load::NoProgress)
        .await
        .unwrap();
    assert_eq!(seeded.sources.len(), 2);
    let r = execute(p, Steps::Build, &[], false).await;
    assert!(
        r.success(),
        "{:#?}",
        r.results
            .iter()
            .filter(|x| x.status.is_failure())
            .collect::<Vec<_>>()
    );
    let e = engine(&project, &wh).await;
    // Reachable by model name; staging views in their +schema.
    assert_eq!(scalar(&e, "SELECT count(*) FROM customers").await, "3");
    assert_eq!(
        rows(
            &e,
            "SELECT customer_id, order_count, total_amount, total_cents FROM customers ORDER BY customer_id"
        )
        .await,
        vec!["1|2|30.0|3000", "2|1|5.5|550", "3|0|0.0|0"]
    );
    assert_eq!(
        // dbt's default generate_schema_name: `<target schema>_<custom>`.
        scalar(&e, "SELECT count(*) FROM main_staging.stg_orders").await,
        "3"
    );
    let tests = r.results.iter().filter(|x| x.kind == "test").count();
    assert!(tests >= 5, "{:?}", ids(&r));
}
