//! Stream feature views without a broker: `run` checks and registers the
//! view; the live views `sluice stream` runs are started over the source
//! table (rebuilt from it), fed the rows of a commit and an expiry; lookups
//! through `online.<view>` equal `historical_features` at the lookup's
//! instant. On the embedded store, and on Redis when `SLUICE_TEST_REDIS_URL`
//! names a server (tests/run.sh starts one). The broker path is in
//! tests/python/test_stream_features.py.

use crate::common::*;
use crate::models::{execute, project_of};
use sluice::features::live::LiveViews;
use sluice::models::{Status, Steps};
use sluice::project::Project;

const VIEW: &str = "{{ config(materialized='view', feature_view={'entities': ['user_id'], \
    'event_timestamp': 'ts', 'stream': true, 'allowed_lateness': '10m'}) }}\n\
    SELECT user_id,\n\
      count(*) FILTER (WHERE ts > now() - INTERVAL '10 minutes') AS n_10m,\n\
      sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS amount_1h\n\
    FROM raw.events WHERE amount > 0 GROUP BY user_id\n";

fn ago(secs: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::seconds(secs);
    format!(
        "arrow_cast('{}', 'Timestamp(Microsecond, Some(\"UTC\"))')",
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    )
}

async fn reopen(dir: &std::path::Path) -> sluice::sql::Engine {
    let project = Project::load(dir).unwrap();
    let wh = open(&project, None);
    engine(&project, &wh).await
}

