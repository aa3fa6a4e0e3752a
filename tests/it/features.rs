//! The feature store's offline side: the registry written by `run`, and
//! point-in-time training sets checked against hand-computed rows (TTL at the
//! boundary, ties by created time, missing entities, multi-column keys).

use crate::common::*;
use crate::models::{execute, project_of};
use sluice::features::{self, Options};
use sluice::models::{Status, Steps};
use sluice::project::Project;

fn ts(s: &str) -> String {
    format!("arrow_cast('{s}', 'Timestamp(Microsecond, Some(\"UTC\"))')")
}

const USER_VIEW: &str = "{{ config(feature_view={'entities': ['user_id'], 'event_timestamp': 'ts', 'created_timestamp': 'created', 'ttl': '2d'}, owner='ml-team') }}\nSELECT user_id, ts, created, amount FROM raw.events\n";
const MERCHANT_VIEW: &str = "{{ config(feature_view={'entities': ['merchant_id', 'country'], 'event_timestamp': 'ts'}) }}\nSELECT merchant_id, country, ts, risk FROM raw.merchant_events\n";

async fn setup() -> (tempfile::TempDir, sluice::sql::Engine) {
    let dir = project_of(&[
        ("models/features/user_feats.sql", USER_VIEW),
        ("models/features/merchant_risk.sql", MERCHANT_VIEW),
        (
            "models/features/schema.yml",
            "version: 2\nmodels:\n  - name: user_feats\n    description: Spend per user event.\n    columns:\n      - name: amount\n        description: The amount of the event.\n",
        ),
    ]);
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let e = engine(&project, &wh).await;
    let d1 = ts("2026-01-01T00:00:00Z");
    let d3 = ts("2026-01-03T00:00:00Z");
    let d4 = ts("2026-01-04T00:00:00Z");
    e.query(&format!(
        "CREATE TABLE raw.events AS SELECT * FROM (VALUES \
         (1, {d1}, {d1}, 10), (1, {d3}, {d3}, 30), (1, {d3}, {d4}, 35), (2, {d1}, {d1}, 20)) \
         v(user_id, ts, created, amount)"
    ))
    .await
    .unwrap();
    let d2 = ts("2026-01-02T00:00:00Z");
    e.query(&format!(
        "CREATE TABLE raw.merchant_events AS SELECT * FROM (VALUES \
         (7, 'US', {d1}, 0.1), (7, 'FR', {d2}, 0.9), (7, 'US', {d4}, 0.5)) v(merchant_id, country, ts, risk)"
    ))
    .await
    .unwrap();
    let labels = [
        (1, "2026-01-02T12:00:00Z", "a"), // 1.5 days after 01-01: 10
        (1, "2026-01-03T00:00:00Z", "b"), // two rows at 01-03: newest created wins: 35
        (2, "2026-01-03T00:00:00Z", "c"), // exactly the TTL (2 days) old: kept, 20
        (2, "2026-01-03T00:00:01Z", "d"), // one second past the TTL: NULL
        (3, "2026-01-05T00:00:00Z", "e"), // unknown entity: NULL
        (1, "2025-12-31T00:00:00Z", "f"), // before any feature row: NULL
    ];
    let values: Vec<String> = labels
        .iter()
        .map(|(u, t, l)| format!("({u}, {}, '{l}')", ts(t)))
        .collect();
    e.query(&format!(
        "CREATE TABLE raw.labels AS SELECT * FROM (VALUES {}) v(user_id, event_timestamp, label)",
        values.join(", ")
    ))
    .await
    .unwrap();
    let report = execute(dir.path(), Steps::Models, &[], false).await;
    assert!(
        report.results.iter().all(|n| n.status == Status::Success),
        "{:?}",
        report.results
    );
    (dir, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_point_in_time_training_sets() {
    let (dir, e) = setup().await;
    let wh = e.warehouse().clone();

    // The registry.
    let views = features::list_views(&wh).await.unwrap();
    assert_eq!(
        views.iter().map(|v| v.id()).collect::<Vec<_>>(),
        vec!["features.merchant_risk", "features.user_feats"]
    );
    let user = features::get_view(&wh, "user_feats").await.unwrap();
    assert_eq!(user.entities, vec!["user_id"]);
    assert_eq!(user.ttl_seconds, Some(2 * 86400));
    assert_eq!(user.ttl.as_deref(), Some("2d"), "the TTL as written");
    assert_eq!(user.created_timestamp.as_deref(), Some("created"));
    assert_eq!(user.owner.as_deref(), Some("ml-team"));
    assert_eq!(user.description.as_deref(), Some("Spend per user event."));
    assert_eq!(user.features.len(), 1);
    assert_eq!(user.features[0].name, "amount");
    assert_eq!(
        user.features[0].description.as_deref(),
        Some("The amount of the event.")
    );
    assert_eq!(user.versions.len(), 1);
    let err = features::get_view(&wh, "user_feat")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("did you mean") && err.contains("user_feats"),
        "{err}"
    );

    // A training set, through the SQL table function.
    let got = rows(
        &e,
        "SELECT label, amount FROM historical_features('raw.labels', 'user_feats') ORDER BY label",
    )
    .await;
    assert_eq!(got, vec!["a|10", "b|35", "c|20", "d|", "e|", "f|"]);

    // The same through the library, with full names; its SQL pins versions.
    let state = e.context().state();
    let set = features::training_sql(
        &wh,
        &state,
        "raw.labels",
        &["user_feats:amount".to_string()],
        &Options {
            full_names: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(set.sql.contains("VERSION AS OF"), "{}", set.sql);
    assert_eq!(set.timestamp, "event_timestamp");
    assert_eq!(set.inputs.len(), 2);
    let got = rows(
        &e,
        &format!(
            "SELECT label, user_feats__amount FROM ({}) ORDER BY label",
            set.sql
        ),
    )
    .await;
    assert_eq!(got, vec!["a|10", "b|35", "c|20", "d|", "e|", "f|"]);

    // Several-column entity keys, entities from a query, no TTL.
    let q = format!(
        "SELECT * FROM (VALUES (7, 'US', {}, 'x'), (7, 'FR', {}, 'y'), (7, 'DE', {}, 'z'), (7, 'US', {}, 'w')) v(merchant_id, country, at, tag)",
        ts("2026-01-03T00:00:00Z"),
        ts("2026-01-03T00:00:00Z"),
        ts("2026-01-03T00:00:00Z"),
        ts("2026-01-05T00:00:00Z")
    );
    let got = rows(
        &e,
        &format!(
            "SELECT tag, risk FROM historical_features('{}', 'merchant_risk', 'timestamp=at') ORDER BY tag",
            q.replace('\'', "''")
        ),
    )
    .await;
    assert_eq!(got, vec!["w|0.5", "x|0.1", "y|0.9", "z|"]);

    // Errors name the problem.
    let err = e
        .query("SELECT * FROM historical_features('raw.labels', 'user_feats:amt')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no feature `amt`") && err.contains("amount"),
        "{err}"
    );
    let err = e
        .query("SELECT * FROM historical_features('raw.labels', 'merchant_risk')")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lacks `merchant_id`"), "{err}");

    // The entities' columns keep their names; a feature named like one of
    // them is prefixed with its view, without full_names.
    let batches = e
        .query(
            "SELECT * FROM historical_features('SELECT label, user_id, event_timestamp, length(label) AS amount FROM raw.labels', 'user_feats') ORDER BY label",
        )
        .await
        .unwrap();
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "label",
            "user_id",
            "event_timestamp",
            "amount",
            "user_feats__amount"
        ]
    );
    let got = rows(
        &e,
        "SELECT label, amount, user_feats__amount FROM historical_features('SELECT label, user_id, event_timestamp, length(label) AS amount FROM raw.labels', 'user_feats') ORDER BY label",
    )
    .await;
    assert_eq!(
        got,
        vec!["a|1|10", "b|1|35", "c|1|20", "d|1|", "e|1|", "f|1|"]
    );
    // Two views with a feature of the same name need full_names (as Feast's
    // full_feature_names), or one of them named.
    std::fs::write(
        dir.path().join("models/features/user_spend.sql"),
        "{{ config(feature_view={'entities': ['user_id'], 'event_timestamp': 'ts'}) }}
SELECT user_id, ts, amount * 10 AS amount FROM raw.events
",
    )
    .unwrap();
    let report = execute(dir.path(), Steps::Models, &["user_spend"], false).await;
    assert_eq!(
        report.results[0].status,
        Status::Success,
        "{:?}",
        report.results
    );
    let err = e
        .query("SELECT * FROM historical_features('raw.labels', 'user_feats', 'user_spend')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("feature views `user_feats` and `user_spend` both have a feature `amount`")
            && err.contains("full_names=true"),
        "{err}"
    );
    let got = rows(
        &e,
        "SELECT label, user_feats__amount, user_spend__amount FROM historical_features('raw.labels', 'user_feats', 'user_spend', 'full_names=true') ORDER BY label",
    )
    .await;
    assert_eq!(got[0], "a|10|100");
    std::fs::remove_file(dir.path().join("models/features/user_spend.sql")).unwrap();

    // A new version of the view's SQL is recorded by the next run.
    std::fs::write(
        dir.path().join("models/features/user_feats.sql"),
        USER_VIEW.replace("amount FROM", "amount * 2 AS amount FROM"),
    )
    .unwrap();
    execute(dir.path(), Steps::Models, &["user_feats"], false).await;
    let user = features::get_view(&wh, "features.user_feats")
        .await
        .unwrap();
    assert_eq!(user.versions.len(), 2);
    assert_ne!(user.versions[0].sql_hash, user.versions[1].sql_hash);
    // The earlier training set's SQL still reads the version it pinned.
    let again = rows(
        &e,
        &format!(
            "SELECT label, user_feats__amount FROM ({}) ORDER BY label",
            set.sql
        ),
    )
    .await;
    assert_eq!(again, vec!["a|10", "b|35", "c|20", "d|", "e|", "f|"]);

    // Entities given as a query: the tables it reads are pinned too (CTE
    // names are not tables), so new label rows do not change the set.
    let query = "WITH l AS (SELECT * FROM raw.labels WHERE label < 'e') SELECT l.* FROM l JOIN raw.labels r USING (label)";
    let set = features::training_sql(
        &wh,
        &state,
        query,
        &["user_feats:amount".to_string()],
        &Options::default(),
    )
    .await
    .unwrap();
    assert!(
        set.inputs.iter().any(|(t, _)| t == "raw.labels")
            && set.sql.contains("raw.labels VERSION AS OF"),
        "{:?} {}",
        set.inputs,
        set.sql
    );
    assert!(!set.sql.contains("l VERSION AS OF"), "{}", set.sql);
    let before = rows(
        &e,
        &format!("SELECT label FROM ({}) ORDER BY label", set.sql),
    )
    .await;
    e.query(&format!(
        "INSERT INTO raw.labels VALUES (1, {}, 'a2')",
        ts("2026-01-02T00:00:00Z")
    ))
    .await
    .unwrap();
    let after = rows(
        &e,
        &format!("SELECT label FROM ({}) ORDER BY label", set.sql),
    )
    .await;
    assert_eq!(before, vec!["a", "b", "c", "d"]);
    assert_eq!(after, before);
}

