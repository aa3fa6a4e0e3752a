//! `sluice load`: example data, idempotency, quarantine, evolution, modes.

use crate::common::*;
use sluice::load::{load, LoadOptions, NoProgress};
use sluice::project::Project;

async fn load_all(project: &Project, w: &sluice::warehouse::Warehouse) -> sluice::load::LoadReport {
    load(project, w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_loads_and_second_load_is_a_no_op() {
    let dir = example_project();
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let report = load_all(&project, &w).await;
    let by = |n: &str| {
        report
            .sources
            .iter()
            .find(|s| s.source == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by("users").rows_loaded, 1000);
    assert_eq!(by("merchants").rows_loaded, 200);
    assert_eq!(by("transactions").rows_loaded, 5000);
    assert_eq!(by("transactions").files.len(), 5);
    assert_eq!(by("labels").rows_loaded, 5000);
    assert!(report.sources.iter().all(|s| s.rows_rejected == 0));

    let e = engine(&project, &w).await;
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM raw.transactions").await,
        "5000"
    );
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM transactions").await,
        "5000"
    );
    assert_eq!(
        scalar(&e, "SELECT sum(amount) FROM raw.transactions").await,
        "187543.74"
    );
    assert_eq!(
        scalar(&e, "SELECT arrow_typeof(ts) FROM raw.transactions LIMIT 1").await,
        "Timestamp(µs, \"UTC\")"
    );
    assert_eq!(
        rows(&e, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'sluice' AND table_schema = 'raw' ORDER BY table_name").await,
        vec!["raw|labels", "raw|merchants", "raw|transactions", "raw|users"]
    );

    let versions = [
        version_of(&w, "raw", "users").await,
        version_of(&w, "raw", "transactions").await,
        version_of(&w, "raw", "merchants").await,
        version_of(&w, "raw", "labels").await,
    ];
    let again = load_all(&project, &w).await;
    assert!(again
        .sources
        .iter()
        .all(|s| s.version.is_none() && s.rows_loaded == 0));
    assert_eq!(
        again
            .sources
            .iter()
            .find(|s| s.source == "transactions")
            .unwrap()
            .skipped_files,
        5
    );
    let after = [
        version_of(&w, "raw", "users").await,
        version_of(&w, "raw", "transactions").await,
        version_of(&w, "raw", "merchants").await,
        version_of(&w, "raw", "labels").await,
    ];
    assert_eq!(versions, after, "a second load must not create versions");

    // One new file: exactly one new version holding only its rows.
    std::fs::write(
        dir.path().join("catalog/data/transactions/2026-01-06.csv"),
        "txn_id,user_id,merchant_id,amount,currency,ts\n9001,1,1,10.00,EUR,2026-01-06T01:00:00Z\n9002,2,2,5.50,USD,2026-01-06T02:00:00Z\n",
    )
    .unwrap();
    let third = load(
        &project,
        &w,
        &["transactions".into()],
        &LoadOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let s = &third.sources[0];
    assert_eq!(s.rows_loaded, 2);
    assert_eq!(s.files.len(), 1);
    assert_eq!(s.skipped_files, 5);
    assert_eq!(s.version, after[1].map(|v| v + 1));
    let e = engine(&project, &w).await;
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM raw.transactions").await,
        "5002"
    );
    let t = w.open_table("raw", "transactions").await.unwrap().unwrap();
    let hist = sluice::warehouse::history(&t).await.unwrap();
    let last = hist.last().unwrap();
    assert_eq!(last.rows_added, Some(2));
    assert_eq!(last.load_id.as_deref(), Some(third.load_id.as_str()));
    assert_eq!(last.source_files.len(), 1);

    // --force reloads everything.
    let forced = load(
        &project,
        &w,
        &["transactions".into()],
        &LoadOptions {
            force: true,
            max_rejected: None,
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(forced.sources[0].rows_loaded, 5002);
}

const EVENTS: &str = r#"
[[source]]
name = "events"
format = "csv"
location = "data/*.csv"

[[source.columns]]
name = "id"
type = "bigint"
not_null = true

[[source.columns]]
name = "amount"
type = "decimal(10,2)"

[[source.columns]]
name = "ts"
type = "timestamptz"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_are_quarantined_not_lost() {
    let dir = project_with(EVENTS);
    let csv = "id,amount,ts\n\
               1,1.50,2026-01-01T00:00:00Z\n\
               2,abc,2026-01-01T00:00:00Z\n\
               ,3.00,2026-01-01T00:00:00Z\n\
               4,4.00,not-a-time\n\
               5,5.00\n\
               6,6.00,2026-01-01T00:00:00Z,extra\n\
               \"7\",\"7.00\",\"2026-01-02T00:00:00Z\"\n";
    std::fs::write(dir.path().join("data/a.csv"), csv).unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);

    // Too many rejections: nothing is committed anywhere.
    let err = load(
        &project,
        &w,
        &[],
        &LoadOptions {
            force: false,
            max_rejected: Some(2),
        },
        &NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("more than 2 rows rejected"), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    assert_eq!(version_of(&w, "raw", "events").await, None);
    assert_eq!(version_of(&w, "raw", "events__rejected").await, None);

    let report = load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let s = &report.sources[0];
    assert_eq!(s.rows_loaded, 2);
    assert_eq!(s.rows_rejected, 5);
    assert_eq!(
        s.rows_loaded + s.rows_rejected,
        7,
        "loaded + rejected = input rows"
    );
    assert_eq!(s.rejected_table.as_deref(), Some("raw.events__rejected"));
    let e = engine(&project, &w).await;
    assert_eq!(
        rows(&e, "SELECT id, amount FROM raw.events ORDER BY id").await,
        vec!["1|1.50", "7|7.00"]
    );
    let rejected = rows(
        &e,
        "SELECT line, reason, raw, file LIKE '%/data/a.csv' FROM raw.events__rejected ORDER BY line",
    )
    .await;
    assert_eq!(
        rejected,
        vec![
            "3|column `amount`: 'abc' is not a valid DECIMAL(10,2)|2,abc,2026-01-01T00:00:00Z|true",
            "4|column `id` is empty but declared not_null|,3.00,2026-01-01T00:00:00Z|true",
            "5|column `ts`: 'not-a-time' is not a valid TIMESTAMPTZ|4,4.00,not-a-time|true",
            "6|expected 3 fields, found 2|5,5.00|true",
            "7|expected 3 fields, found 4|6,6.00,2026-01-01T00:00:00Z,extra|true",
        ]
    );
    assert_eq!(
        scalar(
            &e,
            &format!(
                "SELECT count(*) FROM raw.events__rejected WHERE load_id = '{}'",
                report.load_id
            )
        )
        .await,
        "5"
    );
}

/// A CSV of several pieces (8 MiB each, read in parallel, the plain ones by the
/// fast path): same rows, rejections and line numbers as one pass, including a
/// quoted field with an embedded newline in a later piece. The second piece
/// (lines ~240k-480k) has no quote, so the plain path reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_of_several_pieces_loads_like_one_pass() {
    use std::fmt::Write;
    let dir = project_with(EVENTS);
    let n = 700_000u64;
    let mut csv = String::from("id,amount,ts\n");
    for i in 1..=n {
        if i % 100_000 == 0 {
            writeln!(csv, "{i},bad,2026-01-01T00:00:00Z").unwrap();
        } else if i == 550_001 {
            writeln!(csv, "{i},\"4.\n50\",2026-01-01T00:00:00Z").unwrap();
        } else if i == 600_001 {
            writeln!(csv, "\"{i}\",\"1.00\",\"2026-01-01T00:00:00Z\"").unwrap();
        } else {
            writeln!(csv, "{i},{}.{:02},2026-01-01T00:00:00Z", i % 1000, i % 100).unwrap();
        }
    }
    assert!(
        csv.len() > 2 * (8 << 20),
        "{} bytes: fewer than 3 pieces",
        csv.len()
    );
    std::fs::write(dir.path().join("data/a.csv"), csv).unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let report = load_all(&project, &w).await;
    let s = &report.sources[0];
    assert_eq!((s.rows_loaded, s.rows_rejected), (n - 8, 8));
    let e = engine(&project, &w).await;
    let bad: u64 = [
        100_000u64, 200_000, 300_000, 400_000, 500_000, 550_001, 600_000, 700_000,
    ]
    .iter()
    .sum();
    assert_eq!(
        scalar(&e, "SELECT sum(id) FROM raw.events").await,
        (n * (n + 1) / 2 - bad).to_string()
    );
    assert_eq!(
        scalar(&e, "SELECT amount FROM raw.events WHERE id = 600001").await,
        "1.00"
    );
    assert_eq!(
        scalar(&e, "SELECT sum(amount) FROM raw.events WHERE id < 10").await,
        "45.45"
    );
    let rejected = rows(
        &e,
        "SELECT line, reason, raw FROM raw.events__rejected ORDER BY line",
    )
    .await;
    let mut expected = Vec::new();
    for (i, line) in [
        (100_000, 100_001),
        (200_000, 200_001),
        (300_000, 300_001),
        (400_000, 400_001),
        (500_000, 500_001),
    ] {
        expected.push(format!(
            "{line}|column `amount`: 'bad' is not a valid DECIMAL(10,2)|{i},bad,2026-01-01T00:00:00Z"
        ));
    }
    expected.push(
        "550002|column `amount`: '4.\n50' is not a valid DECIMAL(10,2)|550001,\"4.\n50\",2026-01-01T00:00:00Z"
            .to_string(),
    );
    for (i, line) in [(600_000, 600_002), (700_000, 700_002)] {
        expected.push(format!(
            "{line}|column `amount`: 'bad' is not a valid DECIMAL(10,2)|{i},bad,2026-01-01T00:00:00Z"
        ));
    }
    assert_eq!(rejected, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_quarantine_and_schema_evolution() {
    let dir = project_with(
        r#"
[[source]]
name = "labels"
format = "ndjson"
location = "data/*.ndjson"

[[source.columns]]
name = "id"
type = "bigint"
not_null = true
"#,
    );
    std::fs::write(
        dir.path().join("data/1.ndjson"),
        "{\"id\": 1, \"flag\": true}\n{\"id\": 2, \"flag\": false}\n{bad json\n{\"flag\": true}\n\n{\"id\": \"x\"}\n",
    )
    .unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let r = load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.sources[0].rows_loaded, 2);
    assert_eq!(r.sources[0].rows_rejected, 3);
    let e = engine(&project, &w).await;
    let lines = rows(&e, "SELECT line FROM raw.labels__rejected ORDER BY line").await;
    assert_eq!(lines, vec!["3", "4", "6"]);

    // A newer file adds a column: the table gains it, old rows read NULL.
    std::fs::write(
        dir.path().join("data/2.ndjson"),
        "{\"id\": 3, \"flag\": true, \"score\": 0.5}\n",
    )
    .unwrap();
    load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let e = engine(&project, &w).await;
    assert_eq!(
        rows(&e, "SELECT id, flag, score FROM raw.labels ORDER BY id").await,
        vec!["1|true|", "2|false|", "3|true|0.5"]
    );

    // An incompatible type change is an error naming the column and both types.
    std::fs::write(
        dir.path().join("data/3.ndjson"),
        "{\"id\": 4, \"flag\": \"maybe\"}\n",
    )
    .unwrap();
    let err = load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column `flag` is BOOLEAN in the table but VARCHAR in"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_overwrite_and_merge_modes() {
    let dir = project_with(
        r#"
[[source]]
name = "snap"
format = "parquet"
location = "data/snap.parquet"
mode = "overwrite"

[[source]]
name = "dim"
format = "csv"
location = "data/dim*.csv"
mode = "merge"
merge_keys = ["k"]
"#,
    );
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let e = engine(&project, &w).await;
    let path = dir.path().join("data/snap.parquet");
    e.query(&format!(
        "COPY (SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, name)) TO '{}' STORED AS PARQUET",
        path.display()
    ))
    .await
    .unwrap();
    std::fs::write(dir.path().join("data/dim1.csv"), "k,v\n1,one\n2,two\n").unwrap();
    load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    e.query(&format!(
        "COPY (SELECT * FROM (VALUES (3, 'c')) AS t(id, name)) TO '{}' STORED AS PARQUET",
        path.display()
    ))
    .await
    .unwrap();
    std::fs::write(
        dir.path().join("data/dim2.csv"),
        "k,v,w\n2,TWO,x\n3,three,y\n3,THREE,z\n",
    )
    .unwrap();
    load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let e = engine(&project, &w).await;
    assert_eq!(rows(&e, "SELECT id, name FROM raw.snap").await, vec!["3|c"]);
    assert_eq!(
        rows(&e, "SELECT k, v, w FROM raw.dim ORDER BY k").await,
        vec!["1|one|", "2|TWO|x", "3|THREE|z"]
    );
}