/// Online values for `users` and the instant they are for, and the same
/// computed offline at that instant.
async fn online_and_offline(e: &sluice::sql::Engine, users: &str) -> (Vec<String>, Vec<String>) {
    let online = rows(
        e,
        &format!(
            "SELECT user_id, n_10m, amount_1h, _status, CAST(_event_time AS BIGINT) FROM online.user_rt \
             WHERE user_id IN ({users}) ORDER BY user_id"
        ),
    )
    .await;
    let t: String = online[0].rsplit('|').next().unwrap().to_string();
    assert!(
        online.iter().all(|r| r.ends_with(&t)),
        "one instant: {online:?}"
    );
    let labels = users
        .split(',')
        .map(|u| {
            format!(
                "SELECT CAST({} AS BIGINT) AS user_id, arrow_cast({t}, ''Timestamp(Microsecond, Some(\"UTC\"))'') AS ts",
                u.trim()
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let offline = rows(
        e,
        &format!(
            "SELECT user_id, n_10m, amount_1h FROM historical_features('{labels}', 'user_rt') ORDER BY user_id"
        ),
    )
    .await;
    let online = online
        .iter()
        .map(|r| r.split('|').take(3).collect::<Vec<_>>().join("|"))
        .collect();
    (online, offline)
}

async fn scenario(online_toml: &str) {
    let dir = project_of(&[("models/features/user_rt.sql", VIEW)]);
    std::fs::write(
        dir.path().join("sluice.toml"),
        format!(
            "[project]\nname = \"t\"\nmodels = \"models\"\n\n[warehouse]\nuri = \"warehouse\"\ndefault_schema = \"main\"\n\n{online_toml}\n"
        ),
    )
    .unwrap();
    let e = reopen(dir.path()).await;
    // User 1: one event in both windows, one only in the hour; user 2: a
    // refund (filtered out); user 3: older than the hour and the lateness.
    e.query(&format!(
        "CREATE TABLE raw.events AS SELECT * FROM (VALUES \
         (1, {a}, 5.0), (1, {b}, 7.0), (2, {c}, -1.0), (3, {d}, 9.0)) v(user_id, ts, amount)",
        a = ago(60),
        b = ago(1200),
        c = ago(30),
        d = ago(7200),
    ))
    .await
    .unwrap();
    // Live views started before the view is registered pick it up.
    let store = sluice::features::settings(&e).unwrap().online.clone();
    let mut early = LiveViews::start(&e, store.clone(), "raw", "events", "early")
        .await
        .unwrap();
    assert!(early.is_empty());
    let report = execute(dir.path(), Steps::Models, &[], false).await;
    assert!(
        report.results.iter().all(|n| n.status == Status::Success),
        "{:?}",
        report.results
    );
    let view = sluice::features::get_view(e.warehouse(), "user_rt")
        .await
        .unwrap();
    let def = view.stream.as_ref().expect("registered as a stream view");
    assert_eq!(def.source, "raw.events");
    assert_eq!(def.allowed_lateness_us, 600_000_000);
    let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["n_10m", "amount_1h"]);
    // Registered, but no `sluice stream` has written it yet.
    let err = e
        .query("SELECT * FROM online.user_rt WHERE user_id = 1")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("run `sluice stream`"), "{err}");

    early.refresh_views().await.unwrap();
    assert_eq!(early.names(), ["user_rt"]);
    drop(early);
    let mut live = LiveViews::start(&e, store, "raw", "events", "it")
        .await
        .unwrap();
    assert_eq!(live.names(), ["user_rt"]);
    let (online, offline) = online_and_offline(&e, "1, 2, 3, 4").await;
    assert_eq!(
        online,
        ["1|1|12.0", "2|0|", "3|0|", "4|0|"],
        "rebuilt from the table"
    );
    assert_eq!(online, offline);
    let status = rows(
        &e,
        "SELECT user_id, _status FROM online.user_rt WHERE user_id IN (1, 2) ORDER BY user_id",
    )
    .await;
    assert_eq!(status, ["1|present", "2|not_found"]);

    // A commit: user 2 buys, user 4 appears, user 1 gets a late event (40
    // minutes old: inside the hour, outside the 10 minutes).
    let batch = e
        .query(&format!(
            "SELECT * FROM (VALUES (2, {a}, 3.0), (4, {b}, 1.5), (1, {c}, 0.25)) v(user_id, ts, amount)",
            a = ago(5),
            b = ago(1),
            c = ago(2400),
        ))
        .await
        .unwrap();
    e.query(&format!(
        "INSERT INTO raw.events VALUES (2, {a}, 3.0), (4, {b}, 1.5), (1, {c}, 0.25)",
        a = ago(5),
        b = ago(1),
        c = ago(2400),
    ))
    .await
    .unwrap();
    live.apply(&batch).await.unwrap();
    let (online, offline) = online_and_offline(&e, "1, 2, 3, 4").await;
    assert_eq!(online, ["1|1|12.25", "2|1|3.0", "3|0|", "4|1|1.5"]);
    assert_eq!(online, offline);

    // A second process (a server) reads the same store.
    let other = reopen(dir.path()).await;
    let (online2, _) = online_and_offline(&other, "1, 2, 3, 4").await;
    assert_eq!(online2, online);

    // Many commits: the embedded store writes a checkpoint beside its
    // files; a reader that follows the changes and one that starts from the
    // checkpoint agree.
    if online_toml.is_empty() {
        for i in 0..205 {
            let b = e
                .query(&format!(
                    "SELECT * FROM (VALUES (9, {t}, 1.0)) v(user_id, ts, amount)",
                    t = ago(i % 50)
                ))
                .await
                .unwrap();
            live.apply(&b).await.unwrap();
            if i == 3 {
                // `other` reads now, then follows the files.
                online_and_offline(&other, "9").await;
            }
        }
        // The checkpoint is written in the background; wait for it.
        live.settle().await.unwrap();
        let store = sluice::features::settings(&e).unwrap().online.clone();
        let st = store.stream_state("user_rt").await.unwrap().unwrap();
        assert!(st.checkpoint.is_some(), "{st:?}");
        let fresh = reopen(dir.path()).await;
        let q = "SELECT n_10m, amount_1h FROM online.user_rt WHERE user_id = 9";
        assert_eq!(rows(&fresh, q).await, ["205|205.0"]);
        assert_eq!(rows(&other, q).await, ["205|205.0"]);
    }

    // Expiry far ahead: every entity is gone, values are zero / NULL.
    live.expire(chrono::Utc::now().timestamp_micros() + 3 * 3_600_000_000)
        .await
        .unwrap();
    let after = rows(
        &other,
        "SELECT user_id, n_10m, amount_1h, _status FROM online.user_rt WHERE user_id IN (1, 4) ORDER BY user_id",
    )
    .await;
    assert_eq!(after, ["1|0||not_found", "4|0||not_found"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_view_on_the_embedded_store() {
    scenario("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_view_on_redis() {
    let Ok(url) = std::env::var("SLUICE_TEST_REDIS_URL") else {
        eprintln!("SLUICE_TEST_REDIS_URL not set: skipping the Redis stream view test (tests/run.sh starts redis-server)");
        return;
    };
    let prefix = format!("s{}", uuid::Uuid::new_v4().simple());
    scenario(&format!(
        "[online]\nstore = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"{prefix}\"\n"
    ))
    .await;
}

/// Keys of two string columns, and a second view over the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_views_with_string_keys_of_two_columns() {
    let by_pair =
        "{{ config(materialized='view', feature_view={'entities': ['merchant', 'country'], \
        'event_timestamp': 'ts', 'stream': true}) }}\n\
        SELECT merchant, country, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n_1h, \
        max(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS max_1h \
        FROM raw.orders GROUP BY merchant, country\n";
    let by_merchant = "{{ config(materialized='view', feature_view={'entities': ['merchant'], \
        'event_timestamp': 'ts', 'stream': true}) }}\n\
        SELECT merchant, avg(amount) FILTER (WHERE ts > now() - INTERVAL '1 day') AS avg_1d \
        FROM raw.orders GROUP BY merchant\n";
    let dir = project_of(&[
        ("models/features/pair_rt.sql", by_pair),
        ("models/features/merchant_rt.sql", by_merchant),
    ]);
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[project]\nname = \"t\"\nmodels = \"models\"\n\n[warehouse]\nuri = \"warehouse\"\ndefault_schema = \"main\"\n",
    )
    .unwrap();
    let e = reopen(dir.path()).await;
    e.query(&format!(
        "CREATE TABLE raw.orders AS SELECT * FROM (VALUES \
         ('acme', 'US', {a}, 10.0), ('acme', 'FR', {b}, 20.0), ('acme', 'US', {c}, 30.0), \
         ('bolt', 'US', {a}, 5.0), (NULL, 'US', {a}, 1.0)) v(merchant, country, ts, amount)",
        a = ago(60),
        b = ago(120),
        c = ago(4000),
    ))
    .await
    .unwrap();
    let report = execute(dir.path(), Steps::Models, &[], false).await;
    assert!(
        report.results.iter().all(|n| n.status == Status::Success),
        "{:?}",
        report.results
    );
    let store = sluice::features::settings(&e).unwrap().online.clone();
    let mut live = LiveViews::start(&e, store, "raw", "orders", "it")
        .await
        .unwrap();
    let mut names = live.names();
    names.sort();
    assert_eq!(names, ["merchant_rt", "pair_rt"]);
    let q = "SELECT merchant, country, n_1h, max_1h, _status FROM online.pair_rt \
             WHERE merchant IN ('acme', 'bolt', 'zed') AND country IN ('US', 'FR') \
             ORDER BY merchant, country";
    assert_eq!(
        rows(&e, q).await,
        [
            "acme|FR|1|20.0|present",
            "acme|US|1|10.0|present",
            "bolt|FR|0||not_found",
            "bolt|US|1|5.0|present",
            "zed|FR|0||not_found",
            "zed|US|0||not_found"
        ]
    );
    let batch = e
        .query(&format!(
            "SELECT * FROM (VALUES ('bolt', 'FR', {a}, 7.5)) v(merchant, country, ts, amount)",
            a = ago(2)
        ))
        .await
        .unwrap();
    live.apply(&batch).await.unwrap();
    assert_eq!(
        rows(
            &e,
            "SELECT n_1h, max_1h FROM online.pair_rt WHERE merchant = 'bolt' AND country = 'FR'"
        )
        .await,
        ["1|7.5"]
    );
    assert_eq!(
        rows(
            &e,
            "SELECT merchant, avg_1d FROM online.merchant_rt WHERE merchant IN ('acme', 'bolt') ORDER BY merchant"
        )
        .await,
        ["acme|20.0", "bolt|6.25"]
    );
    // A key column left out is refused with the usage.
    let err = e
        .query("SELECT * FROM online.pair_rt WHERE merchant = 'acme'")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("filter every entity column (merchant, country)"),
        "{err}"
    );
}