/// An incremental feature view is checked against the columns the run writes
/// (the table's): a new event-time column the run would drop is refused with
/// the way out, and the table keeps its version; a full refresh takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_view_is_checked_against_the_columns_it_writes() {
    let model = |fv: &str, cols: &str| {
        format!(
            "{{{{ config(materialized='incremental', unique_key='user_id', feature_view={fv}) }}}}\n\
             SELECT {cols} FROM (VALUES (1, {}, 10)) v(user_id, ts, amount)\n",
            ts("2026-01-01T00:00:00Z")
        )
    };
    let dir = project_of(&[(
        "models/user_inc.sql",
        &model(
            "{'entities': ['user_id'], 'event_timestamp': 'ts'}",
            "user_id, ts, amount",
        ),
    )]);
    let report = execute(dir.path(), Steps::Models, &[], false).await;
    assert_eq!(
        report.results[0].status,
        Status::Success,
        "{:?}",
        report.results
    );
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    assert_eq!(version_of(&wh, "main", "user_inc").await, Some(0));

    // The event time renamed in the query: an incremental run keeps the
    // table's columns, so `event_ts` would not be written.
    std::fs::write(
        dir.path().join("models/user_inc.sql"),
        model(
            "{'entities': ['user_id'], 'event_timestamp': 'event_ts'}",
            "user_id, ts AS event_ts, amount",
        ),
    )
    .unwrap();
    let report = execute(dir.path(), Steps::Models, &[], false).await;
    let node = &report.results[0];
    assert_eq!(node.status, Status::Error);
    let message = node.message.clone().unwrap_or_default();
    assert!(
        message.contains(
            "feature_view event_timestamp `event_ts` is not a column of the model's result"
        ) && message.contains("the query's new columns event_ts are not added")
            && message.contains("--full-refresh"),
        "{message}"
    );
    assert_eq!(version_of(&wh, "main", "user_inc").await, Some(0));
    let report = execute(dir.path(), Steps::Models, &[], true).await;
    assert_eq!(
        report.results[0].status,
        Status::Success,
        "{:?}",
        report.results
    );
    assert_eq!(version_of(&wh, "main", "user_inc").await, Some(1));
}
