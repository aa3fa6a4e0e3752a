//! Models accept every form of sluice's SQL, because they are parsed by the
//! same front end as queries: time travel (`VERSION AS OF`, `TIMESTAMP AS OF`),
//! the DuckDB AS OF join with `TOLERANCE` and `TIEBREAK BY`, and table
//! functions that declare what they read (`historical_features` over another
//! model's feature view). Each must compile, order and run, in a sluice project
//! and in a dbt project through `ref()`.

use crate::common::*;
use crate::models::execute;
use sluice::models::{CompileOptions, Status, Steps};
use sluice::project::Project;
use std::path::Path;

fn ts(s: &str) -> String {
    format!("arrow_cast('{s}', 'Timestamp(Microsecond, Some(\"UTC\"))')")
}

/// The models, with upstream models named through `r(name)`: a bare name in a
/// sluice project, `{{ ref('name') }}` in a dbt project.
fn models(dbt: bool) -> Vec<(String, String)> {
    let r = |name: &str| {
        if dbt {
            format!("{{{{ ref('{name}') }}}}")
        } else {
            name.to_string()
        }
    };
    vec![
        ("events_copy.sql".into(), "SELECT * FROM raw.events".into()),
        (
            "events_v0.sql".into(),
            format!("SELECT user_id, amount FROM {} VERSION AS OF 0", r("events_copy")),
        ),
        (
            "events_now.sql".into(),
            // Runs after events_copy was written, or there is no version yet.
            format!("SELECT user_id, amount FROM {} TIMESTAMP AS OF now() e", r("events_copy")),
        ),
        ("quotes.sql".into(), "SELECT * FROM raw.quotes".into()),
        (
            "priced.sql".into(),
            format!(
                "SELECT t.k, t.ts, q.price FROM raw.trades t\nASOF LEFT JOIN {} q ON t.k = q.k AND t.ts >= q.qts",
                r("quotes")
            ),
        ),
        (
            "priced_tol.sql".into(),
            format!(
                "SELECT t.k, t.ts, q.price FROM raw.trades t\nASOF JOIN {} q ON t.k = q.k AND t.ts >= q.qts TOLERANCE 5 TIEBREAK BY q.price",
                r("quotes")
            ),
        ),
        (
            "user_feats.sql".into(),
            "{{ config(feature_view={'entities': ['user_id'], 'event_timestamp': 'ts'}) }}\nSELECT user_id, ts, amount FROM raw.events".into(),
        ),
        (
            "training.sql".into(),
            if dbt {
                "SELECT label, amount FROM historical_features('raw.labels', '{{ ref(\"user_feats\") }}')".into()
            } else {
                "SELECT label, amount FROM historical_features('raw.labels', 'user_feats')".into()
            },
        ),
    ]
}

async fn raw_tables(p: &Path) {
    let project = Project::load(p).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let (d1, d2, d3) = (
        ts("2026-01-01T00:00:00Z"),
        ts("2026-01-02T00:00:00Z"),
        ts("2026-01-03T00:00:00Z"),
    );
    for sql in [
        format!("CREATE TABLE raw.events AS SELECT * FROM (VALUES (1, {d1}, 10), (2, {d1}, 20), (1, {d3}, 30)) v(user_id, ts, amount)"),
        format!("CREATE TABLE raw.labels AS SELECT * FROM (VALUES (1, {d2}, 'a'), (1, {d3}, 'b'), (2, {d2}, 'c'), (3, {d2}, 'd')) v(user_id, event_timestamp, label)"),
        // quotes: key, time, sequence, price; two quotes of key 1 at time 10:
        // without TIEBREAK BY the higher seq wins (110), TIEBREAK BY q.price
        // picks 111.
        "CREATE TABLE raw.quotes AS SELECT * FROM (VALUES (1, 1, 0, 100), (1, 10, 1, 111), (1, 10, 2, 110), (2, 5, 0, 200)) v(k, qts, seq, price)".to_string(),
        "CREATE TABLE raw.trades AS SELECT * FROM (VALUES (1, 0), (1, 3), (1, 12), (1, 20), (2, 7), (3, 9)) v(k, ts)".to_string(),
    ] {
        e.query(&sql).await.unwrap();
    }
}

async fn check(p: &Path) {
    raw_tables(p).await;
    let project = Project::load(p).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let compiled = sluice::models::compile(&project, &e, &CompileOptions::default())
        .await
        .unwrap();
    let deps = |name: &str| -> Vec<String> {
        let i = compiled.find(name).unwrap();
        compiled.models[i]
            .deps
            .iter()
            .map(|d| compiled.models[*d].name.clone())
            .collect()
    };
    assert_eq!(deps("events_v0"), ["events_copy"]);
    assert_eq!(deps("events_now"), ["events_copy"]);
    assert_eq!(deps("priced"), ["quotes"]);
    assert_eq!(deps("priced_tol"), ["quotes"]);
    assert_eq!(deps("training"), ["user_feats"]);

    let r = execute(p, Steps::Models, &[], false).await;
    for x in &r.results {
        assert_eq!(x.status, Status::Success, "{}: {:?}", x.id, x.message);
    }
    assert_eq!(r.results.len(), 8, "{:?}", r.results);
    let position = |name: &str| {
        r.results
            .iter()
            .position(|x| x.id.ends_with(&format!(".{name}")))
            .unwrap()
    };
    assert!(position("training") > position("user_feats"));
    assert!(position("events_now") > position("events_copy"));

    assert_eq!(
        rows(
            &e,
            "SELECT user_id, amount FROM main.events_v0 ORDER BY amount"
        )
        .await,
        ["1|10", "2|20", "1|30"]
    );
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM main.events_now").await,
        "3"
    );
    // Left join: every trade; the newest quote at or before it; a tie goes to
    // the row with the highest other columns (seq 2).
    assert_eq!(
        rows(&e, "SELECT k, ts, price FROM main.priced ORDER BY k, ts").await,
        ["1|0|", "1|3|100", "1|12|110", "1|20|110", "2|7|200", "3|9|"]
    );
    // Inner join within 5: (1,0) has no quote, (1,20) is 10 after its quote.
    assert_eq!(
        rows(
            &e,
            "SELECT k, ts, price FROM main.priced_tol ORDER BY k, ts"
        )
        .await,
        ["1|3|100", "1|12|111", "2|7|200"]
    );
    assert_eq!(
        rows(&e, "SELECT label, amount FROM main.training ORDER BY label").await,
        ["a|10", "b|30", "c|20", "d|"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sluice_project_uses_time_travel_asof_and_training_sets_in_models() {
    let files = models(false);
    let files: Vec<(String, &str)> = files
        .iter()
        .map(|(f, t)| (format!("models/{f}"), t.as_str()))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (f.as_str(), *t)).collect();
    let dir = crate::models::project_of(&files);
    check(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dbt_project_does_the_same_through_ref() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("dbt_project.yml"),
        "name: syntax\nversion: '1.0'\nconfig-version: 2\nprofile: syntax\nmodel-paths: [\"models\"]\nmodels:\n  syntax:\n    +materialized: table\n",
    )
    .unwrap();
    std::fs::create_dir_all(p.join("models")).unwrap();
    for (f, t) in models(true) {
        std::fs::write(p.join("models").join(f), t).unwrap();
    }
    assert!(Project::load(p).unwrap().is_dbt());
    check(p).await;
}
