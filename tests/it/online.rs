//! The online store: materialization after `run` (full, then incremental with
//! late rows), key lookups through `online.<view>` with status and TTL at
//! read time, ties by created time, keys of two columns, feature services
//! (and a view added to one), a restart, and online == historical at now.
//! Runs on the embedded store, and on Redis when `SLUICE_TEST_REDIS_URL`
//! names a server (tests/run.sh starts one).

use crate::common::*;
use crate::models::{execute, project_of};
use sluice::features::{self, online};
use sluice::models::{Status, Steps};
use sluice::project::Project;

const USER_VIEW: &str = "{{ config(materialized='incremental', incremental_strategy='append', \
    feature_view={'entities': ['user_id'], 'event_timestamp': 'ts', 'created_timestamp': 'created', 'ttl': '1d', 'online': true}) }}\n\
    SELECT user_id, ts, created, amount, batch FROM raw.events\n\
    {% if is_incremental() %} WHERE batch > (SELECT max(batch) FROM {{ this }}) {% endif %}\n";
const MERCHANT_VIEW: &str = "{{ config(feature_view={'entities': ['merchant_id', 'country'], 'event_timestamp': 'ts'}) }}\n\
    SELECT merchant_id, country, ts, risk FROM raw.merchant_events\n";

/// `now() - secs` as a UTC timestamp literal.
fn ago(secs: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::seconds(secs);
    format!(
        "arrow_cast('{}', 'Timestamp(Microsecond, Some(\"UTC\"))')",
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    )
}

fn toml(uri: &str, online: &str, services: &str) -> String {
    format!(
        "[project]\nname = \"t\"\nmodels = \"models\"\n\n[warehouse]\nuri = \"{uri}\"\ndefault_schema = \"main\"\n\n{online}\n{services}\n"
    )
}

async fn reopen(dir: &std::path::Path) -> sluice::sql::Engine {
    let project = Project::load(dir).unwrap();
    let wh = open(&project, None);
    engine(&project, &wh).await
}

/// Materializes one view into the engine's online store.
async fn materialize(
    e: &sluice::sql::Engine,
    view: &str,
    range: Option<online::Range>,
) -> online::MaterializeReport {
    let store = sluice::features::settings(e).unwrap().online.clone();
    let view = features::get_view(e.warehouse(), view).await.unwrap();
    online::materialize(e, &store, &view, range, false)
        .await
        .unwrap()
}

async fn run_models(dir: &std::path::Path) {
    let report = execute(dir, Steps::Models, &[], false).await;
    assert!(
        report.results.iter().all(|n| n.status == Status::Success),
        "{:?}",
        report.results
    );
}

async fn scenario(uri: &str, online_toml: &str) {
    let dir = project_of(&[
        ("models/features/user_feats.sql", USER_VIEW),
        ("models/features/merchant_risk.sql", MERCHANT_VIEW),
    ]);
    let services = "[feature_services.fraud]\nfeatures = [\"user_feats:amount\"]\n";
    std::fs::write(
        dir.path().join("sluice.toml"),
        toml(uri, online_toml, services),
    )
    .unwrap();
    let e = reopen(dir.path()).await;

    // Batch 1. User 1: two rows at the same event time, the later created
    // wins. User 2: a minute inside the 1-day TTL; user 3: a minute outside.
    e.query(&format!(
        "CREATE TABLE raw.events AS SELECT * FROM (VALUES \
         (1, {t2h}, {t2h}, 10.0, 1), (1, {t2h}, {t2h1}, 11.0, 1), \
         (2, {in_ttl}, {in_ttl}, 20.0, 1), (3, {out_ttl}, {out_ttl}, 30.0, 1)) \
         v(user_id, ts, created, amount, batch)",
        t2h = ago(7200),
        t2h1 = ago(7199),
        in_ttl = ago(86400 - 120),
        out_ttl = ago(86400 + 120),
    ))
    .await
    .unwrap();
    e.query(&format!(
        "CREATE TABLE raw.merchant_events AS SELECT * FROM (VALUES \
         (7, 'US', {a}, 0.1), (7, 'FR', {b}, 0.9), (7, 'US', {c}, 0.5), (8, 'US', {a}, 0.2)) \
         v(merchant_id, country, ts, risk)",
        a = ago(3 * 86400),
        b = ago(2 * 86400),
        c = ago(86400),
    ))
    .await
    .unwrap();
    // `run` materializes user_feats ('online': true) after building it.
    run_models(dir.path()).await;
    let q = "SELECT user_id, amount, _status, _event_time IS NOT NULL FROM online.user_feats \
             WHERE user_id IN (1, 2, 3, 4) ORDER BY user_id";
    assert_eq!(
        rows(&e, q).await,
        vec![
            "1|11.0|present|true",
            "2|20.0|present|true",
            "3||outside_ttl|true",
            "4||not_found|false"
        ]
    );
    let store = sluice::features::settings(&e).unwrap().online.clone();
    let st = store.state("user_feats").await.unwrap().unwrap();
    assert_eq!(st.last.mode, "full");
    assert_eq!(st.entity_count, 3);

    // Batch 2 arrives late: user 1's row is older than the stored one (kept),
    // user 2's newer (replaces), user 5 is new. The incremental run reads
    // only the appended file.
    e.query(&format!(
        "INSERT INTO raw.events VALUES (1, {old}, {old}, 99.0, 2), (2, {new}, {new}, 21.0, 2), (5, {t3h}, {t3h}, 50.0, 2)",
        old = ago(5 * 3600),
        new = ago(3600),
        t3h = ago(3 * 3600),
    ))
    .await
    .unwrap();
    run_models(dir.path()).await;
    let st = store.state("user_feats").await.unwrap().unwrap();
    assert_eq!(st.last.mode, "incremental", "{:?}", st.last);
    assert_eq!(st.last.rows_read, 3);
    assert_eq!(st.last.entities_written, 2, "{:?}", st.last);
    assert_eq!(st.entity_count, 4);
    assert_eq!(
        rows(
            &e,
            "SELECT user_id, amount, batch, _status FROM online.user_feats WHERE user_id IN (1, 2, 5) ORDER BY user_id"
        )
        .await,
        vec!["1|11.0|1|present", "2|21.0|2|present", "5|50.0|2|present"]
    );

    // Online equals a training set taken now, for every entity.
    let online_rows = rows(
        &e,
        "SELECT user_id, amount FROM online.user_feats WHERE user_id IN (1, 2, 3, 4, 5) ORDER BY user_id",
    )
    .await;
    let offline_rows = rows(
        &e,
        "SELECT user_id, amount FROM historical_features(\
           'SELECT user_id, now() AS event_timestamp FROM (VALUES (1), (2), (3), (4), (5)) v(user_id)', \
           'user_feats') ORDER BY user_id",
    )
    .await;
    assert_eq!(online_rows, offline_rows);

    // Keys of two columns: OR of ANDs, IN, a missing key.
    materialize(&e, "merchant_risk", None).await;
    assert_eq!(
        rows(
            &e,
            "SELECT merchant_id, country, risk, _status FROM online.merchant_risk \
             WHERE (merchant_id = 7 AND country = 'FR') OR (merchant_id = 7 AND country = 'US') \
             OR (merchant_id = 9 AND country = 'US') ORDER BY merchant_id, country"
        )
        .await,
        vec!["7|FR|0.9|present", "7|US|0.5|present", "9|US||not_found"]
    );
    assert_eq!(
        rows(
            &e,
            "SELECT merchant_id, country, risk FROM online.merchant_risk \
             WHERE merchant_id IN (7, 8) AND country = 'US' ORDER BY merchant_id"
        )
        .await,
        vec!["7|US|0.5", "8|US|0.2"]
    );
    let err = e
        .query("SELECT * FROM online.merchant_risk WHERE merchant_id = 7")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("read by key") && err.contains("country"),
        "{err}"
    );
    let err = e
        .query("SELECT * FROM online.no_such_view WHERE id = 1")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not found"), "{err}");

    // A table model rewrites its table: the next materialization is full.
    e.query(&format!(
        "INSERT INTO raw.merchant_events VALUES (8, 'US', {t}, 0.7)",
        t = ago(60)
    ))
    .await
    .unwrap();
    run_models(dir.path()).await;
    let r = materialize(&e, "merchant_risk", None).await;
    assert_eq!(r.mode, "full", "{r:?}");
    assert!(
        r.reason.as_deref().unwrap_or("").contains("rewrote"),
        "{r:?}"
    );
    assert_eq!(
        rows(
            &e,
            "SELECT risk FROM online.merchant_risk WHERE merchant_id = 8 AND country = 'US'"
        )
        .await,
        vec!["0.7"]
    );

    // A feature service, then the same service with a view added.
    assert_eq!(
        rows(&e, "SELECT * FROM online.fraud WHERE user_id = 2").await[0]
            .split('|')
            .collect::<Vec<_>>()[..2],
        ["2", "21.0"]
    );
    let services =
        "[feature_services.fraud]\nfeatures = [\"user_feats:amount\", \"merchant_risk\"]\n";
    std::fs::write(
        dir.path().join("sluice.toml"),
        toml(uri, online_toml, services),
    )
    .unwrap();
    // A new process: the embedded store loads its snapshot, nothing recomputed.
    let e2 = reopen(dir.path()).await;
    let schema = e2
        .sql("SELECT * FROM online.fraud WHERE user_id = 1 AND merchant_id = 7 AND country = 'FR'")
        .await
        .unwrap()
        .schema()
        .as_arrow()
        .clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        vec![
            "user_id",
            "merchant_id",
            "country",
            "amount",
            "user_feats__event_time",
            "user_feats__status",
            "risk",
            "merchant_risk__event_time",
            "merchant_risk__status"
        ]
    );
    assert_eq!(
        rows(
            &e2,
            "SELECT user_id, amount, user_feats__status, risk, merchant_risk__status FROM online.fraud \
             WHERE user_id = 1 AND merchant_id = 7 AND country = 'FR'"
        )
        .await,
        vec!["1|11.0|present|0.9|present"]
    );
    let r = materialize(&e2, "user_feats", None).await;
    assert_eq!(r.mode, "up to date");
    // The service in a training set.
    assert_eq!(
        rows(
            &e2,
            "SELECT user_id, amount, risk FROM historical_features(\
               'SELECT 1 AS user_id, 7 AS merchant_id, ''FR'' AS country, now() AS event_timestamp', 'service=fraud')"
        )
        .await,
        vec!["1|11.0|0.9"]
    );

    // A range merges only rows in [start, end), and never an older value
    // over a newer one.
    let now = chrono::Utc::now().timestamp_micros();
    let r = materialize(
        &e2,
        "user_feats",
        Some(online::Range {
            start: Some(now - 6 * 3600 * 1_000_000),
            end: Some(now),
        }),
    )
    .await;
    assert_eq!(r.mode, "range");
    assert_eq!(r.entities_written, 0, "{r:?}");
    assert_eq!(
        rows(
            &e2,
            "SELECT amount FROM online.user_feats WHERE user_id = 1"
        )
        .await,
        vec!["11.0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_online_store() {
    scenario("warehouse", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_online_store_on_s3() {
    let (Ok(_), Ok(bucket)) = (
        std::env::var("SLUICE_TEST_S3_ENDPOINT"),
        std::env::var("SLUICE_TEST_S3_BUCKET"),
    ) else {
        eprintln!("skipping: SLUICE_TEST_S3_ENDPOINT / SLUICE_TEST_S3_BUCKET not set (tests/run.sh starts moto)");
        return;
    };
    let uri = format!("s3://{bucket}/online-{}", uuid::Uuid::new_v4().simple());
    scenario(&uri, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_online_store() {
    let Ok(url) = std::env::var("SLUICE_TEST_REDIS_URL") else {
        eprintln!("SLUICE_TEST_REDIS_URL not set: skipping the Redis online store test (tests/run.sh starts redis-server)");
        return;
    };
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    scenario(
        "warehouse",
        &format!("[online]\nstore = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"{prefix}\"\n"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_online_config_is_named() {
    let dir = project_of(&[]);
    std::fs::write(
        dir.path().join("sluice.toml"),
        toml("warehouse", "[online]\nstore = \"memcached\"\n", ""),
    )
    .unwrap();
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let err = sluice::app::engine(&project, wh)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sluice.toml") && err.contains("memcached") && err.contains("redis"),
        "{err}"
    );
}
